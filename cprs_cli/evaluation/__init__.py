"""`cprs bench`: how cprs compares with simple alternatives on long-context retrieval tasks.

* :mod:`.tasks`     — the task suite (RULER-style synthetic tasks from :mod:`cprs_cli.synthetic`
                      and a real QA record hidden among distractor documents), sized in cl100k tokens
* :mod:`.baselines` — BM25 chunk retrieval, dense MiniLM retrieval, first-k tokens, random sentences,
                      all under the same token budget as the critic's output
* :mod:`.metrics`   — RULER's string_match_all / string_match_part, compression ratio, linear fit
* :mod:`.plots`     — needle heat-map (context length × depth), scores and speed plots (PNG)
* :mod:`.run`       — the harness: ``main(...)`` and ``python -m cprs_cli.bench.run --quick``
"""

from __future__ import annotations

__all__ = ["baselines", "metrics", "plots", "run", "tasks"]
