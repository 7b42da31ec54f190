// Device math and bit intrinsics on the emulator against their definitions on the host, and a
// warp-per-row softmax and RMS norm (the shapes our kernels take) built from them.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "simt/simt_test_util.h"

namespace reclm::simt {
namespace {

struct BitResults {
  int popc, clz, ffs, as_int;
  unsigned brev;
  float from_bits;
};

__global__ void bit_intrinsics_kernel(const unsigned* in, BitResults* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const unsigned v = in[i];
  out[i] = {__popc(v), __clz(static_cast<int>(v)), __ffs(static_cast<int>(v)), __float_as_int(__uint_as_float(v)),
            __brev(v), __int_as_float(static_cast<int>(v & 0x7f7fffffu))};
}

TEST(SimtIntrinsics, BitIntrinsicsMatchTheirDefinitions) {
  const int n = 1001;
  std::vector<unsigned> in(n);
  const std::vector<int> r = testing::random_ints(n, 91, -2147483647, 2147483647);
  for (int i = 0; i < n; ++i) in[i] = static_cast<unsigned>(r[i]);
  in[0] = 0;  // __clz(0) = 32, __ffs(0) = 0
  DeviceBuffer<unsigned> d_in(in);
  DeviceBuffer<BitResults> d_out(n);
  launch(bit_intrinsics_kernel, dim3(testing::blocks_for(n, 128)), dim3(128), 0, nullptr, d_in.data(), d_out.data(), n);
  const std::vector<BitResults> out = d_out.download();
  for (int i = 0; i < n; ++i) {
    const unsigned v = in[i];
    int popc = 0, clz = 32, ffs = 0;
    unsigned brev = 0;
    for (int b = 0; b < 32; ++b) {
      if (v >> b & 1u) {
        ++popc;
        clz = 31 - b;
        if (ffs == 0) ffs = b + 1;
        brev |= 1u << (31 - b);
      }
    }
    EXPECT_EQ(out[i].popc, popc) << i;
    EXPECT_EQ(out[i].clz, clz) << i;
    EXPECT_EQ(out[i].ffs, ffs) << i;
    EXPECT_EQ(out[i].brev, brev) << i;
    EXPECT_EQ(static_cast<unsigned>(out[i].as_int), v) << i;
    EXPECT_EQ(std::bit_cast<unsigned>(out[i].from_bits), v & 0x7f7fffffu) << i;
  }
}

// The device-only 16-bit intrinsics the emulator adds (kernels/simt/half_math.h), on bf16 and
// fp16 inputs: out = {fma(x, y, z), exp, log, sqrt, rsqrt, rcp, tanh} of each element, and the
// 2-vector forms on (x, y) pairs.
template <typename Half, typename Half2>
__global__ void half_math_kernel(const Half* x, const Half* y, const Half* z, Half* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  Half* o = out + 9 * i;
  o[0] = __hfma(x[i], y[i], z[i]);
  o[1] = hexp(x[i]);
  o[2] = hlog(y[i]);
  o[3] = hsqrt(y[i]);
  o[4] = hrsqrt(y[i]);
  o[5] = hrcp(x[i]);
  o[6] = htanh(x[i]);
  const Half2 xy{x[i], y[i]};
  const Half2 fma2 = __hfma2(xy, xy, Half2{z[i], z[i]});
  o[7] = fma2.x;
  o[8] = h2exp(xy).y;
}

template <typename Half, typename Half2, typename FromFloat, typename ToFloat>
void check_half_math(FromFloat from_float, ToFloat to_float, double relative_tolerance) {
  const int n = 301;
  const std::vector<float> xf = testing::random_floats(n, 93, -2.0f, 2.0f), yf = testing::random_floats(n, 94, 0.1f, 4.0f),
                           zf = testing::random_floats(n, 95);
  std::vector<Half> x(n), y(n), z(n);
  for (int i = 0; i < n; ++i) {
    x[i] = from_float(xf[i]);
    y[i] = from_float(yf[i]);
    z[i] = from_float(zf[i]);
  }
  DeviceBuffer<Half> d_x(x), d_y(y), d_z(z), d_out(9 * n);
  launch(half_math_kernel<Half, Half2>, dim3(testing::blocks_for(n, 64)), dim3(64), 0, nullptr, d_x.data(), d_y.data(),
         d_z.data(), d_out.data(), n);
  const std::vector<Half> out = d_out.download();
  for (int i = 0; i < n; ++i) {
    const double a = to_float(x[i]), b = to_float(y[i]), c = to_float(z[i]);
    const double want[9] = {a * b + c, std::exp(a), std::log(b), std::sqrt(b), 1.0 / std::sqrt(b),
                            1.0 / a,   std::tanh(a), a * a + c, std::exp(b)};
    for (int k = 0; k < 9; ++k) {
      // One rounding to the 16-bit type: relative error at most half an ulp (fma: of the result,
      // plus the cancellation in a*b + c, hence the absolute term).
      EXPECT_NEAR(to_float(out[9 * i + k]), want[k], relative_tolerance * std::fabs(want[k]) + 1e-2 * relative_tolerance)
          << "element " << i << " result " << k;
    }
  }
}

TEST(SimtIntrinsics, SixteenBitMathIntrinsicsRoundOnce) {
  check_half_math<__nv_bfloat16, __nv_bfloat162>([](float f) { return __float2bfloat16(f); },
                                                 [](__nv_bfloat16 h) { return __bfloat162float(h); }, 0x1p-8);
  check_half_math<__half, __half2>([](float f) { return __float2half(f); }, [](__half h) { return __half2float(h); },
                                   0x1p-11);
}

// One warp per row of `cols` floats (any cols): softmax via max/sum shuffles with fmaxf, __expf
// and __fdividef; RMS norm via rsqrtf. Lanes stride over the row.
__global__ void softmax_and_rmsnorm_rows_kernel(const float* x, int rows, int cols, float* softmax, float* rmsnorm) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together; this kernel has no block barrier
  const float* in = x + static_cast<long long>(row) * cols;
  float max_value = -INFINITY, sum_squares = 0.0f;
  for (int c = lane; c < cols; c += 32) {
    max_value = fmaxf(max_value, __ldg(&in[c]));
    sum_squares += in[c] * in[c];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    max_value = fmaxf(max_value, __shfl_xor_sync(0xffffffffu, max_value, offset));
    sum_squares += __shfl_xor_sync(0xffffffffu, sum_squares, offset);
  }
  float sum_exp = 0.0f;
  for (int c = lane; c < cols; c += 32) sum_exp += __expf(in[c] - max_value);
  for (int offset = 16; offset > 0; offset /= 2) sum_exp += __shfl_xor_sync(0xffffffffu, sum_exp, offset);
  const float inv_rms = rsqrtf(sum_squares / cols + 1e-6f);
  for (int c = lane; c < cols; c += 32) {
    softmax[static_cast<long long>(row) * cols + c] = __fdividef(__expf(in[c] - max_value), sum_exp);
    rmsnorm[static_cast<long long>(row) * cols + c] = in[c] * inv_rms;
  }
}

TEST(SimtIntrinsics, WarpPerRowSoftmaxAndRmsNormMatchDoubleReference) {
  const int rows = 37, cols = 203;
  const std::vector<float> x = testing::random_floats(rows * cols, 92, -5.0f, 5.0f);
  DeviceBuffer<float> d_x(x), d_softmax(x.size()), d_rmsnorm(x.size());
  const unsigned warps_per_block = 4;
  launch(softmax_and_rmsnorm_rows_kernel, dim3((rows + warps_per_block - 1) / warps_per_block), dim3(32 * warps_per_block),
         0, nullptr, d_x.data(), rows, cols, d_softmax.data(), d_rmsnorm.data());
  const std::vector<float> softmax = d_softmax.download(), rmsnorm = d_rmsnorm.download();
  for (int r = 0; r < rows; ++r) {
    double max_value = -INFINITY, sum_exp = 0.0, sum_squares = 0.0;
    for (int c = 0; c < cols; ++c) max_value = std::max<double>(max_value, x[r * cols + c]);
    for (int c = 0; c < cols; ++c) {
      sum_exp += std::exp(x[r * cols + c] - max_value);
      sum_squares += double(x[r * cols + c]) * x[r * cols + c];
    }
    const double inv_rms = 1.0 / std::sqrt(sum_squares / cols + 1e-6);
    for (int c = 0; c < cols; ++c) {
      const double p = std::exp(x[r * cols + c] - max_value) / sum_exp;
      ASSERT_NEAR(softmax[r * cols + c], p, 1e-6 + 1e-5 * p) << r << "," << c;           // f32
      ASSERT_NEAR(rmsnorm[r * cols + c], x[r * cols + c] * inv_rms, 1e-5) << r << "," << c;  // f32
    }
  }
}

}  // namespace
}  // namespace reclm::simt
