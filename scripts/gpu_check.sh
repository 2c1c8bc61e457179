#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md in one run (under 8 minutes on one H100/H200), then a 200-iteration paper-shape
# training run of the MR <-> CT bundle that must end with finite losses.
#
#   bash scripts/gpu_check.sh                 # on a machine with CUDA; results under gpu_check/ (OUT=...)
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 bash scripts/gpu_check.sh   # the same commands at toy size on the
#                                             # CPU (seconds per piece): proves the commands, measures nothing
#
# Pieces (each logged to $OUT/<n>_<name>.log; the tables also go to $OUT/BENCHMARKS_gpu.md):
#   1 paper shapes, fp32 reference vs bf16 + channels_last + fused Adam + cuDNN autotuning
#   2 fp16 autocast with GradScaler          3 torch.compile           4 the 30x256x256 memory figure
#   5 whole-volume inference throughput      6 host syncs: one transfer vs per-loss .item()
#   7 a 2-process nccl DDP smoke run (only with 2 or more GPUs)
#   8 200 iterations of mrct training at 30x256x256 (bf16 + channels_last), every logged loss finite
# GPU_CHECK_ONLY=name,name runs only those pieces (e.g. GPU_CHECK_ONLY=train_200,finite_losses for a rerun).
# With GPU_CHECK_TINY=1 on the CPU, piece 7 runs with 2 gloo processes instead (the same command).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TINY=${GPU_CHECK_TINY:-0}
ONLY=${GPU_CHECK_ONLY:-}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MD="$OUT/BENCHMARKS_gpu.md"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "$DEVICE" == cuda* ]]; then
    if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check.sh: CUDA is not available to $PY (torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?')):" \
             "this script measures the GPU rows of BENCHMARKS.md and needs an NVIDIA GPU." \
             "GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 only checks that its commands run." >&2
        exit 2
    fi
    GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
else
    GPUS=0
fi

if [[ "$TINY" == 1 ]]; then
    SHAPES=(8x16x16:1:4:1)
    BIG=8x32x32:1:4:1
    VOLUME=(8 32 32); ROI=(8 16 16)
    TRAIN_SIZE="[8, 32, 32]"; ITERATIONS=3; NGF=4; REPEATS=1; WARMUP=0
else
    SHAPES=(30x84x84:1:64:9 30x84x84:3:64:9 8x108x192:3:64:9)
    BIG=30x256x256:1:64:9
    VOLUME=(120 256 256); ROI=(30 256 256)
    TRAIN_SIZE="[30, 256, 256]"; ITERATIONS=200; NGF=64; REPEATS=5; WARMUP=2
fi
BEST=amp,channels_last,fused_adam,cudnn_benchmark
[[ "$DEVICE" == cuda* ]] || BEST=amp,channels_last  # fused Adam and cuDNN are CUDA switches

step=0
piece() {  # piece NAME COMMAND...: run, log, report the time; a failure stops the script with its log's tail
    step=$((step + 1))
    local name=$1 log="$OUT/${step}_$1.log" start=$SECONDS
    shift
    if [[ -n "$ONLY" && ",$ONLY," != *",$name,"* ]]; then
        return 0
    fi
    echo "== $step $name: $*"
    if ! "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "gpu_check.sh: piece $step ($name) failed; full log: $log" >&2
        exit 1
    fi
    grep -v '^Loading' "$log" | tail -n 12
    echo "   ($((SECONDS - start)) s)"
}

bench() { "$PY" -m mr2ct.cli bench --device "$DEVICE" "$@"; }

piece paper_shapes bench --shapes "${SHAPES[@]}" --opt "$BEST" --repeats "$REPEATS" --warmup "$WARMUP" --markdown "$MD"
if [[ "$DEVICE" == cuda* ]]; then
    piece fp16_gradscaler bench --shapes "${SHAPES[0]}" --opt "$BEST" --amp-dtype float16 \
        --repeats "$REPEATS" --warmup "$WARMUP" --markdown "$MD"
else
    step=$((step + 1)); echo "== $step fp16_gradscaler: skipped (fp16 autocast with GradScaler is CUDA only)"
fi
piece compile bench --shapes "${SHAPES[0]}" --opt "$BEST,compile" --repeats "$REPEATS" --warmup 2 --markdown "$MD"
piece memory_30x256x256 bench --shapes "$BIG" --opt "$BEST" --repeats 2 --warmup 1 --markdown "$MD"
piece inference "$PY" -m mr2ct.cli bench inference --device "$DEVICE" --volume "${VOLUME[@]}" --roi "${ROI[@]}" \
    --sw-batch-size 4 --opt amp,channels_last --repeats 2 --warmup 1 --markdown "$MD"
piece host_syncs "$PY" scripts/bench_host_syncs.py --device "$DEVICE" --shape "${SHAPES[0]}" --steps 10 --warmup 2

B=bundles/mrct_cyclegan3d/configs
train_overrides=(--max_epochs 1 --decay_epochs 0 --val_interval 0 --ckpt_iteration_interval 100000
                 --num_train_subjects 4 --num_test_subjects 1 --num_workers 2 --log_interval 1)
if (( GPUS >= 2 )) || [[ "$TINY" == 1 && "$DEVICE" == cpu ]]; then
    piece ddp_smoke "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m monai.bundle run training \
        --config_file "['$B/train.json','$B/quick.json','$B/multi_gpu_train.json']" \
        "${train_overrides[@]}" --epoch_length 10 --bundle_root "$OUT/ddp_bundle" --output_dir "$OUT/ddp_run"
else
    step=$((step + 1)); echo "== $step ddp_smoke: skipped ($GPUS GPU(s); needs 2)"
fi

piece train_200 "$PY" -m monai.bundle run training --config_file "$B/train.json" "${train_overrides[@]}" \
    --epoch_length "$ITERATIONS" --volume_size "$TRAIN_SIZE" --ngf "$NGF" --ndf "$NGF" \
    --amp true --channels_last true --bundle_root "$OUT/mrct_bundle" --output_dir "$OUT/mrct_run"
piece finite_losses "$PY" - "$OUT/mrct_run/losses.csv" "$ITERATIONS" <<'PYEOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
losses = [k for k in rows[0] if k.startswith("loss_")]
bad = [(r["iteration"], k, r[k]) for r in rows for k in losses if not math.isfinite(float(r[k]))]
last = int(rows[-1]["iteration"])
print(f"{len(rows)} logged iterations, last {last}; losses {losses}; non-finite: {bad or 'none'}")
sys.exit(1 if bad or last < int(sys.argv[2]) else 0)
PYEOF
echo "gpu_check.sh: all pieces passed in $SECONDS s; tables in $MD, logs in $OUT"
