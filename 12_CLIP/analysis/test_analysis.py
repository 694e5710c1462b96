"""Tests of lesson 12's Level 4: what the reading of transformers' and open_clip's CLIP claims.

Each test compares numbers on the libraries' own classes built from tiny random configs (no
download): the guide's line numbers against the installed sources; the two end-of-text
pooling rules and the padding claims; ``logit_scale``; the loss against a hand computation
and open_clip's ``ClipLoss``; an open_clip model ported to ``CLIPModel``; the image
processor against resize, crop and CLIP's mean and std by hand; the ensembled zero-shot
classifier against a hand computation and open_clip's ``build_zero_shot_classifier``; the
similarity matrix against normalised ``get_*_features``; attention maps against
softmax(Q K^T / sqrt(d)) from the weights; a linear probe that beats the majority baseline
without touching the model; fine-tuning that changes only the projections and
``logit_scale`` while the loss falls. ``--checkpoint`` is tested on a folder the test writes
with ``save_pretrained``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
import transformers
from matplotlib.figure import Figure

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

hfa = import_lesson("12_CLIP.analysis.hf_analysis")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INSTALLED = hfa.installed_versions()


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


@pytest.fixture(scope="module")
def digits():
    """The digits task through the tiny processor, 300 training images."""
    return hfa.task_data("digits", hfa.toy_processor(), train_size=300)


# --------------------------------------------------------------------------------------
# The guide's line numbers
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(INSTALLED != hfa.GUIDE_VERSIONS,
                    reason=f"the guide quotes the line numbers of {hfa.GUIDE_VERSIONS}; "
                           f"installed is {INSTALLED}. Install the pinned versions "
                           "(requirements.txt) to check them, or read the guide by name")
def test_every_quoted_line_holds_what_the_guide_says():
    locations = hfa.guide_locations()
    files = {loc.path for loc in locations}
    assert len(locations) >= 150, len(locations)  # the guide quotes code, and is parsed
    assert {"modeling_clip.py", "configuration_clip.py", "processing_clip.py",
            "image_processing_clip.py", "model.py", "transformer.py", "loss.py",
            "zero_shot_classifier.py", "tokenizer.py", "transform.py", "factory.py"} <= files
    assert hfa.check_guide_line_numbers() == []


def test_the_line_check_reads_both_libraries(tmp_path):
    """Version-independent: a wrong line in either library is reported, right lines are not,
    and a missing file is looked for in both. The rules are tested in utils/tests."""
    hf_lines = hfa.resolve_source("modeling_clip.py").read_text().splitlines()
    oc_lines = hfa.resolve_source("transformer.py").read_text().splitlines()
    good_hf = next(i for i, line in enumerate(hf_lines, 1) if line.startswith("class CLIPModel"))
    good_oc = next(i for i, line in enumerate(oc_lines, 1)
                   if line.startswith("def text_global_pool"))
    guide = tmp_path / "guide.md"
    guide.write_text("\n\n".join([
        f"| `CLIPModel` `modeling_clip.py:{good_hf}` | `text_global_pool` "
        f"`transformer.py:{good_oc}` |",  # right: no problem
        f"`CLIPModel` `modeling_clip.py:{good_hf + 1}`",  # line 3: wrong
        f"`text_global_pool` `transformer.py:{good_oc - 1}`",  # line 5: wrong
        "`nothing` `no_such_file.py:3`"]))
    problems = [p for p in hfa.check_guide_line_numbers([guide]) if p.startswith("guide.md")]
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"guide.md:3: `modeling_clip.py:{good_hf + 1}`: should hold")
    assert problems[1].startswith(f"guide.md:5: `transformer.py:{good_oc - 1}`: should hold")
    assert problems[2] == "guide.md:7: `no_such_file.py:3`: no file no_such_file.py in " \
        "transformers or open_clip"


def test_guide_file_names_resolve_to_the_right_library():
    roots = hfa.library_roots()
    clip = roots["transformers"] / "models" / "clip"
    assert hfa.resolve_source("modeling_clip.py") == clip / "modeling_clip.py"
    assert hfa.resolve_source("model.py") == roots["open_clip"] / "model.py"
    assert hfa.resolve_source("masking_utils.py") == roots["transformers"] / "masking_utils.py"
    assert hfa.resolve_source("integrations/sdpa_attention.py") == \
        roots["transformers"] / "integrations" / "sdpa_attention.py"
    assert hfa.resolve_source("no_such_file.py") is None


# --------------------------------------------------------------------------------------
# 0. The reading's claims
# --------------------------------------------------------------------------------------


def test_text_feature_is_read_at_the_first_end_token_or_the_legacy_argmax():
    r = hfa.eos_pooling_rules()
    assert r["first_eos_diff"] == 0.0 and r["legacy_diff"] == 0.0
    assert r["first_eos_index"] == [4, 3] and r["legacy_index"] == [2, 3]  # added token at 2
    assert r["argmax_gap"] > 0.1  # the argmax would read the added token's state
    ids = torch.tensor([[49406, 5, 49407, 49407], [49406, 49407, 0, 0]])
    assert hfa.pooling_index(ids, 49407).tolist() == [2, 1]
    assert hfa.pooling_index(ids, 2).tolist() == [2, 1]  # argmax: the first maximum


def test_end_token_and_zero_padding_give_the_same_features():
    r = hfa.padding_and_causal_mask()
    assert r["same_ids"]
    assert r["eos_vs_zero"] < 1e-12 and r["eos_vs_alone"] < 1e-12
    assert r["mask_vs_no_mask"] < 1e-12
    assert r["after_eos"] == 0.0 and r["before_eos"] > 0.1  # the causal mask at work


def test_logit_scale_starts_at_log_1_over_0_07_and_is_not_clamped():
    r = hfa.logit_scale_claims()
    assert abs(r["init"] - math.log(1 / 0.07)) < 1e-4
    assert abs(r["ratio_at_1000"] - 1000.0) < 1e-8 and r["ratio_spread"] < 1e-8


def test_loss_is_the_symmetric_cross_entropy_and_equals_open_clip():
    r = hfa.loss_check()
    assert r["vs_hand"] < 1e-12 and r["vs_open_clip"] < 1e-12
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    expected = (-(torch.log_softmax(logits, 1).diagonal().mean())
                - torch.log_softmax(logits, 0).diagonal().mean()) / 2
    assert_close(hfa.symmetric_cross_entropy(logits), expected, FLOAT64, name="loss by hand")


def test_open_clip_and_transformers_compute_the_same_clip_after_the_port():
    r = hfa.open_clip_port()
    assert r["image"] < 1e-12 and r["text"] < 1e-12 and r["logits"] < 1e-12, r
    assert 1e-12 < r["eager_logits"] < 1e-5  # eager's float32 softmax, as the guide says
    assert r["params_open_clip"] == r["params_hf"]


def test_port_splits_the_fused_projection_and_transposes_the_projections():
    source = hfa.tiny_open_clip(1).double()
    model = hfa.open_clip_to_hf(source)
    block = source.visual.transformer.resblocks[1].attn
    theirs = model.vision_model.encoder.layers[1].self_attn
    width = source.visual.conv1.out_channels
    assert torch.equal(theirs.q_proj.weight, block.in_proj_weight[:width])
    assert torch.equal(theirs.k_proj.weight, block.in_proj_weight[width:2 * width])
    assert torch.equal(theirs.v_proj.weight, block.in_proj_weight[2 * width:])
    assert torch.equal(model.visual_projection.weight, source.visual.proj.T)
    assert torch.equal(model.text_projection.weight, source.text_projection.T)


def test_image_processor_is_resize_crop_and_clip_mean_std():
    r = hfa.image_processor_check()
    assert r["mean"] == [0.48145466, 0.4578275, 0.40821073]
    assert r["std"] == [0.26862954, 0.26130258, 0.27577711]
    assert r["open_clip_mean"] == r["mean"] and r["open_clip_std"] == r["std"]
    assert r["no_resize_shape"] == r["resized_shape"] == (3, 8, 8)
    assert r["no_resize_diff"] < 1e-6  # crop + normalise: float32 rounding only
    assert r["resized_levels"] <= 1.0 + 1e-4  # bicubic in two uint8 passes: one grey level
    assert r["resized_size"] == (11, 8)  # 14 x 10, short side 8: int(8 * 14 / 10) = 11


def test_hand_preprocessing_crops_the_centre_and_normalises():
    image = torch.arange(3 * 8 * 12, dtype=torch.float64).remainder(256).to(torch.uint8)
    image = image.view(3, 8, 12)  # short side already 8: no resampling
    out = hfa.clip_preprocess_by_hand(image, 8, 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    expected = (image[:, :, 2:10].double() / 255 - 0.5) / 0.25  # left = int((12 - 8) / 2)
    assert_close(out.double(), expected, FLOAT32, name="crop and normalise")
    assert hfa.resize_shortest_edge_size(30, 20, 10) == (15, 10)
    assert hfa.resize_shortest_edge_size(20, 31, 10) == (10, 15)  # truncated


# --------------------------------------------------------------------------------------
# 1. Prompt ensembling
# --------------------------------------------------------------------------------------


def test_ensembled_classifier_is_the_renormalised_mean_of_normalised_prompts():
    model = hfa.toy_model(0).double()
    tokenizer = hfa.hf_tokenizer()
    names, templates = ["cat", "dog", "bird"], ["a photo of a {}.", "a {} drawn.", "{}"]
    classifier = hfa.zero_shot_classifier(model, tokenizer, names, templates)
    assert classifier.shape == (3, hfa.PROJECTION_DIM)
    with torch.no_grad():
        rows = []
        for name in names:
            ids = tokenizer([t.format(name) for t in templates], padding=True,
                            return_tensors="pt")
            embedded = model.get_text_features(**ids).pooler_output  # (M, E)
            mean = (embedded / embedded.norm(dim=-1, keepdim=True)).mean(0)
            rows.append(mean / mean.norm())
    assert_close(classifier, torch.stack(rows), FLOAT64, name="ensembled classifier")
    assert_close(classifier.norm(dim=-1), torch.ones(3, dtype=torch.float64), FLOAT64)
    single = hfa.zero_shot_classifier(model, tokenizer, names, templates[:1])
    assert not torch.allclose(single, classifier)  # the ensemble is another classifier
    r = hfa.ensembling_vs_open_clip()
    assert r["diff"] < 1e-12 and r["norm_error"] < 1e-12
    with pytest.raises(ValueError, match="'{}'"):
        hfa.zero_shot_classifier(model, tokenizer, names, ["no slot"])


# --------------------------------------------------------------------------------------
# 2. Similarity matrix and attention
# --------------------------------------------------------------------------------------


def test_similarity_is_scaled_cosine_of_get_features_and_equals_the_model(tmp_path):
    model = hfa.toy_model(0).double()
    pixels = hfa.random_images(3, seed=2, dtype=torch.float64)
    ids = hfa.encode_texts(hfa.hf_tokenizer(), ["a cat", "two dogs", "a frog", "seven"],
                           hfa.CONTEXT)
    similarity = hfa.similarity_matrix(model, pixels, **ids)
    with torch.no_grad():
        images = model.get_image_features(pixel_values=pixels).pooler_output
        texts = model.get_text_features(**ids).pooler_output
        expected = model.logit_scale.exp() * F.normalize(images, dim=-1) @ \
            F.normalize(texts, dim=-1).T
        reference = model(pixel_values=pixels, **ids).logits_per_image
    assert similarity.shape == (3, 4)
    assert_close(similarity, expected, FLOAT64, name="scale * cosine")
    assert_close(similarity, reference, FLOAT64, name="logits_per_image")
    shown = hfa.displayable(pixels.float(), (0.5,) * 3, (0.25,) * 3)
    fig = hfa.plot_similarity(similarity, shown, ["a", "b", "c", "d"], tmp_path / "s.png")
    assert isinstance(fig, Figure) and (tmp_path / "s.png").stat().st_size > 1000
    with pytest.raises(ValueError):
        hfa.plot_similarity(similarity, shown, ["a", "b"])


def sharpened_model():
    """A float64 tiny model whose attention is far from uniform (scaled W_q, W_k)."""
    model = hfa.toy_model(0).double()
    with torch.no_grad():
        for layer in model.vision_model.encoder.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
    return model


def test_attention_map_is_softmax_of_qk_from_the_weights():
    model = sharpened_model()
    pixels = hfa.random_images(2, seed=3, dtype=torch.float64)
    maps = hfa.vision_attentions(model, pixels)
    assert maps.shape == (2, 2, 4, 17, 17)
    vision = model.vision_model
    with torch.no_grad():  # the last layer by hand, from its input
        hidden = vision.pre_layrnorm(vision.embeddings(pixels))
        hidden = vision.encoder.layers[0](hidden, None)
        last = vision.encoder.layers[1]
        x = last.layer_norm1(hidden)  # (B, T, D)
        split = lambda t: t.view(2, 17, 4, 8).transpose(1, 2)  # (B, T, D) -> (B, A, T, d)
        query, key = split(last.self_attn.q_proj(x)), split(last.self_attn.k_proj(x))
        expected = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(8), dim=-1)
    assert_close(maps[:, 1], expected, FLOAT32, name="softmax(QK^T/sqrt(d))")  # float32 softmax
    assert float(maps.amax()) > 0.5  # real patterns, not uniform
    cls = hfa.cls_attention(maps)
    assert cls.shape == (2, 4, 4)
    assert_close(cls.flatten(1), maps[:, -1, :, 0, 1:].mean(1), FLOAT64, name="[CLS] row")
    sdpa = hfa.toy_model(0, attn_implementation="sdpa")
    with pytest.raises(ValueError, match="eager"):
        hfa.vision_attentions(sdpa, pixels.float())


def test_rollout_is_the_product_of_residual_mixed_maps():
    generator = torch.Generator().manual_seed(0)
    maps = torch.softmax(torch.randn(1, 3, 2, 5, 5, generator=generator,
                                     dtype=torch.float64), dim=-1)  # 2 x 2 grid + [CLS]
    eye = torch.eye(5, dtype=torch.float64)
    product = eye
    for layer in range(3):
        mixed = maps[0, layer].mean(0) + eye
        product = (mixed / mixed.sum(-1, keepdim=True)) @ product
    rollout = hfa.attention_rollout(maps)
    assert_close(rollout[0].flatten(), product[0, 1:], FLOAT64, name="rollout")
    uniform = torch.full((1, 1, 1, 5, 5), 0.2, dtype=torch.float64)
    assert_close(hfa.attention_rollout(uniform)[0].flatten(),
                 torch.full((4,), 0.1, dtype=torch.float64), FLOAT64, name="(A + I) / 2")


def test_attention_is_drawn_over_the_images(tmp_path):
    images = torch.rand(2, 32, 32, 3)
    maps = {"a": torch.rand(2, 4, 4), "b": torch.rand(2, 4, 4)}
    fig = hfa.plot_attention_over_images(images, maps, tmp_path / "a.png")
    assert len(fig.axes) == 2 * 3 and (tmp_path / "a.png").stat().st_size > 1000
    with pytest.raises(ValueError):
        hfa.plot_attention_over_images(images, {"a": torch.rand(3, 4, 4)})


# --------------------------------------------------------------------------------------
# 3. A linear probe
# --------------------------------------------------------------------------------------


def test_probe_beats_the_majority_baseline_and_leaves_the_model_unchanged(digits):
    model = hfa.toy_model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = hfa.batched_image_embeddings(model, digits["x_train"], normalize=False)
    test = hfa.batched_image_embeddings(model, digits["x_test"], normalize=False)
    r = hfa.linear_probe(train, digits["y_train"], test, digits["y_test"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert r["baseline"] < 0.15 and r["accuracy"] >= r["baseline"] + 0.3, r
    with torch.no_grad():  # the features are get_image_features' output
        expected = model.get_image_features(pixel_values=digits["x_test"][:4]).pooler_output
    assert_close(test[:4], expected, FLOAT32, name="probe features")
    standardised = ((test - r["mean"]) / r["std"]).double().numpy()
    assert r["accuracy"] == pytest.approx(
        float((r["classifier"].predict(standardised) == digits["y_test"].numpy()).mean()))


def test_majority_baseline():
    assert hfa.majority_baseline(torch.tensor([1, 1, 2]), torch.tensor([1, 2, 2, 1])) == 0.5


def test_task_data_uses_the_processor_mean_and_std(digits):
    assert digits["x_train"].shape == (300, 3, 32, 32) and len(digits["y_test"]) == 360
    mean = torch.tensor(hfa.toy_processor().image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(hfa.toy_processor().image_processor.image_std).view(1, 3, 1, 1)
    background = (0 - mean) / std  # the digits' corners are ink 0
    assert_close(digits["x_test"][:, :, 0, 0], background.view(1, 3).expand(360, 3), FLOAT32)


# --------------------------------------------------------------------------------------
# 4. Fine-tuning the projections and the temperature
# --------------------------------------------------------------------------------------


def test_finetuning_changes_only_the_projections_and_logit_scale(digits):
    model = hfa.toy_model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = hfa.finetune_projections(model, hfa.hf_tokenizer(), digits, hfa.CLASS_NAMES["digits"],
                                 steps=150, lr=1e-2)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == set(hfa.PROJECTION_PARAMETERS) == set(r["trainable"])
    assert r["last_loss"] < 0.85 * r["first_loss"], r
    assert model.logit_scale.item() <= math.log(100.0) + 1e-6
    # the shortcut (pooled features once, then the projections) is CLIPModel's forward
    ids = hfa.encode_texts(hfa.hf_tokenizer(), ["the digit one.", "the digit two."],
                           hfa.CONTEXT)
    pixels = digits["x_train"][:2]
    with torch.no_grad():
        logits = hfa.projected_logits(model, hfa.pooled_features(model, pixel_values=pixels),
                                      hfa.pooled_features(model, **ids))
        reference = model(pixel_values=pixels, **ids).logits_per_image
    assert_close(logits, reference, FLOAT32, name="projected logits vs forward")
    with pytest.raises(ValueError, match="batch_size"):
        hfa.finetune_projections(model, hfa.hf_tokenizer(), digits, ["a", "b"], batch_size=3)


# --------------------------------------------------------------------------------------
# The script, offline and on a checkpoint folder
# --------------------------------------------------------------------------------------


def test_script_runs_every_part_offline(tmp_path):
    r = hfa.main(["--steps", "60", "--train-size", "200", "--out", str(tmp_path),
                  "--no-progress"])
    assert r["guide_problems"] == [] or INSTALLED != hfa.GUIDE_VERSIONS
    assert r["port_logits"] < 1e-12 and r["loss_vs_open_clip"] < 1e-12
    assert r["similarity_shape"] == (6, 6) and r["similarity_diff"] < 1e-5
    assert r["attention_shape"] == (4, 2, 4, 17, 17)
    assert r["probe_accuracy"] > r["probe_baseline"] + 0.2 and r["probe_model_unchanged"]
    assert r["finetune_changed"] == sorted(hfa.PROJECTION_PARAMETERS)
    assert r["finetune_last_loss"] < r["finetune_first_loss"]
    assert r["finetune_trainable"] == 2 * 32 * 16 + 1
    for name in ("similarity.png", "attention.png", "finetune_loss.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_script_runs_on_a_checkpoint_folder(tmp_path):
    """A folder as save_pretrained writes it (model, tokenizer, image processor)."""
    source = hfa.toy_model(3)
    source.save_pretrained(tmp_path / "clip")
    hfa.toy_processor().save_pretrained(tmp_path / "clip")
    model, processor = hfa.load_checkpoint(tmp_path / "clip")
    assert not model.training and torch.equal(model.logit_scale, source.logit_scale)
    assert processor.tokenizer("a cat")["input_ids"] == [49406, 320, 2368, 49407]
    r = hfa.main(["--checkpoint", str(tmp_path / "clip"), "--skip-claims", "--steps", "10",
                  "--train-size", "100", "--out", str(tmp_path / "out"), "--no-progress"])
    assert "guide_problems" not in r and len(r["finetune_losses"]) == 10


def test_checkpoint_errors_are_clear(tmp_path, capsys):
    with pytest.raises(hfa.CheckpointError, match="does not exist"):
        hfa.check_checkpoint_dir(tmp_path / "missing")
    with pytest.raises(hfa.CheckpointError,
                       match="lacks config.json; preprocessor_config.json or processor_config"):
        hfa.check_checkpoint_dir(tmp_path)
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(hfa.CheckpointError, match="model_type 'vit'; expected 'clip'"):
        hfa.check_checkpoint_dir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        hfa.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--batch-size", "11"), ("--steps", "0"),
                                           ("--dataset", "mnist"), ("--probe-c", "0")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        hfa.main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_the_libraries_agree_on_clip_constants():
    assert tuple(transformers.CLIPImageProcessor().image_mean) == open_clip.OPENAI_DATASET_MEAN
    assert hfa.hf_tokenizer().eos_token_id == hfa.EOS_ID == \
        hfa.open_clip_tokenizer().eot_token_id
