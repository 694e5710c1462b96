"""Tests of the L3 script train.py and of benchmarks/bench_vit.py.

- main trains a tiny ViT on the digits (offline) in a few seconds: the loss falls, the test
  accuracy beats the majority class, every picture and a checkpoint folder are written, and
  the folder loads back; --time-budget stops the run and squeezes the schedule;
- a folder of images the test writes (one sub-folder per class) trains and tests; an empty
  class, a file that is not an image, mixed sizes without --image-size, an unknown test
  class and a missing folder each stop the script with one message naming the file;
- the CIFAR-10 code path runs on a tiny subset file the test writes;
- fine-tuning from folders written by timm (save_for_hf) and by transformers
  (save_pretrained): a new zero head, the positions resampled, the loss falls;
- augmentation changes the training batches (crop, flip, CutMix with area-weighted targets)
  and never the images evaluated, which run in eval mode;
- bad options exit 2 naming the option; --help shows every default;
- the benchmark checks equal outputs and gradients before it times, and catches a
  difference.

Run: .venv/bin/python -m pytest 10_ViT/paper/test_scripts.py -q
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import import_lesson
from utils.data_loaders import DatasetFormatError

script = import_lesson("10_ViT.paper.train")
vp, convert = script.vp, script.convert

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one CPU thread

# One layer, D = 16: a few hundred milliseconds of training
TINY = ["--d-model", "32", "--layers", "1", "--heads", "2", "--batch-size", "64", "--lr", "5e-3",
        "--crop-padding", "0", "--no-progress", "--no-plots"]


def _quiet(argv):
    """main(argv) with its printing captured; returns (result, printed text)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = script.main(argv)
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("digits")
    result, printed = _quiet([*TINY, "--plots", "--epochs", "4", "--out", str(out)])
    return result, out, printed


# --------------------------------------------------------------------------------------
# Digits (the offline default)
# --------------------------------------------------------------------------------------


def test_digits_learn_and_every_picture_and_the_checkpoint_are_written(digits_run):
    result, out, printed = digits_run
    assert result["final_loss"] < result["first_loss"] - 0.3, result
    assert result["majority_baseline"] < 0.15
    assert result["test_accuracy"] > result["majority_baseline"] + 0.25, result
    assert result["epochs"] == 4 and result["steps"] == 4 * math.ceil(1437 / 64)
    assert "1437 training / 360 test images of 24x24x1" in printed and "test accuracy" in printed
    for name in ("loss.png", "accuracy.png", "patches.png", "position_similarity.png",
                 "attention_rollout.png"):
        assert (out / name).stat().st_size > 1000, name
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["architecture"].startswith("vit_")  # timm's layout
    back = convert.load_pretrained(result["checkpoint"])
    assert (back.config.image_size, back.config.patch_size, back.config.in_channels,
            back.config.d_model, back.config.num_classes) == (24, 6, 1, 32, 10)


def test_the_time_budget_stops_training_and_squeezes_the_schedule(tmp_path):
    result, printed = _quiet([*TINY, "--time-budget", "1", "--out", str(tmp_path)])
    assert "time budget of 1 s reached" in printed
    assert 1.0 <= result["train_seconds"] < 4.0 and result["epochs"] >= 1, result
    # the rate warms up, peaks and reaches 0 on whichever clock is further on
    lr = script.scheduled_lr
    assert lr(0, 0.0, 1.0, 0.1, 100) == pytest.approx(0.1)
    assert lr(9, 0.0, 1.0, 0.1, 100) == pytest.approx(1.0)
    assert lr(100, 0.0, 1.0, 0.1, 100) == pytest.approx(0.0)
    assert lr(1, 10.0, 1.0, 0.1, 100, time_budget=10.0) == pytest.approx(0.0, abs=1e-12)
    assert lr(1, 5.5, 1.0, 0.1, 100, time_budget=10.0) == pytest.approx(0.5)  # halfway


