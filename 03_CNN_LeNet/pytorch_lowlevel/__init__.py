"""Level 2 of lesson 03: convolution, pooling and LeNet-5 in low-level PyTorch.

Convolution is written as "unfold the input into patches, then one matrix
multiplication" (im2col), pooling as "unfold into windows, then max or mean".
Autograd differentiates both, so what must be right is the forward arithmetic;
the tests check it, and every gradient, against ``F.conv2d``, ``F.max_pool2d`` and
``F.avg_pool2d``. The network's parameters are plain tensors; the loss and the SGD and
Adam steps are lesson 02's hand-written ones. No ``torch.nn`` layers, no ``F.conv2d`` /
``F.*pool*``, no ``torch.optim``: a test (``assert_level_purity``) enforces it.

Files (read them in this order):

- ``lenet_lowlevel.py`` conv2d / max_pool2d / avg_pool2d by unfold, LeNet5 (the model)
- ``train.py``          the script: options, data, the training loop, plots
- ``test_lowlevel.py``  every piece against torch.nn / F / torch.optim
"""
