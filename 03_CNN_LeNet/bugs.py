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
        name="col2im assigns instead of adding overlapping windows",
        file="numpy/conv_numpy.py",
        find="dxc[:, :, rows, _window_slice(v, stride[1], w_out)] += dcols[:, u, v]",
        replace="dxc[:, :, rows, _window_slice(v, stride[1], w_out)] = dcols[:, u, v]",
        caught_by=("numpy/test_numpy.py::test_conv_backward_equals_torch_autograd"
                   "[N2-C1-7x7-O3-k3-s1-p0]",),
        symptom="dL/dx keeps only the last window's share wherever windows overlap",
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
        name="max-pool ties go to the last maximum (>= instead of >)",
        file="numpy/conv_numpy.py",
        find="better = candidate > best  # (N, C, Ho, Wo) bool",
        replace="better = candidate >= best  # (N, C, Ho, Wo) bool",
        caught_by=("numpy/test_numpy.py::test_max_pool_ties_send_the_gradient_to_the_first_"
                   "maximum",),
        symptom="the same outputs, but after a ReLU (windows of zeros) the gradient goes "
                "elsewhere than in PyTorch",
    ),
    Bug(
        name="average-pool backward forgets the 1/(k*k)",
        file="numpy/conv_numpy.py",
        find="share = dout / np.asarray(self.kernel_size[0] * self.kernel_size[1], "
             "dtype=dout.dtype)",
        replace="share = dout",
        caught_by=("numpy/test_numpy.py::test_pool_forward_and_backward_equal_torch"
                   "[N2-C3-8x8-k2-sNone-p0-avg]",),
        symptom="gradients below each average pool are k*k = 4 times too large",
    ),
    Bug(
        name="mini-batches never shuffled (L1)",
        file="numpy/lenet_numpy.py",
        find="    order = rng.permutation(len(X))",
        replace="    order = np.arange(len(X))",
        caught_by=("numpy/test_numpy.py::test_train_epoch_shuffles_anew_every_epoch_with_the_"
                   "seeded_generator",),
        symptom="every epoch sees the same batches in the same order (sorted data: one class "
                "per batch)",
    ),
    Bug(
        name="the shuffle generator re-seeded every epoch (L2)",
        file="pytorch_lowlevel/lenet_lowlevel.py",
        find="order = torch.randperm(n, generator=order_rng).to(device)",
        replace="order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))"
                ".to(device)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_training_shuffles_anew_every_"
                   "epoch_with_the_seeded_generator",),
        symptom="shuffled once, then the same batch order in every epoch",
    ),
    Bug(
        name="im2col rows ordered (kH, kW, C) instead of the weight's (C, kH, kW)",
        file="pytorch_lowlevel/lenet_lowlevel.py",
        find="return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, h_out * w_out)",
        replace="return patches.permute(0, 4, 5, 1, 2, 3).reshape(n, c * kh * kw, h_out * w_out)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_conv2d_forward_and_gradients_"
                   "equal_F_conv2d[cpu-2x3x7x9-dtype0]",),
        symptom="right with one input channel, wrong numbers as soon as C_in > 1",
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
    Bug(
        name="training data loader without shuffle (L3)",
        file="paper/lenet_paper.py",
        find="loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed)",
        replace="loader = make_loader(X, y, batch_size=batch_size, shuffle=False, seed=seed)",
        caught_by=("paper/test_paper.py::test_training_shuffles_anew_every_epoch_with_the_"
                   "seeded_generator",),
        symptom="the same batches every epoch, in the order of the data set",
    ),
]
