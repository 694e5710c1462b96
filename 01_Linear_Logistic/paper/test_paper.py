"""Tests of lesson 01, Level 3, and the cross-level check L1 == L2 == L3.

Level 3 (the nn.Module versions), against scikit-learn, the production implementation:
- parameter count = D*K + K, counted by hand
- from_sklearn: our outputs equal sklearn's predict / predict_proba / decision_function
- to_sklearn: sklearn's predictions equal ours (both directions of the port)
- overfits a tiny problem; state_dict save/load round trip; torch.manual_seed determinism
- the losses are the library's (BCEWithLogitsLoss, CrossEntropyLoss, MSELoss) and the
  penalty is SGD's weight decay on the weight only: training equals L2's by-hand version
- bad input gives clear errors; the level's purity rule; the scripts reach their targets

Cross-level: the same W, b at L1 (NumPy), L2 (low-level torch) and L3 give the same
predictions, probabilities, losses and gradients (float64, 1e-10), and gradient descent
from the same start follows the same path at all three levels.

Run: .venv/bin/python -m pytest 01_Linear_Logistic/paper -q
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from utils import import_lesson
from utils.testing import FLOAT64, SKLEARN_SOLUTION, assert_close, assert_level_purity, tolerance
from utils.training_utils import load_checkpoint, save_checkpoint

lin3 = import_lesson("01_Linear_Logistic.paper.linear_paper")
log3 = import_lesson("01_Linear_Logistic.paper.logistic_paper")
lin2 = import_lesson("01_Linear_Logistic.pytorch_lowlevel.linear_lowlevel")
log2 = import_lesson("01_Linear_Logistic.pytorch_lowlevel.logistic_lowlevel")
lin1 = import_lesson("01_Linear_Logistic.numpy.linear_numpy")
log1 = import_lesson("01_Linear_Logistic.numpy.logistic_numpy")
convert = import_lesson("01_Linear_Logistic.paper.convert")
train_lin3 = import_lesson("01_Linear_Logistic.paper.train_linear")
train_log3 = import_lesson("01_Linear_Logistic.paper.train_logistic")


pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),  # small tensors: one CPU thread
    # many tests fit for a few epochs on purpose; the warning's own tests use pytest.warns
    pytest.mark.filterwarnings("ignore:.*did not converge"),
]


def _regression_data(n=50, d=4, k=None, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal((d, k or 1)) + rng.standard_normal(k or 1)
    y = y + noise * rng.standard_normal(y.shape)
    return X, (y[:, 0] if k is None else y)


def _classification_data(n=60, d=4, k=2, seed=0, spread=0.8):
    """Gaussian classes; spread sets how far apart their centres are."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.standard_normal((n, d)) + spread * rng.standard_normal((k, d))[y]
    return X, y.astype(np.int64)


def _sklearn_logistic(X, y, **kw):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / deprecation chatter of sklearn
        return SkLogisticRegression(**{"max_iter": 1000, **kw}).fit(X, y)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The modules
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("d, k", [(1, 1), (13, 1), (64, 10), (784, 10)])
def test_parameter_count_is_d_times_k_plus_k(d, k):
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(lin3.LinearRegressionModel(d, k)) == d * k + k  # W (D, K) and b (K,)
    assert count(log3.LogisticRegressionModel(d)) == d + 1  # K = 1 logit
    if k >= 2:
        assert count(log3.SoftmaxRegressionModel(d, k)) == d * k + k


def test_modules_compute_logits_with_nn_linear_layout():
    torch.manual_seed(0)
    X = torch.randn(5, 3, dtype=torch.float64)
    model = log3.SoftmaxRegressionModel(3, 4).double()
    W, b = model.linear.weight.detach().T, model.linear.bias.detach()  # (D, K), (K,)
    assert_close(model(X), X @ W + b, FLOAT64, name="Z = X W + b")
    binary = log3.LogisticRegressionModel(3).double()
    z = binary(X)
    assert z.shape == (5,)
    assert_close(z, X @ binary.linear.weight.detach()[0] + binary.linear.bias.detach(), FLOAT64)


