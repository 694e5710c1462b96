"""Pre-train a small BERT (bert_paper.py) with the masked LM, and next sentence prediction
where the data has sentence pairs; save it in transformers' layout for fine-tuning.

    python 08_BERT/paper/train.py                                  # generated grammar, seconds
    python 08_BERT/paper/train_classifier.py --checkpoint runs/08_BERT/pretrain/checkpoint
    python 08_BERT/paper/train.py --dataset imdb --data-root DIR --time-budget 600 \\
        --out runs/08_BERT/pretrain_imdb                           # 10 minutes
    python 08_BERT/paper/train.py --dataset imdb --data-root DIR --time-budget 6000 \\
        --lr 2e-3 --threads 2 --out runs/08_BERT/pretrain_imdb_long  # past the plateau

- ``--dataset grammar`` (no download): the sentence pairs of ../pytorch_lowlevel/corpus.py
  written out as text, half of them with a random B; BertForPreTraining, MLM + NSP loss.
- ``--dataset imdb``: the 25,000 IMDB training reviews, text only (their labels unused),
  packed into sequences of --max-len tokens across review boundaries (RoBERTa's
  FULL-SENTENCES); BertForMaskedLM, MLM loss only (no sentence pairs, no NSP).
A WordPiece vocabulary is trained on the training texts (wordpiece.train_vocab); every batch
is masked afresh with L2's mask_tokens (15 %, 80/10/10; dynamic masking as RoBERTa) and the
MLM head scores the masked positions only; AdamW (torch.optim; no decay on biases and
LayerNorm) on L2's linear warm-up and decay (Appendix A.2). Written under --out:
checkpoint/ (config.json, model.safetensors, vocab.txt, tokenizer_config.json, which
convert.load_pretrained and transformers' from_pretrained both read), loss.png,
mlm_accuracy.png.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
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
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_imdb
from utils.training_utils import seed_everything, torch_threads
from utils.visualization import plot_curves

bp = import_lesson("08_BERT.paper.bert_paper")
convert = import_lesson("08_BERT.paper.convert")
wordpiece = import_lesson("08_BERT.paper.wordpiece")
lowlevel = import_lesson("08_BERT.pytorch_lowlevel.bert_lowlevel")  # masking, AdamW groups,
corpus = import_lesson("08_BERT.pytorch_lowlevel.corpus")  # the schedule; the grammar

Batch = dict[str, torch.Tensor]  # input_ids, token_type_ids, attention_mask (B, T) [, labels]

# --------------------------------------------------------------------------------------
# 1. Data: text, a vocabulary trained on it, and sequences of ids
# --------------------------------------------------------------------------------------


def grammar_pairs(n: int, seed: int, random_next: float = 0.5
                  ) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` sentence pairs of corpus.py's grammar as text: (sentences A, sentences B,
    next_sentence_label (n,): 0 = B follows A, 1 = B is another pair's B)."""
    pairs = corpus.make_pairs(n, seed=seed, random_next=random_next)
    first, second = [], []
    for row in pairs.input_ids:  # "[CLS] the dog barks . [SEP] it barks . [SEP]"
        a, b, _ = corpus.decode(row).removeprefix("[CLS] ").split(" [SEP]")
        first.append(a)
        second.append(b.strip())
    return first, second, pairs.next_sentence_label.numpy()


def clean_review(text: str) -> str:
    """IMDB reviews hold HTML line breaks ("<br />"): make them spaces."""
    return text.replace("<br />", " ").replace("<br/>", " ")


