"""Tests of lesson 03, Level 3 (LeNet-5 as in LeCun et al. 1998), and L1 == L2 == L3.

The paper's network, ``LeNet5``:
- exactly 60,000 trainable parameters, and per layer C1 156, S2 12, C3 1,516, S4 32,
  C5 48,120, F6 10,164, output 0 (the RBF codes are fixed buffers)
- C3's connections equal Table I of the paper, written here independently as the
  paper prints it (a grid of X); the missing kernels are structural zeros: the S2 maps
  they stand for have no effect on the C3 map, get no gradient, and stay zero in training
- the scaled tanh: f(1) = 1.7159 tanh(2/3), f(+-1) = +-1 to 1e-5, |f''| largest near +-1
- S2 / S4 equal a hand computation; the RBF penalties and the MAP loss (eq. 9) equal
  their formulas; the whole forward pass equals an independent functional rewrite
- overfits one small batch; checkpoint round trip; torch.manual_seed determinism

The modern variant, ``LeNet5Modern``: 61,706 parameters counted by hand; equals an
nn.Sequential holding the same weights (logits and gradients), for 32x32 and for
28x28 inputs with padding 2.

Cross-level: the NumPy LeNet5 (L1), the low-level LeNet5 (L2) and LeNet5Modern (L3)
holding the same weights give the same logits, loss and every gradient (float64, 1e-10).

Run: .venv/bin/python -m pytest 03_CNN_LeNet/paper -q
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import import_lesson
from utils.data_loaders import load_images
from utils.testing import FLOAT64, assert_close, assert_level_purity, tolerance
from utils.training_utils import load_checkpoint, save_checkpoint

paper = import_lesson("03_CNN_LeNet.paper.lenet_paper")
script = import_lesson("03_CNN_LeNet.paper.train")
low = import_lesson("03_CNN_LeNet.pytorch_lowlevel.lenet_lowlevel")

# Table I of the paper, as printed: rows are S2 maps 0-5, columns C3 maps 0-15; an X
# means the C3 map takes that S2 map as input. Every column is 3 characters wide.
TABLE_I = """
      0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
