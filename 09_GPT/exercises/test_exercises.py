"""Checks for the exercises of lesson 09, against references that do not share their code.

Run them on the reference solutions::

    pytest 09_GPT/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 09_GPT/exercises --solutions my_solutions

Every check compares with something computed another way: transformers' GPT-2 and GPT-1
models (built on the meta device or from tiny random configs) and logits warpers,
``F.scaled_dot_product_attention``, the ``tokenizers`` library's BPE model, binomial bounds,
a replay of the merges. None compares with the reference solution itself.
"""

from __future__ import annotations

from collections import Counter
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


def _hf_count(model_class: str, config_class: str, **sizes) -> int:
    import transformers

    config = getattr(transformers, config_class)(**sizes)
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = getattr(transformers, model_class)(config)
    return sum(p.numel() for p in model.parameters())  # the tied lm_head counted once


@pytest.mark.parametrize("V, P, D, L, F_", [(100, 32, 16, 2, None), (500, 64, 48, 3, 100),
                                             (50257, 1024, 64, 2, None)])
def test_ex01_counts_equal_transformers(exercise, V, P, D, L, F_):
    ex = exercise("ex01_parameter_count")
    gpt2 = _hf_count("GPT2LMHeadModel", "GPT2Config", vocab_size=V, n_positions=P, n_embd=D,
                     n_layer=L, n_head=4 if D % 4 == 0 else 1, n_inner=F_)
    assert ex.gpt_parameter_count(V, P, D, L, d_ff=F_) == gpt2
    if F_ is None:  # OpenAIGPTConfig has no inner width: always 4D
        gpt1 = _hf_count("OpenAIGPTLMHeadModel", "OpenAIGPTConfig", vocab_size=V,
                         n_positions=P, n_embd=D, n_layer=L, n_head=4 if D % 4 == 0 else 1)
        assert ex.gpt_parameter_count(V, P, D, L, final_norm=False) == gpt1


def test_ex01_the_papers_models(exercise):
    ex = exercise("ex01_parameter_count")
    assert ex.gpt_parameter_count(50257, 1024, 768, 12) == 124_439_808  # GPT-2 small
    assert ex.gpt_parameter_count(50257, 1024, 1600, 48) == 1_557_611_200  # GPT-2 XL
    assert ex.gpt_parameter_count(40478, 512, 768, 12, final_norm=False) == 116_534_784
    with pytest.raises(ValueError):
        ex.gpt_parameter_count(50257, 1024, 0, 12)


@pytest.mark.parametrize("published, D, L", [(117e6, 768, 12), (345e6, 1024, 24),
                                              (762e6, 1280, 36), (1542e6, 1600, 48)])
def test_ex01_the_published_sizes_point_to_gpt1s_vocabulary(exercise, published, D, L):
    ex = exercise("ex01_parameter_count")
    vocabulary = ex.vocabulary_behind_a_figure(int(published), 1024, D, L)
    assert abs(vocabulary - 40478) / 40478 < 0.02, vocabulary  # not GPT-2's 50,257


# ===========================================================================
# Exercise 02: causal attention with left padding
# ===========================================================================


def _qkv(B=3, h=2, T=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, h, T, d)) for _ in range(3)]


def test_ex02_causal_attention_equals_torch(exercise):
    ex = exercise("ex02_causal_attention")
    q, k, v = _qkv()
    expected = F.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), is_causal=True)
    assert_close(ex.causal_attention(q, k, v), expected, FLOAT64, name="causal attention")


def test_ex02_padding_mask_and_fully_masked_rows(exercise):
    ex = exercise("ex02_causal_attention")
    q, k, v = _qkv()
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]])  # left padded
    out = np.asarray(ex.causal_attention(q, k, v, mask))
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()[None, None] & torch.from_numpy(
        mask.astype(bool))[:, None, None, :]  # (B, 1, T, T)
    expected = F.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)),
                                              attn_mask=allowed)
    # real queries always see at least themselves; compare them with torch
    assert_close(_real_rows(out, mask), _real_rows(expected.numpy(), mask), FLOAT64,
                 name="padded attention, real queries")
    padded_queries = out.transpose(0, 2, 1, 3)[mask == 0]  # (n_padded, h, d)
    assert np.all(padded_queries == 0), "a query that sees no key must give zeros, not NaN"


