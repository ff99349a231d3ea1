"""One shard of a corpus: its rows → `Compressor.compress_many` → one output file, atomically.

This is what each Ray actor runs, kept free of Ray so that it can be tested, and reasoned
about, on its own. A row's problems (not JSON, no text, bad per-row options, a `path` that
cannot be read, a failure inside the compressor) become that row's `error`; the shard is still
written, one output row per input row, in input order. Only a shard that cannot be read or
written at all raises.

Every string written is passed through `ingest.normalise_text` (lone surrogates, which a JSON
`\\ud800` escape can put in a row, become U+FFFD one for one), so each output is valid UTF-8 and
span offsets still index the row's text.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .. import ingest
from ..compressor import Compressor, Item, ItemError
from ..errors import CprsError
from ..ingest import normalise_text
from ..options import CompressOptions
from ..output import write_atomic
from ..result import CompressionResult
from .shards import Row, Shard, read_shard

OUTPUT_COLUMNS = ("id", "compressed_text", "spans", "input_tokens", "output_tokens", "ratio", "model",
                  "model_sha256", "error")
FORMATS = ("parquet", "jsonl")


def output_schema(metadata: dict[str, str] | None = None):
    """The Arrow schema of an output shard (`page`: the span's page when the result has one,
    else null)."""
    import pyarrow as pa

    span = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("score", pa.float64()),
                      ("page", pa.int64())])
    schema = pa.schema([("id", pa.string()), ("compressed_text", pa.string()), ("spans", pa.list_(span)),
                        ("input_tokens", pa.int64()), ("output_tokens", pa.int64()),
                        ("ratio", pa.float64()), ("model", pa.string()), ("model_sha256", pa.string()),
                        ("error", pa.string())])
    return schema.with_metadata(metadata) if metadata else schema


# --------------------------------------------------------------------------- rows → items


class RowError(CprsError):
    """A row that cannot be compressed as given: its message is the row's `error`."""


# per-row option columns, in pairs that replace each other: a row's `rate` replaces the
# call's `max_tokens` as well (and a row giving both is refused by validate())
_BUDGET, _PROMPT = ("rate", "max_tokens"), ("instruction", "task")


def _number(name: str, value):
    if isinstance(value, float):
        if math.isnan(value):
            return None  # a missing value in a pandas-written Parquet column
        if name == "max_tokens" and value.is_integer():
            return int(value)  # JSON numbers such as 500.0
    return value


def row_options(defaults: CompressOptions, values: dict) -> CompressOptions:
    """The row's options: the call's `defaults` with the row's own `query` (a text, or a list of
    texts: one critic pass each), `instruction` / `task`, `rate` / `max_tokens` and
    `granularity` columns (null: not given) in their place."""
    given = {k: _number(k, values.get(k)) for k in ("query", *_PROMPT, *_BUDGET, "granularity")}
    given = {k: v for k, v in given.items() if v is not None}
    change = dict(given)
    for pair in (_BUDGET, _PROMPT):
        if any(k in given for k in pair):
            for k in pair:
                change.setdefault(k, None)
    if isinstance(change.get("query"), list):  # several queries (a JSON array, a Parquet list)
        change["query"] = tuple(change["query"])
    opts = replace(defaults, **change)
    for k in ("instruction", "task", "granularity"):
        v = getattr(opts, k)
        if v is not None and not isinstance(v, str):
            raise RowError(f"{k} must be text, not {type(v).__name__}")
    if not isinstance(opts.query, (str, tuple)):
        raise RowError(f"query must be text or a list of texts, not {type(opts.query).__name__}")
    if opts.query == "":
        raise RowError("no query: the row has no 'query' and no query was given for every row")
    return opts.validate()


def _row_id(row: Row, shard: Shard) -> str:
    value = row.fields.get("id") if row.fields is not None else None
    if value is None:
        return f"{shard.name}:{row.number}"
    if isinstance(value, str):
        return normalise_text(value)
    try:
        return normalise_text(json.dumps(value, ensure_ascii=False))  # 7 -> "7", [1, 2] -> "[1, 2]"
    except (TypeError, ValueError):  # bytes, dates: their Python text
        return normalise_text(str(value))


