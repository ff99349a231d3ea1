"""`mini`'s forward pass through ONNX Runtime against torch, on the CPU, same windows (measurement only).

    .venv/bin/pip install onnxruntime==1.31.1 onnx onnxscript   # not package dependencies
    .venv/bin/python benchmarks/bench_onnx.py --model mini --windows 16 --repeats 3

Why it exists: the speed issue asks for 10,000 tokens/s end to end on a 2-core CPU. torch fp32
runs `mini` at about 5,000, bf16 about 7,000-7,800 and torch's dynamic int8 8,300-9,900 with
too much probability drift (docs/speed.md); with int8 Linear layers, attention is about 45% of
the forward. ONNX Runtime brings its own graph fusions (LayerNorm, GELU, a fused attention
kernel) and its own int8 (`quantize_dynamic`). This script answers whether it is faster, and how
far its probabilities move, before anyone considers shipping it as an optional extra.

It loads the critic as the package does (`load_critic(model, "cpu")`, fp32), exports its
BertTagger to ONNX (opset 17, dynamic batch and sequence axes, the attention mask always applied
so one graph serves padded and unpadded batches), and builds ORT sessions with ORT_ENABLE_ALL
and 2 intra-op threads:

- `ort_fp32`: the exported graph as is (ORT's own session-level fusions);
- `ort_fp32_fused`: after `onnxruntime.transformers.optimizer` (model_type bert: fused Attention,
  SkipLayerNorm, BiasGelu);
- `ort_int8`, `ort_int8_fused`: those two after `quantize_dynamic` (int8 weights per channel,
  uint8 activations);
- `ort_int8_fused_ffo`: `ort_int8_fused` with the feed-forward output layers left in fp32 (the
  layers whose inputs carry the activation outliers, docs/speed.md "`mini` on the CPU in int8").

Each variant, and torch (fp32, and the package's int8 for comparison), is timed on the same
random windows as bench_cpu_dtype.py (seed 0, ids in [1000, 20000), one batch), one warm-up then
--repeats timed calls; the median is reported (min beside it). Drift is the max and mean
|Δ keep probability| (keep = 1 - P(O), O = label 2) against torch fp32. One JSON row per variant
is appended to --out.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from bench_cpu_dtype import time_calls  # benchmarks/ is sys.path[0] when run as a script
from torch import nn


class _Export(nn.Module):
    """BertTagger's forward for export, the padding mask always applied, so the graph has no
    data-dependent branch (with no padding the numbers equal the mask-free path up to rounding).

    `attention="eager"` writes attention out as transformers' eager BERT did (MatMul, divide by
    sqrt(head size), add (1 - mask) * -10000, Softmax, MatMul): the pattern that
    `onnxruntime.transformers.optimizer` fuses into its Attention op. `"sdpa"` keeps the
    package's `scaled_dot_product_attention` call with a boolean mask (exported unfused)."""

    def __init__(self, tagger: nn.Module, attention: str = "eager"):
        super().__init__()
        self.tagger, self.attention = tagger, attention

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        bert = self.tagger.bert
        h = bert.embeddings(input_ids)
        if self.attention == "sdpa":
            mask = attention_mask.to(torch.bool)[:, None, None, :]
            for layer in bert.encoder.layer:
                h = layer(h, mask)
            return self.tagger.classifier(h)
        bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -10000.0
        for layer in bert.encoder.layer:
            sa = layer.attention.self
            shape = h.size()[:-1] + (sa.heads, sa.head_size)
            q = sa.query(h).view(shape).permute(0, 2, 1, 3)
            k = sa.key(h).view(shape).permute(0, 2, 1, 3)
            v = sa.value(h).view(shape).permute(0, 2, 1, 3)
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(sa.head_size) + bias
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
            ctx = ctx.view(ctx.size()[:-2] + (sa.heads * sa.head_size,))
            a = layer.attention.output(ctx, h)
            h = layer.output(F.gelu(layer.intermediate.dense(a)), a)
        return self.tagger.classifier(h)


