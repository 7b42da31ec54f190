// rmsnorm_forward (with and without the fused residual add) and rmsnorm_backward
// (kernels/cuda/rmsnorm.cu) against ops::residual_forward + ops::rmsnorm_forward and
// ops::rmsnorm_backward, on the emulator (label emu) and a GPU (label gpu).
// Tolerances (fp32): the residual is a single fp32 add, so it must match bitwise; y, rstd, dx
// and dweight differ from the reference only by summation order (fp32 tree sums vs the
// reference's double sums): |got − want| <= 1e-5 · |want| + 1e-6 (dweight: + 1e-5, it sums rows).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"

namespace reclm::cuda {
namespace {

using ops::test_util::expect_near_all;
using ops::test_util::uniform;

constexpr float kEps = 1e-5f;

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// max |got − want| / max(|want|, 1e-3), printed for the record next to the tolerance check.
double max_rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    m = std::max(m, std::abs(static_cast<double>(got[i]) - want[i]) /
                        std::max(std::abs(static_cast<double>(want[i])), 1e-3));
  }
  return m;
}

// One shape per kernel instance: warp rows (1, 2, 4 chunks), 128/256/512-thread block rows,
// dims that are not multiples of 4 (scalar path) and odd row counts.
struct Shape {
  int64_t rows;
  int64_t dim;
};
const Shape kShapes[] = {{7, 5},    {9, 100},  {5, 256},  {3, 510}, {5, 1024},
                         {3, 1030}, {3, 3000}, {3, 4096}, {2, 8192}};

