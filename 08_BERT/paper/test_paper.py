"""Tests of lesson 08, Level 3: BERT in torch.nn (bert_paper.py) and its porting (convert.py).

- parameter counts: equal to transformers' for the same configs (every class, tiny and the
  paper's sizes), BertModel base with vocabulary 30,522 = 109,482,240 and large =
  335,141,888 (REFERENCES.md), the formula written out here, and the paper's 110M / 340M
- from_hf / to_hf for BertModel (with and without pooler), BertForPreTraining,
  BertForMaskedLM and BertForSequenceClassification, both directions, transformers'
  "eager" and "sdpa" attention: every hidden state, pooled output, logits and loss, and
  every gradient, float64 to 1e-10, with padding and two segments, on perturbed weights
  (no LayerNorm left at 1 and 0, no bias at 0)
- our two attention paths (Equation 1 step by step, F.scaled_dot_product_attention) agree;
  padding keys get weight exactly 0 and padded positions do not change real ones
- load_pretrained on directories written by save_pretrained (model.safetensors,
  pytorch_model.bin, sharded), old names (gamma/beta, no "bert." prefix, position_ids,
  a tied decoder.weight), heads absent (an error, or new_heads=True: fresh and a warning),
  heads unused, and clear errors (no directory, no config, no weights, unknown names,
  shapes, an untied decoder, an unsupported config); it runs without transformers
- the losses (masked positions only, 0 not NaN when none), the tied decoder, the paper's
  initialisation, bad inputs, the state-dict round trip, torch.manual_seed determinism,
  overfitting one small batch, and level purity

Run: .venv/bin/python -m pytest 08_BERT/paper/test_paper.py -q
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn

from utils import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity

bp = import_lesson("08_BERT.paper.bert_paper")
cv = import_lesson("08_BERT.paper.convert")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one CPU thread


KINDS = ("model", "pretraining", "masked_lm", "classification")
OURS = {"model": bp.BertModel, "pretraining": bp.BertForPreTraining,
        "masked_lm": bp.BertForMaskedLM, "classification": bp.BertForSequenceClassification}
THEIRS = {"model": transformers.BertModel, "pretraining": transformers.BertForPreTraining,
          "masked_lm": transformers.BertForMaskedLM,
          "classification": transformers.BertForSequenceClassification}
NUM_CLASSES = 3


def _config(**overrides) -> bp.BertConfig:
    sizes = {"vocab_size": 61, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 24,
             "max_len": 12}
    return bp.BertConfig(**{**sizes, **overrides})


def _ours(kind: str, cfg: bp.BertConfig | None = None) -> nn.Module:
    cfg = cfg or _config()
    if kind == "classification":
        return bp.BertForSequenceClassification(cfg, NUM_CLASSES)
    return OURS[kind](cfg)


def _theirs(kind: str, attn: str = "eager", **overrides):
    sizes = {"vocab_size": 61, "hidden_size": 16, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 12,
             "num_labels": NUM_CLASSES, "attn_implementation": attn}
    return THEIRS[kind](transformers.BertConfig(**{**sizes, **overrides}))


def _perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter moved off its initial value (LayerNorm 1/0 and zero biases can hide a
    swapped or missing weight), float64, eval mode."""
    generator = torch.Generator().manual_seed(seed)
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