# --------------------------------------------------------------------------------------
# A user's folder of images
# --------------------------------------------------------------------------------------

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def _write_folder(root: Path, per_class: int = 8, size: int = 16, classes=COLOURS,
                  seed: int = 0) -> Path:
    """PNG files root/<colour>/<i>.png: noisy squares of the class's colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(COLOURS[name]) + rng.normal(0, 30, (size, size, 3)),
                             0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_folder_of_images_trains_and_tests(tmp_path):
    train_dir = _write_folder(tmp_path / "train")
    test_dir = _write_folder(tmp_path / "test", per_class=3, seed=1)
    (train_dir / "README.txt").write_text("files beside the class folders are ignored")
    (train_dir / "red" / ".DS_Store").write_bytes(b"\0hidden files are skipped")
    result, printed = _quiet(["--train-dir", str(train_dir), "--test-dir", str(test_dir),
                              *TINY, "--epochs", "15", "--batch-size", "8", "--lr", "3e-3",
                              "--pool", "mean", "--out", str(tmp_path / "run")])
    assert "24 training / 9 test images of 16x16x3, 3 classes" in printed
    assert "64 patches of (2, 2)" in printed  # the default patch: side / 8
    assert result["final_loss"] < result["first_loss"], result
    assert result["test_accuracy"] == 1.0, result  # the colours are easy
    assert convert.load_pretrained(result["checkpoint"]).config.pool == "mean"


def test_without_a_test_folder_a_share_of_each_class_is_held_out(tmp_path):
    train_dir = _write_folder(tmp_path / "train", per_class=10)
    split = script.load_image_folders(train_dir, None, None, test_fraction=0.2, seed=0)
    assert split.classes == ["blue", "green", "red"]
    assert np.bincount(split.y_test).tolist() == [2, 2, 2]
    assert np.bincount(split.y_train).tolist() == [8, 8, 8]
    assert split.X_train.shape == (24, 3, 16, 16) and split.X_train.max() <= 1.0
    # a test folder with fewer classes: labels index the TRAINING classes
    test_dir = _write_folder(tmp_path / "test", per_class=2, classes=["green", "red"])
    split = script.load_image_folders(train_dir, test_dir, None, 0.2)
    assert split.y_test.tolist() == [1, 1, 2, 2]
    assert split.X_test[0, 1].mean() > split.X_test[0, 0].mean()  # green: more G than R


def _empty_class(root: Path) -> str:
    (root / "yellow").mkdir()
    return f"{root / 'yellow'}: class 'yellow' has no images"


def _not_an_image(root: Path) -> str:
    (root / "red" / "notes.txt").write_text("not a picture")
    return f"{root / 'red' / 'notes.txt'}: not an image PIL can read"


def _mixed_sizes(root: Path) -> str:
    from PIL import Image

    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(root / "red" / "tall.png")
    return f"{root / 'red' / 'tall.png'} is 16x20 pixels but"


def _one_class(root: Path) -> str:
    for name in ("green", "red"):
        for path in (root / name).iterdir():
            path.unlink()
        (root / name).rmdir()
    return "1 class sub-folder(s)"


@pytest.mark.parametrize("spoil", [_empty_class, _not_an_image, _mixed_sizes, _one_class])
def test_a_bad_folder_stops_the_script_with_one_message(spoil, tmp_path):
    train_dir = _write_folder(tmp_path / "train", per_class=2)
    expected = spoil(train_dir)
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--train-dir", str(train_dir), *TINY, "--out", str(tmp_path / "out")])
    message = exit_info.value.code  # a string: Python prints it and exits with status 1
    assert isinstance(message, str) and message.startswith("error: ") and expected in message


def test_mixed_sizes_are_resized_with_image_size_and_bad_folders_are_named(tmp_path):
    train_dir = _write_folder(tmp_path / "train", per_class=2)
    _mixed_sizes(train_dir)
    images, labels, classes = script.read_image_folder(train_dir, image_size=8)
    assert images.shape == (7, 8, 8, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 2]
    other = _write_folder(tmp_path / "test", per_class=1, classes=["red"])
    (other / "red").rename(other / "purple")
    with pytest.raises(DatasetFormatError, match="'purple' is not among the training"):
        script.read_image_folder(other, 8, classes)
    with pytest.raises(SystemExit, match="no such folder"):
        script.main(["--train-dir", str(tmp_path / "nowhere"), *TINY, "--out", str(tmp_path)])


# --------------------------------------------------------------------------------------
# CIFAR-10 (a tiny subset file written here)
# --------------------------------------------------------------------------------------


def test_the_cifar10_path_on_a_tiny_subset_file(tmp_path, monkeypatch):
    data_loaders = import_lesson("utils.data_loaders")
    monkeypatch.setattr(data_loaders, "KNOWN_CHECKSUMS", {})  # our bytes, the official name
    rng = np.random.default_rng(0)
    (tmp_path / "cifar10_subset").mkdir()
    np.savez(tmp_path / "cifar10_subset" / "cifar10_subset.npz",
             x_train=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(40) % 10, x_test=rng.integers(0, 256, (20, 32, 32, 3),
                                                             dtype=np.uint8),
             y_test=np.arange(20) % 10)
    result, printed = _quiet(["--dataset", "cifar10", "--data-root", str(tmp_path), *TINY,
                              "--epochs", "2", "--batch-size", "16", "--out",
                              str(tmp_path / "run")])
    assert "not comparable" in printed.lower()
    assert "cifar10_subset: 40 training / 20 test images of 32x32x3" in printed
    assert "64 patches of (4, 4)" in printed and result["steps"] == 6
    with pytest.raises(SystemExit, match="CIFAR-10"):  # missing: one clear message
        script.main(["--dataset", "cifar10", "--data-root", str(tmp_path / "run"), *TINY,
                     "--out", str(tmp_path / "out")])


# --------------------------------------------------------------------------------------
# Fine-tuning from checkpoint folders written by timm and by transformers
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory) -> Path:
    """What a user has after one download: timm's save_for_hf of a (tiny, random) ViT."""
    timm = pytest.importorskip("timm")
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=12,
                              patch_size=6, num_classes=7, embed_dim=32, depth=1, num_heads=2)
    directory = tmp_path_factory.mktemp("timm") / "vit_tiny"
    save_for_hf(model, directory, safe_serialization=True)
    return directory


