"""Porting CLIP weights between clip_paper.py, transformers, open_clip and checkpoint folders.

- ``from_hf(hf_model)`` / ``to_hf(model)``: transformers' ``CLIPModel`` <-> ours (its
  separate q, k, v Linears fused into our ``qkv``; its patch Conv2d weight (D, C, P, P)
  reshaped to our Linear's (D, C P P)). ViT image towers only: transformers has no ResNet.
- ``from_open_clip(oc_model)`` / ``to_open_clip(model)``: open_clip's ``CLIP`` (ViT or
  modified-ResNet tower; its ``in_proj_weight`` is our qkv as it is; its projections are
  (D, E) matrices, ours (E, D) Linear weights).
- Each port refuses what our model cannot reproduce (layer scale, attentional poolers,
  SigLIP's logit bias, timm or Hugging Face towers, another norm or activation, ...),
  saying what.
- ``load_pretrained(directory)``: a folder in transformers' layout (``config.json`` with
  "model_type": "clip" and ``model.safetensors`` or ``pytorch_model.bin``), read WITHOUT
  transformers; ``save_pretrained`` writes one (transformers' from_pretrained reads it).
Only functions whose names contain from_/to_ import transformers or open_clip (the L3 rule).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from utils import import_lesson
from utils.checkpoints import WEIGHT_FILES, read_checkpoint  # config.json + weights

cp = import_lesson("12_CLIP.paper.clip_paper")
CLIP, CLIPConfig = cp.CLIP, cp.CLIPConfig

# --------------------------------------------------------------------------------------
# 1. The name tables: ours <-> theirs, generated for a config
# --------------------------------------------------------------------------------------

# Inside a block: ours -> transformers' (encoder.layers.{i}.) and open_clip's (resblocks.{i}.)
HF_LAYER_NAMES = {"norm1": "layer_norm1", "attention.out": "self_attn.out_proj",
                  "norm2": "layer_norm2", "ffn.up": "mlp.fc1", "ffn.down": "mlp.fc2"}
HF_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")  # -> slots of our qkv
OPEN_CLIP_LAYER_NAMES = {"norm1": "ln_1", "attention.out": "attn.out_proj", "norm2": "ln_2",
                         "ffn.up": "mlp.c_fc", "ffn.down": "mlp.c_proj"}
# Weights of features clip_paper.CLIP does not have: a port refuses them, saying what
FOREIGN_WEIGHTS = [
    (r"\.ls_[12]\.gamma$", "layer scale (ls_init_value)"),
    (r"(^|\.)logit_bias$", "a learned logit bias (SigLIP's sigmoid loss)"),
    (r"(^|\.)attn_pool", "an attentional pooler (CoCa)"),
    (r"(^|\.)cls_emb$", "a text class token (CoCa)"),
    (r"\.(q_norm|k_norm|ln_inner|ln_attn|ln_1_kv)\.", "extra norms inside the blocks"),
    (r"(^|\.)(trunk|transformer\.embeddings|text\.transformer)\.",
     "a timm or Hugging Face tower"),
    (r"text_projection\.bias$|text_projection\.\d", "a text projection with a bias or an MLP"),
]

Pairs = list[tuple[str, str | tuple[str, ...], str]]  # (ours, theirs, how: same/patch/T/qkv)


def _block_pairs(ours: str, theirs: str, n_layers: int, names: dict, qkv) -> Pairs:
    pairs = []
    for index in range(n_layers):
        our_layer, their_layer = f"{ours}.layers.{index}.", f"{theirs}.{index}."
        for param in ("weight", "bias"):
            if isinstance(qkv, tuple):  # transformers: three Linears
                pairs.append((f"{our_layer}attention.qkv.{param}",
                              tuple(f"{their_layer}{name}.{param}" for name in qkv), "qkv"))
            else:  # open_clip: nn.MultiheadAttention's in_proj_weight / in_proj_bias
                pairs.append((f"{our_layer}attention.qkv.{param}",
                              f"{their_layer}{qkv}_{param}", "same"))
            pairs += [(f"{our_layer}{mine}.{param}", f"{their_layer}{other}.{param}", "same")
                      for mine, other in names.items()]
    return pairs


def _norm_pairs(ours: str, theirs: str) -> Pairs:
    return [(f"{ours}.{param}", f"{theirs}.{param}", "same") for param in ("weight", "bias")]


def hf_pairs(config: CLIPConfig) -> Pairs:
    """Every parameter of ours with transformers' CLIPModel name(s) and how it moves."""
    return [("logit_scale", "logit_scale", "same"),
            ("visual.patch_embed.weight", "vision_model.embeddings.patch_embedding.weight",
             "patch"),
            ("visual.cls_token", "vision_model.embeddings.class_embedding", "same"),
            ("visual.position_embedding",
             "vision_model.embeddings.position_embedding.weight", "same"),
            *_norm_pairs("visual.pre_norm", "vision_model.pre_layrnorm"),
            *_block_pairs("visual", "vision_model.encoder.layers", config.vision.n_layers,
                          HF_LAYER_NAMES, HF_QKV),
            *_norm_pairs("visual.final_norm", "vision_model.post_layernorm"),
            ("visual.projection.weight", "visual_projection.weight", "same"),
            ("text.embeddings.word.weight", "text_model.embeddings.token_embedding.weight",
             "same"),
            ("text.embeddings.position.weight",
             "text_model.embeddings.position_embedding.weight", "same"),
            *_block_pairs("text", "text_model.encoder.layers", config.text.n_layers,
                          HF_LAYER_NAMES, HF_QKV),
            *_norm_pairs("text.final_norm", "text_model.final_layer_norm"),
            ("text.projection.weight", "text_projection.weight", "same")]


