"""Test helpers shared by every lesson: tolerances, gradient checks, level purity.

Three kinds of check stand behind every level (DESIGN.md section 5):

1. ``check_layer_gradients``: a NumPy layer's hand-written ``backward`` against
   central finite differences, in float64.
2. ``check_against_autograd``: the same layer's forward output and every
   gradient against PyTorch autograd on the same inputs and weights.
3. ``assert_level_purity``: a level's implementation files use only what the
   level may use (no torch at L1, no ``nn.Linear`` or ``torch.optim`` at L2, ...).
   The rule is the lesson, so a test enforces it.

The L1 layer protocol (DESIGN.md section 4) that 1. and 2. rely on::

    y  = layer.forward(x)        # caches what backward needs
    dx = layer.backward(dy)      # fills layer.grads[name] for every layer.params[name]
    layer.params : dict[str, np.ndarray]    layer.grads : dict[str, np.ndarray]

Learners can call these helpers on their own layers too.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------
# Named tolerances. A test picks one of these by name, never a bare literal, so
# that "how close is close enough" is decided once, per dtype and device.
#
# Why float32 checks are scaled (the reasoning, written once)
# ------------------------------------------------------------
# A float32 dot product of K terms rounds at every addition. Each rounding error is
# at most eps32 = 2^-23 (1.19e-7) times the *partial sum* at that step, not times the
# final result, and the errors add up like a random walk:
#
#     |fl(sum_k x_k w_k) - sum_k x_k w_k|  ~  eps32 * sqrt(K) * (size of the partial sums)
#
# With unit-variance inputs the partial sums, and the typical output element, are of
# size sqrt(K); a single output element can still land near zero after the partial sums
# went through 20-60 (a gradient element of -0.7 in a tensor whose entries are ~30).
# A tolerance relative to that element alone (rtol * |e|) is then far too tight, and
# whether it passes depends on the summation order the CPU's kernel picks: AVX2,
# AVX-512 and ARM builds of oneDNN / OpenBLAS / Accelerate all block sums differently.
#
# So a float32 tolerance here is relative to the *scale of the tensor*, taken as its
# root mean square S (a stand-in for the partial sums), plus each element's own size:
#
#     allowed_i = rtol * (|e_i| + S),      rtol = SAFETY * eps32 * sqrt(K)
#
# with K the longest chain of additions behind an element. ``float32_tol(K)`` builds
# one; FLOAT32 assumes K = 1024 (every layer test in the curriculum stays below that),
# and a whole-network or many-step test names its own K. SAFETY = 4 leaves room for
# other kernels: on the development machine no float32 check uses more than a quarter
# of its tolerance (``pytest --tolerance-report`` prints the worst ratios).
# Float64 needs none of this: eps64 * sqrt(K) * S is ~1e-13 for every test here, so a
# fixed 1e-10 has a thousand-fold margin on any CPU.
# ---------------------------------------------------------------------------

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 = 1.19e-7
FLOAT32_SAFETY = 4.0


@dataclass(frozen=True)
class Tol:
    """Tolerance: ``|a - e| <= atol + rtol * |e|`` elementwise.

    With ``scaled=True`` (the float32 tolerances) the absolute part is relative to the
    scale of the expected tensor: ``|a - e| <= rtol * (|e| + rms(e))``, ``atol`` unused.
    """

    rtol: float
    atol: float
    scaled: bool = False

    def kwargs(self) -> dict[str, float]:
        if self.scaled:
            raise ValueError("a scaled float32 tolerance depends on the tensor: use assert_close")
        return {"rtol": self.rtol, "atol": self.atol}


def float32_tol(terms: int, safety: float = FLOAT32_SAFETY) -> Tol:
    """Scaled float32 tolerance for results whose elements sum up to ``terms`` products.

    ``rtol = safety * eps32 * sqrt(terms)``; see the reasoning above. Whole networks and
    optimiser trajectories pass the total number of additions along the longest path
    (sum of the fan-ins of the layers, times the steps for a trajectory).
    """
    if terms < 1:
        raise ValueError(f"terms must be >= 1, got {terms}")
    return Tol(rtol=safety * EPS32 * float(np.sqrt(terms)), atol=0.0, scaled=True)


FLOAT64 = Tol(rtol=1e-10, atol=1e-10)  # same maths, float64, different op order
FLOAT32 = float32_tol(1024)  # same maths, float32 on the CPU: 1.5e-5 * (|e| + rms(e))
FLOAT32_CUDA = float32_tol(1024, safety=4 * FLOAT32_SAFETY)  # CUDA reorders more (TF32 off)
L1_VS_AUTOGRAD = Tol(rtol=1e-8, atol=1e-8)  # NumPy float64 layer against torch autograd
FINITE_DIFF = Tol(rtol=1e-6, atol=1e-8)  # central differences, eps=1e-6, float64
OPTIMIZER_TRAJECTORY = Tol(rtol=1e-6, atol=1e-6)  # many optimiser steps compounded
SKLEARN_SOLUTION = Tol(rtol=1e-8, atol=1e-8)  # closed-form solutions vs scikit-learn


def tolerance(dtype, device: str = "cpu") -> Tol:
    """Tolerance for comparing two implementations in ``dtype`` on ``device``.

    ``dtype`` may be a NumPy dtype, a torch dtype, or their names.
    """
    name = str(dtype).replace("torch.", "")
    if not name.startswith(("float", "double", "int", "uint", "bool", "complex")):
        name = np.dtype(dtype).name  # numpy scalar types such as np.float64
    if name in ("float64", "double"):
        return FLOAT64
    if name in ("float32", "float"):
        return FLOAT32_CUDA if str(device).startswith("cuda") else FLOAT32
    raise ValueError(f"no named tolerance for dtype {dtype!r}: expected float32 or float64")


# ---------------------------------------------------------------------------
# Devices (the `device` fixture in conftest.py uses these).
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_devices(choice: str = "auto") -> list[str]:
    """Devices a device-parametrised test runs on: CPU always, CUDA when present."""
    if choice == "cpu":
        return ["cpu"]
    if choice == "cuda":
        return ["cuda"]
    return ["cpu", "cuda"] if cuda_available() else ["cpu"]


test_devices.__test__ = False  # not a test, despite the name


# ---------------------------------------------------------------------------
# Comparing numbers.
# ---------------------------------------------------------------------------


def to_numpy(a) -> np.ndarray:
    """ndarray, torch tensor (any device, with or without grad) or scalar -> ndarray."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


