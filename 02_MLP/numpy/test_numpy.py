"""Tests of lesson 02, level 1 (NumPy): every number checked against a reference.

References:

- central finite differences (float64) for every hand-written backward pass, layer by
  layer and for a whole network;
- PyTorch on the same inputs and weights: each layer against its functional form
  (F.linear, relu, sigmoid, tanh, F.gelu in both forms, dropout with the same mask,
  F.batch_norm), the whole network against an ``nn.Sequential`` with copied weights
  (forward and every gradient), BatchNorm1d against ``nn.BatchNorm1d`` over several
  steps (running statistics included), and 20 steps of SGD-momentum and of Adam against
  ``torch.optim``;
- statistics the initialisers must have (He: Var = 2/fan_in; Xavier: U(+-sqrt(6/(in+out))));
- properties for any shape and dtype (hypothesis).

Run from the repository root: ``pytest 02_MLP/numpy`` (add ``--slow`` for the real-MNIST
run, which needs a local copy of the data).
"""

from __future__ import annotations

import math
import subprocess
import sys
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
    FLOAT64,
    L1_VS_AUTOGRAD,
    OPTIMIZER_TRAJECTORY,
    Tol,
    assert_close,
    assert_level_purity,
    check_against_autograd,
    check_layer_gradients,
    float32_tol,
)

mlp = import_lesson("02_MLP.numpy.mlp_numpy")
train = import_lesson("02_MLP.numpy.train")

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# A float32 network against the same network in float64: float32 keeps ~7 digits,
# and sums over a batch and a hidden layer lose one or two of them.
FLOAT32_VS_FLOAT64 = float32_tol(1024)  # scaled to each tensor: see utils/testing.py

