"""`GET /metrics` of `cprs serve`: request counts, tokens in and out, latency, batching.

Prometheus text format through `prometheus_client` (the maintained client; its own registry per
app, so two apps in one process, as in tests, never share counters). With `--workers N` each
worker process keeps its own counters: a scrape sees the worker that answered it.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# the routes counted by name; any other path is counted as "other" (bounded label values)
ROUTES = ("/v1/compress", "/qwen_long_compress_server", "/v1/models", "/readiness", "/liveness", "/metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cprs_requests", "HTTP requests answered, by route and status code",
                                ("route", "code"), registry=r)
        self.latency = Histogram("cprs_request_duration_seconds", "Time from request to response, by route",
                                 ("route",), buckets=LATENCY_BUCKETS, registry=r)
        self.input_tokens = Counter("cprs_input_tokens", "cl100k tokens of the documents compressed", registry=r)
        self.output_tokens = Counter("cprs_output_tokens", "cl100k tokens of the compressed output", registry=r)
        self.documents = Counter("cprs_documents", "Documents compressed, by outcome", ("outcome",), registry=r)
        self.batches = Counter("cprs_batches", "compress_many calls of the batching worker", registry=r)
        self.batch_documents = Histogram("cprs_batch_documents", "Documents per compress_many call",
                                         buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("cprs_batch_requests", "Requests per compress_many call",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.disconnects = Counter("cprs_client_disconnects",
                                   "Requests whose client went away before the answer", registry=r)
        self.cancelled = Counter("cprs_cancelled_documents",
                                 "Documents dropped from the queue because their client went away", registry=r)
        self.queued = Gauge("cprs_queued_documents", "Documents waiting for the batching worker", registry=r)

    @staticmethod
    def route(path: str) -> str:
        return path if path in ROUTES else "other"

    def observe_batch(self, documents: int, requests: int) -> None:
        self.batches.inc()
        self.batch_documents.observe(documents)
        self.batch_requests.observe(requests)

    def observe_result(self, result) -> None:
        self.documents.labels("ok").inc()
        self.input_tokens.inc(result.stats.input_tokens)
        self.output_tokens.inc(result.stats.output_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
