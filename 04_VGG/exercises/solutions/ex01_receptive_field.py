"""Exercise 01 (reference solution): the receptive field of a stack of layers.

For layers (kernel k_l, stride s_l, padding p_l), with r_0 = 1, j_0 = 1, start_0 = 0
(theory.md section 2):

    r_l = r_{l-1} + (k_l - 1) j_{l-1}        receptive field (pixels, one side)
    j_l = j_{l-1} s_l                         jump: input pixels between neighbouring units
    start_l = start_{l-1} - p_l j_{l-1}       input pixel under the first unit's field

Unit i of layer l sees input pixels start_l + i j_l ... start_l + i j_l + r_l - 1.

The task text is in ``04_VGG/exercises/01_receptive_field.md``. NumPy only.
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
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)}, got {config!r}")
    out = []
    for item in CONFIGS[config]:
        if item == "M":
            out.append((2, 2, 0))
        elif isinstance(item, tuple):
            out.append((1, 1, 0))
        else:
            out.append((3, 1, 1))
    return out


def receptive_fields(layers) -> list[tuple[int, int, int]]:
    """(r, j, start) after each layer of ``layers`` (a list of (kernel, stride, padding)).

    Raises ValueError if a layer is not three ints with kernel, stride >= 1, padding >= 0.
    """
    r, j, start, out = 1, 1, 0, []
    for layer in layers:
        if len(layer) != 3 or not all(isinstance(v, int) for v in layer):
            raise ValueError(f"each layer must be (kernel, stride, padding) ints, got {layer!r}")
        k, s, p = layer
        if k < 1 or s < 1 or p < 0:
            raise ValueError(f"need kernel >= 1, stride >= 1, padding >= 0, got {layer!r}")
        start -= p * j  # padding moves the field's first pixel outwards
        r += (k - 1) * j  # k units, j_{l-1} pixels apart, each seeing r_{l-1}
        j *= s
        out.append((r, j, start))
    return out


def stacked_conv_equivalent(n: int, kernel: int = 3) -> tuple[int, int, int]:
    """n stacked stride-1 kernel x kernel convolutions against one convolution with the
    same receptive field, C channels in and out (Section 2.3 of the paper).

    Returns: (side of the equivalent single kernel, weights of the stack / C^2,
              weights of the single convolution / C^2); e.g. n = 3, kernel 3: (7, 27, 49)
    """
    if n < 1 or kernel < 1:
        raise ValueError(f"need n >= 1 and kernel >= 1, got {n}, {kernel}")
    side = 1 + n * (kernel - 1)  # each layer adds kernel - 1 pixels
    return side, n * kernel * kernel, side * side
