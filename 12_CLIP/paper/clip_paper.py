"""CLIP as Radford et al. describe it, in torch.nn (Level 3 of lesson 12).

A. Radford, J. W. Kim, C. Hallacy, A. Ramesh, G. Goh, S. Agarwal, G. Sastry, A. Askell,
P. Mishkin, J. Clark, G. Krueger, I. Sutskever (2021), "Learning Transferable Visual Models
From Natural Language Supervision", ICML 2021: an image encoder (a ViT with a LayerNorm
before the encoder, Section 2.4, or a modified ResNet-50 with attention pooling) and a
causal text Transformer read at the end-of-text token, both projected linearly into one
space, compared by cosine similarity times a learned temperature, and trained with the
symmetric cross-entropy of Figure 3. The sizes: Tables 19 and 20.
The blocks reuse lesson 10's attention (images) and lesson 09's causal attention and
embeddings (text). Derivations (InfoNCE, the temperature, zero-shot): ``../theory.md``.
``convert.py`` ports weights to and from transformers and open_clip.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from utils import import_lesson

vit = import_lesson("10_ViT.paper.vit_paper")  # patchify, MultiHeadSelfAttention
gpt = import_lesson("09_GPT.paper.gpt_paper")  # GPTEmbeddings, CausalSelfAttention, causal_mask

ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
TEXT_POOLS = ("eos", "argmax")
_INT_DTYPES = (torch.int64, torch.int32)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """x sigmoid(1.702 x): OpenAI's fast approximation of GELU, which its CLIP models were
    trained with (transformers' "quick_gelu", open_clip's QuickGELU)."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": F.gelu}  # "gelu": open_clip's non-OpenAI models


def _positive_ints(name: str, values: dict) -> None:
    bad = {key: value for key, value in values.items()
           if not isinstance(value, int) or isinstance(value, bool) or value < 1}
    if bad:
        raise ValueError(f"{name}: sizes must be positive ints, got {bad}")


# --------------------------------------------------------------------------------------
# 1. Configuration (Section 2.4; Table 19 (ResNets), Table 20 (ViTs))
# --------------------------------------------------------------------------------------


