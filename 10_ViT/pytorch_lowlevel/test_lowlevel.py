"""Tests of lesson 10, Level 2: the Vision Transformer from tensors and autograd.

- the patch embedding (reshape + matmul) == F.conv2d with stride = patch size, square and
  non-square images and patches; patches come out in row-major grid order
- logits and the gradient of every parameter == timm's VisionTransformer (small random
  config, no download) with copied weights, float64, 1e-10: global_pool "token" and "avg"
  (timm's fc_norm rule), square and non-square (24x16 image, 8x4 patches); no head
  (num_classes 0) gives timm's pooled features
- logits, the normed tokens, every layer's attention probabilities, the loss and every
  gradient == transformers' ViTForImageClassification (layer_norm_eps 1e-12, [CLS] read
  after the final layernorm), non-square
- cross_entropy with label smoothing == F.cross_entropy(label_smoothing=...), with gradients
- init_params: one tensor per timm / transformers parameter, the initialisation's statistics
- param_groups == timm's param_groups_weight_decay; AdamW + warm-up / cosine ==
  torch.optim.AdamW + LambdaLR over 20 steps; the schedule == utils' "warmup_cosine"
- dropout only when training; bad inputs at the door; the purity rule; train.py runs, its
  loss falls and it beats the majority class

Run: .venv/bin/python -m pytest 10_ViT/pytorch_lowlevel -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from utils import import_lesson
from utils.testing import (
    FLOAT64,
    OPTIMIZER_TRAJECTORY,
    assert_close,
    assert_level_purity,
    float32_tol,
)

vit = import_lesson("10_ViT.pytorch_lowlevel.vit_lowlevel")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

NUM_CLASSES = 5
# (image_size, patch_size, d_model, n_heads, d_ff): a square case and a non-square one
SQUARE = ((16, 16), (4, 4), 16, 2, 40)
NON_SQUARE = ((24, 16), (8, 4), 24, 3, 36)


def make_config(shape=NON_SQUARE, pool: str = "token", num_classes: int = NUM_CLASSES,
                **overrides) -> vit.ViTConfig:
    image_size, patch_size, d_model, n_heads, d_ff = shape
    return vit.ViTConfig(**{"image_size": image_size, "patch_size": patch_size,
                            "in_channels": 3, "num_classes": num_classes, "d_model": d_model,
                            "n_layers": 2, "n_heads": n_heads, "d_ff": d_ff, "pool": pool,
                            **overrides})


def random_params(config, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter random (biases and LayerNorm too), float64: nothing hides at 0 or 1."""
    params = vit.init_params(config, seed=seed, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in params.items():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            p.copy_(1 + 0.2 * noise if "norm" in name and name.endswith("weight")
                    else 0.3 * noise)
    return params


def images_for(config, batch: int = 4, seed: int = 1) -> torch.Tensor:
    height, width = vit.as_pair(config.image_size)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.in_channels, height, width, generator=generator,
                       dtype=torch.float64)


def labels_for(batch: int = 4) -> torch.Tensor:
    return torch.tensor([0, 3, 4, 1, 2, 0, 3, 1][:batch])


# --------------------------------------------------------------------------------------
# The references: timm and transformers from small random configs, our weights copied in
# --------------------------------------------------------------------------------------

TIMM_NAMES = [("patch_embed.weight", "patch_embed.proj.weight"),
              ("patch_embed.bias", "patch_embed.proj.bias"),
              ("position_embedding", "pos_embed"), ("layers.", "blocks."),
              ("attention.qkv", "attn.qkv"), ("attention.out", "attn.proj"),
              ("ffn.up", "mlp.fc1"), ("ffn.down", "mlp.fc2")]


def timm_name(name: str, config) -> str:
    for ours, theirs in TIMM_NAMES:
        name = name.replace(ours, theirs)
    # timm: global_pool "token" norms every token (norm); "avg" norms the mean (fc_norm)
    return name.replace("final_norm", "norm" if config.pool == "token" else "fc_norm")


