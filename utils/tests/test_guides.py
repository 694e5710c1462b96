"""Tests of utils/guides.py: quoted ``file.py:LINE`` locations found in Markdown, and the
check that each quoted line holds what the guide says.

Version-independent: the "installed library" is a small package the tests write, so the
checks do not depend on which transformers or timm is installed. Each lesson's own tests
check where its file names resolve and that its guides hold for the pinned versions.
"""

from __future__ import annotations

from pathlib import Path

from utils.guides import GuideLocation, check_guide, guide_locations, quoted_names

SOURCE = '''\
"""A module a guide reads."""


class Embeddings:
    def __init__(self):
        self.size = 3


def forward(inputs):
    return inputs + 1
'''  # class Embeddings: lines 4-6; def __init__: 5-6; def forward: 9-10


def _library(tmp_path: Path):
    """A package with models/model.py and layers/attention.py, and its resolve(): a bare
    name is looked up in models/, a path with a folder from the package root."""
    root = tmp_path / "library"
    for path in (root / "models" / "model.py", root / "layers" / "attention.py"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SOURCE, encoding="utf-8")

    def resolve(name: str) -> Path | None:
        path = root / name if "/" in name else root / "models" / name
        return path if path.is_file() else None

    return root, resolve


def _guide(tmp_path: Path, *paragraphs: str) -> Path:
    guide = tmp_path / "guide.md"
    guide.write_text("\n\n".join(paragraphs), encoding="utf-8")
    return guide


def test_locations_are_named_by_the_code_span_before_them():
    text = "\n".join([
        "# `Embeddings` `model.py:4`",  # 1: a heading
        "| `Embeddings` | `model.py:4-6` |",  # 2: a table row
        "The `forward` `model.py:9` calls `layers/attention.py:5`; `x` `model.py:10`.",  # 3
        "",
        "Wrapped: `Embeddings.__init__`",  # 5: the name, on the line before the location
        "is at `model.py:5`.",  # 6
        "- `forward` ends one list item",  # 7
        "- and `model.py:9` starts another: no name",  # 8
        "```",
        "`forward` `model.py:9` in fenced code is no quote",  # 10
        "```",
    ])
    locations = guide_locations(text, "reading.md")
    assert [(loc.guide_line, loc.path, loc.start, loc.end, loc.name) for loc in locations] == [
        (1, "model.py", 4, 4, "Embeddings"),
        (2, "model.py", 4, 6, "Embeddings"),
        (3, "model.py", 9, 9, "forward"),
        (3, "layers/attention.py", 5, 5, "forward"),  # a location is never a name
        (3, "model.py", 10, 10, "x"),
        (6, "model.py", 5, 5, "Embeddings.__init__"),
        (8, "model.py", 9, 9, None),
    ]
    assert all(isinstance(loc, GuideLocation) and loc.guide == Path("reading.md")
               for loc in locations)
    assert guide_locations("`a.py` and `model.py` and `model.py:x`") == []  # no line number


def test_a_quoted_line_may_hold_the_span_or_its_last_dotted_part():
    assert quoted_names("PreTrainedModel.post_init()") == ["PreTrainedModel.post_init",
                                                           "post_init"]
    assert quoted_names(" forward() ") == ["forward"]
    assert quoted_names("inputs + 1") == ["inputs + 1"]  # a piece of code: as written
    assert quoted_names("config.json") == ["config.json", "json"]


def test_right_locations_give_no_problem(tmp_path):
    _, resolve = _library(tmp_path)
    guide = _guide(tmp_path,
                   "| `Embeddings` | `model.py:4` | `Embeddings` `model.py:4-6` |",
                   "`Embeddings.__init__` `model.py:5` sets `self.size = 3` `model.py:6`.",
                   "`forward()` `layers/attention.py:9-10`, and `inputs + 1` `model.py:10`.")
    assert len(guide_locations(guide.read_text())) == 6
    assert check_guide(guide, resolve) == []


def test_the_check_reports_each_wrong_location_with_a_clear_message(tmp_path):
    _, resolve = _library(tmp_path)
    guide = _guide(
        tmp_path,
        "| `Embeddings` | `model.py:4` |",  # line 1: right
        "The pooler `Pooler` `model.py:1` is elsewhere.",  # line 3: a wrong line
        "Wrapped: `forward`\nsits at `model.py:4`.",  # lines 5-6: named on line 5
        "`nothing` `no_such_file.py:3` and `forward` `model.py:999`.",  # line 8
        "A bare `model.py:5` has no name.",  # line 10
        "`Embeddings` `model.py:4-9` runs past the class.",  # line 12
        "```\n`Pooler` `model.py:1` inside a fenced block is not a quote\n```")
    problems = check_guide(guide, resolve, searched_in="the library")
    assert problems == [
        "guide.md:3: `model.py:1`: should hold `Pooler`, but the line reads "
        "'\"\"\"A module a guide reads.\"\"\"'",
        "guide.md:6: `model.py:4`: should hold `forward`, but the line reads "
        "'class Embeddings:'",
        "guide.md:8: `no_such_file.py:3`: no file no_such_file.py in the library",
        "guide.md:8: `model.py:999`: lines 999-999 outside model.py (10 lines)",
        "guide.md:10: `model.py:5`: no code span before it says what the line holds",
        "guide.md:12: `model.py:4`: the range ends at 9, after the end of `Embeddings` (6)",
    ]


def test_ranges_are_checked_against_the_definition_and_the_file_end(tmp_path):
    _, resolve = _library(tmp_path)
    guide = _guide(tmp_path,
                   "`forward` `model.py:9-11`",  # line 1: past the end of the file
                   "`__init__` `model.py:5-7`",  # line 3: past the end of __init__
                   "`self.size` `model.py:6-9`",  # line 5: no definition starts there: allowed
                   "`forward` `model.py:9-5`")  # line 7: a range that runs backwards
    assert check_guide(guide, resolve, "the library") == [
        "guide.md:1: `model.py:9`: lines 9-11 outside model.py (10 lines)",
        "guide.md:3: `model.py:5`: the range ends at 7, after the end of `__init__` (6)",
        "guide.md:7: `model.py:9`: lines 9-5 outside model.py (10 lines)",
    ]


def test_version_problems_name_each_library_whose_version_differs():
    from utils.guides import version_problems

    quoted = {"timm": "1.0.31", "transformers": "5.25.0"}
    assert version_problems(quoted, {"timm": "1.0.31", "transformers": "5.25.0"}) == []
    assert version_problems(quoted, {"timm": "1.0.32", "transformers": "5.25.0"}) == [
        "the guide quotes timm 1.0.31; installed is 1.0.32, so line numbers may differ"]
