"""Command-line conventions shared by every level script (NumPy-only module).

Each level folder has a model file and, beside it, the script that trains it
(``train.py``, or ``train_<task>.py``). Every script accepts the same options
(DESIGN.md section 6)::

    --dataset NAME  --data-root DIR  --epochs N  --batch-size N  --lr X
    --device auto|cpu|cuda|mps  --seed N  --out DIR  --[no-]progress

and expose ``main(argv=None) -> dict`` returning their final metrics, which is
how the tour (``python -m utils.tour``) runs them. This module must stay free of
torch so that L1 scripts can use it; `utils.training_utils` adds the torch parts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


# --------------------------------------------------------------------------------------
# Option types: a bad number is a usage error that names the option, never a traceback
# from deep inside training (argparse prints "error: argument --epochs: ...").
# --------------------------------------------------------------------------------------


def _number(kind, text: str, test, expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not test(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (epochs, batch size, widths, steps)."""
    return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (0 usually means "skip" or "all")."""
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates, scales)."""
    return _number(float, text, lambda v: v > 0 and np.isfinite(v), "a number > 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (weight decay, clipping; 0 = off)."""
    return _number(float, text, lambda v: v >= 0 and np.isfinite(v), "a number >= 0")


def probability(text: str) -> float:
    """argparse type: a dropout-like probability in [0, 1)."""
    return _number(float, text, lambda v: 0 <= v < 1, "a probability in [0, 1)")


def _device_type(devices: Sequence[str]):
    """argparse type for --device: a GPU that is absent is a usage error, not a traceback.

    torch is imported only when a GPU is asked for, so L1 scripts (CPU only) never load it.
    The advice names only devices this script accepts.
    """

    def device(name: str) -> str:
        if name not in devices:
            if tuple(devices) == ("cpu",):
                raise argparse.ArgumentTypeError(
                    f"{name!r}: this level is NumPy and runs on the CPU only (--device cpu)")
            raise argparse.ArgumentTypeError(
                f"expected one of {', '.join(devices)}, got {name!r}")
        if name in ("cuda", "mps"):
            import torch

            present = (torch.cuda.is_available() if name == "cuda"
                       else torch.backends.mps.is_available())
            if not present:
                raise argparse.ArgumentTypeError(
                    f"{name!r} is not available on this machine; use --device auto (the best "
                    "device present) or --device cpu")
        return name

    return device


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    datasets: Sequence[str],
    dataset: str | None = None,
    epochs: int | None = 10,
    batch_size: int | None = 64,
    lr: float | None = 0.1,
    seed: int = 0,
    out: str = "runs",
    devices: Sequence[str] = DEVICE_CHOICES,
    counts_steps: bool = False,
    threads: int | None = None,
) -> argparse.ArgumentParser:
    """Add the curriculum's common options to ``parser`` with this script's defaults.

    ``datasets`` lists the names ``--dataset`` accepts; the first is the default
    unless ``dataset`` is given. L1 scripts pass ``devices=("cpu",)``. A default of
    ``None`` means "per dataset": ``parse_args`` fills it from the script's table and
    ``--help`` shows that table instead of "None". A script that trains for ``--steps``
    (fresh batches every step) passes ``counts_steps=True``: ``--epochs`` is then a usage
    error that says so, never silently ignored. ``threads`` (a number) adds ``--threads``
    with that default: CPU threads for torch, and for NumPy's BLAS at L1 (0: the library's
    default); the script runs its work inside ``utils.training_utils.torch_threads`` or
    ``limit_blas_threads``.
    """
    g = parser.add_argument_group("common options")
    g.add_argument("--dataset", choices=list(datasets), default=dataset or datasets[0],
                   help="dataset to train on (default: %(default)s, needs no download)")
    g.add_argument("--data-root", type=Path, default=None,
                   help="folder with a local copy of the real datasets (read-only is fine); "
                        "default: the download cache, see utils/data_loaders.py")
    if counts_steps:
        g.add_argument("--epochs", action=_RefuseEpochs, nargs="?", default=None,
                       help="not used: this script counts training steps (--steps)")
    else:
        g.add_argument("--epochs", type=positive_int, default=epochs,
                       help="default: %(default)s")
    g.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help="default: %(default)s")
    g.add_argument("--lr", type=positive_float, default=lr,
                   help="learning rate (default: %(default)s)")
    g.add_argument("--device", type=_device_type(devices), default=devices[0],
                   metavar="{" + ",".join(devices) + "}", help="default: %(default)s")
    g.add_argument("--seed", type=int, default=seed, help="default: %(default)s")
    g.add_argument("--out", type=Path, default=Path(out),
                   help="folder for plots and checkpoints (default: %(default)s)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show tqdm progress bars")
    if threads is not None:
        g.add_argument("--threads", type=non_negative_int, default=threads,
                       help="CPU threads (0: the library's default; default: %(default)s)")
    return parser


