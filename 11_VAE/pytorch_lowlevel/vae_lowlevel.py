"""The variational autoencoder in low-level PyTorch (Level 2 of lesson 11).

What this file builds
---------------------
The VAE of Kingma & Welling (2013, "Auto-Encoding Variational Bayes", Section 3 and
Appendix C) with one hidden layer on each side, as functions of plain tensors::

    encoder   h   = f(x W_enc + b_enc)                       x (N, D), h (N, H)
              mu  = h W_mu + b_mu                            (N, J)
              log sigma^2 = h W_logvar + b_logvar            (N, J)
    sample    z   = mu + sigma * eps,   eps ~ N(0, I)        the reparameterisation trick
    decoder   g   = f(z W_dec + b_dec)                       (N, H)
              logits = g W_out + b_out                       (N, D), p(x_d = 1 | z) = sigmoid

and the evidence lower bound, per image (Section 2.4, eq. 10 and Appendix B)::

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I))
    log p(x|z)  = sum_d x_d logit_d - softplus(logit_d)                  (Bernoulli)
    KL          = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)     (analytic)

One sample of eps per image estimates the expectation. The loss minimised is the
negative ELBO averaged over the batch, in nats per image.

Why this level
--------------
At L1 the gradient through z = mu + sigma * eps is written by hand. Here autograd
follows it: the noise ``eps`` is an input like x, so the same weights and the same
``eps`` give the same loss and gradients at every level (``paper/test_paper.py``).
The Bernoulli log-likelihood and the KL are checked against ``torch.distributions``
in ``test_lowlevel.py``.

Run it from the repository root::

    python 11_VAE/pytorch_lowlevel/vae_lowlevel.py                        # digits, offline
    python -m 11_VAE.pytorch_lowlevel.vae_lowlevel --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from utils.cli import add_common_args, data_errors, parse_args, positive_int, prepare_out_dir
from utils.data_loaders import load_arrays, load_tabular
from utils.lessons import import_lesson
from utils.training_utils import get_device, seed_everything
from utils.visualization import plot_curves, plot_image_grid

# Lesson 02 already wrote Adam as a function of tensors (Kingma & Ba 2015, Algorithm 1);
# the VAE reuses it rather than writing it again.
_mlp_lowlevel = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
adam_step = _mlp_lowlevel.adam_step
zero_grad = _mlp_lowlevel.zero_grad

ACTIVATIONS = ("tanh", "relu")
DATASETS = ("digits", "mnist")
BINARIZE = ("dynamic", "threshold")
LAYERS = ("enc", "enc_mu", "enc_logvar", "dec", "dec_out")
TEST_BINARIZE_SEED = 12345  # the one fixed Bernoulli draw of the test images


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


@torch.no_grad()
def evaluate(params: dict, X: torch.Tensor, *, act: str = "tanh", seed: int = 0,
             batch_size: int = 1000) -> dict[str, float]:
    """Mean negative ELBO, reconstruction and KL over X, one noise draw per image.

    Returns: {"neg_elbo", "recon", "kl"} nats per image
    """
    gen = torch.Generator().manual_seed(seed)
    J = params["enc_mu.b"].shape[0]
    sums = np.zeros(3)
    for start in range(0, len(X), batch_size):
        xb = X[start:start + batch_size]
        eps = torch.randn(len(xb), J, generator=gen, dtype=xb.dtype).to(xb.device)
        sums += [float(v) * len(xb) for v in vae_loss(params, xb, eps, act)]
    sums /= len(X)
    return {"neg_elbo": sums[0], "recon": sums[1], "kl": sums[2]}


# --------------------------------------------------------------------------------------
# 4. Data and training
# --------------------------------------------------------------------------------------


def load_images(name: str, data_root=None, *, binarize: str = "dynamic", seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Grey images in [0, 1] for training, a fixed binary test set.

    digits: scikit-learn's 8x8 digits, pixels / 16 (1,437 train / 360 test);
    mnist: 60,000 / 10,000 images, 784 pixels / 255.
    binarize "dynamic": training images are re-sampled x ~ Bernoulli(grey) every epoch,
    the test images once with the fixed seed TEST_BINARIZE_SEED; "threshold": x = grey > 0.5.
    Returns: X_train (N, D) float32 grey (or binary for "threshold"), X_test (M, D) float32
             binary, y_test (M,) labels, image side length
    """
    if binarize not in BINARIZE:
        raise ValueError(f"unknown binarisation {binarize!r}; expected one of {BINARIZE}")
    if name == "digits":
        split = load_tabular("digits", standardize=False, seed=seed)
        X_train, X_test, side = split.X_train / 16.0, split.X_test / 16.0, 8
    elif name == "mnist":
        split = load_arrays("mnist", data_root=data_root, flatten=True)
        X_train, X_test, side = split.X_train, split.X_test, 28
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    X_train = np.asarray(X_train, dtype=np.float32)
    X_test = np.asarray(X_test, dtype=np.float32)
    if binarize == "threshold":
        X_train, X_test = (X_train > 0.5).astype(np.float32), (X_test > 0.5).astype(np.float32)
    else:
        rng = np.random.default_rng(TEST_BINARIZE_SEED)
        X_test = (rng.random(X_test.shape) < X_test).astype(np.float32)
    return X_train, X_test, np.asarray(split.y_test), side


