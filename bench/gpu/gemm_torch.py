#!/usr/bin/env python3
"""PyTorch's GEMMs on the shapes of the GPU trainer's, the peer of bench/gpu/gemm_cases.cu.

Run by bench/gpu/run.sh after kernel_bench. gpu_350m's linear layers at T = 16,209 tokens (an odd
packed micro-batch, as the reclm cases) and 16,384: the fused q/k/v (1024 -> 2048) and gate/up
(1024 -> 5632) projections, o_proj (1024 -> 1024) and down_proj (2816 -> 1024), and one LM-head
chunk of 2770 rows over 64,576 classes, each forward (y = x·Wᵀ) and backward (dx = dy·W and
dW = dyᵀ·x), bf16 in and out, as PyTorch autocast runs them (reclm writes o/down's outputs in
fp32 onto the residual stream, the head's logits in fp32 in that case, and its weight gradients
in fp32: more bytes than these). Each line is named like the reclm case it compares with:

  linear_forward T=16209 1024->2048 torch: 0.070 ms, 970.1 TFLOP/s
  linear_backward dinp+dweight T=16209 1024->2048 torch: ...

FLOPs as in the reclm cases: 2·T·C·OC forward, twice that backward. Times are medians of
CUDA-event-timed runs after warm-up.

  python3 bench/gpu/gemm_torch.py [--iters N]
"""
import sys

from torch_timing import peer_main, time_ms

SHAPES = [(tokens, c, oc) for tokens in (16384, 16209)
          for c, oc in ((1024, 2048), (1024, 5632), (1024, 1024), (2816, 1024))] + [(2770, 1024, 64576)]


def run(iters):
    import torch

    if not torch.cuda.is_available():
        print("gemm_torch.py: no CUDA device; skipped")
        return 0
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    for tokens, c, oc in SHAPES:
        x = torch.randn(tokens, c, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(oc, c, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(tokens, oc, device="cuda", dtype=torch.bfloat16)
        flops = 2 * tokens * c * oc
        fwd_ms = time_ms(torch, lambda: torch.nn.functional.linear(x, w), iters)
        bwd_ms = time_ms(torch, lambda: (dy @ w, dy.t() @ x), iters)
        print(f"linear_forward T={tokens} {c}->{oc} torch: {fwd_ms:.3f} ms, {flops / (fwd_ms * 1e9):.1f} TFLOP/s")
        print(f"linear_backward dinp+dweight T={tokens} {c}->{oc} torch: {bwd_ms:.3f} ms, "
              f"{2 * flops / (bwd_ms * 1e9):.1f} TFLOP/s")
        sys.stdout.flush()
        del x, w, dy
    return 0


if __name__ == "__main__":
    sys.exit(peer_main(__doc__, run))
