"""Timing shared by the benchmarks: interleaved rounds, the median ratio and its spread.

On a shared machine the load changes while a benchmark runs. Timing ours and the
reference in *interleaved rounds* (each round runs every contender once, in turn) makes a
change of load hit both; the ratio is then taken *within each round*, and we report the
median of those per-round ratios with their spread (quartiles, min, max).

How many rounds does a verdict need? For n rounds the median's standard error is about
sqrt(pi/2) * sigma / sqrt(n) (sigma: the spread of the per-round ratios, estimated robustly
as IQR / 1.349). A "5 % verdict" (the ratio known to within +-5 %, 95 % confidence) needs

    1.96 * sqrt(pi/2) * sigma / sqrt(n)  <=  0.05 * median
    n  >=  (1.96 * 1.2533 * sigma / (0.05 * median))^2

which `RatioStats.rounds_for(0.05)` returns; the benchmarks print it next to the ratio.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RatioStats:
    """Per-round ratios ours / reference, summarised."""

    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.ratios) < 2:
            return self.ratios[0], self.ratios[0]
        q1, _, q3 = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q1, q3

    @property
    def sigma(self) -> float:
        """Robust spread of one round's ratio: IQR / 1.349 (= sigma for a normal)."""
        q1, q3 = self.quartiles
        return (q3 - q1) / 1.349

    def rounds_for(self, precision: float = 0.05) -> int:
        """Rounds for the median ratio to be known within +-precision (95 % confidence)."""
        if self.median <= 0:
            raise ValueError("ratios must be positive")
        need = (1.96 * math.sqrt(math.pi / 2) * self.sigma / (precision * self.median)) ** 2
        return max(3, math.ceil(need))

    def summary(self) -> str:
        q1, q3 = self.quartiles
        enough = self.rounds_for(0.05)
        verdict = "enough" if len(self.ratios) >= enough else "too few"
        return (f"{self.median:.3f}x (quartiles {q1:.3f}-{q3:.3f}, range "
                f"{min(self.ratios):.3f}-{max(self.ratios):.3f}, {len(self.ratios)} rounds; "
                f"a 5 % verdict needs {enough}: {verdict})")

    def as_dict(self) -> dict:
        q1, q3 = self.quartiles
        return {"median": self.median, "q1": q1, "q3": q3, "min": min(self.ratios),
                "max": max(self.ratios), "rounds": len(self.ratios),
                "rounds_for_5_percent": self.rounds_for(0.05)}


def interleaved_times(fns: dict[str, Callable[[], object]], rounds: int,
                      warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of every call of each fn, in rounds that call every fn once, in order.

    Inputs:  fns - name -> the work to time; rounds >= 1; warmup >= 0 untimed rounds.
    Returns: name -> list of ``rounds`` times (seconds).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_stats(times: dict[str, list[float]], ours: str, reference: str) -> RatioStats:
    """Per-round ratios ``times[ours][i] / times[reference][i]``."""
    return RatioStats(tuple(a / b for a, b in zip(times[ours], times[reference])))
