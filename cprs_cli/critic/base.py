"""The critic interface: token windows in, per-token B/I/O/E probabilities out."""

from __future__ import annotations

import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

IGNORE = -100  # the label of a token that is not scored (prompt tokens, padding)
PROMPT_CACHE = 1024  # prompts whose token ids a critic remembers (`Critic.prompt`)


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from ..errors import UsageError

        raise UsageError(f"device {device}: CUDA is not available on this machine", params=("device",))
    return dev


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read): torch exposes
    only the AVX level, and a CPU-feature package would be a dependency for a few flags."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (AVX-512 BF16 or AMX), where
    oneDNN runs bf16 matmuls at about twice the fp32 speed. Elsewhere bf16 is emulated and slower
    than fp32."""
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_vnni() -> bool:
    """Whether this CPU has int8 dot products that accumulate in int32 (AVX-512 VNNI, AVX-VNNI
    or AMX): int8 matmuls then need no guard against int16 overflow (`int8.py`)."""
    return bool(_cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


# CPRS_CPU_DTYPE's values (and their aliases) → the precision they name
CPU_PRECISIONS = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                  "auto": "auto", "int8": "int8"}


def cpu_precision() -> str:
    """`CPRS_CPU_DTYPE`, read: "float32" (unset or empty: the default), "bfloat16", "auto" or
    "int8". Any other value is a UsageError (exit 2) naming the variable and what it takes,
    rather than a silent fp32 run that looks like the precision asked for. Read on CPUs only:
    GPUs run bf16 whatever it says (`default_dtype`)."""
    raw = os.environ.get("CPRS_CPU_DTYPE", "").strip().lower()
    if not raw:
        return "float32"
    if raw not in CPU_PRECISIONS:
        from ..errors import UsageError

        raise UsageError(f"CPRS_CPU_DTYPE={raw!r} is not a CPU precision: expected float32, bfloat16, "
                         "auto or int8 (or leave it unset for float32)")
    return CPU_PRECISIONS[raw]


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs; on CPUs what `CPRS_CPU_DTYPE` says (`cpu_precision`), fp32 by default:
    `bfloat16` (bf16 on any CPU), `auto` (bf16 where the CPU has native bf16,
    `cpu_has_native_bf16`) or `int8` (fp32 weights, whose Linear layers the loader then
    quantises: `cpu_int8`). On this project's CPU bf16 runs `mini` about 1.4× as fast as fp32
    (docs/speed.md); the default stays fp32 until every quality row holds with a faster path."""
    if device.type == "cuda":
        return torch.bfloat16
    precision = cpu_precision()
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return torch.float32


def cpu_int8(device: torch.device) -> bool:
    """Whether an encoder critic loaded on `device` gets int8 Linear layers (`CPRS_CPU_DTYPE=int8`
    on a CPU; `int8.quantize_linears`). GPUs ignore the variable."""
    return device.type == "cpu" and cpu_precision() == "int8"


