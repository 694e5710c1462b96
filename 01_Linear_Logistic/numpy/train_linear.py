"""Fit L1 linear regression: the normal equation against gradient descent (diabetes), or a
least-squares classifier on one-hot targets (MNIST).

The model is ``linear_numpy.py`` beside this file; the derivations are in ``../theory.md``.
Run from the repository root::

    python 01_Linear_Logistic/numpy/train_linear.py                        # diabetes, offline
    python -m 01_Linear_Logistic.numpy.train_linear --dataset mnist --data-root DIR
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
    parse_args,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_arrays
from utils.visualization import plot_confusion_matrix, plot_curves

LinearRegression = import_lesson("01_Linear_Logistic.numpy.linear_numpy").LinearRegression


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Fit linear regression on diabetes (closed form vs gradient descent) or MNIST.

    diabetes: the normal equation and the iterative solver (``--solver``) side by side;
    prints test R^2 and MSE of both, plots the iterative solver's loss curve.
    mnist: a least-squares classifier: regress one-hot targets (K = 10) in closed form,
    predict the class with the largest output; prints accuracy, plots the confusion matrix.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: {"test_r2", "test_mse", "iterative_test_r2", "iterative_test_mse"} for
             diabetes (the first two from the normal equation); {"test_accuracy",
             "train_accuracy"} for mnist.
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    # epochs, lr and batch size are for the iterative solver (the sgd batch size)
    add_common_args(parser, datasets=["diabetes", "mnist"], epochs=1000, batch_size=32, lr=0.1,
                    out="runs/01_Linear_Logistic/numpy_linear", devices=("cpu",), threads=1)
    parser.add_argument("--solver", choices=["gd", "sgd"], default="gd",
                        help="iterative solver compared with the normal equation (diabetes)")
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="ridge strength l2 in J, as at L2 and L3 (default: %(default)s)")
    # MNIST has pixels that are 0 in every training image: a small ridge term keeps
    # the 784x784 system well conditioned (lstsq alone would still give the min-norm fit).
    args = parse_args(parser, argv, {"diabetes": {"l2": 0.0}, "mnist": {"l2": 1e-3}})
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors():  # a missing or damaged file: one message saying where, no traceback
        data = load_arrays(args.dataset, data_root=args.data_root)
    print(f"{args.dataset}: X_train {data.X_train.shape}, X_test {data.X_test.shape}")

    with limit_blas_threads(args.threads or None):  # small products: 1 thread is fastest
        if args.dataset == "mnist":
            return _least_squares_classifier(args, data, out)
        return _normal_equation_and_descent(args, data, out)


def _least_squares_classifier(args, data, out) -> dict[str, float]:
    """MNIST: regress one-hot targets in closed form, predict the largest output."""
    # One-hot targets: row i of Y is e_{y_i}, so each of the K outputs is a
    # least-squares "is it class k?" score.
    classes = np.arange(data.num_classes)  # (10,)
    Y_train = (data.y_train[:, None] == classes).astype(data.X_train.dtype)  # (N, 10)
    model = LinearRegression(solver="normal", l2=args.l2, seed=args.seed)
    model.fit(data.X_train, Y_train)
    train_acc = float(np.mean(model.predict(data.X_train).argmax(1) == data.y_train))
    test_pred = model.predict(data.X_test).argmax(1)  # (N,) class with the largest score
    test_acc = float(np.mean(test_pred == data.y_test))
    plot_confusion_matrix(data.y_test, test_pred, path=out / "confusion.png",
                          title="least-squares classifier on MNIST (test)")
    print(f"normal equation: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}")
    print(f"plots in {out}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc}


def _normal_equation_and_descent(args, data, out) -> dict[str, float]:
    """diabetes: the normal equation and the iterative solver side by side."""

    def report(name: str, model: LinearRegression) -> tuple[float, float]:
        mse = float(np.mean((model.predict(data.X_test) - data.y_test) ** 2))
        r2 = model.score(data.X_test, data.y_test)
        print(f"{name:>16}: test R^2 {r2:.4f}, test MSE {mse:.4f}")
        return r2, mse

    closed = LinearRegression(solver="normal", l2=args.l2).fit(data.X_train, data.y_train)
    iterative = LinearRegression(solver=args.solver, lr=args.lr, epochs=args.epochs,
                                 batch_size=args.batch_size, l2=args.l2, seed=args.seed)
    iterative.fit(data.X_train, data.y_train, progress=args.progress)
    r2, mse = report("normal equation", closed)
    it_r2, it_mse = report(f"{args.solver} ({args.epochs} ep)", iterative)
    # The normal equation gives the optimum J*, so we can plot how far gradient descent
    # still is from it. On a log axis, gd's straight line is its linear convergence rate.
    optimum = closed.loss(data.X_train, data.y_train)
    plot_curves({f"{args.solver}: J - J*": np.array(iterative.history) - optimum},
                path=out / "loss.png", ylabel="J(W, b) - J*  (J* from the normal equation)",
                logy=True, title=f"linear regression on {args.dataset}: distance to the optimum")
    print(f"training objective: {args.solver} {iterative.history[-1]:.6f}, optimum {optimum:.6f}")
    print(f"plots in {out}")
    return {"test_r2": r2, "test_mse": mse, "iterative_test_r2": it_r2,
            "iterative_test_mse": it_mse}


if __name__ == "__main__":
    main()
