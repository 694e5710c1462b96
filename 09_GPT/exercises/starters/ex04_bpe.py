"""Exercise 04 (starter): learning and applying byte-pair merges.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 09_GPT/exercises --solutions my_solutions -k ex04

The task is in ``09_GPT/exercises/04_bpe.md``. Plain Python.
"""

from __future__ import annotations


def train_bpe(word_counts: dict[str, int], n_merges: int) -> list[tuple[str, str]]:
    """The first ``n_merges`` merges of BPE on ``word_counts`` (ties: the smallest pair)."""
    raise NotImplementedError("train_bpe: count pairs, merge the most frequent, repeat")


def apply_bpe(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """Split ``word`` into characters, then merge by rank (earliest-learned first)."""
    raise NotImplementedError("apply_bpe: merge the lowest-ranked pair until none is left")
