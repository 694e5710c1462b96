"""Lesson 06: recurrent networks, LSTM (Hochreiter & Schmidhuber 1997) and GRU (Cho et al. 2014).

A recurrent network reads a sequence one step at a time and carries a hidden state from
step to step. The vanilla RNN forgets over long gaps because its gradients vanish; the
LSTM's additive memory cell and gates, and the GRU's update gate, fix that. Levels:

- ``numpy/``            L1: the three cells with hand-written back-propagation through time;
- ``pytorch_lowlevel/`` L2: the same from tensors and autograd, with hand-written clipping
                        and lesson 02's Adam step;
- ``paper/``            L3: nn.LSTM / nn.GRU-compatible modules (multi-layer, bidirectional,
                        packed sequences), the adding problem, IMDB sentiment and a
                        character-level language model.

In each level folder the model file (``rnn_numpy.py``, ``rnn_lowlevel.py``, ``rnn_paper.py``)
holds the model and ``train.py`` (at L3 also ``train_sentiment.py``, ``train_char_lm.py``)
the script that trains it.

The folder name starts with a digit, so import its modules with
``utils.import_lesson("06_LSTM_GRU.paper.rnn_paper")``.
"""
