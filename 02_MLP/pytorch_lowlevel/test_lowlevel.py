"""Tests of lesson 02, Level 2: every hand-written piece against its torch.nn / torch.optim twin.

- linear, each activation, cross_entropy: outputs and gradients == nn.Linear / nn.ReLU ... /
  F.cross_entropy with copied weights (float64 1e-10, float32 1e-5), logits of +-1000 included
- batch_norm == nn.BatchNorm1d over several training steps (outputs, gradients, running mean
  and the UNBIASED running variance), then in evaluation mode
- dropout == x * mask / (1 - p) with the same mask; keep probability 1 - p statistically;
  identity in evaluation mode
- xavier_uniform / he_normal == torch.nn.init with the same seed; their variances
- sgd_step, adam_step (with weight decay, and decoupled as AdamW): 20 steps == torch.optim
- the whole MLP (mlp_forward) == an nn.Sequential with the same weights, and training it
  with the hand-written loop == training the nn.Sequential with torch.optim
- vanishing gradients in a deep sigmoid net, not in a ReLU net
- bad input gives clear errors; the level's purity rule; the script on digits and moons

Run: .venv/bin/python -m pytest 02_MLP/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from utils import import_lesson
from utils.testing import (
    EPS32,
    FLOAT32_SAFETY,
    FLOAT64,
    OPTIMIZER_TRAJECTORY,
    Tol,
    assert_close,
    assert_level_purity,
    tolerance,
)

mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
script = import_lesson("02_MLP.pytorch_lowlevel.train")

DTYPES = [torch.float64, torch.float32]
TORCH_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def _grads(output: torch.Tensor, tensors, seed: int = 0):
    """Gradients of L = sum(output * R), R a fixed random tensor, w.r.t. ``tensors``."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(output.shape, generator=generator, dtype=output.dtype)
    return torch.autograd.grad((output * weights.to(output.device)).sum(), tensors)


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# Layers against torch.nn
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_equals_nn_linear_forward_and_gradients(dtype, device):
    torch.manual_seed(0)
    reference = nn.Linear(5, 3).to(dtype=dtype, device=device)
    x = torch.randn(7, 5, dtype=dtype, device=device)
    W, b = _leaf(reference.weight.T), _leaf(reference.bias)  # (in, out), (out,)
    x_ours, x_ref = _leaf(x), _leaf(x)
    ours, theirs = mlp.linear(x_ours, W, b), reference(x_ref)
    tol = tolerance(dtype, device)
    assert_close(ours, theirs, tol, name="x W + b vs nn.Linear")
    dx, dW, db = _grads(ours, [x_ours, W, b])
    dx_ref, dweight, dbias = _grads(theirs, [x_ref, reference.weight, reference.bias])
    assert_close(dx, dx_ref, tol, name="dL/dx")
    assert_close(dW, dweight.T, tol, name="dL/dW vs nn.Linear weight.grad^T")
    assert_close(db, dbias, tol, name="dL/db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", mlp.ACTIVATIONS)
def test_activation_equals_torch_module_forward_and_gradient(name, dtype, device):
    x = torch.linspace(-6, 6, 49, dtype=dtype, device=device).reshape(7, 7)
    x_ours, x_ref = _leaf(x), _leaf(x)
    ours, theirs = mlp.apply_activation(x_ours, name), TORCH_ACTIVATIONS[name]()(x_ref)
    tol = tolerance(dtype, device)
    assert_close(ours, theirs, tol, name=f"{name}(x)")
    assert_close(_grads(ours, [x_ours])[0], _grads(theirs, [x_ref])[0], tol, name=f"{name}'")


def test_activation_values_at_known_points():
    x = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    assert_close(mlp.apply_activation(x, "relu"), torch.tensor([0.0, 0.0, 3.0],
                                                                dtype=torch.float64))
    assert_close(mlp.apply_activation(x, "sigmoid")[1], torch.tensor(0.5, dtype=torch.float64))
    # gelu(x) = x Phi(x): Phi(-2) = 0.0227501319..., Phi(3) = 0.9986501019...
    phi = torch.tensor([0.022750131948179195, 0.5, 0.9986501019683699], dtype=torch.float64)
    assert_close(mlp.apply_activation(x, "gelu"), x * phi, FLOAT64, name="x Phi(x)")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        mlp.apply_activation(x, "swish")


