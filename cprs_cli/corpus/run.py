"""The driver of `cprs corpus`: the plan and the manifest here, the shards on a Ray Data actor pool.

`run_corpus` finds the dataset files, connects to Ray (`address`) or starts it locally, loads the
critic once on the driver (on the CPU) for the run's identity (the sha256 of its weights and its
calibrated selection settings), opens the output directory (lock, manifest, plan: see
`manifest.py` and `shards.py`), and hands the shards not yet written to Ray Data:
`from_items(shards) → map_batches(ShardActor, one shard per call) → iter_rows()`. Each actor loads
one `Compressor` (on its own GPU when the cluster has GPUs, `num_gpus=1`; otherwise on `num_cpus`
CPU cores) and writes each shard's output file itself, atomically; the driver only collects one
small stats row per shard. A killed run loses the shards in flight (one per actor: at most one
task in flight per actor) and nothing else.

Why not `ray.data.read_parquet(...).map_batches(...).write_parquet(...)` end to end: Ray's
readers and writers decide the blocks and the output names themselves, so a rerun could not tell
which rows are done, and the rows a batch holds (hence the critic batches, hence the floating
point sums) would depend on the number of workers. Here Ray Data schedules and retries the work,
runs the actors and shows the progress bars; the shards are cprs's own (`shards.py`).

Ray is imported only inside `run_corpus` (the `corpus` extra); without it the call raises
`extras.require`'s MissingExtraError (exit 2), which says how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CprsError, InputError, ModelError, OutputError, UsageError
from ..extras import require
from ..ingest import DEFAULT_MAX_INPUT_MB, MB
from ..options import CompressOptions
from ..select import DynamicPolicy
from .manifest import Output
from .shards import DEFAULT_SHARD_ROWS, DEFAULT_SHARD_TOKENS, Shard, discover, plan_shards
from .worker import FORMATS, ShardStats, process_shard

CPUS_PER_WORKER = 2  # torch threads of one CPU actor when not given (measured: docs/corpus.md)


@dataclass
class CorpusStats:
    """What a corpus run did; `summary()` is the CLI's final line."""

    output: str
    shards: int = 0  # in the plan
    done_before: int = 0  # written by an earlier run, skipped
    written: int = 0  # written by this run
    documents: int = 0  # rows of the shards this run wrote
    errors: int = 0  # of which rows with an `error`
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0  # wall time of the Ray job (the actors' start included)
    workers: int = 0
    device: str = ""
    failed: list[str] = field(default_factory=list)  # shards that could not be read or written

    @property
    def tokens_per_second(self) -> float:
        return self.input_tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        errors = f" ({self.errors:,} with an error)" if self.errors else ""
        line = (f"{self.documents:,} documents{errors} in {self.written:,} shard{'s' if self.written != 1 else ''}, "
                f"{self.input_tokens:,} -> {self.output_tokens:,} tokens, "
                f"{self.tokens_per_second:,.0f} tokens/s on {self.workers} {self.device} "
                f"worker{'s' if self.workers != 1 else ''} in {self.seconds:,.1f} s")
        if self.done_before:
            line += f"; {self.done_before:,} of {self.shards:,} shards were written before"
        if self.failed:
            line += f"; {len(self.failed):,} shards failed (rerun to retry them)"
        return line + f"; results in {self.output}"


class ShardActor:
    """A Ray Data actor: one Compressor, loaded once, then one shard per call."""

    def __init__(self, spec: dict):
        self.spec = spec
        # the driver's CPU precision (critic.base.default_dtype), not the worker node's own
        os.environ.pop("CPRS_CPU_DTYPE", None)
        if spec.get("cpu_dtype"):
            os.environ["CPRS_CPU_DTYPE"] = spec["cpu_dtype"]
        threads = spec.get("threads")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        from ..compressor import Compressor

        self.compressor = Compressor(model=spec["model"], device=spec["device"],
                                     batch_size=spec["batch_size"], window_tokens=spec["window_tokens"])
        if self.compressor.model_sha256 != spec["model_sha256"]:  # another copy of the weights on this node
            raise ModelError(f"critic {spec['model']} on this worker has sha256 "
                             f"{self.compressor.model_sha256[:12]}…, the driver's {spec['model_sha256'][:12]}…")
        self.defaults = CompressOptions(**spec["options"])

    def __call__(self, batch: dict) -> dict:
        rows = []
        for blob in batch["shard"]:
            shard = Shard.from_dict(json.loads(str(blob)))
            try:
                stats = process_shard(self.compressor, shard, self.defaults, self.spec["output"],
                                      self.spec["format"], self.spec["run_key"], self.spec["max_bytes"])
            except Exception as err:  # noqa: BLE001 - one shard's failure is reported, the others go on
                text = " ".join(str(err).split())
                message = text if isinstance(err, CprsError) else f"{type(err).__name__}: {text}"
                stats = ShardStats(shard.index, failed=f"shard {shard.index} ({shard.describe()}): {message}")
            rows.append(stats.as_row())
        return {name: [r[name] for r in rows] for name in ShardStats.names()}


