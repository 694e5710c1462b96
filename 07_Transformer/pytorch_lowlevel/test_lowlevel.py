"""Tests of lesson 07, Level 2: the Transformer from basic ops, against torch's own.

- scaled_dot_product_attention == F.scaled_dot_product_attention (outputs and the gradients
  of q, k, v) with causal, padding, combined, float and per-head masks, T_q != T_k, in
  float64 (1e-10) and float32; random shapes from hypothesis; a fully masked row gives 0
  (no NaN) as torch's SDPA does
- MultiHeadAttention == nn.MultiheadAttention (batch_first) with copied weights, with
  key_padding_mask and attn_mask (2-D and torch's 3-D form), averaged and per-head weights,
  gradients of the inputs and of every parameter
- layer_norm == nn.LayerNorm; EncoderLayer / DecoderLayer == nn.TransformerEncoderLayer /
  nn.TransformerDecoderLayer (post-LN and pre-LN, dropout 0), all gradients
- the whole model == the same model assembled from torch.nn layers; greedy decoding agrees
  with teacher forcing on its own output
- label_smoothed_cross_entropy == nn.CrossEntropyLoss(label_smoothing, ignore_index)
- noam_lr against Equation 3 at hand-picked steps; adam_step + schedule == torch.optim.Adam
  with LambdaLR over several steps
- Section 5.4's dropout placement with dropout on: the masks recorded, the layer composed by
  hand with them (encoder post-LN and pre-LN with attention and FFN dropout, decoder, the
  embedding sum); greedy decoding in eval mode, the mode restored; training reshuffles
  every epoch, seeded
- positional encoding values, dropout behaviour, the data, bad input (4-D masks, batch
  mismatches, empty sequences), the purity rule, the script's options (exit status 2 naming
  the option, no "None" in --help) and the script on the copy task

Run: .venv/bin/python -m pytest 07_Transformer/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
import re
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

low = import_lesson("07_Transformer.pytorch_lowlevel.transformer_lowlevel")
low_train = import_lesson("07_Transformer.pytorch_lowlevel.train")

DTYPES = [torch.float64, torch.float32]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


@pytest.fixture(autouse=True, scope="module")
def _no_tf32():
    """No TF32 on a GPU: float32 matmuls would be rounded far beyond the float32 tolerance."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


def _grads_of(out: torch.Tensor, leaves, seed: int = 0):
    """Gradients of sum(out * G) for a fixed random G (every output element weighted)."""
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64).to(dtype=out.dtype, device=out.device)
    return torch.autograd.grad((out * g).sum(), leaves, allow_unused=True)


def _randn(*shape, dtype=torch.float64, device="cpu", seed=0, grad=True):
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return t.to(dtype=dtype, device=device).requires_grad_(grad)


def _padding(lengths, T, device="cpu"):
    """(B, T) bool, True at positions >= length (right padding)."""
    return torch.arange(T, device=device)[None, :] >= torch.tensor(lengths, device=device)[:, None]


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# Masks and scaled dot-product attention
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 2, 5])
def test_causal_mask_equals_torch_square_subsequent_mask(T):
    reference = nn.Transformer.generate_square_subsequent_mask(T)  # float: -inf above diagonal
    assert torch.equal(low.causal_mask(T), torch.isneginf(reference))
    assert low.causal_mask(3).tolist() == [[False, True, True], [False, False, True],
                                           [False, False, False]]


SDPA_CASES = ["none", "causal", "padding", "causal+padding", "float", "per-head", "cross"]


def _sdpa_case(case, dtype, device):
    """(q, k, v, our masks as kwargs, the boolean 'takes part' mask for F.sdpa)."""
    B, h, T_q, d = 2, 3, 5, 4
    T_k = 7 if case == "cross" else T_q
    q = _randn(B, h, T_q, d, dtype=dtype, device=device, seed=1)
    k = _randn(B, h, T_k, d, dtype=dtype, device=device, seed=2)
    v = _randn(B, h, T_k, 6, dtype=dtype, device=device, seed=3)  # d_v != d_k
    kwargs, masked = {}, torch.zeros(B, h, T_q, T_k, dtype=torch.bool, device=device)
    if "causal" in case:
        kwargs["attn_mask"] = low.causal_mask(T_q, device=device)
        masked |= kwargs["attn_mask"]
    if "padding" in case or case == "cross":
        kwargs["key_padding_mask"] = _padding([T_k, 3], T_k, device)
        masked |= kwargs["key_padding_mask"][:, None, None, :]
    if case == "per-head":  # a different random mask per batch and head (diagonal kept)
        m = torch.rand(B, h, T_q, T_k, generator=torch.Generator().manual_seed(4)) < 0.4
        m &= ~torch.eye(T_q, dtype=torch.bool)
        kwargs["attn_mask"] = m.to(device)
        masked |= kwargs["attn_mask"]
    if case == "float":  # an additive bias, not a mask: compared through attn_mask=float
        bias = _randn(T_q, T_k, dtype=dtype, device=device, seed=5, grad=False)
        kwargs["attn_mask"] = bias
        return q, k, v, kwargs, bias
    return q, k, v, kwargs, ~masked  # F.sdpa: True = takes part


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SDPA_CASES)
def test_attention_equals_F_scaled_dot_product_attention(case, dtype, device):
    q, k, v, kwargs, ref_mask = _sdpa_case(case, dtype, device)
    out, weights = low.scaled_dot_product_attention(q, k, v, **kwargs)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask)
    tol = tolerance(dtype, device)
    assert_close(out, ref, tol, name=f"attention output ({case})")
    for name, a, e in zip("qkv", _grads_of(out, (q, k, v)), _grads_of(ref, (q, k, v))):
        assert_close(a, e, tol, name=f"dL/d{name} ({case})")
    # the weights: rows sum to 1, exactly 0 where masked, and reproduce the output
    assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)), tol, name="row sums")
    if ref_mask.dtype == torch.bool:
        assert not weights[~ref_mask.expand_as(weights)].any()
    assert_close(weights @ v, out, tol, name="weights @ v")


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), h=st.integers(1, 3), T_q=st.integers(1, 6), T_k=st.integers(1, 6),
       d=st.integers(1, 5), causal=st.booleans(), seed=st.integers(0, 2**16))
