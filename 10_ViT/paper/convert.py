"""Porting ViT weights between vit_paper.py, timm and transformers, and checkpoint folders.

- ``from_timm(timm_model)`` / ``to_timm(model)``: timm's ``VisionTransformer``
  (global_pool "token" or "avg") <-> ours, same weights, same outputs.
- ``from_hf(hf_model)`` / ``to_hf(model)``: transformers' ``ViTModel`` (without its pooler)
  and ``ViTForImageClassification`` <-> ours.
- Each port refuses what our model cannot reproduce (register tokens, no class token,
  layer scale, qk_norm, another norm or activation, the norm on the wrong side of the
  pooling, dynamic image sizes, ...) with a message saying what.
- ``load_pretrained(directory)``: a folder in timm's layout (``config.json`` with
  "architecture", "model_args", "pretrained_cfg"; what timm's save / push writes) or in
  transformers' (``config.json`` with "model_type": "vit"), with ``model.safetensors`` or
  ``pytorch_model.bin``, read WITHOUT timm or transformers. ``save_timm`` /
  ``save_pretrained`` write such folders (timm's and transformers' loaders read them).
Only functions whose names contain from_/to_ import timm or transformers (the L3 rule).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from utils import import_lesson
from utils.checkpoints import WEIGHT_FILES, read_checkpoint  # config.json + weights

vp = import_lesson("10_ViT.paper.vit_paper")
ViT, ViTConfig = vp.ViT, vp.ViTConfig

# --------------------------------------------------------------------------------------
# 1. The rename tables: theirs -> ours
# --------------------------------------------------------------------------------------

# timm: inside blocks.{i} -> inside layers.{i}; everything else
TIMM_LAYER_NAMES = {"norm1": "norm1", "attn.qkv": "attention.qkv", "attn.proj": "attention.out",
                    "norm2": "norm2", "mlp.fc1": "ffn.up", "mlp.fc2": "ffn.down"}
TIMM_NAMES = {"cls_token": "cls_token", "pos_embed": "position_embedding",
              "patch_embed.proj": "patch_embed", "norm": "final_norm", "fc_norm": "final_norm",
              "head": "head"}
# transformers: inside layers.{i} (the module names of transformers 5) or encoder.layer.{i}
# (the names its files keep, and older versions used); q, k, v go into slots of our qkv
HF_LAYER_NAMES = {"layernorm_before": "norm1", "attention.o_proj": "attention.out",
                  "attention.output.dense": "attention.out", "layernorm_after": "norm2",
                  "mlp.fc1": "ffn.up", "intermediate.dense": "ffn.up",
                  "mlp.fc2": "ffn.down", "output.dense": "ffn.down"}
HF_QKV_NAMES = {"attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2,
                "attention.attention.query": 0, "attention.attention.key": 1,
                "attention.attention.value": 2}
HF_NAMES = {"embeddings.cls_token": "cls_token",
            "embeddings.position_embeddings": "position_embedding",
            "embeddings.patch_embeddings.projection": "patch_embed",
            "layernorm": "final_norm", "classifier": "head"}

# Weights of features vit_paper.ViT does not have: a port refuses them, saying what they are
FOREIGN_WEIGHTS = [
    (r"(^|\.)reg_token$", "register tokens (reg_tokens; Darcet et al. 2023)"),
    (r"\.ls[12]\.gamma$|\.gamma_[12]$", "layer scale (init_values; CaiT, DeiT III)"),
    (r"\.(q_norm|k_norm)\.", "a norm on queries and keys (qk_norm)"),
    (r"\.attn\.norm\.|\.mlp\.norm\.", "a norm inside attention or the MLP (scale_*_norm)"),
    (r"(^|\.)norm_pre\.", "a norm before the blocks (pre_norm, as in CLIP)"),
    (r"(^|\.)attn_pool\.", "attention pooling (global_pool 'map' / 'prr')"),
    (r"(^|\.)(dist_token|head_dist)", "a distillation token (distilled DeiT)"),
    (r"(^|\.)patch_embed\.norm\.", "a norm in the patch embedding (embed_norm_layer)"),
    (r"\.mlp\.(fc1_[gx]|w12|w3)\.", "a gated MLP (SwiGLU)"),
    (r"\.attn\.gate\.", "gated attention"),
    (r"(^|\.)pooler\.dense\.", "transformers' pooler, tanh(W h_[CLS] + b) (the pre-training "
                               "head's hidden layer): pass drop_pooler=True to leave it out"),
    (r"(^|\.)mask_token$", "a mask token (masked image modelling)"),
    (r"(^|\.)decoder\.", "a masked-image-modelling decoder"),
    (r"(^|\.)pre_logits\.", "the pre-training head's hidden layer (representation_size)"),
]


def _listed(names, limit: int = 5) -> str:
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _refuse_foreign(names, source: str) -> None:
    found = {what: name for name in names for pattern, what in FOREIGN_WEIGHTS
             if re.search(pattern, name)}
    if found:
        raise ValueError(f"{source} has what vit_paper.ViT does not: "
                         + "; ".join(f"{what} ({name})" for what, name in found.items()))


def our_name_from_timm(name: str) -> str | None:
    """timm's parameter name -> ours; None for a name we don't know."""
    if name in ("cls_token", "pos_embed"):
        return TIMM_NAMES[name]
    module, _, param = name.rpartition(".")
    layer = re.fullmatch(r"blocks\.(\d+)\.(.+)", module)
    if layer and layer[2] in TIMM_LAYER_NAMES:
        return f"layers.{layer[1]}.{TIMM_LAYER_NAMES[layer[2]]}.{param}"
    return f"{TIMM_NAMES[module]}.{param}" if module in TIMM_NAMES else None


def our_name_from_hf(name: str) -> tuple[str, int | None] | None:
    """transformers' parameter name (with or without "vit.") -> (ours, q/k/v slot or None)."""
    name = name.removeprefix("vit.")
    if name in HF_NAMES:
        return HF_NAMES[name], None
    module, _, param = name.rpartition(".")
    layer = re.fullmatch(r"(?:layers|encoder\.layer)\.(\d+)\.(.+)", module)
    if layer and layer[2] in HF_QKV_NAMES:
        return f"layers.{layer[1]}.attention.qkv.{param}", HF_QKV_NAMES[layer[2]]
    if layer and layer[2] in HF_LAYER_NAMES:
        return f"layers.{layer[1]}.{HF_LAYER_NAMES[layer[2]]}.{param}", None
    return (f"{HF_NAMES[module]}.{param}", None) if module in HF_NAMES else None


