"""Tests of lesson 08, Level 2: BERT from tensors and autograd, against transformers.

- forward == transformers' BertForPreTraining (built from a small random BertConfig, no
  download; eager and sdpa attention) with copied weights, float64, 1e-10, with padding and
  two segments: every layer's hidden states, the attention probabilities, the pooled
  output, MLM and NSP logits
- the pre-training loss (MLM over masked positions + NSP) and the gradient of every
  parameter == transformers' (the tied decoder included)
- masked_lm_loss / next_sentence_loss == nn.CrossEntropyLoss(ignore_index=-100), values and
  gradients; nothing masked gives 0
- mask_tokens: 15 % chosen, 80/10/10, within binomial bounds; special tokens and padding
  never chosen; labels -100 elsewhere; seeded
- padding changes nothing at the real positions; dropout only when training
- init_params: BERT's initialisation, every transformers parameter has its one tensor here
- adamw_step + linear_warmup_decay == torch.optim.AdamW + LambdaLR with two parameter groups
  (no decay on biases and LayerNorm) over 20 steps; the schedule == transformers'
- bad inputs at the door; the purity rule; the corpus; train.py runs and its loss falls

Run: .venv/bin/python -m pytest 08_BERT/pytorch_lowlevel -q
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from utils import import_lesson
from utils.testing import FLOAT64, assert_close, assert_level_purity

bert = import_lesson("08_BERT.pytorch_lowlevel.bert_lowlevel")
corpus = import_lesson("08_BERT.pytorch_lowlevel.corpus")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one CPU thread

CONFIG = bert.BertConfig(vocab_size=53, d_model=16, n_layers=2, n_heads=4, d_ff=40,
                         max_len=12, dropout=0.0, attn_dropout=0.0)
LENGTHS = [9, 6, 4]  # real tokens per row of the batch: rows 1 and 2 are padded
SEGMENT_A = [4, 3, 2]  # [CLS] + sentence A [SEP]: segment 0; the rest up to the length: 1

# our name -> transformers' BertForPreTraining name (the decoder is tied to the word table)
RENAMES = [
    (r"^embeddings\.word\.", "bert.embeddings.word_embeddings."),
    (r"^embeddings\.position\.", "bert.embeddings.position_embeddings."),
    (r"^embeddings\.segment\.", "bert.embeddings.token_type_embeddings."),
    (r"^embeddings\.norm\.", "bert.embeddings.LayerNorm."),
    (r"^layers\.(\d+)\.attention\.q\.", r"bert.encoder.layer.\1.attention.self.query."),
    (r"^layers\.(\d+)\.attention\.k\.", r"bert.encoder.layer.\1.attention.self.key."),
    (r"^layers\.(\d+)\.attention\.v\.", r"bert.encoder.layer.\1.attention.self.value."),
    (r"^layers\.(\d+)\.attention\.out\.", r"bert.encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.norm1\.", r"bert.encoder.layer.\1.attention.output.LayerNorm."),
    (r"^layers\.(\d+)\.ffn\.up\.", r"bert.encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.ffn\.down\.", r"bert.encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.norm2\.", r"bert.encoder.layer.\1.output.LayerNorm."),
    (r"^pooler\.dense\.", "bert.pooler.dense."),
    (r"^mlm_head\.dense\.", "cls.predictions.transform.dense."),
    (r"^mlm_head\.norm\.", "cls.predictions.transform.LayerNorm."),
    (r"^mlm_head\.bias$", "cls.predictions.bias"),
    (r"^nsp_head\.", "cls.seq_relationship."),
]


def hf_name(name: str) -> str:
    for pattern, replacement in RENAMES:
        new, count = re.subn(pattern, replacement, name)
        if count:
            return new
    raise KeyError(name)


def random_params(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter random (biases and LayerNorm too), float64: nothing hides at 0 or 1."""
    params = bert.init_params(CONFIG, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in params.items():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(1 + 0.2 * noise if "norm" in name and name.endswith("weight")
                    else 0.3 * noise)
    return params


def hf_model(params, attn_implementation: str = "eager"):
    """transformers' BertForPreTraining of CONFIG's sizes holding a copy of ``params``."""
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BertConfig(
        vocab_size=CONFIG.vocab_size, hidden_size=CONFIG.d_model,
        num_hidden_layers=CONFIG.n_layers, num_attention_heads=CONFIG.n_heads,
        intermediate_size=CONFIG.d_ff, max_position_embeddings=CONFIG.max_len,
        type_vocab_size=CONFIG.n_segments, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=CONFIG.layer_norm_eps,
        pad_token_id=CONFIG.pad_id, hidden_act="gelu",
        attn_implementation=attn_implementation)
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(hf_config).double().eval()
    state = {hf_name(name): p.detach() for name, p in params.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    # only the tied decoder (weight = word table, bias = cls.predictions.bias) is not loaded
    assert set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    return model


def batch(seed: int = 0):
    """input_ids (3, 9) with [CLS] A [SEP] B [SEP] and right padding, segments 0/1, the mask.
    Real tokens are never [PAD] (id 0)."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(LENGTHS), max(LENGTHS)
    input_ids = torch.randint(1, CONFIG.vocab_size, (B, T), generator=g)
    positions = torch.arange(T)[None, :]
    attention_mask = (positions < torch.tensor(LENGTHS)[:, None]).long()
    token_type_ids = ((positions >= torch.tensor(SEGMENT_A)[:, None]) & (attention_mask == 1))
    input_ids = input_ids.masked_fill(attention_mask == 0, CONFIG.pad_id)
    return input_ids, token_type_ids.long(), attention_mask


def labels_for(input_ids, attention_mask, seed: int = 1):
    """MLM labels: about a third of the real positions, -100 elsewhere; NSP labels (B,)."""
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(input_ids.shape, generator=g) < 0.35) & (attention_mask == 1)
    chosen[:, 1] = True  # at least one per row
    labels = torch.randint(0, CONFIG.vocab_size, input_ids.shape, generator=g)
    return labels.masked_fill(~chosen, -100), torch.tensor([0, 1, 1])


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The model against transformers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_forward_equals_transformers_bert_for_pretraining(attn_implementation):
    params = random_params()
    model = hf_model(params, attn_implementation)
    input_ids, token_type_ids, attention_mask = batch()
    mlm_logits, nsp_logits, out = bert.pretraining_logits(params, CONFIG, input_ids,
                                                          token_type_ids, attention_mask)
    eager = attn_implementation == "eager"
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         output_hidden_states=True, output_attentions=eager)
        pooled = model.bert(input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).pooler_output
    assert len(out.all_hidden_states) == len(expected.hidden_states) == CONFIG.n_layers + 1
    for i, (ours, theirs) in enumerate(zip(out.all_hidden_states, expected.hidden_states)):
        assert_close(ours, theirs, FLOAT64, f"hidden states {i} (0 = embeddings)")
    if eager:
        for i, (ours, theirs) in enumerate(zip(out.attentions, expected.attentions)):
            assert_close(ours, theirs, FLOAT64, f"attention probabilities of layer {i}")
    assert_close(out.pooled, pooled, FLOAT64, "pooled output")
    assert_close(mlm_logits, expected.prediction_logits, FLOAT64, "MLM logits")
    assert_close(nsp_logits, expected.seq_relationship_logits, FLOAT64, "NSP logits")
    # the comparison is not vacuous: padding and segments matter to the outputs
    other = bert.forward(params, CONFIG, input_ids, torch.zeros_like(token_type_ids),
                         attention_mask)
    assert (other.hidden_states - out.hidden_states).abs().max() > 1e-3
    assert out.attentions[0][1, :, :, LENGTHS[1]:].abs().max() == 0  # padding gets no weight


def test_pretraining_loss_and_every_gradient_equal_transformers():
    params = random_params(seed=3)
    model = hf_model(params)
    input_ids, token_type_ids, attention_mask = batch(seed=4)
    labels, next_sentence_label = labels_for(input_ids, attention_mask)
    mlm_logits, nsp_logits, _ = bert.pretraining_logits(params, CONFIG, input_ids,
                                                        token_type_ids, attention_mask)
    loss = bert.masked_lm_loss(mlm_logits, labels) + bert.next_sentence_loss(
        nsp_logits, next_sentence_label)
    loss.backward()
    expected = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                     labels=labels, next_sentence_label=next_sentence_label)
    expected.loss.backward()
    assert_close(loss, expected.loss, FLOAT64, "MLM + NSP loss")
    theirs = dict(model.named_parameters())
    for name, p in params.items():
        assert_close(p.grad, theirs[hf_name(name)].grad, FLOAT64, f"gradient of {name}")
        if ".attention.k.bias" in name:  # q.(k + b) shifts a query's scores by q.b: no change
            assert p.grad.abs().max() < 1e-12, "the key bias cannot change the softmax"
        else:
            assert p.grad.abs().max() > 1e-3, f"no gradient reaches {name}"


def test_real_positions_ignore_what_is_in_the_padding():
    params = random_params()
    input_ids, token_type_ids, attention_mask = batch()
    out = bert.forward(params, CONFIG, input_ids, token_type_ids, attention_mask)
    changed = input_ids.masked_fill(attention_mask == 0, 7)  # other tokens in the padding
    out2 = bert.forward(params, CONFIG, changed, token_type_ids, attention_mask)
    real = attention_mask.bool()
    assert_close(out2.hidden_states[real], out.hidden_states[real], FLOAT64, "real positions")
    assert_close(out2.pooled, out.pooled, FLOAT64, "pooled output")
    # without the mask, the padding would be read
    unmasked = bert.forward(params, CONFIG, input_ids, token_type_ids)
    assert (unmasked.hidden_states[real] - out.hidden_states[real]).abs().max() > 1e-3


def test_dropout_acts_only_when_training():
    config = bert.BertConfig(**{**vars(CONFIG), "dropout": 0.3, "attn_dropout": 0.3})
    params = random_params()
    input_ids, token_type_ids, attention_mask = batch()
    evaluation = bert.forward(params, config, input_ids, token_type_ids, attention_mask)
    no_dropout = bert.forward(params, CONFIG, input_ids, token_type_ids, attention_mask)
    assert_close(evaluation.hidden_states, no_dropout.hidden_states, FLOAT64, "eval mode")
    torch.manual_seed(0)
    trained = bert.forward(params, config, input_ids, token_type_ids, attention_mask,
                           training=True)
    assert (trained.hidden_states - evaluation.hidden_states).abs().max() > 1e-2
    assert (trained.attentions[0] == 0).sum() > (evaluation.attentions[0] == 0).sum()


def test_gelu_is_the_erf_form():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    assert_close(bert.gelu(x), nn.GELU()(x), FLOAT64, "GELU")
    assert (bert.gelu(x) - nn.GELU(approximate="tanh")(x)).abs().max() > 1e-4


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


def test_masked_lm_loss_equals_cross_entropy_with_ignore_index():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 11, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (4, 7), generator=g)
    labels[torch.rand(4, 7, generator=g) < 0.7] = -100
    ours = bert.masked_lm_loss(logits, labels)
    expected = nn.CrossEntropyLoss(ignore_index=-100)(logits.reshape(-1, 11), labels.reshape(-1))
    assert_close(ours, expected, FLOAT64, "MLM loss")
    grad, = torch.autograd.grad(ours, logits)
    expected_grad, = torch.autograd.grad(expected, logits)
    assert_close(grad, expected_grad, FLOAT64, "MLM loss gradient")
    assert int((labels != -100).sum()) < labels.numel() / 2  # the average is over few
    nothing = bert.masked_lm_loss(logits, torch.full_like(labels, -100))
    assert float(nothing.detach()) == 0.0  # 0, not torch's NaN


def test_next_sentence_loss_equals_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0, 1, 1])
    ours, expected = bert.next_sentence_loss(logits, labels), nn.CrossEntropyLoss()(logits, labels)
    assert_close(ours, expected, FLOAT64, "NSP loss")
    assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(expected, logits)[0],
                 FLOAT64, "NSP loss gradient")


# --------------------------------------------------------------------------------------
# The masking procedure (Section 3.1)
# --------------------------------------------------------------------------------------


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """count is within `sigmas` binomial standard deviations of n p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_mask_tokens_statistics():
    vocab_size, mask_id = 1000, 4
    g = torch.Generator().manual_seed(0)
    B, T = 300, 40
    input_ids = torch.randint(5, vocab_size, (B, T), generator=g)
    lengths = torch.randint(10, T + 1, (B,), generator=g)
    padding = torch.arange(T)[None, :] >= lengths[:, None]
    input_ids[:, 0] = 2  # [CLS]
    input_ids[torch.arange(B), lengths - 1] = 3  # [SEP]
    input_ids[padding] = 0  # [PAD]
    special = bert.special_tokens_mask(input_ids, (0, 2, 3))
    assert int(special.sum()) == 2 * B + int(padding.sum())
    inputs, labels = bert.mask_tokens(input_ids, special, vocab_size, mask_id,
                                      torch.Generator().manual_seed(1))
    chosen = labels != -100
    assert not (chosen & special).any(), "a special or padding token was chosen"
    assert torch.equal(labels[chosen], input_ids[chosen])
    assert torch.equal(inputs[~chosen], input_ids[~chosen]), "an unchosen token changed"
    eligible, n = int((~special).sum()), int(chosen.sum())
    assert _within(n, eligible, 0.15), f"{n} of {eligible} chosen, expected 15 %"
    became_mask = int((inputs[chosen] == mask_id).sum())
    kept = int((inputs[chosen] == input_ids[chosen]).sum())
    became_random = n - became_mask - kept
    # a random draw may hit [MASK] or the original token (probability 1 / vocab_size each)
    assert _within(became_mask, n, 0.8 + 0.1 / vocab_size), f"[MASK]: {became_mask} of {n}"
    assert _within(kept, n, 0.1 + 0.1 / vocab_size), f"unchanged: {kept} of {n}"
    assert _within(became_random, n, 0.1 * (1 - 2 / vocab_size)), f"random: {became_random}"
    assert len(set(inputs[chosen & (inputs != mask_id) & (inputs != input_ids)].tolist())) > 100
    # seeded: the same generator state gives the same masks, another seed other masks
    again = bert.mask_tokens(input_ids, special, vocab_size, mask_id,
                             torch.Generator().manual_seed(1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)
    other = bert.mask_tokens(input_ids, special, vocab_size, mask_id,
                             torch.Generator().manual_seed(2))
    assert not torch.equal(other[1], labels)
    half = bert.mask_tokens(input_ids, special, vocab_size, mask_id,
                            torch.Generator().manual_seed(3), p=0.5)[1]
    assert _within(int((half != -100).sum()), eligible, 0.5)


# --------------------------------------------------------------------------------------
# Initialisation, AdamW and the schedule
# --------------------------------------------------------------------------------------


def test_init_params_is_bert_initialisation_with_every_transformers_parameter():
    config = bert.BertConfig(vocab_size=400, d_model=64, n_layers=2, n_heads=4, d_ff=256,
                             max_len=64)
    params = bert.init_params(config, seed=0)
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertForPreTraining(transformers.BertConfig(
        vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=64))
    theirs = {n: p for n, p in hf.named_parameters()}  # tied parameters listed once
    assert sorted(hf_name(n) for n in params) == sorted(theirs)
    for name, p in params.items():
        assert p.shape == theirs[hf_name(name)].shape, name
        assert p.requires_grad and p.dtype == torch.float32 and p.is_leaf
        if "norm" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            assert abs(float(p.detach().mean())) < 0.003, name
            assert 0.018 < float(p.detach().std()) < 0.022, name
    again = bert.init_params(config, seed=0)
    assert all(torch.equal(params[n], again[n]) for n in params)
    assert not torch.equal(bert.init_params(config, seed=1)["embeddings.word.weight"],
                           params["embeddings.word.weight"])


def test_param_groups_exempt_biases_and_layer_norm_from_weight_decay():
    params = bert.init_params(CONFIG)
    decay, no_decay = bert.param_groups(params, weight_decay=0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    exempt = {"embeddings.norm.weight", "embeddings.norm.bias", "layers.0.norm1.weight",
              "layers.1.norm2.bias", "layers.0.attention.q.bias", "layers.1.ffn.down.bias",
              "pooler.dense.bias", "mlm_head.norm.weight", "mlm_head.bias", "nsp_head.bias"}
    decayed = {"embeddings.word.weight", "embeddings.position.weight",
               "embeddings.segment.weight", "layers.0.attention.q.weight",
               "layers.1.attention.out.weight", "layers.0.ffn.up.weight",
               "pooler.dense.weight", "mlm_head.dense.weight", "nsp_head.weight"}
    assert exempt <= set(no_decay["names"]) and decayed <= set(decay["names"])
    assert sorted(decay["names"] + no_decay["names"]) == sorted(params)
    for group in (decay, no_decay):
        assert all(params[n] is p for n, p in zip(group["names"], group["params"]))
    # per layer: 4 attention biases, ffn.up and ffn.down biases, norm1 and norm2 (2 each)
    assert len(no_decay["names"]) == 2 + 10 * CONFIG.n_layers + 6


def _no_decay(name: str) -> bool:
    """The test's own rule: biases and LayerNorm parameters are not decayed."""
    return name.endswith(".bias") or name == "mlm_head.bias" or re.search(r"norm\d?\.", name)


def test_adamw_and_schedule_equal_torch_adamw_with_two_groups_over_20_steps():
    ours, theirs = random_params(seed=5), random_params(seed=5)
    input_ids, token_type_ids, attention_mask = batch(seed=6)
    labels, next_sentence_label = labels_for(input_ids, attention_mask, seed=7)

    def loss_of(params):
        mlm_logits, nsp_logits, _ = bert.pretraining_logits(params, CONFIG, input_ids,
                                                            token_type_ids, attention_mask)
        return bert.masked_lm_loss(mlm_logits, labels) + bert.next_sentence_loss(
            nsp_logits, next_sentence_label)

    peak, warmup, total, decay = 0.02, 5, 20, 0.3
    groups = bert.param_groups(ours, weight_decay=decay)
    torch_groups = [{"params": [p for n, p in theirs.items() if not _no_decay(n)],
                     "weight_decay": decay},
                    {"params": [p for n, p in theirs.items() if _no_decay(n)],
                     "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(torch_groups, lr=peak, betas=(0.9, 0.999), eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: bert.linear_warmup_decay(step, 1.0, warmup, total))
    state = None
    for step in range(total):
        bert.zero_grad(ours.values())
        loss_of(ours).backward()
        state = bert.adamw_step(groups, bert.linear_warmup_decay(step, peak, warmup, total),
                                betas=(0.9, 0.999), eps=1e-6, state=state)
        optimizer.zero_grad()
        loss_of(theirs).backward()
        optimizer.step()
        schedule.step()
    start = random_params(seed=5)
    for name in ours:
        assert_close(ours[name], theirs[name], FLOAT64, f"{name} after {total} steps")
        if ".attention.k.bias" not in name:  # its gradient is 0 (see above)
            assert (ours[name] - start[name]).abs().max() > 1e-3, f"{name} did not move"
    assert state["t"] == total


def test_schedule_is_linear_warmup_then_linear_decay():
    peak, warmup, total = 1e-4, 10, 50
    values = [bert.linear_warmup_decay(s, peak, warmup, total) for s in range(total + 2)]
    assert values[0] == 0.0 and values[warmup] == pytest.approx(peak)
    assert values[5] == pytest.approx(peak / 2) and values[30] == pytest.approx(peak / 2)
    assert values[total] == 0.0 and values[total + 1] == 0.0
    transformers = pytest.importorskip("transformers")
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=peak)
    reference = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)
    for step in range(total + 2):
        assert values[step] == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12,
                                             abs=1e-18), step
        optimizer.step()
        reference.step()


# --------------------------------------------------------------------------------------
# The door, the corpus, the script
# --------------------------------------------------------------------------------------


def test_bad_inputs_are_refused_with_clear_messages():
    params = bert.init_params(CONFIG)
    input_ids, token_type_ids, attention_mask = batch()
    with pytest.raises(ValueError, match="divisible"):
        bert.BertConfig(vocab_size=10, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match=r"input_ids: expected integers in \[0, 53\)"):
        bert.forward(params, CONFIG, input_ids + 60)
    with pytest.raises(ValueError, match="max_len = 12"):
        bert.forward(params, CONFIG, torch.ones(1, CONFIG.max_len + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids: expected integers in \[0, 2\)"):
        bert.forward(params, CONFIG, input_ids, token_type_ids + 2)
    with pytest.raises(ValueError, match="attention_mask: expected"):
        bert.forward(params, CONFIG, input_ids, token_type_ids, attention_mask[:, :3])
    with pytest.raises(ValueError, match="at least one real token"):
        bert.forward(params, CONFIG, input_ids, token_type_ids, torch.zeros_like(input_ids))
    with pytest.raises(ValueError, match="input_ids: expected integers"):
        bert.forward(params, CONFIG, input_ids.double())
    with pytest.raises(ValueError, match="special_mask"):
        bert.mask_tokens(input_ids, attention_mask, 53, 4, torch.Generator())
    with pytest.raises(ValueError, match="must agree"):
        bert.masked_lm_loss(torch.zeros(3, 9, 53), torch.zeros(3, 8, dtype=torch.long))


NOUN_PRONOUN = {**{sg: corpus.PRONOUNS[gender, "sg"] for sg, _, gender in corpus.PEOPLE},
                **{pl: "they" for _, pl, _ in corpus.PEOPLE},
                **{sg: "it" for sg, _ in corpus.ANIMALS},
                **{pl: "they" for _, pl in corpus.ANIMALS}}


def test_corpus_pairs_are_laid_out_as_bert_inputs():
    pairs = corpus.make_pairs(400, seed=0)
    ids, types, mask = pairs.input_ids, pairs.token_type_ids, pairs.attention_mask
    assert (ids[:, 0] == corpus.CLS_ID).all() and ((ids == corpus.SEP_ID).sum(1) == 2).all()
    assert torch.equal(mask, (ids != corpus.PAD_ID).long())
    for row in range(len(pairs)):
        first_sep = int((ids[row] == corpus.SEP_ID).nonzero()[0])
        assert (types[row, :first_sep + 1] == 0).all() and (types[row, first_sep + 1:] ==
                                                              mask[row, first_sep + 1:]).all()
    assert 150 < int(pairs.next_sentence_label.sum()) < 250  # about half are random
    # a following B starts with the pronoun of A's subject; a random B often does not
    agree = []
    for row in range(len(pairs)):
        words = corpus.decode(ids[row]).split()
        subject = next(w for w in words[1:] if w in NOUN_PRONOUN)
        agree.append(words[words.index("[SEP]") + 1] == NOUN_PRONOUN[subject])
    agree = torch.tensor(agree)
    assert agree[pairs.next_sentence_label == 0].all()
    assert agree[pairs.next_sentence_label == 1].float().mean() < 0.6


def test_train_main_runs_and_the_loss_falls(tmp_path):
    train = import_lesson("08_BERT.pytorch_lowlevel.train")
    result = train.main(["--steps", "60", "--n-train", "256", "--n-test", "64",
                         "--batch-size", "32", "--d-model", "32", "--lr", "3e-3",
                         "--no-progress", "--out", str(tmp_path)])
    assert result["final_mlm_loss"] < result["first_mlm_loss"] - 0.5
    assert 0.0 <= result["masked_accuracy"] <= 1.0 and 0.0 <= result["nsp_accuracy"] <= 1.0
    assert (tmp_path / "loss.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--epochs", "3"])
    assert exit_info.value.code == 2
