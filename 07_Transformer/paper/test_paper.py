"""Tests of lesson 07, Level 3 (the Transformer as Vaswani et al. 2017 describe it).

- parameter counts of Table 3's base and big models against the formula written out here
  (with the shared 37,000-token vocabulary: 63.1M and 214.2M; the paper says 65M and 213M)
- MultiHeadAttention equals nn.MultiheadAttention with the same weights (outputs, per-head
  weights, gradients; bool and float masks, padding, cross-attention)
- from_torch / to_torch: our model and nn.Transformer give the same outputs both ways,
  with padding and causal masks, in eval mode and in train mode with dropout 0, post-LN
  and pre-LN, with and without final norms; embeddings + nn.Transformer + output layer
  give our logits
- the sinusoidal table, the embedding scale and tying, the label-smoothed loss and the
  Section 5.3 schedule equal their formulas
- a query with every key masked: 0, not NaN, in both attention paths; Section 5.4's dropout
  placement with dropout on (masks recorded, the layers composed by hand with them)
- decoding: the key/value cache gives the same logits and tokens as recomputing the
  prefix (greedy and beam search); beam_size 1 is greedy; a beam wide enough to keep
  every hypothesis finds the best sequence of an exhaustive search; on a hand-built
  scorer the length penalty's alpha decides the winner with the hand-computed scores and
  finished hypotheses stay as they are; <pad> and <bos> are never generated; decoding runs
  in eval mode and restores the mode
- overfits a small batch; train() draws a new seeded batch every step; state-dict round
  trip; torch.manual_seed determinism; the script runs a few steps and its loss falls
- bad input (mismatched masks, batch mismatches, empty sequences, too long sequences,
  d_model not divisible by the heads, wrong dtypes, a padding mask with a cache,
  from_torch of a bias-free nn.Transformer, bad script options) raises a clear error

Run: .venv/bin/python -m pytest 07_Transformer/paper -q
"""

from __future__ import annotations

import itertools
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
from utils.data_loaders import make_reverse_task
from utils.testing import FLOAT64, assert_close, assert_level_purity, tolerance

paper = import_lesson("07_Transformer.paper.transformer_paper")
convert = import_lesson("07_Transformer.paper.convert")
paper_train = import_lesson("07_Transformer.paper.train")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


def _small_config(**overrides) -> paper.TransformerConfig:
    sizes = {"vocab_size": 11, "d_model": 16, "n_heads": 4, "d_ff": 24, "n_encoder_layers": 2,
             "n_decoder_layers": 2, "dropout": 0.0, "max_len": 32}
    return paper.TransformerConfig(**{**sizes, **overrides})


# --------------------------------------------------------------------------------------
# Parameter counts (Table 3)
# --------------------------------------------------------------------------------------


def _expected_count(vocab: int, d: int, d_ff: int, n: int) -> int:
    """The formula: shared embedding, N encoder and N decoder layers, no final norms."""
    attention = 4 * (d * d + d)  # W_q, W_k, W_v, W^O and their biases
    ffn = (d * d_ff + d_ff) + (d_ff * d + d)  # W1, b1, W2, b2
    layer_norm = 2 * d  # gain and bias
    encoder_layer = attention + ffn + 2 * layer_norm
    decoder_layer = 2 * attention + ffn + 3 * layer_norm
    embedding = vocab * d  # source = target = output projection (Section 3.4), no bias
    return embedding + n * (encoder_layer + decoder_layer)


@pytest.mark.parametrize("size, d, d_ff, expected, paper_count", [
    ("base", 512, 2048, 63_082_496, 65e6),
    ("big", 1024, 4096, 214_245_376, 213e6),
])
def test_parameter_counts_of_table_3(size, d, d_ff, expected, paper_count, monkeypatch):
    """The paper's 65M (base) and 213M (big) assume the shared 37,000-token BPE vocabulary of
    WMT 2014 English-German. With it, the formula gives 63,082,496 and 214,245,376. The
    paper rounds, and does not give its exact vocabulary size or what it counted: base
    differs by 1.9M (3,700 vocabulary rows of 512), big by 1.2M, in opposite directions,
    so no single vocabulary size reproduces both figures; both agree to within 3 %."""
    cfg = getattr(paper.TransformerConfig, size)()
    assert (cfg.d_model, cfg.d_ff, cfg.n_encoder_layers, cfg.vocab_size) == (d, d_ff, 6, 37000)
    assert cfg.n_heads == (8 if size == "base" else 16)
    assert cfg.dropout == (0.1 if size == "base" else 0.3)
    assert _expected_count(37000, d, d_ff, 6) == expected
    # normal_ on the meta device imports torch's reference ops (seconds); shapes need no values
    monkeypatch.setattr(nn.init, "normal_", lambda tensor, *args, **kwargs: tensor)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = paper.Transformer(cfg)
    assert paper.count_parameters(model) == expected
    assert abs(expected - paper_count) / paper_count < 0.03
    # with separate source and target embeddings and an output matrix it would be larger
    unshared = paper.TransformerConfig.base(share_embeddings=False, src_vocab=37000,
                                            tgt_vocab=37000) if size == "base" else None
    if unshared is not None:
        with torch.device("meta"):
            assert paper.count_parameters(paper.Transformer(unshared)) == expected + 2 * 37000 * d


def test_embeddings_are_shared_and_scaled():
    torch.manual_seed(0)
    model = paper.Transformer(_small_config()).eval()
    assert model.src_embed.weight is model.tgt_embed.weight is model.lm_head.weight
    tokens = torch.tensor([[3, 4, 5, 0]])
    expected = model.src_embed.weight[tokens] * 4.0 + model.pos_encoding.pe[:4]  # sqrt(16)
    assert_close(model.embed(tokens, model.src_embed), expected, tolerance(torch.float32))


