"""Checks for the exercises of lesson 02, against references that do not share their code.

Run them on the reference solutions::

    pytest 02_MLP/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 02_MLP/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another
way: PyTorch autograd, ``torch.nn`` layers, ``torch.optim`` optimisers, ``torch.nn.init``,
finite differences, a closed form or a statistical prediction. None compares with the
reference solution itself, which would let a copy of a bug pass.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    L1_VS_AUTOGRAD,
    OPTIMIZER_TRAJECTORY,
    Tol,
    assert_close,
    check_against_autograd,
    check_exercise_files,
    check_layer_gradients,
    check_learner_module,
    check_numpy_only,
    check_starter_left_to_learner,
    check_starter_matches_solution,
    exercise_names,
    load_module_from_file,
    numerical_gradient,
)

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
STARTERS = HERE / "starters"
EXERCISES = exercise_names(HERE)

# Methods of an exercise class that the learner writes or must keep.
CLASS_METHODS = ("__init__", "forward", "backward")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


# ===========================================================================
# The files themselves: starters and solutions never drift apart
# ===========================================================================


def test_every_exercise_has_its_task_solution_and_starter():
    check_exercise_files(HERE, min_count=3)


@pytest.mark.parametrize("name", EXERCISES)
def test_starter_defines_the_same_api_as_the_solution(name):
    check_starter_matches_solution(HERE, name, CLASS_METHODS)


@pytest.mark.parametrize("name", EXERCISES)
def test_every_starter_function_is_left_to_the_learner(name):
    """Each starter function (or class method) raises NotImplementedError naming itself."""
    check_starter_left_to_learner(HERE, name, CLASS_METHODS)


@pytest.mark.parametrize("folder", [SOLUTIONS, STARTERS], ids=["solutions", "starters"])
def test_exercise_files_are_numpy_only(folder):
    """The exercises are L1 work: no torch, scipy or scikit-learn in the files a learner writes."""
    check_numpy_only(folder)


@pytest.mark.parametrize("name", EXERCISES)
def test_your_file_has_the_expected_functions(exercise, name):
    """Your file (or the reference) defines every starter function and class, same parameters."""
    check_learner_module(exercise(name), HERE, name, CLASS_METHODS)


def test_a_learner_file_that_calls_torch_fails_the_purity_check(tmp_path):
    name = EXERCISES[0]
    solution = (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8")
    for extra in ("import torch\n", "from scipy import special\n",
                  "import importlib\nF = importlib.import_module('torch.nn.functional')\n"):
        learner = tmp_path / extra.split()[1].replace(".", "_") / f"{name}.py"
        learner.parent.mkdir()
        learner.write_text(solution + "\n" + extra, encoding="utf-8")
        module = load_module_from_file(learner)
        # the functions are right; the learner's check still fails on the import
        with pytest.raises(AssertionError, match="may not import"):
            check_learner_module(module, HERE, name, CLASS_METHODS)


# ===========================================================================
# Exercise 01: LeakyReLU, ELU, Softplus, SiLU as L1 layers
# ===========================================================================

# (class name, constructor arguments, the same function in torch)
ACTIVATIONS = [
    ("LeakyReLU", {}, lambda x: F.leaky_relu(x, 0.01)),
    ("LeakyReLU", {"negative_slope": 0.3}, lambda x: F.leaky_relu(x, 0.3)),
    ("ELU", {}, lambda x: F.elu(x, 1.0)),
    ("ELU", {"alpha": 0.5}, lambda x: F.elu(x, 0.5)),
    ("Softplus", {}, lambda x: F.softplus(x, beta=1.0)),
    ("Softplus", {"beta": 3.0}, lambda x: F.softplus(x, beta=3.0)),
    ("SiLU", {}, F.silu),
]
ACTIVATION_IDS = [f"{name}{kwargs or ''}" for name, kwargs, _ in ACTIVATIONS]


def activation_layer(exercise, name, kwargs):
    return getattr(exercise("ex01_activation_gradients"), name)(**kwargs)


def inputs_off_the_kink(shape=(4, 5), seed=0, scale=3.0):
    """Random inputs at least 1e-3 away from 0, where LeakyReLU and ELU have their kink
    (central differences with eps = 1e-6 must not straddle it)."""
    x = scale * np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 1e-3, 0.1, x)


@pytest.mark.parametrize(("name", "kwargs", "torch_fn"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_ex01_forward_and_backward_match_torch_autograd(exercise, name, kwargs, torch_fn):
    layer = activation_layer(exercise, name, kwargs)
    assert layer.params == {} and layer.grads == {}, "activations have no parameters"
    check_against_autograd(layer, lambda x_t, _params: torch_fn(x_t), inputs_off_the_kink())


@pytest.mark.parametrize(("name", "kwargs", "torch_fn"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_ex01_backward_matches_finite_differences(exercise, name, kwargs, torch_fn):
    layer = activation_layer(exercise, name, kwargs)
    check_layer_gradients(layer, inputs_off_the_kink(shape=(3, 4), seed=1))


@pytest.mark.parametrize(("name", "kwargs", "torch_fn"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_ex01_value_and_slope_at_zero_follow_pytorch(exercise, name, kwargs, torch_fn):
    """At the kink x = 0 PyTorch takes the left branch: LeakyReLU slope a, ELU slope alpha."""
    layer = activation_layer(exercise, name, kwargs)
    x = np.zeros(3)
    y, dx = layer.forward(x), layer.backward(np.ones(3))
    x_t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    y_t = torch_fn(x_t)
    y_t.sum().backward()
    assert_close(y, y_t, FLOAT64, name=f"{name}(0)")
    assert_close(dx, x_t.grad, FLOAT64, name=f"{name}'(0)")


@pytest.mark.parametrize(("name", "kwargs", "torch_fn"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_ex01_huge_inputs_neither_overflow_nor_lose_the_answer(exercise, name, kwargs, torch_fn):
    layer = activation_layer(exercise, name, kwargs)
    x = np.array([-1e4, -1000.0, -60.0, -1e-9, 1e-9, 60.0, 1000.0, 1e4])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")  # an overflow warning is a failure
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch_fn(x_t)
    y_t.sum().backward()
    assert_close(y, y_t, L1_VS_AUTOGRAD, name=f"{name} at huge inputs")
    assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name=f"{name}' at huge inputs")


@pytest.mark.parametrize(("name", "kwargs", "torch_fn"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_ex01_float32_stays_float32(exercise, name, kwargs, torch_fn):
    layer = activation_layer(exercise, name, kwargs)
    x = inputs_off_the_kink(seed=2).astype(np.float32)
    dy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    y, dx = layer.forward(x), layer.backward(dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32, (
        f"{name}: float32 in must give float32 out; got {y.dtype} and {dx.dtype}")
    x_t = torch.tensor(x, requires_grad=True)
    torch_fn(x_t).backward(torch.from_numpy(dy))
    assert_close(y, torch_fn(torch.from_numpy(x)), FLOAT32, name=f"float32 {name}")
    assert_close(dx, x_t.grad, FLOAT32, name=f"float32 {name}'")


# `exercise` only loads a module: sharing it between hypothesis examples is safe
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=st.floats(-30.0, 30.0)),
       which=st.integers(0, len(ACTIVATIONS) - 1))
def test_ex01_any_shape_matches_torch(exercise, x, which):
    """Elementwise layers take arrays of any shape and give the same numbers as torch."""
    name, kwargs, torch_fn = ACTIVATIONS[which]
    layer = activation_layer(exercise, name, kwargs)
    dy = np.linspace(-1.0, 1.0, x.size).reshape(x.shape)
    y, dx = layer.forward(x), layer.backward(dy)
    assert y.shape == x.shape and dx.shape == x.shape
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch_fn(x_t)
    y_t.backward(torch.from_numpy(dy))
    assert_close(y, y_t, L1_VS_AUTOGRAD, name=f"{name} forward")
    assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name=f"{name} backward")


def test_ex01_closed_form_identities(exercise):
    """Facts from the formulas, checked without torch."""
    ex = exercise("ex01_activation_gradients")
    x = np.linspace(-8.0, 8.0, 161)  # includes 0 exactly
    relu = np.maximum(x, 0.0)
    # LeakyReLU with slope 0 is ReLU
    assert_close(ex.LeakyReLU(0.0).forward(x), relu, FLOAT64, name="LeakyReLU(0) = ReLU")
    # softplus(x) - softplus(-x) = x and x sigmoid(x) - (-x) sigmoid(-x) = x
    for layer in (ex.Softplus(), ex.SiLU()):
        diff = layer.forward(x) - layer.forward(-x)
        assert_close(diff, x, Tol(1e-12, 1e-12), name=f"{type(layer).__name__}(x) - (-x)")
    # 0 <= softplus_beta - relu <= log(2) / beta, with equality at x = 0
    for beta in (1.0, 10.0):
        gap = ex.Softplus(beta).forward(x) - relu
        assert gap.min() >= -1e-12 and abs(gap.max() - math.log(2.0) / beta) < 1e-12
        assert abs(gap[80] - math.log(2.0) / beta) < 1e-12  # x[80] = 0
    # ELU tends to -alpha, and its slope alpha e^x equals y + alpha on the left
    elu = ex.ELU(2.0)
    y = elu.forward(x)
    dx = elu.backward(np.ones_like(x))
    left = x <= 0
    assert_close(dx[left], y[left] + 2.0, Tol(1e-12, 1e-12), name="ELU' = y + alpha for x <= 0")
    assert abs(elu.forward(np.array([-50.0]))[0] + 2.0) < 1e-12


def test_ex01_errors_are_clear(exercise):
    ex = exercise("ex01_activation_gradients")
    for cls in (ex.LeakyReLU, ex.ELU, ex.Softplus, ex.SiLU):
        with pytest.raises(RuntimeError):
            cls().backward(np.ones(3))  # backward before any forward
        layer = cls()
        layer.forward(np.ones((2, 3)))
        with pytest.raises(ValueError):
            layer.backward(np.ones((3, 2)))  # dy must have the output's shape
    with pytest.raises(ValueError):
        ex.ELU(alpha=0.0)
    with pytest.raises(ValueError):
        ex.Softplus(beta=-1.0)


# ===========================================================================
# Exercise 02: batch normalisation backward, running statistics, folding
# ===========================================================================


def batch_and_affine(n=8, c=5, seed=4):
    """A batch far from zero mean and unit variance, and non-trivial gamma and beta."""
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(n, c)) * rng.uniform(0.1, 3.0, size=c)  # column scales differ
    gamma = rng.uniform(0.5, 2.0, size=c)
    beta = rng.normal(size=c)
    dy = rng.standard_normal((n, c))
    return x, gamma, beta, dy


def torch_batchnorm_train(x, gamma, beta, eps, dy):
    """y, dx, dgamma, dbeta from F.batch_norm in training mode (batch statistics) + autograd."""
    x_t = torch.tensor(x, requires_grad=True)
    g_t = torch.tensor(gamma, requires_grad=True)
    b_t = torch.tensor(beta, requires_grad=True)
    y_t = F.batch_norm(x_t, None, None, weight=g_t, bias=b_t, training=True, eps=eps)
    y_t.backward(torch.from_numpy(dy))
    return y_t.detach(), x_t.grad, g_t.grad, b_t.grad


@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_ex02_forward_matches_torch(exercise, eps):
    ex = exercise("ex02_batchnorm_backward")
    x, gamma, beta, dy = batch_and_affine()
    y, _ = ex.batchnorm_forward(x, gamma, beta, eps)
    assert_close(y, torch_batchnorm_train(x, gamma, beta, eps, dy)[0], L1_VS_AUTOGRAD,
                 name=f"batch norm forward, eps={eps}")


@pytest.mark.parametrize("backward", ["batchnorm_backward", "batchnorm_backward_staged"])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_ex02_backward_matches_torch_autograd(exercise, backward, eps):
    ex = exercise("ex02_batchnorm_backward")
    x, gamma, beta, dy = batch_and_affine()
    _, cache = ex.batchnorm_forward(x, gamma, beta, eps)
    dx, dgamma, dbeta = getattr(ex, backward)(dy, cache)
    _, dx_t, dgamma_t, dbeta_t = torch_batchnorm_train(x, gamma, beta, eps, dy)
    assert_close(dx, dx_t, L1_VS_AUTOGRAD, name=f"{backward} dx")
    assert_close(dgamma, dgamma_t, L1_VS_AUTOGRAD, name=f"{backward} dgamma")
    assert_close(dbeta, dbeta_t, L1_VS_AUTOGRAD, name=f"{backward} dbeta")


@pytest.mark.parametrize("backward", ["batchnorm_backward", "batchnorm_backward_staged"])
def test_ex02_backward_matches_finite_differences(exercise, backward):
    ex = exercise("ex02_batchnorm_backward")
    x, gamma, beta, dy = batch_and_affine(n=5, c=3, seed=5)

    def loss():
        return float(np.sum(ex.batchnorm_forward(x, gamma, beta)[0] * dy))

    _, cache = ex.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = getattr(ex, backward)(dy, cache)
    assert_close(dx, numerical_gradient(loss, x), FINITE_DIFF, name="dx vs central differences")
    assert_close(dgamma, numerical_gradient(loss, gamma), FINITE_DIFF, name="dgamma")
    assert_close(dbeta, numerical_gradient(loss, beta), FINITE_DIFF, name="dbeta")


def test_ex02_gradient_is_orthogonal_to_shift_and_scale(exercise):
    """theory.md 7.2: sum_n dx_n = 0 and sum_n dx_n x_hat_n = gamma dgamma eps / (s (var + eps))."""
    ex = exercise("ex02_batchnorm_backward")
    x, gamma, beta, dy = batch_and_affine(n=16, c=4, seed=6)
    eps = 0.05  # large, so that the second sum is clearly not zero
    _, cache = ex.batchnorm_forward(x, gamma, beta, eps)
    dx, dgamma, _ = ex.batchnorm_backward(dy, cache)
    var = x.var(axis=0)  # biased, computed here independently
    s = np.sqrt(var + eps)
    x_hat = (x - x.mean(axis=0)) / s
    scale = np.abs(dx).max()
    assert_close(dx.sum(axis=0), np.zeros(4), Tol(0.0, 1e-12 * scale), name="sum_n dx_n")
    expected = gamma * dgamma * eps / (s * (var + eps))
    assert_close(np.sum(dx * x_hat, axis=0), expected, Tol(1e-9, 1e-12 * scale),
                 name="sum_n dx_n x_hat_n")


def test_ex02_float32_stays_float32(exercise):
    ex = exercise("ex02_batchnorm_backward")
    x, gamma, beta, dy = (a.astype(np.float32) for a in batch_and_affine(seed=7))
    y, cache = ex.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = ex.batchnorm_backward(dy, cache)
    assert y.dtype == dx.dtype == np.float32, f"float32 in must stay float32; got {y.dtype}"
    y_t, dx_t, dgamma_t, dbeta_t = torch_batchnorm_train(x, gamma, beta, 1e-5, dy)
    for got, ref, what in ((y, y_t, "y"), (dx, dx_t, "dx"), (dgamma, dgamma_t, "dgamma"),
                           (dbeta, dbeta_t, "dbeta")):
        assert_close(got, ref, FLOAT32, name=f"float32 {what}")


@pytest.mark.parametrize("momentum", [0.1, 0.35])
def test_ex02_running_statistics_match_nn_batchnorm1d(exercise, momentum):
    """Several batches (N = 2 included, where N / (N - 1) = 2): the unbiased running variance."""
    ex = exercise("ex02_batchnorm_backward")
    c = 3
    bn = torch.nn.BatchNorm1d(c, momentum=momentum).double().train()
    running_mean, running_var = np.zeros(c), np.ones(c)  # PyTorch's starting values
    rng = np.random.default_rng(8)
    for step, n in enumerate([2, 6, 4, 9]):
        x = rng.normal(1.0, 3.0, size=(n, c))
        before = (running_mean.copy(), running_var.copy())
        new_mean, new_var = ex.update_running_stats(running_mean, running_var, x, momentum)
        assert np.array_equal(running_mean, before[0]) and np.array_equal(running_var, before[1]), \
            "update_running_stats must return new arrays and leave its inputs unchanged"
        running_mean, running_var = new_mean, new_var
        bn(torch.from_numpy(x))
        assert_close(running_mean, bn.running_mean, FLOAT64, name=f"running_mean, step {step}")
        assert_close(running_var, bn.running_var, FLOAT64, name=f"running_var, step {step}")


def test_ex02_eval_mode_matches_nn_batchnorm1d(exercise):
    ex = exercise("ex02_batchnorm_backward")
    rng = np.random.default_rng(9)
    c = 4
    gamma, beta = rng.uniform(0.5, 2.0, c), rng.normal(size=c)
    running_mean, running_var = rng.normal(size=c), rng.uniform(0.2, 3.0, c)
    bn = torch.nn.BatchNorm1d(c).double()
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(running_mean))
        bn.running_var.copy_(torch.from_numpy(running_var))
    bn.eval()
    for n in (1, 7):  # evaluation works for a single example
        x = rng.normal(size=(n, c))
        y = ex.batchnorm_eval(x, gamma, beta, running_mean, running_var)
        assert_close(y, bn(torch.from_numpy(x)).detach(), FLOAT64, name=f"eval, N={n}")


def test_ex02_folding_into_the_linear_layer_changes_nothing(exercise):
    """nn.Linear -> nn.BatchNorm1d (eval) equals one Linear with the folded weights."""
    ex = exercise("ex02_batchnorm_backward")
    torch.manual_seed(10)
    d_in, d_out = 6, 4
    model = torch.nn.Sequential(torch.nn.Linear(d_in, d_out), torch.nn.BatchNorm1d(d_out)).double()
    bn = model[1]
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.2, 3.0)
    model.eval()
    as_np = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    W = as_np["0.weight"].T  # nn.Linear stores (out, in); the lesson's W is (in, out)
    W_folded, b_folded = ex.fold_batchnorm_into_linear(
        W, as_np["0.bias"], as_np["1.weight"], as_np["1.bias"], as_np["1.running_mean"],
        as_np["1.running_var"], bn.eps)
    x = np.random.default_rng(11).standard_normal((5, d_in))
    expected = model(torch.from_numpy(x)).detach()
    assert_close(x @ W_folded + b_folded, expected, FLOAT64, name="folded Linear")


def test_ex02_rejects_bad_input(exercise):
    ex = exercise("ex02_batchnorm_backward")
    x, gamma, beta, _ = batch_and_affine()
    with pytest.raises(ValueError):
        ex.batchnorm_forward(x[:1], gamma, beta)  # one example: no variance in training mode
    with pytest.raises(ValueError):
        ex.batchnorm_forward(x[0], gamma, beta)  # not a 2-D batch
    with pytest.raises(ValueError):
        ex.batchnorm_forward(x, gamma[:-1], beta)  # one gamma per feature
    with pytest.raises(ValueError):
        ex.update_running_stats(np.zeros(5), np.ones(5), x, 1.5)  # momentum in [0, 1]
    with pytest.raises(ValueError):
        ex.update_running_stats(np.zeros(5), np.ones(5), x[:1], 0.1)  # N >= 2


# ===========================================================================
# Exercise 03: RMSProp and AdamW against torch.optim
# ===========================================================================

N_STEPS = 20


def small_problem(seed=12):
    """A 4-6-3 tanh network, 16 examples: parameters (NumPy), inputs and labels (torch)."""
    rng = np.random.default_rng(seed)
    params = {"W1": 0.5 * rng.standard_normal((4, 6)), "b1": 0.1 * rng.standard_normal(6),
              "W2": 0.5 * rng.standard_normal((6, 3)), "b2": 0.1 * rng.standard_normal(3)}
    X = torch.from_numpy(rng.standard_normal((16, 4)))
    y = torch.from_numpy(rng.integers(0, 3, size=16))
    return params, X, y


def loss_of(params_t, X, y):
    hidden = torch.tanh(X @ params_t["W1"] + params_t["b1"])
    return F.cross_entropy(hidden @ params_t["W2"] + params_t["b2"], y)


def torch_trajectory(optimizer_class, kwargs, n_steps=N_STEPS):
    """Parameters after each of n_steps steps of a torch.optim optimiser."""
    params, X, y = small_problem()
    params_t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    optimizer = optimizer_class(list(params_t.values()), **kwargs)
    trajectory = []
    for _ in range(n_steps):
        optimizer.zero_grad()
        loss_of(params_t, X, y).backward()
        optimizer.step()
        trajectory.append({k: v.detach().numpy().copy() for k, v in params_t.items()})
    return trajectory


def numpy_trajectory(step_fn, kwargs, n_steps=N_STEPS):
    """The same with your step function: gradients from autograd, the update in NumPy."""
    params, X, y = small_problem()
    state: dict = {}
    trajectory = []
    for _ in range(n_steps):
        params_t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        loss_of(params_t, X, y).backward()
        grads = {k: v.grad.numpy().copy() for k, v in params_t.items()}
        step_fn(params, grads, state, **kwargs)
        trajectory.append({k: v.copy() for k, v in params.items()})
    return trajectory


def assert_same_trajectory(got, expected, what):
    for t, (p, q) in enumerate(zip(got, expected, strict=True), start=1):
        for name in q:
            assert_close(p[name], q[name], OPTIMIZER_TRAJECTORY, name=f"{what}: {name} at step {t}")


RMSPROP_CASES = [
    {},  # torch.optim.RMSprop's defaults: lr 0.01, alpha 0.99, eps 1e-8, weight_decay 0
    {"lr": 3e-3, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1},
]
ADAMW_CASES = [
    {},  # torch.optim.AdamW's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01
    {"lr": 2e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.5},
]


@pytest.mark.parametrize("kwargs", RMSPROP_CASES, ids=["defaults", "custom"])
def test_ex03_rmsprop_follows_torch_optim_rmsprop(exercise, kwargs):
    ex = exercise("ex03_optimizers")
    assert_same_trajectory(numpy_trajectory(ex.rmsprop_step, kwargs),
                           torch_trajectory(torch.optim.RMSprop, kwargs), "RMSProp")


@pytest.mark.parametrize("kwargs", ADAMW_CASES, ids=["defaults", "custom"])
def test_ex03_adamw_follows_torch_optim_adamw(exercise, kwargs):
    ex = exercise("ex03_optimizers")
    got = numpy_trajectory(ex.adamw_step, kwargs)
    try:
        assert_same_trajectory(got, torch_trajectory(torch.optim.AdamW, kwargs), "AdamW")
    except AssertionError as error:
        coupled = torch_trajectory(torch.optim.Adam, {"weight_decay": 0.01, **kwargs})
        try:
            assert_same_trajectory(got, coupled, "Adam with L2")
        except AssertionError:
            raise error from None
        raise AssertionError("your AdamW follows torch.optim.Adam(weight_decay=...): the decay "
                             "went into the gradient (L2). AdamW decays the weights directly, "
                             "p <- p (1 - lr wd), outside m and v (03_optimizers.md)") from error


def test_ex03_first_steps_in_closed_form(exercise):
    """At t = 1: RMSProp moves by lr g / (sqrt(1 - alpha)|g| + eps), about 10 lr for alpha = 0.99;
    AdamW by lr g / (|g| + eps) (bias correction makes m_hat = g, v_hat = g^2) after the decay."""
    ex = exercise("ex03_optimizers")
    rng = np.random.default_rng(13)
    p0, g = rng.standard_normal(50), rng.standard_normal(50)
    lr, alpha, eps, wd = 1e-3, 0.99, 1e-8, 0.1

    params = {"p": p0.copy()}
    ex.rmsprop_step(params, {"p": g}, {}, lr=lr, alpha=alpha, eps=eps)
    expected = p0 - lr * g / (math.sqrt(1 - alpha) * np.abs(g) + eps)
    assert_close(params["p"], expected, Tol(1e-12, 1e-14), name="RMSProp first step")

    params = {"p": p0.copy()}
    ex.adamw_step(params, {"p": g}, {}, lr=lr, betas=(0.9, 0.999), eps=eps, weight_decay=wd)
    expected = p0 * (1 - lr * wd) - lr * g / (np.abs(g) + eps)
    assert_close(params["p"], expected, Tol(1e-12, 1e-14), name="AdamW first step")


def test_ex03_adamw_with_zero_gradients_only_decays(exercise):
    """g = 0 keeps m = v = 0, so every step multiplies p by exactly (1 - lr wd)."""
    ex = exercise("ex03_optimizers")
    p0 = np.random.default_rng(14).standard_normal((3, 4))
    params, zero, state = {"W": p0.copy()}, {"W": np.zeros((3, 4))}, {}
    lr, wd = 0.01, 0.3
    for _ in range(5):
        ex.adamw_step(params, zero, state, lr=lr, weight_decay=wd)
    assert_close(params["W"], p0 * (1 - lr * wd) ** 5, Tol(1e-13, 0.0), name="pure decay")
    params = {"W": p0.copy()}
    ex.rmsprop_step(params, zero, {})
    assert np.array_equal(params["W"], p0), "RMSProp without gradient or decay must not move"


@pytest.mark.parametrize("step", ["rmsprop_step", "adamw_step"])
def test_ex03_updates_in_place_and_leaves_the_gradients_alone(exercise, step):
    """The arrays in params are the model's own: replace them and the model never learns."""
    ex = exercise("ex03_optimizers")
    rng = np.random.default_rng(15)
    W = rng.standard_normal((3, 2)).astype(np.float32)
    params = {"W": W}
    grads = {"W": rng.standard_normal((3, 2)).astype(np.float32)}
    W_before, g_before = W.copy(), grads["W"].copy()
    getattr(ex, step)(params, grads, {}, weight_decay=0.1)
    assert params["W"] is W, f"{step} replaced params['W'] instead of updating it in place"
    assert not np.array_equal(W, W_before), f"{step} did not change the parameter"
    assert W.dtype == np.float32, "a float32 parameter must stay float32"
    assert np.array_equal(grads["W"], g_before), f"{step} modified the gradient it was given"


