"""Issue 11, CLI side: the flags over the library's guarantees (--keep, --keep-first, --min-tokens,
repeated -q), the empty-output warning and --fail-on-empty, the language warning once per run,
--format html and messages, --messages input, URLs, PDF page progress and --keep-headings.

The tiny critic of conftest.py tags at random; "keep nothing" is forced with a keep-probability
threshold it never reaches, so what is kept comes from the flags under test alone.
"""

from __future__ import annotations

import html as html_lib
import http.server
import json
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cprs_cli import cli
from cprs_cli.cli import app

DOC = ("# Results\n\nApollo 11 landed on the Moon on 20 July 1969. Neil Armstrong and Buzz Aldrin "
       "walked on the surface.\n\n## Crew\n\nMichael Collins stayed in orbit aboard Columbia. "
       "The crew returned on 24 July.\n")
KEEP_NOTHING = ["--threshold", "0.9999"]  # the random critic is never this sure
EMPTY_LINE = ("warning: {name}: no span judged relevant to the query; use --max-tokens or --min-tokens "
              "to force output")
CHINESE = "公司在二零一八年的资本支出为十五亿七千七百万美元，主要用于新建工厂和设备更新。" * 20


def invoke(*args, input: str | bytes | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def model(tiny_encoder_critic_dir) -> str:
    return str(tiny_encoder_critic_dir)


@pytest.fixture
def doc(tmp_path) -> Path:
    path = tmp_path / "apollo.md"
    path.write_text(DOC)
    return path


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cprs: warning:")]


# --------------------------------------------------------------------------- guarantees


def test_keep_regex_keeps_what_nothing_else_would(model, doc):
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING)
    assert r.exit_code == 0 and r.stdout == "\n"
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", "-f", "json", *KEEP_NOTHING,
               "--keep", r"Collins", "--keep", r"Buzz\s+Aldrin")
    assert r.exit_code == 0, r.stderr
    spans = json.loads(r.stdout)["spans"]
    assert [s["text"] for s in spans] == [
        "Neil Armstrong and Buzz Aldrin walked on the surface.",
        "Michael Collins stayed in orbit aboard Columbia."]
    assert all(s["forced"] for s in spans)
    assert warnings_of(r.stderr) == []  # something was kept: no empty warning


def test_keep_first_and_min_tokens(model, doc):
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING, "--keep-first", "2")
    assert r.exit_code == 0, r.stderr
    # the first two units (the heading and the first sentence), one span: only a blank line between
    assert r.stdout == "# Results\n\nApollo 11 landed on the Moon on 20 July 1969.\n"
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", "-f", "json", *KEEP_NOTHING,
               "--min-tokens", "12")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert not out["empty"] and out["stats"]["output_tokens"] >= 12


def test_guarantee_flags_are_checked_and_named(model, doc):
    r = invoke("compress", doc, "-q", "q", "--model", model, "--keep", "([")
    assert r.exit_code == 2 and "cprs: error: --keep pattern '(['" in r.stderr
    r = invoke("compress", doc, "-q", "q", "--model", model, "--min-tokens", "5", "--rate", "0.2")
    assert r.exit_code == 2
    assert "--min-tokens applies only without a budget; --rate ranks" in r.stderr
    r = invoke("compress", doc, "-q", "q", "--model", model, "--keep-first", "-1")
    assert r.exit_code == 2 and "--keep-first" in r.stderr
    assert {"keep", "keep_first", "min_tokens"} <= set(cli.FLAGS)


@pytest.mark.parametrize("args, flag", [
    (["--keep-first", "-1"], "--keep-first"), (["--min-tokens", "0"], "--min-tokens"),
    (["--fetch-timeout", "0"], "--fetch-timeout"), (["--fetch-timeout", "nan"], "--fetch-timeout"),
    (["--fetch-timeout", "inf"], "--fetch-timeout"), (["--max-input-mb", "inf"], "--max-input-mb"),
])
def test_bad_values_of_the_new_flags_are_usage_errors(doc, tmp_path, args, flag):
    r = invoke("compress", doc, "-q", "q", "--model", tmp_path / "unused", *args)
    assert r.exit_code == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("cprs: error:")]
    assert len(errors) == 1 and flag in errors[0] and "Traceback" not in r.stderr


