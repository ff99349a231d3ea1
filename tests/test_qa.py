"""cprs_cli.evaluation.qa: the data directory rule, loading, the by-document split and its
calib / test halves (what training never sees and what the quality report measures)."""

from __future__ import annotations

import pytest

from cprs_cli.evaluation import qa as Q


def test_resolve_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CPRS_DATA", str(tmp_path))
    assert Q.resolve_data_dir() == tmp_path
    assert Q.resolve_data_dir("/x/y") == Q.Path("/x/y")


def test_load_records(data_dir):
    recs = list(Q.load_records(["tinytok"], data_dir))
    assert len(recs) == 75
    r = recs[0]
    assert isinstance(r, Q.Record) and r.evidence and isinstance(r.evidence[0], tuple)
    assert r.document[slice(*r.evidence[0])] == "Person0"
    assert set(Q.available_sources(data_dir)) == {"tinytok", "tinysent"}


def test_split_is_by_document_and_stable(data_dir):
    train = Q.load_split("train", data_dir=data_dir)
    val = Q.load_split("val", data_dir=data_dir)
    assert len(train) + len(val) == 75 + 10
    train_docs = {r.document for r in train}
    val_docs = {r.document for r in val}
    assert not train_docs & val_docs  # no document in both splits
    # every query of a document goes with it
    for r in Q.load_records(data_dir=data_dir):
        assert Q.split_of(r, data_dir) == ("val" if r.document in val_docs else "train")
    # at least 2 val documents per source, even for a 5-document source
    for src in ("tinytok", "tinysent"):
        assert len({r.document for r in val if r.source == src}) >= 2
        assert len({r.document for r in train if r.source == src}) >= 1
    # ~10% of 25 documents
    assert len({r.document for r in val if r.source == "tinytok"}) == 3
    # stable: same answer again, and independent of the record id
    assert [r.id for r in Q.load_split("val", data_dir=data_dir)] == [r.id for r in val]
    r = val[0]
    clone = Q.Record(**{**r.__dict__, "id": "other-id", "query": "another query"})
    assert Q.split_of(clone, data_dir) == "val"


def test_select_val_hashes_rule():
    hs = [f"{i:04x}" for i in range(29)]
    assert Q.select_val_hashes(hs) == frozenset(sorted(hs)[::10])
    assert len(Q.select_val_hashes(hs[:5])) == 2
    assert len(Q.select_val_hashes(hs[:1])) == 0  # a single document stays in train


@pytest.mark.skipif(not (Q.resolve_data_dir() / "squad2.jsonl.gz").exists(), reason="shared data not present")
def test_real_data_split_small_sources():
    for src in ("squad2", "policyqa"):
        val = Q.load_split("val", [src])
        train = Q.load_split("train", [src])
        vd, td = {r.document for r in val}, {r.document for r in train}
        assert len(vd) >= 2 and not vd & td


def test_calib_and_test_halve_val_by_document(data_dir):
    val = Q.load_split("val", data_dir=data_dir)
    calib = Q.load_split("calib", data_dir=data_dir)
    test = Q.load_split("test", data_dir=data_dir)
    assert sorted(r.id for r in calib + test) == sorted(r.id for r in val)
    assert calib and test
    assert not {r.document for r in calib} & {r.document for r in test}
    train_docs = {r.document for r in Q.load_split("train", data_dir=data_dir)}
    assert not train_docs & {r.document for r in calib + test}
    with pytest.raises(ValueError):
        Q.load_split("dev", data_dir=data_dir)


def test_pack_shifts_evidence():
    doc, ev, off = Q.pack("Person1 is mayor.", [(0, 7)], ["first", "second"], 1)
    assert doc == "first\n\nPerson1 is mayor.\n\nsecond" and off == len("first\n\n")
    assert [doc[s:e] for s, e in ev] == ["Person1"]
    assert Q.pack("x", [(0, 1)], [], 5) == ("x", [(0, 1)], 0)


def test_default_data_dir_is_shared_data_beside_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("CPRS_DATA", raising=False)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert Q.resolve_data_dir() == tmp_path / "shared" / "data"
