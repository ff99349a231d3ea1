"""Replay budgeted selection with other ways of fusing lexical (and dense) evidence with the
critic (an experiment, not part of the package): linear fusion at several weights (what cprs
ships), reciprocal-rank fusion, BM25's best one or two units always kept (also only when BM25's
best unit stands clear of the next), BM25's ranking interleaved into the critic's, and the dense
retriever's cosine added to the linear fusion.

    python experiments/fusion_variants.py mini  /tmp/new/mininew mininew          # cached H200 probabilities
    python experiments/fusion_variants.py small /tmp/r4/probs-r4b r4b test --dense-cache /tmp/dense.pkl

Results: docs/quality/fusion_variants.md."""
import sys

import numpy as np
from replay import print_table, start

from training import calibrate as C

a, comp, data = start(
    extra=lambda ap: ap.add_argument("--dense-cache", default=None,
                                     help="add dense-fusion variants (the dense baseline's cache file)"),
    log=lambda m: print(m, file=sys.stderr))
if a.dense_cache:
    from cprs_cli.evaluation.baselines import DenseBaseline

    dense = DenseBaseline(cache_file=a.dense_cache)
    for x in data:
        x["dense"] = dense.scores(x["item"].document, x["units"], x["item"].query)
    dense.save()


def ranks(s):
    r = np.empty(len(s))
    r[np.argsort(-s, kind="stable")] = np.arange(len(s))
    return r


def dense_norm(d):
    """Cosines rescaled per document: the median unit → 0, the best → 1."""
    if len(d) == 0:
        return d
    lo, hi = np.median(d), d.max()
    return np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)


def forced(f, b, topn, gap=None):
    if len(b) < 2:
        return f
    top = np.argsort(-b, kind="stable")[:topn]
    if gap is not None and b[top[0]] - np.sort(b)[-2] < gap:
        return f
    g = f.copy()
    g[top] += 10.0 * (b[top] > 0)
    return g


def interleaved(f, b, k):
    """Every k-th kept unit is BM25's next best not yet kept; the others follow the fused ranking."""
    oc, ob = list(np.argsort(-f, kind="stable")), list(np.argsort(-b, kind="stable"))
    seen, order, i = set(), [], 0
    while len(order) < len(f):
        src = ob if i % k == k - 1 else oc
        while src and src[0] in seen:
            src.pop(0)
        if src:
            j = src.pop(0)
            seen.add(j)
            order.append(j)
        i += 1
    r = np.empty(len(f))
    r[order] = -np.arange(len(f))
    return r


def variants(x, w):
    s, b = x["scores"], x["bm25"]
    lin = s + w * b
    out = {f"lin{v}": s + v * b for v in (0.0, 0.05, 0.1, 0.3)}
    for k in (10, 60):
        out[f"rrf{k}"] = 1 / (k + ranks(s)) + 1 / (k + ranks(b))
    for topn in (1, 2):
        out[f"bm25top{topn}+lin{w}"] = forced(lin, b, topn)
    out[f"bm25top1gap0.2+lin{w}"] = forced(lin, b, 1, 0.2)
    for k in (3, 4):
        out[f"interleave{k}+lin{w}"] = interleaved(lin, b, k)
    if "dense" in x:
        for wd in (0.05, 0.1, 0.3):
            out[f"lin{w}+dense{wd}"] = lin + wd * dense_norm(x["dense"])
    return out


w = comp.critic.lexical_weight
ranked = {id(x): variants(x, w) for x in data if x["item"].answerable}
per = {name: C.budget_scores(data, lambda x, name=name: ranked[id(x)][name]) for name in next(iter(ranked.values()))}
print_table(per, 24, 14, macro_head="macro", macro_fmt=".2f", data=data)
