"""Train the low-level VGG (``vgg_lowlevel.py``) on digits (default) or CIFAR-10.

    python 04_VGG/pytorch_lowlevel/train.py                          # digits, seconds
    python -m 04_VGG.pytorch_lowlevel.train --dataset cifar10 --data-root DIR

Mini-batch SGD with momentum and weight decay (lesson 02's hand-written step with
``torch.optim.SGD``'s rule; the paper, Section 3.1: momentum 0.9, weight decay 5e-4),
the learning rate decayed by a cosine over the epochs (as the Level 3 script), random
crops of the images padded by 4 pixels (``utils.data_loaders.random_crop_flip`` without
the flip: digits are not mirror-symmetric). The images (``utils.data_loaders.load_images``)
are 32x32 RGB fields, each channel standardised with the training set's statistics.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

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
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_curves, plot_feature_maps

low = import_lesson("04_VGG.pytorch_lowlevel.vgg_lowlevel")  # the model: VGGLowLevel
check_labels = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel").check_labels


def train(model: low.VGGLowLevel, X: torch.Tensor, y, *, epochs: int, batch_size: int, lr: float,
          momentum: float = 0.9, weight_decay: float = 5e-4, crop: int = 4, seed: int = 0,
          X_val: torch.Tensor | None = None, y_val=None, progress: bool = False,
          log=None) -> dict[str, list[float]]:
    """Mini-batch training: zero_grad -> (crop) -> forward -> loss -> backward -> sgd_step,
    with the learning rate decayed by a cosine over the epochs (as the Level 3 script).

    Inputs:  X (N, C, 32, 32) float in the model's dtype; y (N,) labels; crop - padding of
             the random crops (0: none); X_val, y_val - evaluated after every epoch
    Returns: {"train_loss": mean loss per epoch, "val_accuracy": accuracy per epoch}
    """
    device = model.params["classifier.weight"].device
    X = X.to(device)  # (N, C, 32, 32); the model's forward checks the shape
    y = check_labels(y, X.shape[0], model.num_classes, device=device)
    params = model.parameters()
    rng = torch.Generator().manual_seed(seed)
    state = None
    history: dict[str, list[float]] = {"train_loss": [], "val_accuracy": []}
    n = X.shape[0]
    model.train()
    for epoch in tqdm(range(epochs), desc="VGG (L2)", disable=not progress, leave=False):
        lr_now = lr * (1 + math.cos(math.pi * epoch / epochs)) / 2  # cosine, per epoch
        order = torch.randperm(n, generator=rng).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            xb = random_crop_flip(X[rows], crop, flip=False, generator=rng) if crop else X[rows]
            low.zero_grad(params)
            J = model.loss(xb, y[rows])
            J.backward()  # through matmuls, strided views, maxima and the batch statistics
            state = low.sgd_step(params, lr_now, momentum=momentum, weight_decay=weight_decay,
                             state=state)
            total += float(J.detach()) * rows.shape[0]
        history["train_loss"].append(total / n)
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['train_loss'][-1]} in epoch "
                                     f"{epoch + 1}: lr={lr} is too large; try lr/10")
        line = f"epoch {epoch + 1}/{epochs}  train loss {history['train_loss'][-1]:.4f}"
        if X_val is not None:
            history["val_accuracy"].append(model.score(X_val.to(device), y_val))
            line += f"  val accuracy {history['val_accuracy'][-1]:.4f}"
        if log is not None:
            log(line)
    return history


DATASET_DEFAULTS = {
    "digits": {"epochs": 3, "batch_size": 64, "lr": 0.05, "width": 8},
    "cifar10": {"epochs": 10, "batch_size": 64, "lr": 0.05, "width": 16},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level VGG on digits (default) or CIFAR-10 with a hand-written SGD.

    Returns: {"test_accuracy", "train_accuracy", "final_loss", "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="A CIFAR-sized VGG in low-level PyTorch (convolution and pooling by "
                    "as_strided views, batch norm by hand, hand-written SGD with momentum and "
                    f"weight decay). Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/04_VGG/l2_vgg", threads=1)
    parser.add_argument("--config", choices=sorted(low.CONFIGS), default="A")
    parser.add_argument("--width", type=positive_int, default=None,
                        help="channels of the first stage (default: %(default)s)")
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=5e-4,
                        help="default: %(default)s")
    parser.add_argument("--crop", type=non_negative_int, default=4,
                        help="padding of the random crops, 0 for no augmentation "
                             "(default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, channels=3, normalize="per_channel",
                            data_root=args.data_root)  # (N, 3, 32, 32)
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    classes, note = split.classes, split.note
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
    label = args.dataset
    if note:  # the 4k / 1k CIFAR-10 subset: say so wherever a result is shown
        print(f"note: {note}")
        label = f"{args.dataset} subset ({len(y_train)}/{len(y_test)})"
    model = low.VGGLowLevel(args.config, num_classes=len(classes), batch_norm=args.batch_norm,
                        width=args.width, seed=args.seed, device=device)
    print(f"VGG-{args.config} (L2, width {args.width}): {model.num_parameters():,} parameters")
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(X_test).to(device)
    ytr, yte = torch.from_numpy(y_train), torch.from_numpy(y_test)
    started = time.perf_counter()
    history = train(model, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    momentum=args.momentum, weight_decay=args.weight_decay, crop=args.crop,
                    seed=args.seed, X_val=Xte, y_val=yte, progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started
    train_accuracy, test_accuracy = model.score(Xtr, ytr), model.score(Xte, yte)
    final_loss = history["train_loss"][-1]
    print(f"VGG-{args.config} (L2) on {label}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s "
          f"of training on {device}")
    title = f"L2 VGG-{args.config} on {label}"
    plot_curves({"train loss": history["train_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    model.eval()
    with torch.no_grad():
        _, features = model.forward(Xte[:1], return_features=True)
    for stage in (1, 3, 5):
        plot_feature_maps(features[f"stage{stage}"][0].cpu(), ncols=8,
                          path=out / f"feature_maps_stage{stage}.png",
                          title=f"{title}: stage {stage} maps of one test image")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "train_seconds": seconds}


if __name__ == "__main__":
    main()
