"""Exercise 04 (reference solution): attention rollout (Abnar & Zuidema 2020).

The task text is in ``10_ViT/exercises/04_attention_rollout.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def attention_rollout(attentions):
    """List of L (h, T, T) attention probabilities -> (T, T) rollout R = A~_L ... A~_1."""
    if len(attentions) == 0:
        raise ValueError("attention_rollout needs at least one block's attention")
    rollout = None
    for block in attentions:
        probs = np.asarray(block, dtype=np.float64)
        if not np.allclose(probs.sum(-1), 1.0, atol=1e-6):
            raise ValueError("attention rows must sum to 1 (softmax probabilities)")
        mixed = 0.5 * (probs.mean(axis=0) + np.eye(probs.shape[-1]))  # heads averaged + residual
        rollout = mixed if rollout is None else mixed @ rollout  # later blocks on the left
    return rollout


def cls_map(rollout, grid):
    """Row 0 of the rollout over the patches, as a (g_h, g_w) map that sums to 1."""
    row = np.asarray(rollout, dtype=np.float64)[0, 1:]
    heat = row.reshape(grid)
    return heat / heat.sum()
