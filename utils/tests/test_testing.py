"""The test helpers are tests' references, so they are tested first.

Each helper must *fail* on a wrong implementation; a checker that passes
everything would make every lesson's tests meaningless.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import testing
from utils.testing import (
    FINITE_DIFF,
    FLOAT32,
    FLOAT32_CUDA,
    FLOAT64,
    Tol,
    assert_close,
    assert_level_purity,
    check_against_autograd,
    check_layer_gradients,
    find_level_violations,
    numerical_gradient,
)

ROOT = Path(__file__).resolve().parents[2]


class Affine:
    """y = x W + b, following the L1 layer protocol; `bug` plants a classic mistake."""

    def __init__(self, d_in, d_out, bug=None, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((d_in, d_out)), "b": rng.standard_normal(d_out)}
        self.grads = {}
        self.bug = bug

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy
        self.grads["b"] = dy.sum(axis=0) if self.bug != "bias_mean" else dy.mean(axis=0)
        dx = dy @ self.params["W"].T
        return dx if self.bug != "dx_scale" else 2 * dx


def torch_affine(x, p):
    return x @ p["W"] + p["b"]


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_gradient(lambda: float(np.sum(x**3)), x)
    assert_close(g, 3 * x**2, FINITE_DIFF, "d/dx sum(x^3)")


def test_numerical_gradient_rejects_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_layer_gradient_check_passes_a_correct_layer():
    x = np.random.default_rng(1).standard_normal((4, 3))
    errors = check_layer_gradients(Affine(3, 2), x)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-8


@pytest.mark.parametrize("bug, name", [("bias_mean", "dL/db"), ("dx_scale", "dL/dx")])
def test_layer_gradient_check_catches_a_wrong_backward(bug, name):
    x = np.random.default_rng(1).standard_normal((4, 3))
    with pytest.raises(AssertionError, match=name):
        check_layer_gradients(Affine(3, 2, bug=bug), x)


def test_autograd_check_passes_and_catches():
    x = np.random.default_rng(2).standard_normal((5, 3))
    check_against_autograd(Affine(3, 4), torch_affine, x)
    with pytest.raises(AssertionError, match="dL/db"):
        check_against_autograd(Affine(3, 4, bug="bias_mean"), torch_affine, x)
    with pytest.raises(AssertionError, match="forward output"):
        check_against_autograd(Affine(3, 4), lambda x, p: torch_affine(x, p) + 1e-6, x)


def test_assert_close_reports_where_it_fails():
    a = np.zeros((2, 3))
    b = a.copy()
    b[1, 2] = 1e-3
    with pytest.raises(AssertionError, match=r"1 of 6 elements .* index \(1, 2\)"):
        assert_close(a, b, FLOAT64, "thing")
    assert_close(torch.zeros(2, 3), a, FLOAT64)  # tensors and arrays mix
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(3), np.zeros(4))


def test_assert_close_names_the_element_that_violates_the_tolerance_most():
    # Element 0 has the largest absolute difference but passes (|e| is large); element 1
    # has a smaller difference and fails. The message must point at element 1.
    expected = np.array([1000.0, 0.0, 0.0])
    actual = expected + np.array([5e-4, 2e-4, 1e-4])
    with pytest.raises(AssertionError) as err:
        assert_close(actual, expected, Tol(rtol=1e-6, atol=1e-5), "x")
    assert "2 of 3 elements" in str(err.value)
    assert "index (1,)" in str(err.value)


def test_assert_close_fails_on_nan_and_accepts_equal_infinities():
    with pytest.raises(AssertionError, match="index \\(1,\\)"):
        assert_close(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    assert_close(np.array([np.inf, -np.inf]), np.array([np.inf, -np.inf]))
    with pytest.raises(AssertionError):
        assert_close(np.array([np.inf]), np.array([-np.inf]))


def test_float32_tolerance_is_relative_to_the_scale_of_the_tensor():
    # A gradient element of -0.7 inside a tensor whose entries are ~30: float32 rounding
    # scales with the partial sums (~30), so an error of 2e-5 there is rounding, not a bug.
    expected = np.full(100, 30.0)
    expected[0] = -0.7
    actual = expected.copy()
    actual[0] += 2.1e-5
    assert_close(actual.astype(np.float32), expected, FLOAT32, "dL/dx")
    # ... but an error of the size of a real bug is still caught,
    actual[0] += 1e-3
    with pytest.raises(AssertionError, match="index \\(0,\\)"):
        assert_close(actual.astype(np.float32), expected, FLOAT32, "dL/dx")
    # and an explicit scale is honoured.
    assert_close(np.float32(1.0 + 1e-4), np.float64(1.0), FLOAT32, scale=100.0)
    with pytest.raises(AssertionError):
        assert_close(np.float32(1.0 + 1e-4), np.float64(1.0), FLOAT32)


def test_float32_tol_grows_with_the_square_root_of_the_number_of_terms():
    assert testing.float32_tol(4).rtol == pytest.approx(2 * testing.float32_tol(1).rtol)
    assert testing.float32_tol(1).rtol == pytest.approx(testing.FLOAT32_SAFETY * 2.0 ** -23)
    assert FLOAT32 == testing.float32_tol(1024) and FLOAT32.scaled
    with pytest.raises(ValueError, match="terms"):
        testing.float32_tol(0)
    with pytest.raises(ValueError, match="assert_close"):
        FLOAT32.kwargs()


def test_float32_tolerance_holds_for_a_real_float32_product_in_any_summation_order():
    # The same float32 dot products summed in three orders (BLAS, pairwise, left to right,
    # as different CPU kernels would) all pass FLOAT32 against the float64 result, with
    # room to spare; the old absolute 1e-5 did not scale with the partial sums.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    w = rng.standard_normal((1000, 8)).astype(np.float32)
    exact = x.astype(np.float64) @ w.astype(np.float64)
    sequential = np.zeros((64, 8), np.float32)
    for k in range(1000):
        sequential += x[:, k:k + 1] * w[k]
    for result in (x @ w, np.sum(x[:, :, None] * w[None], axis=1), sequential):
        assert_close(result, exact, FLOAT32)
        allowed = FLOAT32.rtol * (np.abs(exact) + np.sqrt(np.mean(exact ** 2)))
        assert np.max(np.abs(result - exact) / allowed) < 0.5


def test_tolerance_ledger_records_the_share_of_tolerance_used(monkeypatch):
    monkeypatch.setattr(testing, "TOLERANCE_LEDGER", [])
    assert_close(np.array([1.0 + 5e-11]), np.array([1.0]), Tol(rtol=0.0, atol=1e-10), "half")
    assert_close(np.float32([1.0]), np.array([1.0]), FLOAT32, "exact")
    half, exact = testing.TOLERANCE_LEDGER
    assert (half.name, half.dtype) == ("half", "float64")
    assert half.ratio == pytest.approx(0.5, rel=1e-4)
    assert (exact.dtype, exact.ratio) == ("float32", 0.0)


def test_named_tolerances():
    assert testing.tolerance(np.float64) == FLOAT64
    assert testing.tolerance(torch.float64, "cuda") == FLOAT64
    assert testing.tolerance(torch.float32) == FLOAT32
    assert testing.tolerance("float32", "cuda:0") == FLOAT32_CUDA
    with pytest.raises(ValueError, match="float32 or float64"):
        testing.tolerance(torch.int64)


# --------------------------------------------------------------------------
# Level purity
# --------------------------------------------------------------------------


def write(folder: Path, name: str, code: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(textwrap.dedent(code))
    return p


def whats(violations):
    return [(v.line, v.what.split(":")[0]) for v in violations]


def test_l1_forbids_torch_scipy_and_torch_utils(tmp_path):
    f = write(tmp_path / "numpy", "m.py", """\
        import numpy as np
        import torch
        from scipy import linalg
        from utils import cli, training_utils
        from utils.visualization import plot_curves
        import sklearn.linear_model
        """)
    v = find_level_violations([f], "l1")
    lines = sorted(x.line for x in v)
    assert lines == [2, 3, 4, 6], v
    assert "training_utils" in " ".join(x.what for x in v)


def test_l1_forbids_reusing_another_level_through_importlib(tmp_path):
    f = write(tmp_path / "numpy", "m.py", """\
        from utils import import_lesson
        ok = import_lesson("02_MLP.numpy.mlp_numpy")
        bad = import_lesson("02_MLP.paper.mlp_paper")
        """)
    assert [x.line for x in find_level_violations([f], "l1")] == [3]


def test_l2_forbids_nn_layers_functional_layers_and_optim(tmp_path):
    f = write(tmp_path / "pytorch_lowlevel", "m.py", """\
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        from torch import optim
        from torch.nn import Linear

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.zeros(3))
                self.fc = nn.Linear(3, 4)

            def forward(self, x, y):
                h = torch.relu(F.linear(x, self.w)) + F.gelu(x) + torch.softmax(x, -1)
                loss = F.cross_entropy(h, y) + torch.nn.functional.mse_loss(h, y)
                opt = torch.optim.SGD([self.w], lr=0.1)
                return torch.conv2d(x, x), F.max_pool2d(x, 2), nn.init.zeros_(self.w)
        """)
    got = find_level_violations([f], "l2")
    assert sorted({x.line for x in got}) == [4, 5, 11, 14, 15, 16, 17], got
    text = " ".join(x.what for x in got)
    for name in ("torch.nn.Linear", "torch.nn.functional.linear", "cross_entropy", "mse_loss",
                 "torch.optim", "torch.conv2d", "max_pool2d"):
        assert name in text, name
    assert "relu" not in text and "gelu" not in text and "Parameter" not in text


def test_l2_forbids_the_aten_kernels_private_entry_points_and_getattr_lookups(tmp_path):
    f = write(tmp_path / "pytorch_lowlevel", "m.py", """\
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        def forward(x, w, name):
            a = torch.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
            b = torch.native_batch_norm(x, None, None, None, None, True, 0.1, 1e-5)
            c = torch.max_pool2d_with_indices(x, 2)
            d = torch._C._nn.linear(x, w)
            e = torch.ops.aten.convolution(x, w)
            layer = getattr(torch.nn, "Linear")(3, 4)
            f = getattr(F, name)(x)
            g = getattr(torch, "conv2d")(x, w)
            ok = getattr(torch, "float32"), torch.relu(x), x.unfold(2, 3, 1)
            return a, b, c, d, e, layer, f, g, ok
        """)
    got = find_level_violations([f], "l2")
    assert sorted({x.line for x in got}) == [6, 7, 8, 9, 10, 11, 12, 13], got
    text = " ".join(x.what for x in got)
    for name in ("torch.convolution", "torch.native_batch_norm", "max_pool2d_with_indices",
                 "torch._C._nn.linear", "torch.ops.aten.convolution", "torch.nn.Linear",
                 "getattr", "torch.conv2d"):
        assert name in text, name


def test_l3_allows_nn_but_not_model_libraries_outside_conversion(tmp_path):
    f = write(tmp_path / "paper", "m.py", """\
        import torch.nn as nn
        import torch.optim as optim
        from torchvision.models import resnet18
        import transformers

        def from_torchvision(model):
            import torchvision.models as tvm
            return tvm.resnet18()

        def build():
            import timm
            return nn.Linear(2, 2), optim.SGD
        """)
    got = find_level_violations([f], "l3")
    assert sorted({x.line for x in got}) == [3, 4, 11], got


def test_sys_path_edits_are_flagged_at_every_level(tmp_path):
    f = write(tmp_path / "paper", "m.py", "import sys\nsys.path.insert(0, '..')\n")
    assert [x.line for x in find_level_violations([f], "l3")] == [2]


def test_assert_level_purity_infers_level_and_ignores_tests(tmp_path):
    folder = tmp_path / "numpy"
    write(folder, "impl.py", "import numpy as np\n")
    write(folder, "test_impl.py", "import torch\n")  # tests may use references
    assert_level_purity(folder)
    write(folder, "impl2.py", "import numpy as np\nimport torch\n")
    with pytest.raises(AssertionError, match=r"impl2.py:2"):
        assert_level_purity(folder)
    with pytest.raises(ValueError, match="cannot infer"):
        assert_level_purity(tmp_path)


LESSON = ROOT / "01_Linear_Logistic"


@pytest.mark.parametrize(
    "level_folder, injected",
    [
        ("numpy", "import torch\n"),
        ("pytorch_lowlevel", "import torch.nn as nn\n_layer = nn.Linear(3, 4)\n"),
        ("pytorch_lowlevel", "import torch\n_opt = torch.optim.SGD\n"),
    ],
)
def test_injecting_a_forbidden_use_into_lesson_01_fails_its_purity_check(
    tmp_path, level_folder, injected
):
    """The real lesson files pass; the same files plus one forbidden line do not."""
    src = LESSON / level_folder
    if not testing.implementation_files(src):
        pytest.skip(f"{src} has no implementation files yet")
    dst = tmp_path / level_folder
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    assert_level_purity(dst)  # the lesson as committed is clean
    target = testing.implementation_files(dst)[-1]
    target.write_text(target.read_text() + "\n" + injected)
    with pytest.raises(AssertionError, match=target.name):
        assert_level_purity(dst)


def test_numpy_only_utils_do_not_import_torch():
    """L1 scripts import these; none of them may pull torch in."""
    import subprocess
    import sys

    mods = sorted(testing.NUMPY_ONLY_UTILS)
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + (
        "bad = [m for m in ('torch', 'torchvision', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------
# Exercise folders: task text, starter and solution never drift apart
# --------------------------------------------------------------------------

SOLUTION = """\
    import numpy as np


    def double(x, scale=2.0):
        return scale * np.asarray(x)


    class Layer:
        def __init__(self, size=3):
            self.size = size

        def forward(self, x):
            return x

        def backward(self, dy):
            return dy
    """

STARTER = """\
    import numpy as np


    def double(x, scale=2.0):
        raise NotImplementedError("double: multiply x by scale")


    class Layer:
        def __init__(self, size=3):
            self.size = size

        def forward(self, x):
            raise NotImplementedError("Layer.forward: your code here")

        def backward(self, dy):
            raise NotImplementedError("Layer.backward: your code here")
    """

CLASS_METHODS = ("__init__", "forward", "backward")


def exercise_folder(tmp_path: Path, solution: str = SOLUTION, starter: str = STARTER,
                    count: int = 3) -> Path:
    """A lesson's exercises/ folder with `count` exercises ex01_topic .. exNN_topic."""
    for k in range(1, count + 1):
        name = f"ex{k:02d}_topic"
        write(tmp_path / "solutions", f"{name}.py", solution)
        write(tmp_path / "starters", f"{name}.py", starter)
        write(tmp_path, f"{k:02d}_topic.md", "# the task\n")
    write(tmp_path / "solutions", "helper.py", "x = 1\n")  # not an exercise: no exNN_ prefix
    return tmp_path


