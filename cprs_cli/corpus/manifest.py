"""The manifest of a corpus output directory: which run wrote it, and which file holds which rows.

`_cprs_manifest.json` is written (atomically) before the first shard. It holds the run's
*identity* — the options for every row, the critic (name, sha256 of its weights and the
calibrated selection settings that its `critic.json` adds, which the weights' hash does not
cover), the input files (path, size, mtime), the shard sizes and the output format — with
`run_key`, the sha256 of that identity, and the shard plan: for each output `part-NNNNNN.*`, the
input file and row range it holds.

A rerun with the same identity reuses the plan without reading the inputs again and skips every
shard whose output file exists: each is written whole under its final name or not at all, so
existing means done. A rerun with another identity (a changed option, critic or input file) is
refused with a line that says what changed, instead of mixing the results of two runs in one
directory; the user picks a new output directory or deletes the old one (cprs never deletes
results). A lock file keeps two runs off one directory at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

from ..errors import InputError, UsageError
from ..output import TEMP_PREFIX, TEMP_SUFFIX, write_atomic
from .shards import Shard

# "_"-prefixed, like Spark's _SUCCESS: pyarrow and Ray Data readers of the directory pass it over
MANIFEST_NAME = "_cprs_manifest.json"
LOCK_NAME = ".cprs-corpus.lock"
MANIFEST_VERSION = 1

# what each part of the identity is called when it differs
_PARTS = {"options": "the options", "model": "the critic", "inputs": "the input files",
          "sharding": "the shard sizes", "format": "the output format", "version": "the manifest version"}


def run_key(identity: dict) -> str:
    """sha256 of the identity's canonical JSON."""
    blob = json.dumps(identity, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _difference(old: dict, new: dict) -> str:
    """What changed between two identities, in a few words."""
    parts = []
    for part in sorted(set(old) | set(new), key=lambda p: list(_PARTS).index(p) if p in _PARTS else 99):
        a, b = old.get(part), new.get(part)
        if a == b:
            continue
        what = _PARTS.get(part, part)
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            detail = ", ".join(f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in keys[:3])
            parts.append(f"{what} ({detail})")
        else:
            parts.append(what)
    return "; ".join(parts) or "the run"


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "…"


class Output:
    """An output directory held by one run (the lock is released by `close`, or when the
    process ends, however it ends)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._lock_fd: int | None = None

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    def lock(self) -> None:
        """Create the directory if needed and take its lock; raise UsageError if another run
        holds it."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"cannot use it as the output directory ({err.strerror or err})",
                             str(self.dir)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError("another cprs corpus run is writing to this directory", str(self.dir)) from None
        self._lock_fd = fd
        # temporary files of a run that was killed while it wrote a shard: never a result
        for tmp in self.dir.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            try:
                tmp.unlink()
            except OSError:
                pass

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> dict | None:
        """The manifest, None when there is none; raises when the directory holds other files
        (it is not a cprs corpus output) or an unreadable manifest."""
        path = self.manifest_path
        if not path.exists():
            others = [p.name for p in self.dir.iterdir() if p.name != LOCK_NAME
                      and not (p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX))]
            if others:
                raise UsageError(f"not empty and holds no {MANIFEST_NAME} (found {others[0]}); "
                                 "give a new or empty --output directory", str(self.dir))
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "identity" not in data or "shards" not in data:
                raise ValueError("not a cprs corpus manifest")
        except (OSError, ValueError) as err:
            raise InputError(f"unreadable manifest ({err})", str(path)) from None
        return data

    def shards_for(self, identity: dict, plan) -> list[Shard]:
        """The shard plan of this run: the manifest's when it was written by the same run
        (same `run_key`), else a new one from `plan()`, written to a new manifest. Raises
        UsageError when the manifest is another run's."""
        key = run_key(identity)
        data = self.load()
        if data is not None:
            if data.get("run_key") != key:
                raise UsageError(
                    f"holds the results of another run: {_difference(data.get('identity', {}), identity)} "
                    "changed; give a new --output directory, or delete this one to start over",
                    str(self.dir))
            return [Shard.from_dict(s) for s in data["shards"]]
        shards = plan()
        fmt = identity["format"]
        manifest = {"manifest_version": MANIFEST_VERSION, "run_key": key, "identity": identity,
                    "shards": [{**s.to_dict(), "output": s.output_name(fmt)} for s in shards]}
        write_atomic(self.manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        return shards

    def done(self, shard: Shard, fmt: str) -> bool:
        return (self.dir / shard.output_name(fmt)).exists()


def written(directory: str | Path) -> tuple[int, int]:
    """(shards written, shards planned) in an output directory, from its manifest and the files
    present: what an interrupted run leaves, counted from the disk (a shard's file may have
    been renamed into place after the driver last heard of it). (0, 0) without a manifest."""
    path = Path(directory) / MANIFEST_NAME
    try:
        shards = json.loads(path.read_text(encoding="utf-8"))["shards"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0
    return sum((Path(directory) / s["output"]).exists() for s in shards), len(shards)
