"""Checks for the exercises of lesson 03, against references that do not share their code.

Run them on the reference solutions::

    pytest 03_CNN_LeNet/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 03_CNN_LeNet/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another
way: ``F.conv2d``, ``F.unfold`` / ``F.fold``, the pooling functions, PyTorch
autograd, ``torch.nn`` parameter counts, convolutions that count, central finite
differences, or values worked out by hand in theory.md. None compares with the
reference solution itself, which would let a copy of a bug pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    L1_VS_AUTOGRAD,
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


def t64(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
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
# Exercise 01: output shapes, parameter counts, multiply-adds, receptive fields
# ===========================================================================

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups); pairs are (height, width)
CONV_SETTINGS = [
    (2, 1, 32, 32, 6, 5, 1, 0, 1, 1),  # LeNet-5 C1
    (2, 6, 14, 14, 16, 5, 1, 0, 1, 1),  # C3
    (1, 1, 28, 28, 6, 5, 1, 2, 1, 1),  # C1 on unpadded MNIST
    (1, 3, 17, 23, 4, 3, 2, 1, 1, 1),  # odd sizes, stride 2
    (1, 2, 8, 8, 2, 3, 2, 0, 1, 1),  # the last row is never read
    (1, 2, 11, 9, 4, 1, 3, 0, 1, 2),  # 1 x 1 kernel, stride 3, 2 groups
    (1, 4, 16, 19, 4, 3, 1, 2, 2, 4),  # depthwise, dilated
    (1, 3, 20, 13, 6, (3, 5), (2, 1), (1, 2), (3, 1), 3),  # rectangular everything
    (1, 3, 224, 224, 8, 7, 2, 3, 1, 1),  # a ResNet stem
]


@pytest.mark.parametrize("setting", CONV_SETTINGS)
def test_ex01_output_shape_matches_conv2d(exercise, setting):
    ex = exercise("ex01_conv_shapes")
    n, c_in, h, w, c_out, k, s, p, d, g = setting
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.zeros(n, c_in, h, w)
    weight = torch.zeros(c_out, c_in // g, kh, kw)
    reference = tuple(F.conv2d(x, weight, stride=s, padding=p, dilation=d, groups=g).shape)
    assert ex.conv2d_output_shape((n, c_in, h, w), c_out, k, s, p, d) == reference


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4),
       padding=st.integers(0, 3), dilation=st.integers(1, 3))
def test_ex01_output_size_matches_conv2d_for_any_setting(exercise, size, kernel, stride, padding,
                                                         dilation):
    ex = exercise("ex01_conv_shapes")
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:  # no window fits: both must refuse
        with pytest.raises(ValueError):
            ex.conv_output_size(size, kernel, stride, padding, dilation)
        with pytest.raises(RuntimeError):
            F.conv2d(torch.zeros(1, 1, size, 1), torch.zeros(1, 1, kernel, 1),
                     stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
        return
    y = F.conv2d(torch.zeros(1, 1, size, 1), torch.zeros(1, 1, kernel, 1),
                 stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
    assert ex.conv_output_size(size, kernel, stride, padding, dilation) == y.shape[2]


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1), (2, 3)])
@pytest.mark.parametrize("size", [7, 8, 28])
def test_ex01_output_size_matches_pooling(exercise, kernel, stride, size):
    ex = exercise("ex01_conv_shapes")
    y = F.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride)
    assert ex.conv_output_size(size, kernel, stride) == y.shape[2]


def test_ex01_output_size_hand_values_and_errors(exercise):
    """The table of theory.md 1.3, and a kernel larger than the padded input."""
    ex = exercise("ex01_conv_shapes")
    table = [((32, 5, 1, 0), 28), ((28, 5, 1, 2), 28), ((28, 2, 2, 0), 14), ((14, 5, 1, 0), 10),
             ((5, 5, 1, 0), 1), ((224, 7, 2, 3), 112), ((7, 3, 2, 0), 3), ((8, 3, 2, 0), 3)]
    for args, expected in table:
        assert ex.conv_output_size(*args) == expected, args
    with pytest.raises(ValueError):
        ex.conv_output_size(4, 5)
    with pytest.raises(ValueError):
        ex.conv_output_size(5, 3, dilation=3)  # spans 7 pixels
    with pytest.raises(ValueError):
        ex.conv_output_size(8, 3, stride=0)


@pytest.mark.parametrize("c_in,c_out,kernel,groups,bias", [
    (1, 6, 5, 1, True), (6, 16, 5, 1, True), (16, 120, 5, 1, True), (6, 16, 5, 2, True),
    (8, 8, 3, 8, True), (8, 16, (3, 1), 4, False), (3, 64, 7, 1, False), (12, 6, 1, 3, True)])
def test_ex01_parameter_count_matches_nn_conv2d(exercise, c_in, c_out, kernel, groups, bias):
    ex = exercise("ex01_conv_shapes")
    layer = torch.nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=bias)
    expected = sum(p.numel() for p in layer.parameters())
    assert ex.conv2d_parameter_count(c_in, c_out, kernel, groups, bias) == expected


# Table I of LeCun et al. (1998), written independently of theory.md's construction rule:
# rows are the 6 S2 maps, columns the 16 C3 maps, X = connected.
TABLE_I = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def table_i() -> np.ndarray:
    return np.array([[ch == "X" for ch in row] for row in TABLE_I.split()])  # (6, 16)


def test_ex01_lenet_c3_parameter_count(exercise):
    """C3 with Table I has 1,516 parameters (the paper's count); fully connected, nn.Conv2d's."""
    ex = exercise("ex01_conv_shapes")
    table = table_i()
    assert table.shape == (6, 16) and table.sum() == 60
    assert ex.partial_conv_parameter_count(table, 5) == 1516
    assert ex.partial_conv_parameter_count(table, 5, bias=False) == 1500
    full = np.ones((6, 16), dtype=bool)
    assert ex.partial_conv_parameter_count(full, 5) == sum(
        p.numel() for p in torch.nn.Conv2d(6, 16, 5).parameters())


def test_ex01_block_diagonal_table_is_a_grouped_convolution(exercise):
    ex = exercise("ex01_conv_shapes")
    groups, c_in, c_out = 3, 6, 9
    table = np.zeros((c_in, c_out), dtype=bool)
    for t in range(groups):  # input group t feeds output group t only
        table[t * 2:(t + 1) * 2, t * 3:(t + 1) * 3] = True
    reference = sum(p.numel() for p in torch.nn.Conv2d(c_in, c_out, 3, groups=groups).parameters())
    assert ex.partial_conv_parameter_count(table, 3) == reference
    assert ex.partial_conv_parameter_count(table.astype(int), (3, 3)) == reference


def test_ex01_lenet5_has_60000_parameters(exercise):
    """C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164 = 60,000 (theory.md 6.2)."""
    ex = exercise("ex01_conv_shapes")
    c1 = ex.conv2d_parameter_count(1, 6, 5)
    c3 = ex.partial_conv_parameter_count(table_i(), 5)
    c5 = ex.conv2d_parameter_count(16, 120, 5)
    f6 = sum(p.numel() for p in torch.nn.Linear(120, 84).parameters())
    s2, s4 = 6 * 2, 16 * 2  # one coefficient and one bias per map
    assert (c1, c3, c5) == (156, 1516, 48120)
    assert c1 + s2 + c3 + s4 + c5 + f6 == 60000


@pytest.mark.parametrize("setting", CONV_SETTINGS)
def test_ex01_multiply_adds_match_a_counting_convolution(exercise, setting):
    """Count the products by convolving ones with ones: every product is 1 * 1 = 1.

    The input is padded with ones beforehand (not zeros), so that taps landing in the
    padding are counted too, as FLOP counters do (they report 2 x the multiply-adds).
    """
    ex = exercise("ex01_conv_shapes")
    n, c_in, h, w, c_out, k, s, p, d, g = setting
    kh, kw = (k, k) if isinstance(k, int) else k
    ph, pw = (p, p) if isinstance(p, int) else p
    ones = torch.ones(n, c_in, h + 2 * ph, w + 2 * pw, dtype=torch.float64)
    products = F.conv2d(ones, torch.ones(c_out, c_in // g, kh, kw, dtype=torch.float64),
                        stride=s, dilation=d, groups=g).sum().item()
    assert ex.conv2d_multiply_adds((n, c_in, h, w), c_out, k, s, p, d, g) == int(products)


def test_ex01_lenet_multiply_adds_by_hand(exercise):
    """theory.md 8: C1 117,600, full C3 240,000, C5 48,000 per 32 x 32 image."""
    ex = exercise("ex01_conv_shapes")
    assert ex.conv2d_multiply_adds((1, 1, 32, 32), 6, 5) == 117600
    assert ex.conv2d_multiply_adds((1, 6, 14, 14), 16, 5) == 240000
    assert ex.conv2d_multiply_adds((1, 16, 5, 5), 120, 5) == 48000
    assert ex.conv2d_multiply_adds((64, 1, 32, 32), 6, 5) == 64 * 117600


def autograd_receptive_field(layers, size: int, unit: int) -> tuple[int, int]:
    """(first input row, number of rows) where unit (unit, unit) of the last layer has a
    non-zero gradient, through convolutions with all-ones kernels (no cancellation)."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    h = x
    for k, s, p, d in layers:
        h = F.conv2d(h, torch.ones(1, 1, k, k, dtype=torch.float64), stride=s, padding=p,
                     dilation=d)
    h[0, 0, unit, unit].backward()
    rows = np.flatnonzero(x.grad[0, 0].sum(dim=1).numpy() > 0)
    return int(rows[0]), int(rows[-1] - rows[0] + 1)


LENET_LAYERS = [(5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1)]
RECEPTIVE_FIELD_STACKS = {
    "vgg-like": ([(3, 1, 1, 1), (3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (3, 1, 1, 1),
                  (2, 2, 0, 1)], 64),
    "dilated": ([(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4), (3, 1, 8, 8)], 80),
    "resnet-like": ([(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 1, 1), (3, 2, 1, 1)], 96),
    "mixed": ([(3, 3, 0, 1), (4, 2, 1, 2), (2, 1, 0, 1)], 100),
}


def test_ex01_lenet_receptive_fields_by_hand(exercise):
    """theory.md 5: r = 5, 6, 14, 16, 32 and j = 1, 2, 2, 4, 4; C5 sees the whole image."""
    ex = exercise("ex01_conv_shapes")
    got = ex.receptive_fields(LENET_LAYERS)
    assert [tuple(int(v) for v in layer) for layer in got] == [
        (5, 1, 0), (6, 2, 0), (14, 2, 0), (16, 4, 0), (32, 4, 0)]
    assert autograd_receptive_field(LENET_LAYERS, 32, 0) == (0, 32)


@pytest.mark.parametrize("name", sorted(RECEPTIVE_FIELD_STACKS))
def test_ex01_receptive_fields_match_autograd(exercise, name):
    """After every layer: the pixels with a non-zero gradient are start + i j ... + r - 1."""
    ex = exercise("ex01_conv_shapes")
    layers, size = RECEPTIVE_FIELD_STACKS[name]
    got = ex.receptive_fields(layers)
    assert len(got) == len(layers)
    for depth in range(1, len(layers) + 1):
        r, j, start = (int(v) for v in got[depth - 1])
        h = torch.zeros(1, 1, size, size)
        for k, s, p, d in layers[:depth]:
            h = F.conv2d(h, torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
        unit = h.shape[2] // 2  # a unit in the middle, whose field is not cut by the border
        first, length = autograd_receptive_field(layers[:depth], size, unit)
        assert 0 < first and first + length < size, "test design: field touches the border"
        assert (length, first) == (r, start + unit * j), (
            f"{name}, after layer {depth}: autograd says rows {first}..{first + length - 1}, "
            f"your (r, j, start) = {(r, j, start)} says {start + unit * j}.."
            f"{start + unit * j + r - 1} for unit {unit}")
        if unit + 1 < h.shape[2]:  # the neighbouring unit's field is one jump further
            assert autograd_receptive_field(layers[:depth], size, unit + 1)[0] == first + j


def test_ex01_functions_reject_bad_input(exercise):
    ex = exercise("ex01_conv_shapes")
    with pytest.raises(ValueError):
        ex.conv2d_output_shape((1, 32, 32), 6, 5)  # not NCHW
    with pytest.raises(ValueError):
        ex.conv2d_parameter_count(6, 16, 5, groups=4)  # 6 channels do not split in 4
    with pytest.raises(ValueError):
        ex.receptive_fields([(3, 1)])  # (kernel, stride, padding, dilation) expected


# ===========================================================================
# Exercise 02: the convolution backward pass by im2col / col2im
# ===========================================================================

# (N, C_in, H, W, C_out, kernel, stride, padding)
BACKWARD_SETTINGS = [
    (2, 1, 12, 12, 3, 5, 1, 0),  # LeNet-like C1
    (2, 3, 9, 9, 4, 3, 1, 1),  # "same" padding
    (1, 2, 11, 8, 3, 3, 2, 0),  # odd sizes, stride 2, a row left over
    (2, 3, 10, 7, 2, 3, 3, 2),  # stride 3, padding 2
    (1, 4, 6, 5, 2, 1, 1, 0),  # 1 x 1 kernel
    (1, 2, 7, 9, 3, 1, 2, 1),  # 1 x 1 kernel, stride 2, padding 1
    (2, 2, 8, 10, 3, (3, 2), 2, 1),  # rectangular kernel
    (1, 1, 5, 5, 2, 5, 1, 2),  # kernel as large as the input
]


def conv_data(setting, seed=0):
    n, c_in, h, w, c_out, k, _, _ = setting
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in, kh, kw)),
            rng.standard_normal(c_out))


