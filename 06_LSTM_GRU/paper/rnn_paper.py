"""LSTM and GRU as the papers describe them, and a vanilla RNN to compare (Level 3 of lesson 06).

The papers
----------
- S. Hochreiter, J. Schmidhuber (1997), "Long short-term memory", Neural Computation 9(8).
  The memory cell c_t is carried forward by addition ("constant error carousel", Section 4),
  so the error flowing back along c does not shrink or blow up step by step; multiplicative
  input and output gates decide what is written and read. The forget gate is from
  F. Gers, J. Schmidhuber, F. Cummins (2000), "Learning to forget: continual prediction with
  LSTM", Neural Computation 12(10), eq. 3.2-3.4: it lets the cell reset itself. This is the
  LSTM everyone uses (no peepholes), and PyTorch's::

      i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
      f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate (Gers 2000)
      g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)           candidate cell input
      o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
      c_t = f_t * c_{t-1} + i_t * g_t                             the carousel
      h_t = o_t * tanh(c_t)

- K. Cho et al. (2014), "Learning phrase representations using RNN encoder-decoder for
  statistical machine translation", EMNLP, Section 2.3, eq. 5-8: the gated recurrent unit.
  A reset gate r and an update gate z, no separate cell::

      r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)                       eq. 5
      z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)                       eq. 6
      n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)   paper           eq. 8
      n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))   PyTorch, cuDNN
      h_t = (1 - z_t) * n_t + z_t * h_{t-1}                                      eq. 7

  Cho et al. write h_t = z h_{t-1} + (1 - z) h~_t: the same thing. The two forms of n_t
  differ: the paper resets h BEFORE the recurrent matrix product, cuDNN (and so PyTorch)
  AFTER it, which lets one matrix product W_hh h_{t-1} serve all three gates. ``GRU``
  implements the paper's form by default (``reset_after=False``) and PyTorch's with
  ``reset_after=True``; only the latter converts to ``nn.GRU``.

- The vanilla (Elman) RNN, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh): the network
  whose gradients vanish over long gaps (Hochreiter 1991; Bengio et al. 1994), for contrast.

How the modules are built
-------------------------
The constructors and call signatures are nn.LSTM / nn.GRU / nn.RNN's, and so are the
parameter names and shapes (``weight_ih_l0``, ``weight_hh_l0_reverse``, ...; gate rows
stacked [i, f, g, o] and [r, z, n]), so a state_dict moves between ours and torch's as is
(``from_torch`` / ``to_torch``). The computation is explicit: for each layer and direction,
ONE matrix product projects the inputs of all T steps at once (they do not depend on the
recurrence), then a Python loop over time does the recurrent part. Variable-length batches
come either as a PackedSequence (returned as a PackedSequence, like torch) or as a padded
tensor with ``lengths=``: states stop changing after each sequence's end, outputs there are
zero, and the backward direction starts at each sequence's own last element.

The script trains on the adding problem (Hochreiter & Schmidhuber 1997, Section 5,
experiment 4; the version of Le et al. 2015): two channels, random values and two markers,
the target is the sum of the two marked values. Predicting the mean (1) gives MSE ~0.167.

Run it from the repository root::

    python 06_LSTM_GRU/paper/rnn_paper.py                         # quick: LSTM, T = 30
    python 06_LSTM_GRU/paper/rnn_paper.py --cell lstm rnn --seq-len 100 --steps 3000 \\
        --schedule cosine
    python -m 06_LSTM_GRU.paper.rnn_paper --cell gru --seq-len 50
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from utils.cli import (
    add_common_args,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import make_adding_problem
from utils.training_utils import torch_threads  # n CPU threads, restored after

# --------------------------------------------------------------------------------------
# 1. One time step of each cell. `xp` is the input projection W_ih x_t + b_ih, computed
#    for all steps before the loop; only the recurrent half is done here.
# --------------------------------------------------------------------------------------


def rnn_step(xp: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
             nonlinearity: str = "tanh") -> torch.Tensor:
    """Elman RNN step: h_t = act(xp_t + h_{t-1} W_hh^T + b_hh).

    Inputs: xp (N, H), h (N, H), w_hh (H, H), b_hh (H,) or None. Returns h_t (N, H).
    """
    a = xp + h @ w_hh.t()
    if b_hh is not None:
        a = a + b_hh
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


def lstm_step(xp: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor,
              b_hh: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM step with forget gate (Gers et al. 2000, eq. 3.2-3.4).

    Inputs: xp (N, 4H) = W_ih x_t + b_ih, rows [i, f, g, o]; h, c (N, H); w_hh (4H, H).
    Returns: (h_t, c_t), each (N, H).
    """
    gates = xp + h @ w_hh.t()  # (N, 4H)
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)  # each (N, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # c_t = f c_{t-1} + i g
    h = torch.sigmoid(o) * torch.tanh(c)  # h_t = o tanh(c_t)
    return h, c