def state_from_timm(state: dict[str, torch.Tensor], source: str = "the state dict") -> dict:
    """timm's state dict -> ours (the patch weight left 4-D; ``_load_state`` flattens it)."""
    _refuse_foreign(state, source)
    ours = {key: our_name_from_timm(key) for key in state}
    unknown = [key for key, name in ours.items() if name is None]
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} weight names are not those of timm's "
                         f"VisionTransformer: {_listed(unknown)}")
    return {name: state[key] for key, name in ours.items()}


def state_from_hf(state: dict[str, torch.Tensor], source: str = "the state dict") -> dict:
    """transformers' state dict (either naming) -> ours: q, k, v stacked into qkv."""
    _refuse_foreign(state, source)
    ours, slots, unknown = {}, {}, []
    for key, value in state.items():
        found = our_name_from_hf(key)
        if found is None:
            unknown.append(key)
        elif found[1] is None:
            ours[found[0]] = value
        else:
            slots.setdefault(found[0], [None] * 3)[found[1]] = value
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} weight names are not those of "
                         f"transformers' ViT: {_listed(unknown)}")
    for name, parts in slots.items():
        if any(part is None for part in parts):
            raise ValueError(f"{source}: {name} needs query, key and value; some are missing")
        ours[name] = torch.cat(parts, dim=0)  # rows [q | k | v], our fused layout
    return ours


def state_to_timm(model: ViT) -> dict[str, torch.Tensor]:
    """Our state dict in timm's names (final_norm is "norm" for token pooling, "fc_norm"
    for "avg"; the patch weight reshaped to the Conv2d's (D, C, P_h, P_w))."""
    to_timm_layer = {ours: theirs for theirs, ours in TIMM_LAYER_NAMES.items()}
    top = {"cls_token": "cls_token", "position_embedding": "pos_embed",
           "patch_embed": "patch_embed.proj", "head": "head",
           "final_norm": "norm" if model.config.pool == "token" else "fc_norm"}
    out = {}
    for name, value in model.state_dict().items():
        module, _, param = name.rpartition(".")
        layer = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        if layer:
            out[f"blocks.{layer[1]}.{to_timm_layer[layer[2]]}.{param}"] = value
        elif name in top:
            out[top[name]] = value
        else:
            out[f"{top[module]}.{param}"] = value
    out["patch_embed.proj.weight"] = _patch_conv_weight(model)
    return out


