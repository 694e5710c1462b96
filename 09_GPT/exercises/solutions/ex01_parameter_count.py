"""Exercise 01 (reference solution): GPT's parameter count as a formula.

Per block: the fused qkv projection (3D^2 + 3D), the output projection (D^2 + D), the
feed-forward network D -> F -> D with biases (2DF + F + D), two layer norms (4D). The
embeddings: (V + P) D. GPT-2 adds a final layer norm (2D). The output layer is tied.

The task text is in ``09_GPT/exercises/01_parameter_count.md``. Plain Python.
"""

from __future__ import annotations


def _check_positive_int(**values) -> None:
    """Raise ValueError unless every value is an int >= 1."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")


def _without_vocabulary(max_len: int, d_model: int, n_layers: int, d_ff: int,
                        final_norm: bool) -> int:
    """Everything but the V x D token embeddings."""
    D, F = d_model, d_ff
    block = (3 * D * D + 3 * D) + (D * D + D) + (D * F + F) + (F * D + D) + 2 * (2 * D)
    return max_len * D + n_layers * block + (2 * D if final_norm else 0)


def gpt_parameter_count(vocab_size: int, max_len: int, d_model: int, n_layers: int,
                        d_ff: int | None = None, final_norm: bool = True) -> int:
    """Parameters of a GPT language model with a tied output layer.

    Inputs:  vocab_size V, max_len P, d_model D, n_layers L, d_ff F (None: 4D),
             final_norm (True: GPT-2, False: GPT-1)
    Returns: int
    """
    d_ff = 4 * d_model if d_ff is None else d_ff
    _check_positive_int(vocab_size=vocab_size, max_len=max_len, d_model=d_model,
                        n_layers=n_layers, d_ff=d_ff)
    return vocab_size * d_model + _without_vocabulary(max_len, d_model, n_layers, d_ff,
                                                      final_norm)


def vocabulary_behind_a_figure(published: int, max_len: int, d_model: int,
                               n_layers: int) -> float:
    """The V that makes gpt_parameter_count (GPT-2 form, F = 4D) equal ``published``."""
    _check_positive_int(published=published, max_len=max_len, d_model=d_model,
                        n_layers=n_layers)
    rest = _without_vocabulary(max_len, d_model, n_layers, 4 * d_model, final_norm=True)
    return (published - rest) / d_model
