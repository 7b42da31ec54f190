// attention_backward (kernels/cuda/attention_backward.cu) on the emulator (label emu) and a GPU
// (label gpu), against gradients computed here in float64 from the same bf16 inputs, and against
// ops::attention_backward (kernels/cpu/attention.cc).
// Inputs: bf16-rounded random q, k, v, dout; out and lse from ops::attention_forward on them, out
// rounded to bf16 as a real forward would give it. Packed ragged segments (lengths 1, 7, 0, 63,
// 129, 300), every mask kind (causal, prefix 0 < p < len, prefix 0, prefix = len), GQA ratios 1, 2,
// 4, head dims 64 and 128, both modes. Outputs start poisoned (0xFFFF = bf16 NaN), and so does the
// workspace.
// Also the trainer's layout: q, k, v from fused QKV rows and dq, dk, dv into them, dq and dk
// rotated back through RoPE (1D and 2D pairing) against the float64 gradients rotated back.
// Tolerance (bf16 outputs): each gradient's rounding is 2^-8 relative; P and dS enter the mma as
// bf16 (2^-8 each) and sums run in fp32 over up to 300 keys, so we require
//   ||got − want|| / ||want|| <= 1e-2   and   max |got − want| <= 3e-2 · max |want|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "kernels/cuda/attention_backward.h"
#include "kernels/cuda/rope.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"
#if !defined(__CUDACC__)
#include "kernels/simt/emulator_options.h"
#endif

namespace reclm::cuda {
namespace {

struct Case {
  std::vector<int32_t> lens;
  std::vector<int32_t> prefix;  // empty: causal (prefix_lens = nullptr)
  int64_t n_heads, n_kv_heads, head_dim;
  uint32_t seed;
};

struct Problem {
  ops::AttentionShape shape;
  std::vector<int32_t> cu, prefix;
  int64_t max_seqlen;
  std::vector<float> q, k, v, dout, out, lse;  // bf16 values held as floats (lse fp32)
};

float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

std::vector<float> bf16_values(size_t n, uint32_t seed, float range) {
  std::vector<float> values = ops::test_util::uniform(n, seed, -range, range);
  for (float& x : values) x = round_bf16(x);
  return values;
}

std::vector<uint16_t> to_bits(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = f32_to_bf16(values[i]);
  return bits;
}

Problem make_problem(const Case& c) {
  Problem p;
  p.cu = {0};
  p.max_seqlen = 0;
  for (int32_t len : c.lens) {
    p.cu.push_back(p.cu.back() + len);
    p.max_seqlen = std::max<int64_t>(p.max_seqlen, len);
  }
  p.prefix = c.prefix;
  const int64_t T = p.cu.back(), H = c.n_heads, KV = c.n_kv_heads, D = c.head_dim;
  p.shape = {T, H, KV, D, 1.0f / std::sqrt(static_cast<float>(D))};
  p.q = bf16_values(static_cast<size_t>(T * H * D), c.seed, 2.0f);  // wider q: peaked softmax rows
  p.k = bf16_values(static_cast<size_t>(T * KV * D), c.seed + 1, 1.0f);
  p.v = bf16_values(static_cast<size_t>(T * KV * D), c.seed + 2, 1.0f);
  p.dout = bf16_values(static_cast<size_t>(T * H * D), c.seed + 3, 1.0f);
  p.out.resize(static_cast<size_t>(T * H * D));
  p.lse.resize(static_cast<size_t>(H * T));
  ops::attention_forward(p.out.data(), p.lse.data(), p.q.data(), p.k.data(), p.v.data(), p.cu.data(),
                         p.prefix.empty() ? nullptr : p.prefix.data(), static_cast<int64_t>(c.lens.size()), p.shape);
  for (float& x : p.out) x = round_bf16(x);
  return p;
}

struct Grads {
  std::vector<double> dq, dk, dv;
};

// Float64 FlashAttention backward on the kernel's exact inputs (including its lse and bf16 out).
Grads reference(const Problem& p) {
  const int64_t T = p.shape.n_tokens, H = p.shape.n_heads, KV = p.shape.n_kv_heads, D = p.shape.head_dim;
  const double scale = p.shape.scale;
  Grads g{std::vector<double>(static_cast<size_t>(T * H * D)), std::vector<double>(static_cast<size_t>(T * KV * D)),
          std::vector<double>(static_cast<size_t>(T * KV * D))};
  for (size_t s = 0; s + 1 < p.cu.size(); ++s) {
    const int64_t begin = p.cu[s], len = p.cu[s + 1] - begin, prefix = p.prefix.empty() ? 0 : p.prefix[s];
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / (H / KV);
      for (int64_t i = 0; i < len; ++i) {
        const float* qi = &p.q[static_cast<size_t>(((begin + i) * H + h) * D)];
        const float* doi = &p.dout[static_cast<size_t>(((begin + i) * H + h) * D)];
        const float* oi = &p.out[static_cast<size_t>(((begin + i) * H + h) * D)];
        double delta = 0.0;
        for (int64_t d = 0; d < D; ++d) delta += static_cast<double>(doi[d]) * oi[d];
        const double lse = p.lse[static_cast<size_t>(h * T + begin + i)];
        for (int64_t j = 0; j < len; ++j) {
          if (!(j <= i || j < prefix)) continue;
          const size_t kv_offset = static_cast<size_t>(((begin + j) * KV + kvh) * D);
          double score = 0.0, dp = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            score += static_cast<double>(qi[d]) * p.k[kv_offset + d];
            dp += static_cast<double>(doi[d]) * p.v[kv_offset + d];
          }
          const double prob = std::exp(scale * score - lse), ds = prob * (dp - delta);
          for (int64_t d = 0; d < D; ++d) {
            g.dv[kv_offset + d] += prob * doi[d];
            g.dk[kv_offset + d] += scale * ds * qi[d];
            g.dq[static_cast<size_t>(((begin + i) * H + h) * D + d)] += scale * ds * p.k[kv_offset + d];
          }
        }
      }
    }
  }
  return g;
}

