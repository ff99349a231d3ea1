"""Training and validation data for the token critic.

Reads the project's QA records through the evaluation package's loader
(`cprs_cli.evaluation.qa`: the data directory, the records, the by-document split into train /
val and val's calib / test halves; one rule for training and evaluation alike) and turns the
`train` ones into `TrainExample`s: (instruction, query, document, evidence spans), the unit the
training loop tokenises and labels B/I/O/E.

On top of the plain records it offers

* task augmentation: sentence-level records re-labelled with the "answers" preset (evidence =
  the answer strings inside the evidence sentences) and token-level records re-labelled with the
  "facts" preset (evidence = the sentences that contain the answer spans);
* long-context packing: a record's document hidden among distractor documents of other records,
  so the critic learns that most of a long input is irrelevant;
* hard negatives: a record's document among paragraphs that share the query's words;
* synthetic RULER-style tasks from `cprs_cli.evaluation.synthetic`.

Run `python -m training.data [--data-dir DIR]` for a summary of the sets.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cprs_cli.evaluation.qa import (
    PARAGRAPH_SEP,
    Record,
    Span,
    doc_hash,
    load_split,
    merge_spans,
    pack,
    resolve_data_dir,
)
from cprs_cli.instructions import TASK_FOR_LEVEL, TASKS, level_for_task

AUGMENT_FRACTION = 0.2


# --------------------------------------------------------------------------- examples


@dataclass
class TrainExample:
    instruction: str
    query: str
    document: str
    evidence: list[Span]
    source: str
    level: str
    id: str = ""
    task: str = ""  # the TASKS preset name of `instruction` ("" if free text)
    meta: dict = field(default_factory=dict)

    def evidence_texts(self) -> list[str]:
        return [self.document[s:e] for s, e in self.evidence]


def sentence_spans(text: str) -> list[Span]:
    """`cprs_cli.segment.sentence_spans` as a list of tuples."""
    from cprs_cli.segment import sentence_spans as seg

    return [(int(s), int(e)) for s, e in seg(text)]


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def find_occurrences(text: str, needle: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Occurrences of `needle` in text[start:end] that do not cut a word (whole-word where the
    needle begins/ends with a word character); case-sensitive, else case-insensitive."""
    needle = needle.strip()
    end = len(text) if end is None else end
    if not needle:
        return []
    hay = text[start:end]
    for h, n in ((hay, needle), (hay.lower(), needle.lower())):
        if len(n) != len(needle) or len(h) != len(hay):  # lower() changed lengths: skip
            continue
        found = []
        i = h.find(n)
        while i >= 0:
            a, b = start + i, start + i + len(n)
            ok_left = not (_is_word(needle[0]) and a > 0 and _is_word(text[a - 1]))
            ok_right = not (_is_word(needle[-1]) and b < len(text) and _is_word(text[b]))
            if ok_left and ok_right:
                found.append((a, b))
            i = h.find(n, i + 1)
        if found:
            return found
    return []


def answers_in_evidence(rec: Record | TrainExample, answers: Sequence[str]) -> list[Span]:
    """Occurrences of any answer string inside the evidence spans, merged."""
    occ: list[Span] = []
    for s, e in rec.evidence:
        for a in answers:
            occ.extend(find_occurrences(rec.document, a, s, e))
    return merge_spans(occ)


def sentences_containing(document: str, spans: Sequence[Span]) -> list[Span]:
    """The sentences of `document` that overlap any of `spans` (spans widened to cover the
    whole of each span, should a span straddle a sentence boundary), merged."""
    if not spans:
        return []
    sents = sentence_spans(document)
    out: list[Span] = []
    for s, e in spans:
        hit = [(a, b) for a, b in sents if a < e and s < b]
        if hit:
            out.append((min(min(a for a, _ in hit), s), max(max(b for _, b in hit), e)))
        else:
            out.append((s, e))
    return merge_spans(out)


def to_example(rec: Record, task: str | None = None, evidence: list[Span] | None = None) -> TrainExample:
    task = task or TASK_FOR_LEVEL.get(rec.evidence_level, "facts")
    level = level_for_task(task, rec.evidence_level)
    return TrainExample(
        instruction=TASKS[task],
        query=rec.query,
        document=rec.document,
        evidence=list(rec.evidence if evidence is None else evidence),
        source=rec.source,
        level=level,
        id=rec.id,
        task=task,
        meta={"answers": list(rec.answers)} if rec.answers else {},
    )


