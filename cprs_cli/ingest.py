"""Ingest: every input becomes one plain-text string, with its source and page offsets.

A small converter registry keyed by file suffix (in the spirit of microsoft/markitdown): each
converter turns the raw bytes of a file into a :class:`Document`. ``load_path`` picks the
converter by suffix; an unknown suffix is read as text (and rejected if it is binary).

Inputs are only ever opened read-only (``open(path, "rb")``) and read once into memory; converters
work on those bytes, so nothing can write back to the file. Reading stops at a size limit
(``max_bytes``, the CLI's ``--max-input-mb``), so an endless input such as ``/dev/zero`` cannot
exhaust memory.

Every document's text is normalised before it leaves this module (:func:`normalise_text`):
code points that tokenizers reject or that are not characters (lone surrogates, NUL, the
noncharacters U+FFFE / U+FFFF ...) become U+FFFD, one for one, so offsets are unchanged.

Every failure is an :class:`~cprs_cli.errors.InputError` with a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cprs_cli.errors import InputError
from cprs_cli.structure import Heading, Locator

__all__ = [
    "Document",
    "Converter",
    "register_converter",
    "converter_for",
    "readable_suffixes",
    "load_path",
    "load_url",
    "load_source",
    "is_url",
    "load_stdin",
    "load_bytes",
    "read_stdin_bytes",
    "decode_text",
    "normalise_text",
    "DEFAULT_MAX_INPUT_MB",
]

# Inputs larger than this are refused (the CLI's --max-input-mb; MB = 2**20 bytes).
DEFAULT_MAX_INPUT_MB = 512
MB = 1 << 20


@dataclass
class Document:
    """One input as plain text, with what extraction knew about its structure.

    ``pages`` holds the character offset at which each page starts (``[0]`` for input that has
    no pages), so ``text[pages[i]:pages[i+1]]`` is page ``i`` (plus the separator).
    ``headings`` (`structure.Heading`: span, level, title) give every offset a section path;
    ``blocks`` are spans that segmentation keeps whole (table rows, headings, list items);
    ``skip`` are spans no unit includes (page headers and footers repeated on every page). All
    are offsets into ``text``, which they never change (`cprs_cli.structure`).
    """

    text: str
    source: str
    kind: str  # 'text' | 'markdown' | 'pdf' | 'docx' | 'html' | 'stdin'
    pages: list[int] = field(default_factory=lambda: [0])
    headings: list[Heading] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)
    skip: list[tuple[int, int]] = field(default_factory=list)

    @property
    def paged(self) -> bool:
        """Whether page numbers mean something (PDF)."""
        return self.kind == "pdf"

    def locator(self) -> Locator:
        """Page (1-based) and section path of any offset (`structure.Locator`)."""
        return Locator(self.pages, self.headings, self.paged)

    def page_at(self, offset: int) -> int | None:
        return self.locator().page(offset)

    def section_at(self, offset: int) -> list[str]:
        return self.locator().section(offset)


# A converter gets the file's bytes, its display name and the optional password.
Converter = Callable[[bytes, str, "str | None"], Document]

_REGISTRY: dict[str, Converter] = {}


def _norm_suffix(suffix: str) -> str:
    suffix = suffix.strip().lower()
    return suffix if suffix.startswith(".") else "." + suffix


def register_converter(suffixes: tuple[str, ...], fn: Converter) -> None:
    """Register ``fn(data, source, password) -> Document`` for the given suffixes (".pdf" or
    "pdf", case-insensitive). A later registration for the same suffix replaces the earlier."""
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    for s in suffixes:
        _REGISTRY[_norm_suffix(s)] = fn


def converter_for(path: str | os.PathLike) -> Converter | None:
    """The converter registered for ``path``'s suffix, or None."""
    return _REGISTRY.get(Path(path).suffix.lower())


def readable_suffixes() -> tuple[str, ...]:
    """Every suffix with a registered converter, sorted: the file types a directory gives."""
    return tuple(sorted(_REGISTRY))


