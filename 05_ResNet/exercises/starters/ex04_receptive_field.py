"""Exercise 04 (starter): receptive fields of the ResNet stages.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 05_ResNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

A unit of a convolutional feature map sees a square of input pixels, its receptive field.
Going through a layer with kernel k, stride s, padding p and dilation d, three numbers are
updated (lesson 03, theory.md section 5): the field size r, the jump j between the fields
of neighbouring units (the product of the strides so far), and the input coordinate
``start`` of the first pixel of unit 0's field:

    r'     = r + d (k - 1) j
    j'     = j s
    start' = start - p j

A residual block's output adds two paths; the field of the sum is the union of the two,
and the shortcut (identity, or a 1x1 conv) is always inside the main path's field, so
only the main path counts. A 1x1 convolution changes j (when strided) but not r.

Where the stride sits matters for bottlenecks: on the 1x1 (the paper), the 3x3 after it
already works at the doubled jump and adds 2 (2j) pixels; on the 3x3 (torchvision's
"v1.5"), it adds 2 j. The BasicBlock always strides its first 3x3.

The task text is in ``05_ResNet/exercises/04_receptive_field.md``.
"""

from __future__ import annotations

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def layer_receptive_field(r: int, j: int, start: int, kernel: int, stride: int = 1,
                          padding: int = 0, dilation: int = 1) -> tuple[int, int, int]:
    """Receptive field after one more convolution or pooling layer.

    Inputs:  (r, j, start) before the layer (ints; (1, 1, 0) for the input image);
             kernel, stride, dilation >= 1, padding >= 0 (ints, square windows).
    Returns: (r', j', start') = (r + d (k - 1) j, j s, start - p j).
    """
    raise NotImplementedError("layer_receptive_field: "
                              "r + d (k - 1) j, j s, start - p j")


def resnet_receptive_fields(block: str = "basic", layers=(2, 2, 2, 2),
                            stride_on: str = "3x3") -> dict[str, tuple[int, int, int]]:
    """(r, j, start) of the output of the stem and of each stage of an ImageNet ResNet.

    The stem is conv1 (7x7, stride 2, padding 3) and the 3x3 max pool (stride 2, padding 1).

    Inputs:  block - "basic" or "bottleneck"; layers - four ints >= 1, blocks per stage;
             stride_on - "1x1" (He et al.) or "3x3" (torchvision), used by bottlenecks only.
    Returns: {"stem": (r, j, start), "layer1": ..., ..., "layer4": ...}; for ResNet-18,
             layer4 is (435, 32, -217).
    """
    raise NotImplementedError("resnet_receptive_fields: "
                              "layer_receptive_field through the stem, then each main path")
