"""Linear regression in NumPy (L1 of lesson 01): least squares fitted by the normal equation
and by gradient descent, with the backward pass written by hand.

Least squares: Legendre (1805), Gauss (1809); the ridge penalty: Hoerl & Kennard (1970)::

    Y_hat = X W + b        J(W, b) = 1/(2N) sum_i ||Y_hat_i - Y_i||^2 + (l2/2) ||W||_F^2

The gradients, the normal equation and its minimum-norm solution are derived in
``../theory.md`` (sections 1 and 2; the notes that used to open this file are in its
appendix). ``train_linear.py`` beside this file runs it on diabetes or MNIST.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

SOLVERS = ("normal", "gd", "sgd")
DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None


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


class LinearParameters:
    """W (D, K) and b (K,) of a linear model, kept in ``params`` (the L1 layer protocol) and
    read and set as attributes; shared by this file's model and logistic_numpy.py's."""

    def _init_params(self, input_dim: int, output_dim: int, dtype) -> None:
        """Draw W ~ N(0, 1/D) of shape (D, K) and set b = 0 of shape (K,)."""
        W = self.rng.standard_normal((input_dim, output_dim)) / np.sqrt(input_dim)
        self.params = {"W": W.astype(dtype), "b": np.zeros(output_dim, dtype=dtype)}

    @property
    def W(self) -> np.ndarray:
        """Weights (D, K): the same array as ``params["W"]``."""
        return self.params["W"]

    @W.setter
    def W(self, value) -> None:
        self.params["W"] = np.asarray(value)

    @property
    def b(self) -> np.ndarray:
        """Bias (K,): the same array as ``params["b"]``."""
        return self.params["b"]

    @b.setter
    def b(self, value) -> None:
        self.params["b"] = np.asarray(value)


class LinearRegression(LinearParameters):
    """Least-squares linear regression, Y_hat = X W + b, with optional ridge penalty.

    Minimises J(W, b) = 1/(2N) sum_i ||X_i W + b - Y_i||^2 + (l2/2) ||W||_F^2 (theory.md
    1.1). Follows the L1 layer protocol too: ``forward`` caches X, ``backward``
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
        check_settings(SOLVERS, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                       l2=l2, input_dim=input_dim, output_dim=output_dim)
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
        X = self.cache_X
        self.grads["W"] = X.T @ dY_hat  # dL/dW = X^T dY_hat     (D, N) @ (N, K) -> (D, K)
        self.grads["b"] = dY_hat.sum(axis=0)  # dL/db = sum_i dY_hat_i            (K,)
        return dY_hat @ self.W.T  # dL/dX = dY_hat W^T    (N, K) @ (K, D) -> (N, D)

    # -- the objective ----------------------------------------------------------

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validate (X, y) and return X (N, D) and Y (N, K) in X's float dtype."""
        X = check_features(X)
        return X, check_targets(y, X.shape[0], X.dtype)

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
        X = check_features(X)
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
# Checks at the door: the constructor, fit, predict, score, loss and gradients call these
# once; the maths above (forward, backward, the solvers) trusts its inputs.
# ---------------------------------------------------------------------------

# An estimator's settings: name -> (test, what is expected). The estimators of every level
# of this lesson check their settings with these (logistic_numpy, the L2 and L3 files).
SETTINGS = {
    "lr": (lambda v: v > 0 and np.isfinite(v), "a positive number"),
    "epochs": (lambda v: isinstance(v, (int, np.integer)) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: v is None or (isinstance(v, (int, np.integer)) and v >= 1),
                   "a positive integer or None"),
    "input_dim": (lambda v: v is None or (isinstance(v, (int, np.integer)) and v >= 1),
                  "a positive integer or None"),
    "l2": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    "tol": (lambda v: v >= 0, ">= 0 (0: run every epoch)"),
    "n_classes": (lambda v: v is None or (isinstance(v, (int, np.integer)) and v >= 2),
                  "an integer >= 2 or None"),
}
SETTINGS["output_dim"] = SETTINGS["input_dim"]


def check_settings(solvers: tuple[str, ...] = (), **settings) -> None:
    """Raise ValueError naming the first setting outside its range (``solver``: in solvers)."""
    solver = settings.pop("solver", solvers[0] if solvers else None)
    if solver not in solvers and solvers:
        raise ValueError(f"unknown solver {solver!r}: solver must be one of {solvers}")
    for name, value in settings.items():
        test, expected = SETTINGS[name]
        if not test(value):
            raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_features(X, hint: str = "reshape a single feature with x[:, None]") -> np.ndarray:
    """X as a float (N, D) array, one row per example, N >= 1, finite; else a ValueError.

    float32 and float64 are kept; integers, booleans and float16 become float64.
    """
    X = np.asarray(X)
    X = X.astype(np.float64) if X.dtype.kind in "biu" or X.dtype == np.float16 else X
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X must be a 2-D array of shape (N, D), one row per example, N >= 1; "
                         f"got shape {X.shape} ({hint})")
    if X.dtype not in (np.float32, np.float64):
        raise ValueError(f"X must hold real numbers (float32, float64 or integers); got {X.dtype}")
    if not np.all(np.isfinite(X)):
        rows = np.unique(np.nonzero(~np.isfinite(X))[0])[:5].tolist()
        raise ValueError(f"X contains NaN or inf in rows {rows}: clean or impute them first")
    return X


def check_targets(y, n_rows: int, dtype) -> np.ndarray:
    """Regression targets y (N,) or (N, K) of finite real numbers as (N, K) in ``dtype``."""
    y = np.asarray(y)
    if y.ndim not in (1, 2) or y.shape[0] != n_rows:
        raise ValueError(f"y must have one row per example of X: expected shape ({n_rows},) "
                         f"or ({n_rows}, K), got {y.shape}")
    if y.dtype.kind not in "biuf" or not np.all(np.isfinite(y)):
        raise ValueError(f"y must hold real numbers without NaN or inf; got dtype {y.dtype}")
    return y.reshape(n_rows, -1).astype(dtype, copy=False)  # (N,) -> (N, 1)
