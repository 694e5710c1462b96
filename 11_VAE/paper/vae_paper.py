"""The variational autoencoder of Kingma & Welling (2013) as an nn.Module (Level 3, lesson 11).

What this file builds
---------------------
"Auto-Encoding Variational Bayes" (Kingma & Welling, ICLR 2014, arXiv:1312.6114):

- Section 2.4 / 3, Appendix C.2: the encoder q_phi(z|x) = N(mu, diag sigma^2) is an MLP
  with one hidden layer, h = tanh(W_enc x + b), mu = W_mu h + b, log sigma^2 = W_lv h + b;
- Appendix C.1: for binary data the decoder p_theta(x|z) is Bernoulli, an MLP with one
  tanh hidden layer whose outputs are sigmoid probabilities; Appendix C.2: for real data a
  Gaussian MLP with a mean and a log-variance head (``likelihood="gaussian"``);
- the reparameterisation z = mu + sigma * eps, eps ~ N(0, I) (Section 2.4) and the SGVB
  estimator of the ELBO with the analytic KL (eq. 10, Appendix B)::

      L(x) = -KL(q(z|x) || N(0, I)) + 1/L sum_l log p(x | z_l),   L = 1 sample per image

- Section 5: MNIST, J = 20 latent dimensions, 400 hidden units is the common reference
  (784-400-20). The paper trains with Adagrad; Adam (Kingma & Ba 2015) is the usual
  choice today and is what ``train`` uses, with minibatches of 100 as in the paper.

For evaluation the ELBO is a lower bound on log p(x); the importance-weighted estimate
of Burda, Grosse & Salakhutdinov (2015, eq. 8) is tighter and approaches log p(x) as k
grows::

    log p(x) >= L_k(x) = log 1/k sum_{i=1..k} p(x, z_i) / q(z_i | x),   z_i ~ q(z|x)

``test_iw_nll`` reports -L_k averaged over test images, in nats.

Run it from the repository root::

    python 11_VAE/paper/vae_paper.py                                      # digits, offline
    python 11_VAE/paper/vae_paper.py --dataset mnist --data-root DIR      # 784-400-20
    python 11_VAE/paper/vae_paper.py --dataset mnist --data-root DIR --latent 2   # Figure 4
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_int,
    parse_args,
    positive_int,
    prepare_out_dir,
)
from utils.lessons import import_lesson
from utils.training_utils import get_device, seed_everything
from utils.visualization import plot_curves, plot_image_grid, save_figure

# The data preparation (grey images, binarised per epoch or by threshold) is the one L2
# wrote; this level reuses it so that both train on the same images.
_lowlevel = import_lesson("11_VAE.pytorch_lowlevel.vae_lowlevel")
load_images = _lowlevel.load_images

LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = ("tanh", "relu")
DATASETS = ("digits", "mnist")
LOG_2PI = math.log(2.0 * math.pi)


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
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")
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
            raise ValueError(f"x: expected a (N, {self.input_dim}) float tensor (flattened "
                             f"images), got {shape}")
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
        if eps is None:
            eps = torch.randn_like(mu)
        elif eps.shape != mu.shape:
            raise ValueError(f"eps: expected shape {tuple(mu.shape)}, got {tuple(eps.shape)}")
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
        elif eps.shape != (k, *mu.shape):
            raise ValueError(f"eps: expected shape {(k, *mu.shape)}, got {tuple(eps.shape)}")
        eps = eps.to(device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (k, N, J)
        log_px_z = self.log_likelihood(x, self.decode(z))  # (k, N): x broadcasts over k
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))  # (k, N)
        log_qz_x = gaussian_log_density(z, mu, logvar)  # (k, N)
        return torch.logsumexp(log_px_z + log_pz - log_qz_x, dim=0) - math.log(k)


# --------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------


def train(model: VAE, X_train: torch.Tensor, *, epochs: int = 10, batch_size: int = 100,
          lr: float = 1e-3, dynamic: bool = True, seed: int = 0, progress: bool = False,
          log=None) -> dict[str, list[float]]:
    """Adam on the negative ELBO: zero_grad, loss, backward, step, for every minibatch.

    A hand loop rather than utils.training_utils.fit: the VAE's "targets" are its inputs,
    each batch needs fresh noise, and the history keeps the ELBO's two parts.
    Inputs:  X_train (N, D) on the model's device, grey in [0, 1] (dynamic: a new
             Bernoulli binarisation every epoch) or already binary; seed - batch order,
             binarisation (the noise eps comes from torch's global generator)
    Returns: {"neg_elbo", "recon", "kl"}: per-epoch means over the training batches
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"neg_elbo": [], "recon": [], "kl": []}
    model.train()
    for epoch in tqdm(range(epochs), desc="VAE (L3)", disable=not progress, leave=False):
        X = X_train
        if dynamic:
            X = (torch.rand(X_train.shape, generator=gen) < X_train.cpu()).to(X_train)
        order = torch.randperm(len(X), generator=gen).to(X.device)
        sums = np.zeros(3)
        for start in range(0, len(X), batch_size):
            xb = X[order[start:start + batch_size]]
            optimizer.zero_grad()
            loss, recon, kl = model.loss(xb)
            loss.backward()
            optimizer.step()
            sums += [loss.item() * len(xb), recon.item() * len(xb), kl.item() * len(xb)]
        if not math.isfinite(sums[0]):
            raise FloatingPointError(f"the loss became {sums[0]} in epoch {epoch + 1}; "
                                     f"try a smaller learning rate than {lr}")
        for key, value in zip(history, sums / len(X)):
            history[key].append(float(value))
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  -ELBO {history['neg_elbo'][-1]:.2f} "
                f"(recon {history['recon'][-1]:.2f} + KL {history['kl'][-1]:.2f})")
    return history