@dataclass
class CLIPVisionConfig:
    """The image tower, a ViT (Dosovitskiy et al. 2020) with CLIP's changes (Section 2.4):
    a LayerNorm on the embedded patches before the encoder, no bias in the patch embedding.
    Defaults: ViT-B/32 at 224 x 224. d_ff None means 4 d_model."""

    image_size: int = 224
    patch_size: int = 32
    in_channels: int = 3
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _positive_ints("CLIPVisionConfig", {k: v for k, v in asdict(self).items()
                                            if k != "layer_norm_eps"})
        if self.d_model % self.n_heads or self.image_size % self.patch_size:
            raise ValueError(f"CLIPVisionConfig: d_model must be a multiple of n_heads and "
                             f"image_size of patch_size (whole patches), got {self}")

    @property
    def num_patches(self) -> int:
        """N = (H / P)^2 patches, the tokens after [CLS]."""
        return (self.image_size // self.patch_size) ** 2


@dataclass
class CLIPTextConfig:
    """The text tower, a GPT-2-style causal Transformer (Section 2.4: "63M-parameter 12-layer
    512-wide model with 8 attention heads", a byte-pair vocabulary of 49,152 merges, context
    76 + 1). Its feature is the last layer's state at the end-of-text token:
    pool "eos" reads the FIRST position whose id is ``eos_token_id`` (transformers), pool
    "argmax" the position of the largest id (OpenAI's and open_clip's code, where the
    end-of-text id 49407 is the largest). Defaults: ViT-B/32's text tower."""

    vocab_size: int = 49408
    max_len: int = 77
    d_model: int = 512
    n_layers: int = 12
    n_heads: int = 8
    d_ff: int | None = None
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407  # features are read at the end-of-text token
    pool: str = "eos"

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _positive_ints("CLIPTextConfig", {k: getattr(self, k) for k in (
            "vocab_size", "max_len", "d_model", "n_layers", "n_heads", "d_ff")})
        if self.d_model % self.n_heads or not 0 <= self.eos_token_id < self.vocab_size \
                or self.pool not in TEXT_POOLS:
            raise ValueError(f"CLIPTextConfig: d_model must be a multiple of n_heads, "
                             f"eos_token_id in 0..vocab_size-1 and pool one of {TEXT_POOLS}, "
                             f"got {self}")


@dataclass
class CLIPResNetConfig:
    """The modified ResNet image tower (Section 2.4; Table 19): a 3-convolution stem with an
    average pool, bottleneck stages ``layers`` whose strided convolutions are anti-aliased
    (an average pool, then a stride-1 convolution; Zhang 2019), and attention pooling in
    place of the global average pool. ``width`` is the stem's width (64 for RN50); the
    features are 32 width wide; ``n_heads`` of the pooling None means 32 width / 64.
    Defaults: RN50."""

    image_size: int = 224
    layers: tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64
    n_heads: int | None = None
    in_channels: int = 3

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        if self.n_heads is None:
            self.n_heads = self.width * 32 // 64
        _positive_ints("CLIPResNetConfig", {"image_size": self.image_size, "width": self.width,
                                            "n_heads": self.n_heads,
                                            "in_channels": self.in_channels,
                                            **{f"layers[{i}]": n
                                               for i, n in enumerate(self.layers)}})
        if len(self.layers) != 4 or self.image_size % 32 or (32 * self.width) % self.n_heads:
            raise ValueError(f"CLIPResNetConfig: expected 4 stages, image_size a multiple of "
                             f"32 (the stride) and 32 width a multiple of n_heads, got {self}")


def _tiny_part(cls, defaults: dict, value):
    """tiny()'s sub-config: the tiny defaults updated by a dict, or the config given."""
    return cls(**{**defaults, **(value or {})}) if isinstance(value, dict) or value is None \
        else value


@dataclass
class CLIPConfig:
    """The whole model. ``embed_dim``: the joint space both towers project into
    (transformers' projection_dim). The logit scale is learned as its log, initialised to
    log(1 / 0.07) and "clipped to prevent scaling the logits by more than 100" (Section 2.5).
    ``activation``: "quick_gelu" (OpenAI's models) or "gelu" (open_clip's own).
    ``attn_implementation``: "eager" (step by step) or "sdpa" (the same maths, fused).
    The default is ViT-B/32 (transformers' CLIPConfig(): 151,277,313 parameters)."""

    vision: CLIPVisionConfig | CLIPResNetConfig = field(default_factory=CLIPVisionConfig)
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    embed_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)
    max_logit_scale: float = 100.0
    activation: str = "quick_gelu"
    attn_implementation: str = "eager"

    def __post_init__(self) -> None:
        _positive_ints("CLIPConfig", {"embed_dim": self.embed_dim})
        if self.activation not in ACTIVATIONS or \
                self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"CLIPConfig: activation must be one of {tuple(ACTIVATIONS)} and "
                             f"attn_implementation one of {ATTN_IMPLEMENTATIONS}, got "
                             f"{self.activation!r}, {self.attn_implementation!r}")

    @classmethod
    def vit_b_32(cls, **overrides) -> CLIPConfig:
        """ViT-B/32 (Table 20): 12 layers, 768 wide, 12 heads, patches of 32; the text tower
        of Section 2.4 (12 x 512, 8 heads); joint space 512. 151,277,313 parameters."""
        return cls(**{"vision": CLIPVisionConfig(patch_size=32), **overrides})

    @classmethod
    def vit_b_16(cls, **overrides) -> CLIPConfig:
        """ViT-B/16 (Table 20): ViT-B/32 with patches of 16 (197 tokens). 149,620,737."""
        return cls(**{"vision": CLIPVisionConfig(patch_size=16), **overrides})

    @classmethod
    def vit_l_14(cls, **overrides) -> CLIPConfig:
        """ViT-L/14 (Table 20): 24 layers, 1024 wide, 16 heads, patches of 14; text 12 x 768
        with 12 heads; joint space 768. 427,616,513 parameters."""
        return cls(**{"vision": CLIPVisionConfig(patch_size=14, d_model=1024, n_layers=24,
                                                 n_heads=16),
                      "text": CLIPTextConfig(d_model=768, n_heads=12), "embed_dim": 768,
                      **overrides})

    @classmethod
    def rn50(cls, **overrides) -> CLIPConfig:
        """RN50 (Table 19): the modified ResNet-50, stages (3, 4, 6, 3), 2048-wide features,
        attention pooling with 32 heads; the text tower of Section 2.4; joint space 1024."""
        return cls(**{"vision": CLIPResNetConfig(), "embed_dim": 1024, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> CLIPConfig:
        """A CPU-sized CLIP for tests and exercises: 32 x 32 images in 8 x 8 patches, both
        towers 2 layers x 32 wide with 4 heads, a 64-id vocabulary (end-of-text = 63),
        context 16, joint space 16. ``vision``/``text`` may be dicts updating these."""
        vision = _tiny_part(CLIPVisionConfig, {"image_size": 32, "patch_size": 8,
                                               "d_model": 32, "n_layers": 2, "n_heads": 4},
                            overrides.pop("vision", None))
        text_overrides = overrides.pop("text", None)
        vocab = (text_overrides or {}).get("vocab_size", 64) \
            if isinstance(text_overrides, dict) or text_overrides is None else None
        text = _tiny_part(CLIPTextConfig, {"vocab_size": 64, "max_len": 16, "d_model": 32,
                                           "n_layers": 2, "n_heads": 4,
                                           "eos_token_id": (vocab or 64) - 1},
                          text_overrides)
        return cls(**{"vision": vision, "text": text, "embed_dim": 16, **overrides})


def _tower_settings(tower, config: CLIPConfig) -> SimpleNamespace:
    """What the reused lesson 09/10 modules read from a config: one tower's sizes and the
    model's choices (CLIP uses no dropout)."""
    return SimpleNamespace(**asdict(tower), dropout=0.0, attn_dropout=0.0,
                           activation=config.activation,
                           attn_implementation=config.attn_implementation)


# --------------------------------------------------------------------------------------
# 2. The residual attention block, shared by both towers (Section 2.4; GPT-2's pre-LN)
# --------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """MLP(x) = act(x W_1 + b_1) W_2 + b_2 with act = quick-GELU (OpenAI) or GELU.
    forward: (B, T, D) -> (B, T, D), (B, T, d_ff) inside."""

    def __init__(self, settings: SimpleNamespace):
        super().__init__()
        self.up = nn.Linear(settings.d_model, settings.d_ff)  # W_1 (c_fc)
        self.down = nn.Linear(settings.d_ff, settings.d_model)  # W_2 (c_proj)
        self.activation = ACTIVATIONS[settings.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))


class ResidualAttentionBlock(nn.Module):
    """One pre-LN Transformer block (both towers):

        h   = x + MSA(LN_1(x))          norm1, attention (causal for the text tower)
        out = h + MLP(LN_2(h))          norm2, ffn

    The attention is lesson 10's ``MultiHeadSelfAttention`` for images and lesson 09's
    ``CausalSelfAttention`` for text: both a fused ``qkv`` Linear(D, 3D) laid out
    [q | k | v] and an ``out`` Linear(D, D), each with an "eager" (step by step) and an
    "sdpa" path.
    forward(x (B, T, D), attn_mask (T, T) bool (text), key_padding_mask (B, T) bool (text),
            need_weights (images)) -> (out (B, T, D), attention weights (B, k, T, T) or None).
    """

    def __init__(self, settings: SimpleNamespace, causal: bool, layer_index: int = 0):
        super().__init__()
        self.causal = causal
        self.norm1 = nn.LayerNorm(settings.d_model, eps=settings.layer_norm_eps)  # ln_1
        self.attention = (gpt.CausalSelfAttention(settings, layer_index) if causal
                          else vit.MultiHeadSelfAttention(settings))
        self.norm2 = nn.LayerNorm(settings.d_model, eps=settings.layer_norm_eps)  # ln_2
        self.ffn = FeedForward(settings)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.causal:
            attended, weights = self.attention(self.norm1(x), attn_mask, key_padding_mask), None
        else:
            attended, weights = self.attention(self.norm1(x), need_weights)
        x = x + attended
        return x + self.ffn(self.norm2(x)), weights


# --------------------------------------------------------------------------------------
# 3. The image encoder: a ViT with a LayerNorm before the encoder (Section 2.4)
# --------------------------------------------------------------------------------------


class VisionTransformer(nn.Module):
    """The ViT image encoder (Dosovitskiy et al. 2020, Equations 1-4) with CLIP's changes:

        z_0 = LN_pre([x_class; x_p^1 E; ...; x_p^N E] + E_pos)   "an additional layer
                                   normalization to the combined patch and position
                                   embeddings before the transformer" (Section 2.4)
        z_l = block_l(z_{l-1})
        I_f = LN_post(z_L^0) W_i       the [CLS] token, projected (no bias) to embed_dim

    ``patch_embed`` is E, a Linear on flattened patches (lesson 10's ``patchify``) without
    bias: CLIP's conv1 has none; its weight reshaped to (D, C, P, P) is that convolution.
    forward(images (B, C, H, W), return_attention=False) -> (B, embed_dim), or with
    return_attention (that, one (B, k, 1+N, 1+N) attention tensor per layer).
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        cfg = config.vision
        settings = _tower_settings(cfg, config)
        self.patch_size = cfg.patch_size
        self.patch_embed = nn.Linear(cfg.in_channels * cfg.patch_size ** 2, cfg.d_model,
                                     bias=False)  # E (D, C P P)
        self.cls_token = nn.Parameter(torch.zeros(cfg.d_model))  # x_class (D,)
        self.position_embedding = nn.Parameter(torch.zeros(1 + cfg.num_patches, cfg.d_model))
        self.pre_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)  # ln_pre
        self.layers = nn.ModuleList(ResidualAttentionBlock(settings, causal=False)
                                    for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)  # ln_post
        self.projection = nn.Linear(cfg.d_model, config.embed_dim, bias=False)  # W_i

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        tokens = self.patch_embed(vit.patchify(images, self.patch_size))  # (B, N, D)
        cls = self.cls_token.expand(images.shape[0], 1, -1)  # (B, 1, D)
        z = self.pre_norm(torch.cat([cls, tokens], dim=1) + self.position_embedding)
        attentions = []
        for layer in self.layers:
            z, weights = layer(z, need_weights=return_attention)
            attentions.append(weights)
        features = self.projection(self.final_norm(z[:, 0]))  # (B, E)
        return (features, tuple(attentions)) if return_attention else features


# --------------------------------------------------------------------------------------
# 4. The text encoder: a causal Transformer read at [EOS] (Section 2.4)
# --------------------------------------------------------------------------------------


class TextTransformer(nn.Module):
    """The text encoder, GPT-2's architecture (Radford et al. 2019) with CLIP's read-out:

        h_0 = W_e[ids] + W_p[0..T-1]     lesson 09's GPTEmbeddings (no dropout here)
        h_l = block_l(h_{l-1})           causal: position t attends to positions <= t
        T_f = LN_final(h_L)[eos] W_t     "the activations of the highest layer of the
                                         transformer at the [EOS] token" (Section 2.4)

    Padding (1/0 ``attention_mask``) is masked as keys, as transformers does; it cannot
    change the feature anyway, since [EOS] precedes the padding and attention is causal.
    forward(input_ids (B, T), attention_mask (B, T) or None) -> (B, embed_dim).
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        cfg = config.text
        settings = _tower_settings(cfg, config)
        self.pool, self.eos_token_id = cfg.pool, cfg.eos_token_id
        self.embeddings = gpt.GPTEmbeddings(settings)  # word (V, D), position (max_len, D)
        self.layers = nn.ModuleList(ResidualAttentionBlock(settings, causal=True, layer_index=i)
                                    for i in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)  # ln_final
        self.projection = nn.Linear(cfg.d_model, config.embed_dim, bias=False)  # W_t

    def eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B,) the position read in each row: the first ``eos_token_id`` (pool "eos") or the
        largest id (pool "argmax"); argmax returns the first of equal maxima."""
        if self.pool == "argmax":
            return input_ids.argmax(dim=-1)
        return (input_ids == self.eos_token_id).int().argmax(dim=-1)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device)[None]  # (1, T)
        h = self.embeddings(input_ids, positions)  # (B, T, D)
        attn_mask = gpt.causal_mask(length, device=input_ids.device)  # (T, T), True = future
        key_padding_mask = None if attention_mask is None else attention_mask == 0  # (B, T)
        for layer in self.layers:
            h, _ = layer(h, attn_mask, key_padding_mask)
        h = self.final_norm(h)
        rows = torch.arange(batch, device=input_ids.device)
        return self.projection(h[rows, self.eos_positions(input_ids)])  # (B, E)


# --------------------------------------------------------------------------------------
# 5. The model: two encoders, one space, cosine similarity times a temperature (Figure 3)
# --------------------------------------------------------------------------------------


def _check_images(cfg, images) -> None:
    """The image door: a float (B, C, H, W) batch of the configured channels and size."""
    expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
    got = (getattr(images, "dtype", type(images).__name__), tuple(getattr(images, "shape", ())))
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() \
            or images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images: expected a float tensor (B, C, H, W) with (C, H, W) = "
                         f"{expected} (config.vision), got {got[0]} {got[1]}")


