"""`cprs corpus`: shards, rows, manifest and resume, then whole runs on a local Ray.

The first half needs no Ray (planning, reading, per-row options, the manifest's refusals). The
second shares one local Ray (2 CPUs) for the module and runs the tiny random critic of
conftest.py over a few hundred rows: the outputs are `compress_many`'s, bad rows get an error,
a driver killed by SIGTERM (a subprocess connected to this module's Ray by --address) resumes to
every row exactly once and byte-identical texts with another number of workers, and another
option or critic on the same output directory is refused.
"""

from __future__ import annotations

import bisect
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ray = pytest.importorskip("ray")

from cprs_cli.compressor import Compressor, Item, ItemError  # noqa: E402
from cprs_cli.corpus import run_corpus  # noqa: E402
from cprs_cli.corpus.manifest import MANIFEST_NAME, Output  # noqa: E402
from cprs_cli.corpus.shards import discover, plan_shards, read_shard  # noqa: E402
from cprs_cli.corpus.worker import RowError, row_options  # noqa: E402
from cprs_cli.errors import InputError, UsageError  # noqa: E402
from cprs_cli.options import CompressOptions  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WORDS = ("Apollo landed on the Moon in July 1969 while Collins stayed in orbit aboard Columbia "
         "and the crew returned safely to Earth after eight days in space").split()
QUERIES = ["When did Apollo land?", "Who stayed in orbit?", "How long was the mission?"]


def sentences(n: int, seed: int) -> str:
    out = []
    for k in range(n):
        words = [WORDS[(seed * 7 + k * 3 + j) % len(WORDS)] for j in range(6 + (seed + k) % 9)]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


# --------------------------------------------------------------------------- shards (no Ray)


def write_jsonl(path: Path, lines: list[str], newline: str = "\n", final: bool = True) -> Path:
    path.write_bytes((newline.join(lines) + (newline if final else "")).encode())
    return path


@pytest.mark.parametrize("newline,final", [("\n", True), ("\r\n", True), ("\n", False)])
def test_jsonl_shards_hold_every_row_once(tmp_path, newline, final):
    lines = []
    for i in range(23):
        lines.append(json.dumps({"id": i, "text": "x" * (i * 13)}))
        if i % 5 == 0:
            lines.append("   ")  # blank lines are not rows
    f = write_jsonl(tmp_path / "d.jsonl", lines, newline, final)
    files = discover(str(f))
    for rows, tokens in ((4, 10**9), (1000, 20), (1, 1)):
        shards = plan_shards(files, shard_tokens=tokens, shard_rows=rows)
        got = [r for s in shards for r in read_shard(s)]
        assert [r.fields["id"] for r in got] == list(range(23))
        assert all(s.rows <= rows for s in shards)
        assert [s.index for s in shards] == list(range(len(shards)))
        # line numbers count blank lines too
        assert [r.number for r in got] == [k + 1 for k, line in enumerate(lines) if line.strip()]
    by_tokens = plan_shards(files, shard_tokens=20, shard_rows=1000)
    assert len(by_tokens) > 3  # about 80 bytes per shard


def test_parquet_shards_hold_every_row_once(tmp_path):
    table = pa.table({"id": [f"r{i}" for i in range(50)], "text": ["word " * i for i in range(50)],
                      "other": list(range(50))})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=7)
    files = discover(str(tmp_path))
    for rows, tokens in ((5, 10**9), (13, 10**9), (1000, 30)):
        shards = plan_shards(files, shard_tokens=tokens, shard_rows=rows)
        got = [r for s in shards for r in read_shard(s)]
        assert [r.fields["id"] for r in got] == [f"r{i}" for i in range(50)]
        assert [r.number for r in got] == list(range(1, 51))
        assert "other" not in got[0].fields  # columns cprs does not read are not read


