"""Errors that reach the user as one line and an exit code (never a traceback)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_EXTRA = 2  # like a usage error: the command cannot run as installed (5 is --fail-on-empty)


class CprsError(Exception):
    """Base class: `str(err)` is the one-line message shown to the user."""

    exit_code = 1

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InputError(CprsError):
    """An input could not be read (missing, corrupt, encrypted, binary, empty)."""

    exit_code = EXIT_INPUT


class ModelError(CprsError):
    """A critic could not be found, verified or loaded."""

    exit_code = EXIT_MODEL


class OutputError(CprsError):
    """A result could not be written (disk full, read-only folder, stdout closed or full).

    Exit 3, like an input that failed: the run did not deliver every result."""

    exit_code = EXIT_INPUT


class UsageError(CprsError):
    """Options that contradict each other or are out of range.

    The library words its messages with parameter names ("rate must be in (0, 1]") and lists
    them in `params`; the CLI replaces each with its flag ("--rate") when it prints."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, path: str | None = None, params: tuple[str, ...] = ()):
        self.params = tuple(params)
        super().__init__(message, path)


class MissingExtraError(CprsError):
    """A command needs an optional extra that is not installed (`cprs serve` needs
    `cprs-cli[serve]`, `cprs mcp` needs `cprs-cli[mcp]`): exit 2, with the pip command to run."""

    exit_code = EXIT_EXTRA
