// Fused cross-entropy (kernels/cuda/cross_entropy.cu) against kernels/cpu/cross_entropy.cc and
// cross_entropy_partial.cc, on the emulator (emu) and a GPU (gpu).
// Tolerances (fp32 exp: the CPU's polynomial vs the device expf, ~2e-7 relative each; per-thread
// float partial sums of the softmax denominator):
//   dlogits        2e-6 relative + 1e-10 absolute
//   losses (float) 1e-6 relative + 1e-5 absolute (the loss is lse − x, lse ~ log(V) + max)
//   loss sum       1e-6 relative + 1e-5·T absolute
//   partial stats  row_max and target_logit exact; row_sum 1e-6 relative
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"

namespace reclm::cuda {
namespace {

using ops::test_util::expect_near_all;
using ops::test_util::random_ints;
using ops::test_util::uniform;

std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// max |got − want| / (|want| + floor), for the report.
double max_relative_error(const std::vector<float>& got, const std::vector<float>& want, double floor) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(static_cast<double>(got[i]) - want[i]) / (std::abs(static_cast<double>(want[i])) + floor);
    worst = e > worst ? e : worst;
  }
  return worst;
}

// T rows over classes [class_begin, class_begin + V): every 4th row has weight 0 (and a target
// outside the range, which a weight of 0 allows), the others weights in [0.5, 1.5].
struct Problem {
  int64_t T, V, class_begin;
  std::vector<float> logits, weights;
  std::vector<int32_t> targets;
  Problem(int64_t t, int64_t v, int64_t begin, float logit_range, uint32_t seed)
      : T(t), V(v), class_begin(begin),
        logits(uniform(static_cast<size_t>(t * v), seed, -logit_range, logit_range)),
        weights(uniform(static_cast<size_t>(t), seed + 1, 0.5f, 1.5f)),
        targets(random_ints(t, static_cast<int32_t>(v - 1), seed + 2)) {
    for (int64_t r = 0; r < T; ++r) {
      targets[r] += static_cast<int32_t>(class_begin);
      if (r % 4 == 1) {
        weights[r] = 0.0f;
        targets[r] = -5;
      }
    }
  }
};

struct Result {
  std::vector<float> dlogits, losses;
  double loss_sum;
};

// in_place: dlogits overwrite the logits buffer. offset: the logits start `offset` floats into
// their buffer (≠ 0 puts the rows out of phase with a separate dlogits buffer: scalar path).
Result run_forward_backward(const Problem& pr, float grad_scale, bool in_place, int64_t offset) {
  std::vector<float> padded(static_cast<size_t>(offset), 0.0f);
  padded.insert(padded.end(), pr.logits.begin(), pr.logits.end());
  simt::DeviceBuffer<float> logits(padded), dlogits(static_cast<size_t>(pr.T * pr.V)), losses(static_cast<size_t>(pr.T));
  simt::DeviceBuffer<int32_t> targets(pr.targets);
  simt::DeviceBuffer<float> weights(pr.weights);
  simt::DeviceBuffer<double> workspace(static_cast<size_t>(pr.T)), loss_sum(1);
  float* out = in_place ? logits.data() + offset : dlogits.data();
  EXPECT_EQ(cross_entropy_forward_backward(out, losses.data(), loss_sum.data(), workspace.data(), logits.data() + offset,
                                           targets.data(), weights.data(), pr.T, pr.V, pr.class_begin, grad_scale,
                                           nullptr),
            cudaSuccess);
  simt::device_synchronize();
  std::vector<float> d = in_place ? logits.download() : dlogits.download();
  if (in_place) d.erase(d.begin(), d.begin() + offset);
  return {d, losses.download(), loss_sum.download()[0]};
}

