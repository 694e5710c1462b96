"""How fast is the L1 NumPy convolution? Against PyTorch on the CPU, and against naive loops.

Run from the repository root::

    python -m benchmarks.bench_conv                      # the table below, on this machine
    python -m benchmarks.bench_conv --threads 2 --json runs/bench_conv.json

(a) L1 vs PyTorch. Forward + backward (dL/dx, dL/dW, dL/db) of ``Conv2D`` from
    ``03_CNN_LeNet/numpy/conv_numpy.py`` against ``F.conv2d`` + autograd, at LeNet-5's two
    convolution shapes with batch 64: C1 (1 -> 6 channels, 5x5, on 32x32) and C3 (6 -> 16,
    5x5, on 14x14). PyTorch is timed in both of its CPU settings: the default, which
    hands convolutions to oneDNN (formerly MKL-DNN), and ``torch.backends.mkldnn.enabled =
    False``, PyTorch's other CPU kernels (on the x86_64 build measured here: NNPACK for the
    float32 forward pass, the im2col + BLAS ``slow_conv2d`` in float64). The target: L1 at
    most 3x the time of the FASTER PyTorch setting. The table says, per layer, whether this
    run met it.
(b) Naive loops vs im2col, both L1: ``conv2d_naive`` + ``conv2d_backward_naive`` (a Python
    loop per output element) on a small batch (2 images; it is slow), against ``Conv2D`` on
    the same batch and on batch 64, as time per image.
(c) One MNIST epoch of the 784-800-10 MLP at L1 vs the same network in torch.nn: a
    separate script, ``python -m benchmarks.bench_mlp_epoch`` (``--with-mlp-epoch`` here
    runs it after this one).

Threads: NumPy's BLAS and PyTorch both run on ``--threads`` threads (default 1):
``torch.set_num_threads(n)`` for PyTorch and threadpoolctl's ``threadpool_limits(n,
"blas")`` for NumPy's OpenBLAS (threadpoolctl ships with scikit-learn). One thread is
the default because it is the fairest per-core comparison and the most repeatable on a
shared machine; LeNet's small matrix products gain little from more threads anyway.

Timing: ``time.perf_counter`` around each call, warm-up calls first, then ``--repeats``
calls, and the median. Absolute times depend on the machine and its load; the ratios
measured in one run are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.timing import interleaved_times, ratio_stats
from utils import import_lesson
from utils.cli import limit_blas_threads

conv = import_lesson("03_CNN_LeNet.numpy.conv_numpy")

TARGET_RATIO = 3.0  # L1 may take at most 3x the faster PyTorch setting's time
# (name, C_in, C_out, kernel, image size): LeNet-5's two convolutions
LENET_CONVS = [("C1", 1, 6, 5, 32), ("C3", 6, 16, 5, 14)]


def set_threads(threads: int) -> contextlib.AbstractContextManager:
    """Run PyTorch and NumPy's BLAS on ``threads`` threads; returns the BLAS limit's context.

    Inputs:  threads >= 1.
    Returns: the context manager of ``utils.cli.limit_blas_threads``.
    """
    torch.set_num_threads(threads)
    return limit_blas_threads(threads)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    Inputs:  fn - the work to time; repeats >= 1; warmup >= 0.
    Returns: seconds (float).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _problem(batch: int, c_in: int, c_out: int, kernel: int, size: int, dtype, seed: int = 0):
    """A Conv2D layer, an input batch and an upstream gradient for it."""
    rng = np.random.default_rng(seed)
    layer = conv.Conv2D(c_in, c_out, kernel, init="torch", rng=seed, dtype=dtype)
    x = rng.standard_normal((batch, c_in, size, size)).astype(dtype)
    dout = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    return layer, x, dout


def time_l1(layer, x: np.ndarray, dout: np.ndarray, repeats: int) -> float:
    """Median seconds of one L1 forward + backward (dx, dW, db)."""
    def step():
        layer.forward(x)
        layer.backward(dout)
    return median_seconds(step, repeats)


def torch_step(layer, x: np.ndarray, dout: np.ndarray, mkldnn: bool) -> Callable[[], None]:
    """One F.conv2d forward + autograd backward (dx, dW, db) with the layer's weights.

    ``mkldnn`` picks PyTorch's CPU convolution: oneDNN (True, the default) or its other,
    "native" kernels (False: NNPACK or im2col + BLAS, depending on dtype and build).
    """
    x_t = torch.tensor(x, requires_grad=True)  # requires_grad: PyTorch computes dx too, as L1
    weight = torch.tensor(layer.W, requires_grad=True)
    bias = torch.tensor(layer.b, requires_grad=True)
    dout_t = torch.from_numpy(dout)

    def step():
        before = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = mkldnn
        try:
            x_t.grad = weight.grad = bias.grad = None
            F.conv2d(x_t, weight, bias).backward(dout_t)
        finally:
            torch.backends.mkldnn.enabled = before

    return step


def time_naive(layer, x: np.ndarray, dout: np.ndarray, repeats: int) -> float:
    """Median seconds of the naive loop forward + backward on the same layer."""
    def step():
        conv.conv2d_naive(x, layer.W, layer.b)
        conv.conv2d_backward_naive(dout, x, layer.W)
    return median_seconds(step, repeats, warmup=1)


def bench_vs_torch(batch: int, dtype, repeats: int) -> list[dict]:
    """Part (a): one row per LeNet convolution."""
    rows = []
    for name, c_in, c_out, kernel, size in LENET_CONVS:
        layer, x, dout = _problem(batch, c_in, c_out, kernel, size, dtype)

        def l1_step(layer=layer, x=x, dout=dout):
            layer.forward(x)
            layer.backward(dout)

        # interleaved rounds: a change of machine load hits all three alike
        times = interleaved_times({"l1": l1_step,
                                   "onednn": torch_step(layer, x, dout, mkldnn=True),
                                   "native": torch_step(layer, x, dout, mkldnn=False)},
                                  repeats, warmup=3)
        l1, onednn, native = (statistics.median(times[k]) for k in ("l1", "onednn", "native"))
        faster = "onednn" if onednn <= native else "native"
        stats = ratio_stats(times, "l1", faster)
        rows.append({"layer": name, "shape": f"{c_in}->{c_out}, {kernel}x{kernel} on {size}x{size}",
                     "l1_ms": 1e3 * l1, "torch_onednn_ms": 1e3 * onednn,
                     "torch_native_ms": 1e3 * native,
                     "faster_torch": "oneDNN" if faster == "onednn" else "native",
                     "ratio_l1_vs_faster_torch": stats.median,
                     "ratio_spread": stats.as_dict(), "summary": stats.summary(),
                     "verdict": stats.verdict(TARGET_RATIO),
                     "target_met": bool(stats.median <= TARGET_RATIO)})
    return rows


def bench_naive(batch_small: int, batch_large: int, dtype, repeats: int) -> list[dict]:
    """Part (b): naive loops vs im2col, per image."""
    rows = []
    for name, c_in, c_out, kernel, size in LENET_CONVS:
        layer, x, dout = _problem(batch_small, c_in, c_out, kernel, size, dtype)
        naive = time_naive(layer, x, dout, max(1, repeats // 10)) / batch_small
        fast_small = time_l1(layer, x, dout, repeats) / batch_small
        layer, x, dout = _problem(batch_large, c_in, c_out, kernel, size, dtype)
        fast_large = time_l1(layer, x, dout, repeats) / batch_large
        rows.append({"layer": name, "naive_ms_per_image": 1e3 * naive,
                     f"im2col_ms_per_image_batch{batch_small}": 1e3 * fast_small,
                     f"im2col_ms_per_image_batch{batch_large}": 1e3 * fast_large,
                     "speedup_same_batch": naive / fast_small,
                     f"speedup_vs_batch{batch_large}": naive / fast_large})
    return rows


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def main(argv: list[str] | None = None) -> dict:
    """Time the L1 convolution against PyTorch and against naive loops; print two tables.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: the results as a dict (also written to --json PATH when given).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for PyTorch AND NumPy's BLAS (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="default: %(default)s")
    parser.add_argument("--naive-batch", type=int, default=2,
                        help="batch of the slow naive loops (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="default: %(default)s")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="float32 is what training uses (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results to this JSON file")
    parser.add_argument("--with-mlp-epoch", action="store_true",
                        help="then run benchmarks.bench_mlp_epoch (part c)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="MNIST's folder for --with-mlp-epoch (random data without it)")
    args = parser.parse_args(argv)
    if min(args.threads, args.batch, args.naive_batch, args.repeats) < 1:
        parser.error("--threads, --batch, --naive-batch and --repeats must be >= 1")
    dtype = np.dtype(args.dtype)

    with set_threads(args.threads):
        vs_torch = bench_vs_torch(args.batch, dtype, args.repeats)
        naive = bench_naive(args.naive_batch, args.batch, dtype, args.repeats)

    print(f"\n(a) L1 NumPy Conv2D vs PyTorch F.conv2d on the CPU: forward + backward (dx, dW, db), "
          f"{args.dtype}, batch {args.batch}, {args.threads} thread(s), median of {args.repeats} "
          "interleaved rounds")
    _print_table(
        ["layer", "shape", "L1 NumPy", "torch oneDNN", "torch native", "L1 / faster torch",
         f"target <= {TARGET_RATIO:g}x"],
        [[r["layer"], r["shape"], f"{r['l1_ms']:.2f} ms", f"{r['torch_onednn_ms']:.2f} ms",
          f"{r['torch_native_ms']:.2f} ms",
          f"{r['ratio_l1_vs_faster_torch']:.2f}x ({r['faster_torch']})",
          r["verdict"]] for r in vs_torch])
    for r in vs_torch:
        print(f"  {r['layer']}: per-round ratios {r['summary']}")
    print(f"\n(b) naive loops vs im2col (both L1), forward + backward, time per image "
          f"(naive on batch {args.naive_batch})")
    small, large = args.naive_batch, args.batch
    _print_table(
        ["layer", "naive", f"im2col (batch {small})", f"im2col (batch {large})",
         "speed-up, same batch", f"speed-up vs batch {large}"],
        [[r["layer"], f"{r['naive_ms_per_image']:.1f} ms",
          f"{r[f'im2col_ms_per_image_batch{small}']:.3f} ms",
          f"{r[f'im2col_ms_per_image_batch{large}']:.3f} ms",
          f"{r['speedup_same_batch']:.0f}x", f"{r[f'speedup_vs_batch{large}']:.0f}x"]
         for r in naive])

    results = {
        "settings": {"threads": args.threads, "batch": args.batch,
                     "naive_batch": args.naive_batch, "repeats": args.repeats,
                     "dtype": args.dtype, "timer": "time.perf_counter, median",
                     "numpy": np.__version__, "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count()},
        "l1_vs_torch": vs_torch,
        "naive_vs_im2col": naive,
        "target_ratio": TARGET_RATIO,
        "target_met": all(r["target_met"] for r in vs_torch),
    }
    if args.with_mlp_epoch:
        mlp_argv = ["--threads", str(args.threads)]
        mlp_argv += ["--data-root", str(args.data_root)] if args.data_root else ["--synthetic"]
        results["mlp_epoch"] = import_lesson("benchmarks.bench_mlp_epoch").main(mlp_argv)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.json}")
    return results


if __name__ == "__main__":
    main()
