"""lexical: BM25 scores of a document's units (bm25s), normalised by the best unit."""

from __future__ import annotations

import numpy as np

from cprs_cli import lexical, segment

TEXT = ("The Eiffel Tower is in Paris. It was finished in 1889. Bananas are yellow. "
        "Gustave Eiffel's company built the tower. Paris is the capital of France.")


def test_unit_bm25_ranks_the_matching_sentence_first_and_normalises():
    units = segment.sentence_spans(TEXT)
    s = lexical.unit_bm25(TEXT, units, "When was the Eiffel Tower finished?")
    assert s.shape == (len(units),)
    assert s.max() == 1.0 and s.min() >= 0.0
    texts = [TEXT[a:b] for a, b in units]
    assert texts[int(np.argmax(s))] in ("The Eiffel Tower is in Paris.", "It was finished in 1889.")
    assert s[texts.index("Bananas are yellow.")] == 0.0


def test_unit_bm25_without_shared_words_is_all_zero():
    units = segment.sentence_spans(TEXT)
    assert not lexical.unit_bm25(TEXT, units, "zyxw qwvut").any()
    assert not lexical.unit_bm25(TEXT, units, "   ").any()
    assert len(lexical.unit_bm25(TEXT, units[:0], "Paris")) == 0


def test_word_units_take_their_sentence_score():
    words = segment.word_spans(TEXT)
    sents = segment.sentence_spans(TEXT)
    per_sentence = lexical.unit_bm25(TEXT, sents, "bananas yellow")
    per_word = lexical.unit_bm25(TEXT, words, "bananas yellow", scope=sents)
    for (a, _), v in zip(words, per_word):
        owner = max(i for i, (s, _) in enumerate(sents) if s <= a)
        assert v == per_sentence[owner]
