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

from ..extras import require

require("langchain")

from langchain_core.callbacks import Callbacks  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.documents.compressor import BaseDocumentCompressor  # noqa: E402

from ._backend import METADATA_KEY, cprs_metadata, options_of  # noqa: E402
from ._fields import CprsFields  # noqa: E402


class CprsDocumentCompressor(CprsFields, BaseDocumentCompressor):
    """Compress retrieved documents with the cprs critic, keeping what the query needs.

    The fields (where compression runs, the `CompressOptions` fields, `keep_empty`) are those
    of `CprsFields`.
    """


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
