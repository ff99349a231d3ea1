"""cprs_cli.output: renderers, atomic writes."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from cprs_cli import output
from cprs_cli.output import render, render_json, render_jsonl, render_text, render_text_many, write_atomic, write_output
from cprs_cli.result import CompressionResult, Span, Stats

SOURCE_TEXT = "Apollo 11 landed on 20 July 1969. It was hot in Houston. Armstrong stepped out."
SCHEMA_KEYS = {"schema_version", "source", "query", "instruction", "granularity", "model", "offsets", "spans",
               "compressed_text", "stats", "queries", "empty"}


def make_result(source: str = "doc.txt", text: str = SOURCE_TEXT, keep=((0, 33), (57, 80)),
                separator: str = " … ") -> CompressionResult:
    spans = [Span(s, e, text[s:e], 0.9) for s, e in keep]
    compressed = separator.join(sp.text for sp in spans)
    return CompressionResult(
        source=source, query="When did it land?", instruction="extract", granularity="sentence",
        model_name="tiny", model_sha256="ab" * 32, spans=spans, compressed_text=compressed,
        stats=Stats(input_tokens=20, output_tokens=12, ratio=20 / 12, windows=1, seconds=0.25,
                    device="cpu", timings={"critic": 0.1}))


# --------------------------------------------------------------------------- render


def test_render_text_ends_with_one_newline():
    r = make_result()
    out = render_text(r)
    assert out == r.compressed_text + "\n"
    r.compressed_text = "kept\n\n\n"
    assert render_text(r) == "kept\n"


def test_render_text_of_an_empty_result_is_one_newline():
    """Text output always ends with a newline: a result that kept nothing is one empty line
    (issue 8; it used to be no bytes at all)."""
    r = make_result(keep=())
    assert r.compressed_text == ""
    assert render_text(r) == "\n"
    assert render_text_many([make_result("a.txt"), r]).endswith("==> doc.txt <==\n\n")


def test_render_text_many_headers_only_for_several():
    a, b = make_result("a.txt"), make_result("b.txt")
    assert render_text_many([a]) == render_text(a)
    out = render_text_many([a, b])
    assert out.startswith("==> a.txt <==\n")
    assert "\n\n==> b.txt <==\n" in out
    assert out.count(a.compressed_text) == 2


def test_render_json_schema_and_roundtrip():
    r = make_result(text="Zürich café — naïve. " + SOURCE_TEXT, keep=((0, 20),))
    out = render_json(r)
    assert out.endswith("\n")
    data = json.loads(out)
    assert set(data) == SCHEMA_KEYS
    assert data == r.to_dict()
    assert data["schema_version"] == 1
    assert data["model"] == {"name": "tiny", "sha256": "ab" * 32}
    assert {"input_tokens", "output_tokens", "ratio", "windows", "seconds", "device"} <= set(data["stats"])
    assert "Zürich" in out  # not \u-escaped


def test_render_jsonl_one_object_per_line():
    rs = [make_result("a.txt"), make_result("b.txt"), make_result("c.txt")]
    out = render_jsonl(rs)
    lines = out.splitlines()
    assert len(lines) == 3 and out.endswith("\n")
    assert [json.loads(line)["source"] for line in lines] == ["a.txt", "b.txt", "c.txt"]
    assert render_jsonl([]) == ""


def test_render_dispatch():
    a, b = make_result("a.txt"), make_result("b.txt")
    assert render([a], "json") == render_json(a)
    assert render([a, b], "jsonl") == render_jsonl([a, b])
    assert render([a, b], "text") == render_text_many([a, b])
    with pytest.raises(ValueError, match="jsonl"):
        render([a, b], "json")
    with pytest.raises(ValueError):
        render([a], "yaml")


@pytest.mark.parametrize("renderer", ["json", "jsonl"])
def test_non_utf8_names_give_valid_json_with_escapes(renderer):
    """A name with an undecodable byte (surrogate-escaped by Python) is written as a \\udcXX
    JSON escape: the output is valid UTF-8 and valid JSON, and the bytes can be recovered."""
    raw = b"docs/caf\xe9.txt"
    name = os.fsdecode(raw)
    result = make_result(source=name)
    text = render_json(result) if renderer == "json" else render_jsonl([result, make_result()])
    encoded = text.encode("utf-8")  # would raise on a raw surrogate
    assert "\\udce9" in text
    first = json.loads(encoded.decode("utf-8").splitlines()[0] if renderer == "jsonl" else text)
    assert os.fsencode(first["source"]) == raw


def test_text_headers_keep_the_name_bytes(tmp_path):
    name = os.fsdecode(b"caf\xe9.txt")
    out = tmp_path / "o.txt"
    write_output(out, render_text_many([make_result(source=name), make_result()]))
    assert out.read_bytes().startswith(b"==> caf\xe9.txt <==\n")


# --------------------------------------------------------------------------- atomic writes


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_write_atomic_new_file(tmp_path):
    path = tmp_path / "out.txt"
    write_atomic(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_write_atomic_overwrites_and_keeps_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old contents that are longer than the new ones\n")
    os.chmod(path, 0o640)
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


def test_write_atomic_bytes_and_parents(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    with pytest.raises(FileNotFoundError):
        write_atomic(path, b"x")
    write_atomic(path, b"\x00\x01", make_parents=True)
    assert path.read_bytes() == b"\x00\x01"


def test_write_atomic_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("original\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(path, "new contents\n")
    assert path.read_text() == "original\n"
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_write_atomic_failure_on_new_file_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(output.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OSError):
        write_atomic(tmp_path / "new.txt", "data")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_uses_fsync_and_replace(tmp_path, monkeypatch):
    calls = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(output.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))
    monkeypatch.setattr(output.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    write_atomic(tmp_path / "f.txt", "x")
    assert calls.index("fsync") < calls.index("replace")


# --------------------------------------------------------------------------- special files


def _mknod(path: Path, kind: int, major: int, minor: int) -> Path:
    try:
        os.mknod(path, 0o666 | kind, os.makedev(major, minor))
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot create a device node here ({err}); needs root / CAP_MKNOD")
    return path


def test_write_output_char_device_stays_a_device(tmp_path):
    """`-o /dev/null` as root: the node is written through, never replaced (tested on a private
    copy of /dev/null, major 1 minor 3, so a regression cannot break the machine's /dev/null)."""
    null = _mknod(tmp_path / "null", stat.S_IFCHR, 1, 3)
    before = os.stat(null)
    write_output(null, "results\n")
    after = os.stat(null)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_write_output_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_output(fifo, "through the pipe\n")
    reader.join(timeout=60)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_write_output_symlink_replaces_the_target_not_the_link(tmp_path):
    target = tmp_path / "real" / "out.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_output(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_write_output_dangling_symlink_creates_the_target(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "made.txt")
    write_output(link, "x\n")
    assert link.is_symlink() and (tmp_path / "made.txt").read_text() == "x\n"


def test_write_output_regular_file_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    path.write_text("old\n")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(output.os, "replace", lambda a, b: (replaced.append(b), real_replace(a, b)))
    write_output(path, "new\n")
    assert replaced == [path] and path.read_text() == "new\n"


def test_write_output_dev_stdout_appends_to_the_redirected_file(tmp_path):
    """`cprs ... -o /dev/stdout >> log`: the log keeps its earlier lines."""
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    code = "from cprs_cli.output import write_output; write_output('/dev/stdout', 'new line\\n')"
    with open(log, "ab") as fh:
        r = subprocess.run([sys.executable, "-c", code], stdout=fh, stderr=subprocess.PIPE,
                           cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert r.returncode == 0, r.stderr
    assert log.read_text() == "earlier line\nnew line\n"


def test_write_output_refuses_block_devices_and_sockets(tmp_path):
    blk = _mknod(tmp_path / "blk", stat.S_IFBLK, 7, 250)  # never opened
    with pytest.raises(OSError, match="block device"):
        write_output(blk, "x")
    assert stat.S_ISBLK(os.lstat(blk).st_mode)
    with tempfile.TemporaryDirectory(dir="/tmp") as short:  # AF_UNIX paths must be short
        sock_path = os.path.join(short, "s")
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(sock_path)
            with pytest.raises(OSError, match="socket"):
                write_output(sock_path, "x")
            assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
        finally:
            sock.close()


class ShortWrites(io.RawIOBase):
    """A stream whose writes take at most `step` bytes, and that fails after `fail_after`."""

    def __init__(self, step: int, fail_after: int | None = None):
        self.data, self.step, self.fail_after = bytearray(), step, fail_after

    def writable(self):
        return True

    def write(self, b):
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise BrokenPipeError(32, "Broken pipe")
        n = min(self.step, len(b))
        self.data += bytes(b[:n])
        return n


def test_write_all_finishes_short_writes():
    stream = ShortWrites(step=7)
    output.write_all(stream, b"0123456789" * 10)
    assert bytes(stream.data) == b"0123456789" * 10


def test_write_all_raises_instead_of_losing_the_rest():
    """A short count followed by a failure surfaces the failure (a pipe whose reader left)."""
    stream = ShortWrites(step=64, fail_after=64)
    with pytest.raises(BrokenPipeError):
        output.write_all(stream, b"x" * 1000)


def test_write_output_directory_is_refused(tmp_path):
    with pytest.raises(OSError, match="directory"):
        write_output(tmp_path, "x")
