"""Exercise 02 (reference solution): parameters and multiply-adds of the ImageNet ResNets.

He et al. (2015), Table 1 lists five networks built from the same four stages (conv2_x ...
conv5_x of the paper, ``layer1`` ... ``layer4`` in code) and their cost in "FLOPs", which the
paper counts as multiply-adds: 1.8, 3.6, 3.8, 7.6 and 11.3 x 10^9 for ResNet-18, 34, 50,
101 and 152 on one 224 x 224 image. This file counts both numbers from the configuration
alone, layer by layer, without building a network.

A convolution with C_in -> C_out channels, a k x k kernel and an H_out x W_out output has

    parameters    = C_out C_in k^2            (no bias: a BatchNorm follows)
    multiply-adds = C_out C_in k^2 H_out W_out

and a BatchNorm on C channels has 2 C trainable parameters (gamma, beta); its running mean
and variance are buffers, not parameters. The fully connected head has 2048 x 1000 + 1000
(or 512 x 1000 + 1000) parameters and as many multiply-adds as weights.

The task text is in ``05_ResNet/exercises/02_resnet_complexity.md``.
"""

from __future__ import annotations

# Table 1: blocks per stage, and the block type
CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # the "planes" of each stage; bottlenecks output 4x that


def _check_config(block: str, layers, stride_on: str, image_size: int) -> tuple[int, ...]:
    """Validate the arguments shared by the two counters; return layers as a tuple of ints."""
    if block not in ("basic", "bottleneck"):
        raise ValueError(f"block must be 'basic' or 'bottleneck'; got {block!r}")
    if stride_on not in ("1x1", "3x3"):
        raise ValueError(f"stride_on must be '1x1' (the paper) or '3x3' (torchvision, "
                         f"'ResNet v1.5'); got {stride_on!r}")
    layers = tuple(layers)
    if len(layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in layers):
        raise ValueError(f"layers must be four ints >= 1 (blocks per stage); got {layers!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32; got {image_size!r}")
    return layers


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a convolution or pooling window: floor((n + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _layer_table(block: str, layers, stride_on: str, image_size: int, num_classes: int):
    """Every weight layer of the network as (kind, C_in, C_out, k, H_out * W_out).

    kind is "conv", "bn" (C_in = C_out = channels, size unused) or "fc".
    """
    table = []
    size = _conv_out(image_size, 7, 2, 3)  # conv1: 7 x 7, stride 2, padding 3
    table += [("conv", 3, 64, 7, size * size), ("bn", 64, 64, 0, 0)]
    size = _conv_out(size, 3, 2, 1)  # max pool 3 x 3, stride 2
    expansion = 1 if block == "basic" else 4
    c_in = 64
    for stage, (planes, n_blocks) in enumerate(zip(STAGE_WIDTHS, layers)):
        for b in range(n_blocks):
            stride = 2 if (stage > 0 and b == 0) else 1
            c_out = planes * expansion
            out = _conv_out(size, 1, stride, 0)  # the block's output size
            if block == "basic":
                table += [("conv", c_in, planes, 3, out * out), ("bn", planes, planes, 0, 0),
                          ("conv", planes, planes, 3, out * out), ("bn", planes, planes, 0, 0)]
            else:
                # stride on the first 1x1 (paper) or on the 3x3 (v1.5): the 1x1 then runs
                # at the input's resolution, 4x the pixels when the stride is 2
                first = out if stride_on == "1x1" else size
                table += [("conv", c_in, planes, 1, first * first), ("bn", planes, planes, 0, 0),
                          ("conv", planes, planes, 3, out * out), ("bn", planes, planes, 0, 0),
                          ("conv", planes, c_out, 1, out * out), ("bn", c_out, c_out, 0, 0)]
            if stride != 1 or c_in != c_out:  # projection shortcut (option B): 1x1 conv + BN
                table += [("conv", c_in, c_out, 1, out * out), ("bn", c_out, c_out, 0, 0)]
            c_in, size = c_out, out
    table.append(("fc", c_in, num_classes, 1, 1))
    return table


def resnet_parameter_count(block: str, layers, num_classes: int = 1000) -> int:
    """Trainable parameters of an ImageNet ResNet (conv weights, BN gamma and beta, fc).

    The count does not depend on where the stride sits, nor on the image size.

    Inputs:  block - "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152);
             layers - four ints, blocks per stage (Table 1); num_classes >= 1.
    Returns: int, e.g. 11,689,512 for ("basic", (2, 2, 2, 2)).
    """
    layers = _check_config(block, layers, "1x1", 224)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1; got {num_classes!r}")
    total = 0
    for kind, c_in, c_out, k, _ in _layer_table(block, layers, "1x1", 224, num_classes):
        if kind == "conv":
            total += c_out * c_in * k * k  # bias-free: the BN's beta is the bias
        elif kind == "bn":
            total += 2 * c_out  # gamma and beta
        else:
            total += c_in * c_out + c_out  # fc weight and bias
    return total


def resnet_multiply_adds(block: str, layers, image_size: int = 224, stride_on: str = "1x1",
                         num_classes: int = 1000) -> int:
    """Multiply-adds of one forward pass on one image: convolutions and the fc layer.

    BatchNorm, ReLU, pooling and the residual additions are left out, as in the paper:
    they cost one operation per activation, a fraction of a percent of the total.

    Inputs:  block, layers - as for resnet_parameter_count; image_size - H = W of the input
             (>= 32); stride_on - "1x1" (He et al.) or "3x3" (torchvision's v1.5);
             num_classes >= 1.
    Returns: int, e.g. about 3.86e9 for ResNet-50 with stride_on="1x1" (Table 1: 3.8e9).
    """
    layers = _check_config(block, layers, stride_on, image_size)
    total = 0
    for kind, c_in, c_out, k, pixels in _layer_table(block, layers, stride_on, image_size,
                                                     num_classes):
        if kind == "conv":
            total += c_out * c_in * k * k * pixels  # one multiply-add per weight per pixel
        elif kind == "fc":
            total += c_in * c_out
    return total
