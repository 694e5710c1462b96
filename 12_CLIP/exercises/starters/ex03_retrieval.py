"""Exercise 03 (starter): retrieval recall@k, image -> text and text -> image.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 12_CLIP/exercises --solutions my_solutions -k ex03

The task is in ``12_CLIP/exercises/03_retrieval.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)


def recall_at_k(similarity, k: int, image_of_caption=None):
    """(recall image -> text, recall text -> image) at k."""
    raise NotImplementedError("recall_at_k: rank of the true match in each direction")
