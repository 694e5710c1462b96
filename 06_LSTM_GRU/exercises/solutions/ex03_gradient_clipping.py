"""Exercise 03 (reference solution): gradient clipping by global norm and by value.

theory.md 1.5. For gradients g_1 .. g_P of all P parameters of a model:

    global norm:  ||g|| = (sum_p sum_i |g_p,i|^q)^(1/q), q = 2 (or max_p,i |g_p,i| for q = inf)
    by norm:      g_p <- g_p * min(1, tau / (||g|| + 1e-6))    (one factor for ALL parameters)
    by value:     g_p,i <- clamp(g_p,i, -tau, tau)              (each number on its own)

Clipping by norm keeps the direction of the whole gradient; clipping by value does not.

The task text is in ``06_LSTM_GRU/exercises/03_gradient_clipping.md``. NumPy only.
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
    grads = _as_list(grads)
    if norm_type == np.inf:
        return float(max((np.abs(g).max(initial=0.0) for g in grads), default=0.0))
    if norm_type != 2.0:
        raise ValueError(f"norm_type must be 2.0 or np.inf; got {norm_type!r}")
    return float(np.sqrt(sum(np.sum(g * g) for g in grads)))


def clip_grad_norm(grads, max_norm: float, norm_type: float = 2.0):
    """Scale every gradient by the same factor min(1, max_norm / (||g|| + 1e-6)).

    Inputs:  grads - list of arrays; max_norm tau >= 0; norm_type - 2.0 or np.inf.
    Returns: (clipped - list of new arrays, the same shapes; the norm before clipping).
    """
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0; got {max_norm!r}")
    grads = _as_list(grads)
    total = global_grad_norm(grads, norm_type)
    factor = min(1.0, max_norm / (total + 1e-6))  # one factor: the direction is kept
    return [g * factor for g in grads], total


def clip_grad_value(grads, clip_value: float) -> list[np.ndarray]:
    """Clamp every entry of every gradient to [-clip_value, clip_value].

    Inputs:  grads - list of arrays; clip_value tau >= 0.
    Returns: list of new arrays, the same shapes.
    """
    if not clip_value >= 0:
        raise ValueError(f"clip_value must be >= 0; got {clip_value!r}")
    return [np.clip(g, -clip_value, clip_value) for g in _as_list(grads)]


def angle_between(grads_a, grads_b) -> float:
    """The angle, in degrees, between two gradients seen as two long vectors.

    Inputs:  grads_a, grads_b - lists of arrays with the same shapes, neither all zero.
    Returns: arccos(<a, b> / (||a|| ||b||)) in [0, 180].
    """
    a = np.concatenate([g.ravel() for g in _as_list(grads_a)])
    b = np.concatenate([g.ravel() for g in _as_list(grads_b)])
    if a.shape != b.shape:
        raise ValueError(f"the two gradients have {a.size} and {b.size} entries")
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        raise ValueError("the angle to an all-zero gradient is undefined")
    return float(np.degrees(np.arccos(np.clip(a @ b / norms, -1.0, 1.0))))