def extreme_logits_tolerance(dtype, device) -> Tol:
    """log-sum-exp at logits of 1000 rounds to float32's spacing there (6e-5), so each
    log-probability, and each probability relative to itself, carries ~eps32 * 1000."""
    if dtype == torch.float64:
        return tolerance(dtype, device)
    return Tol(rtol=FLOAT32_SAFETY * EPS32 * 1000, atol=0.0, scaled=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_equals_torch_with_extreme_logits(dtype, device):
    torch.manual_seed(1)
    logits = torch.randn(6, 4, dtype=dtype, device=device) * 3
    logits[0] = torch.tensor([1000.0, -1000.0, 0.0, 999.0])  # no overflow, no log(0)
    logits[1] = torch.tensor([-1000.0, -1000.0, -1000.0, -1000.0])
    y = torch.tensor([3, 0, 2, 1, 1, 0], device=device)
    ours_in, ref_in = _leaf(logits), _leaf(logits)
    ours, theirs = mlp.cross_entropy(ours_in, y), F.cross_entropy(ref_in, y)
    tol = extreme_logits_tolerance(dtype, device)
    assert torch.isfinite(ours)
    assert_close(ours, theirs, tol, name="cross-entropy")
    (grad,) = torch.autograd.grad(ours, ours_in)
    (grad_ref,) = torch.autograd.grad(theirs, ref_in)
    assert_close(grad, grad_ref, tol, name="dJ/dZ")
    onehot = F.one_hot(y, 4).to(dtype)
    assert_close(grad, (torch.softmax(logits, 1) - onehot) / 6, tol, name="(P - Y) / N")


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_equals_nn_batchnorm1d_in_training_then_evaluation(dtype, device):
    torch.manual_seed(2)
    C, momentum, eps = 5, 0.2, 1e-3
    reference = nn.BatchNorm1d(C, eps=eps, momentum=momentum).to(dtype=dtype, device=device)
    with torch.no_grad():  # non-trivial scale and shift
        reference.weight.copy_(torch.rand(C) + 0.5)
        reference.bias.copy_(torch.randn(C))
    gamma, beta = _leaf(reference.weight), _leaf(reference.bias)
    running_mean = torch.zeros(C, dtype=dtype, device=device)
    running_var = torch.ones(C, dtype=dtype, device=device)
    tol = tolerance(dtype, device)
    reference.train()
    for step in range(4):  # several steps: the running statistics accumulate
        n = 6 + 3 * step  # different batch sizes: the N/(N-1) correction differs per step
        x = (torch.randn(n, C, dtype=dtype, device=device) * 3 + 2)
        x_ours, x_ref = _leaf(x), _leaf(x)
        ours = mlp.batch_norm(x_ours, gamma, beta, running_mean, running_var, training=True,
                              momentum=momentum, eps=eps)
        theirs = reference(x_ref)
        assert_close(ours, theirs, tol, name=f"step {step} output")
        got = _grads(ours, [x_ours, gamma, beta], seed=step)
        want = _grads(theirs, [x_ref, reference.weight, reference.bias], seed=step)
        for what, a, b in zip(("x", "gamma", "beta"), got, want):
            assert_close(a, b, tol, name=f"step {step} dL/d{what}")
        assert_close(running_mean, reference.running_mean, tol, name=f"step {step} running mean")
        assert_close(running_var, reference.running_var, tol,
                     name=f"step {step} running var (unbiased)")
    reference.eval()
    x = torch.randn(3, C, dtype=dtype, device=device)
    x_ours, x_ref = _leaf(x), _leaf(x)
    ours = mlp.batch_norm(x_ours, gamma, beta, running_mean, running_var, training=False,
                          eps=eps)
    theirs = reference(x_ref)
    assert_close(ours, theirs, tol, name="evaluation output")
    assert_close(_grads(ours, [x_ours])[0], _grads(theirs, [x_ref])[0], tol,
                 name="evaluation dL/dx")
    # a sample's output in evaluation does not depend on its batch
    alone = mlp.batch_norm(x[:1], gamma, beta, running_mean, running_var, training=False,
                           eps=eps)
    assert_close(alone, ours[:1], tol, name="one sample vs in a batch")


def test_batch_norm_running_variance_is_the_unbiased_estimate():
    x = torch.tensor([[1.0], [2.0], [6.0]], dtype=torch.float64)  # variance 14/3, unbiased 7
    mean, var = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    y = mlp.batch_norm(x, one, zero, mean, var, training=True, momentum=1.0, eps=0.0)
    assert_close(mean, torch.tensor([3.0], dtype=torch.float64), FLOAT64, name="running mean")
    assert_close(var, torch.tensor([7.0], dtype=torch.float64), FLOAT64, name="running var")
    assert_close(y[:, 0], (x[:, 0] - 3.0) / math.sqrt(14 / 3), FLOAT64, name="biased in y")


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 12), c=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_batch_norm_property_zero_mean_unit_variance(n, c, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=generator, dtype=torch.float64) * 5 - 3
    ones, zeros = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    y = mlp.batch_norm(x, ones, zeros, zeros.clone(), ones.clone(), training=True, eps=0.0)
    assert y.shape == (n, c)
    assert_close(y.mean(0), zeros, FLOAT64, name="per-feature mean")
    spread = x.std(0, unbiased=False) > 1e-6  # a constant column normalises to 0, not 1
    assert_close(y.var(0, unbiased=False)[spread], ones[spread], FLOAT64,
                 name="per-feature variance")


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 9), n_in=st.integers(1, 7), n_out=st.integers(1, 7),
       seed=st.integers(0, 10_000))
