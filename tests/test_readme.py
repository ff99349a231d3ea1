"""The `--help` texts quoted in the README are the CLI's own, so they cannot drift.

A README block that quotes help is a fenced block whose first line is `$ cprs ... --help`; the
rest must be what that command prints, rendered at a fixed width of 100 columns (colour codes
and trailing spaces dropped). After changing an option, refresh the blocks with

    .venv/bin/python tests/test_readme.py --write
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
WIDTH = 100
# ```text / $ cprs compress --help / ... / ```
BLOCK = re.compile(r"^```text\n\$ (cprs [^\n]*--help)\n(.*?)^```$", re.S | re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def render_help(command: str) -> str:
    """What `command` (e.g. "cprs compress --help") prints, at WIDTH columns, normalised."""
    import typer.rich_utils
    from typer.testing import CliRunner

    from cprs_cli.cli import app

    width, typer.rich_utils.MAX_WIDTH = typer.rich_utils.MAX_WIDTH, WIDTH
    try:
        result = CliRunner().invoke(app, shlex.split(command)[1:], prog_name="cprs", color=False)
    finally:
        typer.rich_utils.MAX_WIDTH = width
    assert result.exit_code == 0, result.output
    return normalise(result.stdout)


def normalise(text: str) -> str:
    lines = [line.rstrip() for line in ANSI.sub("", text).splitlines()]
    return "\n".join(lines).strip("\n") + "\n"


def quoted_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def test_readme_quotes_help():
    assert {cmd for cmd, _ in quoted_blocks(README.read_text(encoding="utf-8"))} >= {
        "cprs compress --help", "cprs bench --help"}


@pytest.mark.parametrize("command, quoted", quoted_blocks(README.read_text(encoding="utf-8")))
def test_quoted_help_is_the_clis(command, quoted):
    assert normalise(quoted) == render_help(command), (
        f"README's `{command}` differs from the CLI's; run: .venv/bin/python tests/test_readme.py --write")


def write() -> None:
    """Rewrite every quoted help block of the README with the CLI's current output."""
    text = README.read_text(encoding="utf-8")
    text = BLOCK.sub(lambda m: f"```text\n$ {m.group(1)}\n{render_help(m.group(1))}```", text)
    README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    write()
