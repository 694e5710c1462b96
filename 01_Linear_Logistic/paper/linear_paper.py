"""Linear regression as a PyTorch module (Level 3 of lesson 01): the method of least squares.

The papers
----------
- A.-M. Legendre (1805), *Nouvelles méthodes pour la détermination des orbites des
  comètes*, appendix "Sur la méthode des moindres quarrés": choose the unknowns that
  make the sum of the squared errors smallest; setting its derivative with respect to
  each unknown to zero gives one linear equation per unknown, the "normal equations".
- C. F. Gauss (1809), *Theoria motus corporum coelestium*, Book II, Section III:
  the same estimate is the most probable one when the errors are independent and
  normally distributed (least squares = maximum likelihood under Gaussian noise).

In today's notation, with one row x_i per observation::

    y_hat = X W + b            X (N, D), W (D, K), b (K,)
    J(W, b) = 1/(2N) sum_i ||y_hat_i - y_i||^2 + (l2/2) ||W||_F^2          (b not penalised)
    normal equations (centred data):  (Xc^T Xc + N l2 I) W = Xc^T Yc,   b = y_mean - x_mean W

The l2 term is ridge regression (Hoerl & Kennard 1970), a later addition.

This level
----------
The model is an ``nn.Module`` holding one ``nn.Linear``; training uses
``torch.optim.SGD`` and the curriculum's shared loop ``utils.training_utils.fit``.
How the library pieces map onto J:

- ``nn.Linear`` computes x A^T + c with its weight A stored as (K, D), the transpose
  of our W (D, K). ``W`` below is ``linear.weight.T``; ``W = value`` copies value.T in.
- ``nn.MSELoss()`` is the mean over all N*K numbers; our data term is
  1/(2N) sum_i ||.||^2 = (K/2) * MSELoss. ``HalfSquaredError`` uses
  ``nn.MSELoss(reduction="sum") / (2N)``, exactly our J, so the learning rates (and the
  training trajectories) are those of L1 and L2. (Using plain MSELoss instead would only
  rescale the gradient by 2/K, i.e. the learning rate.)
- The penalty is the optimiser's ``weight_decay = l2`` on the weight only (the bias
  sits in a second parameter group with weight_decay = 0). For SGD, weight decay adds
  l2 * W to the gradient, which is exactly the gradient of (l2/2) ||W||^2, so
  training follows J. (For adaptive optimisers like Adam this equivalence breaks;
  that is why AdamW exists.)

A scikit-learn-style estimator ``LinearRegression`` (fit / predict / score) wraps the
module, and ``from_sklearn`` / ``to_sklearn`` port the weights to and from
scikit-learn, the production implementation we check against.

Run it from the repository root::

    python 01_Linear_Logistic/paper/linear_paper.py                       # diabetes
    python -m 01_Linear_Logistic.paper.linear_paper --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays, make_loader
from utils.training_utils import History, fit, get_device, seed_everything
from utils.visualization import plot_confusion_matrix, plot_curves

SOLVERS = ("normal", "gd", "sgd")
DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None


# --------------------------------------------------------------------------------------
# 1. The model and its loss
# --------------------------------------------------------------------------------------


class LinearRegressionModel(nn.Module):
    """y_hat = x W + b as one ``nn.Linear(D, K)``.

    Inputs:  input_dim D, output_dim K (default 1)
    forward: x (N, D) -> y_hat (N, K)
    Parameters: linear.weight (K, D) = W^T, linear.bias (K,) = b; D*K + K numbers.
    """

    def __init__(self, input_dim: int, output_dim: int = 1):
        super().__init__()
        if not (isinstance(input_dim, int) and input_dim >= 1):
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        if not (isinstance(output_dim, int) and output_dim >= 1):
            raise ValueError(f"output_dim must be a positive integer, got {output_dim!r}")
        self.linear = nn.Linear(input_dim, output_dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """W ~ N(0, 1/D), b = 0, as at L1 and L2.

        W is drawn in the (D, K) layout of the other levels and stored transposed, so a
        seeded generator gives the same starting weights at every level. Without a
        generator the global torch RNG is used (``torch.manual_seed`` makes it repeatable).
        """
        out_features, in_features = self.linear.weight.shape  # (K, D)
        W = torch.randn(in_features, out_features, generator=generator,
                        dtype=self.linear.weight.dtype) / math.sqrt(in_features)  # (D, K)
        self.linear.weight.copy_(W.T)  # nn.Linear keeps (K, D)
        self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (N, D) -> (N, K)


class HalfSquaredError(nn.Module):
    """The data term of J: 1/(2N) sum_i ||y_hat_i - y_i||^2 (N = rows of the batch).

    Built on ``nn.MSELoss(reduction="sum")``; equals 0.5 * nn.MSELoss() when K = 1.
    Inputs: y_hat, y of the same shape (N, K) or (N,).  Returns: scalar tensor.
    """

    def __init__(self):
        super().__init__()
        self.sum_of_squares = nn.MSELoss(reduction="sum")

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y_hat.shape != y.shape:  # (N, 1) vs (N,) would broadcast to (N, N)
            raise ValueError(f"HalfSquaredError: y_hat has shape {tuple(y_hat.shape)} but y has "
                             f"{tuple(y.shape)}; they must match")
        return 0.5 * self.sum_of_squares(y_hat, y) / y.shape[0]


def make_optimizer(linear: nn.Linear, *, lr: float, l2: float = 0.0,
                   momentum: float = 0.0) -> torch.optim.SGD:
    """SGD whose weight decay l2 applies to the weight only, never to the bias.

    With SGD, weight_decay adds l2 * W to W's gradient = the gradient of (l2/2)||W||^2.
    """
    return torch.optim.SGD(
        [{"params": [linear.weight], "weight_decay": l2},
         {"params": [linear.bias], "weight_decay": 0.0}],
        lr=lr, momentum=momentum)


# --------------------------------------------------------------------------------------
# 2. Input checks (bad input fails here with a clear message)
# --------------------------------------------------------------------------------------


def _float_tensor(a, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Array-like -> float tensor: float32/float64 kept, integers and bools -> float64."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if dtype is not None:
        return t.to(dtype)
    if t.dtype in (torch.float32, torch.float64):
        return t
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name}: expected float32 or float64, got {t.dtype}")
    return t.to(torch.float64)


def check_features(X, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """X (N, D), finite, N >= 1 -> float tensor (CPU). Raises ValueError otherwise."""
    t = _float_tensor(X, "X", dtype)
    if t.ndim != 2:
        hint = " (one feature? use X.reshape(-1, 1))" if t.ndim == 1 else ""
        raise ValueError(f"X: expected a 2-D array of shape (N, D), one row per example, "
                         f"got shape {tuple(t.shape)}{hint}")
    if t.shape[0] == 0:
        raise ValueError("X: got 0 rows; need at least one example")
    if not torch.isfinite(t).all():
        bad = torch.nonzero(~torch.isfinite(t))[0].tolist()
        raise ValueError(f"X: contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
                         "clean or impute the data first")
    return t


def check_targets(y, n_rows: int, dtype: torch.dtype) -> torch.Tensor:
    """y (N,) or (N, K), finite -> tensor in ``dtype``."""
    t = _float_tensor(y, "y", dtype)
    if t.ndim not in (1, 2):
        raise ValueError(f"y: expected shape (N,) or (N, K), got {tuple(t.shape)}")
    if t.shape[0] != n_rows:
        raise ValueError(f"y: has {t.shape[0]} rows but X has {n_rows}; "
                         "expected one target per row of X")
    if not torch.isfinite(t).all():
        raise ValueError("y: contains NaN or inf")
    return t


# --------------------------------------------------------------------------------------
# 3. Fitting: the normal equations, or SGD through the shared training loop
# --------------------------------------------------------------------------------------


def normal_equation(X: torch.Tensor, Y: torch.Tensor,
                    l2: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Legendre's normal equations on centred data; returns W (D, K), b (K,).

    l2 = 0: ``torch.linalg.lstsq`` (SVD-based gelsd, on the CPU): the minimum-norm
    solution when features are collinear or constant, like scikit-learn's
    LinearRegression. l2 > 0: solve (Xc^T Xc + N l2 I) W = Xc^T Yc, = Ridge(alpha=N l2).
    """
    n, d = X.shape
    x_mean, y_mean = X.mean(dim=0), Y.mean(dim=0)  # (D,), (K,)
    Xc, Yc = X - x_mean, Y - y_mean
    if l2 == 0:
        W = torch.linalg.lstsq(Xc.cpu(), Yc.cpu(), driver="gelsd").solution.to(X.device)
    else:
        gram = Xc.T @ Xc + n * l2 * torch.eye(d, dtype=X.dtype, device=X.device)  # (D, D)
        W = torch.linalg.solve(gram, Xc.T @ Yc)  # (D, K)
    return W, y_mean - x_mean @ W


