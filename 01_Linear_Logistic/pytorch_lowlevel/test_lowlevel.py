"""Tests of lesson 01, Level 2: every hand-written piece against its PyTorch / scikit-learn twin.

- forward pass  == F.linear and nn.Linear with the same (transposed) weights
- each loss and its autograd gradient == F.mse_loss / F.binary_cross_entropy_with_logits /
  F.cross_entropy, in float64 and float32, also at logits of +-1000 and exactly 0
- sgd_step == torch.optim.SGD (momentum, weight decay) over 20 steps
- normal equation == scikit-learn's LinearRegression / Ridge; gd and sgd reach it
- logistic / softmax regression fitted by gd == scikit-learn's LogisticRegression
- bad input gives ValueError (or RuntimeError before fit) with a clear message
- the level's purity rule; the scripts reach their targets on the default data

Run: .venv/bin/python -m pytest 01_Linear_Logistic/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import import_lesson
from utils.testing import (
    EPS32,
    FLOAT32_SAFETY,
    FLOAT64,
    SKLEARN_SOLUTION,
    Tol,
    assert_close,
    assert_level_purity,
    tolerance,
)

lin = import_lesson("01_Linear_Logistic.pytorch_lowlevel.linear_lowlevel")
log = import_lesson("01_Linear_Logistic.pytorch_lowlevel.logistic_lowlevel")
train_lin = import_lesson("01_Linear_Logistic.pytorch_lowlevel.train_linear")
train_log = import_lesson("01_Linear_Logistic.pytorch_lowlevel.train_logistic")

DTYPES = [torch.float64, torch.float32]
# An iterative solver stopped after a fixed number of steps is compared with an exact
# optimum to this tolerance (gradient descent converges linearly; these problems are
# well conditioned, so the leftover error after the steps below is far smaller).
ITERATIVE_SOLUTION = Tol(rtol=1e-6, atol=1e-6)


pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),  # small tensors: one CPU thread
    # many tests fit for a few epochs on purpose; the warning's own tests use pytest.warns
    pytest.mark.filterwarnings("ignore:.*did not converge"),
]


def _regression_data(n=60, d=4, k=None, seed=0, noise=0.1):
    """X (n, d) float64, y (n,) or (n, k) from a random linear map plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k or 1))
    y = X @ W + rng.standard_normal(k or 1) + noise * rng.standard_normal((n, k or 1))
    return X, (y[:, 0] if k is None else y)


