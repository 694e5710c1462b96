"""Tests of lesson 11, level 1 (NumPy): every number checked against a reference.

References:

- ``torch.distributions`` for the probabilistic pieces: Bernoulli(logits).log_prob,
  kl_divergence(Normal, Normal), Normal.log_prob;
- central finite differences (float64) for the whole model's hand-written backward pass,
  the sampling step included (the noise eps is an input, so the loss is deterministic);
- PyTorch autograd on the same weights and the same noise: every intermediate, the loss
  split and every gradient;
- the exact log p(x) of a tiny model with a 1-D latent, by quadrature, for the
  importance-weighted estimate (it must approach log p(x) from below as K grows);
- properties for any shape and dtype (hypothesis).

Run from the repository root: ``pytest 11_VAE/numpy`` (add ``--slow`` for the real-MNIST
run, which needs a local copy of the data).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils import import_lesson
from utils.testing import (
    FINITE_DIFF,
    FLOAT64,
    L1_VS_AUTOGRAD,
    Tol,
    assert_close,
    assert_level_purity,
    float32_tol,
    numerical_gradient,
)

vae = import_lesson("11_VAE.numpy.vae_numpy")
train = import_lesson("11_VAE.numpy.train")

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# float32 against float64 on the same weights: ~7 digits, minus sums over 8..64 terms
FLOAT32_VS_FLOAT64 = float32_tol(1024)  # scaled to each tensor: see utils/testing.py

few_examples = settings(max_examples=15, deadline=None)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def binary(*shape, seed=0):
    return (np.random.default_rng(seed).random(shape) < 0.4).astype(np.float64)


def small_vae(activation="tanh", seed=0, dims=(6, 5, 3)):
    """A float64 VAE with non-zero biases, so that wrong bias gradients would show."""
    model = vae.VAE(*dims, activation=activation, rng=seed)
    rng = np.random.default_rng(seed + 100)
    for p in model.params.values():
        if p.ndim == 1:
            p[...] = 0.3 * rng.standard_normal(p.shape)
    return model


# ---------------------------------------------------------------------------
# The level's rules and the import guard
# ---------------------------------------------------------------------------


def test_level_purity():
    assert_level_purity(HERE)


def test_shadowing_guard_explains_how_to_run():
    """Python started inside 11_VAE/ must not silently use this folder as NumPy."""
    result = subprocess.run([sys.executable, "-c", "import numpy"], cwd=HERE.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "python 11_VAE/numpy/train.py" in result.stderr


def test_importing_the_lesson_does_not_import_torch():
    code = ("import sys, importlib\n"
            "importlib.import_module('11_VAE.numpy.vae_numpy')\n"
            "importlib.import_module('11_VAE.numpy.train')\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# The probabilistic pieces against torch.distributions
# ---------------------------------------------------------------------------


def test_bernoulli_log_likelihood_equals_torch_distributions():
    logits, x = 3 * randn(7, 10, seed=1), binary(7, 10, seed=2)
    ours = vae.bernoulli_log_likelihood(logits, x)
    ref = Bernoulli(logits=torch.from_numpy(logits)).log_prob(torch.from_numpy(x)).sum(dim=1)
    assert ours.shape == (7,)
    assert_close(ours, ref, L1_VS_AUTOGRAD, name="log p(x|z)")
    # grey levels in [0, 1]: minus the binary cross-entropy with logits
    grey = np.random.default_rng(3).random((7, 10))
    ref_grey = -F.binary_cross_entropy_with_logits(torch.from_numpy(logits),
                                                   torch.from_numpy(grey),
                                                   reduction="none").sum(dim=1)
    assert_close(vae.bernoulli_log_likelihood(logits, grey), ref_grey, L1_VS_AUTOGRAD,
                 name="grey-level cross-entropy")


def test_bernoulli_log_likelihood_is_stable_for_huge_logits():
    """log sigmoid(l) of l = -1000 is -1000, not log(0) = -inf."""
    logits = np.array([[1000.0, -1000.0, 1000.0, -1000.0, 0.0]])
    x = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no log(0)
        value = vae.bernoulli_log_likelihood(logits, x)
    # exact: 0 + 0 - 1000 - 1000 + log(1/2)
    assert_close(value, np.array([-2000.0 - np.log(2.0)]), FLOAT64, name="extreme logits")
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s = vae.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    assert_close(s, np.array([0.0, 0.5, 1.0]), FLOAT64, name="sigmoid")


def test_gaussian_kl_equals_torch_kl_divergence():
    mu, logvar = randn(6, 4, seed=4), randn(6, 4, seed=5)
    ours = vae.gaussian_kl(mu, logvar)
    q = Normal(torch.from_numpy(mu), torch.from_numpy(np.exp(0.5 * logvar)))
    ref = kl_divergence(q, Normal(0.0, 1.0)).sum(dim=1)
    assert ours.shape == (6,)
    assert_close(ours, ref, L1_VS_AUTOGRAD, name="KL")
    assert np.all(ours > 0)
    assert_close(vae.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3))), np.zeros(2), FLOAT64,
                 name="KL of the prior to itself")


def test_gaussian_log_density_equals_torch_normal():
    z, mu, logvar = randn(3, 5, 4, seed=6), randn(5, 4, seed=7), randn(5, 4, seed=8)
    ref = Normal(torch.from_numpy(mu), torch.from_numpy(np.exp(0.5 * logvar))).log_prob(
        torch.from_numpy(z)).sum(dim=-1)
    assert_close(vae.gaussian_log_density(z, mu, logvar), ref, L1_VS_AUTOGRAD, name="log q")
    prior = Normal(0.0, 1.0).log_prob(torch.from_numpy(z)).sum(dim=-1)
    assert_close(vae.gaussian_log_density(z, 0.0, 0.0), prior, L1_VS_AUTOGRAD, name="log p(z)")


def test_reparameterize_is_a_sample_of_the_posterior():
    mu, logvar = np.array([[1.5, -2.0, 0.0]]), np.array([[0.0, np.log(4.0), np.log(0.01)]])
    eps = randn(1, 3, seed=9)
    assert_close(vae.reparameterize(mu, logvar, eps), mu + np.array([[1.0, 2.0, 0.1]]) * eps,
                 FLOAT64, name="z")
    many = randn(200_000, 3, seed=10)
    z = vae.reparameterize(np.repeat(mu, len(many), 0), np.repeat(logvar, len(many), 0), many)
    # 200,000 samples: standard errors sigma / 447; allow about 5 of them
    assert np.all(np.abs(z.mean(axis=0) - mu[0]) < 5 * np.array([1.0, 2.0, 0.1]) / 447)
    assert np.all(np.abs(z.std(axis=0) / np.array([1.0, 2.0, 0.1]) - 1) < 0.01)


# ---------------------------------------------------------------------------
# The whole model: finite differences and autograd, with fixed noise
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_backward_matches_finite_differences(activation):
    model = small_vae(activation, seed=1)
    x, eps = binary(4, 6, seed=11), randn(4, 3, seed=12)

    def neg_elbo() -> float:
        return model.loss(x, eps)[0]

    model.loss(x, eps)
    dx = model.backward()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    assert len(analytic) == 10
    for name, p in model.params.items():
        assert_close(analytic[name], numerical_gradient(neg_elbo, p), FINITE_DIFF,
                     name=f"dL/d{name}")
    grey = np.random.default_rng(13).random((4, 6))  # x as a real input needs grey levels

    def neg_elbo_grey() -> float:
        return model.loss(grey, eps)[0]

    model.loss(grey, eps)
    dx = model.backward()
    assert_close(dx, numerical_gradient(neg_elbo_grey, grey), FINITE_DIFF, name="dL/dx")


def torch_reference(model, x, eps):
    """The same VAE in torch ops on copies of the weights; the loss via torch.distributions."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    act = torch.tanh if model.activation == "tanh" else torch.relu
    x_t = torch.tensor(x, requires_grad=True)  # x is both the input and the target
    eps_t = torch.from_numpy(eps)
    h = act(x_t @ p["enc.W"] + p["enc.b"])
    mu = h @ p["enc_mu.W"] + p["enc_mu.b"]
    logvar = h @ p["enc_logvar.W"] + p["enc_logvar.b"]
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps_t
    logits = act(z @ p["dec.W"] + p["dec.b"]) @ p["dec_out.W"] + p["dec_out.b"]
    recon = -Bernoulli(logits=logits).log_prob(x_t).sum(dim=1).mean()
    kl = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum(dim=1).mean()
    (recon + kl).backward()
    return {"mu": mu, "logvar": logvar, "z": z, "logits": logits, "dx": x_t.grad}, recon, kl, p


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_model_equals_torch_autograd(activation):
    model = small_vae(activation, seed=2, dims=(12, 7, 4))
    x, eps = binary(9, 12, seed=14), randn(9, 4, seed=15)
    out = model.forward(x, eps)
    neg_elbo, recon, kl = model.loss(x, eps)
    dx = model.backward()
    ref_out, ref_recon, ref_kl, ref_params = torch_reference(model, x, eps)
    assert_close(dx, ref_out["dx"], L1_VS_AUTOGRAD, name="dL/dx")
    for key in ("mu", "logvar", "z", "logits"):
        assert_close(out[key], ref_out[key], L1_VS_AUTOGRAD, name=key)
    assert_close(recon, ref_recon.item(), L1_VS_AUTOGRAD, name="reconstruction")
    assert_close(kl, ref_kl.item(), L1_VS_AUTOGRAD, name="KL")
    assert_close(neg_elbo, (ref_recon + ref_kl).item(), L1_VS_AUTOGRAD, name="-ELBO")
    assert list(model.grads) == list(ref_params)
    for name, g in model.grads.items():
        assert_close(g, ref_params[name].grad, L1_VS_AUTOGRAD, name=f"dL/d{name}")


