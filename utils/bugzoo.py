"""The bug zoo: the mistakes learners make in each lesson, and the test that catches each.

Each lesson lists its classic bugs in ``<lesson>/bugs.py`` (``BUGS = [Bug(...), ...]``).
A bug is a small edit of one implementation file: replace the text ``find`` (which must
occur exactly once) with ``replace``. This command applies each bug to a scratch copy of
the repository, runs the tests named in ``caught_by`` there, and checks that they fail::

    python -m utils.bugzoo 06_LSTM_GRU          # one lesson
    python -m utils.bugzoo                      # every lesson with a bugs.py
    python -m utils.bugzoo 06 --markdown        # the README's "Classic bugs" table
    python -m utils.bugzoo --list

It exits non-zero when a bug survives (its tests pass with the bug in place) or no longer
applies (its ``find`` text has gone from the file): a test suite that cannot see a
classic bug is itself a bug. Your working tree is never modified.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a scratch copy leaves out: environments, caches, outputs, version control.
_IGNORE = shutil.ignore_patterns(".venv", "venv", ".git", "runs", "data", "__pycache__",
                                 ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info")


@dataclass(frozen=True)
class Bug:
    """One classic mistake, written as an edit of a lesson file.

    name:      what the learner did, in a few words ("forgot 1/(1-p) in dropout").
    file:      the file to edit, relative to the lesson folder ("numpy/mlp_numpy.py").
    find:      text that occurs exactly once in that file.
    replace:   the text with the bug in it.
    caught_by: pytest node ids, relative to the lesson folder, that must fail
               ("numpy/test_numpy.py::test_dropout_scales_by_keep_probability").
    symptom:   what goes wrong when the bug is in (one line, for the README table).
    """

    name: str
    file: str
    find: str
    replace: str
    caught_by: tuple[str, ...]
    symptom: str = ""

    def __post_init__(self):
        if isinstance(self.caught_by, str):  # a single node id is fine too
            object.__setattr__(self, "caught_by", (self.caught_by,))
        if self.find == self.replace:
            raise ValueError(f"bug {self.name!r}: replace is the same as find")


def lessons_with_bugs(root: Path = ROOT) -> list[str]:
    """Lesson folders (``06_LSTM_GRU``) that have a ``bugs.py``, in order, then ``utils``
    (the shared training loop, loaders and test helpers have their classic bugs too)."""
    lessons = sorted(p.parent.name for p in root.glob("[0-9][0-9]_*/bugs.py"))
    return lessons + (["utils"] if (root / "utils" / "bugs.py").is_file() else [])


def resolve_lesson(name: str) -> str:
    """``06``, ``06_LSTM_GRU`` or ``06_LSTM_GRU/`` -> ``06_LSTM_GRU`` (or ``utils``); a clear
    error otherwise."""
    name = name.rstrip("/\\")
    known = lessons_with_bugs()
    matches = [lesson for lesson in known if lesson == name or lesson.split("_")[0] == name]
    if len(matches) != 1:
        raise SystemExit(f"error: no lesson {name!r} with a bugs.py; expected one of "
                         f"{', '.join(known)} (or its number)")
    return matches[0]


def load_bugs(lesson: str, root: Path = ROOT) -> list[Bug]:
    """The lesson's ``BUGS`` list (from ``root/lesson/bugs.py``)."""
    path = root / lesson / "bugs.py"
    spec = importlib.util.spec_from_file_location(f"_bugzoo_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.BUGS)


def check_applies(lesson: str, bug: Bug, root: Path = ROOT) -> str:
    """The file text with the bug in it; ValueError if ``find`` does not occur exactly once
    or a ``caught_by`` file is missing."""
    path = root / lesson / bug.file
    if not path.is_file():
        raise ValueError(f"{lesson}/{bug.file}: no such file")
    text = path.read_text(encoding="utf-8")
    count = text.count(bug.find)
    if count != 1:
        raise ValueError(f"{lesson}/{bug.file}: the text of bug {bug.name!r} occurs {count} "
                         "times (expected exactly once); update bugs.py to the current code")
    for node in bug.caught_by:
        test_file = root / lesson / node.split("::")[0]
        if not test_file.is_file():
            raise ValueError(f"bug {bug.name!r}: no test file {lesson}/{node.split('::')[0]}")
    return text.replace(bug.find, bug.replace)


TIMEOUT_S = 600  # one bug's tests; the slowest take about 10 s on a 2-core machine


@dataclass
class Outcome:
    lesson: str
    bug: Bug
    status: str  # "caught", "SURVIVED", "ERROR"
    detail: str
    seconds: float


def _run_one(lesson: str, bug: Bug, scratch: Path) -> Outcome:
    start = time.perf_counter()
    path = scratch / lesson / bug.file
    original = path.read_text(encoding="utf-8")
    try:
        try:
            buggy = check_applies(lesson, bug, scratch)
        except ValueError as err:
            return Outcome(lesson, bug, "ERROR", str(err), time.perf_counter() - start)
        path.write_text(buggy, encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(scratch), MPLBACKEND="Agg",
                   PYTHONDONTWRITEBYTECODE="1")
        nodes = [f"{lesson}/{n}" for n in bug.caught_by]
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                 "-p", "no:randomly", "--no-header",
                 *nodes],
                cwd=scratch, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return Outcome(lesson, bug, "ERROR", f"its tests ran past {TIMEOUT_S} s with the "
                           "bug in place (a hang, or a failure message that takes that long)",
                           time.perf_counter() - start)
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode == 1:
        failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith("FAILED ")]
        return Outcome(lesson, bug, "caught", ", ".join(failed) or lines[-1], seconds)
    if proc.returncode == 0:
        return Outcome(lesson, bug, "SURVIVED", "its tests passed with the bug in place", seconds)
    tail = " | ".join((lines or proc.stderr.splitlines() or ["no output"])[-3:])
    return Outcome(lesson, bug, "ERROR", f"pytest exit {proc.returncode}: {tail}", seconds)


