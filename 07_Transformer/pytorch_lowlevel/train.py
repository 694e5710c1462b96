"""Train lesson 07's low-level Transformer (L2) on copy or reverse; greedy decoding.

The model, the loss, the schedule and Adam are in transformer_lowlevel.py, the derivations
in ../theory.md. Data: the copy task (``make_copy_task``, tokens from 3 up: 0 = <pad>,
1 = <bos>, 2 = <eos>) with sequences of random lengths, padded; ``--task reverse`` reverses
them. The decoder is trained with teacher forcing (its input is <bos> followed by the
target shifted right) and evaluated by greedy decoding on held-out sequences: exact match
of the whole output.

The default model is small enough for a CPU: 1 encoder and 1 decoder layer, d_model 64,
4 heads, d_ff 128 (84,544 parameters), 400 Adam steps of 64 sequences with warm-up 80 and
the schedule scaled by --lr 0.7. It plots the loss, the learning rate and the
encoder-decoder attention of one held-out example (a diagonal for copy, an anti-diagonal
for reverse).

Run it from the repository root::

    python 07_Transformer/pytorch_lowlevel/train.py               # copy task
    python -m 07_Transformer.pytorch_lowlevel.train --task reverse
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import make_copy_task, make_reverse_task
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)

_model = import_lesson("07_Transformer.pytorch_lowlevel.transformer_lowlevel")
PAD_ID, BOS_ID, EOS_ID, RESERVED = _model.PAD_ID, _model.BOS_ID, _model.EOS_ID, _model.RESERVED
Transformer = _model.Transformer
adam_step, label_smoothed_cross_entropy = _model.adam_step, _model.label_smoothed_cross_entropy
ADAM_BETAS, ADAM_EPS = _model.ADAM_BETAS, _model.ADAM_EPS
noam_lr, zero_grad = _model.noam_lr, _model.zero_grad


# --------------------------------------------------------------------------------------
# 1. Data: copy / reverse with random lengths, padded
# --------------------------------------------------------------------------------------

TASKS = {"copy": make_copy_task, "reverse": make_reverse_task}


def make_sequences(task: str, n: int, min_len: int, max_len: int, vocab: int,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and target token rows of random lengths in [min_len, max_len], padded.

    Inputs:  task "copy" or "reverse"; n sequences; vocab - the full vocabulary size (data
             tokens are 3..vocab-1); seed
    Returns: src (n, max_len) int64 padded with <pad>; tgt (n, max_len + 1) int64: the
             target followed by <eos>, then <pad>
    Each length gets its own call of the task generator (``utils.data_loaders``), so the
    target is that of the task for the real, unpadded sequence.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    src = np.full((n, max_len), PAD_ID, dtype=np.int64)
    tgt = np.full((n, max_len + 1), PAD_ID, dtype=np.int64)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        s, t = TASKS[task](len(rows), int(length), vocab, seed=seed * 1000 + int(length),
                           reserved=RESERVED)
        src[rows, :length] = s
        tgt[rows, :length] = t
        tgt[rows, length] = EOS_ID
    return torch.from_numpy(src), torch.from_numpy(tgt)


def teacher_forcing_input(tgt: torch.Tensor) -> torch.Tensor:
    """The decoder input: <bos> followed by the target shifted right by one.

    Inputs: tgt (B, T) int64; Returns (B, T) int64 - position t sees targets < t only
    """
    bos = torch.full_like(tgt[:, :1], BOS_ID)
    return torch.cat([bos, tgt[:, :-1]], dim=1)  # (B, T)


def exact_match(predicted: torch.Tensor, tgt: torch.Tensor) -> float:
    """Fraction of rows whose prediction equals the target everywhere (incl. <eos>, padding)."""
    return float((predicted == tgt).all(dim=1).float().mean())


# --------------------------------------------------------------------------------------
# 2. Training and the script
# --------------------------------------------------------------------------------------


def train(model: Transformer, src: torch.Tensor, tgt: torch.Tensor, *, steps: int,
          batch_size: int, warmup: int, lr_factor: float = 1.0, label_smoothing: float = 0.1,
          seed: int = 0, progress: bool = False) -> dict[str, list[float]]:
    """Teacher-forced training with label smoothing, the warm-up schedule and Adam.

    Inputs:  model; src (N, S), tgt (N, T) int64 on the model's device; steps - optimiser
             steps; batch_size; warmup, lr_factor - the schedule (noam_lr); seed - batch order
    Returns: {"loss": per-step training loss, "lr": per-step learning rate}
    """
    params = model.parameters()
    order_rng = torch.Generator().manual_seed(seed)
    n, state = src.shape[0], None
    history: dict[str, list[float]] = {"loss": [], "lr": []}
    model.train()
    bar = tqdm(range(1, steps + 1), desc="Transformer (L2)", disable=not progress, leave=False)
    order, cursor = torch.randperm(n, generator=order_rng), 0
    for step in bar:
        if cursor + batch_size > n:  # a new epoch: reshuffle
            order, cursor = torch.randperm(n, generator=order_rng), 0
        rows = order[cursor:cursor + batch_size].to(src.device)
        cursor += batch_size
        zero_grad(params)
        logits = model(src[rows], teacher_forcing_input(tgt[rows]))  # (B, T, V)
        loss = label_smoothed_cross_entropy(logits, tgt[rows], label_smoothing, model.pad_id)
        loss.backward()
        lr = noam_lr(step, model.d_model, warmup, lr_factor)
        state = adam_step(params, lr, betas=ADAM_BETAS, eps=ADAM_EPS, state=state)  # Sec. 5.3
        history["loss"].append(float(loss.detach()))
        history["lr"].append(lr)
        if not math.isfinite(history["loss"][-1]):
            raise FloatingPointError(f"the loss became {history['loss'][-1]} at step {step}; "
                                     "lower --lr-factor")
        if step % 50 == 0:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    model.eval()
    return history


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level Transformer on copy (default) or reverse; greedy-decode held-out
    sequences.

    Returns: {"exact_match" (held-out, greedy), "token_accuracy" (held-out, greedy),
              "final_loss" (mean of the last 20 steps), "first_train_loss" (the first
              step's), "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="Encoder-decoder Transformer in low-level PyTorch on a generated task "
                    "(copy / reverse of random-length sequences), label smoothing, the warm-up "
                    "schedule, hand-written Adam. Training runs for --steps optimiser steps; "
                    "--lr multiplies the schedule of Equation 3.")
    add_common_args(parser, datasets=("generated",), batch_size=64, lr=0.7,
                    out="runs/07_Transformer/l2_transformer", counts_steps=True, threads=1)
    parser.add_argument("--task", choices=sorted(TASKS), default="copy",
                        help="default: %(default)s")
    parser.add_argument("--steps", type=positive_int, default=400,
                        help="optimiser steps (default: %(default)s)")
    parser.add_argument("--warmup", type=positive_int, default=80,
                        help="warm-up steps of the schedule (default: %(default)s; the paper: "
                             "4000)")
    parser.add_argument("--vocab", type=positive_int, default=13,
                        help="vocabulary incl. the 3 special tokens (default: %(default)s)")
    parser.add_argument("--min-len", type=positive_int, default=3,
                        help="shortest sequence (default: %(default)s)")
    parser.add_argument("--max-len", type=positive_int, default=10,
                        help="longest sequence (default: %(default)s)")
    parser.add_argument("--d-model", type=positive_int, default=64,
                        help="model width (default: %(default)s)")
    parser.add_argument("--heads", type=positive_int, default=4,
                        help="attention heads, must divide --d-model (default: %(default)s)")
    parser.add_argument("--layers", type=positive_int, default=1,
                        help="encoder layers = decoder layers (default: %(default)s; the "
                             "paper: 6)")
    parser.add_argument("--d-ff", type=positive_int, default=128,
                        help="feed-forward width (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="residual dropout (default: %(default)s; the paper: 0.1)")
    parser.add_argument("--smoothing", type=probability, default=0.1,
                        help="label smoothing (default: %(default)s)")
    parser.add_argument("--n-train", type=positive_int, default=4000,
                        help="training sequences (default: %(default)s)")
    parser.add_argument("--n-test", type=positive_int, default=500,
                        help="held-out sequences (default: %(default)s)")
    args = parse_args(parser, argv)
    if args.max_len < args.min_len:
        parser.error(f"--max-len ({args.max_len}) must be >= --min-len ({args.min_len})")
    if args.vocab <= RESERVED:
        parser.error(f"--vocab must be > {RESERVED}: tokens 0, 1, 2 are <pad>, <bos>, <eos>")
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: data, model, training, greedy decoding, plots."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    src, tgt = make_sequences(args.task, args.n_train, args.min_len, args.max_len, args.vocab,
                              seed=args.seed)
    src_test, tgt_test = make_sequences(args.task, args.n_test, args.min_len, args.max_len,
                                        args.vocab, seed=args.seed + 1)
    seen = {tuple(r.tolist()) for r in src}  # keep only test rows never seen in training
    keep = torch.tensor([tuple(r.tolist()) not in seen for r in src_test])
    src_test, tgt_test = src_test[keep], tgt_test[keep]
    print(f"{args.task}: {src.shape[0]} training, {src_test.shape[0]} held-out sequences, "
          f"lengths {args.min_len}..{args.max_len}, {args.vocab - RESERVED} data tokens")

    model = Transformer(args.vocab, args.d_model, args.heads, args.layers, args.layers,
                        args.d_ff, args.dropout, max_len=args.max_len + 1, seed=args.seed,
                        device=device)
    started = time.perf_counter()
    history = train(model, src.to(device), tgt.to(device), steps=args.steps,
                    batch_size=args.batch_size, warmup=args.warmup, lr_factor=args.lr,
                    label_smoothing=args.smoothing, seed=args.seed, progress=args.progress)
    seconds = time.perf_counter() - started
    predicted = model.greedy_decode(src_test.to(device), tgt_test.shape[1]).cpu()
    match = exact_match(predicted, tgt_test)
    real = tgt_test != PAD_ID
    token_accuracy = float((predicted == tgt_test)[real].float().mean())
    final_loss = float(np.mean(history["loss"][-20:]))
    print(f"Transformer (L2) on {args.task}: held-out exact match {match:.4f}, token accuracy "
          f"{token_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s of training on "
          f"{device} ({model.num_parameters():,} parameters)")
    for row in range(2):
        print(f"  src {src_test[row].tolist()} -> {predicted[row].tolist()}")
    _plot(history, model, src_test[:1].to(device), out, args.task)
    print(f"plots written to {out}")
    return {"exact_match": match, "token_accuracy": token_accuracy, "final_loss": final_loss,
            "first_train_loss": history["loss"][0], "train_seconds": seconds}


def _plot(history, model: Transformer, src: torch.Tensor, out, task: str) -> None:
    """Loss and learning-rate curves; the first decoder layer's attention over the source
    on one example (a diagonal for copy, an anti-diagonal for reverse, in some head)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.visualization import plot_curves

    plot_curves({"training loss": history["loss"]}, path=out / "loss.png",
                xlabel="step", ylabel="label-smoothed cross-entropy",
                title=f"L2 Transformer on {task}")
    plot_curves({"learning rate": history["lr"]}, path=out / "lr.png", xlabel="step", ylabel="lr",
                title="warm-up schedule (Equation 3)")
    with torch.no_grad():  # one held-out example, through the model's own greedy output
        predicted = model.greedy_decode(src, model.max_len)
        model(src, teacher_forcing_input(predicted))
    weights = model.children["decoder.0"].last_cross_attention[0]  # (h, T, S)
    src_len = int((src[0] != PAD_ID).sum())
    row = predicted[0].tolist()
    out_len = row.index(EOS_ID) + 1 if EOS_ID in row else src_len
    heads = weights[:, :out_len, :src_len].cpu().numpy()  # (h, output steps, source tokens)
    fig, axes = plt.subplots(1, heads.shape[0], figsize=(3 * heads.shape[0], 3))
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(heads[i], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {i}")
        ax.set_xlabel("source position")
        ax.set_ylabel("output step")
    fig.suptitle(f"decoder layer 1, encoder-decoder attention ({task})")
    fig.tight_layout()
    fig.savefig(out / "attention.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