def test_params_are_the_layers_arrays_and_adam_updates_them():
    model = vae.VAE(6, 5, 3, rng=0)
    assert list(model.params) == [f"{layer}.{k}" for layer in vae.VAE.LAYERS for k in "Wb"]
    assert model.params["enc_mu.W"] is model.enc_mu.W
    assert model.grads["dec_out.b"] is model.dec_out.grads["b"]
    assert model.enc.W.shape == (6, 5) and model.dec_out.W.shape == (5, 6)
    before = model.dec.W.copy()
    model.loss(binary(4, 6, seed=16), randn(4, 3, seed=17))
    model.backward()
    g = np.abs(model.grads["dec.W"].copy())
    vae.Adam(model, lr=0.01, eps=1e-12).step()
    # Adam's first step moves each coordinate by lr |g| / (|g| + eps), about lr
    # (m_hat / sqrt(v_hat) = sign(g)); eps is kept in the expectation, not in the tolerance
    assert_close(np.abs(model.dec.W - before), 0.01 * g / (g + 1e-12), Tol(1e-12, 1e-15))


def test_reference_model_parameter_count():
    model = vae.VAE(rng=0)  # 784-400-20, tanh, Xavier init
    assert model.num_params() == ((784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400)
                                  + (400 * 784 + 784))
    assert model.num_params() == 652_824
    assert model.enc.init == "xavier" and vae.VAE(4, 3, 2, activation="relu").enc.init == "he"