def test_attention_random_shapes_equal_F_sdpa(B, h, T_q, T_k, d, causal, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, h, T, d, generator=g, dtype=torch.float64, requires_grad=True)
               for T in (T_q, T_k, T_k))
    mask = torch.ones(T_q, T_k, dtype=torch.bool).triu(1) if causal else None
    out, weights = low.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask)
    assert out.shape == (B, h, T_q, d) and weights.shape == (B, h, T_q, T_k)
    assert_close(out, ref, FLOAT64, name="output")
    for a, e in zip(_grads_of(out, (q, k, v)), _grads_of(ref, (q, k, v))):
        assert_close(a, e, FLOAT64, name="gradient")


def test_fully_masked_row_gives_zeros_not_nan_like_torch_sdpa(device):
    q = _randn(1, 2, 3, 4, device=device, seed=6)
    k = _randn(1, 2, 3, 4, device=device, seed=7)
    v = _randn(1, 2, 3, 4, device=device, seed=8)
    mask = torch.zeros(3, 3, dtype=torch.bool, device=device)
    mask[1] = True  # query 1 may attend nothing
    out, weights = low.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask)
    assert torch.isfinite(out).all() and not out[:, :, 1].any() and not weights[:, :, 1].any()
    assert_close(out, ref, FLOAT64, name="output with a dead row")
    ours, theirs = _grads_of(out, (q, k, v)), _grads_of(ref, (q, k, v))
    for name, a, e in zip("qkv", ours, theirs):
        assert torch.isfinite(a).all()
        assert_close(a, e, FLOAT64, name=f"dL/d{name} with a dead row")
    assert not ours[0][:, :, 1].any()  # the dead query gets no gradient


def test_attention_dropout_is_inverted_and_only_in_training():
    q, k, v = (_randn(2, 2, 6, 4, seed=s, grad=False) for s in (1, 2, 3))
    plain, w = low.scaled_dot_product_attention(q, k, v)
    same, _ = low.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    assert torch.equal(plain, same)  # evaluation: no dropout
    torch.manual_seed(0)
    dropped, w_dropped = low.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True)
    kept = w_dropped != 0
    assert 0.3 < kept.float().mean() < 0.7  # about half the weights survive ...
    assert_close(w_dropped[kept], 2 * w[kept], FLOAT64, name="kept weights * 1/(1-p)")
    assert_close(dropped, w_dropped @ v, FLOAT64, name="output from the dropped weights")


def test_dropout_is_lesson_02s_and_does_what_this_lesson_needs():
    """Dropout, Adam and zero_grad are lesson 02's (taught and tested there), imported."""
    mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
    assert (low.dropout, low.adam_step, low.zero_grad) == (mlp.dropout, mlp.adam_step,
                                                           mlp.zero_grad)
    x = torch.ones(200, 200, dtype=torch.float64)
    assert low.dropout(x, 0.3, training=False) is x
    assert low.dropout(x, 0.0, training=True) is x
    y = low.dropout(x, 0.3, training=True, generator=torch.Generator().manual_seed(0))
    assert abs(float((y == 0).double().mean()) - 0.3) < 0.01
    assert set(torch.unique(y).tolist()) == {0.0, 1 / 0.7}
    assert abs(float(y.mean()) - 1.0) < 0.02  # E[y] = x
    for p in (1.0, 1.5):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
            low.dropout(x, p, training=True)


# --------------------------------------------------------------------------------------
# Multi-head attention against nn.MultiheadAttention
# --------------------------------------------------------------------------------------


def _copy_into_torch(ours: low.ParameterContainer, module: nn.Module) -> nn.Module:
    """The torch module, with our parameters copied in (names are the same)."""
    module.load_state_dict(ours.state_dict())
    return module


