"""Porting BERT weights between bert_paper.py and transformers, and loading a checkpoint.

- ``from_hf(hf_model)`` / ``to_hf(model)``: transformers' BertModel, BertForPreTraining,
  BertForMaskedLM, BertForSequenceClassification <-> ours, same weights, same outputs.
- ``load_pretrained(directory, BertForMaskedLM)``: a directory in transformers' layout
  (``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``, as a user has after
  one download of e.g. bert-base-uncased) loaded into our model WITHOUT transformers: the
  config is read from JSON, the weights with safetensors or ``torch.load(weights_only=True)``,
  the names renamed by the table below. ``vocab.txt`` beside them is the tokenizer's
  (``wordpiece.py``).
- ``save_pretrained(model, directory, tokenizer)``: the reverse, without transformers
  (what ``train.py`` writes; transformers' ``from_pretrained`` reads it).
Only the functions named ``*from_hf*`` / ``*to_hf*`` import transformers (the L3 rule).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from utils import import_lesson
from utils.checkpoints import read_checkpoint

bp = import_lesson("08_BERT.paper.bert_paper")
BertConfig, BertModel = bp.BertConfig, bp.BertModel
BertForPreTraining, BertForMaskedLM = bp.BertForPreTraining, bp.BertForMaskedLM
BertForSequenceClassification = bp.BertForSequenceClassification
MODEL_CLASSES = (BertModel, BertForPreTraining, BertForMaskedLM, BertForSequenceClassification)

# --------------------------------------------------------------------------------------
# 1. The rename tables: transformers' names -> ours
# --------------------------------------------------------------------------------------

# BertConfig field -> transformers' BertConfig field
CONFIG_NAMES = {
    "vocab_size": "vocab_size", "d_model": "hidden_size", "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads", "d_ff": "intermediate_size",
    "max_len": "max_position_embeddings", "n_segments": "type_vocab_size",
    "dropout": "hidden_dropout_prob", "attn_dropout": "attention_probs_dropout_prob",
    "layer_norm_eps": "layer_norm_eps", "pad_id": "pad_token_id", "init_std": "initializer_range",
}

# Inside encoder layer i: transformers' module -> ours
LAYER_NAMES = {
    "attention.self.query": "attention.q", "attention.self.key": "attention.k",
    "attention.self.value": "attention.v", "attention.output.dense": "attention.out",
    "attention.output.LayerNorm": "norm1", "intermediate.dense": "ffn.up",
    "output.dense": "ffn.down", "output.LayerNorm": "norm2",
}
# Everything else. Ours are written in the task models' layout: the encoder under "bert."
# (our BertModel's own keys lack that prefix, as transformers' BertModel's do).
MODULE_NAMES = {
    "embeddings.word_embeddings": "bert.embeddings.word",
    "embeddings.position_embeddings": "bert.embeddings.position",
    "embeddings.token_type_embeddings": "bert.embeddings.segment",
    "embeddings.LayerNorm": "bert.embeddings.norm",
    "pooler.dense": "bert.pooler.dense",
    "cls.predictions.transform.dense": "mlm_head.dense",
    "cls.predictions.transform.LayerNorm": "mlm_head.norm",
    "cls.predictions.decoder": "mlm_head.decoder",  # tied to the word embeddings
    "cls.seq_relationship": "nsp_head",
    "classifier": "classifier",
}
BIAS_NAMES = {"cls.predictions.bias": "mlm_head.bias",
              "cls.predictions.decoder.bias": "mlm_head.bias"}  # tied to the former
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # not weights: skipped
HEADS = ("bert.pooler.", "mlm_head.", "nsp_head.", "classifier.")


def our_name(hf_name: str) -> str | None:
    """transformers' parameter name -> ours in the task layout; None for a name we don't know.

    Accepts the names real checkpoints use: with or without the ``bert.`` prefix, and the
    old LayerNorm names ``gamma`` / ``beta`` (TensorFlow-era files) for weight / bias.
    """
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", hf_name)
    name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name).removeprefix("bert.")
    if name in BIAS_NAMES:
        return BIAS_NAMES[name]
    module, _, param = name.rpartition(".")
    layer = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module)
    if param not in ("weight", "bias"):
        return None
    if layer and layer[2] in LAYER_NAMES:
        return f"bert.layers.{layer[1]}.{LAYER_NAMES[layer[2]]}.{param}"
    return f"{MODULE_NAMES[module]}.{param}" if module in MODULE_NAMES else None


def _task_layout(model: nn.Module, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """Our state dict with the encoder under "bert." (BertModel's keys get the prefix)."""
    prefix = "bert." if isinstance(model, BertModel) else ""
    return {prefix + key: value for key, value in model.state_dict(keep_vars=keep_vars).items()}


# --------------------------------------------------------------------------------------
# 2. Configurations
# --------------------------------------------------------------------------------------


def config_from_hf(hf_config) -> BertConfig:
    """Our BertConfig from transformers' BertConfig or from a ``config.json`` dict.

    Missing fields take transformers' defaults (BERT-base). Refuses what our model does not
    implement: another activation than GELU (erf), relative position embeddings, a decoder,
    cross-attention, untied output embeddings.
    """
    values = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    unsupported = {"model_type": ("bert", None), "hidden_act": ("gelu", None),
                   "position_embedding_type": ("absolute", None), "is_decoder": (False, None),
                   "add_cross_attention": (False, None), "tie_word_embeddings": (True, None)}
    for key, allowed in unsupported.items():
        if values.get(key) not in allowed:
            raise ValueError(f"config: {key}={values[key]!r} is not supported by bert_paper.py "
                             f"(expected {allowed[0]!r}): this is not the paper's BERT")
    defaults = BertConfig()
    return BertConfig(**{ours: values.get(theirs, getattr(defaults, ours))
                         for ours, theirs in CONFIG_NAMES.items()})


def config_to_hf(config: BertConfig, **extra):
    """transformers' BertConfig for ours (``extra``: e.g. num_labels, attn_implementation)."""
    import transformers

    values = {theirs: getattr(config, ours) for ours, theirs in CONFIG_NAMES.items()}
    return transformers.BertConfig(**values, hidden_act="gelu", **extra)


# --------------------------------------------------------------------------------------
# 3. Loading a state dict in transformers' names (a checkpoint file, or a live model's)
# --------------------------------------------------------------------------------------


def _listed(names: list[str], limit: int = 6) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_hf_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], *,
                       new_heads: bool = False, source: str = "the state dict") -> nn.Module:
    """Copy ``state_dict`` (transformers' names) into ``model`` (one of ours), in place.

    - Every encoder weight (embeddings, layers) must be there, with our shapes.
    - Heads in the file that ``model`` lacks (the NSP head when loading into BertForMaskedLM,
      every head when loading into BertModel) are left out, as transformers does.
    - Heads of ``model`` absent from the file (a BertModel-only checkpoint loaded into
      BertForPreTraining; a classifier before fine-tuning): an error, unless
      ``new_heads=True``, which keeps their fresh initialisation N(0, init_std) and warns.
    - ``cls.predictions.decoder.weight``, when present, must equal the word embeddings
      (our decoder is tied); ``position_ids`` buffers are skipped; a name we don't know,
      or a shape that disagrees with the config, is an error.
    Returns: model.
    """
    ours = _task_layout(model)
    incoming: dict[str, tuple[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state_dict.items():
        if key.removeprefix("bert.") in BUFFERS:
            continue
        name = our_name(key)
        if name is None:
            unknown.append(key)
        elif name in incoming and not torch.equal(incoming[name][1], value):
            raise ValueError(f"{source}: {incoming[name][0]} and {key} differ, but both are "
                             f"{name} here (tied in BERT)")
        else:
            incoming[name] = (key, value)
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} weight names are not BERT's: "
                         f"{_listed(unknown)}. bert_paper.py implements BertModel, "
                         "BertForPreTraining, BertForMaskedLM, BertForSequenceClassification")
    decoder, word = incoming.pop("mlm_head.decoder.weight", None), "bert.embeddings.word.weight"
    if decoder is not None and word in incoming and not torch.equal(decoder[1],
                                                                     incoming[word][1]):
        raise ValueError(f"{source}: {decoder[0]} differs from the word embeddings; our "
                         "masked-LM decoder is tied to them (untied checkpoints are not BERT's)")
    wrong = [f"{key} {tuple(value.shape)} (expected {tuple(ours[name].shape)})"
             for name, (key, value) in incoming.items()
             if name in ours and value.shape != ours[name].shape]
    if wrong:
        raise ValueError(f"{source}: shapes disagree with the model built from the config: "
                         f"{_listed(wrong)}")
    missing = [n for n in ours if n not in incoming and n != "mlm_head.decoder.weight"]
    encoder = [n for n in missing if not n.startswith(HEADS)]
    if encoder:
        raise ValueError(f"{source}: encoder weights are missing: {_listed(encoder)}")
    heads = sorted({next(h for h in HEADS if n.startswith(h)).rstrip(".") for n in missing})
    if heads and not new_heads:
        raise ValueError(f"{source} has no weights for {', '.join(heads)} of "
                         f"{type(model).__name__}; pass new_heads=True to start them from "
                         "the fresh initialisation (as for fine-tuning), or load a model "
                         "class whose heads the checkpoint has")
    with torch.no_grad():
        for name, (_, value) in incoming.items():
            if name in ours:
                ours[name].copy_(value)  # into the parameters, in the model's dtype
    if heads:
        warnings.warn(f"{type(model).__name__}: {', '.join(heads)} not in {source}: freshly "
                      "initialised; train them before use", stacklevel=2)
    return model