# Every assert_close of a test run can be recorded (``pytest --tolerance-report``):
# conftest.py sets TOLERANCE_LEDGER to a list, and each call appends one
# ToleranceUse with the share of its tolerance that the worst element used.
TOLERANCE_LEDGER: list | None = None


@dataclass(frozen=True)
class ToleranceUse:
    test: str  # pytest node id
    name: str  # the quantity compared
    dtype: str  # "float32" when either side is float32 (or lower), else "float64"
    ratio: float  # max_i |a_i - e_i| / allowed_i; 1.0 is the edge of the tolerance
    tol: Tol
    passed: bool  # False also for checks a test expects to fail (pytest.raises)


def _allowed(e: np.ndarray, tol: Tol, scale: float | None) -> np.ndarray:
    """Per-element allowed error for ``expected`` under ``tol`` (see Tol)."""
    if tol.scaled:
        if scale is None:
            finite = e[np.isfinite(e)]
            scale = float(np.sqrt(np.mean(np.square(finite)))) if finite.size else 0.0
        return tol.rtol * (np.abs(e) + scale)
    return tol.atol + tol.rtol * np.abs(e)


def _precision(*arrays) -> str:
    for x in arrays:
        dtype = getattr(x, "dtype", None)
        if dtype is not None and str(dtype).replace("torch.", "") in (
                "float32", "float16", "bfloat16"):
            return "float32"
    return "float64"


