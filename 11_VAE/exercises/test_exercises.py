"""Checks for the exercises of lesson 11, against references that do not share their code.

Run them on the reference solutions::

    pytest 11_VAE/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 11_VAE/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another way:
``torch.distributions`` (Normal, Bernoulli, kl_divergence), PyTorch autograd,
``torch.logsumexp``, finite differences, a closed form (Gaussian expectations, the exact
marginal likelihood of a linear-Gaussian toy model) or a statistical prediction. None compares
with the reference solution itself, which would let a copy of a bug pass.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    L1_VS_AUTOGRAD,
    Tol,
    assert_close,
    check_exercise_files,
    check_learner_module,
    check_numpy_only,
    check_starter_left_to_learner,
    check_starter_matches_solution,
    exercise_names,
    numerical_gradient,
)

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
STARTERS = HERE / "starters"
EXERCISES = exercise_names(HERE)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


# ===========================================================================
# The files themselves: starters and solutions never drift apart
# ===========================================================================


def test_every_exercise_has_its_task_solution_and_starter():
    check_exercise_files(HERE, min_count=3)


@pytest.mark.parametrize("name", EXERCISES)
def test_starter_defines_the_same_api_as_the_solution(name):
    check_starter_matches_solution(HERE, name)


@pytest.mark.parametrize("name", EXERCISES)
def test_every_starter_function_is_left_to_the_learner(name):
    """Each starter function raises NotImplementedError naming itself."""
    check_starter_left_to_learner(HERE, name)


@pytest.mark.parametrize("folder", [SOLUTIONS, STARTERS], ids=["solutions", "starters"])
def test_exercise_files_are_numpy_only(folder):
    """The exercises are L1 work: no torch, scipy or scikit-learn in the files a learner writes."""
    check_numpy_only(folder)


@pytest.mark.parametrize("name", EXERCISES)
def test_your_file_has_the_expected_functions(exercise, name):
    """Your file (or the reference) defines every starter function, same parameters."""
    check_learner_module(exercise(name), HERE, name)


def no_float_warnings():
    """A context in which any NumPy floating-point warning is an error."""
    class _Strict:
        def __enter__(self):
            self._w = warnings.catch_warnings()
            self._w.__enter__()
            warnings.simplefilter("error")
            self._e = np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")
            self._e.__enter__()

        def __exit__(self, *exc):
            self._e.__exit__(*exc)
            return self._w.__exit__(*exc)
    return _Strict()


# ===========================================================================
# Exercise 01: KL between diagonal Gaussians, and its gradient
# ===========================================================================


def four_gaussian_parameters(shape=(5, 4), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    mu_q, mu_p = rng.normal(size=shape), rng.normal(size=shape)
    logvar_q, logvar_p = rng.uniform(-2.0, 1.5, size=shape), rng.uniform(-1.5, 1.0, size=shape)
    return [a.astype(dtype) for a in (mu_q, logvar_q, mu_p, logvar_p)]


def torch_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(q || p) summed over the last axis, by torch.distributions (std = exp(logvar / 2))."""
    q = Normal(mu_q, torch.exp(0.5 * logvar_q))
    p = Normal(mu_p, torch.exp(0.5 * logvar_p))
    return kl_divergence(q, p).sum(-1)


@pytest.mark.parametrize("shape", [(6,), (5, 4), (2, 3, 7)])
def test_ex01_kl_matches_torch_distributions(exercise, shape):
    ex = exercise("ex01_gaussian_kl")
    params = four_gaussian_parameters(shape, seed=1)
    kl = ex.gaussian_kl(*params)
    assert kl.shape == shape[:-1]
    assert_close(kl, torch_kl(*map(torch.from_numpy, params)), L1_VS_AUTOGRAD,
                 name=f"KL(q || p), shape {shape}")


def test_ex01_standard_normal_kl_matches_torch_and_the_general_formula(exercise):
    ex = exercise("ex01_gaussian_kl")
    mu_q, logvar_q, _, _ = four_gaussian_parameters(seed=2)
    zeros = np.zeros_like(mu_q)
    expected = torch_kl(*map(torch.from_numpy, (mu_q, logvar_q, zeros, zeros)))
    assert_close(ex.standard_normal_kl(mu_q, logvar_q), expected, L1_VS_AUTOGRAD,
                 name="KL(q || N(0, I))")
    assert_close(ex.gaussian_kl(mu_q, logvar_q, zeros, zeros), expected, L1_VS_AUTOGRAD,
                 name="gaussian_kl with p = N(0, I)")


