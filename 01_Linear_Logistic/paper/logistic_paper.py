"""Logistic and softmax regression as PyTorch modules (Level 3 of lesson 01).

The papers
----------
- D. R. Cox (1958), "The regression analysis of binary sequences", JRSS B 20(2):
  the log-odds of a binary outcome is linear in the covariates,
  log(p / (1 - p)) = x W + b, i.e. p = sigmoid(x W + b), fitted by maximum likelihood.
- Softmax regression: the multinomial version, P(y = k | x) = e^{z_k} / sum_j e^{z_j}
  with z = x W + b. It is the multinomial-logit generalised linear model of
  McCullagh & Nelder (*Generalized Linear Models*, 1983/1989), and the output layer
  that J. S. Bridle (1990, "Probabilistic interpretation of feedforward classification
  network outputs...") named "softmax".

Maximum likelihood for both is minimising the mean cross-entropy; with the L2
penalty of this lesson::

    binary:   J = 1/N sum_i [ softplus(z_i) - y_i z_i ]        + (l2/2) ||W||^2,  z (N,)
    softmax:  J = 1/N sum_i [ logsumexp(Z_i) - Z_i[y_i] ]      + (l2/2) ||W||_F^2, Z (N, K)

This level
----------
Each model is an ``nn.Module`` around one ``nn.Linear`` that returns LOGITS; the
losses are the library's stable versions, which take logits, never probabilities:

- ``nn.BCEWithLogitsLoss()`` = mean of softplus(z) - y z (targets float 0/1, shape (N,))
- ``nn.CrossEntropyLoss()`` = mean of logsumexp(Z_i) - Z_i[y_i] (targets int64 (N,))

Both equal our data term exactly. The penalty is SGD's ``weight_decay = l2`` on the
weight only (the bias sits in a parameter group without decay): for SGD it adds
l2 * W to the gradient, the gradient of (l2/2)||W||^2. Training uses
``torch.optim.SGD`` and the shared loop ``utils.training_utils.fit``.

``nn.Linear`` stores its weight as (K, D); the estimators' ``W`` is its transpose, (D, K),
as at L1 and L2. scikit-learn's ``LogisticRegression`` stores ``coef_`` as (K, D) (or
(1, D) for two classes), the same layout as nn.Linear: ``from_sklearn`` / ``to_sklearn``
copy it across. Its objective C * sum_i loss_i + 1/2 ||w||^2 is N C times ours, so
C = 1 / (N * l2).

Run it from the repository root::

    python 01_Linear_Logistic/paper/logistic_paper.py          # breast cancer, binary
    python 01_Linear_Logistic/paper/logistic_paper.py --dataset digits
    python -m 01_Linear_Logistic.paper.logistic_paper --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays, make_loader
from utils.lessons import import_lesson
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    fit,
    is_main_process,
    seed_everything,
    setup_distributed,
)
from utils.visualization import plot_confusion_matrix, plot_curves, plot_weights

SOLVERS = ("gd", "sgd")
DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None
# The estimators' defaults, as at L1 and L2: fit until the largest entry of dJ/dW, dJ/db
# is at most TOL, for at most EPOCHS epochs, with momentum; the cap warns.
EPOCHS, TOL, MOMENTUM = 1000, 1e-3, 0.9
# One warning class for every level of the lesson (L1 defines it).
ConvergenceWarning = import_lesson("01_Linear_Logistic.numpy.logistic_numpy").ConvergenceWarning


# --------------------------------------------------------------------------------------
# 1. The models
# --------------------------------------------------------------------------------------


class _LinearLogits(nn.Module):
    """One nn.Linear(D, K) producing logits, initialised W ~ N(0, 1/D), b = 0."""

    def __init__(self, input_dim: int, n_outputs: int):
        super().__init__()
        if not (isinstance(input_dim, int) and input_dim >= 1):
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        self.linear = nn.Linear(input_dim, n_outputs)  # weight (K, D), bias (K,)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """W ~ N(0, 1/D) drawn in the (D, K) layout of L1/L2 and stored transposed; b = 0.

        Without a generator the global torch RNG is used (``torch.manual_seed`` repeats it).
        """
        out_features, in_features = self.linear.weight.shape
        W = torch.randn(in_features, out_features, generator=generator,
                        dtype=self.linear.weight.dtype) / math.sqrt(in_features)  # (D, K)
        self.linear.weight.copy_(W.T)  # (K, D)
        self.linear.bias.zero_()


class LogisticRegressionModel(_LinearLogits):
    """Cox's logistic regression: z = x W + b, P(y = 1 | x) = sigmoid(z).

    forward: x (N, D) -> z (N,) logits (apply torch.sigmoid for probabilities)
    Parameters: linear.weight (1, D), linear.bias (1,): D + 1 numbers.
    """

    def __init__(self, input_dim: int):
        super().__init__(input_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)[:, 0]  # (N, 1) -> (N,)


class SoftmaxRegressionModel(_LinearLogits):
    """Multinomial logit model: Z = x W + b, P(y = k | x) = softmax(Z)_k.

    forward: x (N, D) -> Z (N, K) logits (apply torch.softmax(Z, 1) for probabilities)
    Parameters: linear.weight (K, D), linear.bias (K,): D*K + K numbers.
    """

    def __init__(self, input_dim: int, n_classes: int):
        if not (isinstance(n_classes, int) and n_classes >= 2):
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        super().__init__(input_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (N, K)


def make_optimizer(linear: nn.Linear, *, lr: float, l2: float = 0.0,
                   momentum: float = 0.0) -> torch.optim.SGD:
    """SGD with weight decay l2 on the weight only (= the (l2/2)||W||^2 term of J)."""
    return torch.optim.SGD(
        [{"params": [linear.weight], "weight_decay": l2},
         {"params": [linear.bias], "weight_decay": 0.0}],
        lr=lr, momentum=momentum)


def train(model: _LinearLogits, X, y, *, loss_fn: nn.Module, lr: float, epochs: int,
          batch_size: int, l2: float = 0.0, momentum: float = 0.0, shuffle: bool = True,
          seed: int = 0, device="cpu", val: tuple | None = None, progress: bool = False,
          log=None) -> History:
    """The standard recipe: DataLoader(s), optimiser, ``utils.training_utils.fit``.

    Inputs:  X (N, D) float; y (N,) labels (float 0/1 for BCE, int64 for cross-entropy);
             val - optional (X_val, y_val) evaluated after each epoch
    Returns: History with train/val loss and accuracy per epoch (train values are means
             over the epoch, measured while the weights move; no penalty in them)
    """
    loader = make_loader(X, y, batch_size=batch_size, shuffle=shuffle, seed=seed)
    val_loader = None
    if val is not None:
        val_loader = make_loader(val[0], val[1], batch_size=max(batch_size, 1024), shuffle=False)
    optimizer = make_optimizer(model.linear, lr=lr, l2=l2, momentum=momentum)
    return fit(model, loader, loss_fn=loss_fn, optimizer=optimizer, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, device=device, progress=progress,
               log=log)


class Batches:
    """Mini-batches (X[rows], y[rows]) of tensors, in a new random order every epoch.

    What ``make_loader``'s DataLoader does (a permutation per epoch from a generator
    seeded with ``seed``), without its one-sample-at-a-time collation, which costs more
    than the step itself for these small models; ``fit`` takes any iterable of batches.
    ``shuffle=False``: the rows in order (full-batch gd is one batch of all of them).
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, *, batch_size: int, shuffle: bool,
                 seed: int = 0):
        self.X, self.y, self.batch_size, self.shuffle = X, y, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            rows = order[start:start + self.batch_size]
            yield self.X[rows], self.y[rows]