def state_to_hf(model: ViT, legacy: bool = False) -> dict[str, torch.Tensor]:
    """Our state dict in transformers' names: ``legacy`` gives the names of its files
    (encoder.layer.{i}.attention.attention.query, ...), else those of its live modules;
    under "vit." when the model has a head (ViTForImageClassification)."""
    layer_names = ({"norm1": "layernorm_before", "attention.out": "attention.output.dense",
                    "norm2": "layernorm_after", "ffn.up": "intermediate.dense",
                    "ffn.down": "output.dense"} if legacy else
                   {"norm1": "layernorm_before", "attention.out": "attention.o_proj",
                    "norm2": "layernorm_after", "ffn.up": "mlp.fc1", "ffn.down": "mlp.fc2"})
    qkv_names = (("attention.attention.query", "attention.attention.key",
                  "attention.attention.value") if legacy else
                 ("attention.q_proj", "attention.k_proj", "attention.v_proj"))
    prefix = "vit." if model.config.num_classes else ""
    top = {ours: theirs for theirs, ours in HF_NAMES.items()}
    out = {}
    for name, value in model.state_dict().items():
        module, _, param = name.rpartition(".")
        layer = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        stem = f"{prefix}{'encoder.layer' if legacy else 'layers'}.{layer[1]}." if layer else ""
        if layer and layer[2] == "attention.qkv":
            for part, theirs in zip(value.chunk(3, dim=0), qkv_names):
                out[f"{stem}{theirs}.{param}"] = part
        elif layer:
            out[f"{stem}{layer_names[layer[2]]}.{param}"] = value
        elif name in top:
            out[prefix + top[name]] = value
        else:
            out[("" if module == "head" else prefix) + f"{top[module]}.{param}"] = value
    out[f"{prefix}embeddings.patch_embeddings.projection.weight"] = _patch_conv_weight(model)
    return out


def _patch_conv_weight(model: ViT) -> torch.Tensor:
    """E (D, C P_h P_w) -> the stride-P Conv2d weight (D, C, P_h, P_w) (see patchify)."""
    cfg = model.config
    return model.patch_embed.weight.reshape(cfg.d_model, cfg.in_channels,
                                            *vp.as_pair(cfg.patch_size))  # (D, C, P_h, P_w)


# --------------------------------------------------------------------------------------
# 2. Loading a state dict in our names (shapes and names checked)
# --------------------------------------------------------------------------------------


def _load_state(model: ViT, state: dict[str, torch.Tensor], source: str) -> ViT:
    """Copy ``state`` (our names; the patch weight flat or as a (D, C, P_h, P_w) conv
    weight) into ``model``, in place, in the model's dtype. Every weight must be there, with
    the config's shapes, and nothing else."""
    ours = model.state_dict()
    patch = state.get("patch_embed.weight")
    if patch is not None and patch.shape == _patch_conv_weight(model).shape:
        state = {**state, "patch_embed.weight": patch.reshape(patch.shape[0], -1)}
    wrong = [f"{name} {tuple(value.shape)} (expected {tuple(ours[name].shape)})"
             for name, value in state.items() if name in ours and value.shape != ours[name].shape]
    missing = [name for name in ours if name not in state]
    unused = [name for name in state if name not in ours]
    for problem, names in (("shapes disagree with the config", wrong),
                           ("weights are missing", missing), ("weights are left over", unused)):
        if names:
            raise ValueError(f"{source}: {problem}: {_listed(names)}")
    with torch.no_grad():
        for name, value in state.items():
            ours[name].copy_(value)
    return model


def _problems(problems: list[str], what: str) -> None:
    if problems:
        raise ValueError(f"{what} computes what vit_paper.ViT cannot: "
                         + "; ".join(dict.fromkeys(problems)))


# --------------------------------------------------------------------------------------
# 3. timm's VisionTransformer <-> ours
# --------------------------------------------------------------------------------------


