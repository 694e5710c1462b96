"""A character-level LSTM language model on Tiny Shakespeare (lesson 06, Level 3).

The model of Karpathy's char-rnn (2015) and of Graves (2013), "Generating sequences with
recurrent neural networks", Section 3: read one character at a time, predict the next.

    one-hot-like embedding (V, E) -> LSTM (ours, rnn_paper.LSTM; num_layers) -> linear (H, V)
    loss = mean over positions of -log p(x_{t+1} | x_1..x_t)          (nats per character)

(``rnn_paper.CharLM``; its ``sample`` draws text from it.)

Training uses truncated back-propagation through time: the text is cut into ``batch`` long
parallel streams; each step reads the next ``--bptt`` characters of every stream, starting
from the state the previous step ended in (carried, but DETACHED, so gradients stop at the
window's start while the model still sees context from before it).

Data: the first 90 % of the text (by position) trains, the last 10 % validates; the
character vocabulary comes from the training part. Validation loss is reported in nats and
in bits per character (nats / ln 2). Sampling draws from softmax(logits / temperature):
below 1 sharper and safer, above 1 more varied and more misspelt.

Without the corpus (the default ``--dataset builtin``) the script trains on a few lines of
text written into this file, so it runs anywhere; the real run needs
``--dataset shakespeare --data-root DIR`` (``DIR/tinyshakespeare/input.txt``).

Run it from the repository root::

    python 06_LSTM_GRU/paper/train_char_lm.py                           # built-in text
    python 06_LSTM_GRU/paper/train_char_lm.py --dataset shakespeare --data-root DIR
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_tiny_shakespeare
from utils.lessons import import_lesson
from utils.training_utils import torch_threads  # n CPU threads, restored after
from utils.visualization import plot_curves

rnn_paper = import_lesson("06_LSTM_GRU.paper.rnn_paper")  # the model on our LSTM (this L3)
CharLM, sample = rnn_paper.CharLM, rnn_paper.sample

BUILTIN_TEXT = """\
First Reader:
The cell remembers what the gate lets in,
and forgets what the forget gate lets go.
Second Reader:
Then read it again, and let the gradient flow;
for what is carried is not lost, and what is lost
was never carried far.
First Reader:
Say it once more, that I may learn it by heart.
""" * 20


def streams(ids: np.ndarray, batch: int) -> torch.Tensor:
    """Cut a long id sequence into ``batch`` contiguous streams: (batch, len // batch)."""
    n = len(ids) // batch
    if n < 2:
        raise ValueError(f"text of {len(ids)} characters is too short for {batch} streams")
    return torch.from_numpy(ids[: n * batch].reshape(batch, n).astype(np.int64))


@torch.no_grad()
def evaluate(model: CharLM, data: torch.Tensor, bptt: int) -> float:
    """Mean next-character cross-entropy (nats) over the streams ``data`` (B, L)."""
    model.eval()
    state, total, count = None, 0.0, 0
    for s in range(0, data.shape[1] - 1, bptt):
        x = data[:, s: s + bptt]
        y = data[:, s + 1: s + 1 + bptt]
        x = x[:, : y.shape[1]]
        logits, state = model(x, state)
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train()
    return total / count


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the character model; returns {"val_loss" (nats/char), "val_bpc",
    "train_loss", "train_seconds", "steps"}."""
    parser = argparse.ArgumentParser(
        description="Character-level LSTM language model (our L3 LSTM), truncated BPTT.")
    add_common_args(parser, datasets=("builtin", "shakespeare"), batch_size=32, lr=3e-3,
                    out="runs/06_LSTM_GRU/char_lm", devices=("cpu",), counts_steps=True,
                    threads=1)
    parser.add_argument("--steps", type=positive_int, default=150,
                        help="training steps (windows; default: %(default)s)")
    parser.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        help="stop training after this many seconds (0: no limit)")
    parser.add_argument("--bptt", type=positive_int, default=64,
                        help="characters per window (default: %(default)s)")
    parser.add_argument("--hidden", type=positive_int, default=128, help="default: %(default)s")
    parser.add_argument("--layers", type=positive_int, default=1, help="default: %(default)s")
    parser.add_argument("--embed", type=positive_int, default=32, help="default: %(default)s")
    parser.add_argument("--temperature", type=positive_float, default=0.8,
                        help="sampling temperature (default: %(default)s)")
    parser.add_argument("--sample-len", type=non_negative_int, default=300,
                        help="characters sampled at the end (default: %(default)s)")
    args = parse_args(parser, argv)
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    if args.dataset == "shakespeare":
        with data_errors(hint="the default --dataset builtin needs no download"):
            text = load_tiny_shakespeare(args.data_root, download=False)
    else:
        text = BUILTIN_TEXT
    split = int(0.9 * len(text))  # 90 / 10 by position: validation is unseen text
    train_text, val_text = text[:split], text[split:]
    itos = sorted(set(train_text))
    stoi = {c: i for i, c in enumerate(itos)}
    unk = stoi.get(" ", 0)  # a character only in validation maps to a space
    to_ids = lambda s: np.array([stoi.get(c, unk) for c in s], dtype=np.int64)  # noqa: E731
    if len(train_text) // args.batch_size < args.bptt + 1:
        raise SystemExit(f"error: --batch-size {args.batch_size} and --bptt {args.bptt} need "
                         f"{args.batch_size * (args.bptt + 1):,} training characters, "
                         f"{args.dataset} has {len(train_text):,}; lower one of them")
    train = streams(to_ids(train_text), args.batch_size)  # (B, L)
    val = streams(to_ids(val_text), min(args.batch_size, max(1, len(val_text) // 200)))
    print(f"{args.dataset}: {len(train_text):,} train / {len(val_text):,} validation characters, "
          f"vocabulary {len(itos)}")

    model = CharLM(len(itos), args.embed, args.hidden, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    state, pos, losses = None, 0, []
    bar = tqdm(total=args.steps, desc="char LM", leave=False) if args.progress else None
    started = time.perf_counter()
    step = 0
    for step in range(1, args.steps + 1):
        if pos + args.bptt + 1 > train.shape[1]:  # end of the streams: start over, fresh state
            pos, state = 0, None
        x = train[:, pos: pos + args.bptt]
        y = train[:, pos + 1: pos + 1 + args.bptt]
        pos += args.bptt
        if state is not None:
            state = tuple(s.detach() for s in state)  # truncated BPTT: carry, don't backprop
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if step % 200 == 0:
            print(f"step {step}: train loss {np.mean(losses[-200:]):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        if args.time_budget and time.perf_counter() - started > args.time_budget:
            break
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    val_loss = evaluate(model, val, args.bptt)
    gen = torch.Generator().manual_seed(args.seed)
    text_out = sample(model, itos, stoi, prime=train_text[:1] if "\n" not in stoi else "\n",
                      length=args.sample_len, temperature=args.temperature, generator=gen)
    print(f"validation loss {val_loss:.4f} nats/char = {val_loss / math.log(2):.4f} bits/char "
          f"after {step} steps ({seconds:.0f} s of training)")
    print(f"--- sample (temperature {args.temperature}) ---\n{text_out}\n---")
    (out / "sample.txt").write_text(text_out)
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    plot_curves({"training loss (running mean)": smooth}, path=out / "loss.png", xlabel="step",
                ylabel="nats per character", title=f"Character LSTM on {args.dataset}")
    return {"val_loss": val_loss, "val_bpc": val_loss / math.log(2),
            "train_loss": float(np.mean(losses[-50:])), "train_seconds": seconds,
            "steps": float(step)}


if __name__ == "__main__":
    main()
