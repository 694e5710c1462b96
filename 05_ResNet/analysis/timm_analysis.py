"""timm's ResNet, read against ours: what ports, what does not, and features_only (Level 4).

``05_ResNet/analysis/README.md`` reads ``timm/models/resnet.py``; ``docs/04_Reading_timm_Code.md``
explains how timm is organised around it (registry, ``create_model``, pretrained configs,
``layers/``, feature extraction). This script checks, offline, on random weights:

1. The plain timm ResNets (``resnet18``, ``resnet34``, ``resnet50``, ... with
   ``stem_type=''`` and ``avg_down=False``) have torchvision's parameter names and shapes:
   timm renamed the activations (``act1``, ``act2``, ...), but activations have no
   parameters, so a ``state_dict`` moves into our Level 3 model unchanged and the
   outputs agree, both ways. timm also strides the 3x3 of a bottleneck, so ResNet-50
   ports to ``stride_on="3x3"``. The pretrained tags of the plain architecture, e.g.
   ``resnet50.a1_in1k`` (the "ResNet strikes back" recipes, Wightman et al. 2021), are
   weights for that same architecture: same keys, same shapes.
2. ``resnet50d`` (He et al. 2019, "Bag of Tricks", ResNet-D) is a different network: a
   deep stem (three 3x3 convolutions, 32, 32, 64 channels, instead of one 7x7) and
   average-pool downsampling (a 2x2 average pool with stride 2 before a stride-1 1x1
   projection, instead of a stride-2 1x1 projection that skips 3 of every 4 pixels). Its
   extra and changed parameters are listed; our Level 3 model has neither component, so
   ``timm_to_l3`` refuses it with a message that says which is missing.
3. ``features_only=True`` wraps the model in a ``FeatureListNet`` that returns the maps
   listed in ``feature_info`` (act1 at stride 2, layer1..layer4 at 4, 8, 16, 32); with the
   same weights they equal our model's stage outputs.

Run from the repository root::

    python 05_ResNet/analysis/timm_analysis.py          # offline, a few seconds
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import timm
import torch
from timm.models import resnet as timm_resnet
from torch import nn

from utils import import_lesson
from utils.cli import add_common_args, parse_args, positive_int, prepare_out_dir
from utils.training_utils import seed_everything, torch_threads

resnet_paper = import_lesson("05_ResNet.paper.resnet_paper")
tva = import_lesson("05_ResNet.analysis.torchvision_analysis")  # shared helpers

STAGES = ("layer1", "layer2", "layer3", "layer4")
PLAIN = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def create(name: str, **kwargs) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``: random weights, offline.

    Inputs:  name - a timm model name, with or without a pretrained tag ("resnet50.a1_in1k").
    Returns: the timm model (timm.models.ResNet, or a FeatureListNet with features_only).
    """
    if not timm.is_model(name.split(".")[0]):
        raise ValueError(f"timm {timm.__version__} has no model {name!r}; see "
                         "timm.list_models('resnet*')")
    return timm.create_model(name, pretrained=False, **kwargs)


