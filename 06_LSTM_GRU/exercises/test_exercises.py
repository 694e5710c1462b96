"""Checks for the exercises of lesson 06, against references that do not share their code.

Run them on the reference solutions::

    pytest 06_LSTM_GRU/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 06_LSTM_GRU/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another
way: ``torch.nn.LSTMCell``, ``torch.nn.LSTM``, ``torch.nn.RNN``, PyTorch autograd (with
``detach`` for truncated BPTT), ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``,
``torch.autograd.functional.jacobian``, central finite differences, or values worked out
by hand in theory.md. None compares with the reference solution itself, which would let a
copy of a bug pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from utils.testing import (
    FINITE_DIFF,
    FLOAT64,
    L1_VS_AUTOGRAD,
    Tol,
    assert_close,
    check_exercise_files,
    check_learner_module,
    check_numpy_only,
    check_starter_left_to_learner,
    check_starter_matches_solution,
    exercise_names,
    numerical_gradient,
)

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
STARTERS = HERE / "starters"
EXERCISES = exercise_names(HERE)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def t64(a, requires_grad: bool = False) -> torch.Tensor:
    """A float64 torch copy of a NumPy array."""
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=requires_grad)


# ===========================================================================
# The files themselves: starters and solutions never drift apart
# ===========================================================================


def test_every_exercise_has_its_task_solution_and_starter():
    check_exercise_files(HERE, min_count=3)


@pytest.mark.parametrize("name", EXERCISES)
def test_starter_defines_the_same_functions_as_the_solution(name):
    check_starter_matches_solution(HERE, name)


@pytest.mark.parametrize("name", EXERCISES)
def test_every_starter_function_is_left_to_the_learner(name):
    """Each starter function raises NotImplementedError naming itself, before anything else."""
    check_starter_left_to_learner(HERE, name)


@pytest.mark.parametrize("folder", [SOLUTIONS, STARTERS], ids=["solutions", "starters"])
def test_exercise_files_are_numpy_only(folder):
    """The exercises are L1 work: no torch, scipy or scikit-learn in the files a learner writes."""
    check_numpy_only(folder)


@pytest.mark.parametrize("name", EXERCISES)
def test_your_file_has_the_expected_functions(exercise, name):
    """Your file (or the reference) defines every starter function, with the same parameters."""
    check_learner_module(exercise(name), HERE, name)


# ===========================================================================
# Exercise 01: one LSTM step, forward and backward
# ===========================================================================


def lstm_step_data(n=3, d=4, h=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, d)), "h_prev": rng.standard_normal((n, h)),
            "c_prev": rng.standard_normal((n, h)),
            "W_ih": 0.5 * rng.standard_normal((4 * h, d)),
            "W_hh": 0.5 * rng.standard_normal((4 * h, h)),
            "b_ih": rng.standard_normal(4 * h), "b_hh": rng.standard_normal(4 * h)}


def torch_lstm_cell(data) -> torch.nn.LSTMCell:
    h, d = data["h_prev"].shape[1], data["x"].shape[1]
    cell = torch.nn.LSTMCell(d, h).double()
    with torch.no_grad():
        for name in ("W_ih", "W_hh", "b_ih", "b_hh"):
            getattr(cell, name.replace("W_", "weight_").replace("b_", "bias_")).copy_(
                t64(data[name]))
    return cell


ARGS = ("x", "h_prev", "c_prev", "W_ih", "W_hh", "b_ih", "b_hh")


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 1, 1), (6, 2, 3)])
def test_ex01_forward_and_backward_match_lstm_cell(exercise, shape):
    ex = exercise("ex01_lstm_step_backward")
    data = lstm_step_data(*shape, seed=sum(shape))
    h, c, cache = ex.lstm_cell_forward(*(data[k] for k in ARGS))
    cell = torch_lstm_cell(data)
    x_t, h_t, c_t = (t64(data[k], True) for k in ("x", "h_prev", "c_prev"))
    ref_h, ref_c = cell(x_t, (h_t, c_t))
    assert_close(h, ref_h, FLOAT64, name="h")
    assert_close(c, ref_c, FLOAT64, name="c")
    rng = np.random.default_rng(1)
    dh, dc = rng.standard_normal(h.shape), rng.standard_normal(c.shape)
    ((ref_h * t64(dh)).sum() + (ref_c * t64(dc)).sum()).backward()
    grads = ex.lstm_cell_backward(dh, dc, cache)
    expected = {"x": x_t.grad, "h_prev": h_t.grad, "c_prev": c_t.grad,
                "W_ih": cell.weight_ih.grad, "W_hh": cell.weight_hh.grad,
                "b_ih": cell.bias_ih.grad, "b_hh": cell.bias_hh.grad}
    assert set(grads) == set(expected)
    for key, value in expected.items():
        assert_close(grads[key], value, L1_VS_AUTOGRAD, name=f"dL/d{key}")


def test_ex01_backward_matches_finite_differences(exercise):
    ex = exercise("ex01_lstm_step_backward")
    data = lstm_step_data(2, 3, 2, seed=4)
    rng = np.random.default_rng(5)
    dh, dc = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))

    def loss() -> float:
        h, c, _ = ex.lstm_cell_forward(*(data[k] for k in ARGS))
        return float(np.sum(h * dh) + np.sum(c * dc))

    _, _, cache = ex.lstm_cell_forward(*(data[k] for k in ARGS))
    grads = ex.lstm_cell_backward(dh, dc, cache)
    for key in ARGS:
        assert_close(grads[key], numerical_gradient(loss, data[key]), FINITE_DIFF,
                     name=f"dL/d{key}")


def test_ex01_open_forget_gate_passes_dc_unchanged(exercise):
    """f = 1, i = 0, o = 0 (saturated): dL/dc_prev = dL/dc, the constant error carousel."""
    ex = exercise("ex01_lstm_step_backward")
    data = lstm_step_data(2, 3, 4, seed=6)
    data["W_ih"][...] = 0
    data["W_hh"][...] = 0
    data["b_hh"][...] = 0
    data["b_ih"][...] = -50.0
    data["b_ih"][4:8] = 50.0  # the forget block
    h, c, cache = ex.lstm_cell_forward(*(data[k] for k in ARGS))
    assert_close(c, data["c_prev"], FLOAT64, name="c = c_prev")
    dc = np.random.default_rng(7).standard_normal((2, 4))
    grads = ex.lstm_cell_backward(np.zeros((2, 4)), dc, cache)
    assert_close(grads["c_prev"], dc, FLOAT64, name="dL/dc_prev")


def test_ex01_bad_input(exercise):
    ex = exercise("ex01_lstm_step_backward")
    data = lstm_step_data()
    with pytest.raises(ValueError):
        ex.lstm_cell_forward(*(data[k] if k != "W_hh" else data[k][:, :2] for k in ARGS))
    with pytest.raises(ValueError):
        ex.lstm_cell_forward(data["x"][0], *(data[k] for k in ARGS[1:]))
    _, _, cache = ex.lstm_cell_forward(*(data[k] for k in ARGS))
    with pytest.raises(ValueError):
        ex.lstm_cell_backward(np.zeros((3, 4)), np.zeros((3, 5)), cache)


# ===========================================================================
# Exercise 02: truncated BPTT
# ===========================================================================


def rnn_data(n=2, T=10, d=3, h=4, seed=10):
    rng = np.random.default_rng(seed)
    params = {"W_ih": 0.7 * rng.standard_normal((h, d)), "W_hh": 0.7 * rng.standard_normal((h, h)),
              "b_ih": 0.1 * rng.standard_normal(h), "b_hh": 0.1 * rng.standard_normal(h)}
    return (rng.standard_normal((n, T, d)), rng.standard_normal((n, T, h)),
            rng.standard_normal((n, h)), params)


def torch_truncated(x, dhs, h0, params, k):
    """PyTorch's recipe: loop over chunks, h = h.detach() between them, backward per chunk."""
    p = {name: t64(v, True) for name, v in params.items()}
    h = t64(h0)
    T = x.shape[1]
    for start in range(0, T, k):
        h = h.detach()  # the gradient stops here; the value flows on
        loss = 0.0
        for t in range(start, min(start + k, T)):
            h = torch.tanh(t64(x[:, t]) @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"])
            loss = loss + (h * t64(dhs[:, t])).sum()
        loss.backward()  # grads accumulate in p[...].grad, chunk after chunk
    return {name: v.grad for name, v in p.items()}, h


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 10])
def test_ex02_truncated_gradients_match_detached_autograd(exercise, k):
    ex = exercise("ex02_truncated_bptt")
    x, dhs, h0, params = rnn_data()
    grads, h_T = ex.truncated_bptt_gradients(x, dhs, params, k, h0)
    expected, ref_h = torch_truncated(x, dhs, h0, params, k)
    assert_close(h_T, ref_h, FLOAT64, name="h_T")
    for name, value in expected.items():
        assert_close(grads[name], value, L1_VS_AUTOGRAD, name=f"k = {k}: dL/d{name}")


