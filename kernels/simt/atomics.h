// Emulator (g++) definitions of CUDA's atomic functions. Blocks run in parallel on several OS
// threads, so every atomic is a real std::atomic_ref read-modify-write (sequentially
// consistent, stronger than CUDA's relaxed device-scope atomics). Each is also a scheduling
// point (atomic_scheduling_point): another thread of the block may run just before it, so the
// order of atomics between barriers follows the seeded schedule and a spin loop on an atomic
// lets the thread it waits for run. Each returns the old value, as CUDA's do.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <bit>
#include <cstdint>

#include "kernels/simt/block_runner.h"

namespace reclm::simt {

template <typename T, typename Update>
T atomic_update(T* address, Update update) {  // CAS loop: *address = update(old)
  atomic_scheduling_point();
  std::atomic_ref<T> target(*address);
  T old = target.load();
  while (!target.compare_exchange_weak(old, update(old))) {
  }
  return old;
}

// 16-bit floats: a CAS loop on their bits, the update done in float (as the hardware rounds).
template <typename Half, typename ToFloat, typename FromFloat>
Half atomic_add_16bit(Half* address, Half value, ToFloat to_float, FromFloat from_float) {
  static_assert(sizeof(Half) == 2);
  auto* bits = reinterpret_cast<std::uint16_t*>(address);
  const std::uint16_t old = atomic_update(bits, [&](std::uint16_t b) {
    return std::bit_cast<std::uint16_t>(from_float(to_float(std::bit_cast<Half>(b)) + to_float(value)));
  });
  return std::bit_cast<Half>(old);
}

}  // namespace reclm::simt

#define RECLM_SIMT_ATOMIC_FETCH(name, op, type)                  \
  inline type name(type* address, type value) {                  \
    ::reclm::simt::atomic_scheduling_point();                    \
    return std::atomic_ref<type>(*address).op(value);            \
  }

RECLM_SIMT_ATOMIC_FETCH(atomicAdd, fetch_add, int)
RECLM_SIMT_ATOMIC_FETCH(atomicAdd, fetch_add, unsigned)
RECLM_SIMT_ATOMIC_FETCH(atomicAdd, fetch_add, unsigned long long)
RECLM_SIMT_ATOMIC_FETCH(atomicAdd, fetch_add, float)
RECLM_SIMT_ATOMIC_FETCH(atomicAdd, fetch_add, double)
RECLM_SIMT_ATOMIC_FETCH(atomicSub, fetch_sub, int)
RECLM_SIMT_ATOMIC_FETCH(atomicSub, fetch_sub, unsigned)
RECLM_SIMT_ATOMIC_FETCH(atomicAnd, fetch_and, int)
RECLM_SIMT_ATOMIC_FETCH(atomicAnd, fetch_and, unsigned)
RECLM_SIMT_ATOMIC_FETCH(atomicAnd, fetch_and, unsigned long long)
RECLM_SIMT_ATOMIC_FETCH(atomicOr, fetch_or, int)
RECLM_SIMT_ATOMIC_FETCH(atomicOr, fetch_or, unsigned)
RECLM_SIMT_ATOMIC_FETCH(atomicOr, fetch_or, unsigned long long)
RECLM_SIMT_ATOMIC_FETCH(atomicXor, fetch_xor, int)
RECLM_SIMT_ATOMIC_FETCH(atomicXor, fetch_xor, unsigned)
RECLM_SIMT_ATOMIC_FETCH(atomicXor, fetch_xor, unsigned long long)
RECLM_SIMT_ATOMIC_FETCH(atomicExch, exchange, int)
RECLM_SIMT_ATOMIC_FETCH(atomicExch, exchange, unsigned)
RECLM_SIMT_ATOMIC_FETCH(atomicExch, exchange, unsigned long long)
RECLM_SIMT_ATOMIC_FETCH(atomicExch, exchange, float)
#undef RECLM_SIMT_ATOMIC_FETCH

#define RECLM_SIMT_ATOMIC_MIN_MAX(type)                                                             \
  inline type atomicMin(type* address, type value) {                                                \
    return ::reclm::simt::atomic_update(address, [value](type old) { return value < old ? value : old; }); \
  }                                                                                                 \
  inline type atomicMax(type* address, type value) {                                                \
    return ::reclm::simt::atomic_update(address, [value](type old) { return value > old ? value : old; }); \
  }
RECLM_SIMT_ATOMIC_MIN_MAX(int)
RECLM_SIMT_ATOMIC_MIN_MAX(unsigned)
RECLM_SIMT_ATOMIC_MIN_MAX(long long)
RECLM_SIMT_ATOMIC_MIN_MAX(unsigned long long)
#undef RECLM_SIMT_ATOMIC_MIN_MAX

#define RECLM_SIMT_ATOMIC_CAS(type)                                            \
  inline type atomicCAS(type* address, type compare, type value) {            \
    ::reclm::simt::atomic_scheduling_point();                                 \
    std::atomic_ref<type>(*address).compare_exchange_strong(compare, value);  \
    return compare; /* the old value, whether or not it was swapped */        \
  }
RECLM_SIMT_ATOMIC_CAS(int)
RECLM_SIMT_ATOMIC_CAS(unsigned)
RECLM_SIMT_ATOMIC_CAS(unsigned long long)
RECLM_SIMT_ATOMIC_CAS(unsigned short)
#undef RECLM_SIMT_ATOMIC_CAS

// atomicInc/atomicDec: CUDA's wrapping counters.
inline unsigned atomicInc(unsigned* address, unsigned limit) {
  return ::reclm::simt::atomic_update(address, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* address, unsigned limit) {
  return ::reclm::simt::atomic_update(address,
                                      [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1; });
}

inline __nv_bfloat16 atomicAdd(__nv_bfloat16* address, __nv_bfloat16 value) {
  return ::reclm::simt::atomic_add_16bit(
      address, value, [](__nv_bfloat16 x) { return __bfloat162float(x); },
      [](float x) { return __float2bfloat16_rn(x); });
}
inline __half atomicAdd(__half* address, __half value) {
  return ::reclm::simt::atomic_add_16bit(
      address, value, [](__half x) { return __half2float(x); }, [](float x) { return __float2half_rn(x); });
}