def test_losses_are_our_objective():
    torch.manual_seed(1)
    y_hat, y = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    # 1/(2N) sum_i ||.||^2 = (K/2) * MSELoss()
    assert_close(lin3.HalfSquaredError()(y_hat, y), 1.5 * nn.MSELoss()(y_hat, y), FLOAT64)
    assert_close(lin3.HalfSquaredError()(y_hat[:, 0], y[:, 0]),
                 0.5 * nn.MSELoss()(y_hat[:, 0], y[:, 0]), FLOAT64)
    with pytest.raises(ValueError, match="must match"):
        lin3.HalfSquaredError()(y_hat[:, :1], y[:, 0])
    z = torch.tensor([-1000.0, -2.0, 0.0, 3.0, 1000.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    softplus = torch.logaddexp(torch.zeros_like(z), z)
    assert_close(log3.LogisticRegression.loss_fn(z, t), (softplus - t * z).mean(), FLOAT64)


def test_weight_decay_only_on_the_weight():
    model = lin3.LinearRegressionModel(3, 2)
    optimizer = lin3.make_optimizer(model.linear, lr=0.1, l2=0.25)
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays == {id(model.linear.weight): 0.25, id(model.linear.bias): 0.0}


# --------------------------------------------------------------------------------------
# Porting to and from scikit-learn
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [None, 3])
def test_from_sklearn_linear_regression_and_ridge(k):
    from sklearn.linear_model import LinearRegression as SkLinearRegression
    from sklearn.linear_model import Ridge

    X, y = _regression_data(k=k)
    for reference in (SkLinearRegression().fit(X, y), Ridge(alpha=3.0).fit(X, y)):
        ours = convert.from_sklearn(reference)
        assert_close(ours.predict(X), reference.predict(X), FLOAT64, name="predict")
        assert math.isclose(ours.score(X, y), reference.score(X, y), rel_tol=1e-12)


@pytest.mark.parametrize("k", [None, 3])
def test_to_sklearn_linear_regression(k):
    X, y = _regression_data(k=k)
    ours = lin3.LinearRegression(solver="sgd", lr=0.05, epochs=5).fit(X, y)
    ported = convert.to_sklearn(ours)
    assert_close(ported.predict(X), ours.predict(X), FLOAT64, name="sklearn(ported).predict")
    assert_close(convert.to_sklearn(ours.model).predict(X).reshape(len(X), -1),
                 ours.predict(X).reshape(len(X), -1), FLOAT64, name="port of the bare module")
    # and back again: the round trip keeps every number
    back = convert.from_sklearn(ported)
    assert torch.equal(back.W, ours.W) and torch.equal(back.b, ours.b)


@pytest.mark.parametrize("k", [2, 4])
def test_from_sklearn_logistic_regression(k):
    X, y = _classification_data(k=k)
    reference = _sklearn_logistic(X, y, C=0.5)
    ours = convert.from_sklearn(reference)
    expected_type = log3.LogisticRegression if k == 2 else log3.SoftmaxRegression
    assert type(ours) is expected_type
    assert_close(ours.decision_function(X), reference.decision_function(X), FLOAT64,
                 name="decision_function")
    assert_close(ours.predict_proba(X), reference.predict_proba(X), FLOAT64, name="predict_proba")
    assert np.array_equal(ours.predict(X).numpy(), reference.predict(X))
    assert ours.score(X, y) == reference.score(X, y)


@pytest.mark.parametrize("k", [2, 4])
def test_to_sklearn_logistic_regression(k):
    X, y = _classification_data(k=k)
    ours = (log3.LogisticRegression(solver="sgd", epochs=3, batch_size=8) if k == 2
            else log3.SoftmaxRegression(solver="sgd", epochs=3, batch_size=8)).fit(X, y)
    ported = convert.to_sklearn(ours)
    assert_close(ported.decision_function(X), ours.decision_function(X), FLOAT64)
    assert_close(ported.predict_proba(X), ours.predict_proba(X), FLOAT64, name="predict_proba")
    assert np.array_equal(ported.predict(X), ours.predict(X).numpy())
    back = convert.from_sklearn(ported)
    assert torch.equal(back.W, ours.W) and torch.equal(back.b, ours.b)


def test_fitted_solutions_equal_sklearn():
    """The closed form equals sklearn's exactly; gradient descent gets there too."""
    from sklearn.linear_model import Ridge

    X, y = _regression_data(k=2)
    ours = lin3.LinearRegression(l2=0.1).fit(X, y)
    reference = Ridge(alpha=len(X) * 0.1).fit(X, y)  # alpha = N * l2
    assert_close(ours.W, reference.coef_.T, SKLEARN_SOLUTION, name="W")
    assert_close(ours.b, reference.intercept_, SKLEARN_SOLUTION, name="b")

    Xc, yc = _classification_data(k=3)
    gd = log3.SoftmaxRegression(solver="gd", lr=1.0, epochs=400, l2=0.1, momentum=0.0,
                                 tol=0.0).fit(Xc, yc)
    sk = _sklearn_logistic(Xc, yc, C=1 / (len(Xc) * 0.1), tol=1e-12, max_iter=10_000)
    assert_close(gd.predict_proba(Xc), sk.predict_proba(Xc), tolerance("float32"),
                 name="gd vs sklearn probabilities")


def test_port_refuses_what_it_cannot_represent():
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    X, y = _classification_data(k=3)
    with pytest.raises(ValueError, match="FITTED"):
        convert.from_sklearn(SkLinearRegression())
    with pytest.raises(ValueError, match="FITTED"):
        convert.from_sklearn(object())
    with pytest.raises(ValueError, match="labels 0..K-1"):
        convert.from_sklearn(_sklearn_logistic(X, np.array(["a", "b", "c"])[y]))
    one_vs_rest = _sklearn_logistic(X, y)
    # scikit-learn < 1.8 fits K > 2 classes with liblinear as one-vs-rest; 1.8+ refuses to,
    # so relabel a multinomial fit to stand in for such a legacy model
    one_vs_rest.set_params(solver="liblinear")
    with pytest.raises(ValueError, match="one-vs-rest"):
        convert.from_sklearn(one_vs_rest)
    with pytest.raises(ValueError, match="to_sklearn"):
        convert.to_sklearn(nn.Linear(3, 2))


# --------------------------------------------------------------------------------------
# Training behaviour
# --------------------------------------------------------------------------------------


def test_overfits_a_tiny_exact_linear_problem():
    X = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5], [-2.0, 1.0]], dtype=torch.float64)
    Y = X @ torch.tensor([[2.0], [-1.0]], dtype=torch.float64) + 0.5  # exactly linear
    model = lin3.LinearRegressionModel(2, 1).double()
    history = lin3.train(model, X, Y, loss_fn=lin3.HalfSquaredError(), lr=0.1, epochs=400,
                         batch_size=4, shuffle=False)
    assert history.train_loss[-1] < 1e-12
    assert_close(model.linear.weight, torch.tensor([[2.0, -1.0]], dtype=torch.float64),
                 tolerance("float32"), name="recovered weight")


