"""Tests of lesson 02, Level 3, and the cross-level check L1 == L2 == L3.

Level 3 (the MLP nn.Module):
- parameter count == sum over layers of n_in * n_out + n_out, counted by hand
  (784-800-10: 636,010), plus 2 per unit of every norm layer
- equals an explicit nn.Sequential reference holding the same weights (with batch norm in
  training and evaluation, with layer norm)
- initialisation == torch.nn.init's Glorot / He draws; statistics of both
- overfits one small batch; state_dict round trip through save_checkpoint / load_checkpoint;
  torch.manual_seed determinism
- dropout and batch norm behave differently in training and evaluation; layer norm does not
- vanishing gradients in a deep sigmoid net, not in a ReLU net
- bad input gives clear errors; the level's purity rule; the script on digits and moons

Cross-level: the same weights give the same logits, loss and gradients at L1 (NumPy), L2
(low-level torch) and L3 (nn.Module) in float64 to 1e-10, in evaluation mode and with batch
norm in training mode (running statistics included); SGD with momentum takes the same steps
at all three levels; and L2 and L3 draw the same initial weights from the same seed.

Run: .venv/bin/python -m pytest 02_MLP/paper -q
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from utils import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity, tolerance
from utils.training_utils import load_checkpoint, save_checkpoint

mlp3 = import_lesson("02_MLP.paper.mlp_paper")
train3 = import_lesson("02_MLP.paper.train")
mlp2 = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


def _data(n=32, d=6, k=3, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=generator, dtype=dtype)
    y = torch.randint(0, k, (n,), generator=generator)
    return X, y


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(784, 800, 10), (64, 128, 10), (2, 32, 32, 2), (5, 3)])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_parameter_count_by_hand(sizes, norm):
    by_hand = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    if norm != "none":
        by_hand += sum(2 * width for width in sizes[1:-1])  # gamma and beta per hidden unit
    model = mlp3.MLP(sizes, norm=norm, dropout=0.5)  # dropout has no parameters
    assert mlp3.count_parameters(model) == by_hand
    if sizes == (784, 800, 10) and norm == "none":
        assert by_hand == 636_010  # Simard et al.'s network


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5), n=st.integers(2, 6),
       norm=st.sampled_from(["none", "batch", "layer"]), seed=st.integers(0, 1000))
def test_property_output_shape_and_parameter_count(sizes, n, norm, seed):
    model = mlp3.MLP(sizes, norm=norm).double()
    X = torch.randn(n, sizes[0], generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    logits = model(X)
    assert logits.shape == (n, sizes[-1]) and torch.isfinite(logits).all()
    hidden = sum(sizes[1:-1]) if norm != "none" else 0
    assert mlp3.count_parameters(model) == sum(
        a * b + b for a, b in zip(sizes[:-1], sizes[1:])) + 2 * hidden
    assert len(model.linears) == len(sizes) - 1


def _sequential_twin(model: mlp3.MLP) -> nn.Sequential:
    """The network written out as a plain nn.Sequential, with model's weights loaded."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
    layers = []
    widths = model.sizes
    for l in range(1, len(widths)):
        layers.append(nn.Linear(widths[l - 1], widths[l]))
        if l == len(widths) - 1:
            break
        if model.norm == "batch":
            layers.append(nn.BatchNorm1d(widths[l]))
        elif model.norm == "layer":
            layers.append(nn.LayerNorm(widths[l]))
        layers.append(act[model.activation]())
        if model.dropout:
            layers.append(nn.Dropout(model.dropout))
    reference = nn.Sequential(*layers).to(next(model.parameters()).dtype)
    reference.load_state_dict(model.layers.state_dict())  # same keys: "0.weight", ...
    return reference


@pytest.mark.parametrize("activation, norm", [("relu", "none"), ("tanh", "layer"),
                                              ("gelu", "batch"), ("sigmoid", "batch")])