# --------------------------------------------------------------------------------------
# 4. transformers models <-> ours
# --------------------------------------------------------------------------------------


def _ours_from_hf_classes() -> dict:
    import transformers

    return {transformers.BertModel: BertModel,
            transformers.BertForPreTraining: BertForPreTraining,
            transformers.BertForMaskedLM: BertForMaskedLM,
            transformers.BertForSequenceClassification: BertForSequenceClassification}


def from_hf(hf_model) -> nn.Module:
    """Ours, holding ``hf_model``'s weights: transformers' BertModel (with or without its
    pooler), BertForPreTraining, BertForMaskedLM or BertForSequenceClassification.

    Returns: the matching class of bert_paper.py, in hf_model's dtype, device and mode, with
    hf_model's attention implementation when it is "eager" or "sdpa".
    """
    ours_class = _ours_from_hf_classes().get(type(hf_model))
    if ours_class is None:
        raise TypeError(f"from_hf: expected transformers' BertModel, BertForPreTraining, "
                        f"BertForMaskedLM or BertForSequenceClassification, got "
                        f"{type(hf_model).__name__}")
    hf_config = hf_model.config
    config = config_from_hf(hf_config)
    if hf_config._attn_implementation in bp.ATTN_IMPLEMENTATIONS:
        config.attn_implementation = hf_config._attn_implementation
    if ours_class is BertModel:
        model = BertModel(config, with_pooler=hf_model.pooler is not None)
    elif ours_class is BertForSequenceClassification:
        model = BertForSequenceClassification(config, hf_config.num_labels,
                                              hf_config.classifier_dropout)
    else:
        model = ours_class(config)
    weight = next(hf_model.parameters())
    model.to(dtype=weight.dtype, device=weight.device)
    load_hf_state_dict(model, hf_model.state_dict(), source=type(hf_model).__name__)
    return model.train(hf_model.training)