def test_a_file_changed_after_planning_fails_its_shard(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [json.dumps({"text": "a"})] * 6)
    shards = plan_shards(discover(str(f)), shard_rows=3)
    f.write_text(json.dumps({"text": "a"}) + "\n\n\n" + json.dumps({"text": "b"}) * 5)
    with pytest.raises(InputError, match="d.jsonl: changed since the shards were planned"):
        read_shard(shards[0])
    f.unlink()
    with pytest.raises(InputError, match="d.jsonl: cannot read"):
        read_shard(shards[1])


def test_an_actor_reports_a_failed_shard_and_goes_on(tmp_path, tiny_encoder_critic_dir, monkeypatch):
    import torch

    from cprs_cli.corpus.run import ShardActor

    monkeypatch.setenv("CPRS_CPU_DTYPE", "bfloat16")  # the worker node's own: the driver's wins

    f = write_jsonl(tmp_path / "d.jsonl", [json.dumps({"id": i, "text": "Apollo landed.", "query": "when?"})
                                           for i in range(4)])
    shards = plan_shards(discover(str(f)), shard_rows=2)
    comp = Compressor(str(tiny_encoder_critic_dir), device="cpu")
    out = tmp_path / "out"
    out.mkdir()
    actor = ShardActor({"model": str(tiny_encoder_critic_dir), "model_sha256": comp.model_sha256,
                        "device": "cpu", "batch_size": None, "window_tokens": None, "threads": None,
                        "options": {"query": ""}, "output": str(out), "format": "jsonl", "run_key": "k",
                        "max_bytes": 1 << 20})
    gone = json.dumps({**shards[1].to_dict(), "path": str(tmp_path / "gone.jsonl")})
    stats = actor({"shard": [json.dumps(shards[0].to_dict()), gone]})
    assert stats["failed"][0] == "" and stats["rows"][0] == 2
    assert stats["failed"][1].startswith("shard 1 (d.jsonl (lines from 3)): d.jsonl: cannot read")
    assert sorted(p.name for p in out.iterdir()) == ["part-000000.jsonl"]
    assert [r["id"] for r in read_outputs(out)] == ["0", "1"]  # ids are text
    assert next(actor.compressor.critic.model.parameters()).dtype == torch.float32
    bf16 = ShardActor({**actor.spec, "cpu_dtype": "bfloat16"})
    assert next(bf16.compressor.critic.model.parameters()).dtype == torch.bfloat16


def test_bad_dataset_files_are_input_errors(tmp_path):
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), tmp_path / "notext.parquet")
    with pytest.raises(InputError, match="notext.parquet: no 'text' or 'path' column"):
        plan_shards(discover(str(tmp_path / "notext.parquet")))
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "noquery.parquet")
    with pytest.raises(InputError, match="no 'query' column"):
        plan_shards(discover(str(tmp_path / "noquery.parquet")), need_query=True)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="broken.parquet: not a readable Parquet file"):
        plan_shards(discover(str(tmp_path / "broken.parquet")))
    with pytest.raises(InputError, match="no such file"):
        discover(str(tmp_path / "missing.jsonl"))
    (tmp_path / "a.csv").write_text("id,text\n")
    with pytest.raises(InputError, match="not a dataset file"):
        discover(str(tmp_path / "a.csv"))
    with pytest.raises(InputError, match="no dataset files"):
        discover(str(tmp_path / "*.nothing"))


