"""Checks for the exercises of lesson 05, against references that do not share their code.

Run them on the reference solutions::

    pytest 05_ResNet/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 05_ResNet/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another way:
loops written out in the test, PyTorch autograd, torchvision's ResNets (their parameter
counts, the multiply-adds its weight tables record, forward hooks that count products),
``torch.nn.utils.fusion.fuse_conv_bn_eval``, the figures of Table 1 of He et al. (2015).
None compares with the reference solution itself, which would let a copy of a bug pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import resnet as tv

from utils.testing import (
    FLOAT64,
    assert_close,
    check_exercise_files,
    check_learner_module,
    check_starter_left_to_learner,
    check_starter_matches_solution,
    exercise_names,
)

HERE = Path(__file__).resolve().parent
EXERCISES = exercise_names(HERE)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


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


@pytest.mark.parametrize("name", EXERCISES)
def test_your_file_has_the_expected_functions(exercise, name):
    """Your file (or the reference) defines every starter function, with the same parameters."""
    check_learner_module(exercise(name), HERE, name)


# ===========================================================================
# Exercise 01: the option-A shortcut
# ===========================================================================


def option_a_by_loops(x: torch.Tensor, c_out: int, stride: int, before: int) -> torch.Tensor:
    """The shortcut written pixel by pixel: out[n, before + c, i, j] = x[n, c, s i, s j]."""
    n, c_in, h, w = x.shape
    h_out, w_out = -(-h // stride), -(-w // stride)  # ceil division
    out = torch.zeros(n, c_out, h_out, w_out, dtype=x.dtype)
    for c in range(c_in):
        for i in range(h_out):
            for j in range(w_out):
                out[:, before + c, i, j] = x[:, c, stride * i, stride * j]
    return out


@pytest.mark.parametrize("shape,c_out,stride", [
    ((2, 16, 32, 32), 32, 2),  # CIFAR stage 1 -> 2
    ((1, 32, 16, 16), 64, 2),  # stage 2 -> 3
    ((2, 3, 7, 9), 8, 2),  # odd sizes: ceil(7 / 2) = 4 rows
    ((1, 4, 6, 6), 4, 1),  # same shape: the identity
    ((1, 2, 10, 11), 7, 3),  # stride 3, an odd number of new channels
])
@pytest.mark.parametrize("where", ["end", "both"])
def test_ex01_option_a_matches_a_loop(exercise, shape, c_out, stride, where):
    ex = exercise("ex01_option_a_shortcut")
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    before = (c_out - shape[1]) // 2 if where == "both" else 0
    y = ex.option_a_shortcut(x, c_out, stride, where)
    assert y.shape == option_a_by_loops(x, c_out, stride, before).shape
    assert_close(y, option_a_by_loops(x, c_out, stride, before), FLOAT64, name="option A")


def test_ex01_option_a_reads_the_pixels_of_a_strided_1x1_convolution(exercise):
    """Subsampling by s equals a 1x1 convolution with stride s and an identity kernel."""
    ex = exercise("ex01_option_a_shortcut")
    x = torch.randn(2, 5, 9, 8, dtype=torch.float64)
    eye = torch.eye(5, dtype=torch.float64).reshape(5, 5, 1, 1)
    assert_close(ex.option_a_shortcut(x, 5, 2), F.conv2d(x, eye, stride=2), FLOAT64,
                 name="subsampled x")


def test_ex01_option_a_gradient_reaches_only_the_kept_pixels(exercise):
    """Autograd: d sum(y) / dx is 1 at the pixels (s i, s j) and 0 elsewhere, no parameters."""
    ex = exercise("ex01_option_a_shortcut")
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    ex.option_a_shortcut(x, 6, 2).sum().backward()
    expected = torch.zeros(1, 3, 6, 6, dtype=torch.float64)
    expected[:, :, ::2, ::2] = 1.0
    assert torch.equal(x.grad, expected)


def test_ex01_option_b_costs_what_torchvision_downsample_costs(exercise):
    """Option B adds exactly the parameters of torchvision's ``downsample`` modules."""
    ex = exercise("ex01_option_a_shortcut")
    projection = nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False), nn.BatchNorm2d(128))
    assert ex.option_b_parameter_count(64, 128) == sum(p.numel() for p in projection.parameters())
    for builder, layers, block in [(tv.resnet18, (2, 2, 2, 2), "basic"),
                                   (tv.resnet50, (3, 4, 6, 3), "bottleneck")]:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = builder()
        downsample = sum(p.numel() for name, p in model.named_parameters()
                         if ".downsample." in name)
        assert ex.shortcut_parameter_overhead(layers, block) == downsample, builder.__name__


