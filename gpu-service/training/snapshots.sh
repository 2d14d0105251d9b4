#!/usr/bin/env bash
# Chooses which iteration of a distillation to commit: distils one student in stages (distill.sh, stopping at
# each iteration of AT and resuming, which gives the bits of one uninterrupted run: tests/test_distill.py), and
# after each stage exports its EMA weights and scores them with `npm run eval` on validation seeds only. The
# reported seeds (0, 1, 2) never choose. Nothing in gpu-service/models changes: the teacher is read from a
# copy in RUN_DIR/models, and each stage's student folder is kept as RUN_DIR/mmd-<N>step-<iteration>/.
#
#   STUDENT=8 AT=2600,2900,3200 LR=2e-5 AUX_LR=1e-4 THREADS=2 bash gpu-service/training/snapshots.sh
#
# Rehearsal: STUDENT=8 AT=2,4 SEEDS=100 SAMPLES_PER_CLASS=2 BATCH_SIZE=2 RUN_DIR=/tmp/snapshots bash ...
#
# Then commit the chosen one: ITERATIONS=<it> with the same settings through `npm run distill` reproduces it,
# or copy RUN_DIR/mmd-<N>step-<it>/ over gpu-service/models/mmd-<N>step/.
#
# Environment: STUDENT (8 or 4), AT (ascending iterations; required), SEEDS (validation seeds, default
# 100,101), SAMPLES_PER_CLASS (default 100: 1,000 images per seed), RUN_DIR (default runs/snapshots-<N>step;
# an existing run there is resumed), and distill.sh's DEVICE (default cpu), BATCH_SIZE, LR, AUX_LR, THREADS,
# PYTHON. Writes RUN_DIR/scores.tsv (iteration, model id, mean FD, mean class accuracy, then per seed) and
# prints it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-/usr/bin/python3}"
student="${STUDENT:-8}"
case "$student" in 8 | 4) ;; *) echo "STUDENT must be 8 or 4, got '$student'" >&2; exit 64 ;; esac
if [ -z "${AT:-}" ]; then echo "AT must list the iterations to score, ascending (AT=2600,2900)" >&2; exit 64; fi
IFS=, read -r -a stages <<<"$AT"
previous=0
for it in "${stages[@]}"; do
  if ! [[ "$it" =~ ^[0-9]+$ ]] || [ "$it" -le "$previous" ]; then
    echo "AT must be ascending positive iterations, got '$AT'" >&2; exit 64
  fi
  previous=$it
done
seeds="${SEEDS:-100,101}"
for seed in ${seeds//,/ }; do
  case "$seed" in 0 | 1 | 2) echo "SEEDS must not hold the reported seeds 0, 1, 2 (got $seeds)" >&2; exit 64 ;; esac
done
run_dir="${RUN_DIR:-$repo/runs/snapshots-${student}step}"
models="$run_dir/models"
name="mmd-${student}step"
mkdir -p "$run_dir"
if [ ! -d "$models" ]; then cp -r "$repo/gpu-service/models" "$models"; fi
scores="$run_dir/scores.tsv"
[ -f "$scores" ] || printf 'iteration\tmodel\tfd\taccuracy\tper seed (fd accuracy)\n' >"$scores"

for it in "${stages[@]}"; do
  resume=0
  if [ -f "$run_dir/$name/checkpoint.pt" ]; then resume=1; fi
  STUDENT="$student" DEVICE="${DEVICE:-cpu}" ITERATIONS="$it" MAX_SECONDS=1000000 RESUME="$resume" \
    RUN_DIR="$run_dir" MODELS_DIR="$models" PYTHON="$python" bash "$here/distill.sh"
  rm -rf "${run_dir:?}/$name-$it" && cp -r "$models/$name" "$run_dir/$name-$it"
  id="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["modelId"])' "$models/$name/manifest.json")"
  # Both students are distilled with the heavy encoder every second step (distill.sh), so that is what is scored.
  (cd "$repo" && npm run -s eval -- --models "$models" --model "$id" --intervals 2 --seeds "$seeds" \
    --samples-per-class "${SAMPLES_PER_CLASS:-100}" --out "$run_dir/eval-$it" >"$run_dir/eval-$it.log" 2>&1)
  "$python" - "$run_dir/eval-$it/results.json" "$it" "$id" >>"$scores" <<'PY'
import json, sys
interval = json.load(open(sys.argv[1]))["intervals"][0]
per_seed = " ".join(f"{s['seed']}:{s['fd']:.2f}/{100 * s['classAccuracy']:.1f}%" for s in interval["seeds"])
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{interval['fd']['mean']:.3f}\t{100 * interval['classAccuracy']['mean']:.2f}\t{per_seed}")
PY
  tail -n 1 "$scores"
done
column -t -s $'\t' "$scores"
