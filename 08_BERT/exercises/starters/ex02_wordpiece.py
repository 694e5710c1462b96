"""Exercise 02 (starter): WordPiece, greedy longest match first.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 08_BERT/exercises --solutions my_solutions -k ex02

The task and the algorithm are in ``08_BERT/exercises/02_wordpiece.md``.
"""

from __future__ import annotations


def wordpiece(word: str, vocab, unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    """Split ``word`` into vocabulary pieces, greedy longest match first.

    Inputs:  word - one word, no white space; vocab - a set (or dict) of pieces;
             unk - what a word without segmentation becomes; max_chars
    Returns: list of pieces, e.g. ["un", "##aff", "##able"], or [unk]
    """
    raise NotImplementedError("wordpiece: longest prefix in vocab, then '##' pieces")


def wordpiece_ids(words, vocab_list, unk: str = "[UNK]") -> list[int]:
    """Ids of the pieces of every word, in order; ``vocab_list[i]`` is the piece of id i."""
    raise NotImplementedError("wordpiece_ids: wordpiece() of each word, then look up ids")
