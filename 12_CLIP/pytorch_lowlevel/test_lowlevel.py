"""Tests of lesson 12, Level 2: CLIP from tensors and autograd.

- image and text embeddings (projected, before normalisation), both logit matrices, the
  symmetric loss and the gradient of every parameter == transformers' CLIPModel (small
  random CLIPConfig, no download) with copied weights, float64, 1e-10, for both ways of
  finding the end token: the first eos_token_id (transformers, padding = the end token) and
  the largest id (OpenAI / open_clip, transformers' legacy eos_token_id == 2, padding = 0).
  CLIPModel's sdpa attention stays in float64; its eager attention takes the softmax in
  float32 whatever the dtype, so that one is compared at float32's tolerance
- quick-GELU == transformers' "quick_gelu", within 0.021 of the erf GELU
- contrastive_loss == (F.cross_entropy(S, arange) + F.cross_entropy(S^T, arange)) / 2
- the scale exp(logit_scale) is clipped at 100 (transformers' CLIPModel does not clip)
- the text feature is read at the end token whatever follows it; the text tower is causal
  at every position; the image tower reads [CLS] and sees every patch
- init_params: transformers' names, shapes and per-tensor statistics; the logit scale
  starts at 1 / 0.07; bad inputs at the door; the purity rule
- train.py: the batch loss, every pair once per epoch in a fresh order, warm-up then decay,
  the prompt ensemble; a tiny run lowers the loss and reports its metrics; bad options

Run: .venv/bin/python -m pytest 12_CLIP/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from utils import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity, float32_tol

clip = import_lesson("12_CLIP.pytorch_lowlevel.clip_lowlevel")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

VOCAB, MAX_LEN, BATCH, TEXT_LEN = 60, 12, 4, 10
# the two end-token rules: (pool, end token id, transformers' eos_token_id, padding id)
FIRST_EOS = ("eos", 5, 5, 5)  # transformers: the first id == 5; it pads with the end token
LARGEST_ID = ("argmax", VOCAB - 1, 2, 0)  # OpenAI: the largest id; transformers' legacy 2


def make_config(rule=FIRST_EOS, vision_heads: int = 2, text_heads: int = 4,
                **overrides) -> clip.CLIPConfig:
    vision = clip.CLIPVisionConfig(image_size=32, patch_size=8, in_channels=3, d_model=32,
                                   n_layers=2, n_heads=vision_heads, d_ff=40)
    text = clip.CLIPTextConfig(vocab_size=VOCAB, max_len=MAX_LEN, d_model=32, n_layers=2,
                               n_heads=text_heads, d_ff=48, pool=rule[0], eos_token_id=rule[1])
    return clip.CLIPConfig(vision=vision, text=text, embed_dim=16, **overrides)


def random_params(config, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter random (biases and layer norms too), float64: nothing hides at 0 or 1;
    logit_scale keeps its initial value."""
    params = clip.init_params(config, seed=seed, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in params.items():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)
            elif name != "logit_scale":
                p.copy_(0.3 * noise)
    return params


def images_for(config, batch: int = BATCH, seed: int = 1) -> torch.Tensor:
    size, generator = config.vision.image_size, torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator, dtype=torch.float64)


def texts_for(rule, batch: int = BATCH, seed: int = 2, lengths=(3, 10, 6, 1)):
    """input_ids (B, TEXT_LEN) and attention_mask: words, the end token at position
    lengths[b] - 1 (1-based length counts it), then padding, mask 0."""
    _, end, _, pad = rule
    generator = torch.Generator().manual_seed(seed)
    words = torch.randint(6, VOCAB - 1, (batch, TEXT_LEN), generator=generator)
    positions = torch.arange(TEXT_LEN)
    length = torch.tensor(lengths[:batch])[:, None]  # (B, 1)
    ids = torch.where(positions < length - 1, words, pad)  # (B, T)
    ids = torch.where(positions == length - 1, end, ids)
    return ids, (positions < length).long()


# --------------------------------------------------------------------------------------
# The reference: transformers' CLIPModel from a small random config, our weights copied in
# --------------------------------------------------------------------------------------

