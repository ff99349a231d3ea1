"""Issue 11, library side: chat-message input/output, --keep-headings text, the HTML report
(checked in a real headless browser when one is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from cprs_cli.errors import InputError
from cprs_cli.messages import load_messages, parse_messages, render_messages
from cprs_cli.output import render_html, render_text
from cprs_cli.result import CompressionResult, Span, Stats

# -- chat messages --------------------------------------------------------------------------------

OFFICIAL = [{"role": "system", "content": "Extract the sentences that answer the question."},
            {"role": "user", "content": "When did Apollo 11 land?"},
            {"role": "context", "content": "Apollo 11 landed on 20 July 1969. It was a Sunday."}]


def test_official_messages_round_trip():
    chat = parse_messages(OFFICIAL)
    assert chat.form == "official"
    assert chat.instruction == OFFICIAL[0]["content"] and chat.query == OFFICIAL[1]["content"]
    assert chat.context == OFFICIAL[2]["content"]
    out = render_messages(chat, "Apollo 11 landed on 20 July 1969.")
    assert out[:2] == OFFICIAL[:2] and out[2] == {"role": "context", "content": "Apollo 11 landed on 20 July 1969."}
    assert OFFICIAL[2]["content"].endswith("Sunday.")  # the input is not changed


def test_openai_messages_turns_and_context_field():
    turns = [{"role": "system", "content": "Be brief."},
             {"role": "user", "content": [{"type": "text", "text": "Here is the report: sales rose 5%."}]},
             {"role": "assistant", "content": "Noted."},
             {"role": "user", "content": "How much did sales rise?"}]
    chat = parse_messages(turns)
    assert chat.form == "openai-turns" and chat.query == "How much did sales rise?"
    assert chat.context == "Here is the report: sales rose 5%.\n\nNoted." and chat.instruction == "Be brief."
    out = render_messages(chat, "sales rose 5%.")
    assert out == [turns[0], {"role": "user", "content": "sales rose 5%."}, turns[3]]

    obj = {"model": "x", "context": "Long document. Sales rose 5%.",
           "messages": [{"role": "user", "content": "How much did sales rise?"}]}
    chat = parse_messages(obj)
    assert chat.form == "openai-context" and chat.context == obj["context"] and chat.instruction is None
    back = render_messages(chat, "Sales rose 5%.")
    assert back == {**obj, "context": "Sales rose 5%."}


@pytest.mark.parametrize("raw,problem", [
    (b"{not json", "not a JSON messages file"),
    (b'{"a": 1}', "expected a list of messages"),
    (json.dumps([{"role": "context", "content": "doc"}]).encode(), "no user message"),
    (json.dumps([{"role": "user", "content": "only a question"}]).encode(), "no context"),
    (json.dumps([{"role": "context", "content": "doc"}, {"role": "user", "content": " "}]).encode(), "empty"),
])
def test_bad_messages_are_one_line_input_errors(raw, problem):
    with pytest.raises(InputError, match=problem) as e:
        load_messages(raw, "chat.json")
    assert "chat.json" in str(e.value) and "\n" not in str(e.value)


# -- keep_headings and the HTML report ----------------------------------------------------------

DOC = ("# Cash flows\n\nThe company spent more on plants. Purchases of PP&E $ (1,577).\n\n"
       "# Risks\n\nCurrency moved. Demand fell in Asia.\n")


def make_result(spans_at: list[tuple[str, int | None, tuple[str, ...]]], text: str = DOC) -> CompressionResult:
    spans = []
    for piece, page, section in spans_at:
        a = text.index(piece)
        spans.append(Span(a, a + len(piece), piece, 0.81, page=page, section=section, queries=("q",)))
    sep = "\n[...]\n"
    compressed = sep.join(sp.text for sp in spans)
    stats = Stats(input_tokens=40, output_tokens=12, ratio=3.3, windows=1, seconds=0.1, device="cpu")
    return CompressionResult(source="report.md", query="What was spent on PP&E?", instruction="i",
                             granularity="sentence", model_name="mini", model_sha256="0" * 64, spans=spans,
                             compressed_text=compressed, stats=stats, text_length=len(text),
                             queries=("What was spent on PP&E?",), separator=sep)


def test_keep_headings_once_per_section():
    r = make_result([("The company spent more on plants.", None, ("Cash flows",)),
                     ("Purchases of PP&E $ (1,577).", None, ("Cash flows",)),
                     ("Demand fell in Asia.", None, ("Risks",))])
    assert render_text(r) == r.compressed_text + "\n"
    assert render_text(r, keep_headings=True) == (
        "Cash flows\nThe company spent more on plants. Purchases of PP&E $ (1,577).\n[...]\n"
        "Risks\nDemand fell in Asia.\n").replace("plants. Purchases", "plants.\n[...]\nPurchases")


def test_html_report_marks_spans_and_escapes():
    r = make_result([("Purchases of PP&E $ (1,577).", 4, ("Cash flows",)), ("Currency moved.", 5, ("Risks",))])
    html = render_html(r, DOC)
    assert html.count('<mark class="kept"') == 2
    assert 'title="score 0.81 · page 4 · Cash flows"' in html
    assert "PP&amp;E" in html and "<script src" not in html and "http" not in html.split("<main")[1]
    assert "<details>" not in html  # a small input is not folded
    assert shown_text(html) == DOC  # the whole document, in place


def shown_text(html: str) -> str:
    """The document text a report shows: its <main>, tags, labels and fold controls removed."""
    import html as h

    main = html.split('aria-label="document with kept spans marked">')[1].split("</main>")[0]
    main = re.sub(r'<span class="sr">kept: </span>|<summary>.*?</summary>', "", main)
    return h.unescape(re.sub(r"<[^>]+>", "", main))


def test_html_report_folds_large_inputs():
    big = "Filler sentence about nothing in particular. " * 50_000 + "The answer is 42." + " More filler." * 10
    r = make_result([("The answer is 42.", None, ())], text=big)
    html = render_html(r, big)
    # the long run before the answer folds; the short one after it (130 characters) does not
    assert html.count("<details><summary>") == 1 and "[2,250,000 characters dropped: show]" in html
    assert shown_text(html) == big
    small = render_html(r, big, fold_bytes=len(big) * 2)
    assert "<details>" not in small


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless browser installed (apt-get install chromium)")
def test_html_report_in_headless_browser(tmp_path, tiny_encoder_critic_dir):
    """The report opens in a real browser; the rendered DOM marks every kept span of the JSON."""
    from cprs_cli.compressor import Compressor
    from cprs_cli.ingest import load_path

    src = tmp_path / "doc.md"
    src.write_text(DOC * 5)
    doc = load_path(src)
    result = Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=64).compress_document(
        doc, query="What was spent on PP&E?", rate=0.3)
    data = result.to_dict()
    page = tmp_path / "report.html"
    page.write_text(render_html(result, doc.text))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    marks = re.findall(r'<mark class="kept"[^>]*>(.*?)</mark>', dom, re.S)
    assert len(marks) == len(data["spans"]) > 0
    import html as h

    for mark, span in zip(marks, data["spans"]):
        assert h.unescape(re.sub(r"<[^>]+>", "", mark)).removeprefix("kept: ") == span["text"]
    assert 'id="copy"' in dom and f'data-kept="{len(data["spans"])}"' in dom
