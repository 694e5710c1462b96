"""Fine-tune BERT for sequence classification (Section 3.2, 4.1): a pre-trained checkpoint,
or the same architecture from random initialisation, on a labelled text task.

    python 08_BERT/paper/train_classifier.py                       # grammar acceptability
    python 08_BERT/paper/train_classifier.py --from-scratch        # the same, random init
    python 08_BERT/paper/train_classifier.py --dataset imdb --data-root DIR \\
        --checkpoint runs/08_BERT/pretrain_imdb/checkpoint
    python 08_BERT/paper/train_classifier.py --train-file train.tsv --test-file test.tsv \\
        --checkpoint DIR                                           # e.g. bert-base-uncased

Tasks: ``grammar-acceptability`` (no download): sentences of ../pytorch_lowlevel/corpus.py's
grammar, half with the verb's number flipped ("the dogs barks ."), label 1 = acceptable;
``imdb``: review sentiment, 25,000 / 25,000; or the user's own ``--train-file`` /
``--test-file`` (TSV or CSV with a header naming ``text`` and ``label`` columns).
``--checkpoint DIR``: a directory in transformers' layout (train.py's output, or a real one
such as bert-base-uncased) loaded with convert.load_pretrained into
BertForSequenceClassification, the classifier new, with the directory's vocab.txt;
``--from-scratch``: random weights (with --checkpoint: its architecture and vocabulary;
without: a vocabulary trained on the training split). The recipe is the paper's (Section
4.1, Appendix A.3): AdamW, warm-up over 10 % of the steps then linear decay, a few epochs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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
    set_help,
)
from utils.data_loaders import DatasetFormatError, DatasetNotFoundError
from utils.training_utils import seed_everything, torch_threads
from utils.visualization import plot_curves

pretrain = import_lesson("08_BERT.paper.train")  # data helpers, optimiser, schedule
bp, convert, wordpiece, corpus = pretrain.bp, pretrain.convert, pretrain.wordpiece, pretrain.corpus

# --------------------------------------------------------------------------------------
# 1. The tasks: grammar acceptability, IMDB, the user's files
# --------------------------------------------------------------------------------------

# singular <-> plural of every verb of the grammar ("barks" <-> "bark")
VERB_NUMBER = {form: other for sg, pl in [*corpus.TRANSITIVE, *corpus.ANIMALS.values()]
               for form, other in ((sg, pl), (pl, sg))}


def acceptability(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` sentences of the grammar (corpus.py's sentence A), half of them (chosen at
    random) with the verb's number flipped so that it disagrees with its subject
    ("the big dogs barks ."). Returns (texts, labels (n,): 1 = acceptable, 0 = not)."""
    sentences = pretrain.grammar_pairs(max(2, n), seed, random_next=0.0)[0][:n]
    rng = np.random.default_rng(seed)
    labels = np.ones(n, dtype=np.int64)
    labels[rng.permutation(n)[:n // 2]] = 0
    texts = [text if label else " ".join(VERB_NUMBER.get(w, w) for w in text.split())
             for text, label in zip(sentences, labels)]
    return texts, labels


def read_labelled_file(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels as written) of a TSV (.tsv, .tab) or CSV file (other names) whose
    header names a ``text`` and a ``label`` column (others are ignored).

    Raises DatasetNotFoundError / DatasetFormatError naming the file and the line for a
    missing file, an empty file, a header without the two columns, a row with too few or
    too many fields, an empty text or label.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file (expected a TSV or CSV file with "
                                   "a header line naming 'text' and 'label' columns)")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    kind = "TSV" if delimiter == "\t" else "CSV"
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(f"{path}: the file is empty; expected a {kind} header "
                                     "line naming 'text' and 'label' columns, then one "
                                     "example a line")
        names = [name.strip().lower() for name in header]
        if "text" not in names or "label" not in names:
            raise DatasetFormatError(f"{path}, line 1: expected a {kind} header naming "
                                     f"'text' and 'label' columns, got {header!r}")
        text_at, label_at = names.index("text"), names.index("label")
        for row in reader:
            if not row:  # a blank line
                continue
            where = f"{path}, line {reader.line_num}"
            if len(row) != len(header):
                raise DatasetFormatError(
                    f"{where}: expected {len(header)} {kind} fields ({', '.join(header)}), "
                    f"got {len(row)}: {row!r}" + (" (a text holding the delimiter must be "
                                                  "quoted)" if len(row) > len(header) else ""))
            text, label = row[text_at], row[label_at].strip()
            if not text.strip() or not label:
                raise DatasetFormatError(f"{where}: the {'text' if not text.strip() else 'label'}"
                                         f" is empty")
            texts.append(text)
            labels.append(label)
    if not texts:
        raise DatasetFormatError(f"{path}: no examples after the header line")
    return texts, labels


def label_ids(names: Sequence[str]) -> dict[str, int]:
    """Label text -> class id: numeric labels in numeric order (0, 1, 2 or -1, 1), others
    sorted alphabetically."""
    unique = set(names)
    try:
        return {name: i for i, name in enumerate(sorted(unique, key=float))}
    except ValueError:
        return {name: i for i, name in enumerate(sorted(unique))}


def load_files(train_file: Path, test_file: Path
               ) -> tuple[list[str], np.ndarray, list[str], np.ndarray, list[str]]:
    """The user's task: (train texts, labels, test texts, labels, class names)."""
    train_x, train_names = read_labelled_file(train_file)
    test_x, test_names = read_labelled_file(test_file)
    classes = label_ids(train_names)
    if len(classes) < 2:
        raise DatasetFormatError(f"{train_file}: every example has the label "
                                 f"{train_names[0]!r}; a classifier needs at least 2 classes")
    for i, name in enumerate(test_names):
        if name not in classes:
            raise DatasetFormatError(f"{test_file}: example {i + 1} has the label {name!r}, "
                                     f"which the training file never uses (its labels: "
                                     f"{sorted(classes)})")
    ids = lambda names: np.array([classes[n] for n in names], dtype=np.int64)  # noqa: E731
    return train_x, ids(train_names), test_x, ids(test_names), list(classes)


def load_task(args) -> tuple[list[str], np.ndarray, list[str], np.ndarray, list[str]]:
    """(train texts, train labels, test texts, test labels, class names) of --dataset."""
    if args.dataset == "files":
        return load_files(args.train_file, args.test_file)
    if args.dataset == "imdb":
        train_x, train_y, test_x, test_y = pretrain.imdb_reviews(args.data_root)
        rng = np.random.default_rng(args.seed)
        pick_train = rng.permutation(len(train_x))[:args.n_train or None]
        pick_test = rng.permutation(len(test_x))[:args.n_test or None]
        return ([train_x[i] for i in pick_train], train_y[pick_train],
                [test_x[i] for i in pick_test], test_y[pick_test], ["negative", "positive"])
    train_x, train_y = acceptability(args.n_train, args.seed + 10)
    test_x, test_y = acceptability(2 * args.n_test, args.seed + 11)
    seen = set(train_x)
    new = [i for i, text in enumerate(test_x) if text not in seen][:args.n_test]
    return (train_x, train_y, [test_x[i] for i in new], test_y[new],
            ["unacceptable", "acceptable"])


def encode_texts(tokenizer, texts: Sequence[str], max_len: int, keep: str) -> list[list[int]]:
    """[CLS] tokens [SEP] per text, at most ``max_len`` ids. A longer text keeps its
    "first" tokens, its "last" ones, or "head+tail": the first quarter and the rest from
    its end (Sun et al. 2019, "How to fine-tune BERT for text classification", 5.3)."""
    room, rows = max_len - 2, []
    for text in texts:
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
        if len(ids) > room:
            head = {"first": room, "last": 0, "head+tail": room // 4}[keep]
            ids = ids[:head] + ids[len(ids) - (room - head):]
        rows.append([tokenizer.cls_id, *ids, tokenizer.sep_id])
    return rows


# --------------------------------------------------------------------------------------
# 2. The model: a checkpoint, or the same architecture from random initialisation
# --------------------------------------------------------------------------------------


def load_model(args, train_texts: Sequence[str], num_classes: int, tokenizer_dir: Path):
    """(BertForSequenceClassification, tokenizer, where the weights come from)."""
    if args.checkpoint is not None:
        tokenizer = wordpiece.WordPieceTokenizer.from_pretrained_dir(args.checkpoint)
        if args.from_scratch:
            config = convert.config_from_hf(json.loads(
                (args.checkpoint / "config.json").read_text(encoding="utf-8")))
            model = bp.BertForSequenceClassification(config, num_classes)
            return model, tokenizer, f"random init, architecture of {args.checkpoint}"
        with warnings.catch_warnings():  # the fresh classifier is expected here
            warnings.filterwarnings("ignore", message=".*freshly initialised.*")
            model = convert.load_pretrained(args.checkpoint, bp.BertForSequenceClassification,
                                            num_classes=num_classes, new_heads=True)
        return model, tokenizer, f"pre-trained {args.checkpoint}"
    tokenizer = pretrain.train_tokenizer(train_texts, args.vocab_size, tokenizer_dir)
    config = bp.BertConfig(vocab_size=len(tokenizer.vocab), d_model=args.d_model,
                           n_layers=args.layers, n_heads=args.heads, d_ff=4 * args.d_model,
                           max_len=args.max_len, pad_id=tokenizer.pad_id)
    model = bp.BertForSequenceClassification(config, num_classes)
    return model, tokenizer, "random init"


# --------------------------------------------------------------------------------------
# 3. Fine-tuning and evaluation
# --------------------------------------------------------------------------------------


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None):
    """Index arrays of ``batch_size`` (the last may be smaller), shuffled with ``rng``."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


@torch.no_grad()
def evaluate(model, rows: list[list[int]], labels: np.ndarray, pad_id: int,
             batch_size: int = 128, device="cpu") -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode; rows sorted by length to pad little."""
    was_training = model.training
    model.eval()
    order = np.argsort([len(row) for row in rows], kind="stable")
    loss, correct = 0.0, 0
    for index in batches(len(rows), batch_size):
        pick = order[index]
        batch = pretrain.pad_rows([rows[i] for i in pick], pad_id)
        target = torch.as_tensor(labels[pick], device=device)
        logits = model(*(batch[k].to(device) for k in ("input_ids", "token_type_ids",
                                                        "attention_mask")))
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
    model.train(was_training)
    return loss / len(rows), correct / len(rows)


def fine_tune(model, rows: list[list[int]], labels: np.ndarray, pad_id: int, *, epochs: int,
              batch_size: int, lr: float, warmup_fraction: float, weight_decay: float,
              seed: int = 0, time_budget: float = 0.0, on_epoch=None, device="cpu",
              progress: bool = False) -> dict[str, list[float]]:
    """AdamW on the cross-entropy of the [CLS] classifier, warm-up then linear decay over
    every step of ``epochs`` epochs (or of ``time_budget`` seconds). ``on_epoch(epoch)``
    returns a dict of numbers recorded after each epoch. Returns the history: "loss",
    "lr" per step; the ``on_epoch`` values per epoch."""
    optimizer = pretrain.make_optimizer(model, lr, weight_decay)
    rng = np.random.default_rng(seed)
    steps = epochs * len(batches(len(rows), batch_size))
    warmup = round(warmup_fraction * steps)
    history: dict[str, list[float]] = {"loss": [], "lr": []}
    model.train()
    started, step = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        bar = tqdm(batches(len(rows), batch_size, rng), desc=f"epoch {epoch}",
                   disable=not progress, leave=False)
        for index in bar:
            elapsed = time.perf_counter() - started
            if time_budget and elapsed > time_budget:
                break
            batch = pretrain.pad_rows([rows[i] for i in index], pad_id)
            target = torch.as_tensor(labels[index], device=device)
            rate = pretrain.scheduled_lr(step, elapsed, lr, warmup, steps, time_budget)
            for group in optimizer.param_groups:
                group["lr"] = rate
            logits = model(*(batch[k].to(device) for k in ("input_ids", "token_type_ids",
                                                            "attention_mask")))
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history["loss"].append(float(loss.detach()))
            history["lr"].append(rate)
            if not np.isfinite(history["loss"][-1]):
                raise FloatingPointError(f"the loss became {history['loss'][-1]} at step "
                                         f"{step}; lower --lr")
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
            step += 1
        for key, value in (on_epoch(epoch) if on_epoch else {}).items():
            history.setdefault(key, []).append(value)
        if time_budget and time.perf_counter() - started > time_budget:
            print(f"time budget of {time_budget:g} s reached in epoch {epoch} ({step} steps)")
            break
    return history


# --------------------------------------------------------------------------------------
# 4. The script
# --------------------------------------------------------------------------------------

# Per task. grammar-acceptability: train.py's grammar model; imdb and files: train.py
# --dataset imdb's model at 128 tokens. Peak rates: the paper's 2e-5..5e-5 suits BERT-base
# (files: a real checkpoint, or 5e-4 from scratch); our tiny models fine-tune best at 1e-3,
# pre-trained or not (on grammar-acceptability, and on 3,000 IMDB reviews among 1e-4,
# 3e-4, 1e-3).
DEFAULTS = {
    "grammar-acceptability": {"epochs": 3, "batch_size": 32, "max_len": 32, "n_train": 4000,
                              "n_test": 1000, "keep": "first",
                              **{k: pretrain.DEFAULTS["grammar"][k]
                                 for k in ("vocab_size", "d_model", "layers", "heads")}},
    "imdb": {"epochs": 2, "batch_size": 32, "max_len": 128, "n_train": 0, "n_test": 0,
             "keep": "head+tail",
             **{k: pretrain.DEFAULTS["imdb"][k]
                for k in ("vocab_size", "d_model", "layers", "heads")}},
}
DEFAULTS["files"] = {**DEFAULTS["imdb"]}
PRETRAINED_LR = {"grammar-acceptability": 1e-3, "imdb": 1e-3, "files": 5e-5}
FROM_SCRATCH_LR = {"grammar-acceptability": 1e-3, "imdb": 1e-3, "files": 5e-4}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fine-tune BERT (bert_paper.py) for text classification: a pre-trained "
                    "checkpoint directory (train.py's, or a real one such as "
                    "bert-base-uncased) or the same model from random initialisation.")
    add_common_args(parser, datasets=tuple(DEFAULTS), epochs=None, batch_size=None, lr=None,
                    out="runs/08_BERT/classifier", threads=1)
    set_help(parser,
        dataset=("task (default: %(default)s, needs no download; --train-file and "
                 "--test-file select 'files')"),
        lr=("peak learning rate (default: with a checkpoint " + ", ".join(
                f"{k} {v:g}" for k, v in PRETRAINED_LR.items()) + "; from scratch " +
                ", ".join(f"{k} {v:g}" for k, v in FROM_SCRATCH_LR.items()) + ")"),
    )
    start = parser.add_argument_group("where the weights come from")
    start.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                       help="a directory in transformers' layout (config.json, "
                            "model.safetensors or pytorch_model.bin, vocab.txt): train.py's "
                            "output or e.g. bert-base-uncased (default: grammar-acceptability "
                            "pre-trains one first with train.py; the others need it or "
                            "--from-scratch)")
    start.add_argument("--from-scratch", action="store_true",
                       help="random initialisation: with --checkpoint, its architecture and "
                            "vocabulary; without, the sizes below and a vocabulary trained on "
                            "the training split")
    start.add_argument("--vocab-size", type=positive_int, default=None,
                       help="from scratch without --checkpoint (default: %(default)s)")
    start.add_argument("--d-model", type=positive_int, default=None,
                       help="from scratch without --checkpoint (default: %(default)s)")
    start.add_argument("--layers", type=positive_int, default=None,
                       help="from scratch without --checkpoint (default: %(default)s)")
    start.add_argument("--heads", type=positive_int, default=None,
                       help="from scratch without --checkpoint (default: %(default)s)")
    data = parser.add_argument_group("data")
    data.add_argument("--train-file", type=Path, default=None, metavar="FILE",
                      help="your training examples: TSV (.tsv) or CSV with a header naming "
                           "'text' and 'label' columns (with --test-file)")
    data.add_argument("--test-file", type=Path, default=None, metavar="FILE",
                      help="your test examples, the same format and labels")
    data.add_argument("--max-len", type=positive_int, default=None,
                      help="tokens per text, [CLS] and [SEP] included (default: %(default)s)")
    data.add_argument("--keep", choices=("first", "last", "head+tail"), default=None,
                      help="which tokens of a longer text (default: %(default)s)")
    data.add_argument("--n-train", type=non_negative_int, default=None,
                      help="training examples, 0 = all (default: %(default)s)")
    data.add_argument("--n-test", type=non_negative_int, default=None,
                      help="test examples, 0 = all (default: %(default)s)")
    recipe = parser.add_argument_group("fine-tuning")
    recipe.add_argument("--warmup", type=probability, default=0.1,
                        help="share of the steps spent warming up (default: %(default)s)")
    recipe.add_argument("--weight-decay", type=non_negative_float, default=0.01,
                        help="AdamW's decoupled weight decay (default: %(default)s)")
    recipe.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        help="stop training after this many seconds, 0 = no limit "
                             "(default: %(default)s)")
    recipe.add_argument("--monitor", type=positive_int, default=2000,
                        help="test examples scored after each epoch (all at the end; "
                             "default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Fine-tune and test; returns {"test_accuracy", "majority_baseline" (always the most
    frequent training class), "test_loss", "first_loss", "final_loss" (mean of the last 20
    steps), "train_seconds", "eval_seconds", "epochs", "steps", "pretrained" (1.0 / 0.0)}."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if any(a.startswith(("--train-file", "--test-file")) for a in argv) \
            and not any(a.startswith("--dataset") for a in argv):
        argv += ["--dataset", "files"]  # a user's files select the "files" defaults
    args = parse_args(parser, argv, DEFAULTS)
    if (args.train_file is None) != (args.test_file is None) or \
            (args.dataset == "files") != (args.train_file is not None):
        parser.error("--train-file and --test-file go together (and replace --dataset)")
    if args.checkpoint is None and not args.from_scratch and args.dataset != \
            "grammar-acceptability":
        parser.error(f"--dataset {args.dataset} needs --checkpoint DIR (train.py's output or "
                     "e.g. bert-base-uncased) or --from-scratch")
    if args.checkpoint is not None:
        pretrain.check_checkpoint(parser, args.checkpoint, args.max_len)
    elif args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    if args.dataset == "grammar-acceptability" and (args.n_train < 2 or args.n_test < 1):
        parser.error("--n-train must be >= 2 and --n-test >= 1 for grammar-acceptability "
                     "(generated sentences: 0 does not mean all)")
    if args.max_len < 3:
        parser.error(f"--max-len must be >= 3 ([CLS], a token, [SEP]), got {args.max_len}")
    if args.lr is None:
        args.lr = (FROM_SCRATCH_LR if args.from_scratch else PRETRAINED_LR)[args.dataset]
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    """The body of ``main``: data, model, fine-tuning, test, plots."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.checkpoint is None and not args.from_scratch:  # grammar: pre-train one first
        print("no --checkpoint: pre-training one with train.py --dataset grammar first")
        pretrained = pretrain.main(["--dataset", "grammar", "--seed", str(args.seed),
                                    "--out", str(out / "pretrain"), "--device", args.device,
                                    "--threads", str(args.threads),
                                    "--progress" if args.progress else "--no-progress"])
        args.checkpoint = Path(pretrained["checkpoint"])
    with data_errors(hint="the default --dataset grammar-acceptability needs no download"):
        train_x, train_y, test_x, test_y, classes = load_task(args)
    started = time.perf_counter()
    try:
        model, tokenizer, origin = load_model(args, train_x, len(classes), out / "tokenizer")
    except (ValueError, FileNotFoundError) as error:
        if args.checkpoint is None:
            raise
        raise SystemExit(f"error: --checkpoint {args.checkpoint}: {error}") from None  # unreadable
    model.to(device)
    train_rows = encode_texts(tokenizer, train_x, args.max_len, args.keep)
    test_rows = encode_texts(tokenizer, test_x, args.max_len, args.keep)
    majority = int(np.bincount(train_y).argmax())
    baseline = float(np.mean(test_y == majority))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.dataset}: {len(train_x)} training / {len(test_x)} test examples, classes "
          f"{classes}; {type(model).__name__} ({origin}), L={model.config.n_layers} "
          f"H={model.config.d_model}, {n_params:,} parameters, vocabulary "
          f"{len(tokenizer.vocab)}; texts cut to {args.max_len} tokens ({args.keep}), mean "
          f"{np.mean([len(r) for r in train_rows]):.0f}; prepared in "
          f"{time.perf_counter() - started:.0f} s")

    watch = np.random.default_rng(args.seed).permutation(len(test_rows))[:args.monitor]

    def after_epoch(epoch: int) -> dict[str, float]:
        loss, accuracy = evaluate(model, [test_rows[i] for i in watch], test_y[watch],
                                  tokenizer.pad_id, device=device)
        print(f"epoch {epoch}: test accuracy {accuracy:.4f} on {len(watch)} examples "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        return {"test loss": loss, "test accuracy": accuracy}

    started, cpu_started = time.perf_counter(), time.process_time()
    history = fine_tune(model, train_rows, train_y, tokenizer.pad_id, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, warmup_fraction=args.warmup,
                        weight_decay=args.weight_decay, seed=args.seed,
                        time_budget=args.time_budget, on_epoch=after_epoch, device=device,
                        progress=args.progress)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    evaluated = time.perf_counter()
    test_loss, test_accuracy = evaluate(model, test_rows, test_y, tokenizer.pad_id,
                                        device=device)
    eval_seconds = time.perf_counter() - evaluated
    print(f"{args.dataset} ({origin}): test accuracy {test_accuracy:.4f} on {len(test_rows)} "
          f"examples (majority class: {baseline:.4f}), test loss {test_loss:.4f}; "
          f"{len(history['loss'])} steps, lr {args.lr:g}, {seconds:.0f} s of fine-tuning "
          f"({cpu_seconds:.0f} s CPU), {eval_seconds:.0f} s of testing on {device}")
    _plot(history, out, args.dataset, origin)
    return {"test_accuracy": test_accuracy, "majority_baseline": baseline,
            "test_loss": test_loss, "first_loss": history["loss"][0],
            "final_loss": float(np.mean(history["loss"][-20:])), "train_seconds": seconds,
            "eval_seconds": eval_seconds, "epochs": float(len(history.get("test accuracy",
                                                                             []))),
            "steps": float(len(history["loss"])),
            "pretrained": float(not args.from_scratch)}


def _plot(history: dict[str, list[float]], out: Path, dataset: str, origin: str) -> None:
    """loss.png: the training loss per step; accuracy.png: test accuracy per epoch."""
    plot_curves({"training loss": history["loss"]}, path=out / "loss.png", xlabel="step",
                ylabel="cross-entropy", title=f"fine-tuning on {dataset} ({origin})")
    plot_curves({"test accuracy (monitor subset)": history["test accuracy"]},
                path=out / "accuracy.png", ylabel="accuracy",
                title=f"fine-tuning on {dataset} ({origin})")


if __name__ == "__main__":
    main()
