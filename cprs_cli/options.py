"""What one compression is asked to do: `CompressOptions`, and the one place its rules live.

The rules (ranges, options that exclude each other, options that cannot apply together) used
to be checked in the CLI, in `Compressor.__init__`, in `Compressor.compress` and in
`resolve_instruction`, and the copies disagreed. `CompressOptions.validate()` is now the only
check; the library, the CLI and `Compressor.compress_many` all go through it.

Messages name parameters ("rate must be in (0, 1]"), never flags: `UsageError.params` lists the
parameter names a message mentions, and the CLI maps each to its flag when it prints.

Each field carries its one-line description in its metadata: the HTTP API's request model and
the adapters' fields are generated from the dataclass (`pydantic_fields`), so an option added
here reaches `cprs serve`, `CprsClient` and the adapters, with its description, and no second
list of fields exists to forget.

This module imports nothing heavy (no numpy, no torch): the CLI takes its choices and limits
from it at import time, and `cprs --help` stays instant.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal, get_type_hints

from .errors import UsageError
from .instructions import DEFAULT_TASK, TASKS


class Granularity(StrEnum):
    """The unit of what is kept."""

    word = "word"
    sentence = "sentence"
    paragraph = "paragraph"


class OutputFormat(StrEnum):
    """How a result is rendered (`cprs_cli.output`): `html` is the highlight report of one
    document (`render_html`), `messages` a chat's messages with the document replaced
    (`messages.render_messages`)."""

    text = "text"
    json = "json"
    jsonl = "jsonl"
    html = "html"
    messages = "messages"


# limits shared with the CLI's option declarations (shown in its --help)
MIN_TOKENS = 1  # max_tokens, min_span_tokens
LEXICAL_WEIGHT_RANGE = (0.0, 10.0)
MIN_BATCH_SIZE = 1
MIN_WINDOW_TOKENS = 16


def rate_ok(value: float) -> bool:
    """rate ∈ (0, 1]: a share of the input's cl100k tokens."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value <= 1.0


def threshold_ok(value: float) -> bool:
    """threshold ∈ (0, 1): at 0 every token would be kept, at 1 none (an open interval)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_prompt(instruction: str | None, task: str | None) -> None:
    """The control prompt's rules: free text or a known preset, not both, never blank."""
    if instruction is not None and task is not None:
        raise UsageError("give either instruction or task, not both", params=("instruction", "task"))
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise UsageError("instruction must not be empty", params=("instruction",))
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def _doc(text: str, choices: Any = None) -> dict:
    """A field's metadata: its one-line description (the API's schema shows it) and, for a
    field with a fixed set of values, those values (an enum class or a tuple of strings)."""
    return {"doc": text, "choices": choices}