def timm_model(params, config):
    """timm's VisionTransformer of config's sizes holding a copy of ``params`` (float64)."""
    timm = pytest.importorskip("timm")
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=config.image_size, patch_size=config.patch_size,
        in_chans=config.in_channels, num_classes=config.num_classes,
        embed_dim=config.d_model, depth=config.n_layers, num_heads=config.n_heads,
        mlp_ratio=config.d_ff / config.d_model,
        global_pool="token" if config.pool == "token" else "avg").double().eval()
    assert model.blocks[0].mlp.fc1.out_features == config.d_ff
    state = {}
    for name, p in params.items():
        value = p.detach()
        if name == "patch_embed.weight":  # (D, C P_h P_w) -> the conv's (D, C, P_h, P_w)
            value = value.reshape(config.d_model, config.in_channels,
                                  *vit.as_pair(config.patch_size))
        state[timm_name(name, config)] = value
    model.load_state_dict(state, strict=True)
    return model


# our name -> transformers' (5.x: vit.layers.{i}.attention.q_proj, ...); the fused qkv
# becomes three projections q_proj, k_proj, v_proj (rows 0..D-1, D..2D-1, 2D..3D-1)
HF_NAMES = [("cls_token", "vit.embeddings.cls_token"),
            ("position_embedding", "vit.embeddings.position_embeddings"),
            ("patch_embed.", "vit.embeddings.patch_embeddings.projection."),
            ("final_norm.", "vit.layernorm."), ("head.", "classifier."), ("layers.", "vit.layers."),
            ("attention.out.", "attention.o_proj."), ("norm1.", "layernorm_before."),
            ("norm2.", "layernorm_after."), ("ffn.up.", "mlp.fc1."), ("ffn.down.", "mlp.fc2.")]
QKV = ("q_proj", "k_proj", "v_proj")


def hf_name(name: str) -> str:
    for ours, theirs in HF_NAMES:
        name = name.replace(ours, theirs)
    return name


def hf_model(params, config, attn_implementation: str = "sdpa"):
    """transformers' ViTForImageClassification of config's sizes holding a copy of
    ``params`` (float64). Its eager attention takes the softmax in float32 whatever the
    dtype; sdpa keeps float64 (and returns no probabilities)."""
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.ViTConfig(
        image_size=config.image_size, patch_size=config.patch_size,
        num_channels=config.in_channels, hidden_size=config.d_model,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff, hidden_act="gelu", hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=config.layer_norm_eps,
        qkv_bias=True, num_labels=config.num_classes, attn_implementation=attn_implementation)
    model = transformers.ViTForImageClassification(hf_config).double().eval()
    d, state = config.d_model, {}
    for name, p in params.items():
        value = p.detach()
        if ".attention.qkv." in name:
            for part, projection in enumerate(QKV):
                state[hf_name(name).replace("qkv", projection)] = value[part * d:(part + 1) * d]
        elif name == "patch_embed.weight":
            state[hf_name(name)] = value.reshape(d, config.in_channels,
                                                 *vit.as_pair(config.patch_size))
        else:
            state[hf_name(name)] = value
    model.load_state_dict(state, strict=True)
    return model


def hf_gradient(model, name: str, shape) -> torch.Tensor:
    """The gradient of our parameter ``name`` gathered from transformers' parameters."""
    theirs = dict(model.named_parameters())
    if ".attention.qkv." in name:  # stack the three projections' gradients: q, k, v
        return torch.cat([theirs[hf_name(name).replace("qkv", projection)].grad
                          for projection in QKV])
    return theirs[hf_name(name)].grad.reshape(shape)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# Patches as tokens
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_size, patch_size", [((16, 16), 4), ((24, 16), (8, 4)),
                                                    ((12, 20), (3, 5))])
def test_patch_embedding_equals_a_strided_convolution(image_size, patch_size):
    config = vit.ViTConfig(image_size=image_size, patch_size=patch_size, in_channels=3,
                           d_model=16, n_layers=1, n_heads=2, num_classes=0)
    params = random_params(config)
    images = images_for(config, batch=3)
    ours = vit.patch_embed(params, images, config)  # (B, N, D)
    patch_h, patch_w = vit.as_pair(patch_size)
    kernel = params["patch_embed.weight"].reshape(16, 3, patch_h, patch_w)
    conv = F.conv2d(images, kernel, params["patch_embed.bias"], stride=(patch_h, patch_w))
    assert conv.shape[2:] == config.grid_size
    assert_close(ours, conv.flatten(2).transpose(1, 2), FLOAT64, "patch embedding")
    # patch i is the block at grid row i // G_w, column i % G_w, flattened as (C, P_h, P_w)
    patches = vit.patchify(images, patch_size)
    grid_w = config.grid_size[1]
    for i in (0, 1, grid_w, config.num_patches - 1):
        row, col = divmod(i, grid_w)
        block = images[:, :, row * patch_h:(row + 1) * patch_h, col * patch_w:(col + 1) * patch_w]
        assert torch.equal(patches[:, i], block.reshape(block.shape[0], -1))


