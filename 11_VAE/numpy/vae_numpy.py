"""The variational autoencoder in NumPy, the backward pass through the sampling step by hand.

Kingma & Welling (2013), "Auto-Encoding Variational Bayes": a Gaussian encoder q(z|x), the
reparameterisation z = mu + sigma * eps with the noise eps passed in (Section 2.4), a
Bernoulli decoder p(x|z), the Gaussian KL in closed form (Appendix B), one hidden layer on
each side (Appendix C); and the importance-weighted estimate of log p(x) (Burda et al. 2015).
The layers (Linear, Tanh, ReLU) and Adam are lesson 02's, the stable sigmoid and softplus
lesson 01's. Reading order: ``bernoulli_log_likelihood``, ``gaussian_kl``, ``reparameterize``,
the ``VAE`` (forward, loss, backward), ``importance_weighted_log_likelihood``. The ELBO, the
KL and the backward pass are derived in ../theory.md (sections 2-4 and 8); ``train.py``
beside this file trains the model and draws its pictures.
"""

from __future__ import annotations

import math

import numpy as np

from utils import import_lesson

# Lesson 02 taught the layers (Linear with W stored (in, out), Tanh, ReLU), the
# initialisers and Adam, each checked against PyTorch there; the VAE reuses them.
_mlp = import_lesson("02_MLP.numpy.mlp_numpy")
Linear, Tanh, ReLU, Adam = _mlp.Linear, _mlp.Tanh, _mlp.ReLU, _mlp.Adam
# Lesson 01 taught the stable logistic function and softplus (exp only of -|a|: no overflow).
_logistic = import_lesson("01_Linear_Logistic.numpy.logistic_numpy")
sigmoid, softplus = _logistic.sigmoid, _logistic.softplus

ACTIVATIONS = {"tanh": Tanh, "relu": ReLU}
# the initialisation that keeps the signal's variance for each activation (lesson 02)
DEFAULT_INIT = {"tanh": "xavier", "relu": "he"}
FLOAT_DTYPES = (np.float32, np.float64)
LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# The three probabilistic pieces
# ---------------------------------------------------------------------------


def bernoulli_log_likelihood(logits, x) -> np.ndarray:
    """log p(x | logits) of independent Bernoulli pixels, summed over the pixels of each image.

    With p = sigmoid(l), log p = x log p + (1 - x) log(1 - p). Since log sigmoid(l) =
    -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l), and softplus(l) - softplus(-l) = l::

        log p(x | l) = x l - softplus(l)          per pixel

    which needs no log of a probability that rounds to 0 (l = -800 gives -800 x, not -inf).
    It is minus ``F.binary_cross_entropy_with_logits(l, x, reduction="none")`` summed, and
    ``torch.distributions.Bernoulli(logits=l).log_prob(x)`` summed, for x in {0, 1}; x in
    [0, 1] (grey levels) is allowed as the "continuous Bernoulli-style" cross-entropy.

    Gradient (used by ``VAE.backward``): d/dl [x l - softplus(l)] = x - sigmoid(l).

    Inputs:  logits (N, D) float; x (N, D) with values in [0, 1], the same shape.
    Returns: (N,) the log-likelihood of each image in nats, logits' dtype.
    """
    assert logits.shape == x.shape, (logits.shape, x.shape)  # broadcasting would hide it
    return np.sum(x * logits - softplus(logits), axis=1)  # (N,)


