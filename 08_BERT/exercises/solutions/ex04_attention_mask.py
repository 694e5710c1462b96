"""Exercise 04 (reference solution): from a padding mask to attention.

The (B, T) mask of 1s (real tokens) and 0s (padding) becomes an additive (B, 1, 1, T) mask:
0 where a key may be attended to, the dtype's most negative number where not. Added to the
scores of every head and every query, it sends the padded keys' weights to exactly 0 after
the softmax (exp underflows), without the NaN that -inf would give on a fully masked row.

The task text is in ``08_BERT/exercises/04_attention_mask.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def extended_attention_mask(attention_mask, dtype=np.float64) -> np.ndarray:
    """(B, T) 1/0 -> (B, 1, 1, T) additive mask: 0 for keep, finfo(dtype).min for padding."""
    mask = np.asarray(attention_mask)
    if mask.ndim != 2:
        raise ValueError(f"attention_mask must be (B, T); got shape {mask.shape}")
    keep = mask.astype(bool)[:, None, None, :]  # (B, 1, 1, T)
    return np.where(keep, 0.0, np.finfo(dtype).min).astype(dtype)


def masked_attention(q, k, v, attention_mask) -> np.ndarray:
    """softmax(q k^T / sqrt(d_k) + mask) v for every head.

    Inputs:  q, k, v (B, A, T, d_k); attention_mask (B, T) of 1/0
    Returns: (B, A, T, d_k)
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # (B, A, T, T)
    scores = scores + extended_attention_mask(attention_mask)
    scores = scores - scores.max(axis=-1, keepdims=True)  # stable softmax
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ v
