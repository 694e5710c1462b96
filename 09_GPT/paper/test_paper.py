"""Tests of lesson 09, Level 3: GPT-1 and GPT-2 in torch.nn (gpt_paper.py) and their porting
(convert.py).

- parameter counts: equal to transformers' for the same configs (tiny; and GPT-1, GPT-2
  small/medium/large/xl counted on the meta device), GPT-2 small = 124,439,808, the formula
  written out here, and how far the papers' figures (117M, 345M, 762M, 1542M) are
- from_hf / to_hf for GPT2LMHeadModel (transformers' "eager" and "sdpa") and
  OpenAIGPTLMHeadModel, both directions: logits and every gradient, float64 to 1e-10, with
  left padding and an attention mask, on perturbed weights; our two attention paths agree
- checkpoint folders written by save_pretrained (ours and transformers'): safetensors and
  pytorch_model.bin, with and without the "transformer." prefix, old mask buffers, lm_head
  present or absent; transformers' from_pretrained reads ours; clear errors; no
  transformers needed to load
- generation: the key/value cache gives the logits of recomputing (1e-10, several chunks,
  padding); greedy tokens equal transformers' generate(do_sample=False), one prompt and a
  left-padded batch, with eos; sampling is reproducible with a seed and equals
  temperature + TopK + TopP warpers + multinomial; top-k / top-p keep exactly the right tokens
- the loss, the optimizer groups, the schedule, GPT-2's initialisation, bad inputs, the
  state-dict round trip, seeded determinism, overfitting one batch, level purity

Run: .venv/bin/python -m pytest 09_GPT/paper/test_paper.py -q
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import transformers
from torch import nn

from utils import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity

gp = import_lesson("09_GPT.paper.gpt_paper")
cv = import_lesson("09_GPT.paper.convert")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one CPU thread

VOCAB, MAX_LEN = 53, 24
KINDS = ("gpt2", "gpt1")  # pre-LN GPT2LMHeadModel, post-LN OpenAIGPTLMHeadModel


def _config(kind: str = "gpt2", **overrides) -> gp.GPTConfig:
    sizes = {"vocab_size": VOCAB, "max_len": MAX_LEN, "d_model": 16, "n_layers": 2,
             "n_heads": 2, "norm_position": "pre" if kind == "gpt2" else "post"}
    return gp.GPTConfig(**{**sizes, **overrides})


def _theirs(kind: str = "gpt2", attn: str = "eager", **overrides):
    sizes = {"vocab_size": VOCAB, "n_positions": MAX_LEN, "n_embd": 16, "n_layer": 2,
             "n_head": 2, "bos_token_id": None, "eos_token_id": None,
             "attn_implementation": attn}
    if kind == "gpt2":
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**sizes, **overrides}))
    return transformers.OpenAIGPTLMHeadModel(transformers.OpenAIGPTConfig(**{**sizes,
                                                                            **overrides}))


def _perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter moved off its initial value (LayerNorm 1/0 and zero biases can hide a
    swapped or missing weight), float64, eval mode."""
    generator = torch.Generator().manual_seed(seed)
    model.double().eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return model