# few examples and no deadline: fast and not flaky on a busy 2-core machine
few_examples = settings(max_examples=20, deadline=None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------
# The level's rules and the import guard
# ---------------------------------------------------------------------------


def test_level_purity():
    assert_level_purity(HERE)


def test_shadowing_guard_explains_how_to_run():
    """Python started inside 02_MLP/ must not silently use this folder as NumPy."""
    result = subprocess.run([sys.executable, "-c", "import numpy"], cwd=HERE.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "python 02_MLP/numpy/train.py" in result.stderr


def test_importing_the_lesson_does_not_import_torch():
    code = ("import sys, importlib\n"
            "importlib.import_module('02_MLP.numpy.mlp_numpy')\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Each layer: backward against finite differences, forward and backward against torch
# ---------------------------------------------------------------------------


def make_linear(init):
    layer = mlp.Linear(4, 3, init=init, rng=1)
    layer.b = randn(3, seed=2)  # a non-zero bias, so that a wrong db would show
    return layer


def make_batchnorm(training):
    layer = mlp.BatchNorm1d(4, eps=1e-3)
    layer.params["gamma"][...] = 1 + 0.5 * randn(4, seed=3)
    layer.params["beta"][...] = randn(4, seed=4)
    layer.running_mean[...] = 0.3 * randn(4, seed=5)
    layer.running_var[...] = 0.5 + np.abs(randn(4, seed=6))
    return layer.train(training)


def torch_batchnorm(layer):
    """F.batch_norm with the layer's settings (and its running stats in eval mode)."""
    rm, rv = (torch.from_numpy(layer.running_mean.copy()),
              torch.from_numpy(layer.running_var.copy()))
    training = layer.training

    def forward(x, p):
        if training:  # batch statistics; no running buffers needed to compare outputs
            return F.batch_norm(x, None, None, p["gamma"], p["beta"], training=True,
                                eps=layer.eps)
        return F.batch_norm(x, rm, rv, p["gamma"], p["beta"], training=False, eps=layer.eps)

    return forward


# (name, layer factory, torch function of (x, params)); x has shape (5, 4)
LAYER_CASES = [
    ("linear-he", lambda: make_linear("he"), lambda x, p: F.linear(x, p["W"].T, p["b"])),
    ("linear-xavier", lambda: make_linear("xavier"), lambda x, p: F.linear(x, p["W"].T, p["b"])),
    ("linear-lecun", lambda: make_linear("lecun"), lambda x, p: F.linear(x, p["W"].T, p["b"])),
    ("relu", mlp.ReLU, lambda x, p: torch.relu(x)),
    ("sigmoid", mlp.Sigmoid, lambda x, p: torch.sigmoid(x)),
    ("tanh", mlp.Tanh, lambda x, p: torch.tanh(x)),
    ("gelu", lambda: mlp.GELU("none"), lambda x, p: F.gelu(x, approximate="none")),
    ("gelu-tanh", lambda: mlp.GELU("tanh"), lambda x, p: F.gelu(x, approximate="tanh")),
    ("batchnorm-train", lambda: make_batchnorm(True), None),
    ("batchnorm-eval", lambda: make_batchnorm(False), None),
]


@pytest.mark.parametrize("name, make, torch_fn", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_backward_matches_finite_differences(name, make, torch_fn):
    layer = make()
    x = 2 * randn(5, 4, seed=7)
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"x", *layer.params}


@pytest.mark.parametrize("name, make, torch_fn", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_torch_autograd(name, make, torch_fn):
    layer = make()
    if torch_fn is None:
        torch_fn = torch_batchnorm(layer)
    check_against_autograd(layer, torch_fn, 2 * randn(5, 4, seed=8))


def test_activations_work_on_any_shape():
    """LeNet applies the same activation layers to (N, C, H, W) feature maps."""
    x = randn(2, 3, 4, 5, seed=9)
    for layer, ref in [(mlp.ReLU(), torch.relu), (mlp.Tanh(), torch.tanh),
                       (mlp.Sigmoid(), torch.sigmoid), (mlp.GELU(), F.gelu)]:
        check_against_autograd(layer, lambda x_t, p, ref=ref: ref(x_t), x)


def test_erf_matches_torch():
    x = np.linspace(-6, 6, 101)
    assert_close(mlp.erf(x), torch.erf(torch.from_numpy(x)), FLOAT64, name="erf")
    assert mlp.erf(x.astype(np.float32)).dtype == np.float32


class ReseededDropout:
    """A Dropout whose every forward draws the same mask, so finite differences apply."""

    def __init__(self, p, seed):
        self.layer, self.seed = mlp.Dropout(p), seed
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.layer.rng = np.random.default_rng(self.seed)
        return self.layer.forward(x)

    def backward(self, dy):
        return self.layer.backward(dy)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_equals_the_masked_scaled_input(p):
    layer = mlp.Dropout(p, rng=0)
    x = randn(6, 5, seed=10)
    # the torch reference uses the layer's own mask: x * mask / (1 - p)
    check_against_autograd(layer, lambda x_t, _: x_t * torch.from_numpy(layer.mask) / (1 - p), x)
    assert set(np.unique(layer.mask)) <= {0.0, 1.0} and layer.mask.shape == x.shape
    check_layer_gradients(ReseededDropout(p, seed=3), x)


def test_dropout_statistics_and_eval_mode():
    p = 0.3
    layer = mlp.Dropout(p, rng=1)
    x = np.ones((400, 500))
    y = layer.forward(x)
    kept = layer.mask.mean()
    # 200,000 Bernoulli(0.7) draws: standard error 0.001; allow 5 of them
    assert abs(kept - (1 - p)) < 5e-3
    assert abs(y.mean() - 1.0) < 5e-3 / (1 - p)  # inverted dropout keeps E[y] = x
    np.testing.assert_array_equal(np.unique(y), [0.0, 1 / (1 - p)])
    layer.eval()
    assert layer.forward(x) is x and layer.mask is None
    np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)
    layer.train()
    assert mlp.Dropout(0.0).forward(x) is x  # p = 0: nothing dropped, nothing scaled


def test_dropout_rng_is_reproducible():
    x = randn(8, 8, seed=11)
    a, b = mlp.Dropout(0.5, rng=4).forward(x), mlp.Dropout(0.5, rng=4).forward(x)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# BatchNorm1d against nn.BatchNorm1d, train mode over several steps then eval mode
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.3, 1e-3)])
def test_batchnorm_equals_torch_over_several_steps(momentum, eps):
    ours = mlp.BatchNorm1d(3, eps=eps, momentum=momentum)
    ref = nn.BatchNorm1d(3, eps=eps, momentum=momentum, dtype=torch.float64)
    gamma, beta = 1 + randn(3, seed=12), randn(3, seed=13)
    ours.params["gamma"][...], ours.params["beta"][...] = gamma, beta
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))

    def step(x, dy, label):
        y = ours.forward(x)
        dx = ours.backward(dy)
        x_t = torch.tensor(x, requires_grad=True)
        ref.weight.grad = ref.bias.grad = None
        y_t = ref(x_t)
        (y_t * torch.from_numpy(dy)).sum().backward()
        assert_close(y, y_t, L1_VS_AUTOGRAD, name=f"{label} output")
        assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name=f"{label} dL/dx")
        assert_close(ours.grads["gamma"], ref.weight.grad, L1_VS_AUTOGRAD, name=f"{label} dgamma")
        assert_close(ours.grads["beta"], ref.bias.grad, L1_VS_AUTOGRAD, name=f"{label} dbeta")
        # running_var uses the UNBIASED batch variance, normalisation the biased one
        assert_close(ours.running_mean, ref.running_mean, FLOAT64, name=f"{label} running_mean")
        assert_close(ours.running_var, ref.running_var, FLOAT64, name=f"{label} running_var")

    for i, n in enumerate([4, 7, 2, 16, 5]):  # batches of different sizes, shifted and scaled
        x = 3 + 2 * randn(n, 3, seed=20 + i)
        step(x, randn(n, 3, seed=40 + i), f"train step {i}")
    assert not np.allclose(ours.running_var, 1.0)  # the statistics really moved
    ours.eval()
    ref.eval()
    before = ours.running_mean.copy()
    step(3 + 2 * randn(6, 3, seed=60), randn(6, 3, seed=61), "eval")
    np.testing.assert_array_equal(ours.running_mean, before)  # eval never updates them


