"""Tests of lesson 09, Level 2: GPT from tensors and autograd, against transformers.

- forward == transformers' GPT2LMHeadModel (built from a small random GPT2Config, no
  download; eager and sdpa attention) with copied weights (Conv1D transposed), float64,
  1e-10: logits, loss and the gradient of every parameter, without padding, with right
  padding and with left padding (real positions; targets -100 at padding); the attention
  probabilities and the last hidden state
- the GPT-1 form (post-LN, no final norm) == OpenAIGPTLMHeadModel, the same way
- causality: changing a token changes no position before it; padding: what sits in the
  padded slots changes nothing, a left-padded row equals the row alone, no NaN anywhere
- lm_loss == F.cross_entropy(ignore_index=-100), values and gradients, no overflow;
  gelu_tanh == F.gelu(approximate="tanh")
- init_params: GPT-2's initialisation (residual projections 0.02 / sqrt(2 n_layers)), every
  transformers parameter has its one tensor here
- adamw_step + cosine_lr + clip_grad_norm == torch.optim.AdamW (two groups: decay on
  matrices only) + LambdaLR + clip_grad_norm_ over 20 steps; cosine_lr == transformers'
- generate: greedy == transformers' generate(do_sample=False); sampling seeded; top-k
- bad inputs at the door; dropout only when training; the purity rule; the generated
  language (seeded, its entropy read back from a text, floor < unigram); train.py runs

Run: .venv/bin/python -m pytest 09_GPT/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from utils import import_lesson
from utils.testing import FLOAT64, OPTIMIZER_TRAJECTORY, assert_close, assert_level_purity

gpt = import_lesson("09_GPT.pytorch_lowlevel.gpt_lowlevel")
corpus = import_lesson("09_GPT.pytorch_lowlevel.corpus")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

CONFIG = gpt.GPTConfig(vocab_size=50, max_len=12, d_model=24, n_layers=2, n_heads=4, d_ff=40,
                       dropout=0.0, attn_dropout=0.0)
# GPT-1: post-LN, no final norm; its code (and transformers' OpenAIGPT "gelu") use GELU's
# tanh form too
GPT1 = gpt.GPTConfig(**{**vars(CONFIG), "d_ff": 4 * CONFIG.d_model, "norm_position": "post"})
LENGTHS = [10, 7, 4]  # real tokens per row: rows 1 and 2 are padded

# our name -> transformers' name: GPT2LMHeadModel ("transformer.h.0.attn.c_attn.weight")
# and OpenAIGPTLMHeadModel; the output layer is tied to the word table in both
RENAMES = [(r"^embeddings\.word\.", ("transformer.wte.", "transformer.tokens_embed.")),
           (r"^embeddings\.position\.", ("transformer.wpe.", "transformer.positions_embed.")),
           (r"^layers\.(\d+)\.norm1\.", (r"transformer.h.\1.ln_1.",) * 2),
           (r"^layers\.(\d+)\.attention\.qkv\.", (r"transformer.h.\1.attn.c_attn.",) * 2),
           (r"^layers\.(\d+)\.attention\.out\.", (r"transformer.h.\1.attn.c_proj.",) * 2),
           (r"^layers\.(\d+)\.norm2\.", (r"transformer.h.\1.ln_2.",) * 2),
           (r"^layers\.(\d+)\.ffn\.up\.", (r"transformer.h.\1.mlp.c_fc.",) * 2),
           (r"^layers\.(\d+)\.ffn\.down\.", (r"transformer.h.\1.mlp.c_proj.",) * 2),
           (r"^final_norm\.", ("transformer.ln_f.", None))]


def hf_name(name: str, gpt1: bool = False) -> str:
    for pattern, replacements in RENAMES:
        if re.match(pattern, name) and replacements[gpt1] is not None:
            return re.sub(pattern, replacements[gpt1], name)
    raise KeyError(name)


def is_conv1d(name: str) -> bool:
    """GPT's Conv1D stores its weight (in, out): the transpose of nn.Linear's (out, in)."""
    return name.startswith("layers.") and name.endswith("weight") and "norm" not in name


def random_params(config=CONFIG, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter random (biases and layer norms too), float64: nothing hides at 0 or 1."""
    params = gpt.init_params(config, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in params.items():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(1 + 0.2 * noise if "norm" in name and name.endswith("weight")
                    else 0.3 * noise)
    return params


def hf_model(params, config=CONFIG, attn_implementation: str = "eager"):
    """transformers' GPT2LMHeadModel (or OpenAIGPTLMHeadModel for post-LN) of config's sizes
    holding a copy of ``params``."""
    transformers = pytest.importorskip("transformers")
    gpt1 = config.norm_position == "post"
    sizes = dict(vocab_size=config.vocab_size, n_positions=config.max_len,
                 n_embd=config.d_model, n_layer=config.n_layers, n_head=config.n_heads,
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                 layer_norm_epsilon=config.layer_norm_eps, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    if gpt1:
        assert config.d_ff == 4 * config.d_model  # OpenAIGPT's MLP is always 4 n_embd wide
        model = transformers.OpenAIGPTLMHeadModel(transformers.OpenAIGPTConfig(
            **sizes, afn="gelu", attn_implementation=attn_implementation))  # tanh form
    else:
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            **sizes, n_inner=config.d_ff, activation_function="gelu_new",
            attn_implementation=attn_implementation))
    model = model.double().eval()
    state = {hf_name(name, gpt1): (p.detach().T if is_conv1d(name) else p.detach())
             for name, p in params.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) == {"lm_head.weight"}, missing  # tied: the word table
    assert model.lm_head.weight is model.get_input_embeddings().weight
    return model


