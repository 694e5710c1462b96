"""Tests of the L3 scripts: train.py, its data (data.py) and its evaluation (zero_shot.py).

- main trains a tiny CLIP on the generated digit pairs in a few seconds: the loss falls,
  every reported number is in range (chance 1/10, retrieval chance 1/N), the pictures and a
  checkpoint folder (weights, tokenizer, preprocessing) are written and load back;
  --time-budget stops the run;
- the held-out design holds: no zero-shot prompt occurs verbatim in any caption a training
  template can produce, nor in the training captions drawn; the held-out colour-digit
  combinations are never drawn nor named in training, and are exactly what the held-out set
  draws; images show what their captions say; the pairs are deterministic by seed;
- zero-shot weights equal a hand computation (normalised mean of normalised text
  embeddings, each prompt embedded alone, in float64); recall@k equals a hand count on a
  known similarity matrix; the linear probe separates separable features; evaluation runs
  in eval mode;
- a folder of PNG images with a CSV (and a TSV) of captions trains and evaluates; a missing
  image, an empty caption, a malformed row, an unreadable image, a missing file or folder
  each stop the script with one message naming the file and line;
- bad options exit 2 naming the option.

Run: .venv/bin/python -m pytest 12_CLIP/paper/test_scripts.py -q
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import import_lesson
from utils.testing import FLOAT64, assert_close

script = import_lesson("12_CLIP.paper.train")
data, zero_shot, clip, convert = script.data, script.zero_shot, script.clip, script.convert
tokenization = script.tokenization

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one CPU thread

# One layer per tower, 32 wide: a few seconds of training
TINY = ["--d-model", "32", "--layers", "1", "--heads", "2", "--embed-dim", "32",
        "--batch-size", "32", "--lr", "3e-3", "--no-progress", "--no-plots"]
DIGITS = ["--limit", "60", "--variants", "3"]  # 180 training pairs, 60 test, 60 held out


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
    result, printed = _quiet([*TINY, *DIGITS, "--plots", "--epochs", "8", "--out", str(out)])
    return result, out, printed


@pytest.fixture(scope="module")
def pairs() -> data.PairData:
    return data.digit_pairs(variants=2, seed=0)


# --------------------------------------------------------------------------------------
# The script on the generated pairs
# --------------------------------------------------------------------------------------


def test_digit_pairs_train_and_every_number_picture_and_file_is_written(digits_run):
    result, out, printed = digits_run
    assert result["final_loss"] < result["first_loss"] - 0.1, result
    assert result["epochs"] == 8 and result["steps"] == 8 * np.ceil(180 / 32)
    assert result["chance"] == 0.1
    assert result["retrieval_chance_at_1"] == pytest.approx(1 / 60)
    for key in ("zero_shot_accuracy", "zero_shot_heldout_combinations", "linear_probe_accuracy",
                "image_to_text_at_1", "image_to_text_at_5", "text_to_image_at_1",
                "text_to_image_at_5"):
        assert 0.0 <= result[key] <= 1.0, key
        assert result[key] * 60 == pytest.approx(round(result[key] * 60)), key  # k / 60
    assert result["image_to_text_at_1"] <= result["image_to_text_at_5"]
    assert result["text_to_image_at_1"] <= result["text_to_image_at_5"]
    assert result["train_seconds"] > 0
    assert "180 training / 60 test pairs of 32x32 images, 60 held-out combinations" in printed
    assert "zero-shot accuracy" in printed and "retrieval on 60 test pairs" in printed
    for name in ("loss.png", "similarity.png", "confusion.png", "retrieval.png"):
        assert (out / name).stat().st_size > 1000, name
    checkpoint = Path(result["checkpoint"])
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt",
                 "tokenizer_config.json", "preprocessor_config.json"):
        assert (checkpoint / name).is_file(), name
    model = convert.load_pretrained(checkpoint)
    tokenizer = tokenization.CLIPTokenizer.from_pretrained(checkpoint)
    assert (model.config.vision.d_model, model.config.vision.patch_size,
            model.config.text.vocab_size) == (32, 8, len(tokenizer)) == (32, 8,
                                                                        result["vocab_size"])
    assert model.config.text.eos_token_id == tokenizer.eot_token_id
    processor = json.loads((checkpoint / "preprocessor_config.json").read_text())
    assert len(processor["image_mean"]) == 3 and min(processor["image_std"]) > 0


def test_the_time_budget_stops_training(tmp_path):
    result, printed = _quiet([*TINY, *DIGITS, "--time-budget", "0.5", "--out", str(tmp_path)])
    assert "time budget of 0.5 s reached" in printed
    assert 0.5 <= result["train_seconds"] < 3.0, result
    lr = script.scheduled_lr  # warm-up, peak, 0 at the end, on the further clock
    assert lr(0, 0.0, 1.0, 0.1, 100) == pytest.approx(0.1)
    assert lr(100, 0.0, 1.0, 0.1, 100) == pytest.approx(0.0)
    assert lr(1, 5.5, 1.0, 0.1, 100, time_budget=10.0) == pytest.approx(0.5)


def test_weight_decay_spares_gains_biases_and_the_temperature():
    model = clip.CLIP(clip.CLIPConfig.tiny())
    decay, no_decay = script.param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert {"logit_scale", "visual.cls_token", "visual.pre_norm.weight",
            "text.layers.0.ffn.up.bias"} <= spared
    assert "visual.patch_embed.weight" not in spared and "text.projection.weight" not in spared
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


# --------------------------------------------------------------------------------------
# The held-out design
# --------------------------------------------------------------------------------------


def _every_training_caption() -> set[str]:
    """Every caption a training template can produce, with every allowed attribute."""
    return {data.caption(template, digit, colour, size, position)
            for template, digit, colour, size, position in itertools.product(
                data.TRAIN_TEMPLATES, range(10), data.COLOUR_NAMES, data.SIZES, data.POSITIONS)}


def test_no_zero_shot_prompt_occurs_verbatim_in_a_training_caption(pairs):
    prompts = [template.format(name) for template in data.PROMPT_TEMPLATES
               for name in data.DIGIT_NAMES]
    assert len(prompts) == 60 and len(data.PROMPT_TEMPLATES) >= 5
    for captions in (_every_training_caption(), set(pairs.captions_train)):
        text = "\n".join(captions)
        inside = [prompt for prompt in prompts if prompt in text]
        assert not inside, f"prompts found inside training captions: {inside[:5]}"
    # ... while the class names themselves are what the captions teach
    assert all(any(name in text for text in pairs.captions_train) for name in data.DIGIT_NAMES)


def test_heldout_combinations_never_occur_in_training_and_are_what_the_heldout_set_draws(
        pairs):
    heldout = {(data.DIGIT_NAMES[d], colour) for d, colour in data.HELDOUT_COLOUR.items()}
    assert len(heldout) == 10 and len({c for _, c in heldout}) == 5  # each colour twice
    for captions, labels, expect_heldout in (
            (pairs.captions_train, pairs.labels_train, False),
            (pairs.captions_test, pairs.labels_test, False),
            (pairs.captions_heldout, pairs.labels_heldout, True)):
        for text, label in zip(captions, labels):
            words = text.replace(",", " ").split()
            colours = [word for word in words if word in data.COLOURS]
            digits = [word for word in words if word in data.DIGIT_NAMES]
            assert digits == [data.DIGIT_NAMES[label]], text
            assert len(colours) <= 1, text
            if colours:
                assert ((digits[0], colours[0]) in heldout) == expect_heldout, text
    # the images too: the ink's colour is the caption's (heldout colour for the held-out set)
    for images, labels, heldout_set in ((pairs.images_train, pairs.labels_train, False),
                                        (pairs.images_heldout, pairs.labels_heldout, True)):
        for image, label in zip(images[:300], labels[:300]):
            ink = image.reshape(3, -1)[:, image.max(axis=0).reshape(-1) > 0.5].mean(axis=1)
            nearest = min(data.COLOURS, key=lambda c: np.abs(
                data.ink_colour(c) / data.ink_colour(c).max() - ink / ink.max()).sum())
            assert (nearest == data.HELDOUT_COLOUR[int(label)]) == heldout_set
    assert len(pairs.captions_heldout) == len(pairs.captions_test) == 360


def test_images_show_what_the_captions_say():
    rng = np.random.default_rng(0)
    ink = np.ones((8, 8), np.float32)
    for size, side in data.SIZES.items():
        for position in data.POSITIONS:
            image = data.render(ink, "green", size, position, rng)
            rows, cols = np.nonzero(image[1] > 0.5)  # the green ink
            assert np.ptp(rows) + 1 == np.ptp(cols) + 1 == 8 * side
            centre = (rows.mean(), cols.mean())
            if position == "centre":
                assert all(abs(c - 15.5) <= 2 for c in centre), (size, position, centre)
            else:
                assert (centre[0] < 16) == position.startswith("top")
                assert (centre[1] < 16) == position.endswith("left")
            inked = image[1] > 0.5
            assert image[0][inked].mean() < 0.6 * image[1][inked].mean()  # green: less red
    assert data.caption(data.TRAIN_TEMPLATES[0], 7, "red", "small", "top left") \
        == "a small red seven in the top left"


def test_the_pairs_are_deterministic_by_seed():
    first, again, other = (data.digit_pairs(variants=1, seed=seed, limit=20)
                           for seed in (0, 0, 1))
    assert first.captions_train == again.captions_train
    assert np.array_equal(first.images_train, again.images_train)
    assert np.array_equal(first.images_heldout, again.images_heldout)
    assert first.captions_train != other.captions_train


# --------------------------------------------------------------------------------------
# Zero-shot weights, recall@k, the linear probe
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip():
    texts = ["a red seven", "the digit two", "a small blue four in the top left"] * 3
    tokenizer = tokenization.CLIPTokenizer.train(texts, 560)
    config = clip.CLIPConfig.tiny(text={"vocab_size": len(tokenizer), "max_len": 32,
                                        "eos_token_id": tokenizer.eot_token_id})
    torch.manual_seed(0)
    return clip.CLIP(config).double().eval(), tokenizer


def test_zero_shot_weights_are_the_normalised_mean_of_normalised_prompt_embeddings(tiny_clip):
    model, tokenizer = tiny_clip
    names, templates = ["seven", "two", "four"], ["a photo of a {}", "{}", "the number {}"]
    weights = zero_shot.zero_shot_weights(model, tokenizer, names, templates, 32)
    expected = []
    with torch.no_grad():
        for name in names:  # each prompt alone: no padding, no batching
            embedded = []
            for template in templates:
                ids = tokenizer(template.format(name), context_length=32)["input_ids"]
                ids = ids[:, :int((ids != 0).sum())]  # <|startoftext|> ... <|endoftext|>
                feature = model.encode_text(ids)[0]
                embedded.append(feature / feature.norm())
            mean = torch.stack(embedded).mean(dim=0)
            expected.append(mean / mean.norm())
    assert_close(weights, torch.stack(expected), FLOAT64, name="zero-shot weights")
    assert not torch.allclose(torch.stack(embedded).mean(dim=0), expected[-1])  # renormalised
    images = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    features = zero_shot.image_features(model, images)
    assert_close(features.norm(dim=-1), torch.ones(5, dtype=torch.float64), FLOAT64)
    assert torch.equal(zero_shot.zero_shot_predict(features, weights),
                       (features @ weights.T).argmax(dim=1))


def test_features_are_computed_in_eval_mode_and_the_mode_is_restored(tiny_clip):
    model, tokenizer = tiny_clip
    seen = []
    hook = model.visual.register_forward_hook(lambda module, *_: seen.append(module.training))
    model.train()
    try:
        zero_shot.image_features(model, torch.randn(2, 3, 32, 32, dtype=torch.float64))
        zero_shot.text_features(model, tokenizer, ["a red seven"], 32)
    finally:
        hook.remove()
    assert seen == [False] and model.training
    model.eval()


def test_recall_at_k_equals_a_hand_count():
    similarity = torch.tensor([[0.9, 0.1, 0.2, 0.0],   # image 0: text 0 first
                               [0.8, 0.3, 0.5, 0.1],   # image 1: text 1 third
                               [0.1, 0.2, 0.4, 0.6],   # image 2: text 2 second
                               [0.7, 0.9, 0.8, 0.2]])  # image 3: text 3 fourth
    # text j -> images by column j: text 0 ranks image 0 first; text 1: image 1 second
    # (after 3); text 2: image 2 third (after 3, 1); text 3: image 3 second (after 2)
    recall = zero_shot.recall_at_k(similarity, ks=(1, 2, 3))
    assert recall == {"image_to_text_at_1": 0.25, "text_to_image_at_1": 0.25,
                      "image_to_text_at_2": 0.5, "text_to_image_at_2": 0.75,
                      "image_to_text_at_3": 0.75, "text_to_image_at_3": 1.0}
    ties = torch.tensor([[0.5, 0.5], [0.5, 0.5]])  # two identical captions: both found
    assert zero_shot.recall_at_k(ties, ks=(1,))["image_to_text_at_1"] == 1.0


def test_the_linear_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 8))
    labels = np.repeat(np.arange(3), 40)
    features = centres[labels] + rng.normal(0, 0.3, (120, 8))
    accuracy, strength = zero_shot.linear_probe(features[::2], labels[::2], features[1::2],
                                                labels[1::2])
    assert accuracy == 1.0 and strength in (0.01, 0.1, 1.0, 10.0, 100.0)
    shuffled, _ = zero_shot.linear_probe(features[::2], rng.permutation(labels[::2]),
                                         features[1::2], labels[1::2])
    assert shuffled < 0.7  # labels unrelated to the features: no better than luck


def test_tokenize_cuts_the_common_padding_and_keeps_the_end_token(tiny_clip):
    _, tokenizer = tiny_clip
    batch = zero_shot.tokenize(tokenizer, ["a red seven", "a small blue four in the top left"],
                               32)
    lengths = batch["attention_mask"].sum(dim=1)
    assert batch["input_ids"].shape[1] == int(lengths.max()) < 32
    eot = tokenizer.eot_token_id
    assert (batch["input_ids"][0, int(lengths[0]) - 1:] == eot).all()  # end, then padding
    assert (batch["input_ids"][:, 0] == tokenizer.sot_token_id).all()


# --------------------------------------------------------------------------------------
# A user's pairs: a folder of images and a captions file
# --------------------------------------------------------------------------------------

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (30, 60, 220)}


def _write_pairs(root: Path, per_colour: int = 6, rows: list[str] | None = None,
                 name: str = "captions.csv", delimiter: str = ",") -> tuple[Path, Path]:
    """root/images/<colour><i>.png (noisy squares) and a captions file naming them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    lines = [f"file{delimiter}caption"]
    for colour, rgb in COLOURS.items():
        for i in range(per_colour):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 30, (20, 20, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(images / f"{colour}{i}.png")
            shade = ("light", "dark")[i % 2]
            lines.append(f'{colour}{i}.png{delimiter}"a {shade} {colour} square, {i} of '
                         f'{per_colour}"' if delimiter == "," else
                         f"{colour}{i}.png{delimiter}a {shade} {colour} square")
    captions = root / name
    captions.write_text("\n".join(rows if rows is not None else lines) + "\n\n",
                        encoding="utf-8")
    return images, captions


def test_a_folder_of_pairs_trains_and_evaluates(tmp_path):
    images, captions = _write_pairs(tmp_path)
    result, printed = _quiet(["--images", str(images), "--captions", str(captions),
                              "--classes", "red, green,blue", *TINY, "--epochs", "10",
                              "--batch-size", "8", "--out", str(tmp_path / "run"), "--plots"])
    assert "your pairs: 14 training / 4 test pairs of 32x32 images" in printed
    assert result["final_loss"] < result["first_loss"], result
    assert result["chance"] == pytest.approx(1 / 3)
    assert 0.0 <= result["zero_shot_accuracy"] <= 1.0
    assert result["retrieval_chance_at_1"] == 0.25
    assert (tmp_path / "run" / "confusion.png").is_file()
    assert Path(result["checkpoint"], "model.safetensors").is_file()
    # without --classes: retrieval only
    result, _ = _quiet(["--images", str(images), "--captions", str(captions), *TINY,
                        "--epochs", "1", "--out", str(tmp_path / "plain")])
    assert np.isnan(result["zero_shot_accuracy"]) and np.isnan(result["linear_probe_accuracy"])
    assert 0.0 <= result["text_to_image_at_5"] <= 1.0


def test_read_pairs_csv_with_quoted_commas_and_tsv(tmp_path):
    images, captions = _write_pairs(tmp_path / "csv", per_colour=2)
    pixels, texts, files = data.read_pairs(images, captions, image_size=16)
    assert pixels.shape == (6, 3, 16, 16) and pixels.dtype == np.float32
    assert texts[0] == "a light red square, 0 of 2" and files[0] == "red0.png"
    assert pixels[0, 0].mean() > pixels[0, 2].mean()  # red
    images, captions = _write_pairs(tmp_path / "tsv", per_colour=2, name="captions.tsv",
                                    delimiter="\t")
    _, texts, _ = data.read_pairs(images, captions)
    assert texts[-1] == "a dark blue square"
    labels = data.labels_from_captions(["a red square", "red and blue", "a bluebird"],
                                       ["red", "blue"])
    assert labels.tolist() == [0, -1, -1]  # several classes, or only part of a word: none


def _error(tmp_path, rows: list[str] | None = None, images=None, captions=None,
           broken: bool = False) -> str:
    """The message main exits with on a pairs folder whose captions file has ``rows``."""
    folder, file = _write_pairs(tmp_path, per_colour=2, rows=rows)
    if broken:
        (folder / "red0.png").write_bytes(b"not a png")
    argv = ["--images", str(images or folder), "--captions", str(captions or file), *TINY,
            "--epochs", "1", "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as raised:
        _quiet(argv)
    return str(raised.value.code)


def test_each_bad_pairs_file_stops_with_one_message_naming_file_and_line(tmp_path):
    good = ["red0.png,a red square", "green0.png,a green square", "blue0.png,a blue square",
            "red1.png,another red square"]
    message = _error(tmp_path / "missing", [*good, "cat.png,a cat"])
    assert "line 5: no image" in message and "cat.png" in message
    message = _error(tmp_path / "empty", [*good[:2], "blue1.png,   ", *good[2:]])
    assert "line 3: empty caption for 'blue1.png'" in message
    message = _error(tmp_path / "malformed", ["red0.png,a red square,extra", *good])
    assert "line 1: expected 2 fields (file name, caption) separated by a comma, got 3" \
        in message
    message = _error(tmp_path / "unreadable", good, broken=True)
    assert "red0.png is not an image PIL can read" in message and "line 1" in message
    message = _error(tmp_path / "few", good[:3])
    assert "3 pair(s); at least 4 are needed" in message
    message = _error(tmp_path / "nofile", good, captions=tmp_path / "nowhere.csv")
    assert "nowhere.csv: no such file" in message
    message = _error(tmp_path / "nofolder", good, images=tmp_path / "nothing")
    assert "nothing: no such folder" in message
    message = _error(tmp_path / "header", ["file,caption"])
    assert "no 'file name, caption' rows" in message


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, option", [
    (["--patch-size", "5"], "--patch-size"),
    (["--heads", "3"], "--heads"),
    (["--vocab-size", "100"], "--vocab-size"),
    (["--context-length", "1"], "--context-length"),
    (["--lr", "-1"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--test-fraction", "1.5"], "--test-fraction"),
    (["--images", "somewhere"], "--dataset pairs needs --images DIR and --captions FILE"),
    (["--classes", "a,b"], "--classes"),
    (["--image-size", "64"], "--image-size"),
    (["--dataset", "cifar"], "--dataset"),
])
def test_bad_options_exit_2_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as raised:
        script.main(argv)
    assert raised.value.code == 2
    assert option in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# The benchmark (benchmarks/bench_clip.py): it checks equality before it times
# --------------------------------------------------------------------------------------


def test_clip_benchmark_checks_equal_then_times(monkeypatch):
    bench = import_lesson("benchmarks.bench_clip")
    result = bench.main(["--small", "--batch", "4", "--repeats", "1", "--warmup", "0"])
    assert result["max_abs_difference"] < 1e-3 and result["ratio"] > 0
    make_models = bench.make_models

    def perturbed(small, seed=0):  # transformers' copy drifts: nothing may be timed
        config, ours, theirs = make_models(small, seed)
        with torch.no_grad():
            theirs.visual_projection.weight.mul_(1.01)
        return config, ours, theirs

    monkeypatch.setattr(bench, "make_models", perturbed)
    with pytest.raises(SystemExit, match="compute different numbers"):
        bench.main(["--small", "--batch", "4", "--repeats", "1", "--warmup", "0"])

    def one_gradient_off(small, seed=0):  # same outputs, one gradient 1 % off
        config, ours, theirs = make_models(small, seed)
        theirs.text_projection.weight.register_hook(lambda grad: 1.01 * grad)
        return config, ours, theirs

    monkeypatch.setattr(bench, "make_models", one_gradient_off)
    with pytest.raises(SystemExit, match="text_projection"):
        bench.main(["--small", "--batch", "4", "--repeats", "1", "--warmup", "0"])
