"""LeNet-5 as the paper describes it, and its modern variant (Level 3 of lesson 03).

The paper
---------
Y. LeCun, L. Bottou, Y. Bengio, P. Haffner (1998), "Gradient-based learning applied
to document recognition", Proceedings of the IEEE 86(11), 2278-2324. Section II-B
describes LeNet-5; Section II-C its loss; Appendix A the squashing function and the
initialisation. Layer by layer (shapes for one 32x32 input)::

    layer  what                                   output        trainable parameters
    C1     conv 5x5, 6 maps                       6 @ 28x28     6 * (25 + 1)       =    156
    S2     2x2 sum * coefficient + bias           6 @ 14x14     6 * 2              =     12
    C3     conv 5x5, 16 maps, partial (Table I)   16 @ 10x10    60 * 25 + 16       =  1,516
    S4     2x2 sum * coefficient + bias           16 @ 5x5      16 * 2             =     32
    C5     conv 5x5, 120 maps                     120 @ 1x1     120 * (400 + 1)    = 48,120
    F6     fully connected                        84            84 * (120 + 1)     = 10,164
    output Euclidean RBF units, fixed codes       10            0 (fixed)
                                                                total              = 60,000

- Every unit up to F6 squashes its weighted sum a with the scaled hyperbolic tangent
  f(a) = A tanh(S a), A = 1.7159, S = 2/3 (eq. 6). The constants make f(1) = 1 and
  f(-1) = -1 (Appendix A), so the +-1 targets of the output codes lie inside f's range
  and F6 never has to saturate to reach them.
- S2 and S4 ("subsampling"): the four inputs of a 2x2 window are added, multiplied by
  a trainable coefficient and shifted by a trainable bias, one pair per map; then f.
- C3 (Table I): each of the 16 maps sees only some of S2's 6 maps: maps 0-5 three
  neighbouring ones, maps 6-11 four neighbouring ones, maps 12-14 four non-neighbouring
  ones, map 15 all six. This kept the number of connections in bounds and, as the
  paper says, breaks the symmetry so that different maps learn different features.
- C5 is a convolution (on a 5x5 input it has a single position, i.e. it acts as a
  fully connected layer; a bigger input would give bigger C5 maps).
- The output layer has one Euclidean radial basis function unit per class (eq. 7):
  y_i = sum_j (x_j - w_ij)^2, the squared distance between F6's 84 outputs and a
  FIXED code w_i of +-1 entries. The smallest penalty y_i is the prediction.
- Loss (Section II-C, eq. 9), a MAP criterion over the P training examples:
      E = 1/P sum_p [ y_{D_p} + log( e^{-j} + sum_i e^{-y_i} ) ]
  The first term pulls F6's output towards the code of the true class D_p; the second
  pushes the other classes' penalties up (a discriminative, softmax-like term), with
  e^{-j} a constant "rubbish class" that stops pushing once all penalties exceed j.
- Initialisation (Appendix A): every weight uniform in [-2.4 / F_i, 2.4 / F_i], F_i the
  number of inputs ("fan-in") of its unit. We draw the biases the same way.

What we cannot copy exactly, and what we chose
----------------------------------------------
- The output codes: the paper drew each class's code as a stylised 7x12 bitmap of the
  character (+1 ink, -1 background), hence 84 = 7 * 12 units in F6; the bitmaps are
  shown as a picture in the paper, not given as numbers. We drew our own 7x12 glyphs of the
  digits (``DIGIT_GLYPHS`` below). They are buffers, not parameters: never trained.
  ``random_codes`` gives the alternative the paper mentions (random +-1 entries), for
  other numbers of classes.
- The constant j of eq. 9: we found no value for it that we could use, and take j = 5
  (``MAP_J``); on digits, j = 1, 5 and 20 gave the same test accuracy to within 0.5 %.
  Written with scores s_i = -y_i, eq. 9 is cross-entropy over the 10 scores plus one
  extra score -j that no example belongs to: ``MAPLoss``.
- The optimiser: the paper used a stochastic diagonal Levenberg-Marquardt method for
  20 passes (Appendix C); we use Adam with a cosine-decaying learning rate, which
  gets to a comparable place in fewer passes.
- Inputs: 28x28 MNIST digits sit in the middle of a 32x32 field, pixels mapped so that
  the background is -0.1 and the ink 1.175 (Section II-B), as in the paper. The 8x8
  scikit-learn digits (the offline default) are upsampled x3 (nearest neighbour, each
  pixel a 3x3 block: 24x24) and padded by 4 to the same 32x32 field.
- No data augmentation (the paper's 0.95 % test error is without distortions; 0.8 % with).

``LeNet5Modern`` is the network most courses call LeNet-5 today: ReLU, 2x2 max pooling
without parameters, C3 connected to all S2 maps, C5 as Flatten + Linear(400, 120), a
linear output of 10 logits and softmax cross-entropy; optional padding=2 in C1 for
28x28 inputs. It is the same network as L1's and L2's ``LeNet5``, and has
156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 parameters.

Run it from the repository root::

    python 03_CNN_LeNet/paper/lenet_paper.py                                 # paper, digits
    python 03_CNN_LeNet/paper/lenet_paper.py --variant modern
    python -m 03_CNN_LeNet.paper.lenet_paper --dataset mnist --data-root DIR --variant paper
    torchrun --nproc_per_node 2 03_CNN_LeNet/paper/lenet_paper.py --device cpu
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_int,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays, make_loader
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    evaluate,
    fit,
    is_main_process,
    make_lr_scheduler,
    seed_everything,
    setup_distributed,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_feature_maps,
    plot_image_grid,
    plot_weights,
)

VARIANTS = ("paper", "modern")
OPTIMIZERS = ("adam", "sgd")

# --------------------------------------------------------------------------------------
# 1. The squashing function (Section II-B, eq. 6; Appendix A)
# --------------------------------------------------------------------------------------

SQUASH_AMPLITUDE = 1.7159  # A: the function's asymptotes are +-A
SQUASH_SLOPE = 2.0 / 3.0  # S: with this A, f(1) = 1 and f(-1) = -1


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (eq. 6).

    Odd, asymptotes +-A, gain A*S ~ 1.14 at the origin, f(+-1) = +-1 (to 3e-6).
    Shape-preserving: any (...) tensor in, the same shape out.
    """

    def __init__(self, amplitude: float = SQUASH_AMPLITUDE, slope: float = SQUASH_SLOPE):
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * a)

    def extra_repr(self) -> str:
        return f"A={self.amplitude}, S={self.slope:.6g}"


