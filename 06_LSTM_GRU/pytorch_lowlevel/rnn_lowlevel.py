"""Vanilla RNN, LSTM and GRU from tensors and autograd (Level 2 of lesson 06).

Each cell is a few lines of matrix products and element-wise functions: the Elman RNN,
the LSTM of Hochreiter & Schmidhuber (1997) with the forget gate of Gers et al. (2000),
the GRU of Cho et al. (2014, eqs. 5-8) in the paper's form (``reset_after=False``) or
PyTorch's. A sequence is a Python loop over the cell; autograd does back-propagation
through time, which L1 writes by hand. Weights in PyTorch's layout (gate rows [i, f, g, o]
and [r, z, n]); sequences batch-first, x (N, T, D) -> hs (N, T, H). Clipping by the global
norm (Pascanu et al. 2013, Algorithm 1) is written here, Adam is lesson 02's ``adam_step``;
no nn layers, no F.linear, no torch.optim (``assert_level_purity`` enforces it). The
equations are in ../theory.md (sections 1-3); ``train.py`` beside this file trains on the
adding problem.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from utils import import_lesson

_mlp_lowlevel = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")  # its adam_step

PARAM_NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# --------------------------------------------------------------------------------------
# 1. Parameters
# --------------------------------------------------------------------------------------


def init_params(cell: str, input_size: int, hidden_size: int, *, seed: int = 0,
                dtype: torch.dtype = torch.float32, device="cpu") -> dict[str, torch.Tensor]:
    """PyTorch's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).

    Inputs: cell "rnn" | "lstm" | "gru"; sizes D and H. Returns {"W_ih": (G*H, D),
    "W_hh": (G*H, H), "b_ih": (G*H,), "b_hh": (G*H,)}, leaf tensors that require grad.
    """
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    G, H = GATES[cell], hidden_size
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(H)
    shapes = {"W_ih": (G * H, input_size), "W_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
    return {k: ((torch.rand(s, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
            .to(dtype=dtype, device=device).requires_grad_()
            for k, s in shapes.items()}


def _check(x: torch.Tensor, params: dict, G: int, state: dict[str, torch.Tensor | None]):
    """Validate x (N, T, D), the four parameters and the initial states; return N, T, H."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (N, T, D), got {got}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got {x.dtype}")
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise KeyError(f"params lacks {missing}; expected keys {list(PARAM_NAMES)}")
    N, T, D = x.shape
    if N < 1 or T < 1:
        raise ValueError(f"x needs at least one time step (N, T >= 1), got {tuple(x.shape)}")
    H = params["W_hh"].shape[1]
    expected = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
    for k, shape in expected.items():
        if tuple(params[k].shape) != shape:
            raise ValueError(f"params[{k!r}] must have shape {shape} for input size D={D}, "
                             f"hidden size H={H}, got {tuple(params[k].shape)}")
    for name, s in state.items():
        if s is not None and tuple(s.shape) != (N, H):
            raise ValueError(f"{name} must have shape (N, H) = ({N}, {H}), got {tuple(s.shape)}")
    return N, T, H


# --------------------------------------------------------------------------------------
# 2. One step of each cell: x_t (N, D), states (N, H)
# --------------------------------------------------------------------------------------


def rnn_cell(x_t, h, p):
    """h_t = tanh(x_t W_ih^T + b_ih + h W_hh^T + b_hh). Inputs (N, D), (N, H); returns (N, H)."""
    return torch.tanh(x_t @ p["W_ih"].t() + p["b_ih"] + h @ p["W_hh"].t() + p["b_hh"])


def lstm_cell(x_t, h, c, p):
    """One LSTM step. Inputs x_t (N, D), h, c (N, H). Returns (h_t, c_t), each (N, H)."""
    gates = x_t @ p["W_ih"].t() + p["b_ih"] + h @ p["W_hh"].t() + p["b_hh"]  # (N, 4H)
    i, f, g, o = gates.chunk(4, dim=1)  # each (N, H), PyTorch's row order
    i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
    c = f * c + i * g  # the cell: what to keep plus what to write
    h = o * torch.tanh(c)  # what to show
    return h, c


