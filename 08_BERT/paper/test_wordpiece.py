"""Tests of lesson 08's WordPiece tokenizer (08_BERT/paper/wordpiece.py).

The references, loaded from the same vocab.txt: transformers 5's `BertTokenizer` (the
tokenizers library's Rust WordPiece; `BertTokenizerFast` is another name for the same
class since transformers 5) and `BertTokenizerLegacy` (the Python implementation that was
`BertTokenizer` until transformers 4). Vocabularies are trained here with `train_vocab` on
the training split of a generated multilingual corpus (and of IMDB when a local copy exists).

- tokens, input_ids, token_type_ids, attention_mask equal BertTokenizer's (and
  BertTokenizerFast's) on held-out text and on real text with accents (café, naïve, Zoë),
  CJK, Hangul, emoji, punctuation, very long words, whitespace and control characters and
  special tokens inside the text; uncased and cased vocabularies, strip_accents None,
  True and False; and on random Unicode strings (hypothesis)
- equal to BertTokenizerLegacy's too, except where the two references differ, which
  test_where_the_references_differ shows one by one (we follow BertTokenizer)
- WordPiece by hand: longest match first, "##" pieces, [UNK] for a word with no
  segmentation or longer than 100 characters, greedy is not the best segmentation
- pairs with every truncation strategy at every max_length; batches padded to the longest
  and to max_length as int64 tensors or lists; decode equals BertTokenizer.decode, and
  decode(encode(text)) gives back text that the vocabulary covers
- tokenizer directories: vocab.txt + tokenizer_config.json, transformers' save_pretrained
  (tokenizer.json, added tokens), the legacy save_pretrained, our own save_pretrained read
  by transformers
- clear errors for bad input; level purity

Run: .venv/bin/python -m pytest 08_BERT/paper/test_wordpiece.py -q
"""

from __future__ import annotations

import functools
import json
import random
import re
import shutil
import string
import tarfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertTokenizer, BertTokenizerFast
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
from transformers.utils import logging as transformers_logging

from utils import import_lesson
from utils.testing import assert_level_purity

wp = import_lesson("08_BERT.paper.wordpiece")

transformers_logging.set_verbosity_error()  # no warnings about truncation settings

# name -> (do_lower_case, strip_accents)
CONFIGS = {"uncased": (True, None), "cased": (False, None),
           "uncased_keep_accents": (True, False), "cased_strip_accents": (False, True)}

# Real text: every feature of the basic tokenizer, and words the vocabulary lacks.
REAL_TEXT = [
    "The café's crème brûlée was naïve, said Zoë, très bien!",
    "Ångström, Øresund, Łódź, İstanbul, straße, STRASSE, Привет, мир! Ελλάδα",
    "日本語のテキストと中文混合 (東京), 한국어 텍스트.",
    "Emoji: 😀👍🏽 👨‍👩‍👧 ❤️ ✓ ★",
    "Punctuation!!! ... (parentheses) [brackets] {braces} $100 50% a+b=c <tag> ^caret "
    "`tick` |pipe| ~tilde @at #hash &amp; «quotes» „Anführung“ ¿Qué? ¡Sí! – — … ‘’ “”",
    "a" * 100, "a" * 101, "b" * 99 + "!", "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "tab\there\nnew line\r\nCRLF\u00a0nbsp\u2003em\u3000ideographic\u2028ls\u200bzwsp"
    "\x00nul\ufffdrepl\x07bell\u00adsoft\x0bvt\x85nel\x1cfs\ue000private",
    "[CLS] hello [SEP] world [MASK]. x[MASK]y [mask] [UNK]ed [PAD][PAD] [CLS",
    "COVID-19 in 2020: 3.14159, 1,000,000 USD; e-mail a.b@c.com http://x.org/?q=1&r=2",
    "Don't stop: it's the film's best, isn't it? ##no ## #hash",
    "", "   ", "\x00\x01", "\u0378 unassigned \U000e0080",
]

# The generated corpus: English-like words built from stems and suffixes (so that a small
# vocabulary has to split them into pieces), words of other scripts, numbers, punctuation.
STEMS = ("play run act believ watch lov hat direct produc writ read talk walk jump think "
         "feel help call work open turn start show tell ask seem leav film stor").split()