def _uniform_fan_in_(tensor: torch.Tensor, fan_in: int) -> None:
    """In place: U(-2.4 / F, 2.4 / F) with F the fan-in of the unit (Appendix A)."""
    bound = 2.4 / fan_in
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


# --------------------------------------------------------------------------------------
# 2. S2 / S4: trainable subsampling
# --------------------------------------------------------------------------------------


class Subsampling(nn.Module):
    """S2 and S4: for each map c, y = coefficient[c] * (sum of a 2x2 window) + bias[c].

        y[n, c, i, j] = w[c] * sum_{p, q in {0, 1}} x[n, c, 2i + p, 2j + q] + b[c]

    The windows do not overlap (stride 2), so each map's side is halved. The squashing
    function is applied by the network afterwards. Parameters: weight (C,), bias (C,):
    2 per map (12 for S2, 32 for S4).

    Inputs: x (N, C, H, W);  Returns: (N, C, H // 2, W // 2)
    """

    def __init__(self, channels: int, kernel_size: int = 2):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))  # the trainable coefficient
        self.bias = nn.Parameter(torch.empty(channels))
        # AvgPool2d divides each window's sum by the number of entries; divisor 1 keeps the sum
        self.window_sum = nn.AvgPool2d(kernel_size, divisor_override=1)
        self.kernel_size = kernel_size
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.kernel_size ** 2  # a unit adds 4 inputs before its one coefficient
        _uniform_fan_in_(self.weight, fan_in)
        _uniform_fan_in_(self.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sums = self.window_sum(x)  # (N, C, H/2, W/2)
        return sums * self.weight[:, None, None] + self.bias[:, None, None]


# --------------------------------------------------------------------------------------
# 3. C3: a convolution with a connection table (Table I)
# --------------------------------------------------------------------------------------

# Which S2 maps feed each C3 map (Table I). Maps 0-5: three neighbouring S2 maps
# (cyclically); 6-11: four neighbouring ones; 12-14: four, not all neighbours; 15: all six.
C3_CONNECTIONS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class PartialConv2d(nn.Module):
    """A convolution in which output map o sees only the input maps listed in connections[o].

        y[n, o] = b[o] + sum_{c in connections[o]} K[o, c] * x[n, c]     (* = 2-D cross-correlation)

    Only the kernels that exist are parameters: ``weight`` holds one kH x kW kernel per
    (output, input) pair of the table, pairs in row-major order (output map, then input
    map: the order of ``dense[mask]``), so ``numel`` counts exactly the
    trainable numbers (C3: 60 * 25 + 16 = 1,516). For the computation they are scattered
    into a dense (C_out, C_in, kH, kW) kernel whose missing pairs are zero; those zeros
    are constants, not parameters: nothing can train them, and the input maps they
    stand for have no effect on the output map.

    Inputs (constructor): in_channels, kernel_size, connections - a tuple per output map of
    the input maps it reads (the number of output maps is len(connections))
    forward: x (N, C_in, H, W) -> (N, C_out, H - k + 1, W - k + 1)
    """

    def __init__(self, in_channels: int, kernel_size: int,
                 connections: Sequence[Sequence[int]]):
        super().__init__()
        # one kernel per (output map, input map) pair, stored in row-major order of the pairs
        pairs = sorted((o, c) for o, inputs in enumerate(connections) for c in inputs)
        if not pairs or any(not 0 <= c < in_channels for _, c in pairs):
            raise ValueError(f"connections must list input maps in 0..{in_channels - 1} for "
                             f"each output map, got {connections!r}")
        if any(len(set(inputs)) != len(inputs) for inputs in connections):
            raise ValueError("connections: an output map lists the same input map twice")
        self.in_channels, self.out_channels = in_channels, len(connections)
        self.kernel_size = kernel_size
        self.connections = tuple(tuple(int(c) for c in inputs) for inputs in connections)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        # index of each kernel in the dense weight; fixed by the table, not saved with the state
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([c for _, c in pairs]), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-2.4/F, 2.4/F) per output map, F = (its number of input maps) * k * k."""
        with torch.no_grad():
            for o, inputs in enumerate(self.connections):
                bound = 2.4 / (len(inputs) * self.kernel_size ** 2)
                rows = self.out_index == o  # this output map's kernels
                self.weight[rows] = torch.empty_like(self.weight[rows]).uniform_(-bound, bound)
                self.bias[o].uniform_(-bound, bound)

    def connection_mask(self) -> torch.Tensor:
        """(C_out, C_in) bool: True where output map o reads input map c."""
        mask = torch.zeros(self.out_channels, self.in_channels, dtype=torch.bool,
                           device=self.weight.device)
        mask[self.out_index, self.in_index] = True
        return mask

    def dense_weight(self) -> torch.Tensor:
        """(C_out, C_in, k, k): the table's kernels in place, zeros elsewhere (differentiable)."""
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, self.kernel_size,
                                      self.kernel_size)
        return dense.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"connections={len(self.out_index)}")