def _input_and_param_grads(out, inputs, block, seed=0):
    """Gradients of sum(out * G) for the inputs (a tuple) and, by name, every parameter of
    ``block`` (ours or an nn.Module)."""
    named = dict(block.named_parameters())
    grads = _grads_of(out, tuple(inputs) + tuple(named.values()), seed)
    return grads[:len(inputs)], dict(zip(named, grads[len(inputs):]))


def _compare_all_grads(ours_out, ref_out, inputs, ours, theirs, tol, what):
    """Input gradients and every parameter gradient of ours == the reference's."""
    ours_in, ours_params = _input_and_param_grads(ours_out, inputs, ours)
    ref_in, ref_params = _input_and_param_grads(ref_out, inputs, theirs)
    for i, (a, e) in enumerate(zip(ours_in, ref_in)):
        assert_close(a, e, tol, name=f"{what} gradient of input {i}")
    assert ours_params.keys() == ref_params.keys()
    for name, a in ours_params.items():
        assert_close(a, ref_params[name], tol, name=f"{what} d/d{name}")


def _compare_param_grads(ours: low.ParameterContainer, module: nn.Module, tol, what: str):
    reference = dict(module.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, f"{what}: no gradient for {name}"
        assert_close(p.grad, reference[name].grad, tol, name=f"{what} d/d{name}")


MHA_MASKS = ["none", "padding+causal", "3-D per head", "cross padding"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("average", [True, False], ids=["averaged", "per-head"])
@pytest.mark.parametrize("masks", MHA_MASKS)
def test_multi_head_attention_equals_nn_multihead_attention(masks, average, dtype, device):
    B, T, S, d, h = 3, 5, 6, 12, 3
    ours = low.MultiHeadAttention(d, h, generator=torch.Generator().manual_seed(0),
                                  dtype=dtype, device=device)
    torch.manual_seed(0)
    with torch.no_grad():  # non-zero biases, so that a misplaced bias is seen
        for name in ("in_proj_bias", "out_proj.bias"):
            ours.params[name].normal_()
    theirs = _copy_into_torch(ours, nn.MultiheadAttention(d, h, batch_first=True, dtype=dtype,
                                                          device=device))
    cross = masks == "cross padding"
    x = _randn(B, T, d, dtype=dtype, device=device, seed=10)
    mem = _randn(B, S, d, dtype=dtype, device=device, seed=11) if cross else x
    kwargs = {}
    if masks == "padding+causal":
        kwargs = {"key_padding_mask": _padding([5, 3, 4], T, device),
                  "attn_mask": low.causal_mask(T, device=device)}
    elif masks == "3-D per head":
        m = torch.rand(B * h, T, T, generator=torch.Generator().manual_seed(12)) < 0.5
        kwargs = {"attn_mask": (m & ~torch.eye(T, dtype=torch.bool)).to(device)}
    elif cross:
        kwargs = {"key_padding_mask": _padding([6, 2, 4], S, device)}
    out, w = ours(x, mem, mem, average_attn_weights=average, **kwargs)
    ref, ref_w = theirs(x, mem, mem, need_weights=True, average_attn_weights=average, **kwargs)
    tol = tolerance(dtype, device)
    assert w.shape == ((B, T, mem.shape[1]) if average else (B, h, T, mem.shape[1]))
    assert_close(out, ref, tol, name="MHA output")
    assert_close(w, ref_w, tol, name="MHA weights")
    leaves = (x, mem) if cross else (x,)
    G = _randn(*out.shape, dtype=dtype, device=device, seed=13, grad=False)
    G_w = _randn(*w.shape, dtype=dtype, device=device, seed=14, grad=False)
    ours_params, theirs_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    names = sorted(ours_params)
    # one scalar depending on the output AND the returned weights
    ours_grads = torch.autograd.grad((out * G).sum() + (w * G_w).sum(),
                                     leaves + tuple(ours_params[n] for n in names))
    ref_grads = torch.autograd.grad((ref * G).sum() + (ref_w * G_w).sum(),
                                    leaves + tuple(theirs_params[n] for n in names))
    for name, a, e in zip(["dx", "dmemory"][:len(leaves)] + names, ours_grads, ref_grads):
        assert_close(a, e, tol, name=f"MHA gradient {name}")


# --------------------------------------------------------------------------------------
# Layer norm, encoder and decoder layers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_equals_nn_layer_norm(dtype, device):
    ours = low.LayerNorm(8, dtype=dtype, device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        ours.params["weight"].uniform_(0.5, 1.5)
        ours.params["bias"].normal_()
    theirs = _copy_into_torch(ours, nn.LayerNorm(8, dtype=dtype, device=device))
    x = _randn(2, 3, 8, dtype=dtype, device=device, seed=20) * 3 + 1
    y, ref = ours(x), theirs(x)
    tol = tolerance(dtype, device)
    assert_close(y, ref, tol, name="layer norm")
    _compare_all_grads(y, ref, (x,), ours, theirs, tol, "layer norm")


def _layer_pair(kind, norm_first, dtype, device, d=12, h=3, d_ff=20):
    g = torch.Generator().manual_seed(30)
    cls = low.EncoderLayer if kind == "encoder" else low.DecoderLayer
    ours = cls(d, h, d_ff, dropout=0.0, norm_first=norm_first, generator=g, dtype=dtype,
               device=device)
    torch.manual_seed(0)
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in ours.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.3)
            elif name.startswith("norm"):
                p.uniform_(0.5, 1.5)
    ref_cls = nn.TransformerEncoderLayer if kind == "encoder" else nn.TransformerDecoderLayer
    theirs = ref_cls(d, h, d_ff, dropout=0.0, activation="relu", batch_first=True,
                     norm_first=norm_first, dtype=dtype, device=device)
    return ours, _copy_into_torch(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_encoder_layer_equals_nn_transformer_encoder_layer(norm_first, dtype, device):
    ours, theirs = _layer_pair("encoder", norm_first, dtype, device)
    x = _randn(3, 6, 12, dtype=dtype, device=device, seed=31)
    padding = _padding([6, 4, 2], 6, device)
    mask = torch.zeros(6, 6, dtype=torch.bool, device=device)
    mask[0, 5] = mask[2, 1] = True  # an arbitrary attention mask on top of the padding
    y = ours(x, key_padding_mask=padding, attn_mask=mask)
    ref = theirs(x, src_mask=mask, src_key_padding_mask=padding)
    tol = tolerance(dtype, device)
    assert_close(y, ref, tol, name="encoder layer output")
    _compare_all_grads(y, ref, (x,), ours, theirs, tol, "encoder layer")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_decoder_layer_equals_nn_transformer_decoder_layer(norm_first, dtype, device):
    ours, theirs = _layer_pair("decoder", norm_first, dtype, device)
    x = _randn(3, 5, 12, dtype=dtype, device=device, seed=32)
    memory = _randn(3, 7, 12, dtype=dtype, device=device, seed=33)
    tgt_padding, mem_padding = _padding([5, 3, 1], 5, device), _padding([7, 7, 2], 7, device)
    causal = low.causal_mask(5, device=device)
    y = ours(x, memory, causal, tgt_padding, mem_padding)
    ref = theirs(x, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_padding,
                 memory_key_padding_mask=mem_padding)
    tol = tolerance(dtype, device)
    assert_close(y, ref, tol, name="decoder layer output")
    _compare_all_grads(y, ref, (x, memory), ours, theirs, tol, "decoder layer")


def test_layers_are_deterministic_in_eval_and_random_in_training():
    layer = low.EncoderLayer(8, 2, 16, dropout=0.3, attn_dropout=0.3, ffn_dropout=0.3)
    x = _randn(2, 4, 8, dtype=torch.float32, seed=34, grad=False)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    a = layer(x)
    assert not torch.equal(a, layer(x))
    zero = low.EncoderLayer(8, 2, 16, dropout=0.0)
    assert torch.equal(zero(x), zero.eval()(x))  # p = 0: training == evaluation


# --------------------------------------------------------------------------------------
# Dropout where Section 5.4 puts it (masks recorded, then the layer composed by hand)
# --------------------------------------------------------------------------------------


def _record_dropout(monkeypatch):
    """Replace the module's ``dropout`` with one that draws its masks from a seeded
    generator and records them: {p: [the multipliers keep / (1 - p), in call order]}.
    Giving each dropout site its own p tells the sites apart."""
    masks: dict[float, list[torch.Tensor]] = {}
    rng = torch.Generator().manual_seed(0)

    def dropout(x, p, training, generator=None):
        if not training or p == 0:
            return x
        keep = torch.rand(x.shape, generator=rng, dtype=torch.float64) >= p
        masks.setdefault(p, []).append(keep.to(x.dtype) / (1 - p))
        return x * masks[p][-1]

    monkeypatch.setattr(low, "dropout", dropout)
    return masks


def _attention_by_hand(mha, query, key, weight_mask=None, **masks):
    """Multi-head attention from the block's own weights (eval mode, no dropout), the
    weights multiplied by ``weight_mask``, then @ V and W^O."""
    _, weights = mha.eval()(query, key, key, average_attn_weights=False, **masks)  # (B,h,T,S)
    if weight_mask is not None:
        weights = weights * weight_mask
    params, d = mha.params, mha.d_model
    v = mha.split_heads(low.linear(key, params["in_proj_weight"][2 * d:],
                                   params["in_proj_bias"][2 * d:]))
    return low.linear(mha.merge_heads(weights @ v), params["out_proj.weight"],
                      params["out_proj.bias"])


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_encoder_layer_dropout_is_where_section_5_4_puts_it(norm_first, monkeypatch):
    """Residual dropout (p 0.1) on each sub-layer's output before the add (and the norm);
    attention dropout (0.2) on the weights; FFN dropout (0.3) after the ReLU."""
    masks = _record_dropout(monkeypatch)
    layer = low.EncoderLayer(8, 2, 12, dropout=0.1, attn_dropout=0.2, ffn_dropout=0.3,
                             norm_first=norm_first, dtype=torch.float64)
    x = _randn(2, 5, 8, seed=35, grad=False)
    out = layer.train()(x)
    assert [len(masks.get(p, [])) for p in (0.1, 0.2, 0.3)] == [2, 1, 1]
    residual, (weight_mask,), (hidden_mask,) = masks[0.1], masks[0.2], masks[0.3]
    layer.eval()
    p, norm1, norm2 = layer.params, layer.children["norm1"], layer.children["norm2"]

    def attend(h):
        return _attention_by_hand(layer.children["self_attn"], h, h, weight_mask)

    def ffn(h):
        hidden = torch.relu(low.linear(h, p["linear1.weight"], p["linear1.bias"])) * hidden_mask
        return low.linear(hidden, p["linear2.weight"], p["linear2.bias"])

    if norm_first:  # x + Dropout(Sublayer(LayerNorm(x)))
        h = x + attend(norm1(x)) * residual[0]
        expected = h + ffn(norm2(h)) * residual[1]
    else:  # LayerNorm(x + Dropout(Sublayer(x)))
        h = norm1(x + attend(x) * residual[0])
        expected = norm2(h + ffn(h) * residual[1])
    assert_close(out, expected, FLOAT64, name="encoder layer in training mode")


def test_decoder_layer_and_embedding_dropout_are_where_section_5_4_puts_them(monkeypatch):
    masks = _record_dropout(monkeypatch)
    model = low.Transformer(11, d_model=16, n_heads=4, n_encoder_layers=1,
                            n_decoder_layers=1, d_ff=24, dropout=0.1, max_len=8, seed=3,
                            dtype=torch.float64)
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    embedded = model.train().embed(tokens)
    (embedding_mask,) = masks.pop(0.1)
    scaled = model.params["embedding.weight"][tokens] * 4.0  # sqrt(d_model = 16)
    assert_close(embedded, (scaled + model.pe[:4]) * embedding_mask, FLOAT64,
                 name="Dropout(E[x] sqrt(d) + PE)")

    layer = model.children["decoder.0"]
    x, memory = _randn(2, 4, 16, seed=36, grad=False), _randn(2, 3, 16, seed=37, grad=False)
    causal, memory_padding = low.causal_mask(4), _padding([3, 1], 3)
    out = layer(x, memory, causal, None, memory_padding)
    first, second, third = masks.pop(0.1)
    assert not masks  # nothing else was dropped
    layer.eval()
    norm = layer.children
    p = layer.params
    h = norm["norm1"](x + _attention_by_hand(norm["self_attn"], x, x, attn_mask=causal) * first)
    h = norm["norm2"](h + _attention_by_hand(norm["multihead_attn"], h, memory,
                                             key_padding_mask=memory_padding) * second)
    ffn = low.feed_forward(h, p)
    assert_close(out, norm["norm3"](h + ffn * third), FLOAT64, name="decoder layer, training")


def test_greedy_decoding_runs_in_eval_mode_and_restores_the_mode():
    """With dropout 0.5 in training mode, greedy decoding still gives the eval-mode tokens,
    every call, and leaves the model in training mode."""
    model = low.Transformer(9, d_model=16, n_heads=2, n_encoder_layers=1,
                            n_decoder_layers=2, d_ff=16, dropout=0.5, max_len=9, seed=2,
                            dtype=torch.float64)
    src, _ = low_train.make_sequences("copy", 6, 2, 8, 9, seed=4)
    reference = model.eval().greedy_decode(src, 8)
    model.train()
    for _ in range(3):
        assert torch.equal(model.greedy_decode(src, 8), reference)
        assert model.training


# --------------------------------------------------------------------------------------
# The whole model
# --------------------------------------------------------------------------------------


class _TorchReference(nn.Module):
    """The same encoder-decoder assembled from torch.nn layers (shared embedding, scaled)."""

    def __init__(self, ours: low.Transformer, n_heads: int, d_ff: int):
        super().__init__()
        d, dtype = ours.d_model, ours.pe.dtype
        kw = {"dropout": 0.0, "batch_first": True, "norm_first": ours.norm_first,
              "dtype": dtype, "device": ours.pe.device}
        self.embedding = nn.Embedding(ours.vocab_size, d, dtype=dtype, device=ours.pe.device)
        self.encoder = nn.ModuleList(nn.TransformerEncoderLayer(d, n_heads, d_ff, **kw)
                                     for _ in range(ours.n_encoder_layers))
        self.decoder = nn.ModuleList(nn.TransformerDecoderLayer(d, n_heads, d_ff, **kw)
                                     for _ in range(ours.n_decoder_layers))
        self.pe, self.d, self.pad = ours.pe, d, ours.pad_id
        self.load_state_dict(ours.state_dict())

    def forward(self, src, tgt_in):
        scale = math.sqrt(self.d)
        x = self.embedding(src) * scale + self.pe[:src.shape[1]]
        for layer in self.encoder:
            x = layer(x, src_key_padding_mask=src == self.pad)
        y = self.embedding(tgt_in) * scale + self.pe[:tgt_in.shape[1]]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1]).isinf()
        for layer in self.decoder:
            y = layer(y, x, tgt_mask=causal.to(y.device), tgt_key_padding_mask=tgt_in == self.pad,
                      memory_key_padding_mask=src == self.pad)
        return y @ self.embedding.weight.T


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_equals_the_model_built_from_torch_nn_layers(dtype, device):
    model = low.Transformer(11, d_model=16, n_heads=2, n_encoder_layers=2,
                            n_decoder_layers=1, d_ff=24, dropout=0.0, max_len=8, seed=1,
                            dtype=dtype, device=device)
    reference = _TorchReference(model, 2, 24)
    src, tgt = low_train.make_sequences("reverse", 4, 2, 6, 11, seed=3)
    src, tgt = src.to(device), tgt.to(device)
    tgt_in = low_train.teacher_forcing_input(tgt)
    logits, ref = model(src, tgt_in), reference(src, tgt_in)
    tol = tolerance(dtype, device)
    assert logits.shape == (4, 7, 11)
    assert_close(logits, ref, tol, name="logits")
    low.label_smoothed_cross_entropy(logits, tgt).backward()
    nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0)(ref.reshape(-1, 11),
                                                              tgt.reshape(-1)).backward()
    _compare_param_grads(model, reference, tol, "model")


