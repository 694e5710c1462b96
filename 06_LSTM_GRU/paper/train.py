"""Train the L3 LSTM / GRU / RNN (lesson 06) on the adding problem; plot what they learnt.

The modules are in ``rnn_paper.py``, the equations in ../theory.md. The adding problem
(Hochreiter & Schmidhuber 1997, Section 5, experiment 4; the version of Le et al. 2015,
theory.md 5.1): two channels, random values and two markers, the target is the sum of the
two marked values; predicting the mean (1) gives an MSE of about 0.167. Every step draws a
fresh batch; Adam with gradient clipping, optionally a cosine schedule. The plots: the test
MSE against the step, ||dL/dh_t|| against t before and after training, and the LSTM's
gates over one sequence. Run it from the repository root::

    python 06_LSTM_GRU/paper/train.py                         # quick: LSTM, T = 30
    python 06_LSTM_GRU/paper/train.py --cell lstm rnn --seq-len 100 --steps 3000 \\
        --schedule cosine
    python -m 06_LSTM_GRU.paper.train --cell gru --seq-len 50

The other tasks have their own scripts: ``train_sentiment.py`` (IMDB reviews) and
``train_char_lm.py`` (Tiny Shakespeare).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    non_negative_float,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import make_adding_problem
from utils.training_utils import torch_threads  # n CPU threads, restored after

rnn_paper = import_lesson("06_LSTM_GRU.paper.rnn_paper")
AddingModel, CELLS, LSTM = rnn_paper.AddingModel, rnn_paper.CELLS, rnn_paper.LSTM


# --------------------------------------------------------------------------------------
# Training on fresh batches
# --------------------------------------------------------------------------------------


def train_adding(cell: str, seq_len: int, *, steps: int, batch_size: int, lr: float,
                 hidden_size: int, clip: float, seed: int, n_test: int = 1000,
                 eval_every: int = 50, cosine: bool = False, time_budget: float = 0.0,
                 progress: bool = False) -> dict:
    """Train one cell on fresh adding-problem batches; returns model, curves and test MSE.

    Every step draws a new batch (the task is generated), as in the paper; the test set
    of ``n_test`` sequences is fixed (seed + 1).
    """
    torch.manual_seed(seed)
    model = AddingModel(cell, hidden_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # a cosine-decaying rate: large steps to find the solution, small ones to make it precise
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    X_test, y_test = (torch.from_numpy(a) for a in make_adding_problem(n_test, seq_len, seed + 1))
    baseline = float(((y_test - 1.0) ** 2).mean())  # predict 1 (the mean) always
    curve_steps, curve_mse = [], []
    bar = tqdm(total=steps, desc=f"{cell} T={seq_len}", leave=False) if progress else None
    started = time.perf_counter()
    for step in range(1, steps + 1):
        X, y = make_adding_problem(batch_size, seq_len, seed=seed * 1_000_003 + step)
        loss = ((model(torch.from_numpy(X)) - torch.from_numpy(y)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)  # keep early spikes bounded
        opt.step()
        if sched is not None:
            sched.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                mse = float(((model(X_test) - y_test) ** 2).mean())
            curve_steps.append(step)
            curve_mse.append(mse)
            if bar is not None:
                bar.set_postfix(test_mse=f"{mse:.4f}")
        if bar is not None:
            bar.update(1)
        if time_budget and time.perf_counter() - started > time_budget:
            if curve_steps[-1:] != [step]:
                with torch.no_grad():
                    curve_mse.append(float(((model(X_test) - y_test) ** 2).mean()))
                curve_steps.append(step)
            break
    if bar is not None:
        bar.close()
    return {"model": model, "steps": curve_steps, "mse": curve_mse, "test_mse": curve_mse[-1],
            "baseline": baseline, "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------
# Pictures: gate activations over time, and how far back the gradient reaches
# --------------------------------------------------------------------------------------


def lstm_gate_trace(lstm: LSTM, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Gate activations of the first layer (forward direction) for ONE sequence.

    Inputs: lstm (batch_first or not), x (T, D) one sequence. Returns: {"i", "f", "o", "c"}
    each (T, H) float arrays, recomputed step by step with the module's own weights.
    """
    w_ih, w_hh, b_ih, b_hh = lstm._layer_params(0, "")
    H = lstm.hidden_size
    h = x.new_zeros(1, H)
    c = x.new_zeros(1, H)
    trace = {k: [] for k in "ifoc"}
    with torch.no_grad():
        for t in range(x.shape[0]):
            gates = x[t: t + 1] @ w_ih.t() + h @ w_hh.t()
            if b_ih is not None:
                gates = gates + b_ih + b_hh
            i, f, g, o = gates.chunk(4, dim=-1)
            i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
            c = f * c + i * torch.tanh(g)
            h = o * torch.tanh(c)
            for k, v in zip("ifoc", (i, f, o, c)):
                trace[k].append(v[0].numpy().copy())
    return {k: np.stack(v) for k, v in trace.items()}