SUFFIXES = ("", "", "", "s", "ed", "ing", "er", "ers", "able", "ably", "ment", "ness", "less")
WORDS = tuple(stem + suffix for stem in STEMS for suffix in SUFFIXES) + tuple(
    "the a of and to in is was it un re Café café naïve Zoë résumé Straße Ærø Øre Łódź "
    "ΟΔΟΣ οδος Ελλάδα Привет мир 日本語 中文 東京 한국어 😀 👍 CamelCase McDonald's don't "
    "it's 1999 3.5 $10 50% ! ? , . ; : ' \" ( ) - -- ... [ ]".split())


def _generated_corpus(n_sentences: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20)))
            for _ in range(n_sentences)]


TRAIN_TEXT = _generated_corpus(600, seed=0)
VOCAB_SIZE = 300  # the corpus has about 600 pieces: words are split
HELD_OUT = _generated_corpus(60, seed=1)


# --------------------------------------------------------------------------------------
# Vocabularies and the three tokenizers on each
# --------------------------------------------------------------------------------------


@dataclass
class Tokenizers:
    directory: Path  # vocab.txt and tokenizer_config.json, written by train_vocab
    ours: object  # wp.WordPieceTokenizer
    fast: BertTokenizer
    fast_alias: BertTokenizer  # loaded through the name BertTokenizerFast
    legacy: BertTokenizerLegacy


@pytest.fixture(scope="module")
def tokenizers_of(tmp_path_factory):
    """name in CONFIGS -> Tokenizers on a vocabulary trained with those settings."""

    @functools.cache
    def load(name: str) -> Tokenizers:
        lower, strip = CONFIGS[name]
        vocab = wp.train_vocab(TRAIN_TEXT, VOCAB_SIZE, tmp_path_factory.mktemp(name),
                               do_lower_case=lower, strip_accents=strip)
        return Tokenizers(vocab.parent, wp.WordPieceTokenizer.from_pretrained_dir(vocab.parent),
                          BertTokenizer.from_pretrained(vocab.parent),
                          BertTokenizerFast.from_pretrained(vocab.parent),
                          BertTokenizerLegacy(str(vocab), do_lower_case=lower,
                                              strip_accents=strip))

    return load


def _legacy_differs(text: str, name: str) -> bool:
    """Whether BertTokenizerLegacy reads `text` differently from BertTokenizer (and us)."""
    lower, strip = CONFIGS[name]
    return (any(unicodedata.category(c) == "Cn" or 0x2B820 <= ord(c) <= 0x2B91F for c in text)
            or (lower and "Σ" in text)
            or (not (lower if strip is None else strip)
                and unicodedata.normalize("NFC", text) != text))


def _encoding(output) -> dict:
    return {key: output[key] for key in ("input_ids", "token_type_ids", "attention_mask")}


def _legacy_encoding(legacy: BertTokenizerLegacy, *texts, **options) -> dict:
    return _encoding(legacy(*texts, return_token_type_ids=True, **options))


# --------------------------------------------------------------------------------------
# Equal to transformers on real and held-out text
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_tokens_and_ids_equal_bert_tokenizer(tokenizers_of, name):
    refs = tokenizers_of(name)
    assert refs.ours.do_lower_case == CONFIGS[name][0]
    assert len(refs.ours) == len(refs.fast) == VOCAB_SIZE
    unk_count = 0
    for text in REAL_TEXT + HELD_OUT:
        tokens = refs.ours.tokenize(text)
        assert tokens == refs.fast.tokenize(text) == refs.fast_alias.tokenize(text), text
        assert refs.ours.encode(text) == _encoding(refs.fast(text)), text
        assert refs.ours.encode(text) == _encoding(refs.fast_alias(text)), text
        unk_count += tokens.count("[UNK]")
    assert unk_count >= 10  # the texts do reach [UNK]: emoji, long words, unknown scripts


@pytest.mark.parametrize("name", CONFIGS)
def test_tokens_and_ids_equal_python_bert_tokenizer(tokenizers_of, name):
    refs = tokenizers_of(name)
    checked = 0
    for text in REAL_TEXT + HELD_OUT:
        if _legacy_differs(text, name):
            continue  # test_where_the_references_differ
        assert refs.ours.tokenize(text) == refs.legacy.tokenize(text), text
        assert refs.ours.encode(text) == _legacy_encoding(refs.legacy, text), text
        checked += 1
    assert checked >= 0.8 * len(REAL_TEXT + HELD_OUT)


