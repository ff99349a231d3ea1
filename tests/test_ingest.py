import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import pytest
from badinput.pdfbuild import make_pdf, odd_pdf

from cprs_cli.errors import InputError
from cprs_cli.ingest import Document, load_path, load_stdin, normalise_text, read_stdin_bytes, register_converter

FRENCH = "Le café est très bon. Les élèves étudient à l'école. Naïve façade, garçon.\nDeuxième ligne.\n"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def unchanged():
    """Record a file's hash and mtime; assert both are the same at teardown."""
    seen = []

    def track(path: Path) -> Path:
        seen.append((path, sha(path), path.stat().st_mtime_ns))
        return path

    yield track
    for path, digest, mtime in seen:
        assert sha(path) == digest, f"{path} was modified"
        assert path.stat().st_mtime_ns == mtime


def write(tmp_path, name, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# -- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding,prefix",
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""), ("latin-1", b""), ("cp1252", b"")],
)
def test_text_encodings(tmp_path, unchanged, encoding, prefix):
    p = unchanged(write(tmp_path, "doc.txt", prefix + FRENCH.encode(encoding)))
    doc = load_path(p)
    assert isinstance(doc, Document)
    assert doc.text == FRENCH
    assert doc.kind == "text"
    assert doc.pages == [0]
    assert doc.source == str(p)
    assert not doc.text.startswith("\ufeff")


def test_utf16_be_and_utf32_bom(tmp_path):
    for enc, bom in [("utf-16-be", b"\xfe\xff"), ("utf-32-le", b"\xff\xfe\x00\x00")]:
        p = write(tmp_path, f"{enc}.txt", bom + FRENCH.encode(enc))
        assert load_path(p).text == FRENCH


def test_newlines_normalised(tmp_path):
    p = write(tmp_path, "crlf.txt", b"one\r\ntwo\rthree\n")
    assert load_path(p).text == "one\ntwo\nthree\n"


def test_markdown(tmp_path, unchanged):
    p = unchanged(write(tmp_path, "notes.MD", b"# Title\n\nSome *text* here.\n"))
    doc = load_path(p)
    assert doc.kind == "markdown"
    assert doc.text == "# Title\n\nSome *text* here.\n"


def test_unknown_suffix_is_text(tmp_path):
    p = write(tmp_path, "README", b"plain words")
    doc = load_path(p)
    assert doc.kind == "text" and doc.text == "plain words"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        os.urandom(4096),
        bytes(range(1, 32)) * 50,  # control characters only, no NUL
    ],
)
def test_binary_rejected(tmp_path, data):
    for name in ["junk.bin", "junk.txt"]:
        p = write(tmp_path, name, data)
        with pytest.raises(InputError, match="binary file, not text") as ei:
            load_path(p)
        assert str(p) in str(ei.value)
        assert ei.value.exit_code == 3


@pytest.mark.parametrize("data", [b"", b"   \n\t\n", b"\xef\xbb\xbf", b"\xff\xfe" + " \n".encode("utf-16-le")])
def test_empty_rejected(tmp_path, data):
    p = write(tmp_path, "empty.txt", data)
    with pytest.raises(InputError, match="empty document"):
        load_path(p)


def test_missing_path(tmp_path):
    p = tmp_path / "nope.txt"
    with pytest.raises(InputError, match="no such file") as ei:
        load_path(p)
    assert str(ei.value).startswith(str(p) + ": ")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_path(tmp_path)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root can read anything")
def test_permission_denied(tmp_path):
    p = write(tmp_path, "secret.txt", b"hidden")
    p.chmod(0)
    try:
        with pytest.raises(InputError, match="permission denied"):
            load_path(p)
    finally:
        p.chmod(0o644)


def test_permission_denied_simulated(tmp_path, monkeypatch):
    from cprs_cli import ingest

    p = write(tmp_path, "secret.txt", b"hidden")

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ingest, "open", deny, raising=False)
    with pytest.raises(InputError, match="permission denied") as ei:
        load_path(p)
    assert str(ei.value).startswith(str(p) + ": ")


def test_messages_are_one_line(tmp_path):
    cases = [tmp_path / "missing", write(tmp_path, "bad.pdf", b"%PDF-1.4\n garbage\n"),
             write(tmp_path, "x.docx", b"PK junk")]
    for p in cases:
        with pytest.raises(InputError) as ei:
            load_path(p)
        assert "\n" not in str(ei.value)


# -- stdin --------------------------------------------------------------------------------------


def test_stdin_bytes():
    doc = load_stdin("héllo\r\nworld".encode())
    assert doc == Document("héllo\nworld", "<stdin>", "stdin", [0])


