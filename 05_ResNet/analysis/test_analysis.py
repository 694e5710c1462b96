"""Tests of lesson 05's Level 4: what the code reading claims about torchvision and timm.

Each test compares numbers: the outputs of a production model and of our Level 3 model
after porting weights (both ways, eval and train mode), GeM pooling against average and
max pooling and against its formula, extracted features against our stage outputs, the
state of a frozen trunk before and after training a new head, parameter counts worked
out by hand. Everything runs offline on random weights; ``--pretrained`` is tested by
making the download fail.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

tva = import_lesson("05_ResNet.analysis.torchvision_analysis")
ta = import_lesson("05_ResNet.analysis.timm_analysis")
resnet_paper = import_lesson("05_ResNet.paper.resnet_paper")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# float32 through 18-50 layers with random BN statistics: outputs of size ~1-10
PORT_TOL = 1e-5


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# torchvision: porting both ways
# --------------------------------------------------------------------------------------


def test_torchvision_resnet18_port_both_ways_gives_equal_outputs():
    r = tva.port_roundtrip("resnet18", size=32, batch=2)
    assert r["eval_diff"] <= PORT_TOL, r
    assert r["train_diff"] <= PORT_TOL, r
    assert r["back_eval_diff"] <= PORT_TOL, r
    assert r["params"] == 11_689_512


def test_torchvision_bottleneck_port_both_ways_gives_equal_outputs():
    """A bottleneck ResNet with one block per stage (ResNet-50's blocks, a quarter of its
    cost): the stride on the 3x3 ports exactly; on the 1x1 the same weights differ."""
    torch.manual_seed(0)
    model = tva.randomise_batchnorm(tv.ResNet(tv.Bottleneck, [1, 1, 1, 1], num_classes=10))
    r = tva.port_roundtrip("resnet50", size=32, batch=2, tv_model=model)
    assert max(r["eval_diff"], r["train_diff"], r["back_eval_diff"]) <= PORT_TOL, r
    assert r["v1_vs_v15_diff"] > 1e-2, r


def test_randomise_batchnorm_makes_a_swapped_bn_visible():
    """The check above would miss swapped BN layers with default statistics; not with these."""
    torch.manual_seed(0)
    model = tva.randomise_batchnorm(tv.resnet18(num_classes=10), seed=1).eval()
    swapped = tva.convert.from_torchvision(model).eval()
    with torch.no_grad():
        swapped.layer1[0].bn1.load_state_dict(model.layer1[1].bn1.state_dict())
        x = torch.randn(1, 3, 32, 32)
        assert tva.max_abs_diff(swapped(x), model(x)) > 1e-3


# --------------------------------------------------------------------------------------
# GeM pooling
# --------------------------------------------------------------------------------------


def positive_features(seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 5, 4, 6, generator=g, dtype=dtype) + 0.1  # (N, C, H, W), > eps


def test_gem_with_p_1_is_average_pooling():
    x = positive_features()
    assert_close(tva.GeM(1.0)(x), F.adaptive_avg_pool2d(x, 1), FLOAT32, name="GeM p=1")


def test_gem_approaches_max_pooling_as_p_grows():
    """max (1/HW)^(1/p) <= GeM_p <= max, and the gap shrinks as p grows."""
    x = positive_features(1, torch.float64)
    mx = F.adaptive_max_pool2d(x, 1)
    hw = x.shape[2] * x.shape[3]
    gaps = []
    for p in (2.0, 10.0, 100.0, 1000.0):
        y = tva.GeM(p).double()(x).detach()
        assert torch.all(y <= mx * (1 + 1e-12)) and torch.all(y >= mx * hw ** (-1 / p) - 1e-12)
        gaps.append(float((mx - y).max()))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-2 * float(mx.max())


def test_gem_equals_its_formula_and_has_a_gradient_in_p():
    """Against the direct (mean x^p)^(1/p) in float64; dL/dp by torch.autograd.gradcheck."""
    x = positive_features(2, torch.float64)
    gem = tva.GeM(3.0).double()
    direct = x.pow(3.0).mean(dim=(2, 3), keepdim=True).pow(1 / 3.0)
    assert_close(gem(x), direct, FLOAT64, name="GeM p=3")
    p = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    # functional_call runs gem with p (and x) as inputs, so gradcheck can vary them
    assert torch.autograd.gradcheck(
        lambda p_value, inputs: torch.func.functional_call(gem, {"p": p_value}, (inputs,)),
        (p, x.clone().requires_grad_(True)))


def test_gem_large_p_does_not_overflow_in_float32():
    x = positive_features(3) * 50  # 50^200 overflows float32; the scaled form does not
    y = tva.GeM(200.0)(x)
    assert torch.isfinite(y).all()
    # The mean of x^p lies between max^p / n and max^p, so the p-th root lies between
    # max * n^(-1/p) and max (n = H*W = 24 here: within 1.6 % of the max at p = 200).
    peak = F.adaptive_max_pool2d(x, 1)
    lower = peak * (x.shape[2] * x.shape[3]) ** (-1 / 200)
    slack = 1e-5  # float32 rounding of the root
    assert bool((y <= peak * (1 + slack)).all() and (y >= lower * (1 - slack)).all())
    assert not torch.allclose(y, peak, rtol=1e-4, atol=0.0)  # it is a soft maximum


def test_gem_head_replaces_avgpool_and_p_learns():
    r = tva.gem_checks(size=64)  # 2 x 2 maps after layer4: GeM, avg and max differ
    assert r["p1_vs_avg"] < 1e-5 and r["p_large_vs_max"] < 0.05 and r["gem_grad_p"] != 0.0
    model = tva.with_gem_head(resnet_paper.resnet18(num_classes=3))
    assert isinstance(model.avgpool, tva.GeM) and model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_gem_rejects_bad_input():
    with pytest.raises(ValueError):
        tva.GeM(0.0)
    with pytest.raises(ValueError):
        tva.GeM(3.0)(torch.ones(2, 5))
    with pytest.raises(TypeError):
        tva.with_gem_head(nn.Linear(2, 2))


# --------------------------------------------------------------------------------------
# Intermediate features
# --------------------------------------------------------------------------------------


def test_feature_extractor_and_hooks_equal_our_stage_outputs():
    r = tva.feature_checks("resnet18", size=64)
    assert len(r) == 8
    assert max(r.values()) <= PORT_TOL, r


def test_stage_outputs_have_the_documented_shapes():
    # ResNet-50's blocks and widths, one block per stage
    model = resnet_paper.ResNet(resnet_paper.Bottleneck, [1, 1, 1, 1], stride_on="3x3").eval()
    with torch.no_grad():
        out = tva.stage_outputs(model, torch.randn(1, 3, 64, 64))
        assert_close(model.forward_features(torch.zeros(1, 3, 64, 64)),
                     tva.stage_outputs(model, torch.zeros(1, 3, 64, 64))["layer4"], FLOAT32)
    assert [tuple(v.shape) for v in out.values()] == [
        (1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]


# --------------------------------------------------------------------------------------
# A new head on a frozen trunk
# --------------------------------------------------------------------------------------


def test_frozen_trunk_is_bitwise_unchanged_and_the_head_learns():
    torch.manual_seed(0)
    model = resnet_paper.resnet18()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 4, (16,))
    r = tva.train_new_head(model, x, y, num_classes=4, steps=4, lr=0.5, batch_size=8)
    assert r["trunk_changed"] == 0.0
    assert r["head_change"] > 1e-3
    assert r["trainable"] == 512 * 4 + 4
    assert model.fc.out_features == 4


def test_requires_grad_false_alone_does_not_freeze_batchnorm():
    """Why head_only_train_mode exists: in train mode the trunk's BN statistics move."""
    torch.manual_seed(0)
    model = tva.freeze_trunk(resnet_paper.resnet18(), 4)
    before = model.bn1.running_mean.clone()
    model.train()(torch.randn(4, 3, 32, 32))
    assert not torch.equal(before, model.bn1.running_mean)
    tva.head_only_train_mode(model)(torch.randn(4, 3, 32, 32))
    assert model.fc.training and not model.bn1.training


