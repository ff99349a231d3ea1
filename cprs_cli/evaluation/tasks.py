"""The benchmark's task suite, sized in cl100k tokens.

Synthetic RULER-style tasks come from :mod:`.synthetic`; ``qa`` hides one real QA record
(SQuAD 2.0 or HotpotQA, read by :mod:`.qa` from the data directory) among other records'
documents (`qa.pack`). Everything is seeded: the same (seed, task, length, sample, depth) gives
the same item.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path

from cprs_cli.instructions import GRANULARITY_FOR_LEVEL

from . import qa, synthetic
from .metrics import count_tokens

__all__ = [
    "BenchItem",
    "BENCH_TASKS",
    "GRANULARITY",
    "find_data_dir",
    "make_item",
    "build_suite",
]

BENCH_TASKS = (
    "niah_single",
    "niah_multikey",
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
    "fwe",
    "qa",
)
KNOWN_TASKS = (*synthetic.ALL_TASKS, "qa")

# what the critic is asked to keep at: sentences for needles / chains / facts; words where the
# evidence is token-level (key-value pairs inside a JSON block, word lists)
GRANULARITY = {
    **{t: GRANULARITY_FOR_LEVEL[level] for t, level in synthetic.EVIDENCE_LEVEL.items()},
    "qa": "sentence",
}

# first guess of characters per cl100k token; one regeneration corrects it
_CHARS_PER_TOKEN = {"kv": 3.6, "cwe": 2.9, "fwe": 2.4, "qa": 4.4}
_DEFAULT_CPT = 4.3
QA_SOURCES = ("squad2", "hotpotqa")


@dataclass
class BenchItem:
    task: str
    length: int  # requested size in cl100k tokens
    sample: int
    depth: float | None  # requested needle depth (None: random)
    query: str
    document: str
    answers: list[str]
    instruction_task: str  # key into cprs_cli.instructions.TASKS
    granularity: str
    evidence: list[tuple[int, int]]
    input_tokens: int
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        d = "r" if self.depth is None else f"{self.depth:.2f}"
        return f"{self.task}/{self.length}/{d}/{self.sample}"


# --------------------------------------------------------------------------------------------
# qa data


def find_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The data directory (`qa.resolve_data_dir`: `data_dir`, else `$CPRS_DATA`, else
    `../shared/data`) if it holds a squad2 or hotpotqa file, else None."""
    d = qa.resolve_data_dir(data_dir)
    return d if any((d / f"{s}.jsonl.gz").exists() for s in QA_SOURCES) else None


@functools.lru_cache(maxsize=2)
def _qa_records(data_dir: str) -> tuple[tuple[dict, ...], tuple[str, ...]]:
    """(usable target records, distinct distractor documents). A target is answerable and has
    an answer of 3+ characters (not yes/no) that occurs in its document."""
    targets: list[dict] = []
    docs: dict[str, None] = {}
    have = [name for name in QA_SOURCES if (Path(data_dir) / f"{name}.jsonl.gz").exists()]
    for r in qa.load_records(have, data_dir):
        docs.setdefault(r.document, None)
        if not r.answerable or not r.evidence:
            continue
        low = r.document.lower()
        # substring scoring needs answers that cannot match by accident: no yes/no,
        # nothing shorter than 3 characters ("8" would match any number with an 8)
        answers = [a.strip() for a in r.answers
                   if a and len(a.strip()) >= 3 and a.strip().lower() not in ("yes", "no")
                   and a.strip().lower() in low]
        if not answers:
            continue
        targets.append({
            "id": r.id, "source": r.source, "query": r.query, "document": r.document,
            "evidence": list(r.evidence), "answers": answers, "level": r.evidence_level,
        })
    return tuple(targets), tuple(docs)


def _paragraph_offsets(doc: str) -> list[tuple[int, int]]:
    out = []
    pos = 0
    for p in doc.split("\n\n"):
        out.append((pos, pos + len(p)))
        pos += len(p) + 2
    return out


def _target_piece(rec: dict, max_chars: int) -> tuple[str, list[tuple[int, int]]] | None:
    """The record's document, or the run of its paragraphs that holds all its evidence."""
    doc = rec["document"]
    if len(doc) <= max_chars:
        return doc, list(rec["evidence"])
    paras = _paragraph_offsets(doc)
    s0 = min(s for s, _ in rec["evidence"])
    e0 = max(e for _, e in rec["evidence"])
    first = max(i for i, (ps, _) in enumerate(paras) if ps <= s0)
    last = min(i for i, (_, pe) in enumerate(paras) if pe >= e0)
    start, end = paras[first][0], paras[last][1]
    if end - start > max_chars:
        return None
    return doc[start:end], [(s - start, e - start) for s, e in rec["evidence"]]