@pytest.mark.parametrize("setting", BACKWARD_SETTINGS)
def test_ex02_im2col_matches_torch_unfold(exercise, setting):
    """F.unfold gives (N, C kH kW, L), L = H_out W_out in row-major order: one column per patch."""
    ex = exercise("ex02_conv_backward")
    x, W, _ = conv_data(setting)
    k, s, p = setting[5:]
    kernel = W.shape[2:]
    cols = ex.im2col(x, k, s, p)
    reference = F.unfold(t64(x), kernel, padding=p, stride=s)  # (N, C kH kW, L)
    assert_close(cols, reference.transpose(1, 2).reshape(-1, reference.shape[1]), FLOAT64,
                 name="im2col")


@pytest.mark.parametrize("setting", BACKWARD_SETTINGS)
def test_ex02_col2im_matches_torch_fold(exercise, setting):
    """F.fold is PyTorch's col2im: it sums the patches back into an image."""
    ex = exercise("ex02_conv_backward")
    x, W, _ = conv_data(setting)
    k, s, p = setting[5:]
    n, c, h, w = x.shape
    n_rows = ex.im2col(x, k, s, p).shape[0]
    cols = np.random.default_rng(1).standard_normal((n_rows, W[0].size))
    got = ex.col2im(cols, x.shape, k, s, p)
    per_image = t64(cols).reshape(n, n_rows // n, -1).transpose(1, 2)  # (N, C kH kW, L)
    reference = F.fold(per_image, (h, w), W.shape[2:], padding=p, stride=s)
    assert_close(got, reference, FLOAT64, name="col2im")


@pytest.mark.parametrize("setting", BACKWARD_SETTINGS[:4])
def test_ex02_col2im_is_the_transpose_of_im2col(exercise, setting):
    """<im2col(x), C> = <x, col2im(C)> for every x and C: the definition of the transpose."""
    ex = exercise("ex02_conv_backward")
    x, W, _ = conv_data(setting, seed=2)
    k, s, p = setting[5:]
    cols = ex.im2col(x, k, s, p)
    C = np.random.default_rng(3).standard_normal(cols.shape)
    left = np.sum(cols * C)
    right = np.sum(x * ex.col2im(C, x.shape, k, s, p))
    assert_close(left, right, FLOAT64, name="<im2col(x), C> vs <x, col2im(C)>")


@pytest.mark.parametrize("setting", BACKWARD_SETTINGS)
def test_ex02_forward_matches_conv2d(exercise, setting):
    ex = exercise("ex02_conv_backward")
    x, W, b = conv_data(setting)
    s, p = setting[6:]
    y = ex.conv2d_forward(x, W, b, s, p)
    assert_close(y, F.conv2d(t64(x), t64(W), t64(b), stride=s, padding=p), FLOAT64, name="y")


def test_ex02_forward_keeps_float32(exercise):
    ex = exercise("ex02_conv_backward")
    x, W, b = (a.astype(np.float32) for a in conv_data(BACKWARD_SETTINGS[1]))
    y = ex.conv2d_forward(x, W, b, 1, 1)
    assert y.dtype == np.float32
    reference = F.conv2d(torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b), padding=1)
    assert_close(y, reference, FLOAT32, name="float32 y")


