"""Lesson 01: linear and logistic regression, the models every later lesson builds on.

Three levels live here, each a self-contained read:

- ``numpy/``            L1: NumPy from scratch, every gradient written by hand;
- ``pytorch_lowlevel/`` L2: tensors and autograd, the optimiser step written by hand;
- ``paper/``            L3: ``torch.nn`` modules, as a library user would write them.

All three minimise the same objectives with the same names (``LinearRegression``,
``LogisticRegression``, ``SoftmaxRegression``), so their numbers can be compared.
The folder name starts with a digit, so import its modules with
``utils.import_lesson("01_Linear_Logistic.numpy.linear_numpy")``.
"""
