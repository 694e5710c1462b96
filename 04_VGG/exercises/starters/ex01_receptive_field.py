"""Exercise 01 (starter): the receptive field of a stack of layers.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 04_VGG/exercises --solutions my_solutions -k ex01

The helpers whose names start with ``_`` and the constants are given: use them.
The task, the maths and hints are in ``04_VGG/exercises/01_receptive_field.md``. NumPy only.

For layers (kernel k_l, stride s_l, padding p_l), with r_0 = 1, j_0 = 1, start_0 = 0
(theory.md section 2):

    r_l = r_{l-1} + (k_l - 1) j_{l-1}        receptive field (pixels, one side)
    j_l = j_{l-1} s_l                         jump: input pixels between neighbouring units
    start_l = start_{l-1} - p_l j_{l-1}       input pixel under the first unit's field

Unit i of layer l sees input pixels start_l + i j_l ... start_l + i j_l + r_l - 1.
"""

from __future__ import annotations

# Table 1 of the paper, as in the lesson: int = conv3, ("conv1", C) = 1x1 conv, "M" = pool
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, ("conv1", 256), "M",
          512, 512, ("conv1", 512), "M", 512, 512, ("conv1", 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def vgg_layers(config: str) -> list[tuple[int, int, int]]:
    """The (kernel, stride, padding) of every conv and pooling layer of a configuration.

    conv3: (3, 1, 1); conv1: (1, 1, 0); 2x2 max pooling: (2, 2, 0).
    Raises ValueError for an unknown configuration.
    """
    raise NotImplementedError("vgg_layers: "
                              "conv3 -> (3, 1, 1), conv1 -> (1, 1, 0), 'M' -> (2, 2, 0)")


def receptive_fields(layers) -> list[tuple[int, int, int]]:
    """(r, j, start) after each layer of ``layers`` (a list of (kernel, stride, padding)).

    Raises ValueError if a layer is not three ints with kernel, stride >= 1, padding >= 0.
    """
    raise NotImplementedError("receptive_fields: r += (k - 1) * j; start -= p * j; then j *= s")


def stacked_conv_equivalent(n: int, kernel: int = 3) -> tuple[int, int, int]:
    """n stacked stride-1 kernel x kernel convolutions against one convolution with the
    same receptive field, C channels in and out (Section 2.3 of the paper).

    Returns: (side of the equivalent single kernel, weights of the stack / C^2,
              weights of the single convolution / C^2); e.g. n = 3, kernel 3: (7, 27, 49)
    """
    raise NotImplementedError("stacked_conv_equivalent: "
                              "each stride-1 layer adds kernel - 1 pixels to the field")
