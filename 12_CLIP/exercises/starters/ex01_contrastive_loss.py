"""Exercise 01 (starter): CLIP's symmetric contrastive loss (Figure 3).

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 12_CLIP/exercises --solutions my_solutions -k ex01

The task is in ``12_CLIP/exercises/01_contrastive_loss.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)


def clip_logits(image_embeds, text_embeds, logit_scale: float, max_scale: float = 100.0):
    """min(exp(logit_scale), max_scale) * cos(image_i, text_j): (N_images, N_texts)."""
    raise NotImplementedError("clip_logits: normalise the rows, dot products, scale")


def clip_loss(image_embeds, text_embeds, logit_scale: float, max_scale: float = 100.0) -> float:
    """(CE over the rows + CE over the columns) / 2, the true pairs on the diagonal."""
    raise NotImplementedError("clip_loss: two cross-entropies against the diagonal, averaged")
