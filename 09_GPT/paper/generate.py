"""Continue a prompt with a GPT checkpoint: train.py's, or a real GPT-2 in transformers' layout.

    python 09_GPT/paper/generate.py --checkpoint runs/09_GPT/shakespeare/checkpoint \\
        --prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 --top-k 40
    python 09_GPT/paper/generate.py --checkpoint DIR/gpt2 --prompt "The meaning of life is" \\
        --greedy --max-new-tokens 30          # GPT-2 small, downloaded once elsewhere

The folder holds config.json and model.safetensors (or pytorch_model.bin), read by
convert.py into our GPT (gpt_paper.py) without transformers, and the tokenizer's files:
vocab.json + merges.txt (byte-level BPE: GPT-2's own, or train.py --tokenizer bpe) or the
character table char_vocab.json of train.py --tokenizer char (tokenizer.py reads both). Decoding
(gpt_paper.GPT.generate, with the key/value cache): greedy (--greedy), or sampling from
softmax(logits / --temperature) restricted to the --top-k most likely tokens and to the
nucleus of probability --top-p, reproducible with --seed. Beyond the model's context the
window slides, as nanoGPT's sample.py does: each new token sees the last max_len tokens.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from utils import import_lesson
from utils.cli import DEVICE_CHOICES, non_negative_int, positive_float, positive_int
from utils.training_utils import get_device, torch_threads

gpt = import_lesson("09_GPT.paper.gpt_paper")
convert = import_lesson("09_GPT.paper.convert")
tokenization = import_lesson("09_GPT.paper.tokenizer")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CHAR_VOCAB = "char_vocab.json"  # train.py --tokenizer char: {"type": "char", "chars": [...]}


@torch.no_grad()
def continue_ids(model, input_ids: torch.Tensor, max_new_tokens: int, *,
                 do_sample: bool = True, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``model.generate`` (cached) while prompt + new tokens fit the context; beyond it a
    sliding window (nanoGPT's crop): each further token is predicted from the last max_len
    tokens, recomputed without a cache.

    Inputs:  input_ids (B, P) int64, P <= max_len.
    Returns: (B, P + max_new_tokens) int64, the prompt included.
    """
    max_len = model.config.max_len
    first = min(max_new_tokens, max_len - input_ids.shape[1])
    ids = model.generate(input_ids, first, do_sample=do_sample, temperature=temperature,
                         top_k=top_k, top_p=top_p, generator=generator)
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens - first):
        logits = model(ids[:, -max_len:])[:, -1]  # (B, V): the last position
        next_token = (gpt.sample_next(logits, temperature, top_k, top_p, generator)
                      if do_sample else logits.argmax(dim=-1))  # (B,)
        ids = torch.cat([ids, next_token[:, None]], dim=1)  # (B, T + 1)
    model.train(was_training)
    return ids


def has_tokenizer_files(directory: Path) -> bool:
    """Does ``directory`` hold a tokenizer: train.py's characters, vocab.json + merges.txt,
    or transformers' tokenizer.json?"""
    return ((directory / CHAR_VOCAB).is_file() or (directory / "tokenizer.json").is_file()
            or all((directory / name).is_file() for name in ("vocab.json", "merges.txt")))


def load_tokenizer(directory: Path):
    """The tokenizer whose files lie in ``directory``: train.py's characters (CHAR_VOCAB),
    else byte-level BPE (vocab.json and merges.txt, or tokenizer.json)."""
    if (directory / CHAR_VOCAB).is_file():
        return tokenization.CharTokenizer.load(directory / CHAR_VOCAB)
    return tokenization.ByteLevelBPETokenizer.from_pretrained(directory)


