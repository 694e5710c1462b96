"""torchvision's ResNet, read against ours: weight porting, then three modifications (Level 4).

Part of lesson 05's code reading (``05_ResNet/analysis/README.md`` walks through
``torchvision/models/resnet.py`` line by line). This script checks what the reading
claims, on randomly initialised models, offline:

1. Porting. ``from_torchvision`` (in ``05_ResNet/paper/convert.py``) loads a
   torchvision ResNet's ``state_dict`` into our Level 3 model, whose module names are
   the same; ``to_torchvision`` goes back. The two compute the same function, so the
   outputs agree to float rounding, in eval mode (running statistics) and in train mode
   (batch statistics). torchvision strides the 3x3 of a bottleneck ("ResNet v1.5"), so
   the ported ResNet-50 uses ``stride_on="3x3"``; the paper's ``"1x1"`` has the same
   weights but a different function (shown below: the outputs differ).
2. A custom pooling head: generalised mean pooling (GeM, Radenovic, Tolias and Chum 2018,
   "Fine-tuning CNN Image Retrieval with No Human Annotation", eq. 1). Per channel,
   f = (mean over pixels of x^p)^(1/p), with p learned: p = 1 is average pooling, and
   f tends to the maximum as p grows. It replaces ``avgpool`` without touching the trunk.
3. Intermediate features: the outputs of ``layer1`` ... ``layer4`` of a torchvision model,
   taken with ``torchvision.models.feature_extraction.create_feature_extractor`` (a
   torch.fx graph cut) and with forward hooks, equal the stage outputs of our model.
4. A new task on a frozen trunk: every trunk parameter gets ``requires_grad=False`` and
   the BN layers stay in eval mode (otherwise their running statistics would drift even
   though no weight is trained); a new ``fc`` is trained for a few steps on the digits
   (8x8 scikit-learn digits, upsampled to 32x32 and copied to 3 channels). Afterwards the
   trunk's state_dict is bitwise unchanged and the head's is not.

``--pretrained`` asks torchvision for its ImageNet weights (a download on first use, then
the torch hub cache). Offline and without a cached copy it stops with a message that says
so, instead of a traceback from deep inside urllib.

Run from the repository root::

    python 05_ResNet/analysis/torchvision_analysis.py               # offline, a few seconds
    python 05_ResNet/analysis/torchvision_analysis.py --archs resnet18 resnet50 --size 96
    python 05_ResNet/analysis/torchvision_analysis.py --pretrained  # needs the weights
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import resnet as tv
from torchvision.models.feature_extraction import create_feature_extractor

from utils import import_lesson
from utils.cli import add_common_args, data_errors, parse_args, positive_int, prepare_out_dir
from utils.data_loaders import load_images
from utils.training_utils import get_device, seed_everything, torch_threads

resnet_paper = import_lesson("05_ResNet.paper.resnet_paper")
convert = import_lesson("05_ResNet.paper.convert")  # from_torchvision, to_torchvision

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
STAGES = ("layer1", "layer2", "layer3", "layer4")
WEIGHTS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
           "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights",
           "resnet152": "ResNet152_Weights"}


class PretrainedWeightsUnavailable(RuntimeError):
    """torchvision's pretrained weights could not be downloaded nor found in the cache."""


# --------------------------------------------------------------------------------------
# 1. Porting weights both ways
# --------------------------------------------------------------------------------------


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN layer random running statistics and affine parameters, in place.

    A freshly built ResNet has mean 0, variance 1, gamma 1 and beta 0 everywhere, so a
    porting bug that swaps two BN layers would go unnoticed; random values expose it.

    Inputs:  model - any module; seed - for the random values.
    Returns: the same model.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
    return model


