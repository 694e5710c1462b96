"""Tests of lesson 10, Level 3: the ViT in torch.nn (vit_paper.py) and its porting (convert.py).

- parameter counts: equal to timm's VisionTransformer for ViT-B/16 with 1000 classes
  (86,567,656), L/16, H/14 and DeiT's Ti/16 and S/16, counted on the meta device; the
  formula written out here; the paper's 86M / 307M / 632M (Table 1)
- from_timm / to_timm (global_pool "token" and "avg", non-square images and patches,
  fused and step-by-step attention) and from_hf / to_hf (ViTForImageClassification,
  ViTModel without pooler): logits, tokens and every gradient, float64 to 1e-10
- what a port cannot reproduce is refused with a message saying what (register tokens, no
  class token, layer scale, qk_norm, another norm or activation, the final norm on the
  other side of the pooling, dynamic image size, ...); training-only differences warn
- a new resolution (Section 3.2): resample_position_embeddings equals timm's
  resample_abs_pos_embed, and a model made at 32 x 32 runs at 48 x 48 with the outputs of
  timm's model made at 48 with timm's resampled positions
- attention maps equal softmax(q k^T / sqrt(D_h)) computed from the weights; the fused path
  equals Equation 6 step by step; rollout and the [CLS] map on hand-made cases
- checkpoint folders in timm's layout (written by timm itself, by save_timm, an old config
  without model_args) and transformers' (written by transformers, by save_pretrained),
  safetensors and .bin, read without timm or transformers; refusals and clear errors
- the patch embedding equals a strided convolution, bad inputs, initialisation, the
  state-dict round trip, determinism, overfitting one small batch, level purity

Run: .venv/bin/python -m pytest 10_ViT/paper/test_paper.py -q
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from timm.layers import RmsNorm, resample_abs_pos_embed
from timm.models.vision_transformer import ResPostBlock, VisionTransformer
from torch import nn

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

vp = import_lesson("10_ViT.paper.vit_paper")
cv = import_lesson("10_ViT.paper.convert")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one CPU thread

NUM_CLASSES = 5
TIMM_SIZES = {"embed_dim": 16, "depth": 2, "num_heads": 2, "mlp_ratio": 1.5}


def _config(**overrides) -> vp.ViTConfig:
    sizes = {"image_size": 32, "patch_size": 8, "num_classes": NUM_CLASSES, "d_model": 16,
             "n_layers": 2, "n_heads": 2, "d_ff": 24}
    return vp.ViTConfig(**{**sizes, **overrides})


def _timm(**overrides) -> VisionTransformer:
    args = {"img_size": 32, "patch_size": 8, "num_classes": NUM_CLASSES, **TIMM_SIZES}
    return VisionTransformer(**{**args, **overrides})


def _hf(kind: str = "classification", **overrides):
    sizes = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 24, "image_size": 32, "patch_size": 8,
             "num_labels": NUM_CLASSES, "attn_implementation": "sdpa"}
    config = transformers.ViTConfig(**{**sizes, **overrides})
    if kind == "classification":
        return transformers.ViTForImageClassification(config)
    return transformers.ViTModel(config, add_pooling_layer=kind == "pooler")


def _perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter moved off its initial value (LayerNorm 1/0, zero biases and a
    near-zero [CLS] can hide a swapped or missing weight), float64, eval mode."""
    generator = torch.Generator().manual_seed(seed)
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


def _images(seed: int = 1, size=(32, 32), batch: int = 3, channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *size, generator=generator, dtype=torch.float64)


