"""The bad-input corpus: one `Case` per bad (or odd) input, with its exit code and message.

A case builds its files under its own directory (`Ctx.inp` for inputs, `Ctx.out` for outputs)
with the builders of generate.py and says how cprs is run:

* runner "inproc": the CLI in-process (typer's CliRunner) with the tiny random critic;
* runner "proc":   a real process (fake_cli.py: the real CLI, a stand-in critic without torch),
                   for closed descriptors, /dev/full, pipes;
* runner "custom": the case runs itself (signals, two processes, mount namespaces).

test_badinput.py runs every case and checks, besides the exit code and the message: no
traceback, every error is one line, the inputs are byte-for-byte unchanged (and special files
keep their type), and no temporary file is left anywhere under the case directory.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import generate as g
from fake_cli import expected_text

FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
REPO = Path(__file__).resolve().parents[2]
MODEL = "<tiny critic>"  # replaced by the tiny critic's directory in in-process runs


@dataclass
class Ctx:
    dir: Path
    model: str  # the tiny encoder critic
    hybrid: str = ""  # the tiny hybrid (decoder) critic

    @property
    def inp(self) -> Path:
        return self.dir / "in"

    @property
    def out(self) -> Path:
        return self.dir / "out"


@dataclass
class Run:
    args: list[str]
    stdin: bytes | None = None
    shell: str = ""  # redirections for runner "proc", e.g. "<&-" or ">/dev/full"


@dataclass
class Result:
    exit: int
    stdout: bytes
    stderr: str


@dataclass
class Case:
    id: str
    area: str
    build: Callable[[Ctx], Run | Result]
    exit: int
    message: str | None = None  # must appear in a `cprs: error:` line
    check: Callable[[Ctx, Result], None] | None = None
    runner: str = "inproc"
    skip: Callable[[], str | None] | None = None  # a reason to skip, when the machine lacks a feature
    marks: list = field(default_factory=list)


Q = ["-q", "When did Apollo 11 land?"]


def compress(*paths, extra: list[str] | None = None, model: str = MODEL) -> list[str]:
    return ["compress", *[str(p) for p in paths], *Q, "--model", model, "--quiet", *(extra or [])]


def one_file(name: str | bytes, data: bytes, extra: list[str] | None = None) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        return Run(compress(g.put(ctx.inp, name, data), extra=extra))
    return build


def output_is(predicate: Callable[[bytes], bool], what: str) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        assert predicate(r.stdout), f"stdout is not {what}: {r.stdout[:200]!r}"
    return check


def has_text(*needles: str) -> Callable[[Ctx, Result], None]:
    return output_is(lambda out: all(n.encode() in out for n in needles), f"containing {needles}")


# keep the whole document, so the output shows how the input was decoded: a keep-probability
# threshold far below anything the critic outputs keeps every paragraph
KEEP_ALL = ["--threshold", "0.000001", "--granularity", "paragraph"]

# --------------------------------------------------------------------------- PDF

PDF_EXPECT = {  # builder: (exit, message)
    "truncated": (3, "corrupt or unreadable PDF"),
    "header-only": (3, "corrupt or unreadable PDF"),
    "header-then-noise": (3, "corrupt or unreadable PDF"),
    "image-only": (3, "no extractable text"),
    "zero-pages": (3, "no pages"),
    "surrogates": (0, None),
    "nul": (0, None),
    "uffff": (0, None),
}

CASES: list[Case] = []
for name, (code, msg) in PDF_EXPECT.items():
    CASES.append(Case(f"pdf-{name}", "pdf",
                      (lambda n: lambda ctx: Run(compress(g.put(ctx.inp, f"{n}.pdf", g.PDF_BUILDERS[n]()),
                                                          extra=KEEP_ALL)))(name),
                      code, msg,
                      has_text("The first sentence", "also here") if code == 0 else None))


def _pdf_password_case(algorithm: str, password: str, given: str | None, code: int, msg: str | None):
    def build(ctx: Ctx) -> Run:
        path = g.put(ctx.inp, "locked.pdf", g.encrypted_pdf(password, algorithm))
        return Run(compress(path, extra=(["--password", given] if given is not None else []) + KEEP_ALL))
    return build


for alg, pw, given, code, msg, tag in [
    ("AES-128", "s3cret", "s3cret", 0, None, "aes128-right-password"),
    ("AES-256", "s3cret", "s3cret", 0, None, "aes256-right-password"),
    ("AES-256", "пароль", "пароль", 0, None, "aes256-cyrillic-password"),
    ("AES-128", "Ключ", "Ключ", 0, None, "aes128-cyrillic-password"),
    ("RC4-128", "", None, 0, None, "rc4-empty-user-password"),
    ("AES-256", "s3cret", None, 3, "encrypted PDF; pass --password", "aes256-no-password"),
    ("AES-128", "s3cret", "wrong", 3, "wrong password", "aes128-wrong-password"),
]:
    CASES.append(Case(f"pdf-{tag}", "pdf", _pdf_password_case(alg, pw, given, code, msg), code, msg,
                      has_text("Apollo 11") if code == 0 else None))

CASES += [
    Case("pdf-empty-file", "pdf", one_file("empty.pdf", b""), 3, "empty document"),
    Case("pdf-bytes-named-txt", "pdf", lambda ctx: Run(compress(g.put(ctx.inp, "paper.txt", g.good_pdf()))),
         3, "binary file, not text"),
    Case("pdf-without-suffix-sniffed", "pdf", lambda ctx: Run(compress(g.put(ctx.inp, "paper", g.good_pdf()),
                                                                       extra=KEEP_ALL)),
         0, None, has_text("Apollo 11")),
    Case("pdf-on-stdin", "pdf", lambda ctx: Run(compress("-", extra=KEEP_ALL), stdin=g.good_pdf()),
         0, None, has_text("Apollo 11")),
]

# --------------------------------------------------------------------------- DOCX

DOCX_EXPECT = {
    "not-a-zip": (3, "not a valid DOCX"),
    "zip-of-junk": (3, "not a valid DOCX"),
    "truncated": (3, "not a valid DOCX"),
    "no-document-xml": (3, "not a valid DOCX"),
    "malformed-xml": (3, "not a valid DOCX"),
    "empty-body": (3, "empty document"),
}
for name, (code, msg) in DOCX_EXPECT.items():
    CASES.append(Case(f"docx-{name}", "docx",
                      (lambda n: lambda ctx: Run(compress(g.put(ctx.inp, f"{n}.docx", g.DOCX_BUILDERS[n]()))))(name),
                      code, msg))
CASES += [
    # a 0.9 MB DOCX whose word/document.xml inflates to 300 MB: refused from the zip directory
    Case("docx-zip-bomb", "docx", one_file("bomb.docx", g.docx_bomb(), ["--max-input-mb", "100"]), 3,
         "bomb.docx: expands to 301 MB when unzipped, larger than the input size limit of 100 MB"),
    Case("docx-zip-bomb-on-stdin", "docx",
         lambda ctx: Run(compress("-", extra=["--max-input-mb", "100"]), stdin=g.docx_bomb()), 3,
         "<stdin>: expands to 301 MB when unzipped"),
    Case("docx-zip-bomb-without-suffix", "docx", one_file("bomb", g.docx_bomb(), ["--max-input-mb", "100"]), 3,
         "MB when unzipped, larger than the input size limit of 100 MB"),
    Case("docx-paragraphs-and-table", "docx",
         one_file("ok.docx", g.docx_bytes([g.GOOD_TEXT], [["crew", "role"], ["Armstrong", "commander"]]),
                  KEEP_ALL), 0, None, has_text("Armstrong | commander")),
    # budgets (reliability issue, item 7): a budget at or above the input keeps all of it, and a
    # budget that fits a unit never keeps nothing
    Case("docx-table-rate-1-keeps-everything", "docx",
         one_file("table.docx", g.docx_bytes([], [["crew", "role"], ["Armstrong", "commander"],
                                                  ["Aldrin", "lunar module pilot"]]), ["--rate", "1"]),
         0, None, has_text("Armstrong | commander", "Aldrin | lunar module pilot")),
    Case("docx-table-rate-0.9-keeps-the-answer-rows", "docx",
         one_file("table.docx", g.docx_bytes([], [["crew", "role"], ["Armstrong", "commander"],
                                                  ["Aldrin", "lunar module pilot"]]), ["--rate", "0.9"]),
         0, None, output_is(lambda out: len(out.strip()) > 0, "not empty")),
    Case("docx-junk-zip-on-stdin", "docx",
         lambda ctx: Run(compress("-"), stdin=g.DOCX_BUILDERS["zip-of-junk"]()), 3,
         "<stdin>: not a valid DOCX"),
]

# --------------------------------------------------------------------------- text

TEXT_EXPECT = {
    "empty": (3, "empty document"),
    "whitespace-only": (3, "empty document"),
    "bom-only": (3, "empty document"),
    "png-bytes": (3, "binary file, not text"),
    "noise-bytes": (3, "binary file, not text"),
    "nul-in-middle": (3, "binary file, not text"),
    "control-chars": (3, "binary file, not text"),
    "only-noncharacters": (3, "no readable text"),
    "utf16-bom-odd-length": (3, "invalid UTF-16-LE text"),
    "one-bad-byte-in-15kb": (0, None),
    "latin-1": (0, None),
    "cp1252-quotes": (0, None),
    "utf16-bom": (0, None),
    "utf32-bom": (0, None),
    "crlf-and-cr": (0, None),
    "one-huge-word": (0, None),
    "no-punctuation": (0, None),
    "rtl-and-combining": (0, None),
    "emoji-zwj": (0, None),
    "surrogate-escapes-as-utf8": (0, None),
}
TEXT_CHECKS = {
    "one-bad-byte-in-15kb": has_text("Größe", "\ufffd"),
    "latin-1": has_text("café", "élèves", "Où"),
    "cp1252-quotes": has_text("€", "“quoted”", "Œuvre"),
    "utf16-bom": has_text("Apollo 11"),
    "utf32-bom": has_text("Apollo 11"),
    "crlf-and-cr": output_is(lambda out: b"\r" not in out and b"old mac line\nend" in out, "CR-free"),
    "rtl-and-combining": has_text("\u200f", "e\u0301"),
    "emoji-zwj": has_text("👨\u200d👩"),
}
for name, (code, msg) in TEXT_EXPECT.items():
    CASES.append(Case(f"text-{name}", "text",
                      (lambda n: lambda ctx: Run(compress(g.put(ctx.inp, f"{n}.txt", g.TEXT_BUILDERS[n]()),
                                                          extra=KEEP_ALL)))(name),
                      code, msg, TEXT_CHECKS.get(name)))


def _fifo_input(ctx: Ctx) -> Run:
    ctx.inp.mkdir(parents=True)
    fifo = ctx.inp / "pipe.txt"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(g.GOOD_TEXT.encode())

    threading.Thread(target=feed, daemon=True).start()
    return Run(compress(fifo, extra=KEEP_ALL))


def _broken_link(ctx: Ctx) -> Run:
    ctx.inp.mkdir(parents=True)
    (ctx.inp / "dangling.txt").symlink_to(ctx.inp / "gone.txt")
    return Run(compress(ctx.inp / "dangling.txt"))


CASES += [
    Case("text-over-max-input-mb", "text", one_file("big.txt", b"word " * 5000, ["--max-input-mb", "0.01"]),
         3, "larger than the input size limit of 0.01 MB"),
    Case("text-dev-zero-stops-at-limit", "text", lambda ctx: Run(compress("/dev/zero", extra=["--max-input-mb", "1"])),
         3, "/dev/zero: larger than the input size limit of 1 MB"),
    Case("text-stdin-over-limit", "text",
         lambda ctx: Run(compress("-", extra=["--max-input-mb", "0.001"]), stdin=b"word " * 1000),
         3, "<stdin>: larger than the input size limit"),
    Case("text-dev-null-input", "text", lambda ctx: Run(compress("/dev/null")), 3, "empty document"),
    Case("text-fifo-input", "text", _fifo_input, 0, None, has_text("Apollo 11")),
    Case("text-missing-file", "text", lambda ctx: Run(compress(ctx.inp / "nope.txt")), 3, "no such file"),
    Case("text-broken-symlink", "text", _broken_link, 3, "broken symbolic link"),
    Case("text-non-utf8-name", "text",
         lambda ctx: Run(compress(g.put(ctx.inp, b"caf\xe9.txt", g.GOOD_TEXT.encode()), extra=["-f", "json"])),
         0, None, output_is(lambda out: json.loads(out.decode("utf-8"))["source"].endswith("caf\udce9.txt"),
                            "valid JSON with an escaped name")),
    Case("text-non-utf8-name-missing", "text",
         lambda ctx: Run(compress(ctx.inp / os.fsdecode(b"gon\xe9.txt"))), 3, "gon\\udce9.txt"),
    Case("text-empty-stdin", "text", lambda ctx: Run(compress("-"), stdin=b""), 3, "<stdin>: empty document"),
    Case("text-binary-stdin", "text", lambda ctx: Run(compress("-"), stdin=g.TEXT_BUILDERS["png-bytes"]()),
         3, "<stdin>: binary file, not text"),
]

# --------------------------------------------------------------------------- flags


def flags(extra: list[str], code: int, msg: str) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
        args = compress(src, extra=extra)
        return Run(args)
    return build


def _no_query(ctx: Ctx) -> Run:
    src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
    return Run(["compress", str(src), "--model", MODEL])


FLAG_CASES = [
    ("query-empty", ["-q", ""], "--query must not be empty"),
    ("query-whitespace", ["-q", "  \t "], "--query must not be empty"),
    ("query-non-utf8", ["-q", os.fsdecode(b"caf\xe9?")], "--query: not valid UTF-8 (byte 0xE9"),
    ("instruction-non-utf8", ["--instruction", os.fsdecode(b"\xffkeep")], "--instruction: not valid UTF-8"),
    ("separator-non-utf8", ["--separator", os.fsdecode(b"\n\xff\n")], "--separator: not valid UTF-8"),
    ("instruction-empty", ["--instruction", " "], "--instruction must not be empty"),
    ("instruction-and-task", ["--instruction", "x", "--task", "facts"], "either --instruction or --task"),
    ("rate-and-max-tokens", ["--rate", "0.5", "--max-tokens", "9"], "either --rate or --max-tokens"),
    ("threshold-zero", ["--threshold", "0"], "0 < P < 1"),
    ("threshold-one", ["--threshold", "1"], "0 < P < 1"),
    ("threshold-negative", ["--threshold", "-0.5"], "0 < P < 1"),
    ("rate-zero", ["--rate", "0"], "0 < R <= 1"),
    ("rate-above-one", ["--rate", "1.01"], "0 < R <= 1"),
    ("max-tokens-zero", ["--max-tokens", "0"], "--max-tokens"),
    ("max-input-mb-zero", ["--max-input-mb", "0"], "positive number of megabytes"),
    ("max-input-mb-nan", ["--max-input-mb", "nan"], "positive number of megabytes"),
    ("window-tokens-tiny", ["--window-tokens", "3"], "--window-tokens"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size"),
    ("device-unknown", ["--device", "tpu"], "expected auto, cpu, cuda, cuda:N or cuda:N,M..."),
    ("granularity-unknown", ["--granularity", "chapter"], "chapter"),
    ("format-unknown", ["--format", "yaml"], "yaml"),
    ("task-unknown", ["--task", "poems"], "poems"),
    ("glob-empty", ["--glob", ""], "--glob must not be empty"),
    ("unknown-flag", ["--frobnicate"], "No such option"),
]
for name, extra, msg in FLAG_CASES:
    CASES.append(Case(f"flag-{name}", "flags", flags(extra, 2, msg), 2, msg))
CASES.append(Case("flag-missing-query", "flags", _no_query, 2, "--query"))


def _out(kind: str) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
        ctx.out.mkdir(parents=True, exist_ok=True)
        if kind == "is-directory":
            return Run(compress(src, extra=["-o", str(ctx.out)]))
        if kind == "onto-input":
            return Run(compress(src, extra=["-o", str(src)]))
        if kind == "onto-input-via-hardlink":
            os.link(src, ctx.out / "alias.txt")
            return Run(compress(src, extra=["-o", str(ctx.out / "alias.txt")]))
        if kind == "missing-folder":
            return Run(compress(src, extra=["-o", str(ctx.out / "no" / "such" / "r.txt")]))
        if kind == "output-dir-is-a-file":
            (ctx.out / "file").write_text("x")
            return Run(compress(src, extra=["--output-dir", str(ctx.out / "file")]))
        if kind == "both-outputs":
            return Run(compress(src, extra=["-o", str(ctx.out / "r.txt"), "--output-dir", str(ctx.out)]))
        if kind == "json-two-inputs":
            other = g.put(ctx.inp, "b.txt", g.OTHER_TEXT.encode())
            return Run(compress(src, other, extra=["-f", "json"]))
        if kind == "stdin-twice":
            return Run(compress("-", "-"), stdin=g.GOOD_TEXT.encode())
        raise ValueError(kind)
    return build


for kind, msg in [("is-directory", "is a directory"), ("onto-input", "refusing to overwrite an input"),
                  ("onto-input-via-hardlink", "refusing to overwrite an input"),
                  ("missing-folder", "does not exist"), ("output-dir-is-a-file", "is a file"),
                  ("both-outputs", "either --output or --output-dir"),
                  ("json-two-inputs", "--format json writes one document"),
                  ("stdin-twice", "more than once")]:
    CASES.append(Case(f"flag-output-{kind}", "flags", _out(kind), 2, msg))

# --------------------------------------------------------------------------- model directories


def _model(kind: str) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
        d = ctx.dir / "critic"
        if kind == "nonexistent":
            return Run(compress(src, model=str(d)))
        if kind == "is-a-file":
            ctx.dir.mkdir(parents=True, exist_ok=True)
            d.write_text("not a directory")
            return Run(compress(src, model=str(d)))
        if kind == "empty-dir":
            d.mkdir(parents=True)
            return Run(compress(src, model=str(d)))
        shutil.copytree(ctx.model, d)
        cfg_path = d / "config.json"
        cfg = json.loads(cfg_path.read_text())
        if kind == "pickle-only":
            (d / "model.safetensors").rename(d / "pytorch_model.bin")
        elif kind == "auto-map":
            cfg["auto_map"] = {"AutoConfig": "evil.Cfg"}
        elif kind == "python-file":
            (d / "modeling_evil.py").write_text(f"open({str(ctx.dir / 'RAN')!r}, 'w')\n")
        elif kind == "auto-map-in-tokenizer-config":
            tc = json.loads((d / "tokenizer_config.json").read_text())
            tc["auto_map"] = {"AutoTokenizer": ["evil.Tok", None]}
            (d / "tokenizer_config.json").write_text(json.dumps(tc))
        elif kind == "config-garbage":
            cfg_path.write_text("{not json")
            return Run(compress(src, model=str(d)))
        elif kind == "three-labels":
            cfg["id2label"] = {"0": "B", "1": "I", "2": "O"}
            cfg["label2id"] = {"B": 0, "I": 1, "O": 2}
        elif kind == "unsupported-type":
            cfg["model_type"] = "gpt2"
        elif kind == "corrupt-weights":
            (d / "model.safetensors").write_bytes(b"\x00" * 64)
        elif kind == "no-tokenizer":
            for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
                (d / f).unlink(missing_ok=True)
        cfg_path.write_text(json.dumps(cfg))
        return Run(compress(src, model=str(d)))
    return build


def _not_ran(ctx: Ctx, r: Result) -> None:
    assert not (ctx.dir / "RAN").exists(), "code from the model directory ran"


for kind, msg in [("nonexistent", "not a critic name"), ("is-a-file", "not a critic name"),
                  ("empty-dir", "no config.json"), ("pickle-only", "pickle checkpoints are never loaded"),
                  ("auto-map", "auto_map"), ("python-file", "contains Python code"),
                  ("auto-map-in-tokenizer-config", "auto_map"),
                  ("config-garbage", "unreadable config.json"), ("three-labels", "4 labels"),
                  ("unsupported-type", "unsupported model_type"), ("corrupt-weights", "corrupt safetensors"),
                  ("no-tokenizer", "no tokenizer files")]:
    CASES.append(Case(f"model-{kind}", "model", _model(kind), 4, msg, _not_ran))

# --------------------------------------------------------------------------- batch


def _tree(ctx: Ctx) -> Path:
    root = ctx.inp
    g.put(root, "a.txt", g.GOOD_TEXT.encode())
    g.put(root / "sub", "b.md", g.OTHER_TEXT.encode())
    return root


def _written(ctx: Ctx) -> list[str]:
    return sorted(str(p.relative_to(ctx.out)) for p in ctx.out.rglob("*") if p.is_file())


def expect_written(*names: str) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        assert _written(ctx) == sorted(names), _written(ctx)
    return check


def _batch(kind: str) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        root = _tree(ctx)
        extra = ["-r", "--output-dir", str(ctx.out)]
        if kind == "bad-pdf-among-good":
            g.put(root, "c.pdf", g.PDF_BUILDERS["truncated"]())
        elif kind == "odd-pdf-among-good":
            g.put(root, "c.pdf", g.PDF_BUILDERS["surrogates"]())
        elif kind == "binary-among-good":
            g.put(root, "c.txt", g.TEXT_BUILDERS["png-bytes"]())
        elif kind == "missing-path-among-good":
            return Run(compress(root, root / "missing.txt", extra=extra))
        elif kind == "non-utf8-names-jsonl":
            g.put(root, b"r\xe9sum\xe9.txt", g.FRENCH.encode("latin-1"))
            return Run(compress(root, extra=["-r", "-f", "jsonl"]))
        elif kind == "same-file-twice":
            return Run(compress(root / "a.txt", root / "a.txt", str(root / "sub" / ".." / "a.txt"),
                                extra=["-f", "jsonl"]))
        elif kind == "output-dir-inside-input":  # the snapshot of inputs leaves out cprs-out/
            return Run(compress(root, extra=["-r", "--output-dir", str(root / "cprs-out")]))
        elif kind == "empty-directory":
            (ctx.dir / "void").mkdir()
            return Run(compress(ctx.dir / "void"))
        elif kind == "stdin-and-files":
            return Run(compress("-", root / "a.txt", extra=["-f", "jsonl"]), stdin=g.OTHER_TEXT.encode())
        return Run(compress(root, extra=extra))
    return build


def _not_reread(ctx: Ctx) -> None:
    out = ctx.inp / "cprs-out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "a.txt.cprs.txt", "sub/b.md.cprs.txt"]


def _jsonl_lines(n: int, *sources: str) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        lines = r.stdout.decode("utf-8").splitlines()
        assert len(lines) == n, lines
        got = [json.loads(line)["source"] for line in lines]
        for s in sources:
            assert any(x.endswith(s) for x in got), (s, got)
    return check


CASES += [
    Case("batch-bad-pdf-among-good", "batch", _batch("bad-pdf-among-good"), 3, "c.pdf: corrupt or unreadable PDF",
         expect_written("a.txt.cprs.txt", "sub/b.md.cprs.txt")),
    Case("batch-odd-pdf-among-good", "batch", _batch("odd-pdf-among-good"), 0, None,
         expect_written("a.txt.cprs.txt", "c.pdf.cprs.txt", "sub/b.md.cprs.txt")),
    Case("batch-binary-among-good", "batch", _batch("binary-among-good"), 3, "c.txt: binary file",
         expect_written("a.txt.cprs.txt", "sub/b.md.cprs.txt")),
    Case("batch-missing-path-among-good", "batch", _batch("missing-path-among-good"), 3,
         "missing.txt: no such file", expect_written("a.txt.cprs.txt", "sub/b.md.cprs.txt")),
    Case("batch-non-utf8-names-jsonl", "batch", _batch("non-utf8-names-jsonl"), 0, None,
         _jsonl_lines(3, "a.txt", "b.md", "r\udce9sum\udce9.txt")),
    Case("batch-same-file-twice", "batch", _batch("same-file-twice"), 0, None, _jsonl_lines(1, "a.txt")),
    Case("batch-output-dir-inside-input", "batch", _batch("output-dir-inside-input"), 0, None,
         lambda ctx, r: _not_reread(ctx)),
    Case("batch-empty-directory", "batch", _batch("empty-directory"), 3, "directory has no files"),
    Case("batch-stdin-and-files", "batch", _batch("stdin-and-files"), 0, None,
         _jsonl_lines(2, "<stdin>", "a.txt")),
]

# --------------------------------------------------------------------------- special files (outputs)


def _mknod_or_skip(path: Path, kind: int, dev: tuple[int, int]) -> None:
    os.mknod(path, 0o666 | kind, os.makedev(*dev))


def _can_mknod() -> str | None:
    if os.geteuid() != 0:
        return "creating device nodes needs root"
    return None


def _special(kind: str) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
        ctx.out.mkdir(parents=True)
        if kind == "char-device":  # a private /dev/null (1, 3): a regression cannot break the real one
            _mknod_or_skip(ctx.out / "null", stat.S_IFCHR, (1, 3))
            return Run(compress(src, extra=["-o", str(ctx.out / "null")]))
        if kind == "block-device":
            _mknod_or_skip(ctx.out / "disk", stat.S_IFBLK, (7, 250))
            return Run(compress(src, extra=["-o", str(ctx.out / "disk")]))
        if kind == "fifo":
            fifo = ctx.out / "pipe"
            os.mkfifo(fifo)
            got = ctx.dir / "from-fifo"

            def drain():
                got.write_bytes(fifo.read_bytes())

            threading.Thread(target=drain, daemon=True).start()
            return Run(compress(src, extra=["-o", str(fifo)] + KEEP_ALL))
        if kind == "symlink":
            (ctx.out / "target.txt").write_text("old\n")
            (ctx.out / "link.txt").symlink_to("target.txt")
            return Run(compress(src, extra=["-o", str(ctx.out / "link.txt")] + KEEP_ALL))
        if kind == "dangling-symlink":
            (ctx.out / "link.txt").symlink_to("made.txt")
            return Run(compress(src, extra=["-o", str(ctx.out / "link.txt")] + KEEP_ALL))
        raise ValueError(kind)
    return build


def _char_device_kept(ctx: Ctx, r: Result) -> None:
    st = os.lstat(ctx.out / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert sorted(p.name for p in ctx.out.iterdir()) == ["null"]


def _block_device_kept(ctx: Ctx, r: Result) -> None:
    assert stat.S_ISBLK(os.lstat(ctx.out / "disk").st_mode)


def _fifo_kept(ctx: Ctx, r: Result) -> None:
    assert stat.S_ISFIFO(os.lstat(ctx.out / "pipe").st_mode)
    got = ctx.dir / "from-fifo"
    deadline = time.monotonic() + 30
    # the reader thread creates the file before it writes what it read: wait for the text itself
    while not (got.exists() and b"Apollo 11" in got.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"Apollo 11" in got.read_bytes()


def _symlink_kept(ctx: Ctx, r: Result) -> None:
    assert (ctx.out / "link.txt").is_symlink()
    assert "Apollo 11" in (ctx.out / "target.txt").read_text()


def _dangling_made(ctx: Ctx, r: Result) -> None:
    assert (ctx.out / "link.txt").is_symlink() and "Apollo 11" in (ctx.out / "made.txt").read_text()


CASES += [
    Case("special-output-char-device", "special", _special("char-device"), 0, None, _char_device_kept,
         skip=_can_mknod),
    Case("special-output-block-device", "special", _special("block-device"), 2, "is a block device",
         _block_device_kept, skip=_can_mknod),
    Case("special-output-fifo", "special", _special("fifo"), 0, None, _fifo_kept),
    Case("special-output-symlink", "special", _special("symlink"), 0, None, _symlink_kept),
    Case("special-output-dangling-symlink", "special", _special("dangling-symlink"), 0, None, _dangling_made),
]

# --------------------------------------------------------------------------- pipes (real processes)


def _proc(args_extra: list[str], shell: str, stdin: bytes | None = None, files: bool = True):
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
        paths = [str(src)] if files else []
        return Run(["compress", *paths, *Q, "--quiet", *args_extra], stdin=stdin, shell=shell)
    return build


def _stdout_closed_file_written(ctx: Ctx, r: Result) -> None:
    assert b"Apollo 11" in (ctx.dir / "result.txt").read_bytes()


def _quiet(ctx: Ctx, r: Result) -> None:
    assert r.stderr == "", r.stderr


CASES += [
    Case("pipe-stdin-closed", "pipes", _proc([], "<&-", files=False), 3, "<stdin>: standard input is closed",
         runner="proc"),
    Case("pipe-stdin-closed-in-batch", "pipes", _proc(["-"], "<&-"), 3, "standard input is closed",
         has_text("Apollo 11"), runner="proc"),
    Case("pipe-stdout-closed", "pipes", _proc([], ">&-"), 2, "standard output is closed", runner="proc"),
    Case("pipe-stdout-closed-with-output-file", "pipes", _proc(["-o", "result.txt"], ">&-"), 0, None,
         lambda ctx, r: _stdout_closed_file_written(ctx, r), runner="proc"),
    Case("pipe-stdout-dev-full", "pipes", _proc([], ">/dev/full"), 3, "<stdout>: cannot write: No space left",
         runner="proc"),
    Case("pipe-stderr-closed-bad-input", "pipes",
         lambda ctx: Run(["compress", str(ctx.inp / "missing.txt"), *Q], shell="2>&-"), 3, None,
         runner="proc"),
    Case("pipe-broken-pipe-is-quiet", "pipes",
         lambda ctx: Run(["compress", str(g.put(ctx.inp, "big.txt", (g.GOOD_TEXT * 4000).encode())), *Q,
                          "--quiet"], shell="| head -c 10 >/dev/null; exit ${PIPESTATUS[0]}"),
         141, None, _quiet, runner="proc"),
    Case("pipe-dev-stdout-as-output", "pipes", _proc(["-o", "/dev/stdout"], ""), 0, None,
         has_text("Apollo 11"), runner="proc"),
]


# --------------------------------------------------------------------------- signals, concurrency, file systems


def fake_cli_cmd(args: list[str]) -> list[str]:
    return [sys.executable, str(FAKE_CLI), *args]


def _batch_inputs(ctx: Ctx, n: int) -> Path:
    for i in range(n):
        g.put(ctx.inp, f"doc{i:02d}.txt", (f"Document {i}. " + g.GOOD_TEXT).encode())
    return ctx.inp


def _complete_outputs_only(ctx: Ctx) -> list[str]:
    """Every file under out/ is a whole result for its input (never a prefix of one)."""
    names = []
    for p in sorted(ctx.out.rglob("*")):
        if p.is_file():
            src = ctx.inp / p.name.removesuffix(".cprs.txt")
            assert p.read_bytes() == expected_text(src), f"partial or wrong output {p}"
            names.append(p.name)
    return names


def _interactive_sigint() -> None:
    """In the child before exec: SIGINT as an interactive shell leaves it (default action), so
    the case does not depend on how the test run itself was started (a job started with `&` by a
    non-interactive shell, as CI may be, inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_mid_batch(signum: int) -> Callable[[Ctx], Result]:
    def run(ctx: Ctx) -> Result:
        root = _batch_inputs(ctx, 12)
        env = dict(os.environ, CPRS_FAKE_DELAY="0.15")
        proc = subprocess.Popen(fake_cli_cmd(["compress", str(root), *Q, "--quiet", "--output-dir",
                                              str(ctx.out)]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ctx.dir,
                                preexec_fn=_interactive_sigint)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if ctx.out.exists() and sum(1 for p in ctx.out.iterdir() if not p.name.startswith(".")) >= 3:
                break
            time.sleep(0.005)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        return Result(proc.returncode, out, err.decode("utf-8", "replace"))
    return run


def _stopped_mid_batch(ctx: Ctx, r: Result) -> None:
    written = _complete_outputs_only(ctx)
    assert 3 <= len(written) < 12, written  # stopped in the middle, finished files kept whole


def _two_processes(ctx: Ctx) -> Result:
    root = _batch_inputs(ctx, 8)
    env = dict(os.environ, CPRS_FAKE_DELAY="0.02")
    cmd = fake_cli_cmd(["compress", str(root), *Q, "--quiet", "--output-dir", str(ctx.out)])
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ctx.dir)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    code = max(p.returncode for p in procs)
    return Result(code, b"".join(o for o, _ in outs), "".join(e.decode() for _, e in outs))


def _all_eight_whole(ctx: Ctx, r: Result) -> None:
    assert len(_complete_outputs_only(ctx)) == 8


def _unshare_skip() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare(1) to mount a private file system"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"cannot create a mount namespace here: {probe.stderr.decode(errors='replace').strip()}"
    return None


def _in_namespace(ctx: Ctx, mount: str, args: list[str]) -> Result:
    """Run the CLI in a private mount namespace after `mount` (shell) has run; afterwards list
    out/ (with sizes) into listing.txt, since the mount vanishes with the namespace."""
    import shlex

    cmd = " ".join(shlex.quote(a) for a in fake_cli_cmd(args))
    script = (f"set -e; {mount}; set +e; {cmd}; rc=$?; "
              f"find {shlex.quote(str(ctx.out))} -mindepth 1 -printf '%P %s\\n' "
              f"> {shlex.quote(str(ctx.dir / 'listing.txt'))}; "
              "exit $rc")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                       capture_output=True, timeout=120, cwd=ctx.dir)
    return Result(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


def _read_only_dir(ctx: Ctx) -> Result:
    root = _batch_inputs(ctx, 2)
    ctx.out.mkdir()
    o = str(ctx.out)
    return _in_namespace(ctx, f"mount --bind {o} {o}; mount -o remount,bind,ro {o}",
                         ["compress", str(root), *Q, "--quiet", "--output-dir", o])


def _full_fs(ctx: Ctx) -> Result:
    g.put(ctx.inp, "a_small.txt", g.GOOD_TEXT.encode())
    g.put(ctx.inp, "b_big.txt", (g.GOOD_TEXT * 400).encode())  # ~90 KB, the tmpfs holds 32 KB
    ctx.out.mkdir()
    o = str(ctx.out)
    return _in_namespace(ctx, f"mount -t tmpfs -o size=32k tmpfs {o}",
                         ["compress", str(ctx.inp), *Q, "--quiet", "--output-dir", o])


def _listing(ctx: Ctx) -> dict[str, int]:
    rows = (ctx.dir / "listing.txt").read_text().split("\n")
    return {name: int(size) for name, size in (r.rsplit(" ", 1) for r in rows if r)}


def _nothing_written(ctx: Ctx, r: Result) -> None:
    assert _listing(ctx) == {}


def _small_written_big_not(ctx: Ctx, r: Result) -> None:
    listing = _listing(ctx)
    assert not [n for n in listing if n.endswith(".tmp")], listing
    assert listing == {"a_small.txt.cprs.txt": len(expected_text(ctx.inp / "a_small.txt"))}, listing


CASES += [
    Case("signal-sigint-mid-batch", "signals", _signal_mid_batch(signal.SIGINT), 130, "interrupted",
         _stopped_mid_batch, runner="custom"),
    Case("signal-sigterm-mid-batch", "signals", _signal_mid_batch(signal.SIGTERM), 143, "terminated",
         _stopped_mid_batch, runner="custom"),
    Case("concurrent-two-processes-one-output-dir", "signals", _two_processes, 0, None, _all_eight_whole,
         runner="custom"),
    Case("fs-read-only-output-dir", "special", _read_only_dir, 3, "Read-only file system", _nothing_written,
         runner="custom", skip=_unshare_skip),
    Case("fs-full-file-system", "special", _full_fs, 3, "No space left on device", _small_written_big_not,
         runner="custom", skip=_unshare_skip),
]

# --------------------------------------------------------------------------- long names

LONG_IN = "n" * 236 + ".txt"  # 240 characters: its output name (+ ".cprs.txt") is 249, legal
LONG_OUT = "o" * 246 + ".txt"  # 250 characters, legal (the limit is 255 bytes)


def _long_input_in_dir(ctx: Ctx) -> Run:
    g.put(ctx.inp, LONG_IN, g.GOOD_TEXT.encode())
    return Run(compress(ctx.inp, extra=["--output-dir", str(ctx.out)] + KEEP_ALL))


def _long_output_file(existing: bool) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
        ctx.out.mkdir(parents=True)
        if existing:
            (ctx.out / LONG_OUT).write_text("old result\n")
        return Run(compress(src, extra=["-o", str(ctx.out / LONG_OUT)] + KEEP_ALL))
    return build


def _written_with(name: str, needle: str) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        assert _written(ctx) == [name], _written(ctx)
        assert needle in (ctx.out / name).read_text()
    return check


def _result_name_too_long(ctx: Ctx) -> Run:
    g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())
    g.put(ctx.inp, "x" * 246 + ".txt", g.OTHER_TEXT.encode())  # + ".cprs.txt" = 259 bytes
    return Run(compress(ctx.inp, extra=["--output-dir", str(ctx.out)]))


