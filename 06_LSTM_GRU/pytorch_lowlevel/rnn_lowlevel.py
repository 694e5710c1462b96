"""Vanilla RNN, LSTM and GRU from tensors and autograd (Level 2 of lesson 06).

Each cell is a few lines of matrix products and element-wise functions; a sequence is a
Python loop that applies the cell step after step and keeps the hidden states. Autograd
then does back-propagation through time (BPTT) for us: the backward pass walks the same
loop in reverse, which is exactly what L1 writes by hand.

Weight layout = PyTorch's (so the tests can copy weights into nn.RNN / nn.LSTM / nn.GRU):
for hidden size H and input size D, ``W_ih`` (G*H, D), ``W_hh`` (G*H, H), ``b_ih`` and ``b_hh``
(G*H,), with G = 1 (RNN), 4 (LSTM, rows [i, f, g, o]) or 3 (GRU, rows [r, z, n])::

    RNN   h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    LSTM  [i f g o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh              (N, 4H)
          i, f, o = sigmoid(.), g = tanh(.)
          c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)      (Hochreiter & Schmidhuber
          1997; the forget gate f from Gers et al. 2000)
    GRU   r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr),  z likewise        (Cho et al. 2014)
          reset_after=False (the paper, eq. 8):  n = tanh(x W_in^T + b_in + (r * h) W_hn^T + b_hn)
          reset_after=True  (PyTorch, cuDNN):    n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
          h_t = (1 - z) * n + z * h_{t-1}

Sequences are batch-first: x (N, T, D) -> hs (N, T, H). Training needs two more pieces,
both written out here: clipping the gradients by their global norm (Pascanu et al. 2013,
"On the difficulty of training recurrent neural networks", Algorithm 1), because a
recurrent network's gradient occasionally explodes; and the Adam step (Kingma & Ba 2015).
No nn layers, no F.linear, no torch.optim: a test (``assert_level_purity``) enforces it.

Run it from the repository root (the adding problem, Hochreiter & Schmidhuber 1997)::

    python 06_LSTM_GRU/pytorch_lowlevel/rnn_lowlevel.py
    python 06_LSTM_GRU/pytorch_lowlevel/rnn_lowlevel.py --cell gru --seq-len 50 --steps 800
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterable, Sequence

import torch

from utils.cli import (
    add_common_args,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import make_adding_problem
from utils.training_utils import torch_threads  # n CPU threads, restored after

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
        raise ValueError(f"x must hold at least one sequence of at least one time step: shape "
                         f"(N, T, D) with N >= 1 and T >= 1, got {tuple(x.shape)}")
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
# 4. Gradient clipping and the Adam step
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


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) as torch.optim.Adam computes it.

        m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2      (m_0 = v_0 = 0)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Inputs: params (leaf tensors), lr > 0, betas in [0, 1), eps > 0.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if not lr > 0 or not eps > 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"need lr > 0, eps > 0, betas in [0, 1); got lr={lr!r}, "
                             f"eps={eps!r}, betas={betas!r}")
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t  # bias corrections
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)  # first moment
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)  # second moment
            denom = v.sqrt() / math.sqrt(bc2) + self.eps
            p.addcdiv_(m, denom, value=-self.lr / bc1)


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


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train on the adding problem with the hand-written clip and Adam.

    Returns: {"test_mse", "baseline_mse" (always predict 1), "mse_ratio", "train_seconds"}.
    """
    parser = argparse.ArgumentParser(
        description="The adding problem with an RNN / LSTM / GRU built from tensors "
                    "(hand-written clipping and Adam).")
    add_common_args(parser, datasets=("adding",), batch_size=64, lr=1e-2,
                    out="runs/06_LSTM_GRU/lowlevel", devices=("cpu",), counts_steps=True)
    parser.add_argument("--cell", choices=tuple(GATES), default="lstm")
    parser.add_argument("--seq-len", type=positive_int, default=20,
                        help="T, the sequence length, >= 2 (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="training steps (default: %(default)s)")
    parser.add_argument("--hidden", type=positive_int, default=32, help="default: %(default)s")
    parser.add_argument("--clip", type=positive_float, default=1.0,
                        help="clip the global gradient norm to this (default: %(default)s)")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads (0: default)")
    args = parse_args(parser, argv)
    if args.seq_len < 2:
        parser.error(f"--seq-len must be >= 2 (one marker in each half), got {args.seq_len}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    model = AddingRegressor(args.cell, args.hidden, seed=args.seed)
    opt = Adam(model.parameters(), lr=args.lr)
    X_test, y_test = (torch.from_numpy(a) for a in make_adding_problem(1000, args.seq_len,
                                                                     seed=args.seed + 1))
    baseline = float(((y_test - 1) ** 2).mean())
    losses, norms = [], []
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        X, y = (torch.from_numpy(a) for a in make_adding_problem(
            args.batch_size, args.seq_len, seed=args.seed * 1_000_003 + step))
        loss = ((model(X) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        norms.append(float(clip_grad_norm(model.parameters(), args.clip)))
        opt.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - started
    with torch.no_grad():
        test_mse = float(((model(X_test) - y_test) ** 2).mean())
    print(f"{args.cell.upper()} (L2) adding problem T={args.seq_len}: test MSE {test_mse:.5f}, "
          f"baseline {baseline:.4f} (ratio {test_mse / baseline:.4f}), {args.steps} steps in "
          f"{seconds:.1f} s")
    from utils.visualization import plot_curves

    plot_curves({"training MSE": losses, "gradient norm before clipping": norms},
                path=out / "loss.png", xlabel="step", logy=True,
                title=f"L2 {args.cell.upper()}, adding problem T={args.seq_len}")
    return {"test_mse": test_mse, "baseline_mse": baseline, "mse_ratio": test_mse / baseline,
            "train_seconds": seconds}


if __name__ == "__main__":
    main()
