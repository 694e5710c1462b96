"""Exercise 03 (starter): gradient clipping by global norm and by value.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 06_LSTM_GRU/exercises --solutions my_solutions -k ex03

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``06_LSTM_GRU/exercises/03_gradient_clipping.md``.
Use NumPy only. Return NEW arrays; leave the inputs unchanged.
"""

from __future__ import annotations

import numpy as np


def _as_list(grads) -> list[np.ndarray]:
    """grads as a list of float arrays, or a TypeError saying what is expected."""
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
        raise TypeError("grads must be a list (or tuple) of arrays, one per parameter")
    return [np.asarray(g, dtype=np.float64) for g in grads]


def global_grad_norm(grads, norm_type: float = 2.0) -> float:
    """The norm of all gradients together, as if they were one long vector.

    Inputs:  grads - list of arrays (any shapes); norm_type - 2.0 or np.inf.
    Returns: ||g||_2 = sqrt(sum of all squares), or ||g||_inf = the largest |entry|.
    """
    raise NotImplementedError("global_grad_norm: sqrt of the sum of all squares (2), or the "
                              "largest absolute entry (inf); ValueError for other norm types")


def clip_grad_norm(grads, max_norm: float, norm_type: float = 2.0):
    """Scale every gradient by the same factor min(1, max_norm / (||g|| + 1e-6)).

    Inputs:  grads - list of arrays; max_norm tau >= 0; norm_type - 2.0 or np.inf.
    Returns: (clipped - list of new arrays, the same shapes; the norm before clipping).
    """
    raise NotImplementedError("clip_grad_norm: one factor min(1, tau / (norm + 1e-6)) for "
                              "every array; ValueError for max_norm < 0")


def clip_grad_value(grads, clip_value: float) -> list[np.ndarray]:
    """Clamp every entry of every gradient to [-clip_value, clip_value].

    Inputs:  grads - list of arrays; clip_value tau >= 0.
    Returns: list of new arrays, the same shapes.
    """
    raise NotImplementedError("clip_grad_value: np.clip each array to [-tau, tau]; "
                              "ValueError for a negative tau")


def angle_between(grads_a, grads_b) -> float:
    """The angle, in degrees, between two gradients seen as two long vectors.

    Inputs:  grads_a, grads_b - lists of arrays with the same shapes, neither all zero.
    Returns: arccos(<a, b> / (||a|| ||b||)) in [0, 180].
    """
    raise NotImplementedError("angle_between: flatten and concatenate each, then arccos of "
                              "the cosine, in degrees")