def test_a_good_exercise_folder_passes_every_check(tmp_path):
    folder = exercise_folder(tmp_path)
    assert testing.exercise_names(folder) == ["ex01_topic", "ex02_topic", "ex03_topic"]
    testing.check_exercise_files(folder)
    for methods in ((), CLASS_METHODS):
        testing.check_starter_matches_solution(folder, "ex02_topic", methods)
        testing.check_starter_left_to_learner(folder, "ex02_topic", methods)
        solution = testing.load_module_from_file(folder / "solutions" / "ex02_topic.py")
        testing.check_learner_module(solution, folder, "ex02_topic", methods)
    testing.check_numpy_only(folder / "solutions")
    testing.check_numpy_only(folder / "starters")


def test_public_functions_and_api_list_only_what_the_module_defines(tmp_path):
    module = testing.load_module_from_file(write(tmp_path, "m.py", """\
        from math import sqrt

        def f(a, b=1):
            return a

        def _private(a):
            return a

        class C:
            def __init__(self, n=2):
                pass
            def forward(self, x):
                return x
        """))
    functions = testing.public_functions(module)
    assert list(functions) == ["f"] and list(functions["f"].parameters) == ["a", "b"]
    assert list(testing.public_api(module)) == ["f"]  # no class_methods: classes left out
    api = testing.public_api(module, ("__init__", "forward"))
    assert sorted(api) == ["C", "f"]
    assert list(api["C"]["forward"].parameters) == ["self", "x"]


