"""Does stemming the words BM25 matches help, alone and fused with the critic? (an experiment,
not part of the package)

cprs's BM25 (`cprs_cli.lexical`, `bm25s`) lower-cases and drops English stopwords but matches
words exactly, so "accepted" in a question does not match "acceptance" in the sentence that
answers it. This replays budgeted selection on cached critic probabilities with BM25 computed
both ways (bm25s's tokenizer with and without PyStemmer's English Snowball stemmer), for BM25
alone and for the linear fusion cprs ships (critic unit score + W × normalised BM25).

    python experiments/bm25_stemming.py small /tmp/r4/probs-r4b r4b calib
    python experiments/bm25_stemming.py small /tmp/r4/probs-r4b r4b test

Result (round-4 `small`, 2026-11-30): stemming lifts BM25 alone by 2.1 points on the `calib` macro
average (0.4 on `test`), but the fusion does not move: `calib` macro 77.41 vs 77.41 at W = 0.05 and
77.34 vs 77.80 at W = 0.1 (the shipped weight), `test` within 0.5 either way. Not adopted.
"""
import sys

import numpy as np
import Stemmer  # PyStemmer, not a cprs dependency: pip install pystemmer
from replay import print_table, start

from cprs_cli import lexical
from training import calibrate as C

a, comp, data = start(log=lambda m: print(m, file=sys.stderr))
STEMMER = Stemmer.Stemmer("english")


def stemmed_unit_bm25(text: str, units: np.ndarray, query: str) -> np.ndarray:
    """`lexical.unit_bm25` (sentence units, the document as the corpus, scores over its best unit)
    with every word stemmed."""
    bm25s = lexical._bm25s()
    corpus = bm25s.tokenize([text[s:e] for s, e in units], stopwords="en", stemmer=STEMMER,
                            show_progress=False, return_ids=False)
    words = [w for w in bm25s.tokenize([query], stopwords="en", stemmer=STEMMER, show_progress=False,
                                       return_ids=False)[0] if w]
    if not words or not any(corpus):
        return np.zeros(len(units))
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    words = [w for w in words if w in retriever.vocab_dict]
    raw = np.asarray(retriever.get_scores(words), dtype=np.float64) if words else np.zeros(len(units))
    return raw / raw.max() if raw.max() > 0 else raw


for x in data:
    x["bm25_stem"] = stemmed_unit_bm25(x["item"].document, x["units"], x["item"].query)

variants = {"bm25 alone": lambda x: x["bm25"], "bm25 stemmed alone": lambda x: x["bm25_stem"]}
for w in (0.05, 0.1, 0.2, 0.3):
    variants[f"lin{w}"] = lambda x, w=w: x["scores"] + w * x["bm25"]
    variants[f"lin{w} stemmed"] = lambda x, w=w: x["scores"] + w * x["bm25_stem"]
per = {name: C.budget_scores(data, f) for name, f in variants.items()}
print(f"{a.model} {a.tag} {a.split}")
print_table(per, 20, 16, data=data)
