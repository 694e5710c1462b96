"""Exercise 01 (starter): ridge in closed form, lasso by coordinate descent.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 01_Linear_Logistic/exercises --solutions my_solutions

The task, the maths and hints are in ``01_Linear_Logistic/exercises/01_regularization.md``.
Use NumPy only. Both models fit y_hat = X w + b and penalise w, never b:

    ridge:  J(w, b) = 1/(2N) ||X w + b - y||^2 + (l2/2) ||w||_2^2
    lasso:  J(w, b) = 1/(2N) ||X w + b - y||^2 +  l1    ||w||_1
"""

from __future__ import annotations

import numpy as np


def _check_inputs(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Return X (N, D) and y (N,) as float64 arrays, or raise ValueError saying what was expected.

    Given to you: call it first in both solvers.
    """
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

    Steps: centre X and y; solve (Xc^T Xc + N l2 I) w = Xc^T yc with ``np.linalg.solve``
    when l2 > 0; when l2 == 0 return the minimum-norm least-squares solution
    ``np.linalg.lstsq(Xc, yc, rcond=None)[0]``; then b = mean(y) - mean(X) w.
    Raise ValueError for l2 < 0 (and for bad X, y: see ``_check_inputs``).

    Inputs:  X (N, D) float; y (N,) float; l2 >= 0.
    Returns: (w (D,) float64, b Python float).
    """
    raise NotImplementedError("ridge_closed_form: write the closed form (see 01_regularization.md)")


def soft_threshold(a, t: float) -> np.ndarray:
    """The soft-thresholding function S(a, t) = sign(a) * max(|a| - t, 0), elementwise.

    Raise ValueError for t < 0.

    Inputs:  a - array of any shape (or a scalar); t >= 0.
    Returns: float64 array of a's shape.
    """
    raise NotImplementedError("soft_threshold: one line of NumPy (see 01_regularization.md)")


def lasso_coordinate_descent(X, y, l1: float, n_iter: int = 1000) -> tuple[np.ndarray, float]:
    """Minimise 1/(2N) ||X w + b - y||^2 + l1 ||w||_1 by cyclic coordinate descent.

    On centred data, sweep j = 0..D-1, n_iter times (or until a sweep changes nothing):

        rho_j = Xc[:, j]^T (yc - Xc w + Xc[:, j] w_j) / N
        w_j   = soft_threshold(rho_j, l1) / (||Xc[:, j]||^2 / N)     (0 for a constant column)

    then b = mean(y) - mean(X) w. Raise ValueError for l1 < 0 or n_iter < 1.

    Inputs:  X (N, D); y (N,); l1 >= 0; n_iter - the most sweeps over all D coordinates.
    Returns: (w (D,) float64 with exact zeros, b Python float).
    """
    raise NotImplementedError("lasso_coordinate_descent: write the coordinate updates "
                              "(see 01_regularization.md)")
