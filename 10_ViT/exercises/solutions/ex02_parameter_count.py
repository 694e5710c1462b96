"""Exercise 02 (reference solution): a ViT's parameter count as a formula.

The task text is in ``10_ViT/exercises/02_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _block(d_model: int, d_ff: int) -> int:
    """qkv 3D^2 + 3D, output D^2 + D, MLP 2DF + F + D, two layer norms 4D."""
    D, F = d_model, d_ff
    return (3 * D * D + 3 * D) + (D * D + D) + (D * F + F) + (F * D + D) + 4 * D


def vit_parameter_count(image_size, patch_size, d_model: int, n_layers: int,
                        num_classes: int, d_ff: int | None = None, in_channels: int = 3,
                        class_token: bool = True) -> int:
    """Parameters of a ViT: patch embedding, [CLS], positions, blocks, final norm, head."""
    (H, W), (p_h, p_w) = _pair(image_size), _pair(patch_size)
    if H % p_h or W % p_w:
        raise ValueError(f"image {H}x{W} is not divisible by the patch {p_h}x{p_w}")
    D, d_ff = d_model, 4 * d_model if d_ff is None else d_ff
    n_patches = (H // p_h) * (W // p_w)
    tokens = n_patches + (1 if class_token else 0)
    patch_embed = p_h * p_w * in_channels * D + D
    head = D * num_classes + num_classes if num_classes else 0
    return (patch_embed + (D if class_token else 0) + tokens * D
            + n_layers * _block(D, d_ff) + 2 * D + head)


def share_in_blocks(image_size, patch_size, d_model: int, n_layers: int,
                    num_classes: int) -> float:
    """The fraction of all parameters inside the encoder blocks (F = 4D)."""
    total = vit_parameter_count(image_size, patch_size, d_model, n_layers, num_classes)
    return n_layers * _block(d_model, 4 * d_model) / total
