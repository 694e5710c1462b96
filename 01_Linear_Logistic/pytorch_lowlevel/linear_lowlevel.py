"""Linear regression in low-level PyTorch (L2 of lesson 01): tensors and autograd, with the
loss, the SGD step and the training loop written out (no torch.nn layers, no torch.optim).

Least squares (Legendre 1805, Gauss 1809) with a ridge penalty (Hoerl & Kennard 1970)::

    y_hat = X W + b        J(W, b) = 1/(2N) sum_i ||y_hat_i - y_i||^2 + (l2/2) ||W||_F^2

fitted by the normal equation, full-batch gradient descent ("gd") or mini-batch SGD ("sgd").
W is (D, K) so that X @ W needs no transpose (nn.Linear stores the transpose). The
derivations are in ``../theory.md`` (sections 1 and 2; the notes that used to open this
file are in its appendix). ``train_linear.py`` beside this file runs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import import_lesson

# The estimators' settings are checked as at L1 (one table for every level of the lesson).
check_settings = import_lesson("01_Linear_Logistic.numpy.linear_numpy").check_settings
SOLVERS = ("normal", "gd", "sgd")
DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None


# --------------------------------------------------------------------------------------
# 1. The model and its objective, as tensor operations
# --------------------------------------------------------------------------------------


def linear_forward(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The affine map of the model.

    y_hat = X W + b     (b is broadcast over the N rows)

    Inputs:  X (N, D), W (D, K), b (K,), one float dtype, one device
    Returns: y_hat (N, K)
    """
    return X @ W + b  # (N, D) @ (D, K) -> (N, K), + (K,)


