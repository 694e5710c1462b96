"""How fast is lesson 08's BERT (L3) against transformers' BertModel? On the CPU.

Run from the repository root::

    python -m benchmarks.bench_bert                          # BERT-mini, batch 8, length 128
    python -m benchmarks.bench_bert --size small --repeats 20 --json runs/bench_bert.json

One training step of ``BertModel`` (forward + backward, every parameter gradient), in
training mode with dropout 0 so that both compute the same numbers, on a padded batch of
(``--batch``, ``--length``) = (8, 128) tokens with two segments. Three contenders, in
interleaved rounds: ours (``08_BERT/paper/bert_paper.py``: Equation 1 step by step by
default; ``--ours sdpa`` for its fused alternative) and transformers' ``BertModel`` with
``attn_implementation="eager"`` and ``"sdpa"``, all holding the same weights
(``from_hf``). The outputs and gradients are checked equal first (float32, the scaled
tolerance of utils/testing.py); then the median of the per-round ratios ours / the faster
transformers model, with its spread and the rounds a 5 % verdict needs
(benchmarks/timing.py). Target: at most 1.05.

Sizes: ``--size`` mini (L=4, H=256), small (L=4, H=512), medium (L=8, H=512) or base
(L=12, H=768; slow on a laptop CPU). ``--threads`` (default 1) for torch.
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
from utils.cli import positive_int
from utils.testing import assert_close, float32_tol

bert_paper = import_lesson("08_BERT.paper.bert_paper")
convert = import_lesson("08_BERT.paper.convert")

TARGET_RATIO = 1.05
SIZES = ("mini", "small", "medium", "base")


def make_models(size: str, seed: int = 0):
    """transformers' BertModel (eager and sdpa) and ours, with the same random weights."""
    import transformers

    config = getattr(bert_paper.BertConfig, size)(dropout=0.0, attn_dropout=0.0)
    torch.manual_seed(seed)
    eager = transformers.BertModel(convert.config_to_hf(config, attn_implementation="eager"))
    sdpa = transformers.BertModel(convert.config_to_hf(config, attn_implementation="sdpa"))
    sdpa.load_state_dict(eager.state_dict())
    ours = convert.from_hf(eager)
    for model in (eager, sdpa, ours):
        model.train()
    return config, ours, eager, sdpa


def make_batch(config, batch: int, length: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random ids with [CLS]/[SEP] ids 2/3, two segments, the last rows padded."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    lengths = torch.linspace(length, length // 2, batch).long()  # longest first
    attention_mask = (torch.arange(length)[None] < lengths[:, None]).long()
    token_type_ids = (torch.arange(length)[None] >= (lengths[:, None] // 2)).long()
    input_ids[:, 0] = 2
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids * attention_mask,
            "attention_mask": attention_mask}


def step(model, batch: dict, ours: bool):
    """One forward + backward; returns (last hidden states, pooled output)."""
    model.zero_grad(set_to_none=True)
    if ours:
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        hidden, pooled = out.hidden_states, out.pooled
    else:
        out = model(**batch)
        hidden, pooled = out.last_hidden_state, out.pooler_output
    (hidden.square().mean() + pooled.sum()).backward()
    return hidden, pooled


def path_terms(config) -> int:
    """Additions along the longest chain of sums of one step (scaled float32 tolerance)."""
    per_layer = config.d_model + config.d_ff + 4 * config.d_model  # projections, FFN, norms
    return config.n_layers * per_layer * 4  # forward and backward, with headroom


def check_equal(config, ours, hf, batch) -> float:
    """Outputs and every gradient of ours equal hf's; returns the largest difference."""
    tol = float32_tol(path_terms(config))
    a, b = step(ours, batch, True), step(hf, batch, False)
    mask = batch["attention_mask"].bool()
    assert_close(a[0][mask], b[0][mask], tol, name="hidden states (real tokens)")
    assert_close(a[1], b[1], tol, name="pooled output")
    ours_grads = dict(ours.named_parameters())
    # The key bias has a true gradient of 0 (softmax ignores a shift shared by a query's
    # scores): compare every gradient at the scale of the whole gradient.
    scale = max(float(p.grad.square().mean().sqrt()) for p in hf.parameters())
    worst = 0.0
    for hf_name, p in hf.named_parameters():
        name = convert.our_name(hf_name).removeprefix("bert.")  # BertModel: no prefix
        g = ours_grads[name].grad
        assert_close(g, p.grad, tol, name=f"dL/d{name}", scale=scale)
        worst = max(worst, float((g - p.grad).abs().max()))
    return worst


def main(argv: list[str] | None = None) -> dict:
    """Time one training step of our L3 BertModel against transformers' (eager, sdpa)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--size", choices=SIZES, default="mini", help="default: %(default)s")
    parser.add_argument("--batch", type=positive_int, default=8, help="default: %(default)s")
    parser.add_argument("--length", type=positive_int, default=128,
                        help="tokens per sequence (default: %(default)s)")
    parser.add_argument("--ours", choices=("eager", "sdpa"), default="eager",
                        help="our attention path (default: %(default)s, Equation 1)")
    parser.add_argument("--repeats", type=positive_int, default=10,
                        help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="default: %(default)s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config, ours, eager, sdpa = make_models(args.size)
    if args.length > config.max_len:
        parser.error(f"--length must be <= {config.max_len}")
    for layer in ours.layers:
        layer.attention.implementation = args.ours
    batch = make_batch(config, args.batch, args.length)
    worst = max(check_equal(config, ours, eager, batch), check_equal(config, ours, sdpa, batch))

    times = interleaved_times({"ours": lambda: step(ours, batch, True),
                               "eager": lambda: step(eager, batch, False),
                               "sdpa": lambda: step(sdpa, batch, False)}, args.repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    faster = "eager" if medians["eager"] <= medians["sdpa"] else "sdpa"
    stats = ratio_stats(times, "ours", faster)
    print(f"BERT-{args.size} (L={config.n_layers}, H={config.d_model}, A={config.n_heads}), "
          f"batch {args.batch} x {args.length} tokens, training step (forward + backward), "
          f"float32, {args.threads} thread(s), {args.repeats} interleaved rounds")
    for name, label in (("ours", f"ours (L3, {args.ours})"), ("eager", "transformers eager"),
                        ("sdpa", "transformers sdpa")):
        print(f"  {label:22s} {1e3 * medians[name]:9.1f} ms")
    print(f"  ours / transformers {faster}: {stats.summary()}")
    print(f"  target <= {TARGET_RATIO}: {stats.verdict(TARGET_RATIO)}; outputs and gradients "
          f"checked equal first (largest difference {worst:.2e})")
    results = {"size": args.size, "batch": args.batch, "length": args.length,
               "ours_attention": args.ours, "threads": args.threads,
               "ms": {k: 1e3 * v for k, v in medians.items()}, "faster_reference": faster,
               "ratio": stats.median, "ratio_spread": stats.as_dict(),
               "verdict": stats.verdict(TARGET_RATIO), "max_abs_difference": worst,
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count()}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
