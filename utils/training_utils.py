"""The torch side of the shared training infrastructure (used by L2 and L3 scripts).

Every L2/L3 lesson trains its model the same way, so the loop lives here once and
the lesson files stay about the model. What this module gives a script::

    from utils.training_utils import (add_common_args, fit, get_device, make_lr_scheduler,
                                      seed_everything, setup_distributed, cleanup_distributed)

    rank, world_size, device = setup_distributed(args.device)  # (0, 1, device) without torchrun
    seed_everything(args.seed)
    model = LeNet5().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = make_lr_scheduler(optimizer, "cosine", epochs=args.epochs)
    history = fit(model, train_loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
                  epochs=args.epochs, val_loader=val_loader, scheduler=scheduler, device=device,
                  checkpoint_path=args.out / "checkpoint.pt", progress=args.progress)
    cleanup_distributed()

The same script runs on one CPU, one GPU, or several processes started by
``torchrun --nproc_per_node N script.py``: `fit` notices an initialised process
group and does the distributed parts itself (section "Distributed data parallel"
below).

What `fit` does in one epoch, and why:

1. ``model.train()`` so dropout drops and batch norm uses batch statistics.
2. For each batch ``(inputs, targets)``: forward, ``loss = loss_fn(outputs, targets)``,
   ``zero_grad``, ``backward``, optional clipping of the global gradient norm, ``step``,
   and, for per-batch schedules, ``scheduler.step()``.
3. The epoch's training loss is the mean over *samples*: each batch's (mean) loss is
   weighted by its size, ``L = sum_b n_b * L_b / sum_b n_b``, so a short last batch
   counts for what it holds. The metric is averaged the same way.
4. Validation in ``model.eval()`` under ``torch.no_grad()`` (no graph is built: less
   memory, faster), with the same sample-weighted means.
5. Per-epoch schedules step; the learning rate the epoch *used* is recorded, together
   with the losses, metrics and wall time, in a `History`.
6. With ``checkpoint_path``, the model, optimizer, scheduler, epoch and history are
   written atomically, so a crash mid-write never destroys the previous checkpoint.

Resuming an interrupted run (the checkpoint stores the number of finished epochs)::

    state = load_checkpoint(path, model, optimizer, scheduler)   # restores all three
    history = History.from_dict(state["history"])
    fit(model, loader, ..., epochs=args.epochs, start_epoch=state["epoch"], history=history)

Distributed data parallel (DDP): each of the N processes holds a full copy of the
model and sees 1/N of every epoch's data. After ``backward`` the gradients are
averaged across processes (an all-reduce), so every copy takes the identical step.
With a mean-reduced loss over B samples per process, the averaged gradient is the
gradient of the mean loss over all N*B samples: one process with batch N*B would
take the same step. When `torch.distributed` is initialised, `fit`

- wraps the model in ``DistributedDataParallel`` (unless it already is),
- gives the training loader a ``DistributedSampler`` (see `distributed_loader`;
  ``batch_size`` stays the *per-process* batch) and calls ``set_epoch`` every epoch
  so each epoch shuffles differently but identically on all processes,
- sums losses, metrics and sample counts across processes before logging them,
- shows progress, logs and writes checkpoints on rank 0 only.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import lr_scheduler as torch_schedulers
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
)
from tqdm.auto import tqdm

from utils import cli
from utils.cli import add_common_args, prepare_out_dir  # re-exported for L2/L3 scripts

__all__ = [
    "SCHEDULER_NAMES",
    "History",
    "accuracy",
    "add_common_args",
    "cleanup_distributed",
    "distributed_loader",
    "evaluate",
    "fit",
    "get_device",
    "is_main_process",
    "load_checkpoint",
    "make_lr_scheduler",
    "prepare_out_dir",
    "save_checkpoint",
    "seed_everything",
    "setup_distributed",
    "unwrap_model",
]


# ----------------------------------------------------------------------------------------
# Seeds and devices
# ----------------------------------------------------------------------------------------


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed``.

    Inputs:
        seed: int, the seed for every generator.
        deterministic: bool. True also asks for bit-for-bit reproducible kernels:
            ``torch.use_deterministic_algorithms(True)`` (ops without a deterministic
            version then raise instead of silently varying), cuDNN autotuning off
            (``benchmark=False``, it may pick different kernels run to run) and
            ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which cuBLAS needs for reproducible
            matmuls on CUDA >= 10.2. Call it before the first CUDA operation, since
            cuBLAS reads that variable when it starts. False leaves these global
            switches as they are.
    Returns:
        None.

    Seeding alone already makes CPU runs repeatable; ``deterministic`` matters on GPUs.
    """
    cli.seed_everything(seed)  # Python's `random`, NumPy, PYTHONHASHSEED (and torch)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # queued lazily: harmless without a GPU
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def _available_devices() -> list[str]:
    """Names of the device types this machine can use, e.g. ``["cpu", "cuda"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


@contextlib.contextmanager
def torch_threads(threads: int):
    """Run the block with torch on ``threads`` CPU threads (0: leave torch's default), then
    restore the previous setting.

    The lessons' models are small: splitting each matrix product over several threads gains
    little, and on a busy machine the threads wait for each other (lesson 03 measured a LeNet
    training step 4-7 times slower with 2 threads than with 1 on a loaded 2-core machine).
    Hence the scripts' ``--threads`` option, 1 by default in most of them.

        with torch_threads(args.threads):
            return _run(args)
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: torch's default), got {threads}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def get_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a ``--device`` value into a ``torch.device``, checking that it exists.

    Inputs:
        name: "auto" (CUDA if available, else Apple's MPS if available, else CPU),
            "cpu", "cuda", "cuda:N", "mps", or a ``torch.device``.
    Returns:
        torch.device.
    Raises:
        ValueError naming the devices this machine has, when ``name`` asks for one
        it lacks or is not a device name at all.
    """
    available = _available_devices()
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as 'auto' or 'cpu'; got {type(name)}")
    if name == "auto":
        for preferred in ("cuda", "mps"):
            if preferred in available:
                return torch.device(preferred)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"unknown device {name!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' "
            f"(this machine has: {', '.join(available)})"
        ) from None
    if device.type not in available:
        raise ValueError(
            f"device {name!r} is not available on this machine (it has: "
            f"{', '.join(available)}); pass --device auto to pick the best one present"
        )
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ValueError(f"device {name!r} does not exist: this machine has {count} GPU(s)")
    return device


# ----------------------------------------------------------------------------------------
# Metric
# ----------------------------------------------------------------------------------------


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of correct predictions.

    Inputs:
        logits: float tensor, either
            (N, C) or (..., C) with C > 1 - class scores; the prediction is the argmax
                over the last axis; targets then hold class indices of shape (N,) / (...);
            (N,) or (N, 1) - one logit per sample for a binary task; the prediction is
                ``logit > 0`` (probability sigmoid(logit) > 0.5); targets hold 0/1
                (any dtype, shape (N,) or (N, 1)).
        targets: tensor as described above, on the same device.
    Returns:
        float in [0, 1].
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("accuracy expects two tensors (logits, targets)")
    binary = logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1)
    if binary:
        if targets.numel() != logits.numel() or targets.ndim > 2:
            raise ValueError(
                f"binary accuracy: logits {tuple(logits.shape)} need targets of shape "
                f"({logits.shape[0]},) with 0/1 labels; got {tuple(targets.shape)}"
            )
        predicted = logits.reshape(-1) > 0
        correct = predicted == (targets.reshape(-1) > 0.5)
    else:
        if logits.ndim < 2 or targets.shape != logits.shape[:-1]:
            raise ValueError(
                f"accuracy: class scores {tuple(logits.shape)} need integer targets of shape "
                f"{tuple(logits.shape[:-1])}; got {tuple(targets.shape)}"
            )
        if targets.is_floating_point():
            raise ValueError(
                f"accuracy: targets must be class indices (an integer tensor), got {targets.dtype}"
            )
        correct = logits.argmax(dim=-1) == targets
    if correct.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return correct.float().mean().item()


# ----------------------------------------------------------------------------------------
# Distributed helpers
# ----------------------------------------------------------------------------------------


def _distributed() -> bool:
    """True inside a process group (started by `setup_distributed` under torchrun)."""
    return dist.is_available() and dist.is_initialized()


def setup_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun; otherwise do nothing.

    torchrun sets RANK (this process, 0..world_size-1), WORLD_SIZE (number of
    processes) and LOCAL_RANK (this process's index on its machine, used to pick its GPU).

    Inputs:
        device: the script's ``--device`` value ("auto" by default). Under torchrun,
            CUDA (when available and not overridden by "cpu") gives the "nccl" backend
            and GPU number LOCAL_RANK; otherwise the CPU with the "gloo" backend.
    Returns:
        (rank, world_size, device): (int, int, torch.device); ``(0, 1, get_device(device))``
        when not launched by torchrun with more than one process.
    """
    env = os.environ
    launched = all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if not launched or int(env["WORLD_SIZE"]) <= 1:
        return 0, 1, get_device(device)
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run without torchrun")
    local_rank = int(env["LOCAL_RANK"])
    wanted = get_device(device)
    if wanted.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} "
                "GPU(s): start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)  # so "cuda" means this process's own GPU
        device_out, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device_out, backend = torch.device("cpu"), "gloo"  # DDP does not run on MPS
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)  # reads MASTER_ADDR/PORT etc. from env
    return dist.get_rank(), dist.get_world_size(), device_out