def _why_not_from_timm(timm_model) -> list[str]:
    """Why a timm VisionTransformer would not give our outputs after the port (a list)."""
    from timm.layers import Attention, Mlp, PatchEmbed
    from timm.models.vision_transformer import Block

    m, problems = timm_model, []
    if m.cls_token is None:
        problems.append("no class token (class_token=False)")
    if m.num_reg_tokens:
        problems.append(f"{m.num_reg_tokens} register tokens (reg_tokens)")
    if m.no_embed_class:
        problems.append("positions on the patches only (no_embed_class=True, DeiT III)")
    if m.pos_embed is None:
        problems.append("no position embeddings (pos_embed='none')")
    if not isinstance(m.norm_pre, nn.Identity):
        problems.append("a norm before the blocks (pre_norm=True)")
    fc_norm, norm = not isinstance(m.fc_norm, nn.Identity), not isinstance(m.norm, nn.Identity)
    if m.global_pool not in ("token", "avg") or m.pool_include_prefix:
        problems.append(f"global_pool={m.global_pool!r} (ours: 'token' or 'avg' over patches)")
    elif (m.global_pool == "token") != (norm and not fc_norm) or fc_norm == norm:
        problems.append(f"global_pool={m.global_pool!r} with the final norm "
                        f"{'after' if fc_norm else 'before' if norm else 'left out'} the pooling"
                        " (ours: before reading [CLS]; after the mean for 'avg', timm's default"
                        " fc_norm)")
    if m.dynamic_img_size or m.patch_embed.dynamic_img_pad:
        problems.append("dynamic_img_size / dynamic_img_pad (positions resampled at every "
                        "call; ours: ViT.set_image_size, once)")
    embed = m.patch_embed
    if type(embed) is not PatchEmbed or not isinstance(embed.norm, nn.Identity) \
            or embed.proj.bias is None or not embed.flatten:
        problems.append("another patch embedding (ours: PatchEmbed, a biased stride-P conv)")
    norms = [n for b in m.blocks for n in (b.norm1, b.norm2)]
    norms += [final for final in (m.norm, m.fc_norm) if not isinstance(final, nn.Identity)]
    if any(not isinstance(n, nn.LayerNorm) or n.weight is None or n.bias is None
           or n.eps != norms[0].eps for n in norms):
        problems.append("another norm layer (ours: LayerNorm with one eps)")
    for block in m.blocks:
        if type(block) is not Block:
            problems.append(f"{type(block).__name__} blocks (ours: pre-LN Block)")
            continue
        attn, mlp = block.attn, block.mlp
        if not (isinstance(block.ls1, nn.Identity) and isinstance(block.ls2, nn.Identity)):
            problems.append("layer scale (init_values)")
        if type(attn) is not Attention or getattr(attn, "gate", None) is not None:
            problems.append(f"another attention ({type(attn).__name__})")
        elif not (isinstance(attn.q_norm, nn.Identity) and isinstance(attn.norm, nn.Identity)):
            problems.append("qk_norm / scale_attn_norm")
        elif attn.qkv.bias is None or attn.proj.bias is None:
            problems.append("qkv_bias=False or proj_bias=False")
        if type(mlp) is not Mlp or not isinstance(mlp.norm, nn.Identity) \
                or mlp.fc1.bias is None or mlp.fc2.bias is None:
            problems.append(f"another MLP ({type(mlp).__name__}, scale_mlp_norm or no bias)")
        elif type(mlp.act) is not nn.GELU or mlp.act.approximate != "none":
            problems.append(f"the activation {mlp.act} (ours: GELU, erf form)")
    return problems


def _warn_training_differences(differences: list[str], where: str) -> None:
    if differences:
        warnings.warn(f"{where}: {'; '.join(differences)}: the port computes the same in "
                      "eval mode; in train mode the random regularisation differs",
                      stacklevel=3)


def from_timm(timm_model) -> ViT:
    """Ours, holding a timm ``VisionTransformer``'s weights, in its dtype, device and mode.

    Refuses (ValueError, saying what) a model our ViT cannot reproduce (see
    ``_why_not_from_timm``); warns about regularisation that acts only in training
    (stochastic depth, patch or head dropout, unequal dropout rates).
    """
    from timm.models.vision_transformer import VisionTransformer

    if type(timm_model) is not VisionTransformer:
        raise TypeError(f"from_timm: expected timm.models.vision_transformer."
                        f"VisionTransformer, got {type(timm_model).__name__}")
    _problems(_why_not_from_timm(timm_model), "from_timm: this VisionTransformer")
    m, block = timm_model, timm_model.blocks[0]
    rates = {m.pos_drop.p, block.attn.proj_drop.p, block.mlp.drop1.p, block.mlp.drop2.p}
    _warn_training_differences(
        [text for text, present in [
            ("stochastic depth (drop_path_rate)",
             any(not isinstance(b.drop_path1, nn.Identity) for b in m.blocks)),
            ("patch dropout (patch_drop_rate)", not isinstance(m.patch_drop, nn.Identity)),
            ("head dropout (drop_rate)", m.head_drop.p > 0),
            (f"unequal dropout rates {sorted(rates)} (ours: one)", len(rates) > 1)] if present],
        "from_timm")
    config = ViTConfig(
        image_size=config_size(m.patch_embed.img_size),
        patch_size=config_size(m.patch_embed.patch_size),
        in_channels=m.patch_embed.proj.in_channels,
        num_classes=m.head.out_features if isinstance(m.head, nn.Linear) else 0,
        d_model=m.embed_dim, n_layers=len(m.blocks), n_heads=block.attn.num_heads,
        d_ff=block.mlp.fc1.out_features, dropout=block.attn.proj_drop.p,
        attn_dropout=block.attn.attn_drop.p, layer_norm_eps=block.norm1.eps,
        pool="token" if m.global_pool == "token" else "mean",
        attn_implementation="sdpa" if block.attn.fused_attn else "eager")
    weight = m.patch_embed.proj.weight
    model = ViT(config).to(dtype=weight.dtype, device=weight.device)
    _load_state(model, state_from_timm(m.state_dict(), "from_timm"), "from_timm")
    return model.train(m.training)


