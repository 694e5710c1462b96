"""An offline corpus of sentence pairs with structure a masked LM must learn (lesson 08).

A tiny grammar writes pairs "[CLS] A [SEP] B [SEP]" as BERT's pre-training data is laid out
(Section 3.1): B is the sentence that follows A (label 0, IsNext) or the B of another pair
(label 1, NotNext). Its regularities are what a masked LM can only predict by looking at
other positions, near and far:

- agreement: a verb takes the number of its subject (the dog barks / the dogs bark), a
  determiner the number of its noun (this dog / these dogs), across adjectives in between;
- selection: each animal has its own verb (dogs bark, birds sing), people take a transitive
  verb and an animal as object;
- reference across the [SEP]: B starts with the pronoun of A's subject (he, she, it, they);
  an animal's B repeats its verb, a person's B copies A's object noun ("the king sees a
  dog . he feeds the dog ."). A random B breaks both, which is what NSP can detect.

Words are ids of one small vocabulary, its first five the special tokens
[PAD] [UNK] [CLS] [SEP] [MASK] (as our trained WordPiece vocabularies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)

# (singular, plural, gender): gender "m", "f" for people, "n" for animals
PEOPLE = [("king", "kings", "m"), ("queen", "queens", "f"), ("boy", "boys", "m"),
          ("girl", "girls", "f"), ("man", "men", "m"), ("woman", "women", "f")]
# animal (singular, plural) -> its own verb (singular, plural)
ANIMALS = {("dog", "dogs"): ("barks", "bark"), ("cat", "cats"): ("meows", "meow"),
           ("bird", "birds"): ("sings", "sing"), ("fish", "fishes"): ("swims", "swim"),
           ("horse", "horses"): ("runs", "run"), ("cow", "cows"): ("sleeps", "sleep")}
TRANSITIVE = [("sees", "see"), ("likes", "like"), ("feeds", "feed"), ("follows", "follow")]
DETERMINERS = {"sg": ["a", "this", "that", "the"], "pl": ["these", "those", "some", "the"]}
ADJECTIVES = ["big", "small", "old", "young", "red", "happy"]
PRONOUNS = {("m", "sg"): "he", ("f", "sg"): "she", ("n", "sg"): "it", ("m", "pl"): "they",
            ("f", "pl"): "they", ("n", "pl"): "they"}


def _vocabulary() -> list[str]:
    words = list(SPECIALS) + ["."]
    words += sorted({d for ds in DETERMINERS.values() for d in ds}) + ADJECTIVES
    words += [w for sg, pl, _ in PEOPLE for w in (sg, pl)]
    words += [w for pair in ANIMALS for w in pair] + [w for v in ANIMALS.values() for w in v]
    words += [w for pair in TRANSITIVE for w in pair] + sorted(set(PRONOUNS.values()))
    return words


VOCAB = _vocabulary()
WORD_ID = {w: i for i, w in enumerate(VOCAB)}


@dataclass
class Pairs:
    """A padded batch of sentence pairs, as BERT's inputs.

    input_ids (N, T) int64: [CLS] A [SEP] B [SEP] then [PAD]; token_type_ids (N, T): 0 for
    [CLS] A [SEP], 1 for B [SEP], 0 on padding; attention_mask (N, T): 1 real, 0 padding;
    next_sentence_label (N,): 0 = B follows A, 1 = B is random (transformers' convention).
    """

    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    next_sentence_label: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, rows) -> Pairs:
        return Pairs(self.input_ids[rows], self.token_type_ids[rows], self.attention_mask[rows],
                     self.next_sentence_label[rows])

    def to(self, device) -> Pairs:
        return Pairs(*(t.to(device) for t in (self.input_ids, self.token_type_ids,
                                               self.attention_mask, self.next_sentence_label)))


def _noun_phrase(rng, noun: str, number: str) -> list[str]:
    """Determiner (agreeing in number), 0-2 adjectives, the noun."""
    adjectives = list(rng.choice(ADJECTIVES, size=rng.integers(0, 3), replace=False))
    return [str(rng.choice(DETERMINERS[number]))] + adjectives + [noun]


def _pair(rng) -> tuple[list[str], list[str]]:
    """One sentence A and the sentence B that follows it."""
    number = "sg" if rng.random() < 0.5 else "pl"
    form = 0 if number == "sg" else 1
    if rng.random() < 0.5:  # a person sees / likes / feeds / follows an animal
        person = PEOPLE[rng.integers(len(PEOPLE))]
        animal = list(ANIMALS)[rng.integers(len(ANIMALS))]
        object_number = "sg" if rng.random() < 0.5 else "pl"
        obj = animal[0 if object_number == "sg" else 1]
        verb = TRANSITIVE[rng.integers(len(TRANSITIVE))][form]
        a = _noun_phrase(rng, person[form], number) + [verb] + _noun_phrase(rng, obj,
                                                                             object_number)
        verb_b = TRANSITIVE[rng.integers(len(TRANSITIVE))][form]
        b = [PRONOUNS[person[2], number], verb_b, "the", obj]  # copies A's object
    else:  # an animal does what its kind does
        animal = list(ANIMALS)[rng.integers(len(ANIMALS))]
        verb = ANIMALS[animal][form]
        a = _noun_phrase(rng, animal[form], number) + [verb]
        b = [PRONOUNS["n", number], verb]  # repeats A's verb
    return a + ["."], b + ["."]


def make_pairs(n: int, seed: int = 0, random_next: float = 0.5) -> Pairs:
    """``n`` sentence pairs from the grammar, padded to the longest.

    Inputs:  n pairs; seed; random_next - the share whose B is another pair's B (0.5 as
             BERT's NSP data)
    Returns: Pairs (see its docstring); sequences are 8 to 18 tokens long
    """
    if n < 2:
        raise ValueError(f"make_pairs: need n >= 2 pairs, got {n!r}")
    rng = np.random.default_rng(seed)
    pairs = [_pair(rng) for _ in range(n)]
    is_random = rng.random(n) < random_next
    rows = []
    for i, (a, b) in enumerate(pairs):
        if is_random[i]:  # another pair's B: it refers to another sentence
            b = pairs[(i + rng.integers(1, n)) % n][1]
        rows.append(([CLS_ID] + [WORD_ID[w] for w in a] + [SEP_ID],
                     [WORD_ID[w] for w in b] + [SEP_ID]))
    length = max(len(a) + len(b) for a, b in rows)
    input_ids = torch.full((n, length), PAD_ID, dtype=torch.int64)
    token_type_ids = torch.zeros((n, length), dtype=torch.int64)
    for i, (a, b) in enumerate(rows):
        input_ids[i, :len(a) + len(b)] = torch.tensor(a + b)
        token_type_ids[i, len(a):len(a) + len(b)] = 1
    attention_mask = (input_ids != PAD_ID).long()
    return Pairs(input_ids, token_type_ids, attention_mask,
                 torch.from_numpy(is_random.astype(np.int64)))


def words_key(ids: torch.Tensor) -> tuple[int, ...]:
    """The ids of one row without its padding (to find pairs seen in training)."""
    return tuple(ids[ids != PAD_ID].tolist())


def decode(ids) -> str:
    """Ids -> words, padding left out: "[CLS] the dog barks . [SEP] it barks . [SEP]"."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != PAD_ID)
