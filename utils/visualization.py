"""Plots every lesson draws: learning curves, image grids, confusion matrices,
decision boundaries, feature maps, attention maps, gradient flow, weight templates.

Why a module of its own: every level of every model wants the same pictures, and
a learner comparing the NumPy and the PyTorch version of a model should see them
drawn the same way. Each function

- takes NumPy arrays, or anything ``np.asarray`` converts. A torch tensor works
  too, even one on the GPU or one that requires grad: when an object has
  ``.detach()`` / ``.cpu()`` we call them (duck typing), so this module never
  imports torch and the L1 NumPy scripts can use it;
- builds a ``matplotlib.figure.Figure`` directly instead of going through
  ``pyplot``. That needs no GUI and touches no global state: nothing opens a
  window, nothing changes the backend a learner chose in a notebook, and there
  are no open figures to close (a Figure is freed like any Python object);
- saves a PNG when ``path`` is given (parent folders are created) and returns
  the Figure, so a test can check what was drawn, not just that a file exists.

Typical use at the end of a training script::

    from utils.visualization import plot_curves, plot_confusion_matrix
    plot_curves({"train loss": train_losses, "val loss": val_losses},
                path=out / "loss.png", title="MLP on digits", ylabel="cross-entropy")
    fig, cm = plot_confusion_matrix(y_val, y_hat, path=out / "confusion.png")

To look at a figure in a notebook, just leave it as the last expression of a
cell (Jupyter shows a Figure's PNG), or call ``fig.savefig(...)`` yourself.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = [
    "DecisionGrid",
    "plot_attention",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_decision_boundary",
    "plot_feature_maps",
    "plot_gradient_flow",
    "plot_image_grid",
    "plot_weights",
    "save_figure",
]

PathLike = str | os.PathLike
SAVE_DPI = 100
WRONG_COLOR = "red"  # title colour of a misclassified image
RIGHT_COLOR = "green"  # title colour of a correctly classified image
MAX_ANNOTATED_CLASSES = 30  # above this a confusion matrix gets no per-cell numbers


# --------------------------------------------------------------------------------------
# Input handling shared by every plot
# --------------------------------------------------------------------------------------


def _as_array(x: Any, name: str) -> np.ndarray:
    """Convert ``x`` (ndarray, list, torch tensor, ...) to a NumPy array without importing torch.

    Inputs:  x - anything ``np.asarray`` accepts, or a tensor-like object with
                 ``.detach()`` / ``.cpu()`` (a torch tensor on any device, with or without grad)
             name - the argument's name, used in the error message
    Returns: np.ndarray with x's values (dtype as NumPy infers it)
    """
    if callable(getattr(x, "detach", None)):
        x = x.detach()  # a tensor that requires grad refuses np.asarray
    if callable(getattr(x, "cpu", None)):
        x = x.cpu()  # a CUDA tensor has to come to host memory first
    if str(getattr(x, "dtype", "")) == "torch.bfloat16" and callable(getattr(x, "float", None)):
        x = x.float()  # NumPy has no bfloat16
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as err:  # RuntimeError: a list of grad tensors
        raise ValueError(
            f"{name}: expected an array (NumPy array, list of numbers or tensor), "
            f"got {type(x).__name__} that NumPy cannot convert ({err})"
        ) from err


def _as_numeric(x: Any, name: str) -> np.ndarray:
    """Like `_as_array`, but insist on real numbers (bool, int or float dtype)."""
    arr = _as_array(x, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
    return arr


def _as_int_labels(x: Any, name: str) -> np.ndarray:
    """Class labels as a 1-D int64 array; floats are accepted when they are whole numbers.

    Inputs:  x - (N,) labels, any integer/bool dtype, or floats like 3.0
    Returns: (N,) int64
    """
    arr = _as_numeric(x, name)
    if arr.ndim != 1:
        hint = " (for scores of shape (N, C) pass scores.argmax(1))" if arr.ndim == 2 else ""
        raise ValueError(f"{name}: expected a 1-D array of class labels, got shape "
                         f"{arr.shape}{hint}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: class labels must be whole numbers, got floats like "
                             f"{arr[arr != np.round(arr)][:3]}")
    return arr.astype(np.int64)


def _check_positive_int(value: int, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _finish(fig: Figure, path: PathLike | None, title: str | None) -> Figure:
    """Add the figure title, save when a path is given, and return the figure."""
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig: Figure, path: PathLike) -> Path:
    """Save ``fig`` as an image at ``path`` (PNG unless the suffix says otherwise).

    Parent folders are created. Saved at 100 dpi with a tight bounding box, so
    no title or tick label is cut off. A path without a suffix gets ``.png``.

    Inputs:  fig - a matplotlib Figure; path - str or Path of the file to write
    Returns: the Path that was written
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    out = Path(path)
    if out.suffix == "":
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=SAVE_DPI, bbox_inches="tight")
    return out


