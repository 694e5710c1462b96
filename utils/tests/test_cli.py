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


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "0", "an integer >= 1"),
    ("--epochs", "two", "an integer >= 1"),
    ("--batch-size", "-3", "an integer >= 1"),
    ("--lr", "-1", "a number > 0"),
    ("--lr", "0", "a number > 0"),
    ("--lr", "nan", "a number > 0"),
])
def test_bad_numbers_are_usage_errors_naming_the_option(capsys, option, value, expected):
    with pytest.raises(SystemExit) as err:
        parser().parse_args([option, value])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert f"argument {option}" in message and expected in message


@pytest.mark.parametrize("kind, good, bad", [
    (cli.positive_int, {"1": 1, "12": 12}, ["0", "-1", "1.5", "x"]),
    (cli.non_negative_int, {"0": 0, "3": 3}, ["-1", "x"]),
    (cli.positive_float, {"0.5": 0.5, "1e-3": 1e-3}, ["0", "-0.1", "inf", "nan"]),
    (cli.non_negative_float, {"0": 0.0, "2": 2.0}, ["-1e-9", "inf"]),
    (cli.probability, {"0": 0.0, "0.5": 0.5}, ["1", "-0.1", "1.5"]),
])
def test_option_types(kind, good, bad):
    for text, value in good.items():
        assert kind(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            kind(text)


def test_l1_device_error_suggests_only_what_l1_accepts(capsys):
    with pytest.raises(SystemExit) as err:
        parser(devices=("cpu",)).parse_args(["--device", "cuda"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "CPU only (--device cpu)" in message and "auto" not in message


def test_parse_args_fills_per_dataset_defaults_and_help_never_says_none(capsys):
    defaults = {"a": {"epochs": 3, "hidden": 16}, "b": {"epochs": 9, "hidden": 64}}

    def make():
        p = parser(epochs=None, lr=None)
        p.add_argument("--hidden", type=cli.positive_int, default=None)
        p.add_argument("--note", default=None, help="free text (default: %(default)s)")
        return p

    args = cli.parse_args(make(), ["--dataset", "b"], defaults)
    assert (args.epochs, args.hidden, args.lr) == (9, 64, None)
    assert cli.parse_args(make(), ["--epochs", "2"], defaults).epochs == 2
    with pytest.raises(SystemExit):
        cli.parse_args(make(), ["--help"], defaults)
    text = capsys.readouterr().out
    assert "None" not in text
    assert "per dataset: a 3, b 9" in " ".join(text.split())
    assert "per dataset: a 16, b 64" in " ".join(text.split())


@pytest.mark.parametrize("error", ["DatasetNotFoundError", "DatasetChecksumError",
                                   "DatasetFormatError"])
def test_data_errors_become_one_message_and_exit_status_1(error):
    from utils import data_loaders

    with pytest.raises(SystemExit) as err, cli.data_errors():
        raise getattr(data_loaders, error)("mnist: train-images-idx3-ubyte.gz is truncated")
    assert err.value.code == "error: mnist: train-images-idx3-ubyte.gz is truncated"
    with pytest.raises(SystemExit) as err, cli.data_errors(hint="--dataset digits needs none"):
        raise getattr(data_loaders, error)("mnist: missing")
    assert err.value.code == "error: mnist: missing\n(--dataset digits needs none)"
    with pytest.raises(ZeroDivisionError), cli.data_errors():  # anything else is a bug: loud
        1 / 0  # noqa: B018


def test_scripts_that_count_steps_refuse_epochs(capsys):
    p = parser(counts_steps=True)
    assert p.parse_args([]).epochs is None
    with pytest.raises(SystemExit) as err:
        p.parse_args(["--epochs", "3"])
    assert err.value.code == 2
    assert "argument --epochs: this script counts training steps" in capsys.readouterr().err
    p.print_help()
    help_text = " ".join(capsys.readouterr().out.split())
    assert "not used: this script counts training steps" in help_text


def test_threads_option_when_asked_for(capsys):
    assert not hasattr(parser().parse_args([]), "threads")
    assert parser(threads=1).parse_args([]).threads == 1
    assert parser(threads=1).parse_args(["--threads", "0"]).threads == 0
    with pytest.raises(SystemExit):
        parser(threads=1).parse_args(["--threads", "-2"])
    assert "argument --threads: expected an integer >= 0" in capsys.readouterr().err


def test_set_help_rewords_an_existing_option_and_refuses_an_unknown_one():
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser, datasets=("digits",), lr=0.1)
    cli.set_help(parser, lr="rate of part 3 (default: %(default)s)")
    assert "rate of part 3 (default: 0.1)" in " ".join(parser.format_help().split())
    with pytest.raises(ValueError, match="no option with destination 'learning_rate'"):
        cli.set_help(parser, learning_rate="x")