def test_messages_from_a_terminal_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    r = invoke("compress", "--messages", "-", "--model", tmp_path / "unused")
    assert r.exit_code == 2
    assert "cprs: error: --messages -: pipe the chat on stdin (it is a terminal), or give a FILE" in r.stderr


def test_several_queries_one_run(model, doc):
    r = invoke("compress", doc, "-q", "When did it land?", "-q", "Who stayed in orbit?", "--model", model,
               "--quiet", "-f", "json", "--rate", "0.5")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["query"] == "When did it land?"
    assert out["queries"] == ["When did it land?", "Who stayed in orbit?"]
    assert out["spans"] and all(set(s["queries"]) <= set(out["queries"]) and s["queries"] for s in out["spans"])
    single = json.loads(invoke("compress", doc, "-q", "When did it land?", "--model", model, "--quiet",
                               "-f", "json", "--rate", "0.5").stdout)
    assert out["stats"]["windows"] == 2 * single["stats"]["windows"]  # one critic pass per query


# --------------------------------------------------------------------------- empty output


def test_empty_output_warns_exits_0_and_fail_on_empty_exits_5(model, doc, tmp_path):
    r = invoke("compress", doc, "-q", "q", "--model", model, *KEEP_NOTHING)
    assert r.exit_code == 0 and r.stdout == "\n"
    assert warnings_of(r.stderr) == ["cprs: " + EMPTY_LINE.format(name=doc)]
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", "-f", "json", *KEEP_NOTHING)
    assert json.loads(r.stdout)["empty"] is True
    assert warnings_of(r.stderr) == ["cprs: " + EMPTY_LINE.format(name=doc)]  # shown even with --quiet
    out = tmp_path / "out"
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING, "--fail-on-empty",
               "--output-dir", out)
    assert r.exit_code == 5
    assert (out / "apollo.md.cprs.txt").read_text() == "\n"  # the empty result is still written
    assert "cprs: error: nothing was kept from 1 of 1 document (--fail-on-empty)" in r.stderr
    # something kept: --fail-on-empty changes nothing
    r = invoke("compress", doc, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING, "--fail-on-empty",
               "--keep-first", "1")
    assert r.exit_code == 0 and r.stdout == "# Results\n"


def test_fail_on_empty_counts_the_empty_documents_of_a_batch(model, doc, tmp_path):
    other = tmp_path / "other.md"
    other.write_text(DOC.replace("Apollo", "Gemini"))
    r = invoke("compress", doc, other, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING,
               "--keep", "Gemini", "--fail-on-empty")
    assert r.exit_code == 5
    assert warnings_of(r.stderr) == ["cprs: " + EMPTY_LINE.format(name=doc)]
    assert "nothing was kept from 1 of 2 documents" in r.stderr
    assert "==> " in r.stdout and "Gemini 11 landed" in r.stdout


