"""Exercise 04 (reference solution): a stable softmax cross-entropy and its gradient.

For logits Z (N, K) and integer labels y (N,):

    log_softmax(Z)[i, k] = Z[i, k] - logsumexp(Z[i, :])
    logsumexp(Z[i, :])   = m_i + log sum_k exp(Z[i, k] - m_i),     m_i = max_k Z[i, k]
    L                    = -1/N sum_i log_softmax(Z)[i, y_i]
    dL/dZ                = (softmax(Z) - onehot(y)) / N

Subtracting the row maximum changes nothing mathematically (softmax is invariant to
adding the same number to every logit of a row) but keeps every exponent <= 0, so
exp never overflows, and the largest term is exp(0) = 1, so the log never sees 0.

The task text is in ``01_Linear_Logistic/exercises/04_softmax_gradient.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check_logits(logits) -> np.ndarray:
    """Return logits as a float (N, K) array (float32 kept, else float64), or raise ValueError."""
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
    Z = _check_logits(logits)
    shifted = Z - Z.max(axis=1, keepdims=True)  # (N, K), every entry <= 0, the max is 0
    with np.errstate(under="ignore"):  # exp(-1e4) underflows to 0.0: the right value
        log_normaliser = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))  # (N, 1), >= 0
    return shifted - log_normaliser


def softmax_cross_entropy(logits, y) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against integer labels, and dL/dlogits.

        L = -1/N sum_i log_softmax(Z)[i, y_i]          dL/dZ = (softmax(Z) - onehot(y)) / N

    Inputs:  logits Z (N, K) float; y (N,) integers in 0..K-1.
    Returns: (L Python float, dL/dZ (N, K) of Z's float dtype).
    """
    Z = _check_logits(logits)
    y = np.asarray(y)
    n, k = Z.shape
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), one label per row of logits; got {y.shape}")
    if y.dtype.kind not in "iu" or (n > 0 and (y.min() < 0 or y.max() >= k)):
        raise ValueError(f"y must hold integer class labels in 0..{k - 1}; got dtype {y.dtype} "
                         f"and values {np.unique(y)[:5]}")
    log_p = log_softmax(Z)  # (N, K)
    rows = np.arange(n)
    loss = -np.mean(log_p[rows, y])  # -1/N sum_i log p_i[y_i]
    with np.errstate(under="ignore"):
        dZ = np.exp(log_p)  # softmax(Z), (N, K)
    dZ[rows, y] -= 1.0  # softmax(Z) - onehot(y)
    return float(loss), dZ / n
