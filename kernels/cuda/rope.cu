// RoPE forward/backward (fp32), the rotation of kernels/cpu/rope.cc:
//   out[i]        = x[i] · cos − x[i + half] · sin
//   out[i + half] = x[i + half] · cos + x[i] · sin
// within each rotary block of block_dim = head_dim / n_blocks (n_blocks 1, or 2 for ChatGLM 2D
// positions), half = block_dim / 2, angle = pos · θ^(-2i/block_dim); backward negates sin.
//
// fp32 forms: one block per token. Its threads first build the token's table of head_dim/2
// (cos, sin) pairs in shared memory — angle and trig in double, rounded to fp32, exactly as the
// reference does (pos · freq reaches thousands of radians, where an fp32 angle is off by ~1e-4)
// — then rotate every head with it, so trig is done once per (token, rotary value), never per
// head. Each thread takes a unit of 4 pairs (two 4-value loads, two 4-value stores) when
// half % 4 == 0 and the pointers are aligned to a unit, else one pair. A unit reads both halves
// of its pairs before writing, and units are disjoint, so out may alias inp.
// The trainer's bf16 form (rope_qk_forward_bf16) reads the (cos, sin) from a table of the whole
// micro-batch made once by rope_table (the same values; positions do not change between layers,
// so the n_layers rotations forward, and the attention backward's rotations back, skip the trig),
// and rotates q and k (the trainer: k alone, its attention forward rotates q) of a layer's fused
// QKV rows in place in one grid-stride launch (below, at rope_qk_kernel).
#include "kernels/cuda/rope.h"

#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/cuda/rope_pairs.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 128;

// (cos, sin) of rotary pair j (over all rotary blocks) of token t: angle and trig in double,
// rounded to fp32.
struct CosSin {
  float cos, sin;
};
__device__ inline CosSin rotary_cos_sin(const int32_t* pos_inter, const int32_t* pos_intra, int64_t t, int j,
                                        int head_dim, float theta) {
  const int block_dim = head_dim / (pos_intra != nullptr ? 2 : 1);
  const int half = block_dim / 2;
  const int b = j / half;
  const int i = j % half;
  const double pos = b == 0 ? pos_inter[t] : pos_intra[t];
  const double inv_freq =
      pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(block_dim));
  const double angle = pos * inv_freq;
  return {static_cast<float>(cos(angle)), static_cast<float>(sin(angle))};
}

// table [n_tokens, head_dim]: per token cos [head_dim/2] then sin [head_dim/2].
__global__ void rope_table_kernel(float* table, const int32_t* pos_inter, const int32_t* pos_intra,
                                  int64_t n_tokens, int head_dim, float theta) {
  const int pairs = head_dim / 2;
  const int64_t n = n_tokens * pairs;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < n; u += stride) {
    const int64_t t = u / pairs;
    const int j = static_cast<int>(u % pairs);
    const CosSin cs = rotary_cos_sin(pos_inter, pos_intra, t, j, head_dim, theta);
    table[t * head_dim + j] = cs.cos;
    table[t * head_dim + pairs + j] = cs.sin;
  }
}

// table: cos [head_dim/2] then sign·sin [head_dim/2], in dynamic shared memory.
__global__ void __launch_bounds__(kThreads)
    rope_kernel(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra, int n_heads,
                int head_dim, float theta, float sign, bool vec) {
  RECLM_DYNAMIC_SHARED(float, table);
  const int64_t t = blockIdx.x;
  const int n_blocks = pos_intra != nullptr ? 2 : 1;
  const int block_dim = head_dim / n_blocks;
  const int half = block_dim / 2;
  const int pairs = head_dim / 2;  // rotary pairs per head, over all rotary blocks
  float* cos_table = table;
  float* sin_table = table + pairs;
  for (int j = static_cast<int>(threadIdx.x); j < pairs; j += kThreads) {
    const CosSin cs = rotary_cos_sin(pos_inter, pos_intra, t, j, head_dim, theta);
    cos_table[j] = cs.cos;
    sin_table[j] = sign * cs.sin;
  }
  __syncthreads();

  const int64_t row = static_cast<int64_t>(n_heads) * head_dim;
  float* const out_row = out + t * row;
  const float* const inp_row = inp + t * row;
  if (vec) {
    const int quads_per_head = pairs / 4;
    const int units = n_heads * quads_per_head;
    for (int u = static_cast<int>(threadIdx.x); u < units; u += kThreads) {
      const int h = u / quads_per_head;
      const int k = (u % quads_per_head) * 4;  // first of 4 pairs; all in one rotary block
      const int base = h * head_dim + k / half * block_dim + k % half;
      const float4 x1 = load4(inp_row + base);
      const float4 x2 = load4(inp_row + base + half);
      const float4 c = *reinterpret_cast<const float4*>(cos_table + k);
      const float4 s = *reinterpret_cast<const float4*>(sin_table + k);
      const Rotated r0 = rotate_pair(x1.x, x2.x, c.x, s.x), r1 = rotate_pair(x1.y, x2.y, c.y, s.y),
                    r2 = rotate_pair(x1.z, x2.z, c.z, s.z), r3 = rotate_pair(x1.w, x2.w, c.w, s.w);
      store4(out_row + base, make_float4(r0.lo, r1.lo, r2.lo, r3.lo));
      store4(out_row + base + half, make_float4(r0.hi, r1.hi, r2.hi, r3.hi));
    }
  } else {
    const int units = n_heads * pairs;
    for (int u = static_cast<int>(threadIdx.x); u < units; u += kThreads) {
      const int h = u / pairs;
      const int k = u % pairs;
      const int base = h * head_dim + k / half * block_dim + k % half;
      const Rotated r = rotate_pair(inp_row[base], inp_row[base + half], cos_table[k], sin_table[k]);
      out_row[base] = r.lo;
      out_row[base + half] = r.hi;
    }
  }
}

