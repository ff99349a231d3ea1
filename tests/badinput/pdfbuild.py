"""PDFs for the tests, made at test time: `make_pdf` (fpdf2, one page per text) for well-formed
files, used by the ingest, fuzz and bad-input tests alike; and hand-built ones, because fpdf2 and
pypdf's writer only produce well-formed text and some bad-input cases need a font whose ToUnicode
map yields code points that are not text (lone surrogates, NUL, U+FFFF). A PDF is a few lines of
ASCII, so those are assembled here."""

from __future__ import annotations


def make_pdf(pages: list[str]) -> bytes:
    """A PDF with one page per string of `pages` (Helvetica, 12 pt)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def pdf_with_tounicode(mapping: dict[int, str], codes: bytes) -> bytes:
    """A one-page PDF that shows the byte string `codes` in a font whose ToUnicode CMap maps
    each byte in `mapping` to the given UTF-16BE hex (e.g. {0x42: "D800"})."""
    bf = "\n".join(f"<{c:02X}> <{u}>" for c, u in sorted(mapping.items()))
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
            "/CMapName /X def /CMapType 2 def\n"
            "1 begincodespacerange <00> <FF> endcodespacerange\n"
            f"{len(mapping)} beginbfchar\n{bf}\nendbfchar\n"
            "endcmap CMapName currentdict /CMap defineresource pop end end\n").encode()
    content = b"BT /F1 12 Tf 72 720 Td <" + codes.hex().encode() + b"> Tj ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# ASCII letters and space map to themselves; B, C, D, E to code points that are not text
ODD_MAP = {**{c: f"{c:04X}" for c in b"AFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz."},
           0x42: "D800", 0x43: "0000", 0x44: "FFFF", 0x45: "DC00"}


def odd_pdf(kind: str) -> bytes:
    """A PDF whose text holds lone surrogates ("surrogate"), NUL ("nul") or U+FFFF ("ffff")
    between ordinary words."""
    odd = {"surrogate": b"BBB E", "nul": b"C", "ffff": b"D"}[kind]
    return pdf_with_tounicode(ODD_MAP, b"The first sentence is here. " + odd +
                              b" The last sentence is also here.")
