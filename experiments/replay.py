"""The common start of the selection replays in experiments/ (fusion_variants, bm25_stemming,
unit_score_mix, dynamic_lexical_floor): `MODEL PROBS TAG [SPLIT]` on the command line, the
critic loaded on the CPU, and, unless the script scores units its own way, the split's examples
prepared by `training.calibrate.prepare` from the cached probabilities (units, costs, critic
and BM25 scores), exactly as calibration sees them.

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
