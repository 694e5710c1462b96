"""Tests of lesson 05, Level 2 (ResNet from tensors and autograd).

- conv2d equals F.conv2d, batch_norm equals nn.BatchNorm2d (train and eval): outputs,
  input and parameter gradients, and the running statistics (float64, 1e-10)
- basic_block and bottleneck equal torchvision's BasicBlock and Bottleneck, with and
  without a projection shortcut, with weights copied from them: outputs, input
  gradients, every parameter gradient, running statistics, train and eval
- sgd_step follows torch.optim.SGD (momentum, weight decay) step for step
- the low-level CifarResNet equals L3's CifarResNet holding the same weights (logits,
  gradients, running statistics); option A equals L3's ShortcutA
- the crop + flip augmentation returns true crops of the padded image; the digits are
  enlarged as documented; the learning-rate schedule drops at 50 % and 75 %
- a small network overfits one batch with the hand-written step; bad input is refused

Run: .venv/bin/python -m pytest 05_ResNet/pytorch_lowlevel -q
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models.resnet import BasicBlock as TvBasicBlock
from torchvision.models.resnet import Bottleneck as TvBottleneck

from utils import import_lesson
from utils.data_loaders import random_crop_flip
from utils.testing import (
    FLOAT64,
    OPTIMIZER_TRAJECTORY,
    assert_close,
    assert_level_purity,
    tolerance,
)

low = import_lesson("05_ResNet.pytorch_lowlevel.resnet_lowlevel")
script = import_lesson("05_ResNet.pytorch_lowlevel.train")
paper = import_lesson("05_ResNet.paper.resnet_paper")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, stride, padding", [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0),
                                                (7, 2, 3)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv2d_equals_F_conv2d(k, stride, padding, dtype, device):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 8, dtype=dtype, device=device, requires_grad=True)
    w = torch.randn(4, 3, k, k, dtype=dtype, device=device, requires_grad=True)
    ours = low.conv2d(x, w, stride=stride, padding=padding)
    theirs = F.conv2d(x, w, stride=stride, padding=padding)
    tol = tolerance(dtype, device)
    assert_close(ours, theirs, tol, name="conv2d output")
    dy = torch.randn_like(theirs)
    gx, gw = torch.autograd.grad(ours, (x, w), dy)
    tx, tw = torch.autograd.grad(theirs, (x, w), dy)
    assert_close(gx, tx, tol, name="dL/dx")
    assert_close(gw, tw, tol, name="dL/dW")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), c_out=st.integers(1, 3),
       h=st.integers(3, 9), w=st.integers(3, 9), k=st.sampled_from([1, 3]),
       stride=st.integers(1, 2), padding=st.integers(0, 1))
def test_conv2d_shapes_and_values_property(n, c, c_out, h, w, k, stride, padding):
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(c_out, c, k, k, dtype=torch.float64)
    ours = low.conv2d(x, weight, stride=stride, padding=padding)
    assert ours.shape == (n, c_out, (h + 2 * padding - k) // stride + 1,
                          (w + 2 * padding - k) // stride + 1)
    assert_close(ours, F.conv2d(x, weight, stride=stride, padding=padding), FLOAT64)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_equals_nn_batchnorm2d(training, device):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(5).double().to(device)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    bn.train(training)
    gamma = bn.weight.detach().clone().requires_grad_()
    beta = bn.bias.detach().clone().requires_grad_()
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    x = (3 * torch.randn(4, 5, 3, 2, dtype=torch.float64, device=device) + 1).requires_grad_()
    for _ in range(2):  # two updates of the running statistics
        ours = low.batch_norm(x, gamma, beta, mean, var, training)
        theirs = bn(x)
        assert_close(ours, theirs, FLOAT64, name="batch norm output")
    assert_close(mean, bn.running_mean, FLOAT64, name="running_mean")
    assert_close(var, bn.running_var, FLOAT64, name="running_var (unbiased)")
    dy = torch.randn_like(theirs)
    ours_g = torch.autograd.grad(ours, (x, gamma, beta), dy)
    theirs_g = torch.autograd.grad(theirs, (x, bn.weight, bn.bias), dy)
    for a, b, what in zip(ours_g, theirs_g, ("x", "gamma", "beta")):
        assert_close(a, b, FLOAT64, name=f"dL/d{what}")


# --------------------------------------------------------------------------------------
# Blocks against torchvision's, with copied weights
# --------------------------------------------------------------------------------------


def _randomise_bn(module: nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)


def _params_from(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state_dict as fresh tensors; the trainable ones require grad."""
    trainable = {name for name, _ in module.named_parameters()}
    return {k: v.detach().clone().requires_grad_(k in trainable)
            for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def _compare_block(reference: nn.Module, run_ours, params, x_shape, training, device):
    reference.train(training)
    x = torch.randn(*x_shape, dtype=torch.float64, device=device)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = run_ours(x_ours, params, training), reference(x_theirs)
    assert_close(ours, theirs, FLOAT64, name="block output")
    dy = torch.randn_like(theirs)
    (ours * dy).sum().backward()
    (theirs * dy).sum().backward()
    assert_close(x_ours.grad, x_theirs.grad, FLOAT64, name="dL/dx")
    for name, p in reference.named_parameters():
        assert_close(params[name].grad, p.grad, FLOAT64, name=f"dL/d{name}")
    for name, b in reference.named_buffers():
        if "running" in name:
            assert_close(params[name], b, FLOAT64, name=name)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("projection", [False, True])
def test_basic_block_equals_torchvision(projection, training, device):
    torch.manual_seed(0)
    if projection:  # 8 -> 16 channels, stride 2, option B shortcut
        down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        block, stride, x_shape = TvBasicBlock(8, 16, 2, down), 2, (2, 8, 7, 7)
    else:
        block, stride, x_shape = TvBasicBlock(8, 8), 1, (2, 8, 6, 6)
    _randomise_bn(block)
    block = block.double().to(device)
    params = _params_from(block)
    _compare_block(block, lambda x, p, t: low.basic_block(x, p, stride, t), params,
                   x_shape, training, device)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("projection", [False, True])
def test_bottleneck_equals_torchvision(projection, training, device):
    torch.manual_seed(1)
    if projection:  # 8 -> 4 * 4 = 16 channels, stride 2 (on the 3x3, as torchvision)
        down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        block, stride, x_shape = TvBottleneck(8, 4, 2, down), 2, (2, 8, 7, 7)
    else:
        block, stride, x_shape = TvBottleneck(16, 4), 1, (2, 16, 5, 5)
    _randomise_bn(block)
    block = block.double().to(device)
    params = _params_from(block)
    _compare_block(block, lambda x, p, t: low.bottleneck(x, p, stride, t, stride_on="3x3"),
                   params, x_shape, training, device)


def test_bottleneck_with_the_papers_stride_equals_L3():
    torch.manual_seed(2)
    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    block = paper.Bottleneck(8, 4, 2, down, stride_on="1x1")
    _randomise_bn(block)
    block = block.double()
    params = _params_from(block)
    _compare_block(block, lambda x, p, t: low.bottleneck(x, p, 2, t, stride_on="1x1"),
                   params, (2, 8, 8, 8), True, "cpu")


def test_shortcut_a_equals_L3():
    x = torch.randn(2, 16, 9, 9, dtype=torch.float64)
    assert torch.equal(low.shortcut_a(x, 32, 2), paper.ShortcutA(16, 32, 2)(x))


# --------------------------------------------------------------------------------------
# The network: L2 == L3 with the same weights
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_cifar_resnet_equals_L3(training):
    torch.manual_seed(0)
    reference = paper.CifarResNet(8, num_classes=5).double()
    _randomise_bn(reference)
    reference.train(training)
    ours = low.CifarResNet(8, num_classes=5, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 4, 2])
    loss_ours = ours.loss(x, y, training=training)
    loss_ref = nn.CrossEntropyLoss()(reference(x), y)
    assert_close(loss_ours, loss_ref, FLOAT64, name="loss")
    loss_ours.backward()
    loss_ref.backward()
    named = dict(reference.named_parameters())
    assert set(named) == {k for k, v in ours.params.items() if v.requires_grad}
    for name, p in named.items():
        assert_close(ours.params[name].grad, p.grad, FLOAT64, name=f"dL/d{name}")
    for name, b in reference.named_buffers():
        if "running" in name:
            assert_close(ours.params[name], b, FLOAT64, name=name)


