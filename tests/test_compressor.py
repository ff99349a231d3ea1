"""Compressor: the stages wired together, with the tiny random critics on the CPU.

The critics' tags are random, so these tests check the contract (schema, budgets, offsets,
errors, windows), never the quality of what is kept.
"""

from __future__ import annotations

import numpy as np
import pytest

from cprs_cli.compressor import Compressor
from cprs_cli.errors import UsageError
from cprs_cli.ingest import Document
from cprs_cli.select import GRANULARITIES
from cprs_cli.tokens import count_tokens

TOPICS = ["Apollo 11", "the Moon", "the river bank", "a quick brown fox", "the lazy dog", "the museum"]


def make_text(n_sentences: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    sents = [f"Sentence {i} says that {TOPICS[rng.integers(len(TOPICS))]} met "
             f"{TOPICS[rng.integers(len(TOPICS))]} in {1900 + int(rng.integers(120))}." for i in range(n_sentences)]
    paras = [" ".join(sents[i:i + 4]) for i in range(0, n_sentences, 4)]
    return "\n\n".join(paras)


TEXT = make_text(24)
QUERY = "When did Apollo 11 land on the Moon?"


@pytest.fixture(scope="module", params=["encoder", "hybrid"])
def comp(request, tiny_encoder_critic_dir, tiny_hybrid_critic_dir) -> Compressor:
    path = tiny_encoder_critic_dir if request.param == "encoder" else tiny_hybrid_critic_dir
    return Compressor(str(path), device="cpu", window_tokens=64)


@pytest.fixture(scope="module")
def enc_comp(tiny_encoder_critic_dir) -> Compressor:
    return Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=64)


def check_result_spans(text, res):
    for sp in res.spans:
        assert 0 <= sp.start < sp.end <= len(text)
        assert text[sp.start:sp.end] == sp.text
    for a, b in zip(res.spans, res.spans[1:]):
        assert a.end <= b.start


def test_to_dict_schema(comp):
    res = comp.compress(TEXT, query=QUERY, source="doc.txt")
    d = res.to_dict()
    assert set(d) >= {"schema_version", "source", "query", "instruction", "granularity", "model", "spans",
                      "compressed_text", "stats"}
    assert d["schema_version"] == 1
    assert d["source"] == "doc.txt" and d["query"] == QUERY and d["granularity"] == "sentence"
    assert d["instruction"]
    assert d["model"]["name"] == comp.model_name
    sha = d["model"]["sha256"]
    assert isinstance(sha, str) and len(sha) == 64 and int(sha, 16) >= 0
    for sp in d["spans"]:
        assert set(sp) == {"start", "end", "text", "score", "page", "section", "queries", "forced"}
        assert TEXT[sp["start"]:sp["end"]] == sp["text"]
        # a plain text has no pages and no headings; one query kept every span
        assert sp["page"] is None and sp["section"] == [] and sp["queries"] == [QUERY]
        assert sp["forced"] is False
    stats = d["stats"]
    assert set(stats) >= {"input_tokens", "output_tokens", "ratio", "windows", "seconds", "device", "tokenizer"}
    assert stats["tokenizer"] == "cl100k_base"
    assert stats["device"] == "cpu"
    assert stats["input_tokens"] == count_tokens(TEXT)
    assert stats["output_tokens"] == count_tokens(d["compressed_text"])
    assert stats["ratio"] == pytest.approx(stats["input_tokens"] / max(stats["output_tokens"], 1), rel=1e-3)
    assert stats["windows"] >= 1 and stats["seconds"] >= 0
    import json

    json.dumps(d)  # serialisable as is


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_spans_are_substrings_in_order(comp, granularity):
    res = comp.compress(TEXT, query=QUERY, granularity=granularity)
    check_result_spans(TEXT, res)
    assert res.granularity == granularity
    assert res.compressed_text == "\n[...]\n".join(s.text for s in res.spans)


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_rate_is_respected(enc_comp, granularity, rate):
    res = enc_comp.compress(TEXT, query=QUERY, granularity=granularity, rate=rate)
    target = rate * res.stats.input_tokens
    assert 0 < res.stats.output_tokens <= target * 1.1
    check_result_spans(TEXT, res)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_max_tokens_is_respected(comp, granularity):
    for max_tokens in (100, 200):  # a paragraph is about 70 tokens
        res = comp.compress(TEXT, query=QUERY, granularity=granularity, max_tokens=max_tokens)
        assert 0 < res.stats.output_tokens <= max_tokens * 1.1
        check_result_spans(TEXT, res)


