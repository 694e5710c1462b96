"""LeNet-5 as the paper describes it, and its modern variant (Level 3 of lesson 03).

Y. LeCun, L. Bottou, Y. Bengio, P. Haffner (1998), "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 2278-2324: Section II-B describes LeNet-5
(the layers below, in its order: the squashing function, S2/S4, C3 with Table I, the RBF
output), Section II-C its loss (eq. 9), Appendix A the squashing function and the
initialisation. ``LeNet5`` is the paper's network (60,000 trainable parameters; where we
depart from the paper is in its docstring), ``LeNet5Modern`` the form most courses call
LeNet-5 today (ReLU, max pooling, softmax; the same network as L1's and L2's). Layer by
layer, with the shape and parameter tables: ``../theory.md`` sections 6 and 7; to train
them: ``python 03_CNN_LeNet/paper/train.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

VARIANTS = ("paper", "modern")

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
        assert len(glyph) == GLYPH_SHAPE[0] and all(len(r) == GLYPH_SHAPE[1] for r in glyph)
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

        layer  what                                   output        trainable parameters
        C1     conv 5x5, 6 maps                       6 @ 28x28     6 * (25 + 1)       =    156
        S2     2x2 sum * coefficient + bias           6 @ 14x14     6 * 2              =     12
        C3     conv 5x5, 16 maps, partial (Table I)   16 @ 10x10    60 * 25 + 16       =  1,516
        S4     2x2 sum * coefficient + bias           16 @ 5x5      16 * 2             =     32
        C5     conv 5x5, 120 maps                     120 @ 1x1     120 * (400 + 1)    = 48,120
        F6     fully connected                        84            84 * (120 + 1)     = 10,164
        output Euclidean RBF units, fixed codes       10            0 (fixed)
                                                                    total              = 60,000

    Where we depart from the paper (what we cannot copy exactly, and what we chose):

    - The output codes: the paper drew each class's code as a stylised 7x12 bitmap of the
      character (+1 ink, -1 background), hence 84 = 7 * 12 units in F6; the bitmaps are
      shown as a picture in the paper, not given as numbers. We drew our own 7x12 glyphs of the
      digits (``DIGIT_GLYPHS`` above). They are buffers, not parameters: never trained.
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


@torch.no_grad()
def predict(model: nn.Module, X, batch_size: int = 1000) -> np.ndarray:
    """Predicted classes (N,) int64 for images X (N, 1, H, W), in batches, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    X = torch.as_tensor(X)
    out = [model(X[i:i + batch_size].to(device)).argmax(1).cpu()
           for i in range(0, X.shape[0], batch_size)]
    return torch.cat(out).numpy()
