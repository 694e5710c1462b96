"""timm's Vision Transformer, read and modified (Level 4).

``10_ViT/analysis/README.md`` walks through timm's ``models/vision_transformer.py`` (and the
layers it uses) and transformers' ``models/vit/modeling_vit.py`` with line numbers;
``check_guide_line_numbers`` below checks every one against the installed versions (with
``utils/guides.py``). This script checks what the reading claims, then does the lesson's
four modification tasks on timm's own ``VisionTransformer``, built from small random
configs (no download):

0. The reading's claims: where the final norm goes for each ``global_pool`` (``norm`` before
   [CLS] pooling, ``fc_norm`` after average pooling); timm's fused ``qkv`` against
   transformers' separate ``q_proj`` / ``k_proj`` / ``v_proj`` (a port both ways with equal
   logits, and what the different ``layer_norm_eps`` costs); what ``checkpoint_filter_fn``
   converts; the three initialisation schemes; ``pretrained_cfg``; ``forward_intermediates``.
1. Custom pooling: [CLS], mean of the patch tokens, and attention pooling (a learned query),
   swapped into a timm model through its own ``attn_pool`` slot.
2. Attention maps through forward hooks. timm's fused attention never forms the
   probabilities; two ways to get them (hook ``qkv`` and recompute, or switch
   ``fused_attn`` off and hook ``attn_drop``), drawn per head over the image.
3. A linear probe: a new head on a frozen timm trunk, trained on digits (offline) or the
   CIFAR-10 subset, against the majority baseline.
4. A new resolution: ``set_input_size`` (or ``dynamic_img_size=True``) resamples the
   position embeddings with ``resample_abs_pos_embed``; what changes, and how transformers'
   ``interpolate_pos_encoding`` differs.

``--checkpoint DIR`` runs 1-4 on real weights: a folder in timm's layout (``config.json`` with
``architecture``, and ``model.safetensors`` or ``pytorch_model.bin``), as a user has after
one download of, e.g., ``timm/vit_small_patch16_224.augreg_in21k_ft_in1k`` on a connected
machine.

Run from the repository root::

    python 10_ViT/analysis/timm_analysis.py                      # offline, seconds
    python 10_ViT/analysis/timm_analysis.py --dataset cifar10 --data-root DIR
    python 10_ViT/analysis/timm_analysis.py --checkpoint ~/models/vit_small_patch16_224 \\
        --image-size 64 --train-size 500
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
import transformers
from matplotlib.figure import Figure
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block, VisionTransformer, checkpoint_filter_fn
from torch import nn
from tqdm.auto import tqdm
from transformers import ViTConfig, ViTForImageClassification

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_int,
    parse_args,
    positive_int,
    prepare_out_dir,
    set_help,
)
from utils.data_loaders import load_images
from utils.guides import GuideLocation, check_guide, read_guide_locations
from utils.guides import version_problems as _versions_differ
from utils.training_utils import seed_everything, torch_threads
from utils.visualization import plot_curves, save_figure

GUIDE_VERSIONS = {"timm": "1.0.31", "transformers": "5.25.0"}  # whose line numbers we quote
HERE = Path(__file__).resolve().parent
GUIDES = (HERE / "README.md",)
DATASETS = ("digits", "cifar10")
TINY = dict(img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=32, depth=2,
            num_heads=4)  # 4 x 4 patches + [CLS] = 17 tokens


def tiny_vit(**overrides) -> VisionTransformer:
    """timm's ``VisionTransformer`` from a small random config (``TINY`` + ``overrides``):
    ``create_model("vit_tiny_patch16_224", pretrained=False, ...)``, so it carries a
    ``pretrained_cfg`` (mean, std, input_size) like a real one. Any constructor argument of
    ``VisionTransformer`` may be overridden (``global_pool``, ``img_size``, ``weight_init``,
    ``dynamic_img_size``, ...). Random weights, no download.
    """
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**TINY, **overrides})


# --------------------------------------------------------------------------------------
# A checkpoint folder in timm's layout
# --------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A --checkpoint folder that timm cannot load as a Vision Transformer."""


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def check_checkpoint_dir(path: str | Path) -> Path:
    """Check that ``path`` is a timm model folder holding a ``VisionTransformer``.

    Raises: CheckpointError saying what is missing or what the folder holds instead.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist or is not a folder; expected a timm "
                              f"model folder (config.json and one of {', '.join(WEIGHT_FILES)})")
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise CheckpointError(f"{path} lacks {'; '.join(missing)} (timm's layout, as "
                              "timm.models.save_for_hf or a Hub download writes it)")
    config = json.loads((path / "config.json").read_text())
    architecture = config.get("architecture")
    if architecture is None:
        kind = config.get("model_type")
        raise CheckpointError(f"{path}/config.json has no 'architecture' (a timm config does)"
                              + (f"; it is a transformers config of type {kind!r}: load it "
                                 "with ViTForImageClassification.from_pretrained" if kind else ""))
    if not timm.is_model(architecture):
        raise CheckpointError(f"{path}: timm {timm.__version__} has no architecture "
                              f"{architecture!r}")
    with torch.device("meta"):  # shapes only: nothing allocated, nothing initialised
        kind = type(timm.create_model(architecture, **config.get("model_args", {})))
    if not issubclass(kind, VisionTransformer):
        raise CheckpointError(f"{path}: {architecture!r} builds a {kind.__name__}, not one of "
                              "timm's VisionTransformer models (vit_*, deit_*, ...)")
    return path


def load_checkpoint(path: str | Path) -> VisionTransformer:
    """The timm model of a checkpoint folder, in eval mode (``create_model("local-dir:...")``)."""
    path = check_checkpoint_dir(path)
    model = timm.create_model(f"local-dir:{path}", pretrained=True)
    if not isinstance(model, VisionTransformer):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a VisionTransformer")
    return model.eval()


# --------------------------------------------------------------------------------------
# 0. The reading's claims
# --------------------------------------------------------------------------------------


def random_images(batch: int = 2, size: int | tuple[int, int] = 32, channels: int = 3,
                  seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Gaussian images (B, C, H, W) from a seeded generator."""
    height, width = (size, size) if isinstance(size, int) else size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, height, width, generator=generator, dtype=dtype)


def pooling_rules(seed: int = 0) -> dict[str, object]:
    """Where timm puts the final LayerNorm for each ``global_pool`` (``vision_transformer.py``
    ``use_fc_norm``): before pooling (``norm``) for "token", after it (``fc_norm``) for "avg".

    Returns: {"<pool>_norm", "<pool>_fc_norm": module class names, "<pool>_diff": max |timm's
             pre-logits - the hand computation| on float64 blocks' output}.
    """
    out: dict[str, object] = {}
    images = random_images(2, seed=seed, dtype=torch.float64)
    for pool in ("token", "avg"):
        torch.manual_seed(seed)
        model = tiny_vit(global_pool=pool).double().eval()
        with torch.no_grad():
            tokens = model.blocks(model._pos_embed(model.patch_embed(images)))  # (B, 1+N, D)
            if pool == "token":
                expected = model.norm(tokens)[:, 0]  # norm every token, then take [CLS]
            else:
                expected = model.fc_norm(tokens[:, model.num_prefix_tokens:].mean(1))  # pool, norm
            got = model.forward_head(model.forward_features(images), pre_logits=True)
        out[f"{pool}_norm"] = type(model.norm).__name__
        out[f"{pool}_fc_norm"] = type(model.fc_norm).__name__
        out[f"{pool}_diff"] = float((got - expected).abs().max())
    return out