def test_greedy_decoding_agrees_with_teacher_forcing_on_its_own_output():
    model = low.Transformer(9, d_model=16, n_heads=2, n_encoder_layers=1,
                            n_decoder_layers=2, d_ff=16, dropout=0.1, max_len=9, seed=2,
                            dtype=torch.float64)
    src, _ = low_train.make_sequences("copy", 5, 2, 8, 9, seed=4)
    out = model.greedy_decode(src, 8)
    assert out.shape == (5, 8) and model.training  # the mode is restored
    with torch.no_grad():
        logits = model.eval()(src, low_train.teacher_forcing_input(out))  # (B, 8, V)
    logits[..., [low.PAD_ID, low.BOS_ID]] = -math.inf  # never generated
    choice = logits.argmax(-1)
    for row in range(5):  # up to and including the first <eos>, every step is the argmax
        tokens = out[row].tolist()
        stop = tokens.index(low.EOS_ID) + 1 if low.EOS_ID in tokens else len(tokens)
        assert choice[row, :stop].tolist() == tokens[:stop]
        assert all(t == low.PAD_ID for t in tokens[stop:])


def test_parameter_count_and_names():
    model = low.Transformer(20, d_model=16, n_heads=4, n_encoder_layers=2,
                            n_decoder_layers=3, d_ff=32)
    d, f, V = 16, 32, 20
    attention = 4 * d * d + 4 * d
    ffn = d * f + f + f * d + d
    norm = 2 * d
    expected = V * d + 2 * (attention + ffn + 2 * norm) + 3 * (2 * attention + ffn + 3 * norm)
    assert model.num_parameters() == expected
    reference = nn.TransformerDecoderLayer(16, 4, 32, batch_first=True)
    assert set(model.children["decoder.0"].state_dict()) == set(reference.state_dict())


