"""Exercises of lesson 06: one LSTM step backward, truncated BPTT, gradient clipping, a
peephole LSTM, and the vanishing-gradient bound of a tanh RNN.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 06_LSTM_GRU/exercises --solutions my_solutions``.
"""
