"""Exercises of lesson 03: convolution arithmetic, the convolution backward pass, dilated and
grouped convolutions, pooling backward.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 03_CNN_LeNet/exercises --solutions my_solutions``.
"""
