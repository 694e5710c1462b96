"""Tests of lesson 06, level 1 (NumPy): RNN, LSTM and GRU with hand-written BPTT.

References:

- PyTorch: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` (batch_first) with the weights copied, in
  float64: the outputs, the final states and EVERY gradient (inputs, the four parameter
  arrays, the initial states) for a loss that uses all hidden states AND the final
  state(s), to 1e-10; ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell`` for one step;
- the paper's GRU (reset gate before the matmul, Cho et al. 2014 eq. 8), which PyTorch
  does not offer, against a small autograd implementation written here;
- central finite differences (float64) for every cell, parameter, input and initial state;
- ``torch.nn.utils.clip_grad_norm_`` for the clipping; ``F.mse_loss`` for the loss;
- a whole training step (LSTM, linear read-out, MSE, clipping, Adam) against the same
  step in torch.nn + torch.optim, three steps in a row.

Run from the repository root: ``pytest 06_LSTM_GRU/numpy``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from utils import import_lesson
from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    OPTIMIZER_TRAJECTORY,
    Tol,
    assert_close,
    assert_level_purity,
    check_layer_gradients,
    float32_tol,
    numerical_gradient,
)

rn = import_lesson("06_LSTM_GRU.numpy.rnn_numpy")
train = import_lesson("06_LSTM_GRU.numpy.train")  # the script: adding problem, plots

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# float32 against float64: rounding of ~1e-7 per operation, compounded over the steps and
# over sums of T*N terms in the weight gradients: K = T * (D + 4H) * N per path, under 1024
# here (scaled float32 tolerance, utils/testing.py)
FLOAT32_SEQUENCE = float32_tol(1024)

few_examples = settings(max_examples=15, deadline=None)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

# name -> (constructor of the L1 layer, torch class or None, constructor kwargs)
CELLS = {
    "rnn": (rn.RNN, torch.nn.RNN, {}),
    "lstm": (rn.LSTM, torch.nn.LSTM, {}),
    "gru_reset_after": (rn.GRU, torch.nn.GRU, {"reset_after": True}),
    "gru_paper": (rn.GRU, None, {"reset_after": False}),
}
TORCH_CELLS = [name for name, (_, ref, _) in CELLS.items() if ref is not None]


def make_layer(name: str, input_size: int, hidden: int, seed: int = 1, dtype=np.float64):
    cls, _, kwargs = CELLS[name]
    return cls(input_size, hidden, seed=seed, dtype=dtype, **kwargs)


def torch_twin(layer):
    """The torch.nn module with the L1 layer's weights (float64)."""
    ref_cls = {rn.RNN: torch.nn.RNN, rn.LSTM: torch.nn.LSTM, rn.GRU: torch.nn.GRU}[type(layer)]
    ref = ref_cls(layer.input_size, layer.hidden_size, batch_first=True).double()
    with torch.no_grad():
        for name, value in layer.params.items():
            getattr(ref, torch_name(name)).copy_(torch.from_numpy(value))
    return ref


def torch_name(name: str) -> str:
    """W_ih -> weight_ih_l0, b_hh -> bias_hh_l0."""
    return name.replace("W_", "weight_").replace("b_", "bias_") + "_l0"


def paper_gru_torch(x, h0, p):
    """The paper's GRU (Cho et al. 2014 eqs. 5-8), written with autograd ops, batch first.

    x (N, T, D), h0 (N, H), p - dict of tensors W_ih (3H, D), W_hh (3H, H), b_ih, b_hh.
    Returns: (hs (N, T, H), h_T).
    """
    H = h0.shape[1]
    W_ir, W_iz, W_in = p["W_ih"].split(H)
    W_hr, W_hz, W_hn = p["W_hh"].split(H)
    b_ir, b_iz, b_in = p["b_ih"].split(H)
    b_hr, b_hz, b_hn = p["b_hh"].split(H)
    h, outs = h0, []
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = torch.sigmoid(xt @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(xt @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = torch.tanh(xt @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, dim=1), h


def random_problem(name, n, T, d, h, seed=0):
    """Inputs, initial states and upstream gradients for every output and final state."""
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, T, d)), "h0": rng.standard_normal((n, h)),
            "c0": rng.standard_normal((n, h)) if name == "lstm" else None,
            "dhs": rng.standard_normal((n, T, h)), "dh_n": rng.standard_normal((n, h)),
            "dc_n": rng.standard_normal((n, h)) if name == "lstm" else None}


