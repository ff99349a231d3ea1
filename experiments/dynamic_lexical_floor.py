"""Lexical evidence as a floor in dynamic mode (an experiment, not part of the package).

Before session 6, dynamic mode kept the units whose critic score reaches a share of the
document's best (`select.relative_units` with the critic's calibrated floor, share and cap); BM25
played no part. Replayed here on cached critic probabilities, against that rule (`critic alone`:
the critic's policy with its BM25 term left out, since no BM25 scores are passed):

* `+bm25topK`: the rule's units plus BM25's K best units, added only when the rule kept
  something (a document the critic finds nothing in stays empty, which is what holds
  unanswerable questions near zero output), and only units with a BM25 match;
* `+bm25topK gated`: the same, only when BM25's best unit stands 0.2 (normalised) above its next;
* `fused`: the same rule applied to the budget mode's fused score (critic + W × BM25), floor
  included. What shipped from this (`DynamicPolicy.lexical`, chosen by `training.calibrate`) is
  `fused` with the floor read on the critic's score alone.

    python experiments/dynamic_lexical_floor.py small /tmp/r4/probs-r4b r4b calib
    python experiments/dynamic_lexical_floor.py mini /tmp/new/mininew mininew calib
"""
import numpy as np
from replay import start

from cprs_cli.select import relative_units
from training import calibrate as C

a, comp, data = start()
policy, w = comp.critic.dynamic, comp.critic.lexical_weight


def critic_alone(x):
    return relative_units(x["scores"], x["costs"], x["input_tokens"], policy)


def floor(k: int, gap: float | None = None):
    def choose(x):
        chosen = critic_alone(x)
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


variants = {"critic alone": critic_alone, "+bm25top1": floor(1), "+bm25top2": floor(2),
            "+bm25top1 gated": floor(1, 0.2), "+bm25top2 gated": floor(2, 0.2), "fused": fused}
print(f"{a.model} {a.tag} {a.split}: policy {policy.__dict__}, BM25 weight {w}")
for name, fn in variants.items():
    by_row, unans = C.dynamic_replay(data, fn)
    cells = "  ".join(f"{k} {100 * v['score']:.1f} ({v['ratio']:.1f}x)" for k, v in sorted(by_row.items()))
    mean = 100 * np.mean([v["score"] for v in by_row.values()])
    print(f"{name:16} mean {mean:.2f}  unanswerable {100 * np.mean(unans):.2f}%  {cells}")
