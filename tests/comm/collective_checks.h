// The checks shared by the collective tests of every communicator (mpi_collectives_test.cc,
// nccl_collectives_test.cc): per-rank inputs that every rank can regenerate, the float64
// reference of a reduction, its tolerance, and cross-rank bitwise agreement.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/rng.h"

namespace reclm::test {

// Counts failed checks; prints the first few with this rank's name.
struct Checks {
  int rank = 0;
  int64_t run = 0;
  int64_t failed = 0;

  template <typename... Args>
  void expect(bool ok, const char* format, Args... args) {
    ++run;
    if (ok) return;
    if (++failed <= 10) {  // one write per line, so the ranks' lines do not interleave
      char what[256];
      std::snprintf(what, sizeof(what), format, args...);
      std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what);
    }
  }
};

// Rank `rank`'s input of case `case_id`: n values of magnitude in [0.5, 1.5) and random sign
// (never zero, so a collective that drops or zeroes a block cannot pass).
template <typename T>
std::vector<T> input(uint64_t seed, uint64_t case_id, int rank, int64_t n) {
  CounterRng rng(seed, RngPurpose::kTest, case_id, static_cast<uint32_t>(rank));
  std::vector<T> values(static_cast<size_t>(n));
  for (T& v : values) {
    const T magnitude = static_cast<T>(0.5 + rng.uniform());
    v = (rng.next_u32() & 1) ? magnitude : -magnitude;
  }
  return values;
}

// op over the ranks' inputs for element i of each block at `offset`, in double.
template <typename T>
double reference(const std::vector<std::vector<T>>& inputs, int64_t index, ReduceOp op) {
  double result = op == ReduceOp::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
  for (const auto& in : inputs) {
    const double v = in[static_cast<size_t>(index)];
    result = op == ReduceOp::kMax ? std::max(result, v) : result + v;
  }
  return op == ReduceOp::kAvg ? result / static_cast<double>(inputs.size()) : result;
}

// |got − ref| within a few roundings of a sum of `ranks` values of magnitude < 1.5 (NCCL's avg
// pre-scales each input by 1/ranks, one more rounding); max is exact. NaN (a poisoned, unwritten
// value) never passes.
template <typename T>
bool close(T got, double ref, ReduceOp op, int ranks) {
  if (op == ReduceOp::kMax) return static_cast<double>(got) == ref;
  const double eps = std::numeric_limits<T>::epsilon();
  return std::abs(static_cast<double>(got) - ref) <= 4.0 * eps * 1.5 * ranks;
}

// Every rank's input of case `case_id`, n values each: [ranks][n].
template <typename T>
std::vector<std::vector<T>> rank_inputs(uint64_t seed, uint64_t case_id, int ranks, int64_t n) {
  std::vector<std::vector<T>> inputs;
  for (int r = 0; r < ranks; ++r) inputs.push_back(input<T>(seed, case_id, r, n));
  return inputs;
}

// What an all-gather of every rank's n-value input gives: the inputs in rank order.
inline std::vector<float> gathered_inputs(uint64_t seed, uint64_t case_id, int ranks, int64_t n) {
  std::vector<float> all;
  for (const std::vector<float>& block : rank_inputs<float>(seed, case_id, ranks, n)) {
    all.insert(all.end(), block.begin(), block.end());
  }
  return all;
}

// How many of got[i] miss op's reference of element first + i over the ranks' inputs.
template <typename T>
int64_t values_off(const std::vector<T>& got, const std::vector<std::vector<T>>& inputs, int64_t first,
                   ReduceOp op) {
  const int ranks = static_cast<int>(inputs.size());
  int64_t wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    wrong += !close(got[i], reference(inputs, first + static_cast<int64_t>(i), op), op, ranks);
  }
  return wrong;
}

// Every rank holds the same bits as rank 0 (broadcast rank 0's copy and compare).
template <typename T>
bool same_on_every_rank(Communicator& comm, const std::vector<T>& values) {
  std::vector<T> rank0 = values;
  comm.broadcast(rank0.data(), static_cast<int64_t>(rank0.size() * sizeof(T)), 0);
  return std::memcmp(rank0.data(), values.data(), values.size() * sizeof(T)) == 0;
}

// Started all-reduces (the gradient buckets' path, Communicator::start_all_reduce): one per size
// and op in flight at once, the last ticket polled with test_started until done (30 s at most),
// then wait_started; twice, so tickets restart at 0. Each result must match the reference and be
// the same on every rank (compared over `host`). Buffer(n) holds n floats where `comm` wants them,
// with upload(values), data() and download().
template <typename Buffer, size_t kSizeCount>
void check_started_all_reduce(Communicator& comm, Communicator& host, Checks& checks, uint64_t seed,
                              uint64_t& case_id, const int64_t (&sizes)[kSizeCount]) {
  const int ranks = comm.size();
  for (int round = 0; round < 2; ++round) {
    std::vector<std::vector<std::vector<float>>> inputs;  // [case][rank][n]
    std::vector<std::unique_ptr<Buffer>> buffers;
    std::vector<ReduceOp> ops;
    std::vector<int> tickets;
    for (int64_t n : sizes) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
        ++case_id;
        const auto& in = inputs.emplace_back(rank_inputs<float>(seed, case_id, ranks, n));
        buffers.push_back(std::make_unique<Buffer>(n));
        buffers.back()->upload(in[static_cast<size_t>(comm.rank())]);
        ops.push_back(op);
        tickets.push_back(comm.start_all_reduce(buffers.back()->data(), n, op));
      }
    }
    for (size_t c = 0; c < tickets.size(); ++c) {
      checks.expect(tickets[c] == static_cast<int>(c), "started all_reduce #%zu got ticket %d", c,
                    tickets[c]);
    }
    const auto start = std::chrono::steady_clock::now();
    bool done = false;
    while (!(done = comm.test_started(tickets.back())) &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    }
    checks.expect(done, "test_started never reported the last started all_reduce done");
    comm.wait_started();
    for (size_t c = 0; c < buffers.size(); ++c) {
      const std::vector<float> got = buffers[c]->download();
      const int64_t wrong = values_off(got, inputs[c], 0, ops[c]);
      checks.expect(wrong == 0, "started all_reduce(%s) of %zu: %lld values off the reference",
                    reduce_op_name(ops[c]), got.size(), static_cast<long long>(wrong));
      checks.expect(same_on_every_rank(host, got), "started all_reduce of %zu differs from rank 0",
                    got.size());
    }
  }
}

}  // namespace reclm::test