def test_overfits_a_small_separable_batch():
    X, y = _classification_data(n=16, d=3, k=4, spread=6.0)
    model = log3.SoftmaxRegressionModel(3, 4).double()
    history = train_log3.train(model, X, y, loss_fn=nn.CrossEntropyLoss(), lr=1.0, epochs=300,
                               batch_size=16, shuffle=False)
    assert history.train_loss[-1] < 1e-2 and history.train_metric[-1] == 1.0


def test_state_dict_round_trip(tmp_path):
    X, y = _classification_data(k=3)
    estimator = log3.SoftmaxRegression(solver="sgd", epochs=2, batch_size=8).fit(X, y)
    save_checkpoint(tmp_path / "softmax.pt", estimator.model, epoch=2)
    restored = log3.SoftmaxRegressionModel(4, 3).double()
    assert not torch.equal(restored.linear.weight, estimator.model.linear.weight)
    load_checkpoint(tmp_path / "softmax.pt", restored)
    Xt = torch.as_tensor(X)
    assert torch.equal(restored(Xt), estimator.model(Xt).detach())


def test_torch_manual_seed_determinism():
    torch.manual_seed(123)
    a = log3.SoftmaxRegressionModel(6, 3)
    torch.manual_seed(123)
    b = log3.SoftmaxRegressionModel(6, 3)
    c = log3.SoftmaxRegressionModel(6, 3)  # the RNG moved on
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert not torch.equal(a.linear.weight, c.linear.weight)
    X, y = _classification_data(k=3, d=6)
    fits = [log3.SoftmaxRegression(solver="sgd", epochs=3, batch_size=8, seed=7).fit(X, y)
            for _ in range(2)]
    assert torch.equal(fits[0].W, fits[1].W) and torch.equal(fits[0].b, fits[1].b)


