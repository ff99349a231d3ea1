"""`cprs mcp`: a Model Context Protocol server over stdio with one tool, `compress`.

Agents call `compress(query, text | path, granularity, max_tokens)` to shrink a document before
they read it; the answer is the compressed text with its token counts. Built on the official
`mcp` Python SDK (`MCPServer`); the compression runs in-process (the critic is loaded once, at
start, so a bad `--model` fails before the agent connects) or, with `--base-url`, on a running
`cprs serve` (a `path` is then read here and sent as a file).

Needs `pip install 'cprs-cli[mcp]'`.
"""

from __future__ import annotations

from ..extras import require

require("mcp")

import anyio  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from ..errors import CprsError, UsageError  # noqa: E402
from ..options import CompressOptions  # noqa: E402
from ._backend import Backend  # noqa: E402

INSTRUCTIONS = ("cprs keeps only the parts of a long document that a question needs. Call compress "
                "with the question and the document's text (or a local file path: .txt, .md, .pdf, "
                ".docx) before reading a long document.")


class Compressed(BaseModel):
    """What the tool answers."""

    compressed_text: str
    source: str
    input_tokens: int
    output_tokens: int
    ratio: float


def build_server(backend: Backend) -> MCPServer:
    """The MCP server with its one tool, over `backend`."""
    server = MCPServer(name="cprs", instructions=INSTRUCTIONS)

    @server.tool(description="Compress a long document to the parts that answer `query`: give the "
                             "document as `text` or as a local file `path` (txt, md, pdf, docx). "
                             "`granularity`: word, sentence (default) or paragraph. `max_tokens`: "
                             "keep at most this many tokens (default: the critic decides).")
    async def compress(query: str, text: str | None = None, path: str | None = None,
                       granularity: str = "sentence", max_tokens: int | None = None) -> Compressed:
        try:
            if (text is None) == (path is None):
                raise UsageError("give either text or path")
            options = CompressOptions(query=query, granularity=granularity, max_tokens=max_tokens).validate()
            if text is not None:
                run = lambda: backend.compress_texts([text], options, ["<text>"])[0]  # noqa: E731
            else:
                run = lambda: backend.compress_file(str(path), options)  # noqa: E731
            result = await anyio.to_thread.run_sync(run)
        except CprsError as err:  # the agent reads the one-line message (a crash stays on the server)
            raise ToolError(" ".join(str(err).split())) from None
        stats = result["stats"]
        return Compressed(compressed_text=result["compressed_text"], source=result["source"],
                          input_tokens=stats["input_tokens"], output_tokens=stats["output_tokens"],
                          ratio=stats["ratio"])

    return server


def run_stdio(model: str | None = None, device: str = "auto", base_url: str | None = None,
              api_key: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes it."""
    backend = Backend(base_url=base_url, api_key=api_key, model=model, device=device)
    if base_url is None:
        backend.compressor  # noqa: B018 - load the critic now: errors before the agent connects
    server = build_server(backend)
    try:
        anyio.run(server.run_stdio_async)
    finally:
        backend.close()


__all__ = ["build_server", "run_stdio"]