def train(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, *, loss_fn: nn.Module, lr: float,
          epochs: int, batch_size: int, l2: float = 0.0, momentum: float = 0.0,
          shuffle: bool = True, seed: int = 0, device="cpu", val: tuple | None = None,
          progress: bool = False, log=None, metric_fn=None) -> History:
    """The standard PyTorch recipe: a DataLoader, an optimiser, the shared loop.

    Inputs:  model with a ``linear`` attribute (its weight gets the decay); X (N, D),
             Y targets; val - optional (X_val, Y_val) evaluated after every epoch
    Returns: utils.training_utils.History (train_loss = mean data loss over each epoch,
             measured while the weights move; the penalty is not in it)
    """
    loader = make_loader(X.cpu(), Y.cpu(), batch_size=batch_size, shuffle=shuffle, seed=seed)
    val_loader = None
    if val is not None:
        val_loader = make_loader(val[0], val[1], batch_size=max(batch_size, 1024), shuffle=False)
    optimizer = make_optimizer(model.linear, lr=lr, l2=l2, momentum=momentum)
    return fit(model, loader, loss_fn=loss_fn, optimizer=optimizer, epochs=epochs,
               val_loader=val_loader, metric_fn=metric_fn, device=device, progress=progress,
               log=log)


# --------------------------------------------------------------------------------------
# 4. The scikit-learn-style estimator around the module
# --------------------------------------------------------------------------------------