@pytest.mark.parametrize("step", ["rmsprop_step", "adamw_step"])
def test_ex03_rejects_bad_input(exercise, step):
    fn = getattr(exercise("ex03_optimizers"), step)
    params = {"W": np.ones((2, 2))}
    with pytest.raises(ValueError):
        fn(params, {"W": np.ones((2, 2))}, {}, lr=0.0)
    with pytest.raises(ValueError):
        fn(params, {"V": np.ones((2, 2))}, {})  # a gradient for another parameter
    with pytest.raises(ValueError):
        fn(params, {"W": np.ones(4)}, {})  # the wrong shape
    bad = {"alpha": 1.0} if step == "rmsprop_step" else {"betas": (0.9, 1.0)}
    with pytest.raises(ValueError):
        fn(params, {"W": np.ones((2, 2))}, {}, **bad)


# ===========================================================================
# Exercise 04: initialisation and the second moments through depth
# ===========================================================================

# Large draws for the statistics of one weight matrix.
DRAW_SHAPE = (300, 500)
N_DRAW = DRAW_SHAPE[0] * DRAW_SHAPE[1]
# A deep net whose widths differ, so that fan_in and fan_out differ at every layer.
WIDTHS = [256, 512, 128, 512, 256, 512, 256]
DEPTH = len(WIDTHS) - 1
N_SAMPLES = 256


