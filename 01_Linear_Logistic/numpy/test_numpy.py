"""Tests of lesson 01, level 1 (NumPy): every number checked against a reference.

References, from the most basic to the most practical:

- central finite differences (float64) for every hand-written gradient;
- PyTorch autograd on the same inputs and weights (forward values and gradients);
- scikit-learn's solutions of the same objectives (LinearRegression, Ridge,
  LogisticRegression with C = 1 / (N l2));
- properties that must hold for any input (hypothesis): probabilities in [0, 1],
  rows summing to 1, no overflow for huge logits.

Run from the repository root: ``pytest 01_Linear_Logistic/numpy`` (add ``--slow`` for
the real-MNIST run, which needs a local copy of the data).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import linear_model

from utils import import_lesson
from utils.cli import limit_blas_threads
from utils.data_loaders import load_tabular
from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT64,
    L1_VS_AUTOGRAD,
    SKLEARN_SOLUTION,
    Tol,
    assert_close,
    assert_level_purity,
    check_against_autograd,
    check_layer_gradients,
    numerical_gradient,
)

lin = import_lesson("01_Linear_Logistic.numpy.linear_numpy")
log = import_lesson("01_Linear_Logistic.numpy.logistic_numpy")
train_lin = import_lesson("01_Linear_Logistic.numpy.train_linear")
train_log = import_lesson("01_Linear_Logistic.numpy.train_logistic")

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# scikit-learn's lbfgs stops once its gradient is below `tol`, which leaves the
# weights ~1e-7 from the exact optimum on these problems (its own Newton solver
# agrees with ours to 1e-12, see the newton-cholesky tests), hence a looser bar.
SKLEARN_LBFGS = Tol(rtol=1e-6, atol=1e-6)

# few examples and no deadline: fast and not flaky on a busy 2-core machine
few_examples = settings(max_examples=25, deadline=None)

# Many tests fit for a few epochs on purpose; the tests of the warning itself use
# pytest.warns, which sees it regardless of this filter.
pytestmark = pytest.mark.filterwarnings("ignore:.*did not converge")


def torch_affine(x, p):
    """The reference forward pass: F.linear computes x A^T + b, our W is A^T."""
    return F.linear(x, p["W"].T, p["b"])


@pytest.fixture(scope="module")
def diabetes():
    return load_tabular("diabetes")


@pytest.fixture(scope="module")
def breast_cancer():
    return load_tabular("breast_cancer")


@pytest.fixture(scope="module")
def iris():
    return load_tabular("iris")


# ---------------------------------------------------------------------------
# The level's rules and the import guard
# ---------------------------------------------------------------------------


def test_level_purity():
    assert_level_purity(HERE)


def test_shadowing_guard_explains_how_to_run():
    """Python started inside 01_Linear_Logistic/ must not silently use this folder as NumPy."""
    result = subprocess.run([sys.executable, "-c", "import numpy"], cwd=HERE.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "python 01_Linear_Logistic/numpy/train_linear.py" in result.stderr


def test_importing_the_lesson_does_not_import_torch():
    code = ("import sys, importlib\n"
            "importlib.import_module('01_Linear_Logistic.numpy.linear_numpy')\n"
            "importlib.import_module('01_Linear_Logistic.numpy.logistic_numpy')\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Layers: backward against finite differences and against torch autograd
# ---------------------------------------------------------------------------


def make_models():
    """One model of each kind, with parameters, in float64."""
    return [lin.LinearRegression(input_dim=4, output_dim=3, seed=1),
            log.LogisticRegression(input_dim=4, seed=2),
            log.SoftmaxRegression(input_dim=4, n_classes=3, seed=3)]


@pytest.mark.parametrize("model", make_models(), ids=lambda m: type(m).__name__)
def test_backward_matches_finite_differences(model):
    x = np.random.default_rng(0).standard_normal((5, 4))
    errors = check_layer_gradients(model, x)
    assert set(errors) == {"x", "W", "b"}


@pytest.mark.parametrize("model", make_models(), ids=lambda m: type(m).__name__)
def test_forward_and_backward_match_torch_autograd(model):
    x = np.random.default_rng(1).standard_normal((6, 4))
    check_against_autograd(model, torch_affine, x)


def test_params_are_the_attribute_arrays():
    model = lin.LinearRegression(solver="gd", epochs=3)
    model.fit(np.eye(3), [1.0, 2.0, 3.0])
    assert model.params["W"] is model.W and model.params["b"] is model.b
    model.W = np.zeros((3, 1))
    assert model.params["W"] is model.W


# ---------------------------------------------------------------------------
# Losses: values and gradients against torch, gradients against finite differences
# ---------------------------------------------------------------------------


def _torch_loss_and_grad(torch_loss, logits, target):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value = torch_loss(z, torch.as_tensor(target))
    value.backward()
    return value.item(), z.grad.numpy()


def _check_loss_gradient_by_finite_differences(loss_fn, logits, target):
    logits = logits.copy()
    _, analytic = loss_fn(logits, target)
    numeric = numerical_gradient(lambda: loss_fn(logits, target)[0], logits)
    assert_close(analytic, numeric, FINITE_DIFF, name="dloss/dlogits")


@pytest.mark.parametrize("shape", [(7,), (7, 3)])
def test_mse_loss(shape):
    rng = np.random.default_rng(0)
    y_hat, y = rng.standard_normal(shape), rng.standard_normal(shape)
    n_outputs = 1 if len(shape) == 1 else shape[1]
    value, grad = lin.mse_loss(y_hat, y)
    # our convention: 1/(2N) sum ||.||^2; torch averages over all N*K entries, no 1/2
    ref_value, ref_grad = _torch_loss_and_grad(
        lambda a, b: 0.5 * n_outputs * F.mse_loss(a, b.double()), y_hat, y)
    assert_close(value, ref_value, L1_VS_AUTOGRAD, name="mse value")
    assert_close(grad, ref_grad, L1_VS_AUTOGRAD, name="mse gradient")
    _check_loss_gradient_by_finite_differences(lin.mse_loss, y_hat, y)


@pytest.mark.parametrize("soft_labels", [False, True])
def test_binary_cross_entropy_with_logits(soft_labels):
    rng = np.random.default_rng(1)
    z = 3 * rng.standard_normal(9)
    y = rng.uniform(size=9) if soft_labels else rng.integers(0, 2, 9).astype(np.float64)
    value, grad = log.binary_cross_entropy_with_logits(z, y)
    ref_value, ref_grad = _torch_loss_and_grad(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b.double()), z, y)
    assert_close(value, ref_value, L1_VS_AUTOGRAD, name="bce value")
    assert_close(grad, ref_grad, L1_VS_AUTOGRAD, name="bce gradient")
    _check_loss_gradient_by_finite_differences(log.binary_cross_entropy_with_logits, z, y)
    # (N, 1) logits give the same numbers with that shape
    value_2d, grad_2d = log.binary_cross_entropy_with_logits(z[:, None], y)
    assert value_2d == value and grad_2d.shape == (9, 1)
    assert_close(grad_2d[:, 0], grad, FLOAT64)


def test_softmax_cross_entropy():
    rng = np.random.default_rng(2)
    logits = 3 * rng.standard_normal((8, 5))
    y = rng.integers(0, 5, 8)
    value, grad = log.softmax_cross_entropy(logits, y)
    ref_value, ref_grad = _torch_loss_and_grad(F.cross_entropy, logits, y)
    assert_close(value, ref_value, L1_VS_AUTOGRAD, name="cross-entropy value")
    assert_close(grad, ref_grad, L1_VS_AUTOGRAD, name="cross-entropy gradient")
    _check_loss_gradient_by_finite_differences(log.softmax_cross_entropy, logits, y)


def test_extreme_logits_are_exact_and_silent():
    """|z| = 1000 overflows a naive e^z; the stable forms stay finite and exact."""
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    Z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    labels = np.array([0, 2])
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = log.binary_cross_entropy_with_logits(z, y)
        ce_value, ce_grad = log.softmax_cross_entropy(Z, labels)
        p = log.sigmoid(z)
        P = log.softmax(Z)
    # right with certainty: loss 0; wrong with certainty: loss 1000 each
    assert value == (0 + 0 + 1000 + 1000) / 4
    np.testing.assert_array_equal(grad, (np.array([1.0, 0.0, 1.0, 0.0]) - y) / 4)
    np.testing.assert_array_equal(p, [1.0, 0.0, 1.0, 0.0])
    # row 0: right class at 1000, loss 0; row 1: label 2 has logit 0, max is 1000
    assert ce_value == (0 + 1000) / 2
    np.testing.assert_array_equal(P, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(ce_grad, (P - np.eye(3)[labels]) / 2)


# ---------------------------------------------------------------------------
# The full objective (data loss + (l2/2)||W||^2) against finite differences
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("model, y, data_loss", [
    (lin.LinearRegression(input_dim=3, output_dim=2, l2=0.3), np.arange(14.0).reshape(7, 2),
     lin.mse_loss),
    (log.LogisticRegression(input_dim=3, l2=0.3), np.array([0, 1, 1, 0, 1, 0, 0]),
     log.binary_cross_entropy_with_logits),
    (log.SoftmaxRegression(input_dim=3, n_classes=4, l2=0.3), np.array([0, 1, 3, 2, 1, 0, 3]),
     log.softmax_cross_entropy),
], ids=["linear", "logistic", "softmax"])
def test_objective_gradient_including_l2(model, y, data_loss):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 3))
    model.b = rng.standard_normal(model.b.shape)  # b != 0: a penalised bias would show
    grads = model.gradients(X, y)
    for name in ("W", "b"):
        numeric = numerical_gradient(lambda: model.loss(X, y), model.params[name])
        assert_close(grads[name], numeric, FINITE_DIFF, name=f"dJ/d{name}")
    # J = data loss + (l2/2)||W||^2, the bias unpenalised
    expected = data_loss(model.forward(X), y)[0] + 0.5 * 0.3 * np.sum(model.W**2)
    assert_close(model.loss(X, y), expected, FLOAT64, name="J")


# ---------------------------------------------------------------------------
# Property tests of the stable building blocks
# ---------------------------------------------------------------------------

float_dtypes = st.sampled_from([np.float32, np.float64])


@few_examples
@given(dtype=float_dtypes, data=st.data())
def test_sigmoid_properties(dtype, data):
    z = data.draw(hnp.arrays(dtype, hnp.array_shapes(max_dims=3, max_side=5),
                             elements=st.floats(-1e4, 1e4, width=32)))
    with np.errstate(all="raise"):
        p, q = log.sigmoid(z), log.sigmoid(-z)
    assert p.shape == z.shape and p.dtype == dtype
    assert np.all((p >= 0) & (p <= 1))
    tol = FLOAT32 if dtype == np.float32 else FLOAT64
    assert_close(p + q, np.ones_like(p), tol, name="sigmoid(z) + sigmoid(-z)")
    # a difference of two terms each >= log 2: its rounding error scales with them, not
    # with the (possibly tiny) z, so the float32 tolerance is scaled by their size
    terms = float(np.log(2.0) + np.sqrt(np.mean(np.square(z, dtype=np.float64))))
    assert_close(log.softplus(z) - log.softplus(-z), z, tol, name="softplus(z) - softplus(-z)",
                 scale=terms)


@few_examples
@given(dtype=float_dtypes, data=st.data(), scale=st.sampled_from([1.0, 1e3, 1e30]))
def test_softmax_properties(dtype, data, scale):
    Z = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                             elements=st.floats(-1, 1, width=32)))
    Z = (Z * scale).astype(dtype)  # huge logits must not overflow
    with np.errstate(all="raise"):
        P = log.softmax(Z)
        lse = log.logsumexp(Z)
    assert P.shape == Z.shape and P.dtype == dtype
    assert np.all(P >= 0)
    tol = FLOAT32 if dtype == np.float32 else FLOAT64
    assert_close(P.sum(axis=1), np.ones(Z.shape[0], dtype), tol, name="row sums")
    assert np.all(lse >= Z.max(axis=1)) and np.all(np.isfinite(lse))
    # shifting a row by a constant changes nothing (the reason the max can be subtracted)
    if scale == 1.0:
        assert_close(log.softmax(Z + dtype(3)), P, tol, name="shift invariance")
        assert_close(lse, torch.logsumexp(torch.from_numpy(Z), dim=1), tol, name="logsumexp")


@few_examples
@given(n=st.integers(1, 6), d=st.integers(1, 4), k=st.integers(2, 4), dtype=float_dtypes)
def test_model_output_shapes_and_dtypes(n, d, k, dtype):
    X = np.random.default_rng(n).standard_normal((n, d)).astype(dtype)
    linear = lin.LinearRegression(input_dim=d)
    binary = log.LogisticRegression(input_dim=d)
    multi = log.SoftmaxRegression(input_dim=d, n_classes=k)
    assert linear.predict(X).shape == (n,) and linear.predict(X).dtype == dtype
    assert binary.decision_function(X).shape == (n,)
    assert binary.predict_proba(X).shape == (n, 2) and binary.predict_proba(X).dtype == dtype
    assert multi.predict_proba(X).shape == (n, k) and multi.predict_proba(X).dtype == dtype
    assert binary.predict(X).dtype == np.int64 and multi.predict(X).dtype == np.int64
    tol = FLOAT32 if dtype == np.float32 else FLOAT64
    assert_close(binary.predict_proba(X).sum(1), np.ones(n, dtype), tol)
    assert_close(multi.predict_proba(X).sum(1), np.ones(n, dtype), tol)


# ---------------------------------------------------------------------------
# Solutions equal scikit-learn's
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [0.0, 3.0], ids=["standardised", "uncentred"])
def test_normal_equation_equals_sklearn_linear_regression(diabetes, shift):
    # the loader standardises the features; shifted, they test the intercept's formula
    X, y = diabetes.X_train + shift, diabetes.y_train
    X_test = diabetes.X_test + shift
    ours = lin.LinearRegression().fit(X, y)
    ref = linear_model.LinearRegression().fit(X, y)
    assert_close(ours.W[:, 0], ref.coef_, SKLEARN_SOLUTION, name="W")
    assert_close(ours.b, [ref.intercept_], SKLEARN_SOLUTION, name="b")
    assert_close(ours.predict(X_test), ref.predict(X_test), SKLEARN_SOLUTION)
    assert_close(ours.score(X_test, diabetes.y_test),
                 ref.score(X_test, diabetes.y_test), SKLEARN_SOLUTION, name="R^2")


def test_multi_output_normal_equation_equals_sklearn(diabetes):
    X = diabetes.X_train
    Y = np.column_stack([diabetes.y_train, X[:, 0] - 2 * X[:, 3]])  # (N, 2)
    ours = lin.LinearRegression().fit(X, Y)
    ref = linear_model.LinearRegression().fit(X, Y)
    assert ours.predict(X).shape == Y.shape
    assert_close(ours.W, ref.coef_.T, SKLEARN_SOLUTION, name="W")
    assert_close(ours.b, ref.intercept_, SKLEARN_SOLUTION, name="b")
    assert_close(ours.score(X, Y), ref.score(X, Y), SKLEARN_SOLUTION, name="R^2")


def test_collinear_features_give_the_minimum_norm_solution(diabetes):
    X = np.column_stack([diabetes.X_train, diabetes.X_train[:, 2]])  # column 10 == column 2
    y = diabetes.y_train
    ours = lin.LinearRegression().fit(X, y)
    ref = linear_model.LinearRegression().fit(X, y)
    assert np.all(np.isfinite(ours.W))
    assert_close(ours.W[:, 0], ref.coef_, SKLEARN_SOLUTION, name="W")
    assert_close(ours.b, [ref.intercept_], SKLEARN_SOLUTION, name="b")
    # minimum norm splits the weight of the duplicated feature equally between the copies
    assert_close(ours.W[2], ours.W[10], SKLEARN_SOLUTION, name="weights of the two copies")
    single = lin.LinearRegression().fit(diabetes.X_train, y)
    assert_close(ours.W[2] + ours.W[10], single.W[2], SKLEARN_SOLUTION)


def test_constant_feature_gets_zero_weight(diabetes):
    X = np.column_stack([diabetes.X_train, np.full(len(diabetes.X_train), 0.1)])
    y = diabetes.y_train
    for l2 in (0.0, 0.01):
        with np.errstate(all="raise"):
            model = lin.LinearRegression(l2=l2).fit(X, y)
        without = lin.LinearRegression(l2=l2).fit(diabetes.X_train, y)
        assert abs(model.W[-1, 0]) < 1e-10, "a feature that never varies explains nothing"
        assert_close(model.W[:-1], without.W, SKLEARN_SOLUTION, name="other weights")
        assert_close(model.b, without.b, SKLEARN_SOLUTION, name="b")


@pytest.mark.parametrize("l2", [1e-3, 0.1])
def test_ridge_equals_sklearn_ridge(diabetes, l2):
    X, y = diabetes.X_train, diabetes.y_train
    ours = lin.LinearRegression(l2=l2).fit(X, y)
    ref = linear_model.Ridge(alpha=len(X) * l2).fit(X, y)  # alpha = N * l2
    assert_close(ours.W[:, 0], ref.coef_, SKLEARN_SOLUTION, name="W")
    assert_close(ours.b, [ref.intercept_], SKLEARN_SOLUTION, name="b")


@pytest.mark.parametrize("l2", [1e-3, 1e-2])
def test_newton_equals_sklearn_logistic_regression(breast_cancer, l2):
    X, y = breast_cancer.X_train, breast_cancer.y_train
    ours = log.LogisticRegression(solver="newton", epochs=50, l2=l2).fit(X, y)
    C = 1.0 / (len(X) * l2)  # sklearn minimises C sum_i logloss_i + ||w||^2 / 2
    exact = linear_model.LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12,
                                            max_iter=1000).fit(X, y)
    assert_close(ours.W[:, 0], exact.coef_[0], SKLEARN_SOLUTION, name="W vs newton-cholesky")
    assert_close(ours.b, exact.intercept_, SKLEARN_SOLUTION, name="b vs newton-cholesky")
    assert_close(ours.predict_proba(X), exact.predict_proba(X), SKLEARN_SOLUTION)
    np.testing.assert_array_equal(ours.predict(X), exact.predict(X))
    if l2 == 1e-2:
        lbfgs = linear_model.LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
        assert_close(ours.W[:, 0], lbfgs.coef_[0], SKLEARN_LBFGS, name="W vs lbfgs")
        assert_close(ours.b, lbfgs.intercept_, SKLEARN_LBFGS, name="b vs lbfgs")
    # Newton converges quadratically: a handful of iterations, a gradient at rounding level
    assert len(ours.history) < 20
    assert np.all(np.diff(ours.history) <= 0)
    assert np.max(np.abs(ours.gradients(X, y)["W"])) < 1e-12


def test_softmax_gd_equals_sklearn_multinomial(iris):
    X, y = iris.X_train, iris.y_train
    l2 = 1e-2
    ours = log.SoftmaxRegression(solver="gd", lr=2.0, epochs=1500, l2=l2, momentum=0.0,
                                 tol=0.0).fit(X, y)
    ref = linear_model.LogisticRegression(C=1.0 / (len(X) * l2), solver="newton-cholesky",
                                          tol=1e-12, max_iter=1000).fit(X, y)
    # softmax is unchanged by adding a constant to every b_k; compare centred biases
    assert_close(ours.W, ref.coef_.T, SKLEARN_SOLUTION, name="W")
    assert_close(ours.b, ref.intercept_ - ref.intercept_.mean(), SKLEARN_SOLUTION, name="b")
    assert_close(ours.predict_proba(iris.X_test), ref.predict_proba(iris.X_test),
                 SKLEARN_SOLUTION, name="probabilities")
    assert abs(ours.b.sum()) < 1e-12, "gd keeps the bias centred"


# ---------------------------------------------------------------------------
# Iterative solvers reach the closed form; separable data
# ---------------------------------------------------------------------------


def _well_conditioned_problem(noise: float):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0, 0.0]) + 0.7 + noise * rng.standard_normal(200)
    return X, y


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_gradient_descent_reaches_the_normal_equation(l2):
    X, y = _well_conditioned_problem(noise=0.5)
    exact = lin.LinearRegression(l2=l2).fit(X, y)
    gd = lin.LinearRegression(solver="gd", lr=0.5, epochs=300, l2=l2).fit(X, y)
    assert_close(gd.W, exact.W, Tol(rtol=1e-6, atol=1e-6), name="gd W")
    assert_close(gd.b, exact.b, Tol(rtol=1e-6, atol=1e-6), name="gd b")
    history = np.array(gd.history)
    # full-batch gd with a small enough step never goes up (up to rounding at the optimum)
    assert np.all(np.diff(history) <= 1e-12 * history[1:])
    assert_close(gd.history[-1], exact.loss(X, y), Tol(rtol=1e-10, atol=1e-10))


def test_sgd_reaches_the_normal_equation():
    # Without noise the optimum fits every example, so every mini-batch gradient
    # vanishes there and constant-step SGD converges exactly (no noise floor).
    X, y = _well_conditioned_problem(noise=0.0)
    exact = lin.LinearRegression().fit(X, y)
    sgd = lin.LinearRegression(solver="sgd", lr=0.05, epochs=60, batch_size=16).fit(X, y)
    assert_close(sgd.W, exact.W, Tol(rtol=1e-6, atol=1e-6), name="sgd W")
    assert_close(sgd.b, exact.b, Tol(rtol=1e-6, atol=1e-6), name="sgd b")
    again = lin.LinearRegression(solver="sgd", lr=0.05, epochs=60, batch_size=16).fit(X, y)
    np.testing.assert_array_equal(sgd.W, again.W)  # seeded: bit-for-bit reproducible


def _separable_data():
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(-3, 1, (20, 2)), rng.normal(3, 1, (20, 2))])
    return X, np.repeat([0, 1], 20)


def test_separable_data_without_penalty_pushes_weights_to_infinity():
    X, y = _separable_data()
    model = log.LogisticRegression(solver="gd", lr=0.5, epochs=100, momentum=0.0, tol=0.0)
    norms, losses = [], []
    for _ in range(4):  # fit continues from the current weights
        model.fit(X, y)
        assert np.all(np.diff(model.history) < 0), "loss must keep decreasing"
        norms.append(np.linalg.norm(model.W))
        losses.append(model.history[-1])
    assert np.all(np.diff(norms) > 0), f"||W|| should keep growing, got {norms}"
    assert losses[-1] < losses[0] / 2 and losses[-1] < 1e-2
    assert model.score(X, y) == 1.0


def test_separable_data_with_penalty_converges_to_a_finite_optimum():
    X, y = _separable_data()
    newton = log.LogisticRegression(solver="newton", epochs=50, l2=0.01).fit(X, y)
    assert np.max(np.abs(newton.gradients(X, y)["W"])) < 1e-12
    # the bias direction is flat near the optimum (confident points carry little
    # curvature p(1 - p)), so gd needs a large step to get there in few epochs
    gd = log.LogisticRegression(solver="gd", lr=4.0, epochs=1000, l2=0.01, momentum=0.0,
                                tol=0.0).fit(X, y)
    assert_close(gd.W, newton.W, Tol(rtol=1e-6, atol=1e-6), name="gd W")
    assert_close(gd.b, newton.b, Tol(rtol=1e-6, atol=1e-6), name="gd b")
    assert np.linalg.norm(newton.W) < 10


def test_extreme_logits_in_a_model_are_silent():
    model = log.LogisticRegression(input_dim=1)
    model.W[:] = 1000.0
    X, y = np.array([[1.0], [-1.0], [1.0]]), np.array([1, 0, 0])
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = model.predict_proba(X)
        loss = model.loss(X, y)
        grads = model.gradients(X, y)
    np.testing.assert_array_equal(proba, [[0, 1], [1, 0], [0, 1]])
    assert loss == 1000.0 / 3 + 0.0  # only the third example is (certainly) wrong
    np.testing.assert_array_equal(grads["W"], [[1.0 / 3]])


# ---------------------------------------------------------------------------
# Dtypes and bad input
# ---------------------------------------------------------------------------


def test_float32_stays_float32_and_integers_become_float64(breast_cancer):
    X32 = breast_cancer.X_train.astype(np.float32)
    y = breast_cancer.y_train
    for model in (lin.LinearRegression(), lin.LinearRegression(solver="sgd", epochs=2),
                  log.LogisticRegression(epochs=5),
                  log.LogisticRegression(solver="newton", epochs=5),
                  log.SoftmaxRegression(epochs=5)):
        model.fit(X32, y)
        assert model.W.dtype == np.float32 and model.b.dtype == np.float32
        out = model.predict_proba(X32) if hasattr(model, "predict_proba") else model.predict(X32)
        assert out.dtype == np.float32
    ints = lin.LinearRegression().fit(np.arange(12).reshape(6, 2) % 5, np.arange(6))
    assert ints.W.dtype == np.float64


@pytest.mark.parametrize("make", [lin.LinearRegression, log.LogisticRegression,
                                  log.SoftmaxRegression])
def test_bad_input_raises_clear_errors(make):
    X, y = np.random.default_rng(6).standard_normal((6, 3)), np.array([0, 1, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="call fit"):
        make().predict(X)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        make().fit(X[:, 0], y)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        make().fit(X, y[:5])
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make().fit(bad, y)
    model = make().fit(X, y)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match="unknown solver"):
        make(solver="adam")
    with pytest.raises(ValueError, match="lr must be"):
        make(lr=0.0)


def test_bad_labels_and_targets():
    X = np.random.default_rng(7).standard_normal((4, 2))
    with pytest.raises(ValueError, match="labels 0 or 1"):
        log.LogisticRegression().fit(X, [0, 1, 2, 1])
    with pytest.raises(ValueError, match="integer class labels"):
        log.SoftmaxRegression().fit(X, [0, 1, 0.5, 1])
    with pytest.raises(ValueError, match=r"labels in 0\.\.2"):
        log.SoftmaxRegression(n_classes=3).fit(X, [0, 1, 3, 1])
    with pytest.raises(ValueError, match="NaN or inf"):
        lin.LinearRegression().fit(X, [0.0, np.inf, 1.0, 2.0])
    with pytest.raises(ValueError, match="integers in 0..2"):
        log.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="same shape"):
        lin.mse_loss(np.zeros(3), np.zeros((3, 1)))


# ---------------------------------------------------------------------------
# Training really shuffles; fit runs to a tolerance and says when it did not
# ---------------------------------------------------------------------------


def record_batches(model, X):
    """Make ``model`` record the rows of every mini-batch it takes a step on."""
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}  # column 0 identifies the row
    batches: list[list[int]] = []
    take_step = model._gradients

    def spy(X_batch, y_batch):
        batches.append([row_of[float(v)] for v in X_batch[:, 0]])
        return take_step(X_batch, y_batch)

    model._gradients = spy
    return batches


@pytest.mark.parametrize("make", [
    lambda seed: lin.LinearRegression(solver="sgd", epochs=3, batch_size=5, seed=seed),
    lambda seed: log.LogisticRegression(solver="sgd", epochs=3, batch_size=5, seed=seed),
    lambda seed: log.SoftmaxRegression(solver="sgd", epochs=3, batch_size=5, seed=seed),
], ids=["linear", "logistic", "softmax"])
def test_sgd_visits_the_data_in_a_new_seeded_order_every_epoch(make):
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((20, 3)), np.arange(20) % 2
    orders = []
    for seed in (0, 0, 1):
        model = make(seed)
        batches = record_batches(model, X)
        model.fit(X, y)
        assert [len(b) for b in batches] == [5] * 12, "4 batches of 5 in each of 3 epochs"
        epochs = [sum(batches[4 * e:4 * e + 4], []) for e in range(3)]
        for order in epochs:
            assert sorted(order) == list(range(20)), "each epoch visits every row once"
        assert epochs[0] != list(range(20)), "the first epoch is shuffled too"
        assert epochs[0] != epochs[1] != epochs[2], "a new order every epoch"
        orders.append(epochs)
    assert orders[0] == orders[1], "the same seed gives the same batches"
    assert orders[0] != orders[2], "another seed gives other batches"


def digits_over_16():
    """The 8x8 digits as a new user loads them: pixels / 16, first 1400 to train."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    return X[:1400], y[:1400], X[1400:], y[1400:]