HF_NAMES = [("visual.patch_embed.", "vision_model.embeddings.patch_embedding."),
            ("visual.cls_token", "vision_model.embeddings.class_embedding"),
            ("visual.position_embedding", "vision_model.embeddings.position_embedding.weight"),
            ("visual.pre_norm.", "vision_model.pre_layrnorm."),
            ("visual.final_norm.", "vision_model.post_layernorm."),
            ("visual.projection.", "visual_projection."),
            ("visual.layers.", "vision_model.encoder.layers."),
            ("text.embeddings.word.", "text_model.embeddings.token_embedding."),
            ("text.embeddings.position.", "text_model.embeddings.position_embedding."),
            ("text.final_norm.", "text_model.final_layer_norm."),
            ("text.projection.", "text_projection."),
            ("text.layers.", "text_model.encoder.layers."),
            ("attention.out.", "self_attn.out_proj."), ("attention.", "self_attn."),
            ("norm1.", "layer_norm1."), ("norm2.", "layer_norm2."), ("ffn.up.", "mlp.fc1."),
            ("ffn.down.", "mlp.fc2.")]
QKV = ("q_proj", "k_proj", "v_proj")


def hf_name(name: str) -> str:
    for ours, theirs in HF_NAMES:
        name = name.replace(ours, theirs)
    return name


def hf_config(config, hf_eos_token_id: int, attn_implementation: str = "sdpa"):
    """transformers' CLIPConfig of our config's sizes (no download)."""
    transformers = pytest.importorskip("transformers")
    vision, text = config.vision, config.text
    text_config = transformers.CLIPTextConfig(
        vocab_size=text.vocab_size, hidden_size=text.d_model, intermediate_size=text.d_ff,
        num_hidden_layers=text.n_layers, num_attention_heads=text.n_heads,
        max_position_embeddings=text.max_len, hidden_act=config.activation,
        layer_norm_eps=text.layer_norm_eps, eos_token_id=hf_eos_token_id)
    vision_config = transformers.CLIPVisionConfig(
        hidden_size=vision.d_model, intermediate_size=vision.d_ff,
        num_hidden_layers=vision.n_layers, num_attention_heads=vision.n_heads,
        image_size=vision.image_size, patch_size=vision.patch_size,
        num_channels=vision.in_channels, hidden_act=config.activation,
        layer_norm_eps=vision.layer_norm_eps)
    return transformers.CLIPConfig(
        text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
        projection_dim=config.embed_dim, logit_scale_init_value=config.logit_scale_init,
        attn_implementation=attn_implementation)


def hf_model(params, config, hf_eos_token_id: int, attn_implementation: str = "sdpa"):
    """transformers' CLIPModel of config's sizes holding a copy of ``params`` (float64)."""
    transformers = pytest.importorskip("transformers")
    model = transformers.CLIPModel(hf_config(config, hf_eos_token_id, attn_implementation))
    model = model.double().eval()
    assert model.text_model.eos_token_id == hf_eos_token_id
    vision, state = config.vision, {}
    for name, p in params.items():
        value = p.detach()
        if ".attention.qkv." in name:  # rows q, then k, then v
            for part, value_part in zip(QKV, value.chunk(3)):
                state[hf_name(name).replace("self_attn.qkv.", f"self_attn.{part}.")] = value_part
        elif name == "visual.patch_embed.weight":  # (D, C P P) -> the conv's (D, C, P, P)
            state[hf_name(name)] = value.reshape(vision.d_model, vision.in_channels,
                                                 vision.patch_size, vision.patch_size)
        else:
            state[hf_name(name)] = value
    model.load_state_dict(state, strict=True)
    return model