void expect_matches_cpu(const Problem& pr, float grad_scale, bool in_place, int64_t offset) {
  std::vector<float> want_d(static_cast<size_t>(pr.T * pr.V)), want_losses(static_cast<size_t>(pr.T));
  const double want_sum =
      ops::cross_entropy_forward_backward(want_d.data(), want_losses.data(), pr.logits.data(), pr.targets.data(),
                                          pr.weights.data(), pr.T, pr.V, pr.class_begin, grad_scale);
  const Result got = run_forward_backward(pr, grad_scale, in_place, offset);
  const std::string what = "T " + std::to_string(pr.T) + " V " + std::to_string(pr.V) +
                           (in_place ? " in place" : "") + " offset " + std::to_string(offset);
  expect_near_all(got.dlogits, to_double(want_d), 1e-10, 2e-6, "dlogits " + what);
  expect_near_all(got.losses, to_double(want_losses), 1e-5, 1e-6, "losses " + what);
  EXPECT_NEAR(got.loss_sum, want_sum, 1e-5 * pr.T + 1e-6 * std::abs(want_sum)) << what;
  std::printf("cross-entropy %s: max rel error dlogits %.2e, losses %.2e, loss sum %.2e\n", what.c_str(),
              max_relative_error(got.dlogits, want_d, 1e-10), max_relative_error(got.losses, want_losses, 1e-5),
              std::abs(got.loss_sum - want_sum) / (std::abs(want_sum) + 1e-30));
  for (int64_t r = 1; r < pr.T; r += 4) {  // weight 0: exactly zero loss and gradient
    EXPECT_EQ(got.losses[r], 0.0f);
    for (int64_t c = 0; c < pr.V; ++c) ASSERT_EQ(got.dlogits[r * pr.V + c], 0.0f) << what;
  }
}

TEST(CudaCrossEntropy, ForwardBackwardMatchesCpuForVocabWidths) {
  expect_matches_cpu(Problem(37, 1, 3, 5.0f, 1), 0.25f, false, 0);
  expect_matches_cpu(Problem(37, 31, 100, 5.0f, 2), 0.25f, false, 0);
  expect_matches_cpu(Problem(33, 1031, 7, 5.0f, 3), 0.25f, false, 0);
  expect_matches_cpu(Problem(5, 50257, 0, 5.0f, 4), 1.0f, false, 0);
}

TEST(CudaCrossEntropy, InPlaceAndMisalignedRows) {
  expect_matches_cpu(Problem(9, 1031, 50, 5.0f, 5), 0.5f, true, 0);
  expect_matches_cpu(Problem(9, 1031, 50, 5.0f, 6), 0.5f, true, 3);   // in place, rows shifted
  expect_matches_cpu(Problem(9, 1031, 50, 5.0f, 7), 0.5f, false, 1);  // out of phase: scalar path
  expect_matches_cpu(Problem(7, 4096, 0, 5.0f, 8), 0.5f, false, 0);   // every row aligned
}

// Logits in ±80: exp would overflow without the max subtraction.
TEST(CudaCrossEntropy, LargeLogitsStayFinite) {
  const Problem pr(11, 1031, 0, 80.0f, 9);
  const Result got = run_forward_backward(pr, 1.0f, false, 0);
  for (float x : got.dlogits) ASSERT_TRUE(std::isfinite(x));
  for (float x : got.losses) ASSERT_TRUE(std::isfinite(x));
  expect_matches_cpu(pr, 1.0f, false, 0);
}