def test_ex02_one_chunk_is_full_bptt_of_nn_rnn(exercise):
    ex = exercise("ex02_truncated_bptt")
    x, dhs, h0, params = rnn_data(seed=11)
    grads, h_T = ex.truncated_bptt_gradients(x, dhs, params, 25, h0)  # k > T
    rnn = torch.nn.RNN(3, 4, batch_first=True).double()
    with torch.no_grad():
        for name, value in params.items():
            getattr(rnn, name.replace("W_", "weight_").replace("b_", "bias_") + "_l0").copy_(
                t64(value))
    out, h_n = rnn(t64(x), t64(h0)[None])
    (out * t64(dhs)).sum().backward()
    assert_close(h_T, h_n[0], FLOAT64, name="h_T")
    for name in params:
        ref = getattr(rnn, name.replace("W_", "weight_").replace("b_", "bias_") + "_l0").grad
        assert_close(grads[name], ref, L1_VS_AUTOGRAD, name=f"dL/d{name}")


def test_ex02_chunks_of_one_step_see_only_their_own_loss(exercise):
    """k = 1: dW_hh = sum_t (dhs_t * (1 - h_t^2))^T h_{t-1} (theory: no path across steps)."""
    ex = exercise("ex02_truncated_bptt")
    x, dhs, h0, params = rnn_data(seed=12)
    grads, _ = ex.truncated_bptt_gradients(x, dhs, params, 1, h0)
    hs, h = [], h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ params["W_ih"].T + params["b_ih"] + h @ params["W_hh"].T
                    + params["b_hh"])
        hs.append(h)
    previous = [h0] + hs[:-1]
    expected = sum((dhs[:, t] * (1 - hs[t] ** 2)).T @ previous[t] for t in range(x.shape[1]))
    assert_close(grads["W_hh"], expected, FLOAT64, name="dW_hh with k = 1")