class LinearRegression:
    """fit / predict / score around a ``LinearRegressionModel`` (same API as L1 and L2).

    Inputs (constructor):
        input_dim, output_dim - D and K; with input_dim the module exists at once
                                (output_dim None: one target, predictions (N,))
        solver  - "normal" (closed form), "gd" (one batch of all N rows per step) or
                  "sgd" (shuffled mini-batches of batch_size, default 32)
        lr, epochs, batch_size, l2, seed, momentum - as at L2; l2 becomes weight_decay
        device, dtype - where the module lives, its dtype before fit

    Attributes: model (the nn.Module), W (D, K) and b (K,) views of its parameters,
    history (train_loss of each epoch from utils.training_utils.fit; empty for "normal").
    As at L1 and L2, fit continues from the current weights when their shapes fit.
    """

    def __init__(self, input_dim: int | None = None, output_dim: int | None = None, *,
                 solver: str = "normal", lr: float = 0.1, epochs: int = 100,
                 batch_size: int | None = None, l2: float = 0.0, seed: int = 0,
                 momentum: float = 0.0, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not (isinstance(epochs, int) and epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if not (isinstance(l2, (int, float)) and l2 >= 0):
            raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.solver, self.lr, self.epochs = solver, float(lr), epochs
        self.batch_size, self.l2, self.seed = batch_size, float(l2), seed
        self.momentum = float(momentum)
        self.device = torch.device(device)
        self.history: list[float] = []
        self.model: LinearRegressionModel | None = None
        self.single_target = output_dim is None
        if input_dim is not None:
            self._build(input_dim, output_dim or 1, dtype)

    def _build(self, d: int, k: int, dtype: torch.dtype) -> None:
        """A new module with seeded N(0, 1/D) weights (the same numbers as L2's)."""
        model = LinearRegressionModel(d, k).to(dtype)
        model.reset_parameters(generator=torch.Generator().manual_seed(self.seed))
        self.model = model.to(self.device)

    # -- W and b in the (D, K) / (K,) orientation of the shared API --------------------
    @property
    def W(self) -> torch.Tensor | None:
        """Weights (D, K) = linear.weight.T (a detached view), or None before fit."""
        return None if self.model is None else self.model.linear.weight.detach().T

    @W.setter
    def W(self, value) -> None:
        self._require_model()
        weight = self.model.linear.weight  # (K, D)
        value = _float_tensor(value, "W")
        if value.ndim == 1 and weight.shape[0] == 1:
            value = value[:, None]  # (D,) -> (D, 1) for a single output
        if tuple(value.shape) != tuple(weight.T.shape):
            raise ValueError(f"W: expected shape (D, K) = {tuple(weight.T.shape)}, got "
                             f"{tuple(value.shape)}")
        with torch.no_grad():  # value is (D, K); nn.Linear stores the transpose (K, D)
            weight.copy_(value.T)

    @property
    def b(self) -> torch.Tensor | None:
        """Bias (K,) = linear.bias (detached), or None before fit."""
        return None if self.model is None else self.model.linear.bias.detach()

    @b.setter
    def b(self, value) -> None:
        self._require_model()
        bias = self.model.linear.bias  # (K,)
        value = _float_tensor(value, "b")
        if value.ndim > 1 or value.numel() != bias.numel():
            raise ValueError(f"b: expected shape {tuple(bias.shape)}, got {tuple(value.shape)}")
        with torch.no_grad():
            bias.copy_(value.reshape(-1))

    def _require_model(self) -> None:
        if self.model is None:
            raise RuntimeError("this LinearRegression has no weights yet: call fit(X, y) first "
                               "(or pass input_dim to the constructor)")

    def _features(self, X) -> torch.Tensor:
        self._require_model()
        weight = self.model.linear.weight
        X = check_features(X, dtype=weight.dtype).to(self.device)
        if X.shape[1] != weight.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, but the model was built for "
                             f"{weight.shape[1]} (nn.Linear({weight.shape[1]}, {weight.shape[0]}))")
        return X

    def _targets(self, y, n_rows: int) -> torch.Tensor:
        weight = self.model.linear.weight
        Y = check_targets(y, n_rows, weight.dtype).reshape(n_rows, -1).to(self.device)
        if Y.shape[1] != weight.shape[0]:
            raise ValueError(f"y has {Y.shape[1]} target columns, but the model predicts "
                             f"{weight.shape[0]}")
        return Y

    # -- objective -------------------------------------------------------------------
    def objective(self, X, y) -> torch.Tensor:
        """J = HalfSquaredError(model(X), y) + (l2/2) ||W||^2, differentiable."""
        X = self._features(X)
        Y = self._targets(y, X.shape[0])
        penalty = 0.5 * self.l2 * (self.model.linear.weight ** 2).sum()
        return HalfSquaredError()(self.model(X), Y) + penalty

    def loss(self, X, y) -> float:
        """J(W, b) on (X, y) as a float (penalty included)."""
        with torch.no_grad():
            return float(self.objective(X, y))

    def gradients(self, X, y) -> dict[str, torch.Tensor]:
        """dJ/dW (D, K) and dJ/db (K,) by autograd (``.grad`` of the module is left as is)."""
        weight, bias = self.model.linear.weight, self.model.linear.bias
        d_weight, d_bias = torch.autograd.grad(self.objective(X, y), [weight, bias])
        return {"W": d_weight.T, "b": d_bias}  # (K, D) -> (D, K)

    # -- fitting ---------------------------------------------------------------------
    def fit(self, X, y, *, progress: bool = False) -> LinearRegression:
        """Fit to X (N, D) and y (N,) or (N, K); returns self. The module follows X's dtype."""
        X = check_features(X)
        n, d = X.shape
        Y = check_targets(y, n, X.dtype)
        self.single_target = Y.ndim == 1
        Y = Y.reshape(n, -1)  # (N, K)
        k = Y.shape[1]
        if self.model is None:
            self._build(d, k, X.dtype)
        elif tuple(self.model.linear.weight.shape) != (k, d):
            raise ValueError(f"the model was built for X (N, {self.model.linear.weight.shape[1]})"
                             f" and y with {self.model.linear.weight.shape[0]} column(s); got X "
                             f"{tuple(X.shape)} and y with {k} column(s)")
        self.model.to(dtype=X.dtype)
        self.history = []
        if self.solver == "normal":
            W, b = normal_equation(X.to(self.device), Y.to(self.device), self.l2)
            self.W, self.b = W, b
            return self
        batch = n if self.solver == "gd" else (self.batch_size or DEFAULT_SGD_BATCH_SIZE)
        result = train(self.model, X, Y, loss_fn=HalfSquaredError(), lr=self.lr,
                       epochs=self.epochs, batch_size=batch, l2=self.l2, momentum=self.momentum,
                       shuffle=self.solver == "sgd", seed=self.seed, device=self.device,
                       progress=progress)
        self.history = list(result.train_loss)
        return self

    # -- using the fitted model --------------------------------------------------------
    def predict(self, X) -> torch.Tensor:
        """model(X): (N,) when fitted on 1-D y, else (N, K). Detached."""
        X = self._features(X)
        with torch.no_grad():
            y_hat = self.model(X)
        return y_hat[:, 0] if self.single_target and y_hat.shape[1] == 1 else y_hat

    def score(self, X, y) -> float:
        """R^2 = 1 - SS_res / SS_tot, averaged over the K outputs (as scikit-learn)."""
        X = self._features(X)
        Y = self._targets(y, X.shape[0])
        with torch.no_grad():
            residual = ((Y - self.model(X)) ** 2).sum(dim=0)  # (K,)
            total = ((Y - Y.mean(dim=0)) ** 2).sum(dim=0)  # (K,)
            r2 = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300),
                             (residual == 0).to(Y.dtype))
        return float(r2.mean())


