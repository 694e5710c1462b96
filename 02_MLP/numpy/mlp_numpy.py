"""The multilayer perceptron in NumPy (L1 of lesson 02): layers, backpropagation, optimisers.

Rumelhart, Hinton & Williams (1986): h_l = f(h_{l-1} W_l + b_l), logits = h_{L-1} W_L + b_L,
trained by the chain rule applied layer by layer. Every layer follows the L1 layer protocol
(``forward`` caches, ``backward(dy) -> dx`` fills ``grads``); with Xavier (Glorot & Bengio
2010) and He (He et al. 2015) initialisation, GELU (Hendrycks & Gimpel 2016), dropout
(Srivastava et al. 2014), batch norm (Ioffe & Szegedy 2015, alg. 1), and SGD / Adam with
torch.optim's update rules. Every gradient is derived in ``../theory.md`` (sections 1-8; the
notes that used to open this file are in its appendix). ``train.py`` beside this file trains
it on digits, two-moons or MNIST (Simard et al. 2003: 784-800-10, 1.6 % test error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from utils import import_lesson

# Lesson 01 taught the numerically stable sigmoid and softmax cross-entropy; the MLP
# reuses them rather than writing them again (same functions, same tests behind them).
_logistic = import_lesson("01_Linear_Logistic.numpy.logistic_numpy")
sigmoid = _logistic.sigmoid
softmax = _logistic.softmax
softmax_cross_entropy = _logistic.softmax_cross_entropy

FLOAT_DTYPES = (np.float32, np.float64)


# ---------------------------------------------------------------------------
# Weight initialisation
# ---------------------------------------------------------------------------


def xavier_uniform(fan_in: int, fan_out: int, rng=None, *, shape=None,
                   dtype=np.float64) -> np.ndarray:
    """Glorot & Bengio (2010, eq. 16): W ~ U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).

    Var(U(-a, a)) = a^2 / 3 = 2 / (fan_in + fan_out): the compromise between keeping
    the forward variance (Var W = 1 / fan_in) and the backward one (1 / fan_out) for
    activations that are linear around 0, such as tanh.

    Inputs:  fan_in, fan_out - inputs and outputs of each unit (for a conv kernel,
             fan_in = C_in * kh * kw and fan_out = C_out * kh * kw);
             rng - Generator, int seed or None; shape - array shape (default
             (fan_in, fan_out)); dtype - float32 or float64.
    Returns: array of ``shape`` and ``dtype``.
    """
    fan_in, fan_out = _check_positive_int(fan_in, "fan_in"), _check_positive_int(fan_out,
                                                                                  "fan_out")
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    return _as_rng(rng).uniform(-bound, bound, size=shape).astype(_check_float_dtype(dtype))


def he_normal(fan_in: int, fan_out: int, rng=None, *, shape=None,
              dtype=np.float64) -> np.ndarray:
    """He et al. (2015, eq. 10): W ~ N(0, 2 / fan_in), for layers followed by ReLU.

    ReLU zeroes half of its inputs, so it halves E[h^2]; the factor 2 puts it back,
    and the activations keep their scale through any depth. ``fan_out`` only sets
    the default shape.

    Inputs/Returns: as ``xavier_uniform``.
    """
    fan_in, fan_out = _check_positive_int(fan_in, "fan_in"), _check_positive_int(fan_out,
                                                                                  "fan_out")
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    std = math.sqrt(2.0 / fan_in)
    return (std * _as_rng(rng).standard_normal(shape)).astype(_check_float_dtype(dtype))


def lecun_normal(fan_in: int, fan_out: int, rng=None, *, shape=None,
                 dtype=np.float64) -> np.ndarray:
    """LeCun et al. (1998, "Efficient BackProp", 4.6): W ~ N(0, 1 / fan_in).

    Keeps the forward variance for an activation with slope 1 at 0 (identity, tanh).

    Inputs/Returns: as ``xavier_uniform``.
    """
    fan_in, fan_out = _check_positive_int(fan_in, "fan_in"), _check_positive_int(fan_out,
                                                                                  "fan_out")
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    std = math.sqrt(1.0 / fan_in)
    return (std * _as_rng(rng).standard_normal(shape)).astype(_check_float_dtype(dtype))


INITIALIZERS = {"he": he_normal, "xavier": xavier_uniform, "lecun": lecun_normal}


# ---------------------------------------------------------------------------
# The layers
# ---------------------------------------------------------------------------


class Layer:
    """What every layer shares: the protocol, empty params/grads, and a training flag.

    Subclasses implement ``forward(x) -> y`` and ``backward(dy) -> dx``. ``backward``
    overwrites ``grads`` in place (it does not accumulate as PyTorch's ``.grad`` does),
    so the arrays in ``grads`` stay the same objects for the layer's whole life.
    ``train()`` / ``eval()`` switch ``training``; only Dropout and BatchNorm1d care.
    """

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True
        self._cache = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def train(self, mode: bool = True) -> Layer:
        """Switch to training mode (``mode=False``: evaluation mode). Returns self."""
        self.training = bool(mode)
        return self

    def eval(self) -> Layer:
        """Switch to evaluation mode. Returns self."""
        return self.train(False)

    def num_params(self) -> int:
        """Number of trainable numbers in this layer."""
        return int(sum(p.size for p in self.params.values()))

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run "
                               "forward(x) first (backward uses what it cached)")
        return self._cache

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WeightsAndBias:
    """``W`` and ``b`` as attributes backed by ``params`` (the layer protocol above).

    Reading gives the array itself; assigning copies into it after a shape check, so an
    optimiser that holds the array keeps seeing the layer's weights. ``W_LAYOUT`` says how
    W is laid out (for the error message). Lesson 03's Conv2D uses it too.
    """

    W_LAYOUT = ""

    @property
    def W(self) -> np.ndarray:
        return self.params["W"]

    @W.setter
    def W(self, value) -> None:  # copy into the existing array: optimisers keep its identity
        self._assign("W", value)

    @property
    def b(self) -> np.ndarray:
        return self.params["b"]

    @b.setter
    def b(self, value) -> None:
        self._assign("b", value)

    def _assign(self, name: str, value) -> None:
        value = np.asarray(value)
        if value.shape != self.params[name].shape:
            raise ValueError(f"{type(self).__name__}.{name} must have shape "
                             f"{self.params[name].shape}, got {value.shape} ({self.W_LAYOUT})")
        self.params[name][...] = value


class Linear(WeightsAndBias, Layer):
    """Affine map y = x W + b.

    params: W (in_features, out_features), b (out_features,). W is stored input-major,
    so the forward pass is one matmul; it is the TRANSPOSE of ``torch.nn.Linear.weight``
    (out, in), which computes x A^T + b with A = W^T.

    Gradients, for dy = dL/dy (N, out)::

        dL/dW = x^T dy   (in, out)     dL/db = sum_n dy[n]   (out,)     dL/dx = dy W^T   (N, in)

    Inputs (constructor):
        in_features, out_features - sizes of x's rows and y's rows.
        init  - "he" (N(0, 2/in), for ReLU), "xavier" (U(+-sqrt(6/(in+out))), for tanh and
                sigmoid), "lecun" (N(0, 1/in)) or None (W = 0: fill it yourself, e.g. with
                weights copied from another model). b starts at 0 in every case.
        rng   - Generator, int seed or None (see ``_as_rng``); dtype - float32 or float64.
    """

    W_LAYOUT = "W is (in, out): transpose nn.Linear.weight"

    def __init__(self, in_features: int, out_features: int, *, init: str | None = "he",
                 rng=None, dtype=np.float64):
        super().__init__()
        self.in_features = _check_positive_int(in_features, "in_features")
        self.out_features = _check_positive_int(out_features, "out_features")
        dtype = _check_float_dtype(dtype)
        if init is None:
            W = np.zeros((self.in_features, self.out_features), dtype=dtype)
        elif init in INITIALIZERS:
            W = INITIALIZERS[init](self.in_features, self.out_features, rng, dtype=dtype)
        else:
            raise ValueError(f"unknown init {init!r}: expected one of {sorted(INITIALIZERS)} "
                             "or None (zeros)")
        self.init = init
        self.params = {"W": W, "b": np.zeros(self.out_features, dtype=dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}


    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (N, in_features). Returns: y = x W + b (N, out_features)."""
        x = _as_batch(x, "Linear", self.in_features)
        self._cache = x
        return x @ self.params["W"] + self.params["b"]  # (N, in) @ (in, out) + (out,)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (N, out_features). Returns: dx (N, in_features); fills grads W, b."""
        x = self._cached()
        dy = _check_dy(dy, (x.shape[0], self.out_features), "Linear")
        self.grads["W"][...] = x.T @ dy  # (in, N) @ (N, out): sum over the batch of x_n^T dy_n
        self.grads["b"][...] = dy.sum(axis=0)  # b is added to every row, so its gradients add up
        return dy @ self.params["W"].T  # (N, out) @ (out, in)

    def __repr__(self) -> str:
        return f"Linear({self.in_features} -> {self.out_features}, init={self.init})"


class ReLU(Layer):
    """Rectified linear unit y = max(x, 0) (Nair & Hinton 2010; Glorot et al. 2011).

    dL/dx = dL/dy * [x > 0]. At x = 0 we use slope 0, as PyTorch does. Works on
    arrays of any shape. No parameters.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape). Returns: y, same shape and dtype."""
        x = _as_float_array(x, "ReLU")
        positive = x > 0  # (same shape) the only thing backward needs
        self._cache = positive
        return np.where(positive, x, np.zeros((), dtype=x.dtype))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * [x > 0]."""
        positive = self._cached()
        dy = _check_dy(dy, positive.shape, "ReLU")
        return np.where(positive, dy, np.zeros((), dtype=dy.dtype))


class Sigmoid(Layer):
    """Logistic sigmoid y = 1 / (1 + e^-x), computed stably (lesson 01's ``sigmoid``).

    dy/dx = y (1 - y) <= 1/4: every sigmoid layer shrinks the backward signal by at
    least 4x, the root of the vanishing gradient in deep sigmoid nets. No parameters.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape). Returns: y in [0, 1], same shape and dtype."""
        y = sigmoid(_as_float_array(x, "Sigmoid"))
        self._cache = y  # the derivative is a function of the output
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * y (1 - y)."""
        y = self._cached()
        return _check_dy(dy, y.shape, "Sigmoid") * y * (1 - y)


class Tanh(Layer):
    """Hyperbolic tangent y = tanh(x) = 2 sigmoid(2x) - 1, zero-centred, slope 1 at 0.

    dy/dx = 1 - y^2. No parameters.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape). Returns: y in [-1, 1], same shape and dtype."""
        y = np.tanh(_as_float_array(x, "Tanh"))
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * (1 - y^2)."""
        y = self._cached()
        return _check_dy(dy, y.shape, "Tanh") * (1 - y * y)


# NumPy has no vectorised erf (SciPy has one, but L1 is NumPy only). math.erf is correct
# to double precision; frompyfunc applies it element by element: exact, but ~0.3 us per
# element, which is why GELU's tanh approximation exists (and is what GPT-2 used).
_erf_elementwise = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Error function erf(x) = 2/sqrt(pi) int_0^x e^(-t^2) dt, elementwise, in x's dtype."""
    x = np.asarray(x)
    return _erf_elementwise(x).astype(x.dtype)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # Hendrycks & Gimpel (2016), section 2: the tanh approximation


class GELU(Layer):
    """Gaussian error linear unit y = x Phi(x) (Hendrycks & Gimpel 2016).

    Phi is the standard normal CDF: each input is scaled by how likely a standard normal
    is to be below it, a smooth ReLU. ``approximate="none"``::

        Phi(x) = (1 + erf(x / sqrt 2)) / 2,   phi(x) = e^(-x^2/2) / sqrt(2 pi)
        dy/dx  = Phi(x) + x phi(x)

    ``approximate="tanh"`` (the paper's fast form, used by BERT and GPT-2), with
    u = sqrt(2/pi) (x + 0.044715 x^3) and t = tanh(u)::

        y     = x (1 + t) / 2
        dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2

    Both equal ``torch.nn.functional.gelu(x, approximate=...)``. No parameters.
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape). Returns: y, same shape and dtype."""
        x = _as_float_array(x, "GELU")
        if self.approximate == "tanh":
            t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
            self._cache = (x, t)
            return 0.5 * x * (1 + t)
        cdf = 0.5 * (1 + erf(x / math.sqrt(2.0)))  # Phi(x)
        self._cache = (x, cdf)
        return x * cdf

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * dGELU/dx (formulas above)."""
        x, saved = self._cached()
        dy = _check_dy(dy, x.shape, "GELU")
        if self.approximate == "tanh":
            t = saved
            du_dx = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x * x)
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # phi(x)
        return dy * (saved + x * pdf)

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15): zero each unit with probability p.

    Training: draw a keep-mask m with P(m = 1) = 1 - p, and scale the survivors so that
    E[y] = x::

        y = x * m / (1 - p)          dL/dx = dL/dy * m / (1 - p)

    Evaluation (``eval()``): y = x. The paper scales the weights by 1 - p at test time
    instead; scaling by 1 / (1 - p) during training ("inverted") gives the same expected
    values and leaves the trained network untouched, which is what PyTorch does.

    Inputs (constructor): p in [0, 1); rng - Generator, int seed or None.
    Attributes: ``mask`` - the 0/1 keep-mask of the last training forward (x's shape and
    dtype), None in evaluation mode or when p = 0. No parameters.
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        super().__init__()
        if not (isinstance(p, (int, float, np.floating)) and 0.0 <= p < 1.0):
            raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = _as_rng(rng)
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (any shape). Returns: y, same shape and dtype."""
        x = _as_float_array(x, "Dropout")
        if not self.training or self.p == 0.0:
            self.mask = None
            self._cache = (x.shape, None)
            return x
        self.mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype)  # 1 = keep
        scaled_mask = self.mask / x.dtype.type(1.0 - self.p)  # m / (1 - p), x's dtype
        self._cache = (x.shape, scaled_mask)
        return x * scaled_mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (x's shape). Returns: dx = dy * m / (1 - p) (dy itself in eval mode)."""
        shape, scaled_mask = self._cached()
        dy = _check_dy(dy, shape, "Dropout")
        return dy if scaled_mask is None else dy * scaled_mask

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class BatchNorm1d(Layer):
    """Batch normalisation over the batch axis of (N, C) inputs (Ioffe & Szegedy 2015, alg. 1).

    Training mode, per feature c, with batch statistics::

        mean = 1/N sum_n x_n          var = 1/N sum_n (x_n - mean)^2        (biased)
        x_hat = (x - mean) / sqrt(var + eps)          y = gamma * x_hat + beta

    and the running statistics used at evaluation are updated with momentum m::

        running_mean = (1 - m) running_mean + m mean
        running_var  = (1 - m) running_var  + m var * N / (N - 1)        (UNBIASED)

    (PyTorch's convention: m = 0.1 weighs the new batch; the normalisation uses the
    biased variance, the running estimate the unbiased one, as the paper's alg. 2 does.)

    Evaluation mode: the same affine map with the running statistics in place of the
    batch's, y = gamma (x - running_mean) / sqrt(running_var + eps) + beta.

    Backward in training mode goes through mean and var too, because every x_n moves
    the statistics that normalise every other example. With g = gamma * dy::

        dL/dx = 1 / sqrt(var + eps) * (g - mean_n(g) - x_hat * mean_n(g * x_hat))
        dL/dgamma = sum_n dy * x_hat          dL/dbeta = sum_n dy

    (the two subtractions are the gradient flowing through mean and through var). In
    evaluation mode the statistics are constants: dL/dx = gamma dy / sqrt(running_var + eps).

    Inputs (constructor): num_features C; eps; momentum in [0, 1]; dtype of the params.
    Attributes: params gamma (C,) = 1, beta (C,) = 0; buffers running_mean (C,) = 0,
    running_var (C,) = 1 (updated in place); training.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float64):
        super().__init__()
        self.num_features = _check_positive_int(num_features, "num_features")
        if not (eps > 0 and 0.0 <= momentum <= 1.0):
            raise ValueError(f"BatchNorm1d needs eps > 0 and momentum in [0, 1]; got "
                             f"eps={eps!r}, momentum={momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        dtype = _check_float_dtype(dtype)
        self.params = {"gamma": np.ones(num_features, dtype=dtype),
                       "beta": np.zeros(num_features, dtype=dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (N, C). Returns: y (N, C). Training mode updates the running stats."""
        x = _as_batch(x, "BatchNorm1d", self.num_features)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if self.training:
            n = x.shape[0]
            if n < 2:
                raise ValueError("BatchNorm1d in training mode needs at least 2 examples per "
                                 f"batch to estimate a variance; got a batch of {n} (use "
                                 "eval() to apply the running statistics to single examples)")
            mean = x.mean(axis=0)  # (C,)
            centred = x - mean  # (N, C)
            var = np.mean(centred * centred, axis=0)  # (C,) biased: divides by N
            inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += m * var * (n / (n - 1))  # unbiased estimate for inference
        else:
            centred = x - self.running_mean
            inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
        x_hat = centred * inv_std  # (N, C)
        self._cache = (x_hat, inv_std, self.training)
        return gamma * x_hat + beta

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy (N, C). Returns: dx (N, C); fills grads gamma, beta."""
        x_hat, inv_std, was_training = self._cached()
        dy = _check_dy(dy, x_hat.shape, "BatchNorm1d")
        self.grads["gamma"][...] = np.sum(dy * x_hat, axis=0)
        self.grads["beta"][...] = dy.sum(axis=0)
        g = dy * self.params["gamma"]  # dL/dx_hat (N, C)
        if not was_training:  # running statistics are constants
            return g * inv_std
        # through x_hat directly, through the mean, and through the variance:
        return inv_std * (g - g.mean(axis=0) - x_hat * np.mean(g * x_hat, axis=0))

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum})"


# ---------------------------------------------------------------------------
# A network is a list of layers
# ---------------------------------------------------------------------------


class Sequential(Layer):
    """Layers applied one after another; backward runs them in reverse (the chain rule).

        forward:  x -> layers[0] -> layers[1] -> ... -> y
        backward: dy -> layers[-1].backward -> ... -> layers[0].backward -> dx

    ``params`` and ``grads`` are flat dicts named "i.name" (layer index, then the
    layer's own name: "0.W", "1.gamma") whose values are the layers' own arrays (the
    same objects, not copies), rebuilt on every access. An optimiser that updates them
    in place therefore updates the layers. ``train()`` / ``eval()`` reach every layer.

    Inputs (constructor): layers - objects following the L1 layer protocol.
    """

    def __init__(self, *layers):
        # no super().__init__(): params and grads are read-only properties here
        self.training = True
        self._cache = None
        for i, layer in enumerate(layers):
            missing = [a for a in ("forward", "backward", "params", "grads")
                       if not hasattr(layer, a)]
            if missing:
                raise ValueError(f"Sequential: layer {i} ({type(layer).__name__}) lacks "
                                 f"{missing}; every layer needs forward, backward, params, grads")
        self.layers = list(layers)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{i}.{name}": p for i, layer in enumerate(self.layers)
                for name, p in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{name}": g for i, layer in enumerate(self.layers)
                for name, g in layer.grads.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x, what layers[0] expects. Returns: the last layer's output."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Inputs: dy = dL/d(output). Returns: dL/d(input); fills every layer's grads."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def train(self, mode: bool = True) -> Sequential:
        """Switch this container and every layer to training (or evaluation) mode."""
        self.training = bool(mode)
        for layer in self.layers:
            if hasattr(layer, "train"):
                layer.train(mode)
            elif hasattr(layer, "training"):
                layer.training = bool(mode)
        return self

    def num_params(self) -> int:
        """Number of trainable numbers: 784-800-10 has 784*800 + 800 + 800*10 + 10 = 636,010."""
        return int(sum(p.size for p in self.params.values()))

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        lines = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{lines}\n)"


# ---------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------


class SoftmaxCrossEntropy:
    """Mean softmax cross-entropy of logits and integer labels, as a two-step object.

        L = 1/N sum_n [logsumexp(z_n) - z_n[y_n]]        dL/dz = (softmax(z) - onehot(y)) / N

    The computation is lesson 01's stable ``softmax_cross_entropy`` (the same value as
    ``torch.nn.functional.cross_entropy``); this class only remembers dL/dz between
    ``forward`` and ``backward``, so a training step reads like PyTorch's.
    """

    def __init__(self):
        self._dlogits: np.ndarray | None = None

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        """Inputs: logits (N, K) float; y (N,) integer labels in 0..K-1.
        Returns: the mean loss as a Python float."""
        loss, self._dlogits = softmax_cross_entropy(logits, y)
        return loss

    __call__ = forward

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """Inputs: dloss = dTotal/dL (1 when L is the objective).
        Returns: dTotal/dlogits (N, K), the logits' dtype."""
        if self._dlogits is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        return self._dlogits if dloss == 1.0 else dloss * self._dlogits


# ---------------------------------------------------------------------------
# Optimisers: torch.optim's update rules, in place
# ---------------------------------------------------------------------------


class Optimizer:
    """Shared part of the optimisers: the model's params/grads dicts and zero_grad.

    ``model`` is anything with ``params`` and ``grads`` dicts of the same keys: a
    Sequential, a single layer, or your own class. They are read at every step, so a
    Sequential (whose dicts are rebuilt on access) is always up to date. Parameters
    are updated IN PLACE (``p -= ...``), so every reference to them sees the change.
    """

    def __init__(self, model, lr: float):
        if not (isinstance(getattr(model, "params", None), Mapping)
                and isinstance(getattr(model, "grads", None), Mapping)):
            raise ValueError(f"{type(self).__name__} needs a model with dicts `params` and "
                             f"`grads`; got {type(model).__name__}")
        if not lr > 0:
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.model, self.lr = model, float(lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}  # per-parameter buffers

    def _params_and_grads(self):
        """Yield (name, parameter, gradient) for every parameter of the model."""
        params, grads = self.model.params, self.model.grads
        for name, p in params.items():
            yield name, p, grads[name]

    def zero_grad(self) -> None:
        """Set every gradient to 0, in place. (Our backward overwrites the grads, so this
        is only needed if you accumulate gradients yourself, as PyTorch always does.)"""
        for g in self.model.grads.values():
            g[...] = 0

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and weight decay, torch.optim.SGD's rule.

    For each parameter p with gradient grad (dampening 0, no Nesterov)::

        g = grad + weight_decay * p            (L2 penalty (wd/2)||p||^2, on every parameter)
        v = g                  at the first step
        v = momentum * v + g   afterwards                     (momentum > 0 only)
        p = p - lr * v

    Momentum (Polyak 1964) averages gradients over about 1 / (1 - momentum) steps: it
    damps the zig-zag across a narrow valley and speeds the walk along it.

    Inputs: model (params/grads dicts); lr > 0; momentum in [0, 1); weight_decay >= 0.
    """

    def __init__(self, model, lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(model, lr)
        if not (0.0 <= momentum < 1.0 and weight_decay >= 0.0):
            raise ValueError(f"SGD needs momentum in [0, 1) and weight_decay >= 0; got "
                             f"momentum={momentum!r}, weight_decay={weight_decay!r}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def step(self) -> None:
        """Update every parameter in place by the rule above."""
        for name, p, grad in self._params_and_grads():
            g = grad + self.weight_decay * p if self.weight_decay else grad
            if self.momentum:
                state = self.state.get(name)
                if state is None:  # first step: the velocity is the gradient itself
                    state = self.state[name] = {"velocity": np.array(g, copy=True)}
                else:
                    state["velocity"] *= self.momentum
                    state["velocity"] += g
                g = state["velocity"]
            p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, algorithm 1), torch.optim.Adam's rule (with L2 weight decay).

    For each parameter p with gradient grad, at step t = 1, 2, ...::

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g              running mean of g       (m_0 = 0)
        v = beta2 v + (1 - beta2) g^2            running mean of g^2     (v_0 = 0)
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)   undo the bias towards 0
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    Each coordinate moves by about lr whatever the scale of its gradient: a step size
    per parameter. (AdamW differs: it decays p directly instead of adding wd * p to g.)

    Inputs: model; lr > 0; betas in [0, 1); eps > 0; weight_decay >= 0.
    """

    def __init__(self, model, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(model, lr)
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0 and eps > 0 and weight_decay >= 0.0):
            raise ValueError(f"Adam needs betas in [0, 1), eps > 0 and weight_decay >= 0; got "
                             f"betas={betas!r}, eps={eps!r}, weight_decay={weight_decay!r}")
        self.betas = (float(beta1), float(beta2))
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self.t = 0  # number of steps taken

    def step(self) -> None:
        """Update every parameter in place by the rule above."""
        self.t += 1
        beta1, beta2 = self.betas
        bias_correction1 = 1.0 - beta1**self.t
        bias_correction2 = 1.0 - beta2**self.t
        for name, p, grad in self._params_and_grads():
            g = grad + self.weight_decay * p if self.weight_decay else grad
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = {"m": np.zeros_like(p), "v": np.zeros_like(p)}
            m, v = state["m"], state["v"]
            m *= beta1
            m += (1.0 - beta1) * g
            v *= beta2
            v += (1.0 - beta2) * g * g
            denom = np.sqrt(v) / math.sqrt(bias_correction2) + self.eps  # sqrt(v_hat) + eps
            p -= (self.lr / bias_correction1) * m / denom  # lr * m_hat / denom


# ---------------------------------------------------------------------------
# Building an MLP
# ---------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": lambda: GELU("none"),
    "gelu_tanh": lambda: GELU("tanh"),
}
# the initialisation that keeps the signal's variance for each activation
DEFAULT_INIT = {"relu": "he", "gelu": "he", "gelu_tanh": "he", "sigmoid": "xavier",
                "tanh": "xavier"}