def _grid_shape(count: int, ncols: int) -> tuple[int, int]:
    """Rows and columns for ``count`` panels, at most ``ncols`` per row."""
    cols = min(ncols, count)
    return math.ceil(count / cols), cols


def _class_colormap(num_classes: int) -> Colormap:
    """One distinct colour per class: tab10 / tab20 when they suffice, else viridis steps."""
    if num_classes <= 10:
        return ListedColormap(matplotlib.colormaps["tab10"].colors[:num_classes])
    if num_classes <= 20:
        return ListedColormap(matplotlib.colormaps["tab20"].colors[:num_classes])
    return matplotlib.colormaps["viridis"].resampled(num_classes)


# --------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------


def _curve_values(values: Any, name: str) -> np.ndarray:
    """One curve as a 1-D float64 array.

    Inputs:  values - a 1-D sequence of numbers: list, array, tensor, or a list of
                      0-d tensors (what you get from appending ``loss`` instead of ``loss.item()``)
    Returns: (T,) float64
    """
    try:
        arr = _as_numeric(values, f"history[{name!r}]")
    except ValueError:
        # a list of tensors that require grad: NumPy cannot take it whole, so go one by one
        arr = np.array([_as_numeric(v, f"history[{name!r}]") for v in values])
        if arr.dtype.kind not in "biuf":
            raise
    if arr.ndim != 1:
        raise ValueError(f"history[{name!r}]: expected a flat list of numbers, got an array "
                         f"of shape {arr.shape}")
    return arr.astype(np.float64)


def _curves_from(history: Any) -> dict[str, np.ndarray]:
    """Turn a dict of lists, or a History-like object, into {name: 1-D float array}.

    A dict is taken as given: every value must be a 1-D sequence of numbers.
    A dataclass or plain object contributes only its attributes that are non-empty
    1-D sequences of numbers; other attributes (an epoch counter, a config) are skipped.
    """
    explicit = isinstance(history, Mapping)
    if explicit:
        items = dict(history)
    elif dataclasses.is_dataclass(history) and not isinstance(history, type):
        items = dataclasses.asdict(history)
    elif hasattr(history, "__dict__"):
        items = {k: v for k, v in vars(history).items() if not k.startswith("_")}
    else:
        raise ValueError("history: expected a dict {name: list of numbers} or a History-like "
                         f"object whose attributes are lists, got {type(history).__name__}")

    curves: dict[str, np.ndarray] = {}
    for name, values in items.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            if explicit:
                raise ValueError(f"history[{name!r}]: expected a list of numbers, "
                                 f"got {type(values).__name__}")
            continue
        try:
            arr = _curve_values(values, str(name))
        except ValueError:
            if explicit:
                raise
            continue
        if arr.size == 0 and not explicit:
            continue
        curves[str(name)] = arr
    if not curves or all(c.size == 0 for c in curves.values()):
        raise ValueError("history: nothing to plot, every curve is empty")
    return curves


