"""Synthetic RULER-style examples: exact evidence offsets, answers, determinism, depth, length."""

from __future__ import annotations

import random

import pytest

from cprs_cli.evaluation import synthetic as S
from cprs_cli.instructions import TASKS


def _check(ex: S.Example) -> None:
    doc = ex.document
    assert ex.evidence, ex.task
    prev_end = -1
    for s, e in ex.evidence:
        assert 0 <= s < e <= len(doc)
        assert s >= prev_end, "evidence must be sorted and non-overlapping"
        prev_end = e
        text = doc[s:e]
        assert text == text.strip()
        # never mid-word: the characters around the span are not letters/digits
        if s > 0:
            assert not doc[s - 1].isalnum(), (ex.task, doc[s - 5 : e])
        if e < len(doc):
            assert not doc[e].isalnum(), (ex.task, doc[s:e + 5])
    ev_text = "\n".join(ex.evidence_texts()).lower()
    assert ex.answers
    for a in ex.answers:
        assert a.lower() in ev_text, (ex.task, a)
    assert ex.instruction_task in TASKS
    assert "\n\n\n" not in doc
    assert doc == doc.strip()


@pytest.mark.parametrize("task", S.ALL_TASKS)
@pytest.mark.parametrize("length", [1500, 6000, 40000])
def test_examples_are_exact(task, length):
    for seed in range(3):
        ex = S.make_example(task, length, random.Random(seed))
        assert ex.task == task
        _check(ex)
        # length roughly as requested
        assert 0.8 * length <= len(ex.document) <= 1.15 * length + 200, (task, len(ex.document))


@pytest.mark.parametrize("task", S.ALL_TASKS)
def test_deterministic(task):
    a = S.make_example(task, 5000, random.Random(42), depth=0.3)
    b = S.make_example(task, 5000, random.Random(42), depth=0.3)
    assert a == b
    c = S.make_example(task, 5000, random.Random(43), depth=0.3)
    assert c.document != a.document


def test_niah_needles_are_sentences_in_prose():
    ex = S.make_example("niah_single", 10000, random.Random(0))
    (s, e), = ex.evidence
    needle = ex.document[s:e]
    assert needle.endswith(".")
    assert ex.answers[0] in needle
    assert ex.meta["keys"][0] in needle and ex.meta["keys"][0] in ex.query
    assert s == 0 or ex.document[s - 1] in " \n"


@pytest.mark.parametrize("task", ["niah_single", "niah_multikey", "kv", "vt"])
@pytest.mark.parametrize("depth", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_depth_respected(task, depth):
    for seed in range(3):
        ex = S.make_example(task, 30000, random.Random(seed), depth=depth)
        s, _ = ex.evidence[0] if task != "vt" else min(ex.evidence)
        actual = s / len(ex.document)
        # within a sentence/paragraph of the target (paragraphs here are < ~3000 chars)
        assert abs(actual - depth) < 0.1, (task, depth, actual)
        assert abs(ex.meta["depths"][0] - actual) < 1e-9


def test_multikey_has_distractors_but_one_evidence():
    ex = S.make_example("niah_multikey", 20000, random.Random(1))
    assert len(ex.evidence) == 1 and len(ex.answers) == 1
    # distractors use the same template family: more "magic" sentences than evidence spans
    assert ex.document.lower().count("special") >= 4


def test_multivalue_and_multiquery():
    mv = S.make_example("niah_multivalue", 20000, random.Random(2))
    assert 2 <= len(mv.answers) <= 4 and len(mv.evidence) == len(mv.answers)
    mq = S.make_example("niah_multiquery", 20000, random.Random(2))
    assert 2 <= len(mq.answers) <= 4 and len(mq.evidence) == len(mq.answers)
    for k in mq.meta["keys"]:
        assert k in mq.query


def test_vt_chain():
    ex = S.make_example("vt", 20000, random.Random(5))
    value = ex.meta["value"]
    assert value in ex.query
    assert 2 <= len(ex.answers) <= 6 and len(ex.evidence) == len(ex.answers)
    texts = ex.evidence_texts()
    assert any(value in t for t in texts)
    assert ex.instruction_task == "chains"


def test_kv_pair():
    ex = S.make_example("kv", 20000, random.Random(5))
    (pair,) = ex.evidence_texts()
    key, value = [x.strip().strip('"') for x in pair.split(":", 1)]
    assert key in ex.query and value == ex.answers[0]


def test_cwe_counts():
    ex = S.make_example("cwe", 20000, random.Random(7))
    assert len(ex.answers) == 10
    items = [line.split(". ", 1)[1] for line in ex.document.split("\n") if line]
    from collections import Counter

    top = {w for w, _ in Counter(items).most_common(10)}
    assert top == set(ex.answers)
    assert len(ex.evidence) == sum(items.count(w) for w in ex.answers)


def test_fwe_counts():
    ex = S.make_example("fwe", 20000, random.Random(7))
    from collections import Counter

    c = Counter(ex.document.split())
    ranked = [w for w, _ in c.most_common(4)]
    assert ranked[:3] == ex.answers
    assert c[ranked[2]] > c[ranked[3]]


def test_values_not_in_filler_and_varied():
    rng = random.Random(11)
    kinds, templates = set(), set()
    for _ in range(60):
        ex = S.make_example("niah_single", 3000, rng)
        kinds.add((ex.meta["key_kind"], ex.meta["value_kind"]))
        (s, e), = ex.evidence
        needle = ex.document[s:e]
        templates.add(needle.replace(ex.answers[0], "V").replace(ex.meta["keys"][0], "K"))
        rest = ex.document[:s] + ex.document[e:]
        assert ex.answers[0].lower() not in rest.lower()
    assert len(kinds) >= 10
    assert len({t.split("V")[0][:12] for t in templates}) >= 8


def test_training_mix():
    exs = S.make_training_examples(24, random.Random(0), length_range=(2000, 6000))
    assert len(exs) == 24
    assert {e.task for e in exs} == set(S.TRAIN_TASKS)
    for e in exs:
        _check(e)
        assert 1500 <= len(e.document) <= 6500
    rec = exs[0].to_record("x")
    assert rec["answerable"] and rec["document"][rec["evidence"][0][0]:rec["evidence"][0][1]]


def test_haystack_text():
    h = S.haystack_text()
    assert len(h) > 500_000
    assert "\n\n" in h and "\n\n\n" not in h
    assert S.haystack_text() is h


def test_custom_haystack():
    hay = "\n\n".join(f"Paragraph {i} says hello. It has two sentences." for i in range(200))
    ex = S.make_example("niah_single", 3000, random.Random(0), depth=0.5, haystack=hay)
    _check(ex)
    assert "Paragraph" in ex.document


def test_bad_args():
    with pytest.raises(ValueError):
        S.make_example("nope", 1000, random.Random(0))
    with pytest.raises(ValueError):
        S.make_example("niah_single", 1000, random.Random(0), depth=1.5)
