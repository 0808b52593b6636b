#!/usr/bin/env python3
"""PyTorch reference for `lorakit bench matmul`: torch.mm float32 N×N, median
GFLOPS over repeats of at least 0.3 s. Run at its best setting here:
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2 python3 bench/torch_mm.py --size 2048"""
import argparse, json, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=1024)
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(1)
n = a.size
x, y = torch.randn(n, n), torch.randn(n, n)
torch.mm(x, y.T)
rates = []
for _ in range(a.repeats):
    it, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.3 or it == 0:
        torch.mm(x, y.T)
        it += 1
    rates.append(2 * n ** 3 * it / (time.perf_counter() - t0) / 1e9)
print(json.dumps({"impl": "torch.mm " + torch.__version__, "size": n, "gflops": statistics.median(rates), "gflops_max": max(rates)}))