def test_cifar_resnet_initialisation_matches_the_paper():
    model = low.CifarResNet(20, seed=0)
    assert sum(p.numel() for p in model.parameters()) == 269_722  # Table 6: 0.27M
    w = model.params["layer3.1.conv1.weight"].detach()  # (64, 64, 3, 3)
    assert abs(float(w.std()) / (2.0 / (9 * 64)) ** 0.5 - 1) < 0.02  # He et al. 2015b
    a, b = low.CifarResNet(8, seed=3), low.CifarResNet(8, seed=3)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


# --------------------------------------------------------------------------------------
# Optimiser, schedule, training
# --------------------------------------------------------------------------------------


def test_sgd_step_equals_torch_optim_sgd():
    torch.manual_seed(0)
    theirs = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(3, dtype=torch.float64, requires_grad=True)]
    ours = [p.detach().clone().requires_grad_() for p in theirs]
    opt = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, weight_decay=1e-2)
    state = None
    for step in range(5):
        target = torch.randn(4, 3, dtype=torch.float64)
        for params in (theirs, ours):
            for p in params:
                p.grad = None
            (((params[0] + params[1] - target) ** 2).sum() * (step + 1)).backward()
        opt.step()
        state = low.sgd_step(ours, 0.1, momentum=0.9, weight_decay=1e-2, state=state)
        for a, b in zip(ours, theirs):
            assert_close(a, b, OPTIMIZER_TRAJECTORY, name=f"parameters after step {step + 1}")