def test_default_fit_converges_to_scikit_learns_accuracy():
    # A new user's first call. scikit-learn's defaults score 0.907 here (with its C=1
    # penalty); ours (no penalty) must converge, silently, to about as good a model.
    X, y, X_test, y_test = digits_over_16()
    reference = linear_model.LogisticRegression().fit(X, y).score(X_test, y_test)
    with warnings.catch_warnings(), limit_blas_threads(1):
        warnings.simplefilter("error", log.ConvergenceWarning)
        model = log.SoftmaxRegression().fit(X, y)
    assert model.n_iter_ < model.epochs
    assert max(np.max(np.abs(g)) for g in model.gradients(X, y).values()) <= model.tol
    assert model.score(X_test, y_test) >= reference - 0.01


@pytest.mark.parametrize("make", [log.LogisticRegression, log.SoftmaxRegression])
def test_hitting_the_epoch_cap_warns_and_tol_zero_runs_every_epoch(make, breast_cancer):
    X, y = breast_cancer.X_train, breast_cancer.y_train
    with pytest.warns(log.ConvergenceWarning, match="did not converge in 3 epochs"):
        model = make(epochs=3).fit(X, y)
    assert model.n_iter_ == 3 and len(model.history) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", log.ConvergenceWarning)
        model = make(epochs=3, tol=0.0).fit(X, y)
    assert model.n_iter_ == 3
    with pytest.warns(log.ConvergenceWarning, match="newton did not converge in 1 iter"):
        log.LogisticRegression(solver="newton", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="tol must be"):
        make(tol=-1.0)
    with pytest.raises(ValueError, match="momentum must be"):
        make(momentum=1.0)