def test_check_exercise_files_catches_missing_files(tmp_path):
    folder = exercise_folder(tmp_path)
    with pytest.raises(AssertionError, match="at least 4 exercises"):
        testing.check_exercise_files(folder, min_count=4)
    (folder / "02_topic.md").unlink()
    with pytest.raises(AssertionError, match=r"missing task text 02_topic\.md"):
        testing.check_exercise_files(folder)
    write(folder, "02_topic.md", "# back\n")
    (folder / "starters" / "ex03_topic.py").unlink()
    with pytest.raises(AssertionError, match=r"missing starter starters/ex03_topic\.py"):
        testing.check_exercise_files(folder)


@pytest.mark.parametrize("change, methods, message", [
    (("def double(x, scale=2.0)", "def double(x, scale=3.0)"), (),
     r"ex01_topic\.double: starter signature \(x, scale=3\.0\) != solution signature"),
    (("def double(x, scale=2.0)", "def double(x)"), (), "starter signature"),
    (("def double(", "def twice("), (), r"starter defines \['twice'\], solution defines"),
    (("def forward(self, x)", "def forward(self, x, training)"), CLASS_METHODS,
     r"ex01_topic\.Layer: starter .* != solution"),
    (("class Layer", "class Block"), CLASS_METHODS, "starter defines"),
])
def test_check_starter_matches_solution_catches_drift(tmp_path, change, methods, message):
    folder = exercise_folder(tmp_path, starter=STARTER.replace(*change), count=1)
    with pytest.raises(AssertionError, match=message):
        testing.check_starter_matches_solution(folder, "ex01_topic", methods)