def torchvision_resnet(arch: str, num_classes: int = 1000, pretrained: bool = False) -> nn.Module:
    """``torchvision.models.<arch>``, randomly initialised or with its ImageNet weights.

    Inputs:  arch - one of ARCHS; num_classes (1000 with pretrained weights);
             pretrained - load the DEFAULT ImageNet weights (downloaded once, then cached).
    Returns: torchvision.models.ResNet.
    Raises:  ValueError for an unknown arch; PretrainedWeightsUnavailable when the weights
             can be neither downloaded nor found in the cache.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}; got {arch!r}")
    builder = getattr(tv, arch)
    if not pretrained:
        return builder(num_classes=num_classes)
    weights = getattr(tv, WEIGHTS[arch]).DEFAULT
    try:
        return builder(weights=weights)
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
        hub_dir = torch.hub.get_dir()
        raise PretrainedWeightsUnavailable(
            f"could not load torchvision's pretrained {arch} ({weights}): {err}. The weights "
            f"are downloaded from {weights.url} on first use and cached in {hub_dir}/"
            "checkpoints; on a machine without internet, copy that file there, or run "
            "without --pretrained (random weights show the same porting checks).") from None


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| as a Python float."""
    return float((a.detach() - b.detach()).abs().max())


def port_roundtrip(arch: str = "resnet18", size: int = 64, batch: int = 2, seed: int = 0,
                   tv_model: nn.Module | None = None) -> dict[str, float]:
    """torchvision -> ours -> torchvision, with the largest output differences.

    Inputs:  arch - one of ARCHS; size - image side (>= 32); batch >= 2 (train-mode BN
             needs more than one value per channel); seed; tv_model - a torchvision model
             to use instead of a fresh random one (e.g. pretrained).
    Returns: {"eval_diff", "train_diff" (ours vs torchvision, logits), "back_eval_diff"
             (to_torchvision(ours) vs the original), "v1_vs_v15_diff" (ResNet-50 and up: the
             same weights with the stride on the 1x1; large, a different function),
             "params" (count)}.
    """
    torch.manual_seed(seed)
    if tv_model is None:
        tv_model = randomise_batchnorm(torchvision_resnet(arch), seed)
    ours = convert.from_torchvision(tv_model)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    out: dict[str, float] = {"params": float(sum(p.numel() for p in ours.parameters()))}
    with torch.no_grad():
        tv_model.eval(), ours.eval()
        out["eval_diff"] = max_abs_diff(ours(x), tv_model(x))
        back = convert.to_torchvision(ours).eval()
        out["back_eval_diff"] = max_abs_diff(back(x), tv_model(x))
        # train mode: BN normalises with the batch's own statistics (and updates its
        # running statistics, identically in both models)
        tv_model.train(), ours.train()
        out["train_diff"] = max_abs_diff(ours(x), tv_model(x))
        tv_model.eval()
        if isinstance(tv_model.layer1[0], tv.Bottleneck):
            paper = resnet_paper.ResNet(resnet_paper.Bottleneck, ours.layers,
                                        ours.num_classes, stride_on="1x1").eval()
            paper.load_state_dict(ours.state_dict())  # the same weights fit ...
            ours.eval()
            out["v1_vs_v15_diff"] = max_abs_diff(paper(x), ours(x))  # ... another function
    return out


# --------------------------------------------------------------------------------------
# 2. A custom pooling head: generalised mean (GeM) pooling
# --------------------------------------------------------------------------------------