def plot_curves(
    history: Mapping[str, Sequence[float]] | Any,
    *,
    path: PathLike | None = None,
    title: str | None = None,
    xlabel: str = "epoch",
    ylabel: str | None = None,
    logy: bool = False,
) -> Figure:
    """Draw named curves (losses, accuracies, learning rates) on one axis, with a legend.

    Inputs:
        history - {"train loss": [...], "val loss": [...]}: one line per key, in order.
                  Also a History-like object (a dataclass or any object) whose list
                  attributes are the curves; non-list attributes are ignored.
                  Curve i is drawn at x = 1, 2, ..., len(curve) (epochs count from 1).
                  NaN leaves a gap (e.g. epochs without validation).
        path    - where to save a PNG (optional); title, xlabel, ylabel - axis text
        logy    - log-scale y axis (good for losses spanning orders of magnitude;
                  values <= 0 cannot be shown on it and are left out by matplotlib)
    Returns:
        the Figure (one Axes; one Line2D per curve whose ydata is the curve)
    """
    curves = _curves_from(history)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, values in curves.items():
        x = np.arange(1, values.size + 1)
        # markers make a handful of epochs readable; they would smear a 10k-step curve
        ax.plot(x, values, label=name, marker="o" if values.size <= 30 else None, markersize=3)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _finish(fig, path, title)


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def _image_batch(images: Any, name: str) -> np.ndarray:
    """Bring a batch of images to (N, H, W) or (N, H, W, 3), values ready for imshow.

    Accepted layouts: (N, H, W), (N, H, W, 1), (N, H, W, 3), and channels-first
    (N, 1, H, W) / (N, 3, H, W), recognised when shape[1] is 1 or 3 and shape[-1]
    is not (so (N, 3, 32, 3) counts as channels-last).

    Scaling: uint8 images are returned unchanged (drawn on 0..255). Any other dtype
    becomes float64 and each image is min-max scaled on its own,
        x' = (x - min x) / (max x - min x),
    so normalised inputs (mean 0, std 1) still show as pictures; a constant image becomes 0.

    Returns: (N, H, W) or (N, H, W, 3), uint8 or float64 in [0, 1]
    """
    arr = _as_numeric(images, name)
    if arr.ndim == 4:
        if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        if arr.shape[-1] == 1:
            arr = arr[..., 0]  # (N, H, W, 1) -> (N, H, W)
        elif arr.shape[-1] != 3:
            raise ValueError(
                f"{name}: a 4-D batch must have 1 or 3 channels, as (N, H, W, C) or "
                f"(N, C, H, W); got shape {arr.shape}")
    elif arr.ndim != 3:
        hint = (" (flattened images? reshape to (N, H, W), e.g. x.reshape(-1, 28, 28))"
                if arr.ndim == 2 else "")
        raise ValueError(f"{name}: expected a batch of images (N, H, W), (N, H, W, C) or "
                         f"(N, C, H, W) with C in {{1, 3}}, got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty")
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float64)
    axes = tuple(range(1, arr.ndim))
    lo = arr.min(axis=axes, keepdims=True)
    span = arr.max(axis=axes, keepdims=True) - lo
    return (arr - lo) / np.where(span > 0, span, 1.0)


def _label_text(value: Any, class_names: Sequence[str] | None, name: str) -> str:
    """A label as text: its class name when names are given, else the value itself."""
    if class_names is None:
        return str(value.item() if isinstance(value, np.generic) else value)
    try:
        index = int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: with class_names the labels must be integers, got "
                         f"{value!r}") from err
    if index != value or not 0 <= index < len(class_names):
        raise ValueError(f"{name}: label {value!r} is not an index into class_names "
                         f"({len(class_names)} names)")
    return str(class_names[index])


