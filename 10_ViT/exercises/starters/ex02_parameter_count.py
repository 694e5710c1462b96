"""Exercise 02 (starter): a ViT's parameter count as a formula.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 10_ViT/exercises --solutions my_solutions -k ex02

The task is in ``10_ViT/exercises/02_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def vit_parameter_count(image_size, patch_size, d_model: int, n_layers: int,
                        num_classes: int, d_ff: int | None = None, in_channels: int = 3,
                        class_token: bool = True) -> int:
    """Parameters of a ViT: patch embedding, [CLS], positions, blocks, final norm, head."""
    raise NotImplementedError("vit_parameter_count: add the parts of theory.md section 10")


def share_in_blocks(image_size, patch_size, d_model: int, n_layers: int,
                    num_classes: int) -> float:
    """The fraction of all parameters inside the encoder blocks (F = 4D)."""
    raise NotImplementedError("share_in_blocks: blocks / total")