TEST(CudaRmsnorm, ForwardWithResidualMatchesReference) {
  uint32_t seed = 1;
  for (const Shape& s : kShapes) {
    const size_t n = static_cast<size_t>(s.rows * s.dim);
    const std::vector<float> a = uniform(n, seed++, -2.f, 2.f), b = uniform(n, seed++, -2.f, 2.f);
    const std::vector<float> w = uniform(static_cast<size_t>(s.dim), seed++, 0.5f, 1.5f);
    std::vector<float> want_res(n), want_y(n), want_rstd(static_cast<size_t>(s.rows));
    ops::residual_forward(want_res.data(), a.data(), b.data(), static_cast<int64_t>(n));
    ops::rmsnorm_forward(want_y.data(), want_rstd.data(), want_res.data(), w.data(), s.rows, s.dim, kEps);

    simt::DeviceBuffer<float> da(a), db(b), dw(w), y(n), res(n), rstd(static_cast<size_t>(s.rows));
    ASSERT_EQ(rmsnorm_forward(y.data(), rstd.data(), res.data(), da.data(), db.data(), dw.data(), s.rows,
                              s.dim, kEps, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::string what = "rows " + std::to_string(s.rows) + " dim " + std::to_string(s.dim);
    EXPECT_EQ(res.download(), want_res) << what;
    const std::vector<float> got_y = y.download(), got_rstd = rstd.download();
    expect_near_all(got_y, to_double(want_y), 1e-6, 1e-5, "y " + what);
    expect_near_all(got_rstd, to_double(want_rstd), 1e-6, 1e-5, "rstd " + what);
    std::printf("rmsnorm forward %s: max rel error y %.3g rstd %.3g\n", what.c_str(),
                max_rel_error(got_y, want_y), max_rel_error(got_rstd, want_rstd));
  }
}

TEST(CudaRmsnorm, PlainForwardAndInPlaceResidual) {
  uint32_t seed = 50;
  for (const Shape& s : {Shape{5, 96}, Shape{3, 2048}, Shape{3, 777}}) {
    const size_t n = static_cast<size_t>(s.rows * s.dim);
    const std::vector<float> a = uniform(n, seed++, -2.f, 2.f), b = uniform(n, seed++, -2.f, 2.f);
    const std::vector<float> w = uniform(static_cast<size_t>(s.dim), seed++, 0.5f, 1.5f);
    const std::string what = "rows " + std::to_string(s.rows) + " dim " + std::to_string(s.dim);

    // b == nullptr: y = rmsnorm(a).
    std::vector<float> want_y(n), want_rstd(static_cast<size_t>(s.rows));
    ops::rmsnorm_forward(want_y.data(), want_rstd.data(), a.data(), w.data(), s.rows, s.dim, kEps);
    simt::DeviceBuffer<float> da(a), dw(w), y(n), rstd(static_cast<size_t>(s.rows));
    ASSERT_EQ(rmsnorm_forward(y.data(), rstd.data(), nullptr, da.data(), nullptr, dw.data(), s.rows, s.dim,
                              kEps, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    expect_near_all(y.download(), to_double(want_y), 1e-6, 1e-5, "plain y " + what);
    expect_near_all(rstd.download(), to_double(want_rstd), 1e-6, 1e-5, "plain rstd " + what);
    EXPECT_EQ(da.download(), a) << "input modified " << what;

    // residual_out aliasing a (the residual stream updated in place).
    std::vector<float> want_res(n);
    ops::residual_forward(want_res.data(), a.data(), b.data(), static_cast<int64_t>(n));
    ops::rmsnorm_forward(want_y.data(), want_rstd.data(), want_res.data(), w.data(), s.rows, s.dim, kEps);
    simt::DeviceBuffer<float> db(b), y2(n), rstd2(static_cast<size_t>(s.rows));
    ASSERT_EQ(rmsnorm_forward(y2.data(), rstd2.data(), da.data(), da.data(), db.data(), dw.data(), s.rows,
                              s.dim, kEps, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(da.download(), want_res) << "in-place residual " << what;
    expect_near_all(y2.download(), to_double(want_y), 1e-6, 1e-5, "in-place y " + what);
  }
}

// Pointers one float past a 16-byte boundary with dim % 4 == 0: the scalar path.
TEST(CudaRmsnorm, UnalignedPointersTakeTheScalarPath) {
  const int64_t rows = 5, dim = 64;
  const size_t n = static_cast<size_t>(rows * dim);
  const std::vector<float> a = uniform(n + 1, 70), b = uniform(n + 1, 71),
                           w = uniform(static_cast<size_t>(dim), 72);
  std::vector<float> want_res(n), want_y(n), want_rstd(static_cast<size_t>(rows));
  ops::residual_forward(want_res.data(), a.data() + 1, b.data() + 1, static_cast<int64_t>(n));
  ops::rmsnorm_forward(want_y.data(), want_rstd.data(), want_res.data(), w.data(), rows, dim, kEps);
  simt::DeviceBuffer<float> da(a), db(b), dw(w), y(n + 1), res(n + 1), rstd(static_cast<size_t>(rows));
  ASSERT_EQ(rmsnorm_forward(y.data() + 1, rstd.data(), res.data() + 1, da.data() + 1, db.data() + 1,
                            dw.data(), rows, dim, kEps, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const std::vector<float> got_y = y.download(), got_res = res.download();
  EXPECT_EQ(std::vector<float>(got_res.begin() + 1, got_res.end()), want_res);
  expect_near_all(std::vector<float>(got_y.begin() + 1, got_y.end()), to_double(want_y), 1e-6, 1e-5,
                  "unaligned y");
}

TEST(CudaRmsnorm, BackwardAccumulatesLikeReferenceAndIsDeterministic) {
  uint32_t seed = 100;
  // Row counts above 4 · kBackwardMaxBlocks would be slow on the emulator; the row-group loop
  // is still exercised: 2100 rows of dim 8 give several rows per warp group.
  const Shape shapes[] = {{7, 5},    {9, 100},  {7, 500},  {2100, 8}, {5, 1024},
                          {3, 1030}, {3, 4096}, {2, 8192}, {13, 2000}};
  for (const Shape& s : shapes) {
    const size_t n = static_cast<size_t>(s.rows * s.dim);
    const size_t d = static_cast<size_t>(s.dim);
    const std::vector<float> x = uniform(n, seed++, -2.f, 2.f), dy = uniform(n, seed++);
    const std::vector<float> w = uniform(d, seed++, 0.5f, 1.5f);
    const std::vector<float> dx0 = uniform(n, seed++), dw0 = uniform(d, seed++);
    std::vector<float> y(n), rstd(static_cast<size_t>(s.rows));
    ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), s.rows, s.dim, kEps);
    std::vector<float> want_dx = dx0, want_dw = dw0;
    ops::rmsnorm_backward(want_dx.data(), want_dw.data(), dy.data(), x.data(), w.data(), rstd.data(), s.rows,
                          s.dim);

    simt::DeviceBuffer<float> dx_(x), ddy(dy), dw_(w), drstd(rstd), dx(dx0), dwt(dw0), dwt2(dw0);
    simt::DeviceBuffer<float> ws(static_cast<size_t>(rmsnorm_backward_workspace_floats(s.rows, s.dim)));
    ASSERT_EQ(rmsnorm_backward(dx.data(), dwt.data(), ws.data(), ddy.data(), dx_.data(), dw_.data(),
                               drstd.data(), s.rows, s.dim, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::string what = "rows " + std::to_string(s.rows) + " dim " + std::to_string(s.dim);
    const std::vector<float> got_dx = dx.download(), got_dw = dwt.download();
    expect_near_all(got_dx, to_double(want_dx), 1e-6, 1e-5, "dx " + what);
    expect_near_all(got_dw, to_double(want_dw), 1e-5, 1e-5, "dweight " + what);
    std::printf("rmsnorm backward %s: max rel error dx %.3g dweight %.3g\n", what.c_str(),
                max_rel_error(got_dx, want_dx), max_rel_error(got_dw, want_dw));

    // Same inputs again (dx is only a sink here): dweight must be bitwise identical.
    ASSERT_EQ(rmsnorm_backward(dx.data(), dwt2.data(), ws.data(), ddy.data(), dx_.data(), dw_.data(),
                               drstd.data(), s.rows, s.dim, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(dwt2.download(), got_dw) << "dweight not deterministic " << what;

    // dweight = instead of += (accumulate_dweight false): the old values (NaN here) are not read,
    // and the bits are those of adding onto zeros.
    simt::DeviceBuffer<float> dw_zeros(std::vector<float>(d, 0.0f)), dw_poisoned(d);
    for (simt::DeviceBuffer<float>* out : {&dw_zeros, &dw_poisoned}) {
      ASSERT_EQ(rmsnorm_backward(dx.data(), out->data(), ws.data(), ddy.data(), dx_.data(), dw_.data(), drstd.data(),
                                 s.rows, s.dim, nullptr, nullptr, /*accumulate_dweight=*/out == &dw_zeros),
                cudaSuccess);
    }
    simt::device_synchronize();
    std::vector<float> want_dw_alone(d, 0.0f), dx_sink(n, 0.0f);
    ops::rmsnorm_backward(dx_sink.data(), want_dw_alone.data(), dy.data(), x.data(), w.data(), rstd.data(), s.rows,
                          s.dim);
    const std::vector<float> got_dw_alone = dw_poisoned.download();
    expect_near_all(got_dw_alone, to_double(want_dw_alone), 1e-5, 1e-5, "dweight = " + what);
    EXPECT_EQ(got_dw_alone, dw_zeros.download()) << "dweight = differs from += onto zeros " << what;
  }
}

// The bf16 forms (the GPU trainer's) against the fp32 kernels composed with the conversions:
// bitwise, for warp rows and block rows, with the residual add, aligned and not (dim % 4 != 0:
// the scalar path); rows past n_rows untouched. Backward's optional bf16 copy of dx equals the
// conversion of the fp32 dx, from either form.
TEST(CudaRmsnorm, Bf16FormsEqualTheComposedKernels) {
  uint32_t seed = 80;
  for (int64_t dim : {int64_t{64}, int64_t{100}, int64_t{768}, int64_t{1027}, int64_t{4096}}) {
    const int64_t rows = 9, n = rows * dim;
    const std::vector<float> a = uniform(n, seed), b = uniform(n, seed + 1), w = uniform(dim, seed + 2, 0.5f, 1.5f);
    const std::vector<float> dy = uniform(n, seed + 3), dx0 = uniform(n, seed + 4);
    seed += 5;
    simt::DeviceBuffer<float> da(a), db(b), dw(w), y32(n), rstd(rows), rstd2(rows), res(n), res2(n);
    simt::DeviceBuffer<uint16_t> want_y(n + 4), got_y(n + 4), dy16(n);
    auto bf = [](simt::DeviceBuffer<uint16_t>& x) { return reinterpret_cast<__nv_bfloat16*>(x.data()); };
    ASSERT_EQ(rmsnorm_forward(y32.data(), rstd.data(), res.data(), da.data(), db.data(), dw.data(), rows, dim, 1e-5f,
                              nullptr),
              cudaSuccess);
    ASSERT_EQ(convert_f32_to_bf16(bf(want_y), y32.data(), n, nullptr), cudaSuccess);
    ASSERT_EQ(rmsnorm_forward_bf16(bf(got_y), rstd2.data(), res2.data(), da.data(), db.data(), dw.data(), rows, dim,
                                   1e-5f, nullptr),
              cudaSuccess);
    // backward: dy rounded to bf16 once; the fp32 kernel gets its exact widening
    simt::DeviceBuffer<float> dyf(dy), dy_wide(n), dx_want(dx0), dx_got(dx0), dw_want(w), dw_got(w);
    ASSERT_EQ(convert_f32_to_bf16(bf(dy16), dyf.data(), n, nullptr), cudaSuccess);
    ASSERT_EQ(convert_bf16_to_f32(dy_wide.data(), bf(dy16), n, nullptr), cudaSuccess);
    simt::DeviceBuffer<float> ws(static_cast<size_t>(rmsnorm_backward_workspace_floats(rows, dim)));
    ASSERT_EQ(rmsnorm_backward(dx_want.data(), dw_want.data(), ws.data(), dy_wide.data(), res.data(), dw.data(),
                               rstd.data(), rows, dim, nullptr),
              cudaSuccess);
    // the backward's bf16 copy of the updated dx, from both forms (the fp32 form on a third dx)
    simt::DeviceBuffer<uint16_t> dx16_want(n + 4), dx16_got(n + 4), dx16_f32form(n + 4);
    simt::DeviceBuffer<float> dx_third(dx0), dw_third(w);
    ASSERT_EQ(rmsnorm_backward_bf16(dx_got.data(), dw_got.data(), ws.data(), bf(dy16), res.data(), dw.data(),
                                    rstd.data(), rows, dim, nullptr, bf(dx16_got)),
              cudaSuccess);
    ASSERT_EQ(convert_f32_to_bf16(bf(dx16_want), dx_want.data(), n, nullptr), cudaSuccess);
    ASSERT_EQ(rmsnorm_backward(dx_third.data(), dw_third.data(), ws.data(), dy_wide.data(), res.data(), dw.data(),
                               rstd.data(), rows, dim, nullptr, bf(dx16_f32form)),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(dx16_got.download(), dx16_want.download()) << "backward dx bf16 copy, dim " << dim;
    EXPECT_EQ(dx16_f32form.download(), dx16_want.download()) << "fp32 backward dx bf16 copy, dim " << dim;
    EXPECT_EQ(dx_third.download(), dx_want.download()) << "fp32 backward dx with the copy, dim " << dim;
    EXPECT_EQ(got_y.download(), want_y.download()) << "forward y, dim " << dim;
    EXPECT_EQ(rstd2.download(), rstd.download()) << "forward rstd, dim " << dim;
    EXPECT_EQ(res2.download(), res.download()) << "forward residual, dim " << dim;
    EXPECT_EQ(dx_got.download(), dx_want.download()) << "backward dx, dim " << dim;
    EXPECT_EQ(dw_got.download(), dw_want.download()) << "backward dweight, dim " << dim;
    const std::vector<uint16_t> tail = got_y.download();
    for (int64_t i = n; i < n + 4; ++i) EXPECT_EQ(tail[i], 0xFFFF) << "wrote past the end, dim " << dim;
  }
}

// A bf16 residual stream's forms (runtime.bf16_residual) against the fp32 kernels on the widened
// bf16 values composed with convert_f32_to_bf16: bitwise, forward (bf16 and fp32 y) and backward
// with a stream gradient in, none (zeros) and in place; nothing written past the rows.
TEST(CudaRmsnorm, Bf16ResidualFormsEqualTheComposedKernels) {
  uint32_t seed = 180;
  auto bf = [](simt::DeviceBuffer<uint16_t>& x) { return reinterpret_cast<__nv_bfloat16*>(x.data()); };
  for (int64_t dim : {int64_t{64}, int64_t{100}, int64_t{768}, int64_t{1027}, int64_t{4096}}) {
    const int64_t rows = 9, n = rows * dim;
    const std::vector<float> w = uniform(dim, seed + 2, 0.5f, 1.5f);
    simt::DeviceBuffer<float> x0(uniform(n, seed, -3.0f, 3.0f)), dy0(uniform(n, seed + 1)), din0(uniform(n, seed + 3));
    seed += 4;
    // the bf16 inputs, and their exact widenings for the fp32 kernels
    simt::DeviceBuffer<uint16_t> x16(n), dy16(n), din16(n);
    simt::DeviceBuffer<float> x(n), dy(n), din(n), dw(w);
    for (auto [wide, narrow, src] :
         {std::tuple{&x, &x16, &x0}, std::tuple{&dy, &dy16, &dy0}, std::tuple{&din, &din16, &din0}}) {
      ASSERT_EQ(convert_f32_to_bf16(bf(*narrow), src->data(), n, nullptr), cudaSuccess);
      ASSERT_EQ(convert_bf16_to_f32(wide->data(), bf(*narrow), n, nullptr), cudaSuccess);
    }
    // forward
    simt::DeviceBuffer<float> y32(n), rstd(rows), y32_got(n + 4), rstd_got(rows), rstd_got2(rows);
    simt::DeviceBuffer<uint16_t> y16_want(n + 4), y16_got(n + 4);
    ASSERT_EQ(rmsnorm_forward(y32.data(), rstd.data(), nullptr, x.data(), nullptr, dw.data(), rows, dim, kEps, nullptr),
              cudaSuccess);
    ASSERT_EQ(convert_f32_to_bf16(bf(y16_want), y32.data(), n, nullptr), cudaSuccess);
    ASSERT_EQ(rmsnorm_forward_bf16(bf(y16_got), rstd_got.data(), bf(x16), dw.data(), rows, dim, kEps, nullptr),
              cudaSuccess);
    ASSERT_EQ(rmsnorm_forward(y32_got.data(), rstd_got2.data(), bf(x16), dw.data(), rows, dim, kEps, nullptr),
              cudaSuccess);
    // backward: the fp32 kernel onto the widened stream gradient (or zeros), then rounded
    simt::DeviceBuffer<float> ws(static_cast<size_t>(rmsnorm_backward_workspace_floats(rows, dim)));
    simt::DeviceBuffer<float> dx_want(din.download()), dx0_want(std::vector<float>(n, 0.0f));
    simt::DeviceBuffer<float> dw_want(w), dw0_want(w), dw_got(w), dw0_got(w), dw_inplace(w);
    ASSERT_EQ(rmsnorm_backward(dx_want.data(), dw_want.data(), ws.data(), dy.data(), x.data(), dw.data(), rstd.data(),
                               rows, dim, nullptr),
              cudaSuccess);
    ASSERT_EQ(rmsnorm_backward(dx0_want.data(), dw0_want.data(), ws.data(), dy.data(), x.data(), dw.data(),
                               rstd.data(), rows, dim, nullptr, nullptr, /*accumulate_dweight=*/false),
              cudaSuccess);
    simt::DeviceBuffer<uint16_t> dx16_want(n + 4), dx016_want(n + 4), dx16_got(n + 4), dx016_got(n + 4);
    ASSERT_EQ(convert_f32_to_bf16(bf(dx16_want), dx_want.data(), n, nullptr), cudaSuccess);
    ASSERT_EQ(convert_f32_to_bf16(bf(dx016_want), dx0_want.data(), n, nullptr), cudaSuccess);
    ASSERT_EQ(rmsnorm_backward_bf16(bf(dx16_got), bf(din16), dw_got.data(), ws.data(), bf(dy16), bf(x16), dw.data(),
                                    rstd.data(), rows, dim, nullptr),
              cudaSuccess);
    ASSERT_EQ(rmsnorm_backward_bf16(bf(dx016_got), nullptr, dw0_got.data(), ws.data(), bf(dy16), bf(x16), dw.data(),
                                    rstd.data(), rows, dim, nullptr, /*accumulate_dweight=*/false),
              cudaSuccess);
    ASSERT_EQ(rmsnorm_backward_bf16(bf(din16), bf(din16), dw_inplace.data(), ws.data(), bf(dy16), bf(x16), dw.data(),
                                    rstd.data(), rows, dim, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::string at = ", dim " + std::to_string(dim);
    EXPECT_EQ(y16_got.download(), y16_want.download()) << "forward bf16 y" << at;
    EXPECT_EQ(rstd_got.download(), rstd.download()) << "forward rstd" << at;
    EXPECT_EQ(rstd_got2.download(), rstd.download()) << "forward (fp32 y) rstd" << at;
    std::vector<float> y32_tail = y32_got.download();
    EXPECT_EQ(std::vector<float>(y32_tail.begin(), y32_tail.begin() + n), y32.download()) << "forward fp32 y" << at;
    EXPECT_TRUE(std::isnan(y32_tail[n])) << "forward fp32 y wrote past the rows" << at;
    EXPECT_EQ(dx16_got.download(), dx16_want.download()) << "backward dx" << at;
    EXPECT_EQ(dx016_got.download(), dx016_want.download()) << "backward dx from zeros" << at;
    std::vector<uint16_t> inplace = din16.download();
    std::vector<uint16_t> want = dx16_want.download();
    EXPECT_EQ(inplace, std::vector<uint16_t>(want.begin(), want.begin() + n)) << "backward dx in place" << at;
    EXPECT_EQ(dw_got.download(), dw_want.download()) << "backward dweight" << at;
    EXPECT_EQ(dw_inplace.download(), dw_want.download()) << "backward dweight, in place" << at;
    EXPECT_EQ(dw0_got.download(), dw0_want.download()) << "backward dweight =" << at;
    for (auto* buf : {&y16_got, &dx16_got, &dx016_got}) {
      const std::vector<uint16_t> tail = buf->download();
      for (int64_t i = n; i < n + 4; ++i) EXPECT_EQ(tail[i], 0xFFFF) << "wrote past the rows" << at;
    }
  }
}

TEST(CudaRmsnorm, RejectsUnsupportedDims) {
  simt::DeviceBuffer<float> buf(16);
  EXPECT_EQ(
      rmsnorm_forward(buf.data(), buf.data(), nullptr, buf.data(), nullptr, buf.data(), 1, 0, kEps, nullptr),
      cudaErrorInvalidValue);
  EXPECT_EQ(rmsnorm_forward(buf.data(), buf.data(), nullptr, buf.data(), nullptr, buf.data(), 1,
                            kRmsnormMaxDim + 1, kEps, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(rmsnorm_forward(buf.data(), buf.data(), nullptr, buf.data(), buf.data(), buf.data(), 1, 4, kEps,
                            nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace reclm::cuda
