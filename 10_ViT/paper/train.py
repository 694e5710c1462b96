"""Train the Vision Transformer (``vit_paper.ViT``) from scratch, or fine-tune a checkpoint, on
digits, CIFAR-10 or a folder of your own images.

    python 10_ViT/paper/train.py                                  # digits, no download, ~30 s
    python 10_ViT/paper/train.py --dataset cifar10 --data-root DIR --time-budget 300 --threads 2
    python 10_ViT/paper/train.py --train-dir photos/train --test-dir photos/test --image-size 64
    python 10_ViT/paper/train.py --dataset cifar10 --data-root DIR --checkpoint vit_small_dir

Data: ``digits`` (scikit-learn's 8x8 digits in a 24x24 field, 1,437 / 360 images, no
download), ``cifar10`` (``utils.data_loaders.load_cifar10``: the full set or the curriculum's
4k / 1k subset, whichever ``--data-root`` holds), ``folder`` (``--train-dir``, one sub-folder
per class; ``--test-dir`` likewise, or a held-out share: ``utils.data_loaders.load_image_folders``).
The recipe small-data ViTs need (DeiT, Touvron et al. 2021): random crop + flip, CutMix
(Yun et al. 2019), label smoothing, AdamW with weight decay on the matrices only, a linear
warm-up then a cosine decay, the gradient norm clipped at 1 (Appendix B.1). ``--time-budget``
stops after that many seconds, the schedule squeezed to fit, for comparisons at equal
wall-clock time (lesson 05's ResNet-20). ``--checkpoint DIR``: a folder in timm's or
transformers' layout (``convert.load_pretrained``), a new zero head and the positions
resampled to the images' size (Section 3.2). Writes curves, the patch grid, the position
similarities (Figure 7), attention rollout and a checkpoint folder under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
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
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
    set_help,
)
from utils.data_loaders import (
    Split,
    load_image_folders,
    load_images,
    random_crop_flip,
    read_image_folder,  # noqa: F401  (the script's tests reach it through this module)
)
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_curves

vp = import_lesson("10_ViT.paper.vit_paper")
convert = import_lesson("10_ViT.paper.convert")
lowlevel = import_lesson("10_ViT.pytorch_lowlevel.vit_lowlevel")  # AdamW groups, schedule

# --------------------------------------------------------------------------------------
# 1. Data: digits, CIFAR-10, a folder of images (one sub-folder per class)
# --------------------------------------------------------------------------------------


def load_data(args, image_size, channels: int) -> Split:
    """--dataset's images, (N, C, H, W) float32 in [0, 1] (digits: ink in [0, 1]), at
    ``image_size`` (None: the data's own size; digits: a multiple of 8, CIFAR-10 resized)."""
    if args.dataset == "folder":
        return load_image_folders(args.train_dir, args.test_dir, image_size,
                                  args.test_fraction, args.seed)
    size = image_size or IMAGE_SIZES[args.dataset]
    native = size if args.dataset == "digits" else 32
    split = load_images(args.dataset, size=native, channels=channels, normalize=None,
                        data_root=args.data_root)
    if vp.as_pair(size) != (native, native):  # CIFAR-10 at a checkpoint's resolution
        resize = lambda x: F.interpolate(torch.from_numpy(x), size=vp.as_pair(size),  # noqa: E731
                                         mode="bicubic", antialias=True).clamp(0, 1).numpy()
        split.X_train, split.X_test = resize(split.X_train), resize(split.X_test)
    return split


def checkpoint_mean_std(directory: Path) -> tuple[list[float], list[float]] | None:
    """The normalisation a checkpoint was trained with: timm's ``pretrained_cfg`` mean and
    std, or transformers' ``preprocessor_config.json`` image_mean and image_std; None when
    the folder does not say."""
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if "mean" in config.get("pretrained_cfg", {}):
        return config["pretrained_cfg"]["mean"], config["pretrained_cfg"]["std"]
    processor = directory / "preprocessor_config.json"
    if processor.is_file():
        values = json.loads(processor.read_text(encoding="utf-8"))
        if "image_mean" in values:
            return values["image_mean"], values["image_std"]
    return None


# --------------------------------------------------------------------------------------
# 2. Augmentation (training batches only): random crop + flip, then CutMix
# --------------------------------------------------------------------------------------


def cutmix(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019), one box per batch as timm's: lambda ~ U(0, 1) (Beta(1, 1),
    the paper's alpha = 1); a box of sides sqrt(1 - lambda) H x sqrt(1 - lambda) W (clipped
    at the border) is cut from a partner image (a random permutation of the batch) and
    pasted in; the target mixes the two one-hot labels by the areas actually kept:

        x~ = M * x_i + (1 - M) * x_partner,   y~ = lam' y_i + (1 - lam') y_partner,
        lam' = 1 - (box area) / (H W)

    Inputs:  images (B, C, H, W); labels (B,) int64.
    Returns: (mixed images (B, C, H, W), targets (B, num_classes), rows summing to 1).
    """
    height, width = images.shape[-2:]
    lam = float(torch.rand((), generator=generator))
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    center_y = int(torch.randint(height, (), generator=generator))
    center_x = int(torch.randint(width, (), generator=generator))
    top, bottom = max(center_y - cut_h // 2, 0), min(center_y + cut_h // 2, height)
    left, right = max(center_x - cut_w // 2, 0), min(center_x + cut_w // 2, width)
    partner = torch.randperm(len(images), generator=generator).to(images.device)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[partner, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)  # lam'
    one_hot = F.one_hot(labels, num_classes).to(images.dtype)  # (B, K)
    return mixed, kept * one_hot + (1.0 - kept) * one_hot[partner]


def augment(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
            crop_padding: int, flip: bool, cutmix_prob: float, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch's augmentation: random crops after ``crop_padding`` zeros and
    horizontal flips (``utils.data_loaders.random_crop_flip``), then CutMix with probability
    ``cutmix_prob``. Returns (images, labels (B,) or soft targets (B, K))."""
    if crop_padding or flip:
        images = random_crop_flip(images, padding=crop_padding, flip=flip, generator=generator)
    if cutmix_prob and float(torch.rand((), generator=generator)) < cutmix_prob:
        return cutmix(images, labels, num_classes, generator)
    return images, labels