def test_custom_separator(enc_comp):
    res = enc_comp.compress(TEXT, query=QUERY, granularity="word", rate=0.3, separator=" ... ")
    assert res.compressed_text == " ... ".join(s.text for s in res.spans)


@pytest.mark.parametrize("kwargs", [
    {"rate": 0.5, "max_tokens": 10},
    {"rate": 0.0}, {"rate": 1.5}, {"rate": -0.1},
    {"max_tokens": 0},
    {"granularity": "page"},
    {"threshold": 0.0}, {"threshold": 1.0},
    {"query": ""}, {"query": "   \n"},
    {"task": "no-such-task"},
    {"task": "facts", "instruction": "keep the dates"},
])
def test_usage_errors(enc_comp, kwargs):
    kwargs = {"query": QUERY, **kwargs}
    with pytest.raises(UsageError) as err:
        enc_comp.compress(TEXT, **kwargs)
    assert err.value.exit_code == 2


def test_constructor_usage_errors(tiny_encoder_critic_dir):
    with pytest.raises(UsageError):
        Compressor(str(tiny_encoder_critic_dir), device="cpu", batch_size=0)
    with pytest.raises(UsageError):
        Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=8)


def test_instruction_too_long_for_the_window(enc_comp):
    with pytest.raises(UsageError):
        enc_comp.compress(TEXT, query=QUERY, instruction="keep " * 600)


def test_rate_one_keeps_about_everything(enc_comp):
    res = enc_comp.compress(TEXT, query=QUERY, granularity="paragraph", rate=1.0)
    assert res.stats.output_tokens <= res.stats.input_tokens * 1.1
    check_result_spans(TEXT, res)


@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_empty_text(comp, text):
    res = comp.compress(text, query=QUERY)
    assert res.spans == [] and res.compressed_text == ""
    assert res.stats.output_tokens == 0
    assert res.to_dict()["stats"]["tokenizer"] == "cl100k_base"
    res = comp.compress(text, query=QUERY, rate=0.5)
    assert res.spans == []


def test_windows_grow_with_length(comp):
    counts = [comp.compress(make_text(n), query=QUERY).stats.windows for n in (2, 12, 48)]
    assert counts[0] == 1
    assert counts[0] < counts[1] < counts[2]


def test_token_probs_cover_the_document(comp):
    text = make_text(16)
    probs, offsets, n_windows = comp.token_probs(text, "Extract.", QUERY)
    assert probs.shape == (len(offsets), 4)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert n_windows > 1
    for s, e in offsets.tolist():
        assert text[s:e]


def test_batch_size_does_not_change_the_probabilities(tiny_encoder_critic_dir):
    text = make_text(20)
    one = Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=40, batch_size=1)
    many = Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=40, batch_size=16)
    import torch

    for c in (one, many):  # peaky probabilities: a random-init head sits near 1/4 and hides changes
        with torch.no_grad():
            c.critic.model.classifier.weight.mul_(20)
    p1, o1, w1 = one.token_probs(text, "Extract.", QUERY)
    p2, o2, w2 = many.token_probs(text, "Extract.", QUERY)
    assert w1 == w2 > 2
    assert np.array_equal(o1, o2)
    assert np.allclose(p1, p2, atol=1e-4)


