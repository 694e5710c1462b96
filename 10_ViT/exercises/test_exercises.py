"""Checks for the exercises of lesson 10, against references that do not share their code.

Run them on the reference solutions::

    pytest 10_ViT/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 10_ViT/exercises --solutions my_solutions

Every check compares with something computed another way: ``F.conv2d`` and timm's
``PatchEmbed`` and ``VisionTransformer`` (on the meta device), ``F.interpolate``,
``torch.linalg.multi_dot``, hand-built cases. None compares with the reference solution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.testing import (
    FLOAT64,
    assert_close,
    check_exercise_files,
    check_learner_module,
    check_numpy_only,
    check_starter_left_to_learner,
    check_starter_matches_solution,
    exercise_names,
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
    """Your file defines every starter function with the same parameters, NumPy only."""
    check_learner_module(exercise(name), HERE, name)


# ===========================================================================
# Exercise 01: patches
# ===========================================================================

SHAPES = [((2, 3, 8, 8), 4), ((1, 3, 12, 8), (4, 2)), ((2, 1, 6, 15), (3, 5))]


@pytest.mark.parametrize("shape, patch", SHAPES, ids=["square", "tall", "odd-patch"])
def test_ex01_patch_embedding_is_a_strided_convolution(exercise, shape, patch):
    ex = exercise("ex01_patches")
    rng = np.random.default_rng(0)
    images = rng.standard_normal(shape)
    p_h, p_w = (patch, patch) if isinstance(patch, int) else patch
    weight, bias = rng.standard_normal((5, shape[1], p_h, p_w)), rng.standard_normal(5)
    conv = F.conv2d(torch.from_numpy(images), torch.from_numpy(weight), torch.from_numpy(bias),
                    stride=(p_h, p_w))  # (B, D, g_h, g_w)
    expected = conv.flatten(2).transpose(1, 2)  # (B, N, D), patches row by row
    assert_close(ex.patch_embedding(images, weight, bias, patch), expected, FLOAT64,
                 name="patch embedding")
    back = ex.unpatchify(ex.patchify(images, patch), shape[2:], patch, shape[1])
    assert np.array_equal(np.asarray(back), images)


def test_ex01_equals_timm_patch_embed(exercise):
    from timm.layers import PatchEmbed

    ex = exercise("ex01_patches")
    torch.manual_seed(0)
    timm_embed = PatchEmbed(img_size=(16, 24), patch_size=(8, 4), in_chans=3,
                            embed_dim=6).double()
    images = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        expected = timm_embed(images)
    ours = ex.patch_embedding(images.numpy(), timm_embed.proj.weight.detach().numpy(),
                              timm_embed.proj.bias.detach().numpy(), (8, 4))
    assert_close(ours, expected, FLOAT64, name="timm PatchEmbed")


def test_ex01_a_size_that_does_not_divide(exercise):
    ex = exercise("ex01_patches")
    with pytest.raises(ValueError, match="width"):
        ex.patchify(np.zeros((1, 3, 16, 18)), 4)


# ===========================================================================
# Exercise 02: parameter count
# ===========================================================================


def _timm_count(**kwargs) -> int:
    from timm.models.vision_transformer import VisionTransformer

    with torch.device("meta"):  # shapes only
        model = VisionTransformer(**kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("image, patch, D, L, K, class_token", [
    (32, 8, 16, 2, 10, True), ((24, 16), (8, 4), 24, 3, 0, True), (32, 16, 32, 1, 7, False)])
def test_ex02_counts_equal_timm(exercise, image, patch, D, L, K, class_token):
    ex = exercise("ex02_parameter_count")
    expected = _timm_count(img_size=image, patch_size=patch, embed_dim=D, depth=L,
                           num_heads=2, num_classes=K, class_token=class_token,
                           global_pool="token" if class_token else "avg",
                           fc_norm=False)
    assert ex.vit_parameter_count(image, patch, D, L, K, class_token=class_token) == expected


def test_ex02_vit_base(exercise):
    ex = exercise("ex02_parameter_count")
    assert ex.vit_parameter_count(224, 16, 768, 12, 1000) == 86_567_656
    assert ex.vit_parameter_count(224, 16, 768, 12, 1000) == _timm_count()
    assert ex.share_in_blocks(224, 16, 768, 12, 1000) > 0.98
    with pytest.raises(ValueError):
        ex.vit_parameter_count(225, 16, 768, 12, 1000)


# ===========================================================================
# Exercise 03: resampling position embeddings
# ===========================================================================


@pytest.mark.parametrize("old, new", [((4, 4), (6, 6)), ((6, 6), (4, 4)), ((4, 4), (3, 7)),
                                      ((2, 5), (5, 2))])
def test_ex03_equals_torch_bilinear(exercise, old, new):
    ex = exercise("ex03_resample_positions")
    table = np.random.default_rng(0).standard_normal((1 + old[0] * old[1], 5))
    grid = torch.from_numpy(table[1:]).reshape(1, *old, 5).permute(0, 3, 1, 2)  # (1, D, g_h, g_w)
    resized = F.interpolate(grid, size=new, mode="bilinear", align_corners=False)
    expected = resized.permute(0, 2, 3, 1).reshape(-1, 5)  # (g'_h g'_w, D) row-major
    out = np.asarray(ex.resample_positions(table, old, new))
    assert out.shape == (1 + new[0] * new[1], 5)
    assert np.array_equal(out[0], table[0]), "the [CLS] row must be kept as it is"
    assert_close(out[1:], expected, FLOAT64, name=f"{old} -> {new}")


def test_ex03_same_grid_and_layout(exercise):
    ex = exercise("ex03_resample_positions")
    table = np.random.default_rng(1).standard_normal((1 + 12, 3))
    assert_close(ex.resample_positions(table, (3, 4), (3, 4)), table, FLOAT64, name="same")
    rows = np.repeat(np.arange(3.0), 4)[:, None] * np.ones((1, 2))  # value = patch's row
    table = np.concatenate([np.zeros((1, 2)), rows])
    out = np.asarray(ex.resample_positions(table, (3, 4), (3, 8)))[1:].reshape(3, 8, 2)
    assert np.allclose(out, np.arange(3.0)[:, None, None]), "rows must stay rows"


# ===========================================================================
# Exercise 04: attention rollout
# ===========================================================================


def _attentions(L=3, h=2, T=5, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(L):
        scores = rng.standard_normal((h, T, T)) * 2
        out.append(np.exp(scores) / np.exp(scores).sum(-1, keepdims=True))
    return out


def test_ex04_equals_a_product_computed_with_torch(exercise):
    ex = exercise("ex04_attention_rollout")
    attentions = _attentions()
    mixed = [0.5 * (torch.from_numpy(a).mean(0) + torch.eye(5, dtype=torch.float64))
             for a in attentions]
    expected = torch.linalg.multi_dot(mixed[::-1])  # A~_L ... A~_1
    rollout = np.asarray(ex.attention_rollout(attentions))
    assert_close(rollout, expected, FLOAT64, name="rollout")
    assert np.allclose(rollout.sum(-1), 1.0)
    heat = np.asarray(ex.cls_map(rollout, (2, 2)))
    assert heat.shape == (2, 2) and np.isclose(heat.sum(), 1.0)
    assert_close(heat.ravel(), rollout[0, 1:] / rollout[0, 1:].sum(), FLOAT64, name="cls map")


def test_ex04_special_cases(exercise):
    ex = exercise("ex04_attention_rollout")
    same = _attentions(L=1)[0]
    one = 0.5 * (same.mean(0) + np.eye(5))
    assert_close(ex.attention_rollout([same] * 4), np.linalg.matrix_power(one, 4), FLOAT64,
                 name="identical blocks")
    identity = np.broadcast_to(np.eye(5), (2, 5, 5))
    assert_close(ex.attention_rollout([identity] * 3), np.eye(5), FLOAT64, name="identity")
    focused = np.full((2, 5, 5), 0.25 * 0.0) + np.eye(5)
    focused[:, 0] = 0.0
    focused[:, 0, 3] = 1.0  # [CLS] reads patch 3 (token 3) in every block
    heat = np.asarray(ex.cls_map(ex.attention_rollout([focused] * 3), (2, 2)))
    assert heat.ravel().argmax() == 2  # token 3 is patch 2 once [CLS] is dropped
    with pytest.raises(ValueError):
        ex.attention_rollout([])