def _batch(seed: int = 1, batch: int = 3, length: int = 9, vocab: int = 61) -> dict:
    """Padding (rows 1 and 2 end early), two segments, MLM and NSP and class labels."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 4:] = 0
    input_ids[attention_mask == 0] = 0  # [PAD]
    token_type_ids = torch.zeros(batch, length, dtype=torch.long)
    token_type_ids[0, 5:], token_type_ids[1, 3:6], token_type_ids[2, 2:4] = 1, 1, 1
    labels = torch.full((batch, length), bp.IGNORE_INDEX)
    labels[0, 1], labels[0, 7], labels[1, 2], labels[2, 3] = 7, 9, 11, 13
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": attention_mask, "labels": labels,
            "next_sentence_label": torch.tensor([0, 1, 1]),
            "class_label": torch.tensor([2, 0, 1])}


def _run_ours(kind: str, model: nn.Module, b: dict) -> tuple[dict, torch.Tensor]:
    """Our outputs (by name) and a scalar loss that reaches every parameter."""
    inputs = (b["input_ids"], b["token_type_ids"], b["attention_mask"])
    if kind == "model":
        out = model(*inputs, output_hidden_states=True)
        outputs = {f"hidden_{i}": h for i, h in enumerate(out.all_hidden_states)}
        outputs.update(last=out.hidden_states, pooled=out.pooled)
        return outputs, _model_loss(out.hidden_states, out.pooled)
    if kind == "pretraining":
        mlm, nsp = model(*inputs)
        return {"mlm_logits": mlm, "nsp_logits": nsp}, bp.pretraining_loss(
            mlm, nsp, b["labels"], b["next_sentence_label"])
    if kind == "masked_lm":
        mlm = model(*inputs)
        return {"mlm_logits": mlm}, bp.masked_lm_loss(mlm, b["labels"])
    logits = model(*inputs)
    return {"logits": logits}, F.cross_entropy(logits, b["class_label"])


def _run_theirs(kind: str, model, b: dict) -> tuple[dict, torch.Tensor]:
    """transformers' outputs under our names, and its own loss (ours for BertModel)."""
    inputs = {k: b[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    if kind == "model":
        out = model(**inputs, output_hidden_states=True)
        outputs = {f"hidden_{i}": h for i, h in enumerate(out.hidden_states)}
        outputs.update(last=out.last_hidden_state, pooled=out.pooler_output)
        return outputs, _model_loss(out.last_hidden_state, out.pooler_output)
    if kind == "pretraining":
        out = model(**inputs, labels=b["labels"], next_sentence_label=b["next_sentence_label"])
        return {"mlm_logits": out.prediction_logits,
                "nsp_logits": out.seq_relationship_logits}, out.loss
    if kind == "masked_lm":
        out = model(**inputs, labels=b["labels"])
        return {"mlm_logits": out.logits}, out.loss
    out = model(**inputs, labels=b["class_label"])
    return {"logits": out.logits}, out.loss


def _model_loss(hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
    weights = torch.linspace(-1, 1, hidden[0].numel(), dtype=hidden.dtype).view(hidden[0].shape)
    loss = (hidden * weights).sum()  # every position, padding included: both compute them
    return loss if pooled is None else loss + (pooled * weights[0]).sum()


def _assert_same(kind: str, ours: nn.Module, theirs, b: dict) -> None:
    """Equal outputs, loss and gradient of every parameter, float64 to 1e-10."""
    ours.zero_grad()
    theirs.zero_grad()
    our_out, our_loss = _run_ours(kind, ours, b)
    their_out, their_loss = _run_theirs(kind, theirs, b)
    assert our_out.keys() == their_out.keys()
    for name in our_out:
        if our_out[name] is None:
            assert their_out[name] is None, name
            continue
        assert_close(our_out[name], their_out[name], FLOAT64, name=name)
    assert_close(our_loss, their_loss, FLOAT64, name="loss")
    our_loss.backward()
    their_loss.backward()
    our_params = dict(cv._task_layout(ours, keep_vars=True))
    their_params = dict(theirs.named_parameters())
    assert len(their_params) == len(list(ours.parameters()))  # each tied matrix counted once
    for key, param in their_params.items():
        ours_param = our_params[cv.our_name(key)]
        assert ours_param.grad is not None and param.grad.abs().sum() > 0, key
        assert_close(ours_param.grad, param.grad, FLOAT64, name=f"d loss / d {key}")


# --------------------------------------------------------------------------------------
# Parameter counts (Section 3, REFERENCES.md)
# --------------------------------------------------------------------------------------


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied matrix counts once


def _formula(vocab: int, d: int, n_layers: int, d_ff: int, max_len: int = 512) -> int:
    """BertModel with its pooler, counted by hand."""
    embeddings = (vocab + max_len + 2) * d + 2 * d  # word, position, segment; LayerNorm
    attention = 4 * (d * d + d)  # W_q, W_k, W_v, W_o and biases
    ffn = (d * d_ff + d_ff) + (d_ff * d + d)
    layer = attention + ffn + 2 * 2 * d  # two LayerNorms
    pooler = d * d + d
    return embeddings + n_layers * layer + pooler


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_counts_equal_transformers_on_tiny_configs(kind):
    assert _count(_ours(kind)) == _count(_theirs(kind)) > 0


@pytest.mark.parametrize("size, expected, paper", [("base", 109_482_240, 110e6),
                                                   ("large", 335_141_888, 340e6)])
def test_parameter_counts_of_the_paper_sizes(size, expected, paper, monkeypatch):
    cfg = getattr(bp.BertConfig, size)()
    d = cfg.d_model
    assert (cfg.n_layers, d, cfg.n_heads, cfg.d_ff, cfg.vocab_size) == \
        ((12, 768, 12, 3072, 30522) if size == "base" else (24, 1024, 16, 4096, 30522))
    assert _formula(30522, d, cfg.n_layers, 4 * d) == expected
    # normal_ on the meta device imports torch's reference ops (seconds); shapes need no values
    monkeypatch.setattr(nn.init, "normal_", lambda tensor, *args, **kwargs: tensor)
    mlm_head = d * d + d + 2 * d + 30522  # dense, LayerNorm, output bias (decoder tied)
    expected_by_kind = {"model": expected, "masked_lm": expected - (d * d + d) + mlm_head,
                        "pretraining": expected + mlm_head + 2 * d + 2,
                        "classification": expected + NUM_CLASSES * d + NUM_CLASSES}
    hf_config = cv.config_to_hf(cfg, num_labels=NUM_CLASSES)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        for kind, count in expected_by_kind.items():
            ours = (bp.BertForSequenceClassification(cfg, NUM_CLASSES)
                    if kind == "classification" else OURS[kind](cfg))
            assert _count(ours) == count == _count(THEIRS[kind](hf_config)), kind
    assert abs(expected - paper) / paper < 0.015  # the paper's 110M and 340M, rounded
    if size == "base":  # REFERENCES.md: transformers' BertForMaskedLM, counted there
        assert expected_by_kind["masked_lm"] == 109_514_298


def test_small_presets_are_google_research_sizes():
    for name, (layers, d) in {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512),
                              "medium": (8, 512)}.items():
        cfg = getattr(bp.BertConfig, name)(vocab_size=100)
        assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_ff) == (layers, d, d // 64, 4 * d)
        assert cfg.vocab_size == 100 and bp.BertConfig.base(dropout=0.0).dropout == 0.0


# --------------------------------------------------------------------------------------
# from_hf / to_hf: same outputs, same loss, same gradients (float64, 1e-10)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_from_hf_equals_transformers(kind, attn):
    torch.manual_seed(0)
    theirs = _perturb(_theirs(kind, attn))
    ours = cv.from_hf(theirs)
    assert type(ours) is OURS[kind] and not ours.training
    assert ours.config.attn_implementation == attn
    _assert_same(kind, ours, theirs, _batch())


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_to_hf_equals_ours(kind, attn):
    torch.manual_seed(0)
    ours = _perturb(_ours(kind))
    theirs = cv.to_hf(ours, attn_implementation=attn)
    assert type(theirs) is THEIRS[kind] and theirs.config._attn_implementation == attn
    assert not theirs.training and next(theirs.parameters()).dtype == torch.float64
    _assert_same(kind, ours, theirs, _batch(seed=2))


def test_bert_model_without_pooler_ports_both_ways():
    torch.manual_seed(0)
    theirs = _perturb(transformers.BertModel(_theirs("model").config, add_pooling_layer=False))
    ours = cv.from_hf(theirs)
    assert ours.pooler is None
    _assert_same("model", ours, theirs, _batch())
    back = cv.to_hf(ours)
    assert back.pooler is None
    _assert_same("model", ours, back.double(), _batch(seed=3))


def test_ported_models_are_tied_and_keep_the_mode():
    torch.manual_seed(0)
    theirs = _theirs("pretraining").train()
    ours = cv.from_hf(theirs)
    assert ours.training and ours.mlm_head.decoder.weight is ours.bert.embeddings.word.weight
    back = cv.to_hf(ours)
    assert back.training
    assert back.cls.predictions.decoder.weight is back.bert.embeddings.word_embeddings.weight
    config = cv.config_from_hf(theirs.config)
    assert cv.config_from_hf(cv.config_to_hf(config)) == config
    assert cv.config_from_hf(json.loads(theirs.config.to_json_string())) == config


# --------------------------------------------------------------------------------------
# Attention: Equation 1 written out and the fused kernel; the padding mask
# --------------------------------------------------------------------------------------


def test_sdpa_equals_equation_1_step_by_step():
    torch.manual_seed(0)
    eager = _perturb(_ours("pretraining"))
    fused = _ours("pretraining", _config(attn_implementation="sdpa")).double().eval()
    fused.load_state_dict(eager.state_dict())
    b = _batch()
    assert fused.bert.layers[0].attention.implementation == "sdpa"
    outputs = []
    for model in (eager, fused):
        mlm, nsp = model(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        bp.pretraining_loss(mlm, nsp, b["labels"], b["next_sentence_label"]).backward()
        outputs.append((mlm, nsp, [p.grad for p in model.parameters()]))
    (mlm_e, nsp_e, grads_e), (mlm_f, nsp_f, grads_f) = outputs
    assert_close(mlm_f, mlm_e, FLOAT64, name="mlm_logits")
    assert_close(nsp_f, nsp_e, FLOAT64, name="nsp_logits")
    for g_f, g_e in zip(grads_f, grads_e):
        assert_close(g_f, g_e, FLOAT64, name="gradient")


def test_padding_keys_get_zero_weight_and_do_not_change_real_tokens():
    torch.manual_seed(0)
    model = _perturb(_ours("model"))
    b = _batch()
    out = model(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                output_attentions=True)
    pad = b["attention_mask"] == 0  # (B, T)
    for weights in out.attentions:  # (B, A, T, T)
        assert torch.all(weights[pad[:, None, None, :].expand_as(weights)] == 0)
        assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)), FLOAT64)
    other_ids, other_types = b["input_ids"].clone(), b["token_type_ids"].clone()
    other_ids[pad], other_types[pad] = 17, 1  # whatever sits in the padding
    again = model(other_ids, other_types, b["attention_mask"])
    real = ~pad
    assert_close(again.hidden_states[real], out.hidden_states[real], FLOAT64)
    assert not torch.allclose(again.hidden_states[pad], out.hidden_states[pad])


