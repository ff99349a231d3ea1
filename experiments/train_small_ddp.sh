#!/usr/bin/env bash
# Round 3 of `small`: data-parallel over both GPUs of an nvidia-h200-x2 machine (torchrun, NCCL),
# resumed from a delta (the shipped one, or the previous call's). Run on the device machine after
# the pack (base GGUF, data, four small packages) was reassembled under /tmp/stage.
# Usage: RESUME=shipped|PATH MINUTES=7 TAG=small-r3a bash experiments/train_small_ddp.sh
set -euo pipefail
S=/tmp/stage
export PYTHONPATH=$S/pack/site:$PWD CPRS_DATA=$S/pack/data CPRS_CACHE_DIR=$S/cache \
       CPRS_SMOLLM2_GGUF=$S/pack/SmolLM2-135M-Instruct.Q4_1.gguf
TAG=${TAG:-small-r3a}
mkdir -p $S/runs
# the gguf package's version is read from its dist-info by transformers
mkdir -p $S/pack/site/gguf-0.19.0.dist-info
printf 'Metadata-Version: 2.1\nName: gguf\nVersion: 0.19.0\n' > $S/pack/site/gguf-0.19.0.dist-info/METADATA
# de-quantise the GGUF once, before the ranks start (both would convert it at the same time)
python3 -c "from cprs_cli.critic import CRITICS, base_model_dir; print(base_model_dir(CRITICS['small']))"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m torch.distributed.run --standalone --nproc_per_node 2 -m training --critic small \
    --resume "${RESUME:-shipped}" --minutes "${MINUTES:-7}" --lr "${LR:-2e-4}" --hard-fraction 0.3 \
    --augment-fraction 0.5 --eval-every 200 --out $S/runs/$TAG > $S/runs/$TAG.log 2>&1 || echo "exit $?"
tail -4 $S/runs/$TAG.log
cp $S/runs/$TAG/delta.safetensors $S/runs/$TAG/critic.json $OUT/ || true
cp $S/runs/$TAG/train_log.jsonl $OUT/$TAG.train_log.jsonl || true
cp $S/runs/$TAG.log $OUT/$TAG.log || true
