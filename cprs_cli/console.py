"""What a person reads on stderr while `cprs` runs: one-line messages, the progress display and the
stats table.

Everything here goes to stderr, so stdout carries only results (`cprs compress ... | llm` stays
clean). On a terminal rich draws the progress and the table; elsewhere messages are plain lines,
never wrapped. `quiet_libraries` keeps what the libraries cprs loads write to stderr (tqdm bars
such as transformers' GGUF de-quantisation, their notes) off it under `--quiet`.

The CLI's own module: the library raises, and `cli.py` prints through here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .result import RUN_WARNINGS, CompressionResult

PROG = "cprs"


def err_console() -> Console:
    # resolved per call: sys.stderr may be swapped (tests, redirection)
    return Console(stderr=True, highlight=False)


# --------------------------------------------------------------------------- messages


def one_line(message: object) -> str:
    # names from a non-UTF-8 file system carry surrogate escapes; show them as \udcXX
    text = " ".join(str(message).split()) or "unknown error"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def write_stderr(text: str) -> None:
    """Messages never fail the run: a closed or full stderr loses them, the exit code stays."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def print_error(message: str, console: Console | None = None) -> None:
    """One line on stderr: `cprs: error: <message>` (never wrapped, never rich markup)."""
    line = f"{PROG}: error: {one_line(message)}"
    if console is not None and console.is_terminal:
        console.print(line, markup=False, highlight=False, soft_wrap=True, style="red")
    else:
        write_stderr(line + "\n")


def print_note(message: str, console: Console | None = None) -> None:
    line = f"{PROG}: {one_line(message)}"
    if console is not None and console.is_terminal:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        write_stderr(line + "\n")


# a document's own warnings that are said for the first such document of a run only: a batch of
# Chinese filings gets one language warning, not one per file (each JSON result still has it)
ONCE_PER_RUN = frozenset({"language"})


def print_warnings(result: CompressionResult, display: str, said: set[str],
                   wording: Callable[[dict[str, str]], str] | None = None) -> None:
    """`cprs: warning: ...` lines for what the run changed from what was asked: a run-level
    warning (the query cut, the batch size clamped) once per run, the language warning once per
    run naming the first document it concerns, a document's other warnings (nothing kept, finer
    units) once for it. `wording(warning)` gives the line's text (the CLI names its flags
    there); by default the warning's message."""
    for w in result.stats.warnings:
        code = w["code"]
        if code in RUN_WARNINGS or code in ONCE_PER_RUN:
            if code in said:
                continue
            said.add(code)
        text = wording(w) if wording is not None else w["message"]
        print_note(f"warning: {text}" if code in RUN_WARNINGS else f"warning: {display}: {text}")


SHOWN_SKIPPED = 3  # names a skipped-files note lists before "and N more"


def skipped_note(paths: Sequence[Path]) -> str:
    """One line for the files that directories held but cprs does not read by their type."""
    names = ", ".join(display_source(str(p)) for p in paths[:SHOWN_SKIPPED])
    more = f" and {len(paths) - SHOWN_SKIPPED} more" if len(paths) > SHOWN_SKIPPED else ""
    files = "file" if len(paths) == 1 else "files"
    return (f"skipped {len(paths)} {files} of a type cprs does not read: {names}{more} "
            "(name a file to read it anyway, or pick files with --glob)")


@contextlib.contextmanager
def quiet_libraries(enabled: bool) -> Iterator[None]:
    """While the body runs, and only if `enabled` (--quiet): what the libraries cprs loads write to
    stderr (tqdm progress bars, such as transformers' GGUF de-quantisation, and their notes) goes
    to /dev/null. Python-level writes (sys.stderr), which is where tqdm and print write; the
    exceptions the body raises are printed by the CLI after it, to the real stderr."""
    if not enabled:
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stderr(devnull):
        yield


# --------------------------------------------------------------------------- progress


