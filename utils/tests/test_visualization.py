"""Tests for utils.visualization: check what was drawn, not only that a file appeared.

Each plot is rendered (to tmp_path where saving matters) and its artists are read
back: line data, image arrays, bar heights, text annotations, tick labels, title
colours. The expected values are computed by hand in the test.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from utils import visualization as viz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]


def image_data(ax) -> np.ndarray:
    """The array an Axes' single AxesImage holds."""
    assert len(ax.images) == 1
    return np.asarray(ax.images[0].get_array())


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000  # a real rendering, not an empty header


# --------------------------------------------------------------------------------------
# import hygiene and saving
# --------------------------------------------------------------------------------------


def test_import_pulls_in_neither_torch_nor_pyplot():
    code = ("import sys, utils.visualization; "
            "print('torch' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_save_figure_creates_folders_and_adds_png_suffix(tmp_path):
    fig = viz.plot_curves({"loss": [3.0, 2.0, 1.0]})
    written = viz.save_figure(fig, tmp_path / "a" / "b" / "loss")
    assert written == tmp_path / "a" / "b" / "loss.png"
    assert_png(written)
    with pytest.raises(TypeError, match="matplotlib Figure"):
        viz.save_figure("not a figure", tmp_path / "x.png")


# --------------------------------------------------------------------------------------
# plot_curves
# --------------------------------------------------------------------------------------


def test_plot_curves_draws_each_curve_with_its_label(tmp_path):
    history = {"train loss": [2.0, 1.0, 0.5, 0.25], "val loss": [2.5, 1.5, 0.9, 0.8]}
    path = tmp_path / "runs" / "loss.png"
    fig = viz.plot_curves(history, path=path, title="demo", ylabel="loss")
    assert isinstance(fig, Figure)
    assert_png(path)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, (name, values) in zip(lines, history.items()):
        np.testing.assert_array_equal(line.get_ydata(), values)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(values) + 1))
        assert line.get_label() == name
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(history)
    assert ax.get_yscale() == "linear"
    assert fig.get_suptitle() == "demo"
    assert ax.get_ylabel() == "loss" and ax.get_xlabel() == "epoch"


def test_plot_curves_logy_sets_log_scale():
    fig = viz.plot_curves({"loss": [1.0, 0.1, 0.01]}, logy=True)
    assert fig.axes[0].get_yscale() == "log"


def test_plot_curves_reads_history_objects():
    @dataclasses.dataclass
    class History:
        train_loss: list = dataclasses.field(default_factory=lambda: [1.0, 0.5])
        val_accuracy: list = dataclasses.field(default_factory=lambda: [0.6, 0.8])
        epochs_done: int = 2  # not a curve: skipped
        notes: str = "x"  # not a curve: skipped

    fig = viz.plot_curves(History())
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train_loss", "val_accuracy"]
    np.testing.assert_array_equal(lines[1].get_ydata(), [0.6, 0.8])

    class Plain:
        def __init__(self):
            self.loss = np.array([4.0, 3.0, 2.0])
            self._private = [1.0]
            self.empty = []

    lines = viz.plot_curves(Plain()).axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss"]
    np.testing.assert_array_equal(lines[0].get_ydata(), [4.0, 3.0, 2.0])


def test_plot_curves_rejects_bad_history():
    with pytest.raises(ValueError, match="empty"):
        viz.plot_curves({})
    with pytest.raises(ValueError, match="list of numbers"):
        viz.plot_curves({"loss": 0.5})
    with pytest.raises(ValueError, match="flat list"):
        viz.plot_curves({"loss": [[1.0, 2.0], [3.0, 4.0]]})
    with pytest.raises(ValueError, match="dict"):
        viz.plot_curves(3.0)


# --------------------------------------------------------------------------------------
# plot_image_grid
# --------------------------------------------------------------------------------------


def test_image_grid_scales_each_float_image_and_draws_all(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 4, 6)) * 3 + 1  # (N, H, W), any range
    path = tmp_path / "grid.png"
    fig = viz.plot_image_grid(images, ncols=3, path=path)
    assert_png(path)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5
    for ax, image in zip(drawn, images):
        expected = (image - image.min()) / (image.max() - image.min())
        np.testing.assert_allclose(image_data(ax), expected, rtol=1e-12, atol=1e-12)
    # a constant image becomes zeros instead of dividing by zero
    fig = viz.plot_image_grid(np.full((1, 3, 3), 7.0))
    np.testing.assert_array_equal(image_data(fig.axes[0]), np.zeros((3, 3)))