@pytest.mark.parametrize("setting", BACKWARD_SETTINGS)
def test_ex02_backward_matches_autograd(exercise, setting):
    ex = exercise("ex02_conv_backward")
    x, W, b = conv_data(setting, seed=4)
    s, p = setting[6:]
    x_t, W_t, b_t = t64(x, True), t64(W, True), t64(b, True)
    y_t = F.conv2d(x_t, W_t, b_t, stride=s, padding=p)
    dy = np.random.default_rng(5).standard_normal(tuple(y_t.shape))
    (y_t * t64(dy)).sum().backward()
    dx, dW, db = ex.conv2d_backward(dy, x, W, s, p)
    assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name="dx")
    assert_close(dW, W_t.grad, L1_VS_AUTOGRAD, name="dW")
    assert_close(db, b_t.grad, L1_VS_AUTOGRAD, name="db")


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1)])
def test_ex02_backward_matches_finite_differences(exercise, stride, padding):
    ex = exercise("ex02_conv_backward")
    setting = (1, 2, 5, 6, 2, 3, stride, padding)
    x, W, b = conv_data(setting, seed=6)
    dy = np.random.default_rng(7).standard_normal(ex.conv2d_forward(x, W, b, stride,
                                                                     padding).shape)

    def loss() -> float:
        return float(np.sum(ex.conv2d_forward(x, W, b, stride, padding) * dy))

    dx, dW, db = ex.conv2d_backward(dy, x, W, stride, padding)
    assert_close(dx, numerical_gradient(loss, x), FINITE_DIFF, name="dx")
    assert_close(dW, numerical_gradient(loss, W), FINITE_DIFF, name="dW")
    assert_close(db, numerical_gradient(loss, b), FINITE_DIFF, name="db")