# --------------------------------------------------------------------------------------
# 2. Input checks
# --------------------------------------------------------------------------------------


def check_features(X, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """X (N, D) of finite real numbers -> float tensor (float32/64 kept, ints -> float64)."""
    if isinstance(X, torch.Tensor):
        t = X.detach().cpu()
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"X: expected real numbers, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype not in (torch.float32, torch.float64):
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"X: expected float32 or float64, got {t.dtype}")
        t = t.to(torch.float64)
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


def _as_float64(value, name: str) -> torch.Tensor:
    """Weights given as an array or tensor -> float64 CPU tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double()
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected an array of real numbers ({err})") from None


def check_labels(y, n_rows: int, n_classes: int | None) -> torch.Tensor:
    """(N,) whole-number labels in 0..n_classes-1 -> int64 tensor (CPU)."""
    if isinstance(y, torch.Tensor):
        t = y.detach().cpu()
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"y: expected integer class labels, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.ndim != 1:
        raise ValueError(f"y: expected a 1-D array of N = {n_rows} labels, got shape "
                         f"{tuple(t.shape)}")
    if t.shape[0] != n_rows:
        raise ValueError(f"y: has {t.shape[0]} labels but X has {n_rows} rows")
    if t.is_floating_point() and not (torch.isfinite(t).all() and (t == t.round()).all()):
        raise ValueError("y: class labels must be whole numbers (0, 1, 2, ...)")
    t = t.to(torch.int64)
    if (t < 0).any():
        raise ValueError("y: class labels must be 0..K-1, got negative values")
    if n_classes is not None and (t >= n_classes).any():
        kind = ("binary logistic regression needs labels 0 or 1 (for more classes use "
                "SoftmaxRegression)" if n_classes == 2 else f"n_classes={n_classes}")
        raise ValueError(f"y: labels must be 0..{n_classes - 1} ({kind}), got {int(t.max())}")
    return t


# --------------------------------------------------------------------------------------
# 3. scikit-learn-style estimators around the modules
# --------------------------------------------------------------------------------------


class _Estimator:
    """What LogisticRegression and SoftmaxRegression share (module, W/b views, fit)."""

    loss_fn: nn.Module  # set by the subclass

    def __init__(self, *, solver, lr, epochs, batch_size, l2, seed, momentum, device, tol):
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
        if not tol >= 0:
            raise ValueError(f"tol must be >= 0 (0: run every epoch), got {tol!r}")
        self.solver, self.lr, self.epochs = solver, float(lr), epochs
        self.batch_size, self.l2, self.seed = batch_size, float(l2), seed
        self.momentum, self.tol = float(momentum), float(tol)
        self.device = torch.device(device)
        self.history: list[float] = []
        self.n_iter_ = 0  # epochs the last fit ran, as scikit-learn
        self.model: _LinearLogits | None = None

    # -- subclass hooks ------------------------------------------------------------
    def _new_model(self, d: int, y: torch.Tensor | None) -> _LinearLogits:
        raise NotImplementedError

    def _n_classes(self) -> int | None:
        raise NotImplementedError

    def _loss_targets(self, labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    # -- the module --------------------------------------------------------------------
    def _build(self, d: int, y: torch.Tensor | None, dtype: torch.dtype) -> None:
        model = self._new_model(d, y).to(dtype)
        model.reset_parameters(generator=torch.Generator().manual_seed(self.seed))
        self.model = model.to(self.device)

    def _require_model(self) -> None:
        if self.model is None:
            raise RuntimeError(f"this {type(self).__name__} has no weights yet: call fit(X, y) "
                               "first (or pass input_dim, and n_classes for SoftmaxRegression, "
                               "to the constructor)")

    @property
    def W(self) -> torch.Tensor | None:
        """Weights (D, K) = linear.weight.T (detached view; nn.Linear stores (K, D))."""
        return None if self.model is None else self.model.linear.weight.detach().T

    @W.setter
    def W(self, value) -> None:
        self._require_model()
        weight = self.model.linear.weight  # (K, D)
        value = _as_float64(value, "W")
        if tuple(value.shape) != tuple(weight.T.shape):
            raise ValueError(f"W: expected shape (D, K) = {tuple(weight.T.shape)}, got "
                             f"{tuple(value.shape)}")
        with torch.no_grad():
            weight.copy_(value.T)  # (D, K) -> nn.Linear's (K, D); copy_ casts to its dtype

    @property
    def b(self) -> torch.Tensor | None:
        """Bias (K,) = linear.bias (detached)."""
        return None if self.model is None else self.model.linear.bias.detach()

    @b.setter
    def b(self, value) -> None:
        self._require_model()
        bias = self.model.linear.bias
        value = _as_float64(value, "b").reshape(-1)
        if value.numel() != bias.numel():
            raise ValueError(f"b: expected shape {tuple(bias.shape)}, got {tuple(value.shape)}")
        with torch.no_grad():
            bias.copy_(value)

    def _features(self, X) -> torch.Tensor:
        self._require_model()
        weight = self.model.linear.weight
        X = check_features(X, dtype=weight.dtype)
        if X.shape[1] != weight.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, but the model was built for "
                             f"{weight.shape[1]} (nn.Linear({weight.shape[1]}, {weight.shape[0]}))")
        return X.to(self.device)

    # -- objective -----------------------------------------------------------------------
    def objective(self, X, y) -> torch.Tensor:
        """J = loss_fn(model(X), y) + (l2/2) ||W||^2 as a differentiable scalar."""
        X = self._features(X)
        labels = check_labels(y, X.shape[0], self._n_classes())
        targets = self._loss_targets(labels, X.dtype).to(self.device)
        penalty = 0.5 * self.l2 * (self.model.linear.weight ** 2).sum()
        return self.loss_fn(self.model(X), targets) + penalty

    def loss(self, X, y) -> float:
        """J(W, b) on (X, y) as a float: mean cross-entropy + (l2/2) ||W||^2."""
        with torch.no_grad():
            return float(self.objective(X, y))

    def gradients(self, X, y) -> dict[str, torch.Tensor]:
        """dJ/dW (D, K) and dJ/db (K,) by autograd (the module's .grad is left as is)."""
        weight, bias = self.model.linear.weight, self.model.linear.bias
        d_weight, d_bias = torch.autograd.grad(self.objective(X, y), [weight, bias])
        return {"W": d_weight.T, "b": d_bias}

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X, y, *, progress: bool = False):
        """Fit to X (N, D) and labels y (N,); returns self. The module follows X's dtype.

        One epoch at a time with ``utils.training_utils.fit`` and one ``torch.optim.SGD``
        (its momentum buffers carry over); after each epoch, stop if every entry of the
        full gradient dJ/dW, dJ/db is at most ``tol``. Reaching ``epochs`` first warns
        (ConvergenceWarning) unless tol=0. ``n_iter_``: epochs run. As at L1 and L2.
        """
        X = check_features(X)
        n, d = X.shape
        labels = check_labels(y, n, self._n_classes())
        if self.model is None:
            self._build(d, labels, X.dtype)
        elif self.model.linear.weight.shape[1] != d:
            raise ValueError(f"the model was built for X of shape "
                             f"(N, {self.model.linear.weight.shape[1]}); got X {tuple(X.shape)}")
        labels = check_labels(labels, n, self._n_classes())  # now against the model's K
        self.model.to(dtype=X.dtype)
        batch = n if self.solver == "gd" else (self.batch_size or DEFAULT_SGD_BATCH_SIZE)
        targets = self._loss_targets(labels, X.dtype)
        loader = Batches(X, targets, batch_size=batch, shuffle=self.solver == "sgd",
                         seed=self.seed)
        optimizer = make_optimizer(self.model.linear, lr=self.lr, l2=self.l2,
                                   momentum=self.momentum)
        result, self.n_iter_ = None, 0
        for epoch in tqdm(range(self.epochs), desc=type(self).__name__, disable=not progress,
                          leave=False):
            result = fit(self.model, loader, loss_fn=self.loss_fn, optimizer=optimizer,
                         epochs=epoch + 1, start_epoch=epoch, history=result, metric_fn=None,
                         device=self.device, progress=False, log=None)
            self.n_iter_ += 1
            largest = self._largest_gradient(X, targets)
            if largest <= self.tol:
                break  # converged: grad J = 0 to within tol
        else:
            if self.tol > 0:
                warnings.warn(f"{type(self).__name__} did not converge in {self.epochs} epochs: "
                              f"the largest gradient entry is {largest:.2g} > tol={self.tol:g}; "
                              "raise epochs or lr, scale the features, or use l2 > 0 if the "
                              "classes are separable", ConvergenceWarning, stacklevel=2)
        self.history = list(result.train_loss)
        return self

    def _largest_gradient(self, X: torch.Tensor, targets: torch.Tensor) -> float:
        """max |entry| of dJ/dW and dJ/db on the whole of (X, targets)."""
        weight, bias = self.model.linear.weight, self.model.linear.bias
        X, targets = X.to(self.device), targets.to(self.device)
        J = self.loss_fn(self.model(X), targets) + 0.5 * self.l2 * (weight ** 2).sum()
        return max(float(g.abs().max()) for g in torch.autograd.grad(J, [weight, bias]))

    def decision_function(self, X) -> torch.Tensor:
        """Logits: (N,) for the binary model, (N, K) for softmax. Detached."""
        X = self._features(X)
        with torch.no_grad():
            return self.model(X)

    def score(self, X, y) -> float:
        """Accuracy: the fraction of rows whose predicted class equals y."""
        X = self._features(X)
        labels = check_labels(y, X.shape[0], None).to(self.device)
        return float((self.predict(X) == labels).double().mean())


