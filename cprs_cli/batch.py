"""A batch of `cprs compress`: which documents to read, where each result goes, and its delivery.

`plan` turns the command line's paths into `InputItem`s (a directory gives its files of every type
`ingest` reads, walked with `--recursive` and filtered by `--glob`; the files it passes over for
their type are listed as skipped; an `http(s)://` argument is a URL to fetch, and a `--messages`
file is one item, the chat's document) and gives each item its destination: stdout, one `-o FILE`,
or a file of its own under `--output-dir` that mirrors the input tree (a URL gets a name made from
its host and path). Everything that can be checked before any work is checked there: an output
never lands on an input (by real path and by inode, so hard links count too), two results never
share a name, a result's name fits the file system, `--format json`, `html` and `messages` get one
document. `Writer` then delivers each result as it comes.

It plans the command line's batch, so its `UsageError`s name the flags (`--output-dir`); no rich,
no typer: the CLI prints (`cli.py`, `console.py`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from . import ingest
from .errors import OutputError, UsageError
from .messages import ChatInput, load_messages
from .output import FORMATS, SINGLE_DOCUMENT_FORMATS, render, render_text, write_output, write_stdout
from .result import CompressionResult

# suffix of the per-document output files that `--output-dir` writes
OUTPUT_SUFFIX = {"text": ".cprs.txt", "json": ".cprs.json", "jsonl": ".cprs.jsonl",
                 "html": ".cprs.html", "messages": ".cprs.messages.json"}
# names that `--output-dir` writes; never picked up again as inputs when walking a directory
OUTPUT_NAME_SUFFIXES = tuple(OUTPUT_SUFFIX.values())
DEFAULT_GLOB = "*"  # a directory gives the files of every type ingest reads
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
URL_NAME_MAX = 200  # characters of a result name made from a URL, before its suffix


@dataclass(frozen=True)
class InputItem:
    """One document to compress: a file (with the root it was found under), stdin, an
    http(s) URL, or the document of a `--messages` chat (read from `path`, or stdin when None)."""

    path: Path | None  # None: stdin, a URL, or a chat read from stdin
    root: Path | None  # directory mirrored by --output-dir (None for stdin and URLs)
    display: str  # how messages name it
    url: str | None = None  # an http(s) URL to fetch
    chat: bool = False  # the document of the run's --messages chat

    @property
    def is_stdin(self) -> bool:
        """A document read from stdin (a chat read from stdin is not: it was read already)."""
        return self.path is None and self.url is None and not self.chat


class Inputs(NamedTuple):
    """What the command line's paths name."""

    items: list[InputItem]
    problems: list[tuple[str, str]]  # (name, reason): an argument that yields nothing
    skipped: list[Path]  # files of a directory whose type ingest does not read


def _verdict(name: str, pattern: str) -> bool | None:
    """Take (True), skip for its type (False), or pass over without a word (None: hidden files,
    cprs's own results, names that do not match an explicit --glob) a file met in a directory."""
    if name.startswith(".") or name.endswith(OUTPUT_NAME_SUFFIXES) or not fnmatch.fnmatch(name, pattern):
        return None
    if pattern == DEFAULT_GLOB:
        return ingest.converter_for(name) is not None
    return True


def _walk(directory: Path, recursive: bool, pattern: str, skip: Path | None) -> tuple[list[Path], list[Path]]:
    """The files to take from `directory`, and those skipped for their type; both sorted."""
    if recursive:
        files: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(directory):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames
                if not d.startswith(".") and not (skip is not None and _same(here / d, skip)))
            files.extend(here / f for f in sorted(filenames))
    else:
        files = sorted(directory.iterdir())
    found: list[Path] = []
    skipped: list[Path] = []
    for f in files:
        verdict = _verdict(f.name, pattern)
        if verdict is not None and f.is_file():
            (found if verdict else skipped).append(f)
    return found, skipped


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class InputSet:
    """Answers "is this path one of the inputs?" by real path and by inode (hard links)."""

    def __init__(self, paths: Iterable[Path]):
        self.real: set[str] = set()
        self.inodes: set[tuple[int, int]] = set()
        for p in paths:
            self.real.add(os.path.realpath(p))
            try:
                st = os.stat(p)
                self.inodes.add((st.st_dev, st.st_ino))
            except OSError:
                pass

    def __call__(self, path: Path) -> bool:
        if os.path.realpath(path) in self.real:
            return True
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self.inodes