struct Result {
  std::vector<uint16_t> dq, dk, dv;
};

// segment_block_max_len: the deterministic mode's one-block path (0: the key-tile kernels for all).
Result run_kernel(const Problem& p, bool deterministic,
                  int64_t segment_block_max_len = kAttentionSegmentBlockMaxLen) {
  using simt::DeviceBuffer;
  const ops::AttentionShape& s = p.shape;
  DeviceBuffer<uint16_t> q(to_bits(p.q)), k(to_bits(p.k)), v(to_bits(p.v)), dout(to_bits(p.dout)), out(to_bits(p.out));
  DeviceBuffer<float> lse(p.lse);
  DeviceBuffer<int32_t> cu(p.cu), prefix(p.prefix.empty() ? std::vector<int32_t>{0} : p.prefix);
  DeviceBuffer<uint16_t> dq(p.q.size()), dk(p.k.size()), dv(p.v.size());  // poisoned
  const int64_t n_segments = static_cast<int64_t>(p.cu.size()) - 1;
  const size_t ws_bytes = attention_backward_workspace_bytes(s, n_segments, p.max_seqlen, deterministic);
  DeviceBuffer<unsigned char> workspace(ws_bytes);
  auto bf = [](const DeviceBuffer<uint16_t>& b) { return reinterpret_cast<__nv_bfloat16*>(b.data()); };
  EXPECT_EQ(attention_backward(bf(dq), bf(dk), bf(dv), bf(dout), bf(q), bf(k), bf(v), bf(out), lse.data(), cu.data(),
                               p.prefix.empty() ? nullptr : prefix.data(), n_segments, p.max_seqlen, s, deterministic,
                               workspace.data(), ws_bytes, nullptr, segment_block_max_len),
            cudaSuccess);
  simt::device_synchronize();
  return {dq.download(), dk.download(), dv.download()};
}

