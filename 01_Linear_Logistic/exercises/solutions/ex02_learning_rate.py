"""Exercise 02 (reference solution): the largest stable learning rate of gradient descent.

Linear regression with a bias, parameters theta = [w; b] (D+1,), and the lesson's
objective

    J(theta) = 1/(2N) ||A theta - y||^2 + (l2/2) ||w||^2,     A = [X, 1]  (N, D+1)

is a quadratic: J(theta) = J(theta*) + 1/2 (theta - theta*)^T H (theta - theta*) with
the constant Hessian

    H = A^T A / N + l2 diag(1, ..., 1, 0)                          (D+1, D+1).

A gradient step theta <- theta - lr H (theta - theta*) multiplies the error by
(I - lr H). In the eigenbasis of H (eigenvalues lambda_i >= 0) that is a factor
(1 - lr lambda_i) per direction, so the error shrinks in every direction iff
|1 - lr lambda_i| < 1 for all i, i.e.

    0 < lr < 2 / lambda_max(H).

The slowest direction shrinks by 1 - lr lambda_min; the ratio
kappa = lambda_max / lambda_min (the condition number) is how many times slower it
is than the fastest one at the best fixed lr, which is why standardising features helps.

The task text is in ``01_Linear_Logistic/exercises/02_learning_rate.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check_X(X) -> np.ndarray:
    """Return X as a float64 (N, D) array, or raise ValueError saying what was expected."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a 2-D array (N, D) with N >= 1; got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must not contain NaN or inf")
    return X


def linear_regression_hessian(X, l2: float = 0.0) -> np.ndarray:
    """Hessian of J with respect to theta = [w; b]: H = A^T A / N + l2 diag(1, ..., 1, 0).

    Inputs:  X (N, D) float; l2 >= 0 (penalises w, not the bias).
    Returns: H (D+1, D+1) float64, symmetric positive semi-definite; the last row and
             column belong to the bias.
    """
    X = _check_X(X)
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])  # (N, D+1): the bias is the weight of a constant feature
    penalty = np.full(d + 1, float(l2))
    penalty[-1] = 0.0  # the bias is not penalised
    return A.T @ A / n + np.diag(penalty)


def max_stable_lr(X, l2: float = 0.0) -> float:
    """The step size at which full-batch gradient descent on J stops converging: 2 / lambda_max(H).

    Inputs:  X (N, D); l2 >= 0.
    Returns: Python float; gradient descent converges for every 0 < lr < this value and
             diverges (for a generic start) for any larger lr.
    """
    H = linear_regression_hessian(X, l2)
    lambda_max = np.linalg.eigvalsh(H)[-1]  # eigvalsh: symmetric matrix, ascending eigenvalues
    return float(2.0 / lambda_max)


def condition_number(X, l2: float = 0.0) -> float:
    """kappa(H) = lambda_max(H) / lambda_min(H); inf when H is singular.

    Gradient descent at the best fixed step needs a number of steps proportional to
    kappa to shrink the error by a constant factor.

    Inputs:  X (N, D); l2 >= 0.
    Returns: Python float >= 1 (or inf).
    """
    eigenvalues = np.linalg.eigvalsh(linear_regression_hessian(X, l2))
    lambda_min, lambda_max = eigenvalues[0], eigenvalues[-1]
    # rounding can leave a tiny (even negative) lambda_min for a singular H
    if lambda_min <= 1e-12 * lambda_max:
        return float("inf")
    return float(lambda_max / lambda_min)


def gradient_descent(X, y, lr: float, n_steps: int,
                     l2: float = 0.0) -> tuple[np.ndarray, float, np.ndarray]:
    """Full-batch gradient descent on J from w = 0, b = 0.

    Each step:  r = X w + b - y;   w <- w - lr (X^T r / N + l2 w);   b <- b - lr mean(r).

    Inputs:  X (N, D); y (N,); lr > 0; n_steps >= 0; l2 >= 0.
    Returns: (w (D,) float64, b Python float, losses (n_steps + 1,) float64), where
             losses[k] = J after k steps (losses[0] = J(0, 0) = mean(y^2) / 2). A
             diverging run is not stopped: its losses grow (possibly to inf).
    """
    X = _check_X(X)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), one target per row of X; "
                         f"got {y.shape}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not (isinstance(n_steps, (int, np.integer)) and n_steps >= 0):
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    n, d = X.shape
    w, b = np.zeros(d), 0.0
    losses = np.empty(n_steps + 1)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run may overflow: allowed
        for k in range(n_steps + 1):
            r = X @ w + b - y  # (N,) residuals
            losses[k] = 0.5 * r @ r / n + 0.5 * l2 * w @ w  # J(w, b)
            if k == n_steps:
                break
            grad_w = X.T @ r / n + l2 * w  # (D,)  dJ/dw
            grad_b = r.mean()  # dJ/db
            w, b = w - lr * grad_w, b - lr * grad_b
    return w, float(b), losses
