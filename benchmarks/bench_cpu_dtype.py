"""The critic's forward pass on the CPU in fp32 and in bf16 (CPRS_CPU_DTYPE), same windows.

    .venv/bin/python benchmarks/bench_cpu_dtype.py --model mini --windows 16 --repeats 3

Loads the critic twice (fp32, then bf16 weights, the path `CPRS_CPU_DTYPE=bfloat16` takes),
times `Critic.logits` on the same random windows (best of --repeats after a warm-up), and
reports the speed ratio and how far the bf16 probabilities move from fp32 (max and mean |ΔP|
of the keep probability). Prints one JSON line and appends it to --out. Quality at the level of
documents is the evaluation runner's job (docs/quality.md, docs/speed.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/cpu_dtype.jsonl")
    a = ap.parse_args()
    from cprs_cli.critic import load_critic
    from cprs_cli.critic.base import cpu_has_native_bf16

    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (a.windows, a.length))
    mask = torch.ones_like(ids)
    row: dict = {"model": a.model, "windows": a.windows, "length": a.length,
                 "native_bf16": cpu_has_native_bf16(), "threads": torch.get_num_threads(),
                 "cpu": platform.processor() or platform.machine(), "load_avg": os.getloadavg()[0],
                 "date": time.strftime("%Y-%m-%d %H:%M")}
    probs = {}
    for dtype in ("float32", "bfloat16"):
        os.environ["CPRS_CPU_DTYPE"] = dtype
        critic = load_critic(a.model, "cpu")
        with torch.inference_mode():
            critic.logits(ids, mask)
            times = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                out = critic.logits(ids, mask)
                times.append(time.perf_counter() - t)
        probs[dtype] = torch.softmax(out.float(), -1)[..., 2]
        row[f"{dtype}_s"] = round(min(times), 3)
        row[f"{dtype}_tok_per_s"] = round(ids.numel() / min(times))
    d = (probs["bfloat16"] - probs["float32"]).abs()
    row.update(speedup=round(row["float32_s"] / row["bfloat16_s"], 2), max_dp=round(float(d.max()), 5),
               mean_dp=round(float(d.mean()), 6))
    print(json.dumps(row))
    with open(a.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