# --------------------------------------------------------------------------------------
# Checkpoint directories: load_pretrained
# --------------------------------------------------------------------------------------


def _write(tmp_path: Path, model, name: str, weights: str = "safetensors", **save) -> Path:
    """transformers' save_pretrained; "bin": then its state dict as pytorch_model.bin
    (transformers 5 writes safetensors only; older versions wrote this torch.save file)."""
    directory = tmp_path / name
    model.save_pretrained(directory, **save)
    if weights == "bin":
        (directory / "model.safetensors").unlink()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return directory


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
@pytest.mark.parametrize("kind", KINDS)
def test_load_pretrained_equals_transformers(kind, weights, tmp_path):
    torch.manual_seed(0)
    theirs = _perturb(_theirs(kind))
    directory = _write(tmp_path, theirs, kind, weights)
    ours = cv.load_pretrained(directory, OURS[kind], dtype=torch.float64)
    assert type(ours) is OURS[kind] and not ours.training
    if kind == "classification":
        assert ours.num_classes == NUM_CLASSES
    _assert_same(kind, ours, theirs, _batch())


def test_load_pretrained_sharded_checkpoint(tmp_path):
    torch.manual_seed(0)
    theirs = _perturb(_theirs("pretraining"))
    directory = _write(tmp_path, theirs, "sharded", max_shard_size="20KB")
    assert (directory / "model.safetensors.index.json").is_file()
    _assert_same("pretraining", cv.load_pretrained(directory, bp.BertForPreTraining,
                                                   dtype=torch.float64), theirs, _batch())


