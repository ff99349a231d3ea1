"""Calibrate a critic's keep-probability threshold per task on the validation split.

    python -m cprs_cli.train.calibrate --model mini --n 30 --write

The critic runs once per validation example (token probabilities are cached); the selection
is then replayed for every candidate threshold. For each task preset the lowest threshold
(most recall) is kept whose rows still meet their compression targets (the issue's 5× / 10×
/ 50×; 3× where a row has none). `--write` stores the result as `thresholds` in the critic's
`critic.json`, which `Compressor` uses when no `--threshold` is given.

The thresholds are tuned on the same validation documents that `evaluate` reports on: one
scalar per task, chosen from a fixed grid, so the leak is small, and it is stated in the docs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict

import numpy as np

from ..critic.registry import CRITICS
from ..instructions import TASKS
from ..select import assemble, select
from ..tokens import count_tokens
from . import evaluate as ev
from .data import load_split

GRID = (0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01)
DEFAULT_RATIO_FLOOR = 3.0


def run(model: str, n: int, seed: int, device: str, rows: list[str] | None = None) -> dict:
    comp = ev.load_compressor(model, device, None, None)
    val = list(load_split("val"))
    specs = [r for r in ev.ROWS if r.kind == "data" and (not rows or r.name in rows)]
    specs += [r for r in ev.ROWS if r.name == "niah_8k" and (not rows or r.name in rows)]
    table: dict[str, dict] = {}
    for spec in specs:
        if spec.kind == "niah":
            items = ev.niah_items(spec.niah_tokens, quick=True, seed=seed)[:n]
        else:
            items, _ = ev.data_items(spec, val, n, 0, seed)
        cached = []
        t0 = time.perf_counter()
        for it in items:
            probs, offsets, _ = comp.token_probs(it.document, TASKS[spec.task], it.query)
            cached.append((it, probs, offsets, count_tokens(it.document)))
        per_t = {}
        for t in (None, *GRID):
            scores, tin, tout = [], 0, 0
            for it, probs, offsets, n_in in cached:
                spans = select(it.document, probs, offsets, granularity=spec.granularity, threshold=t)
                text = assemble(spans)
                scores.append(ev._score(spec, it, text, [(s.start, s.end) for s in spans]))
                tin += n_in
                tout += count_tokens(text)
            per_t["argmax" if t is None else str(t)] = {
                "score": float(np.nanmean(scores)) if scores else None, "ratio": tin / max(tout, 1)}
        table[spec.name] = {"task": spec.task, "n": len(cached), "target_ratio": spec.target_ratio,
                            "seconds": round(time.perf_counter() - t0, 1), "sweep": per_t}
        print(json.dumps({spec.name: table[spec.name]}), file=sys.stderr, flush=True)
    return {"model": model, "n": n, "seed": seed, "thresholds": choose(table), "rows": table}


def choose(table: dict) -> dict:
    """Per task, the lowest grid threshold whose binding rows meet their compression floors."""
    chosen = {}
    by_task = defaultdict(list)
    for name, row in table.items():
        by_task[row["task"]].append(row)
    for task, rws in by_task.items():
        # rows with a compression target bind; a task with none gets a 3x floor on all its rows
        binding = [r for r in rws if r["target_ratio"]] or rws
        best = None
        for t in GRID:  # descending: the last that still meets every ratio floor wins
            # a row swept before the grid grew has no entry for the new points: not proven ok
            ok = all(str(t) in r["sweep"] and
                     r["sweep"][str(t)]["ratio"] >= (r["target_ratio"] or DEFAULT_RATIO_FLOOR) for r in binding)
            if ok:
                best = t
        chosen[task] = best if best is not None else GRID[0]
    if "facts" in chosen:
        chosen["default"] = chosen["facts"]  # free-text instructions
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cprs_cli.train.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--n", type=int, default=30, help="examples per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rows", default="", help="comma-separated subset of evaluate's rows")
    ap.add_argument("--out", default="", help="JSON report path")
    ap.add_argument("--sweep", default="", help="a saved --out report to re-decide from")
    ap.add_argument("--write", action="store_true", help="store the thresholds in the shipped critic.json")
    args = ap.parse_args(argv)
    random.seed(args.seed)
    rows = [r for r in args.rows.split(",") if r]
    if args.sweep and rows:  # re-sweep some rows, keep the others from the saved report
        report = json.loads(open(args.sweep).read())
        fresh = run(args.model, args.n, args.seed, args.device, rows)
        report["rows"].update(fresh["rows"])
        report["thresholds"] = choose(report["rows"])
    elif args.sweep:  # re-decide from a saved sweep, without running the critic again
        report = json.loads(open(args.sweep).read())
        report["thresholds"] = choose(report["rows"])
    else:
        report = run(args.model, args.n, args.seed, args.device, rows)
    report["command"] = "python -m cprs_cli.train.calibrate " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
    if args.write and args.model in CRITICS:
        path = CRITICS[args.model].meta_path
        meta = json.loads(path.read_text())
        meta["thresholds"] = report["thresholds"]
        meta["calibration"] = {"command": report["command"], "n_per_row": report["n"], "split": "val"}
        path.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(report["thresholds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
