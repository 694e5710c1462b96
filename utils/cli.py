"""Command-line conventions shared by every level script (NumPy-only module).

Every level file is a runnable script. They all accept the same options
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _available_device(name: str) -> str:
    """argparse type for --device: a GPU that is absent is a usage error, not a traceback.

    torch is imported only when a GPU is asked for, so L1 scripts (CPU only) never load it.
    """
    if name in ("cuda", "mps"):
        import torch

        present = (torch.cuda.is_available() if name == "cuda"
                   else torch.backends.mps.is_available())
        if not present:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not available on this machine; use --device auto (the best "
                "device present) or --device cpu")
    return name


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    datasets: Sequence[str],
    dataset: str | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.1,
    seed: int = 0,
    out: str = "runs",
    devices: Sequence[str] = DEVICE_CHOICES,
) -> argparse.ArgumentParser:
    """Add the curriculum's common options to ``parser`` with this script's defaults.

    ``datasets`` lists the names ``--dataset`` accepts; the first is the default
    unless ``dataset`` is given. L1 scripts pass ``devices=("cpu",)``.
    """
    g = parser.add_argument_group("common options")
    g.add_argument("--dataset", choices=list(datasets), default=dataset or datasets[0],
                   help="dataset to train on (default: %(default)s, needs no download)")
    g.add_argument("--data-root", type=Path, default=None,
                   help="folder with a local copy of the real datasets (read-only is fine); "
                        "default: the download cache, see utils/data_loaders.py")
    g.add_argument("--epochs", type=int, default=epochs, help="default: %(default)s")
    g.add_argument("--batch-size", type=int, default=batch_size, help="default: %(default)s")
    g.add_argument("--lr", type=float, default=lr, help="learning rate (default: %(default)s)")
    g.add_argument("--device", type=_available_device, choices=list(devices), default=devices[0],
                   help="default: %(default)s")
    g.add_argument("--seed", type=int, default=seed, help="default: %(default)s")
    g.add_argument("--out", type=Path, default=Path(out),
                   help="folder for plots and checkpoints (default: %(default)s)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show tqdm progress bars")
    return parser


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
