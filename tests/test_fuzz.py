"""Fuzzing with hypothesis (issue 9): hostile text through ingest → segment → windows → select,
and random or damaged bytes as PDF and DOCX.

Invariants, never quality: no crash; every kept span is the exact substring at its offsets; spans
are in order and do not overlap; windows cover every token once; a file that cannot be read is an
InputError with a one-line message naming it. Example counts are modest and the runs are
derandomised, so CI time and results are stable; raise `max_examples` locally to search harder.
"""

from __future__ import annotations

import io
import random
import zipfile

import numpy as np
import pytest
from badinput.pdfbuild import make_pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cprs_cli import ingest, segment
from cprs_cli.errors import InputError
from cprs_cli.select import GRANULARITIES, select
from cprs_cli.windows import boundary_tokens, plan_windows, tokenize

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# pieces that break naive text handling
SPECIAL = ["\ud800", "\udfff", "\udce9", "\x00", "\uffff", "\ufffe", "\U0010ffff", "\u200f", "\u202e",
           "\u202c", "\u200d", "\u0301", "\u0308", "\ufeff", "\x07", "\x1b", "\r", "\r\n", "\n\n",
           "\t", "\u2028", "\u2029", "\xa0", "\u3000", ". ", "! ", "? ", "。", "Dr. ", "e.g. ", "👨\u200d👩",
           "🇫🇷"]
texts = st.lists(
    st.one_of(
        st.text(st.characters(codec=None, categories=None), max_size=40),  # any code point, surrogates too
        st.sampled_from(SPECIAL),
        st.text("abcdefghij", min_size=200, max_size=3000),  # very long words
        st.just("The quick brown fox jumps over the lazy dog. "),
    ),
    max_size=25,
).map("".join)


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder_critic_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_encoder_critic_dir))


def _spans_ok(text: str, spans) -> None:
    prev_end = 0
    for sp in spans:
        assert 0 <= sp.start < sp.end <= len(text)
        assert sp.start >= prev_end, "spans overlap or are out of order"
        assert text[sp.start:sp.end] == sp.text
        prev_end = sp.end


def _units_ok(text: str, units: np.ndarray) -> None:
    assert units.dtype == np.int64 and units.ndim == 2 and units.shape[1] == 2
    if len(units):
        assert (units[:, 0] < units[:, 1]).all()
        assert (units[1:, 0] >= units[:-1, 1]).all()
        assert units[0, 0] >= 0 and units[-1, 1] <= len(text)


@FUZZ
@given(raw=texts, seed=st.integers(0, 2**32 - 1))
def test_hostile_text_through_the_pipeline(tokenizer, raw, seed):
    text = ingest.normalise_text(raw)  # what ingestion does to every document
    assert len(text) == len(raw)
    text.encode("utf-8")  # nothing left that cannot be encoded
    for fn in (segment.sentence_spans, segment.paragraph_spans, segment.word_spans):
        _units_ok(text, fn(text))

    doc = tokenize(tokenizer, text)
    assert len(doc.ids) == len(doc.offsets)
    if len(doc):
        assert (doc.offsets[:, 0] <= doc.offsets[:, 1]).all()
        assert doc.offsets.min() >= 0 and doc.offsets.max() <= len(text)
    sentences = segment.sentence_spans(text)
    cuts = boundary_tokens(doc.offsets, sentences[:, 0] if len(sentences) else np.zeros(0, np.int64))
    budget = random.Random(seed).choice([1, 3, 16, 128])
    windows = plan_windows(len(doc), budget, cuts)
    covered = [i for s, e in windows for i in range(s, e)]
    assert covered == list(range(len(doc)))

    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4), size=len(doc)).astype(np.float32)
    for granularity in GRANULARITIES:
        for budget_tokens in (None, 1 + seed % 50):
            spans = select(text, probs, doc.offsets, granularity=granularity, budget=budget_tokens)
            _spans_ok(text, spans)


@FUZZ
@given(raw=texts)
def test_hostile_text_as_stdin_bytes(raw):
    """The same text as bytes (surrogates as CESU-8 byte sequences): a document or one line."""
    data = raw.encode("utf-8", "surrogatepass")
    try:
        doc = ingest.load_stdin(data)
    except InputError as err:
        assert "\n" not in str(err) and str(err).startswith("<stdin>: ")
        return
    doc.text.encode("utf-8")
    assert doc.text.strip()


def _one_line_error_or_document(convert, data: bytes) -> None:
    try:
        doc = convert(data, "fuzzed.bin", None)
    except InputError as err:
        msg = str(err)
        assert msg.startswith("fuzzed.bin: ") and "\n" not in msg
        return
    assert isinstance(doc, ingest.Document)


def _valid_docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph("A paragraph about apples.")
    d.add_table(rows=1, cols=2).cell(0, 0).text = "cell"
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


# converter, the format's magic bytes, a valid file of the format
CONTAINERS = {
    "pdf": (ingest.convert_pdf, b"%PDF-1.7\n", make_pdf(["First page about apples.", "Second page about pears."])),
    "docx": (ingest.convert_docx, b"PK\x03\x04", _valid_docx()),
}


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: float | None) -> bytes:
    """`data` with bytes replaced at `edits` (positions wrap around), then cut to the share `cut`
    of its length (at least one byte)."""
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[:max(1, int(len(buf) * cut))] if cut is not None else buf)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=20)


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
@FUZZ
@given(data=st.binary(max_size=4000), changes=edits,
       cut=st.one_of(st.none(), st.floats(0.0, 1.0, exclude_max=True)))
def test_random_and_damaged_bytes(kind, data, changes, cut):
    """Random bytes, bare and behind the format's magic, and a valid file with bytes changed or
    cut off: each is a document or a one-line InputError."""
    convert, magic, valid = CONTAINERS[kind]
    _one_line_error_or_document(convert, data)
    _one_line_error_or_document(convert, magic + data)
    _one_line_error_or_document(convert, _mutate(valid, changes, cut))


@FUZZ
@given(names=st.lists(st.sampled_from(["word/document.xml", "[Content_Types].xml", "_rels/.rels",
                                        "word/_rels/document.xml.rels", "junk"]), max_size=5),
       body=st.binary(max_size=300))
def test_zip_with_random_members_as_docx(names, body):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in dict.fromkeys(names):
            z.writestr(name, body)
    _one_line_error_or_document(ingest.convert_docx, out.getvalue())


@FUZZ
@given(data=st.binary(max_size=3000))
def test_random_bytes_as_text(data):
    try:
        doc = ingest.load_stdin(data)
    except InputError as err:
        assert "\n" not in str(err)
        return
    doc.text.encode("utf-8")
