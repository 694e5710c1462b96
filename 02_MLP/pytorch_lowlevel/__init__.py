"""Level 2 of lesson 02: the multilayer perceptron in low-level PyTorch.

The parameters are plain tensors with ``requires_grad=True`` kept in a dict;
autograd computes the gradients that the NumPy level (L1) derives by hand. Every
layer (linear map, dropout, batch normalisation), the cross-entropy loss, the
weight initialisations (Glorot/Xavier, He) and the optimiser steps (SGD with
momentum, Adam) are written here as functions of tensors. No ``torch.nn`` layers,
no ``F.linear`` / ``F.dropout`` / ``F.batch_norm`` / ``F.cross_entropy``, no
``torch.optim``: a test (``assert_level_purity``) enforces it.

Files (read them in this order):

- ``mlp_lowlevel.py``  the layers, the loss, the initialisations, the optimisers, the model
- ``train.py``         the script: options, data, the training loop, evaluation, plots
- ``test_lowlevel.py`` every piece checked against its torch.nn / torch.optim twin
"""