def test_discover_walks_directories_and_globs(tmp_path):
    for rel in ("a.jsonl", "sub/b.parquet", "sub/c.ndjson", ".hidden.jsonl", "_SUCCESS", "out/part.jsonl",
                "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    names = [f.name for f in discover(str(tmp_path), exclude=tmp_path / "out")]
    assert names == ["a.jsonl", "sub/b.parquet", "sub/c.ndjson"]
    assert [f.name for f in discover(str(tmp_path / "sub" / "*.*"))] == ["b.parquet", "c.ndjson"]


def test_row_options_replace_the_calls_own():
    call = CompressOptions(query="call query", max_tokens=100, task="facts")
    assert row_options(call, {}) == call
    r = row_options(call, {"rate": 0.5, "query": "row query", "instruction": "Keep dates."})
    assert (r.rate, r.max_tokens, r.query, r.instruction, r.task) == (0.5, None, "row query", "Keep dates.", None)
    assert row_options(call, {"max_tokens": 50.0}).max_tokens == 50  # a JSON number
    assert row_options(call, {"rate": float("nan")}).max_tokens == 100  # a pandas null
    assert row_options(call, {"granularity": "paragraph"}).granularity == "paragraph"
    with pytest.raises(UsageError, match="either rate or max_tokens"):
        row_options(call, {"rate": 0.5, "max_tokens": 9})
    with pytest.raises(UsageError, match=r"rate must be in \(0, 1\]"):
        row_options(call, {"rate": 2})
    with pytest.raises(RowError, match="no query"):
        row_options(CompressOptions(query=""), {"text": "x"})
    with pytest.raises(RowError, match="query must be text or a list of texts"):
        row_options(call, {"query": 7})
    assert row_options(call, {"query": ["a?", "b?"]}).queries == ("a?", "b?")
    with pytest.raises(UsageError, match="query must not be empty"):
        row_options(call, {"query": ["a?", 3]})


def test_manifest_refuses_another_run_and_foreign_directories(tmp_path):
    def identity(**change):
        base = {"version": 1, "options": {"query": "q", "rate": None}, "model": {"sha256": "a" * 64},
                "inputs": [["/d.jsonl", 10, 1]], "sharding": {"shard_rows": 5}, "format": "parquet"}
        base.update(change)
        return base

    out = Output(tmp_path / "out")
    out.lock()
    planned = []
    assert out.shards_for(identity(), lambda: planned.append(1) or []) == [] and planned == [1]
    assert (tmp_path / "out" / MANIFEST_NAME).exists()
    out.shards_for(identity(), lambda: planned.append(2) or [])
    assert planned == [1]  # the same run reuses the manifest's plan
    with pytest.raises(UsageError, match=r"another run: the options \(rate: null -> 0.2\) changed"):
        out.shards_for(identity(options={"query": "q", "rate": 0.2}), list)
    with pytest.raises(UsageError, match="the critic"):
        out.shards_for(identity(model={"sha256": "b" * 64}), list)
    with pytest.raises(UsageError, match="another cprs corpus run is writing"):
        Output(tmp_path / "out").lock()
    out.close()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "mine.txt").write_text("x")
    with pytest.raises(UsageError, match="holds no _cprs_manifest.json"):
        Output(tmp_path / "foreign").load()


def test_a_cprs_error_inside_an_actor_keeps_its_line_and_exit_code():
    from cprs_cli.corpus.run import _ray_failure
    from cprs_cli.errors import ModelError

    remote = RuntimeError("ray.exceptions.ActorDiedError: ...\nTraceback (most recent call last):\n"
                          "  File \"run.py\", line 96, in __init__\n"
                          "cprs_cli.errors.ModelError: critic x on this worker has sha256 2b2a…, the driver's 0f0f…")
    remote.__cause__ = RuntimeError("")
    err = _ray_failure(remote)
    assert isinstance(err, ModelError) and err.exit_code == 4
    assert str(err) == "critic x on this worker has sha256 2b2a…, the driver's 0f0f…"
    assert str(_ray_failure(RuntimeError("Traceback\n  File x\nOSError: no space"))) == \
        "the Ray job failed: OSError: no space"


