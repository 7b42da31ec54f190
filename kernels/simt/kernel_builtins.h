// Emulator (g++) definitions of CUDA's built-in variables, qualifiers, block barrier and the
// device math and bit intrinsics our kernels use. Included by kernels/simt/cuda_compat.h only
// when not compiling with nvcc; the CUDA headers it includes are host-safe (vector types,
// dim3, __nv_bfloat16 and __half with their host conversions and operators).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>  // the C math functions kernels call unqualified: expf, fmaxf, sincosf, ...

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/simt/block_runner.h"

// Qualifiers: the CUDA headers already define __global__, __device__, __host__, __forceinline__
// and __align__ for a host compiler; __restrict__ is a g++ keyword.
#define __launch_bounds__(...)

// Plain `__shared__` is refused: a static shared array must be declared with RECLM_SHARED and
// dynamic shared memory with RECLM_DYNAMIC_SHARED, so that the emulator can poison it at every
// block start (kernels/simt/cuda_compat.h).
#undef __shared__
#define __shared__ RECLM_SIMT_declare_shared_memory_with_RECLM_SHARED_or_RECLM_DYNAMIC_SHARED

namespace reclm::simt {
inline const uint3& thread_index() { return current_thread().thread_idx; }
inline const uint3& block_index() { return current_thread().block->block_idx(); }
inline const dim3& block_dimensions() { return current_thread().block->block_dim(); }
inline const dim3& grid_dimensions() { return current_thread().block->grid_dim(); }
}  // namespace reclm::simt

// Per-fiber built-ins: each reads the context of the thread whose fiber is running.
#define threadIdx (::reclm::simt::thread_index())
#define blockIdx (::reclm::simt::block_index())
#define blockDim (::reclm::simt::block_dimensions())
#define gridDim (::reclm::simt::grid_dimensions())
inline constexpr int warpSize = ::reclm::simt::kWarpSize;

// Block barrier. Every thread of the block must reach it (see BlockRunner::barrier).
inline void __syncthreads() { ::reclm::simt::current_thread().block->barrier(1); }
inline int __syncthreads_count(int predicate) {
  return ::reclm::simt::current_thread().block->barrier(predicate);
}
inline int __syncthreads_or(int predicate) { return __syncthreads_count(predicate) != 0; }
inline int __syncthreads_and(int predicate) {
  const dim3& b = ::reclm::simt::block_dimensions();
  return __syncthreads_count(predicate) == static_cast<int>(b.x * b.y * b.z);
}

[[noreturn]] inline void __trap() { ::reclm::simt::trap_called(); }

// Fences: fibers of a block share one OS thread, blocks may run on several. Like atomics,
// fences are scheduling points (atomics.h), for the flag-and-fence patterns they serve.
inline void __threadfence_block() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  ::reclm::simt::atomic_scheduling_point();
}
inline void __threadfence() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  ::reclm::simt::atomic_scheduling_point();
}
inline void __threadfence_system() { __threadfence(); }

// Cache-hinted loads and stores are plain accesses on the host.
template <typename T> inline T __ldg(const T* p) { return *p; }
template <typename T> inline T __ldcg(const T* p) { return *p; }
template <typename T> inline T __ldcs(const T* p) { return *p; }
template <typename T> inline T __ldlu(const T* p) { return *p; }
template <typename T> inline void __stcg(T* p, T value) { *p = value; }
template <typename T> inline void __stcs(T* p, T value) { *p = value; }
template <typename T> inline void __stwt(T* p, T value) { *p = value; }

// Fast-math intrinsics: the exact host function. The GPU versions are approximate (a few ulp);
// tests compare against references with tolerances anyway.
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
// CUDA never fuses the _rn intrinsics into a multiply-add; g++ (-ffp-contract=fast, FMA under
// -march=native) would, once they are inlined into an expression. The empty asm makes the rounded
// result a value the compiler must produce as such.
inline float simt_rounded_result(float r) {
#if defined(__x86_64__)
  asm("" : "+x"(r));
#elif defined(__aarch64__)
  asm("" : "+w"(r));
#else
  volatile float v = r;
  r = v;
#endif
  return r;
}
inline float __fadd_rn(float x, float y) { return simt_rounded_result(x + y); }
inline float __fmul_rn(float x, float y) { return simt_rounded_result(x * y); }
inline float __fmaf_rn(float x, float y, float z) { return std::fma(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }  // NaN -> 0

// Bit reinterpretation and bit counting.
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}

// CUDA's global min/max overloads (same-type operands; mixed types need a cast, as they
// would to avoid CUDA's silent signed -> unsigned promotion).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
