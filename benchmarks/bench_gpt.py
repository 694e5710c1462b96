"""How fast is lesson 09's GPT (L3) against transformers' GPT2LMHeadModel? On the CPU.

Run from the repository root::

    python -m benchmarks.bench_gpt                       # nanoGPT's CPU model, batch 12 x 64
    python -m benchmarks.bench_gpt --repeats 40 --threads 2 --json runs/bench_gpt.json

(a) One training iteration, as ``09_GPT/paper/train.py`` runs it: forward, the next-token
    loss, backward, AdamW step (decay on matrices only, the same groups for both). Four
    contenders in interleaved rounds, each with its own copy of the same weights (ours
    copied into transformers with ``convert.to_hf``) and its own optimizer: ours
    (``09_GPT/paper/gpt_paper.py``) with eager attention (the equation step by step) and
    with sdpa (PyTorch's fused kernel), transformers' ``GPT2LMHeadModel`` with
    ``attn_implementation="sdpa"`` and ``"eager"``. Every round feeds all four the same
    batch. The loss and every gradient are checked equal first (float32, the scaled
    tolerance of utils/testing.py); then the median of the per-round ratios ours / the
    faster transformers model, its spread, and the verdict against the target 1.0
    (benchmarks/timing.py).
(b) Cached greedy generation: ``GPT.generate(do_sample=False)`` against transformers'
    ``generate(do_sample=False)``, both with a key/value cache, on the same weights and the
    same prompt: the tokens are checked equal first; then new tokens per second.

The model: ``--config nano`` (nanoGPT's CPU run on Tiny Shakespeare: 4 layers, 4 heads,
128 wide, context 64, vocabulary 65; the default) or ``gpt2`` (GPT-2 small, 124 M
parameters; slow). Dropout 0, so that both compute the same numbers. ``--threads``
(default 1, the most repeatable on a shared machine).
"""

from __future__ import annotations

import argparse
import dataclasses
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

gpt = import_lesson("09_GPT.paper.gpt_paper")
convert = import_lesson("09_GPT.paper.convert")

TARGET_RATIO = 1.0
CONFIGS = {"nano": lambda: gpt.GPTConfig.nano(vocab_size=65, dropout=0.0, attn_dropout=0.0),
           "gpt2": lambda: gpt.GPTConfig.gpt2(dropout=0.0, attn_dropout=0.0)}
OURS = ("ours eager", "ours sdpa")
THEIRS = ("transformers sdpa", "transformers eager")


def make_models(config_name: str, seed: int = 0) -> tuple:
    """(config, {name: model}): ours (eager, sdpa) and transformers' GPT2LMHeadModel (sdpa,
    eager), all with the same random weights, in training mode."""
    config = CONFIGS[config_name]()
    torch.manual_seed(seed)
    models = {}
    for implementation in ("eager", "sdpa"):
        ours = gpt.GPT(dataclasses.replace(config, attn_implementation=implementation))
        if models:
            ours.load_state_dict(models["ours eager"].state_dict())
        models[f"ours {implementation}"] = ours
        models[f"transformers {implementation}"] = convert.to_hf(
            models["ours eager"], attn_implementation=implementation)
    for model in models.values():
        model.train()
    return config, models


def make_batches(config, batch: int, length: int, count: int, seed: int = 1) -> list:
    """``count`` batches (x, y) of random ids, y the next token of x (nanoGPT's windows)."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        rows = torch.randint(config.vocab_size, (batch, length + 1), generator=generator)
        batches.append((rows[:, :-1], rows[:, 1:]))
    return batches


def logits_of(model, x: torch.Tensor) -> torch.Tensor:
    """(B, T, V) next-token logits of ours or transformers'."""
    return model(x) if isinstance(model, gpt.GPT) else model(input_ids=x).logits


class TrainingIteration:
    """One iteration of train.py's loop on ``model`` with its own AdamW."""

    def __init__(self, model, lr: float = 1e-3):
        self.model = model
        self.optimizer = gpt.make_optimizer(model, lr, weight_decay=0.1, betas=(0.9, 0.99))

    def loss_and_gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = gpt.lm_loss(logits_of(self.model, x), y)
        loss.backward()
        return loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.loss_and_gradients(x, y)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return loss


def path_terms(config) -> int:
    """Additions along the longest chain of sums of one iteration (scaled tolerance)."""
    d_ff = config.d_ff or 4 * config.d_model
    per_layer = 3 * config.d_model + d_ff + config.max_len  # projections, FFN, attention
    return config.n_layers * per_layer * 4  # forward and backward, with headroom


def check_equal(config, ours, theirs, batch) -> float:
    """Loss and every gradient of ``ours`` equal ``theirs``'s; returns the largest
    difference of a gradient."""
    tol = float32_tol(path_terms(config))
    x, y = batch
    ours_loss = TrainingIteration(ours).loss_and_gradients(x, y)
    their_loss = TrainingIteration(theirs).loss_and_gradients(x, y)
    assert_close(ours_loss.detach(), their_loss.detach(), tol, name="loss")
    ours_grads = {name: p.grad for name, p in ours.named_parameters()}
    theirs_grads = {}
    for hf_name, p in theirs.named_parameters():
        name, transpose = convert.our_name(hf_name)  # Conv1D stores (in, out): transpose
        theirs_grads[name] = p.grad.T if transpose else p.grad
    assert set(ours_grads) == set(theirs_grads), set(ours_grads) ^ set(theirs_grads)
    scale = max(float(g.square().mean().sqrt()) for g in theirs_grads.values())
    worst = 0.0
    for name, grad in ours_grads.items():
        assert_close(grad, theirs_grads[name], tol, name=f"dL/d{name}", scale=scale)
        worst = max(worst, float((grad - theirs_grads[name]).abs().max()))
    ours.zero_grad(set_to_none=True)
    theirs.zero_grad(set_to_none=True)
    return worst


