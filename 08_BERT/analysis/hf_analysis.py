"""transformers' BERT, read and modified (Level 4).

Part of lesson 08's code reading: ``08_BERT/analysis/README.md`` walks through
``transformers/models/bert/`` with line numbers, and ``check_guide_line_numbers`` below
checks every one of them against the installed version (the checker is
``utils/guides.py``). This script checks what the reading claims, then does the seed's
three modification tasks on transformers' own classes, built from small random configs
(no download):

0. The reading's claims: the mask each attention implementation receives (eager: an
   additive float mask; sdpa: a boolean mask, or none at all; flash: the 2-D mask), eager
   and sdpa computing the same function, a registered attention function that gets no mask
   unless a mask function is registered too, the tied decoder through
   ``save_pretrained`` / ``from_pretrained``, and the parameter counts of BERT-base/large.
1. Sentence embeddings: mean pooling over the attention mask (what sentence-embedding
   models do instead of the [CLS] vector), and cosine similarity between sentences.
2. Attention patterns: every layer's and head's attention for one sentence, drawn as a
   layers x heads grid under ``--out``.
3. A new task head: token classification on ``BertModel``, trained on a generated tagging
   task (``repeat``: is this token a repeat of an earlier one? ``digits``: is it a digit?)
   until it clearly beats the majority baseline.

``--checkpoint DIR`` runs 1-3 on real weights: a directory in transformers' layout
(``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, ``vocab.txt`` or
``tokenizer.json``), as a user has after one download on a connected machine.

Run from the repository root::

    python 08_BERT/analysis/hf_analysis.py                        # offline, seconds
    python 08_BERT/analysis/hf_analysis.py --dataset digits --steps 100
    python 08_BERT/analysis/hf_analysis.py --checkpoint ~/models/bert-base-uncased \\
        --sentences "A man is playing a guitar." "Someone plays the guitar." "A cat sleeps."
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    AttentionInterface,
    AttentionMaskInterface,
    BertConfig,
    BertForMaskedLM,
    BertForTokenClassification,
    BertModel,
    BertTokenizer,
)
from transformers.masking_utils import create_bidirectional_mask, eager_mask
from transformers.modeling_outputs import TokenClassifierOutput
from transformers.models.bert.modeling_bert import eager_attention_forward

from utils.cli import (
    add_common_args,
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
    set_help,
)
from utils.guides import GuideLocation, check_guide, read_guide_locations
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_curves, save_figure

GUIDE_VERSION = "5.25.0"  # the transformers version whose line numbers the guides quote
HERE = Path(__file__).resolve().parent
GUIDES = (HERE / "README.md", HERE.parents[1] / "docs" / "03_Reading_HuggingFace_Code.md")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # our vocabularies' first ids
DEFAULT_SENTENCES = (
    "the cat sat on the mat .",
    "a cat was sitting on the mat .",
    "stock markets fell sharply on monday .",
    "the cat sat on the mat .",
)
IGNORE_INDEX = -100  # label of positions without a target ([CLS], [SEP], padding)
TASKS = ("repeat", "digits")


# --------------------------------------------------------------------------------------
# Models and tokenizers: tiny random ones, or a checkpoint directory
# --------------------------------------------------------------------------------------


def tiny_config(vocab_size: int, attn_implementation: str = "eager", dropout: float = 0.0,
                **overrides) -> BertConfig:
    """A small BertConfig: L = 2, H = 32, A = 4, d_ff = 64, 64 positions.

    Inputs:  vocab_size; attn_implementation ("eager", "sdpa", ...); dropout - hidden and
             attention-probability dropout; overrides - any other BertConfig field.
    """
    fields = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                  attn_implementation=attn_implementation)
    fields.update(overrides)
    return BertConfig(**fields)


def words_of(text: str) -> list[str]:
    """Lower-cased words and punctuation marks, split as BERT's basic tokenizer splits ASCII."""
    return re.findall(r"\w+|[^\w\s]", text.lower())


def toy_tokenizer(sentences: Sequence[str]) -> BertTokenizer:
    """transformers' BertTokenizer over a vocabulary of the sentences' own words.

    The vocabulary is the special tokens, then every word and punctuation mark of the
    sentences, then the digits 0-9, so no word of these sentences becomes [UNK].
    """
    words = sorted({w for s in sentences for w in words_of(s)} | set("0123456789"))
    vocab = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})


def toy_model_and_tokenizer(sentences: Sequence[str], seed: int = 0,
                            attn_implementation: str = "eager") -> tuple[BertModel, BertTokenizer]:
    """A random tiny BertModel (eval mode) and a toy tokenizer for ``sentences``."""
    tokenizer = toy_tokenizer(sentences)
    torch.manual_seed(seed)
    model = BertModel(tiny_config(len(tokenizer.get_vocab()), attn_implementation))
    return model.eval(), tokenizer


class CheckpointError(ValueError):
    """A --checkpoint directory is missing or not in transformers' layout."""


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")


