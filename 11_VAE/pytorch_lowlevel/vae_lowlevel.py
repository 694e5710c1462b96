"""The variational autoencoder in low-level PyTorch (Level 2 of lesson 11).

The VAE of Kingma & Welling (2013, "Auto-Encoding Variational Bayes", Section 3 and
Appendix C), one hidden layer on each side, as functions of plain tensors: ``encode``
(q(z|x) = N(mu, diag sigma^2)), ``reparameterize`` (z = mu + sigma * eps, Section 2.4),
``decode`` (Bernoulli logits), and the negative ELBO ``vae_loss`` (eq. 10 with the analytic
KL of Appendix B). Autograd follows the gradient through the sampling step that L1 writes
by hand; the noise ``eps`` is an input, so the same weights and noise give the same numbers
at every level. Adam is lesson 02's ``adam_step``. The derivations are in ../theory.md;
``train.py`` beside this file trains the model and draws its pictures.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils.lessons import import_lesson

# Lesson 02 already wrote Adam as a function of tensors (Kingma & Ba 2015, Algorithm 1);
# the VAE reuses it rather than writing it again.
_mlp_lowlevel = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
adam_step = _mlp_lowlevel.adam_step
zero_grad = _mlp_lowlevel.zero_grad

ACTIVATIONS = ("tanh", "relu")
LAYERS = ("enc", "enc_mu", "enc_logvar", "dec", "dec_out")


# --------------------------------------------------------------------------------------
# 1. Parameters
# --------------------------------------------------------------------------------------


def init_vae(input_dim: int, hidden_dim: int, latent_dim: int, *, seed: int = 0,
             dtype: torch.dtype = torch.float32, device="cpu") -> dict[str, torch.Tensor]:
    """Glorot-uniform weights (Glorot & Bengio 2010), zero biases, as a flat dict.

    Inputs:  the layer widths D, H, J; seed; dtype; device
    Returns: {"enc.W": (D, H), "enc.b": (H,), "enc_mu.W": (H, J), "enc_mu.b": (J,),
              "enc_logvar.W": (H, J), ..., "dec.W": (J, H), "dec_out.W": (H, D), ...},
             leaf tensors with requires_grad=True. W is stored (in, out) as at L1.
    """
    for name, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim),
                        ("latent_dim", latent_dim)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    shapes = {"enc": (input_dim, hidden_dim), "enc_mu": (hidden_dim, latent_dim),
              "enc_logvar": (hidden_dim, latent_dim), "dec": (latent_dim, hidden_dim),
              "dec_out": (hidden_dim, input_dim)}
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for layer in LAYERS:
        n_in, n_out = shapes[layer]
        bound = math.sqrt(6.0 / (n_in + n_out))  # Var W = 2 / (n_in + n_out)
        W = (torch.rand(n_in, n_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        params[f"{layer}.W"] = W.to(dtype=dtype, device=device).requires_grad_()
        params[f"{layer}.b"] = torch.zeros(n_out, dtype=dtype, device=device,
                                           requires_grad=True)
    return params


def activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """tanh (the paper's MNIST networks) or relu, elementwise."""
    if name == "tanh":
        return torch.tanh(x)
    if name == "relu":
        return torch.relu(x)
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


# --------------------------------------------------------------------------------------
# 2. Encoder, reparameterisation, decoder
# --------------------------------------------------------------------------------------


def encode(params: dict, x: torch.Tensor, act: str = "tanh") -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) = N(mu, diag exp(logvar)).

    Inputs:  x (N, D) float; act - the hidden activation
    Returns: mu (N, J), logvar (N, J) (the log of the variance sigma^2)
    """
    h = activation(x @ params["enc.W"] + params["enc.b"], act)  # (N, H)
    mu = h @ params["enc_mu.W"] + params["enc_mu.b"]  # (N, J)
    logvar = h @ params["enc_logvar.W"] + params["enc_logvar.b"]  # (N, J)
    return mu, logvar


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2) (Section 2.4).

    The randomness sits in eps, outside the parameters, so dz/dmu = 1 and
    dz/dlogvar = sigma * eps / 2: the gradient flows through the sample.
    Inputs:  mu, logvar, eps - all (N, J); Returns: z (N, J)
    """
    if eps.shape != mu.shape:
        raise ValueError(f"eps: expected shape {tuple(mu.shape)} (one standard normal per "
                         f"latent unit of each image), got {tuple(eps.shape)}")
    return mu + torch.exp(0.5 * logvar) * eps


def decode(params: dict, z: torch.Tensor, act: str = "tanh") -> torch.Tensor:
    """p(x|z): Bernoulli with p = sigmoid(logits).

    Inputs:  z (N, J); Returns: logits (N, D)
    """
    g = activation(z @ params["dec.W"] + params["dec.b"], act)  # (N, H)
    return g @ params["dec_out.W"] + params["dec_out.b"]  # (N, D)


def forward(params: dict, x: torch.Tensor, eps: torch.Tensor, act: str = "tanh") -> dict:
    """Encoder -> sample -> decoder. Returns dict(mu, logvar, z, logits)."""
    mu, logvar = encode(params, x, act)
    z = reparameterize(mu, logvar, eps)
    return {"mu": mu, "logvar": logvar, "z": z, "logits": decode(params, z, act)}


# --------------------------------------------------------------------------------------
# 3. The evidence lower bound
# --------------------------------------------------------------------------------------


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log p(x|z) = sum_d [x_d log p_d + (1 - x_d) log(1 - p_d)], p = sigmoid(logits).

    Written stably as sum_d x_d l_d - softplus(l_d), since log sigmoid(l) = l - softplus(l)
    and log(1 - sigmoid(l)) = -softplus(l). Works for x in [0, 1] (then it is the
    negative binary cross-entropy).
    Inputs:  x, logits (N, D); Returns: (N,) nats per image
    """
    return (x * logits - F.softplus(logits)).sum(dim=1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).

    Appendix B of the paper. Inputs: mu, logvar (N, J); Returns: (N,) nats
    """
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def vae_loss(params: dict, x: torch.Tensor, eps: torch.Tensor, act: str = "tanh"
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Negative ELBO, averaged over the batch (the same numbers as L1's ``VAE.loss``).

        -ELBO(x) = -log p(x|z) + KL(q(z|x) || p(z)),   z = mu + sigma * eps

    Inputs:  x (N, D) in [0, 1]; eps (N, J) standard normal noise
    Returns: (neg_elbo, recon, kl) scalar tensors: batch means of the per-image sums,
             recon = -log p(x|z), so neg_elbo = recon + kl
    """
    out = forward(params, x, eps, act)
    recon = -bernoulli_log_likelihood(x, out["logits"]).mean()
    kl = gaussian_kl(out["mu"], out["logvar"]).mean()
    return recon + kl, recon, kl

