"""Train the low-level PyTorch VAE (lesson 11, Level 2) on binarised digits or MNIST.

The model is in ``vae_lowlevel.py``, the derivations in ../theory.md. This script loads
the images (grey levels for training, binarised afresh every epoch; a test set binarised
once), runs the training loop written out (zero_grad, loss, backward, lesson 02's
``adam_step``), reports the test -ELBO and draws the ELBO curves, reconstructions and
samples. Run from the repository root::

    python 11_VAE/pytorch_lowlevel/train.py                        # digits, offline
    python -m 11_VAE.pytorch_lowlevel.train --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from utils.cli import add_common_args, data_errors, parse_args, positive_int, prepare_out_dir
from utils.data_loaders import load_arrays, load_tabular
from utils.lessons import import_lesson
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_curves, plot_image_grid

vae = import_lesson("11_VAE.pytorch_lowlevel.vae_lowlevel")

DATASETS = ("digits", "mnist")
BINARIZE = ("dynamic", "threshold")
TEST_BINARIZE_SEED = 12345  # the one fixed Bernoulli draw of the test images


# --------------------------------------------------------------------------------------
# Data, training and evaluation
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
            vae.zero_grad(plist)
            loss, recon, kl = vae.vae_loss(params, xb, eps, act)
            loss.backward()
            state = vae.adam_step(plist, lr, state=state)
            sums += [loss.item() * len(xb), recon.item() * len(xb), kl.item() * len(xb)]
        if not math.isfinite(sums[0]):
            raise FloatingPointError(f"the loss became {sums[0]} in epoch {epoch + 1}; "
                                     f"try a smaller learning rate than {lr}")
        for key, value in zip(history, sums / len(X)):
            history[key].append(float(value))
    return history


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
        sums += [float(v) * len(xb) for v in vae.vae_loss(params, xb, eps, act)]
    sums /= len(X)
    return {"neg_elbo": sums[0], "recon": sums[1], "kl": sums[2]}


# --------------------------------------------------------------------------------------
# The script
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
                    out="runs/11_VAE/l2_vae", threads=1)
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help="hidden units per MLP (default: %(default)s)")
    parser.add_argument("--latent-dim", "--latent", dest="latent", type=positive_int,
                        default=None, help="latent dimensions J (default: %(default)s)")
    parser.add_argument("--activation", choices=vae.ACTIVATIONS, default="tanh")
    parser.add_argument("--binarize", choices=BINARIZE, default="dynamic")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    # small matrices: one thread (the default) avoids the threads' start-up costs
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    """The body of ``main``: data, model, training, evaluation, pictures."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # a missing or damaged file: one message, exit status 1
        X_train, X_test, _, side = load_images(args.dataset, args.data_root,
                                               binarize=args.binarize, seed=args.seed)
    X_train_t = torch.as_tensor(X_train, device=device)
    X_test_t = torch.as_tensor(X_test, device=device)
    D = X_train.shape[1]
    params = vae.init_vae(D, args.hidden, args.latent, seed=args.seed, device=device)
    print(f"VAE {D}-{args.hidden}-{args.latent} ({args.activation}), {args.dataset}, "
          f"binarised {args.binarize}")
    history = train(params, X_train_t, act=args.activation, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr,
                    dynamic=args.binarize == "dynamic", seed=args.seed, progress=args.progress)
    test = evaluate(params, X_test_t, act=args.activation, seed=args.seed)
    print(f"test: -ELBO {test['neg_elbo']:.2f} nats = reconstruction {test['recon']:.2f} "
          f"+ KL {test['kl']:.2f}")

    plot_curves({"-ELBO": history["neg_elbo"], "reconstruction": history["recon"],
                 "KL": history["kl"]}, path=out / "elbo.png", ylabel="nats per image",
                title=f"L2 VAE on {args.dataset} (training)")
    with torch.no_grad():
        xb = X_test_t[:32]
        mu, _ = vae.encode(params, xb, args.activation)
        recon = torch.sigmoid(vae.decode(params, mu, args.activation))
        z = torch.randn(32, args.latent, generator=torch.Generator().manual_seed(args.seed))
        samples = torch.sigmoid(vae.decode(params, z.to(device), args.activation))
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