def _hf_port_problem(model: VisionTransformer) -> str | None:
    """What a timm ViT has that ``ViTForImageClassification`` cannot express, or None."""
    problems = []
    if model.global_pool != "token" or model.attn_pool is not None:
        problems.append(f"global_pool={model.global_pool!r} (transformers' classifier reads "
                        "the [CLS] token only)")
    if not isinstance(model.fc_norm, nn.Identity) or isinstance(model.norm, nn.Identity):
        problems.append("the final norm after pooling (fc_norm); transformers norms every token")
    if model.num_reg_tokens or not model.has_class_token or model.no_embed_class:
        problems.append("register tokens, no class token, or position embeddings that skip it")
    if not isinstance(model.norm_pre, nn.Identity):
        problems.append("a norm before the blocks (pre_norm, as CLIP)")
    if model.patch_embed.proj.bias is None or model.pos_embed is None:
        problems.append("a patch embedding without bias, or no position embedding")
    for index, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        if type(block) is not Block or not isinstance(block.ls1, nn.Identity):
            problems.append(f"blocks.{index}: {type(block).__name__} with layer scale "
                            "(init_values)" if type(block) is Block else
                            f"blocks.{index}: a {type(block).__name__}")
        elif type(attn).__name__ != "Attention" or attn.qkv.bias is None or \
                not all(isinstance(m, nn.Identity) for m in (attn.q_norm, attn.k_norm, attn.norm)):
            problems.append(f"blocks.{index}.attn: no qkv bias, qk_norm, or another attention")
        elif not (isinstance(mlp.act, nn.GELU) and mlp.act.approximate == "none") or \
                not hasattr(mlp, "fc1") or not isinstance(mlp.norm, nn.Identity):
            problems.append(f"blocks.{index}.mlp: not the exact-GELU MLP")
        if problems:
            break
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    if len({m.eps for m in norms}) > 1:
        problems.append("LayerNorms with different eps")
    return "; ".join(problems) or None


def hf_config_for(model: VisionTransformer) -> ViTConfig:
    """The ``ViTConfig`` of a timm ViT: same sizes, and timm's LayerNorm eps (1e-6, where
    transformers' default is 1e-12)."""
    block = model.blocks[0]
    height, width = model.patch_embed.img_size
    return ViTConfig(
        hidden_size=model.embed_dim, num_hidden_layers=len(model.blocks),
        num_attention_heads=block.attn.num_heads,
        intermediate_size=block.mlp.fc1.out_features, hidden_act="gelu",
        layer_norm_eps=model.norm.eps, image_size=height if height == width else [height, width],
        patch_size=model.patch_embed.patch_size[0], num_channels=model.in_chans,
        qkv_bias=True, num_labels=max(model.num_classes, 1))


def timm_to_hf(model: VisionTransformer) -> ViTForImageClassification:
    """transformers' ``ViTForImageClassification`` with a timm ViT's weights, dtype and mode.

    The one real difference in the weights: timm's ``attn.qkv`` (3D, D) is transformers'
    ``q_proj``, ``k_proj``, ``v_proj`` stacked in that order (``qkv.reshape(B, N, 3, A, d)``
    in ``layers/attention.py``).
    Raises: ValueError naming what transformers' ViT does not have (average pooling with
            fc_norm, register tokens, layer scale, qk_norm, ...).
    """
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"expected timm's VisionTransformer, got {type(model).__name__}")
    problem = _hf_port_problem(model)
    if problem is None and model.patch_embed.patch_size[0] != model.patch_embed.patch_size[1]:
        problem = "non-square patches (transformers' ViTConfig.patch_size is one number)"
    if problem:
        raise ValueError(f"cannot port this timm ViT to transformers' ViT: it has {problem}")
    hf = ViTForImageClassification(hf_config_for(model))
    source = model.state_dict()
    state = {"vit.embeddings.cls_token": source["cls_token"],
             "vit.embeddings.position_embeddings": source["pos_embed"],
             "vit.layernorm.weight": source["norm.weight"],
             "vit.layernorm.bias": source["norm.bias"]}
    for kind in ("weight", "bias"):
        state[f"vit.embeddings.patch_embeddings.projection.{kind}"] = \
            source[f"patch_embed.proj.{kind}"]
        for index in range(len(model.blocks)):
            ours, theirs = f"blocks.{index}.", f"vit.layers.{index}."
            query, key, value = source[f"{ours}attn.qkv.{kind}"].chunk(3, dim=0)  # (3D, ...)
            state.update({f"{theirs}attention.q_proj.{kind}": query,
                          f"{theirs}attention.k_proj.{kind}": key,
                          f"{theirs}attention.v_proj.{kind}": value,
                          f"{theirs}attention.o_proj.{kind}": source[f"{ours}attn.proj.{kind}"],
                          f"{theirs}layernorm_before.{kind}": source[f"{ours}norm1.{kind}"],
                          f"{theirs}layernorm_after.{kind}": source[f"{ours}norm2.{kind}"],
                          f"{theirs}mlp.fc1.{kind}": source[f"{ours}mlp.fc1.{kind}"],
                          f"{theirs}mlp.fc2.{kind}": source[f"{ours}mlp.fc2.{kind}"]})
        if model.num_classes > 0:
            state[f"classifier.{kind}"] = source[f"head.{kind}"]
    reference = next(model.parameters())
    hf = hf.to(dtype=reference.dtype, device=reference.device)
    hf.load_state_dict(state, strict=model.num_classes > 0)
    return hf.train(model.training)


def hf_to_timm(hf: ViTForImageClassification) -> VisionTransformer:
    """timm's ``VisionTransformer`` with the weights of transformers' ViT (the inverse of
    ``timm_to_hf``: q, k, v concatenated into one qkv)."""
    config = hf.config
    size = config.image_size
    model = VisionTransformer(
        img_size=size if isinstance(size, int) else tuple(size), patch_size=config.patch_size,
        in_chans=config.num_channels, num_classes=config.num_labels,
        embed_dim=config.hidden_size, depth=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        mlp_ratio=config.intermediate_size / config.hidden_size, qkv_bias=config.qkv_bias,
        norm_layer=lambda dim, **kw: nn.LayerNorm(dim, eps=config.layer_norm_eps, **kw))
    source = hf.state_dict()
    out = {"cls_token": source["vit.embeddings.cls_token"],
           "pos_embed": source["vit.embeddings.position_embeddings"],
           "norm.weight": source["vit.layernorm.weight"], "norm.bias": source["vit.layernorm.bias"],
           "head.weight": source["classifier.weight"], "head.bias": source["classifier.bias"]}
    for kind in ("weight", "bias"):
        out[f"patch_embed.proj.{kind}"] = \
            source[f"vit.embeddings.patch_embeddings.projection.{kind}"]
        for index in range(config.num_hidden_layers):
            ours, theirs = f"blocks.{index}.", f"vit.layers.{index}."
            out[f"{ours}attn.qkv.{kind}"] = torch.cat(
                [source[f"{theirs}attention.{p}_proj.{kind}"] for p in "qkv"], dim=0)  # (3D, ...)
            out[f"{ours}attn.proj.{kind}"] = source[f"{theirs}attention.o_proj.{kind}"]
            out[f"{ours}norm1.{kind}"] = source[f"{theirs}layernorm_before.{kind}"]
            out[f"{ours}norm2.{kind}"] = source[f"{theirs}layernorm_after.{kind}"]
            out[f"{ours}mlp.fc1.{kind}"] = source[f"{theirs}mlp.fc1.{kind}"]
            out[f"{ours}mlp.fc2.{kind}"] = source[f"{theirs}mlp.fc2.{kind}"]
    reference = next(hf.parameters())
    model = model.to(dtype=reference.dtype, device=reference.device)
    model.load_state_dict(out)
    return model.train(hf.training)


