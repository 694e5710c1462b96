"""Train a small low-level GPT on characters: the generated language of ``corpus.py`` (the
offline default) or Tiny Shakespeare; print the held-out loss (nats and bits per character)
next to the unigram baseline and the language's floor, plot the losses, print a sample.

    python 09_GPT/pytorch_lowlevel/train.py
    python -m 09_GPT.pytorch_lowlevel.train --dataset shakespeare --data-root DIR

The model is ``gpt_lowlevel.py``. Each step draws random windows of max_len + 1 characters
from the training text, as nanoGPT does (inputs x = text[i : i + T], targets y = text[i + 1 :
i + T + 1]), and takes one hand-written AdamW step after clipping the gradient norm, on a
linear warm-up then cosine schedule.
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
    data_errors,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.training_utils import get_device, seed_everything, torch_threads

gpt = import_lesson("09_GPT.pytorch_lowlevel.gpt_lowlevel")
corpus = import_lesson("09_GPT.pytorch_lowlevel.corpus")

# per dataset: the generated language trains in about a minute on one CPU thread; on Tiny
# Shakespeare nanoGPT's CPU configuration (4 x 128, 4 heads, context 64, batch 12, lr 1e-3)
DATASET_DEFAULTS = {
    "generated": {"steps": 800, "batch_size": 32, "lr": 3e-3, "max_len": 64, "d_model": 64,
                  "layers": 2, "warmup": 30},
    "shakespeare": {"steps": 2000, "batch_size": 12, "lr": 1e-3, "max_len": 64, "d_model": 128,
                    "layers": 4, "warmup": 100},
}


def load_text(args) -> tuple[str, str, str, float]:
    """(train text, held-out text, vocabulary, floor in nats per character or NaN)."""
    if args.dataset == "generated":
        train = corpus.generate_text(args.n_train, seed=args.seed)
        val = corpus.generate_text(args.n_val, seed=args.seed + 1_000_003)
        return train, val, corpus.VOCAB, corpus.entropy_per_char(val)
    from utils.data_loaders import load_tiny_shakespeare

    with data_errors(hint="the default --dataset generated needs no download"):
        text = load_tiny_shakespeare(args.data_root)
    cut = int(0.9 * len(text))  # nanoGPT's split: the first 90 % to train
    return text[:cut], text[cut:], "".join(sorted(set(text))), math.nan


def random_windows(data: torch.Tensor, batch_size: int, length: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size windows at random offsets: x (B, T) and the next characters y (B, T)."""
    starts = torch.randint(len(data) - length, (batch_size,), generator=generator)
    windows = torch.stack([data[s:s + length + 1] for s in starts.tolist()])  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def evaluate(params, config, data: torch.Tensor, max_windows: int | None = None) -> float:
    """Mean next-character loss (nats) over consecutive windows of max_len characters of
    ``data`` (the first max_windows, or all), no dropout."""
    length = config.max_len
    count = (len(data) - 1) // length
    if max_windows is not None:
        count = min(count, max_windows)
    x = data[:count * length].reshape(count, length)  # (N, T)
    y = data[1:count * length + 1].reshape(count, length)  # (N, T)
    total = 0.0
    for start in range(0, count, 64):
        logits = gpt.forward(params, config, x[start:start + 64])
        total += float(gpt.lm_loss(logits, y[start:start + 64])) * len(x[start:start + 64])
    return total / count