def test_equals_an_nn_sequential_with_the_same_weights(activation, norm, device):
    torch.manual_seed(0)
    model = mlp3.MLP((6, 9, 7, 3), activation=activation, norm=norm, dropout=0.25).double()
    model.to(device)
    reference = _sequential_twin(model).to(device)
    X, y = (t.to(device) for t in _data())
    tol = tolerance(torch.float64, device)
    model.eval(), reference.eval()
    assert_close(model(X), reference(X), tol, name="logits in evaluation")
    if norm == "batch":  # training mode: batch statistics; dropout off to compare
        model = mlp3.MLP((6, 9, 7, 3), activation=activation, norm=norm).double().to(device)
        reference = _sequential_twin(model).to(device)
        model.train(), reference.train()
        loss, ref_loss = F.cross_entropy(model(X), y), F.cross_entropy(reference(X), y)
        assert_close(loss, ref_loss, tol, name="loss in training")
        grads = torch.autograd.grad(loss, list(model.parameters()))
        ref_grads = torch.autograd.grad(ref_loss, list(reference.parameters()))
        for (name, _), a, b in zip(model.named_parameters(), grads, ref_grads):
            assert_close(a, b, tol, name=f"d loss / d {name}")
        for name, buffer in model.layers.named_buffers():
            assert_close(buffer, reference.get_buffer(name), tol, name=name)


def test_initialisation_is_torch_nn_init_and_has_the_papers_variance():
    model = mlp3.MLP((400, 300, 200), activation="tanh").double().requires_grad_(False)  # Glorot
    model.reset_parameters(generator=torch.Generator().manual_seed(1))
    expected = torch.empty(300, 400, dtype=torch.float64)
    nn.init.xavier_uniform_(expected, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.linears[0].weight, expected)
    assert math.isclose(float(model.linears[0].weight.var()), 2 / 700, rel_tol=0.03)
    assert math.isclose(float(model.linears[1].weight.var()), 2 / 500, rel_tol=0.03)
    relu = mlp3.MLP((400, 300, 200)).double().requires_grad_(False)  # He
    assert math.isclose(float(relu.linears[0].weight.var()), 2 / 400, rel_tol=0.03)
    assert all(torch.equal(lin.bias, torch.zeros_like(lin.bias)) for lin in relu.linears)
    default = mlp3.MLP((400, 300), init="torch")  # nn.Linear's U(+-1/sqrt(n_in))
    assert float(default.linears[0].weight.detach().abs().max()) <= 1 / 20


def test_overfits_one_small_batch():
    X, y = _data(n=16, d=8, k=4, seed=1, dtype=torch.float32)  # random labels: memorise them
    model = mlp3.MLP((8, 64, 4))
    history = train3.train(model, X, y, optimizer="adam", lr=0.03, epochs=60, batch_size=16,
                         schedule="constant")
    assert history.train_loss[-1] < 0.02 and history.train_metric[-1] == 1.0
    assert torch.equal(mlp3.predict(model, X), y)


def test_state_dict_round_trip_through_a_checkpoint(tmp_path):
    X, y = _data(dtype=torch.float32)
    model = mlp3.MLP((6, 10, 3), norm="batch")
    train3.train(model, X, y, epochs=2, batch_size=8)  # moves weights and running statistics
    save_checkpoint(tmp_path / "mlp.pt", model, epoch=2)
    restored = mlp3.MLP((6, 10, 3), norm="batch")
    assert not torch.equal(restored.linears[0].weight, model.linears[0].weight)
    state = load_checkpoint(tmp_path / "mlp.pt", restored)
    assert state["epoch"] == 2
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name  # running_mean / running_var included
    model.eval(), restored.eval()
    assert torch.equal(restored(X), model(X))
    with pytest.raises(ValueError, match="does not fit MLP"):
        load_checkpoint(tmp_path / "mlp.pt", mlp3.MLP((6, 11, 3), norm="batch"))


