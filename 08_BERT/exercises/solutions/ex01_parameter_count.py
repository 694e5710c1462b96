"""Exercise 01 (reference solution): BERT's parameter count as a formula.

Per layer: four H x H projections with biases (4H^2 + 4H), the feed-forward network
H -> F -> H with biases (2HF + F + H), two LayerNorms (4H). The embeddings: (V + P + S) H
plus one LayerNorm (2H). The pooler: H^2 + H. The number of heads does not appear.

The task text is in ``08_BERT/exercises/01_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def _check_positive_int(**values) -> None:
    """Raise ValueError unless every value is an int >= 1."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")


def bert_parameter_count(vocab_size: int, d_model: int, n_layers: int, d_ff: int,
                         max_len: int = 512, n_segments: int = 2, pooler: bool = True) -> int:
    """Parameters of BertModel (embeddings, encoder, optionally the pooler).

    Inputs:  vocab_size V, d_model H, n_layers L, d_ff F, max_len P, n_segments S, pooler
    Returns: int
    """
    _check_positive_int(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, d_ff=d_ff,
                        max_len=max_len, n_segments=n_segments)
    H, F = d_model, d_ff
    embeddings = (vocab_size + max_len + n_segments) * H + 2 * H
    layer = 4 * (H * H + H) + (H * F + F) + (F * H + H) + 2 * (2 * H)
    return embeddings + n_layers * layer + ((H * H + H) if pooler else 0)


def mlm_head_parameter_count(vocab_size: int, d_model: int) -> int:
    """Parameters the MLM head adds: dense H x H + bias, LayerNorm, output bias (weight tied)."""
    _check_positive_int(vocab_size=vocab_size, d_model=d_model)
    return d_model * d_model + d_model + 2 * d_model + vocab_size


def embedding_share(vocab_size: int, d_model: int, n_layers: int, d_ff: int) -> float:
    """Token embeddings / all of BertModel (with pooler, P = 512, S = 2)."""
    return vocab_size * d_model / bert_parameter_count(vocab_size, d_model, n_layers, d_ff)