# --------------------------------------------------------------------------------------
# 4. The output layer: Euclidean RBF units with fixed codes (eq. 7), and the loss (eq. 9)
# --------------------------------------------------------------------------------------

# Our 7-wide, 12-tall drawings of the digits ("#" = +1, "." = -1), in the spirit of the
# paper's stylised bitmaps; row by row, top to bottom.
DIGIT_GLYPHS: dict[int, tuple[str, ...]] = {
    0: (".......", "..###..", ".#...#.", "#.....#", "#.....#", "#.....#",
        "#.....#", "#.....#", "#.....#", ".#...#.", "..###..", "......."),
    1: (".......", "...#...", "..##...", ".#.#...", "...#...", "...#...",
        "...#...", "...#...", "...#...", "...#...", ".#####.", "......."),
    2: (".......", "..###..", ".#...#.", "#.....#", "......#", ".....#.",
        "....#..", "...#...", "..#....", ".#.....", "#######", "......."),
    3: (".......", ".#####.", "#.....#", "......#", "......#", "..####.",
        "......#", "......#", "......#", "#.....#", ".#####.", "......."),
    4: (".......", ".....#.", "....##.", "...#.#.", "..#..#.", ".#...#.",
        "#....#.", "#######", ".....#.", ".....#.", ".....#.", "......."),
    5: (".......", "#######", "#......", "#......", "#####..", ".....#.",
        "......#", "......#", "......#", "#....#.", ".####..", "......."),
    6: (".......", "..####.", ".#.....", "#......", "#......", "#.###..",
        "##...#.", "#.....#", "#.....#", ".#...#.", "..###..", "......."),
    7: (".......", "#######", "......#", ".....#.", "....#..", "....#..",
        "...#...", "...#...", "..#....", "..#....", "..#....", "......."),
    8: (".......", "..###..", ".#...#.", "#.....#", ".#...#.", "..###..",
        ".#...#.", "#.....#", "#.....#", ".#...#.", "..###..", "......."),
    9: (".......", "..###..", ".#...#.", "#.....#", "#.....#", ".#...##",
        "..###.#", "......#", "......#", ".....#.", ".####..", "......."),
}
GLYPH_SHAPE = (12, 7)  # rows, columns: 84 = 12 * 7 F6 units