def test_torch_manual_seed_determinism():
    torch.manual_seed(123)
    a = mlp3.MLP((6, 10, 3))
    torch.manual_seed(123)
    b = mlp3.MLP((6, 10, 3))
    c = mlp3.MLP((6, 10, 3))  # the global RNG moved on
    assert torch.equal(a.linears[0].weight, b.linears[0].weight)
    assert not torch.equal(a.linears[0].weight, c.linears[0].weight)
    X, y = _data(dtype=torch.float32)
    trained = []
    for seed in (5, 5, 6):
        model = mlp3.MLP((6, 10, 3), dropout=0.2)
        model.reset_parameters(generator=torch.Generator().manual_seed(0))
        torch.manual_seed(seed)  # dropout masks come from the global RNG
        train3.train(model, X, y, epochs=2, batch_size=8, seed=seed)
        trained.append(model.linears[0].weight.detach().clone())
    assert torch.equal(trained[0], trained[1]) and not torch.equal(trained[0], trained[2])


def test_dropout_and_norms_in_training_and_evaluation():
    X, _ = _data(dtype=torch.float32)
    dropped = mlp3.MLP((6, 50, 3), dropout=0.5)
    dropped.train()
    assert not torch.equal(dropped(X), dropped(X))  # a new mask every call
    dropped.eval()
    assert torch.equal(dropped(X), dropped(X))
    dropped.layers[2].p = 0.0  # the Dropout module: evaluation == no dropout at all
    dropped.train()
    assert torch.equal(dropped(X), dropped.eval()(X))

    batch = mlp3.MLP((6, 10, 3), norm="batch")
    norm_layer = batch.layers[1]
    batch.train()
    batch(X * 3 + 1)
    assert not torch.equal(norm_layer.running_mean, torch.zeros(10))  # updated
    batch.eval()
    frozen = norm_layer.running_mean.clone()
    alone = batch(X[:1])  # evaluation: running statistics, a batch of one is fine
    assert torch.equal(norm_layer.running_mean, frozen)
    assert_close(alone, batch(X)[:1], tolerance(torch.float32))
    batch.train()
    with pytest.raises(ValueError, match="more than 1 value"):
        batch(X[:1])  # training: one sample has no batch variance

    layer = mlp3.MLP((6, 10, 3), norm="layer")
    assert torch.equal(layer.train()(X), layer.eval()(X))  # per-sample statistics
    assert_close(layer.eval()(X[:1]), layer(X)[:1], tolerance(torch.float32))


def test_images_are_flattened():
    X, _ = _data(n=5, d=64, dtype=torch.float32)
    model = mlp3.MLP((64, 20, 10)).eval()
    assert torch.equal(model(X.reshape(5, 1, 8, 8)), model(X))


def test_deep_sigmoid_gradients_vanish_relu_gradients_do_not():
    X, y = _data(n=128, d=20, k=5, dtype=torch.float32)
    sigmoid = train3.gradient_flow(X, y, activation="sigmoid", n_classes=5)
    relu = train3.gradient_flow(X, y, activation="relu", n_classes=5)
    assert list(relu) == [f"W{l}" for l in range(1, 12)]
    assert train3.first_to_last_gradient_ratio(sigmoid) < 1e-4
    assert train3.first_to_last_gradient_ratio(relu) > 0.05


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(N, 4\)"):
        mlp3.MLP((4, 3))(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="unknown activation"):
        mlp3.MLP((4, 3), activation="swish")
    with pytest.raises(ValueError, match="unknown norm"):
        mlp3.MLP((4, 3), norm="group")
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        mlp3.MLP((4, 3), dropout=1.0)
    with pytest.raises(ValueError, match="at least an input and an output"):
        mlp3.MLP((4,))
    with pytest.raises(ValueError, match="unknown optimizer"):
        train3.make_optimizer(mlp3.MLP((4, 3)), "lbfgs", lr=0.1)
    with pytest.raises(ValueError, match="comma-separated"):
        train3.parse_hidden("800;800")