def mse_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Half the mean (over examples) squared error: the data term of J.

    J_data = 1/(2N) * sum_i ||y_hat_i - y_i||^2

    For K = 1 this equals ``0.5 * F.mse_loss(y_hat, y)``. For K > 1 it is K times
    that, because ``F.mse_loss`` averages over all N*K numbers, not over the N rows.

    Inputs:  y_hat, y - tensors of the SAME shape, (N,) or (N, K)
    Returns: scalar tensor (differentiable with respect to y_hat)
    """
    if y_hat.shape != y.shape:
        # (N, 1) - (N,) would broadcast to (N, N) and give a silently wrong loss
        raise ValueError(f"mse_loss: y_hat has shape {tuple(y_hat.shape)} but y has "
                         f"{tuple(y.shape)}; they must match")
    n = y.shape[0]
    return 0.5 * ((y_hat - y) ** 2).sum() / n


def l2_penalty(W: torch.Tensor, l2: float) -> torch.Tensor:
    """The ridge term of J: (l2/2) ||W||_F^2. Its gradient is l2 * W.

    Inputs:  W (D, K); l2 >= 0
    Returns: scalar tensor
    """
    return 0.5 * l2 * (W * W).sum()


# --------------------------------------------------------------------------------------
# 2. The optimiser, written by hand
# --------------------------------------------------------------------------------------


def zero_grad(params: Sequence[torch.Tensor]) -> None:
    """Forget the previous step's gradients: autograd ADDS into ``p.grad``.

    Setting ``p.grad = None`` (what ``optimizer.zero_grad()`` does by default) frees
    the memory; the next ``backward`` creates a fresh gradient tensor.
    """
    for p in params:
        p.grad = None


@torch.no_grad()  # the update itself must not be recorded in the autograd graph
def sgd_step(
    params: Sequence[torch.Tensor],
    lr: float,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    state: dict | None = None,
) -> dict:
    """One step of stochastic gradient descent, with the update rule of ``torch.optim.SGD``.

    For each parameter p with gradient g = p.grad (dampening 0, no Nesterov)::

        g <- g + weight_decay * p              (L2 penalty applied through the gradient)
        v <- g                                  on the first step
        v <- momentum * v + g                   afterwards        (only if momentum > 0)
        p <- p - lr * v                          (v = g when momentum = 0)

    Note that this "heavy ball" form scales the step by lr after accumulating v,
    as PyTorch does (Sutskever et al. 2013 put lr inside v: v <- mu v - lr g;
    the two agree while lr is constant).

    Inputs:
        params - tensors with requires_grad, whose ``.grad`` was filled by backward;
                 a parameter whose grad is None is skipped (as torch.optim does)
        lr > 0, momentum in [0, 1), weight_decay >= 0
        state  - the dict returned by the previous call (momentum buffers v, keyed by
                 the parameter's position in ``params``), or None on the first step
    Returns:
        the state dict to pass to the next call. The parameters are updated in place.
    """
    if not lr > 0:
        raise ValueError(f"sgd_step: lr must be > 0, got {lr!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"sgd_step: momentum must be in [0, 1), got {momentum!r}")
    if weight_decay < 0:
        raise ValueError(f"sgd_step: weight_decay must be >= 0, got {weight_decay!r}")
    state = {} if state is None else state
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad
        if weight_decay != 0:
            g = g + weight_decay * p  # d/dp (wd/2 ||p||^2) = wd * p
        if momentum != 0:
            velocity = state.get(i)
            if velocity is None:
                velocity = g.clone()  # first step: v = g
            else:
                velocity.mul_(momentum).add_(g)  # v = mu v + g
            state[i] = velocity
            g = velocity
        p.sub_(lr * g)  # p = p - lr v
    return state


# --------------------------------------------------------------------------------------
# 3. The closed form ("normal equation")
# --------------------------------------------------------------------------------------


def normal_equation(
    X: torch.Tensor, Y: torch.Tensor, l2: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact minimiser of J, without iterating.

    Centring removes the bias from the problem: with x_mean, y_mean the column
    means, Xc = X - x_mean and Yc = Y - y_mean, the optimal W solves

        (Xc^T Xc + N l2 I) W = Xc^T Yc        and then   b = y_mean - x_mean W.

    - l2 = 0: ``torch.linalg.lstsq`` solves min ||Xc W - Yc|| through an SVD
      (LAPACK gelsd). When Xc^T Xc is singular (collinear or constant features, or
      D > N) it returns the minimum-norm solution, as scikit-learn's
      LinearRegression does, instead of failing. CUDA's lstsq assumes full rank,
      so this solve always runs on the CPU and the result is moved back.
    - l2 > 0: the matrix is positive definite, ``torch.linalg.solve`` is enough.
      This equals ``sklearn.linear_model.Ridge(alpha=N * l2)``.

    Inputs:  X (N, D), Y (N, K) float tensors; l2 >= 0
    Returns: W (D, K), b (K,) in X's dtype and on X's device
    """
    n, d = X.shape
    x_mean = X.mean(dim=0)  # (D,)
    y_mean = Y.mean(dim=0)  # (K,)
    Xc = X - x_mean  # (N, D)
    Yc = Y - y_mean  # (N, K)
    if l2 == 0:
        W = torch.linalg.lstsq(Xc.cpu(), Yc.cpu(), driver="gelsd").solution.to(X.device)
    else:
        gram = Xc.T @ Xc + n * l2 * torch.eye(d, dtype=X.dtype, device=X.device)  # (D, D)
        W = torch.linalg.solve(gram, Xc.T @ Yc)  # (D, K)
    b = y_mean - x_mean @ W  # (K,)
    return W, b


# --------------------------------------------------------------------------------------
# 4. The estimator: scikit-learn style fit / predict / score
# --------------------------------------------------------------------------------------


class LinearParameters:
    """W (D, K) and b (K,) of a linear model as leaf tensors that autograd tracks, with the
    feature check that uses them; shared by this file's model and logistic_lowlevel.py's."""

    def _init_params(self, d: int, k: int, dtype: torch.dtype) -> None:
        """W ~ N(0, 1/D) (seeded, drawn on the CPU), b = 0."""
        generator = torch.Generator().manual_seed(self.seed)
        self.W = torch.randn(d, k, generator=generator, dtype=dtype) / math.sqrt(d)  # (D, K)
        self.b = torch.zeros(k, dtype=dtype)  # (K,)

    def _as_parameter(self, value, name: str) -> torch.Tensor:
        """A fresh leaf tensor on the model's device that autograd tracks."""
        return to_float_tensor(value, name=name).to(self.device).clone().requires_grad_(True)

    @property
    def W(self) -> torch.Tensor | None:
        """Weights (D, K), or None before fit."""
        return self._W

    @W.setter
    def W(self, value) -> None:
        self._W = self._as_parameter(value, "W")

    @property
    def b(self) -> torch.Tensor | None:
        """Bias (K,), or None before fit."""
        return self._b

    @b.setter
    def b(self, value) -> None:
        self._b = self._as_parameter(value, "b")

    def _features(self, X) -> torch.Tensor:
        """X checked, in the parameters' dtype and device, with D columns."""
        return check_features_for(self, X)


class LinearRegression(LinearParameters):
    """Least-squares linear regression with tensors as parameters.

    Inputs (constructor):
        input_dim  - D; when given, W and b are created at once (so predict works
                     before fit, e.g. after copying weights in); fit checks X has D columns
        output_dim - K; None means one target and 1-D predictions (N,)
        solver     - "normal" (closed form), "gd" (full batch) or "sgd" (mini-batches)
        lr, epochs - step size and number of passes over the data ("gd"/"sgd")
        batch_size - rows per step for "sgd" (default 32); "gd" and "normal" ignore it
        l2         - ridge strength in J (>= 0); the bias is not penalised
        seed       - seeds the initial weights and the order of mini-batches
        momentum   - heavy-ball momentum of sgd_step (0 = plain SGD)
        device     - where the tensors live ("cpu", "cuda", ...)
        dtype      - dtype of parameters created before fit; fit follows X's float dtype

    Attributes:
        W (D, K) and b (K,) - leaf tensors with requires_grad=True. Assigning to them
                  (``model.W = array``) stores a copy as a new leaf tensor.
        history - J (full training set, penalty included) after each epoch; empty for
                  the normal equation

    Initialisation: W ~ N(0, 1/D) from a generator seeded with ``seed`` (drawn on the CPU,
    so CPU and CUDA start from the same numbers), b = 0. The problem is convex, so the
    start changes the path, not the optimum. As at L1, ``fit`` continues from the current
    W, b when they exist with the right shapes (set them by hand to start elsewhere);
    the normal equation ignores them.
    """

    def __init__(
        self,
        input_dim: int | None = None,
        output_dim: int | None = None,
        *,
        solver: str = "normal",
        lr: float = 0.1,
        epochs: int = 100,
        batch_size: int | None = None,
        l2: float = 0.0,
        seed: int = 0,
        momentum: float = 0.0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
    ):
        check_settings(SOLVERS, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                       l2=l2, momentum=momentum, input_dim=input_dim, output_dim=output_dim)
        self.solver, self.lr, self.epochs = solver, float(lr), epochs
        self.batch_size, self.l2, self.seed = batch_size, float(l2), seed
        self.momentum = float(momentum)
        self.device = torch.device(device)
        self.history: list[float] = []
        self._W: torch.Tensor | None = None
        self._b: torch.Tensor | None = None
        self.single_target = output_dim is None  # 1-D y -> 1-D predictions
        if input_dim is not None:
            self._init_params(input_dim, output_dim or 1, dtype)

    # -- parameters ------------------------------------------------------------
    def _targets(self, y, n_rows: int) -> torch.Tensor:
        """y checked, as (N, K) in the parameters' dtype."""
        Y = check_regression_targets(y, n_rows, dtype=self.W.dtype, device=self.device)
        Y = Y.reshape(n_rows, -1)  # (N,) -> (N, 1)
        if Y.shape[1] != self.W.shape[1]:
            raise ValueError(f"y has {Y.shape[1]} target columns, but the model predicts "
                             f"{self.W.shape[1]}")
        return Y

    # -- the objective ---------------------------------------------------------
    def objective(self, X, y) -> torch.Tensor:
        """J(W, b) on (X, y) as a differentiable scalar tensor (call .backward() on it).

        J = 1/(2N) sum_i ||x_i W + b - y_i||^2 + (l2/2) ||W||_F^2
        """
        X = self._features(X)
        Y = self._targets(y, X.shape[0])
        return mse_loss(linear_forward(X, self.W, self.b), Y) + l2_penalty(self.W, self.l2)

    def loss(self, X, y) -> float:
        """J(W, b) on (X, y) as a Python float (penalty included)."""
        with torch.no_grad():
            return float(self.objective(X, y))

    def gradients(self, X, y) -> dict[str, torch.Tensor]:
        """dJ/dW (D, K) and dJ/db (K,) on (X, y), computed by autograd (W.grad is left as is)."""
        dW, db = torch.autograd.grad(self.objective(X, y), [self.W, self.b])
        return {"W": dW, "b": db}

    # -- training --------------------------------------------------------------
    def fit(self, X, y, *, progress: bool = False) -> LinearRegression:
        """Fit W and b to (X, y) with the chosen solver; returns self.

        Inputs: X (N, D) float32/float64 (integers -> float64); y (N,) or (N, K);
                progress - show a tqdm bar over epochs ("gd"/"sgd")
        W and b follow X's dtype.
        """
        X = check_features(X, device=self.device)
        n, d = X.shape
        Y = check_regression_targets(y, n, dtype=X.dtype, device=self.device)
        self.single_target = Y.ndim == 1
        Y = Y.reshape(n, -1)  # (N, K)
        k = Y.shape[1]
        if self._W is None:
            self._init_params(d, k, X.dtype)
        elif tuple(self.W.shape) != (d, k):
            raise ValueError(f"the model was built for X (N, {self.W.shape[0]}) and y with "
                             f"{self.W.shape[1]} column(s); got X {tuple(X.shape)} and y with "
                             f"{k} column(s)")
        self.W, self.b = self.W.to(X.dtype), self.b.to(X.dtype)  # follow X's dtype
        self.history = []

        if self.solver == "normal":
            self.W, self.b = normal_equation(X, Y, self.l2)
        else:
            self._gradient_descent(X, Y, progress)
        return self

    def _gradient_descent(self, X: torch.Tensor, Y: torch.Tensor, progress: bool) -> None:
        """The training loop: zero_grad -> forward -> loss -> backward -> step, per batch."""
        n = X.shape[0]
        params = [self.W, self.b]
        batch = n if self.solver == "gd" else (self.batch_size or DEFAULT_SGD_BATCH_SIZE)
        order_rng = torch.Generator().manual_seed(self.seed)  # batch order, reproducible
        state: dict = {}  # momentum buffers, carried from step to step
        for _ in tqdm(range(self.epochs), desc=f"linear regression ({self.solver})",
                      disable=not progress, leave=False):
            # "gd": the whole set in its order; "sgd": a new random order every epoch
            order = (torch.arange(n) if self.solver == "gd"
                     else torch.randperm(n, generator=order_rng)).to(self.device)
            for start in range(0, n, batch):
                rows = order[start:start + batch]
                zero_grad(params)
                y_hat = linear_forward(X[rows], self.W, self.b)  # (B, K)
                J = mse_loss(y_hat, Y[rows]) + l2_penalty(self.W, self.l2)
                J.backward()  # fills W.grad = X^T (y_hat - y)/B + l2 W, b.grad = mean(y_hat - y)
                sgd_step(params, self.lr, momentum=self.momentum, state=state)
            with torch.no_grad():
                J_epoch = mse_loss(linear_forward(X, self.W, self.b), Y) + l2_penalty(
                    self.W, self.l2)
            if not torch.isfinite(J_epoch):
                raise FloatingPointError(
                    f"the loss became {float(J_epoch)} after {len(self.history) + 1} epoch(s): "
                    f"the learning rate lr={self.lr} is too large for this data; try lr/10")
            self.history.append(float(J_epoch))

    # -- using the model ---------------------------------------------------------
    def predict(self, X) -> torch.Tensor:
        """y_hat = X W + b: (N,) if the model was fitted on 1-D y, else (N, K). Detached."""
        X = self._features(X)
        with torch.no_grad():
            y_hat = linear_forward(X, self.W, self.b)  # (N, K)
        return y_hat[:, 0] if self.single_target and y_hat.shape[1] == 1 else y_hat

    def score(self, X, y) -> float:
        """Coefficient of determination R^2 (averaged over the K outputs, as scikit-learn does).

        R^2_k = 1 - sum_i (y_ik - y_hat_ik)^2 / sum_i (y_ik - mean_k y)^2
        """
        X = self._features(X)
        Y = self._targets(y, X.shape[0])  # (N, K)
        with torch.no_grad():
            residual = ((Y - linear_forward(X, self.W, self.b)) ** 2).sum(dim=0)  # (K,)
            total = ((Y - Y.mean(dim=0)) ** 2).sum(dim=0)  # (K,)
            # a constant target has total = 0: score 1 if predicted exactly, else 0 (sklearn)
            r2 = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300),
                             (residual == 0).to(Y.dtype))
        return float(r2.mean())