def imdb_reviews(data_root) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(train texts, train labels, test texts, test labels), HTML breaks removed."""
    train_x, train_y, test_x, test_y = load_imdb(data_root, download=False)
    return [clean_review(t) for t in train_x], train_y, [clean_review(t) for t in test_x], test_y


def pack_sequences(tokenizer, texts: Sequence[str], max_len: int) -> Batch:
    """Texts -> (N, max_len) blocks [CLS] t_1 ... t_{max_len-2} [SEP] of the concatenated
    token stream, texts separated by [SEP] (RoBERTa's FULL-SENTENCES: no padding at all);
    the last incomplete block is dropped (kept, padded, when it is the only one)."""
    stream = []
    for text in texts:
        stream += tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) + [tokenizer.sep_id]
    width = max_len - 2
    blocks = [stream[i:i + width] for i in range(0, max(1, len(stream) - width + 1), width)]
    rows = [[tokenizer.cls_id, *block, tokenizer.sep_id] for block in blocks]
    return pad_rows(rows, tokenizer.pad_id)


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """Id lists -> {"input_ids", "token_type_ids" (zeros), "attention_mask"} (N, T_max)."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.int64)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = torch.tensor(row, dtype=torch.int64)
        attention_mask[i, :len(row)] = 1
    return {"input_ids": input_ids, "token_type_ids": torch.zeros_like(input_ids),
            "attention_mask": attention_mask}


def take(data: Batch, rows) -> Batch:
    """The rows ``rows`` of every tensor of ``data``."""
    return {key: value[rows] for key, value in data.items()}


def train_tokenizer(texts: Sequence[str], vocab_size: int, directory):
    """A WordPiece vocabulary trained on ``texts`` (the training split only), loaded as
    our tokenizer."""
    wordpiece.train_vocab(texts, vocab_size, directory)
    return wordpiece.WordPieceTokenizer.from_pretrained_dir(directory)


def get_tokenizer(args, texts: Sequence[str], directory):
    """The --checkpoint's tokenizer, else one trained on ``texts``."""
    if args.checkpoint is not None:
        return wordpiece.WordPieceTokenizer.from_pretrained_dir(args.checkpoint)
    return train_tokenizer(texts, args.vocab_size, directory)


# --------------------------------------------------------------------------------------
# 2. The optimiser and the schedule (Appendix A.2), shared with train_classifier.py
# --------------------------------------------------------------------------------------


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """torch.optim.AdamW with BERT's settings (betas 0.9 / 0.999, eps 1e-6) and L2's two
    parameter groups: decay on matrices and embeddings, none on biases and LayerNorm."""
    groups = lowlevel.param_groups(dict(model.named_parameters()), weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)


def scheduled_lr(step: int, elapsed: float, peak_lr: float, warmup: int, steps: int,
                 time_budget: float = 0.0) -> float:
    """L2's linear warm-up then linear decay over ``steps``. With a time budget the schedule
    runs on whichever clock is further on, steps or time (scaled to --steps), so that the
    rate still warms up and reaches 0 when the time is spent."""
    position = max(step, elapsed / time_budget * steps) if time_budget else step
    return lowlevel.linear_warmup_decay(position, peak_lr, warmup, steps)


# --------------------------------------------------------------------------------------
# 3. Pre-training: mask, predict the masked tokens (and whether B follows A)
# --------------------------------------------------------------------------------------


def pretraining_step(model, batch: Batch, tokenizer, generator: torch.Generator,
                     mask_prob: float) -> dict[str, torch.Tensor]:
    """Mask ``batch`` (Section 3.1), run the model; MLM logits at the masked positions only.

    Returns: {"loss": L_MLM (+ L_NSP for BertForPreTraining with "next_sentence_label" in
    the batch), "mlm_loss", "nsp_loss" (or absent), "mlm_correct", "masked", "nsp_correct"}.
    """
    never = (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id)
    special = lowlevel.special_tokens_mask(batch["input_ids"], never)
    inputs, labels = lowlevel.mask_tokens(batch["input_ids"], special, model.config.vocab_size,
                                          tokenizer.mask_id, generator, p=mask_prob)
    out = model.bert(inputs, batch["token_type_ids"], batch["attention_mask"])
    masked = labels != bp.IGNORE_INDEX  # (B, T)
    mlm_logits = model.mlm_head(out.hidden_states[masked])  # (M, V): masked positions only
    result = {"mlm_loss": bp.masked_lm_loss(mlm_logits, labels[masked]),
              "mlm_correct": (mlm_logits.argmax(-1) == labels[masked]).sum(),
              "masked": masked.sum()}
    result["loss"] = result["mlm_loss"]
    if isinstance(model, bp.BertForPreTraining) and "next_sentence_label" in batch:
        nsp_logits = model.nsp_head(out.pooled)  # (B, 2)
        result["nsp_loss"] = bp.next_sentence_loss(nsp_logits, batch["next_sentence_label"])
        result["nsp_correct"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum()
        result["loss"] = result["mlm_loss"] + result["nsp_loss"]  # Appendix A.2
    return result


@torch.no_grad()
def evaluate(model, data: Batch, tokenizer, mask_prob: float, seed: int,
             batch_size: int = 128) -> dict[str, float]:
    """Held-out masked-token accuracy (argmax at every chosen position, the 10 % random and
    10 % unchanged included, as BERT's run_pretraining reports it), MLM loss, NSP accuracy
    when the data has pairs; one fixed masking (``seed``), eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=data["input_ids"].device).manual_seed(seed)
    totals = {"mlm_correct": 0.0, "masked": 0.0, "mlm_loss": 0.0, "nsp_correct": 0.0}
    n = len(data["input_ids"])
    for start in range(0, n, batch_size):
        out = pretraining_step(model, take(data, slice(start, start + batch_size)), tokenizer,
                               generator, mask_prob)
        totals["mlm_loss"] += float(out["mlm_loss"]) * float(out["masked"])
        for key in ("mlm_correct", "masked", "nsp_correct"):
            totals[key] += float(out.get(key, 0))
    model.train(was_training)
    result = {"masked_accuracy": totals["mlm_correct"] / max(1.0, totals["masked"]),
              "mlm_loss": totals["mlm_loss"] / max(1.0, totals["masked"]),
              "masked": totals["masked"]}
    if "next_sentence_label" in data and isinstance(model, bp.BertForPreTraining):
        result["nsp_accuracy"] = totals["nsp_correct"] / n
    return result


def train(model, data: Batch, tokenizer, *, steps: int, batch_size: int, lr: float,
          warmup: int, weight_decay: float, mask_prob: float, seed: int = 0,
          time_budget: float = 0.0, evaluate_every: int = 0,
          evaluate_fn: Callable[[], float] | None = None,
          progress: bool = False) -> dict[str, list[float]]:
    """AdamW on the pre-training loss for ``steps`` steps (or until ``time_budget`` seconds).

    Returns the history: per step "mlm_loss", "nsp_loss" (NSP only), "mlm_accuracy" (on the
    training batch), "lr"; per evaluation (every ``evaluate_every`` steps and at the end)
    "eval_step" and "eval_accuracy" (what ``evaluate_fn()`` returns).
    """
    optimizer = make_optimizer(model, lr, weight_decay)
    order_rng = torch.Generator().manual_seed(seed)
    mask_rng = torch.Generator(device=data["input_ids"].device).manual_seed(seed)
    history: dict[str, list[float]] = {"mlm_loss": [], "nsp_loss": [], "mlm_accuracy": [],
                                       "lr": [], "eval_step": [], "eval_accuracy": []}
    n = len(data["input_ids"])
    order, cursor = torch.randperm(n, generator=order_rng), 0
    model.train()
    started = time.perf_counter()
    bar = tqdm(range(steps), desc="BERT pre-training", disable=not progress, leave=False)
    for step in bar:
        elapsed = time.perf_counter() - started
        if time_budget and elapsed > time_budget:
            print(f"time budget of {time_budget:g} s reached after {step} steps")
            break
        if cursor + batch_size > n:  # a new epoch: reshuffle
            order, cursor = torch.randperm(n, generator=order_rng), 0
        batch = take(data, order[cursor:cursor + batch_size].to(data["input_ids"].device))
        cursor += batch_size
        rate = scheduled_lr(step, elapsed, lr, warmup, steps, time_budget)
        for group in optimizer.param_groups:
            group["lr"] = rate
        out = pretraining_step(model, batch, tokenizer, mask_rng, mask_prob)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        history["mlm_loss"].append(float(out["mlm_loss"].detach()))
        if "nsp_loss" in out:
            history["nsp_loss"].append(float(out["nsp_loss"].detach()))
        history["mlm_accuracy"].append(float(out["mlm_correct"]) / max(1, int(out["masked"])))
        history["lr"].append(rate)
        if not np.isfinite(history["mlm_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['mlm_loss'][-1]} at step "
                                     f"{step}; lower --lr")
        if evaluate_fn is not None and evaluate_every and (step + 1) % evaluate_every == 0:
            history["eval_step"].append(step + 1)
            history["eval_accuracy"].append(evaluate_fn())
        if step % 20 == 0:
            bar.set_postfix(mlm=f"{history['mlm_loss'][-1]:.3f}", lr=f"{rate:.2e}")
    done = len(history["mlm_loss"])
    if evaluate_fn is not None and (not history["eval_step"] or history["eval_step"][-1] != done):
        history["eval_step"].append(done)
        history["eval_accuracy"].append(evaluate_fn())
    return history


# --------------------------------------------------------------------------------------
# 4. The script
# --------------------------------------------------------------------------------------

# Sizes per dataset. grammar: the L2 script's model (2 layers, H = 64), 1,000 steps: with
# fewer (or a lower rate) the masked LM has not yet learnt subject-verb agreement, which the
# acceptability task of train_classifier.py needs. imdb: BERT-Tiny (Turc et al. 2019: L = 2,
# H = 128, A = 2), sequences of 128 tokens, BERT's peak rate 1e-4 raised to 1e-3 for a run
# of minutes instead of days. In 10 minutes of one CPU core BERT-Mini (L = 4, H = 256) makes
# ~500 steps and its masked LM has not left the unigram plateau (loss ~6.5); BERT-Tiny
# makes four times as many. BERT-Tiny's own plateau (masked-token accuracy ~0.13) ends
# with a sudden drop of the loss after ~15,000 steps at --lr 2e-3 (Chen et al. 2023); the
# README's 100-minute run shows it.
DEFAULTS = {
    "grammar": {"steps": 1000, "batch_size": 64, "lr": 4e-3, "vocab_size": 200, "max_len": 32,
                "d_model": 64, "layers": 2, "heads": 4, "n_train": 8000, "n_test": 1000,
                "time_budget": 0.0, "evaluate_every": 50},
    "imdb": {"steps": 100000, "batch_size": 32, "lr": 1e-3, "vocab_size": 8192,
             "max_len": 128, "d_model": 128, "layers": 2, "heads": 2, "n_train": 0,
             "n_test": 500, "time_budget": 600.0, "evaluate_every": 100},
}
EVAL_SEQUENCES = 512  # held-out sequences scored during training (all of them at the end)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Pre-train a small BERT (bert_paper.py) with the masked LM (+ next "
                    "sentence prediction on the grammar's sentence pairs) and save it in "
                    "transformers' layout for train_classifier.py --checkpoint.")
    add_common_args(parser, datasets=tuple(DEFAULTS), batch_size=None, lr=None,
                    out="runs/08_BERT/pretrain", counts_steps=True, threads=1)
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="optimiser steps (default: %(default)s)")
    parser.add_argument("--time-budget", type=non_negative_float, default=None,
                        help="stop after this many seconds of training, the schedule "
                             "squeezed to fit (0: no limit; default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=None,
                        help="warm-up steps (default: 10%% of --steps, or of the time budget)")
    parser.add_argument("--vocab-size", type=positive_int, default=None,
                        help="WordPiece vocabulary to train, special tokens included "
                             "(default: %(default)s)")
    parser.add_argument("--max-len", type=positive_int, default=None,
                        help="tokens per sequence, [CLS] and [SEP] included; also the "
                             "model's position table (default: %(default)s)")
    parser.add_argument("--d-model", type=positive_int, default=None,
                        help="hidden size H (default: %(default)s; BERT-base 768)")
    parser.add_argument("--layers", type=positive_int, default=None,
                        help="encoder layers L (default: %(default)s; BERT-base 12)")
    parser.add_argument("--heads", type=positive_int, default=None,
                        help="attention heads A, must divide --d-model (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.1,
                        help="hidden and attention dropout (default: %(default)s, as BERT)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.01,
                        help="AdamW's decoupled weight decay (default: %(default)s, as BERT)")
    parser.add_argument("--mask-prob", type=probability, default=0.15,
                        help="share of tokens chosen for prediction (default: %(default)s)")
    parser.add_argument("--n-train", type=non_negative_int, default=None,
                        help="grammar: training pairs; imdb: training reviews used, 0 = all "
                             "but the held-out ones (default: %(default)s)")
    parser.add_argument("--n-test", type=positive_int, default=None,
                        help="grammar: held-out pairs; imdb: training reviews held out for "
                             "the masked-token accuracy (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                        help="continue pre-training a checkpoint in transformers' layout "
                             "(train.py's, or e.g. bert-base-uncased) on --dataset, with its "
                             "architecture and vocab.txt (the size options are then unused)")
    parser.add_argument("--evaluate-every", type=non_negative_int, default=None,
                        help="steps between held-out evaluations, 0 = only at the end "
                             "(default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Pre-train and save; returns {"masked_accuracy" (held-out), "nsp_accuracy" (grammar),
    "majority_baseline" (always the most frequent training token), "first_mlm_loss",
    "final_mlm_loss" (mean of the last 20 steps), "steps", "train_seconds", "parameters",
    "checkpoint" (the saved directory, a str)}."""
    parser = build_parser()
    args = parse_args(parser, argv, DEFAULTS)
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    if args.mask_prob == 0:
        parser.error("--mask-prob must be > 0: the masked LM needs masked tokens")
    if args.max_len < 8:
        parser.error(f"--max-len must be >= 8 ([CLS], [SEP] and a few tokens), got "
                     f"{args.max_len}")
    if args.vocab_size <= len(wordpiece.SPECIAL_TOKENS):
        parser.error(f"--vocab-size must be > {len(wordpiece.SPECIAL_TOKENS)} (the special "
                     f"tokens), got {args.vocab_size}")
    if args.checkpoint is not None:
        check_checkpoint(parser, args.checkpoint, args.max_len)
    if args.dataset == "grammar" and args.n_train < max(2, args.batch_size):
        parser.error(f"--n-train ({args.n_train}) must be >= --batch-size ({args.batch_size})")
    with torch_threads(args.threads):
        return _run(args)


def _load_data(args, tokenizer_dir) -> tuple:
    """(tokenizer, training sequences, held-out sequences, description)."""
    if args.dataset == "grammar":
        train_a, train_b, train_nsp = grammar_pairs(args.n_train, args.seed)
        test_a, test_b, test_nsp = grammar_pairs(max(2, args.n_test), args.seed + 1)
        seen = set(zip(train_a, train_b))
        new = [i for i, pair in enumerate(zip(test_a, test_b)) if pair not in seen]
        tokenizer = get_tokenizer(args, train_a + train_b, tokenizer_dir)

        def encode(a, b, labels, rows):
            batch = tokenizer.batch_encode([a[i] for i in rows], [b[i] for i in rows],
                                           max_length=args.max_len)
            return {**batch, "next_sentence_label": torch.as_tensor(labels[rows])}

        train = encode(train_a, train_b, train_nsp, np.arange(len(train_a)))
        test = encode(test_a, test_b, test_nsp, np.array(new))
        about = (f"grammar: {len(train_a)} training pairs, {len(new)} held-out pairs never seen "
                 f"in training, half with a random B; e.g. {test_a[0]!r} / {test_b[0]!r}")
        return tokenizer, train, test, about
    with data_errors(hint="the default --dataset grammar needs no download"):
        texts = imdb_reviews(args.data_root)[0]
    order = np.random.default_rng(args.seed).permutation(len(texts))
    held_out = [texts[i] for i in order[:args.n_test]]
    used = order[args.n_test:] if not args.n_train else order[args.n_test:][:args.n_train]
    texts = [texts[i] for i in used]
    started = time.perf_counter()
    tokenizer = get_tokenizer(args, texts, tokenizer_dir)
    train, test = pack_sequences(tokenizer, texts, args.max_len), \
        pack_sequences(tokenizer, held_out, args.max_len)
    about = (f"imdb: {len(texts)} training reviews -> {len(train['input_ids'])} sequences of "
             f"{args.max_len} tokens; {len(held_out)} held-out reviews -> "
             f"{len(test['input_ids'])} sequences (vocabulary and tokens: "
             f"{time.perf_counter() - started:.0f} s)")
    return tokenizer, train, test, about


def _run(args: argparse.Namespace) -> dict:
    """The body of ``main``: data, model, pre-training, evaluation, saving, plots."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    checkpoint = out / "checkpoint"
    tokenizer, train_data, test_data, about = _load_data(args, checkpoint)
    print(f"{about}; vocabulary {len(tokenizer.vocab)} WordPiece tokens")
    model_class = (bp.BertForPreTraining if "next_sentence_label" in train_data
                   else bp.BertForMaskedLM)
    model = _make_model(args, model_class, tokenizer).to(device)
    config = model.config
    train_data = {k: v.to(device) for k, v in train_data.items()}
    test_data = {k: v.to(device) for k, v in test_data.items()}
    watch = take(test_data, slice(0, EVAL_SEQUENCES))

    def held_out_accuracy() -> float:
        return evaluate(model, watch, tokenizer, args.mask_prob, seed=args.seed + 2)[
            "masked_accuracy"]

    warmup = args.warmup if args.warmup is not None else max(1, args.steps // 10)
    started, cpu_started = time.perf_counter(), time.process_time()
    history = train(model, train_data, tokenizer, steps=args.steps,
                    batch_size=args.batch_size, lr=args.lr, warmup=warmup,
                    weight_decay=args.weight_decay, mask_prob=args.mask_prob, seed=args.seed,
                    time_budget=args.time_budget, evaluate_every=args.evaluate_every,
                    evaluate_fn=held_out_accuracy, progress=args.progress)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result = evaluate(model, test_data, tokenizer, args.mask_prob, seed=args.seed + 2)
    baseline = _majority_baseline(train_data, test_data, tokenizer)
    convert.save_pretrained(model.cpu(), checkpoint, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    steps = len(history["mlm_loss"])
    nsp = (f", NSP accuracy {result['nsp_accuracy']:.4f} (chance 0.5)"
           if "nsp_accuracy" in result else "")
    print(f"{type(model).__name__} L={config.n_layers} H={config.d_model} A={config.n_heads}, "
          f"{n_params:,} parameters, {steps} steps of {args.batch_size} x {args.max_len} in "
          f"{seconds:.0f} s ({cpu_seconds:.0f} s CPU) on {device}: held-out masked-token "
          f"accuracy {result['masked_accuracy']:.4f} over {result['masked']:.0f} masked tokens "
          f"(always the most frequent token: {baseline:.4f}){nsp}, masked-LM loss "
          f"{result['mlm_loss']:.3f}")
    _plot(history, out, args.dataset)
    print(f"checkpoint written to {checkpoint} (fine-tune it: python "
          f"08_BERT/paper/train_classifier.py --checkpoint {checkpoint}); plots in {out}")
    return {"masked_accuracy": result["masked_accuracy"],
            **({"nsp_accuracy": result["nsp_accuracy"]} if "nsp_accuracy" in result else {}),
            "majority_baseline": baseline, "first_mlm_loss": history["mlm_loss"][0],
            "final_mlm_loss": float(np.mean(history["mlm_loss"][-20:])),
            "steps": float(steps), "train_seconds": seconds, "parameters": float(n_params),
            "checkpoint": str(checkpoint)}


def _make_model(args, model_class, tokenizer):
    """A fresh model of the size options, or the --checkpoint (heads it lacks start fresh)."""
    if args.checkpoint is None:
        config = bp.BertConfig(vocab_size=len(tokenizer.vocab), d_model=args.d_model,
                               n_layers=args.layers, n_heads=args.heads, d_ff=4 * args.d_model,
                               max_len=args.max_len, dropout=args.dropout,
                               attn_dropout=args.dropout, pad_id=tokenizer.pad_id)
        return model_class(config)
    try:
        model = convert.load_pretrained(args.checkpoint, model_class, new_heads=True)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: --checkpoint {args.checkpoint}: {error}") from None
    return model


def check_checkpoint(parser: argparse.ArgumentParser, directory: Path, max_len: int) -> None:
    """--checkpoint DIR holds config.json and vocab.txt, and its position table holds
    --max-len tokens; otherwise a usage error naming the option (the weights are read later).
    """
    if not (directory / "config.json").is_file() or not (directory / "vocab.txt").is_file():
        parser.error(f"argument --checkpoint: {directory} needs config.json, model.safetensors "
                     "(or pytorch_model.bin) and vocab.txt, as transformers' save_pretrained "
                     "or train.py writes them")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    positions = config.get("max_position_embeddings", 512)
    if max_len > positions:
        parser.error(f"argument --max-len: {max_len} is longer than the checkpoint's position "
                     f"table ({positions} positions)")


def _majority_baseline(train_data: Batch, test_data: Batch, tokenizer) -> float:
    """Held-out accuracy of always predicting the most frequent (non-special) training token."""
    never = (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id)

    def real(data):
        ids = data["input_ids"]
        return ids[~lowlevel.special_tokens_mask(ids, never)]

    majority = int(torch.bincount(real(train_data)).argmax())
    return float((real(test_data) == majority).double().mean())


def _plot(history: dict[str, list[float]], out, dataset: str) -> None:
    """loss.png: the pre-training losses per step; mlm_accuracy.png: the masked-token
    accuracy on the training batches (mean between evaluations) and held out."""
    losses = {"masked-LM loss": history["mlm_loss"]}
    if history["nsp_loss"]:
        losses["NSP loss"] = history["nsp_loss"]
    plot_curves(losses, path=out / "loss.png", xlabel="step", ylabel="cross-entropy",
                title=f"BERT pre-training on {dataset}")
    ends = history["eval_step"]
    starts = [0, *ends[:-1]]
    on_train = [float(np.mean(history["mlm_accuracy"][a:b])) for a, b in zip(starts, ends)]
    every = ends[0] if ends else 1
    plot_curves({"training batches": on_train, "held out": history["eval_accuracy"]},
                path=out / "mlm_accuracy.png", xlabel=f"steps (x {every})",
                ylabel="masked-token accuracy", title=f"masked LM on {dataset}")


if __name__ == "__main__":
    main()
