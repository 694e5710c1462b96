"""Exercise 01 (solution): the KL divergence between two diagonal Gaussians, and its gradient.

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
    mu_q, logvar_q = _as_float_array(mu_q, "gaussian_kl"), _as_float_array(logvar_q, "gaussian_kl")
    mu_p, logvar_p = _as_float_array(mu_p, "gaussian_kl"), _as_float_array(logvar_p, "gaussian_kl")
    _check_same_shape("gaussian_kl", mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    # exp(logvar_q - logvar_p) = var_q / var_p, computed without forming either variance
    var_ratio = np.exp(logvar_q - logvar_p)
    mean_term = (mu_q - mu_p) ** 2 * np.exp(-logvar_p)
    return 0.5 * np.sum(logvar_p - logvar_q + var_ratio + mean_term - 1.0, axis=-1)


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
    mu_q, logvar_q = _as_float_array(mu_q, "gaussian_kl_backward"), _as_float_array(
        logvar_q, "gaussian_kl_backward")
    mu_p, logvar_p = _as_float_array(mu_p, "gaussian_kl_backward"), _as_float_array(
        logvar_p, "gaussian_kl_backward")
    _check_same_shape("gaussian_kl_backward", mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p,
                      logvar_p=logvar_p)
    dkl = _as_float_array(dkl, "gaussian_kl_backward")
    if dkl.shape != mu_q.shape[:-1]:
        raise ValueError(f"gaussian_kl_backward expects dkl of shape {mu_q.shape[:-1]} (one per "
                         f"KL value); got {dkl.shape}")
    g = dkl[..., None]  # broadcast over the D axis
    inv_var_p = np.exp(-logvar_p)
    var_ratio = np.exp(logvar_q - logvar_p)
    diff_over_var = (mu_q - mu_p) * inv_var_p
    dmu_q = g * diff_over_var
    dlogvar_q = g * 0.5 * (var_ratio - 1.0)
    dmu_p = -dmu_q
    dlogvar_p = g * 0.5 * (1.0 - var_ratio - (mu_q - mu_p) * diff_over_var)
    return dmu_q, dlogvar_q, dmu_p, dlogvar_p


def standard_normal_kl(mu, logvar) -> np.ndarray:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the last axis: the VAE's KL term.

    Inputs:  mu, logvar (..., D) float.
    Returns: (...,) float, 1/2 sum_d (mu^2 + exp(logvar) - 1 - logvar).
    """
    mu, logvar = _as_float_array(mu, "standard_normal_kl"), _as_float_array(
        logvar, "standard_normal_kl")
    _check_same_shape("standard_normal_kl", mu=mu, logvar=logvar)
    return 0.5 * np.sum(mu * mu + np.exp(logvar) - 1.0 - logvar, axis=-1)
