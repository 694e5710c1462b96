"""Train L2 logistic regression (breast_cancer) or softmax regression (digits, iris, MNIST)
with the hand-written SGD step.

The models are ``logistic_lowlevel.py`` beside this file; the derivations are in
``../theory.md``. Run from the repository root::

    python 01_Linear_Logistic/pytorch_lowlevel/train_logistic.py       # breast cancer, binary
    python 01_Linear_Logistic/pytorch_lowlevel/train_logistic.py --dataset digits
    python -m 01_Linear_Logistic.pytorch_lowlevel.train_logistic --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from utils import import_lesson
from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays
from utils.training_utils import get_device, seed_everything, torch_threads
from utils.visualization import plot_confusion_matrix, plot_curves, plot_weights

_logistic = import_lesson("01_Linear_Logistic.pytorch_lowlevel.logistic_lowlevel")
LogisticRegression, SoftmaxRegression = _logistic.LogisticRegression, _logistic.SoftmaxRegression

# Defaults per dataset: mini-batch SGD, a few epochs, a learning rate that works there.
# The script runs exactly these epochs (tol=0); the classes' defaults fit to a tolerance.
DATASET_DEFAULTS = {
    "breast_cancer": {"epochs": 20, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    "digits": {"epochs": 20, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    "iris": {"epochs": 100, "batch_size": 16, "lr": 0.1, "momentum": 0.0, "l2": 0.0},
    # MNIST: momentum averages the noisy mini-batch gradients; 10 epochs reach ~92.5 %
    "mnist": {"epochs": 10, "batch_size": 100, "lr": 0.05, "momentum": 0.9, "l2": 0.0},
}
IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28)}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train binary logistic regression (breast_cancer) or softmax regression (others).

    Returns: {"test_accuracy", "train_accuracy", "final_loss"} (final_loss: J on the
             training set after the last epoch).
    """
    parser = argparse.ArgumentParser(
        description="Logistic / softmax regression in low-level PyTorch, trained with a "
                    "hand-written SGD.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/01_Linear_Logistic/l2_logistic", threads=1)
    parser.add_argument("--l2", type=non_negative_float, default=None,
                        help="L2 penalty strength in J (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=None,
                        help="SGD momentum (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_arrays(args.dataset, data_root=args.data_root)
    print(split.summary())

    with torch_threads(args.threads):  # small matrices: 1 thread is fastest (0: torch's)
        return _train_and_report(args, split, device, out)


def _train_and_report(args, split, device, out) -> dict[str, float]:
    """The rest of main: build, fit, evaluate, plot."""
    settings = dict(solver="sgd", lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                    l2=args.l2, seed=args.seed, momentum=args.momentum, device=device, tol=0.0)
    if split.task == "binary":
        model = LogisticRegression(**settings)
    else:
        model = SoftmaxRegression(n_classes=split.num_classes, **settings)
    model.fit(split.X_train, split.y_train, progress=args.progress)

    train_accuracy = model.score(split.X_train, split.y_train)
    test_accuracy = model.score(split.X_test, split.y_test)
    final_loss = model.history[-1]
    print(f"{type(model).__name__} on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final J {final_loss:.4f}")

    title = f"L2 {type(model).__name__} on {args.dataset}"
    plot_curves({"train J": model.history}, path=out / "loss.png", ylabel="cross-entropy + penalty",
                title=title)
    plot_confusion_matrix(split.y_test, model.predict(split.X_test).cpu().numpy(),
                          class_names=split.classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    if args.dataset in IMAGE_SHAPES:
        plot_weights(model.W.detach().cpu(), image_shape=IMAGE_SHAPES[args.dataset],
                     path=out / "weights.png", title=f"{title}: one template per class")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss}


if __name__ == "__main__":
    main()