def _plain_resnet_problem(model: nn.Module) -> str | None:
    """Why a timm ResNet is not the paper's network, or None when it is."""
    if not isinstance(model, timm_resnet.ResNet):
        return f"expected a timm.models.resnet.ResNet, got {type(model).__name__}"
    problems = []
    if not isinstance(model.conv1, nn.Conv2d):
        problems.append("a deep stem (conv1 is a stack of three 3x3 convolutions; the paper "
                        "and our model have one 7x7)")
    first = model.layer2[0].downsample
    if first is not None and not isinstance(first[0], nn.Conv2d):
        problems.append("average-pool downsampling (each projection shortcut starts with "
                        f"{type(first[0]).__name__}; ours is a strided 1x1 convolution)")
    block = model.layer1[0]
    if isinstance(block, timm_resnet.Bottleneck) and (
            block.conv2.groups != 1 or block.conv1.out_channels != 64):
        problems.append("grouped or widened bottlenecks (ResNeXt / wide ResNet)")
    if not isinstance(model.maxpool, nn.MaxPool2d):
        problems.append("a replaced stem pooling")
    # Anything but the paper's layers: act_layer="silu" (SiLU), drop_block_rate
    # (DropBlock2d), drop_path_rate (DropPath), aa_layer (BlurPool2d), attention (SE),
    # norm_layer="groupnorm" (GroupNorm), global_pool="max" (AdaptiveMaxPool2d), ...
    allowed = (timm_resnet.ResNet, timm_resnet.BasicBlock, timm_resnet.Bottleneck,
               nn.Sequential, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Identity,
               nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AvgPool2d,  # AvgPool2d: above
               timm.layers.SelectAdaptivePool2d)
    extra: dict[str, list[str]] = {}
    for name, m in model.named_modules():
        if not isinstance(m, allowed) or isinstance(m, nn.BatchNorm2d) and (
                type(m) is not nn.BatchNorm2d or (m.eps, m.momentum) != (1e-5, 0.1)):
            extra.setdefault(type(m).__name__, []).append(name)
    if extra:
        problems.append("modules the paper's ResNet does not have: " + ", ".join(
            f"{kind} ({names[0]}{', ...' if len(names) > 1 else ''})"
            for kind, names in extra.items()))
    if getattr(model, "drop_rate", 0.0):
        problems.append(f"dropout before the classifier (drop_rate={model.drop_rate})")
    if getattr(model.global_pool, "pool_type", "avg") != "avg":
        problems.append(f"{model.global_pool.pool_type!r} global pooling (ours: average)")
    if any(isinstance(m, nn.Conv2d) and m.dilation != (1, 1) for m in model.modules()):
        problems.append("dilated convolutions (output_stride < 32)")
    return "; ".join(problems) or None


def timm_to_l3(model: nn.Module) -> nn.Module:
    """Our Level 3 ResNet with the weights, buffers, dtype and mode of a plain timm ResNet.

    Inputs:  model - timm.models.ResNet with the paper's stem and downsampling (resnet18 ...
             resnet152 and their pretrained tags).
    Returns: resnet_paper.ResNet with stride_on="3x3" (timm strides the 3x3, as torchvision).
    Raises:  ValueError naming what the timm model has and ours lacks (e.g. resnet50d).
    """
    problem = _plain_resnet_problem(model)
    if problem:
        raise ValueError(f"this timm model cannot be ported to the paper's ResNet: it has "
                         f"{problem}. Extend resnet_paper.ResNet with these first.")
    block = (resnet_paper.Bottleneck if isinstance(model.layer1[0], timm_resnet.Bottleneck)
             else resnet_paper.BasicBlock)
    layers = [len(getattr(model, s)) for s in STAGES]
    ours = resnet_paper.ResNet(block, layers, model.num_classes, stride_on="3x3")
    state = model.state_dict()
    if set(state) != set(ours.state_dict()):  # the names are the same; say so if not
        raise ValueError(f"state_dict keys differ: {sorted(set(state) ^ set(ours.state_dict()))}")
    reshaped = [f"{k} {tuple(v.shape)} (ours {tuple(ours.state_dict()[k].shape)})"
                for k, v in state.items() if v.shape != ours.state_dict()[k].shape]
    if reshaped:  # in_chans, channels, stem_width: the same layers with other widths
        raise ValueError(f"this timm model has other layer widths than the paper's ResNet: "
                         f"{', '.join(reshaped[:2])}{', ...' if len(reshaped) > 2 else ''}")
    ours.load_state_dict(state)
    reference = next(model.parameters())
    return ours.to(device=reference.device, dtype=reference.dtype).train(model.training)


def l3_to_timm(model: nn.Module) -> nn.Module:
    """A timm ResNet with the weights, buffers, dtype and mode of our Level 3 ResNet.

    Inputs:  model - resnet_paper.ResNet (Bottleneck models need stride_on="3x3").
    Returns: timm.models.resnet.ResNet of the same depth.
    """
    if not isinstance(model, resnet_paper.ResNet):
        raise TypeError(f"expected resnet_paper.ResNet, got {type(model).__name__}")
    if model.block is resnet_paper.Bottleneck and model.stride_on != "3x3":
        raise ValueError("timm strides the 3x3 of a bottleneck; build ours with "
                         "stride_on='3x3' to port it")
    block = (timm_resnet.Bottleneck if model.block is resnet_paper.Bottleneck
             else timm_resnet.BasicBlock)
    # zero_init_last only affects the random initial values, which are overwritten
    out = timm_resnet.ResNet(block, list(model.layers), num_classes=model.num_classes)
    out.load_state_dict(model.state_dict())
    reference = next(model.parameters())
    return out.to(device=reference.device, dtype=reference.dtype).train(model.training)