def test_actor_plan_shares_gpus_by_the_hosts_cores_and_given_values_win():
    from cprs_cli.corpus.run import plan_actors

    # (actors, CPUs per actor, actors per GPU); GPU hosts: one actor per 2 cores per GPU, at most 8
    assert plan_actors(2, 32, None, None, None) == (16, 2, 8)  # the 2-GPU H200 host of docs/scale.md
    assert plan_actors(1, 16, None, None, None) == (8, 2, 8)
    assert plan_actors(8, 128, None, None, None) == (64, 2, 8)
    assert plan_actors(1, 128, None, None, None) == (8, 8, 8)  # capped; the spare cores go to each actor
    assert plan_actors(4, 6, None, None, None) == (4, 1, 1)  # fewer cores than GPUs: one actor each
    assert plan_actors(2, 32, None, None, 1) == (2, 8, 1)  # --actors-per-gpu 1: the old default
    assert plan_actors(2, 32, 3, 4, 2) == (3, 4, 2)  # --workers and --cpus-per-worker win
    # CPU actors: CPUs / cpus-per-worker (default 2), at least one
    assert plan_actors(0, 2, None, None, None) == (1, 2, 1)
    assert plan_actors(0, 8, None, 1, None) == (8, 1, 1)


def test_without_ray_one_line_says_how_to_install(tmp_path, monkeypatch):
    from cprs_cli.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingExtraError) as err:
        run_corpus(str(tmp_path), tmp_path / "out", CompressOptions(query="q"))
    assert err.value.exit_code == 2
    assert str(err.value) == ("cprs corpus needs the 'corpus' extra (ray not installed): "
                              "pip install 'cprs-cli[corpus]'")


# --------------------------------------------------------------------------- runs on Ray

