"""The Vision Transformer from tensors and autograd: patches, [CLS], pre-LN encoder (Level 2).

Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words: Transformers for Image Recognition
at Scale": the patch embedding, the [CLS] token and learned 1-D position embeddings
(Section 3.1, Equation 1), the pre-LN encoder of multi-head self-attention and GELU MLP
blocks (Equations 2-3), the final LayerNorm and the classification head (Equation 4), plus
the training recipe's label smoothing, AdamW and warm-up + cosine schedule (Section 4.1,
Appendix B.1; DeiT). The parameters are one dict of tensors named as our L3 modules
(``patch_embed.weight``, ``layers.0.attention.qkv.weight``). No torch.nn layers, no
torch.optim: ``test_lowlevel.py`` checks it, and checks every number against timm's
``VisionTransformer`` and transformers' ``ViTForImageClassification``. Derivations:
``../theory.md``; training on digits or CIFAR-10: ``train.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from utils import import_lesson

# Taught earlier, used here as they are: the linear map, layer norm, the erf GELU and AdamW
# (lesson 08), inverted dropout and zero_grad (lesson 02).
_bert = import_lesson("08_BERT.pytorch_lowlevel.bert_lowlevel")
linear, layer_norm, gelu, adamw_step = (_bert.linear, _bert.layer_norm, _bert.gelu,
                                        _bert.adamw_step)
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
dropout, zero_grad = _mlp.dropout, _mlp.zero_grad

POOLS = ("token", "mean")  # the head reads [CLS], or the mean of the patch tokens


def as_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """7 -> (7, 7); (24, 16) -> (24, 16): (height, width)."""
    return (size, size) if isinstance(size, int) else tuple(size)


@dataclass
class ViTConfig:
    """Sizes of a ViT. The paper's ViT-B/16 (Table 1): image 224, patch 16, d_model 768,
    n_layers 12, n_heads 12, d_ff 3072 (MLP size). Sizes may be (height, width) pairs."""

    image_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 16
    in_channels: int = 3
    num_classes: int = 1000  # 0: no head, forward returns the pooled features (B, d_model)
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    dropout: float = 0.0  # after the position embeddings and every dense layer but qkv
    attn_dropout: float = 0.0  # on the attention probabilities
    layer_norm_eps: float = 1e-6  # timm's; transformers' ViT uses 1e-12
    pool: str = "token"  # "token": [CLS] (the paper); "mean": timm's global_pool="avg"

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        sizes = (*as_pair(self.image_size), *as_pair(self.patch_size), self.in_channels,
                 self.d_model, self.n_layers, self.n_heads, self.d_ff)
        if len(sizes) != 9 or not all(isinstance(s, int) and s >= 1 for s in sizes) \
                or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"ViTConfig: sizes must be positive ints (image and patch sizes "
                             f"an int or a (height, width) pair), got {self}")
        (height, width), (patch_h, patch_w) = as_pair(self.image_size), as_pair(self.patch_size)
        if height % patch_h or width % patch_w:
            raise ValueError(f"ViTConfig: image_size {height}x{width} is not divisible by "
                             f"patch_size {patch_h}x{patch_w}: the image must split into "
                             "whole patches (height % patch_h == width % patch_w == 0)")
        if self.d_model % self.n_heads:
            raise ValueError(f"ViTConfig: d_model={self.d_model} is not divisible by "
                             f"n_heads={self.n_heads} (each head gets d_model / n_heads)")
        if self.pool not in POOLS:
            raise ValueError(f"ViTConfig: pool must be one of {POOLS}, got {self.pool!r}")

    @property
    def grid_size(self) -> tuple[int, int]:
        """(G_h, G_w): patches per column and per row."""
        (height, width), (patch_h, patch_w) = as_pair(self.image_size), as_pair(self.patch_size)
        return height // patch_h, width // patch_w

    @property
    def num_patches(self) -> int:
        """N = H W / (P_h P_w): the sequence length before [CLS]."""
        return self.grid_size[0] * self.grid_size[1]


# --------------------------------------------------------------------------------------
# 1. Patches as tokens (Section 3.1, Equation 1)
# --------------------------------------------------------------------------------------


def patchify(images: torch.Tensor, patch_size: int | tuple[int, int]) -> torch.Tensor:
    """Cut images into non-overlapping P_h x P_w patches, each flattened as (C, P_h, P_w).

    Inputs:  images (B, C, H, W) with H % P_h == W % P_w == 0
    Returns: (B, N, C * P_h * P_w), N = (H / P_h)(W / P_w), patches in row-major order
    """
    B, C, H, W = images.shape
    patch_h, patch_w = as_pair(patch_size)
    grid_h, grid_w = H // patch_h, W // patch_w
    x = images.reshape(B, C, grid_h, patch_h, grid_w, patch_w)  # split H and W into blocks
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, G_h, G_w, C, P_h, P_w): one patch per (row, col)
    return x.reshape(B, grid_h * grid_w, C * patch_h * patch_w)  # (B, N, C P_h P_w)


def patch_embed(params: dict, images: torch.Tensor, config: ViTConfig) -> torch.Tensor:
    """x_p E: each flattened patch through one linear map E (C P_h P_w -> d_model).

    The same numbers as a convolution with kernel = stride = patch size whose weight is
    E reshaped to (d_model, C, P_h, P_w): how timm and transformers compute it.
    Inputs (B, C, H, W); Returns (B, N, d_model).
    """
    patches = patchify(images, config.patch_size)  # (B, N, C P_h P_w)
    return linear(patches, params["patch_embed.weight"], params["patch_embed.bias"])


def embed(params: dict, images: torch.Tensor, config: ViTConfig,
          training: bool = False) -> torch.Tensor:
    """z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos                         (Equation 1)

    A learned [CLS] token is prepended to the N patch embeddings and a learned position
    embedding (1 + N rows, 1-D: the grid read row by row) is added; dropout follows.
    Inputs (B, C, H, W); Returns (B, 1 + N, d_model).
    """
    x = patch_embed(params, images, config)  # (B, N, d)
    cls = params["cls_token"].expand(x.shape[0], -1, -1)  # (B, 1, d): the same for every image
    x = torch.cat([cls, x], dim=1) + params["position_embedding"]  # (B, 1 + N, d)
    return dropout(x, config.dropout, training=training)


# --------------------------------------------------------------------------------------
# 2. Multi-head self-attention (Appendix A; Vaswani et al. 2017, Section 3.2)
# --------------------------------------------------------------------------------------


def self_attention(params: dict, prefix: str, x: torch.Tensor, config: ViTConfig,
                   training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MSA(z) = [SA_1(z); ...; SA_h(z)] U_msa,   [q, k, v] = z U_qkv               (Eq. 5-8)

        SA(z) = softmax(q k^T / sqrt(d_k)) v,   d_k = d_model / h

    One fused projection gives q, k and v (rows 0..d-1 of U_qkv are q, then k, then v;
    within each, head after head), as timm stores it. Every token attends to every token:
    no mask in an image.

    Inputs:  params[prefix + ".{qkv,out}.{weight,bias}"]; x (B, T, d_model), T = 1 + N
    Returns: out (B, T, d_model); weights (B, h, T, T), the probabilities after dropout
    """
    B, T, d = x.shape
    h = config.n_heads
    d_k = d // h
    qkv = linear(x, params[f"{prefix}.qkv.weight"], params[f"{prefix}.qkv.bias"])  # (B, T, 3d)
    qkv = qkv.reshape(B, T, 3, h, d_k).permute(2, 0, 3, 1, 4)  # (3, B, h, T, d_k)
    q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, h, T, d_k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T_q, T_k)
    weights = torch.softmax(scores, dim=-1)  # each query's row sums to 1
    weights = dropout(weights, config.attn_dropout, training=training)
    context = (weights @ v).transpose(1, 2).reshape(B, T, d)  # (B, T, h * d_k): concat heads
    out = linear(context, params[f"{prefix}.out.weight"], params[f"{prefix}.out.bias"])
    return dropout(out, config.dropout, training=training), weights


