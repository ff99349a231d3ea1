"""The bad-input corpus as tests: one parametrised test per case of cases.py.

For every case: the documented exit code; the expected message in a `cprs: error:` line (and no
error line when the case succeeds); no traceback; every error on one line; inputs byte-for-byte
unchanged and special files still of their type; no temporary file left under the case's
directory; and the case's own check (outputs whole, device nodes kept, code not run, ...).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from cases import CASES, FAKE_CLI, MODEL, Case, Ctx, Result, Run
from typer.testing import CliRunner

from cprs_cli.cli import app

TEMP_NAME = re.compile(r"^\..*\.tmp$")


def snapshot(root: Path) -> dict[str, tuple]:
    """Type of every entry under `root`, and the sha256 of every regular file (an output folder
    placed inside the input tree on purpose, `cprs-out`, is left out)."""
    seen: dict[str, tuple] = {}
    if not root.exists():
        return seen
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "cprs-out"]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            seen[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), digest)
    return seen


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if TEMP_NAME.match(p.name)]


def run_inproc(ctx: Ctx, spec: Run) -> Result:
    args = [ctx.model if a == MODEL else a for a in spec.args]
    r = CliRunner().invoke(app, args, input=spec.stdin, catch_exceptions=False)
    return Result(r.exit_code, r.stdout_bytes, r.stderr)


def run_proc(ctx: Ctx, spec: Run) -> Result:
    argv = ["python", str(FAKE_CLI), *spec.args]
    script = " ".join(shlex.quote(a) for a in argv) + " " + spec.shell
    env = dict(os.environ, PATH=os.path.dirname(os.sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.run(["bash", "-c", script], input=spec.stdin, capture_output=True, cwd=ctx.dir,
                       env=env, timeout=120)
    return Result(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, tiny_encoder_critic_dir, tiny_hybrid_critic_dir):
    if case.skip is not None and (reason := case.skip()):
        pytest.skip(reason)
    ctx = Ctx(tmp_path / "case", str(tiny_encoder_critic_dir), str(tiny_hybrid_critic_dir))
    ctx.dir.mkdir()
    spec = case.build(ctx)
    before = snapshot(ctx.inp)

    if case.runner == "custom":
        r = spec
    elif case.runner == "proc":
        r = run_proc(ctx, spec)
    else:
        r = run_inproc(ctx, spec)

    assert isinstance(r, Result)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("cprs: error:")]
    assert r.exit == case.exit, (r.exit, r.stderr)
    if case.message is not None:
        assert any(case.message in line for line in errors), (case.message, r.stderr)
    if case.exit == 0:
        assert not errors, r.stderr
    for line in r.stderr.splitlines():  # nothing but one-line messages (and the fake's silence)
        assert line.startswith("cprs: ") or not line.strip() or case.exit == 0, r.stderr
    assert snapshot(ctx.inp) == before, "an input was modified"
    assert leftovers(ctx.dir) == [], "temporary files left behind"
    if case.check is not None:
        case.check(ctx, r)


def test_corpus_size_and_coverage():
    """The issue asks for at least 80 cases across these areas."""
    areas = {c.area for c in CASES}
    assert len(CASES) >= 80, len(CASES)
    assert {"pdf", "docx", "text", "flags", "model", "batch", "pipes", "special", "signals", "names",
            "budget", "html", "url", "messages", "empty"} <= areas
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
