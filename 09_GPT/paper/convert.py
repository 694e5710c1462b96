"""Porting GPT weights between gpt_paper.py and transformers, and checkpoint folders.

- ``from_hf(hf_model)`` / ``to_hf(model)``: transformers' GPT2LMHeadModel (GPT-2, pre-LN)
  and OpenAIGPTLMHeadModel (GPT-1, post-LN) <-> our GPT, same weights, same logits.
  Both store their projections in ``Conv1D``, whose weight is (in, out), the transpose
  of nn.Linear's (out, in): every matrix of a block is transposed on the way.
- ``load_pretrained(directory)``: a folder in transformers' layout (``config.json`` and
  ``model.safetensors`` or ``pytorch_model.bin``, as a user has after one download of e.g.
  gpt2 on a connected machine) loaded into our GPT WITHOUT transformers: names with or
  without the ``transformer.`` prefix, the old ``attn.bias`` / ``attn.masked_bias`` mask
  buffers skipped, ``lm_head.weight`` present (equal to the token embeddings) or absent.
- ``save_pretrained(model, directory)``: the reverse, without transformers; transformers'
  ``GPT2LMHeadModel.from_pretrained`` / ``OpenAIGPTLMHeadModel.from_pretrained`` read it.
Only the functions named ``*from_hf*`` / ``*to_hf*`` import transformers (the L3 rule).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from utils import import_lesson
from utils.checkpoints import read_checkpoint  # config.json + weights or shards

gp = import_lesson("09_GPT.paper.gpt_paper")
GPT, GPTConfig = gp.GPT, gp.GPTConfig

# --------------------------------------------------------------------------------------
# 1. The rename tables: transformers' names -> ours
# --------------------------------------------------------------------------------------

MODEL_TYPES = ("gpt2", "openai-gpt")  # GPT-2 (pre-LN), GPT-1 (post-LN)
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "openai-gpt": "OpenAIGPTLMHeadModel"}
# GPTConfig field -> transformers' config field (both configs use these names)
CONFIG_NAMES = {"vocab_size": "vocab_size", "max_len": "n_positions", "d_model": "n_embd",
                "n_layers": "n_layer", "n_heads": "n_head", "dropout": "resid_pdrop",
                "attn_dropout": "attn_pdrop", "layer_norm_eps": "layer_norm_epsilon",
                "init_std": "initializer_range"}
# transformers' activation name -> ours ("gelu" means the tanh form in OpenAIGPT's code)
GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
GPT1_ACTIVATIONS = {"gelu": "gelu_tanh"}

# Inside block i: transformers' module -> ours; Conv1D modules (weights transposed)
LAYER_NAMES = {"ln_1": "norm1", "attn.c_attn": "attention.qkv", "attn.c_proj": "attention.out",
               "ln_2": "norm2", "mlp.c_fc": "ffn.up", "mlp.c_proj": "ffn.down"}
CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
MODULE_NAMES = {"wte": "embeddings.word", "wpe": "embeddings.position",  # GPT-2
                "tokens_embed": "embeddings.word", "positions_embed": "embeddings.position",
                "ln_f": "final_norm"}
# Causal-mask buffers of older files (and GPT-1's position_ids): not weights, skipped
BUFFERS = re.compile(r"(h\.\d+\.attn\.(bias|masked_bias)|position_ids)$")
TIED = "lm_head.weight"  # the output layer: the token embeddings again


def our_name(hf_name: str) -> tuple[str | None, bool]:
    """transformers' parameter name -> (ours or None if unknown, whether to transpose).

    Accepts names with and without the ``transformer.`` prefix (GPT2LMHeadModel's file vs
    GPT2Model's). ``lm_head.weight`` maps to ``lm_head.weight`` (tied; checked by the caller).
    """
    name = hf_name.removeprefix("transformer.")
    if name == TIED:
        return TIED, False
    module, _, param = name.rpartition(".")
    layer = re.fullmatch(r"h\.(\d+)\.(.+)", module)
    if param not in ("weight", "bias"):
        return None, False
    if layer and layer[2] in LAYER_NAMES:
        return (f"layers.{layer[1]}.{LAYER_NAMES[layer[2]]}.{param}",
                layer[2] in CONV1D and param == "weight")
    return (f"{MODULE_NAMES[module]}.{param}", False) if module in MODULE_NAMES else (None, False)


# --------------------------------------------------------------------------------------
# 2. Configurations
# --------------------------------------------------------------------------------------


def config_from_hf(hf_config) -> GPTConfig:
    """Our GPTConfig from transformers' GPT2Config / OpenAIGPTConfig or a config.json dict.

    Missing fields take transformers' defaults (GPT-2 small, GPT-1). Refuses, naming the
    field, what our model does not compute: another model_type, activation, attention
    scaled by 1 / layer index, reordered/upcast attention, unscaled attention,
    cross-attention, untied output embeddings, embedding dropout != residual dropout.
    """
    values = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    model_type = values.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"config: model_type={model_type!r} is not supported by gpt_paper.py "
                         f"(expected one of {MODEL_TYPES}: GPT-2 or GPT-1)")
    gpt2 = model_type == "gpt2"
    activations = GPT2_ACTIVATIONS if gpt2 else GPT1_ACTIVATIONS
    activation_field = "activation_function" if gpt2 else "afn"
    activation = values.get(activation_field, "gelu_new" if gpt2 else "gelu")
    if activation not in activations:
        raise ValueError(f"config: {activation_field}={activation!r} is not supported by "
                         f"gpt_paper.py (expected one of {tuple(activations)})")
    unsupported = {"scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
                   "scale_attn_weights": True, "add_cross_attention": False,
                   "tie_word_embeddings": True}
    for key, allowed in unsupported.items():
        if values.get(key, allowed) != allowed:
            raise ValueError(f"config: {key}={values[key]!r} is not supported by gpt_paper.py "
                             f"(expected {allowed!r}): not the papers' GPT")
    defaults = GPTConfig() if gpt2 else GPTConfig.gpt1()
    fields = {ours: values.get(theirs, getattr(defaults, ours))
              for ours, theirs in CONFIG_NAMES.items()}
    if values.get("embd_pdrop", fields["dropout"]) != fields["dropout"]:
        raise ValueError(f"config: embd_pdrop={values['embd_pdrop']!r} differs from resid_pdrop="
                         f"{fields['dropout']!r}; gpt_paper.py has one dropout for both")
    return GPTConfig(**fields, d_ff=values.get("n_inner") if gpt2 else None,
                     norm_position="pre" if gpt2 else "post", activation=activations[activation])


def _hf_fields(config: GPTConfig, caller: str) -> dict:
    """transformers' config fields for ours (model_type included), written without it."""
    values = {theirs: getattr(config, ours) for ours, theirs in CONFIG_NAMES.items()}
    values["embd_pdrop"] = config.dropout
    if config.norm_position == "pre":
        activation = {"gelu_tanh": "gelu_new", "gelu": "gelu"}[config.activation]
        return {**values, "model_type": "gpt2", "n_inner": config.d_ff,
                "activation_function": activation}
    if config.activation != "gelu_tanh" or config.d_ff != 4 * config.d_model:
        raise ValueError(f"{caller}: OpenAIGPT (post-LN) has only the tanh GELU and "
                         f"d_ff = 4 d_model; got activation={config.activation!r}, "
                         f"d_ff={config.d_ff}")
    return {**values, "model_type": "openai-gpt", "afn": "gelu"}


def config_to_hf(config: GPTConfig, **extra):
    """transformers' GPT2Config (pre-LN) or OpenAIGPTConfig (post-LN) for ours.
    ``extra``: e.g. attn_implementation, eos_token_id."""
    import transformers

    values = _hf_fields(config, "config_to_hf")
    hf_class = transformers.GPT2Config if values.pop("model_type") == "gpt2" \
        else transformers.OpenAIGPTConfig
    if hf_class is transformers.GPT2Config and config.vocab_size <= 50256:
        for key in ("bos_token_id", "eos_token_id"):  # GPT2Config's default is 50256,
            extra.setdefault(key, None)  # <|endoftext|>, which a smaller vocabulary lacks
    return hf_class(**values, **extra)


# --------------------------------------------------------------------------------------
# 3. Loading a state dict in transformers' names (a checkpoint file, or a live model's)
# --------------------------------------------------------------------------------------


def _listed(names: list[str], limit: int = 6) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_hf_state_dict(model: GPT, state_dict: dict[str, torch.Tensor], *,
                       source: str = "the state dict") -> GPT:
    """Copy ``state_dict`` (transformers' names) into ``model``, in place; returns model.

    Every weight must be there with our shapes (Conv1D matrices transposed); mask buffers
    are skipped; ``lm_head.weight``, when present, must equal the token embeddings (ours is
    tied); a name we don't know, a missing weight or a wrong shape is an error.
    """
    ours = model.state_dict()
    incoming: dict[str, tuple[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state_dict.items():
        if BUFFERS.search(key):
            continue
        name, transpose = our_name(key)
        if name is None:
            unknown.append(key)
        else:
            incoming[name] = (key, value.T if transpose else value)
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} weight names are not GPT's: "
                         f"{_listed(unknown)}. gpt_paper.py implements GPT2LMHeadModel and "
                         "OpenAIGPTLMHeadModel")
    head, word = incoming.pop(TIED, None), "embeddings.word.weight"
    if head is not None and word in incoming and not torch.equal(head[1], incoming[word][1]):
        raise ValueError(f"{source}: {head[0]} differs from the token embeddings; our output "
                         "layer is tied to them (an untied checkpoint is not GPT's)")
    wrong = [f"{key} {tuple(value.shape)} (expected {tuple(ours[name].shape)} here)"
             for name, (key, value) in incoming.items()
             if name in ours and value.shape != ours[name].shape]
    if wrong:
        raise ValueError(f"{source}: shapes disagree with the model built from the config: "
                         f"{_listed(wrong)}")
    extra = [key for name, (key, _) in incoming.items() if name not in ours]
    missing = [name for name in ours if name not in incoming and name != TIED]
    problems = ([f"weights missing: {_listed(missing)}"] if missing else []) + \
        ([f"weights with no place in this model: {_listed(extra)}"] if extra else [])
    if problems:
        raise ValueError(f"{source}: {'; '.join(problems)} (GPT-2 has ln_f, GPT-1 has not: "
                         "does config.json's model_type match the weights?)")
    with torch.no_grad():
        for name, (_, value) in incoming.items():
            ours[name].copy_(value)  # into the parameters, in the model's dtype
    return model


# --------------------------------------------------------------------------------------
# 4. transformers models <-> ours
# --------------------------------------------------------------------------------------


def from_hf(hf_model) -> GPT:
    """Our GPT holding ``hf_model``'s weights: transformers' GPT2LMHeadModel (GPT-2) or
    OpenAIGPTLMHeadModel (GPT-1). Returns it in hf_model's dtype, device and mode, with
    hf_model's attention implementation when it is "eager" or "sdpa"."""
    import transformers

    if type(hf_model) not in (transformers.GPT2LMHeadModel, transformers.OpenAIGPTLMHeadModel):
        raise TypeError(f"from_hf: expected transformers' GPT2LMHeadModel or "
                        f"OpenAIGPTLMHeadModel, got {type(hf_model).__name__}")
    config = config_from_hf(hf_model.config)
    if hf_model.config._attn_implementation in gp.ATTN_IMPLEMENTATIONS:
        config.attn_implementation = hf_model.config._attn_implementation
    model = GPT(config)
    weight = next(hf_model.parameters())
    model.to(dtype=weight.dtype, device=weight.device)
    load_hf_state_dict(model, hf_model.state_dict(), source=type(hf_model).__name__)
    return model.train(hf_model.training)


def hf_state_dict(model: GPT, prefix: str = "transformer.") -> dict[str, torch.Tensor]:
    """Our weights under transformers' names (GPT2LMHeadModel's or OpenAIGPTLMHeadModel's,
    from the config's norm_position), Conv1D matrices transposed, the tied lm_head left out."""
    gpt2 = model.config.norm_position == "pre"
    modules = {"embeddings.word": "wte" if gpt2 else "tokens_embed",
               "embeddings.position": "wpe" if gpt2 else "positions_embed",
               "final_norm": "ln_f"}
    layers = {ours: theirs for theirs, ours in LAYER_NAMES.items()}
    tensors = {}
    for name, value in model.state_dict().items():
        if name == TIED:
            continue
        module, _, param = name.rpartition(".")
        layer = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        theirs = f"h.{layer[1]}.{layers[layer[2]]}" if layer else modules[module]
        transpose = layer is not None and layers[layer[2]] in CONV1D and param == "weight"
        tensors[f"{prefix}{theirs}.{param}"] = value.T if transpose else value
    return tensors


def to_hf(model: GPT, attn_implementation: str | None = None):
    """transformers' GPT2LMHeadModel (pre-LN) or OpenAIGPTLMHeadModel (post-LN) with
    ``model``'s weights, in its dtype, device and mode. attn_implementation: "eager" or
    "sdpa" (default: our config's)."""
    import transformers

    if not isinstance(model, GPT):
        raise TypeError(f"to_hf: expected a GPT from gpt_paper.py, got {type(model).__name__}")
    hf_config = config_to_hf(model.config, attn_implementation=attn_implementation
                             or model.config.attn_implementation)
    hf_class = transformers.GPT2LMHeadModel if model.config.norm_position == "pre" \
        else transformers.OpenAIGPTLMHeadModel
    hf_model = hf_class(hf_config)
    weight = model.embeddings.word.weight
    hf_model.to(dtype=weight.dtype, device=weight.device)
    tensors = hf_state_dict(model)
    with torch.no_grad():
        for key, param in hf_model.named_parameters():  # lm_head.weight is tied: not listed
            param.copy_(tensors[key])
    return hf_model.train(model.training)


# --------------------------------------------------------------------------------------
# 5. Checkpoint folders in transformers' layout (no transformers needed)
# --------------------------------------------------------------------------------------


def load_pretrained(directory: str | Path, dtype: torch.dtype = torch.float32,
                    attn_implementation: str = "eager") -> GPT:
    """A checkpoint folder (config.json + model.safetensors or pytorch_model.bin, e.g.
    GPT-2 or GPT-1 downloaded once) loaded into our GPT, in eval mode and ``dtype``."""
    hf_config, state_dict, path = read_checkpoint(directory)
    config = config_from_hf(hf_config)
    config.attn_implementation = attn_implementation
    model = GPT(config).to(dtype)
    load_hf_state_dict(model, state_dict, source=str(path))
    return model.eval()


def save_pretrained(model: GPT, directory: str | Path) -> Path:
    """Write ``model`` as transformers' ``save_pretrained`` would: config.json (gpt2 or
    openai-gpt) and model.safetensors (transformers' names, the tied lm_head left out).
    ``load_pretrained`` and transformers' ``from_pretrained`` read it. Returns directory."""
    from safetensors.torch import save_file

    if not isinstance(model, GPT):
        raise TypeError(f"save_pretrained: expected a GPT from gpt_paper.py, got "
                        f"{type(model).__name__}")
    config = _hf_fields(model.config, "save_pretrained")
    config.update(architectures=[ARCHITECTURES[config["model_type"]]], tie_word_embeddings=True)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous().clone()
               for key, value in hf_state_dict(model).items()}
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    config["dtype"] = str(model.embeddings.word.weight.dtype).removeprefix("torch.")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n",
                                           encoding="utf-8")
    return directory