def test_image_grid_keeps_uint8_and_caps_count():
    images = np.arange(10 * 2 * 2, dtype=np.uint8).reshape(10, 2, 2, 1)  # (N, H, W, 1)
    fig = viz.plot_image_grid(images, max_images=4)
    assert sum(len(ax.images) for ax in fig.axes) == 4
    np.testing.assert_array_equal(image_data(fig.axes[3]), images[3, :, :, 0])


def test_image_grid_transposes_channels_first():
    images = np.zeros((2, 3, 4, 5))  # (N, C, H, W)
    images[1, 0, 2, 3] = 1.0  # red at row 2, column 3 of the second image
    images[1, 2, 0, 4] = 0.5  # half blue at row 0, column 4
    fig = viz.plot_image_grid(images)
    pixels = image_data(fig.axes[1])
    assert pixels.shape == (4, 5, 3)
    np.testing.assert_array_equal(pixels[2, 3], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(pixels[0, 4], [0.0, 0.0, 0.5])
    np.testing.assert_array_equal(pixels, images[1].transpose(1, 2, 0))


def test_image_grid_titles_and_wrong_predictions_in_red():
    images = np.random.default_rng(1).random((3, 4, 4))
    fig = viz.plot_image_grid(images, labels=[0, 1, 2], predictions=[0, 2, 2],
                              class_names=["cat", "dog", "owl"])
    titles = [ax.title for ax in fig.axes]
    assert [t.get_text() for t in titles] == ["cat\npred cat", "dog\npred owl", "owl\npred owl"]
    assert to_rgba(titles[1].get_color()) == to_rgba("red")
    assert to_rgba(titles[0].get_color()) != to_rgba("red")
    assert to_rgba(titles[2].get_color()) != to_rgba("red")


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        viz.plot_image_grid(np.zeros((2, 8, 8, 5)))
    with pytest.raises(ValueError, match=r"one per image \(3\), got 2"):
        viz.plot_image_grid(np.zeros((3, 8, 8)), labels=[1, 2])
    with pytest.raises(ValueError, match="reshape"):
        viz.plot_image_grid(np.zeros((3, 64)))
    with pytest.raises(ValueError, match="not an index into class_names"):
        viz.plot_image_grid(np.zeros((1, 8, 8)), labels=[5], class_names=["a", "b"])


# --------------------------------------------------------------------------------------
# plot_confusion_matrix
# --------------------------------------------------------------------------------------


def test_confusion_matrix_counts_match_hand_computed(tmp_path):
    y_true = [0, 0, 1, 1, 1, 2, 2, 0]
    y_pred = [0, 1, 1, 1, 2, 2, 0, 0]
    expected = np.array([[2, 1, 0],
                         [0, 2, 1],
                         [1, 0, 1]])
    path = tmp_path / "cm.png"
    fig, matrix = viz.plot_confusion_matrix(y_true, y_pred, class_names=["a", "b", "c"],
                                            path=path)
    assert_png(path)
    np.testing.assert_array_equal(matrix, expected)
    ax = fig.axes[0]
    np.testing.assert_array_equal(image_data(ax), expected)
    shown = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert shown == {(i, j): str(expected[i, j]) for i in range(3) for j in range(3)}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_confusion_matrix_normalize_rows():
    y_true = np.array([0, 0, 0, 0, 1, 1, 3])  # class 2 never occurs: its row stays 0
    y_pred = np.array([0, 0, 0, 1, 1, 0, 3])
    fig, matrix = viz.plot_confusion_matrix(y_true, y_pred, normalize=True)
    expected = np.array([[0.75, 0.25, 0, 0],
                         [0.5, 0.5, 0, 0],
                         [0, 0, 0, 0],
                         [0, 0, 0, 1.0]])
    np.testing.assert_allclose(matrix, expected)
    np.testing.assert_allclose(matrix.sum(axis=1), [1, 1, 0, 1])
    assert "0.75" in [t.get_text() for t in fig.axes[0].texts]


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        viz.plot_confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="only 2 names"):
        viz.plot_confusion_matrix([0, 2], [0, 1], class_names=["a", "b"])
    with pytest.raises(ValueError, match="argmax"):
        viz.plot_confusion_matrix([0, 1], np.eye(2))
    with pytest.raises(ValueError, match="whole numbers"):
        viz.plot_confusion_matrix([0.5, 1.0], [0, 1])


# --------------------------------------------------------------------------------------
# plot_decision_boundary
# --------------------------------------------------------------------------------------


