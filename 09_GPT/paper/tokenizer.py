"""Lesson 09's tokenizers: characters, and GPT-2's byte-level BPE (Radford et al. 2019, Sec. 2.2).

Byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
Subword Units", Section 3.2, Algorithm 1) learns a vocabulary by repeatedly merging the
most frequent adjacent pair of symbols; GPT-2 runs it on the UTF-8 bytes of the text, so
every string has an encoding and nothing is ever unknown. ../theory.md explains both. This
file: 1. CharTokenizer; 2. the byte-to-unicode map; 3. the pre-tokenisation pattern; 4. the
merge machinery (training, encoding by rank); 5. ByteLevelBPETokenizer, whose vocab.json
and merges.txt transformers' GPT2Tokenizer reads (test_tokenizer.py checks the ids).

Extension point (lesson 12's CLIP tokenizer is byte-level BPE too): a subclass of
ByteLevelBPETokenizer sets `pattern` (the pre-tokenisation regex), `end_of_word_suffix`
("</w>": appended to the last symbol of each pre-token, so merges know where words end; it
decodes to a space) and overrides `normalize` (e.g. lower-casing and whitespace cleaning).
Training (`train`, `train_bpe`), encoding by rank (`apply_merges`, cached per pre-token),
decoding and the files are inherited unchanged.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path

import regex

# --------------------------------------------------------------------------------------
# 1. Characters as tokens (nanoGPT's Shakespeare vocabulary)
# --------------------------------------------------------------------------------------


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of a text's characters.

    `CharTokenizer.from_text(text)` gives nanoGPT's ids (`sorted(set(text))`).
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary is a non-empty list of single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("the character vocabulary holds a character twice")
        self.chars = chars
        self.char_to_id = {char: i for i, char in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not isinstance(text, str) or not text:
            raise ValueError("from_text needs a non-empty str to take the characters from")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.char_to_id[char] for char in text]
        except KeyError:
            unknown = sorted(set(text) - set(self.char_to_id))
            at = min(text.index(c) for c in unknown)
            raise ValueError(
                f"character {text[at]!r} (U+{ord(text[at]):04X}) at position {at} is not in the "
                f"vocabulary of {len(self)} characters ({len(unknown)} unknown in all: "
                f"{''.join(unknown[:20])!r}); build the vocabulary from text that holds it"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        ids = list(ids)
        bad = [i for i in ids if not (isinstance(i, int) and 0 <= i < len(self))]
        if bad:
            raise ValueError(f"ids {bad[:5]} are not in the vocabulary (0..{len(self) - 1})")
        return "".join(self.chars[i] for i in ids)

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON: {"type": "char", "chars": [...]} (id = position)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False),
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no character vocabulary {path}: write one with save()")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("type") != "char":
            raise ValueError(f"{path} is not a character vocabulary written by CharTokenizer.save")
        return cls(data["chars"])


# --------------------------------------------------------------------------------------
# 2. Bytes as printable characters
# --------------------------------------------------------------------------------------


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to 256 printable characters (openai/gpt-2 encoder.py).

    BPE works on strings of symbols, and vocab.json / merges.txt are text files whose
    merges are written "left right" on a line. So each byte becomes one visible character
    that is neither whitespace nor a control character: the 188 bytes that already are
    printable Latin-1 characters ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves, and the
    other 68 (0-32 with the space, 127-160, the soft hyphen 173) take chr(256 + n), n = 0, 1,
    ... in byte order. So a space (32) is "Ġ" (U+0120), a newline (10) "Ċ" (U+010A). The
    dict's order (printable bytes first) is the order of ids 0-255 in GPT-2's vocab.json.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    others = [byte for byte in range(256) if byte not in table]
    table.update({byte: chr(256 + n) for n, byte in enumerate(others)})
    return table


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {char: byte for byte, char in BYTE_TO_UNICODE.items()}


# --------------------------------------------------------------------------------------
# 3. Pre-tokenisation: merges never cross these boundaries
# --------------------------------------------------------------------------------------

# GPT-2's pattern (openai/gpt-2 encoder.py). In order of trial: English contractions
# (case-sensitive: "DON'T" gives "DON", "'", "T"); an optional space and a run of letters;
# of numbers (digits stay apart from letters); of anything else (punctuation, emoji,
# symbols); then whitespace: "\s+(?!\S)" takes a whitespace run except its last character
# when a non-space follows, so that character starts the next word ("a   b" -> "a", "  ",
# " b"): words keep one leading space, as most of them have one in running text; a final
# "\s+" takes what is left (a single whitespace character before a word, or a run at the end).
GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def pre_tokenize(text: str, pattern: regex.Pattern = GPT2_PATTERN) -> list[str]:
    """Cut text into pre-tokens: "Hello  world!" -> ["Hello", " ", " world", "!"]."""
    return pattern.findall(text)


# --------------------------------------------------------------------------------------
# 4. The merge machinery: Sennrich et al. (2016) training, GPT-2's encoding by rank
# --------------------------------------------------------------------------------------

Pair = tuple[str, str]


def merge_pair(symbols: Sequence[str], pair: Pair) -> tuple[str, ...]:
    """Replace each occurrence of `pair` (left to right, without overlap) by its concatenation.

    ("a", "a", "a") with ("a", "a") -> ("aa", "a").
    """
    left, right = pair
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
            merged.append(left + right)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


def train_bpe(word_counts: Mapping[tuple[str, ...], int], n_new_symbols: int,
              min_frequency: int = 2) -> list[Pair]:
    """Learn merges from a word-frequency table (Sennrich et al. 2016, Algorithm 1).

    Inputs:
        word_counts: each distinct pre-token as a tuple of symbols -> how often it occurs.
        n_new_symbols: stop after this many distinct new symbols (a merge whose result is
            already a symbol, such as (a, bc) after (ab, c), is kept but adds none).
        min_frequency: stop when the most frequent pair occurs fewer times than this.
    Returns:
        the merges in the order learned (rank 0 first).

    Each step merges the most frequent adjacent pair, counted over all words with their
    frequencies (overlaps included, as Algorithm 1 does: "aaa" holds (a, a) twice). Ties go
    to the pair that comes first in Python's order of (left, right) strings, so training
    does not depend on the order of the input. Counts are updated incrementally: `where`
    remembers the words each pair occurs in, only those words are rewritten, and a heap
    with lazy deletion finds the best pair. The cost of a step is the length of the words
    it touches, not of the whole table.
    """
    words = [tuple(word) for word in word_counts]
    counts = list(word_counts.values())
    pair_counts: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for index, (word, count) in enumerate(zip(words, counts, strict=True)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]  # most frequent on top
    heapq.heapify(heap)
    merges: list[Pair] = []
    new_symbols: set[str] = set()
    while heap and len(new_symbols) < n_new_symbols:
        negative, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -negative:  # stale: the count changed since the push
            continue
        if -negative < min_frequency:
            break
        merges.append(pair)
        new_symbols.add(pair[0] + pair[1])
        changed = set()
        for index in where.pop(pair):
            word = words[index]
            merged = merge_pair(word, pair)
            if len(merged) == len(word):  # the pair left this word in an earlier merge
                continue
            count = counts[index]
            for old in zip(word, word[1:]):
                pair_counts[old] -= count
                changed.add(old)
            for new in zip(merged, merged[1:]):
                pair_counts[new] += count
                changed.add(new)
                where[new].add(index)
            words[index] = merged
        for changed_pair in changed:
            if pair_counts[changed_pair] > 0:
                heapq.heappush(heap, (-pair_counts[changed_pair], changed_pair))
            else:  # the merged pair itself, and pairs it destroyed everywhere
                del pair_counts[changed_pair]
    return merges


def apply_merges(symbols: Sequence[str], ranks: Mapping[Pair, int]) -> tuple[str, ...]:
    """Encode one pre-token: merge the pair of lowest rank, again and again (GPT-2's `bpe`).

    Inputs:
        symbols: the pre-token's initial symbols (one per byte, as characters).
        ranks: merge -> its rank (its line in merges.txt, 0 first).
    Returns:
        the final symbols. Each step merges every occurrence of the lowest-ranked pair
        present, so the merges are replayed in training order.
    """
    word = tuple(symbols)
    while len(word) > 1:
        best = min(zip(word, word[1:]), key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        word = merge_pair(word, best)
    return word


# --------------------------------------------------------------------------------------
# 5. The tokenizer: GPT-2's byte-level BPE with special tokens and transformers' files
# --------------------------------------------------------------------------------------

ENDOFTEXT = "<|endoftext|>"
MERGES_HEADER = "#version: 0.2"  # the first line of GPT-2's merges.txt
CACHE_SIZE = 100_000  # pre-tokens remembered by one tokenizer


class ByteLevelBPETokenizer:
    """GPT-2's tokenizer: special tokens, pre-tokens, bytes, BPE merges by rank -> ids.

    Inputs (constructor):
        vocab: token -> id (vocab.json).
        merges: [(left, right)] in rank order (merges.txt).
        special_tokens: tokens found whole in the text before anything else (when allowed);
            one missing from `vocab` gets the next free id, as transformers does.
        add_prefix_space: put a space before text that does not start with one (so the
            first word is encoded like the others), as GPT2Tokenizer's option.

    Extension point (module docstring): `pattern`, `end_of_word_suffix` and `normalize`.
    """

    pattern: regex.Pattern = GPT2_PATTERN
    end_of_word_suffix: str = ""

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[Pair],
                 special_tokens: Iterable[str] = (ENDOFTEXT,), add_prefix_space: bool = False):
        self.vocab = dict(vocab)
        if len(set(self.vocab.values())) != len(self.vocab):
            raise ValueError("two tokens of the vocabulary share an id")
        self.merges = [tuple(pair) for pair in merges]
        for rank, (left, right) in enumerate(self.merges):
            if left + right not in self.vocab:
                raise ValueError(f"merge {rank} ({left!r} {right!r}) gives {left + right!r}, which "
                                 "is not in the vocabulary: do vocab.json and merges.txt belong "
                                 "together?")
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.special_tokens = list(dict.fromkeys(special_tokens))
        for token in self.special_tokens:
            self.vocab.setdefault(token, max(self.vocab.values(), default=-1) + 1)
        self.add_prefix_space = add_prefix_space
        self.id_to_token = {i: token for token, i in self.vocab.items()}
        self._special_ids = {self.vocab[token] for token in self.special_tokens}
        self._cache: dict[str, tuple[int, ...]] = {}  # pre-token -> ids

    # -- the extension point -----------------------------------------------------------
    def normalize(self, text: str) -> str:
        """GPT-2 keeps the text as it is (CLIP lower-cases and cleans whitespace here)."""
        return text

    @classmethod
    def word_symbols(cls, pre_token: str) -> tuple[str, ...]:
        """A pre-token's initial symbols: its UTF-8 bytes as characters, the end-of-word
        suffix (if any) on the last. " café" -> ("Ġ", "c", "a", "f", "Ã", "©")."""
        symbols = [BYTE_TO_UNICODE[byte] for byte in pre_token.encode("utf-8")]
        if cls.end_of_word_suffix and symbols:
            symbols[-1] += cls.end_of_word_suffix
        return tuple(symbols)

    @classmethod
    def alphabet(cls) -> list[str]:
        """The symbols every vocabulary starts with (ids 0-255 in GPT-2's order; with an
        end-of-word suffix, the same 256 again with the suffix)."""
        symbols = list(BYTE_TO_UNICODE.values())
        return symbols + [s + cls.end_of_word_suffix for s in symbols if cls.end_of_word_suffix]

    # -- training ----------------------------------------------------------------------
    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, *,
              special_tokens: Sequence[str] = (ENDOFTEXT,), min_frequency: int = 2,
              add_prefix_space: bool = False) -> ByteLevelBPETokenizer:
        """Train on `texts` until the vocabulary holds `vocab_size` tokens.

        Ids: the alphabet first (the 256 bytes in GPT-2's order), then each new symbol in
        the order learned, then the special tokens. The text is cut at special tokens and
        pre-tokenised exactly as `encode` will do; `train_bpe` learns the merges. Training
        stops early when no pair occurs `min_frequency` times.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("train takes a str or an iterable of str")
        alphabet = cls.alphabet()
        n_new_symbols = vocab_size - len(alphabet) - len(special_tokens)
        if n_new_symbols < 0:
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(alphabet)} byte "
                             f"symbols and {len(special_tokens)} special tokens")
        splitter = cls([], [], special_tokens=special_tokens, add_prefix_space=add_prefix_space)
        pre_token_counts: Counter[str] = Counter()
        for text in texts:
            pre_token_counts.update(splitter.pre_tokens(text))
        word_counts: Counter[tuple[str, ...]] = Counter()
        for pre_token, count in pre_token_counts.items():
            word_counts[cls.word_symbols(pre_token)] += count
        merges = train_bpe(word_counts, n_new_symbols, min_frequency)
        vocab = {symbol: i for i, symbol in enumerate(alphabet)}
        for left, right in merges:
            vocab.setdefault(left + right, len(vocab))
        return cls(vocab, merges, special_tokens, add_prefix_space)

    # -- text -> ids -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _segments(self, text: str, allowed_special: str | Iterable[str]) -> list[tuple[str, bool]]:
        """[(piece, is_special_token)]: the text cut at the allowed special tokens."""
        allowed = self.special_tokens if allowed_special == "all" else list(allowed_special)
        unknown = [token for token in allowed if token not in self.special_tokens]
        if unknown:
            raise ValueError(f"{unknown} are not special tokens of this tokenizer "
                             f"({self.special_tokens})")
        pattern = _alternation(tuple(allowed))
        if pattern is None:
            return [(text, False)] if text else []
        parts = pattern.split(text)  # text, token, text, token, ..., text
        return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]

    def pre_tokens(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[str]:
        """The pre-tokens of text, special tokens left out (what training counts)."""
        return [pre_token for piece, special in self._segments(text, allowed_special)
                if not special for pre_token in self._pre_tokenize(piece)]

    def _pre_tokenize(self, piece: str) -> list[str]:
        piece = self.normalize(piece)
        if self.add_prefix_space and not piece.startswith(" "):
            piece = " " + piece
        return pre_tokenize(piece, self.pattern)

    def _bpe_ids(self, pre_token: str) -> tuple[int, ...]:
        """The ids of one pre-token, cached (running text repeats its words)."""
        ids = self._cache.get(pre_token)
        if ids is None:
            symbols = apply_merges(self.word_symbols(pre_token), self.ranks)
            missing = [s for s in symbols if s not in self.vocab]
            if missing:
                raise ValueError(f"symbol {missing[0]!r} of {pre_token!r} is not in the "
                                 "vocabulary: a byte-level vocabulary must hold all 256 bytes")
            ids = tuple(self.vocab[s] for s in symbols)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[pre_token] = ids
        return ids

    def encode(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[int]:
        """Text -> ids.

        Inputs:
            text: any str.
            allowed_special: "all" (as GPT2Tokenizer: "<|endoftext|>" in the text is that
                one token), or the special tokens to recognise; () encodes them as text.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        ids: list[int] = []
        for piece, special in self._segments(text, allowed_special):
            if special:
                ids.append(self.vocab[piece])
            else:
                for pre_token in self._pre_tokenize(piece):
                    ids.extend(self._bpe_ids(pre_token))
        return ids

    def tokenize(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[str]:
        """Text -> tokens as vocab.json spells them ("Ġworld")."""
        return [self.id_to_token[i] for i in self.encode(text, allowed_special)]

    # -- ids -> text -------------------------------------------------------------------
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text: the tokens' bytes joined and read as UTF-8 with errors="replace".

        A cut through a multi-byte character (e.g. half an emoji) gives U+FFFD, as GPT-2's
        decoder does. Special tokens are written as their text.
        """
        if hasattr(ids, "tolist"):  # a tensor
            ids = ids.tolist()
        ids = list(ids)
        bad = [i for i in ids if i not in self.id_to_token]
        if bad:
            raise ValueError(f"ids {bad[:5]} are not in the vocabulary (0..{len(self) - 1})")
        data = bytearray()
        for i in ids:
            if i in self._special_ids:
                if not skip_special_tokens:
                    data += self.id_to_token[i].encode("utf-8")
                continue
            token = self.id_to_token[i]
            if self.end_of_word_suffix:  # a word's end decodes to a space
                token = token.replace(self.end_of_word_suffix, BYTE_TO_UNICODE[ord(" ")])
            data += bytes(UNICODE_TO_BYTE[char] for char in token)
        return data.decode("utf-8", errors="replace")

    # -- files -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write vocab.json, merges.txt and tokenizer_config.json (what GPT2Tokenizer reads).

        Load the folder in transformers with `GPT2Tokenizer.from_pretrained(directory)`: in
        the pinned transformers 5.25, `GPT2Tokenizer(vocab_file=..., merges_file=...)`
        ignores both files and silently builds a tokenizer with one token.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = dict(sorted(self.vocab.items(), key=lambda item: item[1]))
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False),
                                              encoding="utf-8")
        lines = [MERGES_HEADER] + [f"{left} {right}" for left, right in self.merges]
        (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        first = self.special_tokens[0] if self.special_tokens else ENDOFTEXT
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": self.add_prefix_space,
                  "errors": "replace", "bos_token": first, "eos_token": first,
                  "unk_token": first,
                  "added_tokens_decoder": {str(self.vocab[token]): {
                      "content": token, "special": True, "normalized": False, "lstrip": False,
                      "rstrip": False, "single_word": False} for token in self.special_tokens}}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                         encoding="utf-8")
        return directory

    @classmethod
    def from_files(cls, vocab_file: str | Path, merges_file: str | Path,
                   special_tokens: Iterable[str] = (ENDOFTEXT,),
                   add_prefix_space: bool = False) -> ByteLevelBPETokenizer:
        """Read vocab.json and merges.txt (GPT-2's own, ours, or the tokenizers library's)."""
        for path in (vocab_file, merges_file):
            if not Path(path).is_file():
                raise FileNotFoundError(f"no file {path}: a byte-level BPE needs vocab.json and "
                                        "merges.txt (train one with ByteLevelBPETokenizer.train)")
        vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
        merges = []
        for number, line in enumerate(Path(merges_file).read_text(encoding="utf-8").split("\n")):
            if not line or (number == 0 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_file}, line {number + 1}: expected 'left right', "
                                 f"got {line!r}")
            merges.append((parts[0], parts[1]))
        return cls(vocab, merges, special_tokens, add_prefix_space)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ByteLevelBPETokenizer:
        """Load a tokenizer folder: ours, GPT-2's (vocab.json, merges.txt) or transformers'.

        The vocabulary comes from vocab.json + merges.txt, or from tokenizer.json (what
        transformers' save_pretrained writes); the special tokens from tokenizer_config.json
        and tokenizer.json, "<|endoftext|>" when neither names one (GPT2Tokenizer's default).
        """
        directory = Path(directory)
        config = _read_json(directory / "tokenizer_config.json")
        full = _read_json(directory / "tokenizer.json")
        special = [entry["content"] for _, entry in sorted(
            config.get("added_tokens_decoder", {}).items(), key=lambda item: int(item[0]))
            if entry.get("special", True)]
        special += [entry["content"] for entry in full.get("added_tokens", [])
                    if entry.get("special", True)]
        for key in ("bos_token", "eos_token", "unk_token"):
            token = config.get(key, ENDOFTEXT)
            if token is not None:
                special.append(token["content"] if isinstance(token, dict) else token)
        add_prefix_space = bool(config.get("add_prefix_space", False))
        if (directory / "vocab.json").is_file():
            return cls.from_files(directory / "vocab.json", directory / "merges.txt", special,
                                  add_prefix_space)
        if "merges" in full.get("model", {}):
            merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                      for m in full["model"]["merges"]]
            return cls(full["model"]["vocab"], merges, special, add_prefix_space)
        raise FileNotFoundError(f"{directory} has neither vocab.json + merges.txt nor a "
                                "tokenizer.json with a BPE model")


@cache
def _alternation(tokens: tuple[str, ...]) -> regex.Pattern | None:
    """A regex matching any of `tokens`, the leftmost and then the longest first."""
    tokens = sorted(set(tokens), key=len, reverse=True)
    return regex.compile("(" + "|".join(map(regex.escape, tokens)) + ")") if tokens else None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
