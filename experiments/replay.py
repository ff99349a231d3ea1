"""The common start of the selection replays in experiments/ (fusion_variants, bm25_stemming,
unit_score_mix, dynamic_lexical_floor): `MODEL PROBS TAG [SPLIT]` on the command line, the
critic loaded on the CPU, and, unless the script scores units its own way, the split's examples
prepared by `training.calibrate.prepare` from the cached probabilities (units, costs, critic
and BM25 scores), exactly as calibration sees them.

`print_table` prints the budget-mode table three of them share (a line per variant, a column per
row and mode, the macro average, and the n of each column).

Imported by the scripts as `from replay import start` (experiments/ is their sys.path[0]); it puts
the checkout on the path too, because training/ is not installed.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cprs_cli.evaluation import quality as ev  # noqa: E402
from training import calibrate as C  # noqa: E402


def start(extra=None, prepare: bool = True, log=None):
    """(args, compressor, prepared examples or None). `extra(parser)` adds a script's own
    arguments; `log` receives `prepare`'s progress lines (default: none)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("probs")
    ap.add_argument("tag")
    ap.add_argument("split", nargs="?", default="calib")
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    comp = ev.load_compressor(args.model, "cpu", None, None)
    data = C.prepare(comp, args.split, args.probs, args.tag, log=log or (lambda m: None)) if prepare else None
    return args, comp, data


def print_table(per: dict, label: int, col: int, macro_head: str = "  macro", macro_fmt: str = "7.2f",
                data=None) -> None:
    """The budget-mode scores of every variant (`per`: name → `calibrate.budget_scores` dict), in
    %, a column per (row, mode) and the macro average; with `data` (the prepared examples), the n
    behind each column."""
    import numpy as np

    rows = sorted(next(iter(per.values())).keys())
    print("variant".ljust(label), " ".join(r[:col].rjust(col) for r in rows), macro_head)
    for name, t in per.items():
        vals = [100 * t[r] for r in rows]
        print(name.ljust(label), " ".join(f"{v:{col}.1f}" for v in vals), f"{np.mean(vals):{macro_fmt}}")
    if data is not None:
        n = [f"{x['spec'].name}@{m}" for x in data if x["item"].answerable for m in x["spec"].modes if m != "dynamic"]
        print("n", {r: n.count(r) for r in rows})