def test_step_lr_divides_by_ten_at_half_and_three_quarters():
    lrs = [script.step_lr(0.1, e, 8) for e in range(8)]
    np.testing.assert_allclose(lrs, [0.1] * 4 + [0.01] * 2 + [0.001] * 2, rtol=1e-12)
    assert script.lr_milestones(182) == [91, 136]
    assert script.lr_milestones(1) == [] and script.step_lr(0.1, 0, 1) == 0.1  # no drop at epoch 0
    # torch's MultiStepLR with the same milestones gives the same rates
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, script.lr_milestones(8), gamma=0.1)
    torch_lrs = []
    for _ in range(8):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(torch_lrs, lrs, rtol=1e-12)


def test_training_overfits_one_small_batch():
    torch.manual_seed(0)
    model = low.CifarResNet(8, num_classes=4, seed=0)
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 4
    history = script.train(model, x, y, epochs=30, batch_size=8, lr=0.05, weight_decay=0.0)
    assert history["train_loss"][-1] < 0.1 * history["train_loss"][0]
    assert torch.equal(model.predict(x), y)


def test_training_shuffles_anew_every_epoch_with_the_seeded_generator():
    n = 20
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 8, 8)
    y = torch.zeros(n, dtype=torch.int64)

    def three_epochs(seed: int) -> list[list[int]]:
        model, seen = low.CifarResNet(8, seed=0), []

        def recording_loss(xb, yb, training=True):
            seen.append(xb[:, 0, 0, 0].long().tolist())  # image i is filled with i
            return (model.params["fc.bias"] * 0).sum()

        model.loss = recording_loss
        script.train(model, x, y, epochs=3, batch_size=6, lr=0.1, seed=seed)
        return [sum(seen[e * 4:(e + 1) * 4], []) for e in range(3)]

    epochs = three_epochs(0)
    assert all(sorted(order) == list(range(n)) for order in epochs)  # permutations
    assert epochs[0] != list(range(n))  # shuffled
    assert len({tuple(order) for order in epochs}) == 3  # a new order each epoch
    assert three_epochs(0) == epochs and three_epochs(1) != epochs  # the seed decides