def expand_inputs(args: Sequence[str], *, recursive: bool, pattern: str,
                  skip_dir: Path | None = None) -> Inputs:
    """Paths, directories and http(s) URLs from the command line → the documents to compress,
    (name, reason) for arguments that yield nothing (missing path, empty directory), and the
    files directories held that are of no type ingest reads."""
    items: list[InputItem] = []
    problems: list[tuple[str, str]] = []
    skipped: list[Path] = []
    seen: set[str] = set()
    stdin_given = False
    for arg in args or ["-"]:
        if arg == "-":
            if stdin_given:
                raise UsageError("'-' (stdin) is given more than once")
            stdin_given = True
            items.append(InputItem(None, None, "<stdin>"))
            continue
        if ingest.is_url(arg):
            if arg not in seen:
                seen.add(arg)
                items.append(InputItem(None, None, arg, url=arg))
            continue
        path = Path(arg)
        if path.is_dir():
            files, passed_over = _walk(path, recursive, pattern, skip_dir)
            skipped.extend(passed_over)
            if not files:
                what = f"matching {pattern!r}" if pattern != DEFAULT_GLOB else \
                    f"with a known suffix ({' '.join(ingest.readable_suffixes())})"
                hint = "" if recursive else "; use --recursive to look in subdirectories"
                problems.append((arg, f"directory has no files {what}{hint}"))
            new = [InputItem(f, path, str(f)) for f in files]
        elif path.exists():
            new = [InputItem(path, path.parent, arg)]
        elif path.is_symlink():
            problems.append((arg, "broken symbolic link"))
            continue
        else:
            problems.append((arg, "no such file or directory"))
            continue
        for item in new:
            key = os.path.realpath(item.path)  # type: ignore[arg-type]
            if key not in seen:
                seen.add(key)
                items.append(item)
    return Inputs(items, problems, skipped)


# --------------------------------------------------------------------------- where results go


def output_path_for(input_path: str | os.PathLike, input_root: str | os.PathLike | None,
                    output_dir: str | os.PathLike, fmt: str) -> Path:
    """Where `--output-dir` puts the result for `input_path`.

    The input's place below `input_root` (the directory given on the command line, or the
    file's own directory) is mirrored below `output_dir`, and the full input file name gets
    the format's suffix: `docs/a/report.pdf` under root `docs` → `OUT/a/report.pdf.cprs.txt`.
    Keeping the input's own suffix in the name means `x.md` and `x.txt` never collide.
    """
    if fmt not in OUTPUT_SUFFIX:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    src = Path(input_path)
    rel: Path
    if input_root is not None:
        try:
            rel = Path(os.path.relpath(os.path.abspath(src), os.path.abspath(input_root)))
        except ValueError:  # different drives (Windows)
            rel = Path(src.name)
        if rel.parts and rel.parts[0] == os.pardir:
            rel = Path(src.name)
    else:
        rel = Path(src.name)
    return Path(output_dir) / rel.parent / (rel.name + OUTPUT_SUFFIX[fmt])


def url_output_name(url: str) -> str:
    """The file name (before the format's suffix) of a URL's result under `--output-dir`: its
    host and path (and query), every run of characters other than letters, digits, '.', '_'
    and '-' made one '_', so no URL can name a folder or climb out of the output directory:
    `https://example.com/reports/10-k.pdf` → `example.com_reports_10-k.pdf`. A longer name is
    cut, and ends in 8 hex digits of the URL's sha256, so it stays unique."""
    parts = urllib.parse.urlsplit(url)
    name = parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "url"
    if len(name) > URL_NAME_MAX:
        digest = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        name = name[:URL_NAME_MAX - 9] + "-" + digest
    return name


