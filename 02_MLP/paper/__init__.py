"""Level 3 of lesson 02: the multilayer perceptron as a configurable ``nn.Module``.

``MLP(sizes=(784, 800, 10), activation="relu", dropout=0.0, norm=None)`` is built
from ``nn.Linear``, an activation module, ``nn.Dropout`` and ``nn.BatchNorm1d`` /
``nn.LayerNorm``, initialised as Glorot & Bengio (2010) or He et al. (2015)
prescribe, and trained with ``torch.optim`` and the curriculum's shared loop
``utils.training_utils.fit`` (on one device, or several processes under torchrun).

Files (read them in this order):

- ``mlp_paper.py``  the module, its initialisation, predict
- ``train.py``      the script: the training recipe, the gradient-flow picture, plots
- ``test_paper.py`` parameter counts, an nn.Sequential reference, overfitting, checkpoints,
                    determinism, and L1 == L2 == L3 on the same weights
"""
