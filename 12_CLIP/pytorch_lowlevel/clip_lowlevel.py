"""CLIP from tensors and autograd: two towers and a contrastive loss (Level 2).

Radford, Kim, Hallacy, Ramesh, Goh, Agarwal, Sastry, Askell, Mishkin, Clark, Krueger &
Sutskever 2021, "Learning Transferable Visual Models From Natural Language Supervision": an
image encoder (lesson 10's ViT with a layer norm before the encoder, Section 2.4), a text
encoder (lesson 09's causal Transformer, its feature read at the end-of-text token), linear
projections into one joint space, L2 normalisation, a learnable temperature, and the
symmetric cross-entropy of Figure 3. The parameters are one dict of tensors named as our L3
modules (``visual.layers.0.attention.qkv.weight``). No torch.nn layers, no torch.optim
(``test_lowlevel.py`` checks it, and every number against transformers' ``CLIPModel``).
Derivations: ``../theory.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from utils import import_lesson

# Taught earlier, used here as they are: the linear map, layer norm, the erf GELU and AdamW
# (lesson 08); cutting images into patches and the unmasked multi-head attention (lesson 10);
# the causal multi-head attention (lesson 09).
_bert = import_lesson("08_BERT.pytorch_lowlevel.bert_lowlevel")
linear, layer_norm, gelu, adamw_step = (_bert.linear, _bert.layer_norm, _bert.gelu,
                                        _bert.adamw_step)
_vit = import_lesson("10_ViT.pytorch_lowlevel.vit_lowlevel")
patchify, self_attention = _vit.patchify, _vit.self_attention
causal_self_attention = import_lesson("09_GPT.pytorch_lowlevel.gpt_lowlevel").causal_self_attention


# --------------------------------------------------------------------------------------
# 1. Quick-GELU, the activation of OpenAI's models (Hendrycks & Gimpel 2016, Section 2)
# --------------------------------------------------------------------------------------


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """QuickGELU(x) = x sigmoid(1.702 x): GELU's sigmoid approximation x Phi(x) ~ x
    sigma(1.702 x), within ~0.02 of the erf form; OpenAI's CLIP code (transformers'
    "quick_gelu"). open_clip's own models use the erf GELU (``activation="gelu"``)."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": gelu}
TEXT_POOLS = ("eos", "argmax")  # where the text feature is read: see CLIPTextConfig


# --------------------------------------------------------------------------------------
# 2. The configs: a ViT image tower, a causal text tower, the joint space (Tables 19-20)
# --------------------------------------------------------------------------------------


@dataclass
class CLIPVisionConfig:
    """The image tower of ViT-B/32 (Table 20): image 224, patch 32, width 768, 12 layers,
    12 heads, MLP 4 x width. Square images and patches (as CLIP's checkpoints)."""

    image_size: int = 224
    patch_size: int = 32
    in_channels: int = 3
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    layer_norm_eps: float = 1e-5
    # CLIP trains without dropout; lesson 10's attention reads these two
    dropout = 0.0
    attn_dropout = 0.0

    def __post_init__(self):
        self.d_ff = 4 * self.d_model if self.d_ff is None else self.d_ff
        _check_sizes(self, self.image_size, self.patch_size, self.in_channels)
        if self.image_size % self.patch_size:
            raise ValueError(f"CLIPVisionConfig: image_size {self.image_size} is not divisible "
                             f"by patch_size {self.patch_size}: the image must split into "
                             "whole patches")

    @property
    def num_patches(self) -> int:
        """N = (image_size / patch_size)^2: the sequence length before [CLS]."""
        return (self.image_size // self.patch_size) ** 2


@dataclass
class CLIPTextConfig:
    """The text tower of every CLIP (Section 2.4): a 63M-parameter causal Transformer, width
    512, 12 layers, 8 heads, lower-cased byte-pair vocabulary of 49,152 + 256 tokens
    (49,408), context 76 + 1 = 77, MLP 4 x width."""

    vocab_size: int = 49408
    max_len: int = 77  # learned positions: the longest text
    d_model: int = 512
    n_layers: int = 12
    n_heads: int = 8
    d_ff: int | None = None  # None -> 4 * d_model
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407  # features are read at the end-of-text token
    # pool "eos": the FIRST position holding eos_token_id (transformers); "argmax": the
    # largest id (OpenAI's and open_clip's code: the end token is last in their vocabulary)
    pool: str = "eos"
    dropout = 0.0  # CLIP trains without dropout; lesson 09's attention reads it
    attn_dropout = 0.0

    def __post_init__(self):
        self.d_ff = 4 * self.d_model if self.d_ff is None else self.d_ff
        _check_sizes(self, self.vocab_size, self.max_len)
        if not 0 <= self.eos_token_id < self.vocab_size or self.pool not in TEXT_POOLS:
            raise ValueError(f"CLIPTextConfig: eos_token_id must be in [0, vocab_size = "
                             f"{self.vocab_size}) and pool one of {TEXT_POOLS}, got "
                             f"{self.eos_token_id}, {self.pool!r}")


@dataclass
class CLIPConfig:
    """CLIP = an image tower + a text tower + the joint space of width embed_dim (ViT-B/32:
    512). The temperature starts at 0.07 (logit scale 1 / 0.07 = 14.3) and the scale is
    clipped at 100 (Section 2.5)."""

    vision: CLIPVisionConfig = field(default_factory=CLIPVisionConfig)
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    embed_dim: int = 512  # the joint space (transformers' projection_dim)
    logit_scale_init: float = math.log(1 / 0.07)  # logit_scale = log(1 / tau)
    max_logit_scale: float = 100.0  # the scale exp(logit_scale), not its log
    activation: str = "quick_gelu"  # OpenAI's; "gelu": open_clip's own models

    def __post_init__(self):
        _check_sizes(self, self.embed_dim)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"CLIPConfig: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.activation!r}")


