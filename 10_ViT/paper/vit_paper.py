"""The Vision Transformer as Dosovitskiy et al. describe it, in torch.nn (Level 3 of lesson 10).

A. Dosovitskiy, L. Beyer, A. Kolesnikov, D. Weissenborn, X. Zhai, T. Unterthiner,
M. Dehghani, M. Minderer, G. Heigold, S. Gelly, J. Uszkoreit, N. Houlsby (2020), "An Image
is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021: patches as
tokens (Section 3.1, Equation 1), the pre-LN encoder (Equations 2-4, Appendix A), the sizes
(Table 1, with DeiT's Tiny and Small), a new resolution (Section 3.2); attention maps and
attention rollout (Abnar & Zuidema 2020; the paper's Figure 6).
Derivations (parameter count, cost against a CNN, interpolation, pooling): ``../theory.md``.
``convert.py`` ports weights to and from timm and transformers and reads their folders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
POOLS = ("token", "mean")


def as_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """224 -> (224, 224); (224, 160) stays (height, width)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


# --------------------------------------------------------------------------------------
# 1. Configuration (Table 1; DeiT's Tiny and Small, Touvron et al. 2021, Table 1)
# --------------------------------------------------------------------------------------


@dataclass
class ViTConfig:
    """Every size of the model; the defaults are ViT-B/16 at 224 x 224 (86M parameters).

    ``num_classes`` 0 leaves the head out (the model returns features). ``pool``: "token"
    reads the [CLS] token (Equation 4), "mean" averages the patch tokens (Appendix D.3,
    timm's global_pool="avg"). ``attn_implementation``: "eager" computes Equation 6 step by
    step (and can return the attention weights), "sdpa" the same maths in one fused kernel.
    ``layer_norm_eps``: timm's 1e-6 (transformers' ViT uses 1e-12; its port sets it).
    """

    image_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 16  # P: the model is "ViT-B/16" for P = 16
    in_channels: int = 3
    num_classes: int = 1000  # 0: no head (features)
    d_model: int = 768  # D, "hidden size"
    n_layers: int = 12  # L
    n_heads: int = 12  # k heads of D_h = D / k dimensions
    d_ff: int | None = None  # "MLP size"; None -> 4 D
    dropout: float = 0.0  # after every dense layer but qkv, and after adding E_pos (App. B.1)
    attn_dropout: float = 0.0  # on the attention weights
    layer_norm_eps: float = 1e-6
    pool: str = "token"
    attn_implementation: str = "eager"

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        sizes = (*as_pair(self.image_size), *as_pair(self.patch_size), self.in_channels,
                 self.d_model, self.n_layers, self.n_heads, self.d_ff)
        if not all(isinstance(s, int) and s >= 1 for s in sizes) or self.num_classes < 0 \
                or self.d_model % self.n_heads:
            raise ValueError(f"ViTConfig: sizes must be positive ints (num_classes >= 0) and "
                             f"d_model a multiple of n_heads, got {self}")
        (height, width), (patch_h, patch_w) = as_pair(self.image_size), as_pair(self.patch_size)
        if height % patch_h or width % patch_w:
            raise ValueError(f"ViTConfig: image_size {(height, width)} is not divisible by "
                             f"patch_size {(patch_h, patch_w)}: the image must split into "
                             "whole patches (resize or crop it)")
        if self.pool not in POOLS or self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"ViTConfig: pool must be one of {POOLS} and attn_implementation "
                             f"one of {ATTN_IMPLEMENTATIONS}, got {self.pool!r}, "
                             f"{self.attn_implementation!r}")

    @property
    def grid_size(self) -> tuple[int, int]:
        """(H / P_h, W / P_w): patches per column and per row."""
        (height, width), (patch_h, patch_w) = as_pair(self.image_size), as_pair(self.patch_size)
        return height // patch_h, width // patch_w

    @property
    def num_patches(self) -> int:
        """N = H W / P^2, the length of the patch sequence (Section 3.1)."""
        return self.grid_size[0] * self.grid_size[1]

    @classmethod
    def _sized(cls, n_layers: int, d_model: int, n_heads: int, overrides: dict) -> ViTConfig:
        sizes = {"n_layers": n_layers, "d_model": d_model, "n_heads": n_heads,
                 "d_ff": 4 * d_model}
        return cls(**{**sizes, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> ViTConfig:
        """DeiT-Ti: L=12, D=192, 3 heads, MLP 768 (5.7M with a 1000-class head)."""
        return cls._sized(12, 192, 3, overrides)

    @classmethod
    def small(cls, **overrides) -> ViTConfig:
        """DeiT-S: L=12, D=384, 6 heads, MLP 1536 (22M)."""
        return cls._sized(12, 384, 6, overrides)

    @classmethod
    def base(cls, **overrides) -> ViTConfig:
        """ViT-Base: L=12, D=768, 12 heads, MLP 3072 (Table 1: 86M)."""
        return cls._sized(12, 768, 12, overrides)

    @classmethod
    def large(cls, **overrides) -> ViTConfig:
        """ViT-Large: L=24, D=1024, 16 heads, MLP 4096 (Table 1: 307M)."""
        return cls._sized(24, 1024, 16, overrides)

    @classmethod
    def huge(cls, **overrides) -> ViTConfig:
        """ViT-Huge: L=32, D=1280, 16 heads, MLP 5120 (Table 1: 632M); ViT-H/14 by default."""
        return cls._sized(32, 1280, 16, {"patch_size": 14, **overrides})


# --------------------------------------------------------------------------------------
# 2. Patches as tokens (Section 3.1, Equation 1)
# --------------------------------------------------------------------------------------


def patchify(images: torch.Tensor, patch_size: int | tuple[int, int]) -> torch.Tensor:
    """x in R^{H x W x C} -> x_p in R^{N x (P^2 C)}, N = H W / P^2 (Section 3.1).

    Patches in reading order (left to right, then top to bottom); each one flattened in
    the order (C, P_h, P_w), the order of a Conv2d weight: so the linear map E applied to
    these rows equals a convolution with stride P whose weight is E reshaped to
    (D, C, P_h, P_w) (``../theory.md``, tested).
    Inputs: images (B, C, H, W), H and W multiples of the patch size.
    Returns: (B, N, C P_h P_w).
    """
    batch, channels, height, width = images.shape
    patch_h, patch_w = as_pair(patch_size)
    grid_h, grid_w = height // patch_h, width // patch_w
    patches = images.reshape(batch, channels, grid_h, patch_h, grid_w, patch_w)  # (B,C,Gh,Ph,Gw,Pw)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, G_h, G_w, C, P_h, P_w)
    return patches.reshape(batch, grid_h * grid_w, channels * patch_h * patch_w)  # (B, N, CPP)


# --------------------------------------------------------------------------------------
# 3. The encoder layer (Equations 2-3; multi-head self-attention, Appendix A)
# --------------------------------------------------------------------------------------


class MultiHeadSelfAttention(nn.Module):
    """MSA (Appendix A, Equations 5-8), the Transformer's (Vaswani et al. 2017, 3.2):

        [q, k, v] = z U_qkv                              U_qkv in R^{D x 3 D_h} per head (5)
        A = softmax(q k^T / sqrt(D_h))                    A in R^{T x T}                 (6)
        SA(z) = A v                                                                      (7)
        MSA(z) = [SA_1(z); ...; SA_k(z)] U_msa           U_msa in R^{k D_h x D}         (8)

    ``qkv`` is one Linear(D, 3D) for all heads, its output laid out [q | k | v], each
    [head_1 | ... | head_k] (timm's fused layout; transformers keeps q, k, v apart).
    Dropout (attn_dropout) acts on A.
    forward(z (B, T, D), need_weights=False) -> (MSA(z) (B, T, D), A (B, k, T, T) or None).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # U_qkv
        self.out = nn.Linear(cfg.d_model, cfg.d_model)  # U_msa
        self.attn_dropout = cfg.attn_dropout
        self.implementation = cfg.attn_implementation

    def forward(self, z: torch.Tensor, need_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, d_model = z.shape
        qkv = self.qkv(z).view(batch, length, 3, self.n_heads, self.d_head)  # (B, T, 3, k, D_h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, k, T, D_h), equation 5
        p = self.attn_dropout if self.training else 0.0
        weights = None
        if self.implementation == "eager" or need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, k, T, T)
            weights = torch.softmax(scores, dim=-1)  # A, equation 6: each row sums to 1
            heads = F.dropout(weights, p, self.training) @ v  # SA = A v, (B, k, T, D_h) (7)
        else:  # the alternative: the same maths in one fused kernel
            heads = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        heads = heads.transpose(1, 2).reshape(batch, length, d_model)  # concat: (B, T, k D_h)
        return self.out(heads), weights  # equation 8


class FeedForward(nn.Module):
    """MLP(x) = GELU(x W_1 + b_1) W_2 + b_2: "two layers with a GELU non-linearity"
    (Section 3.1), inner size d_ff ("MLP size", Table 1). GELU in its exact erf form;
    dropout after the first dense layer, as after every dense layer (Appendix B.1).
    forward: (B, T, D) -> (B, T, D).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)  # W_1
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)  # W_2
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(F.gelu(self.up(x))))  # (B, T, d_ff) inside


