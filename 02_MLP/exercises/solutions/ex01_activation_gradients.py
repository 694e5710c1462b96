"""Exercise 01 (reference solution): four activations as L1 layers, forward and backward.

Each class follows the L1 layer protocol of the lesson (``forward`` caches what
``backward`` needs; ``params`` and ``grads`` are empty dicts, there is nothing to
learn). With x the input, y the output and dy = dL/dy:

    LeakyReLU(a)   y = x (x > 0),  a x (x <= 0)           dx = dy * (1 if x > 0 else a)
    ELU(alpha)     y = x (x > 0),  alpha (e^x - 1)        dx = dy * (1 if x > 0 else alpha e^x)
    Softplus(beta) y = log(1 + e^(beta x)) / beta          dx = dy * sigmoid(beta x)
    SiLU           y = x s,  s = sigmoid(x)                dx = dy * s (1 + x (1 - s))

At the kink x = 0 the left branch is used, as PyTorch does (LeakyReLU: a, ELU: alpha).
Nothing may overflow: exponentials only ever see non-positive arguments.

The task text is in ``02_MLP/exercises/01_activation_gradients.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np


def _as_float_array(x, where: str) -> np.ndarray:
    """x as a float32 or float64 array (integers and booleans become float64), or ValueError."""
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{where} expects real numbers (float32 or float64); got dtype {x.dtype}")
    return x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic sigmoid, elementwise, in z's dtype (lesson 01, theory.md 3.5).

    1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) for z < 0: no positive exponent.
    """
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])  # z < 0 here: exp(z) in (0, 1), never overflows
    out[~positive] = exp_z / (1.0 + exp_z)
    return out


class _Activation:
    """What the four layers share: empty params/grads and the cache check."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    def _check_dy(self, dy, shape) -> np.ndarray:
        dy = _as_float_array(dy, f"{type(self).__name__}.backward")
        if dy.shape != shape:
            raise ValueError(f"{type(self).__name__}.backward expects dy of the forward "
                             f"output's shape {shape}; got {dy.shape}")
        return dy


class LeakyReLU(_Activation):
    """y = x for x > 0, negative_slope * x otherwise (Maas, Hannun and Ng 2013).

    Inputs (constructor): negative_slope, a float (0 gives ReLU).
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape), float32 or float64. Returns: y, same shape and dtype."""
        x = _as_float_array(x, "LeakyReLU")
        positive = x > 0  # at x = 0 the left branch: slope a, as in PyTorch
        self._cache = positive
        return np.where(positive, x, self.negative_slope * x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * (1 if x > 0 else negative_slope)."""
        positive = self._cached()
        dy = self._check_dy(dy, positive.shape)
        return np.where(positive, dy, self.negative_slope * dy)


class ELU(_Activation):
    """y = x for x > 0, alpha (e^x - 1) otherwise (Clevert, Unterthiner and Hochreiter 2016).

    Inputs (constructor): alpha > 0, the value y tends to as x -> -inf is -alpha.
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"ELU alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape), float32 or float64. Returns: y, same shape and dtype."""
        x = _as_float_array(x, "ELU")
        positive = x > 0
        # exp only of min(x, 0) <= 0: e^1000 would overflow in the branch np.where discards
        exp_neg = np.exp(np.minimum(x, 0))  # e^x where x <= 0, 1 elsewhere
        self._cache = (positive, exp_neg)
        # expm1 is accurate for x near 0, where e^x - 1 would cancel
        return np.where(positive, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * (1 if x > 0 else alpha e^x)."""
        positive, exp_neg = self._cached()
        dy = self._check_dy(dy, positive.shape)
        return np.where(positive, dy, dy * self.alpha * exp_neg)


class Softplus(_Activation):
    """y = log(1 + e^(beta x)) / beta, a smooth ReLU (Dugas et al. 2001).

    Stable form, with u = beta x: log(1 + e^u) = max(u, 0) + log(1 + e^-|u|).
    Derivative: dy/dx = e^u / (1 + e^u) = sigmoid(u).

    Inputs (constructor): beta > 0; larger beta is closer to ReLU
    (0 <= softplus - relu <= log(2) / beta, the gap largest at x = 0).
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Softplus beta must be > 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape), float32 or float64. Returns: y > 0, same shape and dtype."""
        x = _as_float_array(x, "Softplus")
        u = self.beta * x
        self._cache = _sigmoid(u)  # dy/dx, needed by backward
        return (np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))) / self.beta

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * sigmoid(beta x)."""
        slope = self._cached()
        return self._check_dy(dy, slope.shape) * slope


class SiLU(_Activation):
    """y = x sigmoid(x), the sigmoid-weighted linear unit (Elfwing, Uchibe and Doya 2018;
    "swish" with beta = 1 in Ramachandran, Zoph and Le 2017).

    Product rule with sigmoid' = s (1 - s):  dy/dx = s + x s (1 - s) = s (1 + x (1 - s)).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape), float32 or float64. Returns: y, same shape and dtype."""
        x = _as_float_array(x, "SiLU")
        s = _sigmoid(x)
        self._cache = (x, s)
        return x * s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * s (1 + x (1 - s))."""
        x, s = self._cached()
        dy = self._check_dy(dy, x.shape)
        return dy * s * (1 + x * (1 - s))
