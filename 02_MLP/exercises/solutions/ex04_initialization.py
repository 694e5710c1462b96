"""Exercise 04 (reference solution): fan-in / fan-out initialisation, and what it does to depth.

Weights are (fan_in, fan_out) = (in, out), the lesson's orientation (theory.md section 0):
a layer computes z = h W. theory.md section 4:

    one layer, zero-mean weights of variance v:   E[z^2] = fan_in * v * E[h^2]
    ReLU halves the second moment:                E[relu(z)^2] = E[z^2] / 2
    backward, dh = dz W^T:                        E[dh^2] = fan_out * v * E[dz^2]

    Xavier uniform  U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))   (Glorot and Bengio 2010)
    Kaiming normal  N(0, gain^2 / fan), fan = fan_in or fan_out       (He et al. 2015)

The task text is in ``02_MLP/exercises/04_initialization.md``. NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
# E[f(z)^2] / E[z^2] and E[f'(z)^2] for zero-mean symmetric z: closed forms exist for these two
SECOND_MOMENT_FACTOR = {"linear": 1.0, "relu": 0.5}


def _check_fans(fan_in, fan_out) -> tuple[int, int]:
    for name, value in (("fan_in", fan_in), ("fan_out", fan_out)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(fan_in), int(fan_out)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)); got "
                         f"{type(rng).__name__}")
    return rng


def calculate_gain(activation: str, negative_slope: float = 0.01) -> float:
    """The gain g of torch.nn.init.calculate_gain: Var(W) = g^2 / fan keeps the scale.

    linear 1, sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + slope^2)).

    Inputs:  activation - "linear", "sigmoid", "tanh", "relu" or "leaky_relu";
             negative_slope - the leaky ReLU's slope for x < 0.
    Returns: the gain, a Python float.
    """
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}
    if activation == "leaky_relu":
        # ReLU's argument with slope^2 on the negative half: E[f(z)^2] = (1 + a^2) E[z^2] / 2
        return math.sqrt(2.0 / (1.0 + negative_slope**2))
    if activation not in gains:
        raise ValueError(f"unknown activation {activation!r}: expected one of "
                         f"{sorted(gains) + ['leaky_relu']}")
    return gains[activation]


def xavier_uniform(fan_in: int, fan_out: int, rng: np.random.Generator,
                   gain: float = 1.0) -> np.ndarray:
    """Glorot and Bengio (2010): W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    Var U(-a, a) = a^2 / 3 = gain^2 * 2 / (fan_in + fan_out).

    Inputs:  fan_in, fan_out - positive ints; rng - np.random.Generator; gain > 0.
    Returns: W (fan_in, fan_out) float64.
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _check_rng(rng).uniform(-bound, bound, size=(fan_in, fan_out))


