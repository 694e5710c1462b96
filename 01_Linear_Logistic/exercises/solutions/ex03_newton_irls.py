"""Exercise 03 (reference solution): Newton's method (IRLS) for regularised logistic regression.

Parameters theta = [w; b] (D+1,), the design matrix with a column of ones
A = [X, 1] (N, D+1), logits z = A theta, p = sigmoid(z), labels y in {0, 1}:

    J(theta) = 1/N sum_i [softplus(z_i) - y_i z_i] + (l2/2) ||w||^2
    g = dJ/dtheta   = A^T (p - y) / N + l2 [w; 0]                      (D+1,)
    H = d2J/dtheta2 = A^T diag(p (1 - p)) A / N + l2 diag(1, ..., 1, 0)  (D+1, D+1)

Newton's step minimises the second-order Taylor model of J around theta:

    theta <- theta - H^-1 g.

Written out, it is a weighted least-squares solve with weights s = p (1 - p) that
change every iteration: iteratively reweighted least squares (IRLS). Near the
minimum the error is squared at every step (quadratic convergence), so a handful of
steps reach machine precision, where gradient descent needs thousands.

The task text is in ``01_Linear_Logistic/exercises/03_newton_irls.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check_inputs(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Return X (N, D) float64 and y (N,) float64 of 0/1 labels, or raise ValueError."""
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

    Both branches only ever exponentiate -|z| <= 0, so e^(...) is in (0, 1].

    Inputs:  z - array of any shape.
    Returns: float64 array of z's shape, values in [0, 1].
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(under="ignore"):  # e^-1000 underflows to 0.0, the right limit
        e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logistic_loss_grad_hess(X, y, w, b: float,
                            l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """J, its gradient and its Hessian with respect to theta = [w; b].

    J is computed from the logits with the stable softplus(z) = max(z, 0) + log1p(e^-|z|),
    never as -log(sigmoid(z)), which would be log(0) once sigmoid rounds to 0.

    Inputs:  X (N, D); y (N,) 0/1 labels; w (D,); b float; l2 >= 0.
    Returns: (J Python float, g (D+1,) float64, H (D+1, D+1) float64); the last entry /
             row / column belongs to b.
    """
    X, y = _check_inputs(X, y)
    n, d = X.shape
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (d,):
        raise ValueError(f"w must have shape ({d},), one weight per column of X; got {w.shape}")
    A = np.hstack([X, np.ones((n, 1))])  # (N, D+1)
    theta = np.append(w, b)  # (D+1,)
    z = A @ theta  # (N,) logits
    with np.errstate(under="ignore"):
        softplus = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))  # log(1 + e^z)
    loss = np.mean(softplus - y * z) + 0.5 * l2 * w @ w
    p = sigmoid(z)  # (N,)
    penalty = np.full(d + 1, float(l2))
    penalty[-1] = 0.0  # the bias is not penalised
    grad = A.T @ (p - y) / n + penalty * theta  # A^T (p - y) / N + l2 [w; 0]
    s = p * (1.0 - p)  # (N,) sigma'(z) = sigma(z) (1 - sigma(z))
    hess = (A.T * s) @ A / n + np.diag(penalty)  # A^T diag(s) A / N + l2 diag(1..1, 0)
    return float(loss), grad, hess


def newton_logistic(X, y, l2: float,
                    n_iter: int = 20) -> tuple[np.ndarray, float, np.ndarray]:
    """Minimise J by n_iter plain Newton steps from w = 0, b = 0.

    Each step solves H step = g (``np.linalg.solve``; never form H^-1) and sets
    theta <- theta - step.

    Inputs:  X (N, D); y (N,) 0/1 labels; l2 >= 0 (with l2 = 0 the data must not be
             linearly separable, or the minimum is at infinity and H becomes singular);
             n_iter >= 1.
    Returns: (w (D,) float64, b Python float, grad_norms (n_iter + 1,) float64) where
             grad_norms[k] = ||g|| (Euclidean norm over [w; b]) after k steps.
    """
    X, y = _check_inputs(X, y)
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    if not (isinstance(n_iter, (int, np.integer)) and n_iter >= 1):
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    d = X.shape[1]
    theta = np.zeros(d + 1)
    grad_norms = np.empty(n_iter + 1)
    for k in range(n_iter + 1):
        _, g, H = logistic_loss_grad_hess(X, y, theta[:d], theta[d], l2)
        grad_norms[k] = np.linalg.norm(g)
        if k == n_iter:
            break
        theta = theta - np.linalg.solve(H, g)  # the Newton step: minimum of the quadratic model
    return theta[:d], float(theta[d]), grad_norms
