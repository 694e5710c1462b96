"""Lesson 03's demos in the tour (`make demo`), and the target each must reach.

Every level trains LeNet-5 on scikit-learn's 8x8 digits, enlarged to LeNet's 32x32
input field (offline, a few seconds each). L1 and L2 train the modern form (ReLU,
max pooling, softmax); L3 the paper's own network (scaled tanh, trainable
subsampling, the C3 connection table, RBF outputs). Targets are set below what the
scripts measure with their defaults (see the lesson README), so a miss means
something broke, not bad luck.
"""

from utils.tour import TourStop

LESSON = "03_CNN_LeNet"

MAJORITY_CLASS = {"baseline": 0.10, "baseline_name": "majority class"}  # digits test split

STOPS = [
    TourStop("LeNet-5 (modern)", "L1", f"{LESSON}.numpy.train", "digits",
             "test_accuracy", 0.93, **MAJORITY_CLASS),
    TourStop("LeNet-5 (modern)", "L2", f"{LESSON}.pytorch_lowlevel.train", "digits",
             "test_accuracy", 0.93, **MAJORITY_CLASS),
    TourStop("LeNet-5 (paper)", "L3", f"{LESSON}.paper.train", "digits",
             "test_accuracy", 0.93, **MAJORITY_CLASS, args=("--variant", "paper")),
]