def _check_text(cfg: CLIPTextConfig, input_ids, attention_mask) -> None:
    """The text door: int ids (B, T), 1 <= T <= max_len, in the vocabulary, each row holding
    the end-of-text token (pool "eos"), and a 1/0 mask of the same shape."""
    got = (getattr(input_ids, "dtype", type(input_ids).__name__),
           tuple(getattr(input_ids, "shape", ())))
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in _INT_DTYPES \
            or input_ids.ndim != 2 or not 1 <= input_ids.shape[1] <= cfg.max_len:
        raise ValueError(f"input_ids: expected an int64 tensor (B, T) with 1 <= T <= "
                         f"max_len={cfg.max_len}, got {got[0]} {got[1]}")
    if ((input_ids < 0) | (input_ids >= cfg.vocab_size)).any():
        raise ValueError(f"input_ids: ids must lie in 0..{cfg.vocab_size - 1}, got "
                         f"{input_ids.min().item()}..{input_ids.max().item()}")
    if cfg.pool == "eos" and not (input_ids == cfg.eos_token_id).any(dim=1).all():
        raise ValueError(f"input_ids: every row must contain the end-of-text id "
                         f"{cfg.eos_token_id} (the feature is read there; the tokenizer "
                         "adds it)")
    if attention_mask is not None and (
            tuple(attention_mask.shape) != tuple(input_ids.shape)
            or ((attention_mask != 0) & (attention_mask != 1)).any()):
        raise ValueError(f"attention_mask: expected 1 (token) / 0 (padding) of shape "
                         f"{tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}")


