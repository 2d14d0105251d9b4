#!/usr/bin/env bash
# Retrains the committed models in one command: the dual-rate pair, the evaluator classifier, then export
# into gpu-service/models. Runs on CPU (Debian's torch 1.13) or CUDA (torch 2.x) unchanged.
#
#   bash gpu-service/training/retrain.sh                       # GPU preset, 400 s, CUDA when available
#   PRESET=cpu MAX_SECONDS=14400 bash gpu-service/training/retrain.sh
#
# Then measure and record the recommended setting: npm run eval -- --record
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-/usr/bin/python3}"
preset="${PRESET:-gpu}"
max_seconds="${MAX_SECONDS:-400}"
device="${DEVICE:-auto}"
run_dir="${RUN_DIR:-$repo/runs/$preset}"
models_dir="${MODELS_DIR:-$repo/gpu-service/models}"
data_args=()
if [ -n "${FASHION_MNIST_DIR:-}" ]; then data_args=(--data-dir "$FASHION_MNIST_DIR"); fi

mkdir -p "$run_dir"
# The classifier is small; it trains alongside the pair (two processes share a GPU well).
"$python" "$here/train_classifier.py" --out "$run_dir" --device "$device" "${data_args[@]}" \
  > "$run_dir.classifier.log" 2>&1 &
classifier_pid=$!
"$python" "$here/train.py" --preset "$preset" --device "$device" --max-seconds "$max_seconds" \
  --out "$run_dir" "${data_args[@]}"
if ! wait "$classifier_pid"; then
  echo "classifier training failed; its log:" >&2
  cat "$run_dir.classifier.log" >&2
  exit 1
fi
tail -n 1 "$run_dir.classifier.log"
"$python" "$here/export.py" --weights "$run_dir/weights.pt" --classifier "$run_dir/classifier.pt" \
  --out-dir "$models_dir" "${data_args[@]}"
