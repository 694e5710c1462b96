"""Exercises of lesson 05: the option-A shortcut, parameter and multiply-add counts of the
ResNets of Table 1, folding BatchNorm into convolutions, receptive fields of the stages.

Each exercise has a task text (``NN_<topic>.md``), a starter file to copy and fill in
(``starters/exNN_<topic>.py``) and a reference solution (``solutions/exNN_<topic>.py``).
``test_exercises.py`` checks the reference solutions by default, and your own files with
``pytest 05_ResNet/exercises --solutions my_solutions``. The exercises use PyTorch tensors
and modules (this lesson has no NumPy level).
"""
