// Flash-attention forward (kernels/cuda/attention_forward.cu): 16384 packed tokens split into
// segments of 512, 2k, 8k or 16k tokens; head_dim 128 with 16 query / 4 kv heads, head_dim 64 with
// 32 / 8; causal and bidirectional (prefix = segment length); and gpu_350m's heads (16 / 8, head_dim
// 64) over recommendation-shaped histories of 16–256 tokens, causal. The same shapes as
// bench/gpu/attention_torch.py (PyTorch scaled_dot_product_attention), named alike.
// Compute-bound: flops = 4 · visible (query, key) pairs · head_dim · n_heads (Q·Kᵀ and P·V; a
// causal segment of L tokens has L(L+1)/2 pairs). `bytes` = q, k, v, out in bf16 plus lse.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench/gpu/attention_case_data.h"
#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/attention_forward.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {
namespace {

void add_forward_cases(std::vector<KernelCase>& cases, int64_t head_dim, int64_t n_heads, int64_t n_kv_heads,
                       const std::vector<PackedSegments>& packings) {
  const int64_t T = kAttentionTokens;
  const ops::AttentionShape shape{T, n_heads, n_kv_heads, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim))};
  auto q = random_bf16(T * n_heads * head_dim, 1), k = random_bf16(T * n_kv_heads * head_dim, 2);
  auto v = random_bf16(T * n_kv_heads * head_dim, 3);
  auto out = std::make_shared<Bf16s>(static_cast<size_t>(T * n_heads * head_dim));
  auto lse = std::make_shared<Floats>(static_cast<size_t>(T * n_heads));
  const int64_t bytes = 2 * T * head_dim * (2 * n_heads + 2 * n_kv_heads) + 4 * T * n_heads;
  for (const PackedSegments& seg : packings) {
    const int64_t n_segments = seg.n_segments, len = seg.max_len;
    const auto cu_seqlens = seg.cu_seqlens, prefix = seg.full_prefix;
    for (bool causal : {true, false}) {
      if (seg.histories && !causal) continue;
      const int64_t pairs = seg.pairs(causal);
      const std::string name = attention_case_name("attention_forward", causal, seg, n_heads, n_kv_heads, head_dim);
      // heads_per_block 0: the kernel's pick; the histories also with 1, one head per block (the
      // kernel before two heads shared a block's K/V tiles), for the ratio of the two
      for (int heads_per_block : {0, 1}) {
        if (heads_per_block == 1 && !seg.histories) continue;
        KernelCase c = make_case(name + (heads_per_block == 1 ? " 1 head/block" : ""), bytes,
                                 [=](cudaStream_t s) {
                                   return cuda::attention_forward(bf16_ptr(out), lse->data(), bf16_ptr(q),
                                                                  bf16_ptr(k), bf16_ptr(v), cu_seqlens->data(),
                                                                  causal ? nullptr : prefix->data(), n_segments, len,
                                                                  shape, s, heads_per_block);
                                 },
                                 {q, k, v, out, lse, cu_seqlens, prefix});
        c.memory_bound = false;
        c.flops = 4 * pairs * head_dim * n_heads;
        cases.push_back(std::move(c));
      }
      // The trainer's call on the histories: q, k, v read from the fused QKV rows, q rotated by
      // RoPE as it is loaded and written back rotated (2 more bytes per q value, and the table);
      // and the fused rows without the rotation, which splits its cost from the strided rows'
      for (bool rope : {false, true}) {
        if (!seg.histories) break;
        const int64_t stride = (n_heads + 2 * n_kv_heads) * head_dim;
        auto rows = random_bf16(T * stride, 4);
        auto table = device_values(T * head_dim, 5);
        const int64_t k_at = n_heads * head_dim, v_at = (n_heads + n_kv_heads) * head_dim;
        KernelCase c = make_case(name + (rope ? " fused rows+rope" : " fused rows"),
                                 bytes + (rope ? 2 * T * n_heads * head_dim + 4 * T * head_dim : 0),
                                 [=](cudaStream_t s) {
                                   __nv_bfloat16* fused = bf16_ptr(rows);
                                   const cuda::AttentionQkvRows layout{stride, rope ? table->data() : nullptr, false,
                                                                       rope ? fused : nullptr};
                                   return cuda::attention_forward(bf16_ptr(out), lse->data(), fused, fused + k_at,
                                                                  fused + v_at, cu_seqlens->data(), nullptr,
                                                                  n_segments, len, shape, s, 0, layout);
                                 },
                                 {rows, table, out, lse, cu_seqlens});
        c.memory_bound = false;
        c.flops = 4 * pairs * head_dim * n_heads;
        cases.push_back(std::move(c));
      }
    }
  }
}

std::vector<KernelCase> attention_forward_cases() {
  std::vector<KernelCase> cases;
  add_forward_cases(cases, 128, 16, 4, equal_packings(kAttentionTokens));
  add_forward_cases(cases, 64, 32, 8, equal_packings(kAttentionTokens));
  add_forward_cases(cases, 64, 16, 8, {history_segments(kAttentionTokens)});  // gpu_350m's heads, packed histories
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("attention_forward", &attention_forward_cases);

}  // namespace
}  // namespace reclm::bench
