"""Checks for the exercises of lesson 07, against references that do not share their code.

Run them on the reference solutions::

    pytest 07_Transformer/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 07_Transformer/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another way:
``F.scaled_dot_product_attention``, PyTorch autograd, ``torch.softmax``,
``torch.distributions.Categorical``, ``nn.MultiheadAttention``,
``nn.Transformer.generate_square_subsequent_mask``, finite differences, Monte Carlo with
PyTorch's random numbers, or values worked out by hand. None compares with the reference
solution itself, which would let a copy of a bug pass.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

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

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def t64(a, requires_grad: bool = False) -> torch.Tensor:
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
# Exercise 01: attention forward and backward
# ===========================================================================


def test_ex01_softmax_matches_torch(exercise):
    ex = exercise("ex01_attention_backward")
    x = np.random.default_rng(0).standard_normal((3, 4, 6)) * 5
    x[0, 0] = [1000.0, -1000.0, 999.0, 0.0, 5.0, -3.0]  # no overflow
    assert_close(ex.softmax(x), torch.softmax(t64(x), dim=-1), FLOAT64, name="softmax")
    mask = np.zeros((3, 4, 6), dtype=bool)
    mask[:, :, 4:] = True
    mask[1, 2] = True  # a fully masked row
    p = ex.softmax(x, mask)
    ref = torch.softmax(t64(x).masked_fill(torch.from_numpy(mask), -math.inf), dim=-1)
    ref = torch.nan_to_num(ref, nan=0.0)  # torch gives NaN for the fully masked row
    assert np.all(np.isfinite(p)) and not p[1, 2].any()
    assert_close(p, ref, FLOAT64, name="masked softmax")


# (T_q, T_k, mask kind): the masks are built here with torch, True = masked out
EX01_CASES = [(5, 5, "none"), (5, 5, "causal"), (4, 7, "padding"), (6, 6, "causal+padding")]


def _ex01_data(T_q, T_k, kind, seed=1):
    rng = np.random.default_rng(seed)
    B, h, d_k, d_v = 2, 2, 4, 3
    Q, K = rng.standard_normal((B, h, T_q, d_k)), rng.standard_normal((B, h, T_k, d_k))
    V, dO = rng.standard_normal((B, h, T_k, d_v)), rng.standard_normal((B, h, T_q, d_v))
    mask = torch.zeros(B, 1, T_q, T_k, dtype=torch.bool)
    if "causal" in kind:
        mask |= torch.ones(T_q, T_k, dtype=torch.bool).triu(1)
    if "padding" in kind:
        lengths = torch.tensor([T_k, 2])
        mask |= (torch.arange(T_k)[None, :] >= lengths[:, None])[:, None, None, :]
    return Q, K, V, dO, (None if kind == "none" else mask.numpy())


@pytest.mark.parametrize("case", EX01_CASES, ids=lambda c: c[2] if isinstance(c, str) else None)
def test_ex01_forward_and_backward_match_sdpa_autograd(exercise, case):
    ex = exercise("ex01_attention_backward")
    Q, K, V, dO, mask = _ex01_data(*case)
    O, cache = ex.attention_forward(Q, K, V, mask)
    dQ, dK, dV = ex.attention_backward(dO, cache)
    q, k, v = t64(Q, True), t64(K, True), t64(V, True)
    allowed = None if mask is None else ~torch.from_numpy(mask)  # F.sdpa: True = takes part
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    (ref * t64(dO)).sum().backward()
    assert_close(O, ref, L1_VS_AUTOGRAD, name="O")
    for name, ours, theirs in (("dQ", dQ, q.grad), ("dK", dK, k.grad), ("dV", dV, v.grad)):
        assert ours.shape == tuple(theirs.shape)
        assert_close(ours, theirs, L1_VS_AUTOGRAD, name=name)


def test_ex01_backward_matches_finite_differences(exercise):
    ex = exercise("ex01_attention_backward")
    Q, K, V, dO, mask = _ex01_data(4, 5, "padding", seed=2)
    _, cache = ex.attention_forward(Q, K, V, mask)
    dQ, dK, _ = ex.attention_backward(dO, cache)
    loss_q = lambda: float(np.sum(ex.attention_forward(Q, K, V, mask)[0] * dO))
    assert_close(dQ, numerical_gradient(loss_q, Q), FINITE_DIFF, name="dQ")
    assert_close(dK, numerical_gradient(loss_q, K), FINITE_DIFF, name="dK")


def test_ex01_fully_masked_row_is_zero_like_torch(exercise):
    ex = exercise("ex01_attention_backward")
    Q, K, V, dO, _ = _ex01_data(3, 3, "none", seed=3)
    mask = np.zeros((3, 3), dtype=bool)
    mask[1] = True
    O, cache = ex.attention_forward(Q, K, V, mask)
    dQ, dK, dV = ex.attention_backward(dO, cache)
    q, k, v = t64(Q, True), t64(K, True), t64(V, True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~torch.from_numpy(mask))
    (ref * t64(dO)).sum().backward()
    assert np.all(np.isfinite(O)) and not O[..., 1, :].any() and not dQ[..., 1, :].any()
    assert_close(O, ref, L1_VS_AUTOGRAD, name="O")
    assert_close(dQ, q.grad, L1_VS_AUTOGRAD, name="dQ")
    assert_close(dK, k.grad, L1_VS_AUTOGRAD, name="dK")
    assert_close(dV, v.grad, L1_VS_AUTOGRAD, name="dV")


def test_ex01_functions_reject_bad_input(exercise):
    ex = exercise("ex01_attention_backward")
    Q = np.zeros((2, 3, 4))
    with pytest.raises(ValueError):
        ex.attention_forward(Q, np.zeros((2, 3, 5)), np.zeros((2, 3, 4)))  # d_k differs
    with pytest.raises(ValueError):
        ex.attention_forward(Q, Q, np.zeros((2, 4, 4)))  # T_k differs
    with pytest.raises(ValueError):
        ex.attention_forward(Q, Q, Q, mask=np.zeros((4, 4), dtype=bool))
    _, cache = ex.attention_forward(Q, Q, Q)
    with pytest.raises(ValueError):
        ex.attention_backward(np.zeros((2, 3, 5)), cache)


# ===========================================================================
# Exercise 02: why 1/sqrt(d_k)
# ===========================================================================


@pytest.mark.parametrize("d_k", [1, 16, 64, 256])
def test_ex02_dot_product_variance_is_d_k(exercise, d_k):
    ex = exercise("ex02_attention_scaling")
    assert abs(ex.dot_product_variance(d_k) / d_k - 1.0) < 0.06


def test_ex02_softmax_entropy_matches_categorical(exercise):
    ex = exercise("ex02_attention_scaling")
    scores = np.random.default_rng(4).standard_normal((5, 9)) * 3
    scores[0] = np.linspace(-4000, 4000, 9)  # huge scores: one-hot, entropy 0
    ref = torch.distributions.Categorical(logits=t64(scores)).entropy()
    assert_close(ex.softmax_entropy(scores), ref, FLOAT64, name="entropy")
    assert abs(float(ex.softmax_entropy(np.zeros(7))) - math.log(7)) < 1e-12  # uniform
    assert ex.softmax_entropy(scores).shape == (5,)


def _torch_attention_entropy(d_k, T, scaled, n=2000, seed=0):
    """The same expectation, estimated with torch's random numbers (an independent sample)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 1, d_k, generator=g, dtype=torch.float64)
    K = torch.randn(n, T, d_k, generator=g, dtype=torch.float64)
    scores = (q * K).sum(-1) / (math.sqrt(d_k) if scaled else 1.0)
    return float(torch.distributions.Categorical(logits=scores).entropy().mean())


