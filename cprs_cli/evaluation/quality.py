"""Quality of a critic on held-out documents, next to BM25 and dense retrieval at the same budget.

    python -m cprs_cli.evaluation.quality --model mini --device cpu --out docs/quality/mini.json --md docs/quality.md
    python -m cprs_cli.evaluation.quality --model small --probs runs/small-probs --out small.json  # GPU probabilities
    python -m cprs_cli.evaluation.quality --model mini --quick --out /tmp/mini-quick.json          # minutes on a CPU

Rows are document kinds (multi-hop Wikipedia questions, whole Wikipedia articles, full
biomedical papers, meetings, privacy policies, claims, passages, needles); each row is measured
in several modes: budgeted (`--rate R`) and dynamic. The critic runs once per example; every mode
then replays the selection on its probabilities through `Compressor.select_spans`, the code path
of `cprs compress`. Examples come from the `test` split (documents training never saw, and not the
`calib` half on which thresholds, fusion weight and dynamic rule are tuned; see
`cprs_cli.evaluation.qa.load_split`), read from `--data-dir` (default: $CPRS_DATA, else
../shared/data).

Baselines get exactly the critic's own output size on each document (cl100k tokens, separators
included) and the same units and budget accounting (`baselines.budget_spans`): BM25 (`bm25s`)
over the document's units, and dense retrieval (all-MiniLM-L6-v2 mean-pooled, cosine to the
query).

Metrics (`metrics`): evidence kept = share of gold evidence characters inside the kept spans;
answer kept = a reference answer (or the gold answer span's text) occurs in the output, case and
whitespace normalised; needle kept = every needle value is in the output; unanswerable output =
output tokens / input tokens where the document holds no evidence. Each score has a 95%
bootstrap confidence interval (2,000 resamples, seeded), and so has the paired difference to
BM25. Ratio = total input tokens / total output tokens over the row's answerable examples;
dynamic rows also give the 10th / 50th / 90th percentile of the per-document ratios.

Writes a JSON report (`--out`) and, with `--md FILE`, rewrites this model's section of that
markdown file (the project's is docs/quality.md).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import pickle
import random
import shlex
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cprs_cli import segment
from cprs_cli.instructions import TASKS
from cprs_cli.select import DEFAULT_SEPARATOR, assemble, merge_spans, unit_costs
from cprs_cli.tags import I, O
from cprs_cli.tokens import count_tokens

from . import synthetic
from .baselines import BM25Baseline, DenseBaseline, budget_spans
from .machine import machine_info
from .metrics import all_answers_kept, answer_kept, bootstrap_ci, coverage_recall
from .qa import Record, Span, load_split
from .report import fmt, quality_section, update_section, write_json

Log = Callable[[str], None]


@lru_cache(maxsize=1)
def sep_tokens() -> int:
    """cl100k tokens of the default separator."""
    return count_tokens(DEFAULT_SEPARATOR)


# --------------------------------------------------------------------------- rows


@dataclass
class RowSpec:
    name: str
    title: str
    kind: str  # "data" | "niah"
    task: str
    granularity: str
    metric: str  # "needle" | "recall" | "answer"
    source: str = ""
    modes: tuple[str, ...] = ("dynamic",)  # "dynamic" | "rate:R"
    targets: dict = field(default_factory=dict)  # mode -> score target
    target_ratio: float | None = None  # dynamic mode's compression target
    unanswerable: bool = False  # also run the unanswerable records (dynamic output size)
    niah_tokens: int = 0
    quick_n: int = 6


ROWS: list[RowSpec] = [
    RowSpec("multihop", "Multi-hop Wikipedia questions (HotpotQA): gold evidence kept", "data", "facts",
            "sentence", "recall", "hotpotqa", ("rate:0.2", "rate:0.1", "dynamic"),
            {"rate:0.2": 0.92, "rate:0.1": 0.80, "dynamic": 0.85}, 5.0),
    RowSpec("articles", "Whole Wikipedia articles (SQuAD 2.0): answer kept", "data", "facts", "sentence",
            "answer", "squad2", ("rate:0.1", "rate:0.05", "dynamic"),
            {"rate:0.1": 0.98, "rate:0.05": 0.97, "dynamic": 0.85}, 5.0, unanswerable=True, quick_n=4),
    RowSpec("papers", "Full biomedical papers (Evidence Inference): evidence kept", "data", "facts",
            "sentence", "recall", "evidence_inference", ("rate:0.1", "dynamic"),
            {"rate:0.1": 0.85, "dynamic": 0.85}, 5.0, quick_n=4),
    RowSpec("meetings", "Meeting transcripts (QMSum), paragraphs: evidence kept", "data", "paragraphs",
            "paragraph", "recall", "qmsum", ("rate:0.2", "dynamic"), quick_n=3),
    RowSpec("policies", "Privacy policies (PolicyQA): answer kept", "data", "facts", "sentence", "answer",
            "policyqa", ("rate:0.1", "dynamic"), quick_n=4),
    RowSpec("claims", "Claims against web articles (WiCE): evidence kept", "data", "facts", "sentence",
            "recall", "wice", ("rate:0.2", "dynamic"), unanswerable=True, quick_n=4),
    RowSpec("passages", "Short Wikipedia passages (CLAPnq): evidence kept", "data", "facts", "sentence",
            "recall", "clapnq", ("dynamic",), unanswerable=True, quick_n=4),
    RowSpec("nq", "Gold passages (NQ): answer kept", "data", "facts", "sentence", "answer", "nq_oracle",
            ("dynamic",)),
    *[
        RowSpec(f"niah_{k}k", f"Needle in a haystack, {k}K tokens (single + multi-key)", "niah", "needles",
                "sentence", "needle", modes=("dynamic",), targets={"dynamic": 0.99}, target_ratio=50.0,
                niah_tokens=k * 1024)
        for k in (8, 32, 128)
    ],
]
ROW_BY_NAME = {r.name: r for r in ROWS}

NIAH_KINDS = ("niah_single", "niah_multikey")
NIAH_DEPTHS_FULL = tuple(i / 10 for i in range(11))
# 5 × 11 depths × 2 kinds = 110 needles per length: n ≥ 100 per row, as the other rows (18.9M
# tokens per critic over the three lengths: 2-4 minutes on an H200, about an hour for `mini` on a CPU)
NIAH_REPS_FULL = {8 * 1024: 5, 32 * 1024: 5, 128 * 1024: 5}
NIAH_QUICK = {8 * 1024: (0.0, 0.5, 1.0), 32 * 1024: (0.5,)}  # 128K is skipped in quick mode
MAX_PER_ROW = {"policyqa": 150}  # rows with more test examples than the report needs (2 documents)


@dataclass
class Item:
    """One thing to compress and score."""

    id: str
    source: str
    query: str
    document: str
    evidence: list[Span]
    answers: list[str]
    answerable: bool
    meta: dict = field(default_factory=dict)


def _record_item(r: Record) -> Item:
    return Item(r.id, r.source, r.query, r.document, list(r.evidence), list(r.answers), bool(r.evidence), {})


@lru_cache(maxsize=1)
def chars_per_token() -> float:
    """Characters per cl100k token of the synthetic haystack (measured once)."""
    ex = synthetic.make_example("niah_single", 40_000, random.Random(0), 0.5)
    return len(ex.document) / max(count_tokens(ex.document), 1)


def niah_items(tokens: int, quick: bool, seed: int) -> list[Item]:
    """The needle rows' examples: single and multi-key needles at the depths of the grid."""
    if quick:
        depths, reps = NIAH_QUICK.get(tokens, ()), 1
    else:
        depths, reps = NIAH_DEPTHS_FULL, NIAH_REPS_FULL.get(tokens, 1)
    length_chars = int(tokens * chars_per_token())
    rng = random.Random(f"niah:{tokens}:{seed}")
    items = []
    for rep in range(reps):
        for kind in NIAH_KINDS:
            for d in depths:
                ex = synthetic.make_example(kind, length_chars, rng, d)
                items.append(Item(f"{kind}-{tokens}-{d:.1f}-{rep}", f"synthetic:{kind}", ex.query, ex.document,
                                  [(int(s), int(e)) for s, e in ex.evidence], list(ex.answers), True,
                                  {"kind": kind, "depth": d}))
    return items


