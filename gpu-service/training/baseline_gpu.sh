#!/usr/bin/env bash
# The compute-matched baseline (issue 9) on the lent GPU machine in one call: networks.py's `matched` preset
# (63.1M MACs per image, the dual-rate teacher's 62.5M average per step at 50 steps, heavy every 8), trained
# as one network (train.py --same-time-prob 1: its heavy part always reads the current state) for MAX_SECONDS
# with the teacher's other settings, exported with export.py into runs/ (never into gpu-service/models, every
# folder of which the service loads), and packed under $OUT, the only place files come back from (at most
# 8 files, 16 MB each):
#   matched-baseline.tar          the model folder (heavy.onnx, light.onnx, golden.json, manifest.json), ~5 MB
#   matched-baseline-weights.pt   train.py's weights.pt (EMA), to re-export on CPU with export.py
#   baseline-logs.tar             train-log.jsonl (loss every 100 steps)
#   baseline-gpu.log              this script's output (training and export)
# It trains from scratch and will not reuse a run folder that already holds weights (a second try on a warm
# machine: RUN_DIR=runs/gpu-baseline-2 bash gpu-service/training/baseline_gpu.sh).
#
# Fashion-MNIST must travel with it (31 MB), and beside the committed model folders that passes the 64 MiB
# that travels; the steps around the device-tool call, and how to score the result on CPU afterwards
# (50 steps, K=1): README.md "Compute-matched baseline". The call itself:
#   run(command="bash gpu-service/training/baseline_gpu.sh", carry=[".data/fashion-mnist"], timeout_s=560)
#
# CPU rehearsal: OUT=/tmp/baseline-out DEVICE=cpu MAX_SECONDS=20 BATCH_SIZE=8 RUN_DIR=/tmp/baseline-run \
#   bash gpu-service/training/baseline_gpu.sh
#
# Environment: OUT (required), MAX_SECONDS (default 400, the teacher's), DEVICE (default cuda), BATCH_SIZE
# (default 256, the teacher's), RUN_DIR (default runs/gpu-baseline), FASHION_MNIST_DIR (else
# .data/fashion-mnist in the repo when carried, else Debian's), PYTHON (default python3, the one holding
# PyTorch there).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=gpu-service/training/gpu_out.sh
. "$here/gpu_out.sh"
gpu_out_setup "$repo"
run_dir="${RUN_DIR:-$repo/runs/gpu-baseline}"
name="matched-baseline"
model_dir="$run_dir/$name"
log="$OUT/baseline-gpu.log"
if [ -f "$run_dir/weights.pt" ]; then
  echo "$run_dir already holds a run (weights.pt); the baseline trains from scratch: remove it or set RUN_DIR" >&2
  exit 73
fi
mkdir -p "$run_dir"

check_data() {  # all four IDX files, before any training: export.py hashes them into the manifest afterwards
  (cd "$here" && "$PYTHON" -c 'import data; print("Fashion-MNIST", data.data_dir_from(), data.dataset_sha256()[:12])') &&
    return
  echo "no Fashion-MNIST here: carry .data/fashion-mnist (README.md, \"Compute-matched baseline\")"
  return 66
}
{
  echo "baseline_gpu.sh at $(date -u +%FT%TZ) on $(hostname): $(nvidia-smi -L 2>/dev/null | head -n 1 || echo 'no nvidia-smi')"
  "$PYTHON" -c 'import torch, onnx; print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}, onnx {onnx.__version__}")'
  check_data &&
  "$PYTHON" "$here/train.py" --preset matched --same-time-prob 1 --device "${DEVICE:-cuda}" \
    --max-seconds "${MAX_SECONDS:-400}" --batch-size "${BATCH_SIZE:-256}" --out "$run_dir" &&
  mkdir -p "$model_dir" &&
  "$PYTHON" "$here/export.py" --weights "$run_dir/weights.pt" --out-dir "$model_dir"
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Pack whatever this run produced, also after a failure (weights without an export can be exported on CPU).
if [ -f "$model_dir/manifest.json" ]; then
  tar -C "$run_dir" -cf "$OUT/$name.tar" "$name/heavy.onnx" "$name/light.onnx" "$name/golden.json" \
    "$name/manifest.json" && pack "$OUT/$name.tar" "$log"
fi
if [ -f "$run_dir/weights.pt" ]; then
  cp "$run_dir/weights.pt" "$OUT/$name-weights.pt" && pack "$OUT/$name-weights.pt" "$log"
fi
if [ -f "$run_dir/train-log.jsonl" ]; then
  tar -C "$run_dir" -cf "$OUT/baseline-logs.tar" train-log.jsonl && pack "$OUT/baseline-logs.tar" "$log"
fi
exit "$status"
