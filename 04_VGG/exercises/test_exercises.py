"""Checks for the exercises of lesson 04, against references that do not share their code.

Run them on the reference solutions::

    pytest 04_VGG/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 04_VGG/exercises --solutions my_solutions

Every check compares numbers with something computed another way: autograd through a
stack of all-ones convolutions (receptive fields), torchvision's models and
``torch.utils.flop_counter`` (parameters and multiply-adds), ``F.batch_norm`` /
``nn.BatchNorm2d`` and central finite differences (batch norm), ``F.conv2d`` /
``F.linear`` and the lesson's Level 3 ``fully_convolutional`` (dense evaluation), and
values worked out by hand in theory.md. None compares with the reference solution itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

from utils import import_lesson
from utils.testing import (
    FINITE_DIFF,
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

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ===========================================================================
# The files themselves
# ===========================================================================


def test_every_exercise_has_its_task_solution_and_starter():
    check_exercise_files(HERE, min_count=4)


@pytest.mark.parametrize("name", EXERCISES)
def test_starter_defines_the_same_functions_as_the_solution(name):
    check_starter_matches_solution(HERE, name)


@pytest.mark.parametrize("name", EXERCISES)
def test_every_starter_function_is_left_to_the_learner(name):
    check_starter_left_to_learner(HERE, name)


@pytest.mark.parametrize("folder", [SOLUTIONS, STARTERS], ids=["solutions", "starters"])
def test_exercise_files_are_numpy_only(folder):
    check_numpy_only(folder)


@pytest.mark.parametrize("name", EXERCISES)
def test_your_file_has_the_expected_functions(exercise, name):
    check_learner_module(exercise(name), HERE, name)


# ===========================================================================
# Exercise 01: receptive fields, against autograd
# ===========================================================================


def _measured_fields(layers, size):
    """For the first, a middle and the last unit of each layer: (first, last) input rows
    with a non-zero gradient, through all-ones convolutions and average pooling (max
    pooling would send each window's gradient to one pixel only)."""
    x = torch.ones(1, 1, size, 1, dtype=torch.float64, requires_grad=True)
    h, out = x, []
    for k, s, p in layers:
        h = F.conv2d(h, torch.ones(1, 1, k, 1, dtype=torch.float64), stride=(s, 1),
                     padding=(p, 0))
        units = {}
        for i in (0, h.shape[2] // 2):
            (g,) = torch.autograd.grad(h[0, 0, i, 0], x, retain_graph=True)
            rows = torch.nonzero(g[0, 0, :, 0]).flatten()
            units[i] = (int(rows[0]), int(rows[-1]))
        out.append(units)
    return out


LAYER_STACKS = [
    [(3, 1, 1), (3, 1, 1)],  # two conv3: one 5x5 field
    [(3, 1, 1), (3, 1, 1), (3, 1, 1)],  # three: 7x7
    [(3, 1, 1), (2, 2, 0), (3, 1, 1), (1, 1, 0), (2, 2, 0), (3, 1, 1)],
    [(5, 2, 2), (3, 2, 0), (3, 1, 1)],
]


@pytest.mark.parametrize("layers", LAYER_STACKS, ids=range(len(LAYER_STACKS)))
def test_ex01_receptive_fields_equal_the_autograd_support(exercise, layers):
    ex = exercise("ex01_receptive_field")
    table = ex.receptive_fields(layers)
    size = 64
    for (r, j, start), units in zip(table, _measured_fields(layers, size)):
        mid = max(units)
        lo, hi = start + mid * j, start + mid * j + r - 1  # unit i sees start + i j ...
        assert units[mid] == (max(lo, 0), min(hi, size - 1))
        assert units[0][1] == start + r - 1  # the first unit's field ends there


@pytest.mark.parametrize("config", ["A", "C", "D", "E"])
def test_ex01_vgg_fields_equal_the_autograd_support(exercise, config):
    ex = exercise("ex01_receptive_field")
    layers = ex.vgg_layers(config)
    table = ex.receptive_fields(layers)
    measured = _measured_fields(layers, 512)
    for (r, j, start), units in zip(table, measured):
        mid = max(units)
        assert units[mid] == (start + mid * j, start + mid * j + r - 1)
    if config == "D":
        assert table[-1][:2] == (212, 32)  # theory.md section 2


def test_ex01_config_d_and_stacks_by_hand(exercise):
    ex = exercise("ex01_receptive_field")
    r = [row[0] for row in ex.receptive_fields(ex.vgg_layers("D"))]
    assert r[:3] == [3, 5, 6] and r[-4:] == [132, 164, 196, 212]  # theory.md section 2
    assert ex.stacked_conv_equivalent(2) == (5, 18, 25)
    assert ex.stacked_conv_equivalent(3) == (7, 27, 49)
    assert ex.stacked_conv_equivalent(1, 7) == (7, 49, 49)
    with pytest.raises(ValueError):
        ex.receptive_fields([(3, 1)])
    with pytest.raises(ValueError):
        ex.vgg_layers("Z")


# ===========================================================================
# Exercise 02: parameters and multiply-adds, against torchvision
# ===========================================================================


def _meta(fn, **kwargs):
    with torch.device("meta"):
        return fn(**kwargs)


@pytest.mark.parametrize("config, name", [("A", "vgg11"), ("B", "vgg13"), ("D", "vgg16"),
                                          ("E", "vgg19")])
def test_ex02_parameter_counts_equal_torchvision(exercise, config, name):
    ex = exercise("ex02_param_flop_count")
    for bn in (False, True):
        model = _meta(getattr(tvm, name + ("_bn" if bn else "")), num_classes=10)
        expected = sum(p.numel() for p in model.parameters())
        assert ex.vgg_parameter_count(config, num_classes=10, batch_norm=bn) == expected
    tv = _meta(getattr(tvm, name))
    weight_layers = [m for m in tv.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    table = ex.layer_table(config)
    assert [p for _, p, _ in table] == [sum(q.numel() for q in m.parameters())
                                        for m in weight_layers]


def test_ex02_configuration_c_and_table_2(exercise):
    ex = exercise("ex02_param_flop_count")
    paper = import_lesson("04_VGG.paper.vgg_paper")
    with torch.device("meta"):
        c = paper.vgg("C")
    assert ex.vgg_parameter_count("C") == paper.count_parameters(c)
    millions = {k: round(ex.vgg_parameter_count(k) / 1e6) for k in "ABCDE"}
    assert millions == {"A": 133, "B": 133, "C": 134, "D": 138, "E": 144}  # Table 2


@pytest.mark.parametrize("config, name, size", [("A", "vgg11", 224), ("D", "vgg16", 224),
                                                ("E", "vgg19", 240)])
def test_ex02_multiply_adds_equal_the_flop_counter(exercise, config, name, size):
    ex = exercise("ex02_param_flop_count")
    with torch.device("meta"):
        model = getattr(tvm, name)()
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, size, size))
    assert ex.vgg_multiply_adds(config, image_size=size) * 2 == counter.get_total_flops()


def test_ex02_errors(exercise):
    ex = exercise("ex02_param_flop_count")
    with pytest.raises(ValueError):
        ex.vgg_parameter_count("Z")
    with pytest.raises(ValueError):
        ex.vgg_multiply_adds("A", image_size=16)


# ===========================================================================
# Exercise 03: batch norm by hand, against autograd and finite differences
# ===========================================================================


def _batch(seed=0, shape=(4, 3, 5, 2)):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=shape)
    gamma = rng.uniform(0.5, 1.5, size=shape[1])
    beta = rng.normal(size=shape[1])
    dy = rng.normal(size=shape)
    return x, gamma, beta, dy


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (2, 1, 1, 3), (7, 2, 1, 1)])
def test_ex03_forward_and_backward_equal_autograd(exercise, shape):
    ex = exercise("ex03_batchnorm_backward")
    x, gamma, beta, dy = _batch(1, shape)
    y, cache = ex.batchnorm_forward(x, gamma, beta, 1e-5)
    dx, dgamma, dbeta = ex.batchnorm_backward(dy, cache)
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    ref = F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True, eps=1e-5)
    ref.backward(torch.tensor(dy))
    assert_close(y, ref.detach().numpy(), L1_VS_AUTOGRAD, name="y")
    for name, ours, leaf in zip(("dx", "dgamma", "dbeta"), (dx, dgamma, dbeta), leaves):
        assert_close(ours, leaf.grad.numpy(), L1_VS_AUTOGRAD, name=name)


