// Emulator (g++) definitions of the warp intrinsics: shuffles, votes, __syncwarp and the
// sm_80 integer reductions. Each is one rendezvous of the lanes named in `mask`
// (BlockRunner::warp_collective): the calling lane must be in the mask, every lane of the
// mask must reach a collective with the same op, mask and width, and only that warp waits.
// A shuffle from a lane outside the mask returns poison (all bits set), as its value is
// undefined on a GPU.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/simt/block_runner.h"

namespace reclm::simt {

// Operands travel as up to 64 bits: any trivially copyable type of 1..8 bytes (int, float,
// double, __half2, __nv_bfloat162, ...), as CUDA's shuffles accept.
template <typename T>
std::uint64_t to_warp_bits(const T& value) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <typename T>
T from_warp_bits(std::uint64_t bits) {
  T value{};
  std::memcpy(static_cast<void*>(&value), &bits, sizeof(T));
  return value;
}

inline std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, unsigned arg, int width) {
  return current_thread().block->warp_collective(op, mask, value, arg, width);
}

template <typename T>
T warp_shuffle(WarpOp op, unsigned mask, const T& var, unsigned arg, int width) {
  return from_warp_bits<T>(warp_collective(op, mask, to_warp_bits(var), arg, width));
}

}  // namespace reclm::simt

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return ::reclm::simt::warp_shuffle(::reclm::simt::WarpOp::kShflIdx, mask, var, static_cast<unsigned>(src_lane),
                                     width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::reclm::simt::warp_shuffle(::reclm::simt::WarpOp::kShflUp, mask, var, delta, width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::reclm::simt::warp_shuffle(::reclm::simt::WarpOp::kShflDown, mask, var, delta, width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return ::reclm::simt::warp_shuffle(::reclm::simt::WarpOp::kShflXor, mask, var, static_cast<unsigned>(lane_mask),
                                     width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(
      ::reclm::simt::warp_collective(::reclm::simt::WarpOp::kBallot, mask, predicate != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(::reclm::simt::warp_collective(::reclm::simt::WarpOp::kAny, mask, predicate != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(::reclm::simt::warp_collective(::reclm::simt::WarpOp::kAll, mask, predicate != 0, 0, warpSize));
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::reclm::simt::warp_collective(::reclm::simt::WarpOp::kSyncWarp, mask, 0, 0, warpSize);
}

// sm_80 warp reductions (32-bit integers).
inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::reclm::simt::warp_collective(::reclm::simt::WarpOp::kReduceAdd, mask, value, 0, warpSize));
}
inline int __reduce_add_sync(unsigned mask, int value) {
  return static_cast<int>(__reduce_add_sync(mask, static_cast<unsigned>(value)));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(
      ::reclm::simt::warp_collective(::reclm::simt::WarpOp::kReduceMinUnsigned, mask, value, 0, warpSize));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(
      ::reclm::simt::warp_collective(::reclm::simt::WarpOp::kReduceMaxUnsigned, mask, value, 0, warpSize));
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return static_cast<int>(::reclm::simt::warp_collective(::reclm::simt::WarpOp::kReduceMinSigned, mask,
                                                         static_cast<unsigned>(value), 0, warpSize));
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return static_cast<int>(::reclm::simt::warp_collective(::reclm::simt::WarpOp::kReduceMaxSigned, mask,
                                                         static_cast<unsigned>(value), 0, warpSize));
}
