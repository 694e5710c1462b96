"""Porting VGG weights between this lesson's ``VGG`` (``vgg_paper.py``) and torchvision's.

Our ``VGG`` keeps torchvision's module layout (``features`` / ``avgpool`` / ``classifier``,
the same indices inside each ``nn.Sequential``), so porting is a ``state_dict`` copy once
the configuration of Table 1 is recognised. Configurations C and A-LRN have no torchvision
counterpart, nor has the CIFAR variant (``vgg_cifar``): ``to_torchvision`` refuses them.
The tests port both ways and compare the outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from utils import import_lesson

paper = import_lesson("04_VGG.paper.vgg_paper")  # the model: VGG, CONFIGS

# Configurations that torchvision also builds (vgg11 = A, vgg13 = B, vgg16 = D, vgg19 = E)
TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def _config_from_layers(features: nn.Sequential) -> tuple[str, bool]:
    """(config name, batch_norm) of a torchvision ``features`` stack."""
    plan: list = []
    batch_norm = False
    for m in features:
        if isinstance(m, nn.Conv2d):
            if m.kernel_size != (3, 3):
                plan.append(("conv1", m.out_channels))
            else:
                plan.append(m.out_channels)
        elif isinstance(m, nn.MaxPool2d):
            plan.append("M")
        elif isinstance(m, nn.BatchNorm2d):
            batch_norm = True
        elif isinstance(m, nn.LocalResponseNorm):
            plan.append("LRN")
    for name, layers in paper.CONFIGS.items():
        if layers == plan:
            return name, batch_norm
    raise ValueError(f"the features stack {plan} matches none of Table 1's configurations")


def from_torchvision(tv_model: nn.Module) -> paper.VGG:
    """Our VGG holding a copy of a torchvision VGG's weights (and batch-norm statistics).

    Inputs:  tv_model - torchvision.models.VGG (vgg11/13/16/19, with or without _bn)
    Returns: VGG with the same layout, config, num_classes and dropout; same train/eval mode
    """
    from torchvision.models import VGG as TorchvisionVGG

    if not isinstance(tv_model, TorchvisionVGG):
        raise TypeError(f"from_torchvision: expected a torchvision.models.VGG, got "
                        f"{type(tv_model).__name__}")
    config, batch_norm = _config_from_layers(tv_model.features)
    dropout = next(m.p for m in tv_model.classifier if isinstance(m, nn.Dropout))
    num_classes = tv_model.classifier[-1].out_features
    with torch.device("meta"):  # no time spent initialising weights about to be replaced
        model = paper.VGG(config, num_classes, batch_norm, dropout)
    state = {k: v.detach().clone() for k, v in tv_model.state_dict().items()}
    model.load_state_dict(state, assign=True)  # same keys: features.0.weight, ...
    return model.train(tv_model.training)


def to_torchvision(model: paper.VGG) -> nn.Module:
    """A torchvision.models.VGG holding a copy of our weights (configs A, B, D, E).

    Configurations C and A-LRN have no torchvision counterpart (ValueError); neither has
    the CIFAR variant (a single Linear classifier) nor a narrowed ``width``.
    """
    from torchvision.models import vgg as tv_vgg

    if not isinstance(model, paper.VGG):
        raise TypeError(f"to_torchvision: expected a VGG, got {type(model).__name__}")
    if model.config not in TORCHVISION_NAMES:
        raise ValueError(f"to_torchvision: configuration {model.config!r} has no torchvision "
                         f"equivalent (torchvision builds {sorted(TORCHVISION_NAMES)} only)")
    if not isinstance(model.classifier, nn.Sequential) or model.in_channels != 3:
        raise ValueError("to_torchvision: only the ImageNet layout (3 input channels, "
                         "FC-4096 x 2) converts; the CIFAR variant does not")
    dropout = next(m.p for m in model.classifier if isinstance(m, nn.Dropout))
    num_classes = model.classifier[-1].out_features
    layers = tv_vgg.cfgs[model.config]  # torchvision names them "A", "B", "D", "E" too
    with torch.device("meta"):
        tv_model = tv_vgg.VGG(tv_vgg.make_layers(layers, batch_norm=model.batch_norm),
                              num_classes=num_classes, init_weights=False, dropout=dropout)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        tv_model.load_state_dict(state, assign=True)
    except RuntimeError as err:
        raise ValueError(f"to_torchvision: the weights do not fit torchvision's {layers} "
                         f"(a narrowed width?): {err}") from None
    return tv_model.train(model.training)
