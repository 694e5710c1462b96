"""Exercise 03 (starter): RMSProp and AdamW steps, exactly as torch.optim does them.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 02_MLP/exercises --solutions my_solutions -k ex03

The task, the maths and hints are in ``02_MLP/exercises/03_optimizers.md``. Use NumPy
only. Both functions update every array of ``params`` IN PLACE from the matching array
of ``grads``, and keep their running averages in ``state``, a dict the caller creates
empty and passes to every step. Elementwise, at step t = 1, 2, ...:

RMSProp:   g <- g + weight_decay * p;   v <- alpha v + (1 - alpha) g^2;
           p <- p - lr * g / (sqrt(v) + eps)
AdamW:     p <- p * (1 - lr * weight_decay);
           m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2;
           p <- p - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - beta1^t), v_hat likewise
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np


def _check_params_and_grads(params: Mapping, grads: Mapping) -> None:
    """Same keys, same shapes, ndarray parameters (updated in place), or ValueError.

    Given to you: call it in both steps after checking the hyperparameters.
    """
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
    raise NotImplementedError("rmsprop_step: update params IN PLACE (p -= ...) "
                              "(see 03_optimizers.md)")


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
    raise NotImplementedError("adamw_step: decay the weights directly, then the Adam step "
                              "(see 03_optimizers.md)")
