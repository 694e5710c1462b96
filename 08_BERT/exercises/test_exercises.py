"""Checks for the exercises of lesson 08, against references that do not share their code.

Run them on the reference solutions::

    pytest 08_BERT/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 08_BERT/exercises --solutions my_solutions

Every check compares with something computed another way: transformers' ``BertModel`` and
``BertTokenizer``, ``F.scaled_dot_product_attention``, published parameter counts, binomial
bounds. None compares with the reference solution itself.
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
# Exercise 01: parameter counts
# ===========================================================================


def _hf_count(model_class: str, **sizes) -> int:
    import transformers

    config = transformers.BertConfig(**sizes)
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = getattr(transformers, model_class)(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("V, H, L, F_, P", [(100, 16, 2, 64, 32), (500, 48, 3, 100, 64),
                                             (30522, 128, 2, 512, 512)])
def test_ex01_counts_equal_transformers(exercise, V, H, L, F_, P):
    ex = exercise("ex01_parameter_count")
    sizes = dict(vocab_size=V, hidden_size=H, num_hidden_layers=L, intermediate_size=F_,
                 max_position_embeddings=P, num_attention_heads=4 if H % 4 == 0 else 1)
    assert ex.bert_parameter_count(V, H, L, F_, max_len=P) == _hf_count("BertModel", **sizes)
    no_pooler = ex.bert_parameter_count(V, H, L, F_, max_len=P, pooler=False)
    # BertForMaskedLM has no pooler; its head's decoder weight is the embedding matrix
    assert no_pooler + ex.mlm_head_parameter_count(V, H) == _hf_count("BertForMaskedLM", **sizes)


def test_ex01_the_papers_models(exercise):
    ex = exercise("ex01_parameter_count")
    assert ex.bert_parameter_count(30522, 768, 12, 3072) == 109_482_240  # BERT-base, "110M"
    assert ex.bert_parameter_count(30522, 1024, 24, 4096) == 335_141_888  # BERT-large, "340M"
    assert ex.bert_parameter_count(30522, 768, 12, 3072, pooler=False) == 108_891_648
    assert ex.embedding_share(30522, 768, 12, 3072) == pytest.approx(23_440_896 / 109_482_240)
    with pytest.raises(ValueError):
        ex.bert_parameter_count(30522, 0, 12, 3072)


# ===========================================================================
# Exercise 02: WordPiece
# ===========================================================================

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "ab",
         "##bc", "##c", "##b", "play", "##ing", "##ed", "##s", "runn", "##er", "x"]


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    from transformers import BertTokenizer

    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer(str(path), do_lower_case=False)


WORDS = ["unaffable", "abc", "playing", "played", "plays", "runner", "runners", "xyz", "x",
         "ab", "abcbc", "unplay", "x" * 101, "x" * 100]


@pytest.mark.parametrize("word", WORDS, ids=lambda w: w[:12])
def test_ex02_pieces_equal_bert_tokenizer(exercise, hf_tokenizer, word):
    ex = exercise("ex02_wordpiece")
    assert ex.wordpiece(word, set(VOCAB)) == hf_tokenizer.tokenize(word)


def test_ex02_greedy_is_not_optimal_and_ids_follow_the_vocabulary(exercise, hf_tokenizer):
    ex = exercise("ex02_wordpiece")
    assert ex.wordpiece("abc", set(VOCAB)) == ["ab", "##c"]  # not ["a", "##bc"]
    assert ex.wordpiece("unaffable", set(VOCAB)) == ["un", "##aff", "##able"]
    assert ex.wordpiece("xyz", set(VOCAB)) == ["[UNK]"]  # the whole word, not ["x", "[UNK]"]
    words = ["unaffable", "playing", "xyz"]
    expected = hf_tokenizer.convert_tokens_to_ids(hf_tokenizer.tokenize(" ".join(words)))
    assert ex.wordpiece_ids(words, VOCAB) == expected


# ===========================================================================
# Exercise 03: masking
# ===========================================================================


def _corpus(B=400, T=500, V=1000, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, V, size=(B, T))
    special = np.zeros((B, T), dtype=bool)
    special[:, 0] = special[:, -1] = True  # [CLS] ... [SEP]
    special[: B // 2, -50:] = True  # padding at the end of half the rows
    ids[special] = 0
    return ids, special


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * np.sqrt(n * p * (1 - p))


def test_ex03_proportions_follow_section_3_1(exercise):
    ex = exercise("ex03_masking")
    ids, special = _corpus()
    before = ids.copy()
    out, labels = ex.mask_tokens(ids, special, 1000, 4, np.random.default_rng(1))
    assert np.array_equal(ids, before), "input_ids were modified in place"
    chosen = labels != -100
    eligible = int((~special).sum())
    assert _within(int(chosen.sum()), eligible, 0.15)
    assert not chosen[special].any() and np.array_equal(out[special], ids[special])
    assert np.array_equal(labels[chosen], ids[chosen]) and np.array_equal(out[~chosen],
                                                                           ids[~chosen])
    n = int(chosen.sum())
    masked = int((out[chosen] == 4).sum())
    unchanged = int((out[chosen] == ids[chosen]).sum())
    # a random draw lands on [MASK] or on the original token 1 time in 1000 each
    assert _within(masked, n, 0.8 + 0.1 / 1000)
    assert _within(unchanged, n, 0.1 + 0.1 / 1000)
    assert _within(n - masked - unchanged, n, 0.1 - 0.2 / 1000)


def test_ex03_random_replacements_are_uniform_and_seeded(exercise):
    ex = exercise("ex03_masking")
    ids, special = _corpus(B=1000, T=500, V=10)
    ids[~special] = 7  # one token everywhere: a random replacement is visible unless it is 7
    out, labels = ex.mask_tokens(ids, special, 10, 4, np.random.default_rng(2))
    chosen = labels != -100
    replaced = out[chosen & (out != 4) & (out != 7)]
    counts = np.bincount(replaced, minlength=10)
    expected = len(replaced) / 8  # uniform over the 10 ids, 4 and 7 not counted
    for token in [0, 1, 2, 3, 5, 6, 8, 9]:
        assert abs(counts[token] - expected) <= 5 * np.sqrt(expected), counts
    again = ex.mask_tokens(ids, special, 10, 4, np.random.default_rng(2))
    assert np.array_equal(again[0], out) and np.array_equal(again[1], labels)


# ===========================================================================
# Exercise 04: the extended attention mask
# ===========================================================================


def test_ex04_extended_mask_values(exercise):
    ex = exercise("ex04_attention_mask")
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    ext = ex.extended_attention_mask(mask, np.float32)
    assert ext.shape == (2, 1, 1, 3) and ext.dtype == np.float32
    assert np.array_equal(ext[:, 0, 0], np.where(mask == 1, 0.0, np.finfo(np.float32).min))


def test_ex04_attention_equals_sdpa_and_ignores_padding(exercise):
    ex = exercise("ex04_attention_mask")
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out = ex.masked_attention(q, k, v, mask)
    keep = torch.tensor(mask, dtype=torch.bool)[:, None, None, :]
    expected = F.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)),
                                              attn_mask=keep)
    assert_close(out, expected, FLOAT64, name="masked attention")
    k2, v2 = k.copy(), v.copy()
    k2[1, :, 3:] = 100.0  # anything at the padded positions
    v2[1, :, 3:] = -7.0
    changed = ex.masked_attention(q, k2, v2, mask)
    assert_close(changed, out, FLOAT64, name="outputs after changing padded keys and values")
