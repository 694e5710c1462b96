"""Lesson 07's demos in the tour (`make demo`), and the target each must reach.

Every level trains a small encoder-decoder Transformer on a generated sequence task
(offline, tokens from ``utils.data_loaders``) and reports the held-out exact match of
greedy decoding: the whole output sequence must be right. L2 is built from tensors and
autograd; L3 from torch.nn modules as the paper describes them. Targets are set below what
the scripts measure with their defaults (see the lesson README), so a miss means something
broke, not bad luck.
"""

from utils.tour import TourStop

LESSON = "07_Transformer"

# The most frequent target sequence of the training set, output for every input: random
# sequences almost never repeat (utils/tests/test_tour.py recomputes it).
CONSTANT = {"baseline": 0.0, "baseline_name": "most frequent output"}

STOPS = [
    TourStop("Transformer (low-level)", "L2", f"{LESSON}.pytorch_lowlevel.train",
             "generated", "exact_match", 0.95, **CONSTANT, args=("--task", "copy")),
    TourStop("Transformer (paper)", "L3", f"{LESSON}.paper.train", "copy",
             "exact_match", 0.97, **CONSTANT),
    TourStop("Transformer (paper)", "L3", f"{LESSON}.paper.train", "reverse",
             "exact_match", 0.97, **CONSTANT),
]
