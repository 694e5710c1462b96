"""Train the L1 MLP (``mlp_numpy.py``) on digits (default), two-moons or MNIST, with the
backward pass and the optimiser written by hand; plot its loss, its predictions and the
gradient flow through a deep sigmoid and a deep ReLU net at initialisation.

Run from the repository root::

    python 02_MLP/numpy/train.py                       # digits, offline, seconds
    python 02_MLP/numpy/train.py --dataset moons       # 2-D, with a decision boundary
    python -m 02_MLP.numpy.train --dataset mnist --data-root DIR          # 784-800-10
    python 02_MLP/numpy/train.py --activation sigmoid --hidden 256,256 --optimizer adam
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    limit_blas_threads,
    non_negative_float,
    non_negative_int,
    parse_args,
    prepare_out_dir,
    probability,
    seed_everything,
)
from utils.data_loaders import load_arrays, make_moons
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_decision_boundary,
    plot_gradient_flow,
)

mlp = import_lesson("02_MLP.numpy.mlp_numpy")  # the model
ACTIVATIONS, Linear, SGD, Adam = mlp.ACTIVATIONS, mlp.Linear, mlp.SGD, mlp.Adam
SoftmaxCrossEntropy, Optimizer, build_mlp = mlp.SoftmaxCrossEntropy, mlp.Optimizer, mlp.build_mlp
predict_logits, softmax_cross_entropy = mlp.predict_logits, mlp.softmax_cross_entropy
_as_rng, _check_positive_int = mlp._as_rng, mlp._check_positive_int


def minibatch_indices(n: int, batch_size: int, rng: np.random.Generator):
    """Yield index arrays of a random partition of range(n) into batches of batch_size
    (the last one may be smaller): one epoch of shuffled mini-batches."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train_one_epoch(model, loss_fn: SoftmaxCrossEntropy, optimizer: Optimizer, X: np.ndarray,
                    y: np.ndarray, *, batch_size: int, rng: np.random.Generator) -> float:
    """One pass over (X, y) in shuffled mini-batches: forward, loss, backward, step.

    Inputs:  model (Sequential, in training mode); loss_fn; optimizer; X (N, D);
             y (N,) int labels; batch_size; rng for the shuffle.
    Returns: the mean training loss over the epoch (weighted by batch size).
    """
    total, count = 0.0, 0
    for idx in minibatch_indices(len(X), batch_size, rng):
        logits = model.forward(X[idx])  # (B, K)
        loss = loss_fn.forward(logits, y[idx])
        model.backward(loss_fn.backward())  # fills every grad (overwriting the last ones)
        optimizer.step()
        total += loss * len(idx)
        count += len(idx)
    return total / count