def l1_forward(layer, prob):
    if isinstance(layer, rn.LSTM):
        return layer.forward(prob["x"], prob["h0"], prob["c0"])
    return layer.forward(prob["x"], prob["h0"])


def l1_backward(layer, prob):
    if isinstance(layer, rn.LSTM):
        return layer.backward(prob["dhs"], prob["dh_n"], prob["dc_n"])
    return layer.backward(prob["dhs"], prob["dh_n"])


def l1_loss(layer, prob) -> float:
    """L = sum(hs * dhs) + sum(h_n * dh_n) [+ sum(c_n * dc_n)]: all outputs and final states."""
    hs = l1_forward(layer, prob)
    loss = np.sum(hs * prob["dhs"]) + np.sum(layer.h_n * prob["dh_n"])
    if isinstance(layer, rn.LSTM):
        loss += np.sum(layer.c_n * prob["dc_n"])
    return float(loss)


# ---------------------------------------------------------------------------
# The level's rules and the import guard
# ---------------------------------------------------------------------------


def test_level_purity():
    assert_level_purity(HERE)


def test_shadowing_guard_explains_how_to_run():
    """Python started inside 06_LSTM_GRU/ must not silently use this folder as NumPy."""
    result = subprocess.run([sys.executable, "-c", "import numpy"], cwd=HERE.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "python 06_LSTM_GRU/numpy/train.py" in result.stderr


def test_importing_the_lesson_does_not_import_torch():
    code = ("import sys, importlib\n"
            "importlib.import_module('06_LSTM_GRU.numpy.rnn_numpy')\n"
            "importlib.import_module('06_LSTM_GRU.numpy.train')\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Against PyTorch: forward, final states and every gradient, float64
# ---------------------------------------------------------------------------

SHAPES = [(2, 5, 3, 4), (1, 1, 2, 3), (3, 7, 1, 2), (4, 3, 5, 6)]  # (N, T, D, H)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-T{}-D{}-H{}".format(*s))
@pytest.mark.parametrize("name", TORCH_CELLS)
def test_layer_equals_torch_forward_and_every_gradient(name, shape):
    n, T, d, h = shape
    layer = make_layer(name, d, h)
    ref = torch_twin(layer)
    prob = random_problem(name, n, T, d, h)
    hs = l1_forward(layer, prob)
    dx = l1_backward(layer, prob)

    x_t = torch.tensor(prob["x"], requires_grad=True)
    h0_t = torch.tensor(prob["h0"][None], requires_grad=True)  # torch: (layers, N, H)
    if name == "lstm":
        c0_t = torch.tensor(prob["c0"][None], requires_grad=True)
        out, (h_n, c_n) = ref(x_t, (h0_t, c0_t))
        loss = (c_n[0] * torch.from_numpy(prob["dc_n"])).sum()
        assert_close(layer.c_n, c_n[0], FLOAT64, name="c_n")
    else:
        out, h_n = ref(x_t, h0_t)
        loss = 0.0
    loss = loss + (out * torch.from_numpy(prob["dhs"])).sum() + (
        h_n[0] * torch.from_numpy(prob["dh_n"])).sum()
    loss.backward()

    assert_close(hs, out, FLOAT64, name="hs")
    assert_close(layer.h_n, h_n[0], FLOAT64, name="h_n")
    assert_close(dx, x_t.grad, FLOAT64, name="dL/dx")
    assert_close(layer.dh0, h0_t.grad[0], FLOAT64, name="dL/dh0")
    if name == "lstm":
        assert_close(layer.dc0, c0_t.grad[0], FLOAT64, name="dL/dc0")
    for key, grad in layer.grads.items():
        assert_close(grad, getattr(ref, torch_name(key)).grad, FLOAT64, name=f"dL/d{key}")


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "N{}-T{}-D{}-H{}".format(*s))
def test_paper_gru_equals_autograd_implementation(shape):
    """reset_after=False, the form PyTorch lacks, against the autograd GRU written above."""
    n, T, d, h = shape
    layer = make_layer("gru_paper", d, h)
    prob = random_problem("gru_paper", n, T, d, h)
    hs = l1_forward(layer, prob)
    dx = l1_backward(layer, prob)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
    x_t = torch.tensor(prob["x"], requires_grad=True)
    h0_t = torch.tensor(prob["h0"], requires_grad=True)
    out, h_n = paper_gru_torch(x_t, h0_t, params)
    ((out * torch.from_numpy(prob["dhs"])).sum()
     + (h_n * torch.from_numpy(prob["dh_n"])).sum()).backward()
    assert_close(hs, out, FLOAT64, name="hs")
    assert_close(layer.h_n, h_n, FLOAT64, name="h_n")
    assert_close(dx, x_t.grad, FLOAT64, name="dL/dx")
    assert_close(layer.dh0, h0_t.grad, FLOAT64, name="dL/dh0")
    for key, grad in layer.grads.items():
        assert_close(grad, params[key].grad, FLOAT64, name=f"dL/d{key}")


def test_the_two_gru_forms_differ():
    """Same weights, different numbers: where the reset gate acts matters."""
    paper, after = make_layer("gru_paper", 3, 4), make_layer("gru_reset_after", 3, 4)
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    assert np.max(np.abs(paper.forward(x) - after.forward(x))) > 1e-3


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_one_step_equals_torch_cell(name):
    """The step functions (cell forward) against nn.RNNCell / nn.LSTMCell / nn.GRUCell."""
    rng = np.random.default_rng(3)
    d, h, n = 3, 5, 4
    layer = make_layer(name, d, h)
    p = layer.params
    x, h_prev, c_prev = (rng.standard_normal((n, k)) for k in (d, h, h))
    cell_cls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell,
                "gru_reset_after": torch.nn.GRUCell}[name]
    cell = cell_cls(d, h).double()
    with torch.no_grad():
        for key, value in p.items():
            getattr(cell, torch_name(key).removesuffix("_l0")).copy_(torch.from_numpy(value))
    x_t, h_t, c_t = (torch.from_numpy(a) for a in (x, h_prev, c_prev))
    H = h
    if name == "rnn":
        got, _ = rn.rnn_step(x @ p["W_ih"].T + p["b_ih"] + p["b_hh"], h_prev, p["W_hh"])
        assert_close(got, cell(x_t, h_t), FLOAT64, name="h")
    elif name == "lstm":
        got_h, got_c, _ = rn.lstm_step(x @ p["W_ih"].T + p["b_ih"] + p["b_hh"], h_prev, c_prev,
                                       p["W_hh"])
        ref_h, ref_c = cell(x_t, (h_t, c_t))
        assert_close(got_h, ref_h, FLOAT64, name="h")
        assert_close(got_c, ref_c, FLOAT64, name="c")
    else:
        early = p["b_hh"].copy()
        early[2 * H:] = 0
        got, _ = rn.gru_step(x @ p["W_ih"].T + p["b_ih"] + early, h_prev, p["W_hh"],
                             p["b_hh"][2 * H:], True)
        assert_close(got, cell(x_t, h_t), FLOAT64, name="h")