def config_size(size) -> int | tuple[int, int]:
    """(32, 32) -> 32 (as the configs write it); (32, 48) stays."""
    size = vp.as_pair(size)
    return size[0] if size[0] == size[1] else size


def _mlp_ratio(config: ViTConfig) -> float:
    ratio = config.d_ff / config.d_model
    if int(config.d_model * ratio) != config.d_ff:
        raise ValueError(f"d_ff={config.d_ff} is not int(d_model * mlp_ratio) for any float "
                         f"ratio timm can build")
    return ratio


def to_timm(model: ViT):
    """timm's ``VisionTransformer`` (global_pool "token" or "avg"), same weights, dtype,
    device, mode and attention path (fused for "sdpa"), computing the same outputs."""
    from functools import partial

    from timm.layers import LayerNorm
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, ViT):
        raise TypeError(f"to_timm: expected vit_paper.ViT, got {type(model).__name__}")
    cfg = model.config
    timm_model = VisionTransformer(
        img_size=vp.as_pair(cfg.image_size), patch_size=vp.as_pair(cfg.patch_size),
        in_chans=cfg.in_channels, num_classes=cfg.num_classes,
        global_pool="token" if cfg.pool == "token" else "avg", embed_dim=cfg.d_model,
        depth=cfg.n_layers, num_heads=cfg.n_heads, mlp_ratio=_mlp_ratio(cfg), qkv_bias=True,
        norm_layer=partial(LayerNorm, eps=cfg.layer_norm_eps), proj_drop_rate=cfg.dropout,
        pos_drop_rate=cfg.dropout, attn_drop_rate=cfg.attn_dropout, device="meta")
    state = {key: value.detach().clone() for key, value in state_to_timm(model).items()}
    timm_model.load_state_dict(state, strict=True, assign=True)
    for block in timm_model.blocks:
        block.attn.fused_attn = cfg.attn_implementation == "sdpa"
    return timm_model.train(model.training)


# --------------------------------------------------------------------------------------
# 4. transformers' ViTModel / ViTForImageClassification <-> ours
# --------------------------------------------------------------------------------------

HF_CONFIG_NAMES = {"d_model": "hidden_size", "n_layers": "num_hidden_layers",
                   "n_heads": "num_attention_heads", "d_ff": "intermediate_size",
                   "dropout": "hidden_dropout_prob",
                   "attn_dropout": "attention_probs_dropout_prob",
                   "layer_norm_eps": "layer_norm_eps", "in_channels": "num_channels"}
HF_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-12, "num_channels": 3,
               "image_size": 224, "patch_size": 16}