def plot_image_grid(
    images: Any,
    *,
    labels: Sequence[Any] | None = None,
    predictions: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 8,
    path: PathLike | None = None,
    title: str | None = None,
    cmap: str = "gray",
    max_images: int = 64,
) -> Figure:
    """Show a batch of images in a grid, each titled with its label and prediction.

    Inputs:
        images      - (N, H, W), (N, H, W, 1), (N, H, W, 3), (N, 1, H, W) or (N, 3, H, W);
                      uint8 shown as 0..255, anything else min-max scaled per image to [0, 1]
        labels      - (N,) true labels (optional)
        predictions - (N,) predicted labels (optional); when both are given a wrong
                      prediction's title is red, a right one green
        class_names - names indexed by the integer labels (optional)
        ncols       - panels per row; cmap - colour map for single-channel images
        max_images  - draw only the first max_images (a grid of 60 000 digits helps nobody)
    Returns:
        the Figure: one Axes with one AxesImage per image drawn, in order
    """
    _check_positive_int(ncols, "ncols")
    _check_positive_int(max_images, "max_images")
    batch = _image_batch(images, "images")
    n = batch.shape[0]
    per_image = {}
    for arg_name, values in (("labels", labels), ("predictions", predictions)):
        if values is None:
            continue
        arr = _as_array(values, arg_name)
        if arr.ndim != 1:
            raise ValueError(f"{arg_name}: expected a 1-D sequence, got shape {arr.shape}")
        if len(arr) != n:
            raise ValueError(f"{arg_name}: expected one per image ({n}), got {len(arr)}")
        per_image[arg_name] = arr

    shown = min(n, max_images)
    nrows, cols = _grid_shape(shown, ncols)
    fig = Figure(figsize=(1.4 * cols, 1.6 * nrows + 0.4), layout="constrained")
    vmax = 255 if batch.dtype == np.uint8 else 1.0
    for i in range(shown):
        ax = fig.add_subplot(nrows, cols, i + 1)
        ax.imshow(batch[i], cmap=cmap if batch.ndim == 3 else None, vmin=0, vmax=vmax,
                  interpolation="nearest")
        ax.set_axis_off()
        lines, color = [], None
        if "labels" in per_image:
            lines.append(_label_text(per_image["labels"][i], class_names, "labels"))
        if "predictions" in per_image:
            pred = _label_text(per_image["predictions"][i], class_names, "predictions")
            lines.append(f"pred {pred}" if lines else pred)
            if "labels" in per_image:
                right = per_image["labels"][i] == per_image["predictions"][i]
                color = RIGHT_COLOR if right else WRONG_COLOR
        if lines:
            ax.set_title("\n".join(lines), fontsize=8, color=color)
    return _finish(fig, path, title)


# --------------------------------------------------------------------------------------
# Classification diagnostics
# --------------------------------------------------------------------------------------


def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    *,
    class_names: Sequence[str] | None = None,
    normalize: bool = False,
    path: PathLike | None = None,
    title: str | None = None,
) -> tuple[Figure, np.ndarray]:
    """Count which class was predicted for each true class, and draw the table.

        M[i, j] = #{ n : y_true[n] = i and y_pred[n] = j }       (rows true, columns predicted)
        normalize=True:  M[i, j] / sum_j M[i, j]   (row i = where class i's examples went;
                         the diagonal is then the per-class recall; an empty row stays 0)

    Inputs:
        y_true, y_pred - (N,) integer class labels 0..K-1 (whole-number floats are fine;
                         for (N, K) scores pass scores.argmax(1))
        class_names    - K names; sets K and labels the axes (else K = largest label + 1)
        normalize      - divide each row by its total
    Returns:
        (fig, M): M is (K, K) int64 counts, or float64 row fractions when normalize=True.
        Each cell's value is written in it (for K <= 30).
    """
    true = _as_int_labels(y_true, "y_true")
    pred = _as_int_labels(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {true.size} "
                         f"and {pred.size}")
    if true.size == 0:
        raise ValueError("y_true: no labels given")
    if min(true.min(), pred.min()) < 0:
        raise ValueError("class labels must be 0..K-1, got a negative label")
    largest = int(max(true.max(), pred.max()))
    if class_names is not None:
        num_classes = len(class_names)
        if largest >= num_classes:
            raise ValueError(f"label {largest} found, but class_names has only "
                             f"{num_classes} names")
    else:
        num_classes = largest + 1

    # one bincount over the flattened (true, pred) pair index true * K + pred
    counts = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    matrix = counts.reshape(num_classes, num_classes).astype(np.int64)
    if normalize:
        row_totals = matrix.sum(axis=1, keepdims=True)
        matrix = matrix / np.where(row_totals > 0, row_totals, 1)

    side = min(3 + 0.5 * num_classes, 14)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(num_classes)
    if class_names is not None:
        ax.set_xticks(ticks, [str(c) for c in class_names], rotation=45, ha="right")
        ax.set_yticks(ticks, [str(c) for c in class_names])
    else:
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_yticks(ticks, [str(k) for k in ticks])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if num_classes <= MAX_ANNOTATED_CLASSES:
        threshold = matrix.max() / 2  # white text on dark cells, black on light ones
        for i in range(num_classes):
            for j in range(num_classes):
                value = matrix[i, j]
                ax.text(j, i, f"{value:.2f}" if normalize else f"{value:d}", ha="center",
                        va="center", fontsize=8,
                        color="white" if value > threshold else "black")
    return _finish(fig, path, title), matrix