def gru_step(xp: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
             reset_after: bool = False) -> torch.Tensor:
    """GRU step (Cho et al. 2014, eq. 5-8), in the paper's or PyTorch's form.

    Inputs: xp (N, 3H) = W_ih x_t + b_ih, rows [r, z, n]; h (N, H); w_hh (3H, H).
    Returns: h_t (N, H).
    """
    H = h.shape[-1]
    x_r, x_z, x_n = xp.chunk(3, dim=-1)  # each (N, H)
    if reset_after:  # one product W_hh h serves all three gates (cuDNN's form)
        hh = h @ w_hh.t()  # (N, 3H)
        if b_hh is not None:
            hh = hh + b_hh
        h_r, h_z, h_n = hh.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)  # eq. 5
        z = torch.sigmoid(x_z + h_z)  # eq. 6
        n = torch.tanh(x_n + r * h_n)  # reset AFTER the product
    else:  # the paper: the reset gate scales h before W_hn sees it
        hh = h @ w_hh[: 2 * H].t()  # (N, 2H): the r and z rows only
        if b_hh is not None:
            hh = hh + b_hh[: 2 * H]
        h_r, h_z = hh.chunk(2, dim=-1)
        r = torch.sigmoid(x_r + h_r)  # eq. 5
        z = torch.sigmoid(x_z + h_z)  # eq. 6
        hn = (r * h) @ w_hh[2 * H:].t()  # W_hn (r * h_{t-1}), eq. 8
        if b_hh is not None:
            hn = hn + b_hh[2 * H:]
        n = torch.tanh(x_n + hn)
    return (1 - z) * n + z * h  # eq. 7, PyTorch's orientation of z


# --------------------------------------------------------------------------------------
# 2. The multi-layer, bidirectional module shared by the three cells
# --------------------------------------------------------------------------------------

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


