"""Exercise 04 (starter): CLIP's parameter count, tower by tower.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 12_CLIP/exercises --solutions my_solutions -k ex04

The task is in ``12_CLIP/exercises/04_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def vision_tower_count(image_size: int, patch_size: int, width: int, layers: int,
                       embed_dim: int, channels: int = 3) -> int:
    """Patch embedding (no bias), [CLS], positions, ln_pre, blocks, ln_post, projection."""
    raise NotImplementedError("vision_tower_count: add the parts of theory.md section 9")


def text_tower_count(vocab_size: int, context_length: int, width: int, layers: int,
                     embed_dim: int) -> int:
    """Token and position embeddings, blocks, final layer norm, projection (no bias)."""
    raise NotImplementedError("text_tower_count: add the parts of theory.md section 9")


def clip_parameter_count(image_size: int, patch_size: int, vision_width: int,
                         vision_layers: int, vocab_size: int, context_length: int,
                         text_width: int, text_layers: int, embed_dim: int) -> int:
    """Both towers and the logit scale."""
    raise NotImplementedError("clip_parameter_count: both towers + 1")
