"""Exercise 02 (reference solution): causal self-attention with left padding.

softmax(Q K^T / sqrt(d_k) + M) V with M = 0 where the key is at or before the query and is a
real token, -inf elsewhere; rows with no visible key give zeros. Positions count real
tokens from 0. The task text is in ``09_GPT/exercises/02_causal_attention.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def causal_attention(q, k, v, attention_mask=None):
    """Masked scaled dot-product attention.

    Inputs:  q, k, v (B, h, T, d_k); attention_mask (B, T) 1 real / 0 padding, or None
    Returns: (B, h, T, d_k); zeros on query rows that see no key
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    T, d_k = q.shape[-2], q.shape[-1]
    if q.shape != k.shape or k.shape != v.shape or q.ndim != 4:
        raise ValueError(f"q, k, v must share one (B, h, T, d_k) shape; got {q.shape}, "
                         f"{k.shape}, {v.shape}")
    allowed = np.tril(np.ones((T, T), dtype=bool))[None, None]  # (1, 1, T_q, T_k): s <= t
    if attention_mask is not None:
        keys = np.asarray(attention_mask).astype(bool)[:, None, None, :]  # (B, 1, 1, T_k)
        allowed = allowed & keys  # (B, 1, T_q, T_k)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)  # (B, h, T_q, T_k)
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)  # rows with no visible key
    weights = np.exp(scores - row_max)  # exp(-inf) = 0 on masked keys
    total = weights.sum(axis=-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return weights @ v


def position_ids(attention_mask):
    """(B, T) 1/0 mask -> (B, T) int64 positions: real tokens 0, 1, 2, ...; padding 0."""
    mask = np.asarray(attention_mask).astype(np.int64)
    if mask.ndim != 2:
        raise ValueError(f"attention_mask must be (B, T); got shape {mask.shape}")
    return np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 0)