class LogisticRegression(_Estimator):
    """Binary logistic regression (fit / predict / predict_proba / score) around
    ``LogisticRegressionModel``, trained with ``nn.BCEWithLogitsLoss``.

    Inputs (constructor): input_dim (D; the module exists at once when given), solver
    ("gd" | "sgd"), lr, epochs, batch_size, l2, seed, momentum, device, dtype, tol - as at
    L2 (fit stops once every entry of dJ/dW, dJ/db is at most tol, or warns after epochs).
    Attributes: model, W (D, 1), b (1,), history (train loss of each epoch), n_iter_.
    """

    loss_fn = nn.BCEWithLogitsLoss()  # mean of softplus(z) - y z, from logits

    def __init__(self, input_dim: int | None = None, *, solver: str = "gd", lr: float = 0.1,
                 epochs: int = EPOCHS, batch_size: int | None = None, l2: float = 0.0,
                 seed: int = 0, momentum: float = MOMENTUM, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64, tol: float = TOL):
        super().__init__(solver=solver, lr=lr, epochs=epochs, batch_size=batch_size, l2=l2,
                         seed=seed, momentum=momentum, device=device, tol=tol)
        if input_dim is not None:
            self._build(input_dim, None, dtype)

    def _new_model(self, d, y):
        return LogisticRegressionModel(d)

    def _n_classes(self):
        return 2

    def _loss_targets(self, labels, dtype):
        return labels.to(dtype)  # BCEWithLogitsLoss wants float targets

    def predict_proba(self, X) -> torch.Tensor:
        """(N, 2): [P(y = 0), P(y = 1)] = [1 - sigmoid(z), sigmoid(z)], as scikit-learn."""
        z = self.decision_function(X)  # (N,)
        # 1 - sigmoid(z) computed as sigmoid(-z): no cancellation when p is close to 1
        return torch.stack([torch.sigmoid(-z), torch.sigmoid(z)], dim=1)

    def predict(self, X) -> torch.Tensor:
        """1 where z > 0 (p > 1/2), else 0: int64 (N,)."""
        return (self.decision_function(X) > 0).to(torch.int64)


