"""Chat-message input and output: the document, query and instruction out of a message list,
and the same list back with the document replaced by its compressed text.

The official QwenLong-CPRS server takes `[{"role": "system"}, {"role": "user"}, {"role":
"context"}]`: the system message is the instruction, the user message the query, the context
message the document. Chat clients hold OpenAI-style `messages` instead (roles system, user,
assistant, tool; content a string or a list of `{"type": "text", "text": ...}` parts), where the
last user turn is the query and the document is either a top-level `context` field or the turns
before that last user turn. Before issue 11 such a file was compressed as JSON text.

    chat = parse_messages(json.loads(raw))          # or load_messages(raw_bytes, "chat.json")
    result = compressor.compress(chat.context, query=chat.query, instruction=chat.instruction)
    render_messages(chat, result.compressed_text)   # the list (or object) with the context replaced
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = ["ChatInput", "parse_messages", "load_messages", "render_messages"]


@dataclass
class ChatInput:
    """What a message list asks: the document (`context`), the `query`, the `instruction`
    (None: the default task's) and how to put the compressed document back."""

    original: Any  # the parsed JSON value (list or object), untouched
    form: str  # "official" | "openai-context" (a `context` field) | "openai-turns"
    context: str
    query: str
    instruction: str | None
    context_indices: tuple[int, ...] = ()  # messages whose contents are the document


def _content(message: dict, where: str) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: the text ones
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise ValueError(f"{where}: content must be text or a list of parts")


def parse_messages(value) -> ChatInput:
    """A ChatInput from a parsed JSON value: the official list, an OpenAI-style list, or an
    object with `messages` (and optionally `context`). ValueError says what is wrong."""
    obj = value
    messages = value.get("messages") if isinstance(value, dict) else value
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("expected a list of messages ({\"role\", \"content\"} objects) or an object with \"messages\"")
    roles = [str(m.get("role", "")) for m in messages]
    system = [_content(m, f"message {i + 1}") for i, m in enumerate(messages) if roles[i] == "system"]
    instruction = "\n\n".join(s for s in system if s.strip()) or None
    if "context" in roles:  # the official server's form
        idx = tuple(i for i, r in enumerate(roles) if r == "context")
        users = [i for i, r in enumerate(roles) if r == "user"]
        if not users:
            raise ValueError("no user message (the query)")
        context = "\n\n".join(_content(messages[i], f"message {i + 1}") for i in idx)
        query = _content(messages[users[-1]], f"message {users[-1] + 1}")
        form = "official"
    else:
        users = [i for i, r in enumerate(roles) if r == "user"]
        if not users:
            raise ValueError("no user message (the query)")
        last = users[-1]
        query = _content(messages[last], f"message {last + 1}")
        if isinstance(value, dict) and isinstance(value.get("context"), str):
            context, idx, form = value["context"], (), "openai-context"
        else:
            idx = tuple(i for i in range(last) if roles[i] != "system")
            context = "\n\n".join(_content(messages[i], f"message {i + 1}") for i in idx)
            form = "openai-turns"
    if not query.strip():
        raise ValueError("the query (last user message) is empty")
    if not context.strip():
        raise ValueError("no context: give a context message, a \"context\" field or earlier turns")
    return ChatInput(obj, form, context, query, instruction, idx)


def load_messages(data: bytes | str, source: str) -> ChatInput:
    """Parse a messages file; every problem is one InputError line naming `source`."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        value = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"not a JSON messages file ({' '.join(str(e).split())})", source) from None
    try:
        return parse_messages(value)
    except ValueError as e:
        raise InputError(f"not a messages list: {e}", source) from None


def render_messages(chat: ChatInput, compressed: str):
    """The input's messages with the document replaced by `compressed` (a new value; the input
    is not changed). Official form: the (first) context message holds it, other context messages
    go. A `context` field: the field holds it. Earlier turns: they become one user message
    holding it, between the system messages and the last user turn."""
    out = copy.deepcopy(chat.original)
    if chat.form == "openai-context":
        out["context"] = compressed
        return out
    messages = out["messages"] if isinstance(out, dict) else out
    first, drop = chat.context_indices[0], set(chat.context_indices[1:])
    new = []
    for i, m in enumerate(messages):
        if i == first:
            if chat.form == "official":
                m = {**m, "content": compressed}
            else:
                m = {"role": "user", "content": compressed}
            new.append(m)
        elif i not in drop:
            new.append(m)
    if isinstance(out, dict):
        out["messages"] = new
        return out
    return new
