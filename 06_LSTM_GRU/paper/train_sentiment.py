"""Sentiment of movie reviews with an LSTM over packed sequences (lesson 06, Level 3).

The data: the IMDB Large Movie Review Dataset (Maas et al. 2011, ACL), 25,000 training and
25,000 test reviews, half positive, half negative. The model, ``rnn_paper.SentimentLSTM``,
is the classic recipe for text classification with an LSTM:

    tokens -> embedding (V, E) -> LSTM (ours, rnn_paper.LSTM; optionally bidirectional) over
    the PACKED batch (each review its own length) -> max over time of h_t ([h_fwd; h_bwd]
    when bidirectional) -> linear -> logit

Max-pooling over time lets any position of a long review decide, instead of asking the final
states alone to carry everything (a common choice for sentence classification, e.g. Conneau
et al. 2017, "Supervised learning of universal sentence representations", Section 3.2.2).

Text handling, all written here and built from the TRAINING split only (the test split must
not leak into the vocabulary):
- tokenise: lowercase, "<br />" line breaks become spaces, tokens are runs of letters,
  digits and apostrophes, or single punctuation marks;
- vocabulary: the ``--vocab`` most frequent training tokens, plus "<pad>" (id 0) and "<unk>"
  (id 1) for everything else;
- reviews are cut to ``--max-len`` tokens, keeping the LAST ones by default (the verdict
  tends to come at the end of a review).

Batches group reviews of similar length (so the loop over time runs over few padded steps)
and are packed with ``pack_padded_sequence``.

Without a local copy of IMDB (the default ``--dataset synthetic``), the script trains on a
small generated task so that it runs anywhere in seconds: "reviews" of random filler words
with a few sentiment words (good, great, awful, ...), some negated by "not" just before
them; the label says whether the positive or the negative words win, negation counted.
It needs the same machinery (order matters because of "not") but is not IMDB.

Run it from the repository root::

    python 06_LSTM_GRU/paper/train_sentiment.py                         # synthetic, seconds
    python 06_LSTM_GRU/paper/train_sentiment.py --dataset imdb --data-root DIR
    python 06_LSTM_GRU/paper/train_sentiment.py --dataset imdb --data-root DIR --impl torch
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_imdb
from utils.lessons import import_lesson
from utils.training_utils import torch_threads  # n CPU threads, restored after
from utils.visualization import plot_curves

# the classifier on our LSTM (Level 3 of this lesson); nn.LSTM with --impl torch, to compare
rnn_paper = import_lesson("06_LSTM_GRU.paper.rnn_paper")
SentimentLSTM = rnn_paper.SentimentLSTM

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")

# --------------------------------------------------------------------------------------
# 1. Text -> token ids
# --------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lowercase, drop "<br />" breaks, split into words (letters, digits, ') and punctuation.

    >>> tokenize("Great film!<br /><br />Didn't like the end.")
    ['great', 'film', '!', "didn't", 'like', 'the', 'end', '.']
    """
    text = text.lower().replace("<br />", " ").replace("<br/>", " ")
    return _TOKEN.findall(text)