def _item(row: Row, rid: str, defaults: CompressOptions, base: Path, max_bytes: int):
    """The `compress_many` item of a row (a callable for a `path` row: read when its turn
    comes); raises RowError (or a CprsError of `validate`) when the row cannot be one."""
    values = row.fields or {}
    text, path = values.get("text"), values.get("path")
    if text is not None and path is not None:
        raise RowError("give either text or path, not both")
    opts = row_options(defaults, values)
    if text is not None:
        if not isinstance(text, str):
            raise RowError(f"text must be a string, not {type(text).__name__}")
        return Item(normalise_text(text), rid, opts)
    if path is None:
        raise RowError("no text or path")
    if not isinstance(path, str) or not path:
        raise RowError("path must be a file name")
    file = Path(path).expanduser()
    file = file if file.is_absolute() else base / file  # relative to the dataset file's folder

    def read() -> Item:
        doc = ingest.load_path(file, max_bytes=max_bytes)
        return Item(doc.text, rid, opts, document=doc)  # its structure and pages count

    return read


# --------------------------------------------------------------------------- one shard


@dataclass
class ShardStats:
    """What one shard did (one row of the Ray dataset that the driver collects)."""

    shard: int
    rows: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    failed: str = ""  # the shard could not be read or written: nothing was written

    def as_row(self) -> dict:
        return asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def _result_row(rid: str, r: CompressionResult) -> dict:
    spans = []
    for span in r.spans:
        d = asdict(span)  # `page` when the span has one (asdict: whether or not Span defines it)
        spans.append({"start": d["start"], "end": d["end"], "score": float(d["score"]),
                      "page": d.get("page")})
    return {"id": rid, "compressed_text": normalise_text(r.compressed_text), "spans": spans,
            "input_tokens": r.stats.input_tokens, "output_tokens": r.stats.output_tokens,
            "ratio": r.stats.ratio, "model": r.model_name, "model_sha256": r.model_sha256, "error": None}


def _error_row(rid: str, message: str, compressor: Compressor) -> dict:
    return {"id": rid, "compressed_text": None, "spans": None, "input_tokens": None, "output_tokens": None,
            "ratio": None, "model": compressor.model_name, "model_sha256": compressor.model_sha256,
            "error": normalise_text(" ".join(message.split()))}


def compress_rows(compressor: Compressor, rows: list[Row], shard: Shard, defaults: CompressOptions,
                  max_bytes: int = ingest.DEFAULT_MAX_INPUT_MB * ingest.MB) -> list[dict]:
    """The output rows of `rows` (one each, in order): the good rows go through one
    `compress_many` call, so their windows share the critic's batches."""
    base = Path(shard.path).parent
    out: list[dict | None] = [None] * len(rows)
    ids = [_row_id(row, shard) for row in rows]
    items, where = [], []
    for k, row in enumerate(rows):
        if row.problem is not None:
            out[k] = _error_row(ids[k], row.problem, compressor)
            continue
        try:
            items.append(_item(row, ids[k], defaults, base, max_bytes))
            where.append(k)
        except CprsError as err:
            out[k] = _error_row(ids[k], str(err), compressor)
    for k, res in zip(where, compressor.compress_many(items)):
        out[k] = _error_row(ids[k], res.message, compressor) if isinstance(res, ItemError) \
            else _result_row(ids[k], res)
    return out  # type: ignore[return-value]


def encode_shard(rows: list[dict], fmt: str, metadata: dict[str, str]) -> bytes:
    """An output shard's bytes: Parquet (zstd, the run's key in its metadata) or JSON Lines."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=output_schema(metadata))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def process_shard(compressor: Compressor, shard: Shard, defaults: CompressOptions, out_dir: str | Path,
                  fmt: str, run_key: str, max_bytes: int = ingest.DEFAULT_MAX_INPUT_MB * ingest.MB
                  ) -> ShardStats:
    """Read, compress and write one shard (atomically: `output.write_atomic`, a temporary file
    renamed over the final name). Raises what stops the shard (unreadable input, write error)."""
    start = time.perf_counter()
    rows = read_shard(shard)
    out = compress_rows(compressor, rows, shard, defaults, max_bytes)
    data = encode_shard(out, fmt, {"cprs.run_key": run_key, "cprs.shard": str(shard.index)})
    write_atomic(Path(out_dir) / shard.output_name(fmt), data)
    stats = ShardStats(shard.index, rows=len(out), seconds=round(time.perf_counter() - start, 3))
    for r in out:
        if r["error"] is not None:
            stats.errors += 1
        else:
            stats.input_tokens += r["input_tokens"]
            stats.output_tokens += r["output_tokens"]
    return stats