def test_batchnorm_output_is_normalised():
    layer = mlp.BatchNorm1d(5)
    y = layer.forward(10 + 4 * randn(64, 5, seed=14))
    assert_close(y.mean(axis=0), np.zeros(5), FLOAT64, name="batch mean")
    # var(x_hat) = var / (var + eps), slightly below 1
    assert np.all(np.abs(y.var(axis=0) - 1) < 1e-5)


# ---------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------


def test_softmax_cross_entropy_equals_torch():
    logits, y = 3 * randn(8, 5, seed=15), np.random.default_rng(16).integers(0, 5, 8)
    loss_fn = mlp.SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, y)
    z = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(z, torch.from_numpy(y))
    ref.backward()
    assert isinstance(loss, float)
    assert_close(loss, ref.item(), L1_VS_AUTOGRAD, name="loss")
    assert_close(loss_fn.backward(), z.grad, L1_VS_AUTOGRAD, name="dL/dlogits")
    assert_close(loss_fn.backward(2.5), 2.5 * z.grad, L1_VS_AUTOGRAD, name="scaled")
    with pytest.raises(RuntimeError, match="before forward"):
        mlp.SoftmaxCrossEntropy().backward()


# ---------------------------------------------------------------------------
# A whole network against nn.Sequential with the same weights
# ---------------------------------------------------------------------------


class MaskedDropout(nn.Module):
    """Dropout that applies the NumPy layer's last mask, so both nets drop the same units."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        if not self.training or self.layer.mask is None:
            return x
        return x * torch.from_numpy(self.layer.mask) / (1 - self.layer.p)


def torch_twin(net) -> nn.Sequential:
    """nn.Sequential with the NumPy net's weights (nn.Linear.weight is our W transposed)."""
    modules = []
    for layer in net.layers:
        if isinstance(layer, mlp.Linear):
            m = nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.W.T))
                m.bias.copy_(torch.from_numpy(layer.b))
        elif isinstance(layer, mlp.BatchNorm1d):
            m = nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                               dtype=torch.float64)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.params["gamma"]))
                m.bias.copy_(torch.from_numpy(layer.params["beta"]))
                m.running_mean.copy_(torch.from_numpy(layer.running_mean))
                m.running_var.copy_(torch.from_numpy(layer.running_var))
        elif isinstance(layer, mlp.GELU):
            m = nn.GELU(approximate=layer.approximate)
        elif isinstance(layer, mlp.Dropout):
            m = MaskedDropout(layer)
        else:
            m = {mlp.ReLU: nn.ReLU, mlp.Sigmoid: nn.Sigmoid, mlp.Tanh: nn.Tanh}[type(layer)]()
        modules.append(m)
    return nn.Sequential(*modules).train(net.training)


def torch_counterpart(twin: nn.Sequential, name: str, what: str = "param") -> torch.Tensor:
    """Our "i.W" / "i.b" / "i.gamma" / "i.beta" as the twin's tensor (W transposed back)."""
    index, key = name.split(".")
    module = twin[int(index)]
    tensor = module.weight if key in ("W", "gamma") else module.bias
    tensor = tensor.grad if what == "grad" else tensor.detach()
    return tensor.T if key == "W" else tensor


