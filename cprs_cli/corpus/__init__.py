"""`cprs corpus`: compress a dataset of millions of documents on Ray Data, resumably.

`cprs compress dir/ -r` is one process on one device that starts over when interrupted. A corpus
run cuts JSONL or Parquet files into fixed shards (`shards.py`), records the run and its shard
plan in a manifest (`manifest.py`), and lets a Ray Data actor pool compress the shards not yet
written, one `Compressor` per actor (`run.py`, `worker.py`), on a laptop, a multi-GPU host or a
cluster (`address`). Design and measurements: docs/corpus.md.

Importing this package needs neither Ray nor pyarrow (the `corpus` extra); running does.
"""

from .manifest import written
from .run import CorpusStats, run_corpus

__all__ = ["CorpusStats", "run_corpus", "written"]
