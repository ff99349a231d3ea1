"""`cprs serve` over real HTTP: both APIs, errors, auth, a concurrent burst, a client that goes
away, a restart. The server is a subprocess (`conftest.ServerProcess`) with the tiny test
critic, whose tags are random: tests compare the server with the library on the same critic,
never with expected text.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cprs_cli import segment
from cprs_cli.compressor import Compressor, Item
from cprs_cli.ingest import load_bytes
from cprs_cli.options import CompressOptions
from cprs_cli.tokens import count_tokens

from .serve_helpers import MAX_BODY_MB, ServerProcess, cprs_env

REPO = Path(__file__).resolve().parents[2]
APOLLO = (REPO / "cprs_cli" / "samples" / "apollo11.md").read_text()
QUERY = "When did Apollo 11 land on the Moon, and who walked on the surface?"
POLL_S = 60  # the most a test waits for the server to reach a state it is known to reach

# The body of the official example client, field for field: `compress_api_call_local` in
# examples/infer.py of github.com/Tongyi-Zhiwen/QwenLong-CPRS (the README's "Step 3" runs it), with
# the messages its `process_item` builds and the README's QA prompt as the shell passes it (bash
# keeps "\n" inside double quotes as a backslash and an n). The official README itself shows no
# request body; this client is the official example of one.
OFFICIAL_QA_PROMPT = (r"You are an expert for information extraction, your task is to extract some sentences "
                      r"from the documents as the supporting facts of the user's question.\n## tagging rule:\n"
                      r"- tag the supporting facts with 'fact'")


def official_example_body(query: str, context: str) -> dict:
    messages = [{"role": "system", "content": OFFICIAL_QA_PROMPT},
                {"role": "user", "content": query},
                {"role": "context", "content": context}]
    return {
        "header": {
            "request_id": "1111abca"
        },
        "payload": {
            "input": {
                "messages": messages
            },
            "parameters": {
                "min_keyword_len": 1,
                "complete_sentence": False,
                "batch_size": 1,
                "chunk_size": 8192
            }
        }
    }


def official_body(context: str, query: str = QUERY, system: str = "Extract the facts.", **params) -> dict:
    return {"header": {"request_id": "r-1"},
            "payload": {"input": {"messages": [{"role": "system", "content": system},
                                               {"role": "user", "content": query},
                                               {"role": "context", "content": context}]},
                        "parameters": params}}


def comparable(result: dict) -> dict:
    """A result without what differs between two runs of the same compression (timings)."""
    out = {k: v for k, v in result.items() if k != "stats"}
    stats = {k: v for k, v in result["stats"].items() if k not in ("seconds", "timings")}
    out["stats"] = stats
    out["spans"] = [{**sp, "score": round(sp["score"], 2)} for sp in result["spans"]]
    return out


def library(compressor: Compressor, text: str, **options) -> dict:
    return compressor.compress(text, options=CompressOptions(query=options.pop("query", QUERY), **options)).to_dict()


def assert_one_line_error(response: httpx.Response, status: int, code: str, *needles: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert "\n" not in message and "Traceback" not in response.text
    for needle in needles:
        assert needle in message, message
    return body


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(p for p in (m.group(2) or "").split(",") if p))
        if got == want:
            return float(m.group(3))
    return 0.0


def metrics(srv: ServerProcess) -> str:
    return httpx.get(srv.url + "/metrics", headers=srv.headers, timeout=30).text


def wait_for(predicate, what: str):
    deadline = time.monotonic() + POLL_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"the server never reached: {what}")


# --------------------------------------------------------------------------- cprs's own API


def test_v1_compress_is_the_library_result(server, compressor):
    for options in ({}, {"rate": 0.2}, {"max_tokens": 60, "granularity": "paragraph"},
                    {"granularity": "word", "threshold": 0.3}):
        r = server.client().post("/v1/compress", json={"text": APOLLO, "query": QUERY, **options})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["schema_version"] == 1
        assert comparable(got) == comparable(library(compressor, APOLLO, **options))
        for sp in got["spans"]:
            assert APOLLO[sp["start"]:sp["end"]] == sp["text"]


# Each case uses an option that the first version of the API refused, and differs from the same
# request without it (checked below), so an option the server dropped would show.
NEW_OPTIONS = [
    {"keep": [r"Armstrong", r"\bJuly\b"], "rate": 0.1},
    {"keep": [r"Collins"]},
    {"keep_first": 3, "max_tokens": 40},
    {"keep_first": 2, "granularity": "paragraph"},
    {"min_tokens": 80, "threshold": 0.999},
    {"query": [QUERY, "Who stayed in orbit?", "What did the crew bring back?"], "rate": 0.1},
    {"query": [QUERY, "Who stayed in orbit?"], "keep": ["Apollo"], "keep_first": 1, "max_gap": 3},
]


def _options(case: dict) -> CompressOptions:
    case = {**case, "query": case.get("query", QUERY)}
    return CompressOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in case.items()})


@pytest.mark.parametrize("case", NEW_OPTIONS, ids=lambda c: "+".join(sorted(c)))
def test_v1_compress_takes_every_option_as_the_library_does(server, compressor, case):
    r = server.client().post("/v1/compress", json={"text": APOLLO, "query": QUERY, **case})
    assert r.status_code == 200, r.text
    got = r.json()
    want = compressor.compress(APOLLO, options=_options(case)).to_dict()
    assert comparable(got) == comparable(want)
    # the option changed the result (the server could not have ignored it)
    base = {k: v for k, v in case.items() if k in ("rate", "max_tokens", "granularity", "threshold")}
    without = compressor.compress(APOLLO, options=_options(base)).to_dict()
    assert comparable(got) != comparable(without)
    if "keep" in case or "keep_first" in case:
        assert any(sp["forced"] for sp in got["spans"])
    if isinstance(case.get("query"), list):
        assert got["queries"] == case["query"] and got["query"] == case["query"][0]


def test_client_and_documents_list_pass_every_option(server, compressor):
    from cprs_cli.client import CprsClient

    paragraphs = [p for p in APOLLO.split("\n\n") if len(p) > 200][:2]
    for case in NEW_OPTIONS:
        opts = _options(case)
        with CprsClient(server.url) as client:
            got = client.compress_many([{"text": p, "source": f"p{i}"} for i, p in enumerate(paragraphs)], opts)
            one = client.compress(APOLLO, opts)
        for i, p in enumerate(paragraphs):
            want = compressor.compress(p, options=opts, source=f"p{i}").to_dict()
            assert comparable(got[i]) == comparable(want), case
        assert comparable(one) == comparable(compressor.compress(APOLLO, options=opts).to_dict())


def test_v1_request_fields_are_compress_options_fields(server):
    """Every CompressOptions field is a field of the request and of its OpenAPI schema, with a
    description; nothing else but the document fields is."""
    from dataclasses import fields

    names = [f.name for f in fields(CompressOptions)]
    spec = server.client().get("/openapi.json").json()
    props = spec["components"]["schemas"]["CompressRequest"]["properties"]
    document_fields = {"text", "file_base64", "filename", "password", "source", "documents"}
    assert set(props) == set(names) | document_fields
    for name in names:
        assert props[name].get("description"), name
    assert spec["components"]["schemas"]["CompressRequest"]["required"] == ["query"]
    assert props["granularity"]["enum"] == ["word", "sentence", "paragraph"]


def test_serve_docs_list_every_option():
    """docs/serve.md's table of /v1/compress options names every CompressOptions field."""
    from dataclasses import fields

    doc = (REPO / "docs" / "serve.md").read_text()
    section = doc[doc.index("## cprs's API"):doc.index("## The official API")]
    missing = [f.name for f in fields(CompressOptions) if f"`{f.name}`" not in section]
    assert not missing, f"docs/serve.md does not list {missing}"