def _batch(seed: int = 1, batch: int = 3, length: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts (rows 1 and 2 start late, as a tokenizer with padding_side="left"
    gives them): input_ids (B, T), attention_mask (B, T)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[1, :3] = 0
    attention_mask[2, :5] = 0
    input_ids[attention_mask == 0] = 0  # whatever the padding id is
    return input_ids, attention_mask


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """What transformers' generate passes as position_ids (its forward alone uses 0..T-1)."""
    return (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)


def _loss(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """A scalar of every real position's logits (padding rows are meaningless in both)."""
    weights = torch.linspace(-1, 1, logits[0].numel(), dtype=logits.dtype).view(logits[0].shape)
    return (logits * weights * attention_mask[..., None]).sum()


def _assert_same(ours: gp.GPT, theirs, input_ids, attention_mask) -> None:
    """Equal logits at real positions and equal gradients of every parameter (float64)."""
    ours.zero_grad()
    theirs.zero_grad()
    our_logits = ours(input_ids, attention_mask)
    their_logits = theirs(input_ids, attention_mask=attention_mask,
                          position_ids=_positions(attention_mask)).logits
    real = attention_mask.bool()
    assert_close(our_logits[real], their_logits[real], FLOAT64, name="logits")
    _loss(our_logits, attention_mask).backward()
    _loss(their_logits, attention_mask).backward()
    ours_params = dict(ours.named_parameters())
    their_params = dict(theirs.named_parameters())
    assert len(their_params) == len(ours_params)  # the tied matrix counted once in both
    for key, param in their_params.items():
        name, transpose = cv.our_name(key)
        grad = ours_params[name].grad
        assert grad is not None and param.grad.abs().sum() > 0, key
        assert_close(grad.T if transpose else grad, param.grad, FLOAT64, name=f"d/d {key}")


# --------------------------------------------------------------------------------------
# Parameter counts (GPT-1 Section 4.1, GPT-2 Table 2; ../theory.md)
# --------------------------------------------------------------------------------------


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # the tied matrix counts once


def _formula(vocab: int, max_len: int, d: int, n_layers: int, final_norm: bool) -> int:
    """GPT with tied output layer, counted by hand: embeddings, blocks, final LayerNorm."""
    attention = (3 * d * d + 3 * d) + (d * d + d)  # qkv and out, with biases
    ffn = (d * 4 * d + 4 * d) + (4 * d * d + d)  # up and down
    block = attention + ffn + 2 * 2 * d  # two LayerNorms
    return (vocab + max_len) * d + n_layers * block + (2 * d if final_norm else 0)


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_counts_equal_transformers_on_tiny_configs(kind):
    assert _count(gp.GPT(_config(kind))) == _count(_theirs(kind)) \
        == _formula(VOCAB, MAX_LEN, 16, 2, kind == "gpt2")


# name, our count (= transformers'), the paper's figure in millions, our count / paper - 1.
# GPT-2's Table 2 gives 117M (also "the original GPT"), 345M, 762M, 1542M; OpenAI's gpt-2
# README later says those counts were wrong and renames the models 124M and 355M: what we
# count. GPT-1's own paper gives no count; 116.5M is 0.4 % under the 117M quoted for it.
PAPER_SIZES = [("gpt1", 116_534_784, 117, -0.004), ("gpt2", 124_439_808, 117, 0.064),
               ("gpt2_medium", 354_823_168, 345, 0.028), ("gpt2_large", 774_030_080, 762, 0.016),
               ("gpt2_xl", 1_557_611_200, 1542, 0.010)]


@pytest.mark.parametrize("name, expected, paper_millions, relative", PAPER_SIZES)
def test_parameter_counts_of_the_paper_sizes(name, expected, paper_millions, relative,
                                             monkeypatch):
    cfg = getattr(gp.GPTConfig, name)()
    shapes = {"gpt1": (12, 768, 12, 40478, 512), "gpt2": (12, 768, 12, 50257, 1024),
              "gpt2_medium": (24, 1024, 16, 50257, 1024),
              "gpt2_large": (36, 1280, 20, 50257, 1024), "gpt2_xl": (48, 1600, 25, 50257, 1024)}
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.vocab_size, cfg.max_len) == shapes[name]
    assert cfg.d_ff == 4 * cfg.d_model and cfg.norm_position == ("post" if name == "gpt1"
                                                                  else "pre")
    assert _formula(cfg.vocab_size, cfg.max_len, cfg.d_model, cfg.n_layers,
                    name != "gpt1") == expected
    # normal_ on the meta device imports torch's reference ops (seconds); shapes need no values
    monkeypatch.setattr(nn.init, "normal_", lambda tensor, *args, **kwargs: tensor)
    with torch.device("meta"):  # shapes only: no memory (GPT-2 XL is 6 GB in float32)
        assert _count(gp.GPT(cfg)) == expected
        theirs = _theirs("gpt1" if name == "gpt1" else "gpt2",
                         **{k: v for k, v in cv.config_to_hf(cfg).to_dict().items()
                            if k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")})
        assert _count(theirs) == expected
    assert round(expected / (paper_millions * 1e6) - 1, 3) == relative


# --------------------------------------------------------------------------------------
# from_hf / to_hf: same logits and gradients (float64, 1e-10), left padding
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, attn", [("gpt2", "eager"), ("gpt2", "sdpa"), ("gpt1", "eager")])
def test_from_hf_equals_transformers(kind, attn):
    torch.manual_seed(0)
    theirs = _perturb(_theirs(kind, attn))
    ours = cv.from_hf(theirs)
    assert not ours.training and ours.config.attn_implementation == attn
    assert ours.config.norm_position == ("pre" if kind == "gpt2" else "post")
    assert ours.lm_head.weight is ours.embeddings.word.weight
    _assert_same(ours, theirs, *_batch())
    _assert_same(ours, theirs, _batch(seed=2)[0], torch.ones(3, 9, dtype=torch.long))


@pytest.mark.parametrize("kind, attn", [("gpt2", "eager"), ("gpt2", "sdpa"), ("gpt1", "eager")])
def test_to_hf_equals_ours(kind, attn):
    torch.manual_seed(0)
    ours = _perturb(gp.GPT(_config(kind)))
    theirs = cv.to_hf(ours, attn_implementation=attn)
    expected = transformers.GPT2LMHeadModel if kind == "gpt2" \
        else transformers.OpenAIGPTLMHeadModel
    assert type(theirs) is expected and theirs.config._attn_implementation == attn
    assert not theirs.training and next(theirs.parameters()).dtype == torch.float64
    assert theirs.lm_head.weight is theirs.get_input_embeddings().weight  # tied there too
    _assert_same(ours, theirs, *_batch(seed=3))
    config = cv.config_from_hf(theirs.config)
    assert config == ours.config
    assert cv.config_from_hf(json.loads(theirs.config.to_json_string())) == ours.config


def test_gelu_erf_and_a_different_d_ff_port_to_gpt2():
    torch.manual_seed(0)
    ours = _perturb(gp.GPT(_config(activation="gelu", d_ff=24)))
    theirs = cv.to_hf(ours)
    assert theirs.config.activation_function == "gelu" and theirs.config.n_inner == 24
    _assert_same(ours, theirs, *_batch())


def test_sdpa_equals_the_attention_written_step_by_step():
    torch.manual_seed(0)
    for kind in KINDS:
        eager = _perturb(gp.GPT(_config(kind)))
        fused = gp.GPT(_config(kind, attn_implementation="sdpa")).double().eval()
        fused.load_state_dict(eager.state_dict())
        assert fused.layers[0].attention.implementation == "sdpa"
        for ids, mask in (_batch(), (_batch()[0], None)):
            outputs = []
            for model in (eager, fused):
                model.zero_grad()
                logits = model(ids, mask)
                _loss(logits, torch.ones_like(ids) if mask is None else mask).backward()
                outputs.append((logits, [p.grad for p in model.parameters()]))
            (logits_e, grads_e), (logits_f, grads_f) = outputs
            real = slice(None) if mask is None else mask.bool()
            assert_close(logits_f[real], logits_e[real], FLOAT64, name="logits")
            for grad_f, grad_e in zip(grads_f, grads_e):
                assert_close(grad_f, grad_e, FLOAT64, name="gradient")


def test_causal_and_padding_masks():
    """Changing a token changes no logit before it; changing the padding changes no real
    position; a left-padded prompt gives the logits of the same prompt alone."""
    torch.manual_seed(0)
    for kind in KINDS:
        model = _perturb(gp.GPT(_config(kind)))
        ids, mask = _batch()
        logits = model(ids, mask)
        changed = ids.clone()
        changed[:, 6] = (changed[:, 6] + 1) % VOCAB
        again = model(changed, mask)
        before = mask.bool() & (torch.arange(9) < 6)  # real positions before position 6
        assert_close(again[before], logits[before], FLOAT64)
        assert not torch.allclose(again[0, 6:], logits[0, 6:])
        other_padding = ids.masked_fill(mask == 0, 7)
        assert_close(model(other_padding, mask)[mask.bool()], logits[mask.bool()], FLOAT64)
        alone = model(ids[2:, 5:])  # row 2 without its 5 padding tokens
        assert_close(alone[0], logits[2, 5:], FLOAT64)


# --------------------------------------------------------------------------------------
# Checkpoint folders: save_pretrained / load_pretrained
# --------------------------------------------------------------------------------------


def _their_logits(theirs, ids, mask) -> torch.Tensor:
    return theirs(ids, attention_mask=mask, position_ids=_positions(mask)).logits


@pytest.mark.parametrize("kind", KINDS)
def test_our_save_pretrained_loads_in_transformers_and_back(kind, tmp_path):
    torch.manual_seed(0)
    ours = _perturb(gp.GPT(_config(kind)))
    directory = cv.save_pretrained(ours, tmp_path / kind)
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == ("gpt2" if kind == "gpt2" else "openai-gpt")
    theirs_class = transformers.GPT2LMHeadModel if kind == "gpt2" \
        else transformers.OpenAIGPTLMHeadModel
    theirs = theirs_class.from_pretrained(directory, dtype=torch.float64)
    ids, mask = _batch()
    real = mask.bool()
    expected = ours(ids, mask)
    assert_close(_their_logits(theirs, ids, mask)[real], expected[real], FLOAT64)
    loaded = cv.load_pretrained(directory, dtype=torch.float64)
    assert not loaded.training and loaded.lm_head.weight is loaded.embeddings.word.weight
    assert torch.equal(loaded(ids, mask), expected)


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
@pytest.mark.parametrize("kind", KINDS)
def test_load_pretrained_equals_transformers(kind, weights, tmp_path):
    torch.manual_seed(0)
    theirs = _perturb(_theirs(kind))
    directory = tmp_path / kind
    theirs.save_pretrained(directory)
    if weights == "bin":  # the older format: torch.save of the state dict
        (directory / "model.safetensors").unlink()
        torch.save(theirs.state_dict(), directory / "pytorch_model.bin")
    ours = cv.load_pretrained(directory, dtype=torch.float64, attn_implementation="sdpa")
    assert ours.config.attn_implementation == "sdpa"
    _assert_same(ours, theirs, *_batch())


@pytest.mark.parametrize("kind", KINDS)
def test_load_pretrained_bare_names_old_buffers_and_lm_head(kind, tmp_path):
    """Files as they exist: GPT2Model's names (no "transformer." prefix, no lm_head, as the
    gpt2 files on the Hub), the old causal-mask buffers attn.bias / attn.masked_bias, and a
    prefixed file that stores lm_head.weight too."""
    torch.manual_seed(0)
    theirs = _perturb(_theirs(kind))
    config = json.loads(theirs.config.to_json_string())
    state = theirs.state_dict()
    bare = {k.removeprefix("transformer."): v for k, v in state.items() if k != "lm_head.weight"}
    for i in range(2):
        bare[f"h.{i}.attn.bias"] = torch.tril(torch.ones(MAX_LEN, MAX_LEN))[None, None]
        bare[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    with_head = {**state, "lm_head.weight": state["lm_head.weight"].clone()}
    for name, tensors in (("bare", bare), ("with_head", with_head)):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(config))
        torch.save(tensors, directory / "pytorch_model.bin")
        assert any(k.startswith("transformer.") for k in tensors) == (name == "with_head")
        _assert_same(cv.load_pretrained(directory, dtype=torch.float64), theirs, *_batch())


def test_load_pretrained_needs_no_transformers(tmp_path, monkeypatch):
    """The L3 rule, run: load_pretrained and save_pretrained work without transformers."""
    torch.manual_seed(0)
    directory = cv.save_pretrained(gp.GPT(_config()), tmp_path / "ours")
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    with pytest.raises(ImportError):
        cv.to_hf(gp.GPT(_config()))
    assert isinstance(cv.load_pretrained(directory), gp.GPT)


def test_load_pretrained_errors(tmp_path):
    torch.manual_seed(0)
    theirs = _theirs("gpt2")
    config = json.loads(theirs.config.to_json_string())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cv.load_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        cv.load_pretrained(empty)
    (empty / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="no weights.*model.safetensors"):
        cv.load_pretrained(empty)
    (empty / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        cv.load_pretrained(empty)

    def variant(name, changes=None, state=None):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({**config, **(changes or {})}))
        torch.save({**theirs.state_dict(), **(state or {})}, directory / "pytorch_model.bin")
        return directory

    with pytest.raises(ValueError, match="not GPT's: transformer.h.0.attn.rotary.weight"):
        cv.load_pretrained(variant("unknown", state={
            "transformer.h.0.attn.rotary.weight": torch.zeros(2)}))
    with pytest.raises(ValueError, match=r"shapes disagree.*wte.weight \(53, 16\) "
                                         r"\(expected \(54, 16\) here\)"):
        cv.load_pretrained(variant("shape", changes={"vocab_size": 54}))
    with pytest.raises(ValueError, match="lm_head.weight differs from the token embeddings"):
        cv.load_pretrained(variant("untied", state={"lm_head.weight": torch.zeros(53, 16)}))
    with pytest.raises(ValueError, match="no place in this model: transformer.ln_f.weight"):
        cv.load_pretrained(variant("gpt1_config_gpt2_file", changes={
            "model_type": "openai-gpt", "afn": "gelu"}))
    directory = variant("partial")
    torch.save({k: v for k, v in theirs.state_dict().items() if "h.1.mlp" not in k},
               directory / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"weights missing: layers.1.ffn.up.weight"):
        cv.load_pretrained(directory)
    for field, value in [("model_type", "llama"), ("activation_function", "relu"),
                         ("scale_attn_by_inverse_layer_idx", True),
                         ("reorder_and_upcast_attn", True), ("tie_word_embeddings", False),
                         ("embd_pdrop", 0.3)]:
        with pytest.raises(ValueError, match=rf"{field}={value!r}"):
            cv.load_pretrained(variant(f"config_{field}", changes={field: value}))


def test_conversion_errors():
    with pytest.raises(TypeError, match="from_hf: expected transformers' GPT2LMHeadModel"):
        cv.from_hf(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="to_hf: expected a GPT"):
        cv.to_hf(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="save_pretrained: expected a GPT"):
        cv.save_pretrained(nn.Linear(2, 2), "/nonexistent")
    with pytest.raises(ValueError, match="reorder_and_upcast_attn=True is not supported"):
        cv.from_hf(_theirs("gpt2", reorder_and_upcast_attn=True))
    with pytest.raises(ValueError, match="afn='relu' is not supported"):
        cv.from_hf(_theirs("gpt1", afn="relu"))
    with pytest.raises(ValueError, match="OpenAIGPT .post-LN. has only the tanh GELU"):
        cv.to_hf(gp.GPT(_config("gpt1", activation="gelu")))


# --------------------------------------------------------------------------------------
# Generation: the key/value cache, greedy decoding, sampling
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", gp.ATTN_IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_cache_gives_the_logits_of_recomputing(kind, attn):
    """Chunks of 4, 1, 3 and 1 tokens through one KVCache == the whole sequence at once,
    with left padding (the mask given per chunk, or whole as transformers passes it)."""
    torch.manual_seed(0)
    model = _perturb(gp.GPT(_config(kind, attn_implementation=attn)))
    ids, mask = _batch()
    expected = model(ids, mask)
    real = mask.bool()
    for whole_mask in (False, True):
        cache, pieces, start = gp.KVCache(), [], 0
        for stop in (4, 5, 8, 9):
            chunk_mask = mask[:, :stop] if whole_mask else mask[:, start:stop]
            pieces.append(model(ids[:, start:stop], chunk_mask, cache=cache))
            start = stop
            assert cache.length == stop and len(cache.keys) == 2
        assert_close(torch.cat(pieces, dim=1)[real], expected[real], FLOAT64)
    cache = gp.KVCache()  # no padding, no mask: positions continue from the cache
    full = model(ids[:1])
    pieces = [model(ids[:1, :5], cache=cache), model(ids[:1, 5:], cache=cache)]
    assert_close(torch.cat(pieces, dim=1), full, FLOAT64)


def _greedy_theirs(theirs, ids, mask, new, **kwargs):
    return theirs.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                           **{"pad_token_id": 0, **kwargs})


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generate_equals_transformers(kind):
    torch.manual_seed(0)
    theirs = _perturb(_theirs(kind))
    transformer = theirs.transformer
    positions = transformer.wpe if kind == "gpt2" else transformer.positions_embed
    with torch.no_grad():  # large position rows: a random tiny GPT otherwise repeats a token
        positions.weight.add_(torch.randn(positions.weight.shape, dtype=torch.float64,
                                          generator=torch.Generator().manual_seed(0)))
    ours = cv.from_hf(theirs)
    ids, mask = _batch(seed=4)
    one = ids[:1]
    assert torch.equal(ours.generate(one, 8), _greedy_theirs(theirs, one, None, 8))
    expected = _greedy_theirs(theirs, ids, mask, 8)  # three prompts of 9, 6, 4 tokens
    for use_cache in (True, False):
        got = ours.generate(ids, 8, attention_mask=mask, use_cache=use_cache)
        assert got.shape == (3, 17) and torch.equal(got, expected)
    # eos: a row stops at it and is filled with it; the call ends when every row stopped
    eos = int(expected[0, 10])
    assert (expected[0, 11:] != eos).any()  # without eos, row 0 goes on differently
    expected_eos = _greedy_theirs(theirs, ids, mask, 8, eos_token_id=eos, pad_token_id=eos)
    got = ours.generate(ids, 8, attention_mask=mask, eos_token_id=eos)
    assert torch.equal(got, expected_eos) and (got[0, 10:] == eos).all()


def test_generate_stops_when_every_row_has_ended():
    torch.manual_seed(0)
    model = _perturb(gp.GPT(_config()))
    ids = _batch()[0][:1]
    first = int(model.generate(ids, 1)[0, -1])
    assert model.generate(ids, 10, eos_token_id=first).shape == (1, 10)
    assert model.generate(ids, 10, eos_token_id=[VOCAB - 1, first]).shape == (1, 10)
    expected = model.generate(ids, 6)
    model.train()  # dropout 0.1 on
    assert torch.equal(model.generate(ids, 6), expected)  # generation runs in eval mode ...
    assert model.training  # ... and restores the mode
    assert torch.equal(model.generate(ids, 0), ids)
    padded = torch.cat([torch.zeros(1, 10, dtype=torch.long), ids], dim=1)  # 10 + 9 tokens
    mask = (padded != 0).long() | (torch.arange(19) >= 10)
    long_run = model.generate(padded, MAX_LEN - 9, attention_mask=mask)  # positions 0..23
    assert long_run.shape == (1, 19 + MAX_LEN - 9)
    assert torch.equal(long_run[:, 10:], model.generate(ids, MAX_LEN - 9))


def test_sampling_is_reproducible_with_a_seed():
    torch.manual_seed(0)
    model = _perturb(gp.GPT(_config()))
    ids, mask = _batch()

    def sample(seed, **kwargs):
        generator = torch.Generator().manual_seed(seed)
        return model.generate(ids, 12, attention_mask=mask, do_sample=True, generator=generator,
                              **kwargs)

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))
    assert torch.equal(sample(7, use_cache=False), sample(7))  # same logits, same draws
    low = sample(7, temperature=1e-4)  # temperature -> 0: greedy
    assert torch.equal(low, model.generate(ids, 12, attention_mask=mask))
    assert torch.equal(sample(7, top_k=1), low)
    assert torch.equal(sample(7, top_p=1e-6), low)  # the nucleus holds the top token only