def test_ex01_kl_is_zero_for_equal_and_positive_for_different_gaussians(exercise):
    ex = exercise("ex01_gaussian_kl")
    mu, logvar, mu_p, logvar_p = four_gaussian_parameters(seed=3)
    assert_close(ex.gaussian_kl(mu, logvar, mu, logvar), np.zeros(5), Tol(0.0, 1e-12),
                 name="KL(q || q)")
    assert np.all(ex.gaussian_kl(mu, logvar, mu_p, logvar_p) > 0)
    # one dimension by hand: q = N(1, e^0), p = N(0, e^{log 4}): 1/2 (log 4 + (1 + 1)/4 - 1)
    got = ex.gaussian_kl(np.array([1.0]), np.array([0.0]), np.array([0.0]),
                         np.array([math.log(4.0)]))
    assert_close(got, 0.5 * (math.log(4.0) + 0.5 - 1.0), FLOAT64, name="KL by hand")


def test_ex01_backward_matches_torch_autograd(exercise):
    ex = exercise("ex01_gaussian_kl")
    params = four_gaussian_parameters(seed=4)
    dkl = np.random.default_rng(5).standard_normal(5)
    grads = ex.gaussian_kl_backward(dkl, *params)
    tensors = [torch.tensor(a, requires_grad=True) for a in params]
    torch_kl(*tensors).backward(torch.from_numpy(dkl))
    for name, got, t in zip(("mu_q", "logvar_q", "mu_p", "logvar_p"), grads, tensors):
        assert_close(got, t.grad, L1_VS_AUTOGRAD, name=f"dKL/d{name}")


def test_ex01_backward_matches_finite_differences(exercise):
    ex = exercise("ex01_gaussian_kl")
    params = four_gaussian_parameters(shape=(3, 2), seed=6)
    dkl = np.array([0.5, -1.0, 2.0])
    grads = ex.gaussian_kl_backward(dkl, *params)

    def loss():
        return float(np.sum(dkl * ex.gaussian_kl(*params)))

    for name, got, x in zip(("mu_q", "logvar_q", "mu_p", "logvar_p"), grads, params):
        assert_close(got, numerical_gradient(loss, x), FINITE_DIFF, name=f"dKL/d{name}")


def test_ex01_float32_stays_float32(exercise):
    ex = exercise("ex01_gaussian_kl")
    params = four_gaussian_parameters(seed=7, dtype=np.float32)
    kl = ex.gaussian_kl(*params)
    assert kl.dtype == np.float32, f"float32 in must give float32 out; got {kl.dtype}"
    assert_close(kl, torch_kl(*map(torch.from_numpy, params)), FLOAT32, name="float32 KL")


def test_ex01_errors_are_clear(exercise):
    ex = exercise("ex01_gaussian_kl")
    a = np.zeros((2, 3))
    with pytest.raises(ValueError):
        ex.gaussian_kl(a, a, a, np.zeros((3, 2)))
    with pytest.raises(ValueError):
        ex.standard_normal_kl(a, np.zeros(3))
    with pytest.raises(ValueError):
        ex.gaussian_kl_backward(np.ones(3), a, a, a, a)  # one dkl per row: shape (2,)


# ===========================================================================
# Exercise 02: reparameterisation versus the score function
# ===========================================================================

MU = np.array([0.5, -1.0, 2.0])
LOG_SIGMA = np.array([-0.5, 0.0, 0.3])
SIGMA = np.exp(LOG_SIGMA)
C, A = 1.0, 0.7
N_MC = 100_000


def square(z):
    return (z - C) ** 2


def d_square(z):
    return 2.0 * (z - C)


def exponential(z):
    return np.exp(A * z)


def d_exponential(z):
    return A * np.exp(A * z)


# f, f', and the exact (dJ/dmu, dJ/dlog_sigma) of J = E[f(z)], z ~ N(mu, sigma^2):
#   (z - c)^2: J = (mu - c)^2 + sigma^2           -> (2 (mu - c), 2 sigma^2)
#   e^{a z}:   J = exp(a mu + a^2 sigma^2 / 2)     -> (a J, a^2 sigma^2 J)
_J_EXP = np.exp(A * MU + 0.5 * A**2 * SIGMA**2)
OBJECTIVES = {
    "square": (square, d_square, 2.0 * (MU - C), 2.0 * SIGMA**2),
    "exponential": (exponential, d_exponential, A * _J_EXP, A**2 * SIGMA**2 * _J_EXP),
}


