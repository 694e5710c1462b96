"""Level 2 of lesson 08: BERT from tensors and autograd (no torch.nn layers, no torch.optim).

Token, position and segment embeddings, multi-head self-attention with the padding mask,
GELU feed-forward, post-LN blocks, the pooler, the masked-LM and next-sentence heads and
losses, the 15 % / 80-10-10 masking procedure, AdamW and the warm-up / decay schedule, all
written out; autograd gives the backward passes. The tests check every number against
transformers' ``BertForPreTraining`` and ``torch.optim.AdamW`` (``assert_level_purity``
keeps the level's rule).

Files (read them in this order):

- ``bert_lowlevel.py``  the model, its losses, masking, initialisation, AdamW, the schedule
- ``corpus.py``         the generated sentence pairs it is pre-trained on
- ``train.py``          the pre-training script (masked LM + NSP), held-out accuracy, plots
- ``test_lowlevel.py``  every piece against transformers and torch
"""
