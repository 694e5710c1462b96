"""Level 3 of lesson 06: LSTM and GRU as the papers describe them, and the tasks they solve.

``LSTM`` follows Hochreiter & Schmidhuber (1997) with the forget gate of Gers et al. (2000);
``GRU`` follows Cho et al. (2014, eq. 5-8), with PyTorch's reset-after form as an option;
``RNN`` is the vanilla network they improve on. All three have nn.LSTM / nn.GRU / nn.RNN's
constructor, call signature and parameter names, and run an explicit loop over time.

Files (read them in this order):

- ``rnn_paper.py``          the cells, the modules, and the models built on them (the
                            adding-problem read-out, the sentiment classifier, the
                            character language model and its sampling)
- ``convert.py``            from_torch / to_torch
- ``train.py``              the adding problem: training, test MSE, the pictures
- ``train_sentiment.py``    IMDB sentiment with an LSTM over packed sequences (one direction
                            on IMDB by default, bidirectional on the generated offline reviews)
- ``train_char_lm.py``      a character-level LSTM language model on Tiny Shakespeare
- ``test_paper.py``         outputs and gradients against nn.LSTM / nn.GRU / nn.RNN, and more
"""
