"""Is the Level 3 ResNet-18 / VGG-11 as fast as torchvision's? Forward + backward, one process.

Run from the repository root::

    python -m benchmarks.bench_vision                          # resnet18 and vgg11, CPU
    python -m benchmarks.bench_vision --model resnet18 --repeats 20 --threads 2
    python -m benchmarks.bench_vision --device cuda --batch 64 --json runs/bench_vision.json

What is timed: one training step without the optimizer, ``model.zero_grad()``, the
forward pass, the cross-entropy loss and ``loss.backward()``, on a batch of random
images (default 8 x 3 x 224 x 224, float32, train mode: batch-norm statistics, dropout).
Our model (``05_ResNet/paper/resnet_paper.py``, ``04_VGG/paper/vgg_paper.py``) holds the
same weights as torchvision's (ported with ``from_torchvision``), so both do the same
arithmetic with the same layers; the layers are the same ``torch.nn`` modules, so the
ratio should be 1 up to noise. The target: ours / torchvision <= 1.05.

How the ratio is made trustworthy on a busy machine: both models live in one process
and are timed in turns, ABBA ABBA ..., so that a slow period of the machine hits both
alike; a few warm-up steps of each come first (oneDNN picks its kernels, the allocator
fills its caches); the per-turn ratio ours / torchvision is computed for each round and
the MEDIAN of those ratios is reported, with the median times. ``--threads`` sets
torch's CPU threads (default 1: the most repeatable, and a fair per-core comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from utils import import_lesson

MODELS = ("resnet18", "vgg11")
TARGET_RATIO = 1.05


def build_pair(name: str, num_classes: int = 1000, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's) with identical weights, both in train mode.

    Inputs:  name - "resnet18" or "vgg11"; num_classes >= 1; seed - for the weights.
    Returns: (our Level 3 model, the torchvision model).
    """
    torch.manual_seed(seed)
    if name == "resnet18":
        reference = torchvision.models.resnet18(num_classes=num_classes)
        ours = import_lesson("05_ResNet.paper.resnet_paper").from_torchvision(reference)
    elif name == "vgg11":
        reference = torchvision.models.vgg11(num_classes=num_classes)
        ours = import_lesson("04_VGG.paper.vgg_paper").from_torchvision(reference)
    else:
        raise ValueError(f"model must be one of {MODELS}; got {name!r}")
    return ours.train(), reference.train()


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """A closure that runs zero_grad, forward, cross-entropy and backward once.

    Inputs:  model; x (N, 3, H, W); y (N,) int64 class labels.
    Returns: a function of no arguments (what is timed).
    """
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    return step


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that the timer measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(ours: Callable[[], None], reference: Callable[[], None], repeats: int,
                      warmup: int = 2, device: torch.device | str = "cpu") -> dict[str, list]:
    """Time two steps in turns (ABBA order), after ``warmup`` untimed calls of each.

    Inputs:  ours, reference - functions of no arguments; repeats >= 1 (rounds);
             warmup >= 0; device - where the work runs (synchronised for CUDA).
    Returns: {"ours": [seconds per round], "reference": [...]} (``repeats`` each).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got {repeats}, {warmup}")
    device = torch.device(device)
    for _ in range(warmup):
        ours(), reference()
    _sync(device)
    times: dict[str, list] = {"ours": [], "reference": []}
    for r in range(repeats):
        order = (("ours", ours), ("reference", reference))
        for key, fn in order if r % 2 == 0 else order[::-1]:  # ABBA: alternate who goes first
            start = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - start)
    return times


def bench_model(name: str, batch: int, size: int, repeats: int, device: torch.device,
                warmup: int = 2) -> dict:
    """One row: median ms of each model and the median per-round ratio ours / torchvision."""
    ours, reference = build_pair(name)
    ours, reference = ours.to(device), reference.to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, 1000, (batch,), generator=g).to(device)
    times = interleaved_times(training_step(ours, x, y), training_step(reference, x, y),
                              repeats, warmup, device)
    ratios = [a / b for a, b in zip(times["ours"], times["reference"])]
    ratio = statistics.median(ratios)
    return {"model": name, "ours_ms": 1e3 * statistics.median(times["ours"]),
            "torchvision_ms": 1e3 * statistics.median(times["reference"]),
            "ratio": ratio, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "target_met": bool(ratio <= TARGET_RATIO)}


def main(argv: list[str] | None = None) -> dict:
    """Time our L3 ResNet-18 / VGG-11 against torchvision's, forward + backward; print a table.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: the results as a dict (also written to --json PATH when given).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch", type=int, default=8, help="default: %(default)s")
    parser.add_argument("--size", type=int, default=224, help="image side (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed rounds per model, each times both (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="default: %(default)s")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="default: %(default)s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.batch, args.repeats, args.threads) < 1 or args.warmup < 0:
        parser.error("--batch, --repeats and --threads must be >= 1, --warmup >= 0")
    if args.size < 32:
        parser.error("--size must be >= 32 (both networks halve the image five times)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device on this machine")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = [bench_model(name, args.batch, args.size, args.repeats, device, args.warmup)
            for name in args.model]
    print(f"\nL3 vs torchvision, forward + backward (zero_grad, cross-entropy), train mode, "
          f"float32, batch {args.batch}, {args.size}x{args.size}, {args.device}, "
          f"{args.threads} thread(s), {args.repeats} ABBA rounds, medians")
    header = ["model", "ours", "torchvision", "ours / torchvision", "(min .. max)",
              f"target <= {TARGET_RATIO:g}"]
    table = [[r["model"], f"{r['ours_ms']:.1f} ms", f"{r['torchvision_ms']:.1f} ms",
              f"{r['ratio']:.3f}", f"{r['ratio_min']:.3f} .. {r['ratio_max']:.3f}",
              "met" if r["target_met"] else "NOT met"] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))

    results = {
        "settings": {"batch": args.batch, "size": args.size, "repeats": args.repeats,
                     "warmup": args.warmup, "threads": args.threads, "device": args.device,
                     "timer": "time.perf_counter, ABBA rounds, medians",
                     "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count()},
        "rows": rows,
        "target_ratio": TARGET_RATIO,
        "target_met": all(r["target_met"] for r in rows),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.json}")
    return results


if __name__ == "__main__":
    main()
