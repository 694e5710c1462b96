"""Tests of lesson 09's tokenizers (09_GPT/paper/tokenizer.py).

The references: transformers 5's `GPT2Tokenizer` (the tokenizers library's Rust BPE with
the ByteLevel pre-tokenizer; `GPT2TokenizerFast` is another name for the same class since
transformers 5; both are loaded with from_pretrained of the folder our trainer wrote), and
the tokenizers library itself (its own BPE trainer and encoder). Vocabularies are trained
here on a generated multilingual corpus; no file is downloaded.

- bytes_to_unicode is GPT-2's map; pre-tokenisation equals the ByteLevel pre-tokenizer's
- training: a hand-worked example (Sennrich et al.'s words) gives the merges derived by hand;
  training is deterministic and does not depend on the order of the texts; vocab_size and
  min_frequency are kept
- ids equal GPT2Tokenizer's and GPT2TokenizerFast's on held-out text with accents, CJK,
  emoji (ZWJ sequences, skin tones, flags), digit runs, whitespace runs, contractions, very
  long words, "<|endoftext|>"; with add_prefix_space too; on random text (hypothesis)
- decode equals GPT2Tokenizer.decode (also on random ids, cut emoji included), and
  decode(encode(s)) == s for any string (hypothesis)
- files: GPT-2's own vocab.json / merges.txt format, transformers' save_pretrained
  (tokenizer.json only), and a vocabulary trained by the tokenizers library (special token
  first, bytes in its own order) all load into ours and give the reference's ids
- the extension point: a CLIP-style subclass (lower-casing, CLIP's pattern, "</w>") trained
  by our trainer equals the tokenizers library's BPE with end_of_word_suffix="</w>"
- CharTokenizer: nanoGPT's ids, round trip, save/load, errors; clear errors; level purity

Run: .venv/bin/python -m pytest 09_GPT/paper/test_tokenizer.py -q
"""

from __future__ import annotations

import ast
import functools
import json
import random
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import GPT2Tokenizer, GPT2TokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode as transformers_bytes_to_unicode
from transformers.utils import logging as transformers_logging

from utils import import_lesson
from utils.testing import assert_level_purity, assert_same_entries

tk = import_lesson("09_GPT.paper.tokenizer")

transformers_logging.set_verbosity_error()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Real text: every class of the pattern, and what a byte-level vocabulary must survive.
REAL_TEXT = [
    "The café's crème brûlée was naïve, said Zoë, très bien!",
    "Ångström, Øresund, Łódź, İstanbul, straße, Привет, мир! Ελλάδα, e\u0301 (combining)",
    "日本語のテキストと中文混合 (東京), 한국어 텍스트.",
    "Emoji: 😀👍🏽 👨‍👩‍👧 👩🏽‍💻 🏳️‍🌈 ❤️ 🇫🇷🇯🇵 ✓ ★ 😀😀😀",
    "digits 1234567890 3.14159 1,000,000 2024-12-06 007 x86_64 0xFF 1e-10 ٣٤٥ ²³",
    "spaces:  two   three    four\ttab\t\ttabs\nnew line\n\n\nthree\r\nCRLF   \n  \t ",
    "trailing spaces   ", "   leading spaces", " ", "\n", "\t \n \t", "",
    "Don't stop: it's the film's, isn't it? We'll, I'd, they've, you're, I'm. DON'T 'S 'tis",
    "Pneumonoultramicroscopicsilicovolcanoconiosis" * 4 + " " + "ab" * 150,
    "<|endoftext|>The end.<|endoftext|><|endoftext|> again <|endoftext <|endoftext|>x",
    "Punctuation!!! ... (x) [y] {z} $100 50% a+b=c <tag> @at #hash &amp; «» „“ ¿Qué? – — …",
    "\u00a0nbsp\u2003em\u3000ideo\u200bzwsp\x00nul\ufffdrepl\x07bell\u00adsoft\x1cfs\ue000pua",
]

