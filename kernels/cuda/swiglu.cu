// SwiGLU forward/backward (fp32), elementwise and memory-bound:
//   out = g · σ(g) · up;   dgate = dout · up · σ(g) · (1 + g · (1 − σ(g))),   dup = dout · g · σ(g)
// σ is evaluated as in kernels/cpu/swiglu.cc from e = exp(−|g|) ∈ (0, 1]: 1/(1 + e) for g >= 0,
// e/(1 + e) for g < 0, so nothing overflows and large |g| saturates cleanly.
//
// Grid-stride loops over float4 units (16-byte loads and stores) when every pointer is 16-byte
// aligned, then a scalar tail for the last n % 4 values (or all values when unaligned). Each
// element is read before it is written by the same thread, so outputs may alias inputs.
#include <initializer_list>

#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 256;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Blocks for n values handled as units of 4: enough for one unit per thread, capped.
unsigned blocks_for(int64_t n) { return grid_stride_blocks((n + 3) / 4, kThreads); }

__device__ __forceinline__ float sigmoid(float g) {
  const float e = expf(-fabsf(g));
  return (g >= 0.0f ? 1.0f : e) / (1.0f + e);
}

__device__ __forceinline__ float swiglu_value(float g, float u) { return g * sigmoid(g) * u; }

// (dgate, dup) for one element.
__device__ __forceinline__ float2 swiglu_grads(float d, float g, float u) {
  const float s = sigmoid(g);
  return make_float2(d * u * s * (1.0f + g * (1.0f - s)), d * g * s);
}

// n_vec float4 units from the start (0 when unaligned), then scalars [4 · n_vec, n).
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t n, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const float4 g = reinterpret_cast<const float4*>(gate)[v];
    const float4 u = reinterpret_cast<const float4*>(up)[v];
    reinterpret_cast<float4*>(out)[v] = make_float4(swiglu_value(g.x, u.x), swiglu_value(g.y, u.y),
                                                    swiglu_value(g.z, u.z), swiglu_value(g.w, u.w));
  }
  for (int64_t i = 4 * n_vec + first; i < n; i += stride) out[i] = swiglu_value(gate[i], up[i]);
}

__global__ void __launch_bounds__(kThreads)
    swiglu_backward_kernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                           int64_t n, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const float4 d = reinterpret_cast<const float4*>(dout)[v];
    const float4 g = reinterpret_cast<const float4*>(gate)[v];
    const float4 u = reinterpret_cast<const float4*>(up)[v];
    const float2 x = swiglu_grads(d.x, g.x, u.x), y = swiglu_grads(d.y, g.y, u.y);
    const float2 z = swiglu_grads(d.z, g.z, u.z), w = swiglu_grads(d.w, g.w, u.w);
    reinterpret_cast<float4*>(dgate)[v] = make_float4(x.x, y.x, z.x, w.x);
    reinterpret_cast<float4*>(dup)[v] = make_float4(x.y, y.y, z.y, w.y);
  }
  for (int64_t i = 4 * n_vec + first; i < n; i += stride) {
    const float2 r = swiglu_grads(dout[i], gate[i], up[i]);
    dgate[i] = r.x;
    dup[i] = r.y;
  }
}

// The trainer's bf16 form: gate_up [rows, 2·cols] holds each row's gate then its up (one GEMM's
// output); out / dout [rows, cols] are contiguous. Element i of out is (row i / cols, column
// i % cols); its gate is at row · 2·cols + column, its up cols further. Units of 4 values when
// cols % 4 == 0 (a unit never crosses a row) and the pointers are 8-byte aligned.
__device__ __forceinline__ int64_t gate_index(int64_t i, int64_t cols) { return i + (i / cols) * cols; }

__global__ void __launch_bounds__(kThreads)
    swiglu_forward_bf16_kernel(uint16_t* out, const uint16_t* gate_up, int64_t n, int64_t cols, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const int64_t at = gate_index(4 * v, cols);
    const float4 g = load4(gate_up + at);
    const float4 u = load4(gate_up + at + cols);
    store4(out + 4 * v, make_float4(swiglu_value(g.x, u.x), swiglu_value(g.y, u.y), swiglu_value(g.z, u.z),
                                    swiglu_value(g.w, u.w)));
  }
  for (int64_t i = 4 * n_vec + first; i < n; i += stride) {
    const int64_t at = gate_index(i, cols);
    store1(out + i, swiglu_value(load1(gate_up + at), load1(gate_up + at + cols)));
  }
}

__global__ void __launch_bounds__(kThreads)
    swiglu_backward_bf16_kernel(uint16_t* dgate_up, const uint16_t* dout, const uint16_t* gate_up, int64_t n,
                                int64_t cols, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const int64_t at = gate_index(4 * v, cols);
    const float4 d = load4(dout + 4 * v);
    const float4 g = load4(gate_up + at);
    const float4 u = load4(gate_up + at + cols);
    const float2 x = swiglu_grads(d.x, g.x, u.x), y = swiglu_grads(d.y, g.y, u.y);
    const float2 z = swiglu_grads(d.z, g.z, u.z), w = swiglu_grads(d.w, g.w, u.w);
    store4(dgate_up + at, make_float4(x.x, y.x, z.x, w.x));
    store4(dgate_up + at + cols, make_float4(x.y, y.y, z.y, w.y));
  }
  for (int64_t i = 4 * n_vec + first; i < n; i += stride) {
    const int64_t at = gate_index(i, cols);
    const float2 r = swiglu_grads(load1(dout + i), load1(gate_up + at), load1(gate_up + at + cols));
    store1(dgate_up + at, r.x);
    store1(dgate_up + at + cols, r.y);
  }
}


// Float4-shaped units of the paired form, or 0 (all scalar).
int64_t paired_units(int64_t rows, int64_t cols, std::initializer_list<const void*> pointers) {
  bool vec = cols % 4 == 0;
  for (const void* p : pointers) vec = vec && reinterpret_cast<uintptr_t>(p) % 8 == 0;
  return vec ? rows * cols / 4 : 0;
}

}  // namespace

cudaError_t swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const bool vec = aligned16(out) && aligned16(gate) && aligned16(up);
  const int64_t n_vec = vec ? n / 4 : 0;
  return simt::launch(swiglu_forward_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream, out, gate, up, n,
                      n_vec);
}

cudaError_t swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                            int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const bool vec = aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up);
  const int64_t n_vec = vec ? n / 4 : 0;
  return simt::launch(swiglu_backward_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream, dgate, dup,
                      dout, gate, up, n, n_vec);
}

cudaError_t swiglu_forward_bf16(__nv_bfloat16* out, const __nv_bfloat16* gate_up, int64_t rows, int64_t cols,
                                cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  const int64_t n = rows * cols;
  return simt::launch(swiglu_forward_bf16_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream, bf16_bits_of(out),
                      bf16_bits_of(gate_up), n, cols, paired_units(rows, cols, {out, gate_up}));
}

cudaError_t swiglu_backward_bf16(__nv_bfloat16* dgate_up, const __nv_bfloat16* dout, const __nv_bfloat16* gate_up,
                                 int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  const int64_t n = rows * cols;
  return simt::launch(swiglu_backward_bf16_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream,
                      bf16_bits_of(dgate_up), bf16_bits_of(dout), bf16_bits_of(gate_up), n, cols,
                      paired_units(rows, cols, {dgate_up, dout, gate_up}));
}

}  // namespace reclm::cuda
