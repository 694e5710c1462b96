"""Exercise 04 (starter): from a padding mask to attention.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 08_BERT/exercises --solutions my_solutions -k ex04

The task is in ``08_BERT/exercises/04_attention_mask.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def extended_attention_mask(attention_mask, dtype=np.float64) -> np.ndarray:
    """(B, T) 1/0 -> (B, 1, 1, T) additive mask: 0 for keep, finfo(dtype).min for padding."""
    raise NotImplementedError("extended_attention_mask: np.where over a (B, 1, 1, T) view")


def masked_attention(q, k, v, attention_mask) -> np.ndarray:
    """softmax(q k^T / sqrt(d_k) + mask) v for every head.

    Inputs:  q, k, v (B, A, T, d_k); attention_mask (B, T) of 1/0
    Returns: (B, A, T, d_k)
    """
    raise NotImplementedError("masked_attention: scores, + extended mask, stable softmax, @ v")
