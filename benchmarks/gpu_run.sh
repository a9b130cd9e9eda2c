#!/usr/bin/env bash
# Every GPU measurement of benchmarks/RESULTS.md in one go, for a machine lent for minutes.
#
#   bash benchmarks/gpu_run.sh [OUT_DIR]
#
# Run from the repository root on a CUDA machine whose Python already has torch, torchvision, transformers,
# accelerate and timm. Missing packages (datasets, evaluate and their needs) can be brought as wheels in .whl/.
# The package runs from the source tree. Each step has its own time limit, so one that hangs costs only its own
# slot; logs and a summary (the last table of each step) go to OUT_DIR.
set -u
OUT_DIR=${1:-${OUT:-/tmp/gpu-run}}
mkdir -p "$OUT_DIR"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SUMMARY=$OUT_DIR/summary.md
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
    python3 -c "import torch, torchvision, transformers, accelerate, datasets, evaluate, timm; \
print(', '.join(f'{m.__name__} {m.__version__}' for m in (torch, torchvision, transformers, accelerate, datasets, evaluate, timm)))"
} 2>&1 | tee "$SUMMARY"

wanted() {  # GPU_RUN_STEPS="memory inference" runs only those steps (default: all)
    [[ -z ${GPU_RUN_STEPS:-} || " $GPU_RUN_STEPS " == *" $1 "* ]]
}

step() {  # step NAME SECONDS COMMAND...: runs it with a limit, keeps its log, copies its last table to the summary
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return 0
    local started=$SECONDS
    timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
    local code=$?
    {
        echo
        echo "## $name (exit $code, $((SECONDS - started)) s): $*"
        awk '/^$/ {block=""; next} {block = block $0 "\n"} END {printf "%s", block}' "$OUT_DIR/$name.log"
    } | tee -a "$SUMMARY"
}

# Variants' own output (timestamps, and the stack of one that hangs) goes to train_variants.log.
TRAIN="python3 benchmarks/train_speed.py --steps 20 --variant_timeout 60 --log $OUT_DIR/train_variants.log"
step train_batch32 200 $TRAIN --batch_size 32 --variants baseline,package,plain_torch,baseline_doc_default,package_doc_default
step train_batch4 120 $TRAIN --batch_size 4 --variants baseline,package,plain_torch
step memory 90 python3 benchmarks/memory.py
step oom_recovery 75 python3 benchmarks/oom_recovery.py --gib 12 --batch_size 256
step inference 60 python3 benchmarks/inference_speed.py --images 256 --batch_size 32
step tests 180 python3 -m pytest -q -p no:cacheprovider tests/train/test_memory.py tests/config/test_hardware.py \
    tests/commands/test_finetune.py tests/test_inference.py tests/commands/test_predict.py tests/train/test_best_weights.py

# Issue 14's GPU items, not run by default (name them): the launch-bound batch-4 step with bf16 (no GradScaler sync)
# and torch.compile with CUDA graphs, against the baseline and a bare loop with the same tricks; evaluation every
# step; predict's precision and threaded preparation; ResNet-101 against ViT-Base through predict's own path.
# Compiling takes minutes, so they take two 10-minute calls on one warm machine:
#   GPU_RUN_STEPS="tricks_batch4" bash benchmarks/gpu_run.sh
#   GPU_RUN_STEPS="tricks_doc_default predict_fp32 predict_auto predict_auto_batch8 inference_package" \
#       bash benchmarks/gpu_run.sh
if [[ -n ${GPU_RUN_STEPS:-} ]]; then
    TRICKS="python3 benchmarks/train_speed.py --steps 20 --variant_timeout 200 --log $OUT_DIR/train_variants.log"
    step tricks_batch4 560 $TRICKS --batch_size 4 \
        --variants baseline,package,package+bf16,package+bf16+compile,plain_torch+bf16,plain_torch+bf16+compile
    step tricks_doc_default 200 $TRAIN --batch_size 4 \
        --variants baseline_doc_default,package_doc_default,package_doc_default+bf16
    step predict_fp32 90 python3 benchmarks/predict_speed.py --images 256 --batch_size 32 --rounds 2 --precision fp32
    step predict_auto 90 python3 benchmarks/predict_speed.py --images 256 --batch_size 32 --rounds 2 --precision auto
    step predict_auto_batch8 90 python3 benchmarks/predict_speed.py --images 256 --batch_size 8 --rounds 2
    step inference_package 60 python3 benchmarks/inference_speed.py --images 256 --batch_size 32 --package
fi
