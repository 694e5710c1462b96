"""Level 1 of lesson 01: linear, logistic and softmax regression in NumPy only.

Files: ``linear_numpy.py`` (least squares: normal equation, gradient descent),
``logistic_numpy.py`` (binary logistic and softmax regression), the scripts that train
them (``train_linear.py``, ``train_logistic.py``) and ``test_numpy.py``.

Why this file checks its own name: this folder is called ``numpy``. If Python is
started inside ``01_Linear_Logistic/``, that folder is first on ``sys.path`` and
``import numpy`` would find *this* package instead of the real NumPy, and fail
later with a baffling error (``module 'numpy' has no attribute 'array'``). A
package imported as ``01_Linear_Logistic.numpy`` has that full dotted name; only
the shadowing case imports it under the bare name ``numpy``, so we stop there
with an explanation instead.
"""

if __name__ == "numpy":
    raise ImportError(
        "`import numpy` found the lesson folder 01_Linear_Logistic/numpy/ instead of the real "
        "NumPy, because Python was started inside 01_Linear_Logistic/ (that folder is on "
        "sys.path, so its `numpy/` subfolder shadows the NumPy package).\n"
        "Run from the repository root instead, for example:\n"
        "    python 01_Linear_Logistic/numpy/train_linear.py\n"
        "    python -m 01_Linear_Logistic.numpy.train_linear\n"
        "    pytest 01_Linear_Logistic"
    )