def assert_close(actual, expected, tol: Tol = FLOAT64, name: str = "value",
                 scale: float | None = None) -> None:
    """Assert ``actual`` equals ``expected`` within ``tol``, with a useful message.

    ``scale`` overrides the tensor scale a scaled (float32) tolerance uses, for a
    result that is a small difference of large terms.

    On failure the message names the quantity, how many elements fail, and the element
    that violates the tolerance most (largest error minus allowance), with its error and
    allowance, so a failing gradient check says *where* it fails.
    """
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape} != expected {e.shape}")
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    allowed = _allowed(e64, tol, scale)
    same_inf = np.isinf(a64) & (a64 == e64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a64 - e64)
    # NaN on either side fails; an infinity must be matched by the same infinity.
    bad = (~(diff <= allowed) | np.isinf(a64) | np.isinf(e64)) & ~same_inf
    if TOLERANCE_LEDGER is not None and a.size:
        import os

        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(same_inf, 0.0, diff / allowed)
        ratios = np.where(np.isnan(ratios), np.inf, ratios)
        ratios = np.where((diff == 0) & ~same_inf, 0.0, ratios)
        TOLERANCE_LEDGER.append(ToleranceUse(
            os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0], name,
            _precision(actual, expected), float(np.max(ratios)), tol, not bad.any()))
    if not bad.any():
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(np.isnan(diff), np.inf, diff - allowed)
    excess = np.where(bad, excess, -np.inf)
    idx = np.unravel_index(int(np.argmax(excess)), diff.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff[idx] / max(abs(float(e64[idx])), 1e-300)
    if tol.scaled:
        rms = float(allowed[idx] / tol.rtol - abs(e64[idx]))
        how = f"rtol={tol.rtol:.3g} x (|expected| + scale {rms:.3g})"
    else:
        how = f"rtol={tol.rtol:g}, atol={tol.atol:g}"
    raise AssertionError(
        f"{name}: {int(bad.sum())} of {a.size} elements outside the tolerance; worst at index "
        f"{tuple(int(i) for i in idx)}: got {a[idx]!r}, expected {e[idx]!r}, abs error "
        f"{diff[idx]:.3e} > allowed {allowed[idx]:.3e} (rel error {rel:.3e}); tolerance {how}"
    )


def assert_same_entries(actual, expected, name: str = "value", show: int = 3) -> None:
    """Assert two mappings (vocabularies, ranks) or sequences (merges, ids) are equal.

    A plain ``assert ours.vocab == reference`` on 49,408 entries fails with a diff that
    pytest builds line by line; where the environment variable ``CI`` is set it builds all
    of it, which takes minutes. This names the sizes and the first ``show`` differences.
    """
    if actual == expected:
        return
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        lines = [f"{name}: {len(actual)} entries, expected {len(expected)}"]
        missing = [k for k in expected if k not in actual][:show]
        extra = [k for k in actual if k not in expected][:show]
        differ = [k for k in expected if k in actual and actual[k] != expected[k]][:show]
        lines += [f"  missing {k!r} (expected {expected[k]!r})" for k in missing]
        lines += [f"  unexpected {k!r}: {actual[k]!r}" for k in extra]
        lines += [f"  {k!r}: got {actual[k]!r}, expected {expected[k]!r}" for k in differ]
        raise AssertionError("\n".join(lines))
    actual, expected = list(actual), list(expected)
    lines = [f"{name}: {len(actual)} items, expected {len(expected)}"]
    differ = [i for i, (a, e) in enumerate(zip(actual, expected)) if a != e][:show]
    lines += [f"  at {i}: got {actual[i]!r}, expected {expected[i]!r}" for i in differ]
    raise AssertionError("\n".join(lines))


# ---------------------------------------------------------------------------
# 1. Finite differences.
# ---------------------------------------------------------------------------


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x``.

    ``x`` is perturbed in place, one element at a time, and restored::

        df/dx_i  ~  (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)      error O(eps^2)

    Inputs:  f: () -> float, reading ``x``;  x: float64 ndarray of any shape.
    Returns: ndarray of ``x.shape``.
    """
    if x.dtype != np.float64:
        raise TypeError(f"finite differences need float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        f_plus = f()
        x[i] = old - eps
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def check_layer_gradients(
    layer,
    x: np.ndarray,
    *,
    eps: float = 1e-6,
    tol: Tol = FINITE_DIFF,
    seed: int = 0,
    check_input: bool = True,
) -> dict[str, float]:
    """Check an L1 layer's ``backward`` against central finite differences.

    The scalar whose gradient is checked is ``L = sum(forward(x) * dy)`` for a
    fixed random ``dy``, so ``dL/dy = dy`` exercises every output element.

    Inputs:  layer following the L1 protocol, holding float64 params;
             x: float64 input of the shape ``layer.forward`` expects.
    Returns: {"x": max abs error, "<param>": max abs error, ...}.
    Raises AssertionError naming the first gradient that disagrees.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks run in float64; got input of dtype {x.dtype}")
    for k, p in layer.params.items():
        if p.dtype != np.float64:
            raise TypeError(f"gradient checks run in float64; parameter {k!r} is {p.dtype}")
    x = x.copy()
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal(np.shape(layer.forward(x)))

    def loss() -> float:
        return float(np.sum(layer.forward(x) * dy))

    layer.forward(x)
    dx = layer.backward(dy)
    analytic = {k: np.array(v, copy=True) for k, v in layer.grads.items()}
    missing = set(layer.params) - set(analytic)
    if missing:
        raise AssertionError(f"backward did not fill grads for {sorted(missing)}")

    errors: dict[str, float] = {}
    if check_input:
        num_dx = numerical_gradient(loss, x, eps)
        assert_close(dx, num_dx, tol, name="dL/dx")
        errors["x"] = float(np.max(np.abs(dx - num_dx), initial=0.0))
    for k, p in layer.params.items():
        num = numerical_gradient(loss, p, eps)
        assert_close(analytic[k], num, tol, name=f"dL/d{k}")
        errors[k] = float(np.max(np.abs(analytic[k] - num), initial=0.0))
    return errors


# ---------------------------------------------------------------------------
# 2. PyTorch autograd as the reference.
# ---------------------------------------------------------------------------


def check_against_autograd(
    layer,
    torch_forward: Callable,
    x: np.ndarray,
    *,
    tol: Tol = L1_VS_AUTOGRAD,
    seed: int = 0,
    check_input: bool = True,
) -> None:
    """Compare an L1 layer with a PyTorch function of the same weights.

    ``torch_forward(x_t, params_t)`` computes the same map with torch ops, where
    ``params_t`` holds float64 tensors (requires_grad) copied from
    ``layer.params``. Forward outputs, ``dL/dx`` and every ``dL/dparam`` must
    agree for ``L = sum(y * dy)`` with a fixed random ``dy``.
    """
    import torch

    x = np.asarray(x, dtype=np.float64)
    y = layer.forward(x.copy())
    dy = np.random.default_rng(seed).standard_normal(np.shape(y))
    dx = layer.backward(dy)

    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=check_input)
    params_t = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for k, v in layer.params.items()
    }
    y_t = torch_forward(x_t, params_t)
    assert_close(y, y_t, tol, name="forward output")
    (y_t * torch.from_numpy(dy)).sum().backward()
    if check_input:
        assert_close(dx, x_t.grad, tol, name="dL/dx")
    for k, p in params_t.items():
        if p.grad is None:
            raise AssertionError(f"torch_forward did not use parameter {k!r}")
        assert_close(layer.grads[k], p.grad, tol, name=f"dL/d{k}")