# --------------------------------------------------------------------------------------
# 3. The encoder block: pre-LN residual MSA and MLP (Equations 2-3)
# --------------------------------------------------------------------------------------


def feed_forward(params: dict, prefix: str, x: torch.Tensor, config: ViTConfig,
                 training: bool = False) -> torch.Tensor:
    """MLP(x) = GELU(x W_up^T + b_up) W_down^T + b_down, d_model -> d_ff -> d_model: "two
    layers with a GELU non-linearity" (Section 3.1), dropout after each (Appendix B.1).
    Inputs (B, T, d); Returns (B, T, d)."""
    hidden = gelu(linear(x, params[f"{prefix}.up.weight"], params[f"{prefix}.up.bias"]))
    hidden = dropout(hidden, config.dropout, training=training)  # (B, T, d_ff)
    out = linear(hidden, params[f"{prefix}.down.weight"], params[f"{prefix}.down.bias"])
    return dropout(out, config.dropout, training=training)


def encoder_block(params: dict, prefix: str, x: torch.Tensor, config: ViTConfig,
                  training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-LN: the norm comes first inside each residual branch, the sum stays un-normed.

        z'_l = MSA(LN(z_{l-1})) + z_{l-1}                                       (Equation 2)
        z_l  = MLP(LN(z'_l)) + z'_l                                             (Equation 3)

    (BERT and the Transformer are post-LN, LN(x + Sublayer(x)): theory.md compares them.)
    Inputs: x (B, T, d_model). Returns: x (B, T, d_model), attention weights (B, h, T, T).
    """
    eps = config.layer_norm_eps
    normed = layer_norm(x, params[f"{prefix}.norm1.weight"], params[f"{prefix}.norm1.bias"], eps)
    attended, weights = self_attention(params, f"{prefix}.attention", normed, config, training)
    x = x + attended
    normed = layer_norm(x, params[f"{prefix}.norm2.weight"], params[f"{prefix}.norm2.bias"], eps)
    return x + feed_forward(params, f"{prefix}.ffn", normed, config, training), weights


# --------------------------------------------------------------------------------------
# 4. The model: embed, n_layers blocks, the final norm, the head (Equation 4)
# --------------------------------------------------------------------------------------


def _check_images(images, config: ViTConfig) -> None:
    """The door: forward's images, once."""
    expected = (config.in_channels, *as_pair(config.image_size))
    shape = tuple(getattr(images, "shape", ()))
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() \
            or len(shape) != 4 or shape[1:] != expected:
        raise ValueError(f"images: expected a float tensor (B, C, H, W) = (B, "
                         f"{', '.join(map(str, expected))}) as config.image_size and "
                         f"in_channels say, got {getattr(images, 'dtype', type(images))} "
                         f"{shape}")


def forward_features(params: dict, config: ViTConfig, images: torch.Tensor, *,
                     training: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The encoder, as timm's forward_features: z_L after the final norm (pool "token"), or
    before it (pool "mean": timm moves the norm after the pooling, see forward_head).

    Inputs:  params (init_params); config; images (B, C, H, W) float
    Returns: tokens (B, 1 + N, d_model), token 0 is [CLS]; each layer's attention weights
             (B, n_heads, 1 + N, 1 + N)
    """
    _check_images(images, config)
    x = embed(params, images, config, training)
    attentions = []
    for i in range(config.n_layers):
        x, weights = encoder_block(params, f"layers.{i}", x, config, training)
        attentions.append(weights)
    if config.pool == "token":
        x = layer_norm(x, params["final_norm.weight"], params["final_norm.bias"],
                       config.layer_norm_eps)
    return x, attentions


def forward_head(params: dict, config: ViTConfig, tokens: torch.Tensor) -> torch.Tensor:
    """y = LN(z_L^0) W_head^T + b  (Equation 4), or with pool "mean":
    y = LN(mean_{i >= 1} z_L^i) W_head^T + b, the norm after the pooling as timm's fc_norm.

    Inputs: tokens (B, 1 + N, d_model) from forward_features
    Returns: logits (B, num_classes), or the pooled features (B, d_model) if num_classes == 0
    """
    if config.pool == "token":
        pooled = tokens[:, 0]  # (B, d): [CLS], already normed
    else:
        pooled = tokens[:, 1:].mean(dim=1)  # (B, d): the patch tokens only, [CLS] left out
        pooled = layer_norm(pooled, params["final_norm.weight"], params["final_norm.bias"],
                            config.layer_norm_eps)
    if config.num_classes == 0:
        return pooled
    return linear(pooled, params["head.weight"], params["head.bias"])


def forward(params: dict, config: ViTConfig, images: torch.Tensor, *, training: bool = False,
            return_attention: bool = False):
    """Images to class logits: forward_features, then forward_head.

    Inputs:  params; config; images (B, C, H, W) float; training - dropout on (True) or off
    Returns: logits (B, num_classes); with return_attention=True also the list of each
             layer's attention weights (B, n_heads, 1 + N, 1 + N)
    """
    tokens, attentions = forward_features(params, config, images, training=training)
    logits = forward_head(params, config, tokens)
    return (logits, attentions) if return_attention else logits


@torch.no_grad()
def predict(params: dict, config: ViTConfig, images: torch.Tensor,
            batch_size: int = 256) -> torch.Tensor:
    """Class indices (B,) int64, dropout off, in batches of batch_size images."""
    return torch.cat([forward(params, config, images[i:i + batch_size]).argmax(dim=-1)
                      for i in range(0, len(images), batch_size)])


# --------------------------------------------------------------------------------------
# 5. The loss: cross-entropy with label smoothing (Szegedy et al. 2016; DeiT)
# --------------------------------------------------------------------------------------


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the smoothed target q = (1 - eps) onehot(y) + eps / K:

        loss_b = -sum_k q_k log p_k = (1 - eps) (-log p_y) + eps mean_k(-log p_k)

    averaged over the batch, as F.cross_entropy(label_smoothing=eps) (eps / K goes to every
    class, the true one included). Lesson 07 has the same loss with padding ignored.
    Inputs: logits (B, K); labels (B,) int64 in [0, K); eps in [0, 1). Returns a scalar.
    """
    if not 0.0 <= label_smoothing < 1.0 or logits.shape[:-1] != labels.shape:
        raise ValueError(f"cross_entropy: expected logits (B, K), labels (B,) and "
                         f"label_smoothing in [0, 1), got {tuple(logits.shape)}, "
                         f"{tuple(labels.shape)}, {label_smoothing}")
    log_probs = torch.log_softmax(logits, dim=-1)  # (B, K)
    nll = -log_probs.gather(-1, labels[..., None])[..., 0]  # (B,) -log p_y
    uniform = -log_probs.mean(dim=-1)  # (B,) mean_k -log p_k
    return ((1.0 - label_smoothing) * nll + label_smoothing * uniform).mean()


# --------------------------------------------------------------------------------------
# 6. Initialisation, AdamW's groups and the schedule (Appendix B.1; timm, DeiT)
# --------------------------------------------------------------------------------------


def trunc_normal(shape, std: float, generator: torch.Generator) -> torch.Tensor:
    """N(0, std^2) truncated to [-2 std, 2 std], by the inverse CDF: draw u uniformly in
    [Phi(-2), Phi(2)], return std sqrt(2) erfinv(2u - 1). float64."""
    low, high = (1 + math.erf(-2 / math.sqrt(2))) / 2, (1 + math.erf(2 / math.sqrt(2))) / 2
    u = low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    return std * math.sqrt(2.0) * torch.erfinv(2 * u - 1)


def parameter_shapes(config: ViTConfig) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter, names as our L3 modules."""
    d, d_ff = config.d_model, config.d_ff
    patch_h, patch_w = as_pair(config.patch_size)
    shapes = {"patch_embed.weight": (d, config.in_channels * patch_h * patch_w),
              "patch_embed.bias": (d,), "cls_token": (1, 1, d),
              "position_embedding": (1, 1 + config.num_patches, d)}
    for i in range(config.n_layers):
        shapes.update({f"layers.{i}.norm1.weight": (d,), f"layers.{i}.norm1.bias": (d,),
                       f"layers.{i}.attention.qkv.weight": (3 * d, d),
                       f"layers.{i}.attention.qkv.bias": (3 * d,),
                       f"layers.{i}.attention.out.weight": (d, d),
                       f"layers.{i}.attention.out.bias": (d,),
                       f"layers.{i}.norm2.weight": (d,), f"layers.{i}.norm2.bias": (d,),
                       f"layers.{i}.ffn.up.weight": (d_ff, d), f"layers.{i}.ffn.up.bias": (d_ff,),
                       f"layers.{i}.ffn.down.weight": (d, d_ff),
                       f"layers.{i}.ffn.down.bias": (d,)})
    shapes.update({"final_norm.weight": (d,), "final_norm.bias": (d,)})
    if config.num_classes:
        shapes.update({"head.weight": (config.num_classes, d), "head.bias": (config.num_classes,)})
    return shapes


def init_params(config: ViTConfig, *, seed: int = 0, std: float = 0.02,
                dtype: torch.dtype = torch.float32, device="cpu") -> dict[str, torch.Tensor]:
    """Every weight matrix (the patch embedding and the head included), the [CLS] token and
    the position embeddings ~ truncated N(0, 0.02^2); biases 0; LayerNorm gamma 1, beta 0.

    transformers' ViT initialises so; timm too, except its [CLS] ~ N(0, 1e-6^2) and its
    patch embedding keeps nn.Conv2d's uniform default. Both truncate at +-2 absolute, 100
    std: in effect no truncation; here at 2 std, as TF's truncated_normal. (The paper's own code
    zeroes the head; a zero head would make the first steps' logits all equal.)
    Returns: {name: leaf tensor with requires_grad}, names as our L3 modules.
    """
    generator = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in parameter_shapes(config).items():
        if "norm" in name and name.endswith("weight"):
            value = torch.ones(shape, dtype=torch.float64)  # gamma
        elif name.endswith("bias"):
            value = torch.zeros(shape, dtype=torch.float64)  # biases and beta
        else:
            value = trunc_normal(shape, std, generator)
        params[name] = value.to(dtype=dtype, device=device).requires_grad_(True)
    return params


def param_groups(params: dict[str, torch.Tensor], weight_decay: float = 0.05) -> list[dict]:
    """AdamW's two groups, as timm's: weight decay on the weight matrices; none on biases,
    LayerNorm, [CLS] and the position embeddings (timm's no_weight_decay() and every 1-D
    tensor): shrinking them towards 0 regularises nothing. DeiT: weight decay 0.05.

    Returns: [{"names", "params", "weight_decay": weight_decay}, {..., "weight_decay": 0.0}]
    """
    exempt = ("cls_token", "position_embedding")
    no_decay = [name for name, p in params.items() if p.ndim <= 1 or name in exempt]
    decay = [name for name in params if name not in no_decay]
    return [{"names": decay, "params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"names": no_decay, "params": [params[n] for n in no_decay], "weight_decay": 0.0}]


def warmup_cosine_lr(step: int, peak_lr: float, warmup_steps: int, total_steps: int,
                     min_lr: float = 0.0) -> float:
    """The rate for optimiser step ``step`` (0 = the first): linear warm-up to peak_lr, then
    half a cosine down to min_lr at total_steps (Appendix B.1: "linear learning rate
    warmup and decay"; cosine in DeiT and timm). utils' "warmup_cosine" schedule.

        lr(s) = peak (s + 1) / warmup                                   s < warmup
        lr(s) = min + (peak - min) (1 + cos(pi t)) / 2,  t = (s - warmup) / (total - warmup)
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