def _classification_data(n=80, d=3, k=2, seed=0):
    """Overlapping Gaussian classes (not separable, so the unpenalised optimum is finite)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.standard_normal((n, d)) + 0.8 * rng.standard_normal((k, d))[y]
    return X, y.astype(np.int64)


# --------------------------------------------------------------------------------------
# The rule of the level
# --------------------------------------------------------------------------------------


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# Forward pass and losses against torch.nn / torch.nn.functional
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_forward_equals_nn_linear(dtype, device):
    torch.manual_seed(0)
    X = torch.randn(7, 5, dtype=dtype, device=device)
    W = torch.randn(5, 3, dtype=dtype, device=device)
    b = torch.randn(3, dtype=dtype, device=device)
    layer = nn.Linear(5, 3).to(dtype=dtype, device=device)
    with torch.no_grad():
        layer.weight.copy_(W.T)  # nn.Linear stores (K, D); our W is (D, K)
        layer.bias.copy_(b)
    tol = tolerance(dtype, device)
    for module in (lin, log):
        out = module.linear_forward(X, W, b)
        assert_close(out, F.linear(X, W.T, b), tol, name="X W + b vs F.linear")
        assert_close(out, layer(X), tol, name="X W + b vs nn.Linear")


def _value_and_grad(loss_fn, inputs, target):
    """loss(inputs, target) and d loss / d inputs."""
    x = inputs.clone().requires_grad_(True)
    value = loss_fn(x, target)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [None, 3])
def test_mse_loss_and_gradient_equal_torch(dtype, k, device):
    torch.manual_seed(1)
    shape = (9,) if k is None else (9, k)
    y_hat = torch.randn(shape, dtype=dtype, device=device)
    y = torch.randn(shape, dtype=dtype, device=device)
    ours = _value_and_grad(lin.mse_loss, y_hat, y)
    # J = 1/(2N) sum_i ||.||^2; F.mse_loss averages over all N*K numbers, hence "sum" / N
    reference = _value_and_grad(
        lambda a, t: 0.5 * F.mse_loss(a, t, reduction="sum") / t.shape[0], y_hat, y)
    tol = tolerance(dtype, device)
    assert_close(ours[0], reference[0], tol, name="J")
    assert_close(ours[1], reference[1], tol, name="dJ/dy_hat")
    if k is None:  # with one output it is exactly half of the mean squared error
        assert_close(ours[0], 0.5 * F.mse_loss(y_hat, y), tol, name="J vs 0.5 * mse")
    # and the gradient the L1 level writes by hand: (y_hat - y) / N
    assert_close(ours[1], (y_hat - y) / 9, tol, name="dJ/dy_hat vs formula")


LOGITS = [-1000.0, -35.0, -3.0, -1e-3, 0.0, 0.0, 1e-3, 2.5, 35.0, 1000.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_and_gradient_equal_torch(dtype, device):
    z = torch.tensor(LOGITS, dtype=dtype, device=device)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 1, 0, 0, 1], dtype=dtype, device=device)
    ours = _value_and_grad(log.binary_cross_entropy_with_logits, z, y)
    reference = _value_and_grad(F.binary_cross_entropy_with_logits, z, y)
    tol = tolerance(dtype, device)
    assert torch.isfinite(ours[0]) and torch.isfinite(ours[1]).all()
    assert_close(ours[0], reference[0], tol, name="mean BCE")
    assert_close(ours[1], reference[1], tol, name="dJ/dz")
    # at z = 0 the gradient is (1/2 - y)/N, not the (1 - y)/N or -y/N of a kinked max/abs form
    assert_close(ours[1][4:6], (0.5 - y[4:6]) / len(LOGITS), tol, name="dJ/dz at z = 0")


def test_binary_cross_entropy_values_at_extreme_logits():
    z = torch.tensor([-1000.0, 1000.0, -1000.0, 1000.0], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    per_example = [log.binary_cross_entropy_with_logits(z[i:i + 1], y[i:i + 1]) for i in range(4)]
    # right and sure: loss 0; wrong and sure: loss |z| = 1000 (never inf, never nan)
    assert_close(torch.stack(per_example), torch.tensor([0.0, 0.0, 1000.0, 1000.0],
                                                        dtype=torch.float64), FLOAT64)
    assert_close(log.sigmoid(z), torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64), FLOAT64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_and_gradient_equal_torch(dtype, device):
    torch.manual_seed(2)
    logits = torch.randn(6, 4, dtype=dtype, device=device) * 3
    logits[0] = torch.tensor([1000.0, -1000.0, 0.0, 999.0])  # huge logits: no overflow
    logits[1] = torch.tensor([-1000.0, -1000.0, -1000.0, -1000.0])
    y = torch.tensor([3, 0, 2, 1, 1, 0], device=device)
    ours = _value_and_grad(log.softmax_cross_entropy, logits, y)
    reference = _value_and_grad(F.cross_entropy, logits, y)
    tol = tolerance(dtype, device)
    if dtype == torch.float32:
        # log-sum-exp at logits of 1000 rounds to float32's spacing there (6e-5): each
        # probability carries a relative error of ~eps32 * 1000, not eps32 * sqrt(K)
        tol = Tol(rtol=FLOAT32_SAFETY * EPS32 * 1000, atol=0.0, scaled=True)
    assert torch.isfinite(ours[0]) and torch.isfinite(ours[1]).all()
    assert_close(ours[0], reference[0], tol, name="softmax cross-entropy")
    assert_close(ours[1], reference[1], tol, name="dJ/dZ")
    onehot = F.one_hot(y, 4).to(dtype)
    assert_close(ours[1], (torch.softmax(logits, 1) - onehot) / 6, tol, name="dJ/dZ vs formula")
    assert_close(log.softmax(logits), torch.softmax(logits, 1), tol, name="softmax")


# --------------------------------------------------------------------------------------
# The optimiser step against torch.optim.SGD
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [lin, log], ids=["linear_lowlevel", "logistic_lowlevel"])
@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01)])
def test_sgd_step_equals_torch_optim_sgd(module, momentum, weight_decay, device):
    torch.manual_seed(3)
    X = torch.randn(16, 5, dtype=torch.float64, device=device)
    y = torch.randn(16, 2, dtype=torch.float64, device=device)
    start = [torch.randn(5, 2, dtype=torch.float64, device=device),
             torch.randn(2, dtype=torch.float64, device=device)]
    ours = [p.clone().requires_grad_(True) for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    optimizer = torch.optim.SGD(theirs, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    state = None
    for step in range(20):
        rows = slice((step % 4) * 4, (step % 4) * 4 + 4)  # a different batch each step

        module.zero_grad(ours)
        ((X[rows] @ ours[0] + ours[1] - y[rows]) ** 2).mean().backward()
        state = module.sgd_step(ours, 0.05, momentum=momentum, weight_decay=weight_decay,
                                state=state)

        optimizer.zero_grad()
        ((X[rows] @ theirs[0] + theirs[1] - y[rows]) ** 2).mean().backward()
        optimizer.step()
    for name, a, b in zip(("W", "b"), ours, theirs):
        assert_close(a, b, FLOAT64, name=f"{name} after 20 steps")
    assert not torch.equal(ours[0], start[0])  # it did move


def test_sgd_step_skips_parameters_without_gradient_and_checks_arguments():
    p = torch.ones(3, requires_grad=True)
    lin.sgd_step([p], lr=0.1)  # p.grad is None: nothing to do
    assert torch.equal(p, torch.ones(3))
    with pytest.raises(ValueError, match="lr must be > 0"):
        lin.sgd_step([p], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        log.sgd_step([p], lr=0.1, momentum=1.0)


# --------------------------------------------------------------------------------------
# Linear regression: closed form and iterative solvers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [None, 2])
def test_normal_equation_equals_sklearn_linear_regression(k):
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    X, y = _regression_data(k=k)
    model = lin.LinearRegression(solver="normal").fit(X, y)
    reference = SkLinearRegression().fit(X, y)
    assert_close(model.W, reference.coef_.reshape(-1, X.shape[1]).T, SKLEARN_SOLUTION, name="W")
    assert_close(model.b, np.atleast_1d(reference.intercept_), SKLEARN_SOLUTION, name="b")
    assert_close(model.predict(X), reference.predict(X), SKLEARN_SOLUTION, name="predictions")
    assert math.isclose(model.score(X, y), reference.score(X, y), rel_tol=1e-10)


def test_normal_equation_minimum_norm_with_collinear_and_constant_features():
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    X, y = _regression_data(n=30, d=3)
    X = np.column_stack([X, 2 * X[:, 0] - X[:, 1], np.full(30, 4.0)])  # rank-deficient
    model = lin.LinearRegression().fit(X, y)
    reference = SkLinearRegression().fit(X, y)
    assert np.all(np.isfinite(lin.to_float_tensor(model.W, name="W").numpy()))
    assert_close(model.W[:, 0], reference.coef_, SKLEARN_SOLUTION, name="minimum-norm W")
    assert_close(model.predict(X), reference.predict(X), SKLEARN_SOLUTION, name="predictions")


@pytest.mark.parametrize("l2", [0.01, 0.5])
def test_normal_equation_with_l2_equals_sklearn_ridge(l2):
    from sklearn.linear_model import Ridge

    X, y = _regression_data(k=2)
    model = lin.LinearRegression(l2=l2).fit(X, y)
    reference = Ridge(alpha=len(X) * l2, solver="cholesky").fit(X, y)  # alpha = N * l2
    assert_close(model.W, reference.coef_.T, SKLEARN_SOLUTION, name="W")
    assert_close(model.b, reference.intercept_, SKLEARN_SOLUTION, name="b")


def test_gradient_descent_reaches_the_normal_equation():
    X, y = _regression_data(noise=0.3)
    exact = lin.LinearRegression(solver="normal", l2=0.05).fit(X, y)
    gd = lin.LinearRegression(solver="gd", lr=0.5, epochs=300, l2=0.05).fit(X, y)
    assert_close(gd.W, exact.W, ITERATIVE_SOLUTION, name="gd W")
    assert_close(gd.b, exact.b, ITERATIVE_SOLUTION, name="gd b")
    assert gd.history[0] > gd.history[-1]
    assert math.isclose(gd.history[-1], exact.loss(X, y), rel_tol=1e-10)


def test_sgd_reaches_the_exact_solution_of_a_noiseless_problem():
    # Without noise every example's gradient vanishes at the optimum, so constant-step
    # SGD converges to it exactly instead of jittering around it.
    X, y = _regression_data(noise=0.0)
    exact = lin.LinearRegression().fit(X, y)
    sgd = lin.LinearRegression(solver="sgd", lr=0.1, epochs=150, batch_size=8).fit(X, y)
    assert_close(sgd.W, exact.W, ITERATIVE_SOLUTION, name="sgd W")
    assert_close(sgd.b, exact.b, ITERATIVE_SOLUTION, name="sgd b")
    with_momentum = lin.LinearRegression(solver="sgd", lr=0.02, epochs=150, batch_size=8,
                                         momentum=0.9).fit(X, y)
    assert_close(with_momentum.W, exact.W, ITERATIVE_SOLUTION, name="sgd+momentum W")


def test_objective_gradient_equals_hand_derived_formula():
    X, y = _regression_data(k=2)
    model = lin.LinearRegression(input_dim=4, output_dim=2, l2=0.3, seed=5)
    model.objective(X, y).backward()
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(y)
    residual = Xt @ model.W.detach() + model.b.detach() - Yt  # (N, K)
    assert_close(model.W.grad, Xt.T @ residual / len(X) + 0.3 * model.W.detach(), FLOAT64,
                 name="dJ/dW = X^T (y_hat - y)/N + l2 W")
    assert_close(model.b.grad, residual.mean(0), FLOAT64, name="dJ/db = mean(y_hat - y)")


def test_float32_and_float64_both_work(device):
    X, y = _regression_data()
    m64 = lin.LinearRegression(device=device).fit(X, y)
    m32 = lin.LinearRegression(device=device).fit(X.astype(np.float32), y.astype(np.float32))
    assert m32.W.dtype == torch.float32 and m64.W.dtype == torch.float64
    assert m32.predict(X).dtype == torch.float32
    assert_close(m32.predict(X), m64.predict(X).float(), tolerance(torch.float32, device))
    # integer inputs become float64
    assert lin.LinearRegression().fit(np.arange(12).reshape(6, 2) % 5, np.arange(6)).W.dtype \
        == torch.float64


def test_predictions_are_the_same_on_every_device(device):
    X, y = _classification_data(k=3)
    cpu = log.SoftmaxRegression(solver="sgd", epochs=5, batch_size=16).fit(X, y)
    here = log.SoftmaxRegression(solver="sgd", epochs=5, batch_size=16, device=device).fit(X, y)
    assert_close(here.predict_proba(X), cpu.predict_proba(X), tolerance(torch.float64, device))


def test_same_seed_same_weights_different_seed_different_weights():
    X, y = _classification_data()
    a = log.LogisticRegression(solver="sgd", epochs=3, batch_size=8, seed=4).fit(X, y)
    b = log.LogisticRegression(solver="sgd", epochs=3, batch_size=8, seed=4).fit(X, y)
    c = log.LogisticRegression(solver="sgd", epochs=3, batch_size=8, seed=5).fit(X, y)
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    assert not torch.equal(a.W, c.W)


# --------------------------------------------------------------------------------------
# Logistic and softmax regression against scikit-learn
# --------------------------------------------------------------------------------------


def _sklearn_logistic(X, y, l2):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    # C = 1 / (N l2): sklearn minimises C sum_i loss_i + ||w||^2 / 2 = N C * (our J)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return SkLogisticRegression(C=1.0 / (len(X) * l2), tol=1e-12, max_iter=10_000).fit(X, y)


def test_binary_fit_equals_sklearn_logistic_regression():
    X, y = _classification_data(k=2)
    ours = log.LogisticRegression(solver="gd", lr=1.0, epochs=400, l2=0.1, momentum=0.0,
                                  tol=0.0).fit(X, y)
    reference = _sklearn_logistic(X, y, 0.1)
    assert_close(ours.W[:, 0], reference.coef_[0], ITERATIVE_SOLUTION, name="W")
    assert_close(ours.b, reference.intercept_, ITERATIVE_SOLUTION, name="b")
    assert_close(ours.predict_proba(X), reference.predict_proba(X), ITERATIVE_SOLUTION,
                 name="predict_proba")
    assert_close(ours.decision_function(X), reference.decision_function(X), ITERATIVE_SOLUTION)
    assert np.array_equal(ours.predict(X).numpy(), reference.predict(X))
    assert math.isclose(ours.score(X, y), reference.score(X, y))


def test_softmax_fit_equals_sklearn_multinomial_logistic_regression():
    X, y = _classification_data(k=3, n=90)
    ours = log.SoftmaxRegression(solver="gd", lr=1.0, epochs=500, l2=0.1, momentum=0.0,
                                 tol=0.0).fit(X, y)
    reference = _sklearn_logistic(X, y, 0.1)
    # softmax is unchanged by adding one vector to every class's weights; with l2 > 0 the
    # optimum is the one whose class weights sum to 0, and sklearn's is that one too
    assert_close(ours.W, reference.coef_.T, ITERATIVE_SOLUTION, name="W")
    assert_close(ours.b, reference.intercept_, ITERATIVE_SOLUTION, name="b")
    assert_close(ours.predict_proba(X), reference.predict_proba(X), ITERATIVE_SOLUTION,
                 name="predict_proba")
    assert np.array_equal(ours.predict(X).numpy(), reference.predict(X))


def test_logistic_objective_gradient_equals_hand_derived_formula():
    X, y = _classification_data(k=3)
    model = log.SoftmaxRegression(input_dim=3, n_classes=3, l2=0.2)
    model.objective(X, y).backward()
    Xt = torch.as_tensor(X)
    P = torch.softmax(Xt @ model.W.detach() + model.b.detach(), dim=1)
    dZ = (P - F.one_hot(torch.as_tensor(y), 3).double()) / len(X)  # (N, K)
    assert_close(model.W.grad, Xt.T @ dZ + 0.2 * model.W.detach(), FLOAT64, name="dJ/dW")
    assert_close(model.b.grad, dZ.sum(0), FLOAT64, name="dJ/db")


def test_predict_proba_shapes_and_consistency():
    X, y = _classification_data(k=2)
    model = log.LogisticRegression(epochs=20).fit(X, y)
    proba = model.predict_proba(X)
    assert_close(proba.sum(1), torch.ones(len(X), dtype=torch.float64), FLOAT64)
    assert_close(proba[:, 1], torch.sigmoid(model.decision_function(X)), FLOAT64)
    assert torch.equal(model.predict(X), (proba[:, 1] > 0.5).long())


# --------------------------------------------------------------------------------------
# Bad input: a clear error, never a deep traceback nor a silently wrong answer
# --------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors():
    X, y = _regression_data()
    with pytest.raises(ValueError, match=r"2-D array of shape \(N, D\)"):
        lin.LinearRegression().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="59 rows but X has 60"):
        lin.LinearRegression().fit(X, y[:-1])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf .* row 3, column 2"):
        lin.LinearRegression().fit(bad, y)
    with pytest.raises(ValueError, match="y: contains NaN"):
        lin.LinearRegression().fit(X, np.where(np.arange(60) == 5, np.inf, y))
    with pytest.raises(ValueError, match="X has 3 features, but the model was built for 4"):
        lin.LinearRegression().fit(X, y).predict(X[:, :3])
    with pytest.raises(RuntimeError, match="call fit"):
        lin.LinearRegression().predict(X)
    with pytest.raises(ValueError, match="solver must be one of"):
        lin.LinearRegression(solver="adam")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        lin.LinearRegression(lr=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        log.LogisticRegression(lr=-0.1)
    with pytest.raises(ValueError, match="must match"):  # (N, 1) vs (N,): no silent broadcast
        lin.mse_loss(torch.zeros(5, 1), torch.zeros(5))
    with pytest.raises(ValueError, match="expected real numbers"):
        lin.LinearRegression().fit(np.array([["a", "b"]]), [1.0])
    mismatched = lin.LinearRegression(4, 2)
    mismatched.b = np.zeros(1)  # would broadcast silently over the 2 outputs
    with pytest.raises(ValueError, match=r"W must be \(D, K\) and b \(K,\)"):
        mismatched.predict(X)

    Xc, yc = _classification_data(k=3)
    with pytest.raises(ValueError, match="labels 0 or 1"):
        log.LogisticRegression().fit(Xc, yc)
    with pytest.raises(ValueError, match="whole numbers"):
        log.SoftmaxRegression().fit(Xc, yc + 0.5)
    with pytest.raises(ValueError, match="negative"):
        log.SoftmaxRegression().fit(Xc, yc - 1)
    with pytest.raises(ValueError, match=r"0\.\.1 \(n_classes=2\)"):
        log.SoftmaxRegression(n_classes=2).fit(Xc, yc)
    with pytest.raises(RuntimeError, match="call fit"):
        log.SoftmaxRegression().predict(Xc)
    with pytest.raises(ValueError, match="X has 2 features"):
        log.SoftmaxRegression().fit(Xc, yc).predict_proba(Xc[:, :2])
    with pytest.raises(ValueError, match="solver must be one of"):
        log.SoftmaxRegression(solver="normal")


def test_diverging_learning_rate_is_reported():
    X, y = _regression_data()
    with pytest.raises(FloatingPointError, match="learning rate"):
        lin.LinearRegression(solver="gd", lr=1e3, epochs=200).fit(X * 100, y)


# --------------------------------------------------------------------------------------
# Training really shuffles; fit runs to a tolerance and says when it did not
# --------------------------------------------------------------------------------------


def record_batches(model, X):
    """Make ``model`` record the rows of every mini-batch it trains on (not the full-data
    evaluations at the end of each epoch)."""
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}  # column 0 identifies the row
    batches: list[list[int]] = []
    logits = model._logits

    def spy(X_batch):
        if len(X_batch) < len(X):
            batches.append([row_of[float(v)] for v in X_batch[:, 0]])
        return logits(X_batch)

    model._logits = spy
    return batches


@pytest.mark.parametrize("cls", [log.LogisticRegression, log.SoftmaxRegression])
def test_sgd_visits_the_data_in_a_new_seeded_order_every_epoch(cls):
    X, y = _classification_data(k=2, n=20)
    orders = []
    for seed in (0, 0, 1):
        model = cls(solver="sgd", epochs=3, batch_size=5, seed=seed, tol=0.0)
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


def test_default_fit_converges_to_scikit_learns_accuracy():
    # A new user's first call (see the L1 test): pixels / 16, the first 1400 digits to train.
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    reference = SkLogisticRegression().fit(X[:1400], y[:1400]).score(X[1400:], y[1400:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", log.ConvergenceWarning)
        model = log.SoftmaxRegression().fit(X[:1400], y[:1400])
    assert model.n_iter_ < model.epochs
    assert max(float(g.abs().max()) for g in model.gradients(X[:1400], y[:1400]).values()) \
        <= model.tol
    assert model.score(X[1400:], y[1400:]) >= reference - 0.01


@pytest.mark.parametrize("cls", [log.LogisticRegression, log.SoftmaxRegression])
def test_hitting_the_epoch_cap_warns_and_tol_zero_runs_every_epoch(cls):
    X, y = _classification_data(k=2)
    with pytest.warns(log.ConvergenceWarning, match="did not converge in 3 epochs"):
        model = cls(epochs=3).fit(X, y)
    assert model.n_iter_ == 3 and len(model.history) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", log.ConvergenceWarning)
        assert cls(epochs=3, tol=0.0).fit(X, y).n_iter_ == 3
    with pytest.raises(ValueError, match="tol must be"):
        cls(tol=-1.0)


# --------------------------------------------------------------------------------------
# The scripts: a few epochs on their offline data, and their options
# --------------------------------------------------------------------------------------


def test_linear_script_runs_on_diabetes(tmp_path):
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    from utils.data_loaders import load_arrays

    metrics = train_lin.main(["--out", str(tmp_path), "--no-progress", "--device", "cpu",
                        "--epochs", "5"])
    split = load_arrays("diabetes")
    reference = SkLinearRegression().fit(split.X_train, split.y_train)
    # The default split's test set is a hard one: ordinary least squares itself gets 0.33.
    assert math.isclose(metrics["test_r2"], reference.score(split.X_test, split.y_test),
                        rel_tol=1e-8)
    assert 0 < metrics["sgd_test_r2"] <= metrics["test_r2"] + 0.02
    assert (tmp_path / "loss.png").is_file()


@pytest.mark.parametrize("dataset, classes", [("breast_cancer", 2), ("digits", 10)])
def test_logistic_script_runs_a_few_epochs(tmp_path, dataset, classes):
    metrics = train_log.main(["--dataset", dataset, "--out", str(tmp_path), "--no-progress",
                        "--device", "cpu", "--epochs", "2"])
    # better than the trivial model: the uniform prediction has loss log K, accuracy ~1/K
    assert metrics["final_loss"] < 0.8 * math.log(classes)
    assert min(metrics["train_accuracy"], metrics["test_accuracy"]) > 1.5 / classes
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "confusion.png").is_file()


@pytest.mark.parametrize("script, options, option", [
    (train_lin, ["--epochs", "0"], "--epochs"),
    (train_lin, ["--l2", "-1"], "--l2"),
    (train_lin, ["--momentum", "1"], "--momentum"),
    (train_log, ["--batch-size", "-3"], "--batch-size"),
    (train_log, ["--lr", "0"], "--lr"),
    (train_log, ["--momentum", "1.5"], "--momentum"),
])
def test_scripts_reject_bad_options_naming_them(tmp_path, capsys, script, options, option):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--out", str(tmp_path), "--no-progress", "--device", "cpu", *options])
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
    metrics = train_log.main(["--dataset", "mnist", "--data-root", str(shared_data), "--out",
                        str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.92
