#!/usr/bin/env python3
"""PyTorch peer of reclm's GPU training: the same model, trained the usual PyTorch way.

The model is reclm's (DESIGN.md §1, trainer/model_forward.cc, kernels/cpu): token embedding →
n_layers × [RMSNorm → attention (RoPE with Hugging Face rotate_half pairing, grouped-query heads)
→ residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm → LM head tied to the embedding →
cross-entropy over the whole vocabulary. No biases, no dropout; init normal(0, 0.02) with o_proj
and down_proj scaled by 1/sqrt(2·n_layers), as reclm.

Training: fp32 master weights, bf16 autocast, F.scaled_dot_product_attention (is_causal=True),
torch.optim.AdamW(fused=True) with reclm's defaults (β 0.9/0.95, ε 1e-8, weight decay 0.1 on the
projection matrices only) and gradient-norm clipping at 1.0; optionally torch.compile. Unlike
reclm, which packs variable-length user histories into one token buffer, PyTorch trains unpacked
fixed-length sequences: micro_batch × seq_len random token ids per step (timing only).

MFU uses the FLOP count of trainer/model_flops.cc for this fixed-length causal case — matrix
products only, multiply-add = 2, training = 3 × forward:
  projections  3 · 2 · (q + k + v + o + gate + up + down weights) · tokens · n_layers
  attention    3 · 4 · n_heads · head_dim · visible pairs · n_layers, pairs = B · S(S+1)/2
  LM head      3 · 2 · d_model · vocab · loss rows (every position has a target)
over the dense bf16 peak of peak_bf16_tflops() in trainer/model_flops.cc, matched on the device
name the same way. Without CUDA it runs on the CPU in float32 with the unfused AdamW (a smoke
test only; no MFU).

Prints one parseable line at the end:
  torch: tokens/s X, mfu Y, peak_mem_mb Z, ms/step W
(mfu "n/a" on a device not in the peak table; peak_mem_mb is torch.cuda.max_memory_allocated,
0 on the CPU; ms/step is the median over the timed steps, tokens/s = tokens per step / median).

  python3 bench/gpu/train_torch.py --d-model 768 --layers 12 --heads 12 --kv-heads 4 \
      --d-ff 2048 --vocab 52000 --seq-len 256 --micro-batch 64 --steps 20 --warmup-steps 5
"""
import argparse
import math
import re
import statistics
import sys
import time

# trainer/model_flops.cc peak_bf16_tflops: dense bf16 tensor-core TFLOP/s; the first name found
# in the device name wins, so longer names come first (same order as there).
PEAKS = (
    ("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("H800", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L4", 121.0),
    ("A10", 125.0),
)


def peak_bf16_tflops(device_name):
    for name, tflops in PEAKS:
        if name in device_name:
            return tflops
    return 0.0


