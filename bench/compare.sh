#!/usr/bin/env bash
# Side-by-side benchmarks: lorakit vs PyTorch (Debian python3-torch) on the same
# machine in the same run, alternating the two sides ROUNDS times and printing
# every figure; quote the medians. Needs: apt-get install python3-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
go build -o /tmp/lorakit-bench ./cmd/lorakit
export OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2
what=${1:-all}
for r in $(seq "$ROUNDS"); do
  if [[ $what == all || $what == matmul ]]; then
    for n in 1024 2048; do
      /tmp/lorakit-bench bench matmul --size $n --json
      /usr/bin/python3 bench/torch_mm.py --size $n
    done
  fi
  if [[ $what == all || $what == train ]]; then
    /tmp/lorakit-bench bench train --shape smollm2-135m --batch 4 --seq 256 --rank 16 --targets q_proj,k_proj,v_proj,o_proj --json
    /usr/bin/python3 bench/torch_train.py --shape smollm2-135m --batch 4 --seq 256 --rank 16
  fi
done
