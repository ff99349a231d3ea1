"""What the evaluation writes: JSON first, then plots, then markdown.

One writer for the benchmark (`cprs bench`: `results.json`, PNG plots, a markdown report) and the
quality runner (a JSON report and its section of docs/quality.md). JSON comes first and is
written atomically with NaN as null, so a failing plot or a crash while rendering loses none of
the numbers; a plot that fails becomes a note.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .plots import fmt_tokens

__all__ = ["write_json", "write_bench_report", "bench_markdown", "bench_plots", "quality_section",
           "update_section", "QUALITY_HEADER", "fmt"]


# --------------------------------------------------------------------------- JSON


def write_json(path: Path, obj: Any) -> None:
    """`obj` as JSON at `path`, atomically (a temporary file renamed over it); NaN becomes
    null, numpy numbers plain numbers, paths strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_nan_to_none(obj), indent=1, ensure_ascii=False, default=_json_default) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, (float, np.floating)) and np.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


# --------------------------------------------------------------------------- the benchmark


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}×"


def bench_markdown(results: dict, files: dict[str, Path], out_dir: Path, report_path: Path) -> str:
    """The benchmark's markdown report; images are linked relative to the report."""
    methods = results["methods"]
    summary = results["summary"]
    speed = results.get("speed") or {}
    rel = os.path.relpath(out_dir, report_path.parent)

    def img(key: str, alt: str) -> str:
        return _img(files, rel, key, alt)

    cfg = results["config"]
    mach = results["machine"]
    machine_line = (f"- **Machine**: {mach.get('platform')}, "
                    f"{mach.get('cpu_model') or mach.get('processor') or mach.get('machine')}, "
                    f"{mach.get('cpu_count')} CPUs, {mach.get('ram_gb')} GB RAM, torch {mach.get('torch', '?')}, "
                    f"device `{mach.get('device')}`" + (f" ({mach['gpu']})" if mach.get("gpu") else ""))
    lines: list[str] = []
    if cfg.get("speed_only"):
        return _speed_markdown(results, files, out_dir, report_path, machine_line)
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
        f"- **Context lengths** (cl100k tokens): {', '.join(fmt_tokens(x) for x in cfg['lengths'])}"
        + (f"; the needle tasks also at {', '.join(fmt_tokens(x) for x in cfg['needle_lengths'])} "
           f"({cfg.get('needle_samples', 1)} sample(s) each"
           + (", niah_single on the depth grid" if cfg.get("depths") and "niah_single" in results["tasks"] else "")
           + ")" if cfg.get("needle_lengths") else ""),
        f"- **Tasks**: {', '.join(results['tasks'])}",
        f"- **Critics**: {', '.join(m for m in methods if m.startswith('cprs')) or '–'}; "
        f"**baselines**: {', '.join(cfg['baselines']) or '–'}",
        (f"- **Budget**: each baseline keeps at most as many cl100k tokens as "
         f"`{results['budget_method']}` kept on the same document (at least {cfg['budget_floor']})."
         if results.get("budget_method") else
         f"- **Budget**: no critic ran; each baseline keeps at most 10% of each document's tokens "
         f"(at least {cfg['budget_floor']})."),
        "- **Score**: RULER string matching on the *compressed text* — `string_match_all` (share of "
        "reference strings present, case-insensitive) for the synthetic tasks, `string_match_part` "
        "(any reference present) for qa. It measures whether the evidence survived compression, "
        "not what an LLM answers.",
        machine_line,
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
        lines.append(f"| {fmt_tokens(int(L))} | " + " | ".join(
            f"{_pct(per[m]['score'])} ({_ratio(per[m]['ratio'])})" for m in methods) + " |")
    lines.append("")

    if summary.get("heatmap"):
        lines += ["## Needle retention heat-map", "",
                  "niah_single: share of needles whose value is still in the compressed text, by "
                  "context length and needle depth (after QwenLong-CPRS, Figure 4).", "",
                  img("heatmap", "needle heat-map")]

    lines += _scaling_lines(speed, files, rel)
    lines += ["The critics' speed beside the shapes of LLMLingua-2, Provence and QwenLong-CPRS-7B, "
              "forward and end to end, with scaling to 1-2M tokens: `cprs bench --speed` "
              "(docs/speed.md).", ""]
    lines += ["## Files", "",
              f"- `{Path(rel, 'results.json').as_posix()}`: every row (task, length, depth, sample, "
              "method, score, tokens, seconds, budget), the summaries and the speed runs.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _img(files: dict[str, Path], rel: str, key: str, alt: str) -> str:
    return f"![{alt}]({Path(rel, files[key].name).as_posix()})\n" if key in files else ""


def _speed_markdown(results: dict, files: dict[str, Path], out_dir: Path, report_path: Path,
                    machine_line: str) -> str:
    """The report of `cprs bench --speed`: the peer-shape speed table, then the scaling run."""
    from .speed import table_markdown

    rel = os.path.relpath(out_dir, report_path.parent)
    cfg = results["config"]
    table = results.get("speed_table") or {}
    load = results["machine"].get("load_average")
    if load:
        machine_line += f"; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min) at the start"
    lines = ["# cprs speed", "",
             f"Generated on {results['date']} by the command below; every number on this page comes "
             "from that run (regenerate it rather than editing).", "", "```", results["command"], "```", "",
             "## Setup", "",
             f"- **Critics**: {', '.join(cfg.get('models') or []) or '–'}; **peers**: "
             f"{', '.join(r['system'] for r in table.get('rows', []) if r.get('kind') == 'peer') or '–'}",
             machine_line]
    for note in results.get("notes", []):
        lines.append(f"- **Note**: {note}")
    lines.append("")
    if table.get("rows"):
        lines += ["## Speed table: our critics and the peers' shapes", ""]
        lines += table_markdown(table)
        lines.append("")
    lines += _scaling_lines(results.get("speed") or {}, files, rel)
    lines += ["## Files", "",
              f"- `{Path(rel, 'results.json').as_posix()}`: the speed table's rows (`speed_table`) and the "
              "scaling runs with their fits (`speed`).", ""]
    return "\n".join(lines).rstrip() + "\n"


def _scaling_lines(speed: dict, files: dict[str, Path], rel: str) -> list[str]:
    """The scaling section: a row per method and length, then the linear fit per method."""
    lines: list[str] = []
    if speed.get("rows"):
        doc = (f"One document per length ({speed['document']}; the critic keeps {speed.get('rate')} of it)"
               if speed.get("document") else "One document per length (niah_single)")
        lines += ["## Speed and scaling", "",
                  f"{doc}, timed after a warm-up; model loading excluded. Peak RSS is the maximum "
                  "resident memory of a fresh process per method and length (model included); peak "
                  "GPU memory is `torch.cuda.max_memory_allocated` over that length's call." if not
                  speed.get("in_process") else f"{doc}, timed in-process after a warm-up.", "",
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
        lines += [x for x in (_img(files, rel, "speed", "speed and memory scaling"),
                              _img(files, rel, "stages", "stage breakdown")) if x]
    return lines


def bench_plots(results: dict, out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """The PNG plots under `out_dir`: (the files written, a note per plot that failed)."""
    from . import deps, plots

    missing = deps.missing("matplotlib")
    if missing:
        return {}, [f"plots skipped: {missing}"]
    summary = results["summary"]
    speed = results.get("speed") or {}
    jobs: list[tuple[str, Callable[[], Path]]] = []
    if summary.get("heatmap"):
        jobs.append(("heatmap", lambda: plots.needle_heatmap(
            summary["heatmap"], out_dir / "needle_heatmap.png", "niah_single: needle retained after compression")))
    if summary.get("by_task"):
        jobs.append(("scores", lambda: plots.scores_by_task(
            summary["by_task"], results["methods"], out_dir / "scores_by_task.png")))
    if speed.get("rows"):
        jobs.append(("speed", lambda: plots.speed_scaling(
            speed["rows"], speed.get("fits", {}), out_dir / "speed_scaling.png")))
        if any(r.get("timings") for r in speed["rows"]):
            jobs.append(("stages", lambda: plots.stage_breakdown(speed["rows"], out_dir / "stage_breakdown.png")))
    files: dict[str, Path] = {}
    notes: list[str] = []
    for key, draw in jobs:
        try:
            files[key] = draw()
        except Exception as exc:  # noqa: BLE001 - a plot is never worth the numbers
            notes.append(f"plot {key!r} failed: {type(exc).__name__}: {exc}")
    return files, notes


def write_bench_report(results: dict, out_dir: Path, report_path: Path) -> dict[str, Path]:
    """`out_dir/results.json` first, then the PNG plots under `out_dir`, then the markdown report
    at `report_path`; results.json is written again at the end with the plots' file names. A
    plot that fails is a note in the report and the JSON, and costs nothing else."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {"json": out_dir / "results.json", "report": report_path}
    results["files"] = {k: str(v) for k, v in files.items()}
    write_json(files["json"], results)
    drawn, failed = bench_plots(results, out_dir)
    files.update(drawn)
    results["notes"] = [*results.get("notes", []), *failed]
    report_path.write_text(bench_markdown(results, files, out_dir, report_path), encoding="utf-8")
    results["files"] = {k: str(v) for k, v in files.items()}
    write_json(files["json"], results)
    return files


# --------------------------------------------------------------------------- the quality runner


def fmt(x: float | None, pct: bool = True) -> str:
    """A score as a percentage with one decimal (or a plain number), "–" for none."""
    if x is None:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.1f}"


def _ci(ci) -> str:
    return f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""


def _mode_label(mode: str) -> str:
    return "dynamic" if mode == "dynamic" else f"`--rate {mode.split(':')[1]}`"


def quality_section(report: dict) -> str:
    """One model and mode of the quality runner as a markdown section of docs/quality.md."""
    name, mode = report["model"], report["mode"]
    m = report["machine"]
    where = m.get("gpu") or m.get("cpu_model") or m.get("cpu") or m.get("platform")
    lines = [
        f"## `{name}` — {mode} ({report['date'][:10]})",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {where} ({m.get('cpu_count') or m.get('cpus')} CPUs, device `{m.get('device', '?')}`)  ",
        f"Split: `{report.get('split', 'test')}`; "
        f"critic probabilities: {report.get('probs_from') or 'computed by this run'}  ",
        f"Wall time: {report['seconds']:.0f} s",
        "",
        "Scores in % with 95% bootstrap intervals; Δ = critic − retriever on the same documents (paired).",
        "",
        "| Documents | Mode | n | Critic | BM25 | Dense | Δ BM25 | Δ Dense | Ratio | Ratio p10/p50/p90 "
        "| Target | Met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|:---:|",
    ]
    for r in report["rows"]:
        spread = r.get("ratio_p10_p50_p90")
        spread_s = "/".join(f"{v:.1f}" for v in spread) if spread and r["mode"] == "dynamic" else "–"
        target = "–"
        if r.get("target") is not None:
            target = f"≥ {100 * r['target']:.0f}"
            if r["mode"] == "dynamic" and r.get("target_ratio"):
                target += f" at ≥ {r['target_ratio']:.0f}×"
        met = "–" if "met" not in r else ("✅" if r["met"] else "❌")
        lines.append(
            f"| {r['title']} | {_mode_label(r['mode'])} | {r['n']} | {fmt(r['critic'])}{_ci(r.get('critic_ci'))} | "
            f"{fmt(r['bm25'])} | {fmt(r['dense'])} | "
            f"{fmt(r.get('critic_minus_bm25'))}{_ci(r.get('critic_minus_bm25_ci'))} | "
            f"{fmt(r.get('critic_minus_dense'))}{_ci(r.get('critic_minus_dense_ci'))} | "
            f"{fmt(r['ratio'], False)}× | {spread_s} | {target} | {met} |")
    una = [(r["row"], r["unanswerable"]) for r in report["rows"] if r.get("unanswerable")]
    if una:
        lines += ["", "Unanswerable questions, dynamic mode (target: output ≤ 5% of the input):", "",
                  "| Row | n | Mean output share | Max output share | Empty outputs | Mean input tokens |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row, u in una:
            lines.append(f"| {row} | {u['n']} | {fmt(u['mean_output_share'])}% | {fmt(u['max_output_share'])}% | "
                         f"{fmt(u['empty_share'])}% | {fmt(u['mean_input_tokens'], False)} |")
    errs = sum(r.get("errors", 0) for r in report["rows"] if r["mode"] == "dynamic")
    if errs:
        lines += ["", f"**{errs} example(s) failed** (see the JSON report)."]
    lines += ["", f"JSON: `{report.get('out', '')}`."]
    return "\n".join(lines) + "\n"


QUALITY_HEADER = """# Quality on held-out documents

Produced by `python -m cprs_cli.evaluation.quality` (see its docstring). Every row uses documents that
training never saw, from the `test` half of the held-out split; the `calib` half is where
thresholds, the lexical weight and the dynamic rule were tuned. Each section below is rewritten
when the same model and mode are evaluated again.
"""


def update_section(path: Path, key: str, section: str, header: str = QUALITY_HEADER) -> None:
    """Put `section` between the markers of `key` in the markdown file at `path` (replacing
    what they held, else appended; a new file starts with `header`)."""
    begin, end = f"<!-- quality:{key} -->", f"<!-- /quality:{key} -->"
    block = f"{begin}\n{section}{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else header
    if begin in text and end in text:
        a = text.index(begin)
        b = text.index(end) + len(end)
        if b < len(text) and text[b] == "\n":
            b += 1
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