# ---------------------------------------------------------------------------
# Finite differences: every cell, parameter, input and initial state
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_bptt_equals_finite_differences(name):
    n, T, d, h = 2, 4, 3, 3
    layer = make_layer(name, d, h, seed=2)
    prob = random_problem(name, n, T, d, h, seed=5)
    l1_forward(layer, prob)
    analytic = {"x": l1_backward(layer, prob), "h0": layer.dh0.copy()}
    if name == "lstm":
        analytic["c0"] = layer.dc0.copy()
    analytic.update({k: v.copy() for k, v in layer.grads.items()})

    def loss() -> float:
        return l1_loss(layer, prob)

    for key, value in analytic.items():
        target = layer.params[key] if key in layer.params else prob[key]
        assert_close(value, numerical_gradient(loss, target), FINITE_DIFF, name=f"dL/d{key}")


@pytest.mark.parametrize("name", list(CELLS))
def test_layer_protocol_gradient_check(name):
    """utils.testing.check_layer_gradients: forward(x) with zero initial states."""
    layer = make_layer(name, 2, 3, seed=4)
    x = np.random.default_rng(6).standard_normal((2, 3, 2))
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"x", "W_ih", "W_hh", "b_ih", "b_hh"}


# ---------------------------------------------------------------------------
# What BPTT shows: dL/dh_t per step, the carousel, vanishing gradients
# ---------------------------------------------------------------------------


