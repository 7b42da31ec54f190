// embedding_forward / embedding_backward / embedding_backward_atomic (kernels/cuda/embedding.cu)
// against ops::embedding_forward / ops::embedding_backward, on the emulator (label emu) and a
// GPU (label gpu). fp32 tables: forward and the deterministic backward must equal the CPU
// reference bitwise; the atomic backward within the tolerance stated at its test. bf16 tables:
// the forward copies each row's bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <vector>

#include "kernels/cuda/embedding.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#if !defined(__CUDACC__)
#include "kernels/simt/emulator_options.h"
#endif

namespace reclm::cuda {
namespace {

using ops::test_util::random_ints;
using ops::test_util::uniform;

// Ids in [0, vocab / 2] (the upper half of the table is never touched) with every 5th token
// on row 3, so some rows collect long runs (more than a warp's 32 slots) and others one token.
std::vector<int32_t> skewed_ids(int64_t n_tokens, int32_t vocab, uint32_t seed) {
  std::vector<int32_t> ids = random_ints(n_tokens, vocab / 2, seed);
  for (int64_t t = 0; t < n_tokens; t += 5) ids[t] = std::min(3, vocab - 1);
  return ids;
}

// Rows above this one are never touched by skewed_ids: they must keep their starting bits.
int64_t highest_touched_row(int32_t vocab) { return std::max(vocab / 2, std::min(3, vocab - 1)); }

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Index of the first element whose bits differ, or -1.
int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  return -1;
}

struct Shape {
  int64_t n_tokens;
  int32_t vocab;
  int64_t dim;
};

// Odd token counts (not multiples of the 256-thread block), dims for the scalar path (1, 3,
// 1027) and the float4 path (64; 520 = 130 float4 per row: batched loads plus a tail), a
// vocabulary over 65536 (a third radix pass).
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {{1, 5, 1},     {257, 40, 1},   {1001, 97, 3},
                                       {300, 64, 64}, {3001, 1000, 64}, {131, 50, 1027}, {97, 60, 520},
                                       {2003, 70001, 3}};
  return s;
}

TEST(CudaEmbedding, ForwardEqualsReferenceBitwise) {
  for (const Shape& s : shapes()) {
    const auto table = uniform(static_cast<size_t>(s.vocab * s.dim), 1);
    const auto ids = skewed_ids(s.n_tokens, s.vocab, 2);
    std::vector<float> want(static_cast<size_t>(s.n_tokens * s.dim));
    ops::embedding_forward(want.data(), table.data(), ids.data(), s.n_tokens, s.dim);
    const int64_t tail = 5;  // poisoned elements past the output that must stay untouched
    simt::DeviceBuffer<float> d_table(table), d_out(want.size() + tail);
    simt::DeviceBuffer<int32_t> d_ids(ids);
    ASSERT_EQ(embedding_forward(d_out.data(), d_table.data(), d_ids.data(), s.n_tokens, s.dim,
                                nullptr),
              cudaSuccess);
    simt::device_synchronize();
    std::vector<float> got = d_out.download();
    for (int64_t i = 0; i < tail; ++i) EXPECT_TRUE(std::isnan(got[want.size() + i])) << "wrote past the end";
    got.resize(want.size());
    EXPECT_EQ(first_difference(got, want), -1) << "n_tokens=" << s.n_tokens << " dim=" << s.dim;
  }
}

// dim % 4 == 0 but a pointer off 16-byte alignment: the scalar path must take over.
TEST(CudaEmbedding, ForwardHandlesMisalignedPointers) {
  const int64_t n_tokens = 77, dim = 8;
  const int32_t vocab = 30;
  const auto table = uniform(static_cast<size_t>(vocab * dim), 3);
  const auto ids = skewed_ids(n_tokens, vocab, 4);
  std::vector<float> want(static_cast<size_t>(n_tokens * dim));
  ops::embedding_forward(want.data(), table.data(), ids.data(), n_tokens, dim);
  std::vector<float> table_shifted(table.size() + 1, 0.0f);
  std::copy(table.begin(), table.end(), table_shifted.begin() + 1);
  simt::DeviceBuffer<float> d_table(table_shifted), d_out(want.size() + 1);
  simt::DeviceBuffer<int32_t> d_ids(ids);
  ASSERT_EQ(embedding_forward(d_out.data() + 1, d_table.data() + 1, d_ids.data(), n_tokens, dim,
                              nullptr),
            cudaSuccess);
  simt::device_synchronize();
  std::vector<float> got = d_out.download();
  got.erase(got.begin());
  EXPECT_EQ(first_difference(got, want), -1);
}

