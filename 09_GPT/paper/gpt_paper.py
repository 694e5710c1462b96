"""GPT-1 and GPT-2 as Radford et al. describe them, in torch.nn (Level 3 of lesson 09).

A. Radford, K. Narasimhan, T. Salimans, I. Sutskever (2018), "Improving Language
Understanding by Generative Pre-Training" (GPT-1: Section 3.1, 4.1) and A. Radford, J. Wu,
R. Child, D. Luan, D. Amodei, I. Sutskever (2019), "Language Models are Unsupervised
Multitask Learners" (GPT-2: Section 2.3, Table 2): a decoder-only Transformer with learned
positions, causal self-attention, post-LN (GPT-1) or pre-LN with a final LayerNorm (GPT-2),
an output layer tied to the token embeddings; the next-token loss, AdamW with a cosine
schedule, and generation (greedy, temperature, top-k, top-p) with a key/value cache.
Derivations (factorisation, parameter and FLOP counts, cache cost, sampling): ``../theory.md``.
``convert.py`` ports weights to and from transformers; ``train.py`` trains a small GPT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # targets the loss skips (transformers' and F.cross_entropy's value)
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
NORM_POSITIONS = ("pre", "post")
ACTIVATIONS = {"gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-1 and GPT-2's code
               "gelu": F.gelu}  # the exact form x Phi(x), with erf
_INT_DTYPES = (torch.int64, torch.int32)


# --------------------------------------------------------------------------------------
# 1. Configuration (GPT-1 Section 4.1; GPT-2 Section 2.3, Table 2)
# --------------------------------------------------------------------------------------


@dataclass
class GPTConfig:
    """Every size and choice of the model; the defaults are GPT-2 small (124M).

    norm_position: "pre" (GPT-2: LayerNorm before each sub-layer, a final LayerNorm, and the
    residual projections initialised with std init_std / sqrt(2 n_layers)) or "post" (GPT-1,
    as the 2017 Transformer: LayerNorm after each residual sum, no final LayerNorm).
    activation: "gelu_tanh" (the tanh approximation both papers' code uses, transformers'
    "gelu_new") or "gelu" (exact, erf). attn_implementation: "eager" computes the attention
    step by step; "sdpa" runs the same maths in F.scaled_dot_product_attention.
    d_ff None means 4 * d_model.
    """

    vocab_size: int = 50257  # GPT-2's byte-level BPE (50,000 merges + 256 bytes + <|endoftext|>)
    max_len: int = 1024  # learned positions (n_positions / n_ctx): the longest context
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12  # each head has d_k = d_model / n_heads dimensions
    d_ff: int | None = None
    dropout: float = 0.1  # on the embeddings and each sub-layer's output
    attn_dropout: float = 0.1  # on the attention weights
    layer_norm_eps: float = 1e-5
    norm_position: str = "pre"
    activation: str = "gelu_tanh"
    attn_implementation: str = "eager"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        sizes = (self.vocab_size, self.max_len, self.d_model, self.n_layers, self.n_heads,
                 self.d_ff)
        if not all(isinstance(s, int) and s >= 1 for s in sizes) or self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig: sizes must be positive ints and d_model a multiple "
                             f"of n_heads (each head gets d_model / n_heads), got {self}")
        for field, value, allowed in [("norm_position", self.norm_position, NORM_POSITIONS),
                                      ("activation", self.activation, tuple(ACTIVATIONS)),
                                      ("attn_implementation", self.attn_implementation,
                                       ATTN_IMPLEMENTATIONS)]:
            if value not in allowed:
                raise ValueError(f"GPTConfig: {field} must be one of {allowed}, got {value!r}")

    @classmethod
    def gpt1(cls, **overrides) -> GPTConfig:
        """GPT-1 (2018, Section 4.1): 12 post-LN layers, 768 wide, 12 heads, d_ff 3072,
        context 512, BPE vocabulary of 40,478 (40,000 merges); ~117M parameters."""
        return cls(**{"vocab_size": 40478, "max_len": 512, "norm_position": "post",
                      **overrides})

    @classmethod
    def _gpt2(cls, n_layers: int, d_model: int, overrides: dict) -> GPTConfig:
        return cls(**{"n_layers": n_layers, "d_model": d_model, "n_heads": d_model // 64,
                      **overrides})

    @classmethod
    def gpt2(cls, **overrides) -> GPTConfig:
        """GPT-2 small (Table 2: 117M; 124M counted with the vocabulary of 50,257)."""
        return cls._gpt2(12, 768, overrides)

    @classmethod
    def gpt2_medium(cls, **overrides) -> GPTConfig:
        """GPT-2 medium: 24 layers, 1024 wide, 16 heads (Table 2: 345M; 355M counted)."""
        return cls._gpt2(24, 1024, overrides)

    @classmethod
    def gpt2_large(cls, **overrides) -> GPTConfig:
        """GPT-2 large: 36 layers, 1280 wide, 20 heads (Table 2: 762M; 774M counted)."""
        return cls._gpt2(36, 1280, overrides)

    @classmethod
    def gpt2_xl(cls, **overrides) -> GPTConfig:
        """GPT-2 XL: 48 layers, 1600 wide, 25 heads (Table 2: 1542M; 1558M counted)."""
        return cls._gpt2(48, 1600, overrides)

    @classmethod
    def nano(cls, **overrides) -> GPTConfig:
        """nanoGPT's CPU configuration for Tiny Shakespeare characters: 4 layers, 4 heads,
        128 wide, context 64, no dropout, the 65 characters of the text."""
        return cls(**{"vocab_size": 65, "max_len": 64, "d_model": 128, "n_layers": 4,
                      "n_heads": 4, "dropout": 0.0, "attn_dropout": 0.0, **overrides})


# --------------------------------------------------------------------------------------
# 2. The input: token embeddings plus learned positions (GPT-1 Section 3.1, Equation 2)
# --------------------------------------------------------------------------------------


class GPTEmbeddings(nn.Module):
    """h_0 = Dropout(U W_e + W_p): token rows plus LEARNED position rows (GPT-1 Eq. 2).

    forward(input_ids (B, T), position_ids (B, T) or (1, T)) -> (B, T, d_model).
    No LayerNorm here (unlike BERT): GPT-2's pre-LN blocks normalise their own inputs.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model)  # W_e (V, D), tied to lm_head
        self.position = nn.Embedding(cfg.max_len, cfg.d_model)  # W_p (max_len, D)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.word(input_ids) + self.position(position_ids))