def test_dh_per_step_is_the_total_gradient_at_each_state():
    """RNN: dL/dh_t from the backward pass equals autograd's on a hand-unrolled loop."""
    layer = make_layer("rnn", 2, 3)
    prob = random_problem("rnn", 2, 6, 2, 3, seed=7)
    l1_forward(layer, prob)
    l1_backward(layer, prob)
    p = {k: torch.from_numpy(v) for k, v in layer.params.items()}
    h = torch.tensor(prob["h0"], requires_grad=True)
    states = []
    for t in range(6):
        h = torch.tanh(torch.from_numpy(prob["x"][:, t]) @ p["W_ih"].T + p["b_ih"]
                       + h @ p["W_hh"].T + p["b_hh"])
        h.retain_grad()
        states.append(h)
    loss = sum((s * torch.from_numpy(prob["dhs"][:, t])).sum() for t, s in enumerate(states))
    (loss + (h * torch.from_numpy(prob["dh_n"])).sum()).backward()
    expected = torch.stack([s.grad for s in states], dim=1)
    assert_close(layer.dh_per_step, expected, FLOAT64, name="dL/dh_t")


def test_constant_error_carousel_carries_dc_unchanged():
    """With f = 1 and i = o = 0 (saturated gates), dL/dc_T flows back to c_0 untouched:
    dL/dc_{t-1} = f_t dL/dc_t, no weight matrix, no squashing."""
    layer = make_layer("lstm", 2, 3)
    H = 3
    layer.params["W_ih"][...] = 0
    layer.params["W_hh"][...] = 0
    layer.params["b_hh"][...] = 0
    layer.params["b_ih"][...] = -40.0  # i, o ~ 0 ...
    layer.params["b_ih"][H:2 * H] = 40.0  # ... f ~ 1
    x = np.random.default_rng(8).standard_normal((2, 50, 2))
    c0 = np.random.default_rng(9).standard_normal((2, H))
    layer.forward(x, None, c0)
    assert_close(layer.c_n, c0, FLOAT64, name="c_T = c_0")
    dc_n = np.random.default_rng(10).standard_normal((2, H))
    layer.backward(np.zeros((2, 50, H)), None, dc_n)
    assert_close(layer.dc0, dc_n, FLOAT64, name="dL/dc_0 = dL/dc_T after 50 steps")


def test_tanh_rnn_gradient_vanishes_with_small_weights():
    """||W_hh|| < 1 and |tanh'| <= 1: ||dL/dh_{t-1}|| <= ||W_hh||_2 ||dL/dh_t|| every step."""
    layer = make_layer("rnn", 2, 8, seed=3)
    spectral = np.linalg.norm(layer.params["W_hh"], 2)
    assert spectral < 1
    x = np.random.default_rng(11).standard_normal((1, 20, 2))
    layer.forward(x)
    dhs = np.zeros((1, 20, 8))
    dhs[0, -1] = 1.0
    layer.backward(dhs)
    norms = np.linalg.norm(layer.dh_per_step[0], axis=1)  # (T,)
    assert np.all(norms[:-1] <= spectral * norms[1:] * (1 + 1e-12))
    assert norms[0] < 1e-3 * norms[-1]


