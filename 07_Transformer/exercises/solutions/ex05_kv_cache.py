"""Exercise 05 (reference solution): the key-value cache of autoregressive decoding.

A decoder generates one token at a time. With causal masking, the output at step t
depends only on tokens 0..t, and the keys and values of tokens 0..t-1 do not change when
token t arrives. So instead of recomputing attention over the whole prefix at every step
(O(T^2) projections over T steps), keep the past keys and values and, per new token,

    q_t = x_t W_q^T,  k_t = x_t W_k^T,  v_t = x_t W_v^T           (one row each)
    K = [K_cache; k_t],  V = [V_cache; v_t]                         append, per head
    y_t = Concat_h softmax(q_t K^T / sqrt(d_k)) V  W_o^T            one query row

which gives exactly the rows of full causal attention: "incremental equals full".
Memory: 2 (keys and values) x layers x batch x T x d_model numbers.

Weights in nn.MultiheadAttention's layout (y = x W^T), no biases.
The task text is in ``07_Transformer/exercises/05_kv_cache.md``. NumPy only.
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
    d = _check_weights(weights, n_heads)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (T, {d}); got {x.shape}")
    T, d_k = x.shape[0], d // n_heads

    def heads(W):  # (T, d) -> (h, T, d_k)
        return (x @ np.asarray(W).T).reshape(T, n_heads, d_k).transpose(1, 0, 2)

    q, k, v = heads(weights["W_q"]), heads(weights["W_k"]), heads(weights["W_v"])
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d_k)  # (h, T, T)
    scores = np.where(np.triu(np.ones((T, T), dtype=bool), 1), -np.inf, scores)
    out = _softmax(scores) @ v  # (h, T, d_k)
    return out.transpose(1, 0, 2).reshape(T, d) @ np.asarray(weights["W_o"]).T


def empty_cache(n_heads: int, d_k: int) -> dict:
    """A cache with no tokens: {"k": (h, 0, d_k), "v": (h, 0, d_k)} float64 arrays."""
    return {"k": np.zeros((n_heads, 0, d_k)), "v": np.zeros((n_heads, 0, d_k))}


def attention_step(x_t, cache: dict, weights: dict, n_heads: int) -> tuple[np.ndarray, dict]:
    """One decoding step: attend from the new token to itself and every cached token.

    Inputs:  x_t (d,) the new token's input; cache from empty_cache or the previous step;
             weights, n_heads as in causal_self_attention
    Returns: (y_t (d,), the cache with this token's key and value appended, (h, t+1, d_k))
    """
    d = _check_weights(weights, n_heads)
    x_t = np.asarray(x_t, dtype=np.float64)
    if x_t.shape != (d,):
        raise ValueError(f"x_t must have shape ({d},); got {x_t.shape}")
    d_k = d // n_heads

    def head_rows(W):  # (d,) -> (h, 1, d_k)
        return (np.asarray(W) @ x_t).reshape(n_heads, 1, d_k)

    q = head_rows(weights["W_q"])
    k = np.concatenate([cache["k"], head_rows(weights["W_k"])], axis=1)  # (h, t+1, d_k)
    v = np.concatenate([cache["v"], head_rows(weights["W_v"])], axis=1)
    out = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(d_k)) @ v  # (h, 1, d_k); no mask needed
    return np.asarray(weights["W_o"]) @ out.reshape(d), {"k": k, "v": v}


def decode_incrementally(x, weights: dict, n_heads: int) -> np.ndarray:
    """Run attention_step over x one row at a time; returns y (T, d), the stacked outputs."""
    d = _check_weights(weights, n_heads)
    cache = empty_cache(n_heads, d // n_heads)
    rows = []
    for x_t in np.asarray(x, dtype=np.float64):
        y_t, cache = attention_step(x_t, cache, weights, n_heads)
        rows.append(y_t)
    return np.stack(rows)


def kv_cache_bytes(num_layers: int, batch: int, seq_len: int, d_model: int,
                   bytes_per_number: int = 2) -> int:
    """Memory of the cache: 2 (K and V) x layers x batch x seq_len x d_model numbers."""
    return 2 * num_layers * batch * seq_len * d_model * bytes_per_number
