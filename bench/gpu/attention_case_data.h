// Data shared by the attention benchmark cases (attention_forward_cases.cu,
// attention_backward_cases.cu): random bf16 tensors and packed segments of equal length, named
// like bench/gpu/attention_torch.py's lines.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/gpu/kernel_cases.h"

namespace reclm::bench {

using Bf16s = simt::DeviceBuffer<uint16_t>;
using Ints = simt::DeviceBuffer<int32_t>;

// Random bf16 values (truncated fp32 bits: benchmark data only needs to be ordinary numbers).
inline std::shared_ptr<Bf16s> random_bf16(int64_t n, uint32_t seed) {
  const std::vector<float> values = host_values(n, seed);
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t b;
    std::memcpy(&b, &values[i], sizeof(b));
    bits[i] = static_cast<uint16_t>(b >> 16);
  }
  return std::make_shared<Bf16s>(bits);
}

inline __nv_bfloat16* bf16_ptr(const std::shared_ptr<Bf16s>& b) {
  return reinterpret_cast<__nv_bfloat16*>(b->data());
}

// T tokens packed as T / len segments of len tokens; prefix = len everywhere (no mask).
struct PackedSegments {
  int64_t n_segments = 0;
  int64_t len = 0;
  std::shared_ptr<Ints> cu_seqlens;
  std::shared_ptr<Ints> full_prefix;
  // Visible (query, key) pairs per head.
  int64_t pairs(bool causal) const { return n_segments * (causal ? len * (len + 1) / 2 : len * len); }
};
inline PackedSegments packed_segments(int64_t T, int64_t len) {
  PackedSegments p;
  p.n_segments = T / len;
  p.len = len;
  std::vector<int32_t> cu(static_cast<size_t>(p.n_segments + 1));
  for (int64_t s = 0; s <= p.n_segments; ++s) cu[static_cast<size_t>(s)] = static_cast<int32_t>(s * len);
  p.cu_seqlens = std::make_shared<Ints>(cu);
  p.full_prefix = std::make_shared<Ints>(
      std::vector<int32_t>(static_cast<size_t>(p.n_segments), static_cast<int32_t>(len)));
  return p;
}

// "attention_forward causal 32x512 h16/4 d128" (`kind` with any mode words already in it).
inline std::string attention_case_name(const std::string& kind, bool causal, const PackedSegments& p,
                                       int64_t n_heads, int64_t n_kv_heads, int64_t head_dim) {
  return kind + (causal ? " causal " : " full ") + std::to_string(p.n_segments) + "x" +
         std::to_string(p.len) + " h" + std::to_string(n_heads) + "/" + std::to_string(n_kv_heads) +
         " d" + std::to_string(head_dim);
}

}  // namespace reclm::bench