def digit_codes() -> torch.Tensor:
    """The 10 output codes from DIGIT_GLYPHS: (10, 84) float32 of +-1, row k = digit k."""
    rows = []
    for digit in range(10):
        glyph = DIGIT_GLYPHS[digit]
        if len(glyph) != GLYPH_SHAPE[0] or any(len(r) != GLYPH_SHAPE[1] for r in glyph):
            raise ValueError(f"glyph {digit} must be {GLYPH_SHAPE[0]} rows of "
                             f"{GLYPH_SHAPE[1]} characters")
        rows.append([1.0 if ch == "#" else -1.0 for ch in "".join(glyph)])
    return torch.tensor(rows, dtype=torch.float32)  # (10, 84)


def random_codes(num_classes: int, length: int = 84, seed: int = 0) -> torch.Tensor:
    """num_classes codes of +-1 entries drawn with equal probability (a seeded generator).

    Returns: (num_classes, length) float32. Distinct rows are guaranteed (redrawn if not).
    """
    if not (isinstance(num_classes, int) and 1 <= num_classes <= 2 ** min(length, 30)):
        raise ValueError(f"num_classes must be an integer in 1..2**length, got {num_classes!r}")
    generator = torch.Generator().manual_seed(seed)
    while True:
        codes = torch.randint(0, 2, (num_classes, length), generator=generator) * 2.0 - 1.0
        if torch.unique(codes, dim=0).shape[0] == num_classes:
            return codes.float()


