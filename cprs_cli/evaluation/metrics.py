"""Scores (RULER's string matching on the compressed text), token counts and the linear fit."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cprs_cli.tokens import count_many, count_tokens

__all__ = [
    "string_match_all",
    "string_match_part",
    "score",
    "METRIC_FOR_TASK",
    "count_tokens",
    "count_many",
    "compression_ratio",
    "linear_fit",
]


def string_match_all(pred: str, refs: Sequence[str]) -> float:
    """Fraction of the references found in `pred` (case-insensitive substring), RULER's metric
    for needle, variable-tracking and word-frequency tasks."""
    refs = [r for r in refs if r]
    if not refs:
        return 0.0
    low = pred.lower()
    return sum(r.lower() in low for r in refs) / len(refs)


def string_match_part(pred: str, refs: Sequence[str]) -> float:
    """1.0 if any reference occurs in `pred` (case-insensitive substring), RULER's QA metric."""
    low = pred.lower()
    return float(any(r and r.lower() in low for r in refs))


METRIC_FOR_TASK = {
    "niah_single": "all",
    "niah_multikey": "all",
    "niah_multivalue": "all",
    "niah_multiquery": "all",
    "vt": "all",
    "kv": "all",
    "cwe": "all",
    "fwe": "all",
    "qa": "part",
}


def score(task: str, pred: str, refs: Sequence[str]) -> float:
    kind = METRIC_FOR_TASK.get(task, "all")
    return string_match_part(pred, refs) if kind == "part" else string_match_all(pred, refs)


def compression_ratio(input_tokens: int, output_tokens: int) -> float:
    """input / output in cl100k tokens (output floored at 1, as in `Stats.ratio`)."""
    return input_tokens / max(output_tokens, 1)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict:
    """Least-squares line y = slope * x + intercept and its R² (None with fewer than 3 points,
    where any line fits exactly)."""
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if len(xa) < 2:
        return {"slope": None, "intercept": None, "r2": None, "n": int(len(xa))}
    slope, intercept = np.polyfit(xa, ya, 1)
    pred = slope * xa + intercept
    ss_res = float(np.sum((ya - pred) ** 2))
    ss_tot = float(np.sum((ya - ya.mean()) ** 2))
    r2 = None
    if len(xa) >= 3:
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2, "n": int(len(xa))}
