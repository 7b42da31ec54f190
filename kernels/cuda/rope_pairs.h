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

}  // namespace reclm::cuda