def _resnet_pairs(cfg) -> Pairs:
    """open_clip's ModifiedResNet names (conv/bn parameters and BatchNorm buffers)."""
    def conv_bn(ours_conv, theirs_conv, ours_bn, theirs_bn):
        return [(f"{ours_conv}.weight", f"{theirs_conv}.weight", "same")] + [
            (f"{ours_bn}.{name}", f"{theirs_bn}.{name}", "same")
            for name in ("weight", "bias", "running_mean", "running_var",
                         "num_batches_tracked")]
    pairs = []
    for ours_index, theirs_index in ((0, 1), (3, 2), (6, 3)):  # the stem's convolutions
        pairs += conv_bn(f"visual.stem.{ours_index}", f"visual.conv{theirs_index}",
                         f"visual.stem.{ours_index + 1}", f"visual.bn{theirs_index}")
    for stage, blocks in enumerate(cfg.layers):
        for block in range(blocks):
            ours, theirs = f"visual.stages.{stage}.{block}", f"visual.layer{stage + 1}.{block}"
            for index in (1, 2, 3):
                pairs += conv_bn(f"{ours}.conv{index}", f"{theirs}.conv{index}",
                                 f"{ours}.bn{index}", f"{theirs}.bn{index}")
            if block == 0:  # every stage's first block changes the shape
                pairs += conv_bn(f"{ours}.downsample.1", f"{theirs}.downsample.0",
                                 f"{ours}.downsample.2", f"{theirs}.downsample.1")
    pool, theirs = "visual.attention_pool", "visual.attnpool"
    for param in ("weight", "bias"):
        pairs.append((f"{pool}.qkv.{param}", tuple(f"{theirs}.{name}_proj.{param}"
                                                   for name in "qkv"), "qkv"))
        pairs.append((f"{pool}.out.{param}", f"{theirs}.c_proj.{param}", "same"))
    return [*pairs, (f"{pool}.position_embedding", f"{theirs}.positional_embedding", "same")]


