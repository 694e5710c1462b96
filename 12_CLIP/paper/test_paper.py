"""Tests of lesson 12, Level 3: CLIP in torch.nn (clip_paper.py) and its ports (convert.py).

- parameter counts: equal to transformers' CLIPModel (default config, ViT-B/32:
  151,277,313) and to open_clip's ViT-B/32, ViT-B/16, ViT-L/14 and RN50, counted on the
  meta device; the presets are Tables 19/20's widths
- from_hf / to_hf (transformers' CLIPModel) and from_open_clip / to_open_clip (open_clip's
  CLIP, ViT and modified-ResNet towers, quick-GELU and GELU): image and text embeddings and
  both logit matrices equal both ways in float64 (1e-10), on perturbed random weights, with
  padded text (transformers pads with the end token, open_clip with 0); every gradient of
  the contrastive loss equal; refusals of what cannot be reproduced
- checkpoint folders: written by CLIPModel.save_pretrained, loaded by load_pretrained (no
  transformers needed), and ours read back by transformers; old configs (eos_token_id 2)
- our "sdpa" path equals the step-by-step one; the logit scale starts at 1/0.07 and is
  clamped at 100; the text feature is read at the end-of-text token (first eos, or argmax);
  the symmetric loss by hand and as transformers computes it; the initialisation;
  determinism; the state-dict names of the contract and the round trip; bad inputs; purity

Run: .venv/bin/python -m pytest 12_CLIP/paper/test_paper.py -q
"""

from __future__ import annotations

import math
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
import transformers

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

cp = import_lesson("12_CLIP.paper.clip_paper")
cv = import_lesson("12_CLIP.paper.convert")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one CPU thread

VOCAB, EOS, CONTEXT = 64, 63, 16


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Noise on every parameter (no LayerNorm left at 1/0, no bias at 0), so a port that
    drops or swaps one shows; float64."""
    generator = torch.Generator().manual_seed(seed)
    model.double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator,
                                             dtype=parameter.dtype))
    return model


def _ours(seed: int = 0, **overrides) -> cp.CLIP:
    torch.manual_seed(seed)
    return _perturbed(cp.CLIP(cp.CLIPConfig.tiny(**overrides)), seed)


def _texts(pad_id: int, length: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Three captions of lengths 5, 9 and ``length`` (end-of-text last), padded with pad_id;
    the 1/0 attention mask."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.full((3, length), pad_id, dtype=torch.long)
    mask = torch.zeros(3, length, dtype=torch.long)
    for row, size in enumerate((5, 9, length)):
        ids[row, :size - 1] = torch.randint(1, EOS - 1, (size - 1,), generator=generator)
        ids[row, size - 1] = EOS
        mask[row, :size] = 1
    return ids, mask


def _images(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2),
                       dtype=torch.float64)


def _hf_model(attn: str = "sdpa", act: str = "quick_gelu") -> transformers.CLIPModel:
    """transformers' CLIPModel from its own small random config (not from ours)."""
    torch.manual_seed(3)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": VOCAB, "max_position_embeddings": CONTEXT,
                     "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "eos_token_id": EOS, "bos_token_id": EOS - 1,
                     "hidden_act": act},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 24,
                       "intermediate_size": 40, "num_hidden_layers": 2,
                       "num_attention_heads": 3, "hidden_act": act},
        projection_dim=16, attn_implementation=attn)
    return _perturbed(transformers.CLIPModel(config)).eval()


def _hf_outputs(hf_model, images, ids, mask):
    out = hf_model(input_ids=ids, pixel_values=images, attention_mask=mask)
    return (hf_model.get_image_features(pixel_values=images).pooler_output,
            hf_model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output,
            out.logits_per_image, out.logits_per_text)


def _our_outputs(model, images, ids, mask=None):
    logits_per_image, logits_per_text = model(images, ids, mask)
    return (model.encode_image(images), model.encode_text(ids, mask), logits_per_image,
            logits_per_text)


def _assert_all_close(ours, theirs, tol=FLOAT64):
    for name, mine, other in zip(("image", "text", "logits_per_image", "logits_per_text"),
                                 ours, theirs):
        assert_close(mine, other, tol, name=name)


# --------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset, open_clip_name, expected", [
    ("vit_b_32", "ViT-B-32", 151_277_313), ("vit_b_16", "ViT-B-16", 149_620_737),
    ("vit_l_14", "ViT-L-14", 427_616_513), ("rn50", "RN50", 102_007_137)])
