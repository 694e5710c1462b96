"""Tests of CLIP's tokenizer (12_CLIP/paper/tokenizer.py).

The references: transformers 5's `CLIPTokenizer` (the tokenizers library's BPE with
end_of_word_suffix="</w>"; `CLIPTokenizerFast` is another name for the same class since
transformers 5), loaded with from_pretrained of the folders ours wrote; and open_clip's
`SimpleTokenizer` / `open_clip.tokenize` (OpenAI's code) on OpenAI's real vocabulary, the
bpe_simple_vocab_16e6.txt.gz that open_clip ships. Nothing is downloaded.

- cleaning, pre-tokenisation and "</w>" by hand; training by hand (Sennrich et al.'s words
  with "</w>": "low</w>" and the "low" of "lower" are different tokens)
- training: OpenAI's id layout (512 symbols, merges, start, end), deterministic, does not
  depend on the order of the texts
- a trained vocabulary: ids, padded batches and attention masks equal CLIPTokenizer's and
  CLIPTokenizerFast's on held-out captions (punctuation, digits, accents, emoji, upper case,
  whitespace runs, a very long text truncated to 77 with the end token kept)
- OpenAI's vocabulary: the 49,408 ids equal open_clip's; ids equal SimpleTokenizer.encode,
  and batches open_clip.tokenize (padding 0) on 50 real captions; the same vocabulary
  written as vocab.json + merges.txt gives CLIPTokenizerFast's ids (padding with the end token)
- the cleaning differences between OpenAI and transformers (html entities, final sigma,
  ftfy), each reproduced by an option; with it, random text gives transformers' ids
  (cleaning="transformers") and open_clip's (fix_text=ftfy.fix_text) (hypothesis)
- decode gives the lower-cased cleaned text back, as both references; files round trip;
  determinism; clear errors

Run: .venv/bin/python -m pytest 12_CLIP/paper/test_tokenizer.py -q
"""

from __future__ import annotations

import ast
import gzip
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import ftfy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import CLIPTokenizer, CLIPTokenizerFast
from transformers.utils import logging as transformers_logging

from utils import import_lesson
from utils.testing import assert_same_entries

tk = import_lesson("12_CLIP.paper.tokenizer")

transformers_logging.set_verbosity_error()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------

ADJECTIVES = ("red green blue small large old young wooden shiny striped fluffy happy "
              "sleepy Bright DARK").split()
NOUNS = ("dog cat car house tree bird boat horse bicycle kitchen street mountain beach "
         "child woman man pizza café résumé").split()
PLACES = ("on the grass|in the park|next to a table|under a bridge|at night|in the snow|"
          "by the sea|on a sunny day|in Zürich|near the Eiffel Tower").split("|")
TEMPLATES = ("a photo of a {a} {n} {p}.", "A {a} {n} {p}", "{n} {p}, {a}!", "There's a {a} "
             "{n} {p}.", "{k} {a} {n}s {p}", "Picture: the {n} ({a}) {p}?", "my {n}'s {a} toy "
             "{p} :)", "{k}x {a} {n}s -- {p}")


def _captions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(TEMPLATES).format(a=rng.choice(ADJECTIVES), n=rng.choice(NOUNS),
                                         p=rng.choice(PLACES), k=rng.randint(2, 120))
            for _ in range(count)]


TRAIN_TEXT = _captions(800, seed=0)
VOCAB_SIZE = 700  # 512 symbols, 186 merges, <|startoftext|>, <|endoftext|>

# Held out: never in the training text; all the classes of CLIP's pattern.
HELD_OUT = _captions(30, seed=1) + [
    "The café's crème brûlée was naïve, said Zoë: TRÈS BIEN!!!",
    "Two DOGS playing   in the\tsnow,\n\nnear   3 trees.  ",
    "  leading and trailing whitespace  ", "", "   ", "UPPER lower MiXeD CaSe",
    "digits 1234567890, 3.14159 and 1,000,000 on 2024-12-06 (007)",
    "Emoji: 😀👍🏽 👨‍👩‍👧 🏳️‍🌈 ❤️ 🇫🇷 ✓ ★ dog🐶cat",
    "Ångström, Øresund, Łódź, straße, Привет, мир! Ελλάδα, 日本語のテキスト, 한국어.",
    "I'm sure it's the dog's ball; we'll see, they've said, you're right, I'd go. DON'T!",
    "punctuation... (x) [y] {z} $100 50% a+b=c <tag> @at #hash «» ¿Qué? – — …",
    "e\u0301 combining accent (NFC makes é), \u00a0nbsp\u3000ideographic space",
    "<|startoftext|>a dog<|endoftext|> a cat <|endoftext|>",
    "a very long caption about a dog " * 30,  # > 77 tokens: truncated
]

