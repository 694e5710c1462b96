"""transformers' GPT-2, read and modified (Level 4).

Part of lesson 09's code reading: ``09_GPT/analysis/README.md`` walks through
``transformers/models/gpt2/`` (and the cache, mask and generation code it calls) with line
numbers, and ``check_guide_line_numbers`` below checks every one of them against the
installed version (with ``utils/guides.py``). This script checks what the reading
claims, then does the lesson's four modification tasks on transformers' own classes, built
from small random configs (no download):

0. The reading's claims: ``Conv1D`` is a linear layer with its weight stored (in, out); the
   tied ``lm_head``; the loss shifted inside the model; the key/value cache growing by one
   position per step; ``generate``'s position ids under left padding; the order of the
   logits processors; eager and sdpa computing the same function; GPT-2 small's size.
1. A custom logits processor (banning a set of tokens) used through ``generate``.
2. Attention patterns: every layer's and head's attention for a prompt, drawn as a
   layers x heads grid under ``--out``.
3. A new head: sequence classification from the last non-padding token, checked against
   ``GPT2ForSequenceClassification``'s choice of token, with right and left padding.
4. LoRA (Hu et al. 2021) written by hand on the attention projections, equal to ``peft``'s
   LoRA on the same weights, fine-tuned on a generated task while the base stays frozen.

``--checkpoint DIR`` runs 1-4 on real weights: a directory in transformers' layout
(``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, and the tokenizer files
``vocab.json`` + ``merges.txt`` or ``tokenizer.json``), as a user has after one download on a
connected machine.

Run from the repository root::

    python 09_GPT/analysis/hf_analysis.py                        # offline, seconds
    python 09_GPT/analysis/hf_analysis.py --steps 400 --rank 8 --lora-targets c_attn c_proj
    python 09_GPT/analysis/hf_analysis.py --checkpoint ~/models/gpt2 --prompt "The cat" \\
        --ban " the" " a"
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    GPT2Model,
    GPT2TokenizerFast,
    LogitsProcessor,
    LogitsProcessorList,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.pytorch_utils import Conv1D

from utils import import_lesson
from utils.cli import (
    add_common_args,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    probability,
    set_help,
)
from utils.guides import GuideLocation, check_guide, read_guide_locations
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_curves

bert_l4 = import_lesson("08_BERT.analysis.hf_analysis")  # its layers x heads grid plot

GUIDE_VERSION = "5.25.0"  # the transformers version whose line numbers the guide quotes
HERE = Path(__file__).resolve().parent
GUIDES = (HERE / "README.md",)
TOY_VOCAB = ("<pad>",) + tuple(" abcdefghijklmnopqrstuvwxyz.,")  # id 0 pads
PAD_ID = 0
DEFAULT_PROMPT = "the cat sat on the mat."
TASKS = ("contains",)
LORA_TARGETS = ("c_attn", "c_proj")  # GPT2Attention's two projections


# --------------------------------------------------------------------------------------
# Models and tokenizers: tiny random ones, or a checkpoint directory
# --------------------------------------------------------------------------------------


def tiny_config(vocab_size: int = len(TOY_VOCAB), attn_implementation: str = "eager",
                dropout: float = 0.0, **overrides) -> GPT2Config:
    """A small GPT2Config: 2 layers, d_model 32, 4 heads, 64 positions, pad id 0.

    Inputs:  vocab_size; attn_implementation ("eager", "sdpa", ...); dropout - embedding,
             residual and attention-probability dropout; overrides - any other field.
    No bos/eos token (GPT-2's 50256 is outside a tiny vocabulary), so ``generate`` never
    stops early; ``pad_token_id`` 0 lets GPT2ForSequenceClassification take batches.
    """
    fields = dict(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                  resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                  bos_token_id=None, eos_token_id=None, pad_token_id=PAD_ID,
                  attn_implementation=attn_implementation)
    fields.update(overrides)
    return GPT2Config(**fields)


class CharTokenizer:
    """Characters of ``TOY_VOCAB`` <-> ids, with the methods of transformers' tokenizers the
    script uses (``encode``, ``decode``, ``convert_ids_to_tokens``, ``pad_token_id``)."""

    pad_token_id = PAD_ID

    def __init__(self, vocab: Sequence[str] = TOY_VOCAB):
        self.vocab = tuple(vocab)
        self.ids = {token: i for i, token in enumerate(self.vocab)}

    def encode(self, text: str) -> list[int]:
        unknown = sorted({c for c in text if c not in self.ids})
        if unknown:
            raise ValueError(f"characters {unknown} are not in the toy vocabulary "
                             f"{''.join(self.vocab[1:])!r}")
        return [self.ids[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[int(i)] for i in ids if int(i) != PAD_ID)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[int(i)] for i in ids]


class CheckpointError(ValueError):
    """A --checkpoint directory is missing or not in transformers' layout."""


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def check_checkpoint_dir(path: str | Path) -> Path:
    """Check that ``path`` holds a GPT-2 checkpoint in transformers' layout; return it.

    Raises: CheckpointError naming what is missing, or saying config.json is not GPT-2's.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES[::2]))
    has_bpe = all((directory / name).is_file() for name in ("vocab.json", "merges.txt"))
    if not has_bpe and not (directory / "tokenizer.json").is_file():
        missing.append("vocab.json + merges.txt or tokenizer.json")
    if missing:
        raise CheckpointError(
            f"{directory} is not a checkpoint in transformers' layout: missing "
            f"{'; '.join(missing)}. On a connected machine, `GPT2LMHeadModel.from_pretrained("
            "name).save_pretrained(DIR)` and `GPT2TokenizerFast.from_pretrained(name)"
            ".save_pretrained(DIR)` give such a directory.")
    try:
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    except (ValueError, AttributeError) as err:
        raise CheckpointError(f"{directory}/config.json is not a JSON object: {err}") from None
    if model_type != "gpt2":
        raise CheckpointError(f"{directory}/config.json describes a model of type "
                              f"{model_type!r}; this script reads GPT-2 ('gpt2')")
    return directory


def load_checkpoint(path: str | Path, attn_implementation: str = "eager",
                    ) -> tuple[GPT2LMHeadModel, GPT2TokenizerFast]:
    """GPT2LMHeadModel (eval mode) and its tokenizer from a checkpoint directory, offline.

    GPT-2 has no padding token; as is usual, the end-of-text token pads (``pad_token_id`` is
    set on the config too, which GPT2ForSequenceClassification needs for batches).
    """
    directory = check_checkpoint_dir(path)
    model = GPT2LMHeadModel.from_pretrained(directory, local_files_only=True,
                                            attn_implementation=attn_implementation)
    tokenizer = GPT2TokenizerFast.from_pretrained(directory, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def toy_model(seed: int = 0, attn_implementation: str = "eager", **overrides) -> GPT2LMHeadModel:
    """A random tiny GPT2LMHeadModel over ``TOY_VOCAB`` (eval mode)."""
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_config(attn_implementation=attn_implementation,
                                       **overrides)).eval()


# --------------------------------------------------------------------------------------
# 1. A custom logits processor, used through generate
# --------------------------------------------------------------------------------------


class BanTokensLogitsProcessor(LogitsProcessor):
    """Give a set of tokens score -inf at every step, so that no decoding method picks them.

        scores'[b, v] = -inf if v in banned else scores[b, v]

    ``generate`` calls every processor as ``processor(input_ids, scores)`` with input_ids
    (B, T) so far and scores (B, V), the next token's logits (float32). Custom processors are
    applied before the sampling warpers (temperature, top-k, top-p), so top-k chooses among
    the allowed tokens. transformers' own ``SuppressTokensLogitsProcessor`` (the
    ``suppress_tokens`` argument of generate) does the same with ``torch.where``.
    """

    def __init__(self, banned_ids: Iterable[int]):
        self.banned_ids = sorted({int(i) for i in banned_ids})
        if any(i < 0 for i in self.banned_ids):
            raise ValueError(f"banned token ids must be >= 0; got {self.banned_ids}")

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if not self.banned_ids:
            return scores
        banned = torch.tensor(self.banned_ids, device=scores.device)
        return scores.index_fill(-1, banned, float("-inf"))


@torch.no_grad()
def generate_banning(model: GPT2LMHeadModel, input_ids: torch.Tensor, banned: Iterable[int],
                     max_new_tokens: int, attention_mask: torch.Tensor | None = None,
                     **generate_kwargs) -> torch.Tensor:
    """``model.generate`` with a BanTokensLogitsProcessor: (B, T) -> (B, T + max_new_tokens).

    Greedy unless ``do_sample=True`` is passed; other keyword arguments go to generate.
    """
    processors = LogitsProcessorList([BanTokensLogitsProcessor(banned)])
    generate_kwargs.setdefault("do_sample", False)
    return model.generate(input_ids, attention_mask=attention_mask, logits_processor=processors,
                          max_new_tokens=max_new_tokens,
                          pad_token_id=model.config.pad_token_id, **generate_kwargs)


@torch.no_grad()
def greedy_by_hand(model: GPT2LMHeadModel, input_ids: torch.Tensor, max_new_tokens: int,
                   banned: Iterable[int] = ()) -> torch.Tensor:
    """The reference greedy loop: run the whole sequence each step (no cache), take the argmax
    of the last position's logits over the allowed tokens. (B, T) -> (B, T + max_new_tokens).
    """
    ids = input_ids
    banned = torch.tensor(sorted(set(banned)), dtype=torch.long)
    for _ in range(max_new_tokens):
        logits = model(ids, use_cache=False).logits[:, -1]  # (B, V)
        if banned.numel():
            logits = logits.index_fill(-1, banned.to(logits.device), float("-inf"))
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


# --------------------------------------------------------------------------------------
# 2. Attention patterns, layers x heads
# --------------------------------------------------------------------------------------


@torch.no_grad()
def attention_maps(model: GPT2LMHeadModel | GPT2Model, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None,
                   position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Every layer's attention probabilities: (B, T) ids -> (B, L, A, T, T).

    Only the eager implementation returns the probabilities (sdpa returns None for them), so
    a model built with another implementation is switched to eager for this call and back.
    Runs in eval mode. Row q of map [b, l, a] is how query q spreads over keys 0..q: zero
    above the diagonal (the causal mask) and on padded keys, summing to 1.
    """
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        out = model.eval()(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids, output_attentions=True, use_cache=False)
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)
    return torch.stack(out.attentions, dim=1)  # L x (B, A, T, T) -> (B, L, A, T, T)


