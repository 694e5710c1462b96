"""Level 2 of lesson 10: the Vision Transformer from tensors and autograd (no torch.nn
layers, no torch.optim).

Patches cut by reshape and embedded by one matmul (equal to a strided convolution), the
[CLS] token, learned 1-D position embeddings, pre-LN blocks of multi-head self-attention and
GELU MLP, the final norm and the head on [CLS] or on the mean of the patch tokens; the
label-smoothed cross-entropy, AdamW's groups and the warm-up + cosine schedule, all written
out; autograd gives the backward passes. The tests check every number against timm's
``VisionTransformer``, transformers' ``ViTForImageClassification`` and ``torch.optim.AdamW``
(``assert_level_purity`` keeps the level's rule).

Files (read them in this order):

- ``vit_lowlevel.py``  the model, its loss, initialisation, AdamW's groups, the schedule
- ``train.py``         training on upsampled digits (offline) or CIFAR-10, accuracy, plots
- ``test_lowlevel.py`` every piece against timm, transformers and torch
"""
