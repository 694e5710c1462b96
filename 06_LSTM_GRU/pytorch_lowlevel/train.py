"""Train the low-level PyTorch RNN / LSTM / GRU (lesson 06, Level 2) on the adding problem.

The cells and sequences are in ``rnn_lowlevel.py``, the equations in ../theory.md. Every
step draws a fresh batch of the adding problem (Hochreiter & Schmidhuber 1997, experiment
4); the loop is written out: zero_grad, loss, backward, the hand-written clipping by the
global norm, lesson 02's ``adam_step``. Run it from the repository root::

    python 06_LSTM_GRU/pytorch_lowlevel/train.py
    python 06_LSTM_GRU/pytorch_lowlevel/train.py --cell gru --seq-len 50 --steps 800
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from utils import import_lesson
from utils.cli import (
    add_common_args,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import make_adding_problem
from utils.training_utils import torch_threads  # n CPU threads, restored after
from utils.visualization import plot_curves

rnn_lowlevel = import_lesson("06_LSTM_GRU.pytorch_lowlevel.rnn_lowlevel")
AddingRegressor, clip_grad_norm = rnn_lowlevel.AddingRegressor, rnn_lowlevel.clip_grad_norm
adam_step, zero_grad = rnn_lowlevel.adam_step, rnn_lowlevel.zero_grad  # lesson 02's


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train on the adding problem with the hand-written clipping and Adam step.

    Returns: {"test_mse", "baseline_mse" (always predict 1), "mse_ratio", "train_seconds"}.
    """
    parser = argparse.ArgumentParser(
        description="The adding problem with an RNN / LSTM / GRU built from tensors "
                    "(hand-written clipping and Adam).")
    add_common_args(parser, datasets=("adding",), batch_size=64, lr=1e-2,
                    out="runs/06_LSTM_GRU/lowlevel", devices=("cpu",), counts_steps=True,
                    threads=1)
    parser.add_argument("--cell", choices=tuple(rnn_lowlevel.GATES), default="lstm")
    parser.add_argument("--seq-len", type=positive_int, default=20,
                        help="T, the sequence length, >= 2 (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="training steps (default: %(default)s)")
    parser.add_argument("--hidden", type=positive_int, default=32, help="default: %(default)s")
    parser.add_argument("--clip", type=positive_float, default=1.0,
                        help="clip the global gradient norm to this (default: %(default)s)")
    args = parse_args(parser, argv)
    if args.seq_len < 2:
        parser.error(f"--seq-len must be >= 2 (one marker in each half), got {args.seq_len}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    """The body of ``main``: fresh batches every step, the loop written out, the test MSE."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    model = AddingRegressor(args.cell, args.hidden, seed=args.seed)
    state = None  # Adam's moments
    X_test, y_test = (torch.from_numpy(a) for a in make_adding_problem(1000, args.seq_len,
                                                                     seed=args.seed + 1))
    baseline = float(((y_test - 1) ** 2).mean())
    losses, norms = [], []
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        X, y = (torch.from_numpy(a) for a in make_adding_problem(
            args.batch_size, args.seq_len, seed=args.seed * 1_000_003 + step))
        loss = ((model(X) - y) ** 2).mean()
        zero_grad(model.parameters())
        loss.backward()
        norms.append(float(clip_grad_norm(model.parameters(), args.clip)))
        state = adam_step(model.parameters(), args.lr, state=state)
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - started
    with torch.no_grad():
        test_mse = float(((model(X_test) - y_test) ** 2).mean())
    print(f"{args.cell.upper()} (L2) adding problem T={args.seq_len}: test MSE {test_mse:.5f}, "
          f"baseline {baseline:.4f} (ratio {test_mse / baseline:.4f}), {args.steps} steps in "
          f"{seconds:.1f} s")
    plot_curves({"training MSE": losses, "gradient norm before clipping": norms},
                path=out / "loss.png", xlabel="step", logy=True,
                title=f"L2 {args.cell.upper()}, adding problem T={args.seq_len}")
    return {"test_mse": test_mse, "baseline_mse": baseline, "mse_ratio": test_mse / baseline,
            "train_seconds": seconds}


if __name__ == "__main__":
    main()