def test_sinusoidal_table_equals_the_formula():
    d, length = 10, 7
    pe = paper.SinusoidalPositionalEncoding(d, length).pe
    for pos in range(length):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(pe[pos, 2 * i], math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-6)


# --------------------------------------------------------------------------------------
# Multi-head attention against nn.MultiheadAttention
# --------------------------------------------------------------------------------------


def _mha_pair(d, h, dtype, device, bias=True):
    torch.manual_seed(0)
    ours = paper.MultiHeadAttention(d, h, bias=bias).to(dtype=dtype, device=device)
    ref = nn.MultiheadAttention(d, h, bias=bias, batch_first=True).to(dtype=dtype, device=device)
    with torch.no_grad():
        ours.in_proj_weight.normal_(std=0.4)  # moderate values: float32 sums stay exact
        ours.out_proj.weight.normal_(std=0.3)  # to ~1e-6 relative
        if bias:
            ours.in_proj_bias.normal_(std=0.3)
            ours.out_proj.bias.normal_(std=0.3)
    ref.load_state_dict(ours.state_dict())  # the same names and layout
    return ours, ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["self", "cross"])
def test_multi_head_attention_equals_torch(device, dtype, kind):
    ours, ref = _mha_pair(16, 4, dtype, device)
    tol = tolerance(dtype, device)
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 5, 16, generator=g, dtype=dtype).to(device).requires_grad_()
    if kind == "self":
        k = v = q
        attn_mask = paper.causal_mask(5, device=device)
    else:
        k = torch.randn(3, 7, 16, generator=g, dtype=dtype).to(device).requires_grad_()
        v = k
        attn_mask = torch.rand(5, 7, generator=g).lt(0.3).to(device)
        attn_mask[:, 0] = False  # every query keeps a key
    t_k = k.shape[1]
    pad = torch.zeros(3, t_k, dtype=torch.bool, device=device)
    pad[1, -2:] = True
    for fused in (False, True):  # step by step (the weights returned), then the fused kernel
        ours.fused = fused
        out, w = ours(q, k, v, attn_mask=attn_mask, key_padding_mask=pad)
        ref_out, ref_w = ref(q, k, v, attn_mask=attn_mask, key_padding_mask=pad,
                             need_weights=True, average_attn_weights=False)
        assert_close(out, ref_out, tol, "attention output")
        if fused:
            assert w is None
        else:
            assert_close(w, ref_w, tol, "per-head weights")
        grad = torch.randn_like(out)
        mine = torch.autograd.grad(out, [q, *ours.parameters()] + ([k] if kind == "cross"
                                                                    else []), grad)
        theirs = torch.autograd.grad(ref_out, [q, *ref.parameters()] + ([k] if kind == "cross"
                                                                         else []), grad)
        for a, b in zip(mine, theirs):
            assert_close(a, b, tol, "gradient")


def test_multi_head_attention_float_mask_and_no_bias(device):
    ours, ref = _mha_pair(12, 3, torch.float64, device, bias=False)
    x = torch.randn(2, 4, 12, dtype=torch.float64, device=device)
    mask = torch.randn(2 * 3, 4, 4, dtype=torch.float64, device=device)  # (B * h, T, T) float
    out, w = ours(x, x, x, attn_mask=mask)
    ref_out, ref_w = ref(x, x, x, attn_mask=mask, average_attn_weights=False)
    assert_close(out, ref_out, FLOAT64)
    assert_close(w, ref_w, FLOAT64)


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 3), t_q=st.integers(1, 6), t_k=st.integers(1, 6),
       heads=st.integers(1, 4), d_k=st.integers(1, 5))
def test_multi_head_attention_shapes_property(batch, t_q, t_k, heads, d_k):
    d = heads * d_k
    ours, ref = _mha_pair(d, heads, torch.float64, "cpu")
    q = torch.randn(batch, t_q, d, dtype=torch.float64)
    kv = torch.randn(batch, t_k, d, dtype=torch.float64)
    out, w = ours(q, kv, kv)
    assert out.shape == (batch, t_q, d) and w.shape == (batch, heads, t_q, t_k)
    assert_close(out, ref(q, kv, kv, need_weights=False)[0], FLOAT64)
    assert_close(w.sum(-1), torch.ones(batch, heads, t_q, dtype=torch.float64), FLOAT64)


def test_fully_masked_rows_give_zero_in_both_attention_paths(device):
    """A query with every key masked: weights 0 and attention output 0 (out_proj's bias
    alone), finite gradients, the same step by step (fused=False, the default) and with
    the fused kernel (fused=True)."""
    torch.manual_seed(0)
    attention = paper.MultiHeadAttention(8, 2).double().to(device)
    with torch.no_grad():
        attention.out_proj.bias.normal_()
    x = torch.randn(2, 4, 8, dtype=torch.float64).to(device).requires_grad_()
    attn_mask = torch.zeros(4, 4, dtype=torch.bool, device=device)
    attn_mask[2] = True  # query 2 may see no key, in both examples
    padding = torch.zeros(2, 4, dtype=torch.bool, device=device)
    padding[1] = True  # example 1: every key is padding
    outputs, grads = [], []
    for fused in (True, False):
        attention.fused = fused
        out, weights = attention(x, x, x, attn_mask=attn_mask, key_padding_mask=padding)
        assert torch.isfinite(out).all(), f"fused={fused}"
        bias = attention.out_proj.bias.detach().expand(4, 8)
        assert_close(out[1], bias, FLOAT64, "dead example: out_proj bias alone")
        assert_close(out[0, 2], bias[0], FLOAT64, "dead query: out_proj bias alone")
        if not fused:
            assert not weights[1].any() and not weights[0, :, 2].any()
            assert_close(weights[0].sum(-1)[:, [0, 1, 3]],
                         torch.ones(2, 3, dtype=torch.float64, device=device), FLOAT64,
                         "live rows sum to 1")
        outputs.append(out)
        grads.append(torch.autograd.grad(out.sum(), x)[0])
    assert_close(outputs[0], outputs[1], FLOAT64, "fused == step by step")
    assert torch.isfinite(grads[0]).all() and torch.isfinite(grads[1]).all()
    assert_close(grads[0], grads[1], FLOAT64, "gradients, fused == step by step")


