"""Lesson 08's demos in the tour (`make demo`), and the target each must reach.

L2: masked-LM pre-training (with next-sentence prediction) of a 2-layer BERT built from
tensors, on generated sentence pairs whose words depend on each other (agreement, each
animal's verb, the pronoun of A's subject at the start of B). The metric is the held-out
masked-token accuracy, on pairs never seen in training. The trivial baseline always
predicts the most frequent token of the training data ("."): 0.1777. Measured with the
defaults (seed 0, one thread): 0.4677; the grammar's own randomness caps it near 0.66.

L3: pre-training of the paper's BertForPreTraining on the same kind of generated text, then
fine-tuning on grammar acceptability: half of the held-out sentences have the verb's number
flipped ("the big dogs barks ."). The trivial baseline predicts the training majority class:
0.513. Measured with the defaults (seed 0, one thread): 1.000.
"""

from utils.tour import TourStop

LESSON = "08_BERT"

STOPS = [
    TourStop("BERT (low-level), masked LM", "L2", f"{LESSON}.pytorch_lowlevel.train",
             "generated", "masked_accuracy", 0.40, baseline=0.1777,
             baseline_name="most frequent token"),
    TourStop("BERT (paper), pre-train then fine-tune", "L3", f"{LESSON}.paper.train_classifier",
             "grammar-acceptability", "test_accuracy", 0.90, baseline=0.513,
             baseline_name="majority class"),
]