def test_where_the_references_differ(tokenizers_of):
    """Where BertTokenizer and BertTokenizerLegacy disagree, we follow BertTokenizer."""
    uncased, cased = tokenizers_of("uncased"), tokenizers_of("cased")

    def check(refs, text, legacy_reads):
        ours = refs.ours.tokenize(text)
        assert ours == refs.fast.tokenize(text), text
        assert refs.legacy.tokenize(text) == refs.ours.tokenize(legacy_reads) != ours, text

    # The legacy composes accents first (NFC), so a decomposed "é" is the vocabulary's "é".
    check(cased, "Cafe\u0301 re\u0301sume\u0301", "Café résumé")
    # Lower-casing: the legacy's str.lower gives a word-final sigma ς; BertTokenizer's
    # character-by-character lower-casing gives σ.
    check(uncased, "ΟΔΟΣ", "οδος")
    # Unassigned code points: the legacy drops them; BertTokenizer keeps them (-> [UNK]).
    check(uncased, "the\u0378film", "thefilm")
    # The first 256 ideographs of CJK Extension E split only in the legacy.
    check(uncased, "the\U0002B820film", "the \U0002B820 film")
    # Pair truncation on a tie (room for an odd number): the legacy gives the extra token
    # to the first sequence, BertTokenizer to the second.
    a, b = "the film was good", "a bad story too"  # 4 tokens each
    ours = uncased.ours.encode(a, b, max_length=10)["token_type_ids"]
    assert ours == uncased.fast(a, b, max_length=10, truncation=True)["token_type_ids"]
    assert ours.count(0) == 1 + 3 + 1 and ours.count(1) == 4 + 1
    assert _legacy_encoding(uncased.legacy, a, b, max_length=10, truncation=True)[
        "token_type_ids"].count(0) == 6
    # An empty second text: a pair for us, the legacy and BertTokenizer's batch call; a
    # single sequence for BertTokenizer's one-text call.
    pair = uncased.ours.encode("the", "")["input_ids"]
    assert pair == _legacy_encoding(uncased.legacy, "the", "")["input_ids"]
    assert pair == uncased.fast(["the"], [""])["input_ids"][0]
    assert pair == [uncased.ours.cls_id, uncased.ours.token_to_id["the"], uncased.ours.sep_id,
                    uncased.ours.sep_id]
    assert uncased.fast("the", "")["input_ids"] == pair[:-1]


def test_unicode_versions(tokenizers_of):
    """Character classes come from Python's Unicode tables (14.0 on Python 3.11).

    The tokenizers library classifies with older tables (about Unicode 8), so ~560 code
    points assigned or re-classified since then are read differently there: e.g. U+2E43
    (a dash, Po since Unicode 9) is punctuation here and in BertTokenizerLegacy, part of
    a word in BertTokenizer. The random-text tests draw from characters all agree on.
    """
    refs = tokenizers_of("uncased")
    assert wp.is_punctuation("\u2e43") and unicodedata.category("\u2e43") == "Po"
    ours = refs.ours.tokenize("the\u2e43film")
    assert ours == refs.legacy.tokenize("the\u2e43film") == ["the", "[UNK]", "film"]
    assert refs.fast.tokenize("the\u2e43film") == ["[UNK]"]


def test_imdb_reviews(shared_data, tmp_path):
    """A vocabulary trained on IMDB training reviews; test reviews tokenized equally."""
    archive = shared_data / "imdb" / "aclImdb_labeled_50k.tar.gz"
    if not archive.is_file():
        pytest.skip(f"no {archive}")
    reviews = _imdb_sample(archive, per_folder=250)
    vocab = wp.train_vocab(reviews["train"], 3000, tmp_path)
    ours = wp.WordPieceTokenizer.from_pretrained_dir(tmp_path)
    fast = BertTokenizer.from_pretrained(tmp_path)
    legacy = BertTokenizerLegacy(str(vocab))
    test = reviews["test"][:60] + reviews["test"][-60:]  # negative and positive reviews
    for review in test:
        tokens = ours.tokenize(review)
        assert tokens == fast.tokenize(review)
        if not _legacy_differs(review, "uncased"):
            assert tokens == legacy.tokenize(review)
    assert sum(len(ours.tokenize(r)) for r in test) > 20_000
    firsts, seconds = test[:16], test[-16:]
    batch = ours.batch_encode(firsts, seconds, max_length=128)
    theirs = fast(firsts, seconds, max_length=128, truncation=True, padding=True,
                  return_tensors="pt")
    for key, value in batch.items():
        assert torch.equal(value, theirs[key]), key


