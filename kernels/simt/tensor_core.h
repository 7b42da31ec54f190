// Tensor-core wrappers for both targets: the bf16 MMA and the shared-memory matrix loads our
// attention and GEMM kernels are built from.
//
//   mma_m16n8k16_bf16_f32(d, a, b, c)   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
//                                        D (16x8, f32) = A (16x16, bf16) * B (16x8, bf16) + C
//   ldmatrix_x{1,2,4}(r, row_address)    ldmatrix.sync.aligned.m8n8.x{1,2,4}.shared.b16
//   ldmatrix_x{1,2,4}_trans(r, row_address)              ... .trans
//   ldmatrix<kMatrices, kTranspose>(r, row_address)      the same, by template arguments
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" and
// "ldmatrix"), with g = lane / 4 and t = lane % 4; a register holds two 16-bit elements, the
// lower-indexed one in its low half:
//   A: a[0] = A[g][2t..2t+1]     a[1] = A[g+8][2t..2t+1]
//      a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//   B: b[0] = B[2t..2t+1][g]     b[1] = B[2t+8..2t+9][g]        (B is K x N; "col" operand)
//   C, D: c[0..1] = C[g][2t..2t+1]   c[2..3] = C[g+8][2t..2t+1]
//   ldmatrix: matrix m (0..num-1) is 8 rows of 8 16-bit elements; lane 8m + r passes the
//      address of its row r (16-byte aligned, in shared memory; other lanes' addresses are
//      ignored). Lane L receives r[m] = M[g][2t..2t+1], or with .trans M[2t][g], M[2t+1][g].
//   So ldmatrix_x4 over the four 8x8 quarters of a row-major A tile (lane L: row L % 8 +
//   8 * ((L / 8) % 2), column 8 * (L / 16)) yields a[0..3], and ldmatrix_x2_trans over a
//   row-major K x N B tile (lane L < 16: row L) yields b[0..1].
//
// All 32 lanes of the warp must call the same wrapper together (`.sync.aligned`); the emulator
// checks it and computes each op once per warp from all lanes' registers. The emulator's MMA
// accumulates the 16 products of each output in order in f32 (exact bf16 x bf16 products); a
// GPU's order and rounding differ slightly, so tests compare with a tolerance.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::simt {

#if defined(__CUDACC__)

__device__ __forceinline__ void ldmatrix_x1(std::uint32_t (&r)[1], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(shared_address(row_address)));
}
__device__ __forceinline__ void ldmatrix_x2(std::uint32_t (&r)[2], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row_address)));
}
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row_address)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(std::uint32_t (&r)[1], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0])
               : "r"(shared_address(row_address)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(std::uint32_t (&r)[2], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row_address)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row_address)));
}

// ldmatrix<kMatrices, kTranspose>: the six wrappers above by template arguments.
template <int kMatrices, bool kTranspose>
__device__ __forceinline__ void ldmatrix(std::uint32_t (&r)[kMatrices], const void* row_address) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
  if constexpr (kMatrices == 1 && !kTranspose) ldmatrix_x1(r, row_address);
  if constexpr (kMatrices == 2 && !kTranspose) ldmatrix_x2(r, row_address);
  if constexpr (kMatrices == 4 && !kTranspose) ldmatrix_x4(r, row_address);
  if constexpr (kMatrices == 1 && kTranspose) ldmatrix_x1_trans(r, row_address);
  if constexpr (kMatrices == 2 && kTranspose) ldmatrix_x2_trans(r, row_address);
  if constexpr (kMatrices == 4 && kTranspose) ldmatrix_x4_trans(r, row_address);
}

__device__ __forceinline__ void mma_m16n8k16_bf16_f32(float (&d)[4], const std::uint32_t (&a)[4],
                                                      const std::uint32_t (&b)[2], const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

#else  // the emulator

// One lane's operands and results, on its fiber stack while the warp meets.
struct LdmatrixLane {
  const void* row_address;
  std::uint32_t r[4];
};
struct MmaLane {
  std::uint32_t a[4];
  std::uint32_t b[2];
  float c[4];
  float d[4];
};

void compute_mma_m16n8k16_bf16_f32(void* const* lanes, unsigned mask);
template <int kMatrices, bool kTranspose>
void compute_ldmatrix(void* const* lanes, unsigned mask);
extern template void compute_ldmatrix<1, false>(void* const*, unsigned);
extern template void compute_ldmatrix<2, false>(void* const*, unsigned);
extern template void compute_ldmatrix<4, false>(void* const*, unsigned);
extern template void compute_ldmatrix<1, true>(void* const*, unsigned);
extern template void compute_ldmatrix<2, true>(void* const*, unsigned);
extern template void compute_ldmatrix<4, true>(void* const*, unsigned);

inline void warp_compute(void* lane_data, WarpComputeFn compute) {
  current_thread().block->warp_collective(WarpOp::kWarpCompute, 0xffffffffu,
                                          static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(lane_data)), 0,
                                          kWarpSize, compute);
}

template <int kMatrices, bool kTranspose>
void ldmatrix(std::uint32_t (&r)[kMatrices], const void* row_address) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
  LdmatrixLane lane{row_address, {}};
  warp_compute(&lane, compute_ldmatrix<kMatrices, kTranspose>);
  for (int m = 0; m < kMatrices; ++m) r[m] = lane.r[m];
}

inline void ldmatrix_x1(std::uint32_t (&r)[1], const void* row_address) { ldmatrix<1, false>(r, row_address); }
inline void ldmatrix_x2(std::uint32_t (&r)[2], const void* row_address) { ldmatrix<2, false>(r, row_address); }
inline void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_address) { ldmatrix<4, false>(r, row_address); }
inline void ldmatrix_x1_trans(std::uint32_t (&r)[1], const void* row_address) { ldmatrix<1, true>(r, row_address); }
inline void ldmatrix_x2_trans(std::uint32_t (&r)[2], const void* row_address) { ldmatrix<2, true>(r, row_address); }
inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* row_address) { ldmatrix<4, true>(r, row_address); }

inline void mma_m16n8k16_bf16_f32(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                                  const float (&c)[4]) {
  MmaLane lane{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}, {}};
  warp_compute(&lane, compute_mma_m16n8k16_bf16_f32);
  for (int i = 0; i < 4; ++i) d[i] = lane.d[i];
}

#endif

}  // namespace reclm::simt
