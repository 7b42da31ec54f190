// Flash-attention backward (kernels/cuda/attention_backward.cu): 16384 packed tokens split into
// segments of 512, 2k, 8k or 16k tokens; head_dim 128 with 16 query / 4 kv heads, head_dim 64 with
// 32 / 8; causal and bidirectional (prefix = segment length); and gpu_350m's heads (16 / 8,
// head_dim 64) over recommendation-shaped histories of 16–256 tokens, causal; fast (atomic dq) and
// deterministic (the trainer's: histories up to 128 tokens take the whole-segment kernel), and on
// the histories the trainer's exact call (fused QKV rows, dq and dk rotated back through RoPE),
// also with histories up to 256 tokens in one block ("det-256", RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN).
// Compute-bound: flops = 10 · visible (query, key) pairs · head_dim · n_heads (the five GEMMs;
// the deterministic mode's dq kernel recomputes two more, not counted). `bytes` = q, k, v, out,
// dout, dq, dk, dv in bf16 plus lse once.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench/gpu/attention_case_data.h"
#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/attention_backward.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {
namespace {

using Bytes = simt::DeviceBuffer<unsigned char>;

__nv_bfloat16* bf(const std::shared_ptr<Bf16s>& b) { return bf16_ptr(b); }

void add_cases(std::vector<KernelCase>& cases, int64_t head_dim, int64_t n_heads, int64_t n_kv_heads,
               const std::vector<PackedSegments>& packings) {
  const int64_t T = kAttentionTokens;
  const ops::AttentionShape shape{T, n_heads, n_kv_heads, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim))};
  auto q = random_bf16(T * n_heads * head_dim, 1), k = random_bf16(T * n_kv_heads * head_dim, 2);
  auto v = random_bf16(T * n_kv_heads * head_dim, 3), out = random_bf16(T * n_heads * head_dim, 4);
  auto dout = random_bf16(T * n_heads * head_dim, 5);
  auto dq = std::make_shared<Bf16s>(static_cast<size_t>(T * n_heads * head_dim));
  auto dk = std::make_shared<Bf16s>(static_cast<size_t>(T * n_kv_heads * head_dim));
  auto dv = std::make_shared<Bf16s>(static_cast<size_t>(T * n_kv_heads * head_dim));
  const int64_t bytes = 2 * T * head_dim * (4 * n_heads + 4 * n_kv_heads) + 4 * T * n_heads;
  for (const PackedSegments& seg : packings) {
    const int64_t n_segments = seg.n_segments, len = seg.max_len;
    const auto cu_seqlens = seg.cu_seqlens, prefix = seg.full_prefix;
    // lse ≈ log(visible keys): P stays an ordinary probability for these random scores.
    auto lse =
        device_values(n_heads * T, 6, std::log(static_cast<float>(len)) - 1.0f, std::log(static_cast<float>(len)));
    for (bool causal : {true, false}) {
      if (seg.histories && !causal) continue;
      const int64_t pairs = seg.pairs(causal);
      // fast; deterministic; and for the histories deterministic with key tiles only (no one-block
      // path for the short segments: the kernels before it), for the ratio of the two, and with the
      // one-block path up to 256 tokens (head_dim <= 64: RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=256)
      const struct {
        bool deterministic;
        int64_t segment_block_max_len;
        const char* mode;
      } modes[] = {{false, 0, "fast"},
                   {true, cuda::kAttentionSegmentBlockMaxLen, "det"},
                   {true, 0, "det-tiles"},
                   {true, cuda::kAttentionLongSegmentBlockMaxLen, "det-256"}};
      for (const auto& m : modes) {
        if (m.deterministic && m.segment_block_max_len != cuda::kAttentionSegmentBlockMaxLen && !seg.histories)
          continue;
        if (m.segment_block_max_len > cuda::kAttentionSegmentBlockMaxLen && head_dim > 64) continue;
        const bool deterministic = m.deterministic;
        const int64_t block_max_len = m.segment_block_max_len;
        const size_t ws_bytes = cuda::attention_backward_workspace_bytes(shape, n_segments, len, deterministic);
        auto workspace = std::make_shared<Bytes>(ws_bytes);
        const std::string name = attention_case_name(std::string("attention_backward ") + m.mode, causal, seg,
                                                     n_heads, n_kv_heads, head_dim);
        KernelCase c = make_case(name, bytes,
                                 [=](cudaStream_t s) {
                                   return cuda::attention_backward(
                                       bf(dq), bf(dk), bf(dv), bf(dout), bf(q), bf(k), bf(v), bf(out), lse->data(),
                                       cu_seqlens->data(), causal ? nullptr : prefix->data(), n_segments, len, shape,
                                       deterministic, workspace->data(), ws_bytes, s, block_max_len);
                                 },
                                 {q, k, v, out, dout, dq, dk, dv, cu_seqlens, prefix, lse, workspace});
        c.memory_bound = false;
        c.flops = 10 * pairs * head_dim * n_heads;
        cases.push_back(std::move(c));
      }
      // The trainer's call on the histories: q, k, v read from fused QKV rows and dq, dk, dv
      // written into them, dq and dk rotated back through RoPE as they are stored (no separate
      // RoPE backward); and the fused rows without the rotation: beside "det", the cost of the
      // strided rows, then of the rotation.
      struct Fused {
        bool rope;
        int64_t block_max_len;
        const char* name;
      };
      for (const Fused f : {Fused{false, cuda::kAttentionSegmentBlockMaxLen, "attention_backward det fused"},
                            Fused{true, cuda::kAttentionSegmentBlockMaxLen, "attention_backward det fused+rope"},
                            Fused{true, cuda::kAttentionLongSegmentBlockMaxLen,
                                  "attention_backward det-256 fused+rope"}}) {
        if (!seg.histories) break;
        if (f.block_max_len > cuda::kAttentionSegmentBlockMaxLen && head_dim > 64) continue;
        const bool rope = f.rope;
        const int64_t block_max_len = f.block_max_len;
        const int64_t stride = (n_heads + 2 * n_kv_heads) * head_dim;
        auto rows = random_bf16(T * stride, 7);
        auto d_rows = std::make_shared<Bf16s>(static_cast<size_t>(T * stride));
        auto table = device_values(T * head_dim, 8);
        const size_t ws_bytes = cuda::attention_backward_workspace_bytes(shape, n_segments, len, true);
        auto workspace = std::make_shared<Bytes>(ws_bytes);
        const int64_t k_at = n_heads * head_dim, v_at = (n_heads + n_kv_heads) * head_dim;
        KernelCase c = make_case(
            attention_case_name(f.name, causal, seg, n_heads, n_kv_heads, head_dim),
            bytes + (rope ? 4 * T * head_dim : 0),
            [=](cudaStream_t s) {
              return cuda::attention_backward(bf(d_rows), bf(d_rows) + k_at, bf(d_rows) + v_at, bf(dout), bf(rows),
                                              bf(rows) + k_at, bf(rows) + v_at, bf(out), lse->data(),
                                              cu_seqlens->data(), nullptr, n_segments, len, shape, true,
                                              workspace->data(), ws_bytes, s, block_max_len,
                                              {stride, rope ? table->data() : nullptr, false});
            },
            {rows, d_rows, table, out, dout, cu_seqlens, lse, workspace});
        c.memory_bound = false;
        c.flops = 10 * pairs * head_dim * n_heads;
        cases.push_back(std::move(c));
      }
    }
  }
}

std::vector<KernelCase> attention_backward_cases() {
  std::vector<KernelCase> cases;
  add_cases(cases, 128, 16, 4, equal_packings(kAttentionTokens));
  add_cases(cases, 64, 32, 8, equal_packings(kAttentionTokens));
  add_cases(cases, 64, 16, 8, {history_segments(kAttentionTokens)});  // gpu_350m's heads, packed histories
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("attention_backward", &attention_backward_cases);

}  // namespace
}  // namespace reclm::bench
