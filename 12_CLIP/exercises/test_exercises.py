"""Checks for the exercises of lesson 12, against references that do not share their code.

Run them on the reference solutions::

    pytest 12_CLIP/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 12_CLIP/exercises --solutions my_solutions

Every check compares with something computed another way: ``F.cross_entropy`` and
transformers' ``clip_loss``, open_clip's ``build_zero_shot_classifier``, ``torch.topk``,
transformers' ``CLIPModel`` built on the meta device, hand-made cases. None compares with the
reference solution itself.
"""

from __future__ import annotations

import math
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
# Exercise 01: the contrastive loss
# ===========================================================================


def _embeds(n=8, e=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, e)), rng.standard_normal((n, e))


def test_ex01_equals_cross_entropy_both_ways_and_transformers(exercise):
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    ex = exercise("ex01_contrastive_loss")
    images, texts = _embeds()
    logits = torch.from_numpy(np.asarray(ex.clip_logits(images, texts, math.log(1 / 0.07))))
    u = F.normalize(torch.from_numpy(images), dim=-1)
    v = F.normalize(torch.from_numpy(texts), dim=-1)
    assert_close(logits, (1 / 0.07) * u @ v.T, FLOAT64, name="logits")
    target = torch.arange(8)
    expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    loss = ex.clip_loss(images, texts, math.log(1 / 0.07))
    assert loss == pytest.approx(float(expected), rel=1e-12)
    # transformers takes the text-by-image matrix (logits_per_text)
    assert loss == pytest.approx(float(image_text_contrastive_loss(logits.T)), rel=1e-12)


def test_ex01_the_scale_is_clamped_at_100(exercise):
    ex = exercise("ex01_contrastive_loss")
    images, texts = _embeds(seed=1)
    at_cap = np.asarray(ex.clip_logits(images, texts, math.log(100)))
    beyond = np.asarray(ex.clip_logits(images, texts, 10.0))  # e^10 = 22,026 without the clamp
    assert_close(beyond, at_cap, FLOAT64, name="clamped logits")
    assert np.abs(beyond).max() <= 100 + 1e-9


@pytest.mark.parametrize("n", [2, 16, 256])
def test_ex01_no_information_costs_log_n(exercise, n):
    ex = exercise("ex01_contrastive_loss")
    same = np.ones((n, 4))  # every cosine is 1: nothing tells the pairs apart
    assert ex.clip_loss(same, same, math.log(1 / 0.07)) == pytest.approx(math.log(n), rel=1e-12)


def test_ex01_aligned_pairs_cost_almost_nothing(exercise):
    ex = exercise("ex01_contrastive_loss")
    basis = np.eye(6)  # six orthogonal pairs, image i == caption i
    assert ex.clip_loss(basis, 3 * basis, math.log(100)) < 1e-20 + 6 * math.exp(-100)


# ===========================================================================
# Exercise 02: zero-shot classifier
# ===========================================================================


class _StandIn:
    """A fixed random embedding per sentence: the same encoder for ours and open_clip's."""

    def __init__(self, dim=5, seed=0):
        self.rng, self.dim, self.table, self.sentences = np.random.default_rng(seed), dim, {}, []

    def encode(self, sentences):
        for s in sentences:
            self.table.setdefault(s, self.rng.standard_normal(self.dim))
        return np.stack([self.table[s] for s in sentences])

    # open_clip's side: tokenizer -> indices, model.encode_text(indices, normalize=True)
    def tokenizer(self, sentences):
        self.encode(sentences)
        self.sentences = list(self.table)
        return torch.tensor([self.sentences.index(s) for s in sentences])

    def encode_text(self, indices, normalize=True):
        rows = torch.from_numpy(np.stack([self.table[self.sentences[i]] for i in indices]))
        return F.normalize(rows, dim=-1) if normalize else rows


CLASSES = ["zero", "one", "two", "three"]
TEMPLATES = ["a photo of {}.", "the digit {}", "a drawing of the number {}", "{}"]


def test_ex02_weights_equal_open_clip(exercise):
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    ex = exercise("ex02_zero_shot")
    stand_in = _StandIn()
    ours = np.asarray(ex.zero_shot_weights(stand_in.encode, CLASSES, TEMPLATES))
    theirs = build_zero_shot_classifier(stand_in, stand_in.tokenizer, CLASSES, TEMPLATES,
                                        num_classes_per_batch=3)  # (E, K)
    assert_close(ours, theirs.T, FLOAT64, name="ensembled weights")
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0)
    shuffled = np.asarray(ex.zero_shot_weights(stand_in.encode, CLASSES, TEMPLATES[::-1]))
    assert_close(shuffled, ours, FLOAT64, name="template order")
    single = np.asarray(ex.zero_shot_weights(stand_in.encode, CLASSES, TEMPLATES[:1]))
    raw = stand_in.encode([TEMPLATES[0].format(c) for c in CLASSES])
    assert_close(single, raw / np.linalg.norm(raw, axis=1, keepdims=True), FLOAT64,
                 name="one template")