@pytest.mark.parametrize("d_k, scaled", [(8, True), (64, True), (8, False), (64, False)])
def test_ex02_attention_entropy_matches_a_torch_estimate(exercise, d_k, scaled):
    ex = exercise("ex02_attention_scaling")
    ours = ex.attention_entropy(d_k, 32, scaled)
    assert abs(ours - _torch_attention_entropy(d_k, 32, scaled)) < 0.05


def test_ex02_scaling_keeps_the_softmax_from_saturating(exercise):
    ex = exercise("ex02_attention_scaling")
    dims = [4, 16, 64, 512]
    scaled = [ex.attention_entropy(d, 32, True, n_samples=300) for d in dims]
    unscaled = [ex.attention_entropy(d, 32, False, n_samples=300) for d in dims]
    assert max(scaled) - min(scaled) < 0.1  # independent of d_k ...
    assert abs(np.mean(scaled) - (math.log(32) - 0.5)) < 0.15  # ... near log T - 1/2
    assert all(a > b for a, b in zip(unscaled, unscaled[1:]))  # falls as d_k grows
    assert unscaled[-1] < 1.0 < 2.5 < scaled[-1]


def test_ex02_functions_reject_bad_input(exercise):
    ex = exercise("ex02_attention_scaling")
    with pytest.raises(ValueError):
        ex.dot_product_variance(0)
    with pytest.raises(ValueError):
        ex.attention_entropy(8, 0)
    with pytest.raises(ValueError):
        ex.attention_entropy(8, 4, n_samples=2.5)


