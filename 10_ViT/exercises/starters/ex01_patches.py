"""Exercise 01 (starter): an image as a sequence of patches.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 10_ViT/exercises --solutions my_solutions -k ex01

The task is in ``10_ViT/exercises/01_patches.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)


def patchify(images, patch_size):
    """(B, C, H, W) -> (B, N, C * P_h * P_w), patches row by row."""
    raise NotImplementedError("patchify: reshape into (grid, patch) per side, transpose, flatten")


def unpatchify(patches, image_size, patch_size, channels: int):
    """(B, N, C * P_h * P_w) -> (B, C, H, W), the inverse of patchify."""
    raise NotImplementedError("unpatchify: undo patchify's reshapes in reverse order")


def patch_embedding(images, weight, bias, patch_size):
    """Flattened patches times the flattened (D, C, P_h, P_w) weight, plus bias: (B, N, D)."""
    raise NotImplementedError("patch_embedding: patchify, then one matrix product")