def check_output_file(out_file: Path, is_input: InputSet) -> None:
    """Refuse an --output path that could never be written, before any work is done."""
    from .output import output_kind

    kind = output_kind(out_file)
    if kind == "directory":
        raise UsageError(f"--output {out_file}: is a directory (did you mean --output-dir?)")
    if kind not in ("atomic", "through"):
        raise UsageError(f"--output {out_file}: is a {kind}; cprs writes only to regular files, "
                         "FIFOs and character devices")
    if is_input(out_file):
        raise UsageError(f"--output {out_file}: refusing to overwrite an input file")
    if kind == "atomic":
        target = Path(os.path.realpath(out_file)) if out_file.is_symlink() else out_file
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"--output {out_file}: folder {parent} does not exist")


@dataclass
class Batch:
    """A planned run: the documents in order, what to report, and where each result goes."""

    items: list[InputItem]
    problems: list[tuple[str, str]]  # (name, reason), each an error line; the run goes on, exit 3
    skipped: list[Path]  # files of directories of no type ingest reads
    fmt: str
    out_file: Path | None = None  # -o FILE (None: stdout, or --output-dir)
    output_dir: Path | None = None
    out_paths: dict[InputItem, Path] = field(default_factory=dict)  # with --output-dir
    chat: ChatInput | None = None  # --messages: the chat whose document is the one item
    keep_headings: bool = False  # text and messages: each kept section's heading above it

    def drop(self, item: InputItem) -> None:
        """Leave `item` out (its input could not be read before the run began)."""
        self.items = [i for i in self.items if i != item]


def plan(paths: Sequence[str], *, recursive: bool, pattern: str, output: str | None,
         output_dir: Path | None, fmt: str, chat: tuple[str, ChatInput] | None = None,
         keep_headings: bool = False) -> Batch:
    """The batch the command line asks for; UsageError for what could never work.

    `chat`: (the --messages argument, its ChatInput): the chat's document is the one item."""
    if output is not None and output_dir is not None:
        raise UsageError("give either --output or --output-dir, not both")
    if not pattern:
        raise UsageError("--glob must not be empty")
    skip = output_dir if output_dir is not None and output_dir.is_dir() else None
    if chat is not None:
        items, problems, skipped = Inputs([_chat_item(chat[0])], [], [])
    else:
        items, problems, skipped = expand_inputs(paths, recursive=recursive, pattern=pattern, skip_dir=skip)
    if output_dir is None and fmt in SINGLE_DOCUMENT_FORMATS and (len(items) + len(problems)) > 1:
        raise UsageError(f"--format {fmt} writes one document; for several inputs use "
                         "--output-dir" + (" or --format jsonl" if fmt == "json" else ""))
    batch = Batch(items, problems, skipped, fmt, output_dir=output_dir,
                  chat=None if chat is None else chat[1], keep_headings=keep_headings)
    is_input = InputSet(i.path for i in items if i.path is not None)
    if output is not None and output != "-":
        batch.out_file = Path(output)
        check_output_file(batch.out_file, is_input)
    if output_dir is not None:
        _plan_output_dir(batch, output_dir, is_input)
    return batch


def _plan_output_dir(batch: Batch, output_dir: Path, is_input: InputSet) -> None:
    """A result file per item; an item whose result name would be too long is a problem."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output-dir {output_dir}: exists and is not a directory")
    taken: dict[str, InputItem] = {}
    planned: list[InputItem] = []
    for item in batch.items:
        if item.url is not None:
            dest = output_path_for(url_output_name(item.url), None, output_dir, batch.fmt)
        elif item.path is None:
            dest = output_path_for("stdin", None, output_dir, batch.fmt)
        else:
            dest = output_path_for(item.path, item.root, output_dir, batch.fmt)
        size = len(os.fsencode(dest.name))  # the input's name + ".cprs.txt"
        if size > NAME_MAX:
            batch.problems.append((item.display, f"its result name would be {size} bytes, longer "
                                   f"than the file system's limit of {NAME_MAX}"))
            continue
        planned.append(item)
        key = os.path.abspath(dest)
        if key in taken:
            raise UsageError(f"--output-dir: {taken[key].display} and {item.display} would "
                             f"both be written to {dest}")
        if is_input(dest):
            raise UsageError(f"--output-dir: refusing to overwrite input file {dest}")
        taken[key] = item
        batch.out_paths[item] = dest
    batch.items = planned


# --------------------------------------------------------------------------- chat messages


def _chat_item(arg: str) -> InputItem:
    if arg == "-":
        return InputItem(None, None, "<stdin>", chat=True)
    return InputItem(Path(arg), Path(arg).parent, arg, chat=True)


def read_chat(arg: str, max_bytes: int | None) -> ChatInput:
    """The `--messages FILE|-` chat (`messages.load_messages`); reading stops past `max_bytes`.
    Every problem is one InputError line naming the file."""
    if arg == "-":
        return load_messages(ingest.read_stdin_bytes(max_bytes), "<stdin>")
    data = ingest.read_file(arg, max_bytes)
    return load_messages(data, arg)


def chat_document(chat: ChatInput, source: str) -> ingest.Document:
    """The chat's document as ingest makes a Markdown file's: newlines normalised, what is not
    text replaced (`ingest.normalise_text`), headings, table rows and list items as structure."""
    text = ingest.normalise_text(chat.context.replace("\r\n", "\n").replace("\r", "\n"))
    headings, blocks = ingest.markdown_structure(text)
    return ingest.Document(text, source, "markdown", [0], headings=headings, blocks=blocks)


# --------------------------------------------------------------------------- delivery


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    """(device, inode, mtime) of `path`, or None: an atomic replace changes the inode."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


