// Asynchronous global -> shared copies (sm_80 cp.async) for both targets: the staging step of
// pipelined GEMM and attention kernels.
//
//   cp_async_16(dst, src)                   cp.async.cg.shared.global [dst], [src], 16
//   cp_async_16_zfill(dst, src, src_bytes)  ... 16, src_bytes: copies src_bytes (0..16) bytes
//                                           and zero-fills the rest (the tail of a row)
//   cp_async_commit()                       cp.async.commit_group: closes a group of copies
//   cp_async_wait<N>()                      cp.async.wait_group N: all but the N most recent
//                                           committed groups of this thread have landed
//   cp_async_wait_all()                     cp.async.wait_all: commit, then wait for all
//
// dst must be 16-byte aligned shared memory, src 16-byte aligned global memory. As on a GPU,
// a copy is visible to the issuing thread after its wait, and to other threads after the wait
// and a barrier. The emulator performs a copy only at that wait (or when the thread exits), so
// reading the destination earlier returns the poison or stale data that is there: a missing
// wait, or a wait for too few groups, shows as a wrong result.
#pragma once

#include "kernels/simt/cuda_compat.h"

namespace reclm::simt {

#if defined(__CUDACC__)

__device__ __forceinline__ void cp_async_16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_16_zfill(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPendingGroups>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPendingGroups) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

#else  // the emulator

void issue_async_copy(void* dst, const void* src, int src_bytes);
void commit_async_copies();
void wait_async_copies(int pending_groups);

inline void cp_async_16(void* dst, const void* src) { issue_async_copy(dst, src, 16); }
inline void cp_async_16_zfill(void* dst, const void* src, int src_bytes) { issue_async_copy(dst, src, src_bytes); }
inline void cp_async_commit() { commit_async_copies(); }
template <int kPendingGroups>
void cp_async_wait() {
  static_assert(kPendingGroups >= 0, "cp.async.wait_group takes a count >= 0");
  wait_async_copies(kPendingGroups);
}
inline void cp_async_wait_all() {
  commit_async_copies();
  wait_async_copies(0);
}

#endif

}  // namespace reclm::simt