class _Recurrent(nn.Module):
    """Multi-layer, optionally bidirectional recurrent network with an explicit time loop.

    The public subclasses ``RNN``, ``LSTM`` and ``GRU`` fix the cell. Parameters per layer
    k and direction (suffix "" forward, "_reverse" backward), as in torch:
    weight_ih_l{k} (G*H, D_k), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H,),
    G = 1 (RNN), 4 (LSTM), 3 (GRU); D_0 = input_size, D_k = H * num_directions after.
    """

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        G = GATES[self.mode]
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes():
                name = f"l{layer}{suffix}"
                setattr(self, f"weight_ih_{name}", nn.Parameter(torch.empty(G * hidden_size, d_in)))
                setattr(self, f"weight_hh_{name}",
                        nn.Parameter(torch.empty(G * hidden_size, hidden_size)))
                if bias:
                    setattr(self, f"bias_ih_{name}", nn.Parameter(torch.empty(G * hidden_size)))
                    setattr(self, f"bias_hh_{name}", nn.Parameter(torch.empty(G * hidden_size)))
        self.reset_parameters()

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), torch's initialisation."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _layer_params(self, layer: int, suffix: str):
        name = f"l{layer}{suffix}"
        get = lambda kind: getattr(self, f"{kind}_{name}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s

    # -- the one step of this cell; overridden per cell --------------------------------
    def _step(self, xp, state, w_hh, b_hh):
        raise NotImplementedError

    def _state_init(self, hx, N, dtype, device):
        """(num_layers * num_directions, N, H) initial states, as a tuple of one or two."""
        L = self.num_layers * self.num_directions
        if hx is None:
            zeros = torch.zeros(L, N, self.hidden_size, dtype=dtype, device=device)
            return (zeros,) * (2 if self.mode == "LSTM" else 1)
        states = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and (not isinstance(hx, tuple) or len(hx) != 2):
            raise TypeError("LSTM's hx must be a tuple (h_0, c_0), each "
                            f"(num_layers * num_directions, N, H) = ({L}, {N}, {self.hidden_size})")
        for name, s in zip(("h_0", "c_0"), states):
            if not isinstance(s, torch.Tensor) or tuple(s.shape) != (L, N, self.hidden_size):
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"{name} must have shape (num_layers * num_directions, N, H) = "
                                 f"({L}, {N}, {self.hidden_size}), got {got}")
        return tuple(states)

    def _direction(self, x, lengths, reverse, layer, suffix, h0):
        """Run one layer in one direction over the whole sequence.

        Inputs: x (T, N, D) time-major; lengths (N,) int64 or None (all T);
            h0: tuple of (N, H) initial states (h, or h and c).
        Returns: (out (T, N, H), final states tuple).
        """
        w_ih, w_hh, b_ih, b_hh = self._layer_params(layer, suffix)
        if reverse:
            x = _reverse_padded(x, lengths)  # each sequence reversed within its own length
        xp = x @ w_ih.t()  # (T, N, G*H): all steps' input projections in one product
        if b_ih is not None:
            xp = xp + b_ih
        state = h0
        outputs = []
        # unbind, not xp[t]: the backward of T separate slices would build T zero-filled
        # copies of the whole (T, N, G*H) gradient; unbind's backward stacks them once
        for t, xp_t in enumerate(xp.unbind(0)):
            new = self._step(xp_t, state, w_hh, b_hh)
            if lengths is not None:  # finished sequences keep their state, output zeros
                alive = (t < lengths).unsqueeze(1)  # (N, 1)
                new = tuple(torch.where(alive, n, s) for n, s in zip(new, state))
                outputs.append(torch.where(alive, new[0], torch.zeros_like(new[0])))
            else:
                outputs.append(new[0])
            state = new
        out = torch.stack(outputs)  # (T, N, H)
        if reverse:
            out = _reverse_padded(out, lengths)  # back to input order
        return out, state

    def forward(self, input, hx=None, lengths: torch.Tensor | Sequence[int] | None = None):
        """Run the network over a batch of sequences.

        Inputs:
            input: (T, N, D) (or (N, T, D) with batch_first), (T, D) unbatched, or a
                PackedSequence (what ``pack_padded_sequence`` / ``pack_sequence`` make).
            hx: initial state(s), (num_layers * num_directions, N, H) each; for the LSTM the
                tuple (h_0, c_0). Default zeros. In the batch's own order (also when packed).
            lengths: only for a padded tensor: (N,) true lengths, 1 <= lengths <= T, in any
                order (like enforce_sorted=False). Outputs past a sequence's end are zero.
        Returns:
            output: (T, N, num_directions * H) (or batch-first), or a PackedSequence when the
                input was one; the last layer's h_t for every t, both directions concatenated.
            h_n (and c_n for the LSTM): (num_layers * num_directions, N, H), the state at each
                sequence's last element (for the reverse direction: after its first element).
        """
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise ValueError("lengths= is for padded tensors; a PackedSequence has its own")
            x, lengths = pad_packed_sequence(input, batch_first=False)  # (T, N, D), orig order
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"input must be a tensor or PackedSequence, got "
                                f"{type(input).__name__}")
            if input.dim() == 2:  # one unbatched sequence (T, D), as torch allows
                unbatched = True
                input = input.unsqueeze(1)
                if hx is not None:
                    hx = (tuple(s.unsqueeze(1) for s in hx) if isinstance(hx, tuple)
                          else hx.unsqueeze(1))
            elif input.dim() != 3:
                layout = "(N, T, D)" if self.batch_first else "(T, N, D)"
                raise ValueError(f"input must be 3-D {layout} or 2-D (T, D) unbatched, got "
                                 f"shape {tuple(input.shape)}")
            x = input.transpose(0, 1) if self.batch_first and not unbatched else input  # (T,N,D)
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
        T, N, D = x.shape
        if T < 1:
            raise ValueError(f"input has no time steps (T = 0, shape {tuple(input.shape)}); "
                             "expected at least one step per sequence")
        if D != self.input_size:
            raise ValueError(f"input has {D} features in its last dimension, expected "
                             f"input_size={self.input_size}")
        if lengths is not None:
            lengths = _check_lengths(lengths, N, T, x.device)
        states = self._state_init(hx, N, x.dtype, x.device)

        finals = []  # per layer and direction: tuple of (N, H)
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes()):
                idx = layer * self.num_directions + d
                h0 = tuple(s[idx] for s in states)
                out, final = self._direction(layer_input, lengths, d == 1, layer, suffix, h0)
                outs.append(out)
                finals.append(final)
            layer_input = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]  # (T, N, dH)
            if self.dropout and self.training and layer < self.num_layers - 1:
                # as torch: dropout on every layer's output except the last one's
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)
        output = layer_input  # (T, N, num_directions * H)
        h_n = tuple(torch.stack([f[k] for f in finals]) for k in range(len(finals[0])))

        if packed:
            output = _repack(output, lengths, input)
        elif unbatched:
            output = output.squeeze(1)
            h_n = tuple(s.squeeze(1) for s in h_n)
        elif self.batch_first:
            output = output.transpose(0, 1)  # (N, T, dH)
        return output, (h_n if self.mode == "LSTM" else h_n[0])