def every_layer_net(seed=0):
    """All layer kinds in one float64 net: 6 -> 3 classes."""
    rng = np.random.default_rng(seed)
    return mlp.Sequential(
        mlp.Linear(6, 8, rng=rng), mlp.BatchNorm1d(8), mlp.ReLU(),
        mlp.Linear(8, 7, init="xavier", rng=rng), mlp.Tanh(),
        mlp.Linear(7, 6, rng=rng), mlp.GELU("none"),
        mlp.Linear(6, 5, rng=rng), mlp.GELU("tanh"), mlp.Dropout(0.3, rng=rng),
        mlp.Linear(5, 4, init="lecun", rng=rng), mlp.Sigmoid(),
        mlp.Linear(4, 3, init="xavier", rng=rng),
    )


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_network_equals_nn_sequential(training):
    net = every_layer_net()
    if not training:  # give eval mode non-trivial running statistics first
        for i in range(3):
            net.forward(randn(10, 6, seed=70 + i))
    net.train(training)
    X, y = randn(10, 6, seed=17), np.random.default_rng(18).integers(0, 3, 10)
    twin = torch_twin(net)  # copies the weights and the running statistics

    loss_fn = mlp.SoftmaxCrossEntropy()
    logits = net.forward(X)  # draws the dropout mask that the twin then reuses
    loss = loss_fn.forward(logits, y)
    dx = net.backward(loss_fn.backward())

    x_t = torch.tensor(X, requires_grad=True)
    logits_t = twin(x_t)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(y))
    loss_t.backward()

    assert_close(logits, logits_t, L1_VS_AUTOGRAD, name="logits")
    assert_close(loss, loss_t.item(), L1_VS_AUTOGRAD, name="loss")
    assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name="dL/dx")
    assert len(net.grads) == 2 * 7  # six Linear (W, b) and one BatchNorm (gamma, beta)
    for name, grad in net.grads.items():
        assert_close(grad, torch_counterpart(twin, name, "grad"), L1_VS_AUTOGRAD,
                     name=f"dL/d{name}")
    bn = twin[1]
    assert_close(net.layers[1].running_mean, bn.running_mean, FLOAT64, name="running_mean")
    assert_close(net.layers[1].running_var, bn.running_var, FLOAT64, name="running_var")
    assert net.num_params() == sum(p.numel() for p in twin.parameters())


def test_network_backward_matches_finite_differences():
    net = every_layer_net(seed=1)
    fixed = ReseededDropout(0.3, seed=5)  # the net's dropout, with a mask fixed across calls
    net.layers[9] = fixed
    errors = check_layer_gradients(net, randn(6, 6, seed=19))
    assert set(errors) == {"x", *net.params} and len(errors) == 15


def test_sequential_shares_the_layers_arrays():
    net = mlp.build_mlp((4, 5, 3), batchnorm=True, rng=0)
    assert list(net.params) == ["0.W", "0.b", "1.gamma", "1.beta", "3.W", "3.b"]
    assert list(net.grads) == list(net.params)
    for name, p in net.params.items():
        index, key = name.split(".")
        assert p is net.layers[int(index)].params[key]
        assert net.grads[name] is net.layers[int(index)].grads[key]
    before = net.layers[0].W.copy()
    net.forward(randn(6, 4, seed=21))
    net.backward(np.ones((6, 3)))
    optimizer = mlp.SGD(net, lr=0.1)
    optimizer.step()
    assert_close(net.layers[0].W, before - 0.1 * net.layers[0].grads["W"], FLOAT64)
    optimizer.zero_grad()
    assert all(np.all(g == 0) for g in net.grads.values())
    assert net.grads["0.W"] is net.layers[0].grads["W"]  # zeroed in place
    # train / eval reach every layer
    net.eval()
    assert not any(layer.training for layer in net)
    net.train()
    assert all(layer.training for layer in net)


def test_build_mlp_layout_and_parameter_count():
    net = mlp.build_mlp(rng=0)  # Simard et al.'s 784-800-10
    assert [type(layer).__name__ for layer in net] == ["Linear", "ReLU", "Linear"]
    assert net.num_params() == 784 * 800 + 800 + 800 * 10 + 10 == 636_010
    assert net.layers[0].init == "he"
    deep = mlp.build_mlp((5, 4, 4, 2), activation="tanh", dropout=0.5, batchnorm=True, rng=0)
    assert [type(layer).__name__ for layer in deep] == [
        "Linear", "BatchNorm1d", "Tanh", "Dropout",
        "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear"]
    assert deep.layers[0].init == "xavier"  # the init that suits tanh
    f32 = mlp.build_mlp((5, 4, 2), batchnorm=True, dtype=np.float32, rng=0)
    assert all(p.dtype == np.float32 for p in f32.params.values())