def open_clip_pairs(config: CLIPConfig) -> Pairs:
    """Every entry of our state dict with open_clip's CLIP name(s) and how it moves."""
    if isinstance(config.vision, cp.CLIPResNetConfig):
        visual = _resnet_pairs(config.vision)
    else:
        visual = [("visual.patch_embed.weight", "visual.conv1.weight", "patch"),
                  ("visual.cls_token", "visual.class_embedding", "same"),
                  ("visual.position_embedding", "visual.positional_embedding", "same"),
                  *_norm_pairs("visual.pre_norm", "visual.ln_pre"),
                  *_block_pairs("visual", "visual.transformer.resblocks",
                                config.vision.n_layers, OPEN_CLIP_LAYER_NAMES,
                                "attn.in_proj"),
                  *_norm_pairs("visual.final_norm", "visual.ln_post"),
                  ("visual.projection.weight", "visual.proj", "T")]
    return [("logit_scale", "logit_scale", "same"), *visual,
            ("text.embeddings.word.weight", "token_embedding.weight", "same"),
            ("text.embeddings.position.weight", "positional_embedding", "same"),
            *_block_pairs("text", "transformer.resblocks", config.text.n_layers,
                          OPEN_CLIP_LAYER_NAMES, "attn.in_proj"),
            *_norm_pairs("text.final_norm", "ln_final"),
            ("text.projection.weight", "text_projection", "T")]


def _listed(names, limit: int = 5) -> str:
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def state_to_ours(state: dict[str, torch.Tensor], pairs: Pairs,
                  source: str = "the state dict") -> dict[str, torch.Tensor]:
    """Their state dict -> ours: q, k, v stacked into qkv ([q | k | v] rows), the patch
    convolution (D, C, P, P) flattened to (D, C P P), (D, E) matrices transposed.
    Refuses weights of features we lack and names it does not know; every name needed must
    be there (transformers' ``position_ids`` buffers are skipped)."""
    state = {key: value for key, value in state.items() if not key.endswith("position_ids")}
    found = {what: key for key in state for pattern, what in FOREIGN_WEIGHTS
             if re.search(pattern, key)}
    if found:
        raise ValueError(f"{source} has what clip_paper.CLIP does not: "
                         + "; ".join(f"{what} ({key})" for what, key in found.items()))
    needed = [name for _, theirs, _ in pairs
              for name in (theirs if isinstance(theirs, tuple) else (theirs,))]
    for problem, names in (("weights are missing", [k for k in needed if k not in state]),
                           ("weights are left over (another architecture or size?)",
                            sorted(set(state) - set(needed)))):
        if names:
            raise ValueError(f"{source}: {problem}: {_listed(names)}")
    ours = {}
    for mine, theirs, how in pairs:
        if how == "qkv":
            ours[mine] = torch.cat([state[name] for name in theirs])  # (3D, ...) = [q; k; v]
        elif how == "patch":
            ours[mine] = state[theirs].flatten(1)  # (D, C, P, P) -> (D, C P P)
        elif how == "T":
            ours[mine] = state[theirs].T  # (D, E) -> (E, D)
        else:
            ours[mine] = state[theirs]
    return ours


def state_from_ours(model: CLIP, pairs: Pairs) -> dict[str, torch.Tensor]:
    """Our state dict -> theirs (the inverse of ``state_to_ours``)."""
    ours, theirs_state = model.state_dict(), {}
    for mine, theirs, how in pairs:
        value = ours[mine]
        if how == "qkv":
            for name, part in zip(theirs, value.chunk(3)):  # [q; k; v] -> three (D, ...)
                theirs_state[name] = part
        elif how == "patch":
            cfg = model.config.vision  # (D, C P P) -> (D, C, P, P)
            theirs_state[theirs] = value.reshape(cfg.d_model, cfg.in_channels,
                                                 cfg.patch_size, cfg.patch_size)
        else:
            theirs_state[theirs] = value.T if how == "T" else value
    return theirs_state


def load_state(model: CLIP, state: dict[str, torch.Tensor], source: str) -> CLIP:
    """Copy ``state`` (our names) into ``model`` in place, in the model's dtype; every entry
    present with the config's shapes."""
    ours = model.state_dict()
    wrong = [f"{name} {tuple(value.shape)} (expected {tuple(ours[name].shape)})"
             for name, value in state.items() if name in ours and value.shape != ours[name].shape]
    missing = [name for name in ours if name not in state]
    if wrong or missing:
        raise ValueError(f"{source}: shapes disagree with the config: {_listed(wrong)}; "
                         f"missing: {_listed(missing)}")
    with torch.no_grad():
        for name, value in state.items():
            ours[name].copy_(value)
    return model


