"""The official QwenLong-CPRS HTTP API, field for field, translated to and from cprs.

The official release (github.com/Tongyi-Zhiwen/QwenLong-CPRS, `src/api_utils/run_api.py`) ships
the model only as a FastAPI service, `POST /qwen_long_compress_server`, and its example client
(`examples/infer.py`) posts to it. This module lets such a client talk to `cprs serve` with no
change but the URL. Facts of the official service that this follows:

* request: ``{"header": {"request_id": ...}, "payload": {"input": {"messages": [system, user,
  context]}, "parameters": {...}}}``; the three messages carry the instruction, the query and
  the document, in that order, with roles ``system``, ``user``, ``context``;
* parameters (all optional here): ``min_keyword_len`` (4; kept runs of that many tokens or fewer
  are dropped), ``complete_sentence`` (false; widen spans to whole sentences), ``return_offset``
  (false; ``[text, char_start, char_end]`` instead of strings), ``split_with_sent`` (true) and
  ``batch_size`` (1); others (the example client sends ``chunk_size``) are ignored;
* response: the request echoed, plus ``payload.output.text`` (kept spans in document order),
  ``payload.usage.input_tokens`` and ``header.status_code/status_name/status_message/finished``;
* errors: ``400 InvalidInputError``, ``440 SchemaError``, ``500 BackendError`` / ``InternalError``
  in the header, ``payload.output = {"is_match": false}`` and ``-1`` token counts.

What differs, on purpose: the official server answers HTTP 200 even for errors (and HTTP 500,
with no body it defines, for a body that is not JSON); `cprs serve` also uses the header's code
as the HTTP status, so a plain HTTP client sees the failure too. ``split_with_sent`` and
``batch_size`` are accepted and have no effect: cprs windows always end on sentence boundaries
where possible, and the server batches across requests by itself. ``usage.input_tokens`` counts
cl100k tokens of the document (cprs's one token count), not the critic's tokens.

How the parameters map to cprs: the tags decide what is kept, as in the official
post-processing: word granularity (tag runs snapped to whole words) with ``min_span_tokens =
min_keyword_len + 1``; with ``complete_sentence`` the same tags keep whole sentences
(sentence granularity at the critic's calibrated threshold). An empty system message selects
cprs's default instruction.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from ..errors import CprsError
from ..options import CompressOptions, Granularity
from ..result import CompressionResult

ROUTE = "/qwen_long_compress_server"
ROLES = ("system", "user", "context")
DEFAULTS = {"min_keyword_len": 4, "complete_sentence": False, "return_offset": False,
            "split_with_sent": True, "batch_size": 1}
# keep-probability used for `complete_sentence` when a critic has a dynamic rule but no
# calibrated threshold (the official model tags by argmax, which this approximates)
FALLBACK_THRESHOLD = 0.5


class OfficialError(Exception):
    """An error in the official shape: `status_code` and `status_name` go into the header."""

    status_code = 500
    status_name = "InternalError"


class InvalidInputError(OfficialError):
    status_code = 400
    status_name = "InvalidInputError"


class SchemaError(OfficialError):
    status_code = 440
    status_name = "SchemaError"


class BackendError(OfficialError):
    status_code = 500
    status_name = "BackendError"


class InternalError(OfficialError):
    status_code = 500
    status_name = "InternalError"


@dataclass
class OfficialRequest:
    data: dict  # the request as parsed: it is echoed back
    instruction: str | None
    query: str
    context: str
    min_keyword_len: int
    complete_sentence: bool
    return_offset: bool


def _schema(message: str) -> SchemaError:
    return SchemaError(message)


def parse_body(body: bytes) -> Any:
    """The JSON of the body; SchemaError (440) when it is not JSON."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise _schema("the request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise _schema(f"the request body is not valid JSON: {err.msg} at line {err.lineno} "
                      f"column {err.colno}") from None