def _loss(logits: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(-1, 1, logits[0].numel(), dtype=logits.dtype).view(logits[0].shape)
    return (logits * weights).sum()


def _assert_same_gradients(ours: vp.ViT, our_logits, theirs: nn.Module, their_logits,
                           to_ours) -> None:
    """Loss and every gradient equal: theirs renamed with the port's own table."""
    _loss(our_logits).backward()
    _loss(their_logits).backward()
    their_grads = to_ours({k: p.grad for k, p in theirs.named_parameters()}, "gradients")
    our_grads = dict(ours.named_parameters())
    assert their_grads.keys() == our_grads.keys()
    for name, grad in their_grads.items():
        expected = grad.reshape(our_grads[name].shape)  # the patch conv's (D, C, P, P)
        assert our_grads[name].grad.abs().sum() > 0, name
        assert_close(our_grads[name].grad, expected, FLOAT64, name=f"d loss / d {name}")


# --------------------------------------------------------------------------------------
# Configurations and parameter counts (Table 1; DeiT Table 1)
# --------------------------------------------------------------------------------------


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _formula(d: int, n_layers: int, d_ff: int, patch: int, image: int = 224,
             classes: int = 1000, channels: int = 3) -> int:
    """ViT counted by hand: E and its bias, [CLS], E_pos, L layers, final LN, head."""
    n = (image // patch) ** 2
    embedding = (channels * patch * patch + 1) * d + d + (1 + n) * d
    layer = (3 * d * d + 3 * d) + (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d) + 4 * d
    return embedding + n_layers * layer + 2 * d + classes * d + classes


@pytest.mark.parametrize("size, timm_args, expected, paper", [
    ("tiny", {"embed_dim": 192, "num_heads": 3}, 5_717_416, None),  # deit_tiny_patch16_224
    ("small", {"embed_dim": 384, "num_heads": 6}, 22_050_664, None),  # deit_small_patch16_224
    ("base", {}, 86_567_656, 86e6),  # vit_base_patch16_224
    ("large", {"embed_dim": 1024, "depth": 24, "num_heads": 16}, 304_326_632, 307e6),
    ("huge", {"embed_dim": 1280, "depth": 32, "num_heads": 16, "patch_size": 14},
     632_045_800, 632e6)])
def test_parameter_counts_equal_timm_and_the_paper(size, timm_args, expected, paper):
    cfg = getattr(vp.ViTConfig, size)()
    assert cfg.d_ff == 4 * cfg.d_model and cfg.num_classes == 1000 and cfg.image_size == 224
    assert _formula(cfg.d_model, cfg.n_layers, cfg.d_ff, vp.as_pair(cfg.patch_size)[0]) \
        == expected
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        ours, theirs = vp.ViT(cfg), VisionTransformer(**timm_args)
    assert _count(ours) == _count(theirs) == expected
    if paper:  # Table 1's 86M, 307M, 632M, rounded (the paper's L count is 0.9 % above)
        assert abs(expected - paper) / paper < 0.01


def test_presets_are_table_1_with_patch_overrides():
    table = {"tiny": (12, 192, 3), "small": (12, 384, 6), "base": (12, 768, 12),
             "large": (24, 1024, 16), "huge": (32, 1280, 16)}
    for name, (layers, d, heads) in table.items():
        for patch in (14, 16, 32):
            cfg = getattr(vp.ViTConfig, name)(patch_size=patch, image_size=448)
            assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_ff) == (layers, d, heads, 4 * d)
            assert cfg.patch_size == patch and cfg.num_patches == (448 // patch) ** 2
    assert vp.ViTConfig.huge().patch_size == 14 and vp.ViTConfig.base().patch_size == 16
    assert vp.ViTConfig(image_size=(32, 48), patch_size=(8, 16)).grid_size == (4, 3)


def test_small_config_counts_equal_timm():
    for ours_args, timm_args in [({}, {}), ({"pool": "mean"}, {"global_pool": "avg"}),
                                 ({"num_classes": 0, "in_channels": 1},
                                  {"num_classes": 0, "in_chans": 1}),
                                 ({"image_size": (32, 48), "patch_size": (8, 16)},
                                  {"img_size": (32, 48), "patch_size": (8, 16)})]:
        assert _count(vp.ViT(_config(**ours_args))) == _count(_timm(**timm_args)) > 0


# --------------------------------------------------------------------------------------
# from_timm / to_timm: same logits, tokens and gradients (float64, 1e-10)
# --------------------------------------------------------------------------------------

SHAPES = {"square": ({}, (32, 32)),
          "non-square": ({"img_size": (32, 48), "patch_size": (8, 16)}, (32, 48))}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pool", ["token", "avg"])
def test_from_timm_equals_timm(pool, shape):
    torch.manual_seed(0)
    args, size = SHAPES[shape]
    theirs = _perturb(_timm(global_pool=pool, **args))
    ours = cv.from_timm(theirs)
    assert ours.config.pool == ("token" if pool == "token" else "mean") and not ours.training
    assert ours.config.attn_implementation == "sdpa"  # timm fuses by default
    images = _images(size=size)
    assert_close(ours.forward_features(images), theirs.forward_features(images), FLOAT64,
                 name="tokens")
    our_logits, their_logits = ours(images), theirs(images)
    assert_close(our_logits, their_logits, FLOAT64, name="logits")
    _assert_same_gradients(ours, our_logits, theirs, their_logits, cv.state_from_timm)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("pool", ["token", "mean"])
def test_to_timm_equals_ours(pool, attn):
    torch.manual_seed(0)
    ours = _perturb(vp.ViT(_config(pool=pool, attn_implementation=attn,
                                   image_size=(32, 48), patch_size=(8, 16))))
    theirs = cv.to_timm(ours)
    assert type(theirs) is VisionTransformer and not theirs.training
    assert theirs.global_pool == ("token" if pool == "token" else "avg")
    assert theirs.blocks[0].attn.fused_attn == (attn == "sdpa")
    assert next(theirs.parameters()).dtype == torch.float64
    images = _images(seed=2, size=(32, 48))
    our_logits, their_logits = ours(images), theirs(images)
    assert_close(our_logits, their_logits, FLOAT64, name="logits")
    _assert_same_gradients(ours, our_logits, theirs, their_logits, cv.state_from_timm)
    assert cv.from_timm(theirs).config == ours.config  # and back again


def test_timm_step_by_step_attention_and_features_only():
    torch.manual_seed(0)
    theirs = _perturb(_timm(num_classes=0))
    for block in theirs.blocks:
        block.attn.fused_attn = False
    ours = cv.from_timm(theirs)
    assert ours.config.attn_implementation == "eager" and ours.config.num_classes == 0
    images = _images()
    assert_close(ours(images), theirs(images), FLOAT64, name="features (B, D)")
    assert ours(images).shape == (3, 16)


@pytest.mark.parametrize("overrides, message", [
    ({"reg_tokens": 2}, "register tokens"),
    ({"class_token": False, "global_pool": "avg"}, "no class token"),
    ({"init_values": 1e-5}, r"layer scale \(init_values\)"),
    ({"qk_norm": True}, "qk_norm"),
    ({"norm_layer": RmsNorm}, "another norm layer"),
    ({"act_layer": "gelu_tanh"}, "the activation"),
    ({"act_layer": nn.ReLU}, "the activation ReLU"),
    ({"fc_norm": True}, "global_pool='token' with the final norm after the pooling"),
    ({"global_pool": "avg", "fc_norm": False}, "'avg' with the final norm before the pooling"),
    ({"final_norm": False}, "final norm left out"),
    ({"global_pool": "max"}, "global_pool='max'"),
    ({"global_pool": "map"}, "global_pool='map'"),
    ({"dynamic_img_size": True}, "dynamic_img_size"),
    ({"pre_norm": True}, r"a norm before the blocks \(pre_norm=True\)"),
    ({"no_embed_class": True}, "no_embed_class=True"),
    ({"qkv_bias": False}, "qkv_bias=False"),
    ({"block_fn": ResPostBlock}, "ResPostBlock blocks"),
])
def test_from_timm_refuses_what_it_cannot_reproduce(overrides, message):
    theirs = _timm(**overrides)
    with pytest.raises(ValueError, match=f"VisionTransformer computes what vit_paper.ViT "
                                         f"cannot: .*{message}"):
        cv.from_timm(theirs)


def test_from_timm_warns_about_training_only_differences():
    torch.manual_seed(0)
    theirs = _perturb(_timm(drop_path_rate=0.1, drop_rate=0.2))
    with pytest.warns(UserWarning, match=r"stochastic depth .*head dropout .*same in eval"):
        ours = cv.from_timm(theirs)
    images = _images()
    assert_close(ours(images), theirs(images), FLOAT64)


# --------------------------------------------------------------------------------------
# from_hf / to_hf (transformers' ViTForImageClassification, ViTModel)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classification", "model"])
def test_from_hf_equals_transformers(kind):
    torch.manual_seed(0)
    theirs = _perturb(_hf(kind, image_size=(32, 48), patch_size=(8, 16)))
    ours = cv.from_hf(theirs)
    assert ours.config.layer_norm_eps == 1e-12 and ours.config.attn_implementation == "sdpa"
    images = _images(size=(32, 48))
    out = theirs(images)
    if kind == "model":
        assert ours.config.num_classes == 0
        tokens = ours.forward_features(images)
        assert_close(tokens, out.last_hidden_state, FLOAT64, name="last_hidden_state")
        our_logits, their_logits = tokens, out.last_hidden_state
    else:
        our_logits, their_logits = ours(images), out.logits
        assert_close(our_logits, their_logits, FLOAT64, name="logits")
    _assert_same_gradients(ours, our_logits, theirs, their_logits, cv.state_from_hf)


@pytest.mark.parametrize("num_classes", [NUM_CLASSES, 0])
def test_to_hf_equals_ours(num_classes):
    torch.manual_seed(0)
    ours = _perturb(vp.ViT(_config(num_classes=num_classes, layer_norm_eps=1e-12)))
    theirs = cv.to_hf(ours, attn_implementation="sdpa")
    assert type(theirs) is (transformers.ViTForImageClassification if num_classes
                            else transformers.ViTModel)
    assert not theirs.training and theirs.config._attn_implementation == "sdpa"
    images = _images(seed=2)
    out = theirs(images)
    our_logits = ours(images) if num_classes else ours.forward_features(images)
    their_logits = out.logits if num_classes else out.last_hidden_state
    assert_close(our_logits, their_logits, FLOAT64, name="logits")
    _assert_same_gradients(ours, our_logits, theirs, their_logits, cv.state_from_hf)


def test_hf_eager_attention_agrees_to_float32():
    """transformers' eager path takes the softmax in float32 even for float64 inputs."""
    torch.manual_seed(0)
    ours = _perturb(vp.ViT(_config(layer_norm_eps=1e-12)))
    theirs = cv.to_hf(ours, attn_implementation="eager")
    images = _images()
    assert_close(ours(images), theirs(images).logits, FLOAT32)


def test_hf_refusals_and_the_pooler():
    torch.manual_seed(0)
    with_pooler = _perturb(_hf("pooler"))
    with pytest.raises(ValueError, match=r"transformers' pooler.*drop_pooler=True"):
        cv.from_hf(with_pooler)
    ours = cv.from_hf(with_pooler, drop_pooler=True)
    images = _images()
    assert_close(ours.forward_features(images), with_pooler(images).last_hidden_state, FLOAT64)
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        cv.from_hf(_hf(hidden_act="relu"))
    with pytest.raises(ValueError, match="qkv_bias=False"):
        cv.from_hf(_hf(qkv_bias=False))
    with pytest.raises(ValueError, match="classifies from \\[CLS\\] only"):
        cv.to_hf(vp.ViT(_config(pool="mean")))
    with pytest.raises(TypeError, match="from_hf: expected transformers' ViTModel"):
        cv.from_hf(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="from_timm: expected timm"):
        cv.from_timm(nn.Linear(2, 2))
    for convert in (cv.to_hf, cv.to_timm):
        with pytest.raises(TypeError, match="expected vit_paper.ViT"):
            convert(nn.Linear(2, 2))


# --------------------------------------------------------------------------------------
# A new resolution (Section 3.2)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, prefix", [((4, 4), (6, 6), 1), ((6, 6), (4, 4), 1),
                                              ((4, 6), (5, 3), 1), ((4, 4), (7, 5), 0)])
