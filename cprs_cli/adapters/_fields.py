"""The fields the pydantic-based adapters (LangChain, LlamaIndex) share, declared once.

Both frameworks' base classes are pydantic v2 models, so the settings of where compression runs
and the `CompressOptions` fields an adapter exposes live in one mixin model; each adapter adds
only its framework's method. Imported only by those adapters (their extras bring pydantic).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from ._backend import Backend, check_options


class CprsFields(BaseModel):
    """Where it runs: `compressor` (a loaded `cprs_cli.Compressor`), or `base_url` (a running
    `cprs serve`, with `api_key` or $CPRS_API_KEY), or neither: a Compressor of `model` on
    `device` is loaded on first use. The other fields are `CompressOptions` fields (validated at
    construction); `keep_empty` keeps documents compressed to nothing."""

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
    def _valid(self) -> CprsFields:
        check_options(self)
        return self

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = Backend(self.compressor, self.base_url, self.api_key, self.model, self.device,
                                    self.timeout)
        return self._backend