def test_ex02_predictions(exercise):
    ex = exercise("ex02_zero_shot")
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((4, 5))
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    images = rng.standard_normal((10, 5))
    probs, labels = ex.zero_shot_predict(images, weights, math.log(50))
    logits = 50 * F.normalize(torch.from_numpy(images), dim=-1) @ torch.from_numpy(weights).T
    assert_close(probs, logits.softmax(-1), FLOAT64, name="probabilities")
    assert np.array_equal(np.asarray(labels), logits.argmax(-1).numpy())


# ===========================================================================
# Exercise 03: retrieval
# ===========================================================================


@pytest.mark.parametrize("k", [1, 3, 5])
def test_ex03_equals_torch_topk(exercise, k):
    ex = exercise("ex03_retrieval")
    sim = torch.from_numpy(np.random.default_rng(k).standard_normal((12, 12)))
    truth = torch.arange(12)
    i2t = (sim.topk(k, dim=1).indices == truth[:, None]).any(1).double().mean()
    t2i = (sim.T.topk(k, dim=1).indices == truth[:, None]).any(1).double().mean()
    assert ex.recall_at_k(sim.numpy(), k) == pytest.approx((float(i2t), float(t2i)))


def test_ex03_several_captions_per_image_and_edges(exercise):
    ex = exercise("ex03_retrieval")
    # 2 images, 4 captions: captions 0, 1 belong to image 0; 2, 3 to image 1
    sim = np.array([[0.1, 0.9, 0.8, 0.2],
                    [0.7, 0.3, 0.6, 0.5]])
    owner = [0, 0, 1, 1]
    # image 0's best own caption (0.9) ranks first; image 1's best own (0.6) is behind 0.7
    # caption 0: its image 0 scores 0.1 < 0.7 -> rank 2; caption 1: 0.9 > 0.3 -> rank 1;
    # caption 2: image 1 scores 0.6 < 0.8 -> rank 2; caption 3: 0.5 > 0.2 -> rank 1
    assert ex.recall_at_k(sim, 1, owner) == pytest.approx((0.5, 0.5))
    assert ex.recall_at_k(sim, 2, owner) == pytest.approx((1.0, 1.0))
    assert ex.recall_at_k(np.eye(5), 1) == (1.0, 1.0)
    rand = np.random.default_rng(0).standard_normal((7, 7))
    recalls = [ex.recall_at_k(rand, k) for k in range(1, 8)]
    assert all(a <= b for a, b in zip(recalls, recalls[1:])) and recalls[-1] == (1.0, 1.0)


# ===========================================================================
# Exercise 04: parameter count
# ===========================================================================


def _hf_counts(image, patch, v_width, v_layers, vocab, context, t_width, t_layers, embed):
    import transformers

    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=vocab, max_position_embeddings=context, hidden_size=t_width,
                         intermediate_size=4 * t_width, num_hidden_layers=t_layers,
                         num_attention_heads=2, projection_dim=embed),
        vision_config=dict(image_size=image, patch_size=patch, hidden_size=v_width,
                           intermediate_size=4 * v_width, num_hidden_layers=v_layers,
                           num_attention_heads=2, projection_dim=embed),
        projection_dim=embed)
    with torch.device("meta"):  # shapes only
        models = (transformers.CLIPModel(config),
                  transformers.CLIPVisionModelWithProjection(config.vision_config),
                  transformers.CLIPTextModelWithProjection(config.text_config))
    return [sum(p.numel() for p in m.parameters()) for m in models]


@pytest.mark.parametrize("sizes", [(32, 8, 16, 2, 60, 12, 16, 2, 8),
                                   (48, 16, 24, 1, 100, 20, 32, 3, 12)])
def test_ex04_counts_equal_transformers(exercise, sizes):
    ex = exercise("ex04_parameter_count")
    image, patch, v_width, v_layers, vocab, context, t_width, t_layers, embed = sizes
    model, vision, text = _hf_counts(*sizes)
    assert ex.clip_parameter_count(*sizes) == model
    assert ex.vision_tower_count(image, patch, v_width, v_layers, embed) == vision
    assert ex.text_tower_count(vocab, context, t_width, t_layers, embed) == text


def test_ex04_vit_b_32(exercise):
    import transformers

    ex = exercise("ex04_parameter_count")
    with torch.device("meta"):
        model = transformers.CLIPModel(transformers.CLIPConfig())
    expected = sum(p.numel() for p in model.parameters())
    assert expected == 151_277_313
    assert ex.clip_parameter_count(224, 32, 768, 12, 49408, 77, 512, 12, 512) == expected
    assert ex.vision_tower_count(224, 32, 768, 12, 512) == 87_849_216
    assert ex.text_tower_count(49408, 77, 512, 12, 512) == 63_428_096
    with pytest.raises(ValueError):
        ex.vision_tower_count(225, 32, 768, 12, 512)
