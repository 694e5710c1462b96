"""Exercise 02 (starter): batch normalisation, its backward pass, its statistics.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 02_MLP/exercises --solutions my_solutions -k ex02

The task, the maths and hints are in ``02_MLP/exercises/02_batchnorm_backward.md``.
Use NumPy only. Training mode, per feature (column) of x (N, C):

    mu = mean_n x_n      var = mean_n (x_n - mu)^2  (biased)      s = sqrt(var + eps)
    x_hat = (x - mu) / s                                            y = gamma x_hat + beta

Backward, with dbeta = sum_n dy_n and dgamma = sum_n dy_n x_hat_n:

    dx = gamma / (N s) * (N dy - dbeta - x_hat dgamma)              (compact form)
"""

from __future__ import annotations

import numpy as np


def _check_batch(x, gamma, beta, names: str = "gamma and beta"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (N, C) float with N >= 2, gamma and beta (C,); float64 unless x is float32.

    Given to you: call it first in ``batchnorm_forward`` (and, with
    ``names="running_mean and running_var"``, in ``update_running_stats``).
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D batch (N, C), one row per example; got shape {x.shape}")
    n, c = x.shape
    if n < 2:
        raise ValueError(f"batch norm in training mode needs N >= 2 examples to estimate a "
                         f"variance; got N = {n}")
    gamma, beta = np.asarray(gamma, dtype=x.dtype), np.asarray(beta, dtype=x.dtype)
    if gamma.shape != (c,) or beta.shape != (c,):
        raise ValueError(f"{names} must have shape ({c},), one entry per feature; got "
                         f"{gamma.shape} and {beta.shape}")
    return x, gamma, beta


def batchnorm_forward(x, gamma, beta, eps: float = 1e-5) -> tuple[np.ndarray, dict]:
    """Batch normalisation in training mode (batch statistics).

    Inputs:  x (N, C) float, N >= 2; gamma, beta (C,); eps > 0.
    Returns: (y (N, C), cache) where cache is a dict holding what the backward
             functions need (its content is yours to choose).
    """
    raise NotImplementedError("batchnorm_forward: use the BIASED variance "
                              "(see 02_batchnorm_backward.md)")


def batchnorm_backward_staged(dy, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass node by node through the graph x -> mu -> var -> x_hat -> y.

    Inputs:  dy (N, C); cache from ``batchnorm_forward``.
    Returns: (dx (N, C), dgamma (C,), dbeta (C,)).
    """
    raise NotImplementedError("batchnorm_backward_staged: dx_hat, then dvar, then dmean, then dx "
                              "(see 02_batchnorm_backward.md)")


def batchnorm_backward(dy, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass in the compact form dx = gamma / (N s) (N dy - dbeta - x_hat dgamma).

    Inputs:  dy (N, C); cache from ``batchnorm_forward``.
    Returns: (dx (N, C), dgamma (C,), dbeta (C,)).
    """
    raise NotImplementedError("batchnorm_backward: the compact form "
                              "(see 02_batchnorm_backward.md)")


def update_running_stats(running_mean, running_var, x,
                         momentum: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One training step's update of the running statistics, PyTorch's rule.

    Inputs:  running_mean, running_var (C,); x (N, C) the batch, N >= 2; momentum in [0, 1],
             the weight of the new batch.
    Returns: (new running_mean (C,), new running_var (C,)), new arrays (inputs untouched).
    """
    raise NotImplementedError("update_running_stats: the running variance uses the UNBIASED "
                              "batch variance (see 02_batchnorm_backward.md)")


def batchnorm_eval(x, gamma, beta, running_mean, running_var, eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation in evaluation mode: an elementwise affine map.

    Inputs:  x (N, C) (any N >= 1); gamma, beta, running_mean, running_var (C,); eps.
    Returns: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta, (N, C).
    """
    raise NotImplementedError("batchnorm_eval")


def fold_batchnorm_into_linear(W, b, gamma, beta, running_mean, running_var,
                               eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Merge Linear (y = x W + b, W (in, out)) followed by eval-mode batch norm into one Linear.

    Inputs:  W (in, out); b, gamma, beta, running_mean, running_var (out,); eps.
    Returns: (W' (in, out), b' (out,)) with x W' + b' = batchnorm_eval(x W + b, ...).
    """
    raise NotImplementedError("fold_batchnorm_into_linear (see 02_batchnorm_backward.md)")