@torch.no_grad()
def evaluate(model: VAE, X: torch.Tensor, *, iw_k: int = 0, iw_count: int | None = None,
             seed: int = 0, batch_size: int = 500) -> dict[str, float]:
    """Test metrics in nats per image.

    Returns: {"neg_elbo", "recon", "kl"} over all of X (one noise draw per image) and,
             when iw_k > 0, "iw_nll" = -mean L_k over the first iw_count images (all: None)
    """
    model.eval()
    torch.manual_seed(seed)
    sums = np.zeros(3)
    for start in range(0, len(X), batch_size):
        xb = X[start:start + batch_size]
        sums += [float(v) * len(xb) for v in model.loss(xb)]
    sums /= len(X)
    result = {"neg_elbo": sums[0], "recon": sums[1], "kl": sums[2]}
    if iw_k > 0:
        X_iw = X[:iw_count] if iw_count else X
        gen = torch.Generator().manual_seed(seed)
        chunk = max(1, 20000 // iw_k)  # images per call: k * chunk decoder passes at once
        total = sum(float(model.iw_log_likelihood(X_iw[s:s + chunk], iw_k, gen).sum())
                    for s in range(0, len(X_iw), chunk))
        result["iw_nll"] = -total / len(X_iw)
    return result


# --------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------


@torch.no_grad()
def latent_manifold(model: VAE, side: int, n: int = 20) -> np.ndarray:
    """Figure 4 of the paper: decoder means on an n x n grid of a 2-D latent space.

    The grid is evenly spaced in probability: z = Phi^-1(u), u in (0, 1), so each cell
    covers the same prior mass. Returns: (n * n, side, side) images, row-major.
    """
    if model.latent_dim != 2:
        raise ValueError(f"the latent manifold needs latent_dim=2, the model has "
                         f"{model.latent_dim} (train with --latent 2)")
    u = torch.linspace(0.5 / n, 1 - 0.5 / n, n, dtype=torch.float64)
    grid = torch.distributions.Normal(0.0, 1.0).icdf(u)
    z = torch.stack(torch.meshgrid(grid, grid.flip(0), indexing="xy"), -1).reshape(-1, 2)
    return model.decoder_mean(z).reshape(-1, side, side).cpu().numpy()


def plot_embedding(mu: np.ndarray, labels: np.ndarray, path, title: str) -> None:
    """Scatter the first two latent means of the test images, coloured by digit."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=3)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set_xlabel("z_1 (mean of q)")
    ax.set_ylabel("z_2 (mean of q)")
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------

DATASET_DEFAULTS = {  # hidden, latent, epochs, batch size, IW samples and images
    "digits": {"hidden": 128, "latent": 8, "epochs": 30, "batch_size": 32, "iw_k": 100,
               "iw_count": 0},
    "mnist": {"hidden": 400, "latent": 20, "epochs": 10, "batch_size": 100, "iw_k": 100,
              "iw_count": 0},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the paper's VAE; report test -ELBO and the IW estimate of -log p(x); plot.

    Returns: {"test_neg_elbo", "test_recon", "test_kl", "test_iw_nll" (nats per image),
              "train_neg_elbo" (last epoch)}
    """
    parser = argparse.ArgumentParser(description="The VAE of Kingma & Welling (2013).")
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=None, lr=1e-3,
                    out="runs/11_VAE/l3_vae")
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help="hidden units per MLP (default: %(default)s)")
    parser.add_argument("--latent-dim", "--latent", dest="latent", type=positive_int,
                        default=None, help="latent dimensions J (default: %(default)s)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="tanh")
    parser.add_argument("--binarize", choices=_lowlevel.BINARIZE, default="dynamic")
    parser.add_argument("--iw-k", "--iw-samples", dest="iw_k", type=non_negative_int,
                        default=None, help="importance samples per test image (0: skip; "
                                           "default: %(default)s)")
    parser.add_argument("--iw-count", type=non_negative_int, default=None,
                        help="test images for the IW estimate (0: all; default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # a missing or damaged file: one message, exit status 1
        X_train, X_test, y_test, side = load_images(args.dataset, args.data_root,
                                                    binarize=args.binarize, seed=args.seed)
    X_train_t = torch.as_tensor(X_train, device=device)
    X_test_t = torch.as_tensor(X_test, device=device)
    model = VAE(X_train.shape[1], args.hidden, args.latent, activation=args.activation).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"VAE {X_train.shape[1]}-{args.hidden}-{args.latent} ({args.activation}), "
          f"{n_params:,} parameters, {args.dataset} binarised {args.binarize}")
    threads = 1 if args.dataset == "digits" else torch.get_num_threads()
    with _lowlevel._mlp_lowlevel.torch_threads(threads):
        history = train(model, X_train_t, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, dynamic=args.binarize == "dynamic", seed=args.seed,
                        progress=args.progress, log=print if args.progress else None)
        test = evaluate(model, X_test_t, iw_k=args.iw_k, iw_count=args.iw_count or None,
                        seed=args.seed)
    line = (f"test: -ELBO {test['neg_elbo']:.2f} nats = reconstruction {test['recon']:.2f} "
            f"+ KL {test['kl']:.2f}")
    if "iw_nll" in test:
        count = args.iw_count or len(X_test)
        line += f"; IW estimate of -log p(x), k={args.iw_k}, {count} images: {test['iw_nll']:.2f}"
    print(line)

    title = f"L3 VAE {X_train.shape[1]}-{args.hidden}-{args.latent} on {args.dataset}"
    plot_curves({"-ELBO": history["neg_elbo"], "reconstruction -log p(x|z)": history["recon"],
                 "KL(q || p)": history["kl"]}, path=out / "elbo.png", ylabel="nats per image",
                title=f"{title}: training ELBO and its two parts")
    model.eval()
    with torch.no_grad():
        mu, _ = model.encode(X_test_t)
        recon = model.decoder_mean(mu[:32])
        z = torch.randn(64, args.latent, generator=torch.Generator().manual_seed(args.seed))
        samples = model.decoder_mean(z)
    pairs = torch.stack([X_test_t[:32], recon], 1).reshape(-1, side, side)
    plot_image_grid(pairs.cpu().numpy(), path=out / "reconstructions.png", ncols=8,
                    title="test images and their reconstructions (decoder mean at z = mu)")
    plot_image_grid(samples.reshape(-1, side, side).cpu().numpy(), path=out / "samples.png",
                    ncols=8, title="samples: decoder means of z ~ N(0, I)")
    plot_embedding(mu.cpu().numpy(), y_test, out / "latent_embedding.png",
                   f"{title}: test set in latent space"
                   + ("" if args.latent == 2 else " (first 2 of the latent dimensions)"))
    if args.latent == 2:
        plot_image_grid(latent_manifold(model, side), path=out / "latent_manifold.png",
                        ncols=20, max_images=400, title="learned 2-D manifold (Figure 4)")
    print(f"plots written to {out}")
    result = {"test_neg_elbo": test["neg_elbo"], "test_recon": test["recon"],
              "test_kl": test["kl"], "train_neg_elbo": history["neg_elbo"][-1]}
    if "iw_nll" in test:
        result["test_iw_nll"] = test["iw_nll"]
    return result


if __name__ == "__main__":
    main()