def test_stdin_reads_sys_stdin(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(b"\xef\xbb\xbfpiped text")

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    doc = load_stdin()
    assert doc.text == "piped text" and doc.source == "<stdin>" and doc.kind == "stdin"


def test_stdin_rejects_empty_and_binary():
    with pytest.raises(InputError, match="<stdin>: empty document"):
        load_stdin(b"  \n")
    with pytest.raises(InputError, match="binary"):
        load_stdin(b"\x00\x01\x02abc")


def test_stdin_pdf_sniffed():
    data = make_pdf(["Piped page."])
    doc = load_stdin(data)
    assert doc.kind == "pdf" and "Piped page." in doc.text


# -- PDF ----------------------------------------------------------------------------------------


def encrypt_pdf(data: bytes, user_password: str, owner_password: str = "owner",
                algorithm: str = "RC4-128") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PAGE1 = "First page. It talks about apples."
PAGE2 = "Second page. It talks about pears."


def test_pdf_two_pages(tmp_path, unchanged):
    p = unchanged(write(tmp_path, "two.pdf", make_pdf([PAGE1, PAGE2])))
    doc = load_path(p)
    assert doc.kind == "pdf"
    assert len(doc.pages) == 2 and doc.pages[0] == 0
    first = doc.text[doc.pages[0] : doc.pages[1]]
    second = doc.text[doc.pages[1] :]
    assert "apples" in first and "pears" not in first
    assert second.startswith("Second page")
    assert first.endswith("\n\n")
    assert "pears" in second


def test_pdf_sniffed_without_suffix(tmp_path):
    p = write(tmp_path, "paper", make_pdf([PAGE1]))
    assert load_path(p).kind == "pdf"


def test_pdf_encrypted_empty_user_password(tmp_path, unchanged):
    p = unchanged(write(tmp_path, "open.pdf", encrypt_pdf(make_pdf([PAGE1, PAGE2]), "")))
    doc = load_path(p)
    assert "apples" in doc.text and len(doc.pages) == 2


def test_pdf_encrypted_with_password(tmp_path, unchanged):
    p = unchanged(write(tmp_path, "locked.pdf", encrypt_pdf(make_pdf([PAGE1, PAGE2]), "s3cret")))
    with pytest.raises(InputError, match="encrypted PDF; pass --password") as ei:
        load_path(p)
    assert str(p) in str(ei.value)
    with pytest.raises(InputError, match="wrong password"):
        load_path(p, password="nope")
    doc = load_path(p, password="s3cret")
    assert "apples" in doc.text and "pears" in doc.text


def test_pdf_password_that_cannot_be_encoded_blames_the_password(tmp_path, unchanged):
    p = unchanged(write(tmp_path, "locked.pdf", encrypt_pdf(make_pdf([PAGE1, PAGE2]), "s3cret")))
    with pytest.raises(InputError) as ei:
        load_path(p, password="s3\ud800cret")
    assert "password cannot be encoded (U+D800" in str(ei.value)
    assert "corrupt" not in str(ei.value)


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "AES-256-R5"])
@pytest.mark.parametrize("password", ["s3cret", "пароль-Ключ", "Ünïcødé ✓"])
def test_pdf_encrypted_aes(tmp_path, unchanged, algorithm, password):
    """AES needs the `cryptography` package (a dependency): the right password opens the file,
    a wrong one is one line, and the file is never touched."""
    data = encrypt_pdf(make_pdf([PAGE1, PAGE2]), password, algorithm=algorithm)
    p = unchanged(write(tmp_path, "aes.pdf", data))
    with pytest.raises(InputError, match="encrypted PDF; pass --password"):
        load_path(p)
    with pytest.raises(InputError, match="wrong password"):
        load_path(p, password=password[:-1])
    doc = load_path(p, password=password)
    assert "apples" in doc.text and "pears" in doc.text and len(doc.pages) == 2


def test_pdf_password_from_a_non_utf8_command_line(tmp_path):
    """A password that reached argv as bytes that are not UTF-8 (surrogate escapes) is passed to
    the decryption as those bytes (RC4 passwords are Latin-1 bytes), never a crash."""
    raw = "caf\xe9".encode("latin-1")  # a Latin-1 terminal typing 'café'
    data = encrypt_pdf(make_pdf([PAGE1]), "café", algorithm="RC4-128")
    p = write(tmp_path, "l1.pdf", data)
    argv_form = raw.decode("utf-8", "surrogateescape")  # what sys.argv holds
    assert "apples" in load_path(p, password=argv_form).text
    with pytest.raises(InputError, match="wrong password"):
        load_path(p, password=b"caf\xe8".decode("utf-8", "surrogateescape"))