# ---------------------------------------------------------------------------
# Shapes (hypothesis), float32, clipping, the loss
# ---------------------------------------------------------------------------


@few_examples
@given(name=st.sampled_from(TORCH_CELLS), n=st.integers(1, 4), T=st.integers(1, 6),
       d=st.integers(1, 4), h=st.integers(1, 5))
def test_random_shapes_equal_torch(name, n, T, d, h):
    layer = make_layer(name, d, h)
    ref = torch_twin(layer)
    x = np.random.default_rng(n * 100 + T).standard_normal((n, T, d))
    hs = layer.forward(x)
    assert hs.shape == (n, T, h)
    dhs = np.ones((n, T, h))
    dx = layer.backward(dhs)
    x_t = torch.tensor(x, requires_grad=True)
    out = ref(x_t)[0]
    out.backward(torch.from_numpy(dhs))
    assert_close(hs, out, FLOAT64, name="hs")
    assert_close(dx, x_t.grad, FLOAT64, name="dx")
    assert layer.dh0.shape == (n, h)


@pytest.mark.parametrize("name", list(CELLS))
def test_float32_stays_float32_and_matches_float64(name):
    layer64 = make_layer(name, 3, 4)
    layer32 = make_layer(name, 3, 4, dtype=np.float32)
    for key in layer64.params:  # the same numbers, rounded to float32
        layer64.params[key][...] = layer32.params[key]
    x = np.random.default_rng(12).standard_normal((2, 6, 3))
    dhs = np.random.default_rng(13).standard_normal((2, 6, 4))
    hs32, hs64 = layer32.forward(x.astype(np.float32)), layer64.forward(x)
    dx32, dx64 = layer32.backward(dhs.astype(np.float32)), layer64.backward(dhs)
    assert hs32.dtype == dx32.dtype == layer32.dh0.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer32.grads.values())
    assert_close(hs32, hs64, FLOAT32, name="hs")
    assert_close(dx32, dx64, FLOAT32_SEQUENCE, name="dx")
    for key in layer64.grads:
        assert_close(layer32.grads[key], layer64.grads[key], FLOAT32_SEQUENCE, name=key)


def test_sigmoid_is_stable_and_exact():
    a = np.array([-1000.0, -30.0, -1.0, 0.0, 2.5, 1000.0])
    assert_close(rn.sigmoid(a), torch.sigmoid(torch.from_numpy(a)), FLOAT64, name="sigmoid")
    a32 = np.array([-200.0, 200.0], dtype=np.float32)
    with np.errstate(all="raise"):  # no overflow warning
        assert rn.sigmoid(a32).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("max_norm", [0.5, 1e6, 0.0])
