"""Tests of lesson 03, Level 2: convolution and pooling by unfold, against torch's own.

- im2col == F.unfold (the library's im2col, one row per position), element for element
- conv2d == F.conv2d: output and the gradients for x, W and b, over a grid of kernel
  sizes, strides, paddings and odd image sizes, in float64 (1e-10) and float32 (1e-5),
  plus random shapes from hypothesis
- max_pool2d == F.max_pool2d and avg_pool2d == F.avg_pool2d, the same way; with tied
  values the gradient goes to the same (first) maximum
- the low-level LeNet5 == an nn.Sequential holding the same weights (logits and every
  parameter gradient), for ReLU/max, tanh/avg, and 28x28 inputs with padding 2
- cross_entropy == F.cross_entropy; sgd_step / adam_step == torch.optim over 15 steps
  (lesson 02's, imported: checked here on LeNet's parameters)
- parameter count, seeding, data preparation, bad input, the level's purity rule,
  and the script on the default digits data

Run: .venv/bin/python -m pytest 03_CNN_LeNet/pytorch_lowlevel -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
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

low = import_lesson("03_CNN_LeNet.pytorch_lowlevel.lenet_lowlevel")
script = import_lesson("03_CNN_LeNet.pytorch_lowlevel.train")

DTYPES = [torch.float64, torch.float32]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


@pytest.fixture(autouse=True, scope="module")
def _no_tf32():
    """No TF32 on a GPU: cuDNN convolutions may round float32 inputs to 10-bit mantissas
    by default, far beyond the float32 tolerance of these comparisons."""
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _value_and_grads(fn, x, *params, seed=0):
    """fn(x, *params), and the gradients of sum(fn(...) * G) for a fixed random G.

    A random upstream gradient G exercises every output element with a different weight,
    so a wrong patch order or a misplaced window cannot cancel out.
    """
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, *params)]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64).to(dtype=out.dtype, device=out.device)
    grads = torch.autograd.grad((out * g).sum(), leaves)
    return out.detach(), grads


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# im2col and convolution against F.unfold and F.conv2d
# --------------------------------------------------------------------------------------

# (N, C_in, H, W, C_out, kernel, stride, padding): square and rectangular kernels,
# strides 1-3, zero and non-zero padding, odd sizes where the last window does not fit
CONV_CASES = [
    (2, 1, 8, 8, 3, 3, 1, 0),
    (2, 3, 7, 9, 4, 3, 2, 1),
    (1, 2, 11, 6, 2, (3, 2), (2, 1), (1, 0)),
    (3, 1, 9, 9, 6, 5, 1, 2),
    (2, 6, 14, 14, 16, 5, 1, 0),  # LeNet's conv2
    (2, 2, 10, 7, 3, 4, 3, (2, 1)),
    (1, 3, 5, 5, 2, 1, 1, 0),  # 1x1 convolution
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_im2col_equals_F_unfold(case):
    n, c, h, w, _, k, s, p = case
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    unfolded = F.unfold(x, k, stride=s, padding=p)  # (N, C*kH*kW, L): the library's im2col
    rows = unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])  # one row per position
    assert torch.equal(low.im2col(x, k, s, p), rows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_conv2d_forward_and_gradients_equal_F_conv2d(case, dtype, device):
    n, c, h, w, c_out, k, s, p = case
    torch.manual_seed(0)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(n, c, h, w, dtype=dtype, device=device)
    W = torch.randn(c_out, c, kh, kw, dtype=dtype, device=device)
    b = torch.randn(c_out, dtype=dtype, device=device)
    ours = _value_and_grads(lambda *a: low.conv2d(*a, stride=s, padding=p), x, W, b)
    theirs = _value_and_grads(lambda *a: F.conv2d(*a, stride=s, padding=p), x, W, b)
    tol = tolerance(dtype, device)
    assert_close(ours[0], theirs[0], tol, name="conv2d output")
    for name, a, e in zip(("dL/dx", "dL/dW", "dL/db"), ours[1], theirs[1]):
        assert_close(a, e, tol, name=name)


def test_conv2d_without_bias_and_a_hand_computed_value():
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    W = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]], dtype=torch.float64)  # x[i,j] - x[i+1,j+1]
    out = low.conv2d(x, W)
    # every 2x2 window holds a, a+1, a+4, a+5: a - (a + 5) = -5 everywhere
    assert torch.equal(out, torch.full((1, 1, 3, 3), -5.0, dtype=torch.float64))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), c_out=st.integers(1, 3),
       h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_conv2d_random_shapes_equal_F_conv2d(n, c, c_out, h, w, kh, kw, sh, sw, ph, pw, seed):
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return  # the kernel does not fit: both refuse (tested in test_bad_inputs)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    W = torch.randn(c_out, c, kh, kw, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64)
    kwargs = {"stride": (sh, sw), "padding": (ph, pw)}
    ours = _value_and_grads(lambda *a: low.conv2d(*a, **kwargs), x, W, b)
    theirs = _value_and_grads(lambda *a: F.conv2d(*a, **kwargs), x, W, b)
    assert ours[0].shape == theirs[0].shape
    assert_close(ours[0], theirs[0], FLOAT64, name="conv2d output")
    for name, a, e in zip(("dL/dx", "dL/dW", "dL/db"), ours[1], theirs[1]):
        assert_close(a, e, FLOAT64, name=name)


# --------------------------------------------------------------------------------------
# Pooling against F.max_pool2d / F.avg_pool2d
# --------------------------------------------------------------------------------------

# (N, C, H, W, kernel, stride, padding)
POOL_CASES = [
    (2, 3, 8, 8, 2, None, 0),  # LeNet's 2x2, stride 2
    (2, 2, 7, 9, 2, None, 0),  # odd sizes: the last row / column is dropped
    (1, 2, 9, 9, 3, 2, 1),  # overlapping windows with padding
    (2, 1, 10, 6, (3, 2), (1, 2), (1, 1)),
    (1, 3, 5, 5, 3, 1, 0),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_pooling_forward_and_gradient_equal_torch(case, dtype, kind, device):
    n, c, h, w, k, s, p = case
    torch.manual_seed(1)
    x = torch.randn(n, c, h, w, dtype=dtype, device=device)
    ours_fn = low.max_pool2d if kind == "max" else low.avg_pool2d
    ref_fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    ours = _value_and_grads(lambda t: ours_fn(t, k, s, p), x)
    theirs = _value_and_grads(lambda t: ref_fn(t, k, s, p), x)
    tol = tolerance(dtype, device)
    assert_close(ours[0], theirs[0], tol, name=f"{kind}_pool2d output")
    assert_close(ours[1][0], theirs[1][0], tol, name=f"{kind}_pool2d dL/dx")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_pooling_random_shapes_equal_torch(n, c, h, w, kh, kw, sh, sw, ph, pw, seed):
    if ph > kh // 2 or pw > kw // 2 or h + 2 * ph < kh or w + 2 * pw < kw:
        return  # torch refuses these (and so do we: test_bad_inputs)
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    args = ((kh, kw), (sh, sw), (ph, pw))
    for ours_fn, ref_fn in ((low.max_pool2d, F.max_pool2d), (low.avg_pool2d, F.avg_pool2d)):
        ours = _value_and_grads(lambda t, fn=ours_fn: fn(t, *args), x)
        theirs = _value_and_grads(lambda t, fn=ref_fn: fn(t, *args), x)
        assert_close(ours[0], theirs[0], FLOAT64, name=f"{ours_fn.__name__} output")
        assert_close(ours[1][0], theirs[1][0], FLOAT64, name=f"{ours_fn.__name__} dL/dx")


def test_max_pool_gives_tied_gradient_to_the_first_maximum_like_torch(device):
    # Windows of equal values (the zeros a ReLU leaves, repeated integers): torch sends the
    # whole gradient to the first maximum in row-major order; so must we (amax would split it).
    x = torch.tensor([[0.0, 0.0, 2.0, 1.0, 3.0],
                      [0.0, 0.0, 2.0, 2.0, 3.0],
                      [5.0, 1.0, 0.0, 4.0, 3.0],
                      [1.0, 5.0, 4.0, 4.0, 3.0],
                      [7.0, 7.0, 7.0, 7.0, 7.0]], dtype=torch.float64, device=device)[None, None]
    for k, s in ((2, 2), (3, 1), (2, 1)):
        ours = _value_and_grads(lambda t, k=k, s=s: low.max_pool2d(t, k, s), x)
        theirs = _value_and_grads(lambda t, k=k, s=s: F.max_pool2d(t, k, s), x)
        assert torch.equal(ours[0], theirs[0])
        assert_close(ours[1][0], theirs[1][0], FLOAT64, name=f"tied max-pool gradient {k=} {s=}")
    # and by hand: the all-zero top-left window sends its gradient to position (0, 0) only
    x_leaf = x.clone().requires_grad_(True)
    pooled = low.max_pool2d(x_leaf, 2)
    assert pooled.shape == (1, 1, 2, 2)  # 5x5 -> 2x2: the last row and column are dropped
    pooled[0, 0, 0, 0].backward()
    expected = torch.zeros_like(x)
    expected[0, 0, 0, 0] = 1.0
    assert torch.equal(x_leaf.grad, expected)


# --------------------------------------------------------------------------------------
# The network against an nn.Sequential with the same weights
# --------------------------------------------------------------------------------------


def _reference_sequential(model) -> nn.Sequential:
    """torch.nn layers holding copies of the low-level model's parameters."""
    act = nn.ReLU if model.activation == "relu" else nn.Tanh
    pool = nn.MaxPool2d if model.pool == "max" else nn.AvgPool2d
    p = {k: v.detach() for k, v in model.params.items()}
    net = nn.Sequential(
        nn.Conv2d(model.in_channels, 6, 5, padding=model.padding), act(), pool(2),
        nn.Conv2d(6, 16, 5), act(), pool(2), nn.Flatten(),
        nn.Linear(p["fc1.W"].shape[0], 120), act(), nn.Linear(120, 84), act(),
        nn.Linear(84, model.num_classes),
    ).to(dtype=p["conv1.W"].dtype, device=p["conv1.W"].device)
    with torch.no_grad():
        net[0].weight.copy_(p["conv1.W"])
        net[0].bias.copy_(p["conv1.b"])
        net[3].weight.copy_(p["conv2.W"])
        net[3].bias.copy_(p["conv2.b"])
        for index, name in ((7, "fc1"), (9, "fc2"), (11, "fc3")):
            net[index].weight.copy_(p[f"{name}.W"].T)  # ours (D_in, D_out), nn.Linear (out, in)
            net[index].bias.copy_(p[f"{name}.b"])
    return net