class SoftmaxRegression(_Estimator):
    """Softmax regression (fit / predict / predict_proba / score) around
    ``SoftmaxRegressionModel``, trained with ``nn.CrossEntropyLoss``.

    Inputs (constructor): input_dim, n_classes (D and K; the module exists at once when
    both are given; n_classes None: K = max label + 1 at fit), and the settings of
    LogisticRegression. Attributes: model, W (D, K), b (K,), history.
    """

    loss_fn = nn.CrossEntropyLoss()  # mean of logsumexp(Z_i) - Z_i[y_i], from logits

    def __init__(self, input_dim: int | None = None, n_classes: int | None = None, *,
                 solver: str = "gd", lr: float = 0.1, epochs: int = EPOCHS,
                 batch_size: int | None = None, l2: float = 0.0, seed: int = 0,
                 momentum: float = MOMENTUM, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64, tol: float = TOL):
        super().__init__(solver=solver, lr=lr, epochs=epochs, batch_size=batch_size, l2=l2,
                         seed=seed, momentum=momentum, device=device, tol=tol)
        if n_classes is not None and not (isinstance(n_classes, int) and n_classes >= 2):
            raise ValueError(f"n_classes must be an integer >= 2 or None, got {n_classes!r}")
        self.n_classes = n_classes
        if input_dim is not None and n_classes is not None:
            self._build(input_dim, None, dtype)

    def _new_model(self, d, y):
        k = self.n_classes if self.n_classes is not None else max(int(y.max()) + 1, 2)
        return SoftmaxRegressionModel(d, k)

    def _n_classes(self):
        return self.model.linear.weight.shape[0] if self.model is not None else self.n_classes

    def _loss_targets(self, labels, dtype):
        return labels  # CrossEntropyLoss wants int64 class indices

    def predict_proba(self, X) -> torch.Tensor:
        """softmax(Z), (N, K), rows sum to 1."""
        return torch.softmax(self.decision_function(X), dim=1)

    def predict(self, X) -> torch.Tensor:
        """argmax_k Z_k: int64 (N,)."""
        return self.decision_function(X).argmax(dim=1)