def test_resampled_positions_equal_timms(old, new, prefix):
    generator = torch.Generator().manual_seed(0)
    pos = torch.randn(1, prefix + old[0] * old[1], 8, generator=generator)
    theirs = resample_abs_pos_embed(pos, new_size=list(new), old_size=list(old),
                                    num_prefix_tokens=prefix)
    ours = vp.resample_position_embeddings(pos, new, old, num_prefix_tokens=prefix)
    assert ours.shape == (1, prefix + new[0] * new[1], 8)
    assert torch.equal(ours, theirs)  # float32: the same kernel, the same bits
    ours64 = vp.resample_position_embeddings(pos.double(), new, old, num_prefix_tokens=prefix)
    assert ours64.dtype == torch.float64 and torch.equal(ours64[:, :prefix], pos[:, :prefix])
    assert_close(ours64, theirs.double(), FLOAT32)  # timm rounds through float32
    if old == (4, 4):
        assert torch.equal(vp.resample_position_embeddings(pos, new, num_prefix_tokens=prefix),
                           ours)  # old grid square by default
    assert vp.resample_position_embeddings(pos, old, old, prefix) is pos


def test_model_made_at_32_runs_at_48_as_timm():
    torch.manual_seed(0)
    at_32 = _perturb(_timm())
    ours = cv.from_timm(at_32)
    assert ours.set_image_size(48) is ours and ours.config.image_size == 48
    at_48 = _perturb(_timm(img_size=48))
    state = at_32.state_dict()
    state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], new_size=[6, 6],
                                                old_size=[4, 4])
    at_48.load_state_dict(state)
    assert ours.position_embedding.shape == (1, 37, 16)
    assert_close(ours.position_embedding, at_48.pos_embed, FLOAT32)  # timm: via float32
    images = _images(size=(48, 48))
    assert_close(ours(images), at_48(images), FLOAT32, name="logits at 48 x 48")
    exact = _perturb(_timm(img_size=48))  # our resampled positions in timm: 1e-10
    exact.load_state_dict(cv.state_to_timm(ours))
    assert_close(ours(images), exact(images), FLOAT64)
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        ours.set_image_size(50)