class CLIP(nn.Module):
    """Contrastive Language-Image Pre-training (Figure 3's pseudocode):

        I_e = l2_normalize(image_encoder(I) W_i)      encode_image, then normalised
        T_e = l2_normalize(text_encoder(T) W_t)       encode_text, then normalised
        logits = exp(t) I_e T_e^T                     t = logit_scale, exp(t) <= 100

    ``visual`` is the ViT (``VisionTransformer``) or the modified ResNet (``ModifiedResNet``)
    as config.vision says; ``text`` the ``TextTransformer``; ``logit_scale`` the scalar t.
    encode_image / encode_text return the projected features NOT normalised (as
    transformers' get_image_features and open_clip's encode_*).
    forward(images (B_i, C, H, W), input_ids (B_t, T), attention_mask (B_t, T) or None)
    -> (logits_per_image (B_i, B_t), logits_per_text (B_t, B_i) = its transpose).
    """

    def __init__(self, config: CLIPConfig | None = None):
        super().__init__()
        self.config = config = config or CLIPConfig()
        self.visual = (ModifiedResNet(config) if isinstance(config.vision, CLIPResNetConfig)
                       else VisionTransformer(config))
        self.text = TextTransformer(config)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init))  # t
        init_weights(self)

    def encode_image(self, images: torch.Tensor, return_attention: bool = False):
        """images (B, C, H, W) -> features (B, embed_dim); with return_attention (ViT only)
        also the attention weights of every layer, (B, k, 1+N, 1+N) each."""
        _check_images(self.config.vision, images)
        if return_attention:
            if not isinstance(self.visual, VisionTransformer):
                raise ValueError("return_attention: only the ViT image tower has attention "
                                 "layers to return")
            return self.visual(images, return_attention=True)
        return self.visual(images)

    def encode_text(self, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) int64 (end-of-text in each row), attention_mask (B, T) 1/0
        -> features (B, embed_dim), read at the end-of-text token."""
        _check_text(self.config.text, input_ids, attention_mask)
        return self.text(input_ids, attention_mask)

    def scale(self) -> torch.Tensor:
        """exp(t), clamped at max_logit_scale (100): "to prevent scaling the logits by more
        than 100 which we found necessary to prevent training instability" (Section 2.5)."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        image_features = F.normalize(self.encode_image(images), dim=-1)  # I_e (B_i, E)
        text_features = F.normalize(self.encode_text(input_ids, attention_mask), dim=-1)
        logits_per_image = self.scale() * image_features @ text_features.T  # (B_i, B_t)
        return logits_per_image, logits_per_image.T


