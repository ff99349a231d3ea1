"""Builds the bad-input corpus at test time: every file is made from a few lines of code here
(fpdf2, pypdf's writer, python-docx, zipfile, plain bytes), so no binary is committed.

Each builder writes into a directory and returns the path it made.
"""

from __future__ import annotations

import functools
import io
import os
import zipfile
from pathlib import Path

from pdfbuild import make_pdf, odd_pdf

GOOD_TEXT = ("Apollo 11 landed on the Moon on 20 July 1969. Neil Armstrong and Buzz Aldrin walked on "
             "the surface. Michael Collins stayed in orbit aboard Columbia.\n\nThe crew returned on "
             "24 July. The mission met the goal set by President Kennedy.\n")
OTHER_TEXT = ("The Saturn V rocket had three stages. The first stage used five F-1 engines. The launch "
              "took place at Kennedy Space Center on a clear morning.\n")
FRENCH = "Le café est très bon. Les élèves étudient à l'école. Naïve façade, garçon. Où est-il?\n"


def put(directory: Path, name: str | bytes, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (os.fsdecode(name) if isinstance(name, bytes) else name)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- PDF


def good_pdf() -> bytes:
    return make_pdf(["Apollo 11 landed on the Moon in July 1969. Armstrong walked first.",
                      "Collins stayed in orbit. The crew came home safely."])


def encrypted_pdf(password: str, algorithm: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(good_pdf())))
    writer.encrypt(user_password=password, owner_password="owner-" + password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_only_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 80, 80)
    return bytes(pdf.output())


def zero_page_pdf() -> bytes:
    from pypdf import PdfWriter

    out = io.BytesIO()
    PdfWriter().write(out)
    return out.getvalue()


PDF_BUILDERS = {
    "truncated": lambda: good_pdf()[: len(good_pdf()) // 3],
    "header-only": lambda: b"%PDF-1.7\n",
    "header-then-noise": lambda: b"%PDF-1.7\n" + bytes((i * 73 + 11) % 256 for i in range(600)),
    "image-only": image_only_pdf,
    "zero-pages": zero_page_pdf,
    "surrogates": lambda: odd_pdf("surrogate"),
    "nul": lambda: odd_pdf("nul"),
    "uffff": lambda: odd_pdf("ffff"),
}


# --------------------------------------------------------------------------- DOCX


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def docx_with_document_xml(xml: bytes) -> bytes:
    """A real DOCX whose word/document.xml is replaced."""
    src = zipfile.ZipFile(io.BytesIO(docx_bytes(["placeholder"])))
    members = {n: src.read(n) for n in src.namelist()}
    members["word/document.xml"] = xml
    return zip_bytes(members)


@functools.cache
def docx_bomb(inflated_mb: int = 300) -> bytes:
    """A valid DOCX of about 0.3 MB whose word/document.xml inflates to `inflated_mb` MB (about
    9M paragraphs for 300 MB), written to the zip in pieces so the test never holds it whole."""
    src = zipfile.ZipFile(io.BytesIO(docx_bytes(["placeholder"])))
    out = io.BytesIO()
    para = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>"
    chunk = para * ((1 << 20) // len(para) + 1)
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document '
            b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            if name != "word/document.xml":
                z.writestr(name, src.read(name))
        with z.open("word/document.xml", "w", force_zip64=True) as fh:
            fh.write(head)
            written = len(head)
            while written < inflated_mb << 20:
                fh.write(chunk)
                written += len(chunk)
            fh.write(b"</w:body></w:document>")
    return out.getvalue()


DOCX_BUILDERS = {
    "not-a-zip": lambda: b"This is plain text pretending to be a DOCX file.\n" * 3,
    "zip-of-junk": lambda: zip_bytes({"junk.txt": b"hello", "word/other.bin": b"\x00\x01"}),
    "truncated": lambda: docx_bytes([GOOD_TEXT])[:900],
    "no-document-xml": lambda: zip_bytes({"[Content_Types].xml": b"<Types/>", "word/x": b""}),
    "malformed-xml": lambda: docx_with_document_xml(b"<w:document><w:body><w:p>unclosed"),
    "empty-body": lambda: docx_bytes([]),
}


# --------------------------------------------------------------------------- text


def damaged_utf8() -> bytes:
    good = ("Die Größe des Gebäudes ist beeindruckend. Überall gibt es schöne Möbel.\n" * 200).encode()
    return good[:7001] + b"\xff" + good[7001:]


TEXT_BUILDERS = {
    "empty": lambda: b"",
    "whitespace-only": lambda: b" \n\t\n   \n",
    "bom-only": lambda: b"\xef\xbb\xbf",
    "png-bytes": lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
    "noise-bytes": lambda: bytes((i * 151 + 7) % 256 for i in range(4096)),
    "nul-in-middle": lambda: GOOD_TEXT.encode()[:50] + b"\x00" + GOOD_TEXT.encode()[50:],
    "control-chars": lambda: bytes(range(1, 32)) * 50,
    "only-noncharacters": lambda: "\uffff\ufffe\uffff".encode("utf-8"),
    "utf16-bom-odd-length": lambda: b"\xff\xfe" + "broken".encode("utf-16-le") + b"\x41",
    "one-bad-byte-in-15kb": damaged_utf8,
    "latin-1": lambda: FRENCH.encode("latin-1"),
    "cp1252-quotes": lambda: "Price: 5 € — “quoted” ‘text’ … naïve. Œuvre complète.\n".encode("cp1252"),
    "utf16-bom": lambda: b"\xff\xfe" + GOOD_TEXT.encode("utf-16-le"),
    "utf32-bom": lambda: b"\xff\xfe\x00\x00" + GOOD_TEXT.encode("utf-32-le"),
    "crlf-and-cr": lambda: GOOD_TEXT.replace("\n", "\r\n").encode() + b"old mac line\rend\r",
    "one-huge-word": lambda: b"x" * 200_000,
    "no-punctuation": lambda: b"just some words without any sentence punctuation at all",
    "rtl-and-combining": lambda: ("\u05e9\u05dc\u05d5\u05dd \u200f\u202e reversed \u202c text. "
                                  "e\u0301e\u0301 combining a\u0308\u0304. Done.\n").encode(),
    "emoji-zwj": lambda: "Family: 👨\u200d👩\u200d👧\u200d👦. Flags: 🇫🇷🇩🇪. Skin: 👍🏽.\n".encode(),
    "surrogate-escapes-as-utf8": lambda: b"cesu \xed\xa0\x80\xed\xb0\x80 pair. " + GOOD_TEXT.encode(),
}