# --------------------------------------------------------------------------------------
# The model against timm and transformers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [SQUARE, NON_SQUARE], ids=["square", "non_square"])
@pytest.mark.parametrize("pool", ["token", "mean"])
def test_logits_and_every_gradient_equal_timm(pool, shape):
    config = make_config(shape, pool)
    params = random_params(config)
    model = timm_model(params, config)
    images, labels = images_for(config), labels_for()
    logits = vit.forward(params, config, images)
    expected = model(images)
    assert_close(logits, expected, FLOAT64, f"logits (pool {pool})")
    vit.cross_entropy(logits, labels, label_smoothing=0.1).backward()
    F.cross_entropy(expected, labels, label_smoothing=0.1).backward()
    theirs = dict(model.named_parameters())
    for name, p in params.items():
        grad = theirs[timm_name(name, config)].grad.reshape(p.shape)
        assert_close(p.grad, grad, FLOAT64, f"gradient of {name}")
        if ".attention.qkv.bias" not in name:  # the key bias cannot change the softmax
            assert p.grad.abs().max() > 1e-4, f"no gradient reaches {name}"
    # the comparison is not vacuous: the other pooling gives other logits
    other = vit.ViTConfig(**{**vars(config), "pool": "mean" if pool == "token" else "token"})
    assert (vit.forward(params, other, images) - logits).abs().max() > 1e-2


def test_without_a_head_the_pooled_features_equal_timm():
    config = make_config(pool="mean", num_classes=0)
    params = random_params(config)
    assert "head.weight" not in params
    features = vit.forward(params, config, images_for(config))
    expected = timm_model(params, config)(images_for(config))
    assert features.shape == (4, config.d_model)
    assert_close(features, expected, FLOAT64, "pooled features (fc_norm of the mean)")


def test_logits_attention_and_every_gradient_equal_transformers():
    config = make_config(NON_SQUARE, "token", layer_norm_eps=1e-12)
    params = random_params(config, seed=3)
    model = hf_model(params, config)
    images, labels = images_for(config, seed=4), labels_for()
    tokens, attentions = vit.forward_features(params, config, images)
    logits = vit.forward_head(params, config, tokens)
    expected = model(images, labels=labels)
    with torch.no_grad():
        sequence = model.vit(images).last_hidden_state  # after vit.layernorm
    assert_close(tokens, sequence, FLOAT64, "tokens after the final norm")
    assert_close(logits, expected.logits, FLOAT64, "logits ([CLS] after the final norm)")
    loss = vit.cross_entropy(logits, labels)
    assert_close(loss, expected.loss, FLOAT64, "cross-entropy")
    loss.backward()
    expected.loss.backward()
    for name, p in params.items():
        assert_close(p.grad, hf_gradient(model, name, p.shape), FLOAT64, f"gradient of {name}")
    # the probabilities: transformers' eager softmax runs in float32 even on float64 scores
    with torch.no_grad():
        eager = hf_model(params, config, "eager")(images, output_attentions=True).attentions
    assert len(attentions) == len(eager) == config.n_layers
    for i, (ours, theirs) in enumerate(zip(attentions, eager)):
        assert ours.shape == (4, config.n_heads, 1 + config.num_patches, 1 + config.num_patches)
        assert_close(ours, theirs, float32_tol(1 + config.num_patches),
                     f"attention probabilities of layer {i}")
    # transformers' epsilon (1e-12) is not ours (1e-6): with ours the tokens differ
    other = vit.ViTConfig(**{**vars(config), "layer_norm_eps": 1e-6})
    assert (vit.forward_features(params, other, images)[0] - tokens).abs().max() > 1e-10


