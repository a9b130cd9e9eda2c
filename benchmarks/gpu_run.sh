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
step tests 180 python3 -m pytest -q -p no:cacheprovider tests/test_memory.py tests/test_devices.py tests/test_finetune.py