def test_float32_network_agrees_with_float64():
    net64 = mlp.build_mlp((6, 16, 16, 4), activation="gelu", batchnorm=True, rng=3)
    net32 = mlp.build_mlp((6, 16, 16, 4), activation="gelu", batchnorm=True, rng=3,
                          dtype=np.float32)
    X, y = randn(12, 6, seed=22), np.arange(12) % 4
    outs = {}
    for net, X_in in [(net64, X), (net32, X.astype(np.float32))]:
        loss_fn = mlp.SoftmaxCrossEntropy()
        logits = net.forward(X_in)
        loss_fn.forward(logits, y)
        dx = net.backward(loss_fn.backward())
        assert logits.dtype == dx.dtype == X_in.dtype
        outs[X_in.dtype] = (logits, dx, net.grads)
    for a, b, name in zip(outs[np.dtype(np.float32)][:2], outs[np.dtype(np.float64)][:2],
                          ["logits", "dx"]):
        assert_close(a, b, FLOAT32_VS_FLOAT64, name=name)
    # a bias before batch norm has a true gradient of 0 (rounding noise is all that is left):
    # compare every gradient at the scale of the whole gradient
    scale = max(np.sqrt(np.mean(g ** 2)) for g in outs[np.dtype(np.float64)][2].values())
    for name, g in outs[np.dtype(np.float32)][2].items():
        assert g.dtype == np.float32
        assert_close(g, outs[np.dtype(np.float64)][2][name], FLOAT32_VS_FLOAT64, name=name,
                     scale=scale)


# ---------------------------------------------------------------------------
# Optimisers: 20 steps against torch.optim
# ---------------------------------------------------------------------------


def _trajectory(make_ours, make_torch, *, batchnorm, steps=20):
    """Train our net and its torch twin side by side; compare every parameter every step."""
    net = mlp.build_mlp((5, 12, 12, 3), activation="tanh", batchnorm=batchnorm, rng=7)
    twin = torch_twin(net)
    ours, theirs = make_ours(net), make_torch(twin.parameters())
    loss_fn = mlp.SoftmaxCrossEntropy()
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((64, 5)), rng.integers(0, 3, 64)
    losses = []
    for step in range(steps):
        idx = rng.choice(64, size=16, replace=False)  # a different mini-batch every step
        loss = loss_fn.forward(net.forward(X[idx]), y[idx])
        net.backward(loss_fn.backward())
        ours.step()
        theirs.zero_grad()
        loss_t = F.cross_entropy(twin(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
        loss_t.backward()
        theirs.step()
        assert_close(loss, loss_t.item(), OPTIMIZER_TRAJECTORY, name=f"loss at step {step}")
        for name, p in net.params.items():
            assert_close(p, torch_counterpart(twin, name), OPTIMIZER_TRAJECTORY,
                         name=f"{name} after step {step + 1}")
        losses.append(loss)
    assert losses[-1] < losses[0]  # and it does learn


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-2)])
def test_sgd_follows_torch_optim(momentum, weight_decay):
    _trajectory(lambda net: mlp.SGD(net, 0.1, momentum=momentum, weight_decay=weight_decay),
                lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=momentum,
                                           weight_decay=weight_decay), batchnorm=True)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_follows_torch_optim(weight_decay):
    # No batch norm here: the bias of a Linear followed by BatchNorm has gradient exactly 0
    # in theory, rounding noise (~1e-17) in practice, and Adam divides that noise by its
    # own size, turning it into steps of +-lr whose sign differs between NumPy and torch.
    _trajectory(lambda net: mlp.Adam(net, 1e-2, betas=(0.8, 0.99), eps=1e-6,
                                     weight_decay=weight_decay),
                lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                            weight_decay=weight_decay), batchnorm=False)


def test_optimisers_update_in_place_and_take_any_model_with_params():
    layer = mlp.Linear(3, 2, rng=0)
    W = layer.W
    layer.forward(randn(4, 3, seed=23))
    layer.backward(np.ones((4, 2)))
    for optimizer in (mlp.SGD(layer, 0.1, momentum=0.9), mlp.Adam(layer)):
        optimizer.step()
    assert layer.W is W and layer.params["W"] is W
    # Adam's first step moves every coordinate by lr (m_hat / sqrt(v_hat) = sign(g))
    layer2 = mlp.Linear(3, 2, rng=0)
    start = layer2.W.copy()
    layer2.forward(randn(4, 3, seed=23))
    layer2.backward(np.ones((4, 2)))
    mlp.Adam(layer2, lr=0.01, eps=1e-12).step()
    assert_close(np.abs(layer2.W - start), np.full((3, 2), 0.01), Tol(rtol=1e-8, atol=1e-12))


# ---------------------------------------------------------------------------
# Initialisation statistics
# ---------------------------------------------------------------------------


def test_he_normal_has_variance_two_over_fan_in():
    fan_in, fan_out = 500, 400
    W = mlp.he_normal(fan_in, fan_out, np.random.default_rng(0))
    assert W.shape == (fan_in, fan_out) and W.dtype == np.float64
    n = W.size
    # sample variance of n normals: relative standard error sqrt(2 / n) = 0.3 %; allow 6x
    assert abs(W.var() / (2 / fan_in) - 1) < 6 * math.sqrt(2 / n)
    assert abs(W.mean()) < 6 * math.sqrt(2 / fan_in / n)