def _options_dict(options: CompressOptions) -> dict:
    return {f.name: (str(v) if f.name == "granularity" else v)
            for f in dataclasses.fields(options) for v in [getattr(options, f.name)]}


def _import_ray():
    require("corpus")  # one line naming the pip command (exit 2), not an ImportError
    import ray
    import ray.data

    return ray


def _start_ray(ray, address: str | None, quiet: bool) -> bool:
    """Connect to `address` or start a local Ray; True when this call started it (and so stops
    it). Offline: no dashboard, no usage statistics."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    kwargs: dict = {"log_to_driver": not quiet, "configure_logging": True,
                    "logging_level": "ERROR" if quiet else "INFO"}
    if address is None:
        kwargs["include_dashboard"] = False
    # ray.init replaces the SIGTERM handler with its own (sys.exit); a caller's handler (the
    # CLI's, which turns SIGTERM into an orderly stop) is put back
    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UsageError(f"cannot start or reach {where}: {' '.join(str(err).split())[:200]}") from None
    if callable(previous) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
    return True


# actors per GPU when not given: one per two of the host's cores per GPU, at most this many.
# Measured on a 2-GPU H200 host (docs/scale.md): 8 actors of 2 cores per GPU ran 5x one actor's
# rate; 16 on one GPU bought only 10% more than 8, as the actors then take turns on the GPU.
MAX_AUTO_ACTORS_PER_GPU = 8
CPUS_PER_GPU_ACTOR = 2


def plan_actors(gpus: int, cpus: int, workers: int | None, cpus_per_worker: int | None,
                actors_per_gpu: int | None) -> tuple[int, int, int]:
    """(actors, CPUs per actor, actors per GPU) for a cluster of `gpus` GPUs (0: CPU actors) and
    `cpus` CPUs; each given value wins over its default."""
    if gpus == 0:
        per_worker = cpus_per_worker or min(CPUS_PER_WORKER, cpus)
        return workers or max(1, cpus // per_worker), per_worker, 1
    if actors_per_gpu is None:
        actors_per_gpu = max(1, min(MAX_AUTO_ACTORS_PER_GPU, cpus // gpus // CPUS_PER_GPU_ACTOR))
    slots = gpus * actors_per_gpu
    # a GPU actor's CPUs tokenise, segment and select beside the GPU: a share of the host's
    per_worker = cpus_per_worker or max(1, min(8, cpus // slots))
    return workers or slots, per_worker, actors_per_gpu


def _resolve_model(model: str | None, use_gpu: bool) -> str:
    """The critic every actor loads: the name or directory given, else the default for the
    actors' device (`small` on GPUs when installed, else `mini`)."""
    from ..critic import registry

    if model is None:
        name = registry.default_critic("cuda" if use_gpu else "cpu")
        if not registry.critic_status(registry.CRITICS[name])[0]:
            name = registry.DEFAULT_CRITIC
        return name
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else str(model)


def _load_for_identity(model: str, batch_size: int | None, window_tokens: int | None):
    from ..compressor import Compressor

    try:
        return Compressor(model=model, device="cpu", batch_size=batch_size, window_tokens=window_tokens)
    except CprsError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelError(f"could not load critic {model}: {type(err).__name__}: {err}") from err


def _critic_identity(compressor, model: str, cpu_dtype: str) -> dict:
    critic = compressor.critic
    dynamic = critic.dynamic
    return {"name": compressor.model_name, "model": model, "sha256": compressor.model_sha256,
            "cpu_dtype": cpu_dtype,
            "thresholds": dict(critic.thresholds), "lexical_weight": critic.lexical_weight,
            "dynamic": dataclasses.asdict(dynamic) if isinstance(dynamic, DynamicPolicy) else None,
            "window_tokens": compressor.window_tokens}