def hf_gradient(model, name: str, shape) -> torch.Tensor:
    """The gradient of our parameter ``name`` gathered from transformers' parameters."""
    theirs = dict(model.named_parameters())
    if ".attention.qkv." in name:  # stack the three projections' gradients: q, k, v
        base = hf_name(name)
        return torch.cat([theirs[base.replace("self_attn.qkv.", f"self_attn.{part}.")].grad
                          for part in QKV])
    return theirs[hf_name(name)].grad.reshape(shape)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The model against transformers' CLIPModel
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [FIRST_EOS, LARGEST_ID], ids=["first_eos", "largest_id"])
def test_embeddings_logits_loss_and_every_gradient_equal_transformers(rule):
    config = make_config(rule)
    params = random_params(config)
    model = hf_model(params, config, hf_eos_token_id=rule[2])
    images = images_for(config)
    input_ids, attention_mask = texts_for(rule)
    image_embeds = clip.encode_image(params, config, images)
    text_embeds = clip.encode_text(params, config, input_ids, attention_mask)
    with torch.no_grad():
        assert_close(image_embeds, model.get_image_features(images).pooler_output, FLOAT64,
                     "image embeddings (projected [CLS] after ln_post)")
        assert_close(text_embeds, model.get_text_features(input_ids, attention_mask)
                     .pooler_output, FLOAT64, "text embeddings (projected end token)")
    logits_per_image, logits_per_text = clip.forward(params, config, images, input_ids,
                                                     attention_mask)
    expected = model(input_ids=input_ids, pixel_values=images, attention_mask=attention_mask,
                     return_loss=True)
    assert_close(logits_per_image, expected.logits_per_image, FLOAT64, "logits_per_image")
    assert_close(logits_per_text, expected.logits_per_text, FLOAT64, "logits_per_text")
    assert_close(clip.l2_normalize(image_embeds), expected.image_embeds, FLOAT64, "unit images")
    loss = clip.contrastive_loss(logits_per_image)
    assert_close(loss, expected.loss, FLOAT64, "symmetric contrastive loss")
    loss.backward()
    expected.loss.backward()
    for name, p in params.items():
        assert_close(p.grad, hf_gradient(model, name, p.shape), FLOAT64, f"gradient of {name}")
        if not name.endswith(".attention.qkv.bias"):  # the key bias cannot change a softmax
            assert p.grad.abs().max() > 1e-6, f"no gradient reaches {name}"
    # transformers' eager attention: the softmax in float32 even for a float64 model
    eager = hf_model(params, config, rule[2], "eager")
    with torch.no_grad():
        eager_logits = eager(input_ids=input_ids, pixel_values=images,
                             attention_mask=attention_mask).logits_per_image
    assert_close(logits_per_image, eager_logits, float32_tol(64), "logits against eager")


def test_quick_gelu_equals_transformers_and_approximates_gelu():
    activations = pytest.importorskip("transformers.activations")
    x = torch.linspace(-6, 6, 241, dtype=torch.float64, requires_grad=True)
    ours, theirs = clip.quick_gelu(x), activations.ACT2FN["quick_gelu"](x)
    assert_close(ours, theirs, FLOAT64, "quick_gelu")
    assert_close(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(theirs.sum(), x)[0],
                 FLOAT64, "its derivative")
    gap = (ours - F.gelu(x)).abs().max()
    assert 0.01 < float(gap.detach()) < 0.021  # close to the erf GELU, not equal to it
    assert_close(clip.ACTIVATIONS["gelu"](x), F.gelu(x), FLOAT64, "the erf GELU option")


def test_activation_option_gelu_equals_transformers_gelu():
    config = make_config(activation="gelu")
    params = random_params(config, seed=4)
    model = hf_model(params, config, hf_eos_token_id=5)
    images, (input_ids, attention_mask) = images_for(config), texts_for(FIRST_EOS)
    with torch.no_grad():
        expected = model(input_ids=input_ids, pixel_values=images, attention_mask=attention_mask)
        logits, _ = clip.forward(params, config, images, input_ids, attention_mask)
        assert_close(logits, expected.logits_per_image, FLOAT64, "logits with the erf GELU")
        quick, _ = clip.forward(params, make_config(), images, input_ids, attention_mask)
    assert (quick - logits).abs().max() > 1e-3


# --------------------------------------------------------------------------------------
# The loss and the temperature
# --------------------------------------------------------------------------------------


