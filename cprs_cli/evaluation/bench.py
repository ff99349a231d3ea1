"""The benchmark harness: tasks × methods → JSON, a markdown report and PNG plots.

    python -m cprs_cli.bench.run --quick                  # a few minutes on a laptop CPU
    python -m cprs_cli.bench.run --device cuda            # the full suite, meant for a GPU

`main(...)` is what `cprs bench` calls. Every critic is driven only through
``compressor.compress(text, query=..., task=..., granularity=...)`` (a
:class:`cprs_cli.Compressor` or anything with that method), so the harness does not care which
critic is loaded. Each baseline gets the same token budget as the (first) critic's output on the
same document, never less than ``BUDGET_FLOOR`` tokens.

Speed is measured per input length in a fresh subprocess (``--speed-worker``) so that the peak
resident memory reported (``getrusage`` max RSS) belongs to that length alone.
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
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import metrics as M
from .baselines import BASELINES, make_baseline
from .tasks import BENCH_TASKS, KNOWN_TASKS, BenchItem, build_suite, make_item
from ..errors import UsageError
from ..machine import machine_info

__all__ = ["main", "run_suite", "write_report", "QUICK", "FULL", "BUDGET_FLOOR"]

BUDGET_FLOOR = 32  # baselines never get fewer tokens than this
SCHEMA = "cprs-bench/1"

QUICK = {
    "lengths": [4096, 8192],
    "samples": 1,
    "depths": [0.0, 0.5, 1.0],
    "depth_samples": 1,
    "speed_lengths": [10_000, 100_000],
}
FULL = {
    "lengths": [4096, 8192, 16384, 32768, 65536, 131072],
    "samples": 3,
    "depths": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "depth_samples": 1,  # per (length, depth) cell of the heat-map
    "speed_lengths": [10_000, 100_000, 1_000_000],
}


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _resolve_device(device: str) -> str:
    if device and device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover
        return "cpu"


def default_models(quick: bool) -> list[str]:
    """The installed shipped critics (quick: only the first, the fast CPU one)."""
    try:
        from cprs_cli.critic.registry import list_critics

        names = [c.name for c in list_critics() if c.installed]
    except Exception:  # pragma: no cover - registry unavailable
        names = []
    return names[:1] if quick else names


def model_label(model: Any) -> str:
    """`cprs-<name>` for a shipped name, `cprs-<dirname>` for a critic directory."""
    if isinstance(model, (str, Path)):
        s = str(model)
        name = Path(s).name if (os.sep in s or Path(s).exists()) else s
        return f"cprs-{name}"
    return f"cprs-{getattr(model, 'model_name', type(model).__name__)}"


def default_command() -> str:
    argv = list(sys.argv)
    if not argv or not argv[0] or argv[0] == "-c" or argv[0].endswith("cli.py"):
        return shlex.join(["cprs", *argv[1:]]) if len(argv) > 1 else "cprs bench"
    if argv[0].endswith(("run.py", "-m")) or argv[0].endswith(os.path.join("bench", "run.py")):
        return shlex.join(["python", "-m", "cprs_cli.bench.run", *argv[1:]])
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
                       "scores": [[np.nan if v is None else v for v in row] for row in grid]}
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
    item = make_item("niah_single", int(spec["tokens"]), seed=int(spec.get("seed", 0)), sample=0, depth=0.5)
    method = spec["method"]
    rss_before = _peak_rss_mb()
    out: dict[str, Any] = {"method": spec.get("label", method), "tokens": int(spec["tokens"]),
                           "input_tokens": item.input_tokens, "chars": len(item.document)}
    warm = item.document[:4000]
    if method == "critic":
        t0 = time.perf_counter()
        comp = compressor
        if comp is None:
            from cprs_cli import Compressor

            comp = Compressor(model=spec["model"], device=spec.get("device", "auto"))
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        comp.compress(warm, query=item.query, task=item.instruction_task)  # warm-up
        _sync(spec.get("device"))
        rss_loaded = _peak_rss_mb()
        t0 = time.perf_counter()
        res = comp.compress(item.document, query=item.query, task=item.instruction_task,
                            granularity=item.granularity)
        _sync(spec.get("device"))
        out["seconds"] = round(time.perf_counter() - t0, 4)
        out["timings"] = {k: float(v) for k, v in (res.stats.timings or {}).items()}
        out["output_tokens"] = int(res.stats.output_tokens)
        out["score"] = M.score(item.task, res.compressed_text, item.answers)
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
        out["score"] = M.score(item.task, text, item.answers)
    out["tokens_per_second"] = round(item.input_tokens / max(out["seconds"], 1e-9), 1)
    out["rss_before_mb"] = rss_before
    out["rss_loaded_mb"] = rss_loaded
    out["peak_rss_mb"] = _peak_rss_mb()
    try:
        import torch

        if torch.cuda.is_available() and str(spec.get("device", "")).startswith("cuda"):
            out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:  # pragma: no cover
        pass
    return out


def _sync(device: str | None) -> None:
    if device and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _speed_subprocess(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "cprs_cli.bench.run", "--speed-worker", json.dumps(spec)]
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
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
              timeout: float = 1800.0) -> dict:
    """Seconds, tokens/s and peak RSS per method and length, a linear fit of seconds vs input
    tokens (R² with 3+ lengths) and the critic's stage split. `models` maps a label to a model
    name/path (run in subprocesses) or, with `in_process`, to a Compressor-like object."""
    rows: list[dict] = []
    for L in lengths:
        budget = None
        for label, model in models.items():
            spec = {"method": "critic", "label": label, "model": str(model) if not in_process else None,
                    "device": device, "tokens": int(L), "seed": seed}
            _log(progress, f"speed: {label} at {L:,} tokens")
            r = _speed_measure(spec, model) if in_process else _speed_subprocess(spec, timeout)
            if in_process:
                r["note"] = "in-process (RSS includes the whole run)"
            rows.append(r)
            if budget is None and r.get("output_tokens") is not None:
                budget = max(int(r["output_tokens"]), BUDGET_FLOOR)
        for b in baselines:
            spec = {"method": b, "label": b, "device": device, "tokens": int(L), "seed": seed,
                    "budget": budget or max(BUDGET_FLOOR, int(L) // 10)}
            _log(progress, f"speed: {b} at {L:,} tokens")
            r = _speed_measure(spec) if in_process else _speed_subprocess(spec, timeout)
            rows.append(r)
    fits = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        pts = [(r["input_tokens"], r["seconds"]) for r in rows if r["method"] == m and r.get("seconds") is not None]
        fits[m] = M.linear_fit([p[0] for p in pts], [p[1] for p in pts])
    return {"rows": rows, "fits": fits}


# --------------------------------------------------------------------------------------------
# report


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}×"


def _fmt_len(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 and n >= 1024 else (f"{n / 1000:g}K" if n >= 1000 else str(n))


def write_report(results: dict, out_dir: Path, report_path: Path) -> dict[str, Path]:
    """results.json, the PNG plots under `out_dir`, and the markdown report at `report_path`."""
    from . import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    methods = results["methods"]
    summary = results["summary"]
    files: dict[str, Path] = {}
    if summary.get("heatmap"):
        files["heatmap"] = plots.needle_heatmap(summary["heatmap"], out_dir / "needle_heatmap.png",
                                                "niah_single: needle retained after compression")
    if summary.get("by_task"):
        files["scores"] = plots.scores_by_task(summary["by_task"], methods, out_dir / "scores_by_task.png")
    speed = results.get("speed") or {}
    if speed.get("rows"):
        files["speed"] = plots.speed_scaling(speed["rows"], speed.get("fits", {}), out_dir / "speed_scaling.png")
        if any(r.get("timings") for r in speed["rows"]):
            files["stages"] = plots.stage_breakdown(speed["rows"], out_dir / "stage_breakdown.png")

    rel = os.path.relpath(out_dir, report_path.parent)

    def img(key: str, alt: str) -> str:
        return f"![{alt}]({Path(rel, files[key].name).as_posix()})\n" if key in files else ""

    cfg = results["config"]
    mach = results["machine"]
    lines: list[str] = []
    lines += [
        "# cprs benchmarks",
        "",
        f"Generated on {results['date']} by the command below; every number on this page comes "
        "from that run (regenerate it rather than editing).",
        "",
        "```",
        results["command"],
        "```",
        "",
        "## Setup",
        "",
        f"- **Mode**: {'quick' if cfg['quick'] else 'full'}; seed {cfg['seed']}; "
        f"{cfg['samples']} sample(s) per task and length"
        + (f"; niah_single on a grid of {len(cfg['depths'])} needle depths per length instead"
           if cfg.get("depths") else ""),
        f"- **Context lengths** (cl100k tokens): {', '.join(_fmt_len(x) for x in cfg['lengths'])}",
        f"- **Tasks**: {', '.join(results['tasks'])}",
        f"- **Critics**: {', '.join(m for m in methods if m.startswith('cprs')) or '–'}; "
        f"**baselines**: {', '.join(cfg['baselines']) or '–'}",
        (f"- **Budget**: each baseline keeps at most as many cl100k tokens as "
         f"`{results['budget_method']}` kept on the same document (at least {BUDGET_FLOOR})."
         if results.get("budget_method") else
         f"- **Budget**: no critic ran; each baseline keeps at most 10% of each document's tokens "
         f"(at least {BUDGET_FLOOR})."),
        "- **Score**: RULER string matching on the *compressed text* — `string_match_all` (share of "
        "reference strings present, case-insensitive) for the synthetic tasks, `string_match_part` "
        "(any reference present) for qa. It measures whether the evidence survived compression, "
        "not what an LLM answers.",
        f"- **Machine**: {mach.get('platform')}, {mach.get('cpu_model') or mach.get('processor') or mach.get('machine')}, "
        f"{mach.get('cpu_count')} CPUs, {mach.get('ram_gb')} GB RAM, torch {mach.get('torch', '?')}, "
        f"device `{mach.get('device')}`" + (f" ({mach['gpu']})" if mach.get("gpu") else ""),
    ]
    for note in results.get("notes", []):
        lines.append(f"- **Note**: {note}")
    lines.append("")

    # task × method
    lines += ["## Scores by task", "",
              "Score (0–100) and compression ratio (Σ input ÷ Σ output tokens) per task and method.", ""]
    header = "| task | " + " | ".join(methods) + " |"
    lines += [header, "|---|" + "---:|" * len(methods)]
    for task, per in summary["by_task"].items():
        cells = [f"{_pct(per[m]['score'])} ({_ratio(per[m]['ratio'])})" for m in methods]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    ov = summary["overall"]
    lines.append("| **all** | " + " | ".join(f"**{_pct(ov[m]['score'])}** ({_ratio(ov[m]['ratio'])})"
                                               for m in methods) + " |")
    lines.append("")
    errs = {m: ov[m]["errors"] for m in methods if ov[m]["errors"]}
    if errs:
        lines += ["Errors (excluded from the scores): " + ", ".join(f"{m}: {n}" for m, n in errs.items()), ""]
    lines.append(img("scores", "scores by task"))

    lines += ["## Scores by context length", ""]
    lines += ["| length | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for L, per in summary["by_length"].items():
        lines.append(f"| {_fmt_len(int(L))} | " + " | ".join(
            f"{_pct(per[m]['score'])} ({_ratio(per[m]['ratio'])})" for m in methods) + " |")
    lines.append("")

    if summary.get("heatmap"):
        lines += ["## Needle retention heat-map", "",
                  "niah_single: share of needles whose value is still in the compressed text, by "
                  "context length and needle depth (after QwenLong-CPRS, Figure 4).", "",
                  img("heatmap", "needle heat-map")]

    if speed.get("rows"):
        lines += ["## Speed and scaling", "",
                  "One document per length (niah_single), timed after a warm-up; model loading "
                  "excluded. Peak RSS is the maximum resident memory of a fresh process per "
                  "method and length (model included)." if not speed.get("in_process") else
                  "One document per length, timed in-process after a warm-up.", "",
                  "| method | input tokens | seconds | tokens/s | peak RSS (MB) | load (s) "
                  "| tokenize / critic / post (s) | note |",
                  "|---|---:|---:|---:|---:|---:|---|---|"]
        for r in speed["rows"]:
            t = r.get("timings") or {}
            stages = " / ".join(f"{t.get(k, 0):.2f}" for k in ("tokenize", "critic", "post")) if t else "–"
            secs = "–" if r.get("seconds") is None else f"{r['seconds']:.3f}"
            tps = "–" if r.get("tokens_per_second") is None else f"{r['tokens_per_second']:,.0f}"
            rss = "–" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:,.0f}"
            note = r.get("error") or r.get("note") or ""
            if r.get("peak_gpu_mb") is not None:
                note = (note + "; " if note else "") + f"peak GPU {r['peak_gpu_mb']:,.0f} MB"
            load = "–" if r.get("load_seconds") is None else f"{r['load_seconds']:.2f}"
            lines.append(f"| {r['method']} | {r['input_tokens']:,} | {secs} | {tps} | {rss} | {load} "
                         f"| {stages} | {note} |")
        lines += ["", "Linear fit of seconds against input tokens:", "",
                  "| method | seconds per 1K tokens | intercept (s) | R² | points |", "|---|---:|---:|---:|---:|"]
        for m, f in speed.get("fits", {}).items():
            if f.get("slope") is None:
                lines.append(f"| {m} | – | – | – | {f['n']} |")
                continue
            r2 = "n/a (needs 3+ lengths)" if f.get("r2") is None else f"{f['r2']:.4f}"
            lines.append(f"| {m} | {1000 * f['slope']:.4f} | {f['intercept']:.3f} | {r2} | {f['n']} |")
        lines.append("")
        lines.append(img("speed", "speed and memory scaling"))
        lines.append(img("stages", "stage breakdown"))

    lines += ["## Files", "",
              f"- `{Path(rel, 'results.json').as_posix()}`: every row (task, length, depth, sample, "
              "method, score, tokens, seconds, budget), the summaries and the speed runs.", ""]
    files["json"] = out_dir / "results.json"
    files["report"] = report_path
    results["files"] = {k: str(v) for k, v in files.items()}
    (out_dir / "results.json").write_text(
        json.dumps(_nan_to_none(results), indent=1, default=_json_default) + "\n")
    report_path.write_text("\n".join(lines).rstrip() + "\n")
    return files


def _json_default(o: Any):
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _nan_to_none(x):
    if isinstance(x, float) and np.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


# --------------------------------------------------------------------------------------------
# entry points


def main(quick: bool = False, out_dir: Path | str = Path("docs/benchmarks"), models: list[str] | None = None,
         lengths: list[int] | None = None, device: str = "auto", tasks: list[str] | None = None,
         seed: int = 0, progress: bool = True, *, samples: int | None = None,
         depths: list[float] | None = None, speed_lengths: list[int] | None = None,
         baselines: list[str] | None = None, compressors: dict[str, Any] | None = None,
         compressor_factory: Callable[[str, str], Any] | None = None, report_path: Path | str | None = None,
         command: str | None = None, data_dir: Path | str | None = None) -> dict:
    """Run the benchmark and write `out_dir/results.json`, `out_dir/*.png` and the markdown
    report (default: `<out_dir>.md` next to `out_dir`, i.e. docs/benchmarks.md). Returns the
    results dict.

    `models`: critic names or directories (default: the installed shipped critics; quick: the
    first of them). `compressors` may instead
    give ready objects with `.compress` (label → object); they are then also timed in-process.
    `speed_lengths=[]` skips the speed section.
    """
    preset = QUICK if quick else FULL
    out_dir = Path(out_dir)
    report_path = Path(report_path) if report_path else out_dir.parent / f"{out_dir.name}.md"
    lengths = list(lengths or preset["lengths"])
    samples = int(samples or preset["samples"])
    depths = list(preset["depths"] if depths is None else depths)
    speed_lengths = list(preset["speed_lengths"] if speed_lengths is None else speed_lengths)
    baselines = list(BASELINES if baselines is None else baselines)
    tasks = list(tasks or BENCH_TASKS)
    dev = _resolve_device(device)
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
    _log(progress, f"generating tasks {', '.join(tasks)} at {', '.join(map(str, lengths))} tokens")
    items, tnotes = build_suite(tasks, lengths, samples, seed, depths,
                                Path(data_dir) if data_dir else None,
                                depth_samples=preset["depth_samples"] if depths else None)
    notes += tnotes
    _log(progress, f"{len(items)} items × {len(methods)} methods")
    rows = run_suite(items, compressors, base_objs, progress)
    summary = _nan_to_none(summarise(rows, methods)) if rows else {"by_task": {}, "by_length": {},
                                                                   "overall": {}, "heatmap": {}}
    # keep NaN in the heat-map for plotting; JSON gets None
    heat_plot = summarise(rows, methods)["heatmap"] if rows else {}

    # speed
    speed: dict = {}
    if speed_lengths and (compressors or base_objs):
        speed = run_speed(speed_lengths, model_for_label, baselines, dev, seed, in_process=in_process,
                          progress=progress)
        speed["in_process"] = in_process
        speed["lengths"] = speed_lengths

    results = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command or default_command(),
        "machine": machine_info(dev),
        "config": {"quick": quick, "models": list(compressors), "lengths": lengths, "samples": samples,
                   "depths": depths, "speed_lengths": speed_lengths, "baselines": baselines,
                   "seed": seed, "device": dev, "budget_floor": BUDGET_FLOOR},
        "tasks": list(dict.fromkeys(i.task for i in items)),
        "methods": methods,
        "budget_method": crit_labels[0] if crit_labels else None,
        "notes": notes,
        "rows": rows,
        "summary": summary,
        "speed": speed,
    }
    # plots want NaN for missing heat-map cells
    plot_results = dict(results, summary=dict(summary, heatmap=heat_plot))
    files = write_report(plot_results, out_dir, report_path)
    results["files"] = {k: str(v) for k, v in files.items()}
    results["seconds"] = round(time.perf_counter() - started, 1)
    _log(progress, f"done in {results['seconds']:.0f}s: {report_path} and {out_dir}/")
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


def _cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cprs_cli.bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small lengths, few samples, the mini critic")
    p.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--report", type=Path, default=None, help="markdown report (default <out-dir>.md)")
    p.add_argument("--model", "--models", dest="models", action="append", default=None,
                   help="critic name or directory (repeatable)")
    p.add_argument("--lengths", type=_ints, default=None, help="e.g. 4k,16k,128k (k = 1024)")
    p.add_argument("--speed-lengths", type=_ints, default=None, help="e.g. 10000,100000 (empty: skip)")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--tasks", type=lambda s: [t.strip() for t in s.split(",") if t.strip()], default=None)
    p.add_argument("--baselines", type=lambda s: [t.strip() for t in s.split(",") if t.strip()], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--speed-worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.speed_worker:
        print(json.dumps(_speed_measure(json.loads(a.speed_worker))), flush=True)
        return 0
    main(quick=a.quick, out_dir=a.out_dir, models=a.models, lengths=a.lengths, device=a.device,
         tasks=a.tasks, seed=a.seed, progress=not a.no_progress, samples=a.samples,
         speed_lengths=a.speed_lengths, baselines=a.baselines, report_path=a.report)
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