# ===========================================================================
# Exercise 03: masks
# ===========================================================================


@pytest.mark.parametrize("T", [1, 2, 6])
def test_ex03_causal_mask_matches_torch(exercise, T):
    ex = exercise("ex03_attention_masks")
    reference = nn.Transformer.generate_square_subsequent_mask(T)  # 0 / -inf
    np.testing.assert_array_equal(ex.causal_mask(T), torch.isneginf(reference).numpy())


@pytest.mark.parametrize("causal", [False, True])
def test_ex03_combined_mask_does_what_torch_masks_do_in_attention(exercise, causal):
    ex = exercise("ex03_attention_masks")
    B, T, d, h = 3, 6, 8, 2
    lengths = [6, 3, 1]
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(d, h, batch_first=True, dtype=torch.float64)
    x = torch.randn(B, T, d, dtype=torch.float64)
    # torch's own way of saying it: key_padding_mask from the lengths, the causal attn_mask
    key_padding = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    attn_mask = (nn.Transformer.generate_square_subsequent_mask(T).isinf() if causal else None)
    ref, ref_w = mha(x, x, x, key_padding_mask=key_padding, attn_mask=attn_mask,
                     average_attn_weights=False)
    mask = ex.combined_mask(np.array(lengths), T, causal)
    assert mask.shape == (B, T, T) and mask.dtype == bool
    per_head = torch.from_numpy(mask).repeat_interleave(h, dim=0)  # (B*h, T, T), batch-major
    out, w = mha(x, x, x, attn_mask=per_head, average_attn_weights=False)
    assert_close(out, ref, FLOAT64, name="attention output")
    assert_close(w, ref_w, FLOAT64, name="attention weights")
    np.testing.assert_array_equal(w.detach().numpy() == 0, np.repeat(mask[:, None], h, axis=1))
    for b in range(B):
        for i in range(T):
            seen = torch.nonzero(ref_w[b, 0, i]).flatten().tolist()
            assert ex.visible_keys(mask, b, i) == seen


def test_ex03_masks_by_hand(exercise):
    ex = exercise("ex03_attention_masks")
    np.testing.assert_array_equal(ex.padding_mask(np.array([3, 5]), 5),
                                  [[False, False, False, True, True], [False] * 5])
    mask = ex.combined_mask(np.array([3, 5]), 5, causal=True)
    assert ex.visible_keys(mask, 0, 4) == [0, 1, 2]  # a padding query sees the real keys
    assert ex.visible_keys(mask, 0, 1) == [0, 1]
    assert ex.visible_keys(mask, 1, 4) == [0, 1, 2, 3, 4]
    assert ex.visible_keys(ex.combined_mask(np.array([2]), 4), 0, 0) == [0, 1]


