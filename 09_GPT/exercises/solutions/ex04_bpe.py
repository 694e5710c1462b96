"""Exercise 04 (reference solution): learning and applying byte-pair merges.

The task text is in ``09_GPT/exercises/04_bpe.md``. Plain Python.
"""

from __future__ import annotations

from collections import Counter


def _merge_word(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Replace every occurrence of ``pair`` in ``symbols``, left to right, without overlap."""
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


def train_bpe(word_counts: dict[str, int], n_merges: int) -> list[tuple[str, str]]:
    """The first ``n_merges`` merges of BPE on ``word_counts`` (ties: the smallest pair)."""
    if n_merges < 0:
        raise ValueError(f"n_merges must be >= 0; got {n_merges}")
    words = {tuple(word): count for word, count in word_counts.items() if word}
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best_count = max(pairs.values())
        best = min(pair for pair, count in pairs.items() if count == best_count)
        merges.append(best)
        words = {_merge_word(symbols, best): count for symbols, count in words.items()}
    return merges


def apply_bpe(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """Split ``word`` into characters, then merge by rank (earliest-learned first)."""
    rank = {pair: i for i, pair in enumerate(merges)}
    symbols = tuple(word)
    while len(symbols) > 1:
        candidates = [pair for pair in zip(symbols, symbols[1:]) if pair in rank]
        if not candidates:
            break
        symbols = _merge_word(symbols, min(candidates, key=rank.__getitem__))
    return list(symbols)
