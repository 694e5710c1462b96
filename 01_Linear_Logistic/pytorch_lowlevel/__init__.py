"""Level 2 of lesson 01: linear, logistic and softmax regression in low-level PyTorch.

The parameters are plain tensors with ``requires_grad=True``; autograd computes the
gradients that the NumPy level (L1) derives by hand, while the losses, the
optimiser step (``sgd_step``) and the training loop are written out here with
tensor operations. No ``torch.nn`` layers, no ``torch.nn.functional`` losses, no
``torch.optim``: a test (``assert_level_purity``) enforces it.

Files (read them in this order):

- ``linear_lowlevel.py``   least squares: normal equation, gradient descent, SGD
- ``logistic_lowlevel.py`` binary logistic regression and softmax regression
- ``train_linear.py``, ``train_logistic.py``  the scripts that train and plot them
- ``test_lowlevel.py``     every piece checked against torch.nn / torch.optim / scikit-learn
"""