def data_items(spec: RowSpec, records: list[Record], n: int | None, n_unans: int | None,
               seed: int) -> tuple[list[Item], list[Item]]:
    """The row's answerable and unanswerable examples, in the order `experiments/cache_probs.py`
    draws them (a seeded shuffle, then the first n), so cached probabilities line up."""
    recs = [r for r in records if r.source == spec.source]
    random.Random(seed).shuffle(recs)
    cap = MAX_PER_ROW.get(spec.source)
    if cap:
        recs = recs[:cap]
    ans = [r for r in recs if r.evidence]
    una = [r for r in recs if not r.evidence] if spec.unanswerable else []
    if n is not None:
        ans = ans[:n]
    if n_unans is not None:
        una = una[:n_unans]
    return [_record_item(r) for r in ans], [_record_item(r) for r in una]


# --------------------------------------------------------------------------- baselines


def spans_text(document: str, spans: Sequence[Span]) -> str:
    """The kept spans as `cprs compress` joins them (merged, the default separator between)."""
    return assemble(merge_spans([(s, e, 0.0) for s, e in spans], document), DEFAULT_SEPARATOR)


# --------------------------------------------------------------------------- running


def score_item(spec: RowSpec, item: Item, text: str, spans: Sequence[Span]) -> float:
    """The row's metric on one output: needle / answer kept (0 or 1), or evidence recall."""
    if spec.metric == "needle":
        return float(all_answers_kept(text, item.answers))
    if spec.metric == "answer":
        cands = [a for a in item.answers if a.strip()] + [item.document[s:e] for s, e in item.evidence]
        return float(answer_kept(text, cands))
    rec = coverage_recall(item.evidence, spans)
    return float(rec) if rec is not None else float("nan")


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(sum(xs) / len(xs)) if xs else None


