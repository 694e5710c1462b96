"""Linear regression from scratch in NumPy: the normal equation and gradient descent.

What this file teaches
----------------------
The oldest model in machine learning, fitted two ways:

1. in closed form, by solving the *normal equation* of least squares
   (Legendre 1805, "Nouvelles methodes pour la determination des orbites des
   cometes"; Gauss 1809, "Theoria motus corporum coelestium"), and
2. iteratively, by gradient descent, with a forward pass, a loss and a
   hand-written backward pass: the same loop every later lesson uses, here on
   a model small enough to check every number.

The model and the objective
---------------------------
For N examples with D features, X (N, D), and K targets per example, Y (N, K)::

    Y_hat = X W + b                                   W (D, K), b (K,)

    J(W, b) = 1/(2N) * sum_i ||Y_hat_i - Y_i||^2  +  (l2 / 2) * ||W||_F^2

The factor 1/2 makes the gradient clean; the ridge penalty (l2 / 2)||W||^2 (Hoerl
& Kennard 1970) shrinks the weights and never the bias. When ``y`` is 1-D, K = 1
and ``predict`` returns a 1-D array again. The gradients, by the chain rule::

    dJ/dY_hat = (Y_hat - Y) / N                                   (N, K)
    dJ/dW     = X^T dJ/dY_hat + l2 W                              (D, K)
    dJ/db     = sum_i dJ/dY_hat_i   = mean_i (Y_hat_i - Y_i)      (K,)

Setting them to zero gives the closed form. dJ/db = 0 gives b = mean(Y) - mean(X) W;
putting that back centres the data, Xc = X - mean(X), Yc = Y - mean(Y), and
dJ/dW = 0 becomes the normal equation::

    (Xc^T Xc + N l2 I) W = Xc^T Yc

With l2 > 0 the matrix is positive definite and ``np.linalg.solve`` finds the one
solution. With l2 = 0 it is singular whenever features are collinear (a duplicated
column, a constant column, more features than examples); then infinitely many W fit
equally well and we return the one of smallest norm, ``np.linalg.lstsq(Xc, Yc)``,
computed from the SVD without ever forming Xc^T Xc (whose condition number is the
square of Xc's). This is what scikit-learn's ``LinearRegression`` returns too, and
``Ridge(alpha)`` minimises ||Y - X W - b||^2 + alpha ||W||^2, so alpha = N * l2.

Reading order: the loss, the model (forward, backward, fit), then ``main``.
Run ``python 01_Linear_Logistic/numpy/linear_numpy.py`` from the repository root.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_arrays
from utils.visualization import plot_confusion_matrix, plot_curves

SOLVERS = ("normal", "gd", "sgd")
DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None


# ---------------------------------------------------------------------------
# Checking inputs: a wrong shape should fail here with a clear message, not as a
# broadcasting surprise deep inside a matrix product.
# ---------------------------------------------------------------------------


def _as_float_matrix(X, name: str = "X") -> np.ndarray:
    """Return X as a float array of shape (N, D), or raise ValueError saying what was expected.

    Inputs:  X - array-like (N, D) of real numbers; float32 and float64 are kept,
                 integers and booleans become float64.
    Returns: (N, D) float32 or float64 ndarray.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D), one row per example; "
                         f"got shape {X.shape} (reshape a single feature with x[:, None])")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows: expected shape (N, D) with N >= 1")
    if X.dtype.kind in "biu" or X.dtype == np.float16:
        X = X.astype(np.float64)
    elif X.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must hold real numbers (float32, float64 or integers); "
                         f"got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        rows = np.unique(np.nonzero(~np.isfinite(X))[0])
        raise ValueError(f"{name} contains NaN or inf in rows {rows[:5].tolist()}"
                         f"{' ...' if rows.size > 5 else ''}: clean or impute them first")
    return X


def _as_float_targets(y, n_rows: int, dtype) -> np.ndarray:
    """Return regression targets as (N, K) of ``dtype``; a 1-D y becomes (N, 1).

    Inputs:  y - (N,) or (N, K) real numbers; n_rows - N, the number of rows of X.
    Returns: (N, K) ndarray of ``dtype``.
    """
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must have shape (N,) or (N, K); got shape {y.shape}")
    if y.shape[0] != n_rows:
        raise ValueError(f"y must have one row per example of X: expected shape ({n_rows},) "
                         f"or ({n_rows}, K), got {y.shape}")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y must hold real numbers; got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf: clean or drop those examples first")
    return y.reshape(n_rows, -1).astype(dtype, copy=False)  # (N,) -> (N, 1)


# ---------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------


