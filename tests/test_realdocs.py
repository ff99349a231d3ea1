"""Issue 11, library side: structure-aware ingestion (PDF rows, columns, page headers, DOCX,
Markdown, HTML, URLs), provenance on spans, and the guarantees on what is kept."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from cprs_cli import segment
from cprs_cli.compressor import Compressor
from cprs_cli.errors import InputError, UsageError
from cprs_cli.ingest import Document, load_path, load_source, load_url
from cprs_cli.language import detect, language_warning
from cprs_cli.options import CompressOptions
from cprs_cli.result import Span
from cprs_cli.structure import Heading, Locator, structured_units

ROWS = [("Net sales", ["$ 6,379", "(9,554)", "5,136"]),
        ("Purchases of property, plant and equipment (PP&E)", ["$ (1,577)", "(1,373)", "(1,420)"]),
        ("Dividends paid to shareholders", ["$ (3,193)", "(2,803)", "(2,678)"])]
PROSE = ("The company invested in new plants during the year. Management expects strong cash flows. "
         "Pricing and supply chain costs were the main drivers of results in every business group. ")


def column_major_pdf(path: Path, pages: int = 4) -> Path:
    """Every page: a header, a heading, a table drawn column by column with figures on a lower
    baseline (as in the 10-K of issue 11), prose, a page footer."""
    from fpdf import FPDF

    class PDF(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 6, "ACME Corp | Annual Report 2018", align="C", new_x="LMARGIN", new_y="NEXT")

        def footer(self):
            self.set_y(-12)
            self.set_font("Helvetica", "", 8)
            self.cell(0, 6, f"Page {self.page_no()}", align="C")

    pdf = PDF()
    for p in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        title = f"Statement {p + 1}: Cash Flows" if p % 2 else f"Part {p + 1}: Discussion"
        pdf.start_section(title)
        pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        x0, y0 = pdf.l_margin, pdf.get_y() + 2
        for i, (label, _) in enumerate(ROWS):
            pdf.set_xy(x0, y0 + 6 * i)
            pdf.cell(90, 6, label)
        for k in range(3):
            for i, (_, figs) in enumerate(ROWS):
                pdf.set_xy(x0 + 90 + 30 * k, y0 + 6 * i + 0.4)
                pdf.cell(30, 6, figs[k], align="R")
        pdf.set_xy(x0, y0 + 6 * len(ROWS) + 6)
        pdf.multi_cell(0, 5, PROSE * 3, new_x="LMARGIN", new_y="NEXT")
    path.write_bytes(bytes(pdf.output()))
    return path


def two_column_pdf(path: Path) -> tuple[Path, list[str]]:
    from fpdf import FPDF

    left = [f"Left sentence number {i} talks about liquidity and the funding of operations." for i in range(8)]
    right = [f"Right sentence number {i} covers pension plans and the related obligations." for i in range(8)]
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "", 10)
    with pdf.text_columns(ncols=2, gutter=8) as cols:
        cols.write(" ".join(left))
        cols.new_column()
        cols.write(" ".join(right))
    path.write_bytes(bytes(pdf.output()))
    return path, left + right


# -- PDF ----------------------------------------------------------------------------------------


def test_pdf_table_rows_stay_whole(tmp_path):
    doc = load_path(column_major_pdf(tmp_path / "report.pdf"))
    lines = doc.text.split("\n")
    for label, figs in ROWS:
        assert " ".join([label, *figs]) in lines  # label and figures on one line, in order
    rows = {doc.text[a:b] for a, b in doc.blocks}
    units = {doc.text[a:b] for a, b in structured_units(doc.text, "sentence", doc.blocks, doc.skip).tolist()}
    for label, figs in ROWS:
        row = " ".join([label, *figs])
        assert row in rows and row in units  # one unit each


def test_pdf_pages_headers_and_sections(tmp_path):
    doc = load_path(column_major_pdf(tmp_path / "report.pdf", pages=4))
    assert doc.kind == "pdf" and doc.paged and len(doc.pages) == 4
    # page headers and footers are marked, still in the text, and in no unit
    skipped = [doc.text[a:b] for a, b in doc.skip]
    assert skipped.count("ACME Corp | Annual Report 2018") == 4
    assert {f"Page {i}" for i in range(1, 5)} <= set(skipped)
    units = structured_units(doc.text, "sentence", doc.blocks, doc.skip)
    for a, b in units.tolist():
        assert "ACME Corp" not in doc.text[a:b] and not doc.text[a:b].startswith("Page ")
    # every offset knows its page (1-based) and section (from the PDF's bookmarks)
    loc = doc.locator()
    third = doc.text.index("Part 3: Discussion")
    assert loc.page(third) == 3 and loc.section(third) == ["Part 3: Discussion"]
    last_row = doc.text.rindex("Net sales")
    assert loc.page(last_row) == 4 and loc.section(last_row) == ["Statement 4: Cash Flows"]
    assert loc.page(0) == 1


def test_pdf_two_columns_in_reading_order(tmp_path):
    path, sentences = two_column_pdf(tmp_path / "cols.pdf")
    flat = " ".join(load_path(path).text.split())
    positions = [flat.find(s) for s in sentences]
    assert -1 not in positions, "a sentence was cut by the other column"
    assert positions == sorted(positions)


def test_pdf_progress_counts_pages(tmp_path):
    seen = []
    load_path(column_major_pdf(tmp_path / "r.pdf", pages=3), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


# -- DOCX, Markdown, HTML -----------------------------------------------------------------------


def test_docx_headings_lists_and_table_rows(tmp_path):
    import docx

    d = docx.Document()
    d.add_heading("Annual Report", level=1)
    d.add_paragraph("The year was good for the company.")
    d.add_heading("Cash flows", level=2)
    d.add_paragraph("First point about liquidity", style="List Bullet")
    d.add_paragraph("Second point about debt", style="List Bullet")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "Purchases of PP&E", "$ (1,577)"
    t.cell(1, 0).text, t.cell(1, 1).text = "Dividends paid", "$ (3,193)"
    p = tmp_path / "r.docx"
    d.save(str(p))
    doc = load_path(p)
    assert [h.title for h in doc.headings] == ["Annual Report", "Cash flows"]
    assert [h.level for h in doc.headings] == [1, 2]
    assert "- First point about liquidity\n- Second point about debt" in doc.text
    units = [doc.text[a:b] for a, b in structured_units(doc.text, "sentence", doc.blocks, doc.skip).tolist()]
    assert "Purchases of PP&E | $ (1,577)" in units and "Dividends paid | $ (3,193)" in units
    assert "- First point about liquidity" in units
    loc = doc.locator()
    assert loc.section(doc.text.index("Dividends")) == ["Annual Report", "Cash flows"]
    assert loc.page(0) is None  # not a paged input


def test_markdown_headings_are_structure_and_text_unchanged(tmp_path):
    raw = "# Guide\n\nIntro sentence.\n\n## Install\n\nRun make.\n\n```\n# not a heading\n```\n\n### Deep\n\nText.\n"
    p = tmp_path / "g.md"
    p.write_text(raw)
    doc = load_path(p)
    assert doc.text == raw  # the text rule is unchanged: offsets point into the file
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Guide"), (2, "Install"), (3, "Deep")]
    assert doc.section_at(raw.index("Run make")) == ["Guide", "Install"]
    assert doc.section_at(raw.index("Text.")) == ["Guide", "Install", "Deep"]
    assert doc.section_at(raw.index("# not")) == ["Guide", "Install"]


def test_plain_text_units_unchanged():
    text = "One sentence here. Another one!\n\nA new paragraph with words.\n"
    for g, fn in (("sentence", segment.sentence_spans), ("paragraph", segment.paragraph_spans),
                  ("word", segment.word_spans)):
        assert np.array_equal(structured_units(text, g), fn(text))


HTML = """<html><head><title>Report</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/careers">Careers</a></nav>
<article><h1>Cash flows</h1><p>The company generated strong cash flows in 2018 and spent more on plants.</p>
<h2>Investing activities</h2>
<table><tr><th>Item</th><th>2018</th></tr>
<tr><td>Purchases of property, plant and equipment (PP&amp;E)</td><td>$ (1,577)</td></tr></table>
<p>More text follows here about the business and its prospects in the coming year.</p></article>
<footer>Copyright 2019 ACME. All rights reserved.</footer></body></html>"""


def test_html_main_content_with_structure(tmp_path):
    p = tmp_path / "page.html"
    p.write_text(HTML)
    doc = load_path(p)
    assert doc.kind == "html"
    assert "<" not in doc.text and "About us" not in doc.text and "Copyright" not in doc.text
    assert [h.title for h in doc.headings] == ["Cash flows", "Investing activities"]
    row = next(doc.text[a:b] for a, b in doc.blocks if "PP&E" in doc.text[a:b])
    assert "$ (1,577)" in row


# -- URLs (a local server on loopback only) -----------------------------------------------------


@pytest.fixture
def server():
    routes: dict[str, tuple[int, str, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, ctype, body = routes.get(self.path, (404, "text/plain", b"missing"))
            if ctype == "hang":
                threading.Event().wait(5)
                return
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def test_url_html_pdf_and_errors(server, tmp_path):
    base, routes = server
    routes["/page"] = (200, "text/html; charset=utf-8", HTML.encode())
    routes["/report"] = (200, "application/pdf", column_major_pdf(tmp_path / "r.pdf", 2).read_bytes())
    routes["/big"] = (200, "text/plain", b"x " * 5000)
    routes["/slow"] = (200, "hang", b"")
    doc = load_source(base + "/page")
    assert doc.kind == "html" and doc.source == base + "/page" and "Cash flows" in doc.text
    pdf = load_url(base + "/report")
    assert pdf.kind == "pdf" and len(pdf.pages) == 2
    with pytest.raises(InputError, match="HTTP 404") as e:
        load_url(base + "/nothing")
    assert base + "/nothing" in str(e.value)
    with pytest.raises(InputError, match="input size limit"):
        load_url(base + "/big", max_bytes=1000)
    with pytest.raises(InputError, match="timed out"):
        load_url(base + "/slow", timeout=0.5)
    with pytest.raises(InputError, match="cannot fetch"):
        load_url("http://127.0.0.1:9/")  # the discard port: nothing listens


# -- provenance and guarantees through the Compressor ---------------------------------------------


@pytest.fixture(scope="module")
def comp(tiny_encoder_critic_dir) -> Compressor:
    return Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=64)


def test_spans_carry_page_and_section(comp, tmp_path):
    doc = load_path(column_major_pdf(tmp_path / "r.pdf", pages=4))
    res = comp.compress_document(doc, query="purchases of PP&E", keep=[r"\(1,577\)"], rate=0.3)
    assert res.spans
    loc = doc.locator()
    for sp in res.spans:
        assert sp.page == loc.page(sp.start) and 1 <= sp.page <= 4
        assert list(sp.section) == loc.section(sp.start)
        assert doc.text[sp.start:sp.end] == sp.text
        assert "ACME Corp |" not in sp.text  # page headers are never kept
    d = res.to_dict()
    assert d["schema_version"] == 1 and all(isinstance(s["page"], int) for s in d["spans"])
    # the forced row: label and figure together, on every page it appears
    rows = [sp for sp in res.spans if "(1,577)" in sp.text]
    assert len(rows) == 4 and all(sp.forced for sp in rows)
    assert all("Purchases of property, plant and equipment (PP&E) $ (1,577)" in sp.text for sp in rows)
    assert sorted(sp.page for sp in rows) == [1, 2, 3, 4]


TEXT = ("Alpha opens the report. Bravo follows with figures. Charlie covers risks. "
        "Delta explains cash. Echo closes the report.")


def test_keep_first_and_keep_regex_force_units(comp, monkeypatch):
    monkeypatch.setattr(comp.critic, "dynamic", None)
    monkeypatch.setattr(comp.critic, "thresholds", {"default": 0.999999})  # the tags keep nothing
    res = comp.compress(TEXT, query="anything", keep_first=1, keep=[r"Delta"])
    assert [sp.text for sp in res.spans] == ["Alpha opens the report.", "Delta explains cash."]
    assert all(sp.forced for sp in res.spans) and not res.empty
    none = comp.compress(TEXT, query="anything")
    assert none.spans == [] and none.empty


def test_keep_counts_against_a_budget(comp):
    res = comp.compress(TEXT * 20, query="q", keep=["Echo closes"], max_tokens=40)
    assert sum("Echo closes" in sp.text for sp in res.spans) == 20  # forced, over the budget
    assert all(sp.forced for sp in res.spans)  # nothing else fits once the forced units are paid


def test_min_tokens_floor(comp, monkeypatch):
    monkeypatch.setattr(comp.critic, "dynamic", None)
    monkeypatch.setattr(comp.critic, "thresholds", {"default": 0.999999})
    res = comp.compress(TEXT, query="q", min_tokens=12)
    assert res.stats.output_tokens >= 12 and not res.empty
    assert comp.compress(TEXT, query="q", min_tokens=1).spans  # at least one unit


def test_empty_dynamic_output_warns(comp, monkeypatch):
    monkeypatch.setattr(comp.critic, "dynamic", None)
    monkeypatch.setattr(comp.critic, "thresholds", {"default": 0.999999})
    res = comp.compress(TEXT, query="unrelated question")
    assert res.empty and res.to_dict()["empty"] is True and res.compressed_text == ""
    codes = [w["code"] for w in res.stats.warnings]
    assert codes.count("empty") == 1
    assert "min_tokens" in next(w["message"] for w in res.stats.warnings if w["code"] == "empty")


def test_guarantee_options_are_validated():
    with pytest.raises(UsageError, match="keep pattern"):
        CompressOptions(query="q", keep=["("]).validate()
    with pytest.raises(UsageError, match="keep must be a list"):
        CompressOptions(query="q", keep="Delta").validate()
    with pytest.raises(UsageError, match="keep_first"):
        CompressOptions(query="q", keep_first=-1).validate()
    with pytest.raises(UsageError, match="min_tokens applies only without a budget"):
        CompressOptions(query="q", min_tokens=5, rate=0.1).validate()
    with pytest.raises(UsageError, match="query must not be empty"):
        CompressOptions(query=["ok", " "]).validate()


def test_several_queries_union_in_document_order(comp, monkeypatch):
    """One ingestion, one critic pass per query; the union keeps each span's queries."""
    calls = []

    def fake_select(text, probs, offsets, *, query, **kwargs):
        calls.append(query)
        word = query.split()[0]
        units = kwargs["units"]
        return [Span(int(a), int(b), text[a:b], 0.5) for a, b in units.tolist() if word in text[a:b]]

    monkeypatch.setattr(comp, "select_spans", fake_select)
    res = comp.compress(TEXT, query=["Delta please", "Bravo please", "Bravo or Delta"])
    assert calls == ["Delta please", "Bravo please", "Bravo or Delta"]
    assert [sp.text for sp in res.spans] == ["Bravo follows with figures.", "Delta explains cash."]
    assert [sp.queries for sp in res.spans] == [("Bravo please", "Bravo or Delta"), ("Delta please",)]
    d = res.to_dict()
    assert d["query"] == "Delta please" and d["queries"] == ["Delta please", "Bravo please", "Bravo or Delta"]
    assert d["stats"]["windows"] == 3 * comp.compress(TEXT, query="x").stats.windows


