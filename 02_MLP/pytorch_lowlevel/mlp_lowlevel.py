"""The multilayer perceptron in low-level PyTorch (Level 2 of lesson 02).

What this file builds
---------------------
A stack of fully connected layers with a non-linearity between them, trained by
backpropagation (Rumelhart, Hinton & Williams 1986, "Learning representations by
back-propagating errors", Nature 323). For layers l = 1 .. L::

    a_l = h_{l-1} W_l + b_l              h_0 = x (N, D),  W_l (n_{l-1}, n_l),  b_l (n_l,)
    a_l <- BN(a_l)                       optional batch normalisation (hidden layers)
    h_l = f(a_l)                         f = relu | sigmoid | tanh | gelu[_tanh] (hidden)
    h_l <- dropout(h_l)                  optional, training only
    logits = a_L                         the last layer has no f: K class scores
    J = 1/N sum_i [ logsumexp(logits_i) - logits_i[y_i] ]      softmax cross-entropy

Weights are stored (in, out), so a layer is ``x @ W + b`` as in the maths and at
L1; ``nn.Linear`` stores the transpose, (out, in).

The pieces, each a function of tensors (and each checked against its torch.nn twin
in ``test_lowlevel.py``):

- ``linear``, ``apply_activation`` (relu, sigmoid, tanh, gelu), ``dropout``, ``batch_norm``;
- ``cross_entropy`` from logits, stable through ``torch.logsumexp``;
- ``xavier_uniform`` (Glorot & Bengio 2010) and ``he_normal`` (He et al. 2015);
- ``init_mlp`` -> a dict of parameters; ``mlp_forward(params, x, ...)``;
- ``sgd_step`` (momentum, weight decay) and ``adam_step`` (Kingma & Ba 2015; also the
  decoupled weight decay of AdamW), the same updates as ``torch.optim.SGD/Adam/AdamW``.

``MLPLowLevel`` is a tiny container (parameters, batch-norm running statistics, the
settings) so a training loop can say ``model(x)``; ``train`` is that loop, written out:
zero the gradients, forward, loss, backward, optimiser step.

Why this level
--------------
Autograd computes every gradient, so the backward passes that L1 derives by hand
are gone; what remains is everything else a framework hides: how the parameters
are initialised (and why the scale matters: see ``gradient_flow``), what dropout
and batch norm do differently in training and evaluation, and what the optimiser
keeps between steps (momentum buffers; Adam's two moment estimates and step count).

Run it from the repository root::

    python 02_MLP/pytorch_lowlevel/mlp_lowlevel.py                         # digits, offline
    python 02_MLP/pytorch_lowlevel/mlp_lowlevel.py --dataset moons         # decision boundary
    python -m 02_MLP.pytorch_lowlevel.mlp_lowlevel --dataset mnist --data-root DIR
    python 02_MLP/pytorch_lowlevel/mlp_lowlevel.py --hidden 256,256 --optimizer adam --batchnorm
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import Split, load_arrays, make_moons
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_decision_boundary,
    plot_gradient_flow,
)

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "gelu_tanh")
INITS = ("auto", "xavier", "he")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
DATASETS = ("digits", "moons", "mnist")


# --------------------------------------------------------------------------------------
# 1. Turning user input into checked tensors
# --------------------------------------------------------------------------------------


def check_features(X, *, n_features: int | None = None, dtype: torch.dtype | None = None,
                   device="cpu") -> torch.Tensor:
    """Check and convert a batch of inputs.

    Inputs:  X - (N, D) array-like or tensor of finite real numbers, N >= 1;
             n_features - the D the model expects (None: any);
             dtype - the float dtype wanted (None: float32/float64 kept, ints -> float64)
    Returns: (N, D) float tensor on ``device``, detached from any graph
    Raises ValueError naming what was expected.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"X: expected real numbers, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype not in (torch.float32, torch.float64):
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"X: expected float32 or float64, got {t.dtype}")
        t = t.to(torch.float64)
    if t.ndim != 2:
        hint = " (flatten images first: X.reshape(len(X), -1))" if t.ndim > 2 else ""
        raise ValueError(f"X: expected a 2-D array of shape (N, D), one row per example, "
                         f"got shape {tuple(t.shape)}{hint}")
    if t.shape[0] == 0:
        raise ValueError("X: got 0 rows; need at least one example")
    if n_features is not None and t.shape[1] != n_features:
        raise ValueError(f"X has {t.shape[1]} features, but the model was built for "
                         f"{n_features} (its first layer W1 has {n_features} rows)")
    if not torch.isfinite(t).all():
        bad = torch.nonzero(~torch.isfinite(t))[0].tolist()
        raise ValueError(f"X: contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    return t.to(device)


def check_labels(y, n_rows: int, n_classes: int, *, device="cpu") -> torch.Tensor:
    """Class labels: (N,) whole numbers in 0..K-1 -> int64 tensor on ``device``."""
    if isinstance(y, torch.Tensor):
        t = y.detach().cpu()
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"y: expected integer class labels, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.ndim != 1 or t.shape[0] != n_rows:
        raise ValueError(f"y: expected {n_rows} labels of shape ({n_rows},), one per row of X, "
                         f"got shape {tuple(t.shape)}")
    if t.is_floating_point() and not (torch.isfinite(t).all() and (t == t.round()).all()):
        raise ValueError("y: class labels must be whole numbers (0, 1, 2, ...)")
    t = t.to(torch.int64)
    if (t < 0).any() or (t >= n_classes).any():
        raise ValueError(f"y: class labels must be in 0..{n_classes - 1} (the model has "
                         f"{n_classes} outputs), got values from {int(t.min())} to {int(t.max())}")
    return t.to(device)


def parse_hidden(text: str) -> tuple[int, ...]:
    """"800" -> (800,), "256,256" -> (256, 256), "" or "none" -> () (softmax regression)."""
    text = text.strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated layer widths such as 800 or 256,256, "
                         f"got {text!r}") from None
    if any(w < 1 for w in widths):
        raise ValueError(f"every layer width must be an integer >= 1, got {text!r}")
    return widths


