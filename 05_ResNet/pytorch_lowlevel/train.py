"""Train the low-level CIFAR ResNet (``resnet_lowlevel.py``) on digits (default) or CIFAR-10.

    python 05_ResNet/pytorch_lowlevel/train.py                     # digits, ResNet-8
    python 05_ResNet/pytorch_lowlevel/train.py --dataset cifar10 --data-root DIR

The paper's recipe (Section 4.2) with lesson 02's hand-written SGD step: momentum 0.9,
weight decay 1e-4, the learning rate divided by 10 at 50 % and 75 % of the epochs; for
CIFAR-10 the per-pixel mean subtracted and random crops (4-pixel padding) with
horizontal flips (``utils.data_loaders.load_images`` and ``random_crop_flip``). The
digits sit in a 16x16 field by default (the 8x8 digit padded by 4, four times cheaper
to train on than lesson 03's 32x32; ``--digits-size 32``).
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
from utils.visualization import plot_confusion_matrix, plot_curves

low = import_lesson("05_ResNet.pytorch_lowlevel.resnet_lowlevel")  # the model: CifarResNet

# --------------------------------------------------------------------------------------
# 1. Training: the paper's schedule with the hand-written step
# --------------------------------------------------------------------------------------


def lr_milestones(epochs: int) -> list[int]:
    """The epochs at which the paper's schedule divides the learning rate by 10: at 50 %
    and at 75 % of training (32k and 48k of 64k iterations, Section 4.2). A milestone at
    epoch 0 is dropped (a run of one epoch keeps the base rate throughout)."""
    return [m for m in (epochs // 2, (3 * epochs) // 4) if m > 0]


def step_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (0-based): base_lr * 0.1 ** (milestones passed)."""
    return base_lr * 0.1 ** sum(epoch >= m for m in lr_milestones(epochs))


def train(model: low.CifarResNet, X: torch.Tensor, y: torch.Tensor, *, epochs: int,
          batch_size: int, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4,
          augment: bool = False, seed: int = 0, progress: bool = False,
          log=None) -> dict[str, list[float]]:
    """Mini-batch SGD: zero grads -> loss -> backward -> sgd_step, per batch.

    Inputs:  model; X (N, 3, H, W) on the model's device; y (N,) int64; epochs; batch_size;
             lr (divided by 10 at 50 % and 75 % of the epochs); momentum; weight_decay;
             augment - random crop + flip each batch; seed - batch order and augmentation
    Returns: {"train_loss": mean loss of each epoch, "lr": learning rate of each epoch}
    """
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"epochs and batch_size must be positive ints, got {epochs!r}, "
                         f"{batch_size!r}")
    gen = torch.Generator().manual_seed(seed)
    params, state, n = model.parameters(), None, X.shape[0]
    history: dict[str, list[float]] = {"train_loss": [], "lr": []}
    for epoch in tqdm(range(epochs), desc="ResNet (L2)", disable=not progress, leave=False):
        eta = step_lr(lr, epoch, epochs)
        order = torch.randperm(n, generator=gen).to(X.device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            xb = random_crop_flip(X[rows], generator=gen) if augment else X[rows]
            low.zero_grad(params)  # autograd adds into .grad: forget the last step's
            J = model.loss(xb, y[rows], training=True)
            J.backward()
            state = low.sgd_step(params, eta, momentum=momentum, weight_decay=weight_decay,
                                 state=state)
            total += float(J.detach()) * rows.shape[0]
        history["train_loss"].append(total / n)
        history["lr"].append(eta)
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['train_loss'][-1]} in epoch "
                                     f"{epoch + 1}; try a smaller --lr")
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  lr {eta:g}  train loss "
                f"{history['train_loss'][-1]:.4f}")
    return history


# --------------------------------------------------------------------------------------
# 2. The script
# --------------------------------------------------------------------------------------


DATASET_DEFAULTS = {
    "digits": {"depth": 8, "epochs": 3, "batch_size": 64, "lr": 0.1, "augment": False},
    "cifar10": {"depth": 20, "epochs": 10, "batch_size": 128, "lr": 0.1, "augment": True},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level CIFAR ResNet on digits (default) or CIFAR-10.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean training loss of the
             last epoch), "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="ResNet-(6n+2) of He et al. 2015, Section 4.2, in low-level PyTorch: "
                    "convolution by unfold + matmul, batch norm by hand, hand-written SGD "
                    f"with momentum and weight decay. Per-dataset defaults: {DATASET_DEFAULTS}")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/05_ResNet/l2_resnet", threads=1)
    parser.add_argument("--depth", type=positive_int, default=None,
                        help="6n + 2: 8, 14, 20, ... (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=1e-4,
                        help="default: %(default)s")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random crop (4-pixel padding) + horizontal flip (default: "
                             "%(default)s)")
    parser.add_argument("--digits-size", type=positive_int, default=16,
                        help="side of the digits images: 16 (fast, default) or 32 (lesson 03)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if args.depth < 8 or (args.depth - 2) % 6:
        parser.error(f"argument --depth: expected 6n + 2 with n >= 1 (8, 14, 20, 32, ...), "
                     f"got {args.depth}")
    if args.digits_size < 16 or args.digits_size % 8:
        parser.error(f"argument --digits-size: expected a multiple of 8, >= 16, got "
                     f"{args.digits_size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    size = args.digits_size if args.dataset == "digits" else 32
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, size=size, channels=3, normalize="per_pixel_mean",
                            data_root=args.data_root)  # Section 4.2: the mean image subtracted
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    classes, note = split.classes, split.note
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
    if note:
        print(f"note: {note}")
    model = low.CifarResNet(args.depth, len(classes), seed=args.seed, device=device)
    print(f"ResNet-{args.depth} (L2): {sum(p.numel() for p in model.parameters()):,} "
          "trainable parameters")
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(X_test).to(device)
    ytr, yte = torch.from_numpy(y_train).to(device), torch.from_numpy(y_test).to(device)
    started = time.perf_counter()
    history = train(model, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                    augment=args.augment, seed=args.seed, progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started
    train_accuracy = float((model.predict(Xtr) == ytr).float().mean())
    predictions = model.predict(Xte)
    test_accuracy = float((predictions == yte).float().mean())
    final_loss = history["train_loss"][-1]
    print(f"ResNet-{args.depth} (L2) on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s "
          f"of training on {device}")
    title = f"L2 ResNet-{args.depth} on {args.dataset}" + (" subset" if note else "")
    plot_curves({"train loss": history["train_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_confusion_matrix(y_test, predictions.cpu().numpy(), class_names=classes,
                          path=out / "confusion.png", title=f"{title} (test)")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "train_seconds": seconds}


if __name__ == "__main__":
    main()