@dataclasses.dataclass
class DecisionGrid:
    """The grid a decision boundary was computed on (kept on the figure for inspection).

    xx, yy - (R, R) float64 coordinates, as from np.meshgrid (x0 along columns)
    labels - (R, R) int64 class the model predicts at each grid point
    """

    xx: np.ndarray
    yy: np.ndarray
    labels: np.ndarray


def _labels_from_output(output: Any, num_points: int) -> np.ndarray:
    """Class labels from whatever a predict function returned for ``num_points`` points.

    (M,) integers (or whole-number floats)  -> used as they are
    (M,) floats in [0, 1], not all whole    -> binary probabilities, label = p > 0.5
    (M, 1)                                  -> as (M,)
    (M, C), C >= 2                          -> scores or probabilities, label = argmax_c
    Returns: (M,) int64
    """
    out = _as_numeric(output, "predict_fn output")
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape[:1] != (num_points,) or out.ndim > 2:
        raise ValueError(f"predict_fn: given ({num_points}, 2) points it must return "
                         f"({num_points},) labels/probabilities or ({num_points}, C) scores, "
                         f"got shape {out.shape}")
    if out.ndim == 2:
        return out.argmax(axis=1).astype(np.int64)
    if out.dtype.kind in "biu":
        return out.astype(np.int64)
    if not np.all(np.isfinite(out)):
        raise ValueError("predict_fn returned NaN or inf")
    if np.all(out == np.round(out)):
        return out.astype(np.int64)
    if out.min() >= 0 and out.max() <= 1:
        return (out > 0.5).astype(np.int64)
    raise ValueError("predict_fn returned real numbers outside [0, 1]: those look like raw "
                     "scores (logits). Return labels, probabilities, or (M, C) scores.")


def plot_decision_boundary(
    predict_fn: Callable[[np.ndarray], Any],
    X: Any,
    y: Any,
    *,
    resolution: int = 200,
    path: PathLike | None = None,
    title: str | None = None,
    padding: float = 0.5,
) -> Figure:
    """Colour the plane by the class a 2-D classifier predicts, and scatter the data on top.

    A grid of resolution x resolution points spans the data's box widened by
    ``padding`` on every side; ``predict_fn`` labels all of them in one call.

    Inputs:
        predict_fn - maps (M, 2) float64 points to (M,) labels, (M,) probabilities of
                     class 1, or (M, C) scores (see `_labels_from_output`). A torch model
                     needs a small wrapper, e.g. lambda p: model(torch.from_numpy(p).float())
        X          - (N, 2) points; y - (N,) integer labels (any integers, e.g. -1/+1)
        resolution - grid points per axis; padding - margin around the data, in X's units
    Returns:
        the Figure. Its attribute ``decision_grid`` (a DecisionGrid) holds the grid and the
        predicted labels; the Axes holds one contourf and one scatter whose offsets are X.
    """
    _check_positive_int(resolution, "resolution")
    points = _as_numeric(X, "X").astype(np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"X: a decision boundary can only be drawn for 2-D inputs, expected "
                         f"shape (N, 2), got {points.shape}")
    if points.shape[0] == 0:
        raise ValueError("X: no points given")
    targets = _as_int_labels(y, "y")
    if targets.size != points.shape[0]:
        raise ValueError(f"y: expected one label per point ({points.shape[0]}), got "
                         f"{targets.size}")

    lo = points.min(axis=0) - padding
    hi = points.max(axis=0) + padding
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))  # each (R, R)
    grid = np.column_stack([xx.ravel(), yy.ravel()])  # (R*R, 2), row-major over (yy, xx)
    grid_labels = _labels_from_output(predict_fn(grid), grid.shape[0]).reshape(xx.shape)

    # Colour index = position of the label among all labels seen, so any integers
    # (0/1, -1/+1, 3/7) get the same colours in the background and in the scatter.
    classes = np.union1d(np.unique(grid_labels), np.unique(targets))
    cmap = _class_colormap(classes.size)
    levels = np.arange(classes.size + 1) - 0.5  # one band per class index

    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.contourf(xx, yy, np.searchsorted(classes, grid_labels), levels=levels, cmap=cmap,
                alpha=0.3)
    ax.scatter(points[:, 0], points[:, 1], c=np.searchsorted(classes, targets), cmap=cmap,
               vmin=levels[0], vmax=levels[-1], edgecolors="black", linewidths=0.5, s=20)
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(i), markeredgecolor="black",
                      label=f"class {c}") for i, c in enumerate(classes)]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_0$")
    ax.set_ylabel("$x_1$")
    fig.decision_grid = DecisionGrid(xx=xx, yy=yy, labels=grid_labels)
    return _finish(fig, path, title)