def test_clip_grad_norm_equals_torch(max_norm):
    rng = np.random.default_rng(14)
    grads = [{"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)},
             {"c": rng.standard_normal((2, 2, 2))}]
    tensors = [torch.zeros(1, requires_grad=True) for _ in range(3)]
    for t, g in zip(tensors, [grads[0]["a"], grads[0]["b"], grads[1]["c"]]):
        t.data = torch.zeros(g.shape, dtype=torch.float64)
        t.grad = torch.tensor(g)
    expected_total = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    total = rn.clip_grad_norm(grads, max_norm)
    assert_close(total, expected_total, FLOAT64, name="total norm")
    for t, g in zip(tensors, [grads[0]["a"], grads[0]["b"], grads[1]["c"]]):
        assert_close(g, t.grad, FLOAT64, name="clipped gradient")
    if max_norm < total:
        new_total = np.sqrt(sum(np.sum(g**2) for d in grads for g in d.values()))
        assert_close(new_total, max_norm, Tol(rtol=1e-5, atol=1e-9), name="norm after clip")


def test_clip_grad_norm_takes_a_layer_dict_and_rejects_bad_input():
    layer = make_layer("lstm", 2, 3)
    layer.forward(np.ones((1, 2, 2)))
    layer.backward(np.ones((1, 2, 3)) * 100)
    before = {k: v.copy() for k, v in layer.grads.items()}
    total = rn.clip_grad_norm(layer.grads, 1.0)
    assert total > 1.0
    for k in before:  # same direction, scaled by 1 / (total + 1e-6)
        assert_close(layer.grads[k], before[k] / (total + 1e-6), FLOAT64, name=k)
    with pytest.raises(ValueError):
        rn.clip_grad_norm(layer.grads, -1.0)
    with pytest.raises(TypeError):
        rn.clip_grad_norm(np.ones(3), 1.0)


def test_mse_loss_equals_torch():
    rng = np.random.default_rng(15)
    p, y = rng.standard_normal(7), rng.standard_normal(7)
    loss, grad = rn.mse_loss(p, y)
    p_t = torch.tensor(p, requires_grad=True)
    ref = F.mse_loss(p_t, torch.from_numpy(y))
    ref.backward()
    assert_close(loss, ref, FLOAT64, name="MSE")
    assert_close(grad, p_t.grad, FLOAT64, name="dMSE/dp")
    with pytest.raises(ValueError):
        rn.mse_loss(p, y[:3])


# ---------------------------------------------------------------------------
# Bad input: clear errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_bad_input_raises_clear_errors(name):
    layer = make_layer(name, 3, 4)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"\(N, T, input_size=3\)"):
        layer.forward(np.zeros((5, 3)))  # not 3-D
    with pytest.raises(ValueError, match=r"\(N, T, input_size=3\)"):
        layer.forward(np.zeros((2, 5, 4)))  # wrong D
    with pytest.raises(ValueError, match="at least one"):
        layer.forward(np.zeros((2, 0, 3)))  # no time step
    with pytest.raises(ValueError, match="h0 must have shape"):
        layer.forward(np.zeros((2, 5, 3)), np.zeros((3, 4)))
    with pytest.raises(TypeError):
        layer.forward(np.array([[["a", "b", "c"]]]))
    if name == "lstm":
        with pytest.raises(ValueError, match="c0 must have shape"):
            layer.forward(np.zeros((2, 5, 3)), None, np.zeros((2, 5)))
    layer.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="dhs"):
        layer.backward(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="dh_n must have shape"):
        layer.backward(np.zeros((2, 5, 4)), np.zeros(4))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        rn.LSTM(3, 0)
    with pytest.raises(ValueError, match="input_size"):
        rn.RNN(2.5, 3)
    with pytest.raises(ValueError, match="dtype"):
        rn.GRU(3, 4, dtype=np.int32)
    with pytest.raises(TypeError, match="reset_after"):
        rn.GRU(3, 4, reset_after="yes")
    with pytest.raises(ValueError, match="unknown cell"):
        rn.SequenceRegressor("transformer", 2, 3)


def test_initialisation_follows_torch():
    """U(-1/sqrt(H), 1/sqrt(H)) for every array, the same seed gives the same weights."""
    layer = rn.LSTM(16, 64, seed=0)
    bound = 1 / 8
    for key, value in layer.params.items():
        assert value.shape == tuple(getattr(torch.nn.LSTM(16, 64), torch_name(key)).shape)
        assert np.abs(value).max() <= bound
    assert abs(layer.params["W_hh"].std() - bound / np.sqrt(3)) < 0.01  # std of U(-b, b)
    again = rn.LSTM(16, 64, seed=0)
    assert all(np.array_equal(layer.params[k], again.params[k]) for k in layer.params)


# ---------------------------------------------------------------------------
# The model and a training step against torch.nn + torch.optim
# ---------------------------------------------------------------------------