def contrastive_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """The symmetric cross-entropy of Figure 3: pair i is the right answer for row i and
    for column i,

        loss = (CE(logits, labels, axis=rows) + CE(logits^T, labels, axis=rows)) / 2,

    labels = 0..B-1: image i must pick text i among the batch's texts, and text i image i.
    logits_per_image (B, B), matched pairs on the diagonal -> scalar (nats).
    """
    if logits_per_image.ndim != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(f"contrastive_loss: expected square logits (B, B) of B matched "
                         f"pairs, got {tuple(logits_per_image.shape)}")
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    loss_images = F.cross_entropy(logits_per_image, labels)  # each image picks its text
    loss_texts = F.cross_entropy(logits_per_image.T, labels)  # each text picks its image
    return (loss_images + loss_texts) / 2


# --------------------------------------------------------------------------------------
# 6. CLIP's initialisation (OpenAI's code, model.py initialize_parameters)
# --------------------------------------------------------------------------------------


def init_weights(model: CLIP) -> None:
    """OpenAI's initialisation, which open_clip and transformers copy:

    - token embeddings N(0, 0.02), text positions N(0, 0.01);
    - ViT: [CLS] and positions N(0, D^-1/2) ("scale * randn"); the patch map keeps
      PyTorch's default (a Linear on C P P inputs draws as the Conv2d does);
    - each block of width D in a tower of L layers: qkv N(0, D^-1/2), attention.out and
      ffn.down N(0, D^-1/2 (2L)^-1/2) (the residual projections), ffn.up N(0, (2D)^-1/2);
      biases 0, LayerNorms (1, 0). OpenAI applied this to the text blocks and left the ViT
      blocks at PyTorch's defaults; transformers applies it to both towers, as here;
    - projections N(0, D^-1/2) of their input width; ResNet: ``ModifiedResNet.init_weights``;
    - the logit scale log(1 / 0.07), set in CLIP.__init__.
    """
    for tower in (model.visual, model.text):
        if not hasattr(tower, "layers"):
            continue
        width, depth = tower.final_norm.normalized_shape[0], len(tower.layers)
        for layer in tower.layers:
            for linear, std in [(layer.attention.qkv, width ** -0.5),
                                (layer.attention.out, width ** -0.5 * (2 * depth) ** -0.5),
                                (layer.ffn.up, (2 * width) ** -0.5),
                                (layer.ffn.down, width ** -0.5 * (2 * depth) ** -0.5)]:
                nn.init.normal_(linear.weight, std=std)
                nn.init.zeros_(linear.bias)
        nn.init.normal_(tower.projection.weight, std=width ** -0.5)
    if isinstance(model.visual, VisionTransformer):
        width = model.visual.cls_token.shape[0]
        nn.init.normal_(model.visual.cls_token, std=width ** -0.5)
        nn.init.normal_(model.visual.position_embedding, std=width ** -0.5)
    else:
        model.visual.init_weights()
    nn.init.normal_(model.text.embeddings.word.weight, std=0.02)
    nn.init.normal_(model.text.embeddings.position.weight, std=0.01)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# 7. The modified ResNet image encoder (Section 2.4; Table 19)