def test_xavier_uniform_bound_and_variance():
    fan_in, fan_out = 500, 300
    W = mlp.xavier_uniform(fan_in, fan_out, np.random.default_rng(1))
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(W).max() <= bound
    assert np.abs(W).max() > 0.999 * bound  # the whole interval is used
    # Var U(-a, a) = a^2 / 3 = 2 / (in + out); relative standard error sqrt(0.8 / n)
    assert abs(W.var() / (2 / (fan_in + fan_out)) - 1) < 6 * math.sqrt(0.8 / W.size)


def test_lecun_normal_and_linear_init_options():
    W = mlp.lecun_normal(400, 400, 2)
    assert abs(W.var() * 400 - 1) < 6 * math.sqrt(2 / W.size)
    assert mlp.he_normal(3, 4, 0, shape=(4, 1, 3), dtype=np.float32).shape == (4, 1, 3)
    assert mlp.he_normal(3, 4, 0, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(mlp.Linear(3, 4, rng=5).W, mlp.he_normal(3, 4, 5))
    np.testing.assert_array_equal(mlp.Linear(3, 4, init="xavier", rng=5).W,
                                  mlp.xavier_uniform(3, 4, 5))
    zeros = mlp.Linear(3, 4, init=None)
    assert not zeros.W.any() and not zeros.b.any()
    assert not mlp.Linear(3, 4, rng=0).b.any()  # biases start at 0
    np.random.seed(3)  # rng=None draws from the global generator seed_everything seeds
    a = mlp.Linear(3, 4).W
    np.random.seed(3)
    np.testing.assert_array_equal(a, mlp.Linear(3, 4).W)


def test_he_init_keeps_relu_activations_at_scale():
    """The reason for the factor 2: E[h^2] stays put through 20 ReLU layers."""
    rng = np.random.default_rng(4)
    h = rng.standard_normal((500, 256))
    second_moments = []
    for _ in range(20):
        layer = mlp.Linear(256, 256, init="he", rng=rng)
        h = np.maximum(layer.forward(h), 0)
        second_moments.append(np.mean(h**2))
    ratio = second_moments[-1] / second_moments[0]
    assert 0.3 < ratio < 3, second_moments  # with N(0, 1/fan_in) it would be 2^-19


# ---------------------------------------------------------------------------
# Learning: overfitting a small batch, gradient flow
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_overfits_a_small_batch(optimizer):
    """Random labels on 16 points: only memorising can fit them, and a working MLP can."""
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((16, 10)), rng.integers(0, 4, 16)
    net = mlp.build_mlp((10, 64, 4), rng=6)
    opt = (mlp.SGD(net, 0.1, momentum=0.9) if optimizer == "sgd" else mlp.Adam(net, 1e-2))
    loss_fn = mlp.SoftmaxCrossEntropy()
    first = loss_fn.forward(net.forward(X), y)
    for _ in range(300):
        loss = loss_fn.forward(net.forward(X), y)
        net.backward(loss_fn.backward())
        opt.step()
    assert first > 1.0 and loss < 1e-2
    assert np.all(net.forward(X).argmax(axis=1) == y)


def test_gradient_flow_demo_shows_vanishing_sigmoid_gradients():
    X, y = randn(200, 20, seed=24), np.arange(200) % 5
    flow = train.gradient_flow_demo(X, y, depth=10, width=64, rng=0)
    assert list(flow) == ["sigmoid", "relu"]
    for grads in flow.values():
        assert list(grads) == [f"layer {i}" for i in range(1, 11)]
        assert grads["layer 1"].shape == (20, 64) and grads["layer 10"].shape == (64, 5)
    size = {act: [np.mean(np.abs(g)) for g in grads.values()] for act, grads in flow.items()}
    sigmoid_ratio = size["sigmoid"][0] / size["sigmoid"][-1]
    relu_ratio = size["relu"][0] / size["relu"][-1]
    assert sigmoid_ratio < 1e-3, size["sigmoid"]  # vanished by orders of magnitude
    assert 0.05 < relu_ratio < 20, size["relu"]  # kept its size through 10 layers


# ---------------------------------------------------------------------------
# Shapes and dtypes for any input (hypothesis)
# ---------------------------------------------------------------------------

float_dtypes = st.sampled_from([np.float32, np.float64])


@few_examples
@given(n=st.integers(2, 6), d=st.integers(1, 5), k=st.integers(1, 4), dtype=float_dtypes)
def test_layer_shapes_and_dtypes(n, d, k, dtype):
    x = randn(n, d, seed=n * 10 + d).astype(dtype)
    layers = [mlp.Linear(d, k, rng=0, dtype=dtype), mlp.ReLU(), mlp.Sigmoid(), mlp.Tanh(),
              mlp.GELU(), mlp.GELU("tanh"), mlp.Dropout(0.5, rng=0),
              mlp.BatchNorm1d(d, dtype=dtype)]
    for layer in layers:
        y = layer.forward(x)
        expected = (n, k) if isinstance(layer, mlp.Linear) else x.shape
        assert y.shape == expected and y.dtype == dtype, type(layer).__name__
        dx = layer.backward(np.ones_like(y))
        assert dx.shape == x.shape and dx.dtype == dtype, type(layer).__name__
        for name, g in layer.grads.items():
            assert g.shape == layer.params[name].shape and g.dtype == dtype


@few_examples
@given(n=st.integers(2, 8), d=st.integers(1, 4), p=st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_and_batchnorm_properties(n, d, p):
    x = 5 + 3 * randn(n, d, seed=n + 7 * d)
    layer = mlp.Dropout(p, rng=n)
    y = layer.forward(x)
    np.testing.assert_array_equal(y == 0, layer.mask == 0)  # dropped exactly where m = 0
    assert_close(y[layer.mask == 1], x[layer.mask == 1] / (1 - p), FLOAT64)
    bn = mlp.BatchNorm1d(d)
    bn.params["beta"][...] = np.arange(d)
    out = bn.forward(x)
    assert_close(out.mean(axis=0), np.arange(d, dtype=np.float64), FLOAT64, name="mean = beta")
    # the gradient of a normalised output is orthogonal to shifting the input
    dx = bn.backward(randn(n, d, seed=3))
    assert_close(dx.sum(axis=0), np.zeros(d), FLOAT64, name="sum of dx")


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        mlp.Linear(4, 2).forward(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="flatten"):
        mlp.Linear(4, 2).forward(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="unknown init"):
        mlp.Linear(4, 2, init="glorot")
    with pytest.raises(ValueError, match="must have shape"):
        mlp.Linear(4, 2).W = np.zeros((2, 4))
    with pytest.raises(RuntimeError, match="before forward"):
        mlp.ReLU().backward(np.ones(3))
    layer = mlp.Tanh()
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mlp.Dropout(1.0)
    with pytest.raises(ValueError, match="at least 2 examples"):
        mlp.BatchNorm1d(3).forward(np.ones((1, 3)))
    mlp.BatchNorm1d(3).eval().forward(np.ones((1, 3)))  # fine with running statistics
    with pytest.raises(ValueError, match="approximate"):
        mlp.GELU("erf")
    with pytest.raises(ValueError, match="unknown activation"):
        mlp.build_mlp((3, 2), activation="swish")
    with pytest.raises(ValueError, match="lacks"):
        mlp.Sequential(mlp.ReLU(), "not a layer")
    with pytest.raises(ValueError, match="params"):
        mlp.SGD(object(), 0.1)
    with pytest.raises(ValueError, match="lr must be"):
        mlp.Adam(mlp.Linear(2, 2), lr=0)
    with pytest.raises(ValueError, match="momentum"):
        mlp.SGD(mlp.Linear(2, 2), 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="integers in 0..2"):
        mlp.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="real numbers"):
        mlp.ReLU().forward(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="comma-separated"):
        train.parse_hidden("800;10")
    with pytest.raises(ValueError, match=">= 1"):
        train.parse_hidden("800,0")
    assert train.parse_hidden("256, 128") == [256, 128] and train.parse_hidden("none") == []


# ---------------------------------------------------------------------------
# Evaluation runs in eval mode; training reshuffles every epoch
# ---------------------------------------------------------------------------


def trained_net_with_dropout_and_batchnorm():
    """A net whose Dropout (p = 0.5) and BatchNorm1d matter, after a few training steps
    (so the running statistics are not their initial 0 and 1)."""
    rng = np.random.default_rng(30)
    X, y = 2 + 3 * rng.standard_normal((40, 6)), np.arange(40) % 3
    net = mlp.build_mlp((6, 16, 16, 3), dropout=0.5, batchnorm=True, rng=31)
    loss_fn, opt = mlp.SoftmaxCrossEntropy(), mlp.SGD(net, 0.05, momentum=0.9)
    for idx in train.minibatch_indices(40, 10, rng):
        loss_fn.forward(net.forward(X[idx]), y[idx])
        net.backward(loss_fn.backward())
        opt.step()
    return net, X, y


def test_evaluation_is_deterministic_eval_mode_and_leaves_the_running_statistics():
    net, X, y = trained_net_with_dropout_and_batchnorm()
    norms = [layer for layer in net if isinstance(layer, mlp.BatchNorm1d)]
    stats = [(bn.running_mean.copy(), bn.running_var.copy()) for bn in norms]
    logits = mlp.predict_logits(net, X, batch_size=16)
    assert net.training, "predict_logits restores the training mode it found"
    np.testing.assert_array_equal(mlp.predict_logits(net, X), logits)  # no dropout noise
    for bn, (mean, var) in zip(norms, stats):
        np.testing.assert_array_equal(bn.running_mean, mean)  # evaluation learns nothing
        np.testing.assert_array_equal(bn.running_var, var)
    # each example's logits depend on it alone, not on the rest of its batch
    assert_close(mlp.predict_logits(net, X[:3]), logits[:3], FLOAT64, name="3 of 40")
    net.eval()
    assert_close(logits, net.forward(X), FLOAT64, name="predict_logits vs eval-mode forward")
    loss, accuracy = train.evaluate(net.train(), X, y)
    assert_close(loss, mlp.softmax_cross_entropy(logits, y)[0], FLOAT64, name="loss")
    assert accuracy == np.mean(logits.argmax(axis=1) == y)


def test_training_visits_the_data_in_a_new_seeded_order_every_epoch():
    X, y = randn(20, 4, seed=32), np.arange(20) % 2
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}  # column 0 identifies the row
    orders = []
    for seed in (0, 0, 1):
        net = mlp.build_mlp((4, 8, 2), rng=33)
        batches: list[list[int]] = []
        forward = net.forward
        net.forward = lambda x, forward=forward, batches=batches: (
            batches.append([row_of[float(v)] for v in x[:, 0]]) or forward(x))
        rng = np.random.default_rng(seed)
        for _ in range(3):
            train.train_one_epoch(net, mlp.SoftmaxCrossEntropy(), mlp.SGD(net, 0.01), X, y,
                                batch_size=5, rng=rng)
        assert [len(b) for b in batches] == [5] * 12, "4 batches of 5 in each of 3 epochs"
        epochs = [sum(batches[4 * e:4 * e + 4], []) for e in range(3)]
        for order in epochs:
            assert sorted(order) == list(range(20)), "each epoch visits every row once"
        assert epochs[0] != list(range(20)), "the first epoch is shuffled too"
        assert epochs[0] != epochs[1] != epochs[2], "a new order every epoch"
        orders.append(epochs)
    assert orders[0] == orders[1], "the same seed gives the same batches"
    assert orders[0] != orders[2], "another seed gives other batches"