# Real captions for OpenAI's vocabulary (no html entities, final sigmas or curly quotes:
# the cleaning differences have their own test).
CAPTIONS = [
    "a photo of a dog.", "A photo of a cat sitting on a red sofa.",
    "a bad photo of the large golden retriever.", "a sculpture of a horse",
    "Two men playing frisbee in a park on a sunny day.",
    "A woman riding a bicycle down a busy street in Amsterdam.",
    "an origami crane.", "itap of a tabby cat", "a photo of the hard to see zebra.",
    "A close-up photo of a Boeing 747-400 on the runway.",
    "Satellite imagery of farmland, 2019.", "a centered satellite photo of a forest",
    "The Eiffel Tower at night, Paris, France.", "Sunset over the Grand Canyon!!!",
    "a photo of a 1967 Ford Mustang GT500 (red)", "a pixelated photo of the pizza",
    "A plate with 3 eggs, bacon & toast", "What's in the box? It's a kitten!",
    "I'd love to see the Northern Lights; they're beautiful.",
    "Café au lait and a croissant at a Parisian bistro",
    "Crème brûlée with fresh raspberries", "São Paulo skyline at dusk",
    "Zoë's birthday party in Köln", "Ein Hund läuft über die Straße",
    "Un chat noir dort sur le canapé", "Москва, Красная площадь зимой",
    "東京タワーの夜景", "北京的天安门广场", "서울의 남산타워", "Ελληνικό νησί με λευκά σπίτια",
    "a tattoo of a 🐉 dragon on an arm", "Best day ever 😀😀 #beach #summer",
    "❤️ my new puppy 🐶!!", "a black and white photo of the old bridge",
    "A SCREAMING headline IN ALL CAPS", "hashtags: #ootd #fashion @user123",
    "price tag reads $19.99 (50% off)", "a low resolution photo of a tiger.",
    "the cartoon Mickey Mouse", "a rendering of a 3D teapot",
    "graffiti of the word LOVE on a brick wall", "A   caption\twith\nodd   whitespace  ",
    "an embroidered Pokémon Pikachu", "a jpeg corrupted photo of a butterfly",
    "Snowboarder mid-air over a ramp...", "The year 2024 in numbers: 366 days",
    "A Ñandú (rhea) in Patagonia", "naïve art: a façade in Île-de-France",
    "a photo of my dog's toy -- it's squeaky", "E=mc² on a chalkboard",
    "a doodle of a 🦄 unicorn ☆☆☆",
]
LONG_CAPTION = "a photo of a very good dog that plays " * 20


def _sot_eot(tokenizer, text: str) -> list[int]:
    return [tokenizer.sot_token_id, *tokenizer.encode(text), tokenizer.eot_token_id]


# --------------------------------------------------------------------------------------
# Fixtures, built once per module
# --------------------------------------------------------------------------------------


@dataclass
class Trained:
    directory: Path  # vocab.json, merges.txt, tokenizer_config.json written by ours
    ours: object  # tk.CLIPTokenizer
    reference: CLIPTokenizer
    reference_fast: CLIPTokenizer  # loaded through the name CLIPTokenizerFast


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    ours = tk.CLIPTokenizer.train(TRAIN_TEXT, VOCAB_SIZE)
    directory = ours.save(tmp_path_factory.mktemp("trained"))
    return Trained(directory, ours, CLIPTokenizer.from_pretrained(directory),
                   CLIPTokenizerFast.from_pretrained(directory))


@dataclass
class Real:
    ours: object  # tk.CLIPTokenizer on OpenAI's 49,408 tokens
    open_clip: object  # open_clip.tokenizer.SimpleTokenizer
    tokenize: object  # open_clip.tokenize
    with_ftfy: object  # ours with fix_text=ftfy.fix_text, as open_clip cleans


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Real:
    open_clip = pytest.importorskip("open_clip", reason="open-clip-torch ships the vocabulary")
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    assert Path(default_bpe()) == tk.open_clip_vocabulary_file()
    ours = tk.CLIPTokenizer.from_bpe_gz()
    return Real(ours, SimpleTokenizer(default_bpe()), open_clip.tokenize,
                tk.CLIPTokenizer(ours.vocab, ours.merges, fix_text=ftfy.fix_text))


