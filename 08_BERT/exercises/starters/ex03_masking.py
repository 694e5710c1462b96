"""Exercise 03 (starter): the masked-LM corruption of Section 3.1.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 08_BERT/exercises --solutions my_solutions -k ex03

The task is in ``08_BERT/exercises/03_masking.md``. NumPy only; draw every random number
from ``rng``.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100


def mask_tokens(input_ids, special_mask, vocab_size: int, mask_id: int,
                rng: np.random.Generator, p: float = 0.15):
    """Corrupt ``input_ids`` for masked language modelling.

    Inputs:  input_ids (B, T) int; special_mask (B, T) bool (never chosen); vocab_size;
             mask_id; rng - np.random.Generator; p - chance to choose an eligible position
    Returns: (corrupted_ids (B, T) int64, labels (B, T) int64 with -100 where not chosen)
    """
    raise NotImplementedError("mask_tokens: choose with p, then 80 % [MASK], 10 % random, "
                              "10 % unchanged")