def _check_lengths(lengths, N: int, T: int, device) -> torch.Tensor:
    """Validate ``lengths`` and return it as an int64 tensor (N,) on ``device``."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != N:
        raise ValueError(f"lengths must have shape (N,) = ({N},), got {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be integers, got {lengths.dtype}")
    if N and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(f"lengths must lie in [1, T] = [1, {T}] (T = the padded length), got "
                         f"min {int(lengths.min())}, max {int(lengths.max())}")
    return lengths.to(device=device, dtype=torch.int64)


def _reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence of x (T, N, ...) within its own length; padding stays put.

    For sequence n, step t < L_n comes from step L_n - 1 - t. Applying it twice is the
    identity, so it both prepares the backward direction's input and restores its output.
    """
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    src = torch.where(t < lengths, lengths - 1 - t, t)  # (T, N)
    index = src.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def _repack(output: torch.Tensor, lengths: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """Padded output (T, N, F) in the batch's own order -> PackedSequence laid out as ``like``.

    A PackedSequence stores, step after step, the entries of the sequences still running,
    longest first (``like.sorted_indices`` gives that order); its batch_sizes say how many.
    """
    order = like.sorted_indices
    out_sorted = output if order is None else output[:, order.to(output.device)]  # (T, N, F)
    len_sorted = lengths if order is None else lengths[order.to(lengths.device)]
    T = output.shape[0]
    mask = torch.arange(T, device=output.device).unsqueeze(1) < len_sorted  # (T, N)
    data = out_sorted[mask]  # (sum of lengths, F), step-major as packing wants
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


class RNN(_Recurrent):
    """Elman RNN, torch.nn.RNN's signature; ``nonlinearity`` "tanh" (default) or "relu"."""

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def _step(self, xp, state, w_hh, b_hh):
        return (rnn_step(xp, state[0], w_hh, b_hh, self.nonlinearity),)


class LSTM(_Recurrent):
    """LSTM (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000).

    torch.nn.LSTM's signature and parameters (no ``proj_size``). forward returns
    (output, (h_n, c_n)).
    """

    mode = "LSTM"

    def _step(self, xp, state, w_hh, b_hh):
        return lstm_step(xp, state[0], state[1], w_hh, b_hh)


class GRU(_Recurrent):
    """GRU (Cho et al. 2014, eq. 5-8). ``reset_after=False`` (default) is the paper's form;
    ``reset_after=True`` is torch.nn.GRU's (and cuDNN's). forward returns (output, h_n).
    """

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 reset_after: bool = False):
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reset_after={self.reset_after}"

    def _step(self, xp, state, w_hh, b_hh):
        return (gru_step(xp, state[0], w_hh, b_hh, self.reset_after),)


