"""Train the low-level CLIP (``clip_lowlevel.py``) on generated image-caption pairs; test it
zero-shot and by retrieval.

    python 12_CLIP/pytorch_lowlevel/train.py                 # digit pairs, about 35 s
    python -m 12_CLIP.pytorch_lowlevel.train --epochs 4 --limit 200

Data: ``../paper/data.py``'s ``digit_pairs`` (scikit-learn's digits drawn in a colour, a size
and a position on a 32 x 32 canvas, captions from varied templates; no download) and CLIP's
byte-level BPE (``../paper/tokenizer.py``) trained on the training captions. The recipe
(Section 2.5): the symmetric cross-entropy of Figure 3 with the learned temperature, the
hand-written AdamW of lesson 08 (betas 0.9 / 0.98, eps 1e-6, decay on the matrices only),
lesson 10's linear warm-up then cosine decay, the pairs shuffled every epoch. Reports
zero-shot accuracy on the test digits with the prompt templates no training caption contains
(ensembled, Section 3.1.4) against chance, and recall@1 both ways on the test pairs; plots
the loss and the zero-shot confusion matrix.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_confusion_matrix, plot_curves

clip = import_lesson("12_CLIP.pytorch_lowlevel.clip_lowlevel")
# the pairs, CLIP's tokenizer and the tensor-only helpers of zero-shot and retrieval (the
# prompt padding and cut, the argmax over classes, recall@k) as the L3 script uses them
data = import_lesson("12_CLIP.paper.data")
tokenization = import_lesson("12_CLIP.paper.tokenizer")
zero_shot = import_lesson("12_CLIP.paper.zero_shot")
warmup_cosine_lr = import_lesson("10_ViT.pytorch_lowlevel.vit_lowlevel").warmup_cosine_lr

# digits: 4 drawings of each of the 1,437 training digits (5,748 pairs); 20 epochs of
# batches of 128 (900 steps) of a 1 + 1 layer, 64-wide CLIP take about 35 s on one thread
DATASET_DEFAULTS = {
    "digits": {"epochs": 20, "batch_size": 128, "lr": 3e-3},
}


# --------------------------------------------------------------------------------------
# 1. Training: Figure 3 on shuffled batches, hand-written AdamW
# --------------------------------------------------------------------------------------


def batch_loss(params: dict, config, images: torch.Tensor, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> torch.Tensor:
    """Figure 3 on one batch of B matched pairs: the (B, B) scaled cosine similarities,
    pair i on the diagonal, and their symmetric cross-entropy (both directions, averaged).
    Inputs: images (B, C, H, W), input_ids and attention_mask (B, T). Returns a scalar."""
    logits_per_image, _ = clip.forward(params, config, images, input_ids, attention_mask,
                                       training=True)  # (B, B)
    return clip.contrastive_loss(logits_per_image)


def shuffled_batches(count: int, batch_size: int,
                     generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches: the indices 0..count-1 in a fresh random order, cut into
    batch_size pieces (the last may be shorter). The negatives of a pair are the rest of
    its batch: a fixed order would show it the same ones every epoch."""
    order = torch.randperm(count, generator=generator)  # (count,)
    return list(order.split(batch_size))


def train(params: dict, config, images: torch.Tensor, input_ids: torch.Tensor,
          attention_mask: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
          warmup: float = 0.1, weight_decay: float = 0.2, seed: int = 0,
          progress: bool = False) -> dict[str, list[float]]:
    """AdamW (lesson 08's, Section 2.5's betas and eps) on ``batch_loss``, the rate set every
    step (linear warm-up over ``warmup`` of the steps, then cosine), in place on ``params``.

    Inputs: images (N, C, H, W) normalised; input_ids, attention_mask (N, T)
    Returns: {"loss", "lr", "scale" (exp t, clipped): per step; "epoch_loss": per epoch}
    """
    groups = clip.param_groups(params, weight_decay)
    generator = torch.Generator().manual_seed(seed)
    total_steps = epochs * -(-len(images) // batch_size)
    warmup_steps = max(1, round(warmup * total_steps))
    history: dict[str, list[float]] = {"loss": [], "lr": [], "scale": [], "epoch_loss": []}
    state, step = None, 0
    bar = tqdm(range(epochs), desc="CLIP (L2)", disable=not progress, leave=False)
    for _ in bar:
        losses = []
        for batch in shuffled_batches(len(images), batch_size, generator):
            batch = batch.to(images.device)
            for p in params.values():
                p.grad = None
            loss = batch_loss(params, config, images[batch], input_ids[batch],
                              attention_mask[batch])
            loss.backward()
            rate = warmup_cosine_lr(step, lr, warmup_steps, total_steps)
            state = clip.adamw_step(groups, rate, betas=(0.9, 0.98), eps=1e-6, state=state)
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; "
                                         "lower --lr")
            history["loss"].append(losses[-1])
            history["lr"].append(rate)
            history["scale"].append(float(clip.logit_scale(params, config).detach()))
            step += 1
        history["epoch_loss"].append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history['epoch_loss'][-1]:.3f}")
    return history