cudaError_t rope_rotate(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                        int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta, float sign,
                        cudaStream_t stream) {
  const int64_t n_blocks = pos_intra != nullptr ? 2 : 1;
  if (head_dim < 0 || head_dim % (2 * n_blocks) != 0 || n_tokens < 0 || n_heads < 0)
    return cudaErrorInvalidValue;
  if (n_heads * head_dim > INT32_MAX) return cudaErrorInvalidValue;  // offsets in a row are int
  if (n_tokens == 0 || n_heads == 0 || head_dim == 0) return cudaSuccess;
  const int64_t half = head_dim / n_blocks / 2;
  const bool vec = half % 4 == 0 && unit_aligned(out) && unit_aligned(inp);
  const size_t table_bytes = static_cast<size_t>(head_dim) * sizeof(float);  // cos + sin, head_dim/2 each
  return simt::launch(rope_kernel, dim3(static_cast<unsigned>(n_tokens)), dim3(kThreads), table_bytes, stream, out,
                      inp, pos_inter, pos_intra, static_cast<int>(n_heads), static_cast<int>(head_dim), theta, sign,
                      vec);
}

// The in-place rotation of the fused QKV rows (rope_qk_forward_bf16). Work unit: W rotary pairs
// (pair indices j .. j + W − 1, all in one rotary block) of one q or k head of one token, i.e. the
// values at `off` .. off + W − 1 and off + half .. off + half + W − 1 of the head; W = 4 (two
// 8-byte accesses each way) when half % 4 == 0 and the rows are 8-byte aligned, else 1. A unit
// reads both halves before it writes, and units are disjoint, so the rotation can be in place.
// Units run over the q and k heads of the rows in a grid-stride loop, so a block's threads share
// a token's table row through L1 and no thread idles on a short row (one block per token left
// most threads of a 16-head x 64 row idle: ~45% of the copy bandwidth, measured).
struct QkvShape {
  int n_heads, n_kv_heads, head_dim, half, block_dim;
};

// W bf16 values (as bits) between memory and registers: widened exactly / rounded to nearest even.
template <int W>
__device__ __forceinline__ void load_values(float (&x)[W], const uint16_t* p) {
  if constexpr (W == 4) {
    const float4 v = load4(p);
    x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
  } else {
    x[0] = load1(p);
  }
}
template <int W>
__device__ __forceinline__ void store_values(uint16_t* p, const float (&x)[W]) {
  if constexpr (W == 4) {
    store4(p, make_float4(x[0], x[1], x[2], x[3]));
  } else {
    store1(p, x[0]);
  }
}

