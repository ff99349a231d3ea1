"""Dequantise the SmolLM2 GGUF base into a cached Hugging Face directory (done once per user)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelError


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write config.json, model.safetensors and tokenizer files for `gguf_path` to `out_dir`.

    Uses transformers' GGUF reader (which needs the `gguf` package) for the tensor-name
    mapping and the dequantisation, and writes atomically: a half-converted cache is never seen.
    """
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelError("the `gguf` package is needed to convert the SmolLM2 base: pip install gguf") from None
    import sys

    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    print(f"cprs: converting {gguf_path.name} to a cached model (once)…", file=sys.stderr)
    meta = load_gguf_checkpoint(str(gguf_path), return_tensors=False)
    cfg = dict(meta["config"])
    model_type = cfg.pop("model_type")
    cfg.pop("_model_name_or_path", None)
    config = AutoConfig.for_model(model_type, **cfg)

    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    tensors = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=skeleton)["tensors"]
    state = {k: torch.as_tensor(v).contiguous().float() for k, v in tensors.items()}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"))
        config.save_pretrained(str(tmp))
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                            trust_remote_code=False)
        tok.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