def test_parameter_counts_equal_transformers_and_open_clip(preset, open_clip_name, expected):
    config = getattr(cp.CLIPConfig, preset)()
    with torch.device("meta"):
        ours = cp.count_parameters(cp.CLIP(config))
        theirs = cp.count_parameters(open_clip.model.CLIP(
            **open_clip.get_model_config(open_clip_name), quick_gelu=True))
        if preset != "rn50":
            values = cv.config_to_hf_dict(config)
            values.pop("model_type")
            assert cp.count_parameters(transformers.CLIPModel(
                transformers.CLIPConfig(**values))) == expected
    assert ours == theirs == expected


def test_default_config_is_transformers_default_vit_b_32():
    with torch.device("meta"):
        hf = cp.count_parameters(transformers.CLIPModel(transformers.CLIPConfig()))
        assert cp.count_parameters(cp.CLIP()) == hf == 151_277_313
    ported = cv.config_from_hf_dict(transformers.CLIPConfig().to_dict())
    assert ported.logit_scale_init == pytest.approx(math.log(1 / 0.07), abs=1e-4)  # 2.6592
    ported.logit_scale_init = cp.CLIPConfig().logit_scale_init
    assert ported == cp.CLIPConfig()


def test_presets_are_tables_19_and_20():
    large = cp.CLIPConfig.vit_l_14()
    assert (large.vision.patch_size, large.vision.d_model, large.vision.n_layers,
            large.vision.n_heads, large.vision.d_ff) == (14, 1024, 24, 16, 4096)
    assert (large.text.d_model, large.text.n_heads, large.text.n_layers,
            large.embed_dim) == (768, 12, 12, 768)
    base = cp.CLIPConfig.vit_b_16()
    assert (base.vision.patch_size, base.vision.d_model, base.vision.num_patches,
            base.text.d_model, base.text.n_heads, base.text.max_len) == (16, 768, 196, 512, 8, 77)
    rn50 = cp.CLIPConfig.rn50()
    assert (rn50.vision.layers, rn50.vision.width * 32, rn50.vision.n_heads,
            rn50.embed_dim) == ((3, 4, 6, 3), 2048, 32, 1024)
    tiny = cp.CLIPConfig.tiny(text={"vocab_size": 100}, vision={"image_size": 48})
    assert (tiny.text.eos_token_id, tiny.vision.num_patches, tiny.embed_dim) == (99, 36, 16)


# --------------------------------------------------------------------------------------
# transformers' CLIPModel
# --------------------------------------------------------------------------------------


def test_from_hf_equals_transformers_with_end_token_padding():
    hf_model = _hf_model()
    ours = cv.from_hf(hf_model)
    assert ours.config.attn_implementation == "sdpa" and not ours.training
    images, (ids, mask) = _images(), _texts(pad_id=EOS)  # transformers pads with the end token
    _assert_all_close(_our_outputs(ours, images, ids, mask), _hf_outputs(hf_model, images, ids,
                                                                          mask))
    _assert_all_close(_our_outputs(ours, images, ids), _hf_outputs(hf_model, images, ids, None))


@pytest.mark.parametrize("activation", ["quick_gelu", "gelu"])
def test_to_hf_equals_ours(activation):
    ours = _ours(activation=activation).eval()
    hf_model = cv.to_hf(ours, attn_implementation="sdpa")
    images, (ids, mask) = _images(), _texts(pad_id=EOS)
    _assert_all_close(_hf_outputs(hf_model, images, ids, mask),
                      _our_outputs(ours, images, ids, mask))
    back = cv.from_hf(hf_model)
    assert all(torch.equal(value, back.state_dict()[key])
               for key, value in ours.state_dict().items())


def test_hf_eager_attention_agrees_to_float32():
    """transformers' eager path takes its softmax in float32 even for float64 inputs: it
    agrees with ours to float32 precision only (its sdpa path to 1e-10, above)."""
    ours = _ours().eval()
    hf_model = cv.to_hf(ours, attn_implementation="eager")
    images, (ids, mask) = _images(), _texts(pad_id=EOS)
    _assert_all_close(_hf_outputs(hf_model, images, ids, mask),
                      _our_outputs(ours, images, ids, mask), FLOAT32)