def test_load_pretrained_old_names(tmp_path):
    """The names of TensorFlow-era files: LayerNorm gamma/beta, position_ids buffers, the
    tied decoder weight and bias saved too; with the "bert." prefix (a pre-training file)
    and without it (a BertModel file), and the old config fields."""
    torch.manual_seed(0)
    theirs = _perturb(_theirs("pretraining"))
    old = {}
    for key, value in theirs.state_dict().items():
        old[key.replace("LayerNorm.weight", "LayerNorm.gamma")
               .replace("LayerNorm.bias", "LayerNorm.beta")] = value
    old["bert.embeddings.position_ids"] = torch.arange(12)[None]
    assert "cls.predictions.decoder.weight" in old and "cls.predictions.decoder.bias" in old
    config = {**json.loads(theirs.config.to_json_string()), "position_embedding_type": "absolute",
              "gradient_checkpointing": False, "architectures": ["BertForMaskedLM"]}
    for name, state, kind, model in [
            ("prefixed", old, "pretraining", theirs),
            ("bare", {k.removeprefix("bert."): v for k, v in old.items()
                      if k.startswith("bert.")}, "model", theirs.bert)]:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(config))
        torch.save(state, directory / "pytorch_model.bin")
        assert any(k.endswith("LayerNorm.gamma") for k in state)
        assert any(k.startswith("bert.") for k in state) == (name == "prefixed")
        ours = cv.load_pretrained(directory, OURS[kind], dtype=torch.float64)
        _assert_same(kind, ours, model, _batch())


