"""The Transformer in low-level PyTorch: attention, layers and the model by hand (lesson 07, L2).

Vaswani et al. (2017), "Attention Is All You Need": scaled dot-product attention (Section
3.2.1, Equation 1), multi-head attention (3.2.2), LayerNorm, the position-wise feed-forward
network (3.3, Equation 2), sinusoidal positions (3.5), post-LN encoder and decoder layers
(3.1), a small encoder-decoder with shared embeddings (3.4), the label-smoothed loss (5.4)
and the warm-up schedule (5.3). Tensors, matmuls and autograd only: no ``torch.nn`` layers,
no fused kernels, no ``torch.optim`` (a test checks it). Why this level, the mask
convention and the parameter names: ../theory.md (section 10.3); derivations and shapes
there too. Training on copy / reverse: train.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from utils import import_lesson

# Taught in lesson 02 (02_MLP/pytorch_lowlevel/mlp_lowlevel.py): inverted dropout, the Adam
# step and zero_grad, used here as they are; the paper's Adam settings (Section 5.3) below.
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
dropout, adam_step, zero_grad = _mlp.dropout, _mlp.adam_step, _mlp.zero_grad
ADAM_BETAS, ADAM_EPS = (0.9, 0.98), 1e-9

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # special tokens; data tokens start at 3 (reserved=3)
RESERVED = 3


def _check_tokens(tokens: torch.Tensor, vocab_size: int) -> None:
    """The entry points' check of token ids: an int tensor (B, T), T >= 1, ids in 0..V-1."""
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.is_floating_point() \
            or tokens.shape[1] < 1:
        raise ValueError("tokens: expected an int64 tensor (B, T) with T >= 1, got "
                         f"{getattr(tokens, 'dtype', type(tokens).__name__)} "
                         f"{tuple(getattr(tokens, 'shape', ()))}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(f"tokens must be in [0, {vocab_size}), got values in "
                         f"[{int(tokens.min())}, {int(tokens.max())}]")


# --------------------------------------------------------------------------------------
# 1. Masks and scaled dot-product attention (Section 3.2.1)
# --------------------------------------------------------------------------------------