class GeM(nn.Module):
    """Generalised mean pooling (Radenovic et al. 2018, eq. 1), p learned.

        f_c = ( (1 / |X_c|) sum_{x in X_c} x^p )^(1 / p)     per channel c

    p = 1 is average pooling; p -> infinity is max pooling. The inputs are clamped at
    ``eps`` (GeM is defined for x > 0; after a ReLU most activations are). Computed as
    m (mean((x / m)^p))^(1/p) with m the per-channel maximum, so that x^p cannot overflow
    for large p (the same trick as logsumexp); autograd gives dL/dp.

    Inputs (constructor): p > 0 (initial value), eps > 0, learn_p.
    forward: x (N, C, H, W) -> (N, C, 1, 1), like nn.AdaptiveAvgPool2d((1, 1)).
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learn_p: bool = True):
        super().__init__()
        if not p > 0 or not eps > 0:
            raise ValueError(f"GeM: p and eps must be > 0; got p={p}, eps={eps}")
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learn_p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"GeM: expected (N, C, H, W) features; got shape {tuple(x.shape)}")
        x = x.clamp(min=self.eps)
        m = x.amax(dim=(2, 3), keepdim=True)  # (N, C, 1, 1), >= eps
        ratio_p = (x / m).pow(self.p)  # in (0, 1]: no overflow for any p
        return m * ratio_p.mean(dim=(2, 3), keepdim=True).pow(1.0 / self.p)  # (N, C, 1, 1)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.3f}, eps={self.eps}"


def with_gem_head(model: nn.Module, p: float = 3.0) -> nn.Module:
    """Replace ``model.avgpool`` (torchvision's or ours) by GeM(p), in place.

    Both models call ``self.avgpool`` then flatten, so the swap is one attribute.

    Inputs:  model - a ResNet with an ``avgpool`` attribute; p > 0.
    Returns: the same model.
    """
    if not isinstance(getattr(model, "avgpool", None), nn.Module):
        raise TypeError(f"{type(model).__name__} has no avgpool module to replace")
    reference = next(model.parameters())
    model.avgpool = GeM(p).to(device=reference.device, dtype=reference.dtype)
    return model


def gem_checks(size: int = 64, seed: int = 0) -> dict[str, float]:
    """GeM against average and max pooling on the features of a random ResNet-18.

    Returns: {"p1_vs_avg" (max |GeM_1 - avg|), "p_large_vs_max" (max relative gap to the
             max, p = 200), "gem_grad_p" (dL/dp after one backward: p is learned)}.
    """
    torch.manual_seed(seed)
    model = resnet_paper.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        feats = model.forward_features(x) + 1e-3  # (N, 512, h, w), after ReLU; > 0
    avg = F.adaptive_avg_pool2d(feats, 1)
    mx = F.adaptive_max_pool2d(feats, 1)
    with torch.no_grad():
        out = {"p1_vs_avg": max_abs_diff(GeM(1.0)(feats), avg),
               "p_large_vs_max": float(((mx - GeM(200.0)(feats)) / mx).max())}
    with_gem_head(model)
    loss = model(x).logsumexp(dim=1).mean()
    loss.backward()
    out["gem_grad_p"] = float(model.avgpool.p.grad)
    return out


# --------------------------------------------------------------------------------------
# 3. Intermediate features
# --------------------------------------------------------------------------------------


def stage_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of layer1 ... layer4, by running the stem and the stages one by one.

    Works for our model and for torchvision's (same attribute names).

    Inputs:  model - a ResNet; x (N, 3, H, W).
    Returns: {"layer1": (N, 64 e, H/4, W/4), ..., "layer4": (N, 512 e, H/32, W/32)}.
    """
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))  # (N, 64, H/4, W/4)
    out = {}
    for name in STAGES:
        h = getattr(model, name)(h)
        out[name] = h
    return out