# --------------------------------------------------------------------------------------
# Attention maps and rollout
# --------------------------------------------------------------------------------------


def test_attention_maps_equal_softmax_qk_from_the_weights():
    torch.manual_seed(0)
    model = _perturb(vp.ViT(_config(attn_implementation="sdpa")))
    images = _images()
    logits, attentions = model(images, return_attention=True)
    assert_close(logits, model(images), FLOAT64)
    assert len(attentions) == 2 and attentions[0].shape == (3, 2, 17, 17)
    z = torch.cat([model.cls_token.expand(3, -1, -1),
                   vp.patchify(images, 8) @ model.patch_embed.weight.T + model.patch_embed.bias],
                  dim=1) + model.position_embedding  # z_0 by hand
    for layer, weights in zip(model.layers, attentions):
        h = F.layer_norm(z, (16,), layer.norm1.weight, layer.norm1.bias, 1e-6)
        q, k, _ = (h @ layer.attention.qkv.weight.T + layer.attention.qkv.bias).split(16, -1)
        for head in range(2):
            cols = slice(8 * head, 8 * head + 8)
            expected = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / 8 ** 0.5, -1)
            assert_close(weights[:, head], expected, FLOAT64, name=f"A, head {head}")
        z = layer(z)[0]


def test_sdpa_equals_equation_6_step_by_step():
    torch.manual_seed(0)
    eager = _perturb(vp.ViT(_config()))
    fused = vp.ViT(_config(attn_implementation="sdpa")).double().eval()
    fused.load_state_dict(eager.state_dict())
    images = _images()
    outputs = []
    for model in (eager, fused):
        logits = model(images)
        _loss(logits).backward()
        outputs.append((logits, [p.grad for p in model.parameters()]))
    assert_close(outputs[1][0], outputs[0][0], FLOAT64, name="logits")
    for fused_grad, eager_grad in zip(outputs[1][1], outputs[0][1]):
        assert_close(fused_grad, eager_grad, FLOAT64, name="gradient")


