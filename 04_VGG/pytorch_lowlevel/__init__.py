"""Level 2 of lesson 04: a VGG from tensor operations and autograd.

Convolution is "a strided view of every window (``as_strided``; lesson 03's unfold makes
the same view), then one matrix multiplication" (lesson 03's ``conv2d``); max pooling
reduces the same windows (lesson 03's ``max_pool2d``); batch normalisation computes the
batch statistics and keeps the running ones by hand (PyTorch's momentum convention,
unbiased running variance). The tests check each against ``F.conv2d``,
``F.max_pool2d`` and ``nn.BatchNorm2d`` with copied weights, the whole network against
the Level 3 model, and lesson 02's SGD step against ``torch.optim.SGD``. No ``torch.nn``
layers, no ``F.conv2d`` / ``F.*pool*`` / ``F.batch_norm``, no ``torch.optim``: a test
(``assert_level_purity``) enforces it.

Files (read them in this order):

- ``vgg_lowlevel.py`` windows_as_strided / batch_norm / linear, VGGLowLevel (the model)
- ``train.py``        the script: options, data, crops, the training loop, plots
- ``test_lowlevel.py`` every piece against torch.nn / F / torch.optim and the Level 3 model
"""
