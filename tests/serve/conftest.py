"""Fixtures of the `cprs serve` and adapter tests (helpers in `serve_helpers`): a `cprs serve`
subprocess with the tiny test critic, shared by the session, and the same critic in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from .serve_helpers import MAX_BODY_MB, ServerProcess


@pytest.fixture(scope="session")
def serve_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "cprs-cache"


@pytest.fixture(scope="session")
def server(tiny_encoder_critic_dir, serve_cache, tmp_path_factory):
    """A `cprs serve` without an API key, shared by the session."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    srv = ServerProcess(tiny_encoder_critic_dir, serve_cache, log, "--max-body-mb", str(MAX_BODY_MB)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def compressor(tiny_encoder_critic_dir):
    """The same critic in-process: what a single library call answers."""
    from cprs_cli.compressor import Compressor

    return Compressor(model=str(tiny_encoder_critic_dir), device="cpu")
