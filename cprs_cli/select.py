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
  input keeps the whole input. A unit larger than the whole budget is replaced by finer units
  inside it (sentences, clauses, then words around its best tokens: `finer_units`), so one
  over-long sentence never leaves the output empty.

Kept spans are exact substrings of the input, in order; spans that touch (only whitespace
between them) are merged, and the rest are joined by a separator that marks dropped text.
"""

from __future__ import annotations

import re
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

    A unit is kept when its rank score >= max(floor, relative * the document's best rank score);
    nothing is kept when the critic's best unit scores below `floor`; the kept units, best first,
    fill at most `max_share` of the input's cl100k tokens (the best unit is always kept). The
    rank score is the critic's unit score plus `lexical` × the unit's normalised BM25 score
    against the query (0: the critic's alone), so a sentence that shares the question's rare
    words is judged with the critic's best, while a document the critic finds nothing in still
    keeps nothing.
    """

    floor: float = 0.1
    relative: float = 0.3
    max_share: float = 0.4
    lexical: float = 0.0

    def rank_scores(self, scores: np.ndarray, bm25: np.ndarray | None) -> np.ndarray:
        if not self.lexical or bm25 is None or len(bm25) != len(scores):
            return scores
        return scores + self.lexical * bm25

    def candidates(self, scores: np.ndarray, bm25: np.ndarray | None = None) -> np.ndarray:
        """Indices of the units whose rank score passes the rule's cut (none when the critic's
        best is below the floor)."""
        if len(scores) == 0 or scores.max() < self.floor:
            return np.zeros(0, np.int64)
        ranked = self.rank_scores(scores, bm25)
        return np.flatnonzero(ranked >= max(self.floor, self.relative * float(ranked.max())))

    @classmethod
    def from_dict(cls, d: dict | None) -> DynamicPolicy:
        d = d or {}
        return cls(**{k: float(d[k]) for k in ("floor", "relative", "max_share", "lexical") if k in d})


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


def unit_costs(text: str, units: np.ndarray, separator_tokens: int, idx: np.ndarray | None = None) -> np.ndarray:
    """cl100k cost of keeping each unit (or each unit of `idx`): its tokens plus the costlier of
    the separator and the whitespace before it. A unit whose neighbour is also kept is merged
    with it, whitespace and all, instead of being joined by the separator, and a run of blank
    lines or wide spaces can cost more than the separator."""
    idx = np.arange(len(units)) if idx is None else np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return np.zeros(0, np.int64)
    counts = np.asarray(count_many([text[units[j, 0]:units[j, 1]] for j in idx]), dtype=np.int64)
    # the gaps between units are a handful of distinct strings (" ", "\n\n", ...): count each once
    between = [text[units[j - 1, 1]:units[j, 0]] if j else "" for j in idx]
    distinct = list(dict.fromkeys(between))
    known = dict(zip(distinct, count_many(distinct)))
    gaps = np.fromiter((known[g] for g in between), dtype=np.int64, count=len(between))
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
                   policy: DynamicPolicy, bm25: np.ndarray | None = None) -> np.ndarray:
    """Indices of the units dynamic mode keeps under `policy` (see `DynamicPolicy`; `bm25`: the
    units' normalised BM25 scores, read when `policy.lexical`); only the costs of
    `policy.candidates(scores, bm25)` are read."""
    cand = policy.candidates(scores, bm25)
    ranked = policy.rank_scores(scores, bm25)
    cand = cand[np.argsort(-ranked[cand], kind="stable")]
    cap = policy.max_share * input_tokens
    chosen: list[int] = []
    total = 0
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
                 granularity: str, sentences: np.ndarray | None = None,
                 bm25: np.ndarray | None = None) -> np.ndarray:
    """Critic unit scores plus `weight` × the unit's BM25 score normalised by the document's best
    (word units take the BM25 score of their sentence); `bm25` may carry those normalised
    scores already (`lexical_scores`)."""
    if not weight or not query or len(units) == 0:
        return scores
    if bm25 is None:
        bm25 = lexical_scores(text, units, query, granularity, sentences)
    return scores + weight * bm25


def lexical_scores(text: str, units: np.ndarray, query: str, granularity: str,
                   sentences: np.ndarray | None = None) -> np.ndarray:
    """The normalised BM25 score of each unit that `fused_scores` adds (word units: their
    sentence's). It needs no critic output, so `Compressor` computes it while the critic runs."""
    scope = None
    if granularity == "word":
        scope = segment.sentence_spans(text) if sentences is None else sentences
    return lexical.unit_bm25(text, units, query, scope)


