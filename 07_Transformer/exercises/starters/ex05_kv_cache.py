"""Exercise 05 (starter): the key-value cache of autoregressive decoding.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 07_Transformer/exercises --solutions my_solutions -k ex05

The helpers ``_check_weights`` and ``_softmax`` are given: use them.

The task, the maths and hints are in ``07_Transformer/exercises/05_kv_cache.md``. NumPy only.
Weights in nn.MultiheadAttention's layout (y = x W^T), no biases.
"""

from __future__ import annotations

import numpy as np


def _check_weights(weights: dict, n_heads: int) -> int:
    """weights {"W_q", "W_k", "W_v", "W_o"}, each (d, d) with d divisible by n_heads;
    returns d, or raises ValueError."""
    names = ("W_q", "W_k", "W_v", "W_o")
    if not isinstance(weights, dict) or set(weights) != set(names):
        raise ValueError(f"weights must be a dict with the keys {names}")
    d = np.asarray(weights["W_q"]).shape[0]
    for name in names:
        if np.asarray(weights[name]).shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}); got "
                             f"{np.asarray(weights[name]).shape}")
    if not isinstance(n_heads, (int, np.integer)) or n_heads < 1 or d % n_heads:
        raise ValueError(f"d_model={d} must be divisible by n_heads={n_heads!r}")
    return d


def _softmax(s: np.ndarray) -> np.ndarray:
    """Softmax along the last axis (the row maximum subtracted first)."""
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def causal_self_attention(x, weights: dict, n_heads: int) -> np.ndarray:
    """Full recomputation: multi-head causal self-attention over a whole sequence.

    Inputs:  x (T, d) float; weights {"W_q", "W_k", "W_v", "W_o"} (d, d); n_heads h
    Returns: y (T, d); row t depends on x[0..t] only
    """
    raise NotImplementedError("causal_self_attention: project, split into (h, T, d_k), "
                              "causal scores, softmax, merge heads, W_o")


def empty_cache(n_heads: int, d_k: int) -> dict:
    """A cache with no tokens: {"k": (h, 0, d_k), "v": (h, 0, d_k)} float64 arrays."""
    raise NotImplementedError("empty_cache: two arrays with a time axis of length 0")


def attention_step(x_t, cache: dict, weights: dict, n_heads: int) -> tuple[np.ndarray, dict]:
    """One decoding step: attend from the new token to itself and every cached token.

    Inputs:  x_t (d,) the new token's input; cache from empty_cache or the previous step;
             weights, n_heads as in causal_self_attention
    Returns: (y_t (d,), the cache with this token's key and value appended, (h, t+1, d_k))
    """
    raise NotImplementedError("attention_step: q, k, v of the new token, append k and v "
                              "to the cache, one query row against all cached keys")


def decode_incrementally(x, weights: dict, n_heads: int) -> np.ndarray:
    """Run attention_step over x one row at a time; returns y (T, d), the stacked outputs."""
    raise NotImplementedError("decode_incrementally: start from empty_cache, one step per row")


def kv_cache_bytes(num_layers: int, batch: int, seq_len: int, d_model: int,
                   bytes_per_number: int = 2) -> int:
    """Memory of the cache: 2 (K and V) x layers x batch x seq_len x d_model numbers."""
    raise NotImplementedError("kv_cache_bytes: count the numbers, times bytes_per_number")