def kaiming_normal(fan_in: int, fan_out: int, rng: np.random.Generator,
                   gain: float = math.sqrt(2.0), mode: str = "fan_in") -> np.ndarray:
    """He et al. (2015): W ~ N(0, gain^2 / fan) with fan = fan_in (forward) or fan_out (backward).

    Inputs:  fan_in, fan_out - positive ints; rng - np.random.Generator; gain > 0 (sqrt 2
             for ReLU); mode - "fan_in" keeps E[z^2] through the layers, "fan_out" keeps
             E[dz^2].
    Returns: W (fan_in, fan_out) float64.
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    std = gain / math.sqrt(fan)
    return std * _check_rng(rng).standard_normal((fan_in, fan_out))


def _activation_and_derivative(name: str):
    if name == "linear":
        return (lambda z: z), (lambda z: np.ones_like(z))
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(z.dtype))
    if name == "tanh":
        return np.tanh, (lambda z: 1.0 - np.tanh(z) ** 2)
    if name == "sigmoid":
        def sigmoid(z):
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow
        return sigmoid, (lambda z: sigmoid(z) * (1.0 - sigmoid(z)))
    raise ValueError(f"unknown activation {name!r}: expected one of {ACTIVATIONS}")


def _check_network(weights: Sequence[np.ndarray], x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a batch (N, D); got shape {x.shape}")
    width = x.shape[1]
    for i, W in enumerate(weights):
        if np.ndim(W) != 2 or np.shape(W)[0] != width:
            raise ValueError(f"weights[{i}] must be ({width}, out) to take the previous layer's "
                             f"output; got shape {np.shape(W)}")
        width = np.shape(W)[1]
    return x


def forward_second_moments(weights: Sequence[np.ndarray], x, activation: str) -> np.ndarray:
    """Mean of Z_l^2 for every layer of a bias-free MLP: Z_1 = x W_1, Z_l = f(Z_{l-1}) W_l.

    The activation f is applied between layers (not to x, not after the last layer).

    Inputs:  weights - list of L arrays, weights[l] (n_l, n_{l+1}); x (N, n_0);
             activation - "linear", "relu", "tanh" or "sigmoid".
    Returns: (L,) float64, entry l = mean over all N * n entries of Z_{l+1}^2.
    """
    f, _ = _activation_and_derivative(activation)
    h = _check_network(weights, x)
    moments = []
    for i, W in enumerate(weights):
        z = h @ W  # (N, n_out)
        moments.append(np.mean(z * z))
        h = f(z) if i < len(weights) - 1 else z
    return np.array(moments)


def backward_second_moments(weights: Sequence[np.ndarray], x, activation: str,
                            grad_output) -> np.ndarray:
    """Mean of dZ_l^2 for every layer when dL/dZ_L = grad_output is backpropagated.

    dZ_{l-1} = (dZ_l W_l^T) * f'(Z_{l-1})   (theory.md 3.5).

    Inputs:  weights, x, activation - as ``forward_second_moments``;
             grad_output (N, n_L), the gradient at the last layer's output.
    Returns: (L,) float64, entry l = mean of dZ_{l+1}^2 (the last entry: of grad_output^2).
    """
    f, f_prime = _activation_and_derivative(activation)
    h = _check_network(weights, x)
    dz = np.asarray(grad_output, dtype=np.float64)
    if dz.shape != (h.shape[0], np.shape(weights[-1])[1]):
        raise ValueError(f"grad_output must have the network output's shape "
                         f"{(h.shape[0], np.shape(weights[-1])[1])}; got {dz.shape}")
    pre_activations = []
    for W in weights[:-1]:
        z = h @ W
        pre_activations.append(z)
        h = f(z)
    moments = [np.mean(dz * dz)]
    for W, z in zip(reversed(weights[1:]), reversed(pre_activations)):
        dz = (dz @ W.T) * f_prime(z)  # (N, n_in) through the weights, then the activation
        moments.append(np.mean(dz * dz))
    return np.array(moments[::-1])


def _check_prediction_inputs(widths, weight_variances, activation) -> tuple[list, np.ndarray]:
    widths = [int(w) for w in widths]
    v = np.asarray(weight_variances, dtype=np.float64)
    if len(widths) < 2 or v.shape != (len(widths) - 1,):
        raise ValueError(f"widths (n_0, ..., n_L) needs L + 1 >= 2 entries and weight_variances "
                         f"L entries; got {len(widths)} and shape {v.shape}")
    if activation not in SECOND_MOMENT_FACTOR:
        raise ValueError(f"the prediction has a closed form for {sorted(SECOND_MOMENT_FACTOR)} "
                         f"only; got {activation!r} (tanh and sigmoid: measure it)")
    return widths, v


def predicted_forward_moments(widths: Sequence[int], weight_variances: Sequence[float],
                              input_second_moment: float, activation: str) -> np.ndarray:
    """E[Z_l^2] from the variance argument (theory.md 4.1, 4.3), for layers l = 1..L.

        q_1 = n_0 v_1 E[x^2],      q_l = n_{l-1} v_l c q_{l-1},   c = 1 (linear), 1/2 (relu)

    Inputs:  widths (n_0, ..., n_L); weight_variances (v_1, ..., v_L); input_second_moment
             E[x^2]; activation "linear" or "relu".
    Returns: (L,) float64.
    """
    widths, v = _check_prediction_inputs(widths, weight_variances, activation)
    c = SECOND_MOMENT_FACTOR[activation]
    q = [widths[0] * v[0] * input_second_moment]  # the input is not passed through f
    for layer in range(1, len(v)):
        q.append(widths[layer] * v[layer] * c * q[-1])
    return np.array(q)


def predicted_backward_moments(widths: Sequence[int], weight_variances: Sequence[float],
                               output_grad_second_moment: float, activation: str) -> np.ndarray:
    """E[dZ_l^2] from the variance argument (theory.md 4.2, 4.3), for layers l = 1..L.

        g_L = E[grad_output^2],    g_{l-1} = n_l v_l c g_l,
        c = E[f'(z)^2] = 1 (linear), 1/2 (relu)

    Inputs:  widths (n_0, ..., n_L); weight_variances (v_1, ..., v_L);
             output_grad_second_moment; activation "linear" or "relu".
    Returns: (L,) float64.
    """
    widths, v = _check_prediction_inputs(widths, weight_variances, activation)
    c = SECOND_MOMENT_FACTOR[activation]
    g = [float(output_grad_second_moment)]
    for layer in range(len(v) - 1, 0, -1):  # from layer L down to layer 2, 0-based index
        g.append(widths[layer + 1] * v[layer] * c * g[-1])  # n_l = fan_out of W_l
    return np.array(g[::-1])
