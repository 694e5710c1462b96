"""Exercise 01 (reference solution): output shapes, parameter counts, costs and receptive fields.

Before writing a convolution, know what it produces and what it costs. Along one
axis, a kernel of size k with dilation d spans k_eff = d (k - 1) + 1 input pixels;
on an input of size H padded by p on each side and moved by a stride s it fits

    H_out = floor((H + 2p - d (k - 1) - 1) / s) + 1            (theory.md 1.3)

times. A convolution with C_out kernels of shape (C_in / g, kH, kW) (g groups) has

    parameters = C_out (C_in / g) kH kW + C_out (bias)       (theory.md 1.5, 1.6)
    multiply-adds = N C_out H_out W_out (C_in / g) kH kW     (theory.md 8)

and a chain of layers sees, from one unit of layer l, r_l input pixels, with the
receptive fields of neighbouring units j_l pixels apart (theory.md 5):

    r_l = r_{l-1} + (k_l - 1) d_l j_{l-1},   j_l = j_{l-1} s_l,
    start_l = start_{l-1} - p_l j_{l-1}

The task text is in ``03_CNN_LeNet/exercises/01_conv_shapes.md``. NumPy only.
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
    for name, value, low in (("size", size, 1), ("kernel_size", kernel_size, 1),
                             ("stride", stride, 1), ("padding", padding, 0),
                             ("dilation", dilation, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    span = dilation * (kernel_size - 1) + 1  # pixels covered by one dilated window
    if span > size + 2 * padding:
        raise ValueError(f"the kernel spans {span} pixels (kernel_size={kernel_size}, "
                         f"dilation={dilation}) but the padded input has only "
                         f"{size + 2 * padding} (size={size}, padding={padding})")
    # floor division of a non-negative number is the floor of the formula
    return (size + 2 * padding - span) // stride + 1


def conv2d_output_shape(input_shape: Sequence[int], out_channels: int, kernel_size,
                        stride=1, padding=0, dilation=1) -> tuple[int, int, int, int]:
    """Shape of ``F.conv2d``'s output for an NCHW input.

    Inputs:  input_shape (N, C_in, H, W); out_channels C_out; kernel_size, stride, padding,
             dilation: an int (both axes) or a pair (height, width).
    Returns: (N, C_out, H_out, W_out) as Python ints.
    """
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C_in, H, W); got {tuple(input_shape)}")
    n, _, h, w = (int(v) for v in input_shape)
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    return (n, int(out_channels), conv_output_size(h, kh, sh, ph, dh),
            conv_output_size(w, kw, sw, pw, dw))


def conv2d_parameter_count(in_channels: int, out_channels: int, kernel_size, groups: int = 1,
                           bias: bool = True) -> int:
    """Trainable parameters of ``nn.Conv2d(in_channels, out_channels, kernel_size, groups=...)``.

        C_out * (C_in / g) * kH * kW  +  C_out if bias

    Inputs:  channel counts (ints, both divisible by groups), kernel_size int or pair.
    Returns: a Python int.
    """
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must "
                         f"both be divisible by groups ({groups})")
    kh, kw = _pair(kernel_size, "kernel_size")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def partial_conv_parameter_count(connection_table, kernel_size, bias: bool = True) -> int:
    """Trainable parameters of a convolution that connects only some input maps to each output.

    ``connection_table[c, o]`` is True when input map c feeds output map o (LeNet-5's C3,
    Table I of LeCun et al. 1998, has 6 rows and 16 columns). Each True is one kH x kW
    kernel; each output map has one bias:

        sum(table) * kH * kW  +  C_out if bias

    Inputs:  connection_table (C_in, C_out) of bools (or 0/1); kernel_size int or pair.
    Returns: a Python int (1,516 for Table I with 5 x 5 kernels).
    """
    table = np.asarray(connection_table)
    if table.ndim != 2 or not np.isin(table, (0, 1)).all():
        raise ValueError("connection_table must be a 2-D array (C_in, C_out) of booleans or "
                         f"0/1; got shape {table.shape}")
    kh, kw = _pair(kernel_size, "kernel_size")
    n_kernels = int(np.count_nonzero(table))
    return n_kernels * kh * kw + (table.shape[1] if bias else 0)


def conv2d_multiply_adds(input_shape: Sequence[int], out_channels: int, kernel_size, stride=1,
                         padding=0, dilation=1, groups: int = 1) -> int:
    """Multiply-adds of one ``F.conv2d`` call (biases not counted).

        N * C_out * H_out * W_out * (C_in / g) * kH * kW

    One multiply-add per kernel weight per output value: weight sharing saves parameters,
    not arithmetic. (FLOP counters report twice this: a multiply and an add.)

    Inputs:  input_shape (N, C_in, H, W); the layer's settings as in conv2d_output_shape.
    Returns: a Python int.
    """
    n, c_out, h_out, w_out = conv2d_output_shape(input_shape, out_channels, kernel_size, stride,
                                                 padding, dilation)
    c_in = int(input_shape[1])
    if c_in % groups or c_out % groups:
        raise ValueError(f"in_channels ({c_in}) and out_channels ({c_out}) must both be "
                         f"divisible by groups ({groups})")
    kh, kw = _pair(kernel_size, "kernel_size")
    return n * c_out * h_out * w_out * (c_in // groups) * kh * kw


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
    size, jump, start = 1, 1, 0
    result = []
    for layer in layers:
        if len(layer) != 4:
            raise ValueError("each layer must be a tuple (kernel_size, stride, padding, "
                             f"dilation); got {layer!r}")
        k, s, p, d = (int(v) for v in layer)
        if k < 1 or s < 1 or p < 0 or d < 1:
            raise ValueError(f"need kernel_size >= 1, stride >= 1, padding >= 0, dilation >= 1; "
                             f"got {layer!r}")
        size = size + (k - 1) * d * jump  # k taps, d units apart, each unit jump pixels apart
        start = start - p * jump  # window 0 starts p units before unit 0 of the layer below
        jump = jump * s
        result.append((size, jump, start))
    return result