struct Error {
  double norm_rel = 0.0, max_abs = 0.0, max_want = 0.0;
  bool finite = true;
};
template <typename Got>
Error compare(const std::vector<Got>& got, const std::vector<double>& want) {
  Error e;
  double diff2 = 0.0, want2 = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    double x;
    if constexpr (sizeof(Got) == 2)
      x = bf16_to_f32(got[i]);
    else
      x = got[i];
    if (!std::isfinite(x)) e.finite = false;
    diff2 += (x - want[i]) * (x - want[i]);
    want2 += want[i] * want[i];
    e.max_abs = std::max(e.max_abs, std::abs(x - want[i]));
    e.max_want = std::max(e.max_want, std::abs(want[i]));
  }
  e.norm_rel = std::sqrt(diff2 / std::max(want2, 1e-300));
  return e;
}
void expect_close(const Error& e, const char* what) {
  EXPECT_TRUE(e.finite) << what << ": an element is NaN/inf (unwritten?)";
  EXPECT_LE(e.norm_rel, 1e-2) << what;
  EXPECT_LE(e.max_abs, 3e-2 * e.max_want) << what;
  std::printf("    %-3s norm-rel %.2e  max-abs %.2e (max |want| %.2e)\n", what, e.norm_rel, e.max_abs, e.max_want);
}

std::vector<Case> cases() {
  const std::vector<int32_t> ragged = {1, 7, 0, 63, 129, 300};
  return {
      {ragged, {}, 2, 2, 64, 11},                             // causal, GQA 1
      {ragged, {1, 3, 0, 0, 129, 77}, 4, 2, 64, 12},          // prefix = len, 0, in between; GQA 2
      {{1, 63, 129, 300}, {1, 63, 129, 300}, 4, 1, 128, 13},  // bidirectional, GQA 4
      {{300, 7, 129}, {100, 0, 50}, 2, 1, 128, 14},           // prefix, GQA 2, head_dim 128
      {{129, 1, 63, 7}, {}, 4, 1, 128, 15},                   // causal, GQA 4, head_dim 128
      {ragged, {1, 3, 0, 0, 129, 77}, 4, 2, 32, 16},          // prefix, GQA 2, head_dim 32
      {{300, 7}, {}, 2, 2, 32, 17},                           // causal, head_dim 32
      {{300, 7, 129}, {100, 0, 50}, 2, 1, 96, 18},            // prefix, GQA 2, head_dim 96
      {{129, 1, 63, 7}, {}, 4, 2, 96, 19},                    // causal, GQA 2, head_dim 96
      // around the whole-segment kernel's limit (128 tokens: one block holds the segment's keys)
      {{128, 127, 65, 129, 92}, {}, 4, 2, 64, 22},              // causal, GQA 2
      {{128, 92, 129, 33}, {128, 50, 0, 33}, 2, 1, 128, 23},    // prefix, bidirectional, head_dim 128
      {{127, 96, 17}, {20, 96, 0}, 4, 2, 96, 24},               // prefix, GQA 2, head_dim 96
      {{128, 100, 5}, {3, 0, 5}, 2, 2, 32, 25},                 // prefix, head_dim 32
      // around the 256-key blocks' limit (head_dim <= 64)
      {{256, 255, 257, 200, 130}, {}, 4, 2, 64, 26},            // causal, GQA 2
      {{256, 140, 3}, {100, 140, 0}, 2, 2, 32, 27},             // prefix, bidirectional, head_dim 32
      // the whole-segment blocks' lse and D: loaded at the start up to 4 query heads per kv head
      // (128 tokens at GQA 4 just fit), per step past that (GQA 8: the 128- and 200-token
      // segments; its 17- and 40-token ones still fit)
      {{128, 92}, {}, 4, 1, 64, 28},                            // causal, GQA 4
      {{128, 17, 200, 40}, {0, 17, 0, 0}, 8, 1, 64, 29},        // causal and bidirectional, GQA 8
  };
}

