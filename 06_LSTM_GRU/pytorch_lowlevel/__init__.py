"""Level 2 of lesson 06: vanilla RNN, LSTM and GRU cells and sequences in low-level PyTorch.

Each cell is written with matrix products and element-wise functions on tensors; a
sequence is a loop over time; autograd does back-propagation through time. Gradient
clipping by global norm and the Adam step are written by hand. No ``torch.nn`` layers, no
``F.linear``, no ``torch.optim``: a test (``assert_level_purity``) enforces it.

Files (read them in this order):

- ``rnn_lowlevel.py``  cells, sequences, clip_grad_norm, Adam, the adding-problem script
- ``test_lowlevel.py`` everything against nn.RNN / nn.LSTM / nn.GRU / torch.optim.Adam
"""
