"""Exercises of lesson 02: activation gradients, the batch-norm backward pass, optimisers, init.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 02_MLP/exercises --solutions my_solutions``.
"""
