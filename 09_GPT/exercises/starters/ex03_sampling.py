"""Exercise 03 (starter): temperature, top-k and top-p sampling.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 09_GPT/exercises --solutions my_solutions -k ex03

The task is in ``09_GPT/exercises/03_sampling.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def top_k_filter(logits, k: int):
    """Keep every logit >= the k-th largest of its row (ties survive); -inf elsewhere.

    Inputs: logits (B, V); k >= 1. Returns (B, V) float64.
    """
    raise NotImplementedError("top_k_filter: find the k-th largest per row")


def top_p_filter(logits, p: float):
    """Keep the smallest set of most probable tokens whose probability reaches p.

    Inputs: logits (B, V); 0 < p <= 1. Returns (B, V) float64.
    """
    raise NotImplementedError("top_p_filter: sort, accumulate, keep the nucleus")


def sample_next(logits, rng: np.random.Generator, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None):
    """One token per row: temperature, then top-k, then top-p, then a draw.

    Inputs: logits (B, V); rng; temperature > 0. Returns (B,) int64.
    """
    raise NotImplementedError("sample_next: temper, filter, softmax, draw with rng")
