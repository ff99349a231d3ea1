"""training.data: examples, augmentation, long packing, hard negatives, the training and validation sets.

The loading and the by-document split it builds on are cprs_cli.evaluation.qa's (tests/test_qa.py);
the `data_dir` fixture (a tiny data directory) is in conftest.py."""

from __future__ import annotations

import random
import re

from cprs_cli.evaluation import qa as Q
from cprs_cli.instructions import TASKS
from training import data as D


def test_to_examples_instruction_and_unanswerable(data_dir):
    recs = list(Q.load_records(data_dir=data_dir))
    exs = D.to_examples(recs)
    assert len(exs) == len(recs)
    for r, ex in zip(recs, exs):
        assert ex.instruction == TASKS[D.TASK_FOR_LEVEL[r.evidence_level]]
        assert ex.evidence == r.evidence
        assert ex.level == r.evidence_level
    unans = [ex for ex in exs if ex.query.startswith("Who won")]
    assert unans and all(ex.evidence == [] for ex in unans)


def test_augmentation(data_dir):
    recs = list(Q.load_records(data_dir=data_dir))
    exs = D.to_examples(recs, augment=True, rng=random.Random(1), augment_fraction=1.0)
    aug = [e for e in exs if e.meta.get("augmented")]
    # sentence-level: only the records whose answer occurs in the evidence ("yes" does not)
    ans = [e for e in aug if e.task == "answers"]
    assert len(ans) == 5
    for e in ans:
        assert e.instruction == TASKS["answers"]
        num = re.match(r"s(\d+)a#answers$", e.id).group(1)
        assert e.evidence_texts() == [f"Person{num}"]
    # token-level answerable: facts copies whose evidence is the sentence holding the answer
    facts = [e for e in aug if e.task == "facts"]
    assert len(facts) == 50
    for e in facts:
        assert e.instruction == TASKS["facts"]
        (s, t), = e.evidence
        sent = e.document[s:t]
        orig = next(r for r in recs if r.id == e.id.split("#")[0])
        assert orig.evidence_texts()[0] in sent and sent.endswith(".")
        assert "\n\n" not in sent and "inhabitants" not in sent  # one sentence, not the paragraph
    # no copy for unanswerable records; fraction 0 adds nothing
    assert not [e for e in aug if e.query.startswith("Who won")]
    assert len(D.to_examples(recs, augment=True, augment_fraction=0.0)) == len(recs)


def test_find_occurrences_whole_word():
    text = "I know no one. No, not now."
    assert D.find_occurrences(text, "no") == [(7, 9)]
    assert D.find_occurrences(text, "NOT") == [(19, 22)]
    assert D.find_occurrences(text, "zzz") == []
    assert D.merge_spans([(5, 8), (1, 3), (3, 4), (7, 9), (10, 10)]) == [(1, 4), (5, 9)]


def test_long_packing_keeps_evidence_exact(data_dir):
    recs = list(Q.load_records(data_dir=data_dir))
    rng = random.Random(3)
    for target in (2_000, (500, 3_000), 0):
        longs = D.make_long_examples(recs, rng, target)
        assert len(longs) == len(recs)
        positions = set()
        for r, ex in zip(recs, longs):
            assert ex.evidence_texts() == r.evidence_texts()
            assert r.document in ex.document
            off = ex.meta["offset"]
            assert ex.document[off: off + len(r.document)] == r.document
            positions.add(off == 0)
            want = target if isinstance(target, int) else target[0]
            assert len(ex.document) >= min(want, 2_000) or ex.meta["n_distractors"] >= len(
                {x.document for x in recs}) - 1
            if ex.meta["n_distractors"]:
                assert "\n\n" in ex.document
        if target:
            assert positions == {True, False}  # placed at varying positions
    # unanswerable stays unanswerable
    un = [ex for ex in D.make_long_examples(recs, rng, 2000) if ex.query.startswith("Who won")]
    assert un and all(ex.evidence == [] for ex in un)


def test_pack_example_offsets():
    ex = D.TrainExample("i", "q", "hello world", [(6, 11)], "s", "token")
    packed = D.pack_example(ex, ["aaa", "bbbb"], 1)
    assert packed.document == "aaa\n\nhello world\n\nbbbb"
    assert packed.evidence_texts() == ["world"]
    assert D.pack_example(ex, ["aaa"], 0).document == "hello world\n\naaa"


def test_build_sets_and_stats(data_dir):
    tr = D.build_training_set(0, 0, 0.5, data_dir=data_dir, long_target_chars=1500)
    va = D.build_validation_set(0, 0, data_dir=data_dir)
    assert {e.document for e in va}.isdisjoint({e.document for e in tr if not e.meta.get("long")})
    s = D.stats(tr)
    assert s["examples"] == len(tr) and s["long"] > 0 and s["unanswerable"] > 0
    assert sum(s["by_source"].values()) == len(tr)
    # long training examples never contain a val document
    val_docs = {e.document for e in va}
    for e in tr:
        assert not any(d in e.document for d in val_docs)
    # deterministic
    tr2 = D.build_training_set(0, 0, 0.5, data_dir=data_dir, long_target_chars=1500)
    assert [(e.id, e.document) for e in tr] == [(e.id, e.document) for e in tr2]


def test_synthetic_examples_convert():
    exs = D.synthetic_examples(6, random.Random(0), (2_000, 6_000))
    assert len(exs) == 6
    for ex in exs:
        assert ex.source.startswith("synthetic:") and ex.instruction == TASKS[ex.task]
        assert ex.evidence and all(ex.document[s:e].strip() for s, e in ex.evidence)
        assert ex.evidence == D.merge_spans(ex.evidence)


def test_hard_examples_share_query_words_but_never_the_answer(data_dir):
    recs = Q.load_split("train", data_dir=data_dir)
    exs = D.to_examples([r for r in recs if r.evidence][:10])
    hard = D.make_hard_examples(exs, random.Random(0), recs, target_chars=(300, 600))
    assert hard
    for h in hard:
        assert h.meta["hard"] and h.id.endswith("@hard")
        src = next(e for e in exs if h.id == f"{e.id}@hard")
        # the evidence still points at the same text, inside the original document
        assert h.evidence_texts() == src.evidence_texts()
        off = h.meta["offset"]
        assert h.document[off:off + len(src.document)] == src.document
        rest = h.document[:off] + h.document[off + len(src.document):]
        assert rest.strip()  # distractors were added
        words = D.content_words(src.query)
        paras = [p for p in rest.split(D.PARAGRAPH_SEP) if p.strip()]
        assert all(words & D.content_words(p) for p in paras)  # each distractor shares a query word
        for ans in src.meta.get("answers", []):
            assert ans.lower() not in rest.lower()  # no distractor holds the answer
