"""Train a CIFAR-sized VGG (``vgg_paper.vgg_cifar``) on digits (default, offline) or CIFAR-10.

    python 04_VGG/paper/train.py                         # config A, digits, a few seconds
    python 04_VGG/paper/train.py --dataset cifar10 --data-root /path/to/data --config D
    torchrun --nproc_per_node 2 04_VGG/paper/train.py --device cpu

SGD with momentum and weight decay (Section 3.1: momentum 0.9, weight decay 5e-4),
softmax cross-entropy, a learning-rate schedule (cosine by default: minutes, not weeks),
random crops of the images padded by 4 (and flips: not for digits, which are not
mirror-symmetric), ``torch.optim`` and the shared loop ``utils.training_utils.fit``
(which also trains under torchrun). The images come from ``utils.data_loaders.load_images``:
32x32 RGB, every channel standardised with the training set's statistics (the paper
subtracts the mean RGB value, Section 2.1).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

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
from utils.data_loaders import load_images, random_crop_flip, to_tensor_dataset
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    evaluate,
    fit,
    is_main_process,
    make_lr_scheduler,
    seed_everything,
    setup_distributed,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_confusion_matrix, plot_curves, plot_feature_maps

paper = import_lesson("04_VGG.paper.vgg_paper")  # the model: vgg_cifar, receptive fields

AUGMENTS = ("none", "crop", "crop-flip")
DATASET_DEFAULTS = {
    # digits are not mirror-symmetric: crop only
    "digits": {"epochs": 6, "batch_size": 64, "lr": 0.05, "width": 8, "augment": "crop"},
    "cifar10": {"epochs": 10, "batch_size": 64, "lr": 0.05, "width": 16,
                "augment": "crop-flip"},
}


class AugmentingCollate:
    """A DataLoader ``collate_fn``: stack the samples, then ``random_crop_flip`` them.

    It owns a seeded torch.Generator, so runs with the same seed see the same crops, and
    the training loop (``fit``) and torchrun keep working unchanged.
    """

    def __init__(self, padding: int = 4, flip: bool = True, seed: int = 0):
        self.padding, self.flip = padding, flip
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, samples):
        x = torch.stack([s[0] for s in samples])  # (B, C, H, W)
        y = torch.stack([s[1] for s in samples])  # (B,)
        if self.padding or self.flip:
            x = random_crop_flip(x, self.padding, self.flip, self.generator)
        return x, y


def train(model: nn.Module, X, y, *, lr: float, epochs: int, batch_size: int,
          momentum: float = 0.9, weight_decay: float = 5e-4, augment: str = "crop-flip",
          schedule: str = "cosine", seed: int = 0, device="cpu", val: tuple | None = None,
          progress: bool = False, log=None) -> History:
    """SGD with momentum and weight decay (Section 3.1: momentum 0.9, weight decay 5e-4),
    softmax cross-entropy, a learning-rate schedule, augmentation, the shared ``fit``.

    Inputs:  X (N, 3, 32, 32) float32 array; y (N,) int labels; augment "none", "crop"
             (random 32x32 crop of the image padded by 4) or "crop-flip" (and mirroring);
             val - optional (X_val, y_val) evaluated after every epoch
    Returns: History (train / val loss and accuracy per epoch, lr, epoch times)
    """
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    collate = AugmentingCollate(padding=0 if augment == "none" else 4,
                                flip=augment == "crop-flip", seed=seed)
    loader = DataLoader(to_tensor_dataset(X, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), collate_fn=collate)
    val_loader = None
    if val is not None:
        val_loader = DataLoader(to_tensor_dataset(*val), batch_size=500, shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    scheduler = make_lr_scheduler(opt, schedule, epochs=epochs)
    return fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, scheduler=scheduler, device=device,
               progress=progress, log=log)


def plot_receptive_fields(config: str, path) -> None:
    """Receptive-field size per layer of ``config``: the formula and the autograd test."""
    from matplotlib.figure import Figure

    from utils.visualization import save_figure

    table = paper.receptive_fields(config)
    measured = paper.empirical_receptive_fields(config)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(len(table))
    ax.plot(positions, [r for _, r, _ in table], "o-", label="formula r_l = r_(l-1) + (k-1) j")
    ax.plot(positions, [m for _, m in measured], "x", markersize=10,
            label="measured: support of d unit / d input")
    ax.set_xticks(positions, [name for name, _, _ in table], rotation=60, fontsize=8)
    ax.set_ylabel("receptive field (pixels, one side)")
    ax.set_title(f"VGG configuration {config}: receptive field after each layer")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train a CIFAR-sized VGG on digits (default, offline) or CIFAR-10.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (training loss in eval mode
             over the whole training set, without augmentation), "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="A VGG configuration (Simonyan & Zisserman 2015, Table 1) on 32x32 images, "
                    "SGD with momentum and weight decay, random crops (and flips). torch.optim "
                    f"+ the shared loop; torchrun works. Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/04_VGG/l3_vgg", threads=1)
    parser.add_argument("--config", choices=sorted(paper.CONFIGS), default="A")
    parser.add_argument("--width", type=positive_int, default=None,
                        help="channels of the first stage (the paper: 64; default: "
                             "%(default)s)")
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--augment", choices=AUGMENTS, default=None,
                        help="default: %(default)s")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=5e-4,
                        help="default: %(default)s")
    parser.add_argument("--init", choices=paper.INITS, default="glorot")
    parser.add_argument("--schedule", default="cosine", choices=("none", "step", "cosine"))
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, channels=3, normalize="per_channel",
                            data_root=args.data_root)  # (N, 3, 32, 32)
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    classes, note = split.classes, split.note
    if note:  # the 4k / 1k CIFAR-10 subset: say so wherever a result is shown
        args.dataset_label = f"{args.dataset} subset ({len(y_train)}/{len(y_test)})"
    else:
        args.dataset_label = args.dataset
    if is_main_process():
        print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
        if note:
            print(f"note: {note}")
    model = paper.vgg_cifar(args.config, num_classes=len(classes), batch_norm=args.batch_norm,
                      width=args.width, init=args.init)
    name = f"VGG-{args.config} (CIFAR variant, width {args.width}" + \
        (", batch norm)" if args.batch_norm else ")")
    if is_main_process():
        print(f"{name}: {paper.count_parameters(model):,} trainable parameters")
    started = time.perf_counter()
    history = train(model, X_train, y_train, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, augment=args.augment,
                    schedule=args.schedule, seed=args.seed, device=device,
                    val=(X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started

    train_eval = DataLoader(to_tensor_dataset(X_train, y_train), batch_size=500)
    final_loss, train_accuracy = evaluate(model, train_eval, loss_fn=nn.CrossEntropyLoss(),
                                          device=device)
    predictions = paper.predict(model, X_test)
    test_accuracy = float(np.mean(predictions == y_test))
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss, "train_seconds": seconds}
    if not is_main_process():
        cleanup_distributed()
        return metrics
    print(f"{name} on {args.dataset_label}: train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s of training on "
          f"{device}" + (f" x {world_size} processes" if world_size > 1 else ""))
    _plots(model, history, args, X_test, y_test, predictions, classes, out, name)
    cleanup_distributed()
    return metrics


def _plots(model, history: History, args, X_test, y_test, predictions, classes, out,
           name: str) -> None:
    """Loss curves, confusion matrix, feature maps at three depths, receptive fields."""
    title = f"L3 {name} on {args.dataset_label}"
    plot_curves({"train loss (mean over each epoch, augmented)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_confusion_matrix(y_test, predictions, class_names=classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    device = next(model.parameters()).device
    model.eval()
    maps = model.feature_maps(torch.as_tensor(X_test[:1]).to(device))
    for stage in (1, 3, 5):
        plot_feature_maps(maps[f"stage{stage}"][0].cpu(), ncols=8,
                          path=out / f"feature_maps_stage{stage}.png",
                          title=f"{title}: stage {stage} maps of one test image "
                                f"({classes[int(y_test[0])]}), "
                                f"{tuple(maps[f'stage{stage}'].shape[2:])}")
    plot_receptive_fields("D", out / "receptive_field_D.png")
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