def test_ex01_functions_reject_bad_input(exercise):
    ex = exercise("ex01_option_a_shortcut")
    with pytest.raises(ValueError):
        ex.option_a_shortcut(torch.zeros(3, 8, 8), 6)  # not 4-D
    with pytest.raises(ValueError):
        ex.option_a_shortcut(torch.zeros(1, 8, 4, 4), 4)  # fewer output channels
    with pytest.raises(ValueError):
        ex.option_a_shortcut(torch.zeros(1, 2, 4, 4), 4, where="middle")
    with pytest.raises(ValueError):
        ex.option_b_parameter_count(0, 4)


# ===========================================================================
# Exercise 02: parameters and multiply-adds of Table 1
# ===========================================================================

TABLE_1 = {  # depth: (block, layers, torchvision builder, weights enum, paper GFLOPs)
    18: ("basic", (2, 2, 2, 2), tv.ResNet18_Weights, 1.8),
    34: ("basic", (3, 4, 6, 3), tv.ResNet34_Weights, 3.6),
    50: ("bottleneck", (3, 4, 6, 3), tv.ResNet50_Weights, 3.8),
    101: ("bottleneck", (3, 4, 23, 3), tv.ResNet101_Weights, 7.6),
    152: ("bottleneck", (3, 8, 36, 3), tv.ResNet152_Weights, 11.3),
}


@pytest.mark.parametrize("depth", sorted(TABLE_1))
def test_ex02_parameter_counts_equal_torchvision(exercise, depth):
    """torchvision records each model's parameter count with its weights (no download)."""
    ex = exercise("ex02_resnet_complexity")
    block, layers, weights, _ = TABLE_1[depth]
    assert ex.resnet_parameter_count(block, layers) == weights.IMAGENET1K_V1.meta["num_params"]


