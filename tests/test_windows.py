"""windows: tokenisation with offsets, cutting into windows, building the critic's inputs."""

from __future__ import annotations

import itertools
import signal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cprs_cli import windows
from cprs_cli.windows import (
    PIECE_CHARS,
    Plan,
    TokenizedDoc,
    boundary_tokens,
    plan_windows,
    tokenize,
)

SHORT = "Hello  world.\n\nThe quick brown fox, é and 😀, jumps over the lazy dog!\tApollo 11 (1969)."


@pytest.fixture(scope="module")
def tokenizers(tiny_encoder_critic_dir, tiny_hybrid_critic_dir):
    """The two kinds of fast tokenizer cprs meets: WordPiece (skips spaces) and byte-level BPE."""
    from transformers import AutoTokenizer

    return {"encoder": AutoTokenizer.from_pretrained(str(tiny_encoder_critic_dir)),
            "hybrid": AutoTokenizer.from_pretrained(str(tiny_hybrid_critic_dir))}


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_tokenize_offsets_point_into_text(tokenizers, kind):
    tok = tokenizers[kind]
    doc = tokenize(tok, SHORT)
    assert len(doc) == len(doc.ids) == len(doc.offsets) > 0
    assert doc.ids.dtype == np.int64 and doc.offsets.dtype == np.int64
    assert doc.offsets.shape == (len(doc), 2)
    assert np.all(doc.offsets[:, 0] >= 0) and np.all(doc.offsets[:, 1] <= len(SHORT))
    assert np.all(doc.offsets[:, 0] < doc.offsets[:, 1])
    assert np.all(np.diff(doc.offsets[:, 0]) >= 0)  # in text order
    for s, e in doc.offsets.tolist():
        piece = SHORT[s:e]
        assert piece  # every token maps back to some text
        if kind == "encoder":  # WordPiece tokens never hold whitespace
            assert not any(ch.isspace() for ch in piece)
    # every non-whitespace character lies in some token
    covered = np.zeros(len(SHORT), bool)
    for s, e in doc.offsets.tolist():
        covered[s:e] = True
    assert all(covered[i] for i, ch in enumerate(SHORT) if not ch.isspace())


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_tokenize_matches_direct_call_on_short_text(tokenizers, kind):
    tok = tokenizers[kind]
    doc = tokenize(tok, SHORT)
    enc = tok(SHORT, add_special_tokens=False, return_offsets_mapping=True)
    assert doc.ids.tolist() == list(enc["input_ids"])
    assert doc.offsets.tolist() == [list(o) for o in enc["offset_mapping"]]


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_tokenize_is_never_truncated_and_keeps_special_token_text_as_text(tokenizers, kind):
    """The document tokenizer is a copy of the wrapper's Rust tokenizer: a truncation left on the
    wrapper by an earlier call must not reach it, and special-token strings stay text."""
    import copy

    tok = copy.deepcopy(tokenizers[kind])  # one no document was tokenised with yet
    tok("word " * 300, truncation=True, max_length=8)  # leaves truncation on the backend
    text = (SHORT + " [SEP] <|im_start|>system [CLS] <|im_end|> ") * 20
    doc = tokenize(tok, text)
    enc = tok(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
    assert len(doc) > 100
    assert doc.ids.tolist() == list(enc["input_ids"])
    assert doc.offsets.tolist() == [list(o) for o in enc["offset_mapping"]]
    written = set(tok.all_special_ids) - {tok.unk_token_id}  # [UNK] is what unknown text becomes
    assert not set(doc.ids.tolist()) & written


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_tokenize_empty_and_blank_text(tokenizers, kind):
    for text in ("", "   \n\n  "):
        doc = tokenize(tokenizers[kind], text)
        assert isinstance(doc, TokenizedDoc)
        assert doc.offsets.shape[1] == 2 and doc.ids.dtype == np.int64
        for s, e in doc.offsets.tolist():  # a byte-level tokenizer may keep the whitespace
            assert text[s:e].isspace()
    assert len(tokenize(tokenizers[kind], "")) == 0


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab \n.")), max_size=300),
       size=st.integers(min_value=2, max_value=40))
