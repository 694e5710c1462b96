"""Train the paper's VAE (lesson 11, Level 3) on binarised digits or MNIST; evaluate; draw.

The model is in ``vae_paper.py``, the derivations in ../theory.md. This script uses the
images of Level 2 (grey levels for training, binarised afresh every epoch; a test set
binarised once), trains with Adam on minibatches of 100 as in the paper's Section 5 (the
paper used Adagrad), reports the test -ELBO and the importance-weighted estimate of
-log p(x) (``test_iw_nll``, Burda et al. 2015), and draws the ELBO curves,
reconstructions, samples, the test set in latent space and, with a 2-D latent space, the
learned manifold of the paper's Figure 4. Run from the repository root::

    python 11_VAE/paper/train.py                                      # digits, offline
    python 11_VAE/paper/train.py --dataset mnist --data-root DIR      # 784-400-20
    python 11_VAE/paper/train.py --dataset mnist --data-root DIR --latent 2   # Figure 4
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch
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
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_curves, plot_image_grid, save_figure

vae_paper = import_lesson("11_VAE.paper.vae_paper")
VAE, latent_manifold = vae_paper.VAE, vae_paper.latent_manifold
# The data preparation (grey images, binarised per epoch or by threshold) is the one L2
# wrote; this level reuses it so that both train on the same images.
_data = import_lesson("11_VAE.pytorch_lowlevel.train")
load_images, BINARIZE = _data.load_images, _data.BINARIZE

DATASETS = ("digits", "mnist")


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


def save_manifold(images: np.ndarray, path) -> None:
    """The decoded grid of ``latent_manifold`` as one mosaic, as the paper's Figure 4 shows it.

    Written pixel for pixel as an 8-bit grey PNG of n * side by n * side pixels.
    Inputs: images (n * n, side, side) in [0, 1], row-major from the grid's top-left corner.
    """
    from PIL import Image  # Pillow, a dependency of matplotlib

    n, side = int(round(math.sqrt(len(images)))), images.shape[-1]
    mosaic = images.reshape(n, n, side, side).transpose(0, 2, 1, 3)  # (row, y, column, x)
    mosaic = mosaic.reshape(n * side, n * side)  # rows of images stacked, columns side by side
    grey = (np.clip(mosaic, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(grey).save(path, optimize=True)


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
                    out="runs/11_VAE/l3_vae", threads=1)
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help="hidden units per MLP (default: %(default)s)")
    parser.add_argument("--latent-dim", "--latent", dest="latent", type=positive_int,
                        default=None, help="latent dimensions J (default: %(default)s)")
    parser.add_argument("--activation", choices=vae_paper.ACTIVATIONS, default="tanh")
    parser.add_argument("--binarize", choices=BINARIZE, default="dynamic")
    parser.add_argument("--iw-k", "--iw-samples", dest="iw_k", type=non_negative_int,
                        default=None, help="importance samples per test image (0: skip; "
                                           "default: %(default)s)")
    parser.add_argument("--iw-count", type=non_negative_int, default=None,
                        help="test images for the IW estimate (0: all; default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    # small matrices: one thread (the default) avoids the threads' start-up costs
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    """The body of ``main``: data, model, training, evaluation, then the pictures."""
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
    _pictures(model, history, X_test_t, y_test, side, args, out)
    result = {"test_neg_elbo": test["neg_elbo"], "test_recon": test["recon"],
              "test_kl": test["kl"], "train_neg_elbo": history["neg_elbo"][-1]}
    if "iw_nll" in test:
        result["test_iw_nll"] = test["iw_nll"]
    return result


def _pictures(model, history, X_test_t, y_test, side: int, args, out) -> None:
    """The ELBO curves, reconstructions, samples, the test set in latent space and, for a
    2-D latent space, the manifold of Figure 4, written to ``out``."""
    title = f"L3 VAE {model.input_dim}-{args.hidden}-{args.latent} on {args.dataset}"
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
        save_manifold(latent_manifold(model, side), out / "latent_manifold.png")
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