def check_checkpoint_dir(path: str | Path) -> Path:
    """Check that ``path`` holds a BERT checkpoint in transformers' layout; return it.

    Raises: CheckpointError naming what is missing (the files a download writes), or saying
            that config.json is not BERT's.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES[::2]))
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise CheckpointError(
            f"{directory} is not a checkpoint in transformers' layout: missing "
            f"{'; '.join(missing)}. On a connected machine, `BertModel.from_pretrained(name)"
            ".save_pretrained(DIR)` and `BertTokenizer.from_pretrained(name).save_pretrained(DIR)`"
            " (or a copy of the hub's files) give such a directory.")
    try:
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    except (ValueError, AttributeError) as err:
        raise CheckpointError(f"{directory}/config.json is not a JSON object: {err}") from None
    if model_type != "bert":
        raise CheckpointError(f"{directory}/config.json describes a model of type "
                              f"{model_type!r}; this script reads BERT ('bert')")
    return directory


def load_checkpoint(path: str | Path, attn_implementation: str = "eager",
                    **model_kwargs) -> tuple[BertModel, BertTokenizer]:
    """BertModel and BertTokenizer from a checkpoint directory, offline (eval mode).

    A checkpoint of any BERT head class loads: ``from_pretrained`` strips the ``bert.``
    prefix of its keys and reports the head's weights as unexpected.
    """
    directory = check_checkpoint_dir(path)
    model = BertModel.from_pretrained(directory, local_files_only=True,
                                      attn_implementation=attn_implementation, **model_kwargs)
    tokenizer = BertTokenizer.from_pretrained(directory, local_files_only=True)
    return model.eval(), tokenizer


def encode(tokenizer: BertTokenizer, sentences: Sequence[str], max_length: int,
           device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Tokenize a batch: [CLS] ... [SEP], padded to the longest, truncated to max_length.

    Returns: {"input_ids", "token_type_ids", "attention_mask"}, each (B, T) int64.
    """
    batch = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


# --------------------------------------------------------------------------------------
# 1. Mean pooling and cosine similarity
# --------------------------------------------------------------------------------------


