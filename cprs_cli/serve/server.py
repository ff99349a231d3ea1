"""Starting `cprs serve`: settings, loading the critic once, running uvicorn.

`run_server(ServeSettings(...))` is what the CLI's `serve` command calls. The critic is loaded
before the port is bound, so a bad `--model` fails at once with the CLI's one line and exit 4,
and `/readiness` is true from the first request on. With `workers > 1`, uvicorn starts that many
processes (each loads its own critic and runs its own batching worker) from the import string
`cprs_cli.serve.server:worker_app`, which reads the settings from the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

SETTINGS_ENV = "CPRS_SERVE_SETTINGS"  # how the parent hands the settings to worker processes
DEFAULT_PORT = 8091  # the official server's port in its README, so its clients need no change
DEFAULT_MAX_BODY_MB = 64.0
GRACEFUL_SHUTDOWN_S = 30  # requests in flight get this long to finish on SIGINT / SIGTERM


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    model: str | None = None
    device: str = "auto"
    max_batch_tokens: int | None = None  # None: the critic's default batch
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    workers: int = 1
    api_key: str | None = None

    def check(self) -> ServeSettings:
        if not 0 <= self.port <= 65535:
            raise UsageError("port must be in 0..65535", params=("port",))
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise UsageError("max_batch_tokens must be at least 1", params=("max_batch_tokens",))
        if not self.max_body_mb > 0:
            raise UsageError("max_body_mb must be positive", params=("max_body_mb",))
        if self.workers < 1:
            raise UsageError("workers must be at least 1", params=("workers",))
        if self.api_key is not None and not self.api_key.strip():
            self.api_key = None
        return self

    @property
    def max_body_bytes(self) -> int:
        return max(1, int(self.max_body_mb * (1 << 20)))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_compressor(settings: ServeSettings):
    """The Compressor the server uses, and its batch budget in tokens (`max_batch_tokens`, or
    the critic's default batch). The critic's batches hold `max_batch_tokens // window` windows,
    within the device's cap (`compressor.MAX_BATCH_TOKENS`)."""
    from ..compressor import Compressor

    comp = Compressor(model=settings.model, device=settings.device)
    per_window = int(comp.critic.max_positions)
    if settings.max_batch_tokens is None:
        return comp, comp.batch_size * per_window, []
    notes = []
    windows = max(1, settings.max_batch_tokens // per_window)
    cap = max(1, comp.max_batch_tokens // per_window)
    if windows > cap:
        notes.append(f"max_batch_tokens {settings.max_batch_tokens:,} lowered to {cap * per_window:,}: a critic "
                     f"batch holds at most {comp.max_batch_tokens:,} tokens on {comp.device}")
        windows = cap
    budget = min(settings.max_batch_tokens, cap * per_window)
    if windows != comp.batch_size:
        comp = Compressor(critic=comp.critic, batch_size=windows, window_tokens=comp.window_tokens)
    return comp, budget, notes


def build_app(settings: ServeSettings, say=None):
    from .app import create_app

    comp, budget, notes = load_compressor(settings)
    for note in notes:
        (say or _stderr)(f"warning: {note}")
    app = create_app(comp, max_batch_tokens=budget, max_body_bytes=settings.max_body_bytes,
                     api_key=settings.api_key)
    return app, comp, budget


def worker_app():
    """The app of one worker process (`--workers N`), from the parent's settings."""
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    app, _, _ = build_app(settings)
    return app


def _stderr(line: str) -> None:
    sys.stderr.write(f"cprs: {line}\n")
    sys.stderr.flush()


def run_server(settings: ServeSettings, say=None) -> None:
    """Load the critic, then serve until SIGINT / SIGTERM (uvicorn lets requests in flight
    finish). `say(line)` prints a note (default: `cprs: ...` on stderr)."""
    import uvicorn

    say = say or _stderr
    settings.check()
    if not is_loopback(settings.host) and not settings.api_key:
        say(f"warning: listening on {settings.host} without an API key: anyone who can reach port "
            f"{settings.port} can use this server (set --api-key or CPRS_API_KEY)")
    common: dict[str, Any] = dict(host=settings.host, port=settings.port,
                                  timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, log_level="info")
    if settings.workers == 1:
        app, comp, budget = build_app(settings, say)
        say(f"critic {comp.model_name} on {comp.device}; batches of up to {budget:,} tokens "
            f"({comp.batch_size} windows); http://{settings.host}:{settings.port}")
        uvicorn.run(app, **common)
        return
    # check the critic once here, so a bad --model is one line, not N crashing workers
    comp, budget, _ = load_compressor(settings)
    say(f"critic {comp.model_name} on {comp.device}; {settings.workers} worker processes, each with "
        f"batches of up to {budget:,} tokens; http://{settings.host}:{settings.port}")
    del comp
    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    uvicorn.run("cprs_cli.serve.server:worker_app", factory=True, workers=settings.workers, **common)
