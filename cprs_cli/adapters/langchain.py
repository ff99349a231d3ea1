"""cprs as a LangChain document compressor: `CprsDocumentCompressor`.

A `langchain_core` `BaseDocumentCompressor`, so it drops into `ContextualCompressionRetriever`
(or any pipeline that post-processes retrieved documents). `compress_documents(documents,
query)` compresses all documents in one batch and returns, in order, `Document`s whose
`page_content` is the compressed text and whose metadata is the original metadata plus
`"cprs"`: the kept spans as `[start, end]` offsets into the original `page_content`, the stats
and the critic. Documents compressed to nothing are left out unless `keep_empty=True`, as
LangChain's own extracting compressors do.

    from cprs_cli.adapters.langchain import CprsDocumentCompressor
    compressor = CprsDocumentCompressor(rate=0.2)                          # in-process, default critic
    compressor = CprsDocumentCompressor(base_url="http://127.0.0.1:8091")  # a running `cprs serve`

Needs `pip install 'cprs-cli[langchain]'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..extras import require

require("langchain")

from langchain_core.callbacks import Callbacks  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.documents.compressor import BaseDocumentCompressor  # noqa: E402
from pydantic import ConfigDict, PrivateAttr, model_validator  # noqa: E402

from ._backend import METADATA_KEY, Backend, check_options, cprs_metadata, options_of  # noqa: E402


class CprsDocumentCompressor(BaseDocumentCompressor):
    """Compress retrieved documents with the cprs critic, keeping what the query needs.

    Where it runs: `compressor` (a loaded `cprs_cli.Compressor`), or `base_url` (a running
    `cprs serve`, with `api_key` or $CPRS_API_KEY), or neither: a Compressor of `model` on
    `device` is loaded on first use. The other fields are `CompressOptions` fields.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Any = None
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    device: str = "auto"
    timeout: float | None = None

    instruction: str | None = None
    task: str | None = None
    granularity: str = "sentence"
    rate: float | None = None
    max_tokens: int | None = None
    threshold: float | None = None
    min_span_tokens: int | None = None
    separator: str | None = None
    lexical_weight: float | None = None
    keep_empty: bool = False

    _backend: Backend | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _valid(self) -> CprsDocumentCompressor:
        check_options(self)
        return self

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = Backend(self.compressor, self.base_url, self.api_key, self.model, self.device,
                                    self.timeout)
        return self._backend

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        if not documents:
            return []
        options = options_of(self, query)
        sources = [str(d.metadata.get("source", f"<document {i}>")) for i, d in enumerate(documents)]
        results = self.backend.compress_texts([d.page_content for d in documents], options, sources)
        out = []
        for doc, result in zip(documents, results):
            if not result["spans"] and not self.keep_empty:
                continue
            metadata = {**doc.metadata, METADATA_KEY: cprs_metadata(result)}
            out.append(Document(page_content=result["compressed_text"], metadata=metadata, id=doc.id))
        return out


__all__ = ["CprsDocumentCompressor"]
