"""Exercise 05 (starter): the vanishing gradient of a tanh RNN, measured and bounded.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 06_LSTM_GRU/exercises --solutions my_solutions -k ex05

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``06_LSTM_GRU/exercises/05_vanishing_gradient_bound.md``.
Use NumPy only. One step's Jacobian is dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh.
"""

from __future__ import annotations

import numpy as np


def _run_rnn(x, h0, W_ih, W_hh, b) -> np.ndarray:
    """One sequence through h_t = tanh(W_ih x_t + W_hh h_{t-1} + b).

    Inputs:  x (T, D); h0 (H,); W_ih (H, D); W_hh (H, H); b (H,).
    Returns: hs (T + 1, H) with hs[0] = h0 and hs[t] = h_t.
    """
    hs = [np.asarray(h0, dtype=np.float64)]
    for x_t in np.asarray(x, dtype=np.float64):
        hs.append(np.tanh(W_ih @ x_t + W_hh @ hs[-1] + b))
    return np.stack(hs)


def _check_square(W_hh) -> np.ndarray:
    W_hh = np.asarray(W_hh, dtype=np.float64)
    if W_hh.ndim != 2 or W_hh.shape[0] != W_hh.shape[1]:
        raise ValueError(f"W_hh must be a square (H, H) matrix; got shape {W_hh.shape}")
    return W_hh


def step_jacobian(h_t, W_hh) -> np.ndarray:
    """dh_t/dh_{t-1} of one tanh step, given its output h_t.

    Inputs:  h_t (H,); W_hh (H, H).
    Returns: (H, H) = diag(1 - h_t^2) W_hh; entry [a, b] = d h_t[a] / d h_{t-1}[b].
    """
    raise NotImplementedError("step_jacobian: scale row a of W_hh by 1 - h_t[a]^2")


def jacobians_to_last(hs, W_hh) -> np.ndarray:
    """dh_T/dh_k for every k = 0..T, by multiplying step Jacobians from the end.

    Inputs:  hs (T + 1, H) - h_0 .. h_T of one sequence; W_hh (H, H).
    Returns: (T + 1, H, H); entry k is dh_T/dh_k (entry T is the identity).
    """
    raise NotImplementedError("jacobians_to_last: start from the identity at k = T and "
                              "multiply by step_jacobian(hs[k + 1]) on the right, going back")


def vanishing_bound(W_hh, steps: int, gamma: float = 1.0) -> np.ndarray:
    """The bound (gamma lambda_1)^k on ||dh_t/dh_{t-k}||_2, for k = 0..steps.

    Inputs:  W_hh (H, H); steps >= 0; gamma - the bound on |f'| (1 for tanh, 1/4 for sigmoid).
    Returns: (steps + 1,) float64, entry k = (gamma * largest singular value of W_hh)^k.
    """
    raise NotImplementedError("vanishing_bound: (gamma * spectral norm of W_hh) ** k, "
                              "k = 0..steps")