def gru_cell(x_t, h, p, reset_after: bool = False):
    """One GRU step, the paper's form (reset_after=False) or PyTorch's. Returns h_t (N, H)."""
    H = h.shape[1]
    W_hh, b_hh = p["W_hh"], p["b_hh"]
    gx = x_t @ p["W_ih"].t() + p["b_ih"]  # (N, 3H): [r, z, n] input parts
    gh_rz = h @ W_hh[: 2 * H].t() + b_hh[: 2 * H]  # (N, 2H): recurrent parts of r and z
    r = torch.sigmoid(gx[:, :H] + gh_rz[:, :H])  # reset gate, Cho et al. eq. 5
    z = torch.sigmoid(gx[:, H: 2 * H] + gh_rz[:, H:])  # update gate, eq. 6
    if reset_after:  # r scales the product W_hn h (one W_hh h for all gates on a GPU)
        n = torch.tanh(gx[:, 2 * H:] + r * (h @ W_hh[2 * H:].t() + b_hh[2 * H:]))
    else:  # the paper, eq. 8: r scales h before W_hn mixes it
        n = torch.tanh(gx[:, 2 * H:] + (r * h) @ W_hh[2 * H:].t() + b_hh[2 * H:])
    return (1 - z) * n + z * h  # eq. 7 (z weighs the OLD state, as in PyTorch)


# --------------------------------------------------------------------------------------
# 3. Whole sequences (batch-first)
# --------------------------------------------------------------------------------------


def rnn_forward(x: torch.Tensor, h0: torch.Tensor | None, params: dict):
    """Vanilla RNN over a sequence.

    Inputs: x (N, T, D); h0 (N, H) or None (zeros); params as ``init_params("rnn", ...)``.
    Returns: (hs (N, T, H) every hidden state, h_n (N, H) the last one).
    """
    N, T, H = _check(x, params, 1, {"h0": h0})
    h = x.new_zeros(N, H) if h0 is None else h0
    hs = []
    for x_t in x.unbind(1):  # unbind, not x[:, t]: its backward stacks once
        h = rnn_cell(x_t, h, params)
        hs.append(h)
    return torch.stack(hs, dim=1), h


def lstm_forward(x: torch.Tensor, h0: torch.Tensor | None, c0: torch.Tensor | None,
                 params: dict):
    """LSTM over a sequence.

    Inputs: x (N, T, D); h0, c0 (N, H) or None (zeros); params with 4H rows [i, f, g, o].
    Returns: (hs (N, T, H), (h_n, c_n) each (N, H)).
    """
    N, T, H = _check(x, params, 4, {"h0": h0, "c0": c0})
    h = x.new_zeros(N, H) if h0 is None else h0
    c = x.new_zeros(N, H) if c0 is None else c0
    hs = []
    for x_t in x.unbind(1):
        h, c = lstm_cell(x_t, h, c, params)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)


def gru_forward(x: torch.Tensor, h0: torch.Tensor | None, params: dict,
                reset_after: bool = False):
    """GRU over a sequence.

    Inputs: x (N, T, D); h0 (N, H) or None; params with 3H rows [r, z, n];
        reset_after: False = Cho et al. 2014 (the paper), True = PyTorch's nn.GRU.
    Returns: (hs (N, T, H), h_n (N, H)).
    """
    N, T, H = _check(x, params, 3, {"h0": h0})
    h = x.new_zeros(N, H) if h0 is None else h0
    hs = []
    for x_t in x.unbind(1):
        h = gru_cell(x_t, h, params, reset_after)
        hs.append(h)
    return torch.stack(hs, dim=1), h