def noise(n=N_MC, seed=8):
    return np.random.default_rng(seed).standard_normal((n, MU.size))


def assert_unbiased(samples, exact, what, sigmas=5.0):
    """The sample mean is within `sigmas` standard errors of the exact gradient."""
    mean = samples.mean(axis=0)
    standard_error = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    assert np.all(np.abs(mean - exact) <= sigmas * standard_error), (
        f"{what}: mean {mean}, exact {exact}, standard errors {standard_error}")


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_ex02_both_estimators_are_unbiased(exercise, objective):
    ex = exercise("ex02_reparameterization_vs_score_function")
    f, df, exact_mu, exact_log_sigma = OBJECTIVES[objective]
    eps = noise()
    g_mu, g_ls = ex.reparameterized_gradient(MU, LOG_SIGMA, eps, df)
    assert g_mu.shape == eps.shape and g_ls.shape == eps.shape
    assert_unbiased(g_mu, exact_mu, f"reparameterised dJ/dmu, {objective}")
    assert_unbiased(g_ls, exact_log_sigma, f"reparameterised dJ/dlog_sigma, {objective}")
    for baseline in (0.0, 3.0):
        s_mu, s_ls = ex.score_function_gradient(MU, LOG_SIGMA, eps, f, baseline)
        assert_unbiased(s_mu, exact_mu, f"score-function dJ/dmu, {objective}, b={baseline}")
        assert_unbiased(s_ls, exact_log_sigma,
                        f"score-function dJ/dlog_sigma, {objective}, b={baseline}")


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_ex02_reparameterisation_has_lower_variance(exercise, objective):
    """Per dimension, the pathwise estimator's variance is well below REINFORCE's."""
    ex = exercise("ex02_reparameterization_vs_score_function")
    f, df, _, _ = OBJECTIVES[objective]
    eps = noise(20_000, seed=9)
    reparameterised = ex.reparameterized_gradient(MU, LOG_SIGMA, eps, df)
    score = ex.score_function_gradient(MU, LOG_SIGMA, eps, f)
    for name, r, s in zip(("mu", "log_sigma"), reparameterised, score):
        ratio = s.var(axis=0) / r.var(axis=0)
        assert np.all(ratio > 2.0), f"Var(score) / Var(reparam) for d/d{name}: {ratio}"


def test_ex02_square_variances_match_the_closed_form(exercise):
    """For f = (z - c)^2 the pathwise dJ/dmu = 2 (mu - c + sigma eps): variance 4 sigma^2."""
    ex = exercise("ex02_reparameterization_vs_score_function")
    g_mu, _ = ex.reparameterized_gradient(MU, LOG_SIGMA, noise(), d_square)
    var = g_mu.var(axis=0, ddof=1)
    # the variance of a sample variance of a normal: 2 sigma^4 / (n - 1)
    assert np.all(np.abs(var - 4 * SIGMA**2) <= 5 * 4 * SIGMA**2 * math.sqrt(2.0 / (N_MC - 1)))


def test_ex02_linear_f_has_a_zero_variance_pathwise_gradient(exercise):
    """f(z) = 3 z: the pathwise dJ/dmu is exactly 3 for every sample; REINFORCE's is not."""
    ex = exercise("ex02_reparameterization_vs_score_function")
    eps = noise(1000, seed=10)
    g_mu, _ = ex.reparameterized_gradient(MU, LOG_SIGMA, eps, lambda z: 3.0 * np.ones_like(z))
    assert_close(g_mu, np.full_like(eps, 3.0), FLOAT64, name="pathwise gradient of 3 z")
    s_mu, _ = ex.score_function_gradient(MU, LOG_SIGMA, eps, lambda z: 3.0 * z)
    assert np.all(s_mu.std(axis=0) > 1.0)


