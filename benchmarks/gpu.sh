#!/usr/bin/env bash
# The GPU part of benchmarks/README.md in one go: the CUDA tests, then the
# benchmark at the batch of 16 in float32 and under autocast bf16 /
# fp16, and whole models at a batch of 128 (a GPU's training batch) in float32
# and bf16, with the data pipeline against the float32 training step.
#
#   bash benchmarks/gpu.sh [output folder]      # default: results/gpu
#
# Each part writes one log; the last line of each benchmark log is its JSON.
set -u
out=${1:-results/gpu}
mkdir -p "$out"
bench() {  # bench LOG ARGS...
    local log=$1
    shift
    timeout 150 python benchmarks/bench_tdy.py --device cuda --threads 8 --reps 20 --layer-reps 20 "$@" >"$out/$log" 2>&1
    grep -E "layer efficiency|ref/ours|dataloader|augmentation|Error" "$out/$log"
}
{ nvidia-smi -L; python -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())"
  python -m pytest -q -p no:cacheprovider tests/test_cuda.py; } >"$out/test_cuda.log" 2>&1
tail -n 3 "$out/test_cuda.log"
for autocast in off bf16; do
    bench "b16_$autocast.log" --only layers --only models --autocast "$autocast"
done
bench b16_fp16.log --only models --autocast fp16
large=(--batch 128 --reps 5 --models tdy_resnet34_half resnet34_half ecapa_tdnn_c1024)
bench b128_bf16.log --only models "${large[@]}" --autocast bf16
bench b128_off_data.log --only data "${large[@]}"
