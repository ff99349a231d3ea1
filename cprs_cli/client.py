"""A small client of a running `cprs serve` (`POST /v1/compress`), over httpx.

The adapters' `base_url=` mode uses it, and so can any Python program that would rather not
load a critic itself. Results are the `--format json` objects (`CompressionResult.to_dict()`);
the server's errors come back as the library's exceptions (`UsageError` for a bad option,
`InputError` for a document it could not read, `CprsError` otherwise), with the server's one-line
message. Needs httpx (any of the extras `serve`, `mcp`, `langchain`, `llamaindex` brings it).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from .errors import CprsError, InputError, UsageError
from .options import CompressOptions

API_KEY_ENV = "CPRS_API_KEY"
DEFAULT_TIMEOUT_S = 600.0  # a long document on a CPU takes minutes


class ServerError(CprsError):
    """`cprs serve` could not be reached, or answered with something other than a result."""


def raise_error(error: dict) -> None:
    """Raise the library exception for a server `{"code", "message"}` error object (the message
    already names the document)."""
    cls = {"usage": UsageError, "input": InputError}.get(str(error.get("code")), ServerError)
    raise cls(error.get("message", "error"))


class CprsClient:
    """`CprsClient("http://127.0.0.1:8091", api_key=None)`; `api_key` defaults to $CPRS_API_KEY."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        from .extras import require

        require("client")
        import httpx

        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CprsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _post(self, body: dict) -> dict:
        import httpx

        try:
            response = self._http.post("/v1/compress", json=body)
        except httpx.HTTPError as err:
            raise ServerError(f"cannot reach cprs serve at {self.base_url}: {type(err).__name__}: {err}") from None
        try:
            payload = response.json()
        except ValueError:
            raise ServerError(f"cprs serve at {self.base_url} answered HTTP {response.status_code} "
                              "without JSON") from None
        if response.status_code != 200:
            error = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(error, dict):
                raise_error(error)
            raise ServerError(f"cprs serve at {self.base_url} answered HTTP {response.status_code}")
        return payload

    def compress_many(self, documents: list[dict], options: CompressOptions) -> list[dict]:
        """Compress `documents` (each `{"text": ..., "source": ...}` or `{"file_base64": ...,
        "filename": ...}`) in one request: one result object or `{"error": {...}}` each, in order."""
        options.validate()
        body = {"documents": documents, **options.as_kwargs()}
        return self._post(body)["results"]

    def compress(self, text: str, options: CompressOptions, source: str | None = None) -> dict:
        """One text's result object (raises the library's exception on an error)."""
        (out,) = self.compress_many([{"text": text, **({"source": source} if source else {})}], options)
        if "error" in out:
            raise_error(out["error"])
        return out

    def compress_file(self, path: str | os.PathLike, options: CompressOptions, password: str | None = None) -> dict:
        """A local file, sent as base64 with its name (the server converts PDF, DOCX, text)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as err:
            raise InputError(f"cannot read ({err.strerror or err})", str(path)) from None
        doc = {"file_base64": base64.b64encode(data).decode("ascii"), "filename": p.name, "source": str(path)}
        if password is not None:
            doc["password"] = password
        (out,) = self.compress_many([doc], options)
        if "error" in out:
            raise_error(out["error"])
        return out
