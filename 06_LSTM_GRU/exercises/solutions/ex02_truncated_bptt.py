"""Exercise 02 (reference solution): truncated backpropagation through time.

A long sequence is cut into chunks of k steps (theory.md 5.2, Williams & Peng 1990 with
k1 = k2 = k). The forward pass carries the state from chunk to chunk, so it sees the whole
history; the backward pass runs inside each chunk only: no gradient enters a chunk from
the steps after it, and none leaves it towards the steps before it (PyTorch's
``h = h.detach()`` between chunks). The weight gradients of the chunks add up.

    for each chunk [s, s + k):
        hs, cache = forward(x[:, s:s+k], h)              h: the carried state, a constant
        grads += backward(dhs[:, s:s+k], cache)          the chunk's own loss only
        h = hs[:, -1]

The task text is in ``06_LSTM_GRU/exercises/02_truncated_bptt.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _rnn_forward(x, h0, params):
    """A tanh RNN over a chunk: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

    Inputs:  x (N, T, D); h0 (N, H); params - dict W_ih (H, D), W_hh (H, H), b_ih, b_hh (H,).
    Returns: (hs (N, T, H), cache for _rnn_backward).
    """
    x, h = np.asarray(x, dtype=np.float64), np.asarray(h0, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != params["W_ih"].shape[1]:
        raise ValueError(f"x must be (N, T, D = {params['W_ih'].shape[1]}); got {x.shape}")
    if h.shape != (x.shape[0], params["W_hh"].shape[0]):
        raise ValueError(f"h0 must be (N, H) = {(x.shape[0], params['W_hh'].shape[0])}; "
                         f"got {h.shape}")
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ params["W_ih"].T + params["b_ih"] + h @ params["W_hh"].T
                    + params["b_hh"])
        hs.append(h)
    hs = np.stack(hs, axis=1)  # (N, T, H)
    return hs, (x, np.asarray(h0, dtype=np.float64), hs)


def _rnn_backward(dhs, cache, params):
    """Full BPTT over the chunk the cache comes from, with NO gradient from after its end.

    Inputs:  dhs (N, T, H) = dL/dh_t from the loss at each step of the chunk; cache from
             _rnn_forward; params as there.
    Returns: (grads - dict with the keys of params, dh0 (N, H) = dL/d(the chunk's h0)).
    """
    x, h0, hs = cache
    if np.shape(dhs) != hs.shape:
        raise ValueError(f"dhs must have the chunk's shape {hs.shape}; got {np.shape(dhs)}")
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    dh_next = np.zeros_like(h0)
    for t in reversed(range(hs.shape[1])):
        h_prev = hs[:, t - 1] if t > 0 else h0
        da = (dhs[:, t] + dh_next) * (1.0 - hs[:, t] ** 2)  # through tanh
        grads["W_ih"] += da.T @ x[:, t]
        grads["W_hh"] += da.T @ h_prev
        grads["b_ih"] += da.sum(axis=0)
        grads["b_hh"] += da.sum(axis=0)
        dh_next = da @ params["W_hh"]
    return grads, dh_next


def chunk_bounds(seq_len: int, chunk_len: int) -> list[tuple[int, int]]:
    """The (start, stop) of each chunk of ``chunk_len`` steps; the last one may be shorter.

    Inputs:  seq_len T >= 1; chunk_len k >= 1.
    Returns: [(0, k), (k, 2k), ..., (m k, T)].
    """
    for name, value in (("seq_len", seq_len), ("chunk_len", chunk_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return [(start, min(start + chunk_len, seq_len)) for start in range(0, seq_len, chunk_len)]


def truncated_bptt_gradients(x, dhs, params, chunk_len: int, h0=None):
    """Weight gradients of L = sum_t <h_t, dhs_t> by truncated BPTT over chunks of k steps.

    Inputs:  x (N, T, D); dhs (N, T, H) = dL/dh_t from the loss at each step; params - dict
             W_ih (H, D), W_hh (H, H), b_ih, b_hh (H,); chunk_len k >= 1; h0 (N, H) or None
             (zeros).
    Returns: (grads - dict with the keys of params, the sums over the chunks;
              h_T (N, H) - the final state, which the forward pass carried through all chunks).
    """
    x, dhs = np.asarray(x, dtype=np.float64), np.asarray(dhs, dtype=np.float64)
    if x.ndim != 3 or dhs.shape != x.shape[:2] + (params["W_hh"].shape[0],):
        raise ValueError(f"x must be (N, T, D) and dhs (N, T, H); got {x.shape} and {dhs.shape}")
    n, T, _ = x.shape
    h = np.zeros((n, params["W_hh"].shape[0])) if h0 is None else np.asarray(h0, np.float64)
    total = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    for start, stop in chunk_bounds(T, chunk_len):
        hs, cache = _rnn_forward(x[:, start:stop], h, params)  # the state flows on ...
        grads, _ = _rnn_backward(dhs[:, start:stop], cache, params)  # ... the gradient stops
        for k in total:
            total[k] += grads[k]
        h = hs[:, -1]  # carried to the next chunk as a constant
    return total, h