# --------------------------------------------------------------------------------------
# 4. Porting weights to and from scikit-learn (the production implementation)
# --------------------------------------------------------------------------------------


def from_sklearn(estimator, *, device: str | torch.device = "cpu"):
    """Our LogisticRegression (2 classes) or SoftmaxRegression (K > 2 classes) with the
    weights of a fitted ``sklearn.linear_model.LogisticRegression``.

    sklearn's coef_ is (1, D) for two classes (the log-odds of classes_[1]) and (K, D)
    for K > 2 (one row of logits per class, multinomial); both are nn.Linear's layout.
    Requirements: classes_ must be 0..K-1 (our labels are indices), and a K > 2 model
    must be multinomial (one-vs-rest probabilities are not a softmax).

    Returns: an estimator (float64) whose decision_function / predict_proba / predict
             equal scikit-learn's.
    """
    if not all(hasattr(estimator, a) for a in ("coef_", "intercept_", "classes_")):
        raise ValueError(f"from_sklearn: expected a FITTED sklearn LogisticRegression (with "
                         f"coef_, intercept_, classes_), got {type(estimator).__name__}")
    classes = np.asarray(estimator.classes_)
    k = classes.size
    if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(k)):
        raise ValueError(f"from_sklearn: our models use labels 0..K-1, but this estimator's "
                         f"classes_ are {classes.tolist()}; refit it on labels 0..K-1")
    coef = np.asarray(estimator.coef_, dtype=np.float64)  # (1, D) or (K, D)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64).reshape(-1)
    if k > 2 and (getattr(estimator, "solver", None) == "liblinear"
                  or getattr(estimator, "multi_class", "auto") == "ovr"):
        raise ValueError("from_sklearn: this estimator is one-vs-rest; only a multinomial "
                         "(softmax) LogisticRegression maps onto SoftmaxRegression")
    if k == 2:
        ours = LogisticRegression(coef.shape[1], device=device)
    else:
        ours = SoftmaxRegression(coef.shape[1], k, device=device)
    ours.W = coef.T  # (K, D) -> our (D, K)
    ours.b = intercept
    return ours


