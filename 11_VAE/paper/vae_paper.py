"""The variational autoencoder of Kingma & Welling (2013) as an nn.Module (Level 3, lesson 11).

"Auto-Encoding Variational Bayes" (ICLR 2014, arXiv:1312.6114): the Gaussian MLP encoder
q(z|x) (Appendix C.2), the reparameterisation z = mu + sigma * eps (Section 2.4), a
Bernoulli MLP decoder for binary data (Appendix C.1) or a Gaussian one
(``likelihood="gaussian"``, Appendix C.2), the SGVB estimate of the ELBO with the analytic
KL (eq. 10, Appendix B), and the importance-weighted bound of Burda et al. (2015, eq. 8)
for evaluation. Where we depart from the paper: ``train.py`` trains with Adam (Kingma & Ba
2015), not Adagrad. Derivations in ../theory.md (sections 2-7); ``train.py`` beside this
file trains the model and draws its pictures.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = ("tanh", "relu")
LOG_2PI = math.log(2.0 * math.pi)


def _check_eps(eps: torch.Tensor, shape: tuple) -> None:
    """The noise passed in must have the shape of the draws it replaces (no broadcasting)."""
    if eps.shape != shape:
        raise ValueError(f"eps: expected shape {tuple(shape)}, got {tuple(eps.shape)}")


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag exp(logvar)), summed over the last dimension.

        log N = -1/2 sum_d [log 2 pi + logvar_d + (x_d - mean_d)^2 / exp(logvar_d)]
    Inputs: broadcastable tensors (..., D); Returns: (...)
    """
    return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(-1)