CASES += [
    Case("names-result-name-too-long-in-batch", "names", _result_name_too_long, 3,
         "its result name would be 259 bytes, longer than the file system's limit of 255",
         expect_written("a.txt.cprs.txt")),
    Case("names-240-char-input-in-directory-batch", "names", _long_input_in_dir, 0, None,
         _written_with(LONG_IN + ".cprs.txt", "Apollo 11")),
    Case("names-250-char-output-file", "names", _long_output_file(False), 0, None,
         _written_with(LONG_OUT, "Apollo 11")),
    Case("names-250-char-output-file-replaced", "names", _long_output_file(True), 0, None,
         _written_with(LONG_OUT, "Apollo 11")),
]

# --------------------------------------------------------------------------- passwords


def _locked_with(password: str, algorithm: str = "AES-128") -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        path = g.put(ctx.inp, "locked.pdf", g.encrypted_pdf("s3cret", algorithm))
        return Run(compress(path, extra=["--password", password]))
    return build


CASES += [
    # a lone surrogate cannot come from a command line (argv bytes arrive as \udcXX escapes), but
    # can from a caller of the CLI's app or an environment that passes str; it blames the password
    Case("pdf-password-lone-surrogate", "pdf", _locked_with("pa\ud800ss"), 2,
         "--password: cannot be encoded (U+D800, a lone surrogate, at character 3); the password is at fault"),
    Case("pdf-password-lone-surrogate-rc4", "pdf", _locked_with("\udfff", "RC4-128"), 2,
         "--password: cannot be encoded (U+DFFF"),
]