def greedy(model, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """(1, P + new_tokens) ids, greedy, with the key/value cache."""
    if isinstance(model, gpt.GPT):
        return model.generate(prompt, new_tokens, do_sample=False, use_cache=True)
    return model.generate(prompt, attention_mask=torch.ones_like(prompt),
                          max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                          do_sample=False, use_cache=True, pad_token_id=0)


def _time(contenders: dict, repeats: int) -> tuple[dict, dict]:
    """Interleaved rounds; (median seconds per contender, {ours name: RatioStats against
    the faster transformers model})."""
    times = interleaved_times(contenders, repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    faster = min(THEIRS, key=medians.get)
    return medians, {name: (faster, ratio_stats(times, name, faster)) for name in OURS}


def _report(title: str, medians: dict, stats: dict, unit) -> dict:
    print(title)
    for name in (*OURS, *THEIRS):
        seconds = medians[name]
        print(f"  {name:20s} {unit(seconds)}")
    summary = {}
    for name, (faster, ratio) in stats.items():
        verdict = ratio.verdict(TARGET_RATIO)
        print(f"  {name} / {faster}: {ratio.summary()}; target <= {TARGET_RATIO}: {verdict}")
        summary[name] = {"against": faster, "ratio": ratio.median,
                         "ratio_spread": ratio.as_dict(), "verdict": verdict}
    return summary


def main(argv: list[str] | None = None) -> dict:
    """Time a training iteration and cached greedy generation of our L3 GPT against
    transformers' GPT2LMHeadModel (eager and sdpa), after checking they compute the same."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", choices=tuple(CONFIGS), default="nano",
                        help="default: %(default)s")
    parser.add_argument("--batch", type=positive_int, default=12, help="default: %(default)s")
    parser.add_argument("--length", type=positive_int, default=None,
                        help="tokens per sequence (default: the context, 64 for nano)")
    parser.add_argument("--repeats", type=positive_int, default=20,
                        help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--prompt-length", type=positive_int, default=8,
                        help="prompt tokens for generation (default: %(default)s)")
    parser.add_argument("--new-tokens", type=positive_int, default=None,
                        help="greedy tokens per generation (default: the context left)")
    parser.add_argument("--threads", type=positive_int, default=1, help="default: %(default)s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config, models = make_models(args.config)
    length = args.length or config.max_len
    if length > config.max_len:
        parser.error(f"argument --length: must be <= the context ({config.max_len})")
    new_tokens = args.new_tokens or config.max_len - args.prompt_length
    if args.prompt_length + new_tokens > config.max_len:
        parser.error(f"argument --new-tokens: the prompt ({args.prompt_length}) and "
                     f"{new_tokens} new tokens exceed the context ({config.max_len})")

    # (a) one training iteration
    batches = make_batches(config, args.batch, length, count=args.repeats + 2)
    worst = max(check_equal(config, models[ours], models[theirs], batches[0])
                for ours in OURS for theirs in THEIRS)
    iterations = {name: TrainingIteration(model) for name, model in models.items()}
    cursor = {name: 0 for name in models}

    def one_iteration(name: str):
        def run():
            x, y = batches[cursor[name] % len(batches)]
            cursor[name] += 1
            iterations[name](x, y)
        return run

    training_medians, stats = _time({name: one_iteration(name) for name in models},
                                    args.repeats)
    parameters = sum(p.numel() for p in models["ours eager"].parameters())
    training = _report(
        f"GPT {args.config} ({config.n_layers} layers, {config.n_heads} heads, "
        f"{config.d_model} wide, {parameters:,} parameters), batch {args.batch} x {length} "
        f"tokens, one training iteration (forward, loss, backward, clipping, AdamW step), "
        f"float32, {args.threads} thread(s), {args.repeats} interleaved rounds; loss and "
        f"gradients checked equal first (largest difference {worst:.2e})",
        training_medians, stats, lambda s: f"{1e3 * s:9.2f} ms")

    # (b) cached greedy generation
    for model in models.values():
        model.eval()
    prompt = torch.randint(config.vocab_size, (1, args.prompt_length),
                           generator=torch.Generator().manual_seed(2))
    expected = greedy(models["transformers sdpa"], prompt, new_tokens)
    for name, model in models.items():
        tokens = greedy(model, prompt, new_tokens)
        if not torch.equal(tokens, expected):
            raise AssertionError(f"{name}'s greedy tokens differ from transformers sdpa's: "
                                 f"{tokens.tolist()} != {expected.tolist()}")
    medians, stats = _time({name: (lambda m=model: greedy(m, prompt, new_tokens))
                            for name, model in models.items()}, args.repeats)
    generation = _report(
        f"cached greedy generation of {new_tokens} tokens after a prompt of "
        f"{args.prompt_length} (ratio of times: below 1 = ours faster); the tokens checked "
        f"equal first",
        medians, stats, lambda s: f"{new_tokens / s:9.0f} tokens/s")

    results = {"config": args.config, "batch": args.batch, "length": length,
               "threads": args.threads, "repeats": args.repeats,
               "max_abs_difference": worst, "training": training,
               "training_ms": {k: 1e3 * v for k, v in training_medians.items()},
               "generation": generation,
               "tokens_per_second": {k: new_tokens / v for k, v in medians.items()},
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count()}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
