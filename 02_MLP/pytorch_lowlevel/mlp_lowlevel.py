"""The multilayer perceptron in low-level PyTorch (L2 of lesson 02): layers as functions of
tensors, autograd for the gradients, the optimisers written by hand (no torch.nn layers, no
torch.optim).

Rumelhart, Hinton & Williams (1986): for l = 1 .. L, a_l = h_{l-1} W_l + b_l, optional batch
norm (Ioffe & Szegedy 2015), h_l = f(a_l), optional dropout (Srivastava et al. 2014); the
logits a_L go into the softmax cross-entropy. Xavier (Glorot & Bengio 2010) and He (He et
al. 2015) initialisation; SGD with momentum and Adam / AdamW (Kingma & Ba 2015) as
torch.optim updates. W is stored (in, out), the transpose of nn.Linear's. The derivations
are in ``../theory.md`` (the notes that used to open this file are in its appendix);
``train.py`` beside this file trains the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from utils import import_lesson

# Lesson 01 taught the input checks at this level; the MLP adds the model's width to them.
_lesson01 = import_lesson("01_Linear_Logistic.pytorch_lowlevel.linear_lowlevel")
_lesson01_logistic = import_lesson("01_Linear_Logistic.pytorch_lowlevel.logistic_lowlevel")
labels_as_int64 = _lesson01_logistic.labels_as_int64

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "gelu_tanh")
INITS = ("auto", "xavier", "he")


# --------------------------------------------------------------------------------------
# 1. The layers, as functions of tensors
# --------------------------------------------------------------------------------------


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Fully connected layer a = x W + b.

    Inputs:  x (N, n_in), W (n_in, n_out), b (n_out,)
    Returns: a (N, n_out). (nn.Linear computes x weight^T + bias with weight = W^T.)
    """
    return x @ W + b  # (N, n_in) @ (n_in, n_out) + (n_out,) -> (N, n_out)


