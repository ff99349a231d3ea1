"""The value a compression returns: kept spans, the compressed text and its stats."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Span:
    """A kept piece of the input: `text == source_text[start:end]`."""

    start: int
    end: int
    text: str
    score: float
    # provenance (README "JSON output"): the 1-based page of `start` for paged inputs (PDF),
    # else None; the heading path of the section `start` lies in, outermost first
    page: int | None = None
    section: tuple[str, ...] = ()
    # the queries whose selection kept this span; `forced`: it holds a unit kept by `keep` /
    # `keep_first` (kept whatever the scores)
    queries: tuple[str, ...] = ()
    forced: bool = False

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text, "score": self.score,
                "page": self.page, "section": list(self.section), "queries": list(self.queries),
                "forced": self.forced}


@dataclass
class Stats:
    input_tokens: int
    output_tokens: int
    ratio: float  # input_tokens / max(output_tokens, 1)
    windows: int
    seconds: float
    device: str
    tokenizer: str = "cl100k_base"
    # seconds per stage (tokenize / critic / post); not part of the schema's required keys
    timings: dict[str, float] = field(default_factory=dict)
    # the critic read only the first `max_query_tokens` tokens of the query
    query_truncated: bool = False
    # a unit (sentence, paragraph) was larger than the budget: finer units inside it were kept
    finer_units: bool = False
    # what the run changed from what was asked, one {"code", "message"} each (codes: WARNING_CODES)
    warnings: list[dict[str, str]] = field(default_factory=list)


# warning codes: the first two concern the whole run (the same query and critic for every
# document); "finer_units" concerns one document
WARNING_CODES = ("query_truncated", "batch_size_clamped", "finer_units", "empty", "language")
RUN_WARNINGS = frozenset({"query_truncated", "batch_size_clamped"})


def text_sha256(text: str) -> str:
    """sha256 of `text` as UTF-8 (a lone surrogate, which only a library caller's text can hold,
    as its three-byte 'surrogatepass' form)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class CompressionResult:
    source: str
    query: str
    instruction: str
    granularity: str
    model_name: str
    model_sha256: str
    spans: list[Span]
    compressed_text: str
    stats: Stats
    # the text that span offsets index (the README's "JSON output"): its length in code points
    # and the sha256 of its UTF-8 encoding
    text_length: int = 0
    text_sha256: str = ""
    # every query when several were given (`query` is the first); dynamic mode kept nothing
    queries: tuple[str, ...] = ()
    empty: bool = False
    # what joins the spans in `compressed_text` (not in the JSON object: it is in the text)
    separator: str = "\n[...]\n"

    def to_dict(self) -> dict:
        """The `--format json` object (schema_version 1)."""
        stats = asdict(self.stats)
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "query": self.query,
            "instruction": self.instruction,
            "granularity": self.granularity,
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "offsets": {"index": "document text", "unit": "code point",
                        "text_length": self.text_length, "text_sha256": self.text_sha256},
            "queries": list(self.queries) or [self.query],
            "empty": self.empty,
            "spans": [s.to_dict() for s in self.spans],
            "compressed_text": self.compressed_text,
            "stats": stats,
        }
