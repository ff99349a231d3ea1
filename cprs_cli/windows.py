"""Tokenise a document once (with character offsets) and cut it into critic windows.

Each window is `prefix + context tokens + suffix`, where the prefix carries the instruction and
query in the critic's own prompt format. Windows end on sentence boundaries where possible, do
not overlap, and together cover every context token exactly once; so they are independent and
run in parallel batches, and the cost grows linearly with the document.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

# Text is tokenised in pieces of about this many characters, cut at paragraph breaks, so the
# fast tokenizer's batch encoding runs them on all cores and no single call holds a 4 MB string.
PIECE_CHARS = 200_000


@dataclass
class TokenizedDoc:
    ids: np.ndarray  # (n,) int64 token ids of the document (no special tokens)
    offsets: np.ndarray  # (n, 2) int64 character offsets [start, end) into the text

    def __len__(self) -> int:
        return len(self.ids)


def _pieces(text: str, size: int = PIECE_CHARS) -> list[tuple[int, int]]:
    out, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind("\n\n", start + size // 2, end)
            if cut == -1:
                cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        out.append((start, end))
        start = end
    return out


_DOCUMENT_TOKENIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def document_tokenizer(tokenizer):
    """The Rust tokenizer behind `tokenizer`, copied once with `encode_special_tokens` on (and
    no truncation or padding):
    "[SEP]" or "<|im_start|>" written in a document is text, never the real special token (which
    would let a document rewrite the critic's prompt structure).

    A copy, because the transformers wrapper sets that flag on its shared Rust tokenizer at every
    call (`split_special_tokens=...`): with documents tokenised in a worker thread while the
    prompt is built in another, the two calls could see each other's flag. And the Rust batch
    API directly, because the wrapper's conversion of its output to Python lists cost four times
    the tokenising itself on a million-token document (docs/speed.md)."""
    with _LOCK:
        doc_tok = _DOCUMENT_TOKENIZERS.get(tokenizer)
        if doc_tok is None:
            from tokenizers import Tokenizer

            doc_tok = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
            # the wrapper leaves its last call's truncation and padding on the Rust tokenizer,
            # and the copy would inherit them: a document is never truncated or padded
            doc_tok.no_truncation()
            doc_tok.no_padding()
            doc_tok.encode_special_tokens = True
            _DOCUMENT_TOKENIZERS[tokenizer] = doc_tok
        return doc_tok


def tokenize(tokenizer, text: str) -> TokenizedDoc:
    pieces = _pieces(text)
    if not pieces:
        return TokenizedDoc(np.zeros(0, np.int64), np.zeros((0, 2), np.int64))
    encs = document_tokenizer(tokenizer).encode_batch([text[s:e] for s, e in pieces], add_special_tokens=False)
    ids, offs = [], []
    for (s, _), enc in zip(pieces, encs):
        if not enc.ids:
            continue
        ids.append(np.asarray(enc.ids, dtype=np.int64))
        offs.append(np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2) + s)
    if not ids:
        return TokenizedDoc(np.zeros(0, np.int64), np.zeros((0, 2), np.int64))
    return TokenizedDoc(np.concatenate(ids), np.concatenate(offs))


def boundary_tokens(offsets: np.ndarray, char_starts: np.ndarray) -> np.ndarray:
    """Token indices at which a unit (sentence) starts, for units starting at `char_starts`."""
    if len(offsets) == 0 or len(char_starts) == 0:
        return np.zeros(0, np.int64)
    idx = np.searchsorted(offsets[:, 1], char_starts, side="right")
    return np.unique(idx[(idx > 0) & (idx < len(offsets))])


def plan_windows(n_tokens: int, budget: int, cuts: np.ndarray) -> list[tuple[int, int]]:
    """Split [0, n_tokens) into consecutive windows of at most `budget` tokens.

    A window ends at the last allowed cut (sentence start) in its second half when there is
    one, else at the budget.
    """
    if budget < 1:
        raise ValueError("window budget must be at least one token")
    out, start = [], 0
    cuts = np.asarray(cuts, dtype=np.int64)
    while start < n_tokens:
        limit = start + budget
        if limit >= n_tokens:
            end = n_tokens
        else:
            # a cut must lie past `start`, or a budget of 1 would plan (start, start) forever
            lo = np.searchsorted(cuts, start + max(1, budget // 2), side="left")
            hi = np.searchsorted(cuts, limit, side="right")
            end = int(cuts[hi - 1]) if hi > lo else limit
        out.append((start, end))
        start = end
    return out


# the fewest context tokens a window may hold once the prompt is in
MIN_ROOM = 16


@dataclass
class Plan:
    """One document cut into critic windows for one prompt (`plan`)."""

    doc: TokenizedDoc
    windows: list[tuple[int, int]]  # [start, end) token ranges of the document
    prefix: list[int]  # prompt tokens before each window's context
    suffix: list[int]  # and after it

    def window_ids(self, w: int) -> np.ndarray:
        """The full token ids of window `w` (int64): prefix + its context tokens + suffix; the
        context starts at `len(self.prefix)`. The one layout: inference batches
        (`compressor._WindowTable`) and training windows (`training.loop.encode_example`)."""
        s, e = self.windows[w]
        return np.concatenate([np.asarray(self.prefix, dtype=np.int64), self.doc.ids[s:e],
                               np.asarray(self.suffix, dtype=np.int64)])


def plan(critic, text: str, instruction: str, query: str, window_tokens: int,
         sentences: np.ndarray | None = None, doc: TokenizedDoc | None = None) -> Plan:
    """Tokenise `text` and cut it into windows of at most `window_tokens` context tokens (fewer
    when the critic's prompt leaves less room), ending on sentence starts where possible.

    The one window planner: inference (`Compressor`) and training (`train.loop.encode_example`)
    both call it, so the critic is trained on exactly the windows it will see. `sentences`
    (`segment.sentence_spans(text)`) may be passed when the caller has them already, and `doc`
    (`tokenize(critic.tokenizer, text)`) likewise.
    """
    if doc is None:
        doc = tokenize(critic.tokenizer, text)
    if sentences is None:
        from . import segment

        sentences = segment.sentence_spans(text)
    cuts = boundary_tokens(doc.offsets, sentences[:, 0] if len(sentences) else np.zeros(0, np.int64))
    prefix, suffix = critic.prompt(instruction, query)
    room = critic.max_positions - len(prefix) - len(suffix)
    if room < MIN_ROOM:
        raise UsageError("the query is too long for this critic's window")
    return Plan(doc, plan_windows(len(doc), min(window_tokens, room), cuts), list(prefix), list(suffix))
