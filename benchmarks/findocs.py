"""Synthetic annual-report PDFs (fpdf2) for the PDF extraction benchmark and the
FinanceBench-style check: financial tables whose rows pair a label with figures, two-column
prose, section headings, and a header and footer repeated on every page.

Real filings cannot be shipped or downloaded here, so the documents are built: every fact a
question asks about is known (`Report.facts`), which is what lets the benchmark check that an
extractor keeps a row's label and its figures together.

    from benchmarks.findocs import build_report
    report = build_report(seed=0, pages=300)
    report.pdf      # bytes
    report.facts    # [Fact(label, year, figure, statement)]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

YEARS = ("2018", "2017", "2016")
HEADER = "ACME Industrial Corporation | 2018 Annual Report on Form 10-K"

# statement -> row labels (what real filings call them)
STATEMENTS = {
    "Consolidated Statement of Cash Flows": [
        "Net income including noncontrolling interest",
        "Depreciation and amortization",
        "Company pension and postretirement contributions",
        "Purchases of property, plant and equipment (PP&E)",
        "Proceeds from sale of PP&E and other assets",
        "Acquisitions, net of cash acquired",
        "Purchases of marketable securities and investments",
        "Change in short-term debt, net",
        "Repayment of debt (maturities greater than 90 days)",
        "Purchases of treasury stock",
        "Dividends paid to shareholders",
        "Net cash provided by operating activities",
    ],
    "Consolidated Statement of Income": [
        "Net sales",
        "Cost of sales",
        "Selling, general and administrative expenses",
        "Research, development and related expenses",
        "Gain on sale of businesses",
        "Operating income",
        "Interest expense",
        "Provision for income taxes",
        "Net income attributable to the company",
        "Diluted earnings per share",
    ],
    "Consolidated Balance Sheet": [
        "Cash and cash equivalents",
        "Marketable securities, current",
        "Accounts receivable, net of allowances",
        "Total inventories",
        "Property, plant and equipment, net",
        "Goodwill",
        "Total assets",
        "Long-term debt",
        "Total equity",
    ],
}

TOPICS = ("Liquidity", "Capital Resources", "Pension Obligations", "Foreign Currency", "Raw Materials",
          "Litigation", "Tax Matters", "Acquisitions", "Restructuring", "Segment Results",
          "Critical Accounting Estimates", "Supply Chain")

_WORDS = ("the company continued to invest in manufacturing capacity across its business groups while "
          "managing costs supply chain productivity pricing and foreign currency effects remained "
          "important drivers of results during the period segment performance reflected organic growth "
          "in industrial safety and graphics health care and consumer markets management believes the "
          "liquidity position is strong and expects to fund operations through cash flows from "
          "operations commercial paper and other sources of financing").split()


@dataclass(frozen=True)
class Fact:
    statement: str
    label: str
    year: str
    figure: str  # as printed, e.g. "$ (1,577)"

    @property
    def question(self) -> str:
        return f"What is the FY{self.year} amount of {self.label.lower()} in the {self.statement.lower()}?"


@dataclass
class Report:
    pdf: bytes
    pages: int
    facts: list[Fact] = field(default_factory=list)
    # prose sentences of the two-column pages, in reading order (column 1, then column 2)
    column_sentences: list[list[str]] = field(default_factory=list)


def _figure(rng: random.Random, first: bool) -> str:
    value = rng.randint(12, 9_800)
    text = f"{value:,}"
    if rng.random() < 0.35:
        text = f"({text})"
    return f"$ {text}" if first else text


def _sentence(rng: random.Random, n: int | None = None) -> str:
    words = [rng.choice(_WORDS) for _ in range(n or rng.randint(12, 24))]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def _column_major_table(pdf, rows: list[tuple[str, list[str]]]) -> None:
    x0, y0, h = pdf.l_margin, pdf.get_y(), 6
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_xy(x0, y0)
    pdf.cell(90, h, "Years ended December 31")
    for k, year in enumerate(YEARS):
        pdf.set_xy(x0 + 90 + 30 * k, y0)
        pdf.cell(30, h, year, align="R")
    pdf.set_font("Helvetica", "", 9)
    for i, (label, _) in enumerate(rows):
        pdf.set_xy(x0, y0 + h * (i + 1))
        pdf.cell(90, h, label)
    for k in range(len(YEARS)):
        for i, (_, figures) in enumerate(rows):
            pdf.set_xy(x0 + 90 + 30 * k, y0 + h * (i + 1) + 0.4)
            pdf.cell(30, h, figures[k], align="R")
    pdf.set_xy(x0, y0 + h * (len(rows) + 1))


def build_report(seed: int = 0, pages: int = 12, tables_every: int = 4) -> Report:
    """A report of about `pages` pages: prose pages, a two-column page every few pages and one
    financial statement every `tables_every` pages (labels made unique per statement copy)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    rng = random.Random(seed)

    class PDF(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 6, HEADER, align="C", new_x="LMARGIN", new_y="NEXT")
            self.ln(2)

        def footer(self):
            self.set_y(-12)
            self.set_font("Helvetica", "", 8)
            self.cell(0, 6, f"Page {self.page_no()}", align="C")

    pdf = PDF(format="letter")
    pdf.set_auto_page_break(True, margin=16)
    report = Report(pdf=b"", pages=0)
    copy = 0
    page = 0
    while pdf.page_no() < pages:
        pdf.add_page()
        page += 1
        if page % tables_every == 0:
            statement = list(STATEMENTS)[copy % len(STATEMENTS)]
            copy += 1
            suffix = "" if copy <= len(STATEMENTS) else f" (segment {copy // len(STATEMENTS)})"
            pdf.set_font("Helvetica", "B", 13)
            pdf.start_section(statement + suffix, level=1)
            pdf.multi_cell(0, 7, statement + suffix, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 9)
            pdf.multi_cell(0, 5, "(Millions, except per share amounts) " + _sentence(rng, 10),
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
            rows = []
            for label in STATEMENTS[statement]:
                row_label = label + suffix.replace(" (segment", ", segment").replace(")", "") if suffix else label
                figures = [_figure(rng, i == 0) for i in range(len(YEARS))]
                rows.append((row_label, figures))
                for y, f in zip(YEARS, figures):
                    report.facts.append(Fact(statement + suffix, row_label, y, f))
            if copy % 2:  # a table drawn row by row, cell by cell (fpdf2's table())
                with pdf.table(col_widths=(90, 30, 30, 30), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
                               headings_style=FontFace(emphasis="BOLD"), borders_layout="HORIZONTAL_LINES",
                               line_height=6) as table:
                    table.row(["Years ended December 31", *YEARS])
                    for row_label, figures in rows:
                        table.row([row_label, *figures])
            else:  # drawn column by column, figures on a baseline 0.4 mm lower (as report
                # generators and spreadsheet exports write them): content order is not row order
                _column_major_table(pdf, rows)
            pdf.ln(4)
            pdf.set_font("Helvetica", "", 10)
            pdf.multi_cell(0, 5, " ".join(_sentence(rng) for _ in range(4)), new_x="LMARGIN", new_y="NEXT")
        elif page % tables_every == 2:
            pdf.set_font("Helvetica", "B", 13)
            title = f"Item 1A. Risk Factors: {rng.choice(TOPICS)}"
            pdf.start_section(title, level=1)
            pdf.multi_cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 10)
            left = [_sentence(rng) for _ in range(9)]
            right = [_sentence(rng) for _ in range(9)]
            with pdf.text_columns(ncols=2, gutter=8, text_align="LEFT") as cols:
                cols.write(" ".join(left))
                cols.new_column()
                cols.write(" ".join(right))
            report.column_sentences.append(left + right)
        else:
            pdf.set_font("Helvetica", "B", 13)
            title = f"Item 7. Management's Discussion and Analysis: {rng.choice(TOPICS)}"
            pdf.start_section(title, level=1)
            pdf.multi_cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 10)
            for _ in range(4):
                pdf.multi_cell(0, 5, " ".join(_sentence(rng) for _ in range(4)), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
    report.pages = pdf.page_no()
    report.pdf = bytes(pdf.output())
    return report