def test_v1_compress_files_as_the_cli_reads_them(server, compressor):
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Apollo 11 landed on the Moon on 20 July 1969. Neil Armstrong walked first. "
                         "Buzz Aldrin followed him. Michael Collins stayed in orbit.")
    pdf_bytes = bytes(pdf.output())
    crlf = b"First line of notes.\r\nArmstrong walked on the Moon.\r\nThe end.\r\n"
    for name, data in (("report.pdf", pdf_bytes), ("notes.txt", crlf)):
        r = server.client().post("/v1/compress", json={
            "file_base64": base64.b64encode(data).decode(), "filename": name, "query": QUERY})
        assert r.status_code == 200, r.text
        got = r.json()
        doc = load_bytes(data, name)  # the text `cprs compress FILE` would read
        want = compressor.compress(doc.text, query=QUERY, source=doc.source).to_dict()
        assert got["source"] == name
        assert comparable(got) == comparable(want)
        assert got["offsets"]["text_length"] == len(doc.text)


def test_v1_documents_list_keeps_order_and_isolates_failures(server, compressor):
    paragraphs = [p for p in APOLLO.split("\n\n") if len(p) > 200][:3]
    docs = [{"text": paragraphs[0], "source": "a"},
            {"file_base64": base64.b64encode(b"%PDF-1.4\nbroken").decode(), "filename": "bad.pdf"},
            {"file_base64": "not base64!", "filename": "worse.pdf"},
            {"text": paragraphs[1], "source": "b"},
            {"text": paragraphs[2]}]
    r = server.client().post("/v1/compress", json={"documents": docs, "query": QUERY, "rate": 0.5})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 5
    assert results[1]["error"]["code"] == "input" and results[1]["error"]["index"] == 1
    assert "bad.pdf" in results[1]["error"]["message"]
    assert results[2]["error"] == {"code": "input", "message": "worse.pdf: file_base64 is not valid base64",
                                   "index": 2, "source": "worse.pdf"}
    for i, text, source in ((0, paragraphs[0], "a"), (3, paragraphs[1], "b"), (4, paragraphs[2], "<text>")):
        want = compressor.compress(text, query=QUERY, rate=0.5, source=source).to_dict()
        assert comparable(results[i]) == comparable(want)