def test_pdf_corrupt(tmp_path, unchanged):
    data = make_pdf([PAGE1, PAGE2])
    for i, broken in enumerate([data[: len(data) // 3], data[:20], b"%PDF-1.7\n" + os.urandom(300), b"not a pdf"]):
        p = unchanged(write(tmp_path, f"broken{i}.pdf", broken))
        with pytest.raises(InputError, match=r"corrupt or unreadable PDF \(|no extractable text") as ei:
            load_path(p)
        assert str(p) in str(ei.value)


def test_pdf_without_text(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50)
    p = write(tmp_path, "scan.pdf", bytes(pdf.output()))
    with pytest.raises(InputError, match=r"no extractable text \(scanned PDF\?\)"):
        load_path(p)


# -- DOCX ---------------------------------------------------------------------------------------


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_paragraph("Intro paragraph.")
    d.add_paragraph("")  # empty paragraphs are dropped
    table = d.add_table(rows=2, cols=3)
    for r, row in enumerate([["Name", "Age", "City"], ["Ann", "31", "Oslo"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("Closing paragraph.")
    d.save(str(path))
    return path


def test_docx_order(tmp_path, unchanged):
    p = unchanged(make_docx(tmp_path / "report.docx"))
    doc = load_path(p)
    assert doc.kind == "docx" and doc.pages == [0]
    assert doc.text == "Intro paragraph.\n\nName | Age | City\nAnn | 31 | Oslo\n\nClosing paragraph."


def test_docx_merged_cells(tmp_path):
    import docx

    d = docx.Document()
    t = d.add_table(rows=2, cols=3)
    a = t.cell(0, 0).merge(t.cell(0, 1))
    a.text = "Wide"
    t.cell(0, 2).text = "Right"
    for c, v in enumerate("xyz"):
        t.cell(1, c).text = v
    p = tmp_path / "merged.docx"
    d.save(str(p))
    assert load_path(p).text == "Wide | Right\nx | y | z"


def test_docx_zip_of_junk(tmp_path, unchanged):
    p = tmp_path / "fake.docx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("junk.txt", "not a word document")
    unchanged(p)
    with pytest.raises(InputError, match=r"not a valid DOCX \(") as ei:
        load_path(p)
    assert str(ei.value).startswith(str(p) + ": ")


def test_docx_not_a_zip(tmp_path):
    p = write(tmp_path, "plain.docx", b"just some text, not a zip")
    with pytest.raises(InputError, match="not a valid DOCX"):
        load_path(p)


def test_docx_empty(tmp_path):
    import docx

    p = tmp_path / "blank.docx"
    docx.Document().save(str(p))
    with pytest.raises(InputError, match="empty document"):
        load_path(p)


# -- registry -----------------------------------------------------------------------------------


def test_register_converter(tmp_path, monkeypatch):
    from cprs_cli import ingest

    monkeypatch.setattr(ingest, "_REGISTRY", dict(ingest._REGISTRY))

    def shout(data, source, password=None):
        return Document(data.decode().upper(), source, "text", [0])

    register_converter(("shout", ".SHT"), shout)
    p = write(tmp_path, "x.sht", b"quiet")
    assert load_path(p).text == "QUIET"
    p2 = write(tmp_path, "y.shout", b"calm")
    assert load_path(p2).text == "CALM"


# -- code points that are not text, size limits, closed stdin ------------------------------------


def test_normalise_text_replaces_one_for_one():
    raw = "a\ud800b\x00c\uffffd\U0010fffe\ufdd0e\udcff"
    out = normalise_text(raw)
    assert out == "a\ufffdb\ufffdc\ufffdd\ufffd\ufffde\ufffd"
    assert len(out) == len(raw)
    out.encode("utf-8")  # no surrogates left
    keep = "RTL \u200f mark, combining e\u0301, tab\t, bell \x07, emoji \U0001f600"
    assert normalise_text(keep) == keep


@pytest.mark.parametrize("kind", ["surrogate", "nul", "ffff"])
def test_pdf_with_odd_code_points_is_normalised(tmp_path, unchanged, kind):
    p = unchanged(write(tmp_path, f"{kind}.pdf", odd_pdf(kind)))
    doc = load_path(p)
    doc.text.encode("utf-8")
    assert "\x00" not in doc.text and "\uffff" not in doc.text
    assert "\ufffd" in doc.text
    assert doc.text.startswith("The first sentence") and doc.text.endswith("also here.")


def test_stdin_text_is_normalised():
    doc = load_stdin("plain \uffff text".encode("utf-8"))
    assert doc.text == "plain \ufffd text"


def test_only_invalid_characters_is_no_readable_text():
    with pytest.raises(InputError, match="no readable text"):
        load_stdin("\uffff\uffff".encode("utf-8"))


def test_size_limit_on_a_regular_file(tmp_path, unchanged):
    p = unchanged(write(tmp_path, "big.txt", b"word " * 1000))
    with pytest.raises(InputError, match="larger than the input size limit") as ei:
        load_path(p, max_bytes=4999)
    assert str(p) in str(ei.value)
    assert load_path(p, max_bytes=5000).text.startswith("word")
    assert load_path(p, max_bytes=None).text.startswith("word")


def test_size_limit_stops_reading_an_endless_device():
    """/dev/zero never ends: reading stops one byte past the limit."""
    with pytest.raises(InputError, match="larger than the input size limit of 0.25 MB"):
        load_path("/dev/zero", max_bytes=1 << 18)


def test_size_limit_on_stdin(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(b"x" * 100)

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    with pytest.raises(InputError, match="<stdin>: larger than"):
        read_stdin_bytes(max_bytes=99)
    FakeStdin.buffer = io.BytesIO(b"x" * 99)
    assert read_stdin_bytes(max_bytes=99) == b"x" * 99
    FakeStdin.buffer = io.BytesIO(b"x" * 11)
    with pytest.raises(InputError, match="larger than"):
        load_stdin(data=None, max_bytes=10)


def test_closed_stdin_is_an_input_error(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(InputError, match="<stdin>: standard input is closed"):
        load_stdin()


# -- decoding rule: damaged UTF-8, legacy encodings -----------------------------------------------

GERMAN = "Die Größe des Gebäudes ist beeindruckend. Überall gibt es schöne Möbel.\n"


def test_one_bad_byte_in_utf8_is_replaced_not_rejected(tmp_path, unchanged):
    good = (GERMAN * 200).encode("utf-8")  # about 15 KB
    data = good[:7001] + b"\xff" + good[7001:]
    p = unchanged(write(tmp_path, "damaged.txt", data))
    text = load_path(p).text
    assert text.count("\ufffd") == 1
    assert text.replace("\ufffd", "") == GERMAN * 200


def _damaged(n_bad: int) -> bytes:
    good = (GERMAN * 40).encode("utf-8")
    step = len(good) // (n_bad + 1)
    parts = [good[i * step:(i + 1) * step] for i in range(n_bad)] + [good[n_bad * step:]]
    return b"\x81".join(parts)  # 0x81 never starts or continues a valid sequence here


@pytest.mark.parametrize("over", [False, True])
def test_damaged_utf8_share_threshold(over):
    """Rule 1: at most BAD_UTF8_SHARE of the bytes undecodable -> UTF-8 with U+FFFD; above it,
    the file is not read as damaged UTF-8 (a legacy guess, or rejected as binary)."""
    from cprs_cli import ingest

    n = 1
    while (n + 1) <= ingest.BAD_UTF8_SHARE * (len(_damaged(n + 1))):
        n += 1  # the largest count within the share
    data = _damaged(n + 8 if over else n)
    as_damaged_utf8 = data.decode("utf-8", "replace")
    if not over:
        assert decode(data) == as_damaged_utf8
        return
    try:
        assert decode(data) != as_damaged_utf8
    except InputError as err:
        assert "binary" in str(err)


def decode(data: bytes) -> str:
    from cprs_cli.ingest import decode_text

    return decode_text(data, "mem")


def test_ascii_with_one_stray_byte_is_text():
    data = b"The quick brown fox jumps over the lazy dog. " * 300
    data = data[:7000] + b"\xff" + data[7000:]
    text = decode(data)
    assert len(text) == len(data) and text.startswith("The quick")


LATIN1_SAMPLES = [
    "had Æther on but one there and it is had has über it all déjà is has on there the",
    "one it of one crème a can one to with the all on as at at from after there had.",
    "Der Großvater aß Äpfel über dem Fluß. Schöne Grüße aus München.",
    "its was it déjà in was not and her which her one to be has at all all as for señor",
    "her his not not Ångström.",
    "a is an with brûlée.",
    "one or °.",
    "from © be.",
    "Smörgåsbord är gött. Þetta er íslenska.",
]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
@pytest.mark.parametrize("text", LATIN1_SAMPLES)
def test_latin1_and_cp1252_keep_their_accents(text, encoding):
    """Each of these was decoded wrongly before (as cp1257, cp1250, Big5 ...)."""
    assert decode(text.encode(encoding)) == text


@pytest.mark.parametrize("text,encoding", [
    ("Price: 5 € — “quoted” ‘text’ … naïve. Œuvre complète.", "cp1252"),
    ("Příliš žluťoučký kůň úpěl ďábelské ódy. " * 5, "cp1250"),
    ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig. " * 5, "cp1250"),
    ("Съешь же ещё этих мягких французских булок, да выпей чаю. " * 5, "cp1251"),
    ("いろはにほへと ちりぬるを わかよたれそ つねならむ。日本語のテキストです。" * 5, "shift_jis"),
    ("我能吞下玻璃而不伤身体。这是中文文本。" * 5, "gbk"),
    ("Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. " * 5, "cp1253"),
])
def test_other_legacy_encodings_still_detected(text, encoding):
    assert decode(text.encode(encoding)) == text