def test_training_steps_follow_torch():
    """LSTM -> Linear(h_T) -> MSE -> clip_grad_norm -> Adam, three steps, against torch."""
    mlp = import_lesson("02_MLP.numpy.mlp_numpy")
    model = rn.SequenceRegressor("lstm", 2, 5, seed=3)
    lstm, head = torch_twin(model.rnn), torch.nn.Linear(5, 1).double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.head.W.T))  # lesson 02 stores W as (in, out)
        head.bias.copy_(torch.from_numpy(model.head.b))
    torch_params = list(lstm.parameters()) + list(head.parameters())
    optimizer = mlp.Adam(model, lr=0.05)
    torch_optimizer = torch.optim.Adam(torch_params, lr=0.05)
    for step in range(3):
        X, y = train.make_adding_problem(8, 6, seed=step)
        X, y = X.astype(np.float64), y.astype(np.float64)
        pred = model.forward(X)
        loss, dpred = rn.mse_loss(pred[:, 0], y)
        model.backward(dpred[:, None])
        total = rn.clip_grad_norm(model.grads, 0.1)

        torch_optimizer.zero_grad()
        out, _ = lstm(torch.from_numpy(X))
        ref_loss = F.mse_loss(head(out[:, -1])[:, 0], torch.from_numpy(y))
        ref_loss.backward()
        ref_total = torch.nn.utils.clip_grad_norm_(torch_params, 0.1)
        assert_close(loss, ref_loss, FLOAT64, name=f"loss, step {step}")
        assert_close(total, ref_total, FLOAT64, name=f"gradient norm, step {step}")
        optimizer.step()
        torch_optimizer.step()
    for key, value in model.rnn.params.items():
        assert_close(value, getattr(lstm, torch_name(key)), OPTIMIZER_TRAJECTORY, name=key)
    assert_close(model.head.W.T, head.weight, OPTIMIZER_TRAJECTORY, name="head.W")


def test_classifier_with_softmax_cross_entropy_follows_torch():
    """output_size = K and lesson 02's SoftmaxCrossEntropy: the gradients of F.cross_entropy."""
    mlp = import_lesson("02_MLP.numpy.mlp_numpy")
    model = rn.SequenceRegressor("gru", 3, 4, output_size=5, reset_after=True, seed=2)
    rng = np.random.default_rng(16)
    x, labels = rng.standard_normal((6, 7, 3)), rng.integers(0, 5, size=6)
    loss_fn = mlp.SoftmaxCrossEntropy()
    loss = loss_fn.forward(model.forward(x), labels)
    dx = model.backward(loss_fn.backward())
    gru, head = torch_twin(model.rnn), torch.nn.Linear(4, 5).double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.head.W.T))
        head.bias.copy_(torch.from_numpy(model.head.b))
    x_t = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(head(gru(x_t)[0][:, -1]), torch.from_numpy(labels))
    ref.backward()
    assert_close(loss, ref, FLOAT64, name="cross-entropy")
    assert_close(dx, x_t.grad, FLOAT64, name="dL/dx")
    assert_close(model.grads["rnn.W_hh"], gru.weight_hh_l0.grad, FLOAT64, name="dL/dW_hh")
    assert_close(model.grads["head.W"], head.weight.grad.T, FLOAT64, name="dL/dhead.W")


def test_regressor_params_are_the_layers_arrays():
    model = rn.SequenceRegressor("gru", 2, 3, reset_after=True)
    assert set(model.params) == {"rnn.W_ih", "rnn.W_hh", "rnn.b_ih", "rnn.b_hh", "head.W",
                                 "head.b"}
    assert model.params["rnn.W_hh"] is model.rnn.params["W_hh"]
    assert model.grads["head.W"] is model.head.grads["W"]
    assert model.num_params() == (9 * 2 + 9 * 3 + 9 + 9) + (3 + 1)
    assert model.rnn.reset_after