def test_float32_model_agrees_with_float64():
    m64 = small_vae(seed=3, dims=(16, 8, 4))
    m32 = vae.VAE(16, 8, 4, rng=0, dtype=np.float32)
    for name, p in m32.params.items():
        p[...] = m64.params[name]
    x, eps = binary(10, 16, seed=18), randn(10, 4, seed=19)
    losses64 = m64.loss(x, eps)
    m64.backward()
    losses32 = m32.loss(x.astype(np.float32), eps.astype(np.float32))
    m32.backward()
    assert_close(np.array(losses32), np.array(losses64), FLOAT32_VS_FLOAT64, name="losses")
    for name, g in m32.grads.items():
        assert g.dtype == np.float32
        assert_close(g, m64.grads[name], FLOAT32_VS_FLOAT64, name=name)


# ---------------------------------------------------------------------------
# The importance-weighted estimate against the exact log p(x) of a tiny model
# ---------------------------------------------------------------------------


def exact_log_px(model, x):
    """log p(x) = log int p(x|z) N(z; 0, 1) dz for a 1-D latent, by the trapezoid rule."""
    grid = np.linspace(-12, 12, 24_001)
    log_joint = (vae.bernoulli_log_likelihood(model.decode(grid[:, None]),
                                              np.repeat(x, len(grid), 0))
                 + vae.gaussian_log_density(grid[:, None], 0.0, 0.0))
    top = log_joint.max()
    return top + np.log(np.trapezoid(np.exp(log_joint - top), grid))


