"""Exercise 01 (starter): scaled dot-product attention, forward and backward, in NumPy.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 07_Transformer/exercises --solutions my_solutions -k ex01

The helper ``_as_float`` is given: use it.

The task, the maths and hints are in ``07_Transformer/exercises/01_attention_backward.md``.
Use NumPy only. For one head (any leading batch axes ...), mask True = masked out:

    S = Q K^T / sqrt(d_k) (-inf where masked),  P = softmax(S) along the keys,  O = P V
    dV = P^T dO,  dP = dO V^T,  dS = ?,  dQ = ?,  dK = ?         (derive dS, dQ, dK)
"""

from __future__ import annotations

import numpy as np


def _as_float(a, name: str) -> np.ndarray:
    """a as a float array with at least 2 axes (float32 kept, else float64), or ValueError."""
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name} must have shape (..., T, d); got shape {a.shape}")
    return a if a.dtype == np.float32 else a.astype(np.float64)


def softmax(x, mask=None, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``, stable (the row maximum is subtracted first).

    Inputs:  x float array; mask - bool, broadcastable to x, True = excluded (weight 0);
             a row with every entry excluded gives all zeros (not NaN)
    Returns: array of x's shape; the non-excluded entries of each row sum to 1
    """
    raise NotImplementedError("softmax: -inf where masked, subtract the (finite) row max, "
                              "exp, divide by the row sum (guard the all-masked row)")


def attention_forward(Q, K, V, mask=None) -> tuple[np.ndarray, dict]:
    """O = softmax(Q K^T / sqrt(d_k), masked) V.

    Inputs:  Q (..., T_q, d_k), K (..., T_k, d_k), V (..., T_k, d_v) float;
             mask bool broadcastable to (..., T_q, T_k), True = masked out, or None
    Returns: (O (..., T_q, d_v), cache): the cache holds what attention_backward needs
    Raise ValueError when the shapes do not fit or the mask does not broadcast.
    """
    raise NotImplementedError("attention_forward: scores with np.swapaxes(K, -1, -2), "
                              "softmax, then P @ V; keep P in the cache")


def attention_backward(dO, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a loss L with respect to Q, K, V, given dO = dL/dO.

    Inputs:  dO (..., T_q, d_v); cache from attention_forward
    Returns: (dQ, dK, dV) with the shapes of Q, K, V
    """
    raise NotImplementedError("attention_backward: dV, dP, then the softmax backward row "
                              "by row, then dQ and dK (do not forget 1/sqrt(d_k))")
