"""cprs as a LlamaIndex node postprocessor: `CprsNodePostprocessor`.

A `llama_index.core` `BaseNodePostprocessor`, for a query engine's `node_postprocessors=[...]`.
It compresses the retrieved nodes' text in one batch and returns, in order, `NodeWithScore`s
whose node is a copy of the original (same id, same score) with the compressed text and the
original metadata plus `"cprs"`: the kept spans as `[start, end]` offsets into the original
text, the stats and the critic. That key is excluded from what the LLM and the embedder see
(LlamaIndex puts metadata into prompts by default). Nodes compressed to nothing are left out
unless `keep_empty=True`. A call without a query leaves the nodes as they are: cprs compresses
for a question.

    from cprs_cli.adapters.llamaindex import CprsNodePostprocessor
    post = CprsNodePostprocessor(rate=0.2)                            # in-process, default critic
    post = CprsNodePostprocessor(base_url="http://127.0.0.1:8091")    # a running `cprs serve`

Needs `pip install 'cprs-cli[llamaindex]'`.
"""

from __future__ import annotations

from typing import Any

from ..extras import require

require("llamaindex")

from llama_index.core.bridge.pydantic import ConfigDict, PrivateAttr, model_validator  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle  # noqa: E402

from ._backend import METADATA_KEY, Backend, check_options, cprs_metadata, options_of  # noqa: E402


class CprsNodePostprocessor(BaseNodePostprocessor):
    """Compress retrieved nodes with the cprs critic, keeping what the query needs.

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
    def _valid(self) -> CprsNodePostprocessor:
        check_options(self)
        return self

    @classmethod
    def class_name(cls) -> str:
        return "CprsNodePostprocessor"

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = Backend(self.compressor, self.base_url, self.api_key, self.model, self.device,
                                    self.timeout)
        return self._backend

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes or query_bundle is None or not query_bundle.query_str.strip():
            return nodes
        options = options_of(self, query_bundle.query_str)
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        sources = [str(n.node.metadata.get("file_name", n.node.node_id)) for n in nodes]
        results = self.backend.compress_texts(texts, options, sources)
        out = []
        for item, result in zip(nodes, results):
            if not result["spans"] and not self.keep_empty:
                continue
            node = item.node.model_copy(deep=True)
            node.set_content(result["compressed_text"])
            node.metadata = {**node.metadata, METADATA_KEY: cprs_metadata(result)}
            node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, METADATA_KEY]
            node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, METADATA_KEY]
            out.append(NodeWithScore(node=node, score=item.score))
        return out


__all__ = ["CprsNodePostprocessor"]
