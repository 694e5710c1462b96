"""LSTM and GRU as the papers describe them, and a vanilla RNN to compare (Level 3 of lesson 06).

Hochreiter & Schmidhuber (1997), "Long short-term memory", with the forget gate of Gers,
Schmidhuber & Cummins (2000, eq. 3.2-3.4): PyTorch's LSTM, no peepholes. Cho et al. (2014),
Section 2.3, eq. 5-8: the GRU, in the paper's form (reset before the recurrent product,
``reset_after=False``, the default) or cuDNN's / PyTorch's (``reset_after=True``, the only
one that converts to nn.GRU). The Elman RNN for contrast. The modules have nn.LSTM / nn.GRU /
nn.RNN's constructor, call signature and parameter names (multi-layer, bidirectional,
``batch_first``, PackedSequence or padding with ``lengths=``); ONE matrix product projects
the inputs of all steps, then an explicit loop over time runs the recurrence. Then the
models built on them. Equations and the two GRU forms: ../theory.md (sections 2-4);
``convert.py`` ports to and from torch.nn; ``train.py`` and ``train_*.py`` run the tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

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
        L, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            zeros = torch.zeros(L, N, H, dtype=dtype, device=device)
            return (zeros,) * (2 if self.mode == "LSTM" else 1)
        states = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and (not isinstance(hx, tuple) or len(hx) != 2):
            raise TypeError(f"LSTM's hx must be a tuple (h_0, c_0), each ({L}, {N}, {H})")
        for name, s in zip(("h_0", "c_0"), states):
            if not isinstance(s, torch.Tensor) or tuple(s.shape) != (L, N, H):
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"{name} must have shape (num_layers * num_directions, N, H) = "
                                 f"({L}, {N}, {H}), got {got}")
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

    def _prepare(self, input, hx, lengths):
        """The door of ``forward``: check the input, return it padded and time-major.

        Returns: (x (T, N, D), lengths (N,) int64 or None, hx (with a batch axis added for an
        unbatched input), unbatched: whether the input was one (T, D) sequence).
        """
        unbatched = False
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths= is for padded tensors; a PackedSequence has its own")
            x, lengths = pad_packed_sequence(input, batch_first=False)  # (T, N, D), orig order
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"input must be a tensor or PackedSequence: {type(input).__name__}")
            unbatched = input.dim() == 2
            if unbatched:  # one unbatched sequence (T, D), as torch allows
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
            raise ValueError(f"input has {D} features, expected input_size={self.input_size}")
        if lengths is not None:
            lengths = _check_lengths(lengths, N, T, x.device)
        return x, lengths, hx, unbatched

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
        x, lengths, hx, unbatched = self._prepare(input, hx, lengths)  # x (T, N, D)
        states = self._state_init(hx, x.shape[1], x.dtype, x.device)

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
    low, high = (int(lengths.min()), int(lengths.max())) if N else (1, 1)
    if low < 1 or high > T:
        raise ValueError(f"lengths must lie in [1, T] = [1, {T}], got {low} to {high}")
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
# 3. The models built on them: the adding problem (Hochreiter & Schmidhuber 1997,
#    experiment 4), review sentiment, a character-level language model
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



class SentimentLSTM(nn.Module):
    """Embedding -> (Bi)LSTM over packed sequences -> max over time -> linear logit.

    The classic recipe for text classification with an LSTM (theory.md 5.5): each review is
    read at its own length (a PackedSequence); max-pooling over time ([h_fwd; h_bwd] when
    bidirectional) lets any position of a long review decide, instead of asking the final
    states alone to carry everything (Conneau et al. 2017, Section 3.2.2).
    ``impl="torch"`` puts nn.LSTM in place of ours, for comparison.

    Inputs: tokens (N, T) int64 (0 = padding), lengths (N,) int64.
    Returns: (N,) logits, positive = "positive review".
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden_size: int = 128,
                 bidirectional: bool = True, dropout: float = 0.3, impl: str = "ours"):
        super().__init__()
        if impl not in ("ours", "torch"):
            raise ValueError(f"impl must be 'ours' or 'torch', got {impl!r}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        lstm_cls = LSTM if impl == "ours" else nn.LSTM
        self.lstm = lstm_cls(embed_dim, hidden_size, batch_first=True,
                             bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size * (2 if bidirectional else 1), 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        e = self.drop(self.embed(tokens))  # (N, T, E)
        packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
        pooled = out.max(dim=1).values  # (N, 2H): max over each review's own steps
        return self.out(self.drop(pooled)).squeeze(-1)


class CharLM(nn.Module):
    """Embedding -> LSTM -> linear over the character vocabulary (Graves 2013, Section 3).

    Reads one character at a time and predicts the next; the loss is the mean over
    positions of -log p(x_{t+1} | x_1..x_t), in nats per character (theory.md 5.2-5.3).

    Inputs: x (N, T) int64 character ids; state: (h, c) each (num_layers, N, H), or None.
    Returns: (logits (N, T, V), new state).
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = LSTM(embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.lm_head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.lstm(self.embed(x), state)  # (N, T, H)
        return self.lm_head(out), state


@torch.no_grad()
def sample(model: CharLM, itos: list[str], stoi: dict[str, int], prime: str, length: int,
           temperature: float = 0.8, generator: torch.Generator | None = None) -> str:
    """Continue ``prime`` by ``length`` characters drawn from softmax(logits / temperature).

    Below 1 the draws are sharper and safer, above 1 more varied (theory.md 5.4).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    unknown = sorted(set(prime) - set(stoi))
    if unknown:
        raise ValueError(f"prime has characters outside the vocabulary: {unknown}")
    model.eval()
    x = torch.tensor([[stoi[c] for c in prime]])
    logits, state = model(x)
    out = []
    for _ in range(length):
        p = torch.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = int(torch.multinomial(p, 1, generator=generator))
        out.append(itos[nxt])
        logits, state = model(torch.tensor([[nxt]]), state)
    model.train()
    return prime + "".join(out)
