"""Tests of lesson 09's Level 4: what the reading of transformers' GPT-2 claims.

Each test compares numbers on transformers' own classes built from tiny random configs (no
download): the guide's line numbers against the installed source; a banning logits
processor through generate (banned tokens never appear, greedy is otherwise unchanged);
attention maps against softmax(Q K^T / sqrt(d) + causal mask) computed from the weights; a
last-token classification head against GPT2ForSequenceClassification (token choice and
logits, right and left padding); LoRA by hand against peft's (outputs and gradients), its
fine-tuning with a frozen base, and merging; the claims about Conv1D, tying, the shifted
loss, the cache, left-padded generation, the processors' order and the model's size. The
``--checkpoint`` path is tested on a directory the test writes with ``save_pretrained``.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2LMHeadModel, GPT2Model

from utils import import_lesson
from utils.testing import FLOAT32, FLOAT64, assert_close, assert_level_purity

hfa = import_lesson("09_GPT.analysis.hf_analysis")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_level_purity():
    assert_level_purity(Path(__file__).parent)


def toy64(seed: int = 0, scale: float = 1.0, **overrides) -> GPT2LMHeadModel:
    """A float64 tiny model; ``scale`` multiplies every weight matrix, so that attention and
    the logits are far from uniform (random weights of size 0.02 barely prefer anything)."""
    model = hfa.toy_model(seed, **overrides).double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2 and "wpe" not in name:
                param.mul_(scale)
    return model


def encode(*texts: str) -> list[list[int]]:
    tokenizer = hfa.CharTokenizer()
    return [tokenizer.encode(t) for t in texts]


# --------------------------------------------------------------------------------------
# The guide's line numbers
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(transformers.__version__ != hfa.GUIDE_VERSION,
                    reason=f"the guide quotes the line numbers of transformers {hfa.GUIDE_VERSION}"
                           f"; installed is {transformers.__version__}. Install the pinned version "
                           "(requirements.txt) to check them, or read the guide by name")
def test_every_quoted_line_holds_what_the_guide_says():
    assert len(hfa.guide_locations()) >= 80  # the guide quotes code, and is parsed
    assert hfa.check_guide_line_numbers() == []


def test_guide_file_names_resolve_in_models_gpt2(tmp_path):
    """Version-independent: a bare file name is looked up in models/gpt2/, then the package
    root; a path with a folder is relative to the package, and the check reports through
    it. The check's rules are tested in utils/tests/test_guides.py."""
    root = hfa.transformers_root()
    assert hfa.resolve_source("modeling_gpt2.py") == root / "models" / "gpt2" / "modeling_gpt2.py"
    assert hfa.resolve_source("masking_utils.py") == root / "masking_utils.py"
    assert hfa.resolve_source("generation/utils.py") == root / "generation" / "utils.py"
    assert hfa.resolve_source("no_such_file.py") is None
    source = hfa.resolve_source("modeling_gpt2.py").read_text().splitlines()
    good = next(i for i, line in enumerate(source, 1) if line.startswith("class GPT2Block"))
    guide = tmp_path / "guide.md"
    guide.write_text(f"`GPT2Block` `modeling_gpt2.py:{good}`, but `GPT2Model` "
                     f"`modeling_gpt2.py:{good}`.\n\n`nothing` `no_such_file.py:3`")
    problems = [p for p in hfa.check_guide_line_numbers([guide]) if p.startswith("guide.md")]
    assert len(hfa.guide_locations([guide])) == 3
    assert problems == [f"guide.md:1: `modeling_gpt2.py:{good}`: should hold `GPT2Model`, but "
                        f"the line reads {source[good - 1].strip()!r}",
                        f"guide.md:3: `no_such_file.py:3`: no file no_such_file.py in {root}"]


# --------------------------------------------------------------------------------------
# 1. A custom logits processor through generate
# --------------------------------------------------------------------------------------


def test_ban_processor_sets_only_the_banned_scores_to_minus_infinity():
    scores = torch.randn(2, 7)
    out = hfa.BanTokensLogitsProcessor([5, 1, 5])(torch.zeros(2, 3, dtype=torch.long), scores)
    assert torch.all(out[:, [1, 5]] == float("-inf"))
    keep = [0, 2, 3, 4, 6]
    assert torch.equal(out[:, keep], scores[:, keep])
    assert torch.equal(hfa.BanTokensLogitsProcessor([])(None, scores), scores)
    with pytest.raises(ValueError):
        hfa.BanTokensLogitsProcessor([-1])


