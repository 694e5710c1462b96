"""Exercises of lesson 01: regularisation, learning rates, Newton's method, a stable softmax loss.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 01_Linear_Logistic/exercises --solutions my_solutions``.
"""
