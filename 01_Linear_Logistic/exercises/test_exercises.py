"""Checks for the exercises of lesson 01, against references that do not share their code.

Run them on the reference solutions::

    pytest 01_Linear_Logistic/exercises

or on your own files (copied from ``exercises/starters/`` and filled in)::

    pytest 01_Linear_Logistic/exercises --solutions my_solutions

The ``exercise(name)`` fixture (root conftest.py) loads ``solutions/<name>.py`` or
``<DIR>/<name>.py``. Every check compares numbers with something computed another
way: scikit-learn, PyTorch autograd, finite differences, a closed form or an
optimality condition. None compares with the reference solution itself, which
would let a copy of a bug pass.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge

from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    L1_VS_AUTOGRAD,
    SKLEARN_SOLUTION,
    Tol,
    assert_close,
    check_exercise_files,
    check_learner_module,
    check_numpy_only,
    check_starter_left_to_learner,
    check_starter_matches_solution,
    exercise_names,
    load_module_from_file,
    numerical_gradient,
)

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
STARTERS = HERE / "starters"
EXERCISES = exercise_names(HERE)

# Two iterative solvers (ours and scikit-learn's), each stopped by its own tolerance.
ITERATIVE_VS_SKLEARN = Tol(rtol=1e-7, atol=1e-8)
# Optimality conditions evaluated at an iterative solver's answer.
OPTIMALITY = Tol(rtol=0.0, atol=1e-8)


# ===========================================================================
# The files themselves: starters and solutions never drift apart
# ===========================================================================


def test_every_exercise_has_its_task_solution_and_starter():
    check_exercise_files(HERE, min_count=3)


@pytest.mark.parametrize("name", EXERCISES)
def test_starter_defines_the_same_functions_as_the_solution(name):
    check_starter_matches_solution(HERE, name)


@pytest.mark.parametrize("name", EXERCISES)
def test_every_starter_function_is_left_to_the_learner(name):
    """Each starter function raises NotImplementedError naming itself, before anything else."""
    check_starter_left_to_learner(HERE, name)


@pytest.mark.parametrize("folder", [SOLUTIONS, STARTERS], ids=["solutions", "starters"])
def test_exercise_files_are_numpy_only(folder):
    """The exercises are L1 work: no torch, scipy or scikit-learn in the files a learner writes."""
    check_numpy_only(folder)


@pytest.mark.parametrize("name", EXERCISES)
def test_your_file_has_the_expected_functions(exercise, name):
    """Your file (or the reference) defines every starter function, with the same parameters."""
    check_learner_module(exercise(name), HERE, name)


def test_a_learner_file_that_calls_torch_fails_the_purity_check(tmp_path):
    name = EXERCISES[0]
    solution = (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8")
    for extra in ("import torch\n", "from scipy import special\n",
                  "import importlib\nF = importlib.import_module('torch.nn.functional')\n"):
        learner = tmp_path / extra.split()[1].replace(".", "_") / f"{name}.py"
        learner.parent.mkdir()
        learner.write_text(solution + "\n" + extra, encoding="utf-8")
        module = load_module_from_file(learner)
        # the functions are right; the learner's check still fails on the import
        with pytest.raises(AssertionError, match="may not import"):
            check_learner_module(module, HERE, name)


# ===========================================================================
# Exercise 01: ridge in closed form, lasso by coordinate descent
# ===========================================================================


def regression_data(n=80, d=8, seed=1):
    """Correlated features, a sparse true weight vector, an intercept of 1 and noise."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    X = rng.standard_normal((n, d)) @ mixing  # (N, D) correlated columns
    w_true = np.zeros(d)
    w_true[[0, 1, d // 2, d - 1]] = [3.0, -2.0, 1.5, 0.5]
    y = X @ w_true + 1.0 + 0.5 * rng.standard_normal(n)
    return X, y


def orthogonal_design(n=60, d=6, seed=2):
    """Centred X with X^T X / N = I exactly, and a target y, so lasso has a closed form."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, d))
    Q, _ = np.linalg.qr(M - M.mean(axis=0))  # orthonormal columns spanning centred ones: centred
    X = np.sqrt(n) * Q  # X^T X / N = Q^T Q = I
    y = X @ np.array([2.0, -1.0, 0.6, 0.3, -0.1, 0.0]) + 0.2 * rng.standard_normal(n) + 3.0
    return X, y


@pytest.mark.parametrize("l2", [1e-3, 0.1, 1.0])
def test_ex01_ridge_matches_sklearn_ridge(exercise, l2):
    ex = exercise("ex01_regularization")
    X, y = regression_data()
    w, b = ex.ridge_closed_form(X, y, l2)
    reference = Ridge(alpha=len(y) * l2).fit(X, y)  # alpha = N * l2 (theory.md, section 1)
    assert_close(w, reference.coef_, SKLEARN_SOLUTION, name="ridge w")
    assert_close(b, reference.intercept_, SKLEARN_SOLUTION, name="ridge b")


def test_ex01_ridge_matches_the_svd_formula(exercise):
    """w = V diag(s / (s^2 + N l2)) U^T yc for the SVD Xc = U diag(s) V^T."""
    ex = exercise("ex01_regularization")
    X, y = regression_data(seed=3)
    n, l2 = len(y), 0.05
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    w_svd = Vt.T @ (s / (s**2 + n * l2) * (U.T @ yc))
    w, b = ex.ridge_closed_form(X, y, l2)
    assert_close(w, w_svd, SKLEARN_SOLUTION, name="ridge w")
    assert_close(b, y.mean() - X.mean(axis=0) @ w_svd, SKLEARN_SOLUTION, name="ridge b")


def test_ex01_ridge_gradient_vanishes_at_its_answer(exercise):
    """torch autograd of the lesson's J at (w, b) is zero: the same l2 convention, no N lost."""
    ex = exercise("ex01_regularization")
    X, y = regression_data(seed=4)
    l2 = 0.3
    w, b = ex.ridge_closed_form(X, y, l2)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    J = 0.5 * ((Xt @ wt + bt - yt) ** 2).mean() + 0.5 * l2 * (wt @ wt)
    J.backward()
    assert_close(wt.grad, np.zeros_like(w), OPTIMALITY, name="dJ/dw at the ridge answer")
    assert_close(bt.grad, np.array(0.0), OPTIMALITY, name="dJ/db at the ridge answer")


def test_ex01_ridge_without_penalty_gives_the_minimum_norm_solution(exercise):
    """Duplicated and constant columns: infinitely many minimisers; return the shortest."""
    ex = exercise("ex01_regularization")
    X, y = regression_data(n=40, d=4, seed=5)
    X = np.hstack([X, X[:, :1], np.full((40, 1), 7.0)])  # column 4 = column 0, column 5 constant
    w, b = ex.ridge_closed_form(X, y, 0.0)
    Xc = X - X.mean(axis=0)
    w_pinv = np.linalg.pinv(Xc) @ (y - y.mean())  # minimum-norm least squares
    assert_close(w, w_pinv, SKLEARN_SOLUTION, name="minimum-norm w")
    reference = LinearRegression().fit(X, y)
    assert_close(w, reference.coef_, Tol(1e-7, 1e-8), name="w vs sklearn LinearRegression")
    assert_close(b, reference.intercept_, Tol(1e-7, 1e-8), name="b vs sklearn LinearRegression")
    assert abs(w[0] - w[4]) < 1e-10 and abs(w[5]) < 1e-10  # the weight is shared; constant: 0


def test_ex01_ridge_rejects_bad_input(exercise):
    ex = exercise("ex01_regularization")
    X, y = regression_data()
    with pytest.raises(ValueError):
        ex.ridge_closed_form(X[:, 0], y, 0.1)  # X must be 2-D
    with pytest.raises(ValueError):
        ex.ridge_closed_form(X, y[:-1], 0.1)  # one target per row
    with pytest.raises(ValueError):
        ex.ridge_closed_form(X, y, -1.0)  # l2 >= 0


def test_ex01_soft_threshold_known_values(exercise):
    ex = exercise("ex01_regularization")
    a = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5])
    assert_close(ex.soft_threshold(a, 1.0), np.array([-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5]),
                 FLOAT64, name="S(a, 1)")
    assert_close(ex.soft_threshold(a, 0.0), a, FLOAT64, name="S(a, 0) = a")