def _imdb_sample(archive: Path, per_folder: int) -> dict[str, list[str]]:
    """The first `per_folder` reviews of each of train/neg, train/pos, test/neg, test/pos."""
    found: dict[tuple[str, str], list[str]] = {}
    pattern = re.compile(r"aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:  # stop reading the archive once every folder has its share
            match = pattern.search(member.name)
            if match and len(found.setdefault(match.groups(), [])) < per_folder:
                found[match.groups()].append(tar.extractfile(member).read().decode("utf-8"))
            if len(found) == 4 and all(len(v) == per_folder for v in found.values()):
                break
    return {split: found[(split, "neg")] + found[(split, "pos")] for split in ("train", "test")}


# --------------------------------------------------------------------------------------
# The pieces by hand
# --------------------------------------------------------------------------------------


def test_basic_tokenization_by_hand():
    assert wp.normalize("Héllo\tWORLD\x00\u200b!\u00a0", True, True, True) == "hello world! "
    assert wp.normalize("Héllo", False, False, True) == "Héllo"
    assert wp.normalize("Héllo", False, True, True) == "Hello"
    assert wp.normalize("ab日本c", False, False, True) == "ab 日  本 c"
    assert wp.normalize("ab日本c", False, False, False) == "ab日本c"
    assert wp.normalize("ΟΔΟΣ", True, False, True) == "οδοσ"  # character by character
    assert wp.split_words(" Hello,  world!! ") == ["Hello", ",", "world", "!", "!"]
    assert wp.split_words("a$b€c¿d") == ["a", "$", "b€c", "¿", "d"]  # ASCII symbols split


def test_wordpiece_by_hand(tmp_path):
    """Longest match first; greedy is not always possible where another split is."""
    vocab_tokens = [*wp.SPECIAL_TOKENS, "un", "##aff", "##able", "a", "ab", "##bc", "##a",
                    "aa", "##aa", "x", "##x"]
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in vocab_tokens), encoding="utf-8")
    vocab = {t: i for i, t in enumerate(vocab_tokens)}
    assert wp.wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wp.wordpiece("aaaaa", vocab) == ["aa", "##aa", "##a"]  # the longest each time
    # "abc" = a ##bc exists, but the longest first piece "ab" leaves "##c": no piece
    assert wp.wordpiece("abc", vocab) == ["[UNK]"]
    assert wp.wordpiece("unx", vocab) == ["un", "##x"]
    assert wp.wordpiece("x" * 100, vocab) == ["x"] + ["##x"] * 99
    assert wp.wordpiece("x" * 101, vocab) == ["[UNK]"]  # longer than 100 characters
    ours = wp.WordPieceTokenizer.from_vocab_file(path)
    fast = BertTokenizer.from_pretrained(tmp_path)
    for text in ["unaffable aaaaa abc unx", "x" * 100, "x" * 101, "UNAFFABLE, un-aff-able."]:
        assert ours.tokenize(text) == fast.tokenize(text)
        assert ours.encode(text)["input_ids"] == fast(text)["input_ids"]
    assert ours.special_ids == [0, 1, 2, 3, 4]
    assert (ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id) == (0, 1, 2, 3, 4)


# --------------------------------------------------------------------------------------
# Pairs, truncation, batches, decoding
# --------------------------------------------------------------------------------------


def _both_encodings(refs: Tokenizers, a: str, b: str | None, **options) -> list:
    """[ours, BertTokenizer's batch call, its one-text call]; "error" where one raises."""
    results = []
    calls = [lambda: refs.ours.encode(a, b, **options),
             lambda: {key: rows[0] for key, rows in _encoding(  # (keeps an empty pair)
                 refs.fast([a], None if b is None else [b], **options)).items()},
             lambda: _encoding(refs.fast(a, b, **options))]
    for call in calls if b else calls[:2]:
        try:
            results.append(call())
        except Exception:  # ValueError here; the Rust truncation error has no finer class
            results.append("error")
    return results