def _check_sizes(config, *sizes: int) -> None:
    """Positive int sizes; d_model divisible by n_heads where the config has heads."""
    if hasattr(config, "n_heads"):
        sizes = (*sizes, config.d_model, config.n_layers, config.n_heads, config.d_ff)
    if not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ValueError(f"{type(config).__name__}: sizes must be positive ints, got {config}")
    if hasattr(config, "n_heads") and config.d_model % config.n_heads:
        raise ValueError(f"{type(config).__name__}: d_model={config.d_model} is not divisible "
                         f"by n_heads={config.n_heads} (each head gets d_model / n_heads)")


# --------------------------------------------------------------------------------------
# 3. The residual block both towers share: pre-LN attention and quick-GELU MLP
# --------------------------------------------------------------------------------------


def feed_forward(params: dict, prefix: str, x: torch.Tensor, config: CLIPConfig) -> torch.Tensor:
    """MLP(x) = act(x W_up^T + b_up) W_down^T + b_down, d_model -> d_ff -> d_model, act
    quick-GELU in OpenAI's models. Inputs (B, T, d); Returns (B, T, d)."""
    hidden = ACTIVATIONS[config.activation](
        linear(x, params[f"{prefix}.up.weight"], params[f"{prefix}.up.bias"]))  # (B, T, d_ff)
    return linear(hidden, params[f"{prefix}.down.weight"], params[f"{prefix}.down.bias"])


def block(params: dict, prefix: str, x: torch.Tensor, attend, config: CLIPConfig,
          eps: float) -> torch.Tensor:
    """Pre-LN, as GPT-2 and ViT (OpenAI's ResidualAttentionBlock):

        x = x + Attention(LN_1(x));   x = x + MLP(LN_2(x))

    ``attend`` maps the normed (B, T, d) to (out, weights): lesson 10's attention in the
    image tower, lesson 09's causal one in the text tower. Inputs / Returns (B, T, d).
    """
    normed = layer_norm(x, params[f"{prefix}.norm1.weight"], params[f"{prefix}.norm1.bias"], eps)
    x = x + attend(normed)[0]
    normed = layer_norm(x, params[f"{prefix}.norm2.weight"], params[f"{prefix}.norm2.bias"], eps)
    return x + feed_forward(params, f"{prefix}.ffn", normed, config)


# --------------------------------------------------------------------------------------
# 4. The image encoder: ViT with CLIP's layer norm before the encoder (Section 2.4)
# --------------------------------------------------------------------------------------


def image_features(params: dict, config: CLIPConfig, images: torch.Tensor,
                   training: bool = False) -> torch.Tensor:
    """ViT (lesson 10, Equation 1) with CLIP's changes: the patch embedding has no bias,
    and "an additional layer normalization to the combined patch and position embeddings
    before the transformer" (Section 2.4, OpenAI's ln_pre); the feature is [CLS] after
    the final norm (ln_post), projected by I_e = LN(z_L^0) W_i^T without bias.

        z_0 = LN_pre([x_class; x_p^1 E; ...; x_p^N E] + E_pos)

    Inputs: images (B, C, H, W). Returns: I_e (B, embed_dim), not normalised.
    """
    vision, eps = config.vision, config.vision.layer_norm_eps
    patches = patchify(images, vision.patch_size)  # (B, N, C P P)
    x = linear(patches, params["visual.patch_embed.weight"], None)  # (B, N, d)
    cls = params["visual.cls_token"].expand(x.shape[0], 1, -1)  # (B, 1, d)
    x = torch.cat([cls, x], dim=1) + params["visual.position_embedding"]  # (B, 1 + N, d)
    x = layer_norm(x, params["visual.pre_norm.weight"], params["visual.pre_norm.bias"], eps)
    for i in range(vision.n_layers):
        prefix = f"visual.layers.{i}"
        x = block(params, prefix, x, lambda y, prefix=prefix: self_attention(
            params, f"{prefix}.attention", y, vision, training), config, eps)
    pooled = layer_norm(x[:, 0], params["visual.final_norm.weight"],
                        params["visual.final_norm.bias"], eps)  # (B, d): [CLS] only
    return linear(pooled, params["visual.projection.weight"], None)  # (B, embed_dim)