def prompt_attention(model: GPT2LMHeadModel, tokenizer, prompt: str,
                     ) -> tuple[torch.Tensor, list[str]]:
    """The attention maps of one prompt, (L, A, T, T), and its T tokens."""
    ids = torch.tensor([tokenizer.encode(prompt)], device=model.device)
    if ids.shape[1] == 0 or ids.shape[1] > model.config.n_positions:
        raise ValueError(f"prompt: expected 1 to {model.config.n_positions} tokens; got "
                         f"{ids.shape[1]}")
    return attention_maps(model, ids)[0], tokenizer.convert_ids_to_tokens(ids[0].tolist())


plot_attention_grid = bert_l4.plot_attention_grid  # (L, A, T, T) -> a layers x heads grid


# --------------------------------------------------------------------------------------
# 3. A new head: sequence classification from the last non-padding token
# --------------------------------------------------------------------------------------


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """The position of the last real token of each row: (B, T) 0/1 mask -> (B,) int64.

        index_b = max { t : mask[b, t] = 1 }  = argmax_t (t * mask[b, t])

    Works for right padding (index = length - 1) and left padding (index = T - 1) alike.
    """
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(-1)


def hf_last_token_index(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """GPT2ForSequenceClassification's rule, reproduced: the rightmost token that is not
    ``pad_token_id``, read from the ids (it never sees the attention mask). (B, T) -> (B,)."""
    non_pad = (input_ids != pad_token_id).to(torch.int32)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
    return (positions * non_pad).argmax(-1)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip the padding, as ``generate`` makes them: (B, T) -> (B, T).

        position_t = (number of real tokens up to t) - 1, and 0 at padded positions

    With left padding the first real token gets position 0, as it would without padding.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class LastTokenClassifier(nn.Module):
    """Sequence classification on transformers' ``GPT2Model`` from the last real token.

        logits = W h_last          h_last = GPT2Model(x).last_hidden_state[b, index_b]

    GPT-1's fine-tuning (Radford et al. 2018, Sec. 3.2: "the final transformer block's
    activation h_l^m" of the last token, fed to a linear output layer). The token is chosen
    from the attention mask (``last_token_index``), and the position ids skip the padding
    (``positions_from_mask``), so a left-padded sequence gets the logits it gets alone. Same
    parameter names as transformers' ``GPT2ForSequenceClassification`` (``transformer.*``,
    ``score.weight``, no bias), so the two load each other's state dicts.

    forward: input_ids (B, T), attention_mask (B, T) (None: no padding), position_ids,
             labels (B,) -> SequenceClassifierOutput(loss, logits (B, num_labels)).
    """

    def __init__(self, transformer: GPT2Model, num_labels: int):
        super().__init__()
        if not isinstance(transformer, GPT2Model):
            raise TypeError(f"transformer must be a transformers GPT2Model; got "
                            f"{type(transformer).__name__}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2; got {num_labels}")
        self.transformer = transformer
        self.score = nn.Linear(transformer.config.n_embd, num_labels, bias=False)
        nn.init.normal_(self.score.weight, std=transformer.config.initializer_range)
        self.score.to(transformer.device, transformer.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask)
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                  position_ids=position_ids,
                                  use_cache=False).last_hidden_state  # (B, T, D)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        last = hidden[rows, last_token_index(attention_mask)]  # (B, D)
        logits = self.score(last)  # (B, num_labels)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def as_gpt2_for_sequence_classification(head: LastTokenClassifier,
                                        ) -> GPT2ForSequenceClassification:
    """The same weights in transformers' ``GPT2ForSequenceClassification`` (strict load)."""
    config = GPT2Config(**head.transformer.config.to_dict())
    config.num_labels = head.score.out_features
    config._attn_implementation = head.transformer.config._attn_implementation
    model = GPT2ForSequenceClassification(config).to(head.score.weight.device,
                                                     head.score.weight.dtype)
    model.load_state_dict(head.state_dict(), strict=True)
    return model.eval()