# --------------------------------------------------------------------------------------
# 2. Evaluation: embeddings, the ensembled zero-shot classifier, retrieval
# --------------------------------------------------------------------------------------


@torch.no_grad()
def embed_images(params: dict, config, images: torch.Tensor,
                 batch_size: int = 256) -> torch.Tensor:
    """images (N, C, H, W), normalised as in training -> (N, E) unit rows."""
    return torch.cat([clip.l2_normalize(clip.encode_image(params, config,
                                                          images[start:start + batch_size]))
                      for start in range(0, len(images), batch_size)])


@torch.no_grad()
def embed_texts(params: dict, config, tokenizer, texts: Sequence[str],
                batch_size: int = 256) -> torch.Tensor:
    """texts (N str) -> (N, E) unit rows; tokens padded with the end token and cut to the
    longest text of each batch (at most the text tower's max_len)."""
    device = params["logit_scale"].device
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = zero_shot.tokenize(tokenizer, texts[start:start + batch_size],
                                    config.text.max_len)  # (b, T) each
        chunks.append(clip.l2_normalize(clip.encode_text(
            params, config, tokens["input_ids"].to(device),
            tokens["attention_mask"].to(device))))
    return torch.cat(chunks)


def zero_shot_weights(params: dict, config, tokenizer, class_names: Sequence[str],
                      templates: Sequence[str]) -> torch.Tensor:
    """The zero-shot classifier with prompt ensembling (Section 3.1.4), one row per class:

        w_k = normalise( (1 / M) sum_m normalise(f_text(template_m(class_k))) )

    class_names (K str), templates (M str with "{}") -> weights (K, E), unit rows.
    """
    prompts = [template.format(name) for name in class_names for template in templates]
    per_prompt = embed_texts(params, config, tokenizer, prompts)  # (K M, E) unit rows
    per_class = per_prompt.reshape(len(class_names), len(templates), -1)  # (K, M, E)
    return clip.l2_normalize(per_class.mean(dim=1))  # (K, E)


def evaluate(params: dict, config, tokenizer, pairs, test_images: torch.Tensor) -> dict:
    """Zero-shot accuracy on the test images (held-out prompts) and recall@1 both ways on
    the test pairs; also the predictions (N,) for the confusion matrix."""
    image_embeddings = embed_images(params, config, test_images)  # (N, E)
    text_embeddings = embed_texts(params, config, tokenizer, pairs.captions_test)  # (N, E)
    recall = zero_shot.recall_at_k(image_embeddings @ text_embeddings.T, ks=(1,))
    weights = zero_shot_weights(params, config, tokenizer, pairs.class_names,
                                pairs.prompt_templates)  # (K, E)
    predictions = zero_shot.zero_shot_predict(image_embeddings, weights).cpu()  # (N,)
    labels = torch.from_numpy(pairs.labels_test)
    return {"zero_shot_accuracy": float((predictions == labels).double().mean()),
            "chance": 1.0 / len(pairs.class_names),
            "recall_image_to_text_at_1": recall["image_to_text_at_1"],
            "recall_text_to_image_at_1": recall["text_to_image_at_1"],
            "predictions": predictions}


