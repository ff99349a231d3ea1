"""Lexical evidence as a floor in dynamic mode (an experiment, not part of the package).

Dynamic mode keeps the units whose critic score reaches a share of the document's best
(`select.relative_units`, the critic's calibrated `DynamicPolicy`); BM25 plays no part. Replayed
here on cached critic probabilities, against that rule:

* `+bm25topK`: the rule's units plus BM25's K best units, added only when the rule kept
  something (a document the critic finds nothing in stays empty, which is what holds
  unanswerable questions near zero output), and only units with a BM25 match;
* `+bm25topK gated`: the same, only when BM25's best unit stands 0.2 (normalised) above its next;
* `fused`: the same rule applied to the budget mode's fused score (critic + W × BM25).

    python experiments/dynamic_lexical_floor.py small /tmp/r4/probs-r4b r4b calib
    python experiments/dynamic_lexical_floor.py mini /tmp/new/mininew mininew calib
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training/ is not installed: the checkout's
from cprs_cli.evaluation import quality as ev  # noqa: E402
from cprs_cli.select import relative_units  # noqa: E402
from training import calibrate as C  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("probs")
ap.add_argument("tag")
ap.add_argument("split", nargs="?", default="calib")
a = ap.parse_args()
comp = ev.load_compressor(a.model, "cpu", None, None)
policy, w = comp.critic.dynamic, comp.critic.lexical_weight
data = C.prepare(comp, a.split, a.probs, a.tag, log=lambda m: None)


def shipped(x):
    return relative_units(x["scores"], x["costs"], x["input_tokens"], policy)


def floor(k: int, gap: float | None = None):
    def choose(x):
        chosen = shipped(x)
        b = x["bm25"]
        if len(chosen) == 0 or len(b) == 0 or b.max() <= 0:
            return chosen
        order = np.argsort(-b, kind="stable")
        if gap is not None and len(b) > 1 and b[order[0]] - b[order[1]] < gap:
            return chosen
        extra = [int(j) for j in order[:k] if b[j] > 0]
        return np.array(sorted(set(chosen.tolist()) | set(extra)), dtype=np.int64)
    return choose


def fused(x):
    return relative_units(x["scores"] + w * x["bm25"], x["costs"], x["input_tokens"], policy)


variants = {"shipped": shipped, "+bm25top1": floor(1), "+bm25top2": floor(2),
            "+bm25top1 gated": floor(1, 0.2), "+bm25top2 gated": floor(2, 0.2), "fused": fused}
print(f"{a.model} {a.tag} {a.split}: policy {policy.__dict__}, BM25 weight {w}")
for name, fn in variants.items():
    by_row, unans = C.dynamic_replay(data, fn)
    cells = "  ".join(f"{k} {100 * v['score']:.1f} ({v['ratio']:.1f}x)" for k, v in sorted(by_row.items()))
    mean = 100 * np.mean([v["score"] for v in by_row.values()])
    print(f"{name:16} mean {mean:.2f}  unanswerable {100 * np.mean(unans):.2f}%  {cells}")