WORDS = ("the a of and to in is was it play played playing player plays run running "
         "runner act acting action believe believed watch watched love loved lovely hate "
         "direct director film films story stories Café café naïve Zoë résumé Straße Ærø "
         "ΟΔΟΣ οδος Ελλάδα Привет мир 日本語 中文 東京 한국어 😀 👍 👨‍👩‍👧 CamelCase McDonald's "
         "don't it's we'll I'd they've you're I'm 1999 2024 3.5 $10 50% ! ? , . ; : ' \" ( ) "
         "- -- ... [ ]").split()
SEPARATORS = (" ",) * 12 + ("  ", "\n", "\n\n", "\t", "   ", ", ", ". ")


def _generated_corpus(n_sentences: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(WORDS) + rng.choice(SEPARATORS)
                    for _ in range(rng.randint(3, 20))) for _ in range(n_sentences)]


TRAIN_TEXT = _generated_corpus(600, seed=0)
HELD_OUT = _generated_corpus(40, seed=1)
VOCAB_SIZE = 520  # 256 bytes, 263 merges, <|endoftext|>


@dataclass
class Trained:
    directory: Path  # vocab.json, merges.txt, tokenizer_config.json written by ours
    ours: object  # tk.ByteLevelBPETokenizer
    reference: GPT2Tokenizer
    reference_fast: GPT2Tokenizer  # loaded through the name GPT2TokenizerFast


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    ours = tk.ByteLevelBPETokenizer.train(TRAIN_TEXT, VOCAB_SIZE)
    directory = ours.save(tmp_path_factory.mktemp("ours"))
    return Trained(directory, ours, GPT2Tokenizer.from_pretrained(directory),
                   GPT2TokenizerFast.from_pretrained(directory))


# --------------------------------------------------------------------------------------
# The byte map and the pre-tokenisation
# --------------------------------------------------------------------------------------


def test_bytes_to_unicode_is_gpt2s_map():
    table = tk.bytes_to_unicode()
    assert table == transformers_bytes_to_unicode()
    assert list(table) == list(transformers_bytes_to_unicode())  # the order of ids 0-255
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    assert table[0] == "Ā" and table[173] == "Ń" and table[255] == "ÿ"  # 0 -> 256, 173 -> 323
    assert list(table)[:3] == [33, 34, 35] and list(table)[188] == 0


