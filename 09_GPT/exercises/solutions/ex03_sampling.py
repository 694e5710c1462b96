"""Exercise 03 (reference solution): temperature, top-k and top-p sampling.

The task text is in ``09_GPT/exercises/03_sampling.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def top_k_filter(logits, k: int):
    """Keep every logit >= the k-th largest of its row (ties survive); -inf elsewhere.

    Inputs: logits (B, V); k >= 1. Returns (B, V) float64.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k must be an int >= 1; got {k!r}")
    k = min(int(k), logits.shape[-1])
    kth = np.sort(logits, axis=-1)[..., -k][..., None]  # (B, 1): the k-th largest
    return np.where(logits >= kth, logits, -np.inf)


def top_p_filter(logits, p: float):
    """Keep the smallest set of most probable tokens whose probability reaches p.

    Inputs: logits (B, V); 0 < p <= 1. Returns (B, V) float64.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; got {p!r}")
    order = np.argsort(-logits, axis=-1, kind="stable")  # (B, V): most probable first
    ranked = np.take_along_axis(logits, order, axis=-1)
    probs = np.exp(ranked - ranked[..., :1])
    probs /= probs.sum(axis=-1, keepdims=True)
    mass_before = np.cumsum(probs, axis=-1) - probs  # mass of the tokens ranked above
    keep_ranked = mass_before < p  # the first token always (mass_before = 0)
    keep = np.zeros_like(keep_ranked)
    np.put_along_axis(keep, order, keep_ranked, axis=-1)
    return np.where(keep, logits, -np.inf)


def sample_next(logits, rng: np.random.Generator, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None):
    """One token per row: temperature, then top-k, then top-p, then a draw.

    Inputs: logits (B, V); rng; temperature > 0. Returns (B,) int64.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    probs = np.exp(z - z.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    draws = rng.random((probs.shape[0], 1))
    cdf = np.cumsum(probs, axis=-1)
    ids = (cdf < draws).sum(axis=-1)  # first index whose cumulative mass exceeds the draw
    return np.minimum(ids, probs.shape[-1] - 1).astype(np.int64)
