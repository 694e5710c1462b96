"""Lesson 09's demos in the tour (`make demo`), and the target each must reach.

Both stops train a small GPT on the generated language of pytorch_lowlevel/corpus.py
(agreement, each animal's own verbs, pronouns that refer back, brackets and quotes that
must close) and report the held-out loss in nats per character. The trivial baseline is the
best model that ignores the context, the unigram distribution of the training text: 2.887.
The generator's own cross-entropy, a floor no model beats on average, is 0.291. Measured
with the defaults (seed 0, one thread): L2 0.366, L3 0.425.
"""

from utils.tour import TourStop

LESSON = "09_GPT"

STOPS = [
    TourStop("GPT (low-level)", "L2", f"{LESSON}.pytorch_lowlevel.train", "generated",
             "val_loss", 0.6, higher_is_better=False, baseline=2.887,
             baseline_name="unigram (no context)"),
    TourStop("GPT (paper)", "L3", f"{LESSON}.paper.train", "generated", "val_loss", 0.6,
             higher_is_better=False, baseline=2.887, baseline_name="unigram (no context)"),
]