def test_check_starter_matches_solution_needs_a_public_function(tmp_path):
    folder = exercise_folder(tmp_path, solution="x = 1\n", starter="x = 1\n", count=1)
    with pytest.raises(AssertionError, match="solutions/ex01_topic.py defines no public function"):
        testing.check_starter_matches_solution(folder, "ex01_topic")


@pytest.mark.parametrize("starter, methods, message", [
    (SOLUTION, (), r"double must raise NotImplementedError naming 'double'.*but it raised "
                   "TypeError"),
    (STARTER.replace('raise NotImplementedError("double: multiply x by scale")', "return x"),
     (), r"double must raise NotImplementedError naming 'double'.*but it returned"),
    (STARTER.replace('"double: multiply', '"multiply'), (), "does not name 'double'"),
    (STARTER.replace('raise NotImplementedError("Layer.backward: your code here")',
                     "return dy"), CLASS_METHODS, "Layer.backward must raise"),
    (STARTER.replace('"Layer.forward: your', '"forward: your'), CLASS_METHODS,
     "does not name 'Layer.forward'"),
])
def test_check_starter_left_to_learner_catches_implemented_starters(tmp_path, starter, methods,
                                                                     message):
    folder = exercise_folder(tmp_path, starter=starter, count=1)
    with pytest.raises(AssertionError, match=message):
        testing.check_starter_left_to_learner(folder, "ex01_topic", methods)


