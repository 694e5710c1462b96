"""Exercises of lesson 11: Gaussian KL, reparameterisation vs score function, IW bound, Bernoulli.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 11_VAE/exercises --solutions my_solutions``.
"""
