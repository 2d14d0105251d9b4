#!/usr/bin/env bash
# The few-step distillation on the lent GPU machine (PyTorch 2.11 + CUDA, onnx, 16 cores; no Node, no network)
# in one call: both students (distill.sh) in parallel for MAX_SECONDS, exported, and packed under $OUT, the only
# place files come back from (at most 8 files, 16 MB each):
#   mmd-8step.tar, mmd-4step.tar                 each student's folder (heavy.onnx, light.onnx, golden.json,
#                                                manifest.json), about 14 MB; unpack into gpu-service/models/
#   mmd-8step-weights.pt, mmd-4step-weights.pt   their weights.pt (EMA), to re-export on CPU with export_student.py
#   distill-logs.tar                             distill.py's logs and loss logs (jsonl), the export logs
#   distill-gpu.log                              this script's output
# The defaults fit the whole command in about 7 minutes. Exact device-tool call: README.md "Few-step students".
#
# CPU rehearsal, into a copy of the models folder so the committed students stay as they are:
#   cp -r gpu-service/models /tmp/models-copy && MODELS_DIR=/tmp/models-copy OUT=/tmp/distill-out \
#     PYTHON=/usr/bin/python3 DEVICE=cpu MAX_SECONDS=20 BATCH_SIZE=4 bash gpu-service/training/distill_gpu.sh
#
# Environment: OUT (required), MAX_SECONDS (per student, default 330), DEVICE (default cuda), BATCH_SIZE, LR,
# TARGET_FEATURE_GAP (default 0.32; 0 for fresh-feature targets), MODELS_DIR (default gpu-service/models),
# FASHION_MNIST_DIR (else .data/fashion-mnist in the repo when carried; optional, see distill.sh), PYTHON
# (default python3, the one holding PyTorch there).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=gpu-service/training/gpu_out.sh
. "$here/gpu_out.sh"
gpu_out_setup "$repo"
run_dir="$repo/runs/gpu-distill"
models_dir="${MODELS_DIR:-$repo/gpu-service/models}"  # the teacher, and where the students are exported
log="$OUT/distill-gpu.log"

mkdir -p "$run_dir"
started="$run_dir/.started"
touch "$started"
{
  echo "distill_gpu.sh at $(date -u +%FT%TZ) on $(hostname): $(nvidia-smi -L 2>/dev/null | head -n 1 || echo 'no nvidia-smi')"
  "$PYTHON" -c 'import torch, onnx; print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}, onnx {onnx.__version__}")'
  # Targets read stale features as the teacher is served: on CPU, 0.32 gave the committed 8-step student, the
  # first at the teacher's accuracy and FD (training README, "Chasing the 8-step accuracy goal").
  STUDENT=both DEVICE="${DEVICE:-cuda}" MAX_SECONDS="${MAX_SECONDS:-330}" RUN_DIR="$run_dir" MODELS_DIR="$models_dir" \
    TARGET_FEATURE_GAP="${TARGET_FEATURE_GAP:-0.32}" bash "$here/distill.sh"
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Pack whatever this run produced, also after a failure (weights without an export can be exported on CPU).
for steps in 8 4; do
  name="mmd-${steps}step"
  if [ "$models_dir/$name/manifest.json" -nt "$started" ]; then
    tar -C "$models_dir" -cf "$OUT/$name.tar" "$name/heavy.onnx" "$name/light.onnx" "$name/golden.json" \
      "$name/manifest.json" && pack "$OUT/$name.tar" "$log"
  fi
  if [ -f "$run_dir/$name/weights.pt" ] && [ "$run_dir/$name/weights.pt" -nt "$started" ]; then
    cp "$run_dir/$name/weights.pt" "$OUT/$name-weights.pt" && pack "$OUT/$name-weights.pt" "$log"
  fi
done
(cd "$run_dir" && tar -cf "$OUT/distill-logs.tar" ./*.log ./mmd-*/distill-log.jsonl 2>/dev/null) && pack "$OUT/distill-logs.tar" "$log"
exit "$status"
