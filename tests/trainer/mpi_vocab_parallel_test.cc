// Vocabulary-parallel embedding and cross-entropy (trainer/vocab_parallel.h) under mpirun
// (ctest label `mpi`), against the unsharded table computed in double on every rank. Each rank's
// inputs are a pure function of (seed, rank), so every rank rebuilds every rank's inputs for the
// reference. Odd sizes: an item block that does not split evenly, widths and token counts that
// differ per rank, rows without loss; class ranges the same on every rank, and different. Outputs are poisoned (NaN) before the calls; accumulated
// gradients start from random values. Prints "vocab parallel N ranks: K checks, 0 failed".
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/rng.h"
#include "trainer/vocab_parallel.h"

namespace reclm {
namespace {

constexpr int64_t kVocab = 97, kItemBegin = 20, kItemEnd = 83, kC = 19;

struct Checks {
  int rank = 0;
  int64_t run = 0, failed = 0;
  void expect(bool ok, const std::string& what) {
    ++run;
    if (!ok && ++failed <= 10) std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
  }
};

std::vector<float> uniform(CounterRng rng, int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = scale * static_cast<float>(2.0 * rng.uniform() - 1.0);
  return v;
}

// One rank's inputs.
struct RankInput {
  std::vector<int32_t> tokens;   // [T]
  std::vector<float> d_out;      // [T, C] for the embedding backward
  std::vector<float> h;          // [R, C]
  std::vector<int32_t> targets;  // [R]
  std::vector<float> weights;    // [R]
};
RankInput rank_input(uint64_t seed, int rank, int64_t class_begin, int64_t n_classes) {
  CounterRng rng(seed, RngPurpose::kTest, 100 + rank, 0);
  RankInput in;
  const int64_t T = 13 + 5 * rank, R = 11 + 4 * rank;
  for (int64_t t = 0; t < T; ++t) in.tokens.push_back(static_cast<int32_t>(rng.next_u32() % kVocab));
  in.d_out = uniform(CounterRng(seed, RngPurpose::kTest, 200 + rank, 0), T * kC, 1.0f);
  in.h = uniform(CounterRng(seed, RngPurpose::kTest, 300 + rank, 0), R * kC, 1.0f);
  for (int64_t r = 0; r < R; ++r) {
    in.targets.push_back(static_cast<int32_t>(class_begin + rng.next_u32() % n_classes));
    in.weights.push_back(r % 4 == 1 ? 0.0f : (r % 3 == 0 ? 1.5f : 1.0f));
  }
  return in;
}

// Splits a full table [V, C] into this rank's pieces.
void split(const VocabShard& s, const std::vector<float>& full, std::vector<float>& replicated,
           std::vector<float>& own) {
  replicated.clear();
  own.clear();
  for (int64_t id = 0; id < s.vocab; ++id) {
    const auto row = full.begin() + id * kC;
    if (!s.is_item(id)) replicated.insert(replicated.end(), row, row + kC);
    if (s.owns(id)) own.insert(own.end(), row, row + kC);
  }
}

bool near(double got, double want, double tol) { return std::abs(got - want) <= tol * (1.0 + std::abs(want)); }

// Checks this rank's pieces of a gradient against the dense one (`start` + `dense`); the
// replicated piece is first summed over the ranks (as the data-parallel all-reduce would).
void check_table_grad(Communicator& comm, Checks& checks, const VocabShard& s,
                      const std::vector<float>& start, const std::vector<double>& dense,
                      std::vector<float> d_rep, const std::vector<float>& d_own,
                      const std::vector<float>& rep_start, const std::string& what) {
  // Remove the start values before summing over ranks, then compare with the job's gradient.
  for (size_t i = 0; i < d_rep.size(); ++i) d_rep[i] -= rep_start[i];
  comm.all_reduce(d_rep.data(), static_cast<int64_t>(d_rep.size()), ReduceOp::kSum);
  int64_t wrong = 0, rep_row = 0, own_row = 0;
  for (int64_t id = 0; id < s.vocab; ++id) {
    for (int64_t c = 0; c < kC; ++c) {
      const double want = dense[id * kC + c];
      if (!s.is_item(id)) wrong += !near(d_rep[rep_row * kC + c], want, 1e-5);
      if (s.owns(id)) wrong += !near(d_own[own_row * kC + c], start[id * kC + c] + want, 1e-5);
    }
    rep_row += !s.is_item(id);
    own_row += s.owns(id);
  }
  checks.expect(wrong == 0, what + ": " + std::to_string(wrong) + " gradient values off");
}

struct ClassRange {
  int64_t begin, count;
};

// ranges[r % size] is rank r's class range.
void run_case(Communicator& comm, Checks& checks, uint64_t seed, const std::vector<ClassRange>& ranges) {
  const int world = comm.size(), rank = comm.rank();
  std::string name = "classes";
  for (const ClassRange& c : ranges) {
    name += " [" + std::to_string(c.begin) + ", " + std::to_string(c.begin + c.count) + ")";
  }
  const auto range_of = [&](int r) { return ranges[r % ranges.size()]; };
  const int64_t class_begin = range_of(rank).begin, n_classes = range_of(rank).count;
  const VocabShard s = make_vocab_shard(kVocab, kItemBegin, kItemEnd, rank, world);
  const std::vector<float> table = uniform(CounterRng(seed, RngPurpose::kTest, 1, 0), kVocab * kC, 0.8f);
  const std::vector<float> grad_start = uniform(CounterRng(seed, RngPurpose::kTest, 2, 0), kVocab * kC, 0.1f);
  std::vector<float> rep, own, d_rep, d_own;
  split(s, table, rep, own);
  std::vector<RankInput> inputs;
  for (int r = 0; r < world; ++r) inputs.push_back(rank_input(seed, r, range_of(r).begin, range_of(r).count));
  const RankInput& mine = inputs[rank];
  const int64_t T = static_cast<int64_t>(mine.tokens.size()), R = static_cast<int64_t>(mine.targets.size());
  const float nan = std::numeric_limits<float>::quiet_NaN();

  // Embedding forward: exactly the rows (one rank contributes each, the others add zeros).
  std::vector<float> out(T * kC, nan);
  vocab_parallel_embedding_forward(comm, s, {rep.data(), own.data()}, mine.tokens.data(), T, kC, out.data());
  int64_t wrong = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < kC; ++c) wrong += out[t * kC + c] != table[mine.tokens[t] * kC + c];
  checks.expect(wrong == 0, name + ": embedding forward: " + std::to_string(wrong) + " values differ");

