"""Level 3 of lesson 11: the VAE of Kingma & Welling (2013) as an ``nn.Module``.

``VAE(input_dim=784, hidden_dim=400, latent_dim=20, likelihood="bernoulli")``: an MLP
encoder q(z|x) = N(mu, diag sigma^2), an MLP decoder p(x|z) (Bernoulli for binarised
images, or Gaussian), the reparameterised ELBO (Section 2.4, eq. 10) and the
importance-weighted estimate of log p(x) (Burda et al. 2015) used for evaluation.

Files (read them in this order):

- ``vae_paper.py``  the module, the ELBO, the IW bound, the latent manifold (Figure 4)
- ``train.py``      the script: data, training (Adam), evaluation, pictures
- ``test_paper.py`` parameter count, distributions references, overfitting, checkpoints,
                    determinism, and L1 == L2 == L3 on shared weights and noise
"""