def pad_batch(sequences: Sequence[Sequence[int]], side: str = "right",
              pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to the longest: -> input_ids (B, T), attention_mask (B, T)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right'; got {side!r}")
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        span = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


# --------------------------------------------------------------------------------------
# 4. LoRA, by hand, on GPT-2's Conv1D projections
# --------------------------------------------------------------------------------------


class LoRAConv1D(nn.Module):
    """A frozen Conv1D plus a trainable low-rank update (Hu et al. 2021, Sec. 4.1, Eq. 3).

        h = W_0 x + b + (alpha / r) B A dropout(x)      A (r, d_in), B (d_out, r)

    W_0 and b stay frozen; only A and B train. B starts at zero, so the model is unchanged
    at the start; A is random: ``init="kaiming"`` (He-uniform with a = sqrt(5), the default
    of nn.Linear, of the authors' loralib and of peft) or ``"gaussian"`` (the paper's
    "random Gaussian", std 1/r as peft draws it). Conv1D stores W_0 as (d_in, d_out), the
    transpose of nn.Linear, hence ``fan_in_fan_out=True`` in peft; A and B keep nn.Linear's
    layout, the same shapes as peft's ``lora_A`` / ``lora_B``.

    forward: x (..., d_in) -> (..., d_out). ``merge()`` folds (alpha / r) (B A)^T into the
    Conv1D weight, after which the layer is a plain Conv1D with the same outputs.
    """

    def __init__(self, base: Conv1D, rank: int, alpha: float, dropout: float = 0.0,
                 init: str = "kaiming"):
        super().__init__()
        if not isinstance(base, Conv1D):
            raise TypeError(f"base must be transformers' Conv1D; got {type(base).__name__}")
        if rank < 1:
            raise ValueError(f"rank must be >= 1; got {rank}")
        if init not in ("kaiming", "gaussian"):
            raise ValueError(f"init must be 'kaiming' or 'gaussian'; got {init!r}")
        self.base = base
        for param in base.parameters():
            param.requires_grad_(False)
        d_in, d_out = base.weight.shape  # Conv1D: (in, out)
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(rank, d_in, **factory))  # (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(d_out, rank, **factory))  # (d_out, r)
        if init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        else:
            nn.init.normal_(self.lora_A, std=1.0 / rank)
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., d_in) -> (..., d_out)
        return self.base(x) + self.scaling * update

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) (B A)^T: the update in Conv1D's (d_in, d_out) layout."""
        return self.scaling * (self.lora_B @ self.lora_A).T

    @torch.no_grad()
    def merge(self) -> Conv1D:
        """A new Conv1D with W_0 + (alpha / r) (B A)^T: no extra cost at inference."""
        merged = Conv1D(self.base.nf, self.base.nx).to(self.base.weight.device,
                                                         self.base.weight.dtype)
        merged.weight.copy_(self.base.weight + self.delta_weight())
        merged.bias.copy_(self.base.bias)
        return merged