class _RefuseEpochs(argparse.Action):
    """--epochs in a script that counts steps: a usage error naming the option to use."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("argument --epochs: this script counts training steps, not epochs; "
                     "use --steps")


def set_help(parser: argparse.ArgumentParser, **helps: str) -> None:
    """Reword the help of options that add_common_args defined, by destination:
    ``set_help(parser, lr="learning rate of part 3 (default: %(default)s)")``."""
    actions = {action.dest: action for action in parser._actions}
    for dest, text in helps.items():
        if dest not in actions:
            raise ValueError(f"set_help: the parser has no option with destination {dest!r}")
        actions[dest].help = text


def _describe_per_dataset(dest: str, dataset_defaults: Mapping[str, Mapping]) -> str:
    values = [f"{name} {d[dest]}" for name, d in dataset_defaults.items() if dest in d]
    return "per dataset: " + ", ".join(values) if values else "none"


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    dataset_defaults: Mapping[str, Mapping] | None = None,
) -> argparse.Namespace:
    """Parse ``argv`` with the options checked, then fill the per-dataset defaults.

    Every option left at ``None`` whose name appears in ``dataset_defaults[dataset]``
    takes that value. In ``--help``, a ``None`` default is shown as its per-dataset
    values (``default: per dataset: digits 10, mnist 20``), never as "None".
    """
    dataset_defaults = dataset_defaults or {}
    for action in parser._actions:
        if action.default is None and action.help and "%(default)s" in action.help:
            action.help = action.help.replace(
                "%(default)s", _describe_per_dataset(action.dest, dataset_defaults))
        elif action.default is None and action.help is None and action.dest != "help":
            if any(action.dest in d for d in dataset_defaults.values()):
                action.help = "default: " + _describe_per_dataset(action.dest, dataset_defaults)
    args = parser.parse_args(argv)
    for key, value in dataset_defaults.get(getattr(args, "dataset", None), {}).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


@contextlib.contextmanager
def data_errors(hint: str | None = None):
    """Turn a dataset problem into one clear message and exit status 1.

    A missing dataset, a file whose checksum differs, or a truncated / malformed file
    (``utils.data_loaders``' three errors) already carry a message that says what was
    expected and where; the script prints it without the traceback around it::

        with data_errors():
            split = load_dataset(args.dataset, args.data_root)

    ``hint`` is added as a last line, e.g. "the default --dataset digits needs no download".
    """
    from utils.data_loaders import (  # noqa: PLC0415 (keeps import of this module light)
        DatasetChecksumError,
        DatasetFormatError,
        DatasetNotFoundError,
    )

    try:
        yield
    except (DatasetNotFoundError, DatasetChecksumError, DatasetFormatError) as err:
        raise SystemExit(f"error: {err}" + (f"\n({hint})" if hint else "")) from None


def seed_everything(seed: int) -> None:
    """Seed Python's and NumPy's global generators, and torch's when it is loaded.

    torch is seeded only if some module already imported it, so an L1 script
    never pulls torch in. For bit-for-bit reproducible GPU runs see
    ``utils.training_utils.seed_everything(seed, deterministic=True)``.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device


def prepare_out_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` (and parents) if needed and return it as a Path."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def limit_blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """A context manager that runs NumPy's BLAS (OpenBLAS, MKL) on at most ``threads`` threads.

    Small, oddly shaped matrix products (a LeNet layer's im2col product, a 100x784
    batch) gain little from several BLAS threads and can lose a lot on a busy machine,
    where OpenBLAS's spinning threads wait for each other. L1 scripts use this to pin
    NumPy to one thread; benchmarks use it to give NumPy and torch the same count.

    Uses threadpoolctl (a scikit-learn dependency, listed in requirements.txt); with
    ``threads=None`` it changes nothing (the library's default, usually one per core).
    """
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")
