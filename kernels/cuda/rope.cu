// RoPE forward/backward (fp32), the rotation of kernels/cpu/rope.cc:
//   out[i]        = x[i] · cos − x[i + half] · sin
//   out[i + half] = x[i + half] · cos + x[i] · sin
// within each rotary block of block_dim = head_dim / n_blocks (n_blocks 1, or 2 for ChatGLM 2D
// positions), half = block_dim / 2, angle = pos · θ^(-2i/block_dim); backward negates sin.
//
// One block per token. Its threads first build the token's table of head_dim/2 (cos, sin)
// pairs in shared memory — angle and trig in double, rounded to fp32, exactly as the reference
// does (pos · freq reaches thousands of radians, where an fp32 angle is off by ~1e-4) — then
// rotate every head with it, so trig is done once per (token, rotary value), never per head.
// The bf16 forms can instead read the (cos, sin) from a table of the whole micro-batch made once
// by rope_table (the same values): positions do not change between layers, so the trainer's
// 2 · n_layers rotations each way skip the trig.
// Rotation: each thread takes a unit of 4 pairs (two 4-value loads, two 4-value stores) when
// half % 4 == 0 and the pointers are aligned to a unit, else one pair. The bf16 forms read and
// write bf16 around the same fp32 rotation, and take token rows with a stride (q and k inside the
// fused QKV projection's rows). A unit reads both halves of its pairs before writing, and units
// are disjoint, so out may alias inp (with equal strides).
#include "kernels/cuda/rope.h"

#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/launch_config.h"
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

// table: cos [head_dim/2] then sign·sin [head_dim/2], in dynamic shared memory: from
// rope_table's row of the token when given (table_in), else computed here.
// In / Out: float or uint16_t (bf16 bits); the rotation itself is fp32 either way.
template <typename Out, typename In>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(Out* out, const In* inp, const int32_t* pos_inter, const int32_t* pos_intra, int n_heads,
                int head_dim, int64_t out_stride, int64_t inp_stride, float theta, float sign, bool vec,
                const float* table_in) {
  RECLM_DYNAMIC_SHARED(float, table);
  const int64_t t = blockIdx.x;
  const int n_blocks = pos_intra != nullptr ? 2 : 1;
  const int block_dim = head_dim / n_blocks;
  const int half = block_dim / 2;
  const int pairs = head_dim / 2;  // rotary pairs per head, over all rotary blocks
  float* cos_table = table;
  float* sin_table = table + pairs;
  for (int j = static_cast<int>(threadIdx.x); j < pairs; j += kThreads) {
    const CosSin cs = table_in != nullptr ? CosSin{table_in[t * head_dim + j], table_in[t * head_dim + pairs + j]}
                                          : rotary_cos_sin(pos_inter, pos_intra, t, j, head_dim, theta);
    cos_table[j] = cs.cos;
    sin_table[j] = sign * cs.sin;
  }
  __syncthreads();

  Out* const out_row = out + t * out_stride;
  const In* const inp_row = inp + t * inp_stride;
  if (vec) {
    const int quads_per_head = pairs / 4;
    const int units = n_heads * quads_per_head;
    for (int u = static_cast<int>(threadIdx.x); u < units; u += kThreads) {
      const int h = u / quads_per_head;
      const int k = (u % quads_per_head) * 4;  // first of 4 pairs; all in one rotary block
      const int b = k / half;
      const int i = k % half;
      const int base = h * head_dim + b * block_dim + i;
      const float4 x1 = load4(inp_row + base);
      const float4 x2 = load4(inp_row + base + half);
      const float4 c = *reinterpret_cast<const float4*>(cos_table + k);
      const float4 s = *reinterpret_cast<const float4*>(sin_table + k);
      store4(out_row + base, make_float4(x1.x * c.x - x2.x * s.x, x1.y * c.y - x2.y * s.y,
                                         x1.z * c.z - x2.z * s.z, x1.w * c.w - x2.w * s.w));
      store4(out_row + base + half, make_float4(x2.x * c.x + x1.x * s.x, x2.y * c.y + x1.y * s.y,
                                            x2.z * c.z + x1.z * s.z, x2.w * c.w + x1.w * s.w));
    }
  } else {
    const int units = n_heads * pairs;
    for (int u = static_cast<int>(threadIdx.x); u < units; u += kThreads) {
      const int h = u / pairs;
      const int k = u % pairs;
      const int b = k / half;
      const int i = k % half;
      const int base = h * head_dim + b * block_dim + i;
      const float x1 = load1(inp_row + base);
      const float x2 = load1(inp_row + base + half);
      store1(out_row + base, x1 * cos_table[k] - x2 * sin_table[k]);
      store1(out_row + base + half, x2 * cos_table[k] + x1 * sin_table[k]);
    }
  }
}

// Token rows of out_stride / inp_stride values (0: n_heads · head_dim, contiguous).
template <typename Out, typename In>
cudaError_t rope_rotate(Out* out, const In* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                        int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta, float sign,
                        cudaStream_t stream, int64_t out_stride = 0, int64_t inp_stride = 0,
                        const float* table = nullptr) {
  const int64_t n_blocks = pos_intra != nullptr ? 2 : 1;
  if (head_dim < 0 || head_dim % (2 * n_blocks) != 0 || n_tokens < 0 || n_heads < 0)
    return cudaErrorInvalidValue;
  if (n_heads * head_dim > INT32_MAX) return cudaErrorInvalidValue;  // offsets in a row are int
  const int64_t row = n_heads * head_dim;
  if (out_stride == 0) out_stride = row;
  if (inp_stride == 0) inp_stride = row;
  if (out_stride < row || inp_stride < row) return cudaErrorInvalidValue;
  if (n_tokens == 0 || n_heads == 0 || head_dim == 0) return cudaSuccess;
  const int64_t half = head_dim / n_blocks / 2;
  const bool vec =
      half % 4 == 0 && out_stride % 4 == 0 && inp_stride % 4 == 0 && unit_aligned(out) && unit_aligned(inp);
  const size_t table_bytes = static_cast<size_t>(head_dim) * sizeof(float);  // cos + sin, head_dim/2 each
  return simt::launch(rope_kernel<Out, In>, dim3(static_cast<unsigned>(n_tokens)), dim3(kThreads), table_bytes,
                      stream, out, inp, pos_inter, pos_intra, static_cast<int>(n_heads), static_cast<int>(head_dim),
                      out_stride, inp_stride, theta, sign, vec, table);
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

cudaError_t rope_forward_bf16(__nv_bfloat16* out, const __nv_bfloat16* inp, const int32_t* pos_inter,
                              const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                              float theta, cudaStream_t stream, int64_t inp_stride, const float* table) {
  return rope_rotate(bf16_bits_of(out), bf16_bits_of(inp), pos_inter, pos_intra, n_tokens, n_heads, head_dim,
                     theta, 1.0f, stream, 0, inp_stride, table);
}

cudaError_t rope_backward_bf16(__nv_bfloat16* dinp, const __nv_bfloat16* dout, const int32_t* pos_inter,
                               const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                               float theta, cudaStream_t stream, int64_t dinp_stride, const float* table) {
  return rope_rotate(bf16_bits_of(dinp), bf16_bits_of(dout), pos_inter, pos_intra, n_tokens, n_heads, head_dim,
                     theta, -1.0f, stream, dinp_stride, 0, table);
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