# --------------------------------------------------------------------------------------
# 3. Training and evaluation
# --------------------------------------------------------------------------------------


def scheduled_lr(step: int, elapsed: float, peak_lr: float, warmup: float, steps: int,
                 time_budget: float = 0.0) -> float:
    """L2's linear warm-up then cosine decay (``warmup``: the share of training spent
    warming up). With a time budget the schedule runs on whichever clock is further on,
    steps or time (scaled to ``steps``), so the rate still reaches 0 when the time is spent."""
    position = max(step, elapsed / time_budget * steps) if time_budget else step
    return lowlevel.warmup_cosine_lr(position, peak_lr, max(1, round(warmup * steps)), steps)


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the un-augmented images, in eval mode."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        target = labels[start:start + batch_size]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
    model.train(was_training)
    return loss / len(images), correct / len(images)


def train(model, images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, epochs: int,
          batch_size: int, lr: float, warmup: float = 0.1, weight_decay: float = 0.05,
          label_smoothing: float = 0.1, clip_grad: float = 1.0, crop_padding: int = 0,
          flip: bool = False, cutmix_prob: float = 0.0, time_budget: float = 0.0,
          seed: int = 0, on_epoch=None, progress: bool = False) -> dict[str, list[float]]:
    """AdamW (decay on the weight matrices only, L2's groups) on the label-smoothed
    cross-entropy of augmented batches; the rate set every step (``scheduled_lr``); the
    gradient norm clipped at ``clip_grad`` (0: off). Stops after ``epochs`` or when
    ``time_budget`` seconds (0: none) are spent. ``on_epoch()`` returns numbers to record
    after each epoch.
    Returns: {"loss", "lr": per step; "epoch_loss" and on_epoch's keys: per epoch}.
    """
    groups = lowlevel.param_groups(dict(model.named_parameters()), weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(images) // batch_size)
    history: dict[str, list[float]] = {"loss": [], "lr": [], "epoch_loss": []}
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
            inputs, targets = augment(images[index], labels[index], num_classes,
                                      crop_padding=crop_padding, flip=flip,
                                      cutmix_prob=cutmix_prob, generator=generator)
            rate = scheduled_lr(step, elapsed, lr, warmup, steps, time_budget)
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss = F.cross_entropy(model(inputs), targets, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; "
                                         "lower --lr")
            history["loss"].append(losses[-1])
            history["lr"].append(rate)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            step += 1
        if losses:
            history["epoch_loss"].append(float(np.mean(losses)))
            for key, value in (on_epoch() if on_epoch else {}).items():
                history.setdefault(key, []).append(value)
        if time_budget and time.perf_counter() - started > time_budget:
            print(f"time budget of {time_budget:g} s reached in epoch {epoch} ({step} steps)")
            break
    return history


# --------------------------------------------------------------------------------------
# 4. The script
# --------------------------------------------------------------------------------------

# Per dataset. digits: L2's model (16 patches of 6x6 in a 24x24 field), no augmentation (the
# digits are centred: 30 epochs reached 0.967 without crops, 0.931 with 1 pixel, 0.856 with
# 2); cifar10 and folder: 64 patches (4x4; side / 8), 6 layers, crops, flips and CutMix.
DATASET_DEFAULTS = {
    "digits": {"epochs": 30, "batch_size": 64, "lr": 2e-3,
               "crop_padding": 0, "flip": False, "cutmix": 0.0},
    "cifar10": {"epochs": 30, "batch_size": 64,
                "lr": 1e-3, "crop_padding": 4, "flip": True, "cutmix": 0.5},
    "folder": {"epochs": 30, "batch_size": 64, "lr": 1e-3, "flip": True, "cutmix": 0.5},
}
IMAGE_SIZES = {"digits": 24, "cifar10": 32}  # without --image-size or --checkpoint
# The model from scratch (--size picks D, L and heads of Table 1 instead; folder: patches of
# side / 8)
MODEL_DEFAULTS = {"digits": {"patch_size": 6, "d_model": 64, "layers": 4, "heads": 4},
                  "cifar10": {"patch_size": 4, "d_model": 128, "layers": 6, "heads": 4},
                  "folder": {"d_model": 128, "layers": 6, "heads": 4}}
SIZES = ("tiny", "small", "base", "large", "huge")
FINE_TUNE_LR = 1e-4  # the default --lr with --checkpoint
UNTIL_BUDGET = 100_000  # --epochs when only --time-budget bounds the run


def unit_share(text: str) -> float:
    """argparse type: a number in [0, 1] (a probability that may be 1)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The Vision Transformer (vit_paper.py) from scratch or fine-tuned from a "
                    "timm / transformers checkpoint folder, on digits (no download), "
                    "CIFAR-10 or your own images (--train-dir).")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/10_ViT/l3_vit", threads=1)
    set_help(parser,
             epochs=("default: per dataset: " + ", ".join(
                 f"{k} {v['epochs']}" for k, v in DATASET_DEFAULTS.items()) +
                 "; with --time-budget alone: until the time is spent"),
             lr=("peak learning rate (default: per dataset: " + ", ".join(
                 f"{k} {v['lr']:g}" for k, v in DATASET_DEFAULTS.items()) +
                 f"; with --checkpoint {FINE_TUNE_LR:g})"))
    data = parser.add_argument_group("images")
    data.add_argument("--train-dir", type=Path, default=None, metavar="DIR",
                      help="your images, one sub-folder per class (selects --dataset folder)")
    data.add_argument("--test-dir", type=Path, default=None, metavar="DIR",
                      help="your test images, the same class sub-folders (default: hold out "
                           "--test-fraction of --train-dir)")
    data.add_argument("--test-fraction", type=probability, default=0.2,
                      help="share of each class held out without --test-dir "
                           "(default: %(default)s)")
    data.add_argument("--image-size", type=positive_int, default=None,
                      help="resize the images to N x N (default: digits 24, cifar10 32, "
                           "folder: the images' own size; with --checkpoint: its size)")
    model = parser.add_argument_group("the model (from scratch; a --checkpoint fixes it)")
    model.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                       help="fine-tune a folder in timm's or transformers' layout "
                            "(config.json + model.safetensors or pytorch_model.bin)")
    model.add_argument("--size", choices=SIZES, default=None,
                       help="a size of Table 1 / DeiT instead of --d-model, --layers, --heads")
    model.add_argument("--patch-size", type=positive_int, default=None,
                       help="patch side P, dividing the image side (default: digits 6, "
                            "cifar10 4, folder: side / 8)")
    for name, help_text in (("d-model", "hidden size D"), ("layers", "encoder layers L"),
                            ("heads", "attention heads, dividing D")):
        key = name.replace("-", "_")
        model.add_argument(f"--{name}", type=positive_int, default=None, help=(
            f"{help_text} (default: " + ", ".join(f"{k} {v[key]}" for k, v in
                                                  MODEL_DEFAULTS.items()) + ")"))
    model.add_argument("--d-ff", type=positive_int, default=None,
                       help="MLP size (default: 4 x D, as Table 1)")
    model.add_argument("--pool", choices=vp.POOLS, default=None,
                       help="classify from [CLS] (token) or the mean of the patch tokens "
                            "(default: token)")
    model.add_argument("--dropout", type=probability, default=0.0,
                       help="dropout after the embeddings and dense layers (default: "
                            "%(default)s)")
    recipe = parser.add_argument_group("the recipe (DeiT's, shortened)")
    recipe.add_argument("--crop-padding", type=int, default=None, metavar="N",
                        help="random crops after N zero pixels a side, 0: none (default: "
                             "digits 0, cifar10 4, folder side / 8)")
    recipe.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="random horizontal flips (default: %(default)s)")
    recipe.add_argument("--cutmix", type=unit_share, default=None, metavar="P",
                        help="probability that a batch is CutMixed (default: %(default)s)")
    recipe.add_argument("--label-smoothing", type=probability, default=0.1,
                        help="default: %(default)s")
    recipe.add_argument("--weight-decay", type=non_negative_float, default=0.05,
                        help="AdamW's decoupled weight decay on the matrices (default: "
                             "%(default)s)")
    recipe.add_argument("--warmup", type=probability, default=0.1,
                        help="share of the training spent warming up (default: %(default)s)")
    recipe.add_argument("--clip-grad", type=non_negative_float, default=1.0,
                        help="clip the gradient's global norm, 0: off (default: %(default)s)")
    parser.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                        help="write the pictures (curves, patches, positions, rollout)")
    recipe.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        metavar="SECONDS", help="stop training after this many seconds, the "
                        "schedule squeezed to fit; 0: no limit (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Train (or fine-tune) and test; returns {"test_accuracy", "majority_baseline" (the
    most frequent training class), "train_seconds", "test_loss", "first_loss", "final_loss"
    (mean training loss of the first and last epoch), "epochs", "steps", "parameters",
    "checkpoint" (the folder written)}."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if any(a.startswith("--train-dir") for a in argv) \
            and not any(a.startswith("--dataset") for a in argv):
        argv += ["--dataset", "folder"]  # a user's folder selects the "folder" defaults
    explicit_epochs = any(a.startswith("--epochs") for a in argv)
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if (args.dataset == "folder") != (args.train_dir is not None):
        parser.error("--train-dir goes with --dataset folder (and selects it)")
    if args.test_dir is not None and args.train_dir is None:
        parser.error("--test-dir needs --train-dir")
    architecture = [f"--{k.replace('_', '-')}" for k in ("size", "patch_size", "d_model",
                                                          "layers", "heads", "d_ff", "pool")
                    if getattr(args, k) is not None]
    if args.checkpoint is not None and architecture:
        parser.error(f"{', '.join(architecture)}: the --checkpoint fixes the architecture")
    if args.size is not None and set(architecture) & {"--d-model", "--layers", "--heads",
                                                      "--d-ff"}:
        parser.error("--size sets --d-model, --layers, --heads and --d-ff: give one or the "
                     "others")
    if args.checkpoint is not None and not args.checkpoint.is_dir():
        parser.error(f"argument --checkpoint: {args.checkpoint} is not a folder (timm's or "
                     "transformers' layout: config.json and model.safetensors)")
    if args.crop_padding is not None and args.crop_padding < 0:
        parser.error(f"argument --crop-padding: expected an integer >= 0, got "
                     f"{args.crop_padding}")
    if args.dataset == "digits" and args.image_size is not None and (
            args.image_size < 16 or args.image_size % 8):
        parser.error(f"argument --image-size: digits need a multiple of 8, >= 16, got "
                     f"{args.image_size}")
    for key, value in MODEL_DEFAULTS[args.dataset].items():
        if getattr(args, key) is None and args.checkpoint is None and (
                args.size is None or key == "patch_size"):
            setattr(args, key, value)
    if args.time_budget and not explicit_epochs:
        args.epochs = UNTIL_BUDGET
    if args.checkpoint is not None and not any(a.startswith("--lr") for a in argv):
        args.lr = FINE_TUNE_LR
    with torch_threads(args.threads):
        return _run(args, parser.error)


def _pretrained(args, fail) -> vp.ViT:
    """The --checkpoint folder in our ViT (its own head for now); a folder our ViT cannot
    read or reproduce is a usage error naming the option."""
    try:
        return convert.load_pretrained(args.checkpoint)
    except (ValueError, FileNotFoundError) as error:
        fail(f"argument --checkpoint: {error}")


def _fine_tuning(model: vp.ViT, num_classes: int, image_size: tuple[int, int], fail) -> None:
    """Section 3.2: "we remove the pre-trained prediction head and attach a zero-initialized
    D x K feedforward layer" (kept when the checkpoint already has K classes), and the
    position embeddings are resampled to the new image size."""
    if model.config.num_classes != num_classes:
        model.config = replace(model.config, num_classes=num_classes)
        model.head = torch.nn.Linear(model.config.d_model, num_classes)
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
    if vp.as_pair(model.config.image_size) != image_size:
        try:
            model.set_image_size(image_size)
        except ValueError as error:
            fail(f"argument --image-size: {error}")


def _new_model(args, image_size: tuple[int, int], channels: int, num_classes: int,
               fail) -> vp.ViT:
    """A ViT of the options' size (or --size's, Table 1), initialised as timm's."""
    patch = args.patch_size or max(1, min(image_size) // 8)
    if args.size is not None:
        preset = getattr(vp.ViTConfig, args.size)()
        sizes = {"d_model": preset.d_model, "n_layers": preset.n_layers,
                 "n_heads": preset.n_heads, "d_ff": preset.d_ff}
    else:
        sizes = {"d_model": args.d_model, "n_layers": args.layers, "n_heads": args.heads,
                 "d_ff": args.d_ff}
    try:
        config = vp.ViTConfig(image_size=convert.config_size(image_size), patch_size=patch,
                              in_channels=channels, num_classes=num_classes,
                              dropout=args.dropout, pool=args.pool or "token", **sizes)
    except ValueError as error:
        option = "--heads" if "multiple of n_heads" in str(error) else "--patch-size"
        fail(f"argument {option}: {error}")
    return vp.ViT(config)


def _normalisation(args, split: Split, pretrained: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per channel, subtracted and divided: the checkpoint's own when its folder
    says; none for the digits from scratch (ink in [0, 1], so a crop pads background); else
    the training images' statistics."""
    mean_std = checkpoint_mean_std(args.checkpoint) if pretrained else None
    if mean_std is not None:
        return tuple(np.array(values, np.float32) for values in mean_std)
    channels = split.X_train.shape[1]
    if args.dataset == "digits" and not pretrained:
        return np.zeros(channels, np.float32), np.ones(channels, np.float32)
    return split.X_train.mean(axis=(0, 2, 3)), split.X_train.std(axis=(0, 2, 3))


def _run(args: argparse.Namespace, fail) -> dict:
    """The body of ``main``: data, model, training, test, pictures, checkpoint."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    pretrained = _pretrained(args, fail) if args.checkpoint is not None else None
    channels = pretrained.config.in_channels if pretrained else (
        1 if args.dataset == "digits" else 3)
    size = args.image_size or (convert.config_size(pretrained.config.image_size) if pretrained
                               else None)
    if pretrained and args.dataset == "digits" and (not isinstance(size, int) or size < 16
                                                    or size % 8):
        fail(f"argument --image-size: digits need a multiple of 8, >= 16; the checkpoint is "
             f"for {pretrained.config.image_size}")
    if channels != 3 and args.dataset != "digits":
        fail(f"argument --checkpoint: a model for {channels}-channel images; {args.dataset} "
             "images are RGB")
    with data_errors(hint=None if args.dataset == "folder" else
                     "the default --dataset digits needs no download"):
        split = load_data(args, size, channels)
    if split.note:
        print(f"note: {split.note}")
    image_size = tuple(split.X_train.shape[-2:])
    mean, std = _normalisation(args, split, pretrained is not None)
    shape = (1, -1, 1, 1)
    train_x, test_x = (torch.from_numpy((x - mean.reshape(shape)) / std.reshape(shape)).to(
        device) for x in (split.X_train, split.X_test))
    train_y, test_y = (torch.from_numpy(y).to(device) for y in (split.y_train, split.y_test))
    num_classes = len(split.classes)
    if pretrained:
        model, origin = pretrained, f"fine-tuned from {args.checkpoint}"
        _fine_tuning(model, num_classes, image_size, fail)
    else:
        model, origin = _new_model(args, image_size, channels, num_classes, fail), "from scratch"
    model.to(device)
    cfg = model.config
    padding = args.crop_padding if args.crop_padding is not None else \
        DATASET_DEFAULTS[args.dataset].get("crop_padding", min(image_size) // 8)
    print(f"{split.name}: {len(train_x)} training / {len(test_x)} test images of "
          f"{image_size[0]}x{image_size[1]}x{channels}, {num_classes} classes; ViT ({origin}):"
          f" {cfg.num_patches} patches of {vp.as_pair(cfg.patch_size)} + [CLS], L={cfg.n_layers}"
          f" D={cfg.d_model} heads={cfg.n_heads}, pool {cfg.pool}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")

    def after_epoch() -> dict[str, float]:
        loss, accuracy = evaluate(model, test_x, test_y)
        return {"test loss": loss, "test accuracy": accuracy}

    started = time.perf_counter()
    history = train(model, train_x, train_y, num_classes=num_classes, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                    weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                    clip_grad=args.clip_grad, crop_padding=padding, flip=args.flip,
                    cutmix_prob=args.cutmix, time_budget=args.time_budget, seed=args.seed,
                    on_epoch=after_epoch, progress=args.progress)
    seconds = time.perf_counter() - started
    test_loss, test_accuracy = evaluate(model, test_x, test_y)
    baseline = float(np.mean(split.y_test == np.bincount(split.y_train).argmax()))
    print(f"ViT (L3, {origin}) on {split.name}: test accuracy {test_accuracy:.4f} (majority "
          f"class: {baseline:.4f}), test loss {test_loss:.4f}; {len(history['epoch_loss'])} "
          f"epochs, {len(history['loss'])} steps in {seconds:.1f} s on {device} "
          f"({args.threads} thread(s))")
    checkpoint = out / "checkpoint"
    (convert.save_timm if cfg.layer_norm_eps == 1e-6 else convert.save_pretrained)(
        model, checkpoint)
    if args.plots:
        pictures = Pictures(model, mean, std, split.classes, f"{split.name}, {origin}")
        pictures.curves(history, out)
        pictures.patch_grid(test_x[0], out / "patches.png")
        pictures.position_similarity(out / "position_similarity.png")
        pictures.attention_rollout(test_x[:6], test_y[:6], out / "attention_rollout.png")
    print(f"{'plots and ' if args.plots else ''}checkpoint (timm's or transformers' layout) "
          f"written to {out}")
    return {"test_accuracy": test_accuracy, "majority_baseline": baseline,
            "train_seconds": seconds, "test_loss": test_loss,
            "first_loss": history["epoch_loss"][0], "final_loss": history["epoch_loss"][-1],
            "epochs": float(len(history["epoch_loss"])), "steps": float(len(history["loss"])),
            "parameters": float(sum(p.numel() for p in model.parameters())),
            "checkpoint": str(checkpoint)}


# --------------------------------------------------------------------------------------
# 5. Pictures: curves, the patch grid, Figure 7's position similarities, attention rollout
# --------------------------------------------------------------------------------------


class Pictures:
    """The run's figures; images are shown un-normalised (x std + mean)."""

    def __init__(self, model: vp.ViT, mean: np.ndarray, std: np.ndarray,
                 classes: Sequence[str], title: str):
        self.model, self.mean, self.std = model, mean, std
        self.classes, self.title = list(classes), title

    def viewable(self, images: torch.Tensor) -> np.ndarray:
        """(B, C, H, W) normalised -> (B, H, W, C) or (B, H, W) in [0, 1] for imshow."""
        x = images.detach().cpu().numpy() * self.std[:, None, None] + self.mean[:, None, None]
        x = np.clip(x.transpose(0, 2, 3, 1), 0.0, 1.0)  # (B, H, W, C)
        return x[..., 0] if x.shape[-1] == 1 else x

    @staticmethod
    def _figure(width: float, height: float):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), layout="constrained")

    def curves(self, history: dict, out: Path) -> None:
        """loss.png: training loss per step; accuracy.png: test accuracy per epoch."""
        plot_curves({"training loss (augmented batches)": history["loss"]},
                    path=out / "loss.png", xlabel="step", ylabel="cross-entropy",
                    title=f"ViT on {self.title}")
        plot_curves({"test accuracy": history["test accuracy"]}, path=out / "accuracy.png",
                    ylabel="accuracy", title=f"ViT on {self.title}")

    def patch_grid(self, image: torch.Tensor, path: Path) -> None:
        """One image and its patches pulled apart: the sequence the Transformer reads
        (Figure 1), in reading order."""
        (patch_h, patch_w), (grid_h, grid_w) = (vp.as_pair(self.model.config.patch_size),
                                                self.model.config.grid_size)
        picture = self.viewable(image[None])[0]
        gap = max(1, min(patch_h, patch_w) // 4)
        spread = np.ones((grid_h * (patch_h + gap) - gap, grid_w * (patch_w + gap) - gap,
                          *picture.shape[2:]))
        for row in range(grid_h):
            for col in range(grid_w):
                spread[row * (patch_h + gap):row * (patch_h + gap) + patch_h,
                       col * (patch_w + gap):col * (patch_w + gap) + patch_w] = picture[
                    row * patch_h:(row + 1) * patch_h, col * patch_w:(col + 1) * patch_w]
        fig = self._figure(8, 4)
        for index, (shown, text) in enumerate(((picture, "the image"), (spread, (
                f"{grid_h * grid_w} patches of {patch_h}x{patch_w}: tokens 1..N, left to "
                "right, top to bottom")))):
            ax = fig.add_subplot(1, 2, index + 1)
            ax.imshow(shown, cmap="gray", vmin=0, vmax=1)
            ax.set_title(text, fontsize=9)
            ax.axis("off")
        fig.suptitle("an image as a sequence of patches (Section 3.1)")
        fig.savefig(path, dpi=100)

    def position_similarity(self, path: Path) -> None:
        """Figure 7 (centre): for each patch position, the cosine similarity of its learned
        position embedding with every other one's, drawn on the patch grid."""
        grid_h, grid_w = self.model.config.grid_size
        positions = self.model.position_embedding.detach()[0, 1:].float().cpu()  # (N, D)
        unit = positions / positions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        similarity = (unit @ unit.T).reshape(grid_h, grid_w, grid_h, grid_w).numpy()
        tile_h, tile_w = grid_h + 1, grid_w + 1  # one blank row and column between tiles
        mosaic = np.full((grid_h * tile_h - 1, grid_w * tile_w - 1), np.nan)
        for row in range(grid_h):
            for col in range(grid_w):
                mosaic[row * tile_h:row * tile_h + grid_h,
                       col * tile_w:col * tile_w + grid_w] = similarity[row, col]
        fig = self._figure(5.5, 4.5)
        ax = fig.add_subplot()
        shown = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1)
        ax.set_xlabel("input patch column")
        ax.set_ylabel("input patch row")
        ax.set_xticks([col * tile_w + grid_w / 2 - 0.5 for col in range(grid_w)],
                      range(1, grid_w + 1))
        ax.set_yticks([row * tile_h + grid_h / 2 - 0.5 for row in range(grid_h)],
                      range(1, grid_h + 1))
        fig.colorbar(shown, ax=ax, shrink=0.8, label="cosine similarity")
        ax.set_title("position embedding similarity (Figure 7, centre)", fontsize=10)
        fig.savefig(path, dpi=100)

    def attention_rollout(self, images: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
        """Attention rollout (Abnar & Zuidema 2020; Figure 6) of a few test images: what
        [CLS] (for pool="mean": the patch tokens on average) draws from each patch."""
        model = self.model.eval()
        with torch.no_grad():
            logits, attentions = model(images, return_attention=True)
        rollout = vp.attention_rollout(attentions)  # (B, T, T)
        if model.config.pool == "mean":
            rollout[:, 0] = rollout[:, 1:].mean(dim=1)  # the tokens the head averages
        heat = vp.cls_attention_map(rollout, model.config.grid_size,
                                    model.config.image_size).cpu().numpy()  # (B, H, W)
        pictures = self.viewable(images)
        fig = self._figure(1.8 * len(images), 4)
        for i in range(len(images)):
            for row, overlay in enumerate((False, True)):
                ax = fig.add_subplot(2, len(images), row * len(images) + i + 1)
                ax.imshow(pictures[i], cmap="gray", vmin=0, vmax=1)
                if overlay:
                    ax.imshow(heat[i], cmap="inferno", alpha=0.6, vmin=0, vmax=1)
                else:
                    ax.set_title(f"{self.classes[int(labels[i])]} -> "
                                 f"{self.classes[int(logits[i].argmax())]}", fontsize=8)
                ax.axis("off")
        fig.suptitle(f"attention rollout (true -> predicted), {self.title}", fontsize=9)
        fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
