"""Tests of the L3 scripts: train.py (pre-training) and train_classifier.py (fine-tuning),
and of convert.save_pretrained, which writes their checkpoint directories.

- both scripts' main run a few steps on tiny sizes, offline, and the loss falls; the IMDB
  code path runs on a few reviews the test writes in the aclImdb layout;
- pre-train, save, fine-tune from the saved directory end to end; the directory loads in
  transformers (BertForMaskedLM.from_pretrained, BertTokenizer) with equal logits and ids;
- a directory written by transformers' save_pretrained (a "real" checkpoint) fine-tunes;
- save_pretrained writes what transformers' from_pretrained reads, for every model class;
- bad options exit 2 naming the option; --help never shows "default: None"; a user's
  malformed TSV / CSV gives one clear error naming file and line;
- (slow) fine-tuning the pre-trained checkpoint beats the same model from random init on
  the grammar-acceptability task, with the scripts' defaults.

Run: .venv/bin/python -m pytest 08_BERT/paper/test_scripts.py -q   (--slow for the last)
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import pytest
import torch

from utils import import_lesson
from utils.data_loaders import DatasetFormatError

pretrain = import_lesson("08_BERT.paper.train")
classifier = import_lesson("08_BERT.paper.train_classifier")
bp, cv, wordpiece = pretrain.bp, pretrain.convert, pretrain.wordpiece

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one CPU thread

# A tiny grammar pre-training run: one layer, H = 32, 60 steps (about a second).
TINY_PRETRAIN = ["--steps", "60", "--batch-size", "32", "--d-model", "32", "--layers", "1",
                 "--heads", "2", "--n-train", "512", "--n-test", "64", "--evaluate-every",
                 "30", "--no-progress"]


def _quiet(main, argv):
    """main(argv) with its printing captured; returns (result, printed text)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = main(argv)
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("pretrain")
    result, _ = _quiet(pretrain.main, [*TINY_PRETRAIN, "--out", str(out)])
    return result, out


def _write_task(path: Path, rows, delimiter: str = "\t") -> Path:
    path.write_text("text" + delimiter + "label\n" + "".join(
        f"{text}{delimiter}{label}\n" for text, label in rows), encoding="utf-8")
    return path