def test_linear_property_shapes_and_values(n, n_in, n_out, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=generator, dtype=torch.float64)
    W = torch.randn(n_in, n_out, generator=generator, dtype=torch.float64)
    b = torch.randn(n_out, generator=generator, dtype=torch.float64)
    out = mlp.linear(x, W, b)
    assert out.shape == (n, n_out)
    assert_close(out, F.linear(x, W.T, b), FLOAT64)


def test_dropout_equals_x_times_mask_over_keep_probability():
    x = torch.randn(50, 40, dtype=torch.float64, requires_grad=True)
    p = 0.3
    y = mlp.dropout(x, p, training=True, generator=torch.Generator().manual_seed(5))
    # the same generator state gives the same uniform numbers: the mask is u >= p
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mask = (u >= p).double()
    assert_close(y, x * mask / (1 - p), FLOAT64, name="y = x m / (1 - p)")
    (dx,) = torch.autograd.grad(y.sum(), x)
    assert_close(dx, mask / (1 - p), FLOAT64, name="dy/dx = m / (1 - p)")
    # what F.dropout does too: every kept value is x / (1 - p), every dropped one 0
    reference = F.dropout(x.detach(), p, training=True)
    kept = reference != 0
    assert_close(reference[kept], x.detach()[kept] / (1 - p), FLOAT64, name="F.dropout scale")


def test_dropout_keep_probability_and_mean_statistically():
    p, n = 0.3, 200_000
    x = torch.ones(n, dtype=torch.float64)
    y = mlp.dropout(x, p, training=True, generator=torch.Generator().manual_seed(0))
    kept = float((y != 0).double().mean())
    # binomial: the kept fraction has standard deviation sqrt(p (1 - p) / n) ~ 0.001
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert abs(float(y.mean()) - 1.0) < 5 * math.sqrt(p / (1 - p) / n)  # E[y] = x
    reference_kept = float((F.dropout(x, p, training=True) != 0).double().mean())
    assert abs(kept - reference_kept) < 10 * math.sqrt(p * (1 - p) / n)


def test_dropout_in_evaluation_and_with_p_zero_is_the_identity():
    x = torch.randn(4, 5)
    assert mlp.dropout(x, 0.5, training=False) is x
    assert mlp.dropout(x, 0.0, training=True) is x
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        mlp.dropout(x, 1.0, training=True)


# --------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------


