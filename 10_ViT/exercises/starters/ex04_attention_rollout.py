"""Exercise 04 (starter): attention rollout (Abnar & Zuidema 2020).

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 10_ViT/exercises --solutions my_solutions -k ex04

The task is in ``10_ViT/exercises/04_attention_rollout.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)


def attention_rollout(attentions):
    """List of L (h, T, T) attention probabilities -> (T, T) rollout R = A~_L ... A~_1."""
    raise NotImplementedError("attention_rollout: average heads, add I, halve, multiply")


def cls_map(rollout, grid):
    """Row 0 of the rollout over the patches, as a (g_h, g_w) map that sums to 1."""
    raise NotImplementedError("cls_map: row 0 without [CLS], reshape, normalise")
