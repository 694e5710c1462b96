"""Exercise 02 (starter): why the scores are divided by sqrt(d_k).

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 07_Transformer/exercises --solutions my_solutions -k ex02

The helper ``_check_positive_int`` is given: use it.

The task, the maths and hints are in ``07_Transformer/exercises/02_attention_scaling.md``.
Use NumPy only (``np.random.default_rng(seed)`` for the random draws).
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
    raise NotImplementedError("dot_product_variance: draw n_samples pairs, one dot product "
                              "each, return np.var")


def softmax_entropy(scores) -> np.ndarray:
    """Entropy in nats of softmax(scores) along the last axis: H = -sum_j p_j log p_j.

    Inputs:  scores (..., T) float
    Returns: (...) float; between 0 (one-hot) and log T (uniform)
    Must be stable for scores in the thousands.
    """
    raise NotImplementedError("softmax_entropy: log p = s - logsumexp(s), then -sum p log p")


def attention_entropy(d_k: int, T: int, scaled: bool = True, n_samples: int = 2000,
                      seed: int = 0) -> float:
    """Mean entropy of one query's attention over T keys, q and k_j with N(0, 1) entries.

    Inputs:  d_k; T - number of keys; scaled - divide the scores by sqrt(d_k);
             n_samples - number of (q, K) draws; seed
    Returns: float in [0, log T]
    """
    raise NotImplementedError("attention_entropy: n_samples queries and key sets, the T "
                              "scores of each, optionally / sqrt(d_k), mean softmax_entropy")
