"""Level 1 of lesson 02: the multilayer perceptron in NumPy only.

Files: ``mlp_numpy.py`` (the layers Linear, ReLU, Sigmoid, Tanh, GELU, Dropout,
BatchNorm1d, the Sequential container, the softmax cross-entropy loss, Xavier and
He initialisation, the optimisers SGD with momentum and Adam), ``train.py`` (the script
that trains it: options, data, the training loop, plots), ``test_numpy.py``.

Why this file checks its own name: this folder is called ``numpy``. If Python is
started inside ``02_MLP/``, that folder is first on ``sys.path`` and
``import numpy`` would find *this* package instead of the real NumPy, and fail
later with a baffling error (``module 'numpy' has no attribute 'array'``). A
package imported as ``02_MLP.numpy`` has that full dotted name; only the
shadowing case imports it under the bare name ``numpy``, so we stop there with an
explanation instead.
"""

if __name__ == "numpy":
    raise ImportError(
        "`import numpy` found the lesson folder 02_MLP/numpy/ instead of the real "
        "NumPy, because Python was started inside 02_MLP/ (that folder is on "
        "sys.path, so its `numpy/` subfolder shadows the NumPy package).\n"
        "Run from the repository root instead, for example:\n"
        "    python 02_MLP/numpy/train.py\n"
        "    python -m 02_MLP.numpy.train\n"
        "    pytest 02_MLP"
    )