# --------------------------------------------------------------------------------------
# 5. The text encoder: a causal Transformer read at the end-of-text token (Section 2.4)
# --------------------------------------------------------------------------------------


def eos_positions(input_ids: torch.Tensor, text: CLIPTextConfig) -> torch.Tensor:
    """The position of each text's end-of-text token: pool "eos", the first one equal to
    eos_token_id (transformers); pool "argmax", the largest id (OpenAI's
    ``text.argmax(dim=-1)``: [EOS] is the last id of their vocabulary). Both read the same
    position in a tokenizer's output. Inputs (B, T) int64; Returns (B,) int64."""
    if text.pool == "argmax":
        return input_ids.argmax(dim=-1)
    return (input_ids == text.eos_token_id).int().argmax(dim=-1)  # argmax: the first maximum


def text_features(params: dict, config: CLIPConfig, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor, training: bool = False) -> torch.Tensor:
    """"The [EOS] token ... are treated as the feature representation of the text which is
    layer normalized and then linearly projected into the multi-modal embedding space"
    (Section 2.4); "masked self-attention was used in the text encoder". The causal mask
    lets [EOS] read the whole text and nothing after it reach it: padding is harmless.

        h_0 = W_e[u] + W_p;  h_l = block(h_{l-1});  T_e = LN(h_L)[eos] W_t^T

    Inputs: input_ids, attention_mask (B, T). Returns: T_e (B, embed_dim), not normalised.
    """
    text, eps = config.text, config.text.layer_norm_eps
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
    x = params["text.embeddings.word.weight"][input_ids]  # (B, T, d)
    x = x + params["text.embeddings.position.weight"][positions]  # (B, T, d)
    for i in range(text.n_layers):
        prefix = f"text.layers.{i}"
        x = block(params, prefix, x, lambda y, prefix=prefix: causal_self_attention(
            params, f"{prefix}.attention", y, attention_mask, text, training), config, eps)
    x = layer_norm(x, params["text.final_norm.weight"], params["text.final_norm.bias"], eps)
    eos = eos_positions(input_ids, text)  # (B,)
    pooled = x[torch.arange(x.shape[0], device=x.device), eos]  # (B, d)
    return linear(pooled, params["text.projection.weight"], None)  # (B, embed_dim)


# --------------------------------------------------------------------------------------
# 6. The joint space: normalise, scale by the temperature, compare (Figure 3)
# --------------------------------------------------------------------------------------


def _check_images(images, config: CLIPConfig) -> None:
    """The door: images (B, C, H, W) float of the config's size."""
    vision = config.vision
    expected = (vision.in_channels, vision.image_size, vision.image_size)
    shape = tuple(getattr(images, "shape", ()))
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() \
            or len(shape) != 4 or shape[1:] != expected:
        raise ValueError(f"images: expected a float tensor (B, {', '.join(map(str, expected))}) "
                         f"as config.vision says, got {getattr(images, 'dtype', type(images))} "
                         f"{shape}")


def _check_text(input_ids, config: CLIPConfig) -> None:
    """The door: ids (B, T) in the vocabulary, T <= max_len, an end token in every row."""
    text, shape = config.text, tuple(getattr(input_ids, "shape", ()))
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() \
            or len(shape) != 2 or not 1 <= shape[1] <= text.max_len \
            or not 0 <= int(input_ids.min()) <= int(input_ids.max()) < text.vocab_size:
        raise ValueError(f"input_ids: expected integers in [0, vocab_size = {text.vocab_size}) "
                         f"of shape (B, T), T <= max_len = {text.max_len}, got "
                         f"{getattr(input_ids, 'dtype', type(input_ids))} {shape}")
    if text.pool == "eos" and not bool((input_ids == text.eos_token_id).any(dim=1).all()):
        raise ValueError(f"input_ids: every text needs its end token eos_token_id = "
                         f"{text.eos_token_id}: the text feature is read there")