# --------------------------------------------------------------------------------------
# Positional encoding, loss, schedule, Adam
# --------------------------------------------------------------------------------------


def test_sinusoidal_encoding_values():
    pe = low.sinusoidal_positional_encoding(50, 6, dtype=torch.float64)
    assert pe.shape == (50, 6)
    assert pe[0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # sin 0, cos 0
    for pos in (1, 7, 49):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert abs(pe[pos, 2 * i] - math.sin(angle)) < 1e-12
            assert abs(pe[pos, 2 * i + 1] - math.cos(angle)) < 1e-12
    odd = low.sinusoidal_positional_encoding(4, 5, dtype=torch.float64)
    assert odd.shape == (4, 5) and abs(odd[3, 4] - math.sin(3 / 10000 ** (4 / 5))) < 1e-12


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothed_loss_equals_cross_entropy_loss(smoothing, device):
    logits = _randn(3, 5, 7, device=device, seed=40) * 3
    target = torch.tensor([[3, 4, 2, 0, 0], [5, 6, 6, 6, 2], [0, 0, 0, 0, 0]], device=device)
    loss = low.label_smoothed_cross_entropy(logits, target, smoothing, ignore_index=0)
    ref = nn.CrossEntropyLoss(label_smoothing=smoothing, ignore_index=0)(
        logits.reshape(-1, 7), target.reshape(-1))
    assert_close(loss, ref, FLOAT64, name="loss")
    assert_close(_grads_of(loss, (logits,))[0], _grads_of(ref, (logits,))[0], FLOAT64,
                 name="dloss/dlogits")
    all_padding = low.label_smoothed_cross_entropy(logits, torch.zeros_like(target), smoothing)
    assert float(all_padding.detach()) == 0.0  # no NaN when every token is ignored


def test_noam_schedule_against_equation_3():
    d, warmup = 512, 4000
    for step in (1, 100, 3999, 4000, 4001, 16000, 100000):
        expected = d ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert low.noam_lr(step, d, warmup) == pytest.approx(expected, rel=1e-12)
    assert low.noam_lr(4000, 512) == pytest.approx((512 * 4000) ** -0.5, rel=1e-12)  # peak
    assert low.noam_lr(100, 512) == pytest.approx(100 / (512 ** 0.5 * 4000 ** 1.5), rel=1e-12)
    values = [low.noam_lr(s, d, warmup) for s in range(1, 12001, 37)]
    peak_step = 1 + 37 * values.index(max(values))
    assert abs(peak_step - warmup) <= 37  # rises to warm-up, then decays
    assert low.noam_lr(16000, 512) == pytest.approx(low.noam_lr(4000, 512) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="counts from 1"):
        low.noam_lr(0, 512)


def test_adam_with_the_schedule_equals_torch_optim_adam(device):
    kw = {"d_model": 8, "n_heads": 2, "n_encoder_layers": 1, "n_decoder_layers": 1,
          "d_ff": 8, "dropout": 0.0, "max_len": 6, "seed": 5, "dtype": torch.float64,
          "device": device}
    ours, theirs = low.Transformer(9, **kw), low.Transformer(9, **kw)
    src, tgt = low_train.make_sequences("copy", 6, 2, 5, 9, seed=6)
    src, tgt = src.to(device), tgt.to(device)
    warmup = 3
    optimizer = torch.optim.Adam(theirs.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: low.noam_lr(s + 1, 8, warmup))  # LambdaLR counts from 0
    start = ours.state_dict()
    state = None
    for step in range(1, 7):
        low.zero_grad(ours.parameters())
        tgt_in = low_train.teacher_forcing_input(tgt)
        low.label_smoothed_cross_entropy(ours(src, tgt_in), tgt).backward()
        state = low.adam_step(ours.parameters(), low.noam_lr(step, 8, warmup),
                              betas=low.ADAM_BETAS, eps=low.ADAM_EPS, state=state)
        optimizer.zero_grad()
        low.label_smoothed_cross_entropy(theirs(src, low_train.teacher_forcing_input(tgt)),
                                         tgt).backward()
        optimizer.step()
        scheduler.step()
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        assert_close(value, theirs_state[name], OPTIMIZER_TRAJECTORY, name=f"{name} after 6 steps")
    assert not torch.equal(start["embedding.weight"], ours.state_dict()["embedding.weight"])


def test_training_reshuffles_every_epoch():
    """Each epoch visits every example once, in a new order; the orders follow the seed."""
    n, batch = 6, 3
    src = torch.arange(3, 3 + n)[:, None].repeat(1, 2)  # example i starts with token i + 3
    tgt = torch.cat([src, torch.full((n, 1), low.EOS_ID)], dim=1)

    class Recording(low.Transformer):
        def __call__(self, src, tgt_in):
            self.seen.append(src[:, 0].tolist())
            return super().__call__(src, tgt_in)

    def epochs(seed):
        model = Recording(3 + n, d_model=8, n_heads=2, n_encoder_layers=1,
                          n_decoder_layers=1, d_ff=8, dropout=0.0, max_len=3)
        model.seen = []
        low_train.train(model, src, tgt, steps=6, batch_size=batch, warmup=2, seed=seed)
        seen = model.seen
        return [seen[i] + seen[i + 1] for i in range(0, 6, 2)]  # 3 epochs of 2 batches

    orders = epochs(0)
    for order in orders:
        assert sorted(order) == list(range(3, 3 + n))  # every example once per epoch
    assert orders[0] != orders[1] and orders[1] != orders[2]  # reshuffled each epoch
    assert epochs(0) == orders and epochs(1) != orders  # seeded


# --------------------------------------------------------------------------------------
# Data, errors, script
# --------------------------------------------------------------------------------------


def test_sequences_and_teacher_forcing():
    src, tgt = low_train.make_sequences("reverse", 50, 2, 6, 12, seed=0)
    assert src.shape == (50, 6) and tgt.shape == (50, 7)
    for s, t in zip(src.tolist(), tgt.tolist()):
        n = sum(1 for v in s if v != low.PAD_ID)
        assert all(3 <= v < 12 for v in s[:n]) and s[n:] == [0] * (6 - n)
        assert t[:n] == s[:n][::-1] and t[n] == low.EOS_ID and t[n + 1:] == [0] * (6 - n)
    src, tgt = low_train.make_sequences("copy", 10, 4, 4, 12, seed=1)
    assert torch.equal(tgt[:, :4], src) and (tgt[:, 4] == low.EOS_ID).all()
    assert low_train.teacher_forcing_input(torch.tensor([[5, 6, 2]])).tolist() == [[1, 5, 6]]
    predicted, wanted = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 2], [3, 5]])
    assert low_train.exact_match(predicted, wanted) == 0.5


