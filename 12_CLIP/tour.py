"""Lesson 12's demos in the tour (`make demo`), and the target each must reach.

L2: CLIP from tensors (1 + 1 layers of width 64), trained with the hand-written loss and
AdamW on the same pairs as L3 below; measured with the defaults: 0.7611.

L3: a small CLIP (2 + 2 layers of width 64) trained from scratch on generated image-caption
pairs: scikit-learn's digits drawn in a colour, a size and a position on a 32 x 32 canvas,
described by varied caption templates. The metric is zero-shot accuracy on the test digits,
classified by prompt templates that never occur in a training caption. The trivial baseline
always answers the training majority class: 0.100. Measured with the defaults (seed 0, one
thread): 0.736.
"""

from utils.tour import TourStop

LESSON = "12_CLIP"

STOPS = [
    TourStop("CLIP (low-level), zero-shot", "L2", f"{LESSON}.pytorch_lowlevel.train", "digits",
             "zero_shot_accuracy", 0.5, baseline=0.100, baseline_name="majority class"),
    TourStop("CLIP (paper), zero-shot", "L3", f"{LESSON}.paper.train", "digits",
             "zero_shot_accuracy", 0.5, baseline=0.100, baseline_name="majority class"),
]