# --------------------------------------------------------------------------------------
# 5. Porting weights to and from scikit-learn (the production implementation)
# --------------------------------------------------------------------------------------


def from_sklearn(estimator, *, device: str | torch.device = "cpu") -> LinearRegression:
    """Our LinearRegression with the weights of a fitted scikit-learn linear regressor.

    Works for any estimator whose prediction is X coef_^T + intercept_
    (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor, ...).
    sklearn's coef_ is (D,) for one target or (K, D) for K targets, the same layout as
    nn.Linear.weight; our W is its transpose. The training settings (e.g. Ridge's alpha)
    are not carried over: only what prediction needs.

    Returns: a LinearRegression (float64) whose predict equals estimator.predict.
    """
    if not hasattr(estimator, "coef_") or not hasattr(estimator, "intercept_"):
        raise ValueError(f"from_sklearn: expected a FITTED scikit-learn linear regressor with "
                         f"coef_ and intercept_, got {type(estimator).__name__} without them "
                         "(call its fit first)")
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    single = coef.ndim == 1
    coef = coef.reshape(1, -1) if single else coef  # (K, D)
    k, d = coef.shape
    if intercept.shape == (1,) and k > 1:
        intercept = np.repeat(intercept, k)  # fit_intercept=False stores a scalar 0.0
    ours = LinearRegression(d, None if single else k, device=device)
    ours.W = coef.T  # (D, K)
    ours.b = intercept
    return ours