def apply_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """Elementwise non-linearity f(x), one of ACTIVATIONS.

    relu(x)    = max(0, x)                         f' = 1[x > 0]         (Nair & Hinton 2010)
    sigmoid(x) = 1 / (1 + e^-x)                    f' = s (1 - s) <= 1/4
    tanh(x)    = (e^x - e^-x) / (e^x + e^-x)       f' = 1 - tanh^2 <= 1
    gelu(x)    = x Phi(x), Phi the standard normal CDF, exact (erf) form (Hendrycks &
                 Gimpel 2016); nn.GELU() with its default approximate="none"
    gelu_tanh  = the paper's tanh approximation x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) / 2,
                 used by BERT and GPT-2; nn.GELU(approximate="tanh")

    Inputs: x any shape; Returns: f(x), same shape
    """
    if name == "relu":
        return torch.relu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "gelu":
        return F.gelu(x)  # erf form: x * (1 + erf(x / sqrt 2)) / 2
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def dropout(x: torch.Tensor, p: float, *, training: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout (Srivastava et al. 2014, JMLR 15): drop each unit with probability p.

        m_ij ~ Bernoulli(1 - p)  (1 = keep),     y = x * m / (1 - p)

    Dividing by the keep probability 1 - p during training keeps E[y] = x, so evaluation
    needs no rescaling: there y = x. (The paper instead multiplies the weights by 1 - p
    at test time; the two are the same network in expectation.)

    Inputs:  x any shape; p in [0, 1); training - False returns x unchanged;
             generator - optional torch.Generator for reproducible masks (the mask is
             drawn on the generator's device, then moved to x's)
    Returns: y, the shape of x. Autograd gives dy/dx = m / (1 - p).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x
    where = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
    keep = (u >= p).to(x.dtype)  # P(u >= p) = 1 - p for u ~ U[0, 1)
    return x * keep / (1.0 - p)


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               running_mean: torch.Tensor, running_var: torch.Tensor, *, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalisation of a (N, C) batch (Ioffe & Szegedy 2015, Algorithm 1 and 2).

    Training (statistics of this batch, per feature c)::

        mu_c = 1/N sum_i x_ic            var_c = 1/N sum_i (x_ic - mu_c)^2   (biased)
        y_ic = gamma_c (x_ic - mu_c) / sqrt(var_c + eps) + beta_c

    and, outside the graph, the running estimates used at evaluation are updated::

        running_mean <- (1 - momentum) running_mean + momentum mu
        running_var  <- (1 - momentum) running_var  + momentum var N / (N - 1)   (unbiased)

    Evaluation: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta, so a
    sample's output no longer depends on the rest of its batch. This is what
    ``nn.BatchNorm1d(C, eps, momentum)`` does (its ``momentum`` is the weight of the
    NEW statistic, the opposite of an optimiser's momentum).

    Inputs:  x (N, C); gamma, beta, running_mean, running_var (C,);
             training - batch statistics (and update the running ones) or running ones
    Returns: y (N, C). running_mean / running_var are updated in place when training.
    """
    if training:
        n = x.shape[0]
        if n < 2:
            raise ValueError("batch_norm: a training batch needs at least 2 rows: the "
                             "variance of one sample is undefined (use eval mode for single "
                             "samples, or a larger batch)")
        mean = x.mean(dim=0)  # (C,)
        var = ((x - mean) ** 2).mean(dim=0)  # (C,) biased: divides by N, as in the paper
        with torch.no_grad():  # the running statistics are not trained: no graph
            running_mean.mul_(1.0 - momentum).add_(momentum * mean)
            running_var.mul_(1.0 - momentum).add_(momentum * var * (n / (n - 1)))
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean) / torch.sqrt(var + eps)  # (N, C) zero mean, unit variance per feature
    return gamma * x_hat + beta  # scale and shift restore what normalising took away


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy, computed from logits.

        J = 1/N sum_i [ logsumexp_k(Z_ik) - Z_i[y_i] ]  = -1/N sum_i log softmax(Z_i)[y_i]

    ``torch.logsumexp`` subtracts the row maximum first, so logits of +-1000 neither
    overflow nor give log(0). Autograd gives dJ/dZ = (softmax(Z) - onehot(y)) / N.

    Inputs:  logits Z (N, K) float; y (N,) int64 labels in 0..K-1
    Returns: scalar tensor
    """
    if y.dtype != torch.int64:  # a float y would index nothing sensible
        raise ValueError(f"cross_entropy: labels must be int64 class indices, got {y.dtype}")
    log_normaliser = torch.logsumexp(logits, dim=1)  # (N,)
    true_class_logit = logits.gather(1, y[:, None])[:, 0]  # (N,) Z_i[y_i]
    return (log_normaliser - true_class_logit).mean()


# --------------------------------------------------------------------------------------
# 2. Initialisation
# --------------------------------------------------------------------------------------
# Both draw the (out, in) matrix that nn.Linear would hold and return its transpose:
# drawing in that order makes the same seeded generator give exactly the numbers of
# torch.nn.init.xavier_uniform_ / kaiming_normal_ (the tests check it), so the three
# levels of this lesson can start from identical weights.


def xavier_uniform(fan_in: int, fan_out: int, *, generator: torch.Generator | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Glorot & Bengio (2010), eq. 16: W ~ U[-a, a], a = sqrt(6 / (fan_in + fan_out)).

    Var(W) = a^2 / 3 = 2 / (fan_in + fan_out): the compromise between keeping the
    activations' variance (needs 1/fan_in) and the gradients' (needs 1/fan_out) the
    same from layer to layer, for units that are near-linear at 0 (tanh, sigmoid).

    Returns: W (fan_in, fan_out) on the CPU (seeded draws do not depend on the device)
    """
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    weight = torch.empty(fan_out, fan_in, dtype=dtype).uniform_(-bound, bound,
                                                                generator=generator)
    return weight.T.contiguous()  # (out, in) -> (in, out)


def he_normal(fan_in: int, fan_out: int, *, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """He, Zhang, Ren & Sun (2015, "Delving deep into rectifiers"), eq. 10: W ~ N(0, 2/fan_in).

    A ReLU zeroes half of its inputs, halving the second moment that flows forward;
    the factor 2 restores it, so the activations keep their scale through any depth.

    Returns: W (fan_in, fan_out) on the CPU
    """
    std = math.sqrt(2.0 / fan_in)
    weight = torch.empty(fan_out, fan_in, dtype=dtype).normal_(0.0, std, generator=generator)
    return weight.T.contiguous()  # (out, in) -> (in, out)


def default_init(activation_name: str) -> str:
    """He for the rectifiers (relu, gelu, gelu_tanh), Glorot for sigmoid and tanh."""
    return "he" if activation_name in ("relu", "gelu", "gelu_tanh") else "xavier"


def init_mlp(sizes: Sequence[int], *, activation: str = "relu", init: str = "auto",
             batchnorm: bool = False, seed: int | None = 0,
             generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
             device="cpu") -> dict[str, torch.Tensor]:
    """The parameters of an MLP with layer widths ``sizes`` = (D, n_1, ..., K).

    Inputs:  sizes - at least (D, K); activation - picks the "auto" init;
             init - "auto" | "xavier" | "he" for every W; biases start at 0;
             batchnorm - add gamma_l = 1, beta_l = 0 for every hidden layer;
             seed / generator - the draws come from ``generator`` if given, else from a
             new generator seeded with ``seed`` (None: the global torch RNG)
    Returns: dict of leaf tensors with requires_grad=True, in layer order:
             "W1" (D, n_1), "b1" (n_1,), ["gamma1", "beta1" (n_1,)], ..., "WL" (n_{L-1}, K),
             "bL" (K,)
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must list at least an input and an output width, all >= 1, "
                         f"e.g. (784, 800, 10); got {tuple(sizes)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    rule = default_init(activation) if init == "auto" else init
    draw = xavier_uniform if rule == "xavier" else he_normal
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    params: dict[str, torch.Tensor] = {}
    L = len(sizes) - 1  # number of linear layers
    for l in range(1, L + 1):
        fan_in, fan_out = sizes[l - 1], sizes[l]
        params[f"W{l}"] = draw(fan_in, fan_out, generator=generator, dtype=dtype)
        params[f"b{l}"] = torch.zeros(fan_out, dtype=dtype)
        if batchnorm and l < L:
            params[f"gamma{l}"] = torch.ones(fan_out, dtype=dtype)
            params[f"beta{l}"] = torch.zeros(fan_out, dtype=dtype)
    return {k: v.to(device).requires_grad_(True) for k, v in params.items()}


def init_bn_state(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Running statistics for every batch-norm layer in ``params``: mean 0, variance 1.

    Returns: {"running_mean<l>": (n_l,), "running_var<l>": (n_l,)} for each "gamma<l>";
             plain tensors (no grad), on the parameters' device and dtype.
    """
    state = {}
    for name, gamma in params.items():
        if name.startswith("gamma"):
            l = name[len("gamma"):]
            state[f"running_mean{l}"] = torch.zeros_like(gamma, requires_grad=False)
            state[f"running_var{l}"] = torch.ones_like(gamma, requires_grad=False)
    return state


def n_layers(params: Mapping[str, torch.Tensor]) -> int:
    """L, the number of linear layers ("W1" .. "WL") in ``params``."""
    count = 0
    while f"W{count + 1}" in params:
        count += 1
    if count == 0 or any(f"b{l}" not in params for l in range(1, count + 1)):
        raise ValueError(f"params must hold W1, b1, ..., WL, bL (as init_mlp returns); got keys "
                         f"{sorted(params)}")
    return count


# --------------------------------------------------------------------------------------
# 3. The forward pass
# --------------------------------------------------------------------------------------


def mlp_forward(params: Mapping[str, torch.Tensor], x: torch.Tensor, *,
                activation: str = "relu", dropout_p: float = 0.0, training: bool = False,
                bn_state: Mapping[str, torch.Tensor] | None = None, bn_momentum: float = 0.1,
                bn_eps: float = 1e-5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logits of the MLP: hidden layers linear -> [batch norm] -> f -> [dropout], then linear.

    This is the order of Ioffe & Szegedy (normalise the pre-activation, Section 3.2) and
    of Srivastava et al. (drop the hidden units' outputs). A layer has batch norm when
    ``params`` holds its "gamma<l>"; ``bn_state`` must then hold its running statistics.

    Inputs:  params - from init_mlp; x (N, D); training - dropout active and batch norm
             on batch statistics (updating bn_state in place); generator - for the
             dropout masks
    Returns: logits (N, K)
    """
    L = n_layers(params)
    h = x
    for l in range(1, L):
        h = linear(h, params[f"W{l}"], params[f"b{l}"])  # (N, n_l)
        if f"gamma{l}" in params:
            if bn_state is None or f"running_mean{l}" not in bn_state:
                raise ValueError(f"layer {l} has batch norm (gamma{l}) but bn_state holds no "
                                 f"running_mean{l} / running_var{l}: pass init_bn_state(params)")
            h = batch_norm(h, params[f"gamma{l}"], params[f"beta{l}"],
                           bn_state[f"running_mean{l}"], bn_state[f"running_var{l}"],
                           training=training, momentum=bn_momentum, eps=bn_eps)
        h = apply_activation(h, activation)  # (N, n_l)
        h = dropout(h, dropout_p, training=training, generator=generator)
    return linear(h, params[f"W{L}"], params[f"b{L}"])  # (N, K) logits: no f on the output



# --------------------------------------------------------------------------------------
# 4. The optimisers, written by hand
# --------------------------------------------------------------------------------------


# Same as 01_Linear_Logistic/pytorch_lowlevel/linear_lowlevel.py:zero_grad
def zero_grad(params: Sequence[torch.Tensor]) -> None:
    """Forget the previous step's gradients (autograd ADDS into ``p.grad``)."""
    for p in params:
        p.grad = None


# Same as 01_Linear_Logistic/pytorch_lowlevel/linear_lowlevel.py:sgd_step
@torch.no_grad()  # the update itself must not be recorded in the autograd graph
def sgd_step(params: Sequence[torch.Tensor], lr: float, *, momentum: float = 0.0,
             weight_decay: float = 0.0, state: dict | None = None) -> dict:
    """One step of SGD with the update rule of ``torch.optim.SGD`` (dampening 0, no Nesterov).

        g <- p.grad + weight_decay * p                      (L2 penalty (wd/2)||p||^2)
        v <- g  (first step),   v <- momentum * v + g       (only if momentum > 0)
        p <- p - lr * v                                       (v = g when momentum = 0)

    Momentum (Polyak 1964; for deep nets Sutskever et al. 2013) averages the gradients
    of the last ~1/(1 - momentum) steps, damping the zig-zag across narrow valleys.

    Inputs:  params - tensors whose .grad backward filled (None grads are skipped);
             lr > 0; momentum in [0, 1); weight_decay >= 0;
             state - what the previous call returned (the velocities), or None
    Returns: the state for the next call; parameters are updated in place
    """
    if not lr > 0:
        raise ValueError(f"sgd_step: lr must be > 0, got {lr!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"sgd_step: momentum must be in [0, 1), got {momentum!r}")
    if weight_decay < 0:
        raise ValueError(f"sgd_step: weight_decay must be >= 0, got {weight_decay!r}")
    state = {} if state is None else state
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            velocity = state.get(i)
            if velocity is None:
                velocity = g.clone()  # first step: no history to decay
            else:
                velocity.mul_(momentum).add_(g)
            state[i] = velocity
            g = velocity
        p.sub_(lr * g)
    return state


@torch.no_grad()
def adam_step(params: Sequence[torch.Tensor], lr: float = 1e-3, *,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled: bool = False,
              state: dict | None = None) -> dict:
    """One step of Adam (Kingma & Ba 2015, Algorithm 1), as ``torch.optim.Adam`` / ``AdamW``.

    For each parameter p with gradient g, at its step t = 1, 2, ...::

        g <- g + weight_decay * p              (Adam: L2 penalty in the gradient)
        m <- beta1 m + (1 - beta1) g           first moment: a running mean of g
        v <- beta2 v + (1 - beta2) g^2         second moment: a running mean of g^2
        m_hat = m / (1 - beta1^t)              bias corrections: m, v start at 0
        v_hat = v / (1 - beta2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    Each coordinate's step is about lr in size whatever the scale of its gradient.
    ``decoupled=True`` is AdamW (Loshchilov & Hutter 2019): instead of adding wd * p
    to g (which Adam's division then rescales), shrink the weights directly first,
    p <- p (1 - lr weight_decay).

    Inputs:  params - tensors with .grad (None grads skipped, their t does not advance);
             lr > 0; betas in [0, 1); eps > 0; weight_decay >= 0;
             state - what the previous call returned, or None
    Returns: the state {index: {"step": t, "m": tensor, "v": tensor}}; params updated in place
    """
    beta1, beta2 = betas
    if not lr > 0:
        raise ValueError(f"adam_step: lr must be > 0, got {lr!r}")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"adam_step: betas must be in [0, 1), got {betas!r}")
    if not eps > 0 or weight_decay < 0:
        raise ValueError(f"adam_step: need eps > 0 and weight_decay >= 0, got {eps!r}, "
                         f"{weight_decay!r}")
    state = {} if state is None else state
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad
        if weight_decay != 0:
            if decoupled:
                p.mul_(1.0 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        s = state.setdefault(i, {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
        s["step"] += 1
        t = s["step"]
        s["m"].mul_(beta1).add_((1.0 - beta1) * g)
        s["v"].mul_(beta2).add_((1.0 - beta2) * g * g)
        m_hat = s["m"] / (1.0 - beta1**t)
        v_hat = s["v"] / (1.0 - beta2**t)
        p.sub_(lr * m_hat / (torch.sqrt(v_hat) + eps))
    return state


# --------------------------------------------------------------------------------------
# 5. A Module-free container
# --------------------------------------------------------------------------------------


class MLPLowLevel:
    """An MLP as data: a dict of parameters, a dict of running statistics, the settings.

    Inputs (constructor):
        sizes      - layer widths (D, n_1, ..., n_{L-1}, K), e.g. (784, 800, 10)
        activation - one of ACTIVATIONS, used by every hidden layer
        dropout    - drop probability after every hidden activation (training only)
        batchnorm  - batch norm between every hidden linear map and its activation
        init       - "auto" (He for relu/gelu, Glorot for sigmoid/tanh), "xavier", "he"
        seed       - seeds the initial weights; dtype, device - of every tensor

    Attributes: params (see init_mlp), bn_state (see init_bn_state), sizes, settings.
    Calling the object runs mlp_forward: ``model(x, training=True)`` -> logits (N, K).
    """

    def __init__(self, sizes: Sequence[int], *, activation: str = "relu", dropout: float = 0.0,
                 batchnorm: bool = False, init: str = "auto", seed: int | None = 0,
                 dtype: torch.dtype = torch.float32, device="cpu"):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.sizes = tuple(int(s) for s in sizes)
        self.activation, self.dropout, self.batchnorm = activation, float(dropout), batchnorm
        self.device = torch.device(device)
        self.params = init_mlp(self.sizes, activation=activation, init=init,
                               batchnorm=batchnorm, seed=seed, dtype=dtype, device=self.device)
        self.bn_state = init_bn_state(self.params)

    def parameters(self) -> list[torch.Tensor]:
        """The trainable tensors, in layer order (what the optimiser steps update)."""
        return list(self.params.values())

    def num_parameters(self) -> int:
        """Number of trainable numbers: sum over layers of n_in n_out + n_out (+ 2 n_out
        per batch-norm layer)."""
        return sum(p.numel() for p in self.params.values())

    def forward(self, x: torch.Tensor, *, training: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits (N, K) of x (N, D); see mlp_forward."""
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"expected inputs of shape (N, {self.sizes[0]}), got "
                             f"{tuple(x.shape)}")
        return mlp_forward(self.params, x, activation=self.activation, dropout_p=self.dropout,
                           training=training, bn_state=self.bn_state, generator=generator)

    __call__ = forward

    @torch.no_grad()
    def predict(self, X, batch_size: int = 4096) -> torch.Tensor:
        """Most probable class argmax_k logits_k, in evaluation mode: int64 (N,)."""
        W1 = self.params["W1"]
        X = check_features(X, n_features=self.sizes[0], dtype=W1.dtype, device=self.device)
        return torch.cat([self(X[i:i + batch_size]).argmax(dim=1)
                          for i in range(0, len(X), batch_size)])


# --------------------------------------------------------------------------------------
# 6. Checks at the door: user input into checked tensors (MLPLowLevel.predict, train.py)
# --------------------------------------------------------------------------------------


def check_features(X, *, n_features: int | None = None, dtype: torch.dtype | None = None,
                   device="cpu") -> torch.Tensor:
    """Check and convert a batch of inputs: lesson 01's check, plus the model's width.

    Inputs:  X - (N, D) array-like or tensor of finite real numbers, N >= 1;
             n_features - the D the model expects (None: any);
             dtype - the float dtype wanted (None: float32/float64 kept, ints -> float64)
    Returns: (N, D) float tensor on ``device``, detached from any graph
    Raises ValueError naming what was expected.
    """
    t = _lesson01.check_features(X, dtype=dtype, device=device)  # 2-D, N >= 1, finite
    if n_features is not None and t.shape[1] != n_features:
        raise ValueError(f"X has {t.shape[1]} features, but the model was built for "
                         f"{n_features} (its first layer W1 has {n_features} rows)")
    return t


def check_labels(y, n_rows: int, n_classes: int, *, device="cpu") -> torch.Tensor:
    """Class labels: (N,) whole numbers in 0..K-1 -> int64 tensor on ``device``."""
    t = labels_as_int64(y, n_rows)  # lesson 01's: one whole number per row of X
    if (t < 0).any() or (t >= n_classes).any():
        raise ValueError(f"y: class labels must be in 0..{n_classes - 1} (the model has "
                         f"{n_classes} outputs), got values from {int(t.min())} to {int(t.max())}")
    return t.to(device)