class Critic(ABC):
    """A loaded critic model with its tokenizer.

    Windows are `prefix + context + suffix` token ids: `prompt_ids()` returns the prefix and
    suffix for an instruction and query in this critic's own prompt format.
    """

    name: str
    sha256: str
    kind: str
    tokenizer: Any  # a transformers fast tokenizer
    device: torch.device
    max_positions: int  # longest input the model accepts (prompt included)
    default_window_tokens: int  # context tokens per window by default
    default_batch_size: int
    max_query_tokens: int | None = None  # the query is cut to this many tokens in the prompt

    def __init__(self, model, tokenizer, *, name: str, sha256: str, device: torch.device,
                 thresholds: dict | None = None, dynamic=None, lexical_weight: float | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name, self.sha256, self.device = name, sha256, device
        # calibrated keep-probability thresholds per task preset (critic.json "thresholds");
        # empty = argmax tagging, as in the official model
        self.thresholds: dict = dict(thresholds or {})
        # dynamic mode's per-document rule (a select.DynamicPolicy) and the BM25 weight of
        # budgeted ranking (critic.json "dynamic" / "lexical_weight"); without a calibrated
        # rule, dynamic mode uses the tags
        self.dynamic = dynamic
        from ..select import DEFAULT_LEXICAL_WEIGHT

        self.lexical_weight = DEFAULT_LEXICAL_WEIGHT if lexical_weight is None else float(lexical_weight)

    def threshold_for(self, task: str | None) -> float | None:
        t = self.thresholds
        return t.get(task or "facts", t.get("default"))

    @property
    def precision(self) -> str:
        """What the forward pass runs in, for reports: "int8" when the Linear layers are
        dynamically quantised (`int8.quantize_linears`), else the weights' dtype ("float32",
        "bfloat16"). The first parameter's dtype alone would say float32 for int8."""
        if getattr(self.model, "cprs_int8", False):
            return "int8"
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    def text_ids(self, text: str) -> list[int]:
        """Token ids of user text (an instruction, a query): special-token strings such as
        "[SEP]" or "<|im_start|>" in it are plain text, never the real special tokens, so no
        text can rewrite the prompt's structure. The documents' tokenizer does it
        (`windows.document_tokenizer`): one copy of the Rust tokenizer with that setting, rather
        than the wrapper's flag set per call on the tokenizer the prompt's frame also uses."""
        from ..windows import document_tokenizer

        return list(document_tokenizer(self.tokenizer).encode(text, add_special_tokens=False).ids)

    def query_tokens(self, query: str) -> int:
        """How many tokens the query has as the prompt tokenises it (before the cut)."""
        return len(self.text_ids(query))

    @abstractmethod
    def prompt_ids(self, instruction: str, query: str) -> tuple[list[int], list[int]]:
        """Token ids placed before and after each window's context tokens."""

    def prompt(self, instruction: str, query: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """`prompt_ids`, remembered for the last PROMPT_CACHE prompts: a corpus of short
        documents often repeats one instruction and a few queries, and each prompt costs five
        tokenizer calls."""
        cache = self.__dict__.setdefault("_prompts", {})
        key = (instruction, query)
        hit = cache.get(key)
        if hit is None:
            prefix, suffix = self.prompt_ids(instruction, query)
            hit = (tuple(prefix), tuple(suffix))
            if len(cache) >= PROMPT_CACHE:
                cache.clear()
            cache[key] = hit
        return hit

    @abstractmethod
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, length, 4) tag logits; `attention_mask` None: no row is padded."""

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (getattr(tok, "pad_token_id", None), getattr(tok, "eos_token_id", None)):
            if cand is not None:
                return int(cand)
        return 0

    def pad_batch(self, windows, labels=None):
        """Right-pad token id sequences to the longest: (ids, attention mask[, labels]) as CPU
        long tensors. Labels, when given, are padded with IGNORE.

        `predict` and the training collate use it; `Compressor` builds its batches straight from
        each document's id array in the same layout. cprs always pads on the right (the hybrid
        critic's masks rely on it).
        """
        length = max(len(w) for w in windows)
        ids = torch.full((len(windows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), length), dtype=torch.long)
        out_labels = None if labels is None else torch.full((len(windows), length), IGNORE, dtype=torch.long)
        for i, w in enumerate(windows):
            ids[i, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.int64))
            mask[i, : len(w)] = 1
            if out_labels is not None:
                out_labels[i, : len(w)] = torch.as_tensor(np.asarray(labels[i], dtype=np.int64))
        return (ids, mask) if out_labels is None else (ids, mask, out_labels)

    @torch.inference_mode()
    def predict(self, windows: list[list[int]], spans: list[tuple[int, int]]) -> list[np.ndarray]:
        """Probabilities (n_i, 4) for the tokens `windows[i][spans[i][0]:spans[i][1]]`: one
        forward pass for the whole batch, right-padded to its longest window (`launch`)."""
        ids, _ = self.pad_batch(windows)
        probs = self.launch(ids.numpy(), np.array([len(w) for w in windows], dtype=np.int64))()
        return [probs[i, s:e].astype(np.float32) for i, (s, e) in enumerate(spans)]

    @torch.inference_mode()
    def launch(self, ids: np.ndarray, lengths: np.ndarray):
        """Start the critic on one right-padded batch, `ids` (B, L) with `lengths` (B,) real
        tokens per row; returns a function that waits for the result, (B, L, 4) probabilities.

        On a GPU this returns as soon as the work is queued, so the caller builds the next batch
        while this one runs: the ids go up from pinned host memory without blocking, the mask is
        built on the device from the lengths (none at all when no row is padded, which lets sdpa
        pick its fastest kernel), the softmax runs there, and one device-to-host copy per batch
        brings back fp16 probabilities (8 bytes a token) into pinned memory. On a CPU it computes
        at once (float32)."""
        batch, length = ids.shape
        t = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        cuda = self.device.type == "cuda"
        if cuda:
            t = t.pin_memory().to(self.device, non_blocking=True)
        mask = None
        if bool((lengths < length).any()):
            lens = torch.from_numpy(np.asarray(lengths, dtype=np.int64))
            if cuda:
                lens = lens.pin_memory().to(self.device, non_blocking=True)
            mask = (torch.arange(length, device=t.device)[None, :] < lens[:, None]).long()
        probs = torch.softmax(self.logits(t, mask).float(), dim=-1)
        if not cuda:
            out = probs.numpy()
            return lambda: out
        host = torch.empty((batch, length, 4), dtype=torch.float16, pin_memory=True)
        host.copy_(probs.half(), non_blocking=True)
        done = torch.cuda.Event()
        # on this critic's device's stream: the current device is per thread, and a worker
        # thread driving cuda:1 still has cuda:0 as its current device
        done.record(torch.cuda.current_stream(self.device))

        def wait() -> np.ndarray:
            done.synchronize()
            return host.numpy()

        return wait

    def replicate(self, device: torch.device) -> Critic:
        """The same critic on another device (a copy of the model there; tokenizer and settings
        shared), for one worker per GPU (`Compressor(device="cuda:0,1")`)."""
        import copy

        other = copy.copy(self)
        other.model = copy.deepcopy(self.model).to(device).eval()
        other.device = device
        return other


def resolve_devices(device: str | None = "auto") -> list[torch.device]:
    """The devices a `--device` value names: "auto", "cpu", "cuda:N" or a single device as for
    `resolve_device`; "cuda" means every visible GPU, and "cuda:0,1" those GPUs."""
    value = (device or "auto").strip().lower()
    if value == "cuda" and torch.cuda.is_available():
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if value.startswith("cuda:") and "," in value:
        from ..errors import UsageError

        parts = [x.strip() for x in value[5:].split(",") if x.strip()]
        if not all(x.isdigit() for x in parts):
            raise UsageError(f"device {device}: expected cuda:N,M... with GPU numbers", params=("device",))
        indices = [int(x) for x in parts]
        devices = [resolve_device(f"cuda:{i}") for i in dict.fromkeys(indices)]
        count = torch.cuda.device_count()
        for d in devices:
            if d.index is not None and d.index >= count:
                raise UsageError(f"device {device}: this machine has {count} GPU(s)", params=("device",))
        return devices
    return [resolve_device(value)]


# a digest is cached only for files whose last change is at least this old (see hash_files)
RACY_NS = 2_000_000_000


def file_identity(path: Path) -> str:
    """What the hash cache keys a file by: its real path, device, inode, size, mtime and ctime.

    mtime alone can be forged (`touch -r`), but the kernel sets ctime to the current time on
    every write, rename or `utime` and offers no call to set it back, so a file changed in place
    (even with its size and mtime restored) or swapped for another gets a new key and is hashed
    again. Only someone who can reset the system clock, or write the cache itself (which lives
    with the user's own files, as trusted as the installed package), could get past this.
    """
    st = path.stat()
    return (f"{path.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|"
            f"{st.st_ctime_ns}")


def hash_files(paths: list[Path]) -> str:
    """sha256 over the given files' bytes, in order (streamed: weights can be many GB).

    The digest is cached beside the user's other cprs files, keyed by each file's identity
    (`file_identity`: path, inode, size, mtime and ctime), so a 15 GB checkpoint is hashed once,
    not on every run, and a file tampered with in place is hashed again.
    """
    from .registry import cache_dir

    started = time.time_ns()
    key = hashlib.sha256(b"cprs-hash-cache-v2")
    newest_change = 0
    for p in paths:
        key.update(file_identity(p).encode() + b"\n")
        newest_change = max(newest_change, p.stat().st_ctime_ns)
    cache_file = cache_dir() / "hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    k = key.hexdigest()
    if k in cache:
        return cache[k]
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    cache[k] = digest.hexdigest()
    # "Racy" files (git's term) are not cached: timestamps have a coarse clock tick, so a file
    # changed within the same tick as the hashing could keep its ctime; hash it again next time.
    if started - newest_change < RACY_NS:
        return cache[k]
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return cache[k]
