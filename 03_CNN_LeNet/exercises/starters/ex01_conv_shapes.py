"""Exercise 01 (starter): output shapes, parameter counts, costs and receptive fields.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 03_CNN_LeNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``03_CNN_LeNet/exercises/01_conv_shapes.md``.
Use NumPy only (most of it is integer arithmetic). Along one axis:

    H_out = floor((H + 2p - d (k - 1) - 1) / s) + 1
    parameters    = C_out (C_in / g) kH kW + C_out
    multiply-adds = N C_out H_out W_out (C_in / g) kH kW
    r_l = r_(l-1) + (k_l - 1) d_l j_(l-1),   j_l = j_(l-1) s_l,
    start_l = start_(l-1) - p_l j_(l-1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints -> (height, width) pair of Python ints, or raise ValueError."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints (height, width); got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length along one axis of a convolution or pooling window.

        H_out = floor((H + 2 p - d (k - 1) - 1) / s) + 1

    Inputs:  size H >= 1, kernel_size k >= 1, stride s >= 1, padding p >= 0, dilation d >= 1
             (Python ints).
    Returns: H_out, a Python int >= 1.
    Raises ValueError when an argument is out of range or the (dilated) kernel is larger
    than the padded input (then no window fits, and PyTorch raises an error too).
    """
    raise NotImplementedError("conv_output_size: "
                              "floor((H + 2p - d(k-1) - 1) / s) + 1, see 01_conv_shapes.md")


def conv2d_output_shape(input_shape: Sequence[int], out_channels: int, kernel_size,
                        stride=1, padding=0, dilation=1) -> tuple[int, int, int, int]:
    """Shape of ``F.conv2d``'s output for an NCHW input.

    Inputs:  input_shape (N, C_in, H, W); out_channels C_out; kernel_size, stride, padding,
             dilation: an int (both axes) or a pair (height, width).
    Returns: (N, C_out, H_out, W_out) as Python ints.
    """
    raise NotImplementedError("conv2d_output_shape: apply conv_output_size to both axes")


def conv2d_parameter_count(in_channels: int, out_channels: int, kernel_size, groups: int = 1,
                           bias: bool = True) -> int:
    """Trainable parameters of ``nn.Conv2d(in_channels, out_channels, kernel_size, groups=...)``.

        C_out * (C_in / g) * kH * kW  +  C_out if bias

    Inputs:  channel counts (ints, both divisible by groups), kernel_size int or pair.
    Returns: a Python int.
    """
    raise NotImplementedError("conv2d_parameter_count: C_out (C_in / g) kH kW + C_out")


def partial_conv_parameter_count(connection_table, kernel_size, bias: bool = True) -> int:
    """Trainable parameters of a convolution that connects only some input maps to each output.

    ``connection_table[c, o]`` is True when input map c feeds output map o (LeNet-5's C3,
    Table I of LeCun et al. 1998, has 6 rows and 16 columns). Each True is one kH x kW
    kernel; each output map has one bias:

        sum(table) * kH * kW  +  C_out if bias

    Inputs:  connection_table (C_in, C_out) of bools (or 0/1); kernel_size int or pair.
    Returns: a Python int (1,516 for Table I with 5 x 5 kernels).
    """
    raise NotImplementedError("partial_conv_parameter_count: "
                              "one kH x kW kernel per True entry, one bias per column")


def conv2d_multiply_adds(input_shape: Sequence[int], out_channels: int, kernel_size, stride=1,
                         padding=0, dilation=1, groups: int = 1) -> int:
    """Multiply-adds of one ``F.conv2d`` call (biases not counted).

        N * C_out * H_out * W_out * (C_in / g) * kH * kW

    One multiply-add per kernel weight per output value: weight sharing saves parameters,
    not arithmetic. (FLOP counters report twice this: a multiply and an add.)

    Inputs:  input_shape (N, C_in, H, W); the layer's settings as in conv2d_output_shape.
    Returns: a Python int.
    """
    raise NotImplementedError("conv2d_multiply_adds: one multiply-add per weight per output value")


def receptive_fields(layers: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int, int]]:
    """Receptive field size, jump and start of every layer of a chain, along one axis.

    Each layer is (kernel_size k, stride s, padding p, dilation d); pooling layers count
    too (a 2 x 2 pool with stride 2 is (2, 2, 0, 1)). Starting from the input
    (r, j, start) = (1, 1, 0):

        r_l     = r_{l-1} + (k_l - 1) d_l j_{l-1}     size of one unit's receptive field
        j_l     = j_{l-1} s_l                         distance between neighbouring units' fields
        start_l = start_{l-1} - p_l j_{l-1}           first input pixel seen by unit 0

    Unit i of layer l then sees input pixels start_l + i j_l ... start_l + i j_l + r_l - 1
    (negative indices lie in the padding).

    Inputs:  layers, a sequence of 4-tuples of ints.
    Returns: a list with one (r_l, j_l, start_l) tuple of Python ints per layer.
    """
    raise NotImplementedError("receptive_fields: "
                              "r += (k-1) d j, start -= p j, j *= s, layer by layer")
