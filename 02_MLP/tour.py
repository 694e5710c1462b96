"""Lesson 02's demos in the tour (`make demo`), and the target each must reach.

Targets are set below what the scripts measure with their defaults (see the
lesson README), so a miss means something broke, not bad luck. Measured with the
defaults (seed 0): digits test accuracy 0.972 (L1), 0.981 (L2), 0.972 (L3);
two-moons test accuracy 0.958 (L1, its own 500/500 split), 0.975 (L2, L3).
"""

from utils.tour import TourStop

# the script of each level (train.py beside the model file)
L1 = "02_MLP.numpy.train"
L2 = "02_MLP.pytorch_lowlevel.train"
L3 = "02_MLP.paper.train"

# (dataset, target test accuracy) of each level's default run
DEMOS = [("digits", 0.93), ("moons", 0.92)]

# Majority class of the training set, scored on the test set (balanced moons: one half).
BASELINES = {"digits": 0.10, "moons": 0.50}

STOPS = [
    TourStop("MLP", level, module, dataset, "test_accuracy", target,
             baseline=BASELINES[dataset], baseline_name="majority class")
    for level, module in [("L1", L1), ("L2", L2), ("L3", L3)]
    for dataset, target in DEMOS
]
