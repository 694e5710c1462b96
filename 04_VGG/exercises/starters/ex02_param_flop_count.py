"""Exercise 02 (starter): parameters and multiply-adds of any VGG configuration.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 04_VGG/exercises --solutions my_solutions -k ex02

The helpers whose names start with ``_`` and the constants are given: use them.
The task, the maths and hints are in ``04_VGG/exercises/02_param_flop_count.md``. NumPy only.

Per layer (theory.md section 5):

    conv k x k, C_in -> C_out:   params  k^2 C_in C_out + C_out
                                 MACs    k^2 C_in C_out H_out W_out   (per image)
    batch norm over C channels:  params  2 C (gamma, beta; the running statistics are buffers)
    linear D_in -> D_out:        params  D_in D_out + D_out,  MACs D_in D_out

The classifier of the ImageNet networks sees 512 * 7 * 7 = 25,088 inputs (torchvision's
adaptive pooling makes the maps 7 x 7 for any input size), then FC-4096, FC-4096, FC-K.
"""

from __future__ import annotations

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


def _check(config: str, image_size: int) -> list:
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)}, got {config!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32 (five 2x2 poolings), got "
                         f"{image_size!r}")
    return CONFIGS[config]


def layer_table(config: str, num_classes: int = 1000, batch_norm: bool = False,
                image_size: int = 224) -> list[tuple[str, int, int]]:
    """(layer name, parameters, multiply-adds per image) for every weight layer.

    Names: "conv1_1", ..., "fc6", "fc7", "fc8". A batch-norm layer's 2 C parameters are
    added to its convolution's row (its multiply-adds are not counted).
    """
    raise NotImplementedError("layer_table: "
                              "walk the plan, halving the size at every 'M'; then fc6, fc7, fc8")


def vgg_parameter_count(config: str, num_classes: int = 1000, batch_norm: bool = False) -> int:
    """Trainable parameters of the ImageNet network of ``config``."""
    raise NotImplementedError("vgg_parameter_count: sum the parameter column of layer_table")


def vgg_multiply_adds(config: str, image_size: int = 224, num_classes: int = 1000) -> int:
    """Multiply-adds of one forward pass on one image_size x image_size image (convolutions
    and FC layers; ReLU, pooling and the tiny adaptive pooling not counted). Valid when the
    last feature map is 7 x 7 (image_size 224..255), where the adaptive pooling is the
    identity."""
    raise NotImplementedError("vgg_multiply_adds: sum the multiply-add column of layer_table")
