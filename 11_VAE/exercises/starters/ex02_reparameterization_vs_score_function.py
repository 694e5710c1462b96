"""Exercise 02 (starter): two unbiased gradient estimators of E_q[f(z)], and their variance.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 11_VAE/exercises --solutions my_solutions -k ex02

The task, the maths and hints: ``11_VAE/exercises/02_reparameterization_vs_score_function.md``.
Use NumPy only; the helpers whose names start with ``_`` are given.

q(z) = N(mu, sigma^2) independently in every dimension, sigma = exp(log_sigma), and the
objective J(mu, log_sigma) = E_{z ~ q}[ sum_d f(z_d) ] for an elementwise f (theory.md section 4).
Given S standard-normal draws eps (S, D), so that z = mu + sigma * eps, each row of the
returned arrays is one single-sample estimate of (dJ/dmu, dJ/dlog_sigma):

  reparameterisation (pathwise):   dJ/dmu ~ f'(z),   dJ/dlog_sigma ~ f'(z) sigma eps
  score function (REINFORCE):      dJ/dmu ~ (f(z) - b) eps / sigma,
                                   dJ/dlog_sigma ~ (f(z) - b) (eps^2 - 1)

The score function uses d log q(z)/dmu = (z - mu)/sigma^2 = eps/sigma and
d log q(z)/dlog_sigma = (z - mu)^2/sigma^2 - 1 = eps^2 - 1; both have mean zero under q, which is
why subtracting a constant baseline b leaves the estimator unbiased.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _check_inputs(mu, log_sigma, eps, where: str):
    """mu, log_sigma (D,) and eps (S, D) as float64 arrays, or ValueError. Given."""
    mu = np.asarray(mu, dtype=np.float64)
    log_sigma = np.asarray(log_sigma, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)
    if mu.ndim != 1 or log_sigma.shape != mu.shape:
        raise ValueError(f"{where} expects mu and log_sigma of one shape (D,); got "
                         f"{mu.shape} and {log_sigma.shape}")
    if eps.ndim != 2 or eps.shape[1] != mu.shape[0]:
        raise ValueError(f"{where} expects eps of shape (S, D) = (S, {mu.shape[0]}); "
                         f"got {eps.shape}")
    return mu, log_sigma, eps


def reparameterized_gradient(mu, log_sigma, eps, df_dz: Callable[[np.ndarray], np.ndarray]):
    """Per-sample pathwise estimates of (dJ/dmu, dJ/dlog_sigma).

    Inputs:  mu, log_sigma (D,) float; eps (S, D) float, standard-normal noise;
             df_dz: elementwise derivative f', maps (S, D) -> (S, D).
    Returns: (grad_mu, grad_log_sigma), each (S, D) float64: row s is the estimate from eps[s].
    """
    raise NotImplementedError("reparameterized_gradient: your code here")


def score_function_gradient(mu, log_sigma, eps, f: Callable[[np.ndarray], np.ndarray],
                            baseline: float = 0.0):
    """Per-sample score-function (REINFORCE) estimates of (dJ/dmu, dJ/dlog_sigma).

    Inputs:  mu, log_sigma (D,) float; eps (S, D) float, standard-normal noise;
             f: elementwise function, maps (S, D) -> (S, D) (only its values are used);
             baseline: a constant b subtracted from f(z) (a control variate; 0 = plain REINFORCE).
    Returns: (grad_mu, grad_log_sigma), each (S, D) float64: (f(z) - b) * d log q(z)/d param.
    """
    raise NotImplementedError("score_function_gradient: your code here")