def _problems(problems: list[str], what: str) -> None:
    if problems:
        raise ValueError(f"{what} computes what clip_paper.CLIP cannot: "
                         + "; ".join(dict.fromkeys(problems)))


# --------------------------------------------------------------------------------------
# 2. transformers' CLIPModel <-> ours
# --------------------------------------------------------------------------------------

HF_TEXT_DEFAULTS = {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 512,
                    "num_hidden_layers": 12, "num_attention_heads": 8,
                    "intermediate_size": 2048, "layer_norm_eps": 1e-5,
                    "eos_token_id": 49407, "hidden_act": "quick_gelu"}
HF_VISION_DEFAULTS = {"image_size": 224, "patch_size": 32, "num_channels": 3,
                      "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                      "intermediate_size": 3072, "layer_norm_eps": 1e-5,
                      "hidden_act": "quick_gelu"}
HF_TOWER_NAMES = {"d_model": "hidden_size", "n_layers": "num_hidden_layers",
                  "n_heads": "num_attention_heads", "d_ff": "intermediate_size",
                  "layer_norm_eps": "layer_norm_eps"}


def config_from_hf_dict(values: dict) -> CLIPConfig:
    """Our CLIPConfig from transformers' CLIPConfig as a dict (``config.json``; old files
    name the parts text_config_dict / vision_config_dict). eos_token_id 2 (files written
    before transformers' PR 24773) means the argmax read-out, as transformers does."""
    if values.get("model_type", "clip") != "clip":
        raise ValueError(f"config: model_type {values.get('model_type')!r} is not 'clip' (a "
                         "CLIPModel with both towers)")
    text = {**HF_TEXT_DEFAULTS, **(values.get("text_config") or
                                   values.get("text_config_dict") or {})}
    vision = {**HF_VISION_DEFAULTS, **(values.get("vision_config") or
                                       values.get("vision_config_dict") or {})}
    problems = [f"hidden_act {tower['hidden_act']!r} (ours: 'quick_gelu' or 'gelu')"
                for tower in (text, vision) if tower["hidden_act"] not in cp.ACTIVATIONS]
    if text["hidden_act"] != vision["hidden_act"]:
        problems.append(f"two activations {text['hidden_act']!r}, {vision['hidden_act']!r} "
                        "(ours: one for both towers)")
    _problems(problems, "transformers' config")
    if text.get("attention_dropout") or vision.get("attention_dropout"):
        warnings.warn("config from transformers: attention_dropout > 0 is left out (ours has "
                      "no dropout): the same outputs in eval mode, not in training",
                      stacklevel=3)
    eos = text["eos_token_id"]
    return CLIPConfig(
        vision=cp.CLIPVisionConfig(image_size=vision["image_size"],
                                   patch_size=vision["patch_size"],
                                   in_channels=vision["num_channels"],
                                   **{ours: vision[theirs]
                                      for ours, theirs in HF_TOWER_NAMES.items()}),
        text=cp.CLIPTextConfig(vocab_size=text["vocab_size"],
                               max_len=text["max_position_embeddings"], eos_token_id=eos,
                               pool="argmax" if eos == 2 else "eos",
                               **{ours: text[theirs] for ours, theirs in HF_TOWER_NAMES.items()}),
        embed_dim=values.get("projection_dim", 512), activation=text["hidden_act"],
        logit_scale_init=values.get("logit_scale_init_value", 2.6592))


def config_to_hf_dict(config: CLIPConfig) -> dict:
    """transformers' CLIPConfig fields for ours. Refuses the ResNet tower (transformers has
    none). Pool "argmax" is written as eos_token_id 2, the value for which transformers
    reads at the largest id."""
    if isinstance(config.vision, cp.CLIPResNetConfig):
        raise ValueError("transformers' CLIPModel has only the ViT image tower: a model with "
                         "the modified ResNet has no counterpart there (use to_open_clip)")
    text, vision = config.text, config.vision
    eos = 2 if text.pool == "argmax" else text.eos_token_id
    return {"model_type": "clip", "projection_dim": config.embed_dim,
            "logit_scale_init_value": config.logit_scale_init, "initializer_factor": 1.0,
            "text_config": {**{theirs: getattr(text, ours)
                               for ours, theirs in HF_TOWER_NAMES.items()},
                            "vocab_size": text.vocab_size,
                            "max_position_embeddings": text.max_len,
                            "hidden_act": config.activation, "eos_token_id": eos,
                            "bos_token_id": max(eos - 1, 0), "pad_token_id": 1,
                            "projection_dim": config.embed_dim, "model_type": "clip_text_model"},
            "vision_config": {**{theirs: getattr(vision, ours)
                                 for ours, theirs in HF_TOWER_NAMES.items()},
                              "image_size": vision.image_size, "patch_size": vision.patch_size,
                              "num_channels": vision.in_channels,
                              "hidden_act": config.activation,
                              "projection_dim": config.embed_dim,
                              "model_type": "clip_vision_model"}}


