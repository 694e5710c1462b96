"""Lesson 01's demos in the tour (`make demo`), and the target each must reach.

Targets are set below what the scripts measure with their defaults (see the
lesson README), so a miss means something broke, not bad luck.
"""

from utils.tour import TourStop

L1 = "01_Linear_Logistic.numpy"
L2 = "01_Linear_Logistic.pytorch_lowlevel"
L3 = "01_Linear_Logistic.paper"

# (model, dataset, metric, target, the task's script at every level: train_<task>.py)
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
    TourStop(model, level, f"{package}.train_{task}", dataset, metric, target,
             baseline=BASELINES[dataset][0], baseline_name=BASELINES[dataset][1])
    for level, package in [("L1", L1), ("L2", L2), ("L3", L3)]
    for model, dataset, metric, target, task in DEMOS
]