def port_checks(seed: int = 0) -> dict[str, float]:
    """timm -> transformers -> timm in float64; largest logit differences.

    Returns: {"to_hf": max |diff| timm vs transformers, "back": timm vs timm after the round
             trip, "hf_default_eps": the difference when transformers keeps its own
             layer_norm_eps=1e-12 instead of timm's 1e-6, "params_timm", "params_hf"}.
    """
    torch.manual_seed(seed)
    model = tiny_vit().double().eval()
    images = random_images(3, seed=seed, dtype=torch.float64)
    hf = timm_to_hf(model).eval()
    wrong_eps = ViTForImageClassification(ViTConfig(**{**hf.config.to_dict(),
                                                       "layer_norm_eps": 1e-12})).double().eval()
    wrong_eps.load_state_dict(hf.state_dict())
    with torch.no_grad():
        logits = model(images)
        return {"to_hf": float((hf(images).logits - logits).abs().max()),
                "back": float((hf_to_timm(hf).eval()(images) - logits).abs().max()),
                "hf_default_eps": float((wrong_eps(images).logits - logits).abs().max()),
                "params_timm": float(sum(p.numel() for p in model.parameters())),
                "params_hf": float(sum(p.numel() for p in hf.parameters()))}


def filter_checks(seed: int = 0) -> dict[str, object]:
    """What ``checkpoint_filter_fn`` converts, on a state dict written the old way.

    The source: a 48x48 model (6 x 6 patches) saved as {"model": state_dict} with the patch
    embedding as a linear map on flattened patches (D, C * P * P), an extra ``pre_logits``
    layer; the target: a 32x32 model (4 x 4 patches).
    Returns: {"loads_strict": bool, "patch_equal": the filtered patch weight equals the
             reshaped linear weight, "pos_shape": (before, after), "pos_diff": max |filtered -
             resample_abs_pos_embed(6x6 -> 4x4)|, "dropped": keys the filter removed}.
    """
    torch.manual_seed(seed)
    source = tiny_vit(img_size=48).state_dict()
    flat = source["patch_embed.proj.weight"].flatten(1)  # (D, C, P, P) -> (D, C * P * P)
    old = {**source, "patch_embed.proj.weight": flat,
           "pre_logits.fc.weight": torch.zeros(TINY["embed_dim"], TINY["embed_dim"])}
    target = tiny_vit()
    filtered = checkpoint_filter_fn({"model": old}, target)
    result = target.load_state_dict(filtered, strict=True)
    expected_pos = resample_abs_pos_embed(source["pos_embed"], new_size=[4, 4], old_size=[6, 6],
                                          num_prefix_tokens=1)
    return {"loads_strict": not result.missing_keys and not result.unexpected_keys,
            "patch_equal": bool(torch.equal(filtered["patch_embed.proj.weight"],
                                            source["patch_embed.proj.weight"])),
            "pos_shape": (tuple(source["pos_embed"].shape), tuple(filtered["pos_embed"].shape)),
            "pos_diff": float((filtered["pos_embed"] - expected_pos).abs().max()),
            "dropped": sorted(set(old) - set(filtered))}


def init_statistics(seed: int = 0, embed_dim: int = 64) -> dict[str, dict[str, float]]:
    """Standard deviations of freshly initialised tensors: timm's default ('') and 'jax'
    schemes, and transformers' ``_init_weights`` (normal, std ``initializer_range`` = 0.02).

    Returns: {scheme: {"cls_token", "pos_embed", "patch", "qkv", "head", "fc1_bias"}}.
    """
    out = {}
    size = dict(embed_dim=embed_dim, depth=1, num_heads=4)
    for scheme in ("", "jax"):
        torch.manual_seed(seed)
        model = tiny_vit(**size, weight_init=scheme)
        block = model.blocks[0]
        out[scheme or "timm"] = {
            "cls_token": model.cls_token, "pos_embed": model.pos_embed,
            "patch": model.patch_embed.proj.weight, "qkv": block.attn.qkv.weight,
            "head": model.head.weight, "fc1_bias": block.mlp.fc1.bias}
    torch.manual_seed(seed)
    hf = ViTForImageClassification(hf_config_for(tiny_vit(**size)))  # transformers' own init
    layer = hf.vit.layers[0]
    out["transformers"] = {
        "cls_token": hf.vit.embeddings.cls_token,
        "pos_embed": hf.vit.embeddings.position_embeddings,
        "patch": hf.vit.embeddings.patch_embeddings.projection.weight,
        "qkv": torch.cat([layer.attention.q_proj.weight, layer.attention.k_proj.weight,
                          layer.attention.v_proj.weight]),
        "head": hf.classifier.weight, "fc1_bias": layer.mlp.fc1.bias}
    return {scheme: {name: float(t.detach().float().std()) for name, t in tensors.items()}
            for scheme, tensors in out.items()}


def pretrained_cfg_summary(name: str = "vit_base_patch16_224") -> dict[str, object]:
    """A registered model's default ``pretrained_cfg`` and its parameter count (built on the
    meta device: shapes only, nothing allocated)."""
    cfg = timm.models.get_pretrained_cfg(name)
    with torch.device("meta"):
        params = sum(p.numel() for p in timm.create_model(name).parameters())
    fields = ("architecture", "tag", "hf_hub_id", "input_size", "crop_pct", "interpolation",
              "mean", "std", "num_classes", "first_conv", "classifier", "fixed_input_size")
    return {"params": params, **{field: getattr(cfg, field) for field in fields},
            "tags": len(timm.list_pretrained(f"{name}.*"))}


def intermediates_check(seed: int = 0) -> dict[str, object]:
    """``forward_intermediates`` against the blocks' outputs caught by forward hooks.

    Returns: {"shapes": NCHW shapes, "diff": max |intermediate - hooked block output laid out
             as (B, D, H/P, W/P)|, "final_diff": max |final - forward_features|}.
    """
    torch.manual_seed(seed)
    model = tiny_vit(img_size=(32, 48)).double().eval()  # 4 x 6 patches: rows and columns differ
    images = random_images(2, (32, 48), seed=seed, dtype=torch.float64)
    caught = []
    handles = [block.register_forward_hook(lambda _m, _i, out: caught.append(out))
               for block in model.blocks]
    try:
        with torch.no_grad():
            final, maps = model.forward_intermediates(images)  # indices=None: every block
            features = model.forward_features(images)
    finally:
        for handle in handles:
            handle.remove()
    height, width = model.patch_embed.grid_size
    by_hand = [out[:, 1:].reshape(2, height, width, -1).permute(0, 3, 1, 2)
               for out in caught[:len(maps)]]  # (B, 1+N, D) -> (B, N, D) -> (B, D, H/P, W/P)
    return {"shapes": [tuple(m.shape) for m in maps],
            "diff": max(float((m - h).abs().max()) for m, h in zip(maps, by_hand)),
            "final_diff": float((final - features).abs().max())}


