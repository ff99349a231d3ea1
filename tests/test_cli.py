"""The `cprs` command line, in-process (typer CliRunner) and as a real subprocess.

The tiny critics of conftest.py tag at random, so these tests check behaviour (streams, formats,
files, exit codes, messages), never what is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cprs_cli import cli
from cprs_cli.batch import expand_inputs
from cprs_cli.cli import app
from cprs_cli.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
SCHEMA_KEYS = {"schema_version", "source", "query", "instruction", "granularity", "model", "offsets", "spans",
               "compressed_text", "stats", "queries", "empty"}
TEXT_A = ("Apollo 11 landed on the Moon on 20 July 1969. Neil Armstrong and Buzz Aldrin walked on the "
          "surface. Michael Collins stayed in orbit aboard Columbia. The crew returned on 24 July.\n")
TEXT_B = ("The Saturn V rocket had three stages. The first stage used five F-1 engines. "
          "The launch took place at Kennedy Space Center.\n\nIt was a clear morning in Florida.\n")


# --------------------------------------------------------------------------- helpers


def invoke(*args: str, input: str | bytes | None = None):
    """Run the app in-process; stdout and stderr are kept apart."""
    runner = CliRunner()
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def run_cprs(*args: str, input: bytes | None = None, cwd: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m cprs_cli ...` (what the `cprs` console script runs) as a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("CPRS_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cprs_cli", *[str(a) for a in args]], input=input,
                          capture_output=True, cwd=cwd or REPO, env=env, timeout=timeout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line_error(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("cprs: error:")]
    assert lines, stderr
    for needle in needles:
        assert any(needle in line for line in lines), (needle, stderr)


def write_docx(path: Path, paragraphs: list[str]) -> Path:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    d.save(str(path))
    return path


@pytest.fixture
def model(tiny_encoder_critic_dir) -> str:
    return str(tiny_encoder_critic_dir)


@pytest.fixture
def docs(tmp_path) -> Path:
    """A small input tree: good files at two levels."""
    root = tmp_path / "docs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text(TEXT_A)
    (root / "b.md").write_text("# Rocket\n\n" + TEXT_B)
    (root / "sub" / "c.txt").write_text(TEXT_B)
    (root / "sub" / "deeper" / "d.rst").write_text(TEXT_A)
    (root / "notes.xyz").write_text("a,b\n1,2\n")  # unknown suffix: skipped by the default glob
    (root / ".hidden.txt").write_text(TEXT_A)  # hidden: skipped
    return root


# --------------------------------------------------------------------------- help & version


def test_help_works():
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("compress", "models", "bench"):
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", ["compress", "models", "bench"])
def test_command_help_works(cmd):
    r = invoke(cmd, "--help")
    assert r.exit_code == 0, r.stderr
    assert "Usage" in r.stdout


def test_compress_help_has_examples_and_options():
    r = invoke("compress", "--help")
    assert r.exit_code == 0
    for word in ("Examples", "--query", "--granularity", "--rate", "--max-tokens", "--threshold",
                 "--output-dir", "--format", "--recursive", "--glob", "--password", "--quiet",
                 "Exit codes"):
        assert word in r.stdout, word


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0
    assert r.stdout.startswith("cprs ")


def test_no_arguments_shows_help():
    r = invoke()
    assert r.exit_code in (0, 2)
    assert "compress" in r.stdout + r.stderr


def test_subprocess_help_and_version():
    r = run_cprs("--version")
    assert r.returncode == 0
    assert r.stdout.decode().startswith("cprs ")
    r = run_cprs("compress", "--help")
    assert r.returncode == 0
    assert b"Examples" in r.stdout


# --------------------------------------------------------------------------- models


def test_models_table():
    r = invoke("models")
    assert r.exit_code == 0, r.stderr
    assert "mini" in r.stdout and "small" in r.stdout
    assert "encoder" in r.stdout and "hybrid" in r.stdout


def test_models_json():
    from cprs_cli.critic.registry import list_critics

    r = invoke("models", "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert [d["name"] for d in data] == [c.name for c in list_critics()]
    for d in data:
        assert {"name", "kind", "installed", "base", "description", "status", "delta_path"} <= set(d)
        assert d["kind"] in ("encoder", "hybrid")
        assert isinstance(d["installed"], bool)


# --------------------------------------------------------------------------- compress: streams & formats


def test_stdin_to_stdout_pipe_subprocess(model):
    r = run_cprs("compress", "--query", "When did Apollo 11 land?", "--model", model,
                 input=TEXT_A.encode())
    stderr = r.stderr.decode()
    assert r.returncode == 0, stderr
    assert "Traceback" not in stderr
    out = r.stdout.decode()
    # what is kept comes from the input (random critic: any subset); nothing else is on stdout
    for piece in out.replace("…", "\n").split("\n"):
        assert piece.strip() in TEXT_A
    assert "ratio" not in out and "┃" not in out
    # the stats table is on stderr
    assert "<stdin>" in stderr and "ratio" in stderr


def test_stdin_dash_and_quiet(model):
    r = invoke("compress", "-", "-q", "who walked?", "--model", model, "--quiet", input=TEXT_A)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""


def test_json_format_schema(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "When did it land?", "--model", model, "--format", "json",
               "--granularity", "word")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == SCHEMA_KEYS
    assert data["schema_version"] == 1
    assert data["source"] == str(src)
    assert data["query"] == "When did it land?"
    assert data["granularity"] == "word"
    assert set(data["model"]) == {"name", "sha256"}
    assert {"input_tokens", "output_tokens", "ratio", "windows", "seconds", "device"} <= set(data["stats"])
    text = src.read_text()
    for span in data["spans"]:
        assert set(span) >= {"start", "end", "text", "score"}
        assert text[span["start"]:span["end"]] == span["text"]


def test_task_and_instruction(model, tmp_path):
    from cprs_cli.instructions import TASKS

    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", model, "--format", "json", "--task", "answers")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["instruction"] == TASKS["answers"]
    r = invoke("compress", src, "-q", "q", "--model", model, "--format", "json",
               "--instruction", "Keep the dates.")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["instruction"] == "Keep the dates."
    r = invoke("compress", src, "-q", "q", "--model", model, "--task", "facts", "--instruction", "x")
    assert r.exit_code == 2
    assert_one_line_error(r.stderr, "--instruction")


def test_jsonl_for_two_files(model, docs):
    a, b = docs / "a.txt", docs / "b.md"
    r = invoke("compress", a, b, "-q", "q", "--model", model, "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    objs = [json.loads(line) for line in lines]
    assert [o["source"] for o in objs] == [str(a), str(b)]
    assert all(set(o) == SCHEMA_KEYS for o in objs)


def test_json_with_several_inputs_is_usage_error(model, docs):
    r = invoke("compress", docs / "a.txt", docs / "b.md", "-q", "q", "--model", model, "--format", "json")
    assert r.exit_code == 2
    assert_one_line_error(r.stderr, "jsonl")
    assert r.stdout == ""


def test_text_for_several_files_has_headers(model, docs):
    r = invoke("compress", docs / "a.txt", docs / "b.md", "-q", "q", "--model", model,
               "--rate", "1.0", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"==> {docs / 'a.txt'} <==\n")
    assert f"\n==> {docs / 'b.md'} <==\n" in r.stdout


def test_hybrid_critic(tiny_hybrid_critic_dir, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", tiny_hybrid_critic_dir, "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert set(json.loads(r.stdout)) == SCHEMA_KEYS


def test_pdf_and_docx_inputs(model, tmp_path):
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, TEXT_A.strip())
    pdf_path = tmp_path / "report.pdf"
    pdf.output(str(pdf_path))
    docx_path = write_docx(tmp_path / "memo.docx", [TEXT_B.strip()])
    r = invoke("compress", pdf_path, docx_path, "-q", "q", "--model", model, "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


# --------------------------------------------------------------------------- compress: files


def test_output_file_is_written_atomically(model, tmp_path, monkeypatch):
    from cprs_cli import output

    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    out = tmp_path / "out" / "result.json"
    out.parent.mkdir()
    out.write_text("stale contents\n")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(output.os, "replace",
                        lambda a, b: (replaced.append((Path(a), Path(b))), real_replace(a, b)))
    r = invoke("compress", src, "-q", "q", "--model", model, "--format", "json", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # results went to the file
    assert set(json.loads(out.read_text())) == SCHEMA_KEYS
    assert len(replaced) == 1 and replaced[0][1] == out and replaced[0][0].parent == out.parent
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]  # no temp files left


def test_output_file_subprocess_matches_stdout(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    out = tmp_path / "o.txt"
    r1 = run_cprs("compress", src, "-q", "q", "--model", model, "--quiet", "-o", out)
    assert r1.returncode == 0, r1.stderr
    assert r1.stdout == b"" and r1.stderr == b""
    r2 = invoke("compress", src, "-q", "q", "--model", model, "--quiet")
    assert out.read_text() == r2.stdout


def test_output_onto_input_is_refused(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    before = digest(src)
    r = invoke("compress", src, "-q", "q", "--model", model, "-o", src)
    assert r.exit_code == 2
    assert_one_line_error(r.stderr, "input")
    assert digest(src) == before


def test_output_to_missing_directory_fails_cleanly(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", model, "-o", tmp_path / "nope" / "out.txt")
    assert r.exit_code != 0
    assert_one_line_error(r.stderr, "out.txt")
    assert not (tmp_path / "nope").exists()


def test_output_dir_mirrors_tree(model, docs, tmp_path):
    out = tmp_path / "compressed"
    before = tree_digests(docs)
    r = invoke("compress", docs, "-r", "-q", "q", "--model", model, "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(["a.txt.cprs.txt", "b.md.cprs.txt", "sub/c.txt.cprs.txt",
                              "sub/deeper/d.rst.cprs.txt"])
    assert r.stdout == ""
    assert tree_digests(docs) == before


def test_output_dir_json_and_not_recursive(model, docs, tmp_path):
    out = tmp_path / "compressed"
    r = invoke("compress", docs, "-q", "q", "--model", model, "--output-dir", out, "--format", "json")
    assert r.exit_code == 0, r.stderr
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == ["a.txt.cprs.json", "b.md.cprs.json"]
    assert set(json.loads((out / "a.txt.cprs.json").read_text())) == SCHEMA_KEYS


def test_output_dir_inside_input_tree_is_not_reread(model, docs):
    out = docs / "compressed"
    for _ in range(2):
        r = invoke("compress", docs, "-r", "-q", "q", "--model", model, "--output-dir", out, "--quiet")
        assert r.exit_code == 0, r.stderr
    assert not any(".cprs.txt.cprs" in p.name for p in out.rglob("*"))


def test_glob_selects_files(model, docs, tmp_path):
    out = tmp_path / "o"
    r = invoke("compress", docs, "-r", "--glob", "*.txt", "-q", "q", "--model", model,
               "--output-dir", out, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
        ["a.txt.cprs.txt", "sub/c.txt.cprs.txt"]


# --------------------------------------------------------------------------- compress: bad inputs


def _bad_file(kind: str, tmp_path: Path) -> Path:
    if kind == "corrupt-pdf":
        p = tmp_path / "broken.pdf"
        p.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage garbage\n%%EOF")
    elif kind == "junk-docx":
        p = tmp_path / "junk.docx"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("random.bin", os.urandom(256))
            z.writestr("notes.txt", "this is not word")
        p.write_bytes(buf.getvalue())
    elif kind == "binary":
        p = tmp_path / "blob.txt"
        p.write_bytes(bytes(range(256)) * 8)
    elif kind == "empty":
        p = tmp_path / "empty.txt"
        p.write_bytes(b"")
    elif kind == "missing":
        p = tmp_path / "does-not-exist.txt"
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p


BAD_KINDS = ["corrupt-pdf", "junk-docx", "binary", "empty", "missing"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_in_process(kind, model, tmp_path):
    bad = _bad_file(kind, tmp_path)
    before = digest(bad) if bad.exists() else None
    r = invoke("compress", bad, "-q", "q", "--model", model)
    assert r.exit_code == 3, (r.stdout, r.stderr)
    assert_one_line_error(r.stderr, bad.name)
    assert r.stdout == ""
    if before is not None:
        assert digest(bad) == before


@pytest.mark.parametrize("kind", ["corrupt-pdf", "junk-docx", "binary"])
def test_bad_input_subprocess(kind, model, tmp_path):
    bad = _bad_file(kind, tmp_path)
    r = run_cprs("compress", bad, "-q", "q", "--model", model)
    stderr = r.stderr.decode()
    assert r.returncode == 3, stderr
    assert_one_line_error(stderr, bad.name)


def test_empty_stdin(model):
    r = invoke("compress", "-q", "q", "--model", model, input=b"")
    assert r.exit_code == 3
    assert_one_line_error(r.stderr, "<stdin>")


def test_directory_batch_with_one_bad_file(model, docs, tmp_path):
    bad = _bad_file("corrupt-pdf", docs / "sub")
    assert bad.name == "broken.pdf"
    before = tree_digests(docs)
    out = tmp_path / "out"
    r = run_cprs("compress", docs, "-r", "-q", "q", "--model", model, "--output-dir", out)
    stderr = r.stderr.decode()
    assert r.returncode == 3, stderr
    assert_one_line_error(stderr, "broken.pdf")
    assert sum("cprs: error:" in line for line in stderr.splitlines()) == 1
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(["a.txt.cprs.txt", "b.md.cprs.txt", "sub/c.txt.cprs.txt",
                              "sub/deeper/d.rst.cprs.txt"])
    assert not (out / "sub" / "broken.pdf.cprs.txt").exists()
    assert tree_digests(docs) == before


def test_batch_to_one_stream_keeps_going(model, docs, tmp_path):
    missing = tmp_path / "gone.md"
    r = invoke("compress", docs / "a.txt", missing, docs / "b.md", "-q", "q", "--model", model,
               "--format", "jsonl")
    assert r.exit_code == 3
    assert_one_line_error(r.stderr, "gone.md")
    assert [json.loads(x)["source"] for x in r.stdout.splitlines()] == [str(docs / "a.txt"),
                                                                        str(docs / "b.md")]


def test_empty_directory(model, tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("compress", tmp_path / "empty", "-q", "q", "--model", model)
    assert r.exit_code == 3
    assert_one_line_error(r.stderr, "empty")


# --------------------------------------------------------------------------- compress: usage & model errors


def test_unknown_flag_is_usage_error():
    r = invoke("compress", "-q", "q", "--no-such-flag", input="x")
    assert r.exit_code == 2
    assert "Traceback" not in r.stderr
    # one line, like every other error (not Click's multi-line box)
    assert r.stderr.splitlines() == [
        "cprs: error: No such option: --no-such-flag (see 'cprs compress -h')"]


def test_parse_errors_are_one_line():
    for args in (["compress", "-q", "q", "--threshold", "2"], ["compress", "x.txt"], ["nosuchcommand"]):
        r = invoke(*args)
        assert r.exit_code == 2, args
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("cprs: error: "), (args, r.stderr)


def test_unknown_flag_subprocess():
    r = run_cprs("compress", "-q", "q", "--no-such-flag", input=b"x")
    assert r.returncode == 2
    assert b"Traceback" not in r.stderr
    assert b"--no-such-flag" in r.stderr


@pytest.mark.parametrize("args", [
    ["--rate", "0.5", "--max-tokens", "10"],
    ["--rate", "0"],
    ["--rate", "1.5"],
    ["--max-tokens", "0"],
    ["--granularity", "chapter"],
    ["--format", "yaml"],
    ["--device", "tpu"],
    ["--task", "poems"],
    ["--threshold", "0"],
    ["--threshold", "1"],
    ["--threshold", "1.5"],
    ["--threshold", "-0.1"],
    ["--max-input-mb", "0"],
])
def test_bad_option_values_are_usage_errors(args, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", str(tmp_path / "unused"), *args)
    assert r.exit_code == 2, (args, r.stderr)
    assert "Traceback" not in r.stderr


def test_threshold_help_states_the_open_interval(monkeypatch):
    """The help states the library's rule (0 < P < 1), not click's closed [0.0<=x<=1.0]."""
    # wide enough that rich does not break "0 < P < 1" across lines of its help table
    monkeypatch.setenv("COLUMNS", "200")
    r = invoke("compress", "--help")
    text = " ".join(r.stdout.split())
    assert "0 < P < 1" in text
    assert "0.0<=x<=1.0" not in text


def test_threshold_inside_the_open_interval_is_accepted(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    for value in ("0.001", "0.999"):
        r = invoke("compress", src, "-q", "q", "--model", model, "--threshold", value, "--quiet")
        assert r.exit_code == 0, r.stderr


def test_missing_query_is_usage_error(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src)
    assert r.exit_code == 2


def test_output_and_output_dir_together(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "-o", tmp_path / "x", "--output-dir", tmp_path / "y")
    assert r.exit_code == 2
    assert_one_line_error(r.stderr, "--output-dir")


def test_model_nonexistent_exits_4(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = run_cprs("compress", src, "-q", "q", "--model", "/nonexistent")
    stderr = r.stderr.decode()
    assert r.returncode == 4, stderr
    assert_one_line_error(stderr, "/nonexistent")
    assert len(stderr.strip().splitlines()) == 1
    assert r.stdout == b""


def _default_installed() -> bool:
    from cprs_cli.critic.registry import DEFAULT_CRITIC, list_critics

    return any(c.name == DEFAULT_CRITIC and c.installed for c in list_critics())


def test_no_default_critic_exits_4(tmp_path):
    if _default_installed():
        pytest.skip("a trained default critic is installed")
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = run_cprs("compress", src, "-q", "q")
    stderr = r.stderr.decode()
    assert r.returncode == 4, stderr
    assert_one_line_error(stderr, "no trained default critic is installed")
    r = invoke("compress", "-q", "q", input=TEXT_A)
    assert r.exit_code == 4
    assert "no trained default critic is installed" in r.stderr


def test_unexpected_error_is_one_line_with_debug_hint(tmp_path, monkeypatch):
    class Exploding:
        def compress_many(self, items, options, progress=None):
            raise RuntimeError("kaboom")

    monkeypatch.setattr(cli, "_load_compressor", lambda *a, **k: Exploding())
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q")
    assert r.exit_code == 1
    assert_one_line_error(r.stderr, "kaboom", "--debug")
    r = invoke("compress", src, "-q", "q", "--debug")
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and "kaboom" in r.stderr


def test_unexpected_error_in_one_document_does_not_stop_the_batch(model, docs, tmp_path,
                                                                   monkeypatch):
    """A bug hit by one document is one line naming it; the other documents are written, and
    the exit code is 1 (internal error) rather than 0."""
    from cprs_cli.compressor import Compressor

    real = Compressor.plan

    def flaky(self, text, *args, **kwargs):  # b.md is the one document about a rocket
        if text.startswith("# Rocket"):
            raise TypeError("TextEncodeInput must be Union[...]")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Compressor, "plan", flaky)
    out = tmp_path / "out"
    r = invoke("compress", docs, "-r", "-q", "q", "--model", model, "--output-dir", out, "--quiet")
    assert r.exit_code == 1
    assert_one_line_error(r.stderr, "b.md", "TypeError", "--debug")
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.txt.cprs.txt", "sub/c.txt.cprs.txt", "sub/deeper/d.rst.cprs.txt"]


def test_critic_load_oserror_is_model_error(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise OSError("weights truncated")

    monkeypatch.setattr(cli, "_load_compressor", broken)
    r = invoke("compress", "-q", "q", input=TEXT_A)
    assert r.exit_code == 4
    assert_one_line_error(r.stderr, "weights truncated")


# --------------------------------------------------------------------------- inputs untouched


def test_inputs_unchanged_after_runs(model, docs, tmp_path):
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, TEXT_A.strip())
    pdf.output(str(docs / "r.pdf"))
    write_docx(docs / "m.docx", [TEXT_A.strip(), TEXT_B.strip()])
    before = tree_digests(docs)
    mtimes = {p: p.stat().st_mtime_ns for p in docs.rglob("*") if p.is_file()}
    for fmt in ("text", "json", "jsonl"):
        r = invoke("compress", docs, "-r", "-q", "q", "--model", model, "--format", fmt,
                   "--output-dir", tmp_path / fmt, "--quiet")
        assert r.exit_code == 0, r.stderr
    r = invoke("compress", docs, "-r", "-q", "q", "--model", model, "--format", "jsonl", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 6
    assert tree_digests(docs) == before
    assert {p: p.stat().st_mtime_ns for p in docs.rglob("*") if p.is_file()} == mtimes


# --------------------------------------------------------------------------- pieces


def test_expand_inputs(docs):
    items, problems, _ = expand_inputs([str(docs)], recursive=False, pattern="*")
    assert [i.path.name for i in items] == ["a.txt", "b.md"]
    assert problems == []
    items, _, _ = expand_inputs([str(docs)], recursive=True, pattern="*")
    assert [str(i.path.relative_to(docs)) for i in items] == ["a.txt", "b.md", "sub/c.txt",
                                                              "sub/deeper/d.rst"]
    assert all(i.root == docs for i in items)
    items, _, _ = expand_inputs([str(docs), str(docs / "a.txt")], recursive=False, pattern="*")
    assert len(items) == 2  # a.txt only once
    items, _, _ = expand_inputs([str(docs / "notes.xyz")], recursive=False, pattern="*")
    assert len(items) == 1  # an explicit file is always taken
    items, _, _ = expand_inputs([], recursive=False, pattern="*")
    assert len(items) == 1 and items[0].is_stdin
    _, problems, _ = expand_inputs([str(docs / "nope")], recursive=False, pattern="*")
    assert problems and "no such file" in problems[0][1]
    with pytest.raises(UsageError):
        expand_inputs(["-", "-"], recursive=False, pattern="*")


def test_main_returns_exit_code(capsys):
    assert cli.main(["--version"]) == 0
    assert cli.main(["compress", "--bogus"]) == 2


def test_bench_passes_options(monkeypatch, tmp_path):
    from cprs_cli.evaluation import bench as bench_run

    calls = []
    monkeypatch.setattr(bench_run, "main", lambda out_dir, **kw: calls.append(dict(out_dir=out_dir, **kw)))
    r = invoke("bench", "--quick", "--out-dir", tmp_path / "b", "--model", "mini", "--model", "small",
               "--length", "1000", "--length", "4000", "--device", "cpu", "--task", "niah",
               "--seed", "7", "--no-progress", "--data-dir", tmp_path / "data", "--report", tmp_path / "r.md")
    assert r.exit_code == 0, r.stderr
    assert calls == [dict(quick=True, out_dir=tmp_path / "b", models=["mini", "small"],
                          lengths=[1000, 4000], device="cpu", tasks=["niah"], seed=7, progress=False,
                          data_dir=tmp_path / "data", report_path=tmp_path / "r.md", speed=False,
                          peers=None, speed_lengths=None, speed_tokens=None, needle_lengths=None)]
    calls.clear()
    r = invoke("bench", "--out-dir", tmp_path / "c")
    assert r.exit_code == 0, r.stderr
    assert calls[0]["quick"] is False and calls[0]["out_dir"] == tmp_path / "c"
    assert calls[0]["lengths"] is None and calls[0]["tasks"] is None and calls[0]["seed"] == 0
    assert calls[0]["data_dir"] is None and calls[0]["report_path"] is None
    assert calls[0]["needle_lengths"] is None  # the suite's default (1M in a full run)
    calls.clear()
    r = invoke("bench", "--out-dir", tmp_path / "c2", "--needle-lengths", "1m,256k")
    assert r.exit_code == 0, r.stderr
    assert calls[0]["needle_lengths"] == [1_000_000, 262_144]
    calls.clear()
    assert invoke("bench", "--out-dir", tmp_path / "c3", "--needle-lengths", "").exit_code == 0
    assert calls[0]["needle_lengths"] == []
    calls.clear()
    assert invoke("bench", "--out-dir", tmp_path / "c4", "--needle-lengths", "lots").exit_code == 2
    calls.clear()
    r = invoke("bench", "--speed", "--out-dir", tmp_path / "d", "--peers", "llmlingua-2,provence",
               "--speed-lengths", "10000, 1m,2k", "--speed-tokens", "5000")
    assert r.exit_code == 0, r.stderr
    assert calls[0]["speed"] is True and calls[0]["peers"] == ["llmlingua-2", "provence"]
    assert calls[0]["speed_lengths"] == [10000, 1_000_000, 2048] and calls[0]["speed_tokens"] == 5000
    calls.clear()
    assert invoke("bench", "--speed", "--out-dir", tmp_path / "e", "--speed-lengths", "").exit_code == 0
    assert calls[0]["speed_lengths"] == []  # an empty list skips the scaling run
    r = invoke("bench", "--speed", "--out-dir", tmp_path / "f", "--speed-lengths", "10000,lots")
    assert r.exit_code == 2 and "--speed-lengths" in r.stderr


def test_bench_needs_an_out_dir_and_writes_nothing_without_one(monkeypatch, tmp_path):
    """`cprs bench` never writes into the caller's folder unless asked: no --out-dir, no run."""
    from cprs_cli.evaluation import bench as bench_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench_run, "main", lambda *a, **kw: pytest.fail("ran without --out-dir"))
    r = invoke("bench", "--quick")
    assert r.exit_code == 2
    assert_one_line_error(r.stderr, "--out-dir")
    assert list(tmp_path.iterdir()) == []