# --------------------------------------------------------------------------------------
# 3. The key/value cache: what earlier positions computed, kept for generation
# --------------------------------------------------------------------------------------


class KVCache:
    """Each layer's keys and values of the positions seen so far, (B, A, S, d_k) each.

    A causal model never revisits earlier positions: their keys and values do not change
    when tokens are appended, so generation keeps them and feeds only the new token (cost
    per step O(S) instead of O(S^2); ../theory.md). Pass one KVCache to successive
    ``GPT.forward(..., cache=cache)`` calls: each call appends its keys/values (and the
    attention mask of its tokens) and attends to everything held.
    ``length``: positions held S; ``attention_mask``: (B, S) 1/0 of the held positions, or
    None when all are real tokens.
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []  # one (B, A, S, d_k) per layer
        self.values: list[torch.Tensor] = []
        self.attention_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def update(self, layer_index: int, keys: torch.Tensor,
               values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this call's keys/values (B, A, T, d_k) to layer ``layer_index``'s; return
        all of them (B, A, S + T, d_k)."""
        if layer_index == len(self.keys):  # the first call fills the layer
            self.keys.append(keys)
            self.values.append(values)
        else:
            self.keys[layer_index] = torch.cat([self.keys[layer_index], keys], dim=2)
            self.values[layer_index] = torch.cat([self.values[layer_index], values], dim=2)
        return self.keys[layer_index], self.values[layer_index]


