"""transformers' and open_clip's CLIP, read and modified (Level 4).

``12_CLIP/analysis/README.md`` walks through transformers' ``models/clip/`` (the model, the
processor, the image processor) and open_clip's model code (``model.py``,
``transformer.py``, ``loss.py``, ``zero_shot_classifier.py``, ``tokenizer.py``) with line
numbers; ``check_guide_line_numbers`` below checks every one of them against the installed
versions (with ``utils/guides.py``). This script checks what the reading claims, then does
the lesson's four modification tasks on transformers' ``CLIPModel``, built from small random
configs (no download). Text goes through CLIP's real BPE vocabulary, which open_clip ships
(``bpe_simple_vocab_16e6.txt.gz``), so the prompts are real CLIP token ids:

0. The reading's claims: where the text feature is read (the first end-of-text token, or
   the largest id under the legacy ``eos_token_id == 2`` rule); why end-token padding
   (transformers) and zero padding (open_clip) give the same features; ``logit_scale``
   (initialised to log(1/0.07), not clamped in the forward pass); the symmetric loss equal
   to open_clip's ``ClipLoss``; an open_clip model and a ``CLIPModel`` with the same weights
   computing the same logits; the image processor (resize the short side, center crop,
   CLIP's mean and std) against a hand computation.
1. Prompt ensembling for zero-shot classification (Radford et al. 2021, Sec. 3.1.4):
   several templates per class name, the average of the normalised text embeddings,
   renormalised; equal to open_clip's ``build_zero_shot_classifier``; against one prompt.
2. An image-text similarity matrix, and the image tower's attention (the [CLS] row of the
   last layer, and attention rollout) drawn over the images.
3. A linear probe: logistic regression (scikit-learn) on the frozen image embeddings of
   digits, against the majority baseline.
4. Fine-tuning only the two projections and the temperature with the contrastive loss on
   captioned digits; every other weight stays as it was; zero-shot accuracy before and
   after, with one held-out prompt and with the held-out ensemble.

``--checkpoint DIR`` runs 1-4 on real weights: a folder in transformers' layout
(``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, the tokenizer files and
``preprocessor_config.json``), as a user has after one download of, e.g.,
``openai/clip-vit-base-patch32`` on a connected machine.

Run from the repository root::

    python 12_CLIP/analysis/hf_analysis.py                     # offline, seconds
    python 12_CLIP/analysis/hf_analysis.py --steps 600 --train-size 500
    python 12_CLIP/analysis/hf_analysis.py --checkpoint ~/models/clip-vit-base-patch32
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
import transformers
from matplotlib.figure import Figure
from open_clip.loss import ClipLoss
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from open_clip.zero_shot_classifier import build_zero_shot_classifier
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
)
from transformers.models.clip.modeling_clip import image_text_contrastive_loss

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    prepare_out_dir,
    set_help,
)
from utils.data_loaders import load_images
from utils.guides import GuideLocation, check_guide, read_guide_locations
from utils.guides import version_problems as _versions_differ
from utils.training_utils import seed_everything, torch_threads
from utils.visualization import plot_curves, save_figure

GUIDE_VERSIONS = {"transformers": "5.25.0", "open_clip": "3.3.0"}  # whose lines we quote
HERE = Path(__file__).resolve().parent
GUIDES = (HERE / "README.md",)
DATASETS = ("digits", "cifar10")
CLASS_NAMES = {
    "digits": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"),
}
BOS_ID, EOS_ID = 49406, 49407  # CLIP's <|startoftext|>, <|endoftext|>: the two largest ids
CONTEXT = 16  # the tiny models' max_len (CLIP: 77)
TINY_TEXT = dict(vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=CONTEXT)
TINY_VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=128,
                   num_hidden_layers=2, num_attention_heads=4)  # 4 x 4 patches + [CLS]
PROJECTION_DIM = 16
SINGLE_TEMPLATE = "a photo of a {}."  # the paper's default prompt (Sec. 3.1.4)
ENSEMBLE_TEMPLATES = ("a photo of a {}.", "a drawing of the number {}.",
                      "a blurry picture of a {}.", "a low resolution image of the {}.",
                      "an example of a {}.")
TRAIN_TEMPLATES = ("the digit {}.", "a picture of {}.", "a handwritten {}.",
                   "the number {} written by hand.")  # part 4; none occurs in the two above


# --------------------------------------------------------------------------------------
# Tiny random models and CLIP's tokenizer, offline
# --------------------------------------------------------------------------------------


def tiny_config(eos_token_id: int = EOS_ID, attn_implementation: str = "eager",
                **overrides) -> CLIPConfig:
    """A small ``CLIPConfig``: a 2-layer ViT on 32 x 32 images (patches of 8) and a 2-layer
    causal text Transformer over CLIP's 49,408 ids, both 32 wide, joint space of 16.

    ``eos_token_id`` selects the pooling rule (2: the legacy argmax of the ids);
    ``overrides`` may hold ``text`` / ``vision`` dicts merged into the tower configs and any
    ``CLIPConfig`` argument (``logit_scale_init_value``, ``projection_dim``, ...).
    """
    text = {**TINY_TEXT, "eos_token_id": eos_token_id, "bos_token_id": BOS_ID,
            **overrides.pop("text", {})}
    vision = {**TINY_VISION, **overrides.pop("vision", {})}
    config = CLIPConfig(text_config=text, vision_config=vision,
                        **{"projection_dim": PROJECTION_DIM, **overrides})
    config._attn_implementation = attn_implementation
    return config


def toy_model(seed: int = 0, **config_overrides) -> CLIPModel:
    """A ``CLIPModel`` from ``tiny_config(**config_overrides)``, random weights, eval mode."""
    torch.manual_seed(seed)
    return CLIPModel(tiny_config(**config_overrides)).eval()


@functools.cache
def open_clip_tokenizer(context_length: int = CONTEXT) -> open_clip.SimpleTokenizer:
    """open_clip's tokenizer with CLIP's real vocabulary (shipped with the package): pads
    with 0 to ``context_length``."""
    return open_clip.SimpleTokenizer(context_length=context_length)


@functools.cache
def hf_tokenizer() -> CLIPTokenizer:
    """transformers' ``CLIPTokenizer`` built from open_clip's vocabulary and merges (the
    same BPE; open_clip names the special tokens ``<start_of_text>`` / ``<end_of_text>``).
    It pads with the end-of-text token."""
    source = open_clip_tokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {names.get(token, token): index for token, index in source.encoder.items()}
    merges = [pair for pair, _ in sorted(source.bpe_ranks.items(), key=lambda kv: kv[1])]
    return CLIPTokenizer(vocab=vocab, merges=merges)


def toy_processor(image_size: int = TINY_VISION["image_size"]) -> CLIPProcessor:
    """A ``CLIPProcessor`` for the tiny models: CLIP's image processor at ``image_size``
    (short side resized to it, then a center crop) and ``hf_tokenizer()``."""
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    return CLIPProcessor(image_processor=image_processor, tokenizer=hf_tokenizer())


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids and mask of ``texts``, padded to the longest (with the tokenizer's pad id),
    truncated to ``max_length``. Returns {"input_ids", "attention_mask"} (B, T)."""
    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def text_max_length(model: CLIPModel) -> int:
    return model.config.text_config.max_position_embeddings


