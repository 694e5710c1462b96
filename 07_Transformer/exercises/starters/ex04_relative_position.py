"""Exercise 04 (starter): relative position inside the sinusoidal encoding.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 07_Transformer/exercises --solutions my_solutions -k ex04

The helper ``_check_d_model`` is given: use it.

The task, the maths and hints are in ``07_Transformer/exercises/04_relative_position.md``.
NumPy only. PE[pos, 2i] = sin(omega_i pos), PE[pos, 2i+1] = cos(omega_i pos),
omega_i = 10000^(-2i / d_model).
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
    raise NotImplementedError("frequencies: 10000 ** (-(even indices) / d_model)")


def sinusoidal_encoding(max_len: int, d_model: int) -> np.ndarray:
    """PE (max_len, d_model): PE[pos, 2i] = sin(omega_i pos), PE[pos, 2i+1] = cos(omega_i pos)."""
    raise NotImplementedError("sinusoidal_encoding: an outer product of positions and "
                              "frequencies, sin into the even columns, cos into the odd ones")


def shift_matrix(k: int, d_model: int) -> np.ndarray:
    """M_k (d_model, d_model) with PE[pos + k] = M_k @ PE[pos] for every pos (k may be < 0)."""
    raise NotImplementedError("shift_matrix: one 2 x 2 rotation block per frequency, from "
                              "the angle-addition formulas")


def fit_shift_matrix(pe, k: int) -> np.ndarray:
    """The matrix M that best maps PE[pos] to PE[pos + k] over all available pos, by least
    squares (np.linalg.lstsq): no formula, only the table.

    Inputs:  pe (max_len, d_model); k >= 1 with k < max_len
    Returns: M (d_model, d_model) minimising sum_pos ||M PE[pos] - PE[pos + k]||^2
    """
    raise NotImplementedError("fit_shift_matrix: rows X = pe[:-k], Y = pe[k:]; solve "
                              "Y = X M^T with np.linalg.lstsq")
