"""Train LeNet-5 (NumPy, ``lenet_numpy.py``) on digits (offline default) or MNIST.

    python 03_CNN_LeNet/numpy/train.py                    # digits, 8 epochs, about 15 s
    python -m 03_CNN_LeNet.numpy.train --dataset mnist --data-root DIR

MNIST: 6 epochs of 20-30 s each on a 2-core CPU, 99.0 % test accuracy. The images come
from ``utils.data_loaders.load_images``: LeNet-5 takes 32x32 inputs (the paper centres
MNIST's 28x28 digits in a 32x32 field so that strokes near the border still reach the
middle of C3's receptive fields), so MNIST is padded by 2 pixels a side and the 8x8
digits are upsampled x3 and padded by 4 (a 24-pixel digit in a 32-pixel field, about
MNIST's proportions). The pixels are standardised with ONE mean and standard deviation
of the training pixels (mean 0, variance 1, as the paper arranges with background -0.1
and ink 1.175, section II.B).

Threads: the matrix products are small and oddly shaped (C1's is (6, 25) @ (25, N*784));
splitting each over several BLAS threads costs more in hand-overs than it gains, and on
a busy machine OpenBLAS's waiting threads can make an epoch tens of times slower. NumPy's
BLAS therefore runs on ``--threads`` threads (default 1; ``utils.cli.limit_blas_threads``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    limit_blas_threads,
    non_negative_int,
    parse_args,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_images
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_feature_maps,
    plot_image_grid,
    plot_weights,
)

lenet = import_lesson("03_CNN_LeNet.numpy.lenet_numpy")  # the model: LeNet5, predict_logits
mlp = lenet.mlp  # lesson 02's loss and optimisers


def train_epoch(model, loss_fn, optimizer, X: np.ndarray, y: np.ndarray, *, batch_size: int,
                rng: np.random.Generator, progress: bool = False, desc: str = "") -> float:
    """One pass over (X, y) in shuffled mini-batches: forward, loss, backward, optimiser step.

    Inputs:  model, loss_fn (mlp.SoftmaxCrossEntropy), optimizer (mlp.SGD or mlp.Adam);
             X (N, 1, 32, 32); y (N,) labels; batch_size; rng for the shuffle.
    Returns: the mean training loss over the epoch's mini-batches (weighted by size).
    """
    order = rng.permutation(len(X))
    batches = range(0, len(X), batch_size)
    total = 0.0
    for start in tqdm(batches, desc=desc, disable=not progress, leave=False):
        idx = order[start:start + batch_size]
        logits = model.forward(X[idx])  # (B, 10)
        loss = loss_fn.forward(logits, y[idx])  # mean cross-entropy of the batch
        model.backward(loss_fn.backward())  # every layer's grads, C1 included
        optimizer.step()  # in place, on the arrays the layers hold
        total += loss * len(idx)
    return total / len(X)


def evaluate(model, X: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and predictions of the model on (X, y).

    Returns: (loss as float, accuracy in [0, 1], predictions (N,) int64).
    """
    logits = lenet.predict_logits(model, X)
    loss = mlp.SoftmaxCrossEntropy().forward(logits, y)
    predictions = logits.argmax(axis=1)
    return loss, float(np.mean(predictions == y)), predictions