def hidden_widths(text: str) -> str:
    """argparse type for --hidden: checks the text with ``parse_hidden``, keeps it as is."""
    try:
        parse_hidden(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


# --------------------------------------------------------------------------------------
# 2. The layers, as functions of tensors
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
    if x.ndim != 2 or x.shape[1] != gamma.shape[0]:
        raise ValueError(f"batch_norm: expected x of shape (N, {gamma.shape[0]}), got "
                         f"{tuple(x.shape)}")
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
    if logits.ndim != 2 or y.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: expected logits (N, K) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(y.shape)}")
    if y.dtype != torch.int64:
        raise ValueError(f"cross_entropy: labels must be int64 class indices, got {y.dtype}")
    log_normaliser = torch.logsumexp(logits, dim=1)  # (N,)
    true_class_logit = logits.gather(1, y[:, None])[:, 0]  # (N,) Z_i[y_i]
    return (log_normaliser - true_class_logit).mean()


# --------------------------------------------------------------------------------------
# 3. Initialisation
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
# 4. The forward pass
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
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
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
# 5. The optimisers, written by hand
# --------------------------------------------------------------------------------------


def zero_grad(params: Sequence[torch.Tensor]) -> None:
    """Forget the previous step's gradients (autograd ADDS into ``p.grad``)."""
    for p in params:
        p.grad = None


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
# 6. A Module-free container, the training loop, evaluation
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