# ---------------------------------------------------------------------------
# 3. Level purity: what each level's implementation files may use.
# ---------------------------------------------------------------------------

# Names that `from utils import ...` gives besides modules (see utils/__init__.py).
UTILS_EXPORTS = {"import_lesson"}
# utils modules that never import torch, so L1 files may use them.
NUMPY_ONLY_UTILS = {"utils", "utils.cli", "utils.data_loaders", "utils.visualization",
                    "utils.lessons"}

# L2 may not use torch.nn layer classes; these names in torch.nn remain allowed.
L2_ALLOWED_NN = {"Module", "Parameter", "ParameterList", "ParameterDict", "init", "functional"}

# L2 may not use these functional forms: they are the layers the level writes by hand.
L2_FORBIDDEN_FUNCTIONAL = {
    "linear", "bilinear",
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "scaled_dot_product_attention", "multi_head_attention_forward",
    "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm",
    "embedding", "embedding_bag", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "cosine_embedding_loss",
}
# Low-level aten entry points that would bypass the rule above.
L2_FORBIDDEN_TORCH = {
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "embedding",
    "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "adaptive_avg_pool1d",
    "dropout", "_VF",
    # the aten kernels behind the layers: same rule, other door
    "convolution", "_convolution", "cudnn_convolution",
    "mkldnn_convolution", "native_batch_norm", "_native_batch_norm_legit", "native_layer_norm",
    "native_group_norm", "max_pool2d_with_indices", "max_pool1d_with_indices",
    "max_pool3d_with_indices", "avg_pool2d", "avg_pool3d", "adaptive_max_pool2d",
    "native_dropout", "feature_dropout", "alpha_dropout", "embedding_bag", "bilinear",
    "_native_multi_head_attention", "_scaled_dot_product_attention_math",
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "cross_entropy_loss", "nll_loss", "nll_loss2d", "binary_cross_entropy_with_logits",
}
# Private entry points (torch._C._nn.linear, torch.ops.aten.convolution, ...) reach the same
# kernels; L2 may not use them at all.
L2_FORBIDDEN_PREFIXES = ("torch._C", "torch.ops", "torch._VF", "torch._refs", "torch._decomp")
# getattr on these modules hides which layer is used, so L2 checks the name it looks up.
L2_GETATTR_MODULES = ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._C",
                      "torch.ops")
# L3 may not import libraries that implement the models, except inside
# conversion functions (whose names contain one of these words) and tests.
L3_FORBIDDEN_MODULES = ("transformers", "timm", "torchvision.models")
CONVERSION_WORDS = ("convert", "from_", "to_", "port")

LEVEL_FOLDERS = {"l1": "numpy", "l2": "pytorch_lowlevel", "l3": "paper", "l4": "analysis"}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


