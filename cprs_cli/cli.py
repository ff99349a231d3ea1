"""The `cprs` command line: a thin Typer layer over `cprs_cli.compressor.Compressor`.

Conventions (see `cprs compress --help`):

* results go to stdout (or `-o FILE` / `--output-dir DIR`); the stats table, the progress bar
  and all messages go to stderr, so `cprs compress ... | llm` is always clean;
* expected failures are one line, `cprs: error: ...`, and an exit code: 0 all ok, 1 internal
  error, 2 usage, 3 some input failed (the others are still processed) or a result could not be
  written, 4 the critic could not be loaded, 130 SIGINT, 141 stdout closed by its reader (quiet),
  143 SIGTERM (README "Failure behaviour");
* outputs are written atomically (regular files; FIFOs and devices are written through) and
  never onto an input; inputs are only ever read.

Heavy modules (torch, the critic) are imported only by the commands that need them, so
`cprs --help` and `cprs --version` stay instant.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
import typer.core
from rich.console import Console

from .errors import (EXIT_INPUT, EXIT_MODEL, EXIT_OK, EXIT_USAGE, CprsError, ModelError, OutputError,
                     UsageError)
from .inputs import InputItem, InputSet, expand_inputs
from .instructions import TASKS
from .options import (LEXICAL_WEIGHT_RANGE, MIN_BATCH_SIZE, MIN_TOKENS, MIN_WINDOW_TOKENS, CompressOptions,
                      Granularity, OutputFormat, rate_ok, threshold_ok)

if TYPE_CHECKING:
    from .result import CompressionResult

PROG = "cprs"
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, quietly, as `head` users expect
EXIT_TERMINATED = 143  # 128 + SIGTERM
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT, so that the same
    clean-up runs (temporary files removed, no partial result under a final name)."""

# --debug given to the top-level callback (`cprs --debug compress ...`)
_STATE: dict[str, bool] = {"debug": False}


Format = OutputFormat  # the --format choices (the library's enum, not a copy)

# library parameter → flag: library messages name parameters, the CLI prints flags
FLAGS = {"query": "--query", "instruction": "--instruction", "task": "--task",
         "granularity": "--granularity", "rate": "--rate", "max_tokens": "--max-tokens",
         "threshold": "--threshold", "min_span_tokens": "--min-span-tokens",
         "separator": "--separator", "lexical_weight": "--lexical-weight",
         "batch_size": "--batch-size", "window_tokens": "--window-tokens", "device": "--device"}


def _flag_message(err: CprsError) -> str:
    """The error's message with the parameters it names (`UsageError.params`) as flags."""
    msg = str(err)
    for param in getattr(err, "params", ()):
        if param in FLAGS:
            msg = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", FLAGS[param], msg)
    return msg


Task = enum.Enum("Task", {name: name for name in TASKS}, type=str)  # type: ignore[misc]


def _version() -> str:
    try:
        from . import __version__  # type: ignore[attr-defined]

        return str(__version__)
    except ImportError:
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("cprs-cli")
    except PackageNotFoundError:
        pass
    try:  # a source checkout that was never pip-installed
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


# --------------------------------------------------------------------------- console & errors


def _err_console() -> Console:
    # resolved per call: sys.stderr may be swapped (tests, redirection)
    return Console(stderr=True, highlight=False)


def _print_error(message: str, console: Console | None = None) -> None:
    """One line on stderr: `cprs: error: <message>` (never wrapped, never rich markup)."""
    line = f"{PROG}: error: {_one_line(message)}"
    if console is not None and console.is_terminal:
        console.print(line, markup=False, highlight=False, soft_wrap=True, style="red")
    else:
        _write_stderr(line + "\n")


def _print_note(message: str, console: Console | None = None) -> None:
    line = f"{PROG}: {_one_line(message)}"
    if console is not None and console.is_terminal:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        _write_stderr(line + "\n")