def cleanup_distributed() -> None:
    """Leave the process group, if this process is in one (call once, at the end)."""
    if _distributed():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0, and in any run that is not distributed (it prints, plots, saves)."""
    return not _distributed() or dist.get_rank() == 0


def _comm_device() -> torch.device:
    """Where tensors for collectives must live: this GPU for nccl, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _sum_across_processes(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity when not distributed)."""
    if not _distributed():
        return values
    summed = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.tolist()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP / DataParallel / ``torch.compile`` wrapper.

    Inputs:
        model: nn.Module, wrapped or not.
    Returns:
        nn.Module whose ``state_dict`` keys carry no ``module.`` / ``_orig_mod.`` prefix.
    """
    while True:
        if isinstance(model, (DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule
        else:
            return model


def _rebuild_loader(loader: DataLoader, sampler: Sampler) -> DataLoader:
    """A copy of ``loader`` that draws its indices from ``sampler``."""
    if loader.batch_size is None:
        raise ValueError(
            "this DataLoader was built with a custom batch_sampler, which cannot be split "
            "across processes automatically; give it a DistributedSampler yourself"
        )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,  # per process: the global batch is world_size times it
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
    )


def distributed_loader(loader: Iterable) -> Iterable:
    """The training loader each process should iterate: its 1/world_size share.

    Not distributed, or already driven by a ``DistributedSampler``: ``loader`` itself.
    Otherwise a copy with the same batch size (per process) and a ``DistributedSampler``
    that shuffles when the original did (a ``RandomSampler``). With ``shuffle=False``
    rank r gets indices r, r + world_size, r + 2 * world_size, ...; with shuffling,
    every rank draws the same permutation (seeded from rank 0's torch seed) and takes
    its share. The sampler pads with repeated samples so that all ranks run the same
    number of steps - each step is a collective, a missing one would hang. (Those few
    repeats also count in the logged training loss; evaluation never repeats a sample.)

    Call it before sizing a per-batch LR schedule: ``steps_per_epoch=len(distributed_loader(l))``.

    Inputs:
        loader: a DataLoader (or any iterable of batches when not distributed).
    Returns:
        the loader to iterate in this process.
    """
    if not _distributed() or not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    if isinstance(loader.dataset, IterableDataset):
        raise ValueError(
            "an IterableDataset cannot be split across processes by a sampler: make each "
            "process yield its own share (see torch.utils.data.get_worker_info and the rank)"
        )
    shuffle = isinstance(loader.sampler, RandomSampler)
    seed = loader.generator.initial_seed() if loader.generator is not None else torch.initial_seed()
    # All ranks must agree on the permutation: take rank 0's seed.
    shared_seed = torch.tensor([seed % 2**62], dtype=torch.int64, device=_comm_device())
    dist.broadcast(shared_seed, src=0)
    sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=int(shared_seed.item()))
    return _rebuild_loader(loader, sampler)


