#!/usr/bin/env python3
"""The bench model (bench.pbtxt) in PyTorch, written the way a practitioner would, trained on CPU.

Same architecture as reclm's model (DESIGN.md §1, 1D positions): token embedding →
n_layers × [RMSNorm → attention (RoPE rotate_half, GQA, causal) → residual → RMSNorm →
SwiGLU MLP → residual] → RMSNorm → LM head tied to the embedding. fp32, eager mode, AdamW
with reclm's defaults (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only), grad
clip 1.0. Prints progress to stderr and, as its last stdout line, one JSON object.
"""
import argparse
import json
import math
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rms_norm(dim, eps):
    # torch.nn.RMSNorm exists from 2.4; older versions get the same math by hand.
    if hasattr(nn, "RMSNorm"):
        return nn.RMSNorm(dim, eps=eps)
    return ManualRMSNorm(dim, eps)


class ManualRMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=False)

    def forward(self, x, cos, sin):  # x: [B, S, D]; cos, sin: [S, head_dim]
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.n_kv_heads != self.n_heads:  # GQA: each kv head serves a group of q heads
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, S, head_dim]
        return self.o_proj(y.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm = rms_norm(a.d_model, a.norm_eps)
        self.self_attn = Attention(a.d_model, a.n_heads, a.n_kv_heads)
        self.post_attention_layernorm = rms_norm(a.d_model, a.norm_eps)
        self.mlp = MLP(a.d_model, a.d_ff)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab_size, a.d_model)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.n_layers))
        self.norm = rms_norm(a.d_model, a.norm_eps)
        # RoPE tables computed once (HF layout: the two halves share frequencies).
        head_dim = a.d_model // a.n_heads
        inv_freq = a.rope_theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(a.seq_len).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        # reclm's init (model.init_std): N(0, std) matrices, output projections scaled by
        # 1/sqrt(2·n_layers), norms at 1.
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = a.init_std
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    std /= math.sqrt(2 * a.n_layers)
                nn.init.normal_(p, std=std)

    def forward(self, tokens):  # tokens: [B, S] → logits [B, S, vocab]
        x = self.embed_tokens(tokens)
        s = tokens.shape[1]
        for layer in self.layers:
            x = layer(x, self.cos[:s], self.sin[:s])
        return F.linear(self.norm(x), self.embed_tokens.weight)  # tied LM head


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab-size", dest="vocab_size", type=int, default=320)
    p.add_argument("--d-model", dest="d_model", type=int, default=384)
    p.add_argument("--n-layers", dest="n_layers", type=int, default=6)
    p.add_argument("--n-heads", dest="n_heads", type=int, default=6)
    p.add_argument("--n-kv-heads", dest="n_kv_heads", type=int, default=6)
    p.add_argument("--d-ff", dest="d_ff", type=int, default=1024)
    p.add_argument("--seq-len", dest="seq_len", type=int, default=256)
    p.add_argument("--micro-batch", dest="micro_batch", type=int, default=8)
    p.add_argument("--rope-theta", dest="rope_theta", type=float, default=10000.0)
    p.add_argument("--norm-eps", dest="norm_eps", type=float, default=1e-5)
    p.add_argument("--init-std", dest="init_std", type=float, default=0.02)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="steps excluded from timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    if a.steps <= a.warmup:
        sys.exit(f"--steps ({a.steps}) must exceed --warmup ({a.warmup})")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Llama(a)
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once

    # Weight decay on matrices only, not on norms or the (tied) embedding: reclm's defaults.
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    # Random tokens from a fixed generator, drawn from a skewed (Zipf-like) distribution so
    # the loss visibly falls as the model learns unigram statistics. Generated up front so
    # the timed loop measures training only.
    g = torch.Generator().manual_seed(a.seed)
    zipf = 1.0 / torch.arange(1, a.vocab_size + 1, dtype=torch.float64)
    batches = torch.multinomial(zipf, a.steps * a.micro_batch * (a.seq_len + 1),
                                replacement=True, generator=g)
    batches = batches.view(a.steps, a.micro_batch, a.seq_len + 1)

    tokens_per_step = a.micro_batch * a.seq_len
    step_s, losses = [], []
    model.train()
    for step in range(a.steps):
        for group in opt.param_groups:  # linear warmup, then constant
            group["lr"] = a.lr * min(1.0, (step + 1) / a.warmup_steps)
        batch = batches[step]
        t0 = time.perf_counter()
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.view(-1, a.vocab_size), batch[:, 1:].reshape(-1))
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()  # sync point, inside the timed region like reclm's logging
        step_s.append(time.perf_counter() - t0)
        losses.append(loss_value)
        print(f"pytorch step {step + 1}/{a.steps} loss {loss_value:.4f} "
              f"grad_norm {grad_norm.item():.3f} {1000 * step_s[-1]:.1f} ms", file=sys.stderr)

    timed = step_s[a.warmup:]
    print(json.dumps({
        "tokens_per_s": tokens_per_step * len(timed) / sum(timed),
        "ms_per_step": 1000 * sum(timed) / len(timed),
        "params": n_params,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