def test_v1_single_unreadable_document_is_422(server):
    r = server.client().post("/v1/compress", json={"file_base64": base64.b64encode(b"\x00\x01\x02" * 50).decode(),
                                                   "filename": "blob.bin", "query": "q"})
    assert_one_line_error(r, 422, "input", "blob.bin")


@pytest.mark.parametrize("body, needles", [
    (b"{not json", ("not valid JSON",)),
    (b"", ("not valid JSON",)),
    (json.dumps({"text": "x", "query": "q", "rate": 2}).encode(), ("rate must be in (0, 1]",)),
    (json.dumps({"text": "x", "query": "q", "rate": 0.1, "threshold": 0.5}).encode(), ("threshold",)),
    (json.dumps({"text": "x", "query": "q", "ratee": 0.1}).encode(), ("ratee", "unknown field")),
    (json.dumps({"text": "x", "query": "q", "rate": "lots"}).encode(), ("rate",)),
    (json.dumps({"text": "x"}).encode(), ("query",)),
    (json.dumps({"text": "x", "query": "  "}).encode(), ("query must not be empty",)),
    (json.dumps({"query": "q"}).encode(), ("give text",)),
    (json.dumps({"query": "q", "text": "x", "documents": [{"text": "y"}]}).encode(), ("not both",)),
    (json.dumps({"query": "q", "granularity": "chapter", "text": "x"}).encode(), ("granularity",)),
    (json.dumps({"query": "q", "text": "x", "keep_firsts": 2}).encode(), ("keep_firsts: unknown field",)),
    (json.dumps({"query": "q", "documents": [{"text": "x", "rate": 0.1}]}).encode(),
     ("documents.0.rate: unknown field",)),
    (json.dumps({"query": "q", "text": "x", "keep_first": -1}).encode(), ("keep_first must be at least 0",)),
    (json.dumps({"query": "q", "text": "x", "keep_first": "two"}).encode(), ("keep_first:",)),
    (json.dumps({"query": "q", "text": "x", "keep": ["(unclosed"]}).encode(),
     ("keep pattern '(unclosed' is not a valid regular expression",)),
    (json.dumps({"query": "q", "text": "x", "keep": "Apollo"}).encode(), ("keep:",)),
    (json.dumps({"query": "q", "text": "x", "min_tokens": 0}).encode(), ("min_tokens must be at least 1",)),
    (json.dumps({"query": "q", "text": "x", "min_tokens": 5, "rate": 0.2}).encode(),
     ("min_tokens applies only without a budget",)),
    (json.dumps({"query": [], "text": "x"}).encode(), ("query must not be empty",)),
    (json.dumps({"query": ["q", " "], "text": "x"}).encode(), ("query must not be empty",)),
    (json.dumps({"query": ["q", 5], "text": "x"}).encode(), ("query:",)),
    (json.dumps({"query": 5, "text": "x"}).encode(), ("query:",)),
    (json.dumps({"query": "q", "text": "x", "task": "poems"}).encode(), ("task:", "facts")),
])
def test_v1_bad_requests_get_400_and_one_line(server, body, needles):
    r = server.client().post("/v1/compress", content=body, headers={"content-type": "application/json"})
    assert_one_line_error(r, 400, "usage", *needles)


