"""Level 2 of lesson 06: vanilla RNN, LSTM and GRU cells and sequences in low-level PyTorch.

Each cell is written with matrix products and element-wise functions on tensors; a
sequence is a loop over time; autograd does back-propagation through time. Gradient
clipping by global norm is written by hand, the Adam step is lesson 02's hand-written
``adam_step``. No ``torch.nn`` layers, no ``F.linear``, no ``torch.optim``: a test
(``assert_level_purity``) enforces it.

Files (read them in this order):

- ``rnn_lowlevel.py``  cells, sequences, layers, clip_grad_norm, the adding-problem model
- ``train.py``         the script: the adding problem, the training loop written out
- ``test_lowlevel.py`` everything against nn.RNN / nn.LSTM / nn.GRU / torch.optim.Adam
"""
