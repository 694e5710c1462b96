"""Image-caption pairs for training a small CLIP: generated ones (no download) and a user's.

``digit_pairs``: scikit-learn's 8x8 digits drawn on a 32 x 32 black canvas with three
attributes applied to the image (a colour, a size, a position), each described by a caption
from one of several templates: "a small red seven in the top left", "the digit seven,
coloured red, placed top left", "a red handwritten seven", ... Two things are held out, so
that zero-shot results measure transfer, not recall (Section 3.1 of the paper):

(a) the zero-shot prompts (``PROMPT_TEMPLATES``, "a photo of the digit seven", ...) never
    occur verbatim in any training caption (not even as a part of one);
(b) some colour-digit combinations (``HELDOUT_COLOUR``: zero and five are never red, one
    and six never green, ...) never occur in training, neither drawn nor named; a separate
    test set draws exactly those.

``read_pairs``: a folder of images and a CSV / TSV file of (file name, caption) rows.
Everything is deterministic given the seed. ``train.py`` trains and evaluates on both.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.data_loaders import DatasetFormatError, DatasetNotFoundError, load_tabular

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS = {"red": (1.0, 0.15, 0.15), "green": (0.15, 0.9, 0.2), "blue": (0.25, 0.4, 1.0),
           "yellow": (1.0, 0.9, 0.1), "white": (1.0, 1.0, 1.0)}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": 1, "large": 2}  # nearest-neighbour upsampling of the 8 x 8 digit
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")
CANVAS = 32
PALE = 0.4  # every channel carries some of the ink, so the shape shows whatever the colour

# (b) digit d is never drawn (nor named) in colour COLOUR_NAMES[d % 5] during training:
# zero and five never red, one and six never green, two and seven never blue, ...
HELDOUT_COLOUR = {digit: COLOUR_NAMES[digit % len(COLOUR_NAMES)] for digit in range(10)}

# The captions of the training (and the ordinary test) pairs: attributes named in several
# orders and phrasings, some leaving attributes out, as alt-texts do.
TRAIN_TEMPLATES = (
    "a {size} {colour} {digit} in the {position}",
    "the digit {digit}, coloured {colour}, placed {position}",
    "{colour} {digit} at the {position}, {size}",
    "a {colour} handwritten {digit}",
    "the number {digit} written in {colour}",
    "a {size} {digit} in {colour}, {position}",
    "{digit} in the {position}",
    "a {size} {colour} {digit}",
)
# (a) The zero-shot prompts: only the class name, in templates no training caption uses
# (Section 3.1.4's "A photo of a {label}."), "{}" standing for the class name; ensembled as
# the paper's 80 ImageNet prompts are.
PROMPT_TEMPLATES = (
    "a photo of the digit {}",
    "a picture of a {}",
    "an image showing the number {}",
    "this is a {}",
    "a handwritten {}",
    "{}, drawn by hand",
)


def caption(template: str, digit: int, colour: str, size: str, position: str) -> str:
    """One template filled with a pair's attributes (unused fields are ignored)."""
    return template.format(digit=DIGIT_NAMES[digit], colour=colour, size=size,
                           position=position)


def ink_colour(colour: str) -> np.ndarray:
    """(3,) the RGB of the ink: the named colour mixed with PALE white."""
    return PALE + (1 - PALE) * np.array(COLOURS[colour], np.float32)


def render(ink: np.ndarray, colour: str, size: str, position: str,
           rng: np.random.Generator) -> np.ndarray:
    """One digit on the canvas: ink (8, 8) in [0, 1] -> image (3, 32, 32) float32 in [0, 1].

    The digit is upsampled (small 8 x 8, large 16 x 16), tinted (ink x ``ink_colour`` x a
    random brightness in [0.75, 1]), placed in its quadrant (or the centre) with a random
    shift of up to 4 pixels that keeps it there, on a black background with a little noise.
    """
    scale = SIZES[size]
    glyph = np.kron(ink, np.ones((scale, scale), np.float32))  # (8 s, 8 s)
    side = glyph.shape[0]
    half = CANVAS // 2
    slack = min(4, half - side) if position != "centre" else 2
    if position == "centre":
        top = left = (CANVAS - side) // 2
    else:
        top = 0 if position.startswith("top") else half
        left = 0 if position.endswith("left") else half
        top, left = top + (half - side) // 2 - slack // 2, left + (half - side) // 2 - slack // 2
    top += int(rng.integers(0, slack + 1))
    left += int(rng.integers(0, slack + 1))
    image = rng.normal(0.0, 0.03, (3, CANVAS, CANVAS)).astype(np.float32)
    tint = rng.uniform(0.75, 1.0) * ink_colour(colour)[:, None, None]  # (3, 1, 1)
    image[:, top:top + side, left:left + side] += tint * glyph  # (3, 8 s, 8 s)
    return np.clip(image, 0.0, 1.0)


