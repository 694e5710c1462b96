"""Exercise 02 (reference solution): batch normalisation, its backward pass, its statistics.

Training mode, per feature (column) of x (N, C), Ioffe and Szegedy (2015, Algorithm 1):

    mu = mean_n x_n      var = mean_n (x_n - mu)^2  (biased)      s = sqrt(var + eps)
    x_hat = (x - mu) / s                                            y = gamma x_hat + beta

Backward (theory.md 7.2), with dbeta = sum_n dy_n and dgamma = sum_n dy_n x_hat_n:

    dx = gamma / (N s) * (N dy - dbeta - x_hat dgamma)              (compact form)

Running statistics (PyTorch's convention, momentum m = weight of the new batch):

    running_mean <- (1 - m) running_mean + m mu
    running_var  <- (1 - m) running_var  + m var * N / (N - 1)       (unbiased)

The task text is in ``02_MLP/exercises/02_batchnorm_backward.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check_batch(x, gamma, beta, names: str = "gamma and beta"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (N, C) float with N >= 2, gamma and beta (C,); float64 unless x is float32."""
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
    x, gamma, beta = _check_batch(x, gamma, beta)
    mean = x.mean(axis=0)  # (C,)
    centred = x - mean  # (N, C)
    var = np.mean(centred * centred, axis=0)  # (C,) biased: divide by N
    inv_std = 1.0 / np.sqrt(var + eps)  # (C,) 1 / s
    x_hat = centred * inv_std  # (N, C)
    cache = {"x_hat": x_hat, "centred": centred, "var": var, "inv_std": inv_std,
             "gamma": gamma, "eps": eps}
    return gamma * x_hat + beta, cache


def batchnorm_backward_staged(dy, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass node by node through the graph x -> mu -> var -> x_hat -> y.

    Inputs:  dy (N, C); cache from ``batchnorm_forward``.
    Returns: (dx (N, C), dgamma (C,), dbeta (C,)).
    """
    x_hat, centred, var = cache["x_hat"], cache["centred"], cache["var"]
    inv_std, gamma, eps = cache["inv_std"], cache["gamma"], cache["eps"]
    dy = np.asarray(dy, dtype=x_hat.dtype)
    n = dy.shape[0]
    dbeta = dy.sum(axis=0)  # y = gamma x_hat + beta: beta is added to every row
    dgamma = np.sum(dy * x_hat, axis=0)
    dx_hat = dy * gamma  # (N, C)
    # x_hat = centred * (var + eps)^(-1/2): the variance node
    dvar = np.sum(dx_hat * centred, axis=0) * -0.5 * (var + eps) ** -1.5  # (C,)
    # the mean node feeds centred directly and var (whose share is 0: sum of centred = 0)
    dmean = -np.sum(dx_hat, axis=0) * inv_std + dvar * np.mean(-2.0 * centred, axis=0)
    # x feeds x_hat directly, var (through 2 (x - mu) / N) and mu (through 1 / N)
    dx = dx_hat * inv_std + dvar * 2.0 * centred / n + dmean / n
    return dx, dgamma, dbeta


def batchnorm_backward(dy, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass in the compact form dx = gamma / (N s) (N dy - dbeta - x_hat dgamma).

    Inputs:  dy (N, C); cache from ``batchnorm_forward``.
    Returns: (dx (N, C), dgamma (C,), dbeta (C,)).
    """
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    dy = np.asarray(dy, dtype=x_hat.dtype)
    if dy.shape != x_hat.shape:
        raise ValueError(f"dy must have the forward output's shape {x_hat.shape}; got {dy.shape}")
    n = dy.shape[0]
    dbeta = dy.sum(axis=0)  # (C,)
    dgamma = np.sum(dy * x_hat, axis=0)  # (C,)
    dx = (gamma * inv_std / n) * (n * dy - dbeta - x_hat * dgamma)  # (N, C)
    return dx, dgamma, dbeta


def update_running_stats(running_mean, running_var, x,
                         momentum: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One training step's update of the running statistics, PyTorch's rule.

    Inputs:  running_mean, running_var (C,); x (N, C) the batch, N >= 2; momentum in [0, 1],
             the weight of the new batch.
    Returns: (new running_mean (C,), new running_var (C,)), new arrays (inputs untouched).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1] (the weight of the new batch), got "
                         f"{momentum!r}")
    x, running_mean, running_var = _check_batch(x, running_mean, running_var,
                                                "running_mean and running_var")
    n = x.shape[0]
    mean = x.mean(axis=0)
    unbiased_var = np.sum((x - mean) ** 2, axis=0) / (n - 1)  # divide by N - 1, not N
    return ((1 - momentum) * running_mean + momentum * mean,
            (1 - momentum) * running_var + momentum * unbiased_var)


def batchnorm_eval(x, gamma, beta, running_mean, running_var, eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation in evaluation mode: an elementwise affine map.

    Inputs:  x (N, C) (any N >= 1); gamma, beta, running_mean, running_var (C,); eps.
    Returns: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta, (N, C).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != np.shape(gamma)[0]:
        raise ValueError(f"x must have shape (N, {np.shape(gamma)[0]}); got {x.shape}")
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta


def fold_batchnorm_into_linear(W, b, gamma, beta, running_mean, running_var,
                               eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Merge Linear (y = x W + b, W (in, out)) followed by eval-mode batch norm into one Linear.

        scale = gamma / sqrt(running_var + eps)          (out,)
        W' = W * scale (each column j times scale_j)     b' = (b - running_mean) * scale + beta

    Inputs:  W (in, out); b, gamma, beta, running_mean, running_var (out,); eps.
    Returns: (W' (in, out), b' (out,)) with x W' + b' = batchnorm_eval(x W + b, ...).
    """
    W = np.asarray(W)
    if W.ndim != 2 or np.shape(b) != (W.shape[1],) or np.shape(gamma) != (W.shape[1],):
        raise ValueError(f"W must be (in, out) and b, gamma, ... (out,); got W {W.shape}, "
                         f"b {np.shape(b)}, gamma {np.shape(gamma)}")
    scale = gamma / np.sqrt(running_var + eps)  # (out,)
    return W * scale, (b - running_mean) * scale + beta