def add_lora(model: nn.Module, rank: int = 4, alpha: float = 8.0, dropout: float = 0.0,
             targets: Sequence[str] = ("c_attn",), init: str = "kaiming",
             ) -> dict[str, LoRAConv1D]:
    """Wrap every attention projection named in ``targets`` in a LoRAConv1D, in place, and
    freeze every other parameter of ``model``.

    ``targets`` are attribute names of GPT2Attention ("c_attn", "c_proj"). Only the attention
    projections are wrapped: the MLP has a ``c_proj`` too (``mlp.c_proj``), which peft's
    suffix match ``target_modules=["c_proj"]`` would also catch (``"attn.c_proj"`` does not).
    Parameters that should stay trainable (a new head) are unfrozen by the caller.
    Returns: {module name: LoRAConv1D}.
    """
    unknown = set(targets) - set(LORA_TARGETS)
    if unknown or not targets:
        raise ValueError(f"targets must be a non-empty subset of {LORA_TARGETS}; got "
                         f"{list(targets)}")
    for param in model.parameters():
        param.requires_grad_(False)
    wrapped = {}
    attention_modules = [(name, m) for name, m in model.named_modules()
                         if type(m).__name__ == "GPT2Attention"]
    for name, attention in attention_modules:
        for target in targets:
            lora = LoRAConv1D(getattr(attention, target), rank, alpha, dropout, init)
            setattr(attention, target, lora)
            wrapped[f"{name}.{target}"] = lora
    return wrapped


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The LoRA matrices of ``model`` by name (``...lora_A`` / ``...lora_B``)."""
    return {name: p for name, p in model.named_parameters()
            if name.endswith(("lora_A", "lora_B"))}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRAConv1D of ``model`` (in place) by its merged Conv1D; returns model."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRAConv1D):
                setattr(module, child_name, child.merge())
    return model


def as_peft_model(base: nn.Module, wrapped: dict[str, LoRAConv1D], init: str = "kaiming"):
    """peft's LoRA on a copy of ``base`` (a model *without* our LoRA) with our A and B copied
    in: ``LoraConfig(target_modules=[...], r, lora_alpha, fan_in_fan_out=True)``.

    Inputs: base - the model before ``add_lora`` (it is deep-copied, not changed);
            wrapped - what ``add_lora`` returned for a copy of the same model.
    Returns: the PeftModel (same dtype and device).
    """
    from peft import LoraConfig, get_peft_model  # only this function needs peft

    first = next(iter(wrapped.values()))
    targets = sorted({f"attn.{name.rsplit('.', 1)[1]}" for name in wrapped})
    config = LoraConfig(target_modules=targets, r=first.rank, lora_alpha=first.alpha,
                        lora_dropout=first.dropout.p, fan_in_fan_out=True,
                        init_lora_weights=True if init == "kaiming" else "gaussian")
    twin = get_peft_model(copy.deepcopy(base), config)
    modules = dict(twin.base_model.model.named_modules())
    with torch.no_grad():
        for name, ours in wrapped.items():
            theirs = modules[name]
            theirs.lora_A["default"].weight.copy_(ours.lora_A)
            theirs.lora_B["default"].weight.copy_(ours.lora_B)
    return twin


def make_contains_batch(n: int, max_len: int, word_ids: torch.Tensor, trigger_id: int,
                        generator: torch.Generator, min_len: int = 4,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generated task: does the sequence contain the trigger token? (labels balanced)

    Each sequence has ``min_len``..``max_len`` tokens drawn from ``word_ids`` (never the
    trigger); in half of them (label 1) one position, anywhere, becomes the trigger. Right
    padding with PAD_ID.
    Returns: input_ids (n, max_len), attention_mask (n, max_len), labels (n,) int64.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len; got {min_len}, {max_len}")
    if trigger_id in word_ids.tolist():
        raise ValueError(f"the trigger {trigger_id} must not be one of the word ids")
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    words = word_ids[torch.randint(len(word_ids), (n, max_len), generator=generator)]
    labels = torch.randint(0, 2, (n,), generator=generator)
    where = (torch.rand(n, generator=generator) * lengths).long()  # a position < length
    rows = torch.arange(n)
    words[rows[labels == 1], where[labels == 1]] = trigger_id
    mask = (torch.arange(max_len) < lengths[:, None]).long()  # (n, max_len)
    return words.masked_fill(mask == 0, PAD_ID), mask, labels


def task_ids(vocab_size: int, num_words: int = 12, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Word ids and a trigger id for the task: the toy letters, or random ids of a real
    vocabulary (never PAD_ID)."""
    if vocab_size == len(TOY_VOCAB):
        letters = torch.tensor([TOY_VOCAB.index(c) for c in "abcdefghijkl"[:num_words]])
        return letters, TOY_VOCAB.index("z")
    chosen = torch.randperm(vocab_size - 1, generator=torch.Generator().manual_seed(seed))
    chosen = chosen[: num_words + 1] + 1
    return chosen[:num_words], int(chosen[num_words])