def test_ex03_dx_equals_finite_differences(exercise):
    ex = exercise("ex03_batchnorm_backward")
    x, gamma, beta, dy = _batch(2, (3, 2, 2, 2))

    def loss():
        return float((ex.batchnorm_forward(x, gamma, beta, 1e-5)[0] * dy).sum())

    _, cache = ex.batchnorm_forward(x, gamma, beta, 1e-5)
    dx, dgamma, _ = ex.batchnorm_backward(dy, cache)
    assert_close(dx, numerical_gradient(loss, x), FINITE_DIFF, name="dx")
    assert_close(dgamma, numerical_gradient(loss, gamma), FINITE_DIFF, name="dgamma")


def test_ex03_running_statistics_equal_nn_batchnorm2d(exercise):
    ex = exercise("ex03_batchnorm_backward")
    bn = torch.nn.BatchNorm2d(3, momentum=0.2).double()
    mean, var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = _batch(10 + step)[0]
        bn(torch.tensor(x))
        mean, var = ex.update_running_stats(mean, var, x, momentum=0.2)
        assert_close(mean, bn.running_mean.numpy(), FLOAT64, name=f"mean, step {step}")
        assert_close(var, bn.running_var.numpy(), FLOAT64, name=f"var, step {step}")


def test_ex03_errors(exercise):
    ex = exercise("ex03_batchnorm_backward")
    with pytest.raises(ValueError):
        ex.batchnorm_forward(np.ones((3, 2)), np.ones(2), np.zeros(2))
    with pytest.raises(ValueError):
        ex.batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(2), np.zeros(3))
    with pytest.raises(ValueError):
        ex.batchnorm_forward(np.ones((1, 3, 1, 1)), np.ones(3), np.zeros(3))


