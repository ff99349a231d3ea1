"""Critics: token windows in, per-token B/I/O/E probabilities out.

`registry` (names, base weights, install status) imports without torch, so `cprs models` and
`--help` stay instant; everything that needs torch is imported on first use.
"""

from __future__ import annotations

import importlib

from .registry import CRITICS, DEFAULT_CRITIC, CriticInfo, cache_dir, critic_status, list_critics

_LAZY = {
    "Critic": "base", "resolve_device": "base", "hash_files": "base",
    "EncoderCritic": "encoder", "HybridCritic": "hybrid", "HybridTagger": "hybrid",
    "load_critic": "loader", "load_critic_dir": "loader", "build_model": "loader",
    "base_model_dir": "loader", "base_state": "loader", "critic_config": "loader", "critic_kind": "loader",
}

__all__ = ["CRITICS", "DEFAULT_CRITIC", "CriticInfo", "cache_dir", "critic_status", "list_critics", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