def from_hf(hf_model) -> CLIP:
    """Ours, holding transformers' ``CLIPModel`` weights, in its dtype, device, mode and
    attention path ("eager" or "sdpa"). Refuses configs we cannot reproduce."""
    import transformers

    if type(hf_model) is not transformers.CLIPModel:
        raise TypeError(f"from_hf: expected transformers' CLIPModel, got "
                        f"{type(hf_model).__name__} (the one-tower classes have no "
                        "counterpart here)")
    config = config_from_hf_dict(hf_model.config.to_dict())
    if hf_model.config._attn_implementation in cp.ATTN_IMPLEMENTATIONS:
        config.attn_implementation = hf_model.config._attn_implementation
    weight = hf_model.logit_scale
    model = CLIP(config).to(dtype=weight.dtype, device=weight.device)
    source = "from_hf: CLIPModel"
    load_state(model, state_to_ours(hf_model.state_dict(), hf_pairs(config), source), source)
    return model.train(hf_model.training)


def to_hf(model: CLIP, attn_implementation: str | None = None):
    """transformers' ``CLIPModel``, same weights, dtype, device and mode.
    attn_implementation: "eager" or "sdpa" (default: our config's)."""
    import transformers

    if not isinstance(model, CLIP):
        raise TypeError(f"to_hf: expected clip_paper.CLIP, got {type(model).__name__}")
    values = config_to_hf_dict(model.config)  # refuses the ResNet tower
    values.pop("model_type")
    hf_config = transformers.CLIPConfig(
        **values, attn_implementation=attn_implementation or model.config.attn_implementation)
    hf_model = transformers.CLIPModel(hf_config)
    hf_model.to(dtype=model.logit_scale.dtype, device=model.logit_scale.device)
    hf_model.load_state_dict(state_from_ours(model, hf_pairs(model.config)), strict=True)
    return hf_model.train(model.training)


# --------------------------------------------------------------------------------------
# 3. open_clip's CLIP <-> ours
# --------------------------------------------------------------------------------------


