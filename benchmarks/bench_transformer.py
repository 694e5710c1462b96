"""How fast are lesson 07's attention (L2) and encoder layer (L3)? Against PyTorch, on the CPU.

Run from the repository root::

    python -m benchmarks.bench_transformer                    # the two tables, on this machine
    python -m benchmarks.bench_transformer --threads 2 --json runs/bench_transformer.json

(a) L2 attention. ``scaled_dot_product_attention`` of
    ``07_Transformer/pytorch_lowlevel/transformer_lowlevel.py`` (scores, softmax and the
    weighted sum written out, the weights kept and returned) against
    ``F.scaled_dot_product_attention`` (PyTorch's fused kernel, which returns no weights),
    forward + backward (dq, dk, dv), q, k, v of shape (B, h, T, d_k) = (8, 8, 256, 64),
    with and without a causal mask. No target: the ratio shows what fusing buys.
(b) L3 encoder layer. ``EncoderLayer`` of ``07_Transformer/paper/transformer_paper.py``
    against ``nn.TransformerEncoderLayer`` (batch_first, post-LN, ReLU, dropout 0, the same
    d_ff and the same weights), in training mode, forward + backward (dx and every
    parameter gradient), x (8, 256, 512), 8 heads, d_ff 2048. Target: L3 at most 1.2x
    PyTorch's time. L3 computes Q, K, V with one fused in-projection matmul, splits heads
    with views (no loop over heads) and, built with ``fused_attention=True``, calls
    ``F.scaled_dot_product_attention``: the same work as PyTorch's layer. (Its default,
    Equation 1 step by step, is the readable path; the tests check the two are equal.)

Threads: ``--threads`` (default 1, the most repeatable on a shared machine).
Timing: ``time.perf_counter`` around each call; warm-up calls first; then ``--repeats``
rounds in which every contender runs once, in turn (interleaved, so that a change of
machine load hits all of them alike); the median per contender. Absolute times depend on
the machine and its load; the ratios of one run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.timing import RatioStats, interleaved_times, ratio_stats
from utils import import_lesson

low = import_lesson("07_Transformer.pytorch_lowlevel.transformer_lowlevel")
paper = import_lesson("07_Transformer.paper.transformer_paper")

TARGET_RATIO = 1.2  # L3 encoder layer: at most 1.2x nn.TransformerEncoderLayer's time


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int,
                        warmup: int = 2) -> tuple[dict[str, float], RatioStats]:
    """Median seconds per function (each round calls every function once, in turn), and
    the per-round ratios of the first function to the second.

    Inputs:  fns - name -> the work to time (ours first, the reference second);
             repeats >= 1; warmup >= 0 untimed rounds.
    Returns: (name -> median seconds, RatioStats of ours / reference).
    """
    times = interleaved_times(fns, repeats, warmup)
    ours, reference = list(fns)[:2]
    return ({name: statistics.median(t) for name, t in times.items()},
            ratio_stats(times, ours, reference))


def bench_attention(batch: int, heads: int, length: int, d_k: int, repeats: int) -> list[dict]:
    """Part (a): L2 attention vs F.scaled_dot_product_attention, forward + backward."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, length, d_k, generator=g).requires_grad_()
               for _ in range(3))
    grad = torch.randn(batch, heads, length, d_k, generator=g)
    causal = low.causal_mask(length)  # True = masked (torch's nn convention)
    rows = []
    for name, mask in (("no mask", None), ("causal", causal)):
        def l2(mask=mask):
            q.grad = k.grad = v.grad = None
            out, _ = low.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out.backward(grad)

        def fused(mask=mask):
            q.grad = k.grad = v.grad = None
            # F.sdpa's boolean mask means "may attend": the complement of ours
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None
                                                 else ~mask)
            out.backward(grad)

        t, stats = interleaved_medians({"l2": l2, "torch": fused}, repeats)
        rows.append({"mask": name, "l2_ms": 1e3 * t["l2"], "torch_sdpa_ms": 1e3 * t["torch"],
                     "ratio_l2_vs_torch": stats.median, "ratio_spread": stats.as_dict(),
                     "summary": stats.summary()})
    return rows