@pytest.fixture(scope="module")
def real_fast(real, tmp_path_factory) -> CLIPTokenizer:
    """CLIPTokenizerFast on OpenAI's vocabulary, from the vocab.json + merges.txt ours wrote."""
    return CLIPTokenizerFast.from_pretrained(real.ours.save(tmp_path_factory.mktemp("openai")))


# --------------------------------------------------------------------------------------
# Cleaning, pre-tokenisation, training by hand
# --------------------------------------------------------------------------------------


def test_cleaning_pre_tokens_and_end_of_word_by_hand(trained):
    ours = trained.ours
    assert ours.normalize("  A Dog&amp;CAT\n\t on  GRASS ") == "a dog&cat on grass"
    assert ours.normalize("&amp;lt;3 Cafe\u0301") == "<3 café"  # unescaped twice; NFC
    assert ours.pre_tokens("A photo of 2024 dogs!!  It's") == [
        "a", "photo", "of", "2", "0", "2", "4", "dogs", "!!", "it", "'s"]  # no spaces
    assert ours.pre_tokens("dog🐶cat... x86_64") == [
        "dog", "🐶", "cat", "...", "x", "8", "6", "_", "6", "4"]
    assert tk.CLIPTokenizer.word_symbols("dog") == ("d", "o", "g</w>")
    assert tk.CLIPTokenizer.word_symbols("é") == ("Ã", "©</w>")  # two bytes, one word end
    alphabet = tk.CLIPTokenizer.alphabet()
    assert len(alphabet) == 512 and alphabet[256] == "!</w>" and alphabet[0] == "!"
    # the word end makes "dog" as a word and "dog" inside "dogs" different tokens
    assert ours.tokenize("dog dogs") == ["dog</w>", "dogs</w>"]
    assert ours.tokenize("dog")[0] != ours.tokenize("doghouse")[0]


def test_training_by_hand():
    """Sennrich et al.'s words with "</w>": low x5, lower x2, newest x6, widest x3.

    Pair counts: (e, s) 9, (s, t</w>) 9, (w, e) 8, (l, o) 7, (n, e) 6, (e, w) 6,
    (o, w</w>) 5, (w, i) 3, (i, d) 3, (d, e) 3, (o, w) 2, (e, r</w>) 2. Ties go to the
    pair first in string order.
    1. (e, s) 9.  2. (es, t</w>) 9; "we" is left only in lower (2).  3. (l, o) 7.
    4. Counts of 6: (e, w), (n, e), (w, est</w>): (e, w).  5. (ew, est</w>).
    6. (n, ewest</w>).  7. (lo, w</w>) 5: "low</w>", the whole word.
    8-10. Counts of 3: (d, est</w>), (i, dest</w>), (w, idest</w>).
    11. Counts of 2: (e, r</w>) before (lo, w) and (w, er</w>).  12. (lo, w): the "low" of
    "lower", a token other than "low</w>".  13. (low, er</w>).
    """
    expected = [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("ew", "est</w>"),
                ("n", "ewest</w>"), ("lo", "w</w>"), ("d", "est</w>"), ("i", "dest</w>"),
                ("w", "idest</w>"), ("e", "r</w>"), ("lo", "w"), ("low", "er</w>")]
    text = "low " * 5 + "Lower " * 2 + "NEWEST\n" * 6 + "widest " * 3
    ours = tk.CLIPTokenizer.train(text, 512 + 13 + 2, min_frequency=1)
    assert ours.merges == expected
    assert [ours.vocab[a + b] for a, b in expected] == list(range(512, 525))
    assert ours.vocab["<|startoftext|>"] == 525 and ours.vocab["<|endoftext|>"] == 526
    assert ours.tokenize("lowest lower low") == ["low", "est</w>", "lower</w>", "low</w>"]