@torch.no_grad()
def evaluate(model: MLPLowLevel, X, y, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (X, y), in evaluation mode.

    Inputs:  X (N, D); y (N,) labels in 0..K-1
    Returns: (loss, accuracy) floats; sums over batches, divided by N
    """
    dtype = model.params["W1"].dtype
    X = check_features(X, n_features=model.sizes[0], dtype=dtype, device=model.device)
    y = check_labels(y, len(X), model.sizes[-1], device=model.device)
    loss_sum, correct = 0.0, 0
    for i in range(0, len(X), batch_size):
        logits = model(X[i:i + batch_size])
        loss_sum += float(cross_entropy(logits, y[i:i + batch_size])) * len(logits)
        correct += int((logits.argmax(dim=1) == y[i:i + batch_size]).sum())
    return loss_sum / len(X), correct / len(X)


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing over epochs (Loshchilov & Hutter 2017, no restarts):
    lr_e = lr (1 + cos(pi e / E)) / 2, e = 0 .. E-1 (torch's CosineAnnealingLR, T_max=E)."""
    return lr * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0


def train(model: MLPLowLevel, X, y, *, optimizer: str = "sgd", lr: float = 0.05,
          epochs: int = 10, batch_size: int = 64, momentum: float = 0.9,
          weight_decay: float = 0.0, schedule: str = "constant", seed: int = 0,
          val: tuple | None = None, progress: bool = False,
          log: Callable[[str], object] | None = None) -> dict[str, list[float]]:
    """Mini-batch training, written out: zero_grad -> forward -> loss -> backward -> step.

    Inputs:  model; X (N, D), y (N,) labels; optimizer "sgd" (with ``momentum``) or
             "adam"; lr, epochs, batch_size; weight_decay (L2 in the gradient);
             schedule "constant" or "cosine" (per epoch, see cosine_lr); seed - the batch
             order and the dropout masks; val - optional (X_val, y_val) evaluated after
             each epoch; progress - a tqdm bar over epochs; log - called with one
             summary line per epoch (e.g. print), or None
    Returns: history {"train_loss": mean loss of each epoch's batches (weighted by batch
             size, measured while the weights move, dropout on), "lr": [...],
             "val_loss", "val_accuracy": [...] when val is given}
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"epochs and batch_size must be positive integers, got {epochs!r}, "
                         f"{batch_size!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    dtype = model.params["W1"].dtype
    X = check_features(X, n_features=model.sizes[0], dtype=dtype, device=model.device)
    y = check_labels(y, len(X), model.sizes[-1], device=model.device)
    n = len(X)
    params = model.parameters()
    order_rng = torch.Generator().manual_seed(seed)  # batch order: reproducible, on the CPU
    mask_rng = torch.Generator(device=model.device).manual_seed(seed + 1)  # dropout masks
    state: dict | None = None  # the optimiser's memory between steps
    history: dict[str, list[float]] = {"train_loss": [], "lr": []}
    if val is not None:
        history["val_loss"], history["val_accuracy"] = [], []
    for epoch in tqdm(range(epochs), desc="MLP (L2)", disable=not progress, leave=False):
        lr_now = cosine_lr(lr, epoch, epochs) if schedule == "cosine" else lr
        order = torch.randperm(n, generator=order_rng).to(model.device)
        loss_sum, seen = 0.0, 0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            if model.batchnorm and len(rows) < 2:
                continue  # batch statistics of one sample are undefined: skip that remainder
            zero_grad(params)
            loss = cross_entropy(model(X[rows], training=True, generator=mask_rng), y[rows])
            loss.backward()  # fills p.grad for every tensor in params
            if optimizer == "sgd":
                state = sgd_step(params, lr_now, momentum=momentum, weight_decay=weight_decay,
                                 state=state)
            else:
                state = adam_step(params, lr_now, weight_decay=weight_decay, state=state)
            loss_sum += loss.item() * len(rows)
            seen += len(rows)
        epoch_loss = loss_sum / seen
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"the loss became {epoch_loss} in epoch {epoch + 1}: the learning rate "
                f"lr={lr} is probably too large; try lr/10")
        history["train_loss"].append(epoch_loss)
        history["lr"].append(lr_now)
        if val is not None:
            val_loss, val_accuracy = evaluate(model, *val)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_accuracy)
        if log is not None:
            line = f"epoch {epoch + 1}/{epochs}  train loss {epoch_loss:.4f}  lr {lr_now:.3g}"
            if val is not None:
                line += f"  | val loss {val_loss:.4f}  accuracy {val_accuracy:.4f}"
            log(line)
    return history


# --------------------------------------------------------------------------------------
# 7. Why initialisation and activation matter: gradient flow through a deep net
# --------------------------------------------------------------------------------------


def gradient_flow(X, y, *, activation: str, n_classes: int, depth: int = 10, width: int = 64,
                  init: str = "auto", seed: int = 0) -> dict[str, torch.Tensor]:
    """dJ/dW_l for every layer of a freshly initialised deep MLP, on one batch.

    Backpropagation multiplies the gradient by W_l^T and by f'(a_l) at every layer.
    A sigmoid has f' <= 1/4, so with Glorot weights (which keep ||W^T g|| ~ ||g||)
    the gradient shrinks about 4x per layer: after 10 layers the first one learns
    ~10^5 times slower than the last (the vanishing gradient; Hochreiter 1991,
    Glorot & Bengio 2010 Section 4). A ReLU with He init has f' = 1 on the half of
    the units it lets through, which the factor 2 in He's variance compensates: the
    gradient keeps its size at every depth.

    Inputs:  X (N, D), y (N,) a batch; activation; depth - number of hidden layers of
             ``width`` units; init - as in MLPLowLevel
    Returns: {"W1": dJ/dW1, ..., "W<depth+1>": ...} detached float32 tensors, input side first
    """
    X = check_features(X, dtype=torch.float32)
    y = check_labels(y, len(X), n_classes)
    model = MLPLowLevel([X.shape[1], *[width] * depth, n_classes], activation=activation,
                        init=init, seed=seed)
    cross_entropy(model(X), y).backward()
    L = len(model.sizes) - 1
    return {f"W{l}": model.params[f"W{l}"].grad.detach() for l in range(1, L + 1)}


def first_to_last_gradient_ratio(grads: Mapping[str, torch.Tensor]) -> float:
    """mean |dJ/dW_1| / mean |dJ/dW_L|: about 1 when gradients flow, << 1 when they vanish."""
    names = list(grads)
    return float(grads[names[0]].abs().mean() / grads[names[-1]].abs().mean())


# --------------------------------------------------------------------------------------
# 8. The script
# --------------------------------------------------------------------------------------

MOONS_NOISE = 0.2  # enough overlap that a straight line is clearly not enough
MOONS_SIZES = (800, 200)  # train, test

# Per-dataset defaults: layer widths, epochs, batch size, and the learning rate for SGD
# with momentum / for Adam; both decay with a cosine schedule.
DATASET_DEFAULTS = {
    "digits": {"hidden": "128", "epochs": 20, "batch_size": 32, "lr": {"sgd": 0.05, "adam": 1e-3}},
    "moons": {"hidden": "32,32", "epochs": 60, "batch_size": 32, "lr": {"sgd": 0.1, "adam": 1e-2}},
    # Simard, Steinkraus & Platt (2003): 784-800-10, cross-entropy, no distortions: 1.6 %
    "mnist": {"hidden": "800", "epochs": 20, "batch_size": 128, "lr": {"sgd": 0.05, "adam": 1e-3}},
}


def load_dataset(name: str, data_root=None, seed: int = 0) -> Split:
    """The train/test split of ``name`` (one of DATASETS), X as float32.

    digits: scikit-learn's 8x8 digits, standardised with the training statistics;
    moons: make_moons(1000, noise=0.2), the first 800 points to train, the last 200 to
    test; mnist: 60,000 / 10,000 images flattened to 784 pixels in [0, 1].
    """
    if name == "moons":
        X, y = make_moons(sum(MOONS_SIZES), noise=MOONS_NOISE, seed=seed)
        n_train = MOONS_SIZES[0]
        split = Split(X[:n_train], y[:n_train], X[n_train:], y[n_train:], name="moons",
                      task="multiclass", classes=["upper moon", "lower moon"])
    elif name == "digits":
        split = load_arrays("digits")
    elif name == "mnist":
        split = load_arrays("mnist", data_root=data_root, flatten=True)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    split.X_train = np.asarray(split.X_train, dtype=np.float32)
    split.X_test = np.asarray(split.X_test, dtype=np.float32)
    return split


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train an MLP in low-level PyTorch; plot its loss, its predictions and gradient flow.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean cross-entropy on the
             training set after the last epoch, evaluation mode), "grad_ratio_sigmoid",
             "grad_ratio_relu" (first_to_last_gradient_ratio of a 10-hidden-layer net)}
    """
    parser = argparse.ArgumentParser(
        description="A multilayer perceptron from tensors and autograd, with hand-written "
                    "layers and optimisers.")
    add_common_args(parser, datasets=DATASETS, epochs=None, batch_size=None, lr=None,
                    out="runs/02_MLP/l2_mlp")
    parser.add_argument("--hidden", type=hidden_widths, default=None,
                        help='hidden layer widths, e.g. "800" or "256,256" '
                             "(default: %(default)s)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu",
                        help="default: %(default)s")
    parser.add_argument("--init", choices=INITS, default="auto",
                        help="auto: He for relu/gelu, Glorot (Xavier) for sigmoid/tanh "
                             "(default: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                        help="default: %(default)s")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                        help="L2 penalty strength (default: %(default)s)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                        help="learning-rate schedule over the epochs (default: %(default)s)")
    parser.add_argument("--dropout", type=probability, default=0.0,
                        help="drop probability (default: %(default)s)")
    parser.add_argument("--batchnorm", action="store_true", help="batch norm in hidden layers")
    args = parse_args(parser, argv, DATASET_DEFAULTS)  # fills the dataset's defaults
    if isinstance(args.lr, dict):  # the default is per optimiser: {"sgd": ..., "adam": ...}
        args.lr = args.lr[args.optimizer]
    hidden = parse_hidden(args.hidden)

    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        split = load_dataset(args.dataset, args.data_root, seed=args.seed)
    print(split.summary())

    threads = torch.get_num_threads() if args.dataset == "mnist" else 1
    with torch_threads(threads):
        return _train_and_report(args, hidden, split, device, out)


def _train_and_report(args, hidden, split, device, out) -> dict[str, float]:
    """The rest of main: build, train, evaluate, plot."""
    sizes = (split.X_train.shape[1], *hidden, split.num_classes)
    model = MLPLowLevel(sizes, activation=args.activation, dropout=args.dropout,
                        batchnorm=args.batchnorm, init=args.init, seed=args.seed, device=device)
    print(f"MLP {'-'.join(map(str, sizes))} ({args.activation}), "
          f"{model.num_parameters():,} parameters, {args.optimizer} lr={args.lr}")
    history = train(model, split.X_train, split.y_train, optimizer=args.optimizer, lr=args.lr,
                    epochs=args.epochs, batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
                    val=(split.X_test, split.y_test), progress=args.progress,
                    log=print if args.progress else None)

    final_loss, train_accuracy = evaluate(model, split.X_train, split.y_train)
    _, test_accuracy = evaluate(model, split.X_test, split.y_test)
    print(f"MLP on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final training loss {final_loss:.4f}")

    title = f"L2 MLP {'-'.join(map(str, sizes))} on {args.dataset}"
    plot_curves({"train loss (during each epoch)": history["train_loss"],
                 "test loss": history["val_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    if args.dataset == "moons":
        plot_decision_boundary(lambda points: model.predict(points).cpu().numpy(),
                               split.X_test, split.y_test, path=out / "decision_boundary.png",
                               title=f"{title} (test points)")
    else:
        plot_confusion_matrix(split.y_test, model.predict(split.X_test).cpu().numpy(),
                              class_names=split.classes, path=out / "confusion.png",
                              title=f"{title} (test)")

    # Vanishing gradients: the same deep net with sigmoid (Glorot init) and ReLU (He init)
    batch = slice(0, 256)
    ratios = {}
    for name in ("sigmoid", "relu"):
        grads = gradient_flow(split.X_train[batch], split.y_train[batch], activation=name,
                              n_classes=split.num_classes, seed=args.seed)
        ratios[name] = first_to_last_gradient_ratio(grads)
        plot_gradient_flow(grads, path=out / f"gradient_flow_{name}.png",
                           title=f"10 hidden {name} layers at initialisation: "
                                 f"|dJ/dW1| / |dJ/dW11| = {ratios[name]:.1e}")
    print(f"gradient flow, mean |dJ/dW_first| / |dJ/dW_last| at init: sigmoid "
          f"{ratios['sigmoid']:.1e}, relu {ratios['relu']:.2f}")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "grad_ratio_sigmoid": ratios["sigmoid"],
            "grad_ratio_relu": ratios["relu"]}


if __name__ == "__main__":
    main()
