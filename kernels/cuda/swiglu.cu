// SwiGLU forward/backward (fp32), elementwise and memory-bound:
//   out = g · σ(g) · up;   dgate = dout · up · σ(g) · (1 + g · (1 − σ(g))),   dup = dout · g · σ(g)
// σ is evaluated as in kernels/cpu/swiglu.cc from e = exp(−|g|) ∈ (0, 1]: 1/(1 + e) for g >= 0,
// e/(1 + e) for g < 0, so nothing overflows and large |g| saturates cleanly.
//
// Grid-stride loops over float4 units (16-byte loads and stores) when every pointer is 16-byte
// aligned, then a scalar tail for the last n % 4 values (or all values when unaligned). Each
// element is read before it is written by the same thread, so outputs may alias inputs.
#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 256;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

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

// bf16 forms: float4 of gate/up, 4 bf16 (8 bytes) of out / dout / dgate / dup per unit.
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_bf16_kernel(uint16_t* out, const float* gate, const float* up, int64_t n, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const float4 g = reinterpret_cast<const float4*>(gate)[v];
    const float4 u = reinterpret_cast<const float4*>(up)[v];
    reinterpret_cast<uint2*>(out)[v] = make_uint2(pack2_bf16(swiglu_value(g.x, u.x), swiglu_value(g.y, u.y)),
                                                  pack2_bf16(swiglu_value(g.z, u.z), swiglu_value(g.w, u.w)));
  }
  for (int64_t i = 4 * n_vec + first; i < n; i += stride)
    out[i] = static_cast<uint16_t>(bf16_bits_rn(swiglu_value(gate[i], up[i])));
}

__global__ void __launch_bounds__(kThreads)
    swiglu_backward_bf16_kernel(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const float* gate,
                                const float* up, int64_t n, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const uint2 d = reinterpret_cast<const uint2*>(dout)[v];
    const float4 g = reinterpret_cast<const float4*>(gate)[v];
    const float4 u = reinterpret_cast<const float4*>(up)[v];
    const float2 x = swiglu_grads(bf16_lo(d.x), g.x, u.x), y = swiglu_grads(bf16_hi(d.x), g.y, u.y);
    const float2 z = swiglu_grads(bf16_lo(d.y), g.z, u.z), w = swiglu_grads(bf16_hi(d.y), g.w, u.w);
    reinterpret_cast<uint2*>(dgate)[v] = make_uint2(pack2_bf16(x.x, y.x), pack2_bf16(z.x, w.x));
    reinterpret_cast<uint2*>(dup)[v] = make_uint2(pack2_bf16(x.y, y.y), pack2_bf16(z.y, w.y));
  }
  for (int64_t i = 4 * n_vec + first; i < n; i += stride) {
    const float2 r = swiglu_grads(__uint_as_float(static_cast<unsigned>(dout[i]) << 16), gate[i], up[i]);
    dgate[i] = static_cast<uint16_t>(bf16_bits_rn(r.x));
    dup[i] = static_cast<uint16_t>(bf16_bits_rn(r.y));
  }
}

bool aligned8(const void* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; }

// Blocks for n values handled as float4 units: enough for one unit per thread, capped.
unsigned blocks_for(int64_t n) { return grid_stride_blocks((n + 3) / 4, kThreads); }

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

cudaError_t swiglu_forward_bf16(__nv_bfloat16* out, const float* gate, const float* up, int64_t n,
                                cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t n_vec = aligned8(out) && aligned16(gate) && aligned16(up) ? n / 4 : 0;
  return simt::launch(swiglu_forward_bf16_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream,
                      reinterpret_cast<uint16_t*>(out), gate, up, n, n_vec);
}

cudaError_t swiglu_backward_bf16(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                                 const float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const bool vec = aligned8(dgate) && aligned8(dup) && aligned8(dout) && aligned16(gate) && aligned16(up);
  const int64_t n_vec = vec ? n / 4 : 0;
  return simt::launch(swiglu_backward_bf16_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream,
                      reinterpret_cast<uint16_t*>(dgate), reinterpret_cast<uint16_t*>(dup),
                      reinterpret_cast<const uint16_t*>(dout), gate, up, n, n_vec);
}

}  // namespace reclm::cuda