class _PurityVisitor(ast.NodeVisitor):
    """Resolve import aliases, then flag forbidden imports, calls and attributes."""

    def __init__(self, level: str, filename: str):
        self.level, self.filename = level, filename
        self.aliases: dict[str, str] = {}  # local name -> fully qualified name
        self.functions: list[str] = []  # enclosing function names
        self.violations: list[Violation] = []

    # -- helpers -------------------------------------------------------------
    def flag(self, node: ast.AST, what: str) -> None:
        self.violations.append(Violation(self.filename, getattr(node, "lineno", 0), what))

    def in_conversion_function(self) -> bool:
        return any(w in f.lower() for f in self.functions for w in CONVERSION_WORDS)

    def qualified(self, node: ast.AST) -> str | None:
        """``nn.Linear`` -> ``torch.nn.Linear`` using the imports seen so far."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id)
        if base is None:
            return None
        return ".".join([base, *reversed(parts)])

    def check_module(self, node: ast.AST, module: str) -> None:
        """Check an imported module name."""
        top = module.split(".")[0]
        if self.level == "l1":
            if top in ("torch", "torchvision", "scipy", "sklearn", "tensorflow", "jax",
                       "transformers", "timm"):
                self.flag(node, f"L1 (NumPy) may not import {module!r}: write it with NumPy")
            elif top == "utils" and module not in NUMPY_ONLY_UTILS:
                self.flag(node, f"L1 may import only the NumPy-only utils "
                                f"{sorted(NUMPY_ONLY_UTILS)}, not {module!r}")
        self.check_name(node, module)

    def check_name(self, node: ast.AST, name: str) -> None:
        """Check a fully qualified name (module, attribute chain or from-import)."""
        if name in ("sys.path.insert", "sys.path.append", "sys.path.extend"):
            self.flag(node, "no sys.path edits in lesson files: run from the repository root")
        if self.level in ("l2", "l3") and not self.in_conversion_function():
            for lib in L3_FORBIDDEN_MODULES:
                if name == lib or name.startswith(lib + "."):
                    self.flag(node, f"{self.level.upper()} may not use {name!r} outside a "
                                    "conversion function: the model is what we write here")
        if self.level != "l2":
            return
        parts = name.split(".")
        if parts[:2] == ["torch", "nn"] and len(parts) >= 3:
            if parts[2] == "functional" and len(parts) >= 4:
                if parts[3] in L2_FORBIDDEN_FUNCTIONAL or "pool" in parts[3]:
                    self.flag(node, f"L2 may not use {name}: write this layer with tensor ops")
            elif parts[2] not in L2_ALLOWED_NN:
                self.flag(node, f"L2 may not use {name}: build the layer from tensors and autograd")
        elif parts[:2] == ["torch", "optim"]:
            self.flag(node, f"L2 may not use {name}: write the optimiser step by hand")
        elif name.startswith(L2_FORBIDDEN_PREFIXES):
            self.flag(node, f"L2 may not use {name}: private entry points reach the same "
                            "kernels as the layers; write this with tensor ops")
        elif parts[0] == "torch" and len(parts) == 2 and parts[1] in L2_FORBIDDEN_TORCH:
            self.flag(node, f"L2 may not use {name}: write this layer with tensor ops")

    # -- visitors --------------------------------------------------------------
    def visit_FunctionDef(self, node):
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import):
        for a in node.names:
            self.check_module(node, a.name)
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                self.aliases[a.name.split(".")[0]] = a.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level:  # relative import inside the lesson: fine
            return
        module = node.module or ""
        for a in node.names:
            full = f"{module}.{a.name}"
            # `from utils import cli` imports the module utils.cli; `from torch import nn`
            # binds torch.nn; both are checked as the full name.
            is_utils_module = module == "utils" and a.name not in UTILS_EXPORTS
            self.check_module(node, full if is_utils_module else module)
            if module != "utils":
                self.check_name(node, full)
            self.aliases[a.asname or a.name] = full

    def visit_Attribute(self, node: ast.Attribute):
        name = self.qualified(node)
        if name is not None:
            self.check_name(node, name)
            return  # the chain is checked as a whole; do not re-check its prefixes
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call):
        # importlib.import_module("...") / import_lesson("...") with a literal name
        func = self.qualified(node.func)
        if func is None:
            func = node.func.id if isinstance(node.func, ast.Name) else ""
        if self.level == "l2" and func == "getattr" and len(node.args) >= 2:
            # getattr(torch.nn, "Linear") is nn.Linear; getattr(F, name) hides the layer
            target = self.qualified(node.args[0])
            if target in L2_GETATTR_MODULES:
                attr = node.args[1]
                if isinstance(attr, ast.Constant) and isinstance(attr.value, str):
                    self.check_name(node, f"{target}.{attr.value}")
                elif target != "torch":
                    self.flag(node, f"L2 may not look up names in {target} with getattr: "
                                    "write the layer, or name what you use")
        if func.endswith(("import_module", "import_lesson", "__import__")) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                target = arg.value.replace("/", ".").removesuffix(".py")
                self.check_module(node, target)
                if self.level == "l1":
                    folders = target.split(".")
                    if len(folders) >= 2 and folders[0][:2].isdigit() and folders[1] != "numpy":
                        self.flag(node, "L1 may reuse only other lessons' NumPy code, "
                                        f"not {target!r}")
        self.generic_visit(node)


def implementation_files(folder: str | Path) -> list[Path]:
    """The ``.py`` files of a level folder that are implementation, not tests."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*.py")
        if not p.name.startswith("test_") and p.name != "conftest.py"
    )