  // Embedding backward vs Σ over every rank's tokens.
  std::vector<double> dense(kVocab * kC, 0.0);
  for (const RankInput& in : inputs)
    for (size_t t = 0; t < in.tokens.size(); ++t)
      for (int64_t c = 0; c < kC; ++c) dense[in.tokens[t] * kC + c] += in.d_out[t * kC + c];
  std::vector<float> rep_start;
  split(s, grad_start, rep_start, d_own);
  d_rep = rep_start;
  vocab_parallel_embedding_backward(comm, s, {d_rep.data(), d_own.data()}, mine.d_out.data(),
                                    mine.tokens.data(), T, kC);
  check_table_grad(comm, checks, s, grad_start, dense, d_rep, d_own, rep_start, name + ": embedding backward");

  // Cross-entropy, in double over the whole class range, every rank's rows.
  const float grad_scale = 0.37f;
  double want_loss = 0.0;
  std::vector<double> d_table(kVocab * kC, 0.0);
  std::vector<std::vector<double>> d_h_want(world);
  for (int r = 0; r < world; ++r) {
    const RankInput& in = inputs[r];
    const int64_t class_begin = range_of(r).begin, n_classes = range_of(r).count;
    d_h_want[r].assign(in.h.size(), 0.0);
    for (size_t i = 0; i < in.targets.size(); ++i) {
      if (in.weights[i] == 0.0f) continue;
      std::vector<double> logit(n_classes);
      double top = -1e300;
      for (int64_t k = 0; k < n_classes; ++k) {
        double dot = 0.0;
        for (int64_t c = 0; c < kC; ++c) dot += double(in.h[i * kC + c]) * table[(class_begin + k) * kC + c];
        logit[k] = dot;
        top = std::max(top, dot);
      }
      double sum = 0.0;
      for (double l : logit) sum += std::exp(l - top);
      const int64_t target = in.targets[i] - class_begin;
      want_loss += in.weights[i] * (top + std::log(sum) - logit[target]);
      for (int64_t k = 0; k < n_classes; ++k) {
        const double g = double(grad_scale) * in.weights[i] * (std::exp(logit[k] - top) / sum - (k == target));
        for (int64_t c = 0; c < kC; ++c) {
          d_h_want[r][i * kC + c] += g * table[(class_begin + k) * kC + c];
          d_table[(class_begin + k) * kC + c] += g * in.h[i * kC + c];
        }
      }
    }
  }
  split(s, grad_start, rep_start, d_own);
  d_rep = rep_start;
  std::vector<float> d_h(R * kC, nan);
  double loss = vocab_parallel_cross_entropy(comm, s, {rep.data(), own.data()}, mine.h.data(),
                                             mine.targets.data(), mine.weights.data(), R, kC,
                                             class_begin, n_classes, grad_scale, d_h.data(),
                                             {d_rep.data(), d_own.data()});
  const double forward_only = vocab_parallel_cross_entropy(
      comm, s, {rep.data(), own.data()}, mine.h.data(), mine.targets.data(), mine.weights.data(),
      R, kC, class_begin, n_classes, 0.0f, nullptr, {nullptr, nullptr});
  checks.expect(forward_only == loss, name + ": forward-only loss differs from forward+backward");
  comm.all_reduce(&loss, 1, ReduceOp::kSum);
  checks.expect(near(loss, want_loss, 1e-5), name + ": loss " + std::to_string(loss) + " vs " + std::to_string(want_loss));
  wrong = 0;
  for (int64_t i = 0; i < R * kC; ++i) wrong += !near(d_h[i], d_h_want[rank][i], 1e-5);
  checks.expect(wrong == 0, name + ": d_h: " + std::to_string(wrong) + " values off");
  check_table_grad(comm, checks, s, grad_start, d_table, d_rep, d_own, rep_start, name + ": head gradient");
}

}  // namespace
}  // namespace reclm

int main(int argc, char** argv) {
  using namespace reclm;
  auto comm = make_communicator();
  int code = 0;
  run_or_abort_job(*comm, [&] {
    Checks checks{comm->rank()};
    uint64_t seed = argc > 1 ? std::stoull(argv[1]) : std::random_device{}();
    comm->broadcast(&seed, sizeof(seed), 0);
    // the item block, the whole vocabulary, and a range straddling both edges of the block
    const ClassRange items{kItemBegin, kItemEnd - kItemBegin}, all{0, kVocab}, straddling{10, 80};
    run_case(*comm, checks, seed, {items});
    run_case(*comm, checks, seed, {all});
    run_case(*comm, checks, seed, {straddling});
    run_case(*comm, checks, seed, {items, all, straddling});  // each rank its own range
    double totals[2] = {double(checks.run), double(checks.failed)};
    comm->all_reduce(totals, 2, ReduceOp::kSum);
    if (comm->rank() == 0) {
      std::printf("vocab parallel %d ranks: %.0f checks, %.0f failed (seed %llu)\n", comm->size(),
                  totals[0], totals[1], static_cast<unsigned long long>(seed));
    }
    code = totals[1] == 0 ? 0 : 1;
  });
  return code;
}