def test_ex02_per_sample_estimates_match_torch_autograd(exercise):
    """Row s of each estimate is the autograd gradient of that sample's surrogate."""
    ex = exercise("ex02_reparameterization_vs_score_function")
    eps = noise(6, seed=11)
    S = eps.shape[0]
    mu_t = torch.tensor(np.tile(MU, (S, 1)), requires_grad=True)  # one copy per sample
    ls_t = torch.tensor(np.tile(LOG_SIGMA, (S, 1)), requires_grad=True)
    z_t = mu_t + torch.exp(ls_t) * torch.from_numpy(eps)
    torch.exp(A * z_t).sum().backward()  # the pathwise gradient: through z
    g_mu, g_ls = ex.reparameterized_gradient(MU, LOG_SIGMA, eps, d_exponential)
    assert_close(g_mu, mu_t.grad, L1_VS_AUTOGRAD, name="reparameterised dJ/dmu")
    assert_close(g_ls, ls_t.grad, L1_VS_AUTOGRAD, name="reparameterised dJ/dlog_sigma")

    baseline = 1.5
    mu_t.grad, ls_t.grad = None, None
    z_fixed = z_t.detach()  # REINFORCE differentiates log q(z), never f(z)
    surrogate = (torch.exp(A * z_fixed) - baseline) * Normal(mu_t, torch.exp(ls_t)).log_prob(
        z_fixed)
    surrogate.sum().backward()
    s_mu, s_ls = ex.score_function_gradient(MU, LOG_SIGMA, eps, exponential, baseline)
    assert_close(s_mu, mu_t.grad, L1_VS_AUTOGRAD, name="score-function dJ/dmu")
    assert_close(s_ls, ls_t.grad, L1_VS_AUTOGRAD, name="score-function dJ/dlog_sigma")


def test_ex02_errors_are_clear(exercise):
    ex = exercise("ex02_reparameterization_vs_score_function")
    with pytest.raises(ValueError):
        ex.reparameterized_gradient(MU, LOG_SIGMA, np.zeros((4, 2)), d_square)
    with pytest.raises(ValueError):
        ex.score_function_gradient(MU, LOG_SIGMA[:2], np.zeros((4, 3)), square)


# ===========================================================================
# Exercise 03: the importance-weighted bound
# ===========================================================================


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_ex03_log_mean_exp_matches_torch_logsumexp(exercise, axis):
    ex = exercise("ex03_importance_weighted_bound")
    a = 30.0 * np.random.default_rng(12).standard_normal((4, 5, 3))
    expected = torch.logsumexp(torch.from_numpy(a), dim=axis) - math.log(a.shape[axis])
    assert_close(ex.log_mean_exp(a, axis), expected, FLOAT64, name=f"log_mean_exp, axis {axis}")


def test_ex03_log_mean_exp_survives_huge_and_infinite_values(exercise):
    ex = exercise("ex03_importance_weighted_bound")
    a = np.array([[1000.0, -1000.0, -np.inf, -np.inf],
                  [999.0, -1001.0, 0.0, -np.inf],
                  [-np.inf, -1002.0, -np.inf, -np.inf]])
    with no_float_warnings():
        got = ex.log_mean_exp(a, 0)
    expected = torch.logsumexp(torch.from_numpy(a), dim=0) - math.log(3.0)
    assert np.isneginf(got[3]), "all weights zero: the log-mean is -inf"
    assert_close(got[:3], expected[:3], FLOAT64, name="log_mean_exp at +-1000 and -inf")


def test_ex03_bound_and_weights_match_torch(exercise):
    """L_K by torch.logsumexp; the normalised weights by softmax and by autograd of L_K."""
    ex = exercise("ex03_importance_weighted_bound")
    rng = np.random.default_rng(13)
    log_p, log_q = rng.normal(-100.0, 5.0, (7, 4)), rng.normal(-3.0, 1.0, (7, 4))
    log_w = torch.tensor(log_p - log_q, requires_grad=True)
    bound_t = torch.logsumexp(log_w, dim=0) - math.log(7)
    assert_close(ex.importance_weighted_bound(log_p, log_q), bound_t, FLOAT64, name="L_K")
    bound_t.sum().backward()
    weights = ex.normalized_importance_weights(log_p - log_q)
    assert_close(weights, torch.softmax(log_w.detach(), dim=0), FLOAT64, name="softmax weights")
    assert_close(weights, log_w.grad, FLOAT64, name="dL_K/dlog w")


# The toy model: z ~ N(0, 1), x | z ~ N(z, S2). Then p(x) = N(0, 1 + S2) exactly and the
# posterior is p(z | x) = N(x / (1 + S2), S2 / (1 + S2)).
S2 = 0.5
X_TOY = np.array([-2.0, 0.3, 1.5])


def log_normal(v, mean, var):
    return -0.5 * (np.log(2 * np.pi * var) + (v - mean) ** 2 / var)


