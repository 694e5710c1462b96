"""Exercise 03 (reference solution): RMSProp and AdamW steps, exactly as torch.optim does them.

Both functions update every array of ``params`` IN PLACE from the matching array of
``grads``, and keep their running averages in ``state``, a dict the caller creates
empty and passes to every step (it is the optimiser's memory). Elementwise, for a
parameter p with gradient g at step t = 1, 2, ...:

RMSProp (Tieleman and Hinton 2012; torch.optim.RMSprop, no momentum, not centred):

    g <- g + weight_decay * p                    (L2 penalty, added to the gradient)
    v <- alpha v + (1 - alpha) g^2               (v_0 = 0, no bias correction)
    p <- p - lr * g / (sqrt(v) + eps)

AdamW (Loshchilov and Hutter 2019; torch.optim.AdamW):

    p <- p * (1 - lr * weight_decay)             (decoupled decay: not through g)
    m <- beta1 m + (1 - beta1) g                 v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t)                    v_hat = v / (1 - beta2^t)
    p <- p - lr * m_hat / (sqrt(v_hat) + eps)

The task text is in ``02_MLP/exercises/03_optimizers.md``. NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np


def _check_params_and_grads(params: Mapping, grads: Mapping) -> None:
    """Same keys, same shapes, ndarray parameters (updated in place), or ValueError."""
    if set(params) != set(grads):
        raise ValueError(f"params and grads must have the same keys; got {sorted(params)} and "
                         f"{sorted(grads)}")
    for name, p in params.items():
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise ValueError(f"parameter {name!r} must be a float ndarray (it is updated in "
                             f"place); got {type(p).__name__}")
        if np.shape(grads[name]) != p.shape:
            raise ValueError(f"gradient of {name!r} has shape {np.shape(grads[name])}, the "
                             f"parameter {p.shape}")


def rmsprop_step(params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
                 state: MutableMapping, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
    """One RMSProp step, torch.optim.RMSprop's rule (defaults included), in place.

    Inputs:  params, grads - dicts name -> ndarray of equal shapes; state - a dict, empty
             at the first step, passed again at every step; lr > 0; alpha in [0, 1);
             eps >= 0; weight_decay >= 0.
    Returns: None; every params[name] is updated in place, state holds the averages.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
    if not (eps >= 0 and weight_decay >= 0):
        raise ValueError(f"eps and weight_decay must be >= 0, got {eps!r} and {weight_decay!r}")
    _check_params_and_grads(params, grads)
    square_avg = state.setdefault("square_avg", {})
    for name, p in params.items():
        g = np.asarray(grads[name], dtype=p.dtype)
        if weight_decay:
            g = g + weight_decay * p  # a new array: never modify the caller's gradient
        v = square_avg.setdefault(name, np.zeros_like(p))
        v *= alpha
        v += (1 - alpha) * g * g  # running mean of g^2
        p -= lr * g / (np.sqrt(v) + eps)  # in place: the caller's array changes


def adamw_step(params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
               state: MutableMapping, lr: float = 1e-3,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 1e-2) -> None:
    """One AdamW step, torch.optim.AdamW's rule (defaults included), in place.

    Inputs:  params, grads - dicts name -> ndarray of equal shapes; state - a dict, empty
             at the first step, passed again at every step; lr > 0; betas in [0, 1);
             eps >= 0; weight_decay >= 0.
    Returns: None; every params[name] is updated in place, state holds t, m and v.
    """
    beta1, beta2 = betas
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"betas must both be in [0, 1), got {betas!r}")
    if not (eps >= 0 and weight_decay >= 0):
        raise ValueError(f"eps and weight_decay must be >= 0, got {eps!r} and {weight_decay!r}")
    _check_params_and_grads(params, grads)
    state["t"] = t = state.get("t", 0) + 1  # one step counter for all parameters
    first, second = state.setdefault("m", {}), state.setdefault("v", {})
    bias_correction1 = 1 - beta1**t  # E[m_t] = (1 - beta1^t) E[g]
    bias_correction2 = 1 - beta2**t
    for name, p in params.items():
        g = np.asarray(grads[name], dtype=p.dtype)
        p *= 1 - lr * weight_decay  # decoupled: the decay never passes through m and v
        m = first.setdefault(name, np.zeros_like(p))
        v = second.setdefault(name, np.zeros_like(p))
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        m_hat = m / bias_correction1
        v_hat = v / bias_correction2
        p -= lr * m_hat / (np.sqrt(v_hat) + eps)
