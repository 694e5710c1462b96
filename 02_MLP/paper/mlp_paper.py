"""The multilayer perceptron as a configurable ``nn.Module`` (L3 of lesson 02).

Rumelhart, Hinton & Williams (1986): every hidden layer is ``Linear -> [BatchNorm1d |
LayerNorm] -> activation -> [Dropout]`` (batch norm before the non-linearity, Ioffe &
Szegedy 2015, section 3.2; dropout after it, Srivastava et al. 2014), the last layer a
Linear giving K logits; Glorot (2010, eq. 16) or He (2015, eq. 10) initialisation. Simard,
Steinkraus & Platt (2003, table 1): a 784-800-10 MLP reaches 1.6 % test error on MNIST. The
derivations are in ``../theory.md`` (the notes that used to open this file, with the full
references, are in its appendix); ``train.py`` beside this file trains the model with
torch.optim and ``utils.training_utils.fit``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,  # exact: x Phi(x) with Phi from erf
    "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),  # BERT's / GPT-2's form
}
NORMS = ("none", "batch", "layer")
INITS = ("auto", "xavier", "he", "torch")


# --------------------------------------------------------------------------------------
# 1. The model
# --------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Multilayer perceptron (Rumelhart, Hinton & Williams 1986) with the modern options.

    Inputs (constructor):
        sizes      - layer widths (D, n_1, ..., n_{L-1}, K); (784, 800, 10) is Simard et
                     al.'s net. At least (D, K) (that is softmax regression).
        activation - "relu" | "sigmoid" | "tanh" | "gelu" | "gelu_tanh", every hidden layer
        dropout    - drop probability after every hidden activation (Srivastava et al.);
                     0 adds no Dropout module
        norm       - None / "none", "batch" (BatchNorm1d, Ioffe & Szegedy) or "layer"
                     (LayerNorm), between every hidden Linear and its activation
        init       - "auto" (He for relu/gelu, Glorot for sigmoid/tanh), "xavier", "he",
                     or "torch" (keep nn.Linear's own default, U(+-1/sqrt(n_in)))

    forward: x (N, D) -> logits (N, K); images (N, 28, 28) or (N, 1, 28, 28) are
    flattened to (N, 784) first.
    Attributes: layers (nn.Sequential); sizes, activation, dropout, norm, init.
    """

    def __init__(self, sizes: Sequence[int] = (784, 800, 10), activation: str = "relu",
                 dropout: float = 0.0, norm: str | None = None, init: str = "auto"):
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must list at least an input and an output width, all "
                             f">= 1, e.g. (784, 800, 10); got {sizes}")
        norm = "none" if norm is None else norm
        for name, value, allowed in (("activation", activation, tuple(ACTIVATIONS)),
                                     ("norm", norm, NORMS), ("init", init, INITS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.sizes, self.activation, self.dropout = sizes, activation, float(dropout)
        self.norm, self.init = norm, init

        layers: list[nn.Module] = []
        for l in range(1, len(sizes)):
            layers.append(nn.Linear(sizes[l - 1], sizes[l]))
            if l == len(sizes) - 1:
                break  # the output layer gives logits: no norm, activation or dropout
            if norm == "batch":
                layers.append(nn.BatchNorm1d(sizes[l]))
            elif norm == "layer":
                layers.append(nn.LayerNorm(sizes[l]))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    @property
    def linears(self) -> list[nn.Linear]:
        """The Linear layers, input side first."""
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every weight by the ``init`` rule, biases to 0, norms to identity.

        The weights are drawn one Linear after the other from ``generator`` (None: the
        global RNG, so ``torch.manual_seed`` repeats it). L2's ``init_mlp`` draws the
        same numbers in the same order, so the same seed gives the same network there.
        """
        rule = self.init
        if rule == "auto":
            rule = "he" if self.activation in ("relu", "gelu", "gelu_tanh") else "xavier"
        for module in self.layers:
            if isinstance(module, nn.Linear):
                if rule == "torch":
                    module.reset_parameters()
                    continue
                if rule == "xavier":  # Var = 2 / (n_in + n_out)
                    nn.init.xavier_uniform_(module.weight, generator=generator)
                else:  # "he": Var = 2 / n_in
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu",
                                            generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
                module.reset_parameters()  # gamma = 1, beta = 0 (and fresh running stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim > 2:
            x = x.flatten(1)  # (N, 1, 28, 28) -> (N, 784)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"MLP{self.sizes} expects inputs of shape (N, {self.sizes[0]}) "
                             f"(or images with {self.sizes[0]} pixels), got {tuple(x.shape)}")
        return self.layers(x)  # (N, K) logits


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def predict(model: nn.Module, X, *, batch_size: int = 4096) -> torch.Tensor:
    """argmax_k logits_k in evaluation mode (mode restored afterwards): int64 (N,) on the CPU."""
    parameter = next(model.parameters())
    X = X.detach().cpu() if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    X = X.to(parameter.dtype)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(X[i:i + batch_size].to(parameter.device)).argmax(1).cpu()
                          for i in range(0, len(X), batch_size)])
    finally:
        model.train(was_training)