def test_load_pretrained_heads_absent_or_unused(tmp_path):
    torch.manual_seed(0)
    encoder_only = _perturb(_theirs("model"))
    directory = _write(tmp_path, encoder_only, "encoder")
    # heads absent: a clear error ...
    with pytest.raises(ValueError, match=r"no weights for mlm_head, nsp_head.*new_heads=True"):
        cv.load_pretrained(directory, bp.BertForPreTraining)
    # ... or, asked for, fresh heads (our initialisation) and a warning
    with pytest.warns(UserWarning, match="mlm_head, nsp_head not in .*freshly initialised"):
        ours = cv.load_pretrained(directory, bp.BertForPreTraining, new_heads=True,
                                  dtype=torch.float64)
    _assert_same("model", ours.bert, encoder_only, _batch())
    assert torch.all(ours.mlm_head.bias == 0) and torch.all(ours.nsp_head.bias == 0)
    assert torch.all(ours.mlm_head.norm.weight == 1)
    assert ours.mlm_head.decoder.weight is ours.bert.embeddings.word.weight  # the file's
    # a pre-training file into BertModel, BertForMaskedLM and a new classifier: heads that
    # the model lacks are left out; the pooler comes from the file
    pretraining = _perturb(_theirs("pretraining"), seed=5)
    directory = _write(tmp_path, pretraining, "pretraining")
    encoder = cv.load_pretrained(directory, bp.BertModel, dtype=torch.float64)
    _assert_same("model", encoder, pretraining.bert, _batch())
    masked_lm = cv.load_pretrained(directory, bp.BertForMaskedLM, dtype=torch.float64)
    mlm_ours = masked_lm(*(_batch()[k] for k in ("input_ids", "token_type_ids",
                                                 "attention_mask")))
    their_outputs, _ = _run_theirs("pretraining", pretraining, _batch())
    assert_close(mlm_ours, their_outputs["mlm_logits"], FLOAT64)
    with pytest.raises(ValueError, match="classifier"):
        cv.load_pretrained(directory, bp.BertForSequenceClassification)
    with pytest.warns(UserWarning, match="classifier"):
        classifier = cv.load_pretrained(directory, bp.BertForSequenceClassification,
                                        num_classes=5, new_heads=True, dtype=torch.float64)
    assert classifier.classifier.out_features == 5
    assert_close(classifier.bert.pooler.dense.weight, pretraining.bert.pooler.dense.weight,
                 FLOAT64)


def test_load_pretrained_needs_no_transformers(tmp_path, monkeypatch):
    """The L3 rule, run: load_pretrained works with transformers unimportable."""
    torch.manual_seed(0)
    directory = _write(tmp_path, _theirs("masked_lm"), "masked_lm")
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    with pytest.raises(ImportError):
        cv.to_hf(_ours("model"))
    model = cv.load_pretrained(directory, bp.BertForMaskedLM)
    assert isinstance(model, bp.BertForMaskedLM)