def test_pre_tokenize_by_hand_and_equals_byte_level_pre_tokenizer():
    assert tk.pre_tokenize("Hello  world!! 123abc") == [
        "Hello", " ", " world", "!!", " 123", "abc"]
    # the run's last character goes to the word, or alone when it is not a space
    assert tk.pre_tokenize("a   b\n\nc  ") == ["a", "  ", " b", "\n", "\n", "c", "  "]
    assert tk.pre_tokenize("I'm DON'T we'll") == ["I", "'m", " DON", "'", "T", " we", "'ll"]
    assert tk.pre_tokenize("a\tb") == ["a", "\t", "b"]  # one whitespace before a word
    reference = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for text in REAL_TEXT + HELD_OUT:
        ours = ["".join(tk.BYTE_TO_UNICODE[b] for b in piece.encode()) for piece in
                tk.pre_tokenize(text)]
        assert ours == [piece for piece, _ in reference.pre_tokenize_str(text)], text


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def test_training_by_hand():
    """Sennrich et al.'s words: low x5, lower x2, newest x6, widest x3.

    Pair counts at the start: es 9, st 9, we 8 (lower 2 + newest 6), lo 7, ow 7, ne 6, ew 6,
    wi 3, id 3, de 3, er 2. Ties go to the pair first in string order.
    1. (e, s) 9 beats (s, t) 9.  newest -> n e w es t, widest -> w i d es t; "we" is now 2.
    2. (es, t) 9.                -> n e w est, w i d est
    3. (l, o) 7 beats (o, w) 7.  4. (lo, w) 7: low, low e r.
    5. Counts of 6: (e, w), (n, e), (w, est); (e, w) first.   -> n ew est
    6. (ew, est) 6 before (n, ew) 6.   7. (n, ewest) 6: newest.
    8. Counts of 3: (d, est), (i, d), (w, i); (d, est) first.  9. (i, dest).  10. (w, idest).
    11. Counts of 2: (e, r) before (low, e).   12. (low, er): lower. Then every word is
    one symbol: no pair is left.
    """
    words = {tuple("low"): 5, tuple("lower"): 2, tuple("newest"): 6, tuple("widest"): 3}
    expected = [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w"), ("e", "w"), ("ew", "est"),
                ("n", "ewest"), ("d", "est"), ("i", "dest"), ("w", "idest"), ("e", "r"),
                ("low", "er")]
    assert tk.train_bpe(words, 100, min_frequency=1) == expected
    assert tk.train_bpe(words, 100, min_frequency=3) == expected[:10]  # pairs seen twice stay
    assert tk.train_bpe(words, 4) == expected[:4]
    # The same through text: pre-tokens "low", "\n", ... ("\n" has no pair to merge).
    text = "low\n" * 5 + "lower\n" * 2 + "newest\n" * 6 + "widest\n" * 3
    ours = tk.ByteLevelBPETokenizer.train(text, 256 + 12 + 1, min_frequency=1)
    assert ours.merges == expected
    assert [ours.vocab[a + b] for a, b in expected] == list(range(256, 268))
    assert ours.vocab["<|endoftext|>"] == 268
    assert ours.tokenize("lowest lower") == ["low", "est", "Ġ", "lower"]
    # Overlaps: "aaa" holds (a, a) twice for counting, once for merging.
    assert tk.merge_pair(("a", "a", "a"), ("a", "a")) == ("aa", "a")
    assert tk.train_bpe({tuple("aaa"): 1}, 5, min_frequency=1) == [("a", "a"), ("aa", "a")]


def test_training_is_deterministic_and_keeps_vocab_size(trained):
    again = tk.ByteLevelBPETokenizer.train(TRAIN_TEXT[::-1], VOCAB_SIZE)  # another order
    assert_same_entries(again.merges, trained.ours.merges, "merges")
    assert_same_entries(again.vocab, trained.ours.vocab, "vocabulary")
    assert len(trained.ours) == VOCAB_SIZE == len(trained.ours.merges) + 257
    ids = sorted(trained.ours.vocab.values())
    assert ids == list(range(VOCAB_SIZE))
    assert [trained.ours.id_to_token[i] for i in range(256)] == list(tk.BYTE_TO_UNICODE.values())
    # merges learned first are the most frequent: the common words of the corpus
    assert {"Ġthe", "Ġplay", "ing"} <= set(trained.ours.vocab)
    # a corpus with few pairs stops early: no pair occurs twice
    assert len(tk.ByteLevelBPETokenizer.train("abcd efgh", 1000)) == 257


def test_training_is_fast_enough():
    """About 10,000 distinct words: recounting every pair of the whole table at each of the
    943 merges took about 25 s of CPU time here, the incremental counts 0.4 s. (Process
    time, so that a busy machine does not fail the test.)"""
    rng = random.Random(2)
    syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    text = " ".join("".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(15000))
    start = time.process_time()
    ours = tk.ByteLevelBPETokenizer.train(text, 1200)
    assert len(ours) == 1200 and time.process_time() - start < 4


# --------------------------------------------------------------------------------------
# Ids and decoding against GPT2Tokenizer
# --------------------------------------------------------------------------------------