def build_mlp(sizes=(784, 800, 10), *, activation: str = "relu", dropout: float = 0.0,
              batchnorm: bool = False, rng=None, init: str = "auto",
              dtype=np.float64) -> Sequential:
    """An MLP as a Sequential: every hidden layer is Linear -> [BatchNorm1d] -> f -> [Dropout].

    sizes = (D, H_1, ..., H_k, K) gives k hidden layers; the last Linear outputs the
    K logits (no activation: the loss applies the softmax). Batch norm goes between
    the affine map and the non-linearity, as Ioffe & Szegedy (2015, section 3.2) do;
    dropout after the non-linearity. (With batch norm the Linear bias is redundant, since
    the mean is subtracted right after; it is kept so the layer lists match PyTorch's.)

    Inputs:
        sizes      - layer widths, at least (D, K); (784, 800, 10) is Simard et al.'s net.
        activation - one of ``ACTIVATIONS``: relu, sigmoid, tanh, gelu, gelu_tanh.
        dropout    - drop probability after each hidden activation (0: no Dropout layer).
        batchnorm  - insert BatchNorm1d after each hidden Linear.
        rng        - Generator, int seed or None: weights and dropout masks.
        init       - "auto" (he for relu/gelu, xavier for sigmoid/tanh), or an
                     ``INITIALIZERS`` name for every Linear layer.
        dtype      - float32 or float64 for every parameter.
    Returns: the Sequential (in training mode).
    """
    sizes = [_check_positive_int(s, "every entry of sizes") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output size, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: expected one of "
                         f"{sorted(ACTIVATIONS)}")
    init = DEFAULT_INIT[activation] if init == "auto" else init
    rng = _as_rng(rng)
    layers: list[Layer] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(fan_in, fan_out, init=init, rng=rng, dtype=dtype))
        if i == len(sizes) - 2:
            break  # the output layer: logits, no activation
        if batchnorm:
            layers.append(BatchNorm1d(fan_out, dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout, rng=rng))
    return Sequential(*layers)