def test_training_layout_and_determinism(trained):
    ours = trained.ours
    assert len(ours) == VOCAB_SIZE and sorted(ours.vocab.values()) == list(range(VOCAB_SIZE))
    assert [ours.id_to_token[i] for i in range(512)] == tk.CLIPTokenizer.alphabet()
    assert (ours.sot_token_id, ours.eot_token_id) == (VOCAB_SIZE - 2, VOCAB_SIZE - 1)
    assert {"photo</w>", "dog</w>", "the</w>"} <= set(ours.vocab)  # frequent words merged
    merged = [ours.decode([i]) for i in range(512, VOCAB_SIZE - 2)]  # as text ("Ã©" is é)
    assert all(text == text.lower() for text in merged)  # a lower-cased corpus
    again = tk.CLIPTokenizer.train(TRAIN_TEXT[::-1], VOCAB_SIZE)  # another order
    assert_same_entries(again.merges, ours.merges, "merges")
    assert_same_entries(again.vocab, ours.vocab, "vocabulary")
    fresh = tk.CLIPTokenizer(ours.vocab, ours.merges)  # no cache
    batch = ours(HELD_OUT)
    assert all(torch.equal(fresh(HELD_OUT)[key], batch[key]) for key in batch)
    assert fresh.encode(HELD_OUT[0]) == ours.encode(HELD_OUT[0]) == ours.encode(HELD_OUT[0])


# --------------------------------------------------------------------------------------
# A trained vocabulary against transformers' CLIPTokenizer
# --------------------------------------------------------------------------------------


def test_ids_equal_transformers_clip_tokenizer(trained):
    assert trained.reference_fast.__class__ is CLIPTokenizer  # one class in transformers 5
    assert len(trained.reference) == len(trained.ours) == VOCAB_SIZE
    for reference in (trained.reference, trained.reference_fast):
        for text in HELD_OUT:
            ids = _sot_eot(trained.ours, text)
            assert ids == reference(text)["input_ids"], text
            assert (trained.ours.tokenize(text)
                    == reference.convert_ids_to_tokens(ids[1:-1]) == reference.tokenize(text))
    held_out = " ".join(HELD_OUT[:30])
    assert len(held_out) / len(trained.ours.encode(held_out)) > 3  # the merges compress


def test_batches_equal_transformers_with_its_padding_and_truncation(trained):
    ours = trained.ours(HELD_OUT, pad_token_id=trained.ours.eot_token_id)
    for reference in (trained.reference, trained.reference_fast):
        expected = reference(HELD_OUT, padding="max_length", max_length=77, truncation=True,
                             return_tensors="pt")
        assert torch.equal(ours["input_ids"], expected["input_ids"])
        assert torch.equal(ours["attention_mask"], expected["attention_mask"])
    assert ours["input_ids"].shape == (len(HELD_OUT), 77) and ours["input_ids"].dtype == torch.long
    # the long text fills the 77 positions and keeps its end token; the first of the others
    long = ours["input_ids"][-1]
    assert len(trained.ours.encode(HELD_OUT[-1])) > 75 and long[-1] == trained.ours.eot_token_id
    assert long[0] == trained.ours.sot_token_id and ours["attention_mask"][-1].all()
    short = trained.ours("a dog")
    length = len(trained.ours.encode("a dog")) + 2
    assert short["attention_mask"][0].tolist() == [1] * length + [0] * (77 - length)
    assert short["input_ids"][0, length:].eq(0).all()  # pad_token_id=0 by default
    assert trained.ours("a", context_length=2)["input_ids"].tolist() == [
        [trained.ours.sot_token_id, trained.ours.eot_token_id]]


# --------------------------------------------------------------------------------------
# OpenAI's vocabulary against open_clip and transformers
# --------------------------------------------------------------------------------------


def test_openai_vocabulary_equals_open_clips(real):
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    assert_same_entries(real.ours.vocab, {renamed.get(token, token): i
                                          for token, i in real.open_clip.encoder.items()},
                        "vocabulary")
    assert len(real.ours) == 49408 and len(real.ours.merges) == 48894
    assert_same_entries(real.ours.ranks, real.open_clip.bpe_ranks, "merge ranks")
    assert (real.ours.sot_token_id, real.ours.eot_token_id) == (49406, 49407)
    assert real.ours.vocab["a</w>"] == 320 and real.ours.merges[0] == ("i", "n")