def train_lora_classifier(head: LastTokenClassifier, word_ids: torch.Tensor, trigger_id: int,
                          steps: int = 200, batch_size: int = 32, lr: float = 5e-3,
                          max_len: int = 12, eval_every: int = 50, eval_size: int = 512,
                          seed: int = 0, progress: bool = False) -> dict:
    """Train the trainable parameters of ``head`` (LoRA matrices and the new score layer)
    with AdamW on fresh batches of the "contains" task; the rest stays frozen.

    Returns: {"accuracy" (held-out), "baseline" (majority label), "steps", "seconds",
             "first_loss", "last_loss", "trainable", "frozen", "history": {"step", "loss",
             "accuracy"}}.
    """
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError(f"steps, batch_size and eval_every must be >= 1; got {steps}, "
                         f"{batch_size}, {eval_every}")
    device = head.score.weight.device
    trainable = [p for p in head.parameters() if p.requires_grad]
    train_gen = torch.Generator().manual_seed(seed)
    held_out = make_contains_batch(eval_size, max_len, word_ids, trigger_id,
                                   torch.Generator().manual_seed(seed + 1_000_003))
    held_out = tuple(t.to(device) for t in held_out)
    baseline = float(max(held_out[2].float().mean(), 1 - held_out[2].float().mean()))
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    history: dict[str, list[float]] = {"step": [], "loss": [], "accuracy": []}
    losses: list[float] = []
    start = time.perf_counter()
    accuracy, step = 0.0, 0
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="LoRA fine-tuning"):
        head.train()
        ids, mask, labels = (t.to(device) for t in make_contains_batch(
            batch_size, max_len, word_ids, trigger_id, train_gen))
        loss = head(ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % eval_every == 0 or step == steps:
            head.eval()
            with torch.no_grad():
                logits = head(held_out[0], attention_mask=held_out[1]).logits
            accuracy = float((logits.argmax(-1) == held_out[2]).float().mean())
            window = losses[-eval_every:]
            history["step"].append(step)
            history["loss"].append(sum(window) / len(window))
            history["accuracy"].append(accuracy)
    head.eval()
    return {"accuracy": accuracy, "baseline": baseline, "steps": step,
            "seconds": time.perf_counter() - start, "first_loss": losses[0],
            "last_loss": losses[-1], "trainable": sum(p.numel() for p in trainable),
            "frozen": sum(p.numel() for p in head.parameters() if not p.requires_grad),
            "history": history}


# --------------------------------------------------------------------------------------
# 0. What the guide claims: Conv1D, tying, loss, cache, generate, processors, sizes
# --------------------------------------------------------------------------------------


def conv1d_is_a_transposed_linear(seed: int = 0) -> dict:
    """Conv1D(nf=out, nx=in) stores its weight as (in, out) and computes x W + b, which is
    F.linear(x, W^T, b): returns the weight's shape and the largest difference."""
    torch.manual_seed(seed)
    conv = Conv1D(6, 4).double()  # nf = 6 outputs, nx = 4 inputs
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        diff = conv(x) - F.linear(x, conv.weight.T, conv.bias)
    return {"weight_shape": tuple(conv.weight.shape), "diff": float(diff.abs().max())}


def tying_and_saving(directory: str | Path | None = None, seed: int = 0) -> dict:
    """lm_head.weight *is* transformer.wte.weight; the saved file holds it once; the tie is
    restored by from_pretrained; ``tie_word_embeddings=False`` gives two parameters."""
    model = toy_model(seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(directory or scratch)
        model.save_pretrained(folder)
        from safetensors import safe_open
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            keys = set(f.keys())
        again = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
        files = sorted(p.name for p in folder.iterdir())
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        diff = model(ids).logits - again(ids).logits
    untied = GPT2LMHeadModel(tiny_config(tie_word_embeddings=False))
    return {"tied": model.lm_head.weight is model.transformer.wte.weight,
            "files": files, "lm_head_saved": "lm_head.weight" in keys,
            "reloaded_tied": again.lm_head.weight is again.transformer.wte.weight,
            "reload_diff": float(diff.abs().max()),
            "untied_when_config_says_so":
                untied.lm_head.weight is not untied.transformer.wte.weight}


def loss_is_shifted_inside(seed: int = 0) -> dict:
    """``model(ids, labels=ids).loss`` = mean cross-entropy of logits[:, :-1] against
    ids[:, 1:]: the labels are shifted inside the model. Also returns the loss's dtype
    (ForCausalLMLoss computes in float32 even for a float64 model)."""
    model = toy_model(seed).double()
    ids = torch.randint(1, len(TOY_VOCAB), (2, 7), generator=torch.Generator().manual_seed(seed))
    labels = ids.clone()
    labels[1, :2] = -100  # ignored positions
    with torch.no_grad():
        out = model(ids, labels=labels)
        by_hand = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
    return {"diff": float((out.loss.double() - by_hand).abs()), "loss_dtype": out.loss.dtype}


@torch.no_grad()
def cache_growth(seed: int = 0) -> dict:
    """A DynamicCache after a prompt of T tokens holds (B, A, T, d) keys per layer; each step
    with one new token appends one position; the logits equal recomputing everything."""
    model = toy_model(seed).double()
    ids = torch.randint(1, len(TOY_VOCAB), (2, 5), generator=torch.Generator().manual_seed(seed))
    out = model(ids, use_cache=True)
    cache = out.cache
    shapes = [tuple(layer.keys.shape) for layer in cache.layers]
    next_ids = out.logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
    step = model(next_ids, cache=cache, use_cache=True)
    full = model(torch.cat([ids, next_ids], dim=1), use_cache=False)
    return {"class": type(cache).__name__, "prompt_shapes": shapes,
            "after_step": cache.get_seq_length(),
            "diff": float((step.logits[:, -1] - full.logits[:, -1]).abs().max())}


@torch.no_grad()
def left_padded_generation(seed: int = 0, max_new_tokens: int = 6) -> dict:
    """Greedy generate on a left-padded batch gives each prompt the tokens it gets alone,
    because generate builds position ids from the mask; the same batch through forward
    without position ids (0..T-1 for every row) gives other logits."""
    model = toy_model(seed).double()
    tokenizer = CharTokenizer()
    prompts = [tokenizer.encode("the cat"), tokenizer.encode("a dog sat")]
    ids, mask = pad_batch(prompts, side="left")
    batch = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                           do_sample=False, pad_token_id=PAD_ID)
    alone = [model.generate(torch.tensor([p]), max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=PAD_ID)[0, len(p):] for p in prompts]
    same = all(torch.equal(batch[i, ids.shape[1]:], alone[i]) for i in range(len(prompts)))
    short = torch.tensor([prompts[0]])
    plain = model(ids[:1], attention_mask=mask[:1]).logits[0, -1]
    positioned = model(ids[:1], attention_mask=mask[:1],
                       position_ids=positions_from_mask(mask[:1])).logits[0, -1]
    reference = model(short).logits[0, -1]
    return {"same_as_alone": same,
            "forward_without_positions_diff": float((plain - reference).abs().max()),
            "forward_with_positions_diff": float((positioned - reference).abs().max())}


def processor_order(seed: int = 0) -> dict:
    """The processors generate builds, in order, for a custom processor plus temperature,
    top-k and top-p sampling; and the top-k that ``do_sample=True`` alone brings (50)."""
    model = toy_model(seed)
    config = GenerationConfig(do_sample=True, temperature=0.7, top_k=5, top_p=0.9)
    config, _ = model._prepare_generation_config(config)
    processors = model._get_logits_processor(
        config, logits_processor=LogitsProcessorList([BanTokensLogitsProcessor([1])]))
    default, _ = model._prepare_generation_config(None, do_sample=True)
    return {"order": [type(p).__name__ for p in processors], "default_top_k": default.top_k}


def implementation_difference(seed: int = 0) -> float:
    """max |eager - sdpa| of the last hidden states, float64, a right-padded batch (real
    positions only)."""
    torch.manual_seed(seed)
    eager = GPT2Model(tiny_config()).double().eval()
    sdpa = GPT2Model(tiny_config(attn_implementation="sdpa")).double().eval()
    sdpa.load_state_dict(eager.state_dict())
    tokenizer = CharTokenizer()
    ids, mask = pad_batch([tokenizer.encode("the cat sat"), tokenizer.encode("a dog")])
    with torch.no_grad():
        a = eager(ids, attention_mask=mask).last_hidden_state
        b = sdpa(ids, attention_mask=mask).last_hidden_state
    return float((a - b)[mask.bool()].abs().max())


def gpt2_parameter_count(vocab_size: int = 50257, max_len: int = 1024, d_model: int = 768,
                         n_layers: int = 12) -> int:
    """Parameters of GPT2LMHeadModel with the head tied (counted once), by hand.

        embeddings (V + max_len) D
        per layer  2 * 2D (two LayerNorms) + (3D^2 + 3D) + (D^2 + D) + (4D^2 + 4D) + (4D^2 + D)
                   = 12 D^2 + 13 D
        final LN   2D
    """
    layer = 12 * d_model ** 2 + 13 * d_model
    return (vocab_size + max_len) * d_model + n_layers * layer + 2 * d_model


@functools.lru_cache(maxsize=1)
def gpt2_small_parameters() -> int:
    """GPT2LMHeadModel(GPT2Config()) built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config())
    return sum(p.numel() for p in model.parameters())  # tied: counted once


# --------------------------------------------------------------------------------------
# The guide's line numbers, checked against the installed transformers
# --------------------------------------------------------------------------------------


def transformers_root() -> Path:
    return Path(transformers.__file__).resolve().parent


def resolve_source(path: str) -> Path | None:
    """A guide's file name -> the installed file: a path with a folder is relative to the
    transformers package; a bare name is looked up in models/gpt2/, then the package root."""
    root = transformers_root()
    candidates = [root / path] if "/" in path else [root / "models" / "gpt2" / path, root / path]
    return next((c for c in candidates if c.is_file()), None)


def guide_locations(guides: Sequence[str | Path] = GUIDES) -> list[GuideLocation]:
    """Every ``file.py:N`` of the guide with the code span before it (utils/guides.py)."""
    return read_guide_locations(guides)


def check_guide_line_numbers(guides: Sequence[str | Path] = GUIDES) -> list[str]:
    """Check every ``file.py:LINE`` quoted in the guide against the installed transformers.

    For each location: the file exists, the line (and range end) exists, and the line
    contains the code span written just before the location. A range must not run past the
    end of the definition that starts on its first line. The rules and the parser are those
    of ``utils.guides.check_guide``; bare names resolve in models/gpt2/.
    Returns: a list of problems, empty when every location holds; the first entry names a
             version mismatch when transformers is not the version the guide was read in.
    """
    problems = []
    if transformers.__version__ != GUIDE_VERSION:
        problems.append(f"the guide quotes transformers {GUIDE_VERSION}; installed is "
                        f"{transformers.__version__}, so line numbers may differ")
    for guide in guides:
        problems += check_guide(guide, resolve_source, str(transformers_root()))
    return problems


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict:
    """Check the reading's claims, then the four modifications of transformers' GPT-2.

    Returns: a flat dict of the measured numbers (and a few lists).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=TASKS, epochs=None, batch_size=32, lr=5e-3,
                    out="runs/09_GPT/l4_hf", counts_steps=True, threads=1)
    set_help(parser,
        dataset=("generated task of part 4: contains (does the sequence contain the "
                 "trigger token?); default: %(default)s"),
    )
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a GPT-2 directory in transformers' layout (config.json, weights, "
                             "tokenizer files): parts 1-4 run on its weights (default: tiny "
                             "random models, no download)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT,
                        help="prompt of parts 1 and 2 (default: %(default)r)")
    parser.add_argument("--ban", nargs="+", default=None, metavar="TEXT",
                        help="strings whose tokens part 1 bans (default: the tokens the "
                             "unconstrained greedy continuation starts with)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=12,
                        help="tokens generated in part 1 (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=200,
                        help="LoRA fine-tuning steps of part 4 (default: %(default)s)")
    parser.add_argument("--rank", type=positive_int, default=4,
                        help="LoRA rank r (default: %(default)s)")
    parser.add_argument("--alpha", type=positive_float, default=8.0,
                        help="LoRA alpha; the update is scaled by alpha / r (default: "
                             "%(default)s)")
    parser.add_argument("--lora-dropout", type=probability, default=0.0,
                        help="dropout on the LoRA branch's input (default: %(default)s)")
    parser.add_argument("--lora-targets", nargs="+", choices=LORA_TARGETS, default=["c_attn"],
                        help="attention projections that get LoRA (default: c_attn)")
    parser.add_argument("--max-len", type=positive_int, default=12,
                        help="most tokens of a generated sequence of part 4, >= 4 (default: "
                             "%(default)s)")
    parser.add_argument("--skip-claims", action="store_true",
                        help="skip part 0 (the checks of the reading's claims)")
    args = parse_args(parser, argv)
    if args.max_len < 4:
        parser.error(f"argument --max-len: must be >= 4, got {args.max_len}")
    if args.checkpoint is not None:
        try:
            check_checkpoint_dir(args.checkpoint)
        except CheckpointError as err:
            parser.error(f"argument --checkpoint: {err}")
    seed_everything(args.seed)
    out_dir = prepare_out_dir(args.out)
    device = get_device(args.device)
    with torch_threads(args.threads):
        return _run(args, out_dir, device)


