"""Exercise 01 (starter): four activations as L1 layers, forward and backward.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 02_MLP/exercises --solutions my_solutions -k ex01

The task, the maths and hints are in ``02_MLP/exercises/01_activation_gradients.md``.
Use NumPy only. With x the input, y the output and dy = dL/dy:

    LeakyReLU(a)   y = x (x > 0),  a x (x <= 0)
    ELU(alpha)     y = x (x > 0),  alpha (e^x - 1)
    Softplus(beta) y = log(1 + e^(beta x)) / beta
    SiLU           y = x sigmoid(x)

``forward`` caches what ``backward`` needs (store it in ``self._cache``);
``backward(dy)`` returns dx = dL/dx. ``params`` and ``grads`` stay empty dicts.
"""

from __future__ import annotations

import numpy as np


def _as_float_array(x, where: str) -> np.ndarray:
    """x as a float32 or float64 array (integers and booleans become float64), or ValueError.

    Given to you: call it first in every forward.
    """
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{where} expects real numbers (float32 or float64); got dtype {x.dtype}")
    return x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic sigmoid, elementwise, in z's dtype (lesson 01, theory.md 3.5).

    Given to you. 1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) for z < 0: no positive
    exponent, so no overflow.
    """
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1.0 + exp_z)
    return out


class _Activation:
    """What the four layers share: empty params/grads and the cache check. Given to you."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    def _cached(self):
        """What forward stored in self._cache; RuntimeError if forward has not run."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    def _check_dy(self, dy, shape) -> np.ndarray:
        """dy as a float array of the forward output's shape, or ValueError."""
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
        raise NotImplementedError("LeakyReLU.forward: use the left branch at x = 0 "
                                  "(see 01_activation_gradients.md)")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * (1 if x > 0 else negative_slope)."""
        raise NotImplementedError("LeakyReLU.backward")


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
        raise NotImplementedError("ELU.forward: never exponentiate a large positive x "
                                  "(see 01_activation_gradients.md)")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * (1 if x > 0 else alpha e^x)."""
        raise NotImplementedError("ELU.backward")


class Softplus(_Activation):
    """y = log(1 + e^(beta x)) / beta, a smooth ReLU (Dugas et al. 2001).

    Inputs (constructor): beta > 0; larger beta is closer to ReLU.
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Softplus beta must be > 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape), float32 or float64. Returns: y > 0, same shape and dtype."""
        raise NotImplementedError("Softplus.forward: log(1 + e^u) = max(u, 0) + log(1 + e^-|u|) "
                                  "(see 01_activation_gradients.md)")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * sigmoid(beta x)."""
        raise NotImplementedError("Softplus.backward")


class SiLU(_Activation):
    """y = x sigmoid(x), the sigmoid-weighted linear unit (Elfwing, Uchibe and Doya 2018)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape), float32 or float64. Returns: y, same shape and dtype."""
        raise NotImplementedError("SiLU.forward (see 01_activation_gradients.md)")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * dy/dx (derive it with the product rule)."""
        raise NotImplementedError("SiLU.backward")
