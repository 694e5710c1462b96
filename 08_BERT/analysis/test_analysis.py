"""Tests of lesson 08's Level 4: what the reading of transformers' BERT claims.

Each test compares numbers on transformers' own classes built from tiny random configs (no
download): the guides' line numbers against the installed source, mean pooling against a
hand computation (and its indifference to padding), cosine similarity, attention maps
against softmax(Q K^T / sqrt(d) + mask) computed from the weights, the masks each attention
implementation receives, weight tying through save_pretrained / from_pretrained, parameter
counts by hand, and a token-classification head that must beat its majority baseline. The
``--checkpoint`` path is tested on a directory the test writes with ``save_pretrained``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from matplotlib.figure import Figure
from transformers import BertForPreTraining, BertModel
from transformers.masking_utils import AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

hfa = import_lesson("08_BERT.analysis.hf_analysis")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENTENCES = ("the cat sat on the mat .", "a dog", "stock markets fell .",
             "the cat sat on the mat .")


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


# --------------------------------------------------------------------------------------
# The guides' line numbers
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(transformers.__version__ != hfa.GUIDE_VERSION,
                    reason=f"the guides quote the line numbers of transformers {hfa.GUIDE_VERSION}"
                           f"; installed is {transformers.__version__}. Install the pinned version "
                           "(requirements.txt) to check them, or read the guides by name")
def test_every_quoted_line_holds_what_the_guides_say():
    locations = hfa.guide_locations()
    per_guide = {g: sum(loc.guide == g for loc in locations) for g in hfa.GUIDES}
    assert min(per_guide.values()) >= 50, per_guide  # both guides quote code, and are parsed
    assert hfa.check_guide_line_numbers() == []


def test_guide_file_names_resolve_in_models_bert(tmp_path):
    """Version-independent: a bare file name is looked up in models/bert/, then the package
    root; a path with a folder is relative to the package, and the check reports through
    it. The check's rules are tested in utils/tests/test_guides.py."""
    root = hfa.transformers_root()
    assert hfa.resolve_source("modeling_bert.py") == root / "models" / "bert" / "modeling_bert.py"
    assert hfa.resolve_source("masking_utils.py") == root / "masking_utils.py"
    assert hfa.resolve_source("models/auto/modeling_auto.py") == \
        root / "models" / "auto" / "modeling_auto.py"
    assert hfa.resolve_source("no_such_file.py") is None
    source = hfa.resolve_source("modeling_bert.py").read_text().splitlines()
    good = next(i for i, line in enumerate(source, 1) if line.startswith("class BertEmbeddings"))
    guide = tmp_path / "guide.md"
    guide.write_text(f"`BertEmbeddings` `modeling_bert.py:{good}`, but `BertPooler` "
                     f"`modeling_bert.py:{good}`.\n\n`nothing` `no_such_file.py:3`")
    problems = [p for p in hfa.check_guide_line_numbers([guide]) if p.startswith("guide.md")]
    assert len(hfa.guide_locations([guide])) == 3
    assert problems == [f"guide.md:1: `modeling_bert.py:{good}`: should hold `BertPooler`, but "
                        f"the line reads {source[good - 1].strip()!r}",
                        f"guide.md:3: `no_such_file.py:3`: no file no_such_file.py in {root}"]


# --------------------------------------------------------------------------------------
# 1. Mean pooling and cosine similarity
# --------------------------------------------------------------------------------------


def test_mean_pooling_equals_a_hand_computation_and_ignores_padding():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    expected = torch.stack([hidden[b, : int(mask[b].sum())].mean(0) for b in range(3)])
    assert_close(hfa.MeanPooling()(hidden, mask), expected, FLOAT64, name="mean pooling")
    garbage = hidden.clone()
    garbage[mask == 0] = float("inf")  # even non-finite vectors at padded positions
    assert torch.equal(hfa.MeanPooling()(garbage, mask), hfa.MeanPooling()(hidden, mask))
    with pytest.raises(ValueError):
        hfa.MeanPooling()(hidden, mask[:, :4])


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_changing_padded_tokens_does_not_change_the_sentence_embedding(implementation):
    """Through a whole BertModel (float64): the padded tokens' ids, whatever they are, leave
    the real tokens' vectors and so the mean-pooled embedding unchanged."""
    torch.manual_seed(0)
    model = BertModel(hfa.tiny_config(40, implementation)).double().eval()
    ids, mask, segments = hfa.padded_batch(40)
    other = ids.masked_fill(mask == 0, 17)  # different tokens at the padded positions
    pool = hfa.MeanPooling()
    with torch.no_grad():
        a = pool(model(ids, attention_mask=mask, token_type_ids=segments).last_hidden_state, mask)
        b = pool(model(other, attention_mask=mask, token_type_ids=segments).last_hidden_state, mask)
        # without the mask the padded tokens take part, and the embedding changes
        c = pool(model(other, token_type_ids=segments).last_hidden_state, mask)
    assert_close(a, b, FLOAT64, name="embedding with other padded tokens")
    assert float((a[1] - c[1]).abs().max()) > 1e-3