def batch(padding: str, seed: int = 0):
    """input_ids (3, 10), attention_mask, position_ids (first real token at 0), labels
    (B, T), -100 at padding. padding: "none", "right" or "left". The padded slots hold
    random tokens."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(LENGTHS), max(LENGTHS)
    input_ids = torch.randint(0, CONFIG.vocab_size, (B, T), generator=g)
    lengths = torch.tensor(LENGTHS if padding != "none" else [T] * B)
    positions = torch.arange(T)[None, :]
    real = positions < lengths[:, None] if padding != "left" else positions >= T - lengths[:, None]
    attention_mask = real.long()
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    # transformers' labels (shifted by the loss): a target counts where it and the position
    # that predicts it are real (with left padding, a padded slot precedes the first token)
    previous_real = F.pad(real[:, :-1], (1, 0), value=True)
    labels = input_ids.masked_fill(~(real & previous_real), -100)
    return input_ids, attention_mask, position_ids, labels


def hf_logits_and_loss(model, input_ids, attention_mask, position_ids, labels):
    """transformers' logits and its causal-LM loss (labels shifted by one, -100 skipped),
    computed in float64 (its own loss function casts the logits to float32)."""
    logits = model(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                           labels[:, 1:].reshape(-1), ignore_index=-100)
    return logits, loss


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The model against transformers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["none", "right", "left"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_logits_loss_and_every_gradient_equal_transformers_gpt2(attn_implementation, padding):
    params = random_params(seed=1)
    model = hf_model(params, CONFIG, attn_implementation)
    input_ids, attention_mask, position_ids, labels = batch(padding, seed=2)
    logits = gpt.forward(params, CONFIG, input_ids, attention_mask)  # default position_ids
    loss = gpt.lm_loss(logits[:, :-1], labels[:, 1:])
    loss.backward()
    expected_logits, expected_loss = hf_logits_and_loss(model, input_ids, attention_mask,
                                                        position_ids, labels)
    expected_loss.backward()
    real = attention_mask.bool()
    assert_close(logits[real], expected_logits[real], FLOAT64, "logits at real positions")
    assert_close(loss, expected_loss, FLOAT64, "loss")
    theirs = dict(model.named_parameters())
    for name, p in params.items():
        grad = theirs[hf_name(name)].grad
        assert_close(p.grad, grad.T if is_conv1d(name) else grad, FLOAT64, f"gradient of {name}")
        key_bias = slice(CONFIG.d_model, 2 * CONFIG.d_model)  # q.(k + b) = q.k + q.b: no change
        if name.endswith("attention.qkv.bias"):
            assert p.grad[key_bias].abs().max() < 1e-12, "the key bias cannot change softmax"
        assert p.grad.abs().max() > 1e-3, f"no gradient reaches {name}"


def test_attention_probabilities_and_hidden_states_equal_transformers():
    params = random_params(seed=3)
    model = hf_model(params)
    input_ids, attention_mask, position_ids, _ = batch("right", seed=4)
    hidden, attentions = gpt.decoder(params, CONFIG, input_ids, attention_mask, position_ids)
    with torch.no_grad():
        expected = model.transformer(input_ids, attention_mask=attention_mask,
                                     position_ids=position_ids, output_attentions=True)
    real = attention_mask.bool()
    assert_close(hidden[real], expected.last_hidden_state[real], FLOAT64, "after final_norm")
    for i, (ours, theirs) in enumerate(zip(attentions, expected.attentions)):
        assert_close(ours.transpose(1, 2)[real], theirs.transpose(1, 2)[real], FLOAT64,
                     f"attention probabilities of the real queries, layer {i}")
    weights = attentions[0]
    assert weights[1, :, :, LENGTHS[1]:].abs().max() == 0, "a padding key got weight"
    assert torch.equal(weights.triu(1), torch.zeros_like(weights)), "a future key got weight"
    assert weights[0, :, -1].min() > 0  # the last query reads every earlier key


def test_gpt1_post_ln_form_equals_transformers_openai_gpt():
    config = GPT1
    params = random_params(config, seed=5)
    assert "final_norm.weight" not in params  # GPT-1 has no final layer norm
    model = hf_model(params, config)
    input_ids, attention_mask, position_ids, labels = batch("right", seed=6)
    logits = gpt.forward(params, config, input_ids, attention_mask)
    loss = gpt.lm_loss(logits[:, :-1], labels[:, 1:])
    loss.backward()
    expected_logits, expected_loss = hf_logits_and_loss(model, input_ids, attention_mask,
                                                        position_ids, labels)
    expected_loss.backward()
    real = attention_mask.bool()
    assert_close(logits[real], expected_logits[real], FLOAT64, "GPT-1 logits")
    assert_close(loss, expected_loss, FLOAT64, "GPT-1 loss")
    theirs = dict(model.named_parameters())
    for name, p in params.items():
        grad = theirs[hf_name(name, gpt1=True)].grad
        assert_close(p.grad, grad.T if is_conv1d(name) else grad, FLOAT64, f"gradient of {name}")
    # the pre-LN GPT-2 form of the same weights is another function
    pre = gpt.GPTConfig(**{**vars(config), "norm_position": "pre"})
    pre_params = {**params, "final_norm.weight": torch.ones(config.d_model, dtype=torch.float64),
                  "final_norm.bias": torch.zeros(config.d_model, dtype=torch.float64)}
    other = gpt.forward(pre_params, pre, input_ids, attention_mask)
    assert (other - logits).abs().max() > 1e-2


# --------------------------------------------------------------------------------------
# Causality and padding
# --------------------------------------------------------------------------------------


def test_a_token_changes_no_position_before_it():
    params = random_params(seed=7)
    input_ids, *_ = batch("none", seed=8)
    logits = gpt.forward(params, CONFIG, input_ids)
    for t in (0, 4, 9):
        changed = input_ids.clone()
        changed[:, t] = (changed[:, t] + 1) % CONFIG.vocab_size
        other = gpt.forward(params, CONFIG, changed)
        assert_close(other[:, :t], logits[:, :t], FLOAT64, f"positions before {t}")
        assert (other[:, t:] - logits[:, t:]).abs().amax(dim=-1).min() > 1e-6, \
            f"positions from {t} on must see the change"


@pytest.mark.parametrize("padding", ["right", "left"])
def test_padding_changes_nothing_at_the_real_positions(padding):
    params = random_params(seed=9)
    input_ids, attention_mask, _, labels = batch(padding, seed=10)
    logits = gpt.forward(params, CONFIG, input_ids, attention_mask)
    real = attention_mask.bool()
    changed = input_ids.masked_fill(~real, 7)  # other tokens in the padded slots
    assert_close(gpt.forward(params, CONFIG, changed, attention_mask)[real], logits[real],
                 FLOAT64, "real positions with other padding")
    for row in range(len(LENGTHS)):  # each padded row equals the row alone
        alone = gpt.forward(params, CONFIG, input_ids[row:row + 1, real[row]])[0]
        assert_close(logits[row, real[row]], alone, FLOAT64, f"row {row} without padding")
    # no NaN, in the padded slots (left: they may read no key) and in the gradients
    loss = gpt.lm_loss(logits[:, :-1], labels[:, 1:])
    loss.backward()
    assert torch.isfinite(logits).all() and all(torch.isfinite(p.grad).all()
                                                for p in params.values())
    if padding == "left":  # without the mask, real tokens would read the padding before them
        unmasked = gpt.forward(params, CONFIG, input_ids)
        assert (unmasked[real] - logits[real]).abs().max() > 1e-3


def test_dropout_acts_only_when_training():
    config = gpt.GPTConfig(**{**vars(CONFIG), "dropout": 0.3, "attn_dropout": 0.3})
    params = random_params()
    input_ids, attention_mask, *_ = batch("right")
    evaluation = gpt.forward(params, config, input_ids, attention_mask)
    assert_close(evaluation, gpt.forward(params, CONFIG, input_ids, attention_mask), FLOAT64,
                 "eval mode")
    torch.manual_seed(0)
    trained = gpt.forward(params, config, input_ids, attention_mask, training=True)
    assert (trained - evaluation).abs().max() > 1e-2


# --------------------------------------------------------------------------------------
# GELU and the loss
# --------------------------------------------------------------------------------------


def test_gelu_tanh_is_the_tanh_approximation():
    x = torch.linspace(-6, 6, 121, dtype=torch.float64)
    assert_close(gpt.gelu_tanh(x), F.gelu(x, approximate="tanh"), FLOAT64, "GELU tanh form")
    assert_close(gpt.gelu(x), F.gelu(x), FLOAT64, "GELU erf form")
    assert 1e-4 < (gpt.gelu_tanh(x) - gpt.gelu(x)).abs().max() < 1e-3


def test_lm_loss_equals_cross_entropy_with_ignore_index():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 11, generator=g, dtype=torch.float64) * 3
    logits[0, 0, 3] = 1000.0  # exp(1000) overflows: log-sum-exp must not
    logits.requires_grad_(True)
    targets = torch.randint(0, 11, (4, 7), generator=g)
    targets[torch.rand(4, 7, generator=g) < 0.3] = -100
    ours = gpt.lm_loss(logits, targets)
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=-100)
    assert_close(ours, expected, FLOAT64, "loss")
    grad, = torch.autograd.grad(ours, logits)
    expected_grad, = torch.autograd.grad(expected, logits)
    assert_close(grad, expected_grad, FLOAT64, "loss gradient")
    assert 0 < int((targets == -100).sum()) < targets.numel() / 2
    nothing = gpt.lm_loss(logits, torch.full_like(targets, -100))
    assert float(nothing.detach()) == 0.0  # 0, not torch's NaN


# --------------------------------------------------------------------------------------
# Initialisation, AdamW, the schedule, clipping
# --------------------------------------------------------------------------------------


def test_init_params_is_gpt2_initialisation_with_every_transformers_parameter():
    config = gpt.GPTConfig(vocab_size=300, max_len=64, d_model=64, n_layers=2, n_heads=4)
    params = gpt.init_params(config, seed=0)
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=300, n_positions=64, n_embd=64, n_layer=2, n_head=4))
    theirs = dict(hf.named_parameters())  # the tied lm_head is listed once, as wte
    assert sorted(hf_name(n) for n in params) == sorted(theirs)
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)
    for name, p in params.items():
        expected_shape = theirs[hf_name(name)].shape
        assert p.shape == (expected_shape[::-1] if is_conv1d(name) else expected_shape), name
        assert p.requires_grad and p.dtype == torch.float32 and p.is_leaf
        if "norm" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            std = residual_std if name.endswith(("out.weight", "down.weight")) else 0.02
            assert abs(float(p.detach().mean())) < 0.15 * std, name
            assert 0.93 * std < float(p.detach().std()) < 1.07 * std, (name, std)
    again = gpt.init_params(config, seed=0)
    assert all(torch.equal(params[n], again[n]) for n in params)
    assert not torch.equal(gpt.init_params(config, seed=1)["embeddings.word.weight"],
                           params["embeddings.word.weight"])
    assert gpt.GPTConfig().d_ff == 3072  # None -> 4 d_model


def test_param_groups_decay_matrices_only():
    params = gpt.init_params(CONFIG)
    decay, no_decay = gpt.param_groups(params, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {"embeddings.word.weight", "embeddings.position.weight",
            "layers.0.attention.qkv.weight", "layers.1.ffn.down.weight"} <= set(decay["names"])
    assert {"layers.0.norm1.weight", "layers.0.attention.qkv.bias", "final_norm.bias",
            "layers.1.ffn.up.bias"} <= set(no_decay["names"])
    assert sorted(decay["names"] + no_decay["names"]) == sorted(params)
    assert len(decay["names"]) == 2 + 4 * CONFIG.n_layers
    for group in (decay, no_decay):
        assert all(params[n] is p for n, p in zip(group["names"], group["params"]))


def test_adamw_schedule_and_clipping_equal_torch_over_20_steps():
    ours, theirs = random_params(seed=11), random_params(seed=11)
    input_ids, attention_mask, _, labels = batch("right", seed=12)

    def loss_of(params):
        logits = gpt.forward(params, CONFIG, input_ids, attention_mask)
        return gpt.lm_loss(logits[:, :-1], labels[:, 1:])

    peak, min_lr, warmup, total, decay, max_norm = 0.01, 0.001, 5, 20, 0.3, 1.0
    betas, eps = (0.9, 0.95), 1e-8
    groups = gpt.param_groups(ours, weight_decay=decay)
    torch_groups = [{"params": [p for p in theirs.values() if p.dim() >= 2],
                     "weight_decay": decay},
                    {"params": [p for p in theirs.values() if p.dim() < 2],
                     "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(torch_groups, lr=peak, betas=betas, eps=eps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: gpt.cosine_lr(
        step, peak_lr=1.0, warmup=warmup, total=total, min_lr=min_lr / peak))
    state, clipped = None, 0
    for step in range(total):
        gpt.zero_grad(ours.values())
        loss_of(ours).backward()
        norm = gpt.clip_grad_norm(ours.values(), max_norm)
        lr = gpt.cosine_lr(step, peak_lr=peak, warmup=warmup, total=total, min_lr=min_lr)
        state = gpt.adamw_step(groups, lr, betas=betas, eps=eps, state=state)
        optimizer.zero_grad()
        loss_of(theirs).backward()
        expected_norm = torch.nn.utils.clip_grad_norm_(list(theirs.values()), max_norm)
        optimizer.step()
        schedule.step()
        assert_close(norm, expected_norm, FLOAT64, f"gradient norm at step {step}")
        clipped += float(norm) > max_norm
    assert 0 < clipped < total, "clipping should act on some steps, not all"
    start = random_params(seed=11)
    for name in ours:
        # the key bias's true gradient is 0 (softmax ignores a shift shared by every key):
        # Adam divides its rounding noise by sqrt(v) + eps and moves it by up to lr per step,
        # a walk that differs between CPUs; those rows get the trajectory tolerance
        tol = OPTIMIZER_TRAJECTORY if name.endswith("attention.qkv.bias") else FLOAT64
        assert_close(ours[name], theirs[name], tol, f"{name} after {total} steps")
        assert (ours[name] - start[name]).abs().max() > 1e-3, f"{name} did not move"


def test_cosine_lr_is_warmup_then_cosine_to_min_lr():
    peak, min_lr, warmup, total = 6e-4, 6e-5, 10, 50
    values = [gpt.cosine_lr(s, peak_lr=peak, warmup=warmup, total=total, min_lr=min_lr)
              for s in range(total + 3)]
    assert values[0] == 0.0 and values[5] == pytest.approx(peak / 2)
    assert values[warmup] == pytest.approx(peak)
    assert values[30] == pytest.approx((peak + min_lr) / 2)  # half-way down the cosine
    assert values[total] == values[total + 2] == pytest.approx(min_lr)
    transformers = pytest.importorskip("transformers")
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=peak)
    reference = transformers.get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, warmup, total, min_lr=min_lr)
    for step in range(total + 1):
        assert values[step] == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12,
                                             abs=1e-18), step
        optimizer.step()
        reference.step()


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def test_generate_greedy_equals_transformers_and_sampling_is_seeded():
    params = random_params(seed=13)
    model = hf_model(params)
    prompt = torch.randint(0, CONFIG.vocab_size, (2, 4), generator=torch.Generator().manual_seed(0))
    ours = gpt.generate(params, CONFIG, prompt, 6)
    with torch.no_grad():
        expected = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                  max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(ours, expected)
    longer = gpt.generate(params, CONFIG, prompt, CONFIG.max_len + 3)  # the context is cropped
    assert longer.shape == (2, 4 + CONFIG.max_len + 3)

    def sample(seed, **kwargs):
        return gpt.generate(params, CONFIG, prompt, 8, do_sample=True,
                            generator=torch.Generator().manual_seed(seed), **kwargs)

    assert torch.equal(sample(1), sample(1)) and not torch.equal(sample(1), sample(2))
    assert torch.equal(sample(3, top_k=1), gpt.generate(params, CONFIG, prompt, 8))
    cold = sample(4, temperature=1e-3)  # temperature -> 0 is greedy
    assert torch.equal(cold, gpt.generate(params, CONFIG, prompt, 8))


# --------------------------------------------------------------------------------------
# The door, the corpus, the script
# --------------------------------------------------------------------------------------


def test_bad_inputs_are_refused_with_clear_messages():
    params = gpt.init_params(CONFIG)
    input_ids, attention_mask, *_ = batch("right")
    with pytest.raises(ValueError, match="divisible"):
        gpt.GPTConfig(vocab_size=10, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="norm_position"):
        gpt.GPTConfig(vocab_size=10, d_model=8, n_heads=2, norm_position="middle")
    with pytest.raises(ValueError, match=r"input_ids: expected integers in \[0, 50\)"):
        gpt.forward(params, CONFIG, input_ids + 60)
    with pytest.raises(ValueError, match="max_len = 12"):
        gpt.forward(params, CONFIG, torch.ones(1, CONFIG.max_len + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask: expected"):
        gpt.forward(params, CONFIG, input_ids, attention_mask[:, :3])
    with pytest.raises(ValueError, match="at least one real token"):
        gpt.forward(params, CONFIG, input_ids, torch.zeros_like(input_ids))
    with pytest.raises(ValueError, match=r"position_ids: expected integers in \[0, 12\)"):
        gpt.forward(params, CONFIG, input_ids, attention_mask, input_ids)
    with pytest.raises(ValueError, match="must agree"):
        gpt.lm_loss(torch.zeros(3, 9, 50), torch.zeros(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature > 0"):
        gpt.generate(params, CONFIG, input_ids, 2, do_sample=True, temperature=0.0)


def test_generated_language_is_seeded_and_its_entropy_is_a_floor_below_unigram():
    text = corpus.generate_text(300, seed=0)
    assert text == corpus.generate_text(300, seed=0) != corpus.generate_text(300, seed=1)
    assert set(text) <= set(corpus.VOCAB) and len(corpus.VOCAB) <= 40
    assert len(set(text)) >= 28  # letters, space, ".", "\n", brackets, quotes
    # the entropy read back from the text equals the sum over the choices that drew it
    floor = corpus.entropy_per_char(text)
    assert floor == pytest.approx(corpus.entropy_per_char(300, seed=0), rel=1e-12)
    other = corpus.generate_text(300, seed=1)
    unigram = corpus.unigram_loss(text, other)
    assert 0.15 < corpus.entropy_per_char(other) < 0.5 < 2.5 < unigram < math.log(32)
    with pytest.raises(ValueError, match="not a text of this language"):
        corpus.entropy_per_char(text.replace("(that is ", "(that are ", 1))  # agreement
    with pytest.raises(ValueError, match="not a text of this language"):
        corpus.entropy_per_char("the cat (that is old meows. ")


def test_generated_language_keeps_its_rules():
    sentences = re.split(r"(?<=\.)[ \n]", corpus.generate_text(2000, seed=2).strip())
    verbs = {noun: {v for pair in pairs for v in pair} for noun, pairs in corpus.ANIMALS.items()}
    seen = {"bracket": 0, "quote": 0, "pronoun": 0}
    previous = None
    for sentence in sentences:
        assert sentence.count("(") == sentence.count(")") <= 2
        assert sentence.count('"') in (0, 2)
        seen["bracket"] += "(" in sentence
        seen["quote"] += '"' in sentence
        words = re.sub(r"\(that (is|are)( very)* \w+\) ", "", sentence).rstrip('.').split()
        if words[0] != "the":  # a pronoun: its verb is the previous subject's
            seen["pronoun"] += 1
            if previous in verbs:
                assert words[1] in verbs[previous], (sentence, previous)
        else:
            subject = words[2] if words[1] in corpus.ADJECTIVES else words[1]
            previous = next(noun for noun in list(corpus.ANIMALS) + list(corpus.PEOPLE)
                            if subject in noun)
            verb = words[words.index(subject) + 1]
            assert verb.endswith("s") == (subject == previous[0]), sentence  # agreement
        if "(that is" in sentence or "(that are" in sentence:
            number = re.search(r"(\w+) \(that (is|are)", sentence)
            assert (number.group(2) == "are") == number.group(1).endswith("s"), sentence
    assert all(count > 100 for count in seen.values()), seen


def test_train_main_runs_and_the_loss_falls(tmp_path):
    train = import_lesson("09_GPT.pytorch_lowlevel.train")
    result = train.main(["--steps", "40", "--n-train", "600", "--n-val", "60",
                         "--batch-size", "16", "--max-len", "32", "--d-model", "32",
                         "--layers", "1", "--lr", "3e-3", "--eval-every", "20",
                         "--sample-chars", "40", "--no-progress", "--out", str(tmp_path)])
    assert result["val_loss"] < result["first_loss"] - 0.5
    assert result["val_loss"] < result["unigram_loss"]
    assert 0.1 < result["floor"] < result["unigram_loss"]
    assert result["bits_per_char"] == pytest.approx(result["val_loss"] / math.log(2))
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert len((tmp_path / "sample.txt").read_text()) >= 40
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--epochs", "3"])
    assert exit_info.value.code == 2
