"""Worker script for the DDP test of `utils.training_utils.fit` (tests/test_training_utils.py).

Launched as::

    python -m torch.distributed.run --nproc_per_node 2 --standalone \
        utils/tests/ddp_worker.py --out DIR

(with the repository root on PYTHONPATH). Every process builds the same small MLP
and the same seeded data, and trains through `fit` with a per-process batch of
PER_PROCESS_BATCH on the CPU ("gloo" backend, no network beyond localhost). `fit`
itself wraps the model in DistributedDataParallel and splits the data with a
DistributedSampler. Rank 0's checkpoint (written by `fit`) holds the final weights,
and rank 0 writes the History to DIR/history.json.

The test imports the builders below (`make_data`, `make_model`, `make_optimizer`,
`train`) to run the same training in one process with a batch of
WORLD_SIZE * PER_PROCESS_BATCH, so the two runs cannot drift apart by accident.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from utils.training_utils import (
    History,
    cleanup_distributed,
    distributed_loader,
    fit,
    is_main_process,
    make_lr_scheduler,
    setup_distributed,
)

WORLD_SIZE = 2
PER_PROCESS_BATCH = 4
N_TRAIN = 48  # a multiple of WORLD_SIZE * PER_PROCESS_BATCH: no padding, no short batch
N_VAL = 21  # odd on purpose: the two ranks evaluate 11 and 10 samples
FEATURES, HIDDEN, CLASSES = 5, 8, 3
EPOCHS = 2
LR = 0.2
CLIP = 1.0
SEED = 0


def make_data() -> tuple[TensorDataset, TensorDataset]:
    """Fixed (train, val) datasets: x (N, FEATURES) float32, y (N,) int64 in [0, CLASSES)."""
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(N_TRAIN + N_VAL, FEATURES, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1.0).long()  # labels 0, 1, 2
    return TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])


def make_model() -> nn.Module:
    """Two-layer MLP with weights fixed by SEED (identical in every process)."""
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES))


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum: its state also has to stay identical across the ranks."""
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)


def train(model: nn.Module, batch_size: int, checkpoint_path: Path | None = None) -> History:
    """Train ``model`` through `fit` with loaders of ``batch_size`` in this process.

    Under torchrun ``batch_size`` is the per-process batch; `fit` splits the data.
    A per-batch cosine schedule and gradient clipping run too, so that they are
    checked under DDP as well.
    """
    train_set, val_set = make_data()
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=False)
    val_loader = DataLoader(val_set, batch_size=batch_size, shuffle=False)
    optimizer = make_optimizer(model)
    steps_per_epoch = len(distributed_loader(train_loader))  # this process's batches
    scheduler = make_lr_scheduler(optimizer, "cosine", epochs=EPOCHS,
                                  steps_per_epoch=steps_per_epoch)
    return fit(
        model, train_loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
        epochs=EPOCHS, val_loader=val_loader, scheduler=scheduler, scheduler_step="batch",
        clip_grad_norm=CLIP, device="cpu", checkpoint_path=checkpoint_path,
        progress=False, log=None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    args = parser.parse_args(argv)
    rank, world_size, _ = setup_distributed("cpu")
    if world_size != WORLD_SIZE:
        raise SystemExit(f"run me with --nproc_per_node {WORLD_SIZE}, not {world_size}")
    try:
        history = train(make_model(), PER_PROCESS_BATCH, args.out / "ddp_checkpoint.pt")
        if is_main_process():
            (args.out / "history.json").write_text(json.dumps(history.to_dict()))
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main()