# --------------------------------------------------------------------------- special-token strings


def _special_tokens_are_text(kind: str) -> Callable[[Ctx], Result]:
    """A document, query and instruction holding every special-token string of the critic's
    tokenizer ("[SEP]", "[CLS]", "<|im_start|>", ...): the critic must see them as plain text.
    The critic's predict() is watched: no special id inside any window's context, and the prompt
    around it holds exactly the template's own special tokens."""
    def run(ctx: Ctx) -> Result:
        from unittest import mock

        from transformers import AutoTokenizer
        from typer.testing import CliRunner

        from cprs_cli.cli import app
        from cprs_cli.critic.base import Critic

        model = ctx.model if kind == "encoder" else ctx.hybrid
        tok = AutoTokenizer.from_pretrained(model)
        specials = sorted(set(tok.all_special_tokens) | set(tok.get_added_vocab()))
        assert len(specials) >= 3, specials
        injected = " ".join(specials)
        text = f"Apollo 11 landed in 1969. {injected} The crew came home.\n\n{injected}\n"
        src = g.put(ctx.inp, "specials.txt", text.encode())
        seen: list[list[list[int]]] = []  # each batch's windows, padding cut off
        real = Critic.launch

        def watch(self, ids, lengths):
            seen.append([row[:n].tolist() for row, n in zip(ids, lengths)])
            return real(self, ids, lengths)

        args = compress(src, model=model, extra=KEEP_ALL + ["-q", f"Where is {injected}?",
                                                           "--instruction", f"Keep {injected} text."])
        with mock.patch.object(Critic, "launch", watch):
            r = CliRunner().invoke(app, args, catch_exceptions=False)
        special_ids = set(tok.all_special_ids)
        # the template's own special tokens: [CLS] [SEP] [SEP] + trailing [SEP] for the encoder;
        # three <|im_start|> and two <|im_end|> for the hybrid (critic/hybrid.py SYSTEM_PROMPT)
        frame = 4 if kind == "encoder" else 5
        assert seen, "the critic never ran"
        for windows in seen:
            for ids in windows:
                # exactly the template's special tokens: none came from the text
                found = [i for i in ids if i in special_ids]
                assert len(found) == frame, ("a special-token string became a special token", kind, found)
        return Result(r.exit_code, r.stdout_bytes, r.stderr)
    return run


