"""Exercise 01 (reference solution): one LSTM step, forward and backward, by hand.

PyTorch's layout (theory.md 2.1): W_ih (4H, D), W_hh (4H, H), b_ih, b_hh (4H,), gate blocks
[i, f, g, o] in that order.

    a = x W_ih^T + b_ih + h_prev W_hh^T + b_hh                (N, 4H) pre-activations
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c = f * c_prev + i * g;   h = o * tanh(c)

Backward (theory.md 2.2), given dh = dL/dh and dc = dL/dc from outside the step:

    do = dh * tanh(c)
    dc_total = dc + dh * o * (1 - tanh(c)^2)        the cell gets both paths
    di = dc_total * g,  df = dc_total * c_prev,  dg = dc_total * i,  dc_prev = dc_total * f
    da = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]
    dx = da W_ih,  dh_prev = da W_hh,  dW_ih = da^T x,  dW_hh = da^T h_prev,  db = sum_n da

The task text is in ``06_LSTM_GRU/exercises/01_lstm_step_backward.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-a), written through tanh so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _check(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh) -> None:
    """Raise ValueError unless the shapes fit PyTorch's LSTM layout."""
    x, h_prev, c_prev = np.asarray(x), np.asarray(h_prev), np.asarray(c_prev)
    if x.ndim != 2 or h_prev.ndim != 2:
        raise ValueError(f"x must be (N, D) and h_prev (N, H); got {x.shape} and {h_prev.shape}")
    n, d = x.shape
    h = h_prev.shape[1]
    expected = {"h_prev": (n, h), "c_prev": (n, h), "W_ih": (4 * h, d), "W_hh": (4 * h, h),
                "b_ih": (4 * h,), "b_hh": (4 * h,)}
    for name, value in zip(expected, (h_prev, c_prev, W_ih, W_hh, b_ih, b_hh)):
        if np.shape(value) != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]} for x {x.shape} and "
                             f"H = {h}; got {np.shape(value)}")


def lstm_cell_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step, as torch.nn.LSTMCell.

    Inputs:  x (N, D); h_prev, c_prev (N, H); W_ih (4H, D); W_hh (4H, H); b_ih, b_hh (4H,).
    Returns: (h (N, H), c (N, H), cache) - cache holds what lstm_cell_backward needs.
    """
    _check(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh)
    H = h_prev.shape[1]
    a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh  # (N, 4H)
    i = _sigmoid(a[:, :H])
    f = _sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = _sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    cache = (x, h_prev, c_prev, W_ih, W_hh, i, f, g, o, tanh_c)
    return h, c, cache


def lstm_cell_backward(dh, dc, cache) -> dict[str, np.ndarray]:
    """Backward of one LSTM step.

    Inputs:  dh = dL/dh (N, H); dc = dL/dc (N, H) from outside the step (for example from
             the next step's carousel); cache from lstm_cell_forward.
    Returns: {"x": dL/dx (N, D), "h_prev": (N, H), "c_prev": (N, H), "W_ih": (4H, D),
              "W_hh": (4H, H), "b_ih": (4H,), "b_hh": (4H,)}.
    """
    x, h_prev, c_prev, W_ih, W_hh, i, f, g, o, tanh_c = cache
    if np.shape(dh) != h_prev.shape or np.shape(dc) != h_prev.shape:
        raise ValueError(f"dh and dc must have the state's shape {h_prev.shape}; got "
                         f"{np.shape(dh)} and {np.shape(dc)}")
    do = dh * tanh_c
    dc_total = dc + dh * o * (1.0 - tanh_c**2)
    da = np.concatenate([dc_total * g * i * (1.0 - i),  # input gate
                         dc_total * c_prev * f * (1.0 - f),  # forget gate
                         dc_total * i * (1.0 - g**2),  # candidate
                         do * o * (1.0 - o)], axis=1)  # output gate   (N, 4H)
    db = da.sum(axis=0)
    return {"x": da @ W_ih, "h_prev": da @ W_hh, "c_prev": dc_total * f,
            "W_ih": da.T @ x, "W_hh": da.T @ h_prev, "b_ih": db, "b_hh": db.copy()}
