// embedding_bag_forward / embedding_bag_backward (kernels/cuda/embedding_bag.cu) against
// ops::embedding_bag_forward / ops::embedding_bag_backward, on the emulator (label emu) and a GPU
// (label gpu). fp32: both must equal the CPU reference bitwise (same summation order, the same
// IEEE division for kMean).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/embedding_bag.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#if !defined(__CUDACC__)
#include "kernels/simt/emulator_options.h"
#endif

namespace reclm::cuda {
namespace {

using ops::EmbeddingBagMode;
using ops::test_util::random_ints;
using ops::test_util::uniform;

// offsets [n_bags + 1] for bags of 0..max_size ids (every 7th bag empty), drawn by mt19937(seed).
std::vector<int32_t> random_offsets(int64_t n_bags, int32_t max_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> size(1, max_size);
  std::vector<int32_t> offsets(static_cast<size_t>(n_bags + 1), 0);
  for (int64_t b = 0; b < n_bags; ++b) offsets[b + 1] = offsets[b] + (b % 7 == 3 ? 0 : size(rng));
  return offsets;
}

// Ids in [0, vocab / 2] (upper rows untouched), every 4th position on row 1 (long runs).
std::vector<int32_t> bag_ids(int64_t n_ids, int32_t vocab, uint32_t seed) {
  std::vector<int32_t> ids = random_ints(n_ids, vocab / 2, seed);
  for (int64_t j = 0; j < n_ids; j += 4) ids[j] = 1;
  return ids;
}

int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  return -1;
}

struct BagShape {
  int64_t n_bags;
  int32_t max_bag;
  int32_t vocab;
  int64_t dim;
};

// Odd bag counts, dims for the scalar (1, 3, 1027) and float4 (64, 520) paths, bags longer than the
// kernels' 4-row unroll, a vocabulary over 65536 (three radix passes).
const std::vector<BagShape>& shapes() {
  static const std::vector<BagShape> s = {{1, 3, 4, 1},        {257, 9, 60, 1},   {131, 6, 200, 3},
                                          {301, 11, 120, 64},  {37, 5, 90, 1027}, {45, 9, 80, 520}, {411, 7, 70001, 3}};
  return s;
}

constexpr EmbeddingBagMode kModes[] = {EmbeddingBagMode::kSum, EmbeddingBagMode::kMean};
const char* name(EmbeddingBagMode mode) { return mode == EmbeddingBagMode::kMean ? "mean" : "sum"; }

TEST(CudaEmbeddingBag, ForwardEqualsReferenceBitwise) {
  for (EmbeddingBagMode mode : kModes) {
    for (const BagShape& s : shapes()) {
      const auto offsets = random_offsets(s.n_bags, s.max_bag, 1);
      const auto ids = bag_ids(offsets.back(), s.vocab, 2);
      const auto table = uniform(static_cast<size_t>(s.vocab * s.dim), 3);
      std::vector<float> want(static_cast<size_t>(s.n_bags * s.dim));
      ops::embedding_bag_forward(want.data(), table.data(), ids.data(), offsets.data(), s.n_bags,
                                 s.dim, mode);
      simt::DeviceBuffer<float> d_table(table), d_out(want.size() + 3);  // poisoned, + a tail
      simt::DeviceBuffer<int32_t> d_ids(ids), d_offsets(offsets);
      ASSERT_EQ(embedding_bag_forward(d_out.data(), d_table.data(), d_ids.data(),
                                      d_offsets.data(), s.n_bags, s.dim, mode, nullptr),
                cudaSuccess);
      simt::device_synchronize();
      std::vector<float> got = d_out.download();
      for (size_t i = want.size(); i < got.size(); ++i) EXPECT_TRUE(std::isnan(got[i])) << "past end";
      got.resize(want.size());
      EXPECT_EQ(first_difference(got, want), -1)
          << name(mode) << " n_bags=" << s.n_bags << " dim=" << s.dim;
      // Empty bags (every 7th, from b = 3) must be exact zeros, not left poisoned.
      for (int64_t b = 3; b < s.n_bags; b += 7)
        for (int64_t c = 0; c < s.dim; ++c) ASSERT_EQ(got[b * s.dim + c], 0.0f) << "bag " << b;
    }
  }
}

std::vector<float> run_bag_backward(const std::vector<float>& init, const std::vector<float>& dout,
                                    const std::vector<int32_t>& ids,
                                    const std::vector<int32_t>& offsets, int32_t vocab,
                                    int64_t dim, EmbeddingBagMode mode) {
  const int64_t n_bags = static_cast<int64_t>(offsets.size()) - 1;
  const int64_t n_ids = offsets.back();
  const size_t bytes = embedding_bag_backward_workspace_bytes(n_ids, vocab);
  simt::DeviceBuffer<int32_t> workspace((bytes + 3) / 4);  // starts poisoned (-1)
  simt::DeviceBuffer<float> d_dtable(init), d_dout(dout);
  simt::DeviceBuffer<int32_t> d_ids(ids), d_offsets(offsets);
  EXPECT_EQ(embedding_bag_backward(d_dtable.data(), d_dout.data(), d_ids.data(), d_offsets.data(),
                                   n_bags, n_ids, vocab, dim, mode, workspace.data(), bytes,
                                   nullptr),
            cudaSuccess);
  simt::device_synchronize();
  return d_dtable.download();
}

// dtable starts from random values; rows no id touches must keep their bits.
TEST(CudaEmbeddingBag, BackwardEqualsReferenceBitwise) {
  for (EmbeddingBagMode mode : kModes) {
    for (const BagShape& s : shapes()) {
      const auto offsets = random_offsets(s.n_bags, s.max_bag, 4);
      const auto ids = bag_ids(offsets.back(), s.vocab, 5);
      const auto dout = uniform(static_cast<size_t>(s.n_bags * s.dim), 6);
      const auto init = uniform(static_cast<size_t>(s.vocab * s.dim), 7);
      std::vector<float> want = init;
      ops::embedding_bag_backward(want.data(), dout.data(), ids.data(), offsets.data(), s.n_bags,
                                  s.dim, mode);
      const auto got = run_bag_backward(init, dout, ids, offsets, s.vocab, s.dim, mode);
      EXPECT_EQ(first_difference(got, want), -1)
          << name(mode) << " n_bags=" << s.n_bags << " vocab=" << s.vocab << " dim=" << s.dim;
      for (size_t i = static_cast<size_t>((s.vocab / 2 + 1) * s.dim); i < got.size(); ++i)
        ASSERT_EQ(std::memcmp(&got[i], &init[i], sizeof(float)), 0) << "untouched row changed at " << i;
    }
  }
}

TEST(CudaEmbeddingBag, BackwardIsBitwiseReproducible) {
  const int64_t n_bags = 203, dim = 12;
  const int32_t vocab = 150;
  const auto offsets = random_offsets(n_bags, 8, 8);
  const auto ids = bag_ids(offsets.back(), vocab, 9);
  const auto dout = uniform(static_cast<size_t>(n_bags * dim), 10);
  const auto init = uniform(static_cast<size_t>(vocab * dim), 11);
  const auto mode = EmbeddingBagMode::kMean;
  const auto first = run_bag_backward(init, dout, ids, offsets, vocab, dim, mode);
  EXPECT_EQ(first_difference(first, run_bag_backward(init, dout, ids, offsets, vocab, dim, mode)), -1);
#if !defined(__CUDACC__)
  for (uint64_t seed : {3u, 99u}) {
    for (int workers : {1, 4}) {
      simt::ScopedEmulatorOptions options({seed, workers});
      EXPECT_EQ(first_difference(first, run_bag_backward(init, dout, ids, offsets, vocab, dim, mode)), -1)
          << "seed " << seed << " workers " << workers;
    }
  }
#endif
}

}  // namespace
}  // namespace reclm::cuda