class _EvalShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... of a dataset of length n, *without* padding.

    Evaluation must count every sample exactly once; the ranks may get one sample
    more or less, which is fine because evaluation runs the unwrapped model (no
    collectives per step) and only sums the totals at the end.
    """

    def __init__(self, n: int, rank: int, world_size: int):
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


def _eval_loader(loader: Iterable) -> Iterable:
    """This process's share of an evaluation loader (the loader itself when not distributed)."""
    if not _distributed() or not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, DistributedSampler) or isinstance(
        loader.dataset, IterableDataset
    ):
        return loader  # already sharded by the caller
    shard = _EvalShardSampler(len(loader.dataset), dist.get_rank(), dist.get_world_size())
    return _rebuild_loader(loader, shard)


# ----------------------------------------------------------------------------------------
# One pass over a loader
# ----------------------------------------------------------------------------------------


def _to_device(value: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors inside lists / tuples / dicts, to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, Mapping):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _split_batch(batch: Any, device: torch.device) -> tuple[Any, Any]:
    """``(inputs, targets)`` of one batch, on ``device``."""
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        kind = f"a {type(batch).__name__}" + (
            f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else ""
        )
        raise TypeError(
            f"fit/evaluate expect every batch to be a pair (inputs, targets); got {kind}. "
            "Make the Dataset return (x, y), or a ((x1, x2), y) pair for a model of two inputs"
        )
    return _to_device(batch[0], device), _to_device(batch[1], device)


