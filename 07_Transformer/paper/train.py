"""Train lesson 07's L3 Transformer on a generated task; greedy decoding for the exact match.

The model, the loss, the Section 5.3 schedule and the decoders are in transformer_paper.py,
the derivations in ../theory.md. This script generates the task (copy, reverse, sort, or
multi-digit addition with the sum written either way), trains with the paper's recipe
(Adam 0.9 / 0.98 / 1e-9, warm-up schedule, label smoothing) for --steps optimizer steps,
reports the held-out exact match of greedy decoding, and draws the loss, the learning rate
and every head's attention on one held-out example. Special tokens: 0 = <pad>, 1 = <bos>,
2 = <eos>, data from 3.

Run it from the repository root::

    python 07_Transformer/paper/train.py                    # copy task
    python 07_Transformer/paper/train.py --task reverse
    python 07_Transformer/paper/train.py --task sort
    python 07_Transformer/paper/train.py --task addition
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from utils import import_lesson
from utils.cli import (
    add_common_args,
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import make_copy_task, make_reverse_task, make_sort_task
from utils.training_utils import (
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_attention, plot_curves

_model = import_lesson("07_Transformer.paper.transformer_paper")
PAD_ID, BOS_ID, EOS_ID, RESERVED = _model.PAD_ID, _model.BOS_ID, _model.EOS_ID, _model.RESERVED
Transformer, TransformerConfig = _model.Transformer, _model.TransformerConfig
count_parameters, greedy_decode = _model.count_parameters, _model.greedy_decode
make_loss, make_noam_scheduler, make_optimizer = (_model.make_loss, _model.make_noam_scheduler,
                                                  _model.make_optimizer)

# --------------------------------------------------------------------------------------
# 1. The generated tasks
# --------------------------------------------------------------------------------------

TASKS = ("copy", "reverse", "sort", "addition", "addition-reversed")
DIGIT_OFFSET = RESERVED  # addition: digit d is token 3 + d
PLUS = RESERVED + 10  # addition: the "+" sign, token 13
ADDITION_VOCAB = PLUS + 1


def make_addition_task(n: int, digits: int, seed: int = 0, *, reverse_sum: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Multi-digit addition as token sequences: "123+456" -> "579".

    Both operands have ``digits`` digits, written most significant first (leading zeros
    kept, so every source has 2 * digits + 1 tokens); the sum has digits + 1 digits,
    leading zeros kept too ("050+060" -> "0110"). Tokens: digit d -> 3 + d, "+" -> 13.
    With ``reverse_sum`` the sum is written least significant digit first ("123+456" ->
    "9750"): then each output digit depends only on the two digits in its column and the
    carry from the digit just produced, the order in which people add by hand; most
    significant first, the first digit already depends on every carry to its right.

    Returns: src (n, 2 digits + 1) int64, tgt (n, digits + 1) int64.
    """
    if n < 1 or digits < 1:
        raise ValueError(f"n and digits must be >= 1, got {n}, {digits}")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10 ** digits, size=n)
    b = rng.integers(0, 10 ** digits, size=n)

    def to_digits(values: np.ndarray, width: int) -> np.ndarray:
        powers = 10 ** np.arange(width - 1, -1, -1)  # most significant first
        return (values[:, None] // powers) % 10  # (n, width)

    src = np.concatenate([to_digits(a, digits), np.full((n, 1), PLUS - DIGIT_OFFSET),
                          to_digits(b, digits)], axis=1) + DIGIT_OFFSET
    tgt = to_digits(a + b, digits + 1) + DIGIT_OFFSET  # (n, digits + 1)
    if reverse_sum:
        tgt = tgt[:, ::-1]  # least significant digit first
    return src.astype(np.int64), tgt.astype(np.int64)


def tokens_to_text(tokens: Sequence[int], task: str) -> list[str]:
    """Readable labels for the pictures: digits and "+" for addition, numbers otherwise."""
    names = {PAD_ID: "<pad>", BOS_ID: "<bos>", EOS_ID: "<eos>"}
    out = []
    for t in tokens:
        t = int(t)
        if t in names:
            out.append(names[t])
        elif task.startswith("addition"):
            out.append("+" if t == PLUS else str(t - DIGIT_OFFSET))
        else:
            out.append(str(t))
    return out


# per task: sequence length (digits per operand for addition), vocabulary (data tokens 3 ..
# vocab - 1), optimizer steps, training examples, model size, and the schedule's factor and
# warm-up (peak lr = factor * d_model^-0.5 * warmup^-0.5)
TASK_DEFAULTS = {
    "copy": {"seq_len": 10, "vocab": 13, "steps": 300, "n_train": 20000, "d_model": 64,
             "layers": 2, "lr": 0.5, "warmup": 50},
    "reverse": {"seq_len": 10, "vocab": 13, "steps": 300, "n_train": 20000, "d_model": 64,
                "layers": 2, "lr": 0.5, "warmup": 50},
    "sort": {"seq_len": 12, "vocab": 23, "steps": 1500, "n_train": 50000, "d_model": 64,
             "layers": 2, "lr": 0.5, "warmup": 100},
    # addition with d_model 128 and factor 0.5 (peak lr 3.1e-3) stalls: the loss stays near
    # 0.8 (sum most significant first) or 1.3 (reversed); factor 0.2 (peak 1.3e-3) learns both
    "addition": {"seq_len": 3, "vocab": ADDITION_VOCAB, "steps": 3000, "n_train": 50000,
                 "d_model": 128, "layers": 2, "lr": 0.2, "warmup": 200},
    "addition-reversed": {"seq_len": 3, "vocab": ADDITION_VOCAB, "steps": 3000,
                          "n_train": 50000, "d_model": 128, "layers": 2, "lr": 0.2,
                          "warmup": 200},
}


def make_task(task: str, n: int, seq_len: int, vocab: int, seed: int):
    """src (n, S), tgt (n, T) int64 with data tokens >= 3 (0, 1, 2 are <pad>, <bos>, <eos>)."""
    if task == "copy":
        return make_copy_task(n, seq_len, vocab, seed, reserved=RESERVED)
    if task == "reverse":
        return make_reverse_task(n, seq_len, vocab, seed, reserved=RESERVED)
    if task == "sort":
        return make_sort_task(n, seq_len, vocab, seed, reserved=RESERVED)
    if task == "addition":
        return make_addition_task(n, seq_len, seed)
    if task == "addition-reversed":
        return make_addition_task(n, seq_len, seed, reverse_sum=True)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def add_bos_eos(tgt: torch.Tensor, cfg: TransformerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoder input <bos> y_1 .. y_T, labels y_1 .. y_T <eos>), both (B, T + 1)."""
    bos = torch.full((tgt.shape[0], 1), cfg.bos_id, dtype=tgt.dtype)
    eos = torch.full((tgt.shape[0], 1), cfg.eos_id, dtype=tgt.dtype)
    return torch.cat([bos, tgt], 1), torch.cat([tgt, eos], 1)


@torch.no_grad()
def exact_match(model: Transformer, src: torch.Tensor, tgt: torch.Tensor,
                batch_size: int = 500) -> float:
    """Fraction of examples whose greedy output equals the target followed by <eos>."""
    cfg = model.config
    _, labels = add_bos_eos(tgt, cfg)
    hits = 0
    for i in range(0, src.shape[0], batch_size):
        pred = greedy_decode(model, src[i:i + batch_size], max_len=labels.shape[1])
        want = labels[i:i + batch_size]
        if pred.shape[1] < want.shape[1]:  # every row ended early (wrong anyway)
            pred = F.pad(pred, (0, want.shape[1] - pred.shape[1]), value=cfg.pad_id)
        hits += int((pred == want).all(dim=1).sum())
    return hits / src.shape[0]


def train(model: Transformer, src: torch.Tensor, tgt: torch.Tensor, *, steps: int,
          batch_size: int, warmup: int, lr_factor: float, seed: int = 0,
          progress: bool = False) -> dict[str, list[float]]:
    """Teacher-forced training with the paper's recipe: Adam (0.9, 0.98, 1e-9), the Section
    5.3 schedule (``lr_factor`` times it, warm-up ``warmup``), label smoothing (Section 5.4).

    Inputs:  model; src (N, S), tgt (N, T) int64 (targets without <bos> / <eos>, on any
             device: each batch moves to the model's); steps - optimizer steps; batch_size;
             seed - each step draws batch_size random examples (with replacement) from a
             generator seeded with it, so every step sees a new random batch
    Returns: {"loss": per-step training loss, "lr": per-step learning rate}; the model is
             left in training mode
    """
    cfg = model.config
    device = next(model.parameters()).device
    optimizer = make_optimizer(model)
    scheduler = make_noam_scheduler(optimizer, cfg.d_model, warmup, factor=lr_factor)
    loss_fn = make_loss(cfg)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"loss": [], "lr": []}
    model.train()
    bar = range(steps)
    if progress:
        from tqdm import tqdm
        bar = tqdm(bar, desc="L3 Transformer", leave=False)
    for _ in bar:
        idx = torch.randint(0, src.shape[0], (batch_size,), generator=generator)
        dec_in, labels = add_bos_eos(tgt[idx].cpu(), cfg)
        logits = model(src[idx].to(device), dec_in.to(device))  # (B, T + 1, V)
        loss = loss_fn(logits.reshape(-1, cfg.tgt_vocab), labels.to(device).reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["lr"].append(optimizer.param_groups[0]["lr"])
        scheduler.step()
        history["loss"].append(loss.item())
        if not math.isfinite(history["loss"][-1]):
            raise FloatingPointError(f"the loss became {history['loss'][-1]} at step "
                                     f"{len(history['loss'])}; lower --lr")
        if progress:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    return history

# --------------------------------------------------------------------------------------
# 2. The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train a small Transformer on a generated task; report held-out exact match.

    Returns: {"exact_match" (greedy, held-out), "token_accuracy", "final_loss" (held-out,
             teacher forcing), "first_train_loss" / "last_train_loss" (the first and last
             step's batch), "train_seconds", "steps"}
    """
    parser = argparse.ArgumentParser(
        description="The Transformer (Vaswani et al. 2017) on generated seq2seq tasks: post-LN "
                    "encoder-decoder, shared embeddings, label smoothing, Adam with the "
                    "warm-up schedule; greedy decoding for the held-out exact match. Training "
                    "runs for --steps optimizer steps.")
    add_common_args(parser, datasets=TASKS, batch_size=64, lr=None,
                    out="runs/07_Transformer/paper", counts_steps=True, threads=1)
    parser.add_argument("--task", dest="dataset", choices=TASKS, default=argparse.SUPPRESS,
                        help="the same as --dataset")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="optimizer steps (default: %(default)s)")
    parser.add_argument("--seq-len", type=positive_int, default=None,
                        help="sequence length, for addition the digits per operand "
                             "(default: %(default)s)")
    parser.add_argument("--d-model", type=positive_int, default=None,
                        help="model width, d_ff = 4 d_model (default: %(default)s)")
    parser.add_argument("--heads", type=positive_int, default=4,
                        help="attention heads, must divide --d-model (default: %(default)s)")
    parser.add_argument("--layers", type=positive_int, default=None,
                        help="encoder layers = decoder layers (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="residual dropout (paper 0.1; 0 learns these tiny tasks faster; "
                             "default: %(default)s)")
    parser.add_argument("--warmup", type=positive_int, default=None,
                        help="warm-up steps (paper 4000; default: %(default)s); --lr is the "
                             "factor that multiplies the Section 5.3 schedule")
    parser.add_argument("--n-test", type=positive_int, default=1000,
                        help="held-out examples (default: %(default)s)")
    args = parse_args(parser, argv, TASK_DEFAULTS)
    if args.d_model % args.heads or args.d_model % 2:
        parser.error(f"--d-model ({args.d_model}) must be even and divisible by --heads "
                     f"({args.heads})")
    with torch_threads(args.threads):
        return _run(args, TASK_DEFAULTS[args.dataset])


def _run(args: argparse.Namespace, defaults: dict) -> dict[str, float]:
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    device = torch.device("cpu" if args.device == "auto" and not torch.cuda.is_available()
                          else ("cuda" if args.device == "auto" else args.device))
    task, vocab = args.dataset, defaults["vocab"]
    src, tgt = make_task(task, defaults["n_train"] + args.n_test, args.seq_len, vocab, args.seed)
    src, tgt = torch.from_numpy(src), torch.from_numpy(tgt)
    # held-out examples: the last n_test, minus any source that also occurs in training
    train_src, train_tgt = src[:-args.n_test], tgt[:-args.n_test]
    seen = {tuple(r) for r in train_src.tolist()}
    keep = torch.tensor([tuple(r) not in seen for r in src[-args.n_test:].tolist()])
    test_src, test_tgt = src[-args.n_test:][keep], tgt[-args.n_test:][keep]

    cfg = TransformerConfig(vocab_size=vocab, d_model=args.d_model, n_heads=args.heads,
                            d_ff=4 * args.d_model, n_encoder_layers=args.layers,
                            n_decoder_layers=args.layers, dropout=args.dropout, max_len=64)
    model = Transformer(cfg).to(device)
    print(f"{task}: {train_src.shape[0]} training / {test_src.shape[0]} held-out examples, "
          f"source length {src.shape[1]}; Transformer d_model {cfg.d_model}, {cfg.n_heads} "
          f"heads, {args.layers}+{args.layers} layers, {count_parameters(model):,} parameters")

    started = time.perf_counter()
    history = train(model, train_src, train_tgt, steps=args.steps, batch_size=args.batch_size,
                    warmup=args.warmup, lr_factor=args.lr, seed=args.seed,
                    progress=args.progress)
    seconds = time.perf_counter() - started
    losses, lrs = history["loss"], history["lr"]

    model.eval()
    loss_fn = make_loss(cfg)
    match = exact_match(model, test_src.to(device), test_tgt.to(device))
    with torch.no_grad():
        dec_in, labels = add_bos_eos(test_tgt, cfg)
        logits = model(test_src.to(device), dec_in.to(device))
        token_acc = float((logits.argmax(-1).cpu() == labels).float().mean())
        final_loss = float(loss_fn(logits.reshape(-1, cfg.tgt_vocab), labels.to(device)
                                   .reshape(-1)))
    metrics = {"exact_match": match, "token_accuracy": token_acc, "final_loss": final_loss,
               "first_train_loss": losses[0], "last_train_loss": losses[-1],
               "train_seconds": seconds, "steps": args.steps}
    print(f"L3 Transformer on {task}: held-out exact match {match:.4f} (greedy), token accuracy "
          f"{token_acc:.4f}, loss {final_loss:.4f} (label-smoothed), {seconds:.1f} s for "
          f"{args.steps} steps on {device}")
    _plots(model, task, test_src[:1].to(device), test_tgt[:1], losses, lrs, args, out)
    return metrics


def _plots(model: Transformer, task: str, src, tgt, losses, lrs, args, out) -> None:
    """Loss curve, learning-rate schedule, every head's attention on one held-out example."""
    cfg = model.config
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    # with label smoothing the loss cannot reach 0: its minimum is the entropy of the
    # smoothed target, q = 1 - eps + eps/K on the true token and eps/K on the others
    eps, k = cfg.label_smoothing, cfg.tgt_vocab
    q_true, q_other = 1 - eps + eps / k, eps / k
    floor = -(q_true * math.log(q_true) + (k - 1) * q_other * math.log(q_other)) if eps else 0
    plot_curves({"training loss (per step)": losses, f"mean of {window} steps": smooth,
                 "smallest possible (entropy of the smoothed target)": [floor] * len(losses)},
                path=out / "loss.png", xlabel="step", ylabel="label-smoothed cross-entropy",
                title=f"L3 Transformer on {task}", logy=True)
    plot_curves({"learning rate": lrs}, path=out / "lr_schedule.png", xlabel="step",
                ylabel="lr", title=f"Section 5.3 schedule: d_model {cfg.d_model}, warm-up "
                                   f"{args.warmup}, factor {args.lr:g}")
    dec_in, _ = add_bos_eos(tgt, cfg)
    maps = model.attention_maps(src, dec_in.to(src.device))
    src_text = tokens_to_text(src[0].tolist(), task)
    tgt_text = tokens_to_text(dec_in[0].tolist(), task)
    last = len(maps["encoder"]) - 1
    for kind, x_tokens, y_tokens in (("encoder", src_text, src_text),
                                     ("decoder_self", tgt_text, tgt_text),
                                     ("cross", src_text, tgt_text)):
        # the last layer's heads (drawing every layer would take longer than training)
        plot_attention(maps[kind][last][0].cpu(), x_tokens=x_tokens, y_tokens=y_tokens,
                       path=out / f"attention_{kind}.png",
                       title=f"{task}: {kind.replace('_', ' ')} attention, every head of "
                             f"layer {last + 1}")
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
