"""Pre-train a small low-level BERT (masked LM + next sentence prediction) on the generated
corpus of ``corpus.py``; print the held-out masked-token and NSP accuracies, plot the losses.

    python 08_BERT/pytorch_lowlevel/train.py
    python -m 08_BERT.pytorch_lowlevel.train --steps 1500 --d-model 128

The model is ``bert_lowlevel.py``; each step masks a fresh batch (dynamic masking, as
RoBERTa; BERT masked each sequence 10 ways up front), computes the MLM logits at the masked
positions only, and takes one hand-written AdamW step on the linear warm-up / decay schedule.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.training_utils import get_device, seed_everything, torch_threads

bert = import_lesson("08_BERT.pytorch_lowlevel.bert_lowlevel")
corpus = import_lesson("08_BERT.pytorch_lowlevel.corpus")

SPECIAL_IDS = (corpus.PAD_ID, corpus.CLS_ID, corpus.SEP_ID)  # never chosen for masking


def pretraining_step(params, config, batch, generator, mask_prob: float, training: bool = True):
    """Mask ``batch`` (a corpus.Pairs), run the model, return (loss, mlm_loss, nsp_loss,
    mlm_logits at the masked positions (M, V), their labels (M,), nsp_logits (B, 2))."""
    special = bert.special_tokens_mask(batch.input_ids, SPECIAL_IDS)
    inputs, labels = bert.mask_tokens(batch.input_ids, special, config.vocab_size,
                                      corpus.MASK_ID, generator, p=mask_prob)
    out = bert.forward(params, config, inputs, batch.token_type_ids, batch.attention_mask,
                       training=training)
    masked = labels != bert.IGNORE_INDEX  # (B, T)
    mlm_logits = bert.mlm_head(params, out.hidden_states[masked], config)  # (M, V) only
    nsp_logits = bert.nsp_head(params, out.pooled)  # (B, 2)
    mlm_loss = bert.masked_lm_loss(mlm_logits, labels[masked])
    nsp_loss = bert.next_sentence_loss(nsp_logits, batch.next_sentence_label)
    return mlm_loss + nsp_loss, mlm_loss, nsp_loss, mlm_logits, labels[masked], nsp_logits


def train(params, config, data, *, steps: int, batch_size: int, lr: float, warmup: int,
          weight_decay: float, mask_prob: float, seed: int = 0,
          progress: bool = False) -> dict[str, list[float]]:
    """AdamW on the MLM + NSP loss. Returns per-step {"mlm_loss", "nsp_loss", "lr"}."""
    groups = bert.param_groups(params, weight_decay)
    order_rng = torch.Generator().manual_seed(seed)
    mask_rng = torch.Generator(device=data.input_ids.device).manual_seed(seed)
    history: dict[str, list[float]] = {"mlm_loss": [], "nsp_loss": [], "lr": []}
    state, order, cursor = None, torch.randperm(len(data), generator=order_rng), 0
    bar = tqdm(range(steps), desc="BERT (L2)", disable=not progress, leave=False)
    for step in bar:
        if cursor + batch_size > len(data):  # a new epoch: reshuffle
            order, cursor = torch.randperm(len(data), generator=order_rng), 0
        batch = data[order[cursor:cursor + batch_size].to(data.input_ids.device)]
        cursor += batch_size
        bert.zero_grad(params.values())
        loss, mlm_loss, nsp_loss, *_ = pretraining_step(params, config, batch, mask_rng,
                                                        mask_prob)
        loss.backward()
        rate = bert.linear_warmup_decay(step, lr, warmup, steps)
        state = bert.adamw_step(groups, rate, state=state)
        history["mlm_loss"].append(float(mlm_loss.detach()))
        history["nsp_loss"].append(float(nsp_loss.detach()))
        history["lr"].append(rate)
        if not np.isfinite(history["mlm_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['mlm_loss'][-1]} at step "
                                     f"{step}; lower --lr")
        if step % 50 == 0:
            bar.set_postfix(mlm=f"{history['mlm_loss'][-1]:.3f}",
                            nsp=f"{history['nsp_loss'][-1]:.3f}")
    return history


@torch.no_grad()
def evaluate(params, config, data, mask_prob: float, seed: int) -> dict[str, float]:
    """Held-out masked-token accuracy (argmax at every chosen position, the 10 % random and
    10 % unchanged included, as BERT's run_pretraining reports it), NSP accuracy, both
    losses; one fixed masking (``seed``), dropout off."""
    generator = torch.Generator(device=data.input_ids.device).manual_seed(seed)
    _, mlm_loss, nsp_loss, mlm_logits, labels, nsp_logits = pretraining_step(
        params, config, data, generator, mask_prob, training=False)
    return {"masked_accuracy": float((mlm_logits.argmax(-1) == labels).double().mean()),
            "nsp_accuracy": float((nsp_logits.argmax(-1) == data.next_sentence_label)
                                  .double().mean()),
            "mlm_loss": float(mlm_loss), "nsp_loss": float(nsp_loss), "masked": len(labels)}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Pre-train on generated sentence pairs; evaluate on held-out pairs never seen in training.

    Returns: {"masked_accuracy", "nsp_accuracy" (held-out), "majority_baseline" (always the
              most frequent masked token of the training data), "final_mlm_loss" (mean of the
              last 20 steps), "first_mlm_loss", "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="BERT from tensors and autograd, pre-trained with the masked LM and next "
                    "sentence prediction on generated sentence pairs (agreement, selection, "
                    "reference across [SEP]); hand-written AdamW, linear warm-up and decay.")
    add_common_args(parser, datasets=("generated",), batch_size=64, lr=3e-3,
                    out="runs/08_BERT/l2_bert", counts_steps=True, threads=1)
    parser.add_argument("--steps", type=positive_int, default=1000,
                        help="optimiser steps (default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=None,
                        help="warm-up steps (default: 10%% of --steps; BERT: 10,000 of 1M)")
    parser.add_argument("--n-train", type=positive_int, default=8000,
                        help="training pairs (default: %(default)s)")
    parser.add_argument("--n-test", type=positive_int, default=1000,
                        help="held-out pairs (default: %(default)s)")
    parser.add_argument("--d-model", type=positive_int, default=64,
                        help="hidden size H (default: %(default)s; BERT-base 768)")
    parser.add_argument("--layers", type=positive_int, default=2,
                        help="encoder layers L (default: %(default)s; BERT-base 12)")
    parser.add_argument("--heads", type=positive_int, default=4,
                        help="attention heads A, must divide --d-model (default: %(default)s)")
    parser.add_argument("--d-ff", type=positive_int, default=None,
                        help="feed-forward width (default: 4 x --d-model, as BERT)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="hidden and attention dropout (default: %(default)s; BERT: 0.1)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.01,
                        help="AdamW's decoupled weight decay (default: %(default)s, as BERT)")
    parser.add_argument("--mask-prob", type=probability, default=0.15,
                        help="share of tokens chosen for prediction (default: %(default)s)")
    args = parse_args(parser, argv)
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    if args.mask_prob == 0:
        parser.error("--mask-prob must be > 0: the masked LM needs masked tokens")
    if args.n_train < args.batch_size:
        parser.error(f"--n-train ({args.n_train}) must be >= --batch-size ({args.batch_size})")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: data, model, training, evaluation, plots."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    data = corpus.make_pairs(args.n_train, seed=args.seed)
    test = corpus.make_pairs(args.n_test, seed=args.seed + 1)
    seen = set(map(corpus.words_key, data.input_ids))
    test = test[torch.tensor([corpus.words_key(row) not in seen for row in test.input_ids])]
    if len(test) == 0:
        raise SystemExit("error: every held-out pair also occurs in training; raise --n-test")
    config = bert.BertConfig(vocab_size=len(corpus.VOCAB), d_model=args.d_model,
                             n_layers=args.layers, n_heads=args.heads,
                             d_ff=args.d_ff or 4 * args.d_model,
                             max_len=max(data.input_ids.shape[1], test.input_ids.shape[1]),
                             dropout=args.dropout, attn_dropout=args.dropout,
                             pad_id=corpus.PAD_ID)
    params = bert.init_params(config, seed=args.seed, device=device)
    data, test = data.to(device), test.to(device)
    print(f"generated corpus: {len(data)} training pairs, {len(test)} held-out pairs never "
          f"seen in training, vocabulary {config.vocab_size}; e.g.\n  "
          f"{corpus.decode(test.input_ids[0])}")

    warmup = args.warmup if args.warmup is not None else max(1, args.steps // 10)
    started = time.perf_counter()
    history = train(params, config, data, steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, warmup=warmup, weight_decay=args.weight_decay,
                    mask_prob=args.mask_prob, seed=args.seed, progress=args.progress)
    seconds = time.perf_counter() - started
    result = evaluate(params, config, test, args.mask_prob, seed=args.seed + 2)
    # the trivial baseline: always predict the most frequent token of the training data
    real = data.input_ids[~bert.special_tokens_mask(data.input_ids, SPECIAL_IDS)]
    majority = int(torch.bincount(real).argmax())
    test_real = test.input_ids[~bert.special_tokens_mask(test.input_ids, SPECIAL_IDS)]
    baseline = float((test_real == majority).double().mean())
    n_params = sum(p.numel() for p in params.values())
    print(f"BERT (L2), {n_params:,} parameters, {args.steps} steps in {seconds:.1f} s on "
          f"{device}: held-out masked-token accuracy {result['masked_accuracy']:.4f} over "
          f"{result['masked']} masked tokens (always {corpus.VOCAB[majority]!r}: "
          f"{baseline:.4f}), NSP accuracy {result['nsp_accuracy']:.4f}, masked-LM loss "
          f"{result['mlm_loss']:.3f}")
    _plot(history, out)
    print(f"plots written to {out}")
    return {"masked_accuracy": result["masked_accuracy"],
            "nsp_accuracy": result["nsp_accuracy"], "majority_baseline": baseline,
            "final_mlm_loss": float(np.mean(history["mlm_loss"][-20:])),
            "first_mlm_loss": history["mlm_loss"][0], "train_seconds": seconds}


def _plot(history: dict[str, list[float]], out) -> None:
    """The two pre-training losses per step (loss.png) and the learning rate (lr.png)."""
    from utils.visualization import plot_curves

    plot_curves({"masked-LM loss": history["mlm_loss"], "NSP loss": history["nsp_loss"]},
                path=out / "loss.png", xlabel="step", ylabel="cross-entropy",
                title="L2 BERT pre-training on the generated corpus")
    plot_curves({"learning rate": history["lr"]}, path=out / "lr.png", xlabel="step",
                ylabel="lr", title="linear warm-up, then linear decay (Appendix A.2)")


if __name__ == "__main__":
    main()
