"""FinanceBench-style check (issue 11): questions about figures in the tables of PDF reports,
answer kept at 20x (`rate=0.05`), with the PDF ingestion before and after issue 11.

The reports are synthetic (`benchmarks/findocs.py`, fpdf2): financial statements drawn row by row
and column by column, two-column prose, a header and footer on every page. Each question asks
for one FY2018 figure of one row ("What is the FY2018 amount of purchases of property, plant and
equipment (pp&e) in the consolidated statement of cash flows?").

* before: pypdf's default extraction, pages joined by a blank line, no structure (cprs's
  `convert_pdf` before issue 11, copied here);
* after: `cprs_cli.ingest.convert_pdf` (layout mode, rows whole, headers and footers left out).

Scores: "figure kept" = the figure as printed occurs in the output; "row kept" = one kept span
holds the row's label followed by the figure (the answer can be read and cited). The critic is
`mini` on the CPU, the code path of `cprs compress --rate 0.05`.

    .venv/bin/python experiments/financebench_check.py [--reports 4] [--pages 12] [--per-report 15]
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.findocs import build_report  # noqa: E402
from cprs_cli.compressor import Compressor  # noqa: E402
from cprs_cli.ingest import Document, convert_pdf, normalise_text  # noqa: E402


def convert_pdf_before(data: bytes, source: str) -> Document:
    """cprs's PDF converter before issue 11 (its text path, without the error handling)."""
    from pypdf import PdfReader

    texts = []
    for page in PdfReader(io.BytesIO(data), strict=False).pages:
        t = (page.extract_text() or "").replace("\r\n", "\n").replace("\r", "\n")
        texts.append(t.strip("\n").rstrip())
    offsets, pos = [], 0
    for t in texts:
        offsets.append(pos)
        pos += len(t) + 2
    return Document(normalise_text("\n\n".join(texts)), source, "pdf", offsets)


def _squash(s: str) -> str:
    return " ".join(s.split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=4)
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--per-report", type=int, default=15)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--model", default="mini")
    args = ap.parse_args()
    comp = Compressor(args.model, device="cpu")
    rng = random.Random(0)
    totals = {"before": [0, 0, 0, 0, 0], "after": [0, 0, 0, 0, 0]}  # n, figure, row, in tokens, out tokens
    t0 = time.perf_counter()
    for seed in range(args.reports):
        report = build_report(seed=seed, pages=args.pages)
        facts = [f for f in report.facts if f.year == "2018"]
        facts = rng.sample(facts, min(args.per_report, len(facts)))
        docs = {"before": convert_pdf_before(report.pdf, f"report{seed}.pdf"),
                "after": convert_pdf(report.pdf, f"report{seed}.pdf")}
        for name, doc in docs.items():
            for fact in facts:
                r = comp.compress_document(doc, query=fact.question, rate=args.rate)
                out = _squash(r.compressed_text)
                pattern = re.escape(_squash(fact.label)) + r"\s+" + re.escape(_squash(fact.figure)) + r"(\s|$)"
                row = any(re.search(pattern, _squash(sp.text)) for sp in r.spans)
                t = totals[name]
                t[0] += 1
                t[1] += _squash(fact.figure) in out
                t[2] += row
                t[3] += r.stats.input_tokens
                t[4] += r.stats.output_tokens
            print(name, seed, totals[name], file=sys.stderr)
    took = time.perf_counter() - t0
    lines = [
        f"`{' '.join(['.venv/bin/python', 'experiments/financebench_check.py', *sys.argv[1:]])}`, "
        f"{datetime.date.today().isoformat()}, critic `{args.model}` on the CPU ({platform.machine()}, "
        f"{took:.0f} s in all); {args.reports} synthetic reports of {args.pages} pages, "
        f"{totals['after'][0]} questions about FY2018 table figures, `rate={args.rate}`.",
        "",
        "| PDF ingestion | figure kept | label and figure in one kept span | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("before", "before issue 11 (pypdf default, no structure)"),
                        ("after", "after (layout mode, rows as units, headers and footers left out)")):
        n, fig, row, tin, tout = totals[name]
        lines.append(f"| {label} | {fig / n:.1%} ({fig}/{n}) | {row / n:.1%} ({row}/{n}) | {tin / max(tout, 1):.1f}× |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
