"""Exercise 04 (reference solution): CLIP's parameter count, tower by tower.

The task text is in ``12_CLIP/exercises/04_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def _blocks(width: int, layers: int) -> int:
    """Pre-LN blocks with MLP width 4D: qkv 3D^2 + 3D, out D^2 + D, MLP 8D^2 + 5D, norms 4D."""
    return layers * (12 * width * width + 13 * width)


def vision_tower_count(image_size: int, patch_size: int, width: int, layers: int,
                       embed_dim: int, channels: int = 3) -> int:
    """Patch embedding (no bias), [CLS], positions, ln_pre, blocks, ln_post, projection."""
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}")
    n_patches = (image_size // patch_size) ** 2
    return (channels * patch_size * patch_size * width + width + (n_patches + 1) * width
            + 2 * width + _blocks(width, layers) + 2 * width + width * embed_dim)


def text_tower_count(vocab_size: int, context_length: int, width: int, layers: int,
                     embed_dim: int) -> int:
    """Token and position embeddings, blocks, final layer norm, projection (no bias)."""
    return ((vocab_size + context_length) * width + _blocks(width, layers) + 2 * width
            + width * embed_dim)


def clip_parameter_count(image_size: int, patch_size: int, vision_width: int,
                         vision_layers: int, vocab_size: int, context_length: int,
                         text_width: int, text_layers: int, embed_dim: int) -> int:
    """Both towers and the logit scale."""
    return (vision_tower_count(image_size, patch_size, vision_width, vision_layers, embed_dim)
            + text_tower_count(vocab_size, context_length, text_width, text_layers, embed_dim)
            + 1)
