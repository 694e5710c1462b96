"""Tests of lesson 06, Level 2: RNN / LSTM / GRU from tensors, against torch.nn's own.

- rnn_forward / lstm_forward / gru_forward(reset_after=True) == nn.RNN / nn.LSTM / nn.GRU
  with copied weights: every hidden state, the final state(s), and the gradients of the
  input, the initial state(s) and all four parameters; float64 (1e-10) and float32 (1e-5);
  zero initial states by default
- the paper-form GRU (reset_after=False) == nn.GRU wherever the two forms must agree (reset
  gate forced open), and differs from it elsewhere
- random shapes from hypothesis
- clip_grad_norm == torch.nn.utils.clip_grad_norm_ (below and above the limit)
- the Adam step this level uses (lesson 02's adam_step) == torch.optim.Adam over 10 steps
- bad input raises clear errors; the level's purity rule; the script learns the task

Run: .venv/bin/python -m pytest 06_LSTM_GRU/pytorch_lowlevel -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from utils import import_lesson
from utils.testing import (
    FLOAT64,
    OPTIMIZER_TRAJECTORY,
    assert_close,
    assert_level_purity,
    tolerance,
)

low = import_lesson("06_LSTM_GRU.pytorch_lowlevel.rnn_lowlevel")
train = import_lesson("06_LSTM_GRU.pytorch_lowlevel.train")  # the script

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

DTYPES = [torch.float64, torch.float32]
REFERENCE = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@pytest.fixture(autouse=True, scope="module")
def _no_tf32():
    """No TF32 on a GPU: it would round float32 products far beyond the float32 tolerance."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _reference(cell: str, params: dict, dtype, device):
    """nn.RNN / nn.LSTM / nn.GRU (batch_first) holding copies of ``params``."""
    H = params["W_hh"].shape[1]
    ref = REFERENCE[cell](params["W_ih"].shape[1], H, batch_first=True).to(device, dtype)
    with torch.no_grad():
        for ours, theirs in zip(low.PARAM_NAMES, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                  "bias_hh_l0")):
            getattr(ref, theirs).copy_(params[ours])
    return ref


def _run_ours(cell, x, states, params, reset_after=True):
    if cell == "rnn":
        hs, h = low.rnn_forward(x, states[0], params)
        return hs, (h,)
    if cell == "lstm":
        hs, (h, c) = low.lstm_forward(x, states[0], states[1], params)
        return hs, (h, c)
    hs, h = low.gru_forward(x, states[0], params, reset_after=reset_after)
    return hs, (h,)


def _run_ref(cell, ref, x, states):
    hx = tuple(s.unsqueeze(0) for s in states)  # (1, N, H): one layer, one direction
    hs, h_n = ref(x, hx if cell == "lstm" else hx[0])
    finals = h_n if cell == "lstm" else (h_n,)
    return hs, tuple(f.squeeze(0) for f in finals)


def _leaf(t):
    return t.detach().clone().requires_grad_()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_forward_and_all_gradients_equal_torch_nn(cell, dtype, device):
    N, T, D, H = 3, 7, 4, 5
    tol = tolerance(dtype, device)
    params = low.init_params(cell, D, H, seed=1, dtype=dtype, device=device)
    ref = _reference(cell, params, dtype, device)
    g = torch.Generator().manual_seed(2)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(device, dtype)  # noqa: E731
    x = rand(N, T, D)
    states = [rand(N, H) for _ in range(2 if cell == "lstm" else 1)]
    dhs, dfinal = rand(N, T, H), [rand(N, H) for _ in states]

    x1, s1 = _leaf(x), [_leaf(s) for s in states]
    hs1, fin1 = _run_ours(cell, x1, s1, params)
    x2, s2 = _leaf(x), [_leaf(s) for s in states]
    hs2, fin2 = _run_ref(cell, ref, x2, s2)
    assert_close(hs1, hs2, tol, f"{cell} hs")
    for a, b, name in zip(fin1, fin2, ("h_n", "c_n")):
        assert_close(a, b, tol, f"{cell} {name}")
    # one backward pass through a loss that uses every output
    for hs, fin in ((hs1, fin1), (hs2, fin2)):
        ((hs * dhs).sum() + sum((f * d).sum() for f, d in zip(fin, dfinal))).backward()
    assert_close(x1.grad, x2.grad, tol, f"{cell} dx")
    for a, b, name in zip(s1, s2, ("dh0", "dc0")):
        assert_close(a.grad, b.grad, tol, f"{cell} {name}")
    for ours, theirs in zip(low.PARAM_NAMES, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                              "bias_hh_l0")):
        assert_close(params[ours].grad, getattr(ref, theirs).grad, tol, f"{cell} d{ours}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_zero_initial_state_is_the_default(cell, device):
    params = low.init_params(cell, 3, 4, seed=0, dtype=torch.float64, device=device)
    x = torch.randn(2, 5, 3, dtype=torch.float64, device=device)
    ref = _reference(cell, params, torch.float64, device)
    hs, _ = _run_ours(cell, x, [None, None], params)
    assert_close(hs, ref(x)[0], tolerance(torch.float64, device), f"{cell} hs with h0=None")


def test_paper_gru_agrees_with_torch_only_where_the_forms_coincide(device):
    """With the reset gate forced open (r = 1) the paper's W_hn (r * h) and PyTorch's
    r * (W_hn h + b_hn) are the same; with r free they are not."""
    D, H = 3, 4
    params = low.init_params("gru", D, H, seed=3, dtype=torch.float64, device=device)
    x = torch.randn(2, 6, D, dtype=torch.float64, device=device)
    h0 = torch.randn(2, H, dtype=torch.float64, device=device)
    ref = _reference("gru", params, torch.float64, device)
    tol = tolerance(torch.float64, device)
    paper, _ = low.gru_forward(x, h0, params, reset_after=False)
    torch_form, _ = ref(x, h0.unsqueeze(0))
    assert (paper - torch_form).abs().max() > 1e-3  # genuinely different maps
    with torch.no_grad():
        params["b_ih"][:H] = 60.0  # sigmoid(60 + ...) == 1 in float64
        ref.bias_ih_l0[:H] = 60.0
    paper, _ = low.gru_forward(x, h0, params, reset_after=False)
    assert_close(paper, ref(x, h0.unsqueeze(0))[0], tol, "paper GRU with r = 1")


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), t=st.integers(1, 6), d=st.integers(1, 4), h=st.integers(1, 5),
       cell=st.sampled_from(["rnn", "lstm", "gru"]))