# ===========================================================================
# Exercise 04: FC layers as convolutions
# ===========================================================================


def test_ex04_fc_weight_as_conv_kernel_equals_the_linear_layer(exercise):
    ex = exercise("ex04_fc_to_conv")
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(6, 4 * 3 * 3)), rng.normal(size=6)
    x = rng.normal(size=(2, 4, 3, 3))
    kernel = ex.fc_to_conv_weight(W, 4, 3, 3)
    as_conv = F.conv2d(torch.tensor(x), torch.tensor(kernel), torch.tensor(b))  # (2, 6, 1, 1)
    as_linear = F.linear(torch.tensor(x).flatten(1), torch.tensor(W), torch.tensor(b))
    assert_close(as_conv[:, :, 0, 0].numpy(), as_linear.numpy(), FLOAT64, name="FC as conv")
    assert_close(ex.conv2d_valid(x, kernel, b)[:, :, 0, 0], as_linear.numpy(), FLOAT64,
                 name="conv2d_valid")
    with pytest.raises(ValueError):
        ex.fc_to_conv_weight(W, 4, 3, 2)


def test_ex04_conv2d_valid_equals_F_conv2d(exercise):
    ex = exercise("ex04_fc_to_conv")
    rng = np.random.default_rng(1)
    x, kernel, b = rng.normal(size=(2, 3, 8, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    expected = F.conv2d(torch.tensor(x), torch.tensor(kernel), torch.tensor(b)).numpy()
    assert_close(ex.conv2d_valid(x, kernel, b), expected, FLOAT64, name="conv2d_valid")


def test_ex04_dense_scores_equal_the_level3_dense_vgg(exercise):
    ex = exercise("ex04_fc_to_conv")
    paper = import_lesson("04_VGG.paper.vgg_paper")
    torch.manual_seed(0)
    model = paper.VGG("A", num_classes=5, width=4, hidden=16, init="torchvision").double().eval()
    fcs = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    weights = [m.weight.detach().numpy() for m in fcs]
    biases = [m.bias.detach().numpy() for m in fcs]
    for size in ((224, 224), (288, 256)):
        x = torch.randn(1, 3, *size, dtype=torch.float64)
        with torch.no_grad():
            features = model.features(x).numpy()
            expected_map = paper.fully_convolutional(model)(x, return_map=True).numpy()
            logits = model(x).numpy()
        score_map, scores = ex.dense_class_scores(features, weights, biases)
        assert_close(score_map, expected_map, FLOAT64, name=f"score map {size}")
        assert_close(scores, expected_map.mean(axis=(2, 3)), FLOAT64, name=f"mean {size}")
        if size == (224, 224):  # one position: exactly the FC network's output
            assert_close(scores, logits, FLOAT64, name="dense == FC at 224")