def test_pairs_and_truncation_equal_bert_tokenizer(tokenizers_of):
    refs = tokenizers_of("uncased")
    texts = ["", "the", "the film was good", HELD_OUT[0], max(HELD_OUT[:10], key=len)]
    lengths = [len(refs.ours.tokenize(t)) for t in texts]
    assert lengths[0] == 0 and lengths[1] == 1 and max(lengths) >= 20
    outcomes = []
    for a in texts:
        for b in [None, *texts]:
            total = len(refs.ours.encode(a, b)["input_ids"])
            for max_length in range(2 if b is None else 3, total + 2):
                for strategy in wp.TRUNCATIONS:
                    ours, *theirs = _both_encodings(refs, a, b, max_length=max_length,
                                                    truncation=strategy)
                    assert all(ours == t for t in theirs), (a, b, max_length, strategy)
                    outcomes.append("error" if ours == "error" else
                                    len(ours["input_ids"]) == min(total, max_length))
    assert len(outcomes) > 1000 and all(o in ("error", True) for o in outcomes)
    assert 100 < outcomes.count("error") < len(outcomes) / 2  # only_first/second too short
    # no truncation asked: the whole pair, and segment ids 0 for [CLS] A [SEP], 1 after
    whole = refs.ours.encode(texts[3], texts[4], max_length=8, truncation=False)
    assert len(whole["input_ids"]) == sum(lengths[3:]) + 3
    assert whole["token_type_ids"] == [0] * (lengths[3] + 2) + [1] * (lengths[4] + 1)


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_batches_with_padding(tokenizers_of, name):
    refs = tokenizers_of(name)
    texts, pairs = HELD_OUT[:6] + REAL_TEXT[:6], HELD_OUT[-12:]
    ours = refs.ours.batch_encode(texts)
    theirs = refs.fast(texts, padding=True, return_tensors="pt")
    lengths = ours["attention_mask"].sum(1)
    assert lengths.min() < lengths.max() == ours["input_ids"].shape[1]  # padding happened
    for kwargs in [{}, {"max_length": 24}, {"max_length": 40, "padding": "max_length"}]:
        ours = refs.ours.batch_encode(texts, pairs, **kwargs)
        theirs = refs.fast(texts, pairs, return_tensors="pt", truncation="max_length" in kwargs,
                           **{"padding": True, **kwargs})
        for key, value in ours.items():
            assert value.dtype == torch.int64 and torch.equal(value, theirs[key]), (kwargs, key)
        assert ((ours["input_ids"] == refs.ours.pad_id) == (ours["attention_mask"] == 0)).all()
    lists = refs.ours.batch_encode(texts, max_length=16, return_tensors=None)
    assert lists == _encoding(refs.fast(texts, max_length=16, truncation=True, padding=True))
    one = refs.ours.encode(texts[0], pairs[0], return_tensors="pt")
    assert one["input_ids"].shape == (1, len(refs.ours.encode(texts[0], pairs[0])["input_ids"]))


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_decode_equals_bert_tokenizer(tokenizers_of, name):
    refs = tokenizers_of(name)
    for text in REAL_TEXT + HELD_OUT:
        ids = refs.ours.encode(text)["input_ids"]
        for skip in (False, True):
            assert refs.ours.decode(ids, skip) == refs.fast.decode(ids, skip_special_tokens=skip)
    ids = refs.ours.batch_encode(HELD_OUT[:2])["input_ids"]
    assert refs.ours.decode(ids[0]) == refs.fast.decode(ids[0].tolist())
    assert refs.ours.decode(refs.ours.encode("it's the film's end, isn't it?")["input_ids"],
                            skip_special_tokens=True) == "it ' s the film ' s end, isn ' t it?"


# --------------------------------------------------------------------------------------
# Tokenizer directories
# --------------------------------------------------------------------------------------

ADDED_TEXT = ["a NewWord b newword NEWWORD x<ent>y [X]z [x] the<ent>film", "NewWords <ent>"]


