"""Exercise 03 (reference solution): the masked-LM corruption of Section 3.1.

Each eligible position is chosen with probability p; a chosen position becomes [MASK] with
probability 0.8, a uniformly random token with probability 0.1, and stays as it is with
probability 0.1. Labels keep the original id where chosen, -100 elsewhere.

The task text is in ``08_BERT/exercises/03_masking.md``. NumPy only.
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
    ids = np.array(input_ids, dtype=np.int64)  # a copy: the input is left alone
    special = np.asarray(special_mask, dtype=bool)
    if ids.shape != special.shape:
        raise ValueError(f"input_ids {ids.shape} and special_mask {special.shape} differ")
    chosen = (rng.random(ids.shape) < p) & ~special
    labels = np.where(chosen, ids, IGNORE_INDEX)
    u = rng.random(ids.shape)
    to_mask = chosen & (u < 0.8)
    to_random = chosen & (u >= 0.8) & (u < 0.9)  # the last 10 %: unchanged
    ids[to_mask] = mask_id
    ids[to_random] = rng.integers(0, vocab_size, size=int(to_random.sum()))
    return ids, labels