def test_progress_is_reported(enc_comp):
    calls = []
    res = enc_comp.compress(make_text(30), query=QUERY, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (res.stats.windows, res.stats.windows)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_critic_thresholds_are_used_when_no_threshold_is_given(enc_comp, monkeypatch):
    # random critic: keep probabilities are far from 0 and from 1
    monkeypatch.setattr(enc_comp.critic, "thresholds", {"facts": 1e-6, "default": 1e-6})
    everything = enc_comp.compress(TEXT, query=QUERY)
    assert everything.compressed_text == TEXT.strip()
    monkeypatch.setattr(enc_comp.critic, "thresholds", {"facts": 0.999999, "default": 0.999999})
    nothing = enc_comp.compress(TEXT, query=QUERY)
    assert nothing.spans == []
    # an explicit threshold wins over the critic's own
    assert enc_comp.compress(TEXT, query=QUERY, threshold=0.001).compressed_text == TEXT.strip()
    # the task's own entry, then "default" (a custom instruction uses "custom" or "default")
    monkeypatch.setattr(enc_comp.critic, "thresholds", {"answers": 0.999999, "default": 1e-6})
    assert enc_comp.compress(TEXT, query=QUERY, task="answers").spans == []
    assert enc_comp.compress(TEXT, query=QUERY, task="facts").compressed_text == TEXT.strip()
    assert enc_comp.compress(TEXT, query=QUERY, instruction="Keep it all.").compressed_text == TEXT.strip()


def test_compress_document_takes_the_source(enc_comp):
    doc = Document(text=TEXT, source="notes.md", kind="markdown")
    res = enc_comp.compress_document(doc, query=QUERY)
    assert res.source == "notes.md"
    assert enc_comp.compress_document(doc, query=QUERY, source="other").source == "other"


def test_library_entry_point(tiny_encoder_critic_dir):
    import cprs_cli

    assert cprs_cli.Compressor is Compressor
    c = cprs_cli.Compressor(str(tiny_encoder_critic_dir), device="cpu")
    assert c.device == "cpu" and c.model_name == tiny_encoder_critic_dir.name
    assert c.window_tokens == c.critic.default_window_tokens and c.batch_size == c.critic.default_batch_size


@pytest.mark.parametrize("granularity", ["word", "sentence", "paragraph"])
def test_text_that_is_not_text_still_compresses_to_exact_spans(comp, granularity):
    # lone surrogates (a PDF's broken ToUnicode map), NUL and noncharacters make tokenizers raise
    text = "Alpha \ud800 beta.\x00 The landing was in 1969.\n\nGamma \ufffe delta. " * 5
    r = comp.compress(text, query="When was the landing?\udcff", granularity=granularity, rate=1.0)
    assert r.query == "When was the landing?\udcff"
    assert r.spans and all(text[s.start:s.end] == s.text for s in r.spans)
    assert r.compressed_text == text.strip()  # a budget at the input keeps all of it


def test_query_over_the_critic_limit_is_reported(comp):
    limit = comp.critic.max_query_tokens
    assert limit in (96, 256)
    words = "moon " * (limit + 10)
    res = comp.compress(TEXT, query=words, source="doc.txt")
    assert res.stats.query_truncated
    assert [w["code"] for w in res.stats.warnings] == ["query_truncated"]
    assert f"only its first {limit}" in res.stats.warnings[0]["message"]
    assert res.query == words  # the result keeps the query as asked
    short = comp.compress(TEXT, query=QUERY, source="doc.txt")
    assert not short.stats.query_truncated and short.stats.warnings == []


def test_batch_size_is_bounded_by_tokens(tiny_encoder_critic_dir):
    default = Compressor(str(tiny_encoder_critic_dir), device="cpu")
    assert default.warnings == [] and default.batch_size == default.critic.default_batch_size
    huge = Compressor(str(tiny_encoder_critic_dir), device="cpu", batch_size=100_000)
    assert huge.batch_size * huge.critic.max_positions <= huge.max_batch_tokens
    assert [w["code"] for w in huge.warnings] == ["batch_size_clamped"]
    res = huge.compress(TEXT, query=QUERY)
    assert [w["code"] for w in res.stats.warnings] == ["batch_size_clamped"]


def test_offsets_index_the_callers_text_with_its_hash(enc_comp):
    import hashlib

    text = TEXT.replace("\n", "\r\n")  # a library caller's text is indexed as given
    res = enc_comp.compress(text, query=QUERY, granularity="word", rate=0.5)
    d = res.to_dict()["offsets"]
    assert d == {"index": "document text", "unit": "code point", "text_length": len(text),
                 "text_sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert len(res.spans) >= 2
    assert all(text[sp.start:sp.end] == sp.text for sp in res.spans)


# --------------------------------------------------------------------------- compress_many


def _same_result(a, b):
    """Equal except timings: spans (offsets, text; scores to float tolerance), text, stats."""
    assert [(s.start, s.end, s.text) for s in a.spans] == [(s.start, s.end, s.text) for s in b.spans]
    assert [s.score for s in a.spans] == pytest.approx([s.score for s in b.spans], abs=1e-4)
    assert a.compressed_text == b.compressed_text and a.source == b.source
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d["stats"].pop("seconds"), d["stats"].pop("timings", None), d.pop("spans")
    assert da == db


@pytest.mark.parametrize("kwargs", [{}, {"rate": 0.3}, {"granularity": "word", "max_tokens": 40},
                                    {"granularity": "paragraph", "threshold": 0.2}])
def test_compress_many_equals_compress_one_by_one(comp, kwargs):
    from cprs_cli.compressor import Item
    from cprs_cli.options import CompressOptions

    texts = [make_text(n, seed=n) for n in (1, 3, 30, 2, 8)]
    items = [Item(t, f"doc{i}.txt") for i, t in enumerate(texts)]
    opts = CompressOptions(query=QUERY, **kwargs)
    many = list(comp.compress_many(items, opts))
    assert len(many) == len(texts)
    for i, (t, got) in enumerate(zip(texts, many)):
        _same_result(got, comp.compress(t, query=QUERY, source=f"doc{i}.txt", **kwargs))


def test_compress_many_fills_batches_across_documents(tiny_encoder_critic_dir, monkeypatch):
    """GPU-sized batches on the CPU: many short documents share one critic batch."""
    big = Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=64, batch_size=64)
    sizes = []
    real = big.critic.launch
    monkeypatch.setattr(big.critic, "launch", lambda ids, lengths: sizes.append(len(ids)) or real(ids, lengths))
    texts = [make_text(1, seed=i) for i in range(40)]  # one window each
    many = list(big.compress_many(texts, query=QUERY))
    assert sizes == [40]  # one batch for all forty
    sizes.clear()
    for t, got in zip(texts, many):
        _same_result(got, big.compress(t, query=QUERY))
    assert sizes == [1] * 40
    # the token bound still holds: a batch never exceeds max_batch_tokens
    assert big.batch_size * big.critic.max_positions <= big.max_batch_tokens


def test_compress_many_keeps_order_and_reports_failures(enc_comp):
    from cprs_cli.compressor import Item, ItemError
    from cprs_cli.options import CompressOptions

    doc = Document(text=TEXT, source="notes.md", kind="markdown")
    items = [TEXT, doc, Item(TEXT, "bad.txt", CompressOptions(query=QUERY, rate=2.0)),
             Item(TEXT, "long-instruction.txt", CompressOptions(query=QUERY, instruction="keep " * 600)),
             Item(make_text(3), "last.txt")]
    out = list(enc_comp.compress_many(items, query=QUERY))
    assert [type(r).__name__ for r in out] == ["CompressionResult", "CompressionResult", "ItemError",
                                                "ItemError", "CompressionResult"]
    assert out[0].source == "<text>" and out[1].source == "notes.md" and out[4].source == "last.txt"
    bad, long_ = out[2], out[3]
    assert isinstance(bad, ItemError) and (bad.index, bad.source) == (2, "bad.txt")
    assert bad.message == "rate must be in (0, 1]" and isinstance(bad.error, UsageError)
    assert long_.index == 3 and "too long" in long_.message and "\n" not in long_.message


def test_compress_many_reads_callables_in_turn_and_isolates_their_failures(enc_comp):
    """A zero-argument callable is an item read when its turn comes (the CLI reads each file so);
    what it raises is that item's ItemError, and the others go on."""
    from cprs_cli.compressor import ItemError
    from cprs_cli.errors import InputError
    from cprs_cli.result import CompressionResult

    read: list[str] = []

    def reader(source: str):
        def read_it():
            read.append(source)
            return Document(text=TEXT, source=source, kind="text")
        return read_it

    def unreadable():
        raise InputError("corrupt or unreadable PDF", "broken.pdf")

    items = iter([reader("a.txt"), unreadable, reader("c.txt")])
    out = enc_comp.compress_many(items, query=QUERY)
    assert read == []  # nothing is read before the results are asked for
    out = list(out)
    assert read == ["a.txt", "c.txt"]
    assert isinstance(out[0], CompressionResult) and out[0].source == "a.txt"
    assert isinstance(out[1], ItemError) and out[1].index == 1
    assert out[1].message == "broken.pdf: corrupt or unreadable PDF" and isinstance(out[1].error, InputError)
    assert isinstance(out[2], CompressionResult) and out[2].source == "c.txt"


def test_compress_many_rejects_bad_call_options_at_once(enc_comp):
    with pytest.raises(UsageError, match="rate must be in"):
        enc_comp.compress_many([TEXT], query=QUERY, rate=0)


def test_compress_takes_options_or_keywords_not_both(enc_comp):
    from cprs_cli.options import CompressOptions, Granularity

    opts = CompressOptions(query=QUERY, granularity=Granularity.word, rate=0.3)
    _same_result(enc_comp.compress(TEXT, options=opts), enc_comp.compress(TEXT, query=QUERY, granularity="word",
                                                                           rate=0.3))
    with pytest.raises(UsageError, match="not both"):
        enc_comp.compress(TEXT, options=opts, rate=0.5)


@pytest.mark.parametrize("kwargs, param", [
    ({"rate": 0.5, "threshold": 0.3}, "threshold"),
    ({"max_tokens": 50, "min_span_tokens": 2}, "min_span_tokens"),
    ({"rate": 0.5, "max_gap": 3}, "max_gap"),
    ({"lexical_weight": 0.5}, "lexical_weight"),
])
def test_options_that_cannot_apply_are_rejected(enc_comp, kwargs, param):
    with pytest.raises(UsageError) as err:
        enc_comp.compress(TEXT, query=QUERY, **kwargs)
    assert param in err.value.params and str(err.value).startswith(param)


def test_batches_never_pad_a_window_to_more_than_twice_its_length():
    from cprs_cli.compressor import _batches

    lengths = [512, 500, 256, 255, 200, 130, 128, 127, 20]
    order = list(range(len(lengths)))  # already longest first
    got = list(_batches(order, lengths, 3))
    assert [i for b in got for i in b] == order  # every window once, in order
    for b in got:
        assert len(b) <= 3
        assert all(2 * lengths[i] > lengths[b[0]] for i in b[1:])
    assert got == [[0, 1], [2, 3, 4], [5, 6, 7], [8]]  # 256 is half of 512: a new batch


def test_an_item_with_its_document_keeps_the_documents_pages(enc_comp, tmp_path):
    """`Item(text, source, options, document)`: an item's own options with a Document's
    structure and pages (what `cprs corpus` gives a `path` row)."""
    from badinput.pdfbuild import make_pdf

    from cprs_cli.compressor import Item
    from cprs_cli.ingest import load_path
    from cprs_cli.options import CompressOptions

    path = tmp_path / "two.pdf"
    path.write_bytes(make_pdf([make_text(8, 1), make_text(8, 2)]))
    doc = load_path(path)
    opts = CompressOptions(query=QUERY, rate=0.5)
    (with_doc,) = enc_comp.compress_many([Item(doc.text, "two.pdf", opts, document=doc)])
    assert with_doc.spans == enc_comp.compress_document(doc, options=opts).spans
    assert with_doc.spans and [s.page for s in with_doc.spans] == [
        1 + sum(start <= s.start for start in doc.pages[1:]) for s in with_doc.spans]
    (text_only,) = enc_comp.compress_many([Item(doc.text, "two.pdf", opts)])
    assert text_only.spans and {s.page for s in text_only.spans} == {None}


def test_batches_respect_the_token_bound():
    from cprs_cli.compressor import _batches

    lengths = [100, 90, 80, 70, 60, 55, 51]
    got = list(_batches(list(range(len(lengths))), lengths, 100, max_tokens=250))
    assert [i for b in got for i in b] == list(range(len(lengths)))
    for b in got:  # padded to the batch's first (longest) window
        assert len(b) * lengths[b[0]] <= 250
    assert got == [[0, 1], [2, 3, 4], [5, 6]]
    assert list(_batches([0], [300], 100, max_tokens=250)) == [[0]]  # a window larger than the bound runs alone


def test_max_batch_tokens_sizes_batches_and_keeps_the_probabilities(tiny_encoder_critic_dir, monkeypatch):
    text = make_text(30)
    default = Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=40)
    by_tokens = Compressor(str(tiny_encoder_critic_dir), device="cpu", window_tokens=40, max_batch_tokens=300)
    shapes = []
    real = by_tokens.critic.launch
    monkeypatch.setattr(by_tokens.critic, "launch", lambda ids, lengths: shapes.append(ids.shape) or real(ids, lengths))
    p1, o1, w1 = default.token_probs(text, "Extract.", QUERY)
    p2, o2, w2 = by_tokens.token_probs(text, "Extract.", QUERY)
    assert w1 == w2 == sum(b for b, _ in shapes) and len(shapes) > 1
    assert all(b * n <= 300 for b, n in shapes)
    assert np.array_equal(o1, o2) and np.allclose(p1, p2, atol=1e-5)
    with pytest.raises(UsageError):
        Compressor(str(tiny_encoder_critic_dir), device="cpu", max_batch_tokens=0)