def test_ex03_functions_reject_bad_input(exercise):
    ex = exercise("ex03_attention_masks")
    with pytest.raises(ValueError):
        ex.causal_mask(0)
    with pytest.raises(ValueError):
        ex.padding_mask(np.array([0, 2]), 4)
    with pytest.raises(ValueError):
        ex.padding_mask(np.array([5]), 4)
    with pytest.raises(ValueError):
        ex.visible_keys(np.zeros((4, 4), dtype=bool), 0, 0)


# ===========================================================================
# Exercise 04: relative position in the sinusoidal encoding
# ===========================================================================


def _torch_encoding(max_len, d):
    """The formula of Section 3.5, evaluated with torch."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    i = torch.arange(d // 2, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * i / d)
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).reshape(max_len, d)


def _torch_rotation(k, d):
    """M_k built independently: torch.block_diag of 2 x 2 rotations."""
    blocks = []
    for i in range(d // 2):
        a = k / 10000.0 ** (2 * i / d)
        blocks.append(torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]],
                                   dtype=torch.float64))
    return torch.block_diag(*blocks)


@pytest.mark.parametrize("max_len, d", [(50, 8), (120, 32)])
def test_ex04_encoding_matches_the_formula_and_level_2(exercise, max_len, d):
    ex = exercise("ex04_relative_position")
    pe = ex.sinusoidal_encoding(max_len, d)
    assert_close(pe, _torch_encoding(max_len, d), FLOAT64, name="PE")
    from utils import import_lesson

    low = import_lesson("07_Transformer.pytorch_lowlevel.transformer_lowlevel")
    assert_close(pe, low.sinusoidal_positional_encoding(max_len, d, dtype=torch.float64),
                 FLOAT64, name="PE vs Level 2")
    assert_close(ex.frequencies(d), 10000.0 ** (-np.arange(0, d, 2) / d), FLOAT64, name="omega")


@pytest.mark.parametrize("k", [1, 5, -3, 40])
def test_ex04_shift_matrix_maps_every_position(exercise, k):
    ex = exercise("ex04_relative_position")
    d, L = 16, 100
    pe = _torch_encoding(L, d)
    M = ex.shift_matrix(k, d)
    assert_close(M, _torch_rotation(k, d), FLOAT64, name="M_k")
    positions = range(max(0, -k), L - max(0, k))
    for pos in positions:  # the SAME matrix for every position
        assert_close(M @ pe[pos].numpy(), pe[pos + k], FLOAT64, name=f"M_k PE[{pos}]")
    assert_close(M @ M.T, np.eye(d), FLOAT64, name="M M^T = I")
    assert_close(ex.shift_matrix(-k, d), M.T, FLOAT64, name="M_-k = M_k^T")


def test_ex04_shifts_compose(exercise):
    ex = exercise("ex04_relative_position")
    for a, b in ((1, 2), (7, -3), (20, 25)):
        assert_close(ex.shift_matrix(a, 12) @ ex.shift_matrix(b, 12), ex.shift_matrix(a + b, 12),
                     FLOAT64, name=f"M_{a} M_{b}")
    assert_close(ex.shift_matrix(0, 6), np.eye(6), FLOAT64, name="M_0")


@pytest.mark.parametrize("max_len, d, k", [(200, 8, 1), (200, 8, 7), (1000, 16, 3)])
def test_ex04_least_squares_recovers_the_rotation(exercise, max_len, d, k):
    ex = exercise("ex04_relative_position")
    M = ex.fit_shift_matrix(_torch_encoding(max_len, d).numpy(), k)
    assert_close(M, _torch_rotation(k, d), L1_VS_AUTOGRAD, name="fitted M_k")


def test_ex04_dot_products_depend_on_distance_only(exercise):
    ex = exercise("ex04_relative_position")
    d, pe = 16, ex.sinusoidal_encoding(80, 16)
    for k in (0, 1, 9):
        dots = np.sum(pe[:80 - k] * pe[k:], axis=1)  # PE[pos] . PE[pos + k]
        expected = sum(math.cos(k / 10000.0 ** (2 * i / d)) for i in range(d // 2))
        assert_close(dots, np.full_like(dots, expected), FLOAT64, name=f"distance {k}")


def test_ex04_functions_reject_bad_input(exercise):
    ex = exercise("ex04_relative_position")
    with pytest.raises(ValueError):
        ex.sinusoidal_encoding(10, 7)
    with pytest.raises(ValueError):
        ex.sinusoidal_encoding(0, 8)
    with pytest.raises(ValueError):
        ex.fit_shift_matrix(np.zeros((10, 4)), 10)


# ===========================================================================
# Exercise 05: the key-value cache
# ===========================================================================


def _ex05_weights(d, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((d, d)) / math.sqrt(d) for name in ("W_q", "W_k", "W_v",
                                                                           "W_o")}


def _mha_reference(x, weights, h):
    """nn.MultiheadAttention (no biases) with the same weights and torch's causal mask."""
    d = x.shape[1]
    mha = nn.MultiheadAttention(d, h, bias=False, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(t64(np.concatenate([weights["W_q"], weights["W_k"],
                                                     weights["W_v"]])))
        mha.out_proj.weight.copy_(t64(weights["W_o"]))
    causal = nn.Transformer.generate_square_subsequent_mask(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        return mha(t64(x)[None], t64(x)[None], t64(x)[None], attn_mask=causal,
                   need_weights=False)[0][0]


@pytest.mark.parametrize("h", [1, 2, 4])
def test_ex05_full_and_incremental_equal_nn_multihead_attention(exercise, h):
    ex = exercise("ex05_kv_cache")
    T, d = 7, 8
    weights = _ex05_weights(d, seed=h)
    x = np.random.default_rng(10 + h).standard_normal((T, d))
    reference = _mha_reference(x, weights, h)
    assert_close(ex.causal_self_attention(x, weights, h), reference, L1_VS_AUTOGRAD,
                 name="full recomputation")
    assert_close(ex.decode_incrementally(x, weights, h), reference, L1_VS_AUTOGRAD,
                 name="incremental decoding")


def test_ex05_cache_grows_one_token_per_step(exercise):
    ex = exercise("ex05_kv_cache")
    weights, h, d = _ex05_weights(6), 3, 6
    x = np.random.default_rng(11).standard_normal((4, d))
    cache = ex.empty_cache(h, 2)
    assert cache["k"].shape == cache["v"].shape == (h, 0, 2)
    reference = _mha_reference(x, weights, h)
    for t in range(4):
        y_t, cache = ex.attention_step(x[t], cache, weights, h)
        assert cache["k"].shape == cache["v"].shape == (h, t + 1, 2)
        assert_close(y_t, reference[t], L1_VS_AUTOGRAD, name=f"step {t}")


def test_ex05_outputs_ignore_the_future(exercise):
    ex = exercise("ex05_kv_cache")
    weights = _ex05_weights(8, seed=3)
    x = np.random.default_rng(12).standard_normal((6, 8))
    changed = x.copy()
    changed[4:] += 5.0
    a, b = ex.causal_self_attention(x, weights, 2), ex.causal_self_attention(changed, weights, 2)
    assert_close(a[:4], b[:4], FLOAT64, name="outputs before the change")
    assert np.abs(a[4:] - b[4:]).max() > 1e-3


def test_ex05_cache_memory_by_hand(exercise):
    ex = exercise("ex05_kv_cache")
    # GPT-2 small: 12 layers, d_model 768, 1,024 tokens, float16: 2*12*1024*768*2 bytes
    assert ex.kv_cache_bytes(12, 1, 1024, 768) == 37_748_736
    assert ex.kv_cache_bytes(12, 8, 1024, 768, bytes_per_number=4) == 8 * 2 * 37_748_736


def test_ex05_functions_reject_bad_input(exercise):
    ex = exercise("ex05_kv_cache")
    weights = _ex05_weights(6)
    with pytest.raises(ValueError):
        ex.causal_self_attention(np.zeros((3, 6)), weights, 4)  # 6 not divisible by 4
    with pytest.raises(ValueError):
        ex.causal_self_attention(np.zeros((3, 5)), weights, 2)
    with pytest.raises(ValueError):
        ex.attention_step(np.zeros(5), ex.empty_cache(2, 3), weights, 2)
