"""Segmentation: sentence, paragraph and word boundaries as character offsets.

Every function returns an ``int64`` array of shape ``(n, 2)`` holding ``[start, end)`` offsets
into the *original* string: spans are sorted, non-overlapping, and stripped of surrounding
whitespace. Every non-whitespace character (``not c.isspace()``) of the text lies in exactly one
sentence, one paragraph and one word.

Whitespace, everywhere in this module, means ``str.isspace`` (which is also what ``\\s`` means in
Python's ``re`` for ``str`` patterns), so the regexes and the numpy masks agree.

Sentence splitting uses BlingFire's ``TextToSentencesWithOffsets`` (a fast, maintained
finite-state splitter). We call the shared library directly rather than through
``blingfire.text_to_sentences_and_offsets`` because that wrapper maps UTF-8 byte offsets back to
characters with a per-byte Python loop (seconds for a 4 MB input), crashes on the empty string,
and miscounts sentences when the text contains NUL. BlingFire's output is used only as a source of
*cut points*; the spans themselves are rebuilt here from the original string, so the guarantees
above hold whatever the splitter does.
"""

from __future__ import annotations

import ctypes
import os
import re
from functools import cache

import numpy as np

__all__ = ["sentence_spans", "paragraph_spans", "word_spans"]

_EMPTY = np.zeros((0, 2), dtype=np.int64)

# A paragraph break is a run of whitespace that contains at least two "\n", i.e. one or more blank
# (whitespace-only) lines. `\s*` is greedy and may itself contain newlines, so `\n\s*\n` matches
# from the first to the last newline of such a run. A hand-written regex because no library does
# exactly "blank-line separated blocks with character offsets into the original string": BlingFire
# has no paragraph splitter with offsets, and markdown parsers report lines, not characters.
_PARA_BREAK = re.compile(r"\n\s*\n")

# Lone surrogates cannot be encoded as UTF-8; replace each with U+FFFD (one character for one
# character, so character offsets are unchanged) before handing the text to BlingFire.
_SURROGATE = re.compile("[\ud800-\udfff]")

# BlingFire ends a sentence after some abbreviations ("Dr. Who ..." becomes "Dr." + "Who ...").
# We glue a piece to the next one when its last word is one of these. The list is deliberately
# small: each entry almost never ends a sentence in English prose. Titles precede a name
# ("Mr. Smith"); "vs.", "e.g." and "i.e." are always followed by more of the same sentence.
# "St." can mean "Street" at the end of a sentence, but "St. Paul" is the commoner reading.
_ABBREV_ALWAYS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "e.g.", "i.e.", "cf.", "approx."}
)
# "etc." often *does* end a sentence ("apples, pears, etc. Then ..."), so it only glues when the
# next piece starts in lower case ("apples, etc. and more").
_ABBREV_IF_LOWER = frozenset({"etc."})
# Opening brackets/quotes that may precede an abbreviation: "(e.g." or "“Dr.".
_OPENERS = "([{\"'“‘«"


@cache
def _space_table() -> np.ndarray:
    """Boolean lookup table: ``table[c]`` is ``chr(c).isspace()`` for every ``c`` up to the
    largest whitespace code point (U+3000 today; computed, not assumed). ~0.1 s, once."""
    cps = [c for c in range(0x110000) if chr(c).isspace()]
    table = np.zeros(max(cps) + 1, dtype=bool)
    table[cps] = True
    return table


def _nonspace_positions(text: str) -> np.ndarray:
    """Sorted character indices of the non-whitespace characters of ``text``."""
    if not text:
        return np.zeros(0, dtype=np.int64)
    # UTF-32 gives one code point per element (surrogatepass: lone surrogates stay one element).
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    table = _space_table()
    small = cps < len(table)  # anything above the table is never whitespace
    is_space = np.zeros(cps.shape, dtype=bool)
    is_space[small] = table[cps[small]]
    return np.flatnonzero(~is_space).astype(np.int64)


