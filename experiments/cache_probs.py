"""Cache the critic's per-token keep probabilities for calibration / test items, so selection
strategies can be replayed offline in seconds (an experiment, not part of the package).

    python experiments/cache_probs.py --model mini --split calib --sources hotpotqa,squad2 --out /tmp/cache
"""
from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from pathlib import Path

import numpy as np

from cprs_cli import segment
from cprs_cli.evaluation import quality as ev
from cprs_cli.evaluation.qa import load_split
from cprs_cli.instructions import TASKS
from cprs_cli.tokens import count_tokens

TASK = {"hotpotqa": "facts", "squad2": "facts", "evidence_inference": "facts", "qmsum": "paragraphs",
        "policyqa": "facts", "clapnq": "facts", "wice": "facts", "nq_oracle": "facts"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--split", default="calib")
    ap.add_argument("--sources", default="hotpotqa,squad2,evidence_inference")
    ap.add_argument("--max-per-source", type=int, default=400)
    ap.add_argument("--out", default="/tmp/cache")
    ap.add_argument("--light", action="store_true", help="store only ids and keep probabilities")
    ap.add_argument("--tag", default="", help="file name tag (default: the model)")
    a = ap.parse_args()
    comp = ev.load_compressor(a.model, a.device, None, None)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for src in a.sources.split(","):
        for split in a.split.split(","):
            run(comp, a, src, split, out)


def run(comp, a, src: str, split: str, out: Path) -> None:
    recs = load_split(split, [src])
    random.Random(0).shuffle(recs)
    recs = recs[: a.max_per_source]
    rows = []
    t0 = time.time()
    for r in recs:
        sents = segment.sentence_spans(r.document)
        probs, offsets, _ = comp.token_probs(r.document, TASKS[TASK[src]], r.query, sentences=sents)
        if a.light:
            rows.append(dict(id=r.id, source=src, keep=(1 - probs[:, 2]).astype(np.float16)))
            continue
        rows.append(dict(id=r.id, source=src, query=r.query, document=r.document, evidence=r.evidence,
                         answers=r.answers, answerable=r.answerable, keep=(1 - probs[:, 2]).astype(np.float16),
                         probs=probs.astype(np.float16), offsets=offsets.astype(np.int32),
                         input_tokens=count_tokens(r.document)))
    with open(out / f"{a.tag or a.model}_{src}_{split}.pkl", "wb") as fh:
        pickle.dump(rows, fh)
    print(src, split, len(rows), f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