def test_digits_images_are_32x32_three_channel_digits():
    x, y = tva.digits_images(10)
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 2]) and float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    field = x[:, :, 4:28, 4:28]  # lesson 03's field: 3x3 blocks, 4 pixels of background
    assert torch.equal(field[:, :, ::3, ::3], field[:, :, 2::3, 2::3])
    assert not x[:, :, :4].any() and not x[:, :, :, 28:].any()
    assert set(y.tolist()) <= set(range(10))


def test_head_training_rejects_bad_input():
    with pytest.raises(ValueError):
        tva.train_new_head(resnet_paper.resnet18(), torch.zeros(4, 3, 32, 32),
                           torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError):
        tva.freeze_trunk(resnet_paper.resnet18(), 0)


# --------------------------------------------------------------------------------------
# --pretrained, offline
# --------------------------------------------------------------------------------------


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_pretrained_offline_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(tva.tv, "resnet18", _no_network)
    with pytest.raises(tva.PretrainedWeightsUnavailable, match="checkpoints"):
        tva.torchvision_resnet("resnet18", pretrained=True)


def test_pretrained_offline_main_exits_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tva.tv, "resnet18", _no_network)
    with pytest.raises(SystemExit, match="error: could not load torchvision's pretrained "
                                         "resnet18"):
        tva.main(["--pretrained", "--archs", "resnet18", "--out", str(tmp_path)])


