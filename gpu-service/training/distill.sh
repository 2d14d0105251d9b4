#!/usr/bin/env bash
# Distils the committed teacher into few-step dual-rate students by moment matching (distill.py) and exports
# each into its own model folder: gpu-service/models/mmd-8step (8 steps, heavy at 0,2,4,6; also declares heavy
# at 0 only) and gpu-service/models/mmd-4step (4 steps, heavy at 0,2; also at 0 only). Both train in parallel.
#
#   npm run distill                                            # = bash gpu-service/training/distill.sh
#   STUDENT=8 DEVICE=cpu MAX_SECONDS=1500 bash gpu-service/training/distill.sh
#
# Environment: STUDENT (8, 4 or both; default both), MAX_SECONDS (per student, default 300), ITERATIONS (stop
# there instead, when sooner: a committed student is the run's weights at a fixed iteration), DEVICE (auto, cpu,
# cuda), BATCH_SIZE (default 256 on CUDA, 16 on CPU), LR (the student's), AUX_LR (the auxiliary's; default
# LR), TARGET_FEATURE_GAP (distill.py --target-feature-gap; default 0, fresh features), THREADS (per student;
# default 1 on CPU), RESUME=1 (continue the runs), RUN_DIR (default runs/),
# MODELS_DIR (teacher folder; students go to its subfolders),
# FASHION_MNIST_DIR (optional: the students learn from the teacher alone and record its dataset hash, checked
# against these files when they are there), PYTHON.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-/usr/bin/python3}"
student="${STUDENT:-both}"
max_seconds="${MAX_SECONDS:-300}"
device="${DEVICE:-auto}"
run_dir="${RUN_DIR:-$repo/runs}"
models_dir="${MODELS_DIR:-$repo/gpu-service/models}"
data_args=()
if [ -n "${FASHION_MNIST_DIR:-}" ]; then data_args=(--data-dir "$FASHION_MNIST_DIR"); fi

case "$student" in
  8) students=(8) ;;
  4) students=(4) ;;
  both) students=(8 4) ;;
  *) echo "STUDENT must be 8, 4 or both, got '$student'" >&2; exit 64 ;;
esac
if [ "$device" = auto ]; then
  device="$("$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
fi
if [ "$device" = cuda ]; then default_batch=256; default_threads=""; else default_batch=16; default_threads=1; fi
batch_size="${BATCH_SIZE:-$default_batch}"
threads="${THREADS:-$default_threads}"

# Per student: its sampler steps, the heavy placement it is distilled with, and the extra placements its
# manifest declares (each student is also served with a single heavy call, at step 0).
heavy_steps_for() { case "$1" in 8) echo 0,2,4,6 ;; 4) echo 0,2 ;; esac; }
also_heavy=(--also-heavy-steps 0)

distil() {
  local steps="$1" out="$run_dir/mmd-${1}step"
  local extra=(--device "$device" --batch-size "$batch_size" --max-seconds "$max_seconds")
  if [ -n "$threads" ]; then extra+=(--threads "$threads"); fi
  if [ -n "${LR:-}" ]; then extra+=(--lr "$LR"); fi
  if [ -n "${AUX_LR:-}" ]; then extra+=(--aux-lr "$AUX_LR"); fi
  if [ -n "${ITERATIONS:-}" ]; then extra+=(--steps "$ITERATIONS"); fi
  if [ -n "${TARGET_FEATURE_GAP:-}" ]; then extra+=(--target-feature-gap "$TARGET_FEATURE_GAP"); fi
  if [ "${RESUME:-0}" = 1 ]; then extra+=(--resume); fi
  mkdir -p "$out"
  PYTHONUNBUFFERED=1 "$python" "$here/distill.py" --student-steps "$steps" --heavy-steps "$(heavy_steps_for "$steps")" \
    --teacher-models-dir "$models_dir" --out "$out" "${extra[@]}" "${data_args[@]}"
}

mkdir -p "$run_dir"
pids=()
for steps in "${students[@]}"; do
  log="$run_dir/mmd-${steps}step.log"
  echo "distilling the ${steps}-step student on $device for ${max_seconds}s (batch $batch_size); log: $log"
  if [ "${RESUME:-0}" = 1 ]; then distil "$steps" >>"$log" 2>&1 & else distil "$steps" >"$log" 2>&1 & fi
  pids+=($!)
done
failed=0
for i in "${!students[@]}"; do
  steps="${students[$i]}"
  if ! wait "${pids[$i]}"; then
    echo "the ${steps}-step distillation failed; its log ends:" >&2
    tail -n 20 "$run_dir/mmd-${steps}step.log" >&2
    failed=1
  else
    tail -n 2 "$run_dir/mmd-${steps}step.log"
  fi
done
[ "$failed" = 0 ] || exit 1

for steps in "${students[@]}"; do
  folder="$models_dir/mmd-${steps}step"
  export_log="$run_dir/mmd-${steps}step.export.log"
  if ! "$python" "$here/export_student.py" --weights "$run_dir/mmd-${steps}step/weights.pt" --out-dir "$folder" \
    "${also_heavy[@]}" >"$export_log" 2>&1; then
    echo "exporting the ${steps}-step student failed; its log ends:" >&2
    tail -n 20 "$export_log" >&2
    exit 1
  fi
  grep '^exported' "$export_log"
  if command -v npx >/dev/null && [ -d "$repo/node_modules/tsx" ]; then
    (cd "$repo" && npx tsx -e "
      import { readFileSync } from 'node:fs'
      import { parseManifest } from './shared/model-manifest.ts'
      const m = parseManifest(readFileSync('$folder/manifest.json', 'utf8'))
      console.log('manifest valid: ' + m.modelId + ' (shared/model-manifest.ts)')")
  else
    echo "$folder/manifest.json not validated here (no npx/tsx): check it with parseManifest where Node runs"
  fi
done