def gaussian_kl(mu, logvar) -> np.ndarray:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over the latent dimensions.

    Kingma & Welling (2013, Appendix B), with sigma^2 = exp(logvar)::

        KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)      >= 0, = 0 iff mu = 0, sigma = 1

    Gradients (used by ``VAE.backward``): dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1) / 2.

    Inputs:  mu (N, J), logvar (N, J) float, the same shape.
    Returns: (N,) KL of each example in nats, mu's dtype.
    """
    return 0.5 * np.sum(mu * mu + np.exp(logvar) - 1.0 - logvar, axis=1)  # (N,)


def reparameterize(mu, logvar, eps) -> np.ndarray:
    """z = mu + sigma * eps with sigma = exp(logvar / 2): a sample of N(mu, diag sigma^2).

    eps ~ N(0, I) is drawn by the caller (paper Section 2.4): the randomness is an input,
    so z is a differentiable, deterministic function of (mu, logvar) for a given eps::

        dz/dmu = 1        dz/dlogvar = eps * sigma / 2

    Predicting log sigma^2 rather than sigma keeps sigma > 0 without a constraint.

    Inputs:  mu, logvar, eps - (N, J) float, all the same shape.
    Returns: z (N, J).
    """
    return mu + np.exp(0.5 * logvar) * eps


def gaussian_log_density(z: np.ndarray, mu, logvar) -> np.ndarray:
    """log N(z; mu, diag exp(logvar)), summed over the latent dimensions.

        log N = -1/2 sum_j (log 2 pi + logvar_j + (z_j - mu_j)^2 / exp(logvar_j))

    Inputs:  z (..., J); mu, logvar broadcastable to z (0 and 0 give the prior N(0, I)).
    Returns: (...) one log-density per row of z.
    """
    return -0.5 * np.sum(LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar), axis=-1)


# ---------------------------------------------------------------------------
# Input checks, done once at the model's door (VAE.encode / decode / forward / loss)
# ---------------------------------------------------------------------------


def _as_float(a, where: str) -> np.ndarray:
    """a as a float32/float64 ndarray (integers and booleans become float64)."""
    a = np.asarray(a)
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{where} expects real numbers (float32 or float64); got dtype {a.dtype}")
    return a


def _as_matrix(a, where: str, columns: int | None = None, what: str = "features") -> np.ndarray:
    """a as a float (N, columns) matrix, or a ValueError naming the expected shape."""
    a = _as_float(a, where)
    if a.ndim != 2 or (columns is not None and a.shape[1] != columns):
        expected = f"(N, {columns})" if columns is not None else "(N, K)"
        hint = " (flatten images first: x.reshape(len(x), -1))" if a.ndim > 2 else ""
        raise ValueError(f"{where} expects shape {expected}, one row of {what} per example; "
                         f"got shape {a.shape}{hint}")
    return a


def _check_pixels(x: np.ndarray, where: str) -> None:
    """Bernoulli targets are probabilities: every pixel must lie in [0, 1]."""
    if x.size and (np.min(x) < 0 or np.max(x) > 1):
        raise ValueError(f"{where} expects pixels in [0, 1], got values in [{np.min(x):.3g}, "
                         f"{np.max(x):.3g}]: scale images first (MNIST: / 255, digits: / 16)")


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


class VAE:
    """Kingma & Welling's MLP VAE with a Gaussian encoder and a Bernoulli decoder.

    Layers (lesson 02's ``Linear``, W stored (in, out), the transpose of nn.Linear.weight):
        enc         Linear(input_dim -> hidden_dim), then the activation
        enc_mu      Linear(hidden_dim -> latent_dim)     the posterior mean
        enc_logvar  Linear(hidden_dim -> latent_dim)     the posterior log-variance
        dec         Linear(latent_dim -> hidden_dim), then the activation
        dec_out     Linear(hidden_dim -> input_dim)      the Bernoulli logits

    ``params`` and ``grads`` are flat dicts named "<layer>.<W|b>" ("enc.W", ...,
    "dec_out.b") whose values are the layers' own arrays, so lesson 02's ``Adam(model)``
    updates the model in place. ``backward`` overwrites the grads.

    Inputs (constructor):
        input_dim, hidden_dim, latent_dim - D, H, J (784, 400, 20: the reference MNIST model).
        activation - "tanh" (the paper's MNIST choice; Xavier init) or "relu" (He init).
        rng        - Generator, int seed or None (see lesson 02's ``_as_rng``).
        dtype      - float32 or float64 for every parameter.
    """

    LAYERS = ("enc", "enc_mu", "enc_logvar", "dec", "dec_out")

    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20, *,
                 activation: str = "tanh", rng=None, dtype=np.float64):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use {sorted(ACTIVATIONS)}")
        rng = _mlp._as_rng(rng)
        init = DEFAULT_INIT[activation]
        self.input_dim, self.hidden_dim, self.latent_dim = input_dim, hidden_dim, latent_dim
        self.activation = activation
        self.enc = Linear(input_dim, hidden_dim, init=init, rng=rng, dtype=dtype)
        self.enc_mu = Linear(hidden_dim, latent_dim, init=init, rng=rng, dtype=dtype)
        self.enc_logvar = Linear(hidden_dim, latent_dim, init=init, rng=rng, dtype=dtype)
        self.dec = Linear(latent_dim, hidden_dim, init=init, rng=rng, dtype=dtype)
        self.dec_out = Linear(hidden_dim, input_dim, init=init, rng=rng, dtype=dtype)
        self.enc_act, self.dec_act = ACTIVATIONS[activation](), ACTIVATIONS[activation]()
        self.dtype = np.dtype(dtype)
        self._cache = None

    # -- parameters ----------------------------------------------------------

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{name}.{key}": p for name in self.LAYERS
                for key, p in getattr(self, name).params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{name}.{key}": g for name in self.LAYERS
                for key, g in getattr(self, name).grads.items()}

    def num_params(self) -> int:
        """784-400-20: (784*400 + 400) + 2 (400*20 + 20) + (20*400 + 400) + (400*784 + 784)
        = 652,824."""
        return int(sum(p.size for p in self.params.values()))

    # -- forward -------------------------------------------------------------

    def encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Inputs: x (N, D). Returns: mu (N, J), logvar (N, J) of q(z|x)."""
        x = _as_matrix(x, "VAE.encode", self.input_dim, "pixels")
        h = self.enc_act.forward(self.enc.forward(x))  # (N, H)
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)  # (N, J), (N, J)

    def decode(self, z) -> np.ndarray:
        """Inputs: z (N, J). Returns: the Bernoulli logits (N, D); sigmoid gives the means."""
        z = _as_matrix(z, "VAE.decode", self.latent_dim, "latent codes")
        g = self.dec_act.forward(self.dec.forward(z))  # (N, H)
        return self.dec_out.forward(g)  # (N, D)

    def forward(self, x, eps) -> dict[str, np.ndarray]:
        """Encode, sample z with the given noise, decode.

        Inputs:  x (N, D) pixels; eps (N, J) standard normal noise (the caller draws it).
        Returns: {"mu", "logvar", "z"} (N, J) each and "logits" (N, D).
        """
        x = _as_matrix(x, "VAE.forward", self.input_dim, "pixels")
        eps = _as_matrix(eps, "VAE.forward (eps)", self.latent_dim, "noise")
        if eps.shape[0] != x.shape[0]:
            raise ValueError(f"VAE.forward needs one row of noise per image ({len(x)}): {len(eps)}")
        eps = eps.astype(x.dtype, copy=False)
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)  # (N, J)
        logits = self.decode(z)
        self._cache = {"x": x, "eps": eps, "mu": mu, "logvar": logvar, "logits": logits}
        return {"mu": mu, "logvar": logvar, "z": z, "logits": logits}

    def loss(self, x, eps) -> tuple[float, float, float]:
        """The negative ELBO with one sample per image, and its two parts.

            recon_n = -log p(x_n | z_n)          (sum over pixels)
            kl_n    = KL(q(z|x_n) || N(0, I))    (sum over latents)
            neg_elbo = 1/N sum_n (recon_n + kl_n)

        Inputs:  x (N, D) pixels in [0, 1]; eps (N, J) the noise.
        Returns: (neg_elbo_mean, recon_mean, kl_mean) as Python floats, nats per image;
                 neg_elbo_mean = recon_mean + kl_mean. ``backward`` then differentiates
                 neg_elbo_mean.
        """
        x = _as_matrix(x, "VAE.loss", self.input_dim, "pixels")
        _check_pixels(x, "VAE.loss")
        out = self.forward(x, eps)
        recon = -bernoulli_log_likelihood(out["logits"], x)  # (N,)
        kl = gaussian_kl(out["mu"], out["logvar"])  # (N,)
        self._cache["ready"] = True
        recon_mean, kl_mean = float(recon.mean()), float(kl.mean())
        return recon_mean + kl_mean, recon_mean, kl_mean

    # -- backward ------------------------------------------------------------

    def backward(self) -> np.ndarray:
        """Gradients of the last ``loss``'s neg_elbo_mean; fills ``grads``.

        The chain (N images; equations in the module docstring): from the logits back
        through the decoder to z, through the sampling step to (mu, logvar), where the
        KL term adds its own gradient, then through both heads and the encoder.

        Returns: dL/dx (N, D) (not needed for training; lets tests check it). x enters
                 twice, through the encoder and as the target of the reconstruction
                 term, d/dx [-(x l - softplus(l))] / N = -l / N; both paths are included.
        """
        cache = self._cache
        if cache is None or not cache.get("ready"):
            raise RuntimeError("VAE.backward called before loss: run loss(x, eps) first "
                               "(backward differentiates the last loss)")
        x, eps, mu, logvar, logits = (cache[k] for k in ("x", "eps", "mu", "logvar", "logits"))
        n = x.shape[0]
        # reconstruction: d/dl [-(x l - softplus(l))] = sigmoid(l) - x, averaged over the batch
        dlogits = (sigmoid(logits) - x) / n  # (N, D)
        dz = self.dec.backward(self.dec_act.backward(self.dec_out.backward(dlogits)))  # (N, J)
        sigma = np.exp(0.5 * logvar)  # (N, J)
        # through z = mu + sigma eps, plus the KL's own gradient (mu, (sigma^2 - 1) / 2)
        dmu = dz + mu / n
        dlogvar = dz * eps * 0.5 * sigma + 0.5 * (sigma * sigma - 1.0) / n
        # h feeds both heads, so their gradients add
        dh = self.enc_mu.backward(dmu) + self.enc_logvar.backward(dlogvar)  # (N, H)
        dx_encoder = self.enc.backward(self.enc_act.backward(dh))  # (N, D)
        return dx_encoder - logits / n  # plus x's path as the reconstruction target

    def sample(self, n: int, rng=None) -> np.ndarray:
        """n images from the model: z ~ N(0, I), then the Bernoulli means sigmoid(decode(z)).

        Returns: (n, D) pixel probabilities in the model's dtype.
        """
        z = _mlp._as_rng(rng).standard_normal((n, self.latent_dim)).astype(self.dtype)
        return sigmoid(self.decode(z))

    def __repr__(self) -> str:
        return (f"VAE({self.input_dim}-{self.hidden_dim}-{self.latent_dim}, "
                f"activation={self.activation}, {self.num_params():,} parameters)")


# ---------------------------------------------------------------------------
# Evaluation and pictures: an importance-weighted log p(x), the 2-D latent manifold
# ---------------------------------------------------------------------------


def importance_weighted_log_likelihood(model: VAE, x, num_samples: int = 100, *,
                                       rng=0) -> np.ndarray:
    """Estimate log p(x) with K samples from q (Burda, Grosse & Salakhutdinov 2015, eq. 8).

        log p(x) ~ log 1/K sum_k w_k,   w_k = p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

    For K = 1 this is the ELBO (in expectation); it rises towards log p(x) as K grows,
    so -estimate is an upper bound on the negative log-likelihood, tighter than -ELBO.
    The mean over K weights is taken in log space (logsumexp) because the w_k are
    products of hundreds of probabilities.

    Inputs:  model; x (N, D) pixels in [0, 1]; num_samples K; rng - seed or Generator.
    Returns: (N,) the estimates of log p(x_n), nats.
    """
    x = _as_matrix(x, "importance_weighted_log_likelihood", model.input_dim, "pixels")
    _check_pixels(x, "importance_weighted_log_likelihood")
    num_samples = _mlp._check_positive_int(num_samples, "num_samples")
    rng = _mlp._as_rng(rng)
    n, j = x.shape[0], model.latent_dim
    mu, logvar = model.encode(x)  # (N, J)
    eps = rng.standard_normal((num_samples, n, j)).astype(x.dtype)  # (K, N, J)
    z = mu + np.exp(0.5 * logvar) * eps  # (K, N, J)
    logits = model.decode(z.reshape(num_samples * n, j))  # (K*N, D)
    log_px_z = bernoulli_log_likelihood(logits, np.tile(x, (num_samples, 1)))
    log_px_z = log_px_z.reshape(num_samples, n)  # (K, N)
    log_pz = gaussian_log_density(z, 0.0, 0.0)  # (K, N), the prior
    log_qz = gaussian_log_density(z, mu, logvar)  # (K, N)
    log_w = (log_px_z + log_pz - log_qz).astype(np.float64)  # (K, N)
    top = log_w.max(axis=0)  # logsumexp, shifted by the largest weight
    return top + np.log(np.mean(np.exp(log_w - top), axis=0))


def latent_manifold(model: VAE, side: int = 15) -> np.ndarray:
    """Decode a side x side grid of 2-D codes spread by the prior's quantiles (paper Fig. 4).

    The grid points are Phi^-1 of evenly spaced probabilities, so each cell covers the
    same prior mass. Phi^-1 comes from bisection on erf (L1 is NumPy only, no SciPy).

    Returns: (side * side, D) Bernoulli means, row-major from the top-left.
    """
    if model.latent_dim != 2:
        raise ValueError(f"the latent manifold needs a 2-D latent space, not {model.latent_dim} "
                         "(train with --latent-dim 2)")
    probs = np.linspace(0.05, 0.95, side)
    lo, hi = np.full(side, -10.0), np.full(side, 10.0)
    for _ in range(60):  # bisection for Phi(q) = p, Phi(q) = (1 + erf(q / sqrt 2)) / 2
        mid = (lo + hi) / 2
        below = 0.5 * (1 + _mlp.erf(mid / math.sqrt(2))) < probs
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    q = (lo + hi) / 2
    z = np.array([[a, b] for b in q[::-1] for a in q], dtype=model.dtype)  # (side^2, 2)
    return sigmoid(model.decode(z))
