"""Logistic and softmax regression in NumPy (L1 of lesson 01), with numerically stable losses.

Binary logistic regression (Cox 1958), p(y = 1 | x) = sigmoid(x W + b), and softmax
regression, p(y = k | x) = softmax(x W + b)_k (Bishop, PRML, 4.3.2 and 4.3.4), both fitted
by maximising the likelihood: gradient descent with momentum, and Newton's method (IRLS)
for the binary model. The objectives, their gradients ("prediction minus target"), the
stable sigmoid / softplus / log-sum-exp and the scikit-learn mapping are derived in
``../theory.md`` (sections 3 and 4; the notes that used to open this file are in its
appendix). ``train_logistic.py`` beside this file runs them.
"""

from __future__ import annotations

import warnings

import numpy as np
from tqdm import tqdm

from utils import import_lesson

# The input checks were written for linear regression, the first model of the lesson.
_linear = import_lesson("01_Linear_Logistic.numpy.linear_numpy")
check_settings = _linear.check_settings

DEFAULT_SGD_BATCH_SIZE = 32  # used when solver="sgd" and batch_size is None
# The classifiers' defaults: fit until the largest entry of the gradient of J is at most
# TOL, for at most EPOCHS epochs, with momentum (see _fit_gradient_descent).
EPOCHS, TOL, MOMENTUM = 1000, 1e-3, 0.9


class ConvergenceWarning(UserWarning):
    """``fit`` reached its ``epochs`` cap before the gradient fell to ``tol``.

    The weights are usable but not the optimum: raise ``epochs`` (or ``lr``), or scale
    the features. Same name and meaning as scikit-learn's ``ConvergenceWarning``.
    """


# ---------------------------------------------------------------------------
# Numerically stable building blocks
# ---------------------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function 1 / (1 + e^-z), stable for any z (no overflow warning at |z| = 1000).

    Inputs:  z - array of any shape, float32 or float64.
    Returns: array of z's shape and dtype, values in [0, 1] (strictly inside unless
             rounding reaches 0 or 1); sigmoid(-z) = 1 - sigmoid(z).
    """
    z = np.asarray(z)
    with np.errstate(under="ignore"):  # e^-|z| may underflow to 0: the right limit
        e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
        # z >= 0: 1 / (1 + e^-z);   z < 0: e^z / (1 + e^z)   (same function, divided by e^z)
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(z: np.ndarray) -> np.ndarray:
    """softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|), stable for any z.

    Inputs:  z - array of any shape.
    Returns: array of z's shape, values >= 0 (and >= z).
    """
    z = np.asarray(z)
    with np.errstate(under="ignore"):
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def logsumexp(Z: np.ndarray) -> np.ndarray:
    """Row-wise log sum_k e^Z[i, k], computed as m + log sum_k e^(Z[i, k] - m), m = max_k Z[i, k].

    Inputs:  Z (N, K).
    Returns: (N,).
    """
    m = Z.max(axis=1, keepdims=True)  # (N, 1); every shifted exponent is <= 0
    with np.errstate(under="ignore"):
        return m[:, 0] + np.log(np.sum(np.exp(Z - m), axis=1))


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, P[i, k] = e^Z[i, k] / sum_j e^Z[i, j], with the row max subtracted.

    Subtracting m_i = max_j Z[i, j] changes nothing mathematically (it cancels in the
    ratio) but keeps every exponent <= 0, so nothing overflows; the largest entry
    becomes e^0 = 1, so the denominator is >= 1 and never 0.

    Inputs:  Z (N, K).
    Returns: P (N, K), each row non-negative and summing to 1; Z's dtype.
    """
    Z = np.asarray(Z)
    with np.errstate(under="ignore"):  # tiny entries may round to 0 (or to subnormals)
        E = np.exp(Z - Z.max(axis=1, keepdims=True))  # (N, K), entries in [0, 1]
        return E / E.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# The losses: each returns (loss, dloss/dlogits), mean over the batch
# ---------------------------------------------------------------------------


