"""Tests of lesson 03, level 1 (NumPy): convolution, pooling and LeNet-5 against references.

References:

- PyTorch: ``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d`` (forward values, float64 to
  1e-10) and autograd (every gradient, float64 to 1e-8), over a grid of batch sizes,
  channel counts, odd image sizes, kernels 1/3/5, strides 1/2/3 and paddings 0/1/2,
  plus random shapes drawn by hypothesis;
- central finite differences (float64) for every hand-written backward pass;
- the naive loop convolution, which must give the same numbers as the im2col one;
- the whole LeNet-5 against an ``nn.Sequential`` with the same weights: logits, dL/dx
  and every parameter gradient, and three Adam steps against ``torch.optim.Adam``.

Max-pooling tests use random continuous inputs, so no window has two equal maxima;
``test_max_pool_ties_send_the_gradient_to_the_first_maximum`` covers ties on purpose.

Run from the repository root: ``pytest 03_CNN_LeNet/numpy`` (add ``--slow`` for the
real-MNIST run, which needs a local copy of the data).
"""

from __future__ import annotations

import functools
import json
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
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    L1_VS_AUTOGRAD,
    OPTIMIZER_TRAJECTORY,
    assert_close,
    assert_level_purity,
    check_against_autograd,
    check_layer_gradients,
    float32_tol,
)

cv = import_lesson("03_CNN_LeNet.numpy.conv_numpy")
ln = import_lesson("03_CNN_LeNet.numpy.lenet_numpy")
script = import_lesson("03_CNN_LeNet.numpy.train")

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# A float32 network against the same network in float64: rounding errors of ~1e-7 per
# operation add up over 12 layers and sums of up to 400 terms.
# LeNet-5's logits end a chain of 25 + 150 + 400 + 120 + 84 products per path, computed
# from inputs and weights that were themselves rounded to float32: K = 4096 (utils/testing.py).
FLOAT32_NETWORK = float32_tol(4096)