def _run(args: argparse.Namespace, out_dir: Path, device: torch.device) -> dict:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}")
    start = time.perf_counter()
    results: dict = {} if args.skip_claims else reading_claims(args.seed)
    if args.checkpoint is not None:
        model, tokenizer = load_checkpoint(args.checkpoint)
        source = f"checkpoint {args.checkpoint}"
    else:
        model, tokenizer = toy_model(args.seed), CharTokenizer()
        source = "a tiny random GPT2LMHeadModel (its continuations are noise)"
    model.to(device)
    try:
        prompt = torch.tensor([tokenizer.encode(args.prompt)], device=device)
    except ValueError as err:
        raise SystemExit(f"--prompt: {err}") from None

    print(f"\n1. a logits processor that bans tokens, through generate; {source}")
    plain = generate_banning(model, prompt, [], args.max_new_tokens)[0, prompt.shape[1]:]
    if args.ban:
        banned = sorted({i for text in args.ban for i in tokenizer.encode(text)})
    else:
        banned = list(dict.fromkeys(plain.tolist()))[:3]
    constrained = generate_banning(model, prompt, banned, args.max_new_tokens)[0, prompt.shape[1]:]
    print(f"  banned ids {banned} = {tokenizer.convert_ids_to_tokens(banned)}")
    for name, ids in (("greedy", plain), ("greedy, banned", constrained)):
        print(f"  {name + ':':16s} {args.prompt!r} + "
              + "|".join(tokenizer.convert_ids_to_tokens(ids.tolist())))
    results.update(banned=banned, plain=plain.tolist(), constrained=constrained.tolist(),
                   banned_generated=sum(int(t) in banned for t in constrained))

    config = model.config
    print(f"\n2. attention, {config.n_layer} layers x {config.n_head} heads, for {args.prompt!r}")
    maps, tokens = prompt_attention(model, tokenizer, args.prompt)
    path = out_dir / "attention_grid.png"
    plot_attention_grid(maps, [t.replace("Ġ", "_") for t in tokens], path,
                        title=f"GPT-2 attention: {args.prompt[:60]}")
    previous = maps.new_zeros(()) if maps.shape[-1] < 2 else maps.diagonal(-1, -2, -1).mean()
    print(f"  maps {tuple(maps.shape)}; weight above the diagonal "
          f"{float(maps.triu(1).abs().max()):.1e} (causal); mean weight on the token itself "
          f"{float(maps.diagonal(0, -2, -1).mean()):.2f}, on the one before {float(previous):.2f}")
    print(f"  written {path}")
    results.update(attention_shape=tuple(maps.shape), attention_png=str(path))

    print("\n3. sequence classification from the last real token")
    r = classification_head_check(model.transformer, tokenizer, args.seed)
    print(f"  token chosen: ours {r['ours_right']} (right padding), {r['ours_left']} (left); "
          f"GPT2ForSequenceClassification {r['hf_right']} / {r['hf_left']}")
    print(f"  logits vs GPT2ForSequenceClassification: right padding max|diff| "
          f"{r['right_diff']:.1e}; left padding, same position ids {r['left_diff']:.1e}; "
          f"left padding, its own position ids 0..T-1, vs the unpadded sequence "
          f"{r['hf_left_unpadded_diff']:.1e} (ours {r['ours_left_unpadded_diff']:.1e})")
    results.update({f"head_{k}": v for k, v in r.items()})

    print(f"\n4. LoRA on {', '.join(args.lora_targets)} (r = {args.rank}, alpha = {args.alpha:g}), "
          f"task {args.dataset!r}")
    base = model.transformer
    torch.manual_seed(args.seed)
    head = LastTokenClassifier(copy.deepcopy(base), num_labels=2)
    wrapped = add_lora(head.transformer, args.rank, args.alpha, args.lora_dropout,
                       args.lora_targets)
    head.score.weight.requires_grad_(True)  # the new head trains too (peft: modules_to_save)
    frozen_before = {n: p.detach().clone() for n, p in head.transformer.named_parameters()
                     if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in lora_parameters(head).items()}
    word_ids, trigger = task_ids(config.vocab_size, seed=args.seed)
    r = train_lora_classifier(head, word_ids.to(device), trigger, steps=args.steps,
                              batch_size=args.batch_size, lr=args.lr, max_len=args.max_len,
                              seed=args.seed, progress=args.progress)
    unchanged = all(torch.equal(p, frozen_before[n]) for n, p in
                    head.transformer.named_parameters() if n in frozen_before)
    moved = all(not torch.equal(p, lora_before[n]) for n, p in lora_parameters(head).items())
    ids, mask, _ = (t.to(device) for t in make_contains_batch(
        64, args.max_len, word_ids, trigger, torch.Generator().manual_seed(args.seed + 5)))
    with torch.no_grad():
        before_merge = head(ids, attention_mask=mask).logits
        merge_lora(head.transformer)
        after_merge = head(ids, attention_mask=mask).logits
    merge_diff = float((before_merge - after_merge).abs().max())
    print(f"  {r['trainable']:,} trainable parameters ({len(wrapped)} LoRA pairs + the score "
          f"layer), {r['frozen']:,} frozen; lr {args.lr:g}")
    print(f"  held-out accuracy {r['accuracy']:.3f} vs majority baseline {r['baseline']:.3f} "
          f"after {r['steps']} steps ({r['seconds']:.1f} s); loss {r['first_loss']:.3f} -> "
          f"{r['last_loss']:.3f}")
    print(f"  base unchanged: {unchanged}; every LoRA matrix changed: {moved}; merged W + "
          f"(alpha/r) (BA)^T vs unmerged max|diff| {merge_diff:.1e}")
    plot_curves({"held-out accuracy": r["history"]["accuracy"],
                 "majority baseline": [r["baseline"]] * len(r["history"]["step"]),
                 "train loss": r["history"]["loss"]},
                path=out_dir / "lora_curves.png", xlabel="evaluation (every 50 steps)",
                title=f"LoRA fine-tuning ({args.dataset})")
    results.update({f"lora_{k}": v for k, v in r.items() if k != "history"})
    results.update(lora_history=r["history"], lora_base_unchanged=unchanged,
                   lora_all_changed=moved, lora_merge_diff=merge_diff)
    results["seconds"] = time.perf_counter() - start
    print(f"\ndone in {results['seconds']:.1f} s; pictures in {out_dir}")
    return results


