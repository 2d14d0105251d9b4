# Shared by the scripts that run on the lent GPU machine (distill_gpu.sh, baseline_gpu.sh). Files come back
# from that machine only from $OUT: at most 8 files, 16 MB each.
# shellcheck shell=bash

# Checks $OUT, and sets what every GPU script runs with: the PyTorch that machine has (python3 there, no
# Debian path), unbuffered logs, and Fashion-MNIST from .data/fashion-mnist when a call carried it.
gpu_out_setup() {  # gpu_out_setup REPO
  if [ -z "${OUT:-}" ]; then echo "OUT must name the folder whose files come back" >&2; exit 64; fi
  mkdir -p "$OUT"
  export PYTHON="${PYTHON:-python3}" PYTHONUNBUFFERED=1
  if [ -z "${FASHION_MNIST_DIR:-}" ] && [ -d "$1/.data/fashion-mnist" ]; then
    export FASHION_MNIST_DIR="$1/.data/fashion-mnist"
  fi
}

# pack FILE LOG: keeps FILE under $OUT only if it fits what comes back, and says which in LOG.
pack() {
  local size max_file_bytes=$((16 * 1000 * 1000))
  size=$(stat -c %s "$1")
  if [ "$size" -gt "$max_file_bytes" ]; then
    echo "$(basename "$1") is $size bytes, over the 16 MB that comes back; dropped" | tee -a "$2"
    rm -f "$1"
  else
    echo "packed $(basename "$1") ($size bytes)" | tee -a "$2"
  fi
}