def test_fine_tuning_a_timm_folder_makes_a_zero_head_and_resamples(timm_folder):
    model = convert.load_pretrained(timm_folder)
    old_positions = model.position_embedding.detach().clone()
    script._fine_tuning(model, 10, (24, 24), fail=pytest.fail)
    assert model.head.weight.shape == (10, 32) and not model.head.weight.any()
    assert model.config.num_classes == 10 and model.config.grid_size == (4, 4)
    expected = vp.resample_position_embeddings(old_positions, (4, 4), (2, 2))
    assert torch.equal(model.position_embedding.detach(), expected)
    assert script.checkpoint_mean_std(timm_folder) == ([0.5] * 3, [0.5] * 3)


def test_fine_tuning_from_timm_on_digits(timm_folder, tmp_path):
    result, printed = _quiet(["--checkpoint", str(timm_folder), "--image-size", "24",
                              "--epochs", "4", "--lr", "5e-3", "--batch-size", "64",
                              "--crop-padding", "0", "--no-progress", "--no-plots",
                              "--out", str(tmp_path)])
    assert f"fine-tuned from {timm_folder}" in printed and "24x24x3" in printed
    assert "16 patches of (6, 6)" in printed  # the checkpoint's 2x2 grid -> 4x4
    assert result["final_loss"] < result["first_loss"] - 0.1, result
    assert result["test_accuracy"] > result["majority_baseline"] + 0.1, result


def test_fine_tuning_from_transformers_save_pretrained(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, image_size=24, patch_size=6,
                                    num_labels=3)
    torch.manual_seed(0)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "hf")
    result, printed = _quiet(["--checkpoint", str(tmp_path / "hf"), "--epochs", "2",
                              "--lr", "3e-3", "--no-progress", "--out", str(tmp_path / "run")])
    assert "24x24x3" in printed and f"fine-tuned from {tmp_path / 'hf'}" in printed
    assert result["final_loss"] < result["first_loss"], result
    written = json.loads((Path(result["checkpoint"]) / "config.json").read_text())
    assert written["model_type"] == "vit"  # eps 1e-12: written back in transformers' layout
    assert convert.load_pretrained(result["checkpoint"]).config.num_classes == 10


# --------------------------------------------------------------------------------------
# Augmentation: training batches only; evaluation in eval mode on the images as they are
# --------------------------------------------------------------------------------------