// The backward's modes: fast; deterministic (short segments in one block); deterministic with the
// segments of up to 256 tokens in one block (head_dim <= 64 only); deterministic with key tiles
// for all.
struct Mode {
  bool deterministic;
  int64_t segment_block_max_len;
  const char* name;
  bool runs_at(int64_t head_dim) const {
    return segment_block_max_len <= kAttentionSegmentBlockMaxLen || head_dim <= 64;
  }
};
constexpr Mode kModes[] = {{false, 0, "fast"},
                           {true, kAttentionSegmentBlockMaxLen, "deterministic"},
                           {true, kAttentionLongSegmentBlockMaxLen, "deterministic, 256-key blocks"},
                           {true, 0, "deterministic, key tiles only"}};

const char* mask_name(const Case& c) {
  if (c.prefix.empty()) return "causal";
  for (size_t s = 0; s < c.lens.size(); ++s)
    if (c.prefix[s] != c.lens[s]) return "prefix";
  return "bidirectional";
}

TEST(CudaAttentionBackward, MatchesFloat64ReferenceForEveryMaskAndMode) {
  for (const Case& c : cases()) {
    const Problem p = make_problem(c);
    const Grads want = reference(p);
    // The CPU reference agrees with the float64 gradients (sanity of the test itself).
    std::vector<float> cdq(p.q.size()), cdk(p.k.size()), cdv(p.v.size());
    ops::attention_backward(cdq.data(), cdk.data(), cdv.data(), p.dout.data(), p.q.data(), p.k.data(), p.v.data(),
                            p.out.data(), p.lse.data(), p.cu.data(), p.prefix.empty() ? nullptr : p.prefix.data(),
                            static_cast<int64_t>(c.lens.size()), p.shape);
    EXPECT_LE(compare(cdq, want.dq).norm_rel, 1e-4);
    EXPECT_LE(compare(cdk, want.dk).norm_rel, 1e-4);
    EXPECT_LE(compare(cdv, want.dv).norm_rel, 1e-4);
    for (const Mode& mode : kModes) {
      if (!mode.runs_at(c.head_dim)) continue;
      SCOPED_TRACE(testing::Message() << "heads " << c.n_heads << "/" << c.n_kv_heads << " head_dim " << c.head_dim
                                      << " " << mask_name(c) << " " << mode.name);
      std::printf("  heads %lld/%lld head_dim %lld %s %s\n", static_cast<long long>(c.n_heads),
                  static_cast<long long>(c.n_kv_heads), static_cast<long long>(c.head_dim), mask_name(c), mode.name);
      const Result got = run_kernel(p, mode.deterministic, mode.segment_block_max_len);
      expect_close(compare(got.dq, want.dq), "dq");
      expect_close(compare(got.dk, want.dk), "dk");
      expect_close(compare(got.dv, want.dv), "dv");
      // And against ops::attention_backward, converted to double.
      EXPECT_LE(compare(got.dq, std::vector<double>(cdq.begin(), cdq.end())).norm_rel, 1e-2);
      EXPECT_LE(compare(got.dk, std::vector<double>(cdk.begin(), cdk.end())).norm_rel, 1e-2);
      EXPECT_LE(compare(got.dv, std::vector<double>(cdv.begin(), cdv.end())).norm_rel, 1e-2);
    }
  }
}

