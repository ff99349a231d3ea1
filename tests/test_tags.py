"""tags: BIOE tagging, the official gap repair, minimum span length, character spans."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cprs_cli import tags
from cprs_cli.tags import (
    B,
    E,
    I,
    O,
    bioe_tags,
    char_spans,
    drop_short,
    kept_mask,
    repair_gaps,
    runs,
    tag_mask,
)

masks = st.lists(st.booleans(), max_size=60).map(lambda xs: np.array(xs, dtype=bool))


def m(s: str) -> np.ndarray:
    """'x..x' -> [True, False, False, True]."""
    return np.array([c == "x" for c in s], dtype=bool)


def s(mask: np.ndarray) -> str:
    return "".join("x" if v else "." for v in mask)


def test_labels_are_the_official_ones():
    assert (B, I, O, E) == (0, 1, 2, 3)


def test_runs():
    assert runs(m("")).shape == (0, 2)
    assert runs(m("....")).tolist() == []
    assert runs(m("xx..x.xxx")).tolist() == [[0, 2], [4, 5], [6, 9]]
    assert runs(m("x")).tolist() == [[0, 1]]


@settings(max_examples=200, deadline=None)
@given(masks)
def test_runs_roundtrip(mask):
    rebuilt = np.zeros(len(mask), bool)
    r = runs(mask)
    for a, b in r.tolist():
        assert a < b
        assert not rebuilt[a:b].any()
        rebuilt[a:b] = True
    assert np.array_equal(rebuilt, mask)
    assert all(b < a2 for (_, b), (a2, _) in zip(r.tolist(), r[1:].tolist()))  # maximal runs


def test_repair_gaps_fills_short_inner_gaps_only():
    # gap of 2 < 3: filled; gap of 3 (== max_gap): not filled
    assert s(repair_gaps(m("x..x...x"), max_gap=3)) == "xxxx...x"
    assert s(repair_gaps(m("x..x...x"), max_gap=4)) == "xxxxxxxx"
    # leading and trailing untagged tokens are never filled
    assert s(repair_gaps(m("...x.x..."), max_gap=20)) == "...xxx..."
    # nothing tagged, or one run: unchanged
    assert s(repair_gaps(m("....."), max_gap=20)) == "....."
    assert s(repair_gaps(m("..xx."), max_gap=20)) == "..xx."
    # the input is not modified
    mask = m("x.x")
    repair_gaps(mask, 5)
    assert s(mask) == "x.x"


def test_repair_gaps_default_is_the_official_twenty():
    assert tags.OFFICIAL_MAX_GAP == 20
    assert repair_gaps(m("x" + "." * 19 + "x")).all()
    assert s(repair_gaps(m("x" + "." * 20 + "x"))) == "x" + "." * 20 + "x"


@settings(max_examples=200, deadline=None)
@given(masks, st.integers(min_value=0, max_value=8))
def test_repair_gaps_matches_a_reference(mask, max_gap):
    expected = mask.copy()
    idx = np.flatnonzero(mask)
    for a, b in itertools.pairwise(idx):
        if 0 < b - a - 1 < max_gap:
            expected[a + 1:b] = True
    assert np.array_equal(repair_gaps(mask, max_gap), expected)


def test_drop_short():
    assert s(drop_short(m("x.xx.xxx.x"), 2)) == "..xx.xxx.."
    assert s(drop_short(m("x.xx.xxx.x"), 3)) == ".....xxx.."
    assert s(drop_short(m("x.xx.xxx.x"), 1)) == "x.xx.xxx.x"
    assert s(drop_short(m("x.xx.xxx.x"), 0)) == "x.xx.xxx.x"
    assert s(drop_short(m("xx"), 5)) == ".."


def test_bioe_tags_patterns():
    assert bioe_tags(m("")).tolist() == []
    assert bioe_tags(m(".x.")).tolist() == [O, B, O]
    assert bioe_tags(m(".xx.")).tolist() == [O, B, E, O]
    assert bioe_tags(m("xxx")).tolist() == [B, I, E]
    assert bioe_tags(m("xxxxx.x")).tolist() == [B, I, I, I, E, O, B]


@settings(max_examples=200, deadline=None)
@given(masks)
def test_bioe_tags_roundtrip(mask):
    t = bioe_tags(mask)
    assert np.array_equal(t != O, mask)  # tagged exactly where kept
    for a, b in runs(mask).tolist():
        assert t[a] == B
        if b - a > 1:
            assert t[b - 1] == E
            assert np.all(t[a + 1:b - 1] == I)


def probs_of(rows):
    p = np.asarray(rows, dtype=np.float64)
    return p / p.sum(axis=1, keepdims=True)


def test_tag_mask_argmax_vs_threshold():
    p = probs_of([[0.125, 0.125, 0.625, 0.125],  # O wins, keep 0.375
                  [0.5, 0.125, 0.25, 0.125],     # B wins, keep 0.75
                  [0.25, 0.125, 0.5, 0.125],     # O wins by argmax, keep exactly 0.5
                  [0.0, 0.0625, 0.875, 0.0625]])  # keep 0.125
    assert tag_mask(p).tolist() == [False, True, False, False]
    assert tag_mask(p, threshold=0.5).tolist() == [False, True, True, False]  # keep >= threshold
    assert tag_mask(p, threshold=0.25).tolist() == [True, True, True, False]
    assert tag_mask(p, threshold=0.75).tolist() == [False, True, False, False]
    assert tag_mask(p, threshold=0.8).tolist() == [False, False, False, False]
    assert np.allclose(tags.keep_probability(p), 1 - p[:, O])
    assert tag_mask(np.zeros((0, 4))).shape == (0,)


def test_kept_mask_chains_the_steps():
    keep, drop = [0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 1.0, 0.0]
    p = probs_of([keep, drop, keep, drop, drop, drop, keep])
    assert s(kept_mask(p, max_gap=2)) == "xxx...x"
    assert s(kept_mask(p, max_gap=2, min_span_tokens=2)) == "xxx...."
    assert s(kept_mask(p, max_gap=5, min_span_tokens=2)) == "xxxxxxx"


def test_char_spans_strip_whitespace():
    text = "  ab cd \n ef  "
    # byte-level style offsets: whitespace is part of the tokens
    offsets = np.array([[0, 4], [4, 7], [7, 11], [11, 14]], dtype=np.int64)
    assert char_spans(np.array([[0, 2]]), offsets, text) == [(2, 7)]
    spans = char_spans(np.array([[0, 1], [2, 4]]), offsets, text)
    assert spans == [(2, 4), (10, 12)]
    for a, b in spans:
        assert text[a:b] == text[a:b].strip() != ""


def test_char_spans_drop_whitespace_only_runs():
    text = "ab   cd"
    offsets = np.array([[0, 2], [2, 5], [5, 7]], dtype=np.int64)
    assert char_spans(np.array([[1, 2]]), offsets, text) == []
    assert char_spans(np.array([[0, 3]]), offsets, text) == [(0, 7)]
    assert char_spans(np.zeros((0, 2), np.int64), offsets, text) == []


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_kept_mask_of_all_o_is_empty(threshold):
    p = np.tile([0.0, 0.0, 1.0, 0.0], (30, 1))
    assert not kept_mask(p, threshold).any()