def test_openai_vocabulary_ids_equal_open_clip(real):
    assert len(CAPTIONS) == 51
    for text in CAPTIONS + [LONG_CAPTION]:
        assert real.ours.encode(text) == real.open_clip.encode(text), text
    batch = real.ours(CAPTIONS + [LONG_CAPTION])  # open_clip pads with 0
    expected = real.tokenize(CAPTIONS + [LONG_CAPTION])
    assert torch.equal(batch["input_ids"], expected)
    assert batch["input_ids"][-1, -1] == 49407 and batch["input_ids"][:, 0].eq(49406).all()
    # 0 is also the token "!": the mask comes from the lengths, up to the first end token
    first_end = expected.argmax(dim=-1)  # the end token has the largest id
    positions = torch.arange(77)
    assert torch.equal(batch["attention_mask"], (positions <= first_end[:, None]).long())
    assert real.ours.encode("hello!") == [3306, 256] and real.ours.id_to_token[0] == "!"


def test_openai_vocabulary_ids_equal_transformers_clip_tokenizer_fast(real, real_fast):
    texts = CAPTIONS + [LONG_CAPTION]
    expected = real_fast(texts, padding="max_length", max_length=77, truncation=True,
                                   return_tensors="pt")
    batch = real.ours(texts, pad_token_id=real.ours.eot_token_id)
    assert torch.equal(batch["input_ids"], expected["input_ids"])
    assert torch.equal(batch["attention_mask"], expected["attention_mask"])
    # and the same as open_clip's up to the padding value
    assert torch.equal(batch["input_ids"] * batch["attention_mask"], real.tokenize(texts))


def test_cleaning_differences_between_openai_and_transformers(real, real_fast):
    """OpenAI unescapes html entities and lower-cases with str.lower; transformers does
    neither (its lower-casing goes character by character: a final "Σ" gives "σ", where
    str.lower writes "ς"). OpenAI also runs ftfy (curly quotes straightened, full width
    letters made ASCII, mojibake repaired); ours does only ftfy's last step, NFC, unless
    given ftfy.fix_text."""
    transformers_like = tk.CLIPTokenizer(real.ours.vocab, real.ours.merges,
                                         cleaning="transformers")
    with_ftfy = real.with_ftfy
    for text in ["Tom &amp; Jerry", "5 &lt; 7 &amp;amp; more", "ΟΔΟΣ ΣΤΟ ΣΠΙΤΙ"]:
        openai, transformers = real.open_clip.encode(text), real_fast.encode(text)[1:-1]
        assert openai != transformers, text
        assert real.ours.encode(text) == openai and transformers_like.encode(text) == transformers
    for text in ["a dog’s “ball”", "ｆｕｌｌ ｗｉｄｔｈ", "cafÃ© mojibake", "the ﬁsh"]:
        assert ftfy.fix_text(text) != unicodedata.normalize("NFC", text), text
        assert with_ftfy.encode(text) == real.open_clip.encode(text), text
        assert real.ours.encode(text) != real.open_clip.encode(text), text
    # "<|endoftext|>" in a caption: one token for ours and transformers; open_clip names its
    # special tokens "<start_of_text>" and "<end_of_text>", so there it is text
    assert real.ours.encode("a<|endoftext|>") == [320, 49407]
    assert 49407 not in real.open_clip.encode("a<|endoftext|>")


# --------------------------------------------------------------------------------------
# Decoding, files, errors
# --------------------------------------------------------------------------------------


def test_decode_gives_the_cleaned_lower_cased_text(trained, real, real_fast):
    for tokenizer in (trained.ours, real.ours):
        # words apart: the text back, lower-cased and cleaned, each word end a space
        text = "  A Photo of the   BIG café\n at NIGHT "
        assert tokenizer.decode(tokenizer.encode(text)) == "a photo of the big café at night "
        # punctuation is its own word: a space appears before it
        assert tokenizer.decode(tokenizer.encode("Hello, World!")) == "hello , world ! "
        for text in HELD_OUT + CAPTIONS:
            ids = tokenizer.encode(text)  # pre_tokens leaves the special tokens out
            assert tokenizer.decode(ids, skip_special_tokens=True) == "".join(f"{word} " for word in
                                                    tokenizer.pre_tokens(text))
    for text in CAPTIONS:
        ids = real.ours.encode(text)
        assert real.ours.decode(ids) == real.open_clip.decode(ids)
        with_ends = _sot_eot(real.ours, text)  # transformers strips the last space
        assert (real.ours.decode(with_ends, skip_special_tokens=True).strip()
                == real_fast.decode(with_ends, skip_special_tokens=True))