def test_check_starter_left_to_learner_ignores_classes_without_class_methods(tmp_path):
    """Lessons whose exercises are functions only pass no class_methods; classes are skipped."""
    starter = STARTER.replace('raise NotImplementedError("Layer.forward: your code here")', "1")
    testing.check_starter_left_to_learner(exercise_folder(tmp_path, starter=starter, count=1),
                                          "ex01_topic")


def test_check_numpy_only_catches_torch_in_an_exercise(tmp_path):
    folder = exercise_folder(tmp_path, solution="import torch\n" + textwrap.dedent(SOLUTION))
    with pytest.raises(AssertionError, match="ex01_topic.py"):
        testing.check_numpy_only(folder / "solutions")
    testing.check_numpy_only(folder / "starters")


@pytest.mark.parametrize("learner, methods, message", [
    (SOLUTION.replace("def double(", "def twice("), (), r"must define a function double\(x"),
    (SOLUTION.replace("def double(x, scale", "def double(y, scale"), (),
     r"ex01_topic\.double must take the parameters \['x', 'scale'\]; got \['y', 'scale'\]"),
    (SOLUTION.replace("class Layer", "class Block"), CLASS_METHODS,
     "ex01_topic.py must define Layer"),
    (SOLUTION.replace("def backward(self, dy)", "def backward(self, grad)"), CLASS_METHODS,
     r"ex01_topic\.Layer\.backward must take \['self', 'dy'\]; got \['self', 'grad'\]"),
    (SOLUTION.replace("def backward(self, dy)", "def back(self, dy)"), CLASS_METHODS,
     "Layer must define a method backward"),
])
def test_check_learner_module_catches_wrong_names_and_parameters(tmp_path, learner, methods,
                                                                 message):
    folder = exercise_folder(tmp_path, count=1)
    module = testing.load_module_from_file(write(tmp_path / "mine", "ex01_topic.py", learner))
    with pytest.raises(AssertionError, match=message):
        testing.check_learner_module(module, folder, "ex01_topic", methods)


