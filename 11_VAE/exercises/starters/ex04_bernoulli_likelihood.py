"""Exercise 04 (starter): the Bernoulli log-likelihood from logits, stable, and its gradient.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 11_VAE/exercises --solutions my_solutions -k ex04

The task, the maths and hints: ``11_VAE/exercises/04_bernoulli_likelihood.md``.
Use NumPy only; the helpers whose names start with ``_`` are given.

The VAE's Bernoulli decoder outputs one logit l per pixel; the pixel's probability of being on
is sigmoid(l). For x in [0, 1] (theory.md section 5)

    log p(x | l) = x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = x l - softplus(l),

because log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l). Summed over the
D pixels this is the reconstruction term of the ELBO. The form x l - softplus(l), with the
stable softplus(l) = max(l, 0) + log1p(exp(-|l|)), never takes the log of a probability that
rounded to 0, so logits of +-1000 give the right (large, finite) answer.
"""

from __future__ import annotations

import numpy as np


def _as_float_array(x, where: str) -> np.ndarray:
    """x as a float32 or float64 array (integers and booleans become float64) or ValueError."""
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{where} expects real numbers (float32 or float64); got dtype {x.dtype}")
    return x


def _check_inputs(x, logits, where: str):
    """x and logits as float arrays of one shape (..., D), x in [0, 1], or ValueError. Given."""
    x, logits = _as_float_array(x, where), _as_float_array(logits, where)
    if x.shape != logits.shape or x.ndim == 0:
        raise ValueError(f"{where} expects x and logits of one shape (..., D); got x {x.shape} "
                         f"and logits {logits.shape}")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(f"{where} expects pixel values x in [0, 1] (binarised or grey levels "
                         f"scaled to [0, 1]); got values in [{x.min()}, {x.max()}]")
    return x, logits


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z), elementwise, without overflow.

    Inputs:  z any shape, float.
    Returns: same shape and dtype, max(z, 0) + log1p(exp(-|z|)).
    """
    raise NotImplementedError("softplus: your code here")


def bernoulli_log_likelihood(x, logits) -> np.ndarray:
    """sum_d [x_d l_d - softplus(l_d)]: log p(x | logits) summed over the last axis.

    Inputs:  x (..., D) float in [0, 1]; logits (..., D) float, any real numbers.
    Returns: (...,) float, <= 0 for binary x.
    """
    raise NotImplementedError("bernoulli_log_likelihood: your code here")


def bernoulli_log_likelihood_backward(dll, x, logits) -> np.ndarray:
    """dL/dlogits given dll = dL/d(log-likelihood), one value per row.

    Inputs:  dll (...,) float; x, logits (..., D) as in bernoulli_log_likelihood.
    Returns: (..., D) float, dll * (x - sigmoid(logits)): d softplus(l)/dl = sigmoid(l).
    """
    raise NotImplementedError("bernoulli_log_likelihood_backward: your code here")
