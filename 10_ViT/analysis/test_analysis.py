"""Tests of lesson 10's Level 4: what the reading of timm's and transformers' ViT claims.

Each test compares numbers on the libraries' own classes built from tiny random configs (no
download): the guide's line numbers against the installed sources, the pooling rules and
our three poolings against hand computations on ``forward_features``' tokens, the timm <->
transformers port in float64, what ``checkpoint_filter_fn`` converts, hooked attention maps
against softmax(Q K^T / sqrt(d)) from the weights, a linear probe that trains only its head
and beats the majority baseline, and a new resolution whose position embeddings are
``resample_abs_pos_embed``'s. ``--checkpoint`` is tested on a folder the test writes with
``timm.models.save_for_hf``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import transformers
from matplotlib.figure import Figure
from timm.layers import resample_abs_pos_embed
from timm.models import save_for_hf

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

ta = import_lesson("10_ViT.analysis.timm_analysis")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INSTALLED = {"timm": timm.__version__, "transformers": transformers.__version__}


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The guide's line numbers
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(INSTALLED != ta.GUIDE_VERSIONS,
                    reason=f"the guide quotes the line numbers of {ta.GUIDE_VERSIONS}; installed "
                           f"is {INSTALLED}. Install the pinned versions (requirements.txt) to "
                           "check them, or read the guide by name")
def test_every_quoted_line_holds_what_the_guide_says():
    locations = ta.guide_locations()
    files = {loc.path for loc in locations}
    assert len(locations) >= 150, len(locations)  # the guide quotes code, and is parsed
    assert {"vision_transformer.py", "layers/patch_embed.py", "layers/attention.py",
            "layers/pos_embed.py", "modeling_vit.py"} <= files, files
    assert ta.check_guide_line_numbers() == []


def test_the_line_check_reads_both_libraries(tmp_path):
    """Version-independent: a wrong line in either library is reported, right lines are not,
    and a missing file is looked for in both. The check's rules are tested in
    utils/tests/test_guides.py."""
    timm_lines = ta.resolve_source("vision_transformer.py").read_text().splitlines()
    hf_lines = ta.resolve_source("modeling_vit.py").read_text().splitlines()
    good_timm = next(i for i, line in enumerate(timm_lines, 1)
                     if line.startswith("class VisionTransformer"))
    good_hf = next(i for i, line in enumerate(hf_lines, 1) if line.startswith("class ViTLayer"))
    guide = tmp_path / "guide.md"
    guide.write_text("\n\n".join([
        f"| `VisionTransformer` `vision_transformer.py:{good_timm}` | `ViTLayer` "
        f"`modeling_vit.py:{good_hf}` |",  # right: no problem
        f"`ViTLayer` `modeling_vit.py:{good_hf + 1}`",  # line 3: wrong line
        f"`VisionTransformer` `vision_transformer.py:{good_timm - 1}`",  # line 5: wrong line
        "`nothing` `no_such_file.py:3`"]))
    problems = [p for p in ta.check_guide_line_numbers([guide]) if p.startswith("guide.md")]
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"guide.md:3: `modeling_vit.py:{good_hf + 1}`: should hold "
                                  "`ViTLayer`")
    assert problems[1].startswith(f"guide.md:5: `vision_transformer.py:{good_timm - 1}`: "
                                  "should hold `VisionTransformer`")
    assert problems[2] == "guide.md:7: `no_such_file.py:3`: no file no_such_file.py in timm " \
        "or transformers"


def test_guide_file_names_resolve_to_the_right_library():
    roots = ta.library_roots()
    assert ta.resolve_source("vision_transformer.py") == roots["timm"] / "models" / \
        "vision_transformer.py"
    assert ta.resolve_source("layers/attention.py") == roots["timm"] / "layers" / "attention.py"
    assert ta.resolve_source("modeling_vit.py") == roots["transformers"] / "models" / "vit" / \
        "modeling_vit.py"
    assert ta.resolve_source("conversion_mapping.py") == roots["transformers"] / \
        "conversion_mapping.py"
    assert ta.resolve_source("no_such_file.py") is None


# --------------------------------------------------------------------------------------
# 0. The reading's claims
# --------------------------------------------------------------------------------------


def test_norm_goes_before_token_pooling_and_after_average_pooling():
    r = ta.pooling_rules()
    assert (r["token_norm"], r["token_fc_norm"]) == ("LayerNorm", "Identity")
    assert (r["avg_norm"], r["avg_fc_norm"]) == ("Identity", "LayerNorm")
    assert r["token_diff"] < 1e-12 and r["avg_diff"] < 1e-12


def test_timm_and_transformers_compute_the_same_vit_after_the_port():
    r = ta.port_checks()
    assert r["to_hf"] < 1e-12 and r["back"] < 1e-12, r
    assert r["hf_default_eps"] > 1e-6  # transformers' own eps (1e-12) is another function
    assert r["params_timm"] == r["params_hf"]


def test_fused_qkv_rows_are_query_key_value_in_that_order():
    torch.manual_seed(0)
    model = ta.tiny_vit().double()
    hf = ta.timm_to_hf(model)
    qkv = model.blocks[1].attn.qkv.weight  # (3D, D)
    attention = hf.vit.layers[1].attention
    d_model = model.embed_dim
    assert torch.equal(attention.q_proj.weight, qkv[:d_model])
    assert torch.equal(attention.k_proj.weight, qkv[d_model:2 * d_model])
    assert torch.equal(attention.v_proj.weight, qkv[2 * d_model:])
    assert hf.config.layer_norm_eps == 1e-6 and hf.dtype == torch.float64


@pytest.mark.parametrize("overrides, words", [
    (dict(global_pool="avg"), "global_pool='avg'"),
    (dict(reg_tokens=2), "register tokens"),
    (dict(init_values=1e-5), "layer scale"),
    (dict(qk_norm=True), "qk_norm"),
])
def test_port_refuses_what_transformers_vit_cannot_express(overrides, words):
    with pytest.raises(ValueError, match=words):
        ta.timm_to_hf(ta.tiny_vit(**overrides))


def test_checkpoint_filter_fn_reshapes_resamples_and_drops():
    r = ta.filter_checks()
    assert r["loads_strict"] and r["patch_equal"]
    assert r["pos_shape"] == ((1, 37, 32), (1, 17, 32))  # 6 x 6 + [CLS] -> 4 x 4 + [CLS]
    assert r["pos_diff"] == 0.0
    assert r["dropped"] == ["pre_logits.fc.weight"]


def test_initialisation_schemes_differ_as_the_guide_says():
    r = ta.init_statistics()
    assert r["timm"]["cls_token"] < 1e-5 and r["jax"]["cls_token"] < 1e-5
    assert abs(r["transformers"]["cls_token"] - 0.02) < 0.005
    assert abs(r["timm"]["qkv"] - 0.02) < 0.002 and abs(r["transformers"]["qkv"] - 0.02) < 0.002
    xavier = math.sqrt(2 / (64 + 3 * 64))  # qkv (3D, D) at D = 64
    assert abs(r["jax"]["qkv"] - xavier) < 0.1 * xavier
    assert r["jax"]["head"] == 0.0 and r["timm"]["head"] > 0.01
    assert abs(r["jax"]["patch"] - 1 / math.sqrt(3 * 8 * 8)) < 0.01  # lecun normal
    assert r["timm"]["fc1_bias"] == 0.0 < r["jax"]["fc1_bias"] < 1e-5


def test_pretrained_cfg_and_parameter_count_of_vit_base():
    r = ta.pretrained_cfg_summary()
    assert r["params"] == 86_567_656
    assert r["tag"] == "augreg2_in21k_ft_in1k" and r["input_size"] == (3, 224, 224)
    assert tuple(r["mean"]) == (0.5, 0.5, 0.5) and r["crop_pct"] == 0.9
    assert (r["first_conv"], r["classifier"]) == ("patch_embed.proj", "head")


def test_forward_intermediates_are_the_blocks_outputs_as_maps():
    r = ta.intermediates_check()
    assert r["shapes"] == [(2, 32, 4, 6)] * 2  # (B, D, H/P, W/P) for a 32 x 48 image
    assert r["diff"] == 0.0 and r["final_diff"] == 0.0


# --------------------------------------------------------------------------------------
# 1. Custom pooling
# --------------------------------------------------------------------------------------


def test_each_pooling_equals_its_hand_computation_on_forward_features():
    r = ta.pooling_checks()
    assert r["cls"] == 0.0 and r["mean"] < 1e-12 and r["attention"] < 1e-12, r
    assert r["cls_vs_timm"] == 0.0  # [CLS] swapped in gives timm's own 'token' logits


def test_mean_and_attention_pooling_ignore_the_class_token():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 9, 16, generator=g, dtype=torch.float64)
    other = tokens.clone()
    other[:, 0] = 1e6  # whatever [CLS] holds
    pooling = ta.AttentionPooling(16, n_heads=2).double()
    assert torch.equal(ta.MeanPooling()(tokens), ta.MeanPooling()(other))
    assert torch.equal(pooling(tokens), pooling(other))
    assert_close(pooling.weights.sum(-1), torch.ones(2, 2, dtype=torch.float64), FLOAT64)
    with torch.no_grad():
        pooling.query.zero_()  # equal scores: the pooled vector is out(mean of the values)
    values = tokens[:, 1:] @ pooling.kv.weight[16:].T + pooling.kv.bias[16:]
    assert_close(pooling(tokens), pooling.out(values.mean(1)), FLOAT64, name="uniform weights")


# --------------------------------------------------------------------------------------
# 2. Attention maps through hooks
# --------------------------------------------------------------------------------------


def sharpened_model():
    """A tiny float64 model whose attention is far from uniform (random weights of size 0.02
    attend almost uniformly: scale the query and key rows of qkv)."""
    torch.manual_seed(0)
    model = ta.tiny_vit().double().eval()
    d_model = model.embed_dim
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[:2 * d_model].mul_(30.0)
    return model


def test_hooked_attention_equals_softmax_of_qk_from_the_weights():
    model = sharpened_model()
    images = ta.random_images(2, seed=1, dtype=torch.float64)
    from_qkv = ta.attention_maps_from_qkv(model, images)
    unfused = ta.attention_maps_unfused(model, images)
    assert from_qkv.shape == (2, 2, 4, 17, 17)
    # layer 0 by hand: the block's input, norm1, W_q and W_k rows of qkv, per head
    with torch.no_grad():
        x = model.blocks[0].norm1(model._pos_embed(model.patch_embed(images)))  # (B, T, D)
        attn = model.blocks[0].attn
        weight, bias = attn.qkv.weight, attn.qkv.bias
        split = lambda t: t.view(2, 17, 4, 8).transpose(1, 2)  # (B, T, D) -> (B, A, T, d)
        query = split(x @ weight[:32].T + bias[:32])
        key = split(x @ weight[32:64].T + bias[32:64])
        expected = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(8), dim=-1)
    assert_close(from_qkv[:, 0], expected, FLOAT64, name="hooked qkv vs softmax(QK^T/sqrt(d))")
    assert_close(unfused, from_qkv, FLOAT64, name="fused_attn=False maps vs hooked qkv")
    assert float(from_qkv.amax()) > 0.5 and from_qkv.min() > 0  # real patterns, not uniform
    assert all(block.attn.fused_attn for block in model.blocks)  # switched back on


def test_unfused_path_computes_the_same_logits_and_fused_hides_the_maps():
    assert ta.fused_vs_unfused() < 1e-12
    model = sharpened_model()
    caught = []
    model.blocks[0].attn.attn_drop.register_forward_hook(lambda _m, i, _o: caught.append(i))
    with torch.no_grad():
        model(ta.random_images(1, dtype=torch.float64))
    assert caught == []  # F.scaled_dot_product_attention never calls attn_drop


def test_attention_is_drawn_per_layer_and_head(tmp_path):
    model = sharpened_model()
    images = ta.random_images(1, dtype=torch.float64)
    maps = ta.attention_maps_from_qkv(model, images)[0]  # (L, A, T, T)
    grid = ta.cls_attention_grid(maps, model.patch_embed.grid_size)
    assert grid.shape == (2, 4, 4, 4)
    assert_close(grid[1, 2].flatten(), maps[1, 2, 0, 1:], FLOAT64, name="[CLS] row as a grid")
    fig = ta.plot_attention_over_image(images[0], grid, tmp_path / "heads.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * (4 + 1)
    assert (tmp_path / "heads.png").stat().st_size > 1000
    with pytest.raises(ValueError):
        ta.plot_attention_over_image(images, grid)


# --------------------------------------------------------------------------------------
# 3. A linear probe on a frozen trunk
# --------------------------------------------------------------------------------------


def test_probe_trains_only_the_head_and_beats_the_majority_baseline():
    torch.manual_seed(0)
    trunk = ta.tiny_vit().eval()
    probe = ta.LinearProbe(trunk, 10)
    before = [p.detach().clone() for p in trunk.parameters()]
    data = ta.probe_data("digits", trunk, train_size=500)
    assert data["x_train"].shape == (500, 3, 32, 32) and len(data["y_test"]) == 360
    probe.train()
    assert not probe.trunk.training and probe.head.training  # the trunk stays in eval mode
    loss = F.cross_entropy(probe(data["x_train"][:8]), data["y_train"][:8])
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in trunk.parameters())
    assert probe.head.weight.grad.abs().sum() > 0
    r = ta.train_linear_probe(probe, data, steps=150, lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, trunk.parameters()))
    assert r["accuracy"] >= r["baseline"] + 0.25, r  # baseline 0.1 on the ten digits
    assert r["last_loss"] < 0.8 * r["first_loss"]
    assert_close(probe(data["x_test"][:4]),
                 probe.head(trunk.forward_head(trunk.forward_features(data["x_test"][:4]),
                                               pre_logits=True)), FLOAT32, name="probe logits")


def test_majority_baseline():
    assert ta.majority_baseline(torch.tensor([1, 1, 2]), torch.tensor([1, 2, 2, 1])) == 0.5


# --------------------------------------------------------------------------------------
# 4. A new resolution
# --------------------------------------------------------------------------------------


def test_new_resolution_uses_resample_abs_pos_embed_and_runs():
    torch.manual_seed(0)
    model = ta.tiny_vit().eval()
    original = model.pos_embed.detach().clone()
    r = ta.resolution_report(model, 48)
    assert r["tokens"] == (17, 37) and r["grid"] == ((4, 4), (6, 6))
    assert r["pos_vs_resample"] == 0.0 and r["pos_vs_hand"] < 1e-6 and r["cls_pos_kept"]
    assert r["dynamic_vs_set"] < 1e-5 and r["params_added"] == 20 * 32
    assert r["model_input_size"] == (3, 48, 48) and r["cfg_input_size"] == (3, 224, 224)
    assert r["hf_vs_timm_pos"] > 1e-3  # transformers interpolates without antialiasing
    assert torch.equal(model.pos_embed, original)  # the original model is untouched
    resized = ta.at_resolution(model, (48, 64))  # non-square: 6 x 8 patches
    expected = resample_abs_pos_embed(original, new_size=[6, 8], old_size=[4, 4])
    assert torch.equal(resized.pos_embed.detach(), expected)
    with torch.no_grad():
        logits = resized(ta.random_images(2, (48, 64)))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="multiple of the patch size"):
        ta.at_resolution(model, 36)


def test_transformers_interpolation_is_bicubic_without_antialiasing():
    torch.manual_seed(0)
    model = ta.tiny_vit().eval()
    theirs = ta.hf_interpolated_pos_embed(model, 48)
    grid = model.pos_embed.detach()[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    plain = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)
    expected = torch.cat([model.pos_embed.detach()[:, :1], plain.flatten(2).transpose(1, 2)], 1)
    assert_close(theirs, expected, FLOAT32, name="interpolate_pos_encoding")


# --------------------------------------------------------------------------------------
# The script, offline and on a checkpoint folder
# --------------------------------------------------------------------------------------


def test_script_runs_every_part_offline(tmp_path):
    r = ta.main(["--steps", "200", "--train-size", "300", "--out", str(tmp_path),
                 "--no-progress"])
    assert r["guide_problems"] == [] or INSTALLED != ta.GUIDE_VERSIONS
    assert r["port_to_hf"] < 1e-12 and r["filter_loads_strict"]
    assert r["pooling_cls_vs_timm"] == 0.0 and r["attention_fused_caught"] == 0
    assert r["attention_shape"] == (1, 2, 4, 17, 17) and r["attention_hook_diff"] < 1e-5
    assert r["probe_accuracy"] > r["probe_baseline"] + 0.2 and r["probe_trunk_unchanged"]
    assert r["probe_trainable"] == 32 * 10 + 10
    assert r["resolution_tokens"] == (17, 37) and r["resolution_pos_vs_resample"] == 0.0
    for name in ("attention_heads.png", "probe_loss.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_script_runs_on_a_checkpoint_folder(tmp_path):
    """A folder in timm's layout, as save_for_hf writes it (config.json, weights)."""
    torch.manual_seed(1)
    source = ta.tiny_vit(num_classes=5)
    save_for_hf(source, tmp_path / "vit")
    model = ta.load_checkpoint(tmp_path / "vit")
    assert not model.training and torch.equal(model.pos_embed, source.pos_embed)
    r = ta.main(["--checkpoint", str(tmp_path / "vit"), "--skip-claims", "--steps", "20",
                 "--train-size", "200", "--image-size", "24", "--out", str(tmp_path / "out"),
                 "--no-progress"])
    assert "guide_problems" not in r
    assert r["attention_shape"] == (1, 2, 4, 10, 10)  # 3 x 3 patches at 24 x 24
    assert r["resolution_tokens"] == (10, 17)  # 24 -> 32 (1.5 x 24 = 36, to a multiple of 8)
    assert r["probe_steps"] == 20