@torch.no_grad()
def classification_head_check(transformer: GPT2Model, tokenizer, seed: int = 0) -> dict:
    """Part 3 on a copy of ``transformer``: our head against GPT2ForSequenceClassification
    with the same weights, on a right-padded and a left-padded batch of two prompts."""
    torch.manual_seed(seed)
    head = LastTokenClassifier(copy.deepcopy(transformer), num_labels=3).eval()
    reference = as_gpt2_for_sequence_classification(head)
    pad = tokenizer.pad_token_id
    reference.config.pad_token_id = pad
    device = head.score.weight.device
    texts = [tokenizer.encode(text) for text in ("the cat sat on the mat", "a dog")]
    out: dict = {}
    for side in ("right", "left"):
        ids, mask = (t.to(device) for t in pad_batch(texts, side, pad))
        positions = positions_from_mask(mask)
        ours = head(ids, attention_mask=mask).logits
        theirs = reference(ids, attention_mask=mask, position_ids=positions).logits
        out[f"ours_{side}"] = last_token_index(mask).tolist()
        out[f"hf_{side}"] = hf_last_token_index(ids, pad).tolist()
        out[f"{side}_diff"] = float((ours - theirs).abs().max())
        if side == "left":
            alone = torch.tensor([texts[1]], device=device)
            single = head(alone).logits[0]
            out["ours_left_unpadded_diff"] = float((ours[1] - single).abs().max())
            hf_own = reference(ids, attention_mask=mask).logits[1]
            out["hf_left_unpadded_diff"] = float((hf_own - single).abs().max())
    return out