def _same_ids(ours, reference, texts=ADDED_TEXT + REAL_TEXT[:4]):
    for text in texts:
        ids = reference(text)["input_ids"]
        assert ours.encode(text)["input_ids"] == ids, text
        assert ours.tokenize(text) == reference.convert_ids_to_tokens(ids[1:-1]), text


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_directories_written_by_transformers(tokenizers_of, tmp_path, name):
    """save_pretrained with added tokens: tokenizer.json (BertTokenizer) or vocab.txt (legacy)."""
    refs = tokenizers_of(name)
    lower, strip = CONFIGS[name]
    writers = {"tokenizers": BertTokenizer.from_pretrained(refs.directory),
               "legacy": BertTokenizerLegacy(str(refs.directory / "vocab.txt"),
                                             do_lower_case=lower, strip_accents=strip)}
    for kind, writer in writers.items():
        writer.add_tokens(["NewWord", "[X]"])  # matched in the normalised text
        writer.add_special_tokens({"additional_special_tokens": ["<ent>"]})  # in the raw text
        writer.save_pretrained(tmp_path / kind)
        ours = wp.WordPieceTokenizer.from_pretrained_dir(tmp_path / kind)
        reloaded = BertTokenizer.from_pretrained(tmp_path / kind)
        assert len(ours) == len(reloaded) == VOCAB_SIZE + 3 and ours.do_lower_case == lower
        _same_ids(ours, reloaded)
        if kind == "tokenizers":
            _same_ids(ours, writer)
        elif not lower:  # the legacy matches "NewWord" in the raw text, not the lower-cased
            _same_ids(ours, BertTokenizerLegacy.from_pretrained(tmp_path / kind))
        assert ours.special_ids == [0, 1, 2, 3, 4, ours.token_to_id["<ent>"]]
    assert not (tmp_path / "tokenizers" / "vocab.txt").exists()  # read from tokenizer.json


def test_our_directory_read_by_transformers(tokenizers_of, tmp_path):
    refs = tokenizers_of("cased_strip_accents")
    added = [wp.AddedToken("<ent>", VOCAB_SIZE),
             wp.AddedToken("NewWord", VOCAB_SIZE + 1, special=False, normalized=True)]
    ours = wp.WordPieceTokenizer(refs.ours.vocab, do_lower_case=False, strip_accents=True,
                                 added_tokens=added)
    ours.save_pretrained(tmp_path)
    _same_ids(ours, BertTokenizer.from_pretrained(tmp_path))
    _same_ids(ours, BertTokenizerLegacy.from_pretrained(tmp_path))
    again = wp.WordPieceTokenizer.from_pretrained_dir(tmp_path)
    assert (again.token_to_id, again.added_tokens) == (ours.token_to_id, ours.added_tokens)
    assert (again.do_lower_case, again.strip_accents) == (False, True)


