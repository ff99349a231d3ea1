"""PDF text extractors compared on what cprs needs: table rows whole, columns in reading order, speed.

The documents are synthetic annual reports (`benchmarks/findocs.py`, fpdf2): financial tables
drawn row by row (fpdf2's table) and column by column with the figures on a slightly lower
baseline (how many report generators write them, and what broke the 3M 10-K in issue 11), two-
column prose pages, and a header and footer on every page.

* rows intact: share of table rows whose label and three figures appear, in order, on one line
  (whitespace inside the line collapsed);
* columns in order: share of two-column pages whose sentences all appear whole and in reading
  order (column 1, then column 2) in the page text;
* pages/s: extraction of a ~300-page report, best of `--repeat` runs, single process.

    .venv/bin/python benchmarks/bench_pdf_extract.py [--pages 300] [--repeat 2]

Prints a markdown table and writes it to benchmarks/results/pdf_extract.md.
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.findocs import build_report  # noqa: E402


def pypdf_default(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages]


def pypdf_layout(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text(extraction_mode="layout") or "" for p in PdfReader(io.BytesIO(data)).pages]


def pdfium(data: bytes) -> list[str]:
    import pypdfium2

    doc = pypdfium2.PdfDocument(data)
    try:
        return [doc[i].get_textpage().get_text_range().replace("\r\n", "\n") for i in range(len(doc))]
    finally:
        doc.close()


def pdfplumber_default(data: bytes) -> list[str]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [p.extract_text() or "" for p in pdf.pages]


def cprs(data: bytes) -> list[str]:
    from cprs_cli.ingest import convert_pdf

    doc = convert_pdf(data, "bench.pdf")
    bounds = [*doc.pages, len(doc.text)]
    return [doc.text[a:b] for a, b in zip(bounds, bounds[1:])]


EXTRACTORS = {
    "pypdf default (cprs before)": pypdf_default,
    'pypdf extraction_mode="layout"': pypdf_layout,
    "pypdfium2 get_text_range": pdfium,
    "pdfplumber extract_text": pdfplumber_default,
    "cprs now (`ingest.convert_pdf`)": cprs,
}


def _squash(s: str) -> str:
    return " ".join(s.split())


def rows_intact(pages: list[str], report) -> float:
    lines = {_squash(line) for page in pages for line in page.splitlines()}
    text = "\n".join(lines)
    rows = {}
    for f in report.facts:
        rows.setdefault(f.label, []).append(f.figure)
    ok = sum(1 for label, figs in rows.items() if re.search(
        r"(^|\n)" + re.escape(_squash(" ".join([label, *figs]))) + r"($|\n)", text))
    return ok / len(rows)


def columns_in_order(pages: list[str], report) -> float:
    col_pages = [i for i, p in enumerate(pages) if "Risk Factors" in p]
    good = 0
    for sentences, i in zip(report.column_sentences, col_pages):
        flat = _squash(pages[i])
        pos, ok = 0, True
        for s in sentences:
            at = flat.find(_squash(s), pos)
            if at < 0:
                ok = False
                break
            pos = at + len(s)
        good += ok
    return good / max(len(report.column_sentences), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="extractor names (prefixes) to run")
    args = ap.parse_args()
    report = build_report(seed=0, pages=args.pages)
    rows = []
    for name, fn in EXTRACTORS.items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            pages = fn(report.pdf)
            best = min(best, time.perf_counter() - t)
        rows.append((name, rows_intact(pages, report), columns_in_order(pages, report), report.pages / best))
        print(rows[-1], file=sys.stderr)
    out = [
        f"# PDF extraction: rows, columns, speed ({datetime.date.today().isoformat()})",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/bench_pdf_extract.py', *sys.argv[1:]])}` on "
        f"{platform.machine()}, {platform.python_version()}, {_cpu()}; a {report.pages}-page "
        f"synthetic report (`benchmarks/findocs.py`, seed 0), {len({f.label for f in report.facts})} "
        f"table rows (half drawn column by column), {len(report.column_sentences)} two-column pages.",
        "",
        "| extractor | rows intact | columns in order | pages/s |",
        "|---|---:|---:|---:|",
        *[f"| {n} | {r:.1%} | {c:.1%} | {s:,.0f} |" for n, r, c, s in rows],
        "",
    ]
    text = "\n".join(out)
    print(text)
    if not args.only:
        (ROOT / "benchmarks" / "results" / "pdf_extract.md").write_text(text)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                import os

                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores, shared)"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
