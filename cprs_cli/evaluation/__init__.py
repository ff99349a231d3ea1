"""How good cprs is: the benchmark suite (`cprs bench`) and the quality report on held-out data.

Shipped in the wheel because `cprs bench` is a command; nothing here is needed by
`cprs compress`, and nothing here writes anywhere but where it is told (`out_dir`, `--out`).

* :mod:`.qa`        - the QA records: data directory, loader, the by-document split (train / val,
                      and val's calib / test halves; training imports it from here), packing
* :mod:`.synthetic` - RULER-style synthetic long-context tasks (needles, variable tracking,
                      key-value, common / frequent words) with exact evidence spans
* :mod:`.tasks`     - the benchmark's task suite, sized in cl100k tokens (synthetic tasks and a
                      real QA record among distractor documents)
* :mod:`.baselines` - BM25 (with a `unit=`), dense MiniLM retrieval, first-k tokens, random
                      chunks, at the critic's budget
* :mod:`.metrics`   - RULER string matching, evidence recall, answer kept, bootstrap intervals,
                      compression ratio, linear fit
* :mod:`.report`    - the one writer: JSON first (atomic, NaN as null), then plots, then markdown
* :mod:`.plots`     - needle heat-map, scores, speed and stage plots (matplotlib, the `bench` extra)
* :mod:`.machine`   - what a report ran on
* :mod:`.deps`      - the optional dependencies, each with its one-line install hint
* :mod:`.bench`     - the benchmark harness: ``main(out_dir, ...)`` (what `cprs bench` calls) and
                      ``python -m cprs_cli.evaluation.bench``
* :mod:`.quality`   - the quality runner on the `test` split: ``python -m cprs_cli.evaluation.quality``
"""