# --------------------------------------------------------------------------------------
# Cross-level: L1 (NumPy) == L2 (low-level torch) == L3 (nn.Module) on the same weights
# --------------------------------------------------------------------------------------

SIZES = (6, 9, 7, 3)


def _l1():
    return import_lesson("02_MLP.numpy.mlp_numpy")


def _three_levels(activation: str, batchnorm: bool):
    """The same float64 network at L1, L2 and L3: L1 draws it, L2 and L3 copy its weights.

    L1's Sequential, L2's dict and L3's parameters list the tensors in the same order
    (W, b, [gamma, beta] per layer); W is (in, out) at L1 and L2, (out, in) at L3.
    """
    l1 = _l1().build_mlp(SIZES, activation=activation, batchnorm=batchnorm, rng=7,
                         dtype=np.float64)
    for p in l1.params.values():  # non-trivial biases, gammas and betas (in place)
        if p.ndim == 1:
            p += np.random.default_rng(p.size).uniform(-0.5, 0.5, p.shape)
    l2 = {name: torch.tensor(value, requires_grad=True)
          for name, value in zip(mlp2.init_mlp(SIZES, batchnorm=batchnorm), l1.params.values())}
    l3 = mlp3.MLP(SIZES, activation=activation, norm="batch" if batchnorm else None).double()
    with torch.no_grad():
        for p, value in zip(l3.parameters(), l1.params.values()):
            p.copy_(torch.from_numpy(value.T if value.ndim == 2 else value))
    return l1, l2, l3


def _run_three_levels(activation: str, batchnorm: bool, training: bool, X, y):
    """Logits, loss and parameter gradients at each level (gradients in L1's layout)."""
    l1, l2, l3 = _three_levels(activation, batchnorm)
    l1.train(training)
    loss_fn = _l1().SoftmaxCrossEntropy()
    logits1 = l1.forward(X.numpy())
    loss1 = loss_fn.forward(logits1, y.numpy())
    l1.backward(loss_fn.backward())
    grads1 = [g.copy() for g in l1.grads.values()]

    bn_state = mlp2.init_bn_state(l2)
    logits2 = mlp2.mlp_forward(l2, X, activation=activation, training=training,
                               bn_state=bn_state)
    loss2 = mlp2.cross_entropy(logits2, y)
    grads2 = torch.autograd.grad(loss2, list(l2.values()))

    l3.train(training)
    logits3 = l3(X)
    loss3 = F.cross_entropy(logits3, y)
    grads3 = [g.T if g.ndim == 2 else g for g in torch.autograd.grad(loss3, list(l3.parameters()))]
    stats = {
        "L1": [a for layer in l1 if hasattr(layer, "running_mean")
               for a in (layer.running_mean, layer.running_var)],
        "L2": list(bn_state.values()),  # running_mean1, running_var1, running_mean2, ...
        "L3": [b for name, b in l3.named_buffers() if "running" in name],
    }
    return {"L1": (logits1, loss1, grads1), "L2": (logits2, loss2, grads2),
            "L3": (logits3, loss3, grads3)}, list(l1.params), stats


@pytest.mark.parametrize("activation, batchnorm, training", [
    ("relu", False, False), ("tanh", False, False), ("sigmoid", False, False),
    ("gelu", False, False), ("relu", True, False), ("relu", True, True),
    ("tanh", True, True),
])
def test_same_weights_same_logits_loss_and_gradients_at_every_level(activation, batchnorm,
                                                                     training):
    X, y = _data(n=10, d=SIZES[0], k=SIZES[-1], seed=3)
    results, names, stats = _run_three_levels(activation, batchnorm, training, X, y)
    logits1, loss1, grads1 = results["L1"]
    for level in ("L2", "L3"):
        logits, loss, grads = results[level]
        assert_close(logits, logits1, FLOAT64, name=f"{level} logits vs L1")
        assert math.isclose(loss.item(), loss1, rel_tol=1e-12), f"{level} loss vs L1"
        for name, g, g1 in zip(names, grads, grads1):
            assert_close(g, g1, FLOAT64, name=f"{level} dJ/d[{name}] vs L1")
        for s, s1 in zip(stats[level], stats["L1"], strict=True):
            assert_close(s, s1, FLOAT64, name=f"{level} running statistics vs L1")
    assert len(stats["L1"]) == (4 if batchnorm else 0)


