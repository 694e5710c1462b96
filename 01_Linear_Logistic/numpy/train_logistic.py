"""Train L1 logistic regression (breast_cancer) or softmax regression (digits, iris, MNIST).

The models are ``logistic_numpy.py`` beside this file; the derivations are in
``../theory.md``. Run from the repository root::

    python 01_Linear_Logistic/numpy/train_logistic.py                      # breast cancer
    python 01_Linear_Logistic/numpy/train_logistic.py --dataset digits     # softmax, 8x8 digits
    python -m 01_Linear_Logistic.numpy.train_logistic --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse

import numpy as np

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    limit_blas_threads,
    non_negative_float,
    non_negative_int,
    parse_args,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_arrays
from utils.visualization import plot_confusion_matrix, plot_curves, plot_weights

_logistic = import_lesson("01_Linear_Logistic.numpy.logistic_numpy")
LogisticRegression, SoftmaxRegression = _logistic.LogisticRegression, _logistic.SoftmaxRegression

# Per-dataset defaults (command-line values win). Tabular sets are standardised
# by the loader; MNIST pixels are in [0, 1]. decay_epochs: how many of the epochs
# run at lr / 10 at the end (step decay, see _fit_with_step_decay). gd uses the full batch (no
# batch_size). The script runs each configuration for exactly its epochs, without
# momentum (tol=0, momentum=0): the classes' own defaults fit to a tolerance instead.
DATASET_DEFAULTS = {
    "breast_cancer": {"solver": "gd", "epochs": 200, "lr": 0.5, "l2": 1e-3, "decay_epochs": 0},
    "digits": {"solver": "sgd", "epochs": 15, "lr": 0.1, "batch_size": 32, "l2": 1e-4,
               "decay_epochs": 0},
    "iris": {"solver": "gd", "epochs": 500, "lr": 0.5, "l2": 1e-3, "decay_epochs": 0},
    "mnist": {"solver": "sgd", "epochs": 6, "lr": 0.5, "batch_size": 100, "l2": 0.0,
              "decay_epochs": 2},
}
IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train logistic regression (breast_cancer) or softmax regression (digits, iris, mnist).

    Prints train and test accuracy; writes the loss curve, the test confusion matrix
    and, for image data, the learned weight templates (one image per class) to --out.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: {"test_accuracy", "train_accuracy", "final_loss"} (final training objective).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=["breast_cancer", "digits", "iris", "mnist"], epochs=None,
                    batch_size=None, lr=None, out="runs/01_Linear_Logistic/numpy_logistic",
                    devices=("cpu",), threads=1)
    parser.add_argument("--solver", choices=["gd", "sgd", "newton"], default=None,
                        help="newton: binary only (default: %(default)s)")
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="ridge strength (default: %(default)s)")
    parser.add_argument("--decay-epochs", type=non_negative_int, default=None,
                        help="run the last N epochs at lr / 10 (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    cfg = {key: getattr(args, key) for key in ("solver", "epochs", "lr", "batch_size", "l2",
                                               "decay_epochs")}
    with data_errors():  # a missing or damaged file: one message saying where, no traceback
        data = load_arrays(args.dataset, data_root=args.data_root)
    print(f"{args.dataset}: X_train {data.X_train.shape} {data.X_train.dtype}, "
          f"X_test {data.X_test.shape}; {cfg}")

    decay_epochs = max(0, min(cfg["decay_epochs"], cfg["epochs"] - 1))
    hyper = {"solver": cfg["solver"], "lr": cfg["lr"], "epochs": cfg["epochs"] - decay_epochs,
             "batch_size": cfg["batch_size"], "l2": cfg["l2"], "seed": args.seed,
             "momentum": 0.0, "tol": 0.0}
    if data.task == "binary":
        model = LogisticRegression(**hyper)
    else:
        if cfg["solver"] == "newton":
            parser.error("--solver newton is implemented for the binary model only")
        model = SoftmaxRegression(n_classes=data.num_classes, **hyper)
    with limit_blas_threads(args.threads or None):  # small products: 1 thread is fastest
        history = _fit_with_step_decay(model, data, cfg["lr"], decay_epochs, args.progress)
        return _report(model, history, args, data, out)


def _fit_with_step_decay(model, data, lr: float, decay_epochs: int, progress: bool) -> list:
    """Fit, then run the last ``decay_epochs`` epochs at lr / 10; returns J after each epoch.

    Step decay, a classic schedule: with a constant learning rate, SGD keeps bouncing
    around the minimum with the noise of its mini-batch gradients; a last few epochs
    at lr / 10 let it settle. fit continues from the current W, b, so this is simply
    two calls to fit.
    """
    model.fit(data.X_train, data.y_train, progress=progress)
    history = list(model.history)
    if decay_epochs > 0:
        model.lr, model.epochs = lr / 10, decay_epochs
        model.fit(data.X_train, data.y_train, progress=progress)
        history += model.history
    return history


def _report(model, history: list, args, data, out) -> dict[str, float]:
    """Accuracy, plots (loss, confusion, weight templates for images), the returned metrics."""
    train_acc = model.score(data.X_train, data.y_train)
    test_pred = model.predict(data.X_test)
    test_acc = float(np.mean(test_pred == data.y_test))
    kind = type(model).__name__
    plot_curves({"training objective J": history}, path=out / "loss.png",
                ylabel="cross-entropy + (l2/2)||W||^2", title=f"{kind} on {args.dataset}")
    plot_confusion_matrix(data.y_test, test_pred, class_names=data.classes,
                          path=out / "confusion.png", title=f"{kind} on {args.dataset} (test)")
    if args.dataset in IMAGE_SHAPES:
        plot_weights(model.W, image_shape=IMAGE_SHAPES[args.dataset], path=out / "weights.png",
                     class_names=data.classes, title="learned templates: columns of W")
    print(f"{kind}: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}, "
          f"final training objective {history[-1]:.4f}")
    print(f"plots in {out}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc,
            "final_loss": float(history[-1])}


if __name__ == "__main__":
    main()