def _make_qa(length_chars: int, rng: random.Random, data_dir: Path) -> synthetic.Example:
    targets, docs = _qa_records(str(data_dir))
    if not targets:
        raise RuntimeError(f"no answerable squad2/hotpotqa records in {data_dir}")
    for _ in range(100):
        rec = targets[rng.randrange(len(targets))]
        piece = _target_piece(rec, max(length_chars // 2, 2000))
        if piece is not None:
            break
    else:  # pragma: no cover - only with tiny lengths and long documents
        raise RuntimeError("no QA record fits the requested length")
    text, evidence = piece
    answers_low = [a.lower() for a in rec["answers"]]
    budget = length_chars - len(text)
    fillers: list[str] = []
    order = list(range(len(docs)))
    rng.shuffle(order)
    for i in order:
        if budget <= 200:
            break
        d = docs[i]
        if d == rec["document"] or text in d:
            continue
        low = d.lower()
        if any(a in low for a in answers_low):  # no accidental answers among the distractors
            continue
        if len(d) + 2 > budget:  # cut at a paragraph end
            keep = [p for p in _paragraph_offsets(d) if p[1] + 2 <= budget]
            if not keep:
                continue
            d = d[: keep[-1][1]]
        fillers.append(d)
        budget -= len(d) + 2
    document, shifted, offset = qa.pack(text, evidence, fillers, rng.randint(0, len(fillers)))
    ev = sorted(shifted)
    instruction_task = "answers" if rec["level"] == "token" else "facts"
    meta = {"source": rec["source"], "record_id": rec["id"], "depths": [offset / max(len(document), 1)],
            "distractors": len(fillers)}
    return synthetic.Example("qa", rec["query"], document, ev, list(rec["answers"]), instruction_task, meta)


# --------------------------------------------------------------------------------------------
# items


def _example(task: str, length_chars: int, rng: random.Random, depth: float | None,
             data_dir: Path | None) -> synthetic.Example:
    if task == "qa":
        found = find_data_dir(data_dir)
        if found is None:
            raise RuntimeError(f"qa needs squad2 or hotpotqa records in {qa.resolve_data_dir(data_dir)} "
                               "(give a data directory or set CPRS_DATA)")
        return _make_qa(length_chars, rng, found)
    return synthetic.make_example(task, length_chars, rng, depth=depth)


def make_item(task: str, length_tokens: int, seed: int = 0, sample: int = 0, depth: float | None = None,
              data_dir: Path | None = None) -> BenchItem:
    """One item of about `length_tokens` cl100k tokens (within ~10% after one correction)."""
    if task not in KNOWN_TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(KNOWN_TASKS)}")
    d = "r" if depth is None else f"{depth:.4f}"
    seed_str = f"cprs-bench:{seed}:{task}:{length_tokens}:{sample}:{d}"
    chars = int(length_tokens * _CHARS_PER_TOKEN.get(task, _DEFAULT_CPT))
    ex = _example(task, chars, random.Random(seed_str), depth, data_dir)
    n = count_tokens(ex.document)
    if abs(n - length_tokens) > 0.05 * length_tokens:
        chars = max(int(chars * length_tokens / max(n, 1)), 200)
        ex = _example(task, chars, random.Random(seed_str), depth, data_dir)
        n = count_tokens(ex.document)
    return BenchItem(
        task=task, length=length_tokens, sample=sample, depth=depth, query=ex.query,
        document=ex.document, answers=list(ex.answers), instruction_task=ex.instruction_task,
        granularity=GRANULARITY.get(task, "sentence"), evidence=list(ex.evidence), input_tokens=n,
        meta=dict(ex.meta),
    )


def build_suite(tasks: list[str], lengths: list[int], samples: int, seed: int = 0,
                depths: list[float] | None = None, data_dir: Path | None = None,
                depth_samples: int | None = None) -> tuple[list[BenchItem], list[str]]:
    """All items: `samples` per (task, length); niah_single instead runs `depth_samples`
    (default `samples`) per depth of the heat-map grid `depths`, when given. Returns (items,
    notes about skipped tasks)."""
    notes: list[str] = []
    items: list[BenchItem] = []
    for task in tasks:
        if task == "qa":
            if find_data_dir(data_dir) is None:
                notes.append(f"qa skipped: no squad2/hotpotqa records in {qa.resolve_data_dir(data_dir)} "
                             "(give --data-dir or set CPRS_DATA)")
                continue
        for length in lengths:
            on_grid = task == "niah_single" and bool(depths)
            grid: list[float | None] = list(depths or []) if on_grid else [None]
            n = (depth_samples or samples) if on_grid else samples
            for depth in grid:
                for i in range(n):
                    items.append(make_item(task, length, seed, i, depth, data_dir))
    return items, notes