def toy_log_weights(k, reps, proposal_mean, proposal_var, seed):
    """log p(x, z) and log q(z) at reps * k draws z ~ q: arrays (reps, k, N)."""
    z = proposal_mean + np.sqrt(proposal_var) * np.random.default_rng(seed).standard_normal(
        (reps, k, X_TOY.size))
    log_joint = log_normal(z, 0.0, 1.0) + log_normal(X_TOY, z, S2)
    return log_joint, log_normal(z, proposal_mean, proposal_var)


LOG_P_X = log_normal(X_TOY, 0.0, 1.0 + S2)
POSTERIOR_MEAN, POSTERIOR_VAR = X_TOY / (1 + S2), S2 / (1 + S2)
# a poor proposal: shifted and too narrow, so the ELBO is far below log p(x)
Q_MEAN, Q_VAR = POSTERIOR_MEAN + 0.8, 0.4 * POSTERIOR_VAR


def test_ex03_exact_posterior_gives_log_p_x_for_every_k(exercise):
    """With q = p(z | x) every weight equals p(x): the bound is exact even for K = 1."""
    ex = exercise("ex03_importance_weighted_bound")
    for k in (1, 5):
        log_joint, log_q = toy_log_weights(k, 1, POSTERIOR_MEAN, POSTERIOR_VAR, seed=14)
        got = ex.importance_weighted_bound(log_joint[0], log_q[0])
        assert_close(got, LOG_P_X, Tol(1e-12, 1e-12), name=f"L_{k} with the exact posterior")


def test_ex03_k1_is_the_elbo_and_the_bound_tightens_with_k(exercise):
    """E[L_1] = the analytic ELBO; E[L_K] increases with K and stays below log p(x)."""
    ex = exercise("ex03_importance_weighted_bound")
    reps, k_max = 4000, 64
    log_joint, log_q = toy_log_weights(k_max, reps, Q_MEAN, Q_VAR, seed=15)
    bounds = {}
    for k in (1, 2, 8, 64):  # nested: L_k uses the first k of the same 64 draws
        # (reps, k, N) -> (k, reps * N): every replication and data point is one column
        columns = [np.moveaxis(a[:, :k], 1, 0).reshape(k, -1) for a in (log_joint, log_q)]
        bounds[k] = ex.importance_weighted_bound(*columns).reshape(reps, X_TOY.size)
    # analytic ELBO: E_q[log p(z) + log p(x | z)] + entropy of q
    elbo = (-0.5 * (np.log(2 * np.pi) + Q_MEAN**2 + Q_VAR)
            - 0.5 * (np.log(2 * np.pi * S2) + ((X_TOY - Q_MEAN) ** 2 + Q_VAR) / S2)
            + 0.5 * np.log(2 * np.pi * np.e * Q_VAR))
    assert_unbiased(bounds[1], elbo, "L_1 against the analytic ELBO")
    ks = sorted(bounds)
    for small, large in zip(ks[:-1], ks[1:]):
        gain = bounds[large] - bounds[small]  # paired on the same draws
        standard_error = gain.std(axis=0, ddof=1) / math.sqrt(reps)
        assert np.all(gain.mean(axis=0) > 5 * standard_error), (
            f"E[L_{large}] - E[L_{small}] = {gain.mean(axis=0)}, standard errors {standard_error}")
    for k in ks:
        standard_error = bounds[k].std(axis=0, ddof=1) / math.sqrt(reps)
        assert np.all(bounds[k].mean(axis=0) <= LOG_P_X + 5 * standard_error), f"L_{k} > log p(x)"
    # the gap to log p(x) closes: at K = 64 it is less than half the ELBO's (this proposal
    # is too narrow, so the weights are heavy-tailed and the gap closes slowly)
    assert np.all(LOG_P_X - bounds[64].mean(axis=0) < 0.5 * (LOG_P_X - elbo))


def test_ex03_errors_are_clear(exercise):
    ex = exercise("ex03_importance_weighted_bound")
    with pytest.raises(ValueError):
        ex.importance_weighted_bound(np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        ex.log_mean_exp(np.zeros((0, 2)), 0)
    with pytest.raises(ValueError):
        ex.normalized_importance_weights(np.zeros(3))


# ===========================================================================
# Exercise 04: the Bernoulli log-likelihood from logits
# ===========================================================================


def pixels_and_logits(shape=(5, 8), seed=16, binary=True):
    rng = np.random.default_rng(seed)
    x = (rng.uniform(size=shape) < 0.4).astype(np.float64) if binary else rng.uniform(size=shape)
    return x, 4.0 * rng.standard_normal(shape)


def test_ex04_softplus_matches_torch(exercise):
    ex = exercise("ex04_bernoulli_likelihood")
    z = np.array([-1e4, -800.0, -30.0, -1.0, 0.0, 1e-8, 2.0, 35.0, 800.0, 1e4])
    with no_float_warnings():
        got = ex.softplus(z)
    assert_close(got, F.softplus(torch.from_numpy(z)), FLOAT64, name="softplus")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "grey"])
