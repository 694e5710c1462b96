"""Train a CIFAR ResNet (``resnet_paper.CifarResNet``) or its plain twin on digits or CIFAR-10.

    python 05_ResNet/paper/train.py                              # ResNet-20, digits
    python 05_ResNet/paper/train.py --dataset cifar10 --data-root DIR --epochs 182
    python 05_ResNet/paper/train.py --arch resnet20 --shortcut none     # plain-20
    torchrun --nproc_per_node 2 05_ResNet/paper/train.py --device cpu

The paper's CIFAR-10 recipe (Section 4.2) with ``torch.optim`` and the shared loop
``utils.training_utils.fit``: SGD, momentum 0.9, weight decay 1e-4, mini-batches of 128,
the learning rate divided by 10 at 50 % and 75 % of the epochs (L2's ``lr_milestones``),
the per-pixel mean subtracted and random crops + flips (``utils.data_loaders.load_images``
and ``random_crop_flip``, as at L2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from torch import nn

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
from utils.data_loaders import load_images, make_loader, random_crop_flip
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    evaluate,
    fit,
    is_main_process,
    seed_everything,
    setup_distributed,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_confusion_matrix, plot_curves

paper = import_lesson("05_ResNet.paper.resnet_paper")  # the models: CifarResNet, ...
# the paper's schedule, as the low-level script computes it: lr / 10 at 50 % and 75 %
lr_milestones = import_lesson("05_ResNet.pytorch_lowlevel.train").lr_milestones

ARCHS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32, "resnet44": 44,
         "resnet56": 56, "resnet110": 110}


class AugmentingCollate:
    """``collate_fn`` for a DataLoader: stack the batch, then random crop (4-pixel padding)
    + horizontal flip on the whole batch (Section 4.2). A class, not a closure, so that
    DataLoader workers can pickle it. Uses torch's global generator (seeded by the script)."""

    def __call__(self, samples):
        x = torch.stack([s[0] for s in samples])  # (B, 3, H, W)
        y = torch.stack([s[1] for s in samples])  # (B,)
        return random_crop_flip(x), y


def train(model: nn.Module, X, y, *, lr: float, epochs: int, batch_size: int,
          momentum: float = 0.9, weight_decay: float = 1e-4, augment: bool = True,
          seed: int = 0, device="cpu", val: tuple | None = None, progress: bool = False,
          log=None) -> History:
    """The paper's recipe with torch.optim and the shared loop ``fit``.

    SGD, momentum 0.9, weight decay 1e-4, mini-batches of 128 (Section 4.2); the learning
    rate starts at ``lr`` (0.1) and is divided by 10 at 50 % and 75 % of the epochs
    (32k and 48k of the paper's 64k iterations). The paper warms ResNet-110 up at 0.01
    for about 400 iterations; we leave that to ``--lr`` / a shorter first run.

    Inputs:  X (N, 3, H, W) float32 array or tensor; y (N,) int64; augment - random crop +
             flip (``AugmentingCollate``); val - optional (X_val, y_val) evaluated each epoch
    Returns: History (train / val loss and accuracy per epoch, lr, epoch times)
    """
    loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed)
    if augment:
        loader.collate_fn = AugmentingCollate()
    val_loader = None if val is None else make_loader(val[0], val[1], batch_size=500,
                                                      shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    # lr / 10 at 50 % and 75 % of the epochs (the same milestones as L2's schedule)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=lr_milestones(epochs),
                                                     gamma=0.1)
    return fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, scheduler=scheduler, device=device,
               progress=progress, log=log)


