"""How fast is the L1 NumPy LSTM? Forward + backward against torch.nn.LSTM on the CPU.

Run from the repository root::

    python -m benchmarks.bench_lstm                       # batch 32, T = 100, D = H = 128
    python -m benchmarks.bench_lstm --threads 2 --json runs/bench_lstm.json

What is timed: one forward pass over the whole sequence and one backward pass (BPTT:
dL/dx, dL/dh0, dL/dc0 and the four parameter gradients) of ``LSTM`` from
``06_LSTM_GRU/numpy/rnn_numpy.py``, against ``torch.nn.LSTM(batch_first=True)`` + autograd
with the same weights, inputs and upstream gradient (dL/dhs), float32 by default. The
target: L1 at most 3x PyTorch's time. PyTorch's CPU LSTM is a C++ loop over the steps
with one fused matrix product per step; the NumPy LSTM does the same matrix products
(one for the input projections of all steps, one per step for the recurrence) but pays
Python's overhead for each elementwise gate operation.

Threads: NumPy's BLAS and PyTorch both run on ``--threads`` threads (default 1):
``torch.set_num_threads(n)`` and threadpoolctl's ``threadpool_limits(n, "blas")``.

Timing: ``time.perf_counter`` around each call; warm-up calls first, then ``--repeats``
rounds, each timing L1 then PyTorch (interleaved, so a change in the machine's load hits
both), and the median of each. Absolute times depend on the machine and its load; the
ratio measured in one run is what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import interleaved_times, ratio_stats
from utils import import_lesson
from utils.cli import limit_blas_threads

rnn = import_lesson("06_LSTM_GRU.numpy.rnn_numpy")

TARGET_RATIO = 3.0  # L1 may take at most 3x PyTorch's time


def make_problem(batch: int, seq_len: int, input_size: int, hidden: int, dtype, seed: int = 0):
    """An L1 LSTM, the same weights in nn.LSTM, an input batch and an upstream gradient.

    Returns: (layer, torch_lstm, x (N, T, D), dhs (N, T, H)) in ``dtype``.
    """
    layer = rnn.LSTM(input_size, hidden, seed=seed, dtype=dtype)
    torch_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    reference = torch.nn.LSTM(input_size, hidden, batch_first=True).to(torch_dtype)
    with torch.no_grad():
        for name, value in layer.params.items():  # W_ih -> weight_ih_l0, b_hh -> bias_hh_l0
            torch_name = name.replace("W_", "weight_").replace("b_", "bias_") + "_l0"
            getattr(reference, torch_name).copy_(torch.from_numpy(value))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, seq_len, input_size)).astype(dtype)
    dhs = rng.standard_normal((batch, seq_len, hidden)).astype(dtype)
    return layer, reference, x, dhs


def l1_step(layer, x: np.ndarray, dhs: np.ndarray):
    """One L1 forward + backward; returns the work to time as a closure."""
    def step():
        layer.forward(x)
        layer.backward(dhs)
    return step


def torch_step(reference, x: np.ndarray, dhs: np.ndarray):
    """One nn.LSTM forward + autograd backward (dx and every parameter gradient)."""
    x_t = torch.tensor(x, requires_grad=True)  # requires_grad: PyTorch computes dx too, as L1
    dhs_t = torch.from_numpy(dhs)

    def step():
        x_t.grad = None
        reference.zero_grad(set_to_none=True)
        out, _ = reference(x_t)
        out.backward(dhs_t)
    return step


def check_same_numbers(layer, reference, x: np.ndarray, dhs: np.ndarray) -> float:
    """Largest difference between the two implementations' outputs and gradients (sanity)."""
    l1_out = layer.forward(x)
    l1_dx = layer.backward(dhs)
    x_t = torch.tensor(x, requires_grad=True)
    reference.zero_grad(set_to_none=True)
    out, _ = reference(x_t)
    out.backward(torch.from_numpy(dhs))
    diffs = [np.abs(l1_out - out.detach().numpy()).max(), np.abs(l1_dx - x_t.grad.numpy()).max()]
    for name, grad in layer.grads.items():
        torch_name = name.replace("W_", "weight_").replace("b_", "bias_") + "_l0"
        diffs.append(np.abs(grad - getattr(reference, torch_name).grad.numpy()).max())
    return float(max(diffs))


def main(argv: list[str] | None = None) -> dict:
    """Time the L1 NumPy LSTM's forward + backward against torch.nn.LSTM; print the ratio.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: the results as a dict (also written to --json PATH when given).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--seq-len", type=int, default=100, help="default: %(default)s")
    parser.add_argument("--hidden", type=int, default=128, help="default: %(default)s")
    parser.add_argument("--input-size", type=int, default=None,
                        help="D, the input features (default: the hidden size)")
    parser.add_argument("--repeats", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for PyTorch AND NumPy's BLAS (default: %(default)s)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="float32 is what training uses (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    input_size = args.hidden if args.input_size is None else args.input_size
    if min(args.batch, args.seq_len, args.hidden, input_size, args.repeats, args.threads) < 1:
        parser.error("--batch, --seq-len, --hidden, --input-size, --repeats and --threads "
                     "must be >= 1")
    dtype = np.dtype(args.dtype)

    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with limit_blas_threads(args.threads):
            layer, reference, x, dhs = make_problem(args.batch, args.seq_len, input_size,
                                                    args.hidden, dtype)
            max_diff = check_same_numbers(layer, reference, x, dhs)
            rounds = interleaved_times({"l1": l1_step(layer, x, dhs),
                                        "torch": torch_step(reference, x, dhs)}, args.repeats)
    finally:
        torch.set_num_threads(before)

    times = {name: statistics.median(t) for name, t in rounds.items()}
    stats = ratio_stats(rounds, "l1", "torch")
    ratio = stats.median
    print(f"LSTM forward + backward, batch {args.batch}, T = {args.seq_len}, D = {input_size}, "
          f"H = {args.hidden}, {args.dtype}, {args.threads} thread(s), median of "
          f"{args.repeats} interleaved rounds")
    print(f"  L1 NumPy LSTM     {1e3 * times['l1']:8.2f} ms")
    print(f"  torch.nn.LSTM     {1e3 * times['torch']:8.2f} ms")
    print(f"  ratio L1 / torch  {ratio:8.2f}x   (target <= {TARGET_RATIO:g}x: "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"  per-round ratios: {stats.summary()}")
    print(f"  largest difference between the two (outputs and gradients): {max_diff:.2e}")
    results = {
        "settings": {"batch": args.batch, "seq_len": args.seq_len, "input_size": input_size,
                     "hidden": args.hidden, "dtype": args.dtype, "threads": args.threads,
                     "repeats": args.repeats, "timer": "time.perf_counter, median, interleaved",
                     "numpy": np.__version__, "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count()},
        "l1_ms": 1e3 * times["l1"], "torch_ms": 1e3 * times["torch"],
        "ratio_l1_vs_torch": ratio, "ratio_spread": stats.as_dict(),
        "target_ratio": TARGET_RATIO,
        "target_met": bool(ratio <= TARGET_RATIO), "max_abs_difference": max_diff,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
