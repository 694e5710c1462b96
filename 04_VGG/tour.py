"""Lesson 04's demos in the tour (`make demo`), and the target each must reach.

Both levels train the CIFAR-sized VGG (configuration A, width 8, batch norm) on
scikit-learn's 8x8 digits enlarged to 32x32 RGB fields (offline, seconds): L2 with the
hand-written layers and SGD, L3 with torch.nn, torch.optim and the shared loop. Targets
are set below what the scripts measure with their defaults (see the lesson README), so
a miss means something broke, not bad luck.
"""

from utils.tour import TourStop

LESSON = "04_VGG"

MAJORITY_CLASS = {"baseline": 0.10, "baseline_name": "majority class"}  # digits test split

STOPS = [
    TourStop("VGG-A (CIFAR variant)", "L2", f"{LESSON}.pytorch_lowlevel.train", "digits",
             "test_accuracy", 0.90, **MAJORITY_CLASS),
    TourStop("VGG-A (CIFAR variant)", "L3", f"{LESSON}.paper.train", "digits",
             "test_accuracy", 0.95, **MAJORITY_CLASS),
]