# --------------------------------------------------------------------------------------
# 3. Conversion to and from torch.nn (the state_dict keys are the same)
# --------------------------------------------------------------------------------------


def _config(module) -> dict:
    return dict(input_size=module.input_size, hidden_size=module.hidden_size,
                num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                dropout=float(module.dropout), bidirectional=module.bidirectional)


def from_torch(module: nn.Module) -> _Recurrent:
    """Our LSTM / GRU / RNN with the same configuration and weights as a torch.nn one.

    nn.GRU becomes ``GRU(..., reset_after=True)`` (torch's form). Returns a module on the
    same device and dtype as ``module``'s weights.
    """
    if isinstance(module, nn.LSTM):
        if getattr(module, "proj_size", 0):
            raise ValueError("nn.LSTM with proj_size > 0 (LSTMP) is not implemented here")
        ours = LSTM(**_config(module))
    elif isinstance(module, nn.GRU):
        ours = GRU(**_config(module), reset_after=True)
    elif isinstance(module, nn.RNN):
        ours = RNN(**_config(module), nonlinearity=module.nonlinearity)
    else:
        raise TypeError("from_torch expects nn.LSTM, nn.GRU or nn.RNN, got "
                        f"{type(module).__name__}")
    ref = next(module.parameters())
    ours.to(device=ref.device, dtype=ref.dtype)
    ours.load_state_dict(module.state_dict())
    return ours


def to_torch(model: _Recurrent) -> nn.Module:
    """The torch.nn.LSTM / GRU / RNN with ``model``'s configuration and weights.

    A paper-form GRU (reset_after=False) raises ValueError: nn.GRU always applies the reset
    gate after the product W_hn h, and W_hn (r * h) cannot be written that way (r multiplies
    h element by element BEFORE the mixing, so no re-arrangement of weights gives it).
    """
    if isinstance(model, GRU) and not model.reset_after:
        raise ValueError(
            "a paper-form GRU (reset_after=False: n = tanh(W_in x + W_hn (r * h) + b)) has no "
            "nn.GRU equivalent: nn.GRU computes n = tanh(W_in x + r * (W_hn h + b_hn)), the "
            "reset gate applied after the matrix product. Build GRU(..., reset_after=True) "
            "to convert.")
    if isinstance(model, LSTM):
        ref = nn.LSTM(**_config(model))
    elif isinstance(model, GRU):
        ref = nn.GRU(**_config(model))
    elif isinstance(model, RNN):
        ref = nn.RNN(**_config(model), nonlinearity=model.nonlinearity)
    else:
        raise TypeError(f"to_torch expects this module's LSTM, GRU or RNN, got "
                        f"{type(model).__name__}")
    p = next(model.parameters())
    ref.to(device=p.device, dtype=p.dtype)
    ref.load_state_dict(model.state_dict())
    return ref


# --------------------------------------------------------------------------------------
# 4. The adding problem (Hochreiter & Schmidhuber 1997, experiment 4)
# --------------------------------------------------------------------------------------

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


