"""Optional extras: one check, one message.

`cprs serve`, `cprs mcp`, `cprs corpus` and the framework adapters need packages that the core install does
not pull in (FastAPI and uvicorn, the MCP SDK, LangChain, LlamaIndex, Ray Data). Each entry point calls
`require(extra)` before importing them, so a missing extra is one line naming the pip command
(`MissingExtraError`, exit 2), never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError

# extra -> (what needs it, the import names it provides); pyproject.toml declares the same extras
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serve": ("cprs serve", ("fastapi", "uvicorn", "prometheus_client")),
    "mcp": ("cprs mcp", ("mcp", "httpx")),
    "langchain": ("the LangChain adapter", ("langchain_core", "httpx")),
    "llamaindex": ("the LlamaIndex adapter", ("llama_index.core", "httpx")),
    "client": ("a client of cprs serve (base_url=)", ("httpx",)),
    "corpus": ("cprs corpus", ("ray", "pyarrow")),
}


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package is missing, or a broken install
        return True


def require(extra: str) -> None:
    """Raise MissingExtraError unless every package of `extra` can be imported."""
    what, modules = EXTRAS[extra]
    missing = [m for m in modules if _missing(m)]
    if missing:
        raise MissingExtraError(f"{what} needs the '{extra}' extra ({', '.join(missing)} not installed): "
                                f"pip install 'cprs-cli[{extra}]'")
