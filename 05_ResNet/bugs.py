"""Classic bugs of lesson 05, each caught by a test: python -m utils.bugzoo 05_ResNet"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="ReLU before the residual addition",
        file="paper/resnet_paper.py",
        find="out = self.bn2(self.conv2(out))  # F(x): no ReLU before the addition",
        replace="out = self.relu(self.bn2(self.conv2(out)))  # F(x): no ReLU before the "
                "addition",
        caught_by=("paper/test_paper.py::test_port_both_ways_same_outputs[resnet18]",),
        symptom="the branch can only add, never subtract: another function than the paper's "
                "and torchvision's",
    ),
    Bug(
        name="no ReLU after the residual addition (L2)",
        file="pytorch_lowlevel/resnet_lowlevel.py",
        find="return torch.relu(out + _shortcut(x, params, stride, training, c_out, shortcut))",
        replace="return out + _shortcut(x, params, stride, training, c_out, shortcut)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_basic_block_equals_torchvision"
                   "[cpu-False-True]",),
        symptom="negative values flow into the next block: torchvision's weights give other "
                "outputs",
    ),
    Bug(
        name="projection shortcut without its batch norm",
        file="paper/resnet_paper.py",
        find="downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride),\n"
             "                                       nn.BatchNorm2d(out_planes))",
        replace="downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride))",
        caught_by=("paper/test_paper.py::test_imagenet_parameter_counts_and_names_equal_"
                   "torchvision",),
        symptom="the shortcut is not normalised like the branch it is added to; "
                "downsample.1.* missing from the state_dict",
    ),
    Bug(
        name="zero_init_residual zeroes bn2 of a Bottleneck instead of bn3",
        file="paper/resnet_paper.py",
        find="nn.init.zeros_(m.bn3.weight)",
        replace="nn.init.zeros_(m.bn2.weight)",
        caught_by=("paper/test_paper.py::test_zero_init_residual_zeroes_the_same_bn_as_"
                   "torchvision[Bottleneck]",),
        symptom="every block still starts as the identity, but bn3's gamma is 1 and bn2's "
                "gradient is 0 at the first step: not Goyal et al.'s (or torchvision's) init",
    ),
    Bug(
        name="He initialisation with fan_in",
        file="paper/resnet_paper.py",
        find='            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
        replace='            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")',
        caught_by=("paper/test_paper.py::test_he_initialisation_uses_fan_out_on_a_layer_"
                   "where_fan_in_differs",),
        symptom="weights sqrt(2) times larger in every layer that doubles its channels; one "
                "seed no longer gives torchvision's weights",
    ),
    Bug(
        name="stride on the 3x3 by default (torchvision's v1.5, not the paper)",
        file="paper/resnet_paper.py",
        find='                 num_classes: int = 1000, *, stride_on: str = "1x1",\n'
             '                 zero_init_residual: bool = False):',
        replace='                 num_classes: int = 1000, *, stride_on: str = "3x3",\n'
                '                 zero_init_residual: bool = False):',
        caught_by=("paper/test_paper.py::test_default_stride_on_is_the_papers_1x1",),
        symptom="ResNet(Bottleneck, ...) silently builds ResNet v1.5 instead of the paper's",
    ),
    Bug(
        name="predict with batch statistics (L2)",
        file="pytorch_lowlevel/resnet_lowlevel.py",
        find="return torch.cat([self.forward(x[i:i + batch_size], training=False).argmax(1)",
        replace="return torch.cat([self.forward(x[i:i + batch_size], training=True).argmax(1)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py::test_predict_uses_the_running_"
                   "statistics_and_leaves_them_alone",),
        symptom="a prediction depends on the rest of its batch, and predicting moves the "
                "running statistics",
    ),
    Bug(
        name="training loader without shuffle (L3)",
        file="paper/train.py",
        find="loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed)",
        replace="loader = make_loader(X, y, batch_size=batch_size, shuffle=False, seed=seed)",
        caught_by=("paper/test_paper.py::test_training_shuffles_anew_every_epoch_with_the_"
                   "seeded_generator",),
        symptom="the same batches every epoch, in the order of the data set",
    ),
]