def test_same_result_on_every_device(device):
    X, y = _classification_data(k=3)
    cpu = log3.SoftmaxRegression(solver="gd", epochs=20).fit(X, y)
    here = log3.SoftmaxRegression(solver="gd", epochs=20, device=device).fit(X, y)
    assert_close(here.predict_proba(X), cpu.predict_proba(X), tolerance("float64", device))


def test_float32_input_gives_a_float32_model():
    X, y = _classification_data(k=2)
    model = log3.LogisticRegression(epochs=5).fit(X.astype(np.float32), y)
    assert model.model.linear.weight.dtype == torch.float32
    assert model.predict_proba(X).dtype == torch.float32


def test_bad_inputs_give_clear_errors():
    X, y = _regression_data()
    with pytest.raises(ValueError, match=r"2-D array of shape \(N, D\)"):
        lin3.LinearRegression().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="49 rows but X has 50"):
        lin3.LinearRegression().fit(X, y[1:])
    with pytest.raises(ValueError, match="NaN or inf"):
        lin3.LinearRegression().fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="X has 2 features, but the model was built for 4"):
        lin3.LinearRegression().fit(X, y).predict(X[:, :2])
    with pytest.raises(RuntimeError, match="call fit"):
        lin3.LinearRegression().predict(X)
    with pytest.raises(ValueError, match="solver must be one of"):
        lin3.LinearRegression(solver="lbfgs")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        log3.SoftmaxRegression(lr=0.0)
    with pytest.raises(ValueError, match=r"W: expected shape \(D, K\)"):
        lin3.LinearRegression(4, 2).W = np.zeros((2, 4))

    Xc, yc = _classification_data(k=3)
    with pytest.raises(ValueError, match="labels 0 or 1"):
        log3.LogisticRegression().fit(Xc, yc)
    with pytest.raises(ValueError, match="negative"):
        log3.SoftmaxRegression().fit(Xc, yc - 1)
    with pytest.raises(ValueError, match="whole numbers"):
        log3.SoftmaxRegression().fit(Xc, yc * 0.5)
    with pytest.raises(RuntimeError, match="call fit"):
        log3.LogisticRegression().predict_proba(Xc)


# --------------------------------------------------------------------------------------
# Cross-level: L1 (NumPy) == L2 (low-level torch) == L3 (nn.Module) on the same weights
# --------------------------------------------------------------------------------------

LEVELS = {
    "linear": (lin1.LinearRegression, lin2.LinearRegression, lin3.LinearRegression),
    "logistic": (log1.LogisticRegression, log2.LogisticRegression, log3.LogisticRegression),
    "softmax": (log1.SoftmaxRegression, log2.SoftmaxRegression, log3.SoftmaxRegression),
}


def _problem(model: str):
    """(X, y, D, K, constructor args) for one of the three models."""
    if model == "linear":
        X, y = _regression_data(n=40, d=5, k=3)
        return X, y, 5, 3, (5, 3)
    k = 2 if model == "logistic" else 4
    X, y = _classification_data(n=40, d=5, k=k)
    return X, y, 5, (1 if k == 2 else k), ((5,) if k == 2 else (5, k))


def _three_levels(model: str, W: np.ndarray, b: np.ndarray, args: tuple, **settings):
    """The model at L1, L2 and L3, all holding the same W (D, K) and b (K,)."""
    built = []
    for cls in LEVELS[model]:
        m = cls(*args, **settings)
        m.W, m.b = W.copy(), b.copy()
        built.append(m)
    return built