def fused_vs_unfused(seed: int = 0) -> float:
    """Max |logits with F.scaled_dot_product_attention - logits with the written-out path|."""
    torch.manual_seed(seed)
    model = tiny_vit().double().eval()
    images = random_images(2, seed=seed, dtype=torch.float64)
    with torch.no_grad():
        fused = model(images)
        with unfused_attention(model):
            written = model(images)
    return float((fused - written).abs().max())


# --------------------------------------------------------------------------------------
# 1. Custom pooling, swapped in through timm's attn_pool slot
# --------------------------------------------------------------------------------------


class ClsPooling(nn.Module):
    """The [CLS] token's vector (Dosovitskiy et al. 2020, Eq. 4): (B, 1+N, D) -> (B, D)."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0]


class MeanPooling(nn.Module):
    """The mean of the patch tokens (the paper's "GAP" head, App. D.3): (B, P+N, D) -> (B, D),
    skipping the ``num_prefix_tokens`` ([CLS], registers) in front."""

    def __init__(self, num_prefix_tokens: int = 1):
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, self.num_prefix_tokens:].mean(dim=1)


class AttentionPooling(nn.Module):
    """Attention pooling with one learned query (as timm's ``AttentionPoolLatent``, "map",
    without its MLP): z = W_o concat_h softmax(q_h K_h^T / sqrt(d)) V_h, over the patch tokens.

    Inputs:  tokens (B, P+N, D). Returns: (B, D). The last weights are kept in
             ``self.weights`` (B, n_heads, N) for inspection.
    """

    def __init__(self, d_model: int, n_heads: int = 1, num_prefix_tokens: int = 1):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be a multiple of n_heads"
        self.n_heads, self.num_prefix_tokens = n_heads, num_prefix_tokens
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.weights: torch.Tensor | None = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.num_prefix_tokens:]  # (B, N, D)
        batch, length, d_model = patches.shape
        d_head = d_model // self.n_heads
        query = self.query.expand(batch, -1, -1).reshape(batch, 1, self.n_heads, d_head)
        query = query.transpose(1, 2)  # (B, 1, D) -> (B, A, 1, d)
        key, value = self.kv(patches).reshape(batch, length, 2, self.n_heads, d_head).permute(
            2, 0, 3, 1, 4)  # (B, N, 2D) -> 2 x (B, A, N, d)
        weights = torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(d_head), dim=-1)
        self.weights = weights[:, :, 0].detach()  # (B, A, N)
        pooled = (weights @ value).reshape(batch, d_model)  # (B, A, 1, d) -> (B, D)
        return self.out(pooled)


def swap_pooling(model: VisionTransformer, pooling: nn.Module) -> VisionTransformer:
    """Make ``pooling`` the pooling of a timm ViT, in place.

    timm's ``VisionTransformer.pool`` calls ``self.attn_pool(x)`` when it is set, on all the
    tokens when ``pool_include_prefix`` is True; ``forward_head`` then applies ``fc_norm``, the
    head dropout and ``head``. The model's ``norm`` (before pooling) and ``fc_norm`` (after)
    stay as they are: on a "token" model the tokens are normed before ``pooling`` sees them.
    """
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"expected timm's VisionTransformer, got {type(model).__name__}")
    model.attn_pool = pooling
    model.pool_include_prefix = True  # our modules skip the prefix tokens themselves
    reference = next(model.parameters())
    pooling.to(device=reference.device, dtype=reference.dtype).train(model.training)
    return model


def pooling_modules(model: VisionTransformer, n_heads: int = 1) -> dict[str, nn.Module]:
    """The three poolings of part 1 for ``model``: {"cls", "mean", "attention"}."""
    prefix = model.num_prefix_tokens
    return {"cls": ClsPooling(), "mean": MeanPooling(prefix),
            "attention": AttentionPooling(model.embed_dim, n_heads, prefix)}


def pooling_checks(seed: int = 0) -> dict[str, float]:
    """Each pooling swapped into a tiny float64 model against the hand computation on
    ``forward_features``' tokens; "cls_vs_timm": [CLS] pooling against timm's own "token"."""
    torch.manual_seed(seed)
    model = tiny_vit().double().eval()
    images = random_images(2, seed=seed, dtype=torch.float64)
    with torch.no_grad():
        tokens = model.forward_features(images)  # (B, 1+N, D), normed
        reference = model(images)
        out = {}
        for name, pooling in pooling_modules(model, n_heads=2).items():
            swapped = swap_pooling(copy.deepcopy(model), pooling)
            got = swapped.forward_head(swapped.forward_features(images), pre_logits=True)
            out[name] = float((got - hand_pooling(name, pooling, tokens)).abs().max())
            if name == "cls":
                out["cls_vs_timm"] = float((swapped(images) - reference).abs().max())
    return out


def hand_pooling(name: str, pooling: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The poolings written out on (B, 1+N, D) tokens (one [CLS] in front), for the checks."""
    if name == "cls":
        return tokens[:, 0]
    patches = tokens[:, 1:]
    if name == "mean":
        return patches.sum(1) / patches.shape[1]
    heads, d_model = pooling.n_heads, tokens.shape[-1]
    d_head = d_model // heads
    key = patches @ pooling.kv.weight[:d_model].T + pooling.kv.bias[:d_model]
    value = patches @ pooling.kv.weight[d_model:].T + pooling.kv.bias[d_model:]
    per_head = []
    for head in range(heads):
        part = slice(head * d_head, (head + 1) * d_head)
        scores = key[..., part] @ pooling.query[0, 0, part] / math.sqrt(d_head)  # (B, N)
        per_head.append(torch.einsum("bn,bnd->bd", torch.softmax(scores, -1), value[..., part]))
    return torch.cat(per_head, -1) @ pooling.out.weight.T + pooling.out.bias


# --------------------------------------------------------------------------------------
# 2. Attention maps through hooks
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def unfused_attention(model: nn.Module):
    """Switch every timm ``Attention`` to the written-out path (``fused_attn = False``), and
    back on exit. The written-out path forms softmax(Q K^T / sqrt(d)) and passes it through
    ``attn_drop``, where a hook can see it; ``F.scaled_dot_product_attention`` never does."""
    modules = [m for m in model.modules() if hasattr(m, "fused_attn")]
    saved = [m.fused_attn for m in modules]
    for module in modules:
        module.fused_attn = False
    try:
        yield model
    finally:
        for module, value in zip(modules, saved):
            module.fused_attn = value


def attention_maps_unfused(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Every block's attention probabilities, caught by forward hooks on ``attn_drop`` with
    the fused kernel switched off.

    Returns: (B, n_layers, n_heads, T, T), T = prefix tokens + patches; rows sum to 1.
    """
    caught: list[torch.Tensor] = []
    hooks = [block.attn.attn_drop.register_forward_hook(
        lambda _m, inputs, _out: caught.append(inputs[0].detach())) for block in model.blocks]
    try:
        with torch.no_grad(), unfused_attention(model):
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    if len(caught) != len(model.blocks):
        raise RuntimeError(f"caught {len(caught)} attention maps for {len(model.blocks)} blocks")
    return torch.stack(caught, dim=1)


def attention_maps_from_qkv(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """The same maps with the fused kernel left on: hook each block's ``attn.qkv`` output,
    split it as ``Attention.forward`` does, and compute softmax(q k^T * scale) ourselves.

    Returns: (B, n_layers, n_heads, T, T).
    """
    caught: list[torch.Tensor] = []

    def hook(attn: nn.Module):
        def catch(_module, _inputs, qkv: torch.Tensor) -> None:
            batch, length, _ = qkv.shape
            qkv = qkv.reshape(batch, length, 3, attn.num_heads, attn.head_dim)  # (B, T, 3, A, d)
            query, key, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, A, T, d)
            query, key = attn.q_norm(query), attn.k_norm(key)
            caught.append(torch.softmax(query @ key.transpose(-2, -1) * attn.scale, dim=-1))
        return catch

    hooks = [block.attn.qkv.register_forward_hook(hook(block.attn)) for block in model.blocks]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in hooks:
            handle.remove()
    return torch.stack(caught, dim=1)


def cls_attention_grid(maps: torch.Tensor, grid: tuple[int, int],
                       num_prefix_tokens: int = 1) -> torch.Tensor:
    """How [CLS] attends to each patch, laid out as the image's patch grid.

    Inputs:  maps (L, A, T, T) for one image; grid (H/P, W/P).
    Returns: (L, A, H/P, W/P), each map summing to at most 1 (the rest goes to the prefix).
    """
    layers, heads = maps.shape[:2]
    return maps[:, :, 0, num_prefix_tokens:].reshape(layers, heads, *grid)  # (L, A, N) -> grid


def plot_attention_over_image(image: torch.Tensor, grid_maps: torch.Tensor,
                              path: str | Path | None = None, title: str | None = None) -> Figure:
    """One row per layer: the image, then each head's [CLS] attention over it.

    Inputs: image (C, H, W) in any range; grid_maps (L, A, H/P, W/P) from cls_attention_grid.
    """
    if image.ndim != 3 or grid_maps.ndim != 4:
        raise ValueError(f"expected image (C, H, W) and maps (L, A, h, w), got "
                         f"{tuple(image.shape)} and {tuple(grid_maps.shape)}")
    layers, heads = grid_maps.shape[:2]
    height, width = image.shape[1:]
    picture = image.float().mean(0) if image.shape[0] != 3 else image.float().permute(1, 2, 0)
    picture = (picture - picture.min()) / (picture.max() - picture.min() + 1e-12)
    upsampled = F.interpolate(grid_maps.float(), size=(height, width), mode="nearest")
    fig = Figure(figsize=(1.6 * (heads + 1), 1.6 * layers + 0.4), layout="constrained")
    for layer in range(layers):
        ax = fig.add_subplot(layers, heads + 1, layer * (heads + 1) + 1)
        ax.imshow(picture.numpy(), cmap="gray")
        ax.set_ylabel(f"layer {layer}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        for head in range(heads):
            ax = fig.add_subplot(layers, heads + 1, layer * (heads + 1) + head + 2)
            ax.imshow(picture.numpy(), cmap="gray")
            ax.imshow(upsampled[layer, head].numpy(), cmap="inferno", alpha=0.6)
            ax.set_xticks([]), ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------------------
# 3. A linear probe on a frozen trunk
# --------------------------------------------------------------------------------------


class LinearProbe(nn.Module):
    """A new linear head on a frozen timm trunk: logits = W f(x) + b, with f(x) the trunk's
    pre-logits features (``forward_head(..., pre_logits=True)``: pooled, fc_norm'ed).

    The trunk's parameters are frozen (requires_grad False) and it stays in eval mode
    (no dropout, fixed statistics) even when the probe is put in training mode.
    """

    def __init__(self, trunk: VisionTransformer, num_classes: int):
        super().__init__()
        self.trunk = trunk.requires_grad_(False).eval()
        reference = next(trunk.parameters())
        self.head = nn.Linear(trunk.num_features, num_classes, device=reference.device,
                              dtype=reference.dtype)

    def train(self, mode: bool = True) -> LinearProbe:
        super().train(mode)
        self.trunk.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, D), without building a graph through the trunk."""
        with torch.no_grad():
            return self.trunk.forward_head(self.trunk.forward_features(images), pre_logits=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def probe_data(dataset: str, model: VisionTransformer, data_root: str | Path | None = None,
               train_size: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """The probe's images, resized to the model's input size and normalised with its
    ``pretrained_cfg`` mean and std (0.5, 0.5 for a model built without one).

    Returns: {"x_train", "y_train", "x_test", "y_test"}; x (N, 3, H, W) float32.
    """
    with data_errors("the default --dataset digits needs no download"):
        split = load_images(dataset, size=32, channels=3, data_root=data_root, seed=seed)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = torch.tensor(cfg.get("mean", (0.5,) * 3)).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.5,) * 3)).view(1, 3, 1, 1)
    size = tuple(model.patch_embed.img_size)
    out = {}
    for part in ("train", "test"):
        images = torch.from_numpy(getattr(split, f"X_{part}"))  # (N, 3, 32, 32) in [0, 1]
        labels = torch.from_numpy(getattr(split, f"y_{part}")).long()
        if part == "train" and train_size:
            keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
            images, labels = images[keep[:train_size]], labels[keep[:train_size]]
        if size != tuple(images.shape[-2:]):
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        out[f"x_{part}"], out[f"y_{part}"] = (images - mean) / std, labels
    return out


def majority_baseline(y_train: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of always predicting the most frequent training class."""
    return float((y_test == torch.bincount(y_train).argmax()).float().mean())


def batched_features(probe: LinearProbe, images: torch.Tensor, batch_size: int = 256,
                     progress: bool = False) -> torch.Tensor:
    """The frozen trunk's features of many images, in batches: (N, C, H, W) -> (N, D)."""
    chunks = [probe.features(images[i:i + batch_size])
              for i in tqdm(range(0, len(images), batch_size), desc="features",
                            disable=not progress, leave=False)]
    return torch.cat(chunks)


def train_linear_probe(probe: LinearProbe, data: dict[str, torch.Tensor], steps: int = 300,
                       batch_size: int = 128, lr: float = 1e-2, weight_decay: float = 1e-4,
                       seed: int = 0, progress: bool = False) -> dict[str, object]:
    """Train ``probe.head`` with AdamW and cross-entropy; the trunk never changes.

    The trunk is frozen, so its features are computed once (``batched_features``) and the
    head trains on them: the same gradients as running the trunk every step, far cheaper.
    Returns: {"accuracy" (test), "train_accuracy", "baseline" (majority), "first_loss",
             "last_loss", "losses", "steps", "seconds"}.
    """
    start = time.perf_counter()
    probe.train()
    features = {part: batched_features(probe, data[f"x_{part}"], progress=progress)
                for part in ("train", "test")}
    optimizer = torch.optim.AdamW(probe.head.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    labels = data["y_train"]
    losses = []
    for _ in tqdm(range(steps), desc="linear probe", disable=not progress, leave=False):
        batch = torch.randint(0, len(labels), (min(batch_size, len(labels)),), generator=generator)
        loss = F.cross_entropy(probe.head(features["train"][batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    probe.eval()
    with torch.no_grad():
        accuracy = {part: float((probe.head(features[part]).argmax(-1) == data[f"y_{part}"])
                                .float().mean()) for part in ("train", "test")}
    return {"accuracy": accuracy["test"], "train_accuracy": accuracy["train"],
            "baseline": majority_baseline(labels, data["y_test"]),
            "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:])),
            "losses": losses, "steps": steps, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------
# 4. A new resolution
# --------------------------------------------------------------------------------------


def at_resolution(model: VisionTransformer, img_size: int | tuple[int, int]) -> VisionTransformer:
    """A copy of ``model`` for another input size (``set_input_size``): the patch grid and
    the position embeddings change (``resample_abs_pos_embed``, bicubic with antialiasing,
    [CLS]'s embedding kept); every other weight is the same."""
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    patch = model.patch_embed.patch_size
    if any(s % p for s, p in zip(size, patch)):
        raise ValueError(f"image size {size} must be a multiple of the patch size {patch}")
    resized = copy.deepcopy(model)
    resized.set_input_size(img_size=size)
    return resized


def hf_interpolated_pos_embed(model: VisionTransformer, img_size: int) -> torch.Tensor:
    """transformers' ``ViTEmbeddings.interpolate_pos_encoding`` of the same position
    embeddings (bicubic, no antialiasing, square source grid): (1, 1 + N', D)."""
    hf = timm_to_hf(model)
    embeddings = hf.vit.embeddings
    grid = img_size // model.patch_embed.patch_size[0]
    tokens = torch.zeros(1, 1 + grid * grid, model.embed_dim, dtype=model.pos_embed.dtype)
    with torch.no_grad():
        return embeddings.interpolate_pos_encoding(tokens, img_size, img_size)


def resolution_report(model: VisionTransformer, img_size: int, seed: int = 0,
                      images: torch.Tensor | None = None) -> dict[str, object]:
    """What changes when ``model`` runs at ``img_size``: tokens, position embeddings, cost,
    parameters, predictions; and the ways to get there compared.

    Returns: {"tokens": (before, after), "pos_shape": (before, after), "pos_vs_resample",
             "pos_vs_hand": max |diffs| of the new position embeddings against
             resample_abs_pos_embed and against F.interpolate written out, "cls_pos_kept",
             "dynamic_vs_set": max |logit diff| of dynamic_img_size=True vs set_input_size,
             "hf_vs_timm_pos": max |transformers' interpolation - timm's|, "attention_cost":
             ratio of T^2, "params_added", "agreement": fraction of equal top-1 predictions
             at the old and the new size (upsampled images), "model_input_size" (timm's
             record of the new size), "data_config_input_size" and "cfg_input_size" (the
             source checkpoint's, unchanged: a data pipeline must be told the new size)}.
    """
    resized = at_resolution(model, img_size).eval()
    new_pos = resized.pos_embed.detach()
    old_grid, new_grid = model.patch_embed.grid_size, resized.patch_embed.grid_size
    prefix = 0 if model.no_embed_class else model.num_prefix_tokens
    expected = resample_abs_pos_embed(model.pos_embed.detach(), new_size=list(new_grid),
                                      old_size=list(old_grid), num_prefix_tokens=prefix)
    grid = model.pos_embed.detach()[:, prefix:].float().reshape(1, *old_grid, -1)  # (1, h, w, D)
    by_hand = F.interpolate(grid.permute(0, 3, 1, 2), size=new_grid, mode="bicubic",
                            antialias=True)  # (1, D, h', w')
    by_hand = torch.cat([model.pos_embed.detach()[:, :prefix].float(),
                         by_hand.flatten(2).transpose(1, 2)], 1)  # (1, D, h', w') -> (1, N', D)
    dynamic = VisionTransformer(**{**_constructor_args(model), "dynamic_img_size": True})
    dynamic.load_state_dict(model.state_dict())
    dynamic = dynamic.to(model.pos_embed.dtype).eval()
    if images is None:
        images = random_images(2, model.patch_embed.img_size, seed=seed,
                               dtype=model.pos_embed.dtype)
    bigger = F.interpolate(images, size=resized.patch_embed.img_size, mode="bilinear",
                           align_corners=False)
    with torch.no_grad():
        before, after = model.eval()(images), resized(bigger)
        dynamic_logits = dynamic(bigger)
    tokens = (model.pos_embed.shape[1], resized.pos_embed.shape[1])
    out = {"tokens": tokens, "grid": (tuple(old_grid), tuple(new_grid)),
           "pos_shape": (tuple(model.pos_embed.shape), tuple(resized.pos_embed.shape)),
           "pos_vs_resample": float((new_pos - expected).abs().max()),
           "pos_vs_hand": float((new_pos.float() - by_hand).abs().max()),
           "cls_pos_kept": bool(torch.equal(resized.pos_embed[:, :prefix],
                                            model.pos_embed[:, :prefix])),
           "dynamic_vs_set": float((dynamic_logits - after).abs().max()),
           "attention_cost": (tokens[1] / tokens[0]) ** 2,
           "params_added": sum(p.numel() for p in resized.parameters())
           - sum(p.numel() for p in model.parameters()),
           "agreement": float((before.argmax(-1) == after.argmax(-1)).float().mean()),
           "model_input_size": timm.models.get_model_input_config(resized)["input_size"],
           "data_config_input_size": timm.data.resolve_model_data_config(resized)["input_size"],
           "cfg_input_size": tuple(getattr(resized, "pretrained_cfg", {}).get("input_size", ()))}
    height, width = resized.patch_embed.img_size
    if prefix == 1 and height == width and old_grid[0] == old_grid[1] and \
            _hf_port_problem(model) is None:
        theirs = hf_interpolated_pos_embed(model, height)
        out["hf_vs_timm_pos"] = float((theirs - new_pos).abs().max())
    return out


def _constructor_args(model: VisionTransformer) -> dict[str, object]:
    """The arguments that rebuild a plain timm ViT like ``model`` (for the dynamic copy)."""
    block = model.blocks[0]
    args = getattr(model, "pretrained_model_args", None) or {}
    built = dict(img_size=model.patch_embed.img_size, patch_size=model.patch_embed.patch_size,
                 in_chans=model.in_chans, num_classes=model.num_classes,
                 global_pool=model.global_pool, embed_dim=model.embed_dim,
                 depth=len(model.blocks), num_heads=block.attn.num_heads,
                 mlp_ratio=block.mlp.fc1.out_features / model.embed_dim,
                 qkv_bias=block.attn.qkv.bias is not None,
                 class_token=model.has_class_token, reg_tokens=model.num_reg_tokens,
                 no_embed_class=model.no_embed_class,
                 fc_norm=not isinstance(model.fc_norm, nn.Identity),
                 pre_norm=not isinstance(model.norm_pre, nn.Identity))
    return {**{k: v for k, v in args.items() if k in ("init_values", "qk_norm", "act_layer",
                                                       "norm_layer")}, **built}


# --------------------------------------------------------------------------------------
# The guide's line numbers, checked against the installed timm and transformers
# --------------------------------------------------------------------------------------


def library_roots() -> dict[str, Path]:
    return {"timm": Path(timm.__file__).resolve().parent,
            "transformers": Path(transformers.__file__).resolve().parent}


def resolve_source(path: str) -> Path | None:
    """A guide's file name -> the installed file. A bare name is looked up in timm's
    ``models/``, transformers' ``models/vit/``, then both package roots; a path with a folder
    is relative to the timm package, else to the transformers package."""
    roots = library_roots()
    if "/" in path:
        candidates = [roots["timm"] / path, roots["transformers"] / path]
    else:
        candidates = [roots["timm"] / "models" / path,
                      roots["transformers"] / "models" / "vit" / path,
                      roots["timm"] / path, roots["transformers"] / path]
    return next((c for c in candidates if c.is_file()), None)


def version_problems() -> list[str]:
    """One line per library whose installed version is not the one the guide quotes."""
    installed = {"timm": timm.__version__, "transformers": transformers.__version__}
    return _versions_differ(GUIDE_VERSIONS, installed)


def guide_locations(guides: Sequence[str | Path] = GUIDES) -> list[GuideLocation]:
    """Every ``file.py:N`` of the guide with the code span before it (utils/guides.py)."""
    return read_guide_locations(guides)


def check_guide_line_numbers(guides: Sequence[str | Path] = GUIDES) -> list[str]:
    """Check every ``file.py:LINE`` quoted in the guide against the installed libraries.

    For each location: the file exists, the line (and range end) exists, and the quoted line
    contains the code span written just before the location (the rules of
    ``utils.guides.check_guide``). A range must not run past the end of the definition that
    starts on its first line.
    Returns: a list of problems, empty when every location holds; the first entries name
             version mismatches.
    """
    problems = version_problems()
    for guide in guides:
        problems += check_guide(guide, resolve_source, "timm or transformers")
    return problems


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict:
    """Check the reading's claims, then the four modifications of timm's ViT.

    Returns: a flat dict of the measured numbers (and a few lists).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=128, lr=1e-2,
                    out="runs/10_ViT/l4_timm", devices=("cpu",), counts_steps=True, threads=1)
    set_help(parser,
        dataset=("the linear probe's task (part 3): digits (scikit-learn's, offline) "
                 "or cifar10 (needs --data-root with CIFAR-10 or its subset); "
                 "default: %(default)s"),
        lr="learning rate of the linear probe (default: %(default)s)",
    )
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a timm ViT folder (config.json with 'architecture', "
                             "model.safetensors): parts 1-4 on its weights (default: a tiny "
                             "random VisionTransformer, no download)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="run the model at this size (set_input_size; a multiple of the "
                             "patch size; default: the model's own)")
    parser.add_argument("--new-size", type=positive_int, default=None,
                        help="the new resolution of part 4 (default: 1.5 x the model's size, "
                             "rounded to the patch size)")
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="training steps of the linear probe (default: %(default)s)")
    parser.add_argument("--train-size", type=non_negative_int, default=0,
                        help="use this many training images for the probe; 0 = all "
                             "(default: %(default)s)")
    parser.add_argument("--skip-claims", action="store_true",
                        help="skip part 0 (the checks of the reading's claims)")
    args = parse_args(parser, argv)
    model = None
    if args.checkpoint is not None:
        try:
            model = load_checkpoint(args.checkpoint)
        except CheckpointError as err:
            parser.error(f"argument --checkpoint: {err}")
    patch = model.patch_embed.patch_size[0] if model is not None else TINY["patch_size"]
    for option in ("image_size", "new_size"):
        value = getattr(args, option)
        if value is not None and value % patch:
            parser.error(f"argument --{option.replace('_', '-')}: must be a multiple of the "
                         f"patch size {patch}, got {value}")
    seed_everything(args.seed)
    out_dir = prepare_out_dir(args.out)
    with torch_threads(args.threads):
        return _run(args, model, out_dir)


def _run(args: argparse.Namespace, model: VisionTransformer | None, out_dir: Path) -> dict:
    print(f"torch {torch.__version__}, timm {timm.__version__}, "
          f"transformers {transformers.__version__}")
    start = time.perf_counter()
    results: dict = {}
    if not args.skip_claims:
        results.update(reading_claims(args.seed))
    if model is None:
        torch.manual_seed(args.seed)
        model = tiny_vit().eval()
        source = "a tiny random VisionTransformer (4 x 4 patches of 8 pixels, D=32, 2 blocks)"
    else:
        source = f"checkpoint {args.checkpoint} ({model.pretrained_cfg.get('architecture')})"
    if args.image_size is not None and args.image_size != model.patch_embed.img_size[0]:
        model = at_resolution(model, args.image_size).eval()
    size = model.patch_embed.img_size[0]
    print(f"\nmodel: {source}, at {size}x{size}")
    data = probe_data(args.dataset, model, args.data_root, args.train_size, args.seed)
    results.update(_pooling_part(model, data))
    results.update(_attention_part(model, data, out_dir))
    results.update(_probe_part(args, model, data, out_dir))
    results.update(_resolution_part(args, model, data))
    results["seconds"] = time.perf_counter() - start
    print(f"\ndone in {results['seconds']:.1f} s; pictures in {out_dir}")
    return results


def reading_claims(seed: int = 0) -> dict:
    """Part 0: every check of the reading's claims, printed; returns the numbers."""
    results: dict = {}
    print("\n0. the reading's claims (tiny random models, float64)")
    problems = check_guide_line_numbers()
    results["guide_locations"] = len(guide_locations())
    results["guide_problems"] = problems
    print(f"  guide: {results['guide_locations']} quoted file:line locations, {len(problems)} "
          "problems" + "".join(f"\n    {p}" for p in problems))
    r = pooling_rules(seed)
    print(f"  global_pool='token': norm={r['token_norm']}, fc_norm={r['token_fc_norm']}; "
          f"'avg': norm={r['avg_norm']}, fc_norm={r['avg_fc_norm']}; pre-logits vs hand "
          f"{r['token_diff']:.1e}, {r['avg_diff']:.1e}")
    results.update({f"pool_{k}": v for k, v in r.items()})
    r = port_checks(seed)
    print(f"  timm -> transformers logits max|diff| {r['to_hf']:.1e}, and back {r['back']:.1e}; "
          f"with transformers' default layer_norm_eps=1e-12: {r['hf_default_eps']:.1e}; "
          f"parameters {int(r['params_timm']):,} = {int(r['params_hf']):,}")
    results.update({f"port_{k}": v for k, v in r.items()})
    r = filter_checks(seed)
    print(f"  checkpoint_filter_fn: linear patch weight -> conv {r['patch_equal']}, pos_embed "
          f"{r['pos_shape'][0]} -> {r['pos_shape'][1]} (vs resample_abs_pos_embed "
          f"{r['pos_diff']:.1e}), dropped {r['dropped']}, loads strictly {r['loads_strict']}")
    results.update({f"filter_{k}": v for k, v in r.items()})
    r = init_statistics(seed)
    for scheme, stds in r.items():
        print(f"  init {scheme:12s} std: " + ", ".join(f"{k} {v:.2g}" for k, v in stds.items()))
    results["init"] = r
    r = pretrained_cfg_summary()
    print(f"  {r['architecture']}: {r['params']:,} parameters; default tag {r['tag']!r} of "
          f"{r['tags']}; input {r['input_size']}, crop_pct {r['crop_pct']}, mean {r['mean']}, "
          f"std {r['std']}, first_conv {r['first_conv']!r}, classifier {r['classifier']!r}")
    results["pretrained_cfg"] = r
    r = intermediates_check(seed)
    print(f"  forward_intermediates: {r['shapes']} (NCHW), vs hooked blocks {r['diff']:.1e}, "
          f"final vs forward_features {r['final_diff']:.1e}")
    results.update({f"intermediates_{k}": v for k, v in r.items()})
    results["fused_vs_unfused"] = fused_vs_unfused(seed)
    print(f"  fused attention (sdpa) vs written out: {results['fused_vs_unfused']:.1e}")
    return results


def _pooling_part(model: VisionTransformer, data: dict) -> dict:
    print("\n1. custom pooling swapped into timm's attn_pool slot")
    r = pooling_checks()
    print("  tiny float64 model, forward_head(pre_logits) vs hand computation: "
          + ", ".join(f"{k} {v:.1e}" for k, v in r.items()))
    images = data["x_test"][:8]
    with torch.no_grad():
        tokens = model.forward_features(images)
        pooled = {}
        for name, pooling in pooling_modules(model).items():
            swapped = swap_pooling(copy.deepcopy(model), pooling)
            pooled[name] = swapped.forward_head(tokens, pre_logits=True)
    cosine = F.cosine_similarity(pooled["cls"], pooled["mean"], dim=-1).mean()
    print(f"  on {len(images)} test images: pooled {tuple(pooled['cls'].shape)}; mean cosine "
          f"[CLS] vs mean of patches {float(cosine):.3f}")
    return {**{f"pooling_{k}": v for k, v in r.items()}, "pooling_cls_mean_cosine": float(cosine)}


def _attention_part(model: VisionTransformer, data: dict, out_dir: Path) -> dict:
    print("\n2. attention maps through forward hooks")
    image = data["x_test"][:1]
    from_qkv = attention_maps_from_qkv(model, image)
    unfused = attention_maps_unfused(model, image)
    fused_caught: list = []
    handle = model.blocks[-1].attn.attn_drop.register_forward_hook(
        lambda _m, inputs, _o: fused_caught.append(inputs[0]))
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    grid = model.patch_embed.grid_size
    maps = cls_attention_grid(from_qkv[0], grid, model.num_prefix_tokens)
    path = out_dir / "attention_heads.png"
    plot_attention_over_image(data["x_test"][0], maps, path,
                              title="[CLS] attention per layer and head")
    diff = float((from_qkv - unfused).abs().max())
    print(f"  maps {tuple(from_qkv.shape)} (B, layers, heads, T, T); hooked qkv vs "
          f"fused_attn=False + attn_drop hook: {diff:.1e}; a hook on attn_drop with the fused "
          f"kernel catches {len(fused_caught)} maps")
    print(f"  written {path}")
    return {"attention_shape": tuple(from_qkv.shape), "attention_hook_diff": diff,
            "attention_fused_caught": len(fused_caught), "attention_png": str(path)}


def _probe_part(args: argparse.Namespace, model: VisionTransformer, data: dict,
                out_dir: Path) -> dict:
    print(f"\n3. a linear probe on the frozen trunk, {args.dataset}: "
          f"{len(data['y_train'])} training, {len(data['y_test'])} test images")
    torch.manual_seed(args.seed)
    probe = LinearProbe(copy.deepcopy(model), int(data["y_train"].max()) + 1)
    before = [p.detach().clone() for p in probe.trunk.parameters()]
    r = train_linear_probe(probe, data, steps=args.steps, batch_size=args.batch_size,
                           lr=args.lr, seed=args.seed, progress=args.progress)
    unchanged = all(torch.equal(a, b) for a, b in zip(before, probe.trunk.parameters()))
    trainable = sum(p.numel() for p in probe.parameters() if p.requires_grad)
    print(f"  {trainable:,} trainable parameters of {sum(p.numel() for p in probe.parameters()):,}"
          f"; test accuracy {r['accuracy']:.3f} (train {r['train_accuracy']:.3f}) vs majority "
          f"baseline {r['baseline']:.3f}; loss {r['first_loss']:.3f} -> {r['last_loss']:.3f} in "
          f"{r['steps']} steps ({r['seconds']:.1f} s); trunk unchanged: {unchanged}")
    plot_curves({"train loss": r["losses"]}, path=out_dir / "probe_loss.png", xlabel="step",
                title=f"linear probe ({args.dataset})")
    return {**{f"probe_{k}": v for k, v in r.items() if k != "losses"},
            "probe_losses": r["losses"], "probe_trunk_unchanged": unchanged,
            "probe_trainable": trainable}


def _resolution_part(args: argparse.Namespace, model: VisionTransformer, data: dict) -> dict:
    size = model.patch_embed.img_size[0]
    patch = model.patch_embed.patch_size[0]
    new_size = args.new_size or max(patch, round(1.5 * size / patch) * patch)
    print(f"\n4. from {size}x{size} to {new_size}x{new_size}")
    r = resolution_report(model, new_size, args.seed, images=data["x_test"][:16])
    print(f"  tokens {r['tokens'][0]} -> {r['tokens'][1]} (grid {r['grid'][0]} -> {r['grid'][1]}); "
          f"attention cost x{r['attention_cost']:.2f}; parameters {r['params_added']:+,d} "
          f"(position embeddings only)")
    print(f"  pos_embed {r['pos_shape'][0]} -> {r['pos_shape'][1]}: vs resample_abs_pos_embed "
          f"{r['pos_vs_resample']:.1e}, vs F.interpolate(bicubic, antialias) {r['pos_vs_hand']:.1e}"
          f"; [CLS] position kept {r['cls_pos_kept']}")
    print(f"  dynamic_img_size=True vs set_input_size: logits {r['dynamic_vs_set']:.1e}; "
          f"top-1 agreement old vs new size {r['agreement']:.2f}")
    print(f"  get_model_input_config: {r['model_input_size']}; but pretrained_cfg keeps "
          f"{r['cfg_input_size']} and resolve_model_data_config says "
          f"{r['data_config_input_size']}: give the data pipeline the new size yourself")
    if "hf_vs_timm_pos" in r:
        print(f"  transformers' interpolate_pos_encoding (no antialias) vs timm's: "
              f"{r['hf_vs_timm_pos']:.2e}")
    return {f"resolution_{k}": v for k, v in r.items()}


if __name__ == "__main__":
    main()