def config_from_hf_dict(values: dict, num_classes: int) -> ViTConfig:
    """Our ViTConfig from transformers' ViTConfig as a dict (``config.json``); refuses what
    our model does not implement (another activation, no qkv bias, another head size)."""
    values = {**HF_DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
    problems = [f"{key}={values.get(key)!r} (ours: {allowed!r})" for key, allowed in
                [("model_type", "vit"), ("hidden_act", "gelu"), ("qkv_bias", True)]
                if values.get(key, allowed) != allowed]
    head_dim = values.get("head_dim")
    if head_dim and head_dim * values["num_attention_heads"] != values["hidden_size"]:
        problems.append(f"head_dim={head_dim} (ours: hidden_size / num_attention_heads)")
    _problems(problems, "transformers' config")
    if values["hidden_dropout_prob"]:
        _warn_training_differences(["transformers drops out after the embeddings and each "
                                    "block only, ours also inside the MLP (Appendix B.1)"],
                                   "config from transformers")
    return ViTConfig(image_size=config_size(values["image_size"]),
                     patch_size=config_size(values["patch_size"]), num_classes=num_classes,
                     **{ours: values[theirs] for ours, theirs in HF_CONFIG_NAMES.items()})


def config_to_hf_dict(config: ViTConfig) -> dict:
    """transformers' ViTConfig fields for ours (as its config.json writes them)."""
    if config.pool != "token":
        raise ValueError("transformers' ViT classifies from [CLS] only: a model with "
                         "pool='mean' has no counterpart there (use to_timm / save_timm)")
    image, patch = config_size(config.image_size), config_size(config.patch_size)
    values = {theirs: getattr(config, ours) for ours, theirs in HF_CONFIG_NAMES.items()}
    return {**values, "model_type": "vit", "hidden_act": "gelu", "qkv_bias": True,
            "image_size": list(image) if isinstance(image, tuple) else image,
            "patch_size": list(patch) if isinstance(patch, tuple) else patch,
            "initializer_range": 0.02, "encoder_stride": vp.as_pair(config.patch_size)[0],
            "pooler_act": "tanh", "pooler_output_size": config.d_model}


def from_hf(hf_model, drop_pooler: bool = False) -> ViT:
    """Ours, holding transformers' ``ViTModel`` (num_classes 0) or
    ``ViTForImageClassification`` weights, in its dtype, device, mode and attention path.

    ViTModel's pooler (tanh(W h_[CLS] + b), ``pooler_output``) has no counterpart in ours:
    refused unless ``drop_pooler=True`` (``last_hidden_state`` then equals our
    ``forward_features``). Refuses configs we cannot reproduce (``config_from_hf_dict``).
    """
    import transformers

    if type(hf_model) not in (transformers.ViTModel, transformers.ViTForImageClassification):
        raise TypeError(f"from_hf: expected transformers' ViTModel or "
                        f"ViTForImageClassification, got {type(hf_model).__name__}")
    state = hf_model.state_dict()
    if drop_pooler:
        state = {key: value for key, value in state.items() if ".pooler." not in f".{key}"}
    classifier = getattr(hf_model, "classifier", None)
    config = config_from_hf_dict(hf_model.config.to_dict(), classifier.out_features
                                 if isinstance(classifier, nn.Linear) else 0)
    if hf_model.config._attn_implementation in vp.ATTN_IMPLEMENTATIONS:
        config.attn_implementation = hf_model.config._attn_implementation
    weight = next(hf_model.parameters())
    model = ViT(config).to(dtype=weight.dtype, device=weight.device)
    source = f"from_hf: {type(hf_model).__name__}"
    _load_state(model, state_from_hf(state, source), source)
    return model.train(hf_model.training)


def to_hf(model: ViT, attn_implementation: str | None = None):
    """transformers' ``ViTForImageClassification`` (or ``ViTModel`` without pooler when
    num_classes == 0), same weights, dtype, device and mode. Refuses pool="mean".
    attn_implementation: "eager" or "sdpa" (default: our config's)."""
    import transformers

    if not isinstance(model, ViT):
        raise TypeError(f"to_hf: expected vit_paper.ViT, got {type(model).__name__}")
    cfg = model.config
    values = {key: value for key, value in config_to_hf_dict(cfg).items() if key != "model_type"}
    hf_config = transformers.ViTConfig(
        **values, num_labels=max(cfg.num_classes, 1),
        attn_implementation=attn_implementation or cfg.attn_implementation)
    hf_model = (transformers.ViTForImageClassification(hf_config) if cfg.num_classes
                else transformers.ViTModel(hf_config, add_pooling_layer=False))
    weight = model.patch_embed.weight
    hf_model.to(dtype=weight.dtype, device=weight.device)
    hf_model.load_state_dict(state_to_hf(model))
    return hf_model.train(model.training)


# --------------------------------------------------------------------------------------
# 5. Checkpoint folders in timm's or transformers' layout (neither library needed)
# --------------------------------------------------------------------------------------

TIMM_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16}  # by size name
# timm model_args we read, and those that must keep timm's default (else: not our model)
TIMM_ARGS_READ = {"img_size", "patch_size", "in_chans", "num_classes", "global_pool",
                  "embed_dim", "depth", "num_heads", "mlp_ratio", "fc_norm", "weight_init",
                  "fix_init"}