def test_load_pretrained_errors(tmp_path):
    torch.manual_seed(0)
    theirs = _theirs("pretraining")
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
    with pytest.raises(TypeError, match="model_class"):
        cv.load_pretrained(empty, nn.Linear)

    def variant(name, changes=None, state=None):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({**config, **(changes or {})}))
        torch.save({**theirs.state_dict(), **(state or {})}, directory / "pytorch_model.bin")
        return directory

    with pytest.raises(ValueError, match="not BERT's: bert.encoder.layer.0.rotary.weight"):
        cv.load_pretrained(variant("unknown", state={
            "bert.encoder.layer.0.rotary.weight": torch.zeros(2)}), bp.BertForPreTraining)
    with pytest.raises(ValueError, match=r"shapes disagree.*word_embeddings.weight \(61, 16\) "
                                         r"\(expected \(62, 16\)\)"):
        cv.load_pretrained(variant("shape", changes={"vocab_size": 62}), bp.BertModel)
    with pytest.raises(ValueError, match="decoder.weight differs from the word embeddings"):
        cv.load_pretrained(variant("untied", state={
            "cls.predictions.decoder.weight": torch.zeros(61, 16)}), bp.BertForPreTraining)
    partial = {k: v for k, v in theirs.state_dict().items() if "layer.1.output" not in k}
    directory = variant("partial")
    torch.save(partial, directory / "pytorch_model.bin")
    with pytest.raises(ValueError, match="encoder weights are missing: bert.layers.1.ffn.down"):
        cv.load_pretrained(directory, bp.BertForPreTraining, new_heads=True)
    for field, value in [("hidden_act", "relu"), ("position_embedding_type", "relative_key"),
                         ("is_decoder", True), ("model_type", "roberta")]:
        with pytest.raises(ValueError, match=f"{field}={value!r} is not supported"):
            cv.load_pretrained(variant(f"config_{field}", changes={field: value}))


def test_conversion_errors():
    with pytest.raises(TypeError, match="from_hf: expected transformers' BertModel"):
        cv.from_hf(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="to_hf: expected one of"):
        cv.to_hf(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hidden_act='relu' is not supported"):
        cv.from_hf(_theirs("model", hidden_act="relu"))
    untied = _theirs("masked_lm", tie_word_embeddings=False)
    with pytest.raises(ValueError, match="tie_word_embeddings=False"):
        cv.from_hf(untied)


# --------------------------------------------------------------------------------------
# The model itself: losses, tying, initialisation, inputs, checkpoints, training
# --------------------------------------------------------------------------------------


def test_losses_count_masked_positions_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7, dtype=torch.float64)
    labels = torch.full((2, 4), bp.IGNORE_INDEX)
    labels[0, 1], labels[1, 3] = 3, 5
    log_probs = logits.log_softmax(-1)
    expected = -(log_probs[0, 1, 3] + log_probs[1, 3, 5]) / 2
    assert_close(bp.masked_lm_loss(logits, labels), expected, FLOAT64)
    none_masked = bp.masked_lm_loss(logits, torch.full((2, 4), bp.IGNORE_INDEX))
    assert none_masked.item() == 0.0  # not NaN
    nsp = torch.randn(2, 2, dtype=torch.float64)
    next_label = torch.tensor([0, 1])
    expected_nsp = -(nsp.log_softmax(-1)[0, 0] + nsp.log_softmax(-1)[1, 1]) / 2
    assert_close(bp.next_sentence_loss(nsp, next_label), expected_nsp, FLOAT64)
    assert_close(bp.pretraining_loss(logits, nsp, labels, next_label), expected + expected_nsp,
                 FLOAT64)


def test_decoder_is_tied_to_the_word_embeddings():
    torch.manual_seed(0)
    for kind in ("pretraining", "masked_lm"):
        model = _ours(kind)
        assert model.mlm_head.decoder.weight is model.bert.embeddings.word.weight
        model.double().eval()  # .to() keeps the tie
        assert model.mlm_head.decoder.weight is model.bert.embeddings.word.weight
        b = _batch()
        logits = model(b["input_ids"])
        hidden = model.bert(b["input_ids"]).hidden_states
        transformed = model.mlm_head.norm(F.gelu(model.mlm_head.dense(hidden)))
        expected = transformed @ model.bert.embeddings.word.weight.T + model.mlm_head.bias
        assert_close(logits if kind == "masked_lm" else logits[0], expected, FLOAT64)


def test_initialisation_is_normal_0_02():
    torch.manual_seed(0)
    model = bp.BertForPreTraining(_config(d_model=64, n_heads=4, d_ff=256, vocab_size=400))
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
        elif isinstance(module, (nn.Linear, nn.Embedding)) and name != "mlm_head.decoder":
            weight = module.weight[1:] if name == "bert.embeddings.word" else module.weight
            if weight.numel() >= 500:  # std within 10 %
                assert abs(weight.std().item() - 0.02) < 0.002, name
            assert abs(weight.mean().item()) < 0.005, name
            assert getattr(module, "bias", None) is None or torch.all(module.bias == 0), name
    assert torch.all(model.mlm_head.bias == 0)
    assert torch.all(model.bert.embeddings.word.weight[0] == 0)  # [PAD], as transformers