@pytest.mark.parametrize("setting", [s for s in BACKWARD_SETTINGS if s[6] == 1])
def test_ex02_full_convolution_gives_the_input_gradient(exercise, setting):
    """theory.md 3.4: for stride 1, dx = conv2d(pad_{k-1}(dy), flipped, channel-swapped W)."""
    ex = exercise("ex02_conv_backward")
    x, W, b = conv_data(setting, seed=8)
    p = setting[7]
    x_t = t64(x, True)
    y_t = F.conv2d(x_t, t64(W), t64(b), padding=p)
    dy = np.random.default_rng(9).standard_normal(tuple(y_t.shape))
    (y_t * t64(dy)).sum().backward()
    assert_close(ex.input_gradient_full_convolution(dy, W, p), x_t.grad, L1_VS_AUTOGRAD,
                 name="dx by full convolution")


def test_ex02_functions_reject_bad_input(exercise):
    ex = exercise("ex02_conv_backward")
    x, W, b = conv_data(BACKWARD_SETTINGS[1])
    with pytest.raises(ValueError):
        ex.conv2d_forward(x[0], W, b)  # x must be 4-D
    with pytest.raises(ValueError):
        ex.conv2d_forward(x, W[:, :2], b)  # W's C_in must match x's channels
    with pytest.raises(ValueError):
        ex.im2col(x, 12)  # a 12 x 12 kernel does not fit a 9 x 9 image
    with pytest.raises(ValueError):
        ex.conv2d_backward(np.zeros((2, 4, 3, 3)), x, W, 1, 1)  # dy of the wrong shape