def test_ids_equal_gpt2_tokenizer(trained):
    assert trained.reference_fast.__class__ is GPT2Tokenizer  # one class in transformers 5
    # The trap of the pinned transformers: the file arguments are ignored, one token is left.
    directory = trained.directory
    assert len(GPT2Tokenizer(vocab_file=str(directory / "vocab.json"),
                             merges_file=str(directory / "merges.txt"))) == 1
    assert len(trained.reference) == len(trained.ours) == VOCAB_SIZE
    for text in REAL_TEXT + HELD_OUT:
        ids = trained.ours.encode(text)
        assert ids == trained.reference(text)["input_ids"], text
        assert ids == trained.reference_fast(text)["input_ids"], text
        assert trained.ours.tokenize(text) == trained.reference.convert_ids_to_tokens(ids)
    held_out = "".join(HELD_OUT)
    assert len(held_out) / len(trained.ours.encode(held_out)) > 2.5  # merges do compress
    eot = trained.ours.vocab["<|endoftext|>"]
    assert trained.ours.encode("a<|endoftext|>b").count(eot) == 1
    assert eot not in trained.ours.encode("a<|endoftext|>b", allowed_special=())
    assert (trained.ours.encode("a<|endoftext|>b", allowed_special=())
            == trained.ours.encode("a<|") + trained.ours.encode("endoftext|>b"))


def test_add_prefix_space_equals_gpt2_tokenizer(trained, tmp_path):
    ours = tk.ByteLevelBPETokenizer(trained.ours.vocab, trained.ours.merges,
                                    add_prefix_space=True)
    ours.save(tmp_path)
    reference = GPT2Tokenizer.from_pretrained(tmp_path)
    assert tk.ByteLevelBPETokenizer.from_pretrained(tmp_path).add_prefix_space
    for text in REAL_TEXT[:6] + ["the film", " the film", "<|endoftext|>the<|endoftext|> a"]:
        assert ours.encode(text) == reference(text)["input_ids"], text
    assert ours.encode("film")[0] == ours.encode(" film")[0] == ours.vocab["Ġfilm"]


def test_decode_equals_gpt2_tokenizer(trained):
    for text in REAL_TEXT + HELD_OUT:
        ids = trained.ours.encode(text)
        assert trained.ours.decode(ids) == text
        for skip in (False, True):
            assert (trained.ours.decode(ids, skip)
                    == trained.reference.decode(ids, skip_special_tokens=skip))
    ids = trained.ours.encode("🦀")  # four bytes in 3 tokens: a cut gives U+FFFD
    assert len(ids) > 1 and trained.ours.decode(ids[:1]) == trained.reference.decode(ids[:1])
    assert trained.ours.decode(ids[:1]) == "\ufffd"


@functools.cache
def _stable_characters() -> list[str]:
    """Characters that Python's Unicode tables (those of the `regex` module are newer still)
    and the tokenizers library's agree on: the ones Python knows (not Cn), surrogates out."""
    return [chr(code) for code in range(0x30000)
            if not 0xD800 <= code <= 0xDFFF and unicodedata.category(chr(code)) != "Cn"]


RANDOM_PIECES = st.one_of(
    st.sampled_from(sorted(set("".join(WORDS)))),
    st.sampled_from(WORDS),
    st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "   \n", "'s", "'ll", "'", "0", "123",
                     "<|endoftext|>", "<|", "\u00a0", "\u200d", "\U0001f3fd", "\x00"]),
    st.deferred(lambda: st.sampled_from(_stable_characters())),
)
RANDOM_TEXT = st.lists(RANDOM_PIECES, max_size=30).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=RANDOM_TEXT)
def test_random_text_ids_equal_gpt2_tokenizer(trained, text):
    assert trained.ours.encode(text) == trained.reference(text)["input_ids"]


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_decode_encode_round_trip_for_any_string(trained, text):
    assert trained.ours.decode(trained.ours.encode(text)) == text
    assert trained.ours.decode(trained.ours.encode(text, allowed_special=())) == text


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=30), skip=st.booleans())
def test_decode_random_ids_equals_gpt2_tokenizer(trained, ids, skip):
    assert (trained.ours.decode(ids, skip)
            == trained.reference.decode(ids, skip_special_tokens=skip))