def test_hub_layout_vocab_and_config(tokenizers_of, tmp_path):
    """vocab.txt alone: transformers' defaults (uncased); tokenizer_config.json overrides."""
    shutil.copy(tokenizers_of("cased").directory / "vocab.txt", tmp_path / "vocab.txt")
    ours = wp.WordPieceTokenizer.from_pretrained_dir(tmp_path)
    assert ours.do_lower_case and ours.strip_accents
    _same_ids(ours, BertTokenizer.from_pretrained(tmp_path), REAL_TEXT)
    config = {"do_lower_case": False, "model_max_length": 512,
              "cls_token": {"__type": "AddedToken", "content": "[CLS]", "lstrip": False,
                            "normalized": False, "rstrip": False, "single_word": False}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    ours = wp.WordPieceTokenizer.from_pretrained_dir(tmp_path)
    assert not ours.do_lower_case and not ours.strip_accents
    _same_ids(ours, BertTokenizer.from_pretrained(tmp_path), REAL_TEXT)


# --------------------------------------------------------------------------------------
# Random text (hypothesis)
# --------------------------------------------------------------------------------------


@functools.cache
def _stable_characters() -> list[str]:
    """Characters of planes 0-2 assigned by Unicode 3.2 and classified alike ever since.

    Both Python's tables and the tokenizers library's older ones agree on these.
    """
    old = unicodedata.ucd_3_2_0
    return [chr(code) for code in range(0x30000)
            if not 0xD800 <= code <= 0xDFFF
            and old.category(chr(code)) != "Cn"
            and old.category(chr(code)) == unicodedata.category(chr(code))]


RANDOM_PIECES = st.one_of(
    st.sampled_from(string.printable),
    st.sampled_from(sorted(set("".join(WORDS)) | set("ÀÉÎÕÜàéîõüçñß"))),  # mostly known
    st.deferred(lambda: st.sampled_from(_stable_characters())),  # anything, mostly [UNK]
    st.sampled_from([*wp.SPECIAL_TOKENS, "[cls]", "##", "\u00a0", "\u3000", "\x00", "\u200b",
                     "\ufffd", "\u0378", "\U000e0080", "\U0002b740", "e\u0301", "Σ"]),
)
RANDOM_TEXT = st.lists(RANDOM_PIECES, max_size=30).map("".join)


@settings(max_examples=120, deadline=None)
@given(text=RANDOM_TEXT, name=st.sampled_from(list(CONFIGS)))
def test_random_text_ids_equal_bert_tokenizer(tokenizers_of, text, name):
    refs = tokenizers_of(name)
    ours = refs.ours.encode(text)
    assert ours == _encoding(refs.fast_alias(text))  # BertTokenizerFast
    if not _legacy_differs(text, name):
        assert ours == _legacy_encoding(refs.legacy, text)
    tokens = refs.ours.tokenize(text)  # decoding and tokenizing again gives the same ids
    ids = refs.ours.convert_tokens_to_ids(tokens)
    assert refs.ours.convert_tokens_to_ids(refs.ours.tokenize(refs.ours.decode(ids))) == ids


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(["uncased", "cased"]))
def test_decode_encode_round_trip(tokenizers_of, data, name):
    """Text the vocabulary covers (every character a piece in both forms) comes back."""
    ours = tokenizers_of(name).ours
    covered = sorted(c for c in set("".join(WORDS)) if c in ours.vocab
                     and "##" + c in ours.vocab and not wp.is_punctuation(c)
                     and not wp.is_cjk(c) and wp.normalize(c, ours.do_lower_case,
                                                           ours.strip_accents, True) == c)
    assert len(covered) >= 30
    words = data.draw(st.lists(st.text(st.sampled_from(covered), min_size=1, max_size=12),
                               min_size=1, max_size=10))
    text = " ".join(words)
    assert ours.decode(ours.encode(text)["input_ids"], skip_special_tokens=True) == text
    assert ours.decode(ours.encode(text)["input_ids"]) == f"[CLS] {text} [SEP]"


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=30), skip=st.booleans())
def test_decode_random_ids_equals_bert_tokenizer(tokenizers_of, ids, skip):
    refs = tokenizers_of("uncased")
    assert refs.ours.decode(ids, skip) == refs.fast.decode(ids, skip_special_tokens=skip)


# --------------------------------------------------------------------------------------
# Bad input, level purity
# --------------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors(tokenizers_of, tmp_path):
    ours = tokenizers_of("uncased").ours
    with pytest.raises(FileNotFoundError, match="no vocabulary file"):
        wp.WordPieceTokenizer.from_vocab_file(tmp_path / "missing.txt")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'\\[CLS\\]' is not in the vocabulary"):
        wp.WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="neither vocab.txt"):
        wp.WordPieceTokenizer.from_pretrained_dir(tmp_path / "empty")
    with pytest.raises(TypeError, match="takes a str"):
        ours.tokenize(["a list"])
    for texts, pairs in [("one text", None), (["a", "b"], ["c"]), (["a"], []), ([], None),
                         (["a", 1], None)]:
        with pytest.raises(TypeError, match="non-empty lists of str"):
            ours.batch_encode(texts, pairs)
    with pytest.raises(ValueError, match="special tokens alone take 3"):
        ours.encode("a", "b", max_length=2)
    with pytest.raises(ValueError, match="truncation must be one of"):
        ours.encode("a", max_length=5, truncation="longest")
    with pytest.raises(ValueError, match="padding must be"):
        ours.batch_encode(["a"], padding="max_length")
    with pytest.raises(ValueError, match="return_tensors"):
        ours.batch_encode(["a"], return_tensors="np")
    with pytest.raises(ValueError, match="too short"):
        ours.encode("good", "the film was good", max_length=5, truncation="only_first")
    with pytest.raises(ValueError, match="too short"):
        ours.encode("the film was good", max_length=4, truncation="only_second")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([2, VOCAB_SIZE, 3])
    with pytest.raises(ValueError, match="leaves no room"):
        wp.train_vocab(["a b c"], 5, tmp_path / "tiny")


def test_level_purity():
    assert_level_purity(Path(__file__).parent)