def _why_not_from_open_clip(oc_model) -> list[str]:
    """Why an open_clip CLIP would not give our outputs after the port (a list)."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import (
        LayerNorm,
        QuickGELU,
        ResidualAttentionBlock,
        VisionTransformer,
    )

    visual, problems = oc_model.visual, []
    if not isinstance(visual, (VisionTransformer, ModifiedResNet)):
        problems.append(f"the image tower {type(visual).__name__} (ours: open_clip's "
                        "VisionTransformer or ModifiedResNet)")
    if isinstance(visual, VisionTransformer):
        if visual.attn_pool is not None or visual.pool_type != "tok" \
                or visual.final_ln_after_pool:
            problems.append(f"image pooling {visual.pool_type!r} / attentional pool / "
                            "ln after pool (ours: [CLS] after ln_post)")
        if isinstance(visual.ln_pre, nn.Identity):
            problems.append("no ln_pre (no_ln_pre=True)")
        if not isinstance(visual.patch_dropout, nn.Identity):
            warnings.warn("from_open_clip: patch dropout is left out (ours has none): the "
                          "same outputs in eval mode only", stacklevel=3)
    blocks = list(oc_model.transformer.resblocks)
    if isinstance(visual, VisionTransformer):
        blocks += list(visual.transformer.resblocks)
    for block in blocks:
        if type(block) is not ResidualAttentionBlock or not isinstance(block.ls_1, nn.Identity):
            problems.append("custom blocks or layer scale (block_type, ls_init_value)")
        elif type(block.mlp.gelu) not in (QuickGELU, nn.GELU) or getattr(
                block.mlp.gelu, "approximate", "none") != "none":
            problems.append(f"the activation {block.mlp.gelu} (ours: QuickGELU or GELU)")
    acts = {type(block.mlp.gelu) for block in blocks}
    if len(acts) > 1:
        problems.append("two activations (ours: one for both towers)")
    norms = [module for module in oc_model.modules() if isinstance(module, nn.LayerNorm)]
    if any(type(norm) is not LayerNorm for norm in norms):
        problems.append("a norm other than open_clip's LayerNorm (LayerNormFp32, RMSNorm)")
    if len({norm.eps for norm in norms}) > 1:
        problems.append("LayerNorms with different eps (ours: one per tower)")
    if getattr(oc_model, "logit_bias", None) is not None:
        problems.append("a logit bias (SigLIP)")
    if oc_model.text_pool_type not in cp.TEXT_POOLS:
        problems.append(f"text pooling {oc_model.text_pool_type!r} (ours: 'argmax' or 'eos')")
    if oc_model.attn_mask is None:
        problems.append("no causal mask in the text tower (no_causal_mask=True)")
    if not isinstance(oc_model.text_projection, nn.Parameter):
        problems.append("a text projection with a bias or none (proj_type, proj_bias)")
    return problems


def config_from_open_clip(oc_model) -> CLIPConfig:
    """Our config read off an open_clip CLIP's modules."""
    from open_clip.transformer import QuickGELU

    visual, text_block = oc_model.visual, oc_model.transformer.resblocks[0]
    eps = oc_model.ln_final.eps
    vocab = oc_model.token_embedding.num_embeddings
    text = cp.CLIPTextConfig(
        vocab_size=vocab, max_len=oc_model.positional_embedding.shape[0],
        d_model=oc_model.transformer.width, n_layers=len(oc_model.transformer.resblocks),
        n_heads=text_block.attn.num_heads, d_ff=text_block.mlp.c_fc.out_features,
        layer_norm_eps=eps, pool=oc_model.text_pool_type,
        eos_token_id=oc_model.text_eos_id if oc_model.text_pool_type == "eos" else vocab - 1)
    if hasattr(visual, "attnpool"):
        layers = tuple(len(getattr(visual, f"layer{i}")) for i in range(1, 5))
        vision = cp.CLIPResNetConfig(image_size=visual.image_size, layers=layers,
                                     width=visual.conv3.out_channels,
                                     n_heads=visual.attnpool.num_heads,
                                     in_channels=visual.conv1.in_channels)
    else:
        block = visual.transformer.resblocks[0]
        patch = visual.conv1.weight  # (D, C, P, P)
        vision = cp.CLIPVisionConfig(
            image_size=visual.image_size[0], patch_size=patch.shape[-1],
            in_channels=patch.shape[1], d_model=patch.shape[0],
            n_layers=len(visual.transformer.resblocks), n_heads=block.attn.num_heads,
            d_ff=block.mlp.c_fc.out_features, layer_norm_eps=visual.ln_post.eps)
    return CLIPConfig(vision=vision, text=text, embed_dim=oc_model.text_projection.shape[1],
                      activation="quick_gelu" if isinstance(text_block.mlp.gelu, QuickGELU)
                      else "gelu")


def from_open_clip(oc_model) -> CLIP:
    """Ours, holding an open_clip ``CLIP``'s weights (ViT or modified-ResNet image tower),
    in its dtype, device and mode. Refuses what ours cannot compute (see the list in
    ``_why_not_from_open_clip``), CustomTextCLIP (Hugging Face text towers) and CoCa."""
    import open_clip

    if type(oc_model) is not open_clip.model.CLIP:
        raise TypeError(f"from_open_clip: expected open_clip.model.CLIP, got "
                        f"{type(oc_model).__name__} (CustomTextCLIP, CoCa: other towers)")
    _problems(_why_not_from_open_clip(oc_model), "open_clip's model")
    config = config_from_open_clip(oc_model)
    weight = oc_model.logit_scale
    model = CLIP(config).to(dtype=weight.dtype, device=weight.device)
    source = "from_open_clip: CLIP"
    load_state(model, state_to_ours(oc_model.state_dict(), open_clip_pairs(config), source),
               source)
    return model.train(oc_model.training)