def features_by_fx(tv_model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """layer1..layer4 via torchvision's create_feature_extractor (a torch.fx graph that
    ends at the requested nodes: avgpool and fc are never computed)."""
    extractor = create_feature_extractor(tv_model, return_nodes={s: s for s in STAGES})
    return extractor(x)


def features_by_hooks(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """layer1..layer4 via forward hooks during one ordinary forward pass (the hooks are
    removed afterwards, also if the forward pass fails)."""
    found: dict[str, torch.Tensor] = {}
    handles = [getattr(model, s).register_forward_hook(
        lambda module, inputs, output, name=s: found.__setitem__(name, output))
        for s in STAGES]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return found


def feature_checks(arch: str = "resnet18", size: int = 64, seed: int = 0) -> dict[str, float]:
    """Both extraction methods on torchvision's model against our model's stage outputs.

    Returns: {"fx_<stage>", "hooks_<stage>": max abs difference, for each stage}.
    """
    torch.manual_seed(seed)
    tv_model = randomise_batchnorm(torchvision_resnet(arch), seed).eval()
    ours = convert.from_torchvision(tv_model).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        reference = stage_outputs(ours, x)
        fx, hooks = features_by_fx(tv_model, x), features_by_hooks(tv_model, x)
    out = {}
    for s in STAGES:
        out[f"fx_{s}"] = max_abs_diff(fx[s], reference[s])
        out[f"hooks_{s}"] = max_abs_diff(hooks[s], reference[s])
    return out


# --------------------------------------------------------------------------------------
# 4. A new head on a frozen trunk
# --------------------------------------------------------------------------------------


def freeze_trunk(model: nn.Module, num_classes: int) -> nn.Module:
    """Freeze every parameter, then give the model a new trainable ``fc`` for num_classes.

    Call ``head_only_train_mode(model)`` instead of ``model.train()`` when training.

    Inputs:  model - a ResNet (ours or torchvision's); num_classes >= 1.
    Returns: the same model, its old fc replaced.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1; got {num_classes!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    reference = model.fc.weight
    model.fc = nn.Linear(model.fc.in_features, num_classes).to(reference.device, reference.dtype)
    return model


def head_only_train_mode(model: nn.Module) -> nn.Module:
    """Train mode for the head only: the trunk's BN layers stay in eval mode.

    ``requires_grad=False`` stops the optimizer but not BN: in train mode a BN layer
    normalises with the batch's statistics and overwrites its running mean and variance
    at every forward pass, so a "frozen" trunk would still change.
    """
    model.eval()
    model.fc.train()
    return model


def digits_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n scikit-learn digits (a random draw of the training split) as (n, 3, 32, 32) float32
    images in [0, 1] and int64 labels: lesson 03's 32x32 field (``utils.data_loaders.
    load_images``: each pixel a 3x3 block, 4 pixels of background around), the grey copied
    into the three channels a ResNet expects. Raises DatasetNotFoundError (never: digits
    ship with scikit-learn) like every loader.
    """
    split = load_images("digits", size=32, channels=3)  # (1437, 3, 32, 32)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(split.X_train))[:n]
    return torch.from_numpy(split.X_train[idx]), torch.from_numpy(split.y_train[idx]).long()


def train_new_head(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                   steps: int = 20, lr: float = 0.5, batch_size: int = 32,
                   seed: int = 0) -> dict[str, float]:
    """Freeze the trunk, train a new fc for ``steps`` SGD steps; report what changed.

    Inputs:  model - a ResNet; x (N, 3, H, W), y (N,) int64 labels < num_classes;
             steps >= 1; lr > 0; batch_size >= 1.
    Returns: {"first_loss", "last_loss" (cross-entropy of the first and last step),
             "trunk_changed" (number of trunk state_dict entries not bitwise equal: 0),
             "head_change" (max |fc.weight after - before|), "trainable" (parameters with
             requires_grad)}.
    """
    if x.ndim != 4 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, 3, H, W) and y (N,); got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    torch.manual_seed(seed)
    freeze_trunk(model, num_classes)
    trunk_before = {k: v.clone() for k, v in model.state_dict().items()
                    if not k.startswith("fc.")}
    head_before = model.fc.weight.detach().clone()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=lr, momentum=0.9)
    head_only_train_mode(model)
    losses = []
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    trunk_after = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    return {"first_loss": losses[0], "last_loss": losses[-1],
            "trunk_changed": float(sum(not torch.equal(trunk_before[k], trunk_after[k])
                                       for k in trunk_before)),
            "head_change": max_abs_diff(model.fc.weight.detach(), head_before),
            "trainable": float(sum(p.numel() for p in trainable))}


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Port torchvision ResNets to the L3 model and back, then the three modifications.

    Returns: a flat dict of the measured differences and the head-training numbers.
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=("digits",), epochs=1, batch_size=32, lr=0.5,
                    out="runs/05_ResNet/l4_torchvision", devices=("cpu", "auto", "cuda"),
                    threads=1)
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=["resnet18", "resnet50"])
    parser.add_argument("--size", type=positive_int, default=64,
                        help="image side for the checks, >= 32 (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=20,
                        help="SGD steps of the new head (it trains for steps, not --epochs; "
                             "default: %(default)s)")
    parser.add_argument("--train-images", type=positive_int, default=256,
                        help="digits images the new head is trained on (default: %(default)s)")
    parser.add_argument("--pretrained", action="store_true",
                        help="port torchvision's ImageNet weights (download or cache needed)")
    args = parse_args(parser, argv)
    if args.size < 32:
        parser.error(f"argument --size: must be >= 32 (five halvings of the image), got "
                     f"{args.size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> dict[str, float]:
    """The body of ``main``: the four checks, printed as they go."""
    seed_everything(args.seed)
    prepare_out_dir(args.out)
    device = get_device(args.device)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, device {device}")
    results: dict[str, float] = {}
    start = time.perf_counter()

    print("\n1. porting torchvision -> ours -> torchvision "
          f"(random weights, random BN statistics, {args.size}x{args.size})")
    for arch in args.archs:
        tv_model = None
        if args.pretrained:
            try:
                tv_model = torchvision_resnet(arch, pretrained=True)
            except PretrainedWeightsUnavailable as err:
                raise SystemExit(f"error: {err}") from None
        r = port_roundtrip(arch, args.size, seed=args.seed, tv_model=tv_model)
        line = (f"  {arch:9s} {int(r['params']):>11,d} params  max|diff| eval {r['eval_diff']:.1e}"
                f"  train {r['train_diff']:.1e}  back {r['back_eval_diff']:.1e}")
        if "v1_vs_v15_diff" in r:
            line += f"  (stride on the 1x1 instead: {r['v1_vs_v15_diff']:.2f})"
        print(line)
        results.update({f"{arch}_{k}": v for k, v in r.items()})

    print("\n2. GeM pooling head (Radenovic et al. 2018)")
    r = gem_checks(args.size, args.seed)
    print(f"  p = 1 vs average pooling: max|diff| {r['p1_vs_avg']:.1e}; p = 200 vs max pooling: "
          f"largest relative gap {r['p_large_vs_max']:.3f}; dL/dp = {r['gem_grad_p']:.3e}")
    results.update({f"gem_{k}": v for k, v in r.items()})

    print("\n3. intermediate features (create_feature_extractor, hooks) vs our stages")
    r = feature_checks(args.archs[0], args.size, args.seed)
    print("  " + "  ".join(f"{s}: fx {r['fx_' + s]:.1e} hooks {r['hooks_' + s]:.1e}"
                            for s in STAGES))
    results.update({f"features_{k}": v for k, v in r.items()})

    print("\n4. a new 10-class head on a frozen ResNet-18 trunk (digits, 32x32)")
    # missing, damaged or malformed data: one message, exit status 1
    with data_errors(hint="digits ship with scikit-learn and need no download"):
        x, y = digits_images(args.train_images, args.seed)
    model = resnet_paper.resnet18().to(device)
    r = train_new_head(model, x.to(device), y.to(device), 10, args.steps, args.lr,
                       args.batch_size, args.seed)
    print(f"  {int(r['trainable'])} trainable parameters; loss {r['first_loss']:.3f} -> "
          f"{r['last_loss']:.3f} in {args.steps} steps; trunk entries changed: "
          f"{int(r['trunk_changed'])}; head max|change| {r['head_change']:.3f}")
    results.update({f"head_{k}": v for k, v in r.items()})
    results["seconds"] = time.perf_counter() - start
    print(f"\ndone in {results['seconds']:.1f} s")
    return results


if __name__ == "__main__":
    main()