def run_corpus(input: str, output: str | Path, options: CompressOptions | None = None, *,
               model: str | None = None, device: str = "auto", batch_size: int | None = None,
               window_tokens: int | None = None, workers: int | None = None,
               cpus_per_worker: int | None = None, actors_per_gpu: int | None = None,
               address: str | None = None, fmt: str = "parquet",
               shard_tokens: int = DEFAULT_SHARD_TOKENS, shard_rows: int = DEFAULT_SHARD_ROWS,
               max_input_bytes: int = DEFAULT_MAX_INPUT_MB * MB, quiet: bool = False) -> CorpusStats:
    """Compress every row of the dataset `input` (a JSONL or Parquet file, a directory or a
    glob) into output shards under `output`; rerun the same call to resume.

    `options`: every row's options, each replaced by the row's own column when it has one
    (`query`, `instruction`/`task`, `rate`/`max_tokens`, `granularity`); `options.query` may be
    empty when the rows carry their queries. `device`: "auto" (GPU actors when the cluster has
    GPUs), "cpu" or "cuda". `workers`: actors (default: `actors_per_gpu` per GPU, or CPUs /
    `cpus_per_worker`). `actors_per_gpu` > 1 shares each GPU between that many actors (a fraction
    of a GPU each): an actor's CPU work (tokenising, segmenting, selecting) is serial, and on a
    GPU host it, not the GPU, bounds one actor's speed (docs/scale.md); default: one actor per two
    of the cluster's CPUs per GPU, at most 8 (`plan_actors`).
    An interrupted call leaves whole shards only; `written(output)` counts them.

    Raises UsageError (bad options, an output directory of another run or in use),
    MissingExtraError (Ray or pyarrow not installed), InputError (no dataset files, an
    unreadable one), ModelError (the critic). Rows that fail are output rows with an `error`;
    shards that fail are listed in `stats.failed`.
    """
    options = options or CompressOptions(query="")
    (options if options.query else dataclasses.replace(options, query="-")).validate()
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}", params=("format",))
    for name, value in (("shard_tokens", shard_tokens), ("shard_rows", shard_rows)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1", params=(name,))
    if workers is not None and workers < 1:
        raise UsageError("workers must be at least 1", params=("workers",))
    if actors_per_gpu is not None and actors_per_gpu < 1:
        raise UsageError("actors_per_gpu must be at least 1", params=("actors_per_gpu",))
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise UsageError("device must be auto, cpu or cuda", params=("device",))
    ray = _import_ray()
    out = Output(output)
    files = discover(input, exclude=out.dir)
    out.lock()
    started = False
    try:
        out.load()  # refuses a directory that is not a corpus output before Ray starts
        started = _start_ray(ray, address, quiet)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        use_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
        if use_gpu and gpus == 0:
            raise UsageError("device cuda: the Ray cluster has no GPUs", params=("device",))
        n_workers, per_worker, actors_per_gpu = plan_actors(gpus if use_gpu else 0, cpus, workers,
                                                            cpus_per_worker, actors_per_gpu)

        resolved = _resolve_model(model, use_gpu)
        cpu_dtype = os.environ.get("CPRS_CPU_DTYPE", "").strip().lower()  # "", "bfloat16", "auto", "int8"
        compressor = _load_for_identity(resolved, batch_size, window_tokens)
        identity = {"version": 1, "options": _options_dict(options),
                    "model": _critic_identity(compressor, resolved, cpu_dtype),
                    "inputs": [[f.path, f.size, f.mtime_ns] for f in files],
                    "sharding": {"shard_tokens": shard_tokens, "shard_rows": shard_rows,
                                 "batch_size": batch_size},
                    "format": fmt}
        from .manifest import run_key

        shards = out.shards_for(identity, lambda: plan_shards(files, shard_tokens, shard_rows,
                                                              need_query=not options.query))
        pending = [s for s in shards if not out.done(s, fmt)]
        stats = CorpusStats(output=str(out.dir), shards=len(shards), done_before=len(shards) - len(pending),
                            workers=min(n_workers, len(pending)), device="GPU" if use_gpu else "CPU")
        spec = {"model": resolved, "model_sha256": compressor.model_sha256,
                "device": "cuda" if use_gpu else "cpu", "batch_size": batch_size,
                "window_tokens": window_tokens, "threads": per_worker, "cpu_dtype": cpu_dtype,
                "options": _options_dict(options), "output": str(out.dir.resolve()), "format": fmt,
                "run_key": run_key(identity), "max_bytes": max_input_bytes}
        del compressor
        if pending:
            _execute(ray, pending, spec, stats, 1 / actors_per_gpu if use_gpu else 0, per_worker, quiet)
        return stats
    finally:
        out.close()
        if started:
            ray.shutdown()


class _LineOnly(logging.Filter):
    """Keeps a log record's message and drops its traceback. Ray Data's stats thread logs a
    warning with the traceback of a failed call to its stats actor when the driver stops mid-job
    (SIGTERM, Ctrl-C): cprs's stop is one line, and the traceback came from Ray's own teardown."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


_NO_TRACEBACK = _LineOnly()


def _ray_unraisable_one_line(unraisable) -> None:
    """`sys.unraisablehook` for exceptions Ray's own objects raise while being collected.

    When the driver stops mid-job (SIGTERM, Ctrl-C), Ray Data's streaming executor is shut down
    from its `__del__`, during garbage collection or the interpreter's teardown, and what fails
    there Python prints as "Exception ignored in ..." with a traceback, after cprs's own one-line
    message. For objects of Ray's modules this prints one line instead; anything else goes to the
    hook that was installed before."""
    obj = getattr(unraisable, "object", None)
    module = getattr(obj, "__module__", "") or getattr(type(obj), "__module__", "") or ""
    if not module.startswith("ray."):
        _PREVIOUS_UNRAISABLE(unraisable)
        return
    exc = unraisable.exc_value
    what = " ".join(f"{type(exc).__name__}: {exc}".split())[:200] if exc is not None else "an exception"
    try:
        sys.stderr.write(f"cprs: ignored in Ray's teardown ({getattr(obj, '__qualname__', module)}): {what}\n")
    except (OSError, ValueError):  # stderr closed at teardown: nothing left to tell
        pass


_PREVIOUS_UNRAISABLE = sys.unraisablehook


def _execute(ray, pending: list[Shard], spec: dict, stats: CorpusStats, gpu_share: float, per_worker: int,
             quiet: bool) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = not quiet
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    stats_log = logging.getLogger("ray.data._internal.stats")
    if _NO_TRACEBACK not in stats_log.filters:
        stats_log.addFilter(_NO_TRACEBACK)
    if sys.unraisablehook is not _ray_unraisable_one_line:  # kept to the end: Ray's __del__ can run at exit
        global _PREVIOUS_UNRAISABLE
        _PREVIOUS_UNRAISABLE = sys.unraisablehook
        sys.unraisablehook = _ray_unraisable_one_line
    # the biggest shards first, so the last ones to finish are small
    order = sorted(pending, key=lambda s: (-s.tokens, s.index))
    ds = ray.data.from_items([{"shard": json.dumps(s.to_dict())} for s in order],
                             override_num_blocks=len(order))
    ds = ds.map_batches(
        ShardActor, batch_size=1, fn_constructor_kwargs={"spec": spec},
        compute=ray.data.ActorPoolStrategy(size=stats.workers, max_tasks_in_flight_per_actor=1),
        num_gpus=gpu_share, num_cpus=per_worker)
    start = time.perf_counter()
    try:
        for row in ds.iter_rows():
            if row["failed"]:
                stats.failed.append(row["failed"])
            else:
                stats.written += 1
                stats.documents += int(row["rows"])
                stats.errors += int(row["errors"])
                stats.input_tokens += int(row["input_tokens"])
                stats.output_tokens += int(row["output_tokens"])
    except CprsError:
        raise
    except Exception as err:  # noqa: BLE001 - a Ray job failure (an actor that cannot start)
        raise _ray_failure(err) from err
    stats.seconds = time.perf_counter() - start


# a cprs error raised inside an actor reaches the driver as the text of Ray's error (its remote
# traceback); its class and line are found there, so the CLI prints that line and exit code
_REMOTE_ERROR = re.compile(r"cprs_cli\.errors\.(\w+): (.+)")
_ERRORS = {cls.__name__: cls for cls in (InputError, ModelError, OutputError, UsageError)}


def _ray_failure(err: BaseException) -> CprsError:
    """A Ray job failure as one line: the cprs error an actor raised, else the last line of
    the first message in the exception chain."""
    first = ""
    chain: BaseException | None = err
    for _ in range(20):  # a chain, not a cycle
        if chain is None:
            break
        text = str(chain)
        found = _REMOTE_ERROR.findall(text)
        if found:
            name, message = found[-1]
            return _ERRORS.get(name, CprsError)(message.strip())
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = first or (lines[-1] if lines else "")
        chain = chain.__cause__ or chain.__context__
    return CprsError(f"the Ray job failed: {(first or type(err).__name__)[:300]}")