def test_bodies_over_the_limit_get_413(server):
    big = json.dumps({"text": "word " * (MAX_BODY_MB * 2**20 // 5 + 10), "query": "q"}).encode()
    assert len(big) > MAX_BODY_MB * 2**20
    r = server.client().post("/v1/compress", content=big)
    assert_one_line_error(r, 413, "too_large", "--max-body-mb")

    def chunks():  # no Content-Length: the server counts
        for _ in range(MAX_BODY_MB + 1):
            yield b"x" * 2**20
    r = server.client().post("/qwen_long_compress_server", content=chunks())
    assert_one_line_error(r, 413, "too_large")
    # the server is still fine
    assert server.client().get("/readiness").json() == "success"


def test_unknown_route_is_a_json_error(server):
    r = server.client().get("/v2/nothing")
    assert_one_line_error(r, 404, "http")


# --------------------------------------------------------------------------- the official API


def test_official_example_client_body_gets_a_well_formed_answer(server, compressor):
    body = official_example_body(QUERY, APOLLO)
    r = server.client().post("/qwen_long_compress_server", content=json.dumps(body))
    assert r.status_code == 200, r.text
    got = r.json()
    # what the official client reads
    texts = got["payload"]["output"]["text"]
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
    # the request comes back, unknown parameters (chunk_size) included
    assert got["payload"]["input"] == body["payload"]["input"]
    assert got["payload"]["parameters"] == body["payload"]["parameters"]
    assert got["header"] == {"request_id": "1111abca", "status_code": 200, "status_name": "Success",
                             "status_message": "Success", "finished": True}
    assert got["payload"]["usage"] == {"input_tokens": count_tokens(APOLLO)}
    # the kept spans are those of the library with the translated options, in document order
    opts = CompressOptions(query=QUERY, instruction=OFFICIAL_QA_PROMPT, granularity="word", min_span_tokens=2)
    want = compressor.compress(APOLLO, options=opts)
    assert texts == [sp.text for sp in want.spans]
    pos = 0
    for t in texts:
        pos = APOLLO.index(t, pos) + len(t)


def test_official_parameters(server, compressor):
    client = server.client()

    def ask(**params):
        r = client.post("/qwen_long_compress_server", json=official_body(APOLLO, **params))
        assert r.status_code == 200, r.text
        assert r.json()["header"]["status_code"] == 200
        return r.json()["payload"]["output"]["text"]

    # return_offset: [text, start, end] into the context
    triples = ask(return_offset=True, min_keyword_len=0)
    assert triples and all(APOLLO[s:e] == t for t, s, e in triples)
    assert [t for t, _, _ in triples] == ask(min_keyword_len=0)
    # min_keyword_len drops short runs: what a larger one keeps, a smaller one keeps too
    kept = lambda ts: {i for _, s, e in ts for i in range(s, e)}  # noqa: E731
    assert kept(ask(return_offset=True, min_keyword_len=8)) <= kept(triples)
    assert ask(min_keyword_len=10**6) == []
    # complete_sentence: whole sentences
    sentences = {(int(s), int(e)) for s, e in segment.sentence_spans(APOLLO)}
    starts, ends = {s for s, _ in sentences}, {e for _, e in sentences}
    whole = ask(return_offset=True, complete_sentence=True, min_keyword_len=0)
    assert whole and all(s in starts and e in ends for _, s, e in whole)
    # defaults are the official ones (min_keyword_len 4)
    assert ask() == ask(min_keyword_len=4, complete_sentence=False, return_offset=False,
                        split_with_sent=True, batch_size=1)
    # an empty context keeps nothing, as the official server
    r = client.post("/qwen_long_compress_server", json=official_body(""))
    assert r.json()["payload"]["output"]["text"] == [] and r.json()["payload"]["usage"]["input_tokens"] == 0


@pytest.mark.parametrize("body, status, name", [
    (b"{not json", 440, "SchemaError"),
    (b"[1, 2]", 440, "SchemaError"),
    (json.dumps({"payload": official_body("x")["payload"]}).encode(), 440, "SchemaError"),
    (json.dumps({"header": {"request_id": 1}, "payload": {}}).encode(), 440, "SchemaError"),
    (json.dumps({**official_body("x"), "payload": {"input": {"messages": official_body("x")["payload"]["input"][
        "messages"][:2]}}}).encode(), 440, "SchemaError"),
    (json.dumps({"header": {"request_id": 1}, "payload": {"input": {"messages": [
        {"role": "user", "content": "q"}, {"role": "system", "content": "s"},
        {"role": "context", "content": "c"}]}}}).encode(), 440, "SchemaError"),
    (json.dumps({"header": {"request_id": 1}, "payload": {"input": {"messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": 5},
        {"role": "context", "content": "c"}]}}}).encode(), 440, "SchemaError"),
    (json.dumps(official_body("x", min_keyword_len="four")).encode(), 400, "InvalidInputError"),
    (json.dumps(official_body("x", return_offset="yes")).encode(), 400, "InvalidInputError"),
    (json.dumps(official_body("x", query="   ")).encode(), 400, "InvalidInputError"),
])
def test_official_errors_keep_the_official_codes(server, body, status, name):
    r = server.client().post("/qwen_long_compress_server", content=body)
    assert r.status_code == status, r.text
    got = r.json()
    assert got["header"]["status_code"] == status
    assert got["header"]["status_name"] == name
    assert "\n" not in got["header"]["status_message"] and "Traceback" not in r.text
    assert got["payload"]["output"] == {"is_match": False}
    assert got["payload"]["usage"] == {"input_tokens": -1, "output_tokens": -1}
    parsed = None
    try:
        parsed = json.loads(body)
    except ValueError:
        pass
    if isinstance(parsed, dict) and isinstance(parsed.get("header"), dict):
        assert got["header"]["request_id"] == parsed["header"]["request_id"]  # echoed


# --------------------------------------------------------------------------- the other routes


def test_probes_models_metrics(server, tiny_encoder_critic_dir):
    c = server.client()
    assert c.get("/liveness").json() == "success"
    assert c.get("/readiness").json() == "success"
    models = c.get("/v1/models").json()
    assert models["loaded"]["name"] == tiny_encoder_critic_dir.name
    assert {"mini", "small"} <= {m["name"] for m in models["models"]}
    r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert metric(r.text, "cprs_requests_total", route="/liveness", code="200") >= 1
    assert "cprs_request_duration_seconds_bucket" in r.text
    # the API description: every reference resolves, cprs's request schema included
    spec = c.get("/openapi.json").json()
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(spec))
    assert "components/schemas/CompressRequest" in refs
    for ref in refs:
        node = spec
        for part in ref.split("/"):
            node = node[part]
    assert "query" in spec["components"]["schemas"]["CompressRequest"]["properties"]


