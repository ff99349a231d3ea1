"""The critic's forward pass on the CPU in fp32, bf16 and int8 (CPRS_CPU_DTYPE), same windows.

    .venv/bin/python benchmarks/bench_cpu_dtype.py --model mini --windows 16 --repeats 3
    .venv/bin/python benchmarks/bench_cpu_dtype.py --dtypes float32,int8

Loads the critic once per precision (`--dtypes`, the paths `CPRS_CPU_DTYPE=...` takes: fp32,
bf16 weights, fp32 with int8 Linear layers), times `Critic.logits` on the same random windows
(best of --repeats after a warm-up), and reports each one's speed against fp32 and how far its
probabilities move from fp32 (max and mean |ΔP| of the keep probability). Prints one JSON line
and appends it to --out (the bf16-only keys of the first rows, `speedup`, `max_dp`, `mean_dp`,
are kept for bf16). Quality at the level of documents is the evaluation runner's job
(docs/quality.md, docs/speed.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial

import torch


def time_calls(fn, repeats: int) -> tuple[list[float], object]:
    """`fn()` once to warm up, then `repeats` timed calls: (the seconds of each, the last result)."""
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtypes", default="float32,bfloat16,int8", help="CPRS_CPU_DTYPE values; float32 first")
    ap.add_argument("--out", default="benchmarks/results/cpu_dtype.jsonl")
    a = ap.parse_args()
    from cprs_cli.critic import load_critic
    from cprs_cli.critic.base import cpu_has_native_bf16, cpu_has_vnni

    dtypes = a.dtypes.split(",")
    if dtypes[0] != "float32":
        raise SystemExit("--dtypes: float32 first (the reference)")

    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (a.windows, a.length))
    mask = torch.ones_like(ids)
    row: dict = {"model": a.model, "windows": a.windows, "length": a.length,
                 "native_bf16": cpu_has_native_bf16(), "vnni": cpu_has_vnni(),
                 "quantized_engine": torch.backends.quantized.engine, "threads": torch.get_num_threads(),
                 "cpu": platform.processor() or platform.machine(), "load_avg": os.getloadavg()[0],
                 "date": time.strftime("%Y-%m-%d %H:%M")}
    probs = {}
    for dtype in dtypes:
        os.environ["CPRS_CPU_DTYPE"] = dtype
        critic = load_critic(a.model, "cpu")
        assert critic.precision == dtype, (critic.precision, dtype)
        with torch.inference_mode():
            times, out = time_calls(partial(critic.logits, ids, mask), a.repeats)
        probs[dtype] = torch.softmax(out.float(), -1)[..., 2]
        row[f"{dtype}_s"] = round(min(times), 3)
        row[f"{dtype}_tok_per_s"] = round(ids.numel() / min(times))
        del critic
    for dtype in dtypes[1:]:
        d = (probs[dtype] - probs["float32"]).abs()
        row.update({f"{dtype}_speedup": round(row["float32_s"] / row[f"{dtype}_s"], 2),
                    f"{dtype}_max_dp": round(float(d.max()), 5), f"{dtype}_mean_dp": round(float(d.mean()), 6)})
    if "bfloat16" in probs:  # the keys of the rows written before int8 was measured
        row.update(speedup=row["bfloat16_speedup"], max_dp=row["bfloat16_max_dp"], mean_dp=row["bfloat16_mean_dp"])
    print(json.dumps(row))
    with open(a.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