def test_banned_tokens_are_never_generated_and_greedy_is_otherwise_unchanged():
    model = toy64(scale=8.0)
    prompts = torch.tensor(encode("the cat", "a dog s"))
    new = 10
    plain = hfa.generate_banning(model, prompts, [], new)
    assert torch.equal(plain, hfa.greedy_by_hand(model, prompts, new))  # generate = argmax loop
    banned = list(dict.fromkeys(plain[:, prompts.shape[1]:].flatten().tolist()))[:3]
    constrained = hfa.generate_banning(model, prompts, banned, new)
    assert not torch.isin(constrained[:, prompts.shape[1]:], torch.tensor(banned)).any()
    assert not torch.equal(constrained, plain)  # the ban changed something
    assert torch.equal(constrained, hfa.greedy_by_hand(model, prompts, new, banned))
    # transformers' own SuppressTokensLogitsProcessor gives the same tokens
    suppressed = model.generate(prompts, max_new_tokens=new, do_sample=False,
                                suppress_tokens=banned, pad_token_id=hfa.PAD_ID)
    assert torch.equal(constrained, suppressed)
    # banning tokens that greedy never picks changes nothing
    unused = sorted(set(range(len(hfa.TOY_VOCAB))) - set(plain.flatten().tolist()))[:5]
    assert torch.equal(hfa.generate_banning(model, prompts, unused, new), plain)


def test_banned_tokens_are_never_sampled_either():
    model = toy64(scale=8.0)
    prompts = torch.tensor(encode("the cat") * 4)
    plain = hfa.generate_banning(model, prompts, [], 8)
    banned = list(dict.fromkeys(plain[0, 7:].tolist()))[:2]  # the most likely tokens
    torch.manual_seed(0)
    sampled = hfa.generate_banning(model, prompts, banned, 12, do_sample=True, top_k=5,
                                   temperature=1.5)
    assert not torch.isin(sampled[:, 7:], torch.tensor(banned)).any()
    torch.manual_seed(0)
    unbanned = model.generate(prompts, max_new_tokens=12, do_sample=True, top_k=5,
                              temperature=1.5, pad_token_id=hfa.PAD_ID)
    assert torch.isin(unbanned[:, 7:], torch.tensor(banned)).any()  # they would be sampled


# --------------------------------------------------------------------------------------
# 2. Attention maps
# --------------------------------------------------------------------------------------


def hand_attention(model: GPT2LMHeadModel, ids, mask) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + causal and padding mask) of every layer, computed from the
    weights and each block's input: (B, L, A, T, T)."""
    config = model.config
    heads, d = config.n_head, config.n_embd // config.n_head
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    length = ids.shape[1]
    allowed = torch.ones(length, length).tril().bool() & mask.bool()[:, None, None, :]
    maps = []
    for block, x in zip(model.transformer.h, out.hidden_states):  # x: the block's input
        with torch.no_grad():
            q, k, _ = block.attn.c_attn(block.ln_1(x)).split(config.n_embd, dim=2)
        split = lambda t: t.view(*t.shape[:2], heads, d).transpose(1, 2)  # noqa: E731 (B, A, T, d)
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d)  # (B, A, T, T)
        maps.append(torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1))
    return torch.stack(maps, dim=1)


def test_attention_maps_equal_softmax_of_scaled_scores_with_a_causal_mask():
    model = toy64(scale=6.0, attn_implementation="sdpa")
    ids, mask = hfa.pad_batch(encode("the cat sat", "a dog"))  # right padding
    maps = hfa.attention_maps(model, ids, mask)  # (B, L, A, T, T)
    config = model.config
    assert maps.shape == (2, config.n_layer, config.n_head, 11, 11)
    assert model.config._attn_implementation == "sdpa"  # switched to eager and back
    assert torch.all(maps.triu(1) == 0.0)  # the causal mask: no weight on the future
    assert torch.all(maps[1, ..., 5:] == 0.0)  # nor on padded keys
    assert_close(maps.sum(-1), torch.ones(maps.shape[:-1], dtype=maps.dtype), FLOAT64,
                 name="rows sum to 1")
    assert float(maps.amax()) > 0.9 and float(maps[0, :, :, -1].amax()) < 0.99  # real patterns
    assert_close(maps, hand_attention(model, ids, mask), FLOAT64,
                 name="maps vs softmax(QK^T/sqrt(d) + causal mask)")