# --------------------------------------------------------------------------------------
# 4. Masked (causal) multi-head self-attention (GPT-1 Section 3.1; Vaswani et al. 3.2)
# --------------------------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t only:

        [Q K V] = x W_qkv + b_qkv            one fused (3D, D) Linear, split into A heads
        head_i  = softmax(Q_i K_i^T / sqrt(d_k) + causal mask + padding mask) V_i
        out     = Concat(head_1, ..., head_A) W_o + b_o

    Masked scores are set to the most negative float, so their weight exp(.) is exactly 0.
    Dropout (attn_dropout) acts on the attention weights.

    forward(x (B, T, D), attn_mask (T, S) bool, True = the key is in the future;
            key_padding_mask (B, S) bool, True = padding, or None; cache: KVCache or None)
    -> (B, T, D). S = T, or the cached positions + T with a cache.
    """

    def __init__(self, cfg: GPTConfig, layer_index: int):
        super().__init__()
        self.n_heads, self.d_k = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # W_q, W_k, W_v side by side
        self.out = nn.Linear(cfg.d_model, cfg.d_model)  # W_o, a residual projection
        self.attn_dropout = cfg.attn_dropout
        self.implementation = cfg.attn_implementation
        self.layer_index = layer_index  # which cache entry is ours

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        # (B, T, 3D) -> three (B, T, D) -> (B, T, A, d_k) -> (B, A, T, d_k)
        q, k, v = (part.view(batch, length, self.n_heads, self.d_k).transpose(1, 2)
                   for part in self.qkv(x).split(width, dim=-1))
        if cache is not None:
            k, v = cache.update(self.layer_index, k, v)  # (B, A, S, d_k): earlier + new
        p = self.attn_dropout if self.training else 0.0
        if self.implementation == "eager":
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, A, T, S)
            blocked = torch.finfo(scores.dtype).min
            scores = scores.masked_fill(attn_mask, blocked)  # causal: no key after the query
            if key_padding_mask is not None:  # no padding key: (B, S) -> (B, 1, 1, S)
                scores = scores.masked_fill(key_padding_mask[:, None, None, :], blocked)
            weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over allowed keys
            heads = F.dropout(weights, p, self.training) @ v  # (B, A, T, d_k)
        elif key_padding_mask is None and k.shape[2] == length:  # no padding, no cache
            heads = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:  # the same maths in one fused kernel, with the masks as an additive bias
            blocked_keys = attn_mask if key_padding_mask is None \
                else attn_mask | key_padding_mask[:, None, None, :]  # (B, 1, T, S)
            bias = torch.zeros(blocked_keys.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(blocked_keys, torch.finfo(q.dtype).min)
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        heads = heads.transpose(1, 2).reshape(batch, length, width)  # concat: (B, T, A * d_k)
        return self.out(heads)


def causal_mask(length: int, past: int = 0, device=None) -> torch.Tensor:
    """(T, S) bool, S = past + T, True where key s lies after query t (s > past + t): the
    T new queries come after ``past`` cached positions."""
    return torch.ones(length, past + length, dtype=torch.bool, device=device).triu(past + 1)


# --------------------------------------------------------------------------------------
# 5. The feed-forward network and the block (GPT-1 Section 3.1; GPT-2 Section 2.3)
# --------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """FFN(x) = GELU(x W_1 + b_1) W_2 + b_2, inner size d_ff = 4 d_model.
    forward: (B, T, D) -> (B, T, D); ``down`` is a residual projection (init scaled)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)  # W_1
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)  # W_2
        self.activation = ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))  # (B, T, d_ff) inside


