"""LeNet-5 from scratch in NumPy: convolution, pooling and dense layers, every gradient by hand.

LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), section II.B) in the trainable "modern" form
most courses use. It is built from this lesson's layers (``conv_numpy.py``: convolution,
pooling, flatten) and lesson 02's dense layers, activations, softmax cross-entropy and
SGD / Adam optimisers, reused unchanged because every layer follows the same protocol
(forward, backward, params, grads): a CNN is a stack of the same kind of layers as an
MLP, with two new ones. Derivations: ``../theory.md`` (sections 6 and 7); to train it:
``python 03_CNN_LeNet/numpy/train.py``.
"""

from __future__ import annotations

import numpy as np

from utils import import_lesson

# This lesson's new layers: convolution, pooling, flatten (NumPy, hand-written backward).
conv = import_lesson("03_CNN_LeNet.numpy.conv_numpy")
# LeNet's dense layers are lesson 02's: Linear, ReLU, Tanh, Sequential, the softmax
# cross-entropy loss and the SGD / Adam optimisers, reused as they are.
mlp = import_lesson("02_MLP.numpy.mlp_numpy")

INPUT_SIZE = 32  # LeNet-5's input is 32x32 (LeCun et al. 1998, section II.B)
ACTIVATIONS = {"relu": mlp.ReLU, "tanh": mlp.Tanh}
# the initialisation that keeps the signal's variance for each activation (lesson 02)
DEFAULT_INIT = {"relu": "he", "tanh": "xavier"}
POOLS = {"max": conv.MaxPool2D, "avg": conv.AvgPool2D}