TIMM_ARGS_DEFAULT = {"qkv_bias": (True,), "qk_norm": (False,), "scale_attn_norm": (False,),
                     "scale_mlp_norm": (False,), "proj_bias": (True,), "init_values": (None,),
                     "class_token": (True,), "pos_embed": ("learn",), "no_embed_class": (False,),
                     "reg_tokens": (0,), "pre_norm": (False,), "final_norm": (True,),
                     "pool_include_prefix": (False,), "dynamic_img_size": (False,),
                     "dynamic_img_pad": (False,), "embed_norm_layer": (None,),
                     "norm_layer": (None, "layernorm"), "act_layer": (None, "gelu"),
                     "attn_layer": (None, "", "attn")}


def _config_from_timm_folder(values: dict, state: dict, source: str) -> ViTConfig:
    """Our config from timm's config.json and the weights' shapes (old configs have no
    model_args: the head count then comes from the architecture's size name)."""
    arch, args = values["architecture"], values.get("model_args") or {}
    problems = [] if re.match(r"(vit|deit)_", arch) and "quickgelu" not in arch else [
        f"architecture {arch!r} (ours: timm's plain vit_* / deit_* VisionTransformer)"]
    problems += [f"model_args {key}={value!r}" for key, value in args.items()
                 if key not in TIMM_ARGS_READ and value not in TIMM_ARGS_DEFAULT.get(key, ())
                 and not key.endswith("drop_rate")]
    pool = args.get("global_pool", values.get("global_pool", "token"))
    if pool not in ("token", "avg") or args.get("fc_norm") not in (None, pool == "avg"):
        problems.append(f"global_pool={pool!r} with fc_norm={args.get('fc_norm')} (ours: "
                        "'token' with the norm before, 'avg' with the norm after the mean)")
    if pool == "avg" and "fc_norm.weight" not in state or pool == "token" and "norm.weight" \
            not in state:
        problems.append(f"global_pool={pool!r} without the matching final norm in the weights")
    if "cls_token" not in state:
        problems.append("no class token (class_token=False)")
    _problems(problems, f"{source} ({arch})")
    size = re.match(r"(?:vit|deit)_([a-z]+)_", arch)
    n_heads = args.get("num_heads") or TIMM_HEADS.get(size[1] if size else "")
    if n_heads is None:
        raise ValueError(f"{source}: config.json gives no num_heads (model_args) and the "
                         f"architecture {arch!r} names no size of Table 1 or DeiT")
    patch = state["patch_embed.proj.weight"]  # (D, C, P_h, P_w)
    input_size = (values.get("pretrained_cfg") or {}).get("input_size", [3, 224, 224])
    return ViTConfig(image_size=config_size(args.get("img_size") or input_size[1:]),
                     patch_size=config_size(patch.shape[2:]), in_channels=patch.shape[1],
                     num_classes=state["head.weight"].shape[0] if "head.weight" in state else 0,
                     d_model=patch.shape[0], n_heads=n_heads,
                     n_layers=len({key.split(".")[1] for key in state
                                   if key.startswith("blocks.")}),
                     d_ff=state["blocks.0.mlp.fc1.weight"].shape[0],
                     pool="token" if pool == "token" else "mean")


def load_pretrained(directory: str | Path, *, num_classes: int | None = None,
                    image_size: int | tuple[int, int] | None = None, drop_pooler: bool = False,
                    dtype: torch.dtype = torch.float32) -> ViT:
    """A checkpoint folder, timm's layout or transformers', loaded into our ViT.

    Inputs:  directory with config.json and model.safetensors or pytorch_model.bin;
             num_classes: a new head of that size, zero-initialised as in Section 3.2 (with a
             warning; 0: no head), default the checkpoint's; image_size: run at that size,
             the positions resampled (Section 3.2); drop_pooler: leave out transformers'
             pooler (a ViTModel file, e.g. ImageNet-21k pre-training); dtype of the model.
    Returns: the model in eval mode. Refuses a checkpoint our ViT cannot reproduce.
    """
    values, state, path = read_checkpoint(directory)
    source = str(path)
    if "architecture" in values:  # timm: "architecture", "model_args", "pretrained_cfg"
        ours = state_from_timm(state, source)  # refuses weights of features we lack
        config = _config_from_timm_folder(values, state, source)
    elif "model_type" in values:  # transformers: "model_type", "architectures", its fields
        if drop_pooler:
            state = {k: v for k, v in state.items() if ".pooler." not in f".{k}"}
        ours = state_from_hf(state, source)
        config = config_from_hf_dict(values, ours["head.weight"].shape[0]
                                     if "head.weight" in ours else 0)
    else:
        raise ValueError(f"{directory}/config.json is neither timm's layout (with "
                         "'architecture') nor transformers' (with 'model_type')")
    fresh_head = num_classes is not None and num_classes != config.num_classes
    if fresh_head:
        ours = {name: value for name, value in ours.items() if not name.startswith("head.")}
        config = replace(config, num_classes=num_classes)
    model = ViT(config).to(dtype)
    if fresh_head and num_classes:
        nn.init.zeros_(model.head.weight)  # "a zero-initialized D x K feedforward layer"
        ours = {**ours, "head.weight": model.head.weight, "head.bias": model.head.bias}
        warnings.warn(f"load_pretrained: a new head of {num_classes} classes (zero, "
                      f"Section 3.2) replaces the checkpoint's: train it before use",
                      stacklevel=2)
    _load_state(model, ours, source)
    if image_size is not None:
        model.set_image_size(image_size)
    return model.eval()