# --------------------------------------------------------------------------- under load


def test_concurrent_burst_answers_equal_single_answers(server):
    paragraphs = [p for p in APOLLO.split("\n\n") if len(p) > 100]
    cases = []
    for i, p in enumerate(paragraphs[:12]):
        if i % 3 == 2:
            cases.append(("/qwen_long_compress_server", official_body(p, return_offset=True, min_keyword_len=i % 4)))
        else:
            cases.append(("/v1/compress", {"text": p, "query": QUERY if i % 2 else "Who was the pilot?",
                                           **({"rate": 0.5} if i % 4 == 0 else {})}))
    cases.append(("/v1/compress", {"text": "", "query": "q", "rate": 2}))  # a bad one among them

    def post(case):
        with server.client() as c:
            r = c.post(case[0], json=case[1])
            return r.status_code, r.json()

    single = [post(case) for case in cases]
    # hold the worker with a long document, so the burst queues up behind it and is batched
    long_doc = threading.Thread(target=post, args=(("/v1/compress", {"text": APOLLO * 60, "query": QUERY}),))
    before = metrics(server)
    long_doc.start()
    wait_for(lambda: metric(metrics(server), "cprs_batches_total") > metric(before, "cprs_batches_total"),
             "the long document running")
    with ThreadPoolExecutor(len(cases)) as pool:
        burst = list(pool.map(post, cases))
    long_doc.join()
    for (s1, a1), (s2, a2) in zip(single, burst):
        assert s1 == s2
        if "schema_version" in a1:
            assert comparable(a1) == comparable(a2)
        else:
            assert a1 == a2
    assert single[-1][0] == 400
    after = metrics(server)
    # some compress_many call held more than one request
    multi = (metric(after, "cprs_batch_requests_count") - metric(after, "cprs_batch_requests_bucket", le="1.0")) - (
        metric(before, "cprs_batch_requests_count") - metric(before, "cprs_batch_requests_bucket", le="1.0"))
    assert multi >= 1


