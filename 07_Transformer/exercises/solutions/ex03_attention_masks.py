"""Exercise 03 (reference solution): building attention masks, and what each position sees.

Convention (torch's, used by nn.MultiheadAttention and nn.Transformer): a boolean mask
entry True means "may NOT attend" (masked out).

    causal:   query i may not see key j > i (the future)          (T, T), True above diagonal
    padding:  no query may see a padding key j >= length_b        (B, T)
    combined: masked if either says so                            (B, T, T)

Query i of example b then attends exactly the keys j with j < length_b (and j <= i when
causal). A padding QUERY still attends the real keys: its output is computed and ignored
later by the loss; masking keys, not queries, is what keeps every softmax row non-empty.

The task text is in ``07_Transformer/exercises/03_attention_masks.md``. NumPy only.
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
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be an int >= 1; got {T!r}")
    i = np.arange(T)[:, None]  # (T, 1) queries
    j = np.arange(T)[None, :]  # (1, T) keys
    return j > i


def padding_mask(lengths, T: int) -> np.ndarray:
    """(B, T) bool, True at the padding positions t >= lengths[b] (right padding)."""
    lengths = _check_lengths(lengths, T)
    return np.arange(T)[None, :] >= lengths[:, None]


def combined_mask(lengths, T: int, causal: bool = False) -> np.ndarray:
    """(B, T, T) bool: True where query i of example b may not attend key j.

    Masked when key j is padding (j >= lengths[b]) or, if causal, when j > i.
    """
    mask = np.broadcast_to(padding_mask(lengths, T)[:, None, :], (len(lengths), T, T))
    if causal:
        mask = mask | causal_mask(T)[None]
    return mask.copy()


def visible_keys(mask, b: int, i: int) -> list[int]:
    """The key positions query i of example b may attend, in increasing order.

    Inputs: mask (B, T_q, T_k) bool (True = masked out); b, i indices
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be (B, T_q, T_k); got shape {mask.shape}")
    return [int(j) for j in np.flatnonzero(~mask[b, i])]