def test_pieces_partition_the_text(text, size):
    pieces = windows._pieces(text, size)
    if not text:
        assert pieces == []
        return
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
    for (_, e), (s2, _) in itertools.pairwise(pieces):
        assert e == s2
    for s, e in pieces:
        assert 0 < e - s <= size
        if e < len(text):  # a cut prefers a paragraph break, then a space, in the second half
            window = text[s + size // 2:s + size]
            if "\n\n" in window:
                assert text.startswith("\n\n", e)
            elif " " in window:
                assert text[e] == " "


def long_text() -> str:
    para = "The quick brown fox jumps over the lazy dog near the river bank. " * 20
    text = "\n\n".join(f"{i} {para}" for i in range(int(PIECE_CHARS * 1.3) // len(para) + 1))
    assert len(text) > PIECE_CHARS
    assert len(windows._pieces(text)) >= 2  # really exercises the piecewise path
    return text


def test_tokenize_long_text_in_pieces_loses_no_tokens(tokenizers):
    tok = tokenizers["encoder"]
    text = long_text()
    doc = tokenize(tok, text)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert doc.ids.tolist() == list(enc["input_ids"])
    assert np.array_equal(doc.offsets, np.asarray(enc["offset_mapping"], dtype=np.int64))
    assert int(doc.offsets[-1, 1]) == len(text.rstrip())


def test_tokenize_long_text_byte_level_covers_every_character(tokenizers):
    # byte-level BPE may merge differently across a piece cut, but no character is lost
    text = long_text()
    doc = tokenize(tokenizers["hybrid"], text)
    assert np.all(doc.offsets[1:, 0] >= doc.offsets[:-1, 0])
    covered = np.zeros(len(text), np.int32)
    for s, e in doc.offsets.tolist():
        covered[s:e] = 1
    assert covered.all()
    cuts = [s for s, _ in windows._pieces(text)][1:]
    assert all(np.any(doc.offsets[:, 0] == c) for c in cuts)  # a token starts at every cut


def test_boundary_tokens_maps_char_starts_to_token_indices():
    # tokens: "ab" "c" " " "de" "f"   (offsets as a fast tokenizer would give)
    offsets = np.array([[0, 2], [2, 3], [3, 4], [4, 6], [6, 7]], dtype=np.int64)
    # a unit starting at char 4 starts at token 3; char 0 (token 0) and past the end are dropped
    assert boundary_tokens(offsets, np.array([0, 4])).tolist() == [3]
    assert boundary_tokens(offsets, np.array([2, 4, 6])).tolist() == [1, 3, 4]
    assert boundary_tokens(offsets, np.array([4, 4])).tolist() == [3]
    assert boundary_tokens(offsets, np.array([7])).tolist() == []
    assert boundary_tokens(np.zeros((0, 2), np.int64), np.array([1])).tolist() == []
    assert boundary_tokens(offsets, np.zeros(0, np.int64)).tolist() == []


def _plan(n, budget, cuts):
    """plan_windows, failing instead of hanging if it stops making progress."""
    def _hang(*_):
        raise AssertionError(f"plan_windows({n}, {budget}, {cuts}) did not terminate")

    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(5)
    try:
        return plan_windows(n, budget, cuts)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=400), budget=st.integers(min_value=1, max_value=64),
       cuts=st.lists(st.integers(min_value=0, max_value=420), max_size=40))
def test_plan_windows_covers_everything_once(n, budget, cuts):
    cuts = np.unique(np.asarray(cuts, dtype=np.int64))
    wins = _plan(n, budget, cuts)
    if n == 0:
        assert wins == []
        return
    assert wins[0][0] == 0 and wins[-1][1] == n
    for (_, e), (s2, _) in itertools.pairwise(wins):
        assert e == s2  # consecutive: no gap, no overlap
    for s, e in wins:
        assert 0 < e - s <= budget
    cut_set = set(cuts.tolist())
    for s, e in wins[:-1]:
        second_half = [c for c in cut_set if s + budget // 2 <= c <= s + budget and c > s]
        if second_half:  # the last sentence start in the window's second half
            assert e == max(second_half)
        else:
            assert e == s + budget


def test_plan_windows_prefers_late_cuts():
    # budget 10: cuts at 3 (first half, ignored) and 6, 8 (second half: take the last one)
    assert plan_windows(25, 10, np.array([3, 6, 8, 14, 22])) == [(0, 8), (8, 14), (14, 22), (22, 25)]
    # no cut in the second half: cut at the budget
    assert plan_windows(25, 10, np.array([2, 3])) == [(0, 10), (10, 20), (20, 25)]
    assert plan_windows(5, 10, np.array([2])) == [(0, 5)]


def test_plan_windows_budget_of_one_terminates():
    # regression: with budget 1 a cut at a window's own start used to plan (start, start) forever
    assert _plan(5, 1, np.array([1, 2, 3])) == [(i, i + 1) for i in range(5)]


def test_plan_windows_rejects_zero_budget():
    with pytest.raises(ValueError):
        plan_windows(10, 0, np.zeros(0, np.int64))


def test_window_ids_hold_prefix_context_suffix():
    ids = np.arange(100, 130, dtype=np.int64)
    doc = TokenizedDoc(ids, np.stack([np.arange(30), np.arange(1, 31)], axis=1).astype(np.int64))
    wins = plan_windows(len(doc), 8, np.array([5, 13, 20]))
    prefix, suffix = [1, 2, 3], [9]
    p = Plan(doc, wins, prefix, suffix)
    seqs = [p.window_ids(w) for w in range(len(wins))]
    a = len(prefix)
    for seq, (s, e) in zip(seqs, wins):
        b = a + e - s
        assert seq[:a].tolist() == prefix
        assert seq[a:b].tolist() == ids[s:e].tolist()
        assert seq[b:].tolist() == suffix
        assert seq.dtype == np.int64
    # the contexts, concatenated, are the document
    assert [t for seq, (s, e) in zip(seqs, wins) for t in seq[a:a + e - s].tolist()] == ids.tolist()
    # empty suffix (the hybrid critic's layout)
    p = Plan(doc, wins, prefix, [])
    assert all(len(p.window_ids(w)) == a + e - s for w, (s, e) in enumerate(wins))