def test_bench_names_a_missing_dependency_in_one_line(monkeypatch, tmp_path):
    from cprs_cli.evaluation import deps

    real = deps.importlib.util.find_spec
    monkeypatch.setattr(deps.importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    r = invoke("bench", "--quick", "--out-dir", tmp_path / "b", "--no-progress")
    assert r.exit_code == 2
    assert_one_line_error(r.stderr, "matplotlib", "pip install 'cprs-cli[bench]'")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args, flags", [
    (["--rate", "0.5", "--threshold", "0.3"], ("--threshold", "--rate")),
    (["--max-tokens", "50", "--min-span-tokens", "2"], ("--min-span-tokens", "--max-tokens")),
    (["--lexical-weight", "0.5"], ("--lexical-weight", "--rate")),
])
def test_options_that_cannot_apply_are_usage_errors_naming_flags(args, flags, tmp_path):
    """The library names parameters (threshold, max_tokens); the CLI prints them as flags."""
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", str(tmp_path / "unused"), *args)
    assert r.exit_code == 2, r.stderr
    assert_one_line_error(r.stderr, *flags)


# --------------------------------------------------------------------------- issue 8: a thin CLI


def test_no_function_in_cli_is_over_sixty_lines():
    import ast

    tree = ast.parse((REPO / "cprs_cli" / "cli.py").read_text())
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 60]
    assert long == []


