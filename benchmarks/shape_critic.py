"""A critic directory of a shipped critic's exact shape with random weights, for speed runs.

Speed does not depend on the weights, and the GPU machine cannot reach the base packages'
weights without carrying them (90 MB for mini's base, 270 MB for small's converted GGUF). So:

    # here, where the critics are installed: config + tokenizer only (a few MB)
    .venv/bin/python benchmarks/shape_critic.py export mini .stage/shapes/mini
    .venv/bin/python benchmarks/shape_critic.py export small .stage/shapes/small
    # there: random bf16 weights of that shape, written into the folder
    python3 benchmarks/shape_critic.py weights .stage/shapes/mini

after which `--model .stage/shapes/mini` loads like any critic directory (`cprs compress`,
`cprs corpus`, `Compressor(model=...)`), at the shipped critic's exact shape, window size and
tokenizer. Its outputs mean nothing; its speed is the shipped critic's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def export(name: str, out: Path) -> None:
    from cprs_cli.critic.loader import _load_tokenizer, base_model_dir, critic_config
    from cprs_cli.critic.registry import CRITICS

    spec = CRITICS[name]
    base = base_model_dir(spec)
    config = critic_config(spec, base, spec.meta().get("config", {}))
    config.cprs_critic = spec.kind
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    _load_tokenizer(base).save_pretrained(str(out))
    print(f"{out}: config and tokenizer of {name} ({spec.kind})")


def weights(path: Path, seed: int) -> None:
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForTokenClassification

    from cprs_cli.critic.hybrid import HybridTagger
    from cprs_cli.critic.loader import critic_kind

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    if critic_kind(config) == "encoder":
        model = AutoModelForTokenClassification.from_config(config, trust_remote_code=False)
    else:
        model = HybridTagger(config)
    # clone: safetensors refuses tensors that share storage (tied embeddings)
    state = {k: v.detach().to(torch.bfloat16).contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    n = sum(v.numel() for v in state.values())
    print(f"{path}: {n / 1e6:.1f}M random parameters (bf16)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="config + tokenizer of a shipped critic")
    e.add_argument("name")
    e.add_argument("out", type=Path)
    w = sub.add_parser("weights", help="random weights into an exported folder")
    w.add_argument("path", type=Path)
    w.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "export":
        export(a.name, a.out)
    else:
        weights(a.path, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
