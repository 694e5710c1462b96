"""Train a small GPT (gpt_paper.py) as a language model, nanoGPT style; save it for generate.py.

    python 09_GPT/paper/train.py                                   # generated language, offline
    python 09_GPT/paper/train.py --dataset shakespeare --data-root DIR     # nanoGPT's CPU run
    python 09_GPT/paper/train.py --dataset shakespeare --data-root DIR --tokenizer bpe \\
        --vocab-size 512 --out runs/09_GPT/shakespeare_bpe
    python 09_GPT/paper/generate.py --checkpoint runs/09_GPT/shakespeare/checkpoint

- ``--dataset generated`` (no download): the language of ../pytorch_lowlevel/corpus.py
  (agreement, pronouns, brackets that must close), character level; the generator's own
  entropy per character is the floor no model beats, the unigram loss the trivial baseline.
- ``--dataset shakespeare``: Tiny Shakespeare (``DIR/tinyshakespeare/input.txt``), the first
  90 % trains, the last 10 % validates (nanoGPT's data/shakespeare_char/prepare.py).
- ``--tokenizer char`` (characters) or ``bpe`` (byte-level BPE of ``--vocab-size`` tokens,
  trained on the training split only).
Training is nanoGPT's: random windows x = data[i:i+T], y = data[i+1:i+T+1] drawn with a
seeded generator, AdamW (decay on matrices only), linear warm-up then cosine to --min-lr,
gradient clipping at 1.0, an estimate of the train / validation loss on --eval-iters random
batches every --eval-interval iterations. At the end the WHOLE validation split is scored:
loss in nats per token and bits per character (total nats / characters / ln 2, so that
character and BPE runs compare). ``--preset nanogpt`` is nanoGPT's CPU configuration
(README: 4 layers, 4 heads, 128 wide, context 64, batch 12, 2,000 iterations, lr 1e-3), the
Shakespeare default. Written under --out: checkpoint/ (config.json, model.safetensors and
the tokenizer's files: generate.py and transformers' from_pretrained read it), loss.png,
samples.txt.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

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
from utils.data_loaders import load_tiny_shakespeare
from utils.training_utils import seed_everything, torch_threads
from utils.visualization import plot_curves, save_figure

gpt = import_lesson("09_GPT.paper.gpt_paper")
convert = import_lesson("09_GPT.paper.convert")
tokenization = import_lesson("09_GPT.paper.tokenizer")
corpus = import_lesson("09_GPT.pytorch_lowlevel.corpus")
sampling = import_lesson("09_GPT.paper.generate")  # decoding beyond the context

# --------------------------------------------------------------------------------------
# 1. Data: text, a tokenizer trained on the training split, ids
# --------------------------------------------------------------------------------------


def load_text(dataset: str, data_root, seed: int, sentences: int = 0) -> tuple[str, str]:
    """(training text, validation text) of ``dataset``; for the generated language, its
    default split, or ``sentences`` training and sentences / 10 validation sentences."""
    if dataset == "generated":
        if not sentences:
            return corpus.train_val_text(seed=seed)
        return (corpus.generate_text(sentences, seed),
                corpus.generate_text(max(1, sentences // 10), seed + 1_000_003))
    with data_errors(hint="the default --dataset generated needs no download"):
        text = load_tiny_shakespeare(data_root, download=False)
    split = int(0.9 * len(text))  # nanoGPT's prepare.py: 90 % / 10 % by position
    return text[:split], text[split:]


def make_tokenizer(kind: str, train_text: str, vocab_size: int):
    """A character or byte-level BPE tokenizer (``vocab_size`` tokens, <|endoftext|>
    included), trained on ``train_text`` only."""
    if kind == "char":
        return tokenization.CharTokenizer.from_text(train_text)  # nanoGPT's sorted(set(text))
    return tokenization.ByteLevelBPETokenizer.train(train_text, vocab_size)


def save_tokenizer(tokenizer, directory: Path) -> None:
    """The tokenizer's files beside the weights: vocab.json + merges.txt (BPE, which
    transformers reads too) or CHAR_VOCAB (characters); generate.load_tokenizer reads both."""
    if isinstance(tokenizer, tokenization.CharTokenizer):
        tokenizer.save(directory / sampling.CHAR_VOCAB)
    else:
        tokenizer.save(directory)


def encode(tokenizer, text: str) -> torch.Tensor:
    """``text`` -> (N,) int64 ids."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.int64)


