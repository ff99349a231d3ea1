"""Which objective should choose dynamic mode's rule on `calib` (an experiment, not part of the
package)?

`training.calibrate.sweep_dynamic` picks, among the grid points that keep every row with a
compression target at >= 5.5x and unanswerable whole articles <= 5% of their input, the one with
the best mean score over *every* answerable row, including rows that have no target (meetings,
policies, claims, short passages, NQ). Here the same grid and the same constraints are scored by
other objectives, each picks its point on `calib`, and every pick is replayed on `test`:

* `all rows` (shipped): mean over every answerable row;
* `target rows`: mean over the rows with a target (multi-hop, articles, papers);
* `worst target row`: the lowest of those (the issue asks each of them for >= 85%);
* the same two with unanswerable articles held to <= 4% on `calib` (a margin under the 5% target).

    python experiments/dynamic_objective.py mini /tmp/new/mininew mininew
    python experiments/dynamic_objective.py small /tmp/r4/probs-r4b r4b

Results (2026-11-30, cached H200 probabilities; `test` rows: multi-hop / articles / papers at
their ratios, then unanswerable articles' output share). Not adopted.

* `small`: every objective but `worst target row` picks the shipped point (floor 0.05, relative
  0.2, share 0.4, BM25 0.1): 88.0 (6.0x) / 85.7 (11.6x) / 96.4 (18.9x), 4.5%. `worst target row`
  (share 0.25) gives 86.2 / 85.7 / 96.4: lower.
* `mini`, shipped (`all rows`): 80.6 (5.7x) / 79.5 (12.3x) / 83.9 (24.5x), 3.6%.
  `target rows` (relative 0.2, share 0.2, BM25 0.3): 80.4 (5.8x) / **87.1 (8.5x)** / **90.8
  (12.1x)**, but unanswerable **6.4%** (4.7% on calib): two rows over 85 by spending the
  unanswerable target. With unanswerable held to <= 4% on calib, both target objectives pick
  floor 0.3, relative 0.3, share 0.3, BM25 0.3: 80.9 / 80.5 / 81.5, 2.9%.
* Multi-hop never passes 81% for `mini` at >= 5x under any objective: its budget row at 5.3x keeps
  81.8% [78.8, 84.6] with the ranking it has, so no per-document rule gets it to 85% at 5x.
"""
import sys

import numpy as np
from replay import start

from cprs_cli.select import DynamicPolicy
from training import calibrate as C

a, comp, calib = start(log=lambda m: print(m, file=sys.stderr))
test = C.prepare(comp, "test", a.probs, a.tag, log=lambda m: print(m, file=sys.stderr))
TARGET = C.RATIO_ROWS

grid = C.sweep_dynamic(calib)["grid"]
feasible = [g for g in grid if g["ok"]]
print(f"{a.model} {a.tag}: {len(feasible)} of {len(grid)} grid points feasible on calib; target rows {TARGET}")


def target_mean(g):
    return np.mean([g["rows"][k]["score"] for k in TARGET if k in g["rows"]])


def target_min(g):
    return min(g["rows"][k]["score"] for k in TARGET if k in g["rows"])


tight = [g for g in feasible if (g["unanswerable_share"] or 0) <= 0.04]
objectives = {
    "all rows": (feasible, lambda g: g["mean"]),
    "target rows": (feasible, target_mean),
    "worst target row": (feasible, target_min),
    "target rows, un<=4%": (tight, target_mean),
    "worst target, un<=4%": (tight, target_min),
}
for name, (pool, objective) in objectives.items():
    best = max(pool, key=objective)
    pol = DynamicPolicy(**best["policy"])
    for split, data in (("calib", calib), ("test", test)):
        by_row, unans = C.policy_replay(data, pol)
        cells = "  ".join(f"{k} {100 * by_row[k]['score']:.1f} ({by_row[k]['ratio']:.1f}x)"
                          for k in TARGET if k in by_row)
        print(f"{name:20} {split:5} {best['policy']}  {cells}  unanswerable {100 * np.mean(unans):.1f}%  "
              f"all-row mean {100 * np.mean([v['score'] for v in by_row.values()]):.1f}")