def find_level_violations(files: Iterable[str | Path], level: str) -> list[Violation]:
    """Parse each file and return every use of something ``level`` may not use."""
    if level not in LEVEL_FOLDERS:
        raise ValueError(f"level must be one of {sorted(LEVEL_FOLDERS)}, got {level!r}")
    out: list[Violation] = []
    for f in files:
        path = Path(f)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        v = _PurityVisitor(level, str(path))
        v.visit(tree)
        out.extend(dict.fromkeys(v.violations))  # one report per line and rule
    return out


def assert_level_purity(folder: str | Path, level: str | None = None) -> None:
    """Fail, naming file and line, if a level folder uses what its level may not.

    ``level`` defaults to the one the folder name implies (``numpy`` -> l1, ...).
    Each level's test file calls ``assert_level_purity(Path(__file__).parent)``.
    """
    folder = Path(folder)
    if level is None:
        by_folder = {v: k for k, v in LEVEL_FOLDERS.items()}
        if folder.name not in by_folder:
            raise ValueError(f"cannot infer the level of folder {folder}: expected one of "
                             f"{sorted(by_folder)}, or pass level=")
        level = by_folder[folder.name]
    files = implementation_files(folder)
    if not files:
        raise AssertionError(f"no implementation files found in {folder}")
    violations = find_level_violations(files, level)
    if violations:
        lines = "\n  ".join(str(v) for v in violations)
        raise AssertionError(f"{len(violations)} level-{level[1]} rule violation(s):\n  {lines}")


def load_module_from_file(path: str | Path):
    """Import a Python file by its path (used to check a learner's exercise file).

    Raises FileNotFoundError naming the file when it does not exist.
    """
    import importlib.util

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no file {path}: write your solution there (copy the starter from the exercise's "
            "Markdown file), or run without --solutions to check the reference solutions"
        )
    name = f"_exercise_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# Exercise folders. Every lesson's ``exercises/`` has the same layout:
#
#     exercises/01_topic.md              the task text
#     exercises/solutions/ex01_topic.py  the reference solution
#     exercises/starters/ex01_topic.py   the same functions, each raising NotImplementedError
#
# These checks keep the three from drifting apart; each lesson's test_exercises.py
# calls them, and they fail with an AssertionError that names the file at fault.
# ---------------------------------------------------------------------------


def exercise_names(exercises_dir: str | Path) -> list[str]:
    """Sorted names (``ex01_topic``) of the reference solutions in ``exercises_dir/solutions``."""
    return sorted(p.stem for p in (Path(exercises_dir) / "solutions").glob("ex[0-9][0-9]_*.py"))


def public_functions(module) -> dict[str, inspect.Signature]:
    """name -> signature of every function a module defines (not imports), without a leading _."""
    return {
        name: inspect.signature(fn)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and not name.startswith("_")
        and fn.__module__ == module.__name__
    }


def public_api(module, class_methods: Iterable[str] = ()) -> dict:
    """``public_functions(module)``, plus name -> {method: signature} of every public class
    the module defines itself, for the methods ``class_methods`` (e.g. ``("__init__",
    "forward", "backward")``). With no ``class_methods``, classes are left out."""
    api: dict = dict(public_functions(module))
    class_methods = tuple(class_methods)
    if class_methods:
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and not name.startswith("_")
                    and obj.__module__ == module.__name__):
                api[name] = {m: inspect.signature(getattr(obj, m)) for m in class_methods}
    return api


def check_exercise_files(exercises_dir: str | Path, min_count: int = 3) -> None:
    """At least ``min_count`` solutions, each with its task text ``NN_topic.md`` and its
    starter ``starters/exNN_topic.py``. Raises AssertionError naming the missing file."""
    exercises_dir = Path(exercises_dir)
    names = exercise_names(exercises_dir)
    assert len(names) >= min_count, (
        f"expected at least {min_count} exercises in {exercises_dir / 'solutions'}")
    for name in names:
        number_topic = name.removeprefix("ex")  # ex01_regularization -> 01_regularization
        assert (exercises_dir / f"{number_topic}.md").is_file(), (
            f"missing task text {number_topic}.md")
        assert (exercises_dir / "starters" / f"{name}.py").is_file(), (
            f"missing starter starters/{name}.py")