@pytest.mark.parametrize("model", list(LEVELS))
def test_same_weights_same_outputs_losses_and_gradients_at_every_level(model):
    X, y, d, k, args = _problem(model)
    rng = np.random.default_rng(42)
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    l1, l2, l3 = _three_levels(model, W, b, args, l2=0.3)

    outputs = ["predict"] + ([] if model == "linear" else ["decision_function", "predict_proba"])
    for name in outputs:
        reference = getattr(l1, name)(X)
        for level, m in (("L2", l2), ("L3", l3)):
            got = getattr(m, name)(X)
            if name == "predict" and model != "linear":
                assert np.array_equal(got.numpy(), reference), f"{level} {name}"
            else:
                assert_close(got, reference, FLOAT64, name=f"{model} {level} {name} vs L1")

    loss = l1.loss(X, y)
    grads = l1.gradients(X, y)
    for level, m in (("L2", l2), ("L3", l3)):
        assert math.isclose(m.loss(X, y), loss, rel_tol=1e-12), f"{level} loss"
        for key in ("W", "b"):
            assert_close(m.gradients(X, y)[key], grads[key], FLOAT64,
                         name=f"{model} {level} dJ/d{key} vs L1")
    assert math.isclose(l2.score(X, y), l1.score(X, y)) and math.isclose(l3.score(X, y),
                                                                         l1.score(X, y))


@pytest.mark.parametrize("model", list(LEVELS))
def test_gradient_descent_follows_the_same_path_at_every_level(model):
    """Full-batch gd from the same start: L1's hand-written update, L2's sgd_step with the
    penalty in the loss, and L3's torch.optim.SGD with weight_decay all take the same steps."""
    X, y, d, k, args = _problem(model)
    rng = np.random.default_rng(7)
    W, b = rng.standard_normal((d, k)) * 0.1, np.zeros(k)
    levels = _three_levels(model, W, b, args, solver="gd", lr=0.3, epochs=25, l2=0.05)
    for m in levels:
        m.fit(X, y)
    l1, l2, l3 = levels
    for level, m in (("L2", l2), ("L3", l3)):
        assert_close(m.W, l1.W, FLOAT64, name=f"{model} {level} W after 25 gd epochs vs L1")
        assert_close(m.b, l1.b, FLOAT64, name=f"{model} {level} b after 25 gd epochs vs L1")
    assert_close(np.array(l2.history), np.array(l1.history), FLOAT64, name="L2 history vs L1")
    assert not np.allclose(l1.W, W)  # it trained


