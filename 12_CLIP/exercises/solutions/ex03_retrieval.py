"""Exercise 03 (reference solution): retrieval recall@k, image -> text and text -> image.

A true match counts as found at rank r = 1 + (candidates strictly more similar): ties are
resolved in its favour. The task text is in ``12_CLIP/exercises/03_retrieval.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def recall_at_k(similarity, k: int, image_of_caption=None):
    """(recall image -> text, recall text -> image) at k."""
    sim = np.asarray(similarity, dtype=np.float64)
    n_images, n_captions = sim.shape
    owner = (np.arange(n_captions) if image_of_caption is None
             else np.asarray(image_of_caption, dtype=np.int64))
    if owner.shape != (n_captions,) or owner.min() < 0 or owner.max() >= n_images:
        raise ValueError("image_of_caption must give an image index for every caption")
    # text -> image: the true image's score against every image, per caption
    true_image = sim[owner, np.arange(n_captions)]  # (N_captions,)
    rank_t2i = 1 + (sim > true_image[None, :]).sum(axis=0)
    # image -> text: the best of the image's own captions
    mine = owner[None, :] == np.arange(n_images)[:, None]  # (N_images, N_captions)
    best_own = np.where(mine, sim, -np.inf).max(axis=1)  # (N_images,)
    rank_i2t = 1 + (np.where(mine, -np.inf, sim) > best_own[:, None]).sum(axis=1)
    has_caption = mine.any(axis=1)
    return float(np.mean(rank_i2t[has_caption] <= k)), float(np.mean(rank_t2i <= k))