def mode_budget(mode: str, input_tokens: int) -> int | None:
    """The token budget of a mode ("rate:R" of the input), None for dynamic."""
    return None if mode == "dynamic" else max(1, int(round(float(mode.split(":")[1]) * input_tokens)))


class ProbsCache:
    """Keep probabilities computed elsewhere (`experiments/cache_probs.py --light`, e.g. on a GPU):
    files `<tag>_<source>_<split>.pkl` holding [{"id", "keep"}]."""

    def __init__(self, directory: str | None, tag: str, split: str):
        self.dir, self.tag, self.split = (Path(directory) if directory else None), tag, split
        self._loaded: dict[str, dict[str, np.ndarray]] = {}

    def get(self, source: str, item_id: str) -> np.ndarray | None:
        if self.dir is None:
            return None
        if source not in self._loaded:
            path = self.dir / f"{self.tag}_{source}_{self.split}.pkl"
            rows = pickle.loads(path.read_bytes()) if path.exists() else []
            self._loaded[source] = {r["id"]: r["keep"] for r in rows}
        return self._loaded[source].get(item_id)


def critic_probs(comp, spec: RowSpec, item: Item, sentences: np.ndarray, cache: ProbsCache):
    """(probs (n, 4), offsets (n, 2)): from the cache when it has the item, else the critic."""
    keep = cache.get(spec.source, item.id) if spec.kind == "data" else None
    if keep is None:
        probs, offsets, _ = comp.token_probs(item.document, TASKS[spec.task], item.query, sentences=sentences)
        return probs, offsets
    from cprs_cli.windows import tokenize

    doc = tokenize(comp.critic.tokenizer, item.document)
    if len(doc) != len(keep):
        raise ValueError(f"cached probabilities of {item.id} do not match the tokenizer ({len(keep)} vs {len(doc)})")
    keep = keep.astype(np.float32)
    probs = np.zeros((len(keep), 4), np.float32)
    probs[:, I], probs[:, O] = keep, 1.0 - keep  # only P(keep) = 1 - P(O) matters to selection
    return probs, doc.offsets