# few examples and no deadline: fast and not flaky on a busy 2-core machine
few_examples = settings(max_examples=20, deadline=None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def _images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------
# The level's rules and the import guard
# ---------------------------------------------------------------------------


def test_level_purity():
    assert_level_purity(HERE)


def test_shadowing_guard_explains_how_to_run():
    """Python started inside 03_CNN_LeNet/ must not silently use this folder as NumPy."""
    result = subprocess.run([sys.executable, "-c", "import numpy"], cwd=HERE.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "python 03_CNN_LeNet/numpy/train.py" in result.stderr


def test_importing_the_lesson_does_not_import_torch():
    code = ("import sys, importlib\n"
            "importlib.import_module('03_CNN_LeNet.numpy.lenet_numpy')\n"
            "importlib.import_module('03_CNN_LeNet.numpy.train')\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Convolution: forward against F.conv2d, backward against autograd, naive == im2col
# ---------------------------------------------------------------------------

# (N, C_in, H, W, C_out, kernel, stride, padding)
CONV_CASES = [
    (2, 1, 7, 7, 3, 3, 1, 0),
    (2, 3, 8, 6, 4, 3, 1, 1),
    (1, 2, 9, 7, 5, 3, 2, 0),  # odd sizes, stride 2: the last row/column is left out
    (3, 2, 11, 10, 2, 3, 3, 2),  # stride 3, padding 2
    (2, 4, 5, 6, 3, 1, 1, 0),  # 1x1 kernel: a per-pixel linear map of the channels
    (2, 3, 6, 5, 2, 1, 2, 1),  # 1x1 kernel, stride 2, padding 1
    (1, 3, 9, 9, 2, 5, 2, 2),
    (2, 2, 7, 9, 3, (3, 2), (2, 1), (1, 0)),  # rectangular kernel, stride and padding
    (2, 1, 32, 32, 6, 5, 1, 0),  # LeNet's C1
    (2, 6, 14, 14, 16, 5, 1, 0),  # LeNet's C3
]


def _case_id(case) -> str:
    n, c, h, w, o, k, s, p = case
    return f"N{n}-C{c}-{h}x{w}-O{o}-k{k}-s{s}-p{p}".replace(" ", "")


def _conv_layer(case, seed=1, dtype=np.float64):
    n, c, h, w, o, k, s, p = case
    layer = cv.Conv2D(c, o, k, stride=s, padding=p, init="torch", rng=seed, dtype=dtype)
    return layer, _images((n, c, h, w), seed).astype(dtype)


def _torch_conv(layer):
    return lambda x, p: F.conv2d(x, p["W"], p["b"], stride=layer.stride, padding=layer.padding)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_forward_equals_torch_conv2d(case):
    layer, x = _conv_layer(case)
    out = layer.forward(x)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(layer.W), torch.from_numpy(layer.b),
                        stride=layer.stride, padding=layer.padding)
    assert out.shape == tuple(expected.shape) == layer.output_shape(x.shape)
    assert_close(out, expected, FLOAT64, name="conv output")


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_backward_equals_torch_autograd(case):
    layer, x = _conv_layer(case)
    check_against_autograd(layer, _torch_conv(layer), x)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_naive_conv_equals_im2col_conv(case):
    layer, x = _conv_layer(case)
    out = layer.forward(x)
    assert_close(cv.conv2d_naive(x, layer.W, layer.b, layer.stride, layer.padding), out,
                 FLOAT64, name="naive forward")
    dout = _images(out.shape, seed=7)
    dx = layer.backward(dout)
    dx_naive, dW_naive, db_naive = cv.conv2d_backward_naive(dout, x, layer.W, layer.stride,
                                                            layer.padding)
    assert_close(dx_naive, dx, FLOAT64, name="naive dL/dx")
    assert_close(dW_naive, layer.grads["W"], FLOAT64, name="naive dL/dW")
    assert_close(db_naive, layer.grads["b"], FLOAT64, name="naive dL/db")


@pytest.mark.parametrize("case", [(2, 2, 5, 5, 3, 3, 1, 1), (1, 2, 6, 5, 2, 3, 2, 0),
                                  (2, 1, 4, 4, 2, 1, 1, 1), (1, 3, 7, 6, 2, (2, 3), (3, 2), 1)],
                         ids=_case_id)
def test_conv_backward_equals_finite_differences(case):
    layer, x = _conv_layer(case)
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"x", "W", "b"}


def test_conv_float32_stays_float32_and_matches_torch():
    layer, x = _conv_layer((2, 3, 9, 8, 4, 3, 2, 1), dtype=np.float32)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.grads["W"].dtype == np.float32
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(layer.W), torch.from_numpy(layer.b),
                        stride=2, padding=1)
    assert_close(out, expected, FLOAT32, name="float32 conv output")


