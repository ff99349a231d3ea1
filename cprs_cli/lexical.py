"""Lexical evidence for selection: BM25 scores of a document's units against the query.

The critic reads windows of a few hundred tokens and judges meaning; it can miss a sentence
whose only claim to relevance is that it repeats the question's rare words, which is exactly
what a retriever catches. Selection fuses the two (`select.fused_scores`), so cprs keeps what a
BM25 retriever would keep *and* what only the critic sees. BM25 comes from `bm25s`, a
maintained library; this module only maps units to its corpus and normalises its scores.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

_IMPORT_LOCK = threading.Lock()
# bm25s's optional accelerators, which cprs never uses (it asks only for `get_scores`)
_ACCELERATORS = ("jax", "numba")
_MODULE = None  # bm25s, once imported


def _bm25s():
    """`import bm25s` without its optional accelerators.

    When JAX is installed, importing bm25s imports it and runs a top-k on it, which on a GPU host
    initialises JAX on the GPU, and JAX's default is to take 75% of the GPU's memory at once: every
    process that scored BM25 (every budgeted compression) left the critic a quarter of the GPU,
    and processes sharing a GPU (`cprs corpus --actors-per-gpu`, `cprs serve --workers`) could run
    out of memory. Numba, likewise optional, costs about a second of import. Both are hidden from
    bm25s while it is imported (a None in `sys.modules` makes `import jax` raise ImportError,
    which bm25s catches); a program that imported either itself keeps it."""
    global _MODULE
    if _MODULE is not None:  # set only once the import has finished (a module still being
        return _MODULE  # imported by another thread is already in sys.modules, half made)
    with _IMPORT_LOCK:
        if _MODULE is None:
            hidden = [name for name in _ACCELERATORS if name not in sys.modules]
            for name in hidden:
                sys.modules[name] = None  # type: ignore[assignment]
            try:
                import bm25s
            finally:
                for name in hidden:
                    if name in sys.modules and sys.modules[name] is None:
                        del sys.modules[name]
            _MODULE = bm25s
    return _MODULE


def bm25_scores(texts: list[str], query: str) -> np.ndarray:
    """BM25 score of every text against `query`, with the texts themselves as the corpus
    (English stopwords removed). All zeros when no query word occurs in any text."""
    if not texts or not query or not query.strip():
        return np.zeros(len(texts), dtype=np.float64)
    bm25s = _bm25s()

    corpus = bm25s.tokenize(texts, stopwords="en", show_progress=False, return_ids=False)
    words = [w for w in bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)[0] if w]
    if not words or not any(corpus):
        return np.zeros(len(texts), dtype=np.float64)
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    words = [w for w in words if w in retriever.vocab_dict]
    if not words:
        return np.zeros(len(texts), dtype=np.float64)
    return np.asarray(retriever.get_scores(words), dtype=np.float64)


def unit_bm25(text: str, units: np.ndarray, query: str, scope: np.ndarray | None = None) -> np.ndarray:
    """BM25 of each character unit of `text`, normalised to [0, 1] by the document's best unit.

    With `scope` (coarser character spans, e.g. sentences for word units), BM25 is computed over
    the scope spans and every unit gets the score of the scope span it starts in.
    """
    if len(units) == 0:
        return np.zeros(0, dtype=np.float64)
    spans = units if scope is None else scope
    raw = bm25_scores([text[s:e] for s, e in spans], query)
    top = raw.max() if len(raw) else 0.0
    norm = raw / top if top > 0 else np.zeros_like(raw)
    if scope is None:
        return norm
    if len(scope) == 0:
        return np.zeros(len(units), dtype=np.float64)
    owner = np.clip(np.searchsorted(scope[:, 0], units[:, 0], side="right") - 1, 0, len(scope) - 1)
    return norm[owner]
