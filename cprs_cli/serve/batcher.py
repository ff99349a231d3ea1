"""The batching worker of `cprs serve`: requests queue up and share the device.

Each request becomes a `Job` (its documents as `compressor.Item`s, each carrying its own
options). One worker thread owns the `Compressor`: it takes the oldest waiting job, adds the
other waiting jobs that still fit in `max_batch_tokens` (estimated), and compresses them all in
one `Compressor.compress_many` call, so that the critic's batches hold windows of several
requests. A job's future is set as soon as its own documents are done.

Why a thread and not the event loop: the critic is blocking PyTorch code; running it on the
event loop would stall every connection. Why one thread: one device, and one copy of the model
(`cprs serve --workers N` runs N processes for more). A job whose client went away before the
worker took it is removed from the queue (`cancel`), so its work is never done; a job already
running finishes its critic batches (they cannot be stopped half-way) and its result is dropped.

No ready-made queue does this: `queue.Queue` cannot remove a cancelled entry or pick the jobs
that fit a token budget, so the queue is a deque under one condition variable.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from ..compressor import Compressor, Item, ItemError
from ..result import CompressionResult

# Characters per critic token, for the queue's estimate only (the critic counts exactly later):
# English text is about 4 characters a token in BERT and BPE vocabularies alike.
CHARS_PER_TOKEN = 4

Outcome = CompressionResult | ItemError


class ShuttingDown(RuntimeError):
    """The server stopped before the job was run."""


def _settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Set a job's outcome unless it is settled already: the event loop may cancel it (its
    client left) at any moment, and that must not fail the other jobs of the batch."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def estimate_tokens(items: list[Item]) -> int:
    return sum(len(it.text) // CHARS_PER_TOKEN + 1 for it in items)


@dataclass(eq=False)
class Job:
    """One request's documents on their way through the worker; `future` receives the list of
    outcomes (`CompressionResult` or `ItemError`), in the order of `items`."""

    items: list[Item]
    tokens: int
    future: Future = field(default_factory=Future)
    started: bool = False
    cancelled: bool = False


class Batcher:
    """Queue jobs and run them in batches on one worker thread (see the module docstring)."""

    def __init__(self, compressor: Compressor, max_batch_tokens: int,
                 on_batch: Callable[[int, int], None] | None = None):
        self.compressor = compressor
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.on_batch = on_batch  # called with (documents, requests) of each compress_many call
        self._queue: deque[Job] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="cprs-batcher", daemon=True)
        self.cancelled_documents = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    @property
    def queued_documents(self) -> int:
        with self._cv:
            return sum(len(j.items) for j in self._queue)

    def submit(self, items: list[Item]) -> Job:
        job = Job(list(items), estimate_tokens(items))
        with self._cv:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            self._queue.append(job)
            self._cv.notify()
        return job

    def cancel(self, job: Job) -> bool:
        """Forget `job` (its client went away). True when it was still waiting, so no work was
        done for it; a running job finishes and its result is dropped."""
        with self._cv:
            job.cancelled = True
            if not job.started:
                try:
                    self._queue.remove(job)
                except ValueError:
                    return False
                self.cancelled_documents += len(job.items)
                job.future.cancel()
                return True
        return False

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking jobs, let the running batch finish, fail the waiting jobs."""
        with self._cv:
            self._closing = True
            waiting = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        for job in waiting:
            _settle(job.future, error=ShuttingDown("the server is shutting down"))
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ worker

    def _take(self) -> list[Job]:
        """The oldest job, then every other waiting job that fits the token budget beside it
        (first fit, in arrival order: a large job goes alone, small ones fill in)."""
        first = self._queue.popleft()
        taken, budget = [first], self.max_batch_tokens - first.tokens
        if budget > 0:
            rest: deque[Job] = deque()
            for job in self._queue:
                if job.tokens <= budget:
                    taken.append(job)
                    budget -= job.tokens
                else:
                    rest.append(job)
            self._queue = rest
        for job in taken:
            job.started = True
        return taken

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                jobs = self._take()
            self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        items = [it for job in jobs for it in job.items]
        owners = [(job, k) for job in jobs for k in range(len(job.items))]
        outcomes: dict[int, list[Outcome | None]] = {id(j): [None] * len(j.items) for j in jobs}
        left = {id(j): len(j.items) for j in jobs}
        if self.on_batch is not None:
            self.on_batch(len(items), len(jobs))
        try:
            for i, out in enumerate(self.compressor.compress_many(items)):
                job, k = owners[i]
                outcomes[id(job)][k] = out
                left[id(job)] -= 1
                if left[id(job)] == 0:
                    _settle(job.future, outcomes[id(job)])
        except BaseException as err:  # noqa: BLE001 - a failed batch fails its jobs, never the worker
            for job in jobs:
                _settle(job.future, error=err)
            if not isinstance(err, Exception):
                raise