def test_files_round_trip(trained, real, tmp_path):
    again = tk.CLIPTokenizer.from_pretrained(trained.directory)
    assert again.vocab == trained.ours.vocab and again.merges == trained.ours.merges
    assert again.special_tokens == ["<|startoftext|>", "<|endoftext|>"]
    assert {path.name for path in trained.directory.iterdir()} == {
        "vocab.json", "merges.txt", "tokenizer_config.json"}
    # transformers 5's save_pretrained writes tokenizer.json only; ours reads it
    trained.reference.save_pretrained(tmp_path / "transformers")
    from_transformers = tk.CLIPTokenizer.from_pretrained(tmp_path / "transformers")
    assert from_transformers.vocab == trained.ours.vocab
    assert from_transformers.merges == trained.ours.merges
    assert from_transformers.encode(HELD_OUT[0]) == trained.ours.encode(HELD_OUT[0])
    written = tk.CLIPTokenizer.from_pretrained(real.ours.save(tmp_path / "openai"))
    assert written.vocab == real.ours.vocab and written.merges == real.ours.merges


def test_bad_input_raises_clear_errors(trained, tmp_path):
    ours = trained.ours
    with pytest.raises(ValueError, match="cleaning='lower'"):
        tk.CLIPTokenizer(ours.vocab, ours.merges, cleaning="lower")
    with pytest.raises(TypeError, match="fix_text is a function"):
        tk.CLIPTokenizer(ours.vocab, ours.merges, fix_text="ftfy")
    with pytest.raises(TypeError, match="non-empty list of str"):
        ours([])
    with pytest.raises(TypeError, match="non-empty list of str"):
        ours(["a", 3])
    with pytest.raises(ValueError, match="at least 2 positions"):
        ours("a dog", context_length=1)
    with pytest.raises(ValueError, match="pad_token_id=700 is not an id"):
        ours("a dog", pad_token_id=700)
    with pytest.raises(ValueError, match="text 1 has .* tokens, more than the 75"):
        ours(["a dog", HELD_OUT[-1]], truncate=False)
    with pytest.raises(ValueError, match="smaller than the 512 byte symbols"):
        tk.CLIPTokenizer.train("abc", 513)
    with pytest.raises(FileNotFoundError, match="bpe_simple_vocab_16e6.txt.gz"):
        tk.CLIPTokenizer.from_bpe_gz(tmp_path / "missing.txt.gz")
    with gzip.open(tmp_path / "short.txt.gz", "wt") as file:
        file.write("#version: 0.2\ni n\n")
    with pytest.raises(ValueError, match="not OpenAI's merges file"):
        tk.CLIPTokenizer.from_bpe_gz(tmp_path / "short.txt.gz")


def test_reuses_lesson_09_and_uses_no_tokenizer_library():
    source = (Path(__file__).parent / "tokenizer.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"tokenizers", "transformers", "open_clip", "ftfy"}, imported
    bpe = import_lesson("09_GPT.paper.tokenizer")
    assert issubclass(tk.CLIPTokenizer, bpe.ByteLevelBPETokenizer)
    assert "def train_bpe" not in source and "def apply_merges" not in source


RANDOM_PIECES = st.one_of(
    st.sampled_from(sorted(set("".join(TRAIN_TEXT + HELD_OUT))) + ["Σ", "ς", "İ", "ß", "&amp;"]),
    st.sampled_from(" ".join(TRAIN_TEXT[:50]).split()),
    st.sampled_from([" ", "  ", "\n", "\t", "'s", "'LL", "'", "0", "123", "<|endoftext|>",
                     "<|startoftext|>", "\u00a0", "\u200d", "\U0001f3fd", "e\u0301"]),
)


@settings(max_examples=150, deadline=None)
@given(text=st.lists(RANDOM_PIECES, max_size=30).map("".join))
def test_random_text_ids_equal_transformers(trained, text):
    """With transformers' cleaning, every text gives transformers' ids."""
    transformers_like = tk.CLIPTokenizer(trained.ours.vocab, trained.ours.merges,
                                         cleaning="transformers")
    assert _sot_eot(transformers_like, text) == trained.reference(text)["input_ids"]


@settings(max_examples=100, deadline=None)
@given(text=st.lists(RANDOM_PIECES.filter(lambda piece: "<|" not in piece), max_size=30)
       .map("".join))
def test_random_text_with_ftfy_ids_equal_open_clip(real, text):
    """With ftfy.fix_text in front, every text gives open_clip's ids on OpenAI's vocabulary."""
    assert real.with_ftfy.encode(text) == real.open_clip.encode(text)
