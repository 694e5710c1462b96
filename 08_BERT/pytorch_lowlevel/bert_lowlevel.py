"""BERT from tensors and autograd: the encoder, the pre-training heads, masking, AdamW (Level 2).

Devlin, Chang, Lee & Toutanova 2018, "BERT: Pre-training of Deep Bidirectional Transformers
for Language Understanding": the input representation (Section 3, Figure 2), the Transformer
encoder of Vaswani et al. 2017 (post-LN blocks, GELU), the pooler, the masked-LM and
next-sentence heads and losses and the masking procedure (Section 3.1, Appendix A.1), AdamW
with linear warm-up and decay (Appendix A.2). The parameters are one dict of tensors whose
names are our L3 module names (``embeddings.word.weight``, ``layers.0.attention.q.weight``).
No torch.nn layers, no torch.optim (``test_lowlevel.py`` checks it, and checks every number
against transformers' ``BertForPreTraining``). Derivations: ``../theory.md``; a pre-training
run on a generated corpus: ``train.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from utils import import_lesson

# Taught in lesson 02 (02_MLP/pytorch_lowlevel/mlp_lowlevel.py), used here as they are:
# inverted dropout (training=True draws a fresh mask) and zero_grad.
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
dropout, zero_grad = _mlp.dropout, _mlp.zero_grad

IGNORE_INDEX = -100  # label of the positions the masked-LM loss skips (transformers' value)


@dataclass
class BertConfig:
    """Sizes of a BERT; the paper's BERT-base is vocab 30,522, d_model (H) 768, n_layers (L)
    12, n_heads (A) 12, d_ff 3072 (4H), max_len 512 (Section 3, Appendix A.2)."""

    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    max_len: int = 512  # learned positions: the longest input
    n_segments: int = 2  # sentence A and sentence B
    dropout: float = 0.1  # on embeddings and every sub-layer output
    attn_dropout: float = 0.1  # on the attention probabilities
    layer_norm_eps: float = 1e-12
    pad_id: int = 0

    def __post_init__(self):
        sizes = (self.vocab_size, self.d_model, self.n_layers, self.n_heads, self.d_ff,
                 self.max_len, self.n_segments)
        if not all(isinstance(s, int) and s >= 1 for s in sizes):
            raise ValueError(f"BertConfig: sizes must be positive ints, got {self}")
        if self.d_model % self.n_heads:
            raise ValueError(f"BertConfig: d_model={self.d_model} is not divisible by "
                             f"n_heads={self.n_heads} (each head gets d_model / n_heads)")


# --------------------------------------------------------------------------------------
# 1. Building blocks: linear map, layer norm, GELU
# --------------------------------------------------------------------------------------


# Same as 07_Transformer/pytorch_lowlevel/transformer_lowlevel.py:linear
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y = x W^T + b, with W (D_out, D_in) in nn.Linear's layout.

    Inputs: x (..., D_in), weight (D_out, D_in), bias (D_out,) or None; Returns (..., D_out)
    """
    y = x @ weight.T
    return y if bias is None else y + bias


# Same as 07_Transformer/pytorch_lowlevel/transformer_lowlevel.py:layer_norm
def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               eps: float = 1e-5) -> torch.Tensor:
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis (Ba et al. 2016).

    Inputs: x (..., d), weight gamma (d,), bias beta (d,); Returns (..., d)
    """
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as torch
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU(x) = x Phi(x) = x / 2 (1 + erf(x / sqrt 2))  (Hendrycks & Gimpel 2016).

    The exact (erf) form, as BERT's code and transformers' "gelu"; the tanh approximation
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) differs by up to ~1e-3 (theory.md).
    """
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


# --------------------------------------------------------------------------------------
# 2. Input representation (Section 3, Figure 2): token + segment + position, then LN
# --------------------------------------------------------------------------------------