def test_gradients_equal_transformers():
    hf_model = _hf_model()
    ours = cv.from_hf(hf_model)
    images, (ids, mask) = _images(3), _texts(pad_id=EOS)
    cp.contrastive_loss(ours(images, ids, mask)[0]).backward()
    out = hf_model(input_ids=ids, pixel_values=images, attention_mask=mask, return_loss=True)
    out.loss.backward()
    assert_close(cp.contrastive_loss(ours(images, ids, mask)[0]), out.loss, name="loss")
    theirs = {name: p.grad for name, p in hf_model.named_parameters()}
    theirs = cv.state_to_ours(theirs, cv.hf_pairs(ours.config), "grads")
    for name, parameter in ours.named_parameters():
        assert_close(parameter.grad, theirs[name], name=f"grad {name}")


def test_hf_refusals():
    with pytest.raises(ValueError, match="ResNet"):
        cv.to_hf(cp.CLIP(cp.CLIPConfig.tiny(vision=cp.CLIPResNetConfig(image_size=32,
                                                                        width=8))))
    with pytest.raises(TypeError, match="CLIPModel"):
        cv.from_hf(transformers.CLIPTextModel(transformers.CLIPTextConfig(
            vocab_size=VOCAB, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=8, eos_token_id=EOS)))
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        cv.config_from_hf_dict({"model_type": "clip", "text_config": {"hidden_act": "relu"}})
    with pytest.raises(ValueError, match="two activations"):
        cv.config_from_hf_dict({"model_type": "clip", "text_config": {"hidden_act": "gelu"}})


# --------------------------------------------------------------------------------------
# open_clip's CLIP
# --------------------------------------------------------------------------------------


def _open_clip_model(quick_gelu: bool = True, vision_cfg: dict | None = None, **text):
    torch.manual_seed(4)
    vision_cfg = vision_cfg or {"image_size": 32, "patch_size": 8, "width": 24, "layers": 2,
                                "head_width": 8, "mlp_ratio": 2.0}
    text_cfg = {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32, "heads": 4,
                "layers": 2, "mlp_ratio": 1.5, **text}
    return _perturbed(open_clip.model.CLIP(16, vision_cfg, text_cfg,
                                           quick_gelu=quick_gelu)).eval()


def _open_clip_outputs(oc_model, images, ids):
    image, text = oc_model.encode_image(images), oc_model.encode_text(ids)
    logits_per_image, logits_per_text = oc_model.get_logits(images, ids)
    return image, text, logits_per_image, logits_per_text


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_from_open_clip_equals_open_clip_with_zero_padding(quick_gelu):
    oc_model = _open_clip_model(quick_gelu)
    ours = cv.from_open_clip(oc_model)
    assert ours.config.activation == ("quick_gelu" if quick_gelu else "gelu")
    assert ours.config.text.pool == "argmax"
    images, (ids, _) = _images(), _texts(pad_id=0, length=CONTEXT)  # open_clip pads with 0
    _assert_all_close(_our_outputs(ours, images, ids), _open_clip_outputs(oc_model, images, ids))


def test_open_clip_eos_pooling_reads_the_first_end_token():
    oc_model = _open_clip_model(pool_type="eos", eos_id=EOS)
    ours = cv.from_open_clip(oc_model)
    assert (ours.config.text.pool, ours.config.text.eos_token_id) == ("eos", EOS)
    ids, _ = _texts(pad_id=EOS, length=CONTEXT)
    assert_close(ours.encode_text(ids), oc_model.encode_text(ids), name="text")


def test_to_open_clip_equals_ours_and_gradients():
    ours = _ours(text={"pool": "argmax"}).eval()
    oc_model = cv.to_open_clip(ours)
    images, (ids, _) = _images(3), _texts(pad_id=0, length=CONTEXT)
    _assert_all_close(_open_clip_outputs(oc_model, images, ids), _our_outputs(ours, images, ids))
    cp.contrastive_loss(ours(images, ids)[0]).backward()
    logits, _ = oc_model.get_logits(images, ids)
    loss = open_clip.ClipLoss()(*oc_model(images, ids))
    assert_close(cp.contrastive_loss(logits), loss, name="open_clip's loss")
    loss.backward()
    theirs = {name: p.grad for name, p in oc_model.named_parameters()}
    theirs = cv.state_to_ours(theirs, cv.open_clip_pairs(ours.config), "grads")
    for name, parameter in ours.named_parameters():
        assert_close(parameter.grad, theirs[name], name=f"grad {name}")