def _write_stderr(text: str) -> None:
    """Messages never fail the run: a closed or full stderr loses them, the exit code stays."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _one_line(message: str) -> str:
    # names from a non-UTF-8 file system carry surrogate escapes; show them as \udcXX
    text = " ".join(str(message).split()) or "unknown error"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _debug_enabled(kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("debug") or _STATE["debug"] or os.environ.get("CPRS_DEBUG"))


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line + exit code, unexpected ones into one line + a hint."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = _debug_enabled(kwargs)
        _STATE["debug"] = debug
        try:
            return fn(*args, **kwargs)
        except (*_CLICK_ERRORS, *_ABORTS, click.exceptions.Exit, typer.Exit):
            raise
        except CprsError as err:
            if debug:
                traceback.print_exc()
            _print_error(_flag_message(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            _print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Terminated:
            _print_error("terminated")
            raise typer.Exit(EXIT_TERMINATED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except MemoryError:
            _print_error("out of memory (lower --max-input-mb or --batch-size)")
            raise typer.Exit(EXIT_INTERNAL) from None
        except Exception as err:  # noqa: BLE001 - the one place that catches everything
            if debug:
                traceback.print_exc()
                _print_error(f"unexpected {type(err).__name__}: {err}")
            else:
                _print_error(f"unexpected {type(err).__name__}: {err} "
                             f"(rerun with --debug for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


@contextlib.contextmanager
def _sigterm_raises():
    """While a command runs, SIGTERM raises `Terminated` in the main thread (the default action
    would kill the process before temporary files are removed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated()

    old = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _write_stdout(chunk: str) -> None:
    """Results to stdout, as UTF-8. EPIPE propagates (a quiet exit); a closed or full stdout
    (`>&-`, `/dev/full`) is an OutputError."""
    try:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            from .output import encode_output, write_all

            sys.stdout.flush()
            write_all(buffer, encode_output(chunk))
        else:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError, AttributeError) as err:
        _silence_stdout()  # else the interpreter's exit flush fails again, with a traceback
        reason = getattr(err, "strerror", None) or ("standard output is closed"
                                                    if not isinstance(err, OSError) else err)
        raise OutputError(f"<stdout>: cannot write: {reason}") from None


def _require_utf8(option: str, value: str | None) -> None:
    """Text options must be text: a non-UTF-8 byte in argv arrives as a surrogate escape, which
    no tokenizer accepts and no JSON output can carry."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        try:
            bad = f"byte 0x{value[err.start].encode('utf-8', 'surrogateescape').hex().upper()}"
        except UnicodeEncodeError:
            bad = "a lone surrogate"
        raise UsageError(f"{option}: not valid UTF-8 ({bad} at character {err.start + 1})") from None


def _silence_stdout() -> None:
    """After EPIPE (`cprs ... | head`), point stdout at /dev/null so the exit flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# --------------------------------------------------------------------------- app


