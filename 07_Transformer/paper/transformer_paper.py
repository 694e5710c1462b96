"""The Transformer as Vaswani et al. (2017) describe it, in torch.nn (lesson 07, Level 3).

A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, L. Kaiser and
I. Polosukhin (2017), "Attention Is All You Need", NeurIPS: Section 3 (the model), 5.3 (the
learning-rate schedule), 5.4 (dropout, label smoothing), 6.1 (beam search), Table 3 (sizes).
Derivations, shapes, and where this code departs from the paper and from
``torch.nn.Transformer``: ../theory.md (sections 10.1 and 10.2). Porting to and from
``nn.Transformer``: convert.py. Training on generated tasks (copy, reverse, sort,
addition): train.py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
RESERVED = 3  # data tokens start here
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu,
                                                                   "gelu": F.gelu}


def _check_tokens(tokens: torch.Tensor, vocab: int, name: str) -> None:
    """The entry points' check of token ids: an int tensor (B, T), T >= 1, ids in 0..vocab-1."""
    if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name}: expected an int64 tensor of token ids (B, T), got "
                        f"{type(tokens).__name__} {getattr(tokens, 'dtype', '')}")
    if tokens.ndim != 2 or tokens.shape[1] < 1:
        raise ValueError(f"{name}: expected token ids of shape (B, T) with T >= 1, got "
                         f"{tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ValueError(f"{name}: token ids must lie in 0..{vocab - 1}, got "
                         f"{int(tokens.min())}..{int(tokens.max())}")


def _check_heads(d_model: int, n_heads: int) -> None:
    if n_heads < 1 or d_model < 1 or d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads "
                         f"({n_heads}): each head gets d_k = d_model / n_heads dimensions")


# --------------------------------------------------------------------------------------
# 1. The residual connection around every sub-layer (Sections 3.1, 5.4)
# --------------------------------------------------------------------------------------


