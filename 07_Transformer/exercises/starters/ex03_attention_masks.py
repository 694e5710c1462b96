"""Exercise 03 (starter): building attention masks, and what each position sees.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 07_Transformer/exercises --solutions my_solutions -k ex03

The helper ``_check_lengths`` is given: use it.

The task and hints are in ``07_Transformer/exercises/03_attention_masks.md``. NumPy only.
Convention (torch's): a boolean mask entry True means "may NOT attend".
"""

from __future__ import annotations

import numpy as np


def _check_lengths(lengths, T: int) -> np.ndarray:
    """lengths as an int array (B,) with 1 <= length <= T, or ValueError."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be a 1-D array of ints (B,); got {lengths!r}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"every length must be in 1..T={T}; got {lengths.tolist()}")
    return lengths


def causal_mask(T: int) -> np.ndarray:
    """(T, T) bool, True above the diagonal: query i may not attend key j > i."""
    raise NotImplementedError("causal_mask: compare np.arange(T) as a column with itself "
                              "as a row")


def padding_mask(lengths, T: int) -> np.ndarray:
    """(B, T) bool, True at the padding positions t >= lengths[b] (right padding)."""
    raise NotImplementedError("padding_mask: positions compared with the lengths, broadcast")


def combined_mask(lengths, T: int, causal: bool = False) -> np.ndarray:
    """(B, T, T) bool: True where query i of example b may not attend key j.

    Masked when key j is padding (j >= lengths[b]) or, if causal, when j > i.
    """
    raise NotImplementedError("combined_mask: the padding mask as (B, 1, T), OR the causal "
                              "mask as (1, T, T)")


def visible_keys(mask, b: int, i: int) -> list[int]:
    """The key positions query i of example b may attend, in increasing order.

    Inputs: mask (B, T_q, T_k) bool (True = masked out); b, i indices
    """
    raise NotImplementedError("visible_keys: the positions where the row is False")