def test_ex02_parameter_count_of_a_built_model(exercise):
    """A model with 10 classes, counted by nn.Module.parameters()."""
    ex = exercise("ex02_resnet_complexity")
    model = tv.ResNet(tv.BasicBlock, [1, 1, 1, 1], num_classes=10)
    assert ex.resnet_parameter_count("basic", (1, 1, 1, 1), 10) == sum(
        p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", sorted(TABLE_1))
def test_ex02_multiply_adds_match_the_paper_and_torchvision(exercise, depth):
    """Table 1 of the paper (stride on the 1x1; its figures are cut to one decimal, within
    0.07e9) and torchvision's recorded GFLOPs of its v1.5 models (stride on the 3x3)."""
    ex = exercise("ex02_resnet_complexity")
    block, layers, weights, paper = TABLE_1[depth]
    v1 = ex.resnet_multiply_adds(block, layers, 224, "1x1") / 1e9
    v15 = ex.resnet_multiply_adds(block, layers, 224, "3x3") / 1e9
    assert abs(v1 - paper) < 0.07, f"ResNet-{depth}: {v1:.3f}e9 vs Table 1's {paper}e9"
    assert round(v15, 3) == weights.IMAGENET1K_V1.meta["_ops"], f"ResNet-{depth}: {v15:.4f}"
    if block == "basic":  # no 1x1 convolutions: where the stride sits changes nothing
        assert v1 == v15
    else:  # the first 1x1 of a strided block runs on 4x the pixels in v1.5
        assert v15 > v1


def counted_multiply_adds(model: nn.Module, size: int) -> int:
    """Products of every Conv2d and Linear in one forward pass, counted by forward hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * (module.in_channels // module.groups) * k
        else:
            total += module.in_features * module.out_features * output.shape[0]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("block,layers,size", [
    ("basic", (1, 1, 1, 1), 64), ("basic", (2, 1, 1, 2), 96),
    ("bottleneck", (1, 1, 1, 1), 64), ("bottleneck", (1, 2, 1, 1), 80),
])
def test_ex02_multiply_adds_match_hooks_on_a_torchvision_model(exercise, block, layers, size):
    """torchvision strides the 3x3 (v1.5): stride_on='3x3' must count its products exactly."""
    ex = exercise("ex02_resnet_complexity")
    cls = tv.BasicBlock if block == "basic" else tv.Bottleneck
    model = tv.ResNet(cls, list(layers), num_classes=7)
    assert ex.resnet_multiply_adds(block, layers, size, "3x3", 7) == counted_multiply_adds(
        model, size)


def test_ex02_functions_reject_bad_input(exercise):
    ex = exercise("ex02_resnet_complexity")
    with pytest.raises(ValueError):
        ex.resnet_parameter_count("plain", (2, 2, 2, 2))
    with pytest.raises(ValueError):
        ex.resnet_parameter_count("basic", (2, 2, 2))  # three stages
    with pytest.raises(ValueError):
        ex.resnet_multiply_adds("bottleneck", (3, 4, 6, 3), stride_on="7x7")
    with pytest.raises(ValueError):
        ex.resnet_multiply_adds("basic", (2, 2, 2, 2), image_size=16)


# ===========================================================================
# Exercise 03: folding BatchNorm into the convolution
# ===========================================================================


def randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial statistics and affine parameters (fresh ones are 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                dtype = m.running_mean.dtype
                m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=dtype))
                m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=dtype) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g, dtype=dtype))
                m.bias.copy_(torch.randn(m.num_features, generator=g, dtype=dtype))
    return module


@pytest.mark.parametrize("conv_kwargs", [
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, bias=False),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, bias=True),
    dict(in_channels=6, out_channels=6, kernel_size=3, padding=2, dilation=2, groups=3),
    dict(in_channels=3, out_channels=8, kernel_size=7, stride=2, padding=3, bias=False),
])
def test_ex03_fold_bn_matches_torch_fusion_and_the_pair(exercise, conv_kwargs):
    """Against torch's own fuse_conv_bn_eval, and against bn(conv(x)) in eval mode."""
    ex = exercise("ex03_fold_batchnorm")
    conv = nn.Conv2d(**conv_kwargs).double()
    bn = randomise_bn(nn.BatchNorm2d(conv.out_channels).double()).eval()
    before = {k: v.clone() for k, v in {**conv.state_dict(), **bn.state_dict()}.items()}
    fused = ex.fold_bn(conv, bn)
    reference = fuse_conv_bn_eval(conv.eval(), bn)
    assert_close(fused.weight, reference.weight, FLOAT64, name="folded weight")
    assert_close(fused.bias, reference.bias, FLOAT64, name="folded bias")
    x = torch.randn(2, conv.in_channels, 11, 10, dtype=torch.float64)
    with torch.no_grad():
        assert_close(fused(x), bn(conv(x)), FLOAT64, name="conv + BN")
    after = {**conv.state_dict(), **bn.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before), "fold_bn changed its inputs"


def test_ex03_fold_bn_parameters_by_hand(exercise):
    """One channel: gamma 2, beta 1, mean 3, var 3 (eps 1): a = 1, W' = W, b' = b - 3 + 1."""
    ex = exercise("ex03_fold_batchnorm")
    weight = torch.arange(9.0, dtype=torch.float64).reshape(1, 1, 3, 3)
    ones = torch.ones(1, dtype=torch.float64)
    w, b = ex.fold_bn_parameters(weight, 5 * ones, 3 * ones, 3 * ones, 2 * ones, ones, eps=1.0)
    assert_close(w, weight, FLOAT64, name="W'")
    assert_close(b, 3 * ones, FLOAT64, name="b'")


@pytest.mark.parametrize("stride,c_in,c_out", [(1, 8, 8), (2, 8, 16)])
def test_ex03_folded_torchvision_block_gives_the_same_outputs(exercise, stride, c_in, c_out):
    """A torchvision BasicBlock (with its projection shortcut when it downsamples), in eval."""
    ex = exercise("ex03_fold_batchnorm")
    downsample = None
    if stride != 1 or c_in != c_out:
        downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                   nn.BatchNorm2d(c_out))
    block = randomise_bn(tv.BasicBlock(c_in, c_out, stride, downsample).double(), seed=1).eval()
    folded = ex.fold_basic_block(block)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert n_bn == 0, f"{n_bn} BatchNorm layers left in the folded block"
    x = torch.randn(2, c_in, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        assert_close(folded(x), block(x), FLOAT64, name="folded block")


def test_ex03_folding_is_wrong_in_training_mode(exercise):
    """In training BN uses the batch's statistics: the folded conv must differ then."""
    ex = exercise("ex03_fold_batchnorm")
    conv = nn.Conv2d(3, 4, 3).double()
    bn = randomise_bn(nn.BatchNorm2d(4).double())
    fused = ex.fold_bn(conv, bn.eval())
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert (fused(x) - bn.train()(conv(x))).abs().max() > 1e-2


def test_ex03_functions_reject_bad_input(exercise):
    ex = exercise("ex03_fold_batchnorm")
    with pytest.raises(ValueError):
        ex.fold_bn(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5))  # 4 channels vs 5
    with pytest.raises(TypeError):
        ex.fold_bn(nn.Linear(3, 4), nn.BatchNorm2d(4))
    with pytest.raises(ValueError):
        ex.fold_bn(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ValueError):
        ex.fold_bn_parameters(torch.zeros(4, 3, 3, 3), None, *[torch.zeros(3)] * 4)