def run_zoo(lessons: list[str], jobs: int = 2, log=print, root: Path = ROOT) -> list[Outcome]:
    """Apply every bug of ``lessons`` in scratch copies of ``root`` (``jobs`` at a time)."""
    work = [(lesson, bug) for lesson in lessons for bug in load_bugs(lesson, root)]
    jobs = max(1, min(jobs, len(work)))
    with tempfile.TemporaryDirectory(prefix="bugzoo-") as tmp:
        scratches = []
        for i in range(jobs):
            dest = Path(tmp) / f"copy{i}"
            shutil.copytree(root, dest, ignore=_IGNORE)
            scratches.append(dest)
        # Each worker owns one scratch copy and takes every jobs-th bug.
        def worker(i: int) -> list[Outcome]:
            out = []
            for lesson, bug in work[i::jobs]:
                result = _run_one(lesson, bug, scratches[i])
                log(f"{result.status:8s} {lesson}: {bug.name} ({result.seconds:.1f} s)"
                    + ("" if result.status == "caught" else f"\n         {result.detail}"))
                out.append(result)
            return out

        with ThreadPoolExecutor(jobs) as pool:
            results = [r for part in pool.map(worker, range(jobs)) for r in part]
    order = {id(b): k for k, (_, b) in enumerate(work)}
    return sorted(results, key=lambda r: order[id(r.bug)])


def markdown_table(lesson: str) -> str:
    """The lesson README's "Classic bugs" table."""
    rows = ["| the bug | what goes wrong | caught by |", "|---|---|---|"]
    for bug in load_bugs(lesson):
        tests = "<br>".join(f"`{n}`" for n in bug.caught_by)
        rows.append(f"| {bug.name} (`{bug.file}`) | {bug.symptom} | {tests} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.bugzoo",
        description="Apply each lesson's classic bugs to a scratch copy and check that a "
                    "test catches each one.")
    parser.add_argument("lessons", nargs="*", help="lesson folders or numbers (default: all)")
    parser.add_argument("--list", action="store_true", help="list the bugs and exit")
    parser.add_argument("--markdown", action="store_true",
                        help="print each lesson's README table and exit")
    parser.add_argument("--jobs", type=int, default=2, help="scratch copies run in parallel")
    args = parser.parse_args(argv)
    lessons = [resolve_lesson(n) for n in args.lessons] or lessons_with_bugs()
    if args.list or args.markdown:
        for lesson in lessons:
            if args.markdown:
                print(f"{lesson}\n\n{markdown_table(lesson)}\n")
            else:
                for bug in load_bugs(lesson):
                    print(f"{lesson}: {bug.name} -> {', '.join(bug.caught_by)}")
        return 0
    start = time.perf_counter()
    results = run_zoo(lessons, jobs=args.jobs)
    bad = [r for r in results if r.status != "caught"]
    print(f"\n{len(results) - len(bad)} of {len(results)} bugs caught in "
          f"{time.perf_counter() - start:.0f} s" + ("" if not bad else ":"))
    for r in bad:
        print(f"  {r.status}: {r.lesson}: {r.bug.name}: {r.detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
