"""Exercise 03 (starter): the importance-weighted bound (Burda et al. 2015), computed stably.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 11_VAE/exercises --solutions my_solutions -k ex03

The task, the maths and hints: ``11_VAE/exercises/03_importance_weighted_bound.md``.
Use NumPy only; the helpers whose names start with ``_`` are given.

With K samples z_k ~ q(z | x) and log-weights log w_k = log p(x, z_k) - log q(z_k | x),

    L_K(x) = log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K   <=   log p(x)

(theory.md section 6). K = 1 is the ELBO; L_K grows with K and tends to log p(x). The weights
of a trained model are tiny (log w ~ -100 nats for an MNIST image), so exp(log w) underflows to 0
and log(0) = -inf: shift by the largest log-weight before exponentiating.
"""

from __future__ import annotations

import numpy as np


def _as_float_array(x, where: str) -> np.ndarray:
    """x as a float32 or float64 array (integers become float64), or ValueError. Given."""
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{where} expects real numbers (float32 or float64); got dtype {x.dtype}")
    return x


def log_mean_exp(a, axis: int = 0) -> np.ndarray:
    """log((1/K) sum_k exp(a_k)) along ``axis`` (K = a.shape[axis]), with no overflow or underflow.

    Inputs:  a any shape with at least one axis, float (entries may be -inf);
             axis: the axis to reduce.
    Returns: a's shape without ``axis``: m + log(mean(exp(a - m))), m = max along axis
             (-inf where every entry is -inf).
    """
    raise NotImplementedError("log_mean_exp: your code here")


def importance_weighted_bound(log_p_xz, log_q_z) -> np.ndarray:
    """L_K = log (1/K) sum_k exp(log p(x, z_k) - log q(z_k | x)), one value per data point.

    Inputs:  log_p_xz, log_q_z (K, N) float: the log joint and the log proposal density at
             the K samples drawn for each of the N data points.
    Returns: (N,) float, the importance-weighted bound for each data point.
    """
    raise NotImplementedError("importance_weighted_bound: your code here")


def normalized_importance_weights(log_w) -> np.ndarray:
    """w_k / sum_j w_j along axis 0: the softmax of the log-weights.

    This is also dL_K/dlog w_k, the weight each sample's gradient gets in the IWAE update.
    Inputs:  log_w (K, N) float.
    Returns: (K, N) float, non-negative, every column sums to 1.
    """
    raise NotImplementedError("normalized_importance_weights: your code here")