def encode_image(params: dict, config: CLIPConfig, images: torch.Tensor, *,
                 training: bool = False) -> torch.Tensor:
    """The image embeddings I_e (B, embed_dim), projected, NOT normalised (transformers'
    get_image_features). Inputs: images (B, C, H, W) float."""
    _check_images(images, config)
    return image_features(params, config, images, training)


def encode_text(params: dict, config: CLIPConfig, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None, *,
                training: bool = False) -> torch.Tensor:
    """The text embeddings T_e (B, embed_dim), projected, NOT normalised (transformers'
    get_text_features). Inputs: input_ids (B, T) int64, each with an end token;
    attention_mask (B, T), 1 = real token, 0 = padding (default all 1)."""
    _check_text(input_ids, config)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    return text_features(params, config, input_ids, attention_mask, training)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """x / ||x||_2 along the last axis: every embedding on the unit sphere, so that a dot
    product is a cosine similarity. Inputs / Returns (..., E)."""
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True))


def logit_scale(params: dict, config: CLIPConfig) -> torch.Tensor:
    """s = min(exp(t), 100): t = log(1 / tau) is learned "as a log-parameterized
    multiplicative scalar" and "clipped to prevent scaling the logits by more than 100"
    (Section 2.5). Above the clip the gradient of t is 0. OpenAI's and open_clip's
    training loops clamp t itself after each step (clamp_(0, log 100)): the same logits;
    transformers' CLIPModel does not clip at all. Returns a scalar tensor."""
    return torch.exp(params["logit_scale"]).clamp(max=config.max_logit_scale)


def forward(params: dict, config: CLIPConfig, images: torch.Tensor, input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None, *,
            training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Figure 3: cosine similarities of every image with every text, scaled.

        logits_per_image = s * l2(I_e) l2(T_e)^T,   logits_per_text = its transpose

    Inputs:  params (init_params); config; images (B_i, C, H, W) float; input_ids (B_t, T)
             int64; attention_mask (B_t, T) or None
    Returns: logits_per_image (B_i, B_t), logits_per_text (B_t, B_i)
    """
    image_embeds = l2_normalize(encode_image(params, config, images, training=training))
    text_embeds = l2_normalize(encode_text(params, config, input_ids, attention_mask,
                                           training=training))
    logits_per_image = logit_scale(params, config) * image_embeds @ text_embeds.T  # (B_i, B_t)
    return logits_per_image, logits_per_image.T


def contrastive_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """The symmetric cross-entropy of Figure 3: image i's text is text i (labels =
    arange(n)); each image picks its text among the n (rows), each text its image (columns).

        loss_i = mean_i [logsumexp_j S_ij - S_ii]          (cross_entropy(logits, labels, axis=0))
        loss_t = mean_j [logsumexp_i S_ij - S_jj]          (axis=1: the transposed matrix)
        loss   = (loss_i + loss_t) / 2

    Inputs: logits_per_image S (n, n), pair i on the diagonal. Returns a scalar.
    """
    if logits_per_image.ndim != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(f"contrastive_loss: expected square logits (n images, n texts), pair i "
                         f"on the diagonal, got {tuple(logits_per_image.shape)}")
    matching = logits_per_image.diagonal()  # (n,) S_ii: the true pairs
    image_to_text = torch.logsumexp(logits_per_image, dim=1) - matching  # (n,) per image
    text_to_image = torch.logsumexp(logits_per_image, dim=0) - matching  # (n,) per text
    return (image_to_text.mean() + text_to_image.mean()) / 2


# --------------------------------------------------------------------------------------
# 7. Initialisation (OpenAI's model.py, as transformers' CLIPModel._init_weights)
# --------------------------------------------------------------------------------------


def _tower_shapes(prefix: str, tower) -> dict[str, tuple[int, ...]]:
    """name -> shape of the tower's n_layers blocks, names as our L3 modules."""
    d, d_ff, shapes = tower.d_model, tower.d_ff, {}
    for i in range(tower.n_layers):
        layer = f"{prefix}.layers.{i}"
        shapes.update({f"{layer}.norm1.weight": (d,), f"{layer}.norm1.bias": (d,),
                       f"{layer}.attention.qkv.weight": (3 * d, d),
                       f"{layer}.attention.qkv.bias": (3 * d,),
                       f"{layer}.attention.out.weight": (d, d),
                       f"{layer}.attention.out.bias": (d,),
                       f"{layer}.norm2.weight": (d,), f"{layer}.norm2.bias": (d,),
                       f"{layer}.ffn.up.weight": (d_ff, d), f"{layer}.ffn.up.bias": (d_ff,),
                       f"{layer}.ffn.down.weight": (d, d_ff), f"{layer}.ffn.down.bias": (d,)})
    return {**shapes, f"{prefix}.final_norm.weight": (d,), f"{prefix}.final_norm.bias": (d,)}