def test_language_detection_and_warning(comp):
    chinese = "公司在二零一八年的资本支出为十五亿七千七百万美元，主要用于新建工厂和设备更新。" * 20
    french = "Le conseil a approuvé le budget de la société pour l'année prochaine avec une large majorité. " * 10
    assert detect(chinese)[1] == "non-latin" and detect(french)[1] == "latin-other"
    assert detect(TEXT * 10)[1] == "english" and language_warning(TEXT * 10) is None
    res = comp.compress(chinese, query="capital expenditure")
    langs = [w for w in res.stats.warnings if w["code"] == "language"]
    assert len(langs) == 1 and "Han" in langs[0]["message"] and "English" in langs[0]["message"]


def test_locator_without_headings_or_pages():
    loc = Locator([0], [], paged=False)
    assert loc.page(10) is None and loc.section(10) == []
    loc = Locator([0, 100], [Heading(5, 10, 1, "A"), Heading(50, 55, 2, "B"), Heading(120, 125, 1, "C")], True)
    assert loc.page(0) == 1 and loc.page(99) == 1 and loc.page(100) == 2
    assert loc.section(0) == [] and loc.section(60) == ["A", "B"] and loc.section(130) == ["C"]


def test_document_default_is_unstructured():
    doc = Document("text", "x", "text")
    assert doc.headings == [] and doc.blocks == [] and doc.skip == [] and not doc.paged