def _raw_request(port: int, path: str, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def test_a_client_that_goes_away_frees_its_work(server):
    before = metrics(server)
    holder = threading.Thread(target=lambda: server.client().post(
        "/v1/compress", json={"text": APOLLO * 150, "query": QUERY}))
    holder.start()
    wait_for(lambda: metric(metrics(server), "cprs_batches_total") > metric(before, "cprs_batches_total"),
             "the long document running")
    s = _raw_request(server.port, "/v1/compress", json.dumps({"text": "Armstrong walked.", "query": "who"}).encode())
    wait_for(lambda: metric(metrics(server), "cprs_queued_documents") == 1, "the short request queued")
    s.close()  # the client goes away while its request waits
    holder.join()
    wait_for(lambda: metric(metrics(server), "cprs_client_disconnects_total")
             > metric(before, "cprs_client_disconnects_total"), "the disconnect noticed")
    after = metrics(server)
    assert metric(after, "cprs_cancelled_documents_total") - metric(before, "cprs_cancelled_documents_total") == 1
    # only the long document was compressed
    ok = "cprs_documents_total"
    assert metric(after, ok, outcome="ok") - metric(before, ok, outcome="ok") == 1
    assert metric(after, "cprs_queued_documents") == 0


def test_a_slow_client_does_not_block_the_others(server):
    body = json.dumps({"text": APOLLO, "query": QUERY}).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    try:  # headers and half the body, then nothing
        s.sendall(f"POST /v1/compress HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                  + body[: len(body) // 2])
        r = server.client().post("/v1/compress", json={"text": APOLLO, "query": QUERY})
        assert r.status_code == 200
        r = server.client().post("/qwen_long_compress_server", json=official_body(APOLLO))
        assert r.status_code == 200
    finally:
        s.close()


# --------------------------------------------------------------------------- auth, restart


@pytest.fixture(scope="module")
def keyed_server(tiny_encoder_critic_dir, serve_cache, tmp_path_factory):
    """A server whose key comes from $CPRS_API_KEY."""
    log = tmp_path_factory.mktemp("serve-key") / "server.log"
    srv = ServerProcess(tiny_encoder_critic_dir, serve_cache, log, env=cprs_env(serve_cache, CPRS_API_KEY="s3cret"))
    srv.headers = {"Authorization": "Bearer s3cret"}
    srv.start()
    yield srv
    srv.stop()


def test_auth_on(keyed_server):
    url = keyed_server.url
    for path, method, body in (("/v1/compress", "POST", {"text": APOLLO, "query": QUERY}),
                               ("/qwen_long_compress_server", "POST", official_body(APOLLO)),
                               ("/metrics", "GET", None), ("/readiness", "GET", None),
                               ("/nowhere", "GET", None)):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = httpx.request(method, url + path, json=body, headers=headers, timeout=60)
            assert_one_line_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.request(method, url + path, json=body, headers=keyed_server.headers, timeout=300)
        assert r.status_code == (404 if path == "/nowhere" else 200), r.text


def test_auth_off(server):
    r = server.client().post("/v1/compress", json={"text": APOLLO, "query": QUERY},
                             headers={"Authorization": "Bearer anything"})
    assert r.status_code == 200


def test_restart_on_the_same_port_gives_the_same_answers(tiny_encoder_critic_dir, serve_cache, tmp_path):
    """The first server runs two worker processes (`--workers 2`), the restarted one a single
    process: the answers are the same."""
    log = tmp_path / "server.log"
    first = ServerProcess(tiny_encoder_critic_dir, serve_cache, log, "--workers", "2").start()
    requests = [("/v1/compress", {"text": APOLLO, "query": QUERY, "rate": 0.3}),
                ("/qwen_long_compress_server", official_example_body(QUERY, APOLLO))]
    try:
        with first.client() as c:
            before = [c.post(path, json=body).json() for path, body in requests]
            for _ in range(3):  # whichever worker answers, the same answers
                again = [c.post(path, json=body).json() for path, body in requests]
                assert comparable(again[0]) == comparable(before[0]) and again[1] == before[1]
        wait_for(lambda: first.log().count("Application startup complete") == 2, "both workers up")
    finally:
        rc = first.stop()
    assert rc in (0, -15, 143), first.log()  # a graceful stop
    assert "2 worker processes" in first.log() and "Traceback" not in first.log()
    second = ServerProcess(tiny_encoder_critic_dir, serve_cache, log, port=first.port).start()
    try:
        with second.client() as c:
            after = [c.post(path, json=body).json() for path, body in requests]
    finally:
        second.stop()
    assert comparable(before[0]) == comparable(after[0])
    assert before[1] == after[1]


# --------------------------------------------------------------------------- in-process


class _Recording:
    """A Compressor stand-in that records what reaches `compress_many`, and delegates."""

    def __init__(self, compressor):
        self.inner, self.calls = compressor, []

    def compress_many(self, items):
        self.calls.append([it.text for it in items])
        return self.inner.compress_many(items)


def test_batcher_cancelled_jobs_never_reach_the_critic_and_small_jobs_fill_in(compressor):
    from cprs_cli.serve.batcher import Batcher

    rec = _Recording(compressor)
    batcher = Batcher(rec, max_batch_tokens=100)
    opts = CompressOptions(query=QUERY)
    big = batcher.submit([Item("x " * 400, "big", opts)])            # 201 tokens estimated: alone
    gone = batcher.submit([Item("gone away.", "gone", opts)])
    small = [batcher.submit([Item(f"small {i}.", f"s{i}", opts)]) for i in range(3)]
    assert batcher.cancel(gone) is True
    batcher.start()  # the worker starts only now: the queue is as built above
    try:
        outs = [job.future.result(60) for job in (big, *small)]
    finally:
        batcher.close()
    assert rec.calls == [["x " * 400], ["small 0.", "small 1.", "small 2."]]
    assert all(len(o) == 1 and o[0].source == job.items[0].source for o, job in zip(outs, (big, *small)))
    assert gone.future.cancelled()


def test_warning_when_listening_beyond_loopback_without_a_key(monkeypatch, tiny_encoder_critic_dir):
    import uvicorn

    from cprs_cli.serve.server import ServeSettings, is_loopback, run_server

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))  # no port is bound
    for host, key, warned in (("0.0.0.0", None, True), ("0.0.0.0", "k", False), ("127.0.0.1", None, False),
                              ("::1", None, False), ("localhost", None, False), ("192.0.2.7", None, True)):
        lines = []
        run_server(ServeSettings(host=host, model=str(tiny_encoder_critic_dir), device="cpu", api_key=key),
                   say=lines.append)
        assert any("without an API key" in line for line in lines) == warned, (host, key, lines)
        assert is_loopback(host) != (host in ("0.0.0.0", "192.0.2.7"))
    assert calls and calls[-1]["host"] == "192.0.2.7"


