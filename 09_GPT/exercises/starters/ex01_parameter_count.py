"""Exercise 01 (starter): GPT's parameter count as a formula.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 09_GPT/exercises --solutions my_solutions -k ex01

The task is in ``09_GPT/exercises/01_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def gpt_parameter_count(vocab_size: int, max_len: int, d_model: int, n_layers: int,
                        d_ff: int | None = None, final_norm: bool = True) -> int:
    """Parameters of a GPT language model with a tied output layer.

    Inputs:  vocab_size V, max_len P, d_model D, n_layers L, d_ff F (None: 4D),
             final_norm (True: GPT-2, False: GPT-1)
    Returns: int
    """
    raise NotImplementedError("gpt_parameter_count: embeddings + L blocks (+ final norm)")


def vocabulary_behind_a_figure(published: int, max_len: int, d_model: int,
                               n_layers: int) -> float:
    """The V that makes gpt_parameter_count (GPT-2 form, F = 4D) equal ``published``."""
    raise NotImplementedError("vocabulary_behind_a_figure: solve the count for V")