def test_bad_inputs_give_clear_errors():
    q = torch.randn(2, 2, 4, 3)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 5\) does not broadcast"):
        low.scaled_dot_product_attention(q, q, q, attn_mask=low.causal_mask(5))
    with pytest.raises(ValueError, match=r"key_padding_mask: expected shape \(B, T_k\) = \(2, 4\)"):
        low.scaled_dot_product_attention(q, q, q, key_padding_mask=torch.zeros(2, 5, dtype=bool))
    with pytest.raises(ValueError, match="bool tensor"):
        low.scaled_dot_product_attention(q, q, q, key_padding_mask=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"k: expected shape"):
        low.scaled_dot_product_attention(q, torch.randn(2, 2, 4, 5), q)
    with pytest.raises(ValueError, match="4-D float tensor"):
        low.scaled_dot_product_attention(q[0], q, q)
    with pytest.raises(ValueError, match="not divisible by n_heads=3"):
        low.MultiHeadAttention(8, 3)
    mha = low.MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"\(B\*h, T_q, T_k\) = \(4, 4, 4\)"):
        mha(x, x, x, attn_mask=torch.zeros(3, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"d_model=8"):
        mha(torch.randn(2, 4, 6), x, x)
    for shape in [(3, 2, 4, 4), (2, 3, 4, 4)]:  # a 4-D mask: the wrong batch, the wrong heads
        with pytest.raises(ValueError, match=re.escape(f"attn_mask of shape {shape} does not "
                                                       "broadcast to (B, h, T_q, T_k) = "
                                                       "(2, 2, 4, 4)")):
            mha(x, x, x, attn_mask=torch.zeros(shape, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"key \(3, 4, 8\) and value \(3, 4, 8\) must share "
                                         r"\(B, T_k\), and B with query \(2, 4, 8\)"):
        mha(x, torch.randn(3, 4, 8), torch.randn(3, 4, 8))
    model = low.Transformer(10, d_model=8, n_heads=2, n_encoder_layers=1,
                            n_decoder_layers=1, d_ff=8, max_len=5)
    with pytest.raises(ValueError, match="longer than the positional table"):
        model(torch.full((1, 6), 3), torch.full((1, 2), 3))
    with pytest.raises(ValueError, match=r"tokens must be in \[0, 10\)"):
        model(torch.full((1, 3), 10), torch.full((1, 2), 3))
    with pytest.raises(ValueError, match="int64 tensor"):
        model(torch.randn(1, 3), torch.full((1, 2), 3))
    with pytest.raises(ValueError, match=r"same batch size B: got src \(2, 3\), tgt_in \(3, 2\)"):
        model(torch.full((2, 3), 3), torch.full((3, 2), 3))
    with pytest.raises(ValueError, match=r"memory \(B, S, d_model\) and tgt_in \(B, T\)"):
        model.decode(torch.full((3, 2), 3), *model.encode(torch.full((2, 3), 3)))
    with pytest.raises(ValueError, match=r"\(B, T\) with T >= 1, got torch.int64 \(2, 0\)"):
        model(torch.zeros(2, 0, dtype=torch.long), torch.full((2, 2), 3))
    with pytest.raises(ValueError, match="missing"):
        model.load_state_dict({"embedding.weight": torch.zeros(10, 8)})
    with pytest.raises(ValueError, match="task must be one of"):
        low_train.make_sequences("sort", 5, 1, 3, 10)
    with pytest.raises(ValueError, match="must agree"):
        low.label_smoothed_cross_entropy(torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=int))


@pytest.mark.parametrize("argv, option", [
    (["--d-model", "30", "--heads", "4"], "--d-model"), (["--steps", "0"], "--steps"),
    (["--min-len", "5", "--max-len", "4"], "--max-len"), (["--vocab", "3"], "--vocab"),
    (["--task", "sort"], "--task"), (["--dropout", "1"], "--dropout"),
    (["--smoothing", "-0.1"], "--smoothing"), (["--heads", "two"], "--heads"),
    (["--warmup", "0"], "--warmup"), (["--d-ff", "0"], "--d-ff"), (["--layers", "0"], "--layers"),
    (["--n-train", "0"], "--n-train"), (["--threads", "-1"], "--threads"),
    (["--batch-size", "0"], "--batch-size"), (["--lr", "-1"], "--lr"),
    (["--epochs", "3"], "--epochs"),  # training counts steps: refused, not ignored
])
def test_script_rejects_bad_options(argv, option, capsys):
    with pytest.raises(SystemExit) as stop:
        low_train.main(argv + ["--no-progress"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and option in err, err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as stop:
        low_train.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "None" not in text and "(default: 400)" in text  # --steps


def test_script_learns_the_copy_task(tmp_path):
    metrics = low_train.main(["--steps", "100", "--max-len", "5", "--n-test", "100", "--out",
                              str(tmp_path), "--no-progress", "--device", "cpu", "--layers", "1",
                              "--d-model", "32", "--d-ff", "64", "--warmup", "40",
                              "--batch-size", "64"])
    assert metrics["exact_match"] >= 0.5
    assert metrics["token_accuracy"] >= 0.8
    assert metrics["final_loss"] < 0.5 * metrics["first_train_loss"]  # the loss falls
    for name in ("loss", "lr", "attention"):
        assert (tmp_path / f"{name}.png").is_file(), name