DATASET_DEFAULTS = {
    "digits": {"arch": "resnet20", "epochs": 3, "batch_size": 64, "lr": 0.1, "augment": False},
    "cifar10": {"arch": "resnet20", "epochs": 30, "batch_size": 128, "lr": 0.1,
                "augment": True},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train a CIFAR ResNet (or its plain counterpart) on digits (default) or CIFAR-10.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (training loss after
             training, eval mode, whole training set), "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="The CIFAR-10 ResNets of He et al. 2015 (Section 4.2) with the paper's "
                    "recipe (SGD 0.9, weight decay 1e-4, lr 0.1 / 10 at 50%% and 75%%, crop + "
                    "flip, per-pixel mean subtracted). torchrun works. Per-dataset "
                    f"defaults: {DATASET_DEFAULTS}")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/05_ResNet/l3_resnet", threads=1)
    parser.add_argument("--arch", choices=list(ARCHS), default=None,
                        help="default: %(default)s")
    parser.add_argument("--shortcut", choices=paper.SHORTCUTS, default="A",
                        help="A: zero-padding identity (paper), B: projections, none: plain net")
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
    if args.digits_size < 16 or args.digits_size % 8:
        parser.error(f"argument --digits-size: expected a multiple of 8, >= 16, got "
                     f"{args.digits_size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    size = args.digits_size if args.dataset == "digits" else 32
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, size=size, channels=3, normalize="per_pixel_mean",
                            data_root=args.data_root)  # Section 4.2: the mean image subtracted
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    classes, note = split.classes, split.note
    if is_main_process():
        print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
        if note:
            print(f"note: {note}")
    args.subset = note is not None  # only the 4k/1k CIFAR-10 subset carries a note
    depth = ARCHS[args.arch]
    model = paper.CifarResNet(depth, len(classes), shortcut=args.shortcut)
    name = f"{'plain' if args.shortcut == 'none' else 'ResNet'}-{depth}"
    if is_main_process():
        print(f"{name} (shortcut {args.shortcut}): "
              f"{sum(p.numel() for p in model.parameters()):,} parameters")
    started = time.perf_counter()
    history = train(model, X_train, y_train, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, augment=args.augment, seed=args.seed,
                    device=device, val=(X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started
    loss_fn = nn.CrossEntropyLoss()
    train_eval = make_loader(X_train, y_train, batch_size=500, shuffle=False)
    final_loss, train_accuracy = evaluate(model, train_eval, loss_fn=loss_fn, device=device)
    test_eval = make_loader(X_test, y_test, batch_size=500, shuffle=False)
    _, test_accuracy = evaluate(model, test_eval, loss_fn=loss_fn, device=device)
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss, "train_seconds": seconds}
    if not is_main_process():
        cleanup_distributed()
        return metrics
    print(f"{name} on {args.dataset}: train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f} (error {100 * (1 - test_accuracy):.2f} %), final loss "
          f"{final_loss:.4f}, {seconds:.1f} s of training on {device}"
          + (f" x {world_size} processes" if world_size > 1 else ""))
    _plots(model, history, args, X_test, y_test, classes, out, name, device)
    cleanup_distributed()
    return metrics


def gradient_norms_at_init(depth: int, x: torch.Tensor, y: torch.Tensor,
                           shortcut: str, seed: int = 0) -> list[float]:
    """||dL/dW|| of every convolution of a freshly initialised CIFAR net (input side first),
    for one batch: how much gradient reaches each layer before any training.

    Inputs: depth (6n + 2); x (N, 3, H, W); y (N,); shortcut "A" / "B" / "none"
    Returns: a list of 6n + 1 floats (conv1, then the blocks' convolutions in order)
    """
    torch.manual_seed(seed)
    model = paper.CifarResNet(depth, int(y.max()) + 1, shortcut=shortcut)
    nn.CrossEntropyLoss()(model(x), y).backward()
    return [float(m.weight.grad.norm()) for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def _plots(model, history: History, args, X_test, y_test, classes, out, name, device):
    """Loss and accuracy curves, confusion matrix, gradient norms per layer at init."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    data = args.dataset + (" subset" if args.dataset == "cifar10" and args.subset else "")
    title = f"L3 {name} on {data}"
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_curves({"train accuracy": history.train_metric, "test accuracy": history.val_metric},
                path=out / "accuracy.png", ylabel="accuracy", title=title)
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(X_test[:1000]).to(device))
    plot_confusion_matrix(y_test[:1000], logits.argmax(1).cpu().numpy(), class_names=classes,
                          path=out / "confusion.png", title=f"{title} (test)")
    # Plain vs residual at initialisation: one batch, same depth, same seed.
    x = torch.as_tensor(X_test[:64])
    y = torch.as_tensor(y_test[:64])
    depth = ARCHS[args.arch]
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for shortcut, label in (("A", f"ResNet-{depth}"), ("none", f"plain-{depth}")):
        norms = gradient_norms_at_init(depth, x, y, shortcut, seed=args.seed)
        ax.plot(range(1, len(norms) + 1), norms, marker="o", markersize=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("3x3 convolution (input side on the left)")
    ax.set_ylabel("||dL/dW|| at initialisation")
    ax.set_title(f"gradient reaching each layer at init, one batch of {data}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(out / "grad_norms_at_init.png", dpi=100)
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
