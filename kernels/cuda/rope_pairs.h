// RoPE's rotation of one pair of values, and which values of a head pair up: shared by the rope
// kernels (rope.cu) and the attention backward, which rotates dq and dk back as it stores them
// (attention_backward.cu), so that both give the same bits for the same inputs.
//
// Pairing (ops::rope_forward, Hugging Face "rotate_half"): a head of head_dim values is one rotary
// block (1D positions) or two of head_dim/2 (ChatGLM 2D positions); in a block of block_dim values
// value i pairs with i + block_dim/2. Pair j (over all blocks, j < head_dim/2) is
// (x1, x2) = (block b's value i, value i + block_dim/2) with j = b·block_dim/2 + i; a rope_table
// row holds cos of pair j at [j] and sin at [head_dim/2 + j].
#pragma once

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// (x1, x2) rotated by (c, s): lo = x1·c − x2·s, hi = x2·c + x1·s, each product and sum rounded
// on its own (no FMA contraction), so every kernel on any compiler gives the same bits. The
// inverse rotation (RoPE's backward) is the same with −s.
struct Rotated {
  float lo, hi;
};
__device__ __forceinline__ Rotated rotate_pair(float x1, float x2, float c, float s) {
  return {__fadd_rn(__fmul_rn(x1, c), -__fmul_rn(x2, s)), __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s))};
}

// The head's values in groups of 8 columns (the tensor-core fragments' column groups): with
// head_dim a multiple of 16 (1D) or 32 (2D) every group holds only x1 or only x2 values of 8
// consecutive pairs, and its partner group holds the other half. Group pair p (of head_dim / 16): groups
// `first` (the x1 values) and `second` (their x2), and the pair index of first's column 0.
struct RopeGroupPair {
  int first, second, pair_index;
};
__host__ __device__ constexpr RopeGroupPair rope_group_pair(int head_dim, int p, bool two_d) {
  if (!two_d) return {p, p + head_dim / 16, 8 * p};
  const int half_groups = head_dim / 32, block_groups = head_dim / 16;  // per rotary block of head_dim/2
  const int b = p / half_groups, i = p % half_groups;
  return {b * block_groups + i, b * block_groups + i + half_groups, b * (head_dim / 4) + 8 * i};
}

// Group pair p starts at pair 8·p in both pairings (b·head_dim/4 + 8·i = 8·(b·half_groups + i)):
// which (cos, sin) a lane needs does not depend on the pairing.
constexpr bool pair_index_is_8p(int head_dim, bool two_d) {
  for (int p = 0; p < head_dim / 16; ++p) {
    if (rope_group_pair(head_dim, p, two_d).pair_index != 8 * p) return false;
  }
  return true;
}
static_assert(pair_index_is_8p(32, true) && pair_index_is_8p(64, false) && pair_index_is_8p(64, true) &&
              pair_index_is_8p(96, true) && pair_index_is_8p(128, false) && pair_index_is_8p(128, true));

// The (cos, sin) a lane needs to rotate its values of one token's head in the tensor cores'
// fragment layout (columns 2t, 2t + 1 of every 8-column group): for group pairs pair0 + i,
// i < kPairs, rotary pairs 8·(pair0 + i) + 2t and + 1. The attention kernels load them all
// before the first rotation: with each pair's loads written beside its rotation, nvcc kept them
// there and a warp waited out one memory latency per pair in turn (SASS of the head_dim 64
// kernels, 2026-11-27: 8 in a row for the forward's Q rows, 8 for the backward's dK rows).
template <int kPairs>
struct LaneRope {
  float2 c[kPairs], s[kPairs];
};
template <int D, int kPairs>
__device__ __forceinline__ LaneRope<kPairs> load_lane_rope(const float* table_row, int pair0, int t) {
  LaneRope<kPairs> rope;
  RECLM_UNROLL
  for (int i = 0; i < kPairs; ++i) {
    const int pair = 8 * (pair0 + i) + 2 * t;
    rope.c[i] = *reinterpret_cast<const float2*>(table_row + pair);
    rope.s[i] = *reinterpret_cast<const float2*>(table_row + D / 2 + pair);
  }
  return rope;
}

}  // namespace reclm::cuda
