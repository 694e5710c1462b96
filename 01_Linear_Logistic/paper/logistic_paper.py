"""Logistic and softmax regression as PyTorch modules (L3 of lesson 01).

Cox (1958), "The regression analysis of binary sequences", JRSS B 20(2): p = sigmoid(x W + b);
the multinomial logit (McCullagh & Nelder 1983), whose output layer Bridle (1990) named
"softmax": P(y = k | x) = softmax(x W + b)_k. Both minimise the mean cross-entropy (plus
(l2/2) ||W||^2), computed from logits by ``nn.BCEWithLogitsLoss`` / ``nn.CrossEntropyLoss``.
Each model is one ``nn.Linear`` returning logits, wrapped in a scikit-learn-style estimator
trained with ``torch.optim.SGD`` and the shared loop ``utils.training_utils.fit``. The
derivations are in ``../theory.md`` (sections 3 and 4; the notes that used to open this file
are in its appendix). ``train_logistic.py`` runs them; ``convert.py`` ports to scikit-learn.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.lessons import import_lesson
from utils.training_utils import fit

# Written once in this lesson: the settings checks (L1), the input checks (L2) and the
# optimiser whose weight decay spares the bias (linear_paper.py).
check_settings = import_lesson("01_Linear_Logistic.numpy.linear_numpy").check_settings
_l2 = import_lesson("01_Linear_Logistic.pytorch_lowlevel.linear_lowlevel")
check_features, check_features_for = _l2.check_features, _l2.check_features_for
_l2_logistic = import_lesson("01_Linear_Logistic.pytorch_lowlevel.logistic_lowlevel")
labels_as_int64 = _l2_logistic.labels_as_int64
make_optimizer = import_lesson("01_Linear_Logistic.paper.linear_paper").make_optimizer

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
        super().__init__(input_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (N, K)


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
# 2. scikit-learn-style estimators around the modules
# --------------------------------------------------------------------------------------


class _Estimator:
    """What LogisticRegression and SoftmaxRegression share (module, W/b views, fit)."""

    loss_fn: nn.Module  # set by the subclass

    def __init__(self, *, solver, lr, epochs, batch_size, l2, seed, momentum, device, tol):
        check_settings(SOLVERS, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                       l2=l2, momentum=momentum, tol=tol)
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
        """X checked (as at L2), in the module's dtype and on its device, with D columns."""
        return check_features_for(self, X)

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
        check_settings(n_classes=n_classes)
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
# 3. Checks at the door: weights and labels (X: L2's check_features)
# --------------------------------------------------------------------------------------


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
    t = labels_as_int64(y, n_rows)  # L2's: one whole number per row of X
    if (t < 0).any():
        raise ValueError("y: class labels must be 0..K-1, got negative values")
    if n_classes is not None and (t >= n_classes).any():
        kind = ("binary logistic regression needs labels 0 or 1 (for more classes use "
                "SoftmaxRegression)" if n_classes == 2 else f"n_classes={n_classes}")
        raise ValueError(f"y: labels must be 0..{n_classes - 1} ({kind}), got {int(t.max())}")
    return t
