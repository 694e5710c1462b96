"""Exercise 04 (starter): dense evaluation, the FC layers as convolutions.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 04_VGG/exercises --solutions my_solutions -k ex04

The helpers whose names start with ``_`` and the constants are given: use them.
The task, the maths and hints are in ``04_VGG/exercises/04_fc_to_conv.md``. NumPy only.

FC6 of VGG maps the flattened (C, 7, 7) feature map to 4096 numbers with W6 (4096, C*49).
Reshaped to (4096, C, 7, 7), the same weights are a 7x7 convolution: at every position
of a larger feature map it computes what FC6 computes on that 7x7 window. FC7 and FC8
become 1x1 convolutions. The result is a class score map, averaged over its positions
(Section 3.2 of the paper; theory.md section 8).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view  # noqa: F401 (you will want it)


def fc_to_conv_weight(W, channels: int, height: int, width: int) -> np.ndarray:
    """(D_out, C*H*W) linear weight -> (D_out, C, H, W) convolution kernel.

    Flattening (C, H, W) row-major (torch.flatten's order) puts entry (c, h, w) at column
    c H W + h W + w, which is exactly the order of a kernel's entries: a reshape.
    """
    raise NotImplementedError("fc_to_conv_weight: "
                              "a reshape: the flatten order of (C, H, W) is the kernel's order")


def conv2d_valid(x, kernel, bias) -> np.ndarray:
    """Stride-1 convolution without padding. x (N, C, H, W), kernel (O, C, k, k), bias (O,).
    Returns (N, O, H - k + 1, W - k + 1)."""
    raise NotImplementedError("conv2d_valid: "
                              "sliding_window_view over axes (2, 3), then einsum with the kernel")


def dense_class_scores(features, fc_weights, fc_biases, window: int = 7
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Run VGG's classifier densely over a feature map of any size >= window.

    Inputs:  features (N, C, H, W) (after the conv stacks, ReLU applied);
             fc_weights [W6 (D6, C*window^2), W7 (D7, D6), W8 (K, D7)], fc_biases likewise;
             ReLU after FC6 and FC7 (dropout is off at test time)
    Returns: (score map (N, K, H - window + 1, W - window + 1), its spatial mean (N, K))
    """
    raise NotImplementedError("dense_class_scores: FC6 -> a window x window conv, "
                              "FC7 and FC8 -> 1x1 convs, ReLU after FC6 and FC7")