def within_sigmas(value, expected, standard_error, what, sigmas=5.0):
    assert abs(value - expected) <= sigmas * standard_error, (
        f"{what}: {value:.6g}, expected {expected:.6g} +- {sigmas} x {standard_error:.3g}")


@pytest.mark.parametrize("activation,slope", [("linear", None), ("sigmoid", None),
                                              ("tanh", None), ("relu", None),
                                              ("leaky_relu", None), ("leaky_relu", 0.2)])
def test_ex04_gain_matches_torch(exercise, activation, slope):
    ex = exercise("ex04_initialization")
    if slope is None:
        got = ex.calculate_gain(activation)
        expected = torch.nn.init.calculate_gain(activation)  # leaky_relu: default slope 0.01
    else:
        got = ex.calculate_gain(activation, slope)
        expected = torch.nn.init.calculate_gain(activation, slope)
    assert_close(got, expected, FLOAT64, name=f"gain({activation})")
    with pytest.raises(ValueError):
        ex.calculate_gain("swish")


@pytest.mark.parametrize("gain", [1.0, 5.0 / 3.0])
def test_ex04_xavier_uniform_statistics(exercise, gain):
    """U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)): bound, variance a^2 / 3, flat density."""
    ex = exercise("ex04_initialization")
    fan_in, fan_out = DRAW_SHAPE
    W = ex.xavier_uniform(fan_in, fan_out, np.random.default_rng(16), gain)
    assert W.shape == DRAW_SHAPE and W.dtype == np.float64
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.999 * a, "the bound a is wrong"
    var = a * a / 3
    within_sigmas(W.mean(), 0.0, math.sqrt(var / N_DRAW), "mean")
    # the variance of a sample variance: (mu4 - var^2) / n, mu4 = a^4 / 5 for U(-a, a)
    within_sigmas(W.var(), var, math.sqrt((a**4 / 5 - var**2) / N_DRAW), "variance")
    within_sigmas(np.mean(np.abs(W) < a / 2), 0.5, math.sqrt(0.25 / N_DRAW), "P(|w| < a/2)")
    # torch's own xavier_uniform_ on the (out, in) weight of nn.Linear has the same bound
    W_torch = torch.nn.init.xavier_uniform_(torch.empty(fan_out, fan_in, dtype=torch.float64),
                                            gain=gain)
    assert 0.999 * a < W_torch.abs().max().item() <= a


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_ex04_kaiming_normal_statistics(exercise, mode):
    """N(0, gain^2 / fan): variance, and the normal shape (68.27 % within one std)."""
    ex = exercise("ex04_initialization")
    fan_in, fan_out = DRAW_SHAPE
    W = ex.kaiming_normal(fan_in, fan_out, np.random.default_rng(17), math.sqrt(2.0), mode)
    assert W.shape == DRAW_SHAPE and W.dtype == np.float64
    std = math.sqrt(2.0 / (fan_in if mode == "fan_in" else fan_out))
    within_sigmas(W.mean(), 0.0, std / math.sqrt(N_DRAW), "mean")
    within_sigmas(W.var(), std**2, std**2 * math.sqrt(2.0 / N_DRAW), "variance")
    p_one_std = math.erf(1 / math.sqrt(2))  # 0.6827 for a normal; 0.577 for a uniform
    within_sigmas(np.mean(np.abs(W) < std), p_one_std,
                  math.sqrt(p_one_std * (1 - p_one_std) / N_DRAW), "P(|w| < std)")
    # torch.nn.init on nn.Linear's (out, in) weight reads the same fan_in and fan_out
    W_torch = torch.nn.init.kaiming_normal_(torch.empty(fan_out, fan_in, dtype=torch.float64),
                                            mode=mode, nonlinearity="relu")
    within_sigmas(W_torch.var().item(), std**2, std**2 * math.sqrt(2.0 / N_DRAW), "torch variance")


