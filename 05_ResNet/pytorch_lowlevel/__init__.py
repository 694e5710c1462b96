"""Level 2 of lesson 05: ResNet from tensors and autograd.

Lesson 03's convolution (unfold + matmul) and lesson 04's batch norm with running
statistics, the basic and bottleneck residual blocks as functions of torchvision-named
tensors, the CIFAR-10 ResNet of Section 4.2, and lesson 02's hand-written SGD with
momentum and weight decay. No ``torch.nn`` layers, ``F.conv2d``, ``F.batch_norm`` or
``torch.optim``.

Files (read them in this order):

- ``resnet_lowlevel.py`` the blocks and the network (lessons 03-04's conv2d and batch_norm)
- ``train.py``           the script: options, data, the paper's schedule, the loop, plots
- ``test_lowlevel.py``   blocks against torchvision's, SGD against torch.optim, L2 == L3
"""
