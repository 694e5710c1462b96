"""Logistic and softmax regression in low-level PyTorch (L2 of lesson 01): autograd
differentiates the objectives, the losses and the SGD loop are written out.

Binary logistic regression (Cox 1958), p = sigmoid(X W + b), and softmax regression,
P = softmax(X W + b), minimise the mean cross-entropy plus (l2/2) ||W||^2, computed from
the logits so that nothing overflows (softplus as logaddexp(0, z), torch.logsumexp). The
objectives, their gradients and the stable formulas are in ``../theory.md`` (sections 3
and 4; the notes that used to open this file are in its appendix). The pieces the two
files share (checks, linear_forward, l2_penalty, zero_grad, sgd_step) are imported from
``linear_lowlevel.py``; ``train_logistic.py`` beside this file runs the models.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from utils.lessons import import_lesson

# What linear regression taught at this level, used as it is: the input checks, the affine
# map, the penalty and the hand-written optimiser step; the settings are checked as at L1.
_linear = import_lesson("01_Linear_Logistic.pytorch_lowlevel.linear_lowlevel")
to_float_tensor, check_features = _linear.to_float_tensor, _linear.check_features
check_features_for = _linear.check_features_for
linear_forward, l2_penalty = _linear.linear_forward, _linear.l2_penalty
zero_grad, sgd_step = _linear.zero_grad, _linear.sgd_step
check_settings = import_lesson("01_Linear_Logistic.numpy.linear_numpy").check_settings

SOLVERS = ("gd", "sgd")
DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None
# The classifiers' defaults, as at L1: fit until the largest entry of dJ/dW, dJ/db is at
# most TOL, for at most EPOCHS epochs, with momentum; the cap warns.
EPOCHS, TOL, MOMENTUM = 1000, 1e-3, 0.9
# One warning class for every level of the lesson (L1 defines it; pytest.warns and
# warnings filters that name it catch all three).
ConvergenceWarning = import_lesson("01_Linear_Logistic.numpy.logistic_numpy").ConvergenceWarning


# --------------------------------------------------------------------------------------
# 1. The probabilities and the two losses
# --------------------------------------------------------------------------------------


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """p = 1 / (1 + e^-z), elementwise, stable for any z.

    ``torch.sigmoid`` evaluates the two-branch form (e^z / (1 + e^z) for z < 0,
    1 / (1 + e^-z) otherwise), so e^{|z|} is never formed: sigmoid(-1000) = 0,
    sigmoid(1000) = 1, no overflow.
    """
    return torch.sigmoid(z)


def softmax(Z: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax P_ik = e^{Z_ik - m_i} / sum_j e^{Z_ij - m_i}, m_i = max_j Z_ij.

    Subtracting the row maximum changes nothing mathematically (it cancels) but keeps
    every exponent <= 0, so nothing overflows. ``torch.softmax`` does exactly this.

    Inputs: Z (N, K);  Returns: P (N, K), rows summing to 1
    """
    return torch.softmax(Z, dim=1)


def binary_cross_entropy_with_logits(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy computed from logits (never from probabilities).

    J = 1/N sum_i [ softplus(z_i) - y_i z_i ],   softplus(z) = log(1 + e^z) = logaddexp(0, z)

    Inputs:  z (N,) logits; y (N,) labels in {0, 1}, same float dtype
    Returns: scalar tensor; autograd gives dJ/dz = (sigmoid(z) - y) / N
    """
    if z.shape != y.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: z has shape {tuple(z.shape)} but "
                         f"y has {tuple(y.shape)}; they must match")
    softplus = torch.logaddexp(torch.zeros_like(z), z)  # log(1 + e^z) = max(0,z)+log1p(e^-|z|)
    return (softplus - y * z).mean()


def softmax_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of a softmax over K classes, from logits.

    J = 1/N sum_i [ logsumexp_j(Z_ij) - Z_i[y_i] ]      (= -1/N sum_i log P_i[y_i])

    Inputs:  logits Z (N, K); y (N,) int64 labels in 0..K-1
    Returns: scalar tensor; autograd gives dJ/dZ = (softmax(Z) - onehot(y)) / N
    """
    if logits.ndim != 2 or y.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: expected logits (N, K) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(y.shape)}")
    log_normaliser = torch.logsumexp(logits, dim=1)  # (N,) log sum_j e^{Z_ij}, max subtracted
    true_class_logit = logits.gather(1, y[:, None])[:, 0]  # (N,) Z_i[y_i]
    return (log_normaliser - true_class_logit).mean()


