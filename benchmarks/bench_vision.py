"""Is the Level 3 ResNet-18 / VGG-11 as fast as torchvision's? Forward + backward, one process.

Run from the repository root::

    python -m benchmarks.bench_vision                          # resnet18 and vgg11, CPU
    python -m benchmarks.bench_vision --model resnet18 --repeats 20 --threads 2
    python -m benchmarks.bench_vision --device cuda --batch 64 --json runs/bench_vision.json

What is timed: one training step without the optimizer, ``model.zero_grad()``, the
forward pass, the cross-entropy loss and ``loss.backward()``, on a batch of random
images (default 8 x 3 x 224 x 224, float32, train mode: batch-norm statistics, dropout).
Our model (``05_ResNet/paper/resnet_paper.py``, ``04_VGG/paper/vgg_paper.py``) holds the
same weights as torchvision's (ported with ``from_torchvision``, in each lesson's
``paper/convert.py``), so both do the same
arithmetic with the same layers; the layers are the same ``torch.nn`` modules, so the
ratio should be 1 up to noise. The target: ours / torchvision <= 1.05.

Checked before timed: on the benchmark's own inputs, one training step of each model
must give the same logits, loss and parameter gradients within a float32 tolerance
(``utils.testing.float32_tol``, scaled by the additions along the network's longest
path). If they differ, the two models do different work, and the benchmark stops with
exit status 1 before timing anything.

How the ratio is made trustworthy on a busy machine: both models live in one process
and are timed in turns, ABBA ABBA ..., so that a slow period of the machine hits both
alike; a few warm-up steps of each come first (oneDNN picks its kernels, the allocator
fills its caches); the per-turn ratio ours / torchvision is computed for each round and
the MEDIAN of those ratios is reported, with the median times. ``--threads`` sets
torch's CPU threads (default 1: the most repeatable, and a fair per-core comparison).

How many rounds a verdict needs (``ratio_summary``): the spread of the per-round ratios
is reported as min .. max and as the interquartile range (IQR). From the IQR a robust
standard deviation s = IQR / 1.349 and the standard error of the median,
1.2533 s / sqrt(n) (n rounds, the normal-data constant), follow. A verdict at the 5 %
level ("ours is within 5 % of torchvision") needs that standard error below 2.5 % of
the median ratio, so the benchmark prints

    rounds needed = ceil((1.2533 s / (0.025 median)) ** 2)

and calls the target "met" / "NOT met" only when it ran at least that many rounds;
otherwise "undecided", with the number of rounds to ask for (``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from benchmarks.timing import RatioStats
from utils import import_lesson
from utils.cli import non_negative_int, positive_int
from utils.testing import FLOAT32_SAFETY, assert_close, float32_tol

MODELS = ("resnet18", "vgg11")
TARGET_RATIO = 1.05
VERDICT_SE = 0.025  # largest standard error of the median ratio for a 5 % verdict


def build_pair(name: str, num_classes: int = 1000, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's) with identical weights, both in train mode.

    Inputs:  name - "resnet18" or "vgg11"; num_classes >= 1; seed - for the weights.
    Returns: (our Level 3 model, the torchvision model).
    """
    torch.manual_seed(seed)
    if name == "resnet18":
        reference = torchvision.models.resnet18(num_classes=num_classes)
        ours = import_lesson("05_ResNet.paper.convert").from_torchvision(reference)
    elif name == "vgg11":
        reference = torchvision.models.vgg11(num_classes=num_classes)
        ours = import_lesson("04_VGG.paper.convert").from_torchvision(reference)
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


def path_terms(model: nn.Module) -> int:
    """Additions along the longest path of a forward (or backward) pass: the sum of the
    fan-ins of every convolution and linear layer, the ``terms`` of ``float32_tol``."""
    terms = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            terms += m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            terms += m.in_features
    return max(terms, 1)