def test_dropout_acts_only_when_training():
    config = make_config(dropout=0.3, attn_dropout=0.3)
    params = random_params(config)
    images = images_for(config)
    no_dropout = make_config()
    evaluation, attention = vit.forward(params, config, images, return_attention=True)
    assert_close(evaluation, vit.forward(params, no_dropout, images), FLOAT64, "eval mode")
    torch.manual_seed(0)
    trained, trained_attention = vit.forward(params, config, images, training=True,
                                             return_attention=True)
    assert (trained - evaluation).abs().max() > 1e-2
    assert (trained_attention[0] == 0).sum() > (attention[0] == 0).sum()


# --------------------------------------------------------------------------------------
# The loss, the initialisation, AdamW and the schedule
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.4])
def test_cross_entropy_with_label_smoothing_equals_torch(label_smoothing):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (6,), generator=generator)
    ours = vit.cross_entropy(logits, labels, label_smoothing)
    expected = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    assert_close(ours, expected, FLOAT64, "label-smoothed cross-entropy")
    assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(expected, logits)[0],
                 FLOAT64, "its gradient")
    if label_smoothing:
        assert abs(float(ours.detach()) - float(F.cross_entropy(logits, labels).detach())) > 1e-3


def test_init_params_has_every_timm_and_transformers_parameter_and_timm_like_statistics():
    config = vit.ViTConfig(image_size=32, patch_size=4, in_channels=3, num_classes=10,
                           d_model=64, n_layers=2, n_heads=4)
    params = vit.init_params(config, seed=0)
    timm = pytest.importorskip("timm")
    reference = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=4, num_classes=10, embed_dim=64, depth=2, num_heads=4)
    theirs = dict(reference.named_parameters())
    assert sorted(timm_name(n, config) for n in params) == sorted(theirs)
    for name, p in params.items():
        assert p.numel() == theirs[timm_name(name, config)].numel(), name
        assert p.requires_grad and p.dtype == torch.float32 and p.is_leaf
        if "norm" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:  # N(0, 0.02^2) truncated at 2 std: std 0.02 * 0.880, nothing beyond 0.04
            values = p.detach()
            assert values.abs().max() <= 0.04 + 1e-7, name
            if values.numel() > 1000:
                assert abs(float(values.mean())) < 0.002, name
                assert 0.0165 < float(values.std()) < 0.0187, name
    assert params["position_embedding"].shape == (1, 1 + 64, 64)
    again = vit.init_params(config, seed=0)
    assert all(torch.equal(params[n], again[n]) for n in params)
    assert not torch.equal(vit.init_params(config, seed=1)["cls_token"], params["cls_token"])
    assert "head.weight" not in vit.init_params(vit.ViTConfig(**{**vars(config),
                                                                 "num_classes": 0}))


def test_param_groups_equal_timm_param_groups_weight_decay():
    timm_optim = pytest.importorskip("timm.optim")
    config = make_config()
    params = random_params(config)
    decay, no_decay = vit.param_groups(params, weight_decay=0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {"cls_token", "position_embedding", "layers.0.norm1.weight", "final_norm.bias",
            "layers.1.attention.qkv.bias", "head.bias"} <= set(no_decay["names"])
    assert {"patch_embed.weight", "layers.0.attention.qkv.weight", "layers.1.ffn.down.weight",
            "head.weight"} <= set(decay["names"])
    for group in (decay, no_decay):
        assert all(params[n] is p for n, p in zip(group["names"], group["params"]))
    model = timm_model(params, config)
    groups = timm_optim.param_groups_weight_decay(
        model, 0.05, no_weight_decay_list=model.no_weight_decay())
    name_of = {id(p): n for n, p in model.named_parameters()}
    theirs = {g["weight_decay"]: sorted(name_of[id(p)] for p in g["params"]) for g in groups}
    assert theirs[0.0] == sorted(timm_name(n, config) for n in no_decay["names"])
    assert theirs[0.05] == sorted(timm_name(n, config) for n in decay["names"])


def test_adamw_and_warmup_cosine_equal_torch_adamw_and_lambda_lr_over_20_steps():
    config = make_config(SQUARE)
    ours, theirs = random_params(config, seed=5), random_params(config, seed=5)
    images, labels = images_for(config, seed=6), labels_for()

    def loss_of(params):
        return vit.cross_entropy(vit.forward(params, config, images), labels, 0.1)

    peak, warmup, total, decay = 0.01, 5, 20, 0.3
    groups = vit.param_groups(ours, weight_decay=decay)
    optimizer = torch.optim.AdamW([{"params": [theirs[n] for n in group["names"]],
                                    "weight_decay": group["weight_decay"]} for group in groups],
                                  lr=peak, betas=(0.9, 0.999), eps=1e-8)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: vit.warmup_cosine_lr(step, 1.0, warmup, total))
    state = None
    for step in range(total):
        vit.zero_grad(ours.values())
        loss_of(ours).backward()
        rate = vit.warmup_cosine_lr(step, peak, warmup, total)
        assert rate == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        state = vit.adamw_step(groups, rate, betas=(0.9, 0.999), eps=1e-8, state=state)
        optimizer.zero_grad()
        loss_of(theirs).backward()
        optimizer.step()
        schedule.step()
    start = random_params(config, seed=5)
    for name in ours:
        # the key bias's true gradient is 0 (softmax ignores a shift shared by every key):
        # Adam divides its rounding noise by sqrt(v) + eps and moves it by up to lr per step,
        # a walk that differs between CPUs; those rows get the trajectory tolerance
        tol = OPTIMIZER_TRAJECTORY if name.endswith("attention.qkv.bias") else FLOAT64
        assert_close(ours[name], theirs[name], tol, f"{name} after {total} steps")
        if ".attention.qkv.bias" not in name:
            assert (ours[name] - start[name]).abs().max() > 1e-3, f"{name} did not move"
    assert state["t"] == total


