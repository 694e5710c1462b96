"""Exercise 03 (reference solution): bilinear resampling of position embeddings.

The task text is in ``10_ViT/exercises/03_resample_positions.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _neighbours(n_in: int, n_out: int):
    """For each output index: (lower input index, upper input index, weight of the upper)."""
    u = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5  # align_corners=False
    u = np.maximum(u, 0.0)
    lower = np.minimum(np.floor(u).astype(np.int64), n_in - 1)
    upper = np.minimum(lower + 1, n_in - 1)
    return lower, upper, u - lower


def resize_bilinear(grid_values, new_size):
    """(g_h, g_w, D) -> (g'_h, g'_w, D), PyTorch's bilinear with align_corners=False."""
    values = np.asarray(grid_values, dtype=np.float64)
    new_h, new_w = (new_size, new_size) if np.isscalar(new_size) else new_size
    top, bottom, w_row = _neighbours(values.shape[0], int(new_h))
    rows = (values[top] * (1 - w_row)[:, None, None]
            + values[bottom] * w_row[:, None, None])  # (g'_h, g_w, D)
    left, right, w_col = _neighbours(values.shape[1], int(new_w))
    return rows[:, left] * (1 - w_col)[None, :, None] + rows[:, right] * w_col[None, :, None]


def resample_positions(position_embedding, old_grid, new_grid, num_prefix_tokens: int = 1):
    """(prefix + g_h g_w, D) -> (prefix + g'_h g'_w, D): the prefix rows unchanged."""
    table = np.asarray(position_embedding, dtype=np.float64)
    (g_h, g_w), (n_h, n_w) = old_grid, new_grid
    prefix, patches = table[:num_prefix_tokens], table[num_prefix_tokens:]
    if patches.shape[0] != g_h * g_w:
        raise ValueError(f"{patches.shape[0]} patch rows do not fill a {g_h}x{g_w} grid")
    grid = patches.reshape(g_h, g_w, -1)  # row-major patch order
    resized = resize_bilinear(grid, (n_h, n_w)).reshape(n_h * n_w, -1)
    return np.concatenate([prefix, resized], axis=0)