# --------------------------------------------------------------------------------------
# 6. Writing checkpoint folders (neither library needed)
# --------------------------------------------------------------------------------------


def _write(tensors: dict, config: dict, directory: str | Path, safetensors: bool) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    if safetensors:
        from safetensors.torch import save_file

        save_file(tensors, directory / WEIGHT_FILES[0], metadata={"format": "pt"})
    else:
        torch.save(tensors, directory / WEIGHT_FILES[1])
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory


def save_timm(model: ViT, directory: str | Path, safetensors: bool = True) -> Path:
    """Write ``model`` as timm's save_for_hf does: config.json ("architecture",
    "model_args" with every size, "pretrained_cfg") and model.safetensors (or
    pytorch_model.bin) in timm's names. timm's ``create_model(architecture,
    pretrained=True, pretrained_cfg_overlay={"file": ...}, **model_args)`` reads it, and so
    does ``load_pretrained``. Returns: the directory."""
    cfg = model.config
    if cfg.layer_norm_eps != 1e-6:
        raise ValueError(f"save_timm: layer_norm_eps={cfg.layer_norm_eps}; timm's config.json "
                         "can only say LayerNorm with eps=1e-6")
    (height, width), pool = vp.as_pair(cfg.image_size), "token" if cfg.pool == "token" else "avg"
    args = {"img_size": [height, width], "patch_size": config_size(cfg.patch_size),
            "embed_dim": cfg.d_model, "depth": cfg.n_layers, "num_heads": cfg.n_heads,
            "mlp_ratio": _mlp_ratio(cfg), "num_classes": cfg.num_classes,
            "in_chans": cfg.in_channels, "global_pool": pool}
    if isinstance(args["patch_size"], tuple):
        args["patch_size"] = list(args["patch_size"])
    pretrained_cfg = {"custom_load": False, "input_size": [cfg.in_channels, height, width],
                      "fixed_input_size": True, "interpolation": "bicubic", "crop_pct": 0.9,
                      "crop_mode": "center", "mean": [0.5] * cfg.in_channels,
                      "std": [0.5] * cfg.in_channels, "num_classes": cfg.num_classes,
                      "first_conv": "patch_embed.proj", "classifier": "head"}
    config = {"architecture": "vit_base_patch16_224", "num_classes": cfg.num_classes,
              "num_features": cfg.d_model, "global_pool": pool, "model_args": args,
              "pretrained_cfg": pretrained_cfg}
    return _write(state_to_timm(model), config, directory, safetensors)


def save_pretrained(model: ViT, directory: str | Path, safetensors: bool = True) -> Path:
    """Write ``model`` as transformers' save_pretrained does: config.json and
    model.safetensors (or pytorch_model.bin) with the names its files use; a
    ViTForImageClassification, or a ViTModel without pooler when num_classes == 0.
    transformers' ``from_pretrained`` reads it, and so does ``load_pretrained``.
    Returns: the directory."""
    cfg = model.config
    config = config_to_hf_dict(cfg)  # refuses pool="mean"
    config["architectures"] = ["ViTForImageClassification" if cfg.num_classes else "ViTModel"]
    config["dtype"] = str(model.patch_embed.weight.dtype).removeprefix("torch.")
    if cfg.num_classes:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(cfg.num_classes)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(cfg.num_classes)}
    return _write(state_to_hf(model, legacy=True), config, directory, safetensors)
