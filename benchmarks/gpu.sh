#!/usr/bin/env bash
# The GPU checks and measurements, in one call that fits in 9 minutes on one
# H100/H200 (each part gets at most what is left of GPU_SH_BUDGET=540 s):
#
#   tests    tests/test_cuda.py: the layer, a model, the recipe's training step
#            in bf16 and fp16 with each waveform transform, micro-batching
#   recipe   the issue's run end to end, augmentation on: a 300-speaker mini
#            corpus, train.py in bf16 at batch 256 (128 speakers x 2) for 3
#            epochs, verify.py; then the bare TDY-ResNet-34 x0.5 training step
#            (bench_tdy.py) at the same batch and precision, and the recipe's
#            training samples/s next to it (target: >= 0.9x)
#   augment  per-call cost of each transform on a GPU batch of 128 crops
#            (bench_augment.py), AddNoise reading files per call vs NoiseBank
#   compile  (not by default: a call of its own) TDY-ResNet-34 x0.5 and x0.25
#            eager, through torch.compile with CUDA graphs, and in the authors'
#            formulation: batch-16 training step and one 20-s utterance
#            (bench_tdy.py --compile; targets: compiled >= 1.3x and >= 1.5x the
#            authors'), then the compiled paths against eager (test_cuda.py)
#   tables   (not by default: a call of its own) the runs behind the GPU tables
#            of benchmarks/README.md: batch 16 layers and models in fp32, bf16,
#            fp16; batch 128 models in bf16; the dataloader against the model
#
#   bash benchmarks/gpu.sh [output folder] [parts...]   # default: results/gpu tests recipe augment
#
# The bare GPU image lacks SpeechBrain, HyperPyYAML, soundfile, pytest-timeout
# and matplotlib: `bash benchmarks/gpu_wheels.sh` puts wheels of them in
# wheels/ (git-ignored); carry that folder, the script installs from it what
# is missing. Every part writes OUT/<part>.log; a part that fails or runs out
# of time prints FAILED with the end of its log, the others still run, and
# the script exits 1. GPU_SH_SMOKE=1 GPU_SH_DEVICE=cpu runs the same steps on
# a tiny corpus, model and batch: a check of this script on a CPU.
set -uo pipefail
out=${1:-results/gpu}
shift $(( $# > 0 ? 1 : 0 ))
parts=("$@")
(( ${#parts[@]} )) || parts=(tests recipe augment)
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$root" || exit 1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
budget=${GPU_SH_BUDGET:-540}
device=${GPU_SH_DEVICE:-cuda:0}
work=$(mktemp -d)  # the corpus (1.3 GB) and checkpoints: not sent back with the output
trap 'rm -rf "$work"' EXIT
failed=()

run_part() {  # run_part NAME LIMIT_S COMMAND...: OUT/NAME.log, at most LIMIT_S s and what is left
    local name=$1 limit=$2 left=$((budget - SECONDS)) start=$SECONDS rc
    shift 2
    (( left < limit )) && limit=$left
    if (( limit < 20 )); then
        echo "FAILED: $name: no time left (${left} s of the ${budget} s budget)"
        failed+=("$name")
        return 1
    fi
    echo "== $name (at most $limit s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    if (( rc == 0 )); then
        echo "   ok, $((SECONDS - start)) s"
        return 0
    fi
    echo "FAILED: $name: exit $rc$( (( rc == 124 )) && echo ' (timed out)') after $((SECONDS - start)) s;" \
        "end of $out/$name.log:"
    tail -n 20 "$out/$name.log" | sed 's/^/   | /'
    failed+=("$name")
    return 1
}

install_missing() {
    local check="import speechbrain, hyperpyyaml, soundfile, matplotlib, pytest_timeout"
    python -c "$check" 2>/dev/null && return 0
    python -m pip install --no-index --find-links "$root/wheels" speechbrain hyperpyyaml soundfile matplotlib \
        pytest-timeout && python -c "$check"
}

precision=bf16 step_limit=150 compile_limit=420
if [ -n "${GPU_SH_SMOKE:-}" ]; then  # bf16 is slow on CPUs without AVX-512
    precision=fp32 step_limit=400 compile_limit=1200  # TorchInductor compiles for minutes on a CPU
    corpus_args=(--speakers 10 --dev-speakers 2 --test-speakers 2 --utterances 6 --durations 2 3)
    train_args=(--batch_speakers=3 --num_workers=2 --n_mels=24 --channels=[8,8,8,16] --emb_dim=16 --crop_frames=64)
    bench_args=(--models tdy_resnet34_quarter --batch 6 --reps 2 --threads 2 --utterance-seconds 2)
    augment_args=(--batch 8 --reps 3 --threads 2)
    compile_args=(--models tdy_resnet34_quarter --batch 4 --reps 2 --threads 2 --utterance-seconds 2)
else
    corpus_args=(--speakers 300 --dev-speakers 20 --test-speakers 30 --utterances 24)
    train_args=(--batch_speakers=128 --num_workers=12)
    bench_args=(--models tdy_resnet34_half --batch 256 --reps 5 --threads 8)
    augment_args=(--batch 128 --reps 20 --threads 8)
    compile_args=(--models tdy_resnet34_half tdy_resnet34_quarter --batch 16 --reps 20 --threads 8)
fi
recipe_dir=recipes/VoxCeleb/SpeakerRec

# The parts below run in `bash -c` under `timeout`: functions are exported, arrays passed as arguments.
make_corpus() {  # make_corpus MINI_CORPUS_ARGS...
    python tools/mini_corpus.py "$work/corpus" "$@" --seed 1 --workers "$(nproc)" &&
        python -c "import sys; from speechbrain_tdy.dataio.augmentation_files import write_synthetic_noise_and_rirs as w
print(w(sys.argv[1]))" "$work/corpus"
}

train() {  # train TRAIN_ARGS...
    cd "$recipe_dir" && python train.py hparams/tdy.yaml --data_folder="$work/corpus" \
        --dev_verification_file="$work/corpus/veri_dev.txt" --output_folder="$work/train" --device="$device" \
        --precision="$precision" --number_of_epochs=3 --temperature_step=15 --eer_every_n_epochs=3 --split_ratio=[90,10] \
        "$@" && cp "$work/train/train_log.txt" "$out/train_log.txt"
}

verify() {
    cd "$recipe_dir" && python verify.py hparams/verification.yaml --train_output_folder="$work/train" \
        --data_folder="$work/corpus" --device="$device" && cp "$work/train/verification/results.json" "$out/"
}

compare() {  # the recipe's training samples/s (train_log.txt) against the bare model step (model_step.log)
    python - "$out/train_log.txt" "$out/model_step.log" <<'EOF'
import json, re, sys

epochs = [line for line in open(sys.argv[1]) if line.startswith("epoch")]
rates = [float(re.search(r"train samples_per_s: ([0-9.e+-]+)", line).group(1)) for line in epochs]
bench = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
batch, precision = bench["config"]["batch"], bench["config"]["autocast"].replace("off", "fp32")
model, row = next(iter(bench["models"]["rows"].items()))  # the model of the recipe's hparams file
bare = batch / row["train_s"]
print(f"recipe (train.py, {precision}, batch {batch}, augmentation on), training samples/s per epoch: "
      + ", ".join(f"{rate:.1f}" for rate in rates))
print(f"bare {model} training step (bench_tdy.py, {precision}, batch {batch}): {bare:.1f} samples/s")
ratio = rates[-1] / bare
print(f"recipe/bare (last epoch): {ratio:.2f}x " + ("(target >= 0.9x met)" if ratio >= 0.9 else "(BELOW the 0.9x target)"))
EOF
}

tables() {  # the runs behind the GPU tables of benchmarks/README.md, one log each under OUT/tables
    local bench=(python benchmarks/bench_tdy.py --device "$device" --threads 8 --reps 20 --layer-reps 20) rc=0
    local large=(--batch 128 --reps 5 --models tdy_resnet34_half resnet34_half ecapa_tdnn_c1024)
    mkdir -p "$out/tables"
    for autocast in off bf16; do
        timeout 150 "${bench[@]}" --only layers --only models --autocast "$autocast" >"$out/tables/b16_$autocast.log" 2>&1 || rc=1
    done
    timeout 150 "${bench[@]}" --only models --autocast fp16 >"$out/tables/b16_fp16.log" 2>&1 || rc=1
    timeout 150 "${bench[@]}" --only models "${large[@]}" --autocast bf16 >"$out/tables/b128_bf16.log" 2>&1 || rc=1
    timeout 150 "${bench[@]}" --only data "${large[@]}" >"$out/tables/b128_off_data.log" 2>&1 || rc=1
    grep -E "layer efficiency|ref/ours|dataloader|augmentation|Error" "$out"/tables/*.log
    return $rc
}
export -f install_missing make_corpus train verify compare tables
export out work device precision recipe_dir root

{ nvidia-smi -L 2>/dev/null; python -c "import torch; print('torch', torch.__version__, 'cuDNN',
torch.backends.cudnn.version(), 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')"
} | tee "$out/machine.log"
if ! run_part install 120 bash -c install_missing; then
    echo "FAILED: cannot import SpeechBrain & co.; nothing else can run"
    exit 1
fi
for part in "${parts[@]}"; do
    case $part in
    tests)
        run_part tests 200 python -m pytest -q -p no:cacheprovider tests/test_cuda.py && tail -n 1 "$out/tests.log" ;;
    recipe)
        run_part corpus 150 bash -c 'make_corpus "$@"' _ "${corpus_args[@]}" &&
            run_part train 300 bash -c 'train "$@"' _ "${train_args[@]}" && { grep "^epoch" "$out/train_log.txt" | sed 's/^/   /'; } &&
            run_part verify 120 bash -c verify && sed 's/^/   /' "$out/results.json"
        run_part model_step "$step_limit" python benchmarks/bench_tdy.py --device "$device" --only models \
            --autocast "${precision/fp32/off}" \
            "${bench_args[@]}" &&
            [ -f "$out/train_log.txt" ] && run_part compare 30 bash -c compare && cat "$out/compare.log" ;;
    augment)
        run_part augment 120 python benchmarks/bench_augment.py --device "$device" "${augment_args[@]}" &&
            grep -v "^{" "$out/augment.log" | grep -A 20 "ms per call" ;;
    compile)
        run_part compile "$compile_limit" python benchmarks/bench_tdy.py --device "$device" --only models --compile \
            "${compile_args[@]}" && grep -E "^  (model|tdy)|ref/ours" "$out/compile.log"
        run_part compile_tests 120 python -m pytest -q -p no:cacheprovider tests/test_cuda.py -k compiled &&
            tail -n 1 "$out/compile_tests.log" ;;
    tables)
        run_part tables 600 bash -c tables && cat "$out/tables.log" ;;
    *)
        echo "FAILED: unknown part $part (tests, recipe, augment, compile, tables)"
        failed+=("$part") ;;
    esac
done
echo "total $SECONDS s"
if (( ${#failed[@]} )); then
    echo "FAILED parts: ${failed[*]} (logs in $out)"
    exit 1
fi