// Heads [first_head, first_head + n_rotated) of each row (q's and k's, or k's alone).
template <int W>
__global__ void __launch_bounds__(256)
    rope_qk_kernel(uint16_t* rows, const float* table, int64_t n_tokens, QkvShape shape, int first_head,
                   int n_rotated) {
  const int pairs = shape.head_dim / 2;
  const int units_per_head = pairs / W;
  const int units_per_row = n_rotated * units_per_head;  // v is not rotated
  const int64_t row = static_cast<int64_t>(shape.n_heads + 2 * shape.n_kv_heads) * shape.head_dim;
  const int64_t n = n_tokens * units_per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < n; u += stride) {
    const int64_t t = u / units_per_row;
    const int r = static_cast<int>(u - t * units_per_row);
    const int h = first_head + r / units_per_head;
    const int j = r % units_per_head * W;  // first pair of the unit
    const int off = j / shape.half * shape.block_dim + j % shape.half;
    uint16_t* const x = rows + t * row + static_cast<int64_t>(h) * shape.head_dim + off;
    float x1[W], x2[W], y1[W], y2[W];
    load_values<W>(x1, x);
    load_values<W>(x2, x + shape.half);
    const float* cs = table + t * shape.head_dim + j;  // cos at cs[i], sin at cs[pairs + i]
    for (int i = 0; i < W; ++i) {
      const Rotated rotated = rotate_pair(x1[i], x2[i], cs[i], cs[pairs + i]);
      y1[i] = rotated.lo;
      y2[i] = rotated.hi;
    }
    store_values<W>(x, y1);
    store_values<W>(x + shape.half, y2);
  }
}

}  // namespace

cudaError_t rope_forward(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                         int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta,
                         cudaStream_t stream) {
  return rope_rotate(out, inp, pos_inter, pos_intra, n_tokens, n_heads, head_dim, theta, 1.0f, stream);
}

cudaError_t rope_backward(float* dinp, const float* dout, const int32_t* pos_inter, const int32_t* pos_intra,
                          int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta,
                          cudaStream_t stream) {
  return rope_rotate(dinp, dout, pos_inter, pos_intra, n_tokens, n_heads, head_dim, theta, -1.0f, stream);
}

cudaError_t rope_qk_forward_bf16(__nv_bfloat16* qkv, const float* table, int64_t n_tokens, const QkvHeads& heads,
                                 cudaStream_t stream, bool rotate_q) {
  const int64_t n_blocks = heads.two_d ? 2 : 1;
  const int64_t all_heads = heads.n_heads + 2 * heads.n_kv_heads;
  if (heads.head_dim < 0 || heads.head_dim % (2 * n_blocks) != 0 || n_tokens < 0 || heads.n_heads < 0 ||
      heads.n_kv_heads < 0 || table == nullptr)
    return cudaErrorInvalidValue;
  if (all_heads * heads.head_dim > INT32_MAX) return cudaErrorInvalidValue;  // offsets in a row are int
  const int first_head = rotate_q ? 0 : static_cast<int>(heads.n_heads);
  const int n_rotated = static_cast<int>(heads.n_kv_heads) + (rotate_q ? static_cast<int>(heads.n_heads) : 0);
  if (n_tokens == 0 || n_rotated == 0 || heads.head_dim == 0) return cudaSuccess;
  const int block_dim = static_cast<int>(heads.head_dim / n_blocks);
  const QkvShape shape{static_cast<int>(heads.n_heads), static_cast<int>(heads.n_kv_heads),
                       static_cast<int>(heads.head_dim), block_dim / 2, block_dim};
  uint16_t* rows = bf16_bits_of(qkv);
  constexpr int kQkThreads = 256;
  // units of 4 values: every unit's address is the rows' plus a multiple of 4 values
  const bool vec = shape.half % 4 == 0 && heads.head_dim % 4 == 0 && unit_aligned(rows);
  const int64_t units = n_tokens * n_rotated * (heads.head_dim / 2) / (vec ? 4 : 1);
  const dim3 grid(grid_stride_blocks(units, kQkThreads, 16384));
  if (vec) {
    return simt::launch(rope_qk_kernel<4>, grid, dim3(kQkThreads), 0, stream, rows, table, n_tokens, shape, first_head,
                        n_rotated);
  }
  return simt::launch(rope_qk_kernel<1>, grid, dim3(kQkThreads), 0, stream, rows, table, n_tokens, shape, first_head,
                      n_rotated);
}

cudaError_t rope_table(float* table, const int32_t* pos_inter, const int32_t* pos_intra, int64_t n_tokens,
                       int64_t head_dim, float theta, cudaStream_t stream) {
  const int64_t n_blocks = pos_intra != nullptr ? 2 : 1;
  if (head_dim < 0 || head_dim % (2 * n_blocks) != 0 || n_tokens < 0 || head_dim > INT32_MAX)
    return cudaErrorInvalidValue;
  if (n_tokens == 0 || head_dim == 0) return cudaSuccess;
  constexpr int kTableThreads = 256;
  const int64_t pairs = n_tokens * (head_dim / 2);
  return simt::launch(rope_table_kernel, dim3(grid_stride_blocks(pairs, kTableThreads)), dim3(kTableThreads), 0,
                      stream, table, pos_inter, pos_intra, n_tokens, static_cast<int>(head_dim), theta);
}

}  // namespace reclm::cuda
