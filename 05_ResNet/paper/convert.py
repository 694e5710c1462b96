"""Porting weights between this lesson's ``ResNet`` (``resnet_paper.py``) and torchvision's.

Module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` / ``.1``, ``fc``), so porting is a ``state_dict`` copy once the
two are known to compute the same function: ``from_torchvision`` refuses what our
``ResNet`` cannot reproduce (dilation, other norms, ResNeXt, a replaced head), and
``to_torchvision`` refuses the paper's stride placement in a Bottleneck, which torchvision
cannot express. The tests port both ways and compare the outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from utils import import_lesson

paper = import_lesson("05_ResNet.paper.resnet_paper")  # the model: ResNet, the blocks


def from_torchvision(tv_model) -> paper.ResNet:
    """A ``ResNet`` with the weights, buffers, dtype, device and train/eval mode of a
    ``torchvision.models.ResNet`` (resnet18 ... resnet152, not ResNeXt / wide ResNets).

    torchvision puts a Bottleneck's stride on the 3x3 convolution, so the result uses
    ``stride_on="3x3"``; it computes the same outputs. Porting is a ``state_dict``
    copy, because the module names are the same.

    Inputs:  tv_model - torchvision.models.ResNet
    Returns: ResNet
    """
    from torchvision.models import resnet as tv

    if not isinstance(tv_model, tv.ResNet):
        raise TypeError(f"expected a torchvision.models.ResNet, got {type(tv_model).__name__}")
    first = tv_model.layer1[0]
    if isinstance(first, tv.Bottleneck):
        block = paper.Bottleneck
        if first.conv2.groups != 1 or first.conv1.out_channels != 64:
            raise ValueError("from_torchvision: ResNeXt / wide ResNets (groups != 1 or "
                             "width_per_group != 64) are not the paper's ResNet")
    elif isinstance(first, tv.BasicBlock):
        block = paper.BasicBlock
    else:
        raise TypeError(f"unknown torchvision block type {type(first).__name__}")
    problem = _torchvision_port_problem(tv_model, tv)
    if problem:
        raise ValueError(f"from_torchvision: this torchvision ResNet computes something our "
                         f"ResNet cannot: {problem}")
    layers = [len(getattr(tv_model, f"layer{i}")) for i in range(1, 5)]
    with torch.device("meta"):  # shapes only: the weights are about to be replaced
        model = paper.ResNet(block, layers, tv_model.fc.out_features, stride_on="3x3")
    return _assign_state(model, tv_model)


def _torchvision_port_problem(tv_model, tv) -> str | None:
    """Why a torchvision ResNet would not give our outputs after the port, or None.

    The weights of every such model fit our layers; the function does not: dilated 3x3
    convolutions (``replace_stride_with_dilation``), another ``norm_layer`` (GroupNorm,
    FrozenBatchNorm2d, BatchNorm2d with other eps or momentum), other input channels,
    or a replaced stem, pooling or head.
    """
    problems = []
    if tv_model.conv1.in_channels != 3:
        problems.append(f"{tv_model.conv1.in_channels} input channels (ours: 3)")
    dilated = [name for name, m in tv_model.named_modules()
               if isinstance(m, nn.Conv2d) and m.dilation != (1, 1)]
    if dilated:
        problems.append(f"dilated convolutions ({dilated[0]}, ...: replace_stride_with_"
                        "dilation; ours strides every stage)")
    allowed = (tv.ResNet, tv.BasicBlock, tv.Bottleneck, nn.Sequential, nn.Conv2d, nn.ReLU,
               nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear)
    for name, m in tv_model.named_modules():
        if type(m) is nn.BatchNorm2d:
            if (m.eps, m.momentum, m.affine, m.track_running_stats) != (1e-5, 0.1, True, True):
                problems.append(f"batch norm with eps={m.eps}, momentum={m.momentum} at {name} "
                                "(ours: nn.BatchNorm2d's defaults, eps=1e-5, momentum=0.1)")
                break
        elif not isinstance(m, allowed):
            problems.append(f"a {type(m).__name__} at {name or 'the top'} (ours has "
                            "nn.BatchNorm2d, ReLU, max / average pooling and one Linear)")
            break
    pool = tv_model.avgpool
    if not isinstance(tv_model.fc, nn.Linear) or not isinstance(pool, nn.AdaptiveAvgPool2d) \
            or pool.output_size not in (1, (1, 1)):
        problems.append("a replaced head (ours: global average pooling and one nn.Linear)")
    return "; ".join(dict.fromkeys(problems)) or None


def to_torchvision(model: paper.ResNet):
    """A ``torchvision.models.ResNet`` with the weights, buffers, dtype, device and mode of
    ``model``, computing the same outputs.

    Raises ValueError for a Bottleneck model with ``stride_on="1x1"``: torchvision always
    strides the 3x3 convolution, so it cannot express the paper's placement (the weights
    would fit, the function would not). BasicBlock models port with either setting.

    Inputs:  model - ResNet
    Returns: torchvision.models.ResNet
    """
    from torchvision.models import resnet as tv

    if not isinstance(model, paper.ResNet):
        raise TypeError(f"expected a ResNet of this module, got {type(model).__name__}")
    if model.block is paper.Bottleneck and model.stride_on != "3x3":
        raise ValueError("to_torchvision: this Bottleneck ResNet strides its 1x1 convolution "
                         "(stride_on='1x1', the paper); torchvision strides the 3x3 one and "
                         "cannot express it. Build the model with stride_on='3x3' to port it.")
    tv_block = tv.Bottleneck if model.block is paper.Bottleneck else tv.BasicBlock
    with torch.device("meta"):
        tv_model = tv.ResNet(tv_block, list(model.layers), num_classes=model.num_classes)
    return _assign_state(tv_model, model)


def _assign_state(target: nn.Module, source: nn.Module) -> nn.Module:
    """Give ``target`` (built on the meta device) copies of ``source``'s parameters and
    buffers, with their dtype and device, and ``source``'s train/eval mode. Building on
    "meta" skips an initialisation whose random weights would be thrown away at once."""
    state = {k: v.detach().clone() for k, v in source.state_dict().items()}
    target.load_state_dict(state, strict=True, assign=True)
    return target.train(source.training)