def _forward(model: nn.Module, inputs: Any) -> Any:
    """``model(inputs)``, or ``model(*inputs)`` when the inputs are a list/tuple of tensors."""
    if isinstance(inputs, (list, tuple)):
        return model(*inputs)
    return model(inputs)


def _detach(outputs: Any) -> Any:
    """Outputs cut from the graph before the metric sees them (no memory held for grads)."""
    return outputs.detach() if isinstance(outputs, torch.Tensor) else outputs


def _batch_size(targets: Any) -> int:
    """Number of samples in a batch: the length of the targets' first axis."""
    if isinstance(targets, torch.Tensor):
        return int(targets.shape[0]) if targets.ndim > 0 else 1
    return len(targets)


def _check_finite(loss_value: float, where: str) -> None:
    """Stop with an explanation instead of training on with NaN weights."""
    if not math.isfinite(loss_value):
        raise FloatingPointError(
            f"the loss became {loss_value} {where}. Usual causes: a learning rate too high "
            "(try 10x smaller, or clip_grad_norm), log(0) in a hand-written loss, bad input data"
        )


def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    metric_fn: Callable[[Any, Any], float] | None = accuracy,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Mean loss and metric of ``model`` over ``loader``, without updating anything.

    Runs in ``eval()`` mode under ``torch.no_grad()`` and puts the model back into the
    mode it was in. Under DDP each process evaluates its share (every sample once) with
    the unwrapped model and the totals are summed across processes, so every rank gets
    the same, exact answer.

    Inputs:
        model: nn.Module (DDP-wrapped is fine).
        loader: iterable of (inputs, targets) batches.
        loss_fn: (outputs, targets) -> scalar tensor, the *mean* over the batch.
        metric_fn: (outputs, targets) -> float mean over the batch, or None.
        device: where to run.
    Returns:
        (loss, metric): floats, means over samples, ``L = sum_b n_b L_b / sum_b n_b``;
        metric is nan when ``metric_fn`` is None.
    """
    device = get_device(device)
    net = unwrap_model(model).to(device)  # no DDP forward: ranks may hold unequal shares
    was_training = net.training
    net.eval()
    loss_sum = metric_sum = 0.0
    n_seen = 0
    with torch.no_grad():
        for batch in _eval_loader(loader):
            inputs, targets = _split_batch(batch, device)
            outputs = _forward(net, inputs)
            n = _batch_size(targets)
            loss_sum += loss_fn(outputs, targets).item() * n
            if metric_fn is not None:
                metric_sum += float(metric_fn(outputs, targets)) * n
            n_seen += n
    net.train(was_training)
    loss_sum, metric_sum, n_total = _sum_across_processes([loss_sum, metric_sum, float(n_seen)])
    if n_total == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    metric = metric_sum / n_total if metric_fn is not None else math.nan
    return loss_sum / n_total, metric


# ----------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------


@dataclass
class History:
    """What `fit` measured, one entry per epoch (lists stay empty when not measured).

    train_loss, val_loss: mean loss over the epoch's samples (val: after the epoch).
    train_metric, val_metric: the same for ``metric_fn`` (empty when it is None; the
        training metric is measured on the fly, while the weights still change).
    lr: learning rate of the first parameter group at the start of the epoch.
    epoch_time: seconds of wall time for the epoch, validation included.
    epoch: number of epochs finished (1, 2, ...; continues after a resume).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        """Plain dict of lists (JSON-friendly, and loadable with weights_only=True)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, list]) -> History:
        """Inverse of `to_dict` (e.g. ``History.from_dict(checkpoint["history"])``)."""
        return cls(**{k: list(v) for k, v in data.items()})


def _check_scheduler_unit(scheduler: Any, scheduler_step: str, loader: Iterable) -> None:
    """Refuse a schedule from `make_lr_scheduler` sized for the other stepping unit."""
    if scheduler_step == "batch" and isinstance(scheduler, torch_schedulers.ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau watches a per-epoch loss: use scheduler_step='epoch'")
    planned = getattr(scheduler, "_steps_per_epoch", None)
    if planned is None:
        return  # a scheduler built by hand: the caller knows its unit
    if scheduler_step == "epoch" and planned != 1:
        raise ValueError(
            f"the scheduler was built with steps_per_epoch={planned} (a per-batch schedule) "
            "but fit got scheduler_step='epoch'; pass scheduler_step='batch'"
        )
    if scheduler_step == "batch":
        try:
            n_batches = len(loader)
        except TypeError:
            return  # a loader of unknown length: cannot check
        if planned != n_batches:
            raise ValueError(
                f"the scheduler was built with steps_per_epoch={planned} but this process "
                f"runs {n_batches} batches per epoch; build it with "
                "steps_per_epoch=len(distributed_loader(train_loader))"
            )


def _current_lr(optimizer: Any) -> float:
    """Learning rate of the first parameter group (or a hand-written optimizer's ``lr``)."""
    if hasattr(optimizer, "param_groups"):
        return float(optimizer.param_groups[0]["lr"])
    return float(getattr(optimizer, "lr", math.nan))


def _zero_grad(optimizer: Any) -> None:
    """Clear the gradients; None instead of zeros frees their memory until backward."""
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer.zero_grad()


def _step_scheduler_for_epoch(scheduler: Any, val_loss: float | None, train_loss: float) -> None:
    """One per-epoch scheduler step; ReduceLROnPlateau needs the loss it watches."""
    if isinstance(scheduler, torch_schedulers.ReduceLROnPlateau):
        scheduler.step(val_loss if val_loss is not None else train_loss)
    else:
        scheduler.step()


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    val_loader: Iterable | None = None,
    metric_fn: Callable[[Any, Any], float] | None = accuracy,
    scheduler: Any = None,
    scheduler_step: str = "epoch",
    clip_grad_norm: float | None = None,
    device: str | torch.device = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], Any] | None = print,
    start_epoch: int = 0,
    history: History | None = None,
) -> History:
    """Train ``model`` for epochs ``start_epoch .. epochs-1``; return what was measured.

    Inputs:
        model: nn.Module; moved to ``device`` (build the optimizer from its parameters
            before or after: ``Module.to`` keeps the same Parameter objects).
        train_loader: iterable of (inputs, targets) batches. ``inputs`` may be a tensor,
            or a list/tuple of tensors passed to the model as separate arguments.
        loss_fn: (outputs, targets) -> scalar tensor, the mean over the batch.
        optimizer: a torch.optim optimizer over the model's parameters, or a hand-written
            one (L2) with ``zero_grad()``, ``step()`` and ``param_groups`` or ``lr``
            (and ``state_dict()`` when checkpointing).
        epochs: total number of epochs (the last epoch index is ``epochs - 1``).
        val_loader: optional, evaluated after every epoch.
        metric_fn: (outputs, targets) -> float batch mean (default `accuracy`), or None.
        scheduler: optional LR scheduler (e.g. from `make_lr_scheduler`).
        scheduler_step: "epoch" (step after every epoch) or "batch" (after every
            optimizer step: warm-up, one-cycle).
        clip_grad_norm: if given, rescale all gradients together so that their global
            L2 norm ``||g|| = sqrt(sum_p ||g_p||^2)`` is at most this value:
            ``g <- g * min(1, max_norm / (||g|| + 1e-6))``. Keeps the direction.
        device: where to train ("cpu", "cuda", "auto", a torch.device, ...).
        checkpoint_path: if given, a checkpoint (model, optimizer, scheduler,
            ``epoch`` = epochs finished, ``history``) is written there atomically at the
            end of every epoch. Resume: see the module docstring.
        progress: show a tqdm bar per epoch (rank 0 only).
        log: called with one summary line per epoch (rank 0 only); None for silence.
        start_epoch: first epoch to run; a resumed run passes ``checkpoint["epoch"]``.
        history: a History to append to (a resumed run's), or None for a new one.
    Returns:
        History (the same object as ``history`` when one was given).
    """
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
    if not 0 <= start_epoch <= epochs:
        raise ValueError(f"need 0 <= start_epoch <= epochs; got {start_epoch} and {epochs}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be positive or None, got {clip_grad_norm}")
    device = get_device(device)
    model.to(device)
    train_model = model
    if _distributed() and not isinstance(model, DistributedDataParallel):
        # DDP all-reduces (averages) the gradients during backward; device_ids tells it
        # which single GPU this replica lives on (None for the CPU).
        device_ids = None
        if device.type == "cuda":
            device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
        train_model = DistributedDataParallel(model, device_ids=device_ids)
    train_loader = distributed_loader(train_loader)
    if scheduler is not None:
        _check_scheduler_unit(scheduler, scheduler_step, train_loader)
    history = History() if history is None else history
    main = is_main_process()
    metric_name = getattr(metric_fn, "__name__", "metric")

    def say(line: str) -> None:
        if log is not None and main:
            log(line)

    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        sampler = getattr(train_loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)  # a new shuffle every epoch, the same on every rank
        lr_used = _current_lr(optimizer)

        # ---- train -------------------------------------------------------------------
        train_model.train()
        loss_sum = metric_sum = 0.0
        n_seen = 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not (progress and main),
            leave=False,
            dynamic_ncols=True,
        )
        for step, batch in enumerate(bar):
            inputs, targets = _split_batch(batch, device)
            outputs = _forward(train_model, inputs)
            loss = loss_fn(outputs, targets)
            loss_value = loss.item()
            # Checked before the update, so the model in memory keeps finite weights.
            _check_finite(loss_value, f"at epoch {epoch + 1}, batch {step + 1}")
            _zero_grad(optimizer)
            loss.backward()
            if clip_grad_norm is not None:
                # After backward, DDP's gradients are already averaged, so every rank
                # computes the same norm and clips identically.
                torch.nn.utils.clip_grad_norm_(train_model.parameters(), clip_grad_norm)
            optimizer.step()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()

            n = _batch_size(targets)
            loss_sum += loss_value * n  # sum_b n_b L_b: a sample-weighted mean later
            if metric_fn is not None:
                metric_sum += float(metric_fn(_detach(outputs), targets)) * n
            n_seen += n
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", refresh=False)
        bar.close()
        loss_sum, metric_sum, n_total = _sum_across_processes(
            [loss_sum, metric_sum, float(n_seen)]
        )
        if n_total == 0:
            raise ValueError("fit: the training loader yielded no batches")
        history.train_loss.append(loss_sum / n_total)
        if metric_fn is not None:
            history.train_metric.append(metric_sum / n_total)

        # ---- validate ----------------------------------------------------------------
        val_loss = None
        if val_loader is not None:
            val_loss, val_metric = evaluate(
                model, val_loader, loss_fn=loss_fn, metric_fn=metric_fn, device=device
            )
            history.val_loss.append(val_loss)
            if metric_fn is not None:
                history.val_metric.append(val_metric)

        if scheduler is not None and scheduler_step == "epoch":
            _step_scheduler_for_epoch(scheduler, val_loss, history.train_loss[-1])
        history.lr.append(lr_used)
        history.epoch.append(epoch + 1)
        history.epoch_time.append(time.perf_counter() - started)

        line = f"epoch {epoch + 1}/{epochs}  train loss {history.train_loss[-1]:.4f}"
        if metric_fn is not None:
            line += f"  {metric_name} {history.train_metric[-1]:.4f}"
        if val_loader is not None:
            line += f"  | val loss {history.val_loss[-1]:.4f}"
            if metric_fn is not None:
                line += f"  {metric_name} {history.val_metric[-1]:.4f}"
        line += f"  | lr {lr_used:.3g}  {history.epoch_time[-1]:.1f}s"
        say(line)

        if checkpoint_path is not None:
            if main:
                save_checkpoint(
                    checkpoint_path, model, optimizer, epoch=epoch + 1, scheduler=scheduler,
                    history=history.to_dict(),
                )
            if _distributed():
                dist.barrier()  # nobody reads the checkpoint before rank 0 has written it
    return history


