"""benchmarks/timing.py: the median of per-round ratios, its spread, and the rounds a 5 %
verdict needs."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.timing import RatioStats, interleaved_times, ratio_stats


def test_ratio_is_taken_within_each_round():
    # a load spike in round 2 slows both contenders: the per-round ratio is unaffected
    times = {"ours": [1.0, 10.0, 1.1], "ref": [0.5, 5.0, 0.55]}
    stats = ratio_stats(times, "ours", "ref")
    assert stats.ratios == (2.0, 2.0, 2.0)
    assert stats.median == 2.0 and stats.sigma == 0.0 and stats.rounds_for(0.05) == 2


def test_rounds_for_a_five_percent_verdict():
    stats = RatioStats((0.9, 1.0, 1.0, 1.1, 1.2, 0.8, 1.0, 1.05))
    q1, q3 = stats.quartiles
    sigma = (q3 - q1) / 1.349
    expected = math.ceil((1.2533 * sigma / (0.025 * stats.median)) ** 2)
    assert stats.rounds_for(0.05) == max(2, expected)
    assert stats.verdict(3.0) == "met"  # far below the target: decided at this spread
    assert stats.verdict(0.5) == "NOT met"
    assert stats.verdict(1.02).startswith("undecided: run")  # too close to call
    assert RatioStats((1.0, 1.0)).verdict(3.0).startswith("undecided")  # two rounds: no spread
    assert stats.rounds_for(0.10) < stats.rounds_for(0.05)  # a coarser verdict needs fewer
    assert "5 % verdict needs" in stats.summary()
    assert stats.as_dict()["rounds_for_5_percent"] == stats.rounds_for(0.05)


def test_interleaved_times_calls_each_function_once_per_round_in_turn():
    calls = []
    times = interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert [len(t) for t in times.values()] == [3, 3]
    with pytest.raises(ValueError, match="rounds"):
        interleaved_times({"a": lambda: None}, rounds=0)


def test_transformer_benchmark_checks_then_reports_the_spread(capsys):
    from utils.lessons import import_lesson

    bench = import_lesson("benchmarks.bench_transformer")
    results = bench.main(["--batch", "1", "--length", "4", "--d-model", "8", "--heads", "2",
                          "--d-ff", "16", "--repeats", "3"])
    assert results["l3_encoder_layer_vs_torch"]["same_outputs"]
    assert results["l3_encoder_layer_vs_torch"]["ratio_spread"]["rounds"] == 3
    assert "5 % verdict needs" in capsys.readouterr().out


def test_mlp_epoch_benchmark_interleaves_epochs_and_reports_the_spread(capsys):
    from utils.lessons import import_lesson

    bench = import_lesson("benchmarks.bench_mlp_epoch")
    results = bench.main(["--synthetic", "--images", "256", "--epochs", "3"])
    assert results["ratio_spread"]["rounds"] == 3 and results["ratio_l1_vs_torch"] > 0
    assert "per-epoch ratios" in capsys.readouterr().out


def test_bert_benchmark_checks_equal_steps_then_times(capsys):
    from utils.lessons import import_lesson

    bench = import_lesson("benchmarks.bench_bert")
    results = bench.main(["--batch", "2", "--length", "16", "--repeats", "2"])
    assert results["max_abs_difference"] < 1e-4 and results["ratio_spread"]["rounds"] == 2
    assert "checked equal first" in capsys.readouterr().out
    config, ours, eager, _ = bench.make_models("mini")
    batch = bench.make_batch(config, 2, 16)
    with torch.no_grad():
        eager.encoder.layer[0].output.dense.weight.mul_(1.01)  # a different model
    with pytest.raises(AssertionError):
        bench.check_equal(config, ours, eager, batch)
