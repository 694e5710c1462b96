"""The options every level script shares (utils/cli.py)."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utils import cli
from utils.testing import cuda_available

ROOT = Path(__file__).resolve().parents[2]


def parser(**kw):
    return cli.add_common_args(argparse.ArgumentParser(prog="demo"), datasets=["a", "b"], **kw)


def test_defaults_and_overrides():
    args = parser(epochs=7, batch_size=16, lr=0.5, out="runs/x").parse_args([])
    assert (args.dataset, args.epochs, args.batch_size, args.lr) == ("a", 7, 16, 0.5)
    assert (args.device, args.seed, args.out, args.progress, args.data_root) == (
        "auto", 0, Path("runs/x"), True, None)
    args = parser().parse_args(["--dataset", "b", "--data-root", "/d", "--no-progress",
                                "--device", "cpu", "--seed", "3"])
    assert (args.dataset, args.data_root, args.progress, args.device, args.seed) == (
        "b", Path("/d"), False, "cpu", 3)


def test_unknown_dataset_and_cpu_only_levels_are_usage_errors(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--dataset", "c"])
    assert "invalid choice: 'c'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser(devices=("cpu",)).parse_args(["--device", "cuda"])


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_asking_for_an_absent_gpu_is_a_usage_error_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as err:
        parser().parse_args(["--device", "cuda"])
    assert err.value.code == 2
    assert "'cuda' is not available on this machine" in capsys.readouterr().err


def test_seed_everything_reproduces_python_and_numpy_draws():
    cli.seed_everything(5)
    first = (random.random(), np.random.rand(3))
    cli.seed_everything(5)
    second = (random.random(), np.random.rand(3))
    assert first[0] == second[0] and np.array_equal(first[1], second[1])


def test_seed_everything_seeds_torch_only_when_loaded():
    code = ("import sys; from utils import cli; cli.seed_everything(1); "
            "assert 'torch' not in sys.modules; import torch; cli.seed_everything(1); "
            "a = torch.rand(2); cli.seed_everything(1); assert torch.equal(a, torch.rand(2))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_prepare_out_dir_creates_parents(tmp_path):
    out = cli.prepare_out_dir(tmp_path / "a" / "b")
    assert out.is_dir() and out == tmp_path / "a" / "b"