def test_predict_uses_the_running_statistics_and_leaves_them_alone():
    """The same answer twice, the eval-mode answer, and no running statistic moved."""
    torch.manual_seed(0)
    model = low.CifarResNet(8, seed=0)
    x = torch.randn(12, 3, 16, 16)
    with torch.no_grad():
        model.forward(x * 2 + 1, training=True)  # move the running statistics off (0, 1)
    before = {k: v.clone() for k, v in model.params.items()}
    first, second = model.predict(x), model.predict(x)
    for key, value in model.params.items():
        assert torch.equal(value, before[key]), f"predict changed {key}"
    with torch.no_grad():
        logits_eval = model.forward(x, training=False)
        logits_train = model.forward(x, training=True)  # batch statistics: other logits
    assert torch.equal(first, logits_eval.argmax(1)) and torch.equal(second, first)
    assert (logits_train - logits_eval).abs().max() > 1e-2  # the check above can see it


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def test_random_crop_flip_returns_crops_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    padded = torch.zeros(2, 3, 10, 10)
    padded[:, :, 2:8, 2:8] = x
    for n in range(2):
        candidates = [padded[n, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.equal(out[n], c) for c in candidates)
    same = random_crop_flip(x, padding=0, flip=False)
    assert torch.equal(same, x)
    flips = torch.stack([random_crop_flip(x, padding=0)[0] for _ in range(40)])
    n_flipped = sum(torch.equal(f, x[0].flip(-1)) for f in flips)
    assert 5 < n_flipped < 35  # about half of the draws mirror the image


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def test_script_on_digits(tmp_path, monkeypatch):
    """main() on 400 digits, 3 epochs of ResNet-8: the loss falls, accuracy beats chance."""
    real = script.load_images

    def first_images(*args, **kwargs):  # a quick run: the first 400 / 200 images
        split = real(*args, **kwargs)
        return dataclasses.replace(split, X_train=split.X_train[:400], y_train=split.y_train[:400],
                                   X_test=split.X_test[:200], y_test=split.y_test[:200])

    monkeypatch.setattr(script, "load_images", first_images)
    curves = {}
    monkeypatch.setattr(script, "plot_curves", lambda c, path, **kw: curves.update(c))
    metrics = script.main(["--epochs", "3", "--batch-size", "32", "--out", str(tmp_path),
                        "--no-progress", "--device", "cpu"])
    assert len(curves["train loss"]) == 3 and curves["train loss"][-1] < curves["train loss"][0]
    assert metrics["test_accuracy"] >= 0.3  # measured 0.69; chance is 0.1
    assert 0 < metrics["final_loss"] < 2.0  # log(10) = 2.30 at chance
    assert (tmp_path / "confusion.png").is_file()


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-0.1"), ("--depth", "10"),
    ("--depth", "0"), ("--momentum", "2"), ("--weight-decay", "-1"), ("--digits-size", "20"),
    ("--threads", "-3")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main([option, value, "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: None" not in text
    assert "per dataset: digits 8, cifar10 20" in text  # --depth


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="channels"):
        low.conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        low.conv2d(torch.randn(3, 5, 5), torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="float tensor"):
        low.conv2d(torch.zeros(1, 3, 5, 5, dtype=torch.int64), torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="6n"):
        low.CifarResNet(21)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        low.CifarResNet(8)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="stride_on"):
        low.bottleneck(torch.randn(1, 4, 4, 4), {}, stride_on="2x2")
    with pytest.raises(ValueError, match="more than one value"):
        low.batch_norm(torch.randn(1, 2, 1, 1), torch.ones(2), torch.zeros(2),
                       torch.zeros(2), torch.ones(2), training=True)
    with pytest.raises(ValueError, match="downsample"):
        low.basic_block(torch.randn(1, 4, 4, 4), _params_from(TvBasicBlock(4, 8, 2)), 2)
    with pytest.raises(ValueError, match="lr"):
        low.sgd_step([], lr=0.0)
