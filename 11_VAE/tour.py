"""Lesson 11's demos in the tour (`make demo`), and the target each must reach.

The metric is the test negative ELBO in nats per image (lower is better) on
scikit-learn's 8x8 digits, binarised (each level's default: see its script). Targets
sit above what the default runs measure, so a miss means something broke, not bad
luck. Measured with the defaults (seed 0, one CPU thread): L2 64-128-8, 30 epochs:
24.2 nats; L3 the same: 24.3 nats (importance-weighted estimate, k = 100: 24.0).
L1 (its own defaults, 60 epochs): 24.06 nats. The L1 stop is listed when its script
is present; its target is the same.
"""

from pathlib import Path

from utils.tour import TourStop

L1 = "11_VAE.numpy.vae_numpy"
L2 = "11_VAE.pytorch_lowlevel.vae_lowlevel"
L3 = "11_VAE.paper.vae_paper"

TARGET_NEG_ELBO = 28.0  # nats per image on binarised digits; the untrained model is ~44

_levels = [("L2", L2), ("L3", L3)]
if (Path(__file__).parent / "numpy" / "vae_numpy.py").exists():
    _levels.insert(0, ("L1", L1))

STOPS = [
    TourStop("VAE", level, module, "digits", "test_neg_elbo", TARGET_NEG_ELBO,
             higher_is_better=False)
    for level, module in _levels
]