def test_fused_attention_option_gives_the_same_model_decoding_and_maps():
    """fused_attention=True (F.scaled_dot_product_attention in every attention) gives the
    step-by-step model's logits (padding included) and cached decoding; attention_maps still
    returns every head's weights, and leaves the modules fused."""
    model = _random_model()
    fused = _random_model(fused_attention=True)
    fused.load_state_dict(model.state_dict())
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]])
    tgt = torch.tensor([[1, 5, 6, 7], [1, 3, 0, 0]])
    assert_close(fused(src, tgt), model(src, tgt), FLOAT64, "logits")
    assert torch.equal(paper.greedy_decode(fused, src, 6), paper.greedy_decode(model, src, 6))
    maps, expected = fused.attention_maps(src, tgt), model.attention_maps(src, tgt)
    for kind in ("encoder", "decoder_self", "cross"):
        assert len(maps[kind]) == 2
        for got, want in zip(maps[kind], expected[kind]):
            assert_close(got, want, FLOAT64, kind)
    attention = [m for m in fused.modules() if isinstance(m, paper.MultiHeadAttention)]
    assert len(attention) == 6 and all(m.fused for m in attention)


# --------------------------------------------------------------------------------------
# Dropout where Section 5.4 puts it (masks recorded, then the layer composed by hand)
# --------------------------------------------------------------------------------------


def _record_dropout(monkeypatch):
    """Replace F.dropout (used by nn.Dropout and by the step-by-step attention) with one
    that draws its masks from a seeded generator and records them.

    Returns {p: [the multipliers keep / (1 - p), in call order]}: giving each dropout site
    its own p tells the sites apart.
    """
    masks: dict[float, list[torch.Tensor]] = {}
    generator = torch.Generator().manual_seed(0)

    def dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return input
        keep = torch.rand(input.shape, generator=generator, dtype=torch.float64) >= p
        masks.setdefault(p, []).append(keep.to(input.dtype) / (1 - p))
        return input * masks[p][-1]

    monkeypatch.setattr(F, "dropout", dropout)
    return masks


