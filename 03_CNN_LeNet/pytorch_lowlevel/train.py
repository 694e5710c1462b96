"""Train the low-level LeNet-5 (``lenet_lowlevel.py``) on digits (default) or MNIST.

    python 03_CNN_LeNet/pytorch_lowlevel/train.py                      # digits, seconds
    python -m 03_CNN_LeNet.pytorch_lowlevel.train --dataset mnist --data-root DIR

The images come from ``utils.data_loaders.load_images``: scikit-learn's 8x8 digits
enlarged to the paper's 32x32 input field (each pixel a 3x3 block, 4 pixels of background
on every side, the way MNIST's 28x28 digits sit in the middle of LeNet's field with 2
pixels of border), the ink p in [0, 1] mapped as in the paper (section II-B) to
x = -0.1 + 1.275 p: background -0.1, ink 1.175. The training loop zeroes the gradients,
runs the model's loss, lets autograd fill ``.grad`` and calls lesson 02's hand-written
Adam or SGD step.
"""

from __future__ import annotations

import argparse
import math
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
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_images
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_feature_maps,
    plot_image_grid,
    plot_weights,
)

low = import_lesson("03_CNN_LeNet.pytorch_lowlevel.lenet_lowlevel")  # the model
check_labels = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel").check_labels

OPTIMIZERS = ("adam", "sgd")


def train(model: low.LeNet5, X: torch.Tensor, y, *, epochs: int, batch_size: int, lr: float,
          optimizer: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0,
          seed: int = 0, X_val: torch.Tensor | None = None, y_val=None,
          progress: bool = False, log=None) -> dict[str, list[float]]:
    """Mini-batch training: zero_grad -> forward -> loss -> backward -> step, per batch.

    Inputs:  model; X (N, C, H, W) float in the model's dtype; y (N,) int labels;
             optimizer "adam" (betas 0.9, 0.999) or "sgd" (with ``momentum``);
             seed - order of the mini-batches (a torch.Generator of its own);
             X_val, y_val - optional data evaluated after every epoch
    Returns: {"train_loss": mean loss of each epoch (over samples, while the weights
             move), "val_accuracy": accuracy after each epoch (empty without X_val)}
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"epochs and batch_size must be positive integers, got {epochs!r}, "
                         f"{batch_size!r}")
    device = model.params["conv1.W"].device
    X = X.to(device)  # (N, C, H, W); the model's forward checks the shape
    y = check_labels(y, X.shape[0], model.num_classes, device=device)
    params = model.parameters()
    order_rng = torch.Generator().manual_seed(seed)
    state = None
    history: dict[str, list[float]] = {"train_loss": [], "val_accuracy": []}
    n = X.shape[0]
    for epoch in tqdm(range(epochs), desc="LeNet5 (L2)", disable=not progress, leave=False):
        order = torch.randperm(n, generator=order_rng).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            low.zero_grad(params)
            J = model.loss(X[rows], y[rows])
            J.backward()  # autograd: through the matmuls, the unfolds (col2im) and the maxima
            if optimizer == "adam":
                state = low.adam_step(params, lr, weight_decay=weight_decay, state=state)
            else:
                state = low.sgd_step(params, lr, momentum=momentum,
                                     weight_decay=weight_decay, state=state)
            total += float(J.detach()) * rows.shape[0]
        history["train_loss"].append(total / n)
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['train_loss'][-1]} in epoch "
                                     f"{epoch + 1}: the learning rate lr={lr} is too large; "
                                     "try lr/10")
        line = f"epoch {epoch + 1}/{epochs}  train loss {history['train_loss'][-1]:.4f}"
        if X_val is not None:
            history["val_accuracy"].append(model.score(X_val.to(device), torch.as_tensor(y_val)))
            line += f"  val accuracy {history['val_accuracy'][-1]:.4f}"
        if log is not None:
            log(line)
    return history


DATASET_DEFAULTS = {
    "digits": {"epochs": 6, "batch_size": 32, "lr": 1e-3},
    "mnist": {"epochs": 4, "batch_size": 64, "lr": 1e-3},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level LeNet-5 on digits (default) or MNIST, with a hand-written Adam.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean training loss of the
             last epoch), "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="LeNet-5 in low-level PyTorch (convolution by unfold + matmul, pooling by "
                    f"unfold, hand-written Adam / SGD). Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/03_CNN_LeNet/l2_lenet", threads=1)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                        help="L2 penalty added to the gradient (default: %(default)s)")
    parser.add_argument("--activation", choices=low.ACTIVATIONS, default="relu")
    parser.add_argument("--pool", choices=low.POOLS, default="max")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, normalize="lecun", data_root=args.data_root)
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    classes = split.classes  # (N, 1, 32, 32): background -0.1, ink 1.175
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")

    model = low.LeNet5(num_classes=len(classes), activation=args.activation, pool=args.pool,
                   seed=args.seed, device=device)
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(X_test).to(device)
    ytr, yte = torch.from_numpy(y_train).to(device), torch.from_numpy(y_test).to(device)
    started = time.perf_counter()
    history = train(model, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                    weight_decay=args.weight_decay, seed=args.seed, X_val=Xte, y_val=yte,
                    progress=args.progress, log=print if args.progress else None)
    seconds = time.perf_counter() - started

    train_accuracy, test_accuracy = model.score(Xtr, ytr), model.score(Xte, yte)
    final_loss = history["train_loss"][-1]
    print(f"LeNet5 (L2, {args.activation}/{args.pool}) on {args.dataset}: train accuracy "
          f"{train_accuracy:.4f}, test accuracy {test_accuracy:.4f}, final loss "
          f"{final_loss:.4f}, {seconds:.1f} s of training on {device}")

    title = f"L2 LeNet-5 on {args.dataset}"
    plot_curves({"train loss": history["train_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    predictions = model.predict(Xte).cpu().numpy()
    plot_confusion_matrix(y_test, predictions, class_names=classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    filters = model.params["conv1.W"].detach().cpu().reshape(6, -1)  # (6, 25): one per row
    plot_weights(filters, image_shape=(5, 5), ncols=6, path=out / "c1_filters.png",
                 title=f"{title}: the 6 learned 5x5 filters of conv1")
    with torch.no_grad():
        _, features = model.forward(Xte[:1], return_features=True)
    plot_feature_maps(features["c1"][0].cpu(), ncols=6, path=out / "feature_maps_c1.png",
                      title=f"{title}: conv1 maps of one test digit ({y_test[0]})")
    plot_feature_maps(features["c3"][0].cpu(), ncols=8, path=out / "feature_maps_c3.png",
                      title=f"{title}: conv2 maps of the same digit")
    wrong = np.flatnonzero(predictions != y_test)[:16]
    if wrong.size:
        plot_image_grid(X_test[wrong], labels=y_test[wrong], predictions=predictions[wrong],
                        class_names=classes, path=out / "misclassified.png",
                        title=f"{title}: misclassified test images (true, pred)")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "train_seconds": seconds}


if __name__ == "__main__":
    main()