def test_checkpoint_errors_are_clear(tmp_path, capsys):
    with pytest.raises(ta.CheckpointError, match="does not exist"):
        ta.check_checkpoint_dir(tmp_path / "missing")
    with pytest.raises(ta.CheckpointError, match="lacks config.json; model.safetensors"):
        ta.check_checkpoint_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ta.CheckpointError, match="transformers config of type 'vit'"):
        ta.check_checkpoint_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    with pytest.raises(ta.CheckpointError, match="builds a ResNet, not one of timm's Vision"):
        ta.check_checkpoint_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "no_such_vit"}))
    with pytest.raises(ta.CheckpointError, match="no architecture 'no_such_vit'"):
        ta.check_checkpoint_dir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        ta.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--image-size", "30"), ("--new-size", "20"),
                                           ("--steps", "0"), ("--dataset", "mnist")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ta.main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_epochs_is_refused_because_the_script_counts_steps(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ta.main(["--epochs", "3", "--out", str(tmp_path)])
    assert "use --steps" in capsys.readouterr().err


def test_probe_reads_the_cifar10_subset_from_data_root(tmp_path, monkeypatch):
    """--dataset cifar10 --data-root DIR, on a small file in the subset's layout (its
    checksum, which a made-up file cannot have, is not checked here)."""
    import utils.data_loaders

    monkeypatch.setattr(utils.data_loaders, "_verify_checksum", lambda *a, **k: None)
    g = torch.Generator().manual_seed(0)
    folder = tmp_path / "cifar10_subset"
    folder.mkdir()
    images = torch.randint(0, 256, (60, 32, 32, 3), generator=g, dtype=torch.uint8).numpy()
    labels = (torch.arange(60) % 10).numpy()
    np.savez(folder / "cifar10_subset.npz", x_train=images[:40], y_train=labels[:40],
             x_test=images[40:], y_test=labels[40:])
    r = ta.main(["--dataset", "cifar10", "--data-root", str(tmp_path), "--skip-claims",
                 "--steps", "5", "--out", str(tmp_path / "out"), "--no-progress"])
    assert r["probe_steps"] == 5 and abs(r["probe_baseline"] - 0.1) < 1e-6  # 2 per class