# --------------------------------------------------------------------------------------
# 3. The script
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="CLIP (Radford et al. 2021) from tensors and autograd: a ViT image tower, "
                    "a causal text tower, the symmetric contrastive loss, hand-written AdamW; "
                    "trained on generated digit-caption pairs (no download), tested zero-shot "
                    f"and by retrieval. Per-dataset defaults: {DATASET_DEFAULTS}")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/12_CLIP/l2_clip", threads=1)
    parser.add_argument("--variants", type=positive_int, default=4,
                        help="drawings of each training digit, each with its own colour, size, "
                             "position and caption (default: %(default)s)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="only the first N training and test digits (default: all)")
    parser.add_argument("--patch-size", type=positive_int, default=8,
                        help="patch side, dividing the image side 32 (default: %(default)s)")
    parser.add_argument("--d-model", type=positive_int, default=64,
                        help="width of both towers (default: %(default)s)")
    parser.add_argument("--layers", type=positive_int, default=1,
                        help="layers of each tower (default: %(default)s)")
    parser.add_argument("--heads", type=positive_int, default=4,
                        help="attention heads, dividing --d-model (default: %(default)s)")
    parser.add_argument("--embed-dim", type=positive_int, default=64,
                        help="the joint embedding space (default: %(default)s)")
    parser.add_argument("--context-length", type=positive_int, default=32,
                        help="text positions, >= 2; longer captions are cut "
                             "(default: %(default)s)")
    parser.add_argument("--vocab-size", type=positive_int, default=1000,
                        help="the BPE vocabulary trained on the captions stops here or when no "
                             "pair repeats (default: %(default)s; at least 514)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.2,
                        help="AdamW's decoupled weight decay on the matrices "
                             "(default: %(default)s, Section 2.5)")
    parser.add_argument("--warmup", type=probability, default=0.1,
                        help="share of the steps spent warming up (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level CLIP on the digit pairs; test it zero-shot and by retrieval.

    Returns: {"zero_shot_accuracy" (test digits, held-out prompts, ensembled), "chance",
             "recall_image_to_text_at_1", "recall_text_to_image_at_1" (test pairs),
             "first_loss", "final_loss" (mean training loss of the first and the last
             epoch), "train_seconds"}
    """
    parser = build_parser()
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if data.CANVAS % args.patch_size:
        parser.error(f"argument --patch-size: {args.patch_size} does not divide the image "
                     f"side {data.CANVAS}")
    if args.d_model % args.heads:
        parser.error(f"argument --heads: {args.heads} does not divide --d-model "
                     f"{args.d_model}")
    if args.context_length < 2:
        parser.error("argument --context-length: expected an integer >= 2 (the start and end "
                     f"tokens), got {args.context_length}")
    if args.vocab_size < 514:
        parser.error(f"argument --vocab-size: expected at least 514 (the 512 byte symbols and "
                     f"2 special tokens), got {args.vocab_size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: pairs, tokenizer, model, training, evaluation, plots."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors(hint="the default --dataset digits needs no download"):
        pairs = data.digit_pairs(variants=args.variants, seed=args.seed, limit=args.limit)
    tokenizer = tokenization.CLIPTokenizer.train(pairs.captions_train, args.vocab_size)
    mean = pairs.images_train.mean(axis=(0, 2, 3))[:, None, None]  # (3, 1, 1)
    std = pairs.images_train.std(axis=(0, 2, 3))[:, None, None] + 1e-6

    def normalise(images: np.ndarray) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (x - mean) / std per channel (training statistics)."""
        return torch.from_numpy((images - mean) / std).float().to(device)

    tokens = zero_shot.tokenize(tokenizer, pairs.captions_train, args.context_length)
    config = clip.CLIPConfig(
        vision=clip.CLIPVisionConfig(image_size=data.CANVAS, patch_size=args.patch_size,
                                     d_model=args.d_model, n_layers=args.layers,
                                     n_heads=args.heads),
        text=clip.CLIPTextConfig(vocab_size=len(tokenizer), max_len=args.context_length,
                                 d_model=args.d_model, n_layers=args.layers,
                                 n_heads=args.heads, eos_token_id=tokenizer.eot_token_id),
        embed_dim=args.embed_dim)
    params = clip.init_params(config, seed=args.seed, device=device)
    print(f"{pairs.name}: {len(pairs.captions_train)} training / {len(pairs.captions_test)} "
          f"test pairs; BPE vocabulary of {len(tokenizer)}; CLIP (L2): 2 x {args.layers} "
          f"layers, width {args.d_model}, joint space {args.embed_dim}, "
          f"{sum(p.numel() for p in params.values()):,} parameters")
    started = time.perf_counter()
    history = train(params, config, normalise(pairs.images_train),
                    tokens["input_ids"].to(device), tokens["attention_mask"].to(device),
                    epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    warmup=args.warmup, weight_decay=args.weight_decay, seed=args.seed,
                    progress=args.progress)
    seconds = time.perf_counter() - started
    results = evaluate(params, config, tokenizer, pairs, normalise(pairs.images_test))
    n_test = len(pairs.captions_test)
    print(f"CLIP (L2): {args.epochs} epochs, {len(history['loss'])} steps in {seconds:.1f} s "
          f"on {device}; loss {history['epoch_loss'][0]:.3f} -> "
          f"{history['epoch_loss'][-1]:.3f}, scale exp(t) = {history['scale'][-1]:.1f}")
    print(f"zero-shot accuracy (test digits, {len(pairs.prompt_templates)} prompts no training "
          f"caption contains): {results['zero_shot_accuracy']:.4f} (chance "
          f"{results['chance']:.4f})")
    print(f"retrieval on {n_test} test pairs: image->text R@1 "
          f"{results['recall_image_to_text_at_1']:.4f}, text->image R@1 "
          f"{results['recall_text_to_image_at_1']:.4f} (chance {1 / n_test:.4f})")
    plot_curves({"contrastive loss (training batches)": history["loss"]},
                path=out / "loss.png", xlabel="step", ylabel="symmetric cross-entropy (nats)",
                title=f"L2 CLIP on {pairs.name}")
    plot_confusion_matrix(pairs.labels_test, results["predictions"].numpy(),
                          class_names=pairs.class_names, path=out / "confusion.png",
                          title="zero-shot on the test digits (held-out prompts)")
    print(f"plots written to {out}")
    return {**{key: value for key, value in results.items() if key != "predictions"},
            "first_loss": history["epoch_loss"][0], "final_loss": history["epoch_loss"][-1],
            "train_seconds": seconds}


if __name__ == "__main__":
    main()
