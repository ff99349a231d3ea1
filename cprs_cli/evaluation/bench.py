"""The benchmark harness: tasks × methods → JSON, a markdown report and PNG plots.

    cprs bench --quick --out-dir bench/                                    # minutes on a laptop CPU
    python -m cprs_cli.evaluation.bench --device cuda --out-dir bench/     # the full suite, for a GPU

`main(...)` is what `cprs bench` calls; it writes only under the `out_dir` it is given (and the
markdown report where `report_path` says, by default `out_dir/report.md`). Every critic is driven only through
``compressor.compress(text, query=..., task=..., granularity=...)`` (a
:class:`cprs_cli.Compressor` or anything with that method), so the harness does not care which
critic is loaded. Each baseline gets the same token budget as the (first) critic's output on the
same document, never less than ``BUDGET_FLOOR`` tokens.

Speed is measured per input length in a fresh subprocess (``--speed-worker``) so that the peak
resident memory reported (``getrusage`` max RSS) belongs to that length alone.

``--speed`` (``main(speed=True)``) runs the speed section alone: first the peer-shape speed
table (`speed.speed_table`: our critics end to end and forward, the peers' forward at their
published shapes), all in this one process, one model at a time, so the ratios between rows
compare runs made back to back on the same device; then the scaling run, time and peak memory
against input length (10K to 1M tokens on a CPU, to 2M on a GPU), one fresh process per length
as above. The two are deliberately split: a table of ratios needs one process, warm and shared,
while a peak RSS (and a clean CUDA allocator) per length needs a process per length; the
subprocesses cost a model load each, which is excluded from their timings.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cprs_cli.errors import CprsError, UsageError

from . import deps
from . import metrics as M
from .baselines import BASELINES, make_baseline
from .machine import machine_info
from .report import write_bench_report
from .synthetic import ALL_TASKS
from .tasks import BENCH_TASKS, KNOWN_TASKS, BenchItem, build_suite, make_item

__all__ = ["main", "run_suite", "check_dependencies", "QUICK", "FULL", "BUDGET_FLOOR"]

# the folder that holds the cprs_cli package (site-packages, or a checkout): the speed workers
# import cprs_cli from where this process did
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]

BUDGET_FLOOR = 32  # baselines never get fewer tokens than this
SCHEMA = "cprs-bench/1"
# --speed: the scaling lengths and the end-to-end document of the speed table, by device type
SPEED_LENGTHS = {"cpu": [10_000, 100_000, 1_000_000],
                 "cuda": [10_000, 100_000, 500_000, 1_000_000, 2_000_000]}
SPEED_TOKENS = {"cpu": 100_000, "cuda": 1_000_000}

QUICK: dict[str, Any] = {
    "lengths": [4096, 8192],
    "samples": 1,
    "depths": [0.0, 0.5, 1.0],
    "depth_samples": 1,
    "speed_lengths": [10_000, 100_000],
}
FULL: dict[str, Any] = {
    "lengths": [4096, 8192, 16384, 32768, 65536, 131072],
    "samples": 3,
    "depths": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "depth_samples": 1,  # per (length, depth) cell of the heat-map
    "speed_lengths": [10_000, 100_000, 1_000_000],
    # the needle tasks again at 1M tokens (the paper's needles run to 1M): niah_single on the
    # heat-map's depth grid, the other needle tasks once each
    "needle_lengths": [1_048_576],
    "needle_samples": 1,
}
NEEDLE_TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery")


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _resolve_device(device: str) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_models(quick: bool) -> list[str]:
    """The installed shipped critics (quick: only the first, the fast CPU one)."""
    from cprs_cli.critic.registry import list_critics

    names = [c.name for c in list_critics() if c.installed]
    return names[:1] if quick else names


def check_dependencies(tasks: Sequence[str], baselines: Sequence[str], plots: bool = True) -> None:
    """Raise `deps.MissingDependency` (one line: what to install) before any work when a
    package that this run needs is missing: the essays of the synthetic tasks, bm25s for the
    BM25 baseline, matplotlib for the plots."""
    needed = []
    if any(t in ALL_TASKS for t in tasks):
        needed.append("needlehaystack")
    if "bm25" in baselines:
        needed.append("bm25s")
    if plots:
        needed.append("matplotlib")
    deps.require(*needed)


def model_label(model: Any) -> str:
    """`cprs-<name>` for a shipped name, `cprs-<dirname>` for a critic directory."""
    if isinstance(model, (str, Path)):
        s = str(model)
        name = Path(s).name if (os.sep in s or Path(s).exists()) else s
        return f"cprs-{name}"
    return f"cprs-{getattr(model, 'model_name', type(model).__name__)}"


def default_command() -> str:
    argv = list(sys.argv)
    if not argv or not argv[0] or argv[0] == "-c" or argv[0].endswith(("cli.py", "__main__.py")):
        return shlex.join(["cprs", *argv[1:]]) if len(argv) > 1 else "cprs bench"
    if argv[0].endswith(("bench.py", "-m")):
        return shlex.join(["python", "-m", "cprs_cli.evaluation.bench", *argv[1:]])
    return shlex.join([Path(argv[0]).name, *argv[1:]])


# --------------------------------------------------------------------------------------------
# the accuracy suite


def _row(item: BenchItem, method: str, text: str | None, seconds: float, budget: int | None,
         output_tokens: int | None = None, error: str | None = None) -> dict:
    if text is None:
        return {"task": item.task, "length": item.length, "depth": item.depth, "sample": item.sample,
                "method": method, "score": None, "input_tokens": item.input_tokens,
                "output_tokens": None, "ratio": None, "seconds": round(seconds, 4), "budget": budget,
                "error": error}
    out_tokens = M.count_tokens(text) if output_tokens is None else int(output_tokens)
    return {
        "task": item.task, "length": item.length, "depth": item.depth, "sample": item.sample,
        "method": method, "score": M.score(item.task, text, item.answers),
        "input_tokens": item.input_tokens, "output_tokens": out_tokens,
        "ratio": round(M.compression_ratio(item.input_tokens, out_tokens), 3),
        "seconds": round(seconds, 4), "budget": budget, "error": None,
    }


def run_suite(items: Sequence[BenchItem], compressors: dict[str, Any], baselines: dict[str, Any],
              progress: bool = False) -> list[dict]:
    """Score every method on every item. The first compressor sets the baselines' budget."""
    rows: list[dict] = []
    names = list(compressors)
    for n, item in enumerate(items, 1):
        budget: int | None = None
        parts = []
        for name in names:
            comp = compressors[name]
            t0 = time.perf_counter()
            try:
                res = comp.compress(item.document, query=item.query, task=item.instruction_task,
                                    granularity=item.granularity)
            except Exception as exc:  # one failure must not sink the whole run
                rows.append(_row(item, name, None, time.perf_counter() - t0, None,
                                 error=f"{type(exc).__name__}: {exc}"))
                parts.append(f"{name}=error")
                continue
            dt = time.perf_counter() - t0
            row = _row(item, name, res.compressed_text, dt, None, res.stats.output_tokens)
            rows.append(row)
            parts.append(f"{name}={row['score']:.2f}")
            if budget is None:
                budget = max(int(res.stats.output_tokens), BUDGET_FLOOR)
        if budget is None:
            budget = max(BUDGET_FLOOR, item.input_tokens // 10)
        for bname, base in baselines.items():
            t0 = time.perf_counter()
            try:
                text = base.select(item.document, item.query, budget)
            except Exception as exc:
                rows.append(_row(item, bname, None, time.perf_counter() - t0, budget,
                                 error=f"{type(exc).__name__}: {exc}"))
                parts.append(f"{bname}=error")
                continue
            row = _row(item, bname, text, time.perf_counter() - t0, budget)
            rows.append(row)
            parts.append(f"{bname}={row['score']:.2f}")
        _log(progress, f"[{n}/{len(items)}] {item.task} {item.length} tok "
                       f"(depth {'-' if item.depth is None else f'{item.depth:.2f}'}) "
                       f"budget {budget}: " + " ".join(parts))
    return rows


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def summarise(rows: list[dict], methods: list[str]) -> dict:
    """Mean score and pooled compression ratio (Σ input / Σ output tokens) per task × method
    and per length × method; the niah_single heat-map per method."""
    def agg(sel: list[dict]) -> dict:
        ok = [r for r in sel if r["score"] is not None]
        out_tok = sum(r["output_tokens"] for r in ok)
        in_tok = sum(r["input_tokens"] for r in ok)
        return {
            "score": _mean([r["score"] for r in ok]),
            "ratio": round(in_tok / max(out_tok, 1), 2) if ok else None,
            "output_tokens": round(out_tok / len(ok), 1) if ok else None,
            "seconds": _mean([r["seconds"] for r in ok]),
            "n": len(ok),
            "errors": len(sel) - len(ok),
        }

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    lengths = sorted({r["length"] for r in rows})
    by_task = {t: {m: agg([r for r in rows if r["task"] == t and r["method"] == m]) for m in methods}
               for t in tasks}
    by_length = {str(L): {m: agg([r for r in rows if r["length"] == L and r["method"] == m])
                          for m in methods} for L in lengths}
    overall = {m: agg([r for r in rows if r["method"] == m]) for m in methods}
    heat: dict[str, dict] = {}
    niah = [r for r in rows if r["task"] == "niah_single" and r["depth"] is not None]
    if niah:
        depths = sorted({r["depth"] for r in niah})
        hl = sorted({r["length"] for r in niah})
        for m in methods:
            grid = []
            for d in depths:
                grid.append([
                    _mean([r["score"] for r in niah if r["method"] == m and r["depth"] == d
                           and r["length"] == L]) for L in hl])
            heat[m] = {"lengths": hl, "depths": depths,
                       "scores": grid}  # None where there is no data
    return {"by_task": by_task, "by_length": by_length, "overall": overall, "heatmap": heat}


# --------------------------------------------------------------------------------------------
# speed and scaling


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB. Linux: VmHWM of the current address space
    (`ru_maxrss` would carry over the parent's peak through fork/vfork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    # Linux reports KiB, macOS bytes
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (2**20 if sys.platform == "darwin" else 1024), 1)


def _speed_measure(spec: dict, compressor: Any = None) -> dict:
    """Time one method on one document of `spec['tokens']` tokens (the needle task)."""
    method = spec["method"]
    rss_before = _peak_rss_mb()
    if spec.get("document") == "speed":  # --speed: the speed table's document, a budget of `rate`
        from .speed import SPEED_QUERY, speed_document

        text, source = speed_document(int(spec["tokens"]))
        item = BenchItem(task="speed", length=int(spec["tokens"]), sample=0, depth=None, query=SPEED_QUERY,
                         document=text, answers=[], instruction_task="facts", granularity="sentence",
                         evidence=[], input_tokens=M.count_tokens(text))
        extra: dict[str, Any] = {"rate": spec.get("rate"), "document": source}
    else:
        item = make_item("niah_single", int(spec["tokens"]), seed=int(spec.get("seed", 0)), sample=0, depth=0.5)
        extra = {}
    out: dict[str, Any] = {"method": spec.get("label", method), "tokens": int(spec["tokens"]),
                           "input_tokens": item.input_tokens, "chars": len(item.document), **extra}
    warm = item.document[:4000]
    cuda = str(spec.get("device", "")).startswith("cuda")
    if method == "critic":
        t0 = time.perf_counter()
        comp = compressor
        if comp is None:
            from cprs_cli import Compressor

            comp = Compressor(model=spec["model"], device=spec.get("device", "auto"))
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        # warm-up on the timed call's path (its granularity and budget: BM25's import included)
        comp.compress(warm, query=item.query, task=item.instruction_task, granularity=item.granularity,
                      rate=spec.get("rate"))
        _sync(spec.get("device"))
        rss_loaded = _peak_rss_mb()
        if cuda:  # peak GPU memory of this length alone (weights included)
            import torch

            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        res = comp.compress(item.document, query=item.query, task=item.instruction_task,
                            granularity=item.granularity, rate=spec.get("rate"))
        _sync(spec.get("device"))
        out["seconds"] = round(time.perf_counter() - t0, 4)
        out["timings"] = {k: float(v) for k, v in (res.stats.timings or {}).items()}
        out["output_tokens"] = int(res.stats.output_tokens)
        out["score"] = M.score(item.task, res.compressed_text, item.answers) if item.answers else None
    else:
        base = make_baseline(method, device=spec.get("device", "cpu"), seed=int(spec.get("seed", 0)))
        budget = int(spec.get("budget") or BUDGET_FLOOR)
        t0 = time.perf_counter()
        base.select(warm, item.query, min(budget, 200))  # loads models, warms caches
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        rss_loaded = _peak_rss_mb()
        t0 = time.perf_counter()
        text = base.select(item.document, item.query, budget)
        out["seconds"] = round(time.perf_counter() - t0, 4)
        out["output_tokens"] = M.count_tokens(text)
        out["score"] = M.score(item.task, text, item.answers) if item.answers else None
    out["tokens_per_second"] = round(item.input_tokens / max(out["seconds"], 1e-9), 1)
    out["rss_before_mb"] = rss_before
    out["rss_loaded_mb"] = rss_loaded
    out["peak_rss_mb"] = _peak_rss_mb()
    import torch

    if torch.cuda.is_available() and cuda:
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _sync(device: str | None) -> None:
    if device and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _speed_subprocess(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "cprs_cli.evaluation.bench", "--speed-worker", json.dumps(spec)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_PACKAGE_PARENT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"method": spec.get("label", spec["method"]), "tokens": spec["tokens"],
                "input_tokens": spec["tokens"], "seconds": None, "error": f"timeout after {timeout:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"method": spec.get("label", spec["method"]), "tokens": spec["tokens"],
                "input_tokens": spec["tokens"], "seconds": None,
                "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def run_speed(lengths: Sequence[int], models: dict[str, Any], baselines: Sequence[str], device: str,
              seed: int = 0, in_process: bool = False, progress: bool = False,
              timeout: float = 1800.0, rate: float | None = None) -> dict:
    """Seconds, tokens/s and peak RSS (and on CUDA peak GPU memory) per method and length, a
    linear fit of seconds vs input tokens (R² with 3+ lengths) and the critic's stage split.
    `models` maps a label to a model name/path (run in subprocesses) or, with `in_process`, to a
    Compressor-like object. With `rate` (--speed) the document is the speed table's and the
    critic keeps `rate` of it; without, the needle task in the critic's dynamic mode."""
    rows: list[dict] = []
    doc = {"document": "speed", "rate": rate} if rate is not None else {}
    for L in lengths:
        budget = None
        for label, model in models.items():
            spec = {"method": "critic", "label": label, "model": str(model) if not in_process else None,
                    "device": device, "tokens": int(L), "seed": seed, **doc}
            _log(progress, f"speed: {label} at {L:,} tokens")
            r = _speed_measure(spec, model) if in_process else _speed_subprocess(spec, timeout)
            if in_process:
                r["note"] = "in-process (RSS includes the whole run)"
            rows.append(r)
            if budget is None and r.get("output_tokens") is not None:
                budget = max(int(r["output_tokens"]), BUDGET_FLOOR)
        for b in baselines:
            spec = {"method": b, "label": b, "device": device, "tokens": int(L), "seed": seed,
                    "budget": budget or max(BUDGET_FLOOR, int(L) // 10), **doc}
            _log(progress, f"speed: {b} at {L:,} tokens")
            r = _speed_measure(spec) if in_process else _speed_subprocess(spec, timeout)
            rows.append(r)
    fits = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        pts = [(r["input_tokens"], r["seconds"]) for r in rows if r["method"] == m and r.get("seconds") is not None]
        fits[m] = M.linear_fit([p[0] for p in pts], [p[1] for p in pts])
    return {"rows": rows, "fits": fits}


# --------------------------------------------------------------------------------------------
# entry points


def main(out_dir: Path | str, quick: bool = False, models: list[str] | None = None,
         lengths: list[int] | None = None, device: str = "auto", tasks: list[str] | None = None,
         seed: int = 0, progress: bool = True, *, samples: int | None = None,
         depths: list[float] | None = None, speed_lengths: list[int] | None = None,
         baselines: list[str] | None = None, compressors: dict[str, Any] | None = None,
         compressor_factory: Callable[[str, str], Any] | None = None, report_path: Path | str | None = None,
         command: str | None = None, data_dir: Path | str | None = None, speed: bool = False,
         peers: list[str] | None = None, speed_tokens: int | None = None, tiny_peers: bool = False,
         speed_rate: float | None = None, needle_lengths: list[int] | None = None) -> dict:
    """Run the benchmark and write `out_dir/results.json` (first), `out_dir/*.png` and the
    markdown report (default `out_dir/report.md`). Nothing else is written. Returns the results.

    `models`: critic names or directories (default: the installed shipped critics; quick: the
    first of them). `compressors` may instead give ready objects with `.compress` (label →
    object); they are then also timed in-process. `speed_lengths=[]` skips the speed section.
    `needle_lengths`: the needle tasks' extra lengths (default: the full preset's 1M, but none
    when `lengths` is given or in quick mode; `[]` for none). `data_dir`: the QA records of the
    `qa` task (`qa.resolve_data_dir`; without them the task
    is skipped with a note). Raises `UsageError` for an unknown task or baseline and
    `deps.MissingDependency` for a missing package, before any work.

    `speed=True` runs the speed section alone (no task suite; baselines only if named): the
    peer-shape speed table (`speed.speed_table`; `peers`: names, "all" or "none", default every
    peer that fits the device; `speed_tokens`: its end-to-end document; `tiny_peers`: the peers
    at 2 layers of width 64, for tests) and the scaling run over `speed_lengths` (default
    `SPEED_LENGTHS` of the device) at `speed_rate` (default 0.1). Plots are optional there: without
    matplotlib they are a note.
    """
    preset = QUICK if quick else FULL
    out_dir = Path(out_dir)
    report_path = Path(report_path) if report_path else out_dir / "report.md"
    explicit_lengths = bool(lengths)
    lengths = list(lengths or preset["lengths"])
    if needle_lengths is None:
        needle_lengths = [] if explicit_lengths else list(preset.get("needle_lengths", []))
    if any(n < 1 for n in needle_lengths):
        raise UsageError("needle lengths must be at least 1 token")
    needle_lengths = sorted({n for n in needle_lengths if n not in lengths})
    samples = int(samples or preset["samples"])
    depths = list(preset["depths"] if depths is None else depths)
    dev = _resolve_device(device)
    machine = machine_info(dev)  # before the run: its load average is the machine's, not ours
    dev_type = "cuda" if dev.startswith("cuda") else "cpu"
    if speed:
        from . import speed as S

        default_lengths = SPEED_LENGTHS[dev_type][:2] if quick else SPEED_LENGTHS[dev_type]
        speed_lengths = list(default_lengths if speed_lengths is None else speed_lengths)
        baselines = list(baselines or [])
        tasks = []
        lengths = []
        needle_lengths = []
        speed_rate = S.DEFAULT_RATE if speed_rate is None else float(speed_rate)
        speed_tokens = int(speed_tokens or (min(SPEED_TOKENS[dev_type], 30_000) if quick else SPEED_TOKENS[dev_type]))
        S.select_peers(peers, dev)  # an unknown peer is a usage error before any work
    else:
        speed_lengths = list(preset["speed_lengths"] if speed_lengths is None else speed_lengths)
        baselines = list(BASELINES if baselines is None else baselines)
        tasks = list(tasks or BENCH_TASKS)
        if not any(t in NEEDLE_TASKS for t in tasks):
            needle_lengths = []
    started = time.perf_counter()

    # critics
    notes: list[str] = []
    in_process = compressors is not None
    unknown = [t for t in tasks if t not in KNOWN_TASKS]
    if unknown:
        raise UsageError(f"unknown bench task(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_TASKS)}")
    bad = [b for b in baselines if b not in BASELINES]
    if bad:
        raise UsageError(f"unknown baseline(s) {', '.join(bad)}; choose from {', '.join(BASELINES)}")
    check_dependencies(tasks, baselines, plots=not speed)
    if compressors is None:
        if not models:
            models = default_models(quick)
            if not models:
                notes.append("no trained critic is installed: baselines only, with a budget of "
                             "10% of each document")
        factory = compressor_factory
        if factory is None:
            def factory(m: str, d: str):
                from cprs_cli import Compressor

                return Compressor(model=m, device=d)
        compressors = {}
        model_for_label: dict[str, Any] = {}
        for m in models:
            label = model_label(m)
            try:
                compressors[label] = factory(m, dev)
                model_for_label[label] = m
            except Exception as exc:
                notes.append(f"critic {m!r} skipped: {type(exc).__name__}: {exc}")
                _log(progress, notes[-1])
    else:
        compressors = dict(compressors)
        model_for_label = dict(compressors)
    crit_labels = list(compressors)
    base_objs = {b: make_baseline(b, device=dev, seed=seed) for b in baselines}
    methods = crit_labels + list(base_objs)

    # accuracy suite
    items: list[BenchItem] = []
    rows: list[dict] = []
    if tasks:
        _log(progress, f"generating tasks {', '.join(tasks)} at {', '.join(map(str, lengths))} tokens")
        items, tnotes = build_suite(tasks, lengths, samples, seed, depths,
                                    Path(data_dir) if data_dir else None,
                                    depth_samples=preset["depth_samples"] if depths else None)
        notes += tnotes
        needle_tasks = [t for t in tasks if t in NEEDLE_TASKS]
        if needle_lengths:
            _log(progress, f"generating {', '.join(needle_tasks)} at {', '.join(map(str, needle_lengths))} tokens")
            more, _ = build_suite(needle_tasks, needle_lengths, int(preset.get("needle_samples", samples)), seed,
                                  depths, None, depth_samples=preset["depth_samples"] if depths else None)
            items += more
        _log(progress, f"{len(items)} items × {len(methods)} methods")
        rows = run_suite(items, compressors, base_objs, progress)
    summary = summarise(rows, methods) if rows else {"by_task": {}, "by_length": {}, "overall": {},
                                                     "heatmap": {}}

    # the peer-shape speed table, in this process (each critic freed once measured, unless the
    # caller passed ready objects, which the scaling run below still times in-process)
    table: dict = {}
    if speed:
        assert speed_tokens is not None and speed_rate is not None
        table = S.speed_table(compressors, device=dev, peers=peers, tokens=speed_tokens, rate=speed_rate,
                              tiny_peers=tiny_peers, quick=quick, log=lambda m: _log(progress, m),
                              free_critics=not in_process)

    # speed
    speed_runs: dict = {}
    if speed_lengths and (model_for_label or base_objs):
        speed_runs = run_speed(speed_lengths, model_for_label, baselines, dev, seed, in_process=in_process,
                               progress=progress, rate=speed_rate if speed else None)
        speed_runs["in_process"] = in_process
        speed_runs["lengths"] = speed_lengths
        if speed:
            speed_runs["rate"] = speed_rate
            speed_runs["document"] = table.get("document")

    results: dict[str, Any] = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command or default_command(),
        "machine": machine,
        "config": {"quick": quick, "models": crit_labels, "lengths": lengths, "samples": samples,
                   "needle_lengths": needle_lengths,
                   "needle_samples": preset.get("needle_samples", samples),
                   "depths": depths, "speed_lengths": speed_lengths, "baselines": baselines,
                   "seed": seed, "device": dev, "budget_floor": BUDGET_FLOOR, "speed_only": speed,
                   "peers": peers, "speed_tokens": speed_tokens, "speed_rate": speed_rate},
        "tasks": list(dict.fromkeys(i.task for i in items)),
        "methods": methods,
        "budget_method": crit_labels[0] if crit_labels else None,
        "notes": notes,
        "rows": rows,
        "summary": summary,
        "speed": speed_runs,
        "speed_table": table,
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_bench_report(results, out_dir, report_path)
    _log(progress, f"done in {results['seconds']:.0f}s: {out_dir / 'results.json'}, {report_path}")
    return results


def _ints(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        if part.endswith("k"):
            mult, part = 1024, part[:-1]
        elif part.endswith("m"):
            mult, part = 1_000_000, part[:-1]
        out.append(int(float(part) * mult))
    return out


def _peer_names() -> list[str]:
    from .speed import PEERS

    return list(PEERS)


def _cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cprs_cli.evaluation.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small lengths, few samples, the mini critic")
    p.add_argument("--out-dir", type=Path, required=False, help="where results.json and the plots go")
    p.add_argument("--report", type=Path, default=None, help="markdown report (default <out-dir>/report.md)")
    p.add_argument("--data-dir", type=Path, default=None, help="QA records for the qa task "
                   "(default: $CPRS_DATA, else ../shared/data)")
    p.add_argument("--model", "--models", dest="models", action="append", default=None,
                   help="critic name or directory (repeatable)")
    p.add_argument("--lengths", type=_ints, default=None, help="e.g. 4k,16k,128k (k = 1024)")
    p.add_argument("--speed-lengths", type=_ints, default=None, help="e.g. 10000,100000 (empty: skip)")
    p.add_argument("--needle-lengths", type=_ints, default=None,
                   help="extra lengths for the needle tasks alone (default: 1,048,576 in a full run; empty: none)")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--tasks", type=lambda s: [t.strip() for t in s.split(",") if t.strip()], default=None)
    p.add_argument("--baselines", type=lambda s: [t.strip() for t in s.split(",") if t.strip()], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--speed", action="store_true", help="the speed section alone: the peer-shape "
                   "speed table and the scaling run")
    p.add_argument("--peers", type=lambda s: [t.strip() for t in s.split(",") if t.strip()], default=None,
                   help="peer shapes for --speed: " + ", ".join(_peer_names()) + ", all or none "
                   "(default: all that fit the device)")
    p.add_argument("--speed-tokens", type=_ints, default=None, help="--speed: tokens of the end-to-end document")
    p.add_argument("--tiny-peers", action="store_true", help="--speed: peers at 2 layers of width 64 (a smoke run)")
    p.add_argument("--speed-worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.speed_worker:
        print(json.dumps(_speed_measure(json.loads(a.speed_worker))), flush=True)
        return 0
    if a.out_dir is None:
        p.error("--out-dir is required")
    try:
        main(a.out_dir, quick=a.quick, models=a.models, lengths=a.lengths, device=a.device,
             tasks=a.tasks, seed=a.seed, progress=not a.no_progress, samples=a.samples,
             speed_lengths=a.speed_lengths, needle_lengths=a.needle_lengths, baselines=a.baselines,
             report_path=a.report,
             data_dir=a.data_dir, speed=a.speed, peers=a.peers,
             speed_tokens=a.speed_tokens[0] if a.speed_tokens else None, tiny_peers=a.tiny_peers)
    except CprsError as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