def embed(params: dict, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
          config: BertConfig, training: bool = False) -> torch.Tensor:
    """E = LayerNorm(E_token[w_t] + E_segment[s_t] + E_position[t]), then dropout.

    Inputs:  input_ids (B, T) int64; token_type_ids (B, T) in {0, 1} (sentence A / B)
    Returns: (B, T, d_model)
    All three tables are learned (the Transformer's positions were fixed sinusoids).
    """
    T = input_ids.shape[1]
    x = params["embeddings.word.weight"][input_ids]  # (B, T, d)
    x = x + params["embeddings.segment.weight"][token_type_ids]  # (B, T, d)
    x = x + params["embeddings.position.weight"][:T]  # (T, d), the same for every row
    x = layer_norm(x, params["embeddings.norm.weight"], params["embeddings.norm.bias"],
                   config.layer_norm_eps)
    return dropout(x, config.dropout, training=training)


# --------------------------------------------------------------------------------------
# 3. Multi-head self-attention with the padding mask (Vaswani et al., Section 3.2)
# --------------------------------------------------------------------------------------


def self_attention(params: dict, prefix: str, x: torch.Tensor, attention_mask: torch.Tensor,
                   config: BertConfig, training: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """MultiHead(X) = Concat(head_1..head_h) W^O,  head_i = Attention(X W_i^Q, X W_i^K, X W_i^V)

        Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V        (Equation 1)

    with M = -inf at the keys that are padding, 0 elsewhere: no real token reads padding.
    Padded positions still compute outputs (they attend to the real tokens); nothing reads
    them and the losses ignore them.

    Inputs:  params[prefix + ".{q,k,v,out}.{weight,bias}"]; x (B, T, d_model);
             attention_mask (B, T), 1 = real token, 0 = padding
    Returns: out (B, T, d_model); weights (B, h, T, T), the probabilities after dropout
    """
    B, T, d = x.shape
    h = config.n_heads
    d_k = d // h

    def project(name: str) -> torch.Tensor:  # (B, T, d) -> (B, h, T, d_k): one block per head
        y = linear(x, params[f"{prefix}.{name}.weight"], params[f"{prefix}.{name}.bias"])
        return y.reshape(B, T, h, d_k).transpose(1, 2)  # (B, h, T, d_k)

    q, k, v = project("q"), project("k"), project("v")
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T_q, T_k)
    padding = attention_mask[:, None, None, :] == 0  # (B, 1, 1, T_k): keys that are padding
    scores = scores.masked_fill(padding, -math.inf)
    weights = torch.softmax(scores, dim=-1)  # each query's row sums to 1 over real keys
    weights = dropout(weights, config.attn_dropout, training=training)
    context = (weights @ v).transpose(1, 2).reshape(B, T, d)  # (B, T, h * d_k): concat
    out = linear(context, params[f"{prefix}.out.weight"], params[f"{prefix}.out.bias"])
    return out, weights


# --------------------------------------------------------------------------------------
# 4. The encoder layer: attention and feed-forward, each in a post-LN residual block
# --------------------------------------------------------------------------------------