def _attention_with_weight_mask(attention, query, key, weight_mask, **masks):
    """Multi-head attention composed by hand: the module's own weights (eval mode, no
    dropout), multiplied by ``weight_mask`` (or not, if None), then @ V and W^O."""
    _, weights = attention.eval()(query, key, key, **masks)  # (B, h, T, S)
    if weight_mask is not None:
        weights = weights * weight_mask
    d, h = attention.d_model, attention.n_heads
    v = F.linear(key, attention.in_proj_weight[2 * d:], attention.in_proj_bias[2 * d:])
    v = v.view(key.shape[0], -1, h, d // h).transpose(1, 2)  # (B, h, S, d_k)
    heads = (weights @ v).transpose(1, 2).reshape(query.shape[0], -1, d)  # (B, T, d)
    return attention.out_proj(heads)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_encoder_layer_dropout_is_where_section_5_4_puts_it(norm_first, monkeypatch):
    """Residual dropout (p 0.1) on each sub-layer's output before the add (and the norm);
    attention dropout (0.2) on the weights; FFN dropout (0.3) after the ReLU."""
    masks = _record_dropout(monkeypatch)
    torch.manual_seed(0)
    layer = paper.EncoderLayer(8, 2, 12, dropout=0.1, attn_dropout=0.2, ffn_dropout=0.3,
                               norm_first=norm_first).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    out = layer.train()(x)
    assert [len(masks.get(p, [])) for p in (0.1, 0.2, 0.3)] == [2, 1, 1]
    residual, (weight_mask,), (hidden_mask,) = masks[0.1], masks[0.2], masks[0.3]
    layer.eval()

    def attend(h):
        return _attention_with_weight_mask(layer.self_attn, h, h, weight_mask)

    def ffn(h):
        return layer.ffn.linear2(torch.relu(layer.ffn.linear1(h)) * hidden_mask)

    norm1, norm2 = layer.residual1.norm, layer.residual2.norm
    if norm_first:  # x + Dropout(Sublayer(LayerNorm(x)))
        h = x + attend(norm1(x)) * residual[0]
        expected = h + ffn(norm2(h)) * residual[1]
    else:  # LayerNorm(x + Dropout(Sublayer(x)))
        h = norm1(x + attend(x) * residual[0])
        expected = norm2(h + ffn(h) * residual[1])
    assert_close(out, expected, FLOAT64, "encoder layer in training mode")


def test_decoder_layer_and_embedding_dropout_are_where_section_5_4_puts_them(monkeypatch):
    masks = _record_dropout(monkeypatch)
    torch.manual_seed(0)
    model = paper.Transformer(_small_config(dropout=0.1, n_encoder_layers=1,
                                            n_decoder_layers=1)).double().train()
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    embedded = model.embed(tokens, model.src_embed)
    (embedding_mask,) = masks.pop(0.1)
    scaled = model.src_embed.weight[tokens] * 4.0  # sqrt(d_model = 16)
    expected = (scaled + model.pos_encoding.pe[:4]) * embedding_mask  # dropout on the sum
    assert_close(embedded, expected, FLOAT64, "Dropout(E[x] sqrt(d) + PE)")

    layer = model.decoder.layers[0]
    x = torch.randn(2, 4, 16, dtype=torch.float64)
    memory = torch.randn(2, 3, 16, dtype=torch.float64)
    causal, memory_padding = paper.causal_mask(4), torch.tensor([[False] * 3, [False, True, True]])
    out = layer(x, memory, causal, None, memory_padding)
    first, second, third = masks.pop(0.1)
    layer.eval()
    h = layer.residual1.norm(x + _attention_with_weight_mask(layer.self_attn, x, x, None,
                                                             attn_mask=causal) * first)
    h = layer.residual2.norm(h + _attention_with_weight_mask(
        layer.cross_attn, h, memory, None, key_padding_mask=memory_padding) * second)
    expected = layer.residual3.norm(h + layer.ffn(h) * third)
    assert_close(out, expected, FLOAT64, "decoder layer in training mode")
    assert not masks  # nothing else was dropped


# --------------------------------------------------------------------------------------
# from_torch / to_torch
# --------------------------------------------------------------------------------------


def _inputs(device, dtype):
    g = torch.Generator().manual_seed(2)
    src = torch.randn(3, 7, 16, generator=g, dtype=dtype).to(device)
    tgt = torch.randn(3, 5, 16, generator=g, dtype=dtype).to(device)
    src_pad = torch.zeros(3, 7, dtype=torch.bool, device=device)
    src_pad[0, -3:] = True
    src_pad[2, -1:] = True
    tgt_pad = torch.zeros(3, 5, dtype=torch.bool, device=device)
    tgt_pad[1, -2:] = True
    return src, tgt, src_pad, tgt_pad


def _compare_stacks(model, tt, device, dtype, train):
    """Encoder memory and decoder output of ours and of tt on the same inputs and masks."""
    src, tgt, src_pad, tgt_pad = _inputs(device, dtype)
    causal = paper.causal_mask(5, device=device)
    tol = tolerance(dtype, device)
    model.train(train)
    tt.train(train)
    memory = model.encoder(src, src_pad)
    ref_memory = tt.encoder(src, src_key_padding_mask=src_pad)
    keep = ~src_pad  # nn.TransformerEncoder may zero padded rows; compare the real ones
    assert_close(memory[keep], ref_memory[keep], tol, "encoder memory")
    out = model.decoder(tgt, memory, causal, tgt_pad, src_pad)
    ref_out = tt.decoder(tgt, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_pad,
                         memory_key_padding_mask=src_pad, tgt_is_causal=True)
    assert_close(out, ref_out, tol, "decoder output")
    full = tt(src, tgt, tgt_mask=causal, src_key_padding_mask=src_pad,
              tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
    assert_close(out, full, tol, "nn.Transformer.forward")


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_from_torch_gives_the_same_outputs(device, norm_first, train):
    torch.manual_seed(0)
    dtype = torch.float64
    tt = nn.Transformer(16, 4, 2, 2, 24, dropout=0.0, batch_first=True,
                        norm_first=norm_first).to(dtype=dtype, device=device)
    tt.encoder.enable_nested_tensor = False
    model = convert.from_torch(tt, vocab_size=11).to(dtype=dtype, device=device)
    assert model.config.final_norm and model.config.norm_first == norm_first
    _compare_stacks(model, tt, device, dtype, train)


@pytest.mark.parametrize("norm_first, final_norm", [(False, False), (True, True)])
def test_to_torch_gives_the_same_outputs_and_logits(device, norm_first, final_norm):
    torch.manual_seed(0)
    dtype = torch.float64
    model = paper.Transformer(_small_config(norm_first=norm_first, final_norm=final_norm))
    model = model.to(dtype=dtype, device=device)
    with torch.no_grad():  # non-trivial LayerNorm gains and biases
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    tt = convert.to_torch(model)
    assert (tt.encoder.norm is None) == (not final_norm)
    for train in (False, True):
        _compare_stacks(model, tt, device, dtype, train)
    # whole model: our embeddings -> nn.Transformer -> our output layer == our logits
    model.eval()
    tt.eval()
    src = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 3, 4]], device=device)
    tgt = torch.tensor([[1, 3, 4, 0], [1, 7, 8, 9]], device=device)
    hidden = tt(model.embed(src, model.src_embed), model.embed(tgt, model.tgt_embed),
                tgt_mask=paper.causal_mask(4, device=device), src_key_padding_mask=src == 0,
                tgt_key_padding_mask=tgt == 0, memory_key_padding_mask=src == 0)
    assert_close(model.lm_head(hidden), model(src, tgt), FLOAT64, "logits")
    # and back again: from_torch(to_torch(model)) holds the same stacks
    again = convert.from_torch(tt, src_embedding=model.src_embed).to(dtype=dtype, device=device)
    assert_close(again.eval()(src, tgt), model(src, tgt), FLOAT64, "round trip")


def test_from_torch_takes_given_embeddings_and_checks_its_input():
    tt = nn.Transformer(16, 4, 1, 1, 24, dropout=0.1, batch_first=True)
    src_emb, tgt_emb = nn.Embedding(9, 16), nn.Embedding(13, 16)
    model = convert.from_torch(tt, src_embedding=src_emb, tgt_embedding=tgt_emb)
    cfg = model.config
    assert (cfg.src_vocab, cfg.tgt_vocab, cfg.share_embeddings) == (9, 13, False)
    assert (cfg.dropout, cfg.attn_dropout, cfg.ffn_dropout) == (0.1, 0.1, 0.1)
    assert torch.equal(model.src_embed.weight, src_emb.weight)
    assert torch.equal(model.tgt_embed.weight, tgt_emb.weight)
    with pytest.raises(TypeError, match="nn.Transformer"):
        convert.from_torch(nn.Linear(2, 2), vocab_size=5)
    with pytest.raises(ValueError, match="vocab_size"):
        convert.from_torch(tt)


