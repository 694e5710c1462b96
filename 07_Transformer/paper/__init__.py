"""Level 3 of lesson 07: the Transformer as Vaswani et al. (2017) describe it, in torch.nn.

``transformer_paper.py`` follows Section 3 of "Attention Is All You Need": multi-head
attention with a key/value cache for decoding, the position-wise feed-forward network,
sinusoidal positions, post-LN encoder and decoder layers (pre-LN as an option for later
lessons), shared embeddings scaled by sqrt(d_model), label smoothing and the warm-up
learning-rate schedule of Section 5.3; greedy and beam-search decoding; conversion to and
from ``torch.nn.Transformer``; and a script that trains it on generated tasks (copy,
reverse, sort, addition).

Files (read them in this order):

- ``transformer_paper.py`` the model, decoding, the schedule, conversion, the script
- ``test_paper.py``        parameter counts, equality with torch.nn, decoding, errors
"""