class Spy(torch.nn.Module):
    """A model that records what it is given, and whether it was in training mode."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, images):
        self.seen.append((self.training, images.detach().clone()))
        return self.model(images)


def _digits(n: int = 96) -> tuple[torch.Tensor, torch.Tensor, vp.ViT]:
    split = script.load_images("digits", size=16, channels=1)
    model = vp.ViT(vp.ViTConfig(image_size=16, patch_size=4, in_channels=1, num_classes=10,
                                d_model=16, n_layers=1, n_heads=2, dropout=0.5))
    return torch.from_numpy(split.X_train[:n]), torch.from_numpy(split.y_train[:n]), model


def _matches(seen: list, images: torch.Tensor) -> float:
    """The share of the images seen that equal one of ``images`` exactly."""
    batch = torch.cat([x for _, x in seen]).flatten(1)
    return float((torch.cdist(batch, images.flatten(1)) == 0).any(dim=1).double().mean())


def test_augmentation_changes_training_batches_only(tmp_path):
    images, labels, model = _digits()
    spy = Spy(model)
    options = {"num_classes": 10, "epochs": 1, "batch_size": 32, "lr": 1e-3}
    script.train(spy, images, labels, crop_padding=2, flip=True, cutmix_prob=0.5, **options)
    assert all(training for training, _ in spy.seen) and len(spy.seen) == 3
    assert _matches(spy.seen, images) < 0.3  # crops, flips and CutMix changed most images
    spy.seen.clear()
    script.train(spy, images, labels, **options)  # no augmentation: the images as they are
    assert _matches(spy.seen, images) == 1.0
    assert not torch.equal(torch.cat([x for _, x in spy.seen]), images)  # but shuffled
    spy.seen.clear()
    test_images, test_labels = images[:40], labels[:40]
    spy.train()
    loss, accuracy = script.evaluate(spy, test_images, test_labels, batch_size=16)
    assert [training for training, _ in spy.seen] == [False] * 3  # eval mode: no dropout
    assert torch.equal(torch.cat([x for _, x in spy.seen]), test_images)  # un-augmented
    assert spy.training  # the mode is restored
    with torch.no_grad():
        logits = model.eval()(test_images)
    assert accuracy == float((logits.argmax(-1) == test_labels).double().mean())
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, test_labels)))


def test_cutmix_targets_weigh_each_label_by_the_area_it_keeps():
    images = torch.arange(8.0)[:, None, None, None].expand(8, 3, 12, 10).clone()  # image i: i
    labels = torch.arange(8)
    mixed_images = 0
    for seed in range(20):
        mixed, targets = script.cutmix(images, labels, 8, torch.Generator().manual_seed(seed))
        assert targets.shape == (8, 8) and torch.allclose(targets.sum(1), torch.ones(8))
        for i in range(8):
            values = mixed[i].unique()
            if len(values) == 1:  # no box, or paired with itself: the image and label stay
                assert values.item() == i and targets[i, i] == pytest.approx(1.0)
                continue
            mixed_images += 1
            partner = int(values[values != i].item())
            kept = float((mixed[i] == i).double().mean())  # the share of pixels kept
            assert targets[i, i] == pytest.approx(kept, abs=1e-6)
            assert targets[i, partner] == pytest.approx(1 - kept, abs=1e-6)
    assert mixed_images > 50


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, option", [
    (["--epochs", "0"], "--epochs"),
    (["--cutmix", "1.5"], "--cutmix"),
    (["--crop-padding", "-1"], "--crop-padding"),
    (["--test-dir", "somewhere"], "--test-dir"),
    (["--dataset", "folder"], "--train-dir"),
    (["--pool", "max"], "--pool"),
    (["--image-size", "20"], "--image-size"),
    (["--patch-size", "5"], "--patch-size"),
    (["--d-model", "30", "--heads", "4"], "--heads"),
    (["--size", "tiny", "--d-model", "32"], "--size"),
    (["--checkpoint", "nowhere"], "--checkpoint"),
    (["--checkpoint", ".", "--layers", "2"], "--layers"),
    (["--checkpoint", "10_ViT"], "--checkpoint"),  # a folder without config.json
])
def test_bad_options_exit_2_naming_the_option(argv, option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        script.main([*argv, "--no-progress", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        script.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: None" not in text and "default: none" not in text
    assert "per dataset:" in text and "--time-budget" in text


# --------------------------------------------------------------------------------------
# benchmarks/bench_vit.py
# --------------------------------------------------------------------------------------


def test_vit_benchmark_checks_equal_then_times():
    bench = import_lesson("benchmarks.bench_vit")
    results = bench.main(["--small", "--batch", "2", "--repeats", "2", "--warmup", "0"])
    assert results["ratio"] > 0 and results["max_abs_difference"] < 1e-4
    assert results["verdict"] in ("met", "NOT met") or results["verdict"].startswith("undecided")
    config, ours, theirs = bench.make_models(bench.SMALL)
    images, labels = bench.make_batch(config, 2)
    hook = ours.layers[0].ffn.up.weight.register_hook(lambda grad: 1.01 * grad)
    with pytest.raises(AssertionError, match="dL/dlayers.0.ffn.up.weight"):  # one gradient
        bench.check_equal(config, ours, theirs, images, labels)
    hook.remove()
    with torch.no_grad():
        ours.layers[0].ffn.up.weight[0, 0] += 0.5  # one weight differs: the logits differ
    with pytest.raises(AssertionError, match="logits"):
        bench.check_equal(config, ours, theirs, images, labels)
