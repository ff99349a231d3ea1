"""Start-up of `cprs compress` on short inputs (issue 12 §2): the whole command, in fresh processes.

Each run is the real CLI (`cprs_cli.cli.main`, what the `cprs` script calls) in a new Python
process, timed from outside: wall clock and the child's CPU time (user + system; less sensitive
than wall time to other jobs on a shared machine). The CLI's own `--format json` stats give the
stages it times itself (`model_load`, which includes importing torch; `ingest`; `tokenize`,
`critic`, `post`); "other" is the rest of the wall time: interpreter start, importing the CLI,
argument parsing, writing, exit.

* cold: every run gets an empty cprs cache directory (no cached digests, no merged weights);
  the OS page cache is warm, as it is for anyone who runs the command twice.
* warm: one run fills a cache directory, then the timed runs share it.

`--stages` adds a finer breakdown measured inside fresh processes (imports, each step of loading
the critic, segmentation, the cl100k encoding, the first and a second compression), by timing
the loader's functions where they exist, so the same script measures older code (`--src`).

    .venv/bin/python benchmarks/bench_startup.py [--runs 7] [--stages] [--src DIR] [--out FILE]

`--src DIR` runs the package found in DIR (e.g. an older commit unpacked with `git archive`)
instead of this checkout. The environment is passed on (CPRS_CPU_DTYPE, OMP_NUM_THREADS and
OMP_WAIT_POLICY are recorded in the row). Rows are appended to benchmarks/results/startup.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cprs_cli.evaluation.machine import cpu_model  # noqa: E402

SAMPLE = ROOT / "cprs_cli" / "samples" / "apollo11.md"
QUERY = "When did Apollo 11 land on the Moon, and who walked on the surface?"

# Runs the CLI from `src` as the `cprs` script does. An editable install puts a finder
# for cprs_cli on sys.meta_path that wins over sys.path, so it is removed first when `src` is
# given (otherwise the installed package would run, whatever `src` says).
RUNNER = """
import sys
src = sys.argv.pop(1)
if src:
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, src)
from cprs_cli import cli
if hasattr(cli, "run"):  # the script's entry point since the fast exit (cli.run)
    cli.run()
sys.exit(cli.main())
"""

# The finer breakdown, inside one fresh process: wraps the loader's functions (those that exist
# in the code under test) with timers, then runs the same work the CLI does.
STAGES = r"""
import sys, time, json
src, text_path, query = sys.argv[1:4]
if src:
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, src)
T = {}
t0 = time.perf_counter()
def lap(name, since):
    now = time.perf_counter()
    T[name] = T.get(name, 0.0) + now - since
    return now
t = t0
import cprs_cli.cli; t = lap("import CLI (typer, rich, batch, ingest)", t)
import numpy; t = lap("import numpy", t)
import torch; t = lap("import torch", t)
from cprs_cli.compressor import Compressor; t = lap("import compressor", t)
from cprs_cli.critic import loader; t = lap("import critic loader (transformers?)", t)
import importlib
def timed(module, name, label):
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    fn = getattr(mod, name, None)
    if fn is None:
        return
    def wrapper(*a, **k):
        s = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            T[label] = T.get(label, 0.0) + time.perf_counter() - s
    setattr(mod, name, wrapper)
timed("cprs_cli.critic.loader", "_verified_base", "load: verify base sha256 (hash_files)")
timed("cprs_cli.critic.loader", "critic_config", "load: config (transformers)")
timed("cprs_cli.critic.loader", "plain_bert_config", "load: config (json)")
timed("cprs_cli.critic.loader", "_load_tokenizer", "load: tokenizer (transformers)")
timed("cprs_cli.critic.rusttok", "RustTokenizer", "load: tokenizer (tokenizers)")
timed("cprs_cli.critic.loader", "base_state", "load: base weights")
timed("cprs_cli.critic.lora", "merge_delta", "load: delta merge")
timed("cprs_cli.critic.merged", "_cached", "load: merged weights from cache")
timed("cprs_cli.critic.merged", "_write", "load: merged weights written to cache")
timed("cprs_cli.critic.merged", "as_dtype", "load: merged weights to dtype")
timed("cprs_cli.critic.loader", "build_model", "load: build model (transformers)")
timed("cprs_cli.critic.bert", "build_bert_tagger", "load: build model (BertTagger)")
t = time.perf_counter()
comp = Compressor(model=None, device="cpu")
T["load: total (load_critic)"] = time.perf_counter() - t
t = time.perf_counter()
from cprs_cli import segment
segment.sentence_spans("One sentence. Two.")
t = lap("first segmentation (blingfire)", t)
from cprs_cli.tokens import encoding
encoding()
t = lap("cl100k encoding (tiktoken)", t)
text = open(text_path, encoding="utf-8").read()
r = comp.compress(text, query=query)
t = lap("first compress", t)
for k, v in r.stats.timings.items():
    T["first compress: " + k] = v