def test_schedule_is_warmup_then_cosine_as_utils_warmup_cosine():
    from utils.training_utils import make_lr_scheduler

    peak, warmup, total = 1e-3, 4, 24
    values = [vit.warmup_cosine_lr(s, peak, warmup, total) for s in range(total + 1)]
    assert values[0] == pytest.approx(peak / 4) and values[warmup - 1] == pytest.approx(peak)
    assert values[warmup] == pytest.approx(peak)  # the cosine starts at the peak
    assert values[warmup + (total - warmup) // 2] == pytest.approx(peak / 2)
    assert values[total] == 0.0 and values[total - 1] < 1e-5
    assert vit.warmup_cosine_lr(total, peak, warmup, total, min_lr=1e-5) == pytest.approx(1e-5)
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=peak)
    reference = make_lr_scheduler(optimizer, "warmup_cosine", epochs=total, warmup=warmup)
    for step in range(total):
        assert values[step] == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12), step
        optimizer.step()
        reference.step()


# --------------------------------------------------------------------------------------
# The door and the script
# --------------------------------------------------------------------------------------


def test_bad_inputs_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match=r"image_size 24x16 is not divisible by patch_size "
                                         r"5x4"):
        vit.ViTConfig(image_size=(24, 16), patch_size=(5, 4))
    with pytest.raises(ValueError, match="image_size 30x30 is not divisible"):
        vit.ViTConfig(image_size=30, patch_size=16)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        vit.ViTConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="pool must be one of"):
        vit.ViTConfig(pool="max")
    config = make_config()
    params = vit.init_params(config)
    with pytest.raises(ValueError, match=r"images: expected .* \(B, 3, 24, 16\)"):
        vit.forward(params, config, torch.zeros(2, 3, 16, 24))  # height and width swapped
    with pytest.raises(ValueError, match=r"\(B, 3, 24, 16\)"):
        vit.forward(params, config, torch.zeros(2, 1, 24, 16))
    with pytest.raises(ValueError, match="float tensor"):
        vit.forward(params, config, torch.zeros(2, 3, 24, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="label_smoothing"):
        vit.cross_entropy(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long), 1.0)


def test_train_main_runs_the_loss_falls_and_it_beats_the_majority(tmp_path):
    train = import_lesson("10_ViT.pytorch_lowlevel.train")
    result = train.main(["--epochs", "8", "--d-model", "32", "--layers", "1", "--heads", "2",
                         "--n-train", "1000", "--lr", "3e-3", "--no-progress",
                         "--out", str(tmp_path)])
    assert result["final_loss"] < result["first_loss"] - 0.3
    assert result["test_accuracy"] > result["majority_baseline"] + 0.3
    for picture in ("loss.png", "accuracy.png", "lr.png", "position_similarity.png"):
        assert (tmp_path / picture).stat().st_size > 1000, picture
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--patch-size", "5", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit, match="does not exist"):
        train.main(["--dataset", "cifar10", "--data-root", str(tmp_path / "nowhere"),
                    "--out", str(tmp_path)])
