"""Rendering and writing of compression results: text / json / jsonl / html / messages, atomic
files, stdout.

Everything here is pure (no model, no CLI state) so it can be used from the library as well:

    >>> from cprs_cli.output import render_json, write_output
    >>> write_output("out.json", render_json(result))

Where results go (`write_output`, the rule the README states): a path that does not exist or
a regular file is replaced atomically (temporary file + rename), so a reader never sees half a
result; a symbolic link is followed and the rule applies to what it points at (the link stays);
a FIFO, a character device (`/dev/null`, a terminal) or an alias of an open descriptor
(`/dev/stdout`, `/dev/fd/N`) is written through in place, as a shell redirection would, because
renaming over it would replace the device node or the pipe; anything else (a directory, a block
device, a socket) is refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import OutputError
from .result import CompressionResult

FORMATS = ("text", "json", "jsonl", "html", "messages")
# formats that render one document per output stream (several need jsonl or one file each)
SINGLE_DOCUMENT_FORMATS = ("json", "html", "messages")
# temporary files of atomic writes: `.cprs-XXXXXXXX.tmp` (8 random characters) in the target's folder
TEMP_PREFIX, TEMP_SUFFIX = ".cprs-", ".tmp"


# --------------------------------------------------------------------------- rendering


def render_text(result: CompressionResult, keep_headings: bool = False) -> str:
    """The compressed text, ending in exactly one newline; a result that kept nothing is one
    empty line, so every text result is whole lines (and a result file is never empty).

    `keep_headings`: the heading of each kept span's section goes on its own line above the
    first span of that section (once per section; not when the span starts with it)."""
    text = with_headings(result) if keep_headings else result.compressed_text
    return text.rstrip("\n") + "\n"


def with_headings(result: CompressionResult) -> str:
    """The spans joined by the result's separator, each section's heading above its first span."""
    parts, shown = [], set()
    for sp in result.spans:
        section = tuple(sp.section)
        piece = sp.text
        if section and section not in shown:
            shown.add(section)
            title = section[-1]
            if not sp.text.lstrip("#= ").startswith(title):
                piece = f"{title}\n{piece}"
        parts.append(piece)
    return result.separator.join(parts)


def render_text_many(results: Sequence[CompressionResult], keep_headings: bool = False) -> str:
    """Several documents to one text stream: each preceded by a `==> source <==` header
    (as `head`/`tail` do for several files), separated by a blank line. One document is
    written without a header."""
    if len(results) == 1:
        return render_text(results[0], keep_headings)
    parts = [f"==> {r.source} <==\n{render_text(r, keep_headings)}" for r in results]
    return "\n".join(parts)


# A file name that is not valid UTF-8 reaches Python with each undecodable byte as a lone
# surrogate (U+DC80..U+DCFF, PEP 383 "surrogateescape"); such a str cannot be written as UTF-8.
# In JSON every lone surrogate is written as a \\uXXXX escape, which keeps the output valid
# UTF-8 and valid JSON, and loses nothing: os.fsencode(json.loads(line)["source"]) gives the
# name's original bytes back. (json.dumps has no option for "escape only surrogates".)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_text(obj: object, **kwargs) -> str:
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encode_output(text: str) -> bytes:
    """Text results as bytes: UTF-8, with surrogate-escaped name bytes written back as the bytes
    they stand for (the `==> name <==` headers of several text results name files as `head`
    does); any other lone surrogate becomes '?'."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def render_json(result: CompressionResult) -> str:
    """One document as a pretty-printed JSON object (`CompressionResult.to_dict()`)."""
    return _json_text(result.to_dict(), indent=2) + "\n"


def render_jsonl(results: Iterable[CompressionResult]) -> str:
    """One compact JSON object per line, one line per document."""
    return "".join(_json_text(r.to_dict()) + "\n" for r in results)


# --------------------------------------------------------------------------- HTML report