def binary_cross_entropy_with_logits(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean binary cross-entropy computed from logits, and its gradient.

        L = 1/N sum_i [softplus(z_i) - y_i z_i]        dL/dz = (sigmoid(z) - y) / N

    This is -1/N sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)] with p = sigmoid(z),
    rewritten so that it never takes log(0) (same value as PyTorch's
    ``F.binary_cross_entropy_with_logits``).

    Inputs:  z - (N,) or (N, 1) logits; y - targets in [0, 1] with the same number
             of elements (0/1 labels, or soft labels).
    Returns: (loss as a Python float, dL/dz with z's shape).
    """
    z = np.asarray(z)
    y = np.asarray(y)
    if z.ndim not in (1, 2) or (z.ndim == 2 and z.shape[1] != 1) or y.size != z.shape[0]:
        raise ValueError(f"binary_cross_entropy_with_logits expects z of shape (N,) or (N, 1) "
                         f"and y with N elements; got z {z.shape} and y {y.shape}")
    y = y.reshape(z.shape).astype(z.dtype, copy=False)
    n = z.shape[0]
    loss = np.sum(softplus(z) - y * z) / n  # mean of -log p(y | z)
    dz = (sigmoid(z) - y) / n  # dL/dz = (p - y) / N
    return float(loss), dz


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy with integer labels, and its gradient.

        L = 1/N sum_i [logsumexp(Z_i) - Z_i[y_i]]      dL/dZ = (softmax(Z) - onehot(y)) / N

    Same value as PyTorch's ``F.cross_entropy(Z, y)``.

    Inputs:  logits Z (N, K); y (N,) integer labels in 0..K-1.
    Returns: (loss as a Python float, dL/dZ (N, K)).
    """
    Z = np.asarray(logits)
    y = np.asarray(y)
    if Z.ndim != 2 or y.shape != (Z.shape[0],):
        raise ValueError(f"softmax_cross_entropy expects logits (N, K) and labels (N,); "
                         f"got logits {Z.shape} and labels {y.shape}")
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= Z.shape[1])):
        raise ValueError(f"labels must be integers in 0..{Z.shape[1] - 1} (K = {Z.shape[1]} "
                         f"columns of logits); got dtype {y.dtype}")
    n = Z.shape[0]
    rows = np.arange(n)
    loss = np.sum(logsumexp(Z) - Z[rows, y]) / n  # mean of -log softmax(Z_i)[y_i]
    dZ = softmax(Z)  # (N, K)
    dZ[rows, y] -= 1.0  # softmax(Z) - onehot(y), without building the one-hot matrix
    return float(loss), dZ / n


# ---------------------------------------------------------------------------
# Checks at the door (X and the settings: linear_numpy's check_features / check_settings)
# ---------------------------------------------------------------------------


def check_features(X) -> np.ndarray:
    """X as a float (N, D) array (see linear_numpy.check_features)."""
    return _linear.check_features(X, hint="flatten images with x.reshape(len(x), -1)")


def check_labels(y, n_rows: int) -> np.ndarray:
    """Class labels y (N,), whole numbers (floats such as 1.0 accepted), as int64 (N,)."""
    y = np.asarray(y)
    if y.shape != (n_rows,):
        raise ValueError(f"y must be a 1-D array of labels with one entry per row of X, "
                         f"shape ({n_rows},); got shape {y.shape}")
    whole = y.dtype.kind in "biu" or (y.dtype.kind == "f" and np.all(np.isfinite(y))
                                      and np.all(y == np.round(y)))
    if not whole:
        raise ValueError(f"y must hold integer class labels (whole numbers, no NaN or inf); "
                         f"got dtype {y.dtype}")
    return y.astype(np.int64)


# ---------------------------------------------------------------------------
# A linear layer with a classification loss on top: what both models share
# ---------------------------------------------------------------------------


