"""cprs_cli.evaluation.quality (with its metrics, baselines and report): metrics, intervals, the
baselines at the critic's budget, the report plumbing; and training.calibrate on top of it."""

from __future__ import annotations

import gzip
import json
import pickle

import numpy as np
import pytest

from cprs_cli import segment
from cprs_cli.evaluation import baselines as B
from cprs_cli.evaluation import metrics as M
from cprs_cli.evaluation import qa as Q
from cprs_cli.evaluation import quality as E
from cprs_cli.evaluation import report as R
from cprs_cli.select import unit_costs
from cprs_cli.tokens import count_tokens

# --------------------------------------------------------------------------- metrics


def test_coverage_recall():
    assert M.coverage_recall([(0, 10)], [(0, 10)]) == 1.0
    assert M.coverage_recall([(0, 10)], [(5, 20)]) == 0.5
    assert M.coverage_recall([(0, 10), (20, 30)], [(8, 22)]) == pytest.approx(4 / 20)
    assert M.coverage_recall([(0, 10)], []) == 0.0
    assert M.coverage_recall([], [(0, 5)]) is None
    # overlapping / unsorted kept spans are not double counted
    assert M.coverage_recall([(10, 20)], [(15, 25), (0, 12), (11, 16)]) == 1.0
    assert M.covered_chars([(0, 4), (6, 8)], [(3, 7)]) == (2, 6)


def test_answer_kept():
    out = "The capital is  Paris.\nIt lies on the Seine."
    assert M.answer_kept(out, ["paris"])
    assert M.answer_kept(out, ["London", "the   SEINE"])
    assert not M.answer_kept(out, ["London"])
    assert not M.answer_kept(out, ["", "  "])
    assert not M.answer_kept("", ["Paris"])
    assert M.all_answers_kept(out, ["Paris", "Seine"])
    assert not M.all_answers_kept(out, ["Paris", "Rhine"])
    assert not M.all_answers_kept(out, [])


# --------------------------------------------------------------------------- intervals, baselines


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    xs = [0.0, 1.0] * 50
    lo, hi = M.bootstrap_ci(xs)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert M.bootstrap_ci(xs) == (lo, hi)  # seeded
    assert M.bootstrap_ci([1.0]) is None
    assert M.bootstrap_ci([1.0, float("nan")]) is None
    lo, hi = M.bootstrap_ci([1.0] * 20)
    assert lo == hi == 1.0


def test_baseline_spans_take_the_best_units_within_the_budget():
    doc = "Alpha one. Beta two three four. Gamma five."
    units = segment.sentence_spans(doc)
    sep = E.sep_tokens()
    costs = unit_costs(doc, units, sep)
    spans = B.budget_spans(costs, units, np.array([0.1, 0.2, 0.9]), int(costs[2]), sep)
    assert [doc[s:e] for s, e in spans] == ["Gamma five."]
    assert B.budget_spans(costs, units, np.array([0.1, 0.2, 0.9]), 0, sep) == []
    out = E.spans_text(doc, B.budget_spans(costs, units, np.array([0.3, 0.2, 0.9]), int(costs.sum()), sep))
    assert count_tokens(out) <= int(costs.sum())


# --------------------------------------------------------------------------- end to end


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
    Q._val_hashes_for.cache_clear()
    return tmp_path


def test_niah_items_small():
    items = E.niah_items(8 * 1024, quick=True, seed=0)
    assert len(items) == 6
    for it in items:
        assert it.answers and all(a in it.document for a in it.answers)
        assert 20_000 < len(it.document) < 60_000