def test_sample_next_equals_transformers_warpers_and_multinomial():
    """temperature, then top-k, then top-p, then one multinomial draw: token for token."""
    torch.manual_seed(0)
    logits = torch.randn(64, VOCAB, dtype=torch.float64) * 3
    for temperature, top_k, top_p in [(1.0, None, None), (0.7, 10, None), (1.5, None, 0.8),
                                      (0.9, 20, 0.6), (1.0, 5, 0.99)]:
        scores = transformers.TemperatureLogitsWarper(temperature)(None, logits)
        if top_k is not None:
            scores = transformers.TopKLogitsWarper(top_k)(None, scores)
        if top_p is not None:
            scores = transformers.TopPLogitsWarper(top_p)(None, scores)
        expected = torch.multinomial(scores.softmax(-1), 1,
                                     generator=torch.Generator().manual_seed(3))[:, 0]
        ours = gp.sample_next(logits, temperature, top_k, top_p,
                              generator=torch.Generator().manual_seed(3))
        assert torch.equal(ours, expected), (temperature, top_k, top_p)
        ours_kept = gp.filter_logits(logits / temperature, top_k, top_p) > float("-inf")
        assert torch.equal(ours_kept, scores > float("-inf"))


def test_top_k_and_top_p_keep_exactly_the_right_tokens():
    # probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 in a shuffled order
    probs = torch.tensor([0.0625, 0.25, 0.5, 0.0625, 0.125], dtype=torch.float64)
    logits = probs.log()[None]
    kept = {}
    for top_p in (0.3, 0.6, 0.8, 0.9, 0.95, 1.0):
        kept[top_p] = set(torch.nonzero(gp.filter_logits(logits, top_p=top_p)[0] > -math.inf)
                          .flatten().tolist())
    # the smallest set of most probable tokens whose mass reaches top_p: 0.5 >= 0.3,
    # 0.75 >= 0.6, 0.875 >= 0.8, 0.9375 >= 0.9 (ONE of the two tied at 0.0625), 1 >= 0.95
    tied = kept.pop(0.9)
    assert len(tied) == 4 and {1, 2, 4} < tied
    assert kept == {0.3: {2}, 0.6: {1, 2}, 0.8: {1, 2, 4}, 0.95: {0, 1, 2, 3, 4},
                    1.0: {0, 1, 2, 3, 4}}
    for top_k, expected in [(1, {2}), (2, {1, 2}), (3, {1, 2, 4}), (4, {0, 1, 2, 3, 4}),
                            (9, {0, 1, 2, 3, 4})]:  # k = 4: both tied at 0.0625 stay
        filtered = gp.filter_logits(logits, top_k=top_k)[0]
        assert set(torch.nonzero(filtered > -math.inf).flatten().tolist()) == expected, top_k
        assert torch.equal(filtered[filtered > -math.inf], logits[0][filtered > -math.inf])
    # temperature: softmax(logits / T); T = 0.5 squares and renormalises the probabilities
    draws = torch.stack([gp.sample_next(logits.expand(4000, 5), 0.5,
                                        generator=torch.Generator().manual_seed(0))])
    frequencies = torch.bincount(draws.flatten(), minlength=5) / 4000
    squared = probs ** 2 / (probs ** 2).sum()
    assert (frequencies - squared).abs().max() < 0.03