def check_starter_matches_solution(exercises_dir: str | Path, name: str,
                                   class_methods: Iterable[str] = ()) -> None:
    """The starter defines the same public functions (and, with ``class_methods``, classes)
    as the solution, with identical signatures. Raises AssertionError naming the difference."""
    exercises_dir = Path(exercises_dir)
    class_methods = tuple(class_methods)
    solution = public_api(load_module_from_file(exercises_dir / "solutions" / f"{name}.py"),
                          class_methods)
    starter = public_api(load_module_from_file(exercises_dir / "starters" / f"{name}.py"),
                         class_methods)
    what = "public function or class" if class_methods else "public function"
    assert solution, f"solutions/{name}.py defines no {what}"
    assert starter.keys() == solution.keys(), (
        f"{name}: starter defines {sorted(starter)}, solution defines {sorted(solution)}")
    for key in solution:
        if isinstance(solution[key], dict):  # a class: {method: signature}
            assert starter[key] == solution[key], (
                f"{name}.{key}: starter {starter[key]} != solution {solution[key]}")
        else:
            assert starter[key] == solution[key], (
                f"{name}.{key}: starter signature {starter[key]} "
                f"!= solution signature {solution[key]}")


def _assert_left_to_learner(fn: Callable, args: tuple, what: str, where: str) -> None:
    """``fn(*args)`` must raise NotImplementedError whose message contains ``what``."""
    try:
        fn(*args)
    except NotImplementedError as error:
        assert what in str(error), (
            f"{where}: {what} raises NotImplementedError({str(error)!r}), "
            f"which does not name {what!r}")
        return
    except Exception as error:  # an implemented starter tripping over the None arguments
        raise AssertionError(
            f"{where}: {what} must raise NotImplementedError naming {what!r} (the learner "
            f"writes it), but it raised {type(error).__name__}: {error}") from error
    raise AssertionError(f"{where}: {what} must raise NotImplementedError naming {what!r} "
                         "(the learner writes it), but it returned")


def check_starter_left_to_learner(exercises_dir: str | Path, name: str,
                                  class_methods: Iterable[str] = ()) -> None:
    """Each starter function raises NotImplementedError naming itself, before anything else
    (it is called with ``None`` for every required argument).

    With ``class_methods``, each public class is built with its default arguments (the
    constructors are given) and each listed method other than ``__init__`` must raise
    NotImplementedError naming ``Class.method`` when called on ``np.ones(3)``.
    """
    where = f"starters/{name}.py"
    module = load_module_from_file(Path(exercises_dir) / "starters" / f"{name}.py")
    for key, api in public_api(module, class_methods).items():
        obj = getattr(module, key)
        if isinstance(api, dict):
            instance = obj()
            for method in api:
                if method != "__init__":
                    _assert_left_to_learner(getattr(instance, method), (np.ones(3),),
                                            f"{key}.{method}", where)
        else:
            required = [p for p in api.parameters.values() if p.default is p.empty]
            _assert_left_to_learner(obj, (None,) * len(required), key, where)


def check_numpy_only(folder: str | Path) -> None:
    """The ``ex*.py`` files of ``folder`` pass the L1 purity rules: exercises are L1 work,
    so no torch, scipy or scikit-learn in the files a learner writes."""
    violations = find_level_violations(sorted(Path(folder).glob("ex*.py")), "l1")
    assert not violations, "\n".join(str(v) for v in violations)


def check_learner_module(module, exercises_dir: str | Path, name: str,
                         class_methods: Iterable[str] = ()) -> None:
    """``module`` (the learner's file, or the reference) defines every public function of
    the starter (and, with ``class_methods``, every class and those methods) with the same
    parameter names in the same order, and keeps to the level's rule: it may use only what
    the reference solution's level allows (NumPy only when the reference is NumPy only, no
    ``nn.Linear`` or ``torch.optim`` when the reference is L2 work). Raises AssertionError
    saying what is expected."""
    expected = public_api(load_module_from_file(Path(exercises_dir) / "starters" / f"{name}.py"),
                          class_methods)
    for key, api in expected.items():
        obj = getattr(module, key, None)
        if isinstance(api, dict):  # a class: {method: signature}
            assert obj is not None, f"{name}.py must define {key}"
            for method, signature in api.items():
                fn = getattr(obj, method, None)
                assert callable(fn), f"{name}.py: {key} must define a method {method}{signature}"
                got = list(inspect.signature(fn).parameters)
                assert got == list(signature.parameters), (
                    f"{name}.{key}.{method} must take {list(signature.parameters)}; got {got}")
        else:
            assert callable(obj), f"{name}.py must define a function {key}{api}"
            got = list(inspect.signature(obj).parameters)
            assert got == list(api.parameters), (
                f"{name}.{key} must take the parameters {list(api.parameters)}; got {got}")
    level = exercise_level(exercises_dir, name)
    if level is not None and getattr(module, "__file__", None):
        violations = find_level_violations([Path(module.__file__)], level)
        assert not violations, (f"{name}.py is level-{level[1]} work, like its reference "
                                "solution:\n  " + "\n  ".join(str(v) for v in violations))