def test_torchvision_script_runs_every_check(tmp_path):
    """main() with tiny sizes: ports are exact, features agree, the head learns, the trunk
    stays bitwise unchanged."""
    r = tva.main(["--archs", "resnet18", "--size", "32", "--steps", "20", "--train-images", "64",
                  "--out", str(tmp_path), "--no-progress", "--device", "cpu"])
    assert max(r["resnet18_eval_diff"], r["resnet18_train_diff"],
               r["resnet18_back_eval_diff"]) <= PORT_TOL
    assert r["gem_p1_vs_avg"] <= PORT_TOL
    assert max(r[f"features_{kind}_{s}"] for kind in ("fx", "hooks")
               for s in tva.STAGES) <= PORT_TOL
    assert r["head_trunk_changed"] == 0 and r["head_head_change"] > 0
    assert r["head_last_loss"] < r["head_first_loss"]  # the new head learns
    assert r["head_trainable"] == 512 * 10 + 10


@pytest.mark.parametrize("script", ["torchvision", "timm"])
@pytest.mark.parametrize("option, value", [("--size", "16"), ("--size", "0"),
                                           ("--threads", "-1")])
def test_bad_options_are_usage_errors_naming_the_option(script, option, value, tmp_path,
                                                         capsys):
    main = {"torchvision": tva.main, "timm": ta.main}[script]
    with pytest.raises(SystemExit) as exit_info:
        main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--steps", "0"), ("--train-images", "-5"),
                                           ("--lr", "0")])
def test_bad_head_options_are_usage_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tva.main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["torchvision", "timm"])
def test_help_shows_every_default(script, capsys):
    main = {"torchvision": tva.main, "timm": ta.main}[script]
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: None" not in text and "(default: 64)" in text  # --size


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="resnet18"):
        tva.torchvision_resnet("resnet19")


# --------------------------------------------------------------------------------------
# timm
# --------------------------------------------------------------------------------------


def test_timm_port_both_ways_gives_equal_outputs():
    r = ta.port_checks("resnet18", size=32)
    assert max(r["eval_diff"], r["train_diff"], r["back_eval_diff"]) <= PORT_TOL, r
    assert r["params"] == 11_689_512


