"""The fields the pydantic-based adapters (LangChain, LlamaIndex) share, declared once.

Both frameworks' base classes are pydantic v2 models, so the settings of where compression runs
and the `CompressOptions` fields an adapter exposes live in one mixin model; each adapter adds
only its framework's method. The option fields are not declared here: they are generated from
`CompressOptions` (`options.pydantic_fields`, every field but `query`, which comes with each
call), so an option added to the library reaches the adapters with no second list. Imported
only by those adapters (their extras bring pydantic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model, model_validator

from ..options import pydantic_fields
from ._backend import OPTION_FIELDS, Backend, check_options


class CprsSettings(BaseModel):
    """Where it runs: `compressor` (a loaded `cprs_cli.Compressor`), or `base_url` (a running
    `cprs serve`, with `api_key` or $CPRS_API_KEY), or neither: a Compressor of `model` on
    `device` is loaded on first use. `keep_empty` keeps documents compressed to nothing."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Any = None
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    device: str = "auto"
    timeout: float | None = None
    keep_empty: bool = False

    _backend: Backend | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _valid(self) -> CprsSettings:
        check_options(self)
        return self

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = Backend(self.compressor, self.base_url, self.api_key, self.model, self.device,
                                    self.timeout)
        return self._backend


_clash = set(OPTION_FIELDS) & set(CprsSettings.model_fields)
if _clash:  # a new CompressOptions field may not take the name of a setting
    raise TypeError(f"CompressOptions fields {sorted(_clash)} clash with the adapters' settings")

if TYPE_CHECKING:  # the generated class has the settings' methods; mypy sees those
    CprsFields = CprsSettings
else:
    CprsFields = create_model(
        "CprsFields", __base__=CprsSettings, __module__=__name__,
        __doc__="The settings of `CprsSettings` plus the `CompressOptions` fields (all but `query`), "
                "validated at construction.",
        **pydantic_fields(exclude=("query",)))
