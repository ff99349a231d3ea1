"""The library API: `Compressor(model).compress(text, query=...)` and `compress_many(items, options)`.

It wires the stages together: tokenize once → plan windows → critic in batches →
tags → selection → result. `compress_many` fills the critic's batches with the windows of many
documents at once (many short documents share one batch) and yields results in input order;
`compress` is its one-item case. The CLI is a thin layer over this class.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING

import numpy as np

from . import segment
from .errors import UsageError
from .ingest import Document, normalise_text
from .language import language_warning
from .options import MIN_BATCH_SIZE, MIN_WINDOW_TOKENS, CompressOptions
from .result import CompressionResult, Span, Stats, text_sha256
from .select import DEFAULT_SEPARATOR, assemble, select
from .structure import structured_units
from .tags import OFFICIAL_MAX_GAP
from .tokens import count_tokens
from .windows import Plan, TokenizedDoc, plan, tokenize

if TYPE_CHECKING:
    from .critic import Critic

Progress = Callable[[int, int], None]

# Documents at least this long are tokenised in a thread beside their segmentation (~40K tokens)
TOKENIZE_APART_CHARS = 200_000

# Most tokens one critic batch may hold, by device type: memory grows with batch x window length
# (and attention with its square), so a batch size of 100,000 windows would exhaust any machine.
# The critic's own default batch always fits (see Compressor.max_batch_tokens).
MAX_BATCH_TOKENS = {"cpu": 1 << 15, "cuda": 1 << 18}


@dataclass(frozen=True)
class Item:
    """One document for `compress_many`: its text, the name results carry, and (optionally) its
    own options instead of the call's, and the `ingest.Document` the text comes from (its
    structure and pages then count as for a Document item; `text` is its text)."""

    text: str
    source: str = "<text>"
    options: CompressOptions | None = None
    document: Document | None = None


@dataclass(frozen=True)
class ItemError:
    """An item of `compress_many` that failed: the others go on. `message` is one line;
    `error` is the exception itself (a `CprsError` carries an exit code)."""

    index: int
    source: str
    message: str
    error: BaseException


@dataclass
class _Job:
    """One document on its way through `compress_many` (one plan per query)."""

    index: int
    source: str
    original: str  # the caller's text (spans are cut from it)
    text: str  # the cleaned copy the stages see
    queries: list[str]  # cleaned
    options: CompressOptions
    sentences: np.ndarray
    units: np.ndarray  # the granularity's units, with the document's structure
    plans: list[Plan]
    input_count: Future[int]  # the cl100k count, counted in a worker thread
    document: Document | None = None  # the ingest.Document, when the item was one
    probs: list[np.ndarray] | None = None
    seconds: float = 0.0  # time spent on this document alone
    tokenize: float = 0.0
    critic: float = 0.0  # its share of the shared critic batches
    # budgeted selection's unit costs and BM25 scores, computed beside the critic
    selection_inputs: tuple[Future | None, list[Future | None]] | None = None

    @property
    def plan(self) -> Plan:
        return self.plans[0]


class Compressor:
    """Load a critic once; compress many documents with it.

    `model`: None (the default shipped critic), a shipped name ("mini", "small") or a critic
    directory. `device`: "auto", "cpu", "cuda" or "cuda:N".
    """

    def __init__(self, model: str | Path | None = None, device: str = "auto", batch_size: int | None = None,
                 window_tokens: int | None = None, critic: Critic | None = None,
                 max_batch_tokens: int | None = None):
        if batch_size is not None and batch_size < MIN_BATCH_SIZE:
            raise UsageError(f"batch_size must be at least {MIN_BATCH_SIZE}", params=("batch_size",))
        if window_tokens is not None and window_tokens < MIN_WINDOW_TOKENS:
            raise UsageError(f"window_tokens must be at least {MIN_WINDOW_TOKENS}", params=("window_tokens",))
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise UsageError("max_batch_tokens must be at least 1", params=("max_batch_tokens",))
        devices = None
        if critic is None:
            from .critic import load_critic  # torch: imported when a critic is loaded, not with this module
            from .critic.base import resolve_devices

            devices = resolve_devices(device)
            critic = load_critic(model, "auto" if device in (None, "", "auto") else str(devices[0]),
                                 window_tokens)
        self.critic = critic
        # one copy of the critic per further GPU (`device="cuda:0,1"`, or "cuda" for all): each
        # runs its share of the batches in its own worker thread (`_run_windows`)
        self.critics = [critic] + [critic.replicate(d) for d in (devices or [])[1:]]
        self.window_tokens = window_tokens or self.critic.default_window_tokens
        # batches are bounded by tokens whatever batch_size says: a window holds at most
        # max_positions tokens, prompt included
        per_window = int(self.critic.max_positions)
        device_type = getattr(self.critic.device, "type", "cpu")
        cap_tokens = max(MAX_BATCH_TOKENS.get(device_type, MAX_BATCH_TOKENS["cpu"]),
                         int(self.critic.default_batch_size) * per_window)
        cap = max(1, cap_tokens // per_window)
        # run-level warnings, copied into every result's stats
        self.warnings: list[dict[str, str]] = []
        if max_batch_tokens is not None and batch_size is None:
            # sized by tokens alone: as many windows as fit (a short window takes less room)
            self.batch_size = max(1, max_batch_tokens // MIN_WINDOW_TOKENS)
            self.max_batch_tokens = int(max_batch_tokens)
            return
        self.batch_size = batch_size or self.critic.default_batch_size
        if self.batch_size > cap:
            self.warnings.append({
                "code": "batch_size_clamped",
                "message": f"batch size {self.batch_size:,} lowered to {cap:,} windows: a critic batch "
                           f"holds at most {cap_tokens:,} tokens on {device_type} "
                           f"({per_window:,}-token windows)"})
            self.batch_size = cap
        # a batch holds at most this many tokens, padding included: by default, batch_size
        # windows of the longest size
        self.max_batch_tokens = int(max_batch_tokens or self.batch_size * per_window)

    @property
    def model_name(self) -> str:
        return self.critic.name

    @property
    def model_sha256(self) -> str:
        return self.critic.sha256

    @property
    def device(self) -> str:
        """The device the critic runs on ("cuda:0,cuda:1" with one worker per GPU)."""
        return ",".join(str(c.device) for c in self.critics)

    def query_warnings(self, query: str) -> list[dict[str, str]]:
        """The run-level warnings for `query` (`Stats.warnings`): the critic's prompt cuts a query
        longer than its limit (96 tokens for encoder critics, 256 for hybrid ones)."""
        limit = self.critic.max_query_tokens
        if limit is None:
            return []
        n = self.critic.query_tokens(query)
        if n <= limit:
            return []
        return [{"code": "query_truncated",
                 "message": f"the query is {n:,} tokens long; the critic reads only its first {limit} "
                            f"(the query limit of critic {self.model_name})"}]

    def compress_document(self, doc: Document, *, options: CompressOptions | None = None,
                          source: str | None = None, progress: Progress | None = None,
                          **kwargs) -> CompressionResult:
        """Compress an `ingest.Document` (its text normalised by ingest already, so not again):
        its structure (table rows and headings as units, page headers left out) shapes the units,
        and every span carries its page and section. The result names `source`, else the
        document's own. Options as for `compress`."""
        if source is not None:
            doc = replace(doc, source=source)
        return self._one(doc, self._options(options, kwargs), progress)

    def plan(self, text: str, instruction: str, query: str, sentences: np.ndarray | None = None,
             doc: TokenizedDoc | None = None) -> Plan:
        """The windows of `text` for this critic and prompt (`windows.plan`)."""
        return plan(self.critic, text, instruction, query, self.window_tokens, sentences, doc)

    def _run_windows(self, plans: list[Plan], progress: Progress | None = None) -> tuple[list[np.ndarray], list[float]]:
        """Run the critic over the windows of several plans at once: per plan, the (n, 4)
        probabilities of its tokens and its share of the critic's seconds (by tokens).

        Windows of all the plans are sorted longest first and cut into batches of at most
        `batch_size` windows and `max_batch_tokens` tokens (padding included), so short documents
        share batches; a window at most half as long as its batch's first starts a new batch
        (`_batches`), so no window is padded to more than twice its length. Each batch is built
        straight from the documents' id arrays (numpy, no per-token Python), and on a GPU the
        next batch is built while the current one runs (`Critic.launch`); with several GPUs, one
        worker thread per GPU takes batches from a shared queue."""
        probs = [np.zeros((len(p.doc), 4), dtype=np.float32) for p in plans]
        table = _WindowTable(plans)
        batches = list(_batches(table.order(), table.lengths, self.batch_size, self.max_batch_tokens))
        started = time.perf_counter()
        done = [0]
        lock = threading.Lock()

        def finish(rows: np.ndarray, out: np.ndarray) -> None:
            table.scatter(rows, out, probs)
            if progress:
                with lock:
                    done[0] += len(rows)
                    progress(done[0], len(table))

        if len(self.critics) == 1:
            _run_batches(self.critics[0], iter(batches), table, finish)
        else:
            queue: SimpleQueue = SimpleQueue()
            for b in batches:
                queue.put(b)
            # a failing worker (or Ctrl-C here) stops the others after their batches in flight,
            # rather than after they drained the whole queue
            stop = threading.Event()
            pool = ThreadPoolExecutor(max_workers=len(self.critics))
            try:
                futures = [pool.submit(_run_batches, c, _drain(queue, stop), table, finish) for c in self.critics]
                ended, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for f in [*ended, *futures]:  # the first failure, else every worker's end
                    f.result()
            except BaseException:
                stop.set()
                raise
            finally:
                pool.shutdown(wait=True)
        took = time.perf_counter() - started
        total = max(int(table.lengths.sum()), 1)
        spent = [took * float(table.lengths[table.plan == k].sum()) / total for k in range(len(plans))]
        return probs, spent

    def token_probs(self, text: str, instruction: str, query: str, progress: Progress | None = None,
                    timings: dict | None = None, sentences: np.ndarray | None = None):
        """Run the critic over `text`: (probs (n, 4), offsets (n, 2), n_windows).

        `sentences` (from `segment.sentence_spans(text)`) may be passed in when the caller needs
        them too, so the text is segmented once.
        """
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        p = self.plan(text, instruction, query, sentences)
        timings["tokenize"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        (probs,), _ = self._run_windows([p], progress)
        timings["critic"] = time.perf_counter() - t1
        return probs, p.doc.offsets, len(p.windows)

    def select_spans(self, text: str, probs: np.ndarray, offsets: np.ndarray, *, query: str, task: str | None,
                     granularity: str, budget: int | None, threshold: float | None = None,
                     min_span_tokens: int | None = None, max_gap: int = OFFICIAL_MAX_GAP,
                     separator: str = DEFAULT_SEPARATOR, lexical_weight: float | None = None,
                     sentences: np.ndarray | None = None, input_tokens: int | None = None,
                     notes: list[str] | None = None, units: np.ndarray | None = None,
                     forced: np.ndarray | None = None, min_tokens: int | None = None,
                     costs: np.ndarray | None = None, bm25: np.ndarray | None = None):
        """The selection stage with this critic's calibrated defaults, on probabilities already
        computed (`token_probs`); `compress` and the evaluation runner both go through it.

        Dynamic mode follows the critic's calibrated per-document rule when it has one (sentence
        and paragraph units); at word granularity, or without such a rule, the critic's
        calibrated per-task threshold tags the tokens. An explicit `threshold` always tags.
        `notes`, a list when given, receives a line when a unit larger than the budget was
        replaced by finer units inside it (`select.finer_units`). `units` may carry the
        granularity's units (with the document's structure, `structure.structured_units`);
        `forced` and `min_tokens` are `select.select`'s guarantees; `costs` and `bm25` its
        precomputed unit costs and BM25 scores.
        """
        if threshold is None and (granularity == "word" or self.critic.dynamic is None):
            threshold = self.critic.threshold_for(task)
        if lexical_weight is None:
            lexical_weight = self.critic.lexical_weight
        if sentences is None and granularity != "paragraph":
            sentences = segment.sentence_spans(text)
        return select(text, probs, offsets, granularity=granularity, budget=budget, threshold=threshold,
                      min_span_tokens=1 if min_span_tokens is None else int(min_span_tokens), max_gap=max_gap,
                      separator=separator,
                      units=units if units is not None else (sentences if granularity == "sentence" else None),
                      query=query, lexical_weight=lexical_weight, policy=self.critic.dynamic,
                      input_tokens=input_tokens, sentences=sentences, notes=notes, forced=forced,
                      min_tokens=min_tokens, costs=costs, bm25=bm25)

    def compress(self, text: str, *, options: CompressOptions | None = None, source: str = "<text>",
                 progress: Progress | None = None, **kwargs) -> CompressionResult:
        """Compress one text. The options come as `options=CompressOptions(...)` or as keywords
        (`query=..., rate=...`: the fields of `CompressOptions`), not both. Raises UsageError for
        bad options; the one-item case of `compress_many`, which it runs."""
        return self._one(Item(text, source), self._options(options, kwargs), progress)

    def _one(self, item: Item | Document, opts: CompressOptions, progress: Progress | None) -> CompressionResult:
        (out,) = list(self.compress_many([item], opts, progress=progress))
        if isinstance(out, ItemError):
            raise out.error
        return out

    @staticmethod
    def _options(options: CompressOptions | None, kwargs: dict) -> CompressOptions:
        if options is not None and kwargs:
            raise UsageError(f"give either options or keyword options ({', '.join(sorted(kwargs))}), not both")
        opts = options if options is not None else CompressOptions.from_kwargs(**kwargs)
        return opts.validate()

    def compress_many(self, items: Iterable, options: CompressOptions | None = None, *,
                      progress: Progress | None = None, **kwargs) -> Iterator[CompressionResult | ItemError]:
        """Compress many documents, yielding one `CompressionResult` or `ItemError` per item, in
        input order.

        `items`: texts (`str`, source "<text>"), `ingest.Document`s (their source), or `Item`s
        (text, source and, optionally, the item's own options), or zero-argument callables that
        return one of these: such an item is read only when its turn comes (the CLI reads each
        file so), and an exception it raises is that item's `ItemError`. `options` (or the same
        keywords as `compress`) apply to every item without options of its own; bad call-level
        options raise UsageError at once, before any work. One item's failure (its own bad
        options, a query too long for the window, a bug) is yielded as an `ItemError` and the
        others go on.

        Code points that are not text are replaced (`ingest.normalise_text`) in a copy the stages
        see; a `Document` is taken as ingest made it, its text already normalised.

        The critic's batches are filled across documents: consecutive documents are gathered
        until their windows fill a batch, and run together. `progress(done, total)` counts the
        windows of each such group.
        """
        default = self._options(options, kwargs) if (options is not None or kwargs) else None
        return self._many(items, default, progress)

    def _many(self, items: Iterable, default: CompressOptions | None,
              progress: Progress | None) -> Iterator[CompressionResult | ItemError]:
        group: list[_Job | ItemError] = []
        group_windows = group_tokens = 0
        # cl100k counts, unit costs and BM25 scores need no critic output: they run beside it
        pool, apart = ThreadPoolExecutor(max_workers=4), ThreadPoolExecutor(max_workers=1)
        finished = False
        try:
            for index, raw in enumerate(items):
                job = self._prepare(index, raw, default, pool, apart)
                group.append(job)
                if isinstance(job, _Job):
                    group_windows += sum(len(p.windows) for p in job.plans)
                    group_tokens += sum(len(p.doc) + len(p.windows) * (len(p.prefix) + len(p.suffix))
                                        for p in job.plans)
                # a group is about one critic batch: its windows run together, then its results
                if group_windows >= self.batch_size or group_tokens >= self.max_batch_tokens:
                    yield from self._finish(group, progress)
                    group, group_windows, group_tokens = [], 0, 0
            if group:
                yield from self._finish(group, progress)
            finished = True
        finally:
            # stopped early (the caller closed the generator, Ctrl-C): the queued side work is
            # dropped, not waited for
            pool.shutdown(wait=finished, cancel_futures=not finished)
            apart.shutdown(wait=finished, cancel_futures=not finished)

    def _prepare(self, index: int, raw, default: CompressOptions | None, pool, apart) -> _Job | ItemError:
        """Validate, clean, segment, tokenise and plan one item (or its ItemError)."""
        source = "<text>"
        document = None
        try:
            if callable(raw):  # read lazily: a failure to read is this item's own
                raw = raw()
            if isinstance(raw, str):
                text, opts = raw, None
            elif isinstance(raw, Item):
                text, source, opts, document = raw.text, raw.source, raw.options, raw.document
            elif isinstance(raw, Document):
                text, source, opts, document = raw.text, raw.source, None, raw
            else:
                raise UsageError(f"item {index}: expected a str, a Document or an Item, "
                                 f"not {type(raw).__name__}")
            opts = (opts.validate() if opts is not None else default)
            if opts is None:
                raise UsageError("query must not be empty", params=("query",))
            start = time.perf_counter()
            # tokenizers raise on lone surrogates and mangle NUL: the stages see a cleaned copy
            # (one character for one, so offsets agree) and the spans are cut from the caller's
            # text; ingest has cleaned a Document's text already
            clean = text if document is not None else normalise_text(text)
            queries = [normalise_text(q) for q in opts.queries]
            input_count = pool.submit(count_tokens, clean)
            # a long document is tokenised in a thread of its own (the Rust tokenizer releases the
            # GIL) while this thread segments it; a short one here, rather than queued behind other
            # documents' work in the pool. Once for all its queries.
            tokens: Future[TokenizedDoc] | None = None
            if len(clean) >= TOKENIZE_APART_CHARS:
                tokens = apart.submit(tokenize, self.critic.tokenizer, clean)
            blocks = document.blocks if document is not None else None
            skip = document.skip if document is not None else None
            # window cuts, and the units at sentence level (table rows and headings whole)
            sentences = structured_units(clean, "sentence", blocks, skip)
            units = (sentences if str(opts.granularity) == "sentence"
                     else structured_units(clean, str(opts.granularity), blocks, skip))
            doc = tokens.result() if tokens is not None else tokenize(self.critic.tokenizer, clean)
            plans = [self.plan(clean, opts.instruction_text, q, sentences, doc) for q in queries]
            lexical = None
            if opts.budgeted or self._dynamic_lexical(opts):
                lexical = self._selection_inputs(pool, clean, units, queries, opts, sentences)
            took = time.perf_counter() - start
            return _Job(index, source, text, clean, queries, opts, sentences, units, plans, input_count,
                        document=document, seconds=took, tokenize=took, selection_inputs=lexical)
        except Exception as err:  # noqa: BLE001 - one item's failure never stops the others
            return ItemError(index, source, _one_line(err), err)

    def _dynamic_lexical(self, opts: CompressOptions) -> bool:
        """Whether dynamic selection will read BM25 scores: the critic's calibrated rule fuses
        them (`DynamicPolicy.lexical`) and neither a threshold nor word units hand the choice to
        the tags."""
        policy = self.critic.dynamic
        return bool(policy is not None and policy.lexical and opts.threshold is None
                    and str(opts.granularity) != "word")

    def _selection_inputs(self, pool, text: str, units: np.ndarray, queries: list[str], opts: CompressOptions,
                          sentences: np.ndarray) -> tuple[Future | None, list[Future | None]]:
        """What budgeted (or BM25-reading dynamic) selection needs besides the critic, as futures
        of worker threads that run while the critic does: with a budget every unit's cl100k cost
        (dynamic mode counts only the units its rule lets through, in `select`), and per query
        the units' BM25 scores (`select.unit_costs`, `select.lexical_scores`). tiktoken and numpy
        release the GIL for most of it."""
        from .select import lexical_scores, unit_costs

        separator = DEFAULT_SEPARATOR if opts.separator is None else opts.separator
        costs = None
        if opts.budgeted:
            costs = pool.submit(lambda: unit_costs(text, units, count_tokens(separator)))
            weight = self.critic.lexical_weight if opts.lexical_weight is None else opts.lexical_weight
        else:  # dynamic mode whose rule reads BM25 (_dynamic_lexical)
            weight = self.critic.dynamic.lexical
        gran = str(opts.granularity)
        bm25 = [pool.submit(lexical_scores, text, units, q, gran, sentences) if weight and len(units) else None
                for q in queries]
        return costs, bm25

    def _finish(self, group: list, progress: Progress | None) -> Iterator[CompressionResult | ItemError]:
        jobs = [j for j in group if isinstance(j, _Job)]
        try:
            probs, spent = self._run_windows([p for j in jobs for p in j.plans], progress)
        except Exception as err:  # noqa: BLE001 - a failed batch fails its documents, not the run
            for j in group:
                yield j if isinstance(j, ItemError) else ItemError(j.index, j.source, _one_line(err), err)
            return
        k = 0
        for j in jobs:
            n = len(j.plans)
            j.probs, j.critic = probs[k:k + n], sum(spent[k:k + n])
            k += n
        for j in group:
            if isinstance(j, ItemError):
                yield j
                continue
            try:
                yield self._result(j)
            except Exception as err:  # noqa: BLE001
                yield ItemError(j.index, j.source, _one_line(err), err)

    def _result(self, job: _Job) -> CompressionResult:
        """Selection and the result of one document whose probabilities are computed: one
        selection per query, their union in document order, page and section on every span."""
        opts = job.options
        t2 = time.perf_counter()
        input_tokens = job.input_count.result()
        assert job.probs is not None  # compress_many computed them before selection
        warnings = list(self.warnings)
        for q in job.queries:
            warnings += [w for w in self.query_warnings(q) if w not in warnings]
        notes: list[str] = []
        separator = DEFAULT_SEPARATOR if opts.separator is None else opts.separator
        forced = forced_units(job.text, job.units, opts.keep, opts.keep_first)
        costs, bm25s = (None, [None] * len(job.queries))
        if job.selection_inputs is not None:
            costs_f, bm25_f = job.selection_inputs
            costs = costs_f.result() if costs_f is not None else None
            bm25s = [f.result() if f is not None else None for f in bm25_f]
        per_query = []
        for q, probs, p, bm25 in zip(job.queries, job.probs, job.plans, bm25s):
            per_query.append(self.select_spans(
                job.text, probs, p.doc.offsets, query=q, task=opts.threshold_task,
                granularity=str(opts.granularity), budget=opts.budget(input_tokens), threshold=opts.threshold,
                min_span_tokens=opts.min_span_tokens,
                max_gap=OFFICIAL_MAX_GAP if opts.max_gap is None else opts.max_gap, separator=separator,
                lexical_weight=opts.lexical_weight, sentences=job.sentences, input_tokens=input_tokens,
                notes=notes, units=job.units, forced=forced, min_tokens=opts.min_tokens,
                costs=costs, bm25=bm25))
        for note in dict.fromkeys(notes):
            warnings.append({"code": "finer_units", "message": note})
        skip = job.document.skip if job.document is not None else None
        spans = _union(job.text, per_query, list(opts.queries), forced, job.units, skip)
        locator = job.document.locator() if job.document is not None else None
        original = job.original
        spans = [Span(sp.start, sp.end, original[sp.start:sp.end], sp.score,
                      page=locator.page(sp.start) if locator else None,
                      section=tuple(locator.section(sp.start)) if locator else (),
                      queries=sp.queries, forced=sp.forced) for sp in spans]
        compressed = assemble(spans, separator)
        output_tokens = count_tokens(normalise_text(compressed))
        empty = not spans
        if empty:
            warnings.append({"code": "empty", "message": empty_message(
                opts.budget(input_tokens), len(job.units))})
        lang = language_warning(job.text)
        if lang is not None:
            warnings.append(lang)
        post = time.perf_counter() - t2
        timings = {"tokenize": job.tokenize, "critic": job.critic, "post": post}
        stats = Stats(input_tokens=input_tokens, output_tokens=output_tokens,
                      ratio=round(input_tokens / max(output_tokens, 1), 3),
                      windows=sum(len(p.windows) for p in job.plans),
                      seconds=round(job.seconds + job.critic + post, 4), device=self.device,
                      timings={k: round(v, 4) for k, v in timings.items()},
                      query_truncated=any(w["code"] == "query_truncated" for w in warnings),
                      finer_units=bool(notes),
                      warnings=warnings)
        return CompressionResult(source=job.source, query=opts.first_query, instruction=opts.instruction_text,
                                 granularity=str(opts.granularity), model_name=self.model_name,
                                 model_sha256=self.model_sha256, spans=spans, compressed_text=compressed,
                                 stats=stats, text_length=len(original), text_sha256=text_sha256(original),
                                 queries=tuple(opts.queries), empty=empty, separator=separator)


EMPTY_MESSAGE = ("no span judged relevant to the query; use max_tokens or min_tokens to force output")
EMPTY_NO_UNITS = ("nothing can be kept: the document has no unit of text outside its page headers "
                  "and footers, which are never kept")
EMPTY_BUDGET = "nothing fit the budget of {budget:,} tokens; raise max_tokens or rate"


def empty_message(budget: int | None, n_units: int) -> str:
    """Why a result kept nothing (the `empty` warning): a document with no unit to keep (all of
    it page headers and footers) in any mode; in dynamic mode (`budget` None), no unit judged
    relevant (`min_tokens` would have kept some); with a budget, no unit fitting it."""
    if n_units == 0:
        return EMPTY_NO_UNITS
    if budget is None:
        return EMPTY_MESSAGE
    return EMPTY_BUDGET.format(budget=budget)


def forced_units(text: str, units: np.ndarray, patterns, keep_first: int | None) -> np.ndarray:
    """Indices of the units that `keep` patterns touch (every match of each regular expression
    in the text; a unit a match overlaps is kept) and of the first `keep_first` units."""
    chosen: set[int] = set(range(min(int(keep_first or 0), len(units))))
    if patterns and len(units):
        starts, ends = units[:, 0], units[:, 1]
        for pattern in patterns:
            for m in re.finditer(pattern, text):
                a, b = m.start(), max(m.end(), m.start() + 1)
                lo = int(np.searchsorted(ends, a, side="right"))
                hi = int(np.searchsorted(starts, b, side="left"))
                chosen.update(range(lo, hi))
    return np.array(sorted(chosen), dtype=np.int64)


def _union(text: str, per_query: list[list[Span]], queries: list[str], forced: np.ndarray,
           units: np.ndarray, skip) -> list[Span]:
    """The spans kept for any query, in document order, each naming the queries that kept it
    (overlapping or whitespace-separated spans merge; a merged span's score is its best part's)
    and whether it holds a forced unit. Parts inside `skip` ranges are cut out."""
    if skip:
        per_query = [_cut_spans(text, spans, skip) for spans in per_query]
    if len(per_query) == 1:
        spans = per_query[0]
        marks = [(int(units[j, 0]), int(units[j, 1])) for j in forced]
        return [Span(sp.start, sp.end, sp.text, sp.score, queries=(queries[0],),
                     forced=_touches(sp.start, sp.end, marks)) for sp in spans]
    pieces = sorted((sp.start, sp.end, sp.score, qi) for qi, spans in enumerate(per_query) for sp in spans)
    out: list[list] = []
    for s, e, score, qi in pieces:
        if out and (s <= out[-1][1] or not text[out[-1][1]:s].strip()):
            prev = out[-1]
            prev[1] = max(prev[1], e)
            prev[2] = max(prev[2], score)
            prev[3].add(qi)
        else:
            out.append([s, e, score, {qi}])
    marks = [(int(units[j, 0]), int(units[j, 1])) for j in forced]
    return [Span(s, e, text[s:e], score, queries=tuple(queries[i] for i in sorted(qs)),
                 forced=_touches(s, e, marks)) for s, e, score, qs in out]


def _touches(start: int, end: int, marks: list[tuple[int, int]]) -> bool:
    return any(a < end and start < b for a, b in marks)


def _cut_spans(text: str, spans: list[Span], skip) -> list[Span]:
    """Spans with the parts inside `skip` (page headers and footers) removed: only word-level
    tags can reach into them, units never include them."""
    from .segment import _nonspace_positions
    from .structure import _cut_around

    nonspace = _nonspace_positions(text)
    out = []
    for sp in spans:
        for a, b in _cut_around(np.array([[sp.start, sp.end]], dtype=np.int64), skip, nonspace):
            out.append(Span(a, b, text[a:b], sp.score))
    return out


class _WindowTable:
    """The windows of several plans as flat arrays: plan, start, end and full length (prompt
    included) of each; builds a batch's padded ids and scatters its probabilities back."""

    def __init__(self, plans: list[Plan]):
        self.plans = plans
        rows = [(k, w, s, e) for k, p in enumerate(plans) for w, (s, e) in enumerate(p.windows)]
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        self.plan, self.window, self.start, self.end = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
        extra = np.array([len(p.prefix) + len(p.suffix) for p in plans], dtype=np.int64)
        self.lengths = self.end - self.start + (extra[self.plan] if len(plans) else 0)

    def __len__(self) -> int:
        return len(self.plan)

    def order(self) -> list[int]:
        """Window indices, longest first (stable: ties keep document order)."""
        return np.argsort(-self.lengths, kind="stable").tolist()

    def ids(self, rows: np.ndarray, pad_id: int) -> np.ndarray:
        out = np.full((len(rows), int(self.lengths[rows].max())), pad_id, dtype=np.int64)
        for r, i in enumerate(rows.tolist()):
            seq = self.plans[int(self.plan[i])].window_ids(int(self.window[i]))
            out[r, :len(seq)] = seq
        return out

    def scatter(self, rows: np.ndarray, out: np.ndarray, probs: list[np.ndarray]) -> None:
        for r, i in enumerate(rows.tolist()):
            k, s, e = int(self.plan[i]), int(self.start[i]), int(self.end[i])
            a = len(self.plans[k].prefix)
            probs[k][s:e] = out[r, a:a + e - s]


# batches in flight per GPU: the next is built and queued while the current one runs
PIPELINE_DEPTH = 2


def _run_batches(critic, batches: Iterator, table: _WindowTable, finish) -> None:
    """Run `batches` (an iterator of window index lists; with several GPUs, `_drain` of a queue
    they share) on one critic, keeping up to PIPELINE_DEPTH batches queued on its device;
    `finish(rows, probs)` takes each result."""
    from collections import deque

    pending: deque = deque()
    for idx in batches:
        rows = np.asarray(idx, dtype=np.int64)
        pending.append((rows, critic.launch(table.ids(rows, critic.pad_id), table.lengths[rows])))
        if len(pending) >= PIPELINE_DEPTH:
            rows, wait = pending.popleft()
            finish(rows, wait())
    while pending:
        rows, wait = pending.popleft()
        finish(rows, wait())


def _drain(queue, stop: threading.Event) -> Iterator:
    """The batches of a queue shared by several GPUs' workers, until it is empty or `stop` is set."""
    from queue import Empty

    while not stop.is_set():
        try:
            yield queue.get_nowait()
        except Empty:
            return


def _batches(order: list[int], lengths, size: int, max_tokens: int | None = None) -> Iterator[list[int]]:
    """Cut `order` (window indices, longest first) into batches of at most `size` windows and
    `max_tokens` tokens once padded to the batch's first (longest) window, starting a new batch
    at a window at most half as long as the batch's first: padding a short window (a
    document's last) to a full one costs more compute than the larger batch saves, most of all
    on a CPU, and when several requests of `cprs serve` share a batch."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == size or 2 * lengths[i] <= lengths[batch[0]]
                      or (max_tokens and (len(batch) + 1) * lengths[batch[0]] > max_tokens)):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _one_line(err: BaseException) -> str:
    """An ItemError's message: a CprsError's own line, else the exception's type and text."""
    text = " ".join(str(err).split())
    return text if hasattr(err, "exit_code") else f"{type(err).__name__}: {text}"