def port_checks(name: str = "resnet18", size: int = 64, seed: int = 0,
                model: nn.Module | None = None) -> dict[str, float]:
    """timm -> ours -> timm with random weights and BN statistics; largest differences.

    Inputs:  name - a plain timm ResNet; size - image side; seed; model - a timm ResNet
             to use instead of ``create(name)``.
    Returns: {"eval_diff", "train_diff", "back_eval_diff", "params"}.
    """
    torch.manual_seed(seed)
    # timm zero-initialises the last BN of each block (zero_init_last=True): random BN
    # values make the residual branches count in the comparison
    model = tva.randomise_batchnorm(create(name) if model is None else model, seed)
    ours = timm_to_l3(model)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.eval(), ours.eval()
        out = {"eval_diff": tva.max_abs_diff(ours(x), model(x)),
               "back_eval_diff": tva.max_abs_diff(l3_to_timm(ours).eval()(x), model(x))}
        model.train(), ours.train()
        out["train_diff"] = tva.max_abs_diff(ours(x), model(x))
    out["params"] = float(sum(p.numel() for p in ours.parameters()))
    return out


def same_layout_as_torchvision(name: str) -> bool:
    """True when timm's model ``name`` has torchvision's state_dict keys and shapes.

    Built on the meta device: shapes only, nothing is allocated or initialised.
    """
    from torchvision.models import resnet as tv

    arch = name.split(".")[0]
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in create(name).state_dict().items()}
        ref = {k: tuple(v.shape) for k, v in getattr(tv, arch)().state_dict().items()}
    return ours == ref


def variant_differences(base: str = "resnet50", variant: str = "resnet50d") -> dict:
    """What a ResNet-C/D variant adds to the plain network: keys, shapes, counts, modules.

    Returns: {"only_in_variant": [keys], "only_in_base": [keys], "reshaped": [keys whose
             shape differs], "params_base", "params_variant", "stem": str, "downsample": str}.
    """
    with torch.device("meta"):
        a, b = create(base), create(variant)
    sa = {k: tuple(v.shape) for k, v in a.state_dict().items()}
    sb = {k: tuple(v.shape) for k, v in b.state_dict().items()}
    down = b.layer2[0].downsample
    return {
        "only_in_variant": sorted(set(sb) - set(sa)),
        "only_in_base": sorted(set(sa) - set(sb)),
        "reshaped": sorted(k for k in set(sa) & set(sb) if sa[k] != sb[k]),
        "params_base": sum(p.numel() for p in a.parameters()),
        "params_variant": sum(p.numel() for p in b.parameters()),
        "stem": " -> ".join(f"{type(m).__name__}" + (f"({m.in_channels}->{m.out_channels}, "
                                                      f"{m.kernel_size[0]}x{m.kernel_size[1]}, "
                                                      f"/{m.stride[0]})"
                                                      if isinstance(m, nn.Conv2d) else "")
                            for m in (b.conv1 if isinstance(b.conv1, nn.Sequential)
                                      else [b.conv1])),
        "downsample": " -> ".join(type(m).__name__ for m in down),
        "cannot_port": _plain_resnet_problem(b) or "",
    }


