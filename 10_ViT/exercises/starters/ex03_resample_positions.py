"""Exercise 03 (starter): bilinear resampling of position embeddings.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 10_ViT/exercises --solutions my_solutions -k ex03

The task is in ``10_ViT/exercises/03_resample_positions.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)


def resize_bilinear(grid_values, new_size):
    """(g_h, g_w, D) -> (g'_h, g'_w, D), PyTorch's bilinear with align_corners=False."""
    raise NotImplementedError("resize_bilinear: two neighbours per axis, half-pixel centres")


def resample_positions(position_embedding, old_grid, new_grid, num_prefix_tokens: int = 1):
    """(prefix + g_h g_w, D) -> (prefix + g'_h g'_w, D): the prefix rows unchanged."""
    raise NotImplementedError("resample_positions: split off [CLS], resize the grid, join")