// Deterministic mode: bitwise identical across runs (and, on the emulator, across schedules and
// worker-thread counts, which reorder blocks and threads).
TEST(CudaAttentionBackward, DeterministicModeIsBitwiseReproducible) {
  const Problem p = make_problem({{5, 129, 70}, {2, 0, 70}, 4, 2, 64, 21});
  const Result first = run_kernel(p, true);
  Result second;
  {
#if !defined(__CUDACC__)
    simt::ScopedEmulatorOptions options({7, 3});
#endif
    second = run_kernel(p, true);
  }
  EXPECT_EQ(first.dq, second.dq);
  EXPECT_EQ(first.dk, second.dk);
  EXPECT_EQ(first.dv, second.dv);
  expect_close(compare(first.dq, reference(p).dq), "dq");
  // the 256-key blocks too (the 129-token segment)
  const Result long_first = run_kernel(p, true, kAttentionLongSegmentBlockMaxLen);
#if !defined(__CUDACC__)
  simt::ScopedEmulatorOptions options({7, 3});
#endif
  const Result long_second = run_kernel(p, true, kAttentionLongSegmentBlockMaxLen);
  EXPECT_EQ(long_first.dq, long_second.dq);
  EXPECT_EQ(long_first.dk, long_second.dk);
  EXPECT_EQ(long_first.dv, long_second.dv);
}

// Fast mode with blocks running in parallel on several emulator threads: the dq atomics from
// different key tiles meet, in a schedule-dependent order; the sum stays within tolerance.
TEST(CudaAttentionBackward, FastModeWithConcurrentBlocks) {
  const Problem p = make_problem({{200, 33}, {}, 2, 1, 64, 31});
#if !defined(__CUDACC__)
  simt::ScopedEmulatorOptions options({5, 4});
#endif
  const Result got = run_kernel(p, false);
  const Grads want = reference(p);
  expect_close(compare(got.dq, want.dq), "dq");
  expect_close(compare(got.dk, want.dk), "dk");
  expect_close(compare(got.dv, want.dv), "dv");
}

// The trainer's layout (AttentionQkvRows): q, k, v read from fused QKV rows and dq, dk, dv written
// into fused rows, each row with 8 spare values after its heads (NaN in the input rows, which
// must not be read; poisoned in the output rows, which must stay so).
struct RowsRun {
  Result grads;           // dq, dk, dv taken out of the output rows, contiguous
  bool spare_kept = true; // the output rows' spare values are still poisoned
};
RowsRun run_rows(const Problem& p, bool deterministic, int64_t segment_block_max_len, const float* rope_table,
                 bool two_d) {
  using simt::DeviceBuffer;
  const ops::AttentionShape& s = p.shape;
  const int64_t T = s.n_tokens, H = s.n_heads, KV = s.n_kv_heads, D = s.head_dim;
  const int64_t stride = (H + 2 * KV) * D + 8;
  const int64_t starts[3] = {0, H * D, (H + KV) * D}, widths[3] = {H * D, KV * D, KV * D};
  std::vector<uint16_t> rows(static_cast<size_t>(T * stride), 0x7FC1);
  const std::vector<uint16_t> parts[3] = {to_bits(p.q), to_bits(p.k), to_bits(p.v)};
  for (int64_t t = 0; t < T; ++t)
    for (int i = 0; i < 3; ++i)
      std::copy_n(parts[i].begin() + t * widths[i], widths[i], rows.begin() + t * stride + starts[i]);
  DeviceBuffer<uint16_t> in_rows(rows), d_rows(rows.size()), dout(to_bits(p.dout)), out(to_bits(p.out));
  DeviceBuffer<float> lse(p.lse);
  DeviceBuffer<int32_t> cu(p.cu), prefix(p.prefix.empty() ? std::vector<int32_t>{0} : p.prefix);
  const int64_t n_segments = static_cast<int64_t>(p.cu.size()) - 1;
  const size_t ws_bytes = attention_backward_workspace_bytes(s, n_segments, p.max_seqlen, deterministic);
  DeviceBuffer<unsigned char> workspace(ws_bytes);
  auto* d = reinterpret_cast<__nv_bfloat16*>(d_rows.data());
  const auto* in = reinterpret_cast<const __nv_bfloat16*>(in_rows.data());
  EXPECT_EQ(attention_backward(d, d + starts[1], d + starts[2], reinterpret_cast<const __nv_bfloat16*>(dout.data()),
                               in, in + starts[1], in + starts[2], reinterpret_cast<const __nv_bfloat16*>(out.data()),
                               lse.data(), cu.data(), p.prefix.empty() ? nullptr : prefix.data(), n_segments,
                               p.max_seqlen, s, deterministic, workspace.data(), ws_bytes, nullptr,
                               segment_block_max_len, {stride, rope_table, two_d}),
            cudaSuccess);
  simt::device_synchronize();
  const std::vector<uint16_t> got = d_rows.download();
  RowsRun run;
  std::vector<uint16_t>* grads[3] = {&run.grads.dq, &run.grads.dk, &run.grads.dv};
  for (int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < 3; ++i) {
      const auto from = got.begin() + t * stride + starts[i];
      grads[i]->insert(grads[i]->end(), from, from + widths[i]);
    }
    for (int64_t j = stride - 8; j < stride; ++j) run.spare_kept = run.spare_kept && got[t * stride + j] == 0xFFFF;
  }
  return run;
}

