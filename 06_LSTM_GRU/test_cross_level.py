"""Cross-level test of lesson 06: the same weights give the same numbers at L1, L2 and L3.

For the vanilla RNN, the LSTM and the GRU (the paper's form and PyTorch's), in float64,
with given initial states: the hidden states, the final state(s), the gradient of the input,
of the initial state(s) and of all four parameters agree between

- L1 (NumPy; gradients from its hand-written backward through time),
- L2 (tensors and autograd; ``rnn_forward`` / ``lstm_forward`` / ``gru_forward``),
- L3 (the nn.Module with nn.LSTM's signature, one layer, batch_first).

The upstream gradients are random, for every hidden state and for the final state(s), so
every path of back-propagation through time is exercised.

Run: .venv/bin/python -m pytest 06_LSTM_GRU/test_cross_level.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils import import_lesson
from utils.testing import FLOAT64, L1_VS_AUTOGRAD, assert_close

l1 = import_lesson("06_LSTM_GRU.numpy.rnn_numpy")
l2 = import_lesson("06_LSTM_GRU.pytorch_lowlevel.rnn_lowlevel")
l3 = import_lesson("06_LSTM_GRU.paper.rnn_paper")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, T, D, H = 3, 6, 4, 5
CASES = ["rnn", "lstm", "gru-paper", "gru-torch"]
L3_NAMES = dict(zip(l2.PARAM_NAMES, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                     "bias_hh_l0")))


def _l1_layer(case: str):
    if case == "rnn":
        return l1.RNN(D, H, seed=0)
    if case == "lstm":
        return l1.LSTM(D, H, seed=0)
    return l1.GRU(D, H, reset_after=case == "gru-torch", seed=0)


def _l3_module(case: str):
    if case == "rnn":
        return l3.RNN(D, H, batch_first=True).double()
    if case == "lstm":
        return l3.LSTM(D, H, batch_first=True).double()
    return l3.GRU(D, H, batch_first=True, reset_after=case == "gru-torch").double()


@pytest.mark.parametrize("case", CASES)
def test_l1_l2_l3_agree_on_shared_weights(case):
    rng = np.random.default_rng(1)
    lstm = case == "lstm"
    x = rng.standard_normal((N, T, D))
    states = [rng.standard_normal((N, H)) for _ in range(2 if lstm else 1)]
    dhs = rng.standard_normal((N, T, H))
    dfinal = [rng.standard_normal((N, H)) for _ in states]

    # L1: forward, then the hand-written backward
    layer = _l1_layer(case)
    hs1 = layer.forward(x, *states)
    finals1 = [layer.h_n, layer.c_n] if lstm else [layer.h_n]
    dx1 = layer.backward(dhs, *dfinal)
    dstates1 = [layer.dh0, layer.dc0] if lstm else [layer.dh0]

    # L2 and L3 on L1's weights; autograd of the same scalar sum(hs*dhs) + sum(final*dfinal)
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    p2 = {k: t(v) for k, v in layer.params.items()}
    x2, s2 = t(x), [t(s) for s in states]
    if case == "rnn":
        hs2, f = l2.rnn_forward(x2, s2[0], p2)
        finals2 = [f]
    elif lstm:
        hs2, finals2 = l2.lstm_forward(x2, s2[0], s2[1], p2)
    else:
        hs2, f = l2.gru_forward(x2, s2[0], p2, reset_after=case == "gru-torch")
        finals2 = [f]

    m3 = _l3_module(case)
    with torch.no_grad():
        for k, v in layer.params.items():
            getattr(m3, L3_NAMES[k]).copy_(torch.from_numpy(v))
    x3, s3 = t(x), [t(s[None]) for s in states]  # L3 states are (layers*dirs, N, H)
    hs3, f3 = m3(x3, tuple(s3) if lstm else s3[0])
    finals3 = [s[0] for s in (f3 if lstm else (f3,))]

    up = [torch.from_numpy(d) for d in dfinal]
    for hs, finals in ((hs2, finals2), (hs3, finals3)):
        ((hs * torch.from_numpy(dhs)).sum() + sum((a * b).sum() for a, b in zip(finals, up))) \
            .backward()

    for name, a, b, c in [("hs", hs1, hs2, hs3), *[(f"final {i}", finals1[i], finals2[i],
                                                     finals3[i]) for i in range(len(states))]]:
        assert_close(b, c, FLOAT64, f"{case} {name}: L2 vs L3")
        assert_close(a, b, L1_VS_AUTOGRAD, f"{case} {name}: L1 vs L2")
    assert_close(x2.grad, x3.grad, FLOAT64, f"{case} dx: L2 vs L3")
    assert_close(dx1, x2.grad, L1_VS_AUTOGRAD, f"{case} dx: L1 vs L2")
    for i in range(len(states)):
        assert_close(s2[i].grad, s3[i].grad[0], FLOAT64, f"{case} d state {i}: L2 vs L3")
        assert_close(dstates1[i], s2[i].grad, L1_VS_AUTOGRAD, f"{case} d state {i}: L1 vs L2")
    for k in l2.PARAM_NAMES:
        g3 = getattr(m3, L3_NAMES[k]).grad
        assert_close(p2[k].grad, g3, FLOAT64, f"{case} d{k}: L2 vs L3")
        assert_close(layer.grads[k], p2[k].grad, L1_VS_AUTOGRAD, f"{case} d{k}: L1 vs L2")


def test_l1_clip_equals_l2_clip():
    rng = np.random.default_rng(0)
    grads = [{"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}]
    tensors = [torch.tensor(v, requires_grad=True) for v in grads[0].values()]
    for p, v in zip(tensors, grads[0].values()):
        p.grad = torch.tensor(v)
    n1 = l1.clip_grad_norm(grads, 0.5)
    n2 = l2.clip_grad_norm(tensors, 0.5)
    assert_close(n1, n2, FLOAT64, "total norm")
    for v, p in zip(grads[0].values(), tensors):
        assert_close(v, p.grad, FLOAT64, "clipped gradient")