0     X           X  X  X        X  X  X  X     X  X
1     X  X           X  X  X        X  X  X  X     X
2     X  X  X           X  X  X        X     X  X  X
3        X  X  X        X  X  X  X        X     X  X
4           X  X  X        X  X  X  X     X  X     X
5              X  X  X        X  X  X  X     X  X  X
"""


def _table_i_mask() -> torch.Tensor:
    """(16, 6) bool: [o, c] = C3 map o reads S2 map c, read off the grid above."""
    rows = [line for line in TABLE_I.splitlines() if line.strip()][1:]
    mask = torch.zeros(16, 6, dtype=torch.bool)
    for c, line in enumerate(rows):
        assert line[:4].strip() == str(c)
        cells = line[4:].ljust(3 * 16)
        for o in range(16):
            mask[o, c] = cells[3 * o:3 * o + 3].strip() == "X"
    return mask


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread


@pytest.fixture(autouse=True, scope="module")
def _no_tf32():
    """No TF32 on a GPU: cuDNN convolutions may round float32 inputs to 10-bit mantissas
    by default, far beyond the float32 tolerance of these comparisons."""
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------


def test_paper_lenet5_has_exactly_60000_trainable_parameters():
    model = paper.LeNet5()
    c3_connections = 6 * 3 + 6 * 4 + 3 * 4 + 1 * 6  # Table I: 60 (input map, C3 map) pairs
    expected = {
        "c1": 6 * (5 * 5 + 1),  # 156
        "s2": 6 * 2,  # 12: one coefficient and one bias per map
        "c3": c3_connections * 5 * 5 + 16,  # 1,516
        "s4": 16 * 2,  # 32
        "c5": 120 * (16 * 5 * 5 + 1),  # 48,120
        "f6": 84 * (120 + 1),  # 10,164
        "output": 0,  # fixed RBF codes
    }
    assert expected == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164,
                        "output": 0}
    assert {name: _count(getattr(model, name)) for name in expected} == expected
    assert _count(model) == sum(expected.values()) == 60_000
    # the codes exist, are saved with the model, and are not parameters
    assert model.output.codes.shape == (10, 84) and not model.output.codes.requires_grad
    assert "output.codes" in model.state_dict()
    assert all("codes" not in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("padding, size", [(0, 32), (2, 28)])
def test_modern_variant_parameter_count_by_hand(padding, size):
    model = paper.LeNet5Modern(padding=padding)
    expected = {"c1": 6 * 1 * 25 + 6, "c3": 16 * 6 * 25 + 16, "c5": 400 * 120 + 120,
                "f6": 120 * 84 + 84, "output": 84 * 10 + 10}
    assert {name: _count(getattr(model, name)) for name in expected} == expected
    assert _count(model) == 156 + 2416 + 48120 + 10164 + 850 == 61_706
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 10)


# --------------------------------------------------------------------------------------
# C3 and Table I
# --------------------------------------------------------------------------------------


def test_c3_connection_table_equals_table_i():
    table = _table_i_mask()
    assert int(table.sum()) == 60
    assert table.sum(dim=1).tolist() == [3] * 6 + [4] * 9 + [6]  # inputs per C3 map
    c3 = paper.LeNet5().c3
    assert torch.equal(c3.connection_mask(), table)
    for o, inputs in enumerate(paper.C3_CONNECTIONS):
        assert sorted(inputs) == torch.nonzero(table[o])[:, 0].tolist(), f"C3 map {o}"
    # the dense kernel is zero exactly where Table I has no X
    dense = c3.dense_weight().detach()  # (16, 6, 5, 5)
    assert torch.equal(dense.abs().sum(dim=(2, 3)) > 0, table)


def test_c3_unconnected_maps_have_no_effect_and_get_no_gradient():
    torch.manual_seed(0)
    c3 = paper.LeNet5().c3.double()
    table = _table_i_mask()
    baseline = c3(torch.zeros(1, 6, 14, 14, dtype=torch.float64))  # bias only
    for c in range(6):
        x = torch.zeros(1, 6, 14, 14, dtype=torch.float64)
        x[0, c] = torch.randn(14, 14, dtype=torch.float64)
        changed = (c3(x) - baseline).abs().sum(dim=(0, 2, 3)) > 0  # (16,) which maps moved
        assert torch.equal(changed, table[:, c]), f"S2 map {c}"
    # gradient of each C3 map with respect to each S2 map: zero exactly off the table
    x = torch.randn(1, 6, 14, 14, dtype=torch.float64, requires_grad=True)
    for o in range(16):
        (grad,) = torch.autograd.grad(c3(x)[0, o].sum(), x)
        assert torch.equal(grad[0].abs().sum(dim=(1, 2)) > 0, table[o]), f"C3 map {o}"


def test_c3_gradient_reaches_only_the_tabled_kernels_and_training_keeps_zeros():
    torch.manual_seed(1)
    c3 = paper.LeNet5().c3.double()
    x = torch.randn(2, 6, 14, 14, dtype=torch.float64)
    g = torch.randn(2, 16, 10, 10, dtype=torch.float64)
    (c3(x) * g).sum().backward()
    # reference: an ordinary dense convolution with the same kernel, all 96 kernels free
    dense = c3.dense_weight().detach().clone().requires_grad_(True)
    (F.conv2d(x, dense, c3.bias.detach()) * g).sum().backward()
    table = _table_i_mask()
    assert dense.grad[~table].abs().sum() > 0  # a free kernel there WOULD learn...
    assert_close(c3.weight.grad, dense.grad[c3.out_index, c3.in_index], FLOAT64,
                 name="the 60 kernels' gradient")  # ...but only the tabled ones exist
    optimizer = torch.optim.SGD(c3.parameters(), lr=0.1)
    optimizer.step()
    assert not c3.dense_weight().detach()[~table].any()  # still zero after a step


# --------------------------------------------------------------------------------------
# The paper's constants and layers
# --------------------------------------------------------------------------------------


def test_scaled_tanh_constants():
    f = paper.ScaledTanh()
    assert paper.SQUASH_AMPLITUDE == 1.7159 and paper.SQUASH_SLOPE == 2 / 3
    a = torch.tensor([-1.0, 0.0, 1.0, 50.0], dtype=torch.float64)
    y = f(a)
    assert_close(y[2], 1.7159 * math.tanh(2 / 3), FLOAT64, name="f(1)")
    assert abs(float(y[2]) - 1.0) < 1e-5 and abs(float(y[0]) + 1.0) < 1e-5  # f(+-1) = +-1
    assert float(y[1]) == 0.0 and abs(float(y[3]) - 1.7159) < 1e-12  # odd, asymptote A
    # slope A*S at the origin, and |f''| is largest at a ~ +-1 (Appendix A)
    grid = torch.linspace(0.0, 3.0, 30001, dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(f(grid).sum(), grid, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), grid)
    assert abs(float(d1[0].detach()) - 1.7159 * 2 / 3) < 1e-12
    assert abs(float(grid.detach()[d2.abs().argmax()]) - 1.0) < 0.02


def test_subsampling_equals_a_hand_computation():
    layer = paper.Subsampling(2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -0.5]))
        layer.bias.copy_(torch.tensor([0.5, 1.0]))
    x = torch.arange(2 * 4 * 6, dtype=torch.float64).reshape(1, 2, 4, 6)
    y = layer(x).detach()
    assert y.shape == (1, 2, 2, 3)
    expected = torch.empty(1, 2, 2, 3, dtype=torch.float64)
    for c, (w, b) in enumerate(((2.0, 0.5), (-0.5, 1.0))):
        for i in range(2):
            for j in range(3):
                window = x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                expected[0, c, i, j] = w * float(window.sum()) + b
    assert torch.equal(y, expected)
    # one value spelled out: map 0, window (0, 0) holds 0, 1, 6, 7 -> 2 * 14 + 0.5
    assert float(y[0, 0, 0, 0]) == 28.5


def test_rbf_outputs_and_codes():
    codes = paper.digit_codes()
    assert codes.shape == (10, 84) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert torch.unique(codes, dim=0).shape[0] == 10  # ten different codes
    # the 7x12 glyphs read back from the codes: the top-left corner is background for all
    assert torch.equal(codes.reshape(10, 12, 7)[:, 0, 0], -torch.ones(10))
    rbf = paper.RBFOutput(codes)
    x = torch.randn(3, 84)
    expected = torch.stack([((x[n] - codes[k]) ** 2).sum() for n in range(3) for k in range(10)])
    assert_close(rbf(x), expected.reshape(3, 10), tolerance("float32"), name="RBF penalties")
    assert torch.equal(rbf(codes[[4, 7]]).argmin(1), torch.tensor([4, 7]))  # own code: 0
    random = paper.random_codes(20, seed=3)
    assert random.shape == (20, 84) and torch.unique(random, dim=0).shape[0] == 20
    assert torch.equal(random, paper.random_codes(20, seed=3))
    assert set(random.unique().tolist()) == {-1.0, 1.0}


def test_map_loss_equals_equation_9():
    torch.manual_seed(2)
    penalties = torch.rand(5, 10, dtype=torch.float64) * 20
    targets = torch.tensor([3, 0, 9, 3, 5])
    j = 5.0
    by_hand = torch.stack([penalties[n, targets[n]]
                           + torch.log(math.exp(-j) + torch.exp(-penalties[n]).sum())
                           for n in range(5)]).mean()
    assert_close(paper.MAPLoss(j)(-penalties, targets), by_hand, FLOAT64, name="eq. 9")
    # j -> infinity: the rubbish class vanishes and the criterion is cross-entropy
    assert_close(paper.MAPLoss(1e6)(-penalties, targets), F.cross_entropy(-penalties, targets),
                 FLOAT64, name="eq. 9 without the rubbish class")
    with pytest.raises(ValueError, match=r"scores \(N, K\) and targets \(N,\)"):
        paper.MAPLoss()(penalties, targets[:3])


def test_paper_forward_equals_an_independent_functional_rewrite():
    torch.manual_seed(3)
    model = paper.LeNet5().double()
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    p = dict(model.named_parameters())
    f = lambda a: 1.7159 * torch.tanh(2 * a / 3)  # noqa: E731

    def subsample(a, w, b):  # sum of each 2x2 window, times w, plus b
        return 4 * F.avg_pool2d(a, 2) * w[:, None, None] + b[:, None, None]

    c3_kernel = torch.zeros(16, 6, 5, 5, dtype=torch.float64)
    c3_kernel[_table_i_mask()] = p["c3.weight"]  # row-major over (o, c): the table's order
    h = f(F.conv2d(x, p["c1.weight"], p["c1.bias"]))
    h = f(subsample(h, p["s2.weight"], p["s2.bias"]))
    h = f(F.conv2d(h, c3_kernel, p["c3.bias"]))
    h = f(subsample(h, p["s4.weight"], p["s4.bias"]))
    h = f(F.conv2d(h, p["c5.weight"], p["c5.bias"])).reshape(4, 120)
    h = f(h @ p["f6.weight"].T + p["f6.bias"])
    penalties = torch.cdist(h, model.output.codes.double()) ** 2
    assert_close(model(x), -penalties, FLOAT64, name="scores = -penalties")
    features = model.features(x)
    assert features["c1"].shape == (4, 6, 28, 28) and features["s4"].shape == (4, 16, 5, 5)


def test_initialisation_follows_appendix_a():
    torch.manual_seed(4)
    model = paper.LeNet5()
    for name, fan_in in (("c1.weight", 25), ("c5.weight", 400), ("f6.weight", 120),
                         ("s2.weight", 4)):
        w = model.get_parameter(name).detach()
        bound = 2.4 / fan_in
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) > 0.8 * bound  # it uses the range, not a smaller one
    c3 = model.c3
    for o, inputs in enumerate(paper.C3_CONNECTIONS):  # per-map fan-in: 75, 100 or 150
        kernels = c3.weight.detach()[c3.out_index == o]
        assert float(kernels.abs().max()) <= 2.4 / (len(inputs) * 25)


# --------------------------------------------------------------------------------------
# The modern variant against an nn.Sequential with copied weights
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding, size", [(0, 32), (2, 28)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_modern_variant_equals_nn_sequential_with_copied_weights(padding, size, dtype, device):
    torch.manual_seed(5)
    model = paper.LeNet5Modern(padding=padding).to(dtype=dtype, device=device)
    reference = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ).to(dtype=dtype, device=device)
    pairs = [(model.c1, reference[0]), (model.c3, reference[3]), (model.c5, reference[7]),
             (model.f6, reference[9]), (model.output, reference[11])]
    with torch.no_grad():
        for ours, theirs in pairs:
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    x = torch.randn(6, 1, size, size, dtype=dtype, device=device)
    y = torch.tensor([1, 2, 3, 4, 5, 6], device=device)
    tol = tolerance(dtype, device)
    assert_close(model(x), reference(x), tol, name="logits")
    F.cross_entropy(model(x), y).backward()
    F.cross_entropy(reference(x), y).backward()
    for ours, theirs in pairs:
        assert_close(ours.weight.grad, theirs.weight.grad, tol, name="weight gradient")
        assert_close(ours.bias.grad, theirs.bias.grad, tol, name="bias gradient")


# --------------------------------------------------------------------------------------
# Training behaviour, checkpoints, determinism
# --------------------------------------------------------------------------------------


def _digits(n: int):
    split = load_images("digits", normalize="lecun")  # what the script trains on
    return split.X_train[:n], split.y_train[:n]


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_overfits_one_small_batch(variant):
    X, y = _digits(20)
    torch.manual_seed(0)
    model, loss_fn = paper.build_model(variant)
    history = script.train(model, X, y, loss_fn=loss_fn, lr=5e-3, epochs=60, batch_size=20,
                          schedule="none")
    assert history.train_loss[-1] < 0.05 * history.train_loss[0]
    assert history.train_metric[-1] == 1.0
    assert np.array_equal(paper.predict(model, X), y)


def test_checkpoint_round_trip(tmp_path):
    X, y = _digits(16)
    torch.manual_seed(1)
    model = paper.LeNet5()
    script.train(model, X, y, loss_fn=paper.MAPLoss(), lr=1e-3, epochs=1, batch_size=8)
    save_checkpoint(tmp_path / "lenet5.pt", model, epoch=1)
    restored = paper.LeNet5(codes=paper.random_codes(10))  # other weights AND other codes
    assert not torch.equal(restored.c5.weight, model.c5.weight)
    state = load_checkpoint(tmp_path / "lenet5.pt", restored)
    assert state["epoch"] == 1
    assert torch.equal(restored.output.codes, model.output.codes)  # the codes travel too
    x = torch.as_tensor(X)
    model.eval()
    restored.eval()
    assert torch.equal(restored(x), model(x))


def test_torch_manual_seed_determinism():
    torch.manual_seed(123)
    a = paper.LeNet5()
    torch.manual_seed(123)
    b = paper.LeNet5()
    c = paper.LeNet5()  # the generator has moved on
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.c3.weight, c.c3.weight)
    X, y = _digits(24)
    runs = []
    for _ in range(2):
        torch.manual_seed(9)
        model = paper.LeNet5Modern()
        history = script.train(model, X, y, loss_fn=nn.CrossEntropyLoss(), lr=1e-3, epochs=2,
                              batch_size=8, seed=4)
        runs.append((model, history))
    assert runs[0][1].train_loss == runs[1][1].train_loss
    assert all(torch.equal(p, q) for p, q in zip(runs[0][0].parameters(),
                                                  runs[1][0].parameters()))


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\).*pad 28x28"):
        paper.LeNet5()(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\) for padding=2"):
        paper.LeNet5Modern(padding=2)(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(num_classes, 84\)"):
        paper.LeNet5(codes=torch.ones(10, 80))
    with pytest.raises(ValueError, match="connections must list input maps in 0..5"):
        paper.PartialConv2d(6, 5, [(0, 6)])
    with pytest.raises(ValueError, match="twice"):
        paper.PartialConv2d(6, 5, [(0, 0)])
    with pytest.raises(ValueError, match="variant must be one of"):
        paper.build_model("alexnet")


# --------------------------------------------------------------------------------------
# Cross-level: L1 (NumPy) == L2 (low-level torch) == L3 (LeNet5Modern) on the same weights
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding, size", [(0, 32), (2, 28)])
def test_same_weights_same_logits_and_gradients_at_every_level(padding, size):
    numpy_level = import_lesson("03_CNN_LeNet.numpy.lenet_numpy")
    mlp = import_lesson("02_MLP.numpy.mlp_numpy")
    torch.manual_seed(6)
    l3 = paper.LeNet5Modern(padding=padding).double()
    l2 = low.LeNet5(input_size=size, padding=padding, dtype=torch.float64, seed=11)
    l1 = numpy_level.LeNet5(input_size=size, c1_padding=padding, rng=12, dtype=np.float64)
    # L3's weights everywhere. nn.Linear stores (out, in); L1 and L2 use W (in, out).
    weights = {name: (getattr(l3, name).weight.detach(), getattr(l3, name).bias.detach())
               for name in ("c1", "c3", "c5", "f6", "output")}
    l2_names = {"c1": "conv1", "c3": "conv2", "c5": "fc1", "f6": "fc2", "output": "fc3"}
    for name, (W, b) in weights.items():
        W_in_out = W if name in ("c1", "c3") else W.T
        l2.set_params({f"{l2_names[name]}.W": W_in_out, f"{l2_names[name]}.b": b})
        layer = getattr(l1, name)
        layer.params["W"][...] = W_in_out.numpy()
        layer.params["b"][...] = b.numpy()

    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 1, size, size, generator=g, dtype=torch.float64)
    y = torch.tensor([7, 1, 0, 7, 3])

    logits3 = l3(x)
    loss3 = F.cross_entropy(logits3, y)
    loss3.backward()
    logits2 = l2(x)
    loss2 = low.cross_entropy(logits2, y)
    loss2.backward()
    loss_fn = mlp.SoftmaxCrossEntropy()
    logits1 = l1.forward(x.numpy())
    loss1 = loss_fn.forward(logits1, y.numpy())
    l1.backward(loss_fn.backward())

    assert_close(logits1, logits3, FLOAT64, name="L1 logits vs L3")
    assert_close(logits2, logits3, FLOAT64, name="L2 logits vs L3")
    assert math.isclose(loss1, float(loss3.detach()), rel_tol=1e-12)
    assert math.isclose(float(loss2.detach()), float(loss3.detach()), rel_tol=1e-12)
    for name, l2_name in l2_names.items():
        module = getattr(l3, name)
        dW3 = module.weight.grad if name in ("c1", "c3") else module.weight.grad.T
        layer = getattr(l1, name)
        assert_close(layer.grads["W"], dW3, FLOAT64, name=f"L1 dJ/dW of {name} vs L3")
        assert_close(layer.grads["b"], module.bias.grad, FLOAT64, name=f"L1 dJ/db of {name}")
        assert_close(l2.params[f"{l2_name}.W"].grad, dW3, FLOAT64, name=f"L2 dJ/dW of {name}")
        assert_close(l2.params[f"{l2_name}.b"].grad, module.bias.grad, FLOAT64,
                     name=f"L2 dJ/db of {name}")


# --------------------------------------------------------------------------------------
# The script on its default (offline) data
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_script_on_digits(tmp_path, variant):
    # 4 of the default 8 epochs keep the test fast (about 0.95 then); the tour runs the
    # default and checks its target
    metrics = script.main(["--variant", variant, "--epochs", "4", "--out", str(tmp_path),
                          "--no-progress", "--device", "cpu"])
    assert metrics["test_accuracy"] >= 0.9
    assert metrics["train_accuracy"] >= 0.93
    assert 0 < metrics["final_loss"] < (5.0 if variant == "paper" else 0.3)
    for name in ("loss", "confusion", "c1_filters", "feature_maps_c1", "feature_maps_c3"):
        assert (tmp_path / f"{name}.png").is_file(), name
    assert (tmp_path / "rbf_codes.png").is_file() == (variant == "paper")


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--batch-size", "-1"), ("--lr", "0"), ("--momentum", "1.5"),
    ("--threads", "-2"), ("--lr", "inf")])
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
    assert "per dataset: digits 8, mnist 6" in text  # --epochs


class _RecordingNet(nn.Module):
    """A linear classifier that records which images each training batch holds."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 10)
        self.batches: list[list[int]] = []

    def forward(self, x):
        if self.training:
            self.batches.append(x[:, 0, 0, 0].long().tolist())  # image i is filled with i
        return self.linear(x.flatten(1))