def test_contrastive_loss_equals_cross_entropy_both_ways_averaged():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 6, generator=generator, dtype=torch.float64) * 5
    logits.requires_grad_(True)
    labels = torch.arange(6)
    ours = clip.contrastive_loss(logits)
    images_pick = F.cross_entropy(logits, labels)  # each image picks its text (rows)
    texts_pick = F.cross_entropy(logits.T, labels)  # each text picks its image (columns)
    expected = (images_pick + texts_pick) / 2
    assert_close(ours, expected, FLOAT64, "symmetric cross-entropy")
    assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(expected, logits)[0],
                 FLOAT64, "its gradient")
    assert abs(float((images_pick - texts_pick).detach())) > 0.1  # not symmetric by accident
    # large logits (scale 100): no overflow
    big = clip.contrastive_loss(logits.detach() * 100)
    assert torch.isfinite(big) and abs(float(big) - float(
        (F.cross_entropy(logits.detach() * 100, labels)
         + F.cross_entropy(logits.detach().T * 100, labels)) / 2)) < 1e-9


def test_logit_scale_starts_at_one_over_0_07_and_is_clipped_at_100():
    config = make_config()
    params = random_params(config, seed=1)
    assert float(params["logit_scale"].detach()) == pytest.approx(math.log(1 / 0.07), rel=1e-15)
    assert float(clip.logit_scale(params, config).detach()) == pytest.approx(1 / 0.07, rel=1e-12)
    images, (input_ids, attention_mask) = images_for(config), texts_for(FIRST_EOS)
    with torch.no_grad():
        params["logit_scale"].fill_(math.log(250.0))  # above log(100) = 4.605
    model = hf_model(params, config, hf_eos_token_id=5)
    logits, _ = clip.forward(params, config, images, input_ids, attention_mask)
    cosines = clip.l2_normalize(clip.encode_image(params, config, images)) @ clip.l2_normalize(
        clip.encode_text(params, config, input_ids, attention_mask)).T
    assert_close(logits, 100.0 * cosines, FLOAT64, "logits at the clip: 100 cos")
    # transformers' CLIPModel multiplies by exp(logit_scale) unclipped: 250 cos
    with torch.no_grad():
        theirs = model(input_ids=input_ids, pixel_values=images,
                       attention_mask=attention_mask).logits_per_image
    assert_close(theirs, 2.5 * logits.detach(), FLOAT64, "transformers: not clipped")
    clip.contrastive_loss(logits).backward()
    assert float(params["logit_scale"].grad) == 0.0  # no gradient above the clip
    assert params["visual.projection.weight"].grad.abs().max() > 1e-6


# --------------------------------------------------------------------------------------
# Where the features are read, and what each position sees
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [FIRST_EOS, LARGEST_ID], ids=["first_eos", "largest_id"])
def test_text_feature_is_read_at_the_end_token_whatever_follows_it(rule):
    config = make_config(rule)
    params = random_params(config, seed=2)
    input_ids, _ = texts_for(rule)
    features = clip.encode_text(params, config, input_ids)  # mask all 1: causality suffices
    end = rule[1]
    positions = clip.eos_positions(input_ids, config.text)
    assert positions.tolist() == [2, 9, 5, 0]
    changed = input_ids.clone()
    generator = torch.Generator().manual_seed(9)
    for row, position in enumerate(positions.tolist()):
        after = changed[row, position + 1:]
        after.copy_(torch.randint(6, VOCAB - 1, after.shape, generator=generator))
        if rule[0] == "eos" and after.numel():
            after[-1] = end  # a second end token: the first one counts
    assert not torch.equal(changed, input_ids)
    assert_close(clip.encode_text(params, config, changed), features, FLOAT64,
                 "feature after other tokens follow the end token")
    changed[:, 0] = torch.where(changed[:, 0] == 7, 8, 7)  # a token before (or at) the end
    changed[3, 0] = end
    assert (clip.encode_text(params, config, changed)[:3] - features[:3]).abs().min() > 1e-6


