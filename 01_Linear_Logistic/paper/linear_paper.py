"""Linear regression as a PyTorch module (L3 of lesson 01): the method of least squares.

Legendre (1805), appendix "Sur la méthode des moindres quarrés", and Gauss (1809), Book II,
Section III; the ridge term (Hoerl & Kennard 1970) is a later addition::

    y_hat = X W + b        J(W, b) = 1/(2N) sum_i ||y_hat_i - y_i||^2 + (l2/2) ||W||_F^2

One ``nn.Linear`` (weight = W^T), ``HalfSquaredError`` (exactly J's data term), SGD whose
``weight_decay`` on the weight only is the penalty, and a scikit-learn-style estimator.
The derivations are in ``../theory.md`` (section 1; the notes that used to open this file
are in its appendix). ``train_linear.py`` runs it; ``convert.py`` ports to scikit-learn.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from utils import import_lesson
from utils.data_loaders import make_loader
from utils.training_utils import History, fit

# Written once in this lesson: the settings checks (L1), the input checks and Legendre's
# normal equations on tensors (L2); this level adds the torch.nn and torch.optim parts.
check_settings = import_lesson("01_Linear_Logistic.numpy.linear_numpy").check_settings
_l2 = import_lesson("01_Linear_Logistic.pytorch_lowlevel.linear_lowlevel")
to_float_tensor, check_features, check_targets = (_l2.to_float_tensor, _l2.check_features,
                                                  _l2.check_regression_targets)
check_features_for, normal_equation = _l2.check_features_for, _l2.normal_equation

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
# 2. Fitting by SGD through the shared training loop (the normal equations: L2's)
# --------------------------------------------------------------------------------------


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
# 3. The scikit-learn-style estimator around the module
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
        check_settings(SOLVERS, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                       l2=l2, momentum=momentum, input_dim=input_dim, output_dim=output_dim)
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
        value = to_float_tensor(value, name="W")
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
        value = to_float_tensor(value, name="b")
        if value.ndim > 1 or value.numel() != bias.numel():
            raise ValueError(f"b: expected shape {tuple(bias.shape)}, got {tuple(value.shape)}")
        with torch.no_grad():
            bias.copy_(value.reshape(-1))

    def _require_model(self) -> None:
        if self.model is None:
            raise RuntimeError("this LinearRegression has no weights yet: call fit(X, y) first "
                               "(or pass input_dim to the constructor)")

    def _features(self, X) -> torch.Tensor:
        """X checked (as at L2), in the module's dtype and on its device, with D columns."""
        return check_features_for(self, X)

    def _targets(self, y, n_rows: int) -> torch.Tensor:
        weight = self.model.linear.weight
        Y = check_targets(y, n_rows, dtype=weight.dtype, device=self.device).reshape(n_rows, -1)
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
        Y = check_targets(y, n, dtype=X.dtype)
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


