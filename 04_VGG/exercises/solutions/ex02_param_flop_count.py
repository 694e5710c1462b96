"""Exercise 02 (reference solution): parameters and multiply-adds of any VGG configuration.

Per layer (theory.md section 5):

    conv k x k, C_in -> C_out:   params  k^2 C_in C_out + C_out
                                 MACs    k^2 C_in C_out H_out W_out   (per image)
    batch norm over C channels:  params  2 C (gamma, beta; the running statistics are buffers)
    linear D_in -> D_out:        params  D_in D_out + D_out,  MACs D_in D_out

The classifier of the ImageNet networks sees 512 * 7 * 7 = 25,088 inputs (torchvision's
adaptive pooling makes the maps 7 x 7 for any input size), then FC-4096, FC-4096, FC-K.

The task text is in ``04_VGG/exercises/02_param_flop_count.md``. NumPy only.
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
    plan = _check(config, image_size)
    rows, c_in, size, stage, index = [], 3, image_size, 1, 0
    for item in plan:
        if item == "M":
            size //= 2  # 2x2 pooling, stride 2, floor
            stage, index = stage + 1, 0
            continue
        k, c_out = (1, item[1]) if isinstance(item, tuple) else (3, item)
        index += 1
        params = k * k * c_in * c_out + c_out + (2 * c_out if batch_norm else 0)
        macs = k * k * c_in * c_out * size * size  # padding keeps H x W
        rows.append((f"conv{stage}_{index}", params, macs))
        c_in = c_out
    for name, d_in, d_out in (("fc6", 512 * 7 * 7, 4096), ("fc7", 4096, 4096),
                              ("fc8", 4096, num_classes)):
        rows.append((name, d_in * d_out + d_out, d_in * d_out))
    return rows


def vgg_parameter_count(config: str, num_classes: int = 1000, batch_norm: bool = False) -> int:
    """Trainable parameters of the ImageNet network of ``config``."""
    return sum(p for _, p, _ in layer_table(config, num_classes, batch_norm))


def vgg_multiply_adds(config: str, image_size: int = 224, num_classes: int = 1000) -> int:
    """Multiply-adds of one forward pass on one image_size x image_size image (convolutions
    and FC layers; ReLU, pooling and the tiny adaptive pooling not counted). Valid when the
    last feature map is 7 x 7 (image_size 224..255), where the adaptive pooling is the
    identity."""
    return sum(m for _, _, m in layer_table(config, num_classes, False, image_size))