class LeNet5(mlp.Sequential):
    """LeNet-5, modern trainable form, as a lesson-02 Sequential (61,706 parameters)::

        input   (N, 1, 32, 32)
        C1      Conv2D(1 -> 6, 5x5)          -> (N, 6, 28, 28)     156 parameters
                activation (ReLU or tanh)
        S2      pool 2x2, stride 2           -> (N, 6, 14, 14)
        C3      Conv2D(6 -> 16, 5x5)         -> (N, 16, 10, 10)    2,416
                activation
        S4      pool 2x2, stride 2           -> (N, 16, 5, 5)
                Flatten                      -> (N, 400)
        C5      Linear(400 -> 120)           -> (N, 120)           48,120
                activation
        F6      Linear(120 -> 84)            -> (N, 84)            10,164
                activation
        output  Linear(84 -> 10)             -> (N, 10) logits     850        total 61,706

    C5 is a Linear layer here: in the paper it is a 5x5 convolution with 120 filters, but
    on a 5x5 input a 5x5 convolution has exactly one position, so it IS a dense layer on
    the 400 flattened values (same weights, in a different shape).

    Where we depart from the paper (L3's ``paper/lenet_paper.py`` builds the faithful
    version): the paper's S2/S4 multiply the sum of each 2x2 window by a trainable
    coefficient and add a trainable bias; C3 connects each of its 16 maps to a subset of
    S2's 6 maps only (Table I); the squashing function is the scaled tanh 1.7159
    tanh(2a/3); the output layer is made of Euclidean RBF units. Here: max (or average)
    pooling without parameters, C3 fully connected to S2, ReLU (or plain tanh), a linear
    output trained with softmax cross-entropy, and Adam. These are the choices that made
    LeNet's descendants (AlexNet onwards) train fast; they also make this model the same
    network as L3's ``LeNet5Modern`` and L2's low-level LeNet, so the three levels can be
    compared number for number.

    The layers, by index (``model.layers[i]``; parameters are named "i.W", "i.b" in
    ``model.params`` / ``model.grads``)::

        0 C1 Conv2D(in_channels -> 6, 5, padding=c1_padding)   1 activation   2 S2 pool 2
        3 C3 Conv2D(6 -> 16, 5)                                  4 activation   5 S4 pool 2
        6 Flatten   7 C5 Linear(400 -> 120)   8 activation   9 F6 Linear(120 -> 84)
        10 activation   11 output Linear(84 -> num_classes)

    The named attributes ``c1, s2, c3, s4, c5, f6, output`` are the same layer objects.
    Conv2D weights are (C_out, C_in, 5, 5) as in PyTorch; Linear weights are (in, out),
    the TRANSPOSE of nn.Linear.weight (lesson 02's convention).

    Inputs (constructor):
        activation  - "relu" (default) or "tanh".
        pool        - "max" (default) or "avg", 2x2 with stride 2.
        in_channels - 1 for grey images; num_classes - 10 digits.
        input_size  - the images' height = width (32; 28 with c1_padding=2 gives the same
                      shapes from C1 on).
        c1_padding  - zeros added around the input by C1.
        init        - "auto" (he for ReLU, xavier for tanh) or a Conv2D/Linear init name.
        rng         - Generator, int seed or None; dtype - float32 or float64.
    """

    def __init__(self, *, activation: str = "relu", pool: str = "max", in_channels: int = 1,
                 num_classes: int = 10, input_size: int = INPUT_SIZE, c1_padding: int = 0,
                 init: str = "auto", rng=None, dtype=np.float64):
        if activation not in ACTIVATIONS or pool not in POOLS:
            raise ValueError(f"unknown activation {activation!r} or pool {pool!r}: expected "
                             f"one of {sorted(ACTIVATIONS)} and one of {sorted(POOLS)}")
        # spatial size after each stage: conv 5x5 removes 4 pixels, pooling halves
        c1_size = input_size + 2 * c1_padding - 4
        s4_size = (c1_size // 2 - 4) // 2
        if c1_size < 2 or s4_size < 1:
            raise ValueError(f"input_size {input_size} with c1_padding {c1_padding} is too "
                             f"small for LeNet-5: C3 and S4 need at least a 14x14 S2 output "
                             f"(32x32 input, or 28x28 with c1_padding=2)")
        init = DEFAULT_INIT[activation] if init == "auto" else init
        rng = conv._as_rng(rng)
        act, pool_layer = ACTIVATIONS[activation], POOLS[pool]
        layers = [
            conv.Conv2D(in_channels, 6, 5, padding=c1_padding, init=init, rng=rng, dtype=dtype),
            act(),
            pool_layer(2),
            conv.Conv2D(6, 16, 5, init=init, rng=rng, dtype=dtype),
            act(),
            pool_layer(2),
            conv.Flatten(),
            mlp.Linear(16 * s4_size * s4_size, 120, init=init, rng=rng, dtype=dtype),
            act(),
            mlp.Linear(120, 84, init=init, rng=rng, dtype=dtype),
            act(),
            mlp.Linear(84, num_classes, init=init, rng=rng, dtype=dtype),
        ]
        super().__init__(*layers)
        self.activation, self.pool = activation, pool
        self.in_channels, self.input_size = in_channels, input_size
        (self.c1, self.s2, self.c3, self.s4, self.c5, self.f6, self.output) = (
            layers[0], layers[2], layers[3], layers[5], layers[7], layers[9], layers[11])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (N, in_channels, input_size, input_size). Returns: logits (N, num_classes)."""
        x = np.asarray(x)
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or x.shape[1:] != expected:
            raise ValueError(f"LeNet5 expects images of shape (N, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}); got {x.shape} (pad 28x28 MNIST to 32x32, or "
                             f"build LeNet5(input_size=28, c1_padding=2))")
        return super().forward(x)

    def feature_maps(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """What each stage computes for x: {"C1", "S2", "C3", "S4"} after the activation/pool.

        Inputs:  x (N, in_channels, H, W). Returns: dict of (N, C, H', W') arrays.
        """
        maps, names = {}, {1: "C1", 2: "S2", 4: "C3", 5: "S4"}
        for i, layer in enumerate(self.layers[:6]):
            x = layer.forward(x)
            if i in names:
                maps[names[i]] = x
        return maps


def predict_logits(model, X: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits for X, computed in chunks so memory stays bounded (im2col copies each window).

    Inputs:  model; X (N, 1, 32, 32). Returns: (N, num_classes).
    """
    return np.concatenate([model.forward(X[i:i + batch_size])
                           for i in range(0, len(X), batch_size)])
