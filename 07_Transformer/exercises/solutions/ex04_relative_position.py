"""Exercise 04 (reference solution): relative position inside the sinusoidal encoding.

Vaswani et al. (Section 3.5) chose sinusoids because "for any fixed offset k, PE_{pos+k}
can be represented as a linear function of PE_pos". With the frequencies

    omega_i = 10000^(-2i / d_model),   i = 0 .. d_model/2 - 1,
    PE[pos, 2i] = sin(omega_i pos),    PE[pos, 2i+1] = cos(omega_i pos),

the angle-addition formulas give, for each pair (sin, cos) of columns,

    [sin(w (pos+k))]   [ cos(w k)  sin(w k)] [sin(w pos)]
    [cos(w (pos+k))] = [-sin(w k)  cos(w k)] [cos(w pos)]

a rotation by the angle w k that does not depend on pos. Stacking the d_model/2 blocks
on the diagonal gives M_k with PE[pos + k] = M_k PE[pos] for EVERY position: the shift is
linear, orthogonal (M_k M_k^T = I) and composes (M_a M_b = M_{a+b}). A linear layer can
therefore learn "attend k positions back" once, for all positions.

The task text is in ``07_Transformer/exercises/04_relative_position.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _check_d_model(d_model) -> int:
    """d_model as an even int >= 2, or ValueError (the encoding works in (sin, cos) pairs)."""
    if not isinstance(d_model, (int, np.integer)) or d_model < 2 or d_model % 2:
        raise ValueError(f"d_model must be an even int >= 2; got {d_model!r}")
    return int(d_model)


def frequencies(d_model: int) -> np.ndarray:
    """omega_i = 10000^(-2i / d_model) for i = 0 .. d_model/2 - 1; shape (d_model/2,)."""
    d_model = _check_d_model(d_model)
    return 10000.0 ** (-np.arange(0, d_model, 2) / d_model)


def sinusoidal_encoding(max_len: int, d_model: int) -> np.ndarray:
    """PE (max_len, d_model): PE[pos, 2i] = sin(omega_i pos), PE[pos, 2i+1] = cos(omega_i pos)."""
    if not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1; got {max_len!r}")
    angles = np.arange(max_len)[:, None] * frequencies(d_model)[None, :]  # (max_len, d/2)
    pe = np.empty((max_len, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


def shift_matrix(k: int, d_model: int) -> np.ndarray:
    """M_k (d_model, d_model) with PE[pos + k] = M_k @ PE[pos] for every pos (k may be < 0).

    Block-diagonal; block i, with a = omega_i k, is [[cos a, sin a], [-sin a, cos a]].
    """
    angle = frequencies(d_model) * k  # (d/2,)
    c, s = np.cos(angle), np.sin(angle)
    M = np.zeros((d_model, d_model))
    idx = np.arange(0, d_model, 2)
    M[idx, idx], M[idx, idx + 1] = c, s  # sin row: cos(wk) sin + sin(wk) cos
    M[idx + 1, idx], M[idx + 1, idx + 1] = -s, c  # cos row: -sin(wk) sin + cos(wk) cos
    return M


def fit_shift_matrix(pe, k: int) -> np.ndarray:
    """The matrix M that best maps PE[pos] to PE[pos + k] over all available pos, by least
    squares (np.linalg.lstsq): no formula, only the table.

    Inputs:  pe (max_len, d_model); k >= 1 with k < max_len
    Returns: M (d_model, d_model) minimising sum_pos ||M PE[pos] - PE[pos + k]||^2
    """
    pe = np.asarray(pe, dtype=np.float64)
    if pe.ndim != 2:
        raise ValueError(f"pe must be (max_len, d_model); got shape {pe.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k < pe.shape[0]:
        raise ValueError(f"k must be an int in 1..max_len-1 = {pe.shape[0] - 1}; got {k!r}")
    X, Y = pe[:-k], pe[k:]  # rows: PE[pos], PE[pos + k]
    # Y = X M^T  =>  M^T = lstsq(X, Y)
    M_T, *_ = np.linalg.lstsq(X, Y, rcond=None)
    return M_T.T