def training_flops(a, tokens_per_step):
    """trainer/model_flops.cc training_flops() for micro_batch causal segments of seq_len."""
    head_dim = a.d_model // a.heads
    q = a.d_model * a.heads * head_dim
    kv = a.d_model * a.kv_heads * head_dim
    o = a.heads * head_dim * a.d_model
    mlp = 3 * a.d_model * a.d_ff
    projection_weights = q + 2 * kv + o + mlp
    pairs = a.micro_batch * a.seq_len * (a.seq_len + 1) // 2
    projections = 3.0 * 2.0 * projection_weights * tokens_per_step * a.layers
    attention = 3.0 * 4.0 * a.heads * head_dim * pairs * a.layers
    head = 3.0 * 2.0 * a.d_model * a.vocab * tokens_per_step  # every row has a loss weight
    return projections + attention + head


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-model", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, default=0, help="0 = --heads (multi-head attention)")
    p.add_argument("--d-ff", type=int, required=True)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--micro-batch", type=int, required=True, help="sequences of --seq-len per step")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before them")
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 disables clipping")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="the GPU's dense bf16 peak for MFU; 0: the table by the device name")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda or cpu")
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args(argv)
    if a.kv_heads == 0:
        a.kv_heads = a.heads
    if a.d_model % a.heads or a.heads % a.kv_heads:
        p.error("d_model must be divisible by heads, and kv_heads must divide heads")
    if (a.d_model // a.heads) % 2:
        p.error("head_dim must be even (RoPE pairs)")
    if min(a.steps, a.micro_batch, a.seq_len, a.vocab) < 1 or a.warmup_steps < 0:
        p.error("steps, micro-batch, seq-len and vocab must be >= 1, warmup-steps >= 0")
    return a


def build_model(torch, a):
    nn = torch.nn
    F = torch.nn.functional
    head_dim = a.d_model // a.heads
    major_minor = tuple(int(re.match(r"\d+", x).group()) for x in torch.__version__.split(".")[:2])
    gqa_native = major_minor >= (2, 5)  # F.scaled_dot_product_attention(enable_gqa=...)

    class RMSNorm(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            # in fp32 (the residual stream is fp32 under autocast), like reclm's kernels
            if hasattr(F, "rms_norm"):
                return F.rms_norm(x, (a.d_model,), self.weight, a.norm_eps)
            xf = x.float()
            y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + a.norm_eps)
            return (y * self.weight).to(x.dtype)

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm(a.d_model)
            self.q_proj = nn.Linear(a.d_model, a.heads * head_dim, bias=False)
            self.k_proj = nn.Linear(a.d_model, a.kv_heads * head_dim, bias=False)
            self.v_proj = nn.Linear(a.d_model, a.kv_heads * head_dim, bias=False)
            self.o_proj = nn.Linear(a.heads * head_dim, a.d_model, bias=False)
            self.post_attention_layernorm = RMSNorm(a.d_model)
            self.gate_proj = nn.Linear(a.d_model, a.d_ff, bias=False)
            self.up_proj = nn.Linear(a.d_model, a.d_ff, bias=False)
            self.down_proj = nn.Linear(a.d_ff, a.d_model, bias=False)

        def forward(self, x, cos, sin):
            B, S, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(B, S, a.heads, head_dim).transpose(1, 2)
            k = self.k_proj(h).view(B, S, a.kv_heads, head_dim).transpose(1, 2)
            v = self.v_proj(h).view(B, S, a.kv_heads, head_dim).transpose(1, 2)
            cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # as Hugging Face Llama
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if a.kv_heads == a.heads:
                att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif gqa_native:
                att = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                rep = a.heads // a.kv_heads
                att = F.scaled_dot_product_attention(
                    q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), is_causal=True)
            x = x + self.o_proj(att.transpose(1, 2).reshape(B, S, a.heads * head_dim))
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(a.vocab, a.d_model)
            self.layers = nn.ModuleList(Block() for _ in range(a.layers))
            self.norm = RMSNorm(a.d_model)
            inv_freq = 1.0 / (a.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
            angle = torch.arange(a.seq_len, dtype=torch.float64)[:, None] * inv_freq[None, :]
            angle = torch.cat((angle, angle), dim=-1)  # [S, head_dim], rotate_half layout
            self.register_buffer("cos", angle.cos().float(), persistent=False)
            self.register_buffer("sin", angle.sin().float(), persistent=False)
            std = 0.02
            for name, param in self.named_parameters():
                if param.dim() == 2:
                    scale = 1.0 / math.sqrt(2 * a.layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
                    nn.init.normal_(param, 0.0, std * scale)

        def forward(self, ids, targets):
            x = self.embed_tokens(ids)
            for layer in self.layers:
                x = layer(x, self.cos, self.sin)
            x = self.norm(x)
            logits = F.linear(x, self.embed_tokens.weight)  # tied LM head
            return F.cross_entropy(logits.float().view(-1, a.vocab), targets.reshape(-1))

    return Model()


def main(argv):
    a = parse_args(argv)
    import torch

    use_cuda = a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        sys.exit("train_torch.py: --device cuda but CUDA is not available")
    device = torch.device("cuda" if use_cuda else "cpu")
    torch.manual_seed(a.seed)
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    device_name = torch.cuda.get_device_name(device) if use_cuda else "cpu"

    model = build_model(torch, a).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed_tokens" not in n)]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if use_cuda else {"foreach": True}))
    step_model = torch.compile(model) if a.compile else model

    tokens_per_step = a.micro_batch * a.seq_len
    print(f"torch {torch.__version__} on {device_name}: {n_params / 1e6:.2f}M parameters, "
          f"{a.micro_batch} x {a.seq_len} = {tokens_per_step} tokens/step, "
          f"{'bf16 autocast' if use_cuda else 'float32 (CPU smoke test)'}, "
          f"AdamW {'fused' if use_cuda else 'foreach'}{', torch.compile' if a.compile else ''}")
    print("torch: note: trains unpacked fixed-length sequences (is_causal=True over seq_len, "
          "random token ids); reclm packs variable-length user histories")
    sys.stdout.flush()

    gen = torch.Generator(device="cpu").manual_seed(a.seed)

    def batch():
        data = torch.randint(0, a.vocab, (a.micro_batch, a.seq_len + 1), generator=gen)
        data = data.to(device, non_blocking=True)
        return data[:, :-1], data[:, 1:]

    def step():
        ids, targets = batch()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
            loss = step_model(ids, targets)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if use_cuda:
            torch.cuda.synchronize()

    for _ in range(a.warmup_steps):
        step()
    sync()
    times = []
    loss = None
    total_start = time.perf_counter()
    for _ in range(a.steps):
        start = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - start)
    total = time.perf_counter() - total_start

    median = statistics.median(times)
    tokens_per_s = tokens_per_step / median
    flops = training_flops(a, tokens_per_step)
    peak = (a.peak_tflops or peak_bf16_tflops(device_name)) if use_cuda else 0.0
    mfu = f"{flops / median / (peak * 1e12):.4f}" if peak > 0 else "n/a"
    peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20 if use_cuda else 0.0
    print(f"torch: {a.steps} timed steps in {total:.3f} s after {a.warmup_steps} warm-up, "
          f"median {median * 1e3:.2f} ms, model {flops / median / 1e12:.2f} TFLOP/s "
          f"(peak {peak:g} TFLOP/s), last loss {loss.item():.4f}")
    print(f"torch: tokens/s {tokens_per_s:.1f}, mfu {mfu}, peak_mem_mb {peak_mem_mb:.1f}, "
          f"ms/step {median * 1e3:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