def train(params: dict, X_train: torch.Tensor, *, act: str = "tanh", epochs: int = 10,
          batch_size: int = 100, lr: float = 1e-3, dynamic: bool = True, seed: int = 0,
          progress: bool = False) -> dict[str, list[float]]:
    """Adam on the negative ELBO, written out: zero_grad, forward, loss, backward, step.

    Inputs:  params (init_vae); X_train (N, D) grey in [0, 1] (dynamic: binarised afresh
             each epoch) or already binary; seed - batch order, binarisation and eps
    Returns: {"neg_elbo", "recon", "kl"}: per-epoch means over the training batches
    """
    gen = torch.Generator().manual_seed(seed)
    J = params["enc_mu.b"].shape[0]
    plist = list(params.values())
    state = None
    history: dict[str, list[float]] = {"neg_elbo": [], "recon": [], "kl": []}
    for epoch in tqdm(range(epochs), desc="VAE (L2)", disable=not progress, leave=False):
        X = X_train
        if dynamic:  # a fresh binary image from each grey one: x_d ~ Bernoulli(grey_d)
            X = (torch.rand(X_train.shape, generator=gen) < X_train.cpu()).to(X_train)
        order = torch.randperm(len(X), generator=gen)
        sums = np.zeros(3)
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size].to(X.device)
            xb = X[rows]
            eps = torch.randn(len(xb), J, generator=gen, dtype=xb.dtype).to(xb.device)
            zero_grad(plist)
            loss, recon, kl = vae_loss(params, xb, eps, act)
            loss.backward()
            state = adam_step(plist, lr, state=state)
            sums += [loss.item() * len(xb), recon.item() * len(xb), kl.item() * len(xb)]
        if not math.isfinite(sums[0]):
            raise FloatingPointError(f"the loss became {sums[0]} in epoch {epoch + 1}; "
                                     f"try a smaller learning rate than {lr}")
        for key, value in zip(history, sums / len(X)):
            history[key].append(float(value))
    return history


# --------------------------------------------------------------------------------------
# 5. The script
# --------------------------------------------------------------------------------------

DATASET_DEFAULTS = {  # hidden, latent, epochs, batch size
    "digits": {"hidden": 128, "latent": 8, "epochs": 30, "batch_size": 32},
    "mnist": {"hidden": 400, "latent": 20, "epochs": 10, "batch_size": 100},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train a VAE with hand-written tensors; plot ELBO curves, reconstructions, samples.

    Returns: {"test_neg_elbo", "test_recon", "test_kl" (nats per image on the binary test
             set, one noise draw per image), "train_neg_elbo" (last epoch)}
    """
    parser = argparse.ArgumentParser(description="A VAE from tensors and autograd.")
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=None, lr=1e-3,
                    out="runs/11_VAE/l2_vae")
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help="hidden units per MLP (default: %(default)s)")
    parser.add_argument("--latent-dim", "--latent", dest="latent", type=positive_int,
                        default=None, help="latent dimensions J (default: %(default)s)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="tanh")
    parser.add_argument("--binarize", choices=BINARIZE, default="dynamic")
    args = parse_args(parser, argv, DATASET_DEFAULTS)

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # a missing or damaged file: one message, exit status 1
        X_train, X_test, _, side = load_images(args.dataset, args.data_root,
                                               binarize=args.binarize, seed=args.seed)
    X_train_t = torch.as_tensor(X_train, device=device)
    X_test_t = torch.as_tensor(X_test, device=device)
    D = X_train.shape[1]
    params = init_vae(D, args.hidden, args.latent, seed=args.seed, device=device)
    print(f"VAE {D}-{args.hidden}-{args.latent} ({args.activation}), {args.dataset}, "
          f"binarised {args.binarize}")
    # small matrices: one thread avoids thread start-up costs (see lesson 02's torch_threads)
    with _mlp_lowlevel.torch_threads(1 if args.dataset == "digits" else torch.get_num_threads()):
        history = train(params, X_train_t, act=args.activation, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr,
                        dynamic=args.binarize == "dynamic", seed=args.seed,
                        progress=args.progress)
    test = evaluate(params, X_test_t, act=args.activation, seed=args.seed)
    print(f"test: -ELBO {test['neg_elbo']:.2f} nats = reconstruction {test['recon']:.2f} "
          f"+ KL {test['kl']:.2f}")

    plot_curves({"-ELBO": history["neg_elbo"], "reconstruction": history["recon"],
                 "KL": history["kl"]}, path=out / "elbo.png", ylabel="nats per image",
                title=f"L2 VAE on {args.dataset} (training)")
    with torch.no_grad():
        xb = X_test_t[:32]
        mu, _ = encode(params, xb, args.activation)
        recon = torch.sigmoid(decode(params, mu, args.activation))
        z = torch.randn(32, args.latent, generator=torch.Generator().manual_seed(args.seed))
        samples = torch.sigmoid(decode(params, z.to(device), args.activation))
    pairs = torch.stack([xb, recon], 1).reshape(-1, side, side)  # original, reconstruction
    plot_image_grid(pairs.cpu().numpy(), path=out / "reconstructions.png", ncols=8,
                    title="test images (left) and reconstructions from mu (right)")
    plot_image_grid(samples.reshape(-1, side, side).cpu().numpy(), path=out / "samples.png",
                    ncols=8, title="decoder means of z ~ N(0, I)")
    print(f"plots written to {out}")
    return {"test_neg_elbo": test["neg_elbo"], "test_recon": test["recon"],
            "test_kl": test["kl"], "train_neg_elbo": history["neg_elbo"][-1]}


if __name__ == "__main__":
    main()