def test_momentum_is_torch_optim_sgds_rule():
    # v <- momentum v + g, theta <- theta - lr v, with v = g at the first step
    X, y = np.random.default_rng(9).standard_normal((12, 3)), np.arange(12) % 3
    model = log.SoftmaxRegression(input_dim=3, n_classes=3, lr=0.3, momentum=0.5, epochs=2,
                                  tol=0.0)
    W, b = model.W.copy(), model.b.copy()
    g1 = model.gradients(X, y)
    W1, b1 = W - 0.3 * g1["W"], b - 0.3 * g1["b"]
    model.W, model.b = W1, b1
    g2 = model.gradients(X, y)
    W2 = W1 - 0.3 * (0.5 * g1["W"] + g2["W"])
    model.W, model.b = W, b
    model.fit(X, y)
    assert_close(model.W, W2, FLOAT64, name="W after two steps with momentum")


# ---------------------------------------------------------------------------
# The scripts: a few epochs on their offline data, and their options
# ---------------------------------------------------------------------------


def test_linear_script_runs_on_diabetes(tmp_path):
    metrics = train_lin.main(["--out", str(tmp_path), "--no-progress", "--epochs", "30"])
    # 0.33 is what ordinary least squares (scikit-learn's too) scores on the loader's
    # default split (seed 0); other split seeds give 0.42-0.53.
    assert metrics["test_r2"] > 0.3
    assert 0 < metrics["iterative_test_r2"] <= metrics["test_r2"] + 0.02
    assert 2000 < metrics["test_mse"] < 4000
    assert (tmp_path / "loss.png").is_file()