# --------------------------------------------------------------------------------------
# Training: loss, optimizer, schedule, initialisation
# --------------------------------------------------------------------------------------


def test_lm_loss_is_the_mean_next_token_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    targets = torch.tensor([[1, 4, 0], [2, gp.IGNORE_INDEX, 3]])
    log_probs = logits.log_softmax(-1)
    expected = -(log_probs[0, 0, 1] + log_probs[0, 1, 4] + log_probs[0, 2, 0]
                 + log_probs[1, 0, 2] + log_probs[1, 2, 3]) / 5
    assert_close(gp.lm_loss(logits, targets), expected, FLOAT64)
    uniform = gp.lm_loss(torch.zeros(1, 4, 7), torch.tensor([[1, 2, 3, 4]]))
    assert abs(uniform.item() - math.log(7)) < 1e-6  # an untrained model: log V


def test_make_optimizer_decays_matrices_only():
    model = gp.GPT(_config())
    optimizer = gp.make_optimizer(model, lr=3e-4)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.95) and decay["lr"] == 3e-4
    names = {id(p): n for n, p in model.named_parameters()}  # the tied matrix appears once
    assert sorted(names[id(p)] for p in decay["params"]) == sorted(
        n for n, p in model.named_parameters() if p.dim() == 2)
    assert all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert "embeddings.word.weight" in [names[id(p)] for p in decay["params"]]


