"""Lesson 10's demos in the tour (`make demo`), and the target each must reach.

L2: a 4-layer ViT built from tensors (24 x 24 digits cut into 16 patches of 6 x 6) trained
on scikit-learn's digits, upsampled (no download). The trivial baseline predicts the
majority class of the training split: 0.100. Measured with the defaults (seed 0, one
thread): 0.9444.

L3: the paper's model (torch.nn), 4 layers of width 64 on the same 24 x 24 digits, AdamW
with label smoothing, warm-up and cosine decay. Same baseline; measured with the defaults:
0.9667.
"""

from utils.tour import TourStop

LESSON = "10_ViT"

STOPS = [
    TourStop("ViT (low-level)", "L2", f"{LESSON}.pytorch_lowlevel.train", "digits",
             "test_accuracy", 0.85, baseline=0.100, baseline_name="majority class"),
    TourStop("ViT (paper)", "L3", f"{LESSON}.paper.train", "digits", "test_accuracy", 0.90,
             baseline=0.100, baseline_name="majority class"),
]
