"""Using a trained CLIP: zero-shot classification, a linear probe, retrieval recall@k.

- Zero-shot (Section 3.1.2): each class name goes through prompt templates ("a photo of a
  {}."), the text tower embeds them, and the normalised embeddings averaged over the
  templates and normalised again are the weights of a linear classifier of the normalised
  image embeddings: prompt ensembling (Section 3.1.4), "computed in embedding space", so it
  costs one embedding per class at test time.
- Linear probe (Section 3.2, Appendix A.3): logistic regression (scikit-learn's L-BFGS, as
  the paper) on the frozen image features before the projection, its L2 strength chosen on
  a validation share of the training features.
- Retrieval (Section 3.1 / Table 13): recall@k image -> text and text -> image of matched
  pairs.

Used by ``train.py``; the maths of each step is in ``../theory.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def image_features(model, images: torch.Tensor, batch_size: int = 256,
                   before_projection: bool = False) -> torch.Tensor:
    """images (N, C, H, W), normalised as in training -> (N, E) L2-normalised embeddings, in
    eval mode; before_projection: the ViT's [CLS] state after ln_post (N, D), not normalised
    (what the linear probe reads: "features taken from the penultimate layer")."""
    was_training = model.training
    model.eval()
    captured: list[torch.Tensor] = []
    hook = model.visual.projection.register_forward_pre_hook(
        lambda module, inputs: captured.append(inputs[0])) if before_projection else None
    try:
        embedded = torch.cat([model.encode_image(images[start:start + batch_size])
                              for start in range(0, len(images), batch_size)])
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    return torch.cat(captured) if before_projection else F.normalize(embedded, dim=-1)


def tokenize(tokenizer, texts: Sequence[str], context_length: int) -> dict[str, torch.Tensor]:
    """texts (N str) -> {"input_ids", "attention_mask"} (N, T): CLIP's tokenizer padding with
    its end token (transformers' convention), then the columns that are padding in every row
    cut off: T is the longest text's tokens, at most context_length (longer texts are cut,
    keeping the end token)."""
    batch = tokenizer(list(texts), context_length=context_length,
                      pad_token_id=tokenizer.eot_token_id)
    length = int(batch["attention_mask"].sum(dim=1).max())
    return {key: value[:, :length] for key, value in batch.items()}  # (N, T)


@torch.no_grad()
def text_features(model, tokenizer, texts: Sequence[str], context_length: int,
                  batch_size: int = 256) -> torch.Tensor:
    """texts (N str) -> (N, E) L2-normalised embeddings (``tokenize``d), in eval mode."""
    was_training = model.training
    model.eval()
    device = model.logit_scale.device
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenize(tokenizer, texts[start:start + batch_size], context_length)
        chunks.append(model.encode_text(batch["input_ids"].to(device),
                                        batch["attention_mask"].to(device)))
    model.train(was_training)
    return F.normalize(torch.cat(chunks), dim=-1)


def zero_shot_weights(model, tokenizer, class_names: Sequence[str], templates: Sequence[str],
                      context_length: int) -> torch.Tensor:
    """The zero-shot classifier (Section 3.1.4, prompt ensembling), one row per class:

        w_k = normalise( (1 / M) sum_m normalise(f_text(template_m(class_k))) )

    class_names (K str), templates (M str with "{}") -> weights (K, E), unit rows.
    """
    prompts = [template.format(name) for name in class_names for template in templates]
    embedded = text_features(model, tokenizer, prompts, context_length)  # (K M, E)
    per_class = embedded.reshape(len(class_names), len(templates), -1)  # (K, M, E)
    return F.normalize(per_class.mean(dim=1), dim=-1)


def zero_shot_predict(image_embeddings: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """image_embeddings (N, E) and weights (K, E), both unit rows -> (N,) the class of the
    highest cosine similarity (the temperature does not change the argmax)."""
    return (image_embeddings @ weights.T).argmax(dim=-1)


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray,
                 test_features: np.ndarray, test_labels: np.ndarray,
                 strengths: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0),
                 seed: int = 0) -> tuple[float, float]:
    """Logistic regression on frozen features (Appendix A.3: scikit-learn's L-BFGS; the
    inverse L2 strength C chosen on a 20 % validation share of the training features, then
    refit on all of them). Features are standardised with the training statistics.
    Returns: (test accuracy, the chosen C)."""
    from sklearn.linear_model import LogisticRegression

    mean, std = train_features.mean(axis=0), train_features.std(axis=0) + 1e-8
    train_x, test_x = (train_features - mean) / std, (test_features - mean) / std
    order = np.random.default_rng(seed).permutation(len(train_x))
    held, kept = order[:len(order) // 5], order[len(order) // 5:]

    def fitted(strength: float, rows: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=strength, max_iter=1000).fit(train_x[rows],
                                                                 train_labels[rows])

    scores = [fitted(c, kept).score(train_x[held], train_labels[held]) for c in strengths]
    best = strengths[int(np.argmax(scores))]
    probe = fitted(best, np.arange(len(train_x)))
    return float(probe.score(test_x, test_labels)), float(best)


def recall_at_k(similarity: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Retrieval of matched pairs: similarity (N, N) of image i (rows) and text j (columns),
    pair i on the diagonal. Image -> text: the rank of text i in row i is the number of
    texts strictly more similar to image i; a hit at k when that rank < k (ties, e.g. two
    identical captions, count as found: they are the same text). Text -> image: the same
    on the columns.
    Returns: {"image_to_text_at_1": ..., "text_to_image_at_1": ..., ...} in [0, 1]."""
    diagonal = similarity.diagonal()  # (N,)
    rank_text = (similarity > diagonal[:, None]).sum(dim=1)  # (N,) per image
    rank_image = (similarity > diagonal[None, :]).sum(dim=0)  # (N,) per text
    results = {}
    for k in ks:
        results[f"image_to_text_at_{k}"] = float((rank_text < k).float().mean())
        results[f"text_to_image_at_{k}"] = float((rank_image < k).float().mean())
    return results
