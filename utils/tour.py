"""The tour: run every implemented lesson's demo and print one results table.

    make demo                       # or: python -m utils.tour
    python -m utils.tour --lesson 01 --level L1
    python -m utils.tour --list

Each lesson registers its demos, and the target each must reach, in one place:
its ``tour.py`` (e.g. ``01_Linear_Logistic/tour.py``) defines ``STOPS``, a list of
:class:`TourStop`. A stop names a level script; the tour calls that script's
``main(argv)`` with the stop's arguments (offline default data, no progress
bars), times it, and compares the metric it returns with the target.

Output: a table (model, level, dataset, metric, trivial baseline, target, achieved,
seconds) on
stdout, the same table in ``runs/tour/results.md`` and ``results.json``, each
script's plots and log under ``runs/tour/<lesson>/<stop>/``. The exit status is
1 when any stop misses its target or fails, so the tour doubles as a check.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.lessons import import_lesson

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TourStop:
    """One demo of one level of one lesson, and the target it must reach."""

    model: str  # what the table calls it, e.g. "Softmax regression"
    level: str  # "L1" .. "L4"
    module: str  # dotted path of the level script, e.g. "01_Linear_Logistic.numpy.train_logistic"
    dataset: str  # passed as --dataset
    metric: str  # key of the dict that the script's main() returns
    target: float
    higher_is_better: bool = True
    args: tuple[str, ...] = ()  # further command-line arguments
    # The score of a model that ignores its input (majority class, the training mean,
    # independent pixels): a target must sit clearly beyond it, or a broken model that
    # learnt nothing could still print "ok". utils/tests/test_tour.py checks both.
    baseline: float | None = None
    baseline_name: str = ""

    @property
    def name(self) -> str:
        return f"{self.level}_{self.module.rsplit('.', 1)[-1]}_{self.dataset}"


@dataclass
class TourResult:
    lesson: str
    stop: TourStop
    achieved: float | None = None
    seconds: float = 0.0
    error: str | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        if self.error is not None or self.achieved is None or math.isnan(self.achieved):
            return False
        if self.stop.higher_is_better:
            return self.achieved >= self.stop.target
        return self.achieved <= self.stop.target


def discover(root: Path = ROOT) -> dict[str, list[TourStop]]:
    """Every lesson folder ``NN_Name`` with a ``tour.py``, in reading order."""
    lessons: dict[str, list[TourStop]] = {}
    for folder in sorted(p for p in root.iterdir() if re.match(r"\d\d_", p.name) and p.is_dir()):
        if (folder / "tour.py").is_file():
            lessons[folder.name] = list(import_lesson(f"{folder.name}.tour").STOPS)
    return lessons


def run_stop(lesson: str, stop: TourStop, out_root: Path) -> TourResult:
    """Run one stop in this process, its output captured into a log file."""
    out = out_root / lesson / stop.name
    out.mkdir(parents=True, exist_ok=True)
    argv = ["--dataset", stop.dataset, "--out", str(out), "--no-progress", *stop.args]
    result = TourResult(lesson, stop)
    log = io.StringIO()
    start = time.perf_counter()
    try:
        main = import_lesson(stop.module).main
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            metrics = main(argv)
        result.metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if stop.metric not in metrics:
            raise KeyError(f"{stop.module}.main() returned no {stop.metric!r}; "
                           f"it returned {sorted(metrics)}")
        result.achieved = float(metrics[stop.metric])
    except Exception as err:  # noqa: BLE001 - a failed stop is reported, the tour goes on
        result.error = f"{type(err).__name__}: {err}"
        log.write(traceback.format_exc())
    result.seconds = time.perf_counter() - start
    (out / "log.txt").write_text(log.getvalue())
    return result


def format_table(results: list[TourResult]) -> str:
    """The results as a Markdown table (readable on a terminal too)."""
    header = ["model", "level", "dataset", "metric", "trivial baseline", "target", "achieved",
              "seconds", ""]
    rows = []
    for r in results:
        cmp = ">=" if r.stop.higher_is_better else "<="
        achieved = "error" if r.error else f"{r.achieved:.4f}"
        baseline = "" if r.stop.baseline is None else f"{r.stop.baseline:.4g}"
        rows.append([r.stop.model, r.stop.level, r.stop.dataset, r.stop.metric, baseline,
                     f"{cmp} {r.stop.target:g}", achieved, f"{r.seconds:.1f}",
                     "ok" if r.passed else "MISSED"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lesson", action="append", default=None,
                        help="only lessons whose folder starts with this (e.g. 01); repeatable")
    parser.add_argument("--level", action="append", default=None, choices=["L1", "L2", "L3", "L4"],
                        help="only these levels; repeatable")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "tour",
                        help="where plots, logs and the results table go (default: runs/tour)")
    parser.add_argument("--list", action="store_true", help="list the stops and exit")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    lessons = discover(args.root)
    if args.lesson:
        lessons = {k: v for k, v in lessons.items() if k.startswith(tuple(args.lesson))}
    if not lessons:
        print("no lesson matches; lessons with a tour:", ", ".join(discover(args.root)) or "none")
        return 2
    plan = [(lesson, s) for lesson, stops in lessons.items() for s in stops
            if not args.level or s.level in args.level]
    if args.list:
        for lesson, s in plan:
            print(f"{lesson:22} {s.level}  {s.module:48} --dataset {s.dataset} {' '.join(s.args)}")
        return 0

    print(f"Tour: {len(plan)} demos from {len(lessons)} lesson(s); logs and plots in {args.out}/")
    results = []
    for i, (lesson, stop) in enumerate(plan, 1):
        r = run_stop(lesson, stop, args.out)
        status = "ok" if r.passed else ("FAILED: " + r.error if r.error else "MISSED target")
        shown = "error" if r.error else f"{r.achieved:.4f}"
        print(f"[{i:2}/{len(plan)}] {lesson} {stop.level} {stop.model} on {stop.dataset}: "
              f"{stop.metric} = {shown} ({r.seconds:.1f} s) {status}", flush=True)
        results.append(r)

    table = format_table(results)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps(
        [{"lesson": r.lesson, **asdict(r.stop), "achieved": r.achieved, "seconds": r.seconds,
          "passed": r.passed, "error": r.error, "metrics": r.metrics} for r in results],
        indent=2))
    failed = [r for r in results if not r.passed]
    total = sum(r.seconds for r in results)
    if failed:
        print(f"\n{len(failed)} of {len(results)} demos missed their target "
              f"(see {args.out}/<lesson>/<demo>/log.txt); total {total:.0f} s")
        return 1
    print(f"\nAll {len(results)} demos reached their targets in {total:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