@pytest.mark.parametrize("l1", [0.01, 0.1, 0.5, 1.0])
def test_ex01_lasso_matches_sklearn_lasso(exercise, l1):
    ex = exercise("ex01_regularization")
    X, y = regression_data()
    w, b = ex.lasso_coordinate_descent(X, y, l1, 1000)
    reference = Lasso(alpha=l1, tol=1e-14, max_iter=100_000).fit(X, y)
    assert_close(w, reference.coef_, ITERATIVE_VS_SKLEARN, name=f"lasso w, l1={l1}")
    assert_close(b, reference.intercept_, ITERATIVE_VS_SKLEARN, name=f"lasso b, l1={l1}")
    # exact zeros, not just small numbers: that is what the soft threshold buys
    assert np.array_equal(w == 0, reference.coef_ == 0), "lasso zeros differ from sklearn's"


def lasso_optimality_violation(X, y, w, b, l1) -> float:
    """Largest violation of the lasso optimality (subgradient) conditions at (w, b).

    With c_j = X_j^T (y - X w - b) / N:   c_j = l1 sign(w_j) when w_j != 0, |c_j| <= l1 when
    w_j = 0, and the bias condition mean(y - X w - b) = 0.
    """
    residual = y - X @ w - b
    c = X.T @ residual / len(y)
    active = w != 0
    worst_active = np.max(np.abs(c[active] - l1 * np.sign(w[active])), initial=0.0)
    worst_inactive = np.max(np.abs(c[~active]) - l1, initial=0.0)
    return max(worst_active, worst_inactive, abs(residual.mean()))