def to_sklearn(model):
    """A scikit-learn ``LinearRegression`` that predicts exactly what ``model`` predicts.

    Inputs:  our LinearRegression estimator (or a LinearRegressionModel module)
    Returns: sklearn.linear_model.LinearRegression with coef_ (D,) or (K, D) and
             intercept_ set (it is not refitted; calling its fit would overwrite them)
    """
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    single = getattr(model, "single_target", False)
    module = model.model if isinstance(model, LinearRegression) else model
    if not isinstance(module, LinearRegressionModel):
        raise ValueError(f"to_sklearn: expected a fitted LinearRegression or a "
                         f"LinearRegressionModel, got {type(model).__name__}")
    weight = module.linear.weight.detach().cpu().double().numpy()  # (K, D), sklearn's layout
    bias = module.linear.bias.detach().cpu().double().numpy()  # (K,)
    estimator = SkLinearRegression()
    if single and weight.shape[0] == 1:
        estimator.coef_, estimator.intercept_ = weight[0], float(bias[0])
    else:
        estimator.coef_, estimator.intercept_ = weight, bias
    estimator.n_features_in_ = weight.shape[1]
    return estimator


# --------------------------------------------------------------------------------------
# 6. The script
# --------------------------------------------------------------------------------------


def _run_diabetes(args, split, device, out) -> dict[str, float]:
    """Normal equations and SGD (torch.optim + the shared loop) on diabetes."""
    exact = LinearRegression(solver="normal", l2=args.l2, device=device)
    exact.fit(split.X_train, split.y_train)

    # The L3 recipe, written out: module, loss module, loaders, optimiser, shared loop.
    X = torch.as_tensor(split.X_train)
    Y = torch.as_tensor(split.y_train)[:, None]  # (N, 1)
    model = LinearRegressionModel(X.shape[1], 1).double()
    model.reset_parameters(generator=torch.Generator().manual_seed(args.seed))
    history = train(model, X, Y, loss_fn=HalfSquaredError(), lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, l2=args.l2, momentum=args.momentum,
                    seed=args.seed, device=device, progress=args.progress,
                    val=(split.X_test, split.y_test[:, None]),
                    log=print if args.progress else None)
    iterative = LinearRegression(device=device)  # the estimator API around the trained module
    iterative.model = model

    y_test = torch.as_tensor(split.y_test)
    results = {}
    for name, estimator in (("normal equation", exact), ("sgd", iterative)):
        mse = float(((estimator.predict(split.X_test).cpu() - y_test) ** 2).mean())
        r2 = estimator.score(split.X_test, split.y_test)
        results[name] = (r2, mse)
        print(f"{name:>16}: test R^2 = {r2:.4f}   test MSE = {mse:.1f}")
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss,
                 "normal equation, train loss": [exact.loss(split.X_train, split.y_train)]
                 * len(history.train_loss)},
                path=out / "loss.png", ylabel="half squared error", logy=True,
                title="L3 linear regression on diabetes")
    print(f"plots written to {out}")
    r2, mse = results["normal equation"]
    return {"test_r2": r2, "test_mse": mse, "sgd_test_r2": results["sgd"][0]}


