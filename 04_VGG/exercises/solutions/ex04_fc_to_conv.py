"""Exercise 04 (reference solution): dense evaluation, the FC layers as convolutions.

FC6 of VGG maps the flattened (C, 7, 7) feature map to 4096 numbers with W6 (4096, C*49).
Reshaped to (4096, C, 7, 7), the same weights are a 7x7 convolution: at every position
of a larger feature map it computes what FC6 computes on that 7x7 window. FC7 and FC8
become 1x1 convolutions. The result is a class score map, averaged over its positions
(Section 3.2 of the paper; theory.md section 8).

The task text is in ``04_VGG/exercises/04_fc_to_conv.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def fc_to_conv_weight(W, channels: int, height: int, width: int) -> np.ndarray:
    """(D_out, C*H*W) linear weight -> (D_out, C, H, W) convolution kernel.

    Flattening (C, H, W) row-major (torch.flatten's order) puts entry (c, h, w) at column
    c H W + h W + w, which is exactly the order of a kernel's entries: a reshape.
    """
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[1] != channels * height * width:
        raise ValueError(f"W must be (D_out, {channels}*{height}*{width}); got {W.shape}")
    return W.reshape(W.shape[0], channels, height, width)


def conv2d_valid(x, kernel, bias) -> np.ndarray:
    """Stride-1 convolution without padding. x (N, C, H, W), kernel (O, C, k, k), bias (O,).
    Returns (N, O, H - k + 1, W - k + 1)."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    k = kernel.shape[-1]
    if x.shape[1] != kernel.shape[1] or min(x.shape[2:]) < k:
        raise ValueError(f"x {x.shape} does not fit the kernel {kernel.shape}")
    patches = sliding_window_view(x, (k, k), axis=(2, 3))  # (N, C, Ho, Wo, k, k)
    return np.einsum("nchwpq,ocpq->nohw", patches, kernel) + np.asarray(bias)[None, :, None, None]


def dense_class_scores(features, fc_weights, fc_biases, window: int = 7
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Run VGG's classifier densely over a feature map of any size >= window.

    Inputs:  features (N, C, H, W) (after the conv stacks, ReLU applied);
             fc_weights [W6 (D6, C*window^2), W7 (D7, D6), W8 (K, D7)], fc_biases likewise;
             ReLU after FC6 and FC7 (dropout is off at test time)
    Returns: (score map (N, K, H - window + 1, W - window + 1), its spatial mean (N, K))
    """
    features = np.asarray(features, dtype=np.float64)
    if len(fc_weights) != 3 or len(fc_biases) != 3:
        raise ValueError("need the three FC layers' weights and biases")
    c = features.shape[1]
    h = conv2d_valid(features, fc_to_conv_weight(fc_weights[0], c, window, window), fc_biases[0])
    h = np.maximum(h, 0)
    for layer in (1, 2):
        W = np.asarray(fc_weights[layer])
        h = conv2d_valid(h, W.reshape(W.shape[0], W.shape[1], 1, 1), fc_biases[layer])  # 1x1
        if layer == 1:
            h = np.maximum(h, 0)  # ReLU after FC7, none after FC8
    return h, h.mean(axis=(2, 3))
