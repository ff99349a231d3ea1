"""The LangChain, LlamaIndex and MCP adapters against the real packages: in-process (a
Compressor with the tiny test critic) and as clients of a running `cprs serve` (`base_url=`).

Both modes must give what the library gives for the same texts and options. In-process tests
refuse any network connection that leaves the machine, so nothing (NLTK data, tokenizer files,
model weights) may be downloaded at import or run time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest

from cprs_cli.errors import UsageError
from cprs_cli.options import CompressOptions
from cprs_cli.result import Span
from cprs_cli.select import assemble

REPO = Path(__file__).resolve().parents[2]
APOLLO = (REPO / "cprs_cli" / "samples" / "apollo11.md").read_text()
PARAGRAPHS = [p for p in APOLLO.split("\n\n") if len(p) > 300][:4]
QUERY = "Who walked on the Moon?"


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Connections to anything but loopback fail at once (an adapter that downloads fails)."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and self.family != socket.AF_UNIX:
            raise OSError(f"test: no network beyond loopback ({host})")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def want(compressor, text, **options):
    return compressor.compress(text, options=CompressOptions(query=QUERY, **options))


def check_metadata(original_text: str, original_meta: dict, meta: dict, compressed: str, result) -> None:
    cprs = meta.pop("cprs")
    assert meta == original_meta
    spans = [Span(s, e, original_text[s:e], 0.0) for s, e in cprs["spans"]]
    assert assemble(spans) == compressed  # the offsets index the original text
    assert cprs["spans"] == [[sp.start, sp.end] for sp in result.spans]
    assert cprs["stats"]["input_tokens"] == result.stats.input_tokens
    assert cprs["model"]["name"] == result.model_name


# --------------------------------------------------------------------------- LangChain


def lc_documents():
    from langchain_core.documents import Document

    return [Document(page_content=p, metadata={"source": f"doc{i}", "page": i}, id=f"id{i}")
            for i, p in enumerate(PARAGRAPHS)]


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "base_url"])
def test_langchain_compressor(remote, compressor, server):
    from cprs_cli.adapters.langchain import CprsDocumentCompressor

    where = {"base_url": server.url} if remote else {"compressor": compressor}
    lc = CprsDocumentCompressor(rate=0.3, keep_empty=True, **where)
    docs = lc_documents()
    out = lc.compress_documents(docs, QUERY)
    assert [d.id for d in out] == [d.id for d in docs]
    for doc, got in zip(docs, out):
        result = want(compressor, doc.page_content, rate=0.3)
        assert got.page_content == result.compressed_text
        check_metadata(doc.page_content, doc.metadata, dict(got.metadata), got.page_content, result)


def test_langchain_inside_contextual_compression_retriever(compressor):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from cprs_cli.adapters.langchain import CprsDocumentCompressor

    class Fixed(BaseRetriever):
        docs: list[Document]

        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            return self.docs

    retriever = ContextualCompressionRetriever(
        base_compressor=CprsDocumentCompressor(compressor=compressor, max_tokens=40, keep_empty=True),
        base_retriever=Fixed(docs=lc_documents()))
    out = retriever.invoke(QUERY)
    assert [d.page_content for d in out] == [want(compressor, p, max_tokens=40).compressed_text for p in PARAGRAPHS]
    assert [d.page_content for d in asyncio.run(retriever.ainvoke(QUERY))] == [d.page_content for d in out]


def test_langchain_drops_empty_and_checks_options(compressor):
    from langchain_core.documents import Document

    from cprs_cli.adapters.langchain import CprsDocumentCompressor

    texts = [p for p in PARAGRAPHS if not want(compressor, p, threshold=0.999).spans]
    assert texts, "the tiny critic keeps nothing at this threshold"
    docs = [Document(page_content=t) for t in texts]
    assert CprsDocumentCompressor(compressor=compressor, threshold=0.999).compress_documents(docs, QUERY) == []
    keeper = CprsDocumentCompressor(compressor=compressor, threshold=0.999, keep_empty=True)
    kept = keeper.compress_documents(docs, QUERY)
    assert [d.page_content for d in kept] == [""] * len(texts)
    with pytest.raises(Exception, match="rate must be in"):
        CprsDocumentCompressor(compressor=compressor, rate=3)
    with pytest.raises(UsageError, match="either compressor or base_url"):
        CprsDocumentCompressor(compressor=compressor, base_url="http://127.0.0.1:1").compress_documents(docs, QUERY)


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "base_url"])
def test_langchain_takes_every_option(remote, compressor, server):
    """The guarantees and max_gap (options the adapters once lacked) reach both backends."""
    from cprs_cli.adapters.langchain import CprsDocumentCompressor

    where = {"base_url": server.url} if remote else {"compressor": compressor}
    docs = lc_documents()
    for options in ({"keep": [r"Armstrong|Aldrin|Collins"], "keep_first": 1, "rate": 0.1},
                    {"min_tokens": 30, "threshold": 0.999, "max_gap": 2}):
        lc = CprsDocumentCompressor(keep_empty=True, **options, **where)
        out = lc.compress_documents(docs, QUERY)
        typed = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        wants = [want(compressor, d.page_content, **typed) for d in docs]
        assert [d.page_content for d in out] == [w.compressed_text for w in wants]
        bare = {k: v for k, v in typed.items() if k in ("rate", "threshold")}
        assert [w.compressed_text for w in wants] != [want(compressor, d.page_content, **bare).compressed_text
                                                      for d in docs]  # the options mattered
    with pytest.raises(Exception, match="keep_first must be at least 0"):
        CprsDocumentCompressor(compressor=compressor, keep_first=-1)
    with pytest.raises(Exception, match="min_tokens applies only without a budget"):
        CprsDocumentCompressor(compressor=compressor, min_tokens=5, max_tokens=50)


def test_adapter_fields_are_compress_options_fields():
    from dataclasses import fields

    from cprs_cli.adapters.langchain import CprsDocumentCompressor
    from cprs_cli.adapters.llamaindex import CprsNodePostprocessor

    options = {f.name for f in fields(CompressOptions)} - {"query"}
    settings = {"compressor", "base_url", "api_key", "model", "device", "timeout", "keep_empty"}
    for cls in (CprsDocumentCompressor, CprsNodePostprocessor):
        own = set(cls.model_fields)
        assert options | settings <= own, options - own
        assert "query" not in own
        for name in options:
            assert cls.model_fields[name].description, name


# --------------------------------------------------------------------------- LlamaIndex


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "base_url"])
def test_llamaindex_postprocessor(remote, compressor, server):
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

    from cprs_cli.adapters.llamaindex import CprsNodePostprocessor

    where = {"base_url": server.url} if remote else {"compressor": compressor}
    post = CprsNodePostprocessor(granularity="paragraph", max_tokens=50, keep_empty=True, **where)
    nodes = [NodeWithScore(node=TextNode(text=p, id_=f"n{i}", metadata={"file_name": f"f{i}.txt"}), score=1.0 - i / 10)
             for i, p in enumerate(PARAGRAPHS)]
    out = post.postprocess_nodes(nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == [(n.node.node_id, n.score) for n in nodes]
    for before, after in zip(nodes, out):
        result = want(compressor, before.node.text, granularity="paragraph", max_tokens=50)
        assert after.node.text == result.compressed_text
        check_metadata(before.node.text, before.node.metadata, dict(after.node.metadata), after.node.text, result)
        assert "cprs" not in after.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "cprs" not in after.node.get_content(metadata_mode=MetadataMode.EMBED)
        assert before.node.text in PARAGRAPHS  # the input nodes are left as they were
    assert post.postprocess_nodes(nodes) == nodes  # no query: nothing to compress for


# --------------------------------------------------------------------------- MCP


def mcp_call(args: list[str], env: dict, calls: list[tuple[str, dict]]):
    from mcp import Client, StdioServerParameters

    async def go():
        params = StdioServerParameters(command=sys.executable, args=["-m", "cprs_cli", "mcp", *args],
                                       env=env, cwd=str(REPO))
        async with Client(params, read_timeout_seconds=300) as client:
            tools = await client.list_tools()
            results = [await client.call_tool(name, arguments) for name, arguments in calls]
            return tools, results

    return asyncio.run(go())


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "base_url"])
def test_mcp_server_over_stdio(remote, compressor, server, tiny_encoder_critic_dir, serve_cache, tmp_path):
    from .serve_helpers import cprs_env

    doc = tmp_path / "notes.md"
    doc.write_text(PARAGRAPHS[1])
    args = ["--base-url", server.url] if remote else ["--model", str(tiny_encoder_critic_dir), "--device", "cpu"]
    tools, results = mcp_call(args, cprs_env(serve_cache), [
        ("compress", {"query": QUERY, "text": PARAGRAPHS[0], "max_tokens": 30}),
        ("compress", {"query": QUERY, "path": str(doc), "granularity": "paragraph"}),
        ("compress", {"query": QUERY}),
        ("compress", {"query": QUERY, "text": "x", "granularity": "chapter"}),
    ])
    (tool,) = tools.tools
    assert tool.name == "compress"
    assert {"query", "text", "path", "granularity", "max_tokens"} <= set(tool.input_schema["properties"])
    first, second, neither, bad = results
    for res, text, options, source in ((first, PARAGRAPHS[0], {"max_tokens": 30}, "<text>"),
                                       (second, PARAGRAPHS[1], {"granularity": "paragraph"}, str(doc))):
        assert not res.is_error, res
        got = res.structured_content
        result = want(compressor, text, **options)
        assert got["compressed_text"] == result.compressed_text
        assert got["input_tokens"] == result.stats.input_tokens and got["source"] == source
        assert json.loads(res.content[0].text) == got
    assert neither.is_error and "either text or path" in neither.content[0].text
    assert bad.is_error and "granularity" in bad.content[0].text