def test_ex01_lasso_satisfies_the_optimality_conditions(exercise):
    ex = exercise("ex01_regularization")
    X, y = regression_data(seed=6)
    for l1 in (0.05, 0.3):
        w, b = ex.lasso_coordinate_descent(X, y, l1, 1000)
        assert lasso_optimality_violation(X, y, w, b, l1) < OPTIMALITY.atol


def test_ex01_sklearn_lasso_minimises_the_same_objective():
    """Not a check of your code: it verifies the claim alpha = l1 in 01_regularization.md."""
    X, y = regression_data(seed=6)
    reference = Lasso(alpha=0.3, tol=1e-14, max_iter=100_000).fit(X, y)
    assert lasso_optimality_violation(X, y, reference.coef_, reference.intercept_, 0.3) < 1e-8


def test_ex01_lasso_on_an_orthogonal_design_is_one_soft_threshold(exercise):
    """With X^T X / N = I the coordinates decouple: w = S(X^T (y - mean y) / N, l1)."""
    ex = exercise("ex01_regularization")
    X, y = orthogonal_design()
    n = len(y)
    ols = X.T @ (y - y.mean()) / n  # the least-squares weights of this design
    for l1 in (0.0, 0.2, 0.5, 1.5):
        w, b = ex.lasso_coordinate_descent(X, y, l1, 1000)
        expected = np.sign(ols) * np.maximum(np.abs(ols) - l1, 0.0)
        assert_close(w, expected, OPTIMALITY, name=f"orthogonal lasso w, l1={l1}")
        assert_close(b, y.mean() - X.mean(axis=0) @ expected, OPTIMALITY, name="b")


def test_ex01_lasso_sparsity_grows_with_l1(exercise):
    ex = exercise("ex01_regularization")
    X, y = orthogonal_design()
    grid = [0.0, 0.05, 0.2, 0.4, 0.8, 1.2, 2.5]
    nonzeros = [int(np.count_nonzero(ex.lasso_coordinate_descent(X, y, l1, 1000)[0]))
                for l1 in grid]
    # on this design the count is the number of |ols_j| above l1, which never increases
    ols = X.T @ (y - y.mean()) / len(y)
    assert nonzeros == [int(np.sum(np.abs(ols) > l1)) for l1 in grid]
    assert nonzeros[0] == X.shape[1] and nonzeros[-1] == 0


