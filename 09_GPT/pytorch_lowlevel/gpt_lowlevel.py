"""GPT from tensors and autograd: a decoder-only Transformer language model (Level 2).

Radford, Narasimhan, Salimans & Sutskever 2018 (GPT-1: post-LN blocks, Section 3.1) and
Radford, Wu, Child, Luan, Amodei & Sutskever 2019 (GPT-2: layer norm before each sub-layer, a
final layer norm, residual projections initialised with std 0.02 / sqrt(2 n_layers),
Section 2.3): token and learned position embeddings, causal multi-head self-attention, GELU
feed-forward, the tied output layer, the next-token cross-entropy, AdamW with decay on
matrices, warm-up and cosine decay, gradient clipping, sampling. The parameters are one dict
of tensors named as our L3 modules (``layers.0.attention.qkv.weight``). No torch.nn layers,
no torch.optim (``test_lowlevel.py`` checks it, and every number against transformers'
``GPT2LMHeadModel``). Derivations: ``../theory.md``; training: ``train.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from utils import import_lesson

# Taught in lesson 02 (02_MLP/pytorch_lowlevel/mlp_lowlevel.py), used here as they are:
# inverted dropout (training=True draws a fresh mask) and zero_grad.
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
dropout, zero_grad = _mlp.dropout, _mlp.zero_grad

IGNORE_INDEX = -100  # target of the positions the loss skips (transformers' value)


@dataclass
class GPTConfig:
    """Sizes of a GPT. GPT-2 small (the defaults): vocabulary 50,257, context 1,024, 12 layers
    of width 768 with 12 heads, pre-LN. GPT-1: vocabulary 40,478, context 512, the same
    12 x 768, post-LN (norm_position="post"). Both codes use GELU's tanh form; "gelu" is the
    exact erf form (BERT's).
    """

    vocab_size: int = 50257
    max_len: int = 1024  # learned positions: the longest context
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    dropout: float = 0.1  # on the embeddings and every residual branch
    attn_dropout: float = 0.1  # on the attention probabilities
    layer_norm_eps: float = 1e-5
    norm_position: str = "pre"  # "pre": GPT-2; "post": GPT-1
    activation: str = "gelu_tanh"  # transformers' "gelu_new" (GPT-1, GPT-2); "gelu": erf
    init_std: float = 0.02

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        sizes = (self.vocab_size, self.max_len, self.d_model, self.n_layers, self.n_heads,
                 self.d_ff)
        if not all(isinstance(s, int) and s >= 1 for s in sizes):
            raise ValueError(f"GPTConfig: sizes must be positive ints, got {self}")
        if self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig: d_model={self.d_model} is not divisible by "
                             f"n_heads={self.n_heads} (each head gets d_model / n_heads)")
        if self.norm_position not in ("pre", "post") or self.activation not in ACTIVATIONS:
            raise ValueError(f"GPTConfig: norm_position must be 'pre' or 'post' and activation "
                             f"one of {sorted(ACTIVATIONS)}, got {self.norm_position!r}, "
                             f"{self.activation!r}")


# --------------------------------------------------------------------------------------
# 1. Building blocks: linear map, layer norm, GELU (tanh and erf forms)
# --------------------------------------------------------------------------------------


# Same as 07_Transformer/pytorch_lowlevel/transformer_lowlevel.py:linear
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y = x W^T + b, with W (D_out, D_in) in nn.Linear's layout (GPT-2's Conv1D stores W^T).

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


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU(x) ~ x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (Hendrycks & Gimpel 2016,
    Section 2): the tanh approximation of x Phi(x) that GPT-1's and GPT-2's code use
    (transformers' "gelu_new", F.gelu(approximate="tanh")); within ~1e-3 of the erf form."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# Same as 08_BERT/pytorch_lowlevel/bert_lowlevel.py:gelu
def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU(x) = x Phi(x) = x / 2 (1 + erf(x / sqrt 2)), the exact form (BERT's code)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


ACTIVATIONS = {"gelu_tanh": gelu_tanh, "gelu": gelu}


# --------------------------------------------------------------------------------------
# 2. Input: token embedding + learned position embedding (GPT-1 Section 3.1, h_0)
# --------------------------------------------------------------------------------------


def embed(params: dict, input_ids: torch.Tensor, position_ids: torch.Tensor,
          config: GPTConfig, training: bool = False) -> torch.Tensor:
    """h_0 = U W_e + W_p: the row of each token plus the row of its position, then dropout.

    Inputs: input_ids (B, T) int64; position_ids (B, T) int64 in [0, max_len)
    Returns: (B, T, d_model). Positions are learned, as BERT's (the Transformer's were fixed
    sinusoids); no layer norm here, unlike BERT.
    """
    x = params["embeddings.word.weight"][input_ids]  # (B, T, d)
    x = x + params["embeddings.position.weight"][position_ids]  # (B, T, d)
    return dropout(x, config.dropout, training=training)


# --------------------------------------------------------------------------------------
# 3. Causal multi-head self-attention (Vaswani et al. 2017, Section 3.2)
# --------------------------------------------------------------------------------------


def causal_self_attention(params: dict, prefix: str, x: torch.Tensor,
                          attention_mask: torch.Tensor, config: GPTConfig,
                          training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MultiHead(X) = Concat(head_1..head_h) W^O,  head_i = Attention(X W_i^Q, X W_i^K, X W_i^V)

        Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V        (Equation 1)

    M hides from query t every key s > t (the future: the model predicts token t + 1 from
    tokens <= t) and every key that is padding. Masked scores get the most negative float,
    not -inf: exp gives them exactly 0 weight, and a query that may read nothing (a padding
    slot before the first real token) gets uniform weights instead of 0/0 = NaN. Nothing
    reads such slots and the loss skips them.

    Inputs:  params[prefix + ".qkv.{weight,bias}"] (3 d, d): Q, K, V stacked, one product;
             params[prefix + ".out.{weight,bias}"]; x (B, T, d_model);
             attention_mask (B, T), 1 = real token, 0 = padding
    Returns: out (B, T, d_model); weights (B, h, T, T), the probabilities after dropout
    """
    B, T, d = x.shape
    h = config.n_heads
    d_k = d // h
    qkv = linear(x, params[f"{prefix}.qkv.weight"], params[f"{prefix}.qkv.bias"])  # (B, T, 3d)
    q, k, v = (part.reshape(B, T, h, d_k).transpose(1, 2)  # (B, h, T, d_k) each
               for part in qkv.split(d, dim=-1))
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T_q, T_k)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T_q, T_k): s <= t
    allowed = causal & attention_mask.bool()[:, None, None, :]  # (B, 1, T_q, T_k)
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)  # each query's row sums to 1 over keys it may read
    weights = dropout(weights, config.attn_dropout, training=training)
    context = (weights @ v).transpose(1, 2).reshape(B, T, d)  # (B, T, h * d_k): concat
    out = linear(context, params[f"{prefix}.out.weight"], params[f"{prefix}.out.bias"])
    return out, weights