@pytest.mark.parametrize("train", [False, True])
def test_modified_resnet_tower_equals_open_clip(train):
    """The RN tower both ways: stem, anti-aliased bottlenecks, attention pooling; BatchNorm
    in eval mode (running statistics) and train mode (batch statistics)."""
    oc_model = _open_clip_model(vision_cfg={"image_size": 64, "layers": [1, 2, 1, 1],
                                            "width": 8, "head_width": 32})
    with torch.no_grad():  # running statistics away from 0 and 1
        for module in oc_model.visual.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    oc_model.train(train)
    ours = cv.from_open_clip(oc_model)
    assert ours.config.vision == cp.CLIPResNetConfig(image_size=64, layers=(1, 2, 1, 1),
                                                     width=8, n_heads=8)
    images, (ids, _) = _images(2, 64), _texts(pad_id=0, length=CONTEXT)
    _assert_all_close(_our_outputs(ours, images, ids), _open_clip_outputs(oc_model, images, ids))
    back = cv.to_open_clip(ours)
    assert_close(back.encode_image(images), ours.encode_image(images), name="to_open_clip")


@pytest.mark.parametrize("vision, text, message", [
    ({"ls_init_value": 0.1}, {}, "layer scale"),
    ({"no_ln_pre": True}, {}, "no ln_pre"),
    ({"pool_type": "avg"}, {}, "image pooling"),
    ({}, {"proj_bias": True}, "text projection"),
    ({}, {"no_causal_mask": True}, "causal mask")])
def test_from_open_clip_refuses_what_it_cannot_reproduce(vision, text, message):
    vision_cfg = {"image_size": 32, "patch_size": 8, "width": 16, "layers": 1,
                  "head_width": 8, **vision}
    oc_model = open_clip.model.CLIP(8, vision_cfg, {"context_length": 8, "vocab_size": VOCAB,
                                                    "width": 16, "heads": 2, "layers": 1,
                                                    **text}, quick_gelu=True)
    with pytest.raises(ValueError, match=message):
        cv.from_open_clip(oc_model)


def test_from_open_clip_refuses_siglip_logit_bias():
    oc_model = open_clip.model.CLIP(8, {"image_size": 32, "patch_size": 8, "width": 16,
                                        "layers": 1, "head_width": 8},
                                    {"context_length": 8, "vocab_size": VOCAB, "width": 16,
                                     "heads": 2, "layers": 1}, init_logit_bias=-10.0)
    with pytest.raises(ValueError, match="logit bias"):
        cv.from_open_clip(oc_model)


# --------------------------------------------------------------------------------------
# Checkpoint folders
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("safetensors", [True, False])
def test_load_pretrained_reads_a_folder_transformers_wrote(tmp_path, safetensors):
    hf_model = _hf_model()
    hf_model.save_pretrained(tmp_path, safe_serialization=safetensors)
    ours = cv.load_pretrained(tmp_path, dtype=torch.float64)
    assert not ours.training
    images, (ids, mask) = _images(), _texts(pad_id=EOS)
    _assert_all_close(_our_outputs(ours, images, ids, mask),
                      _hf_outputs(hf_model, images, ids, mask))


def test_save_pretrained_is_read_by_transformers_and_by_us(tmp_path):
    ours = _ours(text={"pool": "argmax"}).eval()
    cv.save_pretrained(ours, tmp_path)
    hf_model = transformers.CLIPModel.from_pretrained(tmp_path, dtype=torch.float64,
                                                      attn_implementation="sdpa")
    assert hf_model.config.text_config.eos_token_id == 2  # transformers' argmax read-out
    images, (ids, _) = _images(), _texts(pad_id=0)
    _assert_all_close(_hf_outputs(hf_model, images, ids, None), _our_outputs(ours, images, ids))
    again = cv.load_pretrained(tmp_path, dtype=torch.float64)
    assert again.config.text.pool == "argmax"
    _assert_all_close(_our_outputs(again, images, ids), _our_outputs(ours, images, ids))


def test_load_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cv.load_pretrained(tmp_path / "missing")
    cv.save_pretrained(_ours(), tmp_path)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace('"clip"', '"vit"', 1))
    with pytest.raises(ValueError, match="not 'clip'"):
        cv.load_pretrained(tmp_path)
    state = {"logit_bias": torch.zeros(())}
    with pytest.raises(ValueError, match="SigLIP"):
        cv.state_to_ours(state, cv.hf_pairs(cp.CLIPConfig.tiny()))
    with pytest.raises(ValueError, match="missing"):
        cv.state_to_ours({}, cv.hf_pairs(cp.CLIPConfig.tiny()))


# --------------------------------------------------------------------------------------
# The model's own behaviour
# --------------------------------------------------------------------------------------