# --------------------------------------------------------------------------------------
# Loss and schedule (Sections 5.3, 5.4)
# --------------------------------------------------------------------------------------


def test_label_smoothed_loss_equals_the_formula():
    cfg = _small_config()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, cfg.tgt_vocab, generator=g, dtype=torch.float64)
    target = torch.tensor([3, 4, 0, 5, 0, 2])  # two <pad> targets, ignored
    log_p = torch.log_softmax(logits, -1)
    eps, k = 0.1, cfg.tgt_vocab
    per_token = -(1 - eps) * log_p[torch.arange(6), target] - eps / k * log_p.sum(-1)
    expected = per_token[target != 0].mean()
    assert_close(paper.make_loss(cfg)(logits, target), expected, FLOAT64)


def test_noam_schedule_equals_section_5_3():
    d, warmup = 512, 4000
    lam = paper.noam_lambda(d, warmup)
    for step in (1, 100, 3999, 4000, 4001, 20000):
        expected = d ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert math.isclose(lam(step - 1), expected, rel_tol=1e-12)
    peak = max(range(1, 10000), key=lambda s: lam(s - 1))
    assert peak == warmup and math.isclose(lam(warmup - 1), (d * warmup) ** -0.5)
    # through torch.optim: Adam(0.9, 0.98, 1e-9) with lr 1, scaled by the scheduler
    param = nn.Parameter(torch.zeros(1))
    opt = paper.make_optimizer(nn.ParameterList([param]))
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9
    sched = paper.make_noam_scheduler(opt, d, warmup, factor=2.0)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([2.0 * lam(i) for i in range(5)], rel=1e-12)


# --------------------------------------------------------------------------------------
# Decoding: cache, greedy, beam search
# --------------------------------------------------------------------------------------


def _random_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = paper.Transformer(_small_config(**overrides)).double().eval()
    with torch.no_grad():  # sharper distributions than at initialisation
        model.src_embed.weight.mul_(3.0)
    return model


def test_cached_decoding_gives_the_same_logits():
    model = _random_model()
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]])
    tgt = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 3, 3, 4, 10, 2]])
    memory = model.encode(src)
    full = model.decode(tgt, memory, src == 0, tgt_key_padding_mask=torch.zeros_like(tgt,
                                                                                   dtype=bool))
    cache = model.init_cache()
    steps = [model.decode(tgt[:, t:t + 1], memory, src == 0, cache=cache) for t in range(6)]
    assert_close(torch.cat(steps, 1), full, FLOAT64, "one token at a time")
    cache = model.init_cache()  # several tokens per call: the first 4, then 2
    chunks = [model.decode(tgt[:, :4], memory, src == 0, cache=cache),
              model.decode(tgt[:, 4:], memory, src == 0, cache=cache)]
    assert_close(torch.cat(chunks, 1), full, FLOAT64, "in two chunks")
    assert cache["pos"] == 6 and cache["layers"][0]["self"]["k"].shape == (2, 4, 6, 4)


def test_greedy_and_beam_search_same_with_and_without_cache():
    model = _random_model()
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0], [5, 5, 5, 5, 5]])
    greedy = paper.greedy_decode(model, src, max_len=8, use_cache=True)
    assert torch.equal(greedy, paper.greedy_decode(model, src, max_len=8, use_cache=False))
    # the greedy tokens, checked step by step against the full forward pass
    prefix = torch.ones(3, 1, dtype=torch.long)
    for t in range(greedy.shape[1]):
        logits = model(src, prefix)[:, -1]
        logits[:, [0, 1]] = -math.inf  # <pad> and <bos> are never generated
        nxt = logits.argmax(-1)
        done = (greedy[:, :t] == 2).any(1) if t else torch.zeros(3, dtype=torch.bool)
        assert torch.equal(greedy[~done, t], nxt[~done])
        prefix = torch.cat([prefix, greedy[:, t:t + 1]], 1)
    for beam in (1, 3):
        cached = paper.beam_search(model, src, beam, max_len=8, use_cache=True)
        assert torch.equal(cached, paper.beam_search(model, src, beam, max_len=8, use_cache=False))
    assert torch.equal(paper.beam_search(model, src, 1, max_len=8), greedy)


@torch.no_grad()
def _sequence_score(model, src, seq, alpha):
    """log P(seq | src) / lp(len(seq)) by teacher forcing."""
    dec_in = torch.tensor([[1, *seq[:-1]]])
    log_p = torch.log_softmax(model(src, dec_in)[0].double(), -1)
    total = sum(float(log_p[t, tok]) for t, tok in enumerate(seq))
    return total / ((5 + len(seq)) / 6) ** alpha


def test_wide_beam_finds_the_best_sequence_of_an_exhaustive_search():
    # vocabulary 5 (<pad>, <bos>, <eos>, 3, 4), at most 3 tokens: <pad> and <bos> are never
    # generated, so 3 + 9 + 27 hypotheses; a beam of 125 keeps them all, so it must return
    # the best-scoring finished one
    model = _random_model(seed=3, vocab_size=5)
    src = torch.tensor([[3, 4, 4]])
    alpha, max_len = 0.6, 3
    finished = [(*body, 2) for n in range(max_len) for body in itertools.product((3, 4),
                                                                                   repeat=n)]
    best = max(finished, key=lambda s: _sequence_score(model, src, list(s), alpha))
    found, score = paper.beam_search(model, src, beam_size=125, max_len=max_len,
                                     length_penalty_alpha=alpha, return_scores=True)
    found = found[0].tolist()
    found = found[:found.index(2) + 1] if 2 in found else found
    assert tuple(found) == best
    assert float(score[0]) == pytest.approx(_sequence_score(model, src, found, alpha), rel=1e-9)