def build_vocab(token_lists: Sequence[Sequence[str]], max_size: int) -> dict[str, int]:
    """Token -> id for the ``max_size`` most frequent tokens; "<pad>" = 0, "<unk>" = 1.

    Ties in frequency are broken alphabetically, so the vocabulary is the same on every run.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    counts = Counter(tok for toks in token_lists for tok in toks)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_size]
    vocab = {PAD: 0, UNK: 1}
    for tok, _ in ranked:
        vocab[tok] = len(vocab)
    return vocab


def encode(token_lists: Sequence[Sequence[str]], vocab: dict[str, int], max_len: int,
           keep: str = "last") -> list[np.ndarray]:
    """Token lists -> int64 id arrays of at most ``max_len`` ids (at least 1: "<unk>" if empty).

    ``keep`` = "last" keeps the final ``max_len`` tokens of a long review, "first" the first.
    """
    if keep not in ("first", "last"):
        raise ValueError(f"keep must be 'first' or 'last', got {keep!r}")
    out = []
    for toks in token_lists:
        ids = [vocab.get(t, 1) for t in toks] or [1]
        ids = ids[-max_len:] if keep == "last" else ids[:max_len]
        out.append(np.asarray(ids, dtype=np.int64))
    return out


def length_batches(lengths: np.ndarray, batch_size: int, *, shuffle: bool,
                   rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Index batches of similar lengths: sort (within random chunks of 50 batches when
    shuffling), cut into batches, shuffle the batches. Returns a list of int arrays."""
    idx = np.arange(len(lengths))
    if shuffle:
        idx = rng.permutation(idx)
        chunk = batch_size * 50
        idx = np.concatenate([c[np.argsort(-lengths[c], kind="stable")]
                              for c in np.split(idx, range(chunk, len(idx), chunk))])
    else:
        idx = idx[np.argsort(-lengths, kind="stable")]
    batches = [idx[i: i + batch_size] for i in range(0, len(idx), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of id arrays -> (padded (N, T_max) int64 with 0 = <pad>, lengths (N,) int64)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    padded = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.int64)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = torch.from_numpy(s)
    return padded, lengths


# --------------------------------------------------------------------------------------
# 2. The offline stand-in: generated "reviews"
# --------------------------------------------------------------------------------------

POSITIVE = ("good", "great", "excellent", "wonderful", "superb", "enjoyable", "brilliant")
NEGATIVE = ("bad", "awful", "boring", "terrible", "dull", "poor", "horrible")
FILLER = tuple(f"w{i}" for i in range(200)) + ("the", "a", "film", "movie", "plot", "actor")


def make_synthetic_reviews(n: int, seed: int = 0, min_len: int = 10,
                           max_len: int = 60) -> tuple[list[str], np.ndarray]:
    """``n`` generated reviews and labels (1 = positive), balanced at random.

    Each review: filler words with 1-4 sentiment words at random distinct odd positions, each
    negated by a preceding "not" with probability 0.3. Score = sum of +1 (positive word) /
    -1 (negative word), flipped when negated; label = score > 0 (ties are re-drawn).
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    while len(texts) < n:
        length = int(rng.integers(min_len, max_len + 1))
        words = list(rng.choice(FILLER, size=length))
        score = 0
        # sentiment words at distinct odd positions, so a "not" (just before, at an even
        # position) never overwrites another sentiment word
        places = rng.choice(np.arange(1, length, 2), size=int(rng.integers(1, 5)), replace=False)
        for pos in places:
            positive = bool(rng.integers(2))
            words[pos] = str(rng.choice(POSITIVE if positive else NEGATIVE))
            negated = rng.random() < 0.3
            if negated:
                words[pos - 1] = "not"
            score += (1 if positive else -1) * (-1 if negated else 1)
        if score == 0:
            continue
        texts.append(" ".join(words))
        labels.append(int(score > 0))
    return texts, np.asarray(labels, dtype=np.int64)


# --------------------------------------------------------------------------------------
# 3. Training and evaluation
# --------------------------------------------------------------------------------------


def evaluate(model: SentimentLSTM, data: list[np.ndarray], labels: np.ndarray,
             batch_size: int = 256) -> tuple[float, float]:
    """(mean binary cross-entropy, accuracy) over ``data``, in eval mode, no gradients."""
    model.eval()
    loss_sum, correct = 0.0, 0
    lengths = np.array([len(s) for s in data])
    with torch.no_grad():
        for b in length_batches(lengths, batch_size, shuffle=False):
            tokens, lens = collate([data[i] for i in b])
            y = torch.from_numpy(labels[b]).float()
            logits = model(tokens, lens)
            loss_sum += float(nn.functional.binary_cross_entropy_with_logits(
                logits, y, reduction="sum"))
            correct += int(((logits > 0).long() == y.long()).sum())
    model.train()
    return loss_sum / len(data), correct / len(data)


def load_texts(args) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    if args.dataset == "imdb":
        return load_imdb(args.data_root, download=False)
    tr_x, tr_y = make_synthetic_reviews(args.n_synthetic, seed=args.seed)
    te_x, te_y = make_synthetic_reviews(args.n_synthetic // 4, seed=args.seed + 1)
    return tr_x, tr_y, te_x, te_y


# per-dataset defaults (the IMDB ones are the measured run of the lesson README: sized for a
# busy CPU; a bidirectional layer with hidden 128 does better and costs about 4 times more)
DEFAULTS = {"synthetic": {"epochs": 5, "embed": 32, "hidden": 32, "lr": 1e-2, "batch_size": 64,
                          "max_len": 256, "bidirectional": True},
            "imdb": {"epochs": 3, "embed": 64, "hidden": 64, "lr": 3e-3, "batch_size": 128,
                     "max_len": 200, "bidirectional": False}}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the sentiment classifier; returns {"test_accuracy", "test_loss", "train_loss"
    (mean over the last epoch), "train_seconds", "vocab_size", "epochs"}."""
    parser = argparse.ArgumentParser(
        description="Review sentiment with an LSTM over packed sequences "
                    "(our L3 LSTM, or nn.LSTM with --impl torch).")
    add_common_args(parser, datasets=("synthetic", "imdb"), epochs=None, batch_size=None,
                    lr=None, out="runs/06_LSTM_GRU/sentiment", devices=("cpu",), threads=1)
    parser.add_argument("--impl", choices=("ours", "torch"), default="ours")
    parser.add_argument("--vocab", type=positive_int, default=20000,
                        help="most frequent training words (default: %(default)s)")
    parser.add_argument("--max-len", type=positive_int, default=None,
                        help="tokens kept per review (default: %(default)s)")
    parser.add_argument("--keep", choices=("first", "last"), default="last")
    parser.add_argument("--embed", type=positive_int, default=None,
                        help="default: %(default)s")
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help="default: %(default)s")
    parser.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                        help="default: %(default)s")
    parser.add_argument("--n-synthetic", type=positive_int, default=2000,
                        help="training reviews of the synthetic task, >= 8 (test: a quarter)")
    parser.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        help="stop training after this many seconds (0: no limit)")
    parser.add_argument("--monitor", type=positive_int, default=2000,
                        help="test reviews scored after each epoch (all at the end)")
    args = parse_args(parser, argv, DEFAULTS)
    if args.n_synthetic < 8:
        parser.error(f"--n-synthetic must be >= 8 (a quarter of it is the test set), got "
                     f"{args.n_synthetic}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors(hint="the default --dataset synthetic needs no download"):
        tr_x, tr_y, te_x, te_y = load_texts(args)
    started = time.perf_counter()
    tr_tok = [tokenize(t) for t in tr_x]
    vocab = build_vocab(tr_tok, args.vocab)  # training split only
    train = encode(tr_tok, vocab, args.max_len, args.keep)
    test = encode([tokenize(t) for t in te_x], vocab, args.max_len, args.keep)
    print(f"{args.dataset}: {len(train)} train / {len(test)} test reviews, vocabulary "
          f"{len(vocab)}, mean length {np.mean([len(s) for s in train]):.0f} tokens "
          f"(cut to {args.max_len}), prepared in {time.perf_counter() - started:.1f} s")

    model = SentimentLSTM(len(vocab), args.embed, args.hidden, args.bidirectional,
                          impl=args.impl)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    lengths = np.array([len(s) for s in train])
    history = {"train loss": [], "test loss (monitor subset)": []}
    # a fixed random subset of the test set is scored after every epoch; all of it at the end
    watch = rng.permutation(len(test))[: args.monitor]
    started = time.perf_counter()
    out_of_time = False
    for epoch in range(1, args.epochs + 1):
        batches = length_batches(lengths, args.batch_size, shuffle=True, rng=rng)
        bar = (tqdm(total=len(batches), desc=f"epoch {epoch}", leave=False) if args.progress
               else None)
        total, seen = 0.0, 0
        for b in batches:
            tokens, lens = collate([train[i] for i in b])
            y = torch.from_numpy(tr_y[b]).float()
            loss = nn.functional.binary_cross_entropy_with_logits(model(tokens, lens), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(b)
            seen += len(b)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if args.time_budget and time.perf_counter() - started > args.time_budget:
                out_of_time = True
                break
        if bar is not None:
            bar.close()
        mon_loss, mon_acc = evaluate(model, [test[i] for i in watch], te_y[watch])
        history["train loss"].append(total / seen)
        history["test loss (monitor subset)"].append(mon_loss)
        print(f"epoch {epoch}: train loss {total / seen:.4f} ({seen} reviews), monitor test loss "
              f"{mon_loss:.4f}, accuracy {mon_acc:.4f} ({time.perf_counter() - started:.0f} s)",
              flush=True)
        if out_of_time:
            print(f"time budget of {args.time_budget:.0f} s reached in epoch {epoch}")
            break
    seconds = time.perf_counter() - started
    test_loss, test_acc = evaluate(model, test, te_y)
    print(f"{args.dataset} ({args.impl} LSTM): test accuracy {test_acc:.4f} on all "
          f"{len(test)} test reviews, test loss {test_loss:.4f}; {seconds:.0f} s of training, "
          f"{time.perf_counter() - started - seconds:.0f} s of final evaluation")
    plot_curves(history, path=out / "loss.png", ylabel="binary cross-entropy",
                title=f"LSTM sentiment on {args.dataset} ({args.impl})")
    return {"test_accuracy": test_acc, "test_loss": test_loss, "train_loss": total / seen,
            "train_seconds": seconds, "vocab_size": float(len(vocab)), "epochs": float(epoch)}


if __name__ == "__main__":
    main()
