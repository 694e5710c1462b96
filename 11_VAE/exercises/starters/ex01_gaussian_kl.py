"""Exercise 01 (starter): the KL divergence between two diagonal Gaussians, and its gradient.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 11_VAE/exercises --solutions my_solutions -k ex01

The task, the maths and hints: ``11_VAE/exercises/01_gaussian_kl.md``.
Use NumPy only; the helpers whose names start with ``_`` are given.

For q = N(mu_q, diag(exp(logvar_q))) and p = N(mu_p, diag(exp(logvar_p))) over D dimensions
(theory.md section 3):

    KL(q || p) = 1/2 sum_d [ logvar_p - logvar_q
                             + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1 ]

With p = N(0, I) this is the VAE's KL term, 1/2 sum_d [mu^2 + exp(logvar) - 1 - logvar].
The network outputs log-variances (any real number) rather than variances (which must be
positive), so every formula here is written in logvar.
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


def _check_same_shape(where: str, **arrays) -> None:
    """ValueError unless every array has the same shape with at least one axis. Given."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) == 0 or any(s != first for s in shapes.values()):
        raise ValueError(f"{where} expects arrays of one shape (..., D); got {shapes}")


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> np.ndarray:
    """KL(q || p) between diagonal Gaussians, summed over the last axis.

    Inputs:  mu_q, logvar_q, mu_p, logvar_p, each (..., D) float: means and log-variances.
    Returns: (...,) float, KL >= 0, zero exactly when q = p.
    """
    raise NotImplementedError("gaussian_kl: your code here")


def gaussian_kl_backward(dkl, mu_q, logvar_q, mu_p, logvar_p):
    """Gradients of L with respect to the four inputs, given dkl = dL/dKL.

    Inputs:  dkl (...,) float: the upstream gradient, one per KL value;
             mu_q, logvar_q, mu_p, logvar_p (..., D) as in gaussian_kl.
    Returns: (dmu_q, dlogvar_q, dmu_p, dlogvar_p), each (..., D):
             dKL/dmu_q     =  (mu_q - mu_p) / var_p
             dKL/dlogvar_q =  (var_q / var_p - 1) / 2
             dKL/dmu_p     = -(mu_q - mu_p) / var_p
             dKL/dlogvar_p =  (1 - (var_q + (mu_q - mu_p)^2) / var_p) / 2
             each times dkl broadcast over D.
    """
    raise NotImplementedError("gaussian_kl_backward: your code here")


def standard_normal_kl(mu, logvar) -> np.ndarray:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the last axis: the VAE's KL term.

    Inputs:  mu, logvar (..., D) float.
    Returns: (...,) float, 1/2 sum_d (mu^2 + exp(logvar) - 1 - logvar).
    """
    raise NotImplementedError("standard_normal_kl: your code here")