# Typer >= 0.20 raises the exceptions of its own copy of Click (typer._click); catch both kinds
_CLICK_ERRORS = tuple({click.exceptions.ClickException} | {
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"})
_ABORTS = (click.exceptions.Abort, typer.Abort)


class _OneLineUsageErrors(typer.core.TyperGroup):
    """Argument-parsing errors (unknown option, value out of range) as one `cprs: error:` line
    with exit 2, like every other error; Click and Typer would draw a multi-line box."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK_ERRORS as err:
            if type(err).__name__ != "NoArgsIsHelpError":  # the help text was printed already
                _print_error(_usage_message(err))
            sys.exit(err.exit_code)
        except _ABORTS:
            _print_error("aborted")
            sys.exit(EXIT_INTERNAL)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _usage_message(err: Any) -> str:
    ctx = getattr(err, "ctx", None)
    hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
    return err.format_message() + hint


app = typer.Typer(
    name=PROG,
    cls=_OneLineUsageErrors,
    help="Compress long documents for LLMs: a token critic keeps only the spans a query needs.",
    epilog="Run [bold]cprs COMMAND --help[/bold] for the options of a command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {_version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", help="Print the version and exit.", is_eager=True,
        callback=_version_callback)] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """Compress long documents for LLMs: a token critic keeps only the spans a query needs.

    Results go to stdout, everything else (stats, progress, errors) to stderr. Exit codes: 0 ok, 1 internal error, 2 usage error, 3 some input failed or a result could not be written, 4 the critic could not be loaded, 130/143 interrupted/terminated.
    """
    _STATE["debug"] = debug


def _describe_input_error(err: CprsError, item: InputItem) -> str:
    """The error's message, making sure it names the file."""
    msg = str(err)
    if err.path is None and item.display not in msg and (
            item.path is None or str(item.path) not in msg):
        msg = f"{item.display}: {msg}"
    return msg


# --------------------------------------------------------------------------- progress


class _ProgressUI:
    """A rich progress display on stderr: a files bar for batches and a windows bar for
    documents of several windows. Started lazily, so short single runs show nothing."""

    def __init__(self, console: Console, enabled: bool, n_files: int):
        self.console = console
        self.enabled = enabled and console.is_terminal
        self.n_files = n_files
        self._progress: Any = None
        self._files_task: Any = None
        self._windows_task: Any = None
        self._current = ""

    def _start(self) -> None:
        if self._progress is not None:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True)
        self._progress.start()
        if self.n_files > 1:
            self._files_task = self._progress.add_task("files", total=self.n_files)

    def __enter__(self) -> _ProgressUI:
        if self.enabled and self.n_files > 1:
            self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def begin(self, name: str) -> None:
        self._current = name
        if self._progress is not None and self._windows_task is not None:
            self._progress.remove_task(self._windows_task)
            self._windows_task = None

    def done_file(self) -> None:
        if self._progress is not None and self._files_task is not None:
            self._progress.advance(self._files_task)

    def callback(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None

        def on_windows(done: int, total: int) -> None:
            if total < 2 and self._progress is None:
                return
            self._start()
            label = _shorten(self._current, 40)
            if self._windows_task is None:
                self._windows_task = self._progress.add_task(label, total=total)
            self._progress.update(self._windows_task, completed=done, total=total)

        return on_windows

    def print_error(self, message: str) -> None:
        _print_error(message, self.console if self._progress is not None else None)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


# --------------------------------------------------------------------------- compress

COMPRESS_EPILOG = """\
[bold]Examples[/bold]

  cprs compress report.pdf -q "What were the Q3 revenues?"

  cat notes.md | cprs compress -q "Which deadlines are mentioned?" --rate 0.2 > short.md

  cprs compress docs/ -r -q "How is auth configured?" --output-dir compressed/

  cprs compress a.txt b.md -q "Who signed?" --format jsonl -o results.jsonl

  cprs compress big.docx -q "Summarise the risks" --task paragraphs --max-tokens 2000

[bold]Outputs[/bold]: text is the compressed document; json is one object per document \
(schema_version, source, query, instruction, granularity, model, offsets, spans, \
compressed_text, stats; span offsets count code points of the document text, see the \
README) and takes a single input; jsonl is one such object per line. Several documents to \
one text stream are separated by '==> SOURCE <==' headers. --output-dir writes \
NAME.cprs.txt / NAME.cprs.json / NAME.cprs.jsonl, mirroring the input tree. Results are \
written atomically and never onto an input.

[bold]Exit codes[/bold]: 0 ok, 1 internal error, 2 usage error, 3 some input failed (the others \
are still written) or a result could not be written, 4 the critic could not be loaded, 130 \
interrupted, 141 stdout closed by its reader, 143 terminated.
"""


def _check_rate(value: float | None) -> float | None:
    # the library's rule (options.rate_ok), worded for the flag
    if value is not None and not rate_ok(value):
        raise typer.BadParameter(f"{value} is not in the range 0 < R <= 1")
    return value


def _check_threshold(value: float | None) -> float | None:
    # the library's rule (options.threshold_ok): an open interval, so 0 and 1 are refused
    if value is not None and not threshold_ok(value):
        raise typer.BadParameter(f"{value} is not in the range 0 < P < 1")
    return value


def _check_device(value: str | None) -> str:
    if value is None:
        return "auto"
    value = value.strip().lower()
    if not DEVICE_RE.match(value):
        raise typer.BadParameter("expected auto, cpu, cuda or cuda:N")
    return value


def _load_compressor(model: str | None, device: str, batch_size: int | None,
                     window_tokens: int | None) -> Any:
    """Build the Compressor (imports torch and the critic; raises ModelError)."""
    from .compressor import Compressor

    return Compressor(model=model, device=device, batch_size=batch_size,
                      window_tokens=window_tokens)


def _load_document(item: InputItem, password: str | None, stdin_data: bytes | None = None,
                   max_bytes: int | None = None) -> Any:
    from . import ingest

    if item.is_stdin:
        return ingest.load_stdin(data=stdin_data, password=password, max_bytes=max_bytes)
    return ingest.load_path(item.path, password=password, max_bytes=max_bytes)


def _prefetch_stdin(items: list[InputItem], max_bytes: int | None) -> bytes | None:
    """Read the stdin document before anything else can: the critic is loaded afterwards, so
    no library prompt (transformers' "run custom code? [y/N]") could ever consume it."""
    from . import ingest

    if not any(item.is_stdin for item in items):
        return None
    return ingest.read_stdin_bytes(max_bytes)


def _check_max_input_mb(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"{value} is not a positive number of megabytes")
    return value


@app.command(epilog=COMPRESS_EPILOG, no_args_is_help=False)
@_handle_errors
def compress(
    paths: Annotated[list[str] | None, typer.Argument(
        metavar="PATHS", show_default=False,
        help="Files or directories to compress (.txt .md .pdf .docx .text .markdown .rst). "
             "No path, or '-', reads stdin.")] = None,
    query: Annotated[str, typer.Option(
        "--query", "-q", metavar="TEXT", help="What the compressed text must still answer.",
        rich_help_panel="What to keep")] = ...,  # type: ignore[assignment]
    instruction: Annotated[str | None, typer.Option(
        metavar="TEXT", help="Free-text control prompt for the critic (instead of --task).",
        rich_help_panel="What to keep")] = None,
    task: Annotated[Task | None, typer.Option(  # type: ignore[valid-type]
        help="A preset control prompt (default: facts).", case_sensitive=False,
        rich_help_panel="What to keep")] = None,
    granularity: Annotated[Granularity, typer.Option(
        help="Unit of what is kept: whole words, sentences or paragraphs.",
        case_sensitive=False, rich_help_panel="What to keep")] = Granularity.sentence,
    rate: Annotated[float | None, typer.Option(
        metavar="R", callback=_check_rate,
        help="Keep about R of the input tokens (0 < R <= 1), highest-scoring units first.",
        rich_help_panel="How much to keep")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", min=MIN_TOKENS, metavar="N",
        help="Keep at most N tokens (cl100k_base).",
        rich_help_panel="How much to keep")] = None,
    threshold: Annotated[float | None, typer.Option(
        metavar="P", callback=_check_threshold,
        help="Keep tokens whose keep-probability is at least P (0 < P < 1; default: the critic's calibrated threshold for the task, else the argmax tag).",
        rich_help_panel="How much to keep")] = None,
    min_span_tokens: Annotated[int | None, typer.Option(
        "--min-span-tokens", min=MIN_TOKENS, metavar="N",
        help="Drop kept spans shorter than N tokens.",
        rich_help_panel="How much to keep")] = None,
    lexical_weight: Annotated[float | None, typer.Option(
        "--lexical-weight", min=LEXICAL_WEIGHT_RANGE[0], max=LEXICAL_WEIGHT_RANGE[1], metavar="W",
        help="With --rate/--max-tokens, rank units by critic score + W x their BM25 score "
             "(0 = critic alone; default: the critic's calibrated weight).",
        rich_help_panel="How much to keep")] = None,
    separator: Annotated[str | None, typer.Option(
        metavar="TEXT", help="Marks where text was dropped (default: the compressor's).",
        rich_help_panel="How much to keep")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="NAME|PATH",
        help="Critic name (see 'cprs models') or a critic directory (default: the default "
             "critic).", rich_help_panel="Critic")] = None,
    device: Annotated[str, typer.Option(
        metavar="auto|cpu|cuda[:N]", callback=_check_device,
        help="Where the critic runs.", rich_help_panel="Critic")] = "auto",
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=MIN_BATCH_SIZE, metavar="N",
        help="Windows per critic batch (lowered, with a warning, to what fits the per-batch token bound).",
        rich_help_panel="Critic")] = None,
    window_tokens: Annotated[int | None, typer.Option(
        "--window-tokens", min=MIN_WINDOW_TOKENS, metavar="N",
        help="Critic window size in model tokens (default: the critic's).",
        rich_help_panel="Critic")] = None,
    password: Annotated[str | None, typer.Option(
        metavar="TEXT", help="Password for encrypted PDFs.", rich_help_panel="Input")] = None,
    max_input_mb: Annotated[float, typer.Option(
        "--max-input-mb", metavar="MB", callback=_check_max_input_mb,
        help="Refuse an input larger than MB megabytes (2^20 bytes); reading stops there.",
        rich_help_panel="Input")] = 512,
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-r", help="Descend into subdirectories of directory arguments.",
        rich_help_panel="Input")] = False,
    glob: Annotated[str, typer.Option(
        metavar="PATTERN",
        help="File-name pattern for directory arguments; the default '*' takes the known "
             "suffixes only.", rich_help_panel="Input")] = "*",
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="Write all results to FILE (atomically; '-' is stdout).",
        rich_help_panel="Output")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", metavar="DIR", file_okay=False,
        help="Write one file per input under DIR, mirroring the input tree.",
        rich_help_panel="Output")] = None,
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="text: the compressed document; json: one object per document; jsonl: one "
             "object per line.", rich_help_panel="Output")] = Format.text,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="No stats table and no progress bar (errors and warnings are still shown).",
        rich_help_panel="Output")] = False,
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", help="No progress bar.", rich_help_panel="Output")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks for unexpected errors.",
        rich_help_panel="Output")] = False,
) -> None:
    """Compress documents so that they keep what QUERY needs.

    Reads files, directories or stdin; writes the compressed text (or JSON) to stdout, -o FILE or --output-dir DIR. A stats table (tokens in/out, ratio, windows, seconds, device) and progress go to stderr unless --quiet.
    """
    with _sigterm_raises():
        _run_compress(
            paths=list(paths or []), query=query, instruction=instruction,
            task=task.value if task is not None else None, granularity=granularity.value,
            rate=rate, max_tokens=max_tokens, threshold=threshold,
            min_span_tokens=min_span_tokens, separator=separator, model=model, device=device,
            lexical_weight=lexical_weight,
            batch_size=batch_size, window_tokens=window_tokens, password=password,
            recursive=recursive, glob=glob, output=output, output_dir=output_dir,
            fmt=fmt.value, quiet=quiet, no_progress=no_progress,
            max_input_bytes=int(max_input_mb * (1 << 20)))


