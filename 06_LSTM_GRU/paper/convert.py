"""Porting the L3 LSTM / GRU / RNN to and from torch.nn (lesson 06, Level 3).

The modules of ``rnn_paper.py`` use nn.LSTM / nn.GRU / nn.RNN's parameter names and shapes
(``weight_ih_l0``, ``weight_hh_l0_reverse``, ...; gate rows [i, f, g, o] and [r, z, n]), so a
state_dict moves between ours and torch's as it is. Only the GRU needs care: nn.GRU always
applies the reset gate after the recurrent product (theory.md 3.3), so only
``GRU(reset_after=True)`` converts.
"""

from __future__ import annotations

from torch import nn

from utils import import_lesson

rnn_paper = import_lesson("06_LSTM_GRU.paper.rnn_paper")
LSTM, GRU, RNN = rnn_paper.LSTM, rnn_paper.GRU, rnn_paper.RNN


def _config(module) -> dict:
    return dict(input_size=module.input_size, hidden_size=module.hidden_size,
                num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                dropout=float(module.dropout), bidirectional=module.bidirectional)


def from_torch(module: nn.Module) -> rnn_paper._Recurrent:
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


def to_torch(model: rnn_paper._Recurrent) -> nn.Module:
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
