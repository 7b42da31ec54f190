// fp32 -> bf16 rounding on the bits, for kernels that write bf16 (convert.cu, swiglu.cu, ...), exactly
// as reclm::f32_to_bf16 (runtime/dtype.cc): add 0x7FFF + (lsb of the kept half) and truncate,
// i.e. round to nearest, ties to even (overflow rounds to ±inf, denormals like any other value);
// a NaN keeps its sign and top payload bits and gets the quiet bit (0x0040). Not
// __float2bfloat16_rn: on the GPU it returns the canonical NaN 0x7FFF for every NaN, which would
// differ from the host conversion. bf16 -> fp32 is exact: the 16 bits become the high half.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

__device__ __forceinline__ unsigned bf16_bits_rn(float value) {
  const unsigned bits = __float_as_uint(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return ((bits >> 16) | 0x0040u) & 0xFFFFu;  // NaN: quiet
  return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

// Two bf16 (lo first in memory) in one 32-bit word, and back.
__device__ __forceinline__ unsigned pack2_bf16(float lo, float hi) {
  return bf16_bits_rn(lo) | (bf16_bits_rn(hi) << 16);
}
__device__ __forceinline__ float bf16_lo(unsigned word) { return __uint_as_float(word << 16); }
__device__ __forceinline__ float bf16_hi(unsigned word) { return __uint_as_float(word & 0xFFFF0000u); }

// Elementwise kernels that read or write either fp32 or bf16 (uint16_t bits) arrays: four
// consecutive values (a unit: one 16-byte fp32 or 8-byte bf16 access, so p must be aligned to
// 4 · sizeof(T)) or one value, as fp32; bf16 widened exactly, written rounded to nearest even.
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const uint16_t* p) {
  const uint2 w = *reinterpret_cast<const uint2*>(p);
  return make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(uint16_t* p, float4 v) {
  *reinterpret_cast<uint2*>(p) = make_uint2(pack2_bf16(v.x, v.y), pack2_bf16(v.z, v.w));
}
__device__ __forceinline__ float load1(const float* p) { return *p; }
__device__ __forceinline__ float load1(const uint16_t* p) { return __uint_as_float(static_cast<unsigned>(*p) << 16); }
__device__ __forceinline__ void store1(float* p, float v) { *p = v; }
__device__ __forceinline__ void store1(uint16_t* p, float v) { *p = static_cast<uint16_t>(bf16_bits_rn(v)); }

// A bf16 array as the uint16_t bits the kernels above read and write.
inline uint16_t* bf16_bits_of(__nv_bfloat16* p) { return reinterpret_cast<uint16_t*>(p); }
inline const uint16_t* bf16_bits_of(const __nv_bfloat16* p) { return reinterpret_cast<const uint16_t*>(p); }

// Whether p may be accessed in units of four values.
template <typename T>
bool unit_aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

}  // namespace reclm::cuda