def _run_mnist(args, split, device, out) -> dict[str, float]:
    """Least-squares classifier on one-hot targets; predict the argmax."""
    k = split.num_classes
    X_train = torch.as_tensor(split.X_train)  # (60000, 784) float32
    Y_train = torch.eye(k, dtype=X_train.dtype)[torch.as_tensor(split.y_train)]  # (N, 10)
    estimator = LinearRegression(solver="normal", l2=args.l2, device=device).fit(X_train, Y_train)
    predicted = estimator.predict(split.X_test).argmax(dim=1).cpu().numpy()
    test_accuracy = float((predicted == split.y_test).mean())
    train_accuracy = float(
        (estimator.predict(X_train).argmax(dim=1).cpu().numpy() == split.y_train).mean())
    print(f"least squares on one-hot targets (l2={args.l2}): train accuracy {train_accuracy:.4f}"
          f", test accuracy {test_accuracy:.4f}")
    plot_confusion_matrix(split.y_test, predicted, path=out / "confusion.png",
                          title="L3 least-squares classifier on MNIST (test)")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Least squares on diabetes (default) or a least-squares classifier on MNIST.

    Returns: {"test_r2", "test_mse", "sgd_test_r2"} for diabetes, or
             {"test_accuracy", "train_accuracy"} for mnist.
    """
    parser = argparse.ArgumentParser(
        description="Linear regression as an nn.Module: normal equations and torch.optim.SGD.")
    add_common_args(parser, datasets=("diabetes", "mnist"), epochs=50, batch_size=32, lr=0.05,
                    out="runs/01_Linear_Logistic/l3_linear")
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="ridge strength l2 in J (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=0.0,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    # On MNIST many border pixels are always 0; a little ridge keeps the solve well posed.
    args = parse_args(parser, argv, {"diabetes": {"l2": 0.0}, "mnist": {"l2": 1e-3}})

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_arrays(args.dataset, data_root=args.data_root)
    print(split.summary())
    if args.dataset == "diabetes":
        return _run_diabetes(args, split, device, out)
    return _run_mnist(args, split, device, out)


if __name__ == "__main__":
    main()