# ===========================================================================
# Exercise 04: receptive fields of the stages
# ===========================================================================


def main_path_layers(model: nn.Module, upto: str) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of conv1, the max pool and every main-path conv of the
    stages up to ``upto``, read from a torchvision model's modules in forward order."""
    chain = [(model.conv1.kernel_size[0], model.conv1.stride[0], model.conv1.padding[0]),
             (model.maxpool.kernel_size, model.maxpool.stride, model.maxpool.padding)]
    stages = ("stem", "layer1", "layer2", "layer3", "layer4")
    for stage in stages[1:stages.index(upto) + 1]:
        for block in getattr(model, stage):
            for name in ("conv1", "conv2", "conv3"):
                conv = getattr(block, name, None)
                if conv is not None:
                    chain.append((conv.kernel_size[0], conv.stride[0], conv.padding[0]))
    return chain


def autograd_field(layers, size: int) -> tuple[int, int, int]:
    """(first input row, number of rows, unit) of the middle unit's field, by autograd
    through one-channel convolutions with positive kernels (nothing cancels). Square
    windows act on rows and columns alike, so one image row (1-D convolutions) suffices."""
    x = torch.ones(1, 1, size, dtype=torch.float64, requires_grad=True)
    h = x
    for k, s, p in layers:
        h = F.conv1d(h, torch.ones(1, 1, k, dtype=torch.float64), stride=s, padding=p)
    unit = h.shape[2] // 2
    h[0, 0, unit].backward()
    rows = torch.nonzero(x.grad[0, 0]).flatten()
    return int(rows[0]), int(rows[-1] - rows[0] + 1), unit


