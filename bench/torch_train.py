#!/usr/bin/env python3
"""PyTorch reference for `lorakit bench train`: the same Llama shape with random
weights, PEFT-style LoRA (frozen base, trainable A/B, scale alpha/r) on the same
projections, AdamW over the LoRA parameters, the same B and T. Prints one JSON
line: tokens_per_s (median over steps) and peak_rss_bytes.

Run at PyTorch's best setting on this CPU class:
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2 python3 bench/torch_train.py
(torch.set_num_threads(1) is applied below: torch's own pool and OpenBLAS's
otherwise fight over two cores)."""
import argparse, json, math, resource, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {
    "smollm2-135m": dict(hidden=576, layers=30, heads=9, kv=3, ffn=1536, vocab=49152, theta=100000.0),
    "tiny-brown": dict(hidden=256, layers=6, heads=8, kv=4, ffn=768, vocab=4096, theta=10000.0),
}

class LoRALinear(nn.Module):
    def __init__(self, i, o, r, alpha, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
        self.lora = lora
        if lora:
            self.A = nn.Parameter(torch.empty(r, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
            self.B = nn.Parameter(torch.randn(o, r) * 0.01)
            self.s = alpha / r
    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + F.linear(F.linear(x, self.A), self.B) * self.s
        return y

def rms(x, w, eps=1e-5):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

def rot(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)

class Block(nn.Module):
    def __init__(self, c, r, targets):
        super().__init__()
        D, H, KV, hd, Fd = c["hidden"], c["heads"], c["kv"], c["hidden"] // c["heads"], c["ffn"]
        self.H, self.KV, self.hd = H, KV, hd
        mk = lambda name, i, o: LoRALinear(i, o, r, 2 * r, name in targets)
        self.q, self.k, self.v, self.o = mk("q_proj", D, H * hd), mk("k_proj", D, KV * hd), mk("v_proj", D, KV * hd), mk("o_proj", H * hd, D)
        self.g, self.u, self.d = mk("gate_proj", D, Fd), mk("up_proj", D, Fd), mk("down_proj", Fd, D)
        self.n1 = nn.Parameter(torch.ones(D), requires_grad=False)
        self.n2 = nn.Parameter(torch.ones(D), requires_grad=False)
    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = rms(x, self.n1)
        q = self.q(h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.KV, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.KV, self.hd).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        rep = self.H // self.KV
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        a = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask, -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        h = rms(x, self.n2)
        return x + self.d(F.silu(self.g(h)) * self.u(h))

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="smollm2-135m")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    c = SHAPES[a.shape]
    targets = set(a.targets.split(","))
    emb = torch.randn(c["vocab"], c["hidden"]) * 0.02
    blocks = nn.ModuleList(Block(c, a.rank, targets) for _ in range(c["layers"]))
    norm = torch.ones(c["hidden"])
    hd = c["hidden"] // c["heads"]
    inv = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(a.seq).float()[:, None] * inv[None, :]
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)
    params = [q for q in blocks.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    rates = []
    for s in range(a.steps + 1):
        ids = torch.randint(0, c["vocab"], (a.batch, a.seq))
        t0 = time.perf_counter()
        x = emb[ids]
        for b in blocks:
            x = b(x, cos, sin, mask)
        logits = rms(x, norm) @ emb.T
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab"]), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s > 0:
            rates.append(a.batch * a.seq / (time.perf_counter() - t0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": "pytorch " + torch.__version__, "shape": a.shape, "batch": a.batch, "seq": a.seq, "rank": a.rank,
                      "targets": a.targets, "tokens_per_s": statistics.median(rates), "peak_rss_bytes": rss, "steps": a.steps}))

if __name__ == "__main__":
    main()