def test_ex02_chunk_bounds_and_bad_input(exercise):
    ex = exercise("ex02_truncated_bptt")
    assert [tuple(b) for b in ex.chunk_bounds(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert [tuple(b) for b in ex.chunk_bounds(6, 3)] == [(0, 3), (3, 6)]
    assert [tuple(b) for b in ex.chunk_bounds(3, 5)] == [(0, 3)]
    with pytest.raises(ValueError):
        ex.chunk_bounds(10, 0)
    with pytest.raises(ValueError):
        ex.chunk_bounds(0, 3)
    x, dhs, h0, params = rnn_data()
    with pytest.raises(ValueError):
        ex.truncated_bptt_gradients(x, dhs[:, :5], params, 3, h0)


# ===========================================================================
# Exercise 03: gradient clipping
# ===========================================================================


def clip_data(seed=20, scale=3.0):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(s) for s in [(3, 4), (5,), (2, 2, 3)]]


def torch_clipped(grads, fn, *args):
    tensors = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = t64(g)
        tensors.append(p)
    result = fn(tensors, *args)
    return [p.grad for p in tensors], result


@pytest.mark.parametrize("norm_type", [2.0, np.inf])
@pytest.mark.parametrize("max_norm", [0.5, 4.0, 1e6, 0.0])
def test_ex03_clip_grad_norm_matches_torch(exercise, norm_type, max_norm):
    ex = exercise("ex03_gradient_clipping")
    grads = clip_data()
    copies = [g.copy() for g in grads]
    clipped, total = ex.clip_grad_norm(grads, max_norm, norm_type)
    expected, expected_total = torch_clipped(grads, torch.nn.utils.clip_grad_norm_, max_norm,
                                             norm_type)
    assert_close(total, expected_total, FLOAT64, name="total norm")
    assert_close(ex.global_grad_norm(grads, norm_type), expected_total, FLOAT64, name="norm")
    for got, ref in zip(clipped, expected):
        assert_close(got, ref, FLOAT64, name="clipped gradient")
    for g, c in zip(grads, copies):
        np.testing.assert_array_equal(g, c, err_msg="clip_grad_norm changed its input")


@pytest.mark.parametrize("clip_value", [0.1, 1.0, 100.0])
def test_ex03_clip_grad_value_matches_torch(exercise, clip_value):
    ex = exercise("ex03_gradient_clipping")
    grads = clip_data(seed=21)
    clipped = ex.clip_grad_value(grads, clip_value)
    expected, _ = torch_clipped(grads, torch.nn.utils.clip_grad_value_, clip_value)
    for got, ref in zip(clipped, expected):
        assert_close(got, ref, FLOAT64, name="value-clipped gradient")


def test_ex03_norm_clipping_keeps_the_direction_value_clipping_turns_it(exercise):
    ex = exercise("ex03_gradient_clipping")
    grads = clip_data(seed=22)
    clipped, _ = ex.clip_grad_norm(grads, 0.1)
    assert ex.angle_between(grads, clipped) < 1e-5
    # theory.md 1.5: (100, 1) clipped at 1 is (1, 1), 45 - atan(1/100) degrees away
    turned = ex.clip_grad_value([np.array([100.0, 1.0])], 1.0)
    assert_close(turned[0], np.array([1.0, 1.0]), FLOAT64, name="(100, 1) clipped")
    angle = ex.angle_between([np.array([100.0, 1.0])], turned)
    assert_close(angle, 45.0 - np.degrees(np.arctan(0.01)), Tol(rtol=1e-9, atol=1e-9),
                 name="angle in degrees")
    assert_close(ex.angle_between([np.array([1.0, 0.0])], [np.array([-2.0, 0.0])]), 180.0,
                 FLOAT64, name="opposite directions")


def test_ex03_bad_input(exercise):
    ex = exercise("ex03_gradient_clipping")
    grads = clip_data()
    with pytest.raises(ValueError):
        ex.clip_grad_norm(grads, -1.0)
    with pytest.raises(ValueError):
        ex.clip_grad_value(grads, -1.0)
    with pytest.raises(ValueError):
        ex.global_grad_norm(grads, 3.0)
    with pytest.raises(ValueError):
        ex.angle_between([np.zeros(3)], [np.ones(3)])


# ===========================================================================
# Exercise 04: the peephole LSTM
# ===========================================================================


def peephole_data(n=2, T=4, d=3, h=3, seed=30):
    rng = np.random.default_rng(seed)
    params = {"W_ih": 0.6 * rng.standard_normal((4 * h, d)),
              "W_hh": 0.6 * rng.standard_normal((4 * h, h)),
              "b": 0.3 * rng.standard_normal(4 * h), "w_ci": rng.standard_normal(h),
              "w_cf": rng.standard_normal(h), "w_co": rng.standard_normal(h)}
    arrays = {"x": rng.standard_normal((n, T, d)), "h0": rng.standard_normal((n, h)),
              "c0": rng.standard_normal((n, h)), "dhs": rng.standard_normal((n, T, h)),
              "dh_T": rng.standard_normal((n, h)), "dc_T": rng.standard_normal((n, h))}
    return params, arrays


def torch_peephole(x, h, c, p):
    """A peephole LSTM with autograd ops, written from Gers & Schmidhuber (2000)."""
    H = h.shape[1]
    hs = []
    for t in range(x.shape[1]):
        a = x[:, t] @ p["W_ih"].T + h @ p["W_hh"].T + p["b"]
        a_i, a_f, a_g, a_o = a.split(H, dim=1)
        i = torch.sigmoid(a_i + p["w_ci"] * c)
        f = torch.sigmoid(a_f + p["w_cf"] * c)
        c = f * c + i * torch.tanh(a_g)
        h = torch.sigmoid(a_o + p["w_co"] * c) * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs, dim=1), h, c