class VAE(nn.Module):
    """Gaussian encoder, Bernoulli (or Gaussian) decoder, one hidden layer each (Appendix C).

    Inputs (constructor): input_dim D, hidden_dim H, latent_dim J; activation "tanh" (the
    paper) or "relu"; likelihood "bernoulli" (binary x, Appendix C.1) or "gaussian"
    (Appendix C.2: adds a log-variance head ``dec_logvar``).
    Layers (named as at L1 and L2): enc (D->H), enc_mu, enc_logvar (H->J), dec (J->H),
    dec_out (H->D) [, dec_logvar (H->D)]. nn.Linear stores W^T: weight = L1's W.T.
    """

    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20, *,
                 activation: str = "tanh", likelihood: str = "bernoulli"):
        super().__init__()
        for name, value, allowed in (("activation", activation, ACTIVATIONS),
                                     ("likelihood", likelihood, LIKELIHOODS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.likelihood = likelihood
        self.act = nn.Tanh() if activation == "tanh" else nn.ReLU()
        self.enc = nn.Linear(input_dim, hidden_dim)
        self.enc_mu = nn.Linear(hidden_dim, latent_dim)
        self.enc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.dec = nn.Linear(latent_dim, hidden_dim)
        self.dec_out = nn.Linear(hidden_dim, input_dim)
        self.dec_logvar = nn.Linear(hidden_dim, input_dim) if likelihood == "gaussian" else None

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.input_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected a (N, {self.input_dim}) tensor of pixels, got {shape}")
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): x (N, D) -> mu (N, J), logvar (N, J)."""
        h = self.act(self.enc(self._check(x)))  # (N, H)
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """p(x|z): z (..., J) -> {"logits": (..., D)} (Bernoulli) or {"mean", "logvar"}."""
        g = self.act(self.dec(z))  # (..., H)
        if self.likelihood == "bernoulli":
            return {"logits": self.dec_out(g)}
        return {"mean": self.dec_out(g), "logvar": self.dec_logvar(g)}

    def log_likelihood(self, x: torch.Tensor, decoded: dict) -> torch.Tensor:
        """log p(x|z) summed over pixels: (..., D) -> (...).

        Bernoulli: sum_d x_d l_d - softplus(l_d) (l the logits); Gaussian: log N(x; mean, var).
        """
        if self.likelihood == "bernoulli":
            logits = decoded["logits"]
            return (x * logits - F.softplus(logits)).sum(-1)
        return gaussian_log_density(x, decoded["mean"], decoded["logvar"])

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict:
        """Encoder -> z = mu + sigma * eps -> decoder.

        Inputs:  x (N, D); eps (N, J) standard normal noise, drawn here when None
        Returns: dict(mu, logvar, z, and the decoder's outputs: logits, or mean and logvar
                 of x as "x_mean", "x_logvar")
        """
        mu, logvar = self.encode(x)
        eps = torch.randn_like(mu) if eps is None else eps
        _check_eps(eps, mu.shape)
        z = mu + torch.exp(0.5 * logvar) * eps  # Section 2.4: the reparameterisation trick
        decoded = self.decode(z)
        out = {"mu": mu, "logvar": logvar, "z": z}
        if self.likelihood == "bernoulli":
            out["logits"] = decoded["logits"]
        else:
            out["x_mean"], out["x_logvar"] = decoded["mean"], decoded["logvar"]
        return out

    def loss(self, x: torch.Tensor, eps: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO (eq. 10), batch means of per-image sums (as L1's ``VAE.loss``).

        Returns: (neg_elbo, recon, kl) scalar tensors; recon = -log p(x|z),
                 kl = -1/2 sum_j (1 + logvar - mu^2 - exp(logvar)) (Appendix B)
        """
        out = self(x, eps)
        decoded = ({"logits": out["logits"]} if self.likelihood == "bernoulli"
                   else {"mean": out["x_mean"], "logvar": out["x_logvar"]})
        recon = -self.log_likelihood(x, decoded).mean()
        kl = (-0.5 * (1.0 + out["logvar"] - out["mu"].pow(2) - out["logvar"].exp()).sum(1)).mean()
        return recon + kl, recon, kl

    @torch.no_grad()
    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: sigmoid(logits) (Bernoulli) or the Gaussian mean. z (..., J) -> (..., D)."""
        p = next(self.parameters())
        decoded = self.decode(z.to(device=p.device, dtype=p.dtype))
        return torch.sigmoid(decoded["logits"]) if "logits" in decoded else decoded["mean"]

    @torch.no_grad()
    def iw_log_likelihood(self, x: torch.Tensor, k: int = 100,
                          generator: torch.Generator | None = None,
                          eps: torch.Tensor | None = None) -> torch.Tensor:
        """The importance-weighted bound L_k(x) of Burda et al. (2015), per image.

            L_k(x) = logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k
        with z_i = mu + sigma * eps_i, i = 1..k. L_1 is an ELBO sample; L_k <= log p(x)
        and grows towards it with k.
        Inputs:  x (N, D); k samples per image; generator for eps (on the CPU), or eps
                 itself (k, N, J) (the tests pass L1's noise)
        Returns: (N,) nats
        """
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a positive integer, got {k!r}")
        mu, logvar = self.encode(x)  # (N, J)
        if eps is None:
            eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype)
        _check_eps(eps, (k, *mu.shape))
        eps = eps.to(device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (k, N, J)
        log_px_z = self.log_likelihood(x, self.decode(z))  # (k, N): x broadcasts over k
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))  # (k, N)
        log_qz_x = gaussian_log_density(z, mu, logvar)  # (k, N)
        return torch.logsumexp(log_px_z + log_pz - log_qz_x, dim=0) - math.log(k)


# --------------------------------------------------------------------------------------
# The model's picture: Figure 4
# --------------------------------------------------------------------------------------


@torch.no_grad()
def latent_manifold(model: VAE, side: int, n: int = 20) -> np.ndarray:
    """Figure 4 of the paper: decoder means on an n x n grid of a 2-D latent space.

    The grid is evenly spaced in probability: z = Phi^-1(u), u in (0, 1), so each cell
    covers the same prior mass. Returns: (n * n, side, side) images, row-major.
    """
    if model.latent_dim != 2:
        raise ValueError(f"the latent manifold needs latent_dim=2, not {model.latent_dim} "
                         "(train with --latent 2)")
    u = torch.linspace(0.5 / n, 1 - 0.5 / n, n, dtype=torch.float64)
    grid = torch.distributions.Normal(0.0, 1.0).icdf(u)
    z = torch.stack(torch.meshgrid(grid, grid.flip(0), indexing="xy"), -1).reshape(-1, 2)
    return model.decoder_mean(z).reshape(-1, side, side).cpu().numpy()