def to_hf(model: nn.Module, attn_implementation: str | None = None):
    """transformers' model of the same kind as ``model`` (one of ours), same weights.

    attn_implementation: "eager", "sdpa" (default: our config's).
    Returns: transformers' model in ``model``'s dtype, device and mode.
    """
    hf_class = {ours: theirs for theirs, ours in _ours_from_hf_classes().items()}.get(type(model))
    if hf_class is None:
        raise TypeError(f"to_hf: expected one of {[c.__name__ for c in MODEL_CLASSES]} from "
                        f"bert_paper.py, got {type(model).__name__}")
    extra = {"attn_implementation": attn_implementation or model.config.attn_implementation}
    if isinstance(model, BertForSequenceClassification):
        extra.update(num_labels=model.num_classes, classifier_dropout=model.dropout.p)
    hf_config = config_to_hf(model.config, **extra)
    if isinstance(model, BertModel):
        hf_model = hf_class(hf_config, add_pooling_layer=model.pooler is not None)
    else:
        hf_model = hf_class(hf_config)
    weight = model.bert.embeddings.word.weight if hasattr(model, "bert") \
        else model.embeddings.word.weight
    hf_model.to(dtype=weight.dtype, device=weight.device)
    ours = _task_layout(model)
    hf_model.load_state_dict({key: ours[our_name(key)] for key in hf_model.state_dict()})
    return hf_model.train(model.training)


# --------------------------------------------------------------------------------------
# 5. A checkpoint directory in transformers' layout (no transformers needed)
# --------------------------------------------------------------------------------------

# read_checkpoint (utils/checkpoints.py): config.json and the weights as saved, no transformers


