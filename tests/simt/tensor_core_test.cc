// Tensor-core wrappers on the emulator: ldmatrix (x1/x2/x4, plain and .trans) hands each lane
// the elements the PTX ISA layout names; mma.m16n8k16 with register fragments filled by the
// documented formulas equals a plain matrix product; and a tiled bf16 GEMM built from
// ldmatrix + mma over odd tile counts matches a double-precision loop.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/simt/tensor_core.h"
#include "simt/demo_kernels.h"
#include "simt/simt_test_util.h"
#include "thrown_message.h"

namespace reclm::simt {
namespace {

// tile[r][c] = 16-bit value r * 16 + c + 1 of a 16 x 16 tile (4 quarters of 8 x 8).
// Each lane loads with row address `row_of_lane(lane)` and writes its registers to out[lane].
template <int kMatrices, bool kTranspose>
__global__ void ldmatrix_kernel(const std::uint16_t* tile, std::uint32_t* out) {
  RECLM_SHARED(std::uint16_t, staged, [16 * 16]);
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) staged[i] = tile[i];
  __syncwarp();
  // Lane 8m + r points at row r of matrix m; matrix m is quarter m: rows 8 * (m % 2), cols 8 * (m / 2).
  const int m = lane / 8, r = lane % 8;
  const std::uint16_t* row = &staged[(r + 8 * (m % 2)) * 16 + 8 * (m / 2)];
  std::uint32_t regs[kMatrices];
  ldmatrix<kMatrices, kTranspose>(regs, row);
  for (int i = 0; i < kMatrices; ++i) out[lane * 4 + i] = regs[i];
}

template <int kMatrices, bool kTranspose>
void check_ldmatrix() {
  std::vector<std::uint16_t> tile(256);
  for (int i = 0; i < 256; ++i) tile[i] = static_cast<std::uint16_t>(i + 1);
  DeviceBuffer<std::uint16_t> d_tile(tile);
  DeviceBuffer<std::uint32_t> out(32 * 4);
  launch(ldmatrix_kernel<kMatrices, kTranspose>, dim3(1), dim3(32), 0, nullptr, d_tile.data(), out.data());
  const std::vector<std::uint32_t> got = out.download();
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int m = 0; m < kMatrices; ++m) {
      const auto element = [&](int row, int col) {  // of matrix m
        return static_cast<std::uint32_t>(tile[(row + 8 * (m % 2)) * 16 + col + 8 * (m / 2)]);
      };
      const std::uint32_t lo = kTranspose ? element(2 * t, g) : element(g, 2 * t);
      const std::uint32_t hi = kTranspose ? element(2 * t + 1, g) : element(g, 2 * t + 1);
      EXPECT_EQ(got[lane * 4 + m], lo | (hi << 16)) << "lane " << lane << " matrix " << m;
    }
  }
}

TEST(SimtTensorCore, LdmatrixGivesEachLaneItsDocumentedElements) {
  check_ldmatrix<1, false>();
  check_ldmatrix<2, false>();
  check_ldmatrix<4, false>();
  check_ldmatrix<1, true>();
  check_ldmatrix<2, true>();
  check_ldmatrix<4, true>();
}

__device__ std::uint32_t pack_pair(const __nv_bfloat16* p) {  // p[0] low half, p[1] high half
  std::uint32_t bits;
  memcpy(&bits, p, 4);
  return bits;
}

// D = A * B + C for one tile with fragments read from global memory by the documented formulas
// (A 16x16 row-major, B 16x8 row-major, C and D 16x8 row-major f32).
__global__ void mma_from_formulas_kernel(const __nv_bfloat16* a, const __nv_bfloat16* b, const float* c, float* d) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  std::uint32_t af[4] = {pack_pair(&a[g * 16 + 2 * t]), pack_pair(&a[(g + 8) * 16 + 2 * t]),
                         pack_pair(&a[g * 16 + 2 * t + 8]), pack_pair(&a[(g + 8) * 16 + 2 * t + 8])};
  __nv_bfloat16 b0[2] = {b[(2 * t) * 8 + g], b[(2 * t + 1) * 8 + g]};
  __nv_bfloat16 b1[2] = {b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g]};
  std::uint32_t bf[2] = {pack_pair(b0), pack_pair(b1)};
  float cf[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  float df[4];
  mma_m16n8k16_bf16_f32(df, af, bf, cf);
  d[g * 8 + 2 * t] = df[0];
  d[g * 8 + 2 * t + 1] = df[1];
  d[(g + 8) * 8 + 2 * t] = df[2];
  d[(g + 8) * 8 + 2 * t + 1] = df[3];
}