def test_attention_rollout_by_hand():
    first = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # (1,2,2,2)
    second = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]]])
    # heads averaged, + I, rows renormalised: [[.75, .25], [.25, .75]] and [[1, 0], [.5, .5]]
    expected = torch.tensor([[1.0, 0.0], [0.5, 0.5]]) @ torch.tensor([[0.75, 0.25],
                                                                     [0.25, 0.75]])
    assert torch.allclose(vp.attention_rollout([first, second])[0], expected)
    assert torch.allclose(expected, torch.tensor([[0.75, 0.25], [0.5, 0.5]]))
    torch.manual_seed(0)
    model = _perturb(vp.ViT(_config()))
    rollout = vp.attention_rollout(model(_images(), return_attention=True)[1])
    assert rollout.shape == (3, 17, 17)
    assert_close(rollout.sum(-1), torch.ones(3, 17, dtype=torch.float64), FLOAT64)


def test_cls_attention_map_over_the_image():
    rollout = torch.zeros(1, 5, 5, dtype=torch.float64)
    rollout[0, 0] = torch.tensor([9.0, 1.0, 2.0, 3.0, 4.0])  # [CLS] itself, then a 2 x 2 grid
    heat = vp.cls_attention_map(rollout, (2, 2), 8)
    assert heat.shape == (1, 8, 8) and heat.max() == 1.0
    corners = heat[0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert torch.equal(corners, torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    expected = F.interpolate(rollout[:, :1, 1:].reshape(1, 1, 2, 2), size=(8, 8),
                             mode="bilinear", align_corners=False)[:, 0] / 4
    assert_close(heat, expected, FLOAT64)


# --------------------------------------------------------------------------------------
# Checkpoint folders: timm's layout and transformers'
# --------------------------------------------------------------------------------------


def _timm_saved(tmp_path: Path, safetensors: bool, **overrides) -> tuple[Path, nn.Module]:
    """A folder written by timm itself, from a model built by timm's factory."""
    import timm
    from timm.models._hub import save_for_hf

    args = {"img_size": 32, "patch_size": 8, "num_classes": NUM_CLASSES, "embed_dim": 16,
            "depth": 2, "num_heads": 2, "mlp_ratio": 1.5, **overrides}
    theirs = _perturb(timm.create_model("vit_base_patch16_224", pretrained=False, **args))
    directory = tmp_path / f"timm_{safetensors}"
    save_for_hf(theirs, directory, safe_serialization=safetensors)
    return directory, theirs


@pytest.mark.parametrize("safetensors", [True, False])
def test_load_pretrained_timm_layout(tmp_path, safetensors):
    torch.manual_seed(0)
    directory, theirs = _timm_saved(tmp_path, safetensors, global_pool="avg")
    assert (directory / "model.safetensors").is_file() == safetensors
    assert "model_args" in json.loads((directory / "config.json").read_text())
    ours = cv.load_pretrained(directory, dtype=torch.float64)
    assert not ours.training and ours.config.pool == "mean"
    images = _images()
    assert_close(ours(images), theirs(images), FLOAT64)
    ours.train()
    mine = cv.save_timm(ours, tmp_path / f"ours_{safetensors}", safetensors=safetensors)
    import timm  # timm's own loader reads our folder

    again = timm.create_model(f"local-dir:{mine}", pretrained=True).eval()  # float32
    assert_close(again.double()(images), theirs(images), FLOAT32)
    assert_close(cv.load_pretrained(mine, dtype=torch.float64)(images), theirs(images), FLOAT64)


def test_load_pretrained_old_timm_config_without_model_args(tmp_path):
    """Older hub configs: "architecture" and "pretrained_cfg" only; sizes come from the
    weights, the head count from the architecture's size name (tiny: 3 heads)."""
    torch.manual_seed(0)
    theirs = _perturb(_timm(embed_dim=12, num_heads=3))
    directory = tmp_path / "old"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({
        "architecture": "vit_tiny_patch8_32", "num_classes": NUM_CLASSES, "num_features": 12,
        "pretrained_cfg": {"input_size": [3, 32, 32], "mean": [0.5] * 3}}))
    torch.save(theirs.state_dict(), directory / "pytorch_model.bin")
    ours = cv.load_pretrained(directory, dtype=torch.float64)
    assert (ours.config.n_heads, ours.config.d_model, ours.config.d_ff) == (3, 12, 18)
    assert_close(ours(_images()), theirs(_images()), FLOAT64)


@pytest.mark.parametrize("safetensors", [True, False])
def test_load_pretrained_transformers_layout(tmp_path, safetensors):
    torch.manual_seed(0)
    theirs = _perturb(_hf())
    directory = tmp_path / "hf"
    theirs.save_pretrained(directory, safe_serialization=True)
    if not safetensors:  # the live module names in a .bin file: read as well
        (directory / "model.safetensors").unlink()
        torch.save(theirs.state_dict(), directory / "pytorch_model.bin")
    ours = cv.load_pretrained(directory, dtype=torch.float64)
    images = _images()
    assert_close(ours(images), theirs(images).logits, FLOAT64)
    mine = cv.save_pretrained(ours, tmp_path / "ours", safetensors=safetensors)
    again = transformers.ViTForImageClassification.from_pretrained(mine, dtype=torch.float64)
    assert_close(again.eval()(images).logits, theirs(images).logits, FLOAT64)
    encoder = _perturb(_hf("pooler"))
    encoder.save_pretrained(tmp_path / "in21k")
    with pytest.raises(ValueError, match="drop_pooler=True"):
        cv.load_pretrained(tmp_path / "in21k")
    features = cv.load_pretrained(tmp_path / "in21k", drop_pooler=True, dtype=torch.float64)
    assert_close(features.forward_features(images), encoder(images).last_hidden_state, FLOAT64)


def test_load_pretrained_new_head_and_new_resolution(tmp_path):
    torch.manual_seed(0)
    ours = _perturb(vp.ViT(_config()))
    directory = cv.save_timm(ours, tmp_path / "ours")
    with pytest.warns(UserWarning, match="new head of 10 classes"):
        fine_tune = cv.load_pretrained(directory, num_classes=10, image_size=48,
                                       dtype=torch.float64)
    assert torch.all(fine_tune.head.weight == 0) and torch.all(fine_tune.head.bias == 0)
    expected = ours.set_image_size(48)
    assert_close(fine_tune.forward_features(_images(size=(48, 48))),
                 expected.forward_features(_images(size=(48, 48))), FLOAT32)
    features = cv.load_pretrained(directory, num_classes=0)
    assert isinstance(features.head, nn.Identity)


def test_load_pretrained_needs_neither_timm_nor_transformers(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = vp.ViT(_config())
    timm_dir = cv.save_timm(model, tmp_path / "timm")
    hf_dir = cv.save_pretrained(model, tmp_path / "hf", safetensors=False)
    for name in list(sys.modules):  # `import timm`, `from transformers... import` fail
        if name.split(".")[0] in ("timm", "transformers"):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        cv.to_timm(model)
    with pytest.raises(ImportError):
        cv.to_hf(model)
    images = _images().float()
    for directory in (timm_dir, hf_dir):
        assert torch.equal(cv.load_pretrained(directory)(images), model.eval()(images))


def test_load_pretrained_refusals_and_errors(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cv.load_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        cv.load_pretrained(empty)
    (empty / "config.json").write_text(json.dumps({"hidden_size": 16}))
    with pytest.raises(FileNotFoundError, match="no weights"):
        cv.load_pretrained(empty)
    (empty / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        cv.load_pretrained(empty)
    torch.save({}, empty / "pytorch_model.bin")
    with pytest.raises(ValueError, match="neither timm's layout"):
        cv.load_pretrained(empty)
    model = vp.ViT(_config())
    directory = cv.save_timm(model, tmp_path / "timm", safetensors=False)
    config = json.loads((directory / "config.json").read_text())
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)

    def variant(name, args=None, extra=None, arch=None):
        folder = tmp_path / name
        folder.mkdir()
        changed = {**config, "model_args": {**config["model_args"], **(args or {})}}
        changed["architecture"] = arch or changed["architecture"]
        (folder / "config.json").write_text(json.dumps(changed))
        torch.save({**state, **(extra or {})}, folder / "pytorch_model.bin")
        return folder

    for name, args, extra, arch, message in [
            ("ls", {"init_values": 1e-5}, {"blocks.0.ls1.gamma": torch.ones(16)}, None,
             "layer scale"),
            ("reg", {"reg_tokens": 4}, {"reg_token": torch.zeros(1, 4, 16)}, None,
             "register tokens"),
            ("act", {"act_layer": "relu"}, None, None, "model_args act_layer='relu'"),
            ("dyn", {"dynamic_img_size": True}, None, None, "dynamic_img_size=True"),
            ("fc", {"fc_norm": True}, None, None, "global_pool='token' with fc_norm=True"),
            ("arch", None, None, "resnet50", "architecture 'resnet50'"),
            ("unknown", None, {"blocks.0.attn.rope.freq": torch.zeros(2)}, None,
             "not those of timm's VisionTransformer: blocks.0.attn.rope.freq")]:
        with pytest.raises(ValueError, match=message):
            cv.load_pretrained(variant(name, args, extra, arch))
    with pytest.raises(ValueError, match=r"shapes disagree.*position_embedding \(1, 17, 16\) "
                                         r"\(expected \(1, 10, 16\)\)"):
        cv.load_pretrained(variant("shape", {"img_size": [24, 24]}))
    with pytest.raises(ValueError, match="layer_norm_eps"):
        cv.save_timm(vp.ViT(_config(layer_norm_eps=1e-12)), tmp_path / "eps")


# --------------------------------------------------------------------------------------
# The model itself
# --------------------------------------------------------------------------------------


def test_patch_embedding_equals_a_strided_convolution():
    torch.manual_seed(0)
    model = _perturb(vp.ViT(_config(image_size=(32, 48), patch_size=(8, 16), in_channels=2)))
    images = _images(size=(32, 48), channels=2)
    weight = model.patch_embed.weight.view(16, 2, 8, 16)  # E reshaped to (D, C, P_h, P_w)
    conv = F.conv2d(images, weight, model.patch_embed.bias, stride=(8, 16))  # (B, D, 4, 3)
    expected = conv.flatten(2).transpose(1, 2)  # (B, N, D), patches in reading order
    assert_close(model.patch_embed(vp.patchify(images, (8, 16))), expected, FLOAT64)
    patches = vp.patchify(images, (8, 16))
    assert torch.equal(patches[1, 4], images[1, :, 8:16, 16:32].reshape(-1))  # row 1, col 1


def test_initialisation_follows_timm():
    torch.manual_seed(0)
    model = vp.ViT(_config(d_model=64, n_heads=4, d_ff=256))
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
        elif isinstance(module, nn.Linear):
            assert abs(module.weight.std().item() - 0.02) < 0.002, name
            assert torch.all(module.bias == 0), name
    assert abs(model.position_embedding.std().item() - 0.02) < 0.002
    assert 0 < model.cls_token.abs().max() < 1e-4


def test_bad_inputs_raise_clear_errors():
    model = vp.ViT(_config())
    good = torch.randn(2, 3, 32, 32)
    for images, message in [
            (good.long(), r"images: expected a float tensor \(B, C, H, W\)"),
            (good[0], r"images: expected a float tensor \(B, C, H, W\), got .* \(3, 32, 32\)"),
            ("a picture", "images: expected a float tensor"),
            (torch.randn(2, 1, 32, 32), "expected 3 channels .* got 1"),
            (torch.randn(2, 3, 48, 40), r"expected H, W = \(32, 32\).*got \(48, 40\); call "
                                        r"model.set_image_size\(\(48, 40\)\)"),
            (torch.randn(2, 3, 30, 32), r"got \(30, 32\)$")]:
        with pytest.raises(ValueError, match=message):
            model(images)
    for overrides, message in [({"image_size": 30}, r"image_size \(30, 30\) is not divisible"),
                               ({"d_model": 18, "n_heads": 4}, "multiple of n_heads"),
                               ({"n_layers": 0}, "positive ints"),
                               ({"num_classes": -1}, "num_classes >= 0"),
                               ({"pool": "max"}, "pool must be one of"),
                               ({"attn_implementation": "flash"}, "attn_implementation")]:
        with pytest.raises(ValueError, match=message):
            _config(**overrides)


def test_state_dict_round_trip_and_names():
    torch.manual_seed(0)
    model = _perturb(vp.ViT(_config()))
    names = set(model.state_dict())
    assert {"patch_embed.weight", "patch_embed.bias", "cls_token", "position_embedding",
            "layers.1.norm1.weight", "layers.1.attention.qkv.weight", "layers.1.attention.out.bias",
            "layers.1.norm2.bias", "layers.1.ffn.up.weight", "layers.1.ffn.down.weight",
            "final_norm.weight", "head.weight"} <= names
    assert model.state_dict()["patch_embed.weight"].shape == (16, 3 * 8 * 8)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    loaded = vp.ViT(_config()).double().eval()
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(loaded(_images()), model(_images()))


def test_manual_seed_determinism_and_dropout_in_train_mode():
    images = _images().float()

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return vp.ViT(_config(dropout=0.1, attn_dropout=0.1)).train()(images)

    assert torch.equal(run(0), run(0))
    torch.manual_seed(0)
    model = vp.ViT(_config(dropout=0.1, attn_dropout=0.1))
    assert not torch.allclose(model(images), model(images))  # dropout on in train mode ...
    model.eval()
    assert torch.equal(model(images), model(images))  # ... off in eval


@pytest.mark.parametrize("pool", ["token", "mean"])
def test_overfits_one_small_batch(pool):
    torch.manual_seed(0)
    model = vp.ViT(_config(pool=pool, d_model=32, n_heads=4, d_ff=64))
    images, labels = _images(batch=8).float(), torch.arange(8) % NUM_CLASSES
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = F.cross_entropy(model(images), labels).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02 * first, (first, loss.item())
    assert torch.equal(model.eval()(images).argmax(-1), labels)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)
