"""Train the L2 MLP (``mlp_lowlevel.py``) on digits (default), two-moons or MNIST: the
training loop written out (zero the gradients, forward, loss, backward, the hand-written
optimiser step), then the loss curve, the predictions and the gradient flow through a deep
sigmoid and a deep ReLU net at initialisation.

Run from the repository root::

    python 02_MLP/pytorch_lowlevel/train.py                         # digits, offline
    python 02_MLP/pytorch_lowlevel/train.py --dataset moons         # decision boundary
    python -m 02_MLP.pytorch_lowlevel.train --dataset mnist --data-root DIR
    python 02_MLP/pytorch_lowlevel/train.py --hidden 256,256 --optimizer adam --batchnorm
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import Split, load_arrays, make_moons
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_decision_boundary,
    plot_gradient_flow,
)

_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")  # the model
MLPLowLevel, ACTIVATIONS, INITS = _mlp.MLPLowLevel, _mlp.ACTIVATIONS, _mlp.INITS
check_features, check_labels = _mlp.check_features, _mlp.check_labels
cross_entropy, zero_grad, sgd_step, adam_step = (_mlp.cross_entropy, _mlp.zero_grad,
                                                 _mlp.sgd_step, _mlp.adam_step)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
DATASETS = ("digits", "moons", "mnist")


# --------------------------------------------------------------------------------------
# 1. The options
# --------------------------------------------------------------------------------------


def parse_hidden(text: str) -> tuple[int, ...]:
    """"800" -> (800,), "256,256" -> (256, 256), "" or "none" -> () (softmax regression)."""
    text = text.strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated layer widths such as 800 or 256,256, "
                         f"got {text!r}") from None
    if any(w < 1 for w in widths):
        raise ValueError(f"every layer width must be an integer >= 1, got {text!r}")
    return widths


def hidden_widths(text: str) -> str:
    """argparse type for --hidden: checks the text with ``parse_hidden``, keeps it as is."""
    try:
        parse_hidden(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


# --------------------------------------------------------------------------------------
# 2. The training loop, evaluation
# --------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: MLPLowLevel, X, y, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (X, y), in evaluation mode.

    Inputs:  X (N, D); y (N,) labels in 0..K-1
    Returns: (loss, accuracy) floats; sums over batches, divided by N
    """
    dtype = model.params["W1"].dtype
    X = check_features(X, n_features=model.sizes[0], dtype=dtype, device=model.device)
    y = check_labels(y, len(X), model.sizes[-1], device=model.device)
    loss_sum, correct = 0.0, 0
    for i in range(0, len(X), batch_size):
        logits = model(X[i:i + batch_size])
        loss_sum += float(cross_entropy(logits, y[i:i + batch_size])) * len(logits)
        correct += int((logits.argmax(dim=1) == y[i:i + batch_size]).sum())
    return loss_sum / len(X), correct / len(X)


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing over epochs (Loshchilov & Hutter 2017, no restarts):
    lr_e = lr (1 + cos(pi e / E)) / 2, e = 0 .. E-1 (torch's CosineAnnealingLR, T_max=E)."""
    return lr * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0


def train(model: MLPLowLevel, X, y, *, optimizer: str = "sgd", lr: float = 0.05,
          epochs: int = 10, batch_size: int = 64, momentum: float = 0.9,
          weight_decay: float = 0.0, schedule: str = "constant", seed: int = 0,
          val: tuple | None = None, progress: bool = False,
          log: Callable[[str], object] | None = None) -> dict[str, list[float]]:
    """Mini-batch training, written out: zero_grad -> forward -> loss -> backward -> step.

    Inputs:  model; X (N, D), y (N,) labels; optimizer "sgd" (with ``momentum``) or
             "adam"; lr, epochs, batch_size; weight_decay (L2 in the gradient);
             schedule "constant" or "cosine" (per epoch, see cosine_lr); seed - the batch
             order and the dropout masks; val - optional (X_val, y_val) evaluated after
             each epoch; progress - a tqdm bar over epochs; log - called with one
             summary line per epoch (e.g. print), or None
    Returns: history {"train_loss": mean loss of each epoch's batches (weighted by batch
             size, measured while the weights move, dropout on), "lr": [...],
             "val_loss", "val_accuracy": [...] when val is given}
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"epochs and batch_size must be positive integers, got {epochs!r}, "
                         f"{batch_size!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    dtype = model.params["W1"].dtype
    X = check_features(X, n_features=model.sizes[0], dtype=dtype, device=model.device)
    y = check_labels(y, len(X), model.sizes[-1], device=model.device)
    n = len(X)
    params = model.parameters()
    order_rng = torch.Generator().manual_seed(seed)  # batch order: reproducible, on the CPU
    mask_rng = torch.Generator(device=model.device).manual_seed(seed + 1)  # dropout masks
    state: dict | None = None  # the optimiser's memory between steps
    history: dict[str, list[float]] = {"train_loss": [], "lr": []}
    if val is not None:
        history["val_loss"], history["val_accuracy"] = [], []
    for epoch in tqdm(range(epochs), desc="MLP (L2)", disable=not progress, leave=False):
        lr_now = cosine_lr(lr, epoch, epochs) if schedule == "cosine" else lr
        order = torch.randperm(n, generator=order_rng).to(model.device)
        loss_sum, seen = 0.0, 0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            if model.batchnorm and len(rows) < 2:
                continue  # batch statistics of one sample are undefined: skip that remainder
            zero_grad(params)
            loss = cross_entropy(model(X[rows], training=True, generator=mask_rng), y[rows])
            loss.backward()  # fills p.grad for every tensor in params
            if optimizer == "sgd":
                state = sgd_step(params, lr_now, momentum=momentum, weight_decay=weight_decay,
                                 state=state)
            else:
                state = adam_step(params, lr_now, weight_decay=weight_decay, state=state)
            loss_sum += loss.item() * len(rows)
            seen += len(rows)
        epoch_loss = loss_sum / seen
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"the loss became {epoch_loss} in epoch {epoch + 1}: the learning rate "
                f"lr={lr} is probably too large; try lr/10")
        history["train_loss"].append(epoch_loss)
        history["lr"].append(lr_now)
        if val is not None:
            val_loss, val_accuracy = evaluate(model, *val)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_accuracy)
        if log is not None:
            line = f"epoch {epoch + 1}/{epochs}  train loss {epoch_loss:.4f}  lr {lr_now:.3g}"
            if val is not None:
                line += f"  | val loss {val_loss:.4f}  accuracy {val_accuracy:.4f}"
            log(line)
    return history


# --------------------------------------------------------------------------------------
# 3. Why initialisation and activation matter: gradient flow through a deep net
# --------------------------------------------------------------------------------------


def gradient_flow(X, y, *, activation: str, n_classes: int, depth: int = 10, width: int = 64,
                  init: str = "auto", seed: int = 0) -> dict[str, torch.Tensor]:
    """dJ/dW_l for every layer of a freshly initialised deep MLP, on one batch.

    Backpropagation multiplies the gradient by W_l^T and by f'(a_l) at every layer.
    A sigmoid has f' <= 1/4, so with Glorot weights (which keep ||W^T g|| ~ ||g||)
    the gradient shrinks about 4x per layer: after 10 layers the first one learns
    ~10^5 times slower than the last (the vanishing gradient; Hochreiter 1991,
    Glorot & Bengio 2010 Section 4). A ReLU with He init has f' = 1 on the half of
    the units it lets through, which the factor 2 in He's variance compensates: the
    gradient keeps its size at every depth.

    Inputs:  X (N, D), y (N,) a batch; activation; depth - number of hidden layers of
             ``width`` units; init - as in MLPLowLevel
    Returns: {"W1": dJ/dW1, ..., "W<depth+1>": ...} detached float32 tensors, input side first
    """
    X = check_features(X, dtype=torch.float32)
    y = check_labels(y, len(X), n_classes)
    model = MLPLowLevel([X.shape[1], *[width] * depth, n_classes], activation=activation,
                        init=init, seed=seed)
    cross_entropy(model(X), y).backward()
    L = len(model.sizes) - 1
    return {f"W{l}": model.params[f"W{l}"].grad.detach() for l in range(1, L + 1)}


def first_to_last_gradient_ratio(grads: Mapping[str, torch.Tensor]) -> float:
    """mean |dJ/dW_1| / mean |dJ/dW_L|: about 1 when gradients flow, << 1 when they vanish."""
    names = list(grads)
    return float(grads[names[0]].abs().mean() / grads[names[-1]].abs().mean())


# --------------------------------------------------------------------------------------
# 4. The script
# --------------------------------------------------------------------------------------

MOONS_NOISE = 0.2  # enough overlap that a straight line is clearly not enough
MOONS_SIZES = (800, 200)  # train, test

# Per-dataset defaults: layer widths, epochs, batch size, and the learning rate for SGD
# with momentum / for Adam; both decay with a cosine schedule. threads: CPU threads (1 for
# the small nets; 0, torch's default, for MNIST's 784x800 products).
DATASET_DEFAULTS = {
    "digits": {"hidden": "128", "epochs": 20, "batch_size": 32, "lr": {"sgd": 0.05, "adam": 1e-3},
               "threads": 1},
    "moons": {"hidden": "32,32", "epochs": 60, "batch_size": 32, "lr": {"sgd": 0.1, "adam": 1e-2},
              "threads": 1},
    # Simard, Steinkraus & Platt (2003): 784-800-10, cross-entropy, no distortions: 1.6 %
    "mnist": {"hidden": "800", "epochs": 20, "batch_size": 128, "lr": {"sgd": 0.05, "adam": 1e-3},
              "threads": 0},
}


def load_dataset(name: str, data_root=None, seed: int = 0) -> Split:
    """The train/test split of ``name`` (one of DATASETS), X as float32.

    digits: scikit-learn's 8x8 digits, standardised with the training statistics;
    moons: make_moons(1000, noise=0.2), the first 800 points to train, the last 200 to
    test; mnist: 60,000 / 10,000 images flattened to 784 pixels in [0, 1].
    """
    if name == "moons":
        X, y = make_moons(sum(MOONS_SIZES), noise=MOONS_NOISE, seed=seed)
        n_train = MOONS_SIZES[0]
        split = Split(X[:n_train], y[:n_train], X[n_train:], y[n_train:], name="moons",
                      task="multiclass", classes=["upper moon", "lower moon"])
    elif name == "digits":
        split = load_arrays("digits")
    elif name == "mnist":
        split = load_arrays("mnist", data_root=data_root, flatten=True)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    split.X_train = np.asarray(split.X_train, dtype=np.float32)
    split.X_test = np.asarray(split.X_test, dtype=np.float32)
    return split


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train an MLP in low-level PyTorch; plot its loss, its predictions and gradient flow.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean cross-entropy on the
             training set after the last epoch, evaluation mode), "grad_ratio_sigmoid",
             "grad_ratio_relu" (first_to_last_gradient_ratio of a 10-hidden-layer net)}
    """
    parser = argparse.ArgumentParser(
        description="A multilayer perceptron from tensors and autograd, with hand-written "
                    "layers and optimisers.")
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=None, lr=None,
                    out="runs/02_MLP/l2_mlp", threads=1)
    parser.set_defaults(threads=None)  # per dataset, see DATASET_DEFAULTS
    parser.add_argument("--hidden", type=hidden_widths, default=None,
                        help='hidden layer widths, e.g. "800" or "256,256" '
                             "(default: %(default)s)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu",
                        help="default: %(default)s")
    parser.add_argument("--init", choices=INITS, default="auto",
                        help="auto: He for relu/gelu, Glorot (Xavier) for sigmoid/tanh "
                             "(default: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                        help="default: %(default)s")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                        help="L2 penalty strength (default: %(default)s)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                        help="learning-rate schedule over the epochs (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="drop probability (default: %(default)s)")
    parser.add_argument("--batchnorm", action="store_true", help="batch norm in hidden layers")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults
    if isinstance(args.lr, dict):  # the default is per optimiser: {"sgd": ..., "adam": ...}
        args.lr = args.lr[args.optimizer]
    hidden = parse_hidden(args.hidden)

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_dataset(args.dataset, args.data_root, seed=args.seed)
    print(split.summary())

    with torch_threads(args.threads):
        return _train_and_report(args, hidden, split, device, out)


def _train_and_report(args, hidden, split, device, out) -> dict[str, float]:
    """The rest of main: build, train, evaluate, plot."""
    sizes = (split.X_train.shape[1], *hidden, split.num_classes)
    model = MLPLowLevel(sizes, activation=args.activation, dropout=args.dropout,
                        batchnorm=args.batchnorm, init=args.init, seed=args.seed, device=device)
    print(f"MLP {'-'.join(map(str, sizes))} ({args.activation}), "
          f"{model.num_parameters():,} parameters, {args.optimizer} lr={args.lr}")
    history = train(model, split.X_train, split.y_train, optimizer=args.optimizer, lr=args.lr,
                    epochs=args.epochs, batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
                    val=(split.X_test, split.y_test), progress=args.progress,
                    log=print if args.progress else None)

    final_loss, train_accuracy = evaluate(model, split.X_train, split.y_train)
    _, test_accuracy = evaluate(model, split.X_test, split.y_test)
    print(f"MLP on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final training loss {final_loss:.4f}")

    title = f"L2 MLP {'-'.join(map(str, sizes))} on {args.dataset}"
    plot_curves({"train loss (during each epoch)": history["train_loss"],
                 "test loss": history["val_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    if args.dataset == "moons":
        plot_decision_boundary(lambda points: model.predict(points).cpu().numpy(),
                               split.X_test, split.y_test, path=out / "decision_boundary.png",
                               title=f"{title} (test points)")
    else:
        plot_confusion_matrix(split.y_test, model.predict(split.X_test).cpu().numpy(),
                              class_names=split.classes, path=out / "confusion.png",
                              title=f"{title} (test)")

    # Vanishing gradients: the same deep net with sigmoid (Glorot init) and ReLU (He init)
    batch = slice(0, 256)
    ratios = {}
    for name in ("sigmoid", "relu"):
        grads = gradient_flow(split.X_train[batch], split.y_train[batch], activation=name,
                              n_classes=split.num_classes, seed=args.seed)
        ratios[name] = first_to_last_gradient_ratio(grads)
        plot_gradient_flow(grads, path=out / f"gradient_flow_{name}.png",
                           title=f"10 hidden {name} layers at initialisation: "
                                 f"|dJ/dW1| / |dJ/dW11| = {ratios[name]:.1e}")
    print(f"gradient flow, mean |dJ/dW_first| / |dJ/dW_last| at init: sigmoid "
          f"{ratios['sigmoid']:.1e}, relu {ratios['relu']:.2f}")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "grad_ratio_sigmoid": ratios["sigmoid"],
            "grad_ratio_relu": ratios["relu"]}


if __name__ == "__main__":
    main()
