"""Lesson 06's demos in the tour (`make demo`), and the target each must reach.

Every stop trains an LSTM on the adding problem (Hochreiter & Schmidhuber 1997, experiment
4; generated, offline): L1 the NumPy layer with hand-written BPTT (T = 30), L2 the cell
written from tensors with hand-written clipping and lesson 02's Adam step (T = 20, 300
steps), L3 the nn.LSTM-compatible module (T = 30, 400 steps). The metric is the test MSE;
always predicting 1 scores about 0.167. Targets are set well above what
the scripts measure with their defaults (see the lesson README), so a miss means something
broke, not bad luck.
"""

from utils.tour import TourStop

LESSON = "06_LSTM_GRU"

# Predicting the training mean (~1.0) for every sequence: the variance of a sum of two
# U(0, 1) draws, 1/6, whatever the length (utils/tests/test_tour.py recomputes it).
CONSTANT = {"baseline": 0.1667, "baseline_name": "constant (training mean)"}

STOPS = [
    TourStop("LSTM (adding problem)", "L1", f"{LESSON}.numpy.train", "adding",
             "test_mse", 0.02, higher_is_better=False, **CONSTANT),
    TourStop("LSTM (adding problem)", "L2", f"{LESSON}.pytorch_lowlevel.train", "adding",
             "test_mse", 0.06, higher_is_better=False, **CONSTANT),
    TourStop("LSTM (adding problem)", "L3", f"{LESSON}.paper.train", "adding",
             "test_mse", 0.03, higher_is_better=False, **CONSTANT),
]