// The bf16 lookup copies bit patterns: random ones with NaN payloads (a signalling one among
// them), both zeros and infinities in the table, dims for the 16-byte path (8, 520) and the 2-byte
// one (1, 3, 12, 1027), then pointers one element off 16-byte alignment at a dim the 16-byte path
// would take. Past the output stays poisoned.
TEST(CudaEmbedding, Bf16ForwardCopiesRowBits) {
  struct Case {
    int64_t n_tokens;
    int32_t vocab;
    int64_t dim;
    int64_t offset;  // elements before table and out
  };
  for (const Case& c : {Case{1, 5, 1, 0}, Case{1001, 97, 3, 0}, Case{257, 40, 8, 0}, Case{300, 64, 12, 0},
                        Case{97, 60, 520, 0}, Case{131, 50, 1027, 0}, Case{77, 30, 64, 1}}) {
    const std::vector<int32_t> draws = random_ints(c.vocab * c.dim, 65536, 7);
    std::vector<uint16_t> table(static_cast<size_t>(c.offset + c.vocab * c.dim), 0);
    for (size_t i = 0; i < draws.size(); ++i) table[c.offset + i] = static_cast<uint16_t>(draws[i]);
    const uint16_t specials[] = {0x7f81, 0xffc3, 0x0000, 0x8000, 0x7f80, 0xff80};
    for (size_t i = 0; i < std::size(specials) && 3 * i < draws.size(); ++i) table[c.offset + 3 * i] = specials[i];
    const auto ids = skewed_ids(c.n_tokens, c.vocab, 8);
    std::vector<uint16_t> want(static_cast<size_t>(c.n_tokens * c.dim));
    for (int64_t t = 0; t < c.n_tokens; ++t)
      std::copy_n(table.begin() + c.offset + ids[t] * c.dim, c.dim, want.begin() + t * c.dim);
    const int64_t tail = 5;
    simt::DeviceBuffer<uint16_t> d_table(table), d_out(static_cast<size_t>(c.offset) + want.size() + tail);
    simt::DeviceBuffer<int32_t> d_ids(ids);
    ASSERT_EQ(embedding_forward(reinterpret_cast<__nv_bfloat16*>(d_out.data() + c.offset),
                                reinterpret_cast<const __nv_bfloat16*>(d_table.data() + c.offset), d_ids.data(),
                                c.n_tokens, c.dim, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::vector<uint16_t> got = d_out.download();
    const std::vector<uint16_t> rows(got.begin() + c.offset, got.begin() + c.offset + want.size());
    EXPECT_TRUE(rows == want) << "n_tokens=" << c.n_tokens << " dim=" << c.dim << " offset=" << c.offset;
    for (int64_t i = 0; i < c.offset; ++i) EXPECT_EQ(got[i], 0xffff) << "wrote before the start";
    for (int64_t i = 0; i < tail; ++i) EXPECT_EQ(got[c.offset + want.size() + i], 0xffff) << "wrote past the end";
  }
}

// Runs the deterministic backward on device copies of init and returns dtable.
std::vector<float> run_deterministic_backward(const std::vector<float>& init,
                                              const std::vector<float>& dout,
                                              const std::vector<int32_t>& ids, int32_t vocab,
                                              int64_t dim) {
  const int64_t n_tokens = static_cast<int64_t>(ids.size());
  const size_t bytes = embedding_backward_workspace_bytes(n_tokens, vocab);
  simt::DeviceBuffer<int32_t> workspace((bytes + 3) / 4);  // starts poisoned (-1)
  simt::DeviceBuffer<float> d_dtable(init), d_dout(dout);
  simt::DeviceBuffer<int32_t> d_ids(ids);
  EXPECT_EQ(embedding_backward(d_dtable.data(), d_dout.data(), d_ids.data(), n_tokens, vocab, dim,
                               workspace.data(), bytes, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  return d_dtable.download();
}

// dtable starts from random values; repeated ids; rows no token touches must keep their bits.
TEST(CudaEmbedding, DeterministicBackwardEqualsReferenceBitwise) {
  for (const Shape& s : shapes()) {
    const auto ids = skewed_ids(s.n_tokens, s.vocab, 5);
    const auto dout = uniform(static_cast<size_t>(s.n_tokens * s.dim), 6);
    const auto init = uniform(static_cast<size_t>(s.vocab * s.dim), 7);
    std::vector<float> want = init;
    ops::embedding_backward(want.data(), dout.data(), ids.data(), s.n_tokens, s.dim);
    const std::vector<float> got = run_deterministic_backward(init, dout, ids, s.vocab, s.dim);
    EXPECT_EQ(first_difference(got, want), -1)
        << "n_tokens=" << s.n_tokens << " vocab=" << s.vocab << " dim=" << s.dim;
    const int64_t first_untouched = (highest_touched_row(s.vocab) + 1) * s.dim;
    for (int64_t i = first_untouched; i < static_cast<int64_t>(got.size()); ++i)
      ASSERT_EQ(std::memcmp(&got[i], &init[i], sizeof(float)), 0) << "untouched row changed at " << i;
  }
}

// Same bits on every run; on the emulator also under other schedule seeds and worker counts.
TEST(CudaEmbedding, DeterministicBackwardIsBitwiseReproducible) {
  const int64_t n_tokens = 1537, dim = 20;
  const int32_t vocab = 300;
  const auto ids = skewed_ids(n_tokens, vocab, 8);
  const auto dout = uniform(static_cast<size_t>(n_tokens * dim), 9);
  const auto init = uniform(static_cast<size_t>(vocab * dim), 10);
  const std::vector<float> first = run_deterministic_backward(init, dout, ids, vocab, dim);
  EXPECT_TRUE(bitwise_equal(first, run_deterministic_backward(init, dout, ids, vocab, dim)));
#if !defined(__CUDACC__)
  for (uint64_t seed : {2u, 77u, 123457u}) {
    for (int workers : {1, 4}) {
      simt::ScopedEmulatorOptions options({seed, workers});
      EXPECT_TRUE(bitwise_equal(first, run_deterministic_backward(init, dout, ids, vocab, dim)))
          << "seed " << seed << " workers " << workers;
    }
  }
#endif
}

// The workspace holds nothing between calls: a second call with the same workspace (now full of
// the first call's sort) and other ids accumulates exactly like the CPU reference called twice.
TEST(CudaEmbedding, DeterministicBackwardReusesWorkspace) {
  const int64_t n_tokens = 700, dim = 36;
  const int32_t vocab = 400;
  const auto ids_a = skewed_ids(n_tokens, vocab, 14);
  const auto ids_b = random_ints(n_tokens, vocab - 1, 15);
  const auto dout = uniform(static_cast<size_t>(n_tokens * dim), 16);
  const auto init = uniform(static_cast<size_t>(vocab * dim), 17);
  std::vector<float> want = init;
  ops::embedding_backward(want.data(), dout.data(), ids_a.data(), n_tokens, dim);
  ops::embedding_backward(want.data(), dout.data(), ids_b.data(), n_tokens, dim);
  const size_t bytes = embedding_backward_workspace_bytes(n_tokens, vocab);
  simt::DeviceBuffer<int32_t> workspace((bytes + 3) / 4);
  simt::DeviceBuffer<float> d_dtable(init), d_dout(dout);
  simt::DeviceBuffer<int32_t> d_ids_a(ids_a), d_ids_b(ids_b);
  for (const simt::DeviceBuffer<int32_t>* ids : {&d_ids_a, &d_ids_b}) {
    ASSERT_EQ(embedding_backward(d_dtable.data(), d_dout.data(), ids->data(), n_tokens, vocab, dim,
                                 workspace.data(), bytes, nullptr),
              cudaSuccess);
  }
  simt::device_synchronize();
  EXPECT_EQ(first_difference(d_dtable.download(), want), -1);
}

TEST(CudaEmbedding, DeterministicBackwardRejectsSmallWorkspace) {
  const int64_t n_tokens = 10, dim = 4;
  const int32_t vocab = 8;
  const size_t bytes = embedding_backward_workspace_bytes(n_tokens, vocab);
  simt::DeviceBuffer<int32_t> workspace(bytes / 4), ids(static_cast<size_t>(n_tokens));
  simt::DeviceBuffer<float> dtable(static_cast<size_t>(vocab * dim)),
      dout(static_cast<size_t>(n_tokens * dim));
  EXPECT_EQ(embedding_backward(dtable.data(), dout.data(), ids.data(), n_tokens, vocab, dim,
                               workspace.data(), bytes - 4, nullptr),
            cudaErrorInvalidValue);
}

// Atomic adds land in any order. Tolerance (fp32): each element of a row hit k times is a sum
// of k values in [-1, 1] plus its start in [-1, 1]; any order is within k * 2^-24 * (k + 1) of
// the float64 sum, so atol 1e-5 * k_max with k_max <= ~n_tokens / 5 + a few.
TEST(CudaEmbedding, AtomicBackwardMatchesReferenceWithinTolerance) {
  for (const Shape& s : shapes()) {
    const auto ids = skewed_ids(s.n_tokens, s.vocab, 11);
    const auto dout = uniform(static_cast<size_t>(s.n_tokens * s.dim), 12);
    const auto init = uniform(static_cast<size_t>(s.vocab * s.dim), 13);
    std::vector<double> want(init.begin(), init.end());
    for (int64_t t = 0; t < s.n_tokens; ++t)
      for (int64_t c = 0; c < s.dim; ++c) want[ids[t] * s.dim + c] += dout[t * s.dim + c];
    std::vector<int64_t> hits(static_cast<size_t>(s.vocab), 0);
    for (int32_t id : ids) ++hits[id];
    const int64_t k_max = *std::max_element(hits.begin(), hits.end());
    simt::DeviceBuffer<float> d_dtable(init), d_dout(dout);
    simt::DeviceBuffer<int32_t> d_ids(ids);
    ASSERT_EQ(embedding_backward_atomic(d_dtable.data(), d_dout.data(), d_ids.data(), s.n_tokens,
                                        s.dim, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::vector<float> got = d_dtable.download();
    double max_err = 0.0;
    for (size_t i = 0; i < got.size(); ++i) max_err = std::max(max_err, std::abs(got[i] - want[i]));
    const double tolerance = 1e-6 + 1e-7 * double(k_max) * double(k_max + 1);
    EXPECT_LE(max_err, tolerance) << "n_tokens=" << s.n_tokens << " dim=" << s.dim;
    std::cout << "atomic backward n_tokens=" << s.n_tokens << " dim=" << s.dim << " max |err| "
              << max_err << " (tolerance " << tolerance << ")\n";
    const int64_t first_untouched = (highest_touched_row(s.vocab) + 1) * s.dim;
    for (int64_t i = first_untouched; i < static_cast<int64_t>(got.size()); ++i)
      ASSERT_EQ(std::memcmp(&got[i], &init[i], sizeof(float)), 0) << "untouched row changed at " << i;
  }
}

// scatter_add_rows: source rows picked by index (repeated and skipped ones), destination rows
// repeated; bitwise the CPU loop in position order; untouched destination rows keep their bits.
TEST(CudaEmbedding, ScatterAddRowsEqualsPositionOrderLoop) {
  for (const int64_t dim : {int64_t{3}, int64_t{64}}) {
    const int64_t n = 901, src_count = 400;
    const int32_t dst_count = 150;
    const auto dst_rows = skewed_ids(n, dst_count, 31);  // rows > dst_count / 2 untouched
    const auto src_rows = random_ints(n, static_cast<int32_t>(src_count - 1), 32);
    const auto src = uniform(static_cast<size_t>(src_count * dim), 33);
    const auto init = uniform(static_cast<size_t>(dst_count * dim), 34);
    std::vector<float> want = init;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t c = 0; c < dim; ++c) want[dst_rows[p] * dim + c] += src[src_rows[p] * dim + c];
    simt::DeviceBuffer<float> d_dst(init), d_src(src);
    simt::DeviceBuffer<int32_t> d_dst_rows(dst_rows), d_src_rows(src_rows);
    const size_t ws_bytes = embedding_backward_workspace_bytes(n, dst_count);
    simt::DeviceBuffer<char> ws(ws_bytes);
    ASSERT_EQ(scatter_add_rows(d_dst.data(), d_src.data(), d_dst_rows.data(), d_src_rows.data(), n, dst_count, dim,
                               ws.data(), ws_bytes, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(first_difference(d_dst.download(), want), -1) << "dim " << dim;
  }
}

}  // namespace
}  // namespace reclm::cuda