@dataclass
class PairData:
    """Image-caption pairs split for training and evaluation.

    images_*: (N, 3, H, W) float32 in [0, 1]; captions_*: N str; labels_*: (N,) int64 class
    labels (-1: none) for zero-shot and the linear probe, or None (a user's pairs without
    --classes). ``heldout``: the held-out colour-digit combinations (generated pairs only).
    ``prompt_templates``: the zero-shot prompts, "{}" standing for a class name.
    """

    name: str
    images_train: np.ndarray
    captions_train: list[str]
    images_test: np.ndarray
    captions_test: list[str]
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    prompt_templates: tuple[str, ...] = PROMPT_TEMPLATES
    images_heldout: np.ndarray | None = None
    captions_heldout: list[str] | None = None
    labels_heldout: np.ndarray | None = None


def _draw(inks: np.ndarray, digits: np.ndarray, variants: int, heldout: bool,
          rng: np.random.Generator) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``variants`` drawings of each digit image with random attributes and a random
    training template. heldout=False: colours other than the digit's held-out one; True:
    only that colour. Returns (images (N variants, 3, 32, 32), captions, labels)."""
    images, captions, labels = [], [], []
    for _ in range(variants):
        for ink, digit in zip(inks, digits):
            digit = int(digit)
            allowed = [HELDOUT_COLOUR[digit]] if heldout else [
                name for name in COLOUR_NAMES if name != HELDOUT_COLOUR[digit]]
            colour = allowed[int(rng.integers(len(allowed)))]
            size = tuple(SIZES)[int(rng.integers(len(SIZES)))]
            position = POSITIONS[int(rng.integers(len(POSITIONS)))]
            template = TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))]
            images.append(render(ink, colour, size, position, rng))
            captions.append(caption(template, digit, colour, size, position))
            labels.append(digit)
    return np.stack(images), captions, np.array(labels, dtype=np.int64)


def digit_pairs(variants: int = 4, seed: int = 0, limit: int | None = None) -> PairData:
    """The generated pairs: scikit-learn's digits (1,437 training / 360 test images,
    stratified), each training image drawn ``variants`` times with fresh attributes, each
    test image once; plus the held-out set: each test image in its digit's held-out colour.
    ``limit``: use only the first ``limit`` training and test digit images (tests)."""
    split = load_tabular("digits", standardize=False, seed=seed)
    inks_train = (split.X_train / 16.0).astype(np.float32).reshape(-1, 8, 8)  # (N, 8, 8)
    inks_test = (split.X_test / 16.0).astype(np.float32).reshape(-1, 8, 8)
    y_train, y_test = split.y_train, split.y_test
    if limit is not None:
        inks_train, y_train, inks_test, y_test = (inks_train[:limit], y_train[:limit],
                                                  inks_test[:limit], y_test[:limit])
    rng = np.random.default_rng(seed)
    train = _draw(inks_train, y_train, variants, heldout=False, rng=rng)
    test = _draw(inks_test, y_test, 1, heldout=False, rng=rng)
    heldout = _draw(inks_test, y_test, 1, heldout=True, rng=rng)
    return PairData("digit pairs", train[0], train[1], test[0], test[1], train[2], test[2],
                    list(DIGIT_NAMES), PROMPT_TEMPLATES, *heldout)


# --------------------------------------------------------------------------------------
# A user's pairs: a folder of images and a CSV / TSV file of (file name, caption) rows
# --------------------------------------------------------------------------------------

HEADER_NAMES = {"file", "filename", "file_name", "image", "image_file", "path", "filepath"}


def read_pairs(images_dir: str | Path, captions_file: str | Path, image_size: int = 32
               ) -> tuple[np.ndarray, list[str], list[str]]:
    """Read ``captions_file`` (CSV, or TSV when the name ends in .tsv or the first line has
    a tab): one "file name, caption" row per pair (CSV quoting for captions with commas; an
    optional header row such as "file,caption"; blank lines skipped); the files are read
    from ``images_dir`` as RGB and resized to image_size x image_size.

    Returns: (images (N, 3, S, S) float32 in [0, 1], captions, file names).
    Raises:  DatasetNotFoundError (no such folder or file) or DatasetFormatError naming the
             file and line: a row without exactly two fields, an empty caption, an image
             that does not exist or that PIL cannot read, no pairs at all.
    """
    from PIL import Image, UnidentifiedImageError

    images_dir, captions_file = Path(images_dir), Path(captions_file)
    if not images_dir.is_dir():
        raise DatasetNotFoundError(f"{images_dir}: no such folder (--images: the folder "
                                   "holding the images that the captions file names)")
    if not captions_file.is_file():
        raise DatasetNotFoundError(f"{captions_file}: no such file (--captions: a CSV or TSV "
                                   "file with one 'file name, caption' row per image)")
    text = captions_file.read_text(encoding="utf-8-sig")
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if captions_file.suffix.lower() == ".tsv" or "\t" in first_line else ","
    kind = "tab" if delimiter == "\t" else "comma"
    images, captions, files = [], [], []
    for line, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
        if not row or all(not value.strip() for value in row):
            continue
        where = f"{captions_file}, line {line}"
        if len(row) != 2:
            raise DatasetFormatError(f"{where}: expected 2 fields (file name, caption) "
                                     f"separated by a {kind}, got {len(row)}: {row!r} (quote "
                                     "a caption holding the separator: \"a cat, asleep\")")
        name, text_caption = row[0].strip(), " ".join(row[1].split())
        if not images and not captions and name.lower() in HEADER_NAMES:
            continue  # the header row
        if not name:
            raise DatasetFormatError(f"{where}: empty file name")
        if not text_caption:
            raise DatasetFormatError(f"{where}: empty caption for {name!r}; every image "
                                     "needs a caption")
        path = images_dir / name
        if not path.is_file():
            raise DatasetFormatError(f"{where}: no image {path} (file names are relative to "
                                     f"--images {images_dir})")
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB").resize((image_size, image_size),
                                                     Image.Resampling.BICUBIC)
        except (UnidentifiedImageError, OSError) as error:
            raise DatasetFormatError(f"{where}: {path} is not an image PIL can read "
                                     f"({error})") from None
        images.append(np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0)  # (3, S, S)
        captions.append(text_caption)
        files.append(name)
    if not images:
        raise DatasetFormatError(f"{captions_file}: no 'file name, caption' rows")
    return np.stack(images), captions, files


def labels_from_captions(captions: list[str], class_names: list[str]) -> np.ndarray:
    """(N,) the class whose name occurs (as whole words, any case) in each caption; -1 when
    none or several do (such pairs are left out of zero-shot and the linear probe)."""
    patterns = [re.compile(rf"\b{re.escape(name.lower())}\b") for name in class_names]
    labels = []
    for text in captions:
        found = [index for index, pattern in enumerate(patterns) if pattern.search(text.lower())]
        labels.append(found[0] if len(found) == 1 else -1)
    return np.array(labels, dtype=np.int64)


# The prompts for a user's classes (--classes)
GENERIC_PROMPTS = ("a photo of a {}", "a picture of a {}", "an image of a {}", "{}")


def user_pairs(images_dir: str | Path, captions_file: str | Path, image_size: int = 32,
               test_fraction: float = 0.2, class_names: list[str] | None = None,
               seed: int = 0) -> PairData:
    """A user's pairs, ``test_fraction`` of them (at least one) held out at random for
    testing. ``class_names``: zero-shot classes, each pair labelled by the one it names
    (``labels_from_captions``); the prompts are then ``PROMPT_TEMPLATES``' generic forms."""
    images, captions, _ = read_pairs(images_dir, captions_file, image_size)
    if len(images) < 4:
        raise DatasetFormatError(f"{captions_file}: {len(images)} pair(s); at least 4 are "
                                 "needed (some to train on, some to test)")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = min(max(1, round(test_fraction * len(images))), len(images) - 2)
    test, train = order[:n_test], order[n_test:]
    labels = labels_from_captions(captions, class_names) if class_names else None
    pick = lambda index: [captions[i] for i in index]  # noqa: E731
    return PairData("your pairs", images[train], pick(train), images[test], pick(test),
                    None if labels is None else labels[train],
                    None if labels is None else labels[test], list(class_names or []),
                    GENERIC_PROMPTS)