class _TableModel(nn.Module):
    """A stand-in for Transformer in beam_search: the next-token probabilities come from a
    table keyed by the tokens generated so far (after <bos>), ``OTHER`` for any other prefix.
    Tokens: 0 <pad>, 1 <bos>, 2 <eos>, 3 "a", 4 "b"."""

    #             pad  bos  eos   a     b
    TABLE = {(): [0.0, 0.0, 0.4, 0.55, 0.05],
             (3,): [0.0, 0.0, 0.7, 0.2, 0.1]}
    OTHER = [0.0, 0.0, 0.5, 0.25, 0.25]

    def __init__(self):
        super().__init__()
        self.config = _small_config(vocab_size=5)

    def encode(self, src, src_key_padding_mask=None):
        return torch.zeros(src.shape[0], src.shape[1], 1, dtype=torch.float64)

    def decode(self, tgt, memory, memory_key_padding_mask=None):
        last = torch.tensor([self.TABLE.get(tuple(row[1:]), self.OTHER) for row in tgt.tolist()],
                            dtype=torch.float64).log()  # (B, V): log-probabilities
        return last[:, None, :].expand(-1, tgt.shape[1], -1)  # (B, T, V)

    @classmethod
    def score(cls, sequence, alpha):
        """log P(Y) / ((5 + |Y|) / 6)^alpha by hand, Y up to and including <eos>."""
        log_p = sum(math.log(cls.TABLE.get(tuple(sequence[:t]), cls.OTHER)[token])
                    for t, token in enumerate(sequence))
        return log_p / ((5 + len(sequence)) / 6) ** alpha


def _until_eos(row):
    row = row.tolist()
    return row[:row.index(2) + 1] if 2 in row else row


@pytest.mark.parametrize("alpha, winner", [(0.0, [2]), (0.6, [3, 2]), (1.0, [3, 2])])
def test_beam_search_length_penalty_alpha_decides_the_winner(alpha, winner):
    """<eos> at once: P = 0.4, |Y| = 1; "a <eos>": P = 0.55 * 0.7 = 0.385, |Y| = 2. Raw
    log-probabilities (alpha 0) prefer the short one; the GNMT penalty lp = ((5 + |Y|)/6)^alpha
    divides the longer one's by (7/6)^alpha, enough to win from alpha ~ 0.27 on."""
    assert _TableModel.score([2], alpha) == pytest.approx(math.log(0.4), rel=1e-12)
    assert _TableModel.score([3, 2], alpha) == pytest.approx(
        math.log(0.385) / (7 / 6) ** alpha, rel=1e-12)
    model, src = _TableModel(), torch.tensor([[3, 3]])
    for beam_size in (2, 3):
        tokens, score = paper.beam_search(model, src, beam_size, max_len=4,
                                          length_penalty_alpha=alpha, use_cache=False,
                                          return_scores=True)
        assert _until_eos(tokens[0]) == winner, f"beam {beam_size}"
        assert float(score[0]) == pytest.approx(_TableModel.score(winner, alpha), rel=1e-12)
        assert paper.length_penalty(torch.tensor([len(winner)]), alpha).item() == pytest.approx(
            ((5 + len(winner)) / 6) ** alpha, rel=1e-12)


@pytest.mark.parametrize("alpha, winner", [(0.0, [2]), (1.0, [3, 2])])
def test_beam_search_finished_hypotheses_stay_as_they_are(alpha, winner):
    """A hypothesis that produced <eos> is not extended (only <pad> follows) and keeps its
    score while the other beams go on: the answer does not depend on max_len."""
    model, src = _TableModel(), torch.tensor([[3, 3]])
    for max_len in (2, 3, 4, 6):
        tokens, score = paper.beam_search(model, src, 3, max_len=max_len,
                                          length_penalty_alpha=alpha, use_cache=False,
                                          return_scores=True)
        row = tokens[0].tolist()
        assert _until_eos(tokens[0]) == winner, f"max_len {max_len}"
        assert all(t == 0 for t in row[len(winner):]), f"only <pad> after <eos>: {row}"
        assert float(score[0]) == pytest.approx(_TableModel.score(winner, alpha), rel=1e-12)


class _PadLover(_TableModel):
    """Would rather say <pad> or <bos> than anything else."""

    #             pad  bos  eos   a     b
    TABLE = {(): [0.5, 0.3, 0.05, 0.15, 0.0]}
    OTHER = [0.5, 0.3, 0.15, 0.05, 0.0]


def test_decoding_never_generates_pad_or_bos():
    model, src = _PadLover(), torch.tensor([[3, 3]])
    assert paper.greedy_decode(model, src, 4, use_cache=False)[0].tolist() == [3, 2]
    tokens, score = paper.beam_search(model, src, 2, max_len=4, length_penalty_alpha=0.0,
                                      use_cache=False, return_scores=True)
    assert tokens[0].tolist() == [2, 0] and float(score[0]) == pytest.approx(math.log(0.05))