def causal_mask(T: int, device=None) -> torch.Tensor:
    """The decoder's "no peeking ahead" mask (Section 3.2.3).

    Inputs:  T - sequence length (>= 1); device
    Returns: (T, T) bool, True above the diagonal: query i may NOT attend key j > i
             (torch's convention, as ``nn.Transformer.generate_square_subsequent_mask`` but
             boolean instead of 0 / -inf)
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"causal_mask: T must be a positive int, got {T!r}")
    return torch.ones(T, T, dtype=torch.bool, device=device).triu(diagonal=1)


def _combined_mask(attn_mask, key_padding_mask, shape, dtype, device) -> torch.Tensor | None:
    """The additive float mask, broadcastable to ``shape`` = (B, h, T_q, T_k), or None.

    True entries of the boolean masks become -inf; a float attn_mask is added as it is.
    The result is on ``device`` (the scores'), wherever the masks were.
    """
    B, _, T_q, T_k = shape
    total = None
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor) or attn_mask.ndim > 4:
            raise ValueError("attn_mask: expected a tensor broadcastable to (B, h, T_q, T_k) = "
                             f"{tuple(shape)}, got {getattr(attn_mask, 'shape', attn_mask)!r}")
        try:
            torch.broadcast_shapes(attn_mask.shape, shape)
        except RuntimeError:
            raise ValueError(f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to "
                             f"(B, h, T_q, T_k) = {tuple(shape)}; a (T_q, T_k) = ({T_q}, {T_k}) "
                             "mask is the usual form") from None
        if attn_mask.dtype == torch.bool:
            total = torch.zeros(attn_mask.shape, dtype=dtype, device=device)
            total = total.masked_fill(attn_mask.to(device), -math.inf)
        elif attn_mask.is_floating_point():
            total = attn_mask.to(dtype=dtype, device=device)
        else:
            raise ValueError(f"attn_mask: expected a bool (True = masked out) or float (added) "
                             f"tensor, got {attn_mask.dtype}")
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
            raise ValueError("key_padding_mask: expected a bool tensor (B, T_k), True at padding")
        if tuple(key_padding_mask.shape) != (B, T_k):
            raise ValueError(f"key_padding_mask: expected shape (B, T_k) = ({B}, {T_k}), got "
                             f"{tuple(key_padding_mask.shape)}")
        padding = torch.zeros((B, 1, 1, T_k), dtype=dtype, device=device)
        padding = padding.masked_fill(key_padding_mask[:, None, None, :].to(device), -math.inf)
        total = padding if total is None else total + padding  # (B, h|1, T_q|1, T_k)
    return total


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None,
                                 key_padding_mask: torch.Tensor | None = None,
                                 dropout_p: float = 0.0, training: bool = False
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V    (Equation 1)

    Inputs:  q (B, h, T_q, d_k), k (B, h, T_k, d_k), v (B, h, T_k, d_v), one float dtype;
             attn_mask - bool, True = masked out, or float, added to the scores;
                 broadcastable to (B, h, T_q, T_k), e.g. causal_mask(T) of shape (T, T)
             key_padding_mask - (B, T_k) bool, True at padding keys
             dropout_p, training - dropout on the attention weights (only when training)
    Returns: out (B, h, T_q, d_v), weights (B, h, T_q, T_k) - the probabilities that
             multiplied V (after dropout, as ``nn.MultiheadAttention`` returns them)

    Why 1/sqrt(d_k) (Section 3.2.1, footnote 4): with unit-variance entries, q . k sums d_k
    products and has variance d_k; scaling brings it back to 1 so the softmax does not
    saturate (tiny gradients) as d_k grows.

    Masking: masked scores are set to -inf, so exp gives exactly 0 weight. A query whose
    keys are ALL masked (a padded query row with a causal mask, say) would get softmax of a
    row of -inf = 0/0 = NaN, and the NaN would spread through the gradients. Here such a
    row gets weights 0 and output 0 (and zero gradient), as ``F.scaled_dot_product_attention``
    does in torch >= 2.5; ``nn.MultiheadAttention`` returns NaN there instead. Such rows are
    padding: the loss ignores them anyway.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or not t.is_floating_point():
            raise ValueError(f"{name}: expected a 4-D float tensor (B, h, T, d), got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    B, h, T_q, d_k = q.shape
    if k.shape[:2] != (B, h) or k.shape[3] != d_k:
        raise ValueError(f"k: expected shape (B, h, T_k, d_k) = ({B}, {h}, T_k, {d_k}) to match "
                         f"q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v: expected shape (B, h, T_k, d_v) with (B, h, T_k) = "
                         f"{tuple(k.shape[:3])} as k, got {tuple(v.shape)}")
    T_k = k.shape[2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T_q, T_k)
    mask = _combined_mask(attn_mask, key_padding_mask, (B, h, T_q, T_k), q.dtype, q.device)
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        scores = scores + mask  # -inf where masked
        # rows with every key masked: softmax over a row of zeros instead (finite, no NaN),
        # then their weights are set to 0 below
        dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (B, h, T_q, 1)
        scores = scores.masked_fill(dead, 0.0)
        weights = torch.softmax(scores, dim=-1).masked_fill(dead, 0.0)
    weights = dropout(weights, dropout_p, training=training)
    return weights @ v, weights  # (B, h, T_q, d_v), (B, h, T_q, T_k)


# --------------------------------------------------------------------------------------
# 2. Parameters in plain tensors: a tiny container, linear maps, layer norm
# --------------------------------------------------------------------------------------


class ParameterContainer:
    """A minimal parameter container: ``params`` (its own leaf tensors) and ``children``.

    Names join with dots like torch's state_dict keys ("layers.0.self_attn.in_proj_weight"),
    so the weights of a ``torch.nn`` module copy over with ``load_state_dict``.
    """

    def __init__(self):
        self.params: dict[str, torch.Tensor] = {}
        self.children: dict[str, ParameterContainer] = {}
        self.training = True

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
        """(dotted name, tensor) for this block's parameters, then each child's."""
        for name, tensor in self.params.items():
            yield prefix + name, tensor
        for name, child in self.children.items():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[torch.Tensor]:
        """The parameter tensors, in a fixed order (for the optimiser)."""
        return [t for _, t in self.named_parameters()]

    def num_parameters(self) -> int:
        """Number of trainable numbers."""
        return sum(t.numel() for t in self.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Detached copies of every parameter, by dotted name."""
        return {name: t.detach().clone() for name, t in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` (name -> tensor, e.g. an nn.Module's state_dict()) into the parameters.

        The names must be exactly this block's; shapes must agree. Raises ValueError otherwise.
        """
        ours = dict(self.named_parameters())
        missing, unexpected = set(ours) - set(state), set(state) - set(ours)
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing {sorted(missing)}, unexpected "
                             f"{sorted(unexpected)}")
        with torch.no_grad():
            for name, tensor in ours.items():
                value = torch.as_tensor(state[name])
                if value.shape != tensor.shape:
                    raise ValueError(f"{name}: expected shape {tuple(tensor.shape)}, got "
                                     f"{tuple(value.shape)}")
                tensor.copy_(value)

    def train(self, mode: bool = True):
        """Training mode (dropout on) or, with mode=False, evaluation mode; returns self."""
        self.training = mode
        for child in self.children.values():
            child.train(mode)
        return self

    def eval(self):
        """Evaluation mode: every dropout is off, the outputs are deterministic."""
        return self.train(False)


def _leaf(t: torch.Tensor, dtype, device) -> torch.Tensor:
    """A trainable leaf tensor: drawn in float64 on the CPU, then cast and moved."""
    return t.to(dtype=dtype, device=device).requires_grad_(True)


def _xavier_uniform(shape, generator) -> torch.Tensor:
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), float64."""
    bound = math.sqrt(6.0 / (shape[0] + shape[1]))
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y = x W^T + b, with W (D_out, D_in) in nn.Linear's layout.

    Inputs: x (..., D_in), weight (D_out, D_in), bias (D_out,) or None; Returns (..., D_out)
    """
    y = x @ weight.T
    return y if bias is None else y + bias


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last axis (Ba et al. 2016), as nn.LayerNorm(d_model).

        y = (x - mean) / sqrt(var + eps) * gamma + beta,  mean and (biased) var over d_model

    Inputs: x (..., d), weight gamma (d,), bias beta (d,); Returns (..., d)
    Each token is normalised on its own: no batch statistics, so training and evaluation
    agree and padding never leaks into real tokens.
    """
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as torch
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


class LayerNorm(ParameterContainer):
    """Parameters ``weight`` (d,) = 1 and ``bias`` (d,) = 0, as nn.LayerNorm(d)."""

    def __init__(self, d_model: int, eps: float = 1e-5, *, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.eps = eps
        self.params["weight"] = _leaf(torch.ones(d_model), dtype, device)
        self.params["bias"] = _leaf(torch.zeros(d_model), dtype, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.params["weight"], self.params["bias"], self.eps)


# --------------------------------------------------------------------------------------
# 3. Multi-head attention (Section 3.2.2)
# --------------------------------------------------------------------------------------


class MultiHeadAttention(ParameterContainer):
    """Multi-head attention with nn.MultiheadAttention's parameters (batch_first).

    Inputs (constructor): d_model, n_heads (d_model divisible by it), attn_dropout (on the
        attention weights), generator (initialisation), dtype, device
    Parameters: in_proj_weight (3 d, d) = [W_q; W_k; W_v] stacked, in_proj_bias (3 d,),
        out_proj.weight (d, d) = W^O, out_proj.bias (d,). Each projection: y = x W^T + b.
    The paper's per-head W_i^Q (d_model, d_k) are the column blocks of W_q^T: one (d, d)
    matmul computes all h heads' projections at once, then a reshape separates them.
    """

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float = 0.0, *,
                 generator: torch.Generator | None = None, dtype=torch.float32, device="cpu"):
        super().__init__()
        if n_heads < 1 or d_model < 1 or d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}: "
                             "each head gets d_k = d_model / n_heads features")
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.attn_dropout = attn_dropout
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.params["in_proj_weight"] = _leaf(_xavier_uniform((3 * d_model, d_model), generator),
                                              dtype, device)
        self.params["in_proj_bias"] = _leaf(torch.zeros(3 * d_model), dtype, device)
        self.params["out_proj.weight"] = _leaf(_xavier_uniform((d_model, d_model), generator),
                                               dtype, device)
        self.params["out_proj.bias"] = _leaf(torch.zeros(d_model), dtype, device)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, h, T, d_k): feature block i of width d_k is head i."""
        B, T, _ = x.shape
        return x.reshape(B, T, self.n_heads, self.d_k).transpose(1, 2)  # (B, h, T, d_k)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, T, d_k) -> (B, T, d_model): Concat(head_1, ..., head_h)."""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, h*d_k)

    def __call__(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attn_mask: torch.Tensor | None = None,
                 key_padding_mask: torch.Tensor | None = None,
                 average_attn_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O

        Inputs:  query (B, T_q, d), key (B, T_k, d), value (B, T_k, d);
                 attn_mask bool/float, (T_q, T_k), (B*h, T_q, T_k) as torch, or
                 broadcastable to (B, h, T_q, T_k); True = masked out;
                 key_padding_mask (B, T_k) bool, True at padding
        Returns: out (B, T_q, d); weights (B, T_q, T_k) averaged over heads, or
                 (B, h, T_q, T_k) with average_attn_weights=False
        """
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, torch.Tensor) or t.ndim != 3 or t.shape[-1] != self.d_model:
                raise ValueError(f"{name}: expected (B, T, d_model={self.d_model}), got "
                                 f"{getattr(t, 'shape', type(t).__name__)}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"key {tuple(key.shape)} and value {tuple(value.shape)} must share "
                             f"(B, T_k), and B with query {tuple(query.shape)}")
        params, d = self.params, self.d_model
        W_q, W_k, W_v = params["in_proj_weight"].split(d)  # each (d, d)
        b_q, b_k, b_v = params["in_proj_bias"].split(d)  # each (d,)
        q = self.split_heads(linear(query, W_q, b_q))  # (B, h, T_q, d_k)
        k = self.split_heads(linear(key, W_k, b_k))  # (B, h, T_k, d_k)
        v = self.split_heads(linear(value, W_v, b_v))  # (B, h, T_k, d_k)
        B, T_q, T_k = query.shape[0], query.shape[1], key.shape[1]
        if attn_mask is not None and attn_mask.ndim == 3:
            # torch's 3-D form: one (T_q, T_k) mask per (batch, head), batch-major
            if tuple(attn_mask.shape) != (B * self.n_heads, T_q, T_k):
                raise ValueError(f"attn_mask: a 3-D mask must be (B*h, T_q, T_k) = "
                                 f"({B * self.n_heads}, {T_q}, {T_k}), got "
                                 f"{tuple(attn_mask.shape)}")
            attn_mask = attn_mask.reshape(B, self.n_heads, T_q, T_k)  # (B, h, T_q, T_k)
        heads, weights = scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
            dropout_p=self.attn_dropout, training=self.training)  # (B,h,T_q,d_k), (B,h,T_q,T_k)
        out = linear(self.merge_heads(heads), params["out_proj.weight"], params["out_proj.bias"])
        if average_attn_weights:
            weights = weights.mean(dim=1)  # (B, T_q, T_k)
        return out, weights


# --------------------------------------------------------------------------------------
# 4. Feed-forward network and positional encoding (Sections 3.3, 3.5)
# --------------------------------------------------------------------------------------


def feed_forward(x: torch.Tensor, params: dict, dropout_p: float = 0.0,
                 training: bool = False) -> torch.Tensor:
    """FFN(x) = max(0, x W_1^T + b_1) W_2^T + b_2, the same for every position (Equation 2).

    Inputs:  x (B, T, d_model); params with linear1.weight (d_ff, d), linear1.bias (d_ff,),
             linear2.weight (d, d_ff), linear2.bias (d,); dropout_p on the hidden ReLU
             activations (torch's layers do this; the paper does not mention it)
    Returns: (B, T, d_model)
    """
    hidden = torch.relu(linear(x, params["linear1.weight"], params["linear1.bias"]))
    hidden = dropout(hidden, dropout_p, training=training)  # (B, T, d_ff)
    return linear(hidden, params["linear2.weight"], params["linear2.bias"])


def sinusoidal_positional_encoding(max_len: int, d_model: int, dtype=torch.float32,
                                   device=None) -> torch.Tensor:
    """The fixed encodings of Section 3.5.

        PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

    Inputs:  max_len - positions 0..max_len-1; d_model (>= 2)
    Returns: (max_len, d_model). Each pair of columns is a rotation at its own frequency,
             so PE[pos + k] is a linear function of PE[pos] (exercise 04).
    """
    assert max_len >= 1 and d_model >= 2, f"need max_len >= 1, d_model >= 2: {max_len}, {d_model}"
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),) = 0, 2, 4, ...
    angles = pos / 10000.0 ** (two_i / d_model)  # (max_len, ceil(d/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # an odd d_model has one sin more
    return pe.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------------------
# 5. Encoder and decoder layers (Section 3.1)
# --------------------------------------------------------------------------------------


class _Layer(ParameterContainer):
    """Shared set-up of the encoder and decoder layers."""

    def __init__(self, d_model, n_heads, d_ff, dropout, attn_dropout, ffn_dropout,
                 norm_first, n_norms, generator, dtype, device):
        super().__init__()
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.d_model, self.norm_first = d_model, norm_first
        self.dropout_p, self.ffn_dropout = dropout, ffn_dropout
        factory = {"dtype": dtype, "device": device}
        self._new_attention = lambda: MultiHeadAttention(d_model, n_heads, attn_dropout,
                                                         generator=generator, **factory)
        self.children["self_attn"] = self._new_attention()
        # the FFN's parameters: weights Xavier-uniform, biases 0
        self.params["linear1.weight"] = _leaf(_xavier_uniform((d_ff, d_model), generator),
                                              **factory)
        self.params["linear1.bias"] = _leaf(torch.zeros(d_ff), **factory)
        self.params["linear2.weight"] = _leaf(_xavier_uniform((d_model, d_ff), generator),
                                              **factory)
        self.params["linear2.bias"] = _leaf(torch.zeros(d_model), **factory)
        for i in range(1, n_norms + 1):
            self.children[f"norm{i}"] = LayerNorm(d_model, **factory)

    def sublayer_connection(self, x: torch.Tensor, norm: str, sublayer) -> torch.Tensor:
        """The residual connection around every sub-layer ("Add & Norm" of Figure 1;
        Section 3.1, dropout as Section 5.4), with the LayerNorm ``self.children[norm]``:

        post-LN (paper):  x = LayerNorm(x + Dropout(Sublayer(x)))
        pre-LN:           x = x + Dropout(Sublayer(LayerNorm(x)))
        """
        if self.norm_first:
            return x + dropout(sublayer(self.children[norm](x)), self.dropout_p,
                               training=self.training)
        return self.children[norm](x + dropout(sublayer(x), self.dropout_p, training=self.training))

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return feed_forward(x, self.params, self.ffn_dropout, self.training)


class EncoderLayer(_Layer):
    """Self-attention, then the FFN, each a residual sub-layer (Section 3.1, Figure 1 left).

    Inputs (constructor): d_model, n_heads, d_ff, dropout (residual dropout, Section 5.4),
        attn_dropout (on attention weights), ffn_dropout (on the FFN's hidden ReLU), each
        0 by default except dropout; norm_first (pre-LN) False = the paper's post-LN;
        generator, dtype, device
    Parameters: as nn.TransformerEncoderLayer: self_attn.*, linear1.*, linear2.*, norm1.*,
        norm2.*. nn.TransformerEncoderLayer(dropout=p) applies p at all three places.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, *,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0, norm_first: bool = False,
                 generator: torch.Generator | None = None, dtype=torch.float32, device="cpu"):
        super().__init__(d_model, n_heads, d_ff, dropout, attn_dropout, ffn_dropout,
                         norm_first, 2, generator, dtype, device)

    def __call__(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                 key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs: x (B, T, d_model); attn_mask (T, T) bool; key_padding_mask (B, T) bool.
        Returns: (B, T, d_model)"""
        attn = self.children["self_attn"]
        x = self.sublayer_connection(x, "norm1",
                                     lambda h: attn(h, h, h, attn_mask, key_padding_mask)[0])
        return self.sublayer_connection(x, "norm2", self._ffn)


class DecoderLayer(_Layer):
    """Masked self-attention, attention over the encoder output ("memory"), then the FFN
    (Section 3.1, Figure 1 right), each a residual sub-layer.

    Inputs (constructor): as EncoderLayer
    Parameters: as nn.TransformerDecoderLayer: self_attn.*, multihead_attn.* (the
        encoder-decoder attention: queries from the decoder, keys and values from memory),
        linear1.*, linear2.*, norm1.*, norm2.*, norm3.*
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, *,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0, norm_first: bool = False,
                 generator: torch.Generator | None = None, dtype=torch.float32, device="cpu"):
        super().__init__(d_model, n_heads, d_ff, dropout, attn_dropout, ffn_dropout,
                         norm_first, 3, generator, dtype, device)
        self.children["multihead_attn"] = self._new_attention()  # encoder-decoder attention

    def __call__(self, x: torch.Tensor, memory: torch.Tensor,
                 tgt_mask: torch.Tensor | None = None,
                 tgt_key_padding_mask: torch.Tensor | None = None,
                 memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs: x (B, T, d) decoder states; memory (B, S, d) encoder output;
        tgt_mask (T, T) bool (causal_mask(T)); tgt_key_padding_mask (B, T) bool;
        memory_key_padding_mask (B, S) bool (the source padding). Returns (B, T, d)."""
        self_attn, cross_attn = self.children["self_attn"], self.children["multihead_attn"]
        x = self.sublayer_connection(x, "norm1", lambda h: self_attn(h, h, h, tgt_mask,
                                                                     tgt_key_padding_mask)[0])
        x = self.sublayer_connection(x, "norm2", lambda h: self._cross(cross_attn, h, memory,
                                                                       memory_key_padding_mask))
        return self.sublayer_connection(x, "norm3", self._ffn)

    def _cross(self, cross_attn, h, memory, memory_key_padding_mask):
        """Encoder-decoder attention; keeps its weights (B, h, T, S), detached, in
        ``last_cross_attention`` for plots (which source token each output looked at)."""
        out, weights = cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask,
                                  average_attn_weights=False)
        self.last_cross_attention = weights.detach()
        return out


# --------------------------------------------------------------------------------------
# 6. The encoder-decoder model
# --------------------------------------------------------------------------------------


class Transformer(ParameterContainer):
    """A small encoder-decoder Transformer (Figure 1) built from the layers above.

    Inputs (constructor):
        vocab_size  - joint source/target vocabulary (specials 0 <pad>, 1 <bos>, 2 <eos>)
        d_model, n_heads, n_encoder_layers, n_decoder_layers, d_ff, dropout - the
                      paper's base model is 512, 8, 6, 6, 2048, 0.1 (Table 3)
        max_len     - length of the positional table (longest source or target)
        pad_id      - the padding token (masked as a key, ignored by the loss)
        norm_first  - False: post-LN as the paper; True: pre-LN (then a final LayerNorm
                      after each stack, named encoder_norm / decoder_norm)
        seed, dtype, device
    Parameters: embedding.weight (V, d) - ONE matrix for source embeddings, target
        embeddings and the pre-softmax projection (Section 3.4), encoder.{i}.*, decoder.{i}.*
    Embeddings are multiplied by sqrt(d_model) (Section 3.4): with entries ~ N(0, 1/d) the
    scaled embedding has unit-size entries, comparable with the positional encoding's.
    """

    def __init__(self, vocab_size: int, d_model: int = 64, n_heads: int = 4,
                 n_encoder_layers: int = 2, n_decoder_layers: int = 2, d_ff: int = 256,
                 dropout: float = 0.1, *, max_len: int = 64, pad_id: int = PAD_ID,
                 norm_first: bool = False, seed: int = 0, dtype=torch.float32, device="cpu"):
        super().__init__()
        if not isinstance(vocab_size, int) or vocab_size <= RESERVED:
            raise ValueError(f"vocab_size must be an int > {RESERVED} (3 special tokens + data), "
                             f"got {vocab_size!r}")
        generator = torch.Generator().manual_seed(seed)
        factory = {"dtype": dtype, "device": device}
        self.vocab_size, self.d_model, self.max_len, self.pad_id = (vocab_size, d_model,
                                                                    max_len, pad_id)
        self.dropout_p, self.norm_first = dropout, norm_first
        embedding = torch.randn(vocab_size, d_model, generator=generator, dtype=torch.float64)
        self.params["embedding.weight"] = _leaf(embedding / math.sqrt(d_model), **factory)
        layer_options = {"dropout": dropout, "norm_first": norm_first, "generator": generator,
                         **factory}
        for i in range(n_encoder_layers):
            self.children[f"encoder.{i}"] = EncoderLayer(d_model, n_heads, d_ff, **layer_options)
        for i in range(n_decoder_layers):
            self.children[f"decoder.{i}"] = DecoderLayer(d_model, n_heads, d_ff, **layer_options)
        if norm_first:
            self.children["encoder_norm"] = LayerNorm(d_model, **factory)
            self.children["decoder_norm"] = LayerNorm(d_model, **factory)
        self.n_encoder_layers, self.n_decoder_layers = n_encoder_layers, n_decoder_layers
        self.pe = sinusoidal_positional_encoding(max_len, d_model, **factory)  # (max_len, d)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings * sqrt(d_model) + positional encodings, then dropout (Section 5.4).

        Inputs: tokens (B, T) int64 in [0, vocab_size); Returns (B, T, d_model)
        """
        _check_tokens(tokens, self.vocab_size)
        T = tokens.shape[1]
        if T > self.max_len:
            raise ValueError(f"a sequence of length {T} is longer than the positional table "
                             f"(max_len={self.max_len}); build the model with max_len >= {T}")
        x = self.params["embedding.weight"][tokens] * math.sqrt(self.d_model)  # (B, T, d)
        return dropout(x + self.pe[:T], self.dropout_p, training=self.training)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs: src (B, S) int64, padded with pad_id.
        Returns: memory (B, S, d_model), src_key_padding_mask (B, S) bool (True at padding)."""
        src_key_padding_mask = src == self.pad_id
        x = self.embed(src)
        for i in range(self.n_encoder_layers):
            x = self.children[f"encoder.{i}"](x, key_padding_mask=src_key_padding_mask)
        if self.norm_first:
            x = self.children["encoder_norm"](x)
        return x, src_key_padding_mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor,
               memory_key_padding_mask: torch.Tensor) -> torch.Tensor:
        """Inputs: tgt_in (B, T) int64 (<bos> + target shifted right), memory (B, S, d),
        memory_key_padding_mask (B, S) bool (the source padding).
        Returns: logits (B, T, vocab_size).

        The output projection is the embedding matrix transposed (Section 3.4).
        """
        T = tgt_in.shape[1]
        if memory.ndim != 3 or memory.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"memory (B, S, d_model) and tgt_in (B, T) must have the same "
                             f"batch size B: got memory {tuple(memory.shape)}, tgt_in "
                             f"{tuple(tgt_in.shape)}")
        x = self.embed(tgt_in)
        tgt_mask = causal_mask(T, device=tgt_in.device)  # (T, T)
        tgt_key_padding_mask = tgt_in == self.pad_id
        for i in range(self.n_decoder_layers):
            x = self.children[f"decoder.{i}"](x, memory, tgt_mask, tgt_key_padding_mask,
                                              memory_key_padding_mask)
        if self.norm_first:
            x = self.children["decoder_norm"](x)
        return x @ self.params["embedding.weight"].T  # (B, T, V)

    def __call__(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits. Inputs: src (B, S), tgt_in (B, T) int64.
        Returns: (B, T, vocab_size): position t predicts target token t."""
        _check_tokens(src, self.vocab_size)
        _check_tokens(tgt_in, self.vocab_size)
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError("src (B, S) and tgt_in (B, T) must have the same batch size B: "
                             f"got src {tuple(src.shape)}, tgt_in {tuple(tgt_in.shape)}")
        memory, src_key_padding_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_key_padding_mask)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Generate by taking the most likely token at each step until <eos>.

        Inputs:  src (B, S) int64; max_new_tokens - steps at most (< max_len)
        Returns: (B, max_new_tokens) int64; after a sequence's <eos> every token is <pad>
                 (<pad> and <bos> are never chosen before it).
        Recomputes the decoder over the whole prefix each step: O(T^2) steps of work, simple
        and exact; exercise 05 derives the key-value cache that avoids it.
        """
        was_training = self.training
        self.eval()
        memory, src_key_padding_mask = self.encode(src)
        B = src.shape[0]
        tokens = torch.full((B, 1), BOS_ID, dtype=torch.int64, device=src.device)
        finished = torch.zeros(B, dtype=torch.bool, device=src.device)
        for _ in range(max_new_tokens):
            logits = self.decode(tokens, memory, src_key_padding_mask)[:, -1]  # (B, V): last step
            logits[:, [PAD_ID, BOS_ID]] = -math.inf  # <pad> and <bos> are never generated
            step = logits.argmax(dim=-1).masked_fill(finished, PAD_ID)  # (B,)
            tokens = torch.cat([tokens, step[:, None]], dim=1)
            finished |= step == EOS_ID
            if bool(finished.all()):
                break
        self.train(was_training)
        out = tokens[:, 1:]
        if out.shape[1] < max_new_tokens:  # all finished early: pad to a fixed width
            pad = torch.full((B, max_new_tokens - out.shape[1]), PAD_ID, dtype=torch.int64,
                             device=src.device)
            out = torch.cat([out, pad], dim=1)
        return out


# --------------------------------------------------------------------------------------
# 7. Label-smoothed cross-entropy and the schedule (Sections 5.4, 5.3); Adam is lesson 02's
# --------------------------------------------------------------------------------------


def label_smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                 label_smoothing: float = 0.1, ignore_index: int = PAD_ID
                                 ) -> torch.Tensor:
    """Cross-entropy against the smoothed target q = (1 - eps) onehot(y) + eps / K.

        loss_n = -sum_k q_k log p_k = (1 - eps) (-log p_y) + eps * mean_k(-log p_k)

    averaged over the tokens whose target is not ``ignore_index`` (padding), as
    ``nn.CrossEntropyLoss(label_smoothing=eps, ignore_index=...)``. Here eps / K goes to
    EVERY class including the true one (torch's choice); some implementations spread eps
    over the K - 1 wrong classes, or K - 2 (excluding padding too): the minimum moves
    slightly, the idea is the same. Smoothing makes the model less sure; the paper notes it
    hurts perplexity but improves accuracy and BLEU (Section 5.4).

    Inputs:  logits (..., K) float; target (...) int64 in [0, K); label_smoothing eps in [0, 1)
    Returns: scalar; NaN-free 0 if every target is ignored
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits (..., K) and target (...) must agree: got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    K = logits.shape[-1]
    log_p = torch.log_softmax(logits, dim=-1).reshape(-1, K)  # (N, K)
    target = target.reshape(-1)  # (N,)
    keep = target != ignore_index  # (N,)
    safe = target.masked_fill(~keep, 0)  # any valid index for the ignored rows
    nll = -log_p.gather(1, safe[:, None])[:, 0]  # (N,) -log p_y
    uniform = -log_p.mean(dim=1)  # (N,) mean_k -log p_k
    per_token = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    count = keep.sum()
    return (per_token * keep).sum() / count.clamp(min=1)


def noam_lr(step: int, d_model: int, warmup: int = 4000, factor: float = 1.0) -> float:
    """lrate = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)   (Equation 3)

    Linear warm-up for ``warmup`` steps, then decay as 1/sqrt(step); the two meet at
    step = warmup, the peak factor * (d_model * warmup)^-0.5. Steps count from 1.
    """
    if not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"noam_lr: step counts from 1, got {step!r}")
    if warmup < 1 or d_model < 1:
        raise ValueError(f"noam_lr: need warmup >= 1 and d_model >= 1, got {warmup}, {d_model}")
    return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