def test_sdpa_equals_step_by_step_attention():
    eager = _ours()
    sdpa = cp.CLIP(cp.CLIPConfig.tiny(attn_implementation="sdpa")).double()
    sdpa.load_state_dict(eager.state_dict())
    images, (ids, mask) = _images(), _texts(pad_id=EOS)
    for with_mask in (mask, None):
        _assert_all_close(_our_outputs(sdpa, images, ids, with_mask),
                          _our_outputs(eager, images, ids, with_mask))


def test_attention_maps_are_softmax_rows():
    model = _ours(attn_implementation="sdpa")
    features, attentions = model.encode_image(_images(), return_attention=True)
    assert_close(features, model.encode_image(_images()), name="features")
    assert len(attentions) == 2 and attentions[0].shape == (2, 4, 17, 17)
    assert_close(attentions[1].sum(-1), torch.ones(2, 4, 17, dtype=torch.float64))


def test_logit_scale_starts_at_1_over_007_and_is_clamped_at_100():
    model = _ours()
    assert cp.CLIP(cp.CLIPConfig.tiny()).logit_scale.exp().item() == pytest.approx(1 / 0.07)
    images, (ids, mask) = _images(3), _texts(pad_id=EOS)
    cosine = F.normalize(model.encode_image(images), dim=-1) @ \
        F.normalize(model.encode_text(ids, mask), dim=-1).T
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    logits_per_image, logits_per_text = model(images, ids, mask)
    assert_close(logits_per_image, 100.0 * cosine, name="clamped logits")
    assert_close(logits_per_text, logits_per_image.T, name="transpose")
    cp.contrastive_loss(logits_per_image).backward()
    assert model.logit_scale.grad.item() == 0.0  # beyond the clamp: no gradient


@pytest.mark.parametrize("pool", ["eos", "argmax"])
def test_text_feature_is_read_at_the_end_token(pool):
    """The feature depends on the tokens up to the end token only (causal attention), and is
    the final-norm state there: "eos" reads the FIRST end token, "argmax" the largest id."""
    model = _ours(text={"pool": pool, "eos_token_id": 40})  # 40: not the largest id
    ids = torch.tensor([[5, 9, 40, 50, 40, 3], [7, 40, 2, 2, 2, 2]])
    read = [2, 1] if pool == "eos" else [3, 1]
    truncated = [model.encode_text(ids[row:row + 1, :read[row] + 1]) for row in range(2)]
    assert_close(model.encode_text(ids), torch.cat(truncated), name="text feature")
    changed = ids.clone()
    changed[:, -1] = 11  # after the read position: no change
    assert_close(model.encode_text(changed), model.encode_text(ids), name="after the end")
    changed[0, 0] = 12  # before it: a change
    assert not torch.allclose(model.encode_text(changed)[0], model.encode_text(ids)[0])


def test_contrastive_loss_by_hand_and_as_transformers():
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    by_rows = -torch.log_softmax(logits, dim=1).diagonal().mean()  # images pick texts
    by_columns = -torch.log_softmax(logits, dim=0).diagonal().mean()  # texts pick images
    assert_close(cp.contrastive_loss(logits), (by_rows + by_columns) / 2, name="Figure 3")
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss
    assert_close(cp.contrastive_loss(logits), image_text_contrastive_loss(logits.T),
                 name="transformers")
    assert cp.contrastive_loss(100 * torch.eye(3)).item() < 1e-30  # matched pairs: 0


def test_initialisation_follows_openai():
    torch.manual_seed(6)
    config = cp.CLIPConfig.tiny(vision={"d_model": 64, "n_heads": 4},
                                text={"d_model": 128, "vocab_size": 512})
    model = cp.CLIP(config)
    expected = {"text.embeddings.word.weight": 0.02, "text.embeddings.position.weight": 0.01,
                "visual.position_embedding": 64 ** -0.5, "visual.projection.weight": 64 ** -0.5,
                "text.projection.weight": 128 ** -0.5,
                "text.layers.0.attention.qkv.weight": 128 ** -0.5,
                "text.layers.1.attention.out.weight": 128 ** -0.5 * 4 ** -0.5,
                "text.layers.0.ffn.up.weight": 256 ** -0.5,
                "visual.layers.0.ffn.down.weight": 64 ** -0.5 * 4 ** -0.5}
    state = model.state_dict()
    for name, std in expected.items():
        assert state[name].std().item() == pytest.approx(std, rel=0.15), name
    assert state["text.layers.0.attention.qkv.bias"].abs().sum() == 0
    assert torch.equal(state["visual.pre_norm.weight"], torch.ones(64))
    resnet = cp.CLIP(cp.CLIPConfig.tiny(vision=cp.CLIPResNetConfig(image_size=32, width=8)))
    assert resnet.visual.stages[0][0].bn3.weight.abs().sum() == 0  # blocks start as identity


