#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the shapes of the reclm attention benchmark cases.

The peer of bench/gpu/attention_forward_cases.cu and attention_backward_cases.cu (run by
bench/gpu/run.sh after kernel_bench): 16384 tokens as a batch of equal segments of 512, 2k, 8k or
16k tokens; head_dim 128 with 16 query / 4 kv heads, head_dim 64 with 32 / 8; causal
(is_causal=True) and full; bf16. Each line is named like the reclm case it compares with, plus
the backend:

  attention_forward causal 32x512 h16/4 d128 torch-flash: 0.123 ms, 456.7 TFLOP/s
  attention_backward causal 32x512 h16/4 d128 torch-cudnn: ...

And gpu_350m's heads (head_dim 64, 16 / 8) over the recommendation-shaped histories of
attention_case_data.h's history_segments (16-256 tokens, the same lengths), causal: PyTorch pads
them to a batch of the longest history, as a PyTorch recommender does (right padding under
is_causal needs no other mask), and is credited only the histories' own pairs, as reclm is:
"attention_forward causal 160 histories h16/8 d64 torch-flash: ...".

FLOPs are counted as in the reclm cases: forward 4, backward 10 per visible (query, key) pair,
head_dim and query head (causal: L(L+1)/2 pairs per segment). Grouped-query k/v are expanded to
the query heads before timing (the flash backend takes equal head counts), which costs PyTorch a
little extra memory traffic but no FLOPs. Times are medians of CUDA-event-timed runs after
warm-up. A backend that refuses a shape prints "unsupported" instead of a number.

  python3 bench/gpu/attention_torch.py [--iters N]
"""
import sys

from torch_timing import peer_main, time_ms

TOKENS = 16384
SEQ_LENS = (512, 2048, 8192, 16384)
HEAD_CONFIGS = ((128, 16, 4), (64, 32, 8))  # (head_dim, n_heads, n_kv_heads)


def history_lengths(tokens):
    """The history lengths of attention_case_data.h's history_segments: the same rule."""
    lengths, total, s = [], 0, 0
    while True:
        length = 129 + s * 104729 % 128 if s % 4 == 3 else 16 + s * 7919 % 113
        if total + length > tokens:
            return lengths
        lengths.append(length)
        total += length
        s += 1


def visible_pairs(n_segments, length, causal):
    return n_segments * (length * (length + 1) // 2 if causal else length * length)


def case_name(direction, causal, packing, n_heads, n_kv_heads, head_dim):
    mask = "causal" if causal else "full"
    return f"attention_{direction} {mask} {packing} h{n_heads}/{n_kv_heads} d{head_dim}"


def run(iters):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        print("attention_torch.py: no CUDA device; skipped")
        return 0
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    backends = (("torch-flash", SDPBackend.FLASH_ATTENTION), ("torch-cudnn", SDPBackend.CUDNN_ATTENTION))
    histories = history_lengths(TOKENS)
    runs = [(head_dim, n_heads, n_kv_heads, f"{TOKENS // length}x{length}", TOKENS // length, length,
             (True, False), lambda causal, n=TOKENS // length, length=length: visible_pairs(n, length, causal))
            for head_dim, n_heads, n_kv_heads in HEAD_CONFIGS for length in SEQ_LENS]
    runs.append((64, 16, 8, f"{len(histories)} histories", len(histories), max(histories), (True,),
                 lambda causal: sum(visible_pairs(1, length, causal) for length in histories)))
    for head_dim, n_heads, n_kv_heads, packing, batch, length, masks, pairs_of in runs:
        shape = (batch, n_heads, length, head_dim)  # SDPA layout [batch, heads, seq, dim]
        q = torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        kv_shape = (batch, n_kv_heads, length, head_dim)
        group = n_heads // n_kv_heads
        k = torch.randn(kv_shape, device="cuda", dtype=torch.bfloat16).repeat_interleave(group, dim=1)
        v = torch.randn(kv_shape, device="cuda", dtype=torch.bfloat16).repeat_interleave(group, dim=1)
        k.requires_grad_(True)
        v.requires_grad_(True)
        dout = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
        for causal in masks:
            pairs = pairs_of(causal)
            for label, backend in backends:
                fwd_name = case_name("forward", causal, packing, n_heads, n_kv_heads, head_dim)
                bwd_name = case_name("backward", causal, packing, n_heads, n_kv_heads, head_dim)
                try:
                    with sdpa_kernel(backend):
                        def forward():
                            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                        fwd_ms = time_ms(torch, forward, iters)
                        out = forward()

                        def backward():
                            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

                        bwd_ms = time_ms(torch, backward, iters)
                except RuntimeError as error:  # the backend refuses this shape or device
                    reason = str(error).splitlines()[0] if str(error) else "error"
                    print(f"{fwd_name} {label}: unsupported ({reason[:80]})")
                    continue
                fwd_tflops = 4 * pairs * head_dim * n_heads / (fwd_ms * 1e9)
                bwd_tflops = 10 * pairs * head_dim * n_heads / (bwd_ms * 1e9)
                print(f"{fwd_name} {label}: {fwd_ms:.3f} ms, {fwd_tflops:.1f} TFLOP/s")
                print(f"{bwd_name} {label}: {bwd_ms:.3f} ms, {bwd_tflops:.1f} TFLOP/s")
                sys.stdout.flush()
        del q, k, v, dout
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(peer_main(__doc__, run))