def mse_loss(y_hat: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Half mean squared error over the batch, and its gradient.

        L = 1/(2N) * sum_i ||y_hat_i - y_i||^2          dL/dy_hat = (y_hat - y) / N

    Note the convention: the sum runs over the K outputs and the mean over the N
    examples, and there is a factor 1/2. PyTorch's ``F.mse_loss`` averages over all
    N*K elements and has no 1/2, so L = 0.5 * K * F.mse_loss(y_hat, y).

    Inputs:  y_hat - (N,) or (N, K) predictions; y - targets of the same shape.
    Returns: (loss as a Python float, dL/dy_hat with y_hat's shape and dtype).
    """
    y_hat, y = np.asarray(y_hat), np.asarray(y)
    if y_hat.shape != y.shape or y_hat.ndim not in (1, 2):
        raise ValueError(f"mse_loss expects y_hat and y of the same shape (N,) or (N, K); "
                         f"got y_hat {y_hat.shape} and y {y.shape}")
    n = y_hat.shape[0]
    residual = y_hat - y  # (N, K): how far each prediction is off
    loss = 0.5 * np.sum(residual**2) / n  # 1/(2N) sum ||r_i||^2
    dy_hat = residual / n  # dL/dy_hat = r / N
    return float(loss), dy_hat


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


class LinearRegression:
    """Least-squares linear regression, Y_hat = X W + b, with optional ridge penalty.

    Minimises J(W, b) = 1/(2N) sum_i ||X_i W + b - Y_i||^2 + (l2/2) ||W||_F^2 (module
    docstring). Follows the L1 layer protocol too: ``forward`` caches X, ``backward``
    fills ``grads``, ``params`` holds the arrays, so the shared gradient checkers apply.

    Inputs (constructor):
        input_dim  - D; when given, W (D, K) and b (K,) exist right away. Optional: fit
                     creates them from the data otherwise.
        output_dim - K; None means one target and 1-D predictions.
        solver     - "normal" (closed form, exact), "gd" (full-batch gradient descent)
                     or "sgd" (mini-batch gradient descent, reshuffled every epoch).
        lr         - step size of gd / sgd (> 0); epochs - passes over the data.
        batch_size - sgd mini-batch size (default 32); gd always uses the full batch.
        l2         - ridge strength (>= 0); the bias is not penalised.
        seed       - seeds the initial weights and the sgd shuffling.

    Initialisation: W ~ N(0, 1/D) (variance 1/D keeps X W of order 1 for standardised
    features), b = 0, drawn from ``np.random.default_rng(seed)``. The objective is convex,
    so the start only changes how long gradient descent takes, not where it ends.
    ``fit`` continues from the current W, b when they exist with the right shapes (set
    them by hand to start elsewhere); the normal equation ignores them.

    Attributes: W (D, K), b (K,), params {"W", "b"} (the same arrays), grads {"W", "b"},
    history (J on the training set after every epoch; empty for "normal").
    """

    def __init__(self, input_dim: int | None = None, output_dim: int | None = None, *,
                 solver: str = "normal", lr: float = 0.1, epochs: int = 100,
                 batch_size: int | None = None, l2: float = 0.0, seed: int = 0):
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}: expected one of {SOLVERS}")
        if not lr > 0:
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not (isinstance(epochs, (int, np.integer)) and epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if batch_size is not None and not (isinstance(batch_size, (int, np.integer))
                                           and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2!r}")
        self.solver, self.lr, self.epochs = solver, float(lr), int(epochs)
        self.batch_size, self.l2 = batch_size, float(l2)
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.history: list[float] = []
        self.single_target = output_dim is None  # 1-D y in, 1-D predictions out
        if input_dim is not None:
            self._init_params(int(input_dim), int(output_dim or 1), np.float64)

    # -- parameters ---------------------------------------------------------

    def _init_params(self, input_dim: int, output_dim: int, dtype) -> None:
        """Draw W ~ N(0, 1/D) of shape (D, K) and set b = 0 of shape (K,)."""
        if input_dim < 1 or output_dim < 1:
            raise ValueError(f"input_dim and output_dim must be >= 1, got {input_dim}, "
                             f"{output_dim}")
        W = self.rng.standard_normal((input_dim, output_dim)) / np.sqrt(input_dim)
        self.params = {"W": W.astype(dtype), "b": np.zeros(output_dim, dtype=dtype)}

    @property
    def W(self) -> np.ndarray:
        """Weights (D, K): the same array as ``params["W"]``."""
        if "W" not in self.params:
            raise AttributeError("W does not exist yet: call fit(X, y) first, or pass input_dim")
        return self.params["W"]

    @W.setter
    def W(self, value) -> None:
        self.params["W"] = np.asarray(value)

    @property
    def b(self) -> np.ndarray:
        """Bias (K,): the same array as ``params["b"]``."""
        if "b" not in self.params:
            raise AttributeError("b does not exist yet: call fit(X, y) first, or pass input_dim")
        return self.params["b"]

    @b.setter
    def b(self, value) -> None:
        self.params["b"] = np.asarray(value)

    def _check_ready(self, X: np.ndarray) -> None:
        """Raise ValueError unless the model has parameters that fit X's feature count."""
        if "W" not in self.params:
            raise ValueError("this LinearRegression has no parameters yet: call fit(X, y) "
                             "first (or pass input_dim to the constructor)")
        if X.shape[1] != self.W.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features but the model expects "
                             f"{self.W.shape[0]}: X must have shape (N, {self.W.shape[0]})")

    # -- the layer protocol: forward and backward -----------------------------

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Affine map, caching X for backward.

        Inputs:  X (N, D).
        Returns: Y_hat = X W + b, shape (N, K), always 2-D (``predict`` flattens K = 1).
        """
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"forward expects X of shape (N, D); got shape {X.shape}")
        self._check_ready(X)
        self.cache_X = X
        return X @ self.W + self.b  # (N, D) @ (D, K) + (K,) -> (N, K)

    def backward(self, dY_hat: np.ndarray) -> np.ndarray:
        """Backpropagate dL/dY_hat through Y_hat = X W + b.

        Fills ``grads`` with the gradient of L only; the ridge term l2 W is the
        objective's business and is added in ``gradients`` (a layer does not know
        which penalty its loss has).

        Inputs:  dY_hat (N, K) - dL/dY_hat for the X cached by the last forward.
        Returns: dL/dX (N, D).
        """
        X = getattr(self, "cache_X", None)
        if X is None:
            raise ValueError("backward needs the input of a forward pass: call forward(X) first")
        dY_hat = np.asarray(dY_hat)
        if dY_hat.shape != (X.shape[0], self.W.shape[1]):
            raise ValueError(f"dY_hat must have the forward output's shape "
                             f"{(X.shape[0], self.W.shape[1])}; got {dY_hat.shape}")
        self.grads["W"] = X.T @ dY_hat  # dL/dW = X^T dY_hat     (D, N) @ (N, K) -> (D, K)
        self.grads["b"] = dY_hat.sum(axis=0)  # dL/db = sum_i dY_hat_i            (K,)
        return dY_hat @ self.W.T  # dL/dX = dY_hat W^T    (N, K) @ (K, D) -> (N, D)

    # -- the objective ----------------------------------------------------------

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validate (X, y) and return X (N, D) and Y (N, K) in X's float dtype."""
        X = _as_float_matrix(X)
        return X, _as_float_targets(y, X.shape[0], X.dtype)

    def _objective(self, X: np.ndarray, Y: np.ndarray) -> float:
        """J(W, b) on prepared arrays: half MSE plus (l2/2) ||W||^2."""
        data_loss, _ = mse_loss(self.forward(X), Y)
        return data_loss + 0.5 * self.l2 * float(np.sum(self.W**2))

    def loss(self, X, y) -> float:
        """The training objective J(W, b) on (X, y), ridge penalty included.

        Inputs:  X (N, D); y (N,) or (N, K).
        Returns: J as a Python float.
        """
        X, Y = self._prepare(X, y)
        self._check_ready(X)
        return self._objective(X, Y)

    def gradients(self, X, y) -> dict[str, np.ndarray]:
        """dJ/dW and dJ/db of the full objective on (X, y): forward, loss, backward, + l2 W.

        Inputs:  X (N, D); y (N,) or (N, K).
        Returns: {"W": (D, K), "b": (K,)}.
        """
        X, Y = self._prepare(X, y)
        self._check_ready(X)
        return self._gradients(X, Y)

    def _gradients(self, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
        _, dY_hat = mse_loss(self.forward(X), Y)  # dL/dY_hat = (Y_hat - Y) / N
        self.backward(dY_hat)
        return {"W": self.grads["W"] + self.l2 * self.W,  # d/dW (l2/2)||W||^2 = l2 W
                "b": self.grads["b"]}

    # -- fitting ------------------------------------------------------------------

    def fit(self, X, y, *, progress: bool = False) -> LinearRegression:
        """Fit W and b to (X, y) with the chosen solver.

        Inputs:  X (N, D) real numbers; y (N,) or (N, K) targets; progress - show a
                 tqdm bar over epochs (iterative solvers).
        Returns: self, fitted; W and b have X's float dtype.
        """
        X, Y = self._prepare(X, y)
        n, d = X.shape
        k = Y.shape[1]
        self.single_target = np.ndim(y) == 1  # 1-D y in, 1-D predictions out
        if "W" in self.params and self.W.shape != (d, k):
            raise ValueError(f"the model was built for X (N, {self.W.shape[0]}) and y with "
                             f"{self.W.shape[1]} column(s); got X {X.shape} and y {np.shape(y)}")
        if "W" not in self.params:
            self._init_params(d, k, X.dtype)
        self.W, self.b = self.W.astype(X.dtype), self.b.astype(X.dtype)  # follow X's dtype
        self.history = []

        if self.solver == "normal":
            self._fit_normal_equation(X, Y)
        else:
            batch_size = n if self.solver == "gd" else (self.batch_size or DEFAULT_SGD_BATCH_SIZE)
            self._fit_gradient_descent(X, Y, batch_size, progress)
        return self

    def _fit_normal_equation(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Closed form: centre, then solve (Xc^T Xc + N l2 I) W = Xc^T Yc; b = y_mean - x_mean W."""
        n, d = X.shape
        x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)  # (D,), (K,)
        Xc, Yc = X - x_mean, Y - y_mean  # centring removes the bias from the problem
        if self.l2 == 0:
            # Minimum-norm least squares via the SVD: well defined even when Xc^T Xc is
            # singular (collinear or constant features), and never squares the condition number.
            W, *_ = np.linalg.lstsq(Xc, Yc, rcond=None)  # (D, K)
        else:
            A = Xc.T @ Xc + n * self.l2 * np.eye(d, dtype=X.dtype)  # (D, D), positive definite
            W = np.linalg.solve(A, Xc.T @ Yc)  # (D, K)
        self.W = W.astype(X.dtype)
        self.b = (y_mean - x_mean @ W).astype(X.dtype)  # b = mean(Y) - mean(X) W

    def _fit_gradient_descent(self, X: np.ndarray, Y: np.ndarray, batch_size: int,
                              progress: bool) -> None:
        """(Mini-batch) gradient descent: W <- W - lr dJ/dW, b <- b - lr dJ/db.

        Each epoch visits every example once, in a fresh random order for sgd. A
        mini-batch's gradient is an unbiased estimate of the full gradient (the mean
        over a random subset), which is why many cheap noisy steps work.
        """
        n = X.shape[0]
        for _ in tqdm(range(self.epochs), desc=f"linear {self.solver}", disable=not progress):
            order = self.rng.permutation(n) if batch_size < n else np.arange(n)
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                grads = self._gradients(X[batch], Y[batch])
                self.W -= self.lr * grads["W"]  # in place: params["W"] is the same array
                self.b -= self.lr * grads["b"]
            self.history.append(self._objective(X, Y))

    # -- using the fitted model ------------------------------------------------------

    def predict(self, X) -> np.ndarray:
        """Predictions Y_hat = X W + b.

        Inputs:  X (N, D).
        Returns: (N,) when the model has one target (y was 1-D), else (N, K); X's float dtype.
        """
        X = _as_float_matrix(X)
        self._check_ready(X)
        Y_hat = (X @ self.W + self.b).astype(X.dtype, copy=False)  # (N, K)
        return Y_hat[:, 0] if self.single_target else Y_hat

    def score(self, X, y) -> float:
        """Coefficient of determination R^2 = 1 - SS_res / SS_tot, averaged over outputs.

        SS_res = sum_i (y_i - y_hat_i)^2, SS_tot = sum_i (y_i - mean(y))^2. R^2 = 1 is a
        perfect fit, 0 is no better than predicting the mean. A constant target has
        SS_tot = 0; it scores 1 if predicted exactly and 0 otherwise (as scikit-learn).

        Inputs:  X (N, D); y (N,) or (N, K).
        Returns: R^2 as a Python float.
        """
        X, Y = self._prepare(X, y)
        Y_hat = self.predict(X).reshape(Y.shape)
        ss_res = np.sum((Y - Y_hat) ** 2, axis=0, dtype=np.float64)  # (K,)
        ss_tot = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0, dtype=np.float64)  # (K,)
        safe_tot = np.where(ss_tot > 0, ss_tot, 1.0)
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / safe_tot, np.where(ss_res == 0, 1.0, 0.0))
        return float(np.mean(r2))


# ---------------------------------------------------------------------------
# The script
# ---------------------------------------------------------------------------


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
                    out="runs/01_Linear_Logistic/numpy_linear", devices=("cpu",))
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

    if args.dataset == "mnist":
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