# ----------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
# What torch.load(weights_only=True) accepts without extra allow-listing.
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError if ``value`` would make the checkpoint unloadable with weights_only."""
    if isinstance(value, (torch.Tensor, torch.Size, *_PLAIN_SCALARS)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    hint = ""
    if type(value).__module__ == "numpy":
        hint = " (convert it with torch.from_numpy(...) or .tolist())"
    elif isinstance(value, os.PathLike):
        hint = " (store str(path))"
    raise TypeError(
        f"save_checkpoint: {where} is a {type(value).__module__}.{type(value).__name__}; "
        "extra entries must be plain Python values (None, bool, int, float, str, lists, "
        f"tuples, dicts) or tensors, so that the file loads with weights_only=True{hint}"
    )


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    epoch: int | None = None,
    scheduler: Any = None,
    **extra: Any,
) -> Path:
    """Write model (and optimizer / scheduler) state to ``path``, atomically.

    Atomic: the data go to a temporary file in the same folder, are flushed to disk
    (``fsync``), and only then renamed over ``path`` with ``os.replace`` - a rename is
    all-or-nothing on POSIX and Windows, so a crash leaves either the old complete
    checkpoint or the new one, never half a file. Wrappers (DDP, DataParallel,
    torch.compile) are removed first, so the file loads into a plain model.

    Inputs:
        path: file to write; its folder is created if needed.
        model: nn.Module.
        optimizer, scheduler: optional, their ``state_dict()`` is stored.
        epoch: optional int, by convention the number of epochs finished.
        **extra: more entries (e.g. ``history=h.to_dict()``, ``config=vars(args)`` with
            paths turned into str): plain Python values or tensors only.
    Returns:
        Path of the written file. The file holds a dict with keys "model", "optimizer",
        "scheduler", "epoch" (None where not given) and the ``extra`` keys.
    """
    path = Path(path)
    for key, value in extra.items():
        _check_plain(value, f"extra entry {key!r}")
    checkpoint = {
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is atomic only within one file system.
    # O_EXCL: never reuse a stranger's file; mode 0o666 minus the umask, like open().
    temp_name = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    handle = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them live
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def _is_state_dict(obj: Any) -> bool:
    """True for a bare ``model.state_dict()`` (a mapping of names to tensors)."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _match_prefix(state: Mapping[str, torch.Tensor], expected: Iterable[str]) -> dict:
    """Drop a ``module.`` / ``_orig_mod.`` prefix that a wrapped model left on every key."""
    expected = set(expected)
    state = dict(state)
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state) and not set(state) <= expected:
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    map_location: str | torch.device = "cpu",
) -> dict:
    """Restore ``model`` (and optimizer / scheduler) from a file of `save_checkpoint`.

    Loads with ``weights_only=True``: only tensors and plain values are unpickled, so
    a checkpoint from elsewhere cannot run code. A bare ``torch.save(model.state_dict())``
    file is accepted too. Keys and shapes must match the model exactly.

    Inputs:
        path: the checkpoint file.
        model: nn.Module of the same architecture (DDP-wrapped is fine).
        optimizer, scheduler: optional, restored when given (the file must hold them).
        map_location: where tensors are loaded first ("cpu" works for any device: the
            model's and optimizer's load_state_dict copy them to where they live).
    Returns:
        dict: the whole checkpoint ("model", "optimizer", "scheduler", "epoch", extras).
    Raises:
        FileNotFoundError if there is no file; ValueError if it is not a loadable
        checkpoint or its state does not fit the model (missing / unexpected keys and
        shape mismatches are listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path.resolve()}: expected a file written by save_checkpoint "
            "(fit writes one every epoch when given checkpoint_path)"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt zip, truncated file, disallowed pickled objects
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if _is_state_dict(checkpoint):
        checkpoint = {"model": checkpoint, "optimizer": None, "scheduler": None, "epoch": None}
    if not isinstance(checkpoint, Mapping) or "model" not in checkpoint:
        raise ValueError(
            f"{path} is not a checkpoint of save_checkpoint (no 'model' entry) nor a state_dict"
        )
    net = unwrap_model(model)
    expected = net.state_dict()
    state = _match_prefix(checkpoint["model"], expected.keys())
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"checkpoint {path} does not fit {type(net).__name__}:\n"
            f"  missing keys (in the model, not in the file): {missing}\n"
            f"  unexpected keys (in the file, not in the model): {unexpected}\n"
            f"  shape mismatches: {reshaped}\n"
            "Was it saved from a different architecture or configuration?"
        )
    net.load_state_dict(state)
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if checkpoint.get(name) is None:
            raise ValueError(f"checkpoint {path} holds no {name} state to restore")
        target.load_state_dict(checkpoint[name])
    return dict(checkpoint)


# ----------------------------------------------------------------------------------------
# Learning-rate schedules
# ----------------------------------------------------------------------------------------

SCHEDULER_NAMES = ("none", "step", "cosine", "warmup_cosine", "onecycle")


def _warmup_cosine_factor(step: int, *, warmup: int, total: int) -> float:
    """Multiplier of the base LR at scheduler step ``step`` (0-based).

    warm-up   (step < warmup):  f = (step + 1) / warmup          rises linearly to 1
    cosine    (step >= warmup): f = (1 + cos(pi * p)) / 2,  p = (step - warmup) / (total - warmup)
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    steps_per_epoch: int = 1,
    warmup: int = 0,
) -> Any:
    """Build one of the curriculum's LR schedules (thin wrappers over torch's).

    The schedule spans ``total = epochs * steps_per_epoch`` scheduler steps. With
    ``steps_per_epoch=1`` step it per epoch (``fit(..., scheduler_step="epoch")``);
    with ``steps_per_epoch=len(distributed_loader(train_loader))`` per batch
    (``scheduler_step="batch"``); `fit` refuses the wrong pairing. ``eta`` is the
    optimizer's learning rate when the scheduler is built, ``t`` the step count.

    - "none": no scheduler (returns None).
    - "step": StepLR, ``eta_t = eta * 0.1 ** floor(t / max(1, total // 3))``
      (divide by ten twice over the run).
    - "cosine": CosineAnnealingLR, ``eta_t = eta * (1 + cos(pi * t / total)) / 2``.
    - "warmup_cosine": LambdaLR, linear warm-up over ``warmup`` steps, then cosine decay
      to 0 (see `_warmup_cosine_factor`); the usual Transformer / ViT recipe.
    - "onecycle": OneCycleLR with peak ``eta``: rises for ``warmup`` steps (30 % of the
      run when warmup=0) from eta/25, then anneals to eta/25e4 (Smith & Topin, 2017);
      momentum (or Adam's beta1) cycles inversely when the optimizer uses momentum.

    Inputs:
        optimizer: torch.optim optimizer (its current lr is the base / peak LR).
        name: one of SCHEDULER_NAMES.
        epochs, steps_per_epoch: ints >= 1, size of the schedule.
        warmup: warm-up length in scheduler steps ("warmup_cosine", "onecycle" only).
    Returns:
        a torch LR scheduler, or None for "none".
    """
    if name not in SCHEDULER_NAMES:
        raise ValueError(f"unknown LR schedule {name!r}; choose one of {SCHEDULER_NAMES}")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"need epochs >= 1 and steps_per_epoch >= 1; got {epochs}, "
                         f"{steps_per_epoch}")
    total = epochs * steps_per_epoch
    if warmup and name not in ("warmup_cosine", "onecycle"):
        raise ValueError(f"warmup={warmup} is used only by 'warmup_cosine' and 'onecycle', "
                         f"not by {name!r}")
    if not 0 <= warmup < total:
        raise ValueError(f"warmup must be in [0, {total}) scheduler steps, got {warmup}")
    if name == "none":
        return None
    if name == "step":
        scheduler = torch_schedulers.StepLR(optimizer, step_size=max(1, total // 3), gamma=0.1)
    elif name == "cosine":
        scheduler = torch_schedulers.CosineAnnealingLR(optimizer, T_max=total)
    elif name == "warmup_cosine":
        if warmup == 0:
            raise ValueError("'warmup_cosine' needs warmup >= 1 (use 'cosine' for none)")
        factor = functools.partial(_warmup_cosine_factor, warmup=warmup, total=total)
        scheduler = torch_schedulers.LambdaLR(optimizer, factor)
    else:  # onecycle
        peaks = [group["lr"] for group in optimizer.param_groups]
        pct_start = warmup / total if warmup else 0.3
        # One-cycle also cycles momentum (0.95 -> 0.85 -> 0.95) - but only switch that on
        # for an optimizer that already uses momentum, never add it behind the user's back.
        defaults = optimizer.defaults
        uses_momentum = "betas" in defaults or defaults.get("momentum", 0) > 0
        scheduler = torch_schedulers.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total, pct_start=pct_start,
            cycle_momentum=uses_momentum,
        )
    # Remembered (and saved in its state_dict) so that fit can check the stepping unit.
    scheduler._steps_per_epoch = steps_per_epoch
    return scheduler