class SublayerConnection(nn.Module):
    """The "Add & Norm" around each sub-layer of Figure 1, with Section 5.4's dropout:

        post-LN (paper):  x = LayerNorm(x + Dropout(Sublayer(x)))
        pre-LN (option):  x = x + Dropout(Sublayer(LayerNorm(x)))   (GPT-2, ViT)

    Constructor: d_model, dropout (residual dropout, 0.1 in the paper), norm_first,
    layer_norm_eps. Submodules ``norm`` and ``dropout`` (``nn.TransformerEncoderLayer``'s
    ``norm1`` / ``dropout1`` for the first sub-layer, and so on).
    forward(x (B, T, d), sublayer: a function (B, T, d) -> (B, T, d)) -> (B, T, d).
    """

    def __init__(self, d_model: int, dropout: float = 0.1, norm_first: bool = False,
                 layer_norm_eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor,
                sublayer: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


# --------------------------------------------------------------------------------------
# 2. Masks and multi-head attention (Sections 3.2, 3.2.3)
# --------------------------------------------------------------------------------------


def causal_mask(size: int, device=None) -> torch.Tensor:
    """(size, size) bool, True ABOVE the diagonal: query i may not see keys j > i (Section 3.1).

    Same meaning as ``nn.Transformer.generate_square_subsequent_mask`` (which returns the
    float form: -inf above the diagonal, 0 elsewhere).
    """
    return torch.ones(size, size, dtype=torch.bool, device=device).triu(1)


def _additive_mask(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                   batch: int, heads: int, t_q: int, t_k: int, dtype: torch.dtype
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One additive float mask broadcastable to (B, h, T_q, T_k): 0 = attend, -inf = do not;
    and ``dead`` (B|1, h|1, T_q, 1) bool, the queries whose keys are ALL masked (their row
    of the mask is set to 0, so that the softmax stays finite; the caller zeroes them).
    (None, None) without masks. Checks the shapes and dtypes and says what was expected.
    """
    merged = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
            raise TypeError(f"attn_mask must be bool (True = masked) or float (added to the "
                            f"scores), got {attn_mask.dtype}")
        if attn_mask.ndim not in (2, 3, 4) or attn_mask.shape[-2:] != (t_q, t_k):
            raise ValueError(f"attn_mask: expected shape (T_q, T_k) = ({t_q}, {t_k}), or "
                             f"(B, h, T_q, T_k) broadcastable, got {tuple(attn_mask.shape)}")
        if attn_mask.ndim == 3:  # (B * h, T_q, T_k) as nn.MultiheadAttention takes it
            if attn_mask.shape[0] != batch * heads:
                raise ValueError(f"attn_mask: a 3-D mask must be (B * h, T_q, T_k) = "
                                 f"({batch * heads}, {t_q}, {t_k}), got {tuple(attn_mask.shape)}")
            attn_mask = attn_mask.view(batch, heads, t_q, t_k)  # (B, h, T_q, T_k)
        elif attn_mask.ndim == 4 and (attn_mask.shape[0] not in (1, batch)
                                      or attn_mask.shape[1] not in (1, heads)):
            raise ValueError(f"attn_mask: a 4-D mask must be (B, h, T_q, T_k) = ({batch}, "
                             f"{heads}, {t_q}, {t_k}), with 1 allowed for B or h (broadcast), "
                             f"got {tuple(attn_mask.shape)}")
        if attn_mask.dtype == torch.bool:
            merged = torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device)
            merged = merged.masked_fill(attn_mask, float("-inf"))
        else:
            merged = attn_mask.to(dtype)
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(f"key_padding_mask must be bool (True at padding), got "
                            f"{key_padding_mask.dtype}")
        if tuple(key_padding_mask.shape) != (batch, t_k):
            raise ValueError(f"key_padding_mask: expected (B, T_k) = ({batch}, {t_k}), got "
                             f"{tuple(key_padding_mask.shape)}")
        pad = torch.zeros(batch, 1, 1, t_k, dtype=dtype, device=key_padding_mask.device)
        pad = pad.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        merged = pad if merged is None else merged + pad
    if merged is None:
        return None, None
    dead = torch.isneginf(merged).all(dim=-1, keepdim=True)  # (B|1, h|1, T_q, 1)
    return merged.masked_fill(dead, 0.0), dead


def _with_cache(cache: dict, k: torch.Tensor, v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The key/value cache of incremental decoding (theory.md 9.3): self-attention appends
    this step's keys and values (B, h, T_new, d_k) to the cached ones; the first call
    stores them. Returns the keys and values to attend over, (B, h, T_past + T_new, d_k).
    """
    if "k" in cache:
        k = torch.cat([cache["k"], k], dim=2)  # (B, h, T_past + T_new, d_k)
        v = torch.cat([cache["v"], v], dim=2)
    cache["k"], cache["v"] = k, v
    return k, v


def _check_attention_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            d_model: int) -> None:
    if query.ndim != 3 or query.shape[-1] != d_model:
        raise ValueError(f"query: expected (B, T_q, d_model={d_model}), got "
                         f"{tuple(query.shape)}")
    if key.ndim != 3 or key.shape != value.shape or key.shape[-1] != d_model:
        raise ValueError(f"key and value: expected the same shape (B, T_k, d_model={d_model}), "
                         f"got {tuple(key.shape)} and {tuple(value.shape)}")
    if key.shape[0] != query.shape[0]:
        raise ValueError(f"query {tuple(query.shape)} and key/value {tuple(key.shape)}: "
                         "expected the same batch size B")


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = softmax(Q W_i^Q (K W_i^K)^T / sqrt(d_k)) V W_i^V      (Section 3.2.2, eq. 1).

    Parameters, laid out as ``nn.MultiheadAttention``'s: ``in_proj_weight`` (3 d, d) =
    [W_q; W_k; W_v] (the h heads' projections side by side in each), ``in_proj_bias`` (3 d,)
    (None with bias=False), ``out_proj`` = Linear(d, d) = W^O.

    Constructor: d_model (d), n_heads (h, must divide d), attn_dropout (on the attention
    weights; 0 in the paper), bias, fused (False: Equation 1 step by step, the weights
    returned; True: ``F.scaled_dot_product_attention``, see ``fused_attention``).

    forward(query (B, T_q, d), key (B, T_k, d), value (B, T_k, d), attn_mask=None,
            key_padding_mask=None, cache=None)
    Returns: (out (B, T_q, d), weights (B, h, T_q, T_k) per head, or None when fused).

    Masks as torch's: ``attn_mask`` bool (True = masked) or float (added), shape (T_q, T_k),
    (B * h, T_q, T_k) or broadcastable to (B, h, T_q, T_k); ``key_padding_mask`` (B, T_k)
    bool, True at padding. Unlike nn.MultiheadAttention (which averages the heads by
    default), the weights come back per head.

    A query whose keys are ALL masked (a padded position under a causal mask, say) gets
    weights 0 and attention output 0 (so ``out_proj``'s bias alone), on both paths, and
    zero gradient; softmax over a row of -inf would give 0/0 = NaN (``nn.MultiheadAttention``
    returns NaN there). Such rows are padding: the loss ignores them.

    ``cache`` (a dict, for incremental decoding): self-attention passes an empty dict at
    the first step; each call appends this step's keys and values to ``cache["k"]`` /
    ``cache["v"]`` (B, h, T_so_far, d_k) and attends over all of them, so one new query
    costs O(T) instead of recomputing the prefix. A dict with ``cache["static"] = True``
    (cross-attention: the encoder memory never changes) computes K and V on the first call
    and reuses them afterwards, ignoring ``key`` and ``value``.
    """

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float = 0.0,
                 bias: bool = True, fused: bool = False):
        super().__init__()
        _check_heads(d_model, n_heads)
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.attn_dropout, self.fused = attn_dropout, fused
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform for the stacked in-projection and W^O; zero biases (as torch)."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None,
                cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        _check_attention_inputs(query, key, value, self.d_model)
        q, k, v = self._project(query, key, value, cache)  # (B, h, T_q | T_k, d_k)
        batch, _, t_q, t_k = *q.shape[:3], k.shape[2]
        mask, dead = _additive_mask(attn_mask, key_padding_mask, batch, self.n_heads, t_q, t_k,
                                    q.dtype)  # (B|1, h|1, T_q, T_k), (B|1, h|1, T_q, 1)
        if self.fused:  # the alternative: the same Equation 1 in one fused kernel
            heads, weights = self.fused_attention(q, k, v, mask, dead), None
        else:  # Equation 1, step by step
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, h, T_q, T_k)
            if mask is not None:
                scores = scores + mask  # -inf where a query may not attend
            weights = torch.softmax(scores, dim=-1)  # each row sums to 1
            if dead is not None:  # a query that may attend nothing: 0, not 0/0 = NaN
                weights = weights.masked_fill(dead, 0.0)
            heads = F.dropout(weights, self.attn_dropout, self.training) @ v  # (B, h, T_q, d_k)
        concat = heads.transpose(1, 2).reshape(batch, t_q, self.d_model)  # (B, T_q, h * d_k)
        return self.out_proj(concat), weights  # Concat(head_1, ..., head_h) W^O

    def fused_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        mask: torch.Tensor | None, dead: torch.Tensor | None) -> torch.Tensor:
        """The alternative to ``forward``'s step-by-step Equation 1, used with ``fused=True``:
        ``F.scaled_dot_product_attention`` computes the same softmax(q k^T / sqrt(d_k) + mask) v
        in one kernel (faster; on GPUs no (T_q, T_k) matrix is kept for backward) but
        returns no weights. Its additive float mask has our meaning (-inf = masked). The
        tests check it equals the step-by-step path, fully masked rows included.

        Inputs:  q (B, h, T_q, d_k), k and v (B, h, T_k, d_k); mask, dead from _additive_mask
        Returns: (B, h, T_q, d_k)
        """
        dropout_p = self.attn_dropout if self.training else 0.0
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return heads if dead is None else heads.masked_fill(dead, 0.0)

    def _project(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 cache: dict | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q = query W_q^T + b_q, K = key W_k^T + b_k, V = value W_v^T + b_v, split into heads
        (B, h, T, d_k): self-attention in one matmul with the stacked (3 d, d) matrix,
        encoder-decoder attention K and V in one. With a cache, see ``_with_cache``."""
        if cache is not None and cache.get("static") and "k" in cache:
            # cross-attention while decoding: the memory's K and V were made at the first step
            return self._split_heads(self._linear(query, 0, 1)), cache["k"], cache["v"]
        if query is key and key is value:  # self-attention: one fused matmul for Q, K, V
            q, k, v = self._linear(query, 0, 3).chunk(3, dim=-1)  # (B, T, d) each
        elif key is value:  # encoder-decoder attention: K and V in one matmul
            q, (k, v) = self._linear(query, 0, 1), self._linear(key, 1, 3).chunk(2, dim=-1)
        else:
            q, k, v = self._linear(query, 0, 1), self._linear(key, 1, 2), self._linear(value, 2, 3)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        return (q, k, v) if cache is None else (q, *_with_cache(cache, k, v))

    def _linear(self, x: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """x W^T + b with the blocks first .. last - 1 of [W_q; W_k; W_v] (0 = q, 1 = k, 2 = v)."""
        rows = slice(first * self.d_model, last * self.d_model)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[rows]
        return F.linear(x, self.in_proj_weight[rows], bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, t, _ = x.shape
        return x.view(batch, t, self.n_heads, self.d_k).transpose(1, 2)  # (B, h, T, d_k)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n_heads={self.n_heads}, "
                f"attn_dropout={self.attn_dropout}, fused={self.fused}")


# --------------------------------------------------------------------------------------
# 3. Feed-forward network (Section 3.3), positional encoding (Section 3.5)
# --------------------------------------------------------------------------------------


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (eq. 2), the same two layers at every position.

    Constructor: d_model, d_ff (2048 in the base model), dropout (after the activation;
    0 in the paper), activation "relu" (paper) or "gelu" (BERT, GPT).
    forward: x (B, T, d_model) -> (B, T, d_model).
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)  # W1 (d_ff, d_model), b1
        self.linear2 = nn.Linear(d_ff, d_model)  # W2 (d_model, d_ff), b2
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = ACTIVATIONS[self.activation](self.linear1(x))  # (B, T, d_ff)
        return self.linear2(self.dropout(hidden))


class SinusoidalPositionalEncoding(nn.Module):
    """Adds PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...) (Section 3.5),
    then dropout (Section 5.4: dropout on the sums of embeddings and positional encodings).

    Constructor: d_model (even), max_len (rows of the table), dropout.
    forward(x (B, T, d), start=0) -> (B, T, d): positions start .. start + T - 1 (start > 0
    when decoding one token at a time). The table is a non-persistent buffer: it is a
    function of (max_len, d), not a learned weight, so it is not saved with the state.
    """

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        assert d_model % 2 == 0, f"d_model must be even for sin/cos pairs, got {d_model}"
        # built on the CPU whatever the default device (then moved with the module by .to())
        float64_cpu = {"dtype": torch.float64, "device": "cpu"}
        position = torch.arange(max_len, **float64_cpu)[:, None]  # (L, 1)
        # 1 / 10000^(2i/d) for i = 0 .. d/2 - 1
        inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, **float64_cpu)
                             / d_model)
        angle = position * inv_freq  # (L, d/2)
        table = torch.empty(max_len, d_model, **float64_cpu)
        table[:, 0::2], table[:, 1::2] = torch.sin(angle), torch.cos(angle)
        # kept in float64 (cast to the input's dtype when added): a float64 model gets the
        # exact table, a float32 one the same values as a float32 table would hold
        self.register_buffer("pe", table, persistent=False)  # (L, d)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.dropout(x + self.pe[start:start + x.shape[1]].to(x.dtype))


# --------------------------------------------------------------------------------------
# 4. Encoder and decoder layers (Section 3.1, Figure 1)
# --------------------------------------------------------------------------------------


class EncoderLayer(nn.Module):
    """Self-attention then the feed-forward network, each in a ``SublayerConnection``
    (post-LN by default, pre-LN with norm_first) (Sections 3.1, 5.4).

    Submodule names: self_attn and ffn.linear1 / ffn.linear2 (nn.TransformerEncoderLayer:
    self_attn, linear1, linear2), residual1.norm and residual2.norm (its norm1, norm2).

    forward(x (B, T, d), attn_mask=None, key_padding_mask=None (B, T)) -> x (B, T, d).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, *,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, fused_attention: bool = False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attn_dropout, fused=fused_attention)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, ffn_dropout, activation)
        self.residual1, self.residual2 = (
            SublayerConnection(d_model, dropout, norm_first, layer_norm_eps) for _ in range(2))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.residual1(x, lambda h: self.self_attn(h, h, h, attn_mask, key_padding_mask)[0])
        return self.residual2(x, self.ffn)


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder-decoder (cross) attention, feed-forward (Section 3.1),
    each in a ``SublayerConnection`` like the encoder's sub-layers.

    Submodule names: self_attn, cross_attn (nn.TransformerDecoderLayer's multihead_attn),
    ffn, residual1.norm (self), residual2.norm (cross), residual3.norm (ffn).

    forward(x (B, T, d), memory (B, S, d), tgt_mask=None (T, T), tgt_key_padding_mask=None
            (B, T), memory_key_padding_mask=None (B, S), cache=None) -> x (B, T, d).
    ``cache``: {"self": {}, "cross": {"static": True}} for incremental decoding (see
    MultiHeadAttention); then x holds only the new positions and tgt_mask is not needed.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, *,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, fused_attention: bool = False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attn_dropout, fused=fused_attention)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attn_dropout, fused=fused_attention)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, ffn_dropout, activation)
        self.residual1, self.residual2, self.residual3 = (
            SublayerConnection(d_model, dropout, norm_first, layer_norm_eps) for _ in range(3))

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                tgt_mask: torch.Tensor | None = None,
                tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None,
                cache: dict | None = None) -> torch.Tensor:
        self_cache, cross_cache = (None, None) if cache is None else (cache["self"], cache["cross"])
        x = self.residual1(x, lambda h: self.self_attn(h, h, h, tgt_mask, tgt_key_padding_mask,
                                                       self_cache)[0])
        x = self.residual2(x, lambda h: self.cross_attn(h, memory, memory, None,
                                                        memory_key_padding_mask, cross_cache)[0])
        return self.residual3(x, self.ffn)


# --------------------------------------------------------------------------------------
# 5. The whole model: sizes (Table 3), the stacks, embeddings and output (Sections 3.1, 3.4)
# --------------------------------------------------------------------------------------


@dataclass
class TransformerConfig:
    """Every size and option of the model.

    Vocabularies: ``vocab_size`` for a joint source/target vocabulary (the paper's shared
    37,000-token BPE vocabulary for English-German), or ``src_vocab`` and ``tgt_vocab``
    separately (then ``share_embeddings=False``). With ``share_embeddings=True`` one matrix
    serves as source embedding, target embedding and output projection (Section 3.4).
    """

    vocab_size: int | None = 37000
    src_vocab: int | None = None  # default: vocab_size
    tgt_vocab: int | None = None  # default: src_vocab
    share_embeddings: bool = True
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    dropout: float = 0.1  # residual and embedding dropout, Section 5.4
    attn_dropout: float = 0.0  # not in the paper; nn.Transformer uses `dropout` here
    ffn_dropout: float = 0.0  # after the ReLU; not in the paper
    activation: str = "relu"  # "gelu" for BERT / GPT-style blocks
    max_len: int = 1024  # rows of the positional table
    label_smoothing: float = 0.1
    norm_first: bool = False  # False: the paper's post-LN; True: pre-LN
    final_norm: bool = False  # a LayerNorm after each stack (needed with pre-LN)
    layer_norm_eps: float = 1e-5
    fused_attention: bool = False  # True: F.scaled_dot_product_attention (same maths)
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def __post_init__(self) -> None:
        if self.src_vocab is None:
            self.src_vocab = self.vocab_size
        if self.tgt_vocab is None:
            self.tgt_vocab = self.src_vocab
        if self.src_vocab is None or self.src_vocab < 1 or self.tgt_vocab < 1:
            raise ValueError("TransformerConfig: give vocab_size, or src_vocab (and tgt_vocab), "
                             f"as positive integers; got vocab_size={self.vocab_size}, "
                             f"src_vocab={self.src_vocab}, tgt_vocab={self.tgt_vocab}")
        if self.share_embeddings and self.src_vocab != self.tgt_vocab:
            raise ValueError(f"share_embeddings=True needs one joint vocabulary, got src_vocab="
                             f"{self.src_vocab} != tgt_vocab={self.tgt_vocab}; use "
                             "share_embeddings=False for separate vocabularies")
        _check_heads(self.d_model, self.n_heads)
        if self.d_model % 2:
            raise ValueError(f"d_model must be even for the sin/cos pairs of the positional "
                             f"encoding, got {self.d_model}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.tgt_vocab:
                raise ValueError(f"{name}={getattr(self, name)} is outside the target "
                                 f"vocabulary 0..{self.tgt_vocab - 1}")

    @classmethod
    def base(cls, vocab_size: int = 37000, **overrides) -> TransformerConfig:
        """Table 3, "base": N 6, d_model 512, d_ff 2048, h 8, d_k = d_v = 64, dropout 0.1."""
        return cls(vocab_size=vocab_size, **overrides)

    @classmethod
    def big(cls, vocab_size: int = 37000, **overrides) -> TransformerConfig:
        """Table 3, "big": N 6, d_model 1024, d_ff 4096, h 16, dropout 0.3."""
        sizes = {"d_model": 1024, "d_ff": 4096, "n_heads": 16, "dropout": 0.3}
        return cls(vocab_size=vocab_size, **{**sizes, **overrides})


def _layer_kwargs(cfg: TransformerConfig) -> dict:
    return {"dropout": cfg.dropout, "attn_dropout": cfg.attn_dropout,
            "ffn_dropout": cfg.ffn_dropout, "activation": cfg.activation,
            "norm_first": cfg.norm_first, "layer_norm_eps": cfg.layer_norm_eps,
            "fused_attention": cfg.fused_attention}


class Encoder(nn.Module):
    """N encoder layers (and an optional final LayerNorm), on embedded inputs.

    forward(x (B, S, d), key_padding_mask=None (B, S)) -> memory (B, S, d).
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, **_layer_kwargs(cfg))
            for _ in range(cfg.n_encoder_layers))
        self.norm = (nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cfg.final_norm
                     else nn.Identity())

    def forward(self, x: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, None, key_padding_mask)
        return self.norm(x)