def test_a_pdf_of_only_headers_and_footers_is_empty_in_every_mode(model, tmp_path):
    """`empty` means nothing was kept, with a budget too; the warning says why each time."""
    from fpdf import FPDF

    pdf = FPDF()
    for p in range(4):
        pdf.add_page()
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(0, 6, "ACME Corp | Annual Report 2018", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(-12)
        pdf.cell(0, 6, f"Page {p + 1}", align="C")
    path = tmp_path / "frame.pdf"
    path.write_bytes(bytes(pdf.output()))
    for budget in ([], ["--rate", "0.5"], ["--min-tokens", "5"]):
        r = invoke("compress", path, "-q", "q", "--model", model, "--quiet", "-f", "json", *budget)
        assert r.exit_code == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["empty"] is True and out["spans"] == []
        assert [w["code"] for w in out["stats"]["warnings"]] == ["empty"]
        assert warnings_of(r.stderr) == [f"cprs: warning: {path}: nothing can be kept: the document has no "
                                         "unit of text outside its page headers and footers, which are never kept"]
    r = invoke("compress", path, "-q", "q", "--model", model, "--quiet", "--rate", "0.5", "--fail-on-empty")
    assert r.exit_code == 5


def test_empty_messages_name_flags():
    from cprs_cli.compressor import empty_message

    assert cli._warning_text({"code": "empty", "message": empty_message(None, 3)}) == (
        "no span judged relevant to the query; use --max-tokens or --min-tokens to force output")
    assert cli._warning_text({"code": "empty", "message": empty_message(40, 3)}) == (
        "nothing fit the budget of 40 tokens; raise --max-tokens or --rate")
    assert "page headers" in empty_message(40, 0) and "page headers" in empty_message(None, 0)
    # other warnings are printed as the library words them ("query" is not --query there)
    msg = "the query is 200 tokens long"
    assert cli._warning_text({"code": "query_truncated", "message": msg}) == msg


# --------------------------------------------------------------------------- language


def test_language_warning_once_per_run(model, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"zh{i}.txt")
        paths[-1].write_text(CHINESE)
    r = invoke("compress", *paths, "-q", "capital expenditure", "--model", model, "--quiet", "-f", "jsonl",
               "--rate", "0.5")
    assert r.exit_code == 0, r.stderr
    lang = [line for line in warnings_of(r.stderr) if "trained on English" in line]
    assert lang == [f"cprs: warning: {paths[0]}: the document is mostly Han script; the critics were "
                    "trained on English text, so what they keep may miss the answer"]
    for line in r.stdout.splitlines():  # every result still records it
        assert [w["code"] for w in json.loads(line)["stats"]["warnings"]] == ["language"]


def test_the_empty_warning_is_said_for_each_document(model, doc, tmp_path):
    other = tmp_path / "other.md"
    other.write_text(DOC)
    r = invoke("compress", doc, other, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING)
    assert r.exit_code == 0
    assert warnings_of(r.stderr) == ["cprs: " + EMPTY_LINE.format(name=doc),
                                     "cprs: " + EMPTY_LINE.format(name=other)]


# --------------------------------------------------------------------------- formats


def marks(report: str) -> list[str]:
    found = re.findall(r'<mark class="kept"[^>]*>(.*?)</mark>', report, re.S)
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", m)).removeprefix("kept: ") for m in found]


def test_html_report_matches_the_json(model, doc, tmp_path):
    args = ["compress", doc, "-q", "When did it land?", "--model", model, "--quiet", "--rate", "0.4"]
    spans = json.loads(invoke(*args, "-f", "json").stdout)["spans"]
    r = invoke(*args, "-f", "html")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("<!DOCTYPE html>") and len(spans) > 0
    assert marks(r.stdout) == [s["text"] for s in spans]
    assert f'data-kept="{len(spans)}"' in r.stdout
    # the whole document is shown: kept and dropped text together is the document text
    main = r.stdout.split('aria-label="document with kept spans marked">')[1].split("</main>")[0]
    main = re.sub(r'<span class="sr">kept: </span>', "", main)
    assert html_lib.unescape(re.sub(r"<[^>]+>", "", main)) == DOC


def test_html_takes_one_document_per_stream(model, doc, tmp_path):
    other = tmp_path / "b.txt"
    other.write_text("Another document about the Moon. It has two sentences.\n")
    r = invoke("compress", doc, other, "-q", "q", "--model", model, "-f", "html")
    assert r.exit_code == 2 and "--format html writes one document" in r.stderr
    out = tmp_path / "out"
    r = invoke("compress", doc, other, "-q", "q", "--model", model, "--quiet", "-f", "html", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["apollo.md.cprs.html", "b.txt.cprs.html"]
    assert "Another document about the Moon." in (out / "b.txt.cprs.html").read_text()


def test_keep_headings_in_text_output(model, doc):
    args = ["compress", doc, "-q", "q", "--model", model, "--quiet", *KEEP_NOTHING, "--keep", "Collins"]
    assert invoke(*args).stdout == "Michael Collins stayed in orbit aboard Columbia.\n"
    assert invoke(*args, "--keep-headings").stdout == "Crew\nMichael Collins stayed in orbit aboard Columbia.\n"
    r = invoke(*args, "--keep-headings", "-f", "jsonl")
    assert r.exit_code == 2 and "--keep-headings applies to --format text and messages" in r.stderr


OFFICIAL = [{"role": "system", "content": "Extract the sentences that answer the question."},
            {"role": "user", "content": "When did Apollo 11 land?"},
            {"role": "context", "content": DOC}]


def test_messages_in_and_out(model, tmp_path):
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps(OFFICIAL))
    r = invoke("compress", "--messages", chat, "--model", model, "--quiet", "-f", "json", "--keep", "Collins",
               *KEEP_NOTHING)
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == str(chat) and out["query"] == OFFICIAL[1]["content"]
    assert out["instruction"] == OFFICIAL[0]["content"]
    assert out["compressed_text"] == "Michael Collins stayed in orbit aboard Columbia."
    r = invoke("compress", "--messages", chat, "--model", model, "--quiet", "-f", "messages", "--keep", "Collins",
               *KEEP_NOTHING, "--keep-headings")
    assert r.exit_code == 0, r.stderr
    kept = "Crew\nMichael Collins stayed in orbit aboard Columbia."
    assert json.loads(r.stdout) == [OFFICIAL[0], OFFICIAL[1], {"role": "context", "content": kept}]
    assert json.loads(chat.read_text()) == OFFICIAL  # the input is not changed


def test_openai_messages_on_stdin_and_flags_that_replace_the_chat(model):
    chat = {"messages": [{"role": "user", "content": DOC}, {"role": "assistant", "content": "Noted."},
                         {"role": "user", "content": "Who stayed in orbit?"}]}
    r = invoke("compress", "--messages", "-", "--model", model, "--quiet", "-f", "messages", "--keep",
               "Collins", *KEEP_NOTHING, input=json.dumps(chat))
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"messages": [
        {"role": "user", "content": "Michael Collins stayed in orbit aboard Columbia."},
        {"role": "user", "content": "Who stayed in orbit?"}]}
    r = invoke("compress", "--messages", "-", "--model", model, "--quiet", "-f", "json", "-q", "Mine?",
               "--task", "needles", *KEEP_NOTHING, input=json.dumps(chat))
    out = json.loads(r.stdout)
    assert out["query"] == "Mine?" and out["source"] == "<stdin>"
    from cprs_cli.instructions import TASKS

    assert out["instruction"] == TASKS["needles"]


