"""Choose what to keep: units at word / sentence / paragraph granularity, dynamic or budgeted.

* dynamic (no budget): the critic decides. Sentence and paragraph units are kept by a
  per-document rule (`DynamicPolicy`): a unit stays when its score reaches a share of the
  document's best unit score, above an absolute floor, within a cap on the kept share. One
  global threshold overshoots on documents unlike the training data (a calibrated 0.25 kept 1/46
  of unseen biomedical papers and lost the answer); a threshold relative to the document's own
  best unit does not. With an explicit `threshold`, and at word granularity, the repaired tagged
  spans decide instead. An irrelevant document can compress to nothing.
* budgeted (`rate` or `max_tokens`): units are ranked by their tokens' keep probabilities, fused
  with the unit's BM25 score (`lexical_weight`, see `cprs_cli.lexical`), and added best-first
  until the cl100k budget is filled; output stays in document order. A budget at or above the
  input keeps the whole input.

Kept spans are exact substrings of the input, in order; spans that touch (only whitespace
between them) are merged, and the rest are joined by a separator that marks dropped text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import lexical, segment, tags
from .result import Span
from .tokens import count_many, count_tokens

GRANULARITIES = ("word", "sentence", "paragraph")
DEFAULT_SEPARATOR = "\n[...]\n"
# Weight of the normalised BM25 unit score added to the critic's unit score when ranking. Chosen
# on the calibration split (docs/quality.md, ablation): 0.1 ties the critic alone on average and
# guards lexical questions; larger weights lose on multi-hop and biomedical evidence.
DEFAULT_LEXICAL_WEIGHT = 0.1


@dataclass(frozen=True)
class DynamicPolicy:
    """Per-document keep rule of dynamic mode (sentence / paragraph units).

    A unit is kept when its score >= max(floor, relative * best unit score of the document);
    nothing is kept when the best unit scores below `floor`; the kept units, best first, fill at
    most `max_share` of the input's cl100k tokens (the best unit is always kept).
    """

    floor: float = 0.1
    relative: float = 0.3
    max_share: float = 0.4

    @classmethod
    def from_dict(cls, d: dict | None) -> "DynamicPolicy":
        d = d or {}
        return cls(**{k: float(d[k]) for k in ("floor", "relative", "max_share") if k in d})


def unit_spans(text: str, granularity: str) -> np.ndarray:
    if granularity == "sentence":
        return segment.sentence_spans(text)
    if granularity == "paragraph":
        return segment.paragraph_spans(text)
    return segment.word_spans(text)


def unit_token_ranges(units: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """[t0, t1) token range overlapping each character unit."""
    if len(units) == 0:
        return np.zeros((0, 2), np.int64)
    t0 = np.searchsorted(offsets[:, 1], units[:, 0], side="right")
    t1 = np.searchsorted(offsets[:, 0], units[:, 1], side="left")
    return np.stack([t0, np.maximum(t0, t1)], axis=1).astype(np.int64)


def unit_scores(keep: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Score = (max + mean) / 2 of the unit's token keep probabilities.

    The mean rewards units that are relevant throughout; the max keeps a sentence holding a
    short answer (one or two highly tagged tokens) from being drowned by its other tokens.
    """
    scores = np.zeros(len(ranges), dtype=np.float64)
    nonempty = ranges[:, 1] > ranges[:, 0]
    if not nonempty.any() or len(keep) == 0:
        return scores
    r = ranges[nonempty]
    csum = np.concatenate(([0.0], np.cumsum(keep, dtype=np.float64)))
    mean = (csum[r[:, 1]] - csum[r[:, 0]]) / (r[:, 1] - r[:, 0])
    mx = np.fromiter((keep[a:b].max() for a, b in r), dtype=np.float64, count=len(r))
    scores[nonempty] = 0.5 * (mx + mean)
    return scores


