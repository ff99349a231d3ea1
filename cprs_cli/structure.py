"""Document structure: pages, headings, and the pieces that segmentation must keep whole.

Extraction (`cprs_cli.ingest`) knows things the plain text loses: where each PDF page starts,
which lines are headings, which lines are table rows (a label and its figures must stay one unit,
or a question about a figure keeps the label and drops the number), and which lines are page
headers and footers repeated on every page (never worth keeping). A `Document` carries them as
character ranges into its text; this module turns them into the units selection works on and
answers "which page and which section is this offset in?" for every kept span.

Everything is offsets into the document text: the text itself is never changed here, so the
JSON offsets keep pointing into exactly the text `ingest.load_path(path).text` returns.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

__all__ = ["Heading", "Locator", "structured_units", "heading_path_at"]


@dataclass(frozen=True)
class Heading:
    """A heading of the document: `text[start:end]` is its line (start == end when the heading
    is known but not in the text, e.g. a PDF bookmark), `level` 1 for the top level."""

    start: int
    end: int
    level: int
    title: str


def heading_paths(headings: list[Heading]) -> tuple[list[int], list[tuple[str, ...]]]:
    """(starts, paths): from `starts[i]` on, the section path is `paths[i]` (outermost first)."""
    starts, paths = [], []
    stack: list[Heading] = []
    for h in sorted(headings, key=lambda h: (h.start, h.level)):
        while stack and stack[-1].level >= h.level:
            stack.pop()
        stack.append(h)
        starts.append(h.start)
        paths.append(tuple(x.title for x in stack))
    return starts, paths


def heading_path_at(headings: list[Heading], offset: int) -> tuple[str, ...]:
    starts, paths = heading_paths(headings)
    i = bisect.bisect_right(starts, offset) - 1
    return paths[i] if i >= 0 else ()


class Locator:
    """Page (1-based) and section path of any character offset of a document.

    `pages`: each page's start offset (None or [0] with `paged=False`: the input has no pages)."""

    def __init__(self, pages: list[int] | None, headings: list[Heading] | None, paged: bool):
        self.pages = list(pages or [0])
        self.paged = paged
        self._starts, self._paths = heading_paths(list(headings or []))

    def page(self, offset: int) -> int | None:
        if not self.paged:
            return None
        return max(bisect.bisect_right(self.pages, offset), 1)

    def section(self, offset: int) -> list[str]:
        i = bisect.bisect_right(self._starts, offset) - 1
        return list(self._paths[i]) if i >= 0 else []


# numpy and the segmenter are imported where they are used: `ingest` imports this module for
# `Heading`, and the CLI imports `ingest` before it needs either.


def _cut_around(spans, ranges: list[tuple[int, int]], nonspace) -> list[tuple[int, int]]:
    """`spans` with every part inside one of `ranges` removed (pieces re-stripped)."""
    out: list[tuple[int, int]] = []
    ranges = sorted(ranges)
    starts = [r[0] for r in ranges]
    for s, e in spans.tolist():
        i = max(bisect.bisect_right(starts, s) - 1, 0)
        pos = s
        while i < len(ranges) and ranges[i][0] < e:
            a, b = ranges[i]
            if b > pos:
                if a > pos:
                    out.append((pos, min(a, e)))
                pos = max(pos, b)
            i += 1
        if pos < e:
            out.append((pos, e))
    return _strip(out, nonspace)


def _strip(pieces: list[tuple[int, int]], nonspace) -> list[tuple[int, int]]:
    import numpy as np

    out = []
    for a, b in pieces:
        lo = int(np.searchsorted(nonspace, a, side="left"))
        hi = int(np.searchsorted(nonspace, b, side="left"))
        if hi > lo:
            out.append((int(nonspace[lo]), int(nonspace[hi - 1]) + 1))
    return out


def structured_units(text: str, granularity: str, blocks: list[tuple[int, int]] | None = None,
                     skip: list[tuple[int, int]] | None = None,
                     sentences=None):
    """The units of `text` at `granularity`, respecting the document's structure:

    * `blocks` (table rows, headings, list items) are units of their own at sentence granularity:
      a sentence never runs across one, and a block is never split into sentences;
    * nothing inside `skip` (repeated page headers and footers) belongs to any unit.

    Without blocks and skip ranges this is exactly `segment.*_spans(text)` (`sentences` may carry
    `segment.sentence_spans(text)` when the caller already has it)."""
    import numpy as np

    from . import segment

    if granularity == "sentence":
        units = segment.sentence_spans(text) if sentences is None else sentences
    elif granularity == "paragraph":
        units = segment.paragraph_spans(text)
    else:
        units = segment.word_spans(text)
    if not blocks and not skip:
        return units
    nonspace = segment._nonspace_positions(text)
    pieces: list[tuple[int, int]] = [tuple(u) for u in units.tolist()]
    if blocks and granularity == "sentence":
        blocks = _strip(sorted(blocks), nonspace)
        rest = _cut_around(np.asarray(pieces, dtype=np.int64).reshape(-1, 2), blocks, nonspace)
        pieces = sorted(set(rest) | set(blocks))
    if skip:
        pieces = _cut_around(np.asarray(pieces, dtype=np.int64).reshape(-1, 2), skip, nonspace)
    return np.asarray(pieces, dtype=np.int64).reshape(-1, 2)
