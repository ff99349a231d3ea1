"""Would a gated minimum share help dynamic mode? (an experiment, not part of the package)

The shipped rule (`select.DynamicPolicy`) keeps units scoring >= max(floor, relative x best),
capped at `max_share` of the input. This replay adds a lower bound: when the document's best unit
scores >= `gate`, kept units (best first) fill at least `min_share` of the input, which bounds
the compression of documents the critic is confident about. The grid is swept on the `calib`
half under the calibration's constraints (multi-hop, article and paper rows >= 5.5x; unanswerable
articles <= the bound given, 5% being the target) and the best point is replayed on `test`.

    python experiments/dynamic_min_share.py mini  /tmp/new/mininew mininew 0.04
    python experiments/dynamic_min_share.py small /tmp/r4/probs-r4b r4b 0.04
"""
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training/ is not installed: the checkout's
from cprs_cli.evaluation import quality as ev  # noqa: E402
from training import calibrate as C  # noqa: E402

model, probs, tag, bound = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
comp = ev.load_compressor(model, "cpu", None, None)
quiet = lambda m: None  # noqa: E731
data = {split: C.prepare(comp, split, probs, tag, log=quiet) for split in ("calib", "test")}


def choose(x, floor, rel, max_share, min_share, gate):
    s, c, n = x["scores"], x["costs"], x["input_tokens"]
    if len(s) == 0 or s.max() < floor:
        return np.zeros(0, np.int64)
    cut, minimum = max(floor, rel * s.max()), (min_share * n if s.max() >= gate else 0)
    chosen, total = [], 0
    for j in np.argsort(-s, kind="stable"):
        if s[j] < cut and total >= minimum:
            break
        if not chosen or total + c[j] <= max_share * n:
            chosen.append(int(j))
            total += int(c[j])
    return np.array(sorted(chosen), np.int64)


def replay(xs, pol):
    by_row, unans = C.dynamic_replay(xs, lambda x: choose(x, *pol))
    rows = {k: (v["score"], v["ratio"]) for k, v in by_row.items()}
    return rows, float(np.mean(unans)) if unans else 0.0


grid = [g for g in itertools.product((0.05, 0.1, 0.2), (0.2, 0.3, 0.4, 0.5), (0.4,),
                                     (0.0, 0.04, 0.06, 0.08, 0.1, 0.15), (0.0, 0.3, 0.5, 0.7, 0.9))
        if not (g[3] == 0 and g[4] > 0)]
results = []
for pol in grid:
    rows, un = replay(data["calib"], pol)
    ok = all(rows[k][1] >= C.RATIO_MARGIN for k in ("multihop", "articles", "papers")) and un <= bound
    results.append((ok, float(np.mean([v[0] for v in rows.values()])), pol))
for label, pool in (("without a minimum share", [r for r in results if r[0] and r[2][3] == 0]),
                    ("with a gated minimum share", [r for r in results if r[0]])):
    ok, mean, pol = max(pool, key=lambda r: r[1])
    print(f"{label}: floor, relative, max_share, min_share, gate = {pol}; calib mean {100 * mean:.2f}")
    for split in ("calib", "test"):
        rows, un = replay(data[split], pol)
        cells = ", ".join(f"{k} {100 * v[0]:.1f} ({v[1]:.1f}x)" for k, v in rows.items())
        print(f"  {split}: {cells}; unanswerable articles {100 * un:.1f}%; "
              f"mean {100 * np.mean([v[0] for v in rows.values()]):.2f}")
