"""Level 2 of lesson 04: a VGG from tensor operations and autograd.

Convolution is "a strided view of every window (``as_strided``), then one matrix
multiplication"; max pooling reduces the same windows; batch normalisation computes the
batch statistics and keeps the running ones by hand (PyTorch's momentum convention,
unbiased running variance). The tests check each against ``F.conv2d``,
``F.max_pool2d`` and ``nn.BatchNorm2d`` with copied weights, the whole network against
the Level 3 model, and the hand-written SGD step against ``torch.optim.SGD``. No
``torch.nn`` layers, no ``F.conv2d`` / ``F.*pool*`` / ``F.batch_norm``, no ``torch.optim``:
a test (``assert_level_purity``) enforces it.

Files (read them in this order):

- ``vgg_lowlevel.py`` windows / conv2d / max_pool2d / batch_norm, VGGLowLevel, sgd_step
- ``test_lowlevel.py`` every piece against torch.nn / F / torch.optim and the Level 3 model
"""
