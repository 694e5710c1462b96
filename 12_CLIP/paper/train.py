"""Train a small CLIP (``clip_paper.CLIP``) from scratch on image-caption pairs, then test it
zero-shot, with a linear probe and by retrieval.

    python 12_CLIP/paper/train.py                            # generated digit pairs, ~80 s
    python 12_CLIP/paper/train.py --time-budget 30 --threads 2
    python 12_CLIP/paper/train.py --images photos/ --captions photos/captions.csv \\
        --classes cat,dog,bird

Data: ``digits`` (``data.digit_pairs``: scikit-learn's digits drawn in a colour, a size and
a position, with captions from eight templates; no download), ``pairs`` (``--images DIR
--captions FILE``: a CSV or TSV of "file name, caption" rows, ``data.read_pairs``).
The tokenizer is CLIP's byte-level BPE (``tokenizer.CLIPTokenizer``) trained on the training
captions (a few hundred tokens). The recipe (Section 2.5): the symmetric cross-entropy of
Figure 3 with a learned temperature, AdamW (betas 0.9 / 0.98, eps 1e-6, decoupled weight
decay on the matrices only), a linear warm-up then a cosine decay; ``--time-budget`` stops
after that many seconds, the schedule squeezed to fit.
Reports: zero-shot accuracy with prompt ensembling on the test images (prompts no training
caption contains) and on colour-digit combinations never seen in training, against chance
and a supervised linear probe on the frozen image features; recall@1/5 both ways on the
test pairs. Writes the loss curve, a similarity matrix, the zero-shot confusion matrix,
retrieval examples and a checkpoint folder (transformers' layout) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
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
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_confusion_matrix, plot_curves

clip = import_lesson("12_CLIP.paper.clip_paper")
convert = import_lesson("12_CLIP.paper.convert")
tokenization = import_lesson("12_CLIP.paper.tokenizer")
data = import_lesson("12_CLIP.paper.data")
zero_shot = import_lesson("12_CLIP.paper.zero_shot")
vit_lowlevel = import_lesson("10_ViT.pytorch_lowlevel.vit_lowlevel")  # warm-up + cosine

# --------------------------------------------------------------------------------------
# 1. Data: pairs, their tokens, normalised images
# --------------------------------------------------------------------------------------


def load_pairs(args) -> data.PairData:
    """--dataset's pairs: the generated digit pairs, or the user's folder and captions."""
    if args.dataset == "pairs":
        classes = [name.strip() for name in args.classes.split(",") if name.strip()] \
            if args.classes else None
        return data.user_pairs(args.images, args.captions, args.image_size, args.test_fraction,
                               classes, args.seed)
    return data.digit_pairs(variants=args.variants, seed=args.seed, limit=args.limit)


def tokenize(tokenizer, captions: Sequence[str], context_length: int) -> dict[str, torch.Tensor]:
    """Captions -> {"input_ids", "attention_mask"} (N, T), padded with the end token as
    transformers does (the feature is read at the first end token); T: the longest caption's
    tokens, at most context_length (the text tower's max_len; shorter runs faster)."""
    return zero_shot.tokenize(tokenizer, captions, context_length)


# --------------------------------------------------------------------------------------
# 2. Training
# --------------------------------------------------------------------------------------


def scheduled_lr(step: int, elapsed: float, peak_lr: float, warmup: float, steps: int,
                 time_budget: float = 0.0) -> float:
    """Lesson 10's linear warm-up then cosine decay (``warmup``: the share of training spent
    warming up); with a time budget on whichever clock is further on, steps or time."""
    position = max(step, elapsed / time_budget * steps) if time_budget else step
    return vit_lowlevel.warmup_cosine_lr(position, peak_lr, max(1, round(warmup * steps)),
                                         steps)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's groups (Section 2.5: "decoupled weight decay regularization applied to all
    weights that are not gains or biases"; open_clip also spares the temperature): decay on
    the tensors of 2 or more dimensions, none on the 1-D ones and the scalar logit scale."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train(model, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
          *, epochs: int, batch_size: int, lr: float, warmup: float = 0.1,
          weight_decay: float = 0.2, time_budget: float = 0.0, seed: int = 0,
          progress: bool = False) -> dict[str, list[float]]:
    """Figure 3's training: each batch of B matched pairs gives a (B, B) logit matrix whose
    diagonal holds the right answers; the loss is the symmetric cross-entropy
    (``clip_paper.contrastive_loss``). AdamW (Section 2.5's betas and eps); the rate set
    every step (``scheduled_lr``); the pairs shuffled each epoch. Stops after ``epochs`` or
    when ``time_budget`` seconds (0: none) are spent.
    Returns: {"loss", "lr", "scale" (exp t): per step; "epoch_loss": per epoch}."""
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98),
                                  eps=1e-6)
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(images) // batch_size)
    history: dict[str, list[float]] = {"loss": [], "lr": [], "scale": [], "epoch_loss": []}
    model.train()
    started, step = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(images), generator=generator).to(images.device)  # shuffle
        losses = []
        bar = tqdm(range(0, len(images), batch_size), desc=f"epoch {epoch}",
                   disable=not progress, leave=False)
        for start in bar:
            elapsed = time.perf_counter() - started
            if time_budget and elapsed > time_budget:
                break
            index = order[start:start + batch_size]
            rate = scheduled_lr(step, elapsed, lr, warmup, steps, time_budget)
            for group in optimizer.param_groups:
                group["lr"] = rate
            logits_per_image, _ = model(images[index], input_ids[index], attention_mask[index])
            loss = clip.contrastive_loss(logits_per_image)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; "
                                         "lower --lr")
            history["loss"].append(losses[-1])
            history["lr"].append(rate)
            history["scale"].append(float(model.scale().detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            step += 1
        if losses:
            history["epoch_loss"].append(float(np.mean(losses)))
        if time_budget and time.perf_counter() - started > time_budget:
            print(f"time budget of {time_budget:g} s reached in epoch {epoch} ({step} steps)")
            break
    model.eval()
    return history


# --------------------------------------------------------------------------------------
# 3. Evaluation: zero-shot, linear probe, retrieval
# --------------------------------------------------------------------------------------


def evaluate(model, tokenizer, pairs: data.PairData, normalise, context_length: int,
             seed: int = 0) -> dict:
    """Every number the script reports (NaN where the data has no classes), and what the
    pictures need: test image and caption embeddings, zero-shot predictions."""
    test_images = normalise(pairs.images_test)
    image_test = zero_shot.image_features(model, test_images)  # (N, E) unit rows
    text_test = zero_shot.text_features(model, tokenizer, pairs.captions_test, context_length)
    results = {key: value for key, value in
               zero_shot.recall_at_k(image_test @ text_test.T).items()}
    results.update(image_test=image_test, text_test=text_test, predictions=None)
    nan = float("nan")
    results.update(zero_shot_accuracy=nan, zero_shot_heldout_combinations=nan,
                   chance=nan, linear_probe_accuracy=nan)
    if pairs.labels_test is None or not pairs.class_names:
        return results
    weights = zero_shot.zero_shot_weights(model, tokenizer, pairs.class_names,
                                          pairs.prompt_templates, context_length)
    labelled = pairs.labels_test >= 0
    labels = torch.from_numpy(pairs.labels_test)
    predictions = zero_shot.zero_shot_predict(image_test, weights)
    results["predictions"] = predictions
    results["zero_shot_accuracy"] = float((predictions == labels)[labelled].float().mean())
    results["chance"] = 1.0 / len(pairs.class_names)
    if pairs.images_heldout is not None:
        heldout = zero_shot.image_features(model, normalise(pairs.images_heldout))
        correct = zero_shot.zero_shot_predict(heldout, weights) == torch.from_numpy(
            pairs.labels_heldout)
        results["zero_shot_heldout_combinations"] = float(correct.float().mean())
    train_rows = pairs.labels_train >= 0
    if labelled.sum() and train_rows.sum() >= 5 and len(set(pairs.labels_train[train_rows])) > 1:
        train_features = zero_shot.image_features(model, normalise(pairs.images_train),
                                                  before_projection=True).cpu().numpy()
        test_features = zero_shot.image_features(model, test_images,
                                                 before_projection=True).cpu().numpy()
        results["linear_probe_accuracy"], results["probe_c"] = zero_shot.linear_probe(
            train_features[train_rows], pairs.labels_train[train_rows],
            test_features[labelled], pairs.labels_test[labelled], seed=seed)
    return results


# --------------------------------------------------------------------------------------
# 4. The script
# --------------------------------------------------------------------------------------

# Per dataset. digits: 4 drawings of each of the 1,437 training digits (5,748 pairs);
# 16 epochs of batches of 128 (720 steps) take about 45-80 s on one (busy) thread.
DATASET_DEFAULTS = {
    "digits": {"epochs": 16, "batch_size": 128, "lr": 2e-3},
    "pairs": {"epochs": 30, "batch_size": 64, "lr": 1e-3},
}
UNTIL_BUDGET = 100_000  # --epochs when only --time-budget bounds the run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="A small CLIP (clip_paper.py) trained from scratch on generated digit "
                    "pairs (no download) or your own images and captions (--images, "
                    "--captions), tested zero-shot, with a linear probe and by retrieval.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/12_CLIP/l3_clip", threads=1)
    pairs = parser.add_argument_group("pairs")
    pairs.add_argument("--images", type=Path, default=None, metavar="DIR",
                       help="your images (selects --dataset pairs, with --captions)")
    pairs.add_argument("--captions", type=Path, default=None, metavar="FILE",
                       help="CSV or TSV: one 'file name, caption' row per image, names "
                            "relative to --images")
    pairs.add_argument("--classes", default=None, metavar="A,B,...",
                       help="zero-shot classes of your pairs: each pair is labelled by the "
                            "class its caption names (default: retrieval only)")
    pairs.add_argument("--test-fraction", type=probability, default=0.2,
                       help="share of your pairs held out for testing (default: %(default)s)")
    pairs.add_argument("--image-size", type=positive_int, default=32,
                       help="your images are resized to N x N (default: %(default)s; the "
                            "digit pairs are 32)")
    pairs.add_argument("--variants", type=positive_int, default=4,
                       help="digits: drawings of each training digit, each with its own "
                            "colour, size, position and caption (default: %(default)s)")
    pairs.add_argument("--limit", type=positive_int, default=None, metavar="N",
                       help="digits: only the first N training and test digits (quick runs)")
    model = parser.add_argument_group("the model (both towers the same width and depth)")
    model.add_argument("--patch-size", type=positive_int, default=8,
                       help="patch side, dividing the image side (default: %(default)s)")
    model.add_argument("--d-model", type=positive_int, default=64,
                       help="width of both towers (default: %(default)s)")
    model.add_argument("--layers", type=positive_int, default=2,
                       help="layers of each tower (default: %(default)s)")
    model.add_argument("--heads", type=positive_int, default=4,
                       help="attention heads, dividing --d-model (default: %(default)s)")
    model.add_argument("--embed-dim", type=positive_int, default=64,
                       help="the joint embedding space (default: %(default)s)")
    model.add_argument("--context-length", type=positive_int, default=32,
                       help="text positions, >= 2; longer captions are cut (default: "
                            "%(default)s)")
    model.add_argument("--vocab-size", type=positive_int, default=1000,
                       help="the BPE vocabulary trained on the captions stops here or when "
                            "no pair repeats (default: %(default)s; at least 514)")
    recipe = parser.add_argument_group("the recipe (Section 2.5, shortened)")
    recipe.add_argument("--weight-decay", type=non_negative_float, default=0.2,
                        help="AdamW's decoupled weight decay on the matrices (default: "
                             "%(default)s)")
    recipe.add_argument("--warmup", type=probability, default=0.1,
                        help="share of the training spent warming up (default: %(default)s)")
    recipe.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        metavar="SECONDS", help="stop training after this many seconds, the "
                        "schedule squeezed to fit; 0: no limit (default: %(default)s)")
    parser.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                        help="write the pictures (loss, similarity, confusion, retrieval)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Train and test; returns {"zero_shot_accuracy" (test images, held-out prompts),
    "zero_shot_heldout_combinations", "chance", "linear_probe_accuracy",
    "image_to_text_at_1", "image_to_text_at_5", "text_to_image_at_1", "text_to_image_at_5"
    (recall@k on the test pairs), "retrieval_chance_at_1", "retrieval_chance_at_5",
    "train_seconds", "first_loss", "final_loss" (mean training loss of the first and last
    epoch), "epochs", "steps", "parameters", "vocab_size", "checkpoint"}; the zero-shot and
    probe numbers are NaN for pairs without --classes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if any(a.startswith(("--images", "--captions")) for a in argv) \
            and not any(a.startswith("--dataset") for a in argv):
        argv += ["--dataset", "pairs"]  # a user's pairs select the "pairs" defaults
    explicit_epochs = any(a.startswith("--epochs") for a in argv)
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if args.dataset == "pairs" and (args.images is None or args.captions is None):
        parser.error("--dataset pairs needs --images DIR and --captions FILE")
    if args.dataset != "pairs":
        given = [f"--{name}" for name in ("images", "captions", "classes")
                 if getattr(args, name) is not None]
        if given or args.image_size != 32:
            parser.error(f"{', '.join(given) or '--image-size'}: only with --dataset pairs "
                         "(the digit pairs are 32 x 32)")
    if args.image_size % args.patch_size:
        parser.error(f"argument --patch-size: {args.patch_size} does not divide the image "
                     f"side {args.image_size}")
    if args.d_model % args.heads:
        parser.error(f"argument --heads: {args.heads} does not divide --d-model "
                     f"{args.d_model}")
    if args.context_length < 2:
        parser.error("argument --context-length: expected an integer >= 2 (the start and "
                     f"end tokens), got {args.context_length}")
    if args.vocab_size < 514:
        parser.error(f"argument --vocab-size: expected at least 514 (the 512 byte symbols and "
                     f"2 special tokens), got {args.vocab_size}")
    if args.time_budget and not explicit_epochs:
        args.epochs = UNTIL_BUDGET
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    """The body of ``main``: data, tokenizer, model, training, evaluation, pictures."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors(hint=None if args.dataset == "pairs" else
                     "the default --dataset digits needs no download"):
        pairs = load_pairs(args)
    tokenizer = tokenization.CLIPTokenizer.train(pairs.captions_train, args.vocab_size)
    mean = pairs.images_train.mean(axis=(0, 2, 3))
    std = pairs.images_train.std(axis=(0, 2, 3)) + 1e-6

    def normalise(images: np.ndarray) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> the model's input, (x - mean) / std per channel."""
        return torch.from_numpy((images - mean[:, None, None]) / std[:, None, None]).float() \
            .to(device)

    tokens = tokenize(tokenizer, pairs.captions_train, args.context_length)
    config = clip.CLIPConfig(
        vision=clip.CLIPVisionConfig(image_size=args.image_size, patch_size=args.patch_size,
                                     d_model=args.d_model, n_layers=args.layers,
                                     n_heads=args.heads),
        text=clip.CLIPTextConfig(vocab_size=len(tokenizer), max_len=args.context_length,
                                 d_model=args.d_model, n_layers=args.layers,
                                 n_heads=args.heads, eos_token_id=tokenizer.eot_token_id),
        embed_dim=args.embed_dim)
    model = clip.CLIP(config).to(device)
    parameters = clip.count_parameters(model)
    print(f"{pairs.name}: {len(pairs.captions_train)} training / {len(pairs.captions_test)} "
          f"test pairs of {args.image_size}x{args.image_size} images"
          + (f", {len(pairs.captions_heldout)} held-out combinations"
             if pairs.captions_heldout else "")
          + f"; BPE vocabulary of {len(tokenizer)}; CLIP: {config.vision.num_patches} patches "
          f"of {args.patch_size}, 2 x {args.layers} layers, width {args.d_model}, joint "
          f"space {args.embed_dim}, {parameters:,} parameters")
    print(f"e.g. {pairs.captions_train[0]!r}")
    started = time.perf_counter()
    history = train(model, normalise(pairs.images_train), tokens["input_ids"].to(device),
                    tokens["attention_mask"].to(device), epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                    weight_decay=args.weight_decay, time_budget=args.time_budget,
                    seed=args.seed, progress=args.progress)
    seconds = time.perf_counter() - started
    results = evaluate(model, tokenizer, pairs, normalise, args.context_length, args.seed)
    n_test = len(pairs.captions_test)
    summary = {
        "zero_shot_accuracy": results["zero_shot_accuracy"],
        "zero_shot_heldout_combinations": results["zero_shot_heldout_combinations"],
        "chance": results["chance"],
        "linear_probe_accuracy": results["linear_probe_accuracy"],
        **{key: results[key] for key in ("image_to_text_at_1", "image_to_text_at_5",
                                         "text_to_image_at_1", "text_to_image_at_5")},
        "retrieval_chance_at_1": 1.0 / n_test, "retrieval_chance_at_5": min(1.0, 5.0 / n_test),
        "train_seconds": seconds, "first_loss": history["epoch_loss"][0],
        "final_loss": history["epoch_loss"][-1], "epochs": float(len(history["epoch_loss"])),
        "steps": float(len(history["loss"])), "parameters": float(parameters),
        "vocab_size": float(len(tokenizer)), "logit_scale": history["scale"][-1]}
    print(f"CLIP (L3) on {pairs.name}: {len(history['epoch_loss'])} epochs, "
          f"{len(history['loss'])} steps in {seconds:.1f} s on {device} ({args.threads} "
          f"thread(s)); loss {summary['first_loss']:.3f} -> {summary['final_loss']:.3f}, "
          f"temperature exp(t) = {summary['logit_scale']:.1f}")
    if not math.isnan(summary["zero_shot_accuracy"]):
        print(f"zero-shot accuracy (test images, {len(pairs.prompt_templates)} prompts no "
              f"training caption contains): {summary['zero_shot_accuracy']:.4f}"
              + (f"; on held-out colour-digit combinations: "
                 f"{summary['zero_shot_heldout_combinations']:.4f}"
                 if pairs.images_heldout is not None else "")
              + f"; chance {summary['chance']:.4f}; supervised linear probe on the frozen "
              f"image features: {summary['linear_probe_accuracy']:.4f}")
    print(f"retrieval on {n_test} test pairs: image->text R@1 "
          f"{summary['image_to_text_at_1']:.4f} R@5 {summary['image_to_text_at_5']:.4f}, "
          f"text->image R@1 {summary['text_to_image_at_1']:.4f} R@5 "
          f"{summary['text_to_image_at_5']:.4f} (chance R@1 {1 / n_test:.4f}, R@5 "
          f"{summary['retrieval_chance_at_5']:.4f})")
    checkpoint = save_checkpoint(model, tokenizer, mean, std, out / "checkpoint")
    if args.plots:
        pictures = Pictures(pairs, mean, std)
        pictures.loss(history, out / "loss.png")
        pictures.similarity(results["image_test"], results["text_test"],
                            out / "similarity.png")
        if results["predictions"] is not None:
            plot_confusion_matrix(pairs.labels_test[pairs.labels_test >= 0],
                                  results["predictions"].numpy()[pairs.labels_test >= 0],
                                  class_names=pairs.class_names, path=out / "confusion.png",
                                  title=f"zero-shot on {pairs.name} (held-out prompts)")
        pictures.retrieval(results["image_test"], results["text_test"], out / "retrieval.png")
    print(f"{'plots and ' if args.plots else ''}checkpoint (transformers' layout, with the "
          f"tokenizer) written to {out}")
    return {**summary, "checkpoint": str(checkpoint)}