def test_ex04_initialisers_are_seeded_and_check_their_input(exercise):
    ex = exercise("ex04_initialization")
    for draw in (lambda seed: ex.xavier_uniform(20, 30, np.random.default_rng(seed)),
                 lambda seed: ex.kaiming_normal(20, 30, np.random.default_rng(seed))):
        assert np.array_equal(draw(0), draw(0)) and not np.array_equal(draw(0), draw(1))
    with pytest.raises(ValueError):
        ex.kaiming_normal(0, 10, np.random.default_rng(0))
    with pytest.raises(ValueError):
        ex.kaiming_normal(10, 10, np.random.default_rng(0), math.sqrt(2.0), "fan_avg")


def torch_second_moments(weights, x, activation, grad_output):
    """Forward mean Z_l^2 and backward mean dZ_l^2 of the bias-free net, by torch autograd."""
    f = {"linear": lambda z: z, "relu": torch.relu, "tanh": torch.tanh,
         "sigmoid": torch.sigmoid}[activation]
    h = torch.tensor(x, requires_grad=True)  # so that every Z_l is part of the graph
    zs = []
    for i, W in enumerate(weights):
        z = h @ torch.from_numpy(W)
        z.retain_grad()
        zs.append(z)
        h = f(z) if i < len(weights) - 1 else z
    (h * torch.from_numpy(grad_output)).sum().backward()  # dL/dZ_L = grad_output
    forward = np.array([(z.detach() ** 2).mean().item() for z in zs])
    backward = np.array([(z.grad**2).mean().item() for z in zs])
    return forward, backward


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid"])
def test_ex04_measured_moments_match_torch(exercise, activation):
    """The measurement itself, on a small net with given weights: exact numbers."""
    ex = exercise("ex04_initialization")
    rng = np.random.default_rng(18)
    widths = [5, 7, 4, 6]
    weights = [rng.standard_normal((a, b)) / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    x, grad_output = rng.standard_normal((9, 5)), rng.standard_normal((9, 6))
    forward, backward = torch_second_moments(weights, x, activation, grad_output)
    assert_close(ex.forward_second_moments(weights, x, activation), forward, FLOAT64,
                 name=f"forward moments, {activation}")
    assert_close(ex.backward_second_moments(weights, x, activation, grad_output), backward,
                 FLOAT64, name=f"backward moments, {activation}")


def test_ex04_predictions_match_the_closed_forms(exercise):
    """theory.md 4.1-4.3, evaluated by hand here."""
    ex = exercise("ex04_initialization")
    w = WIDTHS
    he_in = [2.0 / a for a in w[:-1]]  # fan_in variances
    he_out = [2.0 / b for b in w[1:]]  # fan_out variances
    lecun = [1.0 / a for a in w[:-1]]
    xavier = [2.0 / (a + b) for a, b in zip(w[:-1], w[1:])]
    # He fan_in + ReLU: q_1 = n_0 (2 / n_0) E[x^2] = 2 E[x^2], then unchanged
    assert_close(ex.predicted_forward_moments(w, he_in, 1.5, "relu"), np.full(DEPTH, 3.0),
                 FLOAT64, name="He fan_in, ReLU, forward")
    # He fan_out + ReLU backward: unchanged from the output gradient's
    assert_close(ex.predicted_backward_moments(w, he_out, 0.7, "relu"), np.full(DEPTH, 0.7),
                 FLOAT64, name="He fan_out, ReLU, backward")
    # LeCun + ReLU: q_1 = E[x^2], then halved by every ReLU
    assert_close(ex.predicted_forward_moments(w, lecun, 1.0, "relu"), 0.5 ** np.arange(DEPTH),
                 FLOAT64, name="LeCun, ReLU, forward")
    # Xavier + linear: q_l = prod_{k <= l} n_{k-1} * 2 / (n_{k-1} + n_k)
    factors = [2.0 * a / (a + b) for a, b in zip(w[:-1], w[1:])]
    assert_close(ex.predicted_forward_moments(w, xavier, 1.0, "linear"), np.cumprod(factors),
                 FLOAT64, name="Xavier, linear, forward")
    # Xavier + linear backward: g_{l-1} = n_l * 2 / (n_{l-1} + n_l) * g_l
    back = [2.0 * b / (a + b) for a, b in zip(w[:-1], w[1:])]
    expected = np.cumprod([1.0] + back[:0:-1])[::-1]  # g_L = 1, then down to layer 1
    assert_close(ex.predicted_backward_moments(w, xavier, 1.0, "linear"), expected, FLOAT64,
                 name="Xavier, linear, backward")
    with pytest.raises(ValueError):
        ex.predicted_forward_moments(w, xavier, 1.0, "tanh")  # no closed form: measure it


# Statistical tolerance on |log(measured / predicted)| per layer. Over 30 seeds of this
# configuration (reference solution) the standard deviation of the log-ratio grew with
# depth for ReLU, from 0.006 at layer 1 to 0.16 at layer 6 (ReLU features become
# correlated with depth, so one draw of the weights moves every unit together); it stayed
# below 0.07 backward and below 0.03 for the linear net; the mean was within 0.03 of 0.
# The tolerances are 4 to 7 standard deviations. A wrong fan (fan_out instead of fan_in)
# is off by log 4 = 1.39 at layer 2; LeCun's variance in a ReLU net by log 32 = 3.5 at layer 6.
RELU_FORWARD_TOL = 0.1 + 0.1 * np.arange(1, DEPTH + 1)
RELU_BACKWARD_TOL = 0.3
LINEAR_TOL = 0.12


def deep_net_moments(ex, init, activation, seed=19):
    rng = np.random.default_rng(seed)
    weights = [init(a, b, rng) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    x = rng.standard_normal((N_SAMPLES, WIDTHS[0]))  # E[x^2] = 1
    grad_output = rng.standard_normal((N_SAMPLES, WIDTHS[-1]))  # E[g^2] = 1
    return (ex.forward_second_moments(weights, x, activation),
            ex.backward_second_moments(weights, x, activation, grad_output))


def assert_log_close(measured, predicted, tol, what):
    log_ratio = np.log(measured / predicted)
    assert np.all(np.abs(log_ratio) <= tol), (
        f"{what}: log(measured / predicted) = {np.round(log_ratio, 3)} per layer, allowed "
        f"{np.round(np.broadcast_to(tol, log_ratio.shape), 2)}; measured {measured}")


def test_ex04_he_fan_in_keeps_the_forward_signal_of_a_relu_net(exercise):
    ex = exercise("ex04_initialization")
    forward, _ = deep_net_moments(ex, lambda a, b, rng: ex.kaiming_normal(a, b, rng), "relu")
    assert_log_close(forward, np.full(DEPTH, 2.0), RELU_FORWARD_TOL, "He fan_in, ReLU, forward")


def test_ex04_he_fan_out_keeps_the_backward_signal_of_a_relu_net(exercise):
    ex = exercise("ex04_initialization")
    forward, backward = deep_net_moments(
        ex, lambda a, b, rng: ex.kaiming_normal(a, b, rng, math.sqrt(2.0), "fan_out"), "relu")
    assert_log_close(backward, np.ones(DEPTH), RELU_BACKWARD_TOL, "He fan_out, ReLU, backward")
    # forward it is NOT preserved: E[z_l^2] = 2 n_0 / n_l (the fan ratios telescope)
    assert_log_close(forward, 2.0 * WIDTHS[0] / np.array(WIDTHS[1:]), RELU_FORWARD_TOL,
                     "He fan_out, ReLU, forward")


def test_ex04_lecun_variance_halves_the_signal_at_every_relu(exercise):
    ex = exercise("ex04_initialization")
    forward, _ = deep_net_moments(
        ex, lambda a, b, rng: ex.kaiming_normal(a, b, rng, 1.0, "fan_in"), "relu")
    assert_log_close(forward, 0.5 ** np.arange(DEPTH), RELU_FORWARD_TOL, "Var 1/fan_in, ReLU")
    assert forward[-1] / forward[0] < 0.1, "six ReLU layers should shrink the signal ~32x"


def test_ex04_xavier_in_a_linear_net_follows_the_glorot_compromise(exercise):
    ex = exercise("ex04_initialization")
    forward, backward = deep_net_moments(
        ex, lambda a, b, rng: ex.xavier_uniform(a, b, rng), "linear")
    w = WIDTHS
    forward_factors = [2.0 * a / (a + b) for a, b in zip(w[:-1], w[1:])]
    assert_log_close(forward, np.cumprod(forward_factors), LINEAR_TOL, "Xavier, linear, forward")
    backward_factors = [2.0 * b / (a + b) for a, b in zip(w[:-1], w[1:])]
    expected = np.cumprod([1.0] + backward_factors[:0:-1])[::-1]
    assert_log_close(backward, expected, LINEAR_TOL, "Xavier, linear, backward")