class Writer:
    """Delivers each result as it comes: a file of its own under --output-dir (atomically), a
    stream to stdout, or -o FILE, written once at the end when at least one input succeeded.
    A failed write is an OutputError, which stops the run."""

    def __init__(self, batch: Batch):
        self.batch = batch
        self.written = 0  # result files under --output-dir
        self.emitted = 0  # results in the stream (stdout or -o FILE)
        self._chunks: list[str] = []  # for -o FILE
        self._out_file_before = _file_identity(batch.out_file)

    def add(self, item: InputItem, result: CompressionResult, text: str | None = None) -> None:
        """Deliver `result`; `text` is the document text its spans index (`--format html`)."""
        b = self.batch
        if b.output_dir is not None:
            self._write_file(b.out_paths[item], self._render(result, text))
            return
        if b.fmt == "text" and len(b.items) > 1:  # several documents: `==> name <==` headers, as head(1)
            chunk = (("\n" if self.emitted else "") + f"==> {result.source} <==\n"
                     + render_text(result, b.keep_headings))
        else:
            chunk = self._render(result, text)
        if b.out_file is None:
            write_stdout(chunk)
        else:
            self._chunks.append(chunk)
        self.emitted += 1

    def _render(self, result: CompressionResult, text: str | None) -> str:
        b = self.batch
        return render([result], b.fmt, text=text, chat=b.chat, keep_headings=b.keep_headings)

    def _write_file(self, dest: Path, text: str) -> None:
        before = _file_identity(dest)
        try:
            write_output(dest, text, make_parents=True)
        except OSError as err:
            raise OutputError(f"{dest}: cannot write: {err.strerror or err}") from None
        except BaseException:
            # a signal held back during the write arrives right after the rename: this result
            # is whole and counts as done
            if _file_identity(dest) != before:
                self.written += 1
            raise
        self.written += 1

    def finish(self) -> None:
        """Write -o FILE (when at least one result came)."""
        out_file = self.batch.out_file
        if out_file is not None and self.emitted:
            try:
                write_output(out_file, "".join(self._chunks))
            except OSError as err:
                raise OutputError(f"{out_file}: cannot write: {err.strerror or err}") from None

    def delivered(self) -> tuple[int, str]:
        """How many results were delivered, and where: the summary of a run that was stopped."""
        b = self.batch
        if b.output_dir is not None:
            return self.written, f"{_count(self.written, 'result')} written under {b.output_dir}"
        if b.out_file is not None:
            if _file_identity(b.out_file) != self._out_file_before:
                return self.emitted, f"{b.out_file} written"
            return self.emitted, f"{b.out_file} not written (it is written only when every input is done)"
        return self.emitted, f"{_count(self.emitted, 'result')} written to stdout"

    def done_note(self) -> str | None:
        """Where the results went, for a run that finished (None: stdout, which shows it)."""
        if self.batch.output_dir is not None:
            return f"wrote {_count(self.written, 'file')} under {self.batch.output_dir}"
        if self.batch.out_file is not None:
            return f"wrote {self.batch.out_file}"
        return None
