"""The project's QA records: where they are, how they are read and how they are split.

One loader for everything that reads the QA data (gzip JSON Lines with character-level evidence
spans, the format of `../shared/data`; see that folder's README): the quality runner, the
benchmark's `qa` task and, outside the package, the training data of `training/`. The split rule
lives here, so that what training never sees and what the evaluation reports on are decided in
one place:

* `train` / `val` by *document* (sha1 of its text): every 10th distinct document of a source in
  sorted-hash order, at least 2 per source, is `val`, so every query on one document lands in
  the same split;
* `val` is halved by document into `calib` (where selection is tuned) and `test` (what the
  quality report measures), so nothing reported was tuned on.

`pack` hides a document among distractor documents (shifting its evidence), as the benchmark's
`qa` task and training's long examples both do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SOURCES: tuple[str, ...] = (
    "hotpotqa",
    "squad2",
    "evidence_inference",
    "qmsum",
    "policyqa",
    "clapnq",
    "wice",
    "nq_oracle",
)
SPLITS = ("train", "val", "calib", "test")

VAL_FRACTION = 0.1
MIN_VAL_DOCS = 2  # per source, however few documents it has
PARAGRAPH_SEP = "\n\n"

Span = tuple[int, int]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: `data_dir` if given; else `$CPRS_DATA`; else `../shared/data` seen
    from the working directory (the project's layout, when run from a checkout)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("CPRS_DATA")
    if env:
        return Path(env)
    return Path.cwd().parent / "shared" / "data"


# --------------------------------------------------------------------------- records


@dataclass
class Record:
    id: str
    source: str
    query: str
    document: str
    evidence: list[Span]
    evidence_level: str
    answers: list[str]
    answerable: bool

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        return cls(
            id=str(d["id"]),
            source=str(d["source"]),
            query=d["query"],
            document=d["document"],
            evidence=[(int(s), int(e)) for s, e in d.get("evidence", [])],
            evidence_level=d.get("evidence_level", "sentence"),
            answers=list(d.get("answers") or []),
            answerable=bool(d.get("answerable", bool(d.get("evidence")))),
        )

    def evidence_texts(self) -> list[str]:
        return [self.document[s:e] for s, e in self.evidence]


def _source_path(source: str, data_dir: Path) -> Path:
    return data_dir / f"{source}.jsonl.gz"


def available_sources(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The sources with a file in the data directory: the known ones first, then the others."""
    d = resolve_data_dir(data_dir)
    known = [s for s in SOURCES if _source_path(s, d).exists()]
    extra = sorted(
        p.name[: -len(".jsonl.gz")]
        for p in d.glob("*.jsonl.gz")
        if p.name[: -len(".jsonl.gz")] not in SOURCES
    )
    return known + extra


def load_records(
    sources: Sequence[str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> Iterator[Record]:
    """Yield the records of the given sources (all available ones by default), file order."""
    d = resolve_data_dir(data_dir)
    names = list(sources) if sources is not None else available_sources(d)
    for name in names:
        path = _source_path(name, d)
        if not path.exists():
            raise FileNotFoundError(f"no data file for source {name!r}: {path}")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield Record.from_dict(json.loads(line))


# --------------------------------------------------------------------------- split


def doc_hash(document: str) -> str:
    return hashlib.sha1(document.encode("utf-8")).hexdigest()


def select_val_hashes(hashes: Iterable[str], fraction: float = VAL_FRACTION) -> frozenset[str]:
    """Sorted distinct hashes, every `1/fraction`-th one (starting with the first), and at least
    `MIN_VAL_DOCS` of them (never all: a source with one document stays in train)."""
    ordered = sorted(set(hashes))
    step = max(1, round(1 / fraction))
    chosen = ordered[::step]
    if len(chosen) < MIN_VAL_DOCS:
        want = min(MIN_VAL_DOCS, max(len(ordered) - 1, 0))
        # spread the extra picks: take them at even strides through the sorted list
        chosen = [ordered[(i * len(ordered)) // max(want, 1)] for i in range(want)]
    return frozenset(chosen)


@lru_cache(maxsize=64)
def _val_hashes_for(source: str, data_dir: str) -> frozenset[str] | None:
    path = _source_path(source, Path(data_dir))
    if not path.exists():
        return None
    hashes = set()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                hashes.add(doc_hash(json.loads(line)["document"]))
    return select_val_hashes(hashes)


def split_of(record: Record, data_dir: str | os.PathLike[str] | None = None) -> str:
    """"train" or "val", decided by the record's document text only, so every query on one
    document lands in the same split. Within a known source the val documents are every 10th of
    the source's sorted document hashes (at least 2); for a record of an unknown source the hash
    alone decides (about 10%)."""
    h = doc_hash(record.document)
    table = _val_hashes_for(record.source, str(resolve_data_dir(data_dir)))
    if table is None:
        return "val" if int(h[:8], 16) % round(1 / VAL_FRACTION) == 0 else "train"
    return "val" if h in table else "train"


def calib_hashes(val: Iterable[str]) -> frozenset[str]:
    """The calibration half of the validation documents: every other one in sorted hash order,
    starting with the second (so a source with 2 or 3 val documents keeps more in `test`)."""
    return frozenset(sorted(set(val))[1::2])


def load_split(
    split: str,
    sources: Sequence[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[Record]:
    """Records of one split. `val` = documents training never sees; it is cut by document into
    `calib` (thresholds, fusion weights and dynamic-mode settings are tuned here) and `test`
    (the quality report), so nothing reported was tuned on."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    d = resolve_data_dir(data_dir)
    out: list[Record] = []
    for name in list(sources) if sources is not None else available_sources(d):
        recs = list(load_records([name], d))
        val = select_val_hashes(doc_hash(r.document) for r in recs)
        calib = calib_hashes(val)
        for r in recs:
            h = doc_hash(r.document)
            where = "train" if h not in val else ("calib" if h in calib else "test")
            if split == where or (split == "val" and where != "train"):
                out.append(r)
    return out


# --------------------------------------------------------------------------- spans, packing


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-empty, overlapping/touching spans merged."""
    out: list[list[int]] = []
    for s, e in sorted((int(s), int(e)) for s, e in spans if e > s):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def pack(document: str, evidence: Sequence[Span], distractors: Sequence[str], position: int,
         sep: str = PARAGRAPH_SEP) -> tuple[str, list[Span], int]:
    """`document` inserted at index `position` among `distractors`, joined with `sep`: the
    packed text, the evidence shifted into it, and the offset at which `document` starts."""
    position = max(0, min(position, len(distractors)))
    before, after = list(distractors[:position]), list(distractors[position:])
    prefix = sep.join(before) + (sep if before else "")
    suffix = (sep if after else "") + sep.join(after)
    off = len(prefix)
    return prefix + document + suffix, [(s + off, e + off) for s, e in evidence], off
