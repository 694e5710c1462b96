"""Exercise 04 (reference solution): the peephole LSTM (Gers & Schmidhuber 2000).

The gates also look at the cell, through diagonal ("peephole") weights (theory.md 2.5):

    a = x_t W_ih^T + h_{t-1} W_hh^T + b                 blocks [i, f, g, o], (N, 4H)
    i_t = sigmoid(a_i + w_ci * c_{t-1})       f_t = sigmoid(a_f + w_cf * c_{t-1})
    g_t = tanh(a_g)                           c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(a_o + w_co * c_t)           (the output gate sees the NEW cell)
    h_t = o_t * tanh(c_t)

Backward, step t (dh = dL/dh_t in total; dc_next = what step t+1 sends to c_t):

    da_o = dh * tanh(c_t) * o(1 - o)
    dc   = dc_next + dh * o * (1 - tanh(c_t)^2) + da_o * w_co       three paths into c_t
    da_i = dc * g * i(1 - i);  da_f = dc * c_{t-1} * f(1 - f);  da_g = dc * i * (1 - g^2)
    to c_{t-1}:  dc * f + da_i * w_ci + da_f * w_cf                the carousel + 2 peepholes
    dw_ci += sum_n da_i * c_{t-1};  dw_cf += sum_n da_f * c_{t-1};  dw_co += sum_n da_o * c_t
    dh_{t-1} (from this step) = da W_hh;  dx_t = da W_ih;  dW_ih += da^T x_t;  ...

The task text is in ``06_LSTM_GRU/exercises/04_peephole_lstm.md``. NumPy only.
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
    x, h, c = _check_inputs(x, h0, c0, params)
    H = h.shape[1]
    hs, steps = [], []
    for t in range(x.shape[1]):
        a = x[:, t] @ params["W_ih"].T + h @ params["W_hh"].T + params["b"]  # (N, 4H)
        i = _sigmoid(a[:, :H] + params["w_ci"] * c)
        f = _sigmoid(a[:, H:2 * H] + params["w_cf"] * c)
        g = np.tanh(a[:, 2 * H:3 * H])
        c_new = f * c + i * g
        o = _sigmoid(a[:, 3 * H:] + params["w_co"] * c_new)  # sees the new cell
        tanh_c = np.tanh(c_new)
        steps.append((x[:, t], h, c, i, f, g, o, c_new, tanh_c))
        h, c = o * tanh_c, c_new
        hs.append(h)
    return np.stack(hs, axis=1), (h, c), steps


def peephole_lstm_backward(dhs, dh_T, dc_T, cache, params) -> dict[str, np.ndarray]:
    """BPTT through the peephole LSTM.

    Inputs:  dhs (N, T, H) = dL/dh_t from the loss at each step; dh_T, dc_T (N, H) =
             dL/dh_T, dL/dc_T from after the sequence, or None (zeros); cache from the forward
             pass; params as there.
    Returns: {"x": (N, T, D), "h0": (N, H), "c0": (N, H), and one entry per parameter:
             "W_ih", "W_hh", "b", "w_ci", "w_cf", "w_co"}.
    """
    steps = cache
    n, H = steps[0][1].shape
    dhs = np.asarray(dhs, dtype=np.float64)
    if dhs.shape != (n, len(steps), H):
        raise ValueError(f"dhs must have the outputs' shape {(n, len(steps), H)}; got "
                         f"{dhs.shape}")
    grads = {k: np.zeros_like(params[k], dtype=np.float64) for k in PARAM_NAMES}
    dx = np.zeros((n, len(steps), params["W_ih"].shape[1]))
    dh_next = np.zeros((n, H)) if dh_T is None else np.asarray(dh_T, dtype=np.float64)
    dc_next = np.zeros((n, H)) if dc_T is None else np.asarray(dc_T, dtype=np.float64)
    for t in reversed(range(len(steps))):
        x_t, h_prev, c_prev, i, f, g, o, c, tanh_c = steps[t]
        dh = dhs[:, t] + dh_next
        da_o = dh * tanh_c * o * (1.0 - o)
        dc = dc_next + dh * o * (1.0 - tanh_c**2) + da_o * params["w_co"]
        da_i = dc * g * i * (1.0 - i)
        da_f = dc * c_prev * f * (1.0 - f)
        da_g = dc * i * (1.0 - g**2)
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (N, 4H)
        grads["w_ci"] += np.sum(da_i * c_prev, axis=0)
        grads["w_cf"] += np.sum(da_f * c_prev, axis=0)
        grads["w_co"] += np.sum(da_o * c, axis=0)
        grads["W_ih"] += da.T @ x_t
        grads["W_hh"] += da.T @ h_prev
        grads["b"] += da.sum(axis=0)
        dx[:, t] = da @ params["W_ih"]
        dh_next = da @ params["W_hh"]
        dc_next = dc * f + da_i * params["w_ci"] + da_f * params["w_cf"]
    return {"x": dx, "h0": dh_next, "c0": dc_next, **grads}
