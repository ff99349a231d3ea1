"""How far a CPU precision moves the critic's keep probabilities from fp32 on real documents
(an experiment, not part of the package): the first --per-source `test` documents of each source,
in the order experiments/cache_probs.py takes them, scored fresh in float32 by both.

    CPRS_CPU_DTYPE is set here; e.g.
    .venv/bin/python experiments/keep_drift.py --dtype int8 --per-source 5
    .venv/bin/python experiments/keep_drift.py --onnx /tmp/onnxw/int8_fused.onnx   # ONNX Runtime, fp32 loaded
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

from cprs_cli import segment
from cprs_cli.evaluation import quality as ev
from cprs_cli.evaluation.qa import load_split
from cprs_cli.instructions import TASKS
from cprs_cli.tags import keep_probability

TASK = {"hotpotqa": "facts", "squad2": "facts", "evidence_inference": "facts", "qmsum": "paragraphs",
        "policyqa": "facts", "clapnq": "facts", "wice": "facts", "nq_oracle": "facts"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--dtype", default="int8", help="the CPRS_CPU_DTYPE compared with float32")
    ap.add_argument("--onnx", default=None, metavar="FILE",
                    help="compare an ONNX Runtime graph (benchmarks/bench_onnx.py --workdir) instead of --dtype")
    ap.add_argument("--per-source", type=int, default=5)
    a = ap.parse_args()
    docs = []
    for src in TASK:
        recs = load_split("test", [src])
        random.Random(0).shuffle(recs)
        docs += [(src, r) for r in recs[: a.per_source]]

    def keeps(dtype: str) -> list[np.ndarray]:
        os.environ["CPRS_CPU_DTYPE"] = "float32" if dtype == "onnx" else dtype
        comp = ev.load_compressor(a.model, "cpu", None, None)
        if dtype == "onnx":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
            from bench_onnx import use_onnx

            use_onnx(comp.critic, a.onnx)
        return [keep_probability(comp.token_probs(r.document, TASKS[TASK[s]], r.query,
                                                  sentences=segment.sentence_spans(r.document))[0])
                for s, r in docs]

    ref, got = keeps("float32"), keeps("onnx" if a.onnx else a.dtype)
    out: dict[str, dict] = {}
    for (src, _), x, y in zip(docs, ref, got):
        d = np.abs(x - y)
        o = out.setdefault(src, {"docs": 0, "tokens": 0, "max": 0.0, "sum": 0.0, "cross": 0})
        o["docs"] += 1
        o["tokens"] += len(d)
        o["max"] = max(o["max"], float(d.max()))
        o["sum"] += float(d.sum())
        o["cross"] += int(((x >= 0.5) != (y >= 0.5)).sum())
    for src, o in out.items():
        print(f"{src:20s} docs {o['docs']} tokens {o['tokens']:7d} max {o['max']:.3f} "
              f"mean {o['sum'] / o['tokens']:.4f} crossing 0.5: {o['cross']} ({o['cross'] / o['tokens']:.2%})")
    n = sum(o["tokens"] for o in out.values())
    print(f"all: tokens {n} max {max(o['max'] for o in out.values()):.2g} "
          f"mean {sum(o['sum'] for o in out.values()) / n:.4f} "
          f"crossing 0.5: {sum(o['cross'] for o in out.values()) / n:.2%}")


if __name__ == "__main__":
    main()
