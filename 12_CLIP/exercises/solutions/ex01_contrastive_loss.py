"""Exercise 01 (reference solution): CLIP's symmetric contrastive loss (Figure 3).

The task text is in ``12_CLIP/exercises/01_contrastive_loss.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _normalise(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def clip_logits(image_embeds, text_embeds, logit_scale: float, max_scale: float = 100.0):
    """min(exp(logit_scale), max_scale) * cos(image_i, text_j): (N_images, N_texts)."""
    scale = min(float(np.exp(logit_scale)), max_scale)
    return scale * _normalise(image_embeds) @ _normalise(text_embeds).T


def _cross_entropy_with_diagonal(logits) -> float:
    """Mean over rows of -log softmax(row)[i], the true pair on the diagonal."""
    top = logits.max(axis=1, keepdims=True)
    log_sum_exp = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_sum_exp - np.diag(logits)))


def clip_loss(image_embeds, text_embeds, logit_scale: float, max_scale: float = 100.0) -> float:
    """(CE over the rows + CE over the columns) / 2, the true pairs on the diagonal."""
    logits = clip_logits(image_embeds, text_embeds, logit_scale, max_scale)
    if logits.shape[0] != logits.shape[1]:
        raise ValueError(f"need as many images as captions; got {logits.shape}")
    return 0.5 * (_cross_entropy_with_diagonal(logits) + _cross_entropy_with_diagonal(logits.T))