def test_sgd_with_momentum_takes_the_same_steps_at_every_level():
    """Five full-batch steps: L1's SGD class, L2's sgd_step, L3's torch.optim.SGD."""
    X, y = _data(n=20, d=SIZES[0], k=SIZES[-1], seed=4)
    l1, l2, l3 = _three_levels("tanh", batchnorm=False)
    settings = {"momentum": 0.9, "weight_decay": 0.01}
    loss_fn = _l1().SoftmaxCrossEntropy()
    optimizer1 = _l1().SGD(l1, 0.1, **settings)
    optimizer3 = torch.optim.SGD(l3.parameters(), lr=0.1, **settings)
    state = None
    for _ in range(5):
        loss_fn.forward(l1.forward(X.numpy()), y.numpy())
        l1.backward(loss_fn.backward())
        optimizer1.step()
        mlp2.zero_grad(list(l2.values()))
        mlp2.cross_entropy(mlp2.mlp_forward(l2, X, activation="tanh"), y).backward()
        state = mlp2.sgd_step(list(l2.values()), 0.1, state=state, **settings)
        optimizer3.zero_grad()
        F.cross_entropy(l3(X), y).backward()
        optimizer3.step()
    for (name, p1), p2, p3 in zip(l1.params.items(), l2.values(), l3.parameters()):
        assert_close(p2, p1, FLOAT64, name=f"L2 {name} after 5 steps")
        assert_close(p3.T if p3.ndim == 2 else p3, p1, FLOAT64, name=f"L3 {name} after 5 steps")


def test_l2_and_l3_draw_the_same_initial_weights_from_the_same_seed():
    for activation in ("relu", "tanh"):
        l2 = mlp2.init_mlp((20, 16, 12, 4), activation=activation, seed=11)
        l3 = mlp3.MLP((20, 16, 12, 4), activation=activation)
        l3.reset_parameters(generator=torch.Generator().manual_seed(11))
        for p2, p3 in zip(l2.values(), l3.parameters()):
            assert torch.equal(p2.detach(), p3.detach().T if p3.ndim == 2 else p3.detach())


# --------------------------------------------------------------------------------------
# The script on its default (offline) data
# --------------------------------------------------------------------------------------


def test_predict_is_deterministic_eval_mode_and_leaves_the_running_statistics():
    generator = torch.Generator().manual_seed(50)
    X = 2 + 3 * torch.randn(40, 6, generator=generator)
    y = torch.arange(40) % 3
    model = mlp3.MLP((6, 16, 16, 3), dropout=0.5, norm="batch")
    train3.train(model, X.numpy(), y.numpy(), epochs=2, batch_size=10)  # stats move off 0, 1
    model.train()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    stats = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in norms]
    predictions = mlp3.predict(model, X, batch_size=16)
    assert model.training, "predict restores the mode it found"
    assert torch.equal(mlp3.predict(model, X), predictions)  # no dropout noise
    for bn, (mean, var) in zip(norms, stats):
        assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert torch.equal(mlp3.predict(model, X[:3]), predictions[:3])  # batch-independent
    model.eval()
    with torch.no_grad():
        assert torch.equal(predictions, model(X).argmax(dim=1))