def test_timm_bottleneck_port_both_ways_gives_equal_outputs():
    """timm's Bottleneck (act1..act3, drop_block, aa, se slots) ports like torchvision's."""
    torch.manual_seed(0)
    model = ta.timm_resnet.ResNet(ta.timm_resnet.Bottleneck, (1, 2, 1, 1), num_classes=10)
    r = ta.port_checks(size=32, model=model)
    assert max(r["eval_diff"], r["train_diff"], r["back_eval_diff"]) <= PORT_TOL, r


@pytest.mark.parametrize("name", ["resnet18.a1_in1k", "resnet50.a1_in1k", "resnet50"])
def test_timm_plain_resnets_have_torchvision_layout(name):
    assert ta.same_layout_as_torchvision(name)


def test_timm_resnet50d_differs_by_its_deep_stem_and_cannot_be_ported():
    d = ta.variant_differences("resnet50", "resnet50d")
    # deep stem 3->32->32->64 (3x3 each) + 2 BN(32) replaces the 7x7 conv 3->64; the
    # average pools of the shortcuts have no parameters
    deep = 3 * 32 * 9 + 32 * 32 * 9 + 32 * 64 * 9 + 2 * (2 * 32)
    assert d["params_variant"] - d["params_base"] == deep - 3 * 64 * 49 == 19_232
    assert "conv1.weight" in d["only_in_base"] and "conv1.0.weight" in d["only_in_variant"]
    assert d["downsample"] == "AvgPool2d -> Conv2d -> BatchNorm2d"
    assert "layer2.0.downsample.1.weight" in d["reshaped"]  # a BN in resnet50, a conv here
    with torch.device("meta"):
        model = ta.create("resnet50d")
    with pytest.raises(ValueError, match="deep stem.*average-pool"):
        ta.timm_to_l3(model)


@pytest.mark.parametrize("options, message", [
    ({"act_layer": "silu"}, "SiLU"),
    ({"drop_rate": 0.2}, r"dropout before the classifier \(drop_rate=0.2\)"),
    ({"drop_block_rate": 0.2}, "DropBlock2d"),
    ({"drop_path_rate": 0.1}, "DropPath"),
    ({"norm_layer": "groupnorm"}, "GroupNorm"),
    ({"global_pool": "max"}, "'max' global pooling"),
    ({"output_stride": 16}, "dilated convolutions"),
    ({"in_chans": 1}, "other layer widths.*conv1.weight"),
    ({"channels": (32, 64, 128, 256)}, "state_dict keys differ"),
])
def test_timm_to_l3_refuses_what_it_cannot_reproduce(options, message):
    """Each of these timm ResNet-18s would load into our model (or nearly) and compute
    another function: the port must refuse and say why."""
    torch.manual_seed(0)
    model = ta.create("resnet18", **options)
    with pytest.raises(ValueError, match=message):
        ta.timm_to_l3(model)


def test_timm_to_l3_refuses_squeeze_excitation():
    with torch.device("meta"):
        model = ta.create("seresnet50")
    with pytest.raises(ValueError, match="SEModule"):
        ta.timm_to_l3(model)


def test_timm_script_runs_every_check(tmp_path):
    r = ta.main(["--models", "resnet18", "--size", "32", "--out", str(tmp_path),
                 "--no-progress"])
    assert max(r["resnet18_eval_diff"], r["resnet18_train_diff"],
               r["resnet18_back_eval_diff"]) <= PORT_TOL
    assert r["resnet50.a1_in1k_same_layout"] and r["resnet18.a1_in1k_same_layout"]
    assert "deep stem" in r["resnet50d"]["cannot_port"]
    assert max(r["features_only"][f"diff_{k}"] for k in ("act1", *ta.STAGES)) <= PORT_TOL


def test_timm_features_only_equals_our_stages():
    f = ta.features_only_checks("resnet18", size=64)
    assert f["channels"] == [64, 64, 128, 256, 512]
    assert f["reductions"] == [2, 4, 8, 16, 32]
    assert max(f[f"diff_{k}"] for k in ("act1", "layer1", "layer2", "layer3", "layer4")) \
        <= PORT_TOL


