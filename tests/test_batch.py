"""cprs_cli.batch: the documents the command line names and where each result goes (delivery is
exercised end to end by test_cli.py and the bad-input corpus)."""

from __future__ import annotations

import pytest

from cprs_cli import batch, ingest
from cprs_cli.batch import expand_inputs, output_path_for
from cprs_cli.errors import UsageError

# --------------------------------------------------------------------------- paths


def test_output_path_mirrors_tree(tmp_path):
    root = tmp_path / "docs"
    src = root / "a" / "b" / "report.pdf"
    out = tmp_path / "out"
    assert output_path_for(src, root, out, "text") == out / "a" / "b" / "report.pdf.cprs.txt"
    assert output_path_for(src, root, out, "json") == out / "a" / "b" / "report.pdf.cprs.json"
    assert output_path_for(src, root, out, "jsonl") == out / "a" / "b" / "report.pdf.cprs.jsonl"


def test_output_path_keeps_suffix_so_names_do_not_collide(tmp_path):
    out = tmp_path / "out"
    a = output_path_for(tmp_path / "x.md", tmp_path, out, "text")
    b = output_path_for(tmp_path / "x.txt", tmp_path, out, "text")
    assert a != b


def test_output_path_file_outside_root_or_no_root(tmp_path):
    out = tmp_path / "out"
    assert output_path_for(tmp_path / "elsewhere" / "f.txt", tmp_path / "root", out, "text") == \
        out / "f.txt.cprs.txt"
    assert output_path_for("stdin", None, out, "json") == out / "stdin.cprs.json"
    with pytest.raises(ValueError):
        output_path_for("f.txt", None, out, "xml")




# --------------------------------------------------------------------------- inputs


def test_a_directory_gives_every_file_type_ingest_reads_and_lists_the_others(tmp_path):
    """.html, .json and .csv are read when named, so a directory gives them too (issue 8: they
    were skipped); files of other types are listed as skipped, hidden files and cprs's own
    results are passed over without a word."""
    for suffix in ingest.readable_suffixes():
        (tmp_path / f"doc{suffix}").write_text("text")
    for name in ("logo.png", "sheet.xlsx", ".hidden.txt", "old.txt.cprs.txt"):
        (tmp_path / name).write_text("x")
    items, problems, skipped = expand_inputs([str(tmp_path)], recursive=False, pattern=batch.DEFAULT_GLOB)
    assert problems == []
    assert sorted(i.path.name for i in items) == sorted(f"doc{s}" for s in ingest.readable_suffixes())
    assert {".html", ".json", ".csv"} <= {i.path.suffix for i in items}
    assert [p.name for p in skipped] == ["logo.png", "sheet.xlsx"]


def test_skipped_files_are_found_below_with_recursive_and_not_with_a_glob(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "sub" / "b.png").write_text("x")
    _, _, skipped = expand_inputs([str(tmp_path)], recursive=True, pattern="*")
    assert skipped == [tmp_path / "sub" / "b.png"]
    _, _, skipped = expand_inputs([str(tmp_path)], recursive=False, pattern="*")
    assert skipped == []  # not looked at
    items, _, skipped = expand_inputs([str(tmp_path)], recursive=True, pattern="*.png")
    assert [i.path.name for i in items] == ["b.png"] and skipped == []  # an explicit --glob takes what it names


def test_plan_checks_before_any_work(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "b.txt").write_text("text")
    with pytest.raises(UsageError, match="--format jsonl"):
        batch.plan([str(tmp_path)], recursive=False, pattern="*", output=None, output_dir=None, fmt="json")
    with pytest.raises(UsageError, match="refusing to overwrite"):
        batch.plan([str(tmp_path / "a.txt")], recursive=False, pattern="*", output=str(tmp_path / "a.txt"),
                   output_dir=None, fmt="text")
    plan = batch.plan([str(tmp_path)], recursive=False, pattern="*", output=None, output_dir=tmp_path / "out",
                      fmt="json")
    assert plan.out_paths == {i: tmp_path / "out" / (i.path.name + ".cprs.json") for i in plan.items}
    assert len(plan.items) == 2
