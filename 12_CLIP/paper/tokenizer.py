"""Lesson 12's tokenizer: CLIP's lower-cased byte-level BPE (Radford et al. 2021, Sec. 2.4).

"The text is a lower-cased byte pair encoding (BPE) representation of the text with a
49,152 vocab size (Sennrich et al., 2015). For computational efficiency, the max sequence
length was capped at 76. The text sequence is bracketed with [SOS] and [EOS] tokens."
(Section 2.4.) This is lesson 09's byte-level BPE (09_GPT/paper/tokenizer.py, imported, not
copied: the trainer, the encoding by rank, decoding, the files) with CLIP's differences,
set through lesson 09's extension point; ../theory.md explains them.

1. Cleaning (`normalize`): NFC, html entities unescaped, whitespace collapsed, lower case.
2. Pre-tokenisation (`CLIP_PATTERN`): whitespace is dropped, not kept as "Ġ"; digits go one
   by one; "<|startoftext|>" and "<|endoftext|>" are whole.
3. "</w>" ends the last symbol of each word, so "a" inside a word and "a</w>" are different
   tokens: the vocabulary starts with 512 symbols (256 bytes, 256 bytes + "</w>").
4. <|startoftext|> ids <|endoftext|>, then padding to the context of 77 (`__call__`).
5. The files: vocab.json + merges.txt that transformers' CLIPTokenizer reads (`save`), and
   OpenAI's bpe_simple_vocab_16e6.txt.gz that open_clip ships (`from_bpe_gz`).

Where the production tokenizers differ (each difference is tested in test_tokenizer.py):
- OpenAI's and open_clip's `SimpleTokenizer` run ftfy.fix_text first (mojibake, curly
  quotes -> straight, full-width letters -> ASCII, ligatures, control characters, then
  NFC), then html.unescape twice, strip, collapse whitespace with str.split, str.lower.
  We do all of it but ftfy, whose last step (NFC) we keep; pass `fix_text=ftfy.fix_text`
  to do ftfy's part too. open_clip pads with 0 and names the special tokens
  "<start_of_text>" and "<end_of_text>" (same ids), so "<|endoftext|>" written in a
  caption is plain text there.
- transformers' CLIPTokenizer (the tokenizers library's BPE) cleans with NFC, "\\s+" -> " "
  and a lower-casing character by character: no html unescaping, and a final capital
  sigma becomes "σ" where str.lower writes "ς". `cleaning="transformers"` does that. It
  pads with the end token.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import regex
import torch

from utils import import_lesson

bpe = import_lesson("09_GPT.paper.tokenizer")

STARTOFTEXT = "<|startoftext|>"
ENDOFTEXT = bpe.ENDOFTEXT  # "<|endoftext|>"
SPECIAL_TOKENS = (STARTOFTEXT, ENDOFTEXT)  # the last two ids: 49406, 49407 in OpenAI's
CONTEXT_LENGTH = 77  # 76 tokens "capped" in Sec. 2.4, +1: [SOS] ... [EOS] fill 77 positions
CLEANINGS = ("openai", "transformers")
N_OPENAI_MERGES = 49152 - 256 - 2  # 48,894 merges in OpenAI's vocabulary

# --------------------------------------------------------------------------------------
# 1-2. Cleaning and pre-tokenisation
# --------------------------------------------------------------------------------------

# OpenAI's pattern (openai/CLIP clip/simple_tokenizer.py). Unlike GPT-2's, no alternative
# takes whitespace: spaces only separate words, and the "</w>" suffix records where a word
# ended. Letters in runs, digits ONE by one ("2024" -> 2, 0, 2, 4), other symbols in runs.
# IGNORECASE as OpenAI's (the text is lower-cased before, so it changes nothing here).
CLIP_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
    r"""[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
WHITESPACE = regex.compile(r"\s+")

# --------------------------------------------------------------------------------------
# 3-4. The tokenizer
# --------------------------------------------------------------------------------------


class CLIPTokenizer(bpe.ByteLevelBPETokenizer):
    """CLIP's tokenizer: clean, lower-case, pre-tokens, bytes + "</w>", BPE merges -> ids.

    Inputs (constructor):
        vocab: token -> id (vocab.json); merges: [(left, right)] in rank order (merges.txt).
        special_tokens: found whole in the raw text; "<|startoftext|>" and "<|endoftext|>"
            are added if missing (each missing token takes the next free id).
        cleaning: "openai" (html unescaped, str.lower, as OpenAI and open_clip) or
            "transformers" (as transformers' CLIPTokenizer): see the module docstring.
        fix_text: a function run on the raw text before the rest of the cleaning, in place
            of NFC (e.g. ftfy.fix_text, which ends with NFC, to be open_clip exactly).

    `encode` (text -> ids, no start/end token), `tokenize`, `decode`, `train`, `save`,
    `from_pretrained` are lesson 09's; `__call__` makes the model's (B, 77) batch.
    """

    pattern = CLIP_PATTERN
    end_of_word_suffix = "</w>"

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[bpe.Pair],
                 special_tokens: Iterable[str] = SPECIAL_TOKENS, add_prefix_space: bool = False,
                 *, cleaning: str = "openai", fix_text: Callable[[str], str] | None = None):
        if cleaning not in CLEANINGS:
            raise ValueError(f"cleaning={cleaning!r}: expected one of {CLEANINGS}")
        if fix_text is not None and not callable(fix_text):
            raise TypeError("fix_text is a function str -> str (e.g. ftfy.fix_text) or None")
        special_tokens = list(dict.fromkeys([*special_tokens, *SPECIAL_TOKENS]))
        super().__init__(vocab, merges, special_tokens, add_prefix_space)
        self.cleaning = cleaning
        self.fix_text = fix_text
        self.sot_token_id = self.vocab[STARTOFTEXT]
        self.eot_token_id = self.vocab[ENDOFTEXT]

    # -- 1. cleaning: lesson 09's extension point ------------------------------------
    def normalize(self, text: str) -> str:
        """Clean and lower-case: "  A Dog&amp;CAT\\n" -> "a dog&cat" (cleaning="openai")."""
        text = self.fix_text(text) if self.fix_text else unicodedata.normalize("NFC", text)
        if self.cleaning == "openai":  # open_clip's basic_clean, whitespace_clean, lower
            text = html.unescape(html.unescape(text))  # "&amp;lt;" -> "&lt;" -> "<"
            return " ".join(text.split()).lower()  # split() also strips both ends
        text = WHITESPACE.sub(" ", text)  # transformers: Replace(\s+, " "), Lowercase
        return "".join(char.lower() for char in text)  # a final "Σ" gives "σ", not "ς"

    # -- training: lesson 09's trainer, "</w>" variant ---------------------------------
    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, *,
              min_frequency: int = 2) -> CLIPTokenizer:
        """Learn merges on `texts` (cleaned the "openai" way) until `vocab_size` tokens.

        Ids: the 512 symbols of `alphabet()` (bytes, then bytes + "</w>"), each new symbol
        in the order learned, "<|startoftext|>", "<|endoftext|>": OpenAI's layout.
        """
        return super().train(texts, vocab_size, special_tokens=SPECIAL_TOKENS,
                             min_frequency=min_frequency)

    # -- 4. the model's batch ----------------------------------------------------------
    def __call__(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH,
                 pad_token_id: int = 0, truncate: bool = True) -> dict[str, torch.Tensor]:
        """Texts -> the text tower's input, as open_clip.tokenize (and transformers' output).

        Inputs:
            texts: one str or a list of B str.
            context_length: positions per row (77 for every released CLIP).
            pad_token_id: what fills the rest of a row: 0 as OpenAI and open_clip (the
                token "!"), or `eot_token_id` as transformers. Either works: the text feature
                is read at the first end token and attention is causal.
            truncate: cut a long text to its first context_length - 2 ids, keeping the end
                token last (as open_clip and transformers' truncation=True); False raises.
        Returns:
            {"input_ids": (B, context_length) long, "attention_mask": (B, context_length)
            long, 1 on <|startoftext|>, the text and <|endoftext|>, 0 on the padding}.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(text, str) for text in texts):
            raise TypeError("texts is a str or a non-empty list of str")
        if context_length < 2:
            raise ValueError(f"context_length={context_length}: need at least 2 positions, "
                             "for <|startoftext|> and <|endoftext|>")
        if pad_token_id not in self.id_to_token:
            raise ValueError(f"pad_token_id={pad_token_id} is not an id of the vocabulary "
                             f"(0..{len(self) - 1}); open_clip pads with 0, transformers with "
                             f"the end token {self.eot_token_id}")
        input_ids = torch.full((len(texts), context_length), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(texts), context_length), dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            if len(ids) > context_length - 2:
                if not truncate:
                    raise ValueError(f"text {row} has {len(ids)} tokens, more than the "
                                     f"{context_length - 2} that fit between the start and end "
                                     f"tokens: shorten it or pass truncate=True")
                ids = ids[:context_length - 2]
            ids = [self.sot_token_id, *ids, self.eot_token_id]
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention_mask[row, :len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    # -- 5. files ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write vocab.json, merges.txt and the tokenizer_config.json of CLIPTokenizer.

        transformers 5.25 loads the folder with `CLIPTokenizer.from_pretrained(directory)`
        (CLIPTokenizerFast is another name of the same class), or AutoTokenizer through
        "tokenizer_class". The config names the start, end, padding and unknown tokens
        (transformers pads with the end token) and the context of 77.
        """
        directory = super().save(directory)
        config = {
            "tokenizer_class": "CLIPTokenizer", "model_max_length": CONTEXT_LENGTH,
            "bos_token": STARTOFTEXT, "eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT,
            "unk_token": ENDOFTEXT, "do_lower_case": True, "errors": "replace",
            "add_prefix_space": False,
            "added_tokens_decoder": {str(self.vocab[token]): {
                "content": token, "special": True, "normalized": False, "lstrip": False,
                "rstrip": False, "single_word": False} for token in self.special_tokens}}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                         encoding="utf-8")
        return directory

    @classmethod
    def from_bpe_gz(cls, path: str | Path | None = None, *, cleaning: str = "openai",
                    fix_text: Callable[[str], str] | None = None) -> CLIPTokenizer:
        """OpenAI's vocabulary from bpe_simple_vocab_16e6.txt.gz (open_clip's copy if no path).

        The file holds only merges: a header line, then 262,144 "left right" lines in rank
        order. CLIP uses the first 49,152 - 256 - 2 = 48,894 of them, and builds the ids as
        OpenAI's SimpleTokenizer does: the 256 bytes, the 256 bytes + "</w>", one token per
        merge, "<|startoftext|>" 49406, "<|endoftext|>" 49407: 49,408 in all (Sec. 2.4's
        49,152 does not count the 256 "</w>" symbols).
        """
        path = Path(path) if path is not None else open_clip_vocabulary_file()
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}: expected OpenAI's "
                                    "bpe_simple_vocab_16e6.txt.gz (open_clip ships it)")
        with gzip.open(path, "rt", encoding="utf-8") as file:
            lines = file.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:1 + N_OPENAI_MERGES]]
        if len(merges) != N_OPENAI_MERGES or any(len(merge) != 2 for merge in merges):
            raise ValueError(f"{path} is not OpenAI's merges file: expected a header and "
                             f"{N_OPENAI_MERGES} lines 'left right'")
        alphabet = cls.alphabet()  # 512: bytes, bytes + "</w>", in OpenAI's order
        tokens = [*alphabet, *(left + right for left, right in merges), *SPECIAL_TOKENS]
        vocab = {token: i for i, token in enumerate(tokens)}
        return cls(vocab, merges, SPECIAL_TOKENS, cleaning=cleaning, fix_text=fix_text)


def open_clip_vocabulary_file() -> Path:
    """Where the installed open_clip keeps OpenAI's bpe_simple_vocab_16e6.txt.gz (found
    without importing open_clip, which loads torch models and timm)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("open_clip is not installed, so its copy of OpenAI's "
                                "bpe_simple_vocab_16e6.txt.gz was not found: pip install "
                                "open-clip-torch, or pass the file's path")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