def test_cosine_similarity_of_identical_sentences_is_one():
    model, tokenizer = hfa.toy_model_and_tokenizer(SENTENCES)
    mean, cls = hfa.sentence_embeddings(model, tokenizer, SENTENCES)
    sim = hfa.cosine_similarity_matrix(mean)
    assert mean.shape == cls.shape == (4, model.config.hidden_size)
    assert abs(float(sim[0, 3]) - 1.0) < 1e-6 and abs(float(sim[0, 1]) - 1.0) > 1e-4
    assert_close(sim.diagonal(), torch.ones(4), FLOAT32, name="self-similarity")
    assert_close(sim, sim.T, FLOAT32, name="symmetry")
    assert_close(sim[1, 2], F.cosine_similarity(mean[1], mean[2], dim=0), FLOAT32)
    # alone, unpadded, the first sentence has the same embedding as inside the padded batch
    alone, _ = hfa.sentence_embeddings(model, tokenizer, SENTENCES[1:2])
    assert_close(alone[0], mean[1], FLOAT32, name="embedding without padding")


# --------------------------------------------------------------------------------------
# 2. Attention maps
# --------------------------------------------------------------------------------------


def hand_attention_layer0(model: BertModel, ids, mask, segments) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + additive mask) of layer 0, from the weights: (B, A, T, T)."""
    config = model.config
    heads, d = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    x = model.embeddings(input_ids=ids, token_type_ids=segments)  # (B, T, H)
    attn = model.encoder.layer[0].attention.self
    split = lambda t: t.view(*t.shape[:2], heads, d).transpose(1, 2)  # (B, T, H) -> (B, A, T, d)
    scores = split(attn.query(x)) @ split(attn.key(x)).transpose(-1, -2) / math.sqrt(d)
    return torch.softmax(scores + hfa.additive_mask_by_hand(mask, scores.dtype), dim=-1)


def test_attention_maps_are_layers_by_heads_and_respect_the_mask():
    torch.manual_seed(0)
    model = BertModel(hfa.tiny_config(40, "sdpa")).double().eval()
    with torch.no_grad():  # random weights of size 0.02 attend uniformly: make scores larger
        for layer in model.encoder.layer:
            layer.attention.self.query.weight.mul_(40.0)
    ids, mask, segments = hfa.padded_batch(40)
    maps = hfa.attention_maps(model, ids, mask, segments)  # (B, L, A, T, T)
    config = model.config
    assert maps.shape == (2, config.num_hidden_layers, config.num_attention_heads, 7, 7)
    assert model.config._attn_implementation == "sdpa"  # switched to eager and back
    assert_close(maps.sum(-1), torch.ones(maps.shape[:-1], dtype=maps.dtype), FLOAT64,
                 name="rows sum to 1")
    assert torch.all(maps[1, ..., 4:] == 0.0)  # padded keys get exactly zero weight
    assert maps[0].min() > 0 and float(maps.amax()) > 0.5  # not uniform: real patterns
    with torch.no_grad():
        expected = hand_attention_layer0(model, ids, mask, segments)
    assert_close(maps[:, 0], expected, FLOAT64, name="layer 0 vs softmax(QK^T/sqrt(d)+mask)")
    # the real tokens' maps do not depend on the padding
    alone = hfa.attention_maps(model, ids[1:, :4], mask[1:, :4], segments[1:, :4])
    assert_close(maps[1:, ..., :4, :4], alone, FLOAT64, name="maps without padding")


def test_sentence_attention_grid_has_one_panel_per_layer_and_head(tmp_path):
    model, tokenizer = hfa.toy_model_and_tokenizer(SENTENCES)
    maps, tokens = hfa.sentence_attention(model, tokenizer, SENTENCES[0])
    config = model.config
    assert maps.shape == (config.num_hidden_layers, config.num_attention_heads,
                          len(tokens), len(tokens))
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "cat" in tokens
    fig = hfa.plot_attention_grid(maps, tokens, tmp_path / "grid.png")
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert isinstance(fig, Figure) and len(panels) == maps.shape[0] * maps.shape[1]
    assert_close(torch.as_tensor(panels[5].images[0].get_array()), maps[1, 1], FLOAT32)
    assert (tmp_path / "grid.png").stat().st_size > 1000
    with pytest.raises(ValueError):
        hfa.plot_attention_grid(maps[0], tokens)
    with pytest.raises(ValueError):
        hfa.plot_attention_grid(maps, tokens[:-1])


# --------------------------------------------------------------------------------------
# 3. A token-classification head
# --------------------------------------------------------------------------------------


def test_generated_tagging_batches_have_the_right_labels():
    vocab = hfa.toy_task_vocabulary()
    g = torch.Generator().manual_seed(0)
    ids, mask, labels = hfa.make_tagging_batch("repeat", vocab, 32, 10, g)
    assert ids.shape == mask.shape == labels.shape == (32, 12)
    for b in range(32):
        n = int(mask[b].sum())
        assert ids[b, 0] == vocab.cls_id and ids[b, n - 1] == vocab.sep_id
        assert torch.all(ids[b, n:] == vocab.pad_id) and torch.all(labels[b, n:] == -100)
        assert labels[b, 0] == -100 and labels[b, n - 1] == -100
        words = ids[b, 1 : n - 1].tolist()
        assert labels[b, 1 : n - 1].tolist() == [int(w in words[:t]) for t, w in enumerate(words)]
    ids, mask, labels = hfa.make_tagging_batch("digits", vocab, 32, 10, g)
    kept = labels != -100
    assert torch.equal(torch.isin(ids[kept], vocab.digit_ids).long(), labels[kept])
    assert hfa.majority_baseline(torch.tensor([[-100, 1, 0, 0, 0, -100]])) == 0.75
    with pytest.raises(ValueError):
        hfa.make_tagging_batch("nouns", vocab, 2, 10, g)


def test_token_tagger_is_bert_for_token_classification():
    """Same parameter names: the state dict loads strictly and the logits agree."""
    torch.manual_seed(0)
    tagger = hfa.BertTokenTagger(BertModel(hfa.tiny_config(40), add_pooling_layer=False), 3)
    reference = hfa.as_bert_for_token_classification(tagger).eval()
    ids, mask, segments = hfa.padded_batch(40)
    labels = torch.randint(0, 3, ids.shape).masked_fill(mask == 0, -100)
    tagger.eval()
    with torch.no_grad():
        ours = tagger(ids, attention_mask=mask, token_type_ids=segments, labels=labels)
        theirs = reference(ids, attention_mask=mask, token_type_ids=segments, labels=labels)
    assert_close(ours.logits, theirs.logits, FLOAT32, name="logits")
    assert_close(ours.loss, theirs.loss, FLOAT32, name="loss")
    with pytest.raises(TypeError):
        hfa.BertTokenTagger(torch.nn.Linear(2, 2), 2)


def test_token_tagger_trains_to_beat_its_majority_baseline():
    vocab = hfa.toy_task_vocabulary()
    torch.manual_seed(0)
    bert = BertModel(hfa.tagger_config(vocab.vocab_size), add_pooling_layer=False)
    tagger = hfa.BertTokenTagger(bert, 2, dropout=0.0)
    before = [p.detach().clone() for p in bert.parameters()]
    r = hfa.train_tagger(tagger, "digits", vocab, steps=60, batch_size=32, lr=1e-3,
                         eval_every=20, stop_accuracy=0.99, eval_size=256)
    assert r["accuracy"] >= r["baseline"] + 0.2, r  # baseline about 0.6
    assert r["last_loss"] < 0.5 * r["first_loss"]
    assert any(not torch.equal(a, b) for a, b in zip(before, bert.parameters()))  # fine-tuned
    assert not tagger.training  # left in eval mode


# --------------------------------------------------------------------------------------
# 0. The reading's claims
# --------------------------------------------------------------------------------------


def test_each_attention_implementation_gets_its_own_mask():
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    forms = hfa.mask_forms(mask)
    by_hand = hfa.additive_mask_by_hand(mask)  # (B, 1, 1, T)
    assert by_hand.shape == (2, 1, 1, 4)
    assert forms["eager"].dtype == torch.float32 and forms["eager"].shape == (2, 1, 4, 4)
    assert torch.equal(forms["eager"], by_hand.expand(2, 1, 4, 4))
    assert forms["sdpa"].dtype == torch.bool
    assert torch.equal(forms["sdpa"], mask.bool()[:, None, None, :].expand(2, 1, 4, 4))
    assert torch.equal(forms["flash_attention_2"], mask.bool())
    assert all(form is None for form in hfa.mask_forms(torch.ones_like(mask)).values())


def test_eager_and_sdpa_compute_the_same_function():
    r = hfa.implementation_differences()
    assert r["sdpa_vs_eager"] < 1e-12 and r["sdpa_attentions"] == 0


def test_a_registered_attention_function_needs_a_mask_function():
    r = hfa.registered_attention_needs_a_mask_function()
    assert r["without_mask_function"] > 1e-3 and r["with_mask_function"] == 0.0
    assert "l4_copy_of_eager" not in ALL_ATTENTION_FUNCTIONS  # registrations removed
    assert "l4_copy_of_eager" not in AttentionMaskInterface._global_mapping


def test_decoder_is_tied_and_saved_once(tmp_path):
    r = hfa.tying_and_saving(tmp_path)
    assert r["tied"] and r["tied_bias"] and r["untied_when_config_says_so"]
    assert r["files"] == ["config.json", "model.safetensors"]
    assert not r["decoder_key_saved"] and r["reloaded_tied"]
    assert r["reload_diff"] == 0.0 and r["base_from_head_diff"] == 0.0


def test_parameter_counts_match_the_paper_and_the_hand_count():
    r = hfa.parameter_counts()
    assert r["base"] == r["base_by_hand"] == 109_482_240  # the paper's "110M"
    assert r["large"] == r["large_by_hand"] == 335_141_888  # the paper's "340M"
    torch.manual_seed(0)
    tiny = hfa.tiny_config(40)
    count = sum(p.numel() for p in BertModel(tiny).parameters())
    assert count == hfa.bert_parameter_count(40, 32, 2, 64, max_len=64)


# --------------------------------------------------------------------------------------
# The script, offline and on a checkpoint directory
# --------------------------------------------------------------------------------------


def test_script_runs_every_part_offline(tmp_path):
    r = hfa.main(["--dataset", "digits", "--steps", "40", "--batch-size", "32",
                  "--out", str(tmp_path), "--no-progress"])
    assert r["guide_problems"] == [] or transformers.__version__ != hfa.GUIDE_VERSION
    assert r["eager_mask_equals_hand"] and r["sdpa_vs_eager"] < 1e-12
    assert r["params_base"] == 109_482_240 and r["tying_tied"]
    assert len(r["similarity"]) == len(hfa.DEFAULT_SENTENCES)
    assert abs(r["similarity"][0][3] - 1.0) < 1e-6  # sentences 0 and 3 are the same
    assert r["attention_shape"] == (2, 4, 9, 9)  # [CLS] the cat sat on the mat . [SEP]
    assert r["tagger_accuracy"] > r["tagger_baseline"] + 0.2
    for name in ("attention_grid.png", "attention_grid_tagger.png", "tagger_curves.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_script_runs_on_a_checkpoint_directory(tmp_path):
    """A directory in transformers' layout, as save_pretrained writes it: a pre-training
    checkpoint (keys bert.*, heads present) and a tokenizer with a vocab.txt."""
    checkpoint = tmp_path / "bert"
    tokenizer = hfa.toy_tokenizer(SENTENCES + ("seven words of one more sentence here",))
    torch.manual_seed(1)
    source = BertForPreTraining(hfa.tiny_config(len(tokenizer.get_vocab()), "sdpa"))
    source.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (checkpoint / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    model, loaded = hfa.load_checkpoint(checkpoint)
    assert model.config._attn_implementation == "eager" and not model.training
    assert torch.equal(model.embeddings.word_embeddings.weight,
                       source.bert.embeddings.word_embeddings.weight)  # "bert." stripped
    assert loaded("the cat")["input_ids"] == tokenizer("the cat")["input_ids"]
    r = hfa.main(["--checkpoint", str(checkpoint), "--skip-claims", "--dataset", "digits",
                  "--steps", "30", "--batch-size", "32", "--lr", "1e-3",
                  "--sentences", "the cat sat", "the cat sat", "a dog",
                  "--out", str(tmp_path / "out"), "--no-progress"])
    assert "guide_problems" not in r  # --skip-claims
    assert abs(r["similarity"][0][1] - 1.0) < 1e-6
    assert r["attention_shape"] == (2, 4, 5, 5) and r["tagger_steps"] <= 30


def test_checkpoint_errors_are_clear(tmp_path, capsys):
    with pytest.raises(hfa.CheckpointError, match="does not exist"):
        hfa.check_checkpoint_dir(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(hfa.CheckpointError, match="model.safetensors or pytorch_model.bin; "
                                                   "vocab.txt or tokenizer.json"):
        hfa.check_checkpoint_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(hfa.CheckpointError, match="type 'gpt2'; this script reads BERT"):
        hfa.check_checkpoint_dir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        hfa.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--max-len", "3"), ("--steps", "0"),
                                           ("--stop-accuracy", "1.5"), ("--dataset", "nouns")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        hfa.main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_epochs_is_refused_because_the_script_counts_steps(tmp_path, capsys):
    with pytest.raises(SystemExit):
        hfa.main(["--epochs", "3", "--out", str(tmp_path)])
    assert "use --steps" in capsys.readouterr().err
