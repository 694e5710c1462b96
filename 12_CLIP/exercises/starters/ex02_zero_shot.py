"""Exercise 02 (starter): zero-shot classifier weights with prompt ensembling.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 12_CLIP/exercises --solutions my_solutions -k ex02

The task is in ``12_CLIP/exercises/02_zero_shot.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def zero_shot_weights(encode_text, class_names, templates):
    """(K, E): per class, the normalised mean of the normalised template embeddings."""
    raise NotImplementedError("zero_shot_weights: fill templates, encode, normalise, average")


def zero_shot_predict(image_embeds, weights, logit_scale: float = float(np.log(100))):
    """Probabilities (N, K) = softmax(scale * normalise(images) @ weights^T), and labels (N,)."""
    raise NotImplementedError("zero_shot_predict: cosine logits, softmax, arg-max")