def test_ex01_lasso_is_all_zero_from_l1_max_on(exercise):
    """l1_max = max_j |Xc_j^T yc| / N: the smallest l1 whose answer is w = 0, b = mean(y)."""
    ex = exercise("ex01_regularization")
    X, y = regression_data(seed=7)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    correlations = np.abs(Xc.T @ yc) / len(y)
    l1_max = correlations.max()
    w, b = ex.lasso_coordinate_descent(X, y, l1_max * (1 + 1e-9), 1000)
    assert np.all(w == 0) and abs(b - y.mean()) < 1e-12
    w, _ = ex.lasso_coordinate_descent(X, y, 0.99 * l1_max, 1000)
    # just below l1_max the first feature to enter is the most correlated one, alone
    assert np.flatnonzero(w).tolist() == [int(np.argmax(correlations))]


def test_ex01_lasso_without_penalty_is_least_squares(exercise):
    ex = exercise("ex01_regularization")
    X, y = regression_data(seed=8)
    w, b = ex.lasso_coordinate_descent(X, y, 0.0, 5000)
    reference = LinearRegression().fit(X, y)
    assert_close(w, reference.coef_, ITERATIVE_VS_SKLEARN, name="w")
    assert_close(b, reference.intercept_, ITERATIVE_VS_SKLEARN, name="b")


def test_ex01_lasso_rejects_bad_input(exercise):
    ex = exercise("ex01_regularization")
    X, y = regression_data()
    with pytest.raises(ValueError):
        ex.lasso_coordinate_descent(X, y[:, None], 0.1, 10)  # y must be 1-D (N,)
    with pytest.raises(ValueError):
        ex.lasso_coordinate_descent(X, y, -0.1, 10)  # l1 >= 0


# ===========================================================================
# Exercise 02: the largest stable learning rate
# ===========================================================================


