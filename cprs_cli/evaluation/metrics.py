"""How well a compressed text kept what mattered, for the benchmark and the quality runner alike.

* the benchmark's scores: RULER's string matching on the compressed text (`string_match_all`,
  `string_match_part`, `score` by task), the compression ratio and the linear fit of time on
  input length;
* the quality runner's: the share of gold evidence characters kept (`coverage_recall`), whether
  an answer survived (`answer_kept`, `all_answers_kept`, case and whitespace normalised), and a
  seeded 95% bootstrap interval of a mean (`bootstrap_ci`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from cprs_cli.tokens import count_many, count_tokens

from .qa import Span, merge_spans

__all__ = [
    "string_match_all",
    "string_match_part",
    "score",
    "METRIC_FOR_TASK",
    "count_tokens",
    "count_many",
    "compression_ratio",
    "linear_fit",
    "covered_chars",
    "coverage_recall",
    "normalize",
    "answer_kept",
    "all_answers_kept",
    "bootstrap_ci",
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


# --------------------------------------------------------------------------- evidence and answers


def covered_chars(gold: Sequence[Span], kept: Sequence[Span]) -> tuple[int, int]:
    """(gold characters inside kept spans, gold characters)."""
    g, k = merge_spans(gold), merge_spans(kept)
    total = sum(e - s for s, e in g)
    cov = 0
    j = 0
    for s, e in g:
        while j < len(k) and k[j][1] <= s:
            j += 1
        i = j
        while i < len(k) and k[i][0] < e:
            cov += min(e, k[i][1]) - max(s, k[i][0])
            i += 1
    return cov, total


def coverage_recall(gold: Sequence[Span], kept: Sequence[Span]) -> float | None:
    """Share of gold evidence characters covered by the kept spans (None without gold)."""
    cov, total = covered_chars(gold, kept)
    return cov / total if total else None


_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def answer_kept(output: str, answers: Sequence[str]) -> bool:
    """Any of the (non-empty) answers occurs in the output, case/whitespace-normalised."""
    out = normalize(output)
    return any(normalize(a) and normalize(a) in out for a in answers)


def all_answers_kept(output: str, answers: Sequence[str]) -> bool:
    out = normalize(output)
    ans = [normalize(a) for a in answers if normalize(a)]
    return bool(ans) and all(a in out for a in ans)


def bootstrap_ci(values: Sequence[float | None], n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean (None for fewer than 2 values)."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)