class EncoderLayer(nn.Module):
    """One pre-LN encoder layer (Section 3.1: "Layernorm (LN) is applied before every
    block, and residual connections after every block"):

        z'_l = MSA(LN(z_{l-1})) + z_{l-1}                 norm1, attention      (2)
        z_l  = MLP(LN(z'_l)) + z'_l                        norm2, ffn            (3)

    Dropout on each block's output (Appendix B.1). forward(z (B, T, D), need_weights)
    -> (z (B, T, D), attention weights (B, k, T, T) or None).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.attention = MultiHeadSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, z: torch.Tensor, need_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.norm1(z), need_weights)
        z = z + self.dropout(attended)  # equation 2
        z = z + self.dropout(self.ffn(self.norm2(z)))  # equation 3
        return z, weights


def _init_weights(module: nn.Module) -> None:
    """timm's default initialisation (init_weights_vit_timm): truncated N(0, 0.02) for every
    Linear, zero biases, LayerNorm 1 and 0. (The paper's JAX code: Xavier-uniform matrices,
    a zero head; ``../theory.md``.)"""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# 4. The model: patch embedding, [CLS], positions, L layers, the head (Equations 1-4)
# --------------------------------------------------------------------------------------


def _check_images(cfg: ViTConfig, images) -> None:
    """The door of the model: a float (B, C, H, W) batch of the configured size, once."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 \
            or not images.is_floating_point():
        raise ValueError(f"images: expected a float tensor (B, C, H, W), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} "
                         f"{tuple(getattr(images, 'shape', ()))}")
    size, expected = tuple(images.shape[-2:]), as_pair(cfg.image_size)
    if images.shape[1] != cfg.in_channels:
        raise ValueError(f"images: expected {cfg.in_channels} channels (config.in_channels), "
                         f"got {images.shape[1]} in shape {tuple(images.shape)}")
    if size != expected:
        patch = as_pair(cfg.patch_size)
        fix = ("" if size[0] % patch[0] or size[1] % patch[1]
               else f"; call model.set_image_size({size}) to resample the positions (Sec. 3.2)")
        raise ValueError(f"images: expected H, W = {expected} (config.image_size, the grid the "
                         f"position embeddings were made for, patches {patch}), got {size}{fix}")


