"""Lesson 07 across levels: the low-level Transformer (L2) and the paper's (L3) agree.

The same weights, copied from L2's parameter dictionary into the L3 modules, give the
same logits (float64, 1e-10), the same gradient of the label-smoothed loss for every
parameter, and the same greedy decoding; post-LN (the paper) and pre-LN with final norms.
The two levels name a few things differently (L3 <- L2):

    src_embed.weight (= tgt_embed = lm_head)    <- embedding.weight
    encoder.layers.{i}.ffn.linear1.*            <- encoder.{i}.linear1.*
    encoder.layers.{i}.residual1.norm.*         <- encoder.{i}.norm1.*
    decoder.layers.{i}.cross_attn.*             <- decoder.{i}.multihead_attn.*
    encoder.norm.* / decoder.norm.*             <- encoder_norm.* / decoder_norm.*

Run: .venv/bin/python -m pytest 07_Transformer/test_cross_level.py -q
"""

from __future__ import annotations

import re

import pytest
import torch

from utils import import_lesson
from utils.testing import FLOAT64, assert_close

low = import_lesson("07_Transformer.pytorch_lowlevel.transformer_lowlevel")
paper = import_lesson("07_Transformer.paper.transformer_paper")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB, D, HEADS, LAYERS, D_FF, MAX_LEN = 13, 16, 4, 2, 24, 12


def l3_name(l2_name: str) -> str:
    """The L3 state-dict key of an L2 parameter name."""
    if l2_name == "embedding.weight":
        return "src_embed.weight"
    name = re.sub(r"^(encoder|decoder)_norm\.", r"\1.norm.", l2_name)
    name = re.sub(r"^(encoder|decoder)\.(\d+)\.", r"\1.layers.\2.", name)
    name = re.sub(r"\.norm(\d)\.", r".residual\1.norm.", name)
    return name.replace(".multihead_attn.", ".cross_attn.").replace(".linear", ".ffn.linear")


def _pair(norm_first: bool):
    l2 = low.Transformer(VOCAB, D, HEADS, LAYERS, LAYERS, D_FF, 0.0, max_len=MAX_LEN,
                         norm_first=norm_first, seed=0, dtype=torch.float64)
    with torch.no_grad():  # non-trivial LayerNorm gains and biases
        g = torch.Generator().manual_seed(1)
        for name, p in l2.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    cfg = paper.TransformerConfig(vocab_size=VOCAB, d_model=D, n_heads=HEADS, d_ff=D_FF,
                                  n_encoder_layers=LAYERS, n_decoder_layers=LAYERS, dropout=0.0,
                                  max_len=MAX_LEN, norm_first=norm_first, final_norm=norm_first)
    l3 = paper.Transformer(cfg).double()
    state = {l3_name(name): value for name, value in l2.state_dict().items()}
    # one tied matrix, listed under its three names in an nn.Module state dict
    state["tgt_embed.weight"] = state["lm_head.weight"] = state["src_embed.weight"]
    expected = set(l3.state_dict())
    assert set(state) == expected, f"names differ: {set(state) ^ expected}"
    l3.load_state_dict(state)
    return l2, l3


def _batch():
    src = torch.tensor([[3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 0, 0], [5, 3, 0, 0, 0, 0]])
    tgt = torch.tensor([[3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 0, 0], [5, 3, 0, 0, 0, 0]])
    labels = torch.cat([tgt, torch.zeros(3, 1, dtype=torch.long)], 1)
    lengths = (tgt != 0).sum(1)
    labels[torch.arange(3), lengths] = 2  # <eos> after the last real token
    dec_in = torch.cat([torch.ones(3, 1, dtype=torch.long), tgt], 1)  # <bos> + target
    return src, dec_in, labels


@pytest.mark.parametrize("norm_first", [False, True])
def test_l2_and_l3_give_the_same_logits_and_gradients(norm_first):
    l2, l3 = _pair(norm_first)
    l2.eval()
    l3.eval()
    src, dec_in, labels = _batch()
    logits2, logits3 = l2(src, dec_in), l3(src, dec_in)
    assert_close(logits3, logits2, FLOAT64, "logits")
    loss2 = low.label_smoothed_cross_entropy(logits2.reshape(-1, VOCAB), labels.reshape(-1))
    loss3 = paper.make_loss(l3.config)(logits3.reshape(-1, VOCAB), labels.reshape(-1))
    assert_close(loss3, loss2, FLOAT64, "label-smoothed loss")
    loss2.backward()
    loss3.backward()
    grads3 = {name: p.grad for name, p in l3.named_parameters()}
    for name, p in l2.named_parameters():
        assert_close(grads3[l3_name(name)], p.grad, FLOAT64, f"gradient of {name}")


def test_l2_and_l3_decode_the_same_tokens():
    l2, l3 = _pair(norm_first=False)
    with torch.no_grad():  # sharper distributions than at initialisation
        l2.params["embedding.weight"].mul_(3.0)
        l3.src_embed.weight.mul_(3.0)
    src, _, _ = _batch()
    tokens2 = l2.greedy_decode(src, 8)
    tokens3 = paper.greedy_decode(l3, src, 8)
    width = tokens3.shape[1]
    assert torch.equal(tokens3, tokens2[:, :width])
    assert bool((tokens2[:, width:] == 0).all())
