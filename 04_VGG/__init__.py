"""Lesson 04: very deep convolutional networks, VGG (Simonyan & Zisserman 2015).

Depth from one simple rule: stacks of 3x3 convolutions between 2x2 max-poolings, the
number of channels doubling after each pooling, then three fully connected layers. Two
levels live here, each a self-contained read:

- ``pytorch_lowlevel/`` L2: convolution, ReLU, max pooling and batch normalisation from
                        tensor operations, a VGG built from them, a hand-written SGD step;
- ``paper/``            L3: configurations A to E of the paper's Table 1 with torchvision's
                        layout, conversion to and from torchvision, dense evaluation.

The folder name starts with a digit, so import its modules with
``utils.import_lesson("04_VGG.paper.vgg_paper")``.
"""
