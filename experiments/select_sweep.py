"""The ceiling of budgeted selection on the calib split's HotpotQA documents: gold sentences ranked
first, with the same units and budget accounting as `cprs compress` (`select.unit_costs`,
`select.budget_units`), the critic's unit scores breaking ties. Shows whether selection or the
critic limits multi-hop recall (docs/quality.md).

    python experiments/select_sweep.py mininew /tmp/new/mininew   # cached probabilities (cache_probs.py --light)
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

from cprs_cli import segment
from cprs_cli.evaluation.metrics import coverage_recall
from cprs_cli.evaluation.qa import load_split
from cprs_cli.select import DEFAULT_SEPARATOR, budget_units, unit_costs, unit_scores, unit_token_ranges
from cprs_cli.tokens import count_tokens
from cprs_cli.windows import tokenize


def oracle(tag: str, cache_dir: str, tokenizer, rates=(0.2, 0.1), split: str = "calib") -> dict:
    sep = count_tokens(DEFAULT_SEPARATOR)
    rows = pickle.loads((Path(cache_dir) / f"{tag}_hotpotqa_{split}.pkl").read_bytes())
    recs = {r.id: r for r in load_split(split, ["hotpotqa"])}
    vals: dict[float, list[float]] = {rate: [] for rate in rates}
    for row in rows:
        r = recs[row["id"]]
        if not r.evidence:
            continue
        units = segment.sentence_spans(r.document)
        ranges = unit_token_ranges(units, tokenize(tokenizer, r.document).offsets)
        critic = unit_scores(row["keep"].astype(np.float64), ranges)
        gold = np.zeros(len(units))
        for s, e in r.evidence:
            gold[(units[:, 0] < e) & (units[:, 1] > s)] = 1
        costs = unit_costs(r.document, units, sep)
        n_in = count_tokens(r.document)
        for rate in rates:
            chosen = budget_units(costs, gold + 0.01 * critic, max(1, round(rate * n_in)), sep)
            vals[rate].append(coverage_recall(r.evidence, [(int(units[j, 0]), int(units[j, 1])) for j in chosen]))
    return {rate: (float(np.mean(v)), len(v)) for rate, v in vals.items()}


if __name__ == "__main__":
    from cprs_cli.critic import load_critic

    tag, cache = (sys.argv[1:3] if len(sys.argv) > 2 else ("mininew", "/tmp/new/mininew"))
    print(oracle(tag, cache, load_critic("small" if tag == "small" else "mini", "cpu").tokenizer))