def test_training_visits_the_data_in_a_new_seeded_order_every_epoch():
    X = torch.randn(20, 4, generator=torch.Generator().manual_seed(51)).numpy()
    y = np.arange(20) % 2
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}  # column 0 identifies the row
    orders = []
    for seed in (0, 0, 1):
        model = mlp3.MLP((4, 8, 2))
        batches: list[list[int]] = []

        def record(module, inputs, batches=batches):
            if module.training:
                batches.append([row_of[float(v)] for v in inputs[0][:, 0]])

        model.register_forward_pre_hook(record)
        train3.train(model, X, y, epochs=3, batch_size=5, seed=seed)
        assert [len(b) for b in batches] == [5] * 12, "4 batches of 5 in each of 3 epochs"
        epochs = [sum(batches[4 * e:4 * e + 4], []) for e in range(3)]
        for order in epochs:
            assert sorted(order) == list(range(20)), "each epoch visits every row once"
        assert epochs[0] != list(range(20)), "the first epoch is shuffled too"
        assert epochs[0] != epochs[1] != epochs[2], "a new order every epoch"
        orders.append(epochs)
    assert orders[0] == orders[1], "the same seed gives the same batches"
    assert orders[0] != orders[2], "another seed gives other batches"


@pytest.mark.parametrize("dataset, options", [
    ("digits", ["--epochs", "2", "--hidden", "32"]),
    ("moons", ["--epochs", "3", "--optimizer", "adam", "--norm", "layer", "--dropout", "0.1",
               "--hidden", "16,16", "--activation", "tanh"]),
])
def test_script_runs_a_few_epochs(tmp_path, dataset, options):
    metrics = train3.main(["--dataset", dataset, "--out", str(tmp_path), "--no-progress",
                         "--device", "cpu", *options])
    classes = 10 if dataset == "digits" else 2
    # better than the trivial model: the uniform prediction has loss log K, accuracy ~1/K
    assert 0 < metrics["final_loss"] < 0.8 * math.log(classes)
    assert min(metrics["train_accuracy"], metrics["test_accuracy"]) > 1.5 / classes
    assert metrics["grad_ratio_sigmoid"] < 1e-3 < 0.05 < metrics["grad_ratio_relu"]
    picture = "decision_boundary.png" if dataset == "moons" else "confusion.png"
    for name in ("loss.png", picture, "gradient_flow_sigmoid.png", "mlp.pt"):
        assert (tmp_path / name).is_file(), name


@pytest.mark.parametrize("options, option", [
    (["--hidden", "abc"], "--hidden"),
    (["--hidden", "64,-1"], "--hidden"),
    (["--dropout", "1"], "--dropout"),
    (["--momentum", "-0.1"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "-0.1"], "--lr"),
])
def test_script_rejects_bad_options_naming_them(tmp_path, capsys, options, option):
    with pytest.raises(SystemExit) as exit_info:
        train3.main(["--out", str(tmp_path), "--no-progress", "--device", "cpu", *options])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_script_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train3.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default: None" not in text and "per dataset:" in text


def test_script_reports_a_missing_dataset_cleanly(tmp_path):
    with pytest.raises(SystemExit, match="error: the data root"):
        train3.main(["--dataset", "mnist", "--data-root", str(tmp_path / "empty"), "--out",
                   str(tmp_path), "--no-progress", "--device", "cpu"])


@pytest.mark.slow
def test_784_800_10_reaches_98_percent_on_real_mnist(tmp_path, shared_data):
    metrics = train3.main(["--dataset", "mnist", "--data-root", str(shared_data), "--out",
                         str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= 0.98


@pytest.mark.slow
def test_script_trains_under_torchrun_with_two_processes(tmp_path):
    """`torchrun --nproc_per_node 2` runs the same script with DDP (gloo on the CPU)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(Path(train3.__file__)), "--dataset", "digits", "--no-progress",
           "--device", "cpu", "--batch-size", "16", "--out", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "(2 processes)" in result.stdout
    line = next(s for s in result.stdout.splitlines() if "test accuracy" in s)
    assert float(line.split("test accuracy")[1].split(",")[0]) >= 0.95
    assert (tmp_path / "confusion.png").is_file()
