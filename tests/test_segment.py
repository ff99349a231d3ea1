import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cprs_cli import segment
from cprs_cli.segment import paragraph_spans, sentence_spans, word_spans

FUNCS = [sentence_spans, paragraph_spans, word_spans]

# Text biased towards the characters that matter: sentence punctuation, abbreviations,
# newlines and blank lines, odd whitespace, multi-byte characters.
_pieces = st.sampled_from(
    [" ", "  ", "\n", "\n\n", "\n \n", "\r\n", "\t", "\u00a0", "\u2028", "\u3000", "\x0b", "\x1c",
     ".", "!", "?", "...", "Mr.", "Dr.", "e.g.", "etc.", "U.S.", "Hello", "world", "The", "cat",
     "é", "ß", "😀", "日本語", "\x00", "\u0301", "\ud83d", "(", '"', "3.14"]
)
texty = st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=60).map("".join)
any_text = st.one_of(texty, st.text(max_size=200))


def check_spans(text: str, spans: np.ndarray) -> None:
    assert isinstance(spans, np.ndarray)
    assert spans.dtype == np.int64
    assert spans.ndim == 2 and spans.shape[1] == 2
    n = len(text)
    for s, e in spans.tolist():
        assert 0 <= s < e <= n
        piece = text[s:e]
        assert piece == piece.strip(), (piece, text)
    if len(spans) > 1:
        assert np.all(spans[1:, 0] >= spans[:-1, 1])  # sorted and non-overlapping
    # every non-whitespace character is covered exactly once
    covered = np.zeros(n, dtype=np.int32)
    for s, e in spans.tolist():
        covered[s:e] += 1
    for i, ch in enumerate(text):
        if not ch.isspace():
            assert covered[i] == 1, (i, ch, text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_span_properties(text):
    for fn in FUNCS:
        check_spans(text, fn(text))


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_sentences_within_paragraphs(text):
    sents = sentence_spans(text)
    paras = paragraph_spans(text)
    for s, e in sents.tolist():
        assert "\n\n" not in text[s:e]
        assert re.search(r"\n\s*\n", text[s:e]) is None  # no blank line of any kind
        # each sentence lies inside one paragraph
        i = np.searchsorted(paras[:, 0], s, side="right") - 1
        assert i >= 0 and paras[i, 0] <= s and e <= paras[i, 1]
    for s, e in paras.tolist():
        assert re.search(r"\n\s*\n", text[s:e]) is None


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_words_match_regex(text):
    expected = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    assert word_spans(text).tolist() == [list(x) for x in expected]


def _texts(text, spans):
    return [text[s:e] for s, e in spans.tolist()]


def test_empty_and_whitespace():
    for fn in FUNCS:
        for t in ["", " ", "\n\n\n", " \t\u3000\n"]:
            out = fn(t)
            assert out.shape == (0, 2) and out.dtype == np.int64


def test_basic_sentences():
    text = "Hello there. How are you?  I am fine!\n\nNew paragraph here. Second one."
    assert _texts(text, sentence_spans(text)) == [
        "Hello there.",
        "How are you?",
        "I am fine!",
        "New paragraph here.",
        "Second one.",
    ]


def test_sentence_never_crosses_paragraph_without_punctuation():
    text = "A heading without a full stop\n\nBody text follows here. More."
    assert _texts(text, sentence_spans(text))[0] == "A heading without a full stop"


def test_abbreviations_are_not_sentence_ends():
    text = "Dr. Who met Mr. Smith and Mrs. Jones. They went to St. Paul vs. Rome, e.g. by train. Done."
    assert _texts(text, sentence_spans(text)) == [
        "Dr. Who met Mr. Smith and Mrs. Jones.",
        "They went to St. Paul vs. Rome, e.g. by train.",
        "Done.",
    ]


def test_etc_ends_a_sentence_before_a_capital():
    text = "We bought apples, pears, etc. Then we left. We saw cats, dogs, etc. and more."
    assert _texts(text, sentence_spans(text)) == [
        "We bought apples, pears, etc.",
        "Then we left.",
        "We saw cats, dogs, etc. and more.",
    ]


def test_abbreviation_at_paragraph_end_not_merged():
    text = "I wrote to the Dr.\n\nNo answer came."
    assert _texts(text, sentence_spans(text)) == ["I wrote to the Dr.", "No answer came."]


def test_unicode_offsets_exact():
    text = "Ünïcode 😀 first. Next😀 one é. A third ẞ sentence 日本語. Last"
    spans = sentence_spans(text)
    assert _texts(text, spans) == ["Ünïcode 😀 first.", "Next😀 one é.", "A third ẞ sentence 日本語.", "Last"]


def test_paragraphs():
    text = "  First para\nline two.\n \t\nSecond.\n\n\n\nThird  \n"
    assert _texts(text, paragraph_spans(text)) == ["First para\nline two.", "Second.", "Third"]


def test_nul_and_surrogates_do_not_crash():
    text = "a\x00b. C d. \ud800 e. F."
    check_spans(text, sentence_spans(text))


def test_large_input_is_consistent():
    para = "This is a sentence about Mr. Smith. Here is another one! And a third?\n"
    text = (para * 3 + "\n") * 2000
    sents = sentence_spans(text)
    assert len(sents) == 2000 * 9
    assert len(paragraph_spans(text)) == 2000
    check = _texts(text, sents[:3])
    assert check == ["This is a sentence about Mr. Smith.", "Here is another one!", "And a third?"]


def test_long_text_segmented_in_pieces_equals_one_piece(monkeypatch):
    """A long text's sentence ends are found in pieces cut at blank lines, in threads: the same
    sentences as one BlingFire pass over the whole text (abbreviations, blank-line runs made of
    spaces, paragraphs without a final period, text without any blank line in places)."""
    paragraphs = ["Dr. Smith went home. He slept.", "line one\nline two.", "e.g. this one, and that",
                  "Mr. Jones met Ms. Lee in Washington D.C. on Jan. 5th. Then he left!",
                  "A list: one; two; three", "Der Hund bellt. Die Katze schläft.", "短い文です。次の文。"]
    rng = np.random.default_rng(0)
    seps = ["\n\n", "\n \n", "\n\n\n   \n\n", " "]
    text = "".join(paragraphs[i] + seps[j] for i, j in zip(rng.integers(0, len(paragraphs), 3000),
                                                          rng.integers(0, len(seps), 3000)))
    monkeypatch.setattr(segment, "SEGMENT_PIECE_CHARS", 10 ** 9)
    whole = segment.sentence_spans(text)
    monkeypatch.setattr(segment, "SEGMENT_PIECE_CHARS", 5_000)  # ~20 pieces
    calls = []
    real = segment._blingfire_sentence_ends
    monkeypatch.setattr(segment, "_blingfire_sentence_ends", lambda t: calls.append(len(t)) or real(t))
    pieces = segment.sentence_spans(text)
    assert len(calls) > 10
    assert np.array_equal(whole, pieces)
