"""Exercise 04 (starter): a stable softmax cross-entropy and its gradient.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 01_Linear_Logistic/exercises --solutions my_solutions

The task, the maths and hints are in ``01_Linear_Logistic/exercises/04_softmax_gradient.md``.
Use NumPy only. For logits Z (N, K) and integer labels y (N,):

    L = -1/N sum_i log_softmax(Z)[i, y_i]          dL/dZ = (softmax(Z) - onehot(y)) / N
"""

from __future__ import annotations

import numpy as np


def _check_logits(logits) -> np.ndarray:
    """Return logits as a float (N, K) array (float32 kept, else float64), or raise ValueError.

    Given to you: call it first.
    """
    Z = np.asarray(logits)
    if Z.ndim != 2 or Z.shape[1] == 0:
        raise ValueError(f"logits must be a 2-D array (N, K) with K >= 1; got shape {Z.shape}")
    if Z.dtype != np.float32:
        Z = Z.astype(np.float64)
    if not np.all(np.isfinite(Z)):
        raise ValueError("logits must be finite (no NaN or inf)")
    return Z


def log_softmax(logits) -> np.ndarray:
    """Row-wise log-softmax, Z - logsumexp(Z) with the row maximum subtracted first.

    Inputs:  logits Z (N, K), float32 or float64 (other types become float64).
    Returns: (N, K) array of Z's float dtype; every entry <= 0 and exp(row) sums to 1.
    """
    raise NotImplementedError("log_softmax: subtract the row max first "
                              "(see 04_softmax_gradient.md)")


def softmax_cross_entropy(logits, y) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against integer labels, and dL/dlogits.

        L = -1/N sum_i log_softmax(Z)[i, y_i]          dL/dZ = (softmax(Z) - onehot(y)) / N

    Raise ValueError when y is not of shape (N,), not integers, or outside 0..K-1.

    Inputs:  logits Z (N, K) float; y (N,) integers in 0..K-1.
    Returns: (L Python float, dL/dZ (N, K) of Z's float dtype).
    """
    raise NotImplementedError("softmax_cross_entropy: build it on log_softmax "
                              "(see 04_softmax_gradient.md)")
