"""Exercise 02 (starter): causal self-attention with left padding.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 09_GPT/exercises --solutions my_solutions -k ex02

The task is in ``09_GPT/exercises/02_causal_attention.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)


def causal_attention(q, k, v, attention_mask=None):
    """Masked scaled dot-product attention.

    Inputs:  q, k, v (B, h, T, d_k); attention_mask (B, T) 1 real / 0 padding, or None
    Returns: (B, h, T, d_k); zeros on query rows that see no key
    """
    raise NotImplementedError("causal_attention: scores, causal + padding mask, softmax, @ v")


def position_ids(attention_mask):
    """(B, T) 1/0 mask -> (B, T) int64 positions: real tokens 0, 1, 2, ...; padding 0."""
    raise NotImplementedError("position_ids: count the real tokens from 0")