# --------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """A ResNet bottleneck (He et al. 2016) with "antialiased rect-2 blur pooling" (Zhang
    2019; Section 2.4): when stride s > 1 an average pool of size s follows the 3 x 3
    convolution (and precedes the 1 x 1 convolution of the shortcut), every convolution
    keeping stride 1.

        out = ReLU(BN_3(conv_3(AvgPool_s(ReLU(BN_2(conv_2(ReLU(BN_1(conv_1 x)))))))) + short(x))
        short(x) = x, or BN(conv_1x1(AvgPool_s(x))) when the shape changes

    forward: (B, C_in, H, W) -> (B, 4 planes, H / s, W / s).
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()  # the blur
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample = None
        if stride > 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                                            nn.Conv2d(in_planes, out_planes, 1, bias=False),
                                            nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.avgpool(F.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class AttentionPool2d(nn.Module):
    """Attention pooling in place of the global average pool (Section 2.4): "a single layer
    of transformer-style multi-head QKV attention where the query is conditioned on the
    globally average-pooled representation of the image".

        x_0 = mean_i x_i;   z = [x_0; x_1..x_HW] + E_pos
        out = MSA(query = z_0, keys = values = z) W_c      one query: the mean token

    ``qkv`` fuses open_clip's q_proj, k_proj, v_proj ([q | k | v]); ``out`` is c_proj,
    which also projects to embed_dim. forward: (B, C, H, W) -> (B, embed_dim).
    """

    def __init__(self, grid: int, width: int, n_heads: int, embed_dim: int):
        super().__init__()
        self.n_heads = n_heads
        self.position_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, width = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        z = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)  # (B, 1 + HW, C)
        z = z + self.position_embedding
        q, k, v = self.qkv(z).split(width, dim=-1)  # (B, 1 + HW, C) each
        d_head = width // self.n_heads
        # (B, S, C) -> (B, S, k, d) -> (B, k, S, d); only the query of the mean token is kept
        q, k, v = (part.view(batch, -1, self.n_heads, d_head).transpose(1, 2)
                   for part in (q[:, :1], k, v))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_head), dim=-1)
        pooled = (weights @ v).transpose(1, 2).reshape(batch, width)  # (B, 1, k, d) -> (B, C)
        return self.out(pooled)


