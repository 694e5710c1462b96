"""Porting lesson 07's L3 Transformer to and from ``torch.nn.Transformer``.

``from_torch`` builds a ``Transformer`` (transformer_paper.py) holding the weights of an
``nn.Transformer``; ``to_torch`` builds an ``nn.Transformer`` holding ours. Only the two
layer stacks are mapped: ``nn.Transformer`` has no embeddings, positional encodings or
output projection. Submodule names are the same except ``cross_attn`` (torch:
``multihead_attn``) and ``ffn.linear1`` / ``ffn.linear2`` (torch: ``linear1`` / ``linear2``).
The tests (test_paper.py) check equal outputs both ways. The L3 purity rule allows
production code inside functions named from_* / to_*.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from utils import import_lesson

_model = import_lesson("07_Transformer.paper.transformer_paper")
Transformer, TransformerConfig = _model.Transformer, _model.TransformerConfig

# --------------------------------------------------------------------------------------
# Conversion to and from torch.nn.Transformer
# --------------------------------------------------------------------------------------

# our submodule names -> nn.Transformer's, inside each layer
_TORCH_NAMES = {"cross_attn.": "multihead_attn.", "ffn.linear1.": "linear1.",
                "ffn.linear2.": "linear2.", "residual1.norm.": "norm1.",
                "residual2.norm.": "norm2.", "residual3.norm.": "norm3."}


def _to_torch_key(key: str) -> str:
    for ours, theirs in _TORCH_NAMES.items():
        key = key.replace(ours, theirs)
    return key


def from_torch(torch_model: nn.Transformer, *, vocab_size: int | None = None,
               src_embedding: nn.Embedding | None = None,
               tgt_embedding: nn.Embedding | None = None,
               max_len: int = 1024, **config) -> Transformer:
    """A ``Transformer`` whose layer stacks hold the weights of ``torch_model``.

    ``nn.Transformer`` has the two stacks (each ending with a LayerNorm, or none if its
    ``norm`` was set to None) and nothing else. Sizes, dropout, norm_first, activation and
    the final norms are read from ``torch_model``; the embeddings are new (our
    initialisation) unless ``src_embedding`` / ``tgt_embedding`` are given (their weights
    are copied; one module given for both, or only ``src_embedding``, means shared
    embeddings). Extra keyword arguments go to TransformerConfig (e.g. pad_id).

    Inputs:  torch_model - nn.Transformer (batch_first True or False; the weights are the same);
             vocab_size - the joint vocabulary when no embedding is given.
    Returns: Transformer (torch_model's dtype, device and training/eval mode).
    """
    if not isinstance(torch_model, nn.Transformer):
        raise TypeError(f"from_torch: expected an nn.Transformer, got "
                        f"{type(torch_model).__name__}")
    layer = torch_model.encoder.layers[0]
    if layer.linear1.bias is None or layer.self_attn.in_proj_bias is None:
        raise ValueError("from_torch: this nn.Transformer was built with bias=False; our "
                         "Transformer expects biases in every attention projection, linear "
                         "layer and LayerNorm (the paper's model has them)")
    activation = getattr(layer, "activation", F.relu)
    if activation is F.relu or isinstance(activation, nn.ReLU):
        activation_name = "relu"
    elif activation is F.gelu or isinstance(activation, nn.GELU):
        activation_name = "gelu"
    else:
        raise ValueError(f"from_torch: unsupported activation {activation!r} (relu or gelu)")
    if torch_model.encoder.norm is None and torch_model.decoder.norm is not None or \
            torch_model.encoder.norm is not None and torch_model.decoder.norm is None:
        raise ValueError("from_torch: both stacks must have a final norm, or neither")
    if src_embedding is not None:
        share = tgt_embedding is None or tgt_embedding is src_embedding
        vocab = {"src_vocab": src_embedding.num_embeddings,
                 "tgt_vocab": (tgt_embedding or src_embedding).num_embeddings}
    else:
        if vocab_size is None:
            raise ValueError("from_torch: nn.Transformer has no embeddings; give vocab_size "
                             "or src_embedding (and tgt_embedding)")
        share, vocab = True, {"vocab_size": vocab_size}
    cfg = TransformerConfig(
        **vocab, share_embeddings=config.pop("share_embeddings", share),
        d_model=torch_model.d_model, n_heads=torch_model.nhead, d_ff=layer.linear1.out_features,
        n_encoder_layers=len(torch_model.encoder.layers),
        n_decoder_layers=len(torch_model.decoder.layers),
        dropout=layer.dropout1.p, attn_dropout=layer.self_attn.dropout,
        ffn_dropout=layer.dropout.p, activation=activation_name, norm_first=layer.norm_first,
        final_norm=torch_model.encoder.norm is not None, layer_norm_eps=layer.norm1.eps,
        max_len=max_len, **config)
    weight = layer.linear1.weight
    model = Transformer(cfg).to(dtype=weight.dtype, device=weight.device)  # torch_model's dtype
    theirs = {f"{stack}.{key}": value for stack in ("encoder", "decoder")
              for key, value in getattr(torch_model, stack).state_dict().items()}
    with torch.no_grad():
        for key, param in model.state_dict().items():
            if key.startswith(("encoder.", "decoder.")):
                param.copy_(theirs[_to_torch_key(key)])
        if src_embedding is not None:
            model.src_embed.weight.copy_(src_embedding.weight)
            if tgt_embedding is not None and not cfg.share_embeddings:
                model.tgt_embed.weight.copy_(tgt_embedding.weight)
    return model.train(torch_model.training)


def to_torch(model: Transformer, batch_first: bool = True) -> nn.Transformer:
    """An ``nn.Transformer`` holding our two layer stacks' weights.

    Without our final norms (``final_norm=False``, the paper's post-LN) the stacks'
    ``norm`` is set to None, which nn.TransformerEncoder / Decoder allow. Nested tensors
    are switched off in the encoder so that padded positions are computed as ours are.
    Embeddings, positional encodings and the output projection stay with ``model``:
    ``model.embed`` and ``model.lm_head`` give them.

    Returns: nn.Transformer (``model``'s dtype, device and mode; ReLU or GELU as configured).
    """
    cfg = model.config
    if cfg.n_encoder_layers < 1 or cfg.n_decoder_layers < 1:
        raise ValueError("to_torch: nn.Transformer needs at least one layer in each stack")
    if cfg.attn_dropout != cfg.dropout or cfg.ffn_dropout != cfg.dropout:
        if model.training and (cfg.attn_dropout or cfg.ffn_dropout or cfg.dropout):
            raise ValueError("to_torch: nn.Transformer uses one dropout for the residuals, "
                             "the attention weights and the FFN; this model's differ "
                             f"({cfg.dropout}, {cfg.attn_dropout}, {cfg.ffn_dropout})")
    weight = model.src_embed.weight
    with warnings.catch_warnings():  # "nested tensors are off with norm_first": we know
        warnings.simplefilter("ignore", UserWarning)
        torch_model = nn.Transformer(d_model=cfg.d_model, nhead=cfg.n_heads,
                                     num_encoder_layers=cfg.n_encoder_layers,
                                     num_decoder_layers=cfg.n_decoder_layers,
                                     dim_feedforward=cfg.d_ff, dropout=cfg.dropout,
                                     activation=cfg.activation,
                                     layer_norm_eps=cfg.layer_norm_eps, batch_first=batch_first,
                                     norm_first=cfg.norm_first, dtype=weight.dtype,
                                     device=weight.device)
    torch_model.encoder.enable_nested_tensor = False
    if not cfg.final_norm:
        torch_model.encoder.norm = None
        torch_model.decoder.norm = None
    ours = model.state_dict()
    with torch.no_grad():
        for stack in ("encoder", "decoder"):
            for key, param in getattr(torch_model, stack).state_dict().items():
                mine = {_to_torch_key(name): name for name in ours
                        if name.startswith(stack + ".")}
                param.copy_(ours[mine[f"{stack}.{key}"]])
    return torch_model.train(model.training)
