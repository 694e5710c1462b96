"""Classic bugs of lesson 03, each caught by a test: python -m utils.bugzoo 03_CNN_LeNet"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="output size rounds (size - k + 1) / s instead of floor((size - k) / s) + 1",
        file="numpy/conv_numpy.py",
        find="    return (padded - kernel) // stride + 1",
        replace="    return (padded - kernel + 1) // stride",
        caught_by=("numpy/test_numpy.py::test_conv_forward_equals_torch_conv2d"
                   "[N1-C2-9x7-O5-k3-s2-p0]",),
        symptom="right for stride 1, one row and column short for stride 2 on even spans",
    ),
    Bug(
        name="padding added on one side only",
        file="numpy/conv_numpy.py",
        find="return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)",
        replace="return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), constant_values=value)",
        caught_by=("numpy/test_numpy.py::test_conv_forward_equals_torch_conv2d"
                   "[N2-C3-8x6-O4-k3-s1-p1]",),
        symptom="the output shrinks by p pixels and is shifted towards the top-left corner",
    ),
    Bug(
        name="kernel flipped (true convolution instead of the libraries' cross-correlation)",
        file="numpy/conv_numpy.py",
        find="w_rows = W.reshape(c_out, -1)  # (C_out, K)",
        replace="w_rows = W[:, :, ::-1, ::-1].reshape(c_out, -1)  # (C_out, K)",
        caught_by=("numpy/test_numpy.py::test_conv_forward_equals_torch_conv2d"
                   "[N2-C1-7x7-O3-k3-s1-p0]",),
        symptom="trains as well, but weights ported to or from nn.Conv2d give other outputs",
    ),
    Bug(
        name="max-pool backward sends the gradient to every element of the window",
        file="numpy/conv_numpy.py",
        find="dxp[:, :, rows, cols] += dout * (argbest == k)",
        replace="dxp[:, :, rows, cols] += dout",
        caught_by=("numpy/test_numpy.py::test_pool_forward_and_backward_equal_torch"
                   "[N2-C3-8x8-k2-sNone-p0-max]",),
        symptom="dL/dx is k*k times too large and reaches elements that did not win the max",
    ),
    Bug(
        name="mini-batches never shuffled (L1)",
        file="numpy/train.py",
        find="    order = rng.permutation(len(X))",
        replace="    order = np.arange(len(X))",
        caught_by=("numpy/test_numpy.py::test_train_epoch_shuffles_anew_every_epoch_with_the_"
                   "seeded_generator",),
        symptom="every epoch sees the same batches in the same order (sorted data: one class "
                "per batch)",
    ),
    Bug(
        name="the shuffle generator re-seeded every epoch (L2)",
        file="pytorch_lowlevel/train.py",
        find="order = torch.randperm(n, generator=order_rng).to(device)",
        replace="order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))"
                ".to(device)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_training_shuffles_anew_every_"
                   "epoch_with_the_seeded_generator",),
        symptom="shuffled once, then the same batch order in every epoch",
    ),
    Bug(
        name="flatten in (H, W, C) order (the channels-last habit)",
        file="paper/lenet_paper.py",
        find='out["c5"] = torch.relu(self.c5(out["s4"].flatten(1)))',
        replace='out["c5"] = torch.relu(self.c5(out["s4"].permute(0, 2, 3, 1).flatten(1)))',
        caught_by=("paper/test_paper.py::test_modern_variant_equals_nn_sequential_with_copied_"
                   "weights[cpu-dtype0-0-32]",),
        symptom="trains fine alone, but weights from any channels-first model give garbage",
    ),
    Bug(
        name="predict left in training mode (L3)",
        file="paper/lenet_paper.py",
        find='"""Predicted classes (N,) int64 for images X (N, 1, H, W), in batches, in eval '
             'mode."""\n    model.eval()\n',
        replace='"""Predicted classes (N,) int64 for images X (N, 1, H, W), in batches, in eval '
                'mode."""\n',
        caught_by=("paper/test_paper.py::test_predict_runs_in_eval_mode",),
        symptom="with dropout or batch norm in the model, predictions change from call to call",
    ),
]