# --------------------------------------------------------------------------- units above the budget

FINER_UNITS_NOTE = ("a {unit} is longer than the budget of {budget:,} tokens; clauses and words "
                    "inside it were kept instead")
# A clause ends after , ; : followed by whitespace, or at a dash between spaces. Hand-written: no
# maintained splitter returns clause offsets into the original string (BlingFire and the sentence
# splitters stop at sentences), and this only has to find cut points inside an over-long unit.
_CLAUSE_BREAK = re.compile(r"[,;:]\s+|\s+[-\u2013\u2014]+\s+")


def clause_spans(text: str, start: int, end: int) -> np.ndarray:
    """Clauses of `text[start:end]` as (n, 2) character offsets, stripped of whitespace."""
    cuts = [start, *(m.end() for m in _CLAUSE_BREAK.finditer(text, start, end)), end]
    out = []
    for a, b in zip(cuts, cuts[1:]):
        piece = text[a:b]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            out.append((a + left, a + right))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def oversized_units(text: str, units: np.ndarray, costs: np.ndarray, budget: int,
                    separator_tokens: int) -> np.ndarray:
    """Indices of the units whose own cl100k tokens exceed `budget` (a unit's cost in
    `unit_costs` also carries the whitespace before it, which is not the unit's size)."""
    cand = np.flatnonzero(costs - separator_tokens > budget)
    if len(cand) == 0:
        return cand
    own = np.asarray(count_many([text[units[j, 0]:units[j, 1]] for j in cand]), dtype=np.int64)
    return cand[own > budget]


def _inside(spans: np.ndarray, start: int, end: int) -> np.ndarray:
    lo = np.searchsorted(spans[:, 0], start, side="left")
    hi = np.searchsorted(spans[:, 0], end, side="left")
    sub = spans[lo:hi]
    return sub[sub[:, 1] <= end]