class MeanPooling(nn.Module):
    """The mean of the token vectors over the attention mask: a sentence embedding.

        e = sum_t m_t h_t / max(sum_t m_t, eps)          m_t = attention_mask[t] in {0, 1}

    Sentence-embedding models (Reimers and Gurevych 2019, Sentence-BERT, Sec. 3) pool this
    way; [CLS] and [SEP] count as tokens (their mask is 1), padding does not. Padded
    positions are zeroed with ``masked_fill`` rather than multiplied by 0, so that even a
    non-finite vector at a padded position cannot leak into the mean.

    forward: last_hidden_state (B, T, H), attention_mask (B, T) -> (B, H).
    """

    def __init__(self, eps: float = 1e-9):
        super().__init__()
        self.eps = eps

    def forward(self, last_hidden_state: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        if last_hidden_state.ndim != 3 or attention_mask.shape != last_hidden_state.shape[:2]:
            raise ValueError(f"expected hidden states (B, T, H) and a mask (B, T); got "
                             f"{tuple(last_hidden_state.shape)} and {tuple(attention_mask.shape)}")
        keep = attention_mask.bool().unsqueeze(-1)  # (B, T, 1)
        total = last_hidden_state.masked_fill(~keep, 0.0).sum(dim=1)  # (B, H)
        count = keep.sum(dim=1).to(last_hidden_state.dtype).clamp(min=self.eps)  # (B, 1)
        return total / count


def cosine_similarity_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """cos(e_i, e_j) for every pair of rows: (N, H) -> (N, N)."""
    unit = F.normalize(embeddings, dim=-1)
    return unit @ unit.T


@torch.no_grad()
def sentence_embeddings(model: BertModel, tokenizer: BertTokenizer, sentences: Sequence[str],
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pooled embeddings and the pooler's [CLS] vectors of ``sentences``.

    Returns: (mean (N, H), cls_pooler (N, H) = tanh(W h_[CLS] + b), BERT's own pooling).
    """
    batch = encode(tokenizer, sentences, model.config.max_position_embeddings, model.device)
    out = model.eval()(**batch)
    return MeanPooling()(out.last_hidden_state, batch["attention_mask"]), out.pooler_output


# --------------------------------------------------------------------------------------
# 2. Attention patterns, layers x heads
# --------------------------------------------------------------------------------------


@torch.no_grad()
def attention_maps(model: BertModel, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None,
                   token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Every layer's attention probabilities: (B, T) ids -> (B, L, A, T, T).

    Only the eager implementation materialises the probabilities (sdpa returns None for
    them, and ``output_attentions=True`` then gives an empty tuple), so a model built
    with another implementation is switched to eager for this call and back afterwards.
    Runs in eval mode (no attention dropout). Row q of map [b, l, a] is how query q spreads
    over the keys: it sums to 1 over the real tokens and is 0 on padded keys.
    """
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        out = model.eval()(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids, output_attentions=True)
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)
    return torch.stack(out.attentions, dim=1)  # L x (B, A, T, T) -> (B, L, A, T, T)


def sentence_attention(model: BertModel, tokenizer: BertTokenizer, sentence: str,
                       ) -> tuple[torch.Tensor, list[str]]:
    """The attention maps of one sentence, (L, A, T, T), and its T tokens."""
    batch = encode(tokenizer, [sentence], model.config.max_position_embeddings, model.device)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    return attention_maps(model, **batch)[0], tokens


def plot_attention_grid(weights: torch.Tensor, tokens: Sequence[str] | None = None,
                        path: str | Path | None = None, title: str | None = None) -> Figure:
    """Draw (L, A, T, T) attention maps as a grid: one row per layer, one column per head.

    Colour range 0..1 for every panel, so heads can be compared. Token labels go under the
    bottom row and beside the first column. Returns the Figure (its Axes in row-major order,
    each holding one AxesImage); saves a PNG when ``path`` is given.
    """
    arr = weights.detach().float().cpu().numpy()
    if arr.ndim != 4 or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"weights: expected (layers, heads, T, T); got shape {arr.shape}")
    layers, heads, length, _ = arr.shape
    if tokens is not None and len(tokens) != length:
        raise ValueError(f"tokens: expected {length}, got {len(tokens)}")
    panel = min(max(0.18 * length + 0.6, 1.2), 2.6)  # inches per panel
    fig = Figure(figsize=(panel * heads + 1.2, panel * layers + 0.8), layout="constrained")
    axes = fig.subplots(layers, heads, squeeze=False)
    image = None
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            image = ax.imshow(arr[layer, head], cmap="viridis", vmin=0.0, vmax=1.0,
                              interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
            if tokens is not None and layer == layers - 1:
                ax.set_xticks(range(length), tokens, rotation=90, fontsize=6)
            if tokens is not None and head == 0:
                ax.set_yticks(range(length), tokens, fontsize=6)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention probability")
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------------------
# 3. A new task head: token classification on BertModel
# --------------------------------------------------------------------------------------


class BertTokenTagger(nn.Module):
    """A token-classification head on transformers' ``BertModel``: one label per token.

        logits_t = W dropout(h_t) + b          h_t = BertModel(x).last_hidden_state[:, t]

    The paper's token-level fine-tuning (Devlin et al. 2018, Sec. 4.3 and 5.3, Fig. 4d): the
    final hidden vector of each token goes through a linear layer. The loss is the
    cross-entropy over labelled positions only (label -100 elsewhere: [CLS], [SEP],
    padding, or word continuations). Same parameter names as transformers'
    ``BertForTokenClassification`` (``bert.*``, ``classifier.*``), so the two load each
    other's state dicts (``as_bert_for_token_classification``).

    Inputs (constructor): bert - a BertModel, best built with ``add_pooling_layer=False``
    (the head does not use the pooler); num_labels >= 2; dropout.
    forward: input_ids (B, T), attention_mask (B, T), token_type_ids (B, T), labels (B, T)
    -> TokenClassifierOutput(loss, logits (B, T, num_labels)).
    """

    def __init__(self, bert: BertModel, num_labels: int, dropout: float = 0.1):
        super().__init__()
        if not isinstance(bert, BertModel):
            raise TypeError(f"bert must be a transformers BertModel; got {type(bert).__name__}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2; got {num_labels}")
        self.bert = bert
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bert.config.hidden_size, num_labels)
        # transformers' initialisation of a Linear layer: N(0, initializer_range), bias 0
        nn.init.normal_(self.classifier.weight, std=bert.config.initializer_range)
        nn.init.zeros_(self.classifier.bias)
        self.classifier.to(bert.device, bert.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> TokenClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state  # (B, T, H)
        logits = self.classifier(self.dropout(hidden))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                   ignore_index=IGNORE_INDEX)
        return TokenClassifierOutput(loss=loss, logits=logits)


def as_bert_for_token_classification(tagger: BertTokenTagger) -> BertForTokenClassification:
    """The same weights in transformers' ``BertForTokenClassification`` (strict load)."""
    config = BertConfig(**tagger.bert.config.to_dict())
    config.num_labels = tagger.classifier.out_features
    config._attn_implementation = tagger.bert.config._attn_implementation
    model = BertForTokenClassification(config).to(tagger.bert.device, tagger.bert.dtype)
    model.load_state_dict(tagger.state_dict(), strict=True)
    return model


@dataclass(frozen=True)
class TaskVocabulary:
    """The token ids a generated tagging task draws from."""

    cls_id: int
    sep_id: int
    pad_id: int
    word_ids: torch.Tensor  # (K,) int64: ordinary words
    digit_ids: torch.Tensor  # (10,) int64: the tokens "0" ... "9"
    vocab_size: int


def tagger_config(vocab_size: int) -> BertConfig:
    """The tiny config of the tagging task: H = 64, d_ff = 128 (L = 2, A = 4), sdpa.

    With H = 32 the "repeat" task is learnt at some seeds after 400-600 steps and at others
    not within 800; with H = 64 every seed tried (0-5) passed 99 % within 200 steps.
    """
    return tiny_config(vocab_size, "sdpa", hidden_size=64, intermediate_size=128)


def toy_task_vocabulary(num_words: int = 12) -> TaskVocabulary:
    """Ids for a tiny random model: 5 special tokens, ``num_words`` words, 10 digits."""
    first_word = len(SPECIAL_TOKENS)
    words = torch.arange(first_word, first_word + num_words)
    digits = torch.arange(first_word + num_words, first_word + num_words + 10)
    return TaskVocabulary(cls_id=2, sep_id=3, pad_id=0, word_ids=words, digit_ids=digits,
                          vocab_size=first_word + num_words + 10)


def checkpoint_task_vocabulary(tokenizer: BertTokenizer, num_words: int = 12,
                               seed: int = 0) -> TaskVocabulary:
    """Ids for a real vocabulary: ``num_words`` whole alphabetic words (fewer if the
    vocabulary has fewer, at least 4) and the digits."""
    vocab = tokenizer.get_vocab()
    missing = [d for d in "0123456789" if d not in vocab]
    if missing:
        raise ValueError(f"the vocabulary has no token for the digits {missing}")
    words = sorted(i for t, i in vocab.items() if t.isalpha() and t.isascii() and len(t) >= 2)
    if len(words) < 4:
        raise ValueError(f"the vocabulary has only {len(words)} whole words; need at least 4")
    pick = torch.randperm(len(words), generator=torch.Generator().manual_seed(seed))
    pick = pick[:min(num_words, len(words))]
    return TaskVocabulary(cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id,
                          pad_id=tokenizer.pad_token_id,
                          word_ids=torch.tensor(words)[pick.sort().values],
                          digit_ids=torch.tensor([vocab[d] for d in "0123456789"]),
                          vocab_size=len(vocab))


def task_token_names(vocab: TaskVocabulary, input_ids: torch.Tensor,
                     tokenizer: BertTokenizer | None = None) -> list[str]:
    """Readable tokens of one generated sequence: the tokenizer's, or for the toy
    vocabulary [CLS], [SEP], [PAD], w0..w11 and the digits."""
    ids = input_ids.tolist()
    if tokenizer is not None:
        return tokenizer.convert_ids_to_tokens(ids)
    names = {vocab.cls_id: "[CLS]", vocab.sep_id: "[SEP]", vocab.pad_id: "[PAD]"}
    names.update({int(i): f"w{k}" for k, i in enumerate(vocab.word_ids)})
    names.update({int(i): str(k) for k, i in enumerate(vocab.digit_ids)})
    return [names.get(i, f"<{i}>") for i in ids]


def make_tagging_batch(task: str, vocab: TaskVocabulary, n: int, max_len: int,
                       generator: torch.Generator, digit_share: float = 0.4,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n sequences of a generated token-tagging task, with [CLS], [SEP] and padding.

    Each sequence has 6..max_len tokens between [CLS] and [SEP] (lengths vary, so every
    batch has padding). Labels, one per token:
      "repeat": 1 if the same word occurs earlier in the sequence, else 0. Needs context:
                no single token's embedding tells it, attention between tokens does.
      "digits": 1 for a digit token, 0 for a word (``digit_share`` of the tokens are
                digits). A per-token property: the embedding alone suffices.
    Returns: input_ids (n, max_len + 2), attention_mask (n, max_len + 2) with 1 = real,
             labels (n, max_len + 2) with -100 at [CLS], [SEP] and padding.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    if max_len < 6:
        raise ValueError(f"max_len must be >= 6; got {max_len}")
    lengths = torch.randint(min(6, max_len), max_len + 1, (n,), generator=generator)
    real = torch.arange(max_len)[None, :] < lengths[:, None]  # (n, max_len)
    words = vocab.word_ids[torch.randint(len(vocab.word_ids), (n, max_len), generator=generator)]
    if task == "repeat":
        same = words[:, :, None] == words[:, None, :]  # (n, t, s): token t equals token s
        earlier = torch.ones(max_len, max_len, dtype=torch.bool).tril(-1)  # s < t
        labels = (same & earlier).any(dim=-1)  # (n, max_len)
        tokens = words
    else:
        labels = torch.rand(n, max_len, generator=generator) < digit_share
        digits = vocab.digit_ids[torch.randint(10, (n, max_len), generator=generator)]
        tokens = torch.where(labels, digits, words)
    input_ids = torch.full((n, max_len + 2), vocab.pad_id, dtype=torch.long)
    input_ids[:, 0] = vocab.cls_id
    input_ids[:, 1:-1] = torch.where(real, tokens, vocab.pad_id)
    input_ids[torch.arange(n), lengths + 1] = vocab.sep_id
    attention_mask = (torch.arange(max_len + 2)[None, :] < (lengths + 2)[:, None]).long()
    target = torch.full((n, max_len + 2), IGNORE_INDEX, dtype=torch.long)
    target[:, 1:-1] = torch.where(real, labels.long(), IGNORE_INDEX)
    return input_ids, attention_mask, target


def majority_baseline(labels: torch.Tensor) -> float:
    """Accuracy of always predicting the most frequent label (labelled positions only)."""
    kept = labels[labels != IGNORE_INDEX]
    return float(torch.bincount(kept).max()) / kept.numel()


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of labelled positions whose arg-max label is right."""
    kept = labels != IGNORE_INDEX
    return float((logits.argmax(-1)[kept] == labels[kept]).float().mean())


def adamw_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: decay on weight matrices, none on biases and LayerNorms
    (the original BERT code's rule)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train_tagger(tagger: BertTokenTagger, task: str, vocab: TaskVocabulary, steps: int = 400,
                 batch_size: int = 64, lr: float = 1e-3, max_len: int = 12,
                 eval_every: int = 50, stop_accuracy: float | None = 0.98,
                 eval_size: int = 512, seed: int = 0, progress: bool = False) -> dict:
    """Train the tagger with AdamW on fresh generated batches; stop early at a target.

    Every ``eval_every`` steps (and after the last) the accuracy on a fixed held-out set of
    ``eval_size`` sequences is measured; training stops once it reaches
    ``stop_accuracy`` (None: run all steps).
    Returns: {"accuracy", "baseline" (majority label on the held-out set), "steps",
             "seconds", "first_loss", "last_loss", "history": {"step", "loss", "accuracy"}}.
    """
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError(f"steps, batch_size and eval_every must be >= 1; got {steps}, "
                         f"{batch_size}, {eval_every}")
    device = next(tagger.parameters()).device
    train_gen = torch.Generator().manual_seed(seed)
    held_out = make_tagging_batch(task, vocab, eval_size, max_len,
                                  torch.Generator().manual_seed(seed + 1_000_003))
    held_out = tuple(t.to(device) for t in held_out)
    baseline = majority_baseline(held_out[2])
    optimizer = torch.optim.AdamW(adamw_groups(tagger, 0.01), lr=lr)
    history: dict[str, list[float]] = {"step": [], "loss": [], "accuracy": []}
    losses: list[float] = []
    start = time.perf_counter()
    accuracy, step = 0.0, 0
    for step in tqdm(range(1, steps + 1), disable=not progress, desc=f"tagger ({task})"):
        tagger.train()
        ids, mask, labels = (t.to(device) for t in
                             make_tagging_batch(task, vocab, batch_size, max_len, train_gen))
        loss = tagger(ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % eval_every == 0 or step == steps:
            tagger.eval()
            with torch.no_grad():
                logits = tagger(held_out[0], attention_mask=held_out[1]).logits
            accuracy = token_accuracy(logits, held_out[2])
            window = losses[-eval_every:]
            history["step"].append(step)
            history["loss"].append(sum(window) / len(window))
            history["accuracy"].append(accuracy)
            if stop_accuracy is not None and accuracy >= stop_accuracy:
                break
    tagger.eval()
    return {"accuracy": accuracy, "baseline": baseline, "steps": step,
            "seconds": time.perf_counter() - start, "first_loss": losses[0],
            "last_loss": losses[-1], "history": history}


# --------------------------------------------------------------------------------------
# 0. What the guide claims: masks, implementations, tying, saving, parameter counts
# --------------------------------------------------------------------------------------


def mask_forms(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32,
               hidden_size: int = 32) -> dict[str, torch.Tensor | None]:
    """The mask ``BertModel`` hands its attention layers, per implementation.

    ``create_bidirectional_mask`` (masking_utils) builds it from the (B, T) 0/1 mask and the
    config's ``_attn_implementation``. Returns {"eager", "sdpa", "flash_attention_2"}
    (the flash mask is only built, no flash kernel runs).
    """
    embeds = torch.zeros(*attention_mask.shape, hidden_size, dtype=dtype)  # only shape/dtype used
    out = {}
    for implementation in ("eager", "sdpa", "flash_attention_2"):
        config = tiny_config(8, hidden_size=hidden_size)
        config._attn_implementation = implementation
        out[implementation] = create_bidirectional_mask(config=config, inputs_embeds=embeds,
                                                        attention_mask=attention_mask)
    return out


def additive_mask_by_hand(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32,
                          ) -> torch.Tensor:
    """The classic "extended" attention mask: (B, T) 0/1 -> (B, 1, 1, T) additive.

        mask[b, 0, 0, k] = 0 where key k is real, the dtype's most negative number where it
        is padding; broadcast over heads (dim 1) and queries (dim 2), added to the scores.
    """
    keep = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)
    return torch.zeros(keep.shape, dtype=dtype).masked_fill(~keep, torch.finfo(dtype).min)


def padded_batch(vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two sequences of 7 tokens, the second padded after 4, with two segments."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(len(SPECIAL_TOKENS), vocab_size, (2, 7), generator=g)
    attention_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    token_type_ids = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0, 0]])
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask, token_type_ids


def implementation_differences(seed: int = 0) -> dict[str, float]:
    """Eager vs sdpa on the same weights, float64, with padding and two segments.

    Returns: {"sdpa_vs_eager": max |difference| of the last hidden states at real tokens,
             "sdpa_attentions": number of attention maps sdpa returns (0)}.
    """
    torch.manual_seed(seed)
    eager = BertModel(tiny_config(40, "eager")).double().eval()
    sdpa = BertModel(tiny_config(40, "sdpa")).double().eval()
    sdpa.load_state_dict(eager.state_dict())
    ids, mask, segments = padded_batch(40, seed)
    with torch.no_grad():
        a = eager(ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
        out = sdpa(ids, attention_mask=mask, token_type_ids=segments, output_attentions=True)
    real = mask.bool()
    return {"sdpa_vs_eager": float((a - out.last_hidden_state)[real].abs().max()),
            "sdpa_attentions": float(len(out.attentions or ()))}


def registered_attention_needs_a_mask_function(seed: int = 0) -> dict[str, float]:
    """Register a copy of eager attention under a new name, with and without a mask function.

    ``AttentionInterface.register`` makes the name selectable; the mask, however, is built by
    ``AttentionMaskInterface`` and a name it does not know gets ``attention_mask=None``: the
    padded keys then take part. Registering ``eager_mask`` for the name fixes it. Both
    registrations are removed afterwards.
    Returns: {"without_mask_function", "with_mask_function"}: max |difference| from eager
             at the real tokens of a padded batch (large, then 0).
    """
    name = "l4_copy_of_eager"
    torch.manual_seed(seed)
    reference = BertModel(tiny_config(40, "eager")).eval()
    ids, mask, segments = padded_batch(40, seed)
    out = {}
    try:
        AttentionInterface.register(name, eager_attention_forward)
        custom = BertModel(tiny_config(40, name)).eval()
        custom.load_state_dict(reference.state_dict())
        with torch.no_grad():
            expected = reference(ids, attention_mask=mask, token_type_ids=segments)
            for label in ("without_mask_function", "with_mask_function"):
                if label == "with_mask_function":
                    AttentionMaskInterface.register(name, eager_mask)
                got = custom(ids, attention_mask=mask, token_type_ids=segments)
                diff = got.last_hidden_state - expected.last_hidden_state
                out[label] = float(diff[mask.bool()].abs().max())
    finally:
        AttentionInterface._global_mapping.pop(name, None)
        AttentionMaskInterface._global_mapping.pop(name, None)
    return out


def tying_and_saving(directory: str | Path | None = None, seed: int = 0) -> dict:
    """The MLM decoder is the word-embedding matrix; what save_pretrained writes; loading back.

    Returns: {"tied" (decoder.weight is word_embeddings.weight), "tied_bias",
             "untied_when_config_says_so" (tie_word_embeddings=False), "files" (written),
             "decoder_key_saved" (is cls.predictions.decoder.weight in the file: no),
             "reloaded_tied", "reload_diff" (max |logit difference| after reloading),
             "base_from_head_diff" (BertModel loaded from the BertForMaskedLM directory:
             max |difference| of the embeddings matrix; the "bert." prefix is stripped)}.
    """
    from safetensors import safe_open

    torch.manual_seed(seed)
    model = BertForMaskedLM(tiny_config(40)).eval()
    decoder, embeddings = model.cls.predictions.decoder, model.bert.embeddings.word_embeddings
    untied = BertForMaskedLM(tiny_config(40, tie_word_embeddings=False))
    ids, mask, segments = padded_batch(40, seed)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the load report of `base` lists the MLM head
    try:
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(directory or scratch)
            model.save_pretrained(target)
            with safe_open(str(target / "model.safetensors"), "pt") as f:
                keys = set(f.keys())
            again = BertForMaskedLM.from_pretrained(target, local_files_only=True,
                                                    attn_implementation="eager")
            base = BertModel.from_pretrained(target, local_files_only=True)
            files = sorted(p.name for p in target.iterdir())
    finally:
        transformers.logging.set_verbosity(verbosity)
    with torch.no_grad():
        diff = (again(ids, attention_mask=mask, token_type_ids=segments).logits
                - model(ids, attention_mask=mask, token_type_ids=segments).logits)
        base_diff = base.embeddings.word_embeddings.weight - embeddings.weight
    return {
        "tied": decoder.weight is embeddings.weight,
        "tied_bias": decoder.bias is model.cls.predictions.bias,
        "untied_when_config_says_so": (untied.cls.predictions.decoder.weight
                                       is not untied.bert.embeddings.word_embeddings.weight),
        "files": files,
        "decoder_key_saved": "cls.predictions.decoder.weight" in keys,
        "saved_keys": len(keys),
        "reloaded_tied": again.cls.predictions.decoder.weight
                         is again.bert.embeddings.word_embeddings.weight,
        "reload_diff": float(diff.abs().max()),
        "base_from_head_diff": float(base_diff.abs().max()),
    }


def bert_parameter_count(vocab_size: int, hidden_size: int, num_layers: int, d_ff: int,
                         max_len: int = 512, n_segments: int = 2, pooler: bool = True) -> int:
    """Parameters of BertModel, by hand (theory.md derives the same sum).

        embeddings (V + P + S) H + 2H  (three tables, LayerNorm)
        per layer  4(H^2 + H) + 2H + (H d_ff + d_ff) + (d_ff H + H) + 2H
        pooler     H^2 + H
    """
    embeddings = (vocab_size + max_len + n_segments) * hidden_size + 2 * hidden_size
    layer = (4 * (hidden_size ** 2 + hidden_size) + 2 * hidden_size
             + 2 * hidden_size * d_ff + d_ff + hidden_size + 2 * hidden_size)
    return embeddings + num_layers * layer + (hidden_size ** 2 + hidden_size) * pooler


def parameter_counts() -> dict[str, int]:
    """BertModel parameter counts of BERT-base and BERT-large (built on the meta device:
    shapes only, no memory, no initialisation), and the same by hand."""
    return dict(_parameter_counts())


@functools.lru_cache(maxsize=1)
def _parameter_counts() -> dict[str, int]:
    out = {}
    for name, (layers, hidden, heads) in {"base": (12, 768, 12), "large": (24, 1024, 16)}.items():
        config = BertConfig(num_hidden_layers=layers, hidden_size=hidden,
                            num_attention_heads=heads, intermediate_size=4 * hidden)
        with torch.device("meta"):
            model = BertModel(config)
        out[name] = sum(p.numel() for p in model.parameters())
        out[f"{name}_by_hand"] = bert_parameter_count(config.vocab_size, hidden, layers,
                                                      4 * hidden)
    return out


# --------------------------------------------------------------------------------------
# The guides' line numbers, checked against the installed transformers
# --------------------------------------------------------------------------------------


def transformers_root() -> Path:
    return Path(transformers.__file__).resolve().parent


def resolve_source(path: str) -> Path | None:
    """A guide's file name -> the installed file: a path with a folder is relative to the
    transformers package; a bare name is looked up in models/bert/, then the package root."""
    root = transformers_root()
    candidates = [root / path] if "/" in path else [root / "models" / "bert" / path, root / path]
    return next((c for c in candidates if c.is_file()), None)


def guide_locations(guides: Sequence[str | Path] = GUIDES) -> list[GuideLocation]:
    """Every ``file.py:N`` code span of the guides, with the code span written before it
    (the parser of utils/guides.py; fenced code blocks are skipped)."""
    return read_guide_locations(guides)


def check_guide_line_numbers(guides: Sequence[str | Path] = GUIDES) -> list[str]:
    """Check every ``file.py:LINE`` quoted in the guides against the installed transformers.

    For each location: the file exists, the line (and range end) exists, and the quoted
    line contains the code span written just before the location (a class, function or
    attribute name, or a piece of code). A range must not run past the end of the
    definition that starts on its first line (``utils.guides.check_guide``).
    Returns: a list of problems, empty when every location holds; the first entry names a
             version mismatch when transformers is not the version the guides were read in.
    """
    problems = []
    if transformers.__version__ != GUIDE_VERSION:
        problems.append(f"the guides quote transformers {GUIDE_VERSION}; installed is "
                        f"{transformers.__version__}, so line numbers may differ")
    for guide in guides:
        problems += check_guide(guide, resolve_source, str(transformers_root()))
    return problems


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def _print_matrix(sentences: Sequence[str], matrix: torch.Tensor) -> None:
    width = max(len(s) for s in sentences[:9]) if sentences else 0
    for i, sentence in enumerate(sentences):
        row = " ".join(f"{float(v):6.3f}" for v in matrix[i])
        print(f"  [{i}] {sentence[:48]:{min(width, 48)}s}  {row}")


def main(argv: Sequence[str] | None = None) -> dict:
    """Check the reading's claims, then the three modifications of transformers' BERT.

    Returns: a flat dict of the measured numbers (and a few lists).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=TASKS, epochs=None, batch_size=64, lr=None,
                    out="runs/08_BERT/l4_hf", counts_steps=True, threads=1)
    set_help(parser,  # --dataset is the tagging task of part 3
        dataset=("generated tagging task of part 3: repeat (is the token a repeat of "
                 "an earlier one?) or digits (is it a digit?); default: %(default)s"),
        lr=("learning rate of part 3 (default: 1e-3 for the tiny random model, "
            "5e-5 with --checkpoint, the paper's fine-tuning range)"),
    )
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a BERT directory in transformers' layout (config.json, weights, "
                             "vocab.txt): parts 1-3 run on its weights (default: tiny random "
                             "models, no download)")
    parser.add_argument("--sentences", nargs="+", default=list(DEFAULT_SENTENCES),
                        help="sentences to embed and compare (default: four built-in ones)")
    parser.add_argument("--attention-sentence", default=None,
                        help="sentence whose attention is drawn (default: the first sentence)")
    parser.add_argument("--steps", type=positive_int, default=400,
                        help="most training steps of the tagger (default: %(default)s)")
    parser.add_argument("--max-len", type=positive_int, default=12,
                        help="most tokens of a generated sequence, >= 6 (default: %(default)s)")
    parser.add_argument("--skip-claims", action="store_true",
                        help="skip part 0 (the checks of the reading's claims)")
    parser.add_argument("--stop-accuracy", type=probability, default=0.98,
                        help="stop training once held-out accuracy reaches this; 0 = never "
                             "(default: %(default)s)")
    args = parse_args(parser, argv)
    if args.max_len < 6:
        parser.error(f"argument --max-len: must be >= 6, got {args.max_len}")
    if args.checkpoint is not None:
        try:
            check_checkpoint_dir(args.checkpoint)
        except CheckpointError as err:
            parser.error(f"argument --checkpoint: {err}")
    args.lr = args.lr or (5e-5 if args.checkpoint else 1e-3)
    seed_everything(args.seed)
    out_dir = prepare_out_dir(args.out)
    device = get_device(args.device)
    with torch_threads(args.threads):
        return _run(args, out_dir, device)


