"""Test-suite wiring shared by every lesson.

- Level markers (l1..l4) are applied from the folder a test lives in.
- `slow` tests are skipped unless `--slow` is given or `-m` mentions `slow`.
- The `device` fixture runs a test on the CPU, and on CUDA too when a GPU is
  present (those runs carry the `gpu` marker). `--device cpu|cuda` narrows it.
- `shared_data` points at a read-only copy of the real datasets when one is
  available (``MI_SHARED_DATA`` or ``../shared/data``); tests that use it are
  skipped otherwise, so the suite never needs the network.
- `one_torch_thread` (module scope) pins torch to one CPU thread for a test file
  that asks for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from utils import testing

LEVEL_OF_FOLDER = {"numpy": "l1", "pytorch_lowlevel": "l2", "paper": "l3", "analysis": "l4"}
ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")
    parser.addoption(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="devices for the `device` fixture: auto = cpu, plus cuda when available",
    )
    parser.addoption(
        "--solutions",
        default=None,
        metavar="DIR",
        help="check YOUR exercise files in DIR (same file names as exercises/solutions/) "
        "instead of the reference solutions",
    )
    parser.addoption(
        "--tolerance-report",
        nargs="?",
        const="-",
        default=None,
        metavar="CSV",
        help="after the run, print the share of its tolerance that each assert_close used "
        "(worst first; float32 checks over 25 %% are flagged); with CSV, also write every "
        "check there",
    )


FLOAT32_BUDGET = 0.25  # a float32 check may use at most this share of its tolerance here


def pytest_configure(config):
    if config.getoption("--tolerance-report") is not None:
        testing.TOLERANCE_LEDGER = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    target = config.getoption("--tolerance-report")
    ledger = testing.TOLERANCE_LEDGER
    if target is None or ledger is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section("tolerance report: error / allowed, worst element of each check")
    for dtype in ("float32", "float64"):
        uses = sorted((u for u in ledger if u.dtype == dtype and u.passed), key=lambda u: -u.ratio)
        if not uses:
            continue
        over = [u for u in uses if u.ratio > FLOAT32_BUDGET]
        write(f"{dtype}: {len(uses)} passing checks, worst ratio {uses[0].ratio:.3g}"
              + (f", {len(over)} over {FLOAT32_BUDGET:.0%}" if dtype == "float32" else ""))
        for u in uses[:10]:
            flag = "  <-- over budget" if dtype == "float32" and u.ratio > FLOAT32_BUDGET else ""
            write(f"  {u.ratio:9.3g}  {u.test} [{u.name}]{flag}")
    failed = sum(not u.passed for u in ledger)
    write(f"{failed} checks failed (this includes those that tests expect to fail)")
    if target != "-":
        import csv

        with open(target, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["test", "name", "dtype", "ratio", "passed", "rtol", "atol", "scaled"])
            for u in ledger:
                out.writerow([u.test, u.name, u.dtype, f"{u.ratio:.4g}", u.passed, u.tol.rtol,
                              u.tol.atol, u.tol.scaled])
        write(f"all {len(ledger)} checks written to {target}")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--slow") or "slow" in (config.getoption("-m") or "")
    skip_slow = pytest.mark.skip(reason="slow: run with --slow or -m slow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA, and no GPU is available")
    has_cuda = testing.cuda_available()
    for item in items:
        # Two lessons have files with the same name (02_MLP/numpy/test_numpy.py and
        # 03_CNN_LeNet/numpy/test_numpy.py). If pytest ever imported one under the
        # other's module name, the second file would silently run the first one's tests.
        module = getattr(item, "module", None)
        if module is not None and Path(module.__file__).resolve() != Path(item.path).resolve():
            raise pytest.UsageError(
                f"{item.path} was collected as module {module.__name__!r} from {module.__file__}; "
                "pytest.ini needs consider_namespace_packages = true"
            )
        parts = Path(str(item.fspath)).resolve().relative_to(ROOT).parts
        for part in parts[:-1]:
            if part in LEVEL_OF_FOLDER:
                item.add_marker(getattr(pytest.mark, LEVEL_OF_FOLDER[part]))
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--device")
        devices = testing.test_devices(choice)
        params = [
            pytest.param(d, marks=[pytest.mark.gpu] if d == "cuda" else [], id=d) for d in devices
        ]
        metafunc.parametrize("device", params)


@pytest.fixture
def exercise(request):
    """Load an exercise solution by name: ``exercise("ex01_ridge")`` -> module.

    By default the reference in ``<lesson>/exercises/solutions/``; with
    ``pytest <lesson>/exercises --solutions DIR`` the learner's ``DIR/ex01_ridge.py``.
    """
    own_dir = request.config.getoption("--solutions")
    reference_dir = Path(str(request.fspath)).parent / "solutions"

    def load(name: str):
        folder = Path(own_dir).resolve() if own_dir else reference_dir
        return testing.load_module_from_file(folder / f"{name}.py")

    return load


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module's torch work on one CPU thread, then restore the previous count.

    The lessons' tensors are small: one thread avoids thread start-up costs, is immune to
    a busy machine's oversubscription and keeps sums in one order. A test file opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch  # here, not at the top: collecting the suite must not need torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    """Read-only copy of the real datasets; the test is skipped when there is none."""
    candidates = [os.environ.get("MI_SHARED_DATA"), ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    pytest.skip("no local copy of the real datasets (set MI_SHARED_DATA to use one)")
