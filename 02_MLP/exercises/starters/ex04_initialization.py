"""Exercise 04 (starter): fan-in / fan-out initialisation, and what it does to depth.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 02_MLP/exercises --solutions my_solutions -k ex04

The task, the maths and hints are in ``02_MLP/exercises/04_initialization.md``. Use NumPy
only. Weights are (fan_in, fan_out) = (in, out), the lesson's orientation: a layer
computes z = h W. From theory.md section 4:

    one layer, zero-mean weights of variance v:   E[z^2] = fan_in * v * E[h^2]
    ReLU halves the second moment:                E[relu(z)^2] = E[z^2] / 2
    backward, dh = dz W^T:                        E[dh^2] = fan_out * v * E[dz^2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def calculate_gain(activation: str, negative_slope: float = 0.01) -> float:
    """The gain g of torch.nn.init.calculate_gain: Var(W) = g^2 / fan keeps the scale.

    Inputs:  activation - "linear", "sigmoid", "tanh", "relu" or "leaky_relu";
             negative_slope - the leaky ReLU's slope for x < 0.
    Returns: the gain, a Python float. ValueError for any other activation.
    """
    raise NotImplementedError("calculate_gain (see 04_initialization.md)")


def xavier_uniform(fan_in: int, fan_out: int, rng: np.random.Generator,
                   gain: float = 1.0) -> np.ndarray:
    """Glorot and Bengio (2010): W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    Inputs:  fan_in, fan_out - positive ints; rng - np.random.Generator; gain > 0.
    Returns: W (fan_in, fan_out) float64.
    """
    raise NotImplementedError("xavier_uniform: draw with rng.uniform "
                              "(see 04_initialization.md)")


def kaiming_normal(fan_in: int, fan_out: int, rng: np.random.Generator,
                   gain: float = math.sqrt(2.0), mode: str = "fan_in") -> np.ndarray:
    """He et al. (2015): W ~ N(0, gain^2 / fan) with fan = fan_in (forward) or fan_out (backward).

    Inputs:  fan_in, fan_out - positive ints; rng - np.random.Generator; gain > 0 (sqrt 2
             for ReLU); mode - "fan_in" keeps E[z^2] through the layers, "fan_out" keeps
             E[dz^2].
    Returns: W (fan_in, fan_out) float64.
    """
    raise NotImplementedError("kaiming_normal: draw with rng.standard_normal "
                              "(see 04_initialization.md)")


def forward_second_moments(weights: Sequence[np.ndarray], x, activation: str) -> np.ndarray:
    """Mean of Z_l^2 for every layer of a bias-free MLP: Z_1 = x W_1, Z_l = f(Z_{l-1}) W_l.

    The activation f is applied between layers (not to x, not after the last layer).

    Inputs:  weights - list of L arrays, weights[l] (n_l, n_{l+1}); x (N, n_0);
             activation - "linear", "relu", "tanh" or "sigmoid".
    Returns: (L,) float64, entry l = mean over all N * n entries of Z_{l+1}^2.
    """
    raise NotImplementedError("forward_second_moments (see 04_initialization.md)")


def backward_second_moments(weights: Sequence[np.ndarray], x, activation: str,
                            grad_output) -> np.ndarray:
    """Mean of dZ_l^2 for every layer when dL/dZ_L = grad_output is backpropagated.

    dZ_{l-1} = (dZ_l W_l^T) * f'(Z_{l-1})   (theory.md 3.5).

    Inputs:  weights, x, activation - as ``forward_second_moments``;
             grad_output (N, n_L), the gradient at the last layer's output.
    Returns: (L,) float64, entry l = mean of dZ_{l+1}^2 (the last entry: of grad_output^2).
    """
    raise NotImplementedError("backward_second_moments: run the forward pass first, keeping "
                              "every Z (see 04_initialization.md)")


def predicted_forward_moments(widths: Sequence[int], weight_variances: Sequence[float],
                              input_second_moment: float, activation: str) -> np.ndarray:
    """E[Z_l^2] from the variance argument (theory.md 4.1, 4.3), for layers l = 1..L.

    Inputs:  widths (n_0, ..., n_L); weight_variances (v_1, ..., v_L); input_second_moment
             E[x^2]; activation "linear" or "relu" (ValueError otherwise: no closed form).
    Returns: (L,) float64.
    """
    raise NotImplementedError("predicted_forward_moments (see 04_initialization.md)")


def predicted_backward_moments(widths: Sequence[int], weight_variances: Sequence[float],
                               output_grad_second_moment: float, activation: str) -> np.ndarray:
    """E[dZ_l^2] from the variance argument (theory.md 4.2, 4.3), for layers l = 1..L.

    Inputs:  widths (n_0, ..., n_L); weight_variances (v_1, ..., v_L);
             output_grad_second_moment E[dZ_L^2]; activation "linear" or "relu".
    Returns: (L,) float64.
    """
    raise NotImplementedError("predicted_backward_moments (see 04_initialization.md)")