def parameter_shapes(config: CLIPConfig) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter, names as our L3 modules."""
    vision, text, embed_dim = config.vision, config.text, config.embed_dim
    patch_dim = vision.in_channels * vision.patch_size ** 2
    return {"visual.patch_embed.weight": (vision.d_model, patch_dim),
            "visual.cls_token": (vision.d_model,),
            "visual.position_embedding": (1 + vision.num_patches, vision.d_model),
            "visual.pre_norm.weight": (vision.d_model,), "visual.pre_norm.bias": (vision.d_model,),
            **_tower_shapes("visual", vision),
            "visual.projection.weight": (embed_dim, vision.d_model),
            "text.embeddings.word.weight": (text.vocab_size, text.d_model),
            "text.embeddings.position.weight": (text.max_len, text.d_model),
            **_tower_shapes("text", text),
            "text.projection.weight": (embed_dim, text.d_model), "logit_scale": ()}


def _init_std(name: str, config: CLIPConfig) -> float:
    """The std of a weight's normal draw, OpenAI's ``initialize_parameters`` and
    ``VisionTransformer``: with width d and L layers in its tower, word embeddings 0.02,
    text positions 0.01, [CLS], image positions and projections d^-1/2; in each block q,
    k, v d^-1/2, attention.out and ffn.down d^-1/2 (2L)^-1/2 (the residual projections,
    GPT-2's scaling), ffn.up (2d)^-1/2. OpenAI left its ViT blocks at PyTorch's defaults;
    transformers applies the block rule to both towers, as here, but swaps the stds of
    q, k, v and attention.out and draws both position tables and the patch map with 0.02."""
    tower = config.vision if name.startswith("visual.") else config.text
    width, branches = tower.d_model, 2 * tower.n_layers
    if name.endswith("embeddings.word.weight"):
        return 0.02
    if name.endswith("embeddings.position.weight"):
        return 0.01
    if name.endswith("ffn.up.weight"):
        return (2 * width) ** -0.5
    if name.endswith(("attention.out.weight", "ffn.down.weight")):
        return width ** -0.5 * branches ** -0.5
    return width ** -0.5  # cls_token, position_embedding, projections, attention.qkv


def init_params(config: CLIPConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                device="cpu") -> dict[str, torch.Tensor]:
    """Weights ~ N(0, std^2) with _init_std's std; the patch map as PyTorch's Conv2d
    default, U(-1/sqrt(C P P), 1/sqrt(C P P)) (OpenAI's conv1 keeps it); biases 0; layer
    norm gamma 1, beta 0; logit_scale = log(1 / 0.07) (Section 2.5: "initialized to the
    equivalent of 0.07"). The same draws as our L3 model's init_weights.

    Returns: {name: leaf tensor with requires_grad}, names as our L3 modules.
    """
    generator = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in parameter_shapes(config).items():
        if name == "logit_scale":
            value = torch.tensor(config.logit_scale_init, dtype=torch.float64)
        elif "norm" in name and name.endswith("weight"):
            value = torch.ones(shape, dtype=torch.float64)  # gamma
        elif name.endswith("bias"):
            value = torch.zeros(shape, dtype=torch.float64)  # biases and beta
        elif name == "visual.patch_embed.weight":
            bound = shape[1] ** -0.5  # 1 / sqrt(fan_in)
            value = (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1) * bound
        else:
            std = _init_std(name, config)
            value = torch.randn(shape, generator=generator, dtype=torch.float64) * std
        params[name] = value.to(dtype=dtype, device=device).requires_grad_(True)
    return params


def param_groups(params: dict[str, torch.Tensor], weight_decay: float = 0.2) -> list[dict]:
    """AdamW's two groups: "decoupled weight decay regularization applied to all weights
    that are not gains or biases" (Section 2.5; open_clip: not on 1-D tensors nor on
    logit_scale). The paper's ViTs used weight decay 0.2 (Table 19-20 hyperparameters).

    Returns: [{"names", "params", "weight_decay": weight_decay}, {..., "weight_decay": 0.0}]
    """
    decay = [name for name, p in params.items() if p.ndim >= 2]
    no_decay = [name for name in params if name not in decay]
    return [{"names": decay, "params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"names": no_decay, "params": [params[n] for n in no_decay], "weight_decay": 0.0}]
