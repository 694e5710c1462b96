"""Tests of lesson 11, Level 2 (the VAE from tensors and autograd).

- the Bernoulli log-likelihood equals torch.distributions.Bernoulli(logits).log_prob, also
  at logits of +-100 (no log(0));
- the analytic KL equals torch.distributions.kl_divergence(Normal(mu, sigma), Normal(0, 1))
  and a Monte Carlo estimate E_q[log q(z) - log p(z)];
- the reparameterised z equals Normal(mu, sigma).rsample() on the same random stream;
- the whole negative ELBO and every gradient equal a reference built from
  torch.distributions (float64, 1e-10), on every device;
- Glorot initialisation statistics; training lowers the test -ELBO on digits;
- clear errors for bad input; the level's purity rule; the script on digits.

Run: .venv/bin/python -m pytest 11_VAE/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils.lessons import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity, tolerance

L2 = import_lesson("11_VAE.pytorch_lowlevel.vae_lowlevel")
T2 = import_lesson("11_VAE.pytorch_lowlevel.train")  # the script: data, training loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(n=6, d=12, j=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=gen) < 0.4).to(dtype)
    eps = torch.randn(n, j, generator=gen, dtype=dtype)
    return x, eps


def _reference_neg_elbo(params, x, eps, act):
    """-ELBO written with torch.distributions (an independent reference)."""
    f = torch.tanh if act == "tanh" else torch.relu
    h = f(x @ params["enc.W"] + params["enc.b"])
    mu = h @ params["enc_mu.W"] + params["enc_mu.b"]
    std = torch.exp(0.5 * (h @ params["enc_logvar.W"] + params["enc_logvar.b"]))
    q = Normal(mu, std)
    z = mu + std * eps
    logits = f(z @ params["dec.W"] + params["dec.b"]) @ params["dec_out.W"] + params["dec_out.b"]
    log_px_z = Bernoulli(logits=logits).log_prob(x).sum(1)
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(std))).sum(1)
    return (-log_px_z + kl).mean()


def test_bernoulli_log_likelihood_matches_torch_distributions():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 7, generator=gen, dtype=torch.float64) * 4
    logits[0, :3] = torch.tensor([100.0, -100.0, 0.0], dtype=torch.float64)
    x = (torch.rand(5, 7, generator=gen) < 0.5).double()
    got = L2.bernoulli_log_likelihood(x, logits)
    assert_close(got, Bernoulli(logits=logits).log_prob(x).sum(1), FLOAT64, "log p(x|z)")
    assert torch.isfinite(got).all()
    # a hand value: one pixel x = 1 with logit 0 -> log 1/2
    assert_close(L2.bernoulli_log_likelihood(torch.ones(1, 1), torch.zeros(1, 1)),
                 torch.tensor([math.log(0.5)]), FLOAT64, "log sigmoid(0)")


def test_gaussian_kl_matches_kl_divergence_and_monte_carlo():
    gen = torch.Generator().manual_seed(2)
    mu = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    std = torch.exp(0.5 * logvar)
    got = L2.gaussian_kl(mu, logvar)
    ref = kl_divergence(Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    assert_close(got, ref, FLOAT64, "KL")
    # Monte Carlo: E_q[log q(z) - log p(z)] with 200,000 samples, standard error ~ 0.01
    z = Normal(mu, std).sample((200_000,))
    mc = (Normal(mu, std).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(got, mc, atol=0.05), (got, mc)
    # KL(N(0, I) || N(0, I)) = 0
    assert_close(L2.gaussian_kl(torch.zeros(1, 5), torch.zeros(1, 5)), torch.zeros(1),
                 FLOAT64, "KL of the prior with itself")


def test_reparameterize_equals_rsample():
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.2, -0.7]], dtype=torch.float64)
    torch.manual_seed(3)
    ref = Normal(mu, torch.exp(0.5 * logvar)).rsample()
    torch.manual_seed(3)
    eps = torch.randn(1, 2, dtype=torch.float64)
    assert_close(L2.reparameterize(mu, logvar, eps), ref, FLOAT64, "z")


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_loss_and_gradients_match_torch_distributions_reference(act, device):
    params = L2.init_vae(12, 8, 3, seed=4, dtype=torch.float64, device=device)
    with torch.no_grad():  # non-zero biases so every parameter's gradient is exercised
        for name, p in params.items():
            if name.endswith(".b"):
                p.normal_(0.0, 0.3)
    x, eps = _batch()
    x, eps = x.to(device), eps.to(device)
    loss, recon, kl = L2.vae_loss(params, x, eps, act)
    assert_close(recon + kl, loss, FLOAT64, "recon + KL")
    grads = torch.autograd.grad(loss, list(params.values()))
    ref = _reference_neg_elbo(params, x, eps, act)
    ref_grads = torch.autograd.grad(ref, list(params.values()))
    tol = tolerance(torch.float64, device.type if hasattr(device, "type") else str(device))
    assert_close(loss, ref, tol, "-ELBO")
    for name, g, r in zip(params, grads, ref_grads):
        assert_close(g, r, tol, f"d(-ELBO)/d{name}")


def test_init_is_glorot_uniform():
    params = L2.init_vae(400, 300, 20, seed=0, dtype=torch.float64)
    W = params["enc.W"].detach()
    bound = math.sqrt(6 / 700)
    assert W.shape == (400, 300) and float(W.abs().max()) <= bound
    assert abs(float(W.var()) - 2 / 700) < 0.03 * 2 / 700  # Var U(-a, a) = a^2 / 3
    assert all(float(params[f"{layer}.b"].detach().abs().max()) == 0.0 for layer in L2.LAYERS)
    again = L2.init_vae(400, 300, 20, seed=0, dtype=torch.float64)
    assert torch.equal(again["dec_out.W"], params["dec_out.W"])


def test_training_lowers_the_test_neg_elbo_on_digits():
    X_train, X_test, _, side = T2.load_images("digits", binarize="dynamic")
    assert side == 8 and X_train.shape[1] == 64 and set(np.unique(X_test)) <= {0.0, 1.0}
    params = L2.init_vae(64, 64, 4, seed=0)
    X_test_t = torch.as_tensor(X_test)
    before = T2.evaluate(params, X_test_t)["neg_elbo"]
    history = T2.train(params, torch.as_tensor(X_train[:600]), epochs=6, batch_size=32,
                       lr=3e-3, seed=0)
    after = T2.evaluate(params, X_test_t)
    assert before > 40 and after["neg_elbo"] < 34, (before, after)
    assert history["neg_elbo"][-1] < history["neg_elbo"][0]
    assert after["neg_elbo"] == pytest.approx(after["recon"] + after["kl"])


def test_bad_input_gives_clear_errors():
    params = L2.init_vae(12, 8, 3, seed=0, dtype=torch.float64)
    x, eps = _batch()
    with pytest.raises(ValueError, match="eps: expected shape"):
        L2.vae_loss(params, x, eps[:, :2])
    with pytest.raises(ValueError, match="unknown activation"):
        L2.vae_loss(params, x, eps, "swish")
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer"):
        L2.init_vae(12, 0, 3)
    with pytest.raises(ValueError, match="unknown dataset"):
        T2.load_images("cifar")
    with pytest.raises(ValueError, match="unknown binarisation"):
        T2.load_images("digits", binarize="otsu")


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


def test_script_on_digits(tmp_path):
    result = T2.main(["--epochs", "4", "--out", str(tmp_path), "--no-progress"])
    assert result["test_neg_elbo"] == pytest.approx(result["test_recon"] + result["test_kl"])
    assert 20 < result["test_neg_elbo"] < 36, result
    for name in ("elbo.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0



# ---- classic mistakes, each checked with numbers (11_VAE/bugs.py plants them) ----------

GREY = torch.linspace(0.05, 0.95, 16)  # 16 grey levels, one per pixel


def test_training_binarises_afresh_every_epoch(monkeypatch):
    """Dynamic binarisation: each epoch trains on a new draw x ~ Bernoulli(grey), so two
    epochs see different binary images whose pixel means match the grey levels."""
    n = 400
    seen = []
    loss = L2.vae_loss

    def recording(params, xb, eps, act="tanh"):
        seen.append(xb.detach().clone())
        return loss(params, xb, eps, act)

    monkeypatch.setattr(L2, "vae_loss", recording)
    params = L2.init_vae(16, 8, 2, seed=0)
    T2.train(params, GREY.repeat(n, 1), epochs=2, batch_size=n, dynamic=True, seed=0)
    assert len(seen) == 2  # one batch per epoch
    for xb in seen:
        assert set(xb.unique().tolist()) == {0.0, 1.0}  # binary pixels, not grey levels
    first, second = (xb.sum(0) for xb in seen)  # per-pixel counts: blind to the batch order
    assert not torch.equal(first, second)  # a new draw, not the same binarisation again
    mean = (first + second) / (2 * n)
    sd = torch.sqrt(GREY * (1 - GREY) / (2 * n))
    assert torch.all((mean - GREY).abs() < 4 * sd), (mean, GREY)  # Bernoulli(grey) draws


def test_evaluate_is_deterministic_and_equals_the_seeded_loss():
    params = L2.init_vae(16, 8, 2, seed=0)
    X = (torch.rand(50, 16, generator=torch.Generator().manual_seed(1)) < GREY).float()
    first = T2.evaluate(params, X, seed=3)
    torch.randn(100)  # whatever happened to the global generator in between
    assert T2.evaluate(params, X, seed=3) == first
    eps = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))  # evaluate's noise
    expected = L2.vae_loss(params, X, eps)[0]
    assert_close(first["neg_elbo"], expected, tolerance(torch.float32), "test -ELBO")


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-1"), ("--latent", "0"),
    ("--latent-dim", "0"), ("--hidden", "0")])
def test_script_bad_numbers_are_usage_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        T2.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err, err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        T2.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--latent-dim" in out and "default: None" not in out
