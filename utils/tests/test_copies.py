"""Deliberate copies across lessons (``# Same as <file>:<name>``) stay identical."""

from __future__ import annotations

import textwrap
from pathlib import Path

from utils import testing

ROOT = Path(__file__).resolve().parents[2]


def test_every_marked_copy_in_the_repository_equals_its_original():
    problems = testing.check_marked_copies(ROOT)
    assert not problems, "\n".join(problems)


def _write(path: Path, code: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code), encoding="utf-8")


def test_a_drifted_copy_is_named_with_both_places(tmp_path):
    _write(tmp_path / "02_MLP" / "lowlevel.py", '''
        def sgd_step(params, lr):
            """The original."""
            for p in params:
                p -= lr * p.grad
    ''')
    _write(tmp_path / "05_ResNet" / "model.py", '''
        # Same as 02_MLP/lowlevel.py:sgd_step
        def sgd_step(params, lr):
            """A copy, docstring may differ."""
            for p in params:  # comments may differ too
                p -= lr * p.grad


        class Net:
            # Same as 02_MLP/lowlevel.py:sgd_step
            def step(params, lr):
                for p in params:
                    p += lr * p.grad
    ''')
    problems = testing.check_marked_copies(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("05_ResNet/model.py:10: step has drifted from "
                                  "02_MLP/lowlevel.py:sgd_step")
    _write(tmp_path / "06" / "x.py", "# Same as 02_MLP/lowlevel.py:adam_step\ndef f(): pass\n")
    assert any("defines no adam_step" in p for p in testing.check_marked_copies(tmp_path))
