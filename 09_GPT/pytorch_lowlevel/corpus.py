"""A generated language, character by character, that a small GPT must read its context to
learn (lesson 09's offline default, for L2 and L3).

Sentences of a small grammar, one character at a time (vocabulary ``VOCAB``, 32 symbols):

    the old cat (that is very big) meows. it sleeps.
    the kings see the small dogs. they say "the frog (that is red) swims".

- spelling: words are fixed strings; after "the ki" comes "ng";
- agreement: the verb takes the number of its subject ("the cat meows" / "the cats meow"),
  "(that is ..." / "(that are ..." too, across the words in between;
- selection: each animal has its own verbs (dogs bark, birds sing), people see, feed, like
  animals or say something in quotes;
- reference: a pronoun (he, she, it, they) stands for the previous sentence's subject (the
  paragraph's first sentence names one); its verb is still that noun's and number's;
- spans that must be closed: "(" ... ")" after 1 to ~6 words, a quote after a clause.

Every random choice has a known probability, so ``entropy_per_char`` gives the language's
own cross-entropy: the floor no model can beat on average. ``unigram_loss`` is the loss of
the best model that ignores the context. See ``train.py`` for a GPT trained on it.
"""

from __future__ import annotations

import math
import random
from collections import Counter

VOCAB = "\n \"().abcdefghijklmnopqrstuvwxyz"  # every character the language uses

# animal (singular, plural) -> its own verbs (singular, plural)
ANIMALS = {("cat", "cats"): [("meows", "meow"), ("purrs", "purr"), ("sleeps", "sleep")],
           ("dog", "dogs"): [("barks", "bark"), ("runs", "run"), ("digs", "dig")],
           ("bird", "birds"): [("sings", "sing"), ("flies", "fly")],
           ("frog", "frogs"): [("jumps", "jump"), ("swims", "swim")]}
# person (singular, plural) -> pronoun in the singular ("they" in the plural)
PEOPLE = {("king", "kings"): "he", ("queen", "queens"): "she", ("boy", "boys"): "he",
          ("girl", "girls"): "she"}
PERSON_VERBS = [("sees", "see"), ("feeds", "feed"), ("likes", "like")]  # + an animal object
SAYS = ("says", "say")  # + a quoted clause
ADJECTIVES = ["old", "big", "small", "red"]

P_ADJECTIVE = 0.3  # "the old cat" rather than "the cat"
P_PLURAL = 0.4
P_PRONOUN = 0.5  # the subject is a pronoun for the previous subject (not in a paragraph's first)
P_BRACKET = 0.25  # "(that is ...)" after a new subject
P_VERY = 0.4  # one more "very " inside the bracket: its length is geometric
P_SAYS = 0.3  # a person says something rather than seeing, feeding, liking an animal
P_NEWLINE = 0.15  # a new paragraph after a sentence


class _Choices:
    """The random choices behind a text: drawn (``text=None``) or read back from ``text``.

    Each choice picks one of several strings with known probabilities; the strings of one
    choice are prefix-free, so a text has exactly one sequence of choices (read back here).
    ``nats`` adds up -log p of every choice made: -log P(text).
    """

    def __init__(self, rng: random.Random | None = None, text: str | None = None):
        self.rng, self.text, self.position, self.nats, self.pieces = rng, text, 0, 0.0, []

    def choose(self, options: dict[str, float]) -> str:
        """One of ``options`` (string -> weight), drawn or read; returns the string."""
        total = sum(options.values())
        if self.text is None:
            chosen = self.rng.choices(list(options), weights=list(options.values()))[0]
        else:
            matches = [s for s in options if self.text.startswith(s, self.position)]
            if len(matches) != 1:
                raise ValueError(f"not a text of this language at character {self.position}: "
                                 f"{self.text[self.position:self.position + 30]!r}; expected "
                                 f"one of {sorted(options)}")
            chosen = matches[0]
        self.nats -= math.log(options[chosen] / total)
        self.emit(chosen)
        return chosen

    def emit(self, piece: str) -> None:
        """A string with no choice in it (probability 1)."""
        if self.text is not None:
            if not self.text.startswith(piece, self.position):
                raise ValueError(f"not a text of this language at character {self.position}: "
                                 f"expected {piece!r}, got "
                                 f"{self.text[self.position:self.position + 30]!r}")
            self.position += len(piece)
        self.pieces.append(piece)


def _noun_phrase(choices: _Choices, nouns, after: str) -> tuple[tuple[str, str], int]:
    """[adjective] noun, singular or plural, then ``after``, as ONE choice (so that its
    options are prefix-free). Returns (the noun (singular, plural), number: 0 sg, 1 pl)."""
    options, meaning = {}, {}
    for adjective in [""] + ADJECTIVES:
        p_adjective = P_ADJECTIVE / len(ADJECTIVES) if adjective else 1 - P_ADJECTIVE
        for noun in nouns:
            for number, p_number in enumerate((1 - P_PLURAL, P_PLURAL)):
                text = (adjective + " " if adjective else "") + noun[number] + after
                options[text] = p_adjective * p_number / len(nouns)
                meaning[text] = noun, number
    return meaning[choices.choose(options)]