def test_xavier_and_he_equal_torch_nn_init_with_the_same_seed():
    ours = mlp.xavier_uniform(30, 20, generator=torch.Generator().manual_seed(3),
                              dtype=torch.float64)
    weight = torch.empty(20, 30, dtype=torch.float64)  # nn.Linear's (out, in)
    nn.init.xavier_uniform_(weight, generator=torch.Generator().manual_seed(3))
    assert ours.shape == (30, 20) and torch.equal(ours, weight.T)
    ours = mlp.he_normal(30, 20, generator=torch.Generator().manual_seed(4))
    weight = torch.empty(20, 30)
    nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=torch.Generator().manual_seed(4))
    assert torch.equal(ours, weight.T)


def test_initial_variances_are_the_papers():
    fan_in, fan_out = 400, 200
    xavier = mlp.xavier_uniform(fan_in, fan_out, generator=torch.Generator().manual_seed(0),
                                dtype=torch.float64)
    he = mlp.he_normal(fan_in, fan_out, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64)
    # 80,000 draws: the sample variance is within ~1 % of the true one
    assert math.isclose(float(xavier.var()), 2 / (fan_in + fan_out), rel_tol=0.03)
    assert float(xavier.abs().max()) <= math.sqrt(6 / (fan_in + fan_out))
    assert math.isclose(float(he.var()), 2 / fan_in, rel_tol=0.03)
    assert abs(float(he.mean())) < 0.002


def test_init_mlp_layout_and_seeding():
    params = mlp.init_mlp((6, 5, 4, 3), activation="tanh", batchnorm=True, seed=1,
                          dtype=torch.float64)
    assert list(params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                            "W3", "b3"]
    assert params["W1"].shape == (6, 5) and params["W3"].shape == (4, 3)
    assert all(p.requires_grad and p.is_leaf for p in params.values())
    assert torch.equal(params["b2"], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(params["gamma1"], torch.ones(5, dtype=torch.float64))
    # tanh -> Glorot: the first draw of the seeded generator is W1
    expected = mlp.xavier_uniform(6, 5, generator=torch.Generator().manual_seed(1),
                                  dtype=torch.float64)
    assert torch.equal(params["W1"].detach(), expected)
    again = mlp.init_mlp((6, 5, 4, 3), activation="tanh", batchnorm=True, seed=1,
                         dtype=torch.float64)
    assert all(torch.equal(params[k], again[k]) for k in params)
    other = mlp.init_mlp((6, 5, 4, 3), activation="tanh", seed=2, dtype=torch.float64)
    assert not torch.equal(params["W1"], other["W1"])
    state = mlp.init_bn_state(params)
    assert sorted(state) == ["running_mean1", "running_mean2", "running_var1", "running_var2"]
    # 6-5-4-3: 6*5+5 + 5*4+4 + 4*3+3 = 74, plus gamma and beta of the two hidden layers
    assert mlp.MLPLowLevel((6, 5, 4, 3)).num_parameters() == 74
    assert mlp.MLPLowLevel((6, 5, 4, 3), batchnorm=True).num_parameters() == 74 + 2 * (5 + 4)
    assert mlp.MLPLowLevel((784, 800, 10)).num_parameters() == 636_010


# --------------------------------------------------------------------------------------
# Optimisers against torch.optim
# --------------------------------------------------------------------------------------


def _optimizer_trajectory(our_step, torch_optimizer, device, steps=20):
    """Run a tiny MLP's loss through our step and torch's for ``steps`` steps; return both
    final parameter lists."""
    torch.manual_seed(3)
    X = torch.randn(16, 5, dtype=torch.float64, device=device)
    y = torch.randint(0, 3, (16,), device=device)
    start = [t.to(device) for t in mlp.init_mlp((5, 4, 3), seed=0, dtype=torch.float64).values()]
    ours = [_leaf(p) for p in start]
    theirs = [_leaf(p) for p in start]
    optimizer = torch_optimizer(theirs)

    def loss(params, rows):
        W1, b1, W2, b2 = params
        return mlp.cross_entropy(torch.tanh(X[rows] @ W1 + b1) @ W2 + b2, y[rows])

    state = None
    for step in range(steps):
        rows = slice((step % 4) * 4, (step % 4) * 4 + 4)  # a different batch each step
        mlp.zero_grad(ours)
        loss(ours, rows).backward()
        state = our_step(ours, state)
        optimizer.zero_grad()
        loss(theirs, rows).backward()
        optimizer.step()
    assert not torch.equal(ours[0], start[0])  # it moved
    return ours, theirs


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01)])
def test_sgd_step_equals_torch_optim_sgd(momentum, weight_decay, device):
    ours, theirs = _optimizer_trajectory(
        lambda params, state: mlp.sgd_step(params, 0.1, momentum=momentum,
                                           weight_decay=weight_decay, state=state),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=momentum,
                                       weight_decay=weight_decay), device)
    for name, a, b in zip(("W1", "b1", "W2", "b2"), ours, theirs):
        assert_close(a, b, FLOAT64, name=f"{name} after 20 SGD steps")


