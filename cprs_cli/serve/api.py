"""cprs's own HTTP API, `POST /v1/compress`: the request schema and its translation to library calls.

A request carries one document (`text`, or `file_base64` with a `filename`: PDF, DOCX or text,
converted by `ingest.load_bytes` as `cprs compress` converts files) or a list of them
(`documents`), the query, and the options of `cprs compress` under their library names
(`CompressOptions`: `rate`, `max_tokens`, `granularity`, ...). One document answers with the
`cprs compress --format json` object (`CompressionResult.to_dict()`, schema_version 1); a list
answers `{"schema_version": 1, "results": [...]}`, one object or `{"error": {...}}` per document,
in order, all compressed in one `compress_many` call.

The option fields of the request model are generated from `CompressOptions`
(`options.pydantic_fields`: names, types, defaults, descriptions), not declared here, so every
option the library takes (`keep`, `keep_first`, `min_tokens`, several queries, and any field
added later) is accepted, and documented in the OpenAPI schema, with no second list. Pydantic
checks the shapes and types (and refuses unknown fields); `CompressOptions.validate()` checks the
values, so the rules (and their messages, which name the fields) are the library's own.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import fields

from pydantic import BaseModel, ConfigDict, Field, create_model

from .. import ingest
from ..compressor import Item
from ..errors import CprsError, InputError, UsageError
from ..options import CompressOptions, pydantic_fields
from ..result import SCHEMA_VERSION

ROUTE = "/v1/compress"


class DocumentIn(BaseModel):
    """One document: its text, or a file's bytes in base64 with the file's name."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="The document's text (its offsets index this string).")
    file_base64: str | None = Field(None, description="A file's bytes, base64 (PDF, DOCX or text).")
    filename: str | None = Field(None, description="The file's name: its suffix picks the converter.")
    password: str | None = Field(None, description="The password of an encrypted PDF.")
    source: str | None = Field(None, description="The name the result carries (default: the filename, "
                                                 "or <text>).")


class _RequestBase(DocumentIn):
    """What a request holds besides its options: one document (the fields of DocumentIn) or
    `documents`."""

    documents: list[DocumentIn] | None = Field(None, description="Several documents, compressed in one "
                                                                 "batch with the same options.")

    def options(self) -> CompressOptions:
        """The validated options (UsageError naming the field otherwise)."""
        return CompressOptions(**{name: getattr(self, name) for name in OPTION_NAMES}).validate()

    @property
    def single(self) -> bool:
        return self.documents is None

    def document_list(self) -> list[DocumentIn]:
        own = self.text is not None or self.file_base64 is not None
        if self.documents is not None:
            if own:
                raise UsageError("give either documents or text / file_base64, not both")
            if not self.documents:
                raise UsageError("documents must not be empty")
            return self.documents
        if not own:
            raise UsageError("give text, file_base64 (with filename) or documents")
        return [DocumentIn(text=self.text, file_base64=self.file_base64, filename=self.filename,
                           password=self.password, source=self.source)]


OPTION_NAMES = tuple(f.name for f in fields(CompressOptions))
_clash = set(OPTION_NAMES) & set(_RequestBase.model_fields)
if _clash:  # a new CompressOptions field may not take the name of a document field
    raise TypeError(f"CompressOptions fields {sorted(_clash)} clash with the request's document fields")

CompressRequest = create_model(
    "CompressRequest", __base__=_RequestBase, __module__=__name__,
    __doc__="`POST /v1/compress`: one document (text, or file_base64 with filename) or `documents`, "
            "plus `query` and the options of `cprs compress` (every `CompressOptions` field).",
    **pydantic_fields())
# every field name of the request, nested documents included (the error messages use it)
FIELD_NAMES = frozenset(CompressRequest.model_fields) | frozenset(DocumentIn.model_fields)


def to_item(doc: DocumentIn, options: CompressOptions, max_bytes: int) -> Item:
    """A document as a `compress_many` item; reading a file can raise InputError."""
    if (doc.text is None) == (doc.file_base64 is None):
        raise UsageError("a document needs exactly one of text and file_base64")
    if doc.text is not None:
        return Item(doc.text, doc.source or "<text>", options)
    name = doc.filename or doc.source or "<upload>"
    try:
        data = base64.b64decode(doc.file_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise InputError("file_base64 is not valid base64", name) from None
    document = ingest.load_bytes(data, name, password=doc.password, max_bytes=max_bytes)
    return Item(document.text, doc.source or document.source, options)


def error_object(err: BaseException, message: str, index: int | None = None, source: str | None = None) -> dict:
    """`{"error": {"code", "message"[, "index", "source"]}}`: the code names the kind of failure
    (usage, input, internal), as the CLI's exit codes do."""
    body: dict = {"code": error_code(err), "message": message}
    if index is not None:
        body["index"] = index
    if source is not None:
        body["source"] = source
    return {"error": body}


def error_code(err: BaseException) -> str:
    if isinstance(err, UsageError):
        return "usage"
    if isinstance(err, InputError):
        return "input"
    if isinstance(err, CprsError):
        return "error"
    return "internal"


def http_status(err: BaseException) -> int:
    """400 bad options or request, 422 a document that cannot be read, 500 anything else."""
    return {"usage": 400, "input": 422}.get(error_code(err), 500)


def many_response(outcomes: list[dict]) -> dict:
    return {"schema_version": SCHEMA_VERSION, "results": outcomes}