def use_onnx(critic, path: str | Path, threads: int = 2):
    """Route `critic.logits` through an ORT session on the exported graph at `path` (fp32 or
    int8), for end-to-end measurements (bench_speed.py --onnx, experiments/keep_drift.py
    --onnx). The rest of the package (windows, softmax, selection) is unchanged. Returns the
    session."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def logits(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        ids = input_ids.numpy()
        mask = np.ones_like(ids) if attention_mask is None else attention_mask.numpy().astype(np.int64)
        return torch.from_numpy(sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0])

    critic.logits = logits
    return sess


def _keep(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return 1.0 - z[..., 2] / z.sum(-1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="torch_fp32,torch_int8,ort_fp32,ort_fp32_fused,ort_int8,ort_int8_fused,"
                                          "ort_int8_fused_ffo")
    ap.add_argument("--attention", choices=("eager", "sdpa"), default="eager", help="how attention is exported")
    ap.add_argument("--workdir", default=None, help="where the .onnx files go (default: a temporary folder)")
    ap.add_argument("--out", default="benchmarks/results/cpu_dtype.jsonl")
    a = ap.parse_args()

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from cprs_cli.critic import load_critic
    from cprs_cli.critic.base import cpu_has_native_bf16, cpu_has_vnni
    from cprs_cli.evaluation.machine import cpu_model

    variants = a.variants.split(",")
    if variants[0] != "torch_fp32":
        raise SystemExit("--variants: torch_fp32 first (the reference)")
    work = Path(a.workdir or tempfile.mkdtemp(prefix="cprs-onnx-"))
    work.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (a.windows, a.length))
    mask = torch.ones_like(ids)
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    n_tokens = ids.numel()
    base = {"model": a.model, "windows": a.windows, "length": a.length, "threads": a.threads,
            "cpu": platform.processor() or platform.machine(),
            "machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "vnni": cpu_has_vnni(),
                        "native_bf16": cpu_has_native_bf16()},
            "attention_export": a.attention, "torch": torch.__version__, "onnxruntime": ort.__version__,
            "command": " ".join([".venv/bin/python", *sys.argv])}

    torch.set_num_threads(a.threads)
    os.environ["CPRS_CPU_DTYPE"] = "float32"
    critic = load_critic(a.model, "cpu")
    assert critic.precision == "float32", critic.precision

    # export (and the variants derived from it) before any timing
    plain = work / "mini_fp32.onnx"
    t0 = time.perf_counter()
    with torch.inference_mode():
        torch.onnx.export(_Export(critic.model, a.attention), (ids[:2, :64], mask[:2, :64]), str(plain),
                          opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "length"},
                                        "attention_mask": {0: "batch", 1: "length"},
                                        "logits": {0: "batch", 1: "length"}}, dynamo=False)
    export_s = time.perf_counter() - t0
    files = {"ort_fp32": plain}
    if any(v.endswith("_fused") for v in variants):
        from onnxruntime.transformers.optimizer import optimize_model

        cfg = critic.model.config
        opt = optimize_model(str(plain), model_type="bert", num_heads=cfg.num_attention_heads,
                             hidden_size=cfg.hidden_size, opt_level=0)
        print("fused ops:", opt.get_fused_operator_statistics(), file=sys.stderr)
        files["ort_fp32_fused"] = work / "mini_fp32_fused.onnx"
        opt.save_model_to_file(str(files["ort_fp32_fused"]))
    for src, dst in (("ort_fp32", "ort_int8"), ("ort_fp32_fused", "ort_int8_fused"),
                     ("ort_fp32_fused", "ort_int8_fused_ffo")):
        if dst in variants:
            files[dst] = work / f"{dst.removeprefix('ort_')}.onnx"
            exclude = []
            if dst.endswith("_ffo"):  # the feed-forward output layers (weight intermediate x hidden) stay fp32
                g = onnx.load(str(files[src]), load_external_data=False).graph
                big = {t.name for t in g.initializer if list(t.dims) == [critic.model.config.intermediate_size,
                                                                          critic.model.config.hidden_size]}
                exclude = [n.name for n in g.node if n.op_type == "MatMul" and n.input[1] in big]
            # the fused graph's contrib ops defeat shape inference: say its tensors are float
            quantize_dynamic(str(files[src]), str(files[dst]), per_channel=True, weight_type=QuantType.QInt8,
                             nodes_to_exclude=exclude,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})

    load = os.getloadavg()[0]
    rows, ref = [], None
    for variant in variants:
        if variant.startswith("torch_"):
            dtype = {"torch_fp32": "float32", "torch_int8": "int8", "torch_bf16": "bfloat16"}[variant]
            if dtype != "float32":
                os.environ["CPRS_CPU_DTYPE"] = dtype
                critic = load_critic(a.model, "cpu")
                assert critic.precision == dtype, (critic.precision, dtype)

            def fn(c=critic):
                with torch.inference_mode():
                    return c.logits(ids, mask).float().numpy()
        else:
            holder = SimpleNamespace()
            sess = use_onnx(holder, files[variant], a.threads)

            def fn(s=sess):
                return s.run(["logits"], feeds)[0]
        times, logits = time_calls(fn, a.repeats)
        keep = _keep(logits)
        if ref is None:
            ref = keep
        d = np.abs(keep - ref)
        med = statistics.median(times)
        row = {**base, "variant": variant, "load_avg": load, "date": time.strftime("%Y-%m-%d %H:%M"),
               "s_median": round(med, 3), "s_min": round(min(times), 3),
               "tok_per_s": round(n_tokens / med), "tok_per_s_best": round(n_tokens / min(times)),
               "max_dkeep": round(float(d.max()), 6), "mean_dkeep": round(float(d.mean()), 7)}
        if variant.startswith("ort_"):
            row["onnx_mb"] = round(files[variant].stat().st_size / 2**20, 1)
            row["export_s"] = round(export_s, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
        load = os.getloadavg()[0]
    with open(a.out, "a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