# --------------------------------------------------------------------------------------
# A checkpoint folder in transformers' layout
# --------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A --checkpoint folder that is not a CLIP model in transformers' layout."""


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")  # older, 5.x


def check_checkpoint_dir(path: str | Path) -> Path:
    """Check that ``path`` holds a CLIP model, its tokenizer and its image processor.

    Raises: CheckpointError saying what is missing, or what the folder holds instead.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist or is not a folder; expected a CLIP "
                              "folder in transformers' layout (config.json, model.safetensors, "
                              "tokenizer files, preprocessor_config.json)")
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / name).is_file() for name in PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES[:2]))
    if not any(all((path / name).is_file() for name in names) for names in TOKENIZER_FILES):
        missing.append("tokenizer.json or vocab.json + merges.txt")
    if missing:
        raise CheckpointError(f"{path} lacks {'; '.join(missing)} (what save_pretrained of "
                              "CLIPModel and CLIPProcessor writes)")
    kind = json.loads((path / "config.json").read_text()).get("model_type")
    if kind != "clip":
        raise CheckpointError(f"{path}/config.json has model_type {kind!r}; expected 'clip' "
                              "(CLIPModel)")
    return path


def load_checkpoint(path: str | Path) -> tuple[CLIPModel, CLIPProcessor]:
    """The model (eager attention, so that maps can be returned; eval mode) and processor."""
    path = check_checkpoint_dir(path)
    model = CLIPModel.from_pretrained(path, attn_implementation="eager").eval()
    return model, CLIPProcessor.from_pretrained(path)


# --------------------------------------------------------------------------------------
# Features, as CLIPModel computes them
# --------------------------------------------------------------------------------------


def image_embeddings(model: CLIPModel, pixel_values: torch.Tensor,
                     normalize: bool = True) -> torch.Tensor:
    """(B, 3, H, W) -> (B, E): ``get_image_features`` (the projected [CLS] after
    ``post_layernorm``), L2-normalised unless ``normalize=False``."""
    features = model.get_image_features(pixel_values=pixel_values).pooler_output
    return F.normalize(features, dim=-1) if normalize else features


def text_embeddings(model: CLIPModel, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None = None,
                    normalize: bool = True) -> torch.Tensor:
    """(B, T) ids -> (B, E): ``get_text_features`` (the projected final-norm state at the
    end-of-text token), L2-normalised unless ``normalize=False``."""
    features = model.get_text_features(input_ids=input_ids,
                                       attention_mask=attention_mask).pooler_output
    return F.normalize(features, dim=-1) if normalize else features


@torch.no_grad()
def batched_image_embeddings(model: CLIPModel, pixel_values: torch.Tensor,
                             batch_size: int = 256, normalize: bool = True,
                             progress: bool = False) -> torch.Tensor:
    """``image_embeddings`` of many images, in batches: (N, 3, H, W) -> (N, E)."""
    chunks = [image_embeddings(model, pixel_values[i:i + batch_size], normalize)
              for i in tqdm(range(0, len(pixel_values), batch_size), desc="image features",
                            disable=not progress, leave=False)]
    return torch.cat(chunks)


# --------------------------------------------------------------------------------------
# 0. The reading's claims
# --------------------------------------------------------------------------------------


def pooling_index(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Where ``CLIPTextModel`` reads the text feature (modeling_clip.py): the first position
    holding ``eos_token_id``; with the legacy ``eos_token_id == 2``, the largest id (argmax,
    OpenAI's and open_clip's rule, right while the end token has the largest id).
    Inputs: input_ids (B, T). Returns: (B,) positions."""
    if eos_token_id == 2:
        return input_ids.argmax(dim=-1)
    return (input_ids == eos_token_id).int().argmax(dim=-1)


@torch.no_grad()
def eos_pooling_rules(seed: int = 0) -> dict[str, float]:
    """The two pooling rules of ``CLIPTextModel.forward`` on ids with an added token (id
    49408, larger than the end token) before the end token.

    Returns: max |pooler_output - final-norm state at our index| for a model with the right
             eos id ("first_eos") and one with the legacy 2 ("legacy"); and how far the
             first-eos model's feature is from the state at the argmax ("argmax_gap": the
             added token moved the argmax) and its position.
    """
    added = TINY_TEXT["vocab_size"]  # a new token appended to the vocabulary
    ids = torch.tensor([[BOS_ID, 320, added, 1125, EOS_ID, EOS_ID],
                        [BOS_ID, 320, 1125, EOS_ID, EOS_ID, EOS_ID]])
    out: dict[str, float] = {}
    for name, eos in (("first_eos", EOS_ID), ("legacy", 2)):
        model = toy_model(seed, eos_token_id=eos,
                          text={"vocab_size": added + 1}).double().text_model
        output = model(input_ids=ids)
        rows = torch.arange(len(ids))
        expected = output.last_hidden_state[rows, pooling_index(ids, eos)]
        out[f"{name}_diff"] = float((output.pooler_output - expected).abs().max())
        out[f"{name}_index"] = pooling_index(ids, eos).tolist()
        if eos == EOS_ID:
            at_argmax = output.last_hidden_state[rows, ids.argmax(-1)]
            out["argmax_gap"] = float((output.pooler_output - at_argmax).abs().max())
    return out


@torch.no_grad()
def padding_and_causal_mask(seed: int = 0) -> dict[str, float]:
    """Text features of the same prompts padded three ways, in float64: with the end token
    and a mask (transformers' tokenizer), with 0 and no mask (open_clip's), and one prompt
    at a time without padding. With the causal mask no position up to the end token sees
    the padding, so all three agree.

    Returns: max differences ("eos_vs_zero", "eos_vs_alone", "mask_vs_no_mask"), whether the
             ids agree up to the padding ("same_ids"), and how much a token changed after
             the end token moves the feature ("after_eos") and one before it ("before_eos").
    """
    model = toy_model(seed).double()
    texts = ["a photo of a cat.", "a dog", "the digit seven written by hand."]
    hf_ids = encode_texts(hf_tokenizer(), texts, CONTEXT)
    zero_ids = open_clip_tokenizer()(texts)[:, :hf_ids["input_ids"].shape[1]]  # (B, T)
    real = hf_ids["attention_mask"].bool()
    same_ids = torch.equal(hf_ids["input_ids"][real], zero_ids[real]) and \
        bool((zero_ids[~real] == 0).all()) and bool((hf_ids["input_ids"][~real] == EOS_ID).all())
    with_eos = text_embeddings(model, **hf_ids, normalize=False)
    with_zero = text_embeddings(model, zero_ids, normalize=False)
    no_mask = text_embeddings(model, hf_ids["input_ids"], normalize=False)
    alone = torch.cat([text_embeddings(model, encode_texts(hf_tokenizer(), [t], CONTEXT)
                                       ["input_ids"], normalize=False) for t in texts])
    changed = zero_ids.clone()
    changed[1, -1] = 320  # after the end token of "a dog"
    after = text_embeddings(model, changed, normalize=False)
    changed[1, 1] = 1125  # before it
    before = text_embeddings(model, changed, normalize=False)
    return {"eos_vs_zero": float((with_eos - with_zero).abs().max()),
            "eos_vs_alone": float((with_eos - alone).abs().max()),
            "mask_vs_no_mask": float((with_eos - no_mask).abs().max()),
            "same_ids": same_ids,
            "after_eos": float((after - with_zero).abs().max()),
            "before_eos": float((before[1] - with_zero[1]).abs().max())}


