"""Train LeNet-5 (``lenet_paper.py``: the paper's, or the modern variant) on digits or MNIST.

    python 03_CNN_LeNet/paper/train.py                                 # paper, digits
    python 03_CNN_LeNet/paper/train.py --variant modern
    python -m 03_CNN_LeNet.paper.train --dataset mnist --data-root DIR --variant paper
    torchrun --nproc_per_node 2 03_CNN_LeNet/paper/train.py --device cpu

The L3 recipe: ``torch.optim`` (Adam, or SGD with momentum), a learning-rate schedule,
the shared loop ``utils.training_utils.fit`` (which also trains under torchrun with
DistributedDataParallel). The paper used a stochastic diagonal Levenberg-Marquardt method
for 20 passes (Appendix C); Adam with a cosine-decaying learning rate gets to a comparable
place in fewer passes. Inputs as in the paper (Section II-B): 28x28 MNIST digits in the
middle of a 32x32 field, background -0.1 and ink 1.175; the 8x8 digits upsampled x3 and
padded by 4 to the same field (``utils.data_loaders.load_images``). No data augmentation
(the paper's 0.95 % test error is without distortions; 0.8 % with).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_images, make_loader
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
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_feature_maps,
    plot_image_grid,
    plot_weights,
)

paper = import_lesson("03_CNN_LeNet.paper.lenet_paper")  # the models, build_model, predict

OPTIMIZERS = ("adam", "sgd")


def train(model: nn.Module, X, y, *, loss_fn: nn.Module, lr: float, epochs: int,
          batch_size: int, optimizer: str = "adam", momentum: float = 0.9,
          schedule: str = "cosine", seed: int = 0, device="cpu", val: tuple | None = None,
          progress: bool = False, log=None) -> History:
    """The L3 recipe: DataLoader, torch.optim, a learning-rate schedule, ``fit``.

    Inputs:  X (N, 1, 32, 32) float32 array or tensor; y (N,) int64 labels;
             optimizer "adam" or "sgd" (with ``momentum``); schedule - a name of
             ``utils.training_utils.make_lr_scheduler`` ("cosine": lr decays to 0 over
             the epochs, stepped once per epoch); val - optional (X_val, y_val)
    Returns: History (train / val loss and accuracy per epoch, lr, epoch times)
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed)
    val_loader = None
    if val is not None:
        val_loader = make_loader(val[0], val[1], batch_size=1000, shuffle=False)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    scheduler = make_lr_scheduler(opt, schedule, epochs=epochs)
    return fit(model, loader, loss_fn=loss_fn, optimizer=opt, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, scheduler=scheduler, device=device,
               progress=progress, log=log)


DATASET_DEFAULTS = {
    "digits": {"epochs": 8, "batch_size": 32, "lr": 5e-3},
    "mnist": {"epochs": 6, "batch_size": 128, "lr": 2e-3},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train LeNet-5 (the paper's, or the modern variant) on digits (default) or MNIST.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (the training loss after
             training, in eval mode, over the whole training set), "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="LeNet-5 as in LeCun et al. 1998 (--variant paper: scaled tanh, trainable "
                    "subsampling, C3 table, RBF outputs, MAP loss) or its modern form "
                    "(--variant modern: ReLU, max pooling, softmax). torch.optim + the shared "
                    f"loop; torchrun works. Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/03_CNN_LeNet/l3_lenet", threads=1)
    parser.add_argument("--variant", choices=paper.VARIANTS, default="paper")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--schedule", default="cosine",
                        choices=("none", "step", "cosine"), help="learning-rate schedule")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    # Under `torchrun --nproc_per_node N` this joins the process group and `fit` trains
    # with DistributedDataParallel; on its own it returns (0, 1, device).
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, normalize="lecun", data_root=args.data_root)
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    classes = split.classes  # (N, 1, 32, 32): background -0.1, ink 1.175
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")

    model, loss_fn = paper.build_model(args.variant)
    name = f"{type(model).__name__} ({args.variant})"
    print(f"{name}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
          "trainable parameters")
    started = time.perf_counter()
    history = train(model, X_train, y_train, loss_fn=loss_fn, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, optimizer=args.optimizer,
                    momentum=args.momentum, schedule=args.schedule, seed=args.seed,
                    device=device, val=(X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started

    train_eval = make_loader(X_train, y_train, batch_size=1000, shuffle=False)
    final_loss, train_accuracy = evaluate(model, train_eval, loss_fn=loss_fn, device=device)
    predictions = paper.predict(model, X_test)
    test_accuracy = float(np.mean(predictions == y_test))
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss, "train_seconds": seconds}
    if not is_main_process():  # every process holds the same weights; one reports
        cleanup_distributed()
        return metrics
    print(f"{name} on {args.dataset}: train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s of training "
          f"on {device}" + (f" x {world_size} processes" if world_size > 1 else ""))
    _plots(model, history, args, X_test, y_test, predictions, classes, out, name)
    cleanup_distributed()
    return metrics


def _plots(model, history: History, args, X_test, y_test, predictions, classes, out,
           name: str) -> None:
    """Loss curves, confusion matrix, C1 filters, feature maps, misclassified digits."""
    title = f"L3 {name} on {args.dataset}"
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="MAP criterion (eq. 9)" if args.variant == "paper" else "cross-entropy",
                title=title)
    plot_confusion_matrix(y_test, predictions, class_names=classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    filters = model.c1.weight.detach().cpu().reshape(6, -1)  # (6, 25), one filter per row
    plot_weights(filters, image_shape=(5, 5), ncols=6, path=out / "c1_filters.png",
                 title=f"{title}: the 6 learned 5x5 filters of C1")
    device = next(model.parameters()).device
    with torch.no_grad():
        model.eval()
        maps = model.features(torch.as_tensor(X_test[:1]).to(device))
    plot_feature_maps(maps["c1"][0].cpu(), ncols=6, path=out / "feature_maps_c1.png",
                      title=f"{title}: C1 maps of one test digit ({y_test[0]})")
    plot_feature_maps(maps["c3"][0].cpu(), ncols=8, path=out / "feature_maps_c3.png",
                      title=f"{title}: C3 maps of the same digit")
    if isinstance(model, paper.LeNet5):
        plot_weights(model.output.codes.cpu(), image_shape=paper.GLYPH_SHAPE, ncols=10,
                     path=out / "rbf_codes.png", title="the fixed 7x12 output codes (+1 red)")
    wrong = np.flatnonzero(predictions != y_test)[:16]
    if wrong.size:
        plot_image_grid(X_test[wrong], labels=y_test[wrong], predictions=predictions[wrong],
                        class_names=classes, path=out / "misclassified.png",
                        title=f"{title}: misclassified test images (true, pred)")
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