def _run_compress(*, paths: list[str], query: str, instruction: str | None, task: str | None,
                  granularity: str, rate: float | None, max_tokens: int | None,
                  threshold: float | None, min_span_tokens: int | None, separator: str | None,
                  model: str | None, device: str, batch_size: int | None,
                  window_tokens: int | None, password: str | None, recursive: bool, glob: str,
                  output: str | None, output_dir: Path | None, fmt: str, quiet: bool,
                  no_progress: bool, max_input_bytes: int | None = None,
                  lexical_weight: float | None = None) -> None:
    from .output import output_path_for, render_json, render_jsonl, render_text, stats_table
    from .output import write_output

    # ---- options that contradict each other: fail before any work (the library's rules,
    # CompressOptions.validate; its messages name parameters, printed as flags)
    options = CompressOptions(query=query, instruction=instruction, task=task, granularity=granularity,
                              rate=rate, max_tokens=max_tokens, threshold=threshold,
                              min_span_tokens=min_span_tokens, separator=separator,
                              lexical_weight=lexical_weight).validate()
    if output is not None and output_dir is not None:
        raise UsageError("give either --output or --output-dir, not both")
    if not glob:
        raise UsageError("--glob must not be empty")
    for option, value in (("--query", query), ("--instruction", instruction),
                          ("--separator", separator)):
        _require_utf8(option, value)
    if password is not None:
        from .ingest import PasswordError, check_password

        try:
            check_password(password)
        except PasswordError as err:  # the password is the problem, not any file
            raise UsageError(f"--password: {err}") from None
    to_stdout = output_dir is None and (output is None or output == "-")
    if to_stdout and sys.stdout is None:
        raise UsageError("standard output is closed; give -o FILE or --output-dir DIR")
    if not paths and sys.stdin is not None and _isatty(sys.stdin):
        raise UsageError("no input: give PATHS, or pipe text on stdin (see 'cprs compress --help')")

    # ---- which documents
    skip = output_dir if output_dir is not None and output_dir.is_dir() else None
    items, problems = expand_inputs(paths, recursive=recursive, pattern=glob, skip_dir=skip)
    single_stream = output_dir is None
    if single_stream and fmt == "json" and (len(items) + len(problems)) > 1:
        raise UsageError("--format json writes one document; for several inputs use "
                         "--format jsonl or --output-dir")

    # ---- where results go; never onto an input
    is_input = InputSet(i.path for i in items if i.path is not None)
    out_file: Path | None = None
    if output is not None and output != "-":
        out_file = Path(output)
        _check_output_file(out_file, is_input)
    out_paths: dict[InputItem, Path] = {}
    if output_dir is not None:
        if output_dir.exists() and not output_dir.is_dir():
            raise UsageError(f"--output-dir {output_dir}: exists and is not a directory")
        taken: dict[str, InputItem] = {}
        planned: list[InputItem] = []
        for item in items:
            if item.is_stdin:
                dest = output_path_for("stdin", None, output_dir, fmt)
            else:
                dest = output_path_for(item.path, item.root, output_dir, fmt)  # type: ignore[arg-type]
            if len(os.fsencode(dest.name)) > NAME_MAX:  # the input's name + ".cprs.txt"
                problems.append((item.display, f"its result name would be {len(os.fsencode(dest.name))} "
                                 f"bytes, longer than the file system's limit of {NAME_MAX}"))
                continue
            planned.append(item)
            key = os.path.abspath(dest)
            if key in taken:
                raise UsageError(f"--output-dir: {taken[key].display} and {item.display} would "
                                 f"both be written to {dest}")
            if is_input(dest):
                raise UsageError(f"--output-dir: refusing to overwrite input file {dest}")
            taken[key] = item
            out_paths[item] = dest
        items = planned

    console = _err_console()
    failed = bool(problems)
    for name, reason in problems:
        _print_error(f"{name}: {reason}")
    if not items:
        raise typer.Exit(EXIT_INPUT if failed else EXIT_OK)

    # ---- stdin, and a single input, are read before the (slow) critic load: a bad file fails
    # fast, and nothing but the document can ever be read from stdin
    preloaded: dict[InputItem, Any] = {}
    try:
        stdin_data = _prefetch_stdin(items, max_input_bytes)
    except (UsageError, ModelError):
        raise
    except CprsError as err:  # unreadable stdin: the other inputs still go on
        stdin_data, failed = None, True
        _print_error(str(err))
        items = [i for i in items if not i.is_stdin]
        if not items:
            raise typer.Exit(EXIT_INPUT) from None
    if len(items) == 1:
        try:
            preloaded[items[0]] = _load_document(items[0], password, stdin_data,
                                                 max_input_bytes)
        except (UsageError, ModelError):
            raise
        except CprsError as err:
            _print_error(_describe_input_error(err, items[0]))
            raise typer.Exit(EXIT_INPUT) from None

    # ---- the critic (stop at once if it cannot be loaded)
    try:
        compressor = _load_compressor(model, device, batch_size, window_tokens)
    except CprsError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        if _debug_enabled({}):
            raise
        raise ModelError(f"could not load critic {model or '(default)'}: "
                         f"{type(err).__name__}: {err}") from err

    results: list[CompressionResult] = []
    said: set[str] = set()  # run-level warnings already printed
    chunks: list[str] = []  # for -o FILE
    multi = len(items) > 1
    written = 0
    emitted = 0
    internal = False  # a document hit a bug: reported, the others go on, exit 1 at the end
    out_file_before = _file_identity(out_file)
    try:
        with _ProgressUI(console, not (quiet or no_progress), len(items)) as ui:
            for item in items:
                ui.begin(item.display)
                try:
                    doc = preloaded.pop(item, None) or _load_document(item, password, stdin_data,
                                                                      max_input_bytes)
                    result = compressor.compress_document(doc, progress=ui.callback(),
                                                          **options.as_kwargs())
                except (UsageError, ModelError):
                    raise  # bad options or a broken critic: the same for every document
                except CprsError as err:
                    failed = True
                    ui.print_error(_describe_input_error(err, item))
                    ui.done_file()
                    continue
                except (KeyboardInterrupt, BrokenPipeError):
                    raise
                except MemoryError:
                    failed = True
                    ui.print_error(f"{item.display}: out of memory (lower --max-input-mb)")
                    ui.done_file()
                    continue
                except Exception as err:
                    if _debug_enabled({}):
                        raise
                    internal = True
                    ui.print_error(f"{item.display}: unexpected {type(err).__name__}: {err} "
                                   f"(rerun with --debug for the traceback)")
                    ui.done_file()
                    continue
                results.append(result)
                _print_warnings(result, item.display, said)

                if output_dir is not None:
                    dest = out_paths[item]
                    text = render_text(result) if fmt == "text" else (
                        render_json(result) if fmt == "json" else render_jsonl([result]))
                    before = _file_identity(dest)
                    try:
                        write_output(dest, text, make_parents=True)
                    except OSError as err:
                        raise OutputError(f"{dest}: cannot write: {err.strerror or err}") from None
                    except (KeyboardInterrupt, Terminated):
                        # a signal held back during the write arrives right after the rename:
                        # this result is whole and counts as done
                        if _file_identity(dest) != before:
                            written += 1
                        raise
                    written += 1
                else:
                    if fmt == "text":
                        chunk = render_text(result)
                        if multi:
                            chunk = ("\n" if emitted else "") + f"==> {result.source} <==\n" + chunk
                    elif fmt == "json":
                        chunk = render_json(result)
                    else:
                        chunk = render_jsonl([result])
                    if to_stdout:
                        _write_stdout(chunk)
                    else:
                        chunks.append(chunk)
                    emitted += 1
                ui.done_file()

        if out_file is not None and results:
            try:
                write_output(out_file, "".join(chunks))
            except OSError as err:
                raise OutputError(f"{out_file}: cannot write: {err.strerror or err}") from None
    except (KeyboardInterrupt, Terminated) as err:
        # the summary names what was finished: whole results stay, nothing partial is left
        what, code = (("interrupted", EXIT_INTERRUPTED) if isinstance(err, KeyboardInterrupt)
                      else ("terminated", EXIT_TERMINATED))
        done = written if output_dir is not None else emitted
        if output_dir is not None:
            where = f"{written} result{'s' if written != 1 else ''} written under {output_dir}"
        elif out_file is not None:
            replaced = _file_identity(out_file) != out_file_before
            where = (f"{out_file} written" if replaced else
                     f"{out_file} not written (it is written only when every input is done)")
        else:
            where = f"{emitted} result{'s' if emitted != 1 else ''} written to stdout"
        _print_error(f"{what} after {done} of {len(items)} document{'s' if len(items) != 1 else ''}: {where}")
        raise typer.Exit(code) from None

    if not quiet and results:
        console.print(stats_table(results))
        if output_dir is not None:
            _print_note(f"wrote {written} file{'s' if written != 1 else ''} under {output_dir}")
        elif out_file is not None:
            _print_note(f"wrote {out_file}")
    if internal:
        raise typer.Exit(EXIT_INTERNAL)
    if failed:
        raise typer.Exit(EXIT_INPUT)


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    """(device, inode, mtime) of `path`, or None: an atomic replace changes the inode."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _print_warnings(result: CompressionResult, display: str, said: set[str]) -> None:
    """`cprs: warning: ...` lines for what the run changed from what was asked: a run-level
    warning (the query cut, the batch size clamped) once per run, a document's own once for it."""
    from .result import RUN_WARNINGS

    for w in result.stats.warnings:
        if w["code"] in RUN_WARNINGS:
            if w["code"] in said:
                continue
            said.add(w["code"])
            _print_note(f"warning: {w['message']}")
        else:
            _print_note(f"warning: {display}: {w['message']}")