class ModifiedResNet(nn.Module):
    """The modified ResNet (Section 2.4): a stem of three 3 x 3 convolutions (the first with
    stride 2) and an average pool (no max pool), four bottleneck stages of widths
    (1, 2, 4, 8) x width (x 4 out), the last three strided and anti-aliased, then attention
    pooling to embed_dim. Downsamples by 32: the pooled grid is image_size / 32 square.
    forward(images (B, C, H, W)) -> (B, embed_dim).
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        cfg = config.vision
        half = cfg.width // 2
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, half, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(half), nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(),
            nn.Conv2d(half, cfg.width, 3, padding=1, bias=False), nn.BatchNorm2d(cfg.width),
            nn.ReLU(), nn.AvgPool2d(2))
        in_planes, stages = cfg.width, []
        for index, blocks in enumerate(cfg.layers):
            planes = cfg.width * 2 ** index
            stage = [Bottleneck(in_planes, planes, stride=1 if index == 0 else 2)]
            stage += [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            in_planes = planes * 4
        self.stages = nn.ModuleList(stages)
        self.attention_pool = AttentionPool2d(cfg.image_size // 32, cfg.width * 32,
                                              cfg.n_heads, config.embed_dim)

    def init_weights(self) -> None:
        """OpenAI's: the pooling's matrices N(0, C^-1/2), each block's last BatchNorm scale
        at 0 (so each block starts as the identity, Goyal et al. 2017), positions
        N(0, C^-1/2); convolutions keep PyTorch's default."""
        width = self.attention_pool.qkv.in_features
        for parameter in (self.attention_pool.qkv.weight, self.attention_pool.out.weight,
                          self.attention_pool.position_embedding):
            nn.init.normal_(parameter, std=width ** -0.5)
        for stage in self.stages:
            for block in stage:
                nn.init.zeros_(block.bn3.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)  # (B, width, H / 4, W / 4)
        for stage in self.stages:
            x = stage(x)  # ... (B, 32 width, H / 32, W / 32)
        return self.attention_pool(x)


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (each shared tensor once)."""
    return sum(parameter.numel() for parameter in model.parameters())