def evaluate(model, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model (evaluation mode) on (X, y)."""
    logits = predict_logits(model, X)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, float(np.mean(logits.argmax(axis=1) == y))


def gradient_flow_demo(X: np.ndarray, y: np.ndarray, *, depth: int = 10, width: int = 64,
                       batch_size: int = 128, rng=0) -> dict[str, dict[str, np.ndarray]]:
    """One batch through a deep sigmoid net and a deep ReLU net: the gradient per layer.

    Both nets have ``depth`` Linear layers (depth - 1 hidden layers of ``width`` units),
    each with its matching initialisation (sigmoid: Xavier, ReLU: He), and nothing is
    trained: this is the state at initialisation. Backpropagating the cross-entropy,
    every sigmoid multiplies the signal by sigmoid' <= 1/4, so the first layer's
    gradient is orders of magnitude smaller than the last one's (vanishing gradient);
    with ReLU and He init the gradient keeps its size through the depth.

    Inputs:  X (N, D), y (N,) labels 0..K-1; depth >= 2; width; batch_size; rng.
    Returns: {"sigmoid": {"layer 1": dL/dW_1, ..., "layer <depth>": ...}, "relu": {...}},
             the gradients of the weights, input side first.
    """
    depth = _check_positive_int(depth, "depth")
    if depth < 2:
        raise ValueError(f"depth must be >= 2 Linear layers, got {depth}")
    rng = _as_rng(rng)
    idx = rng.choice(len(X), size=min(batch_size, len(X)), replace=False)
    xb, yb = np.asarray(X)[idx], np.asarray(y)[idx]
    sizes = [xb.shape[1]] + [width] * (depth - 1) + [int(np.max(y)) + 1]
    result = {}
    for activation in ("sigmoid", "relu"):
        net = build_mlp(sizes, activation=activation, rng=rng, dtype=xb.dtype)
        loss_fn = SoftmaxCrossEntropy()
        loss_fn.forward(net.forward(xb), yb)
        net.backward(loss_fn.backward())
        linears = [layer for layer in net if isinstance(layer, Linear)]
        result[activation] = {f"layer {i + 1}": layer.grads["W"].copy()
                              for i, layer in enumerate(linears)}
    return result


# ---------------------------------------------------------------------------
# The script
# ---------------------------------------------------------------------------

# Per-dataset defaults (command-line values win). lr is per optimiser. decay_epochs:
# how many of the epochs run at lr / 10 at the end (step decay, see train). threads: the
# BLAS threads (1 for the small nets; 0, NumPy's default, for MNIST's 784x800 products).
DATASET_DEFAULTS = {
    "digits": {"hidden": "128", "epochs": 30, "batch_size": 32, "optimizer": "sgd",
               "lr": {"sgd": 0.05, "adam": 1e-3}, "momentum": 0.9, "weight_decay": 1e-4,
               "decay_epochs": 5, "threads": 1},
    "moons": {"hidden": "32,32", "epochs": 100, "batch_size": 32, "optimizer": "sgd",
              "lr": {"sgd": 0.05, "adam": 3e-3}, "momentum": 0.9, "weight_decay": 0.0,
              "decay_epochs": 10, "threads": 1},
    "mnist": {"hidden": "800", "epochs": 12, "batch_size": 100, "optimizer": "sgd",
              "lr": {"sgd": 0.05, "adam": 1e-3}, "momentum": 0.9, "weight_decay": 0.0,
              "decay_epochs": 3, "threads": 0},
}
MOONS_TRAIN, MOONS_TEST, MOONS_NOISE = 500, 500, 0.2


def parse_hidden(text: str) -> list[int]:
    """"800" -> [800]; "256,256" -> [256, 256]; "" or "none" -> [] (softmax regression)."""
    text = text.strip().lower()
    if text in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"expected comma-separated layer widths such as 800 or 256,256; "
                         f"got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"every layer width must be an integer >= 1, got {text!r}")
    return sizes


def hidden_widths(text: str) -> str:
    """argparse type for --hidden: checks the text with ``parse_hidden``, keeps it as is."""
    try:
        parse_hidden(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def load_data(name: str, data_root, seed: int):
    """(X_train, y_train, X_test, y_test, class names) for digits, moons or mnist.

    digits: scikit-learn's 8x8 digits, standardised (float64, 64 features);
    moons: two-moons with noise 0.2, 500 train / 500 test points (float64);
    mnist: 28x28 images flattened to 784 pixels in [0, 1] (float32).
    """
    if name == "moons":
        X_train, y_train = make_moons(MOONS_TRAIN, noise=MOONS_NOISE, seed=seed)
        X_test, y_test = make_moons(MOONS_TEST, noise=MOONS_NOISE, seed=seed + 1)
        return X_train, y_train, X_test, y_test, ["0", "1"]
    kwargs = {"flatten": True} if name == "mnist" else {}
    data = load_arrays(name, data_root=data_root, **kwargs)
    return data.X_train, data.y_train, data.X_test, data.y_test, data.classes


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train an MLP on digits (default), two-moons or MNIST with hand-written backprop.

    Prints the architecture, the time per epoch, train and test accuracy; writes the
    loss curves, the test confusion matrix, the decision boundary (moons) and the
    gradient-flow comparison of a deep sigmoid and a deep ReLU net to --out.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: {"test_accuracy", "train_accuracy", "final_loss"} (final_loss: mean training
             loss of the last epoch).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    add_common_args(parser, datasets=["digits", "moons", "mnist"], epochs=None,
                    batch_size=None, lr=None, out="runs/02_MLP/numpy_mlp", devices=("cpu",),
                    threads=1)
    parser.set_defaults(threads=None)  # per dataset, see DATASET_DEFAULTS
    parser.add_argument("--hidden", type=hidden_widths, default=None,
                        help='hidden widths, e.g. "800" or "256,256" (default: %(default)s)')
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                        help="default: %(default)s")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default=None,
                        help="default: %(default)s")
    parser.add_argument("--momentum", type=probability, default=None,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=None,
                        help="L2 penalty added to every gradient (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="drop probability after each hidden activation "
                             "(default: %(default)s)")
    parser.add_argument("--batchnorm", action="store_true", help="BatchNorm1d in hidden layers")
    parser.add_argument("--decay-epochs", type=non_negative_int, default=None,
                        help="run the last N epochs at lr / 10 (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults
    if isinstance(args.lr, dict):  # the default is per optimiser: {"sgd": ..., "adam": ...}
        args.lr = args.lr[args.optimizer]
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    cfg = {key: getattr(args, key) for key in DATASET_DEFAULTS[args.dataset]}
    hidden = parse_hidden(cfg["hidden"])
    with data_errors():  # a missing or damaged file: one message saying where, no traceback
        X_train, y_train, X_test, y_test, classes = load_data(args.dataset, args.data_root,
                                                              args.seed)

    rng = np.random.default_rng(args.seed)  # weights, dropout masks, shuffling
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    try:
        # the model computes in the data's dtype: float32 for MNIST (about twice as fast)
        model = build_mlp([X_train.shape[1], *hidden, num_classes],
                          activation=args.activation, dropout=args.dropout,
                          batchnorm=args.batchnorm, rng=rng, dtype=X_train.dtype)
        if cfg["optimizer"] == "sgd":
            optimizer = SGD(model, cfg["lr"], momentum=cfg["momentum"],
                            weight_decay=cfg["weight_decay"])
        else:
            optimizer = Adam(model, cfg["lr"], weight_decay=cfg["weight_decay"])
    except ValueError as err:
        parser.error(str(err))
    loss_fn = SoftmaxCrossEntropy()
    print(f"{args.dataset}: X_train {X_train.shape} {X_train.dtype}, X_test {X_test.shape}; "
          f"{cfg}")
    print(f"{model}\n{model.num_params():,} parameters")

    with limit_blas_threads(cfg["threads"] or None):
        train_losses, test_losses, seconds_per_epoch = train(
            model, loss_fn, optimizer, (X_train, y_train), (X_test, y_test), cfg, rng,
            progress=args.progress)
        return _report(model, args, hidden, classes, (X_train, y_train), (X_test, y_test),
                       train_losses, test_losses, seconds_per_epoch, out)


def train(model, loss_fn, optimizer, train_data, test_data, cfg: dict, rng,
          progress: bool = False) -> tuple[list[float], list[float], float]:
    """The training loop: cfg["epochs"] epochs of train_one_epoch, the test set after each.

    Inputs:  model, loss_fn, optimizer; train_data, test_data - (X, y) pairs; cfg - the
             options (epochs, lr, batch_size, decay_epochs); rng - the shuffle.
    Returns: (train loss per epoch, test loss per epoch, seconds per epoch).
    """
    (X_train, y_train), (X_test, y_test) = train_data, test_data
    # Step decay: constant-step SGD keeps bouncing around a minimum with the noise of
    # its mini-batch gradients; the last few epochs at lr / 10 let it settle.
    decay_from = cfg["epochs"] - max(0, min(cfg["decay_epochs"], cfg["epochs"] - 1))
    train_losses, test_losses, test_accs = [], [], []
    start = time.perf_counter()
    epochs = tqdm(range(cfg["epochs"]), desc="MLP (NumPy)", disable=not progress)
    for epoch in epochs:
        optimizer.lr = cfg["lr"] / 10 if epoch >= decay_from else cfg["lr"]
        model.train()
        train_losses.append(train_one_epoch(model, loss_fn, optimizer, X_train, y_train,
                                            batch_size=cfg["batch_size"], rng=rng))
        if not np.isfinite(train_losses[-1]):
            raise SystemExit(f"error: the training loss became {train_losses[-1]} in epoch "
                             f"{epoch + 1}; lower --lr (now {cfg['lr']})")
        test_loss, test_acc = evaluate(model, X_test, y_test)
        test_losses.append(test_loss)
        test_accs.append(test_acc)
        epochs.set_postfix(loss=f"{train_losses[-1]:.4f}", test_acc=f"{test_acc:.4f}")
    seconds_per_epoch = (time.perf_counter() - start) / cfg["epochs"]
    return train_losses, test_losses, seconds_per_epoch


def _report(model, args, hidden, classes, train_data, test_data, train_losses, test_losses,
            seconds_per_epoch, out) -> dict[str, float]:
    """Accuracies, plots (loss, confusion, decision boundary, gradient flow), the metrics."""
    (X_train, y_train), (X_test, y_test) = train_data, test_data
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    train_acc = evaluate(model, X_train, y_train)[1]
    test_pred = predict_logits(model, X_test).argmax(axis=1)
    test_acc = float(np.mean(test_pred == y_test))
    name = f"MLP {'-'.join(str(s) for s in [X_train.shape[1], *hidden, num_classes])}"
    plot_curves({"train loss": train_losses, "test loss": test_losses},
                path=out / "loss.png", ylabel="cross-entropy",
                title=f"{name} ({args.activation}, NumPy) on {args.dataset}")
    plot_confusion_matrix(y_test, test_pred, class_names=classes, path=out / "confusion.png",
                          title=f"{name} on {args.dataset} (test)")
    if args.dataset == "moons":
        plot_decision_boundary(lambda points: predict_logits(model, points.astype(X_train.dtype)),
                               X_test, y_test, path=out / "decision_boundary.png",
                               title=f"{name} ({args.activation}) on two-moons (test points)")
    flow = gradient_flow_demo(X_train, y_train, rng=args.seed)
    plot_gradient_flow({f"{act} {layer}": g for act, grads in flow.items()
                        for layer, g in grads.items()}, path=out / "gradient_flow.png",
                       title="dL/dW per layer at initialisation: 10-layer sigmoid vs ReLU net")
    print(f"{name}: {seconds_per_epoch:.2f} s per epoch (training + test pass), "
          f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}, "
          f"final training loss {train_losses[-1]:.4f}")
    print(f"plots in {out}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc,
            "final_loss": float(train_losses[-1])}


if __name__ == "__main__":
    main()
