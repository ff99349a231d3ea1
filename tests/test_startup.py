"""Start-up (issue 12 §2): the shipped encoder critic loads without transformers, from a cache of
its merged weights, and computes exactly what the transformers path computes.

Speed is not asserted here (benchmarks/bench_startup.py measures it); these tests pin what the
faster path must never change: logits bit for bit, token ids and offsets, whole results, and that
a damaged cache file is rebuilt rather than trusted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from cprs_cli.critic import CRITICS, critic_status, load_critic, loader, merged
from cprs_cli.critic.bert import BertTagger, build_bert_tagger, supported
from cprs_cli.critic.rusttok import RustTokenizer
from cprs_cli.errors import ModelError
from cprs_cli.windows import tokenize

MINI = CRITICS["mini"]
MINI_OK, MINI_STATUS = critic_status(MINI)
needs_mini = pytest.mark.skipif(not MINI_OK, reason=f"mini not installed: {MINI_STATUS}")
SAMPLE = Path(__file__).resolve().parent.parent / "cprs_cli" / "samples" / "apollo11.md"
QUERY = "When did Apollo 11 land on the Moon, and who walked on the surface?"


def _batch(vocab: int, padded: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab, (3, 140), generator=g)
    mask = torch.ones_like(ids)
    if padded:  # right padding, as cprs pads: one full row, one half, one short
        mask[1, 70:] = 0
        mask[2, 9:] = 0
        ids[mask == 0] = 0
    return ids, mask


def _transformers_model(config, state, dtype):
    return loader.build_model(config, "encoder", dict(state), torch.device("cpu"), dtype)


def _both(path: Path, state: dict, dtype: torch.dtype, overrides: dict | None = None):
    """(BertTagger, transformers BertForTokenClassification) with the same weights."""
    config = json.loads((path / "config.json").read_text())
    config.update(overrides or {})
    config["num_labels"] = 4
    assert supported(config)
    fast = build_bert_tagger(config, dict(state), torch.device("cpu"), dtype)
    hf_config = loader._read_config(path)
    for k, v in (overrides or {}).items():
        setattr(hf_config, k, v)
    hf_config.num_labels = 4
    ref = _transformers_model(hf_config, state, dtype)
    assert ref.config._attn_implementation == "sdpa"  # the kernel BertTagger reproduces
    return fast, ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("padded", [False, True])
def test_bert_tagger_is_bitwise_transformers_on_a_tiny_encoder(tiny_encoder_critic_dir, dtype, padded):
    state = load_file(str(tiny_encoder_critic_dir / "model.safetensors"))
    fast, ref = _both(tiny_encoder_critic_dir, state, dtype)
    ids, mask = _batch(30522, padded)
    with torch.inference_mode():
        a = fast(input_ids=ids, attention_mask=mask).logits
        b = ref(input_ids=ids, attention_mask=mask).logits
    assert a.dtype == b.dtype == dtype
    assert torch.equal(a, b)


@needs_mini
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bert_tagger_is_bitwise_transformers_on_mini(dtype):
    from cprs_cli.critic.lora import merge_delta

    base_dir = loader.base_model_dir(MINI)
    state = merge_delta(loader.base_state(MINI, base_dir, torch.device("cpu")), load_file(str(MINI.delta_path)))
    fast, ref = _both(base_dir, state, dtype, MINI.meta().get("config", {}))
    for padded in (False, True):
        ids, mask = _batch(30522, padded, seed=1)
        with torch.inference_mode():
            assert torch.equal(fast(input_ids=ids, attention_mask=mask).logits,
                               ref(input_ids=ids, attention_mask=mask).logits)


def test_unsupported_configs_are_left_to_transformers():
    good = {"model_type": "bert", "hidden_act": "gelu", "vocab_size": 10, "hidden_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 32, "type_vocab_size": 2}
    assert supported(good)
    for change in ({"model_type": "roberta"}, {"hidden_act": "gelu_new"}, {"is_decoder": True},
                   {"position_embedding_type": "relative_key"}, {"_attn_implementation": "eager"},
                   {"hidden_size": 9}, {"num_hidden_layers": None}):
        assert not supported({**good, **change}), change


def test_bert_tagger_refuses_wrong_weights(tiny_encoder_critic_dir):
    config = json.loads((tiny_encoder_critic_dir / "config.json").read_text())
    state = load_file(str(tiny_encoder_critic_dir / "model.safetensors"))
    with pytest.raises(ModelError, match="lack 1 tensors"):
        build_bert_tagger(config, {k: v for k, v in state.items() if k != "classifier.bias"},
                          torch.device("cpu"), torch.float32)
    with pytest.raises(ModelError, match="1 unknown tensors"):
        build_bert_tagger(config, {**state, "extra.weight": torch.zeros(1)}, torch.device("cpu"), torch.float32)
    bad = dict(state, **{"classifier.bias": torch.zeros(5)})
    with pytest.raises(ModelError, match="do not fit"):
        build_bert_tagger(config, bad, torch.device("cpu"), torch.float32)
    assert isinstance(build_bert_tagger(config, state, torch.device("cpu"), torch.float32), BertTagger)


# ---------------------------------------------------------------- the tokenizer

HOSTILE = ["", " ", "The [SEP] and [CLS] tokens, [PAD] [MASK] [UNK] written as text.",
           "Ünïcödé naïve café — “quotes” … 東京 北京 😀 \t tabs\nand\r\nlines",
           "x" * 3000, "word " * 700, "a\u0000b\u200bc\ufeffd", "CAPITALS and MiXeD CaSe 12,345.67"]


def _pair(path: Path):
    return RustTokenizer(path), loader._load_tokenizer(path)


def _same_tokens(ours, ref, text: str) -> None:
    for split in (True, False):
        kw = dict(add_special_tokens=False, split_special_tokens=split, return_offsets_mapping=True)
        a, b = ours(text, **kw), ref(text, **kw)
        assert list(a["input_ids"]) == list(b["input_ids"])
        assert [tuple(o) for o in a["offset_mapping"]] == [tuple(o) for o in b["offset_mapping"]]
    da, db = tokenize(ours, text), tokenize(ref, text)
    assert da.ids.tolist() == db.ids.tolist() and da.offsets.tolist() == db.offsets.tolist()


@pytest.mark.parametrize("text", HOSTILE)
def test_rust_tokenizer_matches_transformers(tiny_encoder_critic_dir, text):
    ours, ref = _pair(tiny_encoder_critic_dir)
    _same_tokens(ours, ref, text)
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "eos_token_id", "unk_token_id"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.is_fast


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300))
def test_rust_tokenizer_matches_transformers_on_any_text(tiny_encoder_critic_dir, text):
    ours, ref = _pair(tiny_encoder_critic_dir)
    _same_tokens(ours, ref, text)


@needs_mini
def test_rust_tokenizer_matches_transformers_on_mini():
    ours, ref = _pair(loader.base_model_dir(MINI))
    for text in [*HOSTILE, SAMPLE.read_text(encoding="utf-8")]:
        _same_tokens(ours, ref, text)
    assert (ours.cls_token_id, ours.sep_token_id, ours.pad_token_id) == (101, 102, 0)


# ---------------------------------------------------------------- the shipped critic, end to end


def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (what it imports is its own) with its own cprs cache."""
    env = {**os.environ, "CPRS_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


@needs_mini
def test_mini_loads_without_transformers(tmp_path):
    """The point of bert.py and rusttok.py: `cprs compress` with mini never imports transformers."""
    code = ("import sys; from cprs_cli import Compressor; c = Compressor('mini', 'cpu'); "
            "r = c.compress('Apollo 11 landed in 1969. Armstrong walked on the Moon.', query='When?'); "
            "assert type(c.critic.model).__name__ == 'BertTagger'; "
            "bad = [m for m in ('transformers', 'torch._dynamo') if m in sys.modules]; "
            "assert not bad, bad")
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr


MINI_INT8_MEAN_DP = 0.025  # mean |Δ keep probability| int8 vs fp32 on the sample (measured: 0.0126)


@needs_mini
def test_mini_in_int8_stays_near_fp32_without_transformers(tmp_path):
    """CPRS_CPU_DTYPE=int8 quantises the shipped mini's BertTagger (still no transformers, no
    torch._dynamo) and its keep probabilities on the sample stay on average within
    MINI_INT8_MEAN_DP of fp32's. Single tokens move further (up to 0.21 here): the quality rows
    of docs/speed.md, not this test, say what that does to what is kept."""
    code = ("import os, sys, json, numpy as np; from cprs_cli import Compressor; "
            "from cprs_cli.instructions import TASKS; from cprs_cli.tags import keep_probability; "
            f"text = open({str(SAMPLE)!r}, encoding='utf-8').read(); "
            "keep = lambda c: keep_probability(c.token_probs(text, TASKS['facts'], "
            f"{QUERY!r})[0]); "
            "a = keep(Compressor('mini', 'cpu')); os.environ['CPRS_CPU_DTYPE'] = 'int8'; "
            "c = Compressor('mini', 'cpu'); b = keep(c); m = c.critic.model; "
            "print(json.dumps({'type': type(m).__name__, 'precision': c.critic.precision, "
            "'linears': sorted({type(x).__name__ for n, x in m.named_modules() if n.endswith(('query', 'key', "
            "'value', 'dense'))}), 'mean': float(np.abs(a - b).mean()), 'max': float(np.abs(a - b).max()), "
            "'n': len(a), 'bad': [x for x in ('transformers', 'torch._dynamo') if x in sys.modules]}))")
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["type"] == "BertTagger" and got["precision"] == "int8" and not got["bad"], got
    assert got["linears"] == ["Int8Linear"], got
    assert got["n"] > 3000 and 0 < got["mean"] < MINI_INT8_MEAN_DP, got
    assert r.stderr.strip() == "", r.stderr  # torch's notice that quantized tensors are deprecated stays silent


@needs_mini
def test_mini_results_are_those_of_the_transformers_path(monkeypatch):
    """Whole results (spans, scores, text) from the new path equal those of the old one."""
    from cprs_cli import Compressor

    text = SAMPLE.read_text(encoding="utf-8")

    def result(compressor):
        out = compressor.compress(text, query=QUERY).to_dict()
        out["stats"].pop("seconds")
        out["stats"].pop("timings")
        return out

    fast = Compressor("mini", "cpu")
    assert type(fast.critic.model).__name__ == "BertTagger"
    monkeypatch.setattr(loader, "plain_bert_config", lambda *a: None)
    slow = Compressor("mini", "cpu")
    assert type(slow.critic.model).__name__ == "BertForTokenClassification"
    assert result(fast) == result(slow)


# ---------------------------------------------------------------- the merged-weights cache


def _logits(critic, seed: int = 2):
    ids, mask = _batch(30522, True, seed)
    with torch.inference_mode():
        return critic.logits(ids, mask)


def _forbid_merge(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("merged again: the cache was not used")

    monkeypatch.setattr("cprs_cli.critic.lora.merge_delta", refuse)


def _cache_file(tmp_path: Path) -> Path:
    (f,) = (tmp_path / "cache" / "merged").glob("mini-*.safetensors")
    return f


@needs_mini
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cached_merge_gives_bitwise_the_fresh_merge(tmp_path, monkeypatch, dtype):
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CPRS_CPU_DTYPE", dtype)
    fresh = load_critic("mini", "cpu")  # merges and writes the cache
    cached_file = _cache_file(tmp_path)
    assert load_file(str(cached_file))["classifier.weight"].dtype == getattr(torch, dtype)
    _forbid_merge(monkeypatch)
    from_cache = load_critic("mini", "cpu")
    fresh_state, cached_state = fresh.model.state_dict(), from_cache.model.state_dict()
    assert fresh_state.keys() == cached_state.keys()
    assert all(torch.equal(fresh_state[k], cached_state[k]) for k in fresh_state)
    assert torch.equal(_logits(fresh), _logits(from_cache))
    assert from_cache.sha256 == fresh.sha256


@needs_mini
@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "other-key", "empty"])
def test_damaged_cache_is_rebuilt_not_trusted(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("cprs_cli.critic.base.RACY_NS", 0)  # digests cached at once, as after 2 s
    reference = _logits(load_critic("mini", "cpu"))
    f = _cache_file(tmp_path)
    good = f.read_bytes()
    load_critic("mini", "cpu")  # the file's digest is now in the hash cache too
    time.sleep(0.05)  # past the file system's timestamp tick (at most 10 ms), not a timing test
    if damage == "flip":  # one weight byte, in place: same size, the hash cache must not vouch for it
        data = bytearray(good)
        data[-1000] ^= 0x40
        with open(f, "r+b") as fh:
            fh.write(bytes(data))
    elif damage == "truncate":
        f.write_bytes(good[: len(good) // 2])
    elif damage == "manifest":
        f.with_suffix(".json").unlink()
    elif damage == "other-key":
        m = json.loads(f.with_suffix(".json").read_text())
        f.with_suffix(".json").write_text(json.dumps({**m, "key": "0" * 64}))
    else:
        f.write_bytes(b"")
    merges = []
    real = merged.as_dtype
    monkeypatch.setattr(merged, "as_dtype", lambda state, dtype: merges.append(1) or real(state, dtype))
    again = load_critic("mini", "cpu")
    assert merges == [1], "a damaged cache file was trusted"
    assert torch.equal(_logits(again), reference)
    assert f.read_bytes() == good  # rebuilt, and the same bytes as before
    merges.clear()
    load_critic("mini", "cpu")
    assert merges == []  # and trusted again


@needs_mini
def test_unwritable_cache_only_costs_the_merge(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv("CPRS_CACHE_DIR", str(blocker))
    c = load_critic("mini", "cpu")
    assert type(c.model).__name__ == "BertTagger"
    assert list(tmp_path.iterdir()) == [blocker]  # no temporary file left behind


def test_cache_key_covers_base_delta_dtype_and_version(monkeypatch):
    k = merged.cache_key("a" * 64, "b" * 64, torch.float32)
    assert k != merged.cache_key("c" * 64, "b" * 64, torch.float32)
    assert k != merged.cache_key("a" * 64, "c" * 64, torch.float32)
    assert k != merged.cache_key("a" * 64, "b" * 64, torch.bfloat16)
    monkeypatch.setattr(merged, "MERGE_VERSION", merged.MERGE_VERSION + 1)
    assert k != merged.cache_key("a" * 64, "b" * 64, torch.float32)


# ---------------------------------------------------------------- the fast exit (cli.run)


def _cprs(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`python -m cprs_cli ...` (cli.run, as the `cprs` script), with a sitecustomize that
    registers an atexit handler: it must still run when the process ends by os._exit."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    marker = tmp_path / "atexit-ran"
    (site / "sitecustomize.py").write_text(
        f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').close())\n")
    env = {**os.environ, "CPRS_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "cprs_cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


def test_compress_ends_fast_with_everything_written(tiny_encoder_critic_dir, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    r = _cprs(["compress", str(doc), "-q", QUERY, "--model", str(tiny_encoder_critic_dir),
               "--max-tokens", "2000", "-f", "json"], tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)  # all of stdout arrived (a result of many KB)
    assert len(r.stdout) > 8000 and result["stats"]["output_tokens"] > 1000
    assert "input" in r.stderr and "tokens" in r.stderr  # the stats table on stderr too
    assert (tmp_path / "atexit-ran").exists()


def test_compress_exit_codes_survive_the_fast_exit(tiny_encoder_critic_dir, tmp_path):
    r = _cprs(["compress", str(tmp_path / "missing.txt"), "-q", "x", "--model", str(tiny_encoder_critic_dir)],
              tmp_path)
    assert r.returncode == 3 and "cprs: error:" in r.stderr
    assert (tmp_path / "atexit-ran").exists()
    r = _cprs(["compress", "-q", "x", "--rate", "2"], tmp_path)  # a usage error: exit 2
    assert r.returncode == 2 and "--rate" in r.stderr