def _run(args: argparse.Namespace, out_dir: Path, device: torch.device) -> dict:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}")
    results: dict = {}
    start = time.perf_counter()

    if not args.skip_claims:
        results.update(reading_claims(args.seed))
    return _modifications(args, out_dir, device, results, start)


def reading_claims(seed: int = 0) -> dict:
    """Part 0: every check of the reading's claims, printed; returns the numbers."""
    results: dict = {}
    print("\n0. the reading's claims (tiny random models)")
    problems = check_guide_line_numbers()
    results["guide_locations"] = len(guide_locations())
    results["guide_problems"] = problems
    print(f"  guides: {results['guide_locations']} quoted file:line locations, "
          f"{len(problems)} problems" + "".join(f"\n    {p}" for p in problems))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    forms = mask_forms(mask)
    no_padding = mask_forms(torch.ones_like(mask))
    for name, form in forms.items():
        dtype = "" if form is None else str(form.dtype).replace("torch.", "")
        shape = "None" if form is None else f"{dtype} {tuple(form.shape)}"
        none = "None" if no_padding[name] is None else tuple(no_padding[name].shape)
        print(f"  mask for {name:17s}: {shape:22s} (no padding: {none})")
    results["eager_mask_equals_hand"] = bool(torch.equal(
        forms["eager"], additive_mask_by_hand(mask).expand_as(forms["eager"])))
    r = implementation_differences(seed)
    print(f"  sdpa vs eager, float64: max|diff| {r['sdpa_vs_eager']:.1e}; attention maps "
          f"returned by sdpa: {int(r['sdpa_attentions'])}")
    results.update(r)
    r = registered_attention_needs_a_mask_function(seed)
    print(f"  a registered copy of eager attention vs eager: max|diff| "
          f"{r['without_mask_function']:.3f} without a mask function, "
          f"{r['with_mask_function']:.1e} with one")
    results.update({f"registered_{k}": v for k, v in r.items()})
    r = tying_and_saving(seed=seed)
    print(f"  decoder tied to the word embeddings: {r['tied']} (bias {r['tied_bias']}); "
          f"saved files {r['files']}; decoder weight in the file: {r['decoder_key_saved']}; "
          f"tied after reload: {r['reloaded_tied']}; logits after reload max|diff| "
          f"{r['reload_diff']:.1e}")
    results.update({f"tying_{k}": v for k, v in r.items()})
    r = parameter_counts()
    print(f"  BertModel parameters: base {r['base']:,} (by hand {r['base_by_hand']:,}), "
          f"large {r['large']:,} (by hand {r['large_by_hand']:,})")
    results.update({f"params_{k}": v for k, v in r.items()})
    return results


