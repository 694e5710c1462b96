"""Exercise 01 (starter): BERT's parameter count as a formula.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 08_BERT/exercises --solutions my_solutions -k ex01

The helper ``_check_positive_int`` is given: use it.

The task, the maths and hints are in ``08_BERT/exercises/01_parameter_count.md``.
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
    raise NotImplementedError("bert_parameter_count: embeddings + L layers + pooler")


def mlm_head_parameter_count(vocab_size: int, d_model: int) -> int:
    """Parameters the MLM head adds: dense H x H + bias, LayerNorm, output bias (weight tied)."""
    raise NotImplementedError("mlm_head_parameter_count: the decoder weight is tied")


def embedding_share(vocab_size: int, d_model: int, n_layers: int, d_ff: int) -> float:
    """Token embeddings / all of BertModel (with pooler, P = 512, S = 2)."""
    raise NotImplementedError("embedding_share: V H / bert_parameter_count(...)")