def test_random_shapes_match_torch(n, t, d, h, cell):
    params = low.init_params(cell, d, h, seed=n + t, dtype=torch.float64)
    x = torch.randn(n, t, d, dtype=torch.float64)
    hs, fin = _run_ours(cell, x, [None, None], params)
    ref_hs, ref_fin = _run_ref(cell, _reference(cell, params, torch.float64, "cpu"), x,
                               [torch.zeros(n, h, dtype=torch.float64)] * len(fin))
    assert hs.shape == (n, t, h)
    assert_close(hs, ref_hs, tolerance(torch.float64), "hs")
    assert_close(fin[0], hs[:, -1], tolerance(torch.float64), "h_n is the last hidden state")


@pytest.mark.parametrize("max_norm", [1e-2, 1e3], ids=["clipped", "untouched"])
def test_clip_grad_norm_equals_torch(max_norm, device):
    torch.manual_seed(0)
    a = [torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True),
         torch.randn(5, dtype=torch.float64, device=device, requires_grad=True)]
    b = [_leaf(p) for p in a]
    for ps in (a, b):
        (ps[0].sin().sum() * 3 + (ps[1] ** 2).sum()).backward()
    total = low.clip_grad_norm(a, max_norm)
    ref_total = nn.utils.clip_grad_norm_(b, max_norm)
    tol = tolerance(torch.float64, device)
    assert_close(total, ref_total, tol, "total norm")
    for p, q in zip(a, b):
        assert_close(p.grad, q.grad, tol, "clipped gradient")


def test_adam_equals_torch_optim_adam(device):
    """The level's Adam step (lesson 02's adam_step) on an LSTM's four parameters."""
    params = low.init_params("lstm", 3, 4, seed=5, dtype=torch.float64, device=device)
    ref = [_leaf(p) for p in params.values()]
    theirs = torch.optim.Adam(ref, lr=1e-2, betas=(0.8, 0.99), eps=1e-6)
    x = torch.randn(2, 4, 3, dtype=torch.float64, device=device)

    def loss(ps):
        hs, _ = low.lstm_forward(x, None, None, dict(zip(low.PARAM_NAMES, ps)))
        return (hs ** 2).sum()

    ours, state = list(params.values()), None
    for _ in range(10):
        low.zero_grad(ours)
        loss(ours).backward()
        state = low.adam_step(ours, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, state=state)
        theirs.zero_grad()
        loss(ref).backward()
        theirs.step()
    for a, b in zip(params.values(), ref):
        assert_close(a, b, OPTIMIZER_TRAJECTORY, "parameters after 10 Adam steps")


