"""Level 3 of lesson 05: ResNet as He et al. (2015) describe it.

``ResNet`` with ``BasicBlock`` / ``Bottleneck`` builds the ImageNet models of Table 1
(resnet18 ... resnet152) with torchvision's module names, so that weights port both
ways (``convert.py``: ``from_torchvision``, ``to_torchvision``); ``stride_on`` chooses the paper's
stride placement ("1x1") or torchvision's ("3x3", "ResNet v1.5"). ``CifarResNet``
builds the CIFAR-10 models of Section 4.2 (resnet20 ... resnet110) with the paper's
option-A shortcuts. The script trains a CIFAR ResNet with the paper's recipe through
``torch.optim`` and the shared loop ``utils.training_utils.fit``.

Files (read them in this order):

- ``resnet_paper.py`` blocks, ResNet, CifarResNet (the models)
- ``convert.py``      from_torchvision / to_torchvision
- ``train.py``        the script: the paper's CIFAR-10 recipe with torch.optim and fit, plots
- ``test_paper.py``   parameter counts, porting both ways, stride placement, option A
"""
