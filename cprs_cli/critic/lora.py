"""Low-rank adapters: trained on the GPU, shipped as small deltas, merged at load time.

Hand-written rather than taken from `peft`: the runtime only needs the merge
(W += scale * B @ A, a few lines), and `peft` would pull `accelerate` and more into every
install of a command-line tool. Training uses the `LoRALinear` wrapper below.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update (B @ A) * scale."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        for p in self.base.parameters():
            p.requires_grad_(False)
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=dev, dtype=dt))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=dev, dtype=dt))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale


def add_lora(module: nn.Module, names: tuple[str, ...], rank_for, alpha_ratio: float = 2.0) -> list[str]:
    """Wrap every `nn.Linear` whose attribute name is in `names`.

    `rank_for(qualified_name) -> int` picks the rank per module (0 = leave it alone).
    Returns the qualified names of the wrapped linears.
    """
    wrapped = []
    for qual, mod in list(module.named_modules()):
        for child_name, child in list(mod.named_children()):
            if child_name in names and isinstance(child, nn.Linear):
                full = f"{qual}.{child_name}" if qual else child_name
                rank = rank_for(full)
                if rank > 0:
                    setattr(mod, child_name, LoRALinear(child, rank, alpha_ratio * rank))
                    wrapped.append(full)
    return wrapped


def lora_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters as `lora_A.<linear>.weight` / `lora_B.<linear>.weight` (+ scale per linear)."""
    out = {}
    for qual, mod in module.named_modules():
        if isinstance(mod, LoRALinear):
            key = f"{qual}.weight"
            out[f"lora_A.{key}"] = mod.lora_A.detach()
            out[f"lora_B.{key}"] = (mod.lora_B.detach() * mod.scale)  # scale folded into B
    return out


def unwrap_lora(module: nn.Module) -> None:
    """Merge every LoRALinear into its base linear, in place (for export and evaluation)."""
    for mod in list(module.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, LoRALinear):
                with torch.no_grad():
                    delta = (child.lora_B.float() @ child.lora_A.float()) * child.scale
                    child.base.weight += delta.to(child.base.weight.dtype)
                setattr(mod, child_name, child.base)


def merge_delta(state: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply a shipped delta to a base state dict.

    Keys `full.<name>` replace `<name>`; pairs `lora_A.<name>` / `lora_B.<name>` add
    `B @ A` (scale already folded into B) to `<name>`.
    """
    out = dict(state)
    for key, value in delta.items():
        if key.startswith("full."):
            out[key[len("full."):]] = value
    for key, a in delta.items():
        if key.startswith("lora_A."):
            name = key[len("lora_A."):]
            b = delta["lora_B." + name]
            if name not in out:
                raise KeyError(f"delta adapts {name}, which the base model lacks")
            w = out[name]
            out[name] = (w.float() + b.float() @ a.float()).to(w.dtype)
    return out
