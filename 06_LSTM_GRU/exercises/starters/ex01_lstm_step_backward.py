"""Exercise 01 (starter): one LSTM step, forward and backward, by hand.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 06_LSTM_GRU/exercises --solutions my_solutions -k ex01

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``06_LSTM_GRU/exercises/01_lstm_step_backward.md``.
Use NumPy only. PyTorch's layout: W_ih (4H, D), W_hh (4H, H), b_ih, b_hh (4H,), gate blocks
[i, f, g, o]:

    a = x W_ih^T + b_ih + h_prev W_hh^T + b_hh;  i, f, o = sigmoid(.), g = tanh(.)
    c = f * c_prev + i * g;   h = o * tanh(c)
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
    raise NotImplementedError("lstm_cell_forward: the four gates from one (N, 4H) "
                              "pre-activation, then c and h; keep what backward needs")


def lstm_cell_backward(dh, dc, cache) -> dict[str, np.ndarray]:
    """Backward of one LSTM step.

    Inputs:  dh = dL/dh (N, H); dc = dL/dc (N, H) from outside the step (for example from
             the next step's carousel); cache from lstm_cell_forward.
    Returns: {"x": dL/dx (N, D), "h_prev": (N, H), "c_prev": (N, H), "W_ih": (4H, D),
              "W_hh": (4H, H), "b_ih": (4H,), "b_hh": (4H,)}.
    """
    raise NotImplementedError("lstm_cell_backward: dL/dc gets dc plus the path through h; "
                              "then the four gates' pre-activations; then the products")
