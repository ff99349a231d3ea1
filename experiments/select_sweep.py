"""Replay unit selection on cached critic probabilities (experiments/cache_probs.py --light)
for many strategies at once; prints a table per source. Calibration split only."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

from cprs_cli import lexical, segment
from cprs_cli.select import DEFAULT_SEPARATOR, unit_token_ranges
from cprs_cli.tokens import count_many, count_tokens
from cprs_cli.train import evaluate as ev
from cprs_cli.train.data import load_split
from cprs_cli.windows import tokenize

SEP = count_tokens(DEFAULT_SEPARATOR)


def prepare(tag: str, cache_dir: str, split: str, sources: list[str], tokenizer) -> list[dict]:
    out = []
    for src in sources:
        path = Path(cache_dir) / f"{tag}_{src}_{split}.pkl"
        rows = pickle.load(open(path, "rb"))
        recs = {r.id: r for r in load_split(split, [src])}
        for row in rows:
            r = recs[row["id"]]
            keep = row["keep"].astype(np.float64)
            doc = tokenize(tokenizer, r.document)
            assert len(doc) == len(keep), (len(doc), len(keep))
            units = segment.sentence_spans(r.document)
            ranges = unit_token_ranges(units, doc.offsets)
            texts = [r.document[s:e] for s, e in units]
            toks = np.array(count_many(texts), dtype=np.int64)
            gaps = np.array(count_many([r.document[units[j - 1, 1]:units[j, 0]] if j else "" for j in range(len(units))]))
            n = ranges[:, 1] - ranges[:, 0]
            csum = np.concatenate(([0.0], np.cumsum(keep)))
            mean = np.where(n > 0, (csum[ranges[:, 1]] - csum[ranges[:, 0]]) / np.maximum(n, 1), 0)
            mx = np.array([keep[a:b].max() if b > a else 0 for a, b in ranges])
            out.append(dict(rec=r, keep=keep, offsets=doc.offsets, units=units, texts=texts, toks=toks,
                            cost=toks + np.maximum(SEP, gaps), mean=mean, max=mx,
                            bm25=lexical.unit_bm25(r.document, units, r.query),
                            input_tokens=count_tokens(r.document)))
    return out


def budget_pick(cost, scores, budget):
    order = np.argsort(-scores, kind="stable")
    chosen, total = [], 0
    for j in order:
        if total + cost[j] <= budget:
            chosen.append(j)
            total += cost[j]
    return sorted(chosen), total


def metric(it, chosen):
    r = it["rec"]
    spans = [tuple(it["units"][j]) for j in chosen]
    if r.source in ("squad2", "policyqa", "nq_oracle"):
        text = DEFAULT_SEPARATOR.join(it["texts"][j] for j in chosen)
        cands = [a for a in r.answers if a.strip()] + [r.document[s:e] for s, e in r.evidence]
        return float(ev.answer_kept(text, cands))
    v = ev.coverage_recall(r.evidence, spans)
    return float(v) if v is not None else float("nan")


def ci(xs):
    xs = np.asarray(xs, float)
    return xs.mean(), 1.96 * xs.std(ddof=1) / np.sqrt(len(xs)) if len(xs) > 1 else 0.0


def oracle(items: list[dict], rates=(0.2, 0.1)) -> dict:
    """Upper bound of budgeted selection: gold units ranked first, same units and accounting."""
    out = {}
    for rate in rates:
        vals = []
        for it in items:
            r = it["rec"]
            gold = np.zeros(len(it["units"]))
            for s, e in r.evidence:
                gold[(it["units"][:, 0] < e) & (it["units"][:, 1] > s)] = 1
            ch, _ = budget_pick(it["cost"], gold + 0.01 * it["mean"], max(1, round(rate * it["input_tokens"])))
            vals.append(metric(it, ch))
        out[rate] = (float(np.nanmean(vals)), len(vals))
    return out


if __name__ == "__main__":
    # python experiments/select_sweep.py TAG CACHE_DIR: the oracle on the calib split's HotpotQA
    from cprs_cli.critic import load_critic

    tag, cache = (sys.argv[1:3] if len(sys.argv) > 2 else ("mininew", "/tmp/new/mininew"))
    crit = load_critic("small" if tag == "small" else "mini", "cpu")
    items = [it for it in prepare(tag, cache, "calib", ["hotpotqa"], crit.tokenizer) if it["rec"].answerable]
    print(oracle(items))
