"""The FastAPI application of `cprs serve`: routes, auth, body limit, errors, metrics.

Routes: `POST /v1/compress` (cprs's API, `serve.api`), `POST /qwen_long_compress_server` (the
official QwenLong-CPRS API, `serve.official`), `GET /readiness` and `GET /liveness` (official),
`GET /v1/models` and `GET /metrics`. Every compression goes through the one `Batcher`, so
concurrent requests share the critic's batches.

Rules every route follows: an error is one JSON line-message (`{"error": {"code", "message"}}`,
or the official error shape on the official route), never a traceback; bodies larger than
`max_body_bytes` get 413 before any parsing; with an API key, a request without
`Authorization: Bearer <key>` gets 401; a client that goes away while its request waits frees
its place in the queue (`Batcher.cancel`).

The two guards are plain ASGI middleware written here: uvicorn and Starlette have no body-size
limit (FastAPI's docs leave it to a reverse proxy), and a bearer check on every route, 404s
included, is a few lines, where FastAPI's security dependencies would guard only the routes
that declare them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..compressor import Compressor, Item, ItemError
from ..errors import CprsError, UsageError
from ..result import CompressionResult
from . import api, official
from .batcher import Batcher, Job, ShuttingDown
from .metrics import Metrics

JSON = "application/json"


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "error"


def _json_bytes(obj: Any) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON can carry one in): escape everything
        return json.dumps(obj, ensure_ascii=True).encode("ascii")


async def _json_response(obj: Any, status: int = 200) -> Response:
    # large bodies (an echoed document, thousands of spans) are encoded off the event loop
    body = await run_in_threadpool(_json_bytes, obj) if status == 200 else _json_bytes(obj)
    return Response(body, status_code=status, media_type=JSON)


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": _one_line(message)}}, status_code=status,
                        headers=headers)


# --------------------------------------------------------------------------- ASGI guards


async def _send_json(send, status: int, obj: dict, headers: list | None = None) -> None:
    body = _json_bytes(obj)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """Every request needs `Authorization: Bearer <key>` (compared in constant time)."""

    def __init__(self, app, api_key: str):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            message = ("missing Authorization header: this server needs 'Authorization: Bearer <key>'"
                       if not given else "wrong API key")
            return await _send_json(send, 401, {"error": {"code": "unauthorized", "message": message}},
                                    [(b"www-authenticate", b"Bearer")])
        return await self.app(scope, receive, send)


class BodyLimit:
    """Read the whole body first, refusing it with 413 once it passes `max_bytes` (by its
    Content-Length, or by counting a chunked body), then hand it to the app in one piece. Later
    `receive()` calls go to the server, so the app still hears about a client that leaves."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> dict:
        return {"error": {"code": "too_large",
                          "message": f"request body larger than {self.max_bytes / 2**20:g} MB (--max-body-mb)"}}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_json(send, 413, self._too_large(), [(b"connection", b"close")])
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left while sending: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _send_json(send, 413, self._too_large(), [(b"connection", b"close")])
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class RequestMetrics:
    """Count every answer by route and status, and time it."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self.metrics.route(scope.get("path", ""))
        start = time.perf_counter()
        status = [500]

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


# --------------------------------------------------------------------------- the app


async def _until_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _wait(request: Request, batcher: Batcher, metrics: Metrics, job: Job):
    """The job's outcomes, or None when the client went away first (the job is then cancelled:
    dropped from the queue if it had not started)."""
    result = asyncio.wrap_future(job.future)
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        done, _ = await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if result in done:
        return result.result()
    metrics.disconnects.inc()
    if batcher.cancel(job):
        metrics.cancelled.inc(len(job.items))
    result.cancel()
    return None


def critic_rows() -> list[dict]:
    """The critics cprs knows, as `cprs models --json` lists them."""
    from ..critic import registry

    rows = []
    for c in registry.list_critics():
        row = asdict(c)
        row["delta_path"] = str(c.delta_path)
        row["default"] = c.name == registry.DEFAULT_CRITIC
        row["default_on_gpu"] = c.name == registry.DEFAULT_GPU_CRITIC
        rows.append(row)
    return rows


def create_app(compressor: Compressor, *, max_batch_tokens: int, max_body_bytes: int,
               api_key: str | None = None) -> FastAPI:
    """The app over a loaded `Compressor`; the batching worker starts and stops with the app."""
    metrics = Metrics()
    batcher = Batcher(compressor, max_batch_tokens, on_batch=metrics.observe_batch)
    sentence_threshold = official.sentence_threshold(compressor.critic)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(batcher.close)

    app = FastAPI(title="cprs", summary="Query-guided compression of long documents (QwenLong-CPRS API "
                                        "and cprs's own)", lifespan=lifespan, redoc_url=None)
    app.state.batcher = batcher
    app.state.metrics = metrics

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, "http", exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error_response(400, "usage", _validation_message(exc.errors()))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        return error_response(500, "internal", f"internal error ({type(exc).__name__})")

    async def run_items(request: Request, items) -> list | None:
        try:
            job = batcher.submit(items)
        except ShuttingDown as err:
            raise _Unavailable(str(err)) from None
        metrics.queued.set(batcher.queued_documents)
        try:
            return await _wait(request, batcher, metrics, job)
        except ShuttingDown as err:
            raise _Unavailable(str(err)) from None
        finally:
            metrics.queued.set(batcher.queued_documents)

    def record(outcomes) -> None:
        for out in outcomes:
            if isinstance(out, CompressionResult):
                metrics.observe_result(out)
            else:
                metrics.documents.labels("error").inc()

    # the body is parsed by hand (off the event loop), so its schema is declared here for /docs
    schemas = api.CompressRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = {**schemas.pop("$defs", {}), "CompressRequest": schemas}
    default_openapi = app.openapi

    def openapi() -> dict:
        spec = default_openapi()
        spec.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]

    @app.post(api.ROUTE, summary="Compress one document or several (cprs's own API)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  JSON: {"schema": {"$ref": "#/components/schemas/CompressRequest"}}}}})
    async def compress(request: Request):
        body = await request.body()
        try:
            req = await run_in_threadpool(api.CompressRequest.model_validate_json, body)
        except ValidationError as err:
            return error_response(400, "usage", _validation_message(err.errors()))
        try:
            options = req.options()
            docs = req.document_list()
        except UsageError as err:
            return error_response(400, "usage", str(err))
        # files are decoded and converted in the thread pool: a slow PDF never holds the device
        prepared = await run_in_threadpool(_prepare, docs, options, max_body_bytes)
        items = [p for p in prepared if not isinstance(p, ItemError)]
        outcomes = await run_items(request, items) if items else []
        if outcomes is None:
            return Response(status_code=499)  # nobody is listening; the status is for the log
        it = iter(outcomes)
        merged = [p if isinstance(p, ItemError) else next(it) for p in prepared]
        record(merged)
        if req.single:
            (out,) = merged
            if isinstance(out, ItemError):
                return JSONResponse(api.error_object(out.error, out.message), status_code=api.http_status(out.error))
            return await _json_response(out.to_dict())
        results = [api.error_object(o.error, o.message, i, o.source) if isinstance(o, ItemError)
                   else o.to_dict() for i, o in enumerate(merged)]
        return await _json_response(api.many_response(results))

    @app.post(official.ROUTE, summary="The official QwenLong-CPRS API (request and response as the "
                                      "official server)")
    async def qwen_long_compress_server(request: Request):
        data: Any = None
        try:
            body = await request.body()
            data = await run_in_threadpool(official.parse_body, body)
            req = official.parse(data)
            opts = official.options(req, sentence_threshold)
            outcomes = await run_items(request, [Item(req.context, "context", opts)])
            if outcomes is None:
                return Response(status_code=499)
            (out,) = outcomes
            record(outcomes)
            if isinstance(out, ItemError):
                raise official.from_item_error(out.error, out.message)
            return await _json_response(official.success(req, out))
        except official.OfficialError as err:
            return await _json_response(official.failure(data, err), err.status_code)
        except _Unavailable as err:
            return await _json_response(official.failure(data, official.BackendError(str(err))), 503)
        except CprsError as err:
            bad = official.InvalidInputError(str(err))
            return await _json_response(official.failure(data, bad), bad.status_code)
        except Exception as err:  # noqa: BLE001 - the official shape, never a traceback
            internal = official.InternalError(f"internal error ({type(err).__name__})")
            return await _json_response(official.failure(data, internal), internal.status_code)

    @app.exception_handler(_Unavailable)
    async def _unavailable(request: Request, exc: _Unavailable):
        return error_response(503, "unavailable", str(exc))

    @app.get("/readiness", summary="Ready to compress (official)")
    async def readiness():
        if not batcher.alive:
            return error_response(503, "unavailable", "the batching worker is not running")
        return "success"

    @app.get("/liveness", summary="The process answers (official)")
    async def liveness():
        return "success"

    @app.get("/v1/models", summary="The loaded critic and the critics cprs knows")
    async def models():
        rows = await run_in_threadpool(critic_rows)
        return {"loaded": {"name": compressor.model_name, "sha256": compressor.model_sha256,
                           "device": compressor.device, "window_tokens": compressor.window_tokens,
                           "batch_windows": compressor.batch_size, "max_batch_tokens": batcher.max_batch_tokens},
                "models": rows}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        metrics.queued.set(batcher.queued_documents)
        return PlainTextResponse(metrics.render(), media_type=metrics.content_type)

    # the last added runs first: metrics see every answer, auth comes before the body is read
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


class _Unavailable(Exception):
    """The server is shutting down: 503."""


def _validation_message(errors) -> str:
    """Pydantic's first error as one line: `rate: Input should be a valid number`."""
    if not errors:
        return "invalid request"
    err = errors[0]
    if err.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
    # the path to the field: list indices and field names; pydantic also puts the member of a
    # union it tried in the path (`query.str`), which names no field and is left out
    path = [p for p in err.get("loc", ()) if p != "body"]
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"  # the last part is the unknown name itself
        path, last = path[:-1], path[-1:]
    else:
        last = []
    loc = ".".join(str(p) for p in [*(p for p in path if isinstance(p, int) or p in api.FIELD_NAMES), *last])
    return f"{loc}: {msg}" if loc else msg


def _prepare(docs, options, max_bytes: int) -> list:
    """Each document as an Item, or an ItemError when it cannot be read."""
    out: list[Item | ItemError] = []
    for i, doc in enumerate(docs):
        try:
            item = api.to_item(doc, options, max_bytes)
            out.append(item)
        except Exception as err:  # noqa: BLE001 - one document's failure is its own
            source = doc.source or doc.filename or "<text>"
            message = _one_line(err) if isinstance(err, CprsError) else f"{type(err).__name__}: {_one_line(err)}"
            out.append(ItemError(i, source, message, err))
    return out