def test_one_torch_thread_fixture_pins_torch_to_one_thread(one_torch_thread):
    assert torch.get_num_threads() == 1


def test_a_learners_exercise_file_is_held_to_its_reference_solutions_level(tmp_path):
    # the same function twice: the reference in NumPy, the learner's with a torch call
    exercises = tmp_path / "exercises"
    for folder in ("solutions", "starters"):
        write(exercises / folder, "ex01_relu.py", """\
            import numpy as np

            def relu(x):
                return np.maximum(x, 0)
            """)
    assert testing.exercise_level(exercises, "ex01_relu") == "l1"
    learner = write(tmp_path / "mine", "ex01_relu.py", """\
        import numpy as np
        import torch

        def relu(x):
            return torch.relu(torch.as_tensor(x)).numpy()
        """)
    module = testing.load_module_from_file(learner)
    with pytest.raises(AssertionError, match="(?s)level-1 work.*may not import .torch."):
        testing.check_learner_module(module, exercises, "ex01_relu")
    testing.check_learner_module(
        testing.load_module_from_file(exercises / "solutions" / "ex01_relu.py"), exercises,
        "ex01_relu")


def test_assert_same_entries_names_the_first_differences():
    from utils.testing import assert_same_entries

    vocab = {f"t{i}": i for i in range(50_000)}
    assert_same_entries(vocab, dict(vocab))
    shifted = {k: v + (v >= 3) for k, v in vocab.items()}
    with pytest.raises(AssertionError) as err:
        assert_same_entries(shifted, vocab, "vocabulary")
    message = str(err.value)
    assert "'t3': got 4, expected 3" in message and "'t5': got 6" in message
    assert "'t6'" not in message  # the first three only
    with pytest.raises(AssertionError, match="missing 't0'"):
        assert_same_entries({k: v for k, v in vocab.items() if v}, vocab)
    with pytest.raises(AssertionError, match=r"at 1: got \('a', 'c'\), expected \('a', 'b'\)"):
        assert_same_entries([("x", "y"), ("a", "c")], [("x", "y"), ("a", "b")], "merges")
    with pytest.raises(AssertionError, match="2 items, expected 3"):
        assert_same_entries([1, 2], [1, 2, 3])