def test_cosine_lr_warms_up_then_decays_to_min_lr():
    def lr(step):
        return gp.cosine_lr(step, peak_lr=1e-3, warmup=10, total=110, min_lr=1e-4)

    assert lr(0) == pytest.approx(1e-3 / 11) and lr(9) == pytest.approx(1e-3 * 10 / 11)
    assert all(lr(s) < lr(s + 1) for s in range(9))
    assert lr(10) == pytest.approx(1e-3)
    assert lr(60) == pytest.approx(1e-4 + 0.9e-3 / 2)  # half-way: the mean of peak and min
    assert all(lr(s) > lr(s + 1) for s in range(10, 109))
    assert lr(110) == lr(500) == 1e-4


def test_initialisation_of_gpt2_and_gpt1():
    torch.manual_seed(0)
    n_layers = 6
    for kind in KINDS:
        model = gp.GPT(_config(kind, d_model=128, n_heads=4, n_layers=n_layers, vocab_size=500))
        residual_std = 0.02 / math.sqrt(2 * n_layers) if kind == "gpt2" else 0.02
        for name, module in model.named_modules():
            if isinstance(module, nn.LayerNorm):
                assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
            elif isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(("attention.out", "ffn.down")) else 0.02
                assert abs(module.weight.std().item() / std - 1) < 0.05, (name, std)
                assert abs(module.weight.mean().item()) < 0.1 * std, name
                bias = getattr(module, "bias", None)
                assert bias is None or torch.all(bias == 0), name
        assert (model.final_norm is None) == (kind == "gpt1")


