"""Level 2 of lesson 12: CLIP from tensors and autograd (no torch.nn layers, no torch.optim).

The image tower is lesson 10's ViT with CLIP's changes (no bias in the patch embedding, a
layer norm before the encoder, [CLS] after the final norm); the text tower is lesson 09's
causal Transformer read at the end-of-text token; quick-GELU, the two projections without
bias, L2 normalisation, the learnable temperature clipped at 100 and the symmetric
cross-entropy of Figure 3 are written out; autograd gives the backward passes. The tests
check every number against transformers' ``CLIPModel`` (``assert_level_purity`` keeps the
level's rule).

Files (read them in this order):

- ``clip_lowlevel.py``  the model, the contrastive loss, initialisation, AdamW's groups
- ``train.py``          training on generated digit-caption pairs; zero-shot and retrieval
- ``test_lowlevel.py``  every piece against transformers and torch; the script's semantics
"""
