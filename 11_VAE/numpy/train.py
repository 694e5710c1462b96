"""Train the NumPy VAE (lesson 11, Level 1) on binarised digits or MNIST; evaluate; draw.

The model and its hand-written backward pass are in ``vae_numpy.py``, the derivations in
../theory.md. This script loads grey images in [0, 1], binarises the training images afresh
every epoch (x ~ Bernoulli(grey level)) and the test images once (seed 12345), trains with
lesson 02's Adam, reports the test -ELBO and an importance-weighted -log p(x), and writes
the ELBO curves, reconstructions, samples and (2-D latent) the latent manifold. Run from
the repository root::

    python 11_VAE/numpy/train.py                                  # digits, offline, seconds
    python 11_VAE/numpy/train.py --dataset mnist --data-root DIR  # 784-400-20, 10 epochs
    python 11_VAE/numpy/train.py --dataset mnist --data-root DIR --latent-dim 2

Measured (2-core CPU shared with other jobs, about 19 s per epoch, dynamically binarised
MNIST, test set binarised once with seed 12345, Adam lr 1e-3, batch 100, 10 epochs):
ReLU 784-400-20 test -ELBO 103.45 nats (reconstruction 75.65 + KL 27.80), importance-
weighted -log p(x) 98.47 (K = 100); tanh, the paper's choice, 105.13 and 100.51.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from tqdm import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    limit_blas_threads,
    non_negative_int,
    parse_args,
    positive_int,
    prepare_out_dir,
    seed_everything,
)
from utils.data_loaders import load_arrays, load_tabular
from utils.visualization import plot_curves, plot_image_grid

vae_numpy = import_lesson("11_VAE.numpy.vae_numpy")
VAE, Adam, sigmoid = vae_numpy.VAE, vae_numpy.Adam, vae_numpy.sigmoid
importance_weighted_log_likelihood = vae_numpy.importance_weighted_log_likelihood
latent_manifold = vae_numpy.latent_manifold
_as_rng = vae_numpy._mlp._as_rng  # lesson 02's: a Generator from a seed, a Generator or None

# Per-dataset defaults (command-line values win).
DATASET_DEFAULTS = {
    # 8x8 digits: 64 pixels, 1,437 training images
    "digits": {"hidden": 128, "latent_dim": 8, "epochs": 40, "batch_size": 32, "lr": 3e-3,
               "iw_samples": 200, "activation": "tanh"},
    # the reference 784-400-20 model of the paper's MNIST experiments. ReLU rather than
    # the paper's tanh: with Adam and 10 epochs it learns faster (measured, dynamic
    # binarisation: test -ELBO 105.1 with tanh; pass --activation tanh for the paper's form)
    "mnist": {"hidden": 400, "latent_dim": 20, "epochs": 10, "batch_size": 100, "lr": 1e-3,
              "iw_samples": 100, "activation": "relu"},
}

BINARIZE_THRESHOLD = 0.5


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def load_images(name: str, data_root) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) with pixels in [0, 1] (grey levels, not binarised).

    digits: scikit-learn's 8x8 digits, ink 0..16 divided by 16 (float64, 64 pixels);
    mnist: 28x28 images / 255, flattened to 784 pixels (float32).
    """
    if name == "digits":
        data = load_tabular("digits", standardize=False)
        return (data.X_train / 16.0, data.y_train, data.X_test / 16.0, data.y_test)
    data = load_arrays(name, data_root=data_root, flatten=True)
    return data.X_train, data.y_train, data.X_test, data.y_test