def load_pretrained(directory: str | Path, model_class: type = BertModel, *,
                    num_classes: int | None = None, new_heads: bool = False,
                    dtype: torch.dtype = torch.float32) -> nn.Module:
    """A checkpoint directory (transformers' layout) loaded into ``model_class``.

    Inputs:  directory with config.json and model.safetensors or pytorch_model.bin;
             model_class: BertModel, BertForPreTraining, BertForMaskedLM or
             BertForSequenceClassification; num_classes for the latter (default: the
             config's labels, id2label, else 2); new_heads: start the heads the checkpoint
             lacks from our initialisation (see ``load_hf_state_dict``); dtype of the model.
    Returns: the model in eval mode (as transformers' from_pretrained).
    """
    if model_class not in MODEL_CLASSES:
        raise TypeError(f"load_pretrained: model_class must be one of "
                        f"{[c.__name__ for c in MODEL_CLASSES]}, got {model_class!r}")
    hf_config, state_dict, path = read_checkpoint(directory)
    config = config_from_hf(hf_config)
    if model_class is BertForSequenceClassification:
        num_classes = (num_classes or hf_config.get("num_labels")
                       or len(hf_config.get("id2label") or ()) or 2)
        model = model_class(config, num_classes, hf_config.get("classifier_dropout"))
    else:
        model = model_class(config)
    load_hf_state_dict(model.to(dtype), state_dict, new_heads=new_heads, source=str(path))
    return model.eval()


# --------------------------------------------------------------------------------------
# 6. Writing a checkpoint directory in transformers' layout (no transformers needed)
# --------------------------------------------------------------------------------------


# ours -> transformers' (the tables of section 1, inverted)
_HF_LAYER_NAMES = {ours: theirs for theirs, ours in LAYER_NAMES.items()}
_HF_MODULE_NAMES = {ours: theirs for theirs, ours in MODULE_NAMES.items()}


def hf_name(name: str, model: nn.Module) -> str:
    """Our parameter name (``model.state_dict()``'s) -> transformers' name for the same class.

    The inverse of ``our_name``: the encoder under ``bert.`` in the task models, without it
    in BertModel (as transformers' BertModel); the masked-LM bias as ``cls.predictions.bias``.
    """
    ours = f"bert.{name}" if isinstance(model, BertModel) else name
    if ours == "mlm_head.bias":
        return "cls.predictions.bias"
    module, _, param = ours.rpartition(".")
    layer = re.fullmatch(r"bert\.layers\.(\d+)\.(.+)", module)
    if layer:
        theirs = f"bert.encoder.layer.{layer[1]}.{_HF_LAYER_NAMES[layer[2]]}"
    else:
        theirs = _HF_MODULE_NAMES[module]
        if module.startswith("bert."):
            theirs = f"bert.{theirs}"
    theirs = f"{theirs}.{param}"
    return theirs.removeprefix("bert.") if isinstance(model, BertModel) else theirs


def save_pretrained(model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
    """Write ``model`` (one of ours) as transformers' ``save_pretrained`` would, and the
    tokenizer beside it: config.json, model.safetensors (transformers' names, float tensors,
    the tied decoder matrix left out as transformers leaves it out), and with ``tokenizer``
    (a wordpiece.WordPieceTokenizer) vocab.txt and tokenizer_config.json.

    Both ``load_pretrained(directory, ...)`` and transformers' ``from_pretrained(directory)``
    read the result. Returns: the directory.
    """
    from safetensors.torch import save_file

    if not isinstance(model, MODEL_CLASSES):
        raise TypeError(f"save_pretrained: expected one of {[c.__name__ for c in MODEL_CLASSES]}"
                        f" from bert_paper.py, got {type(model).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {hf_name(name, model): value.detach().cpu().contiguous().clone()
               for name, value in model.state_dict().items()
               if name != "mlm_head.decoder.weight"}  # tied: the word embeddings
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    config = {theirs: getattr(model.config, ours) for ours, theirs in CONFIG_NAMES.items()}
    config.update(architectures=[type(model).__name__], model_type="bert", hidden_act="gelu",
                  position_embedding_type="absolute", tie_word_embeddings=True,
                  dtype=str(next(iter(tensors.values())).dtype).removeprefix("torch."))
    if isinstance(model, BertForSequenceClassification):
        config.update(num_labels=model.num_classes, classifier_dropout=model.dropout.p,
                      id2label={str(i): f"LABEL_{i}" for i in range(model.num_classes)},
                      label2id={f"LABEL_{i}": i for i in range(model.num_classes)})
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n",
                                           encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