class Decoder(nn.Module):
    """N decoder layers (and an optional final LayerNorm), on embedded targets.

    forward(x (B, T, d), memory (B, S, d), tgt_mask=None, tgt_key_padding_mask=None,
            memory_key_padding_mask=None, cache=None (a list, one dict per layer))
    Returns: (B, T, d).
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, **_layer_kwargs(cfg))
            for _ in range(cfg.n_decoder_layers))
        self.norm = (nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cfg.final_norm
                     else nn.Identity())

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                tgt_mask: torch.Tensor | None = None,
                tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None,
                cache: list[dict] | None = None) -> torch.Tensor:
        caches = [None] * len(self.layers) if cache is None else cache
        for layer, layer_cache in zip(self.layers, caches):
            x = layer(x, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask,
                      layer_cache)
        return self.norm(x)


class Transformer(nn.Module):
    """The encoder-decoder Transformer of Figure 1, with embeddings and the output layer.

        memory = Encoder(Dropout(E_src[src] * sqrt(d) + PE))
        logits = Decoder(Dropout(E_tgt[tgt] * sqrt(d) + PE), memory) W_out^T

    With ``share_embeddings`` E_src = E_tgt = W_out (Section 3.4): one (V, d) matrix.
    No bias on the output projection ``lm_head`` (a shared matrix has none).

    Inputs:  src (B, S) int64, tgt (B, T) int64 - the decoder input, <bos> y_1 .. y_{T-1}
             (teacher forcing). Padding masks default to ``tokens == pad_id``.
    Returns: forward -> logits (B, T, tgt_vocab), float.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab, cfg.d_model)
        self.tgt_embed = (self.src_embed if cfg.share_embeddings
                          else nn.Embedding(cfg.tgt_vocab, cfg.d_model))
        self.pos_encoding = SinusoidalPositionalEncoding(cfg.d_model, cfg.max_len, cfg.dropout)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.tgt_vocab, bias=False)
        if cfg.share_embeddings:
            self.lm_head.weight = self.tgt_embed.weight  # tied: one matrix, three uses
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform for every matrix of the stacks (LayerNorms: 1 and 0), embeddings
        N(0, 1/d) so that sqrt(d) * embedding has unit variance."""
        for name, param in self.named_parameters():
            if name.startswith(("encoder.", "decoder.")):
                if param.ndim > 1:
                    nn.init.xavier_uniform_(param)
                elif "norm" not in name:
                    nn.init.zeros_(param)
        for module in {self.src_embed, self.tgt_embed}:
            nn.init.normal_(module.weight, std=self.config.d_model ** -0.5)
        if not self.config.share_embeddings:
            nn.init.normal_(self.lm_head.weight, std=self.config.d_model ** -0.5)

    def embed(self, tokens: torch.Tensor, embedding: nn.Embedding, start: int = 0):
        """Dropout(E[tokens] * sqrt(d_model) + PE[start:start+T]) (Sections 3.4, 3.5, 5.4)."""
        if start + tokens.shape[1] > self.config.max_len:
            raise ValueError(f"sequence of {start + tokens.shape[1]} positions is longer than "
                             f"the positional table (max_len={self.config.max_len}); build the "
                             "model with a larger max_len")
        x = embedding(tokens) * math.sqrt(self.config.d_model)  # (B, T, d)
        return self.pos_encoding(x, start)

    def encode(self, src: torch.Tensor,
               src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) -> memory (B, S, d)."""
        _check_tokens(src, self.config.src_vocab, "src")
        src_key_padding_mask = _padding_mask(src, src_key_padding_mask, self.config.pad_id)
        return self.encoder(self.embed(src, self.src_embed), src_key_padding_mask)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor,
               memory_key_padding_mask: torch.Tensor | None = None,
               tgt_key_padding_mask: torch.Tensor | None = None,
               cache: dict | None = None) -> torch.Tensor:
        """Decoder output projected to the vocabulary.

        Inputs:  tgt (B, T) int64; memory (B, S, d); memory_key_padding_mask (B, S) bool;
                 tgt_key_padding_mask (B, T) bool, default ``tgt == pad_id``;
                 cache - from ``init_cache()``: tgt then holds only the NEW tokens, which
                 take positions cache["pos"] .. and are appended to the cached keys/values.
                 With a cache there is no target padding (decoding generates every row to
                 the same length): a ``tgt_key_padding_mask`` is refused, not dropped.
        Returns: logits (B, T, tgt_vocab).
        """
        _check_tokens(tgt, self.config.tgt_vocab, "tgt")
        if memory.ndim != 3 or memory.shape[0] != tgt.shape[0]:
            raise ValueError(f"memory (B, S, d_model) and tgt (B, T) must have the same batch "
                             f"size B: got memory {tuple(memory.shape)}, tgt {tuple(tgt.shape)}")
        if cache is not None and tgt_key_padding_mask is not None:
            raise ValueError("decode: tgt_key_padding_mask cannot be used with a cache (the "
                             "cached keys of earlier steps have no padding mask); decode "
                             "without a cache to mask target padding")
        if cache is None:
            # no cache: the whole prefix at once, and the causal mask (Section 3.1)
            x = self.embed(tgt, self.tgt_embed)
            tgt_mask = causal_mask(tgt.shape[1], device=tgt.device)
            tgt_key_padding_mask = _padding_mask(tgt, tgt_key_padding_mask, self.config.pad_id,
                                                 "tgt_key_padding_mask")
            out = self.decoder(x, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask)
        else:
            # a cache holds only the past, so the new token(s) may see every cached key;
            # several new tokens at once still need the mask among themselves
            start, t = cache["pos"], tgt.shape[1]
            x = self.embed(tgt, self.tgt_embed, start)
            tgt_mask = None if t == 1 else torch.cat(
                [torch.zeros(t, start, dtype=torch.bool, device=tgt.device),
                 causal_mask(t, device=tgt.device)], dim=1)  # (T_new, T_past + T_new)
            out = self.decoder(x, memory, tgt_mask, None, memory_key_padding_mask,
                               cache["layers"])
            cache["pos"] = start + t
        return self.lm_head(out)  # (B, T, tgt_vocab)

    def init_cache(self) -> dict:
        """An empty decoding cache: {"pos": 0, "layers": [{"self": {}, "cross": {...}}]}."""
        return {"pos": 0, "layers": [{"self": {}, "cross": {"static": True}}
                                     for _ in self.decoder.layers]}

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                src_key_padding_mask: torch.Tensor | None = None,
                tgt_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: logits (B, T, tgt_vocab) for every target position at once."""
        _check_tokens(src, self.config.src_vocab, "src")
        _check_tokens(tgt, self.config.tgt_vocab, "tgt")
        if src.shape[0] != tgt.shape[0]:
            raise ValueError(f"src (B, S) and tgt (B, T) must have the same batch size B: got "
                             f"src {tuple(src.shape)}, tgt {tuple(tgt.shape)}")
        src_key_padding_mask = _padding_mask(src, src_key_padding_mask, self.config.pad_id)
        memory = self.encode(src, src_key_padding_mask)
        return self.decode(tgt, memory, src_key_padding_mask, tgt_key_padding_mask)

    @torch.no_grad()
    def attention_maps(self, src: torch.Tensor, tgt: torch.Tensor) -> dict[str, list]:
        """Every head's weights on one forward pass (in eval mode, with the step-by-step
        attention whatever ``fused_attention`` says; for the pictures).

        Returns: {"encoder": [(B, h, S, S) per layer], "decoder_self": [(B, h, T, T)],
                  "cross": [(B, h, T, S)]}.
        """
        sites = [("encoder", layer.self_attn) for layer in self.encoder.layers]
        sites += [(kind, attention) for layer in self.decoder.layers
                  for kind, attention in (("decoder_self", layer.self_attn),
                                          ("cross", layer.cross_attn))]
        maps: dict[str, list] = {"encoder": [], "decoder_self": [], "cross": []}
        fused = [attention.fused for _, attention in sites]
        hooks = [attention.register_forward_hook(
            lambda _module, _inputs, output, kind=kind: maps[kind].append(output[1]))
            for kind, attention in sites]
        try:
            for _, attention in sites:
                attention.fused = False  # the step-by-step path returns the weights
            with evaluation(self):
                pad = src == self.config.pad_id
                self.decode(tgt, self.encode(src, pad), pad)
        finally:
            for hook, (_, attention), was_fused in zip(hooks, sites, fused):
                hook.remove()
                attention.fused = was_fused
        return maps


def _padding_mask(tokens: torch.Tensor, key_padding_mask: torch.Tensor | None, pad_id: int,
                  name: str = "src_key_padding_mask") -> torch.Tensor:
    """The given padding mask, checked against the tokens' shape, or ``tokens == pad_id``."""
    if key_padding_mask is None:
        return tokens == pad_id
    if key_padding_mask.shape != tokens.shape:
        raise ValueError(f"{name}: expected the shape of the tokens {tuple(tokens.shape)}, "
                         f"got {tuple(key_padding_mask.shape)}")
    return key_padding_mask


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of distinct parameters (a tied matrix counts once, as ``.parameters()`` does)."""
    return sum(param.numel() for param in model.parameters()
               if param.requires_grad or not trainable_only)


def reorder_cache(cache: dict, index: torch.Tensor) -> None:
    """In place: keep rows ``index`` (1-D int64) of every cached key/value (beam search)."""
    for layer in cache["layers"]:
        for part in layer.values():
            for name in ("k", "v"):
                if name in part:
                    part[name] = part[name].index_select(0, index)


# --------------------------------------------------------------------------------------
# 6. Training: the schedule (Section 5.3), the loss (Section 5.4)
# --------------------------------------------------------------------------------------


def noam_lambda(d_model: int, warmup: int = 4000,
                factor: float = 1.0) -> Callable[[int], float]:
    """lrate(step) = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) (Sec. 5.3).

    Rises linearly for ``warmup`` steps, peaks at d^-0.5 warmup^-0.5, then decays as
    1/sqrt(step). The returned function takes LambdaLR's counter (0 for the first update)
    and evaluates lrate at step = counter + 1, so the first update uses lrate(1) > 0.
    """
    if d_model < 1 or warmup < 1:
        raise ValueError(f"d_model and warmup must be >= 1, got {d_model}, {warmup}")

    def lr_multiplier(counter: int) -> float:
        step = counter + 1
        return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)

    return lr_multiplier


def make_noam_scheduler(optimizer: torch.optim.Optimizer, d_model: int, warmup: int = 4000,
                        factor: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with ``noam_lambda``; step it after every optimizer step.

    LambdaLR multiplies each group's initial lr by the lambda: create the optimizer with
    lr=1.0 (``make_optimizer`` does) for the paper's values.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, noam_lambda(d_model, warmup, factor))


def make_optimizer(model: nn.Module) -> torch.optim.Adam:
    """Adam(beta1 0.9, beta2 0.98, eps 1e-9) (Section 5.3), lr 1 for the schedule to scale."""
    return torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)


def make_loss(cfg: TransformerConfig) -> nn.CrossEntropyLoss:
    """Cross-entropy with label smoothing eps (Section 5.4), <pad> targets ignored."""
    return nn.CrossEntropyLoss(ignore_index=cfg.pad_id, label_smoothing=cfg.label_smoothing)


# --------------------------------------------------------------------------------------
# 7. Decoding: greedy and beam search (Section 6.1)
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def evaluation(model: nn.Module):
    """Eval mode (dropout off) inside the ``with`` block; the model's own mode restored after,
    so decoding in the middle of training does not switch training's dropout off."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, max_len: int,
                  src_key_padding_mask: torch.Tensor | None = None,
                  use_cache: bool = True) -> torch.Tensor:
    """Generate y_1, y_2, ... taking the most probable next token each step.

    Inputs:  src (B, S) int64; max_len - most tokens to generate (the <eos> included).
             use_cache - True: one new token through the decoder per step, earlier keys and
             values kept (O(T) per step); False: the whole prefix again each step (O(T^2)).
             Both give the same tokens.
    Returns: (B, L) int64, L <= max_len, <bos> not included; a row stops at its <eos>
             (kept) and is filled with <pad> after it; <pad> and <bos> are never chosen.
             The model is in eval mode while decoding (no dropout: the same tokens every
             call); its mode is restored after.
    """
    with evaluation(model):  # dropout off while decoding; the mode restored after
        cfg = model.config
        pad_mask = _padding_mask(src, src_key_padding_mask, cfg.pad_id)
        memory = model.encode(src, pad_mask)
        batch = src.shape[0]
        prefix = torch.full((batch, 1), cfg.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        cache = model.init_cache() if use_cache else None
        for _ in range(max_len):
            if use_cache:
                logits = model.decode(prefix[:, -1:], memory, pad_mask, cache=cache)
            else:
                logits = model.decode(prefix, memory, pad_mask)
            next_logits = logits[:, -1].clone()  # (B, V)
            next_logits[:, [cfg.pad_id, cfg.bos_id]] = float("-inf")  # never generated
            next_token = next_logits.argmax(-1)  # (B,)
            next_token = next_token.masked_fill(done, cfg.pad_id)
            prefix = torch.cat([prefix, next_token[:, None]], dim=1)
            done |= next_token == cfg.eos_id
            if bool(done.all()):
                break
        return prefix[:, 1:]


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016), used with alpha 0.6 (Sec. 6.1)."""
    return ((5.0 + length.to(torch.float64)) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, beam_size: int = 4, max_len: int = 50,
                length_penalty_alpha: float = 0.6,
                src_key_padding_mask: torch.Tensor | None = None,
                use_cache: bool = True, return_scores: bool = False):
    """Keep the ``beam_size`` best prefixes per example; return the best finished one.

    A hypothesis Y is scored by log P(Y | x) / lp(Y) (``length_penalty``); candidates are
    ranked by that score every step. A finished hypothesis (it produced <eos>) stays in the
    beam with its score unchanged, extended by <pad>. <pad> and <bos> are never generated
    (their log-probabilities count as -inf; the others are not renormalised). With
    beam_size 1 every candidate of a step has the same length, so the ranking is by
    log-probability alone: greedy decoding.

    Inputs:  src (B, S) int64; beam_size >= 1; max_len - most tokens generated;
             length_penalty_alpha - 0 ranks by the raw log-probability.
    Returns: (B, L) int64 like ``greedy_decode``'s output; with return_scores, also the
             chosen hypotheses' scores log P(Y | x) / lp(Y), (B,) float64, where |Y| counts
             the tokens up to and including <eos> (not <bos>, not the <pad> after it).
             The model is in eval mode while decoding; its mode is restored after.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    with evaluation(model):  # dropout off while decoding; the mode restored after
        cfg = model.config
        pad_mask = _padding_mask(src, src_key_padding_mask, cfg.pad_id)
        batch, device = src.shape[0], src.device
        memory = model.encode(src, pad_mask)
        # each example's memory repeated for its k = beam_size beams: row b * k + j is beam j
        # of example b
        memory = memory.repeat_interleave(beam_size, dim=0)  # (B k, S, d)
        pad_mask = pad_mask.repeat_interleave(beam_size, dim=0)  # (B k, S)
        prefix = torch.full((batch * beam_size, 1), cfg.bos_id, dtype=torch.long, device=device)
        log_p = torch.zeros(batch, beam_size, dtype=torch.float64, device=device)
        log_p[:, 1:] = float("-inf")  # at the start all beams are the same: keep one
        lengths = torch.zeros(batch, beam_size, dtype=torch.long, device=device)
        done = torch.zeros(batch, beam_size, dtype=torch.bool, device=device)
        cache = model.init_cache() if use_cache else None
        vocab = cfg.tgt_vocab
        for _ in range(max_len):
            if use_cache:
                logits = model.decode(prefix[:, -1:], memory, pad_mask, cache=cache)
            else:
                logits = model.decode(prefix, memory, pad_mask)
            step = torch.log_softmax(logits[:, -1].double(), dim=-1).view(batch, beam_size, vocab)
            step[..., [cfg.pad_id, cfg.bos_id]] = float("-inf")  # never generated
            # a finished beam has one continuation, <pad>, that costs nothing
            finished_row = torch.full((vocab,), float("-inf"), dtype=torch.float64,
                                      device=device)
            finished_row[cfg.pad_id] = 0.0
            step = torch.where(done[..., None], finished_row, step)
            cand_log_p = log_p[..., None] + step  # (B, k, V)
            cand_len = torch.where(done, lengths, lengths + 1)[..., None].expand(-1, -1, vocab)
            score = cand_log_p / length_penalty(cand_len, length_penalty_alpha)
            best = score.view(batch, beam_size * vocab).topk(beam_size, dim=-1).indices  # (B, k)
            beam, token = best // vocab, best % vocab  # which beam each winner extends, and how
            log_p = cand_log_p.view(batch, -1).gather(1, best)
            lengths = cand_len.reshape(batch, -1).gather(1, best)
            done = done.gather(1, beam) | (token == cfg.eos_id)
            rows = (beam + torch.arange(batch, device=device)[:, None] * beam_size).view(-1)
            prefix = torch.cat([prefix.index_select(0, rows), token.view(-1, 1)], dim=1)
            if use_cache:
                reorder_cache(cache, rows)
            if bool(done.all()):
                break
        final = log_p / length_penalty(lengths, length_penalty_alpha)  # (B, k)
        choice = torch.where(done, final, final - 1e9).argmax(-1)  # prefer finished: (B,)
        rows = choice + torch.arange(batch, device=device) * beam_size
        tokens = prefix.index_select(0, rows)[:, 1:]
        if return_scores:
            return tokens, final.gather(1, choice[:, None])[:, 0]
        return tokens
