"""The real `cprs` command line with a stand-in critic, for process-level bad-input cases.

Closed descriptors, /dev/full, signals, two processes at once and full or read-only file systems
are properties of the process, not of the critic, and each such case needs a process of its own.
Loading torch takes seconds per process; this stand-in needs no torch, so those cases stay
fast. Everything else (argument parsing, ingestion, output paths, writing, errors, exit codes)
is the real code. The stand-in keeps the whole document, so a result's expected bytes are known:
`expected_text(path)`.

Environment: CPRS_FAKE_DELAY (seconds to spend per document, default 0); CPRS_FAKE_TRACE (a file
to which the name of every document compressed is appended, so a test can tell how far a run got).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cprs_cli import cli  # noqa: E402
from cprs_cli.compressor import ItemError  # noqa: E402
from cprs_cli.result import CompressionResult, Span, Stats  # noqa: E402


class KeepEverything:
    """Compressor stand-in: every document is kept whole, one at a time."""

    def compress_many(self, items, options, progress=None):
        """As `Compressor.compress_many`: an item may be a callable that reads it, and a failure to
        read is that item's ItemError."""
        for index, item in enumerate(items):
            try:
                doc = item() if callable(item) else item
            except Exception as err:  # noqa: BLE001
                yield ItemError(index, "<unread>", str(err), err)
                continue
            yield self._keep(doc, options)

    def _keep(self, doc, options) -> CompressionResult:
        delay = float(os.environ.get("CPRS_FAKE_DELAY", "0"))
        end = time.monotonic() + delay
        while time.monotonic() < end:  # short sleeps: signals are handled between them
            time.sleep(0.01)
        text = doc.text
        trace = os.environ.get("CPRS_FAKE_TRACE")
        if trace:
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write(doc.source + "\n")
        n = max(1, len(text.split()))
        return CompressionResult(
            source=doc.source, query=options.query, instruction="keep everything",
            granularity=str(options.granularity), model_name="fake",
            model_sha256="0" * 64, spans=[Span(0, len(text), text, 1.0)], compressed_text=text,
            stats=Stats(input_tokens=n, output_tokens=n, ratio=1.0, windows=1, seconds=delay,
                        device="cpu"))


def expected_text(path: Path) -> bytes:
    """What `--format text` writes for a plain UTF-8 input under this stand-in."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return (text.rstrip("\n") + "\n").encode("utf-8")


if __name__ == "__main__":
    cli._load_compressor = lambda *args, **kwargs: KeepEverything()
    sys.exit(cli.main())