def hidden_gradient_norms(model: AddingModel, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """||dL/dh_t|| (mean over the batch) for every t: how much the loss still "sees" step t.

    Runs the first layer step by step with each h_t kept as a leaf of the graph, so that
    autograd reports the gradient reaching it through the recurrence. Returns (T,).
    """
    rnn = model.rnn
    w_ih, w_hh, b_ih, b_hh = rnn._layer_params(0, "")
    N, T, _ = X.shape
    xp = X @ w_ih.t() + b_ih  # (N, T, G*H)
    state = tuple(X.new_zeros(N, rnn.hidden_size) for _ in range(2 if rnn.mode == "LSTM" else 1))
    hs = []
    for t in range(T):
        state = rnn._step(xp[:, t], state, w_hh, b_hh)
        state[0].retain_grad()
        hs.append(state[0])
    loss = ((model.head(state[0]).squeeze(-1) - y) ** 2).mean()
    loss.backward()
    return np.array([float(h.grad.norm(dim=1).mean()) for h in hs])


def plot_adding_curves(curves: dict, T: int, path, batch_size: int) -> None:
    """Test MSE against training step, one line per run, with the baseline and 1 % of it.

    Inputs: curves {label: {"steps": [...], "mse": [...], "baseline": float}} (what the
    script writes to curves_T<T>.json; curves of several runs can be merged).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in curves.items():
        ax.plot(r["steps"], r["mse"], label=label)
    base = next(iter(curves.values()))["baseline"]
    ax.axhline(base, color="grey", ls="--", label=f"always predict 1: {base:.3f}")
    ax.axhline(0.01 * base, color="grey", ls=":", label="1 % of that")
    ax.set_yscale("log")
    ax.set_xlabel(f"training step (batch of {batch_size})")
    ax.set_ylabel("test MSE")
    ax.set_title(f"Adding problem, T = {T}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gradient_norms(pairs: dict, X: torch.Tensor, y: torch.Tensor, path) -> None:
    """||dL/dh_t|| against t (log scale) for untrained and trained models.

    Inputs: pairs {cell name: (model at initialisation, trained model)}, AddingModel each;
    X (N, T, 2), y (N,) the sequences to average over; path of the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = X.shape[1]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for cell, (fresh, trained) in pairs.items():
        # + 1e-30: a gradient that underflowed to 0 still shows, at the bottom of the plot
        ax.semilogy(hidden_gradient_norms(trained, X, y) + 1e-30, label=f"{cell.upper()}, trained")
        ax.semilogy(hidden_gradient_norms(fresh, X, y) + 1e-30, ls="--",
                    label=f"{cell.upper()}, at initialisation")
    ax.set_xlabel("time step t")
    ax.set_ylabel(f"mean ||dL/dh_t|| over {X.shape[0]} sequences")
    ax.set_title(f"Gradient reaching h_t from the loss at t = {T}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_lstm_gates(trace: dict[str, np.ndarray], marks: np.ndarray, path) -> None:
    """The input, forget and output gates and the cell of every unit over one sequence.

    Inputs: trace from ``lstm_gate_trace`` ({"i", "f", "o", "c"}, each (T, H)); marks - the
    time steps to draw as red lines (the adding problem's two marked inputs); path - PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(7, 8), sharex=True)
    for ax, k, title in zip(axes, "ifoc", ("input gate i", "forget gate f",
                                          "output gate o", "cell c")):
        vmin, vmax = (0, 1) if k != "c" else (None, None)
        im = ax.imshow(trace[k].T, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        for m in marks:
            ax.axvline(m, color="red", lw=0.8)
        ax.set_ylabel(f"{title}\nunit")
        fig.colorbar(im, ax=ax)
    axes[-1].set_xlabel("time step (red: the two marked inputs)")
    fig.suptitle(f"LSTM gates on one adding sequence, T = {len(trace['i'])}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train LSTM / GRU / RNN on the adding problem; plot the learning curves.

    Returns: {"test_mse" (of the first --cell), "baseline_mse" (always predict 1),
              "mse_ratio" (test_mse / baseline_mse), "<cell>_test_mse" for each cell,
              "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="The adding problem (Hochreiter & Schmidhuber 1997, experiment 4) with our "
                    "LSTM / GRU / vanilla RNN (explicit time loop), Adam + gradient clipping.")
    add_common_args(parser, datasets=("adding",), counts_steps=True, batch_size=64, lr=1e-2,
                    out="runs/06_LSTM_GRU/paper", devices=("cpu",), threads=1)
    parser.add_argument("--cell", nargs="+", choices=tuple(CELLS), default=["lstm"],
                        help="one or more cells, trained one after the other (default: lstm)")
    parser.add_argument("--seq-len", type=positive_int, default=30,
                        help="T, >= 2 (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=400,
                        help="training steps (batches; default: %(default)s)")
    parser.add_argument("--hidden", type=positive_int, default=64,
                        help="hidden size (default: %(default)s)")
    parser.add_argument("--clip", type=positive_float, default=1.0,
                        help="gradient-norm clip (default: %(default)s)")
    parser.add_argument("--eval-every", type=positive_int, default=50,
                        help="test MSE every this many steps (default: %(default)s)")
    parser.add_argument("--schedule", choices=("cosine", "none"), default="none",
                        help="learning-rate schedule over --steps (default: %(default)s)")
    parser.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        help="stop each cell's training after this many seconds (0: no limit)")
    args = parse_args(parser, argv)
    if args.seq_len < 2:
        parser.error(f"--seq-len must be >= 2 (one marker in each half), got {args.seq_len}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: each cell trained in turn, its weights saved, then the plots."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    results = {}
    for cell in args.cell:
        r = train_adding(cell, args.seq_len, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, hidden_size=args.hidden, clip=args.clip, seed=args.seed,
                         eval_every=args.eval_every, cosine=args.schedule == "cosine",
                         time_budget=args.time_budget, progress=args.progress)
        results[cell] = r
        torch.save(r["model"].state_dict(), out / f"adding_{cell}_T{args.seq_len}.pt")
        print(f"{cell.upper()} T={args.seq_len}: test MSE curve "
              + " ".join(f"{s}:{m:.4f}" for s, m in zip(r["steps"], r["mse"])))
        print(f"{cell.upper()} T={args.seq_len}: test MSE {r['test_mse']:.5f} "
              f"(baseline {r['baseline']:.4f}, ratio {r['test_mse'] / r['baseline']:.4f}) "
              f"after {r['steps'][-1]} steps, {r['seconds']:.1f} s")
    first = results[args.cell[0]]
    metrics = {"test_mse": first["test_mse"], "baseline_mse": first["baseline"],
               "mse_ratio": first["test_mse"] / first["baseline"],
               "train_seconds": sum(r["seconds"] for r in results.values())}
    metrics.update({f"{c}_test_mse": r["test_mse"] for c, r in results.items()})
    _plots(results, args, out)
    return metrics


def _plots(results: dict, args, out) -> None:
    """The learning curves (and their JSON), the gradient norms and the LSTM's gates."""
    T = args.seq_len
    curves = {f"{cell.upper()} (H={args.hidden}, lr={args.lr:g})":
              {"steps": r["steps"], "mse": r["mse"], "baseline": r["baseline"],
               "seconds": r["seconds"]} for cell, r in results.items()}
    (out / f"curves_T{T}.json").write_text(json.dumps(curves))
    plot_adding_curves(curves, T, out / f"adding_T{T}.png", args.batch_size)

    X, y = (torch.from_numpy(a) for a in make_adding_problem(64, T, seed=args.seed + 2))
    pairs = {}
    for cell, r in results.items():
        torch.manual_seed(args.seed)  # the same draw as train_adding's initial weights
        pairs[cell] = (AddingModel(cell, args.hidden), r["model"])
    plot_gradient_norms(pairs, X, y, out / f"grad_norm_T{T}.png")

    if "lstm" in results:
        trace = lstm_gate_trace(results["lstm"]["model"].rnn, X[0])
        marks = np.flatnonzero(X[0, :, 1].numpy())
        plot_lstm_gates(trace, marks, out / f"lstm_gates_T{T}.png")
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
