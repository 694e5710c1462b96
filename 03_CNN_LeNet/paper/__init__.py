"""Level 3 of lesson 03: LeNet-5 as LeCun et al. (1998) describe it, and a modern variant.

``LeNet5`` follows "Gradient-based learning applied to document recognition"
(Proc. IEEE 86(11), Section II-B) layer by layer: the scaled tanh, trainable
subsampling (S2, S4), the partial C3 connection table (Table I), C5 as a
convolution, and Euclidean RBF output units with fixed +-1 codes, trained with the
paper's MAP criterion. Its trainable parameter count is exactly 60,000.
``LeNet5Modern`` is the network most courses call LeNet-5 today (ReLU, max pooling,
C3 fully connected, a linear output and softmax cross-entropy), the same network as
the L1 and L2 levels. Both train with ``torch.optim`` and the shared loop
``utils.training_utils.fit`` (one CPU, one GPU, or several processes under torchrun).

Files (read them in this order):

- ``lenet_paper.py`` the paper's pieces, LeNet5, LeNet5Modern, predict (the models)
- ``train.py``       the script: options, data, torch.optim and the shared loop, plots
- ``test_paper.py``  parameter counts, Table I, the paper's constants, and L1 == L2 == L3
"""