def test_decoding_runs_in_eval_mode_and_restores_the_mode():
    """With dropout 0.5 in training mode, greedy and beam search still give the eval-mode
    tokens, every call, and leave the model in training mode."""
    model = _random_model(seed=4, dropout=0.5, attn_dropout=0.5, ffn_dropout=0.5)
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0], [5, 6, 5, 6, 5], [10, 9, 8, 7, 6]])
    greedy, beam = paper.greedy_decode(model, src, 8), paper.beam_search(model, src, 3, max_len=8)
    model.train()
    for use_cache in (True, False):
        for _ in range(2):
            assert torch.equal(paper.greedy_decode(model, src, 8, use_cache=use_cache), greedy)
            assert model.training
            assert torch.equal(paper.beam_search(model, src, 3, max_len=8, use_cache=use_cache),
                               beam)
            assert model.training
    maps = model.attention_maps(src, torch.ones(4, 2, dtype=torch.long))
    assert model.training and torch.equal(
        maps["cross"][0], model.eval().attention_maps(src, torch.ones(4, 2, dtype=torch.long))
        ["cross"][0])


# --------------------------------------------------------------------------------------
# Training, saving, determinism
# --------------------------------------------------------------------------------------


def test_overfits_a_small_batch():
    torch.manual_seed(0)
    cfg = _small_config(d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1,
                        n_decoder_layers=1, vocab_size=10)
    model = paper.Transformer(cfg)
    src, tgt = (torch.from_numpy(a) for a in make_reverse_task(8, 5, 10, 0, reserved=3))
    dec_in, labels = paper_train.add_bos_eos(tgt, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()  # no smoothing: the loss can go to 0
    first = None
    for _ in range(150):
        loss = loss_fn(model(src, dec_in).reshape(-1, 10), labels.reshape(-1))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * first
    assert paper_train.exact_match(model, src, tgt) == 1.0


def test_training_draws_a_new_seeded_batch_every_step():
    """train() samples a fresh random batch each step (never the same rows in the same order
    over and over), reproducibly from its seed."""
    cfg = _small_config(vocab_size=24, n_encoder_layers=1, n_decoder_layers=1)
    src = torch.arange(3, 23)[:, None].repeat(1, 3)  # example i starts with token i + 3
    tgt = src.clone()

    def batches(seed):
        torch.manual_seed(0)
        model, seen = paper.Transformer(cfg), []
        model.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 0].tolist()))
        history = paper_train.train(model, src, tgt, steps=4, batch_size=5, warmup=2,
                                    lr_factor=0.5, seed=seed)
        assert len(history["loss"]) == len(history["lr"]) == 4 and model.training
        return seen

    first = batches(0)
    assert len(first) == 4 and len({tuple(b) for b in first}) == 4  # every step a new batch
    assert len({token for b in first for token in b}) > 10  # drawn from the whole set
    assert batches(0) == first and batches(1) != first  # seeded


def test_state_dict_round_trip(tmp_path):
    model = _random_model(seed=0)
    path = tmp_path / "transformer.pt"
    torch.save(model.state_dict(), path)
    other = _random_model(seed=1)
    src, tgt = torch.tensor([[3, 4, 5]]), torch.tensor([[1, 6, 7]])
    assert not torch.allclose(other(src, tgt), model(src, tgt))
    other.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(other(src, tgt), model(src, tgt))
    assert other.lm_head.weight is other.src_embed.weight  # still tied after loading
    assert "pos_encoding.pe" not in model.state_dict()  # a function of the sizes, not saved