def _check_output_file(out_file: Path, is_input: InputSet) -> None:
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


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- models


@app.command()
@_handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """List the critics cprs knows: kind, whether installed, where the base weights come from."""
    import json

    from .critic import registry

    critics = registry.list_critics()
    default = getattr(registry, "DEFAULT_CRITIC", None)
    if as_json:
        rows = [{
            "name": c.name, "kind": c.kind, "default": c.name == default,
            "default_on_gpu": c.name == registry.DEFAULT_GPU_CRITIC,
            "installed": bool(c.installed), "status": c.status, "base": c.base,
            "delta_path": str(c.delta_path), "description": c.description,
        } for c in critics]
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return

    from rich.table import Table
    from rich.text import Text

    table = Table(title="cprs critics", header_style="bold",
                  caption="* the default critic (used when --model is not given; on a CUDA device: "
                          f"{registry.DEFAULT_GPU_CRITIC})")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("installed", no_wrap=True)
    table.add_column("base weights", overflow="fold", ratio=1)
    table.add_column("description", ratio=2)
    for c in critics:
        name = Text(c.name + (" *" if c.name == default else ""))
        installed = Text("yes", style="green") if c.installed else Text("no", style="red")
        description = Text(c.description)
        description.append(f"\n{c.status}", style="dim")
        table.add_row(name, c.kind, installed, Text(c.base), description)
    Console().print(table)


