"""Level 2 of lesson 05: ResNet from tensors and autograd.

Convolution as unfold + matmul, batch norm with running statistics, the basic and
bottleneck residual blocks as functions of torchvision-named tensors, the CIFAR-10
ResNet of Section 4.2, and SGD with momentum and weight decay written by hand.
No ``torch.nn`` layers, ``F.conv2d``, ``F.batch_norm`` or ``torch.optim``.

Files (read them in this order):

- ``resnet_lowlevel.py`` the layers, the blocks, the network, the optimiser, the script
- ``test_lowlevel.py``   blocks against torchvision's, SGD against torch.optim, L2 == L3
"""