class GPTBlock(nn.Module):
    """One decoder block: attention then feed-forward, each in a residual connection.

        GPT-1, post-LN:  h = norm1(x + Dropout(attn(x)));     out = norm2(h + Dropout(ffn(h)))
        GPT-2, pre-LN:   h = x + Dropout(attn(norm1(x)));     out = h + Dropout(ffn(norm2(h)))

    GPT-2 "moved layer normalization to the input of each sub-block" (Section 2.3): the
    residual path x -> out then carries no normalisation, which lets deep stacks train.
    forward(x (B, T, D), attn_mask, key_padding_mask, cache) -> (B, T, D).
    """

    def __init__(self, cfg: GPTConfig, layer_index: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.attention = CausalSelfAttention(cfg, layer_index)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.norm_position == "pre"

    def residual(self, x: torch.Tensor, norm: nn.LayerNorm, sublayer) -> torch.Tensor:
        """The residual connection around ``sublayer``, LayerNorm before (pre) or after (post)."""
        if self.pre_norm:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        x = self.residual(x, self.norm1,
                          lambda h: self.attention(h, attn_mask, key_padding_mask, cache))
        return self.residual(x, self.norm2, self.ffn)


def init_weights(model: nn.Module, cfg: GPTConfig) -> None:
    """GPT-2's initialisation (transformers, nanoGPT): N(0, init_std) for every matrix and
    embedding, zero biases, LayerNorm (1, 0); pre-LN models also scale the residual
    projections (attention.out and ffn.down weights) to N(0, init_std / sqrt(2 n_layers)),
    "a factor of 1/sqrt(N) where N is the number of residual layers" (GPT-2 Section 2.3):
    each block adds two branches to the residual stream. GPT-1 (post-LN): N(0, 0.02) only.
    """
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=cfg.init_std)
            if cfg.norm_position == "pre" and name.endswith(("attention.out", "ffn.down")):
                nn.init.normal_(module.weight, std=cfg.init_std / math.sqrt(2 * cfg.n_layers))
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# 6. The model: embeddings, blocks, (final LayerNorm), tied output layer (GPT-1 Eq. 2)
# --------------------------------------------------------------------------------------


