"""Tests of lesson 11, Level 3, and the cross-level check L1 == L2 == L3.

Level 3 (the paper's VAE as an nn.Module):
- parameter count of 784-400-20 counted by hand: 652,824 (Bernoulli decoder), plus
  400 * 784 + 784 for the Gaussian decoder's log-variance head;
- the -ELBO equals a torch.distributions reference (Bernoulli and Normal likelihoods,
  kl_divergence) with the same weights and noise, gradients included;
- the importance-weighted bound: k = 1 is the ELBO sample with the same noise, L_k rises
  with k, and for a linear-Gaussian model it equals the exact log p(x) for every k when
  q is the exact posterior;
- overfits one small batch; state_dict round trip; torch.manual_seed determinism;
- the Figure 4 manifold grid; clear errors; level purity; the script on digits.

Cross-level: the same weights and the same noise eps give the same -ELBO, reconstruction,
KL and gradients of every parameter at L1 (NumPy, hand-written backward), L2 (tensors)
and L3 (nn.Module) in float64 to 1e-10, and the same importance-weighted estimate.

Run: .venv/bin/python -m pytest 11_VAE/paper -q
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

L3 = import_lesson("11_VAE.paper.vae_paper")
T3 = import_lesson("11_VAE.paper.train")  # the script: training, evaluation, pictures
L2 = import_lesson("11_VAE.pytorch_lowlevel.vae_lowlevel")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAYERS = ("enc", "enc_mu", "enc_logvar", "dec", "dec_out")


def _model(d=12, h=8, j=3, seed=0, **kw):
    torch.manual_seed(seed)
    model = L3.VAE(d, h, j, **kw).double()
    with torch.no_grad():  # non-zero biases so that every gradient is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.3)
    return model


def _batch(n=6, d=12, j=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=gen) < 0.4).double()
    return x, torch.randn(n, j, generator=gen, dtype=torch.float64)


def test_parameter_count_784_400_20():
    model = L3.VAE(784, 400, 20)
    by_hand = (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784)
    assert by_hand == 652_824
    assert sum(p.numel() for p in model.parameters()) == by_hand
    gaussian = L3.VAE(784, 400, 20, likelihood="gaussian")
    assert sum(p.numel() for p in gaussian.parameters()) == by_hand + 400 * 784 + 784


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_neg_elbo_matches_torch_distributions(likelihood, device):
    model = _model(likelihood=likelihood).to(device)
    x, eps = (t.to(device) for t in _batch())
    if likelihood == "gaussian":
        x = x + 0.1 * eps.new_tensor(np.random.default_rng(0).standard_normal(x.shape))
    loss, recon, kl = model.loss(x, eps)
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps
    g = torch.tanh(model.dec(z))
    if likelihood == "bernoulli":
        log_px_z = Bernoulli(logits=model.dec_out(g)).log_prob(x).sum(1)
    else:
        log_px_z = Normal(model.dec_out(g), torch.exp(0.5 * model.dec_logvar(g))).log_prob(x).sum(1)
    ref_kl = kl_divergence(Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(std)))
    ref = (-log_px_z + ref_kl.sum(1)).mean()
    tol = tolerance(torch.float64, device.type if hasattr(device, "type") else str(device))
    assert_close(loss, ref, tol, "-ELBO")
    assert_close(recon + kl, loss, tol, "recon + KL")
    params = list(model.parameters())
    for name, a, b in zip([n for n, _ in model.named_parameters()],
                          torch.autograd.grad(loss, params), torch.autograd.grad(ref, params)):
        assert_close(a, b, tol, f"d(-ELBO)/d{name}")


def test_iw_bound_k1_is_the_elbo_sample_and_rises_with_k():
    model = _model()
    x, eps = _batch()
    # k = 1 with the same noise: L_1 = log p(x|z) + log p(z) - log q(z|x), whose
    # expectation is the ELBO; with the analytic KL it differs only by the KL's MC error,
    # so compare against the single-sample Monte Carlo ELBO written out here.
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.dec_out(torch.tanh(model.dec(z)))
    mc_elbo = (Bernoulli(logits=logits).log_prob(x).sum(1) + Normal(0.0, 1.0).log_prob(z).sum(1)
               - Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1))
    assert_close(model.iw_log_likelihood(x, 1, eps=eps[None]), mc_elbo, FLOAT64, "L_1")
    gen = torch.Generator().manual_seed(0)
    means = [float(model.iw_log_likelihood(x.repeat(200, 1), k, gen).mean()) for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2], means
    elbo = -float(model.loss(x.repeat(200, 1))[0].detach())
    assert abs(means[0] - elbo) < 0.5  # E[L_1] = ELBO


def test_iw_bound_is_exact_when_q_is_the_true_posterior():
    """A linear-Gaussian model: p(z) = N(0, 1), p(x|z) = N(z, 1) in one dimension.

    Then p(x) = N(0, 2) and the posterior q(z|x) = N(x / 2, 1/2): every weight
    p(x, z) / q(z|x) equals p(x), so L_k = log p(x) exactly, for every k and any noise.
    The Gaussian decoder with identity maps realises it (relu of a shifted input
    keeps the identity for the values used)."""
    model = L3.VAE(1, 1, 1, activation="relu", likelihood="gaussian").double()
    with torch.no_grad():
        shift = 50.0  # relu(t + 50) - 50 = t for t > -50
        model.enc.weight.fill_(1.0), model.enc.bias.fill_(shift)
        model.enc_mu.weight.fill_(0.5), model.enc_mu.bias.fill_(-shift / 2)
        model.enc_logvar.weight.fill_(0.0), model.enc_logvar.bias.fill_(math.log(0.5))
        model.dec.weight.fill_(1.0), model.dec.bias.fill_(shift)
        model.dec_out.weight.fill_(1.0), model.dec_out.bias.fill_(-shift)
        model.dec_logvar.weight.fill_(0.0), model.dec_logvar.bias.fill_(0.0)
    x = torch.tensor([[-1.5], [0.0], [0.7], [2.0]], dtype=torch.float64)
    exact = -0.5 * math.log(2 * math.pi * 2.0) - x[:, 0] ** 2 / 4.0  # log N(x; 0, 2)
    gen = torch.Generator().manual_seed(1)
    for k in (1, 7):
        assert_close(model.iw_log_likelihood(x, k, gen), exact, FLOAT64, f"L_{k}")


def test_overfits_one_small_batch():
    torch.manual_seed(0)
    X_train, _, _, _ = T3.load_images("digits", binarize="threshold")
    x = torch.as_tensor(X_train[:16])
    model = L3.VAE(64, 64, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model.loss(x)[0].detach())
    for _ in range(150):
        opt.zero_grad()
        loss = model.loss(x)[0]
        loss.backward()
        opt.step()
    recon = float(model.loss(x)[1].detach())
    # an untrained model pays ~44 nats; pixel marginals alone ~30; memorising 16 images: ~5
    assert first > 30 and recon < 8.0, (first, recon)


def test_state_dict_round_trip_and_determinism(tmp_path):
    model = _model()
    torch.save(model.state_dict(), tmp_path / "vae.pt")
    again = L3.VAE(12, 8, 3).double()
    again.load_state_dict(torch.load(tmp_path / "vae.pt"))
    x, eps = _batch()
    assert torch.equal(model.loss(x, eps)[0], again.loss(x, eps)[0])
    torch.manual_seed(5)
    a = L3.VAE(12, 8, 3)
    torch.manual_seed(5)
    b = L3.VAE(12, 8, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    torch.manual_seed(6)
    la = a.loss(x.float())[0]
    torch.manual_seed(6)
    assert torch.equal(la, b.loss(x.float())[0])  # same seed, same noise


def test_latent_manifold_grid():
    model = L3.VAE(64, 16, 2).double()
    grid = L3.latent_manifold(model, 8, n=5)
    assert grid.shape == (25, 8, 8)
    u = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
    z_corner = torch.stack([Normal(0.0, 1.0).icdf(u[0]), Normal(0.0, 1.0).icdf(u[-1])])
    expected = model.decoder_mean(z_corner[None]).reshape(8, 8)  # top-left: z1 low, z2 high
    assert_close(grid[0], expected, FLOAT64, "top-left cell")
    with pytest.raises(ValueError, match="latent_dim=2"):
        L3.latent_manifold(L3.VAE(64, 16, 3), 8)


def test_bad_input_gives_clear_errors():
    model = L3.VAE(12, 8, 3)
    with pytest.raises(ValueError, match=r"expected a \(N, 12\)"):
        model(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="eps: expected shape"):
        model(torch.zeros(2, 12), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="unknown likelihood"):
        L3.VAE(12, 8, 3, likelihood="poisson")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.iw_log_likelihood(torch.zeros(2, 12), 0)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


def test_script_on_digits(tmp_path):
    result = T3.main(["--epochs", "4", "--iw-k", "20", "--out", str(tmp_path), "--no-progress"])
    assert result["test_neg_elbo"] == pytest.approx(result["test_recon"] + result["test_kl"])
    assert 20 < result["test_neg_elbo"] < 36, result
    assert result["test_iw_nll"] < result["test_neg_elbo"] + 0.5  # IW bound is tighter
    for name in ("elbo.png", "reconstructions.png", "samples.png", "latent_embedding.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_script_with_a_2d_latent_space_draws_the_manifold(tmp_path):
    T3.main(["--epochs", "1", "--latent", "2", "--iw-k", "0", "--out", str(tmp_path),
             "--no-progress"])
    assert (tmp_path / "latent_manifold.png").stat().st_size > 0


# --------------------------------------------------------------------------------------
# Cross-level: L1 == L2 == L3 on the same weights and the same noise
# --------------------------------------------------------------------------------------


def _l1():
    try:
        return import_lesson("11_VAE.numpy.vae_numpy")
    except ModuleNotFoundError:
        pytest.skip("the NumPy level 11_VAE/numpy/vae_numpy.py is not there yet")


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_cross_level_same_elbo_and_gradients(act):
    L1 = _l1()
    d, h, j, n = 12, 8, 3, 6
    l1 = L1.VAE(d, h, j, activation=act, rng=7, dtype=np.float64)
    rng = np.random.default_rng(8)
    for key, p in l1.params.items():  # non-zero biases: every gradient is exercised
        if key.endswith(".b"):
            p[...] = rng.normal(0.0, 0.3, p.shape)
    x = (rng.random((n, d)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((n, j))

    # L2: the same arrays as tensors, W (in, out) as at L1
    params2 = {k: torch.tensor(v, requires_grad=True) for k, v in l1.params.items()}
    # L3: nn.Linear stores weight = W^T
    l3 = L3.VAE(d, h, j, activation=act).double()
    with torch.no_grad():
        for layer in LAYERS:
            getattr(l3, layer).weight.copy_(torch.from_numpy(l1.params[f"{layer}.W"].T))
            getattr(l3, layer).bias.copy_(torch.from_numpy(l1.params[f"{layer}.b"]))

    losses1 = l1.loss(x, eps)
    l1.backward()
    x_t, eps_t = torch.from_numpy(x), torch.from_numpy(eps)
    losses2 = L2.vae_loss(params2, x_t, eps_t, act)
    losses3 = l3.loss(x_t, eps_t)
    for i, what in enumerate(("-ELBO", "reconstruction", "KL")):
        assert_close(losses2[i], losses1[i], FLOAT64, f"{what}: L2 vs L1")
        assert_close(losses3[i], losses1[i], FLOAT64, f"{what}: L3 vs L1")
    losses2[0].backward()
    losses3[0].backward()
    for layer in LAYERS:
        for key, attr, transpose in (("W", "weight", True), ("b", "bias", False)):
            g1 = l1.grads[f"{layer}.{key}"]
            g3 = getattr(l3, layer).__getattr__(attr).grad
            assert_close(params2[f"{layer}.{key}"].grad, g1, FLOAT64, f"d/d{layer}.{key}: L2 vs L1")
            assert_close(g3.T if transpose else g3, g1, FLOAT64, f"d/d{layer}.{key}: L3 vs L1")

    # the importance-weighted estimate with the same noise (L1 draws (k, N, J) from its rng)
    k = 5
    iw1 = L1.importance_weighted_log_likelihood(l1, x, k, rng=np.random.default_rng(9))
    iw_eps = torch.from_numpy(np.random.default_rng(9).standard_normal((k, n, j)))
    assert_close(l3.iw_log_likelihood(x_t, k, eps=iw_eps), iw1, FLOAT64, "L_k: L3 vs L1")


# --------------------------------------------------------------------------------------
# Classic mistakes, each checked with numbers (11_VAE/bugs.py plants them), and the script
# --------------------------------------------------------------------------------------

GREY = torch.linspace(0.05, 0.95, 16)  # 16 grey levels, one per pixel


def test_training_binarises_afresh_every_epoch():
    """Dynamic binarisation: each epoch trains on a new draw x ~ Bernoulli(grey), so two
    epochs see different binary images whose pixel means match the grey levels."""
    n = 400
    X = GREY.repeat(n, 1)  # (400, 16): the same grey image 400 times
    torch.manual_seed(0)
    model = L3.VAE(16, 8, 2)
    seen = []
    loss = model.loss

    def recording(xb, eps=None):
        seen.append(xb.detach().clone())
        return loss(xb, eps)

    model.loss = recording
    T3.train(model, X, epochs=2, batch_size=n, dynamic=True, seed=0)  # one batch per epoch
    assert len(seen) == 2
    for xb in seen:
        assert set(xb.unique().tolist()) == {0.0, 1.0}  # binary pixels, not grey levels
    first, second = (xb.sum(0) for xb in seen)  # per-pixel counts: blind to the batch order
    assert not torch.equal(first, second)  # a new draw, not the same binarisation again
    mean = (first + second) / (2 * n)
    sd = torch.sqrt(GREY * (1 - GREY) / (2 * n))
    assert torch.all((mean - GREY).abs() < 4 * sd), (mean, GREY)  # Bernoulli(grey) draws


def test_evaluate_is_deterministic_and_equals_the_seeded_loss():
    torch.manual_seed(0)
    model = L3.VAE(16, 8, 2)
    X = (torch.rand(50, 16, generator=torch.Generator().manual_seed(1)) < GREY).float()
    first = T3.evaluate(model, X, iw_k=5, seed=3)
    torch.randn(100)  # whatever happened to the global generator in between
    assert T3.evaluate(model, X, iw_k=5, seed=3) == first
    assert T3.evaluate(model, X, seed=4)["neg_elbo"] != first["neg_elbo"]  # the seed is used
    torch.manual_seed(3)  # the noise evaluate draws: one eps per image, from seed 3
    expected = model.loss(X)[0]
    assert_close(first["neg_elbo"], expected, tolerance(torch.float32), "test -ELBO")


L3_BAD_OPTIONS = [("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-1"), ("--latent", "0"),
                  ("--latent-dim", "0"), ("--hidden", "0"), ("--iw-k", "-1"),
                  ("--iw-count", "-1")]


@pytest.mark.parametrize("option, value", L3_BAD_OPTIONS)
def test_script_bad_numbers_are_usage_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        T3.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err, err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        T3.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--iw-k" in out and "default: None" not in out


def test_script_missing_mnist_is_one_clear_message(tmp_path):
    with pytest.raises(SystemExit, match="^error: .*does not exist"):
        T3.main(["--dataset", "mnist", "--data-root", str(tmp_path / "none"),
                 "--out", str(tmp_path), "--no-progress"])