def binarize(X: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """Binary pixels from grey levels in [0, 1].

    "threshold": x > 0.5 (fixed, the same every epoch); "dynamic": x_bin ~ Bernoulli(x),
    redrawn on each call (a fresh binarisation per epoch acts as data augmentation).
    Returns: X's shape and dtype, values 0 and 1.
    """
    if how == "threshold":
        return (X > BINARIZE_THRESHOLD).astype(X.dtype)
    if how == "dynamic":
        return (rng.random(X.shape) < X).astype(X.dtype)
    raise ValueError(f"unknown binarisation {how!r}: expected 'threshold' or 'dynamic'")


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------


def train_one_epoch(model: VAE, optimizer, X: np.ndarray, *, batch_size: int,
                    rng: np.random.Generator) -> tuple[float, float, float]:
    """One pass over X in shuffled mini-batches: fresh noise, loss, backward, Adam step.

    Returns: the epoch's mean (neg_elbo, recon, kl), weighted by batch size.
    """
    totals, count = np.zeros(3), 0
    order = rng.permutation(len(X))  # a new order every epoch
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        xb = X[idx]
        eps = rng.standard_normal((len(idx), model.latent_dim)).astype(xb.dtype)
        totals += np.array(model.loss(xb, eps)) * len(idx)
        model.backward()
        optimizer.step()
        count += len(idx)
    neg_elbo, recon, kl = totals / count
    return float(neg_elbo), float(recon), float(kl)


def evaluate_elbo(model: VAE, X: np.ndarray, *, rng=0,
                  batch_size: int = 1000) -> tuple[float, float, float]:
    """Mean (neg_elbo, recon, kl) over X, one posterior sample per image, fixed seed.

    Inputs:  model; X (N, D) pixels; rng - seed or Generator of the noise (a fixed seed
             makes the test number reproducible); batch_size - chunk size.
    Returns: (neg_elbo_mean, recon_mean, kl_mean) in nats per image.
    """
    rng = _as_rng(rng)
    totals = np.zeros(3)
    for start in range(0, len(X), batch_size):
        xb = X[start:start + batch_size]
        eps = rng.standard_normal((len(xb), model.latent_dim)).astype(xb.dtype)
        totals += np.array(model.loss(xb, eps)) * len(xb)
    neg_elbo, recon, kl = totals / len(X)
    return float(neg_elbo), float(recon), float(kl)


def iw_negative_log_likelihood(model: VAE, X: np.ndarray, num_samples: int = 100, *,
                               rng=0, batch_size: int = 100) -> float:
    """Mean of -``importance_weighted_log_likelihood`` over X, in chunks (bounded memory)."""
    rng = _as_rng(rng)
    total = 0.0
    for start in range(0, len(X), batch_size):
        total -= importance_weighted_log_likelihood(model, X[start:start + batch_size],
                                                    num_samples, rng=rng).sum()
    return total / len(X)


# ---------------------------------------------------------------------------
# The script
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train a VAE on binarised digits (default) or MNIST with a hand-written backward pass.

    Shows the negative ELBO, its KL part and the test -ELBO per epoch in the progress bar;
    prints at the end the test negative ELBO and an importance-weighted estimate of
    -log p(x). Writes the ELBO curves, test reconstructions, samples from the prior and,
    for a 2-D latent space, the latent manifold to --out.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: {"test_neg_elbo", "test_recon", "test_kl", "test_iw_nll", "train_neg_elbo"},
             nats per image, lower is better.
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=["digits", "mnist"], epochs=None, batch_size=None,
                    lr=None, out="runs/11_VAE/numpy_vae", devices=("cpu",), threads=1)
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help="hidden units (default: %(default)s)")
    parser.add_argument("--latent-dim", "--latent", dest="latent_dim", type=positive_int,
                        default=None, help="latent dimensions J (default: %(default)s)")
    parser.add_argument("--activation", choices=sorted(vae_numpy.ACTIVATIONS), default=None,
                        help="hidden units' non-linearity (default: %(default)s)")
    parser.add_argument("--binarize", choices=["threshold", "dynamic"], default="dynamic",
                        help="threshold: x > 0.5; dynamic: x ~ Bernoulli(grey level), "
                             "redrawn every epoch for training, drawn once (fixed seed) for test")
    parser.add_argument("--iw-samples", "--iw-k", dest="iw_samples", type=non_negative_int,
                        default=None, help="K of the importance-weighted log p(x) estimate "
                                           "(0: skip it; default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # options left out: the dataset's
    # one BLAS thread (--threads 1) is fastest for these small products on a busy machine
    with limit_blas_threads(args.threads or None):
        return _train(args, parser)


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, float]:
    """The body of ``main``: data, model, training loop, evaluation, pictures."""
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    cfg = {key: getattr(args, key) for key in DATASET_DEFAULTS[args.dataset]}  # checked by argparse
    with data_errors():  # a missing or damaged file: one message, exit status 1
        X_train, _, X_test_grey, _ = load_images(args.dataset, args.data_root)

    rng = np.random.default_rng(args.seed)  # weights, noise, shuffling, training binarisation
    # the test set is binarised once, with its own fixed seed: every run scores the same images
    X_test = binarize(X_test_grey, args.binarize, np.random.default_rng(12345))
    model = VAE(X_train.shape[1], cfg["hidden"], cfg["latent_dim"], activation=cfg["activation"],
                rng=rng, dtype=X_train.dtype)  # float32 for MNIST: about twice as fast
    optimizer = Adam(model, cfg["lr"])
    print(f"{args.dataset}: X_train {X_train.shape} {X_train.dtype}, X_test {X_test.shape}, "
          f"binarised: {args.binarize}; {cfg}")
    print(model)

    history = {"train -ELBO": [], "train reconstruction": [], "train KL": [], "test -ELBO": []}
    start = time.perf_counter()
    epochs = tqdm(range(cfg["epochs"]), desc="VAE (NumPy)", disable=not args.progress)
    for epoch in epochs:
        X_bin = binarize(X_train, args.binarize, rng)
        neg_elbo, recon, kl = train_one_epoch(model, optimizer, X_bin,
                                              batch_size=cfg["batch_size"], rng=rng)
        if not np.isfinite(neg_elbo):
            parser.exit(1, f"error: the training loss became {neg_elbo} in epoch {epoch + 1}; "
                           f"lower --lr (now {cfg['lr']})\n")
        test_neg_elbo = evaluate_elbo(model, X_test, rng=0)[0]
        for key, value in zip(history, (neg_elbo, recon, kl, test_neg_elbo)):
            history[key].append(value)
        epochs.set_postfix(neg_elbo=f"{neg_elbo:.2f}", kl=f"{kl:.2f}", test=f"{test_neg_elbo:.2f}")
    seconds_per_epoch = (time.perf_counter() - start) / cfg["epochs"]

    test_neg_elbo, test_recon, test_kl = evaluate_elbo(model, X_test, rng=0)
    metrics = {"test_neg_elbo": test_neg_elbo, "test_recon": test_recon, "test_kl": test_kl,
               "train_neg_elbo": history["train -ELBO"][-1]}
    if cfg["iw_samples"]:
        metrics["test_iw_nll"] = float(iw_negative_log_likelihood(
            model, X_test, cfg["iw_samples"], rng=1))

    side = int(round(math.sqrt(X_train.shape[1])))
    name = (f"VAE {X_train.shape[1]}-{cfg['hidden']}-{cfg['latent_dim']} "
            f"({cfg['activation']}, NumPy)")
    plot_curves(history, path=out / "elbo.png", ylabel="nats per image",
                title=f"{name} on {args.dataset}: -ELBO = reconstruction + KL")
    shown = X_test[:12]  # few pictures: drawing each cell of a grid costs matplotlib time
    recon_means = sigmoid(model.forward(shown, np.zeros((len(shown), cfg["latent_dim"]),
                                                        dtype=shown.dtype))["logits"])
    pairs = np.stack([shown, recon_means], axis=1).reshape(-1, side, side)  # original, recon
    plot_image_grid(pairs, ncols=8, max_images=24, path=out / "reconstructions.png",
                    title="test images, each followed by its reconstruction from z = mu")
    plot_image_grid(model.sample(32, rng=args.seed).reshape(-1, side, side), ncols=8,
                    path=out / "samples.png", title="samples: sigmoid(decode(z)), z ~ N(0, I)")
    if cfg["latent_dim"] == 2:
        plot_image_grid(latent_manifold(model, 15).reshape(-1, side, side), ncols=15,
                        max_images=225, path=out / "manifold.png",
                        title="decoded 2-D latent grid (prior quantiles 0.05..0.95)")
    print(f"{name}: {seconds_per_epoch:.2f} s per epoch, test -ELBO {test_neg_elbo:.2f} nats "
          f"(reconstruction {test_recon:.2f} + KL {test_kl:.2f})"
          + (f", importance-weighted -log p(x) {metrics['test_iw_nll']:.2f} nats "
             f"(K = {cfg['iw_samples']})" if "test_iw_nll" in metrics else ""))
    print(f"plots in {out}")
    return metrics


if __name__ == "__main__":
    main()
