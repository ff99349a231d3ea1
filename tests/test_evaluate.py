"""cprs_cli.train.evaluate: metrics, the budgeted BM25 baseline, the report plumbing."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from cprs_cli.result import CompressionResult, Span, Stats
from cprs_cli.train import data as D
from cprs_cli.train import evaluate as E


# --------------------------------------------------------------------------- metrics


def test_coverage_recall():
    assert E.coverage_recall([(0, 10)], [(0, 10)]) == 1.0
    assert E.coverage_recall([(0, 10)], [(5, 20)]) == 0.5
    assert E.coverage_recall([(0, 10), (20, 30)], [(8, 22)]) == pytest.approx(4 / 20)
    assert E.coverage_recall([(0, 10)], []) == 0.0
    assert E.coverage_recall([], [(0, 5)]) is None
    # overlapping / unsorted kept spans are not double counted
    assert E.coverage_recall([(10, 20)], [(15, 25), (0, 12), (11, 16)]) == 1.0
    assert E.covered_chars([(0, 4), (6, 8)], [(3, 7)]) == (2, 6)


def test_answer_kept():
    out = "The capital is  Paris.\nIt lies on the Seine."
    assert E.answer_kept(out, ["paris"])
    assert E.answer_kept(out, ["London", "the   SEINE"])
    assert not E.answer_kept(out, ["London"])
    assert not E.answer_kept(out, ["", "  "])
    assert not E.answer_kept("", ["Paris"])
    assert E.all_answers_kept(out, ["Paris", "Seine"])
    assert not E.all_answers_kept(out, ["Paris", "Rhine"])
    assert not E.all_answers_kept(out, [])


# --------------------------------------------------------------------------- BM25


def _words(texts):
    return [len(t.split()) for t in texts]


def _bm25():
    # one "token" per whitespace word keeps the budget arithmetic readable
    return E.BM25Baseline(count=_words)


DOC = (
    "Cats are small mammals. "
    "The Eiffel Tower is in Paris and was built in 1889. "
    "Dogs bark loudly at night. "
    "Paris is the capital of France. "
    "Bananas are yellow."
)


def test_bm25_ranks_and_respects_budget():
    bm = _bm25()
    q = "When was the Eiffel Tower in Paris built?"
    spans, text, used = bm.select(DOC, q, 100)
    assert used <= 100 and len(spans) == 5  # everything fits
    spans, text, used = bm.select(DOC, q, 11)
    assert text == "The Eiffel Tower is in Paris and was built in 1889."
    assert used == 11
    # the top sentence (11 words) does not fit in 8: skipped, the next best that fits is taken
    spans, text, used = bm.select(DOC, q, 8)
    assert used <= 8 and text == "Paris is the capital of France."
    for s, e in spans:
        assert DOC[s:e] in text


def test_bm25_document_order_and_zero_budget():
    bm = _bm25()
    spans, text, used = bm.select(DOC, "Paris capital France Eiffel Tower", 17)
    assert spans == sorted(spans) and used <= 17
    assert text.split("\n") == [DOC[s:e] for s, e in spans]
    assert bm.select(DOC, "Paris", 0) == ([], "", 0)
    assert bm.select("", "Paris", 10) == ([], "", 0)


def test_bm25_query_without_known_words_still_fills_budget():
    spans, text, used = _bm25().select(DOC, "zzzz qqqq", 9)
    assert 0 < used <= 9


def test_bm25_real_tokens_budget():
    bm = E.BM25Baseline()
    for budget in (5, 20, 40):
        _, text, used = bm.select(DOC * 3, "Eiffel Tower", budget)
        assert used <= budget
        assert E.count_tokens(text) <= budget + text.count("\n") + 1


# --------------------------------------------------------------------------- end to end (fake critic)


class FakeCompressor:
    """Keeps every sentence that shares a word of 5+ letters with the query."""

    def compress(self, text, *, query, task=None, granularity="sentence", **kw):
        from cprs_cli.segment import sentence_spans

        keys = {w.lower() for w in re.findall(r"\w{5,}", query)}
        spans = [
            Span(int(s), int(e), text[s:e], 1.0)
            for s, e in sentence_spans(text)
            if keys & {w.lower() for w in re.findall(r"\w{5,}", text[s:e])}
        ]
        out = "\n".join(s.text for s in spans)
        it, ot = E.count_tokens(text), E.count_tokens(out) if out else 0
        return CompressionResult("-", query, "", granularity, "fake", "", spans, out,
                                 Stats(it, ot, it / max(ot, 1), 1, 0.0, "cpu"))


@pytest.fixture()
def tiny_data(tmp_path):
    recs = []
    for i in range(30):
        doc = (f"Place{i} is a town. Its mayor is Person{i}. "
               f"Filler sentence number {i} about nothing at all. Another filler line here.")
        ans = f"Person{i}"
        s = doc.index(ans)
        recs.append(dict(id=f"a{i}", source="squad2", query=f"Who is the mayor of Place{i}?",
                         document=doc, evidence=[[s, s + len(ans)]], evidence_level="token",
                         answers=[ans], answerable=True))
        recs.append(dict(id=f"u{i}", source="squad2", query="Who painted Guernica?",
                         document=doc, evidence=[], evidence_level="token", answers=[], answerable=False))
    with gzip.open(tmp_path / "squad2.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    D._val_hashes_for.cache_clear()
    return tmp_path


def test_evaluate_end_to_end_fake(tiny_data, tmp_path):
    rows = [E.ROW_BY_NAME["squad_answers"]]
    res = E.evaluate(FakeCompressor(), rows, data_dir=tiny_data, log=lambda m: None)
    (row,) = res["rows"]
    assert row["n"] == 3 and row["errors"] == 0  # 3 val documents of 30
    assert row["critic"] == 1.0  # "Its mayor is PersonN." shares "mayor" with the query
    assert row["bm25"] is not None and row["ratio"] > 1 and row["ratio_mean"] > 1
    una = res["unanswerable"]["squad_answers (squad2)"]
    assert una["n"] == 3 and una["mean_output_tokens"] == 0 and una["empty_share"] == 1.0
    for ex in res["examples"]["squad_answers"]:
        if ex["answerable"]:
            assert ex["bm25_tokens"] <= ex["output_tokens"]

    report = {
        "model": "fake", "mode": "quick", "command": "python -m cprs_cli.train.evaluate --quick",
        "date": "2025-01-01T00:00:00+00:00", "machine": E.machine_info("cpu"), "seconds": 1.0,
        "out": "x.json", **res,
    }
    md = tmp_path / "quality.md"
    E.update_markdown(md, "fake:quick", E.markdown_section(report))
    E.update_markdown(md, "other:full", "## other\n")
    E.update_markdown(md, "fake:quick", E.markdown_section(report))  # rewritten, not appended
    text = md.read_text()
    assert text.count("<!-- quality:fake:quick -->") == 1 and "## other" in text
    assert "python -m cprs_cli.train.evaluate --quick" in text and "SQuAD" in text


def test_niah_items_small():
    pytest.importorskip("cprs_cli.synthetic")
    items = E.niah_items(8 * 1024, quick=True, seed=0)
    assert len(items) == 6
    for it in items:
        assert it.answers and all(a in it.document for a in it.answers)
        assert 20_000 < len(it.document) < 60_000


def test_evaluate_end_to_end_tiny_critic(tiny_encoder_critic_dir, tiny_data, tmp_path):
    """The real Compressor on a random tiny critic: plumbing only, never quality."""
    comp = E.load_compressor(str(tiny_encoder_critic_dir), "cpu", None, None)
    niah = E.RowSpec("niah_tiny", "NIAH tiny", "niah", "needles", "sentence", "needle", niah_tokens=8 * 1024)
    res = E.evaluate(comp, [niah, E.ROW_BY_NAME["squad_answers"], E.ROW_BY_NAME["squad_facts"]],
                     quick=True, limit=2, data_dir=tiny_data, log=lambda m: None)
    names = [r["name"] for r in res["rows"]]
    assert names == ["niah_tiny", "squad_answers", "squad_facts"]
    for row in res["rows"]:
        assert row["errors"] == 0 and row["n"] == 2
        assert 0.0 <= row["critic"] <= 1.0 and 0.0 <= row["bm25"] <= 1.0
    for rows in res["examples"].values():
        for ex in rows:
            if ex["answerable"]:
                assert ex["bm25_tokens"] <= ex["output_tokens"]


def test_main_writes_reports(tiny_encoder_critic_dir, tiny_data, tmp_path):
    out, md = tmp_path / "q" / "tiny.json", tmp_path / "quality.md"
    rc = E.main(["--model", str(tiny_encoder_critic_dir), "--device", "cpu", "--rows", "squad_answers",
                 "--limit", "1", "--out", str(out), "--md", str(md), "--data-dir", str(tiny_data)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["model"] == "tiny-encoder" and rep["rows"][0]["n"] == 1
    assert "--rows squad_answers" in rep["command"]
    text = md.read_text()
    assert "<!-- quality:tiny-encoder:limit-1 -->" in text and rep["command"] in text
