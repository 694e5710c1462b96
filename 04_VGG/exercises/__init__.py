"""Exercises of lesson 04: receptive fields, parameter and FLOP counts, the batch-norm
backward pass, and dense evaluation (FC layers as convolutions).

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 04_VGG/exercises --solutions my_solutions``.
"""
