"""Tests of utils/training_utils.py: every number `fit` reports is recomputed by hand.

- fit learns a linearly separable problem, and its History agrees with `evaluate` and
  with full-batch losses computed directly;
- the epoch's training loss is the sample-weighted mean of the batch losses;
- gradient clipping: the SGD step equals lr * (clipped gradient), computed by hand;
- LR schedules follow their closed-form formulas, per epoch and per batch;
- checkpoints: exact round trip (outputs, optimizer state, continued training),
  weights_only loading, atomic writes, clear errors;
- seeding makes two runs bitwise equal; a resumed run equals an uninterrupted one;
- DDP: 2 processes with batch B train exactly like 1 process with batch 2B.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from utils import testing
from utils import training_utils as tu
from utils.tests import ddp_worker

ROOT = Path(__file__).resolve().parents[2]
FLOAT32_TOL = 1e-6  # float32 results computed along two different summation orders
EXACT = 0.0


def _tol(device: str) -> float:
    """Absolute tolerance for float32 sums on ``device`` (CUDA reorders more)."""
    return FLOAT32_TOL if device == "cpu" else testing.FLOAT32_CUDA.atol


def _separable_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes split by the line 1.5 x0 - 2 x1 + 0.3 = 0, with a margin of 0.5.

    Returns x (n, 2) float32 and y (n,) int64.
    """
    generator = torch.Generator().manual_seed(seed)
    points, labels = [], []
    while sum(len(p) for p in points) < n:
        x = torch.randn(4 * n, 2, generator=generator)
        score = 1.5 * x[:, 0] - 2.0 * x[:, 1] + 0.3
        keep = score.abs() > 0.5
        points.append(x[keep])
        labels.append((score[keep] > 0).long())
    return torch.cat(points)[:n], torch.cat(labels)[:n]


def _quiet(**kwargs):
    """Keyword arguments that silence fit's progress bar and log lines."""
    return {"progress": False, "log": None, **kwargs}


# ----------------------------------------------------------------------------------------
# fit and evaluate
# ----------------------------------------------------------------------------------------


def test_fit_learns_separable_problem_and_history_matches_evaluate():
    torch.manual_seed(0)
    x_train, y_train = _separable_data(96, seed=1)
    x_val, y_val = _separable_data(50, seed=2)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=16, shuffle=True)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=16)  # 16+16+16+2
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

    lines: list[str] = []
    history = tu.fit(model, train_loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
                     epochs=12, val_loader=val_loader, **_quiet(log=lines.append))

    assert history.epoch == list(range(1, 13))
    assert all(len(v) == 12 for v in history.to_dict().values())
    assert history.val_metric[-1] == 1.0
    assert history.train_metric[-1] >= 0.98  # measured while the weights still moved
    assert history.train_loss[-1] < history.train_loss[0] / 3
    assert len(lines) == 12  # one summary line per epoch, quoting the History
    assert lines[-1].startswith(f"epoch 12/12  train loss {history.train_loss[-1]:.4f}")
    assert f"| val loss {history.val_loss[-1]:.4f}  accuracy 1.0000" in lines[-1]

    # evaluate() reproduces the last validation numbers ...
    val_loss, val_acc = tu.evaluate(model, val_loader, loss_fn=nn.CrossEntropyLoss())
    assert val_loss == pytest.approx(history.val_loss[-1], abs=EXACT)
    assert val_acc == history.val_metric[-1]
    # ... and both equal one full-batch computation (the short last batch weighs 2/50).
    with torch.no_grad():
        logits = model(x_val)
    assert val_loss == pytest.approx(F.cross_entropy(logits, y_val).item(), abs=FLOAT32_TOL)
    assert val_acc == (logits.argmax(1) == y_val).float().mean().item()


