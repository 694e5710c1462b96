"""Exercise 04 (starter): the peephole LSTM (Gers & Schmidhuber 2000).

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 06_LSTM_GRU/exercises --solutions my_solutions -k ex04

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``06_LSTM_GRU/exercises/04_peephole_lstm.md``.
Use NumPy only. The gates see the cell through diagonal weights:

    i = sigmoid(a_i + w_ci * c_{t-1}),  f = sigmoid(a_f + w_cf * c_{t-1}),  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,  o = sigmoid(a_o + w_co * c_t),  h_t = o * tanh(c_t)
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-a), written through tanh so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


PARAM_NAMES = ("W_ih", "W_hh", "b", "w_ci", "w_cf", "w_co")


def _check_inputs(x, h0, c0, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, h0, c0 as float64 arrays, after checking every shape against params."""
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"params lacks {missing}; expected the keys {PARAM_NAMES}")
    x = np.asarray(x, dtype=np.float64)
    H = params["W_hh"].shape[1]
    if x.ndim != 3:
        raise ValueError(f"x must be (N, T, D); got shape {x.shape}")
    n, _, d = x.shape
    expected = {"W_ih": (4 * H, d), "W_hh": (4 * H, H), "b": (4 * H,), "w_ci": (H,),
                "w_cf": (H,), "w_co": (H,)}
    for name, shape in expected.items():
        if np.shape(params[name]) != shape:
            raise ValueError(f"params[{name!r}] must have shape {shape}; got "
                             f"{np.shape(params[name])}")
    states = []
    for name, state in (("h0", h0), ("c0", c0)):
        state = np.zeros((n, H)) if state is None else np.asarray(state, dtype=np.float64)
        if state.shape != (n, H):
            raise ValueError(f"{name} must have shape (N, H) = {(n, H)}; got {state.shape}")
        states.append(state)
    return x, states[0], states[1]


def peephole_lstm_forward(x, h0, c0, params):
    """A peephole LSTM over a sequence.

    Inputs:  x (N, T, D); h0, c0 (N, H) or None (zeros); params - dict W_ih (4H, D),
             W_hh (4H, H), b (4H,), w_ci, w_cf, w_co (H,); gate blocks [i, f, g, o].
    Returns: (hs (N, T, H), (h_T, c_T), cache for peephole_lstm_backward).
    """
    raise NotImplementedError("peephole_lstm_forward: loop over t; i and f see c_{t-1}, "
                              "o sees c_t; keep each step's values for the backward pass")


def peephole_lstm_backward(dhs, dh_T, dc_T, cache, params) -> dict[str, np.ndarray]:
    """BPTT through the peephole LSTM.

    Inputs:  dhs (N, T, H) = dL/dh_t from the loss at each step; dh_T, dc_T (N, H) =
             dL/dh_T, dL/dc_T from after the sequence, or None (zeros); cache from the forward
             pass; params as there.
    Returns: {"x": (N, T, D), "h0": (N, H), "c0": (N, H), and one entry per parameter:
             "W_ih", "W_hh", "b", "w_ci", "w_cf", "w_co"}.
    """
    raise NotImplementedError("peephole_lstm_backward: from t = T down to 1; c_t gets the "
                              "carousel, the path through h_t and o's peephole")