# --------------------------------------------------------------------------------------
# Training really shuffles; fit runs to a tolerance and says when it did not
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [log3.LogisticRegression, log3.SoftmaxRegression])
def test_sgd_visits_the_data_in_a_new_seeded_order_every_epoch(cls):
    X, y = _classification_data(k=2, n=20)
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}  # column 0 identifies the row
    orders = []
    for seed in (0, 0, 1):
        model = cls(X.shape[1], *([2] if cls is log3.SoftmaxRegression else []),
                    solver="sgd", epochs=3, batch_size=5, seed=seed, tol=0.0)
        batches: list[list[int]] = []

        def record(module, inputs, batches=batches):  # the rows of each training batch
            if len(inputs[0]) < len(X):
                batches.append([row_of[float(v)] for v in inputs[0][:, 0]])

        model.model.linear.register_forward_pre_hook(record)
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

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    reference = _sklearn_logistic(X[:1400], y[:1400], max_iter=100).score(X[1400:], y[1400:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", log3.ConvergenceWarning)
        model = log3.SoftmaxRegression().fit(X[:1400], y[:1400])
    assert model.n_iter_ < model.epochs
    assert max(float(g.abs().max()) for g in model.gradients(X[:1400], y[:1400]).values()) \
        <= model.tol
    assert model.score(X[1400:], y[1400:]) >= reference - 0.01


@pytest.mark.parametrize("cls", [log3.LogisticRegression, log3.SoftmaxRegression])
def test_hitting_the_epoch_cap_warns_and_tol_zero_runs_every_epoch(cls):
    X, y = _classification_data(k=2)
    with pytest.warns(log3.ConvergenceWarning, match="did not converge in 3 epochs"):
        model = cls(epochs=3).fit(X, y)
    assert model.n_iter_ == 3 and len(model.history) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", log3.ConvergenceWarning)
        assert cls(epochs=3, tol=0.0).fit(X, y).n_iter_ == 3
    with pytest.raises(ValueError, match="tol must be"):
        cls(tol=-1.0)


def test_the_default_fit_stops_at_the_same_epoch_with_the_same_weights_at_every_level():
    X, y, d, k, args = _problem("softmax")
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((d, k)) * 0.1, np.zeros(k)
    levels = _three_levels("softmax", W, b, args, l2=0.05)  # the defaults: momentum, tol
    for m in levels:
        m.fit(X, y)
    l1, l2, l3 = levels
    assert 1 < l1.n_iter_ < l1.epochs and l2.n_iter_ == l1.n_iter_ == l3.n_iter_
    for level, m in (("L2", l2), ("L3", l3)):
        assert_close(m.W, l1.W, FLOAT64, name=f"{level} W at convergence vs L1")


# --------------------------------------------------------------------------------------
# The scripts: a few epochs on their offline data, and their options
# --------------------------------------------------------------------------------------


def test_linear_script_runs_on_diabetes(tmp_path):
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    from utils.data_loaders import load_arrays

    metrics = train_lin3.main(["--out", str(tmp_path), "--no-progress", "--device", "cpu",
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
    metrics = train_log3.main(["--dataset", dataset, "--out", str(tmp_path), "--no-progress",
                         "--device", "cpu", "--epochs", "2"])
    # better than the trivial model: the uniform prediction has loss log K, accuracy ~1/K
    assert metrics["final_loss"] < 0.8 * math.log(classes)
    assert min(metrics["train_accuracy"], metrics["test_accuracy"]) > 1.5 / classes
    assert (tmp_path / "confusion.png").is_file()


@pytest.mark.parametrize("script, options, option", [
    (train_lin3, ["--epochs", "-1"], "--epochs"),
    (train_lin3, ["--l2", "inf"], "--l2"),
    (train_log3, ["--batch-size", "0"], "--batch-size"),
    (train_log3, ["--momentum", "-0.5"], "--momentum"),
    (train_log3, ["--l2", "-1"], "--l2"),
])
def test_scripts_reject_bad_options_naming_them(tmp_path, capsys, script, options, option):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--out", str(tmp_path), "--no-progress", "--device", "cpu", *options])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("script", [train_lin3, train_log3], ids=["linear", "logistic"])
def test_script_help_shows_every_default(capsys, script):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default: None" not in text and "per dataset:" in text


@pytest.mark.slow
def test_softmax_regression_on_real_mnist(tmp_path, shared_data):
    metrics = train_log3.main(["--dataset", "mnist", "--data-root", str(shared_data), "--out",
                         str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.92


@pytest.mark.slow
def test_logistic_script_trains_under_torchrun_with_two_processes(tmp_path):
    """`torchrun --nproc_per_node 2` runs the same script with DDP (gloo on the CPU).

    Two processes with batch 16 take the steps of one process with batch 32 (gradients
    are averaged across processes); only the sample order differs, so the results are
    close to the single-process run, and rank 0 alone writes the plots.
    """
    import os
    import subprocess
    import sys

    script = Path(train_log3.__file__)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(script), "--dataset", "digits", "--no-progress",
           "--device", "cpu", "--batch-size", "16", "--out", str(tmp_path / "ddp")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "(2 processes)" in r.stdout
    line = next(s for s in r.stdout.splitlines() if "test accuracy" in s)
    ddp_accuracy = float(line.split("test accuracy")[1].split(",")[0])
    single = train_log3.main(["--dataset", "digits", "--no-progress", "--device", "cpu",
                        "--batch-size", "32", "--out", str(tmp_path / "single")])
    assert ddp_accuracy >= 0.93
    assert abs(ddp_accuracy - single["test_accuracy"]) <= 0.03
    assert (tmp_path / "ddp" / "confusion.png").is_file()