std::vector<__nv_bfloat16> random_bf16(std::size_t n, std::uint64_t seed) {
  std::vector<__nv_bfloat16> values(n);
  const std::vector<float> f = testing::random_floats(n, seed);
  for (std::size_t i = 0; i < n; ++i) values[i] = __float2bfloat16(f[i]);
  return values;
}

TEST(SimtTensorCore, MmaOnDocumentedFragmentsEqualsMatrixProduct) {
  const std::vector<__nv_bfloat16> a = random_bf16(16 * 16, 81), b = random_bf16(16 * 8, 82);
  const std::vector<float> c = testing::random_floats(16 * 8, 83);
  DeviceBuffer<__nv_bfloat16> d_a(a), d_b(b);
  DeviceBuffer<float> d_c(c), d_d(16 * 8);
  launch(mma_from_formulas_kernel, dim3(1), dim3(32), 0, nullptr, d_a.data(), d_b.data(), d_c.data(), d_d.data());
  const std::vector<float> d = d_d.download();
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      double expected = c[i * 8 + j];
      for (int k = 0; k < 16; ++k) expected += double(__bfloat162float(a[i * 16 + k])) * __bfloat162float(b[k * 8 + j]);
      EXPECT_NEAR(d[i * 8 + j], expected, 1e-5) << i << "," << j;  // f32 accumulation of 16 terms
    }
  }
}

TEST(SimtTensorCore, TiledBf16GemmMatchesLoop) {
  const int m = 48, n = 40, k = 80;  // 3 x 5 tiles, 5 K steps
  const std::vector<__nv_bfloat16> a = random_bf16(m * k, 84), b = random_bf16(k * n, 85);
  DeviceBuffer<__nv_bfloat16> d_a(a), d_b(b);
  DeviceBuffer<float> d_c(m * n);
  launch(demo::gemm_bf16_mma_kernel, dim3(n / 8, m / 16), dim3(32), 0, nullptr, d_a.data(), d_b.data(), d_c.data(), n, k);
  const std::vector<float> c = d_c.download();
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double expected = 0.0;
      for (int l = 0; l < k; ++l) expected += double(__bfloat162float(a[i * k + l])) * __bfloat162float(b[l * n + j]);
      ASSERT_NEAR(c[i * n + j], expected, 1e-4) << i << "," << j;
    }
  }
}

__global__ void ldmatrix_from_global_kernel(const std::uint16_t* tile, std::uint32_t* out) {
  std::uint32_t regs[1];
  ldmatrix_x1(regs, tile + (threadIdx.x % 8) * 8);  // global memory: undefined on a GPU
  out[threadIdx.x] = regs[0];
}

__global__ void mma_in_partial_warp_kernel(float* out) {
  const std::uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  const float c[4] = {1, 1, 1, 1};
  float d[4];
  mma_m16n8k16_bf16_f32(d, a, b, c);
  out[threadIdx.x] = d[0];
}

TEST(SimtTensorCore, MisuseThrows) {
  DeviceBuffer<std::uint16_t> tile(std::vector<std::uint16_t>(64, 1));
  DeviceBuffer<std::uint32_t> out(32);
  EXPECT_NE(thrown_message<InternalError>([&] {
              launch(ldmatrix_from_global_kernel, dim3(1), dim3(32), 0, nullptr, tile.data(), out.data());
            }).find("outside the block's shared memory"),
            std::string::npos);
  DeviceBuffer<float> d(48);
  EXPECT_NE(thrown_message<InternalError>([&] {
              launch(mma_in_partial_warp_kernel, dim3(1), dim3(48), 0, nullptr, d.data());
            }).find("names lanes that do not exist"),
            std::string::npos);
}

}  // namespace
}  // namespace reclm::simt