# --------------------------------------------------------------------------------------
# Inside the network: feature maps, attention, gradients, weights
# --------------------------------------------------------------------------------------


def plot_feature_maps(
    maps: Any,
    *,
    max_maps: int = 16,
    ncols: int = 8,
    path: PathLike | None = None,
    title: str | None = None,
) -> Figure:
    """Show the channels of one conv layer's output, one panel per channel.

    Inputs:
        maps     - (C, H, W), or (1, C, H, W) for a batch of one, or (H, W) for a single map
        max_maps - draw channels 0 .. max_maps-1 only; ncols - panels per row
    Returns:
        the Figure: one panel per channel drawn, its AxesImage holding maps[c] unscaled
        (each panel has its own colour range, so weak channels remain visible)
    """
    _check_positive_int(max_maps, "max_maps")
    _check_positive_int(ncols, "ncols")
    arr = _as_numeric(maps, "maps")
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]  # (1, C, H, W) -> (C, H, W)
    elif arr.ndim == 2:
        arr = arr[None]  # (H, W) -> (1, H, W)
    if arr.ndim != 3:
        hint = " (a batch: pass one example, maps[0])" if arr.ndim == 4 else ""
        raise ValueError(f"maps: expected (C, H, W) or (1, C, H, W), got shape "
                         f"{_as_array(maps, 'maps').shape}{hint}")
    shown = min(arr.shape[0], max_maps)
    nrows, cols = _grid_shape(shown, ncols)
    fig = Figure(figsize=(1.5 * cols, 1.6 * nrows + 0.4), layout="constrained")
    for c in range(shown):
        ax = fig.add_subplot(nrows, cols, c + 1)
        ax.imshow(arr[c], cmap="viridis", interpolation="nearest")
        ax.set_title(f"channel {c}", fontsize=8)
        ax.set_axis_off()
    return _finish(fig, path, title)


