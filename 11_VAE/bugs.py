"""Classic bugs of lesson 11, each caught by a test: python -m utils.bugzoo 11_VAE"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="the variance exp(logvar) used as the standard deviation",
        file="paper/vae_paper.py",
        find="z = mu + torch.exp(0.5 * logvar) * eps  # Section 2.4",
        replace="z = mu + torch.exp(logvar) * eps  # Section 2.4",
        caught_by=("paper/test_paper.py::test_neg_elbo_matches_torch_distributions",),
        symptom="z is drawn from N(mu, sigma^4), not from the posterior q: the sample no "
                "longer fits the KL term, and the ELBO is no longer a bound on log p(x)",
    ),
    Bug(
        name="KL term without its 1/2",
        file="pytorch_lowlevel/vae_lowlevel.py",
        find="return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)",
        replace="return -(1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py"
                   "::test_gaussian_kl_matches_kl_divergence_and_monte_carlo",),
        symptom="the KL counts twice: the codes are pushed towards the prior, reconstructions "
                "blur and the reported -ELBO is too high",
    ),
    Bug(
        name="KL added with the wrong sign",
        file="paper/vae_paper.py",
        find="        return recon + kl, recon, kl",
        replace="        return recon - kl, recon, kl",
        caught_by=("paper/test_paper.py::test_neg_elbo_matches_torch_distributions",),
        symptom="training maximises the KL: the posteriors run away from N(0, I), the loss "
                "falls without bound and samples from the prior are noise",
    ),
    Bug(
        name="Bernoulli log-likelihood of probabilities passed as logits",
        file="pytorch_lowlevel/vae_lowlevel.py",
        find="    return (x * logits - F.softplus(logits)).sum(dim=1)",
        replace="    probs = torch.sigmoid(logits)\n"
                "    return (x * probs - F.softplus(probs)).sum(dim=1)",
        caught_by=("pytorch_lowlevel/test_lowlevel.py"
                   "::test_bernoulli_log_likelihood_matches_torch_distributions",),
        symptom="sigmoid applied twice: every pixel's probability lies in (0.5, 0.73), so "
                "reconstructions stay grey whatever the decoder learns",
    ),
    Bug(
        name="reconstruction averaged over pixels instead of summed",
        file="numpy/vae_numpy.py",
        find="return np.sum(x * logits - softplus(logits), axis=1)  # (N,)",
        replace="return np.mean(x * logits - softplus(logits), axis=1)  # (N,)",
        caught_by=("numpy/test_numpy.py::test_bernoulli_log_likelihood_equals_torch_distributions",),
        symptom="the reconstruction term shrinks D times against the KL: the posterior "
                "collapses to the prior and the decoder ignores z",
    ),
    Bug(
        name="dz/dlogvar without the 1/2 of sigma = exp(logvar / 2)",
        file="numpy/vae_numpy.py",
        find="dlogvar = dz * eps * 0.5 * sigma + 0.5 * (sigma * sigma - 1.0) / n",
        replace="dlogvar = dz * eps * sigma + 0.5 * (sigma * sigma - 1.0) / n",
        caught_by=("numpy/test_numpy.py::test_backward_matches_finite_differences",),
        symptom="the log-variance heads get twice the sampling path's gradient: training "
                "still runs, only finite differences show it",
    ),
    Bug(
        name="static binarisation: the same Bernoulli draw every epoch",
        file="paper/train.py",
        find="X = (torch.rand(X_train.shape, generator=gen) < X_train.cpu()).to(X_train)",
        replace="X = (torch.rand(X_train.shape, generator=torch.Generator().manual_seed(seed))"
                " < X_train.cpu()).to(X_train)",
        caught_by=("paper/test_paper.py::test_training_binarises_afresh_every_epoch",),
        symptom="one fixed binary training set instead of a new draw per epoch: the "
                "augmentation is gone and the model overfits that one draw",
    ),
    Bug(
        name="evaluation noise not seeded",
        file="paper/train.py",
        find="""    model.eval()
    torch.manual_seed(seed)
""",
        replace="""    model.eval()
""",
        caught_by=("paper/test_paper.py::test_evaluate_is_deterministic_and_equals_the_seeded_loss",),
        symptom="the test -ELBO changes from call to call (and with whatever drew random "
                "numbers before): runs cannot be compared",
    ),
]
