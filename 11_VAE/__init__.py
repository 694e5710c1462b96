"""Lesson 11: the variational autoencoder (Kingma & Welling 2013, Auto-Encoding Variational Bayes).

An encoder maps an image x to a Gaussian q(z|x) = N(mu(x), diag sigma^2(x)) over a
small latent code z; a decoder maps z to the parameters of p(x|z) (Bernoulli pixels
for binarised MNIST). Both are trained together by maximising the evidence lower bound

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x),      p(z) = N(0, I),

with the reparameterisation z = mu + sigma * eps, eps ~ N(0, I), which moves the
randomness into an input so that the gradient flows through the sampling step.

Three levels live here, each a self-contained read:

- ``numpy/``            L1: NumPy from scratch, the backward pass through the sampling
                        step written by hand;
- ``pytorch_lowlevel/`` L2: tensors and autograd, layers and optimiser steps by hand;
- ``paper/``            L3: ``torch.nn`` modules, the model of the paper (Section 3,
                        Appendix C) with an importance-weighted log-likelihood estimate.

In each level folder the model file (``vae_numpy.py``, ``vae_lowlevel.py``,
``vae_paper.py``) holds the model and ``train.py`` the script that trains it.

The folder name starts with a digit, so import its modules with
``utils.import_lesson("11_VAE.numpy.vae_numpy")``.
"""
