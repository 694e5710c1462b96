"""Classic bugs of lesson 04, each caught by a test: python -m utils.bugzoo 04_VGG"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="batch norm normalises with the unbiased variance (x.var())",
        file="pytorch_lowlevel/vgg_lowlevel.py",
        find="var = ((x - mu[:, None, None]) ** 2).mean(dim=(0, 2, 3))  # (C,) biased",
        replace="var = x.var(dim=(0, 2, 3))  # (C,)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_batch_norm_running_variance_is_"
                   "unbiased_by_hand",),
        symptom="outputs slightly too small in training, and the running variance "
                "corrected twice",
    ),
    Bug(
        name="batch norm running variance kept biased",
        file="pytorch_lowlevel/vgg_lowlevel.py",
        find="running_var.mul_(1 - momentum).add_(momentum * var * (m / (m - 1)))",
        replace="running_var.mul_(1 - momentum).add_(momentum * var)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_batch_norm_running_variance_is_"
                   "unbiased_by_hand",),
        symptom="evaluation divides by a variance too small by (m - 1) / m: small batches "
                "and 1x1 maps drift",
    ),
    Bug(
        name="batch norm momentum convention inverted",
        file="pytorch_lowlevel/vgg_lowlevel.py",
        find="running_mean.mul_(1 - momentum).add_(momentum * mu)",
        replace="running_mean.mul_(momentum).add_((1 - momentum) * mu)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_batch_norm_train_and_eval_equal_"
                   "nn_batchnorm2d[cpu-0.1-dtype0]",),
        symptom="running mean follows each batch (weight 0.9 on the new value): noisy "
                "evaluation",
    ),
    Bug(
        name="batch norm uses batch statistics in evaluation",
        file="pytorch_lowlevel/vgg_lowlevel.py",
        find='self.buffers[f"{key}.running_var"], self.training,',
        replace='self.buffers[f"{key}.running_var"], True,',
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_predict_runs_in_eval_mode_and_"
                   "restores_the_mode",),
        symptom="a prediction depends on the other images of its batch, and evaluation "
                "moves the running statistics",
    ),
    Bug(
        name="predict forgets to switch to eval mode (L2)",
        file="pytorch_lowlevel/vgg_lowlevel.py",
        find="        was_training = self.training\n        self.eval()\n",
        replace="        was_training = self.training\n",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_predict_runs_in_eval_mode_and_"
                   "restores_the_mode",),
        symptom="test accuracy measured with batch statistics, and the running statistics "
                "updated on test data",
    ),
    Bug(
        name="mini-batches never shuffled (L2)",
        file="pytorch_lowlevel/train.py",
        find="order = torch.randperm(n, generator=rng).to(device)",
        replace="order = torch.arange(n, device=device)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_training_shuffles_anew_every_"
                   "epoch_with_the_seeded_generator",),
        symptom="the same batches in the data set's order every epoch",
    ),
    Bug(
        name="predict forgets model.eval() (L3)",
        file="paper/vgg_paper.py",
        find='"""Predicted classes (N,) int64 for images X (N, 3, H, W), in batches, in eval '
             'mode."""\n    model.eval()\n',
        replace='"""Predicted classes (N,) int64 for images X (N, 3, H, W), in batches, in '
                'eval mode."""\n',
        caught_by=("paper/test_paper.py::test_predict_runs_in_eval_mode",),
        symptom="dropout active and batch norm on batch statistics while predicting",
    ),
    Bug(
        name="He initialisation with fan_in instead of torchvision's fan_out",
        file="paper/vgg_paper.py",
        find='nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
        replace='nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")',
        caught_by=("paper/test_paper.py::test_torchvision_init_is_he_normal_with_fan_out",),
        symptom="weights sqrt(2) times larger wherever a layer doubles its channels",
    ),
]