# --------------------------------------------------------------------------------------
# Inputs, state dict, determinism, training
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    torch.manual_seed(0)
    model = gp.GPT(_config())
    ids = torch.randint(1, VOCAB, (2, 5))
    bad_calls = [
        ((ids.double(),), {}, "input_ids: expected an int64 tensor"),
        ((ids[0],), {}, r"input_ids: expected an int64 tensor of token ids \(B, T\)"),
        ((torch.zeros(2, 0, dtype=torch.long),), {}, "T >= 1"),
        ((torch.ones(2, MAX_LEN + 1, dtype=torch.long),), {}, "max_len=24"),
        ((ids + VOCAB,), {}, r"token ids must lie in 0..52"),
        ((ids, torch.full_like(ids, 2)), {}, "attention_mask: expected 1 .* or 0"),
        ((ids, torch.ones(2, 4)), {}, r"attention_mask: expected 1 .* of shape \(B, T\)"),
        ((ids,), {"position_ids": torch.full((1, 5), MAX_LEN)}, "reach position 24"),
    ]
    for args, kwargs, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            model(*args, **kwargs)
    cache = gp.KVCache()
    model(torch.ones(1, 20, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="20 cached \\+ 5 new tokens reach position 24"):
        model(torch.ones(1, 5, dtype=torch.long), cache=cache)
    bad_generate = [({"max_new_tokens": -1}, "max_new_tokens: expected an int >= 0"),
                    ({"temperature": 0.0}, "temperature: expected > 0"),
                    ({"top_k": 0}, "top_k: expected an int >= 1"),
                    ({"top_p": 0.0}, r"top_p: expected a probability in \(0, 1\]"),
                    ({"top_p": 1.5}, r"top_p: expected a probability in \(0, 1\]"),
                    ({"max_new_tokens": 20}, r"longest prompt \(5 tokens\) \+ max_new_tokens "
                                             r"\(20\) exceeds max_len=24"),
                    ({"attention_mask": torch.ones(2, 4)}, r"attention_mask: .*\(2, 5\)")]
    for kwargs, message in bad_generate:
        with pytest.raises(ValueError, match=message):
            model.generate(ids, **{"max_new_tokens": 3, **kwargs})
    model(ids, torch.ones(2, 5, dtype=torch.bool))  # bool and float masks are fine
    model(ids.int(), torch.ones(2, 5))
    for field, value, message in [("n_heads", 3, "multiple of n_heads"),
                                  ("n_layers", 0, "positive ints"),
                                  ("attn_implementation", "flash", "attn_implementation must"),
                                  ("norm_position", "middle", "norm_position must"),
                                  ("activation", "relu", "activation must")]:
        with pytest.raises(ValueError, match=message):
            _config(**{field: value})


def test_presets_and_the_lm_head_is_tied():
    nano = gp.GPTConfig.nano()
    assert (nano.n_layers, nano.n_heads, nano.d_model, nano.max_len, nano.dropout) == \
        (4, 4, 128, 64, 0.0)
    assert gp.GPTConfig.nano(vocab_size=40).vocab_size == 40 and nano.d_ff == 512
    assert gp.GPTConfig.gpt1().activation == "gelu_tanh"  # GPT-1's code: the tanh GELU
    model = gp.GPT(_config()).double().eval()  # .to() keeps the tie
    assert model.lm_head.weight is model.embeddings.word.weight
    ids = _batch()[0]
    hidden = model.embeddings(ids, torch.arange(9)[None])
    for layer in model.layers:
        hidden = layer(hidden, gp.causal_mask(9))
    expected = model.final_norm(hidden) @ model.embeddings.word.weight.T
    assert_close(model(ids), expected, FLOAT64)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    model = _perturb(gp.GPT(_config()))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    loaded = gp.GPT(_config()).double().eval()
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    assert loaded.lm_head.weight is loaded.embeddings.word.weight
    ids, mask = _batch()
    assert torch.equal(loaded(ids, mask), model(ids, mask))


def test_manual_seed_determinism_and_dropout_in_train_mode():
    ids, mask = _batch()

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return gp.GPT(_config()).train()(ids, mask)  # dropout 0.1 on

    assert torch.equal(run(0), run(0))
    torch.manual_seed(0)
    model = gp.GPT(_config())
    assert not torch.allclose(model(ids), model(ids))  # dropout on in train mode ...
    model.eval()
    assert torch.equal(model(ids), model(ids))  # ... off in eval mode


@pytest.mark.parametrize("kind", KINDS)
def test_overfits_one_small_batch(kind):
    torch.manual_seed(0)
    model = gp.GPT(_config(kind, dropout=0.0, attn_dropout=0.0, d_model=32, n_heads=4))
    generator = torch.Generator().manual_seed(5)
    text = torch.randint(0, VOCAB, (4, 13), generator=generator)
    inputs, targets = text[:, :-1], text[:, 1:]  # next-token pairs
    optimizer = gp.make_optimizer(model, lr=1e-2, weight_decay=0.0)
    first = gp.lm_loss(model(inputs), targets).item()
    for _ in range(80):
        optimizer.zero_grad()
        loss = gp.lm_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
    assert abs(first - math.log(VOCAB)) < 0.1  # starts at chance
    assert loss.item() < 0.05, (first, loss.item())
    assert torch.equal(model(inputs).argmax(-1), targets)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)
