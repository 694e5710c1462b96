"""Exercise 02 (starter): the largest stable learning rate of gradient descent.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 01_Linear_Logistic/exercises --solutions my_solutions

The task, the maths and hints are in ``01_Linear_Logistic/exercises/02_learning_rate.md``.
Use NumPy only. Parameters theta = [w; b] (D+1,), A = [X, 1] (N, D+1), and

    J(theta) = 1/(2N) ||A theta - y||^2 + (l2/2) ||w||^2.
"""

from __future__ import annotations

import numpy as np


def _check_X(X) -> np.ndarray:
    """Return X as a float64 (N, D) array, or raise ValueError saying what was expected.

    Given to you: call it first.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a 2-D array (N, D) with N >= 1; got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must not contain NaN or inf")
    return X


def linear_regression_hessian(X, l2: float = 0.0) -> np.ndarray:
    """Hessian of J with respect to theta = [w; b]: H = A^T A / N + l2 diag(1, ..., 1, 0).

    Raise ValueError for l2 < 0.

    Inputs:  X (N, D) float; l2 >= 0 (penalises w, not the bias).
    Returns: H (D+1, D+1) float64, symmetric positive semi-definite; the last row and
             column belong to the bias.
    """
    raise NotImplementedError("linear_regression_hessian: build A = [X, 1] first "
                              "(see 02_learning_rate.md)")


def max_stable_lr(X, l2: float = 0.0) -> float:
    """The step size at which full-batch gradient descent on J stops converging: 2 / lambda_max(H).

    Hint: ``np.linalg.eigvalsh`` (symmetric matrices, eigenvalues in ascending order).

    Inputs:  X (N, D); l2 >= 0.
    Returns: Python float.
    """
    raise NotImplementedError("max_stable_lr: 2 / the largest eigenvalue of H "
                              "(see 02_learning_rate.md)")


def condition_number(X, l2: float = 0.0) -> float:
    """kappa(H) = lambda_max(H) / lambda_min(H); ``float("inf")`` when H is singular.

    Rounding leaves a singular H with a tiny (even negative) lambda_min: treat
    lambda_min <= 1e-12 * lambda_max as zero.

    Inputs:  X (N, D); l2 >= 0.
    Returns: Python float >= 1 (or inf).
    """
    raise NotImplementedError("condition_number: the ratio of H's extreme eigenvalues "
                              "(see 02_learning_rate.md)")


def gradient_descent(X, y, lr: float, n_steps: int,
                     l2: float = 0.0) -> tuple[np.ndarray, float, np.ndarray]:
    """Full-batch gradient descent on J from w = 0, b = 0.

    Each step:  r = X w + b - y;   w <- w - lr (X^T r / N + l2 w);   b <- b - lr mean(r).
    Do not stop a diverging run; silence its overflow with ``np.errstate``.
    Raise ValueError for lr <= 0, n_steps < 0, or y not of shape (N,).

    Inputs:  X (N, D); y (N,); lr > 0; n_steps >= 0; l2 >= 0.
    Returns: (w (D,) float64, b Python float, losses (n_steps + 1,) float64), where
             losses[k] = J after k steps (losses[0] = J(0, 0) = mean(y^2) / 2).
    """
    raise NotImplementedError("gradient_descent: the loop of the lesson, written out "
                              "(see 02_learning_rate.md)")