def _easy_task(tmp_path: Path, n: int = 96) -> tuple[Path, Path]:
    """A task a few steps can learn: is the word "good" or "bad" in the sentence?"""
    texts, _ = classifier.acceptability(n, seed=3)
    rows = [(f"{text.removesuffix(' .')} {'good' if i % 2 else 'bad'} .",
             "pos" if i % 2 else "neg") for i, text in enumerate(texts)]
    return (_write_task(tmp_path / "train.tsv", rows[:n * 3 // 4]),
            _write_task(tmp_path / "test.tsv", rows[n * 3 // 4:]))


# --------------------------------------------------------------------------------------
# Pre-training
# --------------------------------------------------------------------------------------


def test_pretraining_runs_learns_and_writes_transformers_layout(pretrained):
    result, out = pretrained
    assert result["final_mlm_loss"] < result["first_mlm_loss"] - 1.0, result
    assert 0.0 <= result["nsp_accuracy"] <= 1.0 and result["steps"] == 60
    assert result["masked_accuracy"] > result["majority_baseline"], result
    checkpoint = Path(result["checkpoint"])
    assert checkpoint == out / "checkpoint"
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        assert (checkpoint / name).is_file(), name
    assert (out / "loss.png").is_file() and (out / "mlm_accuracy.png").is_file()
    # the vocabulary was trained on the grammar's text: every word is one token
    tokenizer = wordpiece.WordPieceTokenizer.from_pretrained_dir(checkpoint)
    assert tokenizer.tokenize("These happy dogs bark .") == ["these", "happy", "dogs", "bark",
                                                              "."]
    model = cv.load_pretrained(checkpoint, bp.BertForPreTraining)
    assert model.config.d_model == 32 and model.config.n_layers == 1


def test_the_checkpoint_loads_in_transformers_with_equal_logits(pretrained):
    transformers = pytest.importorskip("transformers")
    checkpoint = Path(pretrained[0]["checkpoint"])
    ours = cv.load_pretrained(checkpoint, bp.BertForMaskedLM)
    theirs, info = transformers.BertForMaskedLM.from_pretrained(
        checkpoint, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    tokenizer = wordpiece.WordPieceTokenizer.from_pretrained_dir(checkpoint)
    their_tokenizer = transformers.BertTokenizer.from_pretrained(checkpoint)
    sentences = ["The old king sees a dog .", "these cats [MASK] .", "Unknown words: zebra!"]
    ids = tokenizer.batch_encode(sentences)
    assert ids["input_ids"].tolist() == their_tokenizer(sentences, padding=True)["input_ids"]
    with torch.no_grad():
        expected = theirs.eval()(**ids).logits
        got = ours(ids["input_ids"], ids["token_type_ids"], ids["attention_mask"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_pretraining_continues_from_a_checkpoint(pretrained, tmp_path):
    checkpoint = pretrained[0]["checkpoint"]
    result, _ = _quiet(pretrain.main, ["--steps", "10", *TINY_PRETRAIN[2:],
                                       "--checkpoint", checkpoint, "--out", str(tmp_path)])
    # it starts where the first run ended, far below a fresh model's loss (log V ~ 5)
    assert result["first_mlm_loss"] < pretrained[0]["first_mlm_loss"] - 1.0, result
    assert (tmp_path / "checkpoint" / "model.safetensors").is_file()


# --------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------


def test_fine_tuning_from_the_pretrained_directory(pretrained, tmp_path):
    checkpoint = pretrained[0]["checkpoint"]
    result, printed = _quiet(classifier.main, [
        "--checkpoint", checkpoint, "--n-train", "128", "--n-test", "64", "--epochs", "1",
        "--batch-size", "16", "--no-progress", "--out", str(tmp_path)])
    assert result["pretrained"] == 1.0 and result["steps"] == 8
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert 0.3 < result["majority_baseline"] < 0.7  # the task is balanced
    assert "grammar-acceptability" in printed and "test accuracy" in printed
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "accuracy.png").is_file()


def test_acceptability_flips_the_verb_of_half_the_sentences():
    texts, labels = classifier.acceptability(200, seed=0)
    assert labels.sum() == 100
    sg = {verbs[0] for verbs in [*classifier.corpus.TRANSITIVE,
                                 *classifier.corpus.ANIMALS.values()]}
    for text, label in zip(texts, labels):
        words = text.split()
        verb = next(w for w in words if w in classifier.VERB_NUMBER)
        subject = words[words.index(verb) - 1]  # the noun before the verb
        singular_subject = subject in {w[0] for w in [*classifier.corpus.PEOPLE,
                                                     *classifier.corpus.ANIMALS]}
        assert (verb in sg) == singular_subject or not label, text
        assert (verb in sg) != singular_subject or label, text


def test_a_users_files_fine_tune_and_the_loss_falls(tmp_path):
    train_file, test_file = _easy_task(tmp_path)
    result, printed = _quiet(classifier.main, [
        "--train-file", str(train_file), "--test-file", str(test_file), "--from-scratch",
        "--d-model", "32", "--layers", "1", "--heads", "2", "--vocab-size", "200",
        "--max-len", "32", "--epochs", "10", "--batch-size", "8", "--lr", "3e-3",
        "--no-progress", "--out", str(tmp_path / "run")])
    assert result["final_loss"] < 0.3 * result["first_loss"], result
    assert result["test_accuracy"] > 0.9, result
    assert "['neg', 'pos']" in printed  # the classes of the file, in order


def test_a_checkpoint_written_by_transformers_fine_tunes(tmp_path):
    """A directory as a user downloads it (here: a random BertForPreTraining written by
    transformers' save_pretrained, with the vocabulary of a trained tokenizer)."""
    transformers = pytest.importorskip("transformers")
    train_file, test_file = _easy_task(tmp_path)
    texts = [line.split("\t")[0] for line in train_file.read_text().splitlines()[1:]]
    tokenizer = pretrain.train_tokenizer(texts, 120, tmp_path / "real")
    config = transformers.BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=32,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=40)
    torch.manual_seed(0)
    transformers.BertForPreTraining(config).save_pretrained(tmp_path / "real")
    result, printed = _quiet(classifier.main, [
        "--train-file", str(train_file), "--test-file", str(test_file), "--checkpoint",
        str(tmp_path / "real"), "--max-len", "32", "--epochs", "1", "--batch-size", "16",
        "--no-progress", "--out", str(tmp_path / "run")])
    assert result["pretrained"] == 1.0 and result["steps"] == 5
    assert f"pre-trained {tmp_path / 'real'}" in printed


def _fake_imdb(root: Path, n: int = 12) -> Path:
    """A few reviews in the aclImdb/{train,test}/{pos,neg}/*.txt layout."""
    good = "A wonderful film.<br /><br />The actors are great and the story is moving"
    bad = "An awful film. The plot is dull,<br />the acting is poor and boring"
    for split in ("train", "test"):
        for polarity, text in (("pos", good), ("neg", bad)):
            folder = root / "aclImdb" / split / polarity
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}_{8 if polarity == 'pos' else 2}.txt").write_text(
                    f"{text} ({i}).", encoding="utf-8")
    return root


def test_imdb_path_of_both_scripts_on_a_few_reviews(tmp_path):
    root = _fake_imdb(tmp_path / "data")
    tiny = ["--d-model", "32", "--layers", "1", "--heads", "2", "--vocab-size", "120",
            "--max-len", "16", "--batch-size", "8", "--no-progress"]
    result, printed = _quiet(pretrain.main, [
        "--dataset", "imdb", "--data-root", str(root), "--n-test", "4", "--steps", "4",
        "--time-budget", "0", *tiny, "--out", str(tmp_path / "pt")])
    assert result["steps"] == 4 and "nsp_accuracy" not in result  # masked LM only
    assert "20 training reviews" in printed
    tokenizer = wordpiece.WordPieceTokenizer.from_pretrained_dir(result["checkpoint"])
    assert "br" not in tokenizer.vocab  # the HTML breaks were removed before training
    result, printed = _quiet(classifier.main, [
        "--dataset", "imdb", "--data-root", str(root), "--checkpoint", result["checkpoint"],
        "--epochs", "1", "--batch-size", "8", "--max-len", "16", "--no-progress",
        "--out", str(tmp_path / "ft")])
    assert result["steps"] == 3 and "24 training / 24 test" in printed


def test_missing_imdb_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--dataset", "imdb", "--data-root", str(tmp_path), "--no-progress",
                       "--out", str(tmp_path / "out")])
    assert "IMDB" in str(exit_info.value.code) and "grammar" in str(exit_info.value.code)


def test_encode_texts_keeps_first_last_or_head_and_tail(pretrained):
    tokenizer = wordpiece.WordPieceTokenizer.from_pretrained_dir(pretrained[0]["checkpoint"])
    words = "a big old red small young happy dog ."
    ids = tokenizer.convert_tokens_to_ids(words.split())
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    for keep, kept in (("first", ids[:6]), ("last", ids[-6:]), ("head+tail", ids[:1] + ids[-5:])):
        assert classifier.encode_texts(tokenizer, [words], 8, keep) == [[cls, *kept, sep]]
    assert classifier.encode_texts(tokenizer, ["a dog"], 8, "first")[0] == [cls, *ids[:1],
                                                                            ids[-2], sep]


# --------------------------------------------------------------------------------------
# save_pretrained (convert.py): transformers reads what we write
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", cv.MODEL_CLASSES, ids=lambda c: c.__name__)
def test_save_pretrained_is_read_by_transformers_and_load_pretrained(model_class, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = bp.BertConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=24,
                           max_len=12, dropout=0.0, attn_dropout=0.0)
    torch.manual_seed(0)
    ours = (model_class(config, 3) if model_class is bp.BertForSequenceClassification
            else model_class(config)).double().eval()
    with torch.no_grad():  # every weight random, the biases and LayerNorms included
        for parameter in ours.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    assert {cv.our_name(cv.hf_name(k, ours)) for k in ours.state_dict()} == set(
        cv._task_layout(ours))  # hf_name inverts our_name
    directory = cv.save_pretrained(ours, tmp_path / model_class.__name__)
    theirs, info = getattr(transformers, model_class.__name__).from_pretrained(
        directory, attn_implementation="eager", output_loading_info=True,
        dtype=torch.float64)
    assert not any(info.values()), info  # nothing missing, unexpected or mismatched
    back = cv.load_pretrained(directory, model_class, dtype=torch.float64)
    ids = torch.randint(5, 40, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        ours_out, back_out = ours(ids, attention_mask=mask), back(ids, attention_mask=mask)
        their_out = theirs.eval()(ids, attention_mask=mask)
    if model_class is bp.BertModel:
        pairs = [(ours_out.hidden_states, their_out.last_hidden_state, back_out.hidden_states),
                 (ours_out.pooled, their_out.pooler_output, back_out.pooled)]
    elif model_class is bp.BertForPreTraining:
        pairs = [(ours_out[0], their_out.prediction_logits, back_out[0]),
                 (ours_out[1], their_out.seq_relationship_logits, back_out[1])]
    else:
        pairs = [(ours_out, their_out.logits, back_out)]
    for mine, expected, reloaded in pairs:
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-10)
        assert torch.equal(mine, reloaded)


def test_save_pretrained_refuses_other_models(tmp_path):
    with pytest.raises(TypeError, match="save_pretrained"):
        cv.save_pretrained(torch.nn.Linear(2, 2), tmp_path)


# --------------------------------------------------------------------------------------
# Options and a user's files: clear errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("script, argv, option", [
    ("train", ["--steps", "0"], "--steps"),
    ("train", ["--epochs", "3"], "--epochs"),
    ("train", ["--d-model", "30", "--heads", "4"], "--d-model"),
    ("train", ["--max-len", "4"], "--max-len"),
    ("train", ["--mask-prob", "1.5"], "--mask-prob"),
    ("train", ["--dataset", "wiki"], "--dataset"),
    ("train", ["--checkpoint", "nowhere"], "--checkpoint"),
    ("classifier", ["--lr", "-1"], "--lr"),
    ("classifier", ["--train-file", "a.tsv"], "--test-file"),
    ("classifier", ["--dataset", "imdb"], "--checkpoint"),
    ("classifier", ["--keep", "middle"], "--keep"),
    ("classifier", ["--n-train", "0"], "--n-train"),
    ("classifier", ["--checkpoint", "nowhere"], "--checkpoint"),
    ("classifier", ["--from-scratch", "--d-model", "30", "--heads", "4"], "--d-model"),
])
def test_bad_options_exit_2_naming_the_option(script, argv, option, capsys):
    main = pretrain.main if script == "train" else classifier.main
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--no-progress"])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_max_len_longer_than_the_checkpoints_positions_is_a_usage_error(pretrained, capsys):
    with pytest.raises(SystemExit) as exit_info:
        classifier.main(["--checkpoint", pretrained[0]["checkpoint"], "--max-len", "64"])
    assert exit_info.value.code == 2
    assert "--max-len" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["train", "classifier"])