@pytest.mark.parametrize("builder,block,layers,size", [
    (tv.resnet18, "basic", (2, 2, 2, 2), 600),
    (tv.resnet34, "basic", (3, 4, 6, 3), 1000),
    (tv.resnet50, "bottleneck", (3, 4, 6, 3), 700),
])
def test_ex04_fields_match_autograd_through_torchvision_layers(exercise, builder, block, layers,
                                                               size):
    """The main path of a real torchvision model (stride on the 3x3), stage by stage."""
    ex = exercise("ex04_receptive_field")
    fields = ex.resnet_receptive_fields(block, layers, "3x3")
    with torch.device("meta"):  # only the layers' settings are read: no weights needed
        model = builder()
    for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):
        r, j, start = (int(v) for v in fields[stage])
        first, length, unit = autograd_field(main_path_layers(model, stage), size)
        assert 0 < first and first + length < size, "test design: the field touches the border"
        assert (length, first) == (r, start + unit * j), (
            f"{builder.__name__} {stage}: autograd gives rows {first}..{first + length - 1} for "
            f"unit {unit}; (r, j, start) = {(r, j, start)}")


def test_ex04_resnet18_fields_by_hand(exercise):
    """r = 11, 43, 99, 211, 435 and j = 4, 4, 8, 16, 32 (theory: r' = r + 2 j per 3x3)."""
    ex = exercise("ex04_receptive_field")
    fields = ex.resnet_receptive_fields("basic", (2, 2, 2, 2))
    assert [tuple(int(v) for v in fields[s][:2]) for s in
            ("stem", "layer1", "layer2", "layer3", "layer4")] == [
        (11, 4), (43, 4), (99, 8), (211, 16), (435, 32)]


def test_ex04_layer1_and_layer2_fields_in_the_real_network(exercise):
    """The full multi-channel ResNet-18 (max pool swapped for an average pool of the same
    window, whose gradient reaches every pixel of its window) agrees for layer1 and layer2."""
    ex = exercise("ex04_receptive_field")
    fields = ex.resnet_receptive_fields("basic", (2, 2, 2, 2))
    model = tv.resnet18().double().eval()
    model.maxpool = nn.AvgPool2d(3, 2, 1)
    with torch.no_grad():  # positive weights: no cancellation anywhere
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
    x = torch.ones(1, 3, 128, 128, dtype=torch.float64, requires_grad=True)
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for stage in ("layer1", "layer2"):
        h = getattr(model, stage)(h)
        unit = h.shape[2] // 2
        (grad,) = torch.autograd.grad(h[0, 0, unit, unit], x, retain_graph=True)
        rows = torch.nonzero(grad[0].sum(dim=(0, 2))).flatten()
        r, j, start = (int(v) for v in fields[stage])
        assert (int(rows[-1] - rows[0] + 1), int(rows[0])) == (r, start + unit * j), stage


def test_ex04_the_stride_place_changes_bottleneck_fields(exercise):
    """Striding the 1x1 lets the following 3x3 work at the doubled jump: a larger field."""
    ex = exercise("ex04_receptive_field")
    v1 = ex.resnet_receptive_fields("bottleneck", (3, 4, 6, 3), "1x1")
    v15 = ex.resnet_receptive_fields("bottleneck", (3, 4, 6, 3), "3x3")
    assert v1["layer1"] == v15["layer1"]  # no stride in layer1
    for stage in ("layer2", "layer3", "layer4"):
        assert v1[stage][1] == v15[stage][1]  # same jump
    # the 3x3 of each strided block adds 2 j_new instead of 2 j_old = j_new pixels, and
    # the differences add up: j_new = 8, then + 16, then + 32
    assert [v1[s][0] - v15[s][0] for s in ("layer2", "layer3", "layer4")] == [8, 24, 56]


def test_ex04_functions_reject_bad_input(exercise):
    ex = exercise("ex04_receptive_field")
    with pytest.raises(ValueError):
        ex.layer_receptive_field(1, 1, 0, kernel=0)
    with pytest.raises(ValueError):
        ex.resnet_receptive_fields("basic", (2, 2))
    with pytest.raises(ValueError):
        ex.resnet_receptive_fields("bottleneck", (3, 4, 6, 3), "5x5")