class _Layer:
    """Parameter holder + forward for one recurrent layer (what L1's classes are at L2).

    ``params``: {"W_ih", "W_hh", "b_ih", "b_hh"} leaf tensors with requires_grad; after a
    forward, ``h_n`` (and ``c_n``) hold the final state.
    """

    cell = "rnn"

    def __init__(self, input_size: int, hidden_size: int, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device="cpu"):
        self.input_size, self.hidden_size = input_size, hidden_size
        self.params = init_params(self.cell, input_size, hidden_size, seed=seed, dtype=dtype,
                                  device=device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.params[k] for k in PARAM_NAMES]

    def __call__(self, x, *args, **kwargs):
        return self.forward(x, *args, **kwargs)


class RNN(_Layer):
    """Vanilla RNN layer. forward(x (N, T, D), h0=None) -> hs (N, T, H); sets .h_n."""

    cell = "rnn"

    def forward(self, x, h0=None):
        hs, self.h_n = rnn_forward(x, h0, self.params)
        return hs


class LSTM(_Layer):
    """LSTM layer. forward(x (N, T, D), h0=None, c0=None) -> hs (N, T, H); sets .h_n, .c_n."""

    cell = "lstm"

    def forward(self, x, h0=None, c0=None):
        hs, (self.h_n, self.c_n) = lstm_forward(x, h0, c0, self.params)
        return hs


class GRU(_Layer):
    """GRU layer; ``reset_after=False`` is the paper's form. forward(x, h0=None) -> hs."""

    cell = "gru"

    def __init__(self, input_size: int, hidden_size: int, *, reset_after: bool = False,
                 seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__(input_size, hidden_size, seed=seed, dtype=dtype, device=device)
        self.reset_after = reset_after

    def forward(self, x, h0=None):
        hs, self.h_n = gru_forward(x, h0, self.params, self.reset_after)
        return hs


# --------------------------------------------------------------------------------------
# 4. Gradient clipping by the global norm, and the Adam step
# --------------------------------------------------------------------------------------


def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

        total = sqrt(sum_p ||p.grad||^2);  if total > max_norm: g <- g * max_norm / (total + 1e-6)

    (torch.nn.utils.clip_grad_norm_'s formula; the 1e-6 guards a zero norm, and the scale
    is applied only when it is below 1.) The direction of the update is kept, only its
    length is bounded: one exploding step cannot throw the weights far away.

    Inputs: params with .grad (None grads are skipped); max_norm > 0.
    Returns: the total norm BEFORE clipping, a 0-d tensor.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g.detach().mul_(scale)
    return total


# The Adam step (Kingma & Ba 2015, Algorithm 1, as torch.optim.Adam computes it) is lesson
# 02's, written there as a function of tensors and checked against torch.optim.Adam.
adam_step, zero_grad = _mlp_lowlevel.adam_step, _mlp_lowlevel.zero_grad


# --------------------------------------------------------------------------------------
# 5. The adding problem: recurrent layer + linear read-out of the last state
# --------------------------------------------------------------------------------------


class AddingRegressor:
    """y_hat = h_T w + b on top of an RNN / LSTM / GRU layer. x (N, T, 2) -> (N,)."""

    def __init__(self, cell: str = "lstm", hidden_size: int = 32, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        layer_cls = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[cell]
        self.layer = layer_cls(2, hidden_size, seed=seed, dtype=dtype)
        if cell == "lstm":  # forget-gate bias 1 (Gers et al. 2000): keep the cell by default
            with torch.no_grad():
                self.layer.params["b_ih"][hidden_size: 2 * hidden_size] = 1.0
        gen = torch.Generator().manual_seed(seed + 1)
        bound = 1.0 / math.sqrt(hidden_size)
        self.w = ((torch.rand(hidden_size, generator=gen, dtype=dtype) * 2 - 1) * bound)
        self.b = torch.zeros((), dtype=dtype)
        self.w.requires_grad_()
        self.b.requires_grad_()

    def parameters(self) -> list[torch.Tensor]:
        return [*self.layer.parameters(), self.w, self.b]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        hs = self.layer(x)  # (N, T, H)
        return hs[:, -1] @ self.w + self.b  # (N,)

