// The emulator's tensor-core ops (kernels/simt/tensor_core.h), computed once per warp from all
// lanes' registers with the PTX ISA fragment layouts stated there.
#include "kernels/simt/tensor_core.h"

#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/simt/usage_error.h"

namespace reclm::simt {
namespace {

float bf16_bits_to_float(std::uint32_t bits16) { return std::bit_cast<float>(bits16 << 16); }
std::uint32_t low_half(std::uint32_t r) { return r & 0xFFFFu; }
std::uint32_t high_half(std::uint32_t r) { return r >> 16; }

}  // namespace

void compute_mma_m16n8k16_bf16_f32(void* const* lanes, unsigned /*mask: the full warp*/) {
  float a[16][16], b[16][8], c[16][8];
  for (int lane = 0; lane < kWarpSize; ++lane) {
    const MmaLane& in = *static_cast<const MmaLane*>(lanes[lane]);
    const int g = lane / 4, t = lane % 4;
    for (int j = 0; j < 2; ++j) {
      const auto half = [j](std::uint32_t r) { return bf16_bits_to_float(j == 0 ? low_half(r) : high_half(r)); };
      a[g][2 * t + j] = half(in.a[0]);
      a[g + 8][2 * t + j] = half(in.a[1]);
      a[g][2 * t + 8 + j] = half(in.a[2]);
      a[g + 8][2 * t + 8 + j] = half(in.a[3]);
      b[2 * t + j][g] = half(in.b[0]);
      b[2 * t + 8 + j][g] = half(in.b[1]);
      c[g][2 * t + j] = in.c[j];
      c[g + 8][2 * t + j] = in.c[2 + j];
    }
  }
  for (int lane = 0; lane < kWarpSize; ++lane) {
    MmaLane& out = *static_cast<MmaLane*>(lanes[lane]);
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
      float sum = c[row][col];
      for (int k = 0; k < 16; ++k) sum += a[row][k] * b[k][col];  // bf16 x bf16 is exact in f32
      out.d[i] = sum;
    }
  }
}

template <int kMatrices, bool kTranspose>
void compute_ldmatrix(void* const* lanes, unsigned /*mask: the full warp*/) {
  for (int m = 0; m < kMatrices; ++m) {
    std::uint16_t matrix[8][8];
    for (int r = 0; r < 8; ++r) {
      const void* row = static_cast<const LdmatrixLane*>(lanes[8 * m + r])->row_address;
      RECLM_SIMT_CHECK(reinterpret_cast<std::uintptr_t>(row) % 16 == 0,
                  "ldmatrix: lane {} passed row address {} that is not 16-byte aligned", 8 * m + r, row);
      RECLM_SIMT_CHECK(is_block_shared_memory(row, 16),
                  "ldmatrix: lane {} passed row address {} outside the block's shared memory", 8 * m + r, row);
      std::memcpy(matrix[r], row, 16);
    }
    for (int lane = 0; lane < kWarpSize; ++lane) {
      const int g = lane / 4, t = lane % 4;
      const std::uint32_t lo = kTranspose ? matrix[2 * t][g] : matrix[g][2 * t];
      const std::uint32_t hi = kTranspose ? matrix[2 * t + 1][g] : matrix[g][2 * t + 1];
      static_cast<LdmatrixLane*>(lanes[lane])->r[m] = lo | (hi << 16);
    }
  }
}

template void compute_ldmatrix<1, false>(void* const*, unsigned);
template void compute_ldmatrix<2, false>(void* const*, unsigned);
template void compute_ldmatrix<4, false>(void* const*, unsigned);
template void compute_ldmatrix<1, true>(void* const*, unsigned);
template void compute_ldmatrix<2, true>(void* const*, unsigned);
template void compute_ldmatrix<4, true>(void* const*, unsigned);

}  // namespace reclm::simt