# --------------------------------------------------------------------------------------
# 4. The block: attention and feed-forward, each in a residual connection (pre- or post-LN)
# --------------------------------------------------------------------------------------


def feed_forward(params: dict, prefix: str, x: torch.Tensor, config: GPTConfig) -> torch.Tensor:
    """FFN(x) = GELU(x W_up^T + b_up) W_down^T + b_down, d_model -> d_ff -> d_model.
    Inputs (B, T, d); Returns (B, T, d)."""
    hidden = ACTIVATIONS[config.activation](
        linear(x, params[f"{prefix}.up.weight"], params[f"{prefix}.up.bias"]))  # (B, T, d_ff)
    return linear(hidden, params[f"{prefix}.down.weight"], params[f"{prefix}.down.bias"])


def residual(params: dict, norm: str, x: torch.Tensor,
             sublayer: Callable[[torch.Tensor], tuple[torch.Tensor, object]], config: GPTConfig,
             training: bool = False) -> tuple[torch.Tensor, object]:
    """One residual connection around ``sublayer`` (a function of (B, T, d) returning
    (out, extra)), with layer norm ``norm`` where the config puts it:

        pre-LN  (GPT-2):  x + Dropout(Sublayer(LayerNorm(x)))
        post-LN (GPT-1):  LayerNorm(x + Dropout(Sublayer(x)))

    Pre-LN keeps an identity path from input to output: deep stacks train without warm-up
    tricks (theory.md). Returns (the new x (B, T, d), extra).
    """
    gamma, beta = params[f"{norm}.weight"], params[f"{norm}.bias"]
    if config.norm_position == "pre":
        out, extra = sublayer(layer_norm(x, gamma, beta, config.layer_norm_eps))
        return x + dropout(out, config.dropout, training=training), extra
    out, extra = sublayer(x)
    return layer_norm(x + dropout(out, config.dropout, training=training), gamma, beta,
                      config.layer_norm_eps), extra


