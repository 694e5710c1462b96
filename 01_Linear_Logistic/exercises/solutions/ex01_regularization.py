"""Exercise 01 (reference solution): ridge in closed form, lasso by coordinate descent.

Both fit y_hat = X w + b to N examples with D features and penalise w, never b:

    ridge:  J(w, b) = 1/(2N) ||X w + b - y||^2 + (l2/2) ||w||_2^2
    lasso:  J(w, b) = 1/(2N) ||X w + b - y||^2 +  l1    ||w||_1

The unpenalised bias is removed first, the same way for both: dJ/db = 0 gives
b = mean(y) - mean(X) w, and substituting it back leaves the same problem on the
centred data Xc = X - mean(X), yc = y - mean(y) with no bias at all.

Ridge has a closed form (the normal equation with N l2 added to the diagonal).
Lasso does not: |w_j| has no derivative at 0. But in one coordinate at a time it
is a 1-D problem whose answer is the soft-thresholding function, and cycling over
the coordinates converges to the minimum because J is convex and the
non-smooth part is a sum of one-coordinate terms (Tseng 2001).

The task text is in ``01_Linear_Logistic/exercises/01_regularization.md``.
NumPy only, like the lesson's L1 code.
"""

from __future__ import annotations

import numpy as np


def _check_inputs(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Return X (N, D) and y (N,) as float64 arrays, or raise ValueError saying what is wrong."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (N, D); got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must be a 1-D array with one target per row of X, shape "
                         f"({X.shape[0]},); got shape {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must not contain NaN or inf")
    return X, y


def ridge_closed_form(X, y, l2: float) -> tuple[np.ndarray, float]:
    """Minimise 1/(2N) ||X w + b - y||^2 + (l2/2) ||w||^2 exactly.

    Setting the gradient to zero on centred data (Xc, yc) gives

        (Xc^T Xc + N l2 I) w = Xc^T yc,        b = mean(y) - mean(X) w.

    With l2 > 0 the matrix is positive definite: one solution, ``np.linalg.solve``.
    With l2 = 0 it is singular for collinear or constant columns; then return the
    minimum-norm least-squares solution, ``np.linalg.lstsq(Xc, yc)``.
    scikit-learn's ``Ridge(alpha=N * l2)`` minimises the same function times 2N.

    Inputs:  X (N, D) float; y (N,) float; l2 >= 0.
    Returns: (w (D,) float64, b Python float).
    """
    X, y = _check_inputs(X, y)
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    n, d = X.shape
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean  # (N, D), (N,): the bias is gone
    if l2 > 0:
        # (Xc^T Xc + N l2 I) w = Xc^T yc : the N comes from the 1/N in front of the data term
        w = np.linalg.solve(Xc.T @ Xc + n * l2 * np.eye(d), Xc.T @ yc)
    else:
        w = np.linalg.lstsq(Xc, yc, rcond=None)[0]  # minimum-norm solution, via the SVD
    b = y_mean - x_mean @ w  # b = mean(y) - mean(X) w
    return w, float(b)


def soft_threshold(a, t: float) -> np.ndarray:
    """The soft-thresholding function S(a, t) = sign(a) * max(|a| - t, 0), elementwise.

    It is the minimiser of 1/2 (w - a)^2 + t |w| over w: move a towards 0 by t,
    and stop at 0 if that would cross it.

    Inputs:  a - array of any shape (or a scalar); t >= 0.
    Returns: float64 array of a's shape.
    """
    if not t >= 0:
        raise ValueError(f"the threshold t must be >= 0, got {t!r}")
    a = np.asarray(a, dtype=np.float64)
    return np.sign(a) * np.maximum(np.abs(a) - t, 0.0)


def lasso_coordinate_descent(X, y, l1: float, n_iter: int = 1000) -> tuple[np.ndarray, float]:
    """Minimise 1/(2N) ||X w + b - y||^2 + l1 ||w||_1 by cyclic coordinate descent.

    On centred data, with every other coordinate fixed and the partial residual
    r_j = yc - Xc w + Xc[:, j] w_j (the residual without feature j's contribution),
    coordinate j solves a 1-D problem:

        min_wj 1/(2N) ||r_j - Xc[:, j] w_j||^2 + l1 |w_j|
        =>  w_j = S(Xc[:, j]^T r_j / N, l1) / (||Xc[:, j]||^2 / N)

    A constant column (||Xc[:, j]|| = 0) cannot explain anything: w_j = 0.
    scikit-learn's ``Lasso(alpha=l1)`` minimises exactly this J.

    Inputs:  X (N, D); y (N,); l1 >= 0; n_iter - the most sweeps over all D coordinates
             (stops earlier once a sweep changes no weight by more than 1e-13).
    Returns: (w (D,) float64, b Python float).
    """
    X, y = _check_inputs(X, y)
    if not l1 >= 0:
        raise ValueError(f"l1 must be >= 0, got {l1!r}")
    if not (isinstance(n_iter, (int, np.integer)) and n_iter >= 1):
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    n, d = X.shape
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    col_sq = np.sum(Xc**2, axis=0) / n  # (D,) ||Xc_j||^2 / N, the curvature of each 1-D problem
    w = np.zeros(d)
    residual = yc.copy()  # yc - Xc w, kept up to date so each update costs O(N), not O(N D)
    for _ in range(n_iter):
        largest_change = 0.0
        for j in range(d):
            if col_sq[j] == 0.0:
                continue  # constant feature: w_j stays 0
            rho = Xc[:, j] @ residual / n + col_sq[j] * w[j]  # Xc_j^T r_j / N
            new_wj = float(soft_threshold(rho, l1)) / col_sq[j]
            if new_wj != w[j]:
                residual -= Xc[:, j] * (new_wj - w[j])  # keep residual = yc - Xc w
                largest_change = max(largest_change, abs(new_wj - w[j]))
                w[j] = new_wj
        if largest_change <= 1e-13:
            break  # a whole sweep moved nothing: we are at the minimum up to rounding
    b = y_mean - x_mean @ w
    return w, float(b)
