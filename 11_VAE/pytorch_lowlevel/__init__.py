"""Level 2 of lesson 11: the variational autoencoder in low-level PyTorch.

The parameters are plain tensors with ``requires_grad=True`` kept in a dict; autograd
differentiates through the reparameterised sample that the NumPy level (L1) handles
by hand. The encoder and decoder, the Bernoulli log-likelihood, the analytic Gaussian
KL divergence and the training loop are written as functions of tensors; Adam is
lesson 02's hand-written ``adam_step``. No ``torch.nn`` layers, no ``torch.optim``.

Files (read them in this order):

- ``vae_lowlevel.py``  the model and the ELBO
- ``train.py``         the script: data, the training loop, evaluation, pictures
- ``test_lowlevel.py`` the ELBO's pieces checked against torch.distributions
"""
