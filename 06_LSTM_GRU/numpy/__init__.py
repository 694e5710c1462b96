"""Level 1 of lesson 06: the vanilla RNN, the LSTM and the GRU in NumPy only.

Files: ``rnn_numpy.py`` (the model: the three recurrent layers with backpropagation
through time written by hand, gradient clipping, a linear read-out), ``train.py`` (the
script: the adding problem, the training loop, the gradient-norm pictures),
``test_numpy.py``.

Why this file checks its own name: this folder is called ``numpy``. If Python is
started inside ``06_LSTM_GRU/``, that folder is first on ``sys.path`` and
``import numpy`` would find *this* package instead of the real NumPy, and fail
later with a baffling error (``module 'numpy' has no attribute 'array'``). A
package imported as ``06_LSTM_GRU.numpy`` has that full dotted name; only
the shadowing case imports it under the bare name ``numpy``, so we stop there
with an explanation instead.
"""

if __name__ == "numpy":
    raise ImportError(
        "`import numpy` found the lesson folder 06_LSTM_GRU/numpy/ instead of the real "
        "NumPy, because Python was started inside 06_LSTM_GRU/ (that folder is on "
        "sys.path, so its `numpy/` subfolder shadows the NumPy package).\n"
        "Run from the repository root instead, for example:\n"
        "    python 06_LSTM_GRU/numpy/train.py\n"
        "    python -m 06_LSTM_GRU.numpy.train\n"
        "    pytest 06_LSTM_GRU"
    )