def test_prompt_attention_grid_has_one_panel_per_layer_and_head(tmp_path):
    model = hfa.toy_model()
    maps, tokens = hfa.prompt_attention(model, hfa.CharTokenizer(), "the cat")
    assert maps.shape == (2, 4, 7, 7) and tokens == list("the cat")
    fig = hfa.plot_attention_grid(maps, tokens, tmp_path / "grid.png")
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(panels) == 8
    assert_close(torch.as_tensor(panels[5].images[0].get_array()), maps[1, 1], FLOAT32)
    assert (tmp_path / "grid.png").stat().st_size > 1000
    with pytest.raises(ValueError):
        hfa.prompt_attention(model, hfa.CharTokenizer(), "")


# --------------------------------------------------------------------------------------
# 3. A last-token classification head
# --------------------------------------------------------------------------------------


def test_last_token_index_and_positions_for_right_and_left_padding():
    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    left = right.flip(-1)
    assert hfa.last_token_index(right).tolist() == [3, 1, 0]
    assert hfa.last_token_index(left).tolist() == [3, 3, 3]
    assert hfa.positions_from_mask(left).tolist() == [[0, 1, 2, 3], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert hfa.positions_from_mask(right)[1].tolist() == [0, 1, 1, 1]
    ids, mask = hfa.pad_batch([[5, 6, 7], [8]], side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def head_and_reference(seed: int = 0, scale: float = 4.0):
    torch.manual_seed(seed)
    head = hfa.LastTokenClassifier(toy64(seed, scale).transformer, num_labels=3).eval()
    return head, hfa.as_gpt2_for_sequence_classification(head)


def test_head_equals_gpt2_for_sequence_classification_with_right_padding():
    head, reference = head_and_reference()
    ids, mask = hfa.pad_batch(encode("the cat sat on", "a dog", "ab"))
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        ours = head(ids, attention_mask=mask, labels=labels)
        theirs = reference(ids, attention_mask=mask, labels=labels)
    assert hfa.last_token_index(mask).tolist() == hfa.hf_last_token_index(ids, 0).tolist()
    assert_close(ours.logits, theirs.logits, FLOAT64, name="logits, right padding")
    assert_close(ours.loss, theirs.loss, FLOAT64, name="loss")
    with pytest.raises(TypeError):
        hfa.LastTokenClassifier(torch.nn.Linear(2, 2), 2)


def test_left_padding_same_token_and_logits_once_positions_skip_the_padding():
    head, reference = head_and_reference()
    texts = encode("the cat sat on", "a dog")
    ids, mask = hfa.pad_batch(texts, side="left")
    positions = hfa.positions_from_mask(mask)
    with torch.no_grad():
        ours = head(ids, attention_mask=mask).logits
        theirs = reference(ids, attention_mask=mask, position_ids=positions).logits
        theirs_default = reference(ids, attention_mask=mask).logits  # positions 0..T-1
        alone = head(torch.tensor(texts[1:])).logits
        alone_theirs = reference(torch.tensor(texts[1:])).logits  # positions 0..T-1
    assert hfa.hf_last_token_index(ids, 0).tolist() == [13, 13]
    assert_close(ours, theirs, FLOAT64, name="logits, left padding, same positions")
    assert_close(ours[1], alone[0], FLOAT64, name="left-padded vs alone")
    assert_close(alone, alone_theirs, FLOAT64, name="unpadded: positions 0..T-1")
    assert float((theirs_default[1] - alone[0]).abs().max()) > 1e-3  # shifted positions


def test_gpt2_for_sequence_classification_reads_the_pad_id_not_the_mask():
    """When the padding id also ends a real sequence (GPT-2 pads with its end-of-text token),
    transformers' head takes the token before it; ours, reading the mask, does not."""
    head, reference = head_and_reference()
    eos = 28  # "," plays GPT-2's <|endoftext|>: pad id and a real last token
    reference.config.pad_token_id = eos
    ids, mask = hfa.pad_batch([encode("the cat")[0] + [eos], encode("a dog")[0]], pad_id=eos)
    with torch.no_grad():
        hidden = head.transformer(ids, attention_mask=mask).last_hidden_state
        theirs = reference(ids, attention_mask=mask).logits
        ours = head(ids, attention_mask=mask).logits
    hf_index = hfa.hf_last_token_index(ids, eos)
    assert hf_index.tolist() == [6, 4] and hfa.last_token_index(mask).tolist() == [7, 4]
    assert_close(theirs, head.score(hidden[torch.arange(2), hf_index]), FLOAT64,
                 name="transformers' choice of token")
    assert_close(ours[1], theirs[1], FLOAT64, name="the row without the clash")
    assert float((ours[0] - theirs[0]).abs().max()) > 1e-3


# --------------------------------------------------------------------------------------
# 4. LoRA
# --------------------------------------------------------------------------------------


def test_lora_layer_starts_as_the_base_and_merges_into_it():
    torch.manual_seed(0)
    base = hfa.Conv1D(12, 8).double()
    lora = hfa.LoRAConv1D(base, rank=2, alpha=4.0)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    assert lora.lora_A.shape == (2, 8) and lora.lora_B.shape == (12, 2)
    assert not base.weight.requires_grad and lora.lora_A.requires_grad
    assert torch.equal(lora(x), base(x))  # B = 0: the model is unchanged at the start
    with torch.no_grad():
        lora.lora_B.normal_()
        expected = x @ base.weight + base.bias + 2.0 * x @ lora.lora_A.T @ lora.lora_B.T
    assert_close(lora(x), expected, FLOAT64, name="W x + b + (alpha/r) B A x")
    assert_close(lora.merge()(x), lora(x), FLOAT64, name="merged")
    bound = 1 / math.sqrt(8)  # He-uniform with a = sqrt(5): U(-1/sqrt(d_in), 1/sqrt(d_in))
    assert float(lora.lora_A.detach().abs().max()) <= bound
    gaussian = hfa.LoRAConv1D(hfa.Conv1D(600, 400), rank=4, alpha=4.0, init="gaussian")
    assert abs(float(gaussian.lora_A.detach().std()) - 0.25) < 0.01  # std 1 / r
    with pytest.raises(ValueError):
        hfa.LoRAConv1D(base, rank=0, alpha=1.0)


def test_lora_dropout_acts_in_training_only():
    torch.manual_seed(0)
    lora = hfa.LoRAConv1D(hfa.Conv1D(6, 4).double(), rank=2, alpha=2.0, dropout=0.5)
    with torch.no_grad():
        lora.lora_B.normal_()
    x = torch.randn(4, 4, dtype=torch.float64)
    clean = lora.base(x) + x @ lora.lora_A.T @ lora.lora_B.T
    assert_close(lora.eval()(x), clean, FLOAT64, name="eval: no dropout")
    lora.train()
    assert not torch.equal(lora(x), lora(x))


@pytest.mark.parametrize("targets", [("c_attn",), ("c_attn", "c_proj")])
def test_lora_equals_peft_forward_and_gradients(targets):
    base = toy64(scale=2.0)
    ours = copy.deepcopy(base)
    torch.manual_seed(1)
    wrapped = hfa.add_lora(ours, rank=3, alpha=6.0, targets=targets)
    assert len(wrapped) == 2 * len(targets) and "transformer.h.0.mlp.c_proj" not in wrapped
    with torch.no_grad():
        for lora in wrapped.values():
            lora.lora_B.normal_()  # B != 0, so that LoRA changes the function
    twin = hfa.as_peft_model(base, wrapped)
    ids, mask = hfa.pad_batch(encode("the cat sat", "a dog"))
    labels = ids.masked_fill(mask == 0, -100)
    out, theirs = ours(ids, attention_mask=mask), twin(input_ids=ids, attention_mask=mask)
    assert_close(out.logits, theirs.logits, FLOAT64, name="logits vs peft")
    for model in (ours, twin):
        logits = model(input_ids=ids, attention_mask=mask).logits
        F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten()).backward()
    peft_params = dict(twin.named_parameters())
    for name, lora in wrapped.items():
        prefix = f"base_model.model.{name}"
        assert_close(lora.lora_A.grad, peft_params[f"{prefix}.lora_A.default.weight"].grad,
                     FLOAT64, name=f"{name} grad A")
        assert_close(lora.lora_B.grad, peft_params[f"{prefix}.lora_B.default.weight"].grad,
                     FLOAT64, name=f"{name} grad B")
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable == set(hfa.lora_parameters(ours))  # everything else frozen
    assert all(p.grad is None for n, p in ours.named_parameters() if n not in trainable)
    peft_trainable = {n for n, p in twin.named_parameters() if p.requires_grad}
    assert len(peft_trainable) == len(trainable)
    with pytest.raises(ValueError):
        hfa.add_lora(copy.deepcopy(base), targets=("c_fc",))


def test_lora_fine_tuning_trains_only_lora_and_the_head_then_merges():
    torch.manual_seed(0)
    head = hfa.LastTokenClassifier(GPT2Model(hfa.tiny_config()), num_labels=2)
    wrapped = hfa.add_lora(head.transformer, rank=4, alpha=8.0)
    head.score.weight.requires_grad_(True)
    frozen = {n: p.detach().clone() for n, p in head.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in hfa.lora_parameters(head).items()}
    words, trigger = hfa.task_ids(len(hfa.TOY_VOCAB))
    r = hfa.train_lora_classifier(head, words, trigger, steps=60, batch_size=32, lr=1e-2,
                                  eval_every=30, eval_size=256)
    assert r["last_loss"] < 0.5 * r["first_loss"] and r["accuracy"] >= r["baseline"] + 0.2, r
    assert r["trainable"] == 2 * 4 * (32 + 96) + 2 * 32  # A, B per layer + the score layer
    assert all(torch.equal(p, frozen[n]) for n, p in head.named_parameters() if n in frozen)
    assert all(not torch.equal(p, lora_before[n]) for n, p in hfa.lora_parameters(head).items())
    assert not head.training
    ids, mask, _ = hfa.make_contains_batch(16, 12, words, trigger, torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = head(ids, attention_mask=mask).logits
        hfa.merge_lora(head.transformer)
        after = head(ids, attention_mask=mask).logits
    assert not any(isinstance(m, hfa.LoRAConv1D) for m in head.modules()) and len(wrapped) == 2
    assert_close(after, before, FLOAT32, name="merged vs unmerged")


def test_contains_batches_have_the_right_labels():
    words, trigger = hfa.task_ids(len(hfa.TOY_VOCAB))
    ids, mask, labels = hfa.make_contains_batch(64, 10, words, trigger,
                                                torch.Generator().manual_seed(0))
    assert ids.shape == mask.shape == (64, 10)
    assert torch.equal((ids == trigger).any(-1).long(), labels)
    assert torch.all(ids[mask == 0] == hfa.PAD_ID) and torch.all(mask.sum(-1) >= 4)
    assert 16 < int(labels.sum()) < 48


# --------------------------------------------------------------------------------------
# 0. The reading's claims
# --------------------------------------------------------------------------------------


def test_conv1d_is_a_linear_layer_with_its_weight_stored_in_by_out():
    r = hfa.conv1d_is_a_transposed_linear()
    assert r["weight_shape"] == (4, 6) and r["diff"] < 1e-14


def test_lm_head_is_tied_and_saved_once(tmp_path):
    r = hfa.tying_and_saving(tmp_path)
    assert r["tied"] and r["reloaded_tied"] and r["untied_when_config_says_so"]
    assert r["files"] == ["config.json", "generation_config.json", "model.safetensors"]
    assert not r["lm_head_saved"] and r["reload_diff"] == 0.0


def test_the_loss_is_shifted_inside_the_model_and_computed_in_float32():
    r = hfa.loss_is_shifted_inside()
    assert r["diff"] < 1e-6 and r["loss_dtype"] == torch.float32


def test_the_cache_grows_by_one_position_per_step_and_equals_recomputing():
    r = hfa.cache_growth()
    assert r["class"] == "DynamicCache" and r["prompt_shapes"] == [(2, 4, 5, 8)] * 2
    assert r["after_step"] == 6 and r["diff"] < 1e-12


def test_generate_takes_position_ids_from_the_mask_under_left_padding():
    r = hfa.left_padded_generation()
    assert r["same_as_alone"]
    assert r["forward_with_positions_diff"] < 1e-12 < 1e-3 < r["forward_without_positions_diff"]


def test_custom_processors_come_before_temperature_top_k_top_p():
    r = hfa.processor_order()
    assert r["order"] == ["BanTokensLogitsProcessor", "TemperatureLogitsWarper",
                          "TopKLogitsWarper", "TopPLogitsWarper"]
    assert r["default_top_k"] == 50


def test_eager_and_sdpa_compute_the_same_function():
    assert hfa.implementation_difference() < 1e-12


def test_gpt2_small_size_by_hand():
    assert hfa.gpt2_small_parameters() == hfa.gpt2_parameter_count() == 124_439_808
    count = sum(p.numel() for p in hfa.toy_model().parameters())
    assert count == hfa.gpt2_parameter_count(len(hfa.TOY_VOCAB), 64, 32, 2)


# --------------------------------------------------------------------------------------
# The script, offline and on a checkpoint directory
# --------------------------------------------------------------------------------------


def test_script_runs_every_part_offline(tmp_path):
    r = hfa.main(["--steps", "40", "--lr", "1e-2", "--out", str(tmp_path), "--no-progress"])
    assert r["guide_problems"] == [] or transformers.__version__ != hfa.GUIDE_VERSION
    assert r["tying_tied"] and r["cache_diff"] < 1e-12 and r["params_small_meta"] == 124_439_808
    assert r["banned"] and r["banned_generated"] == 0
    assert r["attention_shape"] == (2, 4, 23, 23)  # the default prompt has 23 characters
    assert r["head_right_diff"] < 1e-5 and r["head_left_diff"] < 1e-5
    assert r["lora_accuracy"] > r["lora_baseline"] + 0.2 and r["lora_base_unchanged"]
    assert r["lora_all_changed"] and r["lora_merge_diff"] < 1e-4
    for name in ("attention_grid.png", "lora_curves.png"):
        assert (tmp_path / name).stat().st_size > 1000


def write_byte_level_tokenizer(directory: Path) -> int:
    """A GPT-2 tokenizer with no merges: id b is byte b (GPT-2's byte-to-unicode map), and
    <|endoftext|> is 256. Returns the vocabulary size."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]  # bytes shown as such
    shifted = iter(range(256, 512))  # the others are moved past 255
    symbol = {b: chr(b if b in printable else next(shifted)) for b in range(256)}
    vocab = {symbol[b]: b for b in range(256)} | {"<|endoftext|>": 256}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return len(vocab)


def test_script_runs_on_a_checkpoint_directory(tmp_path):
    checkpoint = tmp_path / "gpt2"
    checkpoint.mkdir()
    vocab_size = write_byte_level_tokenizer(checkpoint)
    torch.manual_seed(1)
    GPT2LMHeadModel(hfa.tiny_config(vocab_size, pad_token_id=None, bos_token_id=256,
                                    eos_token_id=256)).save_pretrained(checkpoint)
    model, tokenizer = hfa.load_checkpoint(checkpoint)
    assert tokenizer.encode("the cat") == list(b"the cat")
    assert model.config.pad_token_id == 256 and not model.training
    r = hfa.main(["--checkpoint", str(checkpoint), "--skip-claims", "--prompt", "the cat",
                  "--ban", "e", "--steps", "10", "--out", str(tmp_path / "out"),
                  "--no-progress"])
    assert "guide_problems" not in r and r["banned"] == [tokenizer.encode("e")[0]]
    assert r["banned_generated"] == 0 and r["attention_shape"] == (2, 4, 7, 7)
    assert r["lora_steps"] == 10 and r["lora_base_unchanged"]


def test_checkpoint_errors_are_clear(tmp_path, capsys):
    with pytest.raises(hfa.CheckpointError, match="does not exist"):
        hfa.check_checkpoint_dir(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(hfa.CheckpointError, match="model.safetensors or pytorch_model.bin; "
                                                   "vocab.json \\+ merges.txt or tokenizer.json"):
        hfa.check_checkpoint_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(hfa.CheckpointError, match="type 'bert'; this script reads GPT-2"):
        hfa.check_checkpoint_dir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        hfa.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--max-len", "3"), ("--steps", "0"),
                                           ("--lora-dropout", "1.5"), ("--rank", "0"),
                                           ("--lora-targets", "c_fc")])
def test_bad_options_are_usage_errors_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        hfa.main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