# ---------------------------------------------------------------------------
# The script: a few epochs on its offline data, and its options
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, options", [
    ("digits", ["--epochs", "2", "--hidden", "32"]),
    ("moons", ["--epochs", "3", "--optimizer", "adam", "--batchnorm", "--dropout", "0.1"]),
])
def test_script_runs_a_few_epochs(tmp_path, dataset, options):
    metrics = train.main(["--dataset", dataset, "--out", str(tmp_path), "--no-progress",
                        *options])
    assert set(metrics) == {"test_accuracy", "train_accuracy", "final_loss"}
    classes = 10 if dataset == "digits" else 2
    # better than the trivial model: the uniform prediction has loss log K, accuracy ~1/K
    assert 0 < metrics["final_loss"] < 0.8 * math.log(classes)
    assert min(metrics["train_accuracy"], metrics["test_accuracy"]) > 1.5 / classes
    for png in ("loss.png", "confusion.png", "gradient_flow.png"):
        assert (tmp_path / png).is_file()
    assert (tmp_path / "decision_boundary.png").is_file() == (dataset == "moons")


@pytest.mark.parametrize("options, option", [
    (["--hidden", "abc"], "--hidden"),
    (["--hidden", "64,0"], "--hidden"),
    (["--dropout", "1.5"], "--dropout"),
    (["--momentum", "1"], "--momentum"),
    (["--weight-decay", "-1e-4"], "--weight-decay"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "x"], "--batch-size"),
    (["--decay-epochs", "-1"], "--decay-epochs"),
])
def test_script_rejects_bad_options_naming_them(tmp_path, capsys, options, option):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--out", str(tmp_path), "--no-progress", *options])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default: None" not in text and "per dataset:" in text


@pytest.mark.slow
def test_simard_mlp_on_real_mnist(tmp_path, shared_data):
    """784-800-10, ReLU, SGD momentum, 12 epochs: about 1.5 minutes on 2 CPU cores."""
    metrics = train.main(["--dataset", "mnist", "--data-root", str(shared_data),
                        "--out", str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.98  # Simard et al. (2003): 98.4 %