def exercise_level(exercises_dir: str | Path, name: str) -> str | None:
    """The strictest level ("l1", "l2", "l3") whose rules the reference solution keeps."""
    reference = Path(exercises_dir) / "solutions" / f"{name}.py"
    for level in ("l1", "l2", "l3"):
        if not find_level_violations([reference], level):
            return level
    return None


def numpy_params_to_torch(params: Mapping[str, np.ndarray], dtype=None, device="cpu") -> dict:
    """Copy a dict of NumPy arrays into torch tensors that require grad."""
    import torch

    return {
        k: torch.tensor(v, dtype=dtype or torch.float64, device=device, requires_grad=True)
        for k, v in params.items()
    }


# ---------------------------------------------------------------------------
# Deliberate copies. A lesson that re-uses what an earlier lesson taught either imports it
# (utils.import_lesson) or keeps a copy, so that its file reads alone, marked on the line
# just above the copied function or class:
#
#     # Same as 02_MLP/pytorch_lowlevel/mlp_lowlevel.py:sgd_step
#     def sgd_step(params, lr): ...
#
# check_marked_copies() finds every mark and fails when a copy has drifted from its
# original (the code is compared without docstrings and comments; the name may differ).
# ---------------------------------------------------------------------------

COPY_MARK = "# Same as "
_SKIP_DIRS = {".venv", "venv", ".git", "runs", "data", "__pycache__", ".pytest_cache"}


@dataclass(frozen=True)
class MarkedCopy:
    file: Path  # where the copy is
    line: int  # line of the mark
    source: str  # "02_MLP/pytorch_lowlevel/mlp_lowlevel.py"
    name: str  # "sgd_step" or "Class.method"


def _python_files(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*.py")):
        if not _SKIP_DIRS.intersection(path.relative_to(root).parts):
            yield path


def find_marked_copies(root: str | Path) -> list[MarkedCopy]:
    """Every ``# Same as <file>:<name>`` mark under ``root``."""
    import io
    import tokenize

    root = Path(root)
    found = []
    for path in _python_files(root):
        text = path.read_text(encoding="utf-8")
        if COPY_MARK not in text:
            continue
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            # comments only: a mark quoted in a string or docstring is not a mark
            if token.type == tokenize.COMMENT and token.string.startswith(COPY_MARK):
                target = token.string[len(COPY_MARK):].split()
                if target and ":" in target[0]:
                    source, _, name = target[0].rpartition(":")
                    found.append(MarkedCopy(path, token.start[0], source, name))
    return found


def _find_definition(tree: ast.AST, dotted: str) -> ast.AST | None:
    nodes: list[ast.AST] = [tree]
    for part in dotted.split("."):
        nodes = [n for parent in nodes for n in ast.iter_child_nodes(parent)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and n.name == part]
        if not nodes:
            return None
    return nodes[0]


def _definition_after(tree: ast.AST, line: int) -> ast.AST | None:
    """The def or class that starts first after ``line`` (decorators count as its start)."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if start > line and (best is None or start < best[0]):
                best = (start, node)
    return best[1] if best else None


def _code_without_docstrings(node: ast.AST) -> str:
    node = ast.parse(ast.unparse(node)).body[0]  # a copy we may change
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            n.body = body[1:] or [ast.Pass()]
    node.name = "_"
    return ast.unparse(node)


def check_marked_copies(root: str | Path) -> list[str]:
    """Problems with the marked copies under ``root`` (empty when every copy is faithful)."""
    root = Path(root)
    problems = []
    for copy in find_marked_copies(root):
        where = f"{copy.file.relative_to(root)}:{copy.line}"
        original_path = root / copy.source
        if not original_path.is_file():
            problems.append(f"{where}: no file {copy.source}")
            continue
        original = _find_definition(ast.parse(original_path.read_text(encoding="utf-8")),
                                    copy.name)
        if original is None:
            problems.append(f"{where}: {copy.source} defines no {copy.name}")
            continue
        mine = _definition_after(ast.parse(copy.file.read_text(encoding="utf-8")), copy.line)
        if mine is None:
            problems.append(f"{where}: no function or class after the mark")
        elif _code_without_docstrings(mine) != _code_without_docstrings(original):
            problems.append(f"{where}: {mine.name} has drifted from {copy.source}:{copy.name}; "
                            "make them the same again, or import the original")
    return problems
