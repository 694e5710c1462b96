"""BERT as Devlin et al. describe it, in torch.nn (Level 3 of lesson 08).

J. Devlin, M.-W. Chang, K. Lee, K. Toutanova (2018), "BERT: Pre-training of Deep
Bidirectional Transformers for Language Understanding", NAACL 2019: the input
representation (Section 3, Figure 2), the encoder (the post-LN Transformer encoder of
Vaswani et al. 2017, with GELU), the masked-LM and next-sentence pre-training heads and
their loss (Section 3.1, Appendix A.2), and the classifier of fine-tuning (Section 3.2, 4.1).
Derivations (parameter count, attention cost, 80/10/10 masking, post-LN): ``../theory.md``.
``convert.py`` ports weights to and from transformers and loads a checkpoint directory;
``train.py`` pre-trains a small BERT and ``train_classifier.py`` fine-tunes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # the label of positions the masked-LM loss skips (transformers' value)
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
_INT_DTYPES = (torch.int64, torch.int32)


# --------------------------------------------------------------------------------------
# 1. Configuration (Section 3: L layers, hidden size H, A heads, feed-forward 4H)
# --------------------------------------------------------------------------------------


@dataclass
class BertConfig:
    """Every size of the model; the defaults are BERT-base (L=12, H=768, A=12, 110M).

    ``attn_implementation``: "eager" computes Equation 1 step by step (the default, and the
    one that can return the attention weights); "sdpa" runs the same maths in
    ``F.scaled_dot_product_attention`` (one fused kernel). ``pad_id`` is the [PAD] row of the
    word embeddings (zero, no gradient from lookups, as in transformers), None for none.
    """

    vocab_size: int = 30522  # WordPiece vocabulary of bert-base-uncased
    d_model: int = 768  # H
    n_layers: int = 12  # L
    n_heads: int = 12  # A; each head has d_k = H / A = 64 dimensions
    d_ff: int = 3072  # 4H, the feed-forward inner size
    max_len: int = 512  # rows of the learned position table: the longest input
    n_segments: int = 2  # sentence A and sentence B
    dropout: float = 0.1  # on the embeddings and every sub-layer's output
    attn_dropout: float = 0.1  # on the attention weights
    layer_norm_eps: float = 1e-12
    pad_id: int | None = 0
    init_std: float = 0.02  # N(0, 0.02) for every matrix (Google's code, transformers)
    attn_implementation: str = "eager"

    def __post_init__(self) -> None:
        sizes = (self.vocab_size, self.d_model, self.n_layers, self.n_heads, self.d_ff,
                 self.max_len, self.n_segments)
        if not all(isinstance(s, int) and s >= 1 for s in sizes) or self.d_model % self.n_heads:
            raise ValueError(f"BertConfig: sizes must be positive ints and d_model a multiple "
                             f"of n_heads (each head gets d_model / n_heads), got {self}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got "
                             f"{self.attn_implementation!r}")

    @classmethod
    def _sized(cls, n_layers: int, d_model: int, overrides: dict) -> BertConfig:
        sizes = {"n_layers": n_layers, "d_model": d_model, "n_heads": d_model // 64,
                 "d_ff": 4 * d_model}
        return cls(**{**sizes, **overrides})

    @classmethod
    def base(cls, **overrides) -> BertConfig:
        """BERT-base: L=12, H=768, A=12 (Section 3; 110M parameters)."""
        return cls._sized(12, 768, overrides)

    @classmethod
    def large(cls, **overrides) -> BertConfig:
        """BERT-large: L=24, H=1024, A=16 (Section 3; 340M parameters)."""
        return cls._sized(24, 1024, overrides)

    # The small BERTs of google-research/bert (Turc et al. 2019), A = H / 64.
    @classmethod
    def tiny(cls, **overrides) -> BertConfig:
        """BERT-Tiny: L=2, H=128, A=2."""
        return cls._sized(2, 128, overrides)

    @classmethod
    def mini(cls, **overrides) -> BertConfig:
        """BERT-Mini: L=4, H=256, A=4."""
        return cls._sized(4, 256, overrides)

    @classmethod
    def small(cls, **overrides) -> BertConfig:
        """BERT-Small: L=4, H=512, A=8."""
        return cls._sized(4, 512, overrides)

    @classmethod
    def medium(cls, **overrides) -> BertConfig:
        """BERT-Medium: L=8, H=512, A=8."""
        return cls._sized(8, 512, overrides)


# --------------------------------------------------------------------------------------
# 2. Input representation (Section 3, Figure 2)
# --------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    """E = Dropout(LayerNorm(E_word[input_ids] + E_segment[token_type_ids] + E_position[t])).

    The sum of token, segment and position embeddings (Figure 2); positions are LEARNED,
    one row per position up to max_len (not lesson 07's sinusoids). LayerNorm and dropout
    follow the sum, as in Google's code (the paper is silent).
    forward(input_ids (B, T), token_type_ids (B, T)) -> (B, T, H).
    """

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.position = nn.Embedding(cfg.max_len, cfg.d_model)
        self.segment = nn.Embedding(cfg.n_segments, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,): 0..T-1
        x = self.word(input_ids) + self.segment(token_type_ids) + self.position(positions)
        return self.dropout(self.norm(x))  # (B, T, H)


# --------------------------------------------------------------------------------------
# 3. The encoder layer (Vaswani et al. 2017, Section 3.1-3.3; BERT Section 3)
# --------------------------------------------------------------------------------------


class BertSelfAttention(nn.Module):
    """Multi-head self-attention (Vaswani et al. 2017, Section 3.2, Equation 1):

        Q = x W_q + b_q,  K = x W_k + b_k,  V = x W_v + b_v   split into A heads of d_k = H / A
        head_i = softmax(Q_i K_i^T / sqrt(d_k) + M) V_i
        out    = Concat(head_1, ..., head_A) W_o + b_o

    M is the padding mask as an additive bias (B, 1, 1, T): 0 for a real key, the most
    negative float for a padding key, whose weight exp(M) then underflows to exactly 0.
    Dropout (attn_dropout) acts on the attention weights, as in Google's code.

    forward(x (B, T, H), mask_bias (B, 1, 1, T) or None, need_weights=False)
    Returns: (out (B, T, H), weights (B, A, T, T) before dropout, or None).
    """

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.n_heads, self.d_k = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model)  # W_q: the A heads side by side
        self.k = nn.Linear(cfg.d_model, cfg.d_model)
        self.v = nn.Linear(cfg.d_model, cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)  # W_o
        self.attn_dropout = cfg.attn_dropout
        self.implementation = cfg.attn_implementation

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_k).transpose(1, 2)  # (B, A, T, d_k)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        # (B, T, H) -> (B, A, T, d_k) each
        q, k, v = (self._split_heads(proj(x)) for proj in (self.q, self.k, self.v))
        p = self.attn_dropout if self.training else 0.0
        weights = None
        if self.implementation == "eager" or need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, A, T, T), eq. 1
            if mask_bias is not None:
                scores = scores + mask_bias  # padding keys: -huge
            weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the real keys
            heads = F.dropout(weights, p, self.training) @ v  # (B, A, T, d_k)
        else:  # the alternative: the same maths in one fused kernel
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_bias, dropout_p=p)
        b, t, d = x.shape
        heads = heads.transpose(1, 2).reshape(b, t, d)  # concat: (B, T, A * d_k) = (B, T, H)
        return self.out(heads), weights


class FeedForward(nn.Module):
    """FFN(x) = GELU(x W_1 + b_1) W_2 + b_2, inner size d_ff = 4H (Section 3).

    GELU(x) = x Phi(x) (Hendrycks & Gimpel 2016, the exact erf form) where the Transformer
    had ReLU. forward: (B, T, H) -> (B, T, H).
    """

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)  # W_1
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)  # W_2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))  # (B, T, d_ff) inside


class BertLayer(nn.Module):
    """One encoder layer, post-LN as in the Transformer (Vaswani et al. Section 3.1, 5.4):

        x = LayerNorm(x + Dropout(SelfAttention(x)))        norm1
        x = LayerNorm(x + Dropout(FFN(x)))                  norm2

    forward(x (B, T, H), mask_bias, need_weights) -> (x (B, T, H), weights or None).
    """

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = BertSelfAttention(cfg)
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, mask_bias, need_weights)
        x = self.norm1(x + self.dropout(attended))
        x = self.norm2(x + self.dropout(self.ffn(x)))
        return x, weights


class BertPooler(nn.Module):
    """pooled = tanh(h_[CLS] W + b): the final hidden state of the first token, [CLS]
    (Section 3: "C", the aggregate sequence representation), through a dense layer with
    tanh, as in Google's code and transformers. forward: (B, T, H) -> (B, H)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, H): position 0 is [CLS]


def _init_weights(module: nn.Module, std: float) -> None:
    """N(0, std) for every matrix and embedding, zero biases, LayerNorm 1 and 0; the [PAD]
    row zero. (Google's code truncates the normal at 2 std; transformers does not.)"""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# 4. The model: embeddings, L layers, the pooler
# --------------------------------------------------------------------------------------


@dataclass
class BertOutput:
    """hidden_states (B, T, H): the last layer; pooled (B, H) or None (no pooler);
    all_hidden_states: the embeddings and each layer's output (L + 1 tensors), when asked;
    attentions: each layer's attention weights (B, A, T, T), when asked."""

    hidden_states: torch.Tensor
    pooled: torch.Tensor | None
    all_hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def _check_inputs(cfg: BertConfig, input_ids, token_type_ids, attention_mask) -> None:
    """The door of every model here: shapes, dtypes and ranges of the inputs, once."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 \
            or not 1 <= input_ids.shape[1] <= cfg.max_len:
        raise ValueError(f"input_ids: expected an int64 tensor (B, T) with 1 <= T <= max_len="
                         f"{cfg.max_len} (the rows of the position table), got "
                         f"{getattr(input_ids, 'dtype', type(input_ids).__name__)} "
                         f"{tuple(getattr(input_ids, 'shape', ()))}")
    for name, ids, high in (("input_ids", input_ids, cfg.vocab_size),
                            ("token_type_ids", token_type_ids, cfg.n_segments)):
        if ids is not None and (ids.shape != input_ids.shape or ids.dtype not in _INT_DTYPES):
            raise ValueError(f"{name}: expected an int64 tensor of shape (B, T) = "
                             f"{tuple(input_ids.shape)}, got {ids.dtype} {tuple(ids.shape)}")
        if ids is not None and ((ids < 0) | (ids >= high)).any():
            raise ValueError(f"{name}: values must lie in 0..{high - 1}, got "
                             f"{ids.min().item()}..{ids.max().item()}")
    if attention_mask is not None and (attention_mask.shape != input_ids.shape
                                       or ((attention_mask != 0) & (attention_mask != 1)).any()):
        raise ValueError(f"attention_mask: expected 1 (real token) or 0 (padding), shape "
                         f"{tuple(input_ids.shape)} as input_ids, got "
                         f"{tuple(attention_mask.shape)}")
    if attention_mask is not None and not attention_mask.bool().any(dim=1).all():
        raise ValueError("attention_mask: every sequence needs at least one real token (1)")


class BertModel(nn.Module):
    """BERT's encoder (Section 3): embeddings, n_layers post-LN layers, the pooler.

    Inputs:  input_ids (B, T) int64; token_type_ids (B, T), 0 = sentence A, 1 = sentence B
             (default all 0); attention_mask (B, T), 1 = real token, 0 = padding (default
             all 1, as transformers); output_hidden_states, output_attentions (the latter
             uses the eager path whatever attn_implementation says).
    Returns: BertOutput(hidden_states (B, T, H), pooled (B, H) or None, all_hidden_states,
             attentions). ``with_pooler=False`` leaves the pooler out (as BertForMaskedLM).
    """

    def __init__(self, config: BertConfig, with_pooler: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layers))
        self.pooler = BertPooler(config) if with_pooler else None
        self.apply(lambda module: _init_weights(module, config.init_std))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, *,
                output_hidden_states: bool = False, output_attentions: bool = False
                ) -> BertOutput:
        _check_inputs(self.config, input_ids, token_type_ids, attention_mask)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        mask_bias = None
        if attention_mask is not None:  # (B, T) 1/0 -> (B, 1, 1, T) 0/-huge, added to scores
            mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) \
                * torch.finfo(x.dtype).min
        all_hidden_states, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(x, mask_bias, output_attentions)
            all_hidden_states.append(x)
            attentions.append(weights)
        return BertOutput(x, None if self.pooler is None else self.pooler(x),
                          tuple(all_hidden_states) if output_hidden_states else None,
                          tuple(attentions) if output_attentions else None)


# --------------------------------------------------------------------------------------
# 5. Pre-training: masked LM and next sentence prediction (Section 3.1, Appendix A)
# --------------------------------------------------------------------------------------


class MaskedLMHead(nn.Module):
    """Masked-LM logits (Section 3.1, Task #1; the output layer of Google's code):

        logits = LayerNorm(GELU(h W + b)) E_word^T + b_vocab

    ``decoder`` holds no matrix of its own: its weight IS the word-embedding matrix (tied:
    one (V, H) matrix reads tokens in and scores them out); ``bias`` is its own (V,) vector.
    forward: hidden (..., H) -> logits (..., V). Pass only the masked positions'
    hidden states to skip the costly (H x V) product elsewhere, as Google's code does.
    """

    def __init__(self, cfg: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight  # tied
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        _init_weights(self.dense, cfg.init_std)
        _init_weights(self.norm, cfg.init_std)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(hidden)))) + self.bias


def masked_lm_loss(mlm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_MLM = -(1/|M|) sum_{i in M} log softmax(logits_i)[labels_i],  M = {i: labels_i != -100}

    Only the masked positions count (Section 3.1). Inputs: mlm_logits (..., V); labels (...)
    int64, the original id where masked, IGNORE_INDEX elsewhere. Returns a scalar (0, not
    NaN, when nothing is masked).
    """
    total = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), labels.reshape(-1),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


def next_sentence_loss(nsp_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_NSP = mean cross-entropy of nsp_logits (B, 2) against labels (B,): 0 = IsNext
    (B follows A), 1 = NotNext (B is a random sentence) (Section 3.1, Task #2)."""
    return F.cross_entropy(nsp_logits, labels)


def pretraining_loss(mlm_logits: torch.Tensor, nsp_logits: torch.Tensor,
                     labels: torch.Tensor, next_sentence_label: torch.Tensor) -> torch.Tensor:
    """"The sum of the mean masked LM likelihood and the mean next sentence prediction
    likelihood" (Appendix A.2), as negative log-likelihoods: L_MLM + L_NSP."""
    return masked_lm_loss(mlm_logits, labels) + next_sentence_loss(nsp_logits,
                                                                   next_sentence_label)


class BertForPreTraining(nn.Module):
    """BertModel with both pre-training heads (Section 3.1).

    ``mlm_head`` scores every position against the vocabulary; ``nsp_head`` (Linear(H, 2))
    reads the pooled [CLS]. Loss: ``pretraining_loss``.
    forward(input_ids, token_type_ids=None, attention_mask=None)
    Returns: (mlm_logits (B, T, V), nsp_logits (B, 2)).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.word)
        self.nsp_head = nn.Linear(config.d_model, 2)
        _init_weights(self.nsp_head, config.init_std)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.bert(input_ids, token_type_ids, attention_mask)
        return self.mlm_head(out.hidden_states), self.nsp_head(out.pooled)


class BertForMaskedLM(nn.Module):
    """BertModel without the pooler, with the masked-LM head: the pre-training of RoBERTa
    and most later BERTs (no NSP). Loss: ``masked_lm_loss``.
    forward(input_ids, token_type_ids=None, attention_mask=None) -> mlm_logits (B, T, V).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, with_pooler=False)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.word)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlm_head(self.bert(input_ids, token_type_ids, attention_mask).hidden_states)


# --------------------------------------------------------------------------------------
# 6. Fine-tuning: sequence classification (Section 3.2, 4.1)
# --------------------------------------------------------------------------------------


class BertForSequenceClassification(nn.Module):
    """logits = Dropout(C) W^T + b: "the only new parameters introduced during fine-tuning
    are classification layer weights W in R^{K x H}" (Section 4.1), on the pooled [CLS] C.

    Constructor: config; num_classes K; classifier_dropout (default: config.dropout).
    forward(input_ids, token_type_ids=None, attention_mask=None) -> logits (B, K);
    loss: ``F.cross_entropy(logits, labels)``.
    """

    def __init__(self, config: BertConfig, num_classes: int = 2,
                 classifier_dropout: float | None = None):
        super().__init__()
        self.config, self.num_classes = config, num_classes
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout if classifier_dropout is None
                                  else classifier_dropout)
        self.classifier = nn.Linear(config.d_model, num_classes)
        _init_weights(self.classifier, config.init_std)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        pooled = self.bert(input_ids, token_type_ids, attention_mask).pooled  # (B, H)
        return self.classifier(self.dropout(pooled))  # (B, K)