FOLD_BYTES = 2 << 20  # inputs larger than this (UTF-8) fold their dropped text away
_REPORT_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}
header{position:sticky;top:0;background:#f4f4f4;border-bottom:2px solid #444;padding:.6em 1em;z-index:1}
header h1{font-size:1.1em;margin:0 0 .3em}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:0 1em;margin:0}
header dt{font-weight:600}header dd{margin:0}
main{white-space:pre-wrap;padding:1em;max-width:60em;font-family:ui-monospace,monospace;font-size:14px}
.dropped{color:#6b6b6b}
mark.kept{background:#fff3a8;color:#000;border-bottom:2px solid #000;font-weight:600}
mark.kept:focus{outline:3px solid #1a55c4}
mark.kept::before{content:"\\25B6\\FE0E ";font-weight:400}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
details{display:inline}summary{display:inline;cursor:pointer;color:#1a55c4}
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}header{background:#222}
.dropped{color:#9a9a9a}mark.kept{background:#5c4d00;color:#fff;border-color:#fff}}
"""
_REPORT_JS = """
document.getElementById('copy').addEventListener('click',function(){
 var t=JSON.parse(document.getElementById('compressed').textContent),b=this;
 function done(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy compressed text'},1500)}
 if(navigator.clipboard){navigator.clipboard.writeText(t).then(done,function(){fallback()})}else{fallback()}
 function fallback(){var a=document.createElement('textarea');a.value=t;document.body.appendChild(a);a.select();
  try{document.execCommand('copy');done()}finally{document.body.removeChild(a)}}
});
"""


def render_html(result: CompressionResult, text: str, *, fold_bytes: int = FOLD_BYTES) -> str:
    """A self-contained HTML report: the whole document `text` (the text the spans index) with
    the kept spans marked in place, and a header with the query, stats, model and a "copy
    compressed text" button. No external assets; works offline.

    Kept spans are `<mark class="kept">` elements (bold, underlined and prefixed with a marker,
    not colour alone; a hidden "kept:" label for screen readers; focusable), whose `title` shows
    score and page on hover, with `data-score`, `data-page` and `data-index` attributes. When
    `text` is larger than `fold_bytes`, each dropped run sits in a `<details>` element, folded."""
    from html import escape

    fold = len(text.encode("utf-8", "surrogatepass")) > fold_bytes
    body: list[str] = []
    pos = 0

    def dropped(a: int, b: int) -> None:
        if b <= a:
            return
        chunk = escape(text[a:b])
        if fold and b - a > 200:
            body.append(f'<details><summary>[{b - a:,} characters dropped: show]</summary>'
                        f'<span class="dropped">{chunk}</span></details>')
        else:
            body.append(f'<span class="dropped">{chunk}</span>')

    for i, sp in enumerate(result.spans):
        dropped(pos, sp.start)
        page = "" if sp.page is None else f" · page {sp.page}"
        section = f" · {' › '.join(sp.section)}" if sp.section else ""
        tip = f"score {sp.score:.2f}{page}{section}"
        body.append(f'<mark class="kept" tabindex="0" data-index="{i}" data-score="{sp.score}"'
                    f'{"" if sp.page is None else f" data-page={chr(34)}{sp.page}{chr(34)}"}'
                    f' title="{escape(tip)}"><span class="sr">kept: </span>{escape(text[sp.start:sp.end])}</mark>')
        pos = sp.end
    dropped(pos, len(text))
    s = result.stats
    queries = list(result.queries) or [result.query]
    rows = [("query" if len(queries) == 1 else "queries", "<br>".join(escape(q) for q in queries)),
            ("source", escape(result.source)),
            ("kept", f"{len(result.spans):,} spans, {s.output_tokens:,} of {s.input_tokens:,} tokens "
                     f"({s.ratio:.1f}×)" + (" — nothing was kept" if result.empty else "")),
            ("model", f"{escape(result.model_name)} on {escape(s.device)}")]
    rows += [("warning", escape(w["message"])) for w in s.warnings]
    meta = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    compressed = _json_text(result.compressed_text).replace("</", "<\\/")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>cprs: {escape(result.source)}</title><style>{_REPORT_CSS}</style></head><body>"
            f'<header><h1>cprs report</h1><dl>{meta}</dl>'
            f'<p><button id="copy" type="button">Copy compressed text</button> '
            f'<span aria-hidden="true">▶</span> marks kept text; hover or focus a kept span for its score and page.</p>'
            f"</header>"
            f'<main id="document" data-kept="{len(result.spans)}" aria-label="document with kept spans marked">'
            f'{"".join(body)}</main>'
            f'<script type="application/json" id="compressed">{compressed}</script>'
            f"<script>{_REPORT_JS}</script></body></html>\n")


def render_chat(chat, result: CompressionResult, keep_headings: bool = False) -> str:
    """`--format messages`: the chat's messages (`messages.ChatInput`) with its document
    replaced by the compressed text, as pretty-printed JSON."""
    from .messages import render_messages

    compressed = with_headings(result) if keep_headings else result.compressed_text
    return _json_text(render_messages(chat, compressed), indent=2) + "\n"


def render(results: Sequence[CompressionResult], fmt: str, *, text: str | None = None,
           chat=None, keep_headings: bool = False) -> str:
    """Render `results` for one output stream in format `fmt` (one of `FORMATS`).

    `json`, `html` and `messages` take exactly one document (several documents to one stream
    need `jsonl`); `html` also needs the document `text` the spans index, `messages` the
    `messages.ChatInput` the document came from. `keep_headings` applies to text and messages.
    """
    if fmt in SINGLE_DOCUMENT_FORMATS and len(results) != 1:
        raise ValueError(f"--format {fmt} renders one document, got {len(results)}; "
                         "use jsonl for several")
    if fmt == "text":
        return render_text_many(results, keep_headings)
    if fmt == "json":
        return render_json(results[0])
    if fmt == "jsonl":
        return render_jsonl(results)
    if fmt == "html":
        if text is None:
            raise ValueError("--format html needs the document text")
        return render_html(results[0], text)
    if fmt == "messages":
        if chat is None:
            raise ValueError("--format messages needs the chat the document came from")
        return render_chat(chat, results[0], keep_headings)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- files


def write_atomic(path: str | os.PathLike, text: str | bytes, *, make_parents: bool = False) -> Path:
    """Write `text` to `path` so that readers see either the old file or the whole new one.

    The data goes to a temporary file in the same directory, is flushed and fsynced, and is
    then renamed over `path` with `os.replace`. An existing file's permission bits are kept;
    a new file gets the usual `0o666 & ~umask`. On any failure the temporary file is removed
    and `path` is left as it was.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    data = encode_output(text) if isinstance(text, str) else bytes(text)

    try:
        old = os.stat(path)
        mode = stat.S_IMODE(old.st_mode)
    except FileNotFoundError:
        old = None
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask

    with _signals_deferred():
        _replace_via_temp(path, parent, data, mode, old)
    _fsync_dir(parent)
    return path


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back while a temporary file exists, then deliver them.

    Python runs signal handlers between bytecodes, so without this a Ctrl-C could land after
    the temporary file is created and before the clean-up is armed, leaving it behind. Written
    by hand: neither the standard library nor a maintained package offers this. Only the main
    thread can set handlers; elsewhere the write runs unprotected (and signals go to the main
    thread anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            saved[signum] = signal.signal(signum, lambda n, f: pending.append(n))
        except (ValueError, OSError):  # not settable here (embedded interpreter)
            pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if pending:
            _redeliver(pending[0], saved.get(pending[0]))


def _redeliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)  # e.g. KeyboardInterrupt for SIGINT, raised now
    elif handler != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # the default action


def _replace_via_temp(path: Path, parent: Path, data: bytes, mode: int,
                      old: os.stat_result | None) -> None:
    # a short, fixed-length hidden name: one derived from `path.name` would pass the file
    # system's 255-byte limit for a long but legal output name
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            write_all(fh, data)
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            try:  # root replacing another user's file: keep its owner (best effort)
                os.chown(tmp, old.st_uid, old.st_gid)
            except OSError:
                pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_output(path: str | os.PathLike, text: str | bytes, *,
                 make_parents: bool = False) -> Path:
    """Write a result to `path` by the rule in the module docstring: atomic replace for a new
    path or a regular file (through symbolic links), written through in place for a FIFO, a
    character device or a descriptor alias; OSError for anything else."""
    path = Path(path)
    data = encode_output(text) if isinstance(text, str) else bytes(text)
    kind = output_kind(path)
    if kind == "through":
        _write_through(path, data)
        return path
    if kind == "atomic":
        target = path
        if path.is_symlink():  # replace what the link points at, never the link itself
            target = Path(os.path.realpath(path))
        return write_atomic(target, data, make_parents=make_parents)
    raise OSError(errno.EINVAL, f"is a {kind}; cprs writes only to regular files, FIFOs and "
                  "character devices", str(path))


def output_kind(path: str | os.PathLike) -> str:
    """How `write_output` would treat `path`: "atomic", "through", or the name of a file type
    it refuses ("directory", "block device", "socket")."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows symbolic links
    except FileNotFoundError:
        return "atomic"  # a new file (or a dangling link: the file it names is created)
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        return "through"
    if stat.S_ISREG(st.st_mode):
        if path.is_symlink() and not _same_inode(os.path.realpath(path), st):
            # a "magic" link such as /dev/stdout -> /proc/self/fd/1 whose name does not resolve
            # to the open file (a deleted file, another mount namespace): write to the descriptor
            return "through"
        if _is_descriptor_alias(path):
            return "through"
        return "atomic"
    if stat.S_ISBLK(st.st_mode):
        return "block device"
    if stat.S_ISSOCK(st.st_mode):
        return "socket"
    return "special file"


def _is_descriptor_alias(path: Path) -> bool:
    """/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N: the name stands for an open
    descriptor (`cprs -o /dev/stdout >> log` must append to log, not replace it)."""
    try:
        chain = [os.path.abspath(path)]
        p = chain[0]
        for _ in range(40):  # follow the link chain by hand: realpath would skip the /proc hop
            if not os.path.islink(p):
                break
            p = os.path.join(os.path.dirname(p), os.readlink(p))
            chain.append(os.path.normpath(p))
    except OSError:
        return False
    return any(c in ("/dev/stdout", "/dev/stderr", "/dev/stdin") or c.startswith("/dev/fd/")
               or (c.startswith("/proc/") and "/fd/" in c) for c in chain)


def _same_inode(a: str, st: os.stat_result) -> bool:
    try:
        other = os.stat(a)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _write_through(path: Path, data: bytes) -> None:
    """Open an existing FIFO / character device / descriptor alias and write `data` to it.

    O_APPEND: for a descriptor alias of a regular file (`-o /dev/stdout >> log`) the data goes
    after what is there; for pipes and devices it changes nothing. Never O_CREAT or O_TRUNC.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "wb") as fh:
        write_all(fh, data)


def write_all(stream, data: bytes) -> None:
    """Write every byte of `data` to a binary stream and flush, or raise.

    A buffered write may return a short count instead of raising when the raw write fails part
    of the way (seen on a pipe whose reader went away: 64 KiB written, no error, the rest lost),
    so the rest is written again until it is all out or the error surfaces."""
    view = memoryview(data)
    while view:
        n = stream.write(view)
        if n is None:  # a non-blocking stream that took nothing
            raise BlockingIOError(errno.EAGAIN, "output would block")
        if n <= 0:
            raise OSError(errno.EIO, "write made no progress")
        view = view[n:]
    stream.flush()


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------- stdout


def write_stdout(text: str) -> None:
    """A result to stdout, as UTF-8. EPIPE propagates (the CLI exits quietly, as `head` users
    expect); a closed or full stdout (`>&-`, `/dev/full`) is an OutputError."""
    try:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            sys.stdout.flush()
            write_all(buffer, encode_output(text))
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError, AttributeError) as err:
        silence_stdout()  # else the interpreter's exit flush fails again, with a traceback
        reason = getattr(err, "strerror", None) or ("standard output is closed"
                                                    if not isinstance(err, OSError) else err)
        raise OutputError(f"<stdout>: cannot write: {reason}") from None


def silence_stdout() -> None:
    """Point stdout at /dev/null (after EPIPE, `cprs ... | head`, or a failed write), so the
    interpreter's exit flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
