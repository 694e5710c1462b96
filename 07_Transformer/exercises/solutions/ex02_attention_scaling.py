"""Exercise 02 (reference solution): why the scores are divided by sqrt(d_k).

If the entries of q and k are independent with mean 0 and variance 1, then

    q . k = sum_{i=1}^{d_k} q_i k_i,   E[q . k] = 0,   Var[q . k] = d_k

(each product has variance E[q_i^2] E[k_i^2] = 1, and the d_k products are uncorrelated).
Unscaled scores therefore spread wider and wider as d_k grows, the softmax puts almost
all its weight on the largest one (its entropy falls towards 0), and its gradient
p_j (delta_jk - p_k) vanishes: the "extremely small gradients" of Vaswani et al.,
Section 3.2.1 and footnote 4. Dividing by sqrt(d_k) brings the variance back to 1.

The task text is in ``07_Transformer/exercises/02_attention_scaling.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check_positive_int(**values) -> None:
    """Raise ValueError unless every value is an int >= 1."""
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")


def dot_product_variance(d_k: int, n_samples: int = 20000, seed: int = 0) -> float:
    """The sample variance of q . k for q, k with independent N(0, 1) entries.

    Inputs:  d_k - vector length; n_samples - number of (q, k) pairs; seed
    Returns: float, close to d_k
    """
    _check_positive_int(d_k=d_k, n_samples=n_samples)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_samples, d_k))
    k = rng.standard_normal((n_samples, d_k))
    dots = np.sum(q * k, axis=1)  # (n_samples,)
    return float(np.var(dots))


def softmax_entropy(scores) -> np.ndarray:
    """Entropy in nats of softmax(scores) along the last axis: H = -sum_j p_j log p_j.

    Inputs:  scores (..., T) float
    Returns: (...) float; between 0 (one-hot) and log T (uniform)
    Computed from log p = s - logsumexp(s), stable for scores in the thousands.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim < 1 or s.shape[-1] < 1:
        raise ValueError(f"scores must have a last axis of length >= 1; got shape {s.shape}")
    shifted = s - np.max(s, axis=-1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return -np.sum(np.exp(log_p) * log_p, axis=-1)


def attention_entropy(d_k: int, T: int, scaled: bool = True, n_samples: int = 2000,
                      seed: int = 0) -> float:
    """Mean entropy of one query's attention over T keys, q and k_j with N(0, 1) entries.

    Inputs:  d_k; T - number of keys; scaled - divide the scores by sqrt(d_k);
             n_samples - number of (q, K) draws; seed
    Returns: float in [0, log T]: near log T - 1/2 when scaled (scores of variance 1),
             falling towards 0 without scaling as d_k grows
    """
    _check_positive_int(d_k=d_k, T=T, n_samples=n_samples)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_samples, 1, d_k))
    K = rng.standard_normal((n_samples, T, d_k))
    scores = np.sum(q * K, axis=-1)  # (n_samples, T): q . k_j
    if scaled:
        scores = scores / np.sqrt(d_k)
    return float(np.mean(softmax_entropy(scores)))