def _modifications(args: argparse.Namespace, out_dir: Path, device: torch.device,
                   results: dict, start: float) -> dict:
    if args.checkpoint is not None:
        model, tokenizer = load_checkpoint(args.checkpoint)
        source = f"checkpoint {args.checkpoint}"
    else:
        model, tokenizer = toy_model_and_tokenizer(
            args.sentences + ([args.attention_sentence] if args.attention_sentence else []),
            args.seed)
        source = "a tiny random BertModel (similarities carry no meaning without training)"
    model.to(device)
    config = model.config
    print(f"\n1. mean pooling and cosine similarity, {source}")
    mean, cls = sentence_embeddings(model, tokenizer, args.sentences)
    similarity = cosine_similarity_matrix(mean)
    _print_matrix(args.sentences, similarity.cpu())
    results["similarity"] = similarity.cpu().tolist()
    results["embedding_size"] = mean.shape[1]
    results["cls_vs_mean_cosine"] = F.cosine_similarity(mean, cls, dim=-1).cpu().tolist()
    print("  cosine of each mean-pooled embedding with the pooler's tanh(W h_[CLS] + b): "
          + " ".join(f"{v:.2f}" for v in results["cls_vs_mean_cosine"]))

    sentence = args.attention_sentence or args.sentences[0]
    print(f"\n2. attention, {config.num_hidden_layers} layers x {config.num_attention_heads} "
          f"heads, for {sentence!r}")
    maps, tokens = sentence_attention(model, tokenizer, sentence)
    path = out_dir / "attention_grid.png"
    plot_attention_grid(maps, tokens, path, title=f"attention: {' '.join(tokens)[:80]}")
    entropy = -(maps * maps.clamp_min(1e-12).log()).sum(-1).mean(-1)  # (L, A)
    print(f"  maps {tuple(maps.shape)}; rows sum to 1 (max |sum - 1| "
          f"{float((maps.sum(-1) - 1).abs().max()):.1e}); mean entropy per head (nats, "
          f"uniform = {math.log(len(tokens)):.2f}):")
    for layer, row in enumerate(entropy.cpu()):
        print(f"    layer {layer}: " + " ".join(f"{float(v):.2f}" for v in row))
    print(f"  written {path}")
    results["attention_shape"] = tuple(maps.shape)
    results["attention_png"] = str(path)

    print(f"\n3. a token-classification head on BertModel, task {args.dataset!r}")
    if args.checkpoint is not None:
        bert, tokenizer = load_checkpoint(args.checkpoint, "sdpa", add_pooling_layer=False)
        vocab = checkpoint_task_vocabulary(tokenizer, seed=args.seed)
        max_len = min(args.max_len, bert.config.max_position_embeddings - 2)
    else:
        vocab = toy_task_vocabulary()
        torch.manual_seed(args.seed)
        bert = BertModel(tagger_config(vocab.vocab_size), add_pooling_layer=False)
        max_len = args.max_len
    torch.manual_seed(args.seed)
    tagger = BertTokenTagger(bert.to(device), num_labels=2,
                             dropout=bert.config.hidden_dropout_prob)
    r = train_tagger(tagger, args.dataset, vocab, steps=args.steps,
                     batch_size=args.batch_size, lr=args.lr, max_len=max_len,
                     stop_accuracy=args.stop_accuracy or None, seed=args.seed,
                     progress=args.progress)
    print(f"  {sum(p.numel() for p in tagger.parameters()):,} parameters, lr {args.lr:g}; "
          f"held-out token accuracy {r['accuracy']:.3f} vs majority baseline "
          f"{r['baseline']:.3f} after {r['steps']} steps ({r['seconds']:.1f} s); loss "
          f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}")
    curves = {"held-out accuracy": r["history"]["accuracy"],
              "majority baseline": [r["baseline"]] * len(r["history"]["step"]),
              "train loss": r["history"]["loss"]}
    plot_curves(curves, path=out_dir / "tagger_curves.png", xlabel="evaluation (every 50 steps)",
                title=f"token tagging ({args.dataset})")
    ids, mask, labels = make_tagging_batch(args.dataset, vocab, 1, max_len,
                                           torch.Generator().manual_seed(args.seed + 7))
    length = int(mask.sum())  # the sequence without padding
    maps = attention_maps(tagger.bert, ids[:, :length].to(device))[0]
    names = task_token_names(vocab, ids[0, :length],
                             tokenizer if args.checkpoint is not None else None)
    marked = [f"{n}*" if int(y) == 1 else n for n, y in zip(names, labels[0, :length])]
    path = out_dir / "attention_grid_tagger.png"
    plot_attention_grid(maps, marked, path, title=f"trained tagger ({args.dataset}); "
                                                  "* = label 1")
    print(f"  attention of the trained tagger on {' '.join(marked)}: {path}")
    results.update({f"tagger_{k}": v for k, v in r.items() if k != "history"})
    results["tagger_history"] = r["history"]
    results["seconds"] = time.perf_counter() - start
    print(f"\ndone in {results['seconds']:.1f} s; pictures in {out_dir}")
    return results


if __name__ == "__main__":
    main()
