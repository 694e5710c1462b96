"""Reading guides that quote library code by line number, and the check that they still hold.

The Level 4 reading guides (``08_BERT/analysis/README.md``,
``docs/03_Reading_HuggingFace_Code.md``, ``09_GPT/analysis/README.md``,
``10_ViT/analysis/README.md``, ...) point into installed libraries with a code span
``file.py:LINE`` (or ``file.py:START-END``), written after the code span that names what
the line holds::

    The attention `BertSelfAttention` `modeling_bert.py:LINE` ...
    | `eager_attention_forward` | `modeling_bert.py:START-END` |

This module finds those locations in Markdown and checks each one against the installed
source. Where a file name points is the lesson's business, so each lesson passes its own
``resolve(file_name) -> Path | None``::

    from utils.guides import check_guide, read_guide_locations

    def resolve_source(path):  # bare names in models/bert/, else the package root
        ...

    problems = check_guide(HERE / "README.md", resolve_source, searched_in="transformers")

- ``guide_locations(markdown_text, guide)``: every quoted location of one Markdown text.
- ``read_guide_locations(paths)``: the same for Markdown files, in order.
- ``quoted_names(span)``: what a quoted line may contain to match the span naming it.
- ``check_guide(guide_path, resolve, searched_in)``: the problems of one guide, as text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CODE_SPAN = re.compile(r"`([^`]+)`")
LOCATION = re.compile(r"((?:[\w.]+/)*[\w.]+\.py):(\d+)(?:-(\d+))?")
BLOCK_START = re.compile(r"\s*(\||[-*] |\d+\. |#)")  # a table row, list item or heading


@dataclass(frozen=True)
class GuideLocation:
    """One ``file.py:LINE`` (or ``file.py:START-END``) quoted in a guide."""

    guide: Path
    guide_line: int  # the guide's line (1-based) on which the location is written
    path: str  # as written: "modeling_bert.py" or "models/auto/modeling_auto.py"
    start: int
    end: int  # == start for a single line
    name: str | None  # the code span written before it in the same logical line


def _logical_lines(text: str) -> list[list[tuple[int, str]]]:
    """Group a Markdown file's lines into logical lines: a paragraph, list item, table row
    or heading, with wrapped continuation lines joined to it. Fenced code is left out.

    Returns: one list of (line number, text) per logical line.
    """
    blocks: list[list[tuple[int, str]]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            blocks.append([])
            continue
        if fenced or not line.strip():
            blocks.append([])
            continue
        if not blocks or not blocks[-1] or BLOCK_START.match(line) or \
                blocks[-1][0][1].lstrip().startswith(("|", "#")):
            blocks.append([])
        blocks[-1].append((number, line.strip()))
    return [b for b in blocks if b]


def guide_locations(markdown_text: str, guide: str | Path = "guide.md") -> list[GuideLocation]:
    """Every ``file.py:N`` code span of a Markdown text, with the code span written before it.

    The name of a location is the nearest code span to its left in the same logical line
    (paragraph, list item, table row: wrapped lines count as one) that is not itself a
    location; None when there is none. Fenced code blocks are skipped.
    Inputs:  markdown_text; guide - the file it came from, recorded in each location.
    Returns: the locations in reading order.
    """
    found = []
    for block in _logical_lines(markdown_text):
        joined, starts = "", []  # starts[i]: offset in `joined` where line i begins
        for _, line in block:
            starts.append(len(joined))
            joined += line + " "
        name = None
        for span in CODE_SPAN.finditer(joined):
            match = LOCATION.fullmatch(span.group(1))
            if match is None:
                name = span.group(1)
                continue
            line_index = max(i for i, start in enumerate(starts) if start <= span.start())
            start = int(match.group(2))
            end = int(match.group(3) or start)
            found.append(GuideLocation(Path(guide), block[line_index][0], match.group(1),
                                       start, end, name))
    return found


def read_guide_locations(guides: Iterable[str | Path]) -> list[GuideLocation]:
    """``guide_locations`` of each Markdown file in ``guides`` (UTF-8), one list in order."""
    return [loc for guide in map(Path, guides)
            for loc in guide_locations(guide.read_text(encoding="utf-8"), guide)]


def quoted_names(span: str) -> list[str]:
    """What a quoted line may contain to match a code span: the span itself, without a
    trailing "()", or its last dotted part (``PreTrainedModel.post_init`` -> ``post_init``)."""
    text = span.strip().removesuffix("()")
    names = [text]
    if re.fullmatch(r"[\w.]+", text) and "." in text:
        names.append(text.rsplit(".", 1)[1])
    return [name for name in names if name]


def check_guide(guide_path: str | Path, resolve: Callable[[str], Path | None],
                searched_in: str = "the installed libraries") -> list[str]:
    """Check every ``file.py:LINE`` quoted in one guide against the installed source.

    For each location: ``resolve`` finds the file, the line (and range end) exists, a code
    span before it says what the line holds, and the quoted line contains that span (see
    ``quoted_names``). A range must not run past the end of the class or function that
    starts on its first line.
    Inputs:  guide_path - a Markdown file; resolve(file name as written) -> the installed
             file, or None when there is none; searched_in - where resolve looked, for the
             message of a missing file ("no file x.py in <searched_in>").
    Returns: one message per problem, each starting ``<guide name>:<line>: `<file>:<start>`: ``;
             empty when every location holds.
    """
    problems = []
    sources: dict[Path, list[str]] = {}
    trees: dict[Path, ast.AST] = {}
    for loc in read_guide_locations([guide_path]):
        where = f"{loc.guide.name}:{loc.guide_line}: `{loc.path}:{loc.start}`"
        source = resolve(loc.path)
        if source is None:
            problems.append(f"{where}: no file {loc.path} in {searched_in}")
            continue
        lines = sources.setdefault(source, source.read_text(encoding="utf-8").splitlines())
        if loc.name is None:
            problems.append(f"{where}: no code span before it says what the line holds")
            continue
        if not 1 <= loc.start <= loc.end <= len(lines):
            problems.append(f"{where}: lines {loc.start}-{loc.end} outside {loc.path} "
                            f"({len(lines)} lines)")
            continue
        text = lines[loc.start - 1]
        if not any(name in text for name in quoted_names(loc.name)):
            problems.append(f"{where}: should hold `{loc.name}`, but the line reads "
                            f"{text.strip()!r}")
            continue
        if loc.end > loc.start:
            tree = trees.setdefault(source, ast.parse("\n".join(lines)))
            node = next((n for n in ast.walk(tree) if getattr(n, "lineno", None) == loc.start
                         and isinstance(n, (ast.ClassDef, ast.FunctionDef))), None)
            if node is not None and loc.end > node.end_lineno:
                problems.append(f"{where}: the range ends at {loc.end}, after the end of "
                                f"`{node.name}` ({node.end_lineno})")
    return problems


def version_problems(quoted: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """One line per library whose installed version is not the one a guide quotes.

    Inputs: quoted - library -> the version the guide's line numbers belong to;
            installed - library -> the version importable now.
    """
    return [f"the guide quotes {name} {quoted[name]}; installed is {installed[name]}, "
            "so line numbers may differ" for name in quoted if installed[name] != quoted[name]]