def test_importance_weighted_estimate_approaches_exact_log_likelihood():
    model = small_vae(seed=4, dims=(5, 6, 1))
    x = binary(1, 5, seed=20)
    exact = exact_log_px(model, x)
    elbo = -model.loss(np.repeat(x, 20_000, 0), randn(20_000, 1, seed=21))[0]
    repeats = {1: 20_000, 10: 2000, 1000: 200}  # K * repeats <= 200,000 decoder rows
    estimates = {k: float(np.mean(vae.importance_weighted_log_likelihood(
        model, np.repeat(x, r, 0), k, rng=k))) for k, r in repeats.items()}
    # K = 1: the ELBO in expectation (20,000 repeats: standard error a few hundredths)
    assert abs(estimates[1] - elbo) < 0.1
    assert elbo < exact  # the bound is strict unless q is the true posterior
    assert estimates[1] < estimates[10] < estimates[1000] + 1e-3  # tighter with more samples
    assert abs(estimates[1000] - exact) < 0.01, (estimates, exact)


# ---------------------------------------------------------------------------
# Learning, the script, and the pictures' helpers
# ---------------------------------------------------------------------------


def test_overfits_a_small_batch():
    """Eight binary images: reconstruction error falls from ~0.7 nats per pixel to near 0."""
    x = binary(8, 20, seed=22)
    model = vae.VAE(20, 32, 4, rng=5)
    opt = vae.Adam(model, 1e-2)
    rng = np.random.default_rng(6)
    first = model.loss(x, rng.standard_normal((8, 4)))[0]
    for _ in range(400):
        model.loss(x, rng.standard_normal((8, 4)))
        model.backward()
        opt.step()
    neg_elbo, recon, kl = model.loss(x, np.zeros((8, 4)))
    assert first > 12 and recon < 1.0 and kl > 1.0  # the code carries what x needs
    means = vae.sigmoid(model.forward(x, np.zeros((8, 4)))["logits"])
    assert np.all((means > 0.5) == (x > 0.5))


