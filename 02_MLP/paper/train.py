"""Train the L3 MLP (``mlp_paper.py``) with torch.optim, a cosine learning-rate schedule and
the curriculum's loop ``utils.training_utils.fit`` (which also runs the script on several
processes under ``torchrun``); plot its loss, its predictions and the gradient flow through
a deep sigmoid and a deep ReLU net at initialisation.

The data are L2's, loaded by the same function (digits standardised, moons 800 / 200,
MNIST flattened: ``load_dataset`` in ``../pytorch_lowlevel/train.py``); ``--hidden`` is read
and checked by L2's functions too. Run from the repository root::

    python 02_MLP/paper/train.py                                   # digits, offline
    python 02_MLP/paper/train.py --dataset moons --norm batch --dropout 0.1
    python -m 02_MLP.paper.train --dataset mnist --data-root DIR   # Simard's 784-800-10
    torchrun --nproc_per_node 2 02_MLP/paper/train.py --device cpu
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import make_loader
from utils.training_utils import (
    History,
    cleanup_distributed,
    evaluate,
    fit,
    is_main_process,
    make_lr_scheduler,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_decision_boundary,
    plot_gradient_flow,
)

_mlp = import_lesson("02_MLP.paper.mlp_paper")  # the model
MLP, ACTIVATIONS, NORMS, INITS = _mlp.MLP, _mlp.ACTIVATIONS, _mlp.NORMS, _mlp.INITS
count_parameters, predict = _mlp.count_parameters, _mlp.predict
_l2 = import_lesson("02_MLP.pytorch_lowlevel.train")  # L2's data and --hidden
load_dataset, parse_hidden, hidden_widths = _l2.load_dataset, _l2.parse_hidden, _l2.hidden_widths

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
DATASETS = ("digits", "moons", "mnist")


# --------------------------------------------------------------------------------------
# 1. The training recipe
# --------------------------------------------------------------------------------------


def make_optimizer(model: nn.Module, name: str = "sgd", *, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.SGD(momentum)`` or ``torch.optim.Adam`` over every parameter.

    weight_decay adds weight_decay * p to every gradient (an L2 penalty (wd/2)||p||^2 on
    weights, biases and norm parameters alike, the torch.optim default).
    """
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def train(model: MLP, X, y, *, optimizer: str = "sgd", lr: float = 0.05, epochs: int = 10,
          batch_size: int = 64, momentum: float = 0.9, weight_decay: float = 0.0,
          schedule: str = "cosine", seed: int = 0, device="cpu", val: tuple | None = None,
          progress: bool = False, log: Callable[[str], object] | None = None) -> History:
    """The standard recipe: DataLoader, optimiser, LR schedule, ``utils.training_utils.fit``.

    Inputs:  X (N, D) float array in the model's dtype; y (N,) int labels; optimizer "sgd"
             or "adam"; schedule "constant" or "cosine" (per epoch); seed - the batch order;
             val - optional (X_val, y_val) evaluated after each epoch
    Returns: History (train/val loss and accuracy per epoch, lr, epoch times)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    # A batch of one sample cannot be batch-normalised in training: drop such a remainder.
    drop_last = model.norm == "batch" and len(X) % batch_size == 1
    loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed,
                         drop_last=drop_last)
    val_loader = None
    if val is not None:
        val_loader = make_loader(val[0], val[1], batch_size=max(batch_size, 1024), shuffle=False)
    opt = make_optimizer(model, optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = make_lr_scheduler(opt, schedule if schedule == "cosine" else "none",
                                  epochs=epochs)
    return fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
               val_loader=val_loader, scheduler=scheduler, device=device, progress=progress,
               log=log)


# --------------------------------------------------------------------------------------
# 2. Why initialisation and activation matter: gradient flow through a deep net
# --------------------------------------------------------------------------------------


def gradient_flow(X, y, *, activation: str, n_classes: int, depth: int = 10, width: int = 64,
                  init: str = "auto", seed: int = 0) -> dict[str, torch.Tensor]:
    """dJ/dW_l of every layer of a freshly initialised deep MLP on one batch (see L2's
    ``gradient_flow`` for why a sigmoid stack's gradients vanish and a ReLU stack's do not).

    Inputs:  X (N, D), y (N,) a batch; activation; depth hidden layers of ``width`` units
    Returns: {"W1": ..., "W<depth+1>": ...} gradients in nn.Linear's (out, in) layout
    """
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    model = MLP((X.shape[1], *[width] * depth, n_classes), activation=activation, init=init)
    model.reset_parameters(generator=torch.Generator().manual_seed(seed))
    nn.CrossEntropyLoss()(model(X), y).backward()
    return {f"W{l}": lin.weight.grad.detach() for l, lin in enumerate(model.linears, start=1)}


def first_to_last_gradient_ratio(grads: Mapping[str, torch.Tensor]) -> float:
    """mean |dJ/dW_1| / mean |dJ/dW_L|: about 1 when gradients flow, << 1 when they vanish."""
    names = list(grads)
    return float(grads[names[0]].abs().mean() / grads[names[-1]].abs().mean())


# --------------------------------------------------------------------------------------
# 3. The script
# --------------------------------------------------------------------------------------

# Per-dataset defaults: widths, epochs, batch size, lr for SGD (momentum 0.9) / for Adam;
# threads: CPU threads (1 for the small nets; 0, torch's default, for MNIST).
DATASET_DEFAULTS = {
    "digits": {"hidden": "128", "epochs": 20, "batch_size": 32, "lr": {"sgd": 0.05, "adam": 1e-3},
               "threads": 1},
    "moons": {"hidden": "32,32", "epochs": 60, "batch_size": 32, "lr": {"sgd": 0.1, "adam": 1e-2},
              "threads": 1},
    # Simard et al. (2003), Table 1: 784-800-10, cross-entropy, no distortions, 1.6 % error
    "mnist": {"hidden": "800", "epochs": 20, "batch_size": 128, "lr": {"sgd": 0.05, "adam": 1e-3},
              "threads": 0},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the MLP module with torch.optim and the shared loop; plot what it learned.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean cross-entropy on the
             training set after training, evaluation mode), "grad_ratio_sigmoid",
             "grad_ratio_relu" (first_to_last_gradient_ratio of a 10-hidden-layer net)}
    """
    parser = argparse.ArgumentParser(
        description="The multilayer perceptron as an nn.Module, trained with torch.optim and "
                    "utils.training_utils.fit.")
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=None, lr=None,
                    out="runs/02_MLP/l3_mlp", threads=1)
    parser.set_defaults(threads=None)  # per dataset, see DATASET_DEFAULTS
    parser.add_argument("--hidden", type=hidden_widths, default=None,
                        help='hidden layer widths, e.g. "800" or "256,256" '
                             "(default: %(default)s)")
    parser.add_argument("--activation", choices=tuple(ACTIVATIONS), default="relu",
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
                        help="default: %(default)s")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="drop probability (default: %(default)s)")
    parser.add_argument("--norm", choices=NORMS, default="none",
                        help="normalisation in every hidden layer (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults
    if isinstance(args.lr, dict):  # the default is per optimiser: {"sgd": ..., "adam": ...}
        args.lr = args.lr[args.optimizer]
    hidden = parse_hidden(args.hidden)

    # Under `torchrun --nproc_per_node N` this joins the process group and `fit` trains
    # with DistributedDataParallel; on its own it returns (0, 1, device).
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    try:
        with data_errors():  # missing, damaged or malformed data: one message, exit status 1
            split = load_dataset(args.dataset, args.data_root, seed=args.seed)
    except SystemExit:
        cleanup_distributed()
        raise
    if is_main_process():
        print(split.summary())
    with torch_threads(args.threads):
        metrics = _train_and_report(args, hidden, split, device, out, world_size)
    cleanup_distributed()
    return metrics


def _train_and_report(args, hidden, split, device, out, world_size) -> dict[str, float]:
    """The rest of main: build, train, evaluate, save, plot."""
    sizes = (split.X_train.shape[1], *hidden, split.num_classes)
    model = MLP(sizes, activation=args.activation, dropout=args.dropout, norm=args.norm,
                init=args.init)
    model.reset_parameters(generator=torch.Generator().manual_seed(args.seed))
    main_process = is_main_process()
    if main_process:
        print(f"{model}\n{count_parameters(model):,} parameters; {args.optimizer} lr={args.lr}")
    history = train(model, split.X_train, split.y_train, optimizer=args.optimizer, lr=args.lr,
                    epochs=args.epochs, batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
                    device=device, val=(split.X_test, split.y_test), progress=args.progress,
                    log=print if args.progress else None)

    loss_fn = nn.CrossEntropyLoss()
    train_loader = make_loader(split.X_train, split.y_train, batch_size=4096, shuffle=False)
    test_loader = make_loader(split.X_test, split.y_test, batch_size=4096, shuffle=False)
    final_loss, train_accuracy = evaluate(model, train_loader, loss_fn=loss_fn, device=device)
    _, test_accuracy = evaluate(model, test_loader, loss_fn=loss_fn, device=device)
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss}
    if not main_process:  # every process holds the same weights; rank 0 reports
        return metrics
    print(f"MLP on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final training loss {final_loss:.4f}")
    save_checkpoint(out / "mlp.pt", model, epoch=args.epochs,
                    config={"sizes": list(sizes), "activation": args.activation,
                            "dropout": args.dropout, "norm": args.norm})

    title = f"L3 MLP {'-'.join(map(str, sizes))} on {args.dataset}"
    plot_curves({"train loss (during each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    model.cpu()
    if args.dataset == "moons":
        plot_decision_boundary(lambda points: predict(model, points).numpy(), split.X_test,
                               split.y_test, path=out / "decision_boundary.png",
                               title=f"{title} (test points)")
    else:
        plot_confusion_matrix(split.y_test, predict(model, split.X_test).numpy(),
                              class_names=split.classes, path=out / "confusion.png",
                              title=f"{title} (test)")
    batch = slice(0, 256)
    for name in ("sigmoid", "relu"):
        grads = gradient_flow(split.X_train[batch], split.y_train[batch], activation=name,
                              n_classes=split.num_classes, seed=args.seed)
        metrics[f"grad_ratio_{name}"] = first_to_last_gradient_ratio(grads)
        plot_gradient_flow(grads, path=out / f"gradient_flow_{name}.png",
                           title=f"10 hidden {name} layers at initialisation: |dJ/dW1| / "
                                 f"|dJ/dW11| = {metrics[f'grad_ratio_{name}']:.1e}")
    print(f"gradient flow, mean |dJ/dW_first| / |dJ/dW_last| at init: sigmoid "
          f"{metrics['grad_ratio_sigmoid']:.1e}, relu {metrics['grad_ratio_relu']:.2f}")
    print(f"plots and mlp.pt written to {out}"
          + (f" ({world_size} processes)" if world_size > 1 else ""))
    return metrics


if __name__ == "__main__":
    main()
