"""Level 3 of lesson 07: the Transformer as Vaswani et al. (2017) describe it, in torch.nn.

``transformer_paper.py`` follows Section 3 of "Attention Is All You Need": multi-head
attention with a key/value cache for decoding, the position-wise feed-forward network,
sinusoidal positions, post-LN encoder and decoder layers (pre-LN as an option for later
lessons), shared embeddings scaled by sqrt(d_model), label smoothing and the warm-up
learning-rate schedule of Section 5.3; greedy and beam-search decoding. ``convert.py``
ports it to and from ``torch.nn.Transformer``; ``train.py`` trains it on generated tasks
(copy, reverse, sort, addition).

Files (read them in this order):

- ``transformer_paper.py`` the model: attention, layers, the stacks, loss, schedule, decoding
- ``convert.py``           from_torch / to_torch for ``torch.nn.Transformer``
- ``train.py``             the script: tasks, options, training, evaluation, plots
- ``test_paper.py``        parameter counts, equality with torch.nn, decoding, errors
"""
