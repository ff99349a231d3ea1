"""The library API: `Compressor(model).compress(text, query=...)`.

It wires the stages together: tokenize once → plan windows → critic in batches →
tags → selection → result. The CLI is a thin layer over this class.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from . import segment
from .critic import Critic, load_critic
from .errors import UsageError
from .instructions import resolve_instruction
from .ingest import normalise_text
from .result import CompressionResult, Span, Stats, text_sha256
from .select import DEFAULT_LEXICAL_WEIGHT, DEFAULT_SEPARATOR, GRANULARITIES, assemble, select
from .tags import OFFICIAL_MAX_GAP
from .tokens import count_tokens
from .windows import boundary_tokens, build_inputs, plan_windows, tokenize

Progress = Callable[[int, int], None]

# Most tokens one critic batch may hold, by device type: memory grows with batch x window length
# (and attention with its square), so a batch size of 100,000 windows would exhaust any machine.
# The critic's own default batch always fits (see Compressor.max_batch_tokens).
MAX_BATCH_TOKENS = {"cpu": 1 << 15, "cuda": 1 << 18}


class Compressor:
    """Load a critic once; compress many documents with it.

    `model`: None (the default shipped critic), a shipped name ("mini", "small") or a critic
    directory. `device`: "auto", "cpu", "cuda" or "cuda:N".
    """

    def __init__(self, model: str | Path | None = None, device: str = "auto", batch_size: int | None = None,
                 window_tokens: int | None = None, critic: Critic | None = None):
        if batch_size is not None and batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if window_tokens is not None and window_tokens < 16:
            raise UsageError("--window-tokens must be at least 16")
        self.critic = critic or load_critic(model, device, window_tokens)
        self.window_tokens = window_tokens or self.critic.default_window_tokens
        # batches are bounded by tokens whatever batch_size says: a window holds at most
        # max_positions tokens, prompt included
        per_window = int(self.critic.max_positions)
        device_type = getattr(self.critic.device, "type", "cpu")
        self.max_batch_tokens = max(MAX_BATCH_TOKENS.get(device_type, MAX_BATCH_TOKENS["cpu"]),
                                    int(self.critic.default_batch_size) * per_window)
        cap = max(1, self.max_batch_tokens // per_window)
        self.batch_size = batch_size or self.critic.default_batch_size
        # run-level warnings, copied into every result's stats
        self.warnings: list[dict[str, str]] = []
        if self.batch_size > cap:
            self.warnings.append({
                "code": "batch_size_clamped",
                "message": f"batch size {self.batch_size:,} lowered to {cap:,} windows: a critic batch "
                           f"holds at most {self.max_batch_tokens:,} tokens on {device_type} "
                           f"({per_window:,}-token windows)"})
            self.batch_size = cap

    @property
    def model_name(self) -> str:
        return self.critic.name

    @property
    def model_sha256(self) -> str:
        return self.critic.sha256

    @property
    def device(self) -> str:
        return str(self.critic.device)

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

    def compress_document(self, doc, **kwargs) -> CompressionResult:
        kwargs.setdefault("source", doc.source)
        return self.compress(doc.text, **kwargs)

    def token_probs(self, text: str, instruction: str, query: str, progress: Progress | None = None,
                    timings: dict | None = None, sentences: np.ndarray | None = None):
        """Run the critic over `text`: (probs (n, 4), offsets (n, 2), n_windows).

        `sentences` (from `segment.sentence_spans(text)`) may be passed in when the caller needs
        them too, so the text is segmented once.
        """
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        critic = self.critic
        doc = tokenize(critic.tokenizer, text)
        if sentences is None:
            sentences = segment.sentence_spans(text)
        cuts = boundary_tokens(doc.offsets, sentences[:, 0] if len(sentences) else np.zeros(0, np.int64))
        prefix, suffix = critic.prompt_ids(instruction, query)
        room = critic.max_positions - len(prefix) - len(suffix)
        if room < 16:
            raise UsageError("the query is too long for this critic's window")
        budget = min(self.window_tokens, room)
        windows = plan_windows(len(doc), budget, cuts)
        seqs, spans = build_inputs(doc, windows, prefix, suffix)
        timings["tokenize"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        probs = np.zeros((len(doc), 4), dtype=np.float32)
        # longest first, so padded batches hold windows of similar length
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        done = 0
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            outs = critic.predict([seqs[i] for i in idx], [spans[i] for i in idx])
            for i, p in zip(idx, outs):
                s, e = windows[i]
                probs[s:e] = p
            done += len(idx)
            if progress:
                progress(done, len(seqs))
        timings["critic"] = time.perf_counter() - t1
        return probs, doc.offsets, len(windows)

    def select_spans(self, text: str, probs: np.ndarray, offsets: np.ndarray, *, query: str, task: str | None,
                     granularity: str, budget: int | None, threshold: float | None = None,
                     min_span_tokens: int | None = None, max_gap: int = OFFICIAL_MAX_GAP,
                     separator: str = DEFAULT_SEPARATOR, lexical_weight: float | None = None,
                     sentences: np.ndarray | None = None, input_tokens: int | None = None,
                     notes: list[str] | None = None):
        """The selection stage with this critic's calibrated defaults, on probabilities already
        computed (`token_probs`); `compress` and the evaluation runner both go through it.

        Dynamic mode follows the critic's calibrated per-document rule when it has one (sentence
        and paragraph units); at word granularity, or without such a rule, the critic's
        calibrated per-task threshold tags the tokens. An explicit `threshold` always tags.
        `notes`, a list when given, receives a line when a unit larger than the budget was
        replaced by finer units inside it (`select.finer_units`).
        """
        if threshold is None and (granularity == "word" or self.critic.dynamic is None):
            threshold = self.critic.threshold_for(task)
        if lexical_weight is None:
            lexical_weight = self.critic.lexical_weight
        if sentences is None and granularity != "paragraph":
            sentences = segment.sentence_spans(text)
        return select(text, probs, offsets, granularity=granularity, budget=budget, threshold=threshold,
                      min_span_tokens=1 if min_span_tokens is None else int(min_span_tokens), max_gap=max_gap,
                      separator=separator, units=sentences if granularity == "sentence" else None, query=query,
                      lexical_weight=lexical_weight, policy=self.critic.dynamic,
                      input_tokens=input_tokens, sentences=sentences, notes=notes)

    def compress(self, text: str, *, query: str, instruction: str | None = None, task: str | None = None,
                 granularity: str = "sentence", rate: float | None = None, max_tokens: int | None = None,
                 threshold: float | None = None, min_span_tokens: int | None = None,
                 max_gap: int = OFFICIAL_MAX_GAP, separator: str | None = None, source: str = "<text>",
                 progress: Progress | None = None, lexical_weight: float | None = None) -> CompressionResult:
        if granularity not in GRANULARITIES:
            raise UsageError(f"--granularity must be one of {', '.join(GRANULARITIES)}")
        if rate is not None and max_tokens is not None:
            raise UsageError("give either --rate or --max-tokens, not both")
        if rate is not None and not 0 < rate <= 1:
            raise UsageError("--rate must be in (0, 1]")
        if max_tokens is not None and max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if threshold is not None and not 0 < threshold < 1:
            raise UsageError("--threshold must be in (0, 1)")
        if not query or not query.strip():
            raise UsageError("--query must not be empty")
        if lexical_weight is not None and not 0 <= lexical_weight <= 10:
            raise UsageError("--lexical-weight must be in [0, 10]")
        instruction_text = resolve_instruction(instruction, task)
        separator = DEFAULT_SEPARATOR if separator is None else separator
        # tokenizers raise on lone surrogates and mangle NUL: the stages see a cleaned copy (one
        # character for one, so offsets agree) and the spans are cut from the caller's text
        original, asked = text, query
        text, query = normalise_text(text), normalise_text(query)
        warnings = [*self.warnings, *self.query_warnings(query)]

        start = time.perf_counter()
        timings: dict[str, float] = {}
        # the report's cl100k count of the input runs beside the critic (tiktoken releases the GIL)
        with ThreadPoolExecutor(max_workers=1) as pool:
            input_count = pool.submit(count_tokens, text)
            sentences = segment.sentence_spans(text)  # window cuts, and the units at sentence level
            seg_seconds = time.perf_counter() - start
            probs, offsets, n_windows = self.token_probs(text, instruction_text, query, progress, timings,
                                                         sentences)
            timings["tokenize"] += seg_seconds  # the "tokenize" stage includes segmentation
            t2 = time.perf_counter()
            input_tokens = input_count.result()
        notes: list[str] = []
        budget = None
        if rate is not None:
            budget = max(1, int(round(rate * input_tokens)))
        elif max_tokens is not None:
            budget = int(max_tokens)
        spans = self.select_spans(text, probs, offsets, query=query, task=task if instruction is None else "custom",
                                  granularity=granularity, budget=budget, threshold=threshold,
                                  min_span_tokens=min_span_tokens, max_gap=max_gap, separator=separator,
                                  lexical_weight=lexical_weight, sentences=sentences, input_tokens=input_tokens,
                                  notes=notes)
        warnings += [{"code": "finer_units", "message": note} for note in notes]
        if text != original:
            spans = [Span(sp.start, sp.end, original[sp.start:sp.end], sp.score) for sp in spans]
        compressed = assemble(spans, separator)
        output_tokens = count_tokens(normalise_text(compressed))
        timings["post"] = time.perf_counter() - t2
        seconds = time.perf_counter() - start
        stats = Stats(input_tokens=input_tokens, output_tokens=output_tokens,
                      ratio=round(input_tokens / max(output_tokens, 1), 3), windows=n_windows,
                      seconds=round(seconds, 4), device=self.device,
                      timings={k: round(v, 4) for k, v in timings.items()},
                      query_truncated=any(w["code"] == "query_truncated" for w in warnings),
                      finer_units=bool(notes),
                      warnings=warnings)
        return CompressionResult(source=source, query=asked, instruction=instruction_text,
                                 granularity=granularity, model_name=self.model_name,
                                 model_sha256=self.model_sha256, spans=spans, compressed_text=compressed,
                                 stats=stats, text_length=len(original), text_sha256=text_sha256(original))