def test_script_on_digits(tmp_path):
    metrics = train.main(["--epochs", "12", "--iw-samples", "50", "--out", str(tmp_path),
                          "--no-progress"])
    assert set(metrics) == {"test_neg_elbo", "test_recon", "test_kl", "test_iw_nll",
                            "train_neg_elbo"}
    assert_close(metrics["test_neg_elbo"], metrics["test_recon"] + metrics["test_kl"], FLOAT64)
    # independent pixels with the training means score 27.25 nats on this binarised test
    # set; the VAE must beat that (it reaches ~24.5 in 12 epochs)
    assert metrics["test_neg_elbo"] < 26.0
    assert metrics["test_iw_nll"] < metrics["test_neg_elbo"]  # a tighter bound
    assert metrics["test_kl"] > 1.0  # the latent code is used
    for png in ("elbo.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / png).is_file()


def test_latent_manifold_decodes_the_prior_quantiles():
    model = vae.VAE(9, 4, 2, rng=7)
    grid = vae.latent_manifold(model, side=5)
    assert grid.shape == (25, 9)
    # the grid's middle cell is z = Phi^-1(0.5) = (0, 0)
    assert_close(grid[12], vae.sigmoid(model.decode(np.zeros((1, 2))))[0], Tol(1e-9, 1e-9))
    # its top-left corner is (Phi^-1(0.05), Phi^-1(0.95)) = (-1.6449, 1.6449)
    corner = vae.sigmoid(model.decode(np.array([[-1.6448536269514722, 1.6448536269514722]])))
    assert_close(grid[0], corner[0], Tol(1e-9, 1e-9))
    with pytest.raises(ValueError, match="2-D latent"):
        vae.latent_manifold(vae.VAE(9, 4, 3, rng=0))


def test_binarize():
    X = np.array([[0.1, 0.5, 0.51, 1.0]])
    np.testing.assert_array_equal(train.binarize(X, "threshold", None), [[0, 0, 1, 1]])
    grey = np.full((1000, 50), 0.3)
    b = train.binarize(grey, "dynamic", np.random.default_rng(0))
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01
    with pytest.raises(ValueError, match="threshold"):
        train.binarize(X, "otsu", None)


# ---------------------------------------------------------------------------
# Shapes and dtypes (hypothesis), bad input
# ---------------------------------------------------------------------------


@few_examples
@given(n=st.integers(1, 5), d=st.integers(1, 6), h=st.integers(1, 5), j=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_shapes_and_dtypes(n, d, h, j, dtype):
    model = vae.VAE(d, h, j, rng=0, dtype=dtype)
    x = binary(n, d, seed=n + d).astype(dtype)
    out = model.forward(x, randn(n, j, seed=h).astype(dtype))
    for key, shape in [("mu", (n, j)), ("logvar", (n, j)), ("z", (n, j)), ("logits", (n, d))]:
        assert out[key].shape == shape and out[key].dtype == dtype, key
    neg_elbo, recon, kl = model.loss(x, randn(n, j, seed=h))
    assert recon > 0 and kl >= 0 and abs(neg_elbo - recon - kl) < 1e-9 * max(1, neg_elbo)
    assert model.backward().shape == (n, d)
    for name, g in model.grads.items():
        assert g.shape == model.params[name].shape and g.dtype == dtype


def test_bad_input_raises_clear_errors(tmp_path, capsys):
    model = vae.VAE(6, 4, 2, rng=0)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        model.forward(np.zeros((3, 5)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="flatten"):
        model.loss(np.zeros((3, 2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        model.forward(np.zeros((3, 6)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="one row of noise per image"):
        model.forward(np.zeros((3, 6)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        model.loss(np.full((3, 6), 255.0), np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="before loss"):
        vae.VAE(6, 4, 2, rng=0).backward()
    with pytest.raises(ValueError, match="unknown activation"):
        vae.VAE(6, 4, 2, activation="sigmoid")
    # the inner pieces (gaussian_kl, reparameterize, ...) trust the model: checked at its door
    with pytest.raises(ValueError, match=r"VAE.decode expects shape \(N, 2\)"):
        model.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="real numbers"):
        model.forward(np.full((3, 6), "a"), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="real numbers"):
        model.loss(np.zeros((3, 6)), np.full((3, 2), "a"))
    with pytest.raises(SystemExit):
        train.main(["--latent-dim", "0", "--out", str(tmp_path), "--no-progress"])
    assert "--latent-dim" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^error: .*does not exist") as exit_info:
        train.main(["--dataset", "mnist", "--data-root", str(tmp_path / "none"),
                    "--out", str(tmp_path), "--no-progress"])
    assert "Traceback" not in str(exit_info.value)  # one message, printed with exit status 1


# ---------------------------------------------------------------------------
# Real MNIST (slow, needs a local copy of the data)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_reference_vae_on_real_mnist(tmp_path, shared_data):
    """784-400-20, ReLU, Adam, 10 epochs, dynamic binarisation: test -ELBO <= 105 nats."""
    metrics = train.main(["--dataset", "mnist", "--data-root", str(shared_data),
                          "--iw-samples", "100", "--out", str(tmp_path), "--no-progress"])
    assert metrics["test_neg_elbo"] <= 105.0
    assert metrics["test_iw_nll"] < metrics["test_neg_elbo"]


# ---------------------------------------------------------------------------
# Classic mistakes, each checked with numbers (11_VAE/bugs.py plants them), and the script
# ---------------------------------------------------------------------------


def test_script_binarises_the_training_set_afresh_every_epoch(tmp_path, monkeypatch):
    """The script's own loop: each epoch trains on a new draw x ~ Bernoulli(grey) of the
    whole training set, whose pixel means match the grey levels."""
    seen = []
    train_one_epoch = train.train_one_epoch

    def recording(model, optimizer, X, **kwargs):
        seen.append(X.copy())
        return train_one_epoch(model, optimizer, X, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", recording)
    train.main(["--epochs", "2", "--hidden", "8", "--latent-dim", "3", "--iw-samples", "0",
                "--out", str(tmp_path), "--no-progress"])
    grey = train.load_images("digits", None)[0]  # (1437, 64) grey levels in [0, 1]
    assert len(seen) == 2
    for X in seen:
        assert X.shape == grey.shape and set(np.unique(X)) == {0.0, 1.0}
        assert np.all(X[grey == 0] == 0) and np.all(X[grey == 1] == 1)  # certain pixels
    assert not np.array_equal(seen[0], seen[1])  # a new draw, not the same images again
    mean, target = (seen[0] + seen[1]).mean(axis=0) / 2, grey.mean(axis=0)  # per pixel
    # the standard deviation of a mean of 2N Bernoulli(g_n) draws: sqrt(mean g (1 - g) / 2N)
    sd = np.sqrt(np.mean(grey * (1 - grey), axis=0) / (2 * len(grey)))
    assert np.all(np.abs(mean - target) <= 4 * sd), np.abs(mean - target) / (sd + 1e-300)


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-1"), ("--latent", "0"),
    ("--hidden", "0"), ("--iw-k", "-1"), ("--iw-samples", "-2"), ("--threads", "-1")])
def test_script_bad_numbers_are_usage_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err, err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--iw-samples" in out and "default: None" not in out