def to_open_clip(model: CLIP):
    """open_clip's ``CLIP`` (open_clip.model.CLIP(embed_dim, vision_cfg, text_cfg,
    quick_gelu)), same weights, dtype, device and mode. open_clip adds all ``max_len``
    positions: feed it texts padded to exactly ``max_len`` (with 0, as its tokenizer does)."""
    import open_clip

    if not isinstance(model, CLIP):
        raise TypeError(f"to_open_clip: expected clip_paper.CLIP, got {type(model).__name__}")
    cfg = model.config
    text, vision = cfg.text, cfg.vision
    text_cfg = {"context_length": text.max_len, "vocab_size": text.vocab_size,
                "width": text.d_model, "heads": text.n_heads, "layers": text.n_layers,
                "mlp_ratio": text.d_ff / text.d_model, "pool_type": text.pool,
                "eos_id": text.eos_token_id, "norm_kwargs": {"eps": text.layer_norm_eps}}
    if isinstance(vision, cp.CLIPResNetConfig):
        vision_cfg = {"image_size": vision.image_size, "layers": list(vision.layers),
                      "width": vision.width, "head_width": vision.width * 32 // vision.n_heads}
        if vision.in_channels != 3:
            raise ValueError("to_open_clip: open_clip's ResNet takes 3 channels, ours "
                             f"{vision.in_channels}")
    else:
        vision_cfg = {"image_size": vision.image_size, "patch_size": vision.patch_size,
                      "width": vision.d_model, "layers": vision.n_layers,
                      "head_width": vision.d_model // vision.n_heads,
                      "mlp_ratio": vision.d_ff / vision.d_model,
                      "norm_kwargs": {"eps": vision.layer_norm_eps}}
        if vision.in_channels != 3:
            raise ValueError("to_open_clip: open_clip's ViT takes 3 channels, ours "
                             f"{vision.in_channels}")
    oc_model = open_clip.model.CLIP(cfg.embed_dim, vision_cfg, text_cfg,
                                    quick_gelu=cfg.activation == "quick_gelu",
                                    init_logit_scale=cfg.logit_scale_init)
    oc_model.to(dtype=model.logit_scale.dtype, device=model.logit_scale.device)
    oc_model.load_state_dict(state_from_ours(model, open_clip_pairs(cfg)), strict=True)
    return oc_model.train(model.training)


# --------------------------------------------------------------------------------------
# 4. Checkpoint folders in transformers' layout (transformers not needed)
# --------------------------------------------------------------------------------------


def load_pretrained(directory: str | Path, dtype: torch.dtype = torch.float32) -> CLIP:
    """A folder in transformers' layout (config.json with "model_type": "clip",
    model.safetensors or pytorch_model.bin, e.g. openai/clip-vit-base-patch32 downloaded on
    a connected machine) loaded into our CLIP, in ``dtype``, in eval mode."""
    values, state, path = read_checkpoint(directory)
    config = config_from_hf_dict(values)
    model = CLIP(config).to(dtype)
    load_state(model, state_to_ours(state, hf_pairs(config), str(path)), str(path))
    return model.eval()


def save_pretrained(model: CLIP, directory: str | Path, safetensors: bool = True) -> Path:
    """Write ``model`` as transformers' CLIPModel.save_pretrained does (config.json and
    model.safetensors, or pytorch_model.bin); ``from_pretrained`` and ``load_pretrained``
    read it. Returns: the directory."""
    config = {**config_to_hf_dict(model.config), "architectures": ["CLIPModel"],
              "dtype": str(model.logit_scale.dtype).removeprefix("torch.")}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous().clone()
               for key, value in state_from_ours(model, hf_pairs(model.config)).items()}
    if safetensors:
        from safetensors.torch import save_file

        save_file(tensors, directory / WEIGHT_FILES[0], metadata={"format": "pt"})
    else:
        torch.save(tensors, directory / WEIGHT_FILES[1])
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory
