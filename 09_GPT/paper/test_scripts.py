"""Tests of the L3 scripts: train.py (training, scores, samples, checkpoint), generate.py
(decoding from a checkpoint folder) and benchmarks/bench_gpt.py.

- train.py's main runs a few iterations on tiny sizes, offline, and the loss falls: on the
  generated language (with its floor and unigram baseline), and on a small fake Tiny
  Shakespeare file the test writes in the loader's layout, with characters and with BPE;
- the batches are nanoGPT's windows; the whole-split score and bits per character match a
  hand computation (a model that predicts the uniform distribution);
- the checkpoint folder loads in transformers (GPT2LMHeadModel, GPT2TokenizerFast) with
  our logits and ids; generate.py decodes from it (greedy = GPT.generate, seeded sampling
  repeats, beyond the context the window slides) and from a folder transformers wrote;
- --preset nanogpt is nanoGPT's configuration; bad options exit 2 naming the option;
- the benchmark checks equal numbers before it times, and a different model fails the check.

Run: .venv/bin/python -m pytest 09_GPT/paper/test_scripts.py -q
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
import torch

from utils import import_lesson

train_script = import_lesson("09_GPT.paper.train")
generate_script = import_lesson("09_GPT.paper.generate")
gpt, convert, tokenization = train_script.gpt, train_script.convert, train_script.tokenization

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one CPU thread

# A tiny run: one layer, 32 wide, context 16, 60 iterations (about a second).
TINY = ["--layers", "1", "--heads", "2", "--d-model", "32", "--max-len", "16",
        "--batch-size", "16", "--iters", "60", "--warmup", "5", "--lr", "1e-2",
        "--min-lr", "1e-3", "--eval-interval", "20", "--eval-iters", "2", "--samples", "1",
        "--sample-tokens", "24", "--no-progress"]
FAKE_PLAY = """\
First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

"""


def _quiet(main, argv):
    """main(argv) with its printing captured; returns (result, printed text)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = main(argv)
    return result, printed.getvalue()


def _fake_shakespeare(root: Path, repeats: int = 40) -> Path:
    """A small play in the loader's layout, ROOT/tinyshakespeare/input.txt."""
    folder = root / "tinyshakespeare"
    folder.mkdir(parents=True)
    (folder / "input.txt").write_text(FAKE_PLAY * repeats, encoding="utf-8")
    return root


@pytest.fixture
def no_checksums(monkeypatch):
    """The fake file carries the official name but not the official bytes."""
    monkeypatch.setattr(import_lesson("utils.data_loaders"), "KNOWN_CHECKSUMS", {})


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("generated")
    return _quiet(train_script.main, [*TINY, "--sentences", "2000", "--out", str(out)])


# --------------------------------------------------------------------------------------
# train.py
# --------------------------------------------------------------------------------------


def test_training_on_the_generated_language_learns_and_writes_its_files(generated_run):
    result, printed = generated_run
    assert result["val_loss"] < result["first_loss"] - 0.5, result
    assert result["floor"] < result["unigram_loss"] < result["first_loss"], result
    # characters: bits per character is the loss per token over ln 2
    assert result["bits_per_char"] == pytest.approx(result["val_loss"] / math.log(2), 1e-12)
    assert result["val_tokens"] == result["val_characters"]
    assert result["iters"] == 60 and 0 < result["step_seconds"] < result["train_seconds"]
    assert abs(result["val_estimate"] - result["val_loss"]) < 0.5
    out = Path(result["checkpoint"]).parent
    for name in ("loss.png", "samples.txt", "checkpoint/config.json",
                 "checkpoint/model.safetensors"):
        assert (out / name).is_file(), name
    sample = result["samples"][0]
    assert sample.startswith("the ") and len(sample) == len("the ") + 24
    assert sample in (out / "samples.txt").read_text(encoding="utf-8")
    assert "bits/char" in printed and "the floor" in printed


def test_get_batch_takes_nanogpt_windows():
    data = torch.arange(100)
    x, y = train_script.get_batch(data, 8, 5, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 5)
    assert torch.equal(y, x + 1)  # y = data[i+1:i+T+1], x = data[i:i+T]
    assert int(y.max()) <= 99 and int(x.min()) >= 0
    again, _ = train_script.get_batch(data, 8, 5, torch.Generator().manual_seed(0))
    other, _ = train_script.get_batch(data, 8, 5, torch.Generator().manual_seed(1))
    assert torch.equal(x, again) and not torch.equal(x, other)
    starts = train_script.get_batch(data, 4000, 5, torch.Generator().manual_seed(0))[0][:, 0]
    assert set(starts.tolist()) == set(range(95))  # every window start, the last included


def _uniform_model(vocab_size: int, context: int):
    """A GPT whose logits are all 0 (the token embeddings, hence the tied output, are 0):
    it predicts every token with probability 1 / V."""
    config = gpt.GPTConfig(vocab_size=vocab_size, max_len=context, d_model=8, n_layers=1,
                           n_heads=2, dropout=0.0, attn_dropout=0.0)
    torch.manual_seed(0)
    model = gpt.GPT(config)
    with torch.no_grad():
        model.embeddings.word.weight.zero_()
    return model


def test_whole_split_score_and_bits_per_char_by_hand():
    text = "to be, or not to be: that is the question.\n" * 3  # 129 characters
    train_text = text + "whether 'tis nobler in the mind to suffer"
    for kind in ("char", "bpe"):
        tokenizer = train_script.make_tokenizer(kind, train_text, 300)
        ids = train_script.encode(tokenizer, text)
        vocab = tokenizer.vocab_size
        total, predicted = train_script.split_nats(_uniform_model(vocab, 10), ids, context=10)
        assert predicted == len(ids) - 1  # every token but the first, once
        assert total == pytest.approx(predicted * math.log(vocab), rel=1e-6)
        first = tokenizer.decode(ids[:1].tolist())
        characters = train_script.predicted_characters(tokenizer, ids)
        assert characters == len(text) - len(first)
        expected = predicted * math.log2(vocab) / characters  # bits per token * tokens / chars
        assert train_script.bits_per_character(total, characters) == pytest.approx(expected,
                                                                                   rel=1e-6)
        if kind == "bpe":  # merges made tokens of several characters
            assert predicted < characters / 2


def test_whole_split_score_equals_the_windows_scored_one_by_one():
    torch.manual_seed(1)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=11, max_len=6, d_model=8, n_layers=1,
                                  n_heads=2, dropout=0.0, attn_dropout=0.0)).double()
    ids = torch.randint(11, (20,))
    total, predicted = train_script.split_nats(model, ids, context=6, batch_size=2)
    expected = 0.0
    with torch.no_grad():
        for start in (0, 6, 12, 18):  # windows [0:7), [6:13), [12:19), the tail [18:20)
            x, y = ids[start:start + 6], ids[start + 1:start + 7]
            log_probs = torch.log_softmax(model(x[None])[0, :len(y)], dim=-1)
            expected -= float(log_probs.gather(1, y[:, None]).sum())
    assert predicted == 19 and total == pytest.approx(expected, rel=1e-12)


def test_shakespeare_path_on_a_fake_file_char_level(tmp_path, no_checksums):
    root = _fake_shakespeare(tmp_path / "data")
    result, printed = _quiet(train_script.main, [
        "--dataset", "shakespeare", "--data-root", str(root), *TINY, "--out",
        str(tmp_path / "run")])
    n = len(FAKE_PLAY) * 40
    assert f"{int(0.9 * n):,} training / {n - int(0.9 * n):,} validation" in printed
    assert result["val_loss"] < result["first_loss"] - 0.5, result
    assert "floor" not in result and result["unigram_loss"] > 0
    assert result["samples"][0].startswith("\n")  # nanoGPT's sample.py starts from "\n"


def test_bpe_path_reports_bits_per_character_and_transformers_reads_the_vocabulary(
        tmp_path, no_checksums):
    transformers = pytest.importorskip("transformers")
    root = _fake_shakespeare(tmp_path / "data")
    result, printed = _quiet(train_script.main, [
        "--dataset", "shakespeare", "--data-root", str(root), "--tokenizer", "bpe",
        "--vocab-size", "300", *TINY, "--out", str(tmp_path / "run")])
    assert result["val_loss"] < result["first_loss"] - 0.5, result
    assert result["val_tokens"] < result["val_characters"] / 2  # tokens of several characters
    assert result["bits_per_char"] == pytest.approx(
        result["val_loss"] * result["val_tokens"] / result["val_characters"] / math.log(2),
        rel=1e-12)
    assert "bpe tokens, vocabulary 300" in printed
    checkpoint = Path(result["checkpoint"])
    ours = generate_script.load_tokenizer(checkpoint)
    theirs = transformers.GPT2TokenizerFast.from_pretrained(checkpoint)
    text = "Speak, speak! Resolved?  Citizens of Rome, 2024 \u00e9t\u00e9"
    assert ours.encode(text) == theirs(text)["input_ids"]