# ===========================================================================
# Exercise 03: dilated, grouped and depthwise separable convolutions
# ===========================================================================

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, bias)
GENERAL_SETTINGS = [
    (2, 3, 9, 9, 4, 3, 1, 0, 1, 1, True),  # plain
    (1, 2, 12, 11, 3, 3, 1, 2, 2, 1, True),  # dilated, "same" padding
    (1, 3, 15, 13, 2, 3, 2, 1, 3, 1, False),  # dilation 3, stride 2, odd sizes
    (2, 4, 8, 8, 6, 3, 1, 1, 1, 2, True),  # 2 groups
    (1, 6, 10, 9, 6, 3, 2, 1, 1, 3, True),  # 3 groups, stride 2
    (1, 5, 9, 10, 5, 3, 1, 1, 1, 5, False),  # depthwise
    (1, 4, 11, 11, 8, 3, 1, 2, 2, 4, True),  # depthwise with multiplier 2, dilated
    (2, 4, 7, 9, 4, (3, 2), 1, 1, 2, 2, True),  # rectangular kernel
    (1, 6, 6, 6, 4, 1, 1, 0, 1, 2, True),  # 1 x 1, grouped
]


def general_data(setting, seed=10):
    n, c_in, h, w, c_out, k, _, _, _, g, bias = setting
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in // g, kh, kw)),
            rng.standard_normal(c_out) if bias else None)