def test_timm_errors_are_clear():
    with pytest.raises(ValueError, match="no model"):
        ta.create("resnet19")
    with pytest.raises(ValueError, match="stride_on='3x3'"):
        ta.l3_to_timm(resnet_paper.resnet50(num_classes=2))
    with pytest.raises(TypeError):
        ta.l3_to_timm(nn.Linear(2, 2))


# --------------------------------------------------------------------------------------
# The benchmark's functions (a smoke test: nothing timed is asserted)
# --------------------------------------------------------------------------------------


def test_bench_vision_functions_run_and_pair_identical_models():
    bench = import_lesson("benchmarks.bench_vision")
    ours, ref = bench.build_pair("resnet18", num_classes=5)
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        assert tva.max_abs_diff(ours.eval()(x), ref.eval()(x)) == 0.0
    ours.train(), ref.train()
    y = torch.tensor([1, 4])
    times = bench.interleaved_times(bench.training_step(ours, x, y),
                                    bench.training_step(ref, x, y), repeats=1, warmup=0)
    assert len(times["ours"]) == len(times["reference"]) == 1
    assert ours.fc.weight.grad is not None and ref.fc.weight.grad is not None
    assert_close(ours.fc.weight.grad, ref.fc.weight.grad, FLOAT32, name="same gradients")
    with pytest.raises(ValueError):
        bench.build_pair("alexnet")


def test_bench_vision_checks_equal_steps_before_timing(monkeypatch, tmp_path):
    bench = import_lesson("benchmarks.bench_vision")
    ours, ref = bench.build_pair("resnet18")  # 1000 classes, as the benchmark's labels
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 999])
    check = bench.check_same_step(ours, ref, x, y)
    assert check["tensors"] == 2 + len(list(ref.parameters())) and check["max_abs_diff"] == 0
    with torch.no_grad():
        ours.layer3[1].bn2.weight[0] += 0.5  # one weight differs: caught
    with pytest.raises(AssertionError):
        bench.check_same_step(ours, ref, x, y)
    # main refuses to time a pair that does not compute the same thing
    monkeypatch.setattr(bench, "build_pair", lambda name: (ours, ref))
    with pytest.raises(SystemExit, match="nothing was timed"):
        bench.main(["--model", "resnet18", "--size", "32", "--batch", "2", "--repeats", "1",
                    "--warmup", "0"])


def test_bench_vision_reports_the_spread_and_the_rounds_a_verdict_needs(tmp_path):
    bench = import_lesson("benchmarks.bench_vision")
    s = bench.ratio_summary([1.00, 1.02, 0.98, 1.10, 0.90])
    assert s["ratio"] == 1.00 and (s["ratio_min"], s["ratio_max"]) == (0.90, 1.10)
    assert_close(s["ratio_iqr"], 0.04, FLOAT64)  # quartiles 0.98 and 1.02
    # sigma = IQR / 1.349; se(median) = 1.2533 sigma / sqrt(n) < 2.5 % of the median
    sigma = 0.04 / 1.349
    assert_close(s["rel_se"], 1.2533 * sigma / 5 ** 0.5, FLOAT64)
    assert s["rounds_needed"] == 3 and s["verdict"] == "met"  # ceil(2.21) rounds
    noisy = bench.ratio_summary([1.0, 1.3, 0.8, 1.1])
    assert noisy["rounds_needed"] > 4 and noisy["verdict"].startswith("undecided: run")
    assert bench.ratio_summary([1.2, 1.2, 1.2])["verdict"] == "NOT met"
    # the whole benchmark, tiny: checked first, then timed and summarised
    out = bench.main(["--model", "resnet18", "--size", "32", "--batch", "2", "--repeats", "2",
                      "--warmup", "0", "--json", str(tmp_path / "bench.json")])
    row = out["rows"][0]
    assert row["check"]["max_abs_diff"] <= 1e-4 and len(row["ratios"]) == 2
    assert {"ratio_iqr", "rounds_needed", "verdict"} <= set(row)
    assert (tmp_path / "bench.json").is_file()
