// Rotary position embedding, Hugging Face "rotate_half" pairing (DESIGN.md §1, §4).
// x [n_tokens, n_heads, head_dim]. The head is split into n_blocks rotary blocks of
// block_dim = head_dim / n_blocks (1 block for 1D, 2 for ChatGLM-style 2D positions); within a
// block, element i pairs with i + half (half = block_dim/2) and rotates by pos · θ^(-2i/block_dim):
//   out[i]        = x[i] · cos − x[i + half] · sin
//   out[i + half] = x[i + half] · cos + x[i] · sin
// which is HF's  x · cos + rotate_half(x) · sin  with rotate_half(x) = cat(−x2, x1).
// Block 0 uses pos_inter, block 1 (2D only) uses pos_intra. The backward is the transpose of
// this rotation, i.e. the same rotation by −angle.
//
// Angles and their cos/sin are computed in double (pos · freq reaches thousands of radians,
// where an fp32 angle is already off by ~1e-4), then rounded to fp32. Trig is the expensive
// part, so it is done once per *distinct position* when positions are small (packed batches
// repeat 0..len−1; both 2D blocks share one table since they have the same frequencies), and
// once per (token, block) otherwise — never per head.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm::ops {

namespace {

void rope_rotate(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                 int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta, float sign) {
  const int64_t n_blocks = pos_intra != nullptr ? 2 : 1;
  RECLM_CHECK(head_dim % (2 * n_blocks) == 0, "rope: head_dim {} not divisible by {}", head_dim,
              2 * n_blocks);
  const int64_t block_dim = head_dim / n_blocks;
  const int64_t half = block_dim / 2;
  if (n_tokens == 0 || half == 0) return;
  const int32_t* block_pos[2] = {pos_inter, pos_intra};
  int32_t min_pos = pos_inter[0], max_pos = pos_inter[0];
  for (int64_t b = 0; b < n_blocks; ++b)
    for (int64_t t = 0; t < n_tokens; ++t) {
      min_pos = std::min(min_pos, block_pos[b][t]);
      max_pos = std::max(max_pos, block_pos[b][t]);
    }
  RECLM_CHECK(min_pos >= 0, "rope: negative position {}", min_pos);

  // Table rows [n_rows, half] of cos and sign·sin: row = position, or row = t · n_blocks + b.
  const bool by_position = static_cast<int64_t>(max_pos) + 1 <= n_tokens * n_blocks;
  const int64_t n_rows = by_position ? static_cast<int64_t>(max_pos) + 1 : n_tokens * n_blocks;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = std::pow(static_cast<double>(theta),
                           -2.0 * static_cast<double>(i) / static_cast<double>(block_dim));
  }
  std::vector<float> cos_table(static_cast<size_t>(n_rows * half));
  std::vector<float> sin_table(static_cast<size_t>(n_rows * half));
  const bool parallel = n_tokens * n_heads * head_dim > (1 << 14);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t row = 0; row < n_rows; ++row) {
    const double pos = by_position ? row : block_pos[row % n_blocks][row / n_blocks];
    for (int64_t i = 0; i < half; ++i) {
      const double angle = pos * inv_freq[i];
      cos_table[row * half + i] = static_cast<float>(std::cos(angle));
      sin_table[row * half + i] = sign * static_cast<float>(std::sin(angle));
    }
  }

#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t row = by_position ? block_pos[b][t] : t * n_blocks + b;
      const float* c = cos_table.data() + row * half;
      const float* s = sin_table.data() + row * half;
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t base = (t * n_heads + h) * head_dim + b * block_dim;
        const float* in1 = inp + base;
        const float* in2 = inp + base + half;
        float* out1 = out + base;
        float* out2 = out + base + half;
        // in and out may alias: each pair is read fully before either half is written.
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = in1[i];
          const float x2 = in2[i];
          out1[i] = x1 * c[i] - x2 * s[i];
          out2[i] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  }
}

}  // namespace

void rope_forward(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                  int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta) {
  rope_rotate(out, inp, pos_inter, pos_intra, n_tokens, n_heads, head_dim, theta, 1.0f);
}

void rope_backward(float* dinp, const float* dout, const int32_t* pos_inter,
                   const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                   float theta) {
  rope_rotate(dinp, dout, pos_inter, pos_intra, n_tokens, n_heads, head_dim, theta, -1.0f);
}

}  // namespace reclm::ops