def _progress(console: Console) -> Any:
    """A transient rich Progress: spinner, what, bar, done/total, elapsed, remaining; a stage (a
    task without a total) shows no count and no time left. Imported here, so `cprs --help` does
    not pay for it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Count(MofNCompleteColumn):
        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    class Remaining(TimeRemainingColumn):
        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    # stdout carries results: only stderr is routed above the display
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), Count(),
                    TimeElapsedColumn(), Remaining(), console=console, transient=True,
                    redirect_stdout=False)


class ProgressUI:
    """Progress on stderr while a run works, on a terminal only (and not with --quiet or
    --no-progress): a line for the stage under way (reading a file, loading the critic), a bar
    of files for a batch and a bar of the critic's windows. It vanishes when the run ends."""

    def __init__(self, console: Console, enabled: bool, n_files: int):
        self.console = console
        self.enabled = enabled and console.is_terminal
        self.n_files = n_files
        self._progress: Any = None
        self._files: Any = None
        self._windows: Any = None

    def __enter__(self) -> ProgressUI:
        if self.enabled:
            self._progress = _progress(self.console)
            self._progress.start()
            if self.n_files > 1:
                self._files = self._progress.add_task("files", total=self.n_files)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextlib.contextmanager
    def stage(self, what: str, name: str = "") -> Iterator[Callable[[int, int], None] | None]:
        """Show what is under way ("reading", "loading critic") and on what (a long name keeps
        its end) while the body runs. Yields a `progress(done, total)` callback that turns the
        stage line into a bar (the pages of a PDF being extracted), or None when nothing is
        shown."""
        if self._progress is None:
            yield None
            return
        task = self._progress.add_task(f"{what} {_shorten(name, 48)}".rstrip(), total=None)

        def advance(done: int, total: int) -> None:
            if self._progress is not None:
                self._progress.update(task, completed=done, total=total)

        try:
            yield advance
        finally:
            if self._progress is not None:
                self._progress.remove_task(task)

    def callback(self) -> Callable[[int, int], None] | None:
        """The critic's `progress(done, total)` (windows), or None when nothing is shown."""
        if not self.enabled:
            return None

        def on_windows(done: int, total: int) -> None:
            if self._progress is None:
                return
            if self._windows is None:
                self._windows = self._progress.add_task("critic windows", total=total)
            self._progress.update(self._windows, completed=done, total=total)

        return on_windows

    def done_file(self) -> None:
        if self._progress is not None and self._files is not None:
            self._progress.advance(self._files)

    def print_error(self, message: str) -> None:
        print_error(message, self.console if self._progress is not None else None)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


# --------------------------------------------------------------------------- stats


def stats_table(results: Sequence[CompressionResult], title: str | None = None,
                model_load: float | None = None) -> Table:
    """A rich table: one row per document, and a total row when there are several. Reading (the
    `ingest` timing) and compressing (`seconds`) are columns of their own; loading the critic,
    once for the run, is the caption."""
    table = Table(title=title, show_footer=len(results) > 1, header_style="bold",
                  footer_style="bold",
                  caption=None if model_load is None else f"critic loaded in {model_load:.2f} s")
    total_in = sum(r.stats.input_tokens for r in results)
    total_out = sum(r.stats.output_tokens for r in results)
    total_windows = sum(r.stats.windows for r in results)
    reads = [r.stats.timings.get("ingest") for r in results]
    total_read = sum(t for t in reads if t is not None)
    total_seconds = sum(r.stats.seconds for r in results)
    devices = sorted({r.stats.device for r in results})

    table.add_column("source", footer=f"total ({len(results)})", overflow="fold")
    table.add_column("input\ntokens", justify="right", footer=f"{total_in:,}", no_wrap=True)
    table.add_column("output\ntokens", justify="right", footer=f"{total_out:,}", no_wrap=True)
    table.add_column("ratio", justify="right", footer=_ratio(total_in, total_out), no_wrap=True)
    table.add_column("windows", justify="right", footer=f"{total_windows:,}", no_wrap=True)
    table.add_column("read\nseconds", justify="right", footer=f"{total_read:.2f}", no_wrap=True)
    table.add_column("compress\nseconds", justify="right", footer=f"{total_seconds:.2f}", no_wrap=True)
    table.add_column("device", footer=", ".join(devices), no_wrap=True)
    for r, read in zip(results, reads):
        s = r.stats
        table.add_row(display_source(r.source), f"{s.input_tokens:,}", f"{s.output_tokens:,}",
                      f"{s.ratio:.1f}x", f"{s.windows:,}", "–" if read is None else f"{read:.2f}",
                      f"{s.seconds:.2f}", s.device)
    return table


def display_source(source: str) -> str:
    """A path below the working directory is shown relative to it (shorter table rows); bytes
    of a non-UTF-8 name are shown as \\udcXX, so the table measures what it prints."""
    shown = source
    if not (source.startswith("<") or not os.path.isabs(source)):
        try:
            rel = os.path.relpath(source)
        except ValueError:
            rel = os.pardir
        shown = source if rel.startswith(os.pardir) else rel
    return shown.encode("utf-8", "backslashreplace").decode("utf-8")


def _ratio(input_tokens: int, output_tokens: int) -> str:
    return f"{input_tokens / max(output_tokens, 1):.1f}x"