def _strip_segments(nonspace: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Given sorted cut points ``bounds`` (segment i is ``[bounds[i], bounds[i+1])``), return the
    segments stripped of surrounding whitespace, dropping those that are all whitespace."""
    if len(bounds) < 2 or len(nonspace) == 0:
        return _EMPTY.copy()
    lo = np.searchsorted(nonspace, bounds[:-1], side="left")
    hi = np.searchsorted(nonspace, bounds[1:], side="left")
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    spans = np.empty((len(lo), 2), dtype=np.int64)
    spans[:, 0] = nonspace[lo]
    spans[:, 1] = nonspace[hi - 1] + 1
    return spans


def _paragraph_cuts(text: str) -> np.ndarray:
    """Cut points around each blank-line run: (run start, run end), plus 0 and len(text)."""
    cuts = [0]
    for m in _PARA_BREAK.finditer(text):
        cuts.append(m.start())
        cuts.append(m.end())
    cuts.append(len(text))
    return np.asarray(cuts, dtype=np.int64)


def paragraph_spans(text: str) -> np.ndarray:
    """Blocks of text separated by blank lines, stripped; ``int64`` array ``(n, 2)``."""
    return _strip_segments(_nonspace_positions(text), _paragraph_cuts(text))


def word_spans(text: str) -> np.ndarray:
    """Maximal runs of non-whitespace characters (what ``re.finditer(r"\\S+")`` finds)."""
    ns = _nonspace_positions(text)
    if len(ns) == 0:
        return _EMPTY.copy()
    # A new word starts wherever the next non-space character is not adjacent to the previous one.
    gap = np.flatnonzero(np.diff(ns) != 1)
    spans = np.empty((len(gap) + 1, 2), dtype=np.int64)
    spans[0, 0] = ns[0]
    spans[1:, 0] = ns[gap + 1]
    spans[:-1, 1] = ns[gap] + 1
    spans[-1, 1] = ns[-1] + 1
    return spans


def _blingfire_sentence_ends(text: str) -> np.ndarray:
    """Character offsets where BlingFire ends a sentence (exclusive ends), unsorted-safe."""
    if not text or text.isspace():
        return np.zeros(0, dtype=np.int64)
    import blingfire  # the package loads the shared library on import

    safe = _SURROGATE.sub("\ufffd", text)
    # NUL would terminate the C string early in places; a space keeps offsets identical.
    if "\x00" in safe:
        safe = safe.replace("\x00", " ")
    data = safe.encode("utf-8")
    cap = 2 * len(data) + 16  # what the official wrapper allocates, plus slack
    out = ctypes.create_string_buffer(cap)
    # The library may write up to `cap` offsets; size both arrays accordingly (smaller crashes).
    starts = np.zeros(cap, dtype=np.int32)
    ends = np.zeros(cap, dtype=np.int32)
    fn = blingfire.blingfire.TextToSentencesWithOffsets
    n_out = fn(
        ctypes.c_char_p(data),
        ctypes.c_int(len(data)),
        out,
        starts.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
        ends.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
        ctypes.c_int(cap),
    )
    if n_out <= 0 or n_out > cap:
        return np.zeros(0, dtype=np.int64)
    # The output is the sentences joined by "\n" (newlines inside a sentence become spaces).
    n_sent = out.raw[:n_out].rstrip(b"\x00").count(b"\n") + 1
    n_sent = min(n_sent, cap)
    byte_end = ends[:n_sent].astype(np.int64)  # inclusive index of each sentence's last byte
    byte_end = np.clip(byte_end, 0, len(data) - 1)
    # Character index after byte b = number of UTF-8 lead (non-continuation) bytes in data[:b+1].
    raw = np.frombuffer(data, dtype=np.uint8)
    lead_count = np.cumsum((raw & 0xC0) != 0x80, dtype=np.int64)
    return lead_count[byte_end]


def _glue_abbreviations(text: str, spans: np.ndarray, para_cuts: np.ndarray) -> np.ndarray:
    """Merge a sentence into the next one when it ends with a listed abbreviation and both lie in
    the same paragraph."""
    if len(spans) < 2:
        return spans
    # Paragraph index of each span (spans never straddle a paragraph cut).
    para = np.searchsorted(para_cuts, spans[:, 0], side="right")
    out: list[list[int]] = []
    merge_next = False
    for i in range(len(spans)):
        s, e = int(spans[i, 0]), int(spans[i, 1])
        if merge_next and para[i] == para[i - 1]:
            out[-1][1] = e
        else:
            out.append([s, e])
        merge_next = False
        if text[e - 1] != "." or i + 1 == len(spans):
            continue
        # Last whitespace-separated word of this piece (looked at from the end, bounded).
        tail = text[max(s, e - 12) : e]
        last = tail.split()[-1].lstrip(_OPENERS).lower() if tail.split() else ""
        if last in _ABBREV_ALWAYS:
            merge_next = True
        elif last in _ABBREV_IF_LOWER:
            nxt = text[int(spans[i + 1, 0])]
            merge_next = nxt.islower()
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


# A text at least twice this long is cut at blank lines into pieces of about this many
# characters, whose sentence ends BlingFire finds in parallel threads (`_sentence_ends`).
SEGMENT_PIECE_CHARS = 250_000


def _sentence_ends(text: str, para_cuts: np.ndarray) -> np.ndarray:
    """BlingFire's sentence ends of `text`; a long text in pieces cut at the start of blank-line
    runs, in threads (the ctypes call releases the GIL: ~80% of segmenting a long document).
    Sentences never cross a blank line, and each piece's end is a paragraph cut already, so the
    pieces' ends are the whole text's (tests compare both on long documents)."""
    n = len(text)
    if n < 2 * SEGMENT_PIECE_CHARS:
        return _blingfire_sentence_ends(text)
    bounds = [0]
    for start in para_cuts[1:-1:2].tolist():  # [0, run start, run end, ..., n]: the run starts
        if start - bounds[-1] >= SEGMENT_PIECE_CHARS and n - start >= SEGMENT_PIECE_CHARS // 2:
            bounds.append(start)
    if len(bounds) == 1:
        return _blingfire_sentence_ends(text)
    bounds.append(n)
    from concurrent.futures import ThreadPoolExecutor

    pieces = list(zip(bounds, bounds[1:]))
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1, len(pieces))) as pool:
        parts = list(pool.map(lambda p: _blingfire_sentence_ends(text[p[0]:p[1]]) + p[0], pieces))
    return np.concatenate(parts)


def sentence_spans(text: str) -> np.ndarray:
    """Sentences as stripped ``[start, end)`` offsets; never crossing a blank line."""
    if not text:
        return _EMPTY.copy()
    para_cuts = _paragraph_cuts(text)
    ends = _sentence_ends(text, para_cuts)
    cuts = np.unique(np.concatenate([para_cuts, ends]))
    spans = _strip_segments(_nonspace_positions(text), cuts)
    return _glue_abbreviations(text, spans, para_cuts)