def predict_logits(model, X: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
    """Logits of the model in evaluation mode, computed in chunks (bounded memory).

    The model's mode (training or evaluation) is restored afterwards.

    Inputs:  model; X (N, D). Returns: (N, K) logits.
    """
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        return np.concatenate([model.forward(X[i:i + batch_size])
                               for i in range(0, len(X), batch_size)])
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------
# Small input checks, one helper each (clear errors instead of a deep traceback);
# the layers call them at their doors: forward's input, backward's dy, the constructors
# ---------------------------------------------------------------------------


def _as_rng(rng) -> np.random.Generator:
    """A NumPy Generator from a Generator, an int seed, or None.

    None draws a seed from NumPy's global generator, so ``np.random.seed(s)`` (which
    ``utils.cli.seed_everything`` calls) makes even unseeded layers reproducible.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy Generator, an int seed or None; got {type(rng)}")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _as_float_array(x, where: str) -> np.ndarray:
    """x as a float32/float64 ndarray (integers and booleans become float64)."""
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{where} expects real numbers (float32 or float64); got dtype {x.dtype}")
    return x


def _as_batch(x, where: str, features: int) -> np.ndarray:
    """x as a float (N, features) matrix, or a ValueError saying which shape was expected."""
    x = _as_float_array(x, where)
    if x.ndim != 2 or x.shape[1] != features:
        hint = " (flatten images first: x.reshape(len(x), -1))" if x.ndim > 2 else ""
        raise ValueError(f"{where} expects input of shape (N, {features}), one row per "
                         f"example; got shape {x.shape}{hint}")
    return x


def _check_dy(dy, expected_shape: tuple, where: str) -> np.ndarray:
    dy = _as_float_array(dy, f"{where}.backward")
    if dy.shape != tuple(expected_shape):
        raise ValueError(f"{where}.backward expects dy with the shape of the last forward "
                         f"output, {tuple(expected_shape)}; got {dy.shape}")
    return dy
