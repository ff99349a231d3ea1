"""Calibrate a critic's selection on the `calib` split: the BM25 weight of budgeted ranking and the
per-document rule of dynamic mode.

    python -m training.calibrate --model mini --out docs/calibration/mini.json --write
    python -m training.calibrate --model small --probs runs/small-probs --write

The critic runs once per calibration example (or its probabilities come from `--probs`); the
selection is then replayed for every candidate setting with the same functions `select` uses
(`unit_scores`, `unit_costs`, `budget_units`, `relative_units`). The `calib` documents are
disjoint from the `test` documents that the quality runner reports on
(`cprs_cli.evaluation.qa.load_split`); the rows, items, cached probabilities and scoring are the
quality runner's own (`cprs_cli.evaluation.quality`).

* lexical weight: the weight with the best mean score over every (row, budget mode) pair; the
  best non-zero weight is preferred when it is within `LEXICAL_TIE` of the best, because the
  calibration split holds a single whole-article document and lexical questions are where the
  critic alone was seen losing to BM25 on unseen articles.
* dynamic rule (`select.DynamicPolicy`): the grid point with the best mean dynamic-mode score
  over the answerable rows, among those that keep every row with a compression target at
  ≥ `RATIO_MARGIN` × and leave unanswerable whole articles ≤ 5% of their input.

`--write` stores `lexical_weight` and `dynamic` in the shipped critic's `critic.json`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable

import numpy as np

from cprs_cli import lexical, segment
from cprs_cli.critic.registry import CRITICS
from cprs_cli.evaluation import quality as ev
from cprs_cli.evaluation.qa import available_sources, load_split
from cprs_cli.select import DynamicPolicy, budget_units, relative_units, unit_costs, unit_scores, unit_token_ranges
from cprs_cli.tags import keep_probability
from cprs_cli.tokens import count_tokens

LEXICAL_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
LEXICAL_TIE = 0.005
FLOORS = (0.05, 0.1, 0.2, 0.3)
RELATIVES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
MAX_SHARES = (0.15, 0.2, 0.25, 0.3, 0.4)
# BM25 in the dynamic rule's ranking (DynamicPolicy.lexical): 0 = the critic alone
DYNAMIC_LEXICAL = (0.0, 0.1, 0.3)
RATIO_MARGIN = 5.5  # the targets ask for >= 5x; calibrate to a little more
UNANSWERABLE_SHARE = 0.05


def prepare(comp, split: str, probs: str | None, tag: str, seed: int = 0, log=print,
            data_dir=None) -> list[dict]:
    """Per calibration example: units, their costs, critic scores and BM25 scores."""
    have = set(available_sources(data_dir))
    rows = [r for r in ev.ROWS if r.kind == "data" and r.source in have]
    records = load_split(split, sorted({r.source for r in rows}), data_dir)
    cache = ev.ProbsCache(probs, tag, split)
    sep = ev.sep_tokens()
    out = []
    for spec in rows:
        t0 = time.perf_counter()
        ans, una = ev.data_items(spec, records, None, None, seed)
        for item in ans + una:
            sentences = segment.sentence_spans(item.document)
            probs_, offsets = ev.critic_probs(comp, spec, item, sentences, cache)
            units = sentences if spec.granularity == "sentence" else segment.paragraph_spans(item.document)
            out.append(dict(spec=spec, item=item, units=units, costs=unit_costs(item.document, units, sep),
                            scores=unit_scores(keep_probability(probs_), unit_token_ranges(units, offsets)),
                            bm25=lexical.unit_bm25(item.document, units, item.query),
                            input_tokens=count_tokens(item.document)))
        log(f"[{spec.name}] {len(ans)} + {len(una)} unanswerable ({time.perf_counter() - t0:.0f}s)")
    return out


def _score(x: dict, chosen: np.ndarray) -> float:
    item, units = x["item"], x["units"]
    spans = [(int(units[j, 0]), int(units[j, 1])) for j in chosen]
    return ev.score_item(x["spec"], item, ev.spans_text(item.document, spans), spans)


def budget_scores(data: list[dict], rank: Callable[[dict], np.ndarray]) -> dict[str, float]:
    """Mean score per `row@mode` of budgeted selection when units are ranked by `rank(example)`
    (answerable examples, budget modes only)."""
    sep = ev.sep_tokens()
    per: dict[str, list[float]] = {}
    for x in data:
        if not x["item"].answerable:
            continue
        for mode in x["spec"].modes:
            if mode == "dynamic":
                continue
            budget = ev.mode_budget(mode, x["input_tokens"])
            chosen = budget_units(x["costs"], rank(x), budget, sep)
            per.setdefault(f"{x['spec'].name}@{mode}", []).append(_score(x, chosen))
    return {k: float(np.nanmean(v)) for k, v in per.items()}


def sweep_lexical(data: list[dict]) -> dict:
    table = {str(w): budget_scores(data, lambda x, w=w: x["scores"] + w * x["bm25"]) for w in LEXICAL_WEIGHTS}
    macro = {w: float(np.mean(list(t.values()))) for w, t in table.items()}
    best = max(macro.values())
    near = {w: m for w, m in macro.items() if m >= best - LEXICAL_TIE and float(w) > 0}
    chosen = float(max(near, key=near.get)) if near else float(max(macro, key=macro.get))
    return {"chosen": chosen, "macro": macro, "by_row": table}


def dynamic_replay(data: list[dict], choose: Callable[[dict], np.ndarray]) -> tuple[dict, list[float]]:
    """Dynamic mode replayed with `choose(example) -> kept unit indices`: per answerable row its
    mean score and ratio (input over kept unit tokens), and the output share of every
    unanswerable whole-article example."""
    scores: dict[str, list[float]] = {}
    tin: dict[str, int] = {}
    tout: dict[str, int] = {}
    unans: list[float] = []
    for x in data:
        chosen = choose(x)
        out = int(x["costs"][chosen].sum()) if len(chosen) else 0
        name = x["spec"].name
        if not x["item"].answerable:
            if name == "articles":
                unans.append(out / max(x["input_tokens"], 1))
            continue
        scores.setdefault(name, []).append(_score(x, chosen))
        tin[name] = tin.get(name, 0) + x["input_tokens"]
        tout[name] = tout.get(name, 0) + out
    by_row = {k: {"score": float(np.nanmean(v)), "ratio": tin[k] / max(tout[k], 1)} for k, v in scores.items()}
    return by_row, unans


def policy_replay(data: list[dict], pol: DynamicPolicy) -> tuple[dict, list[float]]:
    """`dynamic_replay` of the shipped rule (`select.relative_units`) under `pol`."""
    return dynamic_replay(data, lambda x: relative_units(x["scores"], x["costs"], x["input_tokens"], pol, x["bm25"]))


# the rows whose compression target the rule must keep (multi-hop, articles, papers)
RATIO_ROWS = tuple(r.name for r in ev.ROWS if r.kind == "data" and r.target_ratio)


def sweep_dynamic(data: list[dict]) -> dict:
    results = []
    for floor, rel, share, lex in itertools.product(FLOORS, RELATIVES, MAX_SHARES, DYNAMIC_LEXICAL):
        pol = DynamicPolicy(floor, rel, share, lex)
        by_row, unans = policy_replay(data, pol)
        if not by_row:
            continue
        bound = [k for k in RATIO_ROWS if k in by_row]
        ok = all(by_row[k]["ratio"] >= RATIO_MARGIN for k in bound) and (
            not unans or float(np.mean(unans)) <= UNANSWERABLE_SHARE)
        results.append({"policy": pol.__dict__, "mean": float(np.mean([v["score"] for v in by_row.values()])),
                        "ok": ok, "unanswerable_share": float(np.mean(unans)) if unans else None, "rows": by_row})
    feasible = [r for r in results if r["ok"]] or results
    best = max(feasible, key=lambda r: r["mean"])
    return {"chosen": best["policy"], "best": best, "grid": results}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--split", default="calib")
    ap.add_argument("--probs", default=None, help="directory of cached keep probabilities")
    ap.add_argument("--probs-tag", default=None)
    ap.add_argument("--out", default="", help="JSON report path")
    ap.add_argument("--write", action="store_true", help="store the result in the shipped critic.json")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    comp = ev.load_compressor(args.model, args.device, None, None)
    data = prepare(comp, args.split, args.probs, args.probs_tag or ev.model_label(args.model), log=log,
                   data_dir=args.data_dir)
    lex = sweep_lexical(data)
    dyn = sweep_dynamic(data)
    report = {"model": args.model, "split": args.split, "n": len(data),
              "command": "python -m training.calibrate " + " ".join(argv if argv is not None else sys.argv[1:]),
              "lexical_weight": lex["chosen"], "dynamic": dyn["chosen"], "lexical_sweep": lex,
              "dynamic_best": dyn["best"], "dynamic_grid": dyn["grid"]}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)
    if args.write and args.model in CRITICS:
        path = CRITICS[args.model].meta_path
        meta = json.loads(path.read_text())
        meta["lexical_weight"] = lex["chosen"]
        meta["dynamic"] = dyn["chosen"]
        meta["calibration"] = {"command": report["command"], "split": args.split, "examples": len(data)}
        path.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({"lexical_weight": lex["chosen"], "lexical_macro": lex["macro"], "dynamic": dyn["chosen"],
                      "dynamic_rows": dyn["best"]["rows"], "unanswerable_share": dyn["best"]["unanswerable_share"]},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
