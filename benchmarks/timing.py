"""Timing shared by the benchmarks: interleaved rounds, the median ratio and its spread.

On a shared machine the load changes while a benchmark runs. Timing ours and the
reference in *interleaved rounds* (each round runs every contender once, in turn) makes a
change of load hit both; the ratio is then taken *within each round*, and we report the
median of those per-round ratios with their spread (quartiles, min, max).

How many rounds does a verdict need? For n rounds the median's standard error is about
1.2533 * sigma / sqrt(n) (sigma: the spread of the per-round ratios, estimated robustly
as IQR / 1.349, so that one slow round does not move it). A "5 % verdict" (two standard
errors inside 5 % of the ratio) needs that error below 2.5 % of the median:

    n  >=  (1.2533 * sigma / (0.025 * median))^2

which `RatioStats.rounds_for(0.05)` returns; the benchmarks print it next to the ratio. A
target ratio is called met (or missed) only when the median plus (minus) two standard errors
stays below (above) it: 1.09x against a 3x target needs few rounds, 1.04x against 1.05x many.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

MEDIAN_SE_FACTOR = 1.2533  # se(median) = sqrt(pi / 2) sigma / sqrt(n) for normal data
IQR_PER_SIGMA = 1.349  # the interquartile range of a normal distribution, in sigmas


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
        return (q3 - q1) / IQR_PER_SIGMA

    @property
    def rel_se(self) -> float:
        """Standard error of the median ratio, relative to the median."""
        return MEDIAN_SE_FACTOR * self.sigma / math.sqrt(len(self.ratios)) / self.median

    def rounds_for(self, precision: float = 0.05) -> int:
        """Rounds for two standard errors of the median ratio to fit inside +-precision."""
        if self.median <= 0:
            raise ValueError("ratios must be positive")
        need = (MEDIAN_SE_FACTOR * self.sigma / (precision / 2 * self.median)) ** 2
        return max(2, math.ceil(need))

    def verdict(self, target: float) -> str:
        """Is the ratio below ``target``? "met" when the median plus two standard errors is,
        "NOT met" when the median minus two standard errors is above it, else "undecided"
        with the rounds that would decide it at the spread seen (at least 3 rounds always)."""
        n, median = len(self.ratios), self.median
        margin = 2 * self.rel_se * median
        if n >= 3 and median + margin <= target:
            return "met"
        if n >= 3 and median - margin > target:
            return "NOT met"
        gap = abs(target - median)
        needed = (math.ceil((2 * MEDIAN_SE_FACTOR * self.sigma / gap) ** 2) + 1 if gap > 0
                  else self.rounds_for(0.05))
        return f"undecided: run {max(3, n + 1, needed)} rounds"

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
