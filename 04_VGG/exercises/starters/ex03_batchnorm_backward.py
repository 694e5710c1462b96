"""Exercise 03 (starter): batch normalisation, forward and backward, in NumPy.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 04_VGG/exercises --solutions my_solutions -k ex03

The helpers whose names start with ``_`` and the constants are given: use them.
The task, the maths and hints are in ``04_VGG/exercises/03_batchnorm_backward.md``. NumPy only.

Per channel c, over the m = N H W values x_i of a batch (theory.md section 6):

    mu = 1/m sum_i x_i,   var = 1/m sum_i (x_i - mu)^2,   x_hat_i = (x_i - mu) / sqrt(var + eps)
    y_i = gamma x_hat_i + beta

Backward, with g_i = dL/dy_i:

    dL/dbeta  = sum_i g_i,    dL/dgamma = sum_i g_i x_hat_i
    dL/dx_i   = ?   (derive it: x_i reaches the loss directly, through mu and through var)
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
    raise NotImplementedError("batchnorm_forward: mean and biased variance over (0, 2, 3); "
                              "cache what the backward pass needs")


def batchnorm_backward(dy, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx (N, C, H, W), dgamma (C,), dbeta (C,)) of L given dy = dL/dy."""
    raise NotImplementedError("batchnorm_backward: "
                              "sum the three paths from x_i to the loss (see the task text)")


def update_running_stats(running_mean, running_var, x, momentum: float = 0.1
                         ) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's running estimates after one training batch x (N, C, H, W):

        running_mean' = (1 - momentum) running_mean + momentum mu
        running_var'  = (1 - momentum) running_var  + momentum var_unbiased,
        var_unbiased  = m / (m - 1) var,  m = N H W

    Returns: new (running_mean (C,), running_var (C,)) arrays
    """
    raise NotImplementedError("update_running_stats: "
                              "the unbiased variance uses m / (m - 1), m = N H W")