CASES += [
    Case(f"text-special-token-strings-{kind}-critic", "text", _special_tokens_are_text(kind), 0, None,
         has_text(*(["[SEP]", "[CLS]", "[MASK]"] if kind == "encoder" else ["<|im_start|>", "<|im_end|>"])),
         runner="custom")
    for kind in ("encoder", "hybrid")
]

# --------------------------------------------------------------------------- warnings (what the run changed)


def warned(fragment: str, times: int = 1) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        lines = [line for line in r.stderr.splitlines() if line.startswith("cprs: warning:")]
        assert sum(fragment in line for line in lines) == times, r.stderr
    return check


def both(*checks: Callable[[Ctx, Result], None]) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        for c in checks:
            c(ctx, r)
    return check


def _json_stats(key: str, value, lines: int = 1) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        objs = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines() if line.strip()]
        assert len(objs) == lines, objs
        assert all(o["stats"][key] == value for o in objs), [o["stats"] for o in objs]
    return check


LONG_QUERY = ("moon landing " * 8000)[:100_000]  # 100,000 characters


def _long_query(n_files: int) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        paths = [g.put(ctx.inp, f"d{i}.txt", g.GOOD_TEXT.encode()) for i in range(n_files)]
        return Run(compress(*paths, extra=["-q", LONG_QUERY, "-f", "jsonl"]))
    return build