def test_missing_shakespeare_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train_script.main(["--dataset", "shakespeare", "--data-root", str(tmp_path),
                           "--no-progress", "--out", str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert "Tiny Shakespeare" in message and "--dataset generated" in message


def test_preset_nanogpt_is_the_shakespeare_default_and_options_win():
    shakespeare = train_script.parse_options(["--dataset", "shakespeare"])
    preset = train_script.parse_options(["--preset", "nanogpt", "--iters", "700"])
    for args in (shakespeare, preset):
        assert (args.layers, args.heads, args.d_model, args.max_len) == (4, 4, 128, 64)
        assert (args.batch_size, args.lr, args.min_lr, args.warmup) == (12, 1e-3, 1e-4, 100)
        assert (args.beta2, args.weight_decay, args.dropout) == (0.99, 0.1, 0.0)
        assert (args.eval_interval, args.eval_iters, args.grad_clip) == (250, 20, 1.0)
    assert shakespeare.iters == 2000 and preset.iters == 700 and preset.dataset == "generated"
    assert train_script.parse_options([]).layers == 2  # the generated language's default


def test_the_checkpoint_loads_in_transformers_with_equal_logits(generated_run):
    transformers = pytest.importorskip("transformers")
    checkpoint = generated_run[0]["checkpoint"]
    ours = convert.load_pretrained(checkpoint)
    theirs, info = transformers.GPT2LMHeadModel.from_pretrained(
        checkpoint, attn_implementation="eager", output_loading_info=True)
    assert not any(info.values()), info
    ids = train_script.encode(generate_script.load_tokenizer(Path(checkpoint)),
                              "the cats meow.")[None]
    with torch.no_grad():
        expected = theirs.eval()(ids).logits
        got = ours(ids)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------
# generate.py
# --------------------------------------------------------------------------------------


def test_generate_greedy_equals_the_model_and_sampling_repeats(generated_run):
    checkpoint = generated_run[0]["checkpoint"]
    greedy, printed = _quiet(generate_script.main, [
        "--checkpoint", checkpoint, "--prompt", "the king", "--max-new-tokens", "6",
        "--greedy"])
    model = convert.load_pretrained(checkpoint)
    tokenizer = generate_script.load_tokenizer(Path(checkpoint))
    prompt = train_script.encode(tokenizer, "the king")[None]
    expected = model.generate(prompt, 6, do_sample=False)
    assert greedy["ids"] == expected.tolist() and "greedy" in printed
    assert greedy["texts"][0] == tokenizer.decode(expected[0].tolist())
    sampled = [_quiet(generate_script.main, [
        "--checkpoint", checkpoint, "--prompt", "the", "--max-new-tokens", "40",
        "--temperature", "1.5", "--top-k", "20", "--top-p", "0.95", "--seed", str(seed)])[0]
        for seed in (3, 3, 4)]
    assert sampled[0]["texts"] == sampled[1]["texts"] != sampled[2]["texts"]
    assert len(sampled[0]["ids"][0]) == 3 + 40  # beyond the context of 16: the window slides


def test_beyond_the_context_each_token_sees_the_last_max_len_tokens():
    torch.manual_seed(2)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=13, max_len=5, d_model=8, n_layers=1,
                                  n_heads=2, dropout=0.0, attn_dropout=0.0)).eval()
    with torch.no_grad():  # large weights: the next token depends on the whole window
        for parameter in model.parameters():
            parameter.mul_(30)
    prompt = torch.tensor([[1, 2, 3]])
    ids = generate_script.continue_ids(model, prompt, 12, temperature=2.0,
                                       generator=torch.Generator().manual_seed(0))
    expected, generator = prompt, torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(12):  # nanoGPT's generate: crop to the context, sample from the last
            logits = model(expected[:, -5:])[:, -1]
            next_token = gpt.sample_next(logits, 2.0, generator=generator)
            expected = torch.cat([expected, next_token[:, None]], dim=1)
    assert torch.equal(ids, expected) and len(set(ids[0, 5:].tolist())) > 2