def test_manual_seed_determinism():
    def run():
        torch.manual_seed(123)
        model = paper.Transformer(_small_config(dropout=0.3)).train()  # dropout active
        return model(torch.tensor([[3, 4, 5, 6]]), torch.tensor([[1, 7, 8]]))

    a, b = run(), run()
    assert torch.equal(a, b)
    torch.manual_seed(124)
    other = paper.Transformer(_small_config(dropout=0.3)).train()
    assert not torch.allclose(other(torch.tensor([[3, 4, 5, 6]]), torch.tensor([[1, 7, 8]])), a)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        paper.TransformerConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        paper.MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="share_embeddings"):
        paper.TransformerConfig(src_vocab=10, tgt_vocab=12)
    model = _random_model()
    src, tgt = torch.tensor([[3, 4, 5]]), torch.tensor([[1, 6]])
    with pytest.raises(ValueError, match="src_key_padding_mask"):
        model(src, tgt, src_key_padding_mask=torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        model.encode(src, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        model.encode(src, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="positional table"):
        model(torch.full((1, 33), 3), tgt)
    with pytest.raises(ValueError, match="token ids must lie"):
        model(torch.tensor([[3, 11]]), tgt)
    with pytest.raises(TypeError, match="int64"):
        model(torch.rand(1, 3), tgt)
    attention = paper.MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="attn_mask"):
        attention(x, x, x, attn_mask=torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="attn_mask"):
        attention(x, x, x, attn_mask=torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="query"):
        attention(torch.randn(2, 3, 6), x, x)
    with pytest.raises(ValueError, match="beam_size"):
        paper.beam_search(model, src, beam_size=0)


def test_entry_points_say_what_they_expected():
    attention = paper.MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    for shape in [(3, 2, 3, 3), (2, 4, 3, 3)]:  # the wrong batch, then the wrong head count
        got = re.escape(str(shape))
        with pytest.raises(ValueError, match=r"4-D mask must be \(B, h, T_q, T_k\) = "
                                             r"\(2, 2, 3, 3\).*got " + got):
            attention(x, x, x, attn_mask=torch.zeros(shape, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B \* h, T_q, T_k\) = \(4, 3, 3\), got \(2, 3, 3\)"):
        attention(x, x, x, attn_mask=torch.zeros(2, 3, 3, dtype=torch.bool))
    other = torch.randn(3, 3, 8)
    with pytest.raises(ValueError, match=r"query \(2, 3, 8\) and key/value \(3, 3, 8\): "
                                         "expected the same batch size"):
        attention(x, other, other)
    model = _random_model()
    src, tgt = torch.tensor([[3, 4, 5], [6, 7, 8]]), torch.tensor([[1, 6], [1, 7], [1, 8]])
    with pytest.raises(ValueError, match=r"same batch size B: got src \(2, 3\), tgt \(3, 2\)"):
        model(src, tgt)
    with pytest.raises(ValueError, match=r"same batch size B: got memory \(2, 3, 16\), tgt "
                                         r"\(3, 2\)"):
        model.decode(tgt, model.encode(src))
    with pytest.raises(ValueError, match=r"src: expected token ids of shape \(B, T\) with "
                                         r"T >= 1, got \(2, 0\)"):
        model(torch.zeros(2, 0, dtype=torch.long), tgt[:2])
    with pytest.raises(ValueError, match=r"tgt: .*T >= 1, got \(2, 0\)"):
        model(src, torch.zeros(2, 0, dtype=torch.long))
    cache, memory = model.init_cache(), model.encode(src)
    with pytest.raises(ValueError, match="tgt_key_padding_mask cannot be used with a cache"):
        model.decode(tgt[:2, :1], memory, cache=cache,
                     tgt_key_padding_mask=torch.zeros(2, 1, dtype=torch.bool))
    with pytest.warns(UserWarning, match="bias=False"):  # torch's warning about nested tensors
        no_bias = nn.Transformer(16, 4, 1, 1, 24, bias=False, batch_first=True)
    with pytest.raises(ValueError, match="built with bias=False; our Transformer expects biases"):
        convert.from_torch(no_bias, vocab_size=11)


def test_addition_task_is_correct():
    src, tgt = paper_train.make_addition_task(50, 3, seed=0)
    assert src.shape == (50, 7) and tgt.shape == (50, 4)
    for s, t in zip(src, tgt):
        text = "".join(paper_train.tokens_to_text(s, "addition"))
        a, b = (int(part) for part in text.split("+"))
        assert int("".join(paper_train.tokens_to_text(t, "addition"))) == a + b
    plus = paper_train.PLUS
    assert "".join(paper_train.tokens_to_text([4, 5, 6, plus, 7, 8, 9], "addition")) == "123+456"


@pytest.mark.slow
def test_default_copy_run_reaches_100_percent(tmp_path):
    metrics = paper_train.main(["--out", str(tmp_path), "--no-progress"])
    assert metrics["exact_match"] == 1.0
    assert (tmp_path / "attention_cross.png").is_file() and (tmp_path / "loss.png").is_file()


def test_script_trains_a_few_steps_and_the_loss_falls(tmp_path):
    metrics = paper_train.main(["--steps", "25", "--seq-len", "4", "--d-model", "16",
                                "--heads", "2", "--layers", "1", "--warmup", "5", "--lr", "1.0",
                                "--batch-size", "32", "--n-test", "30", "--device", "cpu",
                                "--no-progress", "--out", str(tmp_path)])
    assert metrics["steps"] == 25
    assert metrics["last_train_loss"] < 0.8 * metrics["first_train_loss"]
    assert 0 <= metrics["exact_match"] <= 1 and 0 <= metrics["token_accuracy"] <= 1
    for name in ("loss", "lr_schedule", "attention_cross"):
        assert (tmp_path / f"{name}.png").is_file(), name


@pytest.mark.parametrize("argv, option", [
    (["--steps", "0"], "--steps"), (["--seq-len", "-2"], "--seq-len"),
    (["--d-model", "wide"], "--d-model"), (["--heads", "0"], "--heads"),
    (["--layers", "0"], "--layers"), (["--dropout", "1.5"], "--dropout"),
    (["--warmup", "0"], "--warmup"), (["--n-test", "0"], "--n-test"),
    (["--threads", "-1"], "--threads"), (["--lr", "0"], "--lr"),
    (["--batch-size", "0"], "--batch-size"), (["--d-model", "30"], "--d-model"),
    (["--task", "division"], "--task"),
    (["--epochs", "3"], "--epochs"),  # training counts steps: refused, not ignored
])
def test_script_rejects_bad_options(argv, option, capsys):
    with pytest.raises(SystemExit) as stop:
        paper_train.main([*argv, "--no-progress"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and option in err, err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as stop:
        paper_train.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "default: None" not in text and "None" not in text
    assert "per dataset: copy 300" in text  # --steps


def test_reversed_addition_writes_the_sum_least_significant_digit_first():
    src, tgt = paper_train.make_addition_task(50, 3, seed=0)
    src_r, tgt_r = paper_train.make_addition_task(50, 3, seed=0, reverse_sum=True)
    assert torch.equal(torch.from_numpy(src_r), torch.from_numpy(src))
    for s, t in zip(src_r, tgt_r):
        a, b = (int(part) for part in "".join(paper_train.tokens_to_text(s, "addition")).split("+"))
        digits = "".join(paper_train.tokens_to_text(t, "addition-reversed"))
        assert int(digits[::-1]) == a + b and len(digits) == 4
    assert "".join(paper_train.tokens_to_text(tgt_r[0], "addition-reversed")) == \
        "".join(paper_train.tokens_to_text(tgt[0], "addition"))[::-1]
    src_t, tgt_t = paper_train.make_task("addition-reversed", 5, 3, paper_train.ADDITION_VOCAB,
                                         seed=1)
    expected = paper_train.make_addition_task(5, 3, 1, reverse_sum=True)[1]
    assert torch.equal(torch.from_numpy(tgt_t), torch.from_numpy(expected))