REFERENCE_GRADIENT_NAMES = {"0.weight": "conv1.W", "0.bias": "conv1.b", "3.weight": "conv2.W",
                            "3.bias": "conv2.b", "7.weight": "fc1.W", "7.bias": "fc1.b",
                            "9.weight": "fc2.W", "9.bias": "fc2.b", "11.weight": "fc3.W",
                            "11.bias": "fc3.b"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, pool, size, padding",
                         [("relu", "max", 32, 0), ("tanh", "avg", 32, 0), ("relu", "avg", 28, 2)])
def test_lenet_equals_nn_sequential_with_copied_weights(activation, pool, size, padding, dtype,
                                                        device):
    model = low.LeNet5(activation=activation, pool=pool, input_size=size, padding=padding,
                       seed=3, dtype=dtype, device=device)
    reference = _reference_sequential(model)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 1, size, size, generator=g, dtype=torch.float64).to(dtype=dtype,
                                                                          device=device)
    y = torch.tensor([0, 3, 9, 3, 7], device=device)
    tol = tolerance(dtype, device)

    logits, features = model.forward(x, return_features=True)
    assert_close(logits, reference(x), tol, name="logits")
    assert_close(features["c1"], reference[:2](x), tol, name="conv1 maps after the activation")
    assert features["s4"].shape == (5, 16, 5, 5)

    model.loss(x, y).backward()
    F.cross_entropy(reference(x), y).backward()
    for ref_name, ours_name in REFERENCE_GRADIENT_NAMES.items():
        ref_grad = reference.get_parameter(ref_name).grad
        ours_grad = model.params[ours_name].grad
        if ours_name.startswith("fc") and ours_name.endswith(".W"):
            ref_grad = ref_grad.T
        assert_close(ours_grad, ref_grad, tol, name=f"dJ/d{ours_name}")