def test_text_tower_is_causal_at_every_position():
    config = make_config(FIRST_EOS)
    params = random_params(config, seed=3)
    generator = torch.Generator().manual_seed(4)
    for position in range(TEXT_LEN - 1):
        ids = torch.randint(6, VOCAB, (2, TEXT_LEN), generator=generator)
        ids[:, position] = 5  # the feature is read here
        later = ids.clone()
        later[:, position + 1:] = torch.randint(6, VOCAB, (2, TEXT_LEN - position - 1),
                                                generator=generator)
        assert_close(clip.encode_text(params, config, later),
                     clip.encode_text(params, config, ids), FLOAT64,
                     f"feature at {position} after changing the later tokens")
        earlier = ids.clone()
        earlier[:, max(0, position - 1)] = torch.where(earlier[:, max(0, position - 1)] == 6,
                                                       7, 6)
        if position:  # an earlier token does change it
            assert (clip.encode_text(params, config, earlier)
                    - clip.encode_text(params, config, ids)).abs().max() > 1e-6


def test_image_feature_sees_every_patch_and_depends_on_ln_pre():
    config = make_config()
    config.vision.layer_norm_eps = 1e-12  # so that LN(3 x) == LN(x) to rounding
    params = random_params(config, seed=5)
    images = images_for(config, batch=2)
    features = clip.encode_image(params, config, images)
    patch = config.vision.patch_size
    for row, col in ((0, 0), (3, 3), (1, 2)):  # every patch reaches [CLS]
        changed = images.clone()
        changed[:, :, row * patch:(row + 1) * patch, col * patch:(col + 1) * patch] += 1.0
        assert (clip.encode_image(params, config, changed) - features).abs().max() > 1e-6
    # ln_pre normalises each token: scaling the patch weights, [CLS] and positions together
    # changes nothing
    scaled = {name: p.detach() * (3.0 if name in ("visual.patch_embed.weight",
                                                  "visual.cls_token",
                                                  "visual.position_embedding") else 1.0)
              for name, p in params.items()}
    assert_close(clip.encode_image(scaled, config, images), features, FLOAT64,
                 "features after scaling what ln_pre normalises")


# --------------------------------------------------------------------------------------
# Initialisation, AdamW's groups, the door
# --------------------------------------------------------------------------------------


def test_init_params_has_every_transformers_parameter_and_its_statistics():
    config = clip.CLIPConfig(
        vision=clip.CLIPVisionConfig(image_size=64, patch_size=8, d_model=96, n_layers=2,
                                     n_heads=4),
        text=clip.CLIPTextConfig(vocab_size=400, max_len=40, d_model=64, n_layers=3,
                                 n_heads=4, eos_token_id=399), embed_dim=48)
    # ours (OpenAI's model.py) / transformers' std where the two differ; elsewhere 1
    ratios = {"text_model.embeddings.position_embedding": 0.01 / 0.02,
              "vision_model.embeddings.position_embedding": 96 ** -0.5 / 0.02,
              "patch_embedding": (3 * 3 * 8 * 8) ** -0.5 / 0.02}  # U(-b, b): std b / sqrt 3
    params = clip.init_params(config, seed=0)
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.CLIPModel(hf_config(config, 399))  # transformers' own draw
    theirs = {name: p.detach() for name, p in model.named_parameters()}
    ours_named = {}
    for name, p in params.items():
        assert p.requires_grad and p.is_leaf and p.dtype == torch.float32, name
        if ".attention.qkv." in name:
            for part, value in zip(QKV, p.detach().chunk(3)):
                ours_named[hf_name(name).replace("self_attn.qkv.", f"self_attn.{part}.")] = value
        else:
            ours_named[hf_name(name)] = p.detach()
    assert sorted(ours_named) == sorted(theirs)
    for name, value in ours_named.items():
        reference = theirs[name].float()
        assert value.numel() == reference.numel(), name
        if reference.numel() == 1 or float(reference.std()) == 0.0:  # constants
            assert torch.equal(value.reshape(reference.shape), reference), name
        else:  # transformers' std, or OpenAI's where they differ, to sampling error
            branches = 2 * (2 if name.startswith("vision_model") else 3)  # 2 L
            swapped = {"q_proj.": branches ** 0.5, "k_proj.": branches ** 0.5,
                       "v_proj.": branches ** 0.5, "out_proj.": branches ** -0.5}
            expected = next((r for key, r in {**ratios, **swapped}.items() if key in name), 1.0)
            ratio = float(value.std()) / float(reference.std())
            assert abs(ratio / expected - 1) < 0.15, \
                f"{name}: std {float(value.std()):.4f}, transformers' {float(reference.std()):.4f}"
    bound = (3 * 8 * 8) ** -0.5  # PyTorch's Conv2d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert 0.95 * bound < float(params["visual.patch_embed.weight"].detach().abs().max()) <= bound
    assert float(params["logit_scale"].detach()) == pytest.approx(math.log(1 / 0.07))
    again = clip.init_params(config, seed=0)
    assert all(torch.equal(params[n], again[n]) for n in params)
    assert not torch.equal(clip.init_params(config, seed=1)["visual.cls_token"],
                           params["visual.cls_token"])