def parse(data: Any) -> OfficialRequest:
    """Check the official request (SchemaError: a field is missing or of the wrong kind, or the
    roles are wrong; InvalidInputError: a value is out of range)."""
    if not isinstance(data, dict):
        raise _schema("the request must be a JSON object with 'header' and 'payload'")
    header, payload = data.get("header"), data.get("payload")
    if not isinstance(header, dict) or "request_id" not in header:
        raise _schema("header.request_id is required")
    if not isinstance(payload, dict) or not isinstance(payload.get("input"), dict):
        raise _schema("payload.input is required")
    messages = payload["input"].get("messages")
    if not isinstance(messages, list) or len(messages) != 3:
        raise _schema('payload.input.messages must be a list of 3 messages with roles "system", '
                      '"user" and "context"')
    for i, (msg, role) in enumerate(zip(messages, ROLES)):
        if not isinstance(msg, dict) or msg.get("role") != role:
            raise _schema(f'message {i} must have role "{role}" (the roles are "system", "user", '
                          '"context", in that order)')
        if not isinstance(msg.get("content"), str):
            raise _schema(f'message {i} ("{role}") needs a string content')
    params = payload.get("parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _schema("payload.parameters must be an object")
    values = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
    mkl = values["min_keyword_len"]
    if isinstance(mkl, bool) or not isinstance(mkl, int) or mkl < 0:
        raise InvalidInputError("parameters.min_keyword_len must be an integer >= 0")
    for name in ("complete_sentence", "return_offset"):
        if not isinstance(values[name], bool):
            raise InvalidInputError(f"parameters.{name} must be true or false")
    system, query, context = (m["content"] for m in messages)
    if not query.strip():
        raise InvalidInputError('the "user" message (the query) must not be empty')
    return OfficialRequest(data=data, instruction=system if system.strip() else None, query=query,
                           context=context, min_keyword_len=mkl,
                           complete_sentence=values["complete_sentence"],
                           return_offset=values["return_offset"])


def options(req: OfficialRequest, threshold_for_sentences: float | None) -> CompressOptions:
    """The cprs options of an official request (see the module docstring). `threshold_for_
    sentences`: the critic's calibrated keep-probability, used with `complete_sentence`."""
    if req.complete_sentence:
        return CompressOptions(query=req.query, instruction=req.instruction,
                               granularity=Granularity.sentence, threshold=threshold_for_sentences,
                               min_span_tokens=req.min_keyword_len + 1)
    return CompressOptions(query=req.query, instruction=req.instruction, granularity=Granularity.word,
                           min_span_tokens=req.min_keyword_len + 1)


def sentence_threshold(critic) -> float | None:
    """The threshold that makes the critic's tags (not its dynamic rule) keep sentences."""
    t = critic.threshold_for("custom")
    if t is None and getattr(critic, "dynamic", None) is not None:
        t = FALLBACK_THRESHOLD
    return t


def _echo(data: Any) -> dict:
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    if not isinstance(out.get("header"), dict):
        out["header"] = {}
    if not isinstance(out.get("payload"), dict):
        out["payload"] = {}
    return out


def success(req: OfficialRequest, result: CompressionResult) -> dict:
    out = _echo(req.data)
    if req.return_offset:
        text: list = [[sp.text, sp.start, sp.end] for sp in result.spans]
    else:
        text = [sp.text for sp in result.spans]
    out["payload"]["output"] = {"text": text}
    out["payload"]["usage"] = {"input_tokens": result.stats.input_tokens}
    out["header"].update(status_code=200, status_name="Success", status_message="Success", finished=True)
    return out


def failure(data: Any, err: OfficialError) -> dict:
    out = _echo(data)
    out["payload"]["output"] = {"is_match": False}
    out["payload"]["usage"] = {"input_tokens": -1, "output_tokens": -1}
    message = " ".join(str(err).split()) or err.status_name
    # as the official error path: no "finished" flag
    out["header"].update(status_code=err.status_code, status_name=err.status_name, status_message=message)
    return out


def from_item_error(error: BaseException, message: str) -> OfficialError:
    """The official error for a document that cprs could not compress."""
    if isinstance(error, CprsError):  # bad options, a document cprs cannot read
        return InvalidInputError(message)
    return BackendError(message)