def reading_claims(seed: int = 0) -> dict:
    """Part 0: every check of the reading's claims, printed; returns the numbers."""
    results: dict = {}
    print("\n0. the reading's claims (tiny random models)")
    problems = check_guide_line_numbers()
    results["guide_locations"] = len(guide_locations())
    results["guide_problems"] = problems
    print(f"  guide: {results['guide_locations']} quoted file:line locations, "
          f"{len(problems)} problems" + "".join(f"\n    {p}" for p in problems))
    r = conv1d_is_a_transposed_linear(seed)
    print(f"  Conv1D(nf=6, nx=4) weight {r['weight_shape']} (in, out); vs F.linear(x, W^T, b) "
          f"max|diff| {r['diff']:.1e}")
    results.update({f"conv1d_{k}": v for k, v in r.items()})
    r = tying_and_saving(seed=seed)
    print(f"  lm_head tied to wte: {r['tied']}; saved files {r['files']}; lm_head in the file: "
          f"{r['lm_head_saved']}; tied after reload: {r['reloaded_tied']} (logits max|diff| "
          f"{r['reload_diff']:.1e})")
    results.update({f"tying_{k}": v for k, v in r.items()})
    r = loss_is_shifted_inside(seed)
    print(f"  loss(labels=ids) vs cross-entropy(logits[:, :-1], ids[:, 1:]): |diff| "
          f"{r['diff']:.1e}; the loss is {str(r['loss_dtype']).replace('torch.', '')} for a "
          f"float64 model")
    results.update({f"loss_{k}": v for k, v in r.items()})
    r = cache_growth(seed)
    print(f"  {r['class']}: keys per layer after 5 tokens {r['prompt_shapes'][0]}, after one "
          f"step {r['after_step']} positions; cached vs recomputed logits max|diff| "
          f"{r['diff']:.1e}")
    results.update({f"cache_{k}": v for k, v in r.items()})
    r = left_padded_generation(seed)
    print(f"  left-padded batch, greedy: same tokens as each prompt alone: {r['same_as_alone']}; "
          f"forward with positions 0..T-1 vs unpadded max|diff| "
          f"{r['forward_without_positions_diff']:.1e}, with positions from the mask "
          f"{r['forward_with_positions_diff']:.1e}")
    results.update({f"generate_{k}": v for k, v in r.items()})
    r = processor_order(seed)
    print(f"  processors, in order: {' -> '.join(r['order'])}; do_sample=True alone: top_k "
          f"{r['default_top_k']}")
    results.update({f"processors_{k}": v for k, v in r.items()})
    results["sdpa_vs_eager"] = implementation_difference(seed)
    print(f"  sdpa vs eager, float64, padded batch: max|diff| {results['sdpa_vs_eager']:.1e}")
    results["params_small"] = gpt2_parameter_count()
    results["params_small_meta"] = gpt2_small_parameters()
    print(f"  GPT-2 small parameters: {results['params_small_meta']:,} (by hand "
          f"{results['params_small']:,})")
    return results


if __name__ == "__main__":
    main()
