"""The import rules of the layout (DESIGN.md section 3), checked the way a learner runs things.

Each check starts a fresh Python, because what matters is sys.path at start-up:
a script run by path, a module run with -m, and Python started inside a lesson
folder, where the lesson's `numpy/` would shadow the real NumPy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name[:2].isdigit())


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("lesson", [p for p in LESSONS if (p / "numpy").is_dir()],
                         ids=lambda p: p.name)
def test_python_started_inside_a_lesson_explains_the_numpy_shadowing(lesson):
    r = run(["-c", "import numpy"], cwd=lesson)
    assert r.returncode != 0
    assert "ImportError" in r.stderr, r.stderr[-1000:]
    message = r.stderr[r.stderr.index("ImportError"):]
    assert "shadows the NumPy package" in message, message
    assert "repository root" in message and f"python -m {lesson.name}.numpy." in message


def test_the_real_numpy_still_imports_inside_a_level_folder():
    """A script's own folder (numpy/) is on sys.path when run by path; that is harmless."""
    level = ROOT / "01_Linear_Logistic" / "numpy"
    r = run(["-c", "import numpy; print(numpy.__file__)"], cwd=level)
    assert r.returncode == 0, r.stderr
    assert "site-packages" in r.stdout


@pytest.mark.parametrize("how", ["path", "module"])
def test_an_l1_script_runs_by_path_and_as_a_module_from_the_root(how, tmp_path):
    target = "01_Linear_Logistic/numpy/train_logistic.py"
    args = [target] if how == "path" else ["-m", target[:-3].replace("/", ".")]
    options = ["--dataset", "iris", "--epochs", "5", "--no-progress", "--out", str(tmp_path)]
    r = run([*args, *options], cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "test accuracy" in r.stdout
    assert (tmp_path / "confusion.png").is_file()


def test_lessons_import_by_name_from_anywhere(tmp_path):
    """The editable install puts the root on sys.path (no per-file sys.path edits)."""
    code = ("from utils import import_lesson; "
            "m = import_lesson('01_Linear_Logistic.numpy.linear_numpy'); print(m.LinearRegression)")
    r = run(["-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LinearRegression" in r.stdout


def test_import_lesson_names_a_missing_module_clearly():
    from utils import import_lesson

    with pytest.raises(ModuleNotFoundError, match=r"01_Linear_Logistic/numpy/nope\.py"):
        import_lesson("01_Linear_Logistic.numpy.nope")
