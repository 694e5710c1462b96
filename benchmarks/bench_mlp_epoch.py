"""One MNIST epoch of the 784-800-10 MLP: lesson 02's L1 NumPy network vs the same one in torch.nn.

Run from the repository root::

    python -m benchmarks.bench_mlp_epoch --data-root DIR
    python -m benchmarks.bench_mlp_epoch --synthetic        # no MNIST at hand: random data

Both sides do exactly the same work per mini-batch: index a shuffled batch of 100
images, forward through Linear(784, 800) -> ReLU -> Linear(800, 10), softmax
cross-entropy, backward, and one SGD step with momentum 0.9 (lr 0.05). L1 is
``02_MLP/numpy/mlp_numpy.py`` (``build_mlp``, ``SoftmaxCrossEntropy``, ``SGD``), in
float32; the reference is ``nn.Sequential`` + ``F.cross_entropy`` + ``torch.optim.SGD``
on float32 tensors. The evaluation pass is not timed.

An epoch's time does not depend on the pixel values, so ``--synthetic`` (random images
of MNIST's shape) measures the same thing when the real files are missing.

Threads: NumPy's BLAS and PyTorch run on ``--threads`` threads (default 1), as in
``bench_conv.py``. Timing: ``time.perf_counter`` around each whole epoch, after a
warm-up of a few batches; with ``--epochs N`` the median of N epochs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.bench_conv import set_threads
from benchmarks.timing import ratio_stats
from utils import import_lesson
from utils.data_loaders import DatasetNotFoundError, load_arrays

mlp = import_lesson("02_MLP.numpy.mlp_numpy")

SIZES = (784, 800, 10)  # Simard et al. (2003)'s network
BATCH_SIZE, LR, MOMENTUM = 100, 0.05, 0.9
WARMUP_BATCHES = 5


def l1_epoch(model, optimizer, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
    """One epoch of the L1 network over the mini-batches given by ``order``."""
    loss_fn = mlp.SoftmaxCrossEntropy()
    for start in range(0, len(order), BATCH_SIZE):
        idx = order[start:start + BATCH_SIZE]
        loss_fn.forward(model.forward(X[idx]), y[idx])
        model.backward(loss_fn.backward())
        optimizer.step()


def torch_epoch(net, optimizer, X: torch.Tensor, y: torch.Tensor, order: np.ndarray) -> None:
    """One epoch of the torch.nn network over the same mini-batches."""
    order_t = torch.from_numpy(order)
    for start in range(0, len(order), BATCH_SIZE):
        idx = order_t[start:start + BATCH_SIZE]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(X[idx]), y[idx]).backward()
        optimizer.step()


def load_mnist_or_synthetic(data_root, synthetic: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST's 60,000 training images (N, 784) float32 and labels, or random stand-ins."""
    if not synthetic:
        try:
            split = load_arrays("mnist", data_root=data_root, flatten=True)
            return split.X_train, split.y_train, "MNIST"
        except DatasetNotFoundError as err:
            print(f"note: {str(err).splitlines()[0]}\n      timing random data of MNIST's "
                  "shape instead (--synthetic); an epoch costs the same")
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (60_000, 784)).astype(np.float32)
    return X, rng.integers(0, 10, 60_000), "random data of MNIST's shape"


def main(argv: list[str] | None = None) -> dict:
    """Time one training epoch of the 784-800-10 MLP at L1 (NumPy) and in torch.nn.

    Inputs:  argv - command-line arguments (None: sys.argv).
    Returns: the results as a dict (also written to --json PATH when given).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with a local copy of MNIST (see utils/data_loaders.py)")
    parser.add_argument("--synthetic", action="store_true",
                        help="time on random data of MNIST's shape (no files needed)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for PyTorch AND NumPy's BLAS (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs timed per side; the median is reported (default: 1)")
    parser.add_argument("--images", type=int, default=None,
                        help="time on the first N images only (default: all 60,000)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.epochs < 1:
        parser.error("--threads and --epochs must be >= 1")
    if args.images is not None and args.images < 1:
        parser.error(f"--images must be >= 1, got {args.images}")
    X, y, source = load_mnist_or_synthetic(args.data_root, args.synthetic)
    X, y = X[:args.images], y[:args.images]
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(X)) for _ in range(args.epochs)]
    warmup = orders[0][:WARMUP_BATCHES * BATCH_SIZE]

    with set_threads(args.threads):
        model = mlp.build_mlp(SIZES, activation="relu", rng=0, dtype=np.float32)
        optimizer = mlp.SGD(model, LR, momentum=MOMENTUM)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]))
        optimizer_t = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        l1_epoch(model, optimizer, X, y, warmup)
        torch_epoch(net, optimizer_t, X_t, y_t, warmup)
        # interleaved: epoch e of L1, then epoch e of torch, so that load changes hit both
        l1_times, torch_times = [], []
        for order in orders:
            start = time.perf_counter()
            l1_epoch(model, optimizer, X, y, order)
            l1_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch_epoch(net, optimizer_t, X_t, y_t, order)
            torch_times.append(time.perf_counter() - start)

    l1, ref = statistics.median(l1_times), statistics.median(torch_times)
    stats = ratio_stats({"l1": l1_times, "torch": torch_times}, "l1", "torch")
    print(f"\n(c) one epoch of the {'-'.join(map(str, SIZES))} MLP on {source} ({len(X):,} "
          f"images, batch {BATCH_SIZE}, SGD momentum {MOMENTUM}), float32, {args.threads} "
          f"thread(s), median of {args.epochs} interleaved epochs")
    print(f"    L1 NumPy (lesson 02):        {l1:7.2f} s")
    print(f"    torch.nn + torch.optim:      {ref:7.2f} s")
    print(f"    L1 / torch:                  {stats.median:7.2f}x")
    print(f"    per-epoch ratios: {stats.summary()}")
    results = {"data": source, "threads": args.threads, "epochs_timed": args.epochs,
               "batch_size": BATCH_SIZE, "l1_seconds_per_epoch": l1,
               "torch_seconds_per_epoch": ref, "ratio_l1_vs_torch": stats.median,
               "ratio_spread": stats.as_dict()}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