class AddingModel(nn.Module):
    """Recurrent layer + a linear read-out of the last hidden state: y_hat = w . h_T + b.

    Inputs: x (N, T, 2). Returns: (N,) predictions.
    """

    def __init__(self, cell: str = "lstm", hidden_size: int = 64):
        super().__init__()
        self.rnn = CELLS[cell](2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        if cell == "lstm":  # forget-gate bias 1 (Gers et al. 2000): remember by default
            with torch.no_grad():
                self.rnn.bias_ih_l0[hidden_size: 2 * hidden_size].fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (N, T, H)
        return self.head(out[:, -1]).squeeze(-1)  # (N,)


def train_adding(cell: str, seq_len: int, *, steps: int, batch_size: int, lr: float,
                 hidden_size: int, clip: float, seed: int, n_test: int = 1000,
                 eval_every: int = 50, cosine: bool = False, time_budget: float = 0.0,
                 progress: bool = False) -> dict:
    """Train one cell on fresh adding-problem batches; returns model, curves and test MSE.

    Every step draws a new batch (the task is generated), as in the paper; the test set
    of ``n_test`` sequences is fixed (seed + 1).
    """
    torch.manual_seed(seed)
    model = AddingModel(cell, hidden_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # a cosine-decaying rate: large steps to find the solution, small ones to make it precise
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    X_test, y_test = (torch.from_numpy(a) for a in make_adding_problem(n_test, seq_len, seed + 1))
    baseline = float(((y_test - 1.0) ** 2).mean())  # predict 1 (the mean) always
    curve_steps, curve_mse = [], []
    bar = _progress(steps, progress, f"{cell} T={seq_len}")
    started = time.perf_counter()
    for step in range(1, steps + 1):
        X, y = make_adding_problem(batch_size, seq_len, seed=seed * 1_000_003 + step)
        loss = ((model(torch.from_numpy(X)) - torch.from_numpy(y)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)  # keep early spikes bounded
        opt.step()
        if sched is not None:
            sched.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                mse = float(((model(X_test) - y_test) ** 2).mean())
            curve_steps.append(step)
            curve_mse.append(mse)
            if bar is not None:
                bar.set_postfix(test_mse=f"{mse:.4f}")
        if bar is not None:
            bar.update(1)
        if time_budget and time.perf_counter() - started > time_budget:
            if curve_steps[-1:] != [step]:
                with torch.no_grad():
                    curve_mse.append(float(((model(X_test) - y_test) ** 2).mean()))
                curve_steps.append(step)
            break
    if bar is not None:
        bar.close()
    return {"model": model, "steps": curve_steps, "mse": curve_mse, "test_mse": curve_mse[-1],
            "baseline": baseline, "seconds": time.perf_counter() - started}


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


# --------------------------------------------------------------------------------------
# 5. Pictures: gate activations over time, and how far back the gradient reaches
# --------------------------------------------------------------------------------------


def lstm_gate_trace(lstm: LSTM, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Gate activations of the first layer (forward direction) for ONE sequence.

    Inputs: lstm (batch_first or not), x (T, D) one sequence. Returns: {"i", "f", "o", "c"}
    each (T, H) float arrays, recomputed step by step with the module's own weights.
    """
    w_ih, w_hh, b_ih, b_hh = lstm._layer_params(0, "")
    H = lstm.hidden_size
    h = x.new_zeros(1, H)
    c = x.new_zeros(1, H)
    trace = {k: [] for k in "ifoc"}
    with torch.no_grad():
        for t in range(x.shape[0]):
            gates = x[t: t + 1] @ w_ih.t() + h @ w_hh.t()
            if b_ih is not None:
                gates = gates + b_ih + b_hh
            i, f, g, o = gates.chunk(4, dim=-1)
            i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
            c = f * c + i * torch.tanh(g)
            h = o * torch.tanh(c)
            for k, v in zip("ifoc", (i, f, o, c)):
                trace[k].append(v[0].numpy().copy())
    return {k: np.stack(v) for k, v in trace.items()}


def hidden_gradient_norms(model: AddingModel, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """||dL/dh_t|| (mean over the batch) for every t: how much the loss still "sees" step t.

    Runs the first layer step by step with each h_t kept as a leaf of the graph, so that
    autograd reports the gradient reaching it through the recurrence. Returns (T,).
    """
    rnn = model.rnn
    w_ih, w_hh, b_ih, b_hh = rnn._layer_params(0, "")
    N, T, _ = X.shape
    xp = X @ w_ih.t() + b_ih  # (N, T, G*H)
    state = tuple(X.new_zeros(N, rnn.hidden_size) for _ in range(2 if rnn.mode == "LSTM" else 1))
    hs = []
    for t in range(T):
        state = rnn._step(xp[:, t], state, w_hh, b_hh)
        state[0].retain_grad()
        hs.append(state[0])
    loss = ((model.head(state[0]).squeeze(-1) - y) ** 2).mean()
    loss.backward()
    return np.array([float(h.grad.norm(dim=1).mean()) for h in hs])


# --------------------------------------------------------------------------------------
# 6. The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train LSTM / GRU / RNN on the adding problem; plot the learning curves.

    Returns: {"test_mse" (of the first --cell), "baseline_mse" (always predict 1),
              "mse_ratio" (test_mse / baseline_mse), "<cell>_test_mse" for each cell,
              "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="The adding problem (Hochreiter & Schmidhuber 1997, experiment 4) with our "
                    "LSTM / GRU / vanilla RNN (explicit time loop), Adam + gradient clipping.")
    add_common_args(parser, datasets=("adding",), counts_steps=True, batch_size=64, lr=1e-2,
                    out="runs/06_LSTM_GRU/paper", devices=("cpu",))
    parser.add_argument("--cell", nargs="+", choices=tuple(CELLS), default=["lstm"],
                        help="one or more cells, trained one after the other (default: lstm)")
    parser.add_argument("--seq-len", type=positive_int, default=30,
                        help="T, >= 2 (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=400,
                        help="training steps (batches; default: %(default)s)")
    parser.add_argument("--hidden", type=positive_int, default=64,
                        help="hidden size (default: %(default)s)")
    parser.add_argument("--clip", type=positive_float, default=1.0,
                        help="gradient-norm clip (default: %(default)s)")
    parser.add_argument("--eval-every", type=positive_int, default=50,
                        help="test MSE every this many steps (default: %(default)s)")
    parser.add_argument("--schedule", choices=("cosine", "none"), default="none",
                        help="learning-rate schedule over --steps (default: %(default)s)")
    parser.add_argument("--time-budget", type=non_negative_float, default=0.0,
                        help="stop each cell's training after this many seconds (0: no limit)")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads (0: default)")
    args = parse_args(parser, argv)
    if args.seq_len < 2:
        parser.error(f"--seq-len must be >= 2 (one marker in each half), got {args.seq_len}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    results = {}
    for cell in args.cell:
        r = train_adding(cell, args.seq_len, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, hidden_size=args.hidden, clip=args.clip, seed=args.seed,
                         eval_every=args.eval_every, cosine=args.schedule == "cosine",
                         time_budget=args.time_budget, progress=args.progress)
        results[cell] = r
        torch.save(r["model"].state_dict(), out / f"adding_{cell}_T{args.seq_len}.pt")
        print(f"{cell.upper()} T={args.seq_len}: test MSE curve "
              + " ".join(f"{s}:{m:.4f}" for s, m in zip(r["steps"], r["mse"])))
        print(f"{cell.upper()} T={args.seq_len}: test MSE {r['test_mse']:.5f} "
              f"(baseline {r['baseline']:.4f}, ratio {r['test_mse'] / r['baseline']:.4f}) "
              f"after {r['steps'][-1]} steps, {r['seconds']:.1f} s")
    first = results[args.cell[0]]
    metrics = {"test_mse": first["test_mse"], "baseline_mse": first["baseline"],
               "mse_ratio": first["test_mse"] / first["baseline"],
               "train_seconds": sum(r["seconds"] for r in results.values())}
    metrics.update({f"{c}_test_mse": r["test_mse"] for c, r in results.items()})
    _plots(results, args, out)
    return metrics


def plot_adding_curves(curves: dict, T: int, path, batch_size: int) -> None:
    """Test MSE against training step, one line per run, with the baseline and 1 % of it.

    Inputs: curves {label: {"steps": [...], "mse": [...], "baseline": float}} (what the
    script writes to curves_T<T>.json; curves of several runs can be merged).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in curves.items():
        ax.plot(r["steps"], r["mse"], label=label)
    base = next(iter(curves.values()))["baseline"]
    ax.axhline(base, color="grey", ls="--", label=f"always predict 1: {base:.3f}")
    ax.axhline(0.01 * base, color="grey", ls=":", label="1 % of that")
    ax.set_yscale("log")
    ax.set_xlabel(f"training step (batch of {batch_size})")
    ax.set_ylabel("test MSE")
    ax.set_title(f"Adding problem, T = {T}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gradient_norms(pairs: dict, X: torch.Tensor, y: torch.Tensor, path) -> None:
    """||dL/dh_t|| against t (log scale) for untrained and trained models.

    Inputs: pairs {cell name: (model at initialisation, trained model)}, AddingModel each;
    X (N, T, 2), y (N,) the sequences to average over; path of the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = X.shape[1]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for cell, (fresh, trained) in pairs.items():
        # + 1e-30: a gradient that underflowed to 0 still shows, at the bottom of the plot
        ax.semilogy(hidden_gradient_norms(trained, X, y) + 1e-30, label=f"{cell.upper()}, trained")
        ax.semilogy(hidden_gradient_norms(fresh, X, y) + 1e-30, ls="--",
                    label=f"{cell.upper()}, at initialisation")
    ax.set_xlabel("time step t")
    ax.set_ylabel(f"mean ||dL/dh_t|| over {X.shape[0]} sequences")
    ax.set_title(f"Gradient reaching h_t from the loss at t = {T}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plots(results: dict, args, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = args.seq_len
    curves = {f"{cell.upper()} (H={args.hidden}, lr={args.lr:g})":
              {"steps": r["steps"], "mse": r["mse"], "baseline": r["baseline"],
               "seconds": r["seconds"]} for cell, r in results.items()}
    (out / f"curves_T{T}.json").write_text(json.dumps(curves))
    plot_adding_curves(curves, T, out / f"adding_T{T}.png", args.batch_size)

    X, y = (torch.from_numpy(a) for a in make_adding_problem(64, T, seed=args.seed + 2))
    pairs = {}
    for cell, r in results.items():
        torch.manual_seed(args.seed)  # the same draw as train_adding's initial weights
        pairs[cell] = (AddingModel(cell, args.hidden), r["model"])
    plot_gradient_norms(pairs, X, y, out / f"grad_norm_T{T}.png")

    if "lstm" in results:
        trace = lstm_gate_trace(results["lstm"]["model"].rnn, X[0])
        marks = np.flatnonzero(X[0, :, 1].numpy())
        fig, axes = plt.subplots(4, 1, figsize=(7, 8), sharex=True)
        for ax, k, title in zip(axes, "ifoc", ("input gate i", "forget gate f",
                                              "output gate o", "cell c")):
            vmin, vmax = (0, 1) if k != "c" else (None, None)
            im = ax.imshow(trace[k].T, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
            for m in marks:
                ax.axvline(m, color="red", lw=0.8)
            ax.set_ylabel(f"{title}\nunit")
            fig.colorbar(im, ax=ax)
        axes[-1].set_xlabel("time step (red: the two marked inputs)")
        fig.suptitle(f"LSTM gates on one adding sequence, T = {T}")
        fig.tight_layout()
        fig.savefig(out / f"lstm_gates_T{T}.png", dpi=120)
        plt.close(fig)
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
