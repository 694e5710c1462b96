"""Lesson 02: the multilayer perceptron, the first network with hidden layers.

Linear layers with a non-linearity between them, trained by backpropagation
(Rumelhart, Hinton & Williams 1986). The lesson also meets the tools every later
model uses: weight initialisation (Glorot & Bengio 2010; He et al. 2015),
dropout (Srivastava et al. 2014), batch normalisation (Ioffe & Szegedy 2015) and
the optimisers SGD with momentum and Adam (Kingma & Ba 2015).

Three levels live here, each a self-contained read:

- ``numpy/``            L1: NumPy from scratch, every backward pass written by hand;
- ``pytorch_lowlevel/`` L2: tensors and autograd, layers and optimiser steps by hand;
- ``paper/``            L3: ``torch.nn`` modules, as a library user would write them.

The folder name starts with a digit, so import its modules with
``utils.import_lesson("02_MLP.numpy.mlp_numpy")``.
"""