# --------------------------------------------------------------------------------------
# 5. Checks at the door: user input into checked tensors (fit, predict, score call them)
# --------------------------------------------------------------------------------------
# Bad input must fail here, with a message that says what was expected, and not
# deep inside a matmul (or, worse, silently broadcast into a wrong answer).


def to_float_tensor(a, *, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert an array-like (NumPy array, list, tensor) to a floating-point tensor.

    float32 and float64 keep their dtype; integers, booleans and the other float types
    (float16, bfloat16) become float64. ``dtype``, when given, overrides both.

    Inputs:  a - any array-like of real numbers; name - used in error messages
    Returns: tensor of the same shape, float32 or float64, detached from any graph
    """
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":  # strings, objects, complex numbers
            raise ValueError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.is_complex():
        raise ValueError(f"{name}: expected real numbers, got dtype {t.dtype}")
    if dtype is not None:
        return t.to(dtype)
    return t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float64)


def check_features(X, *, dtype: torch.dtype | None = None, device="cpu") -> torch.Tensor:
    """Check and convert a design matrix.

    Inputs:  X - (N, D) array-like of finite real numbers, N >= 1
             dtype - force this float dtype (the model's, at predict time)
    Returns: (N, D) float tensor on ``device``
    Raises ValueError if X is not 2-D, is empty, or holds NaN/inf.
    """
    t = to_float_tensor(X, name="X", dtype=dtype)
    if t.ndim != 2 or t.shape[0] == 0:
        hint = {1: " (one feature? use X.reshape(-1, 1))", 2: ""}.get(
            t.ndim, " (flatten images first: X.reshape(len(X), -1))")
        raise ValueError(f"X: expected a 2-D array of shape (N, D), one row per example, "
                         f"N >= 1, got shape {tuple(t.shape)}{hint}")
    if not torch.isfinite(t).all():
        bad = torch.nonzero(~torch.isfinite(t))[0].tolist()
        raise ValueError(f"X: contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
                         "clean or impute the data first")
    return t.to(device)


def check_features_for(model, X) -> torch.Tensor:
    """X checked for a model with weights W (D, K), b (K,): D columns, in W's dtype and device.

    The estimators of both files (LinearRegression, LogisticRegression, SoftmaxRegression)
    call this at predict / score / loss time.
    """
    if model.W is None:
        more = ", n_classes" if hasattr(model, "n_classes") else ""
        raise RuntimeError(f"this {type(model).__name__} has no weights yet: call fit(X, y) "
                           f"first (or give the constructor input_dim{more})")
    if model.W.ndim != 2 or tuple(model.b.shape) != (model.W.shape[1],):
        raise ValueError(f"W must be (D, K) and b (K,); got W {tuple(model.W.shape)} and "
                         f"b {tuple(model.b.shape)}")
    X = check_features(X, dtype=model.W.dtype, device=model.device)
    if X.shape[1] != model.W.shape[0]:
        raise ValueError(f"X has {X.shape[1]} features, but the model was built for "
                         f"{model.W.shape[0]} (W has shape {tuple(model.W.shape)})")
    return X


def check_regression_targets(y, n_rows: int, *, dtype: torch.dtype, device="cpu") -> torch.Tensor:
    """Check and convert regression targets.

    Inputs:  y - (N,) or (N, K) array-like of finite real numbers; n_rows - N of X
    Returns: tensor of y's shape, in ``dtype`` (the features' dtype), on ``device``
    """
    t = to_float_tensor(y, name="y", dtype=dtype)
    if t.ndim not in (1, 2):
        raise ValueError(f"y: expected shape (N,) or (N, K), got {tuple(t.shape)}")
    if t.shape[0] != n_rows:
        raise ValueError(f"y: has {t.shape[0]} rows but X has {n_rows}; "
                         "expected one target per row of X")
    if not torch.isfinite(t).all():
        raise ValueError("y: contains NaN or inf")
    return t.to(device)