def test_parameter_count_by_hand():
    conv1 = 6 * 1 * 5 * 5 + 6  # 156
    conv2 = 16 * 6 * 5 * 5 + 16  # 2,416
    fc1 = 16 * 5 * 5 * 120 + 120  # 48,120
    fc2 = 120 * 84 + 84  # 10,164
    fc3 = 84 * 10 + 10  # 850
    assert low.LeNet5().num_parameters() == conv1 + conv2 + fc1 + fc2 + fc3 == 61_706
    assert low.LeNet5(input_size=28, padding=2).num_parameters() == 61_706
    assert low.LeNet5(input_size=28).num_parameters() == 61_706 - 16 * (25 - 16) * 120


def test_initialisation_is_seeded_and_scaled():
    a, b, c = low.LeNet5(seed=1), low.LeNet5(seed=1), low.LeNet5(seed=2)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert not torch.equal(a.params["conv1.W"], c.params["conv1.W"])
    # the same seed gives the same numbers in float64 (drawn in float64, then cast)
    d = low.LeNet5(seed=1, dtype=torch.float64)
    assert_close(a.params["fc1.W"], d.params["fc1.W"].float(), tolerance("float32"))
    # He initialisation: std sqrt(2 / fan_in) (fan_in = 400 for fc1), biases 0
    std = float(d.params["fc1.W"].detach().std())
    assert abs(std - (2 / 400) ** 0.5) < 0.002
    assert not d.params["fc1.b"].any()


