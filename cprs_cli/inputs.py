"""Batch inputs: command-line paths and directories → the documents to compress.

Directory walking (`--recursive`, `--glob`), de-duplication by real path, and the check that an
output never lands on an input (by real path and by inode, so hard links count too).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .output import OUTPUT_SUFFIX

KNOWN_SUFFIXES = (".txt", ".md", ".pdf", ".docx", ".text", ".markdown", ".rst")
# names that `--output-dir` writes; never picked up again as inputs when walking a directory
OUTPUT_NAME_SUFFIXES = tuple(OUTPUT_SUFFIX.values())



@dataclass(frozen=True)
class InputItem:
    """One document to compress: a file (with the root it was found under) or stdin."""

    path: Path | None  # None: stdin
    root: Path | None  # directory mirrored by --output-dir (None for stdin)
    display: str  # how messages name it

    @property
    def is_stdin(self) -> bool:
        return self.path is None


def _matches(name: str, pattern: str) -> bool:
    if name.startswith("."):
        return False
    if name.endswith(OUTPUT_NAME_SUFFIXES):
        return False
    if not fnmatch.fnmatch(name, pattern):
        return False
    if pattern == "*":  # the default: only file types cprs can read
        return name.lower().endswith(KNOWN_SUFFIXES)
    return True


def _walk(directory: Path, recursive: bool, pattern: str, skip: Path | None) -> list[Path]:
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(directory):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames
                if not d.startswith(".") and not (skip is not None and _same(here / d, skip)))
            found.extend(here / f for f in sorted(filenames)
                         if _matches(f, pattern) and (here / f).is_file())
    else:
        found = sorted(p for p in directory.iterdir() if p.is_file() and _matches(p.name, pattern))
    return found


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
                  skip_dir: Path | None = None) -> tuple[list[InputItem], list[tuple[str, str]]]:
    """Paths and directories from the command line → the documents to compress, plus
    (name, reason) for arguments that yield nothing (missing path, empty directory)."""
    items: list[InputItem] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    stdin_given = False
    for arg in args or ["-"]:
        if arg == "-":
            if stdin_given:
                raise UsageError("'-' (stdin) is given more than once")
            stdin_given = True
            items.append(InputItem(None, None, "<stdin>"))
            continue
        path = Path(arg)
        if path.is_dir():
            files = _walk(path, recursive, pattern, skip_dir)
            if not files:
                what = f"matching {pattern!r}" if pattern != "*" else "with a known suffix (" + \
                    " ".join(KNOWN_SUFFIXES) + ")"
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
    return items, problems