# --------------------------------------------------------------------------- bench


@app.command()
@_handle_errors
def bench(
    quick: Annotated[bool, typer.Option(
        "--quick", help="A small, fast subset (minutes on a CPU).")] = False,
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", file_okay=False, help="Where tables, JSON and plots are written.")
    ] = Path("docs/benchmarks"),
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", metavar="NAME|PATH",
        help="Critic to benchmark; repeat for several (default: all installed).")] = None,
    length: Annotated[list[int] | None, typer.Option(
        "--length", min=1, metavar="TOKENS",
        help="Context length to test; repeat for several (default: the suite's).")] = None,
    device: Annotated[str, typer.Option(
        metavar="auto|cpu|cuda[:N]", callback=_check_device, help="Where the critics run.")
    ] = "auto",
    task: Annotated[list[str] | None, typer.Option(
        "--task", metavar="TASK", help="Benchmark task; repeat for several (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic tasks.")] = 0,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show progress on stderr.")] = True,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """Benchmark critics and baselines (BM25, dense, first-k, random) on the task suite."""
    from .bench import run as bench_run

    bench_run.main(quick=quick, out_dir=out_dir, models=list(model or []),
                   lengths=list(length) if length else None, device=device,
                   tasks=list(task) if task else None, seed=seed, progress=progress)
    _print_note(f"benchmark results written to {out_dir}")


# --------------------------------------------------------------------------- serve, mcp


@app.command()
@_handle_errors
def serve(
    host: Annotated[str, typer.Option(
        help="Address to listen on. Anything but loopback without --api-key prints a warning.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8091,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="NAME|PATH",
        help="Critic: a shipped name (mini, small) or a critic directory (default: mini on CPU, "
             "small on CUDA).")] = None,
    device: Annotated[str, typer.Option(
        metavar="auto|cpu|cuda[:N]", callback=_check_device, help="Where the critic runs.")] = "auto",
    max_batch_tokens: Annotated[int | None, typer.Option(
        min=1, metavar="TOKENS", help="Concurrent requests are batched together on the device up to "
                                      "this many tokens (default: the critic's batch).")] = None,
    max_body_mb: Annotated[float, typer.Option(
        min=0.001, metavar="MB", help="Request bodies larger than this get 413.")] = 64.0,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes, each with its own copy of the critic.")] = 1,
    api_key: Annotated[str | None, typer.Option(
        envvar="CPRS_API_KEY", show_envvar=True, show_default=False,
        help="Require 'Authorization: Bearer KEY' on every request.")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """Serve the HTTP API: cprs's POST /v1/compress and the official POST /qwen_long_compress_server."""
    from .extras import require

    require("serve")
    from .serve.server import ServeSettings, run_server

    run_server(ServeSettings(host=host, port=port, model=model, device=device,
                             max_batch_tokens=max_batch_tokens, max_body_mb=max_body_mb,
                             workers=workers, api_key=api_key), say=_print_note)