def dynamic_units(kept: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Indices of units kept by the critic's own tags.

    A unit is kept when at least half of its tokens are tagged, or when some tagged run lies
    mostly inside it (a short answer inside a sentence). A run that only spills a few tokens
    over a boundary does not drag the neighbouring unit in.
    """
    if len(ranges) == 0 or not kept.any():
        return np.zeros(0, np.int64)
    csum = np.concatenate(([0], np.cumsum(kept, dtype=np.int64)))
    length = np.maximum(ranges[:, 1] - ranges[:, 0], 1)
    covered = (csum[ranges[:, 1]] - csum[ranges[:, 0]]) / length
    chosen = set(np.flatnonzero(covered >= 0.5).tolist())
    starts = ranges[:, 0]
    for s, e in tags.runs(kept):
        first = max(int(np.searchsorted(starts, s, side="right")) - 1, 0)
        best, best_overlap = None, 0
        u = first
        while u < len(ranges) and ranges[u, 0] < e:
            overlap = min(e, ranges[u, 1]) - max(s, ranges[u, 0])
            if overlap > best_overlap:
                best, best_overlap = u, overlap
            u += 1
        if best is not None:
            chosen.add(best)
    return np.array(sorted(chosen), dtype=np.int64)


def unit_costs(text: str, units: np.ndarray, separator_tokens: int) -> np.ndarray:
    """cl100k cost of keeping each unit: its tokens plus the costlier of the separator and the
    whitespace before it. A unit whose neighbour is also kept is merged with it, whitespace and
    all, instead of being joined by the separator, and a run of blank lines or wide spaces can
    cost more than the separator."""
    if len(units) == 0:
        return np.zeros(0, np.int64)
    counts = np.asarray(count_many([text[s:e] for s, e in units]), dtype=np.int64)
    gaps = np.asarray(count_many([text[units[j - 1, 1]:units[j, 0]] if j else "" for j in range(len(units))]),
                      dtype=np.int64)
    return counts + np.maximum(separator_tokens, gaps)


def budget_units(costs: np.ndarray, scores: np.ndarray, budget: int, separator_tokens: int) -> np.ndarray:
    """Best-first units whose costs (`unit_costs`) fit in `budget`; the first kept unit is
    joined to nothing, so the budget carries one separator's slack."""
    order = np.argsort(-scores, kind="stable")
    chosen, total = [], -separator_tokens
    for j in order:
        if total + costs[j] <= budget:
            chosen.append(int(j))
            total += int(costs[j])
    return np.array(sorted(chosen), dtype=np.int64)


def relative_units(scores: np.ndarray, costs: np.ndarray, input_tokens: int,
                   policy: DynamicPolicy) -> np.ndarray:
    """Indices of the units dynamic mode keeps under `policy` (see `DynamicPolicy`)."""
    if len(scores) == 0 or scores.max() < policy.floor:
        return np.zeros(0, np.int64)
    cut = max(policy.floor, policy.relative * float(scores.max()))
    cand = np.flatnonzero(scores >= cut)
    cand = cand[np.argsort(-scores[cand], kind="stable")]
    cap = policy.max_share * input_tokens
    chosen, total = [], 0
    for j in cand:
        if not chosen or total + costs[j] <= cap:
            chosen.append(int(j))
            total += int(costs[j])
    return np.array(sorted(chosen), dtype=np.int64)


def snap_to_words(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    out = []
    n = len(text)
    for s, e in spans:
        while s > 0 and not text[s - 1].isspace():
            s -= 1
        while e < n and not text[e].isspace():
            e += 1
        out.append((s, e))
    return out


def merge_spans(spans: list[tuple[int, int, float]], text: str) -> list[Span]:
    """Sort, merge overlapping spans and spans with only whitespace between them."""
    out: list[list] = []
    for s, e, score in sorted(spans):
        if out and (s <= out[-1][1] or not text[out[-1][1]:s].strip()):
            prev = out[-1]
            w_prev, w_new = prev[1] - prev[0], e - s
            prev[2] = (prev[2] * w_prev + score * w_new) / max(w_prev + w_new, 1)
            prev[1] = max(prev[1], e)
        else:
            out.append([s, e, score])
    return [Span(int(s), int(e), text[s:e], round(float(sc), 4)) for s, e, sc in out]


def fused_scores(text: str, units: np.ndarray, scores: np.ndarray, query: str | None, weight: float,
                 granularity: str, sentences: np.ndarray | None = None) -> np.ndarray:
    """Critic unit scores plus `weight` × the unit's BM25 score normalised by the document's best
    (word units take the BM25 score of their sentence)."""
    if not weight or not query or len(units) == 0:
        return scores
    scope = None
    if granularity == "word":
        scope = segment.sentence_spans(text) if sentences is None else sentences
    return scores + weight * lexical.unit_bm25(text, units, query, scope)


def select(text: str, probs: np.ndarray, offsets: np.ndarray, *, granularity: str = "sentence",
           budget: int | None = None, threshold: float | None = None, min_span_tokens: int = 1,
           max_gap: int = tags.OFFICIAL_MAX_GAP, separator: str = DEFAULT_SEPARATOR,
           units: np.ndarray | None = None, query: str | None = None,
           lexical_weight: float = 0.0, policy: DynamicPolicy | None = None,
           input_tokens: int | None = None, sentences: np.ndarray | None = None) -> list[Span]:
    """The kept spans of `text`, given the critic's per-token probabilities.

    `units` may carry the granularity's spans when the caller already has them (`sentences`,
    the sentence spans, likewise). `query` and `lexical_weight` fuse BM25 into the budgeted
    ranking. Dynamic sentence / paragraph selection follows `policy` unless `threshold` is given
    (or no policy is): then the critic's tags decide, as in the official post-processing.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}")
    if len(probs) == 0:
        return []
    keep = tags.keep_probability(probs)
    if budget is None and granularity == "word":
        kept = tags.kept_mask(probs, threshold, max_gap, min_span_tokens)
        token_runs = tags.runs(kept)
        spans = snap_to_words(tags.char_spans(token_runs, offsets, text), text)
        scores = [float(keep[s:e].mean()) for s, e in token_runs if e > s]
        return merge_spans([(s, e, sc) for (s, e), sc in zip(spans, scores)], text)
    units = unit_spans(text, granularity) if units is None else units
    ranges = unit_token_ranges(units, offsets)
    scores = unit_scores(keep, ranges)
    if budget is not None:
        if input_tokens is None:
            input_tokens = count_tokens(text)
        if budget >= input_tokens:  # the whole input fits: nothing to choose
            chosen = np.arange(len(units))
        else:
            ranked = fused_scores(text, units, scores, query, lexical_weight, granularity, sentences)
            sep = count_tokens(separator)
            chosen = budget_units(unit_costs(text, units, sep), ranked, budget, sep)
    elif policy is not None and threshold is None:
        if input_tokens is None:
            input_tokens = count_tokens(text)
        chosen = relative_units(scores, unit_costs(text, units, count_tokens(separator)), input_tokens, policy)
    else:
        kept = tags.kept_mask(probs, threshold, max_gap, min_span_tokens)
        chosen = dynamic_units(kept, ranges)
    return merge_spans([(int(units[j, 0]), int(units[j, 1]), float(scores[j])) for j in chosen], text)


def assemble(spans: list[Span], separator: str = DEFAULT_SEPARATOR) -> str:
    return separator.join(s.text for s in spans)