@pytest.mark.parametrize("setting", GENERAL_SETTINGS)
def test_ex03_general_convolution_matches_conv2d(exercise, setting):
    ex = exercise("ex03_dilated_grouped_conv")
    x, W, b = general_data(setting)
    s, p, d, g = setting[6:10]
    y = ex.conv2d_general(x, W, b, s, p, d, g)
    reference = F.conv2d(t64(x), t64(W), None if b is None else t64(b), stride=s, padding=p,
                         dilation=d, groups=g)
    assert_close(y, reference, FLOAT64, name="y")


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_ex03_dilated_kernel_equals_dilation(exercise, dilation):
    """A convolution with the zero-filled kernel (dilation 1) is the dilated convolution."""
    ex = exercise("ex03_dilated_grouped_conv")
    rng = np.random.default_rng(11)
    x, W = rng.standard_normal((2, 3, 13, 12)), rng.standard_normal((4, 3, 3, 2))
    dilated = ex.dilate_kernel(W, dilation)
    assert dilated.shape == (4, 3, dilation * 2 + 1, dilation + 1)
    assert np.count_nonzero(dilated) == W.size  # only the original taps are non-zero
    assert_close(F.conv2d(t64(x), t64(dilated)), F.conv2d(t64(x), t64(W), dilation=dilation),
                 FLOAT64, name="conv with the dilated kernel")


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_ex03_depthwise_separable_matches_two_convolutions(exercise, stride, padding):
    ex = exercise("ex03_dilated_grouped_conv")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 9, 10))
    W_dw, W_pw = rng.standard_normal((4, 1, 3, 3)), rng.standard_normal((6, 4, 1, 1))
    y = ex.depthwise_separable_conv(x, W_dw, W_pw, stride, padding)
    z = F.conv2d(t64(x), t64(W_dw), stride=stride, padding=padding, groups=4)
    assert_close(y, F.conv2d(z, t64(W_pw)), FLOAT64, name="depthwise separable y")


def test_ex03_functions_reject_bad_input(exercise):
    ex = exercise("ex03_dilated_grouped_conv")
    x = np.zeros((1, 6, 8, 8))
    with pytest.raises(ValueError):
        ex.conv2d_general(x, np.zeros((4, 6, 3, 3)), groups=4)  # 6 channels, 4 groups
    with pytest.raises(ValueError):
        ex.conv2d_general(x, np.zeros((4, 6, 3, 3)), groups=2)  # W must be (C_out, 3, kH, kW)
    with pytest.raises(ValueError):
        ex.conv2d_general(x, np.zeros((4, 6, 3, 3)), dilation=4)  # spans 9 > 8 pixels
    with pytest.raises(ValueError):
        ex.depthwise_separable_conv(x, np.zeros((6, 2, 3, 3)), np.zeros((4, 6, 1, 1)))


