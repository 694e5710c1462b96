"""How fast is lesson 10's ViT (L3) against timm's VisionTransformer? Forward + backward.

Run from the repository root::

    python -m benchmarks.bench_vit                        # ViT-S/16 at 224, batch 8, CPU
    python -m benchmarks.bench_vit --small                # a quick run: ViT-Ti/16 at 64, batch 4
    python -m benchmarks.bench_vit --repeats 20 --threads 2 --json runs/bench_vit.json
    python -m benchmarks.bench_vit --device cuda --batch 64

One training step without the optimizer: ``zero_grad``, the forward pass, the cross-entropy
of the logits, ``backward`` (every parameter's gradient), on a batch of random images in
training mode with dropout 0. Ours is ``10_ViT/paper/vit_paper.py`` with
``attn_implementation="sdpa"`` (the fused kernel, F.scaled_dot_product_attention); timm's
``VisionTransformer`` of the same config holds the same weights (``convert.to_timm``) and
fuses its attention too (``fused_attn``), so both do the same arithmetic. The logits, the
loss and every gradient are checked equal first (float32, the scaled tolerance of
utils/testing.py); a difference stops the benchmark before anything is timed. Then ours and
timm's run in interleaved rounds; the median of the per-round ratios ours / timm, its
spread and the rounds a 5 % verdict needs (benchmarks/timing.py). Target: at most 1.05.
The one structural difference: our patch embedding is a Linear on the reshaped patches
(Equation 1 as written), timm's a stride-P convolution.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.timing import interleaved_times, ratio_stats
from utils import import_lesson
from utils.cli import non_negative_int, positive_int
from utils.testing import assert_close, float32_tol

vp = import_lesson("10_ViT.paper.vit_paper")
convert = import_lesson("10_ViT.paper.convert")

TARGET_RATIO = 1.05
DEFAULT = {"size": "small", "image_size": 224, "batch": 8}  # ViT-S/16 (DeiT-S), ImageNet
SMALL = {"size": "tiny", "image_size": 64, "batch": 4}  # --small: ViT-Ti/16, 16 patches


def make_models(setting: dict, seed: int = 0, device: str = "cpu"):
    """(config, ours, timm's VisionTransformer): the same random weights, fused attention
    on both, training mode, dropout 0, 1000 classes."""
    config = getattr(vp.ViTConfig, setting["size"])(
        image_size=setting["image_size"], patch_size=16, num_classes=1000,
        attn_implementation="sdpa")
    torch.manual_seed(seed)
    ours = vp.ViT(config).to(device).train()
    with torch.no_grad():  # every weight random, biases and LayerNorms included
        for parameter in ours.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    theirs = convert.to_timm(ours).train()
    assert all(block.attn.fused_attn for block in theirs.blocks)
    return config, ours, theirs


def make_batch(config, batch: int, seed: int = 1, device: str = "cpu"):
    """Random images (B, 3, H, W) and labels (B,)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, config.in_channels, *vp.as_pair(config.image_size),
                         generator=generator)
    labels = torch.randint(config.num_classes, (batch,), generator=generator)
    return images.to(device), labels.to(device)


def step(model, images, labels):
    """One forward + backward; returns (logits, loss)."""
    model.zero_grad(set_to_none=True)
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return logits, loss


def path_terms(config) -> int:
    """Additions along the longest chain of sums of one step (scaled float32 tolerance)."""
    per_layer = config.d_model + config.d_ff + config.num_patches + 4 * config.d_model
    return config.n_layers * per_layer * 4  # forward and backward, with headroom


def check_equal(config, ours, theirs, images, labels) -> float:
    """Logits, loss and every gradient of ours equal timm's; returns the largest difference."""
    tol = float32_tol(path_terms(config))
    (our_logits, our_loss), (their_logits, their_loss) = (step(ours, images, labels),
                                                          step(theirs, images, labels))
    assert_close(our_logits, their_logits, tol, name="logits")
    assert_close(our_loss, their_loss, tol, name="loss")
    worst = float((our_logits - their_logits).detach().abs().max())
    ours_by_name = dict(ours.named_parameters())
    # gradients compared at the scale of the whole gradient (the key bias's is 0 in truth)
    scale = max(float(p.grad.square().mean().sqrt()) for p in theirs.parameters())
    for their_name, parameter in theirs.named_parameters():
        name = convert.our_name_from_timm(their_name)
        grad = ours_by_name[name].grad.reshape(parameter.grad.shape)  # the patch weight: 4-D
        assert_close(grad, parameter.grad, tol, name=f"dL/d{name}", scale=scale)
        worst = max(worst, float((grad - parameter.grad).abs().max()))
    return worst


def main(argv: list[str] | None = None) -> dict:
    """Time one training step of our L3 ViT against timm's VisionTransformer."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: {SMALL} (default: {DEFAULT})")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="images per step (default: 8; --small 4)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="a multiple of 16 (default: 224; --small 64)")
    parser.add_argument("--repeats", type=positive_int, default=10,
                        help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=2,
                        help="untimed rounds first (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="default: %(default)s")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    setting = dict(SMALL if args.small else DEFAULT)
    setting["batch"] = args.batch or setting["batch"]
    setting["image_size"] = args.image_size or setting["image_size"]
    if setting["image_size"] % 16:
        parser.error(f"argument --image-size: expected a multiple of 16, got "
                     f"{setting['image_size']}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    config, ours, theirs = make_models(setting, device=args.device)
    images, labels = make_batch(config, setting["batch"], device=args.device)
    try:
        worst = check_equal(config, ours, theirs, images, labels)
    except AssertionError as error:
        raise SystemExit(f"ours and timm's compute different numbers, nothing was timed: "
                         f"{error}") from None

    def timed(model):
        def run():
            step(model, images, labels)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        return run

    times = interleaved_times({"ours": timed(ours), "timm": timed(theirs)}, args.repeats,
                              warmup=args.warmup)
    medians = {name: statistics.median(t) for name, t in times.items()}
    stats = ratio_stats(times, "ours", "timm")
    print(f"ViT-{setting['size'].capitalize()}/16 at {setting['image_size']} (L={config.n_layers}"
          f", D={config.d_model}, heads={config.n_heads}, {config.num_patches} patches), batch "
          f"{setting['batch']}, training step (forward + backward), float32, {args.device}, "
          f"{args.threads} thread(s), {args.repeats} interleaved rounds, fused attention on both")
    for name, label in (("ours", "ours (L3, sdpa)"), ("timm", "timm VisionTransformer")):
        print(f"  {label:24s} {1e3 * medians[name]:9.1f} ms")
    print(f"  ours / timm: {stats.summary()}")
    print(f"  target <= {TARGET_RATIO}: {stats.verdict(TARGET_RATIO)}; logits, loss and "
          f"gradients checked equal first (largest difference {worst:.2e})")
    results = {**setting, "threads": args.threads, "device": args.device,
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