# --------------------------------------------------------------------------------------
# Other people's files
# --------------------------------------------------------------------------------------


def _write_gpt2_format(directory: Path, merges: list[tuple[str, str]]) -> None:
    """vocab.json and merges.txt as GPT-2's release has them (openai/gpt-2 encoder.json and
    vocab.bpe, renamed by transformers): the 256 byte symbols first in bytes_to_unicode's
    order, then one token per merge, "<|endoftext|>" last; non-ASCII characters escaped
    ("\\u0120the"); merges.txt opens with "#version: 0.2" and ends with a newline."""
    vocab = {char: i for i, char in enumerate(transformers_bytes_to_unicode().values())}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def test_reads_gpt2s_own_files(trained, tmp_path):
    _write_gpt2_format(tmp_path, trained.ours.merges)
    assert "\\u0120" in (tmp_path / "vocab.json").read_text()[:5000]
    first = " ".join(trained.ours.merges[0])
    assert (tmp_path / "merges.txt").read_text().startswith(f"#version: 0.2\n{first}\n")
    from_files = tk.ByteLevelBPETokenizer.from_files(tmp_path / "vocab.json",
                                                     tmp_path / "merges.txt")
    from_folder = tk.ByteLevelBPETokenizer.from_pretrained(tmp_path)  # no config file
    reference = GPT2Tokenizer.from_pretrained(tmp_path)
    assert_same_entries(from_files.vocab, trained.ours.vocab, "vocabulary from files")
    assert_same_entries(from_folder.vocab, trained.ours.vocab, "vocabulary from the folder")
    assert_same_entries(from_files.merges, trained.ours.merges, "merges from files")
    assert from_folder.special_tokens == ["<|endoftext|>"]
    for text in REAL_TEXT + HELD_OUT[:10]:
        assert from_folder.encode(text) == reference(text)["input_ids"] == trained.ours.encode(text)


def test_reads_transformers_save_pretrained(trained, tmp_path):
    trained.reference.save_pretrained(tmp_path)
    assert not (tmp_path / "vocab.json").exists()  # transformers 5 writes tokenizer.json only
    ours = tk.ByteLevelBPETokenizer.from_pretrained(tmp_path)
    assert_same_entries(ours.vocab, trained.ours.vocab, "vocabulary")
    assert_same_entries(ours.merges, trained.ours.merges, "merges")
    assert ours.special_tokens == ["<|endoftext|>"]


def test_vocabulary_trained_by_the_tokenizers_library(tmp_path):
    """models.BPE + the ByteLevel pre-tokenizer, trained by its BpeTrainer: the special token
    takes id 0, the bytes follow in its own order; our encoder reads those files."""
    library = Tokenizer(models.BPE())
    library.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    library.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    library.train_from_iterator(TRAIN_TEXT, trainer)
    library.model.save(str(tmp_path))
    ours = tk.ByteLevelBPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert ours.vocab["<|endoftext|>"] == 0 and len(ours) == library.get_vocab_size() == 500
    assert ours.vocab["Ā"] != 257  # not GPT-2's order of the bytes
    for text in REAL_TEXT + HELD_OUT:
        ids = ours.encode(text)
        assert ids == library.encode(text).ids, text
        assert ours.decode(ids) == library.decode(ids, skip_special_tokens=False) == text


# --------------------------------------------------------------------------------------
# The extension point: a CLIP-style tokenizer
# --------------------------------------------------------------------------------------

