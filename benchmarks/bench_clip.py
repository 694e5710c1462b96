"""How fast is lesson 12's CLIP (L3) against transformers' CLIPModel? Forward + backward.

Run from the repository root::

    python -m benchmarks.bench_clip                     # ViT-B/32, batch 16 pairs, CPU
    python -m benchmarks.bench_clip --small             # a quick run: the tiny config, batch 16
    python -m benchmarks.bench_clip --repeats 10 --threads 2 --json runs/bench_clip.json

One training step without the optimizer: ``zero_grad``, both towers, the logits, the
symmetric contrastive loss of Figure 3, ``backward`` (every parameter's gradient), on random
images and random captions of the full context (77 tokens, the end token last), in training
mode. Ours is ``12_CLIP/paper/clip_paper.py`` with ``attn_implementation="sdpa"``;
transformers' ``CLIPModel`` of the same config holds the same weights (``convert.to_hf``)
and uses its sdpa attention too. The logits, the loss and every gradient are checked equal
first (float32, the scaled tolerance of utils/testing.py); a difference stops the benchmark
before anything is timed. Then the two run in interleaved rounds; the median of the
per-round ratios ours / transformers, its spread and the rounds a 5 % verdict needs
(benchmarks/timing.py). Target: at most 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from benchmarks.timing import interleaved_times, ratio_stats
from utils import import_lesson
from utils.cli import non_negative_int, positive_int
from utils.testing import assert_close, float32_tol

clip = import_lesson("12_CLIP.paper.clip_paper")
convert = import_lesson("12_CLIP.paper.convert")

TARGET_RATIO = 1.05


def make_models(small: bool, seed: int = 0):
    """(config, ours, transformers' CLIPModel): the same random weights, sdpa on both."""
    config = (clip.CLIPConfig.tiny(attn_implementation="sdpa") if small
              else clip.CLIPConfig.vit_b_32(attn_implementation="sdpa"))
    torch.manual_seed(seed)
    ours = clip.CLIP(config).train()
    with torch.no_grad():  # every weight random, LayerNorms included
        for parameter in ours.parameters():
            if parameter.ndim > 0:
                parameter.add_(0.02 * torch.randn_like(parameter))
    theirs = convert.to_hf(ours, attn_implementation="sdpa").train()
    return config, ours, theirs


def make_batch(config, batch: int, seed: int = 1):
    """Random images (B, 3, H, W) and captions (B, max_len) with the end token last."""
    generator = torch.Generator().manual_seed(seed)
    size = config.vision.image_size
    images = torch.randn(batch, 3, size, size, generator=generator)
    end = config.text.eos_token_id
    ids = torch.randint(end, (batch, config.text.max_len), generator=generator)  # below end
    ids[:, -1] = end
    return images, ids


def step_ours(model, images, ids):
    model.zero_grad(set_to_none=True)
    logits_per_image, _ = model(images, ids)
    loss = clip.contrastive_loss(logits_per_image)
    loss.backward()
    return logits_per_image, loss


def step_theirs(model, images, ids):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, pixel_values=images, return_loss=True)
    out.loss.backward()
    return out.logits_per_image, out.loss


def check_equal(config, ours, theirs, images, ids) -> float:
    """Logits, loss and every gradient of ours equal transformers'; the largest difference."""
    widths = config.vision.d_model + config.text.d_model
    tol = float32_tol(4 * (config.vision.n_layers + config.text.n_layers) * 8 * widths)
    our_logits, our_loss = step_ours(ours, images, ids)
    their_logits, their_loss = step_theirs(theirs, images, ids)
    assert_close(our_logits, their_logits, tol, name="logits_per_image")
    assert_close(our_loss, their_loss, tol, name="loss")
    worst = float((our_logits - their_logits).detach().abs().max())
    theirs_by_name = dict(theirs.named_parameters())
    scale = max(float(p.grad.square().mean().sqrt()) for p in ours.parameters()
                if p.grad is not None)
    our_grads = _GradView(ours, {name: p.grad for name, p in ours.named_parameters()})
    # the port's own name map moves our gradients to transformers' names and layouts
    for name, grad in convert.state_from_ours(our_grads, convert.hf_pairs(config)).items():
        their = theirs_by_name[name].grad
        assert_close(grad.reshape(their.shape), their, tol, name=f"dL/d{name}", scale=scale)
        worst = max(worst, float((grad.reshape(their.shape) - their).abs().max()))
    return worst


class _GradView:
    """A stand-in model whose state_dict() holds the gradients, for convert.state_from_ours."""

    def __init__(self, model, grads):
        self.config, self._grads = model.config, grads

    def state_dict(self):
        return dict(self._grads)


def main(argv: list[str] | None = None) -> dict:
    """Time one training step of our L3 CLIP against transformers' CLIPModel."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--small", action="store_true",
                        help="a quick run: CLIPConfig.tiny() (default: ViT-B/32)")
    parser.add_argument("--batch", type=positive_int, default=16,
                        help="image-caption pairs per step (default: %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=10,
                        help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="untimed rounds first (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="default: %(default)s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config, ours, theirs = make_models(args.small)
    images, ids = make_batch(config, args.batch)
    try:
        worst = check_equal(config, ours, theirs, images, ids)
    except AssertionError as error:
        raise SystemExit(f"ours and transformers' compute different numbers, nothing was "
                         f"timed: {error}") from None
    times = interleaved_times({"ours": lambda: step_ours(ours, images, ids),
                               "transformers": lambda: step_theirs(theirs, images, ids)},
                              args.repeats, warmup=args.warmup)
    medians = {name: statistics.median(t) for name, t in times.items()}
    stats = ratio_stats(times, "ours", "transformers")
    name = "tiny" if args.small else "ViT-B/32"
    print(f"CLIP {name} ({sum(p.numel() for p in ours.parameters()):,} parameters), batch "
          f"{args.batch} pairs of {config.vision.image_size}x{config.vision.image_size} images "
          f"and {config.text.max_len} tokens, training step (forward + loss + backward), "
          f"float32, {args.threads} thread(s), {args.repeats} interleaved rounds, sdpa on both")
    for key, label in (("ours", "ours (L3, sdpa)"), ("transformers", "transformers CLIPModel")):
        print(f"  {label:24s} {1e3 * medians[key]:9.1f} ms")
    print(f"  ours / transformers: {stats.summary()}")
    print(f"  target <= {TARGET_RATIO}: {stats.verdict(TARGET_RATIO)}; logits, loss and "
          f"gradients checked equal first (largest difference {worst:.2e})")
    results = {"config": name, "batch": args.batch, "threads": args.threads,
               "ms": {k: 1e3 * v for k, v in medians.items()}, "ratio": stats.median,
               "ratio_spread": stats.as_dict(), "verdict": stats.verdict(TARGET_RATIO),
               "max_abs_difference": worst, "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
