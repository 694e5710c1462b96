"""Train L3 logistic regression (breast_cancer) or softmax regression (digits, iris, MNIST):
the module, its loss module, torch.optim.SGD and the shared loop ``utils.training_utils.fit``.

The models are ``logistic_paper.py`` beside this file; the derivations are in
``../theory.md``. Run from the repository root::

    python 01_Linear_Logistic/paper/train_logistic.py                     # breast cancer
    python 01_Linear_Logistic/paper/train_logistic.py --dataset digits
    python -m 01_Linear_Logistic.paper.train_logistic --dataset mnist --data-root DIR
    torchrun --nproc_per_node 2 01_Linear_Logistic/paper/train_logistic.py --dataset digits
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import nn

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays, make_loader
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    fit,
    is_main_process,
    seed_everything,
    setup_distributed,
    torch_threads,
)
from utils.visualization import plot_confusion_matrix, plot_curves, plot_weights

_logistic = import_lesson("01_Linear_Logistic.paper.logistic_paper")
LogisticRegression, SoftmaxRegression = _logistic.LogisticRegression, _logistic.SoftmaxRegression
make_optimizer = _logistic.make_optimizer

# Defaults per dataset: mini-batch SGD, a few epochs, a learning rate that works there.
# The script trains exactly these epochs with the shared recipe ``train``.
DATASET_DEFAULTS = {
    "breast_cancer": {"epochs": 20, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    "digits": {"epochs": 20, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    "iris": {"epochs": 100, "batch_size": 16, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    # MNIST: momentum averages the noisy mini-batch gradients; 10 epochs reach ~92.5 %
    "mnist": {"epochs": 10, "batch_size": 100, "lr": 0.05, "momentum": 0.9, "l2": 0.0},
}
IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28)}


def train(model: nn.Module, X, y, *, loss_fn: nn.Module, lr: float, epochs: int,
          batch_size: int, l2: float = 0.0, momentum: float = 0.0, shuffle: bool = True,
          seed: int = 0, device="cpu", val: tuple | None = None, progress: bool = False,
          log=None) -> History:
    """The standard recipe: DataLoader(s), optimiser, ``utils.training_utils.fit``.

    Inputs:  X (N, D) float; y (N,) labels (float 0/1 for BCE, int64 for cross-entropy);
             val - optional (X_val, y_val) evaluated after each epoch
    Returns: History with train/val loss and accuracy per epoch (train values are means
             over the epoch, measured while the weights move; no penalty in them)
    """
    loader = make_loader(X, y, batch_size=batch_size, shuffle=shuffle, seed=seed)
    val_loader = None
    if val is not None:
        val_loader = make_loader(val[0], val[1], batch_size=max(batch_size, 1024), shuffle=False)
    optimizer = make_optimizer(model.linear, lr=lr, l2=l2, momentum=momentum)
    return fit(model, loader, loss_fn=loss_fn, optimizer=optimizer, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, device=device, progress=progress,
               log=log)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train Cox's logistic regression (breast_cancer) or softmax regression (others).

    Returns: {"test_accuracy", "train_accuracy", "final_loss"} (final_loss: the training
             loss J, penalty included, after the last epoch).
    """
    parser = argparse.ArgumentParser(
        description="Logistic / softmax regression as nn.Modules, trained with torch.optim.SGD"
                    " and the shared loop.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/01_Linear_Logistic/l3_logistic", threads=1)
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="L2 penalty, SGD weight decay on W (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=None,
                        help="SGD momentum (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults

    # Under `torchrun --nproc_per_node N` this joins the process group and `fit` trains
    # with DistributedDataParallel (each process sees 1/N of every epoch); on its own
    # it returns (0, 1, device) and nothing changes.
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_arrays(args.dataset, data_root=args.data_root)
    print(split.summary())

    with torch_threads(args.threads):  # small matrices: 1 thread is fastest (0: torch's)
        metrics = _train_and_report(args, split, device, out, world_size)
    cleanup_distributed()
    return metrics


def _train_and_report(args, split, device, out, world_size) -> dict[str, float]:
    """The rest of main: build, train with the shared loop, evaluate, plot."""
    settings = dict(solver="sgd", lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                    l2=args.l2, seed=args.seed, momentum=args.momentum, device=device)
    if split.task == "binary":
        estimator = LogisticRegression(split.X_train.shape[1], **settings)
        y_train = split.y_train.astype(split.X_train.dtype)  # BCEWithLogitsLoss: float targets
        y_test = split.y_test.astype(split.X_train.dtype)
    else:
        estimator = SoftmaxRegression(split.X_train.shape[1], split.num_classes, **settings)
        y_train, y_test = split.y_train, split.y_test
    estimator.model.to(torch.as_tensor(split.X_train[:1]).dtype)  # float32 for MNIST

    # The L3 recipe: module + loss module + torch.optim.SGD + the shared loop, with the
    # test set evaluated after every epoch for the learning curves.
    history = train(estimator.model, split.X_train, y_train, loss_fn=estimator.loss_fn,
                    lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, l2=args.l2,
                    momentum=args.momentum, seed=args.seed, device=device,
                    val=(split.X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)

    train_accuracy = estimator.score(split.X_train, split.y_train)
    test_accuracy = estimator.score(split.X_test, split.y_test)
    final_loss = estimator.loss(split.X_train, split.y_train)
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss}
    if not is_main_process():  # every process holds the same weights; one reports
        return metrics
    name = type(estimator.model).__name__
    print(f"{name} on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final J {final_loss:.4f}")

    title = f"L3 {name} on {args.dataset}"
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_confusion_matrix(split.y_test, estimator.predict(split.X_test).cpu().numpy(),
                          class_names=split.classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    if args.dataset in IMAGE_SHAPES:
        # nn.Linear.weight is (K, D): one row per class, plot_weights accepts that layout
        plot_weights(estimator.model.linear.weight.detach().cpu(),
                     image_shape=IMAGE_SHAPES[args.dataset], path=out / "weights.png",
                     title=f"{title}: one template per class")
    print(f"plots written to {out}" + (f" ({world_size} processes)" if world_size > 1 else ""))
    return metrics


if __name__ == "__main__":
    main()