def check_checkpoint(parser: argparse.ArgumentParser, directory: Path) -> None:
    """--checkpoint DIR holds a config, weights and a tokenizer; else a usage error that
    names the option and the files expected."""
    if not directory.is_dir():
        parser.error(f"argument --checkpoint: {directory} is not a folder; give the "
                     "checkpoint folder train.py writes (OUT/checkpoint) or a GPT-2 folder "
                     "in transformers' layout")
    missing = [name for name in ("config.json",) if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not has_tokenizer_files(directory):
        missing.append(f"the tokenizer's files (vocab.json and merges.txt, or train.py's "
                       f"{CHAR_VOCAB})")
    if missing:
        parser.error(f"argument --checkpoint: {directory} lacks {'; '.join(missing)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Continue a prompt with a GPT checkpoint folder (train.py's, or GPT-2 in "
                    "transformers' layout): greedy or sampled with temperature, top-k, top-p.")
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR",
                        help="folder with config.json, model.safetensors (or "
                             "pytorch_model.bin) and the tokenizer's files")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=non_negative_int, default=200,
                        help="tokens to add (default: %(default)s)")
    parser.add_argument("--temperature", type=positive_float, default=1.0,
                        help="divide the logits by this before sampling: below 1 safer, "
                             "above 1 more varied (default: %(default)s)")
    parser.add_argument("--top-k", type=positive_int, default=None,
                        help="sample among the k most likely tokens only (default: all)")
    parser.add_argument("--top-p", type=positive_float, default=None,
                        help="sample from the smallest set of tokens whose probabilities sum "
                             "to at least p, in (0, 1] (default: no nucleus)")
    parser.add_argument("--greedy", action="store_true",
                        help="always take the most likely token (ignores the sampling options)")
    parser.add_argument("--samples", type=positive_int, default=1,
                        help="continuations to draw (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="default: %(default)s")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="CPU threads (0: torch's default; default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Load, continue the prompt, print; returns {"texts" (prompt included), "ids" (lists),
    "new_tokens", "seconds", "tokens_per_second"}."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.top_p is not None and args.top_p > 1:
        parser.error(f"argument --top-p: expected a probability in (0, 1], got {args.top_p}")
    if not args.prompt:
        parser.error("argument --prompt: give at least one character to continue")
    check_checkpoint(parser, args.checkpoint)
    with torch_threads(args.threads):
        return _run(args, parser)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    device = get_device(args.device)
    try:
        model = convert.load_pretrained(args.checkpoint).to(device).eval()
        tokenizer = load_tokenizer(args.checkpoint)
    except (ValueError, FileNotFoundError, KeyError) as error:
        raise SystemExit(f"error: --checkpoint {args.checkpoint}: {error}") from None
    try:
        prompt_ids = tokenizer.encode(args.prompt)
    except ValueError as error:  # a character the character vocabulary lacks
        parser.error(f"argument --prompt: {error}")
    prompt = torch.tensor([prompt_ids], dtype=torch.int64, device=device)  # (1, P)
    if prompt.shape[1] > model.config.max_len:
        parser.error(f"argument --prompt: {prompt.shape[1]} tokens, longer than the model's "
                     f"context ({model.config.max_len})")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    texts, rows = [], []
    started = time.perf_counter()
    for _ in range(args.samples):
        ids = continue_ids(model, prompt, args.max_new_tokens, do_sample=not args.greedy,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                           generator=generator)
        rows.append(ids[0].tolist())
        texts.append(tokenizer.decode(rows[-1]))
    seconds = time.perf_counter() - started
    new_tokens = args.samples * args.max_new_tokens
    how = "greedy" if args.greedy else (f"temperature {args.temperature}, top-k {args.top_k}, "
                                        f"top-p {args.top_p}, seed {args.seed}")
    print(f"{args.checkpoint}: GPT {model.config.n_layers} x {model.config.d_model}, "
          f"{how}, {new_tokens} new tokens in {seconds:.2f} s on {device}")
    print(("\n" + "-" * 40 + "\n").join(texts))
    return {"texts": texts, "ids": rows, "new_tokens": new_tokens, "seconds": seconds,
            "tokens_per_second": new_tokens / max(seconds, 1e-9)}


if __name__ == "__main__":
    main()