# ===========================================================================
# Exercise 04: max and average pooling backward
# ===========================================================================

# (N, C, H, W, kernel, stride); stride None = kernel (no overlap)
POOL_SETTINGS = [
    (2, 3, 8, 8, 2, None),  # LeNet's 2 x 2, stride 2
    (1, 2, 9, 7, 2, 2),  # odd sizes: the last row / column is dropped
    (2, 2, 9, 9, 3, 2),  # overlapping (AlexNet's 3 x 3, stride 2)
    (1, 3, 7, 8, 3, 1),  # heavily overlapping
    (1, 2, 10, 11, 3, 3),  # k = s = 3
    (1, 1, 11, 10, 2, 3),  # gaps between windows
]


def pool_input(setting, seed=13):
    n, c, h, w = setting[:4]
    return np.random.default_rng(seed).standard_normal((n, c, h, w))  # continuous: no ties


@pytest.mark.parametrize("setting", POOL_SETTINGS)
def test_ex04_max_pool_forward_and_indices_match_torch(exercise, setting):
    ex = exercise("ex04_pooling_backward")
    x = pool_input(setting)
    k, s = setting[4:]
    y, argmax = ex.max_pool2d_forward(x, k, s)
    y_t, idx_t = F.max_pool2d(t64(x), k, s, return_indices=True)
    assert_close(y, y_t, FLOAT64, name="max pool y")
    np.testing.assert_array_equal(argmax, idx_t.numpy(), err_msg="argmax (flat index into H*W)")


@pytest.mark.parametrize("setting", POOL_SETTINGS)
def test_ex04_max_pool_backward_matches_autograd(exercise, setting):
    ex = exercise("ex04_pooling_backward")
    x = pool_input(setting, seed=14)
    k, s = setting[4:]
    x_t = t64(x, True)
    y_t = F.max_pool2d(x_t, k, s)
    dy = np.random.default_rng(15).standard_normal(tuple(y_t.shape))
    (y_t * t64(dy)).sum().backward()
    _, argmax = ex.max_pool2d_forward(x, k, s)
    dx = ex.max_pool2d_backward(dy, argmax, x.shape)
    assert_close(dx, x_t.grad, L1_VS_AUTOGRAD, name="max pool dx")
    assert_close(dx.sum(), dy.sum(), FLOAT64, name="sum(dx) = sum(dy)")


@pytest.mark.parametrize("setting", POOL_SETTINGS)
def test_ex04_avg_pool_forward_and_backward_match_torch(exercise, setting):
    ex = exercise("ex04_pooling_backward")
    x = pool_input(setting, seed=16)
    k, s = setting[4:]
    x_t = t64(x, True)
    y_t = F.avg_pool2d(x_t, k, s)
    dy = np.random.default_rng(17).standard_normal(tuple(y_t.shape))
    (y_t * t64(dy)).sum().backward()
    assert_close(ex.avg_pool2d_forward(x, k, s), y_t, FLOAT64, name="avg pool y")
    assert_close(ex.avg_pool2d_backward(dy, x.shape, k, s), x_t.grad, L1_VS_AUTOGRAD,
                 name="avg pool dx")


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
def test_ex04_pool_backward_matches_finite_differences(exercise, kernel, stride):
    ex = exercise("ex04_pooling_backward")
    x = np.random.default_rng(18).standard_normal((1, 2, 7, 6))
    y, argmax = ex.max_pool2d_forward(x, kernel, stride)
    dy = np.random.default_rng(19).standard_normal(y.shape)
    max_loss = lambda: float(np.sum(ex.max_pool2d_forward(x, kernel, stride)[0] * dy))
    avg_loss = lambda: float(np.sum(ex.avg_pool2d_forward(x, kernel, stride) * dy))
    assert_close(ex.max_pool2d_backward(dy, argmax, x.shape), numerical_gradient(max_loss, x),
                 FINITE_DIFF, name="max pool dx")
    assert_close(ex.avg_pool2d_backward(dy, x.shape, kernel, stride),
                 numerical_gradient(avg_loss, x), FINITE_DIFF, name="avg pool dx")


