"""Lesson 05's demos in the tour (`make demo`), and the target each must reach.

Both levels train a CIFAR-style ResNet (Section 4.2 of He et al. 2015) on
scikit-learn's 8x8 digits, placed in a 16x16 field with 3 identical colour channels
(offline, seconds each): L2 a ResNet-8 built from unfold + matmul convolutions and a
hand-written SGD step, L3 the paper's ResNet-20 with torch.optim. Targets are set
below what the scripts measure with their defaults (see the lesson README), so a
miss means something broke, not bad luck.
"""

from utils.tour import TourStop

LESSON = "05_ResNet"

MAJORITY_CLASS = {"baseline": 0.10, "baseline_name": "majority class"}  # digits test split

STOPS = [
    TourStop("ResNet-8 (CIFAR form)", "L2", f"{LESSON}.pytorch_lowlevel.train",
             "digits", "test_accuracy", 0.90, **MAJORITY_CLASS),
    TourStop("ResNet-20 (CIFAR form)", "L3", f"{LESSON}.paper.train", "digits",
             "test_accuracy", 0.90, **MAJORITY_CLASS),
]