@pytest.mark.parametrize("args", [[], ["compress"], ["models"], ["bench"]])
def test_flags_show_no_bool_type_in_help(args, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    r = invoke(*args, "--help")
    assert r.exit_code == 0
    assert "--help" in r.stdout and "<bool>" not in r.stdout


def test_short_documents_share_critic_batches(model, tmp_path, monkeypatch):
    """The batch loop is Compressor.compress_many: five one-window documents, one critic batch."""
    from cprs_cli.critic.base import Critic

    for i in range(5):
        (tmp_path / f"d{i}.txt").write_text(f"Document {i}. " + TEXT_A)
    batches = []
    real = Critic.launch
    monkeypatch.setattr(Critic, "launch",
                        lambda self, ids, lengths: batches.append(len(ids)) or real(self, ids, lengths))
    r = invoke("compress", tmp_path, "-q", "q", "--model", model, "--format", "jsonl", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 5
    assert batches == [5]


def test_files_are_read_in_turn_and_results_written_as_they_come(model, docs, tmp_path, monkeypatch):
    """With one window per critic batch, a document is read only after the one before it was
    written: inputs are read lazily, results delivered as they come."""
    from cprs_cli import ingest

    out = tmp_path / "out"
    seen = []
    real = ingest.load_path

    def load_path(path, *args, **kwargs):
        seen.append((Path(path).name, sorted(p.name for p in out.rglob("*.cprs.txt"))))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ingest, "load_path", load_path)
    r = invoke("compress", docs, "-r", "-q", "q", "--model", model, "--output-dir", out, "--quiet",
               "--batch-size", "1")
    assert r.exit_code == 0, r.stderr
    assert seen == [("a.txt", []), ("b.md", ["a.txt.cprs.txt"]),
                    ("c.txt", ["a.txt.cprs.txt", "b.md.cprs.txt"]),
                    ("d.rst", ["a.txt.cprs.txt", "b.md.cprs.txt", "c.txt.cprs.txt"])]


def test_directory_gives_html_json_csv_and_names_what_it_skips(model, docs, tmp_path):
    (docs / "page.html").write_text("<p>" + TEXT_A + "</p>")
    (docs / "data.json").write_text(json.dumps({"text": TEXT_B}))
    (docs / "table.csv").write_text("mission,year\nApollo 11,1969\n")
    (docs / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "out"
    r = invoke("compress", docs, "-q", "q", "--model", model, "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "a.txt.cprs.txt", "b.md.cprs.txt", "data.json.cprs.txt", "page.html.cprs.txt", "table.csv.cprs.txt"]
    notes = [line for line in r.stderr.splitlines() if line.startswith("cprs: skipped")]
    assert len(notes) == 1 and "2 files" in notes[0]
    assert "logo.png" in notes[0] and "notes.xyz" in notes[0]
    r = invoke("compress", docs, "-q", "q", "--model", model, "--output-dir", tmp_path / "o2", "--quiet")
    assert r.exit_code == 0 and r.stderr == ""  # --quiet: no note


def test_text_output_ends_with_a_newline_when_nothing_is_kept(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    keep_nothing = ["--threshold", "0.9999", "--granularity", "word"]  # the random critic never is this sure
    r = invoke("compress", src, "-q", "q", "--model", model, "-f", "json", "--quiet", *keep_nothing)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["compressed_text"] == ""
    r = invoke("compress", src, "-q", "q", "--model", model, "--quiet", *keep_nothing)
    assert r.stdout == "\n"


def test_quiet_keeps_library_progress_bars_off_stderr(model, tmp_path, monkeypatch):
    """A GGUF base is de-quantised with a tqdm bar on the first load of `small`; --quiet hides
    it (and whatever else a library prints while the critic loads)."""
    from tqdm import tqdm

    real = cli._load_compressor

    def noisy(*args, **kwargs):
        for _ in tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        print("cprs: converting SmolLM2.gguf to a cached model (once)…", file=sys.stderr)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "_load_compressor", noisy)
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", model, "--quiet")
    assert r.exit_code == 0
    assert r.stderr == ""
    r = invoke("compress", src, "-q", "q", "--model", model, "--no-progress")
    assert "de-quantizing" in r.stderr  # not hidden without --quiet


def test_progress_shows_while_a_pdf_is_read_and_the_critic_loads(model, tmp_path, monkeypatch):
    from badinput.pdfbuild import make_pdf
    from rich.console import Console

    from cprs_cli import console as cli_console
    from cprs_cli import ingest

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    monkeypatch.setattr(cli_console, "err_console", lambda: terminal)
    seen = {}
    real_load_path, real_load_compressor = ingest.load_path, cli._load_compressor

    def load_path(*args, **kwargs):
        seen["reading"] = screen.getvalue()
        return real_load_path(*args, **kwargs)

    def load_compressor(*args, **kwargs):
        seen["loading"] = screen.getvalue()[len(seen["reading"]):]
        return real_load_compressor(*args, **kwargs)

    monkeypatch.setattr(ingest, "load_path", load_path)
    monkeypatch.setattr(cli, "_load_compressor", load_compressor)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf([TEXT_A]))
    r = invoke("compress", pdf, "-q", "q", "--model", model)
    assert r.exit_code == 0
    assert "reading" in seen["reading"] and "report.pdf" in seen["reading"]
    assert "loading critic" in seen["loading"] and model[-30:] in seen["loading"]


def test_stats_separate_reading_and_critic_load_from_compression(model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", model, "--format", "json")
    assert r.exit_code == 0, r.stderr
    stats = json.loads(r.stdout)["stats"]
    timings = stats["timings"]
    assert {"ingest", "model_load", "tokenize", "critic", "post"} <= set(timings)
    assert timings["ingest"] >= 0 and timings["model_load"] > 0
    # `seconds` stays compression alone: its stages, not reading or loading
    assert stats["seconds"] == pytest.approx(timings["tokenize"] + timings["critic"] + timings["post"], abs=2e-3)
    assert "read" in r.stderr and "compress" in r.stderr and "critic loaded in" in r.stderr


def test_the_document_text_is_normalised_once(model, tmp_path, monkeypatch):
    """ingest replaces what is not text in every document; the compressor does not again."""
    from cprs_cli import compressor, ingest

    calls = []
    real = ingest.normalise_text

    def counting(text):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(ingest, "normalise_text", counting)
    monkeypatch.setattr(compressor, "normalise_text", counting)
    src = tmp_path / "a.txt"
    src.write_text(TEXT_A)
    r = invoke("compress", src, "-q", "q", "--model", model, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert sum(text == TEXT_A for text in calls) == 1