@torch.no_grad()
def logit_scale_claims(seed: int = 0) -> dict[str, float]:
    """``logit_scale`` is the log of the temperature's inverse: initialised to 2.6592
    (log(1/0.07) = 2.65926...), exponentiated in ``forward`` and not clamped there (the
    clamp at 100 belongs to the training loop).

    Returns: the initial value, its exp, and the ratio logits / cosine similarities for a
             scale set to log(1000) (1000: nothing clamps it).
    """
    model = toy_model(seed).double()
    init = float(model.logit_scale)
    pixels = random_images(2, seed=seed, dtype=torch.float64)
    ids = encode_texts(hf_tokenizer(), ["a cat", "a dog"], CONTEXT)
    model.logit_scale.fill_(math.log(1000.0))
    logits = model(pixel_values=pixels, **ids).logits_per_image
    cosine = image_embeddings(model, pixels) @ text_embeddings(model, **ids).T
    return {"init": init, "init_exp": math.exp(init),
            "ratio_at_1000": float((logits / cosine).mean()),
            "ratio_spread": float((logits / cosine).std())}


def symmetric_cross_entropy(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Figure 3 of the paper: (CE(rows, i) + CE(columns, i)) / 2, pairs on the diagonal."""
    labels = torch.arange(len(logits_per_image), device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels)
            + F.cross_entropy(logits_per_image.T, labels)) / 2


@torch.no_grad()
def loss_check(seed: int = 0) -> dict[str, float]:
    """``CLIPModel(..., return_loss=True).loss`` against the loss by hand and open_clip's
    ``ClipLoss`` on the same normalised features and scale (float64, a batch of 4)."""
    model = toy_model(seed).double()
    pixels = random_images(4, seed=seed, dtype=torch.float64)
    ids = encode_texts(hf_tokenizer(), ["a cat", "a dog", "a bird", "a frog"], CONTEXT)
    output = model(pixel_values=pixels, **ids, return_loss=True)
    hand = symmetric_cross_entropy(output.logits_per_image)
    theirs = ClipLoss()(output.image_embeds, output.text_embeds, model.logit_scale.exp())
    return {"loss": float(output.loss), "vs_hand": float((output.loss - hand).abs()),
            "vs_open_clip": float((output.loss - theirs).abs())}


def tiny_open_clip(seed: int = 0) -> open_clip.CLIP:
    """open_clip's ``CLIP`` with the tiny sizes (QuickGELU, as OpenAI's models), random
    weights (open_clip's own initialisation), eval mode."""
    torch.manual_seed(seed)
    vision = CLIPVisionCfg(image_size=TINY_VISION["image_size"],
                           patch_size=TINY_VISION["patch_size"], width=TINY_VISION["hidden_size"],
                           layers=TINY_VISION["num_hidden_layers"],
                           head_width=TINY_VISION["hidden_size"]
                           // TINY_VISION["num_attention_heads"])
    text = CLIPTextCfg(context_length=CONTEXT, vocab_size=TINY_TEXT["vocab_size"],
                       width=TINY_TEXT["hidden_size"], heads=TINY_TEXT["num_attention_heads"],
                       layers=TINY_TEXT["num_hidden_layers"])
    return open_clip.CLIP(PROJECTION_DIM, vision, text, quick_gelu=True).eval()


def open_clip_to_hf(source: open_clip.CLIP, attn_implementation: str = "sdpa") -> CLIPModel:
    """A ``CLIPModel`` with the weights of open_clip's ``CLIP`` (ViT image tower, the
    built-in text tower), same dtype. ``attn_implementation="eager"`` computes the softmax
    in float32 (``eager_attention_forward``), so float64 results then agree to ~1e-8 only.

    What changes: open_clip's fused ``attn.in_proj_weight`` (3D, D) is q, k, v stacked
    (``q_proj``, ``k_proj``, ``v_proj``); its projections are Parameters applied as
    ``x @ proj`` (D, E), transformers' are ``nn.Linear`` weights (E, D): transposed.
    """
    visual = source.visual
    width = visual.conv1.out_channels
    grid = visual.grid_size[0]
    text_width = source.token_embedding.embedding_dim
    config = tiny_config(
        text={"vocab_size": source.vocab_size, "hidden_size": text_width,
              "intermediate_size": source.transformer.resblocks[0].mlp.c_fc.out_features,
              "num_hidden_layers": source.transformer.layers,
              "num_attention_heads": source.transformer.resblocks[0].attn.num_heads,
              "max_position_embeddings": source.context_length},
        vision={"image_size": grid * visual.patch_size[0], "patch_size": visual.patch_size[0],
                "hidden_size": width,
                "intermediate_size": visual.transformer.resblocks[0].mlp.c_fc.out_features,
                "num_hidden_layers": visual.transformer.layers,
                "num_attention_heads": visual.transformer.resblocks[0].attn.num_heads},
        projection_dim=visual.output_dim, attn_implementation=attn_implementation)
    state = {"logit_scale": source.logit_scale,
             "visual_projection.weight": visual.proj.T,
             "text_projection.weight": source.text_projection.T,
             "vision_model.embeddings.class_embedding": visual.class_embedding,
             "vision_model.embeddings.patch_embedding.weight": visual.conv1.weight,
             "vision_model.embeddings.position_embedding.weight": visual.positional_embedding,
             "text_model.embeddings.token_embedding.weight": source.token_embedding.weight,
             "text_model.embeddings.position_embedding.weight": source.positional_embedding}
    norms = {"vision_model.pre_layrnorm": visual.ln_pre,
             "vision_model.post_layernorm": visual.ln_post,
             "text_model.final_layer_norm": source.ln_final}
    towers = (("vision_model.encoder.layers", visual.transformer),
              ("text_model.encoder.layers", source.transformer))
    for prefix, transformer in towers:
        for index, block in enumerate(transformer.resblocks):
            ours = f"{prefix}.{index}"
            for kind in ("weight", "bias"):
                qkv = getattr(block.attn, f"in_proj_{kind}").chunk(3, dim=0)  # (3D, ...)
                for name, part in zip(("q_proj", "k_proj", "v_proj"), qkv):
                    state[f"{ours}.self_attn.{name}.{kind}"] = part
                state[f"{ours}.self_attn.out_proj.{kind}"] = getattr(block.attn.out_proj, kind)
                state[f"{ours}.mlp.fc1.{kind}"] = getattr(block.mlp.c_fc, kind)
                state[f"{ours}.mlp.fc2.{kind}"] = getattr(block.mlp.c_proj, kind)
            norms[f"{ours}.layer_norm1"], norms[f"{ours}.layer_norm2"] = block.ln_1, block.ln_2
    for name, norm in norms.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = norm.weight, norm.bias
    reference = source.logit_scale
    model = CLIPModel(config).to(dtype=reference.dtype, device=reference.device)
    model.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    return model.eval()


@torch.no_grad()
def open_clip_port(seed: int = 0) -> dict[str, float]:
    """open_clip's ``CLIP`` and the ``CLIPModel`` with its weights, float64: image and text
    embeddings (open_clip's ids padded with 0, transformers' with the end token) and logits,
    with sdpa attention and with eager (whose softmax runs in float32).
    Returns max differences ("image", "text", "logits", "eager_logits") and both parameter
    counts."""
    source = tiny_open_clip(seed).double()
    texts = ["a photo of a cat.", "a dog", "seven"]
    pixels = random_images(2, seed=seed, dtype=torch.float64)
    hf_ids = encode_texts(hf_tokenizer(), texts, CONTEXT)
    zero_ids = open_clip_tokenizer()(texts)
    image_features, text_features, scale = source(pixels, zero_ids)  # normalised, exp(scale)
    expected = scale * image_features @ text_features.T
    model = open_clip_to_hf(source, "sdpa")
    ours = model(pixel_values=pixels, **hf_ids)
    eager = open_clip_to_hf(source, "eager")(pixel_values=pixels, **hf_ids)
    return {"image": float((ours.image_embeds - image_features).abs().max()),
            "text": float((ours.text_embeds - text_features).abs().max()),
            "logits": float((ours.logits_per_image - expected).abs().max()),
            "eager_logits": float((eager.logits_per_image - expected).abs().max()),
            "params_open_clip": sum(p.numel() for p in source.parameters()),
            "params_hf": sum(p.numel() for p in model.parameters())}


def resize_shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing the short side to ``size``, keeping the aspect ratio;
    the long side is truncated, int(size * long / short) (``get_resize_output_image_size``)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def clip_preprocess_by_hand(image: torch.Tensor, size: int, crop: int,
                            mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """CLIP's evaluation preprocessing written out: (3, H, W) uint8 -> (3, crop, crop) float.

    Resize the short side to ``size`` (bicubic, antialiased) as torchvision does on a
    uint8 image: two separable passes, the width first, each rounded and clamped to 0..255;
    crop the centre (top = int((h - crop) / 2)), rescale by 1/255, then subtract the mean
    and divide by the std per channel.
    """
    height, width = resize_shortest_edge_size(*image.shape[-2:], size)
    resized = image[None].double()  # (1, 3, H, W)
    for new_size in ((image.shape[-2], width), (height, width)):  # width pass, height pass
        resized = F.interpolate(resized, size=new_size, mode="bicubic", align_corners=False,
                                antialias=True).round().clamp(0, 255)
    resized = resized[0]
    top, left = int((height - crop) / 2.0), int((width - crop) / 2.0)
    cropped = resized[:, top:top + crop, left:left + crop] / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(3, 1, 1)
    return ((cropped - mean_t) / std_t).float()


def image_processor_check(seed: int = 0) -> dict[str, object]:
    """``CLIPImageProcessor`` against ``clip_preprocess_by_hand`` on small random uint8
    images: one whose short side already has the target size (no resampling: exact up to
    float32) and one that is resized (bicubic: within one grey level).

    Returns: the processor's mean, std and output shapes; the max differences; the
             difference expressed in grey levels (x 255 x std).
    """
    generator = torch.Generator().manual_seed(seed)
    processor = CLIPImageProcessor(size={"shortest_edge": 8}, crop_size={"height": 8,
                                                                         "width": 8})
    mean, std = processor.image_mean, processor.image_std
    out: dict[str, object] = {"mean": list(mean), "std": list(std),
                              "open_clip_mean": list(open_clip.OPENAI_DATASET_MEAN),
                              "open_clip_std": list(open_clip.OPENAI_DATASET_STD)}
    for name, (height, width) in (("no_resize", (8, 13)), ("resized", (14, 10))):
        image = torch.randint(0, 256, (3, height, width), generator=generator,
                              dtype=torch.uint8)
        theirs = processor(images=image, return_tensors="pt")["pixel_values"][0]
        hand = clip_preprocess_by_hand(image, 8, 8, mean, std)
        out[f"{name}_shape"] = tuple(theirs.shape)
        out[f"{name}_diff"] = float((theirs - hand).abs().max())
        out[f"{name}_levels"] = float(((theirs - hand).abs()
                                       * torch.tensor(std).view(3, 1, 1) * 255).max())
    out["resized_size"] = resize_shortest_edge_size(14, 10, 8)
    return out


def random_images(batch: int = 2, size: int = TINY_VISION["image_size"], seed: int = 0,
                  dtype=torch.float32) -> torch.Tensor:
    """Gaussian images (B, 3, size, size) from a seeded generator (already 'normalised')."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator, dtype=dtype)


# --------------------------------------------------------------------------------------
# 1. Prompt ensembling
# --------------------------------------------------------------------------------------


@torch.no_grad()
def zero_shot_classifier(model: CLIPModel, tokenizer, class_names: Sequence[str],
                         templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot classifier weights (K, E): for each class, the ``len(templates)`` prompts
    ``template.format(name)`` are embedded and L2-normalised, averaged, and the average is
    renormalised (Sec. 3.1.4; open_clip's ``build_zero_shot_classifier`` returns the
    transpose, (E, K)). One template gives the single-prompt classifier.
    """
    if not class_names or not templates:
        raise ValueError("zero_shot_classifier: expected at least one class name and one "
                         f"template, got {len(class_names)} and {len(templates)}")
    if any("{}" not in template for template in templates):
        raise ValueError(f"every template must hold '{{}}' for the class name: {templates}")
    prompts = [template.format(name) for name in class_names for template in templates]
    ids = encode_texts(tokenizer, prompts, text_max_length(model))
    device = model.logit_scale.device
    embedded = text_embeddings(model, **{k: v.to(device) for k, v in ids.items()})  # (K*M, E)
    per_class = embedded.view(len(class_names), len(templates), -1)  # (K, M, E)
    return F.normalize(per_class.mean(dim=1), dim=-1)  # (K, E)


@torch.no_grad()
def zero_shot_logits(model: CLIPModel, image_features: torch.Tensor,
                     classifier: torch.Tensor) -> torch.Tensor:
    """logit_scale.exp() * normalised image embeddings (N, E) @ classifier (K, E)^T -> (N, K)."""
    return model.logit_scale.exp() * F.normalize(image_features, dim=-1) @ classifier.T


def zero_shot_accuracy(model: CLIPModel, image_features: torch.Tensor, labels: torch.Tensor,
                       classifier: torch.Tensor) -> float:
    predictions = zero_shot_logits(model, image_features, classifier).argmax(-1).cpu()
    return float((predictions == labels).float().mean())


@torch.no_grad()
def ensembling_vs_open_clip(seed: int = 0) -> dict[str, float]:
    """Our ensembled classifier on the ``CLIPModel`` ported from a tiny open_clip model,
    against ``build_zero_shot_classifier`` on the open_clip model itself (float64).
    Returns the max difference and the max |norm - 1| of the rows."""
    source = tiny_open_clip(seed).double()
    model = open_clip_to_hf(source, "sdpa")
    names = CLASS_NAMES["digits"][:4]
    ours = zero_shot_classifier(model, hf_tokenizer(), names, ENSEMBLE_TEMPLATES)
    theirs = build_zero_shot_classifier(source, open_clip_tokenizer(), names,
                                        ENSEMBLE_TEMPLATES, num_classes_per_batch=3)
    return {"diff": float((ours - theirs.T).abs().max()),
            "norm_error": float((ours.norm(dim=-1) - 1).abs().max())}


# --------------------------------------------------------------------------------------
# 2. Similarity matrix and attention over the image
# --------------------------------------------------------------------------------------


@torch.no_grad()
def similarity_matrix(model: CLIPModel, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """exp(logit_scale) * cos(image i, text j): (B_i, B_t), from ``get_image_features`` and
    ``get_text_features`` (= ``CLIPModel(...).logits_per_image``)."""
    images = image_embeddings(model, pixel_values)  # (B_i, E), unit norm
    texts = text_embeddings(model, input_ids, attention_mask)  # (B_t, E), unit norm
    return model.logit_scale.exp() * images @ texts.T


@torch.no_grad()
def vision_attentions(model: CLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Every layer's attention probabilities of the image tower: (B, L, A, T, T), T = 1 + N,
    from ``output_attentions=True`` (returned by the eager kernel only)."""
    if model.config._attn_implementation != "eager":
        raise ValueError("attention maps need attn_implementation='eager' (sdpa and flash "
                         f"never form them); the model uses {model.config._attn_implementation!r}")
    output = model.vision_model(pixel_values=pixel_values, output_attentions=True)
    return torch.stack(output.attentions, dim=1)


def cls_attention(attentions: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """The [CLS] row of one layer, averaged over heads, laid out on the patch grid.
    Inputs: (B, L, A, T, T). Returns: (B, g, g), g = sqrt(T - 1); rows sum to <= 1."""
    row = attentions[:, layer, :, 0, 1:].mean(dim=1)  # (B, N): [CLS] -> patches
    grid = math.isqrt(row.shape[-1])
    return row.reshape(-1, grid, grid)  # (B, N) -> (B, g, g)


def attention_rollout(attentions: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): per layer, the head-averaged map plus the
    identity (the residual path), rows renormalised; the product over layers, first layer
    rightmost; the [CLS] row over the patches. Inputs: (B, L, A, T, T). Returns (B, g, g)."""
    maps = attentions.mean(dim=2)  # (B, L, T, T)
    tokens = maps.shape[-1]
    eye = torch.eye(tokens, dtype=maps.dtype, device=maps.device)
    rollout = eye.expand(maps.shape[0], tokens, tokens)
    for layer in range(maps.shape[1]):
        mixed = maps[:, layer] + eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    row = rollout[:, 0, 1:]  # (B, N)
    grid = math.isqrt(row.shape[-1])
    return row.reshape(-1, grid, grid)


def displayable(pixel_values: torch.Tensor, mean: Sequence[float],
                std: Sequence[float]) -> torch.Tensor:
    """Undo the normalisation: (B, 3, H, W) -> (B, H, W, 3) in [0, 1] for imshow."""
    mean_t = torch.tensor(mean, dtype=pixel_values.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=pixel_values.dtype).view(1, 3, 1, 1)
    return (pixel_values.cpu() * std_t + mean_t).clamp(0, 1).permute(0, 2, 3, 1)


def plot_similarity(similarity: torch.Tensor, images: torch.Tensor, captions: Sequence[str],
                    path: str | Path | None = None, title: str | None = None) -> Figure:
    """The (B_i, B_t) matrix as a heat map, images along the rows, captions along the top.
    Inputs: similarity (B_i, B_t); images (B_i, H, W, 3) in [0, 1]."""
    if similarity.shape != (len(images), len(captions)):
        raise ValueError(f"similarity {tuple(similarity.shape)} does not match "
                         f"{len(images)} images x {len(captions)} captions")
    count_i, count_t = similarity.shape
    fig = Figure(figsize=(1.0 + 0.9 * count_t, 1.5 + 0.9 * count_i), layout="constrained")
    grid = fig.add_gridspec(count_i, count_t + 1, width_ratios=[1] + [1] * count_t)
    matrix = fig.add_subplot(grid[:, 1:])
    matrix.imshow(similarity.cpu().numpy(), cmap="viridis", aspect="auto")
    for i in range(count_i):
        for j in range(count_t):
            matrix.text(j, i, f"{float(similarity[i, j]):.1f}", ha="center", va="center",
                        fontsize=6, color="white")
    matrix.set_xticks(range(count_t), [c[:28] for c in captions], rotation=60, ha="right",
                      fontsize=7)
    matrix.set_yticks([])
    for i in range(count_i):
        ax = fig.add_subplot(grid[i, 0])
        ax.imshow(images[i].numpy())
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_attention_over_images(images: torch.Tensor, maps: dict[str, torch.Tensor],
                               path: str | Path | None = None,
                               title: str | None = None) -> Figure:
    """One row per image: the image, then each map (B, g, g) upsampled over it.
    Inputs: images (B, H, W, 3) in [0, 1]; maps {name: (B, g, g)}."""
    if any(m.shape[0] != len(images) or m.ndim != 3 for m in maps.values()):
        raise ValueError("expected images (B, H, W, 3) and maps (B, g, g) for the same B")
    count, height, width = images.shape[:3]
    fig = Figure(figsize=(1.8 * (len(maps) + 1), 1.8 * count + 0.4), layout="constrained")
    for row in range(count):
        ax = fig.add_subplot(count, len(maps) + 1, row * (len(maps) + 1) + 1)
        ax.imshow(images[row].numpy())
        ax.set_xticks([]), ax.set_yticks([])
        for column, (name, grid_maps) in enumerate(maps.items(), 2):
            upsampled = F.interpolate(grid_maps[row][None, None].float().cpu(),
                                      size=(height, width), mode="nearest")[0, 0]
            ax = fig.add_subplot(count, len(maps) + 1, row * (len(maps) + 1) + column)
            ax.imshow(images[row].numpy())
            ax.imshow(upsampled.numpy(), cmap="inferno", alpha=0.6)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------------------
# 3. A linear probe on frozen image features; data
# --------------------------------------------------------------------------------------


def task_data(dataset: str, processor: CLIPProcessor, data_root: str | Path | None = None,
              train_size: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Images of the probe and fine-tuning tasks through the model's own image processor.

    digits: scikit-learn's 8 x 8 digits, upsampled to 32 x 32 and repeated in 3 channels
    (``utils.data_loaders.digits_as_images``); cifar10: the CIFAR-10 subset. Already in
    [0, 1], so the processor's rescaling is switched off; it resizes, crops and normalises.
    Returns: {"x_train", "y_train", "x_test", "y_test"}; x (N, 3, S, S) float32.
    """
    with data_errors("the default --dataset digits needs no download"):
        split = load_images(dataset, size=32, channels=3, data_root=data_root, seed=seed)
    out = {}
    for part in ("train", "test"):
        images = torch.from_numpy(getattr(split, f"X_{part}"))  # (N, 3, 32, 32) in [0, 1]
        labels = torch.from_numpy(getattr(split, f"y_{part}")).long()
        if part == "train" and train_size:
            keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
            images, labels = images[keep[:train_size]], labels[keep[:train_size]]
        pixels = processor.image_processor(images=list(images), do_rescale=False,
                                           return_tensors="pt")["pixel_values"]
        out[f"x_{part}"], out[f"y_{part}"] = pixels, labels
    return out


def majority_baseline(y_train: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of always predicting the most frequent training class."""
    return float((y_test == torch.bincount(y_train).argmax()).float().mean())


def linear_probe(train_features: torch.Tensor, y_train: torch.Tensor,
                 test_features: torch.Tensor, y_test: torch.Tensor,
                 C: float = 1.0, seed: int = 0) -> dict[str, object]:  # noqa: N803 (sklearn's C)
    """Logistic regression on frozen features, as the paper's linear probes (App. A.3:
    scikit-learn's L-BFGS logistic regression, C tuned on a validation split; here fixed).
    Features are standardised with the training statistics.

    Returns: {"accuracy", "train_accuracy", "baseline", "classifier", "mean", "std"}.
    """
    mean, std = train_features.mean(0), train_features.std(0) + 1e-8
    train = ((train_features - mean) / std).double().numpy()
    test = ((test_features - mean) / std).double().numpy()
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    classifier.fit(train, y_train.numpy())
    return {"accuracy": float(classifier.score(test, y_test.numpy())),
            "train_accuracy": float(classifier.score(train, y_train.numpy())),
            "baseline": majority_baseline(y_train, y_test), "classifier": classifier,
            "mean": mean, "std": std}


# --------------------------------------------------------------------------------------
# 4. Fine-tuning the projections and the temperature
# --------------------------------------------------------------------------------------

PROJECTION_PARAMETERS = ("visual_projection.weight", "text_projection.weight", "logit_scale")


def freeze_all_but_projections(model: CLIPModel) -> list[str]:
    """requires_grad False everywhere except the two projections and ``logit_scale``.
    Returns the names of the trainable parameters."""
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in PROJECTION_PARAMETERS)
        if param.requires_grad:
            trainable.append(name)
    return trainable


@torch.no_grad()
def pooled_features(model: CLIPModel, pixel_values: torch.Tensor | None = None,
                    input_ids: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None,
                    batch_size: int = 256) -> torch.Tensor:
    """The towers' pooled outputs before the projections: [CLS] after ``post_layernorm``
    (images) or the end-token state after ``final_layer_norm`` (texts). (N, D)."""
    if pixel_values is not None:
        return torch.cat([model.vision_model(pixel_values=pixel_values[i:i + batch_size])
                          .pooler_output for i in range(0, len(pixel_values), batch_size)])
    return model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output


def projected_logits(model: CLIPModel, image_pooled: torch.Tensor,
                     text_pooled: torch.Tensor) -> torch.Tensor:
    """What ``CLIPModel.forward`` computes after the towers: project, normalise, scale.
    (B_i, D_v), (B_t, D_t) -> logits_per_image (B_i, B_t)."""
    images = F.normalize(model.visual_projection(image_pooled), dim=-1)
    texts = F.normalize(model.text_projection(text_pooled), dim=-1)
    return model.logit_scale.exp() * images @ texts.T


def finetune_projections(model: CLIPModel, tokenizer, data: dict[str, torch.Tensor],
                         class_names: Sequence[str], steps: int = 300, lr: float = 1e-2,
                         batch_size: int = 10, templates: Sequence[str] = TRAIN_TEMPLATES,
                         seed: int = 0, progress: bool = False) -> dict[str, object]:
    """Contrastive fine-tuning of ``visual_projection``, ``text_projection`` and
    ``logit_scale`` only, on captioned training images (in place).

    Each step draws ``batch_size`` distinct classes, one training image of each and one
    caption ``template.format(name)`` per image, and minimises transformers' own
    ``image_text_contrastive_loss`` (the symmetric cross-entropy). The towers are frozen, so
    their pooled outputs are computed once; ``logit_scale`` is clamped at log(100) after
    each step (Sec. 2.5). AdamW, no weight decay.
    Returns: losses, first/last loss (mean of 20 steps), the trainable names, seconds.
    """
    if not 2 <= batch_size <= len(class_names):
        raise ValueError(f"batch_size must be between 2 and the number of classes "
                         f"{len(class_names)} (distinct classes per batch), got {batch_size}")
    trainable = freeze_all_but_projections(model)
    device = model.logit_scale.device
    image_pooled = pooled_features(model, pixel_values=data["x_train"].to(device))  # (N, D_v)
    prompts = [t.format(name) for name in class_names for t in templates]  # class-major
    ids = {k: v.to(device) for k, v in
           encode_texts(tokenizer, prompts, text_max_length(model)).items()}
    text_pooled = pooled_features(model, **ids).view(len(class_names), len(templates), -1)
    labels = data["y_train"]
    by_class = [torch.nonzero(labels == k).flatten() for k in range(len(class_names))]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc="fine-tune projections", disable=not progress,
                  leave=False):
        classes = torch.randperm(len(class_names), generator=generator)[:batch_size]
        picks = torch.stack([by_class[k][torch.randint(len(by_class[k]), (1,),
                                                       generator=generator)][0]
                             for k in classes.tolist()])
        template = torch.randint(len(templates), (batch_size,), generator=generator)
        logits = projected_logits(model, image_pooled[picks], text_pooled[classes, template])
        loss = image_text_contrastive_loss(logits.T)  # (logits_per_text), as forward does
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(max=math.log(100.0))
        losses.append(loss.item())
    window = max(1, min(20, steps // 5))
    return {"losses": losses, "first_loss": float(np.mean(losses[:window])),
            "last_loss": float(np.mean(losses[-window:])), "trainable": trainable,
            "steps": steps, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------
# The guide's line numbers, checked against the installed transformers and open_clip
# --------------------------------------------------------------------------------------


def library_roots() -> dict[str, Path]:
    return {"transformers": Path(transformers.__file__).resolve().parent,
            "open_clip": Path(open_clip.__file__).resolve().parent}


def resolve_source(path: str) -> Path | None:
    """A guide's file name -> the installed file. A bare name is looked up in transformers'
    ``models/clip/``, then the open_clip package, then the transformers package root; a
    path with a folder is relative to the transformers package."""
    roots = library_roots()
    if "/" in path:
        candidates = [roots["transformers"] / path]
    else:
        candidates = [roots["transformers"] / "models" / "clip" / path,
                      roots["open_clip"] / path, roots["transformers"] / path]
    return next((c for c in candidates if c.is_file()), None)


def installed_versions() -> dict[str, str]:
    return {"transformers": transformers.__version__, "open_clip": open_clip.__version__}


def version_problems() -> list[str]:
    """One line per library whose installed version is not the one the guide quotes."""
    return _versions_differ(GUIDE_VERSIONS, installed_versions())


def guide_locations(guides: Sequence[str | Path] = GUIDES) -> list[GuideLocation]:
    """Every ``file.py:N`` of the guide with the code span before it (utils/guides.py)."""
    return read_guide_locations(guides)


def check_guide_line_numbers(guides: Sequence[str | Path] = GUIDES) -> list[str]:
    """Check every ``file.py:LINE`` quoted in the guide against the installed libraries.

    For each location: the file exists, the line (and range end) exists, and the quoted line
    contains the code span written just before the location (the rules of
    ``utils.guides.check_guide``). A range must not run past the end of the definition that
    starts on its first line.
    Returns: a list of problems, empty when every location holds; the first entries name
             version mismatches.
    """
    problems = version_problems()
    for guide in guides:
        problems += check_guide(guide, resolve_source, "transformers or open_clip")
    return problems


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict:
    """Check the reading's claims, then the four modifications of transformers' CLIP.

    Returns: a flat dict of the measured numbers (and a few lists).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=10, lr=1e-2,
                    out="runs/12_CLIP/l4_hf", devices=("cpu",), counts_steps=True, threads=1)
    set_help(parser,
        dataset=("the image task of parts 1-4: digits (scikit-learn's, offline) or "
                 "cifar10 (needs --data-root with CIFAR-10 or its subset); "
                 "default: %(default)s"),
        lr="learning rate of part 4 (default: %(default)s)",
        batch_size=("distinct classes (image-caption pairs) per step of part 4, "
                    "2..10 (default: %(default)s)"),
    )
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a CLIP folder in transformers' layout (config.json, weights, "
                             "tokenizer files, preprocessor_config.json): parts 1-4 on its "
                             "weights (default: a tiny random CLIPModel, no download)")
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="fine-tuning steps of part 4 (default: %(default)s)")
    parser.add_argument("--train-size", type=non_negative_int, default=0,
                        help="use this many training images for parts 3 and 4; 0 = all "
                             "(default: %(default)s)")
    parser.add_argument("--probe-c", type=positive_float, default=1.0,
                        help="inverse L2 strength C of the logistic regression (part 3; "
                             "default: %(default)s)")
    parser.add_argument("--skip-claims", action="store_true",
                        help="skip part 0 (the checks of the reading's claims)")
    args = parse_args(parser, argv)
    if not 2 <= args.batch_size <= len(CLASS_NAMES[args.dataset]):
        parser.error(f"argument --batch-size: distinct classes per step, 2.."
                     f"{len(CLASS_NAMES[args.dataset])}; got {args.batch_size}")
    if args.checkpoint is not None:
        try:
            check_checkpoint_dir(args.checkpoint)
        except CheckpointError as err:
            parser.error(f"argument --checkpoint: {err}")
    seed_everything(args.seed)
    out_dir = prepare_out_dir(args.out)
    with torch_threads(args.threads):
        return _run(args, out_dir)


def _run(args: argparse.Namespace, out_dir: Path) -> dict:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"open_clip {open_clip.__version__}")
    start = time.perf_counter()
    results: dict = {} if args.skip_claims else reading_claims(args.seed)
    if args.checkpoint is not None:
        model, processor = load_checkpoint(args.checkpoint)
        source = f"checkpoint {args.checkpoint}"
    else:
        model, processor = toy_model(args.seed), toy_processor()
        source = "a tiny random CLIPModel (2 + 2 layers, width 32, joint space 16)"
    names = CLASS_NAMES[args.dataset]
    data = task_data(args.dataset, processor, args.data_root, args.train_size, args.seed)
    print(f"\nmodel: {source}; task {args.dataset}: {len(data['y_train'])} training, "
          f"{len(data['y_test'])} test images of {tuple(data['x_test'].shape[1:])}")
    test_features = batched_image_embeddings(model, data["x_test"], normalize=False,
                                             progress=args.progress)
    results.update(_ensembling_part(model, processor.tokenizer, names, test_features, data))
    results.update(_similarity_part(model, processor, names, data, out_dir))
    results.update(_probe_part(args, model, data, test_features))
    results.update(_finetune_part(args, model, processor.tokenizer, names, data, out_dir))
    results["seconds"] = time.perf_counter() - start
    print(f"\ndone in {results['seconds']:.1f} s; pictures in {out_dir}")
    return results


def _zero_shot(model, tokenizer, names, features, labels) -> dict[str, float]:
    single = zero_shot_classifier(model, tokenizer, names, [SINGLE_TEMPLATE])
    ensemble = zero_shot_classifier(model, tokenizer, names, ENSEMBLE_TEMPLATES)
    return {"single": zero_shot_accuracy(model, features, labels, single),
            "ensemble": zero_shot_accuracy(model, features, labels, ensemble)}


def _ensembling_part(model, tokenizer, names, test_features, data) -> dict:
    print(f"\n1. prompt ensembling: {len(ENSEMBLE_TEMPLATES)} templates per class name")
    r = _zero_shot(model, tokenizer, names, test_features, data["y_test"])
    chance = 1 / len(names)
    print(f"  zero-shot test accuracy: one prompt {SINGLE_TEMPLATE!r} {r['single']:.3f}, "
          f"ensemble {r['ensemble']:.3f} (chance {chance:.3f})")
    return {"zero_shot_single": r["single"], "zero_shot_ensemble": r["ensemble"]}


def _similarity_part(model, processor, names, data, out_dir) -> dict:
    print("\n2. image-text similarity and the image tower's attention")
    picks = torch.stack([torch.nonzero(data["y_test"] == k).flatten()[0]
                         for k in range(min(6, len(names)))])
    pixels = data["x_test"][picks]
    captions = [SINGLE_TEMPLATE.format(names[k]) for k in range(len(picks))]
    ids = encode_texts(processor.tokenizer, captions, text_max_length(model))
    similarity = similarity_matrix(model, pixels, **ids)
    with torch.no_grad():
        reference = model(pixel_values=pixels, **ids).logits_per_image
    images = displayable(pixels, processor.image_processor.image_mean,
                         processor.image_processor.image_std)
    path = out_dir / "similarity.png"
    plot_similarity(similarity, images, captions, path,
                    title="exp(logit_scale) x cosine similarity")
    attentions = vision_attentions(model, pixels[:4])
    maps = {"[CLS], last layer": cls_attention(attentions),
            "rollout": attention_rollout(attentions)}
    attention_path = out_dir / "attention.png"
    plot_attention_over_images(images[:4], maps, attention_path,
                               title="image tower attention (mean over heads)")
    diff = float((similarity - reference).abs().max())
    diagonal = float((similarity.argmax(dim=1) == torch.arange(len(picks))).float().mean())
    print(f"  similarity {tuple(similarity.shape)} vs CLIPModel.logits_per_image: {diff:.1e}; "
          f"each image's best caption is its own for {diagonal:.2f} of them")
    print(f"  attentions {tuple(attentions.shape)} (B, layers, heads, T, T); written "
          f"{path} and {attention_path}")
    return {"similarity_shape": tuple(similarity.shape), "similarity_diff": diff,
            "similarity_diagonal": diagonal, "attention_shape": tuple(attentions.shape),
            "similarity_png": str(path), "attention_png": str(attention_path)}


def _probe_part(args, model, data, test_features) -> dict:
    print("\n3. a linear probe (logistic regression) on the frozen image embeddings")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_features = batched_image_embeddings(model, data["x_train"], normalize=False,
                                              progress=args.progress)
    r = linear_probe(train_features, data["y_train"], test_features, data["y_test"],
                     C=args.probe_c, seed=args.seed)
    unchanged = all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    print(f"  {train_features.shape[1]}-dimensional features; test accuracy {r['accuracy']:.3f} "
          f"(train {r['train_accuracy']:.3f}) vs majority baseline {r['baseline']:.3f}; "
          f"CLIPModel unchanged: {unchanged}")
    return {"probe_accuracy": r["accuracy"], "probe_train_accuracy": r["train_accuracy"],
            "probe_baseline": r["baseline"], "probe_model_unchanged": unchanged}


def _finetune_part(args, model, tokenizer, names, data, out_dir) -> dict:
    print(f"\n4. fine-tuning the projections and logit_scale only ({args.steps} steps, "
          f"{args.batch_size} pairs per step, lr {args.lr:g})")
    tuned = copy.deepcopy(model)
    before = {k: v.clone() for k, v in tuned.state_dict().items()}
    test_before = batched_image_embeddings(tuned, data["x_test"], normalize=False)
    zero_before = _zero_shot(tuned, tokenizer, names, test_before, data["y_test"])
    r = finetune_projections(tuned, tokenizer, data, names, steps=args.steps, lr=args.lr,
                             batch_size=args.batch_size, seed=args.seed,
                             progress=args.progress)
    after = tuned.state_dict()
    changed = sorted(k for k in after if not torch.equal(after[k], before[k]))
    test_after = batched_image_embeddings(tuned, data["x_test"], normalize=False)
    zero_after = _zero_shot(tuned, tokenizer, names, test_after, data["y_test"])
    trainable = sum(tuned.get_parameter(n).numel() for n in r["trainable"])
    total = sum(p.numel() for p in tuned.parameters())
    print(f"  {trainable:,} trainable parameters of {total:,}; changed: {', '.join(changed)}")
    print(f"  loss {r['first_loss']:.3f} -> {r['last_loss']:.3f} ({r['seconds']:.1f} s); "
          f"logit_scale {float(before['logit_scale']):.3f} -> {tuned.logit_scale.item():.3f}")
    print(f"  zero-shot test accuracy, held-out prompts: one prompt {zero_before['single']:.3f}"
          f" -> {zero_after['single']:.3f}, ensemble {zero_before['ensemble']:.3f} -> "
          f"{zero_after['ensemble']:.3f}")
    plot_curves({"contrastive loss": r["losses"]}, path=out_dir / "finetune_loss.png",
                xlabel="step", title="fine-tuning the projections and the temperature")
    return {"finetune_losses": r["losses"], "finetune_first_loss": r["first_loss"],
            "finetune_last_loss": r["last_loss"], "finetune_changed": changed,
            "finetune_trainable": trainable, "finetune_logit_scale": tuned.logit_scale.item(),
            "finetune_zero_shot_before": zero_before, "finetune_zero_shot_after": zero_after}


def reading_claims(seed: int = 0) -> dict:
    """Part 0: every check of the reading's claims, printed; returns the numbers."""
    results: dict = {}
    print("\n0. the reading's claims (tiny random models, float64)")
    problems = check_guide_line_numbers()
    results["guide_locations"] = len(guide_locations())
    results["guide_problems"] = problems
    print(f"  guide: {results['guide_locations']} quoted file:line locations, {len(problems)} "
          "problems" + "".join(f"\n    {p}" for p in problems))
    r = eos_pooling_rules(seed)
    print(f"  pooling: first end token at {r['first_eos_index']} (vs pooler_output "
          f"{r['first_eos_diff']:.1e}); legacy eos_token_id=2 takes the argmax "
          f"{r['legacy_index']} ({r['legacy_diff']:.1e}): an added token (id 49408) moves it "
          f"(feature off by {r['argmax_gap']:.2f})")
    results.update({f"pooling_{k}": v for k, v in r.items()})
    r = padding_and_causal_mask(seed)
    print(f"  padding: end-token vs 0 {r['eos_vs_zero']:.1e}, vs one at a time "
          f"{r['eos_vs_alone']:.1e}, mask vs none {r['mask_vs_no_mask']:.1e}; ids equal up to "
          f"the padding {r['same_ids']}; a token after the end changes the feature by "
          f"{r['after_eos']:.1e}, one before by {r['before_eos']:.2f}")
    results.update({f"padding_{k}": v for k, v in r.items()})
    r = logit_scale_claims(seed)
    print(f"  logit_scale initialised to {r['init']:.4f} (exp {r['init_exp']:.2f} = 1/0.07); "
          f"set to log(1000), logits / cosine = {r['ratio_at_1000']:.1f}: no clamp in forward")
    results.update({f"logit_scale_{k}": v for k, v in r.items()})
    r = loss_check(seed)
    print(f"  loss {r['loss']:.4f}: vs the symmetric cross-entropy by hand {r['vs_hand']:.1e}, "
          f"vs open_clip's ClipLoss {r['vs_open_clip']:.1e}")
    results.update({f"loss_{k}": v for k, v in r.items()})
    r = open_clip_port(seed)
    print(f"  open_clip CLIP -> CLIPModel (sdpa): image {r['image']:.1e}, text {r['text']:.1e}, "
          f"logits {r['logits']:.1e}; eager (float32 softmax) {r['eager_logits']:.1e}; "
          f"parameters {r['params_open_clip']:,} = {r['params_hf']:,}")
    results.update({f"port_{k}": v for k, v in r.items()})
    r = image_processor_check(seed)
    print(f"  CLIPImageProcessor: mean {r['mean']}, std {r['std']} (open_clip's the same: "
          f"{r['mean'] == r['open_clip_mean'] and r['std'] == r['open_clip_std']}); 14 x 10 -> "
          f"{r['resized_size']} -> crop {r['resized_shape'][1:]}; vs by hand: no resize "
          f"{r['no_resize_diff']:.1e}, resized {r['resized_levels']:.2f} grey levels")
    results.update({f"processor_{k}": v for k, v in r.items()})
    r = ensembling_vs_open_clip(seed)
    print(f"  our ensembled classifier vs open_clip's build_zero_shot_classifier: "
          f"{r['diff']:.1e}; rows unit norm to {r['norm_error']:.1e}")
    results.update({f"ensemble_{k}": v for k, v in r.items()})
    return results


if __name__ == "__main__":
    main()
