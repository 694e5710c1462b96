"""Level 3 of lesson 04: VGG as Simonyan & Zisserman (2015) describe it.

``VGG`` builds every configuration of Table 1 (A, A-LRN, B, C with its 1x1 convolutions,
D, E), with or without batch normalisation, in torchvision's module layout, so that
``convert.py``'s ``from_torchvision`` / ``to_torchvision`` move weights both ways unchanged. The
parameter counts equal Table 2 and torchvision's. ``fully_convolutional`` turns the FC
layers into convolutions for the paper's dense evaluation (Section 3.2); ``vgg_cifar``
is the 32x32 variant the script trains with ``torch.optim`` and the shared loop.

Files (read them in this order):

- ``vgg_paper.py`` Table 1, VGG, dense evaluation, receptive fields, predict (the model)
- ``convert.py``   from_torchvision / to_torchvision
- ``train.py``     the script: options, data, crops and flips, torch.optim and fit, plots
- ``test_paper.py`` parameter counts, torchvision round trips, dense evaluation, training
"""