CASES += [
    Case("flag-query-100k-characters", "flags", _long_query(1), 0, None,
         both(warned("reads only its first 96 (the query limit"), _json_stats("query_truncated", True))),
    Case("flag-query-100k-characters-batch-says-so-once", "flags", _long_query(3), 0, None,
         both(warned("reads only its first 96", times=1), _json_stats("query_truncated", True, lines=3))),
    Case("flag-query-short-not-truncated", "flags", lambda ctx: Run(compress(
        g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode()), extra=["-f", "jsonl"])), 0, None,
         both(warned("query", times=0), _json_stats("query_truncated", False))),
]


def _huge_batch_size(ctx: Ctx) -> Result:
    """--batch-size 100000 on a document of 100+ windows: the batches the critic gets stay within
    the compressor's token bound (the tiny critic: 512-position windows, 32,768 tokens on the CPU,
    so at most 64 windows), and the run says so once."""
    from unittest import mock

    from typer.testing import CliRunner

    from cprs_cli.cli import app
    from cprs_cli.compressor import MAX_BATCH_TOKENS
    from cprs_cli.critic.base import Critic

    src = g.put(ctx.inp, "long.txt", (g.GOOD_TEXT * 300).encode())  # about 150 windows of 128 tokens
    batches: list = []  # each batch's padded (windows, length) shape
    real = Critic.launch

    def watch(self, ids, lengths):
        batches.append(ids.shape)
        return real(self, ids, lengths)

    with mock.patch.object(Critic, "launch", watch):
        r = CliRunner().invoke(app, compress(src, model=ctx.model, extra=["--batch-size", "100000"]),
                               catch_exceptions=False)
    assert len(batches) >= 2, "the document fit one batch: the bound was not exercised"
    assert sum(n for n, _ in batches) > MAX_BATCH_TOKENS["cpu"] // 512
    for n, length in batches:
        assert n <= MAX_BATCH_TOKENS["cpu"] // 512
        assert n * length <= MAX_BATCH_TOKENS["cpu"]  # padding included
    return Result(r.exit_code, r.stdout_bytes, r.stderr)