def test_missing_extra_is_one_line_and_exit_2(monkeypatch):
    from typer.testing import CliRunner

    from cprs_cli import extras
    from cprs_cli.cli import app

    monkeypatch.setattr(extras, "_missing", lambda module: module in ("fastapi", "mcp"))
    for command, extra in (("serve", "serve"), ("mcp", "mcp")):
        r = CliRunner().invoke(app, [command])
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pip install 'cprs-cli[{extra}]'" in lines[0], r.stderr


def test_batcher_a_job_cancelled_while_running_does_not_fail_its_batch(compressor):
    from cprs_cli.serve.batcher import Batcher

    jobs = []

    class CancelFirstMidway:
        """Cancels the first job's future while its batch runs, as the event loop does when
        that client leaves."""

        def compress_many(self, items):
            for k, out in enumerate(compressor.compress_many(items)):
                if k == 0:
                    jobs[0].future.cancel()
                yield out

    batcher = Batcher(CancelFirstMidway(), max_batch_tokens=10_000)
    opts = CompressOptions(query=QUERY)
    jobs.extend(batcher.submit([Item(f"Sentence {i}. Another one.", f"s{i}", opts)]) for i in range(3))
    batcher.start()
    try:
        outs = [job.future.result(60) for job in jobs[1:]]
    finally:
        batcher.close()
    assert jobs[0].future.cancelled()
    assert [o[0].source for o in outs] == ["s1", "s2"]