def augmented_copy(rec: Record) -> TrainExample | None:
    """The cross-task copy of a record, or None when it has none:
    sentence-level → "answers" (answer strings inside the evidence sentences);
    token-level → "facts" (the sentences containing the answer spans)."""
    if not rec.evidence:
        return None
    if rec.evidence_level == "sentence":
        occ = answers_in_evidence(rec, rec.answers) if rec.answers else []
        if not occ:
            return None
        ex = to_example(rec, task="answers", evidence=occ)
    elif rec.evidence_level == "token":
        ex = to_example(rec, task="facts", evidence=sentences_containing(rec.document, rec.evidence))
    else:
        return None
    ex.id = f"{rec.id}#{ex.task}"
    ex.meta["augmented"] = True
    return ex


def to_examples(
    records: Iterable[Record],
    augment: bool = False,
    rng: random.Random | None = None,
    augment_fraction: float = AUGMENT_FRACTION,
) -> list[TrainExample]:
    """One example per record (instruction = the preset of its evidence level; unanswerable
    records kept with empty evidence). With `augment`, about `augment_fraction` of the records
    that have a cross-task copy also yield it."""
    rng = rng or random.Random(0)
    out: list[TrainExample] = []
    for rec in records:
        out.append(to_example(rec))
        if augment and rng.random() < augment_fraction:
            extra = augmented_copy(rec)
            if extra is not None:
                out.append(extra)
    return out


# --------------------------------------------------------------------------- long packing


def _as_example(x: Record | TrainExample) -> TrainExample:
    return x if isinstance(x, TrainExample) else to_example(x)


def pack_example(
    ex: TrainExample,
    distractors: Sequence[str],
    position: int,
    sep: str = PARAGRAPH_SEP,
) -> TrainExample:
    """`ex.document` inserted at index `position` among `distractors` (joined with `sep`),
    evidence shifted accordingly."""
    document, evidence, off = pack(ex.document, ex.evidence, distractors, position, sep)
    return TrainExample(
        instruction=ex.instruction,
        query=ex.query,
        document=document,
        evidence=evidence,
        source=ex.source,
        level=ex.level,
        id=f"{ex.id}@long",
        task=ex.task,
        meta={**ex.meta, "long": True, "offset": off, "n_distractors": len(distractors)},
    )


def make_long_examples(
    records: Sequence[Record | TrainExample],
    rng: random.Random,
    target_chars: int | tuple[int, int],
    pool: Sequence[Record | TrainExample | str] | None = None,
    max_tries: int = 1000,
) -> list[TrainExample]:
    """For each record: its document among distractor documents of OTHER records (from `pool`,
    default `records`; any source), joined by blank lines, placed at a random position, until the
    whole reaches `target_chars` (an int, or a (lo, hi) range drawn per example). Evidence offsets
    are shifted so `document[s:e]` is still the original evidence text."""
    pool = records if pool is None else pool
    docs: list[str] = []
    seen: set[str] = set()
    for p in pool:
        d = p if isinstance(p, str) else p.document
        h = doc_hash(d)
        if h not in seen:
            seen.add(h)
            docs.append(d)
    out: list[TrainExample] = []
    for rec in records:
        ex = _as_example(rec)
        target = rng.randint(*target_chars) if isinstance(target_chars, tuple) else int(target_chars)
        chosen: list[str] = []
        used = {doc_hash(ex.document)}
        total = len(ex.document)
        tries = 0
        while total < target and tries < max_tries and len(used) < len(docs) + 1:
            tries += 1
            d = docs[rng.randrange(len(docs))] if docs else None
            if d is None:
                break
            h = doc_hash(d)
            if h in used or d in ex.document:
                continue
            used.add(h)
            room = target - total
            if len(d) > room + 2000 and chosen:
                # too long: cut it at a paragraph boundary so the target is not overshot wildly
                cut = d.rfind(PARAGRAPH_SEP, 0, room)
                if cut <= 0:
                    continue
                d = d[:cut]
            chosen.append(d)
            total += len(d) + len(PARAGRAPH_SEP)
        out.append(pack_example(ex, chosen, rng.randint(0, len(chosen))))
    return out


# --------------------------------------------------------------------------- hard negatives

# Words a query shares with a distractor paragraph only count when they carry content: at least
# four characters and not one of the commonest question words (a short hand-picked list, since
# bm25s' stopword list is about scoring, not about what makes a distractor confusable).
_CONTENT_WORD = re.compile(r"[^\W\d_][\w'-]{3,}")
_QUESTION_WORDS = frozenset(
    "what which when where whom whose that this with from were have does than there their they "
    "many much into about been also more most other some such only same both each".split())


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _CONTENT_WORD.findall(text)} - _QUESTION_WORDS


