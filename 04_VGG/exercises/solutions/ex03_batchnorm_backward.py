"""Exercise 03 (reference solution): batch normalisation, forward and backward, in NumPy.

Per channel c, over the m = N H W values x_i of a batch (theory.md section 6):

    mu = 1/m sum_i x_i,   var = 1/m sum_i (x_i - mu)^2,   x_hat_i = (x_i - mu) / sqrt(var + eps)
    y_i = gamma x_hat_i + beta

Backward, with g_i = dL/dy_i:

    dL/dbeta  = sum_i g_i,    dL/dgamma = sum_i g_i x_hat_i
    dL/dx_i   = gamma / sqrt(var + eps) * ( g_i - mean_j g_j - x_hat_i mean_j (g_j x_hat_j) )

(the two subtracted means are the gradient flowing through mu and through var).

The task text is in ``04_VGG/exercises/03_batchnorm_backward.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check(x, gamma, beta):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {x.shape}")
    c = x.shape[1]
    gamma, beta = np.asarray(gamma, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if gamma.shape != (c,) or beta.shape != (c,):
        raise ValueError(f"gamma and beta must have shape ({c},), got {gamma.shape}, {beta.shape}")
    if x.shape[0] * x.shape[2] * x.shape[3] < 2:
        raise ValueError("batch norm in training needs more than one value per channel")
    return x, gamma, beta


def batchnorm_forward(x, gamma, beta, eps: float = 1e-5) -> tuple[np.ndarray, dict]:
    """Training-mode batch norm of x (N, C, H, W); gamma, beta (C,).

    Returns: (y (N, C, H, W) float64, cache for the backward pass)
    """
    x, gamma, beta = _check(x, gamma, beta)
    mu = x.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)  # biased
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    y = gamma[None, :, None, None] * x_hat + beta[None, :, None, None]
    return y, {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}


def batchnorm_backward(dy, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx (N, C, H, W), dgamma (C,), dbeta (C,)) of L given dy = dL/dy."""
    dy = np.asarray(dy, dtype=np.float64)
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    if dy.shape != x_hat.shape:
        raise ValueError(f"dy must have the shape of y, {x_hat.shape}; got {dy.shape}")
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = (dy * x_hat).sum(axis=(0, 2, 3))
    mean_g = dy.mean(axis=(0, 2, 3), keepdims=True)
    mean_gx = (dy * x_hat).mean(axis=(0, 2, 3), keepdims=True)
    dx = gamma[None, :, None, None] * inv_std * (dy - mean_g - x_hat * mean_gx)
    return dx, dgamma, dbeta


def update_running_stats(running_mean, running_var, x, momentum: float = 0.1
                         ) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's running estimates after one training batch x (N, C, H, W):

        running_mean' = (1 - momentum) running_mean + momentum mu
        running_var'  = (1 - momentum) running_var  + momentum var_unbiased,
        var_unbiased  = m / (m - 1) var,  m = N H W

    Returns: new (running_mean (C,), running_var (C,)) arrays
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {x.shape}")
    m = x.shape[0] * x.shape[2] * x.shape[3]
    if m < 2:
        raise ValueError("need more than one value per channel")
    mu = x.mean(axis=(0, 2, 3))
    var_unbiased = x.var(axis=(0, 2, 3)) * m / (m - 1)
    return ((1 - momentum) * np.asarray(running_mean) + momentum * mu,
            (1 - momentum) * np.asarray(running_var) + momentum * var_unbiased)
