"""Corpus inputs: which files a dataset names, how they are cut into shards, and one shard's rows.

Why cprs cuts the shards itself instead of leaving it to Ray Data's `read_json`/`read_parquet`
and `write_parquet`: Ray's readers split and merge files into blocks by size and keep no row
positions, and its writers name their files after the run and the block; neither can tell, on a
rerun, which rows are already done, and a rerun with another number of workers would cut the
rows differently. A shard here is a fixed (file, row range) that the driver derives from the
files alone (the byte offsets of JSONL lines, Parquet metadata), so the same files and shard
sizes always give the same shards whatever the number of workers. A finished shard is then
recognised by its output name (`part-000042.parquet`), and each shard's documents go through
one `compress_many` call together, in file order, whatever worker runs it: the same critic
batches, so the same bytes out.

Shards are sized by tokens: a shard closes when its estimated tokens (input bytes / 4, the usual
ratio of English text to cl100k tokens) reach `shard_tokens`, or when it holds `shard_rows` rows
(rows that name a file by `path` are counted by rows only: their size is not known until read).

pyarrow is imported only where Parquet is read (the `corpus` extra).
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import InputError

# the suffixes a dataset file may have, and how each is read
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
# the input columns cprs reads; any other column is ignored
COLUMNS = ("id", "text", "path", "query", "instruction", "task", "max_tokens", "rate", "granularity")
BYTES_PER_TOKEN = 4  # the estimate that sizes shards (English prose, cl100k)
DEFAULT_SHARD_TOKENS = 1_000_000
DEFAULT_SHARD_ROWS = 10_000


@dataclass(frozen=True)
class InputFile:
    """One dataset file; size and mtime identify its version in the manifest."""

    path: str  # absolute
    name: str  # relative to the input root: how ids and messages name it
    kind: str  # "jsonl" | "parquet"
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Shard:
    """A fixed range of rows of one file, and the output file that holds their results.

    JSONL: `start`/`end` are byte offsets on line boundaries and `first_line` the line number
    at `start`; Parquet: `start`/`end` are row offsets. `rows` counts the rows in the range (a
    blank JSONL line is not a row); `tokens` is the estimate the shard was sized by."""

    index: int
    path: str
    name: str
    kind: str
    start: int
    end: int
    first_line: int
    rows: int
    tokens: int

    def output_name(self, fmt: str) -> str:
        return f"part-{self.index:06d}.{fmt}"

    def describe(self) -> str:
        if self.kind == "jsonl":
            return f"{self.name} (lines from {self.first_line:,})"
        return f"{self.name} (rows {self.start + 1:,}-{self.end:,})"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Shard:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


# --------------------------------------------------------------------------- discovery


def _kind(path: Path) -> str | None:
    return SUFFIXES.get(path.suffix.lower())


def _input_file(path: Path, root: Path) -> InputFile:
    st = path.stat()
    try:
        name = str(path.relative_to(root))
    except ValueError:
        name = str(path)
    return InputFile(str(path.resolve()), name, _kind(path) or "", st.st_size, st.st_mtime_ns)


def _skip(name: str) -> bool:
    # hidden files and the `_SUCCESS` / `_metadata` markers that Spark, Ray and pyarrow write
    return name.startswith((".", "_"))


def discover(spec: str, exclude: Path | None = None) -> list[InputFile]:
    """The dataset files that `spec` names, sorted: a file, a directory (walked recursively,
    without hidden files, `_`-markers and `exclude`, the output directory) or a glob pattern.
    Raises InputError when it names nothing readable."""
    path = Path(spec).expanduser()
    suffixes = ", ".join(SUFFIXES)
    if path.is_file():
        if _kind(path) is None:
            raise InputError(f"not a dataset file (expected {suffixes})", spec)
        return [_input_file(path, path.parent)]
    if path.is_dir():
        skip = exclude.resolve() if exclude is not None else None
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not _skip(d)
                                 and not (skip is not None and (here / d).resolve() == skip))
            found.extend(here / f for f in sorted(filenames) if not _skip(f) and _kind(Path(f)))
        root = path
    elif glob.has_magic(spec):
        found = [Path(p) for p in sorted(glob.glob(os.path.expanduser(spec), recursive=True))
                 if Path(p).is_file() and _kind(Path(p))]
        root = Path(os.path.commonpath([str(p.parent) for p in found])) if found else Path(".")
    else:
        raise InputError("no such file or directory", spec)
    if not found:
        raise InputError(f"no dataset files ({suffixes}) found", spec)
    return [_input_file(p, root) for p in found]


# --------------------------------------------------------------------------- sharding


class _Cutter:
    """Accumulates rows into shards of at most `rows` rows or about `tokens` tokens."""

    def __init__(self, shard_tokens: int, shard_rows: int):
        self.max_bytes = shard_tokens * BYTES_PER_TOKEN
        self.max_rows = shard_rows
        self.shards: list[Shard] = []

    def emit(self, f: InputFile, start: int, end: int, first_line: int, rows: int, nbytes: float) -> None:
        self.shards.append(Shard(len(self.shards), f.path, f.name, f.kind, start, end, first_line, rows,
                                 int(nbytes // BYTES_PER_TOKEN)))


def plan_shards(files: list[InputFile], shard_tokens: int = DEFAULT_SHARD_TOKENS,
                shard_rows: int = DEFAULT_SHARD_ROWS, need_query: bool = False) -> list[Shard]:
    """Cut `files` into shards, numbered in file order. A deterministic function of the files'
    bytes (or Parquet metadata) and the two sizes. `need_query`: no query for all rows was
    given, so a Parquet file must have a `query` column (JSONL rows without one get an error)."""
    cut = _Cutter(shard_tokens, shard_rows)
    for f in files:
        if f.kind == "jsonl":
            _plan_jsonl(f, cut)
        else:
            _plan_parquet(f, cut, need_query)
    return cut.shards


def _plan_jsonl(f: InputFile, cut: _Cutter) -> None:
    # one pass over the lines (no JSON parsing): a line's bytes are its token estimate
    start = offset = 0
    line_no = 0
    first_line, rows, nbytes = 1, 0, 0
    try:
        with open(f.path, "rb") as fh:
            for line in fh:
                line_no += 1
                offset += len(line)
                if line.strip():
                    rows += 1
                    nbytes += len(line)
                if rows and (rows >= cut.max_rows or nbytes >= cut.max_bytes):
                    cut.emit(f, start, offset, first_line, rows, nbytes)
                    start, first_line, rows, nbytes = offset, line_no + 1, 0, 0
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", f.name) from None
    if rows:
        cut.emit(f, start, offset, first_line, rows, nbytes)


def _parquet_file(f: InputFile):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(f.path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(f"not a readable Parquet file ({_first_line(err)})", f.name) from None


def _plan_parquet(f: InputFile, cut: _Cutter, need_query: bool) -> None:
    pf = _parquet_file(f)
    names = set(pf.schema_arrow.names)
    if not names & {"text", "path"}:
        raise InputError("no 'text' or 'path' column", f.name)
    if need_query and "query" not in names:
        raise InputError("no 'query' column; give --query for every row", f.name)
    meta = pf.metadata
    start = row = 0
    rows, nbytes = 0, 0.0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        left = group.num_rows
        per_row = max(group.total_byte_size / max(group.num_rows, 1), 1.0)  # uncompressed bytes
        while left:
            take = min(left, cut.max_rows - rows,
                       max(1, math.ceil((cut.max_bytes - nbytes) / per_row)))
            rows, nbytes, row, left = rows + take, nbytes + take * per_row, row + take, left - take
            if rows >= cut.max_rows or nbytes >= cut.max_bytes:
                cut.emit(f, start, row, start + 1, rows, nbytes)
                start, rows, nbytes = row, 0, 0.0
    if rows:
        cut.emit(f, start, row, start + 1, rows, nbytes)


# --------------------------------------------------------------------------- reading


@dataclass
class Row:
    """One row of a shard: its number (JSONL: line number; Parquet: 1-based row) and either
    its fields or the one-line reason it could not be read (a row error, not a shard error)."""

    number: int
    fields: dict | None
    problem: str | None = None


def read_shard(shard: Shard) -> list[Row]:
    """The rows of `shard`, in file order. A row that is not a JSON object is a Row with a
    `problem`; a file that cannot be read at all raises InputError."""
    if shard.kind == "jsonl":
        return _read_jsonl(shard)
    return _read_parquet(shard)


def _read_jsonl(shard: Shard) -> list[Row]:
    # parsed line by line with the standard json module rather than pyarrow.json: one malformed
    # line must become that row's error, where pyarrow would fail the whole block
    try:
        with open(shard.path, "rb") as fh:
            fh.seek(shard.start)
            data = fh.read(shard.end - shard.start)
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", shard.name) from None
    rows = []
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    for k, piece in enumerate(pieces):
        if not piece.strip():
            continue
        number = shard.first_line + k
        try:
            value = json.loads(piece)
        except UnicodeDecodeError:
            rows.append(Row(number, None, f"line {number}: not UTF-8 text"))
            continue
        except ValueError as err:
            rows.append(Row(number, None, f"line {number}: not valid JSON ({_first_line(err)})"))
            continue
        if not isinstance(value, dict):
            rows.append(Row(number, None, f"line {number}: not a JSON object"))
            continue
        rows.append(Row(number, value))
    if len(rows) != shard.rows:
        raise InputError(f"changed since the shards were planned (lines from {shard.first_line:,}: "
                         f"{len(rows)} rows, planned {shard.rows})", shard.name)
    return rows


def _read_parquet(shard: Shard) -> list[Row]:
    import pyarrow as pa

    f = InputFile(shard.path, shard.name, shard.kind, 0, 0)
    pf = _parquet_file(f)
    meta = pf.metadata
    groups, first = [], None
    row = 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if row < shard.end and row + n > shard.start:
            groups.append(g)
            first = row if first is None else first
        row += n
    columns = [c for c in COLUMNS if c in pf.schema_arrow.names]
    try:
        table = pf.read_row_groups(groups, columns=columns) if groups else pa.table({})
    except Exception as err:  # noqa: BLE001
        raise InputError(f"cannot read rows {shard.start + 1:,}-{shard.end:,} ({_first_line(err)})",
                         shard.name) from None
    table = table.slice(shard.start - (first or 0), shard.end - shard.start)
    if table.num_rows != shard.rows:
        raise InputError(f"changed since the shards were planned (rows {shard.start + 1:,}-{shard.end:,})",
                         shard.name)
    return [Row(shard.start + 1 + k, values) for k, values in enumerate(table.to_pylist())]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