class _ModeRecorder(nn.Module):
    """A linear layer that records (training?, grad enabled?) at every forward call."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.linear(x)


def test_train_loss_is_batch_size_weighted_mean_and_modes_are_right(device):
    torch.manual_seed(0)
    x = torch.randn(10, 3)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4 and 2
    model = _ModeRecorder().to(device)
    # lr = 0: the weights do not move, so every batch loss can be recomputed afterwards.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    history = tu.fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
                     epochs=1, val_loader=loader, device=device, **_quiet())

    x, y = x.to(device), y.to(device)
    with torch.no_grad():
        batch_losses = [F.cross_entropy(model.linear(x[i : i + 4]), y[i : i + 4]).item()
                        for i in (0, 4, 8)]
        full_logits = model.linear(x)
    sizes = [4, 4, 2]
    weighted = sum(n * loss for n, loss in zip(sizes, batch_losses)) / sum(sizes)
    unweighted = sum(batch_losses) / len(batch_losses)
    assert abs(weighted - unweighted) > 1e-3  # the data make the two differ: the test can fail
    tol = _tol(device)
    assert history.train_loss[0] == pytest.approx(weighted, abs=tol)
    assert history.train_loss[0] == pytest.approx(F.cross_entropy(full_logits, y).item(), abs=tol)
    assert history.train_metric[0] == pytest.approx(
        (full_logits.argmax(1) == y).float().mean().item(), abs=tol
    )
    assert history.val_loss[0] == pytest.approx(history.train_loss[0], abs=tol)
    # 3 training batches in train mode with autograd on, then 3 eval batches without.
    assert model.calls == [(True, True)] * 3 + [(False, False)] * 3
    assert model.training  # evaluate() restored the mode it found


def test_clip_grad_norm_makes_step_equal_lr_times_clipped_gradient(device):
    torch.manual_seed(0)
    x = torch.randn(8, 3, device=device)
    y = torch.full((8, 1), 1000.0, device=device)  # huge targets -> huge loss and gradient
    model = nn.Linear(3, 1).to(device)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    lr, max_norm = 0.01, 0.5

    # The gradient by hand, on a copy with the same weights.
    reference = nn.Linear(3, 1).to(device)
    reference.load_state_dict(start)
    F.mse_loss(reference(x), y).backward()
    grads = {"weight": reference.weight.grad, "bias": reference.bias.grad}
    total_norm = math.sqrt(sum(g.double().pow(2).sum().item() for g in grads.values()))
    assert total_norm > 100 * max_norm  # clipping really has work to do
    scale = max_norm / (total_norm + 1e-6)  # g <- g * max_norm / (||g|| + eps)

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum: step = -lr * g
    history = tu.fit(model, DataLoader(TensorDataset(x, y), batch_size=8),
                     loss_fn=nn.MSELoss(), optimizer=optimizer, epochs=1, metric_fn=None,
                     clip_grad_norm=max_norm, device=device, **_quiet())

    for name, g in grads.items():
        expected = start[name] - lr * scale * g
        torch.testing.assert_close(model.state_dict()[name], expected, rtol=0, atol=_tol(device))
    step = torch.cat([(model.state_dict()[k] - start[k]).flatten() for k in grads])
    assert step.norm().item() == pytest.approx(lr * max_norm, rel=1e-4)
    assert history.train_metric == [] and history.val_loss == []


def test_fit_rejects_bad_batches_bad_arguments_and_nan_loss():
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    dict_batches = [{"x": torch.randn(4, 2), "y": torch.zeros(4, dtype=torch.long)}]
    with pytest.raises(TypeError, match=r"pair \(inputs, targets\)"):
        tu.fit(model, dict_batches, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
               epochs=1, **_quiet())
    pair = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match="scheduler_step"):
        tu.fit(model, pair, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer, epochs=1,
               scheduler_step="step", **_quiet())
    nan_batch = [(torch.full((4, 2), math.nan), torch.zeros(4, dtype=torch.long))]
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        tu.fit(model, nan_batch, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
               epochs=1, **_quiet())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))  # no NaN step
    with pytest.raises(ValueError, match="no samples"):
        tu.evaluate(model, [], loss_fn=nn.CrossEntropyLoss())


def test_fit_passes_a_list_of_inputs_as_separate_arguments():
    class Adder(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, a, b):
            return self.scale * (a + b)

    a, b = torch.ones(3, 1), torch.full((3, 1), 2.0)
    model = Adder()
    loss, _ = tu.evaluate(model, [((a, b), torch.zeros(3, 1))], loss_fn=nn.MSELoss(),
                          metric_fn=None)
    assert loss == pytest.approx(36.0)  # (2 * (1 + 2))^2


def test_fit_accepts_a_hand_written_optimizer():
    """An L2-style optimizer (zero_grad, step, lr) trains exactly like torch.optim.SGD."""

    class PlainSGD:
        def __init__(self, params, lr):
            self.params, self.lr = list(params), lr

        def zero_grad(self):
            for p in self.params:
                p.grad = None

        @torch.no_grad()
        def step(self):
            for p in self.params:
                p -= self.lr * p.grad  # theta <- theta - lr * dL/dtheta

    x, y = _separable_data(24, seed=6)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    results = []
    for make_optimizer in (lambda ps: PlainSGD(ps, 0.3), lambda ps: torch.optim.SGD(ps, lr=0.3)):
        torch.manual_seed(0)
        model = _two_class_mlp()
        history = tu.fit(model, loader, loss_fn=nn.CrossEntropyLoss(),
                         optimizer=make_optimizer(model.parameters()), epochs=2, **_quiet())
        results.append((model.state_dict(), history))
    (mine, my_history), (torch_state, torch_history) = results
    for key, value in torch_state.items():
        torch.testing.assert_close(mine[key], value, rtol=0, atol=FLOAT32_TOL)
    assert my_history.lr == [0.3, 0.3]
    assert my_history.train_loss == pytest.approx(torch_history.train_loss, abs=FLOAT32_TOL)


# ----------------------------------------------------------------------------------------
# accuracy and devices
# ----------------------------------------------------------------------------------------


def test_accuracy_known_values_and_errors():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    assert tu.accuracy(logits, torch.tensor([0, 1, 1, 2])) == 0.5
    binary = torch.tensor([0.3, -1.2, 2.0, -0.1, 0.5])
    assert tu.accuracy(binary, torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.8)
    assert tu.accuracy(binary[:, None], torch.tensor([[1], [0], [1], [0], [1]])) == 1.0
    sequence = torch.zeros(2, 3, 4)
    sequence[..., 1] = 1.0  # every token predicts class 1
    assert tu.accuracy(sequence, torch.tensor([[1, 1, 0], [2, 1, 3]])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"targets of shape \(4,\)"):
        tu.accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        tu.accuracy(logits, torch.tensor([0.0, 1.0, 1.0, 2.0]))


def test_get_device():
    assert tu.get_device("cpu") == torch.device("cpu")
    expected_auto = "cuda" if torch.cuda.is_available() else None
    if expected_auto:
        assert tu.get_device("auto").type == "cuda"
    elif not (torch.backends.mps.is_available()):
        assert tu.get_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tu.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"'cuda' is not available.*has: cpu"):
            tu.get_device("cuda")


def test_setup_distributed_without_torchrun_initialises_nothing(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert tu.setup_distributed("cpu") == (0, 1, torch.device("cpu"))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: still nothing to join
    assert tu.setup_distributed("cpu") == (0, 1, torch.device("cpu"))
    assert not dist.is_initialized()
    assert tu.is_main_process()
    tu.cleanup_distributed()  # a no-op, must not raise


# ----------------------------------------------------------------------------------------
# LR schedules
# ----------------------------------------------------------------------------------------


def _fit_lr_history(name, epochs, *, steps_per_epoch=1, warmup=0, base_lr=0.1):
    """Learning rates fit records when it drives make_lr_scheduler(name)."""
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=base_lr)
    data = TensorDataset(torch.randn(4 * steps_per_epoch, 2), torch.zeros(4 * steps_per_epoch,
                                                                          dtype=torch.long))
    loader = DataLoader(data, batch_size=4)
    scheduler = tu.make_lr_scheduler(optimizer, name, epochs=epochs,
                                     steps_per_epoch=steps_per_epoch, warmup=warmup)
    step_unit = "epoch" if steps_per_epoch == 1 else "batch"
    history = tu.fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
                     epochs=epochs, scheduler=scheduler, scheduler_step=step_unit, **_quiet())
    return history.lr


def test_epoch_schedules_match_closed_forms():
    # cosine: eta_e = eta (1 + cos(pi e / E)) / 2
    expected = [0.1 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    assert _fit_lr_history("cosine", 5) == pytest.approx(expected, abs=1e-12)
    # step: divide by 10 every E // 3 = 2 epochs
    assert _fit_lr_history("step", 6) == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3],
                                                       abs=1e-12)
    assert tu.make_lr_scheduler(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1),
                                "none", epochs=3) is None


def test_batch_warmup_cosine_matches_closed_form():
    epochs, steps, warmup = 4, 3, 2
    total = epochs * steps

    def factor(t):  # written independently of the module's helper
        if t < warmup:
            return (t + 1) / warmup
        return (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2

    # fit records the lr at the start of every epoch: scheduler step t = 3 e.
    lrs = _fit_lr_history("warmup_cosine", epochs, steps_per_epoch=steps, warmup=warmup)
    assert lrs == pytest.approx([0.1 * factor(steps * e) for e in range(epochs)], abs=1e-12)
    # and every step of the schedule, driven by hand
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = tu.make_lr_scheduler(optimizer, "warmup_cosine", epochs=epochs,
                                     steps_per_epoch=steps, warmup=warmup)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.1 * factor(t) for t in range(total)], abs=1e-12)


def test_onecycle_peaks_after_warmup_and_leaves_momentum_alone():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)  # momentum 0
    scheduler = tu.make_lr_scheduler(optimizer, "onecycle", epochs=2, steps_per_epoch=5,
                                     warmup=4)
    seen = [optimizer.param_groups[0]["lr"]]
    for _ in range(9):  # the 10 learning rates of a 10-step schedule need 9 steps
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen[0] == pytest.approx(0.1 / 25)  # starts at peak / div_factor
    assert seen[3] == pytest.approx(0.1)  # peak after `warmup` steps (index warmup - 1)
    assert max(seen) == pytest.approx(0.1)
    assert seen[-1] == pytest.approx(0.1 / 25 / 1e4)  # ends at initial / final_div_factor
    assert optimizer.param_groups[0]["momentum"] == 0  # not switched on behind our back


def test_schedule_argument_errors():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="unknown LR schedule 'linear'"):
        tu.make_lr_scheduler(optimizer, "linear", epochs=3)
    with pytest.raises(ValueError, match="warmup=2 is used only by"):
        tu.make_lr_scheduler(optimizer, "cosine", epochs=3, warmup=2)
    per_batch = tu.make_lr_scheduler(optimizer, "cosine", epochs=3, steps_per_epoch=5)
    model = nn.Linear(1, 1)
    loader = [(torch.zeros(2, 1), torch.zeros(2, 1))] * 5
    with pytest.raises(ValueError, match="scheduler_step='batch'"):
        tu.fit(model, loader, loss_fn=nn.MSELoss(), optimizer=optimizer, epochs=3,
               scheduler=per_batch, metric_fn=None, **_quiet())


# ----------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def _adam_steps(model, optimizer, scheduler, steps=3):
    """A few training steps on fixed data, so that the optimizer has state."""
    generator = torch.Generator().manual_seed(5)
    for _ in range(steps):
        x = torch.randn(6, 4, generator=generator)
        y = torch.randint(0, 2, (6,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()


def test_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    _adam_steps(model, optimizer, scheduler)
    history = tu.History(train_loss=[0.7, 0.5], lr=[0.01, 0.005], epoch=[1, 2])
    path = tu.save_checkpoint(tmp_path / "sub" / "ckpt.pt", model, optimizer, epoch=2,
                              scheduler=scheduler, history=history.to_dict(),
                              note="hello", mean=torch.tensor([0.5, 0.25]))
    assert path == tmp_path / "sub" / "ckpt.pt"
    raw = torch.load(path, weights_only=True)  # no pickled code inside
    assert raw["epoch"] == 2 and raw["note"] == "hello"

    torch.manual_seed(99)
    fresh = _mlp()
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, step_size=2, gamma=0.5)
    x = torch.randn(5, 4)
    assert not torch.equal(fresh(x), model(x))
    state = tu.load_checkpoint(path, fresh, fresh_optimizer, fresh_scheduler)

    assert torch.equal(fresh(x), model(x))
    assert state["epoch"] == 2 and state["note"] == "hello"
    assert torch.equal(state["mean"], torch.tensor([0.5, 0.25]))
    assert tu.History.from_dict(state["history"]) == history
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 5e-3
    for p, q in zip(model.parameters(), fresh.parameters()):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(optimizer.state[p][key], fresh_optimizer.state[q][key])
    # Training on from both gives identical weights: nothing of the state was lost.
    _adam_steps(model, optimizer, scheduler)
    _adam_steps(fresh, fresh_optimizer, fresh_scheduler)
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_unwraps_wrappers_and_accepts_bare_state_dicts(tmp_path):
    torch.manual_seed(0)
    model = _mlp()
    wrapped = nn.DataParallel(model)  # keys "module.0.weight", ...
    path = tu.save_checkpoint(tmp_path / "c.pt", wrapped)
    assert set(torch.load(path, weights_only=True)["model"]) == set(model.state_dict())
    torch.save(wrapped.state_dict(), tmp_path / "bare.pt")  # prefixed bare state_dict
    fresh = _mlp()
    tu.load_checkpoint(tmp_path / "bare.pt", fresh)
    x = torch.randn(3, 4)
    assert torch.equal(fresh(x), model(x))


def test_interrupted_save_keeps_previous_checkpoint_and_leaves_no_temp_file(
    tmp_path, monkeypatch
):
    torch.manual_seed(0)
    model = _mlp()
    path = tu.save_checkpoint(tmp_path / "ckpt.pt", model, epoch=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def crash_midway(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip archive")  # some bytes reach the temp file
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="simulated"):
        tu.save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # no temp file left behind
    fresh = _mlp()
    state = tu.load_checkpoint(path, fresh)
    assert state["epoch"] == 1
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, before[key])


def test_checkpoint_errors_are_clear(tmp_path):
    model = _mlp()
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        tu.load_checkpoint(missing, model)

    path = tu.save_checkpoint(tmp_path / "mlp.pt", model)
    deeper = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.ReLU(),
                           nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"missing keys.*\['4.bias', '4.weight'\]"):
        tu.load_checkpoint(path, deeper)
    shallow = nn.Sequential(nn.Linear(4, 8))
    with pytest.raises(ValueError, match=r"unexpected keys.*\['2.bias', '2.weight'\]"):
        tu.load_checkpoint(path, shallow)
    wider = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(ValueError, match=r"0.weight: file \(8, 4\) vs model \(16, 4\)"):
        tu.load_checkpoint(path, wider)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no optimizer state"):
        tu.load_checkpoint(path, model, optimizer)

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        tu.load_checkpoint(tmp_path / "junk.pt", model)
    with pytest.raises(TypeError, match=r"numpy.*torch.from_numpy"):
        tu.save_checkpoint(tmp_path / "np.pt", model, mean=np.zeros(3))
    with pytest.raises(TypeError, match=r"extra entry 'config'\['out'\].*str\(path\)"):
        tu.save_checkpoint(tmp_path / "p.pt", model, config={"out": tmp_path})
    assert not (tmp_path / "np.pt").exists() and not (tmp_path / "p.pt").exists()


# ----------------------------------------------------------------------------------------
# Reproducibility and resuming
# ----------------------------------------------------------------------------------------


def _seeded_run(seed: int, epochs: int = 2) -> dict[str, torch.Tensor]:
    """Everything random comes from the seed: init, shuffling, dropout."""
    tu.seed_everything(seed)
    x, y = _separable_data(40, seed=3)  # fixed data; its own generator
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tu.fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer, epochs=epochs,
           **_quiet())
    return model.state_dict()


def test_seed_everything_makes_runs_bitwise_equal():
    first, second, other = _seeded_run(3), _seeded_run(3), _seeded_run(4)
    for key in first:
        assert torch.equal(first[key], second[key])
    assert any(not torch.equal(first[k], other[k]) for k in first)  # the seed matters


def test_seed_everything_deterministic_switches(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        tu.seed_everything(7, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark is False
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.initial_seed() == 7
        assert np.random.randint(1 << 30) == np.random.RandomState(7).randint(1 << 30)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = was


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    x, y = _separable_data(30, seed=4)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)

    def build():
        torch.manual_seed(0)
        model = _two_class_mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        scheduler = tu.make_lr_scheduler(optimizer, "step", epochs=4)
        return model, optimizer, scheduler

    def run(model, optimizer, scheduler, epochs=4, **kwargs):
        return tu.fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
                      scheduler=scheduler, epochs=epochs, **_quiet(**kwargs))

    straight = build()
    full_history = run(*straight)

    # Stop after 2 of 4 epochs (the "crash"), then resume into fresh objects.
    path = tmp_path / "run.pt"
    run(*build(), epochs=2, checkpoint_path=path)
    resumed = build()
    state = tu.load_checkpoint(path, *resumed)
    assert state["epoch"] == 2
    history = run(*resumed, start_epoch=state["epoch"],
                  history=tu.History.from_dict(state["history"]))

    for key, value in straight[0].state_dict().items():
        assert torch.equal(resumed[0].state_dict()[key], value)
    assert history.epoch == [1, 2, 3, 4]
    assert history.lr == full_history.lr
    assert history.train_loss == pytest.approx(full_history.train_loss, abs=EXACT)


def _two_class_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))


# ----------------------------------------------------------------------------------------
# Distributed data parallel
# ----------------------------------------------------------------------------------------


def test_ddp_two_processes_equal_one_process_with_double_batch(tmp_path):
    """2 processes x batch B under torchrun == 1 process x batch 2B, step for step.

    Why they must agree: with shuffle=False the DistributedSampler gives rank 0 the
    indices 0, 2, 4, ... and rank 1 the indices 1, 3, 5, ...; at step k rank r holds
    samples r + 2 (kB + j), j < B, so the two ranks together hold exactly the
    contiguous block 2kB .. 2kB + 2B - 1 - the k-th batch of a plain loader with
    batch 2B. Each rank's loss is the mean over its B samples, and DDP averages the
    two gradients: (1/2)(g_0 + g_1) = gradient of the mean over all 2B samples. So
    every SGD step (momentum, clipping of the averaged gradient, per-batch schedule
    included) is the single-process step, up to float32 summation order.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
        str(ddp_worker.WORLD_SIZE), "--standalone", str(Path(ddp_worker.__file__)),
        "--out", str(tmp_path),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"DDP worker failed:\n{result.stderr[-4000:]}"

    ddp_model = ddp_worker.make_model()
    state = tu.load_checkpoint(tmp_path / "ddp_checkpoint.pt", ddp_model)  # a plain model
    ddp_history = json.loads((tmp_path / "history.json").read_text())
    assert state["epoch"] == ddp_worker.EPOCHS

    initial = ddp_worker.make_model()
    single = ddp_worker.make_model()
    single_history = ddp_worker.train(single, ddp_worker.WORLD_SIZE * ddp_worker.PER_PROCESS_BATCH)

    for key, value in single.state_dict().items():
        torch.testing.assert_close(ddp_model.state_dict()[key], value, rtol=0,
                                   atol=FLOAT32_TOL)
        assert (value - initial.state_dict()[key]).abs().max() > 1e-2  # it did train
    # The logged numbers are summed over both ranks, so they match the single run too.
    for key in ("train_loss", "train_metric", "val_loss", "val_metric", "lr"):
        assert ddp_history[key] == pytest.approx(getattr(single_history, key),
                                                 abs=FLOAT32_TOL), key


