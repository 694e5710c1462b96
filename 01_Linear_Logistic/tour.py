"""Lesson 01's demos in the tour (`make demo`), and the target each must reach.

Targets are set below what the scripts measure with their defaults (see the
lesson README), so a miss means something broke, not bad luck.
"""

from utils.tour import TourStop

L1 = "01_Linear_Logistic.numpy"
L2 = "01_Linear_Logistic.pytorch_lowlevel"
L3 = "01_Linear_Logistic.paper"

# (model, dataset, metric, target, script name at each level)
DEMOS = [
    ("Linear regression", "diabetes", "test_r2", 0.30, "linear"),
    ("Logistic regression", "breast_cancer", "test_accuracy", 0.95, "logistic"),
    ("Softmax regression", "digits", "test_accuracy", 0.93, "logistic"),
]
# What a model that ignores its input scores on the same test split (utils/tests/test_tour.py
# recomputes these): the training mean for R^2, the training set's majority class.
BASELINES = {"diabetes": (-0.0013, "training mean"), "breast_cancer": (0.6316, "majority class"),
             "digits": (0.10, "majority class")}

STOPS = [
    TourStop(model, level, f"{package}.{script}_{suffix}", dataset, metric, target,
             baseline=BASELINES[dataset][0], baseline_name=BASELINES[dataset][1])
    for level, package, suffix in [("L1", L1, "numpy"), ("L2", L2, "lowlevel"), ("L3", L3, "paper")]
    for model, dataset, metric, target, script in DEMOS
]