def make_hard_examples(
    examples: Sequence[TrainExample],
    rng: random.Random,
    pool: Sequence[Record | TrainExample | str],
    target_chars: tuple[int, int] = (4_000, 16_000),
    candidates: int = 64,
) -> list[TrainExample]:
    """Hard negatives: each example's document among paragraphs of OTHER documents that share the
    most content words with its query (a retriever would rank them high; the critic must learn
    that sharing the question's words is not answering it). Paragraphs that contain one of the
    example's answers are never used, so no distractor holds the answer."""
    paras: list[str] = []
    seen: set[str] = set()
    for p in pool:
        d = p if isinstance(p, str) else p.document
        for para in d.split(PARAGRAPH_SEP):
            para = para.strip()
            if 80 <= len(para) <= 3_000 and para not in seen:
                seen.add(para)
                paras.append(para)
    index: dict[str, list[int]] = defaultdict(list)
    for i, para in enumerate(paras):
        for w in content_words(para):
            index[w].append(i)
    too_common = max(50, len(paras) // 50)  # a word in 2% of all paragraphs says nothing
    out: list[TrainExample] = []
    for ex in examples:
        counts: Counter = Counter()
        for w in content_words(ex.query):
            ids = index.get(w, ())
            if len(ids) <= too_common:
                counts.update(ids)
        answers = [a.lower() for a in ex.meta.get("answers", [])] + [t.lower() for t in ex.evidence_texts()
                                                                       if len(t) < 80]
        ranked = [i for i, _ in counts.most_common(candidates)]
        rng.shuffle(ranked)
        target = rng.randint(*target_chars)
        chosen, total = [], 0
        for i in ranked:
            para = paras[i]
            low = para.lower()
            if para in ex.document or any(a and a in low for a in answers):
                continue
            chosen.append(para)
            total += len(para) + len(PARAGRAPH_SEP)
            if total >= target:
                break
        if not chosen:
            continue
        hard = pack_example(ex, chosen, rng.randint(0, len(chosen)))
        hard.id = f"{ex.id}@hard"
        hard.meta = {**ex.meta, "hard": True, "offset": hard.meta["offset"], "n_distractors": len(chosen)}
        out.append(hard)
    return out


# --------------------------------------------------------------------------- synthetic


def synthetic_examples(
    n: int, rng: random.Random | int, length_range: tuple[int, int] = (4_000, 120_000)
) -> list[TrainExample]:
    """`cprs_cli.evaluation.synthetic.make_training_examples` converted to TrainExamples."""
    if n <= 0:
        return []
    from cprs_cli.evaluation import synthetic

    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    exs = synthetic.make_training_examples(n, rng, length_range)
    out = []
    for i, ex in enumerate(exs):
        task = ex.instruction_task
        out.append(
            TrainExample(
                instruction=TASKS[task],
                query=ex.query,
                document=ex.document,
                evidence=merge_spans((int(s), int(e)) for s, e in ex.evidence),
                source=f"synthetic:{ex.task}",
                level=synthetic.EVIDENCE_LEVEL[ex.task],
                id=f"synthetic-{ex.task}-{i}",
                task=task,
                meta={"synthetic": True, "answers": list(ex.answers)},
            )
        )
    return out


# --------------------------------------------------------------------------- sets


def _cap_per_source(records: list[Record], cap: int | None, rng: random.Random) -> list[Record]:
    if not cap:
        return records
    by: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by[r.source].append(r)
    out = []
    for src in by:
        rs = by[src]
        out.extend(rs if len(rs) <= cap else rng.sample(rs, cap))
    return out


def _build(
    split: str,
    seed: int,
    n_synthetic: int,
    long_fraction: float,
    sources: Sequence[str] | None,
    data_dir,
    augment: bool,
    augment_fraction: float,
    long_target_chars: int | tuple[int, int],
    synthetic_length_range: tuple[int, int],
    max_per_source: int | None,
    shuffle: bool,
    hard_fraction: float = 0.0,
) -> list[TrainExample]:
    rng = random.Random(f"{split}:{seed}")
    records = _cap_per_source(load_split(split, sources, data_dir), max_per_source, rng)
    examples = to_examples(records, augment=augment, rng=rng, augment_fraction=augment_fraction)
    if long_fraction > 0 and examples:
        k = min(len(examples), round(long_fraction * len(examples)))
        picked = rng.sample(examples, k)
        # distractors come from the same split only (no val text leaks into train, nor back)
        examples.extend(make_long_examples(picked, rng, long_target_chars, pool=records))
    if hard_fraction > 0 and examples:
        plain = [e for e in examples if not e.meta.get("long")]
        k = min(len(plain), round(hard_fraction * len(plain)))
        examples.extend(make_hard_examples(rng.sample(plain, k), rng, pool=records))
    if n_synthetic > 0:
        examples.extend(synthetic_examples(n_synthetic, rng, synthetic_length_range))
    if shuffle:
        rng.shuffle(examples)
    return examples


def build_training_set(
    seed: int = 0,
    n_synthetic: int = 2000,
    long_fraction: float = 0.25,
    *,
    sources: Sequence[str] | None = None,
    data_dir=None,
    augment: bool = True,
    augment_fraction: float = AUGMENT_FRACTION,
    long_target_chars: int | tuple[int, int] = (20_000, 160_000),
    synthetic_length_range: tuple[int, int] = (4_000, 120_000),
    max_per_source: int | None = None,
    shuffle: bool = True,
    hard_fraction: float = 0.0,
) -> list[TrainExample]:
    """Train-split records as examples (+ ~20% cross-task copies), plus `long_fraction` × that
    many long packed copies, plus `hard_fraction` × the plain ones packed among lexically similar
    paragraphs (`make_hard_examples`), plus `n_synthetic` synthetic tasks; shuffled with `seed`."""
    return _build(
        "train", seed, n_synthetic, long_fraction, sources, data_dir, augment,
        augment_fraction, long_target_chars, synthetic_length_range, max_per_source, shuffle,
        hard_fraction,
    )


def build_validation_set(
    seed: int = 0,
    n_synthetic: int = 200,
    long_fraction: float = 0.0,
    *,
    sources: Sequence[str] | None = None,
    data_dir=None,
    augment: bool = False,
    augment_fraction: float = AUGMENT_FRACTION,
    long_target_chars: int | tuple[int, int] = (20_000, 160_000),
    synthetic_length_range: tuple[int, int] = (4_000, 120_000),
    max_per_source: int | None = None,
    shuffle: bool = False,
) -> list[TrainExample]:
    """Val-split records as examples (no augmentation by default), optional long copies and
    synthetic tasks (a different random stream from training's)."""
    return _build(
        "val", seed + 1_000_003, n_synthetic, long_fraction, sources, data_dir, augment,
        augment_fraction, long_target_chars, synthetic_length_range, max_per_source, shuffle,
    )


def stats(examples: Iterable[TrainExample | Record]) -> dict:
    """Counts per source, level, task; unanswerable / augmented / long counts; char sizes."""
    by_source: Counter = Counter()
    by_level: Counter = Counter()
    by_task: Counter = Counter()
    by_source_level: Counter = Counter()
    n = empty = aug = long_ = 0
    chars = ev_chars = 0
    max_chars = 0
    for ex in examples:
        level = ex.level if isinstance(ex, TrainExample) else ex.evidence_level
        n += 1
        by_source[ex.source] += 1
        by_level[level] += 1
        by_source_level[f"{ex.source}/{level}"] += 1
        if isinstance(ex, TrainExample):
            by_task[ex.task or "custom"] += 1
            aug += bool(ex.meta.get("augmented"))
            long_ += bool(ex.meta.get("long"))
        empty += not ex.evidence
        chars += len(ex.document)
        max_chars = max(max_chars, len(ex.document))
        ev_chars += sum(e - s for s, e in ex.evidence)
    return {
        "examples": n,
        "unanswerable": empty,
        "augmented": aug,
        "long": long_,
        "mean_chars": chars / n if n else 0.0,
        "max_chars": max_chars,
        "evidence_char_fraction": ev_chars / chars if chars else 0.0,
        "by_source": dict(sorted(by_source.items())),
        "by_level": dict(sorted(by_level.items())),
        "by_task": dict(sorted(by_task.items())),
        "by_source_level": dict(sorted(by_source_level.items())),
    }


def split_stats(sources: Sequence[str] | None = None, data_dir=None) -> dict:
    """Per source: records and distinct documents in each split."""
    out = {}
    for split in ("train", "val"):
        for r in load_split(split, sources, data_dir):
            row = out.setdefault(r.source, {"train": 0, "val": 0, "train_docs": set(), "val_docs": set()})
            row[split] += 1
            row[f"{split}_docs"].add(doc_hash(r.document))
    return {
        s: {k: (len(v) if isinstance(v, set) else v) for k, v in row.items()} for s, row in out.items()
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Summarise the critic's training / validation data.")
    ap.add_argument("--split", choices=["train", "val", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-synthetic", type=int, default=0)
    ap.add_argument("--long-fraction", type=float, default=0.25)
    ap.add_argument("--sources", nargs="*", default=None)
    ap.add_argument("--data-dir", default=None, help="the QA data (default: $CPRS_DATA, else ../shared/data)")
    args = ap.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    print(f"data dir: {data_dir}")
    print(json.dumps({"split": split_stats(args.sources, data_dir)}, indent=2))
    if args.split in ("train", "both"):
        tr = build_training_set(args.seed, args.n_synthetic, args.long_fraction, sources=args.sources,
                                data_dir=data_dir)
        print(json.dumps({"train": stats(tr)}, indent=2))
    if args.split in ("val", "both"):
        va = build_validation_set(args.seed, args.n_synthetic, sources=args.sources, data_dir=data_dir)
        print(json.dumps({"val": stats(va)}, indent=2))


if __name__ == "__main__":
    main()