CASES += [
    Case("flag-batch-size-100000-is-bounded", "flags", _huge_batch_size, 0, None,
         warned("batch size 100,000 lowered to 64 windows"), runner="custom"),
]

# --------------------------------------------------------------------------- interrupted runs


def _interrupt(signum: int, n: int, mode: str, ignored: bool = False) -> Callable[[Ctx], Result]:
    """Send `signum` once the stand-in critic has compressed three of `n` documents. mode:
    "dir" (--output-dir), "file" (-o FILE, which exists with an old result). `ignored`: the
    parent ignores SIGINT, as a non-interactive shell does for `cprs ... &`."""
    def run(ctx: Ctx) -> Result:
        root = _batch_inputs(ctx, n)
        ctx.out.mkdir()
        trace = ctx.dir / "trace.txt"
        if mode == "dir":
            out = ["--output-dir", str(ctx.out)]
        else:
            (ctx.out / "res.jsonl").write_text("old result\n")
            out = ["-f", "jsonl", "-o", str(ctx.out / "res.jsonl")]
        env = dict(os.environ, CPRS_FAKE_DELAY="0.1", CPRS_FAKE_TRACE=str(trace))
        pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else _interactive_sigint
        proc = subprocess.Popen(fake_cli_cmd(["compress", str(root), *Q, "--quiet", *out]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ctx.dir,
                                preexec_fn=pre)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if trace.exists() and len(trace.read_text().splitlines()) >= 3:
                break
            time.sleep(0.005)
        proc.send_signal(signum)
        stdout, err = proc.communicate(timeout=60)
        return Result(proc.returncode, stdout, err.decode("utf-8", "replace"))
    return run


def _summary_counts_outputs(n: int) -> Callable[[Ctx, Result], None]:
    def check(ctx: Ctx, r: Result) -> None:
        written = _complete_outputs_only(ctx)
        assert 1 <= len(written) < n, written  # stopped in the middle
        errors = [line for line in r.stderr.splitlines() if line.startswith("cprs: error:")]
        assert len(errors) == 1, r.stderr
        s = "s" if len(written) != 1 else ""
        assert f"after {len(written)} of {n} documents: {len(written)} result{s} written under" in errors[0], errors
    return check


def _old_result_kept(ctx: Ctx, r: Result) -> None:
    assert sorted(p.name for p in ctx.out.iterdir()) == ["res.jsonl"]
    assert (ctx.out / "res.jsonl").read_text() == "old result\n"


def _ran_to_the_end(ctx: Ctx, r: Result) -> None:
    assert len(_complete_outputs_only(ctx)) == 20


CASES += [
    Case("signal-sigint-20-files-output-dir-summary", "signals", _interrupt(signal.SIGINT, 20, "dir"), 130,
         "interrupted after", _summary_counts_outputs(20), runner="custom"),
    Case("signal-sigterm-20-files-output-dir-summary", "signals", _interrupt(signal.SIGTERM, 20, "dir"), 143,
         "terminated after", _summary_counts_outputs(20), runner="custom"),
    Case("signal-sigint-output-file-exists", "signals", _interrupt(signal.SIGINT, 20, "file"), 130,
         "res.jsonl not written (it is written only when every input is done)", _old_result_kept,
         runner="custom"),
    Case("signal-sigterm-output-file-exists", "signals", _interrupt(signal.SIGTERM, 20, "file"), 143,
         "res.jsonl not written", _old_result_kept, runner="custom"),
    # SIGINT ignored by the parent (a script's `cprs ... &`, POSIX: background jobs of a
    # non-interactive shell ignore SIGINT) stays ignored, as for every Unix tool: the run is not
    # interrupted, finishes every document and exits 0
    Case("signal-sigint-ignored-by-parent-runs-to-the-end", "signals",
         _interrupt(signal.SIGINT, 20, "dir", ignored=True), 0, None, _ran_to_the_end, runner="custom"),
]

# --------------------------------------------------------------------------- what span offsets index

NFC_TEXT = ("Le café était fermé. Les élèves sont partis à midi.\n\nÀ Noël, la forêt était blanche. "
            "Où est Zoë? Ça va.\n")
OFFSET_INPUTS = {  # name: (file bytes, the text as decoded, before cprs's newline rule)
    "crlf": (g.GOOD_TEXT.replace("\n", "\r\n").encode(), g.GOOD_TEXT.replace("\n", "\r\n")),
    "cr-only": (g.GOOD_TEXT.replace("\n", "\r").encode(), g.GOOD_TEXT.replace("\n", "\r")),
    "utf8-bom-crlf": (b"\xef\xbb\xbf" + g.GOOD_TEXT.replace("\n", "\r\n").encode(),
                      g.GOOD_TEXT.replace("\n", "\r\n")),
    "utf16-bom": (b"\xff\xfe" + g.GOOD_TEXT.encode("utf-16-le"), g.GOOD_TEXT),
    "nfc": (unicodedata.normalize("NFC", NFC_TEXT).encode(), unicodedata.normalize("NFC", NFC_TEXT)),
    "nfd": (unicodedata.normalize("NFD", NFC_TEXT).encode(), unicodedata.normalize("NFD", NFC_TEXT)),
    "nfd-crlf": (unicodedata.normalize("NFD", NFC_TEXT).replace("\n", "\r\n").encode(),
                 unicodedata.normalize("NFD", NFC_TEXT).replace("\n", "\r\n")),
}


def _offsets_case(name: str) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        src = g.put(ctx.inp, f"{name}.txt", OFFSET_INPUTS[name][0])
        return Run(compress(src, extra=["-f", "json", "--granularity", "word", "--rate", "0.5"]))
    return build


def _offsets_index_document_text(name: str) -> Callable[[Ctx, Result], None]:
    """The README's rule: offsets count code points of the document text, which for a text file
    is the decoded file without its BOM, CRLF and CR turned into LF, no Unicode normalisation;
    the JSON carries that text's length and sha256."""
    def check(ctx: Ctx, r: Result) -> None:
        import hashlib

        decoded = OFFSET_INPUTS[name][1]
        document = decoded.replace("\r\n", "\n").replace("\r", "\n")
        out = json.loads(r.stdout.decode("utf-8"))
        assert out["offsets"] == {"index": "document text", "unit": "code point",
                                  "text_length": len(document),
                                  "text_sha256": hashlib.sha256(document.encode()).hexdigest()}
        spans = out["spans"]
        assert len(spans) >= 2, spans
        assert all(document[s["start"]:s["end"]] == s["text"] for s in spans)
        assert out["compressed_text"].startswith(spans[0]["text"])
    return check


CASES += [
    Case(f"text-offsets-{name}", "text", _offsets_case(name), 0, None, _offsets_index_document_text(name))
    for name in OFFSET_INPUTS
]

# --------------------------------------------------------------------------- a unit larger than the budget

WORDS = ("apollo moon crew lunar module orbit landing rocket engine fuel pilot mission control houston "
         "eagle surface rock sample flag camera").split()


def one_line(n_chars: int, comma_every: int | None) -> bytes:
    """One line of words without a sentence break (commas every `comma_every` words, if given)."""
    out, n, i = [], 0, 0
    while n < n_chars:
        w = WORDS[(i * 7 + i // 3) % len(WORDS)]
        i += 1
        if comma_every and i % comma_every == 0:
            w += ","
        out.append(w)
        n += len(w) + 1
    return (" ".join(out) + "\n").encode()


def _budget_filled(budget: int, json_lines: int = 1) -> Callable[[Ctx, Result], None]:
    """Something is kept, within the budget (cl100k), spans exact, and the stats say finer
    units were used."""
    def check(ctx: Ctx, r: Result) -> None:
        from cprs_cli.tokens import count_tokens

        objs = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines() if line.strip()]
        assert len(objs) == json_lines
        for o in objs:
            assert o["spans"], "nothing kept"
            assert o["stats"]["finer_units"] is True
            assert o["stats"]["output_tokens"] == count_tokens(o["compressed_text"])
            assert budget // 2 <= o["stats"]["output_tokens"] <= budget, o["stats"]
            assert [w["code"] for w in o["stats"]["warnings"]] == ["finer_units"]
    return check


def _oversized(name: str, data: bytes, extra: list[str]) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        return Run(compress(g.put(ctx.inp, name, data), extra=["-f", "jsonl", "--window-tokens", "448", *extra]))
    return build


CASES += [
    # the repro: 1 MB on one line, no sentence break, --max-tokens 300 used to keep nothing
    Case("budget-1mb-one-line-max-tokens-300", "budget", _oversized("line.txt", one_line(1 << 20, 13),
                                                                     ["--max-tokens", "300"]),
         0, None, both(_budget_filled(300), warned("line.txt: a sentence is longer than the budget of 300"))),
    Case("budget-one-line-without-punctuation", "budget", _oversized("words.txt", one_line(100_000, None),
                                                                      ["--max-tokens", "120"]),
         0, None, both(_budget_filled(120), warned("clauses and words inside it were kept"))),
    Case("budget-paragraph-larger-than-budget", "budget",
         _oversized("para.txt", (g.GOOD_TEXT.replace("\n\n", " ") * 20).encode(),
                    ["--max-tokens", "60", "--granularity", "paragraph"]),
         0, None, both(_budget_filled(60), warned("a paragraph is longer than the budget of 60"))),
    Case("budget-one-huge-word", "budget", _oversized("word.txt", b"x" * 200_000, ["--max-tokens", "50"]),
         0, None, _budget_filled(50)),
]

# --------------------------------------------------------------------------- HTML, URLs, chat messages, empty results


CASES += [
    Case("html-empty-file", "html", one_file("empty.html", b""), 3, "empty.html: empty document"),
    Case("html-only-whitespace", "html", one_file("blank.html", b"  \n\t \n"), 3, "blank.html: empty document"),
    # a page of nothing but code: scripts and styles are not its text
    Case("html-only-script-and-style", "html",
         one_file("code.html", b"<html><head><script>var a = 1;</script><style>p {color: red}</style>"
                               b"</head><body></body></html>"), 3, "code.html: no text in the HTML page"),
    Case("html-random-bytes", "html", one_file("noise.html", bytes(range(256)) * 16), 3,
         "noise.html: binary file, not text"),
    Case("html-unclosed-tags", "html",
         one_file("broken.html", b"<html><body><p>Apollo 11 landed <b><i>on the Moon</p></div></span>"
                                 b"<p>Collins stayed in orbit.", KEEP_ALL), 0, None,
         has_text("Apollo 11 landed", "Collins stayed in orbit.")),
    Case("html-latin1-without-charset", "html",
         one_file("latin.html", "<p>Le café est très bon. Apollo 11 landed.</p>".encode("latin-1"), KEEP_ALL),
         0, None, has_text("Le café est très bon.")),
]


def _serve(respond: Callable[[http.server.BaseHTTPRequestHandler], None]) -> http.server.ThreadingHTTPServer:
    """A loopback HTTP server answering every GET with `respond(handler)`; tests never leave the machine."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                respond(self)
            except OSError:  # the client stopped reading (a body past the size limit)
                pass

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _body(data: bytes, status: int = 200, length: bool = True, ctype: str = "text/html"):
    def respond(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if length:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(0, len(data), 1 << 16):
            h.wfile.write(data[i:i + (1 << 16)])
    return respond


def _refuse(h: http.server.BaseHTTPRequestHandler) -> None:
    h.send_error(403, "Forbidden")


def _invoke(ctx: Ctx, args: list[str]) -> Result:
    from typer.testing import CliRunner

    from cprs_cli.cli import app

    r = CliRunner().invoke(app, [ctx.model if a == MODEL else a for a in args], catch_exceptions=False)
    return Result(r.exit_code, r.stdout_bytes, r.stderr)


def _url_case(respond, extra: list[str] | None = None, also_file: bool = False) -> Callable[[Ctx], Result]:
    def run(ctx: Ctx) -> Result:
        server = _serve(respond)
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/report.html"
            files = [g.put(ctx.inp, "good.txt", g.GOOD_TEXT.encode())] if also_file else []
            return _invoke(ctx, compress(url, *files, extra=extra))
        finally:
            server.shutdown()
            server.server_close()
    return run


def _closed_port(ctx: Ctx) -> Result:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return _invoke(ctx, compress(f"http://127.0.0.1:{port}/report.pdf"))


def _never_answers(ctx: Ctx) -> Result:
    """A loopback port that takes the connection (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return _invoke(ctx, compress(f"http://127.0.0.1:{s.getsockname()[1]}/slow.html",
                                     extra=["--fetch-timeout", "0.5"]))


PAGE = b"<html><body><article><h1>Apollo</h1><p>" + g.GOOD_TEXT.encode() + b"</p></article></body></html>"
BIG_PAGE = b"<html><body><p>" + b"Apollo 11 landed on the Moon. " * 40_000 + b"</p></body></html>"  # 1.2 MB

CASES += [
    Case("url-connection-refused", "url", _closed_port, 3, "cannot fetch (Connection refused)", runner="custom"),
    Case("url-never-answers-times-out", "url", _never_answers, 3, "slow.html: cannot fetch (timed out after 0.5 s)",
         runner="custom"),
    Case("url-http-403", "url", _url_case(_refuse), 3, "report.html: cannot fetch (HTTP 403 Forbidden)",
         runner="custom"),
    Case("url-oversized-by-content-length", "url", _url_case(_body(BIG_PAGE), ["--max-input-mb", "1"]), 3,
         "report.html: larger than the input size limit of 1 MB", runner="custom"),
    Case("url-oversized-without-content-length", "url",
         _url_case(_body(BIG_PAGE, length=False), ["--max-input-mb", "1"]), 3,
         "report.html: larger than the input size limit of 1 MB", runner="custom"),
    Case("url-empty-body", "url", _url_case(_body(b"")), 3, "report.html: empty document", runner="custom"),
    Case("url-page-fetched", "url", _url_case(_body(PAGE), KEEP_ALL), 0, None,
         has_text("Apollo 11 landed on the Moon"), runner="custom"),
    Case("url-failed-among-files", "url", _url_case(_refuse, ["-f", "jsonl"], also_file=True), 3,
         "cannot fetch (HTTP 403 Forbidden)",
         output_is(lambda out: out.count(b'"source"') == 1 and b"good.txt" in out, "the file's result only"),
         runner="custom"),
]


def chat_file(name: str, data: bytes, extra: list[str] | None = None) -> Callable[[Ctx], Run]:
    def build(ctx: Ctx) -> Run:
        path = g.put(ctx.inp, name, data)
        return Run(["compress", "--messages", str(path), "--model", MODEL, "--quiet", *(extra or [])])
    return build


OFFICIAL_CHAT = json.dumps([{"role": "system", "content": "Extract the sentences that answer the question."},
                            {"role": "user", "content": "When did Apollo 11 land?"},
                            {"role": "context", "content": g.GOOD_TEXT}]).encode()

CASES += [
    Case("messages-malformed-json", "messages", chat_file("chat.json", b'[{"role": "user", "content": "q"'), 3,
         "chat.json: not a JSON messages file (Expecting"),
    Case("messages-not-utf8", "messages", chat_file("chat.json", b'[{"role": "user", "content": "\xff\xfe"}]'), 3,
         "chat.json: not a JSON messages file"),
    Case("messages-empty-file", "messages", chat_file("chat.json", b""), 3, "chat.json: not a JSON messages file"),
    Case("messages-an-object-without-messages", "messages", chat_file("chat.json", b'{"text": "hello"}'), 3,
         "chat.json: not a messages list: expected a list of messages"),
    Case("messages-no-user-turn", "messages",
         chat_file("chat.json", json.dumps([{"role": "context", "content": g.GOOD_TEXT}]).encode()), 3,
         "chat.json: not a messages list: no user message (the query)"),
    Case("messages-no-context", "messages",
         chat_file("chat.json", json.dumps([{"role": "user", "content": "When?"}]).encode()), 3,
         "chat.json: not a messages list: no context"),
    Case("messages-content-not-text", "messages",
         chat_file("chat.json", json.dumps([{"role": "context", "content": 7},
                                            {"role": "user", "content": "When?"}]).encode()), 3,
         "chat.json: not a messages list: message 1: content must be text"),
    Case("messages-missing-file", "messages", lambda ctx: Run(["compress", "--messages", str(ctx.inp / "none.json"),
                                                              "--model", MODEL]), 3, "none.json: no such file"),
    Case("messages-larger-than-the-limit", "messages",
         chat_file("chat.json", OFFICIAL_CHAT + b" " * (1 << 20), ["--max-input-mb", "1"]), 3,
         "chat.json: larger than the input size limit of 1 MB"),
    Case("messages-with-paths-is-usage", "messages",
         lambda ctx: Run(["compress", "--messages", str(g.put(ctx.inp, "chat.json", OFFICIAL_CHAT)),
                          str(g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode())), "--model", MODEL]), 2,
         "give either PATHS or --messages, not both"),
    # everything kept: the same chat back, its context whole (but for the final newline no unit holds)
    Case("messages-round-trip", "messages", chat_file("chat.json", OFFICIAL_CHAT, ["-f", "messages", *KEEP_ALL]),
         0, None, output_is(lambda out: json.loads(out) == [*json.loads(OFFICIAL_CHAT)[:2], {
             "role": "context", "content": g.GOOD_TEXT.rstrip("\n")}], "the chat, whole")),
]

# nothing kept: a keep-probability threshold the tiny random critic never reaches
NOTHING = ["--threshold", "0.9999"]

CASES += [
    Case("empty-result-warns-and-exits-0", "empty", one_file("a.txt", g.GOOD_TEXT.encode(), NOTHING), 0, None,
         both(warned("a.txt: no span judged relevant to the query; use --max-tokens or --min-tokens"),
              output_is(lambda out: out == b"\n", "one empty line"))),
    Case("empty-result-fail-on-empty-exits-5", "empty",
         one_file("a.txt", g.GOOD_TEXT.encode(), [*NOTHING, "--fail-on-empty"]), 5,
         "nothing was kept from 1 of 1 document (--fail-on-empty)",
         output_is(lambda out: out == b"\n", "one empty line, still written")),
    Case("empty-result-min-tokens-keeps-some", "empty",
         one_file("a.txt", g.GOOD_TEXT.encode(), [*NOTHING, "--fail-on-empty", "--min-tokens", "10"]), 0, None,
         both(warned("no span judged relevant", times=0), output_is(lambda out: len(out.strip()) > 0, "not empty"))),
    # a failed input outranks an empty result: exit 3
    Case("empty-result-and-a-missing-file", "empty",
         lambda ctx: Run(compress(g.put(ctx.inp, "a.txt", g.GOOD_TEXT.encode()), ctx.inp / "none.txt",
                                  extra=[*NOTHING, "--fail-on-empty"])), 3, "none.txt: no such file or directory"),
]
