"""Exercise 03 (starter): Newton's method (IRLS) for regularised logistic regression.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 01_Linear_Logistic/exercises --solutions my_solutions

The task, the maths and hints are in ``01_Linear_Logistic/exercises/03_newton_irls.md``.
Use NumPy only. Parameters theta = [w; b] (D+1,), A = [X, 1] (N, D+1), z = A theta:

    J(theta) = 1/N sum_i [softplus(z_i) - y_i z_i] + (l2/2) ||w||^2
"""

from __future__ import annotations

import numpy as np


def _check_inputs(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Return X (N, D) float64 and y (N,) float64 of 0/1 labels, or raise ValueError.

    Given to you: call it first.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (N, D); got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), one label per row of X; "
                         f"got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must not contain NaN or inf")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"y must hold binary labels 0 and 1; got values {np.unique(y)[:5]}")
    return X, y.astype(np.float64)


def sigmoid(z) -> np.ndarray:
    """1 / (1 + e^-z) without overflow: 1/(1 + e^-z) for z >= 0, e^z/(1 + e^z) for z < 0.

    Compute e = exp(-|z|) once (it is in (0, 1]) and use ``np.where`` to pick the branch.

    Inputs:  z - array of any shape.
    Returns: float64 array of z's shape, values in [0, 1].
    """
    raise NotImplementedError("sigmoid: the two-branch form (see 03_newton_irls.md)")


def logistic_loss_grad_hess(X, y, w, b: float,
                            l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """J, its gradient and its Hessian with respect to theta = [w; b].

        J = mean(softplus(z) - y z) + (l2/2) ||w||^2,  softplus(z) = max(z, 0) + log1p(e^-|z|)
        g = A^T (p - y) / N + l2 [w; 0]
        H = A^T diag(p (1 - p)) A / N + l2 diag(1, ..., 1, 0)

    Raise ValueError when w does not have shape (D,).

    Inputs:  X (N, D); y (N,) 0/1 labels; w (D,); b float; l2 >= 0.
    Returns: (J Python float, g (D+1,) float64, H (D+1, D+1) float64); the last entry /
             row / column belongs to b.
    """
    raise NotImplementedError("logistic_loss_grad_hess: see 03_newton_irls.md for the formulas")


def newton_logistic(X, y, l2: float,
                    n_iter: int = 20) -> tuple[np.ndarray, float, np.ndarray]:
    """Minimise J by n_iter plain Newton steps from w = 0, b = 0.

    Each step: solve H step = g with ``np.linalg.solve`` and set theta <- theta - step.
    Raise ValueError for l2 < 0 or n_iter < 1.

    Inputs:  X (N, D); y (N,) 0/1 labels; l2 >= 0; n_iter >= 1.
    Returns: (w (D,) float64, b Python float, grad_norms (n_iter + 1,) float64) where
             grad_norms[k] = ||g|| (Euclidean norm over [w; b]) after k steps.
    """
    raise NotImplementedError("newton_logistic: the Newton loop (see 03_newton_irls.md)")