def check_same_step(ours: nn.Module, reference: nn.Module, x: torch.Tensor,
                    y: torch.Tensor) -> dict:
    """One training step of each model on (x, y): logits, loss and every parameter gradient
    must agree within a float32 tolerance, else AssertionError naming the first that differs.

    Inputs:  ours, reference - models with the same parameter names (a ported pair), in the
             mode to be timed; x (N, 3, H, W); y (N,) labels.
    Returns: {"tensors": how many were compared, "max_abs_diff": the largest difference,
              "rtol": the tolerance's rtol}.
    """
    device = x.device
    tol = float32_tol(path_terms(reference),
                      safety=FLOAT32_SAFETY * (4 if device.type == "cuda" else 1))
    outputs = {}
    for key, model in (("ours", ours), ("reference", reference)):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same dropout masks for both (VGG's classifier)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        outputs[key] = (logits.detach(), loss.detach(), dict(model.named_parameters()))
    (logits, loss, params), (logits_ref, loss_ref, params_ref) = outputs["ours"], \
        outputs["reference"]
    if set(params) != set(params_ref):
        raise AssertionError(f"parameter names differ: {sorted(set(params) ^ set(params_ref))}")
    pairs = [("logits", logits, logits_ref), ("loss", loss, loss_ref)]
    pairs += [(f"dL/d{k}", params[k].grad, params_ref[k].grad) for k in params_ref]
    worst = 0.0
    for name, a, e in pairs:
        assert_close(a, e, tol, name=name)
        worst = max(worst, float((a.double() - e.double()).abs().max()))
    return {"tensors": len(pairs), "max_abs_diff": worst, "rtol": tol.rtol}


def ratio_summary(ratios: Sequence[float], target: float = TARGET_RATIO) -> dict:
    """The median of per-round ratios, their spread, and the rounds a 5 % verdict needs
    (benchmarks/timing.py explains the rule).

    Inputs:  ratios - one ratio ours / reference per interleaved round (>= 1 of them);
             target - the ratio to stay under.
    Returns: {"ratio" (median), "ratio_min", "ratio_max", "ratio_q1", "ratio_q3",
              "ratio_iqr", "rel_se" (standard error of the median / median, from the IQR),
              "rounds", "rounds_needed", "target_met" (median <= target),
              "verdict": "met" | "NOT met" | "undecided: run N rounds"}.
    """
    if not ratios:
        raise ValueError("ratio_summary needs at least one ratio")
    stats = RatioStats(tuple(ratios))
    q1, q3 = stats.quartiles
    return {"ratio": stats.median, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ratio_q1": q1, "ratio_q3": q3, "ratio_iqr": q3 - q1, "rel_se": stats.rel_se,
            "rounds": len(ratios), "rounds_needed": stats.rounds_for(0.05),
            "target_met": bool(stats.median <= target), "verdict": stats.verdict(target)}


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
    """One row: the equality check, median ms of each model, and ``ratio_summary`` of the
    per-round ratios ours / torchvision. AssertionError if the check fails (nothing timed)."""
    ours, reference = build_pair(name)
    ours, reference = ours.to(device), reference.to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, 1000, (batch,), generator=g).to(device)
    check = check_same_step(ours, reference, x, y)  # before any timing
    times = interleaved_times(training_step(ours, x, y), training_step(reference, x, y),
                              repeats, warmup, device)
    ratios = [a / b for a, b in zip(times["ours"], times["reference"])]
    return {"model": name, "ours_ms": 1e3 * statistics.median(times["ours"]),
            "torchvision_ms": 1e3 * statistics.median(times["reference"]),
            **ratio_summary(ratios), "ratios": ratios, "check": check}


def main(argv: list[str] | None = None) -> dict:
    """Time our L3 ResNet-18 / VGG-11 against torchvision's, forward + backward; print a table.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: the results as a dict (also written to --json PATH when given).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch", type=positive_int, default=8, help="default: %(default)s")
    parser.add_argument("--size", type=positive_int, default=224,
                        help="image side, >= 32 (default: %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=10,
                        help="timed rounds per model, each times both (default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=2,
                        help="default: %(default)s")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="default: %(default)s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error(f"argument --size: must be >= 32 (both networks halve the image five "
                     f"times), got {args.size}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device on this machine")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = []
    for name in args.model:
        try:
            rows.append(bench_model(name, args.batch, args.size, args.repeats, device,
                                    args.warmup))
        except AssertionError as err:
            raise SystemExit(f"error: {name}: ours and torchvision's give different results on "
                             f"the benchmark's inputs, so their times would not compare the "
                             f"same work; nothing was timed. {err}") from None
        check = rows[-1]["check"]
        print(f"{name}: logits, loss and {check['tensors'] - 2} gradients equal "
              f"(max |diff| {check['max_abs_diff']:.1e}, float32 rtol {check['rtol']:.1e})")
    print(f"\nL3 vs torchvision, forward + backward (zero_grad, cross-entropy), train mode, "
          f"float32, batch {args.batch}, {args.size}x{args.size}, {args.device}, "
          f"{args.threads} thread(s), {args.repeats} ABBA rounds, medians")
    header = ["model", "ours", "torchvision", "ours / torchvision", "IQR", "(min .. max)",
              "rounds for 5 %", f"target <= {TARGET_RATIO:g}"]
    table = [[r["model"], f"{r['ours_ms']:.1f} ms", f"{r['torchvision_ms']:.1f} ms",
              f"{r['ratio']:.3f} +- {r['rel_se'] * r['ratio']:.3f}",
              f"{r['ratio_q1']:.3f} .. {r['ratio_q3']:.3f}",
              f"{r['ratio_min']:.3f} .. {r['ratio_max']:.3f}",
              f"{r['rounds_needed']} (ran {r['rounds']})", r["verdict"]] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
    print("(+- one standard error of the median, from the IQR; a verdict needs it below "
          f"{VERDICT_SE:.1%} of the ratio)")

    results = {
        "settings": {"batch": args.batch, "size": args.size, "repeats": args.repeats,
                     "warmup": args.warmup, "threads": args.threads, "device": args.device,
                     "timer": "time.perf_counter, ABBA rounds, medians",
                     "verdict_rule": f"standard error of the median ratio < {VERDICT_SE}",
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