def badly_scaled_data(n=100, seed=9):
    """Three features on scales 1, 10 and 0.1 around a non-zero mean: ill-conditioned."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) * np.array([1.0, 10.0, 0.1]) + np.array([2.0, -5.0, 1.0])
    y = X @ np.array([1.0, 0.2, -3.0]) + 0.5 + 0.1 * rng.standard_normal(n)
    return X, y


def standardise(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def torch_hessian(X, l2):
    """Hessian of the lesson's J over theta = [w; b], by double autograd."""
    Xt = torch.from_numpy(X)
    y = torch.zeros(len(X), dtype=torch.float64)  # J's Hessian does not depend on y
    d = X.shape[1]

    def J(theta):
        w, b = theta[:d], theta[d]
        return 0.5 * ((Xt @ w + b - y) ** 2).mean() + 0.5 * l2 * (w @ w)

    return torch.autograd.functional.hessian(J, torch.zeros(d + 1, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_ex02_hessian_matches_autograd(exercise, l2):
    ex = exercise("ex02_learning_rate")
    X, _ = badly_scaled_data()
    assert_close(ex.linear_regression_hessian(X, l2), torch_hessian(X, l2), FLOAT64, name="H")


def test_ex02_max_stable_lr_is_two_over_the_largest_eigenvalue(exercise):
    ex = exercise("ex02_learning_rate")
    X, _ = badly_scaled_data()
    n = len(X)
    # way 1: eigenvalues of the autograd Hessian (l2 = 0 and l2 > 0)
    for l2 in (0.0, 0.3):
        lambda_max = torch.linalg.eigvalsh(torch.from_numpy(torch_hessian(X, l2)))[-1].item()
        assert_close(ex.max_stable_lr(X, l2), 2.0 / lambda_max, FLOAT64, name=f"lr_max l2={l2}")
    # way 2: lambda_max(A^T A / N) = s_max(A)^2 / N for the largest singular value of A = [X, 1]
    s_max = np.linalg.svd(np.hstack([X, np.ones((n, 1))]), compute_uv=False)[0]
    assert_close(ex.max_stable_lr(X), 2.0 * n / s_max**2, FLOAT64, name="lr_max via the SVD")


def exact_gd_iterates(X, y, lr, n_steps, l2):
    """theta_k = theta* + (I - lr H)^k (theta_0 - theta*) from theta_0 = 0; and J(theta_k)."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    penalty = np.diag(np.r_[np.full(d, l2), 0.0])
    H = A.T @ A / n + penalty
    theta_star = np.linalg.solve(H, A.T @ y / n)  # H theta* = A^T y / N: the normal equation
    step = np.eye(d + 1) - lr * H
    thetas = [theta_star - np.linalg.matrix_power(step, k) @ theta_star for k in range(n_steps + 1)]
    losses = [0.5 * np.mean((A @ t - y) ** 2) + 0.5 * l2 * t[:d] @ t[:d] for t in thetas]
    return thetas[-1], np.array(losses)


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_ex02_gradient_descent_follows_the_exact_linear_recursion(exercise, l2):
    ex = exercise("ex02_learning_rate")
    X, y = regression_data(n=50, d=4, seed=10)
    lr = 0.5 * ex.max_stable_lr(X, l2)
    w, b, losses = ex.gradient_descent(X, y, lr, 30, l2)
    theta, expected_losses = exact_gd_iterates(X, y, lr, 30, l2)
    assert_close(np.r_[w, b], theta, Tol(1e-9, 1e-10), name="theta after 30 steps")
    assert_close(losses, expected_losses, Tol(1e-9, 1e-10), name="J along the way")
    assert abs(losses[0] - 0.5 * np.mean(y**2)) < 1e-12  # J(0, 0)


def test_ex02_gradient_descent_converges_just_below_the_limit(exercise):
    ex = exercise("ex02_learning_rate")
    X, y = regression_data(n=100, d=4, seed=11)
    X = standardise(X)
    w, b, losses = ex.gradient_descent(X, y, 0.9 * ex.max_stable_lr(X), 2000)
    reference = LinearRegression().fit(X, y)
    assert_close(w, reference.coef_, Tol(1e-8, 1e-8), name="w after GD at 0.9 lr_max")
    assert_close(b, reference.intercept_, Tol(1e-8, 1e-8), name="b after GD at 0.9 lr_max")
    assert losses[-1] < losses[0]


def test_ex02_gradient_descent_diverges_just_above_the_limit(exercise):
    ex = exercise("ex02_learning_rate")
    X, y = regression_data(n=100, d=4, seed=11)
    X = standardise(X)
    _, _, losses = ex.gradient_descent(X, y, 1.1 * ex.max_stable_lr(X), 300)
    # the top eigen-direction is multiplied by |1 - 1.1 * 2| = 1.2 per step: 1.2^600 in J
    assert losses[-1] > 1e20 * losses[0]
    assert np.all(np.diff(losses[-50:]) > 0)


def test_ex02_condition_number_matches_the_singular_values(exercise):
    ex = exercise("ex02_learning_rate")
    X, _ = badly_scaled_data()
    A = np.hstack([X, np.ones((len(X), 1))])
    assert_close(ex.condition_number(X), np.linalg.cond(A) ** 2, Tol(1e-8, 0.0), name="kappa(H)")
    duplicated = np.hstack([X, X[:, :1]])  # H singular: kappa is infinite
    assert ex.condition_number(duplicated) == np.inf


def test_ex02_standardising_the_features_helps_gradient_descent(exercise):
    ex = exercise("ex02_learning_rate")
    X, y = badly_scaled_data()
    Z = standardise(X)
    kappa_raw, kappa_std = ex.condition_number(X), ex.condition_number(Z)
    A = np.hstack([Z, np.ones((len(Z), 1))])
    assert_close(kappa_std, np.linalg.cond(A) ** 2, Tol(1e-8, 0.0), name="kappa standardised")
    assert kappa_std < 10 < 1e4 < kappa_raw
    best = LinearRegression().fit(X, y)
    optimum = 0.5 * np.mean((best.predict(X) - y) ** 2)  # J* is the same for both scalings
    _, _, raw = ex.gradient_descent(X, y, 0.9 * ex.max_stable_lr(X), 200)
    _, _, std = ex.gradient_descent(Z, y, 0.9 * ex.max_stable_lr(Z), 200)
    assert std[-1] - optimum < 1e-10 < 1e-3 < raw[-1] - optimum


def test_ex02_learning_rate_functions_reject_bad_input(exercise):
    ex = exercise("ex02_learning_rate")
    X, y = regression_data()
    with pytest.raises(ValueError):
        ex.max_stable_lr(X[0])  # X must be 2-D
    with pytest.raises(ValueError):
        ex.gradient_descent(X, y, 0.0, 10)  # lr > 0
    with pytest.raises(ValueError):
        ex.gradient_descent(X, y[:-1], 0.1, 10)  # one target per row


# ===========================================================================
# Exercise 03: Newton's method (IRLS) for logistic regression
# ===========================================================================


def classification_data(n=200, d=5, seed=0):
    """Labels drawn from a true logistic model, so the classes overlap (not separable)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    z = X @ rng.standard_normal(d) + 0.5
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return X, y


def torch_logistic_objective(X, y, l2):
    """theta -> J(theta) in torch, with the loss from F.binary_cross_entropy_with_logits."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.float64))
    d = X.shape[1]

    def J(theta):
        w, b = theta[:d], theta[d]
        return F.binary_cross_entropy_with_logits(Xt @ w + b, yt) + 0.5 * l2 * (w @ w)

    return J


def test_ex03_sigmoid_is_stable_and_exact(exercise):
    ex = exercise("ex03_newton_irls")
    z = np.concatenate([np.linspace(-1000.0, 1000.0, 2001), [-745.5, -40.0, 0.0, 40.0, 745.5]])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")  # an overflow warning is a failure
        p = ex.sigmoid(z)
        p_minus = ex.sigmoid(-z)
    assert_close(p, torch.sigmoid(torch.from_numpy(z)), FLOAT64, name="sigmoid")
    assert_close(p_minus, 1.0 - p, FLOAT64, name="sigmoid(-z) = 1 - sigmoid(z)")


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_ex03_loss_gradient_and_hessian_match_autograd(exercise, l2):
    ex = exercise("ex03_newton_irls")
    X, y = classification_data(n=40, d=3, seed=1)
    theta = np.random.default_rng(2).standard_normal(4)
    loss, grad, hess = ex.logistic_loss_grad_hess(X, y, theta[:3], theta[3], l2)
    J = torch_logistic_objective(X, y, l2)
    theta_t = torch.tensor(theta, requires_grad=True)
    J_t = J(theta_t)
    J_t.backward()
    assert_close(loss, J_t.item(), L1_VS_AUTOGRAD, name="J")
    assert_close(grad, theta_t.grad, L1_VS_AUTOGRAD, name="dJ/dtheta")
    assert_close(hess, torch.autograd.functional.hessian(J, theta_t.detach()),
                 L1_VS_AUTOGRAD, name="d2J/dtheta2")


def test_ex03_loss_is_stable_for_huge_logits(exercise):
    """z = 1000: -log(1 - sigmoid(z)) = 1000 exactly and -log sigmoid(z) = 0, no inf, no nan."""
    ex = exercise("ex03_newton_irls")
    X = np.array([[1000.0], [-1000.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        wrong, _, _ = ex.logistic_loss_grad_hess(X, np.array([0, 1]), np.array([1.0]), 0.0, 0.0)
        right, grad, _ = ex.logistic_loss_grad_hess(X, np.array([1, 0]), np.array([1.0]), 0.0, 0.0)
    assert wrong == 1000.0 and right == 0.0 and np.all(grad == 0.0)


@pytest.mark.parametrize("l2", [1e-3, 1e-2])
def test_ex03_newton_matches_sklearn_logistic_regression(exercise, l2):
    ex = exercise("ex03_newton_irls")
    X, y = classification_data()
    w, b, _ = ex.newton_logistic(X, y, l2, 20)
    reference = LogisticRegression(C=1.0 / (len(y) * l2), solver="newton-cg", tol=1e-12,
                                   max_iter=1000).fit(X, y)
    assert_close(w, reference.coef_[0], SKLEARN_SOLUTION, name=f"w, l2={l2}")
    assert_close(b, reference.intercept_[0], SKLEARN_SOLUTION, name=f"b, l2={l2}")


def test_ex03_newton_without_penalty_matches_sklearn(exercise):
    """l2 = 0 is scikit-learn's C = inf (penalty=None before version 1.8)."""
    ex = exercise("ex03_newton_irls")
    X, y = classification_data(seed=3)
    w, b, _ = ex.newton_logistic(X, y, 0.0, 20)
    reference = LogisticRegression(C=np.inf, solver="newton-cg", tol=1e-12,
                                   max_iter=1000).fit(X, y)
    assert_close(w, reference.coef_[0], SKLEARN_SOLUTION, name="w")
    assert_close(b, reference.intercept_[0], SKLEARN_SOLUTION, name="b")


def test_ex03_newton_converges_quadratically(exercise):
    ex = exercise("ex03_newton_irls")
    X, y = classification_data()
    l2 = 1e-3
    w, b, grad_norms = ex.newton_logistic(X, y, l2, 12)
    assert grad_norms.shape == (13,)
    J = torch_logistic_objective(X, y, l2)
    for theta, k in ((np.zeros(6), 0), (np.r_[w, b], 12)):  # the first and the last iterate
        theta_t = torch.tensor(theta, requires_grad=True)
        J(theta_t).backward()
        assert_close(grad_norms[k], theta_t.grad.norm().item(), Tol(1e-8, 1e-12),
                     name=f"grad_norms[{k}]")
    assert grad_norms[8] < 1e-10, f"not converged after 8 Newton steps: {grad_norms[:9]}"
    # quadratic: ||g_{k+1}|| <= C ||g_k||^2 once close. A linearly converging method
    # (gradient descent: ||g_{k+1}|| ~ rho ||g_k||) fails this for small ||g_k||.
    close = [k for k in range(12) if 1e-9 < grad_norms[k] < 1e-2]
    assert len(close) >= 2, f"too few iterates near the optimum to judge: {grad_norms}"
    for k in close:
        assert grad_norms[k + 1] <= 20.0 * grad_norms[k] ** 2, (
            f"step {k}: ||g|| went {grad_norms[k]:.2e} -> {grad_norms[k + 1]:.2e}, "
            "not quadratic")


def test_ex03_newton_rejects_bad_labels(exercise):
    ex = exercise("ex03_newton_irls")
    X, y = classification_data(n=20)
    with pytest.raises(ValueError):
        ex.newton_logistic(X, 2 * y - 1, 0.1, 5)  # -1/+1 labels: the lesson uses 0/1
    with pytest.raises(ValueError):
        ex.newton_logistic(X, y[:-1], 0.1, 5)


# ===========================================================================
# Exercise 04: a stable softmax cross-entropy and its gradient
# ===========================================================================


def logits_and_labels(n=6, k=4, seed=12, scale=3.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n, k)), rng.integers(0, k, size=n)


def test_ex04_log_softmax_matches_torch(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z, _ = logits_and_labels()
    got = ex.log_softmax(Z)
    assert_close(got, torch.log_softmax(torch.from_numpy(Z), dim=1), FLOAT64, name="log_softmax")
    assert_close(np.exp(got).sum(axis=1), np.ones(len(Z)), FLOAT64, name="rows of softmax")


def test_ex04_cross_entropy_and_gradient_match_torch(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z, y = logits_and_labels()
    loss, dZ = ex.softmax_cross_entropy(Z, y)
    Z_t = torch.tensor(Z, requires_grad=True)
    loss_t = F.cross_entropy(Z_t, torch.from_numpy(y))
    loss_t.backward()
    assert_close(loss, loss_t.item(), L1_VS_AUTOGRAD, name="cross-entropy")
    assert_close(dZ, Z_t.grad, L1_VS_AUTOGRAD, name="dL/dZ")


def test_ex04_gradient_matches_finite_differences(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z, y = logits_and_labels(n=5, k=3, seed=13, scale=1.0)
    _, dZ = ex.softmax_cross_entropy(Z, y)
    numeric = numerical_gradient(lambda: ex.softmax_cross_entropy(Z, y)[0], Z)
    assert_close(dZ, numeric, FINITE_DIFF, name="dL/dZ vs central differences")


def test_ex04_cross_entropy_is_stable_at_huge_logits(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    y = np.array([1, 2])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        log_p = ex.log_softmax(Z)
        loss, dZ = ex.softmax_cross_entropy(Z, y)
    assert_close(log_p[0], np.array([0.0, -1e4, -2e4]), FLOAT64, name="log_softmax at 1e4")
    # row 0: -log p = 1e4 (the e^-1e4 terms vanish); row 1: log 3
    assert_close(loss, (1e4 + np.log(3.0)) / 2, FLOAT64, name="loss at 1e4")
    expected = np.array([[1.0, -1.0, 0.0], [1 / 3, 1 / 3, -2 / 3]]) / 2
    assert_close(dZ, expected, FLOAT64, name="dL/dZ at 1e4")


def test_ex04_shifting_a_row_of_logits_changes_nothing(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z, y = logits_and_labels(seed=14)
    shift = np.random.default_rng(15).uniform(-500.0, 500.0, size=(len(Z), 1))
    loss, dZ = ex.softmax_cross_entropy(Z, y)
    loss_shifted, dZ_shifted = ex.softmax_cross_entropy(Z + shift, y)
    assert_close(loss_shifted, loss, Tol(1e-12, 1e-12), name="loss after a shift")
    assert_close(dZ_shifted, dZ, Tol(1e-12, 1e-12), name="dL/dZ after a shift")


def test_ex04_two_classes_are_logistic_regression(exercise):
    """Logits [0, z]: softmax cross-entropy = binary cross-entropy of z; dL/dz = (p - y) / N."""
    ex = exercise("ex04_softmax_gradient")
    rng = np.random.default_rng(16)
    z, y = 4.0 * rng.standard_normal(10), rng.integers(0, 2, size=10)
    loss, dZ = ex.softmax_cross_entropy(np.stack([np.zeros(10), z], axis=1), y)
    z_t = torch.tensor(z, requires_grad=True)
    bce = F.binary_cross_entropy_with_logits(z_t, torch.from_numpy(y.astype(np.float64)))
    bce.backward()
    assert_close(loss, bce.item(), L1_VS_AUTOGRAD, name="K=2 loss vs BCE")
    assert_close(dZ[:, 1], z_t.grad, L1_VS_AUTOGRAD, name="dL/dz")
    assert_close(dZ[:, 0], -z_t.grad, L1_VS_AUTOGRAD, name="dL/dz0 = -dL/dz1")


def test_ex04_float32_stays_float32(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z, y = logits_and_labels(seed=17)
    Z32 = Z.astype(np.float32)
    loss, dZ = ex.softmax_cross_entropy(Z32, y)
    assert dZ.dtype == np.float32 and ex.log_softmax(Z32).dtype == np.float32
    Z_t = torch.tensor(Z32, requires_grad=True)
    F.cross_entropy(Z_t, torch.from_numpy(y)).backward()
    assert_close(dZ, Z_t.grad, FLOAT32, name="float32 dL/dZ")
    assert_close(loss, F.cross_entropy(torch.from_numpy(Z32), torch.from_numpy(y)).item(),
                 FLOAT32, name="float32 loss")


def test_ex04_cross_entropy_rejects_bad_labels(exercise):
    ex = exercise("ex04_softmax_gradient")
    Z, y = logits_and_labels(k=4)
    for bad in (np.full_like(y, 4), y - 10, y.astype(np.float64) + 0.5, y[:-1]):
        with pytest.raises(ValueError):
            ex.softmax_cross_entropy(Z, bad)
    with pytest.raises(ValueError):
        ex.softmax_cross_entropy(Z[0], y[:1])  # logits must be 2-D (N, K)