# Per-dataset defaults; any command-line value overrides them.
# decay_epochs: how many of the epochs run at lr / 10 at the end (step decay, see _run).
# lr is per optimiser: Adam's steps are about lr per weight whatever the gradient's
# scale, SGD's are lr times the gradient.
DATASET_DEFAULTS = {
    "digits": {"epochs": 8, "batch_size": 32, "lr": {"adam": 2e-3, "sgd": 0.01},
               "decay_epochs": 0},
    "mnist": {"epochs": 6, "batch_size": 64, "lr": {"adam": 1e-3, "sgd": 0.01},
              "decay_epochs": 2},
}


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train LeNet-5 (NumPy) on digits (offline default) or MNIST; print and plot the results.

    Writes to --out: loss.png (training and test loss per epoch), c1_filters.png (the
    six learned 5x5 filters of C1), feature_maps_c1.png and feature_maps_c3.png (what C1
    and C3 compute for the first test digit), confusion.png and misclassified.png.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: {"test_accuracy", "train_accuracy", "final_loss" (cross-entropy on the whole
             training set after training), "seconds_per_epoch"}.
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=["digits", "mnist"], epochs=None, batch_size=None,
                    lr=None, out="runs/03_CNN_LeNet/numpy_lenet", devices=("cpu",),
                    threads=1)  # NumPy's BLAS threads (module docstring)
    parser.add_argument("--activation", choices=sorted(lenet.ACTIVATIONS), default="relu")
    parser.add_argument("--pool", choices=sorted(lenet.POOLS), default="max")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                        help="adam, or sgd with momentum 0.9 (default: %(default)s)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="float32 trains faster and uses half the memory "
                             "(default: %(default)s)")
    parser.add_argument("--decay-epochs", type=non_negative_int, default=None,
                        help="run the last N epochs at lr / 10 (default: %(default)s)")
    parser.add_argument("--train-limit", type=positive_int, default=None,
                        help="train on the first N training images only (quick runs; "
                             "default: all)")
    # lr's per-dataset default is a table per optimiser: {"adam": ..., "sgd": ...}
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if isinstance(args.lr, dict):
        args.lr = args.lr[args.optimizer]
    if args.decay_epochs >= args.epochs:
        parser.error(f"argument --decay-epochs: must be smaller than --epochs ({args.epochs}), "
                     f"got {args.decay_epochs}")
    with limit_blas_threads(args.threads or None):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot (see ``main``)."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    cfg = {key: getattr(args, key) for key in DATASET_DEFAULTS[args.dataset]}  # after defaults
    # a missing or damaged file: one message saying where, no traceback
    with data_errors(hint="the default --dataset digits needs no download"):
        split = load_images(args.dataset, normalize="standardize", data_root=args.data_root,
                            seed=args.seed)  # (N, 1, 32, 32), one mean and std
    X_train, y_train, X_test, y_test = split.X_train, split.y_train, split.X_test, split.y_test
    if args.train_limit is not None:
        X_train, y_train = X_train[:args.train_limit], y_train[:args.train_limit]
    dtype = np.dtype(args.dtype)
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    print(f"{args.dataset}: X_train {X_train.shape} {X_train.dtype}, X_test {X_test.shape}; "
          f"{cfg}, {args.activation}, {args.pool} pooling, {args.optimizer}")

    rng = np.random.default_rng(args.seed)
    model = lenet.LeNet5(activation=args.activation, pool=args.pool, rng=rng, dtype=dtype)
    print(f"LeNet-5: {model.num_params():,} parameters")
    loss_fn = mlp.SoftmaxCrossEntropy()
    if args.optimizer == "adam":
        optimizer = mlp.Adam(model, lr=cfg["lr"])
    else:
        optimizer = mlp.SGD(model, lr=cfg["lr"], momentum=0.9)

    history: dict[str, list[float]] = {"train loss": [], "test loss": []}
    epoch_seconds = []
    # Step decay: with a constant step size the weights keep jittering around a minimum
    # with the noise of the mini-batch gradients; a last epoch or two at lr / 10 lets
    # them settle. On MNIST, 6 epochs at the constant rate stopped at 98.6 % test
    # accuracy; 3 epochs with the last one decayed reached 98.9 %, 6 with the last two
    # decayed (the default) 99.0 %.
    decay_from = cfg["epochs"] - cfg["decay_epochs"]
    for epoch in range(1, cfg["epochs"] + 1):
        optimizer.lr = cfg["lr"] / 10 if epoch > decay_from else cfg["lr"]
        start = time.perf_counter()
        train_loss = train_epoch(model, loss_fn, optimizer, X_train, y_train,
                                 batch_size=cfg["batch_size"], rng=rng, progress=args.progress,
                                 desc=f"epoch {epoch}/{cfg['epochs']}")
        epoch_seconds.append(time.perf_counter() - start)
        test_loss, test_acc, _ = evaluate(model, X_test, y_test)
        history["train loss"].append(train_loss)
        history["test loss"].append(test_loss)
        if args.progress or epoch == cfg["epochs"]:
            print(f"epoch {epoch}: train loss {train_loss:.4f}, test loss {test_loss:.4f}, "
                  f"test accuracy {test_acc:.4f} ({epoch_seconds[-1]:.1f} s)")

    final_loss, train_acc, _ = evaluate(model, X_train, y_train)
    _, test_acc, test_pred = evaluate(model, X_test, y_test)
    title = f"LeNet-5 (NumPy) on {args.dataset}"
    plot_curves(history, path=out / "loss.png", ylabel="cross-entropy", title=title)
    # red = positive weight, blue = negative: each filter responds to the ink pattern it
    # draws in red (an edge, a stroke end, a direction)
    plot_weights(model.c1.W[:, 0].reshape(6, -1), image_shape=(5, 5), ncols=6,
                 class_names=[f"filter {i}" for i in range(6)], path=out / "c1_filters.png",
                 title="C1: the six learned 5x5 filters")
    maps = model.feature_maps(X_test[:1])
    plot_feature_maps(maps["C1"], path=out / "feature_maps_c1.png",
                      title=f"C1 output for a test digit (label {y_test[0]})")
    plot_feature_maps(maps["C3"], path=out / "feature_maps_c3.png",
                      title=f"C3 output for a test digit (label {y_test[0]})")
    plot_confusion_matrix(y_test, test_pred, class_names=[str(d) for d in range(10)],
                          path=out / "confusion.png", title=f"{title} (test)")
    wrong = np.flatnonzero(test_pred != y_test)[:16]  # 16 panels: enough to see the mistakes
    if wrong.size:
        plot_image_grid(X_test[wrong], labels=y_test[wrong], predictions=test_pred[wrong],
                        path=out / "misclassified.png",
                        title=f"misclassified test digits ({int(np.sum(test_pred != y_test))} "
                              f"of {len(y_test)})")
    seconds = float(np.mean(epoch_seconds))
    print(f"LeNet-5: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}, final "
          f"training loss {final_loss:.4f}, {seconds:.1f} s per epoch")
    print(f"plots in {out}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc,
            "final_loss": float(final_loss), "seconds_per_epoch": seconds}


if __name__ == "__main__":
    main()