@dataclass(frozen=True)
class CompressOptions:
    """Every control of one compression (`Compressor.compress` takes the same names as keywords).

    * `query`: what the compressed text must still answer (required, not blank);
    * `instruction` (free text) or `task` (a preset of `instructions.TASKS`; default "facts");
    * `granularity`: word, sentence or paragraph units;
    * a budget, `rate` (share of the input's cl100k tokens, in (0, 1]) or `max_tokens` (>= 1),
      or none (dynamic mode: the critic decides how much);
    * dynamic mode only: `threshold` (keep-probability, in (0, 1)), `min_span_tokens` (>= 1),
      `max_gap` (the tag gap repair, default the official 20);
    * budgeted mode only: `lexical_weight` (BM25 weight of the ranking, in [0, 10]);
    * `separator`: marks where text was dropped (default `select.DEFAULT_SEPARATOR`);
    * guarantees: `keep` (regular expressions: every unit a match touches is kept), `keep_first`
      (the first N units are kept), `min_tokens` (dynamic mode keeps at least this many cl100k
      tokens, best units first); kept units count against a budget;
    * `query` may also be a sequence of queries: one critic pass each, the union of what each
      keeps (a budget applies to each query's selection).

    None means "the default" (for the critic's calibrated values: its own).
    """

    query: str | tuple[str, ...] = field(metadata=_doc(
        "What the compressed text must still answer; a list of queries runs the critic once per "
        "query and keeps the union of what each keeps, in document order."))
    instruction: str | None = field(default=None, metadata=_doc(
        "The critic's control prompt as free text (instead of task)."))
    task: str | None = field(default=None, metadata=_doc(
        "A preset instruction, the kind of evidence to keep (default: facts; instead of instruction).",
        choices=tuple(TASKS)))
    granularity: str = field(default=Granularity.sentence, metadata=_doc(
        "The unit of what is kept.", choices=Granularity))
    rate: float | None = field(default=None, metadata=_doc(
        "Keep about this share of the input's cl100k tokens, in (0, 1] (instead of max_tokens)."))
    max_tokens: int | None = field(default=None, metadata=_doc(
        "Keep at most this many cl100k tokens, >= 1 (instead of rate)."))
    threshold: float | None = field(default=None, metadata=_doc(
        "Dynamic mode only: keep tokens whose keep-probability reaches this, in (0, 1), then the "
        "units they fall in (default: the critic's relative rule)."))
    min_span_tokens: int | None = field(default=None, metadata=_doc(
        "Dynamic mode only: drop kept runs shorter than this many critic tokens, >= 1."))
    max_gap: int | None = field(default=None, metadata=_doc(
        "Dynamic mode only: fill gaps of fewer than this many untagged critic tokens between "
        "tagged ones, >= 0 (default: the official 20)."))
    separator: str | None = field(default=None, metadata=_doc(
        "Marks where text was dropped (default: a newline, [...], a newline)."))
    lexical_weight: float | None = field(default=None, metadata=_doc(
        "With a budget only: weight of the BM25 score in the ranking, in [0, 10] "
        "(default: the critic's calibrated weight)."))
    keep: tuple[str, ...] | None = field(default=None, metadata=_doc(
        "Regular expressions (Python syntax): every unit a match touches is kept; with a budget "
        "they count against it and are kept even beyond it."))
    keep_first: int | None = field(default=None, metadata=_doc(
        "Keep the first N units, >= 0; with a budget they count against it and are kept even "
        "beyond it."))
    min_tokens: int | None = field(default=None, metadata=_doc(
        "Dynamic mode only: keep at least this many cl100k tokens, best units first, even when "
        "the critic judges nothing relevant."))

    @property
    def queries(self) -> tuple[str, ...]:
        """The queries, one or more (`query` may be a sequence: one critic pass each)."""
        return (self.query,) if isinstance(self.query, str) else tuple(self.query)

    @property
    def first_query(self) -> str:
        return self.queries[0] if self.queries else ""

    @classmethod
    def from_kwargs(cls, **kwargs) -> CompressOptions:
        """Options from keyword arguments; an unknown name is a UsageError (not a TypeError)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UsageError(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(names))}")
        if "query" not in kwargs:
            raise UsageError("query must not be empty", params=("query",))
        return cls(**kwargs)

    def as_kwargs(self) -> dict:
        """The options given (not None), as `Compressor.compress` keywords."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def budgeted(self) -> bool:
        return self.rate is not None or self.max_tokens is not None

    def validate(self) -> CompressOptions:
        """Raise UsageError (exit 2, naming the parameters) unless the options make sense;
        return self, so `opts = CompressOptions(...).validate()` reads well."""
        queries = self.queries if isinstance(self.query, (str, list, tuple)) else ()
        if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
            raise UsageError("query must not be empty", params=("query",))
        if self.keep is not None:
            if isinstance(self.keep, str) or not all(isinstance(k, str) for k in self.keep):
                raise UsageError("keep must be a list of regular expressions", params=("keep",))
            for pattern in self.keep:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise UsageError(f"keep pattern {pattern!r} is not a valid regular expression ({e})",
                                     params=("keep",)) from None
        if self.keep_first is not None and not (_is_int(self.keep_first) and self.keep_first >= 0):
            raise UsageError("keep_first must be at least 0", params=("keep_first",))
        if self.min_tokens is not None and not (_is_int(self.min_tokens) and self.min_tokens >= MIN_TOKENS):
            raise UsageError(f"min_tokens must be at least {MIN_TOKENS}", params=("min_tokens",))
        check_prompt(self.instruction, self.task)
        if self.granularity not in tuple(Granularity):
            raise UsageError(f"granularity must be one of {', '.join(Granularity)}",
                             params=("granularity",))
        if self.rate is not None and self.max_tokens is not None:
            raise UsageError("give either rate or max_tokens, not both", params=("rate", "max_tokens"))
        if self.rate is not None and not rate_ok(self.rate):
            raise UsageError("rate must be in (0, 1]", params=("rate",))
        if self.max_tokens is not None and not (_is_int(self.max_tokens) and self.max_tokens >= MIN_TOKENS):
            raise UsageError(f"max_tokens must be at least {MIN_TOKENS}", params=("max_tokens",))
        if self.threshold is not None and not threshold_ok(self.threshold):
            raise UsageError("threshold must be in (0, 1)", params=("threshold",))
        if self.min_span_tokens is not None and not (_is_int(self.min_span_tokens)
                                                     and self.min_span_tokens >= MIN_TOKENS):
            raise UsageError(f"min_span_tokens must be at least {MIN_TOKENS}", params=("min_span_tokens",))
        if self.max_gap is not None and not (_is_int(self.max_gap) and self.max_gap >= 0):
            raise UsageError("max_gap must be at least 0", params=("max_gap",))
        lo, hi = LEXICAL_WEIGHT_RANGE
        if self.lexical_weight is not None and not (
                isinstance(self.lexical_weight, (int, float)) and not math.isnan(self.lexical_weight)
                and lo <= self.lexical_weight <= hi):
            raise UsageError(f"lexical_weight must be in [{lo:g}, {hi:g}]", params=("lexical_weight",))
        if self.separator is not None and not isinstance(self.separator, str):
            raise UsageError("separator must be text", params=("separator",))
        # options that cannot apply: budgeted selection ranks units by score and never reads the
        # tags; dynamic selection never ranks, so BM25 has nothing to weigh
        if self.budgeted:
            budget = ("rate", "max_tokens")[self.rate is None]
            for name in ("threshold", "min_span_tokens", "max_gap", "min_tokens"):
                if getattr(self, name) is not None:
                    raise UsageError(f"{name} applies only without a budget; {budget} ranks units "
                                     "by score instead", params=(name, budget))
        elif self.lexical_weight is not None:
            raise UsageError("lexical_weight applies only with a budget (rate or max_tokens)",
                             params=("lexical_weight", "rate", "max_tokens"))
        return self

    @property
    def instruction_text(self) -> str:
        """The control prompt the critic reads: the free text, else the task's preset."""
        if self.instruction is not None:
            return self.instruction.strip()
        return TASKS[self.task or DEFAULT_TASK]

    @property
    def threshold_task(self) -> str | None:
        """The key of the critic's calibrated thresholds: the task, or "custom" for free text."""
        return "custom" if self.instruction is not None else self.task

    def budget(self, input_tokens: int) -> int | None:
        """The cl100k budget for an input of `input_tokens` tokens (None: dynamic mode)."""
        if self.rate is not None:
            return max(1, int(round(self.rate * input_tokens)))
        if self.max_tokens is not None:
            return int(self.max_tokens)
        return None


def pydantic_fields(exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """`CompressOptions`' fields as `pydantic.create_model` field definitions: the same names,
    types, defaults and descriptions, and the fixed values of `granularity` and `task` as Literals.

    The HTTP API's request model (`serve.api`) and the adapters' fields (`adapters._fields`) are
    generated from this, so a field added to CompressOptions reaches them with no second list.
    Pydantic checks the JSON types; the values are still checked by `validate()` alone.
    Imports pydantic (the `serve` extra and the adapters' extras bring it), so call it only there.
    """
    from pydantic import Field

    hints = get_type_hints(CompressOptions)
    out: dict[str, Any] = {}
    for f in fields(CompressOptions):
        if f.name in exclude:
            continue
        annotation = hints[f.name]
        choices = f.metadata.get("choices")
        if choices is not None:  # a Literal, not the enum: its schema is inline, with the description
            kind: Any = Literal.__getitem__(tuple(str(c) for c in choices))
            annotation = kind | None if f.default is None else kind
        default = ... if f.default is MISSING else f.default
        out[f.name] = (annotation, Field(default, description=f.metadata.get("doc")))
    return out