CLIP_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|"""
                r"""[\p{N}]|[^\s\p{L}\p{N}]+""")


class ClipStyleTokenizer(tk.ByteLevelBPETokenizer):
    """Lower-case and clean whitespace; CLIP's pattern (whitespace dropped, single digits);
    "</w>" ends each word."""

    pattern = regex.compile(CLIP_PATTERN, regex.IGNORECASE)
    end_of_word_suffix = "</w>"

    def normalize(self, text: str) -> str:
        # character by character, as the tokenizers library: a final "Σ" gives "σ", not "ς"
        text = regex.sub(r"\s+", " ", unicodedata.normalize("NFC", text))
        return "".join(char.lower() for char in text)


def test_clip_style_subclass_equals_bpe_with_end_of_word_suffix():
    ours = ClipStyleTokenizer.train(TRAIN_TEXT, 700)
    assert len(ours) == 700 and len(ours.alphabet()) == 512
    assert "the</w>" in ours.vocab and "Ġ" not in "".join(ours.merges[0])
    library = Tokenizer(models.BPE(vocab=ours.vocab, merges=ours.merges,
                                   end_of_word_suffix="</w>", fuse_unk=False))
    library.normalizer = normalizers.Sequence([
        normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    library.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    library.add_special_tokens(["<|endoftext|>"])
    for text in REAL_TEXT[:10] + HELD_OUT:
        assert ours.encode(text) == library.encode(text).ids, text
    assert ours.decode(ours.encode("The film,  played!")) == "the film , played ! "


# --------------------------------------------------------------------------------------
# Characters
# --------------------------------------------------------------------------------------


def test_char_tokenizer(tmp_path):
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    chars = tk.CharTokenizer.from_text(text)
    assert chars.chars == sorted(set(text)) and len(chars) == chars.vocab_size == 27
    assert chars.encode("\n ") == [0, 1] and chars.encode("e")[0] == chars.chars.index("e")
    assert chars.decode(chars.encode(text)) == text
    again = tk.CharTokenizer.load(chars.save(tmp_path / "chars.json"))
    assert again.chars == chars.chars and again.encode(text) == chars.encode(text)
    with pytest.raises(ValueError, match=r"character 'x' \(U\+0078\) at position 2"):
        chars.encode("eex")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        chars.decode([0, 27])
    with pytest.raises(ValueError, match="non-empty"):
        tk.CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="twice"):
        tk.CharTokenizer("aba")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a character vocabulary"):
        tk.CharTokenizer.load(tmp_path / "other.json")


# --------------------------------------------------------------------------------------
# Bad input, level purity, Tiny Shakespeare
# --------------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors(trained, tmp_path):
    with pytest.raises(TypeError, match="encode takes a str"):
        trained.ours.encode(["a list"])
    with pytest.raises(ValueError, match="not special tokens"):
        trained.ours.encode("a", allowed_special={"<|pad|>"})
    with pytest.raises(ValueError, match="not in the vocabulary"):
        trained.ours.decode([1, VOCAB_SIZE])
    with pytest.raises(ValueError, match="smaller than the 256 byte symbols"):
        tk.ByteLevelBPETokenizer.train("abc", 200)
    with pytest.raises(FileNotFoundError, match="needs vocab.json and merges.txt"):
        tk.ByteLevelBPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    with pytest.raises(FileNotFoundError, match="neither vocab.json"):
        tk.ByteLevelBPETokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not in the vocabulary: do vocab.json and merges.txt"):
        tk.ByteLevelBPETokenizer({"a": 0, "b": 1}, [("a", "b")])
    without_bytes = tk.ByteLevelBPETokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="must hold all 256 bytes"):
        without_bytes.encode("ab")


def test_no_tokenizer_library_inside_and_level_purity():
    tree = ast.parse((Path(__file__).parent / "tokenizer.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"tokenizers", "transformers", "tiktoken", "torch"}, imported
    assert_level_purity(Path(__file__).parent)


@pytest.mark.slow
def test_tiny_shakespeare_trains_in_seconds(shared_data):
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    start = time.perf_counter()
    ours = tk.ByteLevelBPETokenizer.train(text[:cut], 4096)
    assert time.perf_counter() - start < 30 and len(ours) == 4096
    ids = ours.encode(text[cut:])
    assert ours.decode(ids) == text[cut:] and len(text[cut:]) / len(ids) > 2.5
