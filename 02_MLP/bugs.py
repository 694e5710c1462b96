"""Classic bugs of lesson 02, each caught by a test: python -m utils.bugzoo 02_MLP"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="inverted dropout without the 1/(1-p) scale",
        file="numpy/mlp_numpy.py",
        find="scaled_mask = self.mask / x.dtype.type(1.0 - self.p)  # m / (1 - p), x's dtype",
        replace="scaled_mask = self.mask  # m / (1 - p), x's dtype",
        caught_by=("numpy/test_numpy.py::test_dropout_equals_the_masked_scaled_input[0.5]",),
        symptom="training sees activations (1 - p) times smaller than evaluation does",
    ),
    Bug(
        name="dropout still drops in evaluation mode",
        file="numpy/mlp_numpy.py",
        find="        if not self.training or self.p == 0.0:",
        replace="        if self.p == 0.0:",
        caught_by=("numpy/test_numpy.py::test_dropout_statistics_and_eval_mode",),
        symptom="predictions are random and rescaled: two evaluations disagree",
    ),
    Bug(
        name="evaluation left in training mode (no model.eval())",
        file="numpy/mlp_numpy.py",
        find="    was_training = getattr(model, \"training\", False)\n    model.eval()\n",
        replace="    was_training = getattr(model, \"training\", False)\n",
        caught_by=("numpy/test_numpy.py::"
                   "test_evaluation_is_deterministic_eval_mode_and_leaves_the_running_statistics",),
        symptom="test accuracy with dropout noise and batch statistics; evaluating moves the "
                "running statistics",
    ),
    Bug(
        name="batch norm's running variance from the biased batch variance",
        file="numpy/mlp_numpy.py",
        find="            self.running_var += m * var * (n / (n - 1))  # unbiased estimate",
        replace="            self.running_var += m * var  # unbiased estimate",
        caught_by=("numpy/test_numpy.py::test_batchnorm_equals_torch_over_several_steps"
                   "[0.1-1e-05]",),
        symptom="running_var N/(N-1) too small: evaluation outputs differ from nn.BatchNorm1d",
    ),
    Bug(
        name="batch statistics at evaluation (training=True passed to batch norm)",
        file="pytorch_lowlevel/mlp_lowlevel.py",
        find="                           training=training, momentum=bn_momentum, eps=bn_eps)",
        replace="                           training=True, momentum=bn_momentum, eps=bn_eps)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::"
                   "test_evaluation_is_deterministic_eval_mode_and_leaves_the_running_statistics",),
        symptom="a prediction depends on the rest of its batch; evaluation updates the stats",
    ),
    Bug(
        name="ReLU mask taken from the output with >= (y >= 0 is always true)",
        file="numpy/mlp_numpy.py",
        find="        positive = x > 0  # (same shape) the only thing backward needs",
        replace="        positive = np.maximum(x, 0) >= 0  # (same shape) from the output",
        caught_by=("numpy/test_numpy.py::test_layer_matches_torch_autograd[relu]",),
        symptom="every unit passes: the net is linear and gradients flow through dead units",
    ),
    Bug(
        name="Adam without the bias correction of the first moment",
        file="numpy/mlp_numpy.py",
        find="        bias_correction1 = 1.0 - beta1**self.t",
        replace="        bias_correction1 = 1.0",
        caught_by=("numpy/test_numpy.py::test_adam_follows_torch_optim[0.0]",),
        symptom="the first steps are 10x too small (m starts at 0 and is not rescaled)",
    ),
    Bug(
        name="Xavier bound sqrt(2 / (in + out)), the variance's formula used as the bound",
        file="numpy/mlp_numpy.py",
        find="    bound = math.sqrt(6.0 / (fan_in + fan_out))",
        replace="    bound = math.sqrt(2.0 / (fan_in + fan_out))",
        caught_by=("numpy/test_numpy.py::test_xavier_uniform_bound_and_variance",),
        symptom="weights sqrt(3) times too small: the signal shrinks layer after layer",
    ),
    Bug(
        name="cross-entropy summed over the batch instead of averaged",
        file="pytorch_lowlevel/mlp_lowlevel.py",
        find="    return (log_normaliser - true_class_logit).mean()",
        replace="    return (log_normaliser - true_class_logit).sum()",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::"
                   "test_cross_entropy_equals_torch_with_extreme_logits[cpu-dtype0]",),
        symptom="the gradient grows with the batch size, so the learning rate must shrink with it",
    ),
    Bug(
        name="mini-batches in the same order every epoch (no shuffle)",
        file="numpy/train.py",
        find="    order = rng.permutation(n)",
        replace="    order = np.arange(n)",
        caught_by=("numpy/test_numpy.py::"
                   "test_training_visits_the_data_in_a_new_seeded_order_every_epoch",),
        symptom="sorted data gives one-class batches; the same batches repeat every epoch",
    ),
]