def get_batch(data: torch.Tensor, batch_size: int, context: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """nanoGPT's get_batch: ``batch_size`` windows at random starts i,
    x = data[i:i+T], y = data[i+1:i+T+1] (the next token at every position).

    Inputs:  data (N,) ids, N > context; generator seeded by the caller.
    Returns: x, y (batch_size, context) int64.
    """
    windows = data.unfold(0, context + 1, 1)  # (N - T, T + 1): every window, a view
    starts = torch.randint(len(windows), (batch_size,), generator=generator)
    rows = windows[starts]  # (B, T + 1)
    return rows[:, :-1], rows[:, 1:]


# --------------------------------------------------------------------------------------
# 2. Evaluation: nanoGPT's estimate, and the exact loss over a whole split
# --------------------------------------------------------------------------------------


@torch.no_grad()
def estimate_loss(model, data: torch.Tensor, batch_size: int, context: int, iters: int,
                  generator: torch.Generator) -> float:
    """nanoGPT's estimate_loss: the mean loss of ``iters`` random batches, in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for _ in range(iters):
        x, y = get_batch(data, batch_size, context, generator)
        losses.append(float(gpt.lm_loss(model(x.to(device)), y.to(device))))
    model.train(was_training)
    return float(np.mean(losses))


@torch.no_grad()
def split_nats(model, data: torch.Tensor, context: int, batch_size: int = 64
               ) -> tuple[float, int]:
    """Total next-token cross-entropy (nats) over a whole split and the number of tokens
    predicted: non-overlapping windows x = data[s:s+T], y = data[s+1:s+T+1] for s = 0, T,
    2T, ... (the last one shorter), so every token but the first is predicted once, with
    a context of 1 to T tokens, as in training.

    Inputs:  data (N,) ids, N >= 2.
    Returns: (sum of -ln p(y), N - 1).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, len(data) - 1
    full = count // context
    windows = data[:full * context + 1]
    xs = windows[:-1].reshape(full, context)  # (W, T)
    ys = windows[1:].reshape(full, context)  # (W, T)
    for start in range(0, full, batch_size):
        x, y = xs[start:start + batch_size].to(device), ys[start:start + batch_size].to(device)
        total += float(gpt.lm_loss(model(x), y)) * y.numel()
    if full * context < count:  # the tail
        x = data[full * context:-1][None].to(device)  # (1, t)
        y = data[full * context + 1:][None].to(device)  # (1, t)
        total += float(gpt.lm_loss(model(x), y)) * y.numel()
    model.train(was_training)
    return total, count


def predicted_characters(tokenizer, ids: torch.Tensor) -> int:
    """Characters of the text the predicted tokens ids[1:] spell (all but the first token)."""
    return len(tokenizer.decode(ids.tolist())) - len(tokenizer.decode(ids[:1].tolist()))


def bits_per_character(total_nats: float, characters: int) -> float:
    """Total nats over a text / its characters / ln 2: comparable across tokenizers."""
    return total_nats / characters / math.log(2)


# --------------------------------------------------------------------------------------
# 3. Training: nanoGPT's loop
# --------------------------------------------------------------------------------------


def train(model, train_ids: torch.Tensor, val_ids: torch.Tensor, *, iters: int,
          batch_size: int, context: int, lr: float, min_lr: float, warmup: int,
          weight_decay: float, betas: tuple[float, float], grad_clip: float,
          eval_interval: int, eval_iters: int, seed: int = 0,
          progress: bool = False) -> dict[str, list[float]]:
    """AdamW on random windows for ``iters`` iterations.

    Returns the history: per iteration "loss" and "lr"; per evaluation (at iteration 0,
    every ``eval_interval`` and after the last) "eval_iter", "train_estimate",
    "val_estimate"; "seconds" (the whole loop), "step_seconds" (the iterations alone).
    """
    device = next(model.parameters()).device
    optimizer = gpt.make_optimizer(model, lr, weight_decay=weight_decay, betas=betas)
    batches = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"loss": [], "lr": [], "eval_iter": [],
                                       "train_estimate": [], "val_estimate": []}

    def evaluate(done: int) -> None:
        estimates = torch.Generator().manual_seed(seed + 1 + done)
        history["eval_iter"].append(done)
        for split, data in (("train", train_ids), ("val", val_ids)):
            history[f"{split}_estimate"].append(
                estimate_loss(model, data, batch_size, context, eval_iters, estimates))

    model.train()
    started, step_seconds = time.perf_counter(), 0.0
    bar = tqdm(range(iters), desc="GPT", disable=not progress, leave=False)
    for step in bar:
        if eval_interval and step % eval_interval == 0:
            evaluate(step)
        step_started = time.perf_counter()
        rate = gpt.cosine_lr(step, peak_lr=lr, warmup=warmup, total=iters, min_lr=min_lr)
        for group in optimizer.param_groups:
            group["lr"] = rate
        x, y = get_batch(train_ids, batch_size, context, batches)
        loss = gpt.lm_loss(model(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        history["loss"].append(float(loss.detach()))
        history["lr"].append(rate)
        step_seconds += time.perf_counter() - step_started
        if not math.isfinite(history["loss"][-1]):
            raise FloatingPointError(f"the loss became {history['loss'][-1]} at iteration "
                                     f"{step}; lower --lr")
        if step % 10 == 0:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", lr=f"{rate:.1e}")
    evaluate(iters)
    history["seconds"] = [time.perf_counter() - started]
    history["step_seconds"] = [step_seconds]
    return history


# --------------------------------------------------------------------------------------
# 4. The script
# --------------------------------------------------------------------------------------

# nanoGPT's CPU run (its README: config/train_shakespeare_char.py with --device=cpu
# --eval_iters=20 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
# --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0), the rest of that config file.
PRESETS = {
    "nanogpt": {"layers": 4, "heads": 4, "d_model": 128, "max_len": 64, "batch_size": 12,
                "iters": 2000, "lr": 1e-3, "warmup": 100, "min_lr": 1e-4, "beta2": 0.99,
                "weight_decay": 0.1, "dropout": 0.0, "eval_interval": 250, "eval_iters": 20},
}
# generated: a model a little smaller than nanoGPT's for a run of about a minute.
DEFAULTS = {
    "generated": {"layers": 2, "heads": 4, "d_model": 64, "max_len": 64, "batch_size": 16,
                  "iters": 600, "lr": 3e-3, "warmup": 50, "min_lr": 3e-4, "beta2": 0.99,
                  "weight_decay": 0.1, "dropout": 0.0, "eval_interval": 100, "eval_iters": 10,
                  "attn_implementation": "eager", "prompt": "the "},
    "shakespeare": {**PRESETS["nanogpt"], "attn_implementation": "sdpa", "prompt": "\n"},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a small GPT (gpt_paper.py) as a character or BPE language model, "
                    "nanoGPT style, and save it for generate.py.")
    add_common_args(parser, datasets=tuple(DEFAULTS), batch_size=None, lr=None,
                    out="runs/09_GPT/gpt", counts_steps=True, threads=1)
    model = parser.add_argument_group("model")
    model.add_argument("--preset", choices=(*PRESETS, "none"), default="none",
                       help="nanogpt: nanoGPT's CPU configuration (the defaults of "
                            "shakespeare) on any dataset; options given explicitly win "
                            "(default: %(default)s)")
    model.add_argument("--layers", type=positive_int, default=None,
                       help="Transformer blocks (default: %(default)s)")
    model.add_argument("--heads", type=positive_int, default=None,
                       help="attention heads, must divide --d-model (default: %(default)s)")
    model.add_argument("--d-model", type=positive_int, default=None,
                       help="width (default: %(default)s)")
    model.add_argument("--max-len", type=positive_int, default=None,
                       help="tokens per training window, also the position table "
                            "(default: %(default)s)")
    model.add_argument("--dropout", type=probability, default=None,
                       help="residual and attention dropout (default: %(default)s)")
    model.add_argument("--attn-implementation", choices=("eager", "sdpa"), default=None,
                       help="eager: the attention equation step by step; sdpa: PyTorch's "
                            "fused kernel, same numbers (default: %(default)s)")
    data = parser.add_argument_group("tokens")
    data.add_argument("--tokenizer", choices=("char", "bpe"), default="char",
                      help="characters, or byte-level BPE trained on the training split "
                           "(default: %(default)s)")
    data.add_argument("--sentences", type=non_negative_int, default=0,
                      help="generated: training sentences, a tenth as many for validation "
                           "(default: 0, corpus.py's split of 20,000 / 2,000)")
    data.add_argument("--vocab-size", type=positive_int, default=512,
                      help="BPE vocabulary, the 256 bytes and <|endoftext|> included "
                           "(default: %(default)s)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--iters", "--steps", dest="iters", type=positive_int, default=None,
                       help="training iterations (default: %(default)s)")
    optim.add_argument("--warmup", type=non_negative_int, default=None,
                       help="linear warm-up iterations (default: %(default)s)")
    optim.add_argument("--min-lr", type=non_negative_float, default=None,
                       help="the rate the cosine ends at (default: %(default)s)")
    optim.add_argument("--beta2", type=probability, default=None,
                       help="AdamW's beta2, beta1 = 0.9 (default: %(default)s)")
    optim.add_argument("--weight-decay", type=non_negative_float, default=None,
                       help="AdamW's decoupled decay, matrices only (default: %(default)s)")
    optim.add_argument("--grad-clip", type=non_negative_float, default=1.0,
                       help="global gradient-norm clipping, 0 = off (default: %(default)s)")
    optim.add_argument("--eval-interval", type=non_negative_int, default=None,
                       help="iterations between loss estimates, 0 = only at the end "
                            "(default: %(default)s)")
    optim.add_argument("--eval-iters", type=positive_int, default=None,
                       help="random batches per loss estimate (default: %(default)s)")
    sample = parser.add_argument_group("samples")
    sample.add_argument("--prompt", default=None,
                        help="text the samples start from (default: %(default)s)")
    sample.add_argument("--samples", type=non_negative_int, default=2,
                        help="samples drawn at the end (default: %(default)s)")
    sample.add_argument("--sample-tokens", type=positive_int, default=300,
                        help="new tokens per sample (default: %(default)s)")
    sample.add_argument("--temperature", type=positive_float, default=0.8,
                        help="sampling temperature (default: %(default)s, as nanoGPT)")
    sample.add_argument("--top-k", type=positive_int, default=200,
                        help="sample among the k most likely tokens (default: %(default)s)")
    return parser


def _preset_of(argv: Sequence[str] | None) -> str:
    """The --preset in ``argv`` (a first look, so that the preset can fill the defaults)."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default="none")
    return first.parse_known_args(argv)[0].preset


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of ``argv``: the dataset's defaults, overridden by --preset, overridden
    by the options given; a bad combination is a usage error (exit 2) naming the option."""
    parser = build_parser()
    preset = PRESETS.get(_preset_of(argv), {})
    table = {name: {**values, **preset} for name, values in DEFAULTS.items()}
    args = parse_args(parser, argv, table)
    if args.d_model % args.heads:
        parser.error(f"argument --heads: {args.heads} must divide --d-model ({args.d_model})")
    if args.tokenizer == "bpe" and args.vocab_size <= 257:
        parser.error(f"argument --vocab-size: byte-level BPE needs more than the 256 byte "
                     f"tokens and <|endoftext|>, got {args.vocab_size}")
    if args.warmup >= args.iters:
        parser.error(f"argument --warmup: {args.warmup} must be below --iters ({args.iters})")
    if args.min_lr > args.lr:
        parser.error(f"argument --min-lr: {args.min_lr} must not exceed --lr ({args.lr})")
    if not args.prompt:
        parser.error("argument --prompt: the samples need at least one character")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, score the validation split, sample, save. Returns {"val_loss" (nats per
    token, the whole validation split), "bits_per_char", "val_estimate" (nanoGPT's estimate
    at the end), "unigram_loss" (nats per character of the best context-free model),
    "floor" (generated: the generator's own entropy, nats per character), "first_loss",
    "iters", "train_seconds" (the loop, evaluations included), "step_seconds" (without
    them), "val_tokens" and "val_characters" (predicted), "parameters", "samples",
    "checkpoint"}."""
    args = parse_options(argv)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    """The body of ``main``: data, tokenizer, model, training, scores, samples, saving."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    train_text, val_text = load_text(args.dataset, args.data_root, args.seed, args.sentences)
    started = time.perf_counter()
    tokenizer = make_tokenizer(args.tokenizer, train_text, args.vocab_size)
    train_ids, val_ids = encode(tokenizer, train_text), encode(tokenizer, val_text)
    for name, ids in (("training", train_ids), ("validation", val_ids)):
        if len(ids) <= args.max_len:  # one window needs context + 1 tokens
            raise SystemExit(f"error: the {name} split has {len(ids)} tokens, too few for "
                             f"--max-len {args.max_len}; lower --max-len")
    try:
        encode(tokenizer, args.prompt)
    except ValueError as error:  # a character the training text lacks
        raise SystemExit(f"error: argument --prompt: {error}") from None
    print(f"{args.dataset}: {len(train_text):,} training / {len(val_text):,} validation "
          f"characters -> {len(train_ids):,} / {len(val_ids):,} {args.tokenizer} tokens, "
          f"vocabulary {tokenizer.vocab_size} ({time.perf_counter() - started:.1f} s)")

    config = gpt.GPTConfig(vocab_size=tokenizer.vocab_size, max_len=args.max_len,
                           d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                           dropout=args.dropout, attn_dropout=args.dropout,
                           attn_implementation=args.attn_implementation)
    model = gpt.GPT(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    history = train(model, train_ids, val_ids, iters=args.iters, batch_size=args.batch_size,
                    context=args.max_len, lr=args.lr, min_lr=args.min_lr, warmup=args.warmup,
                    weight_decay=args.weight_decay, betas=(0.9, args.beta2),
                    grad_clip=args.grad_clip, eval_interval=args.eval_interval,
                    eval_iters=args.eval_iters, seed=args.seed, progress=args.progress)
    seconds, step_seconds = history["seconds"][0], history["step_seconds"][0]

    scored = time.perf_counter()
    total_nats, predicted = split_nats(model, val_ids, args.max_len)
    characters = predicted_characters(tokenizer, val_ids)
    val_loss, bpc = total_nats / predicted, bits_per_character(total_nats, characters)
    unigram = float(corpus.unigram_loss(train_text, val_text))
    result = {"val_loss": val_loss, "bits_per_char": bpc,
              "val_estimate": history["val_estimate"][-1], "unigram_loss": unigram,
              "first_loss": history["loss"][0], "iters": float(args.iters),
              "train_seconds": seconds, "step_seconds": step_seconds,
              "val_tokens": float(predicted), "val_characters": float(characters),
              "parameters": float(n_params)}
    floor = ""
    if args.dataset == "generated":
        result["floor"] = float(corpus.entropy_per_char(val_text))
        floor = f", the generator's own entropy {result['floor']:.3f} nats/char (the floor)"
    print(f"GPT {args.layers} x {args.d_model}, {args.heads} heads, context {args.max_len}, "
          f"{n_params:,} parameters, {args.attn_implementation} attention: {args.iters} "
          f"iterations of {args.batch_size} x {args.max_len} tokens in {seconds:.1f} s on "
          f"{device} ({step_seconds:.1f} s without the {len(history['eval_iter'])} loss "
          f"estimates)")
    print(f"validation ({predicted:,} tokens, scored in {time.perf_counter() - scored:.1f} s): "
          f"loss {val_loss:.4f} nats/token, {bpc:.4f} bits/char (nanoGPT's estimate on "
          f"{args.eval_iters} batches: {result['val_estimate']:.4f}); context-free unigram "
          f"model {unigram:.3f} nats/char = {unigram / math.log(2):.3f} bits/char{floor}")

    result["samples"] = _samples(model, tokenizer, args, out)
    checkpoint = out / "checkpoint"
    convert.save_pretrained(model.cpu(), checkpoint)
    save_tokenizer(tokenizer, checkpoint)
    result["checkpoint"] = str(checkpoint)
    _plot(history, out, f"{args.dataset}, {args.tokenizer} tokens")
    print(f"checkpoint written to {checkpoint} (sample from it: python "
          f"09_GPT/paper/generate.py --checkpoint {checkpoint}); loss.png, samples.txt in {out}")
    return result


def _samples(model, tokenizer, args, out: Path) -> list[str]:
    """Draw --samples texts from --prompt (top-k, temperature), print and write them."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    prompt = encode(tokenizer, args.prompt)[None, -args.max_len:].to(device)  # (1, P)
    texts = []
    for _ in range(args.samples):
        ids = sampling.continue_ids(model, prompt, args.sample_tokens,
                                    temperature=args.temperature, top_k=args.top_k,
                                    generator=generator)
        texts.append(tokenizer.decode(ids[0].tolist()))
    separator = "\n" + "-" * 40 + "\n"
    if texts:
        print(f"samples (temperature {args.temperature}, top-k {args.top_k}):{separator}"
              + separator.join(texts))
    (out / "samples.txt").write_text(separator.join(texts) + "\n", encoding="utf-8")
    return texts


def _plot(history: dict[str, list[float]], out: Path, about: str) -> None:
    """loss.png: the training loss per iteration, and the train / validation estimates at
    the evaluations."""
    figure = plot_curves({"training batch": history["loss"]}, xlabel="iteration",
                         ylabel="cross-entropy (nats per token)", title=f"GPT on {about}")
    axes = figure.axes[0]
    for key, label in (("train_estimate", "train (estimate)"),
                       ("val_estimate", "validation (estimate)")):
        axes.plot(history["eval_iter"], history[key], marker="o", label=label)
    axes.legend()
    save_figure(figure, out / "loss.png")


if __name__ == "__main__":
    main()