def test_ex04_matches_autograd_peephole_lstm(exercise):
    ex = exercise("ex04_peephole_lstm")
    params, a = peephole_data()
    hs, (h_T, c_T), cache = ex.peephole_lstm_forward(a["x"], a["h0"], a["c0"], params)
    grads = ex.peephole_lstm_backward(a["dhs"], a["dh_T"], a["dc_T"], cache, params)
    p = {k: t64(v, True) for k, v in params.items()}
    x_t, h0_t, c0_t = (t64(a[k], True) for k in ("x", "h0", "c0"))
    ref_hs, ref_h, ref_c = torch_peephole(x_t, h0_t, c0_t, p)
    assert_close(hs, ref_hs, FLOAT64, name="hs")
    assert_close(h_T, ref_h, FLOAT64, name="h_T")
    assert_close(c_T, ref_c, FLOAT64, name="c_T")
    ((ref_hs * t64(a["dhs"])).sum() + (ref_h * t64(a["dh_T"])).sum()
     + (ref_c * t64(a["dc_T"])).sum()).backward()
    expected = {"x": x_t.grad, "h0": h0_t.grad, "c0": c0_t.grad,
                **{k: v.grad for k, v in p.items()}}
    assert set(grads) == set(expected)
    for key, value in expected.items():
        assert_close(grads[key], value, L1_VS_AUTOGRAD, name=f"dL/d{key}")


