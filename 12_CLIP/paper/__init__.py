"""Level 3 of lesson 12: CLIP of Radford et al. (2021), in torch.nn.

Files: ``clip_paper.py`` (the model: the ViT and modified-ResNet image towers, the causal
text tower, the symmetric contrastive loss, CLIP's initialisation), ``tokenizer.py``
(CLIP's byte-level BPE with end-of-word markers), ``convert.py`` (transformers' and
open_clip's weights and checkpoint folders, both ways), ``data.py`` (generated and your own
image-caption pairs), ``zero_shot.py`` (zero-shot classification, a linear probe,
retrieval), the training script, and their tests.
"""