def features_only_checks(name: str = "resnet18", size: int = 64,
                         seed: int = 0) -> dict[str, object]:
    """timm's features_only model against our stage outputs, with the same weights.

    Returns: {"channels": [...], "reductions": [...], "modules": [...] (feature_info),
             "diff_<stage>": max abs difference for layer1..layer4, "diff_act1": stem}.
    """
    torch.manual_seed(seed)
    plain = tva.randomise_batchnorm(create(name), seed).eval()
    ours = timm_to_l3(plain).eval()
    feats = create(name, features_only=True).eval()  # out_indices (0, 1, 2, 3, 4)
    state = {k: v for k, v in plain.state_dict().items() if not k.startswith("fc.")}
    feats.load_state_dict(state)  # the wrapper keeps the trunk's names and drops the head
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        maps = feats(x)
        stem = ours.relu(ours.bn1(ours.conv1(x)))  # act1: stride 2, before the max pool
        reference = [stem, *tva.stage_outputs(ours, x).values()]
    out: dict[str, object] = {"channels": feats.feature_info.channels(),
                              "reductions": feats.feature_info.reduction(),
                              "modules": feats.feature_info.module_name()}
    for key, got, want in zip(("act1", *STAGES), maps, reference):
        out[f"diff_{key}"] = tva.max_abs_diff(got, want)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Port timm ResNets to the L3 model and back; ResNet-D's differences; features_only.

    Returns: a dict of the measured differences and the variant comparison.
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=("random",), out="runs/05_ResNet/l4_timm",
                    devices=("cpu",), threads=1)
    parser.add_argument("--models", nargs="+", choices=PLAIN, default=["resnet18", "resnet50"])
    parser.add_argument("--variant", default="resnet50d",
                        help="a ResNet-B/C/D/S/T variant to compare with resnet50")
    parser.add_argument("--size", type=positive_int, default=64,
                        help="image side for the checks, >= 32 (default: %(default)s)")
    args = parse_args(parser, argv)
    if args.size < 32:
        parser.error(f"argument --size: must be >= 32 (five halvings of the image), got "
                     f"{args.size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, object]:
    """The body of ``main``: the three checks, printed as they go."""
    seed_everything(args.seed)
    prepare_out_dir(args.out)
    start = time.perf_counter()
    results: dict[str, object] = {}
    print(f"timm {timm.__version__}, torch {torch.__version__}")

    print("\n1. plain timm ResNets -> ours -> timm (random weights and BN statistics)")
    for name in args.models:
        r = port_checks(name, args.size, args.seed)
        print(f"  {name:9s} {int(r['params']):>11,d} params  max|diff| eval {r['eval_diff']:.1e}"
              f"  train {r['train_diff']:.1e}  back {r['back_eval_diff']:.1e}")
        results.update({f"{name}_{k}": v for k, v in r.items()})
    for name in ("resnet50.a1_in1k", "resnet18.a1_in1k"):
        same = same_layout_as_torchvision(name)
        cfg = timm.models.get_pretrained_cfg(name)
        print(f"  {name}: architecture {cfg.architecture!r}, torchvision's keys and shapes: "
              f"{same}")
        results[f"{name}_same_layout"] = same

    print(f"\n2. resnet50 vs {args.variant}")
    d = variant_differences("resnet50", args.variant)
    print(f"  parameters {d['params_base']:,d} vs {d['params_variant']:,d} "
          f"({d['params_variant'] - d['params_base']:+,d})")
    print(f"  stem: {d['stem']}")
    print(f"  layer2.0.downsample: {d['downsample']}")
    print(f"  keys only in {args.variant}: {len(d['only_in_variant'])} "
          f"({', '.join(d['only_in_variant'][:4])}, ...); only in resnet50: "
          f"{len(d['only_in_base'])} ({', '.join(d['only_in_base'][:4])}, ...)")
    print(f"  same key, another tensor (the AvgPool2d shifts the downsample indices: .1 is "
          f"the BN in resnet50, the conv here): {', '.join(d['reshaped']) or 'none'}")
    print(f"  not portable to our L3 model because it has {d['cannot_port'] or '(nothing)'}")
    results[f"{args.variant}"] = d

    print("\n3. features_only=True vs our stage outputs (resnet18)")
    f = features_only_checks("resnet18", args.size, args.seed)
    print(f"  feature_info: modules {f['modules']}, channels {f['channels']}, "
          f"reductions {f['reductions']}")
    print("  max|diff| " + "  ".join(f"{k}: {f['diff_' + k]:.1e}" for k in ("act1", *STAGES)))
    results["features_only"] = f
    results["seconds"] = time.perf_counter() - start
    print(f"\ndone in {results['seconds']:.1f} s")
    return results


if __name__ == "__main__":
    main()