def to_sklearn(model):
    """A ``sklearn.linear_model.LogisticRegression`` predicting exactly what ``model`` does.

    Inputs:  our LogisticRegression / SoftmaxRegression, or one of the two modules
    Returns: an (unfitted-by-sklearn) LogisticRegression with coef_ (1, D) or (K, D),
             intercept_, classes_ = [0..K-1] and n_features_in_ set; its
             predict / predict_proba / decision_function then equal ours
    """
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    module = model.model if isinstance(model, _Estimator) else model
    if not isinstance(module, (LogisticRegressionModel, SoftmaxRegressionModel)):
        raise ValueError(f"to_sklearn: expected a fitted LogisticRegression / SoftmaxRegression "
                         f"or their module, got {type(model).__name__}")
    weight = module.linear.weight.detach().cpu().double().numpy()  # (K, D), sklearn's layout
    bias = module.linear.bias.detach().cpu().double().numpy()  # (K,)
    estimator = SkLogisticRegression()
    estimator.coef_, estimator.intercept_ = weight, bias
    n_classes = 2 if isinstance(module, LogisticRegressionModel) else weight.shape[0]
    estimator.classes_ = np.arange(n_classes)
    estimator.n_features_in_ = weight.shape[1]
    return estimator


# --------------------------------------------------------------------------------------
# 5. The script
# --------------------------------------------------------------------------------------