TEST(CudaCrossEntropy, ForwardOnlyLeavesLogitsAlone) {
  const Problem pr(13, 1031, 20, 5.0f, 10);
  std::vector<float> want_losses(static_cast<size_t>(pr.T));
  const double want_sum = ops::cross_entropy_forward(want_losses.data(), pr.logits.data(), pr.targets.data(),
                                                     pr.weights.data(), pr.T, pr.V, pr.class_begin);
  simt::DeviceBuffer<float> logits(pr.logits), losses(static_cast<size_t>(pr.T)), weights(pr.weights);
  simt::DeviceBuffer<int32_t> targets(pr.targets);
  simt::DeviceBuffer<double> workspace(static_cast<size_t>(pr.T)), loss_sum(1);
  ASSERT_EQ(cross_entropy_forward(losses.data(), loss_sum.data(), workspace.data(), logits.data(), targets.data(),
                                  weights.data(), pr.T, pr.V, pr.class_begin, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  expect_near_all(losses.download(), to_double(want_losses), 1e-5, 1e-6, "losses");
  EXPECT_NEAR(loss_sum.download()[0], want_sum, 1e-5 * pr.T + 1e-6 * std::abs(want_sum));
  EXPECT_EQ(logits.download(), pr.logits);
}

// Rows padded to a stride (the GPU backend's logits: an odd class count padded to a multiple of
// 8): in place, forward+backward and forward-only against the CPU on the compact rows; the
// padding columns are neither read (poisoned NaN) nor written.
TEST(CudaCrossEntropy, RowStrideSkipsThePadding) {
  const Problem pr(9, 1031, 40, 5.0f, 12);
  const int64_t stride = 1040;
  std::vector<float> strided(static_cast<size_t>(pr.T * stride), ops::test_util::kNaN);
  for (int64_t r = 0; r < pr.T; ++r)
    std::copy_n(pr.logits.begin() + r * pr.V, pr.V, strided.begin() + r * stride);
  std::vector<float> want_d(static_cast<size_t>(pr.T * pr.V)), want_losses(static_cast<size_t>(pr.T));
  const double want_sum = ops::cross_entropy_forward_backward(want_d.data(), want_losses.data(), pr.logits.data(),
                                                              pr.targets.data(), pr.weights.data(), pr.T, pr.V,
                                                              pr.class_begin, 0.5f);
  simt::DeviceBuffer<float> logits(strided), losses(static_cast<size_t>(pr.T)), weights(pr.weights);
  simt::DeviceBuffer<int32_t> targets(pr.targets);
  simt::DeviceBuffer<double> workspace(static_cast<size_t>(pr.T)), loss_sum(1);
  ASSERT_EQ(cross_entropy_forward(losses.data(), loss_sum.data(), workspace.data(), logits.data(), targets.data(),
                                  weights.data(), pr.T, pr.V, pr.class_begin, nullptr, stride),
            cudaSuccess);
  simt::device_synchronize();
  expect_near_all(losses.download(), to_double(want_losses), 1e-5, 1e-6, "forward losses, strided");
  ASSERT_EQ(cross_entropy_forward_backward(logits.data(), losses.data(), loss_sum.data(), workspace.data(),
                                           logits.data(), targets.data(), weights.data(), pr.T, pr.V, pr.class_begin,
                                           0.5f, nullptr, stride),
            cudaSuccess);
  simt::device_synchronize();
  const std::vector<float> got = logits.download();
  std::vector<float> got_d(static_cast<size_t>(pr.T * pr.V));
  for (int64_t r = 0; r < pr.T; ++r) {
    std::copy_n(got.begin() + r * stride, pr.V, got_d.begin() + r * pr.V);
    for (int64_t c = pr.V; c < stride; ++c) ASSERT_TRUE(std::isnan(got[r * stride + c])) << "padding written";
  }
  expect_near_all(got_d, to_double(want_d), 1e-10, 2e-6, "dlogits, strided");
  expect_near_all(losses.download(), to_double(want_losses), 1e-5, 1e-6, "losses, strided");
  EXPECT_NEAR(loss_sum.download()[0], want_sum, 1e-5 * pr.T + 1e-6 * std::abs(want_sum));
  EXPECT_EQ(cross_entropy_forward(losses.data(), loss_sum.data(), workspace.data(), logits.data(), targets.data(),
                                  weights.data(), pr.T, pr.V, pr.class_begin, nullptr, pr.V - 1),
            cudaErrorInvalidValue);
}

// The bf16-dlogits form (the GPU trainer's) against cross_entropy_forward_backward followed by
// convert_f32_to_bf16: bitwise, for compact odd rows (every row at another 16-byte phase), padded
// rows, and outputs off the float4 phase (the scalar path); the losses equal; the padding
// columns are zeros (the GEMMs after it run over them), nothing past the last row is written.
TEST(CudaCrossEntropy, Bf16DlogitsEqualTheComposedKernels) {
  const Problem pr(9, 1031, 40, 5.0f, 13);
  for (const int64_t stride : {int64_t{1031}, int64_t{1040}}) {
    for (const int64_t out_offset : {int64_t{0}, int64_t{1}}) {
      const int64_t n = pr.T * stride;
      std::vector<float> strided(static_cast<size_t>(n), ops::test_util::kNaN);
      for (int64_t r = 0; r < pr.T; ++r)
        std::copy_n(pr.logits.begin() + r * pr.V, pr.V, strided.begin() + r * stride);
      simt::DeviceBuffer<float> logits(strided), d32(static_cast<size_t>(n)), weights(pr.weights);
      simt::DeviceBuffer<float> losses32(static_cast<size_t>(pr.T)), losses16(static_cast<size_t>(pr.T));
      simt::DeviceBuffer<int32_t> targets(pr.targets);
      simt::DeviceBuffer<double> workspace(static_cast<size_t>(pr.T)), sum32(1), sum16(1);
      simt::DeviceBuffer<uint16_t> want(static_cast<size_t>(n)), got(static_cast<size_t>(n + 1));
      auto* want_bf = reinterpret_cast<__nv_bfloat16*>(want.data());
      auto* got_bf = reinterpret_cast<__nv_bfloat16*>(got.data() + out_offset);
      ASSERT_EQ(cross_entropy_forward_backward(d32.data(), losses32.data(), sum32.data(), workspace.data(),
                                               logits.data(), targets.data(), weights.data(), pr.T, pr.V,
                                               pr.class_begin, 0.5f, nullptr, stride),
                cudaSuccess);
      ASSERT_EQ(convert_f32_to_bf16(want_bf, d32.data(), n, nullptr), cudaSuccess);
      ASSERT_EQ(cross_entropy_forward_backward_bf16(got_bf, losses16.data(), sum16.data(), workspace.data(),
                                                    logits.data(), targets.data(), weights.data(), pr.T, pr.V,
                                                    pr.class_begin, 0.5f, nullptr, stride),
                cudaSuccess);
      simt::device_synchronize();
      const std::string what = "stride " + std::to_string(stride) + " offset " + std::to_string(out_offset);
      const std::vector<uint16_t> w = want.download(), g = got.download();
      for (int64_t r = 0; r < pr.T; ++r) {
        for (int64_t c = 0; c < stride; ++c) {
          const uint16_t gv = g[out_offset + r * stride + c];
          if (c < pr.V) {
            ASSERT_EQ(gv, w[r * stride + c]) << what << " row " << r << " class " << c;
          } else {
            ASSERT_EQ(gv, 0) << what << ": padding not zero, row " << r;
          }
        }
      }
      if (out_offset == 0) {
        EXPECT_EQ(g[n], 0xFFFF) << what << ": wrote past the last row";
      }
      EXPECT_EQ(losses16.download(), losses32.download()) << what;
      EXPECT_EQ(sum16.download(), sum32.download()) << what;
    }
  }
}

// bf16 logits (the GPU trainer's LM head output) against the fp32-logits kernels on the same
// values widened: bitwise dlogits (zero padding included), losses and loss sum, for compact odd
// rows (every row at another 8-byte phase: scalar heads and tails), padded rows (odd padding, and
// the trainer's, to a multiple of 64 classes: rows 16-byte aligned, so in place the pipelined
// kernel, 4 rows a block, weight-0 rows among them), an output off the input's phase (the scalar
// path), in place one row per block, and in place always reading twice; the forward-only form
// leaves the logits alone. Rows of 1031 classes (one unit per thread, in registers), 9001 (5 of 8
// register units), 64553 (gpu_350m's: 32 of 32) and 65601 (too long for the registers: read twice).
TEST(CudaCrossEntropy, Bf16LogitsEqualTheFp32KernelsOnTheWidenedValues) {
 for (const Problem& pr : {Problem(11, 1031, 40, 6.0f, 17), Problem(9, 9001, 0, 8.0f, 19),
                           Problem(6, 64553, 7, 8.0f, 21), Problem(2, 65601, 0, 8.0f, 23)}) {
  for (const int64_t stride : {pr.V, pr.V + 9, (pr.V + 63) / 64 * 64}) {
    const int64_t n = pr.T * stride;
    std::vector<uint16_t> logits16(static_cast<size_t>(n), 0x7FC1);  // a NaN in the padding: never read
    std::vector<float> widened(static_cast<size_t>(n), 0.0f);
    for (int64_t r = 0; r < pr.T; ++r) {
      for (int64_t c = 0; c < pr.V; ++c) {
        logits16[r * stride + c] = f32_to_bf16(pr.logits[r * pr.V + c]);
        widened[r * stride + c] = bf16_to_f32(logits16[r * stride + c]);
      }
    }
    simt::DeviceBuffer<float> logits32(widened), weights(pr.weights);
    simt::DeviceBuffer<int32_t> targets(pr.targets);
    simt::DeviceBuffer<double> workspace(static_cast<size_t>(pr.T)), want_sum(1);
    simt::DeviceBuffer<float> want_losses(static_cast<size_t>(pr.T));
    simt::DeviceBuffer<uint16_t> want(static_cast<size_t>(n));
    ASSERT_EQ(cross_entropy_forward_backward_bf16(reinterpret_cast<__nv_bfloat16*>(want.data()), want_losses.data(),
                                                  want_sum.data(), workspace.data(), logits32.data(), targets.data(),
                                                  weights.data(), pr.T, pr.V, pr.class_begin, 0.5f, nullptr, stride),
              cudaSuccess);
    simt::device_synchronize();
    const std::vector<uint16_t> w = want.download();
    enum Output { kSeparate, kOffPhase, kInPlace, kInPlaceOneRowPerBlock, kInPlaceTwoPass };
    for (const Output output : {kSeparate, kOffPhase, kInPlace, kInPlaceOneRowPerBlock, kInPlaceTwoPass}) {
      const std::string what =
          "classes " + std::to_string(pr.V) + " stride " + std::to_string(stride) + " output " + std::to_string(output);
      simt::DeviceBuffer<uint16_t> logits(logits16), out(static_cast<size_t>(n + 1));
      simt::DeviceBuffer<float> losses(static_cast<size_t>(pr.T));
      simt::DeviceBuffer<double> sum(1);
      const auto* in = reinterpret_cast<const __nv_bfloat16*>(logits.data());
      const bool in_place = output == kInPlace || output == kInPlaceOneRowPerBlock || output == kInPlaceTwoPass;
      uint16_t* got_bits = in_place ? logits.data() : out.data() + (output == kOffPhase ? 1 : 0);
      const auto run = output == kInPlaceTwoPass           ? cross_entropy_forward_backward_bf16_two_pass
                       : output == kInPlaceOneRowPerBlock ? cross_entropy_forward_backward_bf16_one_row_per_block
                                                          : static_cast<decltype(&cross_entropy_forward_backward_bf16_two_pass)>(
                                                                cross_entropy_forward_backward_bf16);
      const cudaError_t status = run(reinterpret_cast<__nv_bfloat16*>(got_bits), losses.data(), sum.data(),
                                     workspace.data(), in, targets.data(), weights.data(), pr.T, pr.V,
                                     pr.class_begin, 0.5f, nullptr, stride);
      if (output == kInPlaceOneRowPerBlock && pr.V > 65536) {  // (too long for the registers)
        EXPECT_EQ(status, cudaErrorNotSupported) << what;
        continue;
      }
      ASSERT_EQ(status, cudaSuccess) << what;
      simt::device_synchronize();
      const std::vector<uint16_t> g = in_place ? logits.download() : out.download();
      const int64_t at = output == kOffPhase ? 1 : 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(g[at + i], w[i]) << what << " at row " << i / stride << " column " << i % stride;
      }
      EXPECT_EQ(losses.download(), want_losses.download()) << what;
      EXPECT_EQ(sum.download(), want_sum.download()) << what;
    }
    // forward only
    simt::DeviceBuffer<uint16_t> logits(logits16);
    simt::DeviceBuffer<float> losses(static_cast<size_t>(pr.T));
    simt::DeviceBuffer<double> sum(1);
    ASSERT_EQ(cross_entropy_forward(losses.data(), sum.data(), workspace.data(),
                                    reinterpret_cast<const __nv_bfloat16*>(logits.data()), targets.data(),
                                    weights.data(), pr.T, pr.V, pr.class_begin, nullptr, stride),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(losses.download(), want_losses.download()) << "forward only, stride " << stride;
    EXPECT_EQ(sum.download(), want_sum.download()) << "forward only, stride " << stride;
    EXPECT_EQ(logits.download(), logits16) << "forward only wrote its logits, stride " << stride;
  }
 }
}

// The class range split in two parts: per-part statistics, combined on the host, then each
// part's dlogits from the combined statistics, against the CPU pieces.
TEST(CudaCrossEntropy, VocabParallelPiecesMatchCpu) {
  const Problem pr(9, 1031, 0, 8.0f, 11);
  const int64_t split = 517;  // odd, so the second part's rows start out of 16-byte phase
  const int64_t part_begin[2] = {0, split}, part_size[2] = {split, pr.V - split};
  std::vector<float> combined_max(static_cast<size_t>(pr.T), -INFINITY);
  std::vector<double> combined_sum(static_cast<size_t>(pr.T), 0.0);
  std::vector<std::vector<float>> part_logits(2);
  for (int k = 0; k < 2; ++k) {
    for (int64_t r = 0; r < pr.T; ++r) {
      const float* row = pr.logits.data() + r * pr.V + part_begin[k];
      part_logits[k].insert(part_logits[k].end(), row, row + part_size[k]);
    }
    std::vector<float> want_max(static_cast<size_t>(pr.T));
    std::vector<double> want_sum(static_cast<size_t>(pr.T)), want_z(static_cast<size_t>(pr.T));
    ops::cross_entropy_partial_stats(want_max.data(), want_sum.data(), want_z.data(), part_logits[k].data(),
                                     pr.targets.data(), pr.weights.data(), pr.T, part_size[k], part_begin[k]);
    simt::DeviceBuffer<float> logits(part_logits[k]), weights(pr.weights), row_max(static_cast<size_t>(pr.T));
    simt::DeviceBuffer<int32_t> targets(pr.targets);
    simt::DeviceBuffer<double> row_sum(static_cast<size_t>(pr.T)), target_logit(static_cast<size_t>(pr.T));
    ASSERT_EQ(cross_entropy_partial_stats(row_max.data(), row_sum.data(), target_logit.data(), logits.data(),
                                          targets.data(), weights.data(), pr.T, part_size[k], part_begin[k], nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::vector<float> got_max = row_max.download();
    const std::vector<double> got_sum = row_sum.download(), got_z = target_logit.download();
    for (int64_t r = 0; r < pr.T; ++r) {
      EXPECT_EQ(got_max[r], want_max[r]) << "part " << k << " row " << r;
      EXPECT_EQ(got_z[r], want_z[r]) << "part " << k << " row " << r;
      EXPECT_NEAR(got_sum[r], want_sum[r], 1e-6 * want_sum[r]) << "part " << k << " row " << r;
      // Combine (what the ranks do): the larger max, the sums rescaled to it.
      const float m = std::max(combined_max[r], want_max[r]);
      if (m != -INFINITY) {
        combined_sum[r] = combined_sum[r] * std::exp(static_cast<double>(combined_max[r]) - m) +
                          want_sum[r] * std::exp(static_cast<double>(want_max[r]) - m);
      }
      combined_max[r] = m;
    }
  }
  for (int k = 0; k < 2; ++k) {
    std::vector<float> want_d(part_logits[k].size());
    ops::cross_entropy_backward_from_stats(want_d.data(), part_logits[k].data(), pr.targets.data(),
                                           pr.weights.data(), combined_max.data(), combined_sum.data(), pr.T,
                                           part_size[k], part_begin[k], 0.5f);
    simt::DeviceBuffer<float> logits(part_logits[k]), weights(pr.weights), row_max(combined_max);
    simt::DeviceBuffer<int32_t> targets(pr.targets);
    simt::DeviceBuffer<double> row_sum(combined_sum);
    // In place: dlogits overwrite the part's logits.
    ASSERT_EQ(cross_entropy_backward_from_stats(logits.data(), logits.data(), targets.data(), weights.data(),
                                                row_max.data(), row_sum.data(), pr.T, part_size[k], part_begin[k],
                                                0.5f, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    expect_near_all(logits.download(), to_double(want_d), 1e-10, 2e-6, "part " + std::to_string(k));
  }
}

// The device trainer's vocabulary-parallel forms: the pieces over rows padded to a stride (the
// head's GEMMs run over padded class counts), statistics as from compact rows (within the sum's
// reordering: another 16-byte phase), and bf16 dlogits bitwise the fp32 ones converted, with zero
// padding columns and nothing past the last row; an fp32 out leaves the padding alone.
TEST(CudaCrossEntropy, VocabParallelPiecesOnPaddedRowsAndBf16) {
  const Problem pr(9, 517, 300, 8.0f, 14);  // targets in [300, 817): the rows' part
  const int64_t stride = 576, n = pr.T * stride;
  std::vector<float> strided(static_cast<size_t>(n), ops::test_util::kNaN);
  for (int64_t r = 0; r < pr.T; ++r) std::copy_n(pr.logits.begin() + r * pr.V, pr.V, strided.begin() + r * stride);
  std::vector<float> want_max(static_cast<size_t>(pr.T));
  std::vector<double> want_sum(static_cast<size_t>(pr.T)), want_z(static_cast<size_t>(pr.T));
  ops::cross_entropy_partial_stats(want_max.data(), want_sum.data(), want_z.data(), pr.logits.data(),
                                   pr.targets.data(), pr.weights.data(), pr.T, pr.V, pr.class_begin);
  simt::DeviceBuffer<float> logits(strided), weights(pr.weights), row_max(static_cast<size_t>(pr.T));
  simt::DeviceBuffer<int32_t> targets(pr.targets);
  simt::DeviceBuffer<double> row_sum(static_cast<size_t>(pr.T)), target_logit(static_cast<size_t>(pr.T));
  ASSERT_EQ(cross_entropy_partial_stats(row_max.data(), row_sum.data(), target_logit.data(), logits.data(),
                                        targets.data(), weights.data(), pr.T, pr.V, pr.class_begin, nullptr, stride),
            cudaSuccess);
  simt::device_synchronize();
  const std::vector<float> got_max = row_max.download();
  const std::vector<double> got_sum = row_sum.download(), got_z = target_logit.download();
  for (int64_t r = 0; r < pr.T; ++r) {
    EXPECT_EQ(got_max[r], want_max[r]) << "row " << r;
    EXPECT_EQ(got_z[r], want_z[r]) << "row " << r;
    EXPECT_NEAR(got_sum[r], want_sum[r], 1e-6 * want_sum[r]) << "row " << r;
  }
  // backward from the part's own statistics (as if it were the whole range)
  simt::DeviceBuffer<float> d32(strided);  // NaN padding: must stay untouched
  simt::DeviceBuffer<uint16_t> want(static_cast<size_t>(n)), got(static_cast<size_t>(n + 1));
  ASSERT_EQ(cross_entropy_backward_from_stats(d32.data(), logits.data(), targets.data(), weights.data(),
                                              row_max.data(), row_sum.data(), pr.T, pr.V, pr.class_begin, 0.5f,
                                              nullptr, stride),
            cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(reinterpret_cast<__nv_bfloat16*>(want.data()), d32.data(), n, nullptr), cudaSuccess);
  ASSERT_EQ(cross_entropy_backward_from_stats_bf16(reinterpret_cast<__nv_bfloat16*>(got.data()), logits.data(),
                                                   targets.data(), weights.data(), row_max.data(), row_sum.data(),
                                                   pr.T, pr.V, pr.class_begin, 0.5f, nullptr, stride),
            cudaSuccess);
  simt::device_synchronize();
  std::vector<float> want_d(static_cast<size_t>(pr.T * pr.V));
  ops::cross_entropy_backward_from_stats(want_d.data(), pr.logits.data(), pr.targets.data(), pr.weights.data(),
                                         want_max.data(), want_sum.data(), pr.T, pr.V, pr.class_begin, 0.5f);
  const std::vector<float> d = d32.download();
  const std::vector<uint16_t> w = want.download(), g = got.download();
  std::vector<float> got_d;
  for (int64_t r = 0; r < pr.T; ++r) {
    for (int64_t c = 0; c < stride; ++c) {
      if (c < pr.V) {
        got_d.push_back(d[r * stride + c]);
        ASSERT_EQ(g[r * stride + c], w[r * stride + c]) << "row " << r << " class " << c;
      } else {
        ASSERT_TRUE(std::isnan(d[r * stride + c])) << "fp32 padding written, row " << r;
        ASSERT_EQ(g[r * stride + c], 0) << "bf16 padding not zero, row " << r;
      }
    }
  }
  EXPECT_EQ(g[n], 0xFFFF) << "wrote past the last row";
  expect_near_all(got_d, to_double(want_d), 1e-10, 2e-6, "strided dlogits from stats");
  EXPECT_EQ(cross_entropy_partial_stats(row_max.data(), row_sum.data(), target_logit.data(), logits.data(),
                                        targets.data(), weights.data(), pr.T, pr.V, pr.class_begin, nullptr, pr.V - 1),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace reclm::cuda
