// fp32 <-> bf16 conversions, memory-bound elementwise kernels.
//
// Rounding on the bits, exactly as the host (kernels/cuda/bf16_round.h).
//
// fp32 -> bf16: each thread converts units of 8 values, two float4 loads and one 16-byte store,
// when both pointers are 16-byte aligned. bf16 -> fp32: units of 4 values, one 8-byte load and
// one float4 store, so a warp's stores cover one contiguous 512-byte span (the earlier units of
// 8, with two float4 stores per thread at out[2v] and out[2v + 1], half-filled every 32-byte
// sector per store instruction and ran at 0.58 of the copy bandwidth on an H100; the new layout
// is not measured yet). A scalar tail takes the rest (or everything when unaligned).
// Grid-stride loops.
#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kUnit = 8;       // fp32 -> bf16 values per vector unit: 16 bytes of bf16
constexpr int kWidenUnit = 4;  // bf16 -> fp32 values per vector unit: 16 bytes of fp32

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__global__ void __launch_bounds__(kThreads)
    f32_to_bf16_kernel(uint16_t* out, const float* in, int64_t n, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const float4 a = reinterpret_cast<const float4*>(in)[2 * v];
    const float4 b = reinterpret_cast<const float4*>(in)[2 * v + 1];
    reinterpret_cast<uint4*>(out)[v] =
        make_uint4(pack2_bf16(a.x, a.y), pack2_bf16(a.z, a.w), pack2_bf16(b.x, b.y), pack2_bf16(b.z, b.w));
  }
  for (int64_t i = kUnit * n_vec + first; i < n; i += stride)
    out[i] = static_cast<uint16_t>(bf16_bits_rn(in[i]));
}

__global__ void __launch_bounds__(kThreads)
    bf16_to_f32_kernel(float* out, const uint16_t* in, int64_t n, int64_t n_vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (int64_t v = first; v < n_vec; v += stride) {
    const uint2 w = reinterpret_cast<const uint2*>(in)[v];
    reinterpret_cast<float4*>(out)[v] = make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
  }
  for (int64_t i = kWidenUnit * n_vec + first; i < n; i += stride)
    out[i] = __uint_as_float(static_cast<unsigned>(in[i]) << 16);
}

unsigned blocks_for(int64_t n) { return grid_stride_blocks((n + kUnit - 1) / kUnit, kThreads); }

}  // namespace

cudaError_t convert_f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t n_vec = aligned16(out) && aligned16(in) ? n / kUnit : 0;
  return simt::launch(f32_to_bf16_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, stream,
                      reinterpret_cast<uint16_t*>(out), in, n, n_vec);
}

cudaError_t convert_bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t n_vec = aligned16(out) && reinterpret_cast<uintptr_t>(in) % 8 == 0 ? n / kWidenUnit : 0;
  return simt::launch(bf16_to_f32_kernel, dim3(grid_stride_blocks((n + kWidenUnit - 1) / kWidenUnit, kThreads)),
                      dim3(kThreads), 0, stream, out,
                      reinterpret_cast<const uint16_t*>(in), n, n_vec);
}

}  // namespace reclm::cuda
