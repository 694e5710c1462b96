"""The bug zoo (utils/bugzoo.py): every lesson's classic bugs apply to today's code, are
documented in the lesson README, and the runner tells a caught bug from a surviving one."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from utils import bugzoo

LESSONS = bugzoo.lessons_with_bugs()
MIN_BUGS = 6


def test_every_lesson_has_a_bug_zoo():
    lessons = sorted(p.name for p in bugzoo.ROOT.glob("[0-9][0-9]_*") if p.is_dir()) + ["utils"]
    assert lessons, "no lessons found"
    missing = [lesson for lesson in lessons if lesson not in LESSONS]
    assert not missing, f"lessons without a bugs.py: {missing}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_bugs_apply_to_the_current_code_and_name_existing_tests(lesson):
    bugs = bugzoo.load_bugs(lesson)
    assert len(bugs) >= MIN_BUGS, f"{lesson}/bugs.py lists {len(bugs)} bugs, expected >= {MIN_BUGS}"
    assert len({b.name for b in bugs}) == len(bugs), "two bugs share a name"
    for bug in bugs:
        bugzoo.check_applies(lesson, bug)  # raises naming the bug when its text has gone
        assert bug.symptom, f"{bug.name}: say what goes wrong (symptom)"
        for node in bug.caught_by:
            path = bugzoo.ROOT / lesson / node.split("::")[0]
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            test = node.split("::")[-1].split("[")[0] if "::" in node else None
            assert test is None or test in names, f"{bug.name}: no test {node}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_readme_shows_its_classic_bugs(lesson):
    folder = bugzoo.ROOT / lesson if lesson != "utils" else bugzoo.ROOT  # utils: the top README
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Classic bugs" in readme
    assert f"python -m utils.bugzoo {lesson}" in readme
    for row in bugzoo.markdown_table(lesson).splitlines()[2:]:
        assert row in readme, f"README table out of date (run --markdown): {row}"


def _toy_repo(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\naddopts = --import-mode=importlib -ra\n")
    lesson = root / "99_Toy"
    lesson.mkdir()
    (lesson / "__init__.py").write_text("")
    (lesson / "toy.py").write_text("def double(x):\n    return 2 * x\n\n\ndef half(x):\n"
                                   "    return x / 2\n")
    (lesson / "test_toy.py").write_text(textwrap.dedent("""
        import importlib
        toy = importlib.import_module("99_Toy.toy")

        def test_double():
            assert toy.double(3) == 6
    """))
    (lesson / "bugs.py").write_text(textwrap.dedent("""
        from utils.bugzoo import Bug
        BUGS = [
            Bug("adds instead of multiplying", "toy.py", "return 2 * x", "return 2 + x",
                "test_toy.py::test_double", "double(3) is 5"),
            Bug("halves by 3", "toy.py", "return x / 2", "return x / 3",
                "test_toy.py::test_double", "no test looks at half"),
            Bug("text that has gone", "toy.py", "return 3 * x", "return 4 * x",
                "test_toy.py::test_double", "the code changed"),
        ]
    """))


def test_runner_reports_caught_surviving_and_stale_bugs(tmp_path):
    _toy_repo(tmp_path)
    before = (tmp_path / "99_Toy" / "toy.py").read_text()
    results = bugzoo.run_zoo(["99_Toy"], jobs=1, log=lambda *_: None, root=tmp_path)
    assert [r.status for r in results] == ["caught", "SURVIVED", "ERROR"]
    assert "test_double" in results[0].detail
    assert "occurs 0 times" in results[2].detail
    assert (tmp_path / "99_Toy" / "toy.py").read_text() == before  # the tree is untouched


def test_a_bug_that_hangs_its_tests_is_reported_and_the_zoo_goes_on(tmp_path, monkeypatch):
    _toy_repo(tmp_path)
    bugs = tmp_path / "99_Toy" / "bugs.py"
    bugs.write_text(bugs.read_text().replace(
        '"return 2 + x"', '"import time; time.sleep(60); return 2 * x"'))
    monkeypatch.setattr(bugzoo, "TIMEOUT_S", 5)
    results = bugzoo.run_zoo(["99_Toy"], jobs=1, log=lambda *_: None, root=tmp_path)
    assert [r.status for r in results] == ["ERROR", "SURVIVED", "ERROR"]
    assert "ran past 5 s" in results[0].detail


def test_unknown_lesson_is_a_clear_error():
    with pytest.raises(SystemExit, match="no lesson '42'"):
        bugzoo.resolve_lesson("42")
