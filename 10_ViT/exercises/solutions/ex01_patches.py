"""Exercise 01 (reference solution): an image as a sequence of patches.

The task text is in ``10_ViT/exercises/01_patches.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _grid(height: int, width: int, patch_size) -> tuple[int, int, int, int]:
    p_h, p_w = _pair(patch_size)
    for side, length, patch in (("height", height, p_h), ("width", width, p_w)):
        if length % patch:
            raise ValueError(f"image {side} {length} is not divisible by the patch {side} "
                             f"{patch} ({length % patch} pixels left over)")
    return height // p_h, width // p_w, p_h, p_w


def patchify(images, patch_size):
    """(B, C, H, W) -> (B, N, C * P_h * P_w), patches row by row."""
    images = np.asarray(images)
    B, C, H, W = images.shape
    g_h, g_w, p_h, p_w = _grid(H, W, patch_size)
    x = images.reshape(B, C, g_h, p_h, g_w, p_w)  # split each side into (grid, patch)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, g_h, g_w, C, p_h, p_w)
    return x.reshape(B, g_h * g_w, C * p_h * p_w)  # (B, N, C P_h P_w)


def unpatchify(patches, image_size, patch_size, channels: int):
    """(B, N, C * P_h * P_w) -> (B, C, H, W), the inverse of patchify."""
    patches = np.asarray(patches)
    H, W = _pair(image_size)
    g_h, g_w, p_h, p_w = _grid(H, W, patch_size)
    x = patches.reshape(patches.shape[0], g_h, g_w, channels, p_h, p_w)
    return x.transpose(0, 3, 1, 4, 2, 5).reshape(patches.shape[0], channels, H, W)


def patch_embedding(images, weight, bias, patch_size):
    """Flattened patches times the flattened (D, C, P_h, P_w) weight, plus bias: (B, N, D)."""
    weight = np.asarray(weight)
    flat = weight.reshape(weight.shape[0], -1)  # (D, C P_h P_w)
    return patchify(images, patch_size) @ flat.T + np.asarray(bias)