class RBFOutput(nn.Module):
    """Euclidean radial basis function units (eq. 7): y_i = sum_j (x_j - w_ij)^2.

    The codes w (K, D) are a buffer: saved with the model, moved with .to(), never trained.

    Inputs: x (N, D);  Returns: penalties y (N, K) >= 0 (the smallest is the prediction)
    """

    def __init__(self, codes: torch.Tensor):
        super().__init__()
        codes = torch.as_tensor(codes, dtype=torch.float32)
        if codes.ndim != 2:
            raise ValueError(f"codes: expected a (num_classes, features) matrix, got shape "
                             f"{tuple(codes.shape)}")
        self.register_buffer("codes", codes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        difference = x[:, None, :] - self.codes[None, :, :]  # (N, K, D)
        return (difference * difference).sum(dim=-1)  # (N, K)


MAP_J = 5.0  # the constant j of eq. 9 (our choice; see the module docstring)


class MAPLoss(nn.Module):
    """The paper's MAP criterion (eq. 9) on scores s = -y (the negative RBF penalties).

        E = 1/N sum_n [ y_{D_n} + log( e^{-j} + sum_i e^{-y_i} ) ]
          = 1/N sum_n [ -s_{D_n} + logsumexp(s_0, ..., s_{K-1}, -j) ]

    i.e. softmax cross-entropy over the K scores and one extra "rubbish" score -j.
    As j -> infinity it becomes plain cross-entropy on the scores.

    Inputs:  scores (N, K) float (what LeNet5 returns); targets (N,) int64 in 0..K-1
    Returns: scalar tensor, the mean over the batch
    """

    def __init__(self, j: float = MAP_J):
        super().__init__()
        self.j = float(j)

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if scores.ndim != 2 or targets.shape != scores.shape[:1]:
            raise ValueError(f"MAPLoss: expected scores (N, K) and targets (N,), got "
                             f"{tuple(scores.shape)} and {tuple(targets.shape)}")
        rubbish = scores.new_full((scores.shape[0], 1), -self.j)  # (N, 1) the constant -j
        normaliser = torch.logsumexp(torch.cat([scores, rubbish], dim=1), dim=1)  # (N,)
        true_score = scores.gather(1, targets[:, None])[:, 0]  # (N,) = -y_{D_n}
        return (normaliser - true_score).mean()

    def extra_repr(self) -> str:
        return f"j={self.j}"


# --------------------------------------------------------------------------------------
# 5. The two networks
# --------------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 as in LeCun et al. 1998, Section II-B, Fig. 2; 60,000 trainable parameters.

        x (N, 1, 32, 32) -> C1 -> f -> S2 -> f -> C3 -> f -> S4 -> f -> C5 -> f -> F6 -> f
          -> RBF output -> scores = -penalties (N, K)

    Inputs (constructor): codes - (K, 84) fixed +-1 output codes (default: ``digit_codes()``)
    forward: x (N, 1, 32, 32) float -> scores (N, K) = minus the RBF penalties, so that
    ``scores.argmax(1)`` is the class with the smallest penalty and ``MAPLoss`` (or
    cross-entropy) reads them like logits.
    """

    def __init__(self, codes: torch.Tensor | None = None):
        super().__init__()
        codes = digit_codes() if codes is None else torch.as_tensor(codes)
        if codes.ndim != 2 or codes.shape[1] != 84:
            raise ValueError(f"codes: expected (num_classes, 84) for F6's 84 units, got "
                             f"{tuple(codes.shape)}")
        self.squash = ScaledTanh()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # 6 @ 28x28
        self.s2 = Subsampling(6)  # 6 @ 14x14
        self.c3 = PartialConv2d(6, 5, C3_CONNECTIONS)  # 16 @ 10x10
        self.s4 = Subsampling(16)  # 16 @ 5x5
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)  # 120 @ 1x1
        self.f6 = nn.Linear(120, 84)
        self.output = RBFOutput(codes)
        self.num_classes = codes.shape[0]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Appendix A: every weight and bias U(-2.4/F, 2.4/F), F = its unit's fan-in."""
        for layer, fan_in in ((self.c1, 25), (self.c5, 16 * 25), (self.f6, 120)):
            _uniform_fan_in_(layer.weight, fan_in)
            _uniform_fan_in_(layer.bias, fan_in)
        self.s2.reset_parameters()
        self.c3.reset_parameters()
        self.s4.reset_parameters()

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output (after the squashing) for x (N, 1, 32, 32).

        Returns: {"c1" (N, 6, 28, 28), "s2" (N, 6, 14, 14), "c3" (N, 16, 10, 10),
                  "s4" (N, 16, 5, 5), "c5" (N, 120), "f6" (N, 84), "penalties" (N, K)}
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 32, 32):
            raise ValueError(f"LeNet5 (paper): expected images of shape (N, 1, 32, 32), got "
                             f"{tuple(x.shape)}; pad 28x28 MNIST digits by 2 pixels of "
                             "background (the paper's 32x32 field)")
        f = self.squash
        out = {}
        out["c1"] = f(self.c1(x))
        out["s2"] = f(self.s2(out["c1"]))
        out["c3"] = f(self.c3(out["s2"]))
        out["s4"] = f(self.s4(out["c3"]))
        out["c5"] = f(self.c5(out["s4"])).flatten(1)  # (N, 120, 1, 1) -> (N, 120)
        out["f6"] = f(self.f6(out["c5"]))
        out["penalties"] = self.output(out["f6"])  # (N, K), eq. 7
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.features(x)["penalties"]