def test_evaluate_end_to_end_tiny_critic(tiny_encoder_critic_dir, tiny_data):
    """The real Compressor on a random tiny critic: plumbing only, never quality."""
    comp = E.load_compressor(str(tiny_encoder_critic_dir), "cpu", None, None)
    niah = E.RowSpec("niah_tiny", "NIAH tiny", "niah", "needles", "sentence", "needle", niah_tokens=8 * 1024)
    res = E.evaluate(comp, [niah, E.ROW_BY_NAME["articles"]], quick=True, limit=2, data_dir=tiny_data,
                     log=lambda m: None)
    got = [(r["row"], r["mode"]) for r in res["rows"]]
    assert got == [("niah_tiny", "dynamic"), ("articles", "rate:0.1"), ("articles", "rate:0.05"),
                   ("articles", "dynamic")]
    for row in res["rows"]:
        assert row["errors"] == 0 and row["n"] == 2
        assert 0.0 <= row["critic"] <= 1.0 and 0.0 <= row["bm25"] <= 1.0 and row["dense"] is None
    una = next(r for r in res["rows"] if r["row"] == "articles" and r["mode"] == "dynamic")["unanswerable"]
    assert una["n"] == 2 and 0.0 <= una["mean_output_share"] <= 1.0
    for ex in res["examples"]["articles"]:
        assert ex["source"] == "squad2"
        for mode, m in ex["modes"].items():
            if ex["answerable"]:
                assert m["bm25_tokens"] <= m["output_tokens"]
            if mode != "dynamic":
                assert m["output_tokens"] <= float(mode.split(":")[1]) * ex["input_tokens"] * 1.1 + 1


class _NoCritic:
    """A Compressor whose critic must not run: probabilities come from the cache."""

    def __init__(self, comp):
        self.critic = comp.critic
        self.select_spans = comp.select_spans

    def token_probs(self, *a, **k):
        raise AssertionError("the critic ran although the probabilities were cached")


def test_cached_probabilities_replace_the_critic(tiny_encoder_critic_dir, tiny_data, tmp_path):
    from cprs_cli.windows import tokenize

    comp = E.load_compressor(str(tiny_encoder_critic_dir), "cpu", None, None)
    spec = E.ROW_BY_NAME["articles"]
    items, una = E.data_items(spec, Q.load_split("test", ["squad2"], tiny_data), None, None, 0)
    rows = []
    for it in items + una:
        n = len(tokenize(comp.critic.tokenizer, it.document))
        keep = np.zeros(n, np.float16)
        keep[: n // 2] = 0.9  # the first half of each document is "kept"
        rows.append({"id": it.id, "keep": keep})
    (tmp_path / "probs").mkdir()
    (tmp_path / "probs" / "fake_squad2_test.pkl").write_bytes(pickle.dumps(rows))
    res = E.evaluate(_NoCritic(comp), [spec], data_dir=tiny_data, probs=str(tmp_path / "probs"), probs_tag="fake",
                     log=lambda m: None)
    dyn = next(r for r in res["rows"] if r["mode"] == "dynamic")
    assert dyn["n"] == len(items) and dyn["errors"] == 0


def test_main_writes_reports(tiny_encoder_critic_dir, tiny_data, tmp_path):
    out, md = tmp_path / "q" / "tiny.json", tmp_path / "quality.md"
    rc = E.main(["--model", str(tiny_encoder_critic_dir), "--device", "cpu", "--rows", "articles", "--no-dense",
                 "--limit", "1", "--out", str(out), "--md", str(md), "--data-dir", str(tiny_data)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["model"] == "tiny-encoder" and rep["rows"][0]["n"] == 1 and rep["split"] == "test"
    assert "--rows articles" in rep["command"]
    text = md.read_text()
    assert "<!-- quality:tiny-encoder:limit-1 -->" in text and rep["command"] in text
    R.update_section(md, "other:full", "## other\n")
    R.update_section(md, "tiny-encoder:limit-1", R.quality_section(rep))  # rewritten, not appended
    text = md.read_text()
    assert text.count("<!-- quality:tiny-encoder:limit-1 -->") == 1 and "## other" in text


def test_calibrate_picks_a_rule_and_a_weight(tiny_encoder_critic_dir, tiny_data, tmp_path):
    from cprs_cli.select import DynamicPolicy
    from training import calibrate as C

    out = tmp_path / "cal.json"
    assert C.main(["--model", str(tiny_encoder_critic_dir), "--device", "cpu", "--split", "val",
                   "--data-dir", str(tiny_data), "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["lexical_weight"] in C.LEXICAL_WEIGHTS and rep["n"] == 6
    pol = DynamicPolicy.from_dict(rep["dynamic"])
    assert pol.floor in C.FLOORS and pol.relative in C.RELATIVES and pol.max_share in C.MAX_SHARES
    best = rep["dynamic_best"]
    if best["ok"]:  # a feasible rule meets the compression floor it was chosen under
        assert best["rows"]["articles"]["ratio"] >= C.RATIO_MARGIN
