#!/usr/bin/env bash
# Levers of the quality issue, alone and together, on the test split's multi-hop, whole-article and
# biomedical rows. Critic probabilities come from the H200 (experiments/cache_probs.py --light, bf16):
# miniold = the delta shipped before this change, mininew = the retrained one, small = retrained small.
# The selection, baselines and scoring run on the CPU through the evaluation runner.
set -euo pipefail
P=${PROBS:-/tmp/new}
OUT=${OUT:-docs/quality/ablation}
ROWS=multihop,articles,papers
mkdir -p "$OUT"
ev() { python -m cprs_cli.evaluation.quality --device cpu --rows $ROWS --no-dense --md '' "$@"; }
ev --model mini  --probs $P/miniold --probs-tag miniold --lexical-weight 0   --dynamic tags       --out $OUT/A0_before.json
ev --model mini  --probs $P/miniold --probs-tag miniold --lexical-weight 0.3 --dynamic tags       --out $OUT/A1_fusion.json
ev --model mini  --probs $P/miniold --probs-tag miniold --lexical-weight 0   --dynamic calibrated --out $OUT/A2_dynamic_rule.json
ev --model mini  --probs $P/mininew --probs-tag mininew --lexical-weight 0   --dynamic tags       --out $OUT/A3_training.json
ev --model mini  --probs $P/mininew --probs-tag mininew                      --dynamic calibrated --out $OUT/A4_mini_all.json
ev --model small --probs $P/small                        --lexical-weight 0   --dynamic calibrated --out $OUT/A5_small_no_fusion.json
ev --model small --probs $P/small                                             --dynamic calibrated --out $OUT/A6_small_all.json
# round 3 of small (DDP on two H200s); its probabilities were cached under $PROBS_R3 (tag r3a)
P3=${PROBS_R3:-/tmp/r3/r3a}
ev --model small --probs $P3 --probs-tag r3a                                  --dynamic calibrated --out $OUT/A7_small_r3.json
# round 4 of small (experiments/train_small.sh arms): two arms from round 3's delta, one H200 each;
# their probabilities were cached under $PROBS_R4/probs-r4a and probs-r4b (each arm at its own calibrated BM25 weight)
P4=${PROBS_R4:-/tmp/r4}
ev --model small --probs $P4/probs-r4a --probs-tag r4a --lexical-weight 0.05                --dynamic calibrated --out $OUT/A8_small_r4_data.json
ev --model small --probs $P4/probs-r4b --probs-tag r4b                                      --dynamic calibrated --out $OUT/A9_small_r4_data_capacity.json
# round 5 of small (experiments/train_small.sh ddp): r4b's settings on both GPUs; probabilities under $PROBS_R5 (tag r5)
P5=${PROBS_R5:-/tmp/r5/probs-r5}
ev --model small --probs $P5 --probs-tag r5 --lexical-weight 0.05                           --dynamic calibrated --out $OUT/A10_small_r5.json
