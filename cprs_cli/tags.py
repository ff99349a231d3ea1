"""From per-token B/I/O/E probabilities to kept token runs and character spans.

Post-processing as in QwenLong-CPRS: tag by argmax (or a keep-probability threshold), fill
gaps of fewer than `max_gap` 'O' tokens between tagged tokens (the official BIOE repair), drop
runs shorter than a minimum, and map runs to character spans through the tokenizer's offsets.
All steps are vectorised with numpy: they must stay a small share of the run time.
"""

from __future__ import annotations

import numpy as np

# The B/I/O/E labels, in the official model's order ({0: B, 1: I, 2: O, 3: E}): the one place
# they are defined (the critics, training and evaluation import them from here).
LABELS = ("B", "I", "O", "E")
B, I, O, E = range(4)
OFFICIAL_MAX_GAP = 20


def keep_probability(probs: np.ndarray) -> np.ndarray:
    """P(token is kept) = 1 - P(O)."""
    return 1.0 - probs[:, O]


def tag_mask(probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Boolean keep-mask: argmax != O, or P(keep) >= threshold when one is given."""
    if len(probs) == 0:
        return np.zeros(0, dtype=bool)
    if threshold is None:
        return probs.argmax(axis=1) != O
    return keep_probability(probs) >= threshold


def runs(mask: np.ndarray) -> np.ndarray:
    """(k, 2) array of [start, end) index runs where `mask` is True."""
    if len(mask) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    m = np.concatenate(([False], mask.astype(bool), [False]))
    d = np.diff(m.astype(np.int8))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1).astype(np.int64)


def repair_gaps(mask: np.ndarray, max_gap: int = OFFICIAL_MAX_GAP) -> np.ndarray:
    """Fill runs of fewer than `max_gap` untagged tokens that lie between tagged tokens."""
    out = mask.astype(bool).copy()
    r = runs(out)
    if len(r) < 2 or max_gap <= 1:
        return out
    gap_starts, gap_ends = r[:-1, 1], r[1:, 0]
    for s, e in zip(gap_starts[(gap_ends - gap_starts) < max_gap], gap_ends[(gap_ends - gap_starts) < max_gap]):
        out[s:e] = True
    return out


def drop_short(mask: np.ndarray, min_len: int) -> np.ndarray:
    """Remove kept runs shorter than `min_len` tokens."""
    if min_len <= 1:
        return mask.astype(bool).copy()
    out = mask.astype(bool).copy()
    for s, e in runs(out):
        if e - s < min_len:
            out[s:e] = False
    return out


def kept_mask(probs: np.ndarray, threshold: float | None = None, max_gap: int = OFFICIAL_MAX_GAP,
              min_span_tokens: int = 1) -> np.ndarray:
    return drop_short(repair_gaps(tag_mask(probs, threshold), max_gap), min_span_tokens)


def bioe_tags(mask: np.ndarray) -> np.ndarray:
    """The B/I/O/E label of every token for a keep-mask (the training target's form)."""
    tags = np.full(len(mask), O, dtype=np.int64)
    for s, e in runs(mask):
        tags[s] = B
        if e - s > 1:
            tags[s + 1:e - 1] = I
            tags[e - 1] = E
    return tags


def char_spans(token_runs: np.ndarray, offsets: np.ndarray, text: str) -> list[tuple[int, int]]:
    """Character spans of token runs, stripped of surrounding whitespace (empty ones dropped)."""
    out = []
    for s, e in token_runs:
        cs, ce = int(offsets[s, 0]), int(offsets[e - 1, 1])
        while cs < ce and text[cs].isspace():
            cs += 1
        while ce > cs and text[ce - 1].isspace():
            ce -= 1
        if ce > cs:
            out.append((cs, ce))
    return out
