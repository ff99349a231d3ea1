"""Page text of a PDF in reading order, with table rows on one line, from pypdf's layout mode.

Measured on synthetic annual reports (`benchmarks/bench_pdf_extract.py`, docs/ingest.md): pypdf's
default extraction and pypdfium2 follow the order in which the PDF draws its text, so a table
drawn column by column comes out as every label, then every figure (the 3M 10-K of issue 11
lost its answer that way); pdfplumber and pypdf's `extraction_mode="layout"` place text by its
position and keep every row whole, but print two prose columns side by side, line by line.
pypdf's layout mode is as fast as its default mode (pdfplumber is about 20x slower), so cprs
takes it and, here, undoes what it gets wrong:

1. a *gutter*, one character column that is blank on every line of a run of lines and has prose
   on both sides of most of them, splits those lines into two columns, read left then right;
2. the runs of spaces that position the text become one space, lines are stripped, and runs of
   blank lines become one blank line (a paragraph break);
3. a line whose text ends, after a wide gap, in figures only ("Net sales   $ 6,379   (9,554)")
   is a table *row*, which segmentation keeps as one unit;
4. lines at the top or bottom of most pages that are the same once digits are ignored are page
   headers and footers (`repeated_edges`), which no unit includes.

Hand-written because no maintained extractor does both rows and columns (measured above); the
rules only look at the spacing pypdf already computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Line", "page_lines", "repeated_edges", "edge_key"]

_GAP = re.compile(r" {3,}")
_WORD = re.compile(r"[^\W\d_]{2,}")
# a cell holding a figure: "$ 9,342", "(3,509)", "$ (1,577)", "12.5%", "-", "—", "n/a", "2018"
_FIGURE = re.compile(r"^[$€£¥]?\s*\(?\s*[-+−–]?\s*[$€£¥]?\s*\d[\d,.]*\s*\)?\s*%?$|^[-−–—]+$|^n/?a$", re.I)
_SPACES = re.compile(r"\s+")
MIN_COLUMN_LINES = 3


@dataclass
class Line:
    text: str  # stripped, runs of spaces collapsed
    row: bool = False  # a table row: label and figures, one unit


def _prose(s: str) -> bool:
    return len(_WORD.findall(s)) >= 2


def _prose_gaps(line: str) -> list[tuple[int, int]]:
    """Wide gaps of `line` with prose on both sides."""
    out = []
    for m in _GAP.finditer(line):
        left, right = line[:m.start()], line[m.end():]
        if left.strip() and right.strip() and _prose(left) and _prose(right):
            out.append((m.start(), m.end()))
    return out


def _blank_at(line: str, c: int) -> bool:
    return _split_at(line, c) is not None


_NEAR = 6  # characters: layout mode places text on a fixed-width grid, so a gutter can drift
_TWO_SPACES = re.compile(r" {2,}")


def _split_at(line: str, c: int) -> int | None:
    """Where `line` splits at gutter `c`: `c` itself when it is blank there, else the middle of
    a run of two or more spaces within `_NEAR` characters of it; None when text crosses it."""
    if c >= len(line) or (line[c] == " " and (c == 0 or line[c - 1] == " ")):
        return c
    for m in _TWO_SPACES.finditer(line, max(c - _NEAR - 2, 0), c + _NEAR + 2):
        if m.start() <= c + _NEAR and m.end() >= c - _NEAR:
            return (m.start() + m.end()) // 2
    return None


def _column_blocks(lines: list[str]) -> list[tuple[int, int, int]]:
    """(first, last, gutter) of each run of lines printed as two prose columns."""
    gaps = [_prose_gaps(line) for line in lines]
    votes: dict[int, int] = {}
    for g in gaps:
        for a, b in g:
            for c in range(a + 1, b):
                votes[c] = votes.get(c, 0) + 1
    blocks: list[tuple[int, int, int]] = []
    used: set[int] = set()
    # the middle of each plateau of equal votes: the gutter's centre, which lines that run a
    # little long on the left (layout mode's grid is fixed-width) do not reach
    ranked: list[tuple[int, int]] = []
    for c in sorted(votes):
        if ranked and c == ranked[-1][1] + 1 and votes[c] == votes[ranked[-1][0]]:
            ranked[-1] = (ranked[-1][0], c)
        else:
            ranked.append((c, c))
    centres = sorted(((votes[a], (a + b) // 2) for a, b in ranked), key=lambda vc: (-vc[0], vc[1]))
    for n, c in centres:
        if n < MIN_COLUMN_LINES:
            break
        split = [i for i, g in enumerate(gaps) if any(a < c < b for a, b in g) and i not in used]
        # runs of consecutive lines that are blank at the gutter, holding >= MIN_COLUMN_LINES splits
        i = 0
        while i < len(split):
            first = last = split[i]
            count = 1
            j = i + 1
            while j < len(split) and all(_blank_at(lines[k], c) for k in range(last + 1, split[j])):
                last = split[j]
                count += 1
                j += 1
            if count >= MIN_COLUMN_LINES:
                # a longer column goes on below the other: lines with text on one side only
                while (last + 1 < len(lines) and lines[last + 1].strip() and _blank_at(lines[last + 1], c)
                       and last + 1 not in used):
                    last += 1
                if not any(k in used for k in range(first, last + 1)):
                    blocks.append((first, last, c))
                    used.update(range(first, last + 1))
            i = j
    return sorted(blocks)


def _squash(s: str) -> str:
    return _SPACES.sub(" ", s).strip()


def _is_row(raw: str) -> bool:
    parts = [p for p in _GAP.split(raw.strip()) if p.strip()]
    return len(parts) >= 2 and all(_FIGURE.match(p.strip()) for p in parts[1:])


def page_lines(layout_text: str) -> list[Line]:
    """The lines of one page of pypdf layout text in reading order (rules 1-3 above); an empty
    `Line` stands for a paragraph break."""
    raw = [line.rstrip() for line in layout_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    ordered: list[str] = []
    i = 0
    for first, last, c in _column_blocks(raw) + [(len(raw), len(raw), 0)]:
        ordered.extend(raw[i:first])
        if first < len(raw):
            block = raw[first:last + 1]
            cuts = [_split_at(line, c) or c for line in block]
            ordered.extend(line[:k] for line, k in zip(block, cuts))
            ordered.extend(line[k:] for line, k in zip(block, cuts))
        i = last + 1
    out: list[Line] = []
    for line in ordered:
        text = _squash(line)
        if not text:
            if out and out[-1].text:
                out.append(Line(""))
            continue
        out.append(Line(text, _is_row(line)))
    while out and not out[-1].text:
        out.pop()
    return out


def edge_key(text: str) -> str:
    """A header or footer line with its digits ignored ("Page 12" and "Page 13" agree)."""
    return re.sub(r"\d+", "#", text).casefold()


def repeated_edges(pages: list[list[Line]], edge: int = 2) -> set[str]:
    """`edge_key`s of the lines among the first and last `edge` non-empty lines of a page that
    recur on at least 3 pages and at least 40% of them: page headers and footers."""
    if len(pages) < 3:
        return set()
    counts: dict[str, int] = {}
    for lines in pages:
        texts = [ln.text for ln in lines if ln.text]
        keys = {edge_key(t) for t in texts[:edge] + texts[-edge:]}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
    need = max(3, int(0.4 * len(pages) + 0.999))
    return {k for k, n in counts.items() if n >= need}