def test_cross_entropy_equals_F_cross_entropy(device):
    logits = torch.randn(6, 10, dtype=torch.float64, device=device) * 4
    logits[0, :3] = torch.tensor([1000.0, -1000.0, 999.0])  # no overflow
    y = torch.tensor([0, 1, 9, 4, 4, 2], device=device)
    ours = _value_and_grads(lambda z: low.cross_entropy(z, y), logits)
    theirs = _value_and_grads(lambda z: F.cross_entropy(z, y), logits)
    assert_close(ours[0], theirs[0], FLOAT64, name="cross-entropy")
    assert_close(ours[1][0], theirs[1][0], FLOAT64, name="dJ/dZ")
    assert torch.isfinite(ours[0])


# --------------------------------------------------------------------------------------
# The optimiser steps against torch.optim, on the network itself
# --------------------------------------------------------------------------------------


def _small_batch(size=32, n=6, device="cpu"):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 1, size, size, generator=g, dtype=torch.float64).to(device)
    return x, torch.arange(n, device=device) % 10


@pytest.mark.parametrize("name, settings_", [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("adam", {"lr": 1e-3}),
    ("adam", {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
])
def test_optimizer_steps_equal_torch_optim(name, settings_, device):
    x, y = _small_batch(device=device)
    ours = low.LeNet5(seed=7, dtype=torch.float64, device=device)
    theirs = low.LeNet5(seed=7, dtype=torch.float64, device=device)
    step = low.sgd_step if name == "sgd" else low.adam_step
    optim_cls = torch.optim.SGD if name == "sgd" else torch.optim.Adam
    optimizer = optim_cls(theirs.parameters(), **settings_)
    start = {k: v.detach().clone() for k, v in ours.params.items()}
    state = None
    for i in range(15):
        rows = slice(i % 3, i % 3 + 4)  # a different batch each step
        low.zero_grad(ours.parameters())
        ours.loss(x[rows], y[rows]).backward()
        state = step(ours.parameters(), state=state, **settings_)

        optimizer.zero_grad()
        theirs.loss(x[rows], y[rows]).backward()
        optimizer.step()
    for key in ours.params:
        assert_close(ours.params[key], theirs.params[key], OPTIMIZER_TRAJECTORY,
                     name=f"{name} {key} after 15 steps")
    assert not torch.equal(ours.params["conv1.W"], start["conv1.W"])  # it did move


def test_optimizer_steps_check_their_arguments():
    p = torch.ones(3, requires_grad=True)
    low.adam_step([p], lr=0.1)  # no gradient: nothing moves
    assert torch.equal(p, torch.ones(3))
    with pytest.raises(ValueError, match="lr must be > 0"):
        low.adam_step([p], lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        low.adam_step([p], lr=0.1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="momentum"):
        low.sgd_step([p], lr=0.1, momentum=1.5)


# --------------------------------------------------------------------------------------
# Training, data and errors
# --------------------------------------------------------------------------------------


def test_training_overfits_a_small_batch_and_is_deterministic():
    x, y = _small_batch(n=10)
    x = x.float()
    runs = []
    for _ in range(2):
        model = low.LeNet5(seed=0)
        history = script.train(model, x, y, epochs=40, batch_size=10, lr=3e-3, seed=1)
        runs.append((model, history))
    (model, history), (twin, twin_history) = runs
    assert history["train_loss"][-1] < 0.01 < history["train_loss"][0]
    assert model.score(x, y) == 1.0
    assert history["train_loss"] == twin_history["train_loss"]
    assert all(torch.equal(model.params[k], twin.params[k]) for k in model.params)


def test_training_shuffles_anew_every_epoch_with_the_seeded_generator():
    """Each epoch visits every image once, in a fresh order that the seed decides."""
    n = 20
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 32, 32)
    y = torch.zeros(n, dtype=torch.int64)

    def three_epochs(seed: int) -> list[list[int]]:
        model, seen = low.LeNet5(seed=0), []

        def recording_loss(xb, yb):  # what train computes the loss on, batch by batch
            seen.append(xb[:, 0, 0, 0].long().tolist())  # image i is filled with i
            return (model.params["conv1.W"] * 0).sum()

        model.loss = recording_loss
        script.train(model, x, y, epochs=3, batch_size=6, lr=1e-3, seed=seed)
        return [sum(seen[e * 4:(e + 1) * 4], []) for e in range(3)]

    epochs = three_epochs(0)
    assert all(sorted(order) == list(range(n)) for order in epochs)  # permutations
    assert epochs[0] != list(range(n))  # shuffled
    assert len({tuple(order) for order in epochs}) == 3  # a new order each epoch
    assert three_epochs(0) == epochs and three_epochs(1) != epochs  # the seed decides


def test_bad_inputs_give_clear_errors():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"x has 3 channels but the weight expects 1"):
        low.conv2d(x, torch.randn(4, 1, 3, 3))
    with pytest.raises(ValueError, match=r"4-D tensor \(N, C, H, W\).*x\[None\]"):
        low.conv2d(x[0], torch.randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match="larger than the"):
        low.conv2d(x, torch.randn(4, 3, 9, 9))
    with pytest.raises(ValueError, match="bias must have shape"):
        low.conv2d(x, torch.randn(4, 3, 3, 3), torch.randn(3))
    with pytest.raises(ValueError, match="float64"):
        low.conv2d(x, torch.randn(4, 3, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="stride"):
        low.conv2d(x, torch.randn(4, 3, 3, 3), stride=0)
    with pytest.raises(ValueError, match="at most half the kernel"):
        low.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="float tensor"):
        low.avg_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.int64), 2)
    model = low.LeNet5()
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 32, 32\)"):
        model(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="too small for LeNet-5"):
        low.LeNet5(input_size=12)
    with pytest.raises(ValueError, match="activation must be one of"):
        low.LeNet5(activation="gelu")
    with pytest.raises(ValueError, match=r"labels must be in 0..9"):
        script.train(model, torch.randn(3, 1, 32, 32), torch.tensor([0, 1, 10]), epochs=1,
                  batch_size=2, lr=1e-3)


# --------------------------------------------------------------------------------------
# The script on its default (offline) data
# --------------------------------------------------------------------------------------


def test_script_on_digits(tmp_path):
    # 3 of the default 6 epochs keep the test fast (about 0.95 then); the tour runs the
    # default and checks its target
    metrics = script.main(["--epochs", "3", "--out", str(tmp_path), "--no-progress",
                        "--device", "cpu"])
    assert metrics["test_accuracy"] >= 0.9
    assert metrics["train_accuracy"] >= 0.93
    assert 0 < metrics["final_loss"] < 0.3
    for name in ("loss", "confusion", "c1_filters", "feature_maps_c1", "feature_maps_c3"):
        assert (tmp_path / f"{name}.png").is_file(), name


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-1e-3"), ("--momentum", "1"),
    ("--weight-decay", "-0.1"), ("--threads", "-1"), ("--batch-size", "3.5")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: None" not in text
    assert "per dataset: digits 6, mnist 4" in text  # --epochs


@pytest.mark.slow
def test_lenet_on_real_mnist(tmp_path, shared_data):
    metrics = script.main(["--dataset", "mnist", "--data-root", str(shared_data), "--out",
                        str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.985