def _one_line(msg: object, limit: int = 120) -> str:
    s = " ".join(str(msg).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    detail = _one_line(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


# Code points that are not text: lone surrogates (from a PDF's ToUnicode map or a surrogate-
# escaped name), NUL, and the Unicode noncharacters (U+FDD0..U+FDEF and the last two code points of
# every plane). Tokenizers raise on surrogates and treat the others as garbage. Hand-written: no
# library offers "make this str safe to encode"; str.encode(errors="replace") would change lengths.
_NOT_TEXT = re.compile(
    "[\x00\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]")
REPLACEMENT = "\ufffd"


def normalise_text(text: str) -> str:
    """Replace code points that are not text (lone surrogates, NUL, noncharacters) with U+FFFD.

    One character for one, so every offset into the text stays valid."""
    return _NOT_TEXT.sub(REPLACEMENT, text)


def _normalise_newlines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


# ---------------------------------------------------------------------------------------------
# Text


# BOMs, longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)

# Control characters that do not occur in text (everything in C0 except \t \n \v \f \r, and ESC
# which shows up in logs with colour codes).
_BAD_CONTROLS = frozenset(chr(c) for c in range(0x20) if chr(c) not in "\t\n\v\f\r\x1b") | {"\x7f"}

# Decoding rule for text that is not valid UTF-8 (documented in docs/reliability.md):
#
# 1. Mostly UTF-8: if the undecodable sequences are at most BAD_UTF8_SHARE of the bytes and
#    there are at least as many correctly encoded non-ASCII characters as undecodable sequences,
#    the file is UTF-8 with a few damaged bytes: each undecodable sequence becomes U+FFFD.
# 2. Otherwise it is a legacy encoding, guessed by charset_normalizer. Its guesses among the
#    Latin-script single-byte code pages are unreliable (Latin-1 French comes back as cp1257 or
#    cp1250, "déjà" as "déją"), so when a Western code page (cp1252 / Latin-1 / Latin-9) is
#    among its candidates with a chaos score within WESTERN_CHAOS_MARGIN points of the best,
#    the text is read as cp1252 (or Latin-1 where cp1252 leaves a byte undefined): it is by far
#    the most common legacy encoding. Central European text (cp1250), Cyrillic, Greek and CJK
#    encodings do not list a Western code page as a close candidate and keep the guess.
#    A guess of a non-Latin script (East Asian, Arabic, Hebrew, ...) is also overruled by
#    cp1252 when, read as cp1252, every run of non-ASCII characters is one or two long and
#    either touches an ASCII letter or is punctuation / a symbol (accents inside Latin words and
#    signs such as ° © ±: Latin-1 "Ångström" otherwise comes back as Big5 "囊gstr闣"). Text in a
#    non-Latin script has longer runs; Latin-script guesses (cp1250 ...) are kept.
# 3. No guess at all: binary, unless rule 1's share holds without any non-ASCII characters
#    (plain ASCII with a stray byte), which is read as UTF-8 with U+FFFD.
BAD_UTF8_SHARE = 0.01
WESTERN_CHAOS_MARGIN = 10.0
_WESTERN = ("cp1252", "latin_1", "iso8859_15")
_NON_ASCII = re.compile("[^\x00-\x7f]")
_NON_ASCII_RUN = re.compile("[^\x00-\x7f]+")
# Latin-script single-byte code pages whose guess is trusted (Central European, Baltic, Turkish,
# Nordic, DOS and Mac Latin): Czech or Polish text read as cp1252 would look Western, too.
_LATIN_SCRIPT = frozenset({"cp1250", "cp1257", "cp1254", "cp1258", "iso8859_2", "iso8859_3",
                           "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_16",
                           "mac_latin2", "mac_roman", "mac_iceland", "mac_turkish", "cp437", "cp850",
                           "cp852", "cp857", "cp858", "cp775", "cp865", "cp861", "hp_roman8"})


def decode_text(data: bytes, source: str) -> str:
    """Decode bytes of a text file: BOM-aware, UTF-8 first (tolerating a small share of bad
    bytes), then a legacy encoding (the rule above).

    Strips the BOM, normalises newlines to "\\n", and rejects binary input.
    """
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(enc)
            except UnicodeDecodeError:
                raise InputError(f"invalid {enc.upper()} text after byte-order mark", source) from None
            return _check_text(_normalise_newlines(text), source)

    if b"\x00" in data:
        raise InputError("binary file, not text", source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode_damaged_or_legacy(data, source)
    return _check_text(_normalise_newlines(text), source)


def _decode_damaged_or_legacy(data: bytes, source: str) -> str:
    """Rules 1-3 above, for bytes that are not valid UTF-8."""
    replaced = data.decode("utf-8", errors="replace")
    bad = replaced.count("\ufffd") - data.count("\ufffd".encode())  # undecodable sequences
    good = sum(1 for _ in _NON_ASCII.finditer(replaced)) - bad  # valid non-ASCII characters
    small = bad <= BAD_UTF8_SHARE * len(data)
    if small and good >= bad:
        return replaced
    legacy = _guess_legacy(data)
    if legacy is not None:
        return legacy
    if small:
        return replaced
    raise InputError("binary file, not text", source)


def _guess_legacy(data: bytes) -> str | None:
    import charset_normalizer

    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    western = _decode_western(data)
    if western is not None:
        for m in matches:
            if (m.percent_chaos <= best.percent_chaos + WESTERN_CHAOS_MARGIN
                    and any(enc in _WESTERN for enc in m.could_be_from_charset)):
                return western
        if best.encoding not in _LATIN_SCRIPT and _looks_western(western):
            return western
    return str(best)


def _decode_western(data: bytes) -> str | None:
    for enc in ("cp1252", "latin_1"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return None


def _looks_western(text: str) -> bool:
    """Every run of non-ASCII characters is one or two long and touches an ASCII letter or is
    punctuation / a symbol."""
    import unicodedata

    for m in _NON_ASCII_RUN.finditer(text):
        if m.end() - m.start() > 2:
            return False
        before = text[m.start() - 1] if m.start() else ""
        after = text[m.end()] if m.end() < len(text) else ""
        touches = (before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha())
        signs = all(unicodedata.category(ch)[0] in "PSN" or ch == "\xa0" for ch in m.group())
        if not (touches or signs):
            return False
    return True


def _check_text(text: str, source: str) -> str:
    """Reject decoded text that is mostly control characters (binary that happened to decode)."""
    sample = text[:65536]
    if sample:
        bad = sum(1 for ch in sample if ch in _BAD_CONTROLS)
        if bad > max(2, len(sample) // 100):
            raise InputError("binary file, not text", source)
    return text


def _text_converter(kind: str) -> Converter:
    def convert(data: bytes, source: str, password: str | None = None) -> Document:
        return Document(decode_text(data, source), source, kind, [0])

    convert.__name__ = f"convert_{kind}"
    return convert


convert_text = _text_converter("text")


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


def markdown_structure(text: str) -> tuple[list[Heading], list[tuple[int, int]]]:
    """Headings, table rows and list items of Markdown text, as offsets into it.

    markdown-it-py (CommonMark, plus tables) finds them, so a "#" inside a code block or a
    setext heading ("Title\n=====") is read as Markdown means it; its line maps become character
    offsets. Blocks: headings, table rows, and list items that hold no nested list."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    starts = _line_starts(text)

    def span(lines: list[int]) -> tuple[int, int]:
        a = starts[lines[0]] if lines[0] < len(starts) else len(text)
        b = starts[lines[1]] if lines[1] < len(starts) else len(text)
        piece = text[a:b]
        left = len(piece) - len(piece.lstrip())
        return a + left, a + len(piece.rstrip())

    headings: list[Heading] = []
    blocks: list[tuple[int, int]] = []
    for k, tok in enumerate(tokens):
        if tok.map is None:
            continue
        if tok.type == "heading_open":
            a, b = span(tok.map)
            if tok.markup.startswith(("=", "-")):  # setext: the title is the first line
                b = a + len(text[a:b].split("\n", 1)[0].rstrip())
            title = tokens[k + 1].content.strip() if k + 1 < len(tokens) else text[a:b]
            headings.append(Heading(a, b, int(tok.tag[1:]), " ".join(title.split())))
            blocks.append((a, b))
        elif tok.type == "tr_open":
            blocks.append(span(tok.map))
        elif tok.type == "list_item_open":
            depth, nested = tok.level, False
            for later in tokens[k + 1:]:
                if later.type == "list_item_close" and later.level == depth:
                    break
                if later.type in ("bullet_list_open", "ordered_list_open"):
                    nested = True
                    break
            if not nested:
                blocks.append(span(tok.map))
    blocks = sorted({b for b in blocks if b[1] > b[0]})
    return headings, _disjoint(blocks)


def _disjoint(blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(blocks):
        if out and a < out[-1][1]:
            continue
        out.append((a, b))
    return out


def convert_markdown(data: bytes, source: str, password: str | None = None) -> Document:
    """The file as text (the text rule, unchanged); headings, table rows and list items from
    its Markdown structure."""
    text = decode_text(data, source)
    headings, blocks = markdown_structure(text)
    return Document(text, source, "markdown", [0], headings=headings, blocks=blocks)


# ---------------------------------------------------------------------------------------------
# HTML


def convert_html(data: bytes, source: str, password: str | None = None) -> Document:
    """The main content of a web page as Markdown (trafilatura: navigation, footers and
    boilerplate dropped; headings, lists and tables kept), then read as Markdown. A page where
    trafilatura finds no main content falls back to all of its text."""
    html = decode_text(data, source)
    try:
        import trafilatura

        # trafilatura logs its parse troubles at ERROR level; they would reach stderr through
        # Python's last-resort handler, and cprs reports what matters itself
        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
        text = trafilatura.extract(html, output_format="markdown", include_tables=True,
                                   include_links=False, include_images=False, include_comments=False,
                                   favor_recall=True, with_metadata=False, deduplicate=False)
        if not text or not text.strip():
            text = trafilatura.html2txt(html) or ""
        if not text.strip() and html.strip():  # a fragment with no <html>/<body>: trafilatura parses it to nothing
            import lxml.html

            tree = lxml.html.fromstring(html)
            for code in tree.xpath("//script|//style|//noscript|//template"):  # code, not text
                code.drop_tree()
            text = tree.text_content()
    except Exception as e:  # noqa: BLE001 - lxml parser errors on damaged markup
        raise InputError(f"unreadable HTML ({_reason(e)})", source) from None
    text = _normalise_newlines(text)
    if not text.strip():
        raise InputError("no text in the HTML page", source)
    headings, blocks = markdown_structure(text)
    return Document(text, source, "html", [0], headings=headings, blocks=blocks)


# ---------------------------------------------------------------------------------------------
# PDF


@contextlib.contextmanager
def _quiet_pypdf():
    """pypdf logs a warning for every small defect it repairs; keep them off the user's screen."""
    logger = logging.getLogger("pypdf")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _password_arg(password: str) -> str | bytes:
    """A password from a non-UTF-8 command line carries its raw bytes as surrogate escapes
    (PEP 383); give pypdf those bytes, which is what the PDF's author typed."""
    try:
        password.encode("utf-8")
        return password
    except UnicodeEncodeError:
        pass
    try:
        return password.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as err:
        raise PasswordError(password_problem(password, err)) from None


class PasswordError(ValueError):
    """The password itself cannot be used (not the file): a code point no encoding can carry."""


def password_problem(password: str, err: UnicodeEncodeError) -> str:
    """Why `password` cannot be encoded, in words (the CLI and convert_pdf share it)."""
    ch = password[err.start]
    return (f"cannot be encoded (U+{ord(ch):04X}, a lone surrogate, at character {err.start + 1}); "
            "the password is at fault, not the file")


def check_password(password: str | None) -> None:
    """Raise PasswordError unless `password` can be passed to the PDF decryption (text, or the
    raw bytes of a non-UTF-8 command line)."""
    if password is not None:
        _password_arg(password)


Progress = Callable[[int, int], None]


def convert_pdf(data: bytes, source: str, password: str | None = None,
                progress: Progress | None = None) -> Document:
    """Text of every page in reading order, joined with a blank line; ``pages`` = each page's
    offset. pypdf's layout mode, with two-column pages read column by column, table rows kept
    on one line (``blocks``) and page headers / footers marked (``skip``): `cprs_cli.pdflayout`.
    ``progress(done, total)`` is called after each page."""
    import warnings

    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    from cprs_cli import pdflayout

    with _quiet_pypdf(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                if not reader.decrypt(""):
                    if password is None:
                        raise InputError("encrypted PDF; pass --password", source)
                    try:
                        secret = _password_arg(password)
                    except PasswordError as e:
                        raise InputError(f"password {e}", source) from None
                    if not reader.decrypt(secret):
                        raise InputError("wrong password for encrypted PDF", source)
            page_lines = []
            total = len(reader.pages)
            for n, page in enumerate(reader.pages, 1):
                page_lines.append(pdflayout.page_lines(_page_layout_text(page)))
                if progress is not None:
                    progress(n, total)
            outline = _pdf_outline(reader)
        except InputError:
            raise
        except DependencyError as e:  # AES needs `cryptography` (a dependency of cprs)
            raise InputError(f"cannot decrypt PDF ({_one_line(e)}; pip install cryptography)",
                             source) from None
        except Exception as e:  # pypdf raises many kinds of errors on damaged files
            raise InputError(f"corrupt or unreadable PDF ({_reason(e)})", source) from None

    if not page_lines:
        raise InputError("corrupt or unreadable PDF (no pages)", source)
    if not any(ln.text.strip() for lines in page_lines for ln in lines):
        raise InputError("no extractable text (scanned PDF?)", source)
    edges = pdflayout.repeated_edges(page_lines)
    parts: list[str] = []
    offsets: list[int] = []
    blocks: list[tuple[int, int]] = []
    skip: list[tuple[int, int]] = []
    pos = 0
    for p, lines in enumerate(page_lines):
        if p:
            parts.append("\n\n")  # the page separator
            pos += 2
        offsets.append(pos)
        texts = [ln.text for ln in lines if ln.text]
        edge_lines = set(texts[:2] + texts[-2:])
        for k, ln in enumerate(lines):
            if k:
                parts.append("\n")
                pos += 1
            end = pos + len(ln.text)
            if ln.row:
                blocks.append((pos, end))
            if ln.text in edge_lines and pdflayout.edge_key(ln.text) in edges:
                skip.append((pos, end))
            parts.append(ln.text)
            pos = end
    text = "".join(parts)
    headings = _outline_headings(outline, text, offsets)
    blocks = _disjoint(blocks + [(h.start, h.end) for h in headings if h.end > h.start])
    return Document(text, source, "pdf", offsets, headings=headings, blocks=blocks, skip=skip)


def _page_layout_text(page) -> str:
    try:
        return page.extract_text(extraction_mode="layout") or ""
    except Exception:  # noqa: BLE001 - layout mode fails on some odd pages; the default mode reads them
        return page.extract_text() or ""


def _pdf_outline(reader) -> list[tuple[int, str, int]]:
    """The PDF's bookmarks as (level, title, 0-based page), in order; [] without any."""
    out: list[tuple[int, str, int]] = []

    def walk(items, level):
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
                title = " ".join(str(item.title).split())
            except Exception:  # noqa: BLE001 - a broken bookmark is not worth failing the file
                continue
            if title and page is not None and page >= 0:
                out.append((level, title, page))

    try:
        walk(reader.outline, 1)
    except Exception:  # noqa: BLE001
        return []
    return out


def _outline_headings(outline, text: str, offsets: list[int]) -> list[Heading]:
    """Headings from the bookmarks: each at its title's line on its page when the page shows
    the title, else at the page's start (a zero-width heading)."""
    headings = []
    for level, title, page in outline:
        if page >= len(offsets):
            continue
        start = offsets[page]
        stop = offsets[page + 1] if page + 1 < len(offsets) else len(text)
        at = text.find(title, start, stop)
        if at >= 0:
            headings.append(Heading(at, at + len(title), level, title))
        else:
            headings.append(Heading(start, start, level, title))
    return headings


# ---------------------------------------------------------------------------------------------
# DOCX


def _table_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        cells = []
        seen = None
        for cell in row.cells:
            # A horizontally merged cell appears once per grid column it spans; keep one copy.
            if seen is not None and cell._tc is seen:
                continue
            seen = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


_HEADING_STYLE = re.compile(r"^(?:heading\s*(\d)|title)$", re.I)


def _docx_kind(paragraph) -> tuple[str, int]:
    """("heading", level), ("item", 0) for a list paragraph, or ("text", 0)."""
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    m = _HEADING_STYLE.match(name.strip())
    if m:
        return "heading", int(m.group(1) or 1)
    ppr = paragraph._p.pPr
    if name.lower().startswith("list") or (ppr is not None and ppr.numPr is not None):
        return "item", 0
    return "text", 0


def convert_docx(data: bytes, source: str, password: str | None = None) -> Document:
    """Paragraphs and tables in document order, separated by blank lines. Headings (styles
    "Heading N", "Title") are headings; consecutive list paragraphs are one block of "- item"
    lines; table rows are "cell | cell" lines. Headings, list items and table rows are units."""
    try:
        import docx
        from docx.table import Table

        document = docx.Document(io.BytesIO(data))
        groups: list[tuple[str, int, list[str]]] = []  # kind, level, lines
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                rows = _table_rows(block)
                if rows:
                    groups.append(("rows", 0, rows))
                continue
            text = _normalise_newlines(block.text).strip()
            if not text:
                continue
            kind, level = _docx_kind(block)
            if kind == "item":
                line = "- " + " ".join(text.split())
                if groups and groups[-1][0] == "item":
                    groups[-1][2].append(line)
                else:
                    groups.append(("item", 0, [line]))
            else:
                groups.append((kind, level, [text]))
    except Exception as e:  # zipfile.BadZipFile, KeyError, PackageNotFoundError, lxml errors, ...
        raise InputError(f"not a valid DOCX ({_reason(e)})", source) from None
    parts: list[str] = []
    headings: list[Heading] = []
    blocks: list[tuple[int, int]] = []
    pos = 0
    for kind, level, lines in groups:
        if parts:
            parts.append("\n\n")
            pos += 2
        for k, line in enumerate(lines):
            if k:
                parts.append("\n")
                pos += 1
            if kind == "heading":
                headings.append(Heading(pos, pos + len(line), level, " ".join(line.split())))
            if kind != "text":
                blocks.append((pos, pos + len(line)))
            parts.append(line)
            pos += len(line)
    return Document("".join(parts), source, "docx", [0], headings=headings, blocks=blocks)


# ---------------------------------------------------------------------------------------------
# Registry and entry points

register_converter((".txt", ".text", ".log", ".rst", ".csv", ".tsv", ".json", ".xml"), convert_text)
register_converter((".html", ".htm", ".xhtml"), convert_html)
register_converter((".md", ".markdown", ".mdown", ".mkd"), convert_markdown)
register_converter((".pdf",), convert_pdf)
register_converter((".docx",), convert_docx)


def _sniff(data: bytes) -> Converter | None:
    """Recognise PDF and DOCX by content, for input without a telling suffix (or stdin)."""
    # Only a leading header counts: plain text that merely mentions "%PDF-" stays text.
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return convert_pdf
    if data.startswith(b"PK\x03\x04") and b"word/" in data[:65536]:
        return convert_docx
    return None


def _finish(doc: Document, source: str) -> Document:
    doc.text = normalise_text(doc.text)
    if not doc.text.strip():
        raise InputError("empty document", source)
    if not doc.text.replace(REPLACEMENT, "").strip():
        raise InputError("no readable text (only invalid characters)", source)
    return doc


def _limit(max_bytes: int | None) -> int | None:
    if max_bytes is not None and max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    return max_bytes


def _too_large(max_bytes: int) -> str:
    return f"larger than the input size limit of {max_bytes / MB:.3g} MB (--max-input-mb)"


def _read_limited(stream, max_bytes: int | None, source: str) -> bytes:
    """All of ``stream``, or an InputError once more than ``max_bytes`` have come: reading
    stops one byte past the limit, so an endless stream costs at most the limit in memory."""
    if max_bytes is None:
        return stream.read()
    data = stream.read(max_bytes + 1)  # a buffered read(n) loops until n bytes or end of file
    if len(data) > max_bytes:
        raise InputError(_too_large(max_bytes), source)
    return data


ZIP_MAGIC = b"PK\x03\x04"


def _check_zip_expansion(data: bytes, source: str, max_bytes: int | None) -> None:
    """Refuse a ZIP container (DOCX) whose members, uncompressed, exceed ``max_bytes`` in all,
    before any of them is inflated: a 1 MB DOCX can hold a word/document.xml of 300 MB.

    The sizes come from the zip's central directory; zipfile stops every member at its declared
    size (and checks its CRC), so a directory that understates them cannot get past this either.
    Data that is not a readable zip is left to its converter, which reports it."""
    if max_bytes is None or not data.startswith(ZIP_MAGIC):
        return
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            total = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    if total > max_bytes:
        raise InputError(f"expands to {total / MB:.3g} MB when unzipped, "
                         + _too_large(max_bytes), source)


def _convert(fn: Converter, data: bytes, source: str, password: str | None,
             progress: Progress | None) -> Document:
    """Run a converter; `progress` goes to the converters that report it (PDF pages)."""
    if progress is not None and fn is convert_pdf:
        return convert_pdf(data, source, password, progress=progress)
    return fn(data, source, password)


def read_file(path: str | os.PathLike, max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB) -> bytes:
    """The bytes of ``path`` (opened read-only), refused past ``max_bytes`` (None: no limit) before
    or while reading; every problem is one InputError naming the file."""
    source = os.fspath(path)
    p = Path(source)
    max_bytes = _limit(max_bytes)
    try:
        if not p.exists():
            raise InputError("no such file", source)
        if p.is_dir():
            raise InputError("is a directory", source)
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            if max_bytes is not None and stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
                raise InputError(_too_large(max_bytes), source)
            data = _read_limited(f, max_bytes, source)
    except InputError:
        raise
    except PermissionError:
        raise InputError("permission denied (cannot read the file)", source) from None
    except IsADirectoryError:
        raise InputError("is a directory", source) from None
    except FileNotFoundError:
        raise InputError("no such file", source) from None
    except OSError as e:
        raise InputError(f"cannot read ({_one_line(e.strerror or e)})", source) from None

    return data


def load_path(path: str | os.PathLike, password: str | None = None,
              max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB,
              progress: Progress | None = None) -> Document:
    """Read ``path`` (read-only) and convert it by suffix; unknown suffixes are read as text.

    ``max_bytes`` (None: no limit) refuses larger inputs before they are read into memory.
    ``progress(done, total)`` follows the pages of a PDF."""
    source = os.fspath(path)
    max_bytes = _limit(max_bytes)
    data = read_file(source, max_bytes)
    return load_bytes(data, source, password=password, max_bytes=max_bytes, progress=progress)


def load_bytes(data: bytes, source: str, password: str | None = None,
               max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB,
               progress: Progress | None = None) -> Document:
    """Convert a file's bytes that came without a file (an upload to `cprs serve`): by the suffix
    of ``source`` (a file name), else by content, else as text; the rule of ``load_path``."""
    max_bytes = _limit(max_bytes)
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(_too_large(max_bytes), source)
    if not data.strip():
        raise InputError("empty document", source)
    fn = converter_for(source) or _sniff(data) or convert_text
    _check_zip_expansion(data, source, max_bytes)
    return _finish(_convert(fn, data, source, password, progress), source)


# ---------------------------------------------------------------------------------------------
# URLs

DEFAULT_FETCH_TIMEOUT = 30.0  # seconds, for connecting and for each read
_URL = re.compile(r"^https?://", re.I)
_CONTENT_TYPES = {"text/html": ".html", "application/xhtml+xml": ".html", "application/pdf": ".pdf",
                  "text/markdown": ".md",
                  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}


def is_url(source: str) -> bool:
    """Whether `source` names an http(s) URL (what `load_url` fetches)."""
    return isinstance(source, str) and bool(_URL.match(source))


def load_url(url: str, password: str | None = None, max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB,
             timeout: float = DEFAULT_FETCH_TIMEOUT, progress: Progress | None = None) -> Document:
    """Fetch an http(s) URL and convert it like a file: by its Content-Type (HTML, PDF, DOCX,
    Markdown), else by the path's suffix, else by its content. ``timeout`` bounds the connection
    and every read; a body longer than ``max_bytes`` is refused as soon as it passes the limit.
    Every failure (no connection, an HTTP error status, a timeout) is one InputError line.

    The standard library's urllib: one GET, redirects followed, no cookies, nothing sent but
    the request; a dependency-free client is all this needs."""
    import http.client
    import socket
    import urllib.error
    import urllib.parse
    import urllib.request

    max_bytes = _limit(max_bytes)
    if not is_url(url):
        raise InputError("not an http(s) URL", url)
    request = urllib.request.Request(url, headers={"User-Agent": "cprs (+https://pypi.org/project/cprs-cli/)",
                                                   "Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if max_bytes is not None and length and length.isdigit() and int(length) > max_bytes:
                raise InputError(_too_large(max_bytes), url)
            data = _read_limited(response, max_bytes, url)
            ctype = (response.headers.get_content_type() or "").lower()
            final = response.geturl() or url
    except InputError:
        raise
    except urllib.error.HTTPError as e:
        raise InputError(f"cannot fetch (HTTP {e.code} {_one_line(e.reason)})", url) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise InputError(f"cannot fetch (timed out after {timeout:g} s)", url) from None
        raise InputError(f"cannot fetch ({_one_line(getattr(reason, 'strerror', None) or reason)})", url) from None
    except TimeoutError:
        raise InputError(f"cannot fetch (timed out after {timeout:g} s)", url) from None
    except (http.client.HTTPException, OSError, ValueError) as e:
        raise InputError(f"cannot fetch ({_reason(e)})", url) from None
    if not data.strip():
        raise InputError("empty document", url)
    suffix = _CONTENT_TYPES.get(ctype) or Path(urllib.parse.urlsplit(final).path).suffix
    fn = converter_for("x" + suffix) if suffix else None
    if fn is None or fn is convert_text:
        fn = _sniff(data) or (convert_html if ctype == "text/html" else convert_text)
    _check_zip_expansion(data, url, max_bytes)
    return _finish(_convert(fn, data, url, password, progress), url)


def load_source(source: str | os.PathLike, password: str | None = None,
                max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB, timeout: float = DEFAULT_FETCH_TIMEOUT,
                progress: Progress | None = None) -> Document:
    """A path or an http(s) URL (`load_url`), as a Document."""
    if isinstance(source, str) and is_url(source):
        return load_url(source, password, max_bytes, timeout, progress)
    return load_path(source, password, max_bytes, progress)


def read_stdin_bytes(max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB) -> bytes:
    """All of standard input, as bytes, up to ``max_bytes`` (None: no limit). A closed or
    unreadable stdin, or one longer than the limit, is an InputError."""
    source = "<stdin>"
    max_bytes = _limit(max_bytes)
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError("standard input is closed", source)
    try:
        return _read_limited(stream, max_bytes, source)
    except (OSError, ValueError) as e:
        detail = getattr(e, "strerror", None) or e
        if isinstance(e, ValueError) or getattr(e, "errno", None) == 9:  # EBADF
            detail = "standard input is closed"
        raise InputError(f"cannot read ({_one_line(detail)})", source) from None


def load_stdin(data: bytes | None = None, password: str | None = None,
               max_bytes: int | None = DEFAULT_MAX_INPUT_MB * MB) -> Document:
    """Read standard input (or ``data``) as text; PDF and DOCX bytes are recognised by content
    (and keep their own ``kind``), everything else is text with kind ``'stdin'``."""
    source = "<stdin>"
    if data is None:
        data = read_stdin_bytes(max_bytes)
    if not data.strip():
        raise InputError("empty document", source)
    fn = _sniff(data)
    if fn is not None:
        _check_zip_expansion(data, source, max_bytes)
        return _finish(fn(data, source, password), source)
    return _finish(Document(decode_text(data, source), source, "stdin", [0]), source)