def block(params: dict, prefix: str, x: torch.Tensor, attention_mask: torch.Tensor,
          config: GPTConfig, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoder block: masked self-attention, then the feed-forward, each in ``residual``.
    Inputs: x (B, T, d), attention_mask (B, T). Returns x (B, T, d), weights (B, h, T, T)."""
    x, weights = residual(params, f"{prefix}.norm1", x, lambda y: causal_self_attention(
        params, f"{prefix}.attention", y, attention_mask, config, training), config, training)
    x, _ = residual(params, f"{prefix}.norm2", x, lambda y: (
        feed_forward(params, f"{prefix}.ffn", y, config), None), config, training)
    return x, weights


# --------------------------------------------------------------------------------------
# 5. The model: embeddings, n_layers blocks, final norm (pre-LN), tied output layer
# --------------------------------------------------------------------------------------


def decoder(params: dict, config: GPTConfig, input_ids: torch.Tensor,
            attention_mask: torch.Tensor, position_ids: torch.Tensor,
            training: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """h_0 = embed; h_l = block(h_{l-1}); then final_norm in pre-LN (GPT-2 Section 2.3: "an
    additional layer normalization was added after the final self-attention block").

    Inputs: input_ids, attention_mask, position_ids (B, T). Returns: hidden states (B, T, d),
    each layer's attention weights (B, h, T, T).
    """
    x = embed(params, input_ids, position_ids, config, training)
    attentions = []
    for i in range(config.n_layers):
        x, weights = block(params, f"layers.{i}", x, attention_mask, config, training)
        attentions.append(weights)
    if config.norm_position == "pre":
        x = layer_norm(x, params["final_norm.weight"], params["final_norm.bias"],
                       config.layer_norm_eps)
    return x, attentions


def _check_inputs(config: GPTConfig, input_ids, attention_mask, position_ids) -> None:
    """The door: shapes, dtypes and ranges of forward's inputs, once."""
    shape = tuple(getattr(input_ids, "shape", ()))
    if not isinstance(input_ids, torch.Tensor) or len(shape) != 2 \
            or not 1 <= shape[1] <= config.max_len:
        raise ValueError(f"input_ids: expected a tensor (B, T) with 1 <= T <= max_len = "
                         f"{config.max_len} (the position table), got shape {shape}")
    for name, t, high in (("input_ids", input_ids, config.vocab_size),
                          ("attention_mask", attention_mask, 2),
                          ("position_ids", position_ids, config.max_len)):
        if t is not None and (t.shape != shape or t.is_floating_point()
                              or not 0 <= int(t.min()) <= int(t.max()) < high):
            raise ValueError(f"{name}: expected integers in [0, {high}) of shape {shape}, got "
                             f"{t.dtype} {tuple(t.shape)} in [{t.min().item()}, {t.max().item()}]")
    if attention_mask is not None and not bool(attention_mask.bool().any(dim=1).all()):
        raise ValueError("attention_mask: every sequence needs at least one real token (1)")


def forward(params: dict, config: GPTConfig, input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
            *, training: bool = False) -> torch.Tensor:
    """The language model: logits of the next token at every position.

        P(u_{t+1} | u_1..u_t) = softmax(h_L[t] W_e^T)      (GPT-1 Equation 2, tied W_e)

    Inputs:  params (init_params); config; input_ids (B, T) int64;
             attention_mask (B, T), 1 = real token, 0 = padding (default all 1);
             position_ids (B, T) (default: cumsum(attention_mask) - 1, so that each row's
             first real token is at position 0, with left padding too, as transformers'
             generate); training - dropout on (True) or off
    Returns: logits (B, T, vocab_size)
    """
    _check_inputs(config, input_ids, attention_mask, position_ids)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, T)
    hidden, _ = decoder(params, config, input_ids, attention_mask, position_ids, training)
    return hidden @ params["embeddings.word.weight"].T  # (B, T, V): the tied output layer


# --------------------------------------------------------------------------------------
# 6. The loss: next-token cross-entropy (GPT-1 Equation 1)
# --------------------------------------------------------------------------------------


def lm_loss(logits: torch.Tensor, targets: torch.Tensor,
            ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """L = -(1/|N|) sum_{i in N} log softmax(z_i)[y_i],   N = {i: y_i != ignore_index}

    with log softmax(z)[y] = z_y - logsumexp(z), logsumexp(z) = m + log sum_j exp(z_j - m),
    m = max_j z_j (no overflow). Inputs: logits (..., V); targets (...) int64, already
    shifted (targets[t] = input_ids[t + 1]). Returns a scalar in nats per token, 0 (not NaN)
    when every target is ignored.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"lm_loss: logits (..., V) and targets (...) must agree, got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    logits = logits.reshape(-1, logits.shape[-1])  # (N, V)
    targets = targets.reshape(-1)  # (N,)
    counted = targets != ignore_index
    peak = logits.max(dim=-1, keepdim=True).values.detach()  # (N, 1): any constant works
    log_sum_exp = peak[:, 0] + torch.log(torch.exp(logits - peak).sum(dim=-1))  # (N,)
    picked = logits.gather(1, targets.masked_fill(~counted, 0)[:, None])[:, 0]  # (N,) z_y
    return ((log_sum_exp - picked) * counted).sum() / counted.sum().clamp(min=1)


# --------------------------------------------------------------------------------------
# 7. Sampling (GPT-2 Section 3: greedy, temperature, top-k), without a key/value cache
# --------------------------------------------------------------------------------------


@torch.no_grad()
def generate(params: dict, config: GPTConfig, input_ids: torch.Tensor, max_new_tokens: int,
             *, do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Append max_new_tokens tokens, one at a time: u_{t+1} ~ softmax(z_t / temperature)
    over the top_k largest logits (argmax when do_sample=False). Each step reruns the model
    on the last max_len tokens (L3 keeps keys and values in a cache instead).

    Inputs: input_ids (B, T) int64, no padding; generator - for reproducible sampling
    Returns: (B, T + max_new_tokens) int64
    """
    if not (max_new_tokens >= 0 and temperature > 0 and (top_k is None or top_k >= 1)):
        raise ValueError(f"generate: expected max_new_tokens >= 0, temperature > 0, top_k >= 1 "
                         f"or None, got {max_new_tokens}, {temperature}, {top_k}")
    for _ in range(max_new_tokens):
        logits = forward(params, config, input_ids[:, -config.max_len:])[:, -1]  # (B, V)
        if do_sample:
            logits = logits / temperature
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, -math.inf)
            probs = torch.softmax(logits, dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        else:
            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        input_ids = torch.cat([input_ids, next_id], dim=1)
    return input_ids


# --------------------------------------------------------------------------------------
# 8. Initialisation, AdamW, the schedule, clipping (GPT-2 Section 2.3; GPT-1 Section 4.1)
# --------------------------------------------------------------------------------------


def init_params(config: GPTConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                device="cpu") -> dict[str, torch.Tensor]:
    """GPT-2's initialisation: weights and embeddings ~ N(0, 0.02^2), biases 0, layer norm
    gamma 1, beta 0; the projections that end a residual branch (attention.out, ffn.down)
    ~ N(0, (0.02 / sqrt(2 n_layers))^2), "to account for the accumulation on the residual
    path" (Section 2.3): 2 n_layers branches add their outputs to the stream.

    Returns: {name: leaf tensor with requires_grad}, names as our L3 modules; the output
    layer has no entry: it is embeddings.word.weight.
    """
    generator = torch.Generator().manual_seed(seed)
    d, d_ff = config.d_model, config.d_ff
    shapes = {"embeddings.word.weight": (config.vocab_size, d),
              "embeddings.position.weight": (config.max_len, d)}
    for i in range(config.n_layers):
        shapes.update({f"layers.{i}.norm1.weight": (d,), f"layers.{i}.norm1.bias": (d,),
                       f"layers.{i}.attention.qkv.weight": (3 * d, d),
                       f"layers.{i}.attention.qkv.bias": (3 * d,),
                       f"layers.{i}.attention.out.weight": (d, d),
                       f"layers.{i}.attention.out.bias": (d,),
                       f"layers.{i}.norm2.weight": (d,), f"layers.{i}.norm2.bias": (d,),
                       f"layers.{i}.ffn.up.weight": (d_ff, d), f"layers.{i}.ffn.up.bias": (d_ff,),
                       f"layers.{i}.ffn.down.weight": (d, d_ff),
                       f"layers.{i}.ffn.down.bias": (d,)})
    if config.norm_position == "pre":
        shapes.update({"final_norm.weight": (d,), "final_norm.bias": (d,)})
    residual_std = config.init_std / math.sqrt(2 * config.n_layers)
    params = {}
    for name, shape in shapes.items():
        if "norm" in name and name.endswith("weight"):
            value = torch.ones(shape, dtype=torch.float64)  # gamma
        elif name.endswith("bias"):
            value = torch.zeros(shape, dtype=torch.float64)  # biases and beta
        else:
            ends_branch = name.endswith(("attention.out.weight", "ffn.down.weight"))
            std = residual_std if ends_branch else config.init_std
            value = torch.randn(shape, generator=generator, dtype=torch.float64) * std
        params[name] = value.to(dtype=dtype, device=device).requires_grad_(True)
    return params


def param_groups(params: dict[str, torch.Tensor], weight_decay: float = 0.1) -> list[dict]:
    """AdamW's two groups, as nanoGPT's configure_optimizers: weight decay on every matrix
    (dim >= 2: the linear weights and both embedding tables, the word table also being the
    output layer), none on vectors (biases, layer norm gamma and beta).

    Returns: [{"names", "params", "weight_decay": weight_decay}, {..., "weight_decay": 0.0}]
    """
    decay = [name for name, p in params.items() if p.dim() >= 2]
    no_decay = [name for name in params if name not in decay]
    return [{"names": decay, "params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"names": no_decay, "params": [params[n] for n in no_decay], "weight_decay": 0.0}]


# The AdamW step (Loshchilov & Hutter 2019) is lesson 08's, written there as a function of
# tensors in torch.optim.AdamW's arrangement and checked against it: per group,
#     p <- p - lr wd p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
#     p <- p - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
# GPT-2 style training passes betas=(0.9, 0.95), eps=1e-8. The global-norm clipping
# (g <- g * max_norm / (||g|| + 1e-6) when ||g|| > max_norm, over all parameters at once)
# is lesson 06's clip_grad_norm.
adamw_step = import_lesson("08_BERT.pytorch_lowlevel.bert_lowlevel").adamw_step
clip_grad_norm = import_lesson("06_LSTM_GRU.pytorch_lowlevel.rnn_lowlevel").clip_grad_norm


def cosine_lr(step: int, *, peak_lr: float, warmup: int, total: int, min_lr: float) -> float:
    """The rate for optimiser step ``step`` (0 = the first): linear warm-up from 0 to peak_lr
    over ``warmup`` steps, then half a cosine down to min_lr at ``total``, min_lr after.

        lr(s) = peak * s / warmup                                          s < warmup
        lr(s) = min + (peak - min) (1 + cos(pi p)) / 2,  p = (s - warmup) / (total - warmup)

    (GPT-1 Section 4.1: warm-up over 2,000 updates, cosine to 0; nanoGPT and transformers'
    get_cosine_with_min_lr_schedule_with_warmup stop at min_lr.)
    """
    if step < warmup:
        return peak_lr * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
