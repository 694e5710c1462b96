"""Recurrent networks from scratch in NumPy: RNN, LSTM, GRU and backpropagation through time.

The vanilla (Elman 1990) RNN; the LSTM of Hochreiter & Schmidhuber (1997) with the forget
gate of Gers et al. (2000), PyTorch's form; the GRU of Cho et al. (2014, eqs. 5-8) in the
paper's form (``reset_after=False``) and PyTorch's. Weights in PyTorch's layout (gate rows
[i, f, g, o] and [r, z, n]), so they copy into nn.RNN / nn.LSTM / nn.GRU. Each cell's step
has its hand-written backward pass; the layers run BPTT (Werbos 1990) with the input
products of all steps as one matrix product; ``clip_grad_norm`` follows Pascanu et al.
(2013). Reading order: the cells one step at a time (RNN, LSTM, GRU), the layers ``RNN``,
``LSTM``, ``GRU``, ``clip_grad_norm``, ``SequenceRegressor``. The equations, BPTT, the
vanishing gradient and the constant error carousel are in ../theory.md (sections 1-3, 6);
``train.py`` beside this file trains on the adding problem and draws ||dL/dh_t||.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from utils import import_lesson

# Lesson 02's dense layer (y = x W + b, W stored (in, out)) reads out the last hidden state,
# its Adam optimiser (torch.optim.Adam's rule) trains every parameter, and its checks of
# sizes and dtypes guard the layers' constructors.
mlp = import_lesson("02_MLP.numpy.mlp_numpy")
_check_positive_int, _check_float_dtype = mlp._check_positive_int, mlp._check_float_dtype


# ---------------------------------------------------------------------------
# Helpers: the gates' activation, the gate blocks
# ---------------------------------------------------------------------------


def sigmoid(a: np.ndarray) -> np.ndarray:
    """sigmoid(a) = 1 / (1 + e^-a) = (1 + tanh(a / 2)) / 2, computed by the second form.

    The tanh form never overflows (e^-a does for a < -88 in float32), costs one
    transcendental function, and works in place on a fresh array; it equals the first
    form to rounding. sigmoid' = sigmoid (1 - sigmoid), used by every gate below.

    Inputs: a (any shape) float. Returns: array of a's shape and dtype, in [0, 1].
    """
    out = np.multiply(a, 0.5)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def _split(a: np.ndarray, parts: int) -> list[np.ndarray]:
    """Views of the ``parts`` gate blocks of a (N, parts*H) array: [a[:, :H], a[:, H:2H], ...]."""
    h = a.shape[-1] // parts
    return [a[..., k * h:(k + 1) * h] for k in range(parts)]


# ---------------------------------------------------------------------------
# One step of each cell, forward and backward.
#
# Each step takes  a_x = W_ih x_t + b_ih (+ the parts of b_hh that can be added early),
# the input's contribution, already computed for all steps at once by the layer. The
# backward steps return the gradient w.r.t. the step's pre-activations, from which the
# layer gets every weight gradient with one matrix product over all steps.
# ---------------------------------------------------------------------------


def rnn_step(a_x: np.ndarray, h_prev: np.ndarray, W_hh: np.ndarray):
    """One vanilla RNN step: h_t = tanh(a_x + h_{t-1} W_hh^T).

    Inputs:  a_x (N, H) = x_t W_ih^T + b_ih + b_hh; h_prev (N, H); W_hh (H, H).
    Returns: (h (N, H), cache) where cache = h (tanh' = 1 - tanh^2 needs only the output).
    """
    h = np.tanh(a_x + h_prev @ W_hh.T)  # (N, H)
    return h, h


def rnn_step_backward(dh: np.ndarray, cache) -> np.ndarray:
    """Backward of one RNN step. Inputs: dh = dL/dh_t (N, H); cache from ``rnn_step``.

    Returns: da = dL/da_t (N, H), a_t the pre-activation; then dL/dh_{t-1} = da W_hh,
    dL/dx_t = da W_ih, dL/dW_hh += da^T h_{t-1}, dL/dW_ih += da^T x_t, db_ih += sum da.
    """
    h = cache
    return dh * (1.0 - h * h)  # tanh'(a) = 1 - tanh(a)^2


def lstm_step(a_x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, W_hh: np.ndarray):
    """One LSTM step (module docstring).

    Inputs:  a_x (N, 4H) = x_t W_ih^T + b_ih + b_hh, gate blocks [i, f, g, o];
             h_prev, c_prev (N, H); W_hh (4H, H).
    Returns: (h (N, H), c (N, H), cache = (gates (N, 4H) after their non-linearities,
             c_prev, tanh(c))).
    """
    H = h_prev.shape[1]
    a = a_x + h_prev @ W_hh.T  # (N, 4H) pre-activations of the four gates
    gates = sigmoid(a)  # i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o) ...
    i, f, g, o = _split(gates, 4)
    np.tanh(a[:, 2 * H:3 * H], out=g)  # ... and the candidate g = tanh(a_g)
    c = f * c_prev + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
    tanh_c = np.tanh(c)
    h = o * tanh_c  # h_t = o_t * tanh(c_t)
    return h, c, (gates, c_prev, tanh_c)


def lstm_step_backward(dh: np.ndarray, dc_next: np.ndarray, cache):
    """Backward of one LSTM step.

    Inputs:  dh = dL/dh_t (N, H), everything that reaches h_t (the loss at t and step t+1);
             dc_next = the part of dL/dc_t that comes from step t+1, f_{t+1} * dL/dc_{t+1};
             cache from ``lstm_step``.
    Returns: (da (N, 4H) = dL/d(pre-activations) [a_i, a_f, a_g, a_o],
              dc_prev (N, H) = f_t * dL/dc_t, the carousel's share for step t-1).
    """
    gates, c_prev, tanh_c = cache
    i, f, g, o = _split(gates, 4)
    do = dh * tanh_c  # h = o * tanh(c)  ->  dL/do = dh * tanh(c)
    dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)  # dL/dc_t: carousel + path through h_t
    da = np.empty_like(gates)
    da_i, da_f, da_g, da_o = _split(da, 4)
    np.multiply(dc * g, i * (1.0 - i), out=da_i)  # c = f c_prev + i g: dL/di = dc g; sigmoid'
    np.multiply(dc * c_prev, f * (1.0 - f), out=da_f)  # dL/df = dc * c_{t-1}
    np.multiply(dc * i, 1.0 - g * g, out=da_g)  # dL/dg = dc * i; tanh' = 1 - g^2
    np.multiply(do, o * (1.0 - o), out=da_o)  # dL/da_o = do * o (1 - o)
    return da, dc * f  # dL/dc_{t-1} (direct part) = f_t * dL/dc_t: no matrix, no squashing


def gru_step(a_x: np.ndarray, h_prev: np.ndarray, W_hh: np.ndarray, b_hn: np.ndarray,
             reset_after: bool):
    """One GRU step (module docstring), either form of the candidate n_t.

    Inputs:  a_x (N, 3H) = x_t W_ih^T + b_ih + [b_hr, b_hz, 0 or b_hn], blocks [r, z, n]:
             the recurrent bias of n is folded in early only when reset_after=False (with
             reset_after=True, r multiplies it, so it is ``b_hn`` here);
             h_prev (N, H); W_hh (3H, H); b_hn (H,); reset_after - the form of n_t.
    Returns: (h (N, H), cache = (r, z, n, u)) with u = W_hn h_{t-1} + b_hn (reset_after) or
             u = r * h_{t-1} (reset_after=False): what the backward pass needs.
    """
    H = h_prev.shape[1]
    ax_n = a_x[:, 2 * H:]  # the candidate's input part
    if reset_after:
        ah = h_prev @ W_hh.T  # (N, 3H): ONE matmul of h_{t-1} for all three blocks
        rz = sigmoid(a_x[:, :2 * H] + ah[:, :2 * H])  # [r, z]
        r, z = _split(rz, 2)
        u = ah[:, 2 * H:] + b_hn  # W_hn h_{t-1} + b_hn
        n = np.tanh(ax_n + r * u)  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    else:
        rz = sigmoid(a_x[:, :2 * H] + h_prev @ W_hh[:2 * H].T)  # [r, z]
        r, z = _split(rz, 2)
        u = r * h_prev  # the reset gate acts on h BEFORE the matmul (Cho et al. eq. 8)
        n = np.tanh(ax_n + u @ W_hh[2 * H:].T)  # n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    h = n + z * (h_prev - n)  # h = (1 - z) n + z h_{t-1}
    return h, (r, z, n, u)


def gru_step_backward(dh: np.ndarray, h_prev: np.ndarray, cache, W_hh: np.ndarray,
                      reset_after: bool):
    """Backward of one GRU step.

    Inputs:  dh = dL/dh_t (N, H); h_prev (N, H); cache from ``gru_step``; W_hh (3H, H).
    Returns: (da_x (N, 3H): dL/d(W_ih x_t + b_ih), blocks [r, z, n];
              da_h (N, 3H): dL/d(the recurrent matmul's output) - its blocks multiply
                  h_{t-1} for r, z (and for n with reset_after), u = r * h_{t-1} for n
                  without it; dL/db_hh is its sum over the batch;
              dh_prev (N, H): dL/dh_{t-1} through all of this step's paths).
    """
    r, z, n, u = cache
    H = h_prev.shape[1]
    dn = dh * (1.0 - z)  # h = (1 - z) n + z h_prev
    dz = dh * (h_prev - n)
    da_x = np.empty((dh.shape[0], 3 * H), dtype=dh.dtype)
    da_r, da_z, da_n = _split(da_x, 3)
    np.multiply(dn, 1.0 - n * n, out=da_n)  # tanh'
    np.multiply(dz, z * (1.0 - z), out=da_z)  # sigmoid'
    if reset_after:
        # n = tanh(ax_n + r * u), u = W_hn h + b_hn: dr = da_n * u, du = da_n * r
        np.multiply(da_n * u, r * (1.0 - r), out=da_r)
        da_h = da_x.copy()
        da_h[:, 2 * H:] *= r  # the n block reaches W_hn h through r
        dh_prev = dh * z + da_h @ W_hh  # (N, 3H) @ (3H, H)
    else:
        # n = tanh(ax_n + W_hn u + b_hn), u = r * h_prev: du = da_n W_hn
        du = da_n @ W_hh[2 * H:]  # (N, H) @ (H, H)
        np.multiply(du * h_prev, r * (1.0 - r), out=da_r)
        da_h = da_x
        dh_prev = dh * z + du * r + da_x[:, :2 * H] @ W_hh[:2 * H]
    return da_x, da_h, dh_prev


# ---------------------------------------------------------------------------
# The sequence layers
# ---------------------------------------------------------------------------


# The layers' input checks, done once at their door (forward / backward)


def _as_float(a, dtype: np.dtype, where: str) -> np.ndarray:
    """``a`` as an ndarray of ``dtype`` (the layer's), or a TypeError for non-numbers."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{where} must hold real numbers; got dtype {a.dtype}")
    return a.astype(dtype, copy=False)


def _check_state(state, n: int, hidden: int, dtype: np.dtype, name: str) -> np.ndarray:
    """An initial state (N, H) of the layer's dtype: zeros for None, else checked."""
    if state is None:
        return np.zeros((n, hidden), dtype=dtype)
    state = _as_float(state, dtype, name)
    if state.shape != (n, hidden):
        raise ValueError(f"{name} must have shape (N, hidden_size) = ({n}, {hidden}) for "
                         f"this batch; got {state.shape}")
    return state


class _Recurrent:
    """What RNN, LSTM and GRU share: PyTorch's weight layout and init, and input checks.

    params: W_ih (G*H, D), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,), G = 1 (RNN), 4 (LSTM),
    3 (GRU); all drawn from U(-1/sqrt(H), 1/sqrt(H)) as torch.nn.RNN/LSTM/GRU do.
    grads: same keys and shapes, overwritten (not accumulated) by ``backward``.
    """

    num_gates = 1
    has_cell = False

    def __init__(self, input_size: int, hidden_size: int, *, seed=0, dtype=np.float64):
        self.input_size = _check_positive_int(input_size, "input_size")
        self.hidden_size = _check_positive_int(hidden_size, "hidden_size")
        self.dtype = _check_float_dtype(dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        G, H, D = self.num_gates, self.hidden_size, self.input_size
        shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
        self.params = {name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                       for name, shape in shapes.items()}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.training = True
        self._cache = None
        self.h_n = self.c_n = self.dh0 = self.dc0 = None
        self.dh_per_step = None  # (N, T, H) dL/dh_t from the last backward (for plots)

    def num_params(self) -> int:
        """Number of trainable numbers in this layer."""
        return int(sum(p.size for p in self.params.values()))

    def __call__(self, x, *args):
        return self.forward(x, *args)

    def _check_input(self, x) -> np.ndarray:
        """x as a (N, T, D) array of the layer's dtype, time-major copy (T, N, D) returned."""
        x = _as_float(x, self.dtype, f"{type(self).__name__} input x")
        if x.ndim != 3 or x.shape[2] != self.input_size:
            hint = " (add a batch axis: x[None])" if x.ndim == 2 else ""
            raise ValueError(f"{type(self).__name__} expects x of shape (N, T, input_size="
                             f"{self.input_size}), batch first; got {x.shape}{hint}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x needs at least one sequence and one time step; got {x.shape}")
        return np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, D): step t is x_tm[t]

    def _input_projection(self, x_tm: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """W_ih x_t + bias for ALL steps in one matrix product. Returns (T, N, G*H)."""
        T, N, D = x_tm.shape
        a_x = x_tm.reshape(T * N, D) @ self.params["W_ih"].T  # (T*N, D) @ (D, G*H)
        a_x += bias
        return a_x.reshape(T, N, -1)  # (T, N, G*H)

    def _check_backward(self, dhs, extra: dict):
        """The forward cache and dhs (N, T, H) as a time-major view (T, N, H)."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run "
                               "forward(x) first (backward uses what it cached)")
        T, N = self._cache["x_tm"].shape[:2]
        dhs = _as_float(dhs, self.dtype, "dhs")
        if dhs.shape != (N, T, self.hidden_size):
            raise ValueError(f"{type(self).__name__}.backward expects dhs of the outputs' shape "
                             f"(N, T, H) = {(N, T, self.hidden_size)}; got {dhs.shape}")
        states = {name: _check_state(value, N, self.hidden_size, self.dtype, name)
                  for name, value in extra.items()}
        return dhs.transpose(1, 0, 2), states  # (T, N, H) view

    def _weight_gradients(self, da_x: np.ndarray, da_h: np.ndarray, h_in: np.ndarray) -> None:
        """Every weight gradient with one matrix product over the T*N stacked steps.

        Inputs:  da_x (T, N, G*H) = dL/d(W_ih x_t + b_ih); da_h (T, N, G*H) =
                 dL/d(W_hh h_in_t + b_hh); h_in (T, N, H), what W_hh multiplied at each step.
        """
        T, N, GH = da_x.shape
        x2 = self._cache["x_tm"].reshape(T * N, self.input_size)
        dax2, dah2 = da_x.reshape(T * N, GH), da_h.reshape(T * N, GH)
        self.grads["W_ih"][...] = dax2.T @ x2  # sum_t da_t^T x_t: (GH, T*N) @ (T*N, D)
        self.grads["b_ih"][...] = dax2.sum(axis=0)
        self.grads["W_hh"][...] = dah2.T @ h_in.reshape(T * N, self.hidden_size)  # sum_t
        self.grads["b_hh"][...] = dah2.sum(axis=0)

    def _input_gradient(self, da_x: np.ndarray) -> np.ndarray:
        """dL/dx for all steps at once: (T*N, G*H) @ (G*H, D), back to batch first (N, T, D)."""
        T, N, GH = da_x.shape
        dx = da_x.reshape(T * N, GH) @ self.params["W_ih"]  # (T*N, D)
        return np.ascontiguousarray(dx.reshape(T, N, self.input_size).transpose(1, 0, 2))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, dtype={self.dtype})"


class RNN(_Recurrent):
    """Vanilla (Elman) RNN layer, tanh: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

    Same weights and numbers as ``torch.nn.RNN(D, H, batch_first=True)``.
    Inputs (constructor): input_size D, hidden_size H; seed - int or Generator for the
    U(-1/sqrt(H), 1/sqrt(H)) initialisation; dtype - float32 or float64.
    """

    num_gates = 1

    def forward(self, x, h0=None) -> np.ndarray:
        """Inputs:  x (N, T, D); h0 (N, H) or None (zeros). Any float dtype; computed in the
                 layer's dtype.
        Returns: hs (N, T, H), h_t for every t; also sets ``self.h_n`` (N, H) = h_T.
        """
        x_tm = self._check_input(x)
        T, N, _ = x_tm.shape
        H, W_hh = self.hidden_size, self.params["W_hh"]
        h = _check_state(h0, N, H, self.dtype, "h0")
        # both biases join the input projection: they are added at every step anyway
        a_x = self._input_projection(x_tm, self.params["b_ih"] + self.params["b_hh"])
        hs = np.empty((T + 1, N, H), dtype=self.dtype)  # hs[0] = h0, hs[t] = h_t
        hs[0] = h
        for t in range(T):
            hs[t + 1], _ = rnn_step(a_x[t], hs[t], W_hh)
        self._cache = {"x_tm": x_tm, "hs": hs}
        self.h_n = hs[T].copy()
        return np.ascontiguousarray(hs[1:].transpose(1, 0, 2))  # (N, T, H)

    def backward(self, dhs, dh_n=None) -> np.ndarray:
        """Backpropagation through time.

        Inputs:  dhs (N, T, H) = dL/dhs from the outputs; dh_n (N, H) = dL/dh_n or None.
        Returns: dx (N, T, D); fills ``grads`` and ``self.dh0`` (N, H) = dL/dh0, and
                 ``self.dh_per_step`` (N, T, H) = the total dL/dh_t.
        """
        dhs_tm, states = self._check_backward(dhs, {"dh_n": dh_n})
        hs, W_hh = self._cache["hs"], self.params["W_hh"]
        T = dhs_tm.shape[0]
        da = np.empty((T,) + hs.shape[1:], dtype=self.dtype)  # (T, N, H)
        dh_total = np.empty_like(da)
        dh_next = states["dh_n"]  # dL/dh_T from after the sequence (h_n) ...
        for t in reversed(range(T)):
            dh = dhs_tm[t] + dh_next  # ... dL/dh_t = output at t + (step t+1's path)
            dh_total[t] = dh
            da[t] = rnn_step_backward(dh, hs[t + 1])
            dh_next = da[t] @ W_hh  # dL/dh_{t-1} = da_t W_hh: (N, H) @ (H, H)
        self.dh0 = dh_next
        self.dh_per_step = dh_total.transpose(1, 0, 2)
        self._weight_gradients(da, da, hs[:-1])
        return self._input_gradient(da)


class LSTM(_Recurrent):
    """LSTM layer (module docstring), the numbers of ``torch.nn.LSTM(D, H, batch_first=True)``.

    Gate blocks of W_ih (4H, D), W_hh (4H, H), b_ih, b_hh in PyTorch's order [i, f, g, o].
    Inputs (constructor): input_size D, hidden_size H, seed, dtype (as ``RNN``).
    """

    num_gates = 4
    has_cell = True

    def forward(self, x, h0=None, c0=None) -> np.ndarray:
        """Inputs:  x (N, T, D); h0, c0 (N, H) or None (zeros).
        Returns: hs (N, T, H); also sets ``self.h_n`` and ``self.c_n`` (N, H).
        """
        x_tm = self._check_input(x)
        T, N, _ = x_tm.shape
        H, W_hh = self.hidden_size, self.params["W_hh"]
        h = _check_state(h0, N, H, self.dtype, "h0")
        c = _check_state(c0, N, H, self.dtype, "c0")
        a_x = self._input_projection(x_tm, self.params["b_ih"] + self.params["b_hh"])
        hs = np.empty((T + 1, N, H), dtype=self.dtype)  # hs[0] = h0
        hs[0] = h
        steps = []
        for t in range(T):
            hs[t + 1], c, cache = lstm_step(a_x[t], hs[t], c, W_hh)
            steps.append(cache)
        self._cache = {"x_tm": x_tm, "hs": hs, "steps": steps}
        self.h_n, self.c_n = hs[T].copy(), c
        return np.ascontiguousarray(hs[1:].transpose(1, 0, 2))  # (N, T, H)

    def backward(self, dhs, dh_n=None, dc_n=None) -> np.ndarray:
        """Backpropagation through time, with the cell's constant error carousel.

        Inputs:  dhs (N, T, H); dh_n, dc_n (N, H) = dL/dh_n, dL/dc_n, or None (zeros).
        Returns: dx (N, T, D); fills ``grads``, ``self.dh0``, ``self.dc0`` (N, H) and
                 ``self.dh_per_step`` (N, T, H).
        """
        dhs_tm, states = self._check_backward(dhs, {"dh_n": dh_n, "dc_n": dc_n})
        hs, steps, W_hh = self._cache["hs"], self._cache["steps"], self.params["W_hh"]
        T = dhs_tm.shape[0]
        da = np.empty((T, hs.shape[1], 4 * self.hidden_size), dtype=self.dtype)
        dh_total = np.empty((T,) + hs.shape[1:], dtype=self.dtype)
        dh_next, dc_next = states["dh_n"], states["dc_n"]
        for t in reversed(range(T)):
            dh = dhs_tm[t] + dh_next  # dL/dh_t = dL_t/dh_t + da_{t+1} W_hh
            dh_total[t] = dh
            # dL/dc_t = f_{t+1} dL/dc_{t+1} (dc_next) + dh_t o_t tanh'(c_t), inside the step
            da[t], dc_next = lstm_step_backward(dh, dc_next, steps[t])
            dh_next = da[t] @ W_hh  # (N, 4H) @ (4H, H): all four gates' paths to h_{t-1}
        self.dh0, self.dc0 = dh_next, dc_next
        self.dh_per_step = dh_total.transpose(1, 0, 2)
        self._weight_gradients(da, da, hs[:-1])
        return self._input_gradient(da)


class GRU(_Recurrent):
    """GRU layer (module docstring), gate blocks [r, z, n].

    reset_after=False (default): Cho et al. (2014, eq. 8), n = tanh(W_in x + b_in +
    W_hn (r * h) + b_hn). reset_after=True: PyTorch's / cuDNN's form, n = tanh(W_in x + b_in
    + r * (W_hn h + b_hn)), the numbers of ``torch.nn.GRU(D, H, batch_first=True)``. The
    two differ only in where r is applied; the weights have the same shapes.
    Inputs (constructor): input_size, hidden_size, reset_after, seed, dtype.
    """

    num_gates = 3

    def __init__(self, input_size: int, hidden_size: int, *, reset_after: bool = False, seed=0,
                 dtype=np.float64):
        if not isinstance(reset_after, (bool, np.bool_)):
            raise TypeError(f"reset_after must be True or False, got {reset_after!r}")
        super().__init__(input_size, hidden_size, seed=seed, dtype=dtype)
        self.reset_after = bool(reset_after)

    def forward(self, x, h0=None) -> np.ndarray:
        """Inputs:  x (N, T, D); h0 (N, H) or None (zeros).
        Returns: hs (N, T, H); also sets ``self.h_n`` (N, H).
        """
        x_tm = self._check_input(x)
        T, N, _ = x_tm.shape
        H, W_hh, b_hh = self.hidden_size, self.params["W_hh"], self.params["b_hh"]
        h = _check_state(h0, N, H, self.dtype, "h0")
        # b_hr, b_hz always join the input projection; b_hn only when r does not multiply it
        early_b_hh = b_hh.copy()
        if self.reset_after:
            early_b_hh[2 * H:] = 0
        a_x = self._input_projection(x_tm, self.params["b_ih"] + early_b_hh)
        hs = np.empty((T + 1, N, H), dtype=self.dtype)
        hs[0] = h
        steps = []
        for t in range(T):
            hs[t + 1], cache = gru_step(a_x[t], hs[t], W_hh, b_hh[2 * H:], self.reset_after)
            steps.append(cache)
        self._cache = {"x_tm": x_tm, "hs": hs, "steps": steps}
        self.h_n = hs[T].copy()
        return np.ascontiguousarray(hs[1:].transpose(1, 0, 2))

    def backward(self, dhs, dh_n=None) -> np.ndarray:
        """Backpropagation through time. Inputs: dhs (N, T, H); dh_n (N, H) or None.
        Returns: dx (N, T, D); fills ``grads``, ``self.dh0``, ``self.dh_per_step``.
        """
        dhs_tm, states = self._check_backward(dhs, {"dh_n": dh_n})
        hs, steps, W_hh = self._cache["hs"], self._cache["steps"], self.params["W_hh"]
        T, N, H = dhs_tm.shape[0], hs.shape[1], self.hidden_size
        da_x = np.empty((T, N, 3 * H), dtype=self.dtype)
        da_h = np.empty_like(da_x)
        dh_total = np.empty((T, N, H), dtype=self.dtype)
        dh_next = states["dh_n"]
        for t in reversed(range(T)):
            dh = dhs_tm[t] + dh_next
            dh_total[t] = dh
            da_x[t], da_h[t], dh_next = gru_step_backward(dh, hs[t], steps[t], W_hh,
                                                          self.reset_after)
        self.dh0 = dh_next
        self.dh_per_step = dh_total.transpose(1, 0, 2)
        if self.reset_after:  # W_hh multiplied h_{t-1} in all three blocks
            self._weight_gradients(da_x, da_h, hs[:-1])
        else:  # the n block multiplied u_t = r_t * h_{t-1}: two products
            self._weight_gradients(da_x, da_h, hs[:-1])  # right for r, z; n's rows redone:
            u = np.stack([cache[3] for cache in steps]).reshape(T * N, H)  # (T*N, H)
            da_n = da_h[:, :, 2 * H:].reshape(T * N, H)
            self.grads["W_hh"][2 * H:] = da_n.T @ u  # sum_t da_n,t^T (r_t * h_{t-1})
        return self._input_gradient(da_x)

    def __repr__(self) -> str:
        return (f"GRU({self.input_size}, {self.hidden_size}, reset_after={self.reset_after}, "
                f"dtype={self.dtype})")


CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


# ---------------------------------------------------------------------------
# Gradient clipping by global norm
# ---------------------------------------------------------------------------


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale all gradients together so that their joint 2-norm is at most ``max_norm``.

        total = sqrt(sum over every gradient array g of sum(g^2))
        scale = max_norm / (total + 1e-6);   if scale < 1: every g *= scale   (in place)

    This is ``torch.nn.utils.clip_grad_norm_`` (2-norm); the 1e-6 keeps the division
    finite. Clipping the joint norm keeps the gradient's DIRECTION, unlike clipping each
    value (Pascanu, Mikolov & Bengio 2013, section 3.2).

    Inputs:  grads - a dict name -> ndarray (a layer's ``grads``) or a list of such dicts;
             max_norm >= 0.
    Returns: the total norm BEFORE clipping, as a Python float.
    """
    if isinstance(grads, Mapping):
        grads = [grads]
    if not isinstance(grads, (list, tuple)) or not all(isinstance(g, Mapping) for g in grads):
        raise TypeError("clip_grad_norm expects a dict of gradient arrays or a list of dicts")
    if not np.isfinite(max_norm) or max_norm < 0:
        raise ValueError(f"max_norm must be a finite number >= 0, got {max_norm!r}")
    arrays = [g for d in grads for g in d.values()]
    total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in arrays)))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in arrays:
            g *= scale
    return total


# ---------------------------------------------------------------------------
# The model for the tasks: a recurrent layer and a linear read-out of the last state
# ---------------------------------------------------------------------------


def mse_loss(prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements, and its gradient (``F.mse_loss``'s value).

        L = 1/M sum_m (p_m - y_m)^2          dL/dp = 2 (p - y) / M

    (Lesson 01's ``mse_loss`` halves this and averages over rows only; the adding problem's
    baseline, 1/6, is quoted for the plain mean.)
    Inputs:  prediction, target - arrays of the same shape. Returns: (L, dL/dprediction).
    """
    prediction, target = np.asarray(prediction), np.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(f"mse_loss: prediction {prediction.shape} and target {target.shape} "
                         "must have the same shape")
    residual = prediction - target
    return float(np.mean(residual**2)), (2.0 / residual.size) * residual


class SequenceRegressor:
    """A recurrent layer, then a linear read-out of its last hidden state: y = h_T W + b.

    params / grads: the recurrent layer's under "rnn.<name>", the read-out's (lesson 02's
    ``Linear``, W (H, out)) under "head.W", "head.b"; built on access (as lesson 02's
    Sequential), holding the layers' own arrays, so lesson 02's optimisers update them.

    For classification, take output_size = K classes and train the logits with lesson 02's
    ``SoftmaxCrossEntropy`` instead of ``mse_loss``; nothing else changes.

    Inputs (constructor): cell - "rnn", "lstm" or "gru"; input_size, hidden_size,
    output_size; reset_after (GRU only); seed; dtype.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int = 1, *,
                 reset_after: bool = False, seed: int = 0, dtype=np.float64):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}: expected one of {sorted(CELLS)}")
        kwargs = {"reset_after": reset_after} if cell == "gru" else {}
        self.cell = cell
        self.rnn = CELLS[cell](input_size, hidden_size, seed=seed, dtype=dtype, **kwargs)
        self.head = mlp.Linear(hidden_size, output_size, init="xavier", rng=seed + 1,
                               dtype=dtype)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {**{f"rnn.{k}": v for k, v in self.rnn.params.items()},
                **{f"head.{k}": v for k, v in self.head.params.items()}}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {**{f"rnn.{k}": v for k, v in self.rnn.grads.items()},
                **{f"head.{k}": v for k, v in self.head.grads.items()}}

    def forward(self, x) -> np.ndarray:
        """Inputs: x (N, T, D). Returns: (N, output_size) = h_T W + b."""
        hs = self.rnn.forward(x)  # (N, T, H)
        self._hs_shape = hs.shape
        return self.head.forward(hs[:, -1])  # (N, H) -> (N, out)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (N, output_size). Returns: dx (N, T, D); fills every gradient."""
        dh_last = self.head.backward(dy)  # (N, H)
        dhs = np.zeros(self._hs_shape, dtype=dh_last.dtype)
        dhs[:, -1] = dh_last  # only the last step is read out
        return self.rnn.backward(dhs)

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