@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, False), (0.01, False), (0.05, True)])
def test_adam_step_equals_torch_optim_adam_and_adamw(weight_decay, decoupled, device):
    reference = torch.optim.AdamW if decoupled else torch.optim.Adam
    ours, theirs = _optimizer_trajectory(
        lambda params, state: mlp.adam_step(params, 0.01, betas=(0.8, 0.99),
                                            weight_decay=weight_decay, decoupled=decoupled,
                                            state=state),
        lambda params: reference(params, lr=0.01, betas=(0.8, 0.99), weight_decay=weight_decay),
        device)
    # float64 and the same formula up to where sqrt(1 - beta2^t) is applied: far tighter
    # than OPTIMIZER_TRAJECTORY
    for name, a, b in zip(("W1", "b1", "W2", "b2"), ours, theirs):
        assert_close(a, b, FLOAT64, name=f"{name} after 20 {reference.__name__} steps")


def test_adam_first_step_moves_every_coordinate_by_lr():
    p = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([1e-2, -50.0, 3.0], dtype=torch.float64)  # wildly different scales
    state = mlp.adam_step([p], lr=0.1, eps=1e-14)
    # t = 1: m_hat = g, v_hat = g^2, so the step is lr * sign(g)
    assert_close(p.detach(), torch.tensor([0.9, -1.9, 2.9], dtype=torch.float64), FLOAT64)
    assert state[0]["step"] == 1


