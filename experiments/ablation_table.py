"""Render the ablation runs of experiments/ablation.sh as a markdown table (into docs/quality.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cprs_cli.evaluation.report import fmt

RUNS = [
    ("A0_before", "before: round-1 `mini`, critic ranking alone, dynamic by tags at the global threshold"),
    ("A1_fusion", "+ BM25 fusion (W = 0.3) alone"),
    ("A2_dynamic_rule", "+ per-document dynamic rule alone"),
    ("A3_training", "+ round-2 training alone (hard negatives, both label kinds)"),
    ("A4_mini_all", "all together: round-2 `mini`, fusion 0.3, dynamic rule (shipped `mini`)"),
    ("A5_small_no_fusion", "round-2 `small`, dynamic rule, no fusion"),
    ("A6_small_all", "round-2 `small`, fusion 0.1, dynamic rule"),
    ("A7_small_r3", "round-3 `small` (DDP, 2 GPUs), fusion 0.05, dynamic rule"),
    ("A8_small_r4_data", "round-4 `small`, more data alone (every train record), fusion 0.05, dynamic rule"),
    ("A9_small_r4_data_capacity", "round-4 `small`, more data + LoRA rank 64 in the bidirectional layers, "
                                  "fusion 0.1, dynamic rule (shipped `small`)"),
    ("A10_small_r5", "round-5 `small`: A9's settings on both GPUs, twice the tokens (not shipped), fusion 0.05, "
                     "dynamic rule"),
]
COLS = [("multihop", "rate:0.2"), ("multihop", "rate:0.1"), ("multihop", "dynamic"), ("articles", "rate:0.1"),
        ("articles", "rate:0.05"), ("articles", "dynamic"), ("papers", "rate:0.1"), ("papers", "dynamic")]


def main(directory: str = "docs/quality/ablation") -> str:
    head = ["Lever"] + [f"{r} {m.replace('rate:', '@')}" for r, m in COLS] + ["unanswerable articles, dynamic"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name, label in RUNS:
        path = Path(directory) / f"{name}.json"
        if not path.exists():
            continue
        rep = json.loads(path.read_text())
        by = {(r["row"], r["mode"]): r for r in rep["rows"]}
        cells = []
        for key in COLS:
            r = by.get(key)
            if r is None:
                cells.append("–")
                continue
            cell = f"{fmt(r['critic'])}"
            if key[1] == "dynamic":
                cell += f" ({r['ratio']:.1f}×)"
            cells.append(cell)
        una = by.get(("articles", "dynamic"), {}).get("unanswerable")
        cells.append(f"{fmt(una['mean_output_share'])}%" if una else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ref = json.loads((Path(directory) / "A0_before.json").read_text())
    by = {(r["row"], r["mode"]): r for r in ref["rows"]}
    lines.append("| BM25 at the same budget as A0 | " + " | ".join(
        fmt(by[k]["bm25"]) if k in by else "–" for k in COLS) + " | – |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
