"""Multi-hop lever: a second critic pass whose query carries the first pass's best sentences
(the bridge entity of a two-hop question rarely shares words with the question). Measured on
the calib split's HotpotQA documents; pass-1 probabilities from the cache, pass 2 run here.

    python experiments/second_pass.py --probs /tmp/new/mininew --tag mininew --model mini
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from cprs_cli import segment
from cprs_cli.evaluation import quality as ev
from cprs_cli.evaluation.metrics import bootstrap_ci, coverage_recall
from cprs_cli.evaluation.qa import load_split
from cprs_cli.instructions import TASKS
from cprs_cli.select import budget_units, unit_costs, unit_scores, unit_token_ranges
from cprs_cli.tokens import count_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--probs", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--top", type=int, default=2)
    a = ap.parse_args()
    comp = ev.load_compressor(a.model, "cpu", None, None)
    spec = ev.ROW_BY_NAME["multihop"]
    items, _ = ev.data_items(spec, load_split("calib", ["hotpotqa"]), a.n, 0, 0)
    cache = ev.ProbsCache(a.probs, a.tag, "calib")
    sep = ev.sep_tokens()
    res: dict[str, list[float]] = {}
    for it in items:
        units = segment.sentence_spans(it.document)
        p1, offsets = ev.critic_probs(comp, spec, it, units, cache)
        ranges = unit_token_ranges(units, offsets)
        s1 = unit_scores(1 - p1[:, 2], ranges)
        top = np.argsort(-s1)[: a.top]
        q2 = it.query + " " + " ".join(it.document[units[j, 0]:units[j, 1]] for j in sorted(top))
        p2, _, _ = comp.token_probs(it.document, TASKS["facts"], q2, sentences=units)
        s2 = unit_scores(1 - p2[:, 2], ranges)
        costs = unit_costs(it.document, units, sep)
        n_in = count_tokens(it.document)
        for rate in (0.2, 0.1):
            budget = max(1, round(rate * n_in))
            for name, sc in {"pass1": s1, "pass2": s2, "max": np.maximum(s1, s2), "mean": (s1 + s2) / 2}.items():
                ch = budget_units(costs, sc, budget, sep)
                spans = [(int(units[j, 0]), int(units[j, 1])) for j in ch]
                res.setdefault(f"{name}@{rate}", []).append(coverage_recall(it.evidence, spans))
    print(json.dumps({k: [round(float(np.mean(v)), 4), len(v), bootstrap_ci(v)] for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
