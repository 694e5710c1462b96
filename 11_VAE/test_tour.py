"""The tour's target for lesson 11 beats the trivial baseline by a clear margin.

The trivial model of binarised digits has no latent code: every pixel an independent
Bernoulli at its training mean. Scored like the tour (nats per test image, the same binary
test set), it reaches 27.25 nats; a VAE whose decoder ignores z does as well, so the target
must lie clearly below it.

Run: .venv/bin/python -m pytest 11_VAE/test_tour.py -q
"""

from __future__ import annotations

import math

import numpy as np

from utils import import_lesson

tour = import_lesson("11_VAE.tour")
L2 = import_lesson("11_VAE.pytorch_lowlevel.train")  # its load_images


def test_the_baseline_is_independent_pixels_at_the_training_means():
    baseline = tour.independent_pixels_neg_log_likelihood()
    assert abs(baseline - tour.BASELINE_NEG_ELBO) < 0.01, baseline
    # the same number from the sums, pixel by pixel, as the Bernoulli log-likelihood
    X_train, X_test, _, _ = L2.load_images("digits", binarize="dynamic", seed=0)
    p = X_train.astype(np.float64).mean(axis=0)
    total = 0.0
    for d in range(X_test.shape[1]):
        ones = int(X_test[:, d].sum())
        zeros = len(X_test) - ones
        assert p[d] > 0 or ones == 0  # no test pixel is inked where training never was
        total += (ones * math.log(p[d]) if ones else 0.0) + (
            zeros * math.log1p(-p[d]) if zeros else 0.0)
    assert abs(-total / len(X_test) - baseline) < 1e-4


def test_the_target_is_clearly_below_the_baseline():
    assert tour.TARGET_NEG_ELBO <= tour.BASELINE_NEG_ELBO - 1.5  # nats per image
    assert [stop.level for stop in tour.STOPS] == ["L1", "L2", "L3"]
    for stop in tour.STOPS:
        assert stop.metric == "test_neg_elbo" and not stop.higher_is_better
        assert stop.target == tour.TARGET_NEG_ELBO and stop.baseline == tour.BASELINE_NEG_ELBO