def finer_units(text: str, units: np.ndarray, scores: np.ndarray, ranked: np.ndarray, costs: np.ndarray,
                budget: int, separator_tokens: int, keep: np.ndarray, offsets: np.ndarray, granularity: str,
                sentences: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """Budgeted selection when some unit alone costs more than `budget` (a 1 MB line without a
    sentence break has one "sentence"): such a unit is replaced by finer ones inside it
    (paragraph → sentences → clauses), which are ranked with the others (`budget_units`); the
    budget left after that is filled with runs of words around the highest-scoring tokens of the
    best clauses that still did not fit (`word_window`). Returns (start, end, score) pieces.

    A finer piece is ranked by its own critic score plus the lexical share of its unit's rank."""
    sep = separator_tokens
    big = set(oversized_units(text, units, costs, budget, sep).tolist())
    pieces: list[tuple[int, int, float, float, int]] = []  # start, end, critic score, rank, cost
    for j in range(len(units)):
        s, e = int(units[j, 0]), int(units[j, 1])
        if j not in big:
            pieces.append((s, e, float(scores[j]), float(ranked[j]), int(costs[j])))
            continue
        lexical_part = float(ranked[j] - scores[j])
        # the whitespace before a unit (beyond one separator) is paid by its first finer piece,
        # as the unit would have paid it: (start, end, extra cost)
        todo = [(s, e, int(costs[j]) - count_tokens(text[s:e]) - sep)]
        level = granularity
        while todo:
            finest = level not in ("paragraph", "sentence")  # clauses (or words) come next
            nxt = []
            for a, b, lead in todo:
                if level == "paragraph":
                    sub = (_inside(sentences, a, b) if sentences is not None and len(sentences)
                           else segment.sentence_spans(text[a:b]) + a)
                else:
                    sub = clause_spans(text, a, b)
                if len(sub) == 0:
                    continue
                sub_costs = unit_costs(text, sub, sep)
                sub_costs[0] += max(lead, 0)
                own = np.asarray(count_many([text[x:y] for x, y in sub.tolist()]), dtype=np.int64)
                sub_scores = unit_scores(keep, unit_token_ranges(sub, offsets))
                for k, (x, y) in enumerate(sub.tolist()):
                    if own[k] <= budget or finest:
                        sc = float(sub_scores[k])
                        pieces.append((x, y, sc, sc + lexical_part, int(sub_costs[k])))
                    else:
                        nxt.append((x, y, int(sub_costs[k] - own[k] - sep)))
            todo = nxt
            level = "sentence" if level == "paragraph" else "clause"
    pieces.sort()
    p_costs = np.array([p[4] for p in pieces], dtype=np.int64)
    p_rank = np.array([p[3] for p in pieces], dtype=np.float64)
    chosen = set(budget_units(p_costs, p_rank, budget, sep).tolist())
    kept = [(pieces[i][0], pieces[i][1], pieces[i][2]) for i in sorted(chosen)]
    left = budget + sep - int(p_costs[list(chosen)].sum()) if chosen else budget + sep
    # fill what is left with words around the peaks of the best pieces that did not fit
    for i in np.argsort(-p_rank, kind="stable").tolist():
        room = left - sep
        if room < 1:
            break
        if i in chosen or p_costs[i] <= left:
            continue
        a, b = pieces[i][0], pieces[i][1]
        # a window at the start of its piece merges with a kept piece before it, whitespace and
        # all: that whitespace is paid as the piece would have paid it
        lead = max(0, int(p_costs[i]) - count_tokens(text[a:b]) - sep)
        window = word_window(text, a, b, keep, offsets, room)
        if window is not None and window[0] == a and lead:
            window = word_window(text, a, b, keep, offsets, room - lead)
            extra = lead if window is not None and window[0] == a else 0
        else:
            extra = 0
        if window is not None:
            kept.append(window[:3])
            left -= window[3] + sep + extra
    return kept


def word_window(text: str, start: int, end: int, keep: np.ndarray, offsets: np.ndarray,
                room: int) -> tuple[int, int, float, int] | None:
    """The run of whole words inside `text[start:end]` around its highest-scoring token that
    costs at most `room` cl100k tokens, grown word by word toward the better-scoring side:
    (start, end, score, cost), or None when not even part of a word fits. A single word longer
    than `room` is cut to characters around the peak (the only way to keep part of it)."""
    words = segment.word_spans(text[start:end]) + start
    if len(words) == 0 or room < 1:
        return None
    ranges = unit_token_ranges(words, offsets)
    w_scores = unit_scores(keep, ranges)
    peak = int(np.argmax(w_scores))
    # a word's cost includes the whitespace before it, as it would be kept in a run
    w_costs = np.asarray(count_many([text[words[i - 1, 1] if i else words[0, 0]:words[i, 1]]
                                     for i in range(len(words))]), dtype=np.int64)
    lo = hi = peak
    total = count_tokens(text[words[peak, 0]:words[peak, 1]])
    if total > room:
        return _char_window(text, int(words[peak, 0]), int(words[peak, 1]), keep, offsets, room)
    while True:
        left_ok = lo > 0 and total + w_costs[lo] <= room  # adding word lo-1 brings the gap at lo
        right_ok = hi + 1 < len(words) and total + w_costs[hi + 1] <= room
        if not (left_ok or right_ok):
            break
        if left_ok and (not right_ok or w_scores[lo - 1] > w_scores[hi + 1]):
            total += int(w_costs[lo])
            lo -= 1
        else:
            hi += 1
            total += int(w_costs[hi])
    s, e = int(words[lo, 0]), int(words[hi, 1])
    cost = count_tokens(text[s:e])
    while cost > room and hi > lo:  # per-word counts can differ from the run's by a token
        if w_scores[lo] < w_scores[hi]:
            lo += 1
        else:
            hi -= 1
        s, e = int(words[lo, 0]), int(words[hi, 1])
        cost = count_tokens(text[s:e])
    if cost > room:
        return None
    score = float(unit_scores(keep, unit_token_ranges(np.array([[s, e]]), offsets))[0])
    return s, e, score, cost


def _char_window(text: str, start: int, end: int, keep: np.ndarray, offsets: np.ndarray,
                 room: int) -> tuple[int, int, float, int] | None:
    """The longest piece of one over-long word, centred on its best token, within `room`."""
    t0, t1 = unit_token_ranges(np.array([[start, end]]), offsets)[0]
    centre = start
    if t1 > t0:
        centre = int(np.clip(offsets[t0 + int(np.argmax(keep[t0:t1])), 0], start, end - 1))
    lo_len, hi_len, best = 1, end - start, None
    while lo_len <= hi_len:  # binary search on the width: a cl100k count grows with it
        width = (lo_len + hi_len) // 2
        s = max(start, min(centre - width // 2, end - width))
        cost = count_tokens(text[s:s + width])
        if cost <= room:
            best, lo_len = (s, s + width, cost), width + 1
        else:
            hi_len = width - 1
    if best is None:
        return None
    s, e, cost = best
    score = float(unit_scores(keep, unit_token_ranges(np.array([[s, e]]), offsets))[0])
    return s, e, score, cost


def select(text: str, probs: np.ndarray, offsets: np.ndarray, *, granularity: str = "sentence",
           budget: int | None = None, threshold: float | None = None, min_span_tokens: int = 1,
           max_gap: int = tags.OFFICIAL_MAX_GAP, separator: str = DEFAULT_SEPARATOR,
           units: np.ndarray | None = None, query: str | None = None,
           lexical_weight: float = 0.0, policy: DynamicPolicy | None = None,
           input_tokens: int | None = None, sentences: np.ndarray | None = None,
           notes: list[str] | None = None, forced: np.ndarray | None = None,
           min_tokens: int | None = None, costs: np.ndarray | None = None,
           bm25: np.ndarray | None = None) -> list[Span]:
    """The kept spans of `text`, given the critic's per-token probabilities.

    `units` may carry the granularity's spans when the caller already has them (`sentences`,
    the sentence spans, likewise). `query` and `lexical_weight` fuse BM25 into the budgeted
    ranking. Dynamic sentence / paragraph selection follows `policy` unless `threshold` is given
    (or no policy is): then the critic's tags decide, as in the official post-processing.
    With a budget, a unit larger than the whole budget is not simply skipped: finer units inside
    it compete instead (`finer_units`), and `notes` (a list, when given) receives one line saying so.
    `forced` (indices into `units`) are always kept, and count against a budget; `min_tokens`
    (dynamic mode) adds the best-scoring units left out until the kept units hold that many
    cl100k tokens (`floor_units`). `costs` (`unit_costs` of every unit, with this separator) and
    `bm25` (`lexical_scores`) may come precomputed: neither depends on the critic's output.
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
        run_scores = [float(keep[s:e].mean()) for s, e in token_runs if e > s]
        pieces = [(s, e, sc) for (s, e), sc in zip(spans, run_scores)]
        if (forced is not None and len(forced)) or min_tokens:
            units = unit_spans(text, granularity) if units is None else units
            w_scores = unit_scores(keep, unit_token_ranges(units, offsets))
            extra = _forced_and_floor(text, units, w_scores, pieces, forced, min_tokens, separator)
            pieces += [(int(units[j, 0]), int(units[j, 1]), float(w_scores[j])) for j in extra]
        return merge_spans(pieces, text)
    units = unit_spans(text, granularity) if units is None else units
    ranges = unit_token_ranges(units, offsets)
    scores = unit_scores(keep, ranges)
    forced = np.zeros(0, np.int64) if forced is None else np.unique(np.asarray(forced, dtype=np.int64))
    if budget is not None:
        if input_tokens is None:
            input_tokens = count_tokens(text)
        whole = None
        if budget >= input_tokens:  # the whole input fits: nothing to choose ...
            whole = merge_spans([(int(units[j, 0]), int(units[j, 1]), float(scores[j]))
                                 for j in range(len(units))], text)
            # ... unless its kept text counts more: " 😀" is one cl100k token, "😀" two
            if count_tokens(assemble(whole, separator)) > budget:
                whole = None
        if whole is not None:
            return whole
        else:
            ranked = fused_scores(text, units, scores, query, lexical_weight, granularity, sentences, bm25)
            sep = count_tokens(separator)
            if costs is None:
                costs = unit_costs(text, units, sep)
            # forced units are paid first; the others compete for what is left
            free = np.setdiff1d(np.arange(len(units)), forced)
            if len(forced):
                budget = int(budget) - int(costs[forced].sum())
            forced_pieces = [(int(units[j, 0]), int(units[j, 1]), float(scores[j])) for j in forced]
            if budget <= 0 or len(free) == 0:
                return merge_spans(forced_pieces, text)
            f_units, f_costs = units[free], costs[free]
            if len(oversized_units(text, f_units, f_costs, budget, sep)):  # a unit alone exceeds the budget
                finer = finer_units(text, f_units, scores[free], ranked[free], f_costs, budget, sep, keep,
                                    offsets, granularity, sentences)
                if not finer and not forced_pieces and granularity != "word":
                    finer = [(int(units[j, 0]), int(units[j, 1]), float(scores[j]))
                             for j in _alone(text, units, ranked, budget)]
                if notes is not None:
                    notes.append(FINER_UNITS_NOTE.format(unit=granularity, budget=budget))
                return merge_spans(finer + forced_pieces, text)
            picked = free[budget_units(f_costs, ranked[free], budget, sep)]
            if len(picked) == 0 and len(forced) == 0 and granularity != "word":
                picked = np.asarray(_alone(text, units, ranked, budget), dtype=np.int64)
            chosen = np.union1d(picked, forced).astype(np.int64)
    elif policy is not None and threshold is None:
        if input_tokens is None:
            input_tokens = count_tokens(text)
        if policy.lexical and bm25 is None:
            bm25 = lexical_scores(text, units, query or "", granularity, sentences)
        # only units that pass the rule's cut can be kept: count the tokens of those alone
        costs = np.zeros(len(units), np.int64)
        cand = policy.candidates(scores, bm25)
        costs[cand] = unit_costs(text, units, count_tokens(separator), cand)
        chosen = relative_units(scores, costs, input_tokens, policy, bm25)
    else:
        kept = tags.kept_mask(probs, threshold, max_gap, min_span_tokens)
        chosen = dynamic_units(kept, ranges)
    if budget is None and (len(forced) or min_tokens):
        pieces = [(int(units[j, 0]), int(units[j, 1]), float(scores[j])) for j in chosen]
        extra = _forced_and_floor(text, units, scores, pieces, forced, min_tokens, separator)
        chosen = np.union1d(chosen, np.asarray(extra, dtype=np.int64)).astype(np.int64)
    return merge_spans([(int(units[j, 0]), int(units[j, 1]), float(scores[j])) for j in chosen], text)


# units tried, best first, when a budget kept nothing (`_alone`)
ALONE_TRIES = 64


def _alone(text: str, units: np.ndarray, ranked: np.ndarray, budget: int) -> list[int]:
    """The best-ranked unit (of the first ALONE_TRIES) that fits the budget on its own tokens,
    for when budgeted selection kept nothing: a unit's cost there also carries the whitespace
    before it when that is dearer than the separator (a run of blank lines), which a unit kept
    alone never pays, so a tiny budget could keep nothing although a unit fits."""
    for j in np.argsort(-ranked, kind="stable")[:ALONE_TRIES]:
        if count_tokens(text[int(units[j, 0]):int(units[j, 1])]) <= budget:
            return [int(j)]
    return []


def _forced_and_floor(text: str, units: np.ndarray, scores: np.ndarray, pieces: list[tuple[int, int, float]],
                      forced: np.ndarray | None, min_tokens: int | None, separator: str) -> list[int]:
    """Units to add to dynamic mode's `pieces`: the `forced` ones, then (`min_tokens`) the best-
    scoring units not yet covered until the kept text holds `min_tokens` cl100k tokens."""
    extra = [] if forced is None else [int(j) for j in forced]
    if not min_tokens:
        return extra
    taken = set(extra)
    have = [(s, e) for s, e, _ in pieces] + [(int(units[j, 0]), int(units[j, 1])) for j in extra]
    if have:
        taken.update(int(j) for j in np.flatnonzero(_covered(units, have)))
    return extra + floor_units(text, units, scores, taken,
                               min_tokens - count_tokens(assemble(merge_spans(
                                   [(s, e, 0.0) for s, e in have], text), separator)) if have else min_tokens,
                               count_tokens(separator))


def _covered(units: np.ndarray, pieces: list[tuple[int, int]]) -> np.ndarray:
    """Which units lie inside one of `pieces` (start <= unit start and end >= unit end): the
    pieces sorted by start with a running maximum of their ends, one binary search per unit, so
    word units of a huge input against thousands of kept pieces cost O((units + pieces) log pieces)
    (a loop over units testing every piece cost their product)."""
    order = sorted(pieces)
    starts = np.array([a for a, _ in order], dtype=np.int64)
    reach = np.maximum.accumulate(np.array([b for _, b in order], dtype=np.int64))
    at = np.searchsorted(starts, units[:, 0], side="right") - 1  # the last piece starting at or before
    return (at >= 0) & (reach[np.maximum(at, 0)] >= units[:, 1])


def floor_units(text: str, units: np.ndarray, scores: np.ndarray, taken: set[int], need: int,
                separator_tokens: int) -> list[int]:
    """Best-scoring units outside `taken`, added until their costs reach `need` tokens. Costs are
    counted for `FLOOR_CHUNK` candidates at a time (one tokenizer call per unit cost ~1 ms)."""
    out: list[int] = []
    if need <= 0:
        return out
    order = [int(j) for j in np.argsort(-scores, kind="stable") if int(j) not in taken]
    total = 0
    for at in range(0, len(order), FLOOR_CHUNK):
        chunk = order[at:at + FLOOR_CHUNK]
        for j, cost in zip(chunk, unit_costs(text, units, separator_tokens, np.array(chunk)).tolist()):
            if total >= need:
                return out
            out.append(j)
            total += int(cost)
    return out


FLOOR_CHUNK = 256


def assemble(spans: list[Span], separator: str = DEFAULT_SEPARATOR) -> str:
    return separator.join(s.text for s in spans)
