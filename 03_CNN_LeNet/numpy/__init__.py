"""Level 1 of lesson 03: convolution, pooling and LeNet-5 in NumPy only.

Files: ``conv_numpy.py`` (Conv2D by im2col, a naive loop version, MaxPool2D,
AvgPool2D, Flatten), ``lenet_numpy.py`` (LeNet-5 from those layers and lesson 02's
dense layers), ``train.py`` (the script that trains it), ``test_numpy.py``.

Why this file checks its own name: this folder is called ``numpy``. If Python is
started inside ``03_CNN_LeNet/``, that folder is first on ``sys.path`` and
``import numpy`` would find *this* package instead of the real NumPy, and fail
later with a baffling error (``module 'numpy' has no attribute 'array'``). A
package imported as ``03_CNN_LeNet.numpy`` has that full dotted name; only
the shadowing case imports it under the bare name ``numpy``, so we stop there
with an explanation instead.
"""

if __name__ == "numpy":
    raise ImportError(
        "`import numpy` found the lesson folder 03_CNN_LeNet/numpy/ instead of the real "
        "NumPy, because Python was started inside 03_CNN_LeNet/ (that folder is on "
        "sys.path, so its `numpy/` subfolder shadows the NumPy package).\n"
        "Run from the repository root instead, for example:\n"
        "    python 03_CNN_LeNet/numpy/train.py\n"
        "    python -m 03_CNN_LeNet.numpy.train\n"
        "    pytest 03_CNN_LeNet"
    )
