"""`cprs bench --speed`: the peer-shape speed table (rows, ratios, skipped peers), the scaling
run's fit and the report, on tiny critics and tiny peer shapes so the machinery runs in seconds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cprs_cli.errors import UsageError
from cprs_cli.evaluation import metrics as M
from cprs_cli.evaluation import speed as S


def test_fit_of_exactly_linear_times():
    lengths = [10_000, 100_000, 500_000, 1_000_000, 2_000_000]
    seconds = [0.25 + 0.164e-3 * n for n in lengths]  # 0.164 s per 1K tokens + 0.25 s
    fit = M.linear_fit(lengths, seconds)
    assert fit["slope"] * 1000 == pytest.approx(0.164)
    assert fit["intercept"] == pytest.approx(0.25)
    assert fit["r2"] == pytest.approx(1.0) and fit["n"] == 5
    noisy = M.linear_fit(lengths, [s * (1.3 if i % 2 else 0.7) for i, s in enumerate(seconds)])
    assert noisy["r2"] < 0.99


def test_peer_selection_by_device():
    run, skipped = S.select_peers(None, "cpu")
    assert "qwenlong-cprs-7b" not in run and {"llmlingua-2", "llmlingua-2-small", "provence"} <= set(run)
    assert [r["peer"] for r in skipped] == ["qwenlong-cprs-7b"] and "CPU" in skipped[0]["skipped"]
    assert S.select_peers(None, "cuda") == (list(S.PEERS), [])
    assert S.select_peers(["qwenlong-cprs-7b"], "cpu") == (["qwenlong-cprs-7b"], [])  # named: runs
    assert S.select_peers(["none"], "cpu") == ([], [])
    assert S.select_peers(["all", "provence"], "cpu")[0] == list(S.PEERS)
    with pytest.raises(UsageError, match="unknown peer 'bert'"):
        S.select_peers(["bert"], "cuda")


@pytest.mark.parametrize("name, params_m", [
    ("llmlingua-2", 559.9),        # xlm-roberta-large: 560M
    ("llmlingua-2-small", 177.3),  # bert-base-multilingual-cased: 178M (its pooler is not built here)
    ("provence", 434.0),           # deberta-v3-large: 304M backbone + 131M embedding
    ("qwenlong-cprs-7b", 7070.6),   # Qwen2-7B without lm_head (7.62B with it) + the 4-way cls_head
])
def test_peer_configs_have_the_published_sizes(name, params_m):
    """Built on the meta device (no memory): the parameter counts of the published models."""
    import torch
    from transformers import AutoModelForTokenClassification

    from cprs_cli.critic.hybrid import HybridTagger

    cfg = S.peer_config(name)
    with torch.device("meta"):
        model = HybridTagger(cfg) if name == "qwenlong-cprs-7b" else AutoModelForTokenClassification.from_config(cfg)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert n == pytest.approx(params_m, rel=0.01)


def test_speed_table_and_report(tmp_path, tiny_encoder_critic_dir, tiny_hybrid_critic_dir):
    from cprs_cli import Compressor
    from cprs_cli.evaluation import bench

    comps = {"cprs-enc": Compressor(model=tiny_encoder_critic_dir, device="cpu"),
             "cprs-hyb": Compressor(model=tiny_hybrid_critic_dir, device="cpu")}
    out, report = tmp_path / "b", tmp_path / "speed.md"
    res = bench.main(out, speed=True, compressors=comps, device="cpu", peers=["all"], tiny_peers=True,
                     speed_lengths=[600, 1200, 2400], speed_tokens=2000, quick=True, progress=False,
                     command="cprs bench --speed --test", report_path=report)
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == [] and saved["config"]["speed_only"]
    table = saved["speed_table"]
    rows = table["rows"]
    assert table["reference"] == "cprs-enc" and table["tiny_peers"]
    fwd = {r["system"]: r for r in rows if r["measure"] == "forward"}
    assert set(fwd) == {"cprs-enc", "cprs-hyb", *(p.label for p in S.PEERS.values())}
    for r in fwd.values():
        assert not r.get("error") and r["tokens_per_second"] > 0, r
        assert r["vs_reference"] == pytest.approx(r["tokens_per_second"] / fwd["cprs-enc"]["tokens_per_second"],
                                                  rel=1e-3)
    assert fwd["cprs-enc"]["vs_reference"] == 1.0
    assert fwd["QwenLong-CPRS-7B"]["window"] == S.TINY["window"]
    assert fwd["cprs-enc"]["batch"] == comps["cprs-enc"].batch_size  # the critic's own batch
    e2e = {r["system"]: r for r in rows if r["measure"] == "end-to-end"}
    assert set(e2e) == {"cprs-enc", "cprs-hyb"}
    for label, r in e2e.items():
        assert not r.get("error"), r
        assert 1600 < r["input_tokens"] < 2400 and r["windows"] >= 1
        assert set(r["timings"]) >= {"tokenize", "critic", "post"}
        assert sum(r["stage_share"].values()) == pytest.approx(1.0, abs=0.05)
        assert r["of_forward"] == pytest.approx(r["model_tokens_per_second"] / fwd[label]["tokens_per_second"],
                                                rel=1e-3)
    # the scaling run: one row per critic and length, and a fit with R² over the 3 lengths
    scaling = saved["speed"]
    assert [r["tokens"] for r in scaling["rows"]] == [600, 600, 1200, 1200, 2400, 2400]
    assert all(r["rate"] == 0.1 and r["document"] == table["document"] for r in scaling["rows"])
    assert all(f["n"] == 3 and f["r2"] is not None for f in scaling["fits"].values())
    md = report.read_text()
    assert md.startswith("# cprs speed") and "cprs bench --speed --test" in md
    assert "## Speed table" in md and "## Speed and scaling" in md and "R²" in md
    assert "vs cprs-enc" in md and "LLMLingua-2-small" in md and "tiny shapes" in md
    assert "Scores by task" not in md
    assert res["speed_table"]["rows"] == rows


def test_cpu_skips_the_7b_with_its_reason(tmp_path, tiny_encoder_critic_dir):
    from cprs_cli.evaluation import bench

    bench.main(tmp_path / "b", speed=True, models=[str(tiny_encoder_critic_dir)], device="cpu",
               peers=None, tiny_peers=True, speed_lengths=[], speed_tokens=2000, quick=True,
               progress=False, command="t")
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    rows = {r["system"]: r for r in saved["speed_table"]["rows"]}
    assert "CPU" in rows["QwenLong-CPRS-7B"]["skipped"] and "tokens_per_second" not in rows["QwenLong-CPRS-7B"]
    assert rows["LLMLingua-2"]["tokens_per_second"] > 0
    assert saved["speed"] == {}  # --speed-lengths '' skips the scaling run
    assert "skipped: 7.1B parameters" in (tmp_path / "b" / "report.md").read_text()


def test_scaling_worker_runs_the_speed_document(tiny_encoder_critic_dir):
    """The per-length subprocess (what the GPU run uses): the speed document, peak RSS."""
    from cprs_cli.evaluation import bench

    runs = bench.run_speed([1500], {"cprs-t": str(tiny_encoder_critic_dir)}, [], "cpu", rate=0.2)
    (row,) = runs["rows"]
    assert row.get("error") is None, row
    assert row["rate"] == 0.2 and row["document"] and row["peak_rss_mb"] > 50
    assert row["output_tokens"] <= 0.3 * row["input_tokens"]


def test_unknown_peer_is_a_usage_error_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cprs_cli", "bench", "--speed", "--peers", "bert",
                           "--device", "cpu", "--out-dir", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "unknown peer 'bert'" in proc.stderr and not (tmp_path / "x").exists()
