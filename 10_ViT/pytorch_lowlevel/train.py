"""Train the low-level ViT (``vit_lowlevel.py``) on upsampled digits (default) or CIFAR-10.

    python 10_ViT/pytorch_lowlevel/train.py                     # digits 24x24, 6x6 patches
    python -m 10_ViT.pytorch_lowlevel.train --dataset cifar10 --data-root DIR

The recipe small-data ViTs use (DeiT, Touvron et al. 2021): hand-written AdamW with weight
decay on the weight matrices only, a linear warm-up then a cosine decay per step, label
smoothing, random crops (and flips for CIFAR-10). scikit-learn's 8x8 digits sit in a 24x24
field (``utils.data_loaders.digits_as_images``: each pixel a 2x2 block, 4 pixels of
background), cut into 16 patches of 6x6. Prints the test accuracy beside the majority-class
baseline; plots the loss and the learned position embeddings' similarities (Figure 7).
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
    data_errors,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_images, random_crop_flip
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_curves, plot_image_grid

vit = import_lesson("10_ViT.pytorch_lowlevel.vit_lowlevel")

# per dataset: image side, patch side, model sizes, training length, augmentation (random
# crops hurt the centred digits: 81 % against 83 % in a third of the epochs), normalisation
DATASET_DEFAULTS = {
    "digits": {"image_size": 24, "patch_size": 6, "d_model": 64, "layers": 4, "heads": 4,
               "epochs": 30, "batch_size": 64, "lr": 2e-3, "crop_padding": 0, "flip": False,
               "normalize": "per_channel"},
    "cifar10": {"image_size": 32, "patch_size": 4, "d_model": 128, "layers": 6, "heads": 4,
                "epochs": 20, "batch_size": 128, "lr": 1e-3, "crop_padding": 4, "flip": True,
                "normalize": "per_channel"},
}


def train(params, config, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
          batch_size: int, lr: float, warmup_steps: int, weight_decay: float,
          label_smoothing: float, crop_padding: int, flip: bool, seed: int = 0,
          progress: bool = False, evaluate=None) -> dict[str, list[float]]:
    """AdamW on the label-smoothed cross-entropy, the rate set every step.

    Inputs: images (N, C, H, W), labels (N,); crop_padding, flip - the augmentation (0 and
            False: none); evaluate - called after each epoch, returns the test accuracy
    Returns: {"loss": per step, "lr": per step, "epoch_loss": per epoch, "test_accuracy":
              per epoch (when evaluate is given)}
    """
    groups = vit.param_groups(params, weight_decay)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(images) // batch_size)
    total_steps = epochs * steps_per_epoch
    history: dict[str, list[float]] = {"loss": [], "lr": [], "epoch_loss": [],
                                       "test_accuracy": []}
    state, step = None, 0
    bar = tqdm(range(epochs), desc="ViT (L2)", disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(len(images), generator=generator).to(images.device)  # shuffle
        losses = []
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            x = images[batch]
            if crop_padding or flip:
                x = random_crop_flip(x, padding=crop_padding, flip=flip, generator=generator)
            vit.zero_grad(params.values())
            logits = vit.forward(params, config, x, training=True)
            loss = vit.cross_entropy(logits, labels[batch], label_smoothing)
            loss.backward()
            rate = vit.warmup_cosine_lr(step, lr, warmup_steps, total_steps)
            state = vit.adamw_step(groups, rate, betas=(0.9, 0.999), eps=1e-8, state=state)
            losses.append(float(loss.detach()))
            if not np.isfinite(losses[-1]):
                raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; "
                                         "lower --lr")
            history["loss"].append(losses[-1])
            history["lr"].append(rate)
            step += 1
        history["epoch_loss"].append(float(np.mean(losses)))
        postfix = {"loss": f"{history['epoch_loss'][-1]:.3f}"}
        if evaluate is not None:
            history["test_accuracy"].append(evaluate())
            postfix["test acc"] = f"{history['test_accuracy'][-1]:.3f}"
        bar.set_postfix(postfix)
    return history


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level ViT on digits (default) or CIFAR-10; evaluate on the test split.

    Returns: {"test_accuracy", "train_accuracy", "majority_baseline" (always the most
             frequent training class), "first_loss", "final_loss" (mean training loss of
             the first and the last epoch), "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="The Vision Transformer (Dosovitskiy et al. 2020) from tensors and "
                    "autograd: patches by reshape + matmul, [CLS], learned positions, pre-LN "
                    "blocks; hand-written AdamW, warm-up + cosine, label smoothing. "
                    f"Per-dataset defaults: {DATASET_DEFAULTS}")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/10_ViT/l2_vit", threads=1)
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="digits: the side of the upsampled field, a multiple of 8 >= 16 "
                             "(cifar10: 32) (default: %(default)s)")
    parser.add_argument("--patch-size", type=positive_int, default=None,
                        help="patch side P, must divide the image side (default: %(default)s)")
    parser.add_argument("--d-model", type=positive_int, default=None,
                        help="hidden size D (default: %(default)s; ViT-B 768)")
    parser.add_argument("--layers", type=positive_int, default=None,
                        help="encoder blocks L (default: %(default)s; ViT-B 12)")
    parser.add_argument("--heads", type=positive_int, default=None,
                        help="attention heads, must divide --d-model (default: %(default)s)")
    parser.add_argument("--d-ff", type=positive_int, default=None,
                        help="MLP width (default: 4 x --d-model, as the paper)")
    parser.add_argument("--pool", choices=vit.POOLS, default="token",
                        help="head on [CLS] or on the mean of the patch tokens "
                             "(default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="dropout after the embeddings and dense layers "
                             "(default: %(default)s)")
    parser.add_argument("--label-smoothing", type=probability, default=0.1,
                        help="default: %(default)s (DeiT)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.05,
                        help="AdamW's decoupled weight decay (default: %(default)s, DeiT)")
    parser.add_argument("--warmup-epochs", type=non_negative_int, default=None,
                        help="linear warm-up length (default: 10%% of --epochs, at least 1)")
    parser.add_argument("--crop-padding", type=non_negative_int, default=None,
                        help="random crops after this much zero padding, 0: none "
                             "(default: %(default)s)")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="random horizontal flips (default: %(default)s)")
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="use only the first N training images (default: all)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if args.dataset == "cifar10" and args.image_size != 32:
        parser.error(f"argument --image-size: cifar10 images are 32x32, got {args.image_size}")
    if args.dataset == "digits" and (args.image_size < 16 or args.image_size % 8):
        parser.error(f"argument --image-size: digits need a multiple of 8, >= 16, got "
                     f"{args.image_size}")
    if args.image_size % args.patch_size:
        parser.error(f"argument --patch-size: {args.patch_size} does not divide the image "
                     f"side {args.image_size}")
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    channels = 3 if args.dataset == "cifar10" else 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, size=args.image_size, channels=channels,
                            normalize=DATASET_DEFAULTS[args.dataset]["normalize"],
                            data_root=args.data_root)
    X_train, y_train = split.X_train[:args.n_train], split.y_train[:args.n_train]
    print(f"{args.dataset}: train {X_train.shape}, test {split.X_test.shape}")
    if split.note:
        print(f"note: {split.note}")
    config = vit.ViTConfig(image_size=args.image_size, patch_size=args.patch_size,
                           in_channels=channels, num_classes=len(split.classes),
                           d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                           d_ff=args.d_ff, dropout=args.dropout, pool=args.pool)
    params = vit.init_params(config, seed=args.seed, device=device)
    print(f"ViT (L2): {config.num_patches} patches of {args.patch_size}x{args.patch_size} + "
          f"[CLS], {sum(p.numel() for p in params.values()):,} parameters")
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(split.X_test).to(device)
    ytr, yte = torch.from_numpy(y_train).to(device), torch.from_numpy(split.y_test).to(device)

    def test_accuracy() -> float:
        return float((vit.predict(params, config, Xte) == yte).double().mean())

    steps_per_epoch = -(-len(Xtr) // args.batch_size)
    warmup_epochs = (args.warmup_epochs if args.warmup_epochs is not None
                     else max(1, args.epochs // 10))
    started = time.perf_counter()
    history = train(params, config, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, warmup_steps=max(1, warmup_epochs * steps_per_epoch),
                    weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                    crop_padding=args.crop_padding, flip=args.flip, seed=args.seed,
                    progress=args.progress, evaluate=test_accuracy)
    seconds = time.perf_counter() - started
    accuracy = history["test_accuracy"][-1]
    train_accuracy = float((vit.predict(params, config, Xtr) == ytr).double().mean())
    majority = int(np.bincount(y_train).argmax())
    baseline = float((split.y_test == majority).mean())
    print(f"ViT (L2) on {args.dataset}: test accuracy {accuracy:.4f} (majority class: "
          f"{baseline:.4f}), train accuracy {train_accuracy:.4f}, {args.epochs} epochs in "
          f"{seconds:.1f} s on {device}")
    _plot(history, params, config, out, args.dataset + (" subset" if split.note else ""))
    print(f"plots written to {out}")
    return {"test_accuracy": accuracy, "train_accuracy": train_accuracy,
            "majority_baseline": baseline, "first_loss": history["epoch_loss"][0],
            "final_loss": history["epoch_loss"][-1], "train_seconds": seconds}


def _plot(history: dict[str, list[float]], params, config, out, dataset: str) -> None:
    """loss.png (per step), accuracy.png (test, per epoch), lr.png and
    position_similarity.png: for each patch, the cosine similarity of its learned position
    embedding with every other patch's, laid out on the grid (the paper's Figure 7)."""
    plot_curves({"training loss": history["loss"]}, path=out / "loss.png", xlabel="step",
                ylabel="label-smoothed cross-entropy", title=f"L2 ViT on {dataset}")
    plot_curves({"test accuracy": history["test_accuracy"]}, path=out / "accuracy.png",
                ylabel="accuracy", title=f"L2 ViT on {dataset}")
    plot_curves({"learning rate": history["lr"]}, path=out / "lr.png", xlabel="step",
                ylabel="lr", title="linear warm-up, then cosine decay")
    positions = params["position_embedding"].detach()[0, 1:].cpu()  # (N, D): patches only
    unit = positions / positions.norm(dim=-1, keepdim=True)
    similarity = (unit @ unit.T).reshape(-1, 1, *config.grid_size)  # (N, 1, G_h, G_w)
    plot_image_grid(similarity.numpy(), ncols=config.grid_size[1], cmap="viridis",
                    max_images=config.num_patches, path=out / "position_similarity.png",
                    title="position embedding similarity (Figure 7)")


if __name__ == "__main__":
    main()
