"""Import a lesson module by its dotted path from the repository root.

Lesson folders start with a digit (``01_Linear_Logistic``), so Python's
``from 01_Linear_Logistic.numpy import linear_numpy`` is a syntax error. The
same module imports fine through :mod:`importlib`::

    from utils import import_lesson
    linear_numpy = import_lesson("01_Linear_Logistic.numpy.linear_numpy")

The repository root is on ``sys.path`` thanks to the editable install
(``-e .`` in requirements.txt) or pytest's ``pythonpath = .``; no file edits
``sys.path`` itself.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def import_lesson(dotted: str) -> ModuleType:
    """Return the module ``dotted``, e.g. ``"01_Linear_Logistic.numpy.linear_numpy"``.

    A path with slashes or a ``.py`` suffix is accepted too
    (``"01_Linear_Logistic/numpy/linear_numpy.py"``).
    """
    name = dotted.removesuffix(".py").replace("/", ".").replace("\\", ".")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise ModuleNotFoundError(
                f"no lesson module {name!r}: expected a file {name.replace('.', '/')}.py "
                "under the repository root, and the root on sys.path (run from the root "
                "after `pip install -r requirements.txt`, or through pytest)",
                name=err.name,
            ) from err
        raise