# rows whose expected error the tests know (id -> words of the message)
BAD_ROWS = {
    "no-text": "no text or path", "both": "either text or path", "bad-rate": "rate must be in (0, 1]",
    "missing-file": "missing.txt", "number-text": "text must be a string", "no-query": "no query",
    "bad-granularity": "granularity must be one of", "pq-no-query": "no query",
}
SHARD_ROWS = 10


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """One local Ray for the module. Its workers keep the environment it starts with, so the
    cprs cache of conftest's `_isolated_cache` is set for them here (a module fixture runs
    before that function fixture)."""
    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "CPRS_CACHE_DIR")}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["CPRS_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cprs-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A directory with a JSONL file (good rows, `path` rows to a text file and a PDF, bad rows)
    and a Parquet file. Returns (directory, {id: the compress_many Item} of the good rows, every
    id in file order)."""
    from badinput.pdfbuild import make_pdf

    from cprs_cli.ingest import load_path

    root = tmp_path_factory.mktemp("dataset")
    (root / "docs").mkdir()
    (root / "docs" / "note.txt").write_text(sentences(30, 99))
    (root / "docs" / "two.pdf").write_bytes(make_pdf([sentences(8, 1), sentences(8, 2)]))
    good: dict[str, Item] = {}
    lines = []
    for i in range(160):
        row = {"id": f"j{i}", "text": sentences(2 + (i * 7) % 40, i), "query": QUERIES[i % 3]}
        opts = {"query": row["query"]}
        if i % 4 == 1:
            row["rate"] = opts["rate"] = 0.3
        elif i % 4 == 2:
            row["max_tokens"] = opts["max_tokens"] = 40
        if i % 5 == 3:
            row["granularity"] = opts["granularity"] = "paragraph"
        if i % 7 == 4:
            row["task"] = opts["task"] = "answers"
        lines.append(json.dumps(row))
        good[row["id"]] = Item(row["text"], row["id"], CompressOptions(**opts))
        if i == 100:
            for rid, name, extra in (("by-path", "note.txt", {}), ("pdf", "two.pdf", {"rate": 0.5})):
                lines.append(json.dumps({"id": rid, "path": f"docs/{name}", "query": QUERIES[0], **extra}))
                doc = load_path(root / "docs" / name)
                good[rid] = Item(doc.text, rid, CompressOptions(query=QUERIES[0], **extra), document=doc)
            lines += [
                "{not json",
                "[1, 2]",
                json.dumps({"id": "no-text", "query": "q"}),
                json.dumps({"id": "both", "text": "a.", "path": "docs/note.txt", "query": "q"}),
                json.dumps({"id": "bad-rate", "text": "a.", "query": "q", "rate": 5}),
                json.dumps({"id": "missing-file", "path": "docs/missing.txt", "query": "q"}),
                json.dumps({"id": "number-text", "text": 42, "query": "q"}),
                json.dumps({"id": "no-query", "text": "a."}),
                json.dumps({"id": "bad-granularity", "text": "a.", "query": "q", "granularity": "page"}),
            ]
    write_jsonl(root / "a.jsonl", lines)
    ids, texts, queries = [], [], []
    for i in range(60):
        ids.append(f"p{i}")
        texts.append(sentences(3 + (i * 11) % 50, 500 + i))
        queries.append(QUERIES[i % 3] if i != 17 else None)
    ids[17] = "pq-no-query"
    pq.write_table(pa.table({"id": ids, "text": texts, "query": queries}), root / "b.parquet",
                   row_group_size=16)
    for i, q in enumerate(queries):
        if q is not None:
            good[ids[i]] = Item(texts[i], ids[i], CompressOptions(query=q))
    order = [json.loads(line).get("id") if line.startswith("{\"") else None for line in lines]
    all_ids = [rid if rid is not None else f"a.jsonl:{k + 1}" for k, rid in enumerate(order)] + ids
    return root, good, all_ids


def read_outputs(out: Path) -> list[dict]:
    rows = []
    for part in sorted(out.glob("part-*")):
        if part.suffix == ".parquet":
            rows += pq.read_table(part).to_pylist()
        else:
            rows += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    return rows


@pytest.fixture(scope="module")
def first_run(ray_address, dataset, tiny_encoder_critic_dir, tmp_path_factory):
    root, _, _ = dataset
    out = tmp_path_factory.mktemp("runs") / "first"
    stats = run_corpus(str(root), out, CompressOptions(query=""), model=str(tiny_encoder_critic_dir),
                       workers=2, cpus_per_worker=1, shard_rows=SHARD_ROWS, quiet=True)
    return stats, out


def test_outputs_equal_compress_many(first_run, dataset, tiny_encoder_critic_dir):
    stats, out = first_run
    _, good, all_ids = dataset
    rows = read_outputs(out)
    assert sorted(r["id"] for r in rows) == sorted(all_ids)
    assert (stats.documents, stats.written, stats.failed) == (len(all_ids), stats.shards, [])
    comp = Compressor(str(tiny_encoder_critic_dir), device="cpu")
    want = dict(zip(good, comp.compress_many(good.values())))
    by_id = {r["id"]: r for r in rows}
    kept = 0
    for rid, res in want.items():
        assert not isinstance(res, ItemError), res
        got = by_id[rid]
        assert got["error"] is None
        assert got["compressed_text"] == res.compressed_text
        assert [(s["start"], s["end"]) for s in got["spans"]] == [(s.start, s.end) for s in res.spans]
        assert [s["score"] for s in got["spans"]] == pytest.approx([s.score for s in res.spans], abs=1e-5)
        assert [s["page"] for s in got["spans"]] == [s.page for s in res.spans]
        assert (got["input_tokens"], got["output_tokens"], got["ratio"]) == (
            res.stats.input_tokens, res.stats.output_tokens, res.stats.ratio)
        assert (got["model"], got["model_sha256"]) == (comp.model_name, comp.model_sha256)
        kept += bool(res.spans)
    assert kept > len(want) // 2  # the comparison covers texts that kept something
    assert all(s["page"] is None for s in by_id["j0"]["spans"])  # a text has no pages
    pdf = by_id["pdf"]["spans"]  # a PDF's spans name the page they start on
    starts = good["pdf"].document.pages
    assert pdf and [s["page"] for s in pdf] == [bisect.bisect_right(starts, s["start"]) for s in pdf]
    assert stats.input_tokens == sum(r.stats.input_tokens for r in want.values())


def test_bad_rows_get_an_error_and_the_rest_succeed(first_run, dataset):
    stats, out = first_run
    _, good, all_ids = dataset
    by_id = {r["id"]: r for r in read_outputs(out)}
    for rid, words in BAD_ROWS.items():
        assert words in by_id[rid]["error"], (rid, by_id[rid]["error"])
        assert by_id[rid]["compressed_text"] is None and by_id[rid]["spans"] is None
    unnamed = [r for rid, r in by_id.items() if rid.startswith("a.jsonl:")]
    problems = sorted(r["error"].split(":", 1)[1].strip() for r in unnamed)
    assert problems[0] == "not a JSON object" and problems[1].startswith("not valid JSON (Expecting property name")
    errors = [rid for rid, r in by_id.items() if r["error"] is not None]
    assert len(errors) == len(all_ids) - len(good) == stats.errors
    assert "\n" not in "".join(by_id[rid]["error"] for rid in errors)


def test_a_rerun_writes_nothing_and_other_options_or_critics_are_refused(first_run, dataset, tmp_path,
                                                                         tiny_encoder_critic_dir):
    from conftest import build_tiny_encoder

    stats, out = first_run
    root, _, _ = dataset
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    again = run_corpus(str(root), out, CompressOptions(query=""), model=str(tiny_encoder_critic_dir),
                       workers=1, shard_rows=SHARD_ROWS, quiet=True)
    assert (again.written, again.done_before, again.shards) == (0, stats.shards, stats.shards)
    with pytest.raises(UsageError, match=r"the options \(rate: null -> 0.5\) changed"):
        run_corpus(str(root), out, CompressOptions(query="", rate=0.5), model=str(tiny_encoder_critic_dir),
                   shard_rows=SHARD_ROWS, quiet=True)
    other = build_tiny_encoder(tmp_path / tiny_encoder_critic_dir.name, seed=1)  # same name, other weights
    with pytest.raises(UsageError, match=r"the critic \(.*sha256"):
        run_corpus(str(root), out, CompressOptions(query=""), model=str(other), shard_rows=SHARD_ROWS, quiet=True)
    with pytest.raises(UsageError, match="the shard sizes"):
        run_corpus(str(root), out, CompressOptions(query=""), model=str(tiny_encoder_critic_dir),
                   shard_rows=SHARD_ROWS + 1, quiet=True)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before


def cprs(*args, **kwargs) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("CPRS_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "cprs_cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_killed_run_resumes_to_every_row_exactly_once(ray_address, dataset, first_run, tmp_path,
                                                        tiny_encoder_critic_dir):
    root, _, all_ids = dataset
    out = tmp_path / "killed"
    args = ["corpus", root, "-o", out, "--model", tiny_encoder_critic_dir, "--address", ray_address,
            "--workers", "1", "--cpus-per-worker", "2", "--shard-rows", SHARD_ROWS, "--format", "jsonl"]
    proc = cprs(*args)
    deadline = time.monotonic() + 240
    while not list(out.glob("part-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    stderr = stderr.decode()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    planned = {s["output"]: s["rows"] for s in manifest["shards"]}
    written = sorted(p.name for p in out.glob("part-*"))
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert f"cprs: error: terminated: {len(written)} of {len(planned)} shards written" in stderr, stderr[-600:]
    assert 0 < len(written) < len(planned)  # killed midway
    for name in written:  # whole shards only: no partial file under a final name
        assert len((out / name).read_text(encoding="utf-8").splitlines()) == planned[name]
    resumed = cprs(*args)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr.decode()
    assert f"{len(written)} of {len(planned)} shards were written before" in stderr.decode()
    rows = read_outputs(out)
    assert Counter(r["id"] for r in rows) == Counter(all_ids)  # every row exactly once
    assert not list(out.glob(".cprs-*.tmp"))
    # 2 workers of 1 thread before, 1 worker of 2 threads here: the same bytes
    first = {r["id"]: r for r in read_outputs(first_run[1])}
    assert all(r["compressed_text"] == first[r["id"]]["compressed_text"] for r in rows)
    assert all(r["spans"] == first[r["id"]]["spans"] for r in rows)


def test_cli_errors_are_one_line(tmp_path, tiny_encoder_critic_dir):
    from typer.testing import CliRunner

    from cprs_cli.cli import app

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    r = invoke("corpus", tmp_path / "missing.jsonl", "-o", tmp_path / "out")
    assert r.exit_code == 3
    assert r.stderr.strip() == f"cprs: error: {tmp_path / 'missing.jsonl'}: no such file or directory"
    r = invoke("corpus", tmp_path, "-o", tmp_path / "out", "--rate", "0.5", "--max-tokens", "9")
    assert r.exit_code == 2 and "--rate" in r.stderr and "Traceback" not in r.stderr
    r = invoke("corpus", tmp_path, "-o", tmp_path / "out", "--actors-per-gpu", "0")
    assert r.exit_code == 2 and "--actors-per-gpu" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(UsageError, match="actors_per_gpu"):
        run_corpus(str(tmp_path), tmp_path / "out2", CompressOptions(query="q"), actors_per_gpu=0)
    r = invoke("corpus", "--help")
    assert r.exit_code == 0
    for word in ("--output", "--address", "--workers", "--actors-per-gpu", "--shard-tokens", "--format",
                 "--query"):
        assert word in r.stdout


def test_ray_data_stats_warnings_lose_their_traceback(tmp_path):
    """Ray Data's stats thread logs a traceback when the driver is stopped mid-job; the corpus
    run keeps such a record's line and drops the traceback (the killed-run test saw it, at times)."""
    import io
    import logging

    from cprs_cli.corpus import run as corpus_run

    log = logging.getLogger("ray.data._internal.stats.test")
    log.addFilter(corpus_run._NO_TRACEBACK)
    buf = io.StringIO()
    log.addHandler(logging.StreamHandler(buf))
    log.propagate = False
    log.setLevel(logging.WARNING)  # quiet runs set "ray.data" to ERROR
    try:
        raise RuntimeError("stats actor gone")
    except RuntimeError as err:
        log.warning(f"Error occurred during update_execution_metrics: {err}", exc_info=True)
    assert buf.getvalue() == "Error occurred during update_execution_metrics: stats actor gone\n"


def test_exceptions_in_rays_teardown_print_one_line_and_others_reach_the_previous_hook(monkeypatch, capsys):
    """A driver stopped mid-job can have Ray Data's executor fail in its __del__, which Python
    reports with a traceback; cprs turns those (and only those) into one line."""
    import types

    from cprs_cli.corpus import run as corpus_run

    def ray_del(self):  # stands for ray.data's StreamingExecutor.__del__
        pass

    ray_del.__module__ = "ray.data._internal.execution.streaming_executor"
    ray_del.__qualname__ = "StreamingExecutor.__del__"
    seen = []
    monkeypatch.setattr(corpus_run, "_PREVIOUS_UNRAISABLE", seen.append)
    try:
        raise RuntimeError("Ray has not been started yet.\nplease call ray.init()")
    except RuntimeError as err:
        exc = err
    ray_case = types.SimpleNamespace(exc_type=RuntimeError, exc_value=exc, exc_traceback=exc.__traceback__,
                                     err_msg=None, object=ray_del)
    corpus_run._ray_unraisable_one_line(ray_case)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "StreamingExecutor.__del__" in err and "Ray has not been started yet. please call" in err
    assert seen == []

    other = types.SimpleNamespace(exc_type=RuntimeError, exc_value=exc, exc_traceback=None, err_msg=None,
                                  object=test_exceptions_in_rays_teardown_print_one_line_and_others_reach_the_previous_hook)
    corpus_run._ray_unraisable_one_line(other)
    assert seen == [other] and capsys.readouterr().err == ""