def test_manual_seed_determinism():
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        states.append(cp.CLIP(cp.CLIPConfig.tiny()).state_dict())
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


def test_state_dict_names_of_the_contract_and_round_trip():
    model = _ours()
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["visual.patch_embed.weight"] == (32, 3 * 8 * 8)
    assert shapes["visual.cls_token"] == (32,)
    assert shapes["visual.position_embedding"] == (17, 32)
    assert shapes["visual.layers.1.attention.qkv.weight"] == (96, 32)
    assert shapes["visual.projection.weight"] == shapes["text.projection.weight"] == (16, 32)
    assert shapes["text.embeddings.word.weight"] == (VOCAB, 32)
    assert shapes["text.embeddings.position.weight"] == (CONTEXT, 32)
    assert shapes["logit_scale"] == ()
    for tower in ("visual", "text"):
        for name in ("norm1", "attention.qkv", "attention.out", "norm2", "ffn.up", "ffn.down"):
            assert f"{tower}.layers.0.{name}.bias" in shapes
        assert f"{tower}.final_norm.weight" in shapes
    assert "visual.pre_norm.weight" in shapes and "visual.patch_embed.bias" not in shapes
    fresh = cp.CLIP(cp.CLIPConfig.tiny()).double()
    fresh.load_state_dict(model.state_dict())
    images, (ids, mask) = _images(), _texts(pad_id=EOS)
    _assert_all_close(_our_outputs(fresh, images, ids, mask),
                      _our_outputs(model, images, ids, mask))


def test_overfits_one_small_batch():
    torch.manual_seed(8)
    model = cp.CLIP(cp.CLIPConfig.tiny())
    images, (ids, mask) = _images(3).float(), _texts(pad_id=EOS)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = cp.contrastive_loss(model(images, ids, mask)[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 < losses[0]


def test_bad_inputs_raise_clear_errors():
    model = cp.CLIP(cp.CLIPConfig.tiny())
    ids, mask = _texts(pad_id=EOS)
    for images, message in [(torch.zeros(2, 3, 32, 32, dtype=torch.long), "float tensor"),
                            (torch.zeros(3, 32, 32), r"\(B, C, H, W\)"),
                            (torch.zeros(2, 3, 48, 48), r"\(3, 32, 32\)"),
                            (torch.zeros(2, 1, 32, 32), "config.vision")]:
        with pytest.raises(ValueError, match=message):
            model.encode_image(images)
    for bad_ids, message in [(ids.float(), "int64"), (ids[0], r"\(B, T\)"),
                             (torch.full((1, CONTEXT + 1), EOS), "max_len=16"),
                             (ids + VOCAB, "0..63"), (torch.ones(2, 4, dtype=torch.long),
                                                      "end-of-text id 63")]:
        with pytest.raises(ValueError, match=message):
            model.encode_text(bad_ids)
    with pytest.raises(ValueError, match="attention_mask"):
        model.encode_text(ids, mask[:, :3])
    with pytest.raises(ValueError, match="attention_mask"):
        model.encode_text(ids, 2 * mask)
    with pytest.raises(ValueError, match="square"):
        cp.contrastive_loss(torch.zeros(2, 3))
    for overrides, message in [({"vision": {"n_heads": 5}}, "multiple of n_heads"),
                               ({"vision": {"patch_size": 5}}, "whole patches"),
                               ({"text": {"eos_token_id": 64}}, "eos_token_id"),
                               ({"text": {"pool": "mean"}}, "pool"),
                               ({"activation": "relu"}, "activation"),
                               ({"attn_implementation": "flash"}, "attn_implementation"),
                               ({"embed_dim": 0}, "positive")]:
        with pytest.raises(ValueError, match=message):
            cp.CLIPConfig.tiny(**overrides)
    with pytest.raises(ValueError, match="multiple of 32"):
        cp.CLIPResNetConfig(image_size=40)
    with pytest.raises(ValueError, match="only the ViT"):
        cp.CLIP(cp.CLIPConfig.tiny(vision=cp.CLIPResNetConfig(image_size=32, width=8))
                ).encode_image(torch.zeros(1, 3, 32, 32), return_attention=True)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)