class ViT(nn.Module):
    """The Vision Transformer (Section 3.1, Figure 1):

        z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos     E in R^{(P^2 C) x D}       (1)
        z_l = encoder layer l (z_{l-1}),  l = 1..L                                    (2, 3)
        y   = LN(z_L^0)                                                               (4)
        logits = y W_head + b

    ``patch_embed`` is E as an nn.Linear on the flattened patches (``patchify``), Equation 1
    as written, rather than timm's and transformers' stride-P Conv2d: the two are the same
    map (the conv weight is E reshaped to (D, C, P_h, P_w), what the ports do), and the
    linear form shares its state dict with the L2 model. ``pool="mean"`` averages the patch
    tokens z_L^1..N and applies the final LayerNorm AFTER the mean, as timm's
    global_pool="avg" (its fc_norm); the paper's JAX code normalises before.

    forward(images (B, C, H, W), return_attention=False) -> logits (B, num_classes), or
    features (B, D) when num_classes == 0; with return_attention=True, (that, the attention
    weights of every layer: a tuple of L tensors (B, k, 1+N, 1+N), from the eager path).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        patch_h, patch_w = as_pair(config.patch_size)
        self.patch_embed = nn.Linear(config.in_channels * patch_h * patch_w, config.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model))  # x_class
        self.position_embedding = nn.Parameter(  # E_pos: one learned row per token
            torch.zeros(1, 1 + config.num_patches, config.d_model))
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.head = (nn.Linear(config.d_model, config.num_classes) if config.num_classes
                     else nn.Identity())
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def forward_features(self, images: torch.Tensor, return_attention: bool = False):
        """The encoder: images (B, C, H, W) -> tokens z_L (B, 1 + N, D), token 0 = [CLS].

        With pool="token" the final LayerNorm is applied (Equation 4 on every token, as
        timm); with pool="mean" it comes after the mean (``forward_head``), so these are
        the last layer's outputs, as timm's forward_features.
        Returns: tokens, or (tokens, attention weights per layer) with return_attention.
        """
        _check_images(self.config, images)
        tokens = self.patch_embed(patchify(images, self.config.patch_size))  # (B, N, D)
        cls = self.cls_token.expand(images.shape[0], -1, -1)  # (B, 1, D)
        z = self.dropout(torch.cat([cls, tokens], dim=1) + self.position_embedding)  # z_0 (1)
        attentions = []
        for layer in self.layers:
            z, weights = layer(z, return_attention)
            attentions.append(weights)
        if self.config.pool == "token":
            z = self.final_norm(z)  # LN of equation 4
        return (z, tuple(attentions)) if return_attention else z

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1 + N, D) from ``forward_features`` -> logits (B, K) or features (B, D).

        pool="token": y = LN(z_L^0), the [CLS] token (Equation 4; LN already applied);
        pool="mean":  y = LN(mean_i z_L^i) over the N patch tokens (timm's "avg" + fc_norm).
        """
        if self.config.pool == "token":
            pooled = tokens[:, 0]  # (B, D)
        else:
            pooled = self.final_norm(tokens[:, 1:].mean(dim=1))  # (B, D)
        return self.head(pooled)

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        if return_attention:
            tokens, attentions = self.forward_features(images, return_attention=True)
            return self.forward_head(tokens), attentions
        return self.forward_head(self.forward_features(images))

    def set_image_size(self, image_size: int | tuple[int, int]) -> ViT:
        """Run at another resolution (Section 3.2): the same patches, so a longer or shorter
        sequence; the position embeddings of the patch grid are resampled by 2-D bicubic
        interpolation (``resample_position_embeddings``), [CLS]'s row kept.

        Replaces the ``position_embedding`` parameter (build the optimizer afterwards).
        Returns: self, with config.image_size updated.
        """
        new_config = replace(self.config, image_size=image_size)  # checks divisibility
        resampled = resample_position_embeddings(self.position_embedding.detach(),
                                                 new_config.grid_size, self.config.grid_size)
        self.position_embedding = nn.Parameter(
            resampled, requires_grad=self.position_embedding.requires_grad)
        self.config = new_config
        return self