# Defaults per dataset: mini-batch SGD, a few epochs, a learning rate that works there.
# The script trains exactly these epochs with the shared recipe ``train``.
DATASET_DEFAULTS = {
    "breast_cancer": {"epochs": 20, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    "digits": {"epochs": 20, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    "iris": {"epochs": 100, "batch_size": 16, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    # MNIST: momentum averages the noisy mini-batch gradients; 10 epochs reach ~92.5 %
    "mnist": {"epochs": 10, "batch_size": 100, "lr": 0.05, "momentum": 0.9, "l2": 0.0},
}
IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28)}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train Cox's logistic regression (breast_cancer) or softmax regression (others).

    Returns: {"test_accuracy", "train_accuracy", "final_loss"} (final_loss: the training
             loss J, penalty included, after the last epoch).
    """
    parser = argparse.ArgumentParser(
        description="Logistic / softmax regression as nn.Modules, trained with torch.optim.SGD"
                    " and the shared loop.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/01_Linear_Logistic/l3_logistic")
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="L2 penalty, SGD weight decay on W (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=None,
                        help="SGD momentum (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults

    # Under `torchrun --nproc_per_node N` this joins the process group and `fit` trains
    # with DistributedDataParallel (each process sees 1/N of every epoch); on its own
    # it returns (0, 1, device) and nothing changes.
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_arrays(args.dataset, data_root=args.data_root)
    print(split.summary())

    settings = dict(solver="sgd", lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                    l2=args.l2, seed=args.seed, momentum=args.momentum, device=device)
    if split.task == "binary":
        estimator = LogisticRegression(split.X_train.shape[1], **settings)
        y_train = split.y_train.astype(split.X_train.dtype)  # BCEWithLogitsLoss: float targets
        y_test = split.y_test.astype(split.X_train.dtype)
    else:
        estimator = SoftmaxRegression(split.X_train.shape[1], split.num_classes, **settings)
        y_train, y_test = split.y_train, split.y_test
    estimator.model.to(torch.as_tensor(split.X_train[:1]).dtype)  # float32 for MNIST

    # The L3 recipe: module + loss module + torch.optim.SGD + the shared loop, with the
    # test set evaluated after every epoch for the learning curves.
    history = train(estimator.model, split.X_train, y_train, loss_fn=estimator.loss_fn,
                    lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, l2=args.l2,
                    momentum=args.momentum, seed=args.seed, device=device,
                    val=(split.X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)

    train_accuracy = estimator.score(split.X_train, split.y_train)
    test_accuracy = estimator.score(split.X_test, split.y_test)
    final_loss = estimator.loss(split.X_train, split.y_train)
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss}
    if not is_main_process():  # every process holds the same weights; one reports
        cleanup_distributed()
        return metrics
    name = type(estimator.model).__name__
    print(f"{name} on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final J {final_loss:.4f}")

    title = f"L3 {name} on {args.dataset}"
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_confusion_matrix(split.y_test, estimator.predict(split.X_test).cpu().numpy(),
                          class_names=split.classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    if args.dataset in IMAGE_SHAPES:
        # nn.Linear.weight is (K, D): one row per class, plot_weights accepts that layout
        plot_weights(estimator.model.linear.weight.detach().cpu(),
                     image_shape=IMAGE_SHAPES[args.dataset], path=out / "weights.png",
                     title=f"{title}: one template per class")
    print(f"plots written to {out}" + (f" ({world_size} processes)" if world_size > 1 else ""))
    cleanup_distributed()
    return metrics


if __name__ == "__main__":
    main()