def test_optimizer_arguments_are_checked():
    p = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr must be > 0"):
        mlp.sgd_step([p], 0.0)
    with pytest.raises(ValueError, match="momentum"):
        mlp.sgd_step([p], 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        mlp.adam_step([p], 0.1, betas=(0.9, 1.0))
    assert mlp.sgd_step([p], 0.1) == {} and torch.equal(p, torch.ones(2))  # no grad: no step


# --------------------------------------------------------------------------------------
# The whole network against an nn.Sequential with the same weights
# --------------------------------------------------------------------------------------


def _reference_sequential(params, activation: str, dropout: float = 0.0) -> nn.Sequential:
    """The nn.Sequential twin of ``params``: Linear -> [BatchNorm1d] -> f -> [Dropout] ..."""
    L = mlp.n_layers(params)
    layers = []
    for l in range(1, L + 1):
        W = params[f"W{l}"]
        linear = nn.Linear(*W.shape).to(dtype=W.dtype, device=W.device)
        with torch.no_grad():
            linear.weight.copy_(W.T)
            linear.bias.copy_(params[f"b{l}"])
        layers.append(linear)
        if l == L:
            break
        if f"gamma{l}" in params:
            norm = nn.BatchNorm1d(W.shape[1]).to(dtype=W.dtype, device=W.device)
            with torch.no_grad():
                norm.weight.copy_(params[f"gamma{l}"])
                norm.bias.copy_(params[f"beta{l}"])
            layers.append(norm)
        layers.append(TORCH_ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _compare_with_sequential(params, reference, x, y, *, activation, training, bn_state, tol,
                             what):
    ours_loss = mlp.cross_entropy(mlp.mlp_forward(params, x, activation=activation,
                                                  training=training, bn_state=bn_state), y)
    reference.train(training)
    their_loss = F.cross_entropy(reference(x), y)
    assert_close(ours_loss, their_loss, tol, name=f"{what} loss")
    ours = torch.autograd.grad(ours_loss, list(params.values()))
    theirs = torch.autograd.grad(their_loss, list(reference.parameters()))
    # A bias just before batch norm has a true gradient of 0 (the norm removes the mean);
    # what is left is the rounding of sums whose terms are as large as the other gradients,
    # so float32 compares at the scale of the whole gradient, not of that tensor.
    scale = max(float(g.detach().pow(2).mean().sqrt()) for g in theirs)
    for (name, _), a, b in zip(params.items(), ours, theirs):
        assert_close(a, b.T if name.startswith("W") else b, tol, name=f"{what} dJ/d{name}",
                     scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "gelu"])
def test_mlp_equals_nn_sequential_with_copied_weights(activation, dtype, device):
    torch.manual_seed(4)
    params = mlp.init_mlp((6, 8, 7, 3), activation=activation, seed=4, dtype=dtype,
                          device=device)
    with torch.no_grad():
        params["b1"].uniform_(-0.5, 0.5)  # non-zero biases, so that they are checked too
    x = torch.randn(9, 6, dtype=dtype, device=device)
    y = torch.randint(0, 3, (9,), device=device)
    reference = _reference_sequential(params, activation, dropout=0.5)
    logits = mlp.mlp_forward(params, x, activation=activation, dropout_p=0.5)  # evaluation
    assert_close(logits, reference.eval()(x), tolerance(dtype, device), name="logits")
    _compare_with_sequential(params, reference, x, y, activation=activation, training=False,
                             bn_state=None, tol=tolerance(dtype, device), what=activation)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_with_batch_norm_equals_nn_sequential_in_training_and_evaluation(dtype, device):
    torch.manual_seed(5)
    params = mlp.init_mlp((6, 8, 7, 3), batchnorm=True, seed=5, dtype=dtype, device=device)
    bn_state = mlp.init_bn_state(params)
    reference = _reference_sequential(params, "relu")
    norms = [m for m in reference if isinstance(m, nn.BatchNorm1d)]
    tol = tolerance(dtype, device)
    for step in range(3):
        x = torch.randn(10, 6, dtype=dtype, device=device) * 2 + 1
        y = torch.randint(0, 3, (10,), device=device)
        _compare_with_sequential(params, reference, x, y, activation="relu", training=True,
                                 bn_state=bn_state, tol=tol, what=f"training step {step}")
        for l, norm in enumerate(norms, start=1):
            assert_close(bn_state[f"running_mean{l}"], norm.running_mean, tol)
            assert_close(bn_state[f"running_var{l}"], norm.running_var, tol)
    x = torch.randn(4, 6, dtype=dtype, device=device)
    y = torch.randint(0, 3, (4,), device=device)
    _compare_with_sequential(params, reference, x, y, activation="relu", training=False,
                             bn_state=bn_state, tol=tol, what="evaluation")


def test_training_loop_equals_torch_optim_on_nn_sequential():
    """Full-batch training with our loop == nn.Sequential + torch.optim.SGD, epoch by epoch
    (full batch: the shuffled order does not change the mean gradient)."""
    torch.manual_seed(6)
    X = torch.randn(40, 4, dtype=torch.float64)
    y = (X[:, 0] * X[:, 1] > 0).long()  # XOR-like: needs the hidden layer
    model = mlp.MLPLowLevel((4, 16, 2), activation="tanh", seed=6, dtype=torch.float64)
    reference = _reference_sequential(model.params, "tanh")
    history = script.train(model, X, y, optimizer="sgd", lr=0.5, momentum=0.9, epochs=30,
                        batch_size=40, schedule="cosine")
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(reference(X), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    assert_close(np.array(history["train_loss"]), np.array(losses), OPTIMIZER_TRAJECTORY,
                 name="loss per epoch")
    assert_close(model.params["W1"], reference[0].weight.T, OPTIMIZER_TRAJECTORY, name="W1")
    assert losses[-1] < 0.5 * losses[0]


def test_training_is_reproducible_and_dropout_masks_follow_the_seed():
    X = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    y = (X.sum(1) > 0).long()
    runs = []
    for seed in (3, 3, 4):
        model = mlp.MLPLowLevel((5, 16, 2), dropout=0.3, batchnorm=True, seed=0)
        script.train(model, X, y, epochs=2, batch_size=16, seed=seed)
        runs.append(model.params["W1"].detach())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


# --------------------------------------------------------------------------------------
# Evaluation runs in eval mode; training reshuffles every epoch
# --------------------------------------------------------------------------------------


def test_evaluation_is_deterministic_eval_mode_and_leaves_the_running_statistics():
    generator = torch.Generator().manual_seed(40)
    X = 2 + 3 * torch.randn(40, 6, generator=generator, dtype=torch.float64)
    y = torch.arange(40) % 3
    model = mlp.MLPLowLevel((6, 16, 16, 3), dropout=0.5, batchnorm=True, seed=41,
                            dtype=torch.float64)
    script.train(model, X, y, epochs=2, batch_size=10)  # running statistics move off 0 and 1
    stats = {k: v.clone() for k, v in model.bn_state.items()}
    logits = model(X)  # the default: evaluation
    predictions = model.predict(X, batch_size=16)
    loss, accuracy = script.evaluate(model, X, y, batch_size=16)
    assert torch.equal(model.predict(X), predictions)  # no dropout noise
    assert script.evaluate(model, X, y, batch_size=16) == (loss, accuracy)
    for k, v in model.bn_state.items():
        assert torch.equal(v, stats[k]), f"evaluation changed {k}"
    assert torch.equal(predictions, logits.argmax(dim=1))
    assert_close(loss, mlp.cross_entropy(logits, y), FLOAT64, name="evaluate's loss")
    # each example's logits depend on it alone, not on the rest of its batch
    assert_close(model(X[:3]), logits[:3], FLOAT64, name="3 of 40")
    assert torch.equal(model.predict(X[:3]), predictions[:3])


class RecordingMLP(mlp.MLPLowLevel):
    """An MLPLowLevel that notes the rows of every training batch (column 0 names a row)."""

    def __init__(self, *args, row_of, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_of, self.batches = row_of, []

    def forward(self, x, *, training=False, generator=None):
        if training:
            self.batches.append([self.row_of[float(v)] for v in x[:, 0]])
        return super().forward(x, training=training, generator=generator)

    __call__ = forward


def test_training_visits_the_data_in_a_new_seeded_order_every_epoch():
    X = torch.randn(20, 4, generator=torch.Generator().manual_seed(42))
    y = torch.arange(20) % 2
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}
    orders = []
    for seed in (0, 0, 1):
        model = RecordingMLP((4, 8, 2), row_of=row_of, seed=43)
        script.train(model, X, y, epochs=3, batch_size=5, seed=seed)
        assert [len(b) for b in model.batches] == [5] * 12, "4 batches of 5 in 3 epochs"
        epochs = [sum(model.batches[4 * e:4 * e + 4], []) for e in range(3)]
        for order in epochs:
            assert sorted(order) == list(range(20)), "each epoch visits every row once"
        assert epochs[0] != list(range(20)), "the first epoch is shuffled too"
        assert epochs[0] != epochs[1] != epochs[2], "a new order every epoch"
        orders.append(epochs)
    assert orders[0] == orders[1], "the same seed gives the same batches"
    assert orders[0] != orders[2], "another seed gives other batches"


# --------------------------------------------------------------------------------------
# Vanishing gradients
# --------------------------------------------------------------------------------------


def test_deep_sigmoid_gradients_vanish_relu_gradients_do_not():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(128, 20, generator=generator)
    y = torch.randint(0, 5, (128,), generator=generator)
    sigmoid = script.gradient_flow(X, y, activation="sigmoid", n_classes=5)
    relu = script.gradient_flow(X, y, activation="relu", n_classes=5)
    assert list(sigmoid) == [f"W{l}" for l in range(1, 12)]
    # each sigmoid layer scales the gradient by <= 1/4: ten of them, <= 1e-6 in theory
    assert script.first_to_last_gradient_ratio(sigmoid) < 1e-4
    assert script.first_to_last_gradient_ratio(relu) > 0.05
    # the ratio is what it says: mean |dJ/dW1| / mean |dJ/dW11|
    ratio = float(sigmoid["W1"].abs().mean() / sigmoid["W11"].abs().mean())
    assert math.isclose(script.first_to_last_gradient_ratio(sigmoid), ratio, rel_tol=1e-6)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors():
    model = mlp.MLPLowLevel((4, 8, 3))
    with pytest.raises(ValueError, match=r"expected inputs of shape \(N, 4\)"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="X has 5 features, but the model was built for 4"):
        model.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="flatten images first"):
        mlp.check_features(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        mlp.check_features(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match=r"in 0\.\.2 \(the model has 3 outputs\)"):
        script.train(model, np.zeros((4, 4)), np.array([0, 1, 2, 3]), epochs=1)
    with pytest.raises(ValueError, match="4 labels"):
        script.train(model, np.zeros((4, 4)), np.array([0, 1, 2]), epochs=1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        script.train(model, np.zeros((4, 4)), np.zeros(4, dtype=int), optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown activation"):
        mlp.MLPLowLevel((4, 3), activation="swish")
    with pytest.raises(ValueError, match="at least an input and an output"):
        mlp.init_mlp((4,))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mlp.MLPLowLevel((4, 8, 3), batchnorm=True)(torch.zeros(1, 4), training=True)
    params = mlp.init_mlp((4, 8, 3), batchnorm=True)
    with pytest.raises(ValueError, match="pass init_bn_state"):
        mlp.mlp_forward(params, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="int64 class indices"):
        mlp.cross_entropy(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="comma-separated"):
        script.parse_hidden("800x2")
    with pytest.raises(ValueError, match=">= 1"):
        script.parse_hidden("800,-2")
    assert script.parse_hidden("256, 128") == (256, 128) and script.parse_hidden("none") == ()
    with pytest.raises(FloatingPointError, match="learning rate"):
        script.train(mlp.MLPLowLevel((4, 8, 3)),
                     np.random.default_rng(0).normal(size=(32, 4)) * 1e3, np.arange(32) % 3,
                     lr=1e4, epochs=3, batch_size=8)


# --------------------------------------------------------------------------------------
# The script: a few epochs on its offline data, and its options
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, options", [
    ("digits", ["--epochs", "2", "--hidden", "32"]),
    ("moons", ["--epochs", "3", "--optimizer", "adam", "--batchnorm", "--dropout", "0.1",
               "--hidden", "16,16", "--activation", "tanh"]),
])
def test_script_runs_a_few_epochs(tmp_path, dataset, options):
    metrics = script.main(["--dataset", dataset, "--out", str(tmp_path), "--no-progress",
                        "--device", "cpu", *options])
    classes = 10 if dataset == "digits" else 2
    # better than the trivial model: the uniform prediction has loss log K, accuracy ~1/K
    assert 0 < metrics["final_loss"] < 0.8 * math.log(classes)
    assert min(metrics["train_accuracy"], metrics["test_accuracy"]) > 1.5 / classes
    assert metrics["grad_ratio_sigmoid"] < 1e-3 < 0.05 < metrics["grad_ratio_relu"]
    picture = "decision_boundary.png" if dataset == "moons" else "confusion.png"
    for name in ("loss.png", picture, "gradient_flow_sigmoid.png", "gradient_flow_relu.png"):
        assert (tmp_path / name).is_file(), name


@pytest.mark.parametrize("options, option", [
    (["--hidden", "abc"], "--hidden"),
    (["--hidden", "64,-1"], "--hidden"),
    (["--dropout", "1"], "--dropout"),
    (["--momentum", "-0.1"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "-0.1"], "--lr"),
])
def test_script_rejects_bad_options_naming_them(tmp_path, capsys, options, option):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--out", str(tmp_path), "--no-progress", "--device", "cpu", *options])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default: None" not in text and "per dataset:" in text


def test_script_reports_a_missing_dataset_cleanly(tmp_path):
    with pytest.raises(SystemExit, match="error: the data root"):
        script.main(["--dataset", "mnist", "--data-root", str(tmp_path / "empty"), "--out",
                  str(tmp_path), "--no-progress", "--device", "cpu"])


@pytest.mark.slow
def test_784_800_10_reaches_98_percent_on_real_mnist(tmp_path, shared_data):
    metrics = script.main(["--dataset", "mnist", "--data-root", str(shared_data), "--out",
                        str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.98