def evaluate_item(comp: Any, spec: RowSpec, item: Item, dense: DenseBaseline | None, cache: ProbsCache) -> dict:
    """One example in every mode of its row: the critic's output and each retriever's at the
    critic's output size, scored."""
    t0 = time.perf_counter()
    doc = item.document
    sentences = segment.sentence_spans(doc)
    probs, offsets = critic_probs(comp, spec, item, sentences, cache)
    secs = time.perf_counter() - t0
    in_tok = count_tokens(doc)
    units = sentences if spec.granularity == "sentence" else segment.paragraph_spans(doc)
    costs = unit_costs(doc, units, sep_tokens())
    # each retriever's unit scores, computed once per document and reused by every mode
    bm25 = BM25Baseline(unit=spec.granularity)
    retrievers = {"bm25": lambda: bm25.scores(doc, units, item.query)}
    if dense is not None:
        retrievers["dense"] = lambda: dense.scores(doc, units, item.query)
    retriever_scores: dict[str, np.ndarray] = {}
    row = {"id": item.id, "source": item.source, "answerable": item.answerable, "input_tokens": in_tok,
           "critic_seconds": round(secs, 4), **item.meta, "modes": {}}
    for mode in spec.modes if item.answerable else ("dynamic",):
        budget = mode_budget(mode, in_tok)
        spans = comp.select_spans(doc, probs, offsets, query=item.query, task=spec.task,
                                  granularity=spec.granularity, budget=budget, sentences=sentences,
                                  input_tokens=in_tok)
        text = assemble(spans, DEFAULT_SEPARATOR)
        kept = [(int(s.start), int(s.end)) for s in spans]
        out_tok = count_tokens(text) if text else 0
        res = {"output_tokens": out_tok, "ratio": in_tok / max(out_tok, 1)}
        if item.answerable:
            res["critic"] = score_item(spec, item, text, kept)
            for who, scores_of in retrievers.items():
                if who not in retriever_scores:
                    retriever_scores[who] = scores_of()
                r_spans = budget_spans(costs, units, retriever_scores[who], out_tok, sep_tokens())
                r_text = spans_text(doc, r_spans)
                res[who] = score_item(spec, item, r_text, r_spans)
                res[f"{who}_tokens"] = count_tokens(r_text) if r_text else 0
        row["modes"][mode] = res
    return row


def summarize_mode(spec: RowSpec, mode: str, results: list[dict]) -> dict:
    ans = [r for r in results if r["answerable"] and mode in r["modes"]]
    una = [r for r in results if not r["answerable"]]
    m = [r["modes"][mode] for r in ans]
    out: dict = {"row": spec.name, "title": spec.title, "mode": mode, "metric": spec.metric,
                 "granularity": spec.granularity, "task": spec.task, "n": len(ans)}
    for who in ("critic", "bm25", "dense"):
        vals = [x.get(who) for x in m if who in x]
        out[who] = _mean(vals)
        out[f"{who}_ci"] = bootstrap_ci(vals)
    for who in ("bm25", "dense"):
        diffs = [x["critic"] - x[who] for x in m if who in x and not math.isnan(x["critic"]) and not math.isnan(x[who])]
        out[f"critic_minus_{who}"] = _mean(diffs)
        out[f"critic_minus_{who}_ci"] = bootstrap_ci(diffs)
    tin = sum(r["input_tokens"] for r in ans)
    tout = sum(x["output_tokens"] for x in m)
    out["ratio"] = tin / max(tout, 1) if ans else None
    ratios = [x["ratio"] for x in m]
    out["ratio_p10_p50_p90"] = [float(v) for v in np.percentile(ratios, [10, 50, 90])] if ratios else None
    out["empty_outputs"] = _mean(float(x["output_tokens"] == 0) for x in m)
    out["target"] = spec.targets.get(mode)
    if out["target"] is not None and out["critic"] is not None:
        out["met"] = out["critic"] >= out["target"] and (
            mode != "dynamic" or spec.target_ratio is None or (out["ratio"] or 0) >= spec.target_ratio)
    if mode == "dynamic":
        out["target_ratio"] = spec.target_ratio
        if una:
            shares = [r["modes"]["dynamic"]["output_tokens"] / max(r["input_tokens"], 1) for r in una]
            out["unanswerable"] = {"n": len(una), "mean_output_share": _mean(shares),
                                   "max_output_share": max(shares), "empty_share": _mean(float(s == 0) for s in shares),
                                   "mean_input_tokens": _mean(r["input_tokens"] for r in una)}
    if spec.kind == "niah" and ans:
        by: dict[str, list[float]] = defaultdict(list)
        for r in ans:
            by[f"{r.get('kind')}@{r.get('depth', 0):.1f}"].append(r["modes"][mode]["critic"])
        out["by_kind_depth"] = {k: sum(v) / len(v) for k, v in sorted(by.items())}
    return out