def test_bad_inputs_raise_clear_errors():
    torch.manual_seed(0)
    model = _ours("model")
    ids = torch.randint(1, 61, (2, 5))
    bad_calls = [
        ((ids.double(),), {}, "input_ids: expected an int64 tensor"),
        ((ids[0],), {}, r"input_ids: expected an int64 tensor \(B, T\)"),
        ((torch.zeros(2, 0, dtype=torch.long),), {}, "1 <= T <= max_len=12"),
        ((torch.ones(2, 13, dtype=torch.long),), {}, "1 <= T <= max_len=12"),
        ((ids + 60,), {}, r"input_ids: values must lie in 0..60"),
        ((ids.clone().fill_(-1),), {}, r"input_ids: values must lie in 0..60"),
        ((ids, ids[:, :3] * 0), {}, "token_type_ids: expected an int64 tensor of shape"),
        ((ids, torch.full_like(ids, 2)), {}, r"token_type_ids: values must lie in 0..1"),
        ((ids, None, torch.ones(2, 4)), {}, r"attention_mask: expected 1 .* or 0"),
        ((ids, None, torch.full_like(ids, 2)), {}, r"attention_mask: expected 1 .* or 0"),
        ((ids, None, torch.zeros_like(ids)), {}, "at least one real token"),
    ]
    for args, kwargs, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            model(*args, **kwargs)
    model(ids, None, torch.ones(2, 5, dtype=torch.bool))  # bool and float masks are fine
    model(ids, None, torch.ones(2, 5))
    with pytest.raises(ValueError, match="multiple of n_heads"):
        _config(d_model=18, n_heads=4)
    with pytest.raises(ValueError, match="positive ints"):
        _config(n_layers=0)
    with pytest.raises(ValueError, match="attn_implementation must be one of"):
        _config(attn_implementation="flash")


def test_state_dict_round_trip():
    torch.manual_seed(0)
    model = _perturb(_ours("pretraining"))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    loaded = _ours("pretraining").double().eval()
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    assert loaded.mlm_head.decoder.weight is loaded.bert.embeddings.word.weight
    b = _batch()
    for ours, theirs in zip(loaded(b["input_ids"], b["token_type_ids"], b["attention_mask"]),
                            model(b["input_ids"], b["token_type_ids"], b["attention_mask"])):
        assert torch.equal(ours, theirs)


def test_manual_seed_determinism_and_dropout_in_train_mode():
    b = _batch()

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        model = _ours("pretraining").train()  # dropout 0.1 on
        return model(b["input_ids"], b["token_type_ids"], b["attention_mask"])[0]

    assert torch.equal(run(0), run(0))
    torch.manual_seed(0)
    model = _ours("pretraining")
    torch.manual_seed(5)
    first = model(b["input_ids"])[0]
    second = model(b["input_ids"])[0]
    assert not torch.allclose(first, second)  # dropout is on in train mode ...
    model.eval()
    assert torch.equal(model(b["input_ids"])[0], model(b["input_ids"])[0])  # ... off in eval


def test_overfits_one_small_batch():
    torch.manual_seed(0)
    cfg = _config(dropout=0.0, attn_dropout=0.0, d_model=32, n_heads=4, d_ff=64)
    b = _batch(seed=4)
    pretraining = bp.BertForPreTraining(cfg)
    classifier = bp.BertForSequenceClassification(cfg, NUM_CLASSES)
    inputs = (b["input_ids"], b["token_type_ids"], b["attention_mask"])
    for model, loss_of in [
            (pretraining, lambda out: bp.pretraining_loss(*out, b["labels"],
                                                          b["next_sentence_label"])),
            (classifier, lambda out: F.cross_entropy(out, b["class_label"]))]:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        first = loss_of(model(*inputs)).item()
        for _ in range(60):
            optimizer.zero_grad()
            loss = loss_of(model(*inputs))
            loss.backward()
            optimizer.step()
        assert loss.item() < 0.02 * first and loss.item() < 0.05, (first, loss.item())
    mlm, nsp = pretraining(*inputs)
    masked = b["labels"] != bp.IGNORE_INDEX
    assert torch.equal(mlm.argmax(-1)[masked], b["labels"][masked])
    assert torch.equal(nsp.argmax(-1), b["next_sentence_label"])
    assert torch.equal(classifier(*inputs).argmax(-1), b["class_label"])


def test_level_purity():
    assert_level_purity(Path(__file__).parent)
