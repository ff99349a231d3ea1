"""Replay budgeted selection on the `calib` split with other ways of fusing BM25 with the critic
(an experiment, not part of the package): linear fusion at several weights (what cprs ships),
reciprocal-rank fusion, and BM25's best one or two units always kept on top of linear fusion.

    python experiments/fusion_variants.py mini  /tmp/new/mininew mininew   # cached H200 probabilities
    python experiments/fusion_variants.py small /tmp/r3/r3a r3a

Results: docs/quality/fusion_variants.md."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training/ is not installed: the checkout's
from cprs_cli.evaluation import quality as ev  # noqa: E402
from training import calibrate as C  # noqa: E402

model, probs, tag = sys.argv[1], sys.argv[2], sys.argv[3]
split = sys.argv[4] if len(sys.argv) > 4 else "calib"
comp = ev.load_compressor(model, "cpu", None, None)
data = C.prepare(comp, split, probs, tag, log=lambda m: print(m, file=sys.stderr))


def ranks(s):
    r = np.empty(len(s))
    r[np.argsort(-s, kind="stable")] = np.arange(len(s))
    return r


def variants(x):
    s, b = x["scores"], x["bm25"]
    out = {}
    for w in (0.0, 0.05, 0.1, 0.3):
        out[f"lin{w}"] = s + w * b
    for k in (10, 60):
        out[f"rrf{k}"] = 1 / (k + ranks(s)) + 1 / (k + ranks(b))
    for topn in (1, 2):
        for w in (0.05, 0.3):
            f = s + w * b
            g = f.copy()
            top = np.argsort(-b, kind="stable")[:topn]
            g[top] += 10.0 * (b[top] > 0)
            out[f"bm25top{topn}+lin{w}"] = g
    return out


# every variant's ranking once per example, then the calibration's own budgeted replay per variant
ranked = {id(x): variants(x) for x in data if x["item"].answerable}
per = {name: C.budget_scores(data, lambda x, name=name: ranked[id(x)][name]) for name in next(iter(ranked.values()))}
rows = sorted(next(iter(per.values())).keys())
print("variant".ljust(18), " ".join(r[:14].rjust(14) for r in rows), "macro")
for name, t in per.items():
    vals = [100 * t[r] for r in rows]
    print(name.ljust(18), " ".join(f"{v:14.1f}" for v in vals), f"{np.mean(vals):.2f}")
n = [f"{x['spec'].name}@{m}" for x in data if x["item"].answerable for m in x["spec"].modes if m != "dynamic"]
print("n", {r: n.count(r) for r in rows})
