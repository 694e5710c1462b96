"""Exercise 01 (reference solution): scaled dot-product attention, forward and backward.

For one head (any leading batch axes ...), with Q (..., T_q, d_k), K (..., T_k, d_k),
V (..., T_k, d_v) and a boolean mask M (True = masked out, torch's convention):

    S = Q K^T / sqrt(d_k), with S_ij = -inf where M_ij        (..., T_q, T_k)
    P = softmax(S) along the keys                              (..., T_q, T_k)
    O = P V                                                    (..., T_q, d_v)

Backward, for an upstream gradient dO = dL/dO (theory.md, attention backward):

    dV = P^T dO                  dP = dO V^T
    dS = P * (dP - rowsum(P * dP))            (the softmax Jacobian, row by row)
    dQ = dS K / sqrt(d_k)        dK = dS^T Q / sqrt(d_k)

Masked entries have P = 0, hence dS = 0: no gradient flows through them. A row whose keys
are all masked gets P = 0 and output 0 (as torch's F.scaled_dot_product_attention does).

The task text is in ``07_Transformer/exercises/01_attention_backward.md``. NumPy only.
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
    x = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype != np.float32 else np.float32)
    if mask is not None:
        x = np.where(mask, -np.inf, x)
    row_max = np.max(x, axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)  # all-masked row: no inf - inf
    e = np.exp(x - row_max)  # exp(-inf) = 0 for the masked entries
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def attention_forward(Q, K, V, mask=None) -> tuple[np.ndarray, dict]:
    """O = softmax(Q K^T / sqrt(d_k), masked) V.

    Inputs:  Q (..., T_q, d_k), K (..., T_k, d_k), V (..., T_k, d_v) float;
             mask bool broadcastable to (..., T_q, T_k), True = masked out, or None
    Returns: (O (..., T_q, d_v), cache): the cache holds what attention_backward needs
    """
    Q, K, V = _as_float(Q, "Q"), _as_float(K, "K"), _as_float(V, "V")
    if Q.shape[-1] != K.shape[-1] or K.shape[-2] != V.shape[-2]:
        raise ValueError(f"shapes do not fit: Q {Q.shape}, K {K.shape}, V {V.shape}; need "
                         "Q (..., T_q, d_k), K (..., T_k, d_k), V (..., T_k, d_v)")
    scale = 1.0 / np.sqrt(Q.shape[-1])
    S = Q @ np.swapaxes(K, -1, -2) * scale  # (..., T_q, T_k)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        try:
            np.broadcast_shapes(mask.shape, S.shape)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to the scores' "
                             f"shape {S.shape}") from None
    P = softmax(S, mask)
    return P @ V, {"Q": Q, "K": K, "V": V, "P": P, "scale": scale}


def attention_backward(dO, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a loss L with respect to Q, K, V, given dO = dL/dO.

    Inputs:  dO (..., T_q, d_v); cache from attention_forward
    Returns: (dQ, dK, dV) with the shapes of Q, K, V
    """
    Q, K, V, P, scale = cache["Q"], cache["K"], cache["V"], cache["P"], cache["scale"]
    dO = np.asarray(dO, dtype=P.dtype)
    if dO.shape[-2:] != (P.shape[-2], V.shape[-1]):
        raise ValueError(f"dO must have shape (..., T_q, d_v) = (..., {P.shape[-2]}, "
                         f"{V.shape[-1]}); got {dO.shape}")
    dV = np.swapaxes(P, -1, -2) @ dO  # (..., T_k, d_v)
    dP = dO @ np.swapaxes(V, -1, -2)  # (..., T_q, T_k)
    dS = P * (dP - np.sum(P * dP, axis=-1, keepdims=True))  # softmax backward, per row
    dQ = dS @ K * scale  # (..., T_q, d_k)
    dK = np.swapaxes(dS, -1, -2) @ Q * scale  # (..., T_k, d_k)
    return dQ, dK, dV
