"""Lesson 11's demos in the tour (`make demo`), and the target each must reach.

The metric is the test negative ELBO in nats per image (lower is better) on
scikit-learn's 8x8 digits, binarised (each level's default: the training images
redrawn as Bernoulli(grey level) every epoch, the test images drawn once with seed
12345). Measured with the defaults (seed 0, one CPU thread): L1 (its own defaults,
40 epochs) 24.06 nats; L2 64-128-8, 30 epochs: 24.20; L3 the same: 24.32
(importance-weighted estimate, k = 100: 24.0). An untrained model scores about 44.

The trivial baseline is a model without a latent code: every pixel an independent
Bernoulli at its mean over the training images. It scores 27.25 nats on the same test
set (``independent_pixels_neg_log_likelihood`` computes it), so a VAE whose decoder
ignores z lands there. The target, 25.5, is 1.75 nats below that baseline and about
1.2 above what the levels measure: reaching it needs a latent code that carries
information, and a miss means something broke, not bad luck.
"""

from utils.tour import TourStop

L1 = "11_VAE.numpy.train"
L2 = "11_VAE.pytorch_lowlevel.train"
L3 = "11_VAE.paper.train"

BASELINE_NEG_ELBO = 27.25  # independent pixels at the training means (see below)
TARGET_NEG_ELBO = 25.5  # nats per image on binarised digits, clearly below the baseline

STOPS = [
    TourStop("VAE", level, module, "digits", "test_neg_elbo", TARGET_NEG_ELBO,
             higher_is_better=False, baseline=BASELINE_NEG_ELBO,
             baseline_name="independent pixels (training means)")
    for level, module in (("L1", L1), ("L2", L2), ("L3", L3))
]


def independent_pixels_neg_log_likelihood() -> float:
    """-log p(x) of the tour's test set under independent Bernoulli pixels, nats per image.

    p_d = the mean of pixel d over the training images' grey levels (what dynamic
    binarisation draws on average); the test images are the binary ones every level scores
    (``load_images`` of pytorch_lowlevel/train.py: seed 12345). A pixel never inked in
    training gets p = 1e-6 (none of them is inked in the test set, so the value does not
    matter).
    """
    import numpy as np

    from utils.lessons import import_lesson

    X_train, X_test, _, _ = import_lesson(L2).load_images("digits", binarize="dynamic", seed=0)
    p = np.clip(X_train.astype(np.float64).mean(axis=0), 1e-6, 1 - 1e-6)  # (D,)
    X_test = X_test.astype(np.float64)
    log_p = X_test @ np.log(p) + (1 - X_test) @ np.log1p(-p)  # (M,) log p(x) per image
    return float(-log_p.mean())