r = comp.compress(text, query=query)
t = lap("second compress", t)
T["total"] = time.perf_counter() - t0
T["_windows"], T["_input_tokens"] = r.stats.windows, r.stats.input_tokens
print(json.dumps(T))
"""


def page_text(words: int) -> str:
    """The first `words` words of the Apollo 11 sample (about a page at 500)."""
    return " ".join(SAMPLE.read_text(encoding="utf-8").split(" ")[:words])


def cpu_name() -> str:
    return cpu_model() or platform.processor() or "unknown"


def bytecode_compiled(src: str) -> bool:
    """Whether the package under test has bytecode caches (a wheel installed by pip has; a
    checkout under PYTHONDONTWRITEBYTECODE=1 has none and compiles every module on every run,
    about 0.07 s here; `python -m compileall cprs_cli` writes them)."""
    import importlib.util

    cli = Path(src or ROOT) / "cprs_cli" / "cli.py"
    return Path(importlib.util.cache_from_source(str(cli))).exists()


def run_cli(src: str, path: Path, cache: Path) -> dict:
    env = dict(os.environ, CPRS_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-c", RUNNER, src, "compress", str(path), "-q", QUERY, "-f", "json"]
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"cprs failed ({proc.returncode}): {proc.stderr[-2000:]}")
    stats = json.loads(proc.stdout)["stats"]
    timings = stats["timings"]
    known = sum(timings.get(k, 0.0) for k in ("model_load", "ingest", "tokenize", "critic", "post"))
    return {"wall": wall,
            "cpu": (after.children_user - before.children_user) + (after.children_system - before.children_system),
            **{k: timings.get(k, 0.0) for k in ("model_load", "ingest", "tokenize", "critic", "post")},
            "other": wall - known, "windows": stats["windows"], "input_tokens": stats["input_tokens"]}


def medians(rows: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


def run_stages(src: str, path: Path, cache: Path) -> dict:
    env = dict(os.environ, CPRS_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", STAGES, src, str(path), QUERY], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stage run failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stage_medians(rows: list[dict]) -> dict:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: round(statistics.median(r.get(k, 0.0) for r in rows), 3) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--words", type=int, default=500, help="size of the one-page input")
    ap.add_argument("--input", action="append", choices=["page", "apollo11.md"],
                    help="which inputs (default both)")
    ap.add_argument("--mode", action="append", choices=["cold", "warm"], help="which caches (default both)")
    ap.add_argument("--stages", action="store_true", help="also the in-process breakdown")
    ap.add_argument("--src", default="", help="run the cprs_cli package in this directory instead")
    ap.add_argument("--label", default="", help="what the code under test is (in the row)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.jsonl")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cprs-startup-") as tmp_name:
        tmp = Path(tmp_name)
        page = tmp / "page.txt"
        page.write_text(page_text(args.words), encoding="utf-8")
        inputs = {"page": page, "apollo11.md": SAMPLE}
        rows = []
        for name, path in inputs.items():
            if args.input and name not in args.input:
                continue
            for mode in args.mode or ("cold", "warm"):
                load_before = os.getloadavg()
                warm_cache = tmp / f"warm-{name}"
                if mode == "warm":
                    run_cli(args.src, path, warm_cache)  # fills the cache; not timed
                runs = [run_cli(args.src, path, warm_cache if mode == "warm" else tmp / f"cold-{name}-{i}")
                        for i in range(args.runs)]
                row = {"input": name, "mode": mode, "runs": args.runs, "median": medians(runs),
                       "walls": [round(r["wall"], 3) for r in runs],
                       "load_avg_before": [round(x, 2) for x in load_before],
                       "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
                if args.stages:
                    cache = warm_cache if mode == "warm" else None
                    stage_runs = [run_stages(args.src, path, cache or tmp / f"stages-cold-{name}-{i}")
                                  for i in range(args.runs)]
                    row["stages"] = stage_medians(stage_runs)
                rows.append(row)
                m = row["median"]
                print(f"{name:12s} {mode}: wall {m['wall']:.2f} s (cpu {m['cpu']:.2f} s; model_load "
                      f"{m['model_load']:.2f}, critic {m['critic']:.2f}, other {m['other']:.2f}); "
                      f"{m['input_tokens']} tokens, {m['windows']} windows; load {row['load_avg_before'][0]}"
                      f"→{row['load_avg_after'][0]}", flush=True)
                for k, v in row.get("stages", {}).items():
                    print(f"    {v:7.3f}  {k}")

    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": "benchmarks/bench_startup.py " + " ".join(sys.argv[1:]),
            "label": args.label, "src": args.src or "this checkout",
            "bytecode_compiled": bytecode_compiled(args.src),
            "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "env": {k: os.environ[k] for k in ("CPRS_CPU_DTYPE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
                    if k in os.environ}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({**meta, **row}) + "\n")
    print(f"rows appended to {args.out}")


if __name__ == "__main__":
    main()