def test_param_groups_decay_matrices_not_gains_biases_nor_the_temperature():
    params = clip.init_params(make_config())
    decay, no_decay = clip.param_groups(params, weight_decay=0.2)
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert {"logit_scale", "visual.cls_token", "visual.pre_norm.weight",
            "text.layers.1.attention.qkv.bias", "text.final_norm.bias"} <= set(no_decay["names"])
    assert {"visual.patch_embed.weight", "text.embeddings.word.weight", "text.projection.weight",
            "visual.layers.0.ffn.up.weight"} <= set(decay["names"])
    assert sorted(decay["names"] + no_decay["names"]) == sorted(params)


def test_bad_inputs_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="image_size 30 is not divisible by patch_size 8"):
        clip.CLIPVisionConfig(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        clip.CLIPTextConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="eos_token_id must be in"):
        clip.CLIPTextConfig(vocab_size=10, eos_token_id=10)
    with pytest.raises(ValueError, match="pool one of"):
        clip.CLIPTextConfig(pool="first")
    with pytest.raises(ValueError, match="activation must be one of"):
        make_config(activation="relu")
    config = make_config()
    params = clip.init_params(config)
    with pytest.raises(ValueError, match=r"images: expected .* \(B, 3, 32, 32\)"):
        clip.encode_image(params, config, torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="float tensor"):
        clip.encode_image(params, config, torch.zeros(2, 3, 32, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="T <= max_len = 12"):
        clip.encode_text(params, config, torch.full((1, 13), 5))
    with pytest.raises(ValueError, match=r"integers in \[0, vocab_size = 60\)"):
        clip.encode_text(params, config, torch.tensor([[5, 60]]))
    with pytest.raises(ValueError, match="end token eos_token_id = 5"):
        clip.encode_text(params, config, torch.tensor([[7, 8], [7, 5]]))
    with pytest.raises(ValueError, match="square logits"):
        clip.contrastive_loss(torch.zeros(3, 4))


# --------------------------------------------------------------------------------------
# The script (train.py): the loss of a batch, the shuffling, the schedule, the ensembled
# zero-shot classifier, a tiny run end to end, bad options
# --------------------------------------------------------------------------------------

script = import_lesson("12_CLIP.pytorch_lowlevel.train")
TINY_RUN = ["--limit", "40", "--variants", "2", "--d-model", "32", "--layers", "1",
            "--heads", "2", "--embed-dim", "32", "--batch-size", "20", "--epochs", "12",
            "--lr", "3e-3", "--no-progress"]  # 80 training pairs, 40 test: a few seconds


def test_batch_loss_is_the_symmetric_cross_entropy_of_both_directions():
    config = make_config()
    params = random_params(config)
    images, (input_ids, mask) = images_for(config), texts_for(FIRST_EOS)
    loss = script.batch_loss(params, config, images, input_ids, mask)
    logits, _ = clip.forward(params, config, images, input_ids, mask)
    labels = torch.arange(len(logits))
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert_close(loss, expected, FLOAT64)


def test_every_epoch_sees_every_pair_once_in_a_fresh_order():
    generator = torch.Generator().manual_seed(0)
    first = script.shuffled_batches(50, 16, generator)
    second = script.shuffled_batches(50, 16, generator)
    assert [len(batch) for batch in first] == [16, 16, 16, 2]
    for epoch in (first, second):
        assert torch.equal(torch.cat(epoch).sort().values, torch.arange(50))
    assert not torch.equal(torch.cat(first), torch.arange(50))
    assert not torch.equal(torch.cat(first), torch.cat(second))


def test_training_warms_up_then_decays_the_rate_and_lowers_the_loss():
    config = make_config()
    params = clip.init_params(config, seed=0)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(16, 3, 32, 32, generator=generator)
    input_ids = torch.randint(6, VOCAB, (16, 6), generator=generator)
    input_ids[:, -1] = 5  # the end token
    history = script.train(params, config, images, input_ids, torch.ones_like(input_ids),
                           epochs=10, batch_size=8, lr=2e-3, warmup=0.2)
    rates = history["lr"]
    assert len(rates) == len(history["loss"]) == 20 and len(history["epoch_loss"]) == 10
    assert rates[0] == pytest.approx(2e-3 / 4) and max(rates) == pytest.approx(2e-3)
    assert rates.index(max(rates)) == 3 and rates[-1] < 0.05 * 2e-3
    assert history["epoch_loss"][-1] < history["epoch_loss"][0] - 0.3


def test_zero_shot_weights_are_the_normalised_mean_of_normalised_prompt_embeddings():
    tokenizer = script.tokenization.CLIPTokenizer.train(
        ["a red seven", "a blue one in the top left", "the digit seven"], 530)
    text = clip.CLIPTextConfig(vocab_size=len(tokenizer), max_len=MAX_LEN, d_model=32,
                               n_layers=2, n_heads=4, d_ff=48, eos_token_id=tokenizer.eot_token_id)
    config = clip.CLIPConfig(vision=make_config().vision, text=text, embed_dim=16)
    params = random_params(config)
    names, templates = ["seven", "one"], ["a photo of a {}", "{}", "the digit {} drawn"]
    weights = script.zero_shot_weights(params, config, tokenizer, names, templates)
    expected = []
    for name in names:
        embedded = []
        for template in templates:
            batch = tokenizer([template.format(name)], context_length=MAX_LEN)
            text = clip.encode_text(params, config, batch["input_ids"],
                                    batch["attention_mask"])[0]
            embedded.append(text / text.norm())
        mean = torch.stack(embedded).mean(dim=0)
        expected.append(mean / mean.norm())
    assert_close(weights, torch.stack(expected).detach(), FLOAT64)


def test_script_trains_tiny_clip_reports_metrics_and_plots(tmp_path, capsys):
    result = script.main([*TINY_RUN, "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert result["final_loss"] < result["first_loss"] - 0.3, result
    assert result["chance"] == 0.1 and result["train_seconds"] > 0
    for key in ("zero_shot_accuracy", "recall_image_to_text_at_1",
                "recall_text_to_image_at_1"):
        assert 0.0 <= result[key] <= 1.0, key
        assert result[key] * 40 == pytest.approx(round(result[key] * 40)), key  # k / 40
    assert "80 training / 40 test pairs" in printed and "zero-shot accuracy" in printed
    for name in ("loss.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


@pytest.mark.parametrize("argv, option", [
    (["--patch-size", "5"], "--patch-size"),
    (["--heads", "5"], "--heads"),
    (["--vocab-size", "100"], "--vocab-size"),
    (["--context-length", "1"], "--context-length"),
    (["--lr", "-1"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--warmup", "1.5"], "--warmup"),
    (["--dataset", "cifar10"], "--dataset"),
])
def test_bad_options_exit_2_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as raised:
        script.main(argv)
    assert raised.value.code == 2
    assert option in capsys.readouterr().err


def test_level_purity_holds_with_the_training_script():
    folder = Path(__file__).parent
    assert (folder / "train.py").is_file()
    assert_level_purity(folder)
