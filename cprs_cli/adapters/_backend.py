"""What the adapters share: where compression runs, and what a compressed document carries.

Each adapter runs either in-process, with a `Compressor` (given, or loaded on first use from
`model` / `device`), or as a client of a running `cprs serve` (`base_url=`, `CprsClient`). Both
give the same `--format json` objects, so the adapters have one code path after this module.
`cprs_metadata` is the one shape of what a compressed document adds to its metadata.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import CprsError, UsageError
from ..options import CompressOptions

# the CompressOptions fields an adapter exposes as its own: all of them but the query, which
# comes with each call
OPTION_FIELDS = tuple(f.name for f in fields(CompressOptions) if f.name != "query")
METADATA_KEY = "cprs"


def options_of(obj: Any, query: str) -> CompressOptions:
    """The options of an adapter object (its OPTION_FIELDS attributes) for `query`, validated."""
    given = {name: getattr(obj, name) for name in OPTION_FIELDS if getattr(obj, name, None) is not None}
    return CompressOptions(query=query, **given).validate()


def check_options(obj: Any) -> None:
    """Validate an adapter's options at construction (with a stand-in query)."""
    options_of(obj, "?")


class Backend:
    """In-process or remote compression, returning result objects (`to_dict()`)."""

    def __init__(self, compressor=None, base_url: str | None = None, api_key: str | None = None,
                 model: str | None = None, device: str = "auto", timeout: float | None = None):
        if compressor is not None and base_url is not None:
            raise UsageError("give either compressor or base_url, not both")
        self._compressor = compressor
        self._model, self._device = model, device
        self._client = None
        if base_url is not None:
            from ..client import DEFAULT_TIMEOUT_S, CprsClient

            self._client = CprsClient(base_url, api_key=api_key, timeout=timeout or DEFAULT_TIMEOUT_S)

    @property
    def compressor(self):
        """The in-process Compressor (loaded on first use); None for a remote backend."""
        if self._client is None and self._compressor is None:
            from ..compressor import Compressor

            self._compressor = Compressor(model=self._model, device=self._device)
        return self._compressor

    def compress_texts(self, texts: list[str], options: CompressOptions,
                       sources: list[str] | None = None) -> list[dict]:
        """One result object per text, in order (all in one batch); raises on any failure."""
        sources = sources or ["<text>"] * len(texts)
        if self._client is not None:
            docs = [{"text": t, "source": s} for t, s in zip(texts, sources)]
            outs = self._client.compress_many(docs, options)
            for out in outs:
                if "error" in out:
                    from ..client import raise_error

                    raise_error(out["error"])
            return outs
        from ..compressor import Item, ItemError

        results = []
        for out in self.compressor.compress_many([Item(t, s) for t, s in zip(texts, sources)], options):
            if isinstance(out, ItemError):
                raise out.error if isinstance(out.error, CprsError) else CprsError(out.message)
            results.append(out.to_dict())
        return results

    def compress_file(self, path: str, options: CompressOptions) -> dict:
        if self._client is not None:
            return self._client.compress_file(path, options)
        from ..ingest import load_path

        doc = load_path(path)
        (out,) = self.compress_texts([doc.text], options, [doc.source])
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def cprs_metadata(result: dict) -> dict:
    """What a compressed document adds to its metadata: the kept spans as `[start, end]` offsets
    into the original text, the stats, and the critic."""
    return {"spans": [[sp["start"], sp["end"]] for sp in result["spans"]],
            "stats": result["stats"], "model": result["model"]}


__all__ = ["Backend", "OPTION_FIELDS", "METADATA_KEY", "options_of", "check_options", "cprs_metadata"]