@few_examples
@given(n=st.integers(1, 3), c_in=st.integers(1, 3), c_out=st.integers(1, 4),
       h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_conv_random_shapes_equal_torch(n, c_in, c_out, h, w, kh, kw, stride, padding):
    if h + 2 * padding[0] < kh or w + 2 * padding[1] < kw:
        with pytest.raises(ValueError, match="larger than the padded input"):
            cv.Conv2D(c_in, c_out, (kh, kw), stride, padding, rng=0).forward(
                _images((n, c_in, h, w)))
        return
    case = (n, c_in, h, w, c_out, (kh, kw), stride, padding)
    layer, x = _conv_layer(case, seed=h * 10 + w)
    check_against_autograd(layer, _torch_conv(layer), x)  # forward values and all gradients


def test_im2col_col2im_are_adjoint():
    """<im2col(x), C> = <x, col2im(C)> for any x, C: col2im is im2col's transpose."""
    xp = _images((2, 3, 7, 8))
    cols = cv.im2col(xp, (3, 2), (2, 3))
    c = _images(cols.shape, seed=3)
    lhs = np.sum(cols * c)
    rhs = np.sum(xp * cv.col2im(c, xp.shape, (3, 2), (2, 3)))
    assert_close(lhs, rhs, FLOAT64, name="<im2col x, c> vs <x, col2im c>")


def test_setting_weights_copies_into_the_same_arrays():
    """An optimiser holds the params arrays: assigning W must not replace them."""
    layer = cv.Conv2D(2, 3, 3, rng=0)
    W_before = layer.params["W"]
    new = _images((3, 2, 3, 3))
    layer.W = new
    assert layer.params["W"] is W_before
    np.testing.assert_array_equal(layer.W, new)
    layer.b = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(layer.params["b"], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("init, expected_std", [("he", np.sqrt(2 / 150)),
                                                 ("lecun", np.sqrt(1 / 150)),
                                                 ("xavier", np.sqrt(2 / (150 + 400))),
                                                 ("torch", np.sqrt(1 / 150 / 3))])
def test_conv_initialisation_statistics(init, expected_std):
    """fan_in = 6*5*5 = 150, fan_out = 16*5*5 = 400; U(-a, a) has std a / sqrt(3)."""
    layer = cv.Conv2D(6, 16, 5, init=init, rng=0)
    # 2,400 weights: the sample std is within ~3% of the truth (3 standard errors ~ 4.3%)
    assert abs(layer.W.std() / expected_std - 1) < 0.05
    assert abs(layer.W.mean()) < 3 * expected_std / np.sqrt(layer.W.size)
    assert (np.all(layer.b == 0)) == (init != "torch")
    assert np.all(cv.Conv2D(2, 3, 3, init=None).W == 0)


# ---------------------------------------------------------------------------
# Pooling: forward against F.max_pool2d / F.avg_pool2d, backward against autograd
# ---------------------------------------------------------------------------

# (N, C, H, W, kernel, stride, padding); stride None = the kernel size
POOL_CASES = [
    (2, 3, 8, 8, 2, None, 0),  # LeNet's pooling
    (2, 2, 7, 5, 2, 1, 0),  # overlapping windows, odd sizes
    (1, 3, 9, 7, 3, 2, 0),  # overlapping, odd sizes: the last row/column is left out
    (2, 1, 6, 7, 3, 1, 1),
    (1, 2, 10, 8, 3, 3, 1),
    (2, 2, 5, 5, 2, 2, 1),
    (1, 4, 7, 8, 3, None, 0),
    (1, 2, 9, 6, (3, 2), (2, 1), (1, 0)),
]
POOLS = {"max": (cv.MaxPool2D, F.max_pool2d), "avg": (cv.AvgPool2D, F.avg_pool2d)}


def _pool_id(case) -> str:
    n, c, h, w, k, s, p = case
    return f"N{n}-C{c}-{h}x{w}-k{k}-s{s}-p{p}".replace(" ", "")


@pytest.mark.parametrize("kind", sorted(POOLS))
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_pool_forward_and_backward_equal_torch(kind, case):
    n, c, h, w, k, s, p = case
    ours_cls, torch_pool = POOLS[kind]
    layer = ours_cls(k, s, p)
    x = _images((n, c, h, w), seed=h + w)
    expected = torch_pool(torch.from_numpy(x), k, s, p)
    out = layer.forward(x)
    assert out.dtype == x.dtype
    assert_close(out, expected, FLOAT64, name=f"{kind}-pool output")
    check_against_autograd(layer, lambda x_t, _: torch_pool(x_t, k, s, p), x)


@pytest.mark.parametrize("kind", sorted(POOLS))
@pytest.mark.parametrize("case", [(2, 2, 5, 6, 2, 1, 0), (1, 2, 7, 7, 3, 2, 1)], ids=_pool_id)
def test_pool_backward_equals_finite_differences(kind, case):
    n, c, h, w, k, s, p = case
    errors = check_layer_gradients(POOLS[kind][0](k, s, p), _images((n, c, h, w), seed=5))
    assert set(errors) == {"x"}


@few_examples
@given(kind=st.sampled_from(sorted(POOLS)), n=st.integers(1, 3), c=st.integers(1, 3),
       h=st.integers(2, 10), w=st.integers(2, 10), k=st.integers(1, 3), s=st.integers(1, 3),
       p=st.integers(0, 1))
def test_pool_random_shapes_equal_torch(kind, n, c, h, w, k, s, p):
    p = min(p, k // 2)  # PyTorch's rule: padding at most half the kernel
    if h + 2 * p < k or w + 2 * p < k:
        return
    ours_cls, torch_pool = POOLS[kind]
    x = _images((n, c, h, w), seed=h * 10 + w)
    check_against_autograd(ours_cls(k, s, p), lambda x_t, _: torch_pool(x_t, k, s, p), x)


def test_pool_float32_stays_float32():
    x = _images((2, 3, 6, 6)).astype(np.float32)
    for kind, (ours_cls, torch_pool) in POOLS.items():
        layer = ours_cls(2)
        out = layer.forward(x)
        assert out.dtype == layer.backward(np.ones_like(out)).dtype == np.float32
        assert_close(out, torch_pool(torch.from_numpy(x), 2), FLOAT32, name=f"{kind} float32")


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    """Two (or four) equal maxima: the first in row-major order gets all the gradient."""
    x = np.array([[[[1.0, 3.0, 5.0, 5.0],
                    [3.0, 2.0, 5.0, 5.0]]]])  # window 1: 3 at (0,1) and (1,0); window 2: all 5
    layer = cv.MaxPool2D(2)
    np.testing.assert_array_equal(layer.forward(x), [[[[3.0, 5.0]]]])
    dx = layer.backward(np.array([[[[10.0, 20.0]]]]))
    expected = np.array([[[[0.0, 10.0, 20.0, 0.0],
                           [0.0, 0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(dx, expected)
    # PyTorch's CPU kernel breaks ties the same way
    x_t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(x_t, 2).backward(torch.tensor([[[[10.0, 20.0]]]], dtype=torch.float64))
    np.testing.assert_array_equal(dx, x_t.grad.numpy())


def test_max_pool_propagates_nan_like_torch():
    x = np.array([[[[1.0, np.nan], [0.0, 2.0]]]])
    out = cv.MaxPool2D(2).forward(x)
    assert np.isnan(out[0, 0, 0, 0]) and torch.isnan(F.max_pool2d(torch.from_numpy(x), 2)).all()


def test_overlapping_max_pool_accumulates_gradient():
    """A pixel that is the maximum of several windows collects all their gradients."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 9.0  # the centre is the max of all four 2x2 windows (stride 1)
    layer = cv.MaxPool2D(2, stride=1)
    dx = layer.backward(np.ones_like(layer.forward(x)))
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


# ---------------------------------------------------------------------------
# Flatten and bad input
# ---------------------------------------------------------------------------


def test_flatten_is_torch_flatten_and_backward_undoes_it():
    x = _images((2, 3, 4, 5))
    layer = cv.Flatten()
    out = layer.forward(x)
    np.testing.assert_array_equal(out, torch.flatten(torch.from_numpy(x), 1).numpy())
    dout = _images(out.shape, seed=2)
    np.testing.assert_array_equal(layer.backward(dout), dout.reshape(x.shape))


def test_bad_input_raises_clear_errors():
    conv = cv.Conv2D(3, 4, 3, rng=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*add the batch axis"):
        conv.forward(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match=r"reshape to \(N, C, H, W\)"):
        conv.forward(np.zeros((2, 64)))
    with pytest.raises(ValueError, match="has 1 channels .* expects 3"):
        conv.forward(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv.forward(np.zeros((2, 3, 2, 8)))
    with pytest.raises(ValueError, match="call forward"):
        cv.Conv2D(3, 4, 3, rng=0).backward(np.zeros((1, 4, 2, 2)))
    conv.forward(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"forward output's shape \(2, 4, 6, 6\)"):
        conv.backward(np.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"Conv2D.W must have shape \(4, 3, 3, 3\)"):
        conv.W = np.zeros((3, 4, 3, 3))
    with pytest.raises(ValueError, match="unknown init"):
        cv.Conv2D(3, 4, 3, init="kaiming")
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        cv.Conv2D(3, 4, 2.5)
    with pytest.raises(ValueError, match="positive int"):
        cv.Conv2D(0, 4, 3)
    with pytest.raises(ValueError, match="at most half the kernel"):
        cv.MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match="real numbers"):
        cv.AvgPool2D(2).forward(np.array([[[["a", "b"], ["c", "d"]]]]))
    with pytest.raises(ValueError, match="at least 2 axes"):
        cv.Flatten().forward(np.zeros(3))


# ---------------------------------------------------------------------------
# LeNet-5 against an nn.Sequential with the same weights
# ---------------------------------------------------------------------------


def _torch_lenet(model) -> nn.Sequential:
    """The same network in torch.nn, weights copied from the NumPy LeNet5."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[model.activation]
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[model.pool]
    net = nn.Sequential(
        nn.Conv2d(model.in_channels, 6, 5, padding=model.c1.padding), act(), pool(2),
        nn.Conv2d(6, 16, 5), act(), pool(2), nn.Flatten(),
        nn.Linear(model.c5.in_features, 120), act(), nn.Linear(120, 84), act(),
        nn.Linear(84, model.output.out_features),
    ).double()
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            if "W" in layer.params:
                is_linear = isinstance(net[i], nn.Linear)
                # lesson 02's Linear keeps W as (in, out): nn.Linear.weight is its transpose
                net[i].weight.copy_(torch.from_numpy(layer.W.T if is_linear else layer.W))
                net[i].bias.copy_(torch.from_numpy(layer.b))
    return net


def _numpy_to_torch_name(name: str, net: nn.Sequential) -> tuple[nn.Module, str]:
    index, kind = name.split(".")
    return net[int(index)], {"W": "weight", "b": "bias"}[kind]


@pytest.mark.parametrize("activation, pool, input_size, c1_padding",
                         [("relu", "max", 32, 0), ("tanh", "avg", 32, 0), ("relu", "max", 28, 2)])
def test_lenet_equals_torch_sequential(activation, pool, input_size, c1_padding):
    model = ln.LeNet5(activation=activation, pool=pool, input_size=input_size,
                      c1_padding=c1_padding, rng=3)
    net = _torch_lenet(model)
    x = _images((4, 1, input_size, input_size), seed=4)
    y = np.array([3, 1, 4, 1])

    loss_fn = ln.mlp.SoftmaxCrossEntropy()
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    dx = model.backward(loss_fn.backward())

    x_t = torch.tensor(x, requires_grad=True)
    logits_t = net(x_t)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(y))
    loss_t.backward()

    assert_close(logits, logits_t, L1_VS_AUTOGRAD, name="logits")
    assert_close(loss, loss_t, L1_VS_AUTOGRAD, name="loss")
    assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name="dL/dx")
    assert len(model.grads) == 10  # 5 layers with W and b
    for name, grad in model.grads.items():
        module, attr = _numpy_to_torch_name(name, net)
        expected = getattr(module, attr).grad
        if attr == "weight" and isinstance(module, nn.Linear):
            expected = expected.T
        assert_close(grad, expected, L1_VS_AUTOGRAD, name=f"dL/d{name}")
    assert model.num_params() == sum(p.numel() for p in net.parameters())


def test_lenet_parameter_count_by_hand():
    """C1 6*(25+1), C3 16*(6*25+1), C5 400*120+120, F6 120*84+84, output 84*10+10."""
    expected = 156 + 2_416 + 48_120 + 10_164 + 850
    assert expected == 61_706
    assert ln.LeNet5(rng=0).num_params() == expected


def test_whole_lenet_gradient_equals_finite_differences():
    """Directional derivatives of the loss along a random direction, per parameter array.

    d/dt L(theta + t v) at t = 0 is <dL/dtheta, v>: one central difference per array
    checks every entry of its gradient at once (a wrong entry changes the dot product).
    """
    model = ln.LeNet5(activation="tanh", pool="max", rng=5)
    x, y = _images((3, 1, 32, 32), seed=6), np.array([0, 7, 2])
    loss_fn = ln.mlp.SoftmaxCrossEntropy()

    def loss() -> float:
        return loss_fn.forward(model.forward(x), y)

    loss()
    model.backward(loss_fn.backward())
    grads = {k: g.copy() for k, g in model.grads.items()}
    rng, eps = np.random.default_rng(7), 1e-6
    for name, param in model.params.items():
        direction = rng.standard_normal(param.shape)
        direction /= np.linalg.norm(direction)
        param += eps * direction
        plus = loss()
        param -= 2 * eps * direction
        minus = loss()
        param += eps * direction
        assert_close((plus - minus) / (2 * eps), np.sum(grads[name] * direction), FINITE_DIFF,
                     name=f"directional derivative along {name}")


def test_adam_steps_on_lenet_follow_torch_optim():
    """Lesson 02's Adam updates the Conv2D arrays in place, exactly as torch.optim.Adam."""
    model = ln.LeNet5(rng=8)
    net = _torch_lenet(model)
    optimizer = ln.mlp.Adam(model, lr=1e-2)
    optimizer_t = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = ln.mlp.SoftmaxCrossEntropy()
    x, y = _images((4, 1, 32, 32), seed=9), np.array([5, 0, 9, 5])
    for _ in range(3):
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        optimizer.step()
        optimizer_t.zero_grad()
        F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer_t.step()
    for name, param in model.params.items():
        module, attr = _numpy_to_torch_name(name, net)
        expected = getattr(module, attr).detach()
        if attr == "weight" and isinstance(module, nn.Linear):
            expected = expected.T
        assert_close(param, expected, OPTIMIZER_TRAJECTORY, name=f"{name} after 3 Adam steps")


def test_lenet_float32_matches_float64():
    model64 = ln.LeNet5(rng=10)
    model32 = ln.LeNet5(rng=10, dtype=np.float32)
    x = _images((2, 1, 32, 32), seed=11)
    logits32 = model32.forward(x.astype(np.float32))
    assert logits32.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model32.params.values())
    assert_close(logits32, model64.forward(x), FLOAT32_NETWORK, name="float32 logits")


def test_lenet_feature_maps_and_bad_input():
    model = ln.LeNet5(rng=0)
    x = _images((2, 1, 32, 32))
    maps = model.feature_maps(x)
    assert {k: v.shape for k, v in maps.items()} == {
        "C1": (2, 6, 28, 28), "S2": (2, 6, 14, 14), "C3": (2, 16, 10, 10), "S4": (2, 16, 5, 5)}
    # the S4 maps flattened are exactly what C5 (the first Linear) sees
    model.forward(x)
    np.testing.assert_array_equal(maps["S4"].reshape(2, -1), model.c5._cache)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\).*pad 28x28"):
        model.forward(np.zeros((2, 1, 28, 28)))
    with pytest.raises(ValueError, match="unknown activation"):
        ln.LeNet5(activation="gelu")
    with pytest.raises(ValueError, match="too small"):
        ln.LeNet5(input_size=12)


# ---------------------------------------------------------------------------
# The script, train.py (its data: utils.data_loaders.load_images, tested in utils/tests)
# ---------------------------------------------------------------------------


def test_script_on_digits(tmp_path, monkeypatch):
    """main() trains to >= 90% in two epochs and draws the right things.

    The plotting functions are replaced by recorders (matplotlib would take longer than
    the training; utils/tests checks the plots themselves), so the test can check WHAT
    the script draws: the arrays handed to each plot.
    """
    drawn = {}

    def recorder(*args, path=None, **kwargs):
        drawn[Path(path).name] = (args, kwargs)

    for name in ("plot_curves", "plot_feature_maps", "plot_confusion_matrix", "plot_image_grid",
                 "plot_weights"):
        monkeypatch.setattr(script, name, recorder)
    metrics = script.main(["--epochs", "2", "--out", str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.9
    assert metrics["train_accuracy"] >= 0.9
    assert 0 < metrics["final_loss"] < 0.4
    assert metrics["seconds_per_epoch"] > 0

    curves = drawn["loss.png"][0][0]
    assert set(curves) == {"train loss", "test loss"} and len(curves["train loss"]) == 2
    assert curves["train loss"][1] < curves["train loss"][0]  # it learns
    filters, options = drawn["c1_filters.png"]
    assert filters[0].shape == (6, 25) and tuple(options["image_shape"]) == (5, 5)
    assert drawn["feature_maps_c1.png"][0][0].shape == (1, 6, 28, 28)
    assert drawn["feature_maps_c3.png"][0][0].shape == (1, 16, 10, 10)
    y_true, y_pred = drawn["confusion.png"][0]
    assert len(y_true) == 360  # the digits test split
    assert_close(np.mean(y_true == y_pred), metrics["test_accuracy"], FLOAT64, name="accuracy")
    if "misclassified.png" in drawn:
        (images,), grid = drawn["misclassified.png"]
        assert images.shape[1:] == (1, 32, 32)
        assert np.all(grid["labels"] != grid["predictions"])


def test_script_without_mnist_exits_cleanly(tmp_path, capsys, monkeypatch):
    # never download in a test: the loader must fail at once, naming the missing files
    monkeypatch.setattr(script, "load_images",
                        functools.partial(script.load_images, download=False))
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--dataset", "mnist", "--data-root", str(tmp_path), "--out", str(tmp_path),
                 "--no-progress"])
    # SystemExit with a message: Python prints it to stderr and exits with status 1
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "MNIST" in message
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "-2"), ("--lr", "0"), ("--lr", "nan"),
    ("--decay-epochs", "-1"), ("--decay-epochs", "8"),  # digits trains 8 epochs: none left
    ("--train-limit", "0"), ("--threads", "-1"), ("--epochs", "two")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2  # argparse's usage error, before any work
    assert f"argument {option}" in capsys.readouterr().err


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default: None" not in text
    assert "per dataset: digits 8, mnist 6" in text  # --epochs
    assert "digits 0, mnist 2" in text  # --decay-epochs


class _RecordingModel:
    """Stands in for LeNet5 in ``train.train_epoch``: records which examples each batch holds."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def forward(self, x):
        self.batches.append(x[:, 0, 0, 0].astype(int).tolist())  # image i is filled with i
        return np.zeros((len(x), 10))

    def backward(self, dout):
        return None


class _NoStep:
    def step(self):
        pass


def test_train_epoch_shuffles_anew_every_epoch_with_the_seeded_generator():
    """Mini-batch SGD must visit the examples in a fresh random order each epoch."""
    n, batch = 20, 6
    X = np.arange(n, dtype=float)[:, None, None, None] * np.ones((1, 1, 2, 2))
    y = np.zeros(n, dtype=np.int64)

    def two_epochs(seed: int) -> list[list[int]]:
        model, rng = _RecordingModel(), np.random.default_rng(seed)
        for _ in range(2):
            script.train_epoch(model, ln.mlp.SoftmaxCrossEntropy(), _NoStep(), X, y,
                           batch_size=batch, rng=rng)
        return model.batches

    batches = two_epochs(0)
    assert [len(b) for b in batches] == [6, 6, 6, 2] * 2
    first, second = sum(batches[:4], []), sum(batches[4:], [])
    assert sorted(first) == sorted(second) == list(range(n))  # each epoch: every example once
    assert first != list(range(n)) and second != first  # shuffled, and anew each epoch
    assert two_epochs(0) == batches and two_epochs(1) != batches  # the seed decides


@pytest.mark.slow
def test_lenet_on_real_mnist(tmp_path, shared_data):
    """Half the default MNIST run: 3 epochs (the last at lr / 10), 1-2 minutes on 2 cores.

    Measured: 98.87 % test accuracy (the default 6 epochs: 99.01 %).
    """
    metrics = script.main(["--dataset", "mnist", "--data-root", str(shared_data), "--epochs", "3",
                       "--decay-epochs", "1", "--out", str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.985


# ---------------------------------------------------------------------------
# The convolution benchmark (benchmarks/bench_conv.py) still runs and reports consistently
# ---------------------------------------------------------------------------


def test_conv_benchmark_smoke(tmp_path):
    bench = import_lesson("benchmarks.bench_conv")
    path = tmp_path / "bench.json"
    results = bench.main(["--repeats", "1", "--batch", "2", "--naive-batch", "1",
                          "--json", str(path)])
    assert [r["layer"] for r in results["l1_vs_torch"]] == ["C1", "C3"]
    for row in results["l1_vs_torch"]:
        best = min(row["torch_onednn_ms"], row["torch_native_ms"])
        assert_close(row["ratio_l1_vs_faster_torch"], row["l1_ms"] / best, FLOAT64)
        assert row["target_met"] == (row["ratio_l1_vs_faster_torch"] <= bench.TARGET_RATIO)
    for row in results["naive_vs_im2col"]:
        assert_close(row["speedup_same_batch"],
                     row["naive_ms_per_image"] / row["im2col_ms_per_image_batch1"], FLOAT64)
    assert json.loads(path.read_text()) == json.loads(json.dumps(results))