def _real_rows(attention: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, h, T, d) -> (n_real, h, d): the outputs at real query positions."""
    return attention.transpose(0, 2, 1, 3)[mask == 1]


def test_ex02_a_future_token_changes_nothing_before_it(exercise):
    ex = exercise("ex02_causal_attention")
    q, k, v = _qkv()
    before = np.asarray(ex.causal_attention(q, k, v))
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 4], v2[:, :, 4] = 10.0, -10.0  # change position 4's key and value
    after = np.asarray(ex.causal_attention(q, k2, v2))
    assert np.array_equal(before[:, :, :4], after[:, :, :4])
    assert not np.allclose(before[:, :, 4:], after[:, :, 4:])


def test_ex02_position_ids_make_left_padding_invisible_to_gpt2(exercise):
    from transformers import GPT2Config, GPT2LMHeadModel

    ex = exercise("ex02_causal_attention")
    mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert np.array_equal(np.asarray(ex.position_ids(mask))[mask == 1],
                          [0, 1, 2, 3, 4, 0, 1, 2, 0])
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                        attn_implementation="eager")
    model = GPT2LMHeadModel(config).double().eval()
    ids = torch.randint(1, 40, (3, 5))
    positions = torch.as_tensor(np.asarray(ex.position_ids(mask)), dtype=torch.long)
    with torch.no_grad():
        padded = model(ids, attention_mask=torch.from_numpy(mask),
                       position_ids=positions).logits
        for row, length in enumerate(mask.sum(1)):
            alone = model(ids[row:row + 1, 5 - length:]).logits[0]  # the prompt unpadded
            assert_close(padded[row, 5 - length:], alone, FLOAT64, name=f"row {row}")


# ===========================================================================
# Exercise 03: sampling
# ===========================================================================


def _warped(warper, logits: np.ndarray) -> np.ndarray:
    scores = torch.from_numpy(logits.copy())
    return warper(torch.zeros(scores.shape[0], 1, dtype=torch.long), scores).numpy()


def _same_filter(ours, theirs: np.ndarray, what: str) -> None:
    ours = np.asarray(ours, dtype=np.float64)
    kept = np.isfinite(theirs)
    assert np.array_equal(np.isfinite(ours), kept), f"{what}: a different set of tokens kept"
    assert np.all(ours[~kept] == -np.inf), f"{what}: removed tokens must be -inf"
    assert_close(ours[kept], theirs[kept], FLOAT64, name=what)


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_ex03_top_k_equals_transformers(exercise, k):
    from transformers.generation.logits_process import TopKLogitsWarper

    ex = exercise("ex03_sampling")
    logits = np.random.default_rng(k).standard_normal((4, 20)) * 3
    logits[0, :6] = 5.0  # a tie at the boundary: every tied logit survives
    _same_filter(ex.top_k_filter(logits, k), _warped(TopKLogitsWarper(k), logits), f"top-{k}")


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
def test_ex03_top_p_equals_transformers(exercise, p):
    from transformers.generation.logits_process import TopPLogitsWarper

    ex = exercise("ex03_sampling")
    logits = np.random.default_rng(int(p * 10)).standard_normal((4, 20)) * 2
    logits[1, 3] = 20.0  # one token holds almost all the mass: it alone is kept
    _same_filter(ex.top_p_filter(logits, p), _warped(TopPLogitsWarper(p), logits), f"top-p {p}")


def test_ex03_draws_follow_the_filtered_tempered_softmax(exercise):
    ex = exercise("ex03_sampling")
    logits = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -1.0, -2.0, -3.0])
    n, temperature = 40_000, 0.7
    draws = np.asarray(ex.sample_next(np.tile(logits, (n, 1)), np.random.default_rng(0),
                                      temperature=temperature, top_k=5, top_p=0.9))
    z = logits / temperature
    z[5:] = -np.inf  # top-5
    probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    order = np.argsort(-probs)
    keep = (np.cumsum(probs[order]) - probs[order]) < 0.9
    nucleus = np.zeros(8, dtype=bool)
    nucleus[order[keep]] = True
    probs = np.where(nucleus, probs, 0.0) / probs[nucleus].sum()
    counts = np.bincount(draws, minlength=8)
    assert counts[~nucleus].sum() == 0, f"filtered-out tokens were drawn: {counts}"
    for token in np.flatnonzero(nucleus):
        sd = np.sqrt(n * probs[token] * (1 - probs[token]))
        assert abs(counts[token] - n * probs[token]) <= 5 * sd, (token, counts, probs * n)


def test_ex03_one_seed_one_sequence_and_bad_arguments(exercise):
    ex = exercise("ex03_sampling")
    logits = np.random.default_rng(3).standard_normal((16, 30))
    first = ex.sample_next(logits, np.random.default_rng(7), temperature=1.3, top_k=10)
    again = ex.sample_next(logits, np.random.default_rng(7), temperature=1.3, top_k=10)
    other = ex.sample_next(logits, np.random.default_rng(8), temperature=1.3, top_k=10)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    for bad in (dict(temperature=0.0), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ValueError):
            ex.sample_next(logits, np.random.default_rng(0), **bad)


# ===========================================================================
# Exercise 04: BPE
# ===========================================================================

WORD_COUNTS = {"low": 5, "lower": 2, "newest": 6, "widest": 3, "lowest": 1, "newer": 4,
               "wider": 2, "slow": 3, "slowest": 1, "news": 2}


def _replay(word_counts: dict[str, int], merges) -> None:
    """Each merge must be a most frequent pair at its turn (ties: the smallest pair)."""
    words = {tuple(word): count for word, count in word_counts.items()}
    for turn, pair in enumerate(merges):
        pairs: Counter = Counter()
        for symbols, count in words.items():
            for adjacent in zip(symbols, symbols[1:]):
                pairs[adjacent] += count
        top = max(pairs.values())
        expected = min(p for p, c in pairs.items() if c == top)
        assert tuple(pair) == expected, (f"merge {turn}: {pair} (count {pairs[tuple(pair)]}), "
                                         f"expected {expected} (count {top})")
        merged = {}
        for symbols, count in words.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == tuple(pair):
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = count
        words = merged


def test_ex04_the_worked_example(exercise):
    """low:5 lower:2 newest:6 widest:3. Pairs: es 9, st 9, we 8, lo 7, ow 7, ... -> (e, s)
    (tie with (s, t): the smaller pair). Then (es, t) 9, then lo 7 and ow 7 -> (l, o), then
    (lo, w) 7. So "lowest" splits as low + est."""
    ex = exercise("ex04_bpe")
    merges = ex.train_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 4)
    assert [tuple(m) for m in merges] == [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w")]
    assert ex.apply_bpe("lowest", merges) == ["low", "est"]


def test_ex04_every_merge_is_a_most_frequent_pair(exercise):
    ex = exercise("ex04_bpe")
    merges = ex.train_bpe(WORD_COUNTS, 15)
    assert len(merges) == 15
    _replay(WORD_COUNTS, merges)
    everything = ex.train_bpe({"ab": 1}, 10)  # runs out of pairs after one merge
    assert [tuple(m) for m in everything] == [("a", "b")]


@pytest.mark.parametrize("word", ["lowest", "slowest", "newer", "widest", "lower", "snow",
                                  "wonder", "slowly", "west", "e", "lllooowww"])
def test_ex04_apply_equals_the_tokenizers_library(exercise, word):
    from tokenizers import Tokenizer, models

    ex = exercise("ex04_bpe")
    merges = [tuple(m) for m in ex.train_bpe(WORD_COUNTS, 15)]
    symbols = sorted(set("".join(WORD_COUNTS) + "lyd")) + ["".join(m) for m in merges]
    vocab = {symbol: i for i, symbol in enumerate(dict.fromkeys(symbols))}
    reference = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    assert ex.apply_bpe(word, merges) == reference.encode(word).tokens