def test_ex04_matches_finite_differences(exercise):
    ex = exercise("ex04_peephole_lstm")
    params, a = peephole_data(n=2, T=3, d=2, h=2, seed=31)

    def loss() -> float:
        hs, (h_T, c_T), _ = ex.peephole_lstm_forward(a["x"], a["h0"], a["c0"], params)
        return float(np.sum(hs * a["dhs"]) + np.sum(h_T * a["dh_T"]) + np.sum(c_T * a["dc_T"]))

    _, _, cache = ex.peephole_lstm_forward(a["x"], a["h0"], a["c0"], params)
    grads = ex.peephole_lstm_backward(a["dhs"], a["dh_T"], a["dc_T"], cache, params)
    for key in ("x", "h0", "c0"):
        assert_close(grads[key], numerical_gradient(loss, a[key]), FINITE_DIFF, name=key)
    for key in params:
        assert_close(grads[key], numerical_gradient(loss, params[key]), FINITE_DIFF, name=key)


def test_ex04_without_peepholes_is_nn_lstm(exercise):
    ex = exercise("ex04_peephole_lstm")
    params, a = peephole_data(seed=32)
    for key in ("w_ci", "w_cf", "w_co"):
        params[key][...] = 0
    hs, (h_T, c_T), _ = ex.peephole_lstm_forward(a["x"], None, None, params)
    lstm = torch.nn.LSTM(3, 3, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(t64(params["W_ih"]))
        lstm.weight_hh_l0.copy_(t64(params["W_hh"]))
        lstm.bias_ih_l0.copy_(t64(params["b"]))
        lstm.bias_hh_l0.zero_()
        out, (h_n, c_n) = lstm(t64(a["x"]))
    assert_close(hs, out, FLOAT64, name="hs")
    assert_close(c_T, c_n[0], FLOAT64, name="c_T")


def test_ex04_bad_input(exercise):
    ex = exercise("ex04_peephole_lstm")
    params, a = peephole_data()
    with pytest.raises(ValueError):
        ex.peephole_lstm_forward(a["x"][0], None, None, params)
    with pytest.raises(ValueError):
        ex.peephole_lstm_forward(a["x"], a["h0"][:1], None, params)
    _, _, cache = ex.peephole_lstm_forward(a["x"], None, None, params)
    with pytest.raises(ValueError):
        ex.peephole_lstm_backward(a["dhs"][:, :2], None, None, cache, params)


# ===========================================================================
# Exercise 05: the vanishing-gradient bound
# ===========================================================================


def rnn_sequence(lam, T=12, h=5, seed=40, scale_x=1.0):
    """One sequence through a tanh RNN whose W_hh has largest singular value lam."""
    rng = np.random.default_rng(seed)
    W_hh = rng.standard_normal((h, h))
    W_hh *= lam / np.linalg.norm(W_hh, 2)
    W_ih, b = rng.standard_normal((h, 2)), 0.1 * rng.standard_normal(h)
    x = scale_x * rng.standard_normal((T, 2))
    return x, rng.standard_normal(h), W_ih, W_hh, b


def autograd_jacobian_to_last(x, h0, W_ih, W_hh, b, k):
    """dh_T/dh_k by torch.autograd.functional.jacobian of the steps k+1..T."""
    hs = [t64(h0)]
    for x_t in x:
        hs.append(torch.tanh(t64(W_ih) @ t64(x_t) + t64(W_hh) @ hs[-1] + t64(b)))

    def run_from(h_k):
        h = h_k
        for x_t in x[k:]:
            h = torch.tanh(t64(W_ih) @ t64(x_t) + t64(W_hh) @ h + t64(b))
        return h

    return torch.autograd.functional.jacobian(run_from, hs[k]), torch.stack(hs)


def test_ex05_step_jacobian_matches_autograd(exercise):
    ex = exercise("ex05_vanishing_gradient_bound")
    x, h0, W_ih, W_hh, b = rnn_sequence(1.2)
    h_prev = t64(h0)
    step = lambda h: torch.tanh(t64(W_ih) @ t64(x[0]) + t64(W_hh) @ h + t64(b))  # noqa: E731
    h1 = step(h_prev).numpy()
    assert_close(ex.step_jacobian(h1, W_hh), torch.autograd.functional.jacobian(step, h_prev),
                 FLOAT64, name="dh_1/dh_0")


@pytest.mark.parametrize("k", [0, 3, 11, 12])
def test_ex05_jacobian_products_match_autograd(exercise, k):
    ex = exercise("ex05_vanishing_gradient_bound")
    x, h0, W_ih, W_hh, b = rnn_sequence(1.5)
    reference, hs = autograd_jacobian_to_last(x, h0, W_ih, W_hh, b, k)
    got = ex.jacobians_to_last(hs.numpy(), W_hh)
    assert got.shape == (13, 5, 5)
    assert_close(got[k], reference, FLOAT64, name=f"dh_T/dh_{k}")


@pytest.mark.parametrize("lam", [0.5, 0.9, 1.5])
def test_ex05_norms_stay_under_the_bound(exercise, lam):
    ex = exercise("ex05_vanishing_gradient_bound")
    x, h0, W_ih, W_hh, b = rnn_sequence(lam, T=30)
    _, hs = autograd_jacobian_to_last(x, h0, W_ih, W_hh, b, 30)
    jac = ex.jacobians_to_last(hs.numpy(), W_hh)
    bound = ex.vanishing_bound(W_hh, 30)
    assert_close(bound, lam ** np.arange(31.0), Tol(rtol=1e-9, atol=0.0), name="bound")
    norms = np.array([np.linalg.norm(jac[30 - gap], 2) for gap in range(31)])  # by gap T - k
    assert np.all(norms <= bound * (1 + 1e-9))
    if lam == 0.5:
        assert norms[30] < 1e-9  # 0.5^30 ~ 9e-10: vanished


def test_ex05_orthogonal_weights_on_small_activations_do_not_vanish(exercise):
    """tanh' ~ 1 near 0 and an orthogonal W_hh keeps lengths: ||dh_T/dh_0|| stays near 1."""
    ex = exercise("ex05_vanishing_gradient_bound")
    rng = np.random.default_rng(41)
    W_hh, _ = np.linalg.qr(rng.standard_normal((6, 6)))  # orthogonal: all singular values 1
    hs = 1e-4 * rng.standard_normal((41, 6))  # tiny activations
    jac = ex.jacobians_to_last(hs, W_hh)
    assert abs(np.linalg.norm(jac[0], 2) - 1.0) < 1e-3
    assert_close(ex.vanishing_bound(W_hh, 40), np.ones(41), Tol(rtol=1e-9, atol=1e-9),
                 name="bound for lambda_1 = 1")
    assert_close(ex.vanishing_bound(W_hh, 2, gamma=0.25), [1.0, 0.25, 0.0625], FLOAT64,
                 name="sigmoid's gamma = 1/4")


def test_ex05_bad_input(exercise):
    ex = exercise("ex05_vanishing_gradient_bound")
    with pytest.raises(ValueError):
        ex.step_jacobian(np.zeros(3), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        ex.step_jacobian(np.zeros(4), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        ex.jacobians_to_last(np.zeros((5, 2)), np.eye(3))
    with pytest.raises(ValueError):
        ex.vanishing_bound(np.eye(3), -1)