class LeNet5Modern(nn.Module):
    """The common modern LeNet-5: ReLU, max pooling, full C3, linear output (61,706 parameters).

        x (N, C, 32, 32) -> conv 5x5 (6) -> ReLU -> max 2 -> conv 5x5 (16) -> ReLU -> max 2
          -> flatten (400) -> Linear 120 -> ReLU -> Linear 84 -> ReLU -> Linear K (logits)

    Inputs (constructor): num_classes (K), in_channels (C), padding - zeros around the
    input in C1: 0 for 32x32 inputs, 2 for 28x28 (the same shapes from C1 on).
    forward: x (N, C, H, W) -> logits (N, K), for softmax cross-entropy.
    PyTorch's default initialisation (uniform, scaled by 1/sqrt(fan-in)).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, padding: int = 0):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding)
        self.s2 = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.s4 = nn.MaxPool2d(2)
        self.c5 = nn.Linear(16 * 5 * 5, 120)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)
        self.input_size = 32 - 2 * padding

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output: "c1" (N, 6, 28, 28) after ReLU, "s2", "c3", "s4", "c5",
        "f6" and "logits" (N, K)."""
        expected = (self.c1.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"LeNet5Modern: expected images of shape (N, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}) for padding="
                             f"{self.c1.padding[0]}, got {tuple(x.shape)}")
        out = {}
        out["c1"] = torch.relu(self.c1(x))
        out["s2"] = self.s2(out["c1"])
        out["c3"] = torch.relu(self.c3(out["s2"]))
        out["s4"] = self.s4(out["c3"])
        out["c5"] = torch.relu(self.c5(out["s4"].flatten(1)))  # (N, 400) channel-major
        out["f6"] = torch.relu(self.f6(out["c5"]))
        out["logits"] = self.output(out["f6"])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["logits"]


def build_model(variant: str) -> tuple[nn.Module, nn.Module]:
    """(model, loss module) for "paper" (LeNet5, MAPLoss) or "modern" (CrossEntropyLoss)."""
    if variant == "paper":
        return LeNet5(), MAPLoss()
    if variant == "modern":
        return LeNet5Modern(), nn.CrossEntropyLoss()
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


# --------------------------------------------------------------------------------------
# 6. Training
# --------------------------------------------------------------------------------------