def run_row(comp: Any, spec: RowSpec, items: list[Item], dense: DenseBaseline | None, cache: ProbsCache,
            log: Log = print) -> tuple[list[dict], list[dict], int]:
    """Every example of a row (one failure is logged and counted, the others go on), then the
    row's summary per mode: (summaries, per-example results, errors)."""
    t0 = time.perf_counter()
    results: list[dict] = []
    errors = 0
    for k, item in enumerate(items):
        try:
            results.append(evaluate_item(comp, spec, item, dense, cache))
        except Exception:  # keep going: one bad document must not sink a long run
            errors += 1
            if errors <= 3:
                log(f"[{spec.name}] error on {item.id}:\n{traceback.format_exc()}")
        if (k + 1) % 50 == 0:
            log(f"[{spec.name}] {k + 1}/{len(items)} ({time.perf_counter() - t0:.0f}s)")
    summaries = [summarize_mode(spec, mode, results) for mode in spec.modes]
    for s in summaries:
        s["errors"] = errors
        s["seconds"] = round(time.perf_counter() - t0, 1)
    return summaries, results, errors


def evaluate(comp, rows: Sequence[RowSpec], *, quick: bool = False, limit: int | None = None, seed: int = 0,
             data_dir=None, split: str = "test", dense: DenseBaseline | None = None, probs: str | None = None,
             probs_tag: str = "", log=print) -> dict:
    sources = sorted({r.source for r in rows if r.kind == "data"})
    records = load_split(split, sources, data_dir) if sources else []
    cache = ProbsCache(probs, probs_tag, split)
    summaries, details = [], {}
    for spec in rows:
        if spec.kind == "niah":
            items = niah_items(spec.niah_tokens, quick, seed)
            if limit is not None:
                items = items[:limit]
        else:
            n = limit if limit is not None else (spec.quick_n if quick else None)
            a, u = data_items(spec, records, n, n, seed)
            items = a + u
        if not items:
            log(f"[{spec.name}] skipped (no examples)")
            continue
        log(f"[{spec.name}] {len(items)} examples ...")
        # every row, needles included, gets both retrievers at the critic's budget (the dense one
        # over 18.9M needle tokens: a minute on an H200, an hour or more on a 2-core CPU; --no-dense)
        rows_out, results, _ = run_row(comp, spec, items, dense, cache, log)
        if dense is not None:
            dense.save()
        for s in rows_out:
            log(f"[{spec.name}] {s['mode']}: n={s['n']} critic={fmt(s['critic'])} bm25={fmt(s['bm25'])} "
                f"dense={fmt(s['dense'])} ratio={fmt(s['ratio'], False)}x")
        summaries.extend(rows_out)
        details[spec.name] = results
    return {"rows": summaries, "examples": details}


# --------------------------------------------------------------------------- main


def load_compressor(model: str, device: str, batch_size: int | None, window_tokens: int | None) -> Any:
    from cprs_cli.compressor import Compressor

    return Compressor(model=model, device=device, batch_size=batch_size, window_tokens=window_tokens)