def _check_ids(cfg: GPTConfig, input_ids, attention_mask, past: int = 0) -> None:
    """The door's check of token ids (B, T) and of a 1/0 mask (B, T) or (B, past + T)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in _INT_DTYPES \
            or input_ids.ndim != 2 or input_ids.shape[1] < 1:
        raise ValueError(f"input_ids: expected an int64 tensor of token ids (B, T) with T >= 1, "
                         f"got {getattr(input_ids, 'dtype', type(input_ids).__name__)} "
                         f"{tuple(getattr(input_ids, 'shape', ()))}")
    if ((input_ids < 0) | (input_ids >= cfg.vocab_size)).any():
        raise ValueError(f"input_ids: token ids must lie in 0..{cfg.vocab_size - 1}, got "
                         f"{input_ids.min().item()}..{input_ids.max().item()}")
    batch, length = input_ids.shape
    if attention_mask is not None and (
            attention_mask.shape not in ((batch, length), (batch, past + length))
            or ((attention_mask != 0) & (attention_mask != 1)).any()):
        raise ValueError(f"attention_mask: expected 1 (real token) or 0 (padding) of shape "
                         f"(B, T) = {(batch, length)} (or (B, cached + T) = "
                         f"{(batch, past + length)} with a cache), got "
                         f"{tuple(attention_mask.shape)}")


class GPT(nn.Module):
    """The language model P(u_t | u_<t) (GPT-1 Section 3.1, Equation 2):

        h_0 = U W_e + W_p;   h_l = block_l(h_{l-1});   P = softmax(final_norm(h_n) W_e^T)

    ``lm_head`` holds no matrix of its own: its weight IS ``embeddings.word.weight``.
    ``final_norm`` exists for pre-LN (GPT-2) only.

    forward(input_ids (B, T) int64, attention_mask (B, T) 1 = token, 0 = padding (or
            (B, S) covering a cache's positions too), position_ids (B, T), cache: KVCache)
    Returns: logits (B, T, vocab_size). position_ids default to the count of real tokens
    before each one (attention_mask.cumsum - 1, padding at 0, as transformers' generate), so
    left-padded prompts start at position 0; with a cache they continue where it stopped.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.embeddings = GPTEmbeddings(config)
        self.layers = nn.ModuleList(GPTBlock(config, i) for i in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) \
            if config.norm_position == "pre" else None
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.embeddings.word.weight  # tied (GPT-1 Eq. 2: W_e^T)
        init_weights(self, config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        cfg = self.config
        past = 0 if cache is None else cache.length
        _check_ids(cfg, input_ids, attention_mask, past)
        batch, length = input_ids.shape
        key_mask = self._key_mask(batch, length, attention_mask, cache)  # (B, S) or None
        if position_ids is None:
            position_ids = self._positions(key_mask, length, past, input_ids.device)
        if position_ids.max() >= cfg.max_len:  # left padding: fewer positions than tokens
            raise ValueError(f"input too long: {past} cached + {length} new tokens reach "
                             f"position {position_ids.max().item()}; the model has "
                             f"max_len={cfg.max_len} learned positions")
        if cache is not None:
            cache.attention_mask = key_mask
        x = self.embeddings(input_ids, position_ids)  # (B, T, D)
        attn_mask = causal_mask(length, past, input_ids.device)  # (T, S)
        key_padding_mask = None if key_mask is None else key_mask == 0  # (B, S), True = pad
        for layer in self.layers:
            x = layer(x, attn_mask, key_padding_mask, cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.lm_head(x)  # (B, T, V) = h W_e^T

    @staticmethod
    def _key_mask(batch: int, length: int, attention_mask: torch.Tensor | None,
                  cache: KVCache | None) -> torch.Tensor | None:
        """The 1/0 mask of every key position (B, S): the cache's and this call's."""
        past = 0 if cache is None else cache.length
        held = None if cache is None else cache.attention_mask
        if attention_mask is None:
            if held is None:
                return None
            attention_mask = torch.ones(batch, length, dtype=held.dtype, device=held.device)
        if attention_mask.shape[1] == past + length:  # transformers' style: the whole mask
            return attention_mask
        if held is None:
            held = torch.ones(batch, past, dtype=attention_mask.dtype,
                              device=attention_mask.device)
        return torch.cat([held.to(attention_mask.dtype), attention_mask], dim=1)

    @staticmethod
    def _positions(key_mask: torch.Tensor | None, length: int, past: int,
                   device) -> torch.Tensor:
        """Position of each new token: its count of real tokens before it (B, T), or
        past..past+T-1 (1, T) without padding."""
        if key_mask is None:
            return torch.arange(past, past + length, device=device)[None]  # (1, T)
        positions = key_mask.long().cumsum(-1) - 1  # (B, S): 0 at each row's first token
        return positions.masked_fill(key_mask == 0, 0)[:, past:]  # (B, T)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, *,
                 attention_mask: torch.Tensor | None = None, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None,
                 eos_token_id: int | Sequence[int] | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Continue each prompt by up to ``max_new_tokens`` tokens, one at a time.

        Inputs:  input_ids (B, T) int64, prompts LEFT-padded to one length (as transformers'
                 tokenizers with padding_side="left"), attention_mask (B, T) 1/0 marking
                 the padding; do_sample False: greedy (argmax); True: sample from
                 softmax(logits / temperature) restricted by top_k / top_p (``sample_next``),
                 drawn with ``generator`` (a seeded torch.Generator repeats the text);
                 eos_token_id: a row that emits it stops and is filled with it after;
                 use_cache: keep keys/values (KVCache) and feed one token per step, or
                 recompute the whole sequence each step (same tokens, O(T^2) per step).
        Returns: (B, T + n) int64, prompts included, n <= max_new_tokens (fewer when every
                 row has stopped). Runs in eval mode (no dropout); the mode is restored.
        """
        _check_ids(self.config, input_ids, attention_mask)
        _check_sampling(max_new_tokens, temperature, top_k, top_p)
        longest = input_ids.shape[1] if attention_mask is None \
            else int(attention_mask.sum(1).max())
        if longest + max_new_tokens > self.config.max_len:
            raise ValueError(f"generate: the longest prompt ({longest} tokens) + max_new_tokens "
                             f"({max_new_tokens}) exceeds max_len={self.config.max_len}")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        eos = None if eos_token_id is None else torch.tensor(
            [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id),
            device=input_ids.device)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        was_training = self.training
        self.eval()
        try:
            cache = KVCache() if use_cache else None
            tokens, step_input = input_ids, input_ids
            for _ in range(max_new_tokens):
                logits = self(step_input, mask, cache=cache)[:, -1]  # (B, V): the last position
                if do_sample:
                    next_token = sample_next(logits, temperature, top_k, top_p, generator)
                else:
                    next_token = logits.argmax(dim=-1)  # greedy
                if eos is not None:  # a finished row repeats eos (transformers: pad = eos)
                    next_token = next_token.masked_fill(finished, int(eos[0]))
                    finished |= torch.isin(next_token, eos)
                tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, T + 1)
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                step_input = next_token[:, None] if use_cache else tokens
                if finished.all():
                    break
        finally:
            self.train(was_training)
        return tokens


# --------------------------------------------------------------------------------------
# 7. Sampling: temperature, top-k (Fan et al. 2018), top-p (Holtzman et al. 2020)
# --------------------------------------------------------------------------------------


def _check_sampling(max_new_tokens, temperature, top_k, top_p) -> None:
    """generate's options: (value, whether it is valid, what was expected) by name."""
    options = {
        "max_new_tokens": (max_new_tokens, isinstance(max_new_tokens, int)
                           and max_new_tokens >= 0, "an int >= 0"),
        "temperature": (temperature, temperature > 0, "> 0 (1 = the model's distribution)"),
        "top_k": (top_k, top_k is None or isinstance(top_k, int) and top_k >= 1,
                  "an int >= 1 or None"),
        "top_p": (top_p, top_p is None or 0 < top_p <= 1, "a probability in (0, 1] or None")}
    for name, (value, valid, expected) in options.items():
        if not valid:
            raise ValueError(f"{name}: expected {expected}, got {value!r}")


def filter_logits(logits: torch.Tensor, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Logits (..., V) with the tokens sampling may not pick set to -inf.

    top_k: keep the k largest (and any tied with the k-th). top_p: keep the smallest set of
    most probable tokens whose probabilities sum to >= top_p, the nucleus (always >= 1).
    Applied in this order, as transformers does.
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1:
        probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
        mass_before = probs.cumsum(dim=-1) - probs  # (..., V): mass of the more probable ones
        drop_sorted = mass_before >= top_p  # the nucleus was already complete before it
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row drawn from softmax(filter_logits(logits / temperature)).

    logits (B, V) -> (B,) int64. temperature < 1 sharpens the distribution, > 1 flattens it.
    """
    probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# --------------------------------------------------------------------------------------
# 8. Training: the loss (GPT-1 Eq. 1), AdamW, the cosine schedule (GPT-1 Section 4.1)
# --------------------------------------------------------------------------------------


def lm_loss(logits: torch.Tensor, targets: torch.Tensor,
            ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """L = -(1/N) sum_t log P(u_{t+1} | u_<=t): the mean next-token cross-entropy (nats).

    logits (B, T, V); targets (B, T) int64 ALREADY shifted by the caller (targets[:, t] is
    the token after input t: x = text[i:i+T], y = text[i+1:i+T+1]); ``ignore_index``
    targets (padding) are skipped. Returns a scalar.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=ignore_index)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019) in two groups: weight decay on matrices (dim >= 2:
    the Linear weights AND the embeddings, as nanoGPT and GPT-2's successors do), none on
    biases and LayerNorm parameters. GPT-1 used Adam with decay 0.01 on non-bias weights
    (Section 4.1); betas (0.9, 0.95) are GPT-3's and nanoGPT's.
    A tied matrix is one parameter: it appears once."""
    params = list(dict.fromkeys(p for p in model.parameters() if p.requires_grad))
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)


def cosine_lr(step: int, *, peak_lr: float, warmup: int, total: int, min_lr: float) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up to peak_lr over ``warmup`` steps,
    then a cosine from peak_lr down to min_lr at step ``total``, min_lr after (GPT-1 Section
    4.1: "increased linearly from zero over the first 2000 updates and annealed to 0 using a
    cosine schedule"; nanoGPT's get_lr).

        warm-up:  peak_lr (step + 1) / (warmup + 1)
        decay:    min_lr + (peak_lr - min_lr) (1 + cos(pi r)) / 2,
                  r = (step - warmup) / (total - warmup)
    """
    if step < warmup:
        return peak_lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    ratio = (step - warmup) / max(1, total - warmup)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))
