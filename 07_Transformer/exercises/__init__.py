"""Exercises of lesson 07: attention's backward pass, why 1/sqrt(d_k), attention masks,
relative position in the sinusoidal encoding, and the key-value cache.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 07_Transformer/exercises --solutions my_solutions``.
"""