def test_torch_threads_sets_and_restores_the_thread_count():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with tu.torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with tu.torch_threads(0):  # 0: leave torch's default alone
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), tu.torch_threads(target):
        raise RuntimeError("restored even when the block fails")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 0"), tu.torch_threads(-1):
        pass


# ----------------------------------------------------------------------------------------
# Training semantics: shuffling, DistributedSampler epochs, eval mode, safe loading
# ----------------------------------------------------------------------------------------


class _Recorder(nn.Module):
    """A linear model that records the first feature (the sample id) of every batch it sees
    in training mode, and whether it was in training mode at each call."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.seen: list[list[int]] = []
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        if self.training:
            self.seen.append(x[:, 0].long().tolist())
        return self.linear(x)


def _id_data(n: int) -> TensorDataset:
    x = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n)], dim=1)
    return TensorDataset(x, torch.arange(n) % 2)


def _epochs_seen(loader, epochs: int = 3, val_loader=None) -> tuple[list[list[int]], _Recorder]:
    model = _Recorder()
    tu.fit(model, loader, loss_fn=nn.CrossEntropyLoss(), epochs=epochs, val_loader=val_loader,
           optimizer=torch.optim.SGD(model.parameters(), lr=0.0), **_quiet())
    per_epoch = len(model.seen) // epochs
    return [sum(model.seen[e * per_epoch:(e + 1) * per_epoch], []) for e in range(epochs)], model


def test_fit_reshuffles_every_epoch():
    torch.manual_seed(0)
    orders, _ = _epochs_seen(DataLoader(_id_data(24), batch_size=4, shuffle=True))
    for order in orders:
        assert sorted(order) == list(range(24))  # each epoch sees every sample once
    assert orders[0] != list(range(24))
    assert len({tuple(o) for o in orders}) == 3, "the same order in two epochs"


def test_fit_calls_set_epoch_on_a_distributed_sampler():
    # Rank 0 of 2 (no process group needed when num_replicas and rank are given): without
    # set_epoch every epoch would repeat epoch 0's shuffle.
    data = _id_data(24)
    sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=7)
    orders, _ = _epochs_seen(DataLoader(data, batch_size=4, sampler=sampler))
    assert len({tuple(o) for o in orders}) == 3, "the sampler repeated an epoch's order"
    for epoch, order in enumerate(orders):
        for rank in (0, 1):
            expected = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=7)
            expected.set_epoch(epoch)
            if rank == 0:
                assert order == list(expected)  # the shuffle of that epoch, as every rank has it
            else:
                assert sorted(order + list(expected)) == list(range(24))  # ranks split the data


def test_fit_evaluates_in_eval_mode_and_trains_in_train_mode():
    data = _id_data(8)
    _, model = _epochs_seen(DataLoader(data, batch_size=4), epochs=2,
                            val_loader=DataLoader(data, batch_size=4))
    # per epoch: 2 training batches (train mode), then 2 validation batches (eval mode)
    assert model.modes == [True, True, False, False] * 2


def test_evaluate_with_dropout_is_deterministic_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 2))
    x, y = _separable_data(32, seed=1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    first = tu.evaluate(model, loader, loss_fn=nn.CrossEntropyLoss())
    assert tu.evaluate(model, loader, loss_fn=nn.CrossEntropyLoss()) == first
    with torch.no_grad():
        expected = F.cross_entropy(model.eval()(x), y).item()
    model.train()
    assert first[0] == pytest.approx(expected, rel=1e-6)
    tu.evaluate(model, loader, loss_fn=nn.CrossEntropyLoss())
    assert model.training


class _Payload:
    """Unpickling this would run code chosen by whoever wrote the file."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_load_checkpoint_refuses_a_pickled_object(tmp_path, capsys):
    model = _mlp()
    path = tmp_path / "evil.pt"
    torch.save({"model": model.state_dict(), "extra": _Payload()}, path)
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        tu.load_checkpoint(path, _mlp())
    assert "this ran while loading" not in capsys.readouterr().out
