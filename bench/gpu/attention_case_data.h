// Data shared by the attention benchmark cases (attention_forward_cases.cu,
// attention_backward_cases.cu): random bf16 tensors and packed segments (of equal length, or
// recommendation-shaped histories), named like bench/gpu/attention_torch.py's lines.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/gpu/kernel_cases.h"

namespace reclm::bench {

using Ints = simt::DeviceBuffer<int32_t>;

constexpr int64_t kAttentionTokens = 16384;  // the packed tokens of every attention case

// Segments packed back to back; full_prefix = each segment's length (no mask).
struct PackedSegments {
  int64_t n_segments = 0;
  int64_t max_len = 0;
  std::string label;  // "32x512", or "160 histories"
  bool histories = false;  // history_segments: benchmarked with the trainer's causal mask only
  std::vector<int64_t> lens;
  std::shared_ptr<Ints> cu_seqlens;
  std::shared_ptr<Ints> full_prefix;
  // Visible (query, key) pairs per head.
  int64_t pairs(bool causal) const {
    int64_t sum = 0;
    for (int64_t len : lens) sum += causal ? len * (len + 1) / 2 : len * len;
    return sum;
  }
};
inline PackedSegments packed_lengths(const std::vector<int64_t>& lens, const std::string& label) {
  PackedSegments p;
  p.n_segments = static_cast<int64_t>(lens.size());
  p.label = label;
  p.lens = lens;
  std::vector<int32_t> cu(1, 0), prefix;
  for (int64_t len : lens) {
    p.max_len = std::max(p.max_len, len);
    cu.push_back(static_cast<int32_t>(cu.back() + len));
    prefix.push_back(static_cast<int32_t>(len));
  }
  p.cu_seqlens = std::make_shared<Ints>(cu);
  p.full_prefix = std::make_shared<Ints>(prefix);
  return p;
}
// T tokens as T / len segments of len tokens.
inline PackedSegments packed_segments(int64_t T, int64_t len) {
  return packed_lengths(std::vector<int64_t>(static_cast<size_t>(T / len), len),
                        std::to_string(T / len) + "x" + std::to_string(len));
}
// Recommendation-shaped: user histories packed into at most T tokens, as the GPU presets' batches
// (histories cropped to 256 tokens). Three of four are 16–128 tokens, one of four 129–256 (mean
// ~102). The same rule as bench/gpu/attention_torch.py's history_lengths.
inline PackedSegments history_segments(int64_t T) {
  std::vector<int64_t> lens;
  int64_t total = 0;
  for (int64_t s = 0;; ++s) {
    const int64_t len = s % 4 == 3 ? 129 + s * 104729 % 128 : 16 + s * 7919 % 113;
    if (total + len > T) break;
    lens.push_back(len);
    total += len;
  }
  PackedSegments p = packed_lengths(lens, std::to_string(lens.size()) + " histories");
  p.histories = true;
  return p;
}

// The equal-length packings of the attention cases: T tokens as segments of 512, 2k, 8k, 16k.
inline std::vector<PackedSegments> equal_packings(int64_t T) {
  std::vector<PackedSegments> packings;
  for (int64_t len : {int64_t{512}, int64_t{2048}, int64_t{8192}, int64_t{16384}})
    packings.push_back(packed_segments(T, len));
  return packings;
}

// "attention_forward causal 32x512 h16/4 d128" (`kind` with any mode words already in it).
inline std::string attention_case_name(const std::string& kind, bool causal, const PackedSegments& p,
                                       int64_t n_heads, int64_t n_kv_heads, int64_t head_dim) {
  return kind + (causal ? " causal " : " full ") + p.label + " h" + std::to_string(n_heads) + "/" +
         std::to_string(n_kv_heads) + " d" + std::to_string(head_dim);
}

}  // namespace reclm::bench