def train(params, config, data: torch.Tensor, val: torch.Tensor, args) -> dict[str, list]:
    """AdamW (decay on matrices), warm-up + cosine, global-norm clipping. Returns per-step
    {"loss", "lr", "val_loss" (NaN between evaluations)}."""
    groups = gpt.param_groups(params, args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    history: dict[str, list] = {"loss": [], "lr": [], "val_loss": []}
    state = None
    bar = tqdm(range(args.steps), desc="GPT (L2)", disable=not args.progress, leave=False)
    for step in bar:
        x, y = random_windows(data, args.batch_size, config.max_len, generator)
        gpt.zero_grad(params.values())
        loss = gpt.lm_loss(gpt.forward(params, config, x, training=True), y)
        loss.backward()
        gpt.clip_grad_norm(params.values(), args.grad_clip)
        rate = gpt.cosine_lr(step, peak_lr=args.lr, warmup=args.warmup, total=args.steps,
                             min_lr=args.lr * args.min_lr_ratio)
        state = gpt.adamw_step(groups, rate, betas=(0.9, 0.95), eps=1e-8, state=state)
        history["loss"].append(float(loss.detach()))
        history["lr"].append(rate)
        last = step == args.steps - 1
        history["val_loss"].append(evaluate(params, config, val, 32)
                                   if (step + 1) % args.eval_every == 0 and not last
                                   else math.nan)
        if not np.isfinite(history["loss"][-1]):
            raise FloatingPointError(f"the loss became {history['loss'][-1]} at step {step}; "
                                     "lower --lr")
        if step % 20 == 0:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    return history


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train on characters; evaluate on held-out text never trained on.

    Returns: {"val_loss" (nats per character), "bits_per_char", "unigram_loss" (the best
              context-free model), "floor" (the generated language's own entropy; NaN on
              Shakespeare), "first_loss", "train_seconds", "parameters"}
    """
    parser = argparse.ArgumentParser(
        description="GPT from tensors and autograd, trained on characters of a generated "
                    "language (agreement, reference, brackets) or Tiny Shakespeare; "
                    "hand-written AdamW, warm-up and cosine decay, gradient clipping.")
    add_common_args(parser, datasets=("generated", "shakespeare"), batch_size=None, lr=None,
                    out="runs/09_GPT/l2_gpt", counts_steps=True, threads=1)
    per_dataset = "(default: %(default)s)"
    parser.add_argument("--steps", type=positive_int, default=None, help=f"optimiser steps "
                        f"{per_dataset}")
    parser.add_argument("--warmup", type=non_negative_int, default=None,
                        help=f"linear warm-up steps {per_dataset}")
    parser.add_argument("--min-lr-ratio", type=non_negative_float, default=0.1,
                        help="the cosine ends at this share of --lr (default: %(default)s)")
    parser.add_argument("--max-len", type=positive_int, default=None,
                        help=f"context length in characters {per_dataset}")
    parser.add_argument("--d-model", type=positive_int, default=None, help=f"width {per_dataset}")
    parser.add_argument("--layers", type=positive_int, default=None,
                        help=f"decoder blocks {per_dataset}")
    parser.add_argument("--heads", type=positive_int, default=4,
                        help="attention heads, must divide --d-model (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="residual and attention dropout (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.1,
                        help="AdamW's decoupled weight decay on matrices (default: %(default)s)")
    parser.add_argument("--grad-clip", type=positive_float, default=1.0,
                        help="global gradient-norm limit (default: %(default)s)")
    parser.add_argument("--eval-every", type=positive_int, default=100,
                        help="steps between held-out estimates on the plot (default: "
                             "%(default)s)")
    parser.add_argument("--n-train", type=positive_int, default=corpus.N_TRAIN,
                        help="generated: training sentences (default: %(default)s)")
    parser.add_argument("--n-val", type=positive_int, default=corpus.N_VAL,
                        help="generated: held-out sentences (default: %(default)s)")
    parser.add_argument("--sample-chars", type=non_negative_int, default=300,
                        help="characters to sample at the end (default: %(default)s)")
    parser.add_argument("--temperature", type=positive_float, default=0.8,
                        help="sampling temperature (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: data, model, training, evaluation, sample, plots."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    train_text, val_text, vocab, floor = load_text(args)
    if min(len(train_text), len(val_text)) <= args.max_len + 1:
        raise SystemExit(f"error: the texts ({len(train_text)} and {len(val_text)} characters) "
                         f"must be longer than --max-len ({args.max_len}) + 1")
    char_id = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([char_id[c] for c in train_text], device=device)
    val = torch.tensor([char_id[c] for c in val_text], device=device)
    config = gpt.GPTConfig(vocab_size=len(vocab), max_len=args.max_len, d_model=args.d_model,
                           n_layers=args.layers, n_heads=args.heads, dropout=args.dropout,
                           attn_dropout=args.dropout)
    params = gpt.init_params(config, seed=args.seed, device=device)
    n_params = sum(p.numel() for p in params.values())
    unigram = corpus.unigram_loss(train_text, val_text)
    print(f"{args.dataset}: {len(train_text):,} training and {len(val_text):,} held-out "
          f"characters, vocabulary {len(vocab)}; GPT {config.n_layers} x {config.d_model}, "
          f"{config.n_heads} heads, context {config.max_len}, {n_params:,} parameters")

    started = time.perf_counter()
    history = train(params, config, data, val.cpu(), args)
    seconds = time.perf_counter() - started
    val_loss = evaluate(params, config, val)
    history["val_loss"][-1] = val_loss
    floor_text = f"{floor:.3f}" if np.isfinite(floor) else "unknown"
    print(f"GPT (L2), {args.steps} steps in {seconds:.1f} s on {device}: held-out loss "
          f"{val_loss:.3f} nats/char = {val_loss / math.log(2):.3f} bits/char (unigram "
          f"{unigram:.3f}, the language's floor {floor_text})")

    prompt = "the " if args.dataset == "generated" else "\n"
    ids = torch.tensor([[char_id[c] for c in prompt]], device=device)
    sampled = gpt.generate(params, config, ids, args.sample_chars, do_sample=True,
                           temperature=args.temperature,
                           generator=torch.Generator(device=device).manual_seed(args.seed))
    sample = "".join(vocab[i] for i in sampled[0].tolist())
    (out / "sample.txt").write_text(sample, encoding="utf-8")
    print(f"sample (temperature {args.temperature}):\n{sample}")
    _plot(history, unigram, floor, out)
    print(f"plots and sample written to {out}")
    return {"val_loss": val_loss, "bits_per_char": val_loss / math.log(2),
            "unigram_loss": unigram, "floor": floor, "first_loss": history["loss"][0],
            "train_seconds": seconds, "parameters": n_params}


def _plot(history: dict[str, list], unigram: float, floor: float, out) -> None:
    """Training and held-out loss per step with the unigram and floor lines (loss.png), and
    the learning rate (lr.png)."""
    from utils.visualization import plot_curves, save_figure

    steps = len(history["loss"])
    curves = {"training loss": history["loss"], "held-out loss": history["val_loss"],
              "unigram (no context)": [unigram] * steps}
    if np.isfinite(floor):
        curves["floor (the language's entropy)"] = [floor] * steps
    figure = plot_curves(curves, xlabel="step", ylabel="nats per character",
                         title="L2 GPT: next-character loss")
    figure.axes[0].lines[1].set_marker("o")  # held-out: isolated points between NaNs
    figure.axes[0].legend()
    save_figure(figure, out / "loss.png")
    plot_curves({"learning rate": history["lr"]}, path=out / "lr.png", xlabel="step",
                ylabel="lr", title="linear warm-up, then cosine decay")


if __name__ == "__main__":
    main()