def _predicate(choices: _Choices, noun, number: int, end: str, bracket: bool) -> None:
    """The subject's own verb in its number, then ``end``; a person's verb takes an animal
    object or a quoted clause. With ``bracket``, "(that is ... adjective) " may come first:
    it must agree with the subject and be closed, after a geometric number of "very "."""
    if noun in ANIMALS:
        options = {verb[number] + end: 1 / len(ANIMALS[noun]) for verb in ANIMALS[noun]}
    else:
        options = {verb[number] + " ": (1 - P_SAYS) / len(PERSON_VERBS)
                   for verb in PERSON_VERBS}
        options[SAYS[number] + ' "'] = P_SAYS
    if bracket:
        options = {key: value * (1 - P_BRACKET) for key, value in options.items()}
        options["(that "] = P_BRACKET
    chosen = choices.choose(options)
    if chosen == "(that ":
        choices.emit("is " if number == 0 else "are ")
        ends = {adjective + ") ": (1 - P_VERY) / len(ADJECTIVES) for adjective in ADJECTIVES}
        while choices.choose({"very ": P_VERY, **ends}) == "very ":
            pass
        _predicate(choices, noun, number, end, bracket=False)
    elif chosen == SAYS[number] + ' "':  # a clause about an animal, then the closing quote
        choices.emit("the ")
        inner, inner_number = _noun_phrase(choices, list(ANIMALS), " ")
        _predicate(choices, inner, inner_number, '"' + end, bracket=True)
    elif noun in PEOPLE:  # sees, feeds, likes: an animal, any number
        choices.emit("the ")
        _noun_phrase(choices, list(ANIMALS), end)


def _pronoun(noun, number: int) -> str:
    if number == 1:
        return "they"
    return PEOPLE.get(noun, "it")


def _sentences(choices: _Choices, n_sentences: int | None) -> None:
    """n_sentences sentences (None: until the text being read ends). A sentence: a subject
    (a new "the ..." or a pronoun for the previous subject), its predicate, ".", then " "
    or a new paragraph "\n" (whose first sentence names a new subject)."""
    previous = None  # (noun, number) of the previous subject in this paragraph
    count = 0
    while (count < n_sentences) if n_sentences is not None \
            else choices.position < len(choices.text):
        if previous is None:
            choices.emit(new := "the ")
        else:
            pronoun = _pronoun(*previous) + " "
            new = choices.choose({"the ": 1 - P_PRONOUN, pronoun: P_PRONOUN})
        if new == "the ":
            nouns = list(ANIMALS) + list(PEOPLE)
            previous = _noun_phrase(choices, nouns, " ")
        _predicate(choices, *previous, end=".", bracket=new == "the ")
        if choices.choose({" ": 1 - P_NEWLINE, "\n": P_NEWLINE}) == "\n":
            previous = None
        count += 1


def generate_text(n_sentences: int, seed: int) -> str:
    """``n_sentences`` sentences of the language, drawn with ``seed`` (the same seed gives the
    same text). Returns one string, every sentence followed by " " or "\n"."""
    if not (isinstance(n_sentences, int) and n_sentences >= 1):
        raise ValueError(f"n_sentences: expected an int >= 1, got {n_sentences!r}")
    choices = _Choices(rng=random.Random(seed))
    _sentences(choices, n_sentences)
    return "".join(choices.pieces)


N_TRAIN, N_VAL = 20_000, 2_000  # sentences of the default split (about 480k and 48k chars)


def train_val_text(seed: int = 0) -> tuple[str, str]:
    """The default split: N_TRAIN sentences drawn with ``seed``, N_VAL with another seed."""
    return generate_text(N_TRAIN, seed), generate_text(N_VAL, seed + 1_000_003)


def entropy_per_char(text_or_n: str | int, seed: int | None = None) -> float:
    """The language's own cross-entropy in nats per character, -log P(text) / len(text):
    the sum of -log p of every random choice behind the text, per character.

    Inputs: a text of the language (read back; ``seed`` unused), or a number of sentences
    drawn with ``seed``. No model can beat this on average: it is the loss of the generator
    that wrote the text (knowing every earlier character).
    """
    if isinstance(text_or_n, str):
        if not text_or_n:
            raise ValueError("entropy_per_char: the text is empty")
        choices = _Choices(text=text_or_n)
        _sentences(choices, None)
        return choices.nats / len(text_or_n)
    if seed is None:
        raise ValueError("entropy_per_char: a number of sentences needs a seed")
    choices = _Choices(rng=random.Random(seed))
    _sentences(choices, text_or_n)
    return choices.nats / sum(map(len, choices.pieces))


def unigram_loss(train: str, val: str) -> float:
    """Cross-entropy (nats per character) on ``val`` of the character frequencies of
    ``train``, with add-one smoothing over the characters of both: the best model that
    ignores the context."""
    counts = Counter(train)
    symbols = set(train) | set(val)
    total = len(train) + len(symbols)
    return -sum(n * math.log((counts[c] + 1) / total) for c, n in Counter(val).items()) / len(val)