@pytest.mark.parametrize("dataset, classes, options", [
    ("breast_cancer", 2, ["--epochs", "5"]),
    ("digits", 10, ["--epochs", "2"]),
    ("iris", 3, ["--epochs", "5"]),
    ("breast_cancer", 2, ["--solver", "newton", "--epochs", "3"]),
])
def test_logistic_script_runs_a_few_epochs(tmp_path, dataset, classes, options):
    metrics = train_log.main(["--dataset", dataset, "--out", str(tmp_path), "--no-progress",
                        *options])
    # better than the trivial model after a few epochs: the uniform prediction has
    # loss log K (plus the small penalty) and accuracy about 1 / K
    assert metrics["final_loss"] < 0.8 * np.log(classes)
    assert metrics["train_accuracy"] > 1.5 / classes
    assert metrics["test_accuracy"] > 1.5 / classes
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "confusion.png").is_file()
    assert (tmp_path / "weights.png").is_file() == (dataset == "digits")


@pytest.mark.parametrize("script, options, option", [
    (train_lin, ["--epochs", "0"], "--epochs"),
    (train_lin, ["--l2", "-1"], "--l2"),
    (train_lin, ["--lr", "nan"], "--lr"),
    (train_log, ["--batch-size", "0"], "--batch-size"),
    (train_log, ["--l2", "-0.1"], "--l2"),
    (train_log, ["--decay-epochs", "-1"], "--decay-epochs"),
    (train_log, ["--device", "cuda"], "--device"),
])
def test_scripts_reject_bad_options_naming_them(tmp_path, capsys, script, options, option):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--out", str(tmp_path), "--no-progress", *options])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("script", [train_lin, train_log], ids=["linear", "logistic"])
def test_script_help_shows_every_default(capsys, script):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default: None" not in text and "per dataset:" in text


@pytest.mark.slow
def test_softmax_regression_on_real_mnist(tmp_path, shared_data):
    metrics = train_log.main(["--dataset", "mnist", "--data-root", str(shared_data),
                        "--out", str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.92
