"""select: which units to keep, dynamic or within a cl100k budget; spans are exact substrings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cprs_cli import segment
from cprs_cli.result import Span
from cprs_cli.select import (
    DEFAULT_SEPARATOR,
    GRANULARITIES,
    assemble,
    dynamic_units,
    merge_spans,
    select,
    unit_token_ranges,
)
from cprs_cli.tokens import count_tokens

KEEP = [0.9, 0.04, 0.03, 0.03]  # B wins: tagged
DROP = [0.01, 0.01, 0.97, 0.01]  # O wins: untagged

_pieces = st.sampled_from([" ", "  ", "\n", "\n\n", "\n \n", "\r\n", "\t", "\u00a0", "\u2028", "\u3000", ".", "!",
                           "?", "Mr.", "e.g.", "Hello", "world", "The", "cat", "sat", "é", "😀", "日本語", "\u0301",
                           "(", '"', "3.14", "\x00",
                           "\u3000" * 12, "\n \n" * 6, " \t" * 10])  # long, costly whitespace runs
texts = st.one_of(st.lists(st.one_of(_pieces, st.text(max_size=4)), max_size=50).map("".join),
                  st.text(max_size=150))


@st.composite
def documents(draw):
    """(text, probs, offsets): the text cut into tokens like a fast tokenizer would cut it.

    Byte-level style: tokens cover the text, whitespace included. WordPiece style: whitespace
    is skipped. Several tokens may share one character's offsets (a multi-byte character).
    """
    text = draw(texts)
    n = len(text)
    cuts = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=max(n - 1, 1)), max_size=n))) - {n})
    bounds = [0, *[c for c in cuts if 0 < c < n], n] if n else []
    toks = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    if draw(st.booleans()):  # WordPiece style
        toks = [(a, b) for a, b in toks if not text[a:b].isspace()]
    if toks and draw(st.booleans()):  # one character split into several tokens
        i = draw(st.integers(min_value=0, max_value=len(toks) - 1))
        toks = toks[:i + 1] + [toks[i]] + toks[i + 1:]
    offsets = np.asarray(toks, dtype=np.int64).reshape(-1, 2)
    rng = np.random.default_rng(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    style = draw(st.sampled_from(["dirichlet", "mostly_o", "mostly_kept", "blocks"]))
    k = len(offsets)
    if style == "dirichlet":
        probs = rng.dirichlet(np.ones(4), size=k)
    elif style == "mostly_o":
        probs = rng.dirichlet([1, 1, 20, 1], size=k)
    elif style == "mostly_kept":
        probs = rng.dirichlet([5, 5, 1, 5], size=k)
    else:
        probs = np.where((rng.random(k) < 0.3)[:, None], KEEP, DROP) if k else np.zeros((0, 4))
    return text, np.asarray(probs, dtype=np.float64).reshape(-1, 4), offsets


def check_spans(text: str, spans: list[Span]) -> None:
    for sp in spans:
        assert isinstance(sp, Span)
        assert 0 <= sp.start < sp.end <= len(text)
        assert text[sp.start:sp.end] == sp.text
        assert sp.text.strip()
        assert 0.0 <= sp.score <= 1.0
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start  # sorted, non-overlapping
        assert text[a.end:b.start].strip()  # touching spans were merged


@pytest.mark.parametrize("granularity", GRANULARITIES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), threshold=st.one_of(st.none(), st.floats(min_value=0.05, max_value=0.95)),
       max_gap=st.integers(min_value=0, max_value=25), min_span=st.integers(min_value=1, max_value=3))
def test_dynamic_spans_are_exact_substrings(granularity, doc, threshold, max_gap, min_span):
    text, probs, offsets = doc
    spans = select(text, probs, offsets, granularity=granularity, threshold=threshold, max_gap=max_gap,
                   min_span_tokens=min_span)
    check_spans(text, spans)


@pytest.mark.parametrize("granularity", GRANULARITIES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), budget=st.integers(min_value=1, max_value=120))
def test_budgeted_spans_are_exact_substrings_within_budget(granularity, doc, budget):
    text, probs, offsets = doc
    spans = select(text, probs, offsets, granularity=granularity, budget=budget)
    check_spans(text, spans)
    out = assemble(spans)
    assert count_tokens(out) <= budget * 1.1, (out, budget)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_budgeted_selection_fills_the_budget_with_the_best_units(granularity):
    sentences = [f"Sentence number {i} talks about topic {i} at some length here." for i in range(30)]
    text = "\n\n".join(" ".join(sentences[i:i + 3]) for i in range(0, 30, 3))
    offsets = segment.word_spans(text)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=len(offsets))
    total = count_tokens(text)
    for budget in (total // 4, total // 2, total):  # a paragraph is about a tenth of the text
        spans = select(text, probs, offsets, granularity=granularity, budget=budget)
        n_out = count_tokens(assemble(spans))
        assert 0 < n_out <= budget * 1.1
    # a generous budget (each unit also pays for a separator) keeps everything, as one span
    spans = select(text, probs, offsets, granularity=granularity, budget=total * 10)
    assert [(s.start, s.end) for s in spans] == [(0, len(text))]


@pytest.mark.parametrize("gap", ["\u3000" * 40, "\n \n" * 10, " \t" * 30], ids=["ideographic", "blank-lines", "tabs"])
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_budget_counts_the_whitespace_kept_between_merged_units(granularity, gap):
    # units separated only by whitespace are merged into one span, whitespace and all: that
    # whitespace must be paid for like the separator it replaces
    text = gap.join(["Alpha beta.", "Gamma delta.", "Epsilon zeta."])
    if granularity == "word":
        text = text.replace(" ", gap)
    offsets = segment.word_spans(text)
    probs = np.tile(KEEP, (len(offsets), 1))
    for budget in (5, 10, 20, 40):
        spans = select(text, probs, offsets, granularity=granularity, budget=budget)
        check_spans(text, spans)
        assert count_tokens(assemble(spans)) <= budget * 1.1


def test_budgeted_selection_prefers_high_scores():
    text = "Alpha is first. Beta is second. Gamma is third. Delta is fourth."
    offsets = segment.word_spans(text)
    units = segment.sentence_spans(text)
    ranges = unit_token_ranges(units, offsets)
    probs = np.tile(DROP, (len(offsets), 1))
    best = 2
    probs[ranges[best, 0]:ranges[best, 1]] = KEEP
    budget = count_tokens(text[units[best, 0]:units[best, 1]]) + count_tokens(DEFAULT_SEPARATOR)
    spans = select(text, probs, offsets, granularity="sentence", budget=budget)
    assert [s.text for s in spans] == ["Gamma is third."]


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("threshold", [None, 0.3])
def test_irrelevant_document_compresses_to_nothing(granularity, threshold):
    text = "The cat sat on the mat. It was warm.\n\nDogs bark at night. Birds sing in the morning."
    offsets = segment.word_spans(text)
    probs = np.tile(DROP, (len(offsets), 1))
    assert select(text, probs, offsets, granularity=granularity, threshold=threshold) == []
    assert assemble([]) == ""


def test_empty_input():
    for g in GRANULARITIES:
        assert select("", np.zeros((0, 4)), np.zeros((0, 2), np.int64), granularity=g) == []
        assert select("", np.zeros((0, 4)), np.zeros((0, 2), np.int64), granularity=g, budget=10) == []


def test_bad_granularity():
    with pytest.raises(ValueError):
        select("a b", np.tile(KEEP, (2, 1)), np.array([[0, 1], [2, 3]]), granularity="page")


def test_unit_with_half_its_tokens_tagged_is_kept():
    # units of 10 and 4 tokens; one run covers 6 tokens of A and all 4 of B: its best overlap is A,
    # so B is kept only by the "at least half tagged" rule
    ranges = np.array([[0, 10], [10, 14], [14, 20]], dtype=np.int64)
    kept = np.zeros(20, bool)
    kept[4:14] = True
    assert dynamic_units(kept, ranges).tolist() == [0, 1]
    # exactly half of B tagged, by two runs whose best overlaps are A and C
    kept = np.zeros(20, bool)
    kept[2:11] = True   # 8 tokens in A, 1 in B
    kept[13:16] = True  # 1 in B, 2 in C
    assert dynamic_units(kept, ranges).tolist() == [0, 1, 2]
    kept[13] = False  # now 1 of B's 4 tokens: B goes
    assert dynamic_units(kept, ranges).tolist() == [0, 2]


def test_run_inside_a_unit_keeps_it_even_when_short():
    ranges = np.array([[0, 10], [10, 30]], dtype=np.int64)
    kept = np.zeros(30, bool)
    kept[15:17] = True  # 2 of 20 tokens: below half, but the run lies inside unit 1
    assert dynamic_units(kept, ranges).tolist() == [1]
    assert dynamic_units(np.zeros(30, bool), ranges).tolist() == []


@pytest.mark.parametrize("spill", [1, 2])
def test_run_spilling_into_next_sentence_does_not_keep_it(spill):
    text = ("Paris is the capital of France and has many museums. "
            "The Louvre holds the Mona Lisa painting by Leonardo. "
            "Bananas are yellow fruit grown in warm tropical places.")
    offsets = segment.word_spans(text)
    units = segment.sentence_spans(text)
    assert len(units) == 3
    ranges = unit_token_ranges(units, offsets)
    probs = np.tile(DROP, (len(offsets), 1))
    a, b = ranges[1]
    probs[a:b + spill] = KEEP  # sentence 2, plus the first tokens of sentence 3
    spans = select(text, probs, offsets, granularity="sentence", max_gap=0)
    assert [s.text for s in spans] == [text[units[1, 0]:units[1, 1]]]
    # ... while a run covering most of sentence 3 does keep it
    probs[b:ranges[2, 1] - 1] = KEEP
    spans = select(text, probs, offsets, granularity="sentence", max_gap=0)
    assert spans[0].text == text[units[1, 0]:units[2, 1]]


def test_word_granularity_snaps_to_whole_words():
    text = "alpha betagamma delta"
    # tokens split "betagamma" into "beta" + "gamma"; only "gamma" is tagged
    offsets = np.array([[0, 5], [6, 10], [10, 15], [16, 21]], dtype=np.int64)
    probs = np.array([DROP, DROP, KEEP, DROP])
    spans = select(text, probs, offsets, granularity="word")
    assert [s.text for s in spans] == ["betagamma"]


def test_paragraph_granularity_keeps_whole_paragraphs():
    text = "First para one. First para two.\n\nSecond para one. Second para two.\n\nThird para."
    offsets = segment.word_spans(text)
    probs = np.tile(DROP, (len(offsets), 1))
    target = text.index("Second para two")
    probs[(offsets[:, 0] >= target) & (offsets[:, 0] < target + 10)] = KEEP
    spans = select(text, probs, offsets, granularity="paragraph")
    assert [s.text for s in spans] == ["Second para one. Second para two."]


def test_merge_spans_merges_whitespace_separated_spans():
    text = "Hello world. \n Next one!  Far away"
    a, b = (0, 12), (15, 24)
    merged = merge_spans([(b[0], b[1], 1.0), (a[0], a[1], 0.5)], text)  # unsorted input
    assert len(merged) == 1
    sp = merged[0]
    assert (sp.start, sp.end, sp.text) == (0, 24, text[0:24])
    assert 0.5 < sp.score < 1.0  # length-weighted mean of the two
    # overlapping spans merge too
    assert [(x.start, x.end) for x in merge_spans([(0, 8, 0.2), (6, 12, 0.2)], text)] == [(0, 12)]
    # spans with text between them stay apart
    far = merge_spans([(0, 5, 0.1), (26, 29, 0.9)], text)
    assert [(x.text, x.score) for x in far] == [("Hello", 0.1), ("Far", 0.9)]
    assert merge_spans([], text) == []


def test_assemble_joins_with_the_separator():
    spans = [Span(0, 1, "a", 1.0), Span(4, 5, "b", 1.0)]
    assert assemble(spans) == "a" + DEFAULT_SEPARATOR + "b"
    assert assemble(spans, " | ") == "a | b"
    assert assemble(spans[:1]) == "a"


# ---------------------------------------------------------------------------- quality levers

from cprs_cli.select import DynamicPolicy, budget_units, relative_units  # noqa: E402


def test_relative_rule_keeps_units_near_the_documents_best():
    scores = np.array([0.9, 0.5, 0.2, 0.05, 0.8])
    costs = np.full(5, 10)
    pol = DynamicPolicy(floor=0.1, relative=0.5, max_share=1.0)
    assert relative_units(scores, costs, 1000, pol).tolist() == [0, 1, 4]  # >= 0.45
    # nothing reaches the floor: an irrelevant document keeps nothing
    assert relative_units(scores * 0.1, costs, 1000, pol).tolist() == []
    # the cap on the kept share takes the best first, and the best unit always stays
    assert relative_units(scores, costs, 100, DynamicPolicy(0.1, 0.5, 0.2)).tolist() == [0, 4]
    assert relative_units(scores, costs, 10, DynamicPolicy(0.1, 0.5, 0.01)).tolist() == [0]


def test_relative_rule_adapts_to_the_documents_own_scale():
    # the same document scored by a critic that is less sure (all scores halved) keeps the same
    # units: a global threshold of 0.3 would drop all but one of them
    scores = np.array([0.8, 0.7, 0.1, 0.6, 0.05])
    pol = DynamicPolicy(floor=0.05, relative=0.5, max_share=1.0)
    costs = np.full(5, 10)
    assert relative_units(scores, costs, 1000, pol).tolist() == relative_units(scores / 2, costs, 1000, pol).tolist()


def test_lexical_rule_ranks_with_bm25_but_the_critic_alone_gates():
    scores = np.array([0.9, 0.35, 0.2, 0.05])
    bm25 = np.array([0.0, 1.0, 0.0, 0.5])  # normalised: the document's best BM25 unit is 1
    costs = np.full(4, 10)
    critic_only = DynamicPolicy(floor=0.1, relative=0.5, max_share=1.0)
    fused = DynamicPolicy(floor=0.1, relative=0.5, max_share=1.0, lexical=0.3)
    assert relative_units(scores, costs, 1000, critic_only, bm25).tolist() == [0]  # lexical 0 ignores BM25
    # 0.35 + 0.3 = 0.65 reaches half the best fused score (0.9): the sentence with the query's words joins
    assert relative_units(scores, costs, 1000, fused, bm25).tolist() == [0, 1]
    # the floor reads the critic alone: BM25 matches do not make a document the critic rejects kept
    assert relative_units(scores * 0.1, costs, 1000, fused, bm25).tolist() == []
    # the cap takes units best first by the fused score
    assert relative_units(scores, costs, 10, DynamicPolicy(0.1, 0.2, 0.01, 0.3), bm25).tolist() == [0]
    assert DynamicPolicy.from_dict({"floor": 0.05, "relative": 0.2, "max_share": 0.4, "lexical": 0.1}).lexical == 0.1
    assert DynamicPolicy.from_dict({"floor": 0.05}).lexical == 0.0  # critic.json files without the key


def test_dynamic_select_reads_bm25_of_the_query_when_the_rule_says_so():
    text = ("The weather was mild that spring. Zorblax founded the guild in 1620. Nothing else of any "
            "note happened in the rest of that long and uneventful year in the town.")
    offsets = segment.word_spans(text)
    units = segment.sentence_spans(text)
    probs = np.tile(DROP, (len(offsets), 1))
    first = np.flatnonzero(offsets[:, 1] <= units[0, 1])
    probs[first] = KEEP  # the critic likes the first sentence only
    query = "Who founded the guild?"
    alone = select(text, probs, offsets, granularity="sentence", query=query,
                   policy=DynamicPolicy(floor=0.05, relative=0.5, max_share=1.0))
    fused = select(text, probs, offsets, granularity="sentence", query=query,
                   policy=DynamicPolicy(floor=0.05, relative=0.5, max_share=1.0, lexical=1.0))
    assert "Zorblax" not in assemble(alone) and "spring" in assemble(alone)
    assert "Zorblax" in assemble(fused) and "spring" in assemble(fused)
    assert "Nothing else" not in assemble(fused)


def test_budget_at_or_above_the_input_keeps_everything():
    text = "A short table.\n\nRow one: 12.\n\nRow two: 34."
    offsets = segment.word_spans(text)
    probs = np.tile(DROP, (len(offsets), 1))
    n = count_tokens(text)
    for granularity in GRANULARITIES:
        for budget in (n, n + 5):
            spans = select(text, probs, offsets, granularity=granularity, budget=budget)
            assert assemble(spans) == text.strip()


def test_budget_that_fits_the_best_unit_keeps_it():
    # the first kept unit is joined to nothing: it must not pay for a separator it never gets
    text = "Alpha beta gamma delta. Epsilon zeta eta theta iota kappa lambda mu."
    offsets = segment.word_spans(text)
    units = segment.sentence_spans(text)
    probs = np.tile(DROP, (len(offsets), 1))
    probs[:4] = KEEP  # the first sentence is the best
    first = count_tokens(text[units[0, 0]:units[0, 1]])
    spans = select(text, probs, offsets, granularity="sentence", budget=first)
    assert [s.text for s in spans] == ["Alpha beta gamma delta."]


def test_budget_units_order_and_slack():
    costs = np.array([5, 5, 5])
    assert budget_units(costs, np.array([0.1, 0.9, 0.5]), 6, separator_tokens=2).tolist() == [1]
    assert budget_units(costs, np.array([0.1, 0.9, 0.5]), 8, separator_tokens=2).tolist() == [1, 2]


def test_lexical_weight_lifts_a_unit_with_the_query_words():
    text = "Cats sleep a lot. The treaty was signed in Utrecht in 1713. Dogs bark."
    offsets = segment.word_spans(text)
    units = segment.sentence_spans(text)
    probs = np.tile(DROP, (len(offsets), 1))
    ranges = unit_token_ranges(units, offsets)
    probs[ranges[0, 0]:ranges[0, 1]] = [0.2, 0.1, 0.6, 0.1]  # the critic slightly prefers sentence 0
    budget = count_tokens(text[units[1, 0]:units[1, 1]])
    plain = select(text, probs, offsets, granularity="sentence", budget=budget, query="Where was the treaty signed?")
    fused = select(text, probs, offsets, granularity="sentence", budget=budget, query="Where was the treaty signed?",
                   lexical_weight=1.0)
    assert [s.text for s in plain] == ["Cats sleep a lot."]
    assert [s.text for s in fused] == ["The treaty was signed in Utrecht in 1713."]


@pytest.mark.parametrize("granularity", ["sentence", "paragraph"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), floor=st.floats(0.0, 0.9), rel=st.floats(0.0, 1.0), share=st.floats(0.01, 1.0))
def test_dynamic_rule_spans_are_exact_substrings(granularity, doc, floor, rel, share):
    text, probs, offsets = doc
    spans = select(text, probs, offsets, granularity=granularity, policy=DynamicPolicy(floor, rel, share),
                   query="cat world")
    check_spans(text, spans)


def test_a_sentence_larger_than_the_budget_gives_way_to_clauses_and_words():
    from cprs_cli.select import FINER_UNITS_NOTE, clause_spans

    words = ["alpha", "beta", "gamma", "delta", "omega"]
    text = " ".join(f"{words[i % 5]}{',' if i % 7 == 6 else ''}" for i in range(600))  # one sentence
    assert len(segment.sentence_spans(text)) == 1
    offsets = segment.word_spans(text)
    keep = np.full(len(offsets), 0.05)
    keep[302:305] = 0.99  # the critic's best tokens, inside one clause (words 301-307)
    probs = np.stack([keep, np.zeros_like(keep), 1 - keep, np.zeros_like(keep)], axis=1)
    for budget in (2, 40, 150):
        notes: list[str] = []
        spans = select(text, probs, offsets, granularity="sentence", budget=budget, notes=notes)
        check_spans(text, spans)
        out = count_tokens(assemble(spans))
        assert budget // 2 <= out <= budget, (budget, out)
        assert notes == [FINER_UNITS_NOTE.format(unit="sentence", budget=budget)]
        best = (int(offsets[302, 0]), int(offsets[302, 1]))
        assert any(sp.start <= best[0] and best[1] <= sp.end for sp in spans)  # around the peak
    clauses = clause_spans(text, 0, len(text))
    assert len(clauses) == 600 // 7 + 1 and all(text[s:e].strip() == text[s:e] for s, e in clauses)
    notes = []
    select(text, probs, offsets, granularity="sentence", budget=count_tokens(text) // 2 + 5000, notes=notes)
    assert notes == []  # a budget the sentence fits: no fallback


@pytest.mark.parametrize("granularity", GRANULARITIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), extra=st.integers(min_value=0, max_value=20))
def test_a_budget_that_holds_the_whole_text_keeps_it(granularity, doc, extra):
    text, probs, offsets = doc
    if not text.strip() or len(probs) == 0:
        return
    budget = max(count_tokens(text), count_tokens(text.strip())) + extra
    spans = select(text, probs, offsets, granularity=granularity, budget=budget)
    assert assemble(spans) == text.strip()


@pytest.mark.parametrize("granularity", ["sentence", "paragraph"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), rate=st.floats(min_value=0.01, max_value=1.0))
def test_a_budget_never_keeps_less_than_a_unit_that_fits(granularity, doc, rate):
    text, probs, offsets = doc
    units = segment.sentence_spans(text) if granularity == "sentence" else segment.paragraph_spans(text)
    if len(units) == 0 or len(probs) == 0:
        return
    budget = max(1, round(rate * count_tokens(text)))
    spans = select(text, probs, offsets, granularity=granularity, budget=budget)
    smallest = min(count_tokens(text[s:e]) for s, e in units)
    if smallest <= budget:
        assert spans, "a unit fits in the budget, yet nothing was kept"
    assert count_tokens(assemble(spans)) <= budget * 1.1


@settings(max_examples=60, deadline=None, derandomize=True)
@given(units=st.lists(st.tuples(st.integers(0, 500), st.integers(1, 40)), min_size=1, max_size=40),
       pieces=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 90)), min_size=1, max_size=15))
def test_min_tokens_covered_units_match_the_pairwise_rule(units, pieces):
    """The floor of `min_tokens` skips units already inside a kept piece; the sorted search over
    the pieces finds exactly the units the pairwise test finds, nested and overlapping pieces too."""
    from cprs_cli.select import _covered

    starts = sorted({a for a, _ in units})
    arr = np.array([(a, a + n) for a, (_, n) in zip(starts, units)], dtype=np.int64)
    spans = [(a, a + n) for a, n in pieces]
    pairwise = [any(a <= s and b >= e for a, b in spans) for s, e in arr.tolist()]
    assert _covered(arr, spans).tolist() == pairwise


@pytest.mark.parametrize("need", [1, 37, 700, 10_000])
def test_min_tokens_floor_adds_best_units_until_the_need_is_met(need):
    """The floor counts costs in chunks (`FLOOR_CHUNK`) but adds exactly the units the one-by-one
    rule adds: best score first, skipping units already taken, until the costs reach `need`."""
    from cprs_cli.select import FLOOR_CHUNK, floor_units, unit_costs

    text = " ".join(f"w{i}" if i % 7 else f"longer-word-{i}" for i in range(3 * FLOOR_CHUNK))
    units = segment.word_spans(text)
    scores = np.random.default_rng(3).random(len(units))
    taken = set(range(0, len(units), 5))
    expected, total = [], 0
    for j in np.argsort(-scores, kind="stable").tolist():
        if j in taken:
            continue
        if total >= need:
            break
        expected.append(j)
        total += int(unit_costs(text, units, 4, np.array([j]))[0])
    assert floor_units(text, units, scores, taken, need, 4) == expected
    assert len(expected) > FLOOR_CHUNK or need < 10_000  # the largest need crosses a chunk


def test_a_unit_after_blank_lines_still_fits_a_tiny_budget():
    """Found by the property test above: the unit after a run of blank lines is charged that
    whitespace (dearer than the separator), and the other unit is two tokens; with a budget of
    one token budgeted selection kept nothing, although "0" fits on its own."""
    text = "\x81\n \n\n \n\n \n\n \n\n \n\n \n0"
    probs = np.array([[0.39, 0.59, 0.01, 0.01]])
    spans = select(text, probs, np.array([[0, 20]]), granularity="paragraph", budget=1)
    assert [sp.text for sp in spans] == ["0"]