# --------------------------------------------------------------------------------------
# 5. Fine-tuning at a higher resolution (Section 3.2)
# --------------------------------------------------------------------------------------


def resample_position_embeddings(pos: torch.Tensor, new_grid: tuple[int, int],
                                 old_grid: tuple[int, int] | None = None,
                                 num_prefix_tokens: int = 1) -> torch.Tensor:
    """"We perform 2D interpolation of the pre-trained position embeddings, according to
    their location in the original image" (Section 3.2).

    The rows of the patch grid, seen as a (D, G_h, G_w) image, are resized to new_grid by
    bicubic interpolation (antialiased when shrinking, align_corners=False); the prefix
    rows ([CLS]) are kept. timm's resample_abs_pos_embed with its defaults computes the
    same (it rounds through float32; here float64 stays float64).
    Inputs:  pos (1, prefix + G_h G_w, D); new_grid, old_grid (G_h, G_w) (default: square).
    Returns: (1, prefix + G'_h G'_w, D), pos's dtype.
    """
    new_grid = as_pair(new_grid)
    prefix, grid = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    if old_grid is None:
        side = math.isqrt(grid.shape[1])
        old_grid = (side, side)
    old_grid = as_pair(old_grid)
    if old_grid[0] * old_grid[1] != grid.shape[1]:
        raise ValueError(f"resample_position_embeddings: {grid.shape[1]} grid rows do not "
                         f"form old_grid {old_grid}")
    if new_grid == old_grid:
        return pos
    work = grid if grid.dtype in (torch.float32, torch.float64) else grid.float()
    image = work.reshape(1, *old_grid, -1).permute(0, 3, 1, 2)  # (1, D, G_h, G_w)
    image = F.interpolate(image, size=new_grid, mode="bicubic", align_corners=False,
                          antialias=True)  # (1, D, G'_h, G'_w)
    grid = image.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1]).to(pos.dtype)  # (1, N', D)
    return torch.cat([prefix, grid], dim=1)