def test_ex04_log_likelihood_matches_torch_distributions(exercise, binary):
    ex = exercise("ex04_bernoulli_likelihood")
    x, logits = pixels_and_logits(binary=binary)
    got = ex.bernoulli_log_likelihood(x, logits)
    x_t, l_t = torch.from_numpy(x), torch.from_numpy(logits)
    bce = F.binary_cross_entropy_with_logits(l_t, x_t, reduction="none").sum(-1)
    assert_close(got, -bce, L1_VS_AUTOGRAD, name="log p(x | logits) vs -BCE")
    if binary:  # Bernoulli.log_prob validates its support {0, 1}
        expected = Bernoulli(logits=l_t).log_prob(x_t).sum(-1)
        assert_close(got, expected, L1_VS_AUTOGRAD, name="log p(x | logits) vs Bernoulli")
        assert np.all(got <= 0.0)


def test_ex04_huge_logits_give_finite_exact_answers(exercise):
    """Saturated logits: log sigmoid(-1000) = -1000, not log(0) = -inf."""
    ex = exercise("ex04_bernoulli_likelihood")
    logits = np.array([[1000.0, -1000.0, 1000.0, -1000.0, 40.0, -40.0]])
    x = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 1.0]])
    with no_float_warnings():
        got = ex.bernoulli_log_likelihood(x, logits)
        grad = ex.bernoulli_log_likelihood_backward(np.ones(1), x, logits)
    l_t = torch.tensor(logits, requires_grad=True)
    expected = Bernoulli(logits=l_t).log_prob(torch.from_numpy(x)).sum(-1)
    expected.sum().backward()
    assert_close(got, expected, L1_VS_AUTOGRAD, name="log-likelihood at +-1000")
    assert_close(got, [-2080.0], Tol(1e-12, 1e-9), name="-1000 - 1000 - 40 - 40")
    assert_close(grad, l_t.grad, L1_VS_AUTOGRAD, name="gradient at +-1000")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "grey"])
def test_ex04_backward_matches_autograd_and_finite_differences(exercise, binary):
    ex = exercise("ex04_bernoulli_likelihood")
    x, logits = pixels_and_logits(shape=(3, 4), seed=17, binary=binary)
    dll = np.array([1.0, -0.5, 2.0])
    grad = ex.bernoulli_log_likelihood_backward(dll, x, logits)
    l_t = torch.tensor(logits, requires_grad=True)
    log_lik = -F.binary_cross_entropy_with_logits(l_t, torch.from_numpy(x), reduction="none")
    log_lik.sum(-1).backward(torch.from_numpy(dll))
    assert_close(grad, l_t.grad, L1_VS_AUTOGRAD, name="dlog p/dlogits vs autograd")

    def loss():
        return float(np.sum(dll * ex.bernoulli_log_likelihood(x, logits)))

    assert_close(grad, numerical_gradient(loss, logits), FINITE_DIFF,
                 name="dlog p/dlogits vs finite differences")


def test_ex04_float32_stays_float32(exercise):
    ex = exercise("ex04_bernoulli_likelihood")
    x, logits = (a.astype(np.float32) for a in pixels_and_logits(seed=18))
    got = ex.bernoulli_log_likelihood(x, logits)
    assert got.dtype == np.float32, f"float32 in must give float32 out; got {got.dtype}"
    expected = Bernoulli(logits=torch.from_numpy(logits)).log_prob(torch.from_numpy(x)).sum(-1)
    assert_close(got, expected, FLOAT32, name="float32 log-likelihood")


def test_ex04_errors_are_clear(exercise):
    ex = exercise("ex04_bernoulli_likelihood")
    with pytest.raises(ValueError):
        ex.bernoulli_log_likelihood(np.full((2, 3), 255.0), np.zeros((2, 3)))  # unscaled pixels
    with pytest.raises(ValueError):
        ex.bernoulli_log_likelihood(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        ex.bernoulli_log_likelihood_backward(np.ones(3), np.zeros((2, 3)), np.zeros((2, 3)))
