"""Exercise 02 (reference solution): WordPiece, greedy longest match first.

For each start position take the longest vocabulary entry that begins there (with "##"
after the first piece); a word with no segmentation, or longer than max_chars, is [UNK].

The task text is in ``08_BERT/exercises/02_wordpiece.md``. Plain Python.
"""

from __future__ import annotations


def wordpiece(word: str, vocab, unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    """Split ``word`` into vocabulary pieces, greedy longest match first.

    Inputs:  word - one word, no white space; vocab - a set (or dict) of pieces;
             unk - what a word without segmentation becomes; max_chars
    Returns: list of pieces, e.g. ["un", "##aff", "##able"], or [unk]
    """
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:  # nothing matched: the whole word is unknown
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


def wordpiece_ids(words, vocab_list, unk: str = "[UNK]") -> list[int]:
    """Ids of the pieces of every word, in order; ``vocab_list[i]`` is the piece of id i."""
    index = {piece: i for i, piece in enumerate(vocab_list)}
    return [index[piece] for word in words for piece in wordpiece(word, index, unk)]
