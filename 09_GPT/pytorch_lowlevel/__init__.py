"""Level 2 of lesson 09: GPT from tensors and autograd (no torch.nn layers, no torch.optim).

Token and learned position embeddings, causal multi-head self-attention with the padding
mask, GELU (tanh form) feed-forward, pre-LN blocks and the final layer norm (post-LN for
GPT-1), the tied output layer, the next-token cross-entropy, AdamW with decay on matrices,
warm-up then cosine decay, gradient clipping and sampling, all written out; autograd gives
the backward passes. The tests check every number against transformers' ``GPT2LMHeadModel``
and ``OpenAIGPTLMHeadModel`` and ``torch.optim.AdamW`` (``assert_level_purity`` keeps the
level's rule).

Files (read them in this order):

- ``gpt_lowlevel.py``   the model, its loss, sampling, initialisation, AdamW, the schedule
- ``corpus.py``         the generated language it learns offline, its entropy (the floor)
- ``train.py``          the training script: held-out loss and bits per character, samples
- ``test_lowlevel.py``  every piece against transformers and torch
"""