def plot_attention(
    weights: Any,
    *,
    x_tokens: Sequence[str] | None = None,
    y_tokens: Sequence[str] | None = None,
    path: PathLike | None = None,
    title: str | None = None,
) -> Figure:
    """Draw attention weights as heat maps: row i = how query i spreads over the keys.

    Inputs:
        weights  - (T_q, T_k) for one head, (H, T_q, T_k) for H heads (one panel each),
                   or (1, H, T_q, T_k) for a batch of one
        x_tokens - T_k key tokens, written under the columns (optional)
        y_tokens - T_q query tokens, written beside the rows (optional)
    Returns:
        the Figure: one Axes per head, its AxesImage holding weights[h] unscaled. All
        panels share one colour range: 0..1 when the weights are probabilities (rows of
        a softmax), else the overall min..max, so heads can be compared by eye.
    """
    arr = _as_numeric(weights, "weights")
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]  # (1, H, T_q, T_k) -> (H, T_q, T_k)
    if arr.ndim == 2:
        arr = arr[None]  # (T_q, T_k) -> (1, T_q, T_k)
    if arr.ndim != 3:
        hint = " (a batch: pass one example, weights[0])" if arr.ndim == 4 else ""
        raise ValueError(f"weights: expected (T_q, T_k) or (H, T_q, T_k), got shape "
                         f"{_as_array(weights, 'weights').shape}{hint}")
    heads, t_q, t_k = arr.shape
    for arg_name, tokens, expected, axis in (("x_tokens", x_tokens, t_k, "keys (T_k)"),
                                             ("y_tokens", y_tokens, t_q, "queries (T_q)")):
        if tokens is not None and len(tokens) != expected:
            raise ValueError(f"{arg_name}: expected one token per {axis} = {expected}, "
                             f"got {len(tokens)}")
    if arr.min() >= 0 and arr.max() <= 1:
        vmin, vmax = 0.0, 1.0
    else:
        vmin, vmax = float(arr.min()), float(arr.max())

    nrows, cols = _grid_shape(heads, 4)
    panel = min(1.0 + 0.25 * max(t_q, t_k), 5.0)
    fig = Figure(figsize=(panel * cols + 1, panel * nrows + 0.5), layout="constrained")
    axes = []
    for h in range(heads):
        ax = fig.add_subplot(nrows, cols, h + 1)
        image = ax.imshow(arr[h], cmap="viridis", vmin=vmin, vmax=vmax,
                          interpolation="nearest", aspect="auto")
        if heads > 1:
            ax.set_title(f"head {h}", fontsize=9)
        if x_tokens is not None:
            ax.set_xticks(np.arange(t_k), [str(t) for t in x_tokens], rotation=90, fontsize=8)
        if y_tokens is not None:
            ax.set_yticks(np.arange(t_q), [str(t) for t in y_tokens], fontsize=8)
        if h % cols == 0:
            ax.set_ylabel("query")
        ax.set_xlabel("key")
        axes.append(ax)
    fig.colorbar(image, ax=axes, shrink=0.8)
    return _finish(fig, path, title)


def _named_gradients(named_grads: Any) -> list[tuple[str, np.ndarray]]:
    """(name, gradient array) pairs from a model-like object, a dict, or an iterable of pairs."""
    if callable(getattr(named_grads, "named_parameters", None)):
        pairs = []
        for name, param in named_grads.named_parameters():
            grad = getattr(param, "grad", None)
            if grad is None or not getattr(param, "requires_grad", True):
                continue  # frozen or unused parameter: nothing flowed into it
            pairs.append((name, grad))
    elif isinstance(named_grads, Mapping):
        pairs = list(named_grads.items())  # e.g. an L1 layer's `grads` dict
    elif isinstance(named_grads, Iterable) and not isinstance(named_grads, (str, bytes)):
        pairs = list(named_grads)
    else:
        raise ValueError("named_grads: expected (name, gradient) pairs, a dict name -> "
                         "gradient, or a model with .named_parameters(); got "
                         f"{type(named_grads).__name__}")
    result = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, Sequence) and len(pair) == 2):
            raise ValueError(f"named_grads: item {i} is not a (name, gradient) pair: {pair!r}")
        name, grad = pair
        if grad is None:
            continue
        arr = _as_numeric(grad, f"gradient of {name}").astype(np.float64)
        if arr.size == 0:
            continue
        result.append((str(name), arr))
    if not result:
        raise ValueError("named_grads: no gradients to plot. Did you call loss.backward() "
                         "(or your model's backward) first?")
    return result