def train(model: nn.Module, X, y, *, loss_fn: nn.Module, lr: float, epochs: int,
          batch_size: int, optimizer: str = "adam", momentum: float = 0.9,
          schedule: str = "cosine", seed: int = 0, device="cpu", val: tuple | None = None,
          progress: bool = False, log=None) -> History:
    """The L3 recipe: DataLoader, torch.optim, a learning-rate schedule, ``fit``.

    Inputs:  X (N, 1, 32, 32) float32 array or tensor; y (N,) int64 labels;
             optimizer "adam" or "sgd" (with ``momentum``); schedule - a name of
             ``utils.training_utils.make_lr_scheduler`` ("cosine": lr decays to 0 over
             the epochs, stepped once per epoch); val - optional (X_val, y_val)
    Returns: History (train / val loss and accuracy per epoch, lr, epoch times)
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed)
    val_loader = None
    if val is not None:
        val_loader = make_loader(val[0], val[1], batch_size=1000, shuffle=False)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    scheduler = make_lr_scheduler(opt, schedule, epochs=epochs)
    return fit(model, loader, loss_fn=loss_fn, optimizer=opt, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, scheduler=scheduler, device=device,
               progress=progress, log=log)


@torch.no_grad()
def predict(model: nn.Module, X, batch_size: int = 1000) -> np.ndarray:
    """Predicted classes (N,) int64 for images X (N, 1, H, W), in batches, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    X = torch.as_tensor(X)
    out = [model(X[i:i + batch_size].to(device)).argmax(1).cpu()
           for i in range(0, X.shape[0], batch_size)]
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------------------
# 7. Data: LeNet's 32x32 input field
# --------------------------------------------------------------------------------------


def lecun_normalize(pixels: np.ndarray) -> np.ndarray:
    """Ink p in [0, 1] -> -0.1 + 1.275 p: background -0.1, ink 1.175 (Section II-B)."""
    return (np.float32(-0.1) + np.float32(1.275) * pixels).astype(np.float32)


def digits_to_32x32(X: np.ndarray) -> np.ndarray:
    """scikit-learn digits (N, 64), ink 0..16 -> (N, 1, 32, 32) ink in [0, 1]:
    nearest-neighbour upsampling x3 (24x24), then 4 pixels of background on every side."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"digits: expected (N, 64) pixel rows, got shape {X.shape}")
    images = (X / np.float32(16.0)).reshape(-1, 1, 8, 8)
    images = images.repeat(3, axis=2).repeat(3, axis=3)  # (N, 1, 24, 24)
    return np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))  # (N, 1, 32, 32)


def mnist_to_32x32(X: np.ndarray) -> np.ndarray:
    """MNIST (N, 28, 28) ink in [0, 1] -> (N, 1, 32, 32): 2 pixels of background around."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[1:] != (28, 28):
        raise ValueError(f"mnist: expected (N, 28, 28) images, got shape {X.shape}")
    return np.pad(X[:, None], ((0, 0), (0, 0), (2, 2), (2, 2)))


def load_images(dataset: str, data_root=None):
    """(X_train, y_train, X_test, y_test, class_names), X float32 (N, 1, 32, 32) mapped
    to the paper's range (background -0.1, ink 1.175). Raises DatasetNotFoundError."""
    if dataset == "digits":
        split = load_arrays("digits", standardize=False)  # raw ink 0..16
        to_field = digits_to_32x32
    elif dataset == "mnist":
        split = load_arrays("mnist", data_root=data_root, flatten=False)
        to_field = mnist_to_32x32
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'digits' or 'mnist'")
    X_train = lecun_normalize(to_field(split.X_train))
    X_test = lecun_normalize(to_field(split.X_test))
    classes = split.classes or [str(k) for k in range(10)]
    return X_train, split.y_train, X_test, split.y_test, classes


# --------------------------------------------------------------------------------------
# 8. The script
# --------------------------------------------------------------------------------------