def model_label(model: str) -> str:
    """A shipped critic's name, or a critic directory's folder name."""
    p = Path(model)
    return p.name if (os.sep in model or p.exists()) else model


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m cprs_cli.evaluation.quality", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mini", help="mini | small | a critic directory")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", required=True, help="the JSON report")
    ap.add_argument("--md", default="", help="markdown file whose section for this model and mode is rewritten "
                    "(the project's: docs/quality.md; default: none)")
    ap.add_argument("--limit", type=int, default=None, help="at most N examples per row")
    ap.add_argument("--quick", action="store_true", help="a small sample per row (minutes on a CPU)")
    ap.add_argument("--rows", default=None, help=f"comma-separated subset of: {', '.join(ROW_BY_NAME)}")
    ap.add_argument("--split", default="test", choices=("test", "calib", "val"))
    ap.add_argument("--probs", default=None,
                    help="directory of cached keep probabilities (experiments/cache_probs.py --light)")
    ap.add_argument("--probs-tag", default=None, help="file-name tag of the cached probabilities (default: the model)")
    ap.add_argument("--no-dense", action="store_true", help="skip the dense-retrieval baseline")
    ap.add_argument("--dense-cache", default=None, help="file that keeps the dense baseline's embeddings between runs")
    ap.add_argument("--lexical-weight", type=float, default=None, help="override the critic's BM25 weight (ablation)")
    ap.add_argument("--dynamic", choices=("calibrated", "tags"), default="calibrated",
                    help="dynamic mode: the critic's calibrated per-document rule, or tags at its per-task "
                         "threshold (ablation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--window-tokens", type=int, default=None)
    ap.add_argument("--data-dir", default=None, help="the QA records (default: $CPRS_DATA, else ../shared/data)")
    args = ap.parse_args(argv)

    if args.rows:
        unknown = [r for r in args.rows.split(",") if r.strip() not in ROW_BY_NAME]
        if unknown:
            ap.error(f"unknown rows {unknown}; choose from {', '.join(ROW_BY_NAME)}")
        rows = [ROW_BY_NAME[r.strip()] for r in args.rows.split(",")]
    else:
        rows = [r for r in ROWS if not (args.quick and r.kind == "niah" and r.niah_tokens not in NIAH_QUICK)]
    label = model_label(args.model)
    mode = "quick" if args.quick else (f"limit-{args.limit}" if args.limit else "full")
    out = Path(args.out)

    t0 = time.perf_counter()
    comp = load_compressor(args.model, args.device, args.batch_size, args.window_tokens)
    if args.lexical_weight is not None:
        comp.critic.lexical_weight = args.lexical_weight
    if args.dynamic == "tags":
        comp.critic.dynamic = None
    # the dense retriever runs where the critic does when that is a GPU (its batches are sized for it)
    dense_device = str(comp.device) if str(comp.device).startswith("cuda") else "cpu"
    dense = None if args.no_dense else DenseBaseline(dense_device, cache=True, cache_file=args.dense_cache)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    res = evaluate(comp, rows, quick=args.quick, limit=args.limit, seed=args.seed, data_dir=args.data_dir,
                   split=args.split, dense=dense, probs=args.probs, probs_tag=args.probs_tag or label, log=log)
    report = {
        "model": label, "model_arg": args.model, "mode": mode, "split": args.split,
        "command": "python -m cprs_cli.evaluation.quality " + shlex.join(argv),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(str(comp.device)),
        "probs_from": f"`{args.probs}` (cached)" if args.probs else None,
        "seconds": time.perf_counter() - t0, "seed": args.seed,
        "dynamic_policy": comp.critic.dynamic.__dict__ if comp.critic.dynamic else None,
        "lexical_weight": comp.critic.lexical_weight,
        "out": str(out),
        "rows": res["rows"], "examples": res["examples"],
    }
    write_json(out, report)
    if args.md:
        update_section(Path(args.md), f"{label}:{mode}", quality_section(report))
    print(quality_section(report))
    n_ok = sum(r["n"] for r in res["rows"])
    return 0 if n_ok or not res["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