def plot_gradient_flow(
    named_grads: Any,
    *,
    path: PathLike | None = None,
    title: str | None = None,
) -> Figure:
    """Bar chart of gradient size per layer: do gradients reach the first layers?

    For each parameter's gradient g (any shape) two bars are drawn, on a log axis:
        max |g|  (wide, light)   and   mean |g| = sum |g_i| / size(g)  (narrow, dark).
    Vanishing gradients show as bars shrinking by orders of magnitude towards the
    input; exploding ones as the reverse. A layer whose gradient is all zero or has
    NaN/inf gets a red name on the x axis (dead ReLUs, a detached graph, a blow-up).

    Inputs:
        named_grads - an iterable of (name, gradient) pairs, a dict name -> gradient
                      (an L1 layer's ``grads``), or a model-like object with
                      ``.named_parameters()`` whose parameters have ``.grad``
                      (parameters whose grad is None are skipped)
    Returns:
        the Figure: one Axes with two bar containers, labelled "max |grad|" and
        "mean |grad|", one bar per parameter in order
    """
    pairs = _named_gradients(named_grads)
    names = [name for name, _ in pairs]
    abs_grads = [np.abs(g) for _, g in pairs]
    means = np.array([a.mean() for a in abs_grads])
    maxes = np.array([a.max() for a in abs_grads])
    suspicious = [not np.all(np.isfinite(a)) or not np.any(a > 0) for a in abs_grads]

    x = np.arange(len(names))
    fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(x, maxes, width=0.8, color="tab:cyan", alpha=0.6, label="max |grad|")
    ax.bar(x, means, width=0.4, color="tab:blue", label="mean |grad|")
    positive = np.concatenate([maxes, means])
    if np.any(np.isfinite(positive) & (positive > 0)):
        ax.set_yscale("log")  # gradient sizes span orders of magnitude
    ax.set_xticks(x, names, rotation=90, fontsize=8)
    for label, bad in zip(ax.get_xticklabels(), suspicious):
        if bad:
            label.set_color(WRONG_COLOR)
    ax.set_xlim(-0.75, len(names) - 0.25)
    ax.set_ylabel("|gradient|")
    ax.set_xlabel("parameter (input side on the left)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return _finish(fig, path, title)


def plot_weights(
    W: Any,
    *,
    image_shape: Sequence[int],
    ncols: int = 10,
    path: PathLike | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    max_images: int = 100,
) -> Figure:
    """Show each unit's weight vector as an image (e.g. softmax regression's digit templates).

    Orientation: with D = prod(image_shape),
        W of shape (D, K)  -> image k = W[:, k].reshape(image_shape)   (x @ W convention, L1/L2)
        W of shape (K, D)  -> image k = W[k].reshape(image_shape)      (nn.Linear.weight, L3)
    When both dimensions equal D the columns are used.

    Inputs:
        W           - 2-D weight matrix, as above
        image_shape - (H, W) for grey images, or (H, W, 3) / (3, H, W) for colour
        class_names - a title per image (optional, else the index k)
        max_images  - draw only the first max_images units; ncols - panels per row
    Returns:
        the Figure, one AxesImage per unit. Grey templates are drawn unscaled in a
        red-blue map centred on 0 (positive weights red, negative blue, limits
        +-max|w_k| per image); colour templates are min-max scaled to [0, 1] per image.
    """
    _check_positive_int(ncols, "ncols")
    _check_positive_int(max_images, "max_images")
    matrix = _as_numeric(W, "W").astype(np.float64)
    shape = tuple(int(s) for s in image_shape)
    size = math.prod(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"image_shape: expected (H, W), (H, W, 3) or (3, H, W), got {shape}")
    if matrix.ndim != 2:
        raise ValueError(f"W: expected a 2-D weight matrix (D, K) or (K, D), got shape "
                         f"{matrix.shape}")
    if matrix.shape[0] == size:
        templates = matrix.T  # (D, K) -> (K, D)
    elif matrix.shape[1] == size:
        templates = matrix  # already (K, D)
    else:
        raise ValueError(f"W: neither dimension of shape {matrix.shape} equals "
                         f"prod(image_shape) = prod({shape}) = {size}")
    count = templates.shape[0]
    if class_names is not None and len(class_names) != count:
        raise ValueError(f"class_names: expected {count} names (one per unit), got "
                         f"{len(class_names)}")
    images = templates.reshape(count, *shape)  # (K, *image_shape)
    if len(shape) == 3:
        images = _image_batch(images, "W reshaped to images")  # (K, H, W, 3) in [0, 1]

    shown = min(count, max_images)
    nrows, cols = _grid_shape(shown, ncols)
    fig = Figure(figsize=(1.4 * cols, 1.6 * nrows + 0.4), layout="constrained")
    for k in range(shown):
        ax = fig.add_subplot(nrows, cols, k + 1)
        if images.ndim == 3:
            limit = float(np.abs(images[k]).max()) or 1.0
            ax.imshow(images[k], cmap="RdBu_r", vmin=-limit, vmax=limit,
                      interpolation="nearest")
        else:
            ax.imshow(images[k], interpolation="nearest")
        ax.set_title(str(class_names[k]) if class_names is not None else str(k), fontsize=8)
        ax.set_axis_off()
    return _finish(fig, path, title)
