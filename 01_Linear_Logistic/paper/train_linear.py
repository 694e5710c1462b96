"""Fit L3 linear regression: the normal equations and torch.optim.SGD through the shared loop
on diabetes, or a least-squares classifier on one-hot MNIST targets.

The model is ``linear_paper.py`` beside this file; the derivations are in ``../theory.md``.
Run from the repository root::

    python 01_Linear_Logistic/paper/train_linear.py                        # diabetes
    python -m 01_Linear_Logistic.paper.train_linear --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_confusion_matrix, plot_curves

_linear = import_lesson("01_Linear_Logistic.paper.linear_paper")
LinearRegression, LinearRegressionModel = _linear.LinearRegression, _linear.LinearRegressionModel
HalfSquaredError, train = _linear.HalfSquaredError, _linear.train


def _run_diabetes(args, split, device, out) -> dict[str, float]:
    """Normal equations and SGD (torch.optim + the shared loop) on diabetes."""
    exact = LinearRegression(solver="normal", l2=args.l2, device=device)
    exact.fit(split.X_train, split.y_train)

    # The L3 recipe, written out: module, loss module, loaders, optimiser, shared loop.
    X = torch.as_tensor(split.X_train)
    Y = torch.as_tensor(split.y_train)[:, None]  # (N, 1)
    model = LinearRegressionModel(X.shape[1], 1).double()
    model.reset_parameters(generator=torch.Generator().manual_seed(args.seed))
    history = train(model, X, Y, loss_fn=HalfSquaredError(), lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, l2=args.l2, momentum=args.momentum,
                    seed=args.seed, device=device, progress=args.progress,
                    val=(split.X_test, split.y_test[:, None]),
                    log=print if args.progress else None)
    iterative = LinearRegression(device=device)  # the estimator API around the trained module
    iterative.model = model

    y_test = torch.as_tensor(split.y_test)
    results = {}
    for name, estimator in (("normal equation", exact), ("sgd", iterative)):
        mse = float(((estimator.predict(split.X_test).cpu() - y_test) ** 2).mean())
        r2 = estimator.score(split.X_test, split.y_test)
        results[name] = (r2, mse)
        print(f"{name:>16}: test R^2 = {r2:.4f}   test MSE = {mse:.1f}")
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss,
                 "normal equation, train loss": [exact.loss(split.X_train, split.y_train)]
                 * len(history.train_loss)},
                path=out / "loss.png", ylabel="half squared error", logy=True,
                title="L3 linear regression on diabetes")
    print(f"plots written to {out}")
    r2, mse = results["normal equation"]
    return {"test_r2": r2, "test_mse": mse, "sgd_test_r2": results["sgd"][0]}


def _run_mnist(args, split, device, out) -> dict[str, float]:
    """Least-squares classifier on one-hot targets; predict the argmax."""
    k = split.num_classes
    X_train = torch.as_tensor(split.X_train)  # (60000, 784) float32
    Y_train = torch.eye(k, dtype=X_train.dtype)[torch.as_tensor(split.y_train)]  # (N, 10)
    estimator = LinearRegression(solver="normal", l2=args.l2, device=device).fit(X_train, Y_train)
    predicted = estimator.predict(split.X_test).argmax(dim=1).cpu().numpy()
    test_accuracy = float((predicted == split.y_test).mean())
    train_accuracy = float(
        (estimator.predict(X_train).argmax(dim=1).cpu().numpy() == split.y_train).mean())
    print(f"least squares on one-hot targets (l2={args.l2}): train accuracy {train_accuracy:.4f}"
          f", test accuracy {test_accuracy:.4f}")
    plot_confusion_matrix(split.y_test, predicted, path=out / "confusion.png",
                          title="L3 least-squares classifier on MNIST (test)")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Least squares on diabetes (default) or a least-squares classifier on MNIST.

    Returns: {"test_r2", "test_mse", "sgd_test_r2"} for diabetes, or
             {"test_accuracy", "train_accuracy"} for mnist.
    """
    parser = argparse.ArgumentParser(
        description="Linear regression as an nn.Module: normal equations and torch.optim.SGD.")
    add_common_args(parser, datasets=("diabetes", "mnist"), epochs=50, batch_size=32, lr=0.05,
                    out="runs/01_Linear_Logistic/l3_linear", threads=1)
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="ridge strength l2 in J (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=0.0,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    # On MNIST many border pixels are always 0; a little ridge keeps the solve well posed.
    args = parse_args(parser, argv, {"diabetes": {"l2": 0.0}, "mnist": {"l2": 1e-3}})

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_arrays(args.dataset, data_root=args.data_root)
    print(split.summary())
    with torch_threads(args.threads):  # small matrices: 1 thread is fastest (0: torch's)
        if args.dataset == "diabetes":
            return _run_diabetes(args, split, device, out)
        return _run_mnist(args, split, device, out)


if __name__ == "__main__":
    main()