def test_ex04_non_overlapping_average_backward_is_an_upsampling(exercise):
    """theory.md 4.2: for s = k, dx = kron(dy, ones(k, k)) / k^2."""
    ex = exercise("ex04_pooling_backward")
    dy = np.random.default_rng(20).standard_normal((2, 3, 4, 5))
    expected = np.kron(dy, np.ones((1, 1, 2, 2))) / 4.0
    assert_close(ex.avg_pool2d_backward(dy, (2, 3, 8, 10), 2), expected, FLOAT64,
                 name="upsampled dy / 4")


def test_ex04_ties_send_the_gradient_to_the_first_maximum(exercise):
    """A window with equal largest entries routes all of dy to the first in row-major order.

    On a constant 3 x 3 input with 2 x 2 windows and stride 1, every window's first
    element is its top-left one: windows (0,0), (0,1), (1,0), (1,1) pick x[0,0], x[0,1],
    x[1,0], x[1,1], so dx is dy in the top-left 2 x 2 block and zero elsewhere.
    """
    ex = exercise("ex04_pooling_backward")
    x = np.zeros((1, 1, 3, 3))
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y, argmax = ex.max_pool2d_forward(x, 2, 1)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])
    dx = ex.max_pool2d_backward(dy, argmax, x.shape)
    np.testing.assert_array_equal(dx[0, 0], [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    # a tie between the two 5s of one window, after a smaller entry: the first 5 (index 1) wins
    x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])
    y, argmax = ex.max_pool2d_forward(x, 2)
    assert y[0, 0, 0, 0] == 5.0 and argmax[0, 0, 0, 0] == 1
    dx = ex.max_pool2d_backward(np.ones((1, 1, 1, 1)), argmax, x.shape)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_ex04_overlapping_max_collects_several_gradients(exercise):
    """One pixel that is the maximum of 4 overlapping windows receives all 4 gradients."""
    ex = exercise("ex04_pooling_backward")
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the centre is in all four 2 x 2 windows (stride 1)
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    _, argmax = ex.max_pool2d_forward(x, 2, 1)
    dx = ex.max_pool2d_backward(dy, argmax, x.shape)
    expected = np.zeros((3, 3))
    expected[1, 1] = 10.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_ex04_functions_reject_bad_input(exercise):
    ex = exercise("ex04_pooling_backward")
    with pytest.raises(ValueError):
        ex.max_pool2d_forward(np.zeros((3, 8, 8)), 2)  # not 4-D
    with pytest.raises(ValueError):
        ex.avg_pool2d_forward(np.zeros((1, 1, 2, 2)), 3)  # window larger than the input
    with pytest.raises(ValueError):
        ex.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), (1, 1, 8, 8), 2)  # dy should be 4 x 4


# The parameter grids above must cover what theory.md promises: strides 1-3, paddings 0-2,
# kernel 1, rectangular kernels, dilation, groups, overlapping windows.
def test_the_grids_cover_the_promised_cases():
    strides = {s[6] for s in BACKWARD_SETTINGS}
    paddings = {s[7] for s in BACKWARD_SETTINGS}
    kernels = {s[5] for s in BACKWARD_SETTINGS}
    assert {1, 2, 3} <= strides and {0, 1, 2} <= paddings and 1 in kernels
    assert any(not isinstance(k, int) for k in kernels)
    assert {1, 2, 3} <= {s[8] for s in GENERAL_SETTINGS}
    assert any(s[9] == s[1] for s in GENERAL_SETTINGS)  # depthwise
    assert any(s[5] is not None and s[5] < s[4] for s in POOL_SETTINGS)  # overlapping
