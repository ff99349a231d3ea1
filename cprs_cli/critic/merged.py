"""A cache of shipped critics' merged weights: base + delta, in the dtype the critic runs in.

Why: the shipped `mini` delta stores its trained layers in fp16 and the critic runs in fp32, so
every load converted about nine million weights; with both cores busy each conversion is an
OpenMP region that waits for a free core, and the conversions took 0.5 s of a start-up budget of
1.5 s (docs/speed.md, "Start-up"). The merged state, written once as one safetensors file in
the critic's dtype, loads with no arithmetic at all.

A cached file must never change what the critic computes, so it is trusted only when
* its name carries the key: the sha256 of the verified base, the sha256 of the delta, the dtype
  and `MERGE_VERSION` (raise it whenever `merge_delta`, `loader.base_state` or what is done to
  the state here changes);
* its manifest (`<name>.json`) records that key and the file's sha256, and the file's bytes have
  that digest (`hash_files`, cached by file identity, so the 90 MB are hashed once, not per run,
  and a file changed in any way is hashed again).
Anything else (no manifest, another key, a digest mismatch, a file safetensors cannot read) is
rebuilt from base and delta and written again, atomically (a temporary file renamed into place,
then the manifest). A cache that cannot be written only costs the merge next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .base import hash_files
from .registry import cache_dir

MERGE_VERSION = 1


def cache_key(base_sha256: str, delta_sha256: str, dtype: torch.dtype) -> str:
    """What a merged file depends on, as one digest."""
    parts = f"cprs-merged-v{MERGE_VERSION}|{base_sha256}|{delta_sha256}|{dtype}"
    return hashlib.sha256(parts.encode()).hexdigest()


def cache_path(name: str, key: str) -> Path:
    return cache_dir() / "merged" / f"{name}-{key[:32]}.safetensors"


def as_dtype(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating-point tensors in `dtype` (what the model's `.to(dtype)` would make of them);
    integer buffers as they are."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def _cached(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    from safetensors.torch import load_file

    try:
        manifest = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if manifest.get("key") != key or manifest.get("version") != MERGE_VERSION:
            return None
        if hash_files([path]) != manifest.get("sha256"):
            return None
        return load_file(str(path))
    except Exception:  # noqa: BLE001 - a missing, unreadable or corrupt cache is rebuilt, never trusted
        return None


def _write(path: Path, key: str, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    man_tmp = path.with_name(f"{path.stem}.{os.getpid()}.json.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        os.replace(tmp, path)
        man_tmp.write_text(json.dumps({"key": key, "version": MERGE_VERSION, "sha256": digest.hexdigest()}))
        os.replace(man_tmp, path.with_suffix(".json"))
    except Exception:  # noqa: BLE001 - a read-only or full cache only costs the merge next time
        for f in (tmp, man_tmp):
            with contextlib.suppress(OSError):
                f.unlink()


def merged_state(name: str, base_sha256: str, delta_sha256: str, dtype: torch.dtype,
                 merge: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The merged state in `dtype`: from the cache when a verified file is there, else
    `as_dtype(merge(), dtype)`, which is then cached."""
    key = cache_key(base_sha256, delta_sha256, dtype)
    path = cache_path(name, key)
    state = _cached(path, key)
    if state is not None:
        return state
    state = as_dtype(merge(), dtype)
    _write(path, key, state)
    return state
