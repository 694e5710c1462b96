"""WordPiece, the tokenizer of BERT (Devlin et al. 2018, Section 3, "Input/Output Representations").

Text -> basic tokens (cleaning, optional lower-casing and accent stripping, punctuation and
CJK splitting, as google-research/bert's tokenization.py) -> WordPiece sub-words (Wu et al.
2016, Section 4.1; greedy longest-match-first with "##" continuations) -> the packed input
[CLS] A [SEP] B [SEP] with segment ids. It gives the ids of transformers' BertTokenizer on the
same vocab.txt (test_wordpiece.py checks it); ../theory.md explains WordPiece, and
`train_vocab` at the end trains a vocabulary with the tokenizers library.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

# Our trained vocabularies start with these (ids 0-4); real ones have them elsewhere.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION = "##"  # marks a piece that continues a word: "playing" -> play ##ing
MAX_INPUT_CHARS_PER_WORD = 100  # a longer word is [UNK] without trying


# --------------------------------------------------------------------------------------
# 1. Basic tokenization: character classes, normalisation, splitting into words
# --------------------------------------------------------------------------------------

# The CJK Unified Ideographs blocks (and compatibility ideographs) that BERT writes as one
# token each; Hangul, Hiragana and Katakana are not in them (those scripts use spaces).
# The range from 0x2B920 is the one BertTokenizer uses; the original tokenization.py
# starts it at 0x2B820 (so 256 rare ideographs of Extension E are split only there).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_control(char: str) -> bool:
    """Control, format, surrogate, private-use (Cc Cf Cs Co), except tab, newline, return.

    Unassigned code points (Cn) are kept, as BertTokenizer does (the original drops them).
    """
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co") and char not in "\t\n\r"


def is_whitespace(char: str) -> bool:
    """Space separators (Zs), tab, newline, return, and the line/paragraph separators."""
    return char in "\t\n\r\u2028\u2029" or unicodedata.category(char) == "Zs"


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*), plus every ASCII symbol: $ + < = > ^ ` | ~ are S* in Unicode."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(char: str) -> bool:
    code = ord(char)
    return code >= 0x3400 and any(low <= code <= high for low, high in CJK_RANGES)


def normalize(text: str, lowercase: bool, strip_accents: bool, split_cjk: bool) -> str:
    """Clean, space out CJK ideographs, strip accents, lower-case (in that order).

    Cleaning drops NUL, U+FFFD and control characters and turns every whitespace character
    into " ". Accent stripping decomposes (NFD: "é" -> "e" + U+0301) and drops the
    non-spacing marks (Mn). Lower-casing goes character by character, as BertTokenizer
    does (so a word-final capital sigma becomes σ, not ς as Python's str.lower gives).
    """
    text = "".join(" " if is_whitespace(c) else c for c in text
                   if c not in "\x00\ufffd" and not is_control(c))
    if split_cjk:
        text = "".join(f" {c} " if is_cjk(c) else c for c in text)
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    if lowercase:
        text = "".join(c.lower() for c in text)
    return text


def split_words(text: str) -> list[str]:
    """Split normalised text on whitespace, then make every punctuation mark its own word.

    "Hello, world!!" -> ["Hello", ",", "world", "!", "!"]
    """
    words = []
    for chunk in text.split():
        word = ""
        for char in chunk:
            if is_punctuation(char):
                words += [word, char] if word else [char]
                word = ""
            else:
                word += char
        if word:
            words.append(word)
    return words


# --------------------------------------------------------------------------------------
# 2. WordPiece: greedy longest-match-first (Wu et al. 2016, Section 4.1)
# --------------------------------------------------------------------------------------


def wordpiece(word: str, vocab: dict[str, int] | set[str], unk_token: str = "[UNK]",
              max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD) -> list[str]:
    """Split one word into the longest vocabulary pieces, left to right.

    At each position take the longest piece in the vocabulary ("##"-prefixed after the first
    piece). "unaffable" -> ["un", "##aff", "##able"]. If some position has no piece at all,
    or the word is longer than `max_input_chars_per_word`, the whole word is [UNK].
    """
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):  # longest first
            piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            if piece in vocab:
                break
        else:  # no piece starts here: the word cannot be segmented
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


# --------------------------------------------------------------------------------------
# 3. The tokenizer: special tokens, [CLS] A [SEP] B [SEP], truncation, padding, decoding
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddedToken:
    """A token matched as a whole in the text before any splitting (e.g. "[MASK]").

    `normalized=False` (special tokens): matched in the raw text. `normalized=True` (tokens
    added with transformers' `add_tokens`): matched in the normalised text, so "NewWord"
    also matches "NEWWORD" with an uncased vocabulary.
    """

    content: str
    id: int
    special: bool = True
    normalized: bool = False


def _alternation(tokens: Iterable[str]) -> re.Pattern | None:
    """A regex matching any of `tokens`, the leftmost and then the longest first."""
    tokens = sorted(set(tokens), key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, tokens)) + ")") if tokens else None


def _split_on(pattern: re.Pattern | None, text: str) -> list[tuple[str, bool]]:
    """[(piece, is_a_match)] in order, empty pieces dropped."""
    if pattern is None:
        return [(text, False)] if text else []
    parts = pattern.split(text)  # text, match, text, match, ..., text
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]


def truncate_pair(ids_a: list[int], ids_b: list[int] | None, room: int,
                  strategy: str) -> tuple[list[int], list[int] | None]:
    """Cut the sequences so that together they hold at most `room` tokens (their ends go).

    "longest_first" (transformers' default): if the shorter sequence (the first on a tie)
    fits in half the room, keep it and give the rest to the longer; otherwise give the
    shorter room // 2 and the longer the other half (it gets the odd token).
    "only_first" / "only_second": cut that sequence only; an error if it is too short.
    """
    len_b = len(ids_b) if ids_b is not None else 0
    excess = len(ids_a) + len_b - room
    if excess <= 0:
        return ids_a, ids_b
    if room == 0:  # nothing fits: both go
        return [], ([] if ids_b is not None else None)
    if strategy in ("only_first", "only_second"):
        target = ids_a if strategy == "only_first" else ids_b
        if target is None or len(target) <= excess:
            raise ValueError(f"truncation={strategy!r} cannot fit {len(ids_a)} + {len_b} tokens "
                             f"into {room}: that sequence is too short; use 'longest_first'")
        if strategy == "only_first":
            return ids_a[:-excess], ids_b
        return ids_a, ids_b[:-excess]
    if ids_b is None:
        return ids_a[:room], None
    short, long = sorted((len(ids_a), len(ids_b)))  # the first is "short" on a tie
    if 2 * short <= room:
        keep_short, keep_long = short, room - short
    else:
        keep_short, keep_long = room // 2, room - room // 2
    if len(ids_a) <= len(ids_b):
        return ids_a[:keep_short], ids_b[:keep_long]
    return ids_a[:keep_long], ids_b[:keep_short]


# BertTokenizer's decoder tidies each token's text once the joining space is added: it glues
# ".", "?", "!", "," to the word before. (Our tokens never hold the other patterns, which
# come from English tokenizers that keep "n't" or "'s" whole; they are here for exactness.)
_DECODE_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                   (" n't", "n't"), (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"),
                   (" 've", "'ve"), (" 're", "'re"))
TRUNCATIONS = ("longest_first", "only_first", "only_second")
PADDINGS = ("longest", "max_length")


class WordPieceTokenizer:
    """BERT's tokenizer: text -> ids, with the vocabulary's own lower-casing and accent rules.

    Inputs (constructor):
        vocab: token -> id (the lines of vocab.txt, id = line number).
        do_lower_case: lower-case the text (uncased vocabularies).
        strip_accents: None = strip accents exactly when lower-casing (the original BERT).
        tokenize_chinese_chars: make every CJK ideograph a word of its own.
        unk_token, cls_token, sep_token, pad_token, mask_token: the special tokens.
        added_tokens: further tokens never split (e.g. transformers' added tokens), with
            their ids (which may lie beyond vocab.txt).
    """

    def __init__(self, vocab: dict[str, int], *, do_lower_case: bool = True,
                 strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                 unk_token: str = "[UNK]", cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]", mask_token: str = "[MASK]",
                 added_tokens: Sequence[AddedToken] = (),
                 max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD):
        self.vocab = dict(vocab)
        self.do_lower_case = do_lower_case
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents
        self._strip_accents_given = strip_accents  # None, True or False: save_pretrained
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        names = {"unk_token": unk_token, "cls_token": cls_token, "sep_token": sep_token,
                 "pad_token": pad_token, "mask_token": mask_token}
        self.added_tokens = {t.content: t for t in added_tokens}
        for content in names.values():  # the five are always special, never split
            if content not in self.added_tokens:
                if content not in self.vocab:
                    raise ValueError(f"the special token {content!r} is not in the vocabulary "
                                     f"({len(self.vocab)} tokens): is this a BERT vocab.txt?")
                self.added_tokens[content] = AddedToken(content, self.vocab[content])
        self.unk_token, self.cls_token, self.sep_token, self.pad_token, self.mask_token = (
            names.values())
        self.token_to_id = {**self.vocab, **{t.content: t.id for t in self.added_tokens.values()}}
        self.unk_id, self.cls_id, self.sep_id, self.pad_id, self.mask_id = (
            self.token_to_id[content] for content in names.values())
        self._raw_pattern = _alternation(
            t.content for t in self.added_tokens.values() if not t.normalized)
        # A normalised added token is found, and written, in its normalised form ("newword").
        self._normalized_added = {self._normalize(t.content): t.id
                                  for t in self.added_tokens.values() if t.normalized}
        self._normalized_added.pop("", None)
        self._normalized_pattern = _alternation(self._normalized_added)
        self.id_to_token = {i: t for t, i in self.token_to_id.items()}
        self.id_to_token.update({i: form for form, i in self._normalized_added.items()})
        self.token_to_id.update(self._normalized_added)
        self._pieces: dict[str, list[str]] = {}  # word -> its WordPiece pieces

    # -- loading and saving ----------------------------------------------------------
    @classmethod
    def from_vocab_file(cls, path: str | Path, do_lower_case: bool = True,
                        **options) -> WordPieceTokenizer:
        """Read vocab.txt (one token a line; the id is the line number, from 0)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no vocabulary file {path}: pass a vocab.txt (one token a "
                                    "line), or train one with train_vocab(texts, vocab_size)")
        tokens = path.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":  # the file's final newline
            tokens.pop()
        return cls({token: i for i, token in enumerate(tokens)}, do_lower_case=do_lower_case,
                   **options)

    @classmethod
    def from_pretrained_dir(cls, directory: str | Path) -> WordPieceTokenizer:
        """Load a tokenizer directory in transformers' layout (no download).

        Reads vocab.txt (or, when absent, the vocabulary inside tokenizer.json, which is what
        transformers' save_pretrained writes), the settings of tokenizer_config.json
        (do_lower_case, strip_accents, tokenize_chinese_chars, special tokens; transformers'
        defaults where absent) and the added tokens listed in either file.
        """
        directory = Path(directory)
        config = _read_json(directory / "tokenizer_config.json")
        full = _read_json(directory / "tokenizer.json")
        added = [_added_token(entry, int(i)) for i, entry in
                 config.get("added_tokens_decoder", {}).items()]
        added += [_added_token(entry, entry["id"]) for entry in full.get("added_tokens", [])]
        options = {key: config[key] for key in ("do_lower_case", "strip_accents",
                                                "tokenize_chinese_chars") if key in config}
        for key in ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token"):
            if config.get(key) is not None:
                options[key] = _token_text(config[key])
        if (directory / "vocab.txt").is_file():
            tokenizer = cls.from_vocab_file(directory / "vocab.txt", added_tokens=added,
                                            **options)
        elif "vocab" in full.get("model", {}):
            tokenizer = cls(full["model"]["vocab"], added_tokens=added, **options)
        else:
            raise FileNotFoundError(f"{directory} has neither vocab.txt nor a tokenizer.json "
                                    "with a WordPiece vocabulary")
        return tokenizer

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write vocab.txt and tokenizer_config.json (transformers reads both)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tokens = sorted(self.vocab, key=self.vocab.get)
        (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "strip_accents": self._strip_accents_given,
                  "tokenize_chinese_chars": self.tokenize_chinese_chars,
                  "unk_token": self.unk_token, "cls_token": self.cls_token,
                  "sep_token": self.sep_token, "pad_token": self.pad_token,
                  "mask_token": self.mask_token,
                  "added_tokens_decoder": {str(t.id): {
                      "content": t.content, "special": t.special, "normalized": t.normalized,
                      "lstrip": False, "rstrip": False, "single_word": False}
                      for t in sorted(self.added_tokens.values(), key=lambda t: t.id)}}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                         encoding="utf-8")
        return directory

    # -- text -> tokens -> ids ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.id_to_token)

    def _normalize(self, text: str) -> str:
        return normalize(text, self.do_lower_case, self.strip_accents,
                         self.tokenize_chinese_chars)

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens. Added/special tokens in the text stay whole.

        The text is first cut at the special tokens; each piece between them is then
        normalised, cut at the (normalised) added tokens, split into words, and each word
        into WordPiece pieces.
        """
        if not isinstance(text, str):
            raise TypeError(f"tokenize takes a str, got {type(text).__name__}")
        tokens = []
        for piece, is_added in _split_on(self._raw_pattern, text):
            if is_added:
                tokens.append(piece)
                continue
            for part, is_normalized_added in _split_on(self._normalized_pattern,
                                                       self._normalize(piece)):
                if is_normalized_added:
                    tokens.append(part)
                    continue
                for word in split_words(part):
                    if word not in self._pieces:  # a cache: text repeats its words
                        self._pieces[word] = wordpiece(word, self.vocab, self.unk_token,
                                                       self.max_input_chars_per_word)
                    tokens += self._pieces[word]
        return tokens

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        unk_id = self.token_to_id[self.unk_token]
        return [self.token_to_id.get(token, unk_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        unknown = [i for i in ids if i not in self.id_to_token]
        if unknown:
            raise ValueError(f"ids {unknown[:5]} are not in the vocabulary (0..{len(self) - 1})")
        return [self.id_to_token[i] for i in ids]

    @property
    def special_ids(self) -> list[int]:
        """Ids of the special tokens ([PAD], [UNK], [CLS], [SEP], [MASK] and added ones)."""
        return sorted(t.id for t in self.added_tokens.values() if t.special)

    # -- the model's input: [CLS] A [SEP] B [SEP] ---------------------------------------
    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None,
               truncation: str | bool = "longest_first",
               return_tensors: str | None = None) -> dict:
        """One input (Section 3, Figure 2): [CLS] A [SEP] (B [SEP]), segment ids 0 then 1.

        Inputs:
            text, text_pair: sentence A and, optionally, sentence B.
            max_length: at most this many tokens, special tokens included; the sequences'
                ends are cut as `truncation` says ("longest_first", "only_first",
                "only_second", True = "longest_first", False = never cut).
            return_tensors: None -> lists; "pt" -> (1, T) int64 tensors.
        Returns:
            {"input_ids", "token_type_ids", "attention_mask"}, each of length T.
        """
        batch = self.batch_encode([text], None if text_pair is None else [text_pair],
                                  max_length, truncation, return_tensors=return_tensors)
        return batch if return_tensors else {key: rows[0] for key, rows in batch.items()}

    def batch_encode(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None,
                     max_length: int | None = None, truncation: str | bool = "longest_first",
                     padding: str = "longest", return_tensors: str | None = "pt") -> dict:
        """A batch of inputs, padded with [PAD] to the longest (or to `max_length`).

        Returns:
            {"input_ids", "token_type_ids", "attention_mask"}: (B, T) int64 tensors, or
            lists of lists with return_tensors=None; attention_mask is 1 on real tokens, 0
            on padding; padding has segment id 0.
        """
        truncation = _check_batch_options(texts, text_pairs, max_length, truncation, padding,
                                          return_tensors)
        rows = [self._encode_one(text, None if text_pairs is None else text_pairs[i],
                                 max_length, truncation) for i, text in enumerate(texts)]
        width = max(len(ids) for ids, _ in rows)  # longer than max_length if not truncated
        if padding == "max_length":
            width = max(width, max_length)
        out = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for ids, segments in rows:
            pad = width - len(ids)
            out["input_ids"].append(ids + [self.pad_id] * pad)
            out["token_type_ids"].append(segments + [0] * pad)
            out["attention_mask"].append([1] * len(ids) + [0] * pad)
        if return_tensors == "pt":
            return {key: torch.tensor(value, dtype=torch.int64) for key, value in out.items()}
        return out

    def _encode_one(self, text: str, text_pair: str | None, max_length: int | None,
                    truncation: str | None) -> tuple[list[int], list[int]]:
        """(ids, segment ids) of [CLS] A [SEP] (B [SEP]), cut to max_length."""
        ids_a = self.convert_tokens_to_ids(self.tokenize(text))
        ids_b = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        n_special = 2 if ids_b is None else 3
        if max_length is not None and truncation is not None:
            ids_a, ids_b = truncate_pair(ids_a, ids_b, max_length - n_special, truncation)
        ids = [self.cls_id, *ids_a, self.sep_id]
        segments = [0] * len(ids)
        if ids_b is not None:
            ids += [*ids_b, self.sep_id]
            segments += [1] * (len(ids_b) + 1)
        return ids, segments

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Ids -> text: pieces joined with spaces, "##" pieces glued to the one before.

        As BertTokenizer's decoder: ".", "?", "!" and "," are glued to the word before.
        Lower-casing, accent stripping and the original spacing are not undone.
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            special = {t.content for t in self.added_tokens.values() if t.special}
            tokens = [t for t in tokens if t not in special]
        text = ""
        for i, token in enumerate(tokens):
            if i > 0:
                token = token[len(CONTINUATION):] if token.startswith(CONTINUATION) else " " + token
            for before, after in _DECODE_CLEANUP:
                token = token.replace(before, after)
            text += token
        return text


def _check_batch_options(texts, text_pairs, max_length, truncation, padding,
                         return_tensors) -> str | None:
    """Validate batch_encode's arguments; returns the truncation strategy (None = never)."""
    pairs = [] if text_pairs is None else text_pairs
    if (isinstance(texts, str) or not texts or (text_pairs is not None and len(pairs) != len(texts))
            or not all(isinstance(t, str) for t in [*texts, *pairs])):
        raise TypeError("texts (and text_pairs, one per text) must be non-empty lists of str; "
                        "for one text use encode")
    if truncation is True:
        truncation = "longest_first"
    if truncation is not False and truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, True or False, "
                         f"got {truncation!r}")
    n_special = 2 if text_pairs is None else 3
    if max_length is not None and max_length < n_special:
        raise ValueError(f"max_length={max_length} leaves no room: the special tokens alone "
                         f"take {n_special}")
    if padding not in PADDINGS or (padding == "max_length" and max_length is None):
        raise ValueError(f"padding must be 'longest' or 'max_length' (with max_length), "
                         f"got {padding!r}")
    if return_tensors not in (None, "pt"):
        raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
    return truncation or None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(token: str | dict) -> str:
    """A token as the config files write it: "[CLS]" or {"content": "[CLS]", ...}."""
    return token["content"] if isinstance(token, dict) else token


def _added_token(entry: dict, token_id: int) -> AddedToken:
    if entry.get("single_word"):
        raise NotImplementedError(f"added token {entry['content']!r}: single_word matching is "
                                  "not implemented")
    return AddedToken(entry["content"], token_id, bool(entry.get("special", False)),
                      bool(entry.get("normalized", not entry.get("special", False))))


# --------------------------------------------------------------------------------------
# 4. Training a vocabulary (a helper that uses the tokenizers library)
# --------------------------------------------------------------------------------------


def train_vocab(texts: Iterable[str], vocab_size: int, out_dir: str | Path, *,
                do_lower_case: bool = True, strip_accents: bool | None = None,
                tokenize_chinese_chars: bool = True, min_frequency: int = 2,
                limit_alphabet: int = 1000) -> Path:
    """Train a WordPiece vocabulary on `texts` (the training split) with the tokenizers library.

    The trainer counts words after the same basic tokenization as ours, starts from the
    characters (`limit_alphabet` most frequent; "##"-prefixed copies for inside a word) and
    merges pairs until `vocab_size` tokens. Special tokens come first: [PAD]=0, [UNK]=1,
    [CLS]=2, [SEP]=3, [MASK]=4. Writes out_dir/vocab.txt and out_dir/tokenizer_config.json
    (the settings, so both we and transformers read the vocabulary the same way).

    Returns:
        the path of vocab.txt.
    """
    from tokenizers import BertWordPieceTokenizer  # only here: the tokenizer itself is ours

    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} leaves no room beside the special tokens")
    trainer = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=tokenize_chinese_chars,
                                     strip_accents=strip_accents, lowercase=do_lower_case)
    trainer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                                limit_alphabet=limit_alphabet, special_tokens=list(SPECIAL_TOKENS),
                                wordpieces_prefix=CONTINUATION, show_progress=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out_dir))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case,
              "strip_accents": strip_accents, "tokenize_chinese_chars": tokenize_chinese_chars}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                   encoding="utf-8")
    return out_dir / "vocab.txt"