def test_training_shuffles_anew_every_epoch_with_the_seeded_generator():
    n = 20
    X = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 4, 4), np.float32)
    y = np.zeros(n, dtype=np.int64)

    def three_epochs(seed: int) -> list[list[int]]:
        net = _RecordingNet()
        script.train(net, X, y, loss_fn=nn.CrossEntropyLoss(), lr=1e-3, epochs=3,
                    batch_size=6, seed=seed)
        return [sum(net.batches[e * 4:(e + 1) * 4], []) for e in range(3)]

    epochs = three_epochs(0)
    assert all(sorted(order) == list(range(n)) for order in epochs)  # permutations
    assert epochs[0] != list(range(n))  # shuffled
    assert len({tuple(order) for order in epochs}) == 3  # a new order each epoch
    assert three_epochs(0) == epochs and three_epochs(1) != epochs  # the seed decides


def test_predict_runs_in_eval_mode():
    """predict must switch dropout and batch norm to evaluation, whatever mode it gets:
    the same answer twice, the eval-mode answer, and the running statistics untouched."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(1024), nn.Dropout(0.5),
                          nn.Linear(1024, 10)).train()
    X = torch.randn(200, 1, 32, 32)
    statistics = {k: v.clone() for k, v in model.state_dict().items()}
    first, second = paper.predict(model, X), paper.predict(model, X)
    for key, value in model.state_dict().items():
        assert torch.equal(value, statistics[key]), f"predict changed {key}"
    with torch.no_grad():
        expected = model.eval()(X).argmax(1).numpy()
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


@pytest.mark.slow
@pytest.mark.parametrize("variant, target", [("modern", 0.99), ("paper", 0.985)])
def test_lenet5_on_real_mnist(tmp_path, shared_data, variant, target):
    metrics = script.main(["--dataset", "mnist", "--data-root", str(shared_data), "--variant",
                          variant, "--out", str(tmp_path), "--no-progress"])
    assert metrics["test_accuracy"] >= target


@pytest.mark.slow
def test_script_trains_under_torchrun_with_two_processes(tmp_path):
    """`torchrun --nproc_per_node 2` runs the same script with DDP (gloo on the CPU)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(Path(script.__file__)), "--variant", "modern", "--no-progress",
           "--device", "cpu", "--batch-size", "16", "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "x 2 processes" in r.stdout
    line = next(s for s in r.stdout.splitlines() if "test accuracy" in s)
    assert float(line.split("test accuracy")[1].split(",")[0]) >= 0.93
    assert (tmp_path / "confusion.png").is_file()