# --------------------------------------------------------------------------------------
# 6. What the model attends to: attention rollout (Abnar & Zuidema 2020; Figure 6)
# --------------------------------------------------------------------------------------


def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """How much each input token flows into each output token through all layers:

        Abar_l = mean over heads of A_l                        (B, T, T)
        Ahat_l = (Abar_l + I) / rowsum(Abar_l + I)             the residual path, renormalised
        R      = Ahat_L Ahat_{L-1} ... Ahat_1                  row i: output token i

    Inputs:  attentions, one (B, k, T, T) per layer, first layer first (what
             ``model(images, return_attention=True)`` returns).
    Returns: R (B, T, T); each row sums to 1.
    """
    rollout = None
    for weights in attentions:
        averaged = weights.mean(dim=1)  # (B, T, T)
        eye = torch.eye(averaged.shape[-1], dtype=averaged.dtype, device=averaged.device)
        mixed = averaged + eye  # the residual connection: the token keeps itself
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        rollout = mixed if rollout is None else mixed @ rollout  # later layers on the left
    return rollout


def cls_attention_map(rollout: torch.Tensor, grid_size: tuple[int, int],
                      image_size: int | tuple[int, int]) -> torch.Tensor:
    """The [CLS] row of a (B, T, T) attention or rollout matrix, spread over the image for
    drawing: row 0, columns 1..N (the patches) -> (B, G_h, G_w) -> bilinear upsampling to
    (H, W) -> divided by its maximum per image, so values lie in [0, 1].
    Returns: (B, H, W).
    """
    grid = rollout[:, 0, 1:].reshape(rollout.shape[0], 1, *as_pair(grid_size))  # (B,1,Gh,Gw)
    heat = F.interpolate(grid, size=as_pair(image_size), mode="bilinear",
                         align_corners=False)[:, 0]  # (B, H, W)
    return heat / heat.amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(heat.dtype).tiny)