def test_bad_input_raises_clear_errors():
    p = low.init_params("lstm", 3, 4)
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        low.lstm_forward(torch.randn(5, 3), None, None, p)
    with pytest.raises(ValueError, match="W_ih.*input size D=2"):
        low.lstm_forward(torch.randn(1, 5, 2), None, None, p)
    with pytest.raises(ValueError, match=r"h0 must have shape \(N, H\) = \(1, 4\)"):
        low.lstm_forward(torch.randn(1, 5, 3), torch.zeros(2, 4), None, p)
    with pytest.raises(TypeError, match="floating point"):
        low.lstm_forward(torch.ones(1, 5, 3, dtype=torch.int64), None, None, p)
    with pytest.raises(KeyError, match="b_hh"):
        low.rnn_forward(torch.randn(1, 2, 3), None, {k: p[k] for k in ("W_ih", "W_hh", "b_ih")})
    with pytest.raises(ValueError, match="cell must be one of"):
        low.init_params("transformer", 3, 4)
    with pytest.raises(ValueError, match="max_norm"):
        low.clip_grad_norm(p.values(), 0.0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        low.adam_step(list(p.values()), lr=-1.0)


def test_layer_classes_hold_params_and_final_states():
    layer = low.LSTM(3, 4, seed=7, dtype=torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    hs = layer(x)
    ref_hs, (h, c) = low.lstm_forward(x, None, None, layer.params)
    assert_close(hs, ref_hs, tolerance(torch.float64), "hs")
    assert_close(layer.c_n, c, tolerance(torch.float64), "c_n")
    assert all(p.requires_grad for p in layer.parameters())
    assert low.GRU(3, 4).reset_after is False  # the paper's form by default


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


def test_script_learns_the_adding_problem(tmp_path):
    metrics = train.main(["--seq-len", "6", "--steps", "150", "--hidden", "16", "--lr", "3e-2",
                          "--out", str(tmp_path), "--no-progress"])
    assert metrics["mse_ratio"] < 0.3, metrics  # well below always predicting 1
    assert (tmp_path / "loss.png").is_file()


# ---- classic mistakes, each checked with numbers (06_LSTM_GRU/bugs.py plants them) ----


def test_paper_gru_follows_the_papers_equations_step_by_step():
    """gru_forward(reset_after=False) is Cho et al. (2014), eq. 5-8, written out here gate by
    gate for two steps; PyTorch's reset-after form gives other numbers on the same weights."""
    D, H = 3, 4
    p = {k: v.detach() for k, v in low.init_params("gru", D, H, seed=6,
                                                   dtype=torch.float64).items()}
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 2, D, generator=g, dtype=torch.float64)
    h = h0 = torch.randn(5, H, generator=g, dtype=torch.float64)
    W_ir, W_iz, W_in = p["W_ih"].chunk(3)
    W_hr, W_hz, W_hn = p["W_hh"].chunk(3)
    b_ir, b_iz, b_in = p["b_ih"].chunk(3)
    b_hr, b_hz, b_hn = p["b_hh"].chunk(3)
    expected = []
    for t in range(2):
        x_t = x[:, t]
        r = torch.sigmoid(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)  # eq. 5
        z = torch.sigmoid(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)  # eq. 6
        n = torch.tanh(x_t @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)  # eq. 8, reset first
        h = (1 - z) * n + z * h  # eq. 7
        expected.append(h)
    hs, h_n = low.gru_forward(x, h0, p, reset_after=False)
    assert_close(hs, torch.stack(expected, dim=1), FLOAT64, "paper GRU, two steps by hand")
    assert_close(h_n, expected[-1], FLOAT64, "h_n")
    torch_form, _ = low.gru_forward(x, h0, p, reset_after=True)
    assert (torch_form - hs).abs().max() > 1e-3  # a different map


def test_adding_regressor_sets_the_forget_gate_bias_to_one():
    """Gers et al. (2000): b_f = 1 in rows [H, 2H) of the [i, f, g, o] stack, nowhere else."""
    H = 6
    model = low.AddingRegressor("lstm", H, seed=3)
    fresh = low.init_params("lstm", 2, H, seed=3)  # the same draw, before the bias is set
    b, ref = model.layer.params["b_ih"].detach(), fresh["b_ih"].detach()
    assert torch.equal(b[H:2 * H], torch.ones(H))  # the forget gate's slice
    for gate, rows in (("i", slice(0, H)), ("g", slice(2 * H, 3 * H)), ("o", slice(3 * H, None))):
        assert torch.equal(b[rows], ref[rows]), f"the {gate} gate's bias changed"
    assert torch.equal(model.layer.params["b_hh"].detach(), fresh["b_hh"].detach())
    assert model.layer.params["b_ih"].is_leaf  # still a parameter Adam can update


@pytest.mark.parametrize("forward", ["rnn", "lstm", "gru"])
def test_zero_length_sequence_is_a_clear_error(forward):
    p = low.init_params(forward, 3, 4)
    x = torch.randn(2, 0, 3)
    with pytest.raises(ValueError, match=r"at least one time step.*got \(2, 0, 3\)"):
        if forward == "lstm":
            low.lstm_forward(x, None, None, p)
        else:
            getattr(low, f"{forward}_forward")(x, None, p)


@pytest.mark.parametrize("option, value", [
    ("--epochs", "3"),  # not used by a script that counts steps: refused, not ignored
    ("--batch-size", "0"), ("--lr", "-1"), ("--steps", "0"), ("--hidden", "0"),
    ("--seq-len", "1"), ("--seq-len", "0"), ("--clip", "0"), ("--threads", "-1")])
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
    assert "--steps" in out and "default: None" not in out
