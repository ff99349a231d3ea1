"""How a unit's score is made from its tokens' keep probabilities (an experiment, not part of the
package): cprs ships (max + mean) / 2 (`select.unit_scores`); this replays budgeted selection with
a × max + (1 − a) × mean for several a, and with the top-3 tokens' mean in place of the max, on
cached critic probabilities, each at the critic's calibrated BM25 weight.

    python experiments/unit_score_mix.py small /tmp/r4/probs-r4b r4b calib

Result (round-4 `small`, BM25 weight 0.1, 2026-11-30): every mix lands within 0.1 point of the
shipped one on the `calib` macro average (77.76–77.86 vs 77.80) and within 0.4 on `test`
(73.47–74.11 vs 73.76), rows trading a point or two between them (the mean alone: multi-hop
`--rate 0.2` +1.3 on `calib` and +0.6 on `test`, papers unchanged on `calib` and −2.7 on `test`).
Not adopted: no signal beyond the noise.
"""
import numpy as np
from replay import print_table, start

from training import calibrate as C

a, comp, _ = start(prepare=False)  # prepared once per way of scoring, below
w = comp.critic.lexical_weight


def mix(alpha: float, top: int = 1):
    def scores(keep: np.ndarray, ranges: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ranges))
        for j, (s, e) in enumerate(ranges):
            if e > s:
                t = keep[s:e]
                peak = np.sort(t)[-top:].mean() if top > 1 else t.max()
                out[j] = alpha * peak + (1 - alpha) * t.mean()
        return out
    return scores


variants = {f"max {al}": mix(al) for al in (0.0, 0.25, 0.5, 0.75, 1.0)}
variants["top3 0.5"] = mix(0.5, 3)
per = {}
for name, fn in variants.items():
    C.unit_scores = fn  # what calibrate.prepare scores units with
    data = C.prepare(comp, a.split, a.probs, a.tag, log=lambda m: None)
    per[name] = C.budget_scores(data, lambda x: x["scores"] + w * x["bm25"])
print(f"{a.model} {a.tag} {a.split}, BM25 weight {w}")
print_table(per, 12, 16)