def test_generate_reads_a_gpt2_folder_written_by_transformers(tmp_path):
    """A folder as a user downloads it (here: a random GPT2LMHeadModel written by
    transformers' save_pretrained, with the vocabulary of a BPE we train)."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "gpt2"
    tokenizer = train_script.make_tokenizer("bpe", FAKE_PLAY * 5, 300)
    tokenizer.save(folder)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=32,
                                     n_embd=16, n_layer=2, n_head=2)
    torch.manual_seed(0)
    hf_model = transformers.GPT2LMHeadModel(config).eval()
    hf_model.save_pretrained(folder)
    result, _ = _quiet(generate_script.main, [
        "--checkpoint", str(folder), "--prompt", "First Citizen:", "--max-new-tokens", "8",
        "--greedy"])
    prompt = torch.tensor([tokenizer.encode("First Citizen:")])
    expected = hf_model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                 max_new_tokens=8, min_new_tokens=8, do_sample=False,
                                 pad_token_id=0)
    assert result["ids"] == expected.tolist()


# --------------------------------------------------------------------------------------
# Bad options: exit 2, naming the option
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, option", [
    (["--heads", "3", "--d-model", "32"], "--heads"),
    (["--iters", "10", "--warmup", "10"], "--warmup"),
    (["--tokenizer", "bpe", "--vocab-size", "200"], "--vocab-size"),
    (["--lr", "1e-3", "--min-lr", "1e-2"], "--min-lr"),
    (["--epochs", "3"], "--epochs"),
    (["--iters", "0"], "--iters"),
    (["--tokenizer", "words"], "--tokenizer"),
    (["--attn-implementation", "flash"], "--attn-implementation"),
])
def test_train_bad_options_exit_2_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_script.parse_options(argv)
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


def test_help_shows_the_defaults_of_each_dataset_never_none(capsys):
    texts = []
    for main in (train_script.main, generate_script.main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        texts.append(" ".join(capsys.readouterr().out.split()))
        assert exit_info.value.code == 0 and "default: None" not in texts[-1]
    assert "(default: per dataset: generated 2, shakespeare 4)" in texts[0]  # --layers


def test_generate_bad_options_and_folders_exit_2_naming_the_option(generated_run, tmp_path,
                                                                    capsys):
    checkpoint = Path(generated_run[0]["checkpoint"])
    no_tokenizer = tmp_path / "weights_only"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((checkpoint / name).read_bytes())
    cases = [(["--checkpoint", str(tmp_path / "missing")], "--checkpoint", "not a folder"),
             (["--checkpoint", str(tmp_path)], "--checkpoint", "config.json"),
             (["--checkpoint", str(no_tokenizer)], "--checkpoint", "tokenizer"),
             (["--checkpoint", str(checkpoint), "--top-p", "1.5"], "--top-p", "(0, 1]"),
             (["--checkpoint", str(checkpoint), "--temperature", "0"], "--temperature", ""),
             (["--checkpoint", str(checkpoint), "--prompt", "the " * 5], "--prompt", "context"),
             (["--checkpoint", str(checkpoint), "--prompt", "caf\u00e9"], "--prompt",
              "not in the vocabulary")]
    for argv, option, words in cases:
        with pytest.raises(SystemExit) as exit_info:
            generate_script.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and option in err and words in err, (argv, err)


# --------------------------------------------------------------------------------------
# benchmarks/bench_gpt.py
# --------------------------------------------------------------------------------------


def test_gpt_benchmark_checks_equal_then_times(capsys):
    bench = import_lesson("benchmarks.bench_gpt")
    results = bench.main(["--batch", "2", "--length", "16", "--repeats", "2",
                          "--prompt-length", "4", "--new-tokens", "4"])
    assert results["max_abs_difference"] < 1e-4
    for part in ("training", "generation"):
        for ours in bench.OURS:
            assert results[part][ours]["ratio_spread"]["rounds"] == 2
    assert "checked equal first" in capsys.readouterr().out
    config, models = bench.make_models("nano")
    batch = bench.make_batches(config, 2, 16, count=1)[0]
    with torch.no_grad():  # a different model
        models["transformers eager"].transformer.h[0].mlp.c_proj.weight.mul_(1.01)
    with pytest.raises(AssertionError):
        bench.check_equal(config, models["ours eager"], models["transformers eager"], batch)
