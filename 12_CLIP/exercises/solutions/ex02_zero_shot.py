"""Exercise 02 (reference solution): zero-shot classifier weights with prompt ensembling.

The task text is in ``12_CLIP/exercises/02_zero_shot.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _normalise(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def zero_shot_weights(encode_text, class_names, templates):
    """(K, E): per class, the normalised mean of the normalised template embeddings."""
    if not class_names or not templates:
        raise ValueError("need at least one class name and one template")
    weights = []
    for name in class_names:
        sentences = [template.format(name) for template in templates]
        embeds = _normalise(encode_text(sentences))  # (M, E)
        weights.append(embeds.mean(axis=0))
    return _normalise(np.stack(weights))


def zero_shot_predict(image_embeds, weights, logit_scale: float = float(np.log(100))):
    """Probabilities (N, K) = softmax(scale * normalise(images) @ weights^T), and labels (N,)."""
    logits = np.exp(logit_scale) * _normalise(image_embeds) @ np.asarray(weights).T
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, probs.argmax(axis=1)