DATASET_DEFAULTS = {
    "digits": {"epochs": 8, "batch_size": 32, "lr": 5e-3},
    "mnist": {"epochs": 6, "batch_size": 128, "lr": 2e-3},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train LeNet-5 (the paper's, or the modern variant) on digits (default) or MNIST.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (the training loss after
             training, in eval mode, over the whole training set), "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="LeNet-5 as in LeCun et al. 1998 (--variant paper: scaled tanh, trainable "
                    "subsampling, C3 table, RBF outputs, MAP loss) or its modern form "
                    "(--variant modern: ReLU, max pooling, softmax). torch.optim + the shared "
                    f"loop; torchrun works. Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/03_CNN_LeNet/l3_lenet")
    parser.add_argument("--variant", choices=VARIANTS, default="paper")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--schedule", default="cosine",
                        choices=("none", "step", "cosine"), help="learning-rate schedule")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads, 0 = torch's default (default: %(default)s; "
                             "see torch_threads)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    # Under `torchrun --nproc_per_node N` this joins the process group and `fit` trains
    # with DistributedDataParallel; on its own it returns (0, 1, device).
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        X_train, y_train, X_test, y_test, classes = load_images(args.dataset, args.data_root)
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")

    model, loss_fn = build_model(args.variant)
    name = f"{type(model).__name__} ({args.variant})"
    print(f"{name}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
          "trainable parameters")
    started = time.perf_counter()
    history = train(model, X_train, y_train, loss_fn=loss_fn, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, optimizer=args.optimizer,
                    momentum=args.momentum, schedule=args.schedule, seed=args.seed,
                    device=device, val=(X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started

    train_eval = make_loader(X_train, y_train, batch_size=1000, shuffle=False)
    final_loss, train_accuracy = evaluate(model, train_eval, loss_fn=loss_fn, device=device)
    predictions = predict(model, X_test)
    test_accuracy = float(np.mean(predictions == y_test))
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss, "train_seconds": seconds}
    if not is_main_process():  # every process holds the same weights; one reports
        cleanup_distributed()
        return metrics
    print(f"{name} on {args.dataset}: train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s of training "
          f"on {device}" + (f" x {world_size} processes" if world_size > 1 else ""))
    _plots(model, history, args, X_test, y_test, predictions, classes, out, name)
    cleanup_distributed()
    return metrics


def _plots(model, history: History, args, X_test, y_test, predictions, classes, out,
           name: str) -> None:
    """Loss curves, confusion matrix, C1 filters, feature maps, misclassified digits."""
    title = f"L3 {name} on {args.dataset}"
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="MAP criterion (eq. 9)" if args.variant == "paper" else "cross-entropy",
                title=title)
    plot_confusion_matrix(y_test, predictions, class_names=classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    filters = model.c1.weight.detach().cpu().reshape(6, -1)  # (6, 25), one filter per row
    plot_weights(filters, image_shape=(5, 5), ncols=6, path=out / "c1_filters.png",
                 title=f"{title}: the 6 learned 5x5 filters of C1")
    device = next(model.parameters()).device
    with torch.no_grad():
        model.eval()
        maps = model.features(torch.as_tensor(X_test[:1]).to(device))
    plot_feature_maps(maps["c1"][0].cpu(), ncols=6, path=out / "feature_maps_c1.png",
                      title=f"{title}: C1 maps of one test digit ({y_test[0]})")
    plot_feature_maps(maps["c3"][0].cpu(), ncols=8, path=out / "feature_maps_c3.png",
                      title=f"{title}: C3 maps of the same digit")
    if isinstance(model, LeNet5):
        plot_weights(model.output.codes.cpu(), image_shape=GLYPH_SHAPE, ncols=10,
                     path=out / "rbf_codes.png", title="the fixed 7x12 output codes (+1 red)")
    wrong = np.flatnonzero(predictions != y_test)[:16]
    if wrong.size:
        plot_image_grid(X_test[wrong], labels=y_test[wrong], predictions=predictions[wrong],
                        class_names=classes, path=out / "misclassified.png",
                        title=f"{title}: misclassified test images (true, pred)")
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