def test_several_workers_share_the_batches_and_agree_with_one(comp, monkeypatch):
    """One worker per device (`device="cuda:0,1"` on a GPU host): checked here with two CPU copies
    of the critic, which must split the batches between them and give the one-worker result."""
    import torch

    text = make_text(60)
    alone = comp.compress(text, query=QUERY, rate=0.3)
    calls = {0: 0, 1: 0}
    two = Compressor(critic=comp.critic, batch_size=2, window_tokens=comp.window_tokens)
    two.critics = [comp.critic, comp.critic.replicate(torch.device("cpu"))]
    for k, c in enumerate(two.critics):
        real = c.launch

        def counted(ids, lengths, k=k, real=real):
            calls[k] += 1
            return real(ids, lengths)
        monkeypatch.setattr(c, "launch", counted)
    got = two.compress(text, query=QUERY, rate=0.3)
    assert calls[0] + calls[1] >= 4 and calls[0] > 0 and calls[1] > 0
    assert got.compressed_text == alone.compressed_text
    assert [(s.start, s.end) for s in got.spans] == [(s.start, s.end) for s in alone.spans]


def test_device_lists_name_gpus_that_exist():
    import torch

    from cprs_cli.critic.base import resolve_devices

    assert resolve_devices("cpu") == [torch.device("cpu")]
    if not torch.cuda.is_available():
        for value in ("cuda", "cuda:0,1"):
            with pytest.raises(UsageError):
                resolve_devices(value)