// g [T, heads, D] rotated back through RoPE in float64 with a rope_table's fp32 (cos, sin): for
// each pair (x1, x2), (x1·cos + x2·sin, x2·cos − x1·sin).
std::vector<double> rope_back(const std::vector<double>& g, int64_t T, int64_t heads, int64_t D,
                              const std::vector<float>& table, bool two_d) {
  std::vector<double> out(g.size());
  const int64_t block_dim = two_d ? D / 2 : D, half = block_dim / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < D / 2; ++j) {
        const int64_t col = j / half * block_dim + j % half, at = (t * heads + h) * D + col;
        const double c = table[static_cast<size_t>(t * D + j)], sn = table[static_cast<size_t>(t * D + D / 2 + j)];
        out[static_cast<size_t>(at)] = g[static_cast<size_t>(at)] * c + g[static_cast<size_t>(at + half)] * sn;
        out[static_cast<size_t>(at + half)] = g[static_cast<size_t>(at + half)] * c - g[static_cast<size_t>(at)] * sn;
      }
  return out;
}

TEST(CudaAttentionBackward, FusedRowsAndRopeRotation) {
  const struct {
    Case c;
    bool two_d;
  } cases[] = {
      {{{7, 0, 63, 129, 150}, {}, 4, 2, 64, 41}, false},            // causal, GQA 2 (gpu_350m's heads)
      {{{129, 100, 5}, {3, 0, 5}, 2, 1, 128, 42}, true},            // prefix, 2D positions, head_dim 128
      {{{150, 63, 1}, {}, 4, 2, 96, 43}, true},                     // 2D, head_dim 96 (pairs 24 apart)
      {{{5, 129, 70}, {2, 0, 70}, 2, 2, 32, 44}, false},            // head_dim 32
  };
  for (const auto& [c, two_d] : cases) {
    const Problem p = make_problem(c);
    const int64_t T = p.shape.n_tokens, D = c.head_dim;
    const Grads want = reference(p);
    // positions up to 3000 (angles of thousands of radians), a table as the trainer makes it
    const std::vector<int32_t> inter = ops::test_util::random_ints(T, 3000, c.seed + 7),
                               intra = ops::test_util::random_ints(T, 3000, c.seed + 8);
    simt::DeviceBuffer<int32_t> dinter(inter), dintra(intra);
    simt::DeviceBuffer<float> table(static_cast<size_t>(T * D));
    ASSERT_EQ(rope_table(table.data(), dinter.data(), two_d ? dintra.data() : nullptr, T, D, 10000.0f, nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::vector<float> host_table = table.download();
    const std::vector<double> want_dq = rope_back(want.dq, T, c.n_heads, D, host_table, two_d);
    const std::vector<double> want_dk = rope_back(want.dk, T, c.n_kv_heads, D, host_table, two_d);
    for (const Mode& mode : kModes) {
      if (!mode.runs_at(D)) continue;
      SCOPED_TRACE(testing::Message() << "heads " << c.n_heads << "/" << c.n_kv_heads << " head_dim " << D
                                      << (two_d ? " 2D" : " 1D") << " " << mask_name(c) << " " << mode.name);
      std::printf("  fused rows, heads %lld/%lld head_dim %lld %s %s\n", static_cast<long long>(c.n_heads),
                  static_cast<long long>(c.n_kv_heads), static_cast<long long>(D), two_d ? "2D" : "1D", mode.name);
      // no rotation: the separate arrays' gradients, bitwise where the mode is deterministic
      const RowsRun plain_rows = run_rows(p, mode.deterministic, mode.segment_block_max_len, nullptr, false);
      EXPECT_TRUE(plain_rows.spare_kept) << "wrote past a row's heads";
      if (mode.deterministic) {
        const Result plain = run_kernel(p, true, mode.segment_block_max_len);
        EXPECT_EQ(plain_rows.grads.dq, plain.dq);
        EXPECT_EQ(plain_rows.grads.dk, plain.dk);
        EXPECT_EQ(plain_rows.grads.dv, plain.dv);
      } else {
        expect_close(compare(plain_rows.grads.dq, want.dq), "dq");
      }
      // rotated back through RoPE
      const RowsRun rows = run_rows(p, mode.deterministic, mode.segment_block_max_len, table.data(), two_d);
      EXPECT_TRUE(rows.spare_kept) << "wrote past a row's heads";
      expect_close(compare(rows.grads.dq, want_dq), "dq");
      expect_close(compare(rows.grads.dk, want_dk), "dk");
      expect_close(compare(rows.grads.dv, want.dv), "dv");
    }
  }
}

TEST(CudaAttentionBackward, RejectsUnsupportedShapesAndSmallWorkspace) {
  ops::AttentionShape shape{16, 2, 1, 80, 0.1f};
  EXPECT_EQ(attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, 1, 16, shape, false, nullptr, 1 << 20, nullptr),
            cudaErrorInvalidValue);
  shape.head_dim = 64;
  const size_t need = attention_backward_workspace_bytes(shape, 1, 16, false);
  EXPECT_GT(need, attention_backward_workspace_bytes(shape, 1, 16, true));  // the fp32 dq accumulator
  EXPECT_EQ(attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, 1, 16, shape, false, nullptr, need - 1, nullptr),
            cudaErrorInvalidValue);
  // the one-block path holds at most kAttentionLongSegmentBlockMaxLen keys at head_dim 64, and
  // kAttentionSegmentBlockMaxLen at 128
  for (int64_t limit : {int64_t{-1}, kAttentionLongSegmentBlockMaxLen + 1}) {
    EXPECT_EQ(attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                 nullptr, nullptr, 1, 16, shape, true, nullptr, 1 << 20, nullptr, limit),
              cudaErrorInvalidValue);
  }
  shape.head_dim = 128;
  EXPECT_EQ(attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, nullptr, 1, 16, shape, true, nullptr, 1 << 20, nullptr,
                               kAttentionSegmentBlockMaxLen + 1),
            cudaErrorInvalidValue);
  shape.head_dim = 64;
  // fused rows: a multiple of 8 values (16-byte copies) that holds all (2 + 2·1) · 64 = 256 of a row
  for (const int64_t stride : {int64_t{248}, int64_t{260}}) {
    EXPECT_EQ(attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                 nullptr, nullptr, 1, 16, shape, true, nullptr, 1 << 20, nullptr,
                                 kAttentionSegmentBlockMaxLen, {stride, nullptr, false}),
              cudaErrorInvalidValue)
        << stride;
  }
  shape.n_kv_heads = 3;  // does not divide n_heads
  EXPECT_EQ(attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, 1, 16, shape, true, nullptr, 1 << 20, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace reclm::cuda
