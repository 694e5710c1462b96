"""Level 2 of lesson 07: the Transformer in low-level PyTorch.

Scaled dot-product attention, multi-head attention, layer norm, the feed-forward network,
sinusoidal positions, encoder and decoder layers and a small encoder-decoder model, all
from tensors, matmuls and elementwise ops; autograd gives the backward passes. The
label-smoothed loss and the warm-up schedule are written out too; dropout, the Adam step
and zero_grad are lesson 02's (imported, with the paper's betas and eps). The tests check
every piece, outputs and gradients with copied weights, against ``torch.nn`` /
``F.scaled_dot_product_attention`` / ``torch.optim``. No ``torch.nn`` layers here: a
test (``assert_level_purity``) enforces it.

Files (read them in this order):

- ``transformer_lowlevel.py`` attention, layers, the model, loss, schedule, Adam
- ``train.py``                the script: copy / reverse data, training, evaluation, plots
- ``test_lowlevel.py``        every piece against torch's own
"""
