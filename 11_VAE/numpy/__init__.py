"""Level 1 of lesson 11: the variational autoencoder in NumPy only.

Files: ``vae_numpy.py`` (the model: the Bernoulli log-likelihood, the Gaussian KL term,
the reparameterisation z = mu + sigma * eps, the VAE with its hand-written backward pass
through the sampling step, an importance-weighted estimate of log p(x)), ``train.py``
(the script: data, training loop, evaluation, pictures), ``test_numpy.py``.

Why this file checks its own name: this folder is called ``numpy``. If Python is
started inside ``11_VAE/``, that folder is first on ``sys.path`` and
``import numpy`` would find *this* package instead of the real NumPy, and fail
later with a baffling error (``module 'numpy' has no attribute 'array'``). A
package imported as ``11_VAE.numpy`` has that full dotted name; only the
shadowing case imports it under the bare name ``numpy``, so we stop there with an
explanation instead.
"""

if __name__ == "numpy":
    raise ImportError(
        "`import numpy` found the lesson folder 11_VAE/numpy/ instead of the real "
        "NumPy, because Python was started inside 11_VAE/ (that folder is on "
        "sys.path, so its `numpy/` subfolder shadows the NumPy package).\n"
        "Run from the repository root instead, for example:\n"
        "    python 11_VAE/numpy/train.py\n"
        "    python -m 11_VAE.numpy.train\n"
        "    pytest 11_VAE"
    )
