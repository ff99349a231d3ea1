"""Train a shipped critic: `python -m training --critic mini|small --out DIR [--data-dir DIR]`.

One file, one loop (in the spirit of nanoGPT):

1. examples   ← training.data (the project's QA data, packed long documents, synthetic tasks)
2. windows    ← the inference path's own tokenizer, prompt format and window planner, with
                B/I/O/E labels from the gold character spans (prompt tokens are not scored)
3. model      ← the pinned base (verified by sha256) with a fresh 4-way head;
                `mini`: layers 1-5 of MiniLM fine-tuned, embeddings and layer 0 frozen;
                `small`: LoRA on every SmolLM2 linear, the top layers made bidirectional,
                `cls_head` initialised from the LM-head rows of tag words (LM as critic)
4. loop       ← AdamW, bf16 autocast, learning rate on a wall-clock cosine, stops at --minutes
5. export     ← only what training changed (delta.safetensors, fp16) + critic.json

Several GPUs: `torchrun --nproc_per_node N -m training ...` runs data-parallel (DDP over
NCCL; gloo on CPU). Each rank encodes and trains on its own share of the examples with
`--batch-tokens` per rank; the ranks agree on the wall-clock schedule and the stop step; rank 0
evaluates, logs and exports.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from cprs_cli.critic import CRITICS, base_model_dir, base_state, build_model, critic_config
from cprs_cli.critic.base import IGNORE, resolve_device
from cprs_cli.critic.encoder import EncoderCritic
from cprs_cli.critic.hybrid import HybridCritic
from cprs_cli.critic.lora import LoRALinear, add_lora, lora_state
from cprs_cli.select import unit_token_ranges
from cprs_cli.tags import O, bioe_tags
from cprs_cli.windows import plan

TAG_WORDS = (" begin", " inside", " outside", " end")  # B, I, O, E rows of the LM head

PRESETS = {
    # name: (window context tokens, bidirectional start, lr, tokens per batch)
    "mini": dict(window_tokens=512, lr=1e-4, batch_tokens=65536, frozen_layers=1),
    "small": dict(window_tokens=2048, lr=3e-4, batch_tokens=65536, bidirectional_start_layer=22,
                  lora_rank=16, lora_rank_top=32),
}


@dataclass
class TrainConfig:
    critic: str = "mini"
    out: str = "runs/mini"
    data_dir: str = ""  # the QA data; "" = $CPRS_DATA, else ../shared/data (cprs_cli.evaluation.qa)
    minutes: float = 4.0
    max_steps: int = 0  # 0 = until the time is up
    seed: int = 0
    device: str = "auto"
    n_synthetic: int = 3000
    long_fraction: float = 0.1
    max_per_source: int = 3000
    neg_keep: float = 0.25  # share of evidence-free windows kept (most windows of a long document)
    workers: int = 0  # 0 = all cores
    val_windows: int = 3000
    eval_every: int = 200
    limit_examples: int = 0  # for smoke tests
    window_tokens: int = 0  # 0 = the preset's
    lr: float = 0.0
    batch_tokens: int = 0
    resume: str = ""  # "shipped" = start from the committed delta of --critic; or a delta.safetensors path
    augment_fraction: float = 0.2  # share of records that also get their cross-task copy
    hard_fraction: float = 0.0  # share of examples also packed among lexically similar documents
    lora_rank: int = 0  # hybrid critics: adapter rank below the bidirectional layers (0 = the preset's)
    lora_rank_top: int = 0  # ... and in the bidirectional layers; may exceed a resumed delta's rank


# ----------------------------------------------------------------------------- model

def init_model(name: str, device: torch.device, lora_rank: int = 0, lora_rank_top: int = 0):
    """The base model with a fresh head, its critic wrapper (tokenizer + prompt format), trainables.
    `lora_rank` / `lora_rank_top` (hybrid critics; 0 = the preset's) set the adapters' ranks below
    and from the first bidirectional layer."""
    spec = CRITICS[name]
    preset = dict(PRESETS[name])
    if lora_rank:
        preset["lora_rank"] = lora_rank
    if lora_rank_top:
        preset["lora_rank_top"] = lora_rank_top
    base_dir = base_model_dir(spec)  # verifies the pinned base by sha256
    state = base_state(spec, base_dir, torch.device("cpu"))
    if spec.kind == "encoder":
        overrides = {"cprs_critic": "encoder", "cprs_window_tokens": preset["window_tokens"]}
        config = critic_config(spec, base_dir, overrides)
        from transformers import AutoModelForTokenClassification

        torch.manual_seed(0)
        head = AutoModelForTokenClassification.from_config(config).classifier
        state["classifier.weight"], state["classifier.bias"] = head.weight.detach(), head.bias.detach()
        model = build_model(config, "encoder", state, device, torch.float32)
        tok = _tokenizer(base_dir)
        for name_, p in model.named_parameters():
            frozen = name_.startswith("bert.embeddings.") or any(
                name_.startswith(f"bert.encoder.layer.{i}.") for i in range(preset["frozen_layers"]))
            p.requires_grad_(not frozen)
        critic = EncoderCritic(model, tok, name=name, sha256="", device=device)
        return model.train(), critic, overrides
    tok = _tokenizer(base_dir)
    tag_ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in TAG_WORDS]
    overrides = {"cprs_critic": "hybrid", "bidirectional_start_layer": preset["bidirectional_start_layer"],
                 "cprs_window_tokens": preset["window_tokens"], "cprs_lm_tag_token_ids": tag_ids}
    config = critic_config(spec, base_dir, overrides)
    emb = state["model.embed_tokens.weight"]
    state["cls_head.weight"] = emb[tag_ids].clone()  # LM as critic: start from the LM's own tag scores
    state["cls_head.bias"] = torch.zeros(4)
    model = build_model(config, "hybrid", state, device, torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    start = preset["bidirectional_start_layer"]

    def rank_for(qual: str) -> int:
        return preset["lora_rank_top"] if _layer_index(qual) >= start else preset["lora_rank"]

    add_lora(model.model, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), rank_for)
    for name_, p in model.named_parameters():
        if name_.startswith("cls_head.") or "norm" in name_ or "lora_" in name_:
            p.requires_grad_(True)
    critic = HybridCritic(model, tok, name=name, sha256="", device=device)
    return model.train(), critic, overrides


def _tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_dir), trust_remote_code=False)
    tok.model_max_length = 1 << 40
    return tok


def _layer_index(name: str) -> int:
    """The decoder layer a parameter or module name belongs to (`...layers.<i>....`)."""
    return int(name.split("layers.")[1].split(".")[0])


def resume_ranks(name: str, delta: dict[str, torch.Tensor], lora_rank: int = 0,
                 lora_rank_top: int = 0) -> tuple[int, int]:
    """The adapter ranks (below, from the first bidirectional layer) a run resumed from `delta`
    builds: a rank given explicitly as is (`load_delta` refuses one below the delta's); else the
    preset's, raised to the delta's own where that is higher, so a delta trained with more
    capacity (round 4's rank 64) resumes without repeating its flags. (0, 0) for encoders."""
    preset = PRESETS[name]
    if "lora_rank" not in preset:
        return lora_rank, lora_rank_top
    start = preset["bidirectional_start_layer"]
    low = top = 0
    for key, a in delta.items():
        if key.startswith("lora_A.") and "layers." in key:
            if _layer_index(key) >= start:
                top = max(top, a.shape[0])
            else:
                low = max(low, a.shape[0])
    return (lora_rank or max(int(preset["lora_rank"]), low), lora_rank_top or max(int(preset["lora_rank_top"]), top))


def load_delta(model, delta: dict[str, torch.Tensor]) -> int:
    """Start training from an exported delta: `full.*` tensors are copied into the parameters,
    LoRA pairs into the adapters (the scale folded into B at export is taken out again).

    An adapter may have a higher rank than the delta's (more capacity for a resumed run): the
    delta fills its first rows of A and columns of B, and the new directions start as a fresh
    adapter does (A random, B zero), so the resumed model computes what the delta's did.
    A lower rank than the delta's is an error. Returns the number of tensors loaded."""
    params = dict(model.named_parameters())
    n = 0
    with torch.no_grad():
        for key, value in delta.items():
            if key.startswith("full."):
                params[key[len("full."):]].copy_(value.to(params[key[len("full."):]].dtype))
                n += 1
        for qual, mod in model.named_modules():
            if isinstance(mod, LoRALinear):
                a, b = delta[f"lora_A.{qual}.weight"], delta[f"lora_B.{qual}.weight"]
                r = a.shape[0]
                if r > mod.rank:
                    raise ValueError(f"{qual}: the delta's LoRA rank {r} is above the adapter's {mod.rank}")
                mod.lora_A[:r].copy_(a.to(mod.lora_A.dtype))
                mod.lora_B.zero_()
                mod.lora_B[:, :r].copy_((b.float() / mod.scale).to(mod.lora_B.dtype))
                n += 2
    return n


# ----------------------------------------------------------------------------- data → windows

_W: dict = {}  # per-worker state (set before forking)


def evidence_mask(offsets: np.ndarray, evidence) -> np.ndarray:
    """Tokens that overlap a gold span (offsets may include a leading space: BPE)."""
    mask = np.zeros(len(offsets), dtype=bool)
    if len(evidence):
        for i0, i1 in unit_token_ranges(np.asarray(evidence, dtype=np.int64).reshape(-1, 2), offsets):
            mask[i0:i1] = True
    return mask


def encode_example(ex, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    critic, budget_cap, neg_keep = _W["critic"], _W["window_tokens"], _W["neg_keep"]
    rng = random.Random(seed)
    # the inference path's own planner (windows.plan): the critic learns the windows it will see
    p = plan(critic, ex.document, ex.instruction, ex.query, budget_cap)
    doc, prefix, suffix = p.doc, p.prefix, p.suffix
    if len(doc) == 0:
        return []
    tags = bioe_tags(evidence_mask(doc.offsets, ex.evidence))
    out = []
    for w, (s, e) in enumerate(p.windows):
        positive = bool((tags[s:e] != O).any())
        if not positive and rng.random() > neg_keep:
            continue
        ids = p.window_ids(w).astype(np.int32)
        labels = np.concatenate([np.full(len(prefix), IGNORE), tags[s:e], np.full(len(suffix), IGNORE)])
        out.append((ids, labels.astype(np.int8)))
    return out


def _encode_star(args):
    return encode_example(*args)


def encode_all(examples, critic, window_tokens, neg_keep, workers, seed):
    _W.update(critic=critic, window_tokens=window_tokens, neg_keep=neg_keep)
    jobs = [(ex, seed * 1_000_003 + i) for i, ex in enumerate(examples)]
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    windows = []
    if workers == 1:
        for j in jobs:
            windows.extend(encode_example(*j))
    else:
        with get_context("fork").Pool(workers) as pool:
            for ws in pool.imap_unordered(_encode_star, jobs, chunksize=16):
                windows.extend(ws)
    return windows


def batches(windows, batch_tokens: int, rng: random.Random):
    """Length-bucketed batches of about `batch_tokens` padded tokens, in random order."""
    order = sorted(range(len(windows)), key=lambda i: (len(windows[i][0]), rng.random()))
    out, cur, cur_max = [], [], 0
    for i in order:
        n = len(windows[i][0])
        if cur and max(cur_max, n) * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(windows, idx, critic, device):
    """A training batch padded by the critic's own padder (`Critic.pad_batch`, as at inference)."""
    ids, mask, labels = critic.pad_batch([windows[i][0] for i in idx], [windows[i][1] for i in idx])
    return ids.to(device, non_blocking=True), mask.to(device, non_blocking=True), labels.to(device, non_blocking=True)


# ----------------------------------------------------------------------------- ranks

@dataclass(frozen=True)
class Ranks:
    """Where this process sits in a torchrun job (world 1 = a plain single-process run)."""
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_ranks(device: str) -> Ranks:
    """Join the torchrun job when there is one (WORLD_SIZE > 1). Called after the encoding
    workers have forked and exited, so no child inherits a process group or a CUDA context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(ranks.local)
    dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def agree_max(value: float, ranks: Ranks, device: torch.device) -> float:
    """The largest value over all ranks (the ranks' clocks drift; the slowest decides)."""
    if ranks.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def agree_sum(value: int, ranks: Ranks, device: torch.device) -> int:
    if ranks.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return int(t.item())


# ----------------------------------------------------------------------------- loop

CLASS_WEIGHTS = (1.5, 1.5, 1.0, 1.5)  # B, I, O, E: evidence tokens are rare and matter more


@torch.no_grad()
def evaluate(critic, windows, batch_tokens, device) -> dict:
    """Token-level keep precision / recall / F1 (keep = argmax != O) and loss on held-out windows."""
    model = critic.model
    model.eval()
    tp = fp = fn = 0
    loss_sum, n_tok = 0.0, 0
    w = torch.tensor(CLASS_WEIGHTS, device=device)
    for idx in batches(windows, batch_tokens, random.Random(0)):
        ids, mask, labels = collate(windows, idx, critic, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = critic.logits(ids, mask).float()
        valid = labels != IGNORE
        loss_sum += F.cross_entropy(logits[valid], labels[valid], weight=w, reduction="sum").item()
        n_tok += int(valid.sum())
        pred = logits.argmax(-1) != O
        gold = labels != O
        tp += int((pred & gold & valid).sum())
        fp += int((pred & ~gold & valid).sum())
        fn += int((~pred & gold & valid).sum())
    model.train()
    p = tp / max(tp + fp, 1)
    r = tp / max(tp + fn, 1)
    return {"val_loss": loss_sum / max(n_tok, 1), "val_precision": p, "val_recall": r,
            "val_f1": 2 * p * r / max(p + r, 1e-9), "val_tokens": n_tok}


def train(cfg: TrainConfig) -> Path:
    preset = PRESETS[cfg.critic]
    window_tokens = cfg.window_tokens or preset["window_tokens"]
    lr = cfg.lr or preset["lr"]
    batch_tokens = cfg.batch_tokens or preset["batch_tokens"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_f = open(out / "train_log.jsonl", "w") if rank == 0 else None

    def log(**row):
        if log_f is None:
            return
        row = {"t": round(time.time() - t_start, 2), **row}
        log_f.write(json.dumps(row) + "\n")
        log_f.flush()
        print(json.dumps(row), file=sys.stderr, flush=True)

    t_start = time.time()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    from . import data

    data_dir = data.resolve_data_dir(cfg.data_dir or None)
    train_ex = data.build_training_set(seed=cfg.seed, n_synthetic=cfg.n_synthetic, long_fraction=cfg.long_fraction,
                                       long_target_chars=(16_000, 64_000), synthetic_length_range=(2_000, 64_000),
                                       max_per_source=cfg.max_per_source, augment_fraction=cfg.augment_fraction,
                                       hard_fraction=cfg.hard_fraction, data_dir=data_dir)
    val_ex = data.build_validation_set(seed=cfg.seed, n_synthetic=max(50, cfg.n_synthetic // 20),
                                       data_dir=data_dir)
    if cfg.limit_examples:
        train_ex, val_ex = train_ex[: cfg.limit_examples], val_ex[: max(8, cfg.limit_examples // 4)]
    log(event="data", train_examples=len(train_ex), val_examples=len(val_ex), world=world,
        stats=data.stats(train_ex))

    # built on the CPU and moved only after the windows are encoded: the encoding workers fork,
    # and a forked child must not inherit an initialised CUDA context
    ranks_ = (cfg.lora_rank, cfg.lora_rank_top)
    delta = None
    if cfg.resume:
        from safetensors.torch import load_file

        path = CRITICS[cfg.critic].delta_path if cfg.resume == "shipped" else Path(cfg.resume)
        delta = load_file(str(path))
        ranks_ = resume_ranks(cfg.critic, delta, *ranks_)
    model, critic, overrides = init_model(cfg.critic, torch.device("cpu"), *ranks_)
    if delta is not None:
        log(event="resume", delta=str(path), tensors=load_delta(model, delta), lora_ranks=list(ranks_))
    # each rank encodes its own share of the examples, with its share of the cores
    workers = cfg.workers or max(1, (os.cpu_count() or 1) // world)
    train_w = encode_all(train_ex[rank::world], critic, window_tokens, cfg.neg_keep, workers, cfg.seed + rank * 7919)
    val_w = encode_all(val_ex, critic, window_tokens, cfg.neg_keep, workers, cfg.seed + 1) if rank == 0 else []
    ranks = init_ranks(cfg.device)
    device = torch.device("cuda", ranks.local) if ranks.world > 1 and cfg.device != "cpu" and \
        torch.cuda.is_available() else resolve_device(cfg.device)
    # the critic wrapper takes its device in the constructor: a new one for the moved model
    critic = type(critic)(model.to(device), critic.tokenizer, name=critic.name, sha256=critic.sha256,
                          device=device)
    model.train()  # the wrapper's constructor sets eval mode
    # the training forward goes through DDP (gradients averaged over ranks in backward);
    # evaluation on rank 0 uses the bare model, so it needs no collective
    fwd = critic
    if ranks.world > 1:
        fwd = copy.copy(critic)
        fwd.model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    random.Random(1).shuffle(val_w)
    val_w = val_w[: cfg.val_windows]
    n_train_tokens = agree_sum(sum(len(w[0]) for w in train_w), ranks, device)
    pos = agree_sum(sum(int((w[1] != O).sum() - (w[1] == IGNORE).sum()) for w in train_w), ranks, device)
    n_windows = agree_sum(len(train_w), ranks, device)
    log(event="windows", train_windows=n_windows, val_windows=len(val_w),
        train_tokens=n_train_tokens, evidence_token_share=round(pos / max(n_train_tokens, 1), 4))

    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98), fused=device.type == "cuda")
    weights = torch.tensor(CLASS_WEIGHTS, device=device)
    log(event="model", critic=cfg.critic, trainable_params=n_trainable, lr=lr, batch_tokens=batch_tokens,
        window_tokens=window_tokens, device=str(device), world=ranks.world)

    budget_s = cfg.minutes * 60
    t_loop = time.time()
    step, epoch, seen = 0, 0, 0
    rng = random.Random(cfg.seed + ranks.rank)
    done = False
    while not done:
        for idx in batches(train_w, batch_tokens, rng):
            # every rank takes the same decision at the same step (one tiny all-reduce)
            frac = agree_max((time.time() - t_loop) / budget_s, ranks, device)
            if frac >= 1 or (cfg.max_steps and step >= cfg.max_steps):
                done = True
                break
            # warm-up over the first 3% of the time, then cosine to 5%
            scale = min(1.0, frac / 0.03) if frac < 0.03 else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr * scale
            ids, mask, labels = collate(train_w, idx, critic, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = fwd.logits(ids, mask)
            loss = F.cross_entropy(logits.float().view(-1, 4), labels.view(-1), weight=weights, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            seen += int(mask.sum())
            if step % 25 == 0:
                el = time.time() - t_loop
                total = agree_sum(seen, ranks, device)
                log(event="step", step=step, epoch=epoch, loss=round(loss.item(), 4), lr=lr * scale,
                    tokens=total, tok_per_s=round(total / el))
            if cfg.eval_every and step % cfg.eval_every == 0 and ranks.main:
                metrics = evaluate(critic, val_w, batch_tokens, device)
                log(event="eval", step=step, **metrics)
                # a run killed later (a device call's time limit) still leaves its latest delta
                export(model, cfg, overrides, out, metrics | {"steps": step, "partial": True})
        epoch += 1
    seen = agree_sum(seen, ranks, device)
    if ranks.main:
        final = evaluate(critic, val_w, batch_tokens, device)
        log(event="final", step=step, epochs=epoch, tokens=seen, world=ranks.world, **final)
        export(model, cfg, overrides, out, final | {"steps": step, "train_tokens_seen": seen,
                                                    "train_windows": n_windows,
                                                    "world": ranks.world})
        log_f.close()
    if ranks.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out


def export(model, cfg: TrainConfig, overrides: dict, out: Path, metrics: dict) -> None:
    """Write only what training changed: fine-tuned tensors (`full.*`) and LoRA pairs, fp16.
    Each file is replaced atomically: a run killed while exporting (it exports at every
    evaluation) leaves the previous delta whole."""
    from safetensors.torch import save

    from cprs_cli.output import write_atomic

    delta = {}
    for name, p in model.named_parameters():
        if p.requires_grad and "lora_" not in name:
            delta[f"full.{name}"] = p.detach().to(torch.float16).cpu().contiguous()
    for k, v in lora_state(model).items():
        delta[k] = v.to(torch.float16).cpu().contiguous()
    write_atomic(out / "delta.safetensors", save(delta))
    spec = CRITICS[cfg.critic]
    meta = {"name": cfg.critic, "kind": spec.kind, "base": {"package": spec.base.package, "file": spec.base.file,
                                                              "sha256": spec.base.sha256},
            "config": overrides, "train": asdict(cfg), "metrics": metrics}
    write_atomic(out / "critic.json", json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for f, v in asdict(TrainConfig()).items():
        ap.add_argument("--" + f.replace("_", "-"), type=type(v), default=v)
    args = ap.parse_args(argv)
    cfg = TrainConfig(**vars(args))
    path = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path}/delta.safetensors and critic.json", file=sys.stderr)


if __name__ == "__main__":
    main()