def feed_forward(params: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """FFN(x) = GELU(x W_up^T + b_up) W_down^T + b_down, d_model -> d_ff -> d_model.

    Vaswani et al.'s Equation 2 with GELU for ReLU (BERT, Section 3). Inputs (B, T, d);
    Returns (B, T, d).
    """
    hidden = gelu(linear(x, params[f"{prefix}.up.weight"], params[f"{prefix}.up.bias"]))
    return linear(hidden, params[f"{prefix}.down.weight"], params[f"{prefix}.down.bias"])


def encoder_layer(params: dict, prefix: str, x: torch.Tensor, attention_mask: torch.Tensor,
                  config: BertConfig, training: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-LN, as the Transformer and BERT:  x = LayerNorm(x + Dropout(Sublayer(x))).

        x = LayerNorm_1(x + Dropout(SelfAttention(x)))
        x = LayerNorm_2(x + Dropout(FFN(x)))

    (Pre-LN, x + Sublayer(LayerNorm(x)), came later: GPT-2, ViT; theory.md compares them.)
    Inputs: x (B, T, d_model), attention_mask (B, T). Returns: x (B, T, d_model), the
    attention weights (B, h, T, T).
    """
    eps, p = config.layer_norm_eps, config.dropout
    attended, weights = self_attention(params, f"{prefix}.attention", x, attention_mask, config,
                                       training)
    x = layer_norm(x + dropout(attended, p, training=training),
                   params[f"{prefix}.norm1.weight"], params[f"{prefix}.norm1.bias"], eps)
    transformed = feed_forward(params, f"{prefix}.ffn", x)
    x = layer_norm(x + dropout(transformed, p, training=training),
                   params[f"{prefix}.norm2.weight"], params[f"{prefix}.norm2.bias"], eps)
    return x, weights


# --------------------------------------------------------------------------------------
# 5. The model: embeddings, n_layers encoder layers, the pooler
# --------------------------------------------------------------------------------------


@dataclass
class BertOutput:
    """hidden_states (B, T, d): the last layer; pooled (B, d): tanh(W h_[CLS] + b);
    all_hidden_states: the embeddings and each layer's output (n_layers + 1 tensors);
    attentions: each layer's attention weights (B, h, T, T)."""

    hidden_states: torch.Tensor
    pooled: torch.Tensor
    all_hidden_states: list[torch.Tensor] = field(default_factory=list)
    attentions: list[torch.Tensor] = field(default_factory=list)


def pooler(params: dict, hidden_states: torch.Tensor) -> torch.Tensor:
    """pooled = tanh(h_[CLS] W^T + b): the final hidden state of the first token [CLS],
    "the aggregate sequence representation for classification tasks" (Section 3).
    Inputs (B, T, d); Returns (B, d)."""
    first = hidden_states[:, 0]  # (B, d): [CLS]
    return torch.tanh(linear(first, params["pooler.dense.weight"], params["pooler.dense.bias"]))


def _check_inputs(config: BertConfig, input_ids, token_type_ids, attention_mask) -> None:
    """The door: shapes, dtypes and ranges of forward's inputs, once."""
    shape = tuple(getattr(input_ids, "shape", ()))
    if not isinstance(input_ids, torch.Tensor) or len(shape) != 2 \
            or not 1 <= shape[1] <= config.max_len:
        raise ValueError(f"input_ids: expected a tensor (B, T) with 1 <= T <= max_len = "
                         f"{config.max_len} (the position table), got shape {shape}")
    for name, t, high in (("input_ids", input_ids, config.vocab_size),
                          ("token_type_ids", token_type_ids, config.n_segments),
                          ("attention_mask", attention_mask, 2)):
        if t is not None and (t.shape != shape or t.is_floating_point()
                              or not 0 <= int(t.min()) <= int(t.max()) < high):
            raise ValueError(f"{name}: expected integers in [0, {high}) of shape {shape}, got "
                             f"{t.dtype} {tuple(t.shape)} in [{t.min().item()}, {t.max().item()}]")
    if attention_mask is not None and not bool(attention_mask.bool().any(dim=1).all()):
        raise ValueError("attention_mask: every sequence needs at least one real token (1)")


def forward(params: dict, config: BertConfig, input_ids: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
            attention_mask: torch.Tensor | None = None, *, training: bool = False) -> BertOutput:
    """BERT's encoder: embeddings, n_layers post-LN layers, the pooler (Section 3).

    Inputs:  params (init_params); config; input_ids (B, T) int64;
             token_type_ids (B, T), 0 = sentence A, 1 = sentence B (default all 0);
             attention_mask (B, T), 1 = real token, 0 = padding (default all 1, as
             transformers); training - dropout on (True) or off
    Returns: BertOutput (hidden_states (B, T, d), pooled (B, d), all_hidden_states,
             attentions)
    """
    _check_inputs(config, input_ids, token_type_ids, attention_mask)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    x = embed(params, input_ids, token_type_ids, config, training)
    all_hidden_states, attentions = [x], []
    for i in range(config.n_layers):
        x, weights = encoder_layer(params, f"layers.{i}", x, attention_mask, config, training)
        all_hidden_states.append(x)
        attentions.append(weights)
    return BertOutput(x, pooler(params, x), all_hidden_states, attentions)


# --------------------------------------------------------------------------------------
# 6. The pre-training heads (Section 3.1) and their losses
# --------------------------------------------------------------------------------------


def mlm_head(params: dict, hidden_states: torch.Tensor, config: BertConfig) -> torch.Tensor:
    """Masked-LM logits: LayerNorm(GELU(h W^T + b)) E_token^T + bias_vocab.

    The decoder is the word-embedding matrix itself (tied, Press & Wolf 2017) with its own
    output bias. Inputs: hidden_states (..., d): every position, or only the masked ones
    (BERT's own code gathers those first: the vocabulary product is the costly part).
    Returns (..., vocab_size).
    """
    t = gelu(linear(hidden_states, params["mlm_head.dense.weight"], params["mlm_head.dense.bias"]))
    t = layer_norm(t, params["mlm_head.norm.weight"], params["mlm_head.norm.bias"],
                   config.layer_norm_eps)
    return t @ params["embeddings.word.weight"].T + params["mlm_head.bias"]  # (..., V)


def nsp_head(params: dict, pooled: torch.Tensor) -> torch.Tensor:
    """Next-sentence logits (B, 2) from the pooled [CLS]: class 0 IsNext, 1 NotNext."""
    return linear(pooled, params["nsp_head.weight"], params["nsp_head.bias"])


def pretraining_logits(params: dict, config: BertConfig, input_ids: torch.Tensor,
                       token_type_ids: torch.Tensor | None = None,
                       attention_mask: torch.Tensor | None = None, *, training: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor, BertOutput]:
    """forward, then both heads: (mlm_logits (B, T, V), nsp_logits (B, 2), BertOutput),
    transformers' BertForPreTraining."""
    out = forward(params, config, input_ids, token_type_ids, attention_mask, training=training)
    return mlm_head(params, out.hidden_states, config), nsp_head(params, out.pooled), out


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """L_MLM = -(1/|M|) sum_{i in M} log softmax(logits_i)[labels_i],  M = {i: labels_i != -100}

    Only the masked positions count (Section 3.1: "we only predict the masked words rather
    than reconstructing the entire input"). Inputs: logits (..., V); labels (...) int64,
    the original id where masked, ignore_index elsewhere. Returns a scalar, 0 (not NaN) when
    nothing is masked.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"masked_lm_loss: logits (..., V) and labels (...) must agree, got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    log_probs = torch.log_softmax(logits, dim=-1).reshape(-1, logits.shape[-1])  # (N, V)
    labels = labels.reshape(-1)  # (N,)
    masked = labels != ignore_index
    picked = log_probs.gather(1, labels.masked_fill(~masked, 0)[:, None])[:, 0]  # (N,)
    return -(picked * masked).sum() / masked.sum().clamp(min=1)


def next_sentence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_NSP = -mean_b log softmax(logits_b)[labels_b]. Inputs: logits (B, 2); labels (B,)
    in {0 IsNext, 1 NotNext}. Returns a scalar."""
    return -torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).mean()


# --------------------------------------------------------------------------------------
# 7. The masking procedure (Section 3.1, Appendix A.1)
# --------------------------------------------------------------------------------------


def mask_tokens(input_ids: torch.Tensor, special_mask: torch.Tensor, vocab_size: int,
                mask_id: int, generator: torch.Generator, p: float = 0.15
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose p = 15 % of the tokens; of those 80 % -> [MASK], 10 % -> a random token,
    10 % unchanged. The model must predict every chosen token.

    Why 80/10/10: [MASK] never appears at fine-tuning time; replacing some chosen tokens
    by random words or leaving them keeps the model from trusting that unmasked tokens are
    right, so it keeps a good representation of every token (Section 3.1, Appendix C.2).

    Inputs:  input_ids (B, T) int64; special_mask (B, T) bool, True where a token may never
             be chosen ([CLS], [SEP] and padding); vocab_size - random tokens are drawn from
             [0, vocab_size) (as BERT's code); mask_id; generator - a torch.Generator on
             input_ids' device (the same seed gives the same masks); p - the share chosen
    Returns: inputs (B, T) - the corrupted copy; labels (B, T) - the original id at the
             chosen positions, IGNORE_INDEX (-100) elsewhere
    Each token is chosen independently with probability p (transformers' collator); BERT's
    own data script picks exactly round(p * n) per sequence. The expected counts agree.
    """
    if input_ids.shape != special_mask.shape or special_mask.dtype != torch.bool:
        raise ValueError(f"mask_tokens: special_mask must be bool with input_ids' shape "
                         f"{tuple(input_ids.shape)}, got {special_mask.dtype} "
                         f"{tuple(special_mask.shape)}")
    shape, device = input_ids.shape, input_ids.device
    chosen = (torch.rand(shape, generator=generator, device=device) < p) & ~special_mask
    labels = input_ids.masked_fill(~chosen, IGNORE_INDEX)
    action = torch.rand(shape, generator=generator, device=device)  # which of 80/10/10
    random_ids = torch.randint(vocab_size, shape, generator=generator, device=device)
    inputs = input_ids.masked_fill(chosen & (action < 0.8), mask_id)  # 80 %: [MASK]
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)  # 10 %
    return inputs, labels  # the last 10 % keep their token


def special_tokens_mask(input_ids: torch.Tensor, special_ids: Iterable[int]) -> torch.Tensor:
    """(B, T) bool, True where input_ids is one of special_ids (e.g. [PAD], [CLS], [SEP])."""
    return torch.isin(input_ids, torch.tensor(list(special_ids), device=input_ids.device))


# --------------------------------------------------------------------------------------
# 8. Initialisation, AdamW and the schedule (Appendix A.2)
# --------------------------------------------------------------------------------------


def init_params(config: BertConfig, *, seed: int = 0, std: float = 0.02,
                dtype: torch.dtype = torch.float32, device="cpu") -> dict[str, torch.Tensor]:
    """BERT's initialisation: weights and embeddings ~ N(0, std^2) with std 0.02 (BERT's
    initializer_range), biases 0, LayerNorm gamma 1 and beta 0.

    Returns: {name: leaf tensor with requires_grad}, names as our L3 modules; the MLM
    decoder has no entry: it is embeddings.word.weight. BERT's code truncates the normal at
    2 std; transformers (and this) do not, and transformers also zeroes the [PAD] row.
    """
    generator = torch.Generator().manual_seed(seed)
    d, d_ff = config.d_model, config.d_ff
    shapes = {"embeddings.word.weight": (config.vocab_size, d),
              "embeddings.position.weight": (config.max_len, d),
              "embeddings.segment.weight": (config.n_segments, d),
              "embeddings.norm.weight": (d,), "embeddings.norm.bias": (d,)}
    for i in range(config.n_layers):
        for name in ("q", "k", "v", "out"):
            shapes[f"layers.{i}.attention.{name}.weight"] = (d, d)
            shapes[f"layers.{i}.attention.{name}.bias"] = (d,)
        shapes.update({f"layers.{i}.norm1.weight": (d,), f"layers.{i}.norm1.bias": (d,),
                       f"layers.{i}.ffn.up.weight": (d_ff, d), f"layers.{i}.ffn.up.bias": (d_ff,),
                       f"layers.{i}.ffn.down.weight": (d, d_ff),
                       f"layers.{i}.ffn.down.bias": (d,),
                       f"layers.{i}.norm2.weight": (d,), f"layers.{i}.norm2.bias": (d,)})
    shapes.update({"pooler.dense.weight": (d, d), "pooler.dense.bias": (d,),
                   "mlm_head.dense.weight": (d, d), "mlm_head.dense.bias": (d,),
                   "mlm_head.norm.weight": (d,), "mlm_head.norm.bias": (d,),
                   "mlm_head.bias": (config.vocab_size,),
                   "nsp_head.weight": (2, d), "nsp_head.bias": (2,)})
    params = {}
    for name, shape in shapes.items():
        if "norm" in name and name.endswith("weight"):
            value = torch.ones(shape, dtype=torch.float64)  # gamma
        elif name.endswith("bias"):
            value = torch.zeros(shape, dtype=torch.float64)  # biases and beta
        else:
            value = torch.randn(shape, generator=generator, dtype=torch.float64) * std
        params[name] = value.to(dtype=dtype, device=device).requires_grad_(True)
    return params


def param_groups(params: dict[str, torch.Tensor], weight_decay: float = 0.01) -> list[dict]:
    """AdamW's two groups, as BERT's optimizer: weight decay on the weight matrices and
    embeddings; none on biases and LayerNorm (its exclude_from_weight_decay = ["LayerNorm",
    "layer_norm", "bias"]): pulling gamma towards 0 or a shift towards 0 is no regulariser.

    Returns: [{"names", "params", "weight_decay": weight_decay}, {..., "weight_decay": 0.0}]
    """
    no_decay = [name for name in params if name.endswith("bias") or "norm" in name]
    decay = [name for name in params if name not in no_decay]
    return [{"names": decay, "params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"names": no_decay, "params": [params[n] for n in no_decay], "weight_decay": 0.0}]


def adamw_step(groups: Sequence[dict], lr: float, betas: tuple[float, float] = (0.9, 0.999),
               eps: float = 1e-6, state: dict | None = None) -> dict:
    """One AdamW step (Loshchilov & Hutter 2019) in torch.optim.AdamW's arrangement, in place.

        p = p - lr * weight_decay * p            decoupled: not part of the gradient
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    Adam's L2 penalty (g + wd p) would be divided by sqrt(v): large-gradient weights would
    decay less. BERT: betas (0.9, 0.999), eps 1e-6, weight decay 0.01 (Appendix A.2; BERT's
    own optimizer also skips the bias corrections 1 - b^t, theory.md).

    Inputs:  groups - param_groups(...) (tensors without .grad are skipped); lr - this
             step's rate (the schedule's); state - what the previous call returned, or None
    Returns: the state for the next call ({"t": steps, (group, index): (m, v)})
    """
    beta1, beta2 = betas
    state = {"t": 0} if state is None else state
    state["t"] += 1
    t = state["t"]
    with torch.no_grad():
        for g, group in enumerate(groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if (g, i) not in state:
                    state[g, i] = (torch.zeros_like(p), torch.zeros_like(p))
                m, v = state[g, i]
                p.mul_(1 - lr * group["weight_decay"])  # decoupled weight decay
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)  # first moment
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)  # second moment
                denominator = v.sqrt() / math.sqrt(1 - beta2 ** t) + eps
                p.sub_(lr / (1 - beta1 ** t) * m / denominator)
    return state


def linear_warmup_decay(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The rate for optimiser step ``step`` (0 = the first): up linearly from 0 to peak_lr
    over warmup_steps, then down linearly to 0 at total_steps (Appendix A.2: peak 1e-4,
    10,000 warm-up steps of 1,000,000). transformers' get_linear_schedule_with_warmup.

        lr(s) = peak * s / warmup                              s < warmup
        lr(s) = peak * max(0, (total - s) / (total - warmup))  otherwise
    """
    if step < warmup_steps:
        return peak_lr * step / max(1, warmup_steps)
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