@app.command("mcp")
@_handle_errors
def mcp_server(
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="NAME|PATH", help="Critic to load (default: mini on CPU, small on CUDA).")
    ] = None,
    device: Annotated[str, typer.Option(
        metavar="auto|cpu|cuda[:N]", callback=_check_device, help="Where the critic runs.")] = "auto",
    base_url: Annotated[str | None, typer.Option(
        metavar="URL", help="Compress on a running 'cprs serve' instead of loading a critic here.")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="CPRS_API_KEY", show_envvar=True, show_default=False,
        help="API key of the server at --base-url.")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """Run a Model Context Protocol server on stdio with one tool, compress."""
    from .extras import require

    require("mcp")
    from .adapters.mcp import run_stdio

    run_stdio(model=model, device=device, base_url=base_url, api_key=api_key)


# --------------------------------------------------------------------------- entry point


def _reserve_standard_fds() -> None:
    """Fill descriptors 0-2 with /dev/null where the shell closed them (`<&-`, `>&-`).

    Python then sets sys.stdin / sys.stdout to None (cprs reports that as a closed stream), but
    the next file opened would reuse the free descriptor: a temporary output file on fd 1 would
    receive whatever a library prints. With stderr closed, messages are dropped; exit codes
    still tell."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                new = os.open(os.devnull, os.O_RDWR)
                if new != fd:
                    os.dup2(new, fd)
                    os.close(new)
            except OSError:
                pass
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (`cprs = cprs_cli.cli:main`)."""
    _reserve_standard_fds()
    try:
        app(args=list(argv) if argv is not None else None, prog_name=PROG)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{code}\n")
        return 1
    return EXIT_OK


def run() -> None:
    sys.exit(main())


__all__ = ["app", "main", "expand_inputs", "InputItem", "EXIT_USAGE", "EXIT_MODEL"]
