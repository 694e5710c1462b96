"""Lesson 03: convolutional networks, LeNet-5 (LeCun et al. 1998).

The first lesson where the input's shape matters: images stay (N, C, H, W), a small
filter bank slides over them (convolution), and pooling shrinks the feature maps.
Three levels live here, each a self-contained read:

- ``numpy/``            L1: convolution and pooling in NumPy, every gradient by hand
                        (``conv_numpy.py``), and LeNet-5 built from them (``lenet_numpy.py``);
- ``pytorch_lowlevel/`` L2: the same layers from tensors and autograd;
- ``paper/``            L3: LeNet-5 as the paper describes it, and a modern variant.

Each level's ``train.py`` is the script that trains and evaluates its model.

The folder name starts with a digit, so import its modules with
``utils.import_lesson("03_CNN_LeNet.numpy.lenet_numpy")``.
"""
