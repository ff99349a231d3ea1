"""The dense-retrieval baseline's speed by batch size (the bench's slowest method on an H200).

    python benchmarks/bench_dense.py --device cuda --batch-sizes 64,1024 --lengths 131072,1048576

Each row: one batch size over the same needle documents (`cprs bench`'s niah_single items, one per
length), the baseline's `select` at a 1% budget timed after a warm-up, and whether its output is
the same as the first batch size's. Rows go to `--out` (JSON lines) with the command, the machine
and the date.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cprs_cli.evaluation.baselines import DenseBaseline  # noqa: E402
from cprs_cli.evaluation.machine import machine_info  # noqa: E402
from cprs_cli.evaluation.tasks import make_item  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", default="64,1024")
    ap.add_argument("--lengths", default="131072,1048576")
    ap.add_argument("--out", default="benchmarks/results/dense.jsonl")
    a = ap.parse_args()
    items = [make_item("niah_single", int(n), 0, 0, 0.5) for n in a.lengths.split(",")]
    machine = machine_info(a.device)
    first: list[str] | None = None
    for bs in (int(b) for b in a.batch_sizes.split(",")):
        dense = DenseBaseline(a.device, batch_size=bs)
        dense.select(items[0].document[:20_000], items[0].query, 100)  # warm-up: load, first kernels
        outs, secs = [], []
        for it in items:
            t0 = time.perf_counter()
            outs.append(dense.select(it.document, it.query, max(it.input_tokens // 100, 32)))
            secs.append(time.perf_counter() - t0)
        first = first or outs
        tokens = sum(it.input_tokens for it in items)
        row = {"batch_size": bs, "device": a.device, "input_tokens": tokens, "seconds": round(sum(secs), 3),
               "tokens_per_s": round(tokens / sum(secs)), "per_length": {it.length: round(s, 3) for it, s in
                                                                         zip(items, secs)},
               "same_output_as_first": outs == first, "machine": machine, "python": platform.python_version(),
               "command": " ".join(["benchmarks/bench_dense.py", *sys.argv[1:]]),
               "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        print(json.dumps({k: v for k, v in row.items() if k != "machine"}), flush=True)
        with open(a.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