def test_gradient_norms_over_time_show_the_vanishing_gradient():
    """The picture main() draws: a fresh tanh RNN's ||dL/dh_1|| is far below ||dL/dh_T||,
    and a forget-gate bias of 1 keeps much more of an LSTM's gradient than bias 0."""
    rnn_norms = train.gradient_norms_over_time("rnn", 20, 8, seed=0, n=16)
    lstm0 = train.gradient_norms_over_time("lstm", 20, 8, seed=0, n=16)
    lstm1 = train.gradient_norms_over_time("lstm", 20, 8, seed=0, n=16, forget_bias=1.0)
    assert rnn_norms.shape == (20,)
    assert rnn_norms[0] < 1e-3 * rnn_norms[-1]
    assert lstm1[0] / lstm1[-1] > 100 * lstm0[0] / lstm0[-1]


# ---------------------------------------------------------------------------
# The script
# ---------------------------------------------------------------------------


def test_script_tiny_config(tmp_path):
    metrics = train.main(["--cell", "lstm", "--seq-len", "6", "--epochs", "3",
                          "--train-size", "256", "--test-size", "128", "--hidden", "8",
                          "--batch-size", "32", "--out", str(tmp_path), "--no-progress"])
    assert set(metrics) >= {"test_mse", "baseline_mse", "mse_ratio"}
    assert_close(metrics["baseline_mse"], 1 / 6, FLOAT64, name="baseline")
    assert_close(metrics["mse_ratio"], metrics["test_mse"] / metrics["baseline_mse"], FLOAT64,
                 name="ratio")
    assert 0 < metrics["test_mse"] < metrics["baseline_mse"]  # learns something even this short
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "gradient_norms.png").is_file()


def test_script_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        train.main(["--seq-len", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        train.main(["--cell", "transformer", "--out", str(tmp_path)])


@pytest.mark.slow
def test_default_run_beats_the_baseline(tmp_path):
    """The default run (LSTM, T = 30, 12 epochs; about 10 s on an idle core)."""
    metrics = train.main(["--out", str(tmp_path), "--no-progress"])
    assert metrics["mse_ratio"] < 0.1


def test_lstm_benchmark_smoke(tmp_path):
    bench = import_lesson("benchmarks.bench_lstm")
    results = bench.main(["--batch", "2", "--seq-len", "3", "--hidden", "4", "--repeats", "1",
                          "--json", str(tmp_path / "bench.json")])
    assert_close(results["ratio_l1_vs_torch"], results["l1_ms"] / results["torch_ms"], FLOAT64)
    assert results["max_abs_difference"] < 1e-5  # float32, the same numbers
    assert (tmp_path / "bench.json").is_file()


def test_script_reshuffles_the_training_set_every_epoch(tmp_path, monkeypatch):
    """The script's own loop: each epoch visits every training sequence once, in a new order."""
    seen = []
    forward = rn.SequenceRegressor.forward

    def recording(self, x):
        if len(x) == 16:  # a training batch (evaluation reads 8 or 64 rows at once)
            seen.append(np.asarray(x)[:, :, 0].sum(axis=1))  # each sequence's value sum
        return forward(self, x)

    monkeypatch.setattr(rn.SequenceRegressor, "forward", recording)
    metrics = train.main(["--seq-len", "4", "--epochs", "2", "--train-size", "64",
                          "--test-size", "8", "--hidden", "4", "--batch-size", "16",
                          "--out", str(tmp_path), "--no-progress"])
    X, _ = train.make_adding_problem(64, 4, seed=0)  # the script's training set (seed 0)
    stored = X[:, :, 0].astype(np.float32).sum(axis=1)  # its order on file
    first, second = np.concatenate(seen[:4]), np.concatenate(seen[4:])
    assert len(seen) == 8  # 2 epochs of 4 batches
    for order in (first, second):
        assert_close(np.sort(order), np.sort(stored), Tol(1e-6, 1e-6), name="one epoch")
    assert not np.allclose(first, stored) and not np.allclose(first, second)  # shuffled
    assert np.isfinite(metrics["test_mse"]) and metrics["train_mse"] > 0


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-1"), ("--hidden", "0"),
    ("--seq-len", "0"), ("--clip", "-1"), ("--train-size", "0"), ("--test-size", "0"),
    ("--threads", "-1")])
def test_script_bad_numbers_are_usage_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err, err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--train-size" in out and "default: None" not in out