# --------------------------------------------------------------------------------------
# 2. The estimators
# --------------------------------------------------------------------------------------


class _LinearClassifier(_linear.LinearParameters):
    """What binary and softmax regression share: parameters, checks, the training loop.

    A subclass says how many outputs K it has (``_n_outputs``), how labels are checked
    (``_labels``) and which loss is the data term of J (``_data_loss``).

    Initialisation: W ~ N(0, 1/D) from a generator seeded with ``seed`` (drawn on the
    CPU), b = 0. As at L1, ``fit`` continues from the current W, b when they exist with
    the right shapes (assign ``model.W = ...`` to start elsewhere).
    """

    def __init__(self, input_dim, *, solver, lr, epochs, batch_size, l2, seed, momentum,
                 device, tol):
        check_settings(SOLVERS, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                       l2=l2, momentum=momentum, tol=tol, input_dim=input_dim)
        self.solver, self.lr, self.epochs = solver, float(lr), epochs
        self.batch_size, self.l2, self.seed = batch_size, float(l2), seed
        self.momentum, self.tol = float(momentum), float(tol)
        self.device = torch.device(device)
        self.history: list[float] = []
        self.n_iter_ = 0  # epochs the last fit ran, as scikit-learn
        self._W: torch.Tensor | None = None
        self._b: torch.Tensor | None = None

    # -- to be provided by the subclasses ---------------------------------------
    def _n_outputs(self, y: torch.Tensor) -> int:
        raise NotImplementedError

    def _labels(self, y, n_rows: int, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def _data_loss(self, Z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- parameters --------------------------------------------------------------
    def _logits(self, X: torch.Tensor) -> torch.Tensor:
        return linear_forward(X, self.W, self.b)  # (N, K)

    # -- the objective -------------------------------------------------------------
    def objective(self, X, y) -> torch.Tensor:
        """J(W, b) on (X, y) as a differentiable scalar tensor (call .backward() on it)."""
        X = self._features(X)
        y = self._labels(y, X.shape[0], X.dtype)
        return self._data_loss(self._logits(X), y) + l2_penalty(self.W, self.l2)

    def loss(self, X, y) -> float:
        """J(W, b) on (X, y) as a float: mean cross-entropy + (l2/2) ||W||^2."""
        with torch.no_grad():
            return float(self.objective(X, y))

    def gradients(self, X, y) -> dict[str, torch.Tensor]:
        """dJ/dW (D, K) and dJ/db (K,) on (X, y), computed by autograd (W.grad is left as is)."""
        dW, db = torch.autograd.grad(self.objective(X, y), [self.W, self.b])
        return {"W": dW, "b": db}

    # -- training --------------------------------------------------------------------
    def fit(self, X, y, *, progress: bool = False):
        """Fit W and b to X (N, D) and labels y (N,); returns self.

        Stops after the first epoch at whose end every entry of the full gradient
        dJ/dW, dJ/db is at most ``tol`` in size, or after ``epochs`` epochs, and then
        warns (ConvergenceWarning) unless ``tol=0``; ``n_iter_`` is the number of epochs
        run (L1's rule). progress - show a tqdm bar over epochs. W and b follow X's dtype.
        """
        X = check_features(X, device=self.device)
        n, d = X.shape
        y = self._labels(y, n, X.dtype)
        k = self._n_outputs(y)
        if self._W is None:
            self._init_params(d, k, X.dtype)
        elif tuple(self.W.shape) != (d, k):
            raise ValueError(f"the model was built for X of shape (N, {self.W.shape[0]}) and "
                             f"{self.W.shape[1]} output(s); got X {tuple(X.shape)} needing {k}")
        self.W, self.b = self.W.to(X.dtype), self.b.to(X.dtype)  # follow X's dtype
        self._train(X, y, progress)
        return self

    def _train(self, X: torch.Tensor, y: torch.Tensor, progress: bool) -> None:
        """The training loop: zero_grad -> forward -> loss -> backward -> step, per batch."""
        n = X.shape[0]
        params = [self.W, self.b]
        batch = n if self.solver == "gd" else (self.batch_size or DEFAULT_SGD_BATCH_SIZE)
        order_rng = torch.Generator().manual_seed(self.seed)  # batch order, reproducible
        state: dict = {}  # momentum buffers
        self.history, self.n_iter_ = [], 0
        largest = math.inf  # max |dJ/dtheta| after the last epoch
        for _ in tqdm(range(self.epochs), desc=f"{type(self).__name__} ({self.solver})",
                      disable=not progress, leave=False):
            order = (torch.arange(n) if self.solver == "gd"
                     else torch.randperm(n, generator=order_rng)).to(self.device)
            for start in range(0, n, batch):
                rows = order[start:start + batch]
                zero_grad(params)
                J = self._data_loss(self._logits(X[rows]), y[rows]) + l2_penalty(self.W, self.l2)
                J.backward()  # W.grad = X^T dJ/dZ + l2 W,  b.grad = sum_i dJ/dZ_i
                sgd_step(params, self.lr, momentum=self.momentum, state=state)
            # J and its full gradient at the end of the epoch: the record and the stop test
            J_epoch = self._data_loss(self._logits(X), y) + l2_penalty(self.W, self.l2)
            dW, db = torch.autograd.grad(J_epoch, params)
            J_epoch = float(J_epoch.detach())
            if not math.isfinite(J_epoch):
                raise FloatingPointError(
                    f"the loss became {J_epoch} after {len(self.history) + 1} epoch(s): "
                    f"the learning rate lr={self.lr} is too large for this data; try lr/10")
            self.history.append(J_epoch)
            self.n_iter_ += 1
            largest = max(float(dW.abs().max()), float(db.abs().max()))
            if largest <= self.tol:
                return  # converged: grad J = 0 to within tol
        if self.tol > 0:
            warnings.warn(f"{type(self).__name__} did not converge in {self.epochs} epochs: the "
                          f"largest gradient entry is {largest:.2g} > tol={self.tol:g}; raise "
                          "epochs or lr, scale the features, or use l2 > 0 if the classes are "
                          "separable", ConvergenceWarning, stacklevel=3)

    def score(self, X, y) -> float:
        """Accuracy: the fraction of rows whose predicted class equals y."""
        X = self._features(X)
        labels = labels_as_int64(y, X.shape[0]).to(self.device)
        return float((self.predict(X) == labels).double().mean())


class LogisticRegression(_LinearClassifier):
    """Binary logistic regression, p(y = 1 | x) = sigmoid(x W + b), W (D, 1), b (1,).

    Inputs (constructor):
        input_dim  - D; when given, W and b exist at once (predict works before fit)
        solver     - "gd" (full batch) or "sgd" (mini-batches of batch_size, default 32)
        lr, batch_size, l2, seed - as in linear_lowlevel.LinearRegression
        epochs, tol - fit stops once every entry of dJ/dW, dJ/db is at most tol, or
                     after epochs epochs (then a ConvergenceWarning; tol=0 runs them all)
        momentum   - SGD momentum (default 0.9: see L1's _fit_gradient_descent)
        device, dtype - where the tensors live, and their dtype before fit

    Attributes after fit: W (D, 1), b (1,) leaf tensors; history = J after each epoch;
    n_iter_ = epochs run.
    """

    def __init__(self, input_dim: int | None = None, *, solver: str = "gd", lr: float = 0.1,
                 epochs: int = EPOCHS, batch_size: int | None = None, l2: float = 0.0,
                 seed: int = 0, momentum: float = MOMENTUM, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64, tol: float = TOL):
        super().__init__(input_dim, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                         l2=l2, seed=seed, momentum=momentum, device=device, tol=tol)
        if input_dim is not None:
            self._init_params(input_dim, 1, dtype)

    def _n_outputs(self, y):
        return 1  # one logit: the log-odds of class 1

    def _labels(self, y, n_rows, dtype):
        return check_binary_labels(y, n_rows, dtype=dtype, device=self.device)

    def _data_loss(self, Z, y):
        return binary_cross_entropy_with_logits(Z[:, 0], y)  # Z (N, 1) -> z (N,)

    def decision_function(self, X) -> torch.Tensor:
        """Logits z = X W + b, shape (N,). Detached."""
        X = self._features(X)
        with torch.no_grad():
            return self._logits(X)[:, 0]

    def predict_proba(self, X) -> torch.Tensor:
        """(N, 2): column 0 is P(y = 0) = 1 - p, column 1 is P(y = 1) = p (as scikit-learn)."""
        z = self.decision_function(X)  # (N,)
        # 1 - sigmoid(z) computed as sigmoid(-z): no cancellation when p is close to 1
        return torch.stack([sigmoid(-z), sigmoid(z)], dim=1)

    def predict(self, X) -> torch.Tensor:
        """Class 1 where z > 0 (p > 1/2), else 0: int64 (N,)."""
        return (self.decision_function(X) > 0).to(torch.int64)


class SoftmaxRegression(_LinearClassifier):
    """Multinomial logistic (softmax) regression, P(y = k | x) = softmax(x W + b)_k.

    Inputs (constructor):
        input_dim, n_classes - D and K; when both are given, W (D, K) and b (K,) exist
                               at once. n_classes=None: K = max label + 1 at fit
        solver, lr, epochs, batch_size, l2, seed, momentum, device, dtype, tol -
                               as in LogisticRegression
    """

    def __init__(self, input_dim: int | None = None, n_classes: int | None = None, *,
                 solver: str = "gd", lr: float = 0.1, epochs: int = EPOCHS,
                 batch_size: int | None = None, l2: float = 0.0, seed: int = 0,
                 momentum: float = MOMENTUM, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64, tol: float = TOL):
        super().__init__(input_dim, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                         l2=l2, seed=seed, momentum=momentum, device=device, tol=tol)
        check_settings(n_classes=n_classes)
        self.n_classes = n_classes
        if input_dim is not None and n_classes is not None:
            self._init_params(input_dim, n_classes, dtype)

    def _n_outputs(self, y):
        if self._W is not None:
            return self.W.shape[1]
        return self.n_classes or max(int(y.max()) + 1, 2)

    def _labels(self, y, n_rows, dtype):
        k = self.W.shape[1] if self._W is not None else self.n_classes
        return check_class_labels(y, n_rows, k, device=self.device)

    def _data_loss(self, Z, y):
        return softmax_cross_entropy(Z, y)

    def decision_function(self, X) -> torch.Tensor:
        """Logits Z = X W + b, shape (N, K). Detached."""
        X = self._features(X)
        with torch.no_grad():
            return self._logits(X)

    def predict_proba(self, X) -> torch.Tensor:
        """Class probabilities softmax(Z), shape (N, K), rows sum to 1."""
        return softmax(self.decision_function(X))

    def predict(self, X) -> torch.Tensor:
        """The most probable class, argmax_k Z_k: int64 (N,)."""
        return self.decision_function(X).argmax(dim=1)


# --------------------------------------------------------------------------------------
# 3. Checks at the door: the labels (X is checked by linear_lowlevel.check_features)
# --------------------------------------------------------------------------------------


def labels_as_int64(y, n_rows: int) -> torch.Tensor:
    """(N,) whole-number labels as int64 on the CPU; floats like 1.0 are accepted."""
    if isinstance(y, torch.Tensor):
        t = y.detach().cpu()
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"y: expected integer class labels, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.shape != (n_rows,):
        raise ValueError(f"y: expected a 1-D array of N = {n_rows} labels, one per row of X, "
                         f"got shape {tuple(t.shape)}")
    if t.is_floating_point() and not (torch.isfinite(t).all() and (t == t.round()).all()):
        raise ValueError("y: class labels must be whole numbers (0, 1, 2, ...), got "
                         f"values like {t[t != t.round()][:3].tolist()}")
    return t.to(torch.int64)


def check_binary_labels(y, n_rows: int, *, dtype: torch.dtype, device="cpu") -> torch.Tensor:
    """Binary labels: (N,) values in {0, 1} (ints, bools or floats), as floats.

    Returns: (N,) tensor in ``dtype`` (the features' float dtype) on ``device``
    """
    t = labels_as_int64(y, n_rows)
    if not ((t == 0) | (t == 1)).all():
        raise ValueError(f"y: binary logistic regression needs labels 0 or 1, got values "
                         f"{torch.unique(t)[:10].tolist()}; for more classes use "
                         "SoftmaxRegression")
    return t.to(dtype=dtype, device=device)


def check_class_labels(y, n_rows: int, n_classes: int | None, *, device="cpu") -> torch.Tensor:
    """Multiclass labels: (N,) integers in 0..K-1.

    Returns: (N,) int64 tensor on ``device``
    """
    t = labels_as_int64(y, n_rows)
    if (t < 0).any():
        raise ValueError(f"y: class labels must be 0..K-1, got negative values "
                         f"{torch.unique(t[t < 0])[:5].tolist()}")
    if n_classes is not None and (t >= n_classes).any():
        raise ValueError(f"y: class labels must be 0..{n_classes - 1} (n_classes={n_classes}), "
                         f"got {int(t.max())}")
    return t.to(device)