@pytest.mark.parametrize("args, code, message", [
    (["--messages", "{chat}", "{doc}"], 2, "give either PATHS or --messages, not both"),
    (["{doc}", "-q", "q", "-f", "messages"], 2, "--format messages writes a chat back"),
    (["{doc}"], 2, "missing option --query"),
    (["--messages", "{bad}"], 3, "bad.json: not a JSON messages file"),
    (["--messages", "{nouser}"], 3, "nouser.json: not a messages list: no user message (the query)"),
    (["--messages", "{missing}"], 3, "missing.json: no such file"),
])
def test_messages_errors_are_one_line(model, doc, tmp_path, args, code, message):
    files = {"chat": tmp_path / "chat.json", "bad": tmp_path / "bad.json", "nouser": tmp_path / "nouser.json",
             "missing": tmp_path / "missing.json", "doc": doc}
    files["chat"].write_text(json.dumps(OFFICIAL))
    files["bad"].write_text('[{"role": "user", "content": "q"')
    files["nouser"].write_text(json.dumps([{"role": "context", "content": DOC}]))
    r = invoke("compress", *[a.format(**files) for a in args], "--model", model)
    assert r.exit_code == code
    errors = [line for line in r.stderr.splitlines() if line.startswith("cprs: error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- URLs


@pytest.fixture
def site(tmp_path):
    """A loopback http.server over a folder: (base URL, folder). Nothing leaves the machine."""
    root = tmp_path / "site"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_urls_are_fetched_and_named_under_output_dir(model, site, tmp_path):
    base, root = site
    (root / "page.html").write_text("<html><body><article><h1>Mission</h1><p>Apollo 11 landed on the "
                                    "Moon in 1969.</p><p>Collins stayed in orbit.</p></article></body></html>")
    (root / "apollo.md").write_text(DOC)
    r = invoke("compress", f"{base}/page.html", "-q", "q", "--model", model, "--quiet", "-f", "json",
               "--keep", "Collins", *KEEP_NOTHING)
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == f"{base}/page.html"
    assert out["compressed_text"] == "Collins stayed in orbit."
    assert out["spans"][0]["section"] == ["Mission"]  # the page's structure came with it
    dest = tmp_path / "out"
    port = base.rsplit(":", 1)[1]
    r = invoke("compress", f"{base}/page.html", f"{base}/apollo.md?v=2", f"{base}/apollo.md", "-q", "q",
               "--model", model, "--quiet", "--output-dir", dest)
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == [
        f"127.0.0.1_{port}_apollo.md.cprs.txt", f"127.0.0.1_{port}_apollo.md_v_2.cprs.txt",
        f"127.0.0.1_{port}_page.html.cprs.txt"]


def test_url_name_never_leaves_the_output_dir():
    from cprs_cli.batch import URL_NAME_MAX, url_output_name

    assert url_output_name("https://example.com/reports/10-k.pdf") == "example.com_reports_10-k.pdf"
    assert url_output_name("https://example.com/") == "example.com"
    assert url_output_name("http://h/../../etc/passwd") == "h_.._.._etc_passwd"
    assert "/" not in url_output_name("http://h/a/%2F..%2F/b")
    long = [url_output_name(f"https://example.com/{'x' * 500}?page={i}") for i in range(2)]
    assert len(long[0]) == URL_NAME_MAX and long[0] != long[1]


def test_a_url_that_fails_is_one_line_and_the_batch_goes_on(model, site, doc):
    base, root = site
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = invoke("compress", f"http://127.0.0.1:{closed}/x.html", f"{base}/missing.html", doc, "-q", "q",
               "--model", model, "--quiet", "-f", "jsonl")
    assert r.exit_code == 3
    errors = [line for line in r.stderr.splitlines() if line.startswith("cprs: error:")]
    assert errors == [f"cprs: error: http://127.0.0.1:{closed}/x.html: cannot fetch (Connection refused)",
                      f"cprs: error: {base}/missing.html: cannot fetch (HTTP 404 File not found)"]
    assert [json.loads(line)["source"] for line in r.stdout.splitlines()] == [str(doc)]


# --------------------------------------------------------------------------- progress


def test_pdf_extraction_shows_page_progress(model, tmp_path, monkeypatch):
    """The reading stage of a PDF becomes a bar of its pages: extraction's progress callback
    reaches the stage's task."""
    import io

    from badinput.pdfbuild import make_pdf
    from rich.console import Console

    from cprs_cli import console as cli_console
    from cprs_cli import ingest

    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr(cli_console, "err_console", lambda: terminal)
    uis, seen = [], []
    real_ui, real_load = cli_console.ProgressUI, ingest.load_path
    monkeypatch.setattr(cli_console, "ProgressUI", lambda *a, **k: uis.append(real_ui(*a, **k)) or uis[-1])

    def load_path(*args, **kwargs):
        doc = real_load(*args, **kwargs)
        task = next(t for t in uis[0]._progress.tasks if t.description.startswith("reading"))
        seen.append((task.completed, task.total))
        return doc

    monkeypatch.setattr(ingest, "load_path", load_path)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf([f"Page {i} says something about Apollo." for i in range(5)]))
    r = invoke("compress", pdf, "-q", "q", "--model", model)
    assert r.exit_code == 0, r.stderr
    assert seen == [(5, 5)]


# --------------------------------------------------------------------------- the report in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless browser installed (apt-get install chromium; "
                                             ".ci/run tries to, see docs/reliability.md)")
def test_cli_html_report_in_headless_browser(model, tmp_path):
    """`cprs compress report.pdf -f html -o FILE` opens in Chromium; the rendered DOM marks every
    span of the same run's JSON, with its page."""
    from badinput.pdfbuild import make_pdf

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(["Apollo 11 landed on the Moon in July 1969. Armstrong walked first.",
                              "Collins stayed in orbit aboard Columbia. Purchases of PP&E were $ (1,577).",
                              "The crew came home on 24 July. The mission met its goal."]))
    args = ["compress", pdf, "-q", "When did Apollo 11 land?", "--model", model, "--quiet", "--rate", "0.4"]
    spans = json.loads(invoke(*args, "-f", "json").stdout)["spans"]
    page = tmp_path / "report.html"
    r = invoke(*args, "-f", "html", "-o", page)
    assert r.exit_code == 0, r.stderr
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'id="copy"' in dom and f'data-kept="{len(spans)}"' in dom
    assert len(spans) > 0 and marks(dom) == [s["text"] for s in spans]
    pages = re.findall(r'<mark class="kept"[^>]*data-page="(\d+)"', dom)
    assert [int(p) for p in pages] == [s["page"] for s in spans]