class _LinearClassifier(_linear.LinearParameters):
    """Logits Z = X W + b, trained by minimising a cross-entropy plus (l2/2) ||W||^2.

    The two models below differ only in K (1 logit or K logits), the loss and how
    logits become probabilities; the layer protocol, the gradient of the penalty and
    the training loop are the same, so they live here. Subclasses define
    ``_data_loss(Z, y) -> (loss, dZ)``, ``_check_labels`` and ``_n_outputs``.

    Initialisation: W ~ N(0, 1/D), b = 0, from ``np.random.default_rng(seed)``. The
    objective is convex (strictly so when l2 > 0), so the start changes how long
    training takes, not where it ends. ``fit`` continues from the current W, b when
    they exist with the right shapes (set them by hand to start elsewhere).
    """

    solvers: tuple[str, ...] = ("gd", "sgd")

    def __init__(self, input_dim: int | None, n_outputs: int | None, *, solver: str, lr: float,
                 epochs: int, batch_size: int | None, l2: float, seed: int, momentum: float,
                 tol: float):
        check_settings(self.solvers, solver=solver, lr=lr, epochs=epochs, batch_size=batch_size,
                       l2=l2, momentum=momentum, tol=tol, input_dim=input_dim)
        self.solver, self.lr, self.epochs = solver, float(lr), int(epochs)
        self.batch_size, self.l2 = batch_size, float(l2)
        self.momentum, self.tol = float(momentum), float(tol)
        self.n_iter_ = 0  # epochs (newton: iterations) the last fit ran, as scikit-learn
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.history: list[float] = []
        if input_dim is not None and n_outputs is not None:
            self._init_params(int(input_dim), int(n_outputs), np.float64)

    # -- parameters ---------------------------------------------------------

    def _check_ready(self, X: np.ndarray) -> None:
        """Raise ValueError unless the model has parameters that fit X's feature count."""
        if "W" not in self.params:
            raise ValueError(f"this {type(self).__name__} has no parameters yet: call "
                             f"fit(X, y) first (or pass input_dim, and n_classes for "
                             f"SoftmaxRegression, to the constructor)")
        if X.shape[1] != self.W.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features but the model expects "
                             f"{self.W.shape[0]}: X must have shape (N, {self.W.shape[0]})")

    # -- the layer protocol -----------------------------------------------------

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Logits Z = X W + b, caching X for backward.

        Inputs:  X (N, D).
        Returns: Z (N, K) (K = 1 for the binary model).
        """
        self.cache_X = X
        return X @ self.W + self.b  # (N, D) @ (D, K) + (K,) -> (N, K)

    def backward(self, dZ: np.ndarray) -> np.ndarray:
        """Backpropagate dL/dZ through Z = X W + b.

        Fills ``grads`` with the data term's gradient only; the penalty's l2 W is
        added by ``gradients`` (the layer does not know which penalty its loss has).

        Inputs:  dZ (N, K) - dL/dZ for the X cached by the last forward.
        Returns: dL/dX (N, D).
        """
        X = self.cache_X
        self.grads["W"] = X.T @ dZ  # dL/dW = X^T dZ      (D, N) @ (N, K) -> (D, K)
        self.grads["b"] = dZ.sum(axis=0)  # dL/db = sum_i dZ_i                 (K,)
        return dZ @ self.W.T  # dL/dX = dZ W^T     (N, K) @ (K, D) -> (N, D)

    # -- the objective ----------------------------------------------------------

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validate (X, y): X (N, D) float, y (N,) labels checked by the subclass."""
        X = check_features(X)
        return X, self._check_labels(check_labels(y, X.shape[0]))

    def _objective(self, X: np.ndarray, y: np.ndarray) -> float:
        data_loss, _ = self._data_loss(self.forward(X), y)
        return data_loss + 0.5 * self.l2 * float(np.sum(self.W**2))  # + (l2/2)||W||^2

    def _objective_and_gradients(self, X: np.ndarray,
                                 y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """J and {dJ/dW, dJ/db} from one forward and one backward pass."""
        data_loss, dZ = self._data_loss(self.forward(X), y)
        self.backward(dZ)
        J = data_loss + 0.5 * self.l2 * float(np.sum(self.W**2))  # + (l2/2)||W||^2
        return J, {"W": self.grads["W"] + self.l2 * self.W,  # d/dW (l2/2)||W||^2 = l2 W
                   "b": self.grads["b"]}  # the bias is not penalised

    def _gradients(self, X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return self._objective_and_gradients(X, y)[1]

    def loss(self, X, y) -> float:
        """The training objective J(W, b) on (X, y): mean cross-entropy + (l2/2) ||W||^2.

        Inputs:  X (N, D); y (N,) labels.
        Returns: J as a Python float.
        """
        X, y = self._prepare(X, y)
        self._check_ready(X)
        return self._objective(X, y)

    def gradients(self, X, y) -> dict[str, np.ndarray]:
        """dJ/dW and dJ/db of the full objective on (X, y).

        Inputs:  X (N, D); y (N,) labels.
        Returns: {"W": (D, K), "b": (K,)}.
        """
        X, y = self._prepare(X, y)
        self._check_ready(X)
        return self._gradients(X, y)

    # -- fitting ------------------------------------------------------------------

    def fit(self, X, y, *, progress: bool = False):
        """Fit W and b to (X, y) with the chosen solver.

        gd / sgd stop after the first epoch at whose end every entry of the full
        gradient dJ/dW, dJ/db is at most ``tol`` in size (the optimality condition
        grad J = 0, to within tol), or after ``epochs`` epochs; reaching the cap first
        emits a ConvergenceWarning. ``tol=0`` runs every epoch and never warns. Newton
        stops once its step is at rounding level, and warns if ``epochs`` runs out first.
        ``n_iter_`` tells how many epochs (iterations) ran.

        Inputs:  X (N, D) real numbers; y (N,) integer labels; progress - tqdm bar.
        Returns: self, fitted; W and b have X's float dtype.
        """
        X, y = self._prepare(X, y)
        n, d = X.shape
        k = self._n_outputs(y)
        if "W" in self.params and self.W.shape != (d, k):
            raise ValueError(f"the model was built for X of shape (N, {self.W.shape[0]}) and "
                             f"{self.W.shape[1]} output(s); got X {X.shape} needing {k}")
        if "W" not in self.params:
            self._init_params(d, k, X.dtype)
        self.W, self.b = self.W.astype(X.dtype), self.b.astype(X.dtype)  # follow X's dtype
        self.history, self.n_iter_ = [], 0
        if self.solver == "newton":
            self._fit_newton(X, y, progress)
        else:
            batch_size = n if self.solver == "gd" else (self.batch_size or DEFAULT_SGD_BATCH_SIZE)
            self._fit_gradient_descent(X, y, batch_size, progress)
        return self

    def _fit_gradient_descent(self, X: np.ndarray, y: np.ndarray, batch_size: int,
                              progress: bool) -> None:
        """(Mini-batch) gradient descent with momentum (torch.optim.SGD's rule)::

            v <- momentum v + dJ/dtheta   (v = 0 at the start)     theta <- theta - lr v

        for theta = W and b. With momentum 0 this is plain gradient descent; with 0.9,
        v averages about the last 10 gradients, so along a shallow, consistent slope
        the step grows to lr / (1 - momentum) while steep directions still see lr.
        Every epoch visits each example once, in a fresh random order for sgd, and
        ends by checking the full gradient against ``tol`` (see ``fit``).
        """
        n = X.shape[0]
        name = type(self).__name__
        velocity = {key: np.zeros_like(p) for key, p in self.params.items()}
        largest = np.inf  # max |dJ/dtheta| after the last epoch
        for _ in tqdm(range(self.epochs), desc=f"{name} {self.solver}", disable=not progress):
            order = self.rng.permutation(n) if batch_size < n else np.arange(n)
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                grads = self._gradients(X[batch], y[batch])
                for key in ("W", "b"):
                    velocity[key] *= self.momentum
                    velocity[key] += grads[key]
                    self.params[key] -= self.lr * velocity[key]  # in place, as W / b
            J, grads = self._objective_and_gradients(X, y)
            self.history.append(J)
            self.n_iter_ += 1
            largest = max(float(np.max(np.abs(g))) for g in grads.values())
            if largest <= self.tol:
                return  # converged: grad J = 0 to within tol
        if self.tol > 0:
            warnings.warn(f"{name} did not converge in {self.epochs} epochs: the largest "
                          f"gradient entry is {largest:.2g} > tol={self.tol:g}; raise epochs "
                          "or lr, scale the features, or use l2 > 0 if the classes are "
                          "separable", ConvergenceWarning, stacklevel=3)

    # -- using the fitted model ------------------------------------------------------

    def _logits(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Validated X and its logits Z = X W + b (N, K) in X's dtype."""
        X = check_features(X)
        self._check_ready(X)
        return X, (X @ self.W + self.b).astype(X.dtype, copy=False)

    def score(self, X, y) -> float:
        """Accuracy: the fraction of examples whose predicted class equals y.

        Inputs:  X (N, D); y (N,) labels.
        Returns: accuracy in [0, 1] as a Python float.
        """
        X, y = self._prepare(X, y)
        return float(np.mean(self.predict(X) == y))


class LogisticRegression(_LinearClassifier):
    """Binary logistic regression, p(y = 1 | x) = sigmoid(x W + b), W (D, 1), b (1,).

    Minimises J = 1/N sum_i [softplus(z_i) - y_i z_i] + (l2/2) ||W||^2 (theory.md 3.3).

    Inputs (constructor):
        input_dim  - D; when given, W and b exist right away (else fit creates them).
        solver     - "gd" (full batch), "sgd" (mini-batches) or "newton" (Newton /
                     IRLS; ``lr`` unused: the Hessian sets the step, ``epochs`` caps
                     the iterations, and it stops once the step is at rounding level).
        lr         - gd / sgd step size (> 0); momentum - in [0, 1) (default 0.9).
        tol, epochs - gd / sgd stop once every entry of the gradient of J is at most
                     tol (default 1e-3), or after ``epochs`` passes over the data
                     (default 1000), with a ConvergenceWarning; tol=0 runs them all.
        batch_size - sgd mini-batch size (default 32); gd uses the full batch.
        l2         - ridge strength (>= 0), bias unpenalised; seed - init and shuffling.
    Labels must be 0 or 1.

    Attributes: W (D, 1), b (1,), params, grads, history (J after every epoch/iteration),
    n_iter_ (epochs / iterations the last fit ran).
    """

    solvers = ("gd", "sgd", "newton")

    def __init__(self, input_dim: int | None = None, *, solver: str = "gd", lr: float = 0.1,
                 epochs: int = EPOCHS, batch_size: int | None = None, l2: float = 0.0,
                 seed: int = 0, momentum: float = MOMENTUM, tol: float = TOL):
        super().__init__(input_dim, 1, solver=solver, lr=lr, epochs=epochs,
                         batch_size=batch_size, l2=l2, seed=seed, momentum=momentum, tol=tol)

    def _n_outputs(self, y: np.ndarray) -> int:
        return 1  # one logit: the log-odds of class 1

    def _check_labels(self, y: np.ndarray) -> np.ndarray:
        bad = (y != 0) & (y != 1)
        if np.any(bad):
            raise ValueError(f"LogisticRegression needs labels 0 or 1; got {np.unique(y[bad])[:5]}"
                             f" (for K > 2 classes use SoftmaxRegression)")
        return y

    def _data_loss(self, Z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Binary cross-entropy of logits Z (N, 1); returns (loss, dZ (N, 1))."""
        return binary_cross_entropy_with_logits(Z, y)

    def _fit_newton(self, X: np.ndarray, y: np.ndarray, progress: bool) -> None:
        """Newton's method on theta = [W; b]: theta <- theta - H^-1 g  (IRLS).

        With X1 = [X, 1] (N, D+1), p = sigmoid(X1 theta) and s = p (1 - p)::

            g = X1^T (p - y) / N + l2 [W; 0]                      (D+1,)
            H = X1^T diag(s) X1 / N + l2 diag(1, ..., 1, 0)        (D+1, D+1)

        Each step minimises the local quadratic model of J, which is a weighted
        least-squares problem, hence "iteratively reweighted least squares". Near the
        optimum the error squares at every step. A step that would increase J is
        halved until it does not (a simple line search), so a far start cannot diverge.
        With l2 = 0 on separable data H becomes singular and the optimum is at
        infinity; use l2 > 0 there (lstsq then gives a finite, minimum-norm step).
        """
        n, d = X.shape
        X1 = np.hstack([X, np.ones((n, 1), dtype=X.dtype)])  # (N, D+1): bias as a feature
        penalty = np.full(d + 1, self.l2, dtype=X.dtype)
        penalty[-1] = 0.0  # the bias is not penalised
        current = self._objective(X, y)
        for _ in tqdm(range(self.epochs), desc="LogisticRegression newton", disable=not progress):
            theta = np.concatenate([self.W[:, 0], self.b])  # (D+1,)
            p = sigmoid(X1 @ theta)  # (N,)
            g = X1.T @ (p - y) / n + penalty * theta  # (D+1,)
            s = p * (1.0 - p)  # (N,) weights: the variance of each Bernoulli
            H = (X1.T * s) @ X1 / n + np.diag(penalty)  # (D+1, D+1), X1^T diag(s) X1 / N
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:  # singular H: the minimum-norm step instead
                step = np.linalg.lstsq(H, g, rcond=None)[0]
            t = 1.0
            while True:  # backtracking: halve the step until J does not increase
                new_theta = theta - t * step
                self.W[:, 0], self.b[:] = new_theta[:d], new_theta[d:]
                candidate = self._objective(X, y)
                if candidate <= current or t < 1e-10:
                    break
                t *= 0.5
            if candidate > current:  # no step helps: we are at rounding level, undo and stop
                self.W[:, 0], self.b[:] = theta[:d], theta[d:]
                break
            current = candidate
            self.history.append(current)
            self.n_iter_ += 1
            if np.max(np.abs(t * step)) <= 1e-12 * (1.0 + np.max(np.abs(theta))):
                break  # converged: the step no longer changes theta beyond rounding
        else:
            warnings.warn(f"LogisticRegression newton did not converge in {self.epochs} "
                          "iterations; raise epochs, or use l2 > 0 on separable data",
                          ConvergenceWarning, stacklevel=3)
        if not self.history:  # stopped before the first accepted step: record where we are
            self.history.append(current)

    def decision_function(self, X) -> np.ndarray:
        """Logits z = X W + b, the log-odds log p / (1 - p).

        Inputs:  X (N, D).
        Returns: (N,) in X's float dtype.
        """
        _, Z = self._logits(X)
        return Z[:, 0]  # (N, 1) -> (N,)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns [p(y=0), p(y=1)] as in scikit-learn.

        Inputs:  X (N, D).
        Returns: (N, 2), rows summing to 1, X's float dtype.
        """
        z = self.decision_function(X)
        # 1 - sigmoid(z) computed as sigmoid(-z): no cancellation when p is close to 1
        return np.stack([sigmoid(-z), sigmoid(z)], axis=1)  # (N, 2)

    def predict(self, X) -> np.ndarray:
        """Predicted labels: 1 where p(y=1) > 0.5, that is where z > 0.

        Inputs:  X (N, D).
        Returns: (N,) int64 in {0, 1}.
        """
        return (self.decision_function(X) > 0).astype(np.int64)


class SoftmaxRegression(_LinearClassifier):
    """Multinomial logistic regression, p(y | x) = softmax(x W + b), W (D, K), b (K,).

    Minimises J = 1/N sum_i [logsumexp(Z_i) - Z_i[y_i]] + (l2/2) ||W||^2.

    Inputs (constructor):
        input_dim, n_classes - D and K; when both are given, W and b exist right away.
                     Otherwise fit takes K = max(y) + 1 (pass n_classes when a class
                     might be missing from the training labels).
        solver     - "gd" (full batch) or "sgd" (mini-batches, default size 32).
        lr, momentum, tol, epochs - as in LogisticRegression: fit stops once every
                     entry of the gradient of J is at most tol, or warns after epochs.
        batch_size - sgd mini-batch size (default 32); gd uses the full batch.
        l2         - ridge strength (>= 0), bias unpenalised; seed - init and shuffling.

    Note: adding the same vector to every column of W (or the same number to every
    b_k) does not change the probabilities. The penalty picks W's columns summing to
    zero; b starts at 0 and its gradient sums to 0 over classes, so it stays centred.

    Attributes: W (D, K), b (K,), params, grads, history (J after every epoch), n_iter_.
    """

    def __init__(self, input_dim: int | None = None, n_classes: int | None = None, *,
                 solver: str = "gd", lr: float = 0.1, epochs: int = EPOCHS,
                 batch_size: int | None = None, l2: float = 0.0, seed: int = 0,
                 momentum: float = MOMENTUM, tol: float = TOL):
        check_settings(n_classes=n_classes)
        self.n_classes = n_classes
        super().__init__(input_dim, n_classes, solver=solver, lr=lr, epochs=epochs,
                         batch_size=batch_size, l2=l2, seed=seed, momentum=momentum, tol=tol)

    def _n_outputs(self, y: np.ndarray) -> int:
        if "W" in self.params:
            return self.W.shape[1]
        return self.n_classes or max(int(y.max()) + 1, 2)

    def _check_labels(self, y: np.ndarray) -> np.ndarray:
        k = self.W.shape[1] if "W" in self.params else self.n_classes
        if y.min() < 0 or (k is not None and y.max() >= k):
            top = "K-1" if k is None else str(k - 1)
            raise ValueError(f"SoftmaxRegression needs labels in 0..{top}; got labels from "
                             f"{y.min()} to {y.max()}")
        return y

    def _data_loss(self, Z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Softmax cross-entropy of logits Z (N, K); returns (loss, dZ (N, K))."""
        return softmax_cross_entropy(Z, y)

    def decision_function(self, X) -> np.ndarray:
        """Logits Z = X W + b.

        Inputs:  X (N, D).
        Returns: (N, K) in X's float dtype.
        """
        return self._logits(X)[1]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities softmax(X W + b).

        Inputs:  X (N, D).
        Returns: (N, K), rows summing to 1, X's float dtype.
        """
        return softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """Predicted labels argmax_k Z[i, k] (softmax is monotone, so no need to apply it).

        Inputs:  X (N, D).
        Returns: (N,) int64.
        """
        return self.decision_function(X).argmax(axis=1).astype(np.int64)


