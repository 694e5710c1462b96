"""Exercise 05 (reference solution): the vanishing gradient of a tanh RNN, measured and bounded.

theory.md 1.3-1.4 (Pascanu, Mikolov & Bengio 2013, section 2.1). For h_t = tanh(W_hh h_{t-1} + ...):

    dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh                                   one step's Jacobian
    dh_T/dh_k     = prod_{j=k+1..T} diag(1 - h_j^2) W_hh    (j = T on the left)
    ||dh_T/dh_k|| <= (gamma lambda_1)^(T-k),   gamma = max|tanh'| = 1,  lambda_1 = ||W_hh||_2

The task text is in ``06_LSTM_GRU/exercises/05_vanishing_gradient_bound.md``. NumPy only.
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
    W_hh = _check_square(W_hh)
    h_t = np.asarray(h_t, dtype=np.float64)
    if h_t.shape != (W_hh.shape[0],):
        raise ValueError(f"h_t must have shape ({W_hh.shape[0]},); got {h_t.shape}")
    return (1.0 - h_t**2)[:, None] * W_hh  # row a scaled by tanh'(a_t[a])


def jacobians_to_last(hs, W_hh) -> np.ndarray:
    """dh_T/dh_k for every k = 0..T, by multiplying step Jacobians from the end.

    Inputs:  hs (T + 1, H) - h_0 .. h_T of one sequence; W_hh (H, H).
    Returns: (T + 1, H, H); entry k is dh_T/dh_k (entry T is the identity).
    """
    W_hh = _check_square(W_hh)
    hs = np.asarray(hs, dtype=np.float64)
    if hs.ndim != 2 or hs.shape[1] != W_hh.shape[0]:
        raise ValueError(f"hs must be (T + 1, H = {W_hh.shape[0]}); got {hs.shape}")
    T = hs.shape[0] - 1
    out = np.empty((T + 1,) + W_hh.shape)
    out[T] = np.eye(W_hh.shape[0])
    for k in range(T - 1, -1, -1):
        out[k] = out[k + 1] @ step_jacobian(hs[k + 1], W_hh)  # dh_T/dh_{k+1} dh_{k+1}/dh_k
    return out


def vanishing_bound(W_hh, steps: int, gamma: float = 1.0) -> np.ndarray:
    """The bound (gamma lambda_1)^k on ||dh_t/dh_{t-k}||_2, for k = 0..steps.

    Inputs:  W_hh (H, H); steps >= 0; gamma - the bound on |f'| (1 for tanh, 1/4 for sigmoid).
    Returns: (steps + 1,) float64, entry k = (gamma * largest singular value of W_hh)^k.
    """
    W_hh = _check_square(W_hh)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0; got {steps!r}")
    eta = gamma * np.linalg.norm(W_hh, 2)  # the spectral norm: largest singular value
    return eta ** np.arange(steps + 1, dtype=np.float64)
