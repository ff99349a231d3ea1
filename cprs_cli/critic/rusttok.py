"""The critic's tokenizer straight from `tokenizer.json` (the Rust `tokenizers` library), without
transformers.

Why: `transformers.AutoTokenizer` costs about a second of imports on this project's CPU, more than
half the start-up budget of `cprs compress` (docs/speed.md, "Start-up"), while all cprs asks of a
tokenizer is ids and character offsets of plain text (`windows.tokenize`, `Critic.text_ids`) and
a few special-token ids. `RustTokenizer` answers exactly those calls, the way transformers' fast
tokenizer does: no truncation or padding (`tokenizer.json` files often carry a 128-token
truncation that transformers switches off per call), special-token text encoded as plain text
when `split_special_tokens=True` (transformers sets the backend's `encode_special_tokens`).
tests/test_startup.py checks ids and offsets against `AutoTokenizer` on hostile text.

Used for the shipped encoder critic only; critic directories keep `AutoTokenizer`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelError

_SPECIAL = ("cls_token", "sep_token", "pad_token", "eos_token", "unk_token")


class RustTokenizer:
    """The subset of a transformers fast tokenizer's interface that cprs uses."""

    is_fast = True

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # the Rust library raises its own exception type
            raise ModelError(f"cannot load the tokenizer ({exc})", str(path)) from None
        self._tok.no_truncation()  # documents are windowed by cprs, never cut or padded here
        self._tok.no_padding()
        self.model_max_length = 1 << 40
        names: dict[str, Any] = {}
        for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the map wins, as in transformers
            f = path / name
            if f.is_file():
                data = json.loads(f.read_text(encoding="utf-8"))
                names.update({k: data[k] for k in _SPECIAL if data.get(k) is not None})
        for key in _SPECIAL:
            value = names.get(key)
            if isinstance(value, dict):  # {"content": "[CLS]", ...}
                value = value.get("content")
            setattr(self, f"{key}_id", None if value is None else self._tok.token_to_id(value))

    @property
    def backend_tokenizer(self):
        """The Rust tokenizer, under transformers' name for it (`windows.document_tokenizer`
        copies it for documents)."""
        return self._tok

    def __call__(self, text: str | list[str], *, add_special_tokens: bool = True,
                 split_special_tokens: bool = False, return_offsets_mapping: bool = False,
                 **_ignored: Any) -> dict[str, list]:
        self._tok.encode_special_tokens = split_special_tokens
        batch = [text] if isinstance(text, str) else list(text)
        encs = self._tok.encode_batch(batch, add_special_tokens=add_special_tokens)
        out: dict[str, list] = {"input_ids": [e.ids for e in encs]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encs]
        if isinstance(text, str):
            out = {k: v[0] for k, v in out.items()}
        return out