def two_blobs():
    X = np.array([[-2.0, 0.0], [-1.0, 1.0], [-1.5, -1.0], [1.0, 0.5], [2.0, -0.5], [1.5, 1.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    return X, y


def test_decision_boundary_grid_predictions_equal_the_rule(tmp_path):
    X, y = two_blobs()
    seen = []

    def predict(points):
        seen.append(points)
        return (points[:, 0] > 0).astype(int)  # the rule: x0 > 0 -> class 1

    path = tmp_path / "boundary.png"
    fig = viz.plot_decision_boundary(predict, X, y, resolution=30, padding=0.5, path=path)
    assert_png(path)
    (points,) = seen  # one call for the whole grid
    assert points.shape == (900, 2) and points.dtype == np.float64
    grid = fig.decision_grid
    assert grid.xx.shape == grid.labels.shape == (30, 30)
    np.testing.assert_allclose(grid.xx[0, [0, -1]], [-2.5, 2.5])
    np.testing.assert_allclose(grid.yy[[0, -1], 0], [-1.5, 1.5])
    np.testing.assert_array_equal(grid.labels, (grid.xx > 0).astype(int))
    scatters = [c for c in fig.axes[0].collections if type(c) is PathCollection]
    assert len(scatters) == 1
    np.testing.assert_array_equal(scatters[0].get_offsets(), X)


def test_decision_boundary_reads_probabilities_and_scores():
    X, y = two_blobs()
    fig = viz.plot_decision_boundary(lambda p: 1 / (1 + np.exp(-3 * p[:, 0])), X, y,
                                     resolution=20)
    grid = fig.decision_grid
    np.testing.assert_array_equal(grid.labels, (grid.xx > 0).astype(int))
    # (M, 3) scores: argmax; the class with the largest x1 * weight wins
    scores = lambda p: np.stack([-p[:, 1], np.zeros(len(p)), p[:, 1]], axis=1)
    grid = viz.plot_decision_boundary(scores, X, np.array([0, 1, 2, 2, 1, 0]),
                                      resolution=21).decision_grid
    expected = np.where(grid.yy > 0, 2, np.where(grid.yy < 0, 0, 1))
    expected[np.isclose(grid.yy, 0)] = 0  # ties go to the first maximum
    np.testing.assert_array_equal(grid.labels, expected)
    # -1/+1 labels (perceptron convention) are fine
    grid = viz.plot_decision_boundary(lambda p: np.sign(p[:, 0]) + (p[:, 0] == 0), X,
                                      2 * y - 1, resolution=10).decision_grid
    np.testing.assert_array_equal(grid.labels, np.where(grid.xx >= 0, 1, -1))


def test_decision_boundary_rejects_bad_input():
    X, y = two_blobs()
    with pytest.raises(ValueError, match=r"2-D inputs.*\(N, 2\)"):
        viz.plot_decision_boundary(lambda p: p[:, 0] > 0, np.zeros((4, 2, 1)), y[:4])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.plot_decision_boundary(lambda p: p[:, 0] > 0, np.zeros((4, 3)), y[:4])
    with pytest.raises(ValueError, match="one label per point"):
        viz.plot_decision_boundary(lambda p: p[:, 0] > 0, X, y[:4])
    with pytest.raises(ValueError, match="logits"):
        viz.plot_decision_boundary(lambda p: 3.7 * p[:, 0], X, y)
    with pytest.raises(ValueError, match="must return"):
        viz.plot_decision_boundary(lambda p: p[:5, 0] > 0, X, y)


# --------------------------------------------------------------------------------------
# feature maps and attention
# --------------------------------------------------------------------------------------


def test_feature_maps_show_each_channel():
    maps = np.random.default_rng(2).normal(size=(1, 20, 5, 6))  # (1, C, H, W)
    fig = viz.plot_feature_maps(maps, max_maps=12, ncols=5)
    assert len(fig.axes) == 12
    for c, ax in enumerate(fig.axes):
        np.testing.assert_array_equal(image_data(ax), maps[0, c])
    assert len(viz.plot_feature_maps(maps[0, :3]).axes) == 3
    with pytest.raises(ValueError, match=r"maps\[0\]"):
        viz.plot_feature_maps(np.zeros((2, 3, 4, 4)))


def test_attention_single_head_with_tokens(tmp_path):
    logits = np.random.default_rng(3).normal(size=(3, 4))
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # (T_q, T_k)
    path = tmp_path / "attn.png"
    fig = viz.plot_attention(weights, x_tokens=["the", "cat", "sat", "."],
                             y_tokens=["a", "b", "c"], path=path)
    assert_png(path)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 1
    np.testing.assert_array_equal(image_data(panels[0]), weights)
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["the", "cat", "sat", "."]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["a", "b", "c"]


def test_attention_one_panel_per_head():
    weights = np.random.default_rng(4).random((6, 5, 5))  # (H, T, T)
    fig = viz.plot_attention(weights)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    for h, ax in enumerate(panels):
        np.testing.assert_array_equal(image_data(ax), weights[h])
        assert ax.get_title() == f"head {h}"
    with pytest.raises(ValueError, match="T_k"):
        viz.plot_attention(weights[0], x_tokens=["a", "b"])


# --------------------------------------------------------------------------------------
# plot_gradient_flow
# --------------------------------------------------------------------------------------


def bars(fig, label):
    """Heights of the bar container with this legend label."""
    (container,) = [c for c in fig.axes[0].containers if c.get_label() == label]
    return np.array([patch.get_height() for patch in container.patches])


def test_gradient_flow_bar_heights_from_pairs(tmp_path):
    grads = [("layer1.weight", np.array([[1.0, -3.0], [0.5, 0.5]])),
             ("layer1.bias", np.array([-0.2, 0.1])),
             ("layer2.weight", np.zeros((2, 2)))]  # a dead layer: red name
    path = tmp_path / "grads.png"
    fig = viz.plot_gradient_flow(grads, path=path)
    assert_png(path)
    np.testing.assert_allclose(bars(fig, "mean |grad|"), [5.0 / 4, 0.15, 0.0])
    np.testing.assert_allclose(bars(fig, "max |grad|"), [3.0, 0.2, 0.0])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    ticks = ax.get_xticklabels()
    assert [t.get_text() for t in ticks] == ["layer1.weight", "layer1.bias", "layer2.weight"]
    assert to_rgba(ticks[2].get_color()) == to_rgba("red")
    assert to_rgba(ticks[0].get_color()) != to_rgba("red")


def test_gradient_flow_duck_typed_model_skips_missing_grads():
    class Param:
        def __init__(self, grad):
            self.grad = grad

    class TinyModel:
        def named_parameters(self):
            yield "w", Param(np.array([2.0, -4.0]))
            yield "unused", Param(None)
            yield "b", Param(np.array([-1.0]))

    fig = viz.plot_gradient_flow(TinyModel())
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["w", "b"]
    np.testing.assert_allclose(bars(fig, "mean |grad|"), [3.0, 1.0])
    np.testing.assert_allclose(bars(fig, "max |grad|"), [4.0, 1.0])
    with pytest.raises(ValueError, match="backward"):
        viz.plot_gradient_flow([("w", None)])


def test_gradient_flow_with_a_torch_module():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    layer(torch.randn(4, 3)).pow(2).sum().backward()
    fig = viz.plot_gradient_flow(layer)
    weight_grad = layer.weight.grad.numpy()
    bias_grad = layer.bias.grad.numpy()
    np.testing.assert_allclose(bars(fig, "mean |grad|"),
                               [np.abs(weight_grad).mean(), np.abs(bias_grad).mean()],
                               rtol=1e-6)
    np.testing.assert_allclose(bars(fig, "max |grad|"),
                               [np.abs(weight_grad).max(), np.abs(bias_grad).max()], rtol=1e-6)


def test_tensors_that_require_grad_are_accepted():
    torch = pytest.importorskip("torch")
    weights = torch.rand(2, 3, requires_grad=True)
    fig = viz.plot_attention(weights * 1.0)  # a non-leaf tensor in the graph
    np.testing.assert_allclose(image_data(fig.axes[0]), weights.detach().numpy())
    losses = [torch.tensor(1.5, requires_grad=True) * 2, torch.tensor(0.5)]
    line = viz.plot_curves({"loss": losses}).axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [3.0, 0.5])


# --------------------------------------------------------------------------------------
# plot_weights
# --------------------------------------------------------------------------------------


def test_weights_columns_become_images(tmp_path):
    W = np.random.default_rng(5).normal(size=(12, 5))  # (D, K) with D = 3 * 4
    path = tmp_path / "w.png"
    fig = viz.plot_weights(W, image_shape=(3, 4), ncols=3, path=path)
    assert_png(path)
    assert len(fig.axes) == 5
    for k, ax in enumerate(fig.axes):
        np.testing.assert_array_equal(image_data(ax), W[:, k].reshape(3, 4))
        limit = np.abs(W[:, k]).max()  # symmetric colour range around 0
        assert ax.images[0].get_clim() == pytest.approx((-limit, limit))
    # (K, D), as nn.Linear stores it, gives the same images
    fig_rows = viz.plot_weights(W.T, image_shape=(3, 4), class_names=list("abcde"))
    for k, ax in enumerate(fig_rows.axes):
        np.testing.assert_array_equal(image_data(ax), W[:, k].reshape(3, 4))
    assert [ax.get_title() for ax in fig_rows.axes] == list("abcde")


def test_weights_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"prod\(image_shape\)"):
        viz.plot_weights(np.zeros((10, 5)), image_shape=(3, 4))
    with pytest.raises(ValueError, match="2-D weight matrix"):
        viz.plot_weights(np.zeros(12), image_shape=(3, 4))