def save_checkpoint(model, tokenizer, mean: np.ndarray, std: np.ndarray,
                    directory: Path) -> Path:
    """transformers' layout: config.json + model.safetensors (``convert.save_pretrained``),
    vocab.json + merges.txt + tokenizer_config.json (the tokenizer), and the
    preprocessor_config.json of CLIPImageProcessor with the training images' mean and std."""
    convert.save_pretrained(model, directory)
    tokenizer.save(directory)
    size = model.config.vision.image_size
    processor = {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
                 "size": {"shortest_edge": size}, "do_center_crop": True,
                 "crop_size": {"height": size, "width": size}, "do_rescale": True,
                 "rescale_factor": 1 / 255, "do_normalize": True,
                 "image_mean": [float(value) for value in mean],
                 "image_std": [float(value) for value in std], "do_convert_rgb": True}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n",
                                                        encoding="utf-8")
    return directory


# --------------------------------------------------------------------------------------
# 5. Pictures: the loss, a similarity matrix, retrieval examples
# --------------------------------------------------------------------------------------


class Pictures:
    """The run's figures; images are shown as drawn (before normalisation)."""

    def __init__(self, pairs: data.PairData, mean: np.ndarray, std: np.ndarray):
        self.pairs, self.mean, self.std = pairs, mean, std

    @staticmethod
    def _figure(width: float, height: float):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), layout="constrained")

    def _image(self, index: int) -> np.ndarray:
        return np.clip(self.pairs.images_test[index].transpose(1, 2, 0), 0, 1)  # (H, W, 3)

    def loss(self, history: dict, path: Path) -> None:
        """The symmetric cross-entropy per step; log(B) is chance for a batch of B."""
        plot_curves({"contrastive loss (training batches)": history["loss"]}, path=path,
                    xlabel="step", ylabel="symmetric cross-entropy (nats)",
                    title=f"CLIP on {self.pairs.name}")

    def similarity(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                   path: Path, count: int = 8) -> None:
        """The first ``count`` test images against their captions: cosine similarities, the
        matched pairs on the diagonal (as OpenAI's notebook draws them)."""
        count = min(count, len(image_embeddings))
        matrix = (text_embeddings[:count] @ image_embeddings[:count].T).cpu().numpy()
        fig = self._figure(2.0 + 0.9 * count, 1.5 + 0.55 * count)
        grid = fig.add_gridspec(2, 1, height_ratios=(1, count * 0.6))
        strip = grid[0].subgridspec(1, count)
        for column in range(count):
            ax = fig.add_subplot(strip[0, column])
            ax.imshow(self._image(column))
            ax.axis("off")
        ax = fig.add_subplot(grid[1])
        shown = ax.imshow(matrix, cmap="viridis", vmin=-1, vmax=1)
        for row in range(count):
            for column in range(count):
                ax.text(column, row, f"{matrix[row, column]:.2f}", ha="center", va="center",
                        fontsize=7, color="white" if matrix[row, column] < 0.5 else "black")
        ax.set_yticks(range(count), [textwrap.shorten(text, 48, placeholder="...")
                                     for text in self.pairs.captions_test[:count]], fontsize=8)
        ax.set_xticks([])
        fig.colorbar(shown, ax=ax, shrink=0.8, label="cosine similarity")
        fig.suptitle("test images (top) and their captions: cosine similarity", fontsize=10)
        fig.savefig(path, dpi=100)

    def retrieval(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                  path: Path, queries: int = 4, top: int = 5) -> None:
        """Text -> image: for a few test captions, the ``top`` most similar test images
        (the true one framed in green)."""
        queries = min(queries, len(text_embeddings))
        picks = np.linspace(0, len(text_embeddings) - 1, queries).astype(int)
        ranked = (text_embeddings[picks] @ image_embeddings.T).argsort(dim=1, descending=True)
        top = min(top, len(image_embeddings))
        fig = self._figure(1.6 * top + 2.5, 1.7 * queries)
        for row, query in enumerate(picks):
            for column in range(top):
                index = int(ranked[row, column])
                ax = fig.add_subplot(queries, top, row * top + column + 1)
                ax.imshow(self._image(index))
                ax.set_xticks([])
                ax.set_yticks([])
                if index == query:
                    for spine in ax.spines.values():
                        spine.set_edgecolor("tab:green")
                        spine.set_linewidth(3)
                if column == 0:
                    ax.set_ylabel(textwrap.fill(self.pairs.captions_test[query], 22),
                                  fontsize=7)
        fig.suptitle("text -> image retrieval on the test pairs: the 5 nearest images "
                     "(true one framed)", fontsize=10)
        fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
