"""Classic bugs of lesson 01, each caught by a test: python -m utils.bugzoo 01_Linear_Logistic"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="gradient of the mean loss without the 1/N",
        file="numpy/logistic_numpy.py",
        find="    dz = (sigmoid(z) - y) / n  # dL/dz = (p - y) / N",
        replace="    dz = sigmoid(z) - y  # dL/dz = (p - y) / N",
        caught_by=("numpy/test_numpy.py::test_binary_cross_entropy_with_logits[False]",),
        symptom="the gradient of the sum, N times too large: the step size now depends on N",
    ),
    Bug(
        name="softmax without subtracting the row maximum",
        file="numpy/logistic_numpy.py",
        find="        E = np.exp(Z - Z.max(axis=1, keepdims=True))  # (N, K), entries in [0, 1]",
        replace="        E = np.exp(Z)  # (N, K)",
        caught_by=("numpy/test_numpy.py::test_extreme_logits_are_exact_and_silent",),
        symptom="e^1000 overflows to inf and inf / inf gives NaN probabilities and gradients",
    ),
    Bug(
        name="one-hot subtracted with the wrong index (every row's label in every row)",
        file="numpy/logistic_numpy.py",
        find="    dZ[rows, y] -= 1.0  # softmax(Z) - onehot(y), without building the one-hot matrix",
        replace="    dZ[:, y] -= 1.0  # softmax(Z) - onehot(y), without building the one-hot matrix",
        caught_by=("numpy/test_numpy.py::test_softmax_cross_entropy",),
        symptom="dL/dZ subtracts 1 in the columns of all the batch's labels, not each row's own",
    ),
    Bug(
        name="the ridge penalty applied to the bias too",
        file="numpy/logistic_numpy.py",
        find='"b": self.grads["b"]}  # the bias is not penalised',
        replace='"b": self.grads["b"] + self.l2 * self.b}  # the bias is not penalised',
        caught_by=("numpy/test_numpy.py::test_objective_gradient_including_l2[logistic]",),
        symptom="the gradient is not that of J (which leaves b alone): b shrinks towards 0",
    ),
    Bug(
        name="update with the wrong sign (ascent instead of descent)",
        file="numpy/logistic_numpy.py",
        find="self.params[key] -= self.lr * velocity[key]  # in place, as W / b",
        replace="self.params[key] += self.lr * velocity[key]  # in place, as W / b",
        caught_by=("numpy/test_numpy.py::test_momentum_is_torch_optim_sgds_rule",),
        symptom="the loss grows every epoch instead of falling",
    ),
    Bug(
        name="mini-batches in the same order every epoch (no shuffle)",
        file="numpy/logistic_numpy.py",
        find="            order = self.rng.permutation(n) if batch_size < n else np.arange(n)",
        replace="            order = np.arange(n)",
        caught_by=("numpy/test_numpy.py::"
                   "test_sgd_visits_the_data_in_a_new_seeded_order_every_epoch[softmax]",),
        symptom="sorted data gives batches of one class: SGD zig-zags and ends biased",
    ),
    Bug(
        name="intercept set to mean(y), forgetting the features' mean",
        file="numpy/linear_numpy.py",
        find="        self.b = (y_mean - x_mean @ W).astype(X.dtype)  # b = mean(Y) - mean(X) W",
        replace="        self.b = np.asarray(y_mean).astype(X.dtype)  # b = mean(Y)",
        caught_by=("numpy/test_numpy.py::"
                   "test_normal_equation_equals_sklearn_linear_regression[uncentred]",),
        symptom="right only for centred features; otherwise every prediction is shifted",
    ),
    Bug(
        name="no zero_grad before backward (gradients accumulate)",
        file="pytorch_lowlevel/logistic_lowlevel.py",
        find="                zero_grad(params)\n                J = self._data_loss(",
        replace="                J = self._data_loss(",
        caught_by=("paper/test_paper.py::"
                   "test_gradient_descent_follows_the_same_path_at_every_level[softmax]",),
        symptom="each step uses the sum of all past gradients: a runaway step size",
    ),
    Bug(
        name="weight decay on the bias too (one parameter group)",
        file="paper/linear_paper.py",
        find='{"params": [linear.bias], "weight_decay": 0.0}],',
        replace='{"params": [linear.bias], "weight_decay": l2}],',
        caught_by=("paper/test_paper.py::"
                   "test_gradient_descent_follows_the_same_path_at_every_level[logistic]",),
        symptom="torch.optim minimises J + (l2/2) b^2, not J: L3 drifts from L1 and L2",
    ),
]