def test_help_shows_every_default(script, capsys):
    main = pretrain.main if script == "train" else classifier.main
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: None" not in text and "default: none" not in text
    assert "per dataset:" in text


@pytest.mark.parametrize("content, expected", [
    ("", "the file is empty"),
    ("sentence\tgrade\nhello\t1\n", "line 1: expected a TSV header naming 'text' and 'label'"),
    ("text\tlabel\ngood film\t1\nbad film\n", "line 3: expected 2 TSV fields"),
    ("text\tlabel\ngood film\t1\tbad\t0\n", "line 2: expected 2 TSV fields"),
    ("text\tlabel\n\t1\n", "line 2: the text is empty"),
    ("text\tlabel\ngood film\t\n", "line 2: the label is empty"),
    ("text\tlabel\n", "no examples after the header"),
])
def test_malformed_files_give_one_clear_error(content, expected, tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetFormatError) as error:
        classifier.read_labelled_file(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_csv_with_quotes_and_an_unknown_test_label(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text('label,text\n0,"bad, really"\n1,"good\nmultiline"\n1,fine\n',
                     encoding="utf-8")
    texts, labels = classifier.read_labelled_file(train)
    assert texts == ["bad, really", "good\nmultiline", "fine"] and labels == ["0", "1", "1"]
    test = _write_task(tmp_path / "test.csv", [("ok", "1"), ("meh", "2")], delimiter=",")
    with pytest.raises(DatasetFormatError, match=r"example 2 has the label '2'.*\['0', '1'\]"):
        classifier.load_files(train, test)
    assert classifier.label_ids(["10", "9", "-1"]) == {"-1": 0, "9": 1, "10": 2}


def test_a_malformed_file_stops_the_script_with_the_message(tmp_path):
    train = _write_task(tmp_path / "train.tsv", [("good", "1"), ("bad", "0")])
    test = tmp_path / "test.tsv"
    test.write_text("text\tlabel\nfine\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        classifier.main(["--train-file", str(train), "--test-file", str(test),
                         "--from-scratch", "--no-progress", "--out", str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("error:") and f"{test}, line 2: expected 2 TSV fields" in message


# --------------------------------------------------------------------------------------
# Pre-training helps (slow: the masked LM needs ~1,000 steps to learn agreement)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pretraining_beats_random_init_on_acceptability(tmp_path):
    """The scripts' defaults: pre-train on the grammar, fine-tune 3 epochs; the same model
    (architecture and vocabulary of the checkpoint) from random init stays near chance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned, _ = _quiet(classifier.main, ["--no-progress", "--out", str(tmp_path / "ft")])
        checkpoint = str(tmp_path / "ft" / "pretrain" / "checkpoint")
        scratch, _ = _quiet(classifier.main, ["--checkpoint", checkpoint, "--from-scratch",
                                              "--no-progress", "--out", str(tmp_path / "s")])
    assert tuned["test_accuracy"] > 0.95, tuned
    assert scratch["test_accuracy"] < 0.7, scratch
    assert tuned["majority_baseline"] < 0.55
