"""Lesson 05: deep residual networks, ResNet (He et al. 2015).

Very deep plain networks train worse than shallow ones; a residual block learns F(x)
and outputs F(x) + x, so that the identity is the easy default and gradients reach the
first layers through the shortcuts. Three levels and a code-reading guide live here:

- ``pytorch_lowlevel/`` L2: convolution as unfold + matmul, batch norm, the basic and
                        bottleneck blocks from tensors and autograd, a small CIFAR ResNet
                        trained with a hand-written SGD step;
- ``paper/``            L3: the ImageNet ResNets of Table 1 and the CIFAR ResNets of
                        Section 4.2 as ``nn.Module``s, with weights ported from and to
                        torchvision;
- ``analysis/``         L4: reading torchvision's and timm's ResNet code.

The folder name starts with a digit, so import its modules with
``utils.import_lesson("05_ResNet.paper.resnet_paper")``.
"""