def bench_encoder_layer(batch: int, length: int, d_model: int, heads: int, d_ff: int,
                        repeats: int) -> dict:
    """Part (b): L3 EncoderLayer vs nn.TransformerEncoderLayer, same weights, training mode."""
    torch.manual_seed(0)
    ours = paper.EncoderLayer(d_model, heads, d_ff, dropout=0.0, fused_attention=True).train()
    ref = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0, batch_first=True,
                                     norm_first=False).train()
    state = {re.sub(r"residual(\d)\.norm\.", r"norm\1.", key.replace("ffn.", "")): value
             for key, value in ours.state_dict().items()}  # torch's names
    ref.load_state_dict(state)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, length, d_model, generator=g).requires_grad_()
    grad = torch.randn(batch, length, d_model, generator=g)
    with torch.no_grad():  # same weights, same outputs: check before timing
        same = torch.allclose(ours(x), ref(x), rtol=1e-4, atol=1e-4)

    def step(layer):
        def run():
            x.grad = None
            layer.zero_grad(set_to_none=True)
            layer(x).backward(grad)
        return run

    t, stats = interleaved_medians({"l3": step(ours), "torch": step(ref)}, repeats)
    ratio = stats.median
    return {"l3_ms": 1e3 * t["l3"], "torch_ms": 1e3 * t["torch"], "ratio_l3_vs_torch": ratio,
            "ratio_spread": stats.as_dict(), "summary": stats.summary(),
            "same_outputs": bool(same), "target_met": bool(ratio <= TARGET_RATIO)}


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def main(argv: list[str] | None = None) -> dict:
    """Time the L2 attention and the L3 encoder layer against PyTorch; print two tables.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: the results as a dict (also written to --json PATH when given).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (%(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="default: %(default)s")
    parser.add_argument("--length", type=int, default=256, help="default: %(default)s")
    parser.add_argument("--d-model", type=int, default=512, help="default: %(default)s")
    parser.add_argument("--heads", type=int, default=8, help="default: %(default)s")
    parser.add_argument("--d-ff", type=int, default=2048, help="default: %(default)s")
    parser.add_argument("--repeats", type=int, default=10, help="default: %(default)s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.threads, args.batch, args.length, args.d_model, args.heads, args.d_ff,
           args.repeats) < 1:
        parser.error("every size, --threads and --repeats must be >= 1")
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be a multiple of --heads ({args.heads})")
    torch.set_num_threads(args.threads)
    d_k = args.d_model // args.heads

    attention = bench_attention(args.batch, args.heads, args.length, d_k, args.repeats)
    print(f"\n(a) L2 scaled_dot_product_attention vs F.scaled_dot_product_attention: forward + "
          f"backward, q/k/v ({args.batch}, {args.heads}, {args.length}, {d_k}), float32, "
          f"{args.threads} thread(s), median of {args.repeats}")
    _print_table(["mask", "L2", "torch (fused)", "L2 / torch"],
                 [[r["mask"], f"{r['l2_ms']:.1f} ms", f"{r['torch_sdpa_ms']:.1f} ms",
                   f"{r['ratio_l2_vs_torch']:.2f}x"] for r in attention])
    for r in attention:
        print(f"  {r['mask']}: per-round ratios {r['summary']}")

    layer = bench_encoder_layer(args.batch, args.length, args.d_model, args.heads, args.d_ff,
                                args.repeats)
    print(f"\n(b) L3 EncoderLayer vs nn.TransformerEncoderLayer (post-LN, dropout 0, training "
          f"mode): forward + backward, x ({args.batch}, {args.length}, {args.d_model}), "
          f"{args.heads} heads, d_ff {args.d_ff}, median of {args.repeats}")
    _print_table(["L3", "torch", "L3 / torch", f"target <= {TARGET_RATIO:g}x",
                  "same outputs"],
                 [[f"{layer['l3_ms']:.1f} ms", f"{layer['torch_ms']:.1f} ms",
                   f"{layer['ratio_l3_vs_torch']:.2f}x",
                   "met" if layer["target_met"] else "NOT met",
                   "yes" if layer["same_outputs"] else "NO"]])
    print(f"  per-round ratios {layer['summary']}")

    results = {
        "settings": {"threads": args.threads, "batch": args.batch, "length": args.length,
                     "d_model": args.d_model, "heads": args.heads, "d_ff": args.d_ff,
                     "repeats": args.repeats, "dtype": "float32",
                     "timer": "time.perf_counter, interleaved, median",
                     "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count()},
        "l2_attention_vs_torch": attention,
        "l3_encoder_layer_vs_torch": layer,
        "target_ratio": TARGET_RATIO,
        "target_met": layer["target_met"],
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.json}")
    return results


if __name__ == "__main__":
    main()