def test_long_documents_tokenised_beside_segmentation_give_the_same_result(comp, monkeypatch):
    import cprs_cli.compressor as module

    text = make_text(40)
    inline = comp.compress(text, query=QUERY, rate=0.3)
    monkeypatch.setattr(module, "TOKENIZE_APART_CHARS", 0)  # every document takes the thread
    apart = comp.compress(text, query=QUERY, rate=0.3)
    assert apart.compressed_text == inline.compressed_text and apart.stats.windows == inline.stats.windows


def test_a_failing_worker_stops_the_others_early(comp, monkeypatch):
    """With one worker per device, the first worker's error reaches the caller after the other
    worker's batches in flight, not after it has run the whole queue."""
    import torch

    two = Compressor(critic=comp.critic, batch_size=1, window_tokens=comp.window_tokens)
    good, bad = comp.critic, comp.critic.replicate(torch.device("cpu"))
    two.critics = [good, bad]
    calls = []
    real = good.launch

    def slow(ids, lengths):
        import time

        calls.append(1)
        time.sleep(0.02)
        return real(ids, lengths)

    def broken(ids, lengths):
        raise RuntimeError("device lost")

    monkeypatch.setattr(good, "launch", slow)
    monkeypatch.setattr(bad, "launch", broken)
    text = make_text(200)  # ~100 windows of 64 tokens, one per batch
    results = list(two.compress_many([text], query=QUERY))
    assert "device lost" in results[0].message
    assert len(calls) < 20
