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

from ..extras import require

require("llamaindex")

from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle  # noqa: E402

from ._backend import METADATA_KEY, cprs_metadata, options_of  # noqa: E402
from ._fields import CprsFields  # noqa: E402


class CprsNodePostprocessor(CprsFields, BaseNodePostprocessor):
    """Compress retrieved nodes with the cprs critic, keeping what the query needs.

    The fields (where compression runs, the `CompressOptions` fields, `keep_empty`) are those
    of `CprsFields`.
    """

    @classmethod
    def class_name(cls) -> str:
        return "CprsNodePostprocessor"

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
